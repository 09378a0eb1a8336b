import Foundation
import Synchronization

/// Bytes of tensor storage alive right now, and bytes allocated since the host last asked.
/// The Lua runtime turns the second figure into garbage-collector debt (house decision 3), so a
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

  /// The largest single allocation accepted: the machine's physical memory. Larger requests are
  /// refused with an error instead of being left to the kernel's OOM killer.
  public static let maxAllocationBytes: Int = {
    let pages = sysconf(Int32(_SC_PHYS_PAGES)), size = sysconf(Int32(_SC_PAGESIZE))
    return pages > 0 && size > 0 ? pages * size : 1 << 36
  }()
}

/// A flat, 64-byte aligned buffer of `count` elements of one dtype, shared by every view of it.
public final class Storage {
  public let dtype: DType
  public let count: Int
  let raw: UnsafeMutableRawPointer
  /// Bumped by every in-place write, so saved tensors can tell they were overwritten.
  public internal(set) var version = 0

  /// Allocates `count` elements; zero-filled when `zeroed`. Throws instead of trapping when the
  /// request is absurd or the system refuses it.
  public init(count: Int, dtype: DType, zeroed: Bool = false) throws {
    precondition(count >= 0)
    let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
    if overflow || bytes > MemoryAccounting.maxAllocationBytes {
      throw TensorError("cannot allocate \(count) elements of \(dtype.rawValue) (\(Storage.humanBytes(overflow ? Int.max : bytes))): more than this machine's memory")
    }
    var p: UnsafeMutableRawPointer? = nil
    if posix_memalign(&p, 64, Swift.max(bytes, 64)) != 0 || p == nil {
      throw TensorError("out of memory allocating \(Storage.humanBytes(bytes)) for a tensor")
    }
    raw = p!
    if zeroed { memset(raw, 0, bytes) }
    self.count = count
    self.dtype = dtype
    MemoryAccounting.allocated(bytes)
  }

  deinit {
    free(raw)
    MemoryAccounting.freed(count * dtype.byteSize)
  }

  @inline(__always) func pointer<T>(_: T.Type) -> UnsafeMutablePointer<T> { raw.assumingMemoryBound(to: T.self) }

  public static func humanBytes(_ n: Int) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
    var v = Double(n), i = 0
    while v >= 1024 && i < units.count - 1 { v /= 1024; i += 1 }
    return i == 0 ? "\(n) B" : String(format: "%.1f %@", v, units[i])
  }
}
