import CZlib
import Foundation
import Tensor

/// ZIP archives (PKWARE APPNOTE 6.3): the container of NumPy's `.npz` and of stylegan2-ada's
/// dataset zips. The reader takes the central directory (ZIP64 included, as Python's zipfile
/// writes it past 65,535 entries or 4 GiB, and as NumPy forces it) and reads an entry on demand
/// with pread, stored or deflated, checking its size against the declared one and its CRC-32.
/// The writer stores entries uncompressed, which is what `np.savez` does.
public final class ZipReader {
  public struct Entry {
    public let name: String
    let method: Int, flags: Int
    public let compressedSize: Int, size: Int
    let crc: UInt32
    let localHeaderOffset: Int
  }

  public let path: String
  public private(set) var entries: [Entry] = []
  private let fd: Int32
  private let fileSize: Int

  /// Opens `path` and reads its central directory; `what` starts every error ("data.zipDataset").
  public init(_ path: String, what: String) throws {
    self.path = path
    var st = stat()
    guard stat(path, &st) == 0 else { throw TensorError("\(what): no such file '\(path)'") }
    guard (st.st_mode & S_IFMT) == S_IFREG else { throw TensorError("\(what): '\(path)' is not a regular file") }
    fileSize = Int(st.st_size)
    fd = open(path, O_RDONLY)
    guard fd >= 0 else { throw TensorError("\(what): cannot open '\(path)': \(String(cString: strerror(errno)))") }
    do { try readDirectory(what) } catch { close(fd); throw error }
  }

  deinit { close(fd) }

  private func bytes(at offset: Int, count: Int, _ what: String) throws -> [UInt8] {
    guard offset >= 0, count >= 0, offset <= fileSize, count <= fileSize - offset else {
      throw TensorError("\(what): '\(path)' is truncated or corrupt (a record at byte \(offset) runs past its end)")
    }
    // A sparse file can be terabytes long and cost nothing on disk: its size bounds nothing.
    try Storage.checkAllocatable(count: count, elementBytes: 1, what: "\(what): \(count) bytes of '\(path)'")
    var out = [UInt8](repeating: 0, count: count)
    let got = out.withUnsafeMutableBytes { raw -> Int in
      var done = 0
      while done < count {
        let n = pread(fd, raw.baseAddress! + done, count - done, off_t(offset + done))
        if n <= 0 { break }
        done += n
      }
      return done
    }
    guard got == count else { throw TensorError("\(what): cannot read '\(path)' (\(got) of \(count) bytes at \(offset))") }
    return out
  }

  private static func u16(_ b: [UInt8], _ i: Int) -> Int { Int(b[i]) | Int(b[i + 1]) << 8 }
  private static func u32(_ b: [UInt8], _ i: Int) -> Int { u16(b, i) | u16(b, i + 2) << 16 }
  private static func u64(_ b: [UInt8], _ i: Int) -> UInt64 { UInt64(u32(b, i)) | UInt64(u32(b, i + 4)) << 32 }

