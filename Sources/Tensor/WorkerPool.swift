import CKernels
import Foundation
import Synchronization

/// The threads behind `Parallel`: `threads - 1` workers that join the calling thread on each
/// parallel region, then spin for `LG_SPIN_US` microseconds waiting for the next one before they
/// sleep. A training step opens ~1,500 regions, most of them a few hundred microseconds long,
/// between serial stretches (Lua, the autograd tape, small ops); with libdispatch's pool the
/// second thread had gone to sleep by then and took tens of microseconds to wake (measured:
/// 52 µs per 2-way region after 70 µs of serial work), so pggan64 kept one core idle 14% of
/// its step. OpenMP runtimes spin for the same reason (GOMP_SPINCOUNT, KMP_BLOCKTIME).
///
/// Which thread runs an iteration never changes what it computes (`Parallel`'s chunks are fixed
/// by the problem size), so results stay the same for any thread count. One region runs at a
/// time: a region opened while another is running (from inside a body, or from another thread)
/// runs its iterations inline on its caller.
final class WorkerPool: @unchecked Sendable {
  static let shared = WorkerPool()

  /// `state` packs the current region: bits 0-15 the workers inside it, bit 16 whether it is
  /// open to joiners, bits 17- its generation. A worker joins a region once, by compare-and-swap,
  /// and only while it is open; the caller closes it after claiming the last iteration and waits
  /// for the workers inside to leave, so the body is never read outside its region.
  private let state = Atomic<Int>(0)
  private static let openBit = 1 << 16, insideMask = (1 << 16) - 1, generationShift = 17
  /// The next iteration to claim.
  private let next = Atomic<Int>(0)
  /// Whether a region is running (its caller owns `body` and `count`).
  private let busy = Atomic<Bool>(false)
  /// Workers asleep on `wake` (read without the lock by callers: sequentially consistent with
  /// `state`, so either the caller sees the sleeper or the sleeper sees the region).
  private let sleepers = Atomic<Int>(0)
  nonisolated(unsafe) private var body: ((Int) -> Void)? = nil
  nonisolated(unsafe) private var count = 0
  nonisolated(unsafe) private var started = 0
  private let lock = NSLock()
  private let wake = NSCondition()
  static let spinNanoseconds = UInt64(Tunables.spinMicroseconds.value) * 1000

  /// Runs body(0) ..< body(n), on the caller and up to `helpers` workers.
  func run(_ n: Int, helpers: Int, _ work: (Int) -> Void) {
    guard n > 1, helpers > 0, busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged else {
      for i in 0..<n { work(i) }
      return
    }
    defer { busy.store(false, ordering: .releasing) }
    startWorkers(helpers)
    withoutActuallyEscaping(work) { work in
      body = work
      count = n
      next.store(0, ordering: .relaxed)
      let generation = (state.load(ordering: .relaxed) >> WorkerPool.generationShift) + 1
      state.store(generation << WorkerPool.generationShift | WorkerPool.openBit, ordering: .sequentiallyConsistent)
      if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
        wake.lock()
        wake.broadcast()
        wake.unlock()
      }
      while true {
        let i = next.wrappingAdd(1, ordering: .relaxed).oldValue
        if i >= n { break }
        work(i)
      }
      var s = state.load(ordering: .relaxed)
      while true {   // close: no worker joins from now on
        let (exchanged, current) = state.compareExchange(expected: s, desired: s & ~WorkerPool.openBit, ordering: .acquiringAndReleasing)
        if exchanged { break }
        s = current
      }
      while state.load(ordering: .acquiring) & WorkerPool.insideMask != 0 { lg_cpu_relax() }
      body = nil
    }
  }

  /// Starts workers until `n` exist (never more than 255 are needed: `Parallel.threads` - 1).
  private func startWorkers(_ n: Int) {
    let wanted = Swift.min(n, WorkerPool.insideMask >> 8)
    guard started < wanted else { return }
    lock.lock()
    defer { lock.unlock() }
    while started < wanted {
      let thread = Thread { [unowned self] in self.workerLoop() }
      thread.name = "luagan-worker"
      thread.stackSize = 16 << 20   // the transforms keep their tiles on the stack
      thread.start()
      started += 1
    }
  }

  private func available(_ s: Int, after seen: Int) -> Bool {
    s & WorkerPool.openBit != 0 && s >> WorkerPool.generationShift != seen
  }

  private func workerLoop() {
    var seen = 0
    while true {
      let s = waitForRegion(after: seen)
      guard state.compareExchange(expected: s, desired: s + 1, ordering: .acquiring).exchanged else { continue }
      seen = s >> WorkerPool.generationShift
      claimIterations()
      state.wrappingSubtract(1, ordering: .releasing)
    }
  }

  /// The region's iterations this worker claims; its copy of the body ends with the call, before
  /// the worker leaves the region.
  @inline(never)
  private func claimIterations() {
    guard let work = body else { return }
    let n = count
    while true {
      let i = next.wrappingAdd(1, ordering: .relaxed).oldValue
      if i >= n { return }
      work(i)
    }
  }

  /// The state of the first open region newer than `seen`: spinning for `spinNanoseconds`, then asleep.
  private func waitForRegion(after seen: Int) -> Int {
    let deadline = DispatchTime.now().uptimeNanoseconds + WorkerPool.spinNanoseconds
    var spins = 0
    while true {
      let s = state.load(ordering: .acquiring)
      if available(s, after: seen) { return s }
      lg_cpu_relax()
      spins += 1
      if spins & 255 == 0 && DispatchTime.now().uptimeNanoseconds > deadline { break }
    }
    wake.lock()
    defer { wake.unlock() }
    sleepers.wrappingAdd(1, ordering: .sequentiallyConsistent)
    defer { sleepers.wrappingSubtract(1, ordering: .sequentiallyConsistent) }
    while true {
      let s = state.load(ordering: .sequentiallyConsistent)
      if available(s, after: seen) { return s }
      wake.wait()
    }
  }
}
