// luagan-fuzz: runs scripts/fuzz/calls.lua and scripts/fuzz/files.lua in child processes and
// watches them from outside, where a crash cannot hide: a signal, a hang (no call started for
// --timeout seconds), runaway memory (resident set above --max-rss) or an exit without the
// fuzzer's "done" line is a failure, logged with the seed, the call and a command to replay it.
//
//   luagan-fuzz --calls 1000000 --files 10000        (make fuzz)
//   luagan-fuzz --calls 60000 --files 1500            (the slice CI runs)
import Foundation

#if canImport(Glibc)
import Glibc
#endif

struct Config {
  var calls = 20_000
  var files = 0
  var callsPerChild = 20_000
  var filesPerChild = 500
  var seed = 1
  var jobs = 2
  var timeout = 30.0
  var maxRSSMB = 3_000
  var luagan = ""
  var scripts = ""
  var log = "fuzz-failures.log"
  var verbose = false
}

func usage() -> Never {
  print("""
    usage: luagan-fuzz [--calls N] [--files N] [--per-child N] [--files-per-child N] [--seed S] [--jobs J]
                       [--timeout SECONDS] [--max-rss MB] [--luagan PATH] [--scripts DIR] [--log FILE] [--verbose]
    """)
  exit(2)
}

func parse() -> Config {
  var c = Config()
  var args = Array(CommandLine.arguments.dropFirst())
  func value() -> String {
    guard !args.isEmpty else { usage() }
    return args.removeFirst()
  }
  func int() -> Int { guard let v = Int(value()), v >= 0 else { usage() }; return v }
  while let a = args.first {
    args.removeFirst()
    switch a {
    case "--calls": c.calls = int()
    case "--files": c.files = int()
    case "--per-child": c.callsPerChild = max(1, int())
    case "--files-per-child": c.filesPerChild = max(1, int())
    case "--seed": c.seed = int()
    case "--jobs": c.jobs = max(1, int())
    case "--timeout": guard let t = Double(value()), t > 0 else { usage() }; c.timeout = t
    case "--max-rss": c.maxRSSMB = int()
    case "--luagan": c.luagan = value()
    case "--scripts": c.scripts = value()
    case "--log": c.log = value()
    case "--verbose": c.verbose = true
    default: usage()
    }
  }
  let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
  if c.luagan.isEmpty { c.luagan = exe.deletingLastPathComponent().appendingPathComponent("luagan").path }
  if c.scripts.isEmpty {
    var dir = exe.deletingLastPathComponent()
    for _ in 0..<6 {
      if FileManager.default.fileExists(atPath: dir.appendingPathComponent("scripts/fuzz/calls.lua").path) { break }
      dir = dir.deletingLastPathComponent()
    }
    c.scripts = dir.appendingPathComponent("scripts/fuzz").path
  }
  c.luagan = URL(fileURLWithPath: c.luagan).standardizedFileURL.path
  c.scripts = URL(fileURLWithPath: c.scripts).standardizedFileURL.path
  return c
}

/// One child's job: a script, a seed and how many cases it runs.
struct Job { let script: String; let flag: String; let seed: Int; let count: Int }

/// glibc's posix_spawn_file_actions_addchdir_np, which Swift's Glibc module does not export.
typealias AddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
let addChdir: AddChdir = {
  guard let sym = dlsym(nil, "posix_spawn_file_actions_addchdir_np") else { fatalError("luagan-fuzz needs glibc 2.29 or later") }
  return unsafeBitCast(sym, to: AddChdir.self)
}()

/// What became of a child.
struct Outcome {
  var cases = 0            // cases started (the last one may be the culprit)
  var finished = false     // the "D" line arrived
  var failure: String?     // nil when the child ran to the end and exited 0
  var lastCase = ""
  var seconds = 0.0
  var maxRSS = 0           // bytes
}

/// Resident set of a process, from /proc/<pid>/statm.
func residentBytes(_ pid: pid_t) -> Int {
  guard let s = try? String(contentsOfFile: "/proc/\(pid)/statm", encoding: .utf8) else { return 0 }
  let parts = s.split(separator: " ")
  guard parts.count > 1, let pages = Int(parts[1]) else { return 0 }
  return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}

func now() -> Double {
  var ts = timespec()
  clock_gettime(CLOCK_MONOTONIC, &ts)
  return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
}

func signalName(_ s: Int32) -> String {
  switch s {
  case SIGSEGV: return "SIGSEGV"
  case SIGABRT: return "SIGABRT"
  case SIGBUS: return "SIGBUS"
  case SIGFPE: return "SIGFPE"
  case SIGILL: return "SIGILL (a Swift trap)"
  case SIGTRAP: return "SIGTRAP (a Swift trap)"
  case SIGKILL: return "SIGKILL"
  default: return "signal \(s)"
  }
}