  /// Finds the end-of-central-directory record (the last 22 bytes + up to 64 KiB of comment),
  /// follows the ZIP64 locator when the counts or offsets overflow, then reads every entry.
  private func readDirectory(_ what: String) throws {
    let corrupt = TensorError("\(what): '\(path)' is not a zip file (no end of central directory record)")
    let tailLength = Swift.min(fileSize, 22 + 65535)
    let tail = try bytes(at: fileSize - tailLength, count: tailLength, what)
    guard tail.count >= 22, let eocd = stride(from: tail.count - 22, through: 0, by: -1).first(where: {
      tail[$0] == 0x50 && tail[$0 + 1] == 0x4b && tail[$0 + 2] == 5 && tail[$0 + 3] == 6
    }) else { throw corrupt }
    var count = Self.u16(tail, eocd + 10), dirSize = Self.u32(tail, eocd + 12), dirOffset = Self.u32(tail, eocd + 16)
    if count == 0xFFFF || dirSize == 0xFFFF_FFFF || dirOffset == 0xFFFF_FFFF {
      // ZIP64: the locator sits just before the EOCD and points at the ZIP64 EOCD record.
      let locAt = fileSize - tailLength + eocd - 20
      let loc = try bytes(at: locAt, count: 20, what)
      guard Self.u32(loc, 0) == 0x07064b50 else { throw TensorError("\(what): '\(path)' has a damaged ZIP64 locator") }
      let rec = try bytes(at: try Self.offset(Self.u64(loc, 8), what, path), count: 56, what)
      guard Self.u32(rec, 0) == 0x06064b50 else { throw TensorError("\(what): '\(path)' has a damaged ZIP64 directory record") }
      count = try Self.offset(Self.u64(rec, 32), what, path)
      dirSize = try Self.offset(Self.u64(rec, 40), what, path)
      dirOffset = try Self.offset(Self.u64(rec, 48), what, path)
    }
    guard count <= fileSize / 46 + 1 else { throw TensorError("\(what): '\(path)' declares \(count) entries, more than it can hold") }
    let dir = try bytes(at: dirOffset, count: dirSize, what)
    guard count <= dirSize / 46 + 1 else {
      throw TensorError("\(what): '\(path)' declares \(count) entries in a directory of \(dirSize) bytes")
    }
    var at = 0
    entries.reserveCapacity(count)
    for k in 0..<count {
      guard at + 46 <= dir.count, Self.u32(dir, at) == 0x02014b50 else {
        throw TensorError("\(what): '\(path)' has a damaged central directory (entry \(k + 1) of \(count))")
      }
      let nameLength = Self.u16(dir, at + 28), extraLength = Self.u16(dir, at + 30), commentLength = Self.u16(dir, at + 32)
      let next = at + 46 + nameLength + extraLength + commentLength
      guard next <= dir.count else { throw TensorError("\(what): '\(path)' has a damaged central directory (entry \(k + 1))") }
      let name = String(decoding: dir[(at + 46)..<(at + 46 + nameLength)], as: UTF8.self)
      var compressed = UInt64(Self.u32(dir, at + 20)), size = UInt64(Self.u32(dir, at + 24))
      var local = UInt64(Self.u32(dir, at + 42))
      // ZIP64 extra field (id 1): the 8-byte values, in this order, of the fields that overflowed.
      var e = at + 46 + nameLength
      let extraEnd = e + extraLength
      while e + 4 <= extraEnd {
        let id = Self.u16(dir, e), length = Self.u16(dir, e + 2)
        guard e + 4 + length <= extraEnd else { break }
        if id == 1 {
          var f = e + 4
          func take() -> UInt64? { guard f + 8 <= e + 4 + length else { return nil }; defer { f += 8 }; return Self.u64(dir, f) }
          if size == 0xFFFF_FFFF, let v = take() { size = v }
          if compressed == 0xFFFF_FFFF, let v = take() { compressed = v }
          if local == 0xFFFF_FFFF, let v = take() { local = v }
        }
        e += 4 + length
      }
      entries.append(Entry(name: name, method: Self.u16(dir, at + 10), flags: Self.u16(dir, at + 8),
                           compressedSize: try Self.offset(compressed, what, path), size: try Self.offset(size, what, path),
                           crc: UInt32(Self.u32(dir, at + 16)), localHeaderOffset: try Self.offset(local, what, path)))
      at = next
    }
  }

  private static func offset(_ v: UInt64, _ what: String, _ path: String) throws -> Int {
    guard v <= UInt64(Int.max / 2) else { throw TensorError("\(what): '\(path)' declares an offset or size of \(v) bytes") }
    return Int(v)
  }

  /// The entry named `name`, if any.
  public func entry(named name: String) -> Entry? { entries.first { $0.name == name } }

  /// An entry's bytes, inflated if deflated; refused before reading when it declares more than
  /// `limit` bytes, and checked against its declared size and CRC-32 after.
  public func read(_ entry: Entry, limit: Int, what: String) throws -> [UInt8] {
    let label = "\(what): '\(path)' entry '\(entry.name)'"
    guard entry.flags & 1 == 0 else { throw TensorError("\(label) is encrypted") }
    guard entry.size <= limit else {
      throw TensorError("\(label) declares \(Storage.humanBytes(entry.size)), more than the limit of \(Storage.humanBytes(limit))")
    }
    // What the entry declares is bounded by the bytes it holds before anything is allocated:
    // a stored entry is its bytes, and deflate expands at most 1032:1 (RFC 1951: a 258-byte
    // match costs at least 2 bits), so a 200-byte entry cannot honestly declare gigabytes.
    switch entry.method {
    case 0 where entry.size != entry.compressedSize:
      throw TensorError("\(label) is stored but declares \(entry.size) bytes in \(entry.compressedSize); it is corrupt")
    case 8 where entry.size / 1032 > entry.compressedSize + 1:
      throw TensorError("\(label) declares \(Storage.humanBytes(entry.size)) from \(entry.compressedSize) deflated bytes, "
                        + "more than deflate can expand them to; it is corrupt")
    default: break
    }
    try Storage.checkAllocatable(count: entry.size, elementBytes: 2, what: "\(label) read into memory")
    let header = try bytes(at: entry.localHeaderOffset, count: 30, what)
    guard Self.u32(header, 0) == 0x04034b50 else { throw TensorError("\(label): damaged local header") }
    let dataAt = entry.localHeaderOffset + 30 + Self.u16(header, 26) + Self.u16(header, 28)
    let raw = try bytes(at: dataAt, count: entry.compressedSize, what)
    var out: [UInt8]
    switch entry.method {
    case 0:
      out = raw
    case 8:
      out = try Self.inflateRaw(raw, expected: entry.size, label)
    default:
      throw TensorError("\(label) uses compression method \(entry.method); only stored (0) and deflate (8) are read")
    }
    guard out.count == entry.size else { throw TensorError("\(label) holds \(out.count) bytes but declares \(entry.size)") }
    let crc = out.withUnsafeBufferPointer { UInt32(crc32(0, $0.baseAddress, uInt($0.count))) }
    guard crc == entry.crc else { throw TensorError("\(label) is corrupt (CRC-32 mismatch)") }
    return out
  }

