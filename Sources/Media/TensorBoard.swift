import Foundation
import Tensor

/// TensorBoard event files, written by luagan itself (no TensorFlow): scalars, PNG images and
/// the resume marker, for `tensorboard --logdir runs/`.
///
/// The file is a TFRecord file (TensorFlow's tensorflow/core/lib/io/record_writer.cc); each
/// record is
///
///     uint64 length (little-endian) | uint32 masked CRC-32C of those 8 bytes
///     | data (length bytes)         | uint32 masked CRC-32C of the data
///
/// and each record's data is an Event protocol buffer (tensorflow/core/util/event.proto and
/// tensorflow/core/framework/summary.proto), of which luagan writes
///
///     Event      { double wall_time = 1; int64 step = 2; oneof what { string file_version = 3;
///                  Summary summary = 5; SessionLog session_log = 7; } }   // (6: log_message, deprecated)
///     Summary    { repeated Value value = 1; }
///     Value      { string tag = 1; oneof value { float simple_value = 2; Image image = 4; } }
///     Image      { int32 height = 1; int32 width = 2; int32 colorspace = 3;   // = channels, 1..4
///                  bytes encoded_image_string = 4; }                          // a PNG file
///     SessionLog { SessionStatus status = 1; }                                 // START = 1
///
/// The first record is Event { file_version = "brain.Event:2" }. The file is
/// `<dir>/events.out.tfevents.<unix seconds>.<hostname>` (with ".1", ".2", ... when a file of
/// that name exists: TensorBoard reads a folder's files in name order, so a later session's
/// file comes after an earlier one's). Every call writes whole records with write(2) straight
/// to the file (no buffer to flush: a reader sees them at once, a killed run keeps them); a
/// failed write is cut back off, so the file never ends in a torn record.
public final class TensorBoardWriter {
  /// The event file's path.
  public let path: String
  private var fd: Int32 = -1
  private var size: off_t = 0  // bytes of whole records in the file

  /// Creates `directory` if missing and a new event file in it. Errors name the folder.
  public init(directory: String, wallTime: Double = TensorBoardWriter.now()) throws {
    do { try ensureDirectory(directory) } catch let e as TensorError { throw TensorError("log.TensorBoard: \(e.message)") }
    let base = "\(directory)/events.out.tfevents.\(Int(wallTime)).\(Self.hostname())"
    var name = base, file: Int32 = -1
    for n in 1...1000 {
      file = open(name, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0o644)
      if file >= 0 || errno != EEXIST { break }
      name = "\(base).\(n)"
    }
    guard file >= 0 else { throw TensorError("log.TensorBoard: cannot create '\(name)': \(String(cString: strerror(errno)))") }
    path = name
    fd = file
    do {
      try append([Self.event(wallTime: wallTime, step: 0) { $0.string(3, "brain.Event:2") }])
    } catch {
      closeDescriptor(fd)
      fd = -1
      unlink(path)
      throw error
    }
  }

  deinit { close() }

  /// Seconds since 1970 (the events' wall_time).
  public static func now() -> Double { Date().timeIntervalSince1970 }

  public var isClosed: Bool { fd < 0 }

  /// Closes the file (again: nothing).
  public func close() {
    if fd >= 0 { closeDescriptor(fd) }
    fd = -1
  }

  /// One event holding every (tag, value) as a float32 simple_value (TensorBoard's scalars).
  public func scalars(step: Int, _ values: [(tag: String, value: Double)], wallTime: Double = now()) throws {
    var summary = ProtoMessage()
    for (tag, v) in values {
      var value = ProtoMessage()
      value.string(1, tag)
      value.float(2, Float(v))
      summary.message(1, value)
    }
    try append([Self.event(wallTime: wallTime, step: step) { $0.message(5, summary) }])
  }

  /// One image: a (C, H, W) tensor (C = 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA) or an (H, W)
  /// gray one, `range` mapped to [0, 255] as image.save does, stored as the PNG file's bytes.
  public func image(step: Int, tag: String, _ x: Tensor, range: (Double, Double) = (0, 1), wallTime: Double = now()) throws {
    let png = try Images.encodePNG(x, range: range, what: "log.TensorBoard")
    let (c, h, w) = x.rank == 2 ? (1, x.shape[0], x.shape[1]) : (x.shape[0], x.shape[1], x.shape[2])
    var image = ProtoMessage()
    image.int64(1, Int64(h))
    image.int64(2, Int64(w))
    image.int64(3, Int64(c))
    image.bytes(4, png)
    var value = ProtoMessage()
    value.string(1, tag)
    value.message(4, image)
    var summary = ProtoMessage()
    summary.message(1, value)
    try append([Self.event(wallTime: wallTime, step: step) { $0.message(5, summary) }])
  }

