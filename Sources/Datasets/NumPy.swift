import Foundation
import Tensor

/// NumPy's `.npy` and `.npz` files (numpy/lib/format.py, format versions 1.0-3.0): how
/// pytorch-fid and clean-fid ship reference statistics (`mu`, `sigma`). Arrays of numbers are
/// read (float16/32/64, signed and unsigned integers, bool; either byte order; C or Fortran
/// order) without pickle: object arrays, structured and string dtypes are refused. float32 stays
/// float32; every other type becomes float64 (integers up to 2^53 exactly).
public enum NumPyFiles {
  static let magic: [UInt8] = [0x93] + Array("NUMPY".utf8)

  struct Descr { let kind: Character; let bytes: Int; let bigEndian: Bool }

  /// The header dict, e.g. {'descr': '<f8', 'fortran_order': False, 'shape': (2048, 2048), }.
  static func parseHeader(_ text: String, _ what: String) throws -> (Descr, Bool, [Int]) {
    func value(_ key: String) -> Substring? {
      guard let r = text.range(of: "'\(key)':") else { return nil }
      return text[r.upperBound...].drop { $0 == " " }
    }
    guard let d = value("descr"), d.first == "'" || d.first == "\"", let end = d.dropFirst().firstIndex(of: d.first!) else {
      throw TensorError("\(what): only arrays of numbers are read (its dtype is a structured or object type)")
    }
    let descr = String(d[d.index(after: d.startIndex)..<end])
    if descr.dropFirst().hasPrefix("O") {
      throw TensorError("\(what): an object array (dtype '\(descr)') needs pickle, which luagan never runs")
    }
    guard descr.count >= 3, let order = descr.first, "<>|=".contains(order), let kind = descr.dropFirst().first,
          let bytes = Int(descr.dropFirst(2)) else {
      throw TensorError("\(what): unsupported dtype '\(descr)'")
    }
    let numeric = (kind == "f" && [2, 4, 8].contains(bytes)) || ("iu".contains(kind) && [1, 2, 4, 8].contains(bytes))
      || (kind == "b" && bytes == 1)
    guard numeric else {
      throw TensorError("\(what): dtype '\(descr)' is not read (only float16/32/64, integers and bool; object arrays would need pickle)")
    }
    guard let f = value("fortran_order"), f.hasPrefix("True") || f.hasPrefix("False") else {
      throw TensorError("\(what): header has no fortran_order")
    }
    guard let s = value("shape"), s.first == "(", let close = s.firstIndex(of: ")") else {
      throw TensorError("\(what): header has no shape")
    }
    var shape: [Int] = []
    for item in s[s.index(after: s.startIndex)..<close].split(separator: ",") {
      let t = item.trimmingCharacters(in: .whitespaces)
      if t.isEmpty { continue }
      guard let n = Int(t), n >= 0 else { throw TensorError("\(what): bad shape entry '\(t)'") }
      shape.append(n)
    }
    return (Descr(kind: kind, bytes: bytes, bigEndian: order == ">"), f.hasPrefix("True"), shape)
  }

  /// An `.npy` file's header: the element type, its text, order, shape and where data starts.
  static func parse(_ b: [UInt8], what: String) throws -> (Descr, String, Bool, [Int], Int) {
    guard b.count >= 10, Array(b[0..<6]) == magic else { throw TensorError("\(what): not a .npy array (bad magic)") }
    let major = Int(b[6])
    guard (1...3).contains(major) else { throw TensorError("\(what): .npy format version \(major) is not read") }
    // format 1.0: a 2-byte header length; 2.0 and 3.0: 4 bytes (little-endian)
    let headerLength = major == 1 ? Int(b[8]) | Int(b[9]) << 8
      : (b.count >= 12 ? Int(b[8]) | Int(b[9]) << 8 | Int(b[10]) << 16 | Int(b[11]) << 24 : -1)
    let start = major == 1 ? 10 : 12
    guard headerLength >= 0, start + headerLength <= b.count else { throw TensorError("\(what): truncated .npy header") }
    let header = String(decoding: b[start..<(start + headerLength)], as: UTF8.self)
    let (descr, fortran, shape) = try parseHeader(header, what)
    let count = try Checked.product(shape, "\(what): shape")
    let dataBytes = try Checked.mul(count, descr.bytes, "\(what): size")
    let at = start + headerLength
    guard b.count - at == dataBytes else {
      throw TensorError("\(what): shape \(formatShape(shape)) of \(descr.bytes)-byte values needs \(dataBytes) bytes, "
                        + "the file holds \(b.count - at)")
    }
    let text = "\(descr.bigEndian ? ">" : descr.bytes == 1 ? "|" : "<")\(descr.kind)\(descr.bytes)"
    return (descr, text, fortran, shape, at)
  }

  /// An `.npy` file's raw C-order data: its dtype text ("<f4", "|u1", ...), shape and bytes.
  public static func raw(_ b: [UInt8], what: String) throws -> (String, [Int], [UInt8]) {
    let (_, text, fortran, shape, at) = try parse(b, what: what)
    guard !fortran || shape.count < 2 else { throw TensorError("\(what): a Fortran-order array where C order was expected") }
    return (text, shape, Array(b[at...]))
  }