  /// Raw deflate (no zlib header) into exactly `expected` bytes; more output is an error.
  static func inflateRaw(_ input: [UInt8], expected: Int, _ label: String) throws -> [UInt8] {
    var out = [UInt8](repeating: 0, count: expected + 1)
    var stream = z_stream()
    guard inflateInit2_(&stream, -15, ZLIB_VERSION, Int32(MemoryLayout<z_stream>.size)) == Z_OK else {
      throw TensorError("\(label): zlib could not start")
    }
    defer { inflateEnd(&stream) }
    var input = input
    let status: Int32 = input.withUnsafeMutableBufferPointer { src in
      out.withUnsafeMutableBufferPointer { dst in
        stream.next_in = src.baseAddress; stream.avail_in = uInt(src.count)
        stream.next_out = dst.baseAddress; stream.avail_out = uInt(dst.count)
        return inflate(&stream, Z_FINISH)
      }
    }
    guard status == Z_STREAM_END else { throw TensorError("\(label) is corrupt or truncated (zlib status \(status))") }
    out.removeLast(out.count - Int(stream.total_out))
    return out
  }
}

/// Writes a zip of stored (uncompressed) entries, as `np.savez` does; ZIP64 records are added
/// when an entry or the archive passes 4 GiB. The file lands atomically (writeAtomically).
public enum ZipWriter {
  public static func write(_ entries: [(name: String, data: [UInt8])], to path: String) throws {
    var out = [UInt8](), directory = [UInt8]()
    func put16(_ b: inout [UInt8], _ v: Int) { b += [UInt8(v & 0xFF), UInt8(v >> 8 & 0xFF)] }
    func put32(_ b: inout [UInt8], _ v: Int) { put16(&b, v & 0xFFFF); put16(&b, v >> 16 & 0xFFFF) }
    func put64(_ b: inout [UInt8], _ v: Int) { put32(&b, v & 0xFFFF_FFFF); put32(&b, v >> 32) }
    for (name, data) in entries {
      let nameBytes = Array(name.utf8)
      guard nameBytes.count < 0xFFFF else { throw TensorError("zip: entry name '\(name.prefix(40))...' is too long") }
      let crc = data.withUnsafeBufferPointer { Int(crc32(0, $0.baseAddress, uInt($0.count))) }
      let offset = out.count
      let big = data.count >= 0xFFFF_FFFF || offset >= 0xFFFF_FFFF
      // ZIP64 extra field: both sizes in the local header, and the offset too in the directory.
      var localExtra = [UInt8](), centralExtra = [UInt8]()
      if big {
        put16(&localExtra, 1); put16(&localExtra, 16); put64(&localExtra, data.count); put64(&localExtra, data.count)
        put16(&centralExtra, 1); put16(&centralExtra, 24); put64(&centralExtra, data.count); put64(&centralExtra, data.count)
        put64(&centralExtra, offset)
      }
      for central in [false, true] {
        var h = [UInt8]()
        put32(&h, central ? 0x02014b50 : 0x04034b50)
        if central { put16(&h, big ? 45 : 20) }                    // version made by
        put16(&h, big ? 45 : 20); put16(&h, 0x800); put16(&h, 0)   // version needed, UTF-8 names, stored
        put16(&h, 0); put16(&h, 0x21)                                // time 00:00:00, date 1980-01-01
        put32(&h, crc); put32(&h, big ? 0xFFFF_FFFF : data.count); put32(&h, big ? 0xFFFF_FFFF : data.count)
        let extra = central ? centralExtra : localExtra
        put16(&h, nameBytes.count); put16(&h, extra.count)
        if central { put16(&h, 0); put16(&h, 0); put16(&h, 0); put32(&h, 0); put32(&h, big ? 0xFFFF_FFFF : offset) }
        h += nameBytes + extra
        if central { directory += h } else { out += h + data }
      }
    }
    let dirOffset = out.count, count = entries.count
    out += directory
    if dirOffset >= 0xFFFF_FFFF || count >= 0xFFFF {
      let recordAt = out.count
      put32(&out, 0x06064b50); put64(&out, 44); put16(&out, 45); put16(&out, 45); put32(&out, 0); put32(&out, 0)
      put64(&out, count); put64(&out, count); put64(&out, directory.count); put64(&out, dirOffset)
      put32(&out, 0x07064b50); put32(&out, 0); put64(&out, recordAt); put32(&out, 1)
    }
    put32(&out, 0x06054b50); put16(&out, 0); put16(&out, 0)
    put16(&out, Swift.min(count, 0xFFFF)); put16(&out, Swift.min(count, 0xFFFF))
    put32(&out, Swift.min(directory.count, 0xFFFF_FFFF)); put32(&out, Swift.min(dirOffset, 0xFFFF_FFFF)); put16(&out, 0)
    try writeAtomically(Data(out), to: path)
  }
}
