import CLua
import Foundation
import Media
import Tensor

/// `plot`: line plots as PNG (Sources/Media).
enum PlotLib {
  typealias Fn = Binding.Fn

  static func install(_ L: LuaState) { Binding.installLibrary(L, "plot", plotBindings()) }

  static func numbers(_ c: LuaCall, _ i: Int32, _ what: String) throws -> [Double] {
    if let t = try LuaVM.toTensor(c.L, i) { return try t.detach().reshape([-1]).toArray() }
    guard lua_type(c.L, i) == LUA_TTABLE else { throw c.error("\(what) must be a table of numbers or a tensor, got \(c.typeName(i))") }
    let n = Int(lua_rawlen(c.L, i))
    var out: [Double] = []   // not reserved: lua_rawlen is a border, not a count
    for k in 0..<n {
      lua_rawgeti(c.L, i, lua_Integer(k + 1))
      defer { lg_pop(c.L, 1) }
      guard lua_type(c.L, -1) == LUA_TNUMBER else { throw c.error("\(what)[\(k + 1)] is \(c.typeName(-1)), expected a number") }
      out.append(lua_tonumberx(c.L, -1, nil))
    }
    return out
  }

  static func plotBindings() -> [Fn] {
    [
      ("lines", { c in
        let path = try c.string(1)
        guard c.isTable(2) else { throw c.typeError(2, "list of series {name=, y=, x=}") }
        var series: [Plot.Series] = []
        for k in 0..<Int(lua_rawlen(c.L, 2)) {
          lua_rawgeti(c.L, 2, lua_Integer(k + 1))
          let st = lua_gettop(c.L)
          guard lua_type(c.L, st) == LUA_TTABLE else { throw c.argError(2, "series \(k + 1) is \(c.typeName(st)), expected {name=, y=, x=}") }
          let so = Options(call: c, index: st)
          let name = try so.string("name") ?? ""
          guard so.has("y") else { throw c.argError(2, "series \(k + 1) has no y values") }
          lua_pushstring(c.L, "y"); lua_rawget(c.L, st)
          let y = try numbers(c, lua_gettop(c.L), "series \(k + 1) y"); lg_pop(c.L, 1)
          var x = (0..<y.count).map { Double($0 + 1) }
          if so.has("x") { lua_pushstring(c.L, "x"); lua_rawget(c.L, st); x = try numbers(c, lua_gettop(c.L), "series \(k + 1) x"); lg_pop(c.L, 1) }
          var labels: [String] = []
          if so.has("labels") {
            lua_pushstring(c.L, "labels"); lua_rawget(c.L, st)
            let lt = lua_gettop(c.L)
            for j in 0..<Swift.min(Int(lua_rawlen(c.L, lt)), y.count) {   // a label per point at most
              lua_rawgeti(c.L, lt, lua_Integer(j + 1))
              labels.append(lua_type(c.L, -1) == LUA_TSTRING || lua_type(c.L, -1) == LUA_TNUMBER ? LuaVM.string(c.L, -1) : "")
              lg_pop(c.L, 1)
            }
            lg_pop(c.L, 1)
          }
          try so.finish()
          series.append(Plot.Series(name: name, x: x, y: y, labels: labels))
          lg_pop(c.L, 1)
        }
        let o = try c.options(3)
        var opts = Plot.Options()
        opts.title = try o.string("title") ?? ""
        opts.xlabel = try o.string("xlabel") ?? ""
        opts.ylabel = try o.string("ylabel") ?? ""
        opts.logy = try o.bool("logy", false)
        opts.width = try o.integer("width", 960)
        opts.height = try o.integer("height", 600)
        try o.finish()
        try Plot.lines(path: path, series: series, options: opts)
        return 0
      }),
    ]
  }
}
