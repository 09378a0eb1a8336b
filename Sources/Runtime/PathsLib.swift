import CLua
import Foundation
import Tensor

/// `paths`: files and folders through the OS, never a shell (as Torch7's paths package).
enum PathsLib {
  typealias Fn = Binding.Fn

  static func install(_ L: LuaState) { Binding.installLibrary(L, "paths", fileBindings()) }

  static func fileBindings() -> [Fn] {
    [
      ("mkdir", { c in try ensureDirectory(c.string(1)); return 0 }),
      ("exists", { c in
        var isDir: ObjCBool = false
        let e = FileManager.default.fileExists(atPath: try c.string(1), isDirectory: &isDir)
        c.push(e); c.push(isDir.boolValue)
        return 2
      }),
      ("list", { c in
        let path = try c.string(1)
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: path) } catch {
          throw c.error("cannot list folder '\(path)': \(error.localizedDescription)")
        }
        lua_createtable(c.L, Int32(names.count), 0)
        for (i, n) in names.sorted().enumerated() { c.push(n); lua_rawseti(c.L, -2, lua_Integer(i + 1)) }
        return 1
      }),
      ("remove", { c in
        let p = try c.string(1)
        let last = URL(fileURLWithPath: p).standardizedFileURL.path
        guard !p.isEmpty, last != "/", !p.hasSuffix("/."), !p.hasSuffix("/.."), p != ".", p != ".." else {
          throw c.argError(1, "refusing to remove '\(p)'")
        }
        if FileManager.default.fileExists(atPath: p) {
          do { try FileManager.default.removeItem(atPath: p) } catch { throw c.error("cannot remove '\(p)': \(error.localizedDescription)") }
        }
        return 0
      }),
      ("rename", { c in
        let a = try c.string(1), b = try c.string(2)
        guard rename(a, b) == 0 else { throw c.error("cannot rename '\(a)' to '\(b)': \(String(cString: strerror(errno)))") }
        return 0
      }),
      ("fsync", { c in
        let p = try c.string(1)
        let fd = open(p, O_RDONLY)
        guard fd >= 0 else { throw c.error("cannot open '\(p)': \(String(cString: strerror(errno)))") }
        _ = fsync(fd)
        close(fd)
        return 0
      }),
      ("writeText", { c in
        let p = try c.string(1), s = try c.string(2)
        try writeAtomically(Data(s.utf8), to: p)
        return 0
      }),
      ("readText", { c in
        let p = try c.string(1)
        let d = try readRegularFile(p, what: "readText", limit: 1 << 30, copies: 3)   // the bytes, a String, the Lua string
        try c.reserveHeap(d.count * 2)
        c.push(String(decoding: d, as: UTF8.self))
        return 1
      }),
    ]
  }
}
