import Foundation
import Synchronization

/// Where storage memory comes from. Blocks of 64 KiB and more are carved from segments the
/// allocator maps itself, best fit, split and coalesced (PyTorch's caching allocator, on the
/// CPU): a freed block serves any later request that fits in it, whatever its size, so a
/// training step that frees and asks for different shapes reuses pages it has already touched.
/// On virtual machines first-touching a fresh page costs ~13 µs per 4 KiB (0.3 GB/s measured,
/// against 13 GB/s for reused memory); with exact-size reuse alone, BigGAN at 64 px still
/// faulted in ~430 MB a step.
///
/// Free memory that stays resident (the cache) is bounded by a cap that follows the peak of live
/// tensor bytes, checked when a block is freed and before fresh pages are handed out; past it,
/// the least recently freed ranges go back to the system (a segment unmapped when wholly free,
/// else `MADV_DONTNEED` on the range), so resident memory follows the live peak. (Checking only
/// on free let a fragmented 920 MB cache sit beside a fresh 1 GiB block: BigGAN-deep 512 at batch
/// 8 peaked at 3.2 GB resident for 2.26 GB of tensors; now 2.55.)
public enum StorageAllocator {
  static let lock = NSLock()
  /// Requests below this go to malloc.
  static let minPooledBytes = 64 << 10
  /// Requests below `smallLimit` share 2 MiB segments; the rest come from segments of at least
  /// `largeSegment` (bigger requests get a segment of their own size), and the two kinds never
  /// serve each other, so small blocks do not pin large segments (PyTorch's two pools).
  static let smallLimit = 1 << 20
  static let smallSegment = 2 << 20
  static let largeSegment = 20 << 20
  static let page = 4096

  /// A free range of a segment: `resident` when its pages have been touched and kept (the pool's
  /// cached bytes), else returned to the system with `MADV_DONTNEED` (it faults in again on use).
  struct FreeRange {
    var start: Int
    var size: Int
    var resident: Bool
    var freedAt: Int
  }

  /// One mapping. `free` is sorted by address; neighbours of the same residency are merged.
  final class Segment {
    let base: Int, size: Int, small: Bool
    var free: [FreeRange]
    init(base: Int, size: Int, small: Bool) {
      self.base = base; self.size = size; self.small = small
      free = [FreeRange(start: base, size: size, resident: false, freedAt: 0)]
    }
    var isWhollyFree: Bool { free.count == 1 && free[0].size == size }
  }

  /// Every segment, sorted by base address.
  nonisolated(unsafe) static var segments: [Segment] = []
  nonisolated(unsafe) static var cached = 0
  nonisolated(unsafe) static var clock = 0

  /// Bytes freed and kept resident for reuse right now.
  public static var cachedBytes: Int { lock.lock(); defer { lock.unlock() }; return cached }
  /// Bytes mapped in segments (live, cached and returned-but-mapped together).
  public static var segmentBytes: Int { lock.lock(); defer { lock.unlock() }; return segments.reduce(0) { $0 + $1.size } }
  /// Publishes the pool's size to Host's MemoryAccounting (headroom counts it as reclaimable).
  static func publish() { MemoryAccounting.pooled.store(cached, ordering: .relaxed) }

  /// Live plus cached bytes may reach 1.3x the peak of live tensor bytes (`LG_POOL_FRACTION`),
  /// or the cache 256 MiB (`LG_POOL_FLOOR_MB`).
  static let capFraction = Double(Tunables.poolPercentOfPeak.value) / 100
  static let capFloor = Tunables.poolFloorMB.value << 20
  /// The cached bytes allowed while `adding` more bytes are about to go live.
  static func cap(adding: Int = 0) -> Int {
    let live = MemoryAccounting.liveBytes + adding
    return Swift.max(capFloor, Int(capFraction * Double(Swift.max(MemoryAccounting.peakBytes, live))) - live)
  }

  /// The bytes the cache may hold now.
  public static var cacheCap: Int { cap() }

  /// Returns the least recently freed resident ranges to the system until the cache fits its cap.
  static func trim(adding: Int = 0) {
    let limit = cap(adding: adding)
    while cached > limit, returnOldestRange() {}
    publish()
  }

  /// The size a request is served at: a multiple of 64 bytes below 64 KiB, of 4 KiB above.
  public static func sizeClass(_ bytes: Int) -> Int {
    if bytes < minPooledBytes { return Swift.max(64, (bytes + 63) & ~63) }
    return (bytes + page - 1) & ~(page - 1)
  }

