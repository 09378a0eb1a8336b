/// Pooling and nearest upsampling on NCHW tensors. avgPool2d and avgPool2dTranspose are each
/// other's pullbacks (both linear); maxPool2d is a gather at the window maxima; upsampleNearest
/// is avgPool2dTranspose scaled, with sum pooling as its pullback.

/// Window geometry of a pooling op on an (N, C, H, W) input.
struct PoolGeometry {
  let planes, h, w, k, s, p, ho, wo: Int
  let countIncludePad: Bool

  init(_ shape: [Int], k: Int, s: Int, p: Int, countIncludePad: Bool) {
    planes = shape[0] * shape[1]; h = shape[2]; w = shape[3]
    self.k = k; self.s = s; self.p = p; self.countIncludePad = countIncludePad
    ho = (h + 2 * p - k) / s + 1
    wo = (w + 2 * p - k) / s + 1
  }

  /// 2×2 windows with stride 2 and no padding (BigGAN's and PGGAN's downsampling): every window
  /// is whole, so the loops need no clipping.
  var isHalving: Bool { k == 2 && s == 2 && p == 0 }

  /// The clipped window of output (oh, ow) and PyTorch's divisor for it.
  @inline(__always) func window(_ oh: Int, _ ow: Int) -> (Int, Int, Int, Int, Int) {
    var hs = oh * s - p, ws = ow * s - p
    var he = Swift.min(hs + k, h + p), we = Swift.min(ws + k, w + p)
    let padded = (he - hs) * (we - ws)
    hs = Swift.max(hs, 0); ws = Swift.max(ws, 0); he = Swift.min(he, h); we = Swift.min(we, w)
    return (hs, he, ws, we, countIncludePad ? padded : Swift.max(1, (he - hs) * (we - ws)))
  }
}

/// avgPool2d over halving windows, planes `planes` of x (planes, h, w) into y (planes, ho, wo).
/// The sum runs in the general loop's order (row by row, from 0), so the bits are the same.
@inline(__always)
func halvingPool<T: TensorScalar>(_ x: UnsafePointer<T>, _ y: UnsafeMutablePointer<T>, _ g: PoolGeometry, planes: Range<Int>) {
  for pl in planes {
    for oh in 0..<g.ho {
      let r0 = x + pl * g.h * g.w + 2 * oh * g.w, r1 = r0 + g.w, o = y + (pl * g.ho + oh) * g.wo
      for ow in 0..<g.wo { o[ow] = (0 + r0[2 * ow] + r0[2 * ow + 1] + r1[2 * ow] + r1[2 * ow + 1]) / 4 }
    }
  }
}

/// avgPool2dTranspose over halving windows: each value of y (planes, ho, wo) / 4 into its 2×2
/// cells of x (planes, h, w); rows and columns past 2·ho, 2·wo are left as they are (zero).
@inline(__always)
func halvingSpread<T: TensorScalar>(_ y: UnsafePointer<T>, _ x: UnsafeMutablePointer<T>, _ g: PoolGeometry, planes: Range<Int>) {
  for pl in planes {
    for oh in 0..<g.ho {
      let i = y + (pl * g.ho + oh) * g.wo, r0 = x + pl * g.h * g.w + 2 * oh * g.w, r1 = r0 + g.w
      for ow in 0..<g.wo {
        let v = 0 + i[ow] / 4  // as the general loop's 0 + v: a -0 becomes +0 there too
        r0[2 * ow] = v; r0[2 * ow + 1] = v; r1[2 * ow] = v; r1[2 * ow + 1] = v
      }
    }
  }
}

func checkPool(_ x: Tensor, k: Int, s: Int, p: Int, _ op: String) throws {
  guard x.rank == 4 else { throw TensorError("\(op): input must be 4-D (N, C, H, W), got shape \(formatShape(x.shape))") }
  guard k > 0, s > 0 else { throw TensorError("\(op): kernel size and stride must be positive, got \(k) and \(s)") }
  guard p >= 0, p <= k / 2 else { throw TensorError("\(op): padding must be between 0 and half the kernel size, got \(p) for kernel \(k)") }
  let ph = try Checked.add(x.shape[2], 2 * p, op), pw = try Checked.add(x.shape[3], 2 * p, op)  // 2p <= k: no overflow
  guard ph >= k, pw >= k else {
    throw TensorError("\(op): kernel \(k) is larger than the padded input \(ph)x\(pw) (input \(formatShape(x.shape)))")
  }
}

