import Foundation
import Tensor

/// Python's pickle format, read without running anything: the opcodes of protocols 0-5 as
/// Python's Lib/pickle.py executes them and Lib/pickletools.py documents them (its opcode table
/// gives each one's argument and stack effect). A pickle is a program for a stack machine, and
/// the only opcodes that could run code are those that name a global (GLOBAL, STACK_GLOBAL,
/// INST) and those that call one (REDUCE, NEWOBJ, NEWOBJ_EX, BUILD, INST, OBJ): here a global is
/// only a name that a `PickleResolver` accepts or refuses, and a call is the resolver building a
/// value from it; nothing is imported or executed. Persistent ids (how torch.save refers to
/// tensor storages) go to the resolver too. INST, OBJ, the extension registry (EXT1/2/4) and
/// out-of-band buffers (NEXT_BUFFER, READONLY_BUFFER) are refused.
///
/// Every read is bounds-checked (a truncated stream is an error), the values the stack machine
/// holds are counted against a budget, and containers live in a `PickleArena` that empties
/// them before they are freed, so neither cycles nor deep nesting can leak or overflow the
/// native stack when a pickle is dropped.
indirect enum PickleValue {
  case none, bool(Bool), int(Int)
  /// An integer past 64 bits: its two's-complement bytes, little-endian (pickle's LONG1/LONG4).
  case bigInt([UInt8])
  /// An integer past 64 bits written in decimal (protocol 0's INT, LONG): its canonical text
  /// (a sign only when negative, no leading zeros). Kept as text: converting decimal to binary
  /// takes time quadratic in the digits, which a file could spend on thousands of them.
  case bigDecimal(String)
  case float(Double), string(String), bytes([UInt8])
  case tuple(PickleList), list(PickleList), dict(PickleDict)
  /// A global the resolver accepted: only its name, never what the name refers to.
  case global(String, String)
  /// What a resolver made (a storage, a tensor to be).
  case object(AnyObject)

  /// The integer, if this is one that fits 64 bits (True and False count, as in Python).
  var int: Int? {
    switch self {
    case .int(let i): return i
    case .bool(let b): return b ? 1 : 0
    default: return nil
    }
  }

  /// The text of a str, or of bytes that are valid UTF-8 (Python 2 pickles hold `str` as bytes).
  var text: String? {
    switch self {
    case .string(let s): return s
    case .bytes(let b): return String(bytes: b, encoding: .utf8)
    default: return nil
    }
  }

  /// The items of a tuple or list.
  var items: [PickleValue]? {
    switch self {
    case .tuple(let l), .list(let l): return l.items
    default: return nil
    }
  }

  /// The kind of value, for messages.
  var kind: String {
    switch self {
    case .none: return "None"
    case .bool: return "a bool"
    case .int, .bigInt, .bigDecimal: return "an int"
    case .float: return "a float"
    case .string: return "a str"
    case .bytes: return "bytes"
    case .tuple: return "a tuple"
    case .list: return "a list"
    case .dict: return "a dict"
    case .global(let m, let n): return "\(m).\(n)"
    case .object: return "a storage or tensor"
    }
  }
}

/// A list, tuple or set (sets are read as lists); a reference, as in Python, so that an APPEND
/// reaches every place the memo shared the list with.
final class PickleList {
  var items: [PickleValue]
  init(_ items: [PickleValue]) { self.items = items }
}

/// A dict in insertion order; setting a key that is already there replaces its value, as in Python.
final class PickleDict {
  private(set) var pairs: [(key: PickleValue, value: PickleValue)] = []
  private var index: [String: Int] = [:]

  /// Sets `key`; the bytes of the keys' identities are charged to `arena`, which bounds the work
  /// a pickle setting a long key a million times can cause.
  func set(_ key: PickleValue, _ value: PickleValue, arena: PickleArena) throws {
    let id = try PickleDict.identity(key, depth: 0, limit: arena.keyBytes)
    arena.keyBytes -= id.utf8.count
    if let i = index[id] { pairs[i].value = value; return }
    index[id] = pairs.count
    pairs.append((key, value))
  }

