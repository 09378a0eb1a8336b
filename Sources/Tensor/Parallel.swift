import COpenBLAS
import Foundation

/// The worker pool: how many threads kernels use. Work is always split into chunks whose
/// boundaries depend only on the problem size, never on the thread count, so results are the
/// same for any `threads`. OpenBLAS itself always runs single-threaded: its own threading
/// splits a GEMM by the thread count, which changes the rounding (a strided convolution
/// differed between 1 and 2 threads), so luagan splits GEMMs into fixed blocks itself.
public enum Parallel {
  nonisolated(unsafe) private static var _threads = defaultThreads()

  public static var threads: Int {
    get { _threads }
    set { _threads = Swift.max(1, newValue) }
  }

  static func defaultThreads() -> Int {
    let n = Int(openblas_get_num_procs())
    openblas_set_num_threads(1)
    return Swift.max(1, n)
  }

  /// Runs `body` over `0..<count` split into chunks of `grain` items (the last may be short).
  /// Chunks run concurrently when there are several and more than one thread is allowed.
  @inline(__always)
  public static func forChunks(_ count: Int, grain: Int, _ body: (Range<Int>) -> Void) {
    if count <= 0 { return }
    let g = Swift.max(1, grain)
    let chunks = (count + g - 1) / g
    if chunks == 1 || _threads == 1 {
      for c in 0..<chunks { body(c * g..<Swift.min(count, (c + 1) * g)) }
    } else {
      WorkerPool.shared.run(chunks, helpers: _threads - 1) { c in body(c * g..<Swift.min(count, (c + 1) * g)) }
    }
  }

  /// Runs `count` independent BLAS calls (body(0) ..< body(count)) concurrently, each one
  /// single-threaded, e.g. the 16 GEMMs of a Winograd block: at small channel counts this
  /// beats threading each GEMM, whose synchronisation dominates.
  public static func independentBLAS(_ count: Int, _ body: (Int) -> Void) {
    if _threads == 1 || count <= 1 {
      for i in 0..<count { body(i) }
      return
    }
    WorkerPool.shared.run(count, helpers: _threads - 1, body)
  }

  /// Elementwise work below this many elements is not worth a thread hop (LG_ELEMENT_GRAIN).
  public static let elementGrain = Tunables.elementGrain.value
}

extension Parallel {
  /// OpenBLAS's build description (core type, threading), for --version.
  public static var blasDescription: String { String(cString: openblas_get_config()) }
}
