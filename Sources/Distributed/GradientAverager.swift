import COpenMPI
import Foundation
import Tensor

/// Averages a model's gradients over ranks while backward is still running, as PyTorch DDP's
/// reducer does: the parameters are cut into buckets (about `bucketBytes` each, in reverse
/// order, since backward finishes the last layers first), and a bucket's all-reduce starts
/// (MPI_Iallreduce) as soon as backward has stored the gradients of all its parameters. The
/// buckets start in a fixed order (bucket i only after bucket i-1), the same on every rank,
/// as MPI requires of collectives. `finish` starts what is left, waits, and writes the means
/// back into `.grad`.
///
/// With 2 ranks every element is a + b on both ranks, so the result is the same bits as the
/// blocking `averageGradients`; a parameter without a gradient counts as zeros, as there.
public final class GradientAverager: BackwardObserver {
  struct Bucket {
    let members: [Int]          // indices into params
    var waiting: Int            // members whose gradient is not final yet
    var buffer: Tensor?         // the flat gradients while in flight
    var requests: [MPI_Request?] = []
  }

  let params: [Tensor]
  let index: [ObjectIdentifier: Int]
  var ready: [Bool]
  var buckets: [Bucket]
  var bucketOf: [Int]
  var nextToStart = 0
  var armed = false
  /// Buckets started while backward was running, since the start of the run (a test's witness
  /// that the reduction overlaps the backward pass).
  public private(set) var startedDuringBackward = 0
  public var bucketCount: Int { buckets.count }

  /// `params` must be the same tensors in the same order on every rank; `agreeAcrossRanks`
  /// checks that they are before the first reduction. Throws when the parameters' total size
  /// cannot be allocated (an expanded view may claim 2^61 elements).
  public init(_ params: [Tensor], bucketBytes: Int) throws {
    var total = 0
    for p in params {
      let bytes = try Checked.mul(p.numel, p.dtype.byteSize, "dist.GradientAverager: a parameter's size")
      total = try Checked.add(total, bytes, "dist.GradientAverager: the parameters' total size")
    }
    try Storage.checkAllocatable(count: total, elementBytes: 1, what: "dist.GradientAverager's buckets")
    self.params = params
    var index: [ObjectIdentifier: Int] = [:]
    for (i, p) in params.enumerated() { index[ObjectIdentifier(p), default: i] = i }
    self.index = index
    ready = [Bool](repeating: false, count: params.count)
    bucketOf = [Int](repeating: 0, count: params.count)
    buckets = []
    var members: [Int] = [], bytes = 0
    func close() {
      guard !members.isEmpty else { return }
      for m in members { bucketOf[m] = buckets.count }
      buckets.append(Bucket(members: members, waiting: members.count))
      members = []; bytes = 0
    }
    for i in params.indices.reversed() where index[ObjectIdentifier(params[i])] == i {
      // one dtype per bucket (one MPI datatype per reduction)
      if let last = members.last, params[last].dtype != params[i].dtype { close() }
      members.append(i)
      bytes += params[i].numel * params[i].dtype.byteSize
      if bytes >= bucketBytes { close() }
    }
    close()
  }

  /// What every rank's buckets hold, in order: (dtype bits, elements) per bucket. Ranks must
  /// agree on it, or their all-reduces would pair buffers of different sizes (MPI_ERR_TRUNCATE,
  /// or a hang).
  public var layout: [(dtypeBits: Int, elements: Int)] {
    buckets.map { b in (params[b.members[0]].dtype.byteSize * 8, b.members.reduce(0) { $0 + params[$1].numel }) }
  }
  /// Set once `agree` has checked the layout against every rank's.
  public var agreed = false

  /// The next backward reports each finished gradient here (call just before the last backward
  /// of a step; earlier ones, e.g. accumulation, are not reduced).
  public func arm() throws {
    guard agreed || !(Replicas.isActive && Replicas.size > 1) else {
      throw TensorError("dist.GradientAverager: arm before the ranks agreed on the buckets")
    }
    try cancel()
    for b in buckets.indices { buckets[b].waiting = buckets[b].members.count }
    for i in ready.indices { ready[i] = false }
    nextToStart = 0
    armed = true
    if Replicas.isActive && Replicas.size > 1 { BackwardObservation.observer = self }  // else nothing to average
  }