  /// Large blocks never come from glibc's heap: its dynamic mmap threshold would otherwise
  /// serve them from a heap it cannot shrink once fragmented.
  static let mallocConfigured: Bool = {
    let mmapThreshold: Int32 = -3     // M_MMAP_THRESHOLD
    return glibcMallopt(mmapThreshold, Int32(minPooledBytes)) == 1
  }()

  /// A block of `size` bytes (a `sizeClass`) and its size: the best-fitting free range of a
  /// segment (resident ones first), split; else a new segment.
  public static func allocate(_ size: Int) -> (pointer: UnsafeMutableRawPointer, size: Int)? {
    _ = mallocConfigured
    guard size >= minPooledBytes else {
      var p: UnsafeMutableRawPointer? = nil
      return posix_memalign(&p, 64, size) == 0 ? p.map { ($0, size) } : nil
    }
    lock.lock()
    defer { lock.unlock() }
    if let (p, fresh) = carve(size) {
      // Fresh pages grow the resident set, so the cache shrinks first.
      if fresh { trim(adding: size) }
      return (p, size)
    }
    let small = size < smallLimit
    let segmentSize = small ? smallSegment : Swift.max(largeSegment, (size + hugePage - 1) & ~(hugePage - 1))
    var mapped = systemMap(segmentSize)
    if mapped == nil {
      releaseFree()  // out of memory: give back every free byte and try once more
      mapped = systemMap(segmentSize)
    }
    guard let base = mapped else { return nil }
    let segment = Segment(base: Int(bitPattern: base), size: segmentSize, small: small)
    let at = firstIndex(in: segments) { $0.base < segment.base }
    segments.insert(segment, at: at)
    let block = carve(size)  // from the new segment: nothing else fitted
    trim(adding: size)
    return block.map { ($0.pointer, size) }
  }

  /// Takes `size` bytes from the front of the best free range of the request's kind: the
  /// smallest resident range that holds it, else the smallest range at all.
  static func carve(_ size: Int) -> (pointer: UnsafeMutableRawPointer, fresh: Bool)? {
    let small = size < smallLimit
    var best: (segment: Segment, index: Int, resident: Bool, size: Int)? = nil
    for segment in segments where segment.small == small {
      for (i, r) in segment.free.enumerated() where r.size >= size {
        if let b = best, (b.resident && !r.resident) || (b.resident == r.resident && b.size <= r.size) { continue }
        best = (segment, i, r.resident, r.size)
      }
    }
    guard let b = best else { return nil }
    let r = b.segment.free[b.index]
    if r.size == size {
      b.segment.free.remove(at: b.index)
    } else {
      b.segment.free[b.index].start += size
      b.segment.free[b.index].size -= size
    }
    if r.resident { cached -= size; publish() }
    return (UnsafeMutableRawPointer(bitPattern: r.start)!, !r.resident)
  }

  /// Takes back a block `allocate` returned, with the size it returned.
  public static func release(_ p: UnsafeMutableRawPointer, _ size: Int) {
    guard size >= minPooledBytes else { free(p); return }
    lock.lock()
    defer { lock.unlock() }
    let address = Int(bitPattern: p)
    let at = firstIndex(in: segments) { $0.base <= address } - 1
    precondition(at >= 0 && address + size <= segments[at].base + segments[at].size, "StorageAllocator.release: foreign block")
    clock += 1
    insertFree(FreeRange(start: address, size: size, resident: true, freedAt: clock), into: segments[at])
    cached += size
    trim()
  }

  /// Puts `range` into the segment's sorted free list, merged with free neighbours of the same
  /// residency (the merged range counts as freed now).
  static func insertFree(_ range: FreeRange, into segment: Segment) {
    var range = range
    var i = firstIndex(in: segment.free) { $0.start < range.start }
    func absorb(_ j: Int) {   // merges free[j], which touches `range` and has its residency
      let other = segment.free.remove(at: j)
      range.start = Swift.min(range.start, other.start)
      range.size += other.size
      range.freedAt = Swift.max(range.freedAt, other.freedAt)
    }
    if i < segment.free.count, segment.free[i].resident == range.resident, range.start + range.size == segment.free[i].start { absorb(i) }
    if i > 0, segment.free[i - 1].resident == range.resident, segment.free[i - 1].start + segment.free[i - 1].size == range.start {
      i -= 1
      absorb(i)
    }
    segment.free.insert(range, at: i)
  }