  func removeAll() { pairs = []; index = [:] }

  /// A string equal for keys Python finds equal (1 == 1.0 == True); lists and dicts are
  /// unhashable. Refused before it is built when its text would pass `limit` bytes.
  static func identity(_ v: PickleValue, depth: Int, limit: Int) throws -> String {
    guard depth < 32 else { throw TensorError("a dict key nested more than 32 deep") }
    let tooLong = TensorError("dict keys of more than \(PickleArena.maxKeyBytes >> 20) MiB in all")
    func hex(_ b: [UInt8]) throws -> String {
      guard b.count * 2 <= limit else { throw tooLong }
      let digits = Array("0123456789abcdef".utf8)
      var out = [UInt8](repeating: 0, count: b.count * 2)
      for (i, x) in b.enumerated() { out[2 * i] = digits[Int(x >> 4)]; out[2 * i + 1] = digits[Int(x & 15)] }
      return String(decoding: out, as: UTF8.self)
    }
    switch v {
    case .none: return "N"
    case .bool(let b): return b ? "i1" : "i0"
    case .int(let i): return "i\(i)"
    case .bigInt(let b): return "I" + (try hex(b))
    case .bigDecimal(let t):
      guard t.utf8.count < limit else { throw tooLong }
      return "D" + t
    case .float(let d): return d.rounded() == d && abs(d) < 0x1p63 ? "i\(Int(d))" : "f\(d.bitPattern)"
    case .string(let s):
      guard s.utf8.count < limit else { throw tooLong }
      return "s" + s
    case .bytes(let b): return "b" + (try hex(b))
    case .tuple(let l):
      var parts: [String] = [], used = 0
      for item in l.items {
        let part = try identity(item, depth: depth + 1, limit: limit - used)
        used += part.utf8.count + 1
        guard used <= limit else { throw tooLong }
        parts.append(part)
      }
      return "t(" + parts.joined(separator: ",") + ")"
    case .global(let m, let n): return "g\(m).\(n)"
    case .object(let o): return "o\(String(describing: ObjectIdentifier(o)))"
    case .list, .dict: throw TensorError("a dict key that is \(v.kind) (unhashable in Python)")
    }
  }
}

/// Owns every container an unpickling made and empties them all when it goes away, so freeing
/// a deeply nested or cyclic result takes no recursion and leaks nothing.
final class PickleArena {
  static let maxKeyBytes = 16 << 20
  /// What is left of the bytes dict keys may take (see `PickleDict.set`).
  var keyBytes = PickleArena.maxKeyBytes
  private var lists: [PickleList] = []
  private var dicts: [PickleDict] = []

  func list(_ items: [PickleValue]) -> PickleList { let l = PickleList(items); lists.append(l); return l }
  func dict() -> PickleDict { let d = PickleDict(); dicts.append(d); return d }

  deinit {
    for l in lists { l.items = [] }
    for d in dicts { d.removeAll() }
  }
}

/// A resolver's refusal, phrased as what the file does ("uses the global os.system, ..."); the
/// unpickler adds the file and the place.
struct PickleRefusal: Error {
  let message: String
  init(_ message: String) { self.message = message }
}

/// What globals, calls and persistent ids mean: the reader of a format built on pickle (torch's
/// checkpoints) decides, and refuses what it does not know.
protocol PickleResolver: AnyObject {
  /// GLOBAL / STACK_GLOBAL / INST: `.global(module, name)` if allowed, else an error.
  func global(_ module: String, _ name: String) throws -> PickleValue
  /// BINPERSID / PERSID.
  func persistent(_ id: PickleValue) throws -> PickleValue
  /// REDUCE and NEWOBJ: `callable(*args)`, for a callable the resolver allowed.
  func call(_ callable: PickleValue, _ args: [PickleValue]) throws -> PickleValue
  /// BUILD: `object` given `state` (an OrderedDict's attributes, a Parameter's state).
  func build(_ object: PickleValue, _ state: PickleValue) throws -> PickleValue
}

