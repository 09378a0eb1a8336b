import Tensor
import XCTest

/// The storage allocator's segments: freed blocks are split for smaller requests and coalesced
/// for larger ones, the cache stays under its cap, and under a random workload no two live
/// blocks overlap and the bookkeeping stays whole.
final class AllocatorTests: XCTestCase {
  let mib = 1 << 20

  func testFreedBlockIsSplitAndCoalesced() throws {
    StorageAllocator.emptyCache()
    XCTAssertEqual(StorageAllocator.cachedBytes, 0)
    let a = try XCTUnwrap(StorageAllocator.allocate(24 * mib))
    StorageAllocator.release(a.pointer, a.size)
    XCTAssertEqual(StorageAllocator.cachedBytes, 24 * mib)
    // Two smaller requests come from the freed (resident) block, front first.
    let b = try XCTUnwrap(StorageAllocator.allocate(8 * mib))
    let c = try XCTUnwrap(StorageAllocator.allocate(8 * mib))
    XCTAssertEqual(b.pointer, a.pointer)
    XCTAssertEqual(c.pointer, a.pointer + 8 * mib)
    XCTAssertEqual(StorageAllocator.cachedBytes, 8 * mib)
    StorageAllocator.release(c.pointer, c.size)
    StorageAllocator.release(b.pointer, b.size)
    XCTAssertNil(StorageAllocator.checkIntegrity())
    // Freed neighbours merge back: a request larger than either piece reuses the whole range.
    let d = try XCTUnwrap(StorageAllocator.allocate(20 * mib))
    XCTAssertEqual(d.pointer, a.pointer)
    StorageAllocator.release(d.pointer, d.size)
    StorageAllocator.emptyCache()
    XCTAssertEqual(StorageAllocator.cachedBytes, 0)
    XCTAssertNil(StorageAllocator.checkIntegrity())
  }

  func testCacheStaysUnderItsCap() throws {
    StorageAllocator.emptyCache()
    let mappedBefore = StorageAllocator.segmentBytes
    // Untouched blocks: mapping them costs address space, not memory.
    let blocks = try (0..<6).map { _ in try XCTUnwrap(StorageAllocator.allocate(200 * mib)) }
    XCTAssertGreaterThanOrEqual(StorageAllocator.segmentBytes, mappedBefore + 1200 * mib)
    for b in blocks { StorageAllocator.release(b.pointer, b.size) }
    // These blocks are not tensors, so the cap is the floor (or 1.3x a larger tensor peak):
    // most of the 1.2 GB went back, wholly free segments unmapped.
    XCTAssertLessThanOrEqual(StorageAllocator.cachedBytes, StorageAllocator.cacheCap)
    XCTAssertLessThan(StorageAllocator.cacheCap, 1200 * mib)
    XCTAssertLessThan(StorageAllocator.segmentBytes, mappedBefore + 1200 * mib)
    XCTAssertNil(StorageAllocator.checkIntegrity())
    StorageAllocator.emptyCache()
    XCTAssertEqual(StorageAllocator.segmentBytes, mappedBefore)
  }

  func testRandomWorkloadKeepsBlocksApart() throws {
    var seed: UInt64 = 0x9E37_79B9_7F4A_7C15
    func next(_ n: Int) -> Int {  // xorshift: the same workload every run
      seed ^= seed << 13; seed ^= seed >> 7; seed ^= seed << 17
      return Int(seed % UInt64(n))
    }
    var live: [(pointer: UnsafeMutableRawPointer, size: Int, tag: UInt64)] = []
    func stamp(_ b: (pointer: UnsafeMutableRawPointer, size: Int, tag: UInt64)) {
      b.pointer.storeBytes(of: b.tag, as: UInt64.self)
      (b.pointer + b.size - 8).storeBytes(of: ~b.tag, as: UInt64.self)
    }
    func intact(_ b: (pointer: UnsafeMutableRawPointer, size: Int, tag: UInt64)) -> Bool {
      b.pointer.load(as: UInt64.self) == b.tag && (b.pointer + b.size - 8).load(as: UInt64.self) == ~b.tag
    }
    for step in 0..<3000 {
      if live.count < 40 && (live.isEmpty || next(3) > 0) {
        // 64 KiB to 48 MiB, small sizes more often, as a network's tensors are.
        let size = StorageAllocator.sizeClass((64 << 10) << next(10) + next(1 << 16))
        let b = try XCTUnwrap(StorageAllocator.allocate(size))
        XCTAssertEqual(b.size, size)
        let block = (b.pointer, b.size, UInt64(step) &* 0x2545_F491_4F6C_DD1D)
        stamp(block)
        live.append(block)
      } else {
        let b = live.remove(at: next(live.count))
        XCTAssertTrue(intact(b), "a block was overwritten while live (step \(step))")
        StorageAllocator.release(b.pointer, b.size)
      }
      if step % 100 == 0 {
        XCTAssertNil(StorageAllocator.checkIntegrity(), "step \(step)")
        XCTAssertTrue(live.allSatisfy(intact))
        let sorted = live.sorted { $0.pointer < $1.pointer }
        for (x, y) in zip(sorted, sorted.dropFirst()) { XCTAssertLessThanOrEqual(x.pointer + x.size, y.pointer) }
      }
    }
    for b in live { XCTAssertTrue(intact(b)); StorageAllocator.release(b.pointer, b.size) }
    XCTAssertNil(StorageAllocator.checkIntegrity())
  }
}
