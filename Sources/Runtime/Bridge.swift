import CLua
import Foundation
import Tensor

/// The bridge between Lua and Swift (DESIGN.md house decision 2): every Swift function Lua can call is a
/// `BindingBody` that reads its arguments through `LuaCall`, pushes its results, and returns
/// their count, or throws. It never calls a Lua API function that can raise. The C trampoline
/// (Sources/CLua/shim.h) turns a thrown error into a Lua error after the Swift frame is gone.

typealias LuaState = OpaquePointer

/// An error for Lua; the trampoline prefixes the caller's "chunk:line:".
struct LuaError: Error { let message: String }

typealias BindingBody = (LuaCall) throws -> Int32

/// Every Swift binding, by id; ids are shared by all Lua states of the process.
enum Bridge {
  struct Entry { let name: String; let body: BindingBody; let isFinalizer: Bool }
  nonisolated(unsafe) static var entries: [Entry] = []
  nonisolated(unsafe) static var ids: [String: Int32] = [:]
  static let lock = NSLock()

  /// The id for `qualifiedName`, registering `body` the first time.
  static func register(_ qualifiedName: String, isFinalizer: Bool = false, _ body: @escaping BindingBody) -> Int32 {
    lock.lock()
    defer { lock.unlock() }
    if let id = ids[qualifiedName] { return id }
    entries.append(Entry(name: qualifiedName, body: body, isFinalizer: isFinalizer))
    let id = Int32(entries.count - 1)
    ids[qualifiedName] = id
    return id
  }

  /// The function the trampoline calls.
  static let dispatch: lg_Dispatch = { L, id in
    let L = L!
    let entry = Bridge.entries[Int(id)]
    var result: Int32
    if !entry.isFinalizer { LuaVM.collectBeforeUnrecordedCall(L) }
    do {
      result = try entry.body(LuaCall(L, entry.name))
    } catch let e as LuaError {
      lua_pushstring(L, e.message)
      result = Int32(LG_ERROR)
    } catch let e as TensorError {
      lua_pushstring(L, e.message)
      result = Int32(LG_ERROR)
    } catch {
      lua_pushstring(L, "\(entry.name): \(error)")
      result = Int32(LG_ERROR)
    }
    // Pace the collector by tensor bytes (DESIGN.md house decision 3); never from inside a finalizer.
    if !entry.isFinalizer { LuaVM.reportAllocations(L) }
    return result
  }
}

/// The arguments and results of one call from Lua, with lauxlib-style checks that throw.
struct LuaCall {
  let L: LuaState
  let name: String

  init(_ L: LuaState, _ name: String) { self.L = L; self.name = name }

  var argc: Int32 { lua_gettop(L) }
  func type(_ i: Int32) -> Int32 { lua_type(L, i) }
  func isNil(_ i: Int32) -> Bool { lua_type(L, i) <= 0 }
  func isTable(_ i: Int32) -> Bool { lua_type(L, i) == LUA_TTABLE }
  func isNumber(_ i: Int32) -> Bool { lua_type(L, i) == LUA_TNUMBER }
  func isString(_ i: Int32) -> Bool { lua_type(L, i) == LUA_TSTRING }
  func isTensor(_ i: Int32) -> Bool { LuaVM.isUserdata(L, i, LuaVM.tensorMeta) }

  /// The type name for messages: `__name` for userdata with one (luagan.Tensor), else Lua's.
  func typeName(_ i: Int32) -> String { LuaVM.typeName(L, i) }

  /// "bad argument #i to 'name' (msg)", counting as Lua does for method calls.
  func argError(_ i: Int32, _ msg: String) -> LuaError {
    var isMethod: Int32 = 0
    let called = lg_callname(L, &isMethod).map { String(cString: $0) }
    var arg = i
    if isMethod != 0 {
      arg -= 1
      if arg == 0 { return LuaError(message: "calling '\(called ?? name)' on bad self (\(msg))") }
    }
    return LuaError(message: "bad argument #\(arg) to '\(called ?? name)' (\(msg))")
  }

  func typeError(_ i: Int32, _ expected: String) -> LuaError {
    argError(i, "\(expected) expected, got \(i > argc ? "no value" : typeName(i))")
  }