/// One pickle read from `buffer` at `position` up to its STOP (which `position` then passes), as
/// `pickle.load` does; `label` starts every error ("tensor.load: 'x.pth'"), `part` names the
/// stream in them ("data.pkl").
struct Unpickler {
  /// Values the stack machine may create (pushes, marks, memo entries) in one file.
  static let maxValues = 10_000_000

  let buffer: UnsafeRawBufferPointer
  var position: Int
  let label: String, part: String
  let arena: PickleArena
  let resolver: PickleResolver
  private var stack: [PickleValue] = []
  private var marks: [Int] = []
  private var memo: [Int: PickleValue] = [:]
  private var opAt = 0
  private var budget: Int

  init(_ buffer: UnsafeRawBufferPointer, at position: Int, label: String, part: String, arena: PickleArena,
       resolver: PickleResolver, budget: Int = Unpickler.maxValues) {
    self.buffer = buffer
    self.position = position
    self.label = label
    self.part = part
    self.arena = arena
    self.resolver = resolver
    self.budget = budget
  }

  /// What the budget has left, for the next pickle of the same file.
  var remainingBudget: Int { budget }

  /// An error phrased as what the file does ("is truncated: ...", "uses the global ..."), placed.
  func fail(_ message: String) -> TensorError { TensorError("\(label) \(message) (\(part), byte \(opAt))") }

  /// Runs the pickle to its STOP and returns the object it built.
  mutating func load() throws -> PickleValue {
    while true {
      opAt = position
      let op = try byte()
      if op == 0x2E {   // STOP
        return try pop()
      }
      let known: Bool
      do {
        known = try numberOp(op) || stringOp(op) || containerOp(op) || memoOp(op) || objectOp(op)
      } catch let r as PickleRefusal { throw fail(r.message) }
      guard known else { throw refusal(op) }
    }
  }

  /// The error for an opcode that is not read: named when pickle has it, by value otherwise.
  func refusal(_ op: UInt8) -> TensorError {
    let names: [UInt8: String] = [0x69: "INST", 0x6F: "OBJ", 0x82: "EXT1", 0x83: "EXT2", 0x84: "EXT4",
                                  0x97: "NEXT_BUFFER", 0x98: "READONLY_BUFFER"]
    if let name = names[op] {
      return fail("uses the pickle opcode \(name) (0x\(String(op, radix: 16))), which a state dict never needs; refused")
    }
    return fail("has an unknown pickle opcode 0x\(String(op, radix: 16)); it is corrupt or not a pickle")
  }

  // MARK: - Reading the stream

  private var remaining: Int { buffer.count - position }

  private func truncated() -> TensorError {
    fail("is truncated: the pickle ends at byte \(buffer.count) before its STOP opcode")
  }

  private mutating func byte() throws -> UInt8 {
    guard position < buffer.count else { throw truncated() }
    defer { position += 1 }
    return buffer[position]
  }

  /// `count` little-endian bytes as an unsigned integer (count <= 8).
  private mutating func unsigned(_ count: Int) throws -> UInt64 {
    guard count <= remaining else { throw truncated() }
    var v: UInt64 = 0
    for k in 0..<count { v |= UInt64(buffer[position + k]) << (8 * UInt64(k)) }
    position += count
    return v
  }

  private mutating func take(_ count: UInt64) throws -> [UInt8] {
    guard count <= UInt64(remaining) else { throw truncated() }
    let n = Int(count)
    defer { position += n }
    return Array(buffer[position..<(position + n)])
  }

  /// A protocol-0 argument: the bytes up to the next newline (which is consumed).
  private mutating func line() throws -> [UInt8] {
    var end = position
    while end < buffer.count && buffer[end] != 0x0A { end += 1 }
    guard end < buffer.count else { throw truncated() }
    defer { position = end + 1 }
    return Array(buffer[position..<end])
  }

