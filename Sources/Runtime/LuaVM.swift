import CLua
import Foundation
import Tensor

/// A Lua 5.4 state with luagan's libraries: `tensor`, `nn`, `optim`, `gan`, `image`, `data`,
/// `metrics` as preloaded globals (and `require`-able). Owns the state; runs scripts, chunks
/// and the REPL, always under lua_pcall with a traceback handler.
public final class LuaVM {
  let L: LuaState
  private let context: UnsafeMutablePointer<lg_Context>
  private var closed = false

  /// Registry keys (string keys, read with rawget so no metamethod can run).
  static let tensorMeta = UserdataKind("luagan.Tensor")
  static let tensorMap = "luagan.tensorMap"

  /// The Lua heap's limit: half the machine's memory, or $LUAGAN_LUA_HEAP_LIMIT bytes (a number
  /// with an optional K, M or G suffix). Past it a script gets Lua's "not enough memory" error.
  static let heapLimit: Int = {
    if let s = ProcessInfo.processInfo.environment["LUAGAN_LUA_HEAP_LIMIT"], let v = parseBytes(s) { return v }
    return MemoryAccounting.maxAllocationBytes / 2
  }()

  /// "512M" -> 536870912; nil when malformed.
  static func parseBytes(_ s: String) -> Int? {
    let units: [Character: Int] = ["K": 10, "M": 20, "G": 30]
    var text = Substring(s.uppercased()), shift = 0
    if let u = text.last, let sh = units[u] { shift = sh; text = text.dropLast() }
    guard let v = Int(text), v > 0, v <= Int.max >> shift else { return nil }
    return v << shift
  }

  /// Live tensor bytes that trigger a full collection, as a backstop to step pacing (Torch7's
  /// soft limit); it grows with what survives a collection.
  static let softLimitBase: Int64 = 512 << 20

  /// Creates a state, opens the standard libraries and luagan's, and sets `package.path` to
  /// search `scriptDir` and the project's `scripts/lib` (and `scripts/dev/lib` for the
  /// development scripts under `scripts/dev`).
  public init(scriptDir: String? = nil) throws {
    context = .allocate(capacity: 1)
    context.initialize(to: lg_Context(dispatch: Bridge.dispatch, gcCarry: 0, softLimit: LuaVM.softLimitBase, sinceCollect: 0,
                                      heapBytes: 0, heapLimit: LuaVM.heapLimit, inSwift: 1))
    guard let L = lg_newstate(context) else { context.deallocate(); throw LuaError(message: "cannot create a Lua state") }
    self.L = L
    luaL_openlibs(L)
    installTensorType()
    TensorLib.install(L)
    NNLib.install(L)
    OptimLib.install(L)
    ImageLib.install(L)
    DataLib.install(L)
    PlotLib.install(L)
    PathsLib.install(L)
    LogLib.install(L)
    MetricsLib.install(L)
    JsonLib.install(L)
    DistLib.install(L)
    try setPackagePath(scriptDir: scriptDir)
    try runPrelude()
  }

  deinit { close() }

  /// Closes the state: every tensor it still holds is released.
  public func close() {
    guard !closed else { return }
    closed = true
    lua_close(L)
    context.deallocate()
  }

  // MARK: - Running code

  /// The outcome of running a chunk: nil on success, or the error message with traceback.
  public typealias Failure = String

  /// Runs a script file with `arg` and `...` set as the standalone `lua` does.
  public func runScript(_ path: String, args: [String], interpreter: String = "luagan") -> Failure? {
    setArgTable(script: path, args: args, interpreter: interpreter)
    guard luaL_loadfilex(L, path, nil) == LUA_OK else { return popString() }
    guard args.count < 100_000, lua_checkstack(L, Int32(args.count) + 8) != 0 else {
      lg_pop(L, 1)
      return "too many arguments (\(args.count))"
    }
    for a in args { lua_pushstring(L, a) }
    lg_catch_sigint(L)
    defer { lg_release_sigint() }
    return lg_docall(L, Int32(args.count), 0) == LUA_OK ? nil : popString()
  }

