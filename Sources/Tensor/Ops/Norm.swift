/// Batch normalization as one primitive: a composite of means, differences and products saves
/// two full-size tensors per call (the centred input and the normalised one) and walks the
/// data ten times; this saves only its input and walks it three times forward, twice back.

extension Tensor {
  /// Batch normalization of x (N, C, H, W) with the batch's statistics, then an affine map:
  ///   y = x̂·scale + shift,   x̂ = (x − μ_c) / √(σ²_c + eps),   μ, σ² over (N, H, W), σ² biased.
  /// scale and shift are (N, C) (BigGAN's ccbn: 1 + gain(c) and bias(c) per sample) or (1, C)
  /// (BatchNorm2d's weight and bias), or nil (1 and 0). Also returns the batch mean and biased
  /// variance per channel, for the running statistics.
  /// Reference: torch.nn.functional.batch_norm (training); Ioffe & Szegedy 2015.
  public static func batchNorm(_ x: Tensor, scale: Tensor?, shift: Tensor?, eps: Double) throws -> (Tensor, mean: [Double], variance: [Double]) {
    guard x.rank == 4 else { throw TensorError("batchNorm: input must be (N, C, H, W), got \(formatShape(x.shape))") }
    let (n, c) = (x.shape[0], x.shape[1])
    for (t, name) in [(scale, "scale"), (shift, "shift")] {
      guard let t else { continue }
      guard t.rank == 2, t.shape[1] == c, t.shape[0] == n || t.shape[0] == 1 else {
        throw TensorError("batchNorm: \(name) must be (\(n), \(c)) or (1, \(c)), got \(formatShape(t.shape))")
      }
    }
    guard eps > 0, eps.isFinite else { throw TensorError("batchNorm: eps must be positive, got \(eps)") }
    let m = x.numel / Swift.max(c, 1)
    guard m > 1 else {
      throw TensorError("batchNorm: expected more than 1 value per channel when training, got input \(formatShape(x.shape))")
    }
    let dt = [x, scale, shift].compactMap { $0?.dtype }.reduce(x.dtype) { DType.promote($0, $1) }
    let xs = try x.to(dt), sc = try scale?.to(dt), sh = try shift?.to(dt)
    let xc = try xs.contiguousData()
    let (mean, variance) = try channelMoments(xc)
    let rstd = variance.map { 1 / ($0 + eps).squareRoot() }
    let out = try Tensor.empty(x.shape, dtype: dt)
    try normalizeKernel(xc, mean: mean, rstd: rstd, scale: sc.map { try $0.contiguousData() }, shift: sh.map { try $0.contiguousData() }, into: out)

    var inputs = [xs]
    if let sc { inputs.append(sc) }
    if let sh { inputs.append(sh) }
    let y = record("batchNorm", out, inputs) { [scaleShape = sc?.shape, shiftShape = sh?.shape] g, needs in
      // ĝ = g·scale;  dx = rstd·(ĝ − mean_c(ĝ) − x̂·mean_c(ĝ·x̂));  dscale = Σ_hw g·x̂;  dshift = Σ_hw g
      let grads: (Tensor, Tensor?, Tensor?)
      if GradMode.isEnabled {
        grads = try batchNormBackwardComposite(g, xs, sc, eps: eps)  // differentiable, for double backward
      } else {
        grads = try batchNormBackwardKernel(g, xc, sc, mean: mean, rstd: rstd, wantScale: sc != nil, wantShift: sh != nil)
      }
      var r: [Tensor?] = [needs[0] ? grads.0 : nil]
      if let s = scaleShape { r.append(needs[r.count] ? try grads.1!.sumTo(s) : nil) }
      if let s = shiftShape { r.append(needs[r.count] ? try grads.2!.sumTo(s) : nil) }
      return r
    }
    return (y, mean, variance)
  }

  /// The pullback in ordinary differentiable ops (used when its graph is wanted).
  static func batchNormBackwardComposite(_ g: Tensor, _ x: Tensor, _ scale: Tensor?, eps: Double) throws -> (Tensor, Tensor?, Tensor?) {
    let (n, c) = (x.shape[0], x.shape[1])
    let mu = try x.mean(dims: [0, 2, 3], keepDim: true)
    let centered = try x.sub(mu)
    let rstd = try centered.mul(centered).mean(dims: [0, 2, 3], keepDim: true).add(x.constant(eps)).rsqrt()
    let xhat = try centered.mul(rstd)
    let gh = scale == nil ? g : try g.mul(scale!.reshape([scale!.shape[0], c, 1, 1]))
    let gx = try gh.sub(gh.mean(dims: [0, 2, 3], keepDim: true))
      .sub(xhat.mul(gh.mul(xhat).mean(dims: [0, 2, 3], keepDim: true))).mul(rstd)
    let gscale = try g.mul(xhat).sum(dims: [2, 3]).reshape([n, c])
    let gshift = try g.sum(dims: [2, 3]).reshape([n, c])
    return (gx, gscale, gshift)
  }

