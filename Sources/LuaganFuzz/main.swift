// luagan-fuzz: runs scripts/dev/fuzz/calls.lua and scripts/dev/fuzz/files.lua in child processes, and
// scripts/dev/fuzz/dist_calls.lua under `mpirun -n 2` (--mpi-cases), and watches them from outside,
// where a crash cannot hide: a signal, a hang (no case started for --timeout seconds, or for
// --file-timeout in a files child: its files are kilobytes), runaway memory (a process's
// resident set above --max-rss) or an exit without the fuzzer's "done" line is a failure, logged
// with the seed, the case and a command to replay it. The summary gives, per kind of child, the
// peak resident memory and the slowest case.
//
//   luagan-fuzz --calls 1000000 --files 10000 --mpi-cases 2000   (make fuzz)
//   luagan-fuzz --calls 60000 --files 1500                        (the slice CI runs)
import Foundation

#if canImport(Glibc)
import Glibc
#endif

struct Config {
  var calls = 20_000
  var files = 0
  var mpiCases = 0
  var callsPerChild = 20_000
  var filesPerChild = 500
  var mpiPerChild = 250
  var seed = 1
  var jobs = 2
  var timeout = 30.0
  var fileTimeout = 0.0    // 0: a third of --timeout
  var maxRSSMB = 2_000     // the bar: no child above 2 GB resident
  /// Address space of a (single-rank) child, set with prlimit: allocations past the process's
  /// own limit must be Lua errors too, and under it a child cannot exceed the RSS bar by
  /// allocating legitimately. 0: none (ASan reserves terabytes of address space).
  var maxASMB = 2_200
  var luagan = ""
  var scripts = ""
  var mpirun = ""
  var log = "fuzz-failures.log"
  var verbose = false
}

func usage() -> Never {
  print("""
    usage: luagan-fuzz [--calls N] [--files N] [--mpi-cases N] [--per-child N] [--files-per-child N] [--mpi-per-child N]
                       [--seed S] [--jobs J] [--timeout SECONDS] [--file-timeout SECONDS] [--max-rss MB] [--max-as MB]
                       [--luagan PATH] [--scripts DIR] [--log FILE] [--verbose]
    """)
  exit(2)
}

/// The first executable `name` on PATH, if any.
func onPath(_ name: String) -> String? {
  for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
    let path = "\(dir)/\(name)"
    if FileManager.default.isExecutableFile(atPath: path) { return path }
  }
  return nil
}

func parse() -> Config {
  var c = Config()
  var args = Array(CommandLine.arguments.dropFirst())
  func value() -> String {
    guard !args.isEmpty else { usage() }
    return args.removeFirst()
  }
  func int() -> Int { guard let v = Int(value()), v >= 0 else { usage() }; return v }
  func seconds() -> Double { guard let t = Double(value()), t > 0 else { usage() }; return t }
  while let a = args.first {
    args.removeFirst()
    switch a {
    case "--calls": c.calls = int()
    case "--files": c.files = int()
    case "--mpi-cases": c.mpiCases = int()
    case "--per-child": c.callsPerChild = max(1, int())
    case "--files-per-child": c.filesPerChild = max(1, int())
    case "--mpi-per-child": c.mpiPerChild = max(1, int())
    case "--seed": c.seed = int()
    case "--jobs": c.jobs = max(1, int())
    case "--timeout": c.timeout = seconds()
    case "--file-timeout": c.fileTimeout = seconds()
    case "--max-rss": c.maxRSSMB = int()
    case "--max-as": c.maxASMB = int()
    case "--luagan": c.luagan = value()
    case "--scripts": c.scripts = value()
    case "--log": c.log = value()
    case "--verbose": c.verbose = true
    default: usage()
    }
  }
  if c.fileTimeout == 0 { c.fileTimeout = c.timeout / 3 }
  let exe = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
  if c.luagan.isEmpty { c.luagan = exe.deletingLastPathComponent().appendingPathComponent("luagan").path }
  if c.scripts.isEmpty {
    var dir = exe.deletingLastPathComponent()
    for _ in 0..<6 {
      if FileManager.default.fileExists(atPath: dir.appendingPathComponent("scripts/dev/fuzz/calls.lua").path) { break }
      dir = dir.deletingLastPathComponent()
    }
    c.scripts = dir.appendingPathComponent("scripts/dev/fuzz").path
  }
  c.luagan = URL(fileURLWithPath: c.luagan).standardizedFileURL.path
  c.scripts = URL(fileURLWithPath: c.scripts).standardizedFileURL.path
  c.mpirun = onPath("mpirun") ?? ""
  return c
}

