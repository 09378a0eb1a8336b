import Foundation

/// Files and folders the way luagan touches them: whole regular files read with their size
/// checked first, writes that land all at once (a temporary file renamed into place), folders
/// made through the OS (never a shell).

/// The bytes of a regular file (not a folder, a device or a pipe, which may never end), after
/// checking its size can be held in memory. Errors start with `what`.
public func readRegularFile(_ path: String, what: String, limit: Int = MemoryAccounting.maxAllocationBytes,
                            copies: Int = 1) throws -> Data {
  var st = stat()
  guard stat(path, &st) == 0 else { throw TensorError("\(what): no such file '\(path)'") }
  guard (st.st_mode & S_IFMT) == S_IFREG else { throw TensorError("\(what): '\(path)' is not a regular file") }
  let size = Int(st.st_size)
  guard size <= limit else {
    throw TensorError("\(what): '\(path)' is \(Memory.humanBytes(size)), more than the limit of \(Memory.humanBytes(limit))")
  }
  // `copies`: how many copies of the bytes the caller will hold at once (a decode, a string)
  try Memory.checkAllocatable(count: size, elementBytes: Swift.max(1, copies), what: "the contents of '\(path)'")
  let fd = open(path, O_RDONLY)
  guard fd >= 0 else { throw TensorError("\(what): cannot open '\(path)': \(String(cString: strerror(errno)))") }
  defer { close(fd) }
  var data = Data(count: size)
  let got = data.withUnsafeMutableBytes { raw -> Int in
    var off = 0
    while off < size {
      let n = read(fd, raw.baseAddress! + off, size - off)
      if n <= 0 { break }
      off += n
    }
    return off
  }
  guard got == size else { throw TensorError("\(what): cannot read '\(path)' (\(got) of \(size) bytes)") }
  return data
}

/// The first `count` bytes of a file (fewer if it is shorter; none if it cannot be read), to
/// tell formats apart by their magic before reading them.
public func fileHead(_ path: String, count: Int) -> [UInt8] {
  var st = stat()
  guard stat(path, &st) == 0, (st.st_mode & S_IFMT) == S_IFREG else { return [] }   // a FIFO's open would block
  let fd = open(path, O_RDONLY)
  guard fd >= 0 else { return [] }
  defer { close(fd) }
  var out = [UInt8](repeating: 0, count: count)
  let n = out.withUnsafeMutableBytes { read(fd, $0.baseAddress, count) }
  return Array(out.prefix(Swift.max(0, n)))
}

/// Writes `data` to a temporary file beside `path`, syncs it, and renames it into place, so a
/// crash leaves either the old file or the new one, never a torn one.
/// Writes a file of `size` bytes that `produce` hands over piece by piece, atomically: the
/// folder must exist and its file system must have room for `size` bytes before anything is
/// written; the pieces go to a temporary file beside `path`, which is flushed and renamed over
/// it. On any failure (a full disk, an error from `produce`) the temporary file is removed and
/// `path` is as it was: no partial file is ever left under the name.
public func writeAtomically(to path: String, size: Int,
                            _ produce: (_ write: (UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws {
  let url = URL(fileURLWithPath: path)
  let dir = url.deletingLastPathComponent().path
  guard FileManager.default.fileExists(atPath: dir.isEmpty ? "." : dir) else {
    throw TensorError("cannot write '\(path)': folder '\(dir)' does not exist")
  }
  var fs = statvfs()
  if statvfs(dir.isEmpty ? "." : dir, &fs) == 0 {
    let (free, overflow) = Int(fs.f_bavail).multipliedReportingOverflow(by: Int(fs.f_frsize))
    if !overflow && size > free {
      let needs = Memory.humanBytes(size)
      throw TensorError("cannot write '\(path)': it needs \(needs), its file system has \(Memory.humanBytes(free)) free")
    }
  }
  let tmp = path + ".tmp-\(getpid())"
  let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
  guard fd >= 0 else { throw TensorError("cannot write '\(path)': \(String(cString: strerror(errno)))") }
  var written = 0
  do {
    try produce { raw in
      var off = 0
      while off < raw.count {
        let w = write(fd, raw.baseAddress! + off, raw.count - off)
        if w <= 0 { throw TensorError("cannot write '\(path)': \(String(cString: strerror(errno)))") }
        off += w
      }
      written += raw.count
    }
    guard written == size else { throw TensorError("cannot write '\(path)': \(written) bytes produced, \(size) expected") }
    guard fsync(fd) == 0 else { throw TensorError("cannot write '\(path)': \(String(cString: strerror(errno)))") }
  } catch {
    close(fd)
    unlink(tmp)
    throw error
  }
  close(fd)
  guard rename(tmp, path) == 0 else {
    let why = String(cString: strerror(errno))
    unlink(tmp)
    throw TensorError("cannot write '\(path)': \(why)")
  }
}

public func writeAtomically(_ data: Data, to path: String) throws {
  let url = URL(fileURLWithPath: path)
  let dir = url.deletingLastPathComponent().path
  guard FileManager.default.fileExists(atPath: dir.isEmpty ? "." : dir) else {
    throw TensorError("cannot write '\(path)': folder '\(dir)' does not exist")
  }
  let tmp = path + ".tmp-\(getpid())"
  let fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
  guard fd >= 0 else { throw TensorError("cannot write '\(path)': \(String(cString: strerror(errno)))") }
  var ok = true
  data.withUnsafeBytes { raw in
    var off = 0
    while off < raw.count {
      let w = write(fd, raw.baseAddress! + off, raw.count - off)
      if w <= 0 { ok = false; break }
      off += w
    }
  }
  if ok { ok = fsync(fd) == 0 }
  close(fd)
  guard ok, rename(tmp, path) == 0 else {
    unlink(tmp)
    throw TensorError("cannot write '\(path)': \(String(cString: strerror(errno)))")
  }
}

/// Creates the folder that will hold `path`, with its parents, if missing.
public func ensureParentDirectory(_ path: String) throws {
  let dir = URL(fileURLWithPath: path).deletingLastPathComponent().path
  try ensureDirectory(dir)
}

/// Creates `dir` with its parents if missing (mkdir -p); an error names the folder.
public func ensureDirectory(_ dir: String) throws {
  if dir.isEmpty { return }
  var isDir: ObjCBool = false
  if FileManager.default.fileExists(atPath: dir, isDirectory: &isDir) {
    guard isDir.boolValue else { throw TensorError("'\(dir)' exists and is not a folder") }
    return
  }
  do { try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true) } catch {
    throw TensorError("cannot create folder '\(dir)': \(error.localizedDescription)")
  }
}
