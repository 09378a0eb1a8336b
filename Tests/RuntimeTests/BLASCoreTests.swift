import Foundation
import XCTest

/// End to end: the luagan executable runs OpenBLAS kernels as strong as the CPU supports, on
/// this machine as it is and on a simulated CPU that OpenBLAS does not recognise (its Prescott
/// fallback), and a user's own OPENBLAS_CORETYPE is honoured.
final class BLASCoreTests: XCTestCase {
  let check = """
    local c = tensor.config()
    print(c.blasCore, c.blasBest, c.blasChosenBy)
    assert(c.blasRank >= c.blasBestRank, ("OpenBLAS runs %s, weaker than %s for %s"):format(c.blasCore, c.blasBest, c.isa))
    """

  func testCoreMatchesTheCPU() throws {
    let r = try Luagan.run(["-e", check], environment: ["OPENBLAS_CORETYPE": "", "LUAGAN_SIMULATE_BLAS_FALLBACK": ""])
    XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
  }

  func testSimulatedUnknownCPUGetsTheRightCore() throws {
    // The machine's own OPENBLAS_CORETYPE (some set one globally) would win over the fallback.
    let fallback = ["OPENBLAS_CORETYPE": "", "LUAGAN_SIMULATE_BLAS_FALLBACK": "1"]
    let r = try Luagan.run(["-e", check], environment: fallback)
    XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
    XCTAssertTrue(r.stdout.contains("OpenBLAS had chosen Prescott"), r.stdout)
    let v = try Luagan.run(["--version"], environment: fallback)
    XCTAssertFalse(v.stdout.contains("BLAS: OpenBLAS Prescott"), v.stdout)
  }

  func testUsersCoretypeWins() throws {
    let r = try Luagan.run(["-e", "local c = tensor.config(); print(c.blasCore, c.blasChosenBy)"],
                           environment: ["OPENBLAS_CORETYPE": "Prescott", "LUAGAN_SIMULATE_BLAS_FALLBACK": "1"])
    XCTAssertEqual(r.status, 0, r.stderr)
    XCTAssertTrue(r.stdout.hasPrefix("Prescott"), r.stdout)
    XCTAssertTrue(r.stdout.contains("yours"), r.stdout)
  }
}
