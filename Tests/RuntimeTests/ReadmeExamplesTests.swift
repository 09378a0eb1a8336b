import Foundation
import XCTest

/// Every command in the README's shell blocks runs as written, with a tiny budget appended
/// (two iterations; sampling and evaluation with few samples), in a folder that holds what the
/// commands name: a folder of photos with one corrupt file, a stylegan2-ada zip, CIFAR-10's
/// binary batches, the released-weights files (the committed small fixtures) and a local
/// hostfile for mpirun. The README's sampling script is run on the run it trained.
final class ReadmeExamplesTests: XCTestCase {
  /// The README's commands: lines of ```sh blocks starting with luagan, mpirun, printf or the
  /// built binary (continuations joined, comments dropped); make's lines are the other tests.
  static func commands(_ readme: String) -> [String] {
    var out: [String] = [], inShell = false, pending = ""
    for raw in readme.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
      if raw.hasPrefix("```") { inShell = raw == "```sh"; continue }
      guard inShell else { continue }
      var line = withoutComment(raw).trimmingCharacters(in: .whitespaces)
      if line.hasSuffix("\\") { pending += line.dropLast() + " "; continue }
      line = pending + line
      pending = ""
      if ["luagan ", "mpirun ", "printf ", ".build/release/luagan"].contains(where: { line.hasPrefix($0) }) { out.append(line) }
    }
    return out
  }

  /// The line up to a `#` that starts a shell comment (outside quotes, after a space).
  static func withoutComment(_ line: String) -> String {
    var quote: Character? = nil, previous: Character = " "
    for (i, ch) in line.enumerated() {
      if let q = quote { if ch == q { quote = nil } } else if ch == "'" || ch == "\"" { quote = ch } else if ch == "#" && previous == " " {
        return String(line.prefix(i))
      }
      previous = ch
    }
    return line
  }

  /// The tiny budget for a command: training scripts run two more iterations than they start
  /// at, samplers and evaluations draw few samples.
  static func budget(_ command: String) -> String {
    if command.contains("scripts/biggan.lua") || command.contains("scripts/pggan.lua") || command.contains("scripts/dcgan.lua") {
      let iters = command.contains("--resume=") ? 4 : 2
      let small = command.contains("ffhq-1k.zip") ? " --batchSize=8" : ""     // the stand-in zip holds 12 images
      return " --iters=\(iters) --minutes=0 --sampleEvery=1 --saveEvery=1 --evalEvery=0 --svEvery=0 --quiet" + small
    }
    if command.contains("scripts/sweep.lua") {    // one seed, two iterations a cell, no evaluation
      return " --seeds=1 --minutes=0 --iters=2 --evalSamples=0 --set='--ch=2 --sampleEvery=1 --saveEvery=1 --evalEvery=0 --svEvery=0'"
    }
    if command.contains("scripts/sample.lua") { return " --n=0 --batch=8" + (command.contains("--standing") ? " --standing=2" : "") }
    if command.contains("scripts/eval.lua") { return " --n=64" }
    return ""
  }

  func testEveryCommandInTheREADMERuns() throws {
    let readme = try String(contentsOf: Luagan.root.appendingPathComponent("README.md"), encoding: .utf8)
    let commands = Self.commands(readme)
    XCTAssertGreaterThan(commands.count, 25, "the README's commands were not found")
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("luagan-readme-\(UUID().uuidString)")
    let bin = dir.appendingPathComponent("bin")
    try FileManager.default.createDirectory(at: bin, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    try makeWhatTheCommandsName(in: dir)
    try FileManager.default.createSymbolicLink(at: bin.appendingPathComponent("luagan"), withDestinationURL: Luagan.binary)
    let path = bin.path + ":" + (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin")
    for command in commands {
      var line = command.replacingOccurrences(of: ".build/release/luagan", with: "luagan") + Self.budget(command)
      if line.hasPrefix("mpirun ") {    // here: root in a container, 2 cores, one host
        line = "timeout 600 mpirun --oversubscribe --allow-run-as-root " + line.dropFirst("mpirun ".count)
      }
      let r = try Luagan.shell(line, cwd: dir, environment: ["PATH": path, "OMP_NUM_THREADS": "1"])
      XCTAssertEqual(r.status, 0, "README: \(command)\n--- stdout\n\(r.stdout.suffix(1500))\n--- stderr\n\(r.stderr.suffix(1500))")
      if command.hasPrefix("printf") && command.contains("> hosts") {    // the README's hosts are node1 and node2
        try "localhost slots=4\n".write(to: dir.appendingPathComponent("hosts"), atomically: true, encoding: .utf8)
      }
    }
    // The sampling script of "Your own sampling script", on the BigGAN run above.
    guard let start = readme.range(of: "```lua\n-- walk.lua"), let end = readme.range(of: "```", range: start.upperBound..<readme.endIndex)
    else { return XCTFail("the README's walk.lua is gone") }
    try String(readme[readme.index(start.lowerBound, offsetBy: 7)..<end.lowerBound]).write(to: dir.appendingPathComponent("walk.lua"),
                                                                                             atomically: true, encoding: .utf8)
    let walk = try Luagan.run(["walk.lua", "runs/biggan", "6"], cwd: dir)
    XCTAssertEqual(walk.status, 0, walk.stderr)
    XCTAssertTrue(walk.stdout.contains("biggan at iteration 4, Sandal: wrote walk.png"), walk.stdout)
    XCTAssertTrue(FileManager.default.fileExists(atPath: dir.appendingPathComponent("walk.png").path))
  }

  /// photos/ (two classes of PNGs and one corrupt JPEG), ffhq-1k.zip, cifar-10-batches-bin/,
  /// G_ema.pth and pytorch_model.bin (the committed fixtures), and script.lua.
  func makeWhatTheCommandsName(in dir: URL) throws {
    let photos = """
      for _, class in ipairs { "cats", "dogs" } do
        paths.mkdir("photos/" .. class)
        for i = 1, 12 do image.save(("photos/%s/%02d.png"):format(class, i), tensor.rand(3, 40, 36)) end
      end
      local f = assert(io.open("photos/dogs/broken.jpg", "wb")); f:write("\\255\\216 not a JPEG"); f:close()
      f = assert(io.open("rows.lua", "w"))      -- the sweep's rows, as the README's comment shows them
      f:write('return { { name = "baseline", shared = false, hier = false }, { name = "+ shared", hier = false } }'); f:close()
      """
    let r = try Luagan.run(["-e", photos], cwd: dir)
    XCTAssertEqual(r.status, 0, r.stderr)
    let fixtures = Luagan.root.appendingPathComponent("Tests/Fixtures")
    for (from, to) in [("files/dataset.zip", "ffhq-1k.zip"), ("pth/biggan_pytorch_G.pth", "G_ema.pth"),
                       ("pth/biggan_deep_256.bin", "pytorch_model.bin")] {
      try FileManager.default.copyItem(at: fixtures.appendingPathComponent(from), to: dir.appendingPathComponent(to))
    }
    // CIFAR-10's binary format: records of a label byte and 3,072 pixel bytes (R, G, B planes)
    let cifar = dir.appendingPathComponent("cifar-10-batches-bin")
    try FileManager.default.createDirectory(at: cifar, withIntermediateDirectories: true)
    for name in (1...5).map({ "data_batch_\($0).bin" }) + ["test_batch.bin"] {
      var bytes = [UInt8]()
      for i in 0..<20 { bytes.append(UInt8(i % 10)); bytes += (0..<3072).map { UInt8(truncatingIfNeeded: $0 &* 7 &+ i) } }
      try Data(bytes).write(to: cifar.appendingPathComponent(name))
    }
    try "print('script.lua got', ...)\n".write(to: dir.appendingPathComponent("script.lua"), atomically: true, encoding: .utf8)
  }
}
