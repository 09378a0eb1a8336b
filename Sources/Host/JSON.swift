import Foundation

/// luagan's one JSON implementation: safetensors headers, and the `json` Lua library that
/// checkpoints, logs and results use. Integers and floats stay apart (an integer that fits in
/// 64 bits reads back as an integer; 2.0 stays a float), floats print with the shortest text
/// that reads back exactly, object keys keep their order, and nesting is bounded so a hostile
/// document is an error, not a stack overflow.
public indirect enum JSON: Equatable, Sendable {
  case null
  case bool(Bool)
  case int(Int)
  case double(Double)
  case string(String)
  case array([JSON])
  case object([(String, JSON)])

  public static func == (a: JSON, b: JSON) -> Bool {
    switch (a, b) {
    case (.null, .null): return true
    case (.bool(let x), .bool(let y)): return x == y
    case (.int(let x), .int(let y)): return x == y
    case (.double(let x), .double(let y)): return x == y || (x.isNaN && y.isNaN)
    case (.string(let x), .string(let y)): return x == y
    case (.array(let x), .array(let y)): return x == y
    case (.object(let x), .object(let y)): return x.count == y.count && zip(x, y).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
    default: return false
    }
  }

  /// Arrays and objects nested deeper than this are refused.
  public static let maxDepth = 512

  /// The member `key` of an object (the last one, if repeated), else nil.
  public subscript(key: String) -> JSON? {
    guard case .object(let members) = self else { return nil }
    return members.last { $0.0 == key }?.1
  }

  // MARK: - Writing

  /// The document as text; with `indent`, one member per line, indented by that many spaces
  /// per level. Non-finite floats have no JSON form: callers map them first (an error here).
  public func serialized(indent: Int? = nil) throws -> String {
    var out = ""
    try write(&out, indent: indent, depth: 0)
    return out
  }

  func write(_ out: inout String, indent: Int?, depth: Int) throws {
    guard depth <= JSON.maxDepth else { throw TensorError("json: nested more than \(JSON.maxDepth) deep") }
    let nl = indent.map { "\n" + String(repeating: " ", count: $0 * (depth + 1)) } ?? ""
    let close = indent.map { "\n" + String(repeating: " ", count: $0 * depth) } ?? ""
    switch self {
    case .null: out += "null"
    case .bool(let b): out += b ? "true" : "false"
    case .int(let i): out += String(i)
    case .double(let d):
      guard d.isFinite else { throw TensorError("json: \(d) has no JSON form") }
      var s = "\(d)"  // the shortest text that reads back to d
      if !s.contains(where: { $0 == "." || $0 == "e" || $0 == "E" }) { s += ".0" }
      out += s
    case .string(let s): JSON.quote(s, into: &out)
    case .array(let items):
      if items.isEmpty { out += "[]"; return }
      out += "["
      for (i, v) in items.enumerated() {
        if i > 0 { out += "," }
        out += nl
        try v.write(&out, indent: indent, depth: depth + 1)
      }
      out += close + "]"
    case .object(let members):
      if members.isEmpty { out += "{}"; return }
      out += "{"
      for (i, (k, v)) in members.enumerated() {
        if i > 0 { out += "," }
        out += nl
        JSON.quote(k, into: &out)
        out += indent == nil ? ":" : ": "
        try v.write(&out, indent: indent, depth: depth + 1)
      }
      out += close + "}"
    }
  }

  static func quote(_ s: String, into out: inout String) {
    out += "\""
    for u in s.unicodeScalars {
      switch u {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case "\r": out += "\\r"
      case "\t": out += "\\t"
      case "\u{08}": out += "\\b"
      case "\u{0C}": out += "\\f"
      default:
        if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
      }
    }
    out += "\""
  }

  // MARK: - Reading

  /// Parses a whole document; `name` (a file, usually) prefixes errors, with the offset.
  public static func parse(_ bytes: some Collection<UInt8>, name: String = "JSON") throws -> JSON {
    // Each value becomes a tree node of about 40 bytes however short its text ("0,"), and the
    // caller then builds its own values from the tree: refused up front when that cannot fit.
    try Memory.checkAllocatable(count: bytes.count, elementBytes: 64, what: "the values of \(name)")
    var p = Parser(bytes: Array(bytes), name: name)
    let v = try p.value(depth: 0)
    p.skipSpace()
    guard p.pos == p.bytes.count else { throw p.fail("trailing characters") }
    return v
  }

  public static func parse(_ text: String, name: String = "JSON") throws -> JSON { try parse(Array(text.utf8), name: name) }

  struct Parser {
    let bytes: [UInt8]
    let name: String
    var pos = 0

    func fail(_ why: String) -> TensorError { TensorError("\(name): \(why) at character \(pos + 1)") }

    mutating func skipSpace() {
      while pos < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[pos]) { pos += 1 }
    }

    mutating func literal(_ word: String, _ v: JSON) throws -> JSON {
      let w = Array(word.utf8)
      guard pos + w.count <= bytes.count, Array(bytes[pos..<(pos + w.count)]) == w else { throw fail("unexpected character") }
      pos += w.count
      return v
    }

    mutating func value(depth: Int) throws -> JSON {
      skipSpace()
      guard pos < bytes.count else { throw fail("unexpected end") }
      switch bytes[pos] {
      case UInt8(ascii: "{"):
        guard depth < JSON.maxDepth else { throw fail("arrays and objects nested more than \(JSON.maxDepth) deep") }
        pos += 1
        var members: [(String, JSON)] = []
        skipSpace()
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "}") { pos += 1; return .object([]) }
        while true {
          skipSpace()
          guard pos < bytes.count, bytes[pos] == UInt8(ascii: "\"") else { throw fail("expected a key") }
          let k = try string()
          skipSpace()
          guard pos < bytes.count, bytes[pos] == UInt8(ascii: ":") else { throw fail("expected ':'") }
          pos += 1
          members.append((k, try value(depth: depth + 1)))
          skipSpace()
          guard pos < bytes.count else { throw fail("unterminated object") }
          let d = bytes[pos]
          pos += 1
          if d == UInt8(ascii: "}") { return .object(members) }
          guard d == UInt8(ascii: ",") else { pos -= 1; throw fail("expected ',' or '}'") }
        }
      case UInt8(ascii: "["):
        guard depth < JSON.maxDepth else { throw fail("arrays and objects nested more than \(JSON.maxDepth) deep") }
        pos += 1
        var items: [JSON] = []
        skipSpace()
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "]") { pos += 1; return .array([]) }
        while true {
          items.append(try value(depth: depth + 1))
          skipSpace()
          guard pos < bytes.count else { throw fail("unterminated array") }
          let d = bytes[pos]
          pos += 1
          if d == UInt8(ascii: "]") { return .array(items) }
          guard d == UInt8(ascii: ",") else { pos -= 1; throw fail("expected ',' or ']'") }
        }
      case UInt8(ascii: "\""): return .string(try string())
      case UInt8(ascii: "t"): return try literal("true", .bool(true))
      case UInt8(ascii: "f"): return try literal("false", .bool(false))
      case UInt8(ascii: "n"): return try literal("null", .null)
      default: return try number()
      }
    }

    mutating func number() throws -> JSON {
      let start = pos
      var isFloat = false
      if pos < bytes.count, bytes[pos] == UInt8(ascii: "-") { pos += 1 }
      var digits = 0
      while pos < bytes.count, bytes[pos] >= 0x30, bytes[pos] <= 0x39 { pos += 1; digits += 1 }
      guard digits > 0 else { pos = start; throw fail("unexpected character") }
      if pos < bytes.count, bytes[pos] == UInt8(ascii: ".") {
        isFloat = true
        pos += 1
        var frac = 0
        while pos < bytes.count, bytes[pos] >= 0x30, bytes[pos] <= 0x39 { pos += 1; frac += 1 }
        guard frac > 0 else { throw fail("a digit must follow '.'") }
      }
      if pos < bytes.count, bytes[pos] == UInt8(ascii: "e") || bytes[pos] == UInt8(ascii: "E") {
        isFloat = true
        pos += 1
        if pos < bytes.count, bytes[pos] == UInt8(ascii: "+") || bytes[pos] == UInt8(ascii: "-") { pos += 1 }
        var exp = 0
        while pos < bytes.count, bytes[pos] >= 0x30, bytes[pos] <= 0x39 { pos += 1; exp += 1 }
        guard exp > 0 else { throw fail("a digit must follow the exponent") }
      }
      let text = String(decoding: bytes[start..<pos], as: UTF8.self)
      if !isFloat, let i = Int(text) { return .int(i) }
      guard let d = Double(text) else { throw fail("bad number '\(text)'") }
      return .double(d)
    }

    mutating func string() throws -> String {
      pos += 1  // the opening quote
      var out: [UInt8] = []
      while true {
        guard pos < bytes.count else { throw fail("unterminated string") }
        let c = bytes[pos]
        if c == UInt8(ascii: "\"") { pos += 1; break }
        guard c >= 0x20 else { throw fail("control character in a string") }
        if c != UInt8(ascii: "\\") { out.append(c); pos += 1; continue }
        guard pos + 1 < bytes.count else { throw fail("unterminated escape") }
        let e = bytes[pos + 1]
        pos += 2
        switch e {
        case UInt8(ascii: "\""): out.append(0x22)
        case UInt8(ascii: "\\"): out.append(0x5C)
        case UInt8(ascii: "/"): out.append(0x2F)
        case UInt8(ascii: "b"): out.append(0x08)
        case UInt8(ascii: "f"): out.append(0x0C)
        case UInt8(ascii: "n"): out.append(0x0A)
        case UInt8(ascii: "r"): out.append(0x0D)
        case UInt8(ascii: "t"): out.append(0x09)
        case UInt8(ascii: "u"):
          var code = try hex4()
          if (0xD800..<0xDC00).contains(code), pos + 1 < bytes.count, bytes[pos] == UInt8(ascii: "\\"),
             bytes[pos + 1] == UInt8(ascii: "u") {
            pos += 2
            let low = try hex4()
            guard (0xDC00..<0xE000).contains(low) else { throw fail("bad surrogate pair") }
            code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
          }
          guard let scalar = Unicode.Scalar(code) else { throw fail("bad \\u escape") }
          out.append(contentsOf: Array(String(Character(scalar)).utf8))
        default: throw fail("bad escape")
        }
      }
      return String(decoding: out, as: UTF8.self)
    }

    mutating func hex4() throws -> UInt32 {
      guard pos + 4 <= bytes.count, let v = UInt32(String(decoding: bytes[pos..<(pos + 4)], as: UTF8.self), radix: 16) else {
        throw fail("bad \\u escape")
      }
      pos += 4
      return v
    }
  }
}
