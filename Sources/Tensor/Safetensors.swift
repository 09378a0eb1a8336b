import Foundation

/// The safetensors format (huggingface/safetensors): an 8-byte little-endian header length, a
/// JSON header mapping names to {dtype, shape, data_offsets}, then the raw little-endian bytes.
/// Python's safetensors package reads what this writes and vice versa. Every field of a file
/// being read is validated, so a truncated or corrupt file is an error, never a crash.
public enum Safetensors {
  /// Writes `tensors` (and string metadata) to `path` atomically: a temporary file in the same
  /// folder, flushed, then renamed over the destination. Views are written a block at a time
  /// (an expanded view costs a block of memory, not its logical size), and a file larger than
  /// the free space of its file system is refused before a byte is written.
  public static func save(_ tensors: [(String, Tensor)], to path: String, metadata: [String: String] = [:]) throws {
    let (header, payload) = try encodeHeader(tensors, metadata: metadata)
    let size = try Checked.add(header.count, payload, "safetensors: the file's size")
    // safetensors has no strides: a view is written out in full, which is refused when its
    // full size is more than this process could hold (as making it contiguous would be).
    for (name, t) in tensors where !t.isContiguous {
      try Storage.checkAllocatable(count: t.numel, elementBytes: t.dtype.byteSize,
                                   what: "tensor '\(name)' written out in full (safetensors keeps no strides)")
    }
    try writeAtomically(to: path, size: size) { write in
      try header.withUnsafeBytes { try write($0) }
      for (_, t) in tensors { try writeElements(t, write) }
    }
  }

  /// The file as bytes in memory (for small state and tests; `save` streams).
  public static func encode(_ tensors: [(String, Tensor)], metadata: [String: String] = [:]) throws -> Data {
    let (header, payload) = try encodeHeader(tensors, metadata: metadata)
    try Storage.checkAllocatable(count: try Checked.add(header.count, payload, "safetensors: the file's size"), elementBytes: 1,
                                 what: "a safetensors file in memory")
    var data = Data(header)
    data.reserveCapacity(header.count + payload)
    for (_, t) in tensors { try writeElements(t, { data.append(contentsOf: $0) }) }
    return data
  }

  /// The 8-byte length, the JSON header (padded to 8 bytes) and the payload's size in bytes.
  static func encodeHeader(_ tensors: [(String, Tensor)], metadata: [String: String]) throws -> ([UInt8], Int) {
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
      let bytes = try Checked.mul(t.numel, t.dtype.byteSize, "safetensors: tensor '\(name)' of shape \(formatShape(t.shape))")
      let end = try Checked.add(offset, bytes, "safetensors: the file's size")
      members.append((name, .object([("dtype", .string(t.dtype == .float32 ? "F32" : "F64")), ("shape", .array(t.shape.map { .int($0) })),
                                      ("data_offsets", .array([.int(offset), .int(end)]))])))
      offset = end
    }
    var header = try JSON.object(members).serialized()
    while (header.utf8.count + 8) % 8 != 0 { header += " " }
    var out = [UInt8]()
    withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { out += $0 }
    out += Array(header.utf8)
    return (out, offset)
  }

  /// Hands `t`'s elements, row-major, to `write` in pieces of at most `blockBytes` (plus one
  /// row): contiguous data directly, views through a contiguous copy of one block at a time.
  static func writeElements(_ t: Tensor, _ write: (UnsafeRawBufferPointer) throws -> Void) throws {
    let blockBytes = 4 << 20
    if t.numel == 0 { return }
    if t.isContiguous || t.numel * t.dtype.byteSize <= blockBytes {
      let c = try t.contiguousData()
      try write(UnsafeRawBufferPointer(start: c.storage.raw + c.offset * t.dtype.byteSize, count: t.numel * t.dtype.byteSize))
      return
    }
    // A view larger than a block: rows of dim 0 a block at a time, or one row at a time
    // (recursively) when a single row is larger than a block.
    let rowBytes = t.numel / t.shape[0] * t.dtype.byteSize
    let rows = Swift.max(1, blockBytes / Swift.max(1, rowBytes))
    var start = 0
    while start < t.shape[0] {
      let n = Swift.min(rows, t.shape[0] - start)
      let block = try GradMode.withDisabled { try t.detach().narrow(dim: 0, start: start, length: n) }
      if n == 1 && rowBytes > blockBytes {
        try writeElements(try GradMode.withDisabled { try block.select(dim: 0, index: 0) }, write)
      } else {
        try writeElements(block, write)
      }
      start += n
    }
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