extension Tensor {
  /// Mean over k×k windows with the given stride and zero padding; padded cells count in the
  /// divisor when `countIncludePad` (PyTorch's default). Reference: torch.nn.functional.avg_pool2d.
  public func avgPool2d(kernel k: Int, stride: Int? = nil, padding p: Int = 0, countIncludePad: Bool = true) throws -> Tensor {
    let s = stride ?? k
    try checkPool(self, k: k, s: s, p: p, "avgPool2d")
    let g = PoolGeometry(shape, k: k, s: s, p: p, countIncludePad: countIncludePad)
    let src = try contiguousData()
    let out = try Tensor.empty([shape[0], shape[1], g.ho, g.wo], dtype: dtype)
    func go<T: TensorScalar>(_: T.Type) {
      let px = src.pointer(T.self), po = out.pointer(T.self)
      Parallel.forChunks(g.planes, grain: Swift.max(1, Parallel.elementGrain / Swift.max(1, g.h * g.w))) { r in
        if g.isHalving { return halvingPool(px, po, g, planes: r) }
        for pl in r {
          let xin = px + pl * g.h * g.w, o = po + pl * g.ho * g.wo
          for oh in 0..<g.ho {
            for ow in 0..<g.wo {
              let (hs, he, ws, we, div) = g.window(oh, ow)
              var acc: T = 0
              for ih in hs..<he { for iw in ws..<we { acc += xin[ih * g.w + iw] } }
              o[oh * g.wo + ow] = acc / T(div)
            }
          }
        }
      }
    }
    switch dtype { case .float32: go(Float.self); case .float64: go(Double.self) }
    return record("avgPool2d", out, [self]) { [h = shape[2], w = shape[3]] gy, _ in
      [try gy.avgPool2dTranspose(kernel: k, stride: s, padding: p, countIncludePad: countIncludePad, outputSize: (h, w))]
    }
  }

  /// The adjoint of avgPool2d: spreads each value evenly over its window (divided by the same
  /// divisor) into an (N, C, H, W) tensor.
  public func avgPool2dTranspose(kernel k: Int, stride s: Int, padding p: Int, countIncludePad: Bool, outputSize: (Int, Int)) throws -> Tensor {
    guard rank == 4 else { throw TensorError("avgPool2dTranspose: input must be 4-D, got \(formatShape(shape))") }
    try checkPool(Tensor(storage: storage, shape: [shape[0], shape[1], outputSize.0, outputSize.1], strides: [0, 0, 0, 0], offset: 0),
                  k: k, s: s, p: p, "avgPool2dTranspose")
    let g = PoolGeometry([shape[0], shape[1], outputSize.0, outputSize.1], k: k, s: s, p: p, countIncludePad: countIncludePad)
    guard g.ho == shape[2], g.wo == shape[3] else {
      throw TensorError("avgPool2dTranspose: input \(formatShape(shape)) does not pool from size \(outputSize.0)x\(outputSize.1)")
    }
    let src = try contiguousData()
    // Halving windows tile an even-sized output exactly: every cell is written once, none is left 0.
    let tiled = g.isHalving && g.h == 2 * g.ho && g.w == 2 * g.wo
    let outShape = [shape[0], shape[1], g.h, g.w]
    let out = tiled ? try Tensor.empty(outShape, dtype: dtype) : try Tensor.zeros(outShape, dtype: dtype)
    func go<T: TensorScalar>(_: T.Type) {
      let py = src.pointer(T.self), po = out.pointer(T.self)
      Parallel.forChunks(g.planes, grain: Swift.max(1, Parallel.elementGrain / Swift.max(1, g.h * g.w))) { r in
        if g.isHalving { return halvingSpread(py, po, g, planes: r) }
        for pl in r {
          let yin = py + pl * g.ho * g.wo, o = po + pl * g.h * g.w
          for oh in 0..<g.ho {
            for ow in 0..<g.wo {
              let (hs, he, ws, we, div) = g.window(oh, ow)
              let v = yin[oh * g.wo + ow] / T(div)
              for ih in hs..<he { for iw in ws..<we { o[ih * g.w + iw] += v } }
            }
          }
        }
      }
    }
    switch dtype { case .float32: go(Float.self); case .float64: go(Double.self) }
    return record("avgPool2dTranspose", out, [self]) { gx, _ in
      [try gx.avgPool2d(kernel: k, stride: s, padding: p, countIncludePad: countIncludePad)]
    }
  }

