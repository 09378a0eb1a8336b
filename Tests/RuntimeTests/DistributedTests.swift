import Foundation
import XCTest

/// Data parallelism over Open MPI, run with `mpirun -n 2` on the CI machine: the
/// dist library's collectives, 2 ranks x B/2 against 1 process x B in float64 (BigGAN with
/// cross-replica BatchNorm, PGGAN with WGAN-GP during a fade-in), the loader's shares, the real
/// scripts under mpirun, and a rank that dies ending the run instead of hanging it.
final class DistributedTests: FolderTestCase {
  override var folderPrefix: String { "dist" }

  func check(_ r: Luagan.Result, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(r.status, 0, "\(what)\n--- stdout\n\(r.stdout)\n--- stderr\n\(r.stderr)", file: file, line: line)
  }

  func testCollectivesAgreementAndLoaderSharesOnTwoRanks() throws {
    let r = try Luagan.mpirun(2, ["scripts/dev/tests/dist/collectives.lua"])
    check(r, "collectives.lua under mpirun -n 2")
    for rank in 0..<2 { XCTAssertTrue(r.stdout.contains("dist (rank \(rank) of 2): 6 passed, 0 failed"), r.stdout) }
  }

  /// The same 5 steps, as one process with the whole batch and as 2 ranks with half each:
  /// every tensor within 1e-9 of its largest entry, and the two ranks bit-identical.
  func sameSteps(_ script: String) throws -> String {
    let one = tmp.appendingPathComponent("one").path, two = tmp.appendingPathComponent("two").path
    check(try Luagan.run([script, one]), "\(script), one process")
    check(try Luagan.mpirun(2, [script, two]), "\(script), 2 ranks")
    let c = try Luagan.run(["scripts/dev/tests/dist/compare.lua", one, two, "2", "1e-9"])
    check(c, "compare")
    XCTAssertTrue(c.stdout.contains("ranks bit-identical: yes"), c.stdout)
    return c.stdout
  }

  func testBigGANWithCrossReplicaBNOnTwoRanksMatchesOneProcess() throws {
    print(try sameSteps("scripts/dev/tests/dist/biggan_steps.lua"))
  }

  func testPGGANWithWGANGPInAFadeOnTwoRanksMatchesOneProcess() throws {
    print(try sameSteps("scripts/dev/tests/dist/pggan_steps.lua"))
  }

  /// biggan.lua under mpirun in float32: trains, rank 0 alone logs (each iteration once) and
  /// checkpoints; the run resumes in one process (another rank count, the same global batch).
  func testBigGANScriptUnderMpirunLogsOnceAndResumesWithOtherRanks() throws {
    let out = tmp.appendingPathComponent("run").path
    let tiny = ["--ch=2", "--dimZ=16", "--sharedDim=8", "--batchSize=8", "--numDSteps=2", "--sampleEvery=2", "--saveEvery=4", "--svEvery=2",
                "--logEvery=1", "--evalEvery=0", "--emaStart=2", "--quiet", "--crossReplicaBN", "--checkReplicasEvery=1", "--threads=1"]
    check(try Luagan.mpirun(2, ["scripts/biggan.lua", "--iters=4", "--out=\(out)"] + tiny), "biggan.lua under mpirun")
    let log = try String(contentsOfFile: out + "/log.jsonl", encoding: .utf8)
    let steps = log.split(separator: "\n").filter { $0.contains("\"lossD\"") }
    for i in 1...4 { XCTAssertEqual(steps.filter { $0.contains("\"iter\":\(i),") }.count, 1, "iteration \(i) is logged once:\n\(log)") }
    let ckpts = try FileManager.default.contentsOfDirectory(atPath: out + "/ckpt").filter { $0.hasPrefix("iter-") }.sorted()
    XCTAssertEqual(ckpts, ["iter-0000000", "iter-0000004"])    // the starting point (biggan.lua rolls back on collapse), the end
    for f in ["samples/latest.png", "losses.png", "sv_G.png", "options.txt"] {
      XCTAssertTrue(FileManager.default.fileExists(atPath: out + "/" + f), "missing \(f)")
    }
    check(try Luagan.run(["scripts/biggan.lua", "--resume=\(out)", "--iters=6"]), "resumed in one process")
    let after = try String(contentsOfFile: out + "/log.jsonl", encoding: .utf8)
    XCTAssertTrue(after.contains("\"iter\":6,"), after)
  }

