import Foundation
import XCTest

/// A bounded slice of the fuzzer (`make fuzz` runs at least 1,000,000 calls and 10,000 files):
/// random calls of every luagan function and method with hostile arguments, and mutated files
/// for every reader, in child processes watched by luagan-fuzz. Any signal, hang, runaway
/// memory or early exit fails the test with the seed, the call and a replay command.
final class FuzzTests: XCTestCase {
  func testFuzzSliceFindsNoCrash() throws {
    let driver = Luagan.binary.deletingLastPathComponent().appendingPathComponent("luagan-fuzz")
    guard FileManager.default.isExecutableFile(atPath: driver.path) else {
      XCTFail("no luagan-fuzz next to luagan at \(driver.path): build the package first")
      return
    }
    // Seeds differ from run to run only when asked (LUAGAN_FUZZ_SEED), so CI is repeatable.
    let seed = ProcessInfo.processInfo.environment["LUAGAN_FUZZ_SEED"] ?? "1000"
    let log = FileManager.default.temporaryDirectory.appendingPathComponent("luagan-fuzz-\(UUID().uuidString).log")
    let p = Process()
    p.executableURL = driver
    p.arguments = ["--calls", "60000", "--per-child", "6000", "--files", "3000", "--files-per-child", "500",
                   "--seed", seed, "--timeout", "60", "--luagan", Luagan.binary.path,
                   "--scripts", Luagan.root.appendingPathComponent("scripts/dev/fuzz").path, "--log", log.path]
    let out = Pipe()
    p.standardOutput = out
    p.standardError = out
    try p.run()
    let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    print(text.split(separator: "\n").suffix(3).joined(separator: "\n"))
    XCTAssertEqual(p.terminationStatus, 0, "the fuzzer found failures:\n\(text)")
    XCTAssertTrue(text.contains("60000 calls, 3000 files, 0 failures"), "the slice did not run in full:\n\(text)")
  }
}
