import CLua
import Foundation
import Media
import Tensor

/// `image`: PNG files in and out, sample sheets and resizing (Sources/Media).
enum ImageLib {
  typealias Fn = Binding.Fn

  static func install(_ L: LuaState) { Binding.installLibrary(L, "image", imageBindings()) }

  static func range(_ o: Options, _ key: String = "range") throws -> (Double, Double)? {
    guard o.has(key) else { return nil }
    lua_pushstring(o.L, key)
    lua_rawget(o.L, o.index)
    defer { lg_pop(o.L, 1) }
    let t = lua_gettop(o.L)
    guard lua_type(o.L, t) == LUA_TTABLE, lua_rawlen(o.L, t) == 2 else { throw o.call.error("option '\(key)' must be a pair {lo, hi}") }
    var r: [Double] = []
    for k in 1...2 {
      lua_rawgeti(o.L, t, lua_Integer(k))
      guard lua_type(o.L, -1) == LUA_TNUMBER else { lg_pop(o.L, 1); throw o.call.error("option '\(key)' must hold two numbers") }
      r.append(lua_tonumberx(o.L, -1, nil))
      lg_pop(o.L, 1)
    }
    guard r[1] > r[0] else { throw o.call.error(String(format: "option '%@' {%g, %g} is empty", key, r[0], r[1])) }
    return (r[0], r[1])
  }

  static func imageBindings() -> [Fn] {
    [
      ("load", { c in
        let path = try c.string(1)
        let o = try c.options(2)
        let maxPixels = try o.integer("maxPixels", Images.defaultMaxPixels)
        try o.finish()
        guard maxPixels > 0 else { throw c.error("option 'maxPixels' must be positive, got \(maxPixels)") }
        c.push(try Images.load(path, maxPixels: maxPixels))
        return 1
      }),
      ("save", { c in
        let path = try c.string(1), x = try c.tensor(2)
        let o = try c.options(3)
        let r = try range(o) ?? (0, 1)
        // JPEG only (by the name's extension): quality 1-100, chroma subsampling
        let quality = try o.integer("quality", 95), subsampling = try o.string("subsampling") ?? "444"
        try o.finish()
        try Images.save(x.detach(), to: path, range: r, quality: quality, subsampling: subsampling)
        return 0
      }),
      ("grid", { c in
        let batch = try c.tensor(1)
        let o = try c.options(2)
        let nrow = try o.integer("nrow", 8), padding = try o.integer("padding", 2), padValue = try o.number("padValue", 0)
        let r = try range(o)
        var labels: [String] = []
        if o.has("rowLabels") {     // a name beside each row of the sheet (class names)
          lua_pushstring(c.L, "rowLabels"); lua_rawget(c.L, o.index)
          defer { lg_pop(c.L, 1) }
          let t = lua_gettop(c.L)
          guard lua_type(c.L, t) == LUA_TTABLE else { throw c.error("option 'rowLabels' must be a list of strings") }
          for k in 1...Swift.max(1, Swift.min(Int(lua_rawlen(c.L, t)), 4096)) where k <= Int(lua_rawlen(c.L, t)) {
            lua_rawgeti(c.L, t, lua_Integer(k))
            defer { lg_pop(c.L, 1) }
            guard lua_type(c.L, -1) == LUA_TSTRING || lua_type(c.L, -1) == LUA_TNUMBER else {
              throw c.error("option 'rowLabels': entry \(k) is \(c.typeName(-1)), expected a string")
            }
            labels.append(LuaVM.string(c.L, -1))
          }
        }
        try o.finish()
        var b = batch.detach()
        if let (lo, hi) = r { b = try b.sub(Tensor.scalar(lo, dtype: b.dtype)).div(Tensor.scalar(hi - lo, dtype: b.dtype)).clamp(min: 0, max: 1) }
        c.push(try Images.grid(b, nrow: nrow, padding: padding, padValue: padValue, rowLabels: labels))
        return 1
      }),
      ("resize", { c in
        let x = try c.tensor(1)
        var h = 0, w = 0
        if c.isTable(2) {
          let s = try c.intList(2, what: "size")
          guard s.count == 2 else { throw c.argError(2, "size must be a number or {height, width}") }
          (h, w) = (s[0], s[1])
        } else { h = try c.integer(2); w = h }
        let o = try c.options(3)
        let modeName = try o.string("mode") ?? "bilinear"
        try o.finish()
        guard let mode = Images.ResizeMode(rawValue: modeName) else {
          throw c.error("option 'mode' must be 'box', 'nearest' or 'bilinear', got '\(modeName)'")
        }
        c.push(try Images.resize(x.detach(), height: h, width: w, mode: mode))
        return 1
      }),
    ]
  }
}
