import CLua
import Foundation
import Tensor

/// `json`: Lua values to JSON text and back, over Tensor's JSON (the one implementation).
/// Lua's integers and floats stay apart; non-finite floats are written {"__number": "nan"};
/// tables with keys other than 1..n or strings are written {"__pairs": [[k, v], ...]}; string
/// keys are sorted, so the text is the same for the same table. Cycles and depth are errors.
enum JsonLib {
  typealias Fn = Binding.Fn

  static func install(_ L: LuaState) {
    let fns: [Fn] = [
      ("encode", { c in
        let o = try c.isNil(2) ? nil : c.integer(2)
        if let o, !(0...16).contains(o) { throw c.argError(2, "indent must be an integer in 0..16, got \(o)") }
        guard c.argc >= 1 else { throw c.argError(1, "value expected") }
        var open = Set<UnsafeRawPointer>()
        var size = 0
        let tree = try encode(c, 1, open: &open, depth: 0, size: &size)
        try Storage.checkAllocatable(count: size, elementBytes: 3, what: "json.encode's text")   // the tree, the text, the Lua string
        let text = try tree.serialized(indent: o)
        try c.reserveHeap(text.utf8.count * 2)
        c.push(text)
        return 1
      }),
      ("decode", { c in
        let text = try c.string(1)
        let name = c.isNil(2) ? "JSON" : try c.string(2)
        try decodeAndPush(c, try JSON.parse(Array(text.utf8), name: name))
        return 1
      }),
    ]
    lua_createtable(L, 0, Int32(fns.count))
    for (name, body) in fns { Binding.set(L, -1, name, "json.\(name)", body) }
    Binding.setGlobal(L, "json")
  }

  /// The Lua value at `i` as JSON.
  /// `size` counts what the JSON will take (a table shared many times is written each time, so
  /// a few small tables can stand for billions of values): past `maxEncodedBytes` it stops.
  static let maxEncodedBytes = 1 << 30

  static func encode(_ c: LuaCall, _ i: Int32, open: inout Set<UnsafeRawPointer>, depth: Int, size: inout Int) throws -> JSON {
    let L = c.L
    size += 16 + (lua_type(L, i) == LUA_TSTRING ? Int(lua_rawlen(L, i)) : 0)
    guard size <= maxEncodedBytes else {
      throw c.error("the value would take more than \(maxEncodedBytes >> 20) MiB of JSON (a table shared many times is written each time)")
    }
    switch lua_type(L, i) {
    case LUA_TNIL, LUA_TNONE: return .null
    case LUA_TBOOLEAN: return .bool(lua_toboolean(L, i) != 0)
    case LUA_TSTRING: return .string(LuaVM.string(L, i))
    case LUA_TNUMBER:
      var isInt: Int32 = 0
      let v = lua_tointegerx(L, i, &isInt)
      if isInt != 0 && lua_isinteger(L, i) != 0 { return .int(Int(v)) }
      let d = lua_tonumberx(L, i, nil)
      if d.isFinite { return .double(d) }
      return .object([("__number", .string(d.isNaN ? "nan" : (d > 0 ? "inf" : "-inf")))])
    case LUA_TTABLE:
      let t = lua_absindex(L, i)
      guard let id = lua_topointer(L, t) else { return .null }
      guard !open.contains(id) else { throw c.error("cannot encode a table that contains itself") }
      guard depth < JSON.maxDepth else { throw c.error("tables nested more than \(JSON.maxDepth) deep") }
      open.insert(id)
      defer { open.remove(id) }
      try c.reserve(8)
      // One walk: every key and value, as JSON, in table order (sorted below).
      var strings: [(String, JSON)] = [], others: [(JSON, JSON, String)] = [], maxInt = 0, ints = 0
      lua_pushnil(L)
      while try c.next(t) {
        let value = try encode(c, -1, open: &open, depth: depth + 1, size: &size)
        if lua_type(L, -2) == LUA_TSTRING {
          strings.append((LuaVM.string(L, -2), value))
        } else {
          let key = try encode(c, -2, open: &open, depth: depth + 1, size: &size)
          if case .int(let k) = key, k >= 1 { ints += 1; maxInt = Swift.max(maxInt, k) }
          lua_pushvalue(L, -2)
          let sortKey = lua_type(L, -1) == LUA_TNUMBER ? String(format: "%020.6f", lua_tonumberx(L, -1, nil)) : LuaVM.string(L, -1)
          lg_pop(L, 1)
          others.append((key, value, sortKey))
        }
        lg_pop(L, 1)
      }
      if strings.isEmpty && !others.isEmpty && ints == others.count && maxInt == ints {  // a sequence 1..n
        var items = [JSON](repeating: .null, count: maxInt)
        for (k, v, _) in others { if case .int(let idx) = k { items[idx - 1] = v } }
        return .array(items)
      }
      if others.isEmpty { return .object(strings.sorted { $0.0 < $1.0 }) }
      // Mixed or non-string keys: tagged pairs, in a stable order.
      let all = strings.map { (JSON.string($0.0), $0.1, $0.0) } + others
      return .object([("__pairs", .array(all.sorted { $0.2 < $1.2 }.map { .array([$0.0, $0.1]) }))])
    default:
      throw c.error("cannot encode a \(c.typeName(i))")
    }
  }

  /// Pushes the Lua value of `v` (tagged numbers and pairs are undone).
  static func decodeAndPush(_ c: LuaCall, _ v: JSON) throws {
    let L = c.L
    try c.reserve(8)
    switch v {
    case .null: lua_pushnil(L)
    case .bool(let b): lua_pushboolean(L, b ? 1 : 0)
    case .int(let i): lua_pushinteger(L, lua_Integer(i))
    case .double(let d): lua_pushnumber(L, d)
    case .string(let s):
      try c.reserveHeap(s.utf8.count + 32)
      lua_pushstring(L, s)
    case .array(let items):
      try c.reserveHeap(items.count * 16 + 64)
      lua_createtable(L, Int32(clamping: items.count), 0)
      for (k, item) in items.enumerated() {
        try decodeAndPush(c, item)
        lua_rawseti(L, -2, lua_Integer(k + 1))
      }
    case .object(let members):
      if members.count == 1, case .string(let tag) = members[0].1, members[0].0 == "__number" {
        lua_pushnumber(L, tag == "nan" ? .nan : (tag == "inf" ? .infinity : -.infinity))
        return
      }
      if members.count == 1, members[0].0 == "__pairs", case .array(let pairs) = members[0].1 {
        lua_createtable(L, 0, Int32(clamping: pairs.count))
        for p in pairs {
          guard case .array(let kv) = p, kv.count == 2, kv[0] != .null else { throw c.error("bad __pairs entry in JSON") }
          try decodeAndPush(c, kv[0])
          try decodeAndPush(c, kv[1])
          if lua_type(L, -2) == LUA_TNUMBER, lua_tonumberx(L, -2, nil).isNaN { throw c.error("a NaN table key in JSON") }
          lua_rawset(L, -3)
        }
        return
      }
      try c.reserveHeap(members.count * 40 + 64)
      lua_createtable(L, 0, Int32(clamping: members.count))
      for (k, item) in members {
        lua_pushstring(L, k)
        try decodeAndPush(c, item)
        lua_rawset(L, -3)
      }
    }
  }
}