  /// An `.npy` file's bytes as a tensor; `what` names the file in errors.
  public static func decodeNpy(_ b: [UInt8], what: String) throws -> Tensor {
    let (descr, _, fortran, shape, at) = try parse(b, what: what)
    let dtype: DType = descr.kind == "f" && descr.bytes == 4 ? .float32 : .float64
    // Column-major data is read as the reversed shape, then its dimensions are reversed back.
    let t = try Tensor.empty(fortran && shape.count > 1 ? shape.reversed() : shape, dtype: dtype)
    try b.withUnsafeBufferPointer { raw in
      try t.withUnsafeMutableBytes { out in
        for i in 0..<t.numel {
          var bits: UInt64 = 0
          for k in 0..<descr.bytes {
            let byte = UInt64(raw[at + i * descr.bytes + (descr.bigEndian ? descr.bytes - 1 - k : k)])
            bits |= byte << (8 * UInt64(k))
          }
          if dtype == .float32 {
            out.storeBytes(of: Float(bitPattern: UInt32(bits)), toByteOffset: 4 * i, as: Float.self)
          } else {
            out.storeBytes(of: number(bits, descr), toByteOffset: 8 * i, as: Double.self)
          }
        }
      }
    }
    if fortran && shape.count > 1 { return try t.permute(Array((0..<shape.count).reversed())).contiguous() }
    return t
  }

  static func number(_ bits: UInt64, _ d: Descr) -> Double {
    switch (d.kind, d.bytes) {
    case ("f", 8): return Double(bitPattern: bits)
    case ("f", 4): return Double(Float(bitPattern: UInt32(bits)))
    case ("f", 2): return halfToDouble(UInt16(bits))
    case ("u", _), ("b", _): return Double(bits)
    default:   // signed: sign-extend from the value's width
      let shift = UInt64(64 - 8 * d.bytes)
      return Double(Int64(bitPattern: bits << shift) >> Int64(shift))
    }
  }

  /// IEEE binary16 to double (subnormals, infinities and NaN included).
  static func halfToDouble(_ h: UInt16) -> Double {
    let sign = h & 0x8000 != 0 ? -1.0 : 1.0
    let exponent = Int(h >> 10 & 0x1F), fraction = Double(h & 0x3FF)
    if exponent == 0 { return sign * fraction * 0x1p-24 }
    if exponent == 31 { return fraction == 0 ? sign * .infinity : .nan }
    return sign * (1 + fraction / 1024) * Double(sign: .plus, exponent: exponent - 15, significand: 1)
  }

  /// The header of a format-1.0 `.npy` (C order), padded so the data starts at a multiple of
  /// 64 bytes, as numpy writes it.
  public static func npyHeader(descr: String, shape: [Int]) -> [UInt8] {
    let shapeText = shape.isEmpty ? "()" : shape.count == 1 ? "(\(shape[0]),)" : "(" + shape.map(String.init).joined(separator: ", ") + ")"
    var header = "{'descr': '\(descr)', 'fortran_order': False, 'shape': \(shapeText), }"
    let unpadded = 10 + header.utf8.count + 1
    header += String(repeating: " ", count: (64 - unpadded % 64) % 64) + "\n"
    return magic + [1, 0, UInt8(header.utf8.count & 0xFF), UInt8(header.utf8.count >> 8)] + Array(header.utf8)
  }

  /// A tensor as `.npy` bytes ('<f4' or '<f8', little-endian, C order).
  public static func encodeNpy(_ t: Tensor) throws -> [UInt8] {
    let header = npyHeader(descr: t.dtype == .float32 ? "<f4" : "<f8", shape: t.shape)
    let bytes = try Checked.mul(t.numel, t.dtype.byteSize, "npz: array of shape \(formatShape(t.shape))")
    // the contiguous copy (for a view) and the file's bytes
    try Storage.checkAllocatable(count: try Checked.add(bytes, t.isContiguous ? 0 : bytes, "npz: array size"), elementBytes: 1,
                                 what: "an .npy array of \(formatShape(t.shape))")
    let c = try t.detach().contiguous()
    var out = [UInt8]()
    out.reserveCapacity(header.count + bytes)
    out += header
    try c.withUnsafeBytes { out += $0 }   // little-endian, as this machine is
    return out
  }

  /// Every array of an `.npz` (named as np.load names them: the entry name without ".npy").
  public static func loadNpz(_ path: String, limit: Int = MemoryAccounting.maxAllocationBytes) throws -> [(String, Tensor)] {
    let zip = try ZipReader(path, what: "npz")
    var out: [(String, Tensor)] = []
    for e in zip.entries where !e.name.hasSuffix("/") {
      let name = e.name.hasSuffix(".npy") ? String(e.name.dropLast(4)) : e.name
      out.append((name, try decodeNpy(try zip.read(e, limit: limit, what: "npz"), what: "npz: '\(path)' array '\(name)'")))
    }
    return out
  }

  /// Writes arrays as an `.npz` (stored entries "<name>.npy", as np.savez), atomically.
  public static func saveNpz(_ arrays: [(String, Tensor)], to path: String) throws {
    // every array's bytes, the archive built around them (grown by doubling) and its copy to disk
    var total = 0
    for (name, t) in arrays {
      total = try Checked.add(total, try Checked.mul(t.numel, t.dtype.byteSize, "npz: array '\(name)'"), "npz: archive size")
    }
    try Storage.checkAllocatable(count: total, elementBytes: 4, what: "the .npz archive '\(path)'")
    try ZipWriter.write(try arrays.map { (name: $0.0 + ".npy", data: try encodeNpy($0.1)) }, to: path)
  }
}