/// One child's job: a script, a seed and how many cases it runs; with `ranks` > 1, under mpirun.
struct Job {
  let script: String, flag: String, seed: Int, count: Int
  var ranks = 1
  /// "calls", "files" or "mpirun": what the summary groups by.
  var kind: String { ranks > 1 ? "mpirun" : flag }
}

/// mpirun's flags: ranks may share cores, and the fuzzer may run as root (in a container).
let mpirunFlags = ["--oversubscribe", "--allow-run-as-root"]

/// glibc's posix_spawn_file_actions_addchdir_np, which Swift's Glibc module does not export.
typealias AddChdir = @convention(c) (UnsafeMutablePointer<posix_spawn_file_actions_t>, UnsafePointer<CChar>) -> Int32
let addChdir: AddChdir = {
  guard let sym = dlsym(nil, "posix_spawn_file_actions_addchdir_np") else { fatalError("luagan-fuzz needs glibc 2.29 or later") }
  return unsafeBitCast(sym, to: AddChdir.self)
}()

/// What became of a child.
struct Outcome {
  var cases = 0            // cases started (the last one may be the culprit)
  var finished = false     // every rank's "D" line arrived
  var failure: String?     // nil when the child ran to the end and exited 0
  var lastCase = ""
  var seconds = 0.0
  var maxRSS = 0           // bytes, of the largest process (a rank, under mpirun)
  var slowest = 0.0        // seconds of the slowest case, and its line
  var slowestCase = ""
}

/// Resident set of a process, from /proc/<pid>/statm.
func residentBytes(_ pid: pid_t) -> Int {
  guard let s = try? String(contentsOfFile: "/proc/\(pid)/statm", encoding: .utf8) else { return 0 }
  let parts = s.split(separator: " ")
  guard parts.count > 1, let pages = Int(parts[1]) else { return 0 }
  return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}

