import Foundation
import Synchronization

/// Bytes of tensor storage alive right now, and bytes allocated since the host last asked.
/// The Lua runtime turns the second figure into garbage-collector debt (DESIGN.md house decision 3), so a
/// loop that drops big tensors on the floor is collected at the pace it allocates.
public enum MemoryAccounting {
  static let live = Atomic<Int>(0)
  static let peak = Atomic<Int>(0)
  static let pending = Atomic<Int>(0)

  /// Bytes held by tensor storages that are still alive.
  public static var liveBytes: Int { live.load(ordering: .relaxed) }
  /// The most bytes alive at once since start (or since `resetPeak`).
  public static var peakBytes: Int { peak.load(ordering: .relaxed) }
  public static func resetPeak() { peak.store(live.load(ordering: .relaxed), ordering: .relaxed) }
  /// Bytes allocated since the last call; resets the counter.
  public static func takePendingBytes() -> Int { pending.exchange(0, ordering: .relaxed) }

  static func allocated(_ bytes: Int) {
    let now = live.wrappingAdd(bytes, ordering: .relaxed).newValue
    _ = pending.wrappingAdd(bytes, ordering: .relaxed)
    var old = peak.load(ordering: .relaxed)
    while now > old {
      let (exchanged, current) = peak.compareExchange(expected: old, desired: now, ordering: .relaxed)
      if exchanged { break }
      old = current
    }
  }
  static func freed(_ bytes: Int) { live.wrappingSubtract(bytes, ordering: .relaxed) }

  /// MemAvailable from /proc/meminfo: what can be allocated without swapping. Big requests
  /// are checked against it, because Linux overcommits: a huge malloc succeeds and the OOM
  /// killer ends the process later, when the pages are touched.
  public static func availableBytes() -> Int? {
    guard let text = readSmallFile("/proc/meminfo") else { return nil }
    for line in text.split(separator: "\n") where line.hasPrefix("MemAvailable:") {
      let parts = line.split(separator: " ")
      if parts.count >= 2, let kb = Int(parts[1]) { return kb * 1024 }
    }
    return nil
  }

  /// The memory this process may still take, and the limit that decides it: the least of its
  /// address-space limit (RLIMIT_AS, as `prlimit --as` or `ulimit -v` set it) less what it has
  /// mapped, its cgroup's memory.max (and every ancestor's) less what the group uses, and the
  /// machine's MemAvailable plus the allocator's pool. An allocation past it would fail inside
  /// malloc (an abort for a Swift array) or wake the OOM killer, so it is refused before.
  public static func headroom() -> (bytes: Int, limit: String)? {
    var best: (bytes: Int, limit: String)? = nil
    func consider(_ bytes: Int, _ limit: String) {
      if best == nil || bytes < best!.bytes { best = (Swift.max(0, bytes), limit) }
    }
    if let available = availableBytes() {
      consider(available &+ StorageAllocator.cachedBytes, "the machine's available memory")
    }
    var rl = rlimit()
    if getrlimit(Int32(RLIMIT_AS.rawValue), &rl) == 0, rl.rlim_cur < UInt64(Int.max),
       let mapped = mappedBytes() {
      consider(Int(rl.rlim_cur) - mapped, "the process's address-space limit (RLIMIT_AS) of \(Storage.humanBytes(Int(rl.rlim_cur)))")
    }
    for group in cgroupMemoryLimits() {
      consider(group.max - group.current + StorageAllocator.cachedBytes,
               "the cgroup memory limit (memory.max) of \(Storage.humanBytes(group.max))")
    }
    return best
  }

  /// Virtual memory mapped by this process (the first field of /proc/self/statm, in pages).
  static func mappedBytes() -> Int? {
    guard let text = readSmallFile("/proc/self/statm"), let pages = Int(text.split(separator: " ").first ?? "") else { return nil }
    return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
  }