  /// The resume marker: SessionLog START at `step`, TensorBoard's own sign of a (re)start, so a
  /// resumed run does not draw the stale tail of the session it replaces. Write one at the start
  /// of every session, the first included: TensorBoard's readers differ. event_accumulator drops,
  /// at each marker, every point read so far whose step is >= `step`; plugin_event_accumulator
  /// (the server's Python loader) does so from the second marker on, taking the first for the
  /// run's start; the Rust data server ignores markers and drops a series' points at and after
  /// any step that comes again (in the resumed session, as soon as it draws that series).
  public func resume(step: Int, wallTime: Double = now()) throws {
    var log = ProtoMessage()
    log.int64(1, 1)  // status = START
    try append([Self.event(wallTime: wallTime, step: step) { $0.message(7, log) }])  // session_log
  }

  // MARK: - Records

  static func event(wallTime: Double, step: Int, _ body: (inout ProtoMessage) -> Void) -> [UInt8] {
    var e = ProtoMessage()
    e.double(1, wallTime)
    e.int64(2, Int64(step))
    body(&e)
    return e.data
  }

  /// The TFRecord framing of one record's data.
  public static func record(_ data: [UInt8]) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(data.count + 16)
    let length = littleEndianBytes(UInt64(data.count))
    out += length
    out += littleEndianBytes(CRC32C.masked(length))
    out += data
    out += littleEndianBytes(CRC32C.masked(data))
    return out
  }

  /// Writes the records whole, or cuts the file back to its last whole record and throws.
  private func append(_ events: [[UInt8]]) throws {
    guard fd >= 0 else { throw TensorError("log.TensorBoard: the writer of '\(path)' is closed") }
    let bytes = events.flatMap(Self.record)
    var failure: String? = nil
    bytes.withUnsafeBytes { raw in
      var off = 0
      while off < raw.count {
        let n = write(fd, raw.baseAddress! + off, raw.count - off)
        if n < 0 && errno == EINTR { continue }
        if n <= 0 { failure = n < 0 ? String(cString: strerror(errno)) : "no bytes written"; return }
        off += n
      }
    }
    if let failure {
      _ = ftruncate(fd, size)  // O_APPEND: the next record starts at the cut
      throw TensorError("log.TensorBoard: cannot write '\(path)': \(failure)")
    }
    size += off_t(bytes.count)
  }

  static func hostname() -> String {
    var buf = [CChar](repeating: 0, count: 256)
    guard gethostname(&buf, buf.count - 1) == 0 else { return "localhost" }
    let name = String(cString: buf).replacingOccurrences(of: "/", with: "_")
    return name.isEmpty ? "localhost" : name
  }
}

private func closeDescriptor(_ fd: Int32) { close(fd) }

private func littleEndianBytes<T: FixedWidthInteger>(_ v: T) -> [UInt8] { withUnsafeBytes(of: v.littleEndian) { Array($0) } }

/// CRC-32C (Castagnoli: reflected polynomial 0x82F63B78, initial and final XOR 0xFFFFFFFF), the
/// checksum of TFRecord framing. Check value: checksum of "123456789" = 0xE3069283.
public enum CRC32C {
  static let table: [UInt32] = (0..<256).map { n in
    var c = UInt32(n)
    for _ in 0..<8 { c = c & 1 != 0 ? (c >> 1) ^ 0x82F6_3B78 : c >> 1 }
    return c
  }

  public static func checksum(_ bytes: [UInt8]) -> UInt32 {
    var c: UInt32 = 0xFFFF_FFFF
    for b in bytes { c = table[Int((c ^ UInt32(b)) & 0xFF)] ^ (c >> 8) }
    return c ^ 0xFFFF_FFFF
  }

  /// TFRecord's masked form (a CRC of bytes that hold CRCs is weak): rotated right by 15 bits,
  /// plus 0xa282ead8.
  public static func masked(_ bytes: [UInt8]) -> UInt32 {
    let c = checksum(bytes)
    return ((c >> 15) | (c << 17)) &+ 0xA282_EAD8
  }
}

/// A protocol buffer being encoded, as much of the wire format as event.proto needs: keys
/// (field number << 3 | wire type), varints (type 0), 64-bit (1), length-delimited (2) and
/// 32-bit (5) fields, all little-endian.
struct ProtoMessage {
  var data: [UInt8] = []

  mutating func varint(_ v: UInt64) {
    var v = v
    while v >= 0x80 {
      data.append(UInt8(v & 0x7F) | 0x80)
      v >>= 7
    }
    data.append(UInt8(v))
  }
  mutating func key(_ field: Int, _ wireType: UInt64) { varint(UInt64(field) << 3 | wireType) }
  /// int64 and int32 fields (a negative value takes 10 bytes, two's complement).
  mutating func int64(_ field: Int, _ v: Int64) { key(field, 0); varint(UInt64(bitPattern: v)) }
  mutating func double(_ field: Int, _ v: Double) { key(field, 1); data += littleEndianBytes(v.bitPattern) }
  mutating func float(_ field: Int, _ v: Float) { key(field, 5); data += littleEndianBytes(v.bitPattern) }
  mutating func bytes(_ field: Int, _ b: [UInt8]) { key(field, 2); varint(UInt64(b.count)); data += b }
  mutating func string(_ field: Int, _ s: String) { bytes(field, Array(s.utf8)) }
  mutating func message(_ field: Int, _ m: ProtoMessage) { bytes(field, m.data) }
}