  /// An error about the call as a whole, prefixed with the function's name.
  func error(_ msg: String) -> LuaError { LuaError(message: "\(shortName): \(msg)") }
  var shortName: String { name.split(separator: ".").last.map(String.init) ?? name }

  /// One step of a table walk (lua_next, protected): true with the key and value pushed, false
  /// at the end. An error during the walk (Ctrl-C's hook) is thrown, never taken for the end.
  func next(_ t: Int32) throws -> Bool {
    switch lg_pnext(L, t) {
    case 1: return true
    case 0: return false
    default:
      let msg = lua_type(L, -1) == LUA_TSTRING ? LuaVM.string(L, -1) : "error during a table walk"
      lg_pop(L, 1)
      throw LuaError(message: msg)
    }
  }

  /// Makes room for `n` more values on the Lua stack, or throws (a script nested so deep that
  /// the stack cannot grow).
  func reserve(_ n: Int) throws {
    guard n <= 1_000_000, lua_checkstack(L, Int32(n)) != 0 else {
      throw error("stack overflow: cannot make room for \(n) values on the Lua stack")
    }
  }

  /// Throws unless the Lua heap can grow by `bytes` within its limit: Swift building a Lua
  /// value of a size that came from data must not exhaust the heap (it would abort).
  func reserveHeap(_ bytes: Int) throws {
    let ctx = lg_context(L)!.pointee
    guard bytes >= 0, bytes <= ctx.heapLimit, ctx.heapBytes <= ctx.heapLimit - bytes else {
      let limit = Storage.humanBytes(Int(ctx.heapLimit))
      throw error("not enough memory: \(Storage.humanBytes(bytes)) more for the Lua heap would pass its limit of \(limit) (LUAGAN_LUA_HEAP_LIMIT)")
    }
    // and the process's own limits: a Lua allocation that fails while Swift runs cannot be
    // turned into a Lua error there (house decision 2), so it must not be tried
    do {
      try Storage.checkAllocatable(count: bytes, elementBytes: 1, what: "\(Storage.humanBytes(bytes)) of Lua values")
    } catch let e as TensorError {
      throw error("not enough memory: \(e.message)")
    }
  }

  // MARK: - Readers

  func tensor(_ i: Int32) throws -> Tensor {
    guard let t = try LuaVM.toTensor(L, i) else { throw typeError(i, "luagan.Tensor") }
    return t
  }
  func optTensor(_ i: Int32) throws -> Tensor? { isNil(i) ? nil : try tensor(i) }

  /// A tensor, or a number made into a 0-d tensor of `like`'s dtype.
  func tensorOrNumber(_ i: Int32, like: Tensor?) throws -> Tensor {
    if isNumber(i) { return try Tensor.scalar(lua_tonumberx(L, i, nil), dtype: like?.dtype ?? .float32) }
    guard let t = try LuaVM.toTensor(L, i) else { throw typeError(i, "luagan.Tensor or number") }
    return t
  }

  func number(_ i: Int32) throws -> Double {
    guard isNumber(i) else { throw typeError(i, "number") }
    return lua_tonumberx(L, i, nil)
  }
  func optNumber(_ i: Int32, _ def: Double) throws -> Double { isNil(i) ? def : try number(i) }

  /// An integer-valued number (3 and 3.0 are fine, 2.5 is not).
  func integer(_ i: Int32) throws -> Int {
    guard isNumber(i) else { throw typeError(i, "integer") }
    var ok: Int32 = 0
    let v = lua_tointegerx(L, i, &ok)
    guard ok != 0 else { throw argError(i, "number has no integer representation (got \(lua_tonumberx(L, i, nil)))") }
    return Int(v)
  }
  func optInteger(_ i: Int32, _ def: Int) throws -> Int { isNil(i) ? def : try integer(i) }

  func bool(_ i: Int32) throws -> Bool {
    guard type(i) == LUA_TBOOLEAN else { throw typeError(i, "boolean") }
    return lua_toboolean(L, i) != 0
  }
  func optBool(_ i: Int32, _ def: Bool) throws -> Bool { isNil(i) ? def : try bool(i) }

  func string(_ i: Int32) throws -> String {
    guard isString(i) else { throw typeError(i, "string") }
    return LuaVM.string(L, i)
  }