  /// Parameters this backward does not reach (a PGGAN level not yet in use) are ready now,
  /// with no gradient, so their buckets do not hold back the ones after them.
  public func backwardStarts(reaching leaves: Set<ObjectIdentifier>) throws {
    guard armed else { return }
    for (i, p) in params.enumerated() where !ready[i] && index[ObjectIdentifier(p)] == i && !leaves.contains(ObjectIdentifier(p)) {
      markReady(i)
    }
    try startReadyBuckets()
  }

  public func leafReady(_ leaf: Tensor) throws {
    guard armed, let i = index[ObjectIdentifier(leaf)], !ready[i] else { return }
    markReady(i)
    try startReadyBuckets()
  }

  func markReady(_ i: Int) {
    ready[i] = true
    buckets[bucketOf[i]].waiting -= 1
  }

  func startReadyBuckets() throws {
    while nextToStart < buckets.count && buckets[nextToStart].waiting == 0 {
      try start(nextToStart)
      startedDuringBackward += 1
    }
  }

  /// Lets MPI advance the reductions in flight (Open MPI progresses non-blocking collectives
  /// only inside MPI calls).
  public func progress() throws {
    guard armed else { return }
    for b in 0..<nextToStart where !buckets[b].requests.isEmpty {
      try Replicas.test(&buckets[b].requests)
    }
  }

  /// Starts the buckets backward did not complete (parameters it did not reach), waits for
  /// all, and stores each mean into its parameter's `.grad`.
  /// Returns false (and does nothing) when not armed.
  @discardableResult
  public func finish() throws -> Bool {
    guard armed else { return false }
    if BackwardObservation.observer === self { BackwardObservation.observer = nil }
    armed = false
    guard Replicas.isActive && Replicas.size > 1 else { return true }
    while nextToStart < buckets.count { try start(nextToStart) }
    let scale = 1 / Double(Replicas.size)
    for b in buckets.indices {
      try Replicas.wait(&buckets[b].requests)
      guard let buffer = buckets[b].buffer else { continue }
      buckets[b].buffer = nil
      var at = 0
      for i in buckets[b].members {
        let p = params[i], n = p.numel
        let mean = try GradMode.withDisabled { try buffer.narrow(dim: 0, start: at, length: n).view(p.shape).mul_(scale) }
        if let g = p.grad, g.gradFnName == nil, g.isContiguous, g.shape == p.shape, g.dtype == p.dtype {
          _ = try GradMode.withDisabled { try g.copy_(mean) }
        } else {
          p.grad = try mean.clone()
        }
        at += n
      }
    }
    return true
  }

  /// Abandons an unfinished round (an error in the step): waits out what is in flight, so no
  /// buffer is freed under MPI, and leaves the gradients as backward made them.
  public func cancel() throws {
    if BackwardObservation.observer === self { BackwardObservation.observer = nil }
    guard armed else { return }
    armed = false
    for b in buckets.indices {
      try Replicas.wait(&buckets[b].requests)
      buckets[b].buffer = nil
    }
  }

  func start(_ b: Int) throws {
    nextToStart = b + 1
    let flat = try GradMode.withDisabled {
      try Tensor.cat(buckets[b].members.map { i -> Tensor in
        let p = params[i]
        // A gradient of another shape or dtype (set by hand) would make this rank's buffer differ
        // from the others'; it counts as the parameter's shape, as optimizers read it.
        guard let g = p.grad, g.numel == p.numel else { return try Tensor.zeros([p.numel], dtype: p.dtype) }
        return try g.to(p.dtype).reshape([-1])
      }, dim: 0).contiguous()
    }
    buckets[b].buffer = flat
    buckets[b].requests = try flat.withUnsafeMutableBytes { raw in try Replicas.startAllReduceSum(raw, dtype: flat.dtype) }
  }
}
