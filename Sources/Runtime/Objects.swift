import CLua
import Foundation
import Layers
import Tensor

/// Userdata boxing Swift objects other than tensors: modules (with a user value table for
/// their Lua-side fields), optimizers and EMAs. One metatable per kind, named in the registry.
extension LuaVM {
  static let moduleMeta = UserdataKind("luagan.Module")
  static let moduleMap = "luagan.moduleMap"
  static let moduleClasses = "luagan.moduleClasses"
  static let optimizerMeta = UserdataKind("luagan.Optimizer")
  static let emaMeta = UserdataKind("luagan.EMA")

  /// Pushes a new userdata boxing `object` (retained), with `userValues` user values.
  static func pushObject(_ L: LuaState, _ object: AnyObject, meta: UserdataKind, userValues: Int32 = 0) {
    pushBox(L, Unmanaged.passRetained(object).toOpaque(), meta, userValues: userValues)
  }

  /// The object at i if it is a userdata of kind `meta`; nil otherwise.
  static func toObject<T: AnyObject>(_ L: LuaState, _ i: Int32, meta: UserdataKind, as: T.Type) -> T? {
    guard isUserdata(L, i, meta), let p = boxedPointer(L, i) else { return nil }
    return Unmanaged<AnyObject>.fromOpaque(p).takeUnretainedValue() as? T
  }

  static func releaseObject(_ L: LuaState, _ i: Int32, meta: UserdataKind) {
    guard isUserdata(L, i, meta), let p = boxedPointer(L, i) else { return }
    clearBox(L, i)
    Unmanaged<AnyObject>.fromOpaque(p).release()
  }

  /// Pushes the userdata of module `m`: the existing one if Lua holds it, else a new one whose
  /// user value table names its class (registry of classes by type name, nn.Module otherwise).
  static func pushModule(_ L: LuaState, _ m: Module) {
    let key = Unmanaged.passUnretained(m).toOpaque()
    pushRegistry(L, moduleMap)
    lua_pushlightuserdata(L, key)
    if lua_rawget(L, -2) == LUA_TUSERDATA { lg_remove(L, -2); return }
    lg_pop(L, 1)
    pushObject(L, m, meta: moduleMeta, userValues: 1)
    lua_createtable(L, 0, 4)
    lua_pushstring(L, "__class")
    pushRegistry(L, moduleClasses)
    if lua_type(L, -1) == LUA_TTABLE {
      lua_pushstring(L, m.typeName)
      if lua_rawget(L, -2) != LUA_TTABLE {
        lg_pop(L, 1)
        lua_pushstring(L, "Module")
        lua_rawget(L, -2)
      }
      lg_remove(L, -2)
    }
    lua_rawset(L, -3)
    _ = lg_setuservalue(L, -2)
    lua_pushlightuserdata(L, key)
    lua_pushvalue(L, -2)
    lua_rawset(L, -4)
    lg_remove(L, -2)
  }

  static func toModule(_ L: LuaState, _ i: Int32) -> Module? { toObject(L, i, meta: moduleMeta, as: Module.self) }

  /// uservalue[key] = value at the top (popped), for the module userdata at i.
  static func setModuleField(_ L: LuaState, _ i: Int32, _ key: String) {
    let idx = lua_absindex(L, i)
    guard lg_getuservalue(L, idx) == LUA_TTABLE else { lg_pop(L, 2); return }
    lua_pushstring(L, key)
    lua_rotate(L, -3, -1)   // uv, key, value
    lua_rawset(L, -3)
    lg_pop(L, 1)
  }
}

extension LuaCall {
  func module(_ i: Int32) throws -> Module {
    guard let m = LuaVM.toModule(L, i) else {
      if LuaVM.isUserdata(L, i, LuaVM.moduleMeta) { throw argError(i, "the module was released") }
      throw typeError(i, "luagan.Module")
    }
    return m
  }
  func push(_ m: Module) { LuaVM.pushModule(L, m) }
}