  /// Gives the least recently freed resident range back to the system; false if none is left.
  @discardableResult
  static func returnOldestRange() -> Bool {
    var oldest: (segment: Segment, index: Int)? = nil
    for segment in segments {
      for (i, r) in segment.free.enumerated() where r.resident {
        if let o = oldest, o.segment.free[o.index].freedAt <= r.freedAt { continue }
        oldest = (segment, i)
      }
    }
    guard let (segment, i) = oldest else { return false }
    let r = segment.free.remove(at: i)
    cached -= r.size
    if r.size == segment.size { unmap(segment); return true }
    _ = madvise(UnsafeMutableRawPointer(bitPattern: r.start), r.size, MADV_DONTNEED)
    insertFree(FreeRange(start: r.start, size: r.size, resident: false, freedAt: r.freedAt), into: segment)
    if segment.isWhollyFree { unmap(segment) }
    return true
  }

  /// The first index of `array` (sorted so that `before` holds for a prefix) where `before` fails.
  static func firstIndex<T>(in array: [T], where before: (T) -> Bool) -> Int {
    var low = 0, high = array.count
    while low < high {
      let mid = (low + high) / 2
      if before(array[mid]) { low = mid + 1 } else { high = mid }
    }
    return low
  }

  static func unmap(_ segment: Segment) {
    if let i = segments.firstIndex(where: { $0 === segment }) { segments.remove(at: i) }
    munmap(UnsafeMutableRawPointer(bitPattern: segment.base), segment.size)
  }

  /// Returns free memory to the system: every resident free range (a segment left wholly free is
  /// unmapped as it happens). Caller holds the lock.
  static func releaseFree() {
    while returnOldestRange() {}
    publish()
  }

  /// What is wrong with the segments' bookkeeping, or nil: free ranges sorted, inside their
  /// segment, not overlapping, neighbours of the same residency merged, and `cached` equal to
  /// the resident free bytes. For the allocator's tests.
  public static func checkIntegrity() -> String? {
    lock.lock()
    defer { lock.unlock() }
    var resident = 0
    for (k, segment) in segments.enumerated() {
      if k > 0, segments[k - 1].base + segments[k - 1].size > segment.base { return "segments \(k - 1) and \(k) overlap" }
      var end = segment.base
      for (i, r) in segment.free.enumerated() {
        if r.size <= 0 || r.start < end || r.start + r.size > segment.base + segment.size {
          return "segment \(k) free range \(i) out of place"
        }
        if i > 0, r.start == end, segment.free[i - 1].resident == r.resident { return "segment \(k) free ranges \(i - 1), \(i) not merged" }
        if r.resident { resident += r.size }
        end = r.start + r.size
      }
      if segment.isWhollyFree, !segment.free[0].resident { return "segment \(k) wholly free and returned but still mapped" }
    }
    return resident == cached ? nil : "cached \(cached) bytes but \(resident) resident free"
  }

  /// ", under <the tightest limit> (N left)" for an out-of-memory message, or "".
  static func limitNote() -> String {
    guard let room = MemoryAccounting.headroom() else { return "" }
    return " (\(Storage.humanBytes(room.bytes)) left under \(room.limit))"
  }

  /// Returns every cached block to the system.
  public static func emptyCache() {
    lock.lock()
    defer { lock.unlock() }
    releaseFree()
  }

  /// Segments are mapped 2 MiB aligned with transparent huge pages asked for: a fresh segment
  /// then faults once per 2 MiB instead of once per 4 KiB (a fault costs microseconds on these VMs).
  static let hugePage = 2 << 20

  static func systemMap(_ size: Int) -> UnsafeMutableRawPointer? {
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

  /// Throws unless `count` elements of `elementBytes` each can be allocated (Host's
  /// Memory.checkAllocatable: no overflow, within the machine's memory, the process's limits
  /// and the script's). Called before any Swift array of a size that came from a user or a
  /// file is made (an array that cannot be allocated traps, which no Lua script must cause).
  public static func checkAllocatable(count: Int, elementBytes: Int, what: String) throws {
    try Memory.checkAllocatable(count: count, elementBytes: elementBytes, what: what)
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
    do {
      try Memory.checkHeadroom(bytes, "a tensor")
    } catch {
      // The allocator's free memory counts against the limits until it is handed back.
      StorageAllocator.emptyCache()
      try Memory.checkHeadroom(bytes, "a tensor")
    }
    let size = StorageAllocator.sizeClass(bytes)
    guard let block = StorageAllocator.allocate(size) else {
      throw TensorError("out of memory allocating \(Storage.humanBytes(bytes)) for a tensor: the system refused it with "
                        + "\(Storage.humanBytes(MemoryAccounting.liveBytes)) of tensors live\(StorageAllocator.limitNote())")
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

  public static func humanBytes(_ n: Int) -> String { Memory.humanBytes(n) }
}