  /// Runs a chunk of Lua source (for -e and tests).
  public func run(_ source: String, name: String = "=(command line)") -> Failure? {
    guard luaL_loadbufferx(L, source, source.utf8.count, name, nil) == LUA_OK else { return popString() }
    lg_catch_sigint(L)
    defer { lg_release_sigint() }
    return lg_docall(L, 0, 0) == LUA_OK ? nil : popString()
  }

  /// Runs `require(name)` (for -l).
  public func require(_ name: String) -> Failure? {
    run("require(\(Safetensors.luaQuote(name)))", name: "=(require)")
  }

  /// One REPL step: evaluates `line` (as an expression first, as lua.c does) and returns the
  /// printed results, an error, or `.incomplete` when more input is needed.
  public enum ReplResult { case ok(String), error(String), incomplete }
  public func evaluate(_ source: String) -> ReplResult {
    let base = lua_gettop(L)
    var status = luaL_loadbufferx(L, "return " + source, source.utf8.count + 7, "=stdin", nil)
    if status != LUA_OK {
      lg_pop(L, 1)
      status = luaL_loadbufferx(L, source, source.utf8.count, "=stdin", nil)
    }
    if status == LUA_ERRSYNTAX {
      let msg = popString()
      return msg.hasSuffix("<eof>") ? .incomplete : .error(msg)
    }
    if status != LUA_OK { return .error(popString()) }
    lg_catch_sigint(L)
    defer { lg_release_sigint() }
    guard lg_docall(L, 0, LUA_MULTRET) == LUA_OK else { return .error(popString()) }
    let n = lua_gettop(L) - base
    guard n > 0 else { return .ok("") }
    // Format the results with Lua's own tostring, under protection.
    var parts: [String] = []
    for i in 1...n {
      lua_rawgeti(L, lg_registryindex(), lua_Integer(LUA_RIDX_GLOBALS))
      lua_pushstring(L, "tostring")
      lua_rawget(L, -2)
      lg_remove(L, -2)
      lua_pushvalue(L, base + i)
      if lg_pcall(L, 1, 1) == LUA_OK && lua_type(L, -1) == LUA_TSTRING { parts.append(LuaVM.string(L, -1)) } else { parts.append("?") }
      lg_pop(L, 1)
    }
    lua_settop(L, base)
    return .ok(parts.joined(separator: "\t"))
  }

  private func popString() -> String {
    let s = lua_type(L, -1) == LUA_TSTRING ? LuaVM.string(L, -1) : "(error object is a \(LuaVM.typeName(L, -1)) value)"
    lg_pop(L, 1)
    return s
  }

  // MARK: - Set-up

  /// arg[0] is the script, arg[1..n] its arguments, arg[-1] the interpreter (lua.c).
  private func setArgTable(script: String, args: [String], interpreter: String) {
    lua_createtable(L, Int32(args.count), 2)
    lua_pushstring(L, interpreter)
    lua_rawseti(L, -2, -1)
    lua_pushstring(L, script)
    lua_rawseti(L, -2, 0)
    for (i, a) in args.enumerated() {
      lua_pushstring(L, a)
      lua_rawseti(L, -2, lua_Integer(i + 1))
    }
    setGlobal("arg")
  }

  /// globals[name] = top (pops it), without metamethods.
  func setGlobal(_ name: String) {
    lua_rawgeti(L, lg_registryindex(), lua_Integer(LUA_RIDX_GLOBALS))
    lua_pushstring(L, name)
    lua_rotate(L, -3, -1)  // globals, name, value
    lua_rawset(L, -3)
    lg_pop(L, 1)
  }

  /// Pushes globals[name].
  func getGlobal(_ name: String) {
    lua_rawgeti(L, lg_registryindex(), lua_Integer(LUA_RIDX_GLOBALS))
    lua_pushstring(L, name)
    lua_rawget(L, -2)
    lg_remove(L, -2)
  }