  /// A 1-based or negative Lua dim as a 0-based dim of a rank-`rank` tensor.
  func dim(_ i: Int32, rank: Int, allowEnd: Bool = false) throws -> Int {
    let d = try integer(i)
    return try LuaCall.convertDim(d, rank: rank, allowEnd: allowEnd) { throw argError(i, $0) }
  }

  static func convertDim(_ d: Int, rank: Int, allowEnd: Bool = false, _ fail: (String) throws -> Never) throws -> Int {
    let n = rank + (allowEnd ? 1 : 0)
    if d == 0 { try fail("dimension 0 is invalid: dimensions are 1-based, and -1 is the last") }
    guard n > 0 else { try fail("dimension \(d) out of range: a 0-d tensor has no dimensions") }
    // d - 1 and n + d cannot overflow: d is neither 0 nor below -n here.
    guard (d > 0 && d <= n) || (d < 0 && d >= -n) else {
      try fail("dimension \(d) out of range for a \(rank)-D tensor (expected 1..\(n) or -\(n)..-1)")
    }
    return d > 0 ? d - 1 : n + d
  }

  /// A shape given as varargs (`2, 3`) or one table (`{2, 3}`), starting at argument `i`.
  /// Stops at the first non-number; returns the shape and the next argument index.
  func shape(from i: Int32, allowEmpty: Bool = true) throws -> ([Int], Int32) {
    if isTable(i) {
      let s = try intList(i, what: "size")
      try checkSizes(s, i)
      return (s, i + 1)
    }
    var s: [Int] = [], j = i
    while j <= argc && isNumber(j) {
      let v = try integer(j)
      s.append(v)
      j += 1
    }
    if s.isEmpty && !allowEmpty { throw typeError(i, "sizes (numbers or a table)") }
    try checkSizes(s, i)
    return (s, j)
  }

  private func checkSizes(_ s: [Int], _ i: Int32) throws {
    for v in s where v < 0 { throw argError(i, "size \(v) is negative (shape \(formatShape(s)))") }
    do { _ = try Tensor.checkedCount(s) } catch let e as TensorError { throw argError(i, e.message) }
  }

  /// A Lua array of integers.
  func intList(_ i: Int32, what: String = "value") throws -> [Int] {
    guard isTable(i) else { throw typeError(i, "table") }
    // lua_rawlen is a border, not a count: a table of 41 entries can have a border of 2^40, so
    // nothing is sized by it; the loop stops at the first hole (an error) instead.
    let n = Int(lua_rawlen(L, i))
    var out: [Int] = []
    for k in 1...Swift.max(n, 1) where k <= n {
      lua_rawgeti(L, i, lua_Integer(k))
      defer { lg_pop(L, 1) }
      var ok: Int32 = 0
      let v = lua_tointegerx(L, -1, &ok)
      guard lua_type(L, -1) == LUA_TNUMBER, ok != 0 else {
        let got = lua_type(L, -1) == LUA_TNUMBER ? "not an integer" : LuaVM.typeName(L, -1)
        throw argError(i, "\(what) \(k) is \(got), expected an integer")
      }
      out.append(Int(v))
    }
    return out
  }

  /// Indices for indexSelect/embedding: a tensor or table of 1-based integers, as 0-based.
  /// Values outside 1..2^53 (math.mininteger among them) are refused here: the ops check the
  /// upper bound against the dimension.
  func indices(_ i: Int32) throws -> (values: [Int], shape: [Int]) {
    func zeroBased(_ v: Int) throws -> Int {
      guard v >= 1 && v <= 1 << 53 else { throw argError(i, "index \(v) is out of range (indices are 1-based)") }
      return v - 1
    }
    if isTable(i) {
      let v = try intList(i, what: "index")
      return (try v.map(zeroBased), [v.count])
    }
    guard let t = try LuaVM.toTensor(L, i) else { throw typeError(i, "luagan.Tensor or table of indices") }
    // the Int array, the values as Doubles and a contiguous copy of a view
    try Storage.checkAllocatable(count: t.numel, elementBytes: 24, what: "an array of \(t.numel) indices")
    var out: [Int] = []
    out.reserveCapacity(t.numel)
    for v in try t.toArray() {
      guard v == v.rounded(), Swift.abs(v) < 9e15 else { throw argError(i, "index \(v) is not an integer") }
      out.append(try zeroBased(Int(v)))
    }
    return (out, t.shape)
  }