  private mutating func lineText() throws -> String { String(decoding: try line(), as: UTF8.self) }

  // MARK: - The stack

  private mutating func spend() throws {
    budget -= 1
    guard budget >= 0 else { throw fail("holds more than \(Unpickler.maxValues) values; refused") }
    // every million values (about 128 MB once converted for Lua), the memory they need is checked
    if budget % 1_000_000 == 0 {
      try Storage.checkAllocatable(count: Unpickler.maxValues - budget, elementBytes: 128, what: "\(label)'s unpickled values")
    }
  }

  private mutating func push(_ v: PickleValue) throws {
    try spend()
    stack.append(v)
  }

  /// Pops the top value; the values below the last MARK are out of reach, as in Python.
  private mutating func pop() throws -> PickleValue {
    guard stack.count > (marks.last ?? 0) else { throw fail("pops an empty stack; it is corrupt") }
    return stack.removeLast()
  }

  private func top() throws -> PickleValue {
    guard stack.count > (marks.last ?? 0) else { throw fail("reads an empty stack; it is corrupt") }
    return stack[stack.count - 1]
  }

  private mutating func replaceTop(_ v: PickleValue) throws {
    guard stack.count > (marks.last ?? 0) else { throw fail("reads an empty stack; it is corrupt") }
    stack[stack.count - 1] = v
  }

  /// The values pushed since the last MARK, which is removed.
  private mutating func popMark() throws -> [PickleValue] {
    guard let m = marks.popLast() else { throw fail("ends a MARK that was never set; it is corrupt") }
    let items = Array(stack[m...])
    stack.removeSubrange(m...)
    return items
  }

  // MARK: - Opcodes

  /// Integers, floats, None and booleans.
  private mutating func numberOp(_ op: UInt8) throws -> Bool {
    switch op {
    case 0x4E: try push(.none)                                      // NONE
    case 0x88: try push(.bool(true))                                // NEWTRUE
    case 0x89: try push(.bool(false))                               // NEWFALSE
    case 0x4B: try push(.int(Int(try unsigned(1))))                 // BININT1
    case 0x4D: try push(.int(Int(try unsigned(2))))                 // BININT2
    case 0x4A: try push(.int(Int(Int32(truncatingIfNeeded: try unsigned(4)))))   // BININT
    case 0x8A: try push(try long(UInt64(try unsigned(1))))          // LONG1
    case 0x8B:                                                      // LONG4
      let n = Int32(truncatingIfNeeded: try unsigned(4))
      guard n >= 0 else { throw fail("has a LONG4 of negative length \(n); it is corrupt") }
      try push(try long(UInt64(n)))
    case 0x47: try push(.float(Double(bitPattern: try unsigned(8).byteSwapped)))   // BINFLOAT (big-endian)
    case 0x49:                                                      // INT: "00"/"01" are False/True in protocol 0
      let t = try lineText()
      if t == "00" || t == "01" { try push(.bool(t == "01")) } else { try push(try decimal(t)) }
    case 0x4C:                                                      // LONG: decimal with a trailing L
      let t = try lineText()
      try push(try decimal(t.hasSuffix("L") ? String(t.dropLast()) : t))
    case 0x46:                                                      // FLOAT: repr text
      let t = try lineText()
      guard let d = Double(t.trimmingCharacters(in: .whitespaces)) else { throw fail("has a FLOAT '\(t.prefix(40))' that is not a number") }
      try push(.float(d))
    default: return false
    }
    return true
  }

  /// LONG1/LONG4's two's-complement little-endian bytes: an Int when they fit 64 bits.
  private mutating func long(_ count: UInt64) throws -> PickleValue {
    let b = try take(count)
    if b.isEmpty { return .int(0) }
    if b.count <= 8 {
      var v: UInt64 = 0
      for (k, x) in b.enumerated() { v |= UInt64(x) << (8 * UInt64(k)) }
      let shift = UInt64(64 - 8 * b.count)
      return .int(Int(Int64(bitPattern: v << shift) >> Int64(shift)))   // sign-extended
    }
    return .bigInt(b)
  }

