import Tensor

/// Standing statistics (BigGAN-PyTorch's --accumulate_stats, "standing stats" in the paper's
/// appendix): while `accumulating`, a training-mode BatchNorm sets its running estimates to the
/// cumulative average over the passes since `begin()` (the k-th pass weighs 1/k, torch's
/// momentum=None) instead of the momentum average, so a generator sampled in eval mode uses
/// statistics of many batches.
public enum StandingStatistics {
  nonisolated(unsafe) public private(set) static var accumulating = false
  nonisolated(unsafe) static var passes: [ObjectIdentifier: Int] = [:]
  public static func begin() { passes = [:]; accumulating = true }
  public static func end() { passes = [:]; accumulating = false }
  /// The weight of this pass in the running estimates: 1/k on the k-th pass while
  /// accumulating, else `momentum`.
  static func factor(_ module: Module, momentum: Double) -> Double {
    guard accumulating else { return momentum }
    let k = (passes[ObjectIdentifier(module)] ?? 0) + 1
    passes[ObjectIdentifier(module)] = k
    return 1 / Double(k)
  }
}

/// BatchNorm layers whose training statistics can span every replica of a data-parallel run.
public protocol CrossReplicaNormalization: AnyObject {
  var crossReplica: Bool { get set }
}

/// BigGAN's cross-replica BatchNorm: the statistics of the global batch, every replica's
/// (N, H, W) together, composed of primitives so it differentiates to any order (R1, WGAN-GP):
///   μ = Σ_r Σ x / M,   σ² = Σ_r Σ (x − μ)² / M,   M = Σ_r N·H·W   (two passes, σ² biased)
/// with Σ_r the all-reduce `replicaSum`. Returns y, μ, σ² and M. Reference: BigGAN (Brock et
/// al. 2019, Section 3, "cross-replica BatchNorm"); torch.nn.SyncBatchNorm.
func crossReplicaBatchNorm(_ x: Tensor, channels c: Int, scale: Tensor?, shift: Tensor?, eps: Double) throws
  -> (Tensor, [Double], [Double], Int) {
  var counts = [Double(x.shape[0] * x.shape[2] * x.shape[3])]
  try ReplicaGroup.allReduceSum?(&counts)
  let m = try Tensor.scalar(counts[0], dtype: x.dtype)
  let mean = try x.sum(dims: [0, 2, 3]).replicaSum().div(m)                          // (C)
  let centered = try x.sub(mean.reshape([1, c, 1, 1]))
  let variance = try centered.mul(centered).sum(dims: [0, 2, 3]).replicaSum().div(m)  // (C), biased
  var y = try centered.mul(variance.add(Tensor.scalar(eps, dtype: x.dtype)).rsqrt().reshape([1, c, 1, 1]))
  if let scale { y = try y.mul(scale.reshape([scale.shape[0], c, 1, 1])) }
  if let shift { y = try y.add(shift.reshape([shift.shape[0], c, 1, 1])) }
  return (y, try mean.toArray(), try variance.toArray(), Int(counts[0]))
}