  /// A list of tensors given as a Lua array.
  func tensorList(_ i: Int32) throws -> [Tensor] {
    guard isTable(i) else { throw typeError(i, "table of tensors") }
    let n = Int(lua_rawlen(L, i))
    var out: [Tensor] = []   // not reserved: the border n is not a count (see intList)
    for k in 0..<n {
      lua_rawgeti(L, i, lua_Integer(k + 1))
      defer { lg_pop(L, 1) }
      guard let t = try LuaVM.toTensor(L, -1) else {
        throw argError(i, "element \(k + 1) is \(LuaVM.typeName(L, -1)), expected luagan.Tensor")
      }
      out.append(t)
    }
    return out
  }

  /// One tensor or a list of them.
  func tensorOrList(_ i: Int32) throws -> [Tensor] {
    if isTable(i) { return try tensorList(i) }
    return [try tensor(i)]
  }

  /// The options table at argument `i` (absent or nil gives an empty reader).
  func options(_ i: Int32) throws -> Options {
    if isNil(i) { return Options(call: self, index: 0) }
    guard isTable(i) else { throw typeError(i, "options table") }
    return Options(call: self, index: lua_absindex(L, i))
  }

  // MARK: - Writers

  func push(_ t: Tensor) { LuaVM.pushTensor(L, t) }
  func push(_ v: Double) { lua_pushnumber(L, v) }
  func push(_ v: Int) { lua_pushinteger(L, lua_Integer(v)) }
  func push(_ v: Bool) { lua_pushboolean(L, v ? 1 : 0) }
  func push(_ v: String) { lua_pushstring(L, v) }
  func pushNil() { lua_pushnil(L) }
  func push(_ ts: [Tensor]) {
    lua_createtable(L, Int32(ts.count), 0)
    for (k, t) in ts.enumerated() { push(t); lua_rawseti(L, -2, lua_Integer(k + 1)) }
  }
  func push(ints: [Int]) {
    lua_createtable(L, Int32(ints.count), 0)
    for (k, v) in ints.enumerated() { lua_pushinteger(L, lua_Integer(v)); lua_rawseti(L, -2, lua_Integer(k + 1)) }
  }
  /// t[key] = top of stack, for a table at `t` (negative indices allowed); pops the value.
  func setField(_ t: Int32, _ key: String) {
    let ti = lua_absindex(L, t == -1 ? -2 : t)
    lua_pushstring(L, key)
    lua_rotate(L, -2, 1)
    lua_rawset(L, ti)
  }
}

/// Reads named fields of an options table and rejects unknown ones, suggesting the closest
/// known name ("unknown option 'strde' (did you mean 'stride'?)").
final class Options {
  let call: LuaCall
  let index: Int32
  var known: [String] = []

  init(call: LuaCall, index: Int32) { self.call = call; self.index = index }

  var L: LuaState { call.L }

  /// Pushes t[key] and runs body with it at the top; pops it.
  private func with<R>(_ key: String, _ body: (Int32) throws -> R) rethrows -> R {
    known.append(key)
    if index == 0 { lua_pushnil(L) } else {
      lua_pushstring(L, key)
      lua_rawget(L, index)
    }
    defer { lg_pop(L, 1) }
    return try body(lua_gettop(L))
  }

  private func bad(_ key: String, _ expected: String, _ i: Int32) -> LuaError {
    call.error("option '\(key)' must be \(expected), got \(LuaVM.typeName(L, i))")
  }

  func has(_ key: String) -> Bool { with(key) { lua_type(L, $0) > 0 } }

  func number(_ key: String) throws -> Double? {
    try with(key) { i in
      if lua_type(L, i) <= 0 { return nil }
      guard lua_type(L, i) == LUA_TNUMBER else { throw bad(key, "a number", i) }
      return lua_tonumberx(L, i, nil)
    }
  }
  func number(_ key: String, _ def: Double) throws -> Double { try number(key) ?? def }