  /// Protocol 0's decimal integers (INT, LONG); past 64 bits kept as canonical decimal text (up
  /// to Python's 4300 digits), so reading is linear in the digits.
  private func decimal(_ t: String) throws -> PickleValue {
    let s = t.trimmingCharacters(in: .whitespaces)
    if let i = Int(s) { return .int(i) }
    let negative = s.hasPrefix("-")
    let digits = s.utf8.drop { $0 == 0x2D || $0 == 0x2B }
    guard !digits.isEmpty, digits.count <= 4300, s.utf8.count - digits.count <= 1, digits.allSatisfy({ (0x30...0x39).contains($0) }) else {
      throw fail("has an integer '\(t.prefix(40))' that is not a number (or has more than 4300 digits)")
    }
    let significant = digits.drop { $0 == 0x30 }
    if significant.isEmpty { return .int(0) }
    if let i = Int((negative ? "-" : "") + String(decoding: significant, as: UTF8.self)) { return .int(i) }
    return .bigDecimal((negative ? "-" : "") + String(decoding: significant, as: UTF8.self))
  }

  /// Strings and bytes, in every encoding pickle has had.
  private mutating func stringOp(_ op: UInt8) throws -> Bool {
    switch op {
    case 0x58: try push(utf8(try take(try unsigned(4))))            // BINUNICODE
    case 0x8C: try push(utf8(try take(try unsigned(1))))            // SHORT_BINUNICODE
    case 0x8D: try push(utf8(try take(try unsigned(8))))            // BINUNICODE8
    case 0x55: try push(utf8(try take(try unsigned(1))))            // SHORT_BINSTRING (a Python 2 str)
    case 0x54:                                                      // BINSTRING
      let n = Int32(truncatingIfNeeded: try unsigned(4))
      guard n >= 0 else { throw fail("has a BINSTRING of negative length \(n); it is corrupt") }
      try push(utf8(try take(UInt64(n))))
    case 0x43: try push(.bytes(try take(try unsigned(1))))          // SHORT_BINBYTES
    case 0x42: try push(.bytes(try take(try unsigned(4))))          // BINBYTES
    case 0x8E, 0x96: try push(.bytes(try take(try unsigned(8))))    // BINBYTES8, BYTEARRAY8
    case 0x53: try push(utf8(try quoted(try line())))               // STRING: a quoted repr
    case 0x56: try push(.string(Unpickler.rawUnicodeEscape(try line())))   // UNICODE
    default: return false
    }
    return true
  }

  /// Text as a str; bytes that are not UTF-8 stay bytes (torch.load reads with encoding="utf-8").
  private func utf8(_ b: [UInt8]) -> PickleValue {
    if let s = String(bytes: b, encoding: .utf8) { return .string(s) }
    return .bytes(b)
  }

  /// The body of protocol 0's STRING: a Python literal in matching quotes, backslash escapes undone.
  private func quoted(_ b: [UInt8]) throws -> [UInt8] {
    guard b.count >= 2, let q = b.first, q == 0x27 || q == 0x22, b.last == q else {
      throw fail("has a STRING argument that is not in quotes")
    }
    let body = b[1..<(b.count - 1)]
    var out: [UInt8] = [], i = body.startIndex
    let simple: [UInt8: UInt8] = [0x6E: 10, 0x74: 9, 0x72: 13, 0x61: 7, 0x62: 8, 0x66: 12, 0x76: 11, 0x5C: 0x5C, 0x27: 0x27, 0x22: 0x22]
    while i < body.endIndex {
      let c = body[i]
      i += 1
      guard c == 0x5C, i < body.endIndex else { out.append(c); continue }
      let e = body[i]
      i += 1
      if let s = simple[e] { out.append(s); continue }
      if e == 0x78, i + 2 <= body.endIndex, let v = UInt8(String(decoding: body[i..<(i + 2)], as: UTF8.self), radix: 16) {
        out.append(v); i += 2; continue
      }
      if (0x30...0x37).contains(e) {
        var v = Int(e - 0x30), n = 1
        while n < 3, i < body.endIndex, (0x30...0x37).contains(body[i]) { v = v * 8 + Int(body[i] - 0x30); i += 1; n += 1 }
        out.append(UInt8(truncatingIfNeeded: v)); continue
      }
      out += [0x5C, e]
    }
    return out
  }

