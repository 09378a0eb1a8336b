import CLua
import Distributed
import Foundation
import Tensor

/// `dist`: the ranks of a data-parallel run (`mpirun -n K luagan script.lua`), over Open MPI.
/// Without mpirun: rank 0 of 1, and every call is a no-op. Collectives must be made by every
/// rank in the same order; each one first exchanges what it was called with (the function,
/// dtype, shape, root), so ranks that disagree all raise the same error instead of mixing
/// buffers or waiting forever. Ranks are 0-based, as MPI's and torch.distributed's.
public enum DistLib {
  typealias Fn = Binding.Fn

  /// Starts MPI when mpirun launched this process, and lets replicaSum (cross-replica
  /// BatchNorm) reduce through it.
  public static func start() throws {
    try Replicas.startIfLaunched()
    guard Replicas.isActive else { return }
    ReplicaGroup.count = Replicas.size
    ReplicaGroup.allReduceSum = { values in
      // a collective like any dist call: the ranks first agree on it (replicaSum of another
      // size on one rank would be MPI_ERR_TRUNCATE there and a hang on the others)
      var d = [Int64](repeating: -1, count: 12)
      d[0] = 7; d[1] = 0; d[2] = Int64(values.count)
      switch verdict(try records(d)) {
      case .agreed: break
      case .argument(let message), .other(let message): throw TensorError("replicaSum: \(message)")
      }
      try Replicas.allReduceSum(&values)
    }
    ReplicaGroup.cannotReduce = {
      var d = [Int64](repeating: -1, count: 12)
      d[0] = 307; d[1] = 0
      _ = try records(d)          // the others' verdict names this rank; this rank raises its own error
    }
    // Scripts may end with os.exit (C's exit): leave MPI then too, or mpirun calls it abnormal.
    atexit { Replicas.finish() }
  }

  /// Leaves MPI at the end of a run (no-op without mpirun).
  public static func finish() { Replicas.finish() }

  /// A rank's fatal error: printed with its rank, then every rank of the run is ended (MPI_Abort),
  /// so that none waits forever in a collective. Returns only without mpirun.
  public static func abortIfDistributed(_ message: String, status: Int32) {
    guard Replicas.isActive, Replicas.size > 1 else { return }
    FileHandle.standardError.write("luagan (rank \(Replicas.rank) of \(Replicas.size)): \(message)\n".data(using: .utf8)!)
    Replicas.abort(code: status)
  }

  static let averagerMeta = UserdataKind("luagan.GradientAverager")

  static func install(_ L: LuaState) {
    installAveragerType(L)
    Binding.installLibrary(L, "dist", bindings())
  }

  // MARK: - dist.GradientAverager

  /// dist.GradientAverager(params[, {bucketMB = 25}]): averages the gradients of params over
  /// ranks while the backward that makes them runs (Sources/Distributed/GradientAverager.swift):
  /// avg:arm() just before a step's last backward, avg:finish() after it.
  /// Every rank makes its averager in the same order (as it must arm it), so making one is a
  /// collective too: a rank whose arguments or parameters are refused fails them all.
  static func newAverager(_ c: LuaCall) throws -> Int32 {
    var made: GradientAverager?
    let problem = failure {
      let params = try c.tensorList(1)
      let o = try c.options(2)
      let mb = try o.number("bucketMB", 25)
      try o.finish()
      guard mb.isFinite, mb > 0, mb <= 4096 else { throw c.argError(2, "bucketMB must be in (0, 4096], got \(mb)") }
      made = try GradientAverager(params, bucketBytes: Int(mb * 1048576))
    }
    try agree(c, call: 6, nil, root: 0, problem: problem)
    LuaVM.pushObject(c.L, made!, meta: averagerMeta)
    return 1
  }

  /// The error `body` throws, if any, to be raised only after every rank has said whether it
  /// has one (`agree`'s `problem`): a rank that fails alone would leave the others waiting.
  static func failure(_ body: () throws -> Void) -> Error? {
    do { try body(); return nil } catch { return error }
  }

