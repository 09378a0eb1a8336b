import Foundation
import XCTest

/// The luagan command: arguments, exit statuses, -e, stdin, the REPL, package.path.
final class CommandLineTests: FolderTestCase {
  override var folderPrefix: String { "cli" }

  func write(_ name: String, _ text: String) throws -> URL {
    let u = tmp.appendingPathComponent(name)
    try text.write(to: u, atomically: true, encoding: .utf8)
    return u
  }

  func testChunkVersionAndHelp() throws {
    let r = try Luagan.run(["-e", "print(tensor.randn(2,3):shape()[2], 1 + 1)"])
    XCTAssertEqual(r.status, 0, r.stderr)
    XCTAssertEqual(r.stdout, "3\t2\n")
    let v = try Luagan.run(["--version"])
    XCTAssertEqual(v.status, 0)
    XCTAssertTrue(v.stdout.hasPrefix("luagan "), v.stdout)
    let h = try Luagan.run(["--help"])
    XCTAssertTrue(h.stdout.contains("usage: luagan"), h.stdout)
    let bad = try Luagan.run(["--frobnicate"])
    XCTAssertEqual(bad.status, 2)
    XCTAssertTrue(bad.stderr.contains("unrecognized option"), bad.stderr)
  }

  func testArgTableAndVarargs() throws {
    let s = try write("args.lua", "print(arg[0]:match('args.lua$') ~= nil, arg[1], arg[2], select('#', ...), ...)")
    let r = try Luagan.run([s.path, "a b", "--key=value"])
    XCTAssertEqual(r.status, 0, r.stderr)
    XCTAssertEqual(r.stdout, "true\ta b\t--key=value\t2\ta b\t--key=value\n")
    XCTAssertEqual(try Luagan.run(["-e", "print(arg == nil)"]).stdout, "true\n")
  }

  func testErrorsAndMissingScripts() throws {
    let s = try write("boom.lua", "local function f() error('boom') end\nf()\n")
    let r = try Luagan.run([s.path])
    XCTAssertEqual(r.status, 1)
    XCTAssertTrue(r.stderr.contains("boom.lua:1: boom"), r.stderr)
    XCTAssertTrue(r.stderr.contains("stack traceback:"), r.stderr)
    let t = try write("tensorerr.lua", "local x = tensor.zeros(2) + tensor.zeros(3)\n")
    let r2 = try Luagan.run([t.path])
    XCTAssertEqual(r2.status, 1)
    XCTAssertTrue(r2.stderr.contains("tensorerr.lua:1: add: shapes {2} and {3} cannot be broadcast"), r2.stderr)
    let m = try Luagan.run(["/no/such/script.lua"])
    XCTAssertEqual(m.status, 2)
    XCTAssertTrue(m.stderr.contains("cannot open script '/no/such/script.lua'"), m.stderr)
    let syntax = try write("syntax.lua", "x = = 1\n")
    XCTAssertEqual(try Luagan.run([syntax.path]).status, 1)
  }

  func testLibrariesArePreloadedAndRequirable() throws {
    let r = try Luagan.run(["-e", """
      for _, n in ipairs{'tensor','nn','optim','gan','image','data','metrics'} do
        assert(type(_G[n]) == 'table' and require(n) == _G[n], n)
      end
      print('ok')
      """])
    XCTAssertEqual(r.stdout, "ok\n", r.stderr)
  }

  func testPackagePathHasScriptFolderAndScriptsLib() throws {
    _ = try write("helper.lua", "return { answer = 42 }")
    let main = try write("main.lua", "print(require('helper').answer, type(require('options').parse), pcall(require, 'testing'))")
    let r = try Luagan.run([main.path], cwd: FileManager.default.temporaryDirectory)
    XCTAssertEqual(r.status, 0, r.stderr)
    // the test support in scripts/dev/lib is not on a user script's path
    XCTAssertTrue(r.stdout.hasPrefix("42\tfunction\tfalse\t"), r.stdout)
  }