  /// Python's raw-unicode-escape: bytes are Latin-1 characters, except \uXXXX and \UXXXXXXXX.
  static func rawUnicodeEscape(_ b: [UInt8]) -> String {
    var scalars = String.UnicodeScalarView(), i = 0
    while i < b.count {
      if b[i] == 0x5C, i + 1 < b.count, b[i + 1] == 0x75 || b[i + 1] == 0x55 {
        let width = b[i + 1] == 0x75 ? 4 : 8
        if i + 2 + width <= b.count, let v = UInt32(String(decoding: b[(i + 2)..<(i + 2 + width)], as: UTF8.self), radix: 16),
           let s = Unicode.Scalar(v) {
          scalars.append(s)
          i += 2 + width
          continue
        }
      }
      scalars.append(Unicode.Scalar(b[i]))
      i += 1
    }
    return String(scalars)
  }

  /// Tuples, lists, dicts, sets and the MARK discipline.
  private mutating func containerOp(_ op: UInt8) throws -> Bool {
    switch op {
    case 0x28: try spend(); marks.append(stack.count)               // MARK
    case 0x29: try push(.tuple(arena.list([])))                     // EMPTY_TUPLE
    case 0x5D, 0x8F: try push(.list(arena.list([])))                // EMPTY_LIST, EMPTY_SET
    case 0x7D: try push(.dict(arena.dict()))                        // EMPTY_DICT
    case 0x74, 0x91: try push(.tuple(arena.list(try popMark())))    // TUPLE, FROZENSET
    case 0x85, 0x86, 0x87:                                          // TUPLE1, TUPLE2, TUPLE3
      var items: [PickleValue] = []
      for _ in 0...Int(op - 0x85) { items.insert(try pop(), at: 0) }
      try push(.tuple(arena.list(items)))
    case 0x6C: try push(.list(arena.list(try popMark())))           // LIST
    case 0x64:                                                      // DICT
      let d = arena.dict()
      try setItems(d, try popMark())
      try push(.dict(d))
    case 0x61:                                                      // APPEND
      let v = try pop()
      try appendTo(try top(), [v])
    case 0x65, 0x90:                                                // APPENDS, ADDITEMS
      let items = try popMark()
      try appendTo(try top(), items)
    case 0x73:                                                      // SETITEM
      let v = try pop(), k = try pop()
      try setItems(try dictOnTop(), [k, v])
    case 0x75:                                                      // SETITEMS
      let items = try popMark()
      try setItems(try dictOnTop(), items)
    case 0x30:                                                      // POP (a MARK when the stack above it is empty)
      if stack.count > (marks.last ?? 0) { _ = try pop() } else { _ = try popMark() }
    case 0x31: _ = try popMark()                                    // POP_MARK
    case 0x32: try push(try top())                                  // DUP
    default: return false
    }
    return true
  }

  private func appendTo(_ target: PickleValue, _ items: [PickleValue]) throws {
    guard case .list(let l) = target else { throw fail("appends to \(target.kind), not a list; refused") }
    l.items += items
  }

  private func dictOnTop() throws -> PickleDict {
    let t = try top()
    guard case .dict(let d) = t else { throw fail("sets an item of \(t.kind), not a dict; refused") }
    return d
  }

