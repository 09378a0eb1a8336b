import Foundation
import XCTest

/// Runs the built `luagan` executable as a subprocess, so a crash in one script is isolated
/// and shows up as a failure with its output instead of taking the test runner down.
enum Luagan {
  /// The project root (this file is Tests/RuntimeTests/Support.swift).
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

  /// The luagan binary next to the test bundle (swift build puts both in the same folder).
  static var binary: URL {
    let here = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
    var dir = here.deletingLastPathComponent()
    if dir.lastPathComponent.hasSuffix(".xctest") { dir = dir.deletingLastPathComponent() }
    for candidate in [dir, dir.deletingLastPathComponent(), root.appendingPathComponent(".build/release")] {
      let b = candidate.appendingPathComponent("luagan")
      if FileManager.default.isExecutableFile(atPath: b.path) { return b }
    }
    return dir.appendingPathComponent("luagan")
  }

  struct Result { let status: Int32; let stdout: String; let stderr: String }

  /// A Lua string literal for `s` (for chunks passed with -e).
  static func quote(_ s: String) -> String {
    "\"" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "\"", with: "\\\"") + "\""
  }

  /// `launcher` runs luagan through another program (e.g. timeout and mpirun), found on PATH.
  static func run(_ args: [String], stdin: String? = nil, cwd: URL? = nil, environment: [String: String] = [:],
                  launcher: [String] = []) throws -> Result {
    guard FileManager.default.isExecutableFile(atPath: binary.path) else {
      throw NSError(domain: "luagan", code: 1, userInfo: [NSLocalizedDescriptionKey: "no luagan executable at \(binary.path): run `swift build -c release` first"])
    }
    if launcher.isEmpty { return try process(binary, args, stdin: stdin, cwd: cwd, environment: environment) }
    return try process(URL(fileURLWithPath: "/usr/bin/env"), launcher + [binary.path] + args, stdin: stdin, cwd: cwd,
                       environment: environment)
  }

  /// A shell command line (sh -c), e.g. one of the README's.
  static func shell(_ line: String, cwd: URL, environment: [String: String] = [:]) throws -> Result {
    try process(URL(fileURLWithPath: "/bin/sh"), ["-c", line], stdin: "", cwd: cwd, environment: environment)
  }

  static func process(_ executable: URL, _ args: [String], stdin: String?, cwd: URL?, environment: [String: String]) throws -> Result {
    let p = Process()
    p.executableURL = executable
    p.arguments = args
    p.currentDirectoryURL = cwd ?? root
    var env = ProcessInfo.processInfo.environment
    for (k, v) in environment { env[k] = v.isEmpty ? nil : v }  // "" removes a variable
    p.environment = env
    let out = Pipe(), err = Pipe(), inp = Pipe()
    p.standardOutput = out
    p.standardError = err
    p.standardInput = inp
    try p.run()
    if let stdin { inp.fileHandleForWriting.write(stdin.data(using: .utf8)!) }
    try inp.fileHandleForWriting.close()
    // Read both pipes before waiting, so a chatty child never blocks on a full pipe.
    final class Box: @unchecked Sendable { var data = Data() }   // written by one thread, read after wait()
    let outBox = Box()
    let group = DispatchGroup()
    group.enter()
    DispatchQueue.global().async { outBox.data = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    group.wait()
    let outData = outBox.data
    p.waitUntilExit()
    return Result(status: p.terminationStatus, stdout: String(decoding: outData, as: UTF8.self), stderr: String(decoding: errData, as: UTF8.self))
  }

  /// luagan under `mpirun -n ranks` (Open MPI, as root in CI containers, more ranks than cores
  /// allowed), ended after `seconds` so a hang fails the test instead of stalling it.
  static func mpirun(_ ranks: Int, _ args: [String], seconds: Int = 600) throws -> Result {
    try run(args, launcher: ["timeout", String(seconds), "mpirun", "--oversubscribe", "--allow-run-as-root", "-n", String(ranks)])
  }

  /// Runs scripts/dev/tests/<name>.lua and fails the calling test unless it exits 0.
  static func runTestScript(_ name: String, environment: [String: String] = [:], file: StaticString = #filePath,
                            line: UInt = #line) throws {
    let r = try run(["scripts/dev/tests/\(name).lua"], environment: environment)
    print(r.stdout, terminator: "")
    if r.status != 0 {
      XCTFail("scripts/dev/tests/\(name).lua exited with \(r.status)\n--- stdout\n\(r.stdout)\n--- stderr\n\(r.stderr)",
              file: file, line: line)
    }
  }
}

/// A test case with a fresh temporary folder, `tmp` (luagan-<folderPrefix>-<uuid>), for each test,
/// removed after it.
class FolderTestCase: XCTestCase {
  var tmp: URL!
  var folderPrefix: String { "test" }

  override func setUpWithError() throws {
    tmp = FileManager.default.temporaryDirectory.appendingPathComponent("luagan-\(folderPrefix)-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: tmp, withIntermediateDirectories: true)
  }
  override func tearDownWithError() throws { try? FileManager.default.removeItem(at: tmp) }
}