/// `root` and its descendants (mpirun's ranks), from the parent ids in /proc/<pid>/stat.
func processTree(_ root: pid_t) -> [pid_t] {
  var children: [pid_t: [pid_t]] = [:]
  for name in (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? [] {
    guard let p = pid_t(name), let stat = try? String(contentsOfFile: "/proc/\(name)/stat", encoding: .utf8),
          let close = stat.lastIndex(of: ")") else { continue }
    let fields = stat[stat.index(after: close)...].split(separator: " ")   // state, then the parent's pid
    if fields.count > 1, let parent = pid_t(fields[1]) { children[parent, default: []].append(p) }
  }
  var out = [root], i = 0
  while i < out.count { out += children[out[i]] ?? []; i += 1 }
  return out
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

/// The lines of a child's stderr that say what went wrong: Swift's fatal error, mpirun's word on
/// a rank that died, and the top of the crashed thread's backtrace when there is one, else the
/// last lines.
func crashSummary(_ text: String) -> [String] {
  let lines = text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
  var out = lines.filter {
    $0.contains("Fatal error") || $0.contains("Program crashed") || $0.hasPrefix("luagan") || $0.contains("noticed that process")
      || $0.contains("MPI_ERR")
  }
  if let t = lines.firstIndex(where: { $0.hasPrefix("Thread") && $0.contains("crashed") }) {
    out += lines[t..<Swift.min(lines.count, t + 14)].filter { !$0.isEmpty }
  }
  return out.isEmpty ? Array(lines.suffix(12)) : out
}

/// Starts `job`'s child in `workDir`: its stderr into errFd, its trace (one line per case) into
/// traceFd, through fd 3, or through stdout under mpirun (which hands its ranks only 0, 1, 2).
func spawn(_ job: Job, _ config: Config, workDir: String, traceFd: Int32, errFd: Int32, closing: [Int32]) -> (pid_t, String?) {
  var actions = posix_spawn_file_actions_t()
  posix_spawn_file_actions_init(&actions)
  defer { posix_spawn_file_actions_destroy(&actions) }
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0)
  if job.ranks > 1 { posix_spawn_file_actions_adddup2(&actions, traceFd, 1) } else {
    posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0)
  }
  posix_spawn_file_actions_adddup2(&actions, errFd, 2)
  posix_spawn_file_actions_adddup2(&actions, traceFd, 3)
  for fd in closing where fd > 3 { posix_spawn_file_actions_addclose(&actions, fd) }
  guard addChdir(&actions, workDir) == 0 else { return (0, "cannot set the child's folder") }

  var argv = [config.luagan, "\(config.scripts)/\(job.script)", "--seed=\(job.seed)", "--\(job.flag)=\(job.count)"]
  argv = job.ranks > 1 ? [config.mpirun] + mpirunFlags + ["-n", "\(job.ranks)"] + argv + ["--trace=stdout"] : argv + ["--trace=/dev/fd/3"]
  if job.ranks == 1 && config.maxASMB > 0 { argv = ["/usr/bin/prlimit", "--as=\(config.maxASMB << 20)", "--"] + argv }
  var cargs: [UnsafeMutablePointer<CChar>?] = argv.map { strdup($0) } + [nil]
  defer { for p in cargs { free(p) } }
  var env = ProcessInfo.processInfo.environment
  env["LUAGAN_FUZZ"] = "1"
  env["LUAGAN_LUA_HEAP_LIMIT"] = "1G"  // a script that fills the heap gets Lua's error, well below --max-rss
  var cenv: [UnsafeMutablePointer<CChar>?] = env.map { strdup("\($0.key)=\($0.value)") } + [nil]
  defer { for p in cenv { free(p) } }
  var pid: pid_t = 0
  let rc = posix_spawn(&pid, argv[0], &actions, nil, &cargs, &cenv)
  guard rc == 0 else { return (0, "cannot start \(argv[0]): \(String(cString: strerror(rc)))") }
  return (pid, nil)
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
  let started = now()
  let (pid, spawnError) = spawn(job, config, workDir: workDir, traceFd: tracePipe[1], errFd: errPipe[1],
                                closing: tracePipe + errPipe)
  close(tracePipe[1]); close(errPipe[1])
  defer { close(tracePipe[0]); close(errPipe[0]) }
  if let spawnError { out.failure = spawnError; return out }

  var traceBuffer = [UInt8](), stderrTail = [UInt8]()
  var lastProgress = now(), lastRSSCheck = 0.0
  var status: Int32 = 0
  var exited = false, killed = false, killedFor: String? = nil
  var chunk = [UInt8](repeating: 0, count: 65536)
  var open = [tracePipe[0], errPipe[0]]
  var dones = 0, current = -1, caseStarted = started
  let patience = job.flag == "files" ? config.fileTimeout : config.timeout

  // Every rank writes "C <k> ..." before case k and "D <n>" at its end; a case lasts from its
  // first line to the next case's (or the last "D").
  func consumeTrace() {
    while let nl = traceBuffer.firstIndex(of: 10) {
      let line = String(decoding: traceBuffer[..<nl], as: UTF8.self)
      traceBuffer.removeSubrange(...nl)
      let t = now()
      let k = line.hasPrefix("D ") ? Int.max : Int(line.split(separator: " ").dropFirst().first ?? "") ?? -1
      if k >= 0 && k != current {
        if current >= 0 && t - caseStarted > out.slowest { out.slowest = t - caseStarted; out.slowestCase = out.lastCase }
        current = k; caseStarted = t
      }
      if k == Int.max { dones += 1; out.finished = dones >= job.ranks } else if k >= 0 {
        out.cases = max(out.cases, k)
        out.lastCase = line
      }
      lastProgress = t
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
      let rss = (job.ranks > 1 ? processTree(pid) : [pid]).map(residentBytes).max() ?? 0
      out.maxRSS = max(out.maxRSS, rss)
      if killedFor == nil && rss > config.maxRSSMB << 20 { killedFor = "runaway memory: resident \(rss >> 20) MB > \(config.maxRSSMB) MB" }
    }
    if killedFor == nil && t - lastProgress > patience { killedFor = String(format: "hang: no progress for %.0f s", t - lastProgress) }
    if killedFor != nil && !killed { killed = true; for p in job.ranks > 1 ? processTree(pid) : [pid] { kill(p, SIGKILL) } }
    let w = waitpid(pid, &status, WNOHANG)
    if w == pid { exited = true }
  }
  // Drain what is left in the pipes, without waiting on a rank mpirun may have left behind.
  for fd in open {
    _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
    while true {
      let n = read(fd, &chunk, chunk.count)
      if n <= 0 { break }
      if fd == tracePipe[0] {
        traceBuffer.append(contentsOf: chunk[0..<n])
        consumeTrace()
      } else {
        stderrTail.append(contentsOf: chunk[0..<n])
      }
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
for (script, flag, total, perChild, ranks) in [("calls.lua", "calls", config.calls, config.callsPerChild, 1),
                                               ("files.lua", "files", config.files, config.filesPerChild, 1),
                                               ("dist_calls.lua", "calls", config.mpiCases, config.mpiPerChild, 2)] {
  if ranks > 1 && total > 0 && config.mpirun.isEmpty {
    print("luagan-fuzz: no mpirun on PATH: the \(total) mpirun cases are skipped")
    continue
  }
  var remaining = total, seed = config.seed
  while remaining > 0 {
    let n = min(remaining, perChild)
    jobs.append(Job(script: script, flag: flag, seed: seed, count: n, ranks: ranks))
    seed += 1
    remaining -= n
  }
}

final class Tally: @unchecked Sendable {
  let lock = NSLock()
  var next = 0
  var cases: [String: Int] = [:], failures = 0
  var maxRSS: [String: Int] = [:]
  var slowest: [String: (seconds: Double, what: String)] = [:]
  var log: [String] = []
}
let tally = Tally()
let started = now()
print("luagan-fuzz: \(config.calls) calls, \(config.files) files and \(config.mpiCases) mpirun cases in \(jobs.count) children, "
      + "\(config.jobs) at a time; luagan at \(config.luagan)")

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
    tally.cases[job.kind, default: 0] += o.cases
    tally.maxRSS[job.kind] = max(tally.maxRSS[job.kind] ?? 0, o.maxRSS)
    if o.slowest > tally.slowest[job.kind]?.seconds ?? -1 {
      tally.slowest[job.kind] = (o.slowest, "seed \(job.seed), \(o.slowestCase.prefix(120))")
    }
    if let f = o.failure {
      tally.failures += 1
      let k = o.lastCase.split(separator: " ").dropFirst().first.map(String.init) ?? "?"
      let launcher = job.ranks > 1 ? [config.mpirun] + mpirunFlags + ["-n", "\(job.ranks)"] : []
      let replay = (launcher + [config.luagan, "\(config.scripts)/\(job.script)", "--seed=\(job.seed)", "--\(job.flag)=\(k)", "--verbose"])
        .joined(separator: " ")
      let entry = """
        FAIL \(job.script) seed \(job.seed), case \(k): \(f)
          last case: \(o.lastCase)
          replay: (mkdir -p /tmp/replay && cd /tmp/replay && \(replay))
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
let summary = String(format: "luagan-fuzz: %d calls, %d files, %d failures (crashes, hangs, runaway memory), %d mpirun cases, %.0f s",
                     tally.cases["calls"] ?? 0, tally.cases["files"] ?? 0, tally.failures, tally.cases["mpirun"] ?? 0, seconds)
print(summary)
let kinds = ["calls", "files", "mpirun"].filter { tally.cases[$0] != nil }
print("  peak resident memory of a child: " + kinds.map { "\($0) \((tally.maxRSS[$0] ?? 0) >> 20) MB" }.joined(separator: ", ")
      + " (limit \(config.maxRSSMB) MB)")
for kind in kinds {
  if let s = tally.slowest[kind] { print(String(format: "  slowest %@ case: %.1f s (%@)", kind, s.seconds, s.what)) }
}
if !tally.log.isEmpty {
  try? (tally.log.joined(separator: "\n\n") + "\n").write(toFile: config.log, atomically: true, encoding: .utf8)
  print("failures written to \(config.log)")
  exit(1)
}
exit(0)
