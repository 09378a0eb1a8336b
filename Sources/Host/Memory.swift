import Foundation
import Synchronization

/// Bytes of tensor storage alive right now, and bytes allocated since the host last asked.
/// The Lua runtime turns the second figure into garbage-collector debt (DESIGN.md house decision 3), so a
/// loop that drops big tensors on the floor is collected at the pace it allocates.
public enum MemoryAccounting {
  static let live = Atomic<Int>(0)
  static let peak = Atomic<Int>(0)
  static let pending = Atomic<Int>(0)
  /// Bytes freed and kept by the tensor allocator's reuse pool: memory the process holds but
  /// can hand back, so headroom counts it as available.
  public static let pooled = Atomic<Int>(0)

  /// Bytes held by tensor storages that are still alive.
  public static var liveBytes: Int { live.load(ordering: .relaxed) }
  /// The most bytes alive at once since start (or since `resetPeak`).
  public static var peakBytes: Int { peak.load(ordering: .relaxed) }
  public static func resetPeak() { peak.store(live.load(ordering: .relaxed), ordering: .relaxed) }
  /// Bytes allocated since the last call; resets the counter.
  public static func takePendingBytes() -> Int { pending.exchange(0, ordering: .relaxed) }

  public static func allocated(_ bytes: Int) {
    let now = live.wrappingAdd(bytes, ordering: .relaxed).newValue
    _ = pending.wrappingAdd(bytes, ordering: .relaxed)
    var old = peak.load(ordering: .relaxed)
    while now > old {
      let (exchanged, current) = peak.compareExchange(expected: old, desired: now, ordering: .relaxed)
      if exchanged { break }
      old = current
    }
  }
  public static func freed(_ bytes: Int) { live.wrappingSubtract(bytes, ordering: .relaxed) }

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
      consider(available &+ MemoryAccounting.pooled.load(ordering: .relaxed), "the machine's available memory")
    }
    var rl = rlimit()
    if getrlimit(Int32(RLIMIT_AS.rawValue), &rl) == 0, rl.rlim_cur < UInt64(Int.max),
       let mapped = mappedBytes() {
      consider(Int(rl.rlim_cur) - mapped, "the process's address-space limit (RLIMIT_AS) of \(Memory.humanBytes(Int(rl.rlim_cur)))")
    }
    for group in cgroupMemoryLimits() {
      consider(group.max - group.current + MemoryAccounting.pooled.load(ordering: .relaxed),
               "the cgroup memory limit (memory.max) of \(Memory.humanBytes(group.max))")
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
        func number(_ file: String) -> Int? {
          readSmallFile(base + "/" + file).flatMap { Int($0.trimmingCharacters(in: .whitespacesAndNewlines)) }
        }
        if let m = number(maxFile), m < 1 << 60, let c = number(currentFile) {
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

/// What an allocation may take: every size a script or a file declares is checked here,
/// with overflow-checked arithmetic, against the machine and the process's real limits before
/// memory is taken (DESIGN.md house decision 9).
public enum Memory {
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
      throw TensorError("cannot allocate \(what) of \(Memory.humanBytes(bytes)): more than the limit of \(Memory.humanBytes(limit)) "
                        + "(tensor.setMemoryLimit)")
    }
    try checkHeadroom(bytes, what)
  }

  /// Requests from this size up are checked against what the process may still take
  /// (`MemoryAccounting.headroom`); smaller ones cost less than reading the limits would.
  public static let headroomCheckBytes = 4 << 20

  public static func checkHeadroom(_ bytes: Int, _ what: String) throws {
    guard bytes >= headroomCheckBytes, let room = MemoryAccounting.headroom(), bytes > room.bytes else { return }
    throw TensorError("cannot allocate \(what) of \(Memory.humanBytes(bytes)): only \(Memory.humanBytes(room.bytes)) is left "
                      + "under \(room.limit)")
  }

  public static func humanBytes(_ n: Int) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
    var v = Double(n), i = 0
    while v >= 1024 && i < units.count - 1 { v /= 1024; i += 1 }
    return i == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[i])
  }
}
