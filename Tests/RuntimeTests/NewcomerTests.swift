import Foundation
import XCTest

/// What a new user meets in the first hour: ordinary mistakes end with one line and status 2
/// (a traceback only for the user's own code, or when asked); Ctrl-C saves the step it
/// interrupted and says how to resume; what an interrupted save left is removed at the next start.
final class NewcomerTests: FolderTestCase {
  override var folderPrefix: String { "newcomer" }

  static let tiny = ["--ch=2", "--dimZ=16", "--sharedDim=8", "--batchSize=8", "--evalEvery=0", "--svEvery=0", "--sampleEvery=1000",
                     "--quiet"]

  /// Each mistake of the issue that filed this (a newcomer's first hour), with the words its line must hold.
  func testOrdinaryMistakesAreOneLineWithStatus2() throws {
    let empty = tmp.appendingPathComponent("empty")
    try FileManager.default.createDirectory(at: empty, withIntermediateDirectories: true)
    let out = "--out=\(tmp.path)/run"
    // a PGGAN run, to resume with the wrong script
    let pg = tmp.appendingPathComponent("pg")
    let made = try Luagan.run(["scripts/pggan.lua", "--growth=none", "--fmapBase=16", "--fmapMax=8", "--latent=8", "--batchSize=4",
                               "--iters=1", "--minutes=0", "--saveEvery=1", "--evalEvery=0", "--svEvery=0", "--quiet",
                               "--out=\(pg.path)"])
    XCTAssertEqual(made.status, 0, made.stderr)
    let biggan = ["scripts/biggan.lua", "--iters=1", out] + Self.tiny
    let cases: [([String], String)] = [
      (biggan + ["--dataset=folder", "--dataRoot=nope"], "--dataRoot=nope: no such folder"),
      (biggan + ["--dataset=folder"], "--dataset=folder needs --dataRoot"),
      (biggan + ["--dataset=folder", "--dataRoot=\(empty.path)"], "no PNG or JPEG files under"),
      (biggan + ["--dataset=cifar10", "--dataRoot=\(empty.path)"], "download cifar-10-binary.tar.gz"),
      (biggan + ["--dataset=imagenet"], "--dataset=imagenet: not one of"),
      (biggan + ["--resolution=64"], "fashion-mnist images are 28x28: train them at --resolution=32"),
      (["scripts/biggan.lua", "--shared=false", out], "--hier: needs --shared"),
      (["scripts/biggan.lua", "--GAttn=16,32", out], "--GAttn: must be like '16' or '16_32'"),
      (biggan + ["--diffAugment=colour"], "unknown transform 'colour'"),
      (biggan.filter { !$0.hasPrefix("--dimZ") } + ["--dimZ=3"], "dimZ 3 is smaller than the 4 z chunks"),
      (["scripts/biggan.lua", "--batchsize=16", out], "unknown option --batchsize (did you mean --batchSize?)"),
      (["scripts/biggan.lua", "--threads=-1", out], "--threads must be at least 0"),
      (["scripts/sample.lua", "--ckpt=nope"], "no run or checkpoint folder 'nope'"),
      (["scripts/sample.lua", "--pretrained=biggan-deep-256", "--weights=nope.bin"], "no such file 'nope.bin'"),
      (["scripts/eval.lua", "--ckpt=\(tmp.path)/nothing"], "no run or checkpoint folder"),
      (biggan + ["--resume=\(pg.path)"], "holds a pggan run, not biggan: continue it with luagan scripts/pggan.lua --resume="),
    ]
    for (args, words) in cases {
      let r = try Luagan.run(args)
      let lines = r.stderr.split(separator: "\n", omittingEmptySubsequences: true)
      XCTAssertEqual(r.status, 2, "\(args): \(r.stderr)")
      XCTAssertEqual(lines.count, 1, "\(args): one line expected, got:\n\(r.stderr)")
      XCTAssertTrue(r.stderr.contains(words), "\(args): expected '\(words)' in:\n\(r.stderr)")
      XCTAssertFalse(r.stderr.contains("stack traceback"), "\(args): \(r.stderr)")
      XCTAssertNil(r.stderr.range(of: #"\.lua:\d+:"#, options: .regularExpression), "\(args): a code position in \(r.stderr)")
    }
    // asked for, the traceback is there (status 1, as any script error)
    let traced = try Luagan.run(biggan + ["--resolution=64"], environment: ["LUAGAN_TRACEBACK": "1"])
    XCTAssertEqual(traced.status, 1, traced.stderr)
    XCTAssertTrue(traced.stderr.contains("stack traceback"), traced.stderr)
  }

  /// An error in the user's own code is that code's bug: message, traceback into it, status 1;
  /// a Lua runtime error inside luagan's scripts is a bug too and keeps its traceback.
  func testErrorsInTheUsersOwnCodeKeepTheirTraceback() throws {
    let mine = tmp.appendingPathComponent("mine.lua")
    try "local function f() error('my own mistake') end\nf()\n".write(to: mine, atomically: true, encoding: .utf8)
    let r = try Luagan.run([mine.path])
    XCTAssertEqual(r.status, 1, r.stderr)
    XCTAssertTrue(r.stderr.contains("mine.lua:1: my own mistake") && r.stderr.contains("stack traceback"), r.stderr)
    // a library call with a bad argument from the user's code is that code's too
    let call = tmp.appendingPathComponent("call.lua")
    try "local x = nn.Linear(0, 3)\n".write(to: call, atomically: true, encoding: .utf8)
    let c = try Luagan.run([call.path])
    XCTAssertEqual(c.status, 1, c.stderr)
    XCTAssertTrue(c.stderr.contains("call.lua:1:") && c.stderr.contains("stack traceback"), c.stderr)
    // the shipped scripts, named without scripts/, get a hint
    let hint = try Luagan.run(["biggan.lua"])
    XCTAssertEqual(hint.status, 2)
    XCTAssertTrue(hint.stderr.contains("did you mean scripts/biggan.lua?"), hint.stderr)
    // and from any folder, scripts/<name>.lua is the shipped script
    let elsewhere = try Luagan.run(["scripts/dcgan.lua", "--help"], cwd: tmp)
    XCTAssertEqual(elsewhere.status, 0, elsewhere.stderr)
    let help = try Luagan.run(["--help"])
    for name in ["biggan.lua", "pggan.lua", "dcgan.lua", "sample.lua", "eval.lua"] {
      XCTAssertTrue(help.stdout.contains("  \(name) "), "luagan --help does not list \(name):\n\(help.stdout)")
    }
  }

  /// Starts a training run, waits until `ready` says so about its stderr and run folder, and
  /// returns the process with its stderr pipe.
  func startRun(_ args: [String]) throws -> (Process, Pipe) {
    let p = Process()
    p.executableURL = Luagan.binary
    p.arguments = args
    p.currentDirectoryURL = Luagan.root
    let err = Pipe()
    p.standardOutput = FileHandle.nullDevice
    p.standardError = err
    try p.run()
    return (p, err)
  }

  func logLines(_ dir: URL) -> Int {
    guard let text = try? String(contentsOf: dir.appendingPathComponent("log.jsonl"), encoding: .utf8) else { return 0 }
    return text.split(separator: "\n").count
  }

  func savedIteration(_ dir: URL) throws -> Int {
    let r = try Luagan.run(["-e", "print(ckpt.load(\(Luagan.quote(dir.path + "/ckpt"))).iter)"])
    XCTAssertEqual(r.status, 0, r.stderr)
    return Int(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines)) ?? -1
  }

  /// The first Ctrl-C finishes the step, saves it and prints the resume command (status 130);
  /// the resume continues from that iteration.
  func testCtrlCSavesTheStepAndSaysHowToResume() throws {
    let dir = tmp.appendingPathComponent("interrupted")
    let args = ["scripts/biggan.lua", "--iters=100000", "--saveEvery=100000", "--logEvery=1", "--out=\(dir.path)"] + Self.tiny
    let (p, err) = try startRun(args)
    let deadline = Date().addingTimeInterval(120)
    while logLines(dir) < 5 && p.isRunning && Date() < deadline { usleep(50_000) }
    XCTAssertTrue(p.isRunning, "the run ended before it could be interrupted")
    kill(p.processIdentifier, SIGINT)
    let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    XCTAssertEqual(p.terminationStatus, 130, stderr)
    XCTAssertTrue(stderr.contains("continue with: luagan scripts/biggan.lua --resume=\(dir.path)"), stderr)
    XCTAssertFalse(stderr.contains("stack traceback"), stderr)
    let iter = try savedIteration(dir)
    XCTAssertGreaterThanOrEqual(iter, 5, stderr)
    XCTAssertTrue(stderr.contains("interrupted at iteration \(iter)"), stderr)
    let resumed = try Luagan.run(["scripts/biggan.lua", "--resume=\(dir.path)", "--iters=\(iter + 2)", "--quiet"])
    XCTAssertEqual(resumed.status, 0, resumed.stderr)
    XCTAssertEqual(try savedIteration(dir), iter + 2)
  }

  /// A second Ctrl-C during the save stops at once (status 130): the last complete checkpoint
  /// loads, and what the save left (.tmp-* folders) is gone after the next start.
  func testASecondCtrlCDuringTheSaveKeepsTheLastCheckpoint() throws {
    let dir = tmp.appendingPathComponent("twice")
    // ch 32: a checkpoint of some megabytes, so the save takes long enough to be interrupted
    let args = ["scripts/biggan.lua", "--iters=100000", "--saveEvery=2", "--logEvery=1", "--out=\(dir.path)", "--ch=32"]
      + Self.tiny.filter { !$0.hasPrefix("--ch=") }
    let (p, err) = try startRun(args)
    let deadline = Date().addingTimeInterval(180)
    while logLines(dir) < 3 && p.isRunning && Date() < deadline { usleep(50_000) }
    XCTAssertTrue(p.isRunning, "the run ended before it could be interrupted")
    kill(p.processIdentifier, SIGINT)
    // the first Ctrl-C's message comes just before the save: the second lands inside it
    var text = ""
    while !text.contains("saving a checkpoint"), p.isRunning {
      let chunk = err.fileHandleForReading.availableData
      if chunk.isEmpty { break }
      text += String(decoding: chunk, as: UTF8.self)
    }
    kill(p.processIdentifier, SIGINT)
    text += String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    XCTAssertEqual(p.terminationStatus, 130, text)
    XCTAssertTrue(text.contains("interrupted at iteration"), text)
    let iter = try savedIteration(dir)
    XCTAssertGreaterThanOrEqual(iter, 2, "the last complete checkpoint does not load:\n\(text)")
    // whatever the save left, and a stray one planted as a killed save would leave it
    let ckptDir = dir.appendingPathComponent("ckpt")
    let stray = ckptDir.appendingPathComponent(".tmp-iter-9999999-12345")
    try FileManager.default.createDirectory(at: stray, withIntermediateDirectories: true)
    let resumed = try Luagan.run(["scripts/biggan.lua", "--resume=\(dir.path)", "--iters=\(iter + 1)", "--quiet"])
    XCTAssertEqual(resumed.status, 0, resumed.stderr)
    let left = try FileManager.default.contentsOfDirectory(atPath: ckptDir.path).filter { $0.hasPrefix(".tmp-") || $0.hasPrefix(".old-") }
    XCTAssertEqual(left, [], "temporary checkpoint folders survived the next start")
  }
}