/// Batch normalization over (N, H, W) per channel followed by y = x̂·scale + shift (scale and
/// shift (N, C) or (1, C), or nil): training mode normalises with the batch's biased variance
/// (the fused primitive Tensor.batchNorm) and updates the running estimates with momentum and
/// the unbiased variance; eval mode uses the running estimates.
/// Reference: torch.nn.functional.batch_norm.
func batchNormalize(_ x: Tensor, _ module: Module, channels: Int, momentum: Double, eps: Double,
                    scale: Tensor? = nil, shift: Tensor? = nil, inPlace: Bool = false) throws -> Tensor {
  guard x.rank == 4, x.shape[1] == channels else {
    throw TensorError("\(module.typeName): input must be (N, \(channels), H, W), got \(formatShape(x.shape))")
  }
  let rm = try module.requireBuffer("running_mean"), rv = try module.requireBuffer("running_var")
  let c = channels
  if module.training {
    let n = x.shape[0] * x.shape[2] * x.shape[3]
    guard n > 1 else {
      throw TensorError("\(module.typeName): expected more than 1 value per channel when training, got input \(formatShape(x.shape))")
    }
    let crossReplica = (module as? CrossReplicaNormalization)?.crossReplica == true && ReplicaGroup.count > 1
    let (y, mean, variance, count) = crossReplica
      ? try crossReplicaBatchNorm(x, channels: c, scale: scale, shift: shift, eps: eps)
      : try { let r = try Tensor.batchNorm(x, scale: scale, shift: shift, eps: eps); return (r.0, r.mean, r.variance, n) }()
    let weight = StandingStatistics.factor(module, momentum: momentum)
    try GradMode.withDisabled {
      let m = try Tensor.scalar(weight, dtype: rm.dtype), keep = try Tensor.scalar(1 - weight, dtype: rm.dtype)
      let unbiased = try Tensor.from(variance.map { $0 * Double(count) / Double(count - 1) }, shape: [c], dtype: rv.dtype)
      _ = try rm.copy_(Tensor.from(mean, shape: [c], dtype: rm.dtype).mul(m).add(rm.mul(keep)))
      _ = try rv.copy_(unbiased.mul(m).add(rv.mul(keep)))
      if let t = module.buffer("num_batches_tracked") { _ = try t.add_(Tensor.scalar(1, dtype: t.dtype)) }
    }
    return y
  }
  // Eval, as PyTorch's CPU inference kernel: y = x·α + β per channel, α = 1/√(var + eps),
  // β = −mean·α; an affine BN folds its weight and bias in (α·w, b − mean·α·w), a conditional
  // one (per-sample scale and shift) applies them after, as BigGAN's ccbn does. Each step after
  // the first writes into the fresh result when no graph records it: one output of x's size.
  let mean = try rm.reshape([1, c, 1, 1])
  let folds = (scale?.shape[0] ?? 1) == 1 && (shift?.shape[0] ?? 1) == 1
  var alpha = try rv.add(Tensor.scalar(eps, dtype: rv.dtype)).rsqrt().reshape([1, c, 1, 1])
  if folds, let s = scale { alpha = try alpha.mul(s.reshape([1, c, 1, 1])) }
  var beta = try mean.mul(alpha).neg()
  if folds, let t = shift { beta = try t.reshape([1, c, 1, 1]).sub(mean.mul(alpha)) }
  // inPlace (the caller's promise that nothing else reads x): under noGrad, x on no graph, the
  // same two steps are written over x: the same bits, no second tensor of x's size.
  if inPlace && !GradMode.isEnabled && !x.requiresGrad && folds && x.isContiguous && alpha.dtype == x.dtype {
    return try x.mul_(alpha).add_(beta)
  }
  var y = try x.mul(alpha).addIntoFresh(beta)
  if !folds, let s = scale { y = try y.mulIntoFresh(s.reshape([s.shape[0], c, 1, 1])) }
  if !folds, let t = shift { y = try y.addIntoFresh(t.reshape([t.shape[0], c, 1, 1])) }
  return y
}

/// Batch normalization with a learnable per-channel weight and bias (affine).
/// Reference: torch.nn.BatchNorm2d.
public final class BatchNorm2d: Module, CrossReplicaNormalization {
  public let channels: Int, eps: Double, momentum: Double, affine: Bool
  /// In eval mode under noGrad, the output is written over a contiguous input on no graph (which
  /// nothing else may read then: a generator's last activation at 512 px is 1 GiB at batch 8);
  /// otherwise, and in training mode, the output is a new tensor.
  public let inPlace: Bool
  /// Training statistics over every replica's batch (cross-replica BatchNorm).
  public var crossReplica = false

  public init(_ channels: Int, eps: Double = 1e-5, momentum: Double = 0.1, affine: Bool = true, inPlace: Bool = false) throws {
    guard channels > 0 else { throw TensorError("BatchNorm2d: channel count must be positive, got \(channels)") }
    guard eps > 0, momentum >= 0, momentum <= 1 else { throw TensorError("BatchNorm2d: eps must be > 0 and momentum in [0, 1]") }
    self.channels = channels; self.eps = eps; self.momentum = momentum; self.affine = affine; self.inPlace = inPlace
    super.init(typeName: "BatchNorm2d")
    if affine {
      let w = try Tensor.ones([channels]); w.requiresGrad = true
      setParameter("weight", w)
      setParameter("bias", try newParameter([channels]))
    }
    setBuffer("running_mean", try Tensor.zeros([channels]))
    setBuffer("running_var", try Tensor.ones([channels]))
    setBuffer("num_batches_tracked", try Tensor.zeros([]))
  }

