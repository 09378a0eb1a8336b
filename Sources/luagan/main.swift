// luagan: runs Lua 5.4 scripts over luagan's tensor engine.
//
//   luagan [options] [script [args]]
//
// as the standalone `lua` does: `arg` and `...` hold the script's arguments; -e runs a chunk;
// with no script on a terminal it starts a REPL. Exit status: 0 on success, 1 when the script
// raises an error in its own code (message and traceback on stderr), 2 for usage errors, missing
// scripts, and mistakes that luagan's own scripts and libraries find (one line on stderr).
import Foundation
import Runtime
import Tensor

let usage = """
  usage: luagan [options] [script [args]]
  Runs a Lua 5.4 script with luagan's libraries preloaded: tensor, nn, optim, gan, image, data,
  metrics, ckpt, log, plot, paths, json, dist.
  Options:
    -e chunk        run the string 'chunk'
    -l name         require library 'name' before running the script
    -i              enter interactive mode after running the script or chunks
    -v, --version   print version information and exit
    -h, --help      print this help and exit
    --              stop handling options
    -               run standard input as the script
  Scripts take their own options after the script name (each has --help), e.g.
    luagan scripts/biggan.lua --GOrthoBeta=1e-4

  """

/// One line per shipped script, for --help (the folder's own listing decides which exist).
let scriptSummaries: [String: String] = [
  "biggan.lua": "BigGAN (Brock et al. 2019), class-conditional; make demo's main job",
  "pggan.lua": "progressive growing of GANs (Karras et al. 2018); make demo-pggan's main job",
  "dcgan.lua": "DCGAN (Radford et al. 2016), the smallest GAN here",
  "sample.lua": "sheets, interpolations and a truncation sweep from a checkpoint",
  "eval.lua": "FID, IS, accuracy, SWD, MS-SSIM and coverage of a checkpoint",
  "sweep.lua": "a training script over a grid of options and seeds: a table with mean +- std and plots",
  "train_classifier.lua": "trains the Fashion-MNIST classifier the metrics use",
]

/// The shipped scripts under <root>/scripts, one line each (dev tools left out).
func scriptListing() -> String {
  guard let root = LuaVM.projectRoot,
        let names = try? FileManager.default.contentsOfDirectory(atPath: root + "/scripts") else { return "" }
  let shipped = names.filter { scriptSummaries[$0] != nil }.sorted()
  guard !shipped.isEmpty else { return "" }
  let folder = relativeToWorkingDirectory(root + "/scripts")
  return "Scripts (\(folder)/):\n" + shipped.map { name in
    "  " + name.padding(toLength: 22, withPad: " ", startingAt: 0) + scriptSummaries[name]!
  }.joined(separator: "\n") + "\n"
}

/// `path` relative to the working directory when it lies under it (for messages a user copies).
func relativeToWorkingDirectory(_ path: String) -> String {
  let cwd = (FileManager.default.currentDirectoryPath as NSString).standardizingPath
  let p = (path as NSString).standardizingPath
  return p == cwd ? "." : p.hasPrefix(cwd + "/") ? String(p.dropFirst(cwd.count + 1)) : p
}