  static func installAveragerType(_ L: LuaState) {
    let meta = averagerMeta
    _ = luaL_newmetatable(L, meta.name)
    func averager(_ c: LuaCall) throws -> GradientAverager {
      guard let a = LuaVM.toObject(c.L, 1, meta: meta, as: GradientAverager.self) else { throw c.typeError(1, meta.name) }
      return a
    }
    let methods: [Fn] = [
      ("arm", { c in
        let a = try averager(c)
        if !a.agreed { try agree(c, averager: a) }
        try a.arm()
        return 0
      }),
      ("finish", { c in c.push(try averager(c).finish()); return 1 }),
      ("cancel", { c in try averager(c).cancel(); return 0 }),
      ("overlapped", { c in c.push(try averager(c).startedDuringBackward); return 1 }),
    ]
    lua_pushstring(L, "__index")
    lua_createtable(L, 0, Int32(methods.count))
    for (name, body) in methods { Binding.set(L, -1, name, "dist.GradientAverager:\(name)", body) }
    lua_rawset(L, -3)
    Binding.set(L, -1, "__gc", "\(meta.name).__gc", { c in
      try? LuaVM.toObject(c.L, 1, meta: meta, as: GradientAverager.self)?.cancel()
      LuaVM.releaseObject(c.L, 1, meta: meta)
      return 0
    }, isFinalizer: true)
    Binding.set(L, -1, "__tostring", "\(meta.name).__tostring", { c in
      c.push("dist.GradientAverager (\(try averager(c).bucketCount) buckets)")
      return 1
    })
    Binding.protectMetatable(L, -1)
    lg_pop(L, 1)
  }

  static func bindings() -> [Fn] {
    [
      ("rank", { c in c.push(Replicas.rank); return 1 }),
      ("size", { c in c.push(Replicas.size); return 1 }),
      ("active", { c in c.push(Replicas.isActive); return 1 }),
      ("barrier", { c in
        try agree(c, call: 1, nil, root: 0)
        try Replicas.barrier()
        return 0
      }),
      ("allReduce", { c in
        var given: Tensor?, op = "sum"
        let problem = failure {
          given = try c.tensor(1)
          let o = try c.options(2)
          op = try o.string("op") ?? "sum"
          try o.finish()
          guard op == "sum" || op == "mean" else { throw c.argError(2, "op must be 'sum' or 'mean', got '\(op)'") }
        }
        try agree(c, call: 2, given, root: 0, problem: problem)
        let t = given!
        guard Replicas.isActive else { c.push(t); return 1 }
        try t.withUnsafeMutableBytes { raw in
          switch t.dtype {
          case .float32: try Replicas.allReduceSum(raw.bindMemory(to: Float.self))
          case .float64: try Replicas.allReduceSum(raw.bindMemory(to: Double.self))
          }
        }
        if op == "mean" { _ = try GradMode.withDisabled { try t.mul_(1 / Double(Replicas.size)) } }
        c.push(t)
        return 1
      }),
      ("broadcast", { c in
        var given: Tensor?, root = 0
        let problem = failure {
          given = try c.tensor(1)
          root = try c.optInteger(2, 0)
          guard root >= 0, root < Replicas.size else { throw c.argError(2, "root must be a rank in 0..\(Replicas.size - 1), got \(root)") }
        }
        try agree(c, call: 3, given, root: root, problem: problem)
        let t = given!
        if Replicas.isActive { try t.withUnsafeMutableBytes { try Replicas.broadcast($0, root: root) } }
        c.push(t)
        return 1
      }),
      ("allGather", { c in
        var given: Tensor?
        let problem = failure {
          given = try c.tensor(1)
          guard given!.rank >= 1 else {
            throw c.argError(1, "a tensor of at least 1 dim expected (pieces are joined along dim 1), got a 0-d one")
          }
        }
        try agree(c, call: 4, given, root: 0, problem: problem)
        let t = given!
        guard Replicas.isActive else { c.push(try t.clone()); return 1 }
        let mine = try t.contiguous().withUnsafeMutableBytes { Array($0) }
        let parts = try Replicas.allGather(mine).map { bytes -> Tensor in
          let part = try Tensor.zeros(t.shape, dtype: t.dtype)
          try part.withUnsafeMutableBytes { dst in dst.copyBytes(from: bytes) }
          return part
        }
        c.push(try Tensor.cat(parts, dim: 0))
        return 1
      }),
      ("GradientAverager", newAverager),
      ("stats", { c in
        lua_createtable(c.L, 0, 2)
        c.push(Replicas.seconds); c.setField(-2, "seconds")
        c.push(Replicas.bytesReduced); c.setField(-2, "bytes")
        return 1
      }),
    ]
  }

  static let callNames = [1: "barrier", 2: "allReduce", 3: "broadcast", 4: "allGather", 5: "dist.GradientAverager:arm",
                          6: "dist.GradientAverager", 7: "replicaSum"]

