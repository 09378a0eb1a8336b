import Foundation
import XCTest

/// The papers' scripts, run as a user runs them on a few iterations with tiny widths: they
/// train, write sheets, logs, plots and checkpoints, resume bit-exactly, and reject bad options.
final class TrainingScriptsTests: FolderTestCase {
  override var folderPrefix: String { "scripts" }

  func run(_ args: [String], file: StaticString = #filePath, line: UInt = #line) throws -> Luagan.Result {
    let r = try Luagan.run(args)
    XCTAssertEqual(r.status, 0, "luagan \(args.joined(separator: " "))\n--- stdout\n\(r.stdout)\n--- stderr\n\(r.stderr)", file: file, line: line)
    return r
  }

  func assertFiles(_ dir: URL, _ names: [String], file: StaticString = #filePath, line: UInt = #line) {
    for n in names {
      XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent(n).path), "missing \(dir.path)/\(n)", file: file, line: line)
    }
  }

  /// Every tensor of two checkpoints is identical (a resumed run equals an uninterrupted one).
  func assertSameCheckpoint(_ a: URL, _ b: URL, file: StaticString = #filePath, line: UInt = #line) throws {
    let chunk = """
      local a = tensor.load('\(a.path)/tensors.safetensors')
      local b = tensor.load('\(b.path)/tensors.safetensors')
      local n, bad = 0, {}
      for k, v in pairs(a) do
        n = n + 1
        if not b[k] or (v - b[k]):abs():max():item() ~= 0 then bad[#bad + 1] = k end
      end
      for k in pairs(b) do if not a[k] then bad[#bad + 1] = k end end
      table.sort(bad)
      print(n, #bad, table.concat(bad, ' ', 1, math.min(#bad, 8)))
      """
    let r = try run(["-e", chunk], file: file, line: line)
    let fields = r.stdout.split(separator: "\t")
    XCTAssertGreaterThan(Int(fields.first ?? "") ?? 0, 10, r.stdout, file: file, line: line)
    XCTAssertEqual(fields.count > 1 ? String(fields[1]) : "", "0", "checkpoints differ (tensors compared, tensors that differ, the first names): \(r.stdout)", file: file, line: line)
  }

  static let tinyBigGAN = ["--ch=2", "--dimZ=16", "--sharedDim=8", "--batchSize=8", "--numDSteps=2", "--GAttn=16", "--sampleEvery=2",
                           "--saveEvery=2", "--svEvery=2", "--logEvery=1", "--evalEvery=0", "--emaStart=2", "--quiet"]

  func testBigGANTrainsResumesAndSamples() throws {
    let a = tmp.appendingPathComponent("a"), b = tmp.appendingPathComponent("b")
    _ = try run(["scripts/biggan.lua", "--iters=6", "--out=\(a.path)"] + Self.tinyBigGAN)
    assertFiles(a, ["samples/latest.png", "samples/iter-0000006.png", "log.jsonl", "losses.png", "sv_G.png", "sv_D.png",
                    "singular_values.jsonl", "options.txt", "ckpt/iter-0000006/state.json", "tb"])
    // Interrupted after 4 iterations, resumed to 6: the same weights, optimizer moments, EMA,
    // BN statistics and spectral-norm vectors as the uninterrupted run.
    _ = try run(["scripts/biggan.lua", "--iters=4", "--out=\(b.path)"] + Self.tinyBigGAN)
    _ = try run(["scripts/biggan.lua", "--resume=\(b.path)", "--iters=6"])
    try assertSameCheckpoint(a.appendingPathComponent("ckpt/iter-0000006"), b.appendingPathComponent("ckpt/iter-0000006"))
    // Resumed from the starting point a rolling-back run keeps (iter-0000000): the same run.
    let c = tmp.appendingPathComponent("c")
    _ = try run(["scripts/biggan.lua", "--iters=2", "--out=\(c.path)"] + Self.tinyBigGAN)
    try FileManager.default.removeItem(at: c.appendingPathComponent("ckpt/iter-0000002"))
    try "iter-0000000\n".write(to: c.appendingPathComponent("ckpt/latest"), atomically: true, encoding: .utf8)
    _ = try run(["scripts/biggan.lua", "--resume=\(c.path)", "--iters=6"])
    try assertSameCheckpoint(a.appendingPathComponent("ckpt/iter-0000006"), c.appendingPathComponent("ckpt/iter-0000006"))

    let s = try run(["scripts/sample.lua", "--ckpt=\(a.path)", "--n=200", "--truncations={0,1}"])
    assertFiles(a.appendingPathComponent("sample"), ["classes.png", "interp_z.png", "interp_class.png", "trunc-none.png",
                                                     "trunc-1.png", "truncation.png", "truncation.json"])
    XCTAssertTrue(s.stdout.contains("truncation none"), s.stdout)
    let e = try run(["scripts/eval.lua", "--ckpt=\(a.path)", "--n=300", "--json=\(tmp.path)/eval.json"])
    for metric in ["FID (domain)", "KID (domain)", "precision", "recall", "IS (domain)", "class accuracy", "SWD x1e3", "MS-SSIM"] {
      XCTAssertTrue(e.stdout.contains(metric), "eval.lua does not report \(metric):\n\(e.stdout)")
    }
    let json = try String(contentsOfFile: "\(tmp.path)/eval.json", encoding: .utf8)
    XCTAssertTrue(json.contains("\"fid\"") && json.contains("\"accuracy\""), json)

    // Standing statistics draw plain N(0, 1) noise, as BigGAN-PyTorch's accumulate_standing_stats,
    // whatever the samples' truncation; a truncation is used only when asked for.
    let probe = tmp.appendingPathComponent("standing.lua")
    try """
      local training = require("training")
      local g = training.loadGenerator(arg[1])
      local seen = {}
      local noise = training.noise
      training.noise = function(n, d, t) seen[#seen + 1] = t; return noise(n, d, t) end
      g.standing(2)
      g.standing(1, 0.5)
      print(table.concat(seen, ","))
      """.write(to: probe, atomically: true, encoding: .utf8)
    let seen = try run([probe.path, a.path])
    XCTAssertEqual(seen.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "0,0,0.5", seen.stdout + seen.stderr)
  }

  /// BigGAN-deep trains, resumes bit-exactly and samples; sample.lua also samples BigGAN-PyTorch's
  /// G.pth and pytorch-pretrained-BigGAN's weights (the fixtures' random-weight ones).
  func testBigGANDeepAndPyTorchWeightsSample() throws {
    let a = tmp.appendingPathComponent("a"), b = tmp.appendingPathComponent("b")
    let deep = ["--arch=deep", "--depth=1"] + Self.tinyBigGAN
    _ = try run(["scripts/biggan.lua", "--iters=4", "--out=\(a.path)"] + deep)
    _ = try run(["scripts/biggan.lua", "--iters=2", "--out=\(b.path)"] + deep)
    _ = try run(["scripts/biggan.lua", "--resume=\(b.path)", "--iters=4"])
    try assertSameCheckpoint(a.appendingPathComponent("ckpt/iter-0000004"), b.appendingPathComponent("ckpt/iter-0000004"))
    _ = try run(["scripts/sample.lua", "--ckpt=\(a.path)", "--n=0", "--truncations={0,0.5}"])
    assertFiles(a.appendingPathComponent("sample"), ["classes.png", "interp_z.png", "interp_class.png", "trunc-0.5.png"])

    let pth = Luagan.root.appendingPathComponent("Tests/Fixtures/pth").path
    let p = tmp.appendingPathComponent("pth"), h = tmp.appendingPathComponent("hf")
    _ = try run(["scripts/sample.lua", "--ckpt=\(pth)/biggan_pytorch_G.pth", "--out=\(p.path)", "--n=0", "--truncations={0,0.5}",
                 "--classes={1,208}", "--batch=8"])
    assertFiles(p, ["classes.png", "interp_z.png", "interp_class.png", "trunc-none.png", "trunc-0.5.png"])
    let s = try run(["scripts/sample.lua", "--pretrained=biggan-deep-128", "--weights=\(pth)/biggan_deep_128.bin", "--out=\(h.path)",
                     "--n=0", "--truncations={1,0.4}", "--classes={208}"])
    assertFiles(h, ["classes.png", "interp_z.png", "interp_class.png", "trunc-1.png", "trunc-0.4.png"])
    XCTAssertTrue(s.stdout.contains("trunc-0.4.png"), s.stdout)
    let wrong = try Luagan.run(["scripts/sample.lua", "--pretrained=biggan-deep-256", "--weights=\(pth)/biggan_deep_128.bin",
                                "--out=\(h.path)"])
    XCTAssertNotEqual(wrong.status, 0)
    XCTAssertTrue(wrong.stderr.contains("holds a 128 px BigGAN-deep, not biggan-deep-256"), wrong.stderr)
  }

  /// --minutes: the run stops when the budget is spent (its summary says how many iterations
  /// fit), the EMA starts at a share of it, and a resume continues the budget from where the
  /// checkpoint left it.
  func testBigGANTimeBudgetAndResume() throws {
    let a = tmp.appendingPathComponent("budget")
    _ = try run(["scripts/biggan.lua"] + Self.tinyBigGAN + ["--minutes=0.05", "--iters=1000000", "--emaStart=0.5",
                 "--saveEvery=1000000", "--out=\(a.path)"])
    func summary() throws -> (iterations: Int, minutes: Double, emaAt: Int?) {
      let text = try String(contentsOfFile: a.appendingPathComponent("log.jsonl").path, encoding: .utf8)
      var result: (Int, Double, Int?) = (0, 0, nil)
      for line in text.split(separator: "\n") {
        let row = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] ?? [:]
        if let n = row["iterations"] as? Int, let m = row["minutes"] as? Double { result.0 = n; result.1 = m }
        if row["milestone"] as? String == "emaStart" { result.2 = row["iter"] as? Int }
      }
      return result
    }
    let first = try summary()
    XCTAssertGreaterThan(first.iterations, 2)
    XCTAssertGreaterThanOrEqual(first.minutes, 0.05)
    XCTAssertLessThan(first.minutes, 0.05 + 0.5, "stopped soon after the budget")
    let emaAt = try XCTUnwrap(first.emaAt, "the EMA start is logged")
    XCTAssertTrue(emaAt > 1 && emaAt < first.iterations, "the EMA started inside the run: \(emaAt) of \(first.iterations)")
    let saved = try Luagan.run(["-e", "local s = ckpt.load(\(Luagan.quote(a.path + "/ckpt"))); print(s.iter, s.ema.startIter)"])
    XCTAssertEqual(saved.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "\(first.iterations)\t\(emaAt)", saved.stderr)

    _ = try run(["scripts/biggan.lua", "--resume=\(a.path)", "--minutes=0.1"])
    let second = try summary()
    XCTAssertGreaterThan(second.iterations, first.iterations, "the resumed run went on")
    XCTAssertGreaterThanOrEqual(second.minutes, 0.1)
    XCTAssertEqual(second.emaAt, emaAt, "the milestone is not passed again")
  }

  func testBigGANPeriodicEvaluation() throws {
    let a = tmp.appendingPathComponent("eval"), b = tmp.appendingPathComponent("noeval")
    let r = try Luagan.run(["scripts/biggan.lua", "--iters=4", "--out=\(a.path)", "--evalEvery=2", "--evalSamples=200"]
      + Self.tinyBigGAN.filter { $0 != "--evalEvery=0" && $0 != "--quiet" })
    XCTAssertEqual(r.status, 0, r.stderr)
    XCTAssertTrue(r.stdout.contains("domain FID"), r.stdout)
    let log = try String(contentsOfFile: a.appendingPathComponent("log.jsonl").path, encoding: .utf8)
    XCTAssertTrue(log.contains("\"fid\"") && log.contains("\"accuracy\""), log)
    // Evaluating does not change the run: the same state at iteration 4 as a run without it.
    _ = try run(["scripts/biggan.lua", "--iters=4", "--out=\(b.path)"] + Self.tinyBigGAN)
    try assertSameCheckpoint(a.appendingPathComponent("ckpt/iter-0000004"), b.appendingPathComponent("ckpt/iter-0000004"))
  }

  // 4 images per iteration: each level stabilises for 4 iterations and fades in over 8.
  static let tinyPGGAN = ["--fmapBase=32", "--fmapMax=8", "--latent=8", "--trainKimg=0.016", "--transKimg=0.032",
                          "--batchSize=4", "--sampleEvery=5", "--saveEvery=5", "--svEvery=5", "--logEvery=1", "--evalEvery=0", "--quiet"]

  func testPGGANGrowsFadesAndResumes() throws {
    let a = tmp.appendingPathComponent("a"), b = tmp.appendingPathComponent("b")
    _ = try run(["scripts/pggan.lua", "--totalKimg=0.2", "--out=\(a.path)"] + Self.tinyPGGAN)   // 50 iterations
    assertFiles(a, ["samples/latest.png", "log.jsonl", "losses.png", "sv_G.png", "ckpt/iter-0000050/state.json"])
    // The log shows the lod going from 3 (4x4) through the fades to 0 (32x32).
    let log = try String(contentsOfFile: a.appendingPathComponent("log.jsonl").path, encoding: .utf8)
    XCTAssertTrue(log.contains("\"lod\":3") && log.contains("\"lod\":0"), log)
    XCTAssertTrue(log.contains("\"lod\":2.5"), "a fade-in at t = 0.5 is logged:\n\(log)")
    _ = try run(["scripts/pggan.lua", "--totalKimg=0.2", "--iters=30", "--out=\(b.path)"] + Self.tinyPGGAN)
    _ = try run(["scripts/pggan.lua", "--resume=\(b.path)", "--iters=50"])
    try assertSameCheckpoint(a.appendingPathComponent("ckpt/iter-0000050"), b.appendingPathComponent("ckpt/iter-0000050"))
    _ = try run(["scripts/sample.lua", "--ckpt=\(a.path)", "--n=0", "--truncations={0}"])
    assertFiles(a.appendingPathComponent("sample"), ["classes.png", "interp_z.png", "trunc-none.png"])
  }

  /// minibatch_dict and the lr dicts: the minibatch and rates switch with floor(lod), kimg
  /// counts reals, and a resume inside a schedule period with a bigger minibatch is exact.
  func testPGGANPerResolutionMinibatchAndLearningRates() throws {
    let a = tmp.appendingPathComponent("a"), b = tmp.appendingPathComponent("b")
    let dicts = ["--minibatchDict={[4]=8,[32]=12}", "--DLrDict={[8]=5e-4}", "--totalKimg=0.2", "--saveEvery=7", "--keep=100"]
    _ = try run(["scripts/pggan.lua", "--out=\(a.path)"] + Self.tinyPGGAN + dicts)
    let log = try String(contentsOfFile: a.appendingPathComponent("log.jsonl").path, encoding: .utf8)
    var last = 0.0, sizes: [Double: Set<Int>] = [:]
    for line in log.split(separator: "\n") {
      let row = try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] ?? [:]
      // step records (the last line is the run's summary: iterations and minutes)
      guard let lod = row["lod"] as? Double, let batch = row["minibatch"] as? Int, let kimg = row["kimg"] as? Double else { continue }
      XCTAssertEqual(kimg, last + Double(batch) / 1000, accuracy: 1e-12, "kimg counts the reals shown to D")
      last = kimg
      sizes[lod.rounded(.down), default: []].insert(batch)
    }
    XCTAssertEqual(sizes[3], [8], "4x4 runs with minibatchDict[4]")
    XCTAssertEqual(sizes[1], [4], "16x16 runs with the base minibatch")
    XCTAssertEqual(sizes[0], [12], "32x32 (and the fade into it) runs with minibatchDict[32]")
    XCTAssertGreaterThanOrEqual(last, 0.2, "the run lasts totalKimg")
    // The D learning rate is 5e-4 while 8x8 is trained, 1e-3 (the base) afterwards.
    // Read the optimizer's own learning rate from the checkpoint (the saved options also hold
    // 0.0005, in the dict itself, so a text search could not fail).
    let first = try Luagan.run(["-e", """
      local s = ckpt.load(\(Luagan.quote(a.appendingPathComponent("ckpt").path + "/" + firstCheckpoint(a))))
      print(s.optD.stateDict.paramGroups[1].lr)
      """])
    XCTAssertEqual(first.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "0.0005", "optD runs at DLrDict[8] at 8x8: \(first.stderr)")
    _ = try run(["scripts/pggan.lua", "--out=\(b.path)", "--iters=19"] + Self.tinyPGGAN + dicts)
    _ = try run(["scripts/pggan.lua", "--resume=\(b.path)", "--iters=\(try latestIter(a))"])
    let name = String(format: "iter-%07d", try latestIter(a))
    try assertSameCheckpoint(a.appendingPathComponent("ckpt/" + name), b.appendingPathComponent("ckpt/" + name))
    let bad = try Luagan.run(["scripts/pggan.lua", "--minibatchDict={[6]=8}", "--out=\(tmp.path)/bad"])
    XCTAssertEqual(bad.status, 2)
    XCTAssertTrue(bad.stderr.contains("--minibatchDict: key 6 is not a resolution"), bad.stderr)
  }

  private func checkpoints(_ run: URL) throws -> [String] {
    try FileManager.default.contentsOfDirectory(atPath: run.appendingPathComponent("ckpt").path).filter { $0.hasPrefix("iter-") }.sorted()
  }
  private func firstCheckpoint(_ run: URL) throws -> String { try checkpoints(run).first! }
  private func latestIter(_ run: URL) throws -> Int { Int(try checkpoints(run).last!.dropFirst(5))! }

  /// Own data and the small-data aids together: the stylegan2-ada zip fixture (non-square, 3
  /// classes) cropped to 32 px, DiffAugment with ADA's probability, LeCam, gradient accumulation,
  /// and the paper's stability knobs (G's sigma clamp, R1 on D); the run trains, and a resumed run (ADA's p and LeCam's averages from the
  /// checkpoint) equals the uninterrupted one bit for bit.
  func testBigGANOnAZipWithSmallDataAids() throws {
    let a = tmp.appendingPathComponent("a"), b = tmp.appendingPathComponent("b")
    let zip = Luagan.root.appendingPathComponent("Tests/Fixtures/files/dataset.zip").path
    let options = ["--dataset=zip", "--dataRoot=\(zip)", "--fit=crop", "--batchSize=4", "--diffAugment=color,translation,cutout",
                   "--adaTarget=0.6", "--adaKimg=0.01", "--lecam=0.3", "--numDAccumulations=2", "--numGAccumulations=2",
                   "--GSigmaClamp=0.1", "--DR1Gamma=1"]
      + Self.tinyBigGAN.filter { !$0.hasPrefix("--batchSize") }
    _ = try run(["scripts/biggan.lua", "--iters=6", "--out=\(a.path)"] + options)
    let log = try String(contentsOf: a.appendingPathComponent("log.jsonl"), encoding: .utf8)
    XCTAssertTrue(log.contains("\"augmentP\""), "ADA's probability is logged: \(log.prefix(400))")
    _ = try run(["scripts/biggan.lua", "--iters=4", "--out=\(b.path)"] + options)
    _ = try run(["scripts/biggan.lua", "--resume=\(b.path)", "--iters=6"])
    try assertSameCheckpoint(a.appendingPathComponent("ckpt/iter-0000006"), b.appendingPathComponent("ckpt/iter-0000006"))
    let sa = try String(contentsOf: a.appendingPathComponent("ckpt/iter-0000006/state.json"), encoding: .utf8)
    let sb = try String(contentsOf: b.appendingPathComponent("ckpt/iter-0000006/state.json"), encoding: .utf8)
    for key in ["\"lecam\"", "\"ada\""] { XCTAssertTrue(sa.contains(key), "\(key) is in the checkpoint") }
    func smallData(_ s: String) -> Substring { s[s.range(of: "\"smallData\"")!.lowerBound...].prefix(200) }
    XCTAssertEqual(smallData(sa), smallData(sb), "ADA's and LeCam's state after a resume")
  }

  func testDCGANTrainsAndResumes() throws {
    let a = tmp.appendingPathComponent("a"), b = tmp.appendingPathComponent("b")
    let tiny = ["--ngf=4", "--ndf=4", "--nz=8", "--batchSize=8", "--sampleEvery=2", "--saveEvery=2", "--logEvery=1", "--quiet"]
    _ = try run(["scripts/dcgan.lua", "--iters=4", "--out=\(a.path)"] + tiny)
    assertFiles(a, ["samples/latest.png", "log.jsonl", "losses.png", "ckpt/iter-0000004/state.json"])
    _ = try run(["scripts/dcgan.lua", "--iters=2", "--out=\(b.path)"] + tiny)
    _ = try run(["scripts/dcgan.lua", "--resume=\(b.path)", "--iters=4"])
    try assertSameCheckpoint(a.appendingPathComponent("ckpt/iter-0000004"), b.appendingPathComponent("ckpt/iter-0000004"))
  }

  func testBadOptionsAreClearErrors() throws {
    let out = "--out=\(tmp.path)/bad"
    let used = tmp.appendingPathComponent("used")
    try FileManager.default.createDirectory(at: used, withIntermediateDirectories: true)
    try "{}\n".write(to: used.appendingPathComponent("log.jsonl"), atomically: true, encoding: .utf8)
    let cases: [([String], Int32, String)] = [
      (["scripts/biggan.lua", "--GOrthoBta=1e-4", out], 2, "unknown option --GOrthoBta (did you mean --GOrthoBeta?)"),
      (["scripts/biggan.lua", "--ch=wide", out], 2, "--ch"),
      (["scripts/biggan.lua", "--resume=\(tmp.path)/nothing"], 2, "cannot resume"),
      (["scripts/biggan.lua", "--no-shared", "--iters=1", out], 2, "--hier: needs --shared"),
      (["scripts/biggan.lua", "--resolution=48", "--iters=1", out], 2, "28x28"),
      (["scripts/biggan.lua", "--onCollapse=never", out], 2, "--onCollapse must be one of \"warn\", \"stop\", \"rollback\""),
      (["scripts/biggan.lua", "--minutes=-1", out], 2, "--minutes must be at least 0"),
      (["scripts/pggan.lua", "--loss=hinge", out], 2, "--loss must be one of \"wgangp\", \"lsgan\""),
      (["scripts/dcgan.lua", "--out=\(used.path)"], 2, "already holds a run: continue it with --resume="),
      (["scripts/pggan.lua", "--batchSize=6", "--mbstdGroup=4", out], 2, "divisible by --mbstdGroup"),
      (["scripts/dcgan.lua", "--lr", out], 2, "--lr"),
      (["scripts/sample.lua"], 2, "--ckpt is required"),
      (["scripts/eval.lua", "--ckpt=\(tmp.path)/nothing"], 2, "no run or checkpoint folder"),
    ]
    for (args, status, message) in cases {
      let r = try Luagan.run(args)
      XCTAssertEqual(r.status, status, "\(args): \(r.stderr)")
      XCTAssertTrue(r.stderr.contains(message), "\(args): expected '\(message)' in:\n\(r.stderr)")
      XCTAssertFalse(r.stderr.contains("Fatal error"), r.stderr)
    }
    let help = try run(["scripts/biggan.lua", "--help"])
    for option in ["--ch", "--GOrthoBeta", "--numDSteps", "--emaStart", "--resume", "--config"] {
      XCTAssertTrue(help.stdout.contains(option), "--help lacks \(option)")
    }
  }

  /// A D killed by a huge learning rate (its ReLUs die within ~25 steps, on any BLAS core and
  /// seed tried): the collapse watch stops the run with status 3 and says why, on the console
  /// and in the log; asked to roll back with no periodic checkpoint yet, it goes back to the run's
  /// start (iter-0000000) with a fresh seed each time, and stops once --collapseRetries are spent.
  func testADyingDStopsTheRun() throws {
    let dying = ["scripts/biggan.lua", "--ch=2", "--dimZ=16", "--sharedDim=8", "--batchSize=8", "--iters=200", "--evalEvery=0",
                 "--svEvery=0", "--numDSteps=1", "--DLr=2", "--DBetas={0.9,0.999}", "--collapsePatience=20", "--quiet"]
    let a = tmp.appendingPathComponent("dying-stop"), b = tmp.appendingPathComponent("dying-rollback")
    let stop = try Luagan.run(dying + ["--onCollapse=stop", "--out=\(a.path)"])
    XCTAssertEqual(stop.status, 3, stop.stderr)
    XCTAssertTrue(stop.stderr.contains("training collapsed: D is dead"), stop.stderr)
    let log = try String(contentsOfFile: a.appendingPathComponent("log.jsonl").path, encoding: .utf8)
    XCTAssertTrue(log.contains("\"collapse\":\"D is dead"), log)
    let rollback = try Luagan.run(dying + ["--onCollapse=rollback", "--saveEvery=1000", "--out=\(b.path)"])
    XCTAssertEqual(rollback.status, 3, rollback.stderr)
    XCTAssertTrue(rollback.stdout.contains("rolled back to iter-0000000, continuing with seed 1001"), rollback.stdout)
    XCTAssertTrue(rollback.stdout.contains("3 rollback(s) already (--collapseRetries=3)"), rollback.stdout)
    // The spectra watch follows G's first layer (the linear from z, not the shared embedding
    // that comes first among G's parameters); a growth budget of 1 makes any rise a collapse.
    let c = tmp.appendingPathComponent("sigma")
    let sigma = try Luagan.run(["scripts/biggan.lua"] + Self.tinyBigGAN + ["--iters=20", "--svEvery=1", "--collapseGrowth=1",
                                                                          "--onCollapse=stop", "--out=\(c.path)"])
    XCTAssertEqual(sigma.status, 3, sigma.stderr)
    XCTAssertTrue(sigma.stderr.contains("G's first layer (linear.weight_orig): sigma_0 exploded"), sigma.stderr)
  }

  func testConfigFileSetsOptions() throws {
    let config = tmp.appendingPathComponent("tiny.lua")
    try "return { ch = 2, dimZ = 16, sharedDim = 8, batchSize = 8, iters = 1, sampleEvery = 1, saveEvery = 1, evalEvery = 0, svEvery = 0 }"
      .write(to: config, atomically: true, encoding: .utf8)
    let a = tmp.appendingPathComponent("cfg")
    let r = try run(["scripts/biggan.lua", "--config=\(config.path)", "--out=\(a.path)"])
    XCTAssertTrue(r.stdout.contains("ch = 2"), "the effective options are printed:\n\(r.stdout)")
    let saved = try String(contentsOfFile: a.appendingPathComponent("options.txt").path, encoding: .utf8)
    XCTAssertTrue(saved.contains("dimZ = 16"), saved)
    // --iters on the command line ends a run whose config sets a time budget (as demo.lua does)
    let timed = tmp.appendingPathComponent("timed.lua")
    try "return { ch = 2, dimZ = 16, sharedDim = 8, batchSize = 8, minutes = 15, iters = 1000000, svEvery = 0, evalEvery = 0 }"
      .write(to: timed, atomically: true, encoding: .utf8)
    let b = tmp.appendingPathComponent("iters")
    _ = try run(["scripts/biggan.lua", "--config=\(timed.path)", "--iters=3", "--out=\(b.path)"])
    XCTAssertEqual(try checkpoints(b), ["iter-0000000", "iter-0000003"])   // the starting point: biggan.lua rolls back on collapse
    let bad = tmp.appendingPathComponent("bad.lua")
    try "return { chh = 2 }".write(to: bad, atomically: true, encoding: .utf8)
    let e = try Luagan.run(["scripts/biggan.lua", "--config=\(bad.path)"])
    XCTAssertEqual(e.status, 2)
    XCTAssertTrue(e.stderr.contains("unknown option 'chh'") && e.stderr.contains("'ch'"), e.stderr)
  }
}