/// The lines of a child's stderr that say what went wrong: Swift's fatal error and the top of
/// the crashed thread's backtrace when there is one, else the last lines.
func crashSummary(_ text: String) -> [String] {
  let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
  var out = lines.filter { $0.contains("Fatal error") || $0.contains("Program crashed") || $0.hasPrefix("luagan:") }
  if let t = lines.firstIndex(where: { $0.hasPrefix("Thread") && $0.contains("crashed") }) {
    out += lines[t..<Swift.min(lines.count, t + 14)].filter { !$0.isEmpty }
  }
  return out.isEmpty ? Array(lines.suffix(12)) : out
}

/// Runs one child under watch and reports what became of it.
func run(_ job: Job, _ config: Config) -> Outcome {
  var out = Outcome()
  var template = Array("/tmp/luagan-fuzz-XXXXXX".utf8CString)
  guard let dirPtr = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
    out.failure = "cannot make a work folder"
    return out
  }
  let workDir = String(cString: dirPtr)
  defer { try? FileManager.default.removeItem(atPath: workDir) }

  var tracePipe: [Int32] = [0, 0], errPipe: [Int32] = [0, 0]
  guard pipe(&tracePipe) == 0, pipe(&errPipe) == 0 else { out.failure = "pipe failed"; return out }
  var actions = posix_spawn_file_actions_t()
  posix_spawn_file_actions_init(&actions)
  defer { posix_spawn_file_actions_destroy(&actions) }
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
  posix_spawn_file_actions_adddup2(&actions, errPipe[1], 2)
  posix_spawn_file_actions_adddup2(&actions, tracePipe[1], 3)
  for fd in [tracePipe[0], tracePipe[1], errPipe[0], errPipe[1]] where fd > 3 { posix_spawn_file_actions_addclose(&actions, fd) }
  guard addChdir(&actions, workDir) == 0 else { out.failure = "cannot set the child's folder"; return out }

  let argv = [config.luagan, "\(config.scripts)/\(job.script)", "--seed=\(job.seed)", "--\(job.flag)=\(job.count)", "--trace=/dev/fd/3"]
  var cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
  defer { for p in cargs { free(p) } }
  var env = ProcessInfo.processInfo.environment
  env["LUAGAN_FUZZ"] = "1"
  env["LUAGAN_LUA_HEAP_LIMIT"] = "1G"  // a script that fills the heap gets Lua's error, well below --max-rss
  var cenv: [UnsafeMutablePointer<CChar>?] = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
  defer { for p in cenv { free(p) } }

  var pid: pid_t = 0
  let started = now()
  let rc = posix_spawn(&pid, config.luagan, &actions, nil, &cargs, &cenv)
  close(tracePipe[1]); close(errPipe[1])
  defer { close(tracePipe[0]); close(errPipe[0]) }
  guard rc == 0 else { out.failure = "cannot start \(config.luagan): \(String(cString: strerror(rc)))"; return out }

  var traceBuffer = [UInt8](), stderrTail = [UInt8]()
  var lastProgress = now(), lastRSSCheck = 0.0
  var status: Int32 = 0
  var exited = false, killedFor: String? = nil
  var chunk = [UInt8](repeating: 0, count: 65536)
  var open = [tracePipe[0], errPipe[0]]

  func consumeTrace() {
    while let nl = traceBuffer.firstIndex(of: 10) {
      let line = String(decoding: traceBuffer[..<nl], as: UTF8.self)
      traceBuffer.removeSubrange(...nl)
      if line.hasPrefix("D ") { out.finished = true } else {
        out.cases += 1
        out.lastCase = line
      }
      lastProgress = now()
    }
  }

  while !exited {
    var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
    _ = poll(&fds, nfds_t(fds.count), 100)
    for f in fds where f.revents != 0 {
      let n = read(f.fd, &chunk, chunk.count)
      if n <= 0 { open.removeAll { $0 == f.fd }; continue }
      if f.fd == tracePipe[0] {
        traceBuffer.append(contentsOf: chunk[0..<n])
        consumeTrace()
      } else {
        stderrTail.append(contentsOf: chunk[0..<n])
        if stderrTail.count > 1 << 20 { stderrTail.removeFirst(stderrTail.count - (1 << 20)) }
      }
    }
    let t = now()
    if t - lastRSSCheck > 0.2 {
      lastRSSCheck = t
      let rss = residentBytes(pid)
      out.maxRSS = max(out.maxRSS, rss)
      if killedFor == nil && rss > config.maxRSSMB << 20 {
        killedFor = "runaway memory: resident \(rss >> 20) MB > \(config.maxRSSMB) MB"
        kill(pid, SIGKILL)
      }
    }
    if killedFor == nil && t - lastProgress > config.timeout {
      killedFor = String(format: "hang: no progress for %.0f s", t - lastProgress)
      kill(pid, SIGKILL)
    }
    let w = waitpid(pid, &status, WNOHANG)
    if w == pid { exited = true }
  }
  // Drain what is left in the pipes.
  for fd in open {
    while true {
      let n = read(fd, &chunk, chunk.count)
      if n <= 0 { break }
      if fd == tracePipe[0] { traceBuffer.append(contentsOf: chunk[0..<n]); consumeTrace() } else { stderrTail.append(contentsOf: chunk[0..<n]) }
    }
  }
  out.seconds = now() - started
  let termsig = status & 0x7f
  let code = (status >> 8) & 0xff
  let stderrText = crashSummary(String(decoding: stderrTail, as: UTF8.self))
  if let killedFor {
    out.failure = killedFor
  } else if termsig != 0 {
    out.failure = "crash: \(signalName(termsig))"
  } else if code != 0 {
    out.failure = "exit status \(code)"
  } else if !out.finished {
    out.failure = "exited before the end"
  }
  if out.failure != nil { out.failure! += "\n  stderr: " + stderrText.joined(separator: "\n          ") }
  return out
}

