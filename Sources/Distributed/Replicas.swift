import COpenMPI
import Foundation
import Tensor

/// The processes of a data-parallel run, over Open MPI. `mpirun -n K luagan ...` starts K
/// processes (ranks 0..K-1); each calls `startIfLaunched` once, which initializes MPI only
/// when a launcher started it, so a plain `luagan ...` never touches MPI and needs no daemon.
/// Errors come back as codes (MPI_ERRORS_RETURN) and are thrown. Knows nothing of Lua.
public enum Replicas {
  public struct Failure: Error, CustomStringConvertible {
    public let description: String
  }

  nonisolated(unsafe) public private(set) static var rank = 0
  nonisolated(unsafe) public private(set) static var size = 1
  nonisolated(unsafe) public private(set) static var isActive = false
  /// Seconds spent inside collectives since start (the communication share of a step).
  nonisolated(unsafe) public private(set) static var seconds = 0.0
  /// Bytes this rank sent into all-reduces since start.
  nonisolated(unsafe) public private(set) static var bytesReduced = 0

  /// Whether a launcher started this process: Open MPI's mpirun sets OMPI_COMM_WORLD_SIZE, PMIx
  /// launchers PMIX_RANK.
  public static var launched: Bool {
    let env = ProcessInfo.processInfo.environment
    return env["OMPI_COMM_WORLD_SIZE"] != nil || env["PMIX_RANK"] != nil
  }

  /// Initializes MPI when launched by mpirun (idempotent); otherwise a single replica.
  public static func startIfLaunched() throws {
    guard launched, !isActive else { return }
    try check(lg_mpi_init(), "MPI_Init_thread")
    var r: Int32 = 0, s: Int32 = 0
    try check(lg_mpi_rank(&r), "MPI_Comm_rank")
    try check(lg_mpi_size(&s), "MPI_Comm_size")
    rank = Int(r); size = Int(s); isActive = true
  }

  /// Leaves MPI cleanly at the end of a run (every rank must call it).
  public static func finish() {
    guard isActive, lg_mpi_finalized() == 0 else { return }
    _ = lg_mpi_finalize()
    isActive = false
  }

  /// Ends every rank of the run at once (a rank's error, so that none waits forever).
  public static func abort(code: Int32) -> Never {
    if isActive { lg_mpi_abort(code) }
    exit(code)
  }

  public static func barrier() throws {
    guard isActive else { return }
    try timed { try check(lg_mpi_barrier(), "MPI_Barrier") }
  }

  /// Element-wise sum over ranks, in place, on every rank. MPI counts are 32-bit: large
  /// buffers go in pieces of 2^28 elements.
  public static func allReduceSum(_ values: UnsafeMutableBufferPointer<Float>) throws {
    guard isActive, let base = values.baseAddress else { return }
    try timed {
      for start in stride(from: 0, to: values.count, by: 1 << 28) {
        let n = min(1 << 28, values.count - start)
        try check(lg_mpi_allreduce_sum_f32(base + start, Int32(n)), "MPI_Allreduce")
      }
    }
    bytesReduced += values.count * 4
  }

  public static func allReduceSum(_ values: UnsafeMutableBufferPointer<Double>) throws {
    guard isActive, let base = values.baseAddress else { return }
    try timed {
      for start in stride(from: 0, to: values.count, by: 1 << 27) {
        let n = min(1 << 27, values.count - start)
        try check(lg_mpi_allreduce_sum_f64(base + start, Int32(n)), "MPI_Allreduce")
      }
    }
    bytesReduced += values.count * 8
  }

  public static func allReduceSum(_ values: inout [Double]) throws {
    try values.withUnsafeMutableBufferPointer { try allReduceSum($0) }
  }