  func testStdinAndRepl() throws {
    let piped = try Luagan.run(["-"], stdin: "print(tensor.ones(3):sum():item())\n")
    XCTAssertEqual(piped.stdout, "3.0\n", piped.stderr)
    let implicit = try Luagan.run([], stdin: "print('from stdin')\n")
    XCTAssertEqual(implicit.stdout, "from stdin\n", implicit.stderr)
    let repl = try Luagan.run(["-i"], stdin: "1 + 2\nx = tensor.ones(2)\nfor i = 1, 2 do\nx = x * 2\nend\nx:sum():item()\nerror('oops')\n2 * 3\n")
    XCTAssertEqual(repl.status, 0)
    XCTAssertTrue(repl.stdout.contains("3\n"), repl.stdout)
    XCTAssertTrue(repl.stdout.contains("8.0\n"), "multi-line input continues: " + repl.stdout)
    XCTAssertTrue(repl.stderr.contains("oops"), repl.stderr)
    XCTAssertTrue(repl.stdout.contains("6\n"), "the REPL goes on after an error: " + repl.stdout)
  }

  /// The style check (make lint) fails on what it promises to catch: a long line, a long
  /// function, a tab, trailing spaces, a grown allowance, and an allowance nothing needs.
  func testStyleCheckCanFail() throws {
    let script = Luagan.root.appendingPathComponent("scripts/dev/check_style.lua").path
    for dir in ["Sources/X", "Tests", "scripts/dev/lib"] {
      try FileManager.default.createDirectory(at: tmp.appendingPathComponent(dir), withIntermediateDirectories: true)
    }
    let body = (1...120).map { "  let v\($0) = \($0)" }.joined(separator: "\n")
    _ = try write("Sources/X/a.swift", "func short() {\n  let x = 1\n}\nfunc long() {\n\(body)\n}\n")
    _ = try write("scripts/dev/lib/style_allowances.lua", "return { functions = {}, longLines = {} }")
    let long = try Luagan.run([script], cwd: tmp)
    XCTAssertEqual(long.status, 1)
    XCTAssertTrue(long.stderr.contains("Sources/X/a.swift:4: long is 122 lines (budget 100)"), long.stderr)
    _ = try write("scripts/dev/lib/style_allowances.lua", #"return { functions = { ["Sources/X/a.swift:long"] = 122 }, longLines = {} }"#)
    XCTAssertEqual(try Luagan.run([script], cwd: tmp).status, 0, "an allowance at the current size passes")
    _ = try write("scripts/dev/lib/style_allowances.lua", #"return { functions = { ["Sources/X/a.swift:long"] = 121 }, longLines = {} }"#)
    XCTAssertTrue(try Luagan.run([script], cwd: tmp).stderr.contains("its allowance is 121 (it may only shrink)"))
    _ = try write("Sources/X/a.swift", "let s = \"\(String(repeating: "x", count: 150))\"\n\tlet t = 1\nlet u = 2 \n")
    let lines = try Luagan.run([script], cwd: tmp)
    for message in ["1 lines over 140 columns", "a.swift:2: a tab", "a.swift:3: trailing whitespace", "not found: remove it"] {
      XCTAssertTrue(lines.stderr.contains(message), "expected '\(message)' in:\n\(lines.stderr)")
    }
  }

  /// BigGAN's training step is written once (scripts/lib/recipes/biggan.lua): one edit there
  /// reaches the training script, make bench's workload and the float64 comparison with
  /// PyTorch. The edit (an error where G's orthogonal penalty is applied) is made in a copy
  /// of scripts/ that LUAGAN_HOME points at.
  func testOneRecipeEditReachesScriptBenchAndEquivalence() throws {
    let home = tmp.appendingPathComponent("home")
    try FileManager.default.createDirectory(at: home, withIntermediateDirectories: true)
    try FileManager.default.copyItem(at: Luagan.root.appendingPathComponent("scripts"), to: home.appendingPathComponent("scripts"))
    let recipe = home.appendingPathComponent("scripts/lib/recipes/biggan.lua")
    let text = try String(contentsOf: recipe, encoding: .utf8)
    let penalty = "  if opt.GOrthoBeta > 0 then gan.addOrthoGrad(G"
    XCTAssertTrue(text.contains(penalty), "the recipe no longer applies G's orthogonal penalty as this test expects")
    try text.replacingOccurrences(of: penalty, with: "  error('the edited recipe', 0)\n" + penalty)
      .write(to: recipe, atomically: true, encoding: .utf8)
    let scripts = home.appendingPathComponent("scripts").path
    for args in [["\(scripts)/biggan.lua", "--iters=1", "--out=run"],
                 ["\(scripts)/dev/bench/gan_workloads.lua", "biggan32", "--steps=1", "--warmup=0"],
                 ["\(scripts)/dev/bench/demo_equivalence.lua", "--iters=1", "--out=equivalence"]] {
      let r = try Luagan.run(args, cwd: tmp, environment: ["LUAGAN_HOME": home.path])
      XCTAssertNotEqual(r.status, 0, args[0])
      XCTAssertTrue(r.stderr.contains("the edited recipe"), "\(args[0]) does not run the recipe:\n\(r.stderr)")
    }
  }

  /// A Lua suite whose test list is empty checked nothing: testing.finish fails it (exit 1);
  /// one passing test passes.
  func testASuiteThatRanNoTestFails() throws {
    // suites outside scripts/dev name the test support's folder themselves
    let prologue = "package.path = '\(Luagan.root.path)/scripts/dev/lib/?.lua;' .. package.path; "
    let empty = tmp.appendingPathComponent("empty_suite.lua")
    try (prologue + #"local T = require("testing"); T.finish("empty")"#).write(to: empty, atomically: true, encoding: .utf8)
    let r = try Luagan.run([empty.path])
    XCTAssertEqual(r.status, 1, r.stdout + r.stderr)
    XCTAssertTrue(r.stderr.contains("empty: no test ran"), r.stderr)
    let one = tmp.appendingPathComponent("one_suite.lua")
    try (prologue + #"local T = require("testing"); T.test("x", function() T.check(true) end); T.finish("one")"#)
      .write(to: one, atomically: true, encoding: .utf8)
    XCTAssertEqual(try Luagan.run([one.path]).status, 0)
  }

  /// make lint's formatter check fails on a rule of .swift-format (here import order and a
  /// block comment) and passes the same code written by the rules.
  func testFormatterRulesCanFail() throws {
    let script = Luagan.root.appendingPathComponent("scripts/dev/format_lint.sh").path
    let dir = tmp.appendingPathComponent("fmt")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    func check(_ source: String, formatter: String? = nil) throws -> (Int32, String) {
      try source.write(to: dir.appendingPathComponent("a.swift"), atomically: true, encoding: .utf8)
      let p = Process()
      p.executableURL = URL(fileURLWithPath: "/bin/bash")
      p.arguments = [script, dir.path]
      if let formatter { p.environment = ProcessInfo.processInfo.environment.merging(["SWIFT_FORMAT": formatter]) { $1 } }
      let out = Pipe()
      p.standardOutput = out
      p.standardError = out
      try p.run()
      let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
      p.waitUntilExit()
      return (p.terminationStatus, text)
    }
    // a formatter that cannot run is a failure, not a pass: the rules went unchecked
    let (missing, missingText) = try check("import Foundation\n", formatter: "no-such-swift-format")
    XCTAssertEqual(missing, 1, missingText)
    XCTAssertTrue(missingText.contains("were not checked, so this check fails"), missingText)
    let (bad, badText) = try check("import Tensor\nimport Foundation\n\nlet x = 1 /* one */\n")
    XCTAssertEqual(bad, 1, badText)
    XCTAssertTrue(badText.contains("[OrderedImports]") && badText.contains("[NoBlockComments]"), badText)
    let (good, goodText) = try check("import Foundation\nimport Tensor\n\nlet x = 1  // one\n")
    XCTAssertEqual(good, 0, goodText)
  }
}
