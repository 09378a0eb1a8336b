import Foundation

/// In-place writes, for optimizers, EMA, initializers and buffers. They never record onto
/// the graph; writing into a tensor that is itself a graph node is refused, since the values
/// saved for its backward would silently change.

extension Tensor {
  func checkWritable(_ op: String) throws {
    if node != nil && GradMode.isEnabled {
      throw TensorError("\(op): cannot write in place into a tensor that is part of a graph (result of '\(node!.op)'); use detach() or noGrad")
    }
    // As PyTorch's assert_no_internal_overlap: an expanded view (stride 0 over a size > 1) has
    // elements that share one memory location, so a write to "each" is ill-defined (and an
    // expand to 2^53 elements would loop over one float for days).
    for (size, stride) in zip(shape, strides) where stride == 0 && size > 1 {
      throw TensorError("\(op): cannot write in place into an expanded tensor (its elements share memory); clone() it first")
    }
  }

  /// Copies `src` (broadcast to this shape, converted to this dtype) into this tensor or view.
  /// Reference: torch.Tensor.copy_.
  @discardableResult
  public func copy_(_ src: Tensor) throws -> Tensor {
    try checkWritable("copy")
    _ = try broadcastShapes(shape, src.shape, op: "copy")
    guard try broadcastShapes(shape, src.shape, op: "copy") == shape else {
      throw TensorError("copy: source shape \(formatShape(src.shape)) cannot be broadcast to destination \(formatShape(shape))")
    }
    var s = try src.detach().to(dtype)
    if s.storage === storage { s = try s.clone() }  // overlapping views: read before writing
    switch dtype {
    case .float32: copyInto(self, s, Float.self)
    case .float64: copyInto(self, s, Double.self)
    }
    bumpVersion()
    return self
  }

  /// Sets every element to `value`.
  @discardableResult
  public func fill_(_ value: Double) throws -> Tensor {
    try checkWritable("fill")
    try copy_(Tensor.scalar(value, dtype: dtype))
    return self
  }

  /// self += alpha·other (other broadcast to self).
  @discardableResult
  public func add_(_ other: Tensor, alpha: Double = 1) throws -> Tensor {
    try checkWritable("add_")
    let o = alpha == 1 ? other.detach() : try other.detach().mul(Tensor.scalar(alpha, dtype: other.dtype))
    return try combineInPlace(o, AddFn(), op: "add_", verb: "add")
  }

  /// self = f(self, other), other broadcast to self and converted to its dtype, read before
  /// anything is written when it shares self's storage; bumps the version.
  private func combineInPlace<F: BinaryFn>(_ other: Tensor, _ f: F, op: String, verb: String) throws -> Tensor {
    var o = try other.to(dtype)
    if o.storage === storage { o = try o.clone() }  // overlapping views: read before writing
    guard try broadcastShapes(shape, o.shape, op: op) == shape else {
      throw TensorError("\(op): cannot \(verb) shape \(formatShape(o.shape)) into \(formatShape(shape))")
    }
    zipInPlace(o, f)
    bumpVersion()
    return self
  }

  /// self *= s, in self's storage (the same bits as self · s).
  @discardableResult
  public func mul_(_ s: Double) throws -> Tensor {
    try mul_(Tensor.scalar(s, dtype: dtype))
  }

  /// self *= other (other broadcast to self), in self's storage: the same bits as self · other.
  /// Reference: torch.Tensor.mul_.
  @discardableResult
  public func mul_(_ other: Tensor) throws -> Tensor {
    try checkWritable("mul_")
    return try combineInPlace(other.detach(), MulFn(), op: "mul_", verb: "multiply")
  }

  /// max(x, 0) written over x (refused on a graph node, as every in-place write).
  /// Reference: torch.Tensor.relu_.
  @discardableResult
  public func relu_() throws -> Tensor {
    try checkWritable("relu_")
    mapInPlace(ReluFn())
    bumpVersion()
    return self
  }

