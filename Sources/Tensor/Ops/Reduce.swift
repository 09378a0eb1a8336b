/// Reductions. `sum` is the primitive; mean, var, std, logsumexp and softmax are composites.
/// `max`/`min` along a dim are a `gather` at the arg-extreme positions, so their gradient flows
/// to the chosen elements only (first occurrence on ties).

extension Tensor {
  /// Maps a possibly negative dim (-1 = last) to 0..<rank, or throws naming the op.
  public func normalizedDim(_ d: Int, _ op: String, rank r: Int? = nil) throws -> Int {
    let n = r ?? rank
    let dd = d < 0 ? d + n : d
    guard dd >= 0 && dd < n else {
      throw TensorError("\(op): dimension \(d < 0 ? d : d + 1) out of range for a tensor with \(n) dimension\(n == 1 ? "" : "s")")
    }
    return dd
  }

  func reduceMask(_ dims: [Int]?, _ op: String) throws -> [Bool] {
    var mask = [Bool](repeating: dims == nil, count: rank)
    for d in dims ?? [] {
      let dd = try normalizedDim(d, op)
      guard rank > 0 else { continue }
      if mask[dd] { throw TensorError("\(op): dimension \(dd + 1) given twice") }
      mask[dd] = true
    }
    return mask
  }

  /// Σ over `dims` (all when nil), keeping reduced dims as size 1 when `keepDim`.
  /// Reference: torch.sum.
  public func sum(dims: [Int]? = nil, keepDim: Bool = false) throws -> Tensor {
    let mask = try reduceMask(dims, "sum")
    let src = try contiguousData()
    let kept: Tensor
    switch dtype {
    case .float32: kept = try sumKernel(src, reduce: mask, Float.self)
    case .float64: kept = try sumKernel(src, reduce: mask, Double.self)
    }
    let keptShape = kept.shape
    let outShape = keepDim ? keptShape : zip(shape, mask).filter { !$1 }.map { $0.0 }
    let out = Tensor(storage: kept.storage, shape: outShape, strides: Tensor.contiguousStrides(outShape), offset: 0)
    return record("sum", out, [self]) { [shape = self.shape] g, _ in
      [try g.reshape(keptShape).expand(shape)]  // d Σx/dx = 1, spread back over the summed dims
    }
  }

  /// Sums a broadcast gradient back to `target` (the transpose of broadcasting).
  public func sumTo(_ target: [Int]) throws -> Tensor {
    if shape == target { return self }
    let lead = rank - target.count
    guard lead >= 0 else { throw TensorError("sumTo: cannot reduce \(formatShape(shape)) to \(formatShape(target))") }
    var dims = Array(0..<lead)
    for i in 0..<target.count where target[i] == 1 && shape[lead + i] != 1 { dims.append(lead + i) }
    let s = dims.isEmpty ? self : try sum(dims: dims, keepDim: true)
    return try s.reshape(target)
  }

  /// Mean over `dims` (all when nil). Reference: torch.mean.
  public func mean(dims: [Int]? = nil, keepDim: Bool = false) throws -> Tensor {
    let mask = try reduceMask(dims, "mean")
    let n = zip(shape, mask).reduce(1) { $1.1 ? $0 * $1.0 : $0 }
    return try sum(dims: dims, keepDim: keepDim).div(constant(Double(n)))
  }

  /// Variance over `dims`: Σ(x - mean)² / (n - 1) when `unbiased` (PyTorch's default), / n
  /// otherwise. Reference: torch.var.
  public func variance(dims: [Int]? = nil, unbiased: Bool = true, keepDim: Bool = false) throws -> Tensor {
    let mask = try reduceMask(dims, "var")
    let n = zip(shape, mask).reduce(1) { $1.1 ? $0 * $1.0 : $0 }
    let centered = try sub(mean(dims: dims, keepDim: true))
    let ss = try centered.mul(centered).sum(dims: dims, keepDim: keepDim)
    return try ss.div(constant(Double(unbiased ? n - 1 : n)))
  }

