// luagan: runs Lua 5.4 scripts over luagan's tensor engine.
//
//   luagan [options] [script [args]]
//
// as the standalone `lua` does: `arg` and `...` hold the script's arguments; -e runs a chunk;
// with no script on a terminal it starts a REPL. Exit status: 0 on success, 1 when the script
// raises an error (message and traceback on stderr), 2 for usage errors and missing scripts.
import Foundation
import Runtime
import Tensor

let usage = """
  usage: luagan [options] [script [args]]
  Runs a Lua 5.4 script with luagan's libraries preloaded: tensor, nn, optim, gan, image, data,
  metrics.
  Options:
    -e chunk        run the string 'chunk'
    -l name         require library 'name' before running the script
    -i              enter interactive mode after running the script or chunks
    -v, --version   print version information and exit
    -h, --help      print this help and exit
    --              stop handling options
    -               run standard input as the script
  Scripts take their own options after the script name, e.g.
    luagan scripts/biggan.lua --GOrthoBeta=1e-4

  """

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
  case "-h", "--help": print(usage, terminator: ""); exit(0)
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
  if !FileManager.default.fileExists(atPath: s, isDirectory: &isDir) || isDir.boolValue {
    fail("cannot open script '\(s)': no such file", status: 2)
  }
}

let scriptDir = script.map { URL(fileURLWithPath: $0).deletingLastPathComponent().path }
let vm: LuaVM
do { vm = try LuaVM(scriptDir: scriptDir) } catch { fail("\(error)", status: 1) }

for (isChunk, text) in chunks {
  if let failure = isChunk ? vm.run(text) : vm.require(text) { fail(failure, status: 1) }
}

if let s = script {
  if let failure = vm.runScript(s, args: argv) { fail(failure, status: 1) }
} else if readStdin || (chunks.isEmpty && !interactive && isatty(0) == 0) {
  let source = String(decoding: FileHandle.standardInput.readDataToEndOfFile(), as: UTF8.self)
  let body = source.hasPrefix("#") ? "--" + source : source  // allow a shebang line
  if let failure = vm.run(body, name: "=stdin") { fail(failure, status: 1) }
}

// The REPL: with -i, or with nothing to run on a terminal.
if interactive || (script == nil && chunks.isEmpty && !readStdin && isatty(0) != 0) {
  print("luagan \(Version.luagan) (Lua 5.4): tensor, nn, optim, gan, image, data, metrics loaded. Ctrl-D exits.")
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
