import CLua

/// The small libraries bound one file each (image, data, plot, paths, log, ckpt's helpers):
/// a table of bindings set as a global. Bindings whose names start with "_" are helpers that
/// the library's Lua half (Sources/Runtime/lua) takes and hides.
enum Libraries {
  static func install(_ L: LuaState, _ name: String, _ fns: [TensorLib.Fn]) {
    lua_createtable(L, 0, Int32(fns.count))
    for (fname, body) in fns { TensorLib.setBinding(L, -1, fname, "\(name).\(fname)", body) }
    TensorLib.setGlobal(L, name)
  }
}