  /// Starts an element-wise sum over ranks of a float32 or float64 buffer, in place; the
  /// buffer must stay alive and untouched until `wait` (or `test`) reports it done. One
  /// request per 2^27 elements (MPI counts are 32-bit).
  public static func startAllReduceSum(_ bytes: UnsafeMutableRawBufferPointer, dtype: DType) throws -> [MPI_Request?] {
    guard isActive, let base = bytes.baseAddress else { return [] }
    let count = bytes.count / dtype.byteSize
    var requests: [MPI_Request?] = []
    try timed {
      for start in stride(from: 0, to: count, by: 1 << 27) {
        let n = Int32(min(1 << 27, count - start))
        var request: MPI_Request? = lg_mpi_request_null()
        switch dtype {
        case .float32:
          try check(lg_mpi_iallreduce_sum_f32(base.assumingMemoryBound(to: Float.self) + start, n, &request), "MPI_Iallreduce")
        case .float64:
          try check(lg_mpi_iallreduce_sum_f64(base.assumingMemoryBound(to: Double.self) + start, n, &request), "MPI_Iallreduce")
        }
        requests.append(request)
      }
    }
    bytesReduced += bytes.count
    return requests
  }

  /// Advances the requests; those completed are removed.
  public static func test(_ requests: inout [MPI_Request?]) throws {
    guard !requests.isEmpty else { return }
    try timed {
      var left: [MPI_Request?] = []
      for var r in requests {
        var done: Int32 = 0
        try check(lg_mpi_test(&r, &done), "MPI_Test")
        if done == 0 { left.append(r) }
      }
      requests = left
    }
  }

  /// Waits for the requests to complete.
  public static func wait(_ requests: inout [MPI_Request?]) throws {
    guard !requests.isEmpty else { return }
    try timed {
      while var r = requests.first {
        try check(lg_mpi_wait(&r), "MPI_Wait")
        requests.removeFirst()
      }
    }
  }

  /// Element-wise max and min over ranks (checksums, agreeing on a stop).
  public static func allReduceMax(_ values: inout [Double]) throws {
    guard isActive else { return }
    try values.withUnsafeMutableBufferPointer { b in
      try timed { try check(lg_mpi_allreduce_max_f64(b.baseAddress, Int32(b.count)), "MPI_Allreduce") }
    }
  }
  public static func allReduceMin(_ values: inout [Double]) throws {
    guard isActive else { return }
    try values.withUnsafeMutableBufferPointer { b in
      try timed { try check(lg_mpi_allreduce_min_f64(b.baseAddress, Int32(b.count)), "MPI_Allreduce") }
    }
  }

  /// Root's bytes into every rank's buffer (same size everywhere).
  public static func broadcast(_ bytes: UnsafeMutableRawBufferPointer, root: Int) throws {
    guard isActive, let base = bytes.baseAddress else { return }
    try timed {
      for start in stride(from: 0, to: bytes.count, by: 1 << 30) {
        let n = min(1 << 30, bytes.count - start)
        try check(lg_mpi_bcast(base + start, Int32(n), Int32(root)), "MPI_Bcast")
      }
    }
  }

  /// Every rank's bytes (the same count on all), in rank order.
  public static func allGather(_ bytes: [UInt8]) throws -> [[UInt8]] {
    guard isActive else { return [bytes] }
    guard bytes.count < (1 << 30) / max(size, 1) else { throw Failure(description: "allGather: \(bytes.count) bytes per rank is too many") }
    var out = [UInt8](repeating: 0, count: bytes.count * size)
    try bytes.withUnsafeBytes { inp in
      try out.withUnsafeMutableBytes { o in
        try timed { try check(lg_mpi_allgather(inp.baseAddress, o.baseAddress, Int32(bytes.count)), "MPI_Allgather") }
      }
    }
    return (0..<size).map { Array(out[$0 * bytes.count..<($0 + 1) * bytes.count]) }
  }

  static func timed(_ body: () throws -> Void) throws {
    let t0 = DispatchTime.now().uptimeNanoseconds
    defer { seconds += Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9 }
    try body()
  }

  static func check(_ code: Int32, _ call: String) throws {
    guard code != 0 else { return }
    var text = [CChar](repeating: 0, count: Int(lg_mpi_max_error_string()) + 1)
    _ = lg_mpi_error_string(code, &text, Int32(text.count))
    throw Failure(description: "\(call) failed on rank \(rank) of \(size): \(String(cString: text))")
  }
}