  /// Max over k×k windows (padding never wins). Reference: torch.nn.functional.max_pool2d.
  public func maxPool2d(kernel k: Int, stride: Int? = nil, padding p: Int = 0) throws -> Tensor {
    let s = stride ?? k
    try checkPool(self, k: k, s: s, p: p, "maxPool2d")
    let g = PoolGeometry(shape, k: k, s: s, p: p, countIncludePad: false)
    let src = try contiguousData()
    let count = try Checked.product([g.planes, g.ho, g.wo], "maxPool2d")
    try Storage.checkAllocatable(count: count, elementBytes: 8, what: "maxPool2d's window indices")
    var idx = [Int](repeating: 0, count: count)
    func go<T: TensorScalar>(_: T.Type) {
      let px = src.pointer(T.self)
      idx.withUnsafeMutableBufferPointer { ib in
        let ix = ib.baseAddress!
        Parallel.forChunks(g.planes, grain: Swift.max(1, Parallel.elementGrain / Swift.max(1, g.h * g.w))) { r in
          for pl in r {
            let xin = px + pl * g.h * g.w
            for oh in 0..<g.ho {
              for ow in 0..<g.wo {
                let (hs, he, ws, we, _) = g.window(oh, ow)
                var best = -T.infinity, bi = hs * g.w + ws
                scan: for ih in hs..<he {
                  for iw in ws..<we {
                    let v = xin[ih * g.w + iw]
                    if v > best || v.isNaN { best = v; bi = ih * g.w + iw; if v.isNaN { break scan } }
                  }
                }
                ix[(pl * g.ho + oh) * g.wo + ow] = bi
              }
            }
          }
        }
      }
    }
    switch dtype { case .float32: go(Float.self); case .float64: go(Double.self) }
    let flat = try reshape([shape[0], shape[1], g.h * g.w])
    let picked = try flat.gather(dim: 2, index: IndexArray(shape: [shape[0], shape[1], g.ho * g.wo], values: idx))
    return try picked.reshape([shape[0], shape[1], g.ho, g.wo])
  }

  /// Nearest-neighbour upsampling by an integer factor (each pixel becomes factor×factor).
  /// Reference: torch.nn.functional.interpolate(mode='nearest').
  public func upsampleNearest(_ factor: Int) throws -> Tensor {
    guard rank == 4 else { throw TensorError("upsampleNearest: input must be 4-D (N, C, H, W), got shape \(formatShape(shape))") }
    guard factor >= 1 else { throw TensorError("upsampleNearest: factor must be a positive integer, got \(factor)") }
    if factor == 1 { return self }
    let (h, w) = (shape[2], shape[3])
    let out = try Tensor.empty([shape[0], shape[1], Checked.mul(h, factor, "upsampleNearest"), Checked.mul(w, factor, "upsampleNearest")], dtype: dtype)
    let src = try contiguousData()
    func go<T: TensorScalar>(_: T.Type) {
      let px = src.pointer(T.self), po = out.pointer(T.self)
      let W = w * factor
      Parallel.forChunks(shape[0] * shape[1] * h, grain: Swift.max(1, Parallel.elementGrain / Swift.max(1, W * factor))) { r in
        for row in r {
          let s = px + row * w, d = po + row * W * factor
          if factor == 2 {  // BigGAN's and PGGAN's upsampling; a constant factor lets the loop vectorize
            for j in 0..<w { let v = s[j]; d[2 * j] = v; d[2 * j + 1] = v }
          } else {
            for j in 0..<w { let v = s[j]; for f in 0..<factor { d[j * factor + f] = v } }
          }
          for f in 1..<factor { (d + f * W).update(from: d, count: W) }
        }
      }
    }
    switch dtype { case .float32: go(Float.self); case .float64: go(Double.self) }
    if requiresGrad && GradMode.isEnabled { out.upsampledFrom = (self, factor) }
    return record("upsampleNearest", out, [self]) { gy, _ in
      // each input pixel fed factor² outputs: sum their gradients
      [try gy.avgPool2d(kernel: factor).mul(gy.constant(Double(factor * factor)))]
    }
  }
}
