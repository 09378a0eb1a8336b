/// Ops built from primitives, with no backward code of their own; plus softplus, a primitive
/// because stability demands one kernel (log1p(e^-|x|) + Swift.max(x, 0) never overflows, and its
/// derivative σ(x) is 1/2 at 0, which a composite of kinked pieces would get wrong).

struct SoftplusFn: UnaryFn {
  func apply<T: TensorScalar>(_ x: T) -> T { T.log1p(T.exp(-Swift.abs(x))) + (x > 0 ? x : 0) }
}

extension Tensor {
  /// log(1 + e^x), stable for any x. Reference: torch.nn.functional.softplus.
  public func softplus() throws -> Tensor {
    let out = try unary(SoftplusFn())
    return record("softplus", out, [self]) { [x = self] g, _ in [try g.mul(x.sigmoid())] }  // d/dx = σ(x)
  }

  /// log σ(x) = -softplus(-x). Reference: torch.nn.functional.logsigmoid.
  public func logSigmoid() throws -> Tensor { try neg().softplus().neg() }

  /// Clamps to [lo, hi] (either bound optional); the gradient passes where lo <= x <= hi.
  /// Reference: torch.clamp.
  public func clamp(min lo: Double? = nil, max hi: Double? = nil) throws -> Tensor {
    if let lo, let hi, lo > hi { throw TensorError("clamp: min \(lo) is greater than max \(hi)") }
    var r = self
    if let lo { r = try Tensor.where(r.lt(constant(lo)), constant(lo), r) }
    if let hi { r = try Tensor.where(r.gt(constant(hi)), constant(hi), r) }
    return r
  }

  /// Elementwise maximum (gradient to a where a >= b). Reference: torch.maximum.
  public func maximum(_ other: Tensor) throws -> Tensor { try Tensor.where(ge(other), self, other) }
  /// Elementwise minimum (gradient to a where a <= b). Reference: torch.minimum.
  public func minimum(_ other: Tensor) throws -> Tensor { try Tensor.where(le(other), self, other) }

  /// a^b for tensors: e^(b·log a) (a > 0). Reference: torch.pow.
  public func pow(_ exponent: Tensor) throws -> Tensor { try exponent.mul(log()).exp() }

  /// self + w·(end - self). Reference: torch.lerp.
  public func lerp(_ end: Tensor, _ w: Tensor) throws -> Tensor { try add(w.mul(end.sub(self))) }

  /// Euclidean norm √Σx² over everything or `dims`. A primitive so that its gradient at a
  /// zero vector is 0 (PyTorch's subgradient) rather than the 0/0 of the √ composite: a
  /// gradient penalty must not turn NaN when D's gradient vanishes. Reference: torch.norm.
  public func norm(dims: [Int]? = nil, keepDim: Bool = false) throws -> Tensor {
    // Σx² of an expanded view is its data's Σx² times the copies (sum handles the repeats), so
    // the square is taken of the data only
    let out = try GradMode.withDisabled {
      let data = expandedDims.isEmpty ? detach() : compactedView()
      let squares = try data.mul(data)
      let repeated = expandedDims.isEmpty ? squares : try squares.expand(shape)
      return try repeated.sum(dims: dims, keepDim: keepDim).sqrt()
    }
    let mask = try reduceMask(dims, "norm")
    let kept = zip(shape, mask).map { $1 ? 1 : $0 }
    return record("norm", out, [self]) { [x = self] g, _ in
      // d‖x‖/dx = x/‖x‖, taken as 0 where ‖x‖ = 0 (x is 0 there too)
      let n = try x.norm(dims: dims, keepDim: true)
      let safe = try Tensor.where(n.eq(n.constant(0)), n.constant(1), n)
      return [try g.reshape(kept).mul(x).div(safe)]
    }
  }
}
