import Tensor
import XCTest

/// The ISA → OpenBLAS core table: kernels follow what the CPU can do, never its model number.
final class MachineTests: XCTestCase {
  let v1 = ["sse3"]
  let v2 = ["sse3", "ssse3", "sse4.1", "sse4.2", "popcnt"]
  var v3: [String] { v2 + ["avx", "avx2", "fma", "f16c", "bmi1", "bmi2", "movbe"] }
  var v4: [String] { v3 + ["avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"] }

  func testISALevels() {
    XCTAssertEqual(CPU(vendor: "GenuineIntel", features: v1).isaLevel, 1)
    XCTAssertEqual(CPU(vendor: "GenuineIntel", features: v2).isaLevel, 2)
    XCTAssertEqual(CPU(vendor: "GenuineIntel", features: v3).isaLevel, 3)
    XCTAssertEqual(CPU(vendor: "GenuineIntel", features: v4).isaLevel, 4)
    // AVX-512 without the OS saving its state reads as absent (cpu_features.c), so: level 3.
    XCTAssertEqual(CPU(vendor: "GenuineIntel", features: v3 + ["avx512f"]).isaLevel, 3)
  }

  func testBestCoreForEachISA() {
    let table: [(String, [String], String)] = [
      ("GenuineIntel", v4 + ["avx512bf16", "amx-tile", "amx-bf16"], "Cooperlake"),  // Sapphire Rapids / the issue's VM
      ("GenuineIntel", v4 + ["avx512bf16"], "Cooperlake"),
      ("GenuineIntel", v4, "SkylakeX"),
      ("AuthenticAMD", v4 + ["avx512bf16"], "Cooperlake"),  // Zen 4
      ("AuthenticAMD", v4, "SkylakeX"),
      ("GenuineIntel", v3, "Haswell"),
      ("AuthenticAMD", v3, "Zen"),
      ("HygonGenuine", v3, "Zen"),
      ("GenuineIntel", v2 + ["avx"], "Sandybridge"),
      ("GenuineIntel", v2, "Nehalem"),
      ("GenuineIntel", v1, "Prescott"),
    ]
    for (vendor, features, core) in table {
      XCTAssertEqual(BLASCore.best(for: CPU(vendor: vendor, features: features)), core, "\(vendor) \(features.last ?? "")")
    }
  }

  func testFallbackCoresRankBelowTheCPU() {
    // The failure the issue reports: OpenBLAS falls back to Prescott on an AVX-512 CPU.
    let cpu = CPU(vendor: "GenuineIntel", features: v4 + ["avx512bf16"])
    XCTAssertLessThan(BLASCore.rank("Prescott"), BLASCore.rank(BLASCore.best(for: cpu)))
    XCTAssertLessThan(BLASCore.rank("Haswell"), BLASCore.rank("SkylakeX"))
    XCTAssertEqual(BLASCore.rank("ZEN"), BLASCore.rank("Haswell"), "names compare case-insensitively")
    XCTAssertEqual(BLASCore.rank("Unknown"), 0)
  }

  func testThisMachineIsDescribed() {
    let cpu = CPU.current
    XCTAssertFalse(cpu.vendor.isEmpty)
    XCTAssertGreaterThanOrEqual(cpu.isaLevel, 1)
    XCTAssertTrue(Machine.summary.contains("BLAS: OpenBLAS"))
  }
}