  /// memory.max and memory.current of this process's cgroup (v2) and of each ancestor that
  /// sets a limit; the cgroup v1 memory controller's limit and usage when that is what is mounted.
  static func cgroupMemoryLimits() -> [(max: Int, current: Int)] {
    guard let text = readSmallFile("/proc/self/cgroup") else { return [] }
    var out: [(max: Int, current: Int)] = []
    for line in text.split(separator: "\n") {
      let parts = line.split(separator: ":", maxSplits: 2, omittingEmptySubsequences: false)
      guard parts.count == 3 else { continue }
      let (controllers, path) = (parts[1], String(parts[2]))
      let v2 = parts[0] == "0" && controllers.isEmpty
      guard v2 || controllers.split(separator: ",").contains("memory") else { continue }
      let root = v2 ? "/sys/fs/cgroup" : "/sys/fs/cgroup/memory"
      let (maxFile, currentFile) = v2 ? ("memory.max", "memory.current") : ("memory.limit_in_bytes", "memory.usage_in_bytes")
      var dir = path
      while true {
        let base = root + (dir == "/" ? "" : dir)
        if let m = readSmallFile(base + "/" + maxFile).flatMap({ Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }),
           m < 1 << 60, let c = readSmallFile(base + "/" + currentFile).flatMap({ Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }) {
          out.append((m, c))
        }
        if dir == "/" || dir.isEmpty { break }
        dir = (dir as NSString).deletingLastPathComponent
      }
    }
    return out
  }

  /// A small text file (/proc, /sys) read with one read(2): no Foundation allocation sized by the file.
  static func readSmallFile(_ path: String) -> String? {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    var buffer = [UInt8](repeating: 0, count: 8192)
    let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, 8192) }
    guard n > 0 else { return nil }
    return String(decoding: buffer[0..<n], as: UTF8.self)
  }

  /// A cap on live tensor bytes set by the script (`tensor.setMemoryLimit`), nil for none:
  /// past it an allocation is an error, so a run (or the fuzzer) fails fast instead of paging.
  nonisolated(unsafe) public static var limitBytes: Int? = nil

  /// The largest single allocation accepted: the machine's physical memory. Larger requests are
  /// refused with an error instead of being left to the kernel's OOM killer.
  public static let maxAllocationBytes: Int = {
    let pages = sysconf(Int32(_SC_PHYS_PAGES)), size = sysconf(Int32(_SC_PAGESIZE))
    return pages > 0 && size > 0 ? pages * size : 1 << 36
  }()
}

/// Where storage memory comes from. Blocks of 64 KiB and more are rounded up to a size class
/// (at most 12.5% slack) and, when freed, kept for reuse by the next request of that class,
/// up to a cap that follows the peak of live tensor memory. Training loops allocate the same
/// shapes every iteration, and on virtual machines first-touching fresh pages costs ~13 µs
/// per 4 KiB page (0.3 GB/s measured here, against 13 GB/s for reused memory).
public enum StorageAllocator {
  static let lock = NSLock()
  nonisolated(unsafe) static var pool: [Int: [UnsafeMutableRawPointer]] = [:]
  /// Pooled blocks, least recently released first: when the pool is full, the oldest go, so
  /// sizes from an earlier phase (a one-off GEMM) never crowd out the sizes in use now.
  nonisolated(unsafe) static var order: [(pointer: UnsafeMutableRawPointer, size: Int)] = []
  nonisolated(unsafe) static var cached = 0
  static let minCachedBytes = 64 << 10

  /// Bytes held in the reuse pool right now.
  public static var cachedBytes: Int { lock.lock(); defer { lock.unlock() }; return cached }

  /// The pool holds what a training step frees and wants again, but never lets live plus
  /// pooled bytes pass 1.1x the peak of live tensor bytes (256 MiB at least): blocks beyond
  /// that go back to the system, so resident memory follows the live peak. (A pool of up to
  /// twice the peak keeps biggan32 at 1.86 GB resident for 0.95 GB live.)
  static let capFraction = Double(Tunables.poolPercentOfPeak.value) / 100
  static let capFloor = Tunables.poolFloorMB.value << 20
  static var cap: Int {
    Swift.max(capFloor, Int(capFraction * Double(MemoryAccounting.peakBytes)) - MemoryAccounting.liveBytes)
  }

