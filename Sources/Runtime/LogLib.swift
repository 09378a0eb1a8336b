import CLua
import Foundation

/// The Swift helpers of `log` and `ckpt` (their Lua halves are lua/log.lua and lua/ckpt.lua).
enum LogLib {
  typealias Fn = TensorLib.Fn

  static func install(_ L: LuaState) {
    Libraries.install(L, "ckpt", ckptBindings())
    Libraries.install(L, "log", logBindings())
  }

  static func ckptBindings() -> [Fn] { [("_pid", { c in c.push(Int(getpid())); return 1 })] }


  static func logBindings() -> [Fn] {
    [
      ("_isatty", { c in c.push(isatty(1) != 0); return 1 }),
      ("_time", { c in
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        c.push(Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9)
        return 1
      }),
    ]
  }
}