  /// Per-channel mean and biased variance of a contiguous (N, C, ...) tensor, two passes in
  /// Double, each channel by one thread in a fixed order (thread-count independent).
  static func channelMoments(_ x: Tensor) throws -> ([Double], [Double]) {
    let (n, c) = (x.shape[0], x.shape[1]), plane = x.numel / Swift.max(n * c, 1)
    var mean = [Double](repeating: 0, count: c), variance = [Double](repeating: 0, count: c)
    let count = Double(n * plane)
    func go<T: TensorScalar>(_: T.Type) {
      let px = UnsafePointer(x.pointer(T.self))
      mean.withUnsafeMutableBufferPointer { mb in
        variance.withUnsafeMutableBufferPointer { vb in
          let pm = mb.baseAddress!, pv = vb.baseAddress!
          Parallel.forChunks(c, grain: Swift.max(1, Parallel.elementGrain / Swift.max(1, n * plane))) { r in
            for ch in r {
              var s = 0.0
              for i in 0..<n { s += sumRun(px + (i * c + ch) * plane, plane) }
              let mu = s / count
              var q = 0.0
              for i in 0..<n { q += squaredDeviationRun(px + (i * c + ch) * plane, plane, mu) }
              pm[ch] = mu
              pv[ch] = q / count
            }
          }
        }
      }
    }
    switch x.dtype { case .float32: go(Float.self); case .float64: go(Double.self) }
    return (mean, variance)
  }

  /// out = x·a + b per (n, c) plane, a = rstd·scale, b = shift − μ·a (PyTorch's form).
  static func normalizeKernel(_ x: Tensor, mean: [Double], rstd: [Double], scale: Tensor?, shift: Tensor?, into out: Tensor) throws {
    let (n, c) = (x.shape[0], x.shape[1]), plane = x.numel / Swift.max(n * c, 1)
    func go<T: TensorScalar>(_: T.Type) {
      let px = UnsafePointer(x.pointer(T.self)), po = out.pointer(T.self)
      let ps = scale.map { UnsafePointer($0.pointer(T.self)) }, pb = shift.map { UnsafePointer($0.pointer(T.self)) }
      let sPerSample = (scale?.shape[0] ?? 1) == n && n > 1, bPerSample = (shift?.shape[0] ?? 1) == n && n > 1
      Parallel.forChunks(n * c, grain: Swift.max(1, Parallel.elementGrain / Swift.max(1, plane))) { r in
        for nc in r {
          let i = nc / c, ch = nc % c
          let s = ps.map { Double($0[(sPerSample ? i * c : 0) + ch]) } ?? 1
          let b = pb.map { Double($0[(bPerSample ? i * c : 0) + ch]) } ?? 0
          let a = T(rstd[ch] * s), off = T(b - mean[ch] * rstd[ch] * s)
          let src = px + nc * plane, dst = po + nc * plane
          for k in 0..<plane { dst[k] = src[k] * a + off }
        }
      }
    }
    switch x.dtype { case .float32: go(Float.self); case .float64: go(Double.self) }
  }