  public override func forward(_ inputs: [Tensor]) throws -> Tensor {
    try expectInputs(inputs, 1, "1 input (N, \(channels), H, W)")
    let scale = affine ? try requireParameter("weight").reshape([1, channels]) : nil
    let shift = affine ? try requireParameter("bias").reshape([1, channels]) : nil
    return try batchNormalize(inputs[0], self, channels: channels, momentum: momentum, eps: eps, scale: scale, shift: shift,
                              inPlace: inPlace)
  }

  public override var summary: String {
    "(\(channels), eps=\(eps), momentum=\(momentum)\(affine ? "" : ", affine=false")\(inPlace ? ", inPlace" : ""))"
  }
  public override func makeShell() throws -> Module {
    try BatchNorm2d(channels, eps: eps, momentum: momentum, affine: affine, inPlace: inPlace)
  }
}

/// BigGAN's class-conditional batch norm (ccbn): BN without an affine of its own, then
///   out = BN(x)·(1 + gain(c)) + bias(c)
/// where gain and bias are per-class embeddings (`classes`), or linear maps of a conditioning
/// vector c (the shared class embedding concatenated with a z chunk), spectrally normalized
/// in BigGAN. The gain is centred at 1 (compare_gan #54: without the +1 the model starts
/// multiplied by zero). Running statistics: momentum 0.1, unbiased variance.
/// Reference: ajbrock/BigGAN-PyTorch layers.py ccbn.
public final class ConditionalBatchNorm2d: Module, CrossReplicaNormalization {
  public enum Condition: Equatable {
    case classes(Int)
    case vector(inputSize: Int, spectralNorm: Bool, snEps: Double)
  }
  public let channels: Int, condition: Condition, eps: Double, momentum: Double
  /// Training statistics over every replica's batch (cross-replica BatchNorm).
  public var crossReplica = false

  public init(_ channels: Int, condition: Condition, eps: Double = 1e-5, momentum: Double = 0.1, generator: Generator = .global) throws {
    guard channels > 0 else { throw TensorError("ConditionalBatchNorm2d: channel count must be positive, got \(channels)") }
    self.channels = channels; self.condition = condition; self.eps = eps; self.momentum = momentum
    super.init(typeName: "ConditionalBatchNorm2d")
    switch condition {
    case .classes(let k):
      guard k > 0 else { throw TensorError("ConditionalBatchNorm2d: numClasses must be positive, got \(k)") }
      try setChild("gain", try Embedding(k, channels, generator: generator))
      try setChild("bias", try Embedding(k, channels, generator: generator))
    case .vector(let inputSize, let sn, let snEps):
      guard inputSize > 0 else { throw TensorError("ConditionalBatchNorm2d: inputSize must be positive, got \(inputSize)") }
      let g = try Linear(inputSize, channels, bias: false, generator: generator)
      let b = try Linear(inputSize, channels, bias: false, generator: generator)
      if sn {
        try g.applySpectralNorm(eps: snEps, generator: generator)
        try b.applySpectralNorm(eps: snEps, generator: generator)
      }
      try setChild("gain", g)
      try setChild("bias", b)
    }
    setBuffer("running_mean", try Tensor.zeros([channels]))
    setBuffer("running_var", try Tensor.ones([channels]))
  }

  public override var indexInputs: [Int] { if case .classes = condition { return [1] } else { return [] } }