  /// Every rank's (call, dtype, shape, root); an error on every rank when they differ. What
  /// a rank cannot send (a non-contiguous tensor for an in-place call, more than 8 dims) is
  /// sent as a flag, so every rank fails together instead of one waiting forever.
  /// `problem`: this rank's own argument error, sent as a flag and raised after the exchange
  /// (the other ranks then fail too, naming the rank that could not make the call).
  static func agree(_ c: LuaCall, call: Int, _ t: Tensor?, root: Int, problem: Error? = nil) throws {
    guard Replicas.isActive else {
      if let problem { throw problem }
      return
    }
    var d = [Int64](repeating: -1, count: 12)
    d[0] = Int64(call); d[1] = Int64(root)
    if problem != nil { d[0] += 300 }
    else if let t {
      d[2] = t.dtype == .float32 ? 32 : 64
      d[3] = Int64(t.rank)
      for (i, n) in t.shape.prefix(8).enumerated() { d[4 + i] = Int64(n) }
      if call != 4 && !t.isContiguous { d[0] += 100 }     // in place needs contiguous: all ranks fail together
      if t.rank > 8 { d[0] += 200 }
    }
    try exchange(c, d, problem: problem)
  }

  /// dist.GradientAverager's first arm: every rank's buckets, (dtype, elements) each, must pair
  /// up, or the all-reduces would mix buffers of different sizes. Sent as the bucket count, the
  /// total elements and a hash of the layout, in the same record as every other dist call, so a
  /// rank making another call at that moment is named too.
  static func agree(_ c: LuaCall, averager: GradientAverager) throws {
    guard Replicas.isActive && Replicas.size > 1 else { averager.agreed = true; return }
    let layout = averager.layout
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325   // FNV-1a over (dtype bits, elements) pairs
    for (bits, n) in layout {
      for v in [UInt64(bits), UInt64(bitPattern: Int64(n))] { hash = (hash ^ v) &* 0x100_0000_01b3 }
    }
    var d = [Int64](repeating: -1, count: 12)
    d[0] = 5; d[1] = 0
    d[2] = Int64(layout.count); d[3] = Int64(layout.reduce(0) { $0 &+ $1.elements })
    d[4] = Int64(bitPattern: hash >> 1)
    d[5] = Int64(layout.filter { $0.dtypeBits == 64 }.reduce(0) { $0 &+ $1.elements })
    try exchange(c, d)
    averager.agreed = true
  }

  static func exchange(_ c: LuaCall, _ d: [Int64], problem: Error? = nil) throws {
    let all = try records(d)
    if let problem { throw problem }
    switch verdict(all) {
    case .agreed: return
    case .argument(let message): throw c.argError(1, message)
    case .other(let message): throw c.error(message)
    }
  }

  /// Every rank's 12-number record of the call it is making, in rank order.
  static func records(_ d: [Int64]) throws -> [[Int64]] {
    let bytes = d.withUnsafeBytes { Array($0) }
    return try Replicas.allGather(bytes).map { b in b.withUnsafeBytes { Array($0.bindMemory(to: Int64.self)) } }
  }

  enum Verdict { case agreed, argument(String), other(String) }

  /// What the ranks' records say: all the same call, or the error every rank raises.
  static func verdict(_ all: [[Int64]]) -> Verdict {
    if let bad = all.firstIndex(where: { $0[0] >= 300 }) {
      return .other("rank \(bad) could not make this call (\(callNames[Int(all[bad][0] - 300)] ?? "?")): its arguments were refused")
    }
    if all.contains(where: { $0[0] >= 200 }) { return .argument("a tensor of at most 8 dims expected on every rank") }
    if all.contains(where: { $0[0] >= 100 }) {
      return .argument("a contiguous tensor expected on every rank (in place; call :contiguous() first)")
    }
    guard all.contains(where: { $0 != all[0] }) else { return .agreed }
    func describe(_ v: [Int64]) -> String {
      let name = callNames[Int(v[0])] ?? "?"
      if v[0] == 5 {
        let hash = String(UInt64(v[4]), radix: 16)
        return "\(name) with \(v[2]) buckets of \(v[3] &- v[5]) float32 and \(v[5]) float64 elements (layout hash \(hash))"
      }
      if v[0] == 7 { return "\(name) of \(v[2]) values" }
      if v[2] < 0 { return name }
      let shape = (0..<Int(v[3])).map { String(v[4 + $0]) }.joined(separator: ", ")
      return "\(name) of a float\(v[2]) (\(shape))" + (v[0] == 3 ? " from rank \(v[1])" : "")
    }
    let lines = all.enumerated().map { "rank \($0.offset): \(describe($0.element))" }.joined(separator: "; ")
    return .other("ranks disagree (every rank must make the same call with the same dtype and shape): \(lines)")
  }
}