  func integer(_ key: String) throws -> Int? {
    try with(key) { i in
      if lua_type(L, i) <= 0 { return nil }
      var ok: Int32 = 0
      let v = lua_tointegerx(L, i, &ok)
      guard lua_type(L, i) == LUA_TNUMBER, ok != 0 else { throw bad(key, "an integer", i) }
      return Int(v)
    }
  }
  func integer(_ key: String, _ def: Int) throws -> Int { try integer(key) ?? def }

  func bool(_ key: String) throws -> Bool? {
    try with(key) { i in
      if lua_type(L, i) <= 0 { return nil }
      guard lua_type(L, i) == LUA_TBOOLEAN else { throw bad(key, "a boolean", i) }
      return lua_toboolean(L, i) != 0
    }
  }
  func bool(_ key: String, _ def: Bool) throws -> Bool { try bool(key) ?? def }

  func string(_ key: String) throws -> String? {
    try with(key) { i in
      if lua_type(L, i) <= 0 { return nil }
      guard lua_type(L, i) == LUA_TSTRING else { throw bad(key, "a string", i) }
      return LuaVM.string(L, i)
    }
  }

  func tensor(_ key: String) throws -> Tensor? {
    try with(key) { i in
      if lua_type(L, i) <= 0 { return nil }
      guard let t = try LuaVM.toTensor(L, i) else { throw bad(key, "a luagan.Tensor", i) }
      return t
    }
  }

  /// A pair option given as a number (both) or a table {a, b}, as stride and padding are.
  func pair(_ key: String, _ def: (Int, Int)) throws -> (Int, Int) {
    try with(key) { i in
      if lua_type(L, i) <= 0 { return def }
      if lua_type(L, i) == LUA_TNUMBER {
        var ok: Int32 = 0
        let v = Int(lua_tointegerx(L, i, &ok))
        guard ok != 0 else { throw bad(key, "an integer or a pair of integers", i) }
        return (v, v)
      }
      guard lua_type(L, i) == LUA_TTABLE, lua_rawlen(L, i) == 2 else { throw bad(key, "an integer or a pair of integers", i) }
      var r: [Int] = []
      for k in 1...2 {
        lua_rawgeti(L, i, lua_Integer(k))
        var ok: Int32 = 0
        let v = Int(lua_tointegerx(L, -1, &ok))
        lg_pop(L, 1)
        guard ok != 0 else { throw bad(key, "an integer or a pair of integers", i) }
        r.append(v)
      }
      return (r[0], r[1])
    }
  }

  func dtype(_ key: String = "dtype", _ def: DType = .float32) throws -> DType {
    guard let s = try string(key) else { return def }
    guard let d = DType(rawValue: s) else {
      throw call.error("option '\(key)' must be 'float32' or 'float64', got '\(s)'")
    }
    return d
  }

  /// Throws if the table holds a key that no reader asked for.
  func finish() throws {
    guard index != 0 else { return }
    lua_pushnil(L)
    while try call.next(index) {
      let isString = lua_type(L, -2) == LUA_TSTRING
      let key = isString ? LuaVM.string(L, -2) : "[\(LuaVM.typeName(L, -2))]"
      lg_pop(L, 1)
      if !isString || !known.contains(key) {
        lg_pop(L, 1)
        let hint = closest(key, known).map { " (did you mean '\($0)'?)" } ?? ""
        let list = known.isEmpty ? "none" : known.map { "'\($0)'" }.joined(separator: ", ")
        throw call.error("unknown option '\(key)'\(hint); options are \(list)")
      }
    }
  }
}

/// The candidate within edit distance 2 of `s`, if any (for "did you mean").
func closest(_ s: String, _ candidates: [String]) -> String? {
  func distance(_ a: [Character], _ b: [Character]) -> Int {
    var prev = Array(0...b.count)
    for (i, ca) in a.enumerated() {
      var cur = [i + 1] + [Int](repeating: 0, count: b.count)
      for (j, cb) in b.enumerated() { cur[j + 1] = Swift.min(prev[j + 1] + 1, cur[j] + 1, prev[j] + (ca == cb ? 0 : 1)) }
      prev = cur
    }
    return prev[b.count]
  }
  let a = Array(s.lowercased())
  let best = candidates.map { ($0, distance(a, Array($0.lowercased()))) }.min { $0.1 < $1.1 }
  guard let (c, d) = best, d <= Swift.max(2, s.count / 3) else { return nil }
  return c
}
