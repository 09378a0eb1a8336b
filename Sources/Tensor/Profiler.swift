import Foundation
import Synchronization

/// A coarse op-level profiler (`tensor.profile(fn)` in Lua): while enabled, the time between
/// one recorded op and the next is charged to the later op, so each primitive collects its
/// kernel time (plus the interpreter time that led to it); ops run inside pullbacks are
/// charged as "backward <op>", the collector's runs as "(collector)". Costs nothing when off.
public enum Profiler {
  nonisolated(unsafe) public private(set) static var isEnabled = false
  nonisolated(unsafe) static var inBackward = false
  nonisolated(unsafe) static var last: UInt64 = 0
  nonisolated(unsafe) static var totals: [String: (calls: Int, nanoseconds: UInt64)] = [:]

  @inline(__always) static func now() -> UInt64 { DispatchTime.now().uptimeNanoseconds }

  public static func start() {
    totals = [:]
    isEnabled = true
    last = now()
  }

  /// Stops and returns (op, calls, seconds), the most expensive first.
  public static func stop() -> [(op: String, calls: Int, seconds: Double)] {
    mark("(untracked)")
    isEnabled = false
    return totals.map { (op: $0.key, calls: $0.value.calls, seconds: Double($0.value.nanoseconds) * 1e-9) }
      .sorted { $0.seconds > $1.seconds }
  }

  /// Runs `body` and charges its time to `label` instead of to the next op: the collector's runs
  /// (and the storages they free) would otherwise land on whichever op happened to trigger them.
  public static func charge<R>(_ label: String, _ body: () throws -> R) rethrows -> R {
    guard isEnabled else { return try body() }
    let t0 = now()
    defer {
      let elapsed = now() &- t0
      add(label, elapsed)
      last &+= elapsed
    }
    return try body()
  }

  /// Charges the time since the previous mark to `op`.
  static func mark(_ op: String) {
    let t = now()
    add(inBackward ? "backward " + op : op, t &- last)
    last = t
  }

  static func add(_ key: String, _ nanoseconds: UInt64) {
    let old = totals[key] ?? (0, 0)
    totals[key] = (old.calls + 1, old.nanoseconds + nanoseconds)
  }
}

/// Floating-point operations done by matrix products and convolutions (2 per multiply-add,
/// convolutions at the direct algorithm's count whatever the algorithm): benchmarks divide a
/// workload's count by its time to compare it with sgemm's rate on the same machine.
public enum FlopCounter {
  static let count = Atomic<Int>(0)
  public static var total: Int { count.load(ordering: .relaxed) }
  @inline(__always) static func add(_ n: Int) { count.wrappingAdd(n, ordering: .relaxed) }
}