  private func setItems(_ d: PickleDict, _ items: [PickleValue]) throws {
    guard items.count % 2 == 0 else { throw fail("sets dict items from an odd number of values; it is corrupt") }
    do {
      for k in stride(from: 0, to: items.count, by: 2) { try d.set(items[k], items[k + 1], arena: arena) }
    } catch let e as TensorError { throw fail("has \(e.message)") }
  }

  /// The memo: PUT/BINPUT/LONG_BINPUT/MEMOIZE store the top, GET/BINGET/LONG_BINGET push a stored value.
  private mutating func memoOp(_ op: UInt8) throws -> Bool {
    switch op {
    case 0x71: try put(Int(try unsigned(1)))                        // BINPUT
    case 0x72: try put(Int(try unsigned(4)))                        // LONG_BINPUT
    case 0x94: try put(memo.count)                                  // MEMOIZE
    case 0x70: try put(try memoIndex(try lineText()))               // PUT
    case 0x68: try get(Int(try unsigned(1)))                        // BINGET
    case 0x6A: try get(Int(try unsigned(4)))                        // LONG_BINGET
    case 0x67: try get(try memoIndex(try lineText()))               // GET
    default: return false
    }
    return true
  }

  private func memoIndex(_ t: String) throws -> Int {
    guard let i = Int(t.trimmingCharacters(in: .whitespaces)), i >= 0 else { throw fail("has a memo index '\(t.prefix(40))'") }
    return i
  }

  private mutating func put(_ i: Int) throws {
    let v = try top()
    try spend()
    memo[i] = v
  }

  private mutating func get(_ i: Int) throws {
    guard let v = memo[i] else { throw fail("reads memo entry \(i), which was never stored; it is corrupt") }
    try push(v)
  }

  /// Globals, calls, BUILD and persistent ids: all through the resolver.
  private mutating func objectOp(_ op: UInt8) throws -> Bool {
    switch op {
    case 0x80:                                                      // PROTO
      let v = try byte()
      guard v <= 5 else { throw fail("uses pickle protocol \(v); protocols 0 to 5 are read") }
    case 0x95:                                                      // FRAME: a length that only groups opcodes
      let n = try unsigned(8)
      guard n <= UInt64(remaining) else { throw truncated() }
    case 0x63:                                                      // GLOBAL: module and name lines
      let module = try lineText(), name = try lineText()
      try push(try resolver.global(Unpickler.python3(module), name))
    case 0x93:                                                      // STACK_GLOBAL
      let name = try pop(), module = try pop()
      guard let m = module.text, let n = name.text else { throw fail("has a STACK_GLOBAL whose module or name is not a str") }
      try push(try resolver.global(m, n))
    case 0x69:                                                      // INST: refused, but say which class it names
      _ = try resolver.global(Unpickler.python3(try lineText()), try lineText())
      throw refusal(op)
    case 0x52, 0x81:                                                // REDUCE, NEWOBJ
      let args = try pop(), callable = try pop()
      guard case .tuple(let a) = args else { throw fail("calls \(callable.kind) with \(args.kind) for arguments; refused") }
      try push(try resolver.call(callable, a.items))
    case 0x92:                                                      // NEWOBJ_EX: keyword arguments must be empty
      let kwargs = try pop(), args = try pop(), cls = try pop()
      guard case .tuple(let a) = args, case .dict(let k) = kwargs, k.pairs.isEmpty else {
        throw fail("creates \(cls.kind) with keyword arguments; refused")
      }
      try push(try resolver.call(cls, a.items))
    case 0x62:                                                      // BUILD
      let state = try pop()
      try replaceTop(try resolver.build(try top(), state))
    case 0x51: try push(try resolver.persistent(try pop()))         // BINPERSID
    case 0x50: try push(try resolver.persistent(.string(try lineText())))   // PERSID
    default: return false
    }
    return true
  }

  /// Python 2 module names that Python 3's unpickler maps (fix_imports), for pickles of old torch.
  static func python3(_ module: String) -> String {
    switch module {
    case "__builtin__": return "builtins"
    case "copy_reg": return "copyreg"
    default: return module
    }
  }
}