  /// The project's root: $LUAGAN_HOME, else the nearest folder above the executable (or, as
  /// a fallback, above this source file) that holds scripts/lib.
  public static var projectRoot: String? = {
    if let env = ProcessInfo.processInfo.environment["LUAGAN_HOME"] { return env }
    var starts: [URL] = []
    if let exe = try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe") {
      starts.append(URL(fileURLWithPath: exe).deletingLastPathComponent())
    }
    starts.append(URL(fileURLWithPath: #filePath).deletingLastPathComponent())
    for start in starts {
      var dir = start
      for _ in 0..<8 {
        if FileManager.default.fileExists(atPath: dir.appendingPathComponent("scripts/lib").path) { return dir.path }
        dir = dir.deletingLastPathComponent()
      }
    }
    return nil
  }()

  private func setPackagePath(scriptDir: String?) throws {
    var prefix: [String] = []
    if let d = scriptDir { prefix += ["\(d)/?.lua", "\(d)/?/init.lua"] }
    if let root = LuaVM.projectRoot {
      // Development tooling (scripts/dev: tests, benchmarks, fuzzing) also finds its own
      // support library; the scripts users run see only scripts/lib.
      let devRoot = URL(fileURLWithPath: "\(root)/scripts/dev").standardizedFileURL.path + "/"
      if let d = scriptDir, (URL(fileURLWithPath: d).standardizedFileURL.path + "/").hasPrefix(devRoot) {
        prefix += ["\(root)/scripts/dev/lib/?.lua"]
      }
      prefix += ["\(root)/scripts/lib/?.lua", "\(root)/scripts/lib/?/init.lua"]
    }
    getGlobal("package")
    lua_pushstring(L, "path")
    lua_rawget(L, -2)
    let old = lua_type(L, -1) == LUA_TSTRING ? LuaVM.string(L, -1) : ""
    lg_pop(L, 1)
    lua_pushstring(L, "path")
    lua_pushstring(L, (prefix + [old]).joined(separator: ";"))
    lua_rawset(L, -3)
    lg_pop(L, 1)
  }

  /// The Lua half of the libraries (module system, gan, ...), compiled into the binary.
  private func runPrelude() throws {
    let parts: [(String, [UInt8])] = [("prelude.lua", PackageResources.prelude_lua), ("nn.lua", PackageResources.nn_lua),
                                      ("optim.lua", PackageResources.optim_lua), ("gan.lua", PackageResources.gan_lua),
                                      ("data.lua", PackageResources.data_lua), ("ckpt.lua", PackageResources.ckpt_lua),
                                      ("log.lua", PackageResources.log_lua), ("metrics.lua", PackageResources.metrics_lua),
                                      ("dist.lua", PackageResources.dist_lua)]
    for (name, bytes) in parts {
      if let failure = run(String(decoding: bytes, as: UTF8.self), name: "=[luagan] " + name) { throw LuaError(message: "\(name): \(failure)") }
    }
  }

  // MARK: - The tensor userdata

  /// registry[key] = an empty table with weak values: a map from Swift objects to their
  /// userdata that does not keep the userdata alive.
  static func createWeakMap(_ L: OpaquePointer, _ key: String) {
    lua_pushstring(L, key)
    lua_createtable(L, 0, 0)
    lua_createtable(L, 0, 1)
    lua_pushstring(L, "v")
    LuaCall(L, "").setField(-2, "__mode")
    lua_setmetatable(L, -2)
    lua_rawset(L, lg_registryindex())
  }

  /// The metatable of tensors: methods first (fast C __index), then fields; arithmetic
  /// metamethods accept a number on either side; __gc and __close release the Swift tensor.
  private func installTensorType() {
    // Weak-valued map from Swift tensor to its userdata, so one tensor has one Lua identity.
    LuaVM.createWeakMap(L, LuaVM.tensorMap)
    _ = luaL_newmetatable(L, LuaVM.tensorMeta.name)
    lg_pop(L, 1)
  }

  static func pushRegistry(_ L: LuaState, _ key: String) {
    lua_pushstring(L, key)
    lua_rawget(L, lg_registryindex())
  }

  /// True when the value at i is a userdata luagan made as `kind` (by its tag, not its
  /// metatable, which a script can change with debug.setmetatable).
  static func isUserdata(_ L: LuaState, _ i: Int32, _ kind: UserdataKind) -> Bool {
    guard lua_type(L, i) == LUA_TUSERDATA, lua_rawlen(L, i) == UserdataKind.blockSize, let ud = lua_touserdata(L, i) else { return false }
    return ud.load(as: UInt64.self) == kind.tag
  }

  /// The object pointer of a luagan userdata at i (nil once released).
  static func boxedPointer(_ L: LuaState, _ i: Int32) -> UnsafeMutableRawPointer? {
    lua_touserdata(L, i)?.load(fromByteOffset: 8, as: UnsafeMutableRawPointer?.self)
  }

  /// Pushes a new userdata of `kind` boxing `pointer` (already retained), with its metatable.
  static func pushBox(_ L: LuaState, _ pointer: UnsafeMutableRawPointer, _ kind: UserdataKind, userValues: Int32 = 0) {
    let ud = lg_newuserdata(L, UserdataKind.blockSize, userValues)!
    ud.storeBytes(of: kind.tag, as: UInt64.self)
    ud.storeBytes(of: pointer, toByteOffset: 8, as: UnsafeMutableRawPointer?.self)
    pushRegistry(L, kind.name)
    lua_setmetatable(L, -2)
  }

  /// Clears the object pointer of the luagan userdata at i (after releasing the object).
  static func clearBox(_ L: LuaState, _ i: Int32) {
    lua_touserdata(L, i)?.storeBytes(of: nil, toByteOffset: 8, as: UnsafeMutableRawPointer?.self)
  }

  /// The tensor at i, nil if it is not a tensor; throws if it was closed.
  static func toTensor(_ L: LuaState, _ i: Int32) throws -> Tensor? {
    guard isUserdata(L, i, tensorMeta) else { return nil }
    guard let p = boxedPointer(L, i) else {
      throw LuaError(message: "attempt to use a closed tensor (released by <close> or free())")
    }
    return Unmanaged<Tensor>.fromOpaque(p).takeUnretainedValue()
  }

  /// Pushes the userdata for `t`, reusing the existing one if Lua already holds it.
  static func pushTensor(_ L: LuaState, _ t: Tensor) {
    let key = Unmanaged.passUnretained(t).toOpaque()
    pushRegistry(L, tensorMap)
    lua_pushlightuserdata(L, key)
    if lua_rawget(L, -2) == LUA_TUSERDATA {
      lg_remove(L, -2)
      return
    }
    lg_pop(L, 1)
    pushBox(L, Unmanaged.passRetained(t).toOpaque(), tensorMeta)
    lua_pushlightuserdata(L, key)
    lua_pushvalue(L, -2)
    lua_rawset(L, -4)
    lg_remove(L, -2)
  }

  /// Releases the Swift tensor behind the userdata at i (idempotent; __gc, __close, free).
  static func releaseTensor(_ L: LuaState, _ i: Int32, unmap: Bool) {
    guard isUserdata(L, i, tensorMeta), let p = boxedPointer(L, i) else { return }
    if unmap {
      pushRegistry(L, tensorMap)
      lua_pushlightuserdata(L, p)
      lua_pushnil(L)
      lua_rawset(L, -3)
      lg_pop(L, 1)
    }
    clearBox(L, i)
    Unmanaged<Tensor>.fromOpaque(p).release()
  }

  static func string(_ L: LuaState, _ i: Int32) -> String {
    var len = 0
    guard let p = lua_tolstring(L, i, &len) else { return "" }
    return String(decoding: UnsafeRawBufferPointer(start: p, count: len), as: UTF8.self)
  }

  static func typeName(_ L: LuaState, _ i: Int32) -> String {
    let t = lua_type(L, i)
    if t == LUA_TUSERDATA || t == LUA_TTABLE, lua_getmetatable(L, i) != 0 {
      lua_pushstring(L, "__name")
      lua_rawget(L, -2)
      defer { lg_pop(L, 2) }
      if lua_type(L, -1) == LUA_TSTRING { return string(L, -1) }
    }
    return String(cString: lua_typename(L, t))
  }

  // MARK: - Collector pacing (DESIGN.md house decision 3)

  /// A full collection, charged to "(collector)" in `tensor.profile`.
  static func collect(_ L: LuaState) { Profiler.charge("(collector)") { lg_gc_collect(L) } }

  /// A backward pass has just freed its graph: the forward's activations are now held only by
  /// Lua values that went out of scope. When they are big, collect them now, before the next
  /// step allocates its own (otherwise a GAN step's peak holds two steps of activations).
  static func collectAfterBackward(_ L: LuaState) {
    guard MemoryAccounting.liveBytes >= collectAfterBackwardBytes else { return }
    collect(L)
    let ctx = lg_context(L)!
    ctx.pointee.sinceCollect = 0
    ctx.pointee.softLimit = Swift.max(softLimitBase, Int64(MemoryAccounting.liveBytes) * 3 / 2)
  }
  static let collectAfterBackwardBytes = 64 << 20

  /// With recording off (sampling, evaluation, `tensor.noGrad`) only Lua values hold a
  /// forward's intermediates, and one a script has just overwritten (`h = bn(h)`) is garbage
  /// that the debt-paced steps would free only after the next op has allocated its own output.
  /// So before such an op runs, once the bytes allocated since the last full collection pass a
  /// quarter of the live bytes (64 MiB at least), everything dead is collected first: a forward
  /// then peaks at the activations it holds, not at those plus the ones it dropped.
  static func collectBeforeUnrecordedCall(_ L: LuaState) {
    guard !GradMode.isEnabled else { return }
    let ctx = lg_context(L)!
    guard ctx.pointee.sinceCollect >= collectBeforeCallBytes else { return }
    collect(L)
    ctx.pointee.sinceCollect = 0
  }
  static let collectBeforeCallBytes: Int64 = 64 << 20
  /// Makes the next op run with recording off collect first.
  static func collectSoon(_ L: LuaState) {
    let ctx = lg_context(L)!
    ctx.pointee.sinceCollect = Swift.max(ctx.pointee.sinceCollect, collectBeforeCallBytes)
  }

  /// Turns tensor bytes allocated since the last call into collector debt; runs a full
  /// collection when live tensor bytes pass the soft limit.
  static func reportAllocations(_ L: LuaState) {
    let bytes = MemoryAccounting.takePendingBytes()
    guard bytes > 0 else { return }
    let ctx = lg_context(L)!
    ctx.pointee.gcCarry += Int64(bytes)
    ctx.pointee.sinceCollect += Int64(bytes)
    if ctx.pointee.gcCarry >= 64 << 10 {
      let kb = ctx.pointee.gcCarry >> 10
      ctx.pointee.gcCarry &= 1023
      Profiler.charge("(collector)") { lg_gc_step(L, Int32(clamping: kb)) }
    }
    let live = Int64(MemoryAccounting.liveBytes)
    if live > ctx.pointee.softLimit {
      collect(L)
      ctx.pointee.sinceCollect = 0
      let after = Int64(MemoryAccounting.liveBytes)
      ctx.pointee.softLimit = Swift.max(softLimitBase, after + after / 2)
    }
  }
}

/// A kind of userdata luagan makes: its metatable's registry name, and the tag each block of
/// that kind starts with. A block is [tag][object pointer]; the tag mixes in a number drawn at
/// start-up that no script can write into a userdata, so a foreign userdata given a luagan
/// metatable (a file handle, through debug.setmetatable) is never taken for one of ours.
struct UserdataKind {
  let name: String
  let tag: UInt64
  static let blockSize = 16
  static let secret = UInt64.random(in: 1...UInt64.max)

  init(_ name: String) {
    self.name = name
    var h: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a of the name, so kinds differ
    for b in name.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    tag = h ^ UserdataKind.secret
  }
}

extension Safetensors {
  /// A Lua string literal for `s`.
  static func luaQuote(_ s: String) -> String {
    "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"").replacingOccurrences(of: "\n", with: "\\n") + "\""
  }
}
