import CLua
import Foundation
import Media
import Tensor

/// The Swift helpers of `log` and `ckpt` (their Lua halves are lua/log.lua and lua/ckpt.lua),
/// and log.TensorBoard: event-file writers (userdata luagan.TensorBoard, Sources/Media).
enum LogLib {
  typealias Fn = Binding.Fn
  static let tensorBoardMeta = UserdataKind("luagan.TensorBoard")

  static func install(_ L: LuaState) {
    installTensorBoardType(L)
    Binding.installLibrary(L, "ckpt", ckptBindings())
    Binding.installLibrary(L, "log", logBindings())
  }

  static func ckptBindings() -> [Fn] { [("_pid", { c in c.push(Int(getpid())); return 1 })] }


  static func logBindings() -> [Fn] {
    [
      ("_isatty", { c in c.push(isatty(1) != 0); return 1 }),
      // log.catchInterrupts(on): the first Ctrl-C only sets a flag that log.interrupted() reads
      ("catchInterrupts", { c in lg_set_graceful_interrupts(try c.bool(1) ? 1 : 0); return 0 }),
      ("interrupted", { c in c.push(lg_interrupt_was_requested() != 0); return 1 }),
      ("_time", { c in
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        c.push(Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9)
        return 1
      }),
      // log.TensorBoard(dir): a writer of a new event file in dir (made if missing).
      ("TensorBoard", { c in
        let dir = try c.string(1)
        guard !dir.isEmpty else { throw c.argError(1, "folder name expected, got an empty string") }
        LuaVM.pushObject(c.L, try TensorBoardWriter(directory: dir), meta: tensorBoardMeta)
        return 1
      }),
    ]
  }

  // MARK: - log.TensorBoard

  static func installTensorBoardType(_ L: LuaState) {
    let meta = tensorBoardMeta
    _ = luaL_newmetatable(L, meta.name)
    let methods = tensorBoardMethods()
    lua_pushstring(L, "__index")
    lua_createtable(L, 0, Int32(methods.count))
    // "log.TensorBoard:scalars": errors read "TensorBoard:scalars: ..." (the part after the last dot).
    for (name, body) in methods { Binding.set(L, -1, name, "log.TensorBoard:\(name)", body) }
    lua_rawset(L, -3)
    Binding.set(L, -1, "__gc", "\(meta.name).__gc", { c in LuaVM.releaseObject(c.L, 1, meta: meta); return 0 }, isFinalizer: true)
    Binding.set(L, -1, "__close", "\(meta.name).__close", { c in
      LuaVM.toObject(c.L, 1, meta: meta, as: TensorBoardWriter.self)?.close()
      return 0
    })
    Binding.set(L, -1, "__tostring", "\(meta.name).__tostring", { c in
      let w = try writerObject(c)
      c.push("log.TensorBoard (\(w.path)\(w.isClosed ? ", closed" : ""))")
      return 1
    })
    Binding.protectMetatable(L, -1)
    lg_pop(L, 1)
  }

  static func writerObject(_ c: LuaCall) throws -> TensorBoardWriter {
    guard let w = LuaVM.toObject(c.L, 1, meta: tensorBoardMeta, as: TensorBoardWriter.self) else {
      throw c.typeError(1, "luagan.TensorBoard")
    }
    return w
  }

  /// The writer at argument 1, open.
  static func openWriter(_ c: LuaCall) throws -> TensorBoardWriter {
    let w = try writerObject(c)
    guard !w.isClosed else { throw c.error("the writer of '\(w.path)' is closed") }
    return w
  }

  /// A step: an integer >= 0 (the iteration).
  static func step(_ c: LuaCall, _ i: Int32) throws -> Int {
    let s = try c.integer(i)
    guard s >= 0 else { throw c.argError(i, "step must be >= 0, got \(s)") }
    return s
  }

  /// The {name = number or one-element tensor} table at argument i, sorted by name.
  static func scalarTable(_ c: LuaCall, _ i: Int32) throws -> [(tag: String, value: Double)] {
    guard c.isTable(i) else { throw c.typeError(i, "table of name = number") }
    var out: [(tag: String, value: Double)] = []
    lua_pushnil(c.L)
    while try c.next(i) {
      guard c.isString(-2), case let name = LuaVM.string(c.L, -2), !name.isEmpty else {
        throw c.argError(i, "scalar names must be non-empty strings, got \(c.isString(-2) ? "an empty string" : c.typeName(-2))")
      }
      if c.isNumber(-1) {
        out.append((name, lua_tonumberx(c.L, -1, nil)))
      } else if let t = try LuaVM.toTensor(c.L, -1), t.numel == 1 {
        out.append((name, try t.item()))
      } else {
        let got = c.isTensor(-1) ? "a tensor of shape \(formatShape(try LuaVM.toTensor(c.L, -1)?.shape ?? []))" : c.typeName(-1)
        throw c.argError(i, "scalar '\(name)' is \(got), expected a number or a one-element tensor")
      }
      lg_pop(c.L, 1)
    }
    return out.sorted { $0.tag < $1.tag }
  }

  /// writer:scalars(step, {name = value}), writer:image(step, tag, image, {range = {lo, hi}}),
  /// writer:resume(step), writer:close(), writer:path().
  static func tensorBoardMethods() -> [Fn] {
    [
      ("scalars", { c in
        let w = try openWriter(c), s = try step(c, 2), values = try scalarTable(c, 3)
        if !values.isEmpty { try w.scalars(step: s, values) }
        return 0
      }),
      ("image", { c in
        let w = try openWriter(c), s = try step(c, 2), tag = try c.string(3), x = try c.tensor(4)
        let o = try c.options(5)
        let r = try ImageLib.range(o) ?? (0, 1)
        try o.finish()
        guard !tag.isEmpty else { throw c.argError(3, "tag expected, got an empty string") }
        let (rank, d) = (x.rank, x.shape)
        guard (rank == 3 && (1...4).contains(d[0]) && d[1] > 0 && d[2] > 0) || (rank == 2 && d[0] > 0 && d[1] > 0) else {
          throw c.argError(4, "(C, H, W) image with C in 1..4 or (H, W) image expected, got shape \(formatShape(d))")
        }
        try w.image(step: s, tag: tag, x.detach(), range: r)
        return 0
      }),
      ("resume", { c in
        let w = try openWriter(c)
        try w.resume(step: try step(c, 2))
        return 0
      }),
      ("close", { c in try writerObject(c).close(); return 0 }),
      ("path", { c in c.push(try writerObject(c).path); return 1 }),
    ]
  }
}
