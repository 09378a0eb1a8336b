import Foundation
import Tensor

/// Makes OpenBLAS run the best kernels this CPU supports. OpenBLAS's DYNAMIC_ARCH picks a core
/// by CPU model number when the library loads (before main): a CPU it does not know, or a VM
/// that masks the model, gets its SSE3 fallback, 4x slower. OPENBLAS_CORETYPE is read only at
/// load time, so when the core in use is weaker than the CPU's ISA, luagan sets it and
/// executes itself again, once, then checks the core it gets. A user's own OPENBLAS_CORETYPE
/// always wins.
///
/// LUAGAN_SIMULATE_BLAS_FALLBACK=1 reproduces an unknown CPU: the first process restarts with
/// OpenBLAS forced to its Prescott fallback, marked as OpenBLAS's own choice, and the fix must
/// then take effect as it would on such a machine.
enum BLASStartup {
  static let setByLuagan = "LUAGAN_BLAS_CORE"       // the core luagan asked for (marks the variable as ours)
  static let fallbackSeen = "LUAGAN_BLAS_FALLBACK"  // the core OpenBLAS had chosen
  static let simulate = "LUAGAN_SIMULATE_BLAS_FALLBACK"
  static let simulated = "LUAGAN_BLAS_SIMULATED"

  static func ensureBestCore() {
    let env = ProcessInfo.processInfo.environment
    let cpu = CPU.current
    let best = BLASCore.best(for: cpu)
    let current = BLASCore.current
    let requested = env["OPENBLAS_CORETYPE"]

    if let ours = env[setByLuagan], requested == ours {
      let was = env[fallbackSeen] ?? "?"
      if BLASCore.rank(current) >= BLASCore.rank(best) {
        BLASCore.chosenBy = "luagan (OpenBLAS had chosen \(was) for this CPU)"
      } else {
        BLASCore.chosenBy = "OpenBLAS (luagan asked for \(ours), got \(current))"
        warn("OpenBLAS runs its \(current) kernels although this CPU supports \(best) (\(cpu.isaDescription)); asked for \(ours) and did not get it")
      }
      return
    }
    let isSimulated = requested != nil && env[simulated] == requested
    if let requested, !isSimulated {
      BLASCore.chosenBy = "OPENBLAS_CORETYPE=\(requested) (yours)"
      return
    }
    if env[simulate] == "1" && !isSimulated {
      restart(with: ["OPENBLAS_CORETYPE": "Prescott", simulated: "Prescott"])
      return  // restart failed: carry on as we are
    }
    guard BLASCore.rank(current) < BLASCore.rank(best) else {
      BLASCore.chosenBy = "OpenBLAS"
      return
    }
    restart(with: ["OPENBLAS_CORETYPE": best, setByLuagan: best, fallbackSeen: current])
    BLASCore.chosenBy = "OpenBLAS (luagan could not restart with \(best))"
  }

  /// Executes this program again with the same arguments and `env` added; returns on failure.
  static func restart(with env: [String: String]) {
    for (k, v) in env { setenv(k, v, 1) }
    var args = CommandLine.arguments
    if args.isEmpty { args = ["luagan"] }
    let cargs = args.map { strdup($0) } + [nil]
    execv("/proc/self/exe", cargs)
    for p in cargs { free(p) }
    warn("could not restart to choose OpenBLAS kernels: \(String(cString: strerror(errno)))")
  }

  static func warn(_ s: String) { FileHandle.standardError.write("luagan: \(s)\n".data(using: .utf8)!) }
}
