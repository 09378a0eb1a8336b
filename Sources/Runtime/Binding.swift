import CLua

/// How Swift functions become Lua values: a body (a `BindingBody`, run through the trampoline of
/// house decision 2) set under a key of a table, a table of them installed as a global library,
/// and metatables locked against getmetatable/setmetatable. Every library in Runtime builds on
/// these; bindings whose names start with "_" are helpers that the library's Lua half
/// (Sources/Runtime/lua) takes and hides.
enum Binding {
  typealias Fn = (String, BindingBody)

  /// A table of `fns` set as the global `name` (image, data, plot, paths, log, ...).
  static func installLibrary(_ L: LuaState, _ name: String, _ fns: [Fn]) {
    lua_createtable(L, 0, Int32(fns.count))
    for (fname, body) in fns { set(L, -1, fname, "\(name).\(fname)", body) }
    setGlobal(L, name)
  }

  static func set(_ L: LuaState, _ table: Int32, _ key: String, _ qualified: String, _ body: @escaping BindingBody,
                  isFinalizer: Bool = false) {
    let t = lua_absindex(L, table)
    lua_pushstring(L, key)
    lg_pushbinding(L, Bridge.register(qualified, isFinalizer: isFinalizer, body))
    lua_rawset(L, t)
  }

  /// metatable.__metatable = false: getmetatable and setmetatable refuse to show or replace it.
  static func protectMetatable(_ L: LuaState, _ meta: Int32) {
    let m = lua_absindex(L, meta)
    lua_pushstring(L, "__metatable")
    lua_pushboolean(L, 0)
    lua_rawset(L, m)
  }

  static func setGlobal(_ L: LuaState, _ name: String) {
    lua_rawgeti(L, lg_registryindex(), lua_Integer(LUA_RIDX_GLOBALS))
    lua_pushstring(L, name)
    lua_rotate(L, -3, -1)
    lua_rawset(L, -3)
    lg_pop(L, 1)
  }
}