  /// The pullback's values in two fused passes (no graph): per (n, c) the sums Σg and Σg·x̂,
  /// then dx = rstd·(g·scale − m1_c − x̂·m2_c) with m1 = mean_c(g·scale), m2 = mean_c(g·scale·x̂).
  static func batchNormBackwardKernel(_ g0: Tensor, _ x: Tensor, _ scale: Tensor?, mean: [Double], rstd: [Double],
                                      wantScale: Bool, wantShift: Bool) throws -> (Tensor, Tensor?, Tensor?) {
    let (n, c) = (x.shape[0], x.shape[1]), plane = x.numel / Swift.max(n * c, 1)
    let g = try g0.to(x.dtype).contiguousData()
    let sc = try scale.map { try $0.contiguousData() }
    let gx = try Tensor.empty(x.shape, dtype: x.dtype)
    var s1 = [Double](repeating: 0, count: n * c), s2 = [Double](repeating: 0, count: n * c)
    let count = Double(n * plane)
    func go<T: TensorScalar>(_: T.Type) {
      let px = UnsafePointer(x.pointer(T.self)), pg = UnsafePointer(g.pointer(T.self)), po = gx.pointer(T.self)
      let ps = sc.map { UnsafePointer($0.pointer(T.self)) }
      let sPerSample = (sc?.shape[0] ?? 1) == n && n > 1
      s1.withUnsafeMutableBufferPointer { b1 in
        s2.withUnsafeMutableBufferPointer { b2 in
          let p1 = b1.baseAddress!, p2 = b2.baseAddress!
          let grain = Swift.max(1, Parallel.elementGrain / Swift.max(1, plane))
          Parallel.forChunks(n * c, grain: grain) { r in
            for nc in r {
              let ch = nc % c
              let (a, b) = gradSumsRun(pg + nc * plane, px + nc * plane, plane, mean[ch], rstd[ch])
              p1[nc] = a
              p2[nc] = b
            }
          }
          // Per channel: means over the batch of ĝ = g·scale and ĝ·x̂.
          var m1 = [Double](repeating: 0, count: c), m2 = [Double](repeating: 0, count: c)
          for ch in 0..<c {
            var a = 0.0, b = 0.0
            for i in 0..<n {
              let s = ps.map { Double($0[(sPerSample ? i * c : 0) + ch]) } ?? 1
              a += s * p1[i * c + ch]
              b += s * p2[i * c + ch]
            }
            m1[ch] = a / count
            m2[ch] = b / count
          }
          Parallel.forChunks(n * c, grain: grain) { r in
            for nc in r {
              let i = nc / c, ch = nc % c
              let s = ps.map { Double($0[(sPerSample ? i * c : 0) + ch]) } ?? 1
              // dx = rstd·s·g − rstd·m1 − rstd·m2·(x − μ)·rstd
              let kg = T(rstd[ch] * s), kx = T(-rstd[ch] * m2[ch] * rstd[ch])
              let k0 = T(-rstd[ch] * m1[ch] + rstd[ch] * m2[ch] * rstd[ch] * mean[ch])
              let gs = pg + nc * plane, xs = px + nc * plane, d = po + nc * plane
              for k in 0..<plane { d[k] = gs[k] * kg + xs[k] * kx + k0 }
            }
          }
        }
      }
    }
    switch x.dtype { case .float32: go(Float.self); case .float64: go(Double.self) }
    let gscale = wantScale ? try Tensor.from(s2, shape: [n, c], dtype: x.dtype) : nil
    let gshift = wantShift ? try Tensor.from(s1, shape: [n, c], dtype: x.dtype) : nil
    return (gx, gscale, gshift)
  }
}

/// Σ (p[i] − μ)² over a run, in Double, in a fixed order.
@inline(__always)
func squaredDeviationRun<T: TensorScalar>(_ p: UnsafePointer<T>, _ n: Int, _ mu: Double) -> Double {
  var acc = SIMD8<Double>(repeating: 0), i = 0
  let m = SIMD8<Double>(repeating: mu)
  while i + 8 <= n {
    var v = SIMD8<Double>()
    for k in 0..<8 { v[k] = Double(p[i + k]) }
    let d = v - m
    acc += d * d
    i += 8
  }
  var s = acc.sum()
  while i < n { let d = Double(p[i]) - mu; s += d * d; i += 1 }
  return s
}

/// (Σ g, Σ g·x̂) over a run, x̂ = (x − μ)·rstd, in Double, in a fixed order.
@inline(__always)
func gradSumsRun<T: TensorScalar>(_ g: UnsafePointer<T>, _ x: UnsafePointer<T>, _ n: Int, _ mu: Double, _ rstd: Double) -> (Double, Double) {
  var a = SIMD8<Double>(repeating: 0), b = SIMD8<Double>(repeating: 0), i = 0
  let m = SIMD8<Double>(repeating: mu)
  while i + 8 <= n {
    var gv = SIMD8<Double>(), xv = SIMD8<Double>()
    for k in 0..<8 { gv[k] = Double(g[i + k]); xv[k] = Double(x[i + k]) }
    a += gv
    b += gv * (xv - m)
    i += 8
  }
  var sa = a.sum(), sb = b.sum()
  while i < n { let gv = Double(g[i]); sa += gv; sb += gv * (Double(x[i]) - mu); i += 1 }
  return (sa, sb * rstd)
}
