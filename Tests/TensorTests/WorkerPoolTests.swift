import Foundation
import Tensor
import XCTest

/// The worker pool behind `Parallel`: every iteration runs exactly once, whatever the thread
/// count, the gaps between regions (spinning or asleep workers), nesting, or other threads
/// opening regions at the same time.
final class WorkerPoolTests: XCTestCase {
  /// Counts how often each of `n` iterations ran.
  final class Tally: @unchecked Sendable {
    let counts: UnsafeMutablePointer<Int>
    let n: Int
    init(_ n: Int) { self.n = n; counts = .allocate(capacity: n); counts.initialize(repeating: 0, count: n) }
    deinit { counts.deallocate() }
    func hit(_ i: Int) { counts[i] += 1 }   // each index from one thread only, or the test fails anyway
    var exactlyOnce: Bool { (0..<n).allSatisfy { counts[$0] == 1 } }
  }

  var savedThreads = 1
  override func setUp() { savedThreads = Parallel.threads }
  override func tearDown() { Parallel.threads = savedThreads }

  func testEveryIterationOnceForAnyThreadCountAndGap() {
    for threads in [1, 2, 3, 8] {
      Parallel.threads = threads
      for (k, n) in [0, 1, 2, 3, 17, 1000].enumerated() {
        for round in 0..<40 {
          // gaps around the spin window: none, a few µs, past it (the workers sleep)
          if round % 10 == 9 { usleep(UInt32(Tunables.spinMicroseconds.value) + 200) } else if round % 3 == 0 { usleep(20) }
          let tally = Tally(n)
          Parallel.independentBLAS(n) { i in tally.hit(i) }
          XCTAssertTrue(tally.exactlyOnce, "threads \(threads), count \(n) (case \(k)), round \(round)")
        }
      }
    }
  }

  func testChunksCoverTheRangeOnce() {
    Parallel.threads = 2
    for (count, grain) in [(1, 1), (100, 7), (4096, 4096), (4097, 4096), (100_000, 333)] {
      let tally = Tally(count)
      Parallel.forChunks(count, grain: grain) { r in for i in r { tally.hit(i) } }
      XCTAssertTrue(tally.exactlyOnce, "count \(count), grain \(grain)")
    }
  }

  func testNestedRegionsRunInline() {
    Parallel.threads = 2
    let outer = 6, inner = 50
    let tally = Tally(outer * inner)
    Parallel.independentBLAS(outer) { o in
      Parallel.forChunks(inner, grain: 1) { r in for i in r { tally.hit(o * inner + i) } }
    }
    XCTAssertTrue(tally.exactlyOnce)
  }

  func testRegionsFromSeveralThreadsAtOnce() {
    Parallel.threads = 2
    let submitters = 4, regions = 300, n = 64
    let tallies = (0..<submitters).map { _ in Tally(regions * n) }
    DispatchQueue.concurrentPerform(iterations: submitters) { s in
      for r in 0..<regions {
        Parallel.independentBLAS(n) { i in tallies[s].hit(r * n + i) }
      }
    }
    for (s, tally) in tallies.enumerated() { XCTAssertTrue(tally.exactlyOnce, "submitter \(s)") }
  }

  func testWorkersSeeTheCallersWritesAndTheCallerSeesTheirs() {
    Parallel.threads = 2
    let n = 1 << 16
    let a = UnsafeMutablePointer<Float>.allocate(capacity: n), b = UnsafeMutablePointer<Float>.allocate(capacity: n)
    defer { a.deallocate(); b.deallocate() }
    for round in 0..<200 {
      for i in 0..<n { a[i] = Float(i &+ round) }
      Parallel.forChunks(n, grain: 1024) { r in for i in r { b[i] = a[i] * 2 } }
      XCTAssertTrue((0..<n).allSatisfy { b[$0] == Float($0 &+ round) * 2 }, "round \(round)")
    }
  }
}