  /// The size class of a request: multiples of 64 below 64 KiB, else (8...15)·2^e.
  static func sizeClass(_ bytes: Int) -> Int {
    if bytes < minCachedBytes { return Swift.max(64, (bytes + 63) & ~63) }
    let e = (Int.bitWidth - bytes.leadingZeroBitCount) - 4  // bytes < 2^(e+4)
    let step = 1 << e
    return ((bytes + step - 1) / step) * step
  }

  /// Large blocks always come from mmap and go back to the system when freed: glibc's dynamic
  /// threshold would otherwise serve them from a heap it cannot shrink once fragmented.
  static let mallocConfigured: Bool = {
    let mmapThreshold: Int32 = -3     // M_MMAP_THRESHOLD
    return glibcMallopt(mmapThreshold, Int32(minCachedBytes)) == 1
  }()

  /// A block of at least `size` bytes (a size class) and its actual size: a pooled block of
  /// that class, else the smallest pooled block of up to 1.5× the size, else a fresh one.
  static func allocate(_ size: Int) -> (pointer: UnsafeMutableRawPointer, size: Int)? {
    _ = mallocConfigured
    if size >= minCachedBytes {
      lock.lock()
      var chosen = size
      if pool[size]?.isEmpty ?? true {
        chosen = pool.keys.filter { $0 > size && $0 <= size + size / 2 && !(pool[$0]!.isEmpty) }.min() ?? size
      }
      if let p = pool[chosen]?.popLast() {
        cached -= chosen
        if let i = order.lastIndex(where: { $0.pointer == p }) { order.remove(at: i) }
        lock.unlock()
        return (p, chosen)
      }
      lock.unlock()
    }
    if let p = systemAllocate(size) { return (p, size) }
    emptyCache()  // out of memory: give the pool back to the system and try once more
    return systemAllocate(size).map { ($0, size) }
  }

  /// Blocks from this size up are mapped on their own, 2 MiB aligned, with transparent huge
  /// pages asked for: a fresh block then faults once per 2 MiB instead of once per 4 KiB (a
  /// fault costs microseconds on these VMs), which is what lets the pool stay small.
  static let hugeMin = 2 << 20
  static let hugePage = 2 << 20

  static func systemAllocate(_ size: Int) -> UnsafeMutableRawPointer? {
    guard size >= hugeMin else {
      var p: UnsafeMutableRawPointer? = nil
      return posix_memalign(&p, 64, size) == 0 ? p : nil
    }
    let span = size + hugePage
    guard let raw = mmap(nil, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0), raw != MAP_FAILED else { return nil }
    let start = Int(bitPattern: raw), aligned = (start + hugePage - 1) & ~(hugePage - 1)
    if aligned > start { munmap(raw, aligned - start) }
    let tail = start + span - (aligned + size)
    if tail > 0 { munmap(UnsafeMutableRawPointer(bitPattern: aligned + size), tail) }
    let p = UnsafeMutableRawPointer(bitPattern: aligned)!
    _ = madvise(p, size, 14)     // MADV_HUGEPAGE
    return p
  }

  static func systemFree(_ p: UnsafeMutableRawPointer, _ size: Int) {
    if size >= hugeMin { munmap(p, size) } else { free(p) }
  }

  static func release(_ p: UnsafeMutableRawPointer, _ size: Int) {
    if size >= minCachedBytes {
      let limit = cap
      if size <= limit {
        var evicted: [(pointer: UnsafeMutableRawPointer, size: Int)] = []
        lock.lock()
        while cached + size > limit, let oldest = order.first {
          order.removeFirst()
          if let i = pool[oldest.size]?.firstIndex(of: oldest.pointer) { pool[oldest.size]!.remove(at: i) }
          cached -= oldest.size
          evicted.append(oldest)
        }
        pool[size, default: []].append(p)
        order.append((p, size))
        cached += size
        lock.unlock()
        for e in evicted { systemFree(e.pointer, e.size) }
        return
      }
    }
    systemFree(p, size)
  }

  /// Returns every pooled block to the system.
  public static func emptyCache() {
    lock.lock()
    let blocks = order
    pool = [:]
    order = []
    cached = 0
    lock.unlock()
    for b in blocks { systemFree(b.pointer, b.size) }
  }
}

