import Foundation
import XCTest

/// A crash or kill during a save never damages the last good checkpoint: a luagan process
/// saving large checkpoints in a loop is killed with SIGKILL at several moments, and each time
/// a fresh process loads a complete checkpoint whose contents agree with its counter.
final class CheckpointKillTests: XCTestCase {
  func testKillDuringSaveKeepsThePreviousCheckpoint() throws {
    let tmp = FileManager.default.temporaryDirectory.appendingPathComponent("luagan-kill-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: tmp) }
    let saver = tmp.appendingPathComponent("saver.lua")
    try """
      local dir = arg[1]
      ckpt.save(dir, { i = 1, w = tensor.full({ 256, 256 }, 1) }, { name = "ckpt-00001" })
      print("saved 1"); io.stdout:flush()
      for k = 2, 100000 do
        local w = tensor.full({ 2048, 2048 }, k)   -- 16 MiB per tensor, four of them: slow enough to be caught
        print("saving " .. k); io.stdout:flush()
        ckpt.save(dir, { i = k, w = w, a = w + 0, b = w + 0, c = w + 0 }, { name = ("ckpt-%05d"):format(k), keep = 2 })
      end
      """.write(to: saver, atomically: true, encoding: .utf8)
    let checker = tmp.appendingPathComponent("check.lua")
    try """
      local s = ckpt.load(arg[1])
      for _, key in ipairs { "w", "a", "b", "c" } do
        local t = s[key]
        if t then assert(t:min():item() == s.i and t:max():item() == s.i, key .. " disagrees with the counter") end
      end
      print("loaded " .. s.i)
      """.write(to: checker, atomically: true, encoding: .utf8)

    var loaded: [Int] = []
    for (round, delayMs) in [0, 15, 40, 90, 180].enumerated() {
      let dir = tmp.appendingPathComponent("run\(round)").path
      let p = Process()
      p.executableURL = Luagan.binary
      p.arguments = [saver.path, dir]
      let out = Pipe()
      p.standardOutput = out
      p.standardError = FileHandle.nullDevice
      try p.run()
      // Wait until the second save has started, then kill after the delay.
      var text = ""
      let deadline = Date().addingTimeInterval(60)
      while !text.contains("saving 3"), Date() < deadline {
        let chunk = out.fileHandleForReading.availableData
        if chunk.isEmpty { break }
        text += String(decoding: chunk, as: UTF8.self)
      }
      XCTAssertTrue(text.contains("saving"), "the saver never started saving: \(text)")
      usleep(useconds_t(delayMs * 1000))
      kill(p.processIdentifier, SIGKILL)
      p.waitUntilExit()
      let r = try Luagan.run([checker.path, dir])
      XCTAssertEqual(r.status, 0, "after a kill \(delayMs) ms into a save, the checkpoint does not load:\n\(r.stderr)")
      if let n = Int(r.stdout.replacingOccurrences(of: "loaded ", with: "").trimmingCharacters(in: .whitespacesAndNewlines)) { loaded.append(n) }
    }
    print("kill during save: loaded checkpoints \(loaded) after kills at 0, 15, 40, 90 and 180 ms")
    XCTAssertEqual(loaded.count, 5)
  }
}
