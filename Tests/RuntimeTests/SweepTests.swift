import Foundation
import XCTest

/// scripts/sweep.lua: 2 values x 2 seeds of a 20-second BigGAN run, killed (the whole process
/// group, SIGKILL) once two cells have finished, then run again: it finishes the other two
/// without rerunning the first two, and writes results.jsonl, a table with mean +- std per row,
/// a plot across the rows and the curve of what the cells evaluated while training; --only then
/// tabulates one row again from its finished cells.
final class SweepTests: XCTestCase {
  func testAKilledSweepContinuesWithoutRerunningFinishedCells() throws {
    let out = FileManager.default.temporaryDirectory.appendingPathComponent("luagan-sweep-\(UUID().uuidString)")
    defer { try? FileManager.default.removeItem(at: out) }
    let args = ["scripts/sweep.lua", "--base=", "--grid=GOrthoBeta={0,1e-3}", "--seeds=2", "--minutes=0.33", "--evalSamples=200",
                "--set=--ch=2 --dimZ=16 --sharedDim=8 --batchSize=8 --svEvery=0 --evalEvery=15 --evalSamples=100 --sampleEvery=1000 "
                  + "--saveEvery=20",
                "--out=\(out.path)"]
    func finishedCells() -> [String] {
      let rows = (try? FileManager.default.contentsOfDirectory(atPath: out.path)) ?? []
      return rows.flatMap { row in
        ["seed1", "seed2"].map { "\(row)/\($0)" }.filter {
          FileManager.default.fileExists(atPath: out.appendingPathComponent("\($0)/sweep-cell.json").path)
        }
      }.sorted()
    }
    // Foundation starts the sweep in a process group of its own: it and its cells are killed together
    let p = Process()
    p.executableURL = Luagan.binary
    p.arguments = args
    p.currentDirectoryURL = Luagan.root
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    let deadline = Date().addingTimeInterval(400)
    while finishedCells().count < 2 && p.isRunning && Date() < deadline { usleep(200_000) }
    let before = finishedCells()
    XCTAssertEqual(before.count, 2, "two cells should have finished before the kill")
    let group = getpgid(p.processIdentifier)
    XCTAssertNotEqual(group, getpgrp(), "the sweep shares the test's process group: cannot kill it alone")
    if group != getpgrp() { kill(-group, SIGKILL) }
    p.waitUntilExit()
    var logs: [String: String] = [:]
    for cell in before { logs[cell] = try String(contentsOfFile: out.appendingPathComponent("\(cell)/log.jsonl").path, encoding: .utf8) }

    let r = try Luagan.run(args)
    XCTAssertEqual(r.status, 0, r.stdout + r.stderr)
    XCTAssertTrue(r.stdout.contains("2 finished before, 2 to run"), r.stdout)
    XCTAssertEqual(finishedCells().count, 4, r.stdout)
    for cell in before {   // untouched: never rerun, never resumed
      XCTAssertEqual(try String(contentsOfFile: out.appendingPathComponent("\(cell)/log.jsonl").path, encoding: .utf8), logs[cell],
                     "\(cell) was run again")
    }
    let results = try String(contentsOf: out.appendingPathComponent("results.jsonl"), encoding: .utf8)
    XCTAssertEqual(results.split(separator: "\n").count, 4, results)
    let table = try String(contentsOf: out.appendingPathComponent("table.md"), encoding: .utf8)
    for words in ["GOrthoBeta=0", "GOrthoBeta=0.001", "± ", "(best fid)", "| fid |"] {
      XCTAssertTrue(table.contains(words), "table.md lacks '\(words)':\n\(table)")
    }
    XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent("table.csv").path))
    for plot in ["fid.png", "fid_curve.png", "accuracy_curve.png", "dGap_curve.png"] {
      XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent(plot).path), "no \(plot):\n\(r.stdout)")
    }
    // --only: one row of the finished sweep, its folder moved, is tabulated again from its cells
    // where they are now (curves included), nothing rerun
    let moved = out.appendingPathExtension("moved")
    defer { try? FileManager.default.removeItem(at: moved) }
    try FileManager.default.moveItem(at: out, to: moved)
    try FileManager.default.removeItem(at: moved.appendingPathComponent("fid_curve.png"))
    let one = try Luagan.run(Array(args.dropLast()) + ["--out=\(moved.path)", "--only=GOrthoBeta=0.001"])
    XCTAssertEqual(one.status, 0, one.stdout + one.stderr)
    XCTAssertTrue(one.stdout.contains("1 rows x 2 seeds = 2 cells") && one.stdout.contains("2 finished before, 0 to run"), one.stdout)
    let oneResults = try String(contentsOf: moved.appendingPathComponent("results.jsonl"), encoding: .utf8).split(separator: "\n")
    XCTAssertEqual(oneResults.count, 2, oneResults.joined(separator: "\n"))
    XCTAssertTrue(oneResults.allSatisfy { $0.contains("\"row\":\"GOrthoBeta=0.001\"") && $0.contains(moved.lastPathComponent) },
                  oneResults.joined(separator: "\n"))
    XCTAssertTrue(FileManager.default.fileExists(atPath: moved.appendingPathComponent("fid_curve.png").path), one.stdout)
    try FileManager.default.moveItem(at: moved, to: out)
    let unknown = try Luagan.run(args + ["--only=GOrthoBeta=0.5"])
    XCTAssertEqual(unknown.status, 2, unknown.stderr)
    XCTAssertTrue(unknown.stderr.contains("no row named 'GOrthoBeta=0.5'; the rows are 'GOrthoBeta=0', 'GOrthoBeta=0.001'"), unknown.stderr)
    // every cell is a normal run folder: sample.lua reads it
    let cell = out.appendingPathComponent(before[0])
    let s = try Luagan.run(["scripts/sample.lua", "--ckpt=\(cell.path)", "--n=0", "--truncations={0}"])
    XCTAssertEqual(s.status, 0, s.stderr)
  }
}