  /// self + other (or self · other) where self is a result just made that nothing else holds
  /// (a convolution's output before its bias, a normalization's before its shift): when no
  /// graph records the result, other is written into self's storage, so a forward under noGrad
  /// holds one tensor per layer output instead of two. The same bits as the out-of-place op.
  public func addIntoFresh(_ other: Tensor) throws -> Tensor {
    guard try canWriteFresh(other) else { return try add(other) }
    zipInPlace(other, AddFn())
    return self
  }
  public func mulIntoFresh(_ other: Tensor) throws -> Tensor {
    guard try canWriteFresh(other) else { return try mul(other) }
    zipInPlace(other, MulFn())
    return self
  }
  /// softmax along the last dim of a result just made that nothing else holds (attention's
  /// logits): with no graph to record, computed in its own storage by softmax's kernel (the
  /// same bits, no second map).
  public func softmaxIntoFresh() throws -> Tensor {
    let d = rank - 1
    guard rank >= 1, !(GradMode.isEnabled && requiresGrad), isContiguous else { return try softmax(dim: d) }
    switch dtype {
    case .float32: softmaxRows(self, into: self, Float.self)
    case .float64: softmaxRows(self, into: self, Double.self)
    }
    return self
  }

  /// self = f(self) and self = f(self, other) element by element, other of self's dtype and
  /// broadcast to self's shape; no checks and no version bump (the callers' business).
  private func mapInPlace<F: UnaryFn>(_ f: F) {
    switch dtype {
    case .float32: mapInto(self, Float.self, f)
    case .float64: mapInto(self, Double.self, f)
    }
  }
  private func zipInPlace<F: BinaryFn>(_ other: Tensor, _ f: F) {
    switch dtype {
    case .float32: zipInto(self, other, Float.self, f)
    case .float64: zipInto(self, other, Double.self, f)
    }
  }

  private func canWriteFresh(_ other: Tensor) throws -> Bool {
    let records = GradMode.isEnabled && (requiresGrad || other.requiresGrad)
    guard !records, isContiguous, other.dtype == dtype, other.storage !== storage else { return false }
    return try broadcastShapes(shape, other.shape, op: "add") == shape
  }

  /// Gradient accumulation into an existing leaf gradient.
  func addInPlace(_ g: Tensor) throws {
    let s = try g.detach().to(dtype)
    zipInPlace(s, AddFn())
    bumpVersion()
  }

  /// One Adam step on a contiguous parameter, following torch.optim.Adam's single-tensor
  /// implementation operation by operation (in the parameter's precision), so trajectories
  /// match PyTorch's:
  ///   g ← g + wd·p;  m ← lerp(m, g, 1-β1);  v ← v·β2 + (1-β2)·g·g
  ///   p ← p - (lr/(1-β1ᵗ)) · m / (√v/√(1-β2ᵗ) + eps)
  /// With `epsilonHat`, TensorFlow's form: p ← p - (lr·√(1-β2ᵗ)/(1-β1ᵗ)) · m / (√v + eps).
  public static func adamStep(param p: Tensor, grad g: Tensor, expAvg m: Tensor, expAvgSq v: Tensor, step t: Int,
                              lr: Double, beta1: Double, beta2: Double, eps: Double, weightDecay: Double,
                              epsilonHat: Bool = false) throws {
    guard p.isContiguous, m.isContiguous, v.isContiguous, p.shape == g.shape, m.shape == p.shape, v.shape == p.shape,
          m.dtype == p.dtype, v.dtype == p.dtype else {
      throw TensorError("adam: parameter, gradient and state shapes differ (\(formatShape(p.shape)), \(formatShape(g.shape)))")
    }
    let gc = try g.detach().to(p.dtype).contiguous()
    let bc1 = 1 - Foundation.pow(beta1, Double(t)), bc2 = 1 - Foundation.pow(beta2, Double(t))
    let stepSize = lr / bc1, bc2Sqrt = bc2.squareRoot()
    func go<T: TensorScalar>(_: T.Type) {
      let pp = p.pointer(T.self), pg = gc.pointer(T.self), pm = m.pointer(T.self), pv = v.pointer(T.self)
      let wd = T(weightDecay), w1 = T(1 - beta1), b2 = T(beta2), w2 = T(1 - beta2)
      let ss = T(-stepSize), b2s = T(bc2Sqrt), ep = T(eps)
      Parallel.forChunks(p.numel, grain: Parallel.elementGrain) { r in
        for i in r {
          var gi = pg[i]
          if weightDecay != 0 { gi = gi + wd * pp[i] }
          // torch.lerp: start + w·(end - start) for w < 0.5, else end - (end - start)·(1 - w)
          let mi = w1 < 0.5 ? pm[i] + w1 * (gi - pm[i]) : gi - (gi - pm[i]) * (1 - w1)
          let vi = pv[i] * b2 + w2 * gi * gi
          let denom = epsilonHat ? (T.sqrt(vi) + ep) / b2s : T.sqrt(vi) / b2s + ep
          pp[i] = pp[i] + ss * mi / denom
          pm[i] = mi
          pv[i] = vi
        }
      }
    }
    switch p.dtype { case .float32: go(Float.self); case .float64: go(Double.self) }
    p.bumpVersion(); m.bumpVersion(); v.bumpVersion()
  }