/// A script's error: when it was raised in luagan's own code (the shipped scripts and their
/// library under scripts/, or the libraries' embedded Lua), it is a mistake in the options,
/// the data, a checkpoint or a file, so one line names it (exit status 2); raised in the
/// user's own script, it is that code's bug, so the message and the traceback show where
/// (exit status 1). LUAGAN_TRACEBACK=1 always shows the traceback.
func failScript(_ failure: String, script: String?) -> Never {
  if ProcessInfo.processInfo.environment["LUAGAN_TRACEBACK"] == "1" { fail(failure, status: 1) }
  if failure.hasSuffix("interrupted!") || failure.contains("interrupted!\nstack traceback:") {
    // Ctrl-C (a second one in a training run): stopped at once, as a shell reports it
    FileHandle.standardError.write("\nluagan: interrupted\n".data(using: .utf8)!)
    exit(130)
  }
  let parts = failure.components(separatedBy: "\nstack traceback:\n")
  let frames = parts.count > 1 ? parts[1].split(separator: "\n").map { $0.trimmingCharacters(in: .whitespaces) } : []
  let luaFrames = frames.filter { !$0.hasPrefix("[C]") && !$0.hasPrefix("(...") }
  // a Lua runtime error (attempt to index a nil value...) is a bug wherever it is: show where
  let isBug = parts[0].contains(": attempt to ") || parts[0].contains("stack overflow")
  // one line only when every frame is luagan's: a call from the user's code shows where it was
  guard let root = LuaVM.projectRoot, !luaFrames.isEmpty, !isBug, luaFrames.allSatisfy({ isLuaganCode($0, root: root) }) else {
    fail(failure, status: 1)
  }
  // the message without the position of the library line that raised it
  var message = parts[0]
  while let r = message.range(of: #"^[^\s:]+\.lua:\d+: "#, options: .regularExpression),
        isLuaganCode(String(message[r]), root: root) {
    message.removeSubrange(r)
  }
  let name = script.map { ($0 as NSString).lastPathComponent } ?? "luagan"
  DistLib.abortIfDistributed(message, status: 2)
  FileHandle.standardError.write(("\(name): " + message.replacingOccurrences(of: "\n", with: " ") + "\n").data(using: .utf8)!)
  exit(2)
}

/// Whether a traceback frame ("path:line: in ...", "[luagan] name.lua:...") is in luagan's code
/// (its tests and benchmarks are code under development: their errors keep the traceback).
func isLuaganCode(_ frame: String, root: String) -> Bool {
  if frame.hasPrefix("[luagan]") { return true }
  let path = String(frame.prefix { $0 != ":" })
  let absolute = (path.hasPrefix("/") ? path : FileManager.default.currentDirectoryPath + "/" + path) as NSString
  let scripts = (root as NSString).standardizingPath + "/scripts/"
  let file = absolute.standardizingPath
  return file.hasPrefix(scripts) && !file.hasPrefix(scripts + "dev/")   // the development tooling is not the user's
}

func fail(_ message: String, status: Int32) -> Never {
  DistLib.abortIfDistributed(message, status: status)      // under mpirun: end every rank
  FileHandle.standardError.write(("luagan: " + message + "\n").data(using: .utf8)!)
  exit(status)
}

BLASStartup.ensureBestCore()
// Under mpirun, join the run's ranks (the `dist` library); otherwise nothing.
do { try DistLib.start() } catch { fail("\(error)", status: 1) }

var argv = Array(CommandLine.arguments.dropFirst())
var chunks: [(isChunk: Bool, text: String)] = []
var interactive = false
var script: String? = nil
var readStdin = false

parse: while let a = argv.first {
  switch a {
  case "-h", "--help": print(usage + scriptListing(), terminator: ""); exit(0)
  case "-v", "--version":
    print("luagan \(Version.luagan) (Lua 5.4)")
    print(Machine.summary)
    exit(0)
  case "-i": interactive = true; argv.removeFirst()
  case "-e", "-l":
    argv.removeFirst()
    guard let value = argv.first else { fail("'\(a)' needs an argument\n" + usage, status: 2) }
    chunks.append((a == "-e", value))
    argv.removeFirst()
  case "--": argv.removeFirst(); break parse
  case "-": readStdin = true; argv.removeFirst(); break parse
  default:
    if a.hasPrefix("-") && a.count > 1 { fail("unrecognized option '\(a)'\n" + usage, status: 2) }
    break parse
  }
}
if !readStdin, let first = argv.first { script = first; argv.removeFirst() }

if let s = script {
  var isDir: ObjCBool = false
  // `luagan scripts/biggan.lua` from outside the checkout (luagan on PATH): the shipped script
  if !s.hasPrefix("/"), !FileManager.default.fileExists(atPath: s), let root = LuaVM.projectRoot,
     FileManager.default.fileExists(atPath: "\(root)/\(s)") {
    script = "\(root)/\(s)"
  }
}
if let s = script {
  var isDir: ObjCBool = false
  if !FileManager.default.fileExists(atPath: s, isDirectory: &isDir) || isDir.boolValue {
    // `luagan biggan.lua` from the repository: the shipped scripts live in scripts/
    let name = (s as NSString).lastPathComponent
    if let root = LuaVM.projectRoot, !s.contains("/"), FileManager.default.fileExists(atPath: "\(root)/scripts/\(name)") {
      fail("cannot open script '\(s)': no such file; did you mean \(relativeToWorkingDirectory("\(root)/scripts/\(name)"))?",
           status: 2)
    }
    fail("cannot open script '\(s)': no such file" + (isDir.boolValue ? " (it is a folder)" : ""), status: 2)
  }
}

let scriptDir = script.map { URL(fileURLWithPath: $0).deletingLastPathComponent().path }
let vm: LuaVM
do { vm = try LuaVM(scriptDir: scriptDir) } catch { fail("\(error)", status: 1) }

for (isChunk, text) in chunks {
  if let failure = isChunk ? vm.run(text) : vm.require(text) { fail(failure, status: 1) }
}

if let s = script {
  // arg[-1]: this executable, so a script can start luagan again (sweep.lua's cells)
  let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
  if let failure = vm.runScript(s, args: argv, interpreter: exe) { failScript(failure, script: s) }
} else if readStdin || (chunks.isEmpty && !interactive && isatty(0) == 0) {
  let source = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
  let body = source.hasPrefix("#") ? "--" + source : source  // allow a shebang line
  if let failure = vm.run(body, name: "=stdin") { fail(failure, status: 1) }
}

// The REPL: with -i, or with nothing to run on a terminal.
if interactive || (script == nil && chunks.isEmpty && !readStdin && isatty(0) != 0) {
  print("luagan \(Version.luagan) (Lua 5.4): tensor, nn, optim, gan, image, data, metrics, ckpt, log, plot, paths, json, dist "
    + "loaded. Ctrl-D exits.")
  var pending = ""
  while true {
    print(pending.isEmpty ? "> " : ">> ", terminator: "")
    fflush(stdout)
    guard let line = readLine() else { print(""); break }
    let source = pending.isEmpty ? line : pending + "\n" + line
    switch vm.evaluate(source) {
    case .incomplete: pending = source
    case .ok(let out): pending = ""; if !out.isEmpty { print(out) }
    case .error(let msg): pending = ""; FileHandle.standardError.write((msg + "\n").data(using: .utf8)!)
    }
  }
}
vm.close()
DistLib.finish()
exit(0)
