/// The replicas of a data-parallel run (one process each, e.g. MPI ranks). Tensor knows no
/// transport: whoever starts the replicas installs `allReduceSum` (Runtime does, from
/// Distributed's MPI); without one the run is a single replica and `replicaSum` is the identity.
public enum ReplicaGroup {
  /// Sums `values` element-wise over every replica, in place, in the same order on all of them.
  /// A collective: every replica must make the same calls in the same order.
  nonisolated(unsafe) public static var allReduceSum: ((inout [Double]) throws -> Void)?
  /// Tells the other replicas that this one cannot make its all-reduce (its values could not be
  /// read): they fail too, instead of waiting for it.
  nonisolated(unsafe) public static var cannotReduce: (() throws -> Void)?
  /// How many replicas take part (1: a single process).
  nonisolated(unsafe) public static var count = 1
}

extension Tensor {
  /// Σ_r x_r over the replicas: every replica receives the same sum (an all-reduce). Its
  /// pullback is the same all-reduce of the incoming gradients, since each replica's copy of the
  /// sum depends on every x_r with derivative 1; so it composes to any order (cross-replica
  /// BatchNorm under R1). Values travel as float64. Reference:
  /// torch.distributed.nn.functional.all_reduce (ReduceOp.SUM).
  public func replicaSum() throws -> Tensor {
    var values: [Double]
    do { values = try toArray() } catch {
      try ReplicaGroup.cannotReduce?()
      throw error
    }
    if let reduce = ReplicaGroup.allReduceSum { try reduce(&values) }
    let out = try Tensor.from(values, shape: shape, dtype: dtype)
    return record("replicaSum", out, [self]) { g, _ in [try g.replicaSum()] }  // d(Σ_r x_r)/dx_r = 1: sum the gradients
  }
}