  /// One SGD step as torch.optim.SGD: d = g + wd·p; with momentum, buf ← buf·μ + (1-dampening)·d
  /// (buf = d on the first step); p ← p - lr·(nesterov ? d + μ·buf : buf).
  public static func sgdStep(param p: Tensor, grad g: Tensor, momentumBuffer buf: Tensor?, firstStep: Bool, lr: Double,
                             momentum: Double, dampening: Double, weightDecay: Double, nesterov: Bool) throws {
    guard p.isContiguous, p.shape == g.shape else {
      throw TensorError("sgd: parameter and gradient shapes differ (\(formatShape(p.shape)), \(formatShape(g.shape)))")
    }
    let gc = try g.detach().to(p.dtype).contiguous()
    func go<T: TensorScalar>(_: T.Type) {
      let pp = p.pointer(T.self), pg = gc.pointer(T.self), pb = buf?.pointer(T.self)
      let wd = T(weightDecay), mu = T(momentum), damp = T(1 - dampening), mlr = T(-lr)
      Parallel.forChunks(p.numel, grain: Parallel.elementGrain) { r in
        for i in r {
          var d = pg[i]
          if weightDecay != 0 { d = d + wd * pp[i] }
          if let pb {
            let b = firstStep ? d : pb[i] * mu + damp * d
            pb[i] = b
            d = nesterov ? d + mu * b : b
          }
          pp[i] = pp[i] + mlr * d
        }
      }
    }
    switch p.dtype { case .float32: go(Float.self); case .float64: go(Double.self) }
    p.bumpVersion(); buf?.bumpVersion()
  }
}

extension Tensor {
  /// target ← target·decay + source·(1 − decay), in place (BigGAN's EMA, in that operation order).
  public static func emaStep(target t: Tensor, source s: Tensor, decay: Double) throws {
    guard t.isContiguous, t.shape == s.shape else {
      throw TensorError("ema: shapes differ (\(formatShape(t.shape)) and \(formatShape(s.shape)))")
    }
    let sc = try s.detach().to(t.dtype).contiguous()
    func go<T: TensorScalar>(_: T.Type) {
      let pt = t.pointer(T.self), ps = sc.pointer(T.self), d = T(decay), e = T(1 - decay)
      Parallel.forChunks(t.numel, grain: Parallel.elementGrain) { r in for i in r { pt[i] = pt[i] * d + ps[i] * e } }
    }
    switch t.dtype { case .float32: go(Float.self); case .float64: go(Double.self) }
    t.bumpVersion()
  }
}