  public override func forward(_ inputs: [Tensor]) throws -> Tensor {
    switch condition {
    case .classes: try expectInputs(inputs, 2, "2 inputs (x (N, \(channels), H, W), class indices (N))")
    case .vector(let n, _, _): try expectInputs(inputs, 2, "2 inputs (x (N, \(channels), H, W), condition (N, \(n)))")
    }
    let x = inputs[0], y = inputs[1]
    guard x.rank == 4, y.shape.first == x.shape.first else {
      throw TensorError("ConditionalBatchNorm2d: x \(formatShape(x.shape)) and condition \(formatShape(y.shape)) must share the batch size")
    }
    let n = x.shape[0]
    let gain = try requireChild("gain").forward([y]).reshape([n, channels])
    let bias = try requireChild("bias").forward([y]).reshape([n, channels])
    return try batchNormalize(x, self, channels: channels, momentum: momentum, eps: eps,
                              scale: gain.add(Tensor.scalar(1, dtype: gain.dtype)), shift: bias)
  }

  public override var summary: String {
    switch condition {
    case .classes(let k): return "(\(channels), numClasses=\(k), eps=\(eps))"
    case .vector(let n, let sn, _): return "(\(channels), inputSize=\(n)\(sn ? ", spectralNorm" : ""), eps=\(eps))"
    }
  }
  public override func makeShell() throws -> Module {
    try ConditionalBatchNorm2d(channels, condition: condition, eps: eps, momentum: momentum, generator: Generator(seed: 0))
  }
}

/// PGGAN's pixelwise feature normalization: x / √(mean over channels of x² + eps), per pixel.
/// Reference: tkarras/progressive_growing_of_gans networks.py pixel_norm.
public final class PixelNorm: Module {
  public let eps: Double
  public init(eps: Double = 1e-8) { self.eps = eps; super.init(typeName: "PixelNorm") }
  public override func forward(_ inputs: [Tensor]) throws -> Tensor {
    try expectInputs(inputs, 1, "1 input (N, C, ...)")
    let x = inputs[0]
    guard x.rank >= 2 else { throw TensorError("PixelNorm: input must have a channel dim, got \(formatShape(x.shape))") }
    return try x.mul(x.mul(x).mean(dims: [1], keepDim: true).add(Tensor.scalar(eps, dtype: x.dtype)).rsqrt())
  }
  public override var summary: String { "(eps=\(eps))" }
  public override func makeShell() throws -> Module { PixelNorm(eps: eps) }
}

/// PGGAN's minibatch standard deviation: samples are grouped with stride (n belongs to group
/// n mod N/G), the biased standard deviation over each group (+1e-8 under the root) is averaged
/// over C, H, W to one value per group and appended as an extra channel.
/// Reference: tkarras/progressive_growing_of_gans networks.py minibatch_stddev_layer.
public final class MinibatchStdDev: Module {
  public let groupSize: Int
  public init(groupSize: Int = 4) throws {
    guard groupSize >= 1 else { throw TensorError("MinibatchStdDev: group size must be >= 1, got \(groupSize)") }
    self.groupSize = groupSize
    super.init(typeName: "MinibatchStdDev")
  }
  public override func forward(_ inputs: [Tensor]) throws -> Tensor {
    try expectInputs(inputs, 1, "1 input (N, C, H, W)")
    let x = inputs[0]
    guard x.rank == 4 else { throw TensorError("MinibatchStdDev: input must be (N, C, H, W), got \(formatShape(x.shape))") }
    let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let g = Swift.min(groupSize, n)
    guard g > 0, n % g == 0 else {
      throw TensorError("MinibatchStdDev: batch size \(n) is not divisible by the group size \(g)")
    }
    let m = n / g
    var y = try x.reshape([g, m, c, h, w])                               // [G, M, C, H, W]
    y = try y.sub(y.mean(dims: [0], keepDim: true))
    y = try y.mul(y).mean(dims: [0])                                     // [M, C, H, W] biased variance
    y = try y.add(Tensor.scalar(1e-8, dtype: y.dtype)).sqrt()
    y = try y.mean(dims: [1, 2, 3], keepDim: true)                       // [M, 1, 1, 1]
    y = try y.reshape([1, m, 1, 1, 1]).expand([g, m, 1, h, w]).reshape([n, 1, h, w])
    return try Tensor.cat([x, y], dim: 1)
  }
  public override var summary: String { "(groupSize=\(groupSize))" }
  public override func makeShell() throws -> Module { try MinibatchStdDev(groupSize: groupSize) }
}