/// glibc's mallopt (Swift's Glibc module does not export it).
@_silgen_name("mallopt") func glibcMallopt(_ param: Int32, _ value: Int32) -> Int32

/// A flat, 64-byte aligned buffer of `count` elements of one dtype, shared by every view of it.
public final class Storage {
  public let dtype: DType
  public let count: Int
  let raw: UnsafeMutableRawPointer
  let allocatedBytes: Int
  /// Bumped by every in-place write, so saved tensors can tell they were overwritten.
  public internal(set) var version = 0

  /// Throws unless `count` elements of `elementBytes` each can be allocated: no overflow, within
  /// the machine's memory, the memory available now and the script's limit. Called before any
  /// Swift array of a size that came from a user or a file is made (an array that cannot be
  /// allocated traps, which no Lua script must be able to cause).
  public static func checkAllocatable(count: Int, elementBytes: Int, what: String) throws {
    let (bytes, overflow) = count.multipliedReportingOverflow(by: elementBytes)
    guard count >= 0, !overflow, bytes <= MemoryAccounting.maxAllocationBytes else {
      throw TensorError("cannot allocate \(what): \(count) elements of \(elementBytes) bytes is more than this machine's memory")
    }
    if let limit = MemoryAccounting.limitBytes, bytes > limit {
      throw TensorError("cannot allocate \(what) of \(humanBytes(bytes)): more than the limit of \(humanBytes(limit)) (tensor.setMemoryLimit)")
    }
    try checkHeadroom(bytes, what)
  }

  /// Requests from this size up are checked against what the process may still take
  /// (`MemoryAccounting.headroom`); smaller ones cost less than reading the limits would.
  static let headroomCheckBytes = 4 << 20

  static func checkHeadroom(_ bytes: Int, _ what: String) throws {
    guard bytes >= headroomCheckBytes, let room = MemoryAccounting.headroom(), bytes > room.bytes else { return }
    throw TensorError("cannot allocate \(what) of \(humanBytes(bytes)): only \(humanBytes(room.bytes)) is left under \(room.limit)")
  }

  /// Allocates `count` elements; zero-filled when `zeroed`. Throws instead of trapping when the
  /// request is absurd or the system refuses it.
  public init(count: Int, dtype: DType, zeroed: Bool = false) throws {
    precondition(count >= 0)
    let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
    if overflow || bytes > MemoryAccounting.maxAllocationBytes {
      throw TensorError("cannot allocate \(count) elements of \(dtype.rawValue) (\(Storage.humanBytes(overflow ? Int.max : bytes))): more than this machine's memory")
    }
    if let limit = MemoryAccounting.limitBytes, bytes > limit - Swift.min(limit, MemoryAccounting.liveBytes) {
      throw TensorError("cannot allocate \(Storage.humanBytes(bytes)) for a tensor: \(Storage.humanBytes(MemoryAccounting.liveBytes)) of the limit of \(Storage.humanBytes(limit)) (tensor.setMemoryLimit) already live")
    }
    try Storage.checkHeadroom(bytes, "a tensor")
    let size = StorageAllocator.sizeClass(bytes)
    guard let block = StorageAllocator.allocate(size) else {
      throw TensorError("out of memory allocating \(Storage.humanBytes(bytes)) for a tensor")
    }
    raw = block.pointer
    allocatedBytes = block.size
    if zeroed { memset(raw, 0, bytes) }
    self.count = count
    self.dtype = dtype
    MemoryAccounting.allocated(block.size)
  }

  deinit {
    StorageAllocator.release(raw, allocatedBytes)
    MemoryAccounting.freed(allocatedBytes)
  }

  @inline(__always) func pointer<T>(_: T.Type) -> UnsafeMutablePointer<T> { raw.assumingMemoryBound(to: T.self) }

  public static func humanBytes(_ n: Int) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
    var v = Double(n), i = 0
    while v >= 1024 && i < units.count - 1 { v /= 1024; i += 1 }
    return i == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[i])
  }
}
