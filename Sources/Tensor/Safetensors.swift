import Foundation

/// The safetensors format (huggingface/safetensors): an 8-byte little-endian header length, a
/// JSON header mapping names to {dtype, shape, data_offsets}, then the raw little-endian bytes.
/// Python's safetensors package reads what this writes and vice versa. Every field of a file
/// being read is validated, so a truncated or corrupt file is an error, never a crash.
public enum Safetensors {
  /// Writes `tensors` (and string metadata) to `path` atomically: a temporary file in the same
  /// folder, flushed, then renamed over the destination.
  public static func save(_ tensors: [(String, Tensor)], to path: String, metadata: [String: String] = [:]) throws {
    let data = try encode(tensors, metadata: metadata)
    try writeAtomically(data, to: path)
  }

  public static func encode(_ tensors: [(String, Tensor)], metadata: [String: String] = [:]) throws -> Data {
    var seen = Set<String>()
    for (name, _) in tensors {
      guard !name.isEmpty, name != "__metadata__" else { throw TensorError("safetensors: invalid tensor name '\(name)'") }
      guard seen.insert(name).inserted else { throw TensorError("safetensors: duplicate tensor name '\(name)'") }
    }
    var members: [(String, JSON)] = []
    if !metadata.isEmpty {
      members.append(("__metadata__", .object(metadata.sorted { $0.key < $1.key }.map { ($0.key, JSON.string($0.value)) })))
    }
    var offset = 0
    for (name, t) in tensors {
      let bytes = t.numel * t.dtype.byteSize
      members.append((name, .object([("dtype", .string(t.dtype == .float32 ? "F32" : "F64")), ("shape", .array(t.shape.map { .int($0) })),
                                      ("data_offsets", .array([.int(offset), .int(offset + bytes)]))])))
      offset += bytes
    }
    var header = try JSON.object(members).serialized()
    while (header.utf8.count + 8) % 8 != 0 { header += " " }
    var data = Data()
    var len = UInt64(header.utf8.count).littleEndian
    withUnsafeBytes(of: &len) { data.append(contentsOf: $0) }
    data.append(contentsOf: Array(header.utf8))
    data.reserveCapacity(data.count + offset)
    for (_, t) in tensors {
      let c = try t.contiguousData()
      data.append(Data(bytesNoCopy: c.storage.raw + c.offset * t.dtype.byteSize, count: t.numel * t.dtype.byteSize, deallocator: .none))
    }
    return data
  }

  /// Reads every tensor in the file (float types become float32/float64 tensors; integer and
  /// half types are converted to float32), plus the metadata, in file order.
  public static func load(_ path: String) throws -> (tensors: [(String, Tensor)], metadata: [String: String]) {
    try decode(readRegularFile(path, what: "safetensors"), name: path)
  }

  public static func decode(_ data: Data, name: String = "data") throws -> (tensors: [(String, Tensor)], metadata: [String: String]) {
    func bad(_ why: String) -> TensorError { TensorError("safetensors: '\(name)' is not a valid safetensors file: \(why)") }
    guard data.count >= 8 else { throw bad("\(data.count) bytes, shorter than the 8-byte header length") }
    let n = data.prefix(8).withUnsafeBytes { $0.loadUnaligned(as: UInt64.self).littleEndian }
    guard n <= UInt64(data.count - 8), n <= 100_000_000 else { throw bad("header length \(n) exceeds the file size \(data.count)") }
    let header: JSON
    do { header = try JSON.parse(data[8..<(8 + Int(n))], name: "header") } catch let e as TensorError { throw bad(e.message) }
    guard case .object(let members) = header else { throw bad("the header is not a JSON object") }
    let base = 8 + Int(n), payload = data.count - base
    var metadata: [String: String] = [:]
    if let m = header["__metadata__"] {
      guard case .object(let md) = m else { throw bad("__metadata__ is not an object") }
      for (k, v) in md {
        switch v {
        case .string(let s): metadata[k] = s
        case .int(let i): metadata[k] = String(i)
        case .double(let d): metadata[k] = String(d)
        case .bool(let b): metadata[k] = String(b)
        default: throw bad("__metadata__ entry '\(k)' is not a string")
        }
      }
    }
    var entries: [(String, Int, Tensor)] = []
    var seen = Set<String>()
    for (key, value) in members where key != "__metadata__" {
      guard seen.insert(key).inserted else { throw bad("entry '\(key)' appears twice") }
      // A JSON number that is a non-negative integer count.
      func count(_ v: JSON?) -> Int? { if case .int(let i)? = v, i >= 0 { return i }; return nil }
      guard case .string(let dt)? = value["dtype"], case .array(let shapeItems)? = value["shape"],
            case .array(let offs)? = value["data_offsets"], offs.count == 2 else {
        throw bad("entry '\(key)' lacks dtype, shape or data_offsets")
      }
      let shape = try shapeItems.map { v -> Int in
        guard let i = count(v) else { throw bad("entry '\(key)' has an invalid shape") }
        return i
      }
      guard let b = count(offs[0]), let e = count(offs[1]), e >= b, e <= payload else {
        throw bad("entry '\(key)' has data offsets outside the \(payload)-byte payload")
      }
      let size: Int
      switch dt {
      case "F32", "I32", "U32": size = 4
      case "F64", "I64", "U64": size = 8
      case "F16", "BF16", "I16", "U16": size = 2
      case "I8", "U8", "BOOL": size = 1
      default: throw bad("entry '\(key)' has unsupported dtype \(dt)")
      }
      guard let count = try? Tensor.checkedCount(shape), count.multipliedReportingOverflow(by: size) == (e - b, false) else {
        throw bad("entry '\(key)' has \(e - b) bytes but shape \(formatShape(shape)) of \(dt) needs a different size")
      }
      let t = try Tensor.empty(shape, dtype: dt == "F64" ? .float64 : .float32)
      data.withUnsafeBytes { raw in
        let src = raw.baseAddress! + base + b
        switch dt {
        case "F32": memcpy(t.storage.raw, src, count * 4)
        case "F64": memcpy(t.storage.raw, src, count * 8)
        default:
          let dst = t.pointer(Float.self)
          for i in 0..<count {
            let p = src + i * size
            switch dt {
            case "I64": dst[i] = Float(p.loadUnaligned(as: Int64.self))
            case "U64": dst[i] = Float(p.loadUnaligned(as: UInt64.self))
            case "I32": dst[i] = Float(p.loadUnaligned(as: Int32.self))
            case "U32": dst[i] = Float(p.loadUnaligned(as: UInt32.self))
            case "I16": dst[i] = Float(p.loadUnaligned(as: Int16.self))
            case "U16": dst[i] = Float(p.loadUnaligned(as: UInt16.self))
            case "I8": dst[i] = Float(p.loadUnaligned(as: Int8.self))
            case "U8", "BOOL": dst[i] = Float(p.loadUnaligned(as: UInt8.self))
            case "F16": dst[i] = Float(Float16(bitPattern: p.loadUnaligned(as: UInt16.self)))
            default: dst[i] = Float(bitPattern: UInt32(p.loadUnaligned(as: UInt16.self)) << 16)  // BF16
            }
          }
        }
      }
      entries.append((key, b, t))
    }
    entries.sort { $0.1 != $1.1 ? $0.1 < $1.1 : $0.0 < $1.0 }
    return (entries.map { ($0.0, $0.2) }, metadata)
  }
}