  /// Standard deviation: √var. Reference: torch.std.
  public func std(dims: [Int]? = nil, unbiased: Bool = true, keepDim: Bool = false) throws -> Tensor {
    try variance(dims: dims, unbiased: unbiased, keepDim: keepDim).sqrt()
  }

  /// Index (0-based) of the largest value along `dim`, or over the flattened tensor when nil.
  public func argmax(dim: Int? = nil, keepDim: Bool = false) throws -> (indices: [Int], shape: [Int]) {
    try argExtreme(dim: dim, keepDim: keepDim, largest: true, "argmax")
  }
  public func argmin(dim: Int? = nil, keepDim: Bool = false) throws -> (indices: [Int], shape: [Int]) {
    try argExtreme(dim: dim, keepDim: keepDim, largest: false, "argmin")
  }

  func argExtreme(dim: Int?, keepDim: Bool, largest: Bool, _ op: String) throws -> (indices: [Int], shape: [Int]) {
    guard numel > 0 else { throw TensorError("\(op): the tensor is empty") }
    let x = dim == nil ? try reshape([numel]) : self
    let d = try x.normalizedDim(dim ?? 0, op)
    let src = try x.contiguousData()
    let idx: [Int]
    switch dtype {
    case .float32: idx = argExtremeKernel(src, dim: d, largest: largest, Float.self)
    case .float64: idx = argExtremeKernel(src, dim: d, largest: largest, Double.self)
    }
    if dim == nil { return (idx, keepDim ? [Int](repeating: 1, count: rank) : []) }
    var s = x.shape
    if keepDim { s[d] = 1 } else { s.remove(at: d) }
    return (idx, s)
  }

  /// Largest values along `dim` and their 0-based indices. Reference: torch.max(dim).
  public func max(dim: Int, keepDim: Bool = false) throws -> (values: Tensor, indices: [Int]) {
    try extreme(dim: dim, keepDim: keepDim, largest: true, "max")
  }
  /// Smallest values along `dim` and their 0-based indices. Reference: torch.min(dim).
  public func min(dim: Int, keepDim: Bool = false) throws -> (values: Tensor, indices: [Int]) {
    try extreme(dim: dim, keepDim: keepDim, largest: false, "min")
  }
  /// The largest element (a 0-d tensor). Reference: torch.max.
  public func max() throws -> Tensor { try reshape([numel]).max(dim: 0).values }
  /// The smallest element (a 0-d tensor). Reference: torch.min.
  public func min() throws -> Tensor { try reshape([numel]).min(dim: 0).values }

  func extreme(dim: Int, keepDim: Bool, largest: Bool, _ op: String) throws -> (values: Tensor, indices: [Int]) {
    let d = try normalizedDim(dim, op)
    let (idx, _) = try argExtreme(dim: d, keepDim: true, largest: largest, op)
    var ishape = shape
    ishape[d] = 1
    let values = try gather(dim: d, index: IndexArray(shape: ishape, values: idx))
    return (keepDim ? values : try values.squeeze(dim: d), idx)
  }

  /// log Σ exp(x) along `dim`, computed as m + log Σ exp(x - m) with m the (detached) max, so
  /// it neither overflows nor underflows. Reference: torch.logsumexp.
  public func logsumexp(dim: Int, keepDim: Bool = false) throws -> Tensor {
    let d = try normalizedDim(dim, "logsumexp")
    var m = try detach().max(dim: d, keepDim: true).values
    // An all -inf (or +inf) row would give inf - inf; shift by 0 there instead.
    m = try Tensor.where(m.abs().lt(constant(.infinity)), m, constant(0))
    let s = try sub(m).exp().sum(dims: [d], keepDim: true).log().add(m)
    return keepDim ? s : try s.squeeze(dim: d)
  }

  /// Softmax along `dim`: exp(x - logsumexp(x)). Reference: torch.softmax.
  public func softmax(dim: Int) throws -> Tensor { try logSoftmax(dim: dim).exp() }

  /// x - logsumexp(x) along `dim`. Reference: torch.log_softmax.
  public func logSoftmax(dim: Int) throws -> Tensor { try sub(logsumexp(dim: dim, keepDim: true)) }
}