  /// pggan.lua (a fade, minibatch stddev within a rank) and dcgan.lua (cross-replica BN in G and
  /// D, sheets and evaluation with each rank's own statistics) under mpirun: one log line per
  /// iteration, one checkpoint.
  func testPGGANAndDCGANScriptsUnderMpirun() throws {
    let pg = tmp.appendingPathComponent("pg").path, dc = tmp.appendingPathComponent("dc").path
    check(try Luagan.mpirun(2, ["scripts/pggan.lua", "--fmapBase=64", "--fmapMax=8", "--latent=16", "--batchSize=8",
                                "--trainKimg=0.016", "--transKimg=0.016", "--totalKimg=0.08", "--sampleEvery=4", "--saveEvery=100",
                                "--evalEvery=0", "--logEvery=1", "--quiet", "--threads=1", "--checkReplicasEvery=2", "--out=\(pg)"]),
          "pggan.lua under mpirun")
    check(try Luagan.mpirun(2, ["scripts/dcgan.lua", "--ngf=4", "--ndf=4", "--nz=8", "--batchSize=8", "--iters=4", "--sampleEvery=2",
                                "--saveEvery=4", "--logEvery=1", "--evalEvery=4", "--evalSamples=300", "--quiet", "--crossReplicaBN",
                                "--checkReplicasEvery=1", "--threads=1", "--out=\(dc)"]), "dcgan.lua under mpirun")
    for (dir, iters, last) in [(pg, 12, "iter-0000012"), (dc, 4, "iter-0000004")] {
      let log = try String(contentsOfFile: dir + "/log.jsonl", encoding: .utf8)
      XCTAssertEqual(log.split(separator: "\n").filter { $0.contains("\"lossD\"") }.count, iters, log)
      XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir + "/ckpt").filter { $0.hasPrefix("iter-") }, [last])
    }
    XCTAssertTrue(try String(contentsOfFile: dc + "/log.jsonl", encoding: .utf8).contains("\"fid\""), "dcgan evaluated")
    let pgLog = try String(contentsOfFile: pg + "/log.jsonl", encoding: .utf8)
    XCTAssertTrue(pgLog.contains("\"kimg\":0.096"), "kimg counts the global batch")
  }

  /// A rank that fails ends every rank, with its message, instead of leaving rank 0 waiting in
  /// a collective forever.
  func testADeadRankEndsTheRun() throws {
    let chunk = "if dist.rank() == 1 then error('rank 1 gives up') end; dist.allReduce(tensor.zeros(3)); print('unreachable')"
    let start = Date()
    let r = try Luagan.mpirun(2, ["-e", chunk], seconds: 120)
    XCTAssertNotEqual(r.status, 0)
    XCTAssertLessThan(Date().timeIntervalSince(start), 100, "the run ended instead of hanging")
    XCTAssertTrue(r.stderr.contains("luagan (rank 1 of 2)") && r.stderr.contains("rank 1 gives up"), r.stderr)
    XCTAssertFalse(r.stdout.contains("unreachable"))
  }

  /// Without mpirun, dist is one rank and its collectives change nothing.
  func testWithoutMpirunDistIsOneRank() throws {
    let r = try Luagan.run(["-e", """
      local t = tensor.ones(3); dist.allReduce(t); dist.barrier(); dist.broadcast(t, 0)
      print(dist.rank(), dist.size(), dist.active(), t[1], dist.allGather(t:view(1, 3)):size(1), #dist.shard(5))
      """])
    check(r, "dist without mpirun")
    XCTAssertEqual(r.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "0\t1\tfalse\t1.0\t1\t5")
  }
}