// MARK: - Main

let config = parse()
guard FileManager.default.isExecutableFile(atPath: config.luagan) else {
  FileHandle.standardError.write("luagan-fuzz: no luagan at \(config.luagan) (build it, or pass --luagan)\n".data(using: .utf8)!)
  exit(2)
}
signal(SIGPIPE, SIG_IGN)

var jobs: [Job] = []
var seed = config.seed
var remaining = config.calls
while remaining > 0 {
  let n = min(remaining, config.callsPerChild)
  jobs.append(Job(script: "calls.lua", flag: "calls", seed: seed, count: n))
  seed += 1
  remaining -= n
}
remaining = config.files
seed = config.seed
while remaining > 0 {
  let n = min(remaining, config.filesPerChild)
  jobs.append(Job(script: "files.lua", flag: "files", seed: seed, count: n))
  seed += 1
  remaining -= n
}

final class Tally: @unchecked Sendable {
  let lock = NSLock()
  var next = 0
  var calls = 0, files = 0, failures = 0, maxRSS = 0
  var log: [String] = []
}
let tally = Tally()
let started = now()
print("luagan-fuzz: \(config.calls) calls and \(config.files) files in \(jobs.count) children, \(config.jobs) at a time; luagan at \(config.luagan)")

DispatchQueue.concurrentPerform(iterations: config.jobs) { _ in
  while true {
    tally.lock.lock()
    let i = tally.next
    tally.next += 1
    tally.lock.unlock()
    guard i < jobs.count else { return }
    let job = jobs[i]
    let o = run(job, config)
    tally.lock.lock()
    if job.flag == "calls" { tally.calls += o.cases } else { tally.files += o.cases }
    tally.maxRSS = max(tally.maxRSS, o.maxRSS)
    if let f = o.failure {
      tally.failures += 1
      let k = o.lastCase.split(separator: " ").dropFirst().first.map(String.init) ?? "?"
      let entry = """
        FAIL \(job.script) seed \(job.seed), case \(k): \(f)
          last case: \(o.lastCase)
          replay: (mkdir -p /tmp/replay && cd /tmp/replay && \(config.luagan) \(config.scripts)/\(job.script) --seed=\(job.seed) --\(job.flag)=\(k) --verbose)
        """
      tally.log.append(entry)
      print(entry)
    } else if config.verbose {
      print(String(format: "%@ seed %d: %d cases, %.1f s, max RSS %d MB", job.script, job.seed, o.cases, o.seconds, o.maxRSS >> 20))
    }
    tally.lock.unlock()
  }
}

let seconds = now() - started
let summary = String(format: "luagan-fuzz: %d calls, %d files, %d failures (crashes, hangs, runaway memory), max resident %d MB, %.0f s",
                     tally.calls, tally.files, tally.failures, tally.maxRSS >> 20, seconds)
print(summary)
if !tally.log.isEmpty {
  try? (tally.log.joined(separator: "\n\n") + "\n").write(toFile: config.log, atomically: true, encoding: .utf8)
  print("failures written to \(config.log)")
  exit(1)
}
exit(0)
