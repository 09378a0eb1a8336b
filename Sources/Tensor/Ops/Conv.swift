import CKernels
import Foundation

/// 2-D convolution as im2col + GEMM on OpenBLAS, in three primitives that are each other's
/// pullbacks, so derivatives of any order stay inside the family:
///   conv2d(x, w)            y = A_w x                 (cross-correlation, as PyTorch)
///   convTranspose2d(y, w)   x = A_wᵀ y                (the adjoint of conv2d in its input)
///   conv2dWeight(x, gy)     dW with ⟨dW, V⟩ = ⟨gy, A_V x⟩  (the adjoint in the weight)
/// Layout NCHW; weight (Cout, Cin, kh, kw). Batches are processed in groups whose column
/// buffer stays under a fixed budget; the grouping depends only on shapes, so results are the
/// same for any thread count.

/// Stride and zero padding of a convolution.
public struct ConvSpec: Equatable, Sendable {
  public var stride: (Int, Int)
  public var padding: (Int, Int)
  public init(stride: (Int, Int) = (1, 1), padding: (Int, Int) = (0, 0)) { self.stride = stride; self.padding = padding }
  public static func == (a: ConvSpec, b: ConvSpec) -> Bool { a.stride == b.stride && a.padding == b.padding }
}

/// Sizes of one convolution: input (n, cin, h, w), weight (cout, cin, kh, kw), output (ho, wo).
struct ConvGeometry {
  let n, cin, h, w, cout, kh, kw, sh, sw, ph, pw, ho, wo: Int
  var ck: Int { cin * kh * kw }
  /// Multiply-adds ×2 of one pass (forward, input gradient or weight gradient), direct algorithm.
  var flops: Int { 2 &* n &* cout &* ck &* howo }
  var hw: Int { h * w }
  var howo: Int { ho * wo }

  init(input: [Int], weight: [Int], spec: ConvSpec, output: (Int, Int)? = nil) {
    n = input[0]; cin = input[1]; h = input[2]; w = input[3]
    cout = weight[0]; kh = weight[2]; kw = weight[3]
    (sh, sw) = spec.stride
    (ph, pw) = spec.padding
    ho = output?.0 ?? (h + 2 * ph - kh) / sh + 1
    wo = output?.1 ?? (w + 2 * pw - kw) / sw + 1
  }

  /// Images per GEMM: as many as fit a 32 MiB column buffer.
  func groupSize(_ elementSize: Int) -> Int {
    let budget = (32 << 20) / elementSize
    return Swift.max(1, Swift.min(n, budget / Swift.max(1, ck * howo)))
  }
}

/// Scratch buffers for column matrices and Winograd transforms. They come from the storage
/// allocator's segments, so a network whose layers need different sizes reuses pages already
/// touched instead of re-faulting fresh ones (a 4-slot private pool thrashed on such networks).
enum Scratch {
  static func with<T, R>(_: T.Type, count: Int, _ body: (UnsafeMutablePointer<T>) throws -> R) throws -> R {
    let size = StorageAllocator.sizeClass(Swift.max(64, count * MemoryLayout<T>.stride))
    guard let block = StorageAllocator.allocate(size) else {
      throw TensorError("out of memory allocating a \(Storage.humanBytes(size)) convolution buffer\(StorageAllocator.limitNote())")
    }
    defer { StorageAllocator.release(block.pointer, block.size) }
    return try body(block.pointer.bindMemory(to: T.self, capacity: count))
  }
}

/// cols[(c·kh + i)·kw + j][ni·howo + oh·wo + ow] = x[n0+ni, c, oh·sh - ph + i, ow·sw - pw + j]
/// (0 outside the image), for images n0..<n0+gc. Row length gc·howo.
func im2col<T: TensorScalar>(_ x: UnsafePointer<T>, _ g: ConvGeometry, _ n0: Int, _ gc: Int, _ cols: UnsafeMutablePointer<T>) {
  let rowLen = gc * g.howo
  Parallel.forChunks(gc * g.cin, grain: 1) { r in
    for task in r {
      let ni = task / g.cin, c = task % g.cin
      let src = x + ((n0 + ni) * g.cin + c) * g.hw
      for i in 0..<g.kh {
        for j in 0..<g.kw {
          let dst = cols + ((c * g.kh + i) * g.kw + j) * rowLen + ni * g.howo
          for oh in 0..<g.ho {
            let ih = oh * g.sh - g.ph + i
            let d = dst + oh * g.wo
            if ih < 0 || ih >= g.h { d.update(repeating: 0, count: g.wo); continue }
            let srow = src + ih * g.w
            if g.sw == 1 {
              let lo = Swift.min(g.wo, Swift.max(0, g.pw - j)), hi = Swift.max(lo, Swift.min(g.wo, g.w + g.pw - j))
              if lo > 0 { d.update(repeating: 0, count: lo) }
              if hi > lo { d.advanced(by: lo).update(from: srow + (lo - g.pw + j), count: hi - lo) }
              if hi < g.wo { d.advanced(by: hi).update(repeating: 0, count: g.wo - hi) }
            } else {
              for ow in 0..<g.wo {
                let iw = ow * g.sw - g.pw + j
                d[ow] = iw >= 0 && iw < g.w ? srow[iw] : 0
              }
            }
          }
        }
      }
    }
  }
}

/// The adjoint of im2col: dx[n0+ni, c, ih, iw] += every column entry that im2col read from it.
func col2im<T: TensorScalar>(_ cols: UnsafePointer<T>, _ g: ConvGeometry, _ n0: Int, _ gc: Int, _ dx: UnsafeMutablePointer<T>) {
  let rowLen = gc * g.howo
  Parallel.forChunks(gc * g.cin, grain: 1) { r in
    for task in r {
      let ni = task / g.cin, c = task % g.cin
      let dst = dx + ((n0 + ni) * g.cin + c) * g.hw
      for i in 0..<g.kh {
        for j in 0..<g.kw {
          let src = cols + ((c * g.kh + i) * g.kw + j) * rowLen + ni * g.howo
          for oh in 0..<g.ho {
            let ih = oh * g.sh - g.ph + i
            if ih < 0 || ih >= g.h { continue }
            let drow = dst + ih * g.w, s = src + oh * g.wo
            if g.sw == 1 {
              let lo = Swift.min(g.wo, Swift.max(0, g.pw - j)), hi = Swift.max(lo, Swift.min(g.wo, g.w + g.pw - j))
              let d = drow + (lo - g.pw + j)
              for ow in lo..<hi { d[ow - lo] += s[ow] }
            } else {
              for ow in 0..<g.wo {
                let iw = ow * g.sw - g.pw + j
                if iw >= 0 && iw < g.w { drow[iw] += s[ow] }
              }
            }
          }
        }
      }
    }
  }
}

/// Copies rows between (gc, C, L) image-major and (C, gc·L) channel-major layouts.
func regroup<T: TensorScalar>(_ src: UnsafePointer<T>, _ dst: UnsafeMutablePointer<T>, gc: Int, C: Int, L: Int, toChannelMajor: Bool) {
  Parallel.forChunks(gc * C, grain: Swift.max(1, Parallel.elementGrain / Swift.max(1, L))) { r in
    for t in r {
      let ni = t / C, c = t % C
      let im = ni * C * L + c * L, cm = c * gc * L + ni * L
      if toChannelMajor { (dst + cm).update(from: src + im, count: L) } else { (dst + im).update(from: src + cm, count: L) }
    }
  }
}

/// Direct 3x3 convolution (CKernels) for float32 layers with few output channels (a
/// generator's RGB or gray output). There im2col's GEMM is a matrix-vector product in disguise
/// and Winograd's transforms cost more than they save: a 32->1 output layer ran at 2 GFLOP/s,
/// 5.4 ms forward and backward now against 29 (PyTorch: 8.3). With few input channels and
/// many outputs (3->256) im2col's GEMM is efficient and stays (measured 111 ms vs 311 direct).
enum DirectConv {
  static func applies<T>(_ g: ConvGeometry, _: T.Type) -> Bool {
    enabled && T.self == Float.self && g.kh == 3 && g.kw == 3 && g.sh == 1 && g.sw == 1 && g.ph == 1 && g.pw == 1
      && g.ho == g.h && g.wo == g.w && g.cout <= maxThinChannels
  }
  nonisolated(unsafe) static var enabled = true
  nonisolated(unsafe) static var maxThinChannels = Tunables.directMaxChannels.value

  /// y = conv(x, w) (flip: w read as the input-gradient kernel; then C and K swap roles).
  static func forward(_ x: UnsafePointer<Float>, _ w: UnsafePointer<Float>, N: Int, C: Int, K: Int, H: Int, W: Int, flip: Bool,
                      _ y: UnsafeMutablePointer<Float>) {
    _ = SIMDKernels.selected
    Parallel.forChunks(N * K, grain: 1) { r in
      lg_conv3x3_direct(x, w, Int32(N), Int32(C), Int32(K), Int32(H), Int32(W), flip ? 1 : 0, r.lowerBound, r.upperBound, y)
    }
  }

  static func weight(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, N: Int, C: Int, K: Int, H: Int, W: Int,
                     _ dw: UnsafeMutablePointer<Float>) {
    _ = SIMDKernels.selected
    Parallel.forChunks(K * C, grain: 1) { r in
      lg_conv3x3_direct_weight(x, dy, Int32(N), Int32(C), Int32(K), Int32(H), Int32(W), r.lowerBound, r.upperBound, dw)
    }
  }

  @inline(__always) static func f32<T>(_ p: UnsafePointer<T>) -> UnsafePointer<Float> { UnsafeRawPointer(p).assumingMemoryBound(to: Float.self) }
  @inline(__always) static func f32<T>(_ p: UnsafeMutablePointer<T>) -> UnsafeMutablePointer<Float> { UnsafeMutableRawPointer(p).assumingMemoryBound(to: Float.self) }
}

/// 1×1 convolutions with stride 1 and no padding (BigGAN's learnable shortcuts, PGGAN's toRGB):
/// each image is already its own column matrix, so no im2col copy and no regrouping. Per image n,
/// with x_n (C×HW), w (K×C), y_n (K×HW):
///   forward         y_n  = w · x_n
///   input gradient  dx_n = wᵀ · dy_n
///   weight gradient dw   = Σ_n dy_n · x_nᵀ, summed in fixed chunks of images, then the chunks in order
/// The per-image GEMMs run concurrently, each single-threaded (at BigGAN's shortcut sizes one
/// GEMM is too small to thread: 32 channels at 16x16 ran 3.3 ms through im2col, PyTorch 0.7).
enum PointwiseConv {
  static func applies(_ g: ConvGeometry) -> Bool {
    g.kh == 1 && g.kw == 1 && g.sh == 1 && g.sw == 1 && g.ph == 0 && g.pw == 0 && g.ho == g.h && g.wo == g.w
  }
  /// Images per partial sum of the weight gradient (a shape-only split: the same bits for any thread count).
  static let imagesPerChunk = 8

  static func forward<T: TensorScalar>(_ x: UnsafePointer<T>, _ w: UnsafePointer<T>, _ g: ConvGeometry, _ y: UnsafeMutablePointer<T>) {
    let hw = g.hw
    Parallel.independentBLAS(g.n) { n in
      gemmCall(T.self, transA: false, transB: false, M: g.cout, N: hw, K: g.cin, alpha: 1, A: w, lda: g.cin,
               B: x + n * g.cin * hw, ldb: hw, beta: 0, C: y + n * g.cout * hw, ldc: hw)
    }
  }

  static func backwardInput<T: TensorScalar>(_ dy: UnsafePointer<T>, _ w: UnsafePointer<T>, _ g: ConvGeometry,
                                             _ dx: UnsafeMutablePointer<T>) {
    let hw = g.hw
    Parallel.independentBLAS(g.n) { n in
      gemmCall(T.self, transA: true, transB: false, M: g.cin, N: hw, K: g.cout, alpha: 1, A: w, lda: g.cin,
               B: dy + n * g.cout * hw, ldb: hw, beta: 0, C: dx + n * g.cin * hw, ldc: hw)
    }
  }

  static func backwardWeight<T: TensorScalar>(_ x: UnsafePointer<T>, _ dy: UnsafePointer<T>, _ g: ConvGeometry,
                                              _ dw: UnsafeMutablePointer<T>) throws {
    let hw = g.hw, kc = g.cout * g.cin, chunks = (g.n + imagesPerChunk - 1) / imagesPerChunk
    try Scratch.with(T.self, count: chunks * kc) { parts in
      Parallel.independentBLAS(chunks) { chunk in
        let first = chunk * imagesPerChunk
        for n in first..<Swift.min(g.n, first + imagesPerChunk) {
          gemmCall(T.self, transA: false, transB: true, M: g.cout, N: g.cin, K: hw, alpha: 1, A: dy + n * g.cout * hw, lda: hw,
                   B: x + n * g.cin * hw, ldb: hw, beta: n == first ? 0 : 1, C: parts + chunk * kc, ldc: g.cin)
        }
      }
      sumInOrder(parts, count: chunks, length: kc, into: dw)
    }
  }
}

/// into = parts[0] + parts[1] + ... + parts[count-1] (each `length` long), added in that order:
/// partial sums combined the same way whatever thread computed them.
func sumInOrder<T: TensorScalar>(_ parts: UnsafePointer<T>, count: Int, length: Int, into: UnsafeMutablePointer<T>) {
  into.update(from: parts, count: length)
  for b in 1..<Swift.max(1, count) {
    let p = parts + b * length
    for i in 0..<length { into[i] += p[i] }
  }
}

/// y = conv(x, w): x (n, cin, h, w) contiguous, w (cout, ck) contiguous.
func convForwardKernel<T: TensorScalar>(_: T.Type, _ x: Tensor, _ w: Tensor, _ g: ConvGeometry, _ y: Tensor) throws {
  let px = UnsafePointer(x.pointer(T.self)), pw = UnsafePointer(w.pointer(T.self)), py = y.pointer(T.self)
  if DirectConv.applies(g, T.self) {
    return DirectConv.forward(DirectConv.f32(px), DirectConv.f32(pw), N: g.n, C: g.cin, K: g.cout, H: g.h, W: g.w, flip: false, DirectConv.f32(py))
  }
  if Winograd.applies(g) {
    return try Winograd.forward(T.self, x: px, w: pw, N: g.n, C: g.cin, K: g.cout, H: g.h, W: g.w, flip: false, y: py)
  }
  if PointwiseConv.applies(g) { return PointwiseConv.forward(px, pw, g, py) }
  let gs = g.groupSize(MemoryLayout<T>.stride)
  try Scratch.with(T.self, count: g.ck * gs * g.howo + (gs > 1 ? g.cout * gs * g.howo : 0)) { buf in
    let cols = buf, tmp = buf + g.ck * gs * g.howo
    for n0 in stride(from: 0, to: g.n, by: gs) {
      let gc = Swift.min(gs, g.n - n0)
      im2col(px, g, n0, gc, cols)
      if gc == 1 {
        gemm(T.self, transA: false, transB: false, M: g.cout, N: g.howo, K: g.ck, alpha: 1, A: pw, lda: g.ck,
             B: cols, ldb: g.howo, beta: 0, C: py + n0 * g.cout * g.howo, ldc: g.howo)
      } else {
        gemm(T.self, transA: false, transB: false, M: g.cout, N: gc * g.howo, K: g.ck, alpha: 1, A: pw, lda: g.ck,
             B: cols, ldb: gc * g.howo, beta: 0, C: tmp, ldc: gc * g.howo)
        regroup(tmp, py + n0 * g.cout * g.howo, gc: gc, C: g.cout, L: g.howo, toChannelMajor: false)
      }
    }
  }
}

/// dx = convᵀ(dy, w): dy (n, cout, ho, wo), w (cout, ck); dx (n, cin, h, w), every element written.
func convBackwardInputKernel<T: TensorScalar>(_: T.Type, _ dy: Tensor, _ w: Tensor, _ g: ConvGeometry, _ dx: Tensor) throws {
  let pdy = UnsafePointer(dy.pointer(T.self)), pw = UnsafePointer(w.pointer(T.self)), pdx = dx.pointer(T.self)
  if DirectConv.applies(g, T.self) {  // the adjoint: the forward with the kernel flipped and channels swapped
    return DirectConv.forward(DirectConv.f32(pdy), DirectConv.f32(pw), N: g.n, C: g.cout, K: g.cin, H: g.h, W: g.w, flip: true, DirectConv.f32(pdx))
  }
  if Winograd.applies(g) {  // the input gradient is the forward with the kernel flipped
    return try Winograd.forward(T.self, x: pdy, w: pw, N: g.n, C: g.cout, K: g.cin, H: g.h, W: g.w, flip: true, y: pdx)
  }
  if PointwiseConv.applies(g) { return PointwiseConv.backwardInput(pdy, pw, g, pdx) }
  pdx.update(repeating: 0, count: g.n * g.cin * g.hw)   // col2im adds each column into its pixels
  let gs = g.groupSize(MemoryLayout<T>.stride)
  try Scratch.with(T.self, count: g.ck * gs * g.howo + (gs > 1 ? g.cout * gs * g.howo : 0)) { buf in
    let cols = buf, tmp = buf + g.ck * gs * g.howo
    for n0 in stride(from: 0, to: g.n, by: gs) {
      let gc = Swift.min(gs, g.n - n0)
      var b = pdy + n0 * g.cout * g.howo
      if gc > 1 {
        regroup(b, tmp, gc: gc, C: g.cout, L: g.howo, toChannelMajor: true)
        b = UnsafePointer(tmp)
      }
      gemm(T.self, transA: true, transB: false, M: g.ck, N: gc * g.howo, K: g.cout, alpha: 1, A: pw, lda: g.ck,
           B: b, ldb: gc * g.howo, beta: 0, C: cols, ldc: gc * g.howo)
      col2im(cols, g, n0, gc, pdx)
    }
  }
}

/// dw = Σ_n dy_n · im2col(x_n)ᵀ: x (n, cin, h, w), dy (n, cout, ho, wo); dw (cout, ck).
func convBackwardWeightKernel<T: TensorScalar>(_: T.Type, _ x: Tensor, _ dy: Tensor, _ g: ConvGeometry, _ dw: Tensor) throws {
  let px = UnsafePointer(x.pointer(T.self)), pdy = UnsafePointer(dy.pointer(T.self)), pdw = dw.pointer(T.self)
  if DirectConv.applies(g, T.self) {
    return DirectConv.weight(DirectConv.f32(px), DirectConv.f32(pdy), N: g.n, C: g.cin, K: g.cout, H: g.h, W: g.w, DirectConv.f32(pdw))
  }
  if Winograd.applies(g) {
    return try Winograd.backwardWeight(T.self, x: px, dy: pdy, N: g.n, C: g.cin, K: g.cout, H: g.h, W: g.w, dw: pdw)
  }
  if PointwiseConv.applies(g) { return try PointwiseConv.backwardWeight(px, pdy, g, pdw) }
  let gs = g.groupSize(MemoryLayout<T>.stride)
  try Scratch.with(T.self, count: g.ck * gs * g.howo + (gs > 1 ? g.cout * gs * g.howo : 0)) { buf in
    let cols = buf, tmp = buf + g.ck * gs * g.howo
    for n0 in stride(from: 0, to: g.n, by: gs) {
      let gc = Swift.min(gs, g.n - n0)
      im2col(px, g, n0, gc, cols)
      var a = pdy + n0 * g.cout * g.howo
      if gc > 1 {
        regroup(a, tmp, gc: gc, C: g.cout, L: g.howo, toChannelMajor: true)
        a = UnsafePointer(tmp)
      }
      gemm(T.self, transA: false, transB: true, M: g.cout, N: g.ck, K: gc * g.howo, alpha: 1, A: a, lda: gc * g.howo,
           B: cols, ldb: gc * g.howo, beta: n0 == 0 ? 0 : 1, C: pdw, ldc: g.ck)
    }
  }
}

extension Tensor {
  func checkConv(_ x: Tensor, _ w: Tensor, _ spec: ConvSpec, _ op: String) throws {
    guard x.rank == 4 else { throw TensorError("\(op): input must be 4-D (N, C, H, W), got shape \(formatShape(x.shape))") }
    guard w.rank == 4 else { throw TensorError("\(op): weight must be 4-D (Cout, Cin, kH, kW), got shape \(formatShape(w.shape))") }
    guard spec.stride.0 > 0, spec.stride.1 > 0 else { throw TensorError("\(op): stride must be positive, got (\(spec.stride.0), \(spec.stride.1))") }
    guard spec.padding.0 >= 0, spec.padding.1 >= 0 else { throw TensorError("\(op): padding must be >= 0, got (\(spec.padding.0), \(spec.padding.1))") }
    guard w.shape[2] > 0, w.shape[3] > 0 else { throw TensorError("\(op): kernel size must be positive, weight \(formatShape(w.shape))") }
    // Padded sizes and transposed output sizes below are computed from these: bound them.
    for (v, name) in [(spec.stride.0, "stride"), (spec.stride.1, "stride"), (spec.padding.0, "padding"), (spec.padding.1, "padding")] where v > 1 << 30 {
      throw TensorError("\(op): \(name) \(v) is too large")
    }
    _ = try Checked.add(x.shape[2], 2 * spec.padding.0, op)
    _ = try Checked.add(x.shape[3], 2 * spec.padding.1, op)
  }

  /// Cross-correlation of x (N, Cin, H, W) with w (Cout, Cin, kH, kW), plus an optional bias
  /// (Cout). Reference: torch.nn.functional.conv2d.
  public static func conv2d(_ x: Tensor, _ w: Tensor, bias: Tensor? = nil, spec: ConvSpec = ConvSpec()) throws -> Tensor {
    try x.checkConv(x, w, spec, "conv2d")
    guard x.shape[1] == w.shape[1] else {
      throw TensorError("conv2d: input has \(x.shape[1]) channels but weight expects \(w.shape[1]) (input \(formatShape(x.shape)), weight \(formatShape(w.shape)))")
    }
    let g = ConvGeometry(input: x.shape, weight: w.shape, spec: spec)
    guard x.shape[2] + 2 * spec.padding.0 >= w.shape[2], x.shape[3] + 2 * spec.padding.1 >= w.shape[3] else {
      throw TensorError("conv2d: kernel \(w.shape[2])x\(w.shape[3]) is larger than the padded input \(x.shape[2] + 2 * spec.padding.0)x\(x.shape[3] + 2 * spec.padding.1) (input \(formatShape(x.shape)))")
    }
    var y = try convCore(x, w, g, spec)
    if let bias {
      guard bias.shape == [w.shape[0]] else {
        throw TensorError("conv2d: bias has shape \(formatShape(bias.shape)) but weight has \(w.shape[0]) output channels")
      }
      y = try y.addIntoFresh(bias.reshape([1, w.shape[0], 1, 1]))
    }
    return y
  }

  static func convCore(_ x0: Tensor, _ w0: Tensor, _ g: ConvGeometry, _ spec: ConvSpec) throws -> Tensor {
    let dt = DType.promote(x0.dtype, w0.dtype)
    let x = try x0.to(dt), w = try w0.to(dt)
    let xc = try x.contiguousData(), wc = try w.contiguousData()
    let y = try Tensor.empty([g.n, g.cout, g.ho, g.wo], dtype: dt)
    FlopCounter.add(g.flops)
    if y.numel > 0 {
      switch dt {
      case .float32: try convForwardKernel(Float.self, xc, wc, g, y)
      case .float64: try convForwardKernel(Double.self, xc, wc, g, y)
      }
    }
    return record("conv2d", y, [x, w]) { [kx = SavedOperand(x, if: w.requiresGrad), kw = saved(w, if: x.requiresGrad)] gy, needs in
      // dy/dx: the adjoint convolution; dy/dw: correlate the input with the output gradient
      [needs[0] ? try Tensor.convTranspose2dCore(gy, kw!, spec, outputSize: (g.h, g.w)) : nil,
       needs[1] ? try Tensor.conv2dWeight(kx!.value(), gy, spec, kernel: (g.kh, g.kw)) : nil]
    }
  }

  /// The transpose (adjoint) of conv2d in its input: x (N, Cin, H, W) with weight
  /// (Cin, Cout, kH, kW) gives (N, Cout, Hout, Wout), Hout = (H-1)·stride - 2·padding + kH +
  /// outputPadding. Reference: torch.nn.functional.conv_transpose2d.
  public static func convTranspose2d(_ x: Tensor, _ w: Tensor, bias: Tensor? = nil, spec: ConvSpec = ConvSpec(),
                                     outputPadding: (Int, Int) = (0, 0)) throws -> Tensor {
    try x.checkConv(x, w, spec, "convTranspose2d")
    guard x.shape[1] == w.shape[0] else {
      throw TensorError("convTranspose2d: input has \(x.shape[1]) channels but weight expects \(w.shape[0]) (input \(formatShape(x.shape)), weight \(formatShape(w.shape)))")
    }
    guard outputPadding.0 >= 0, outputPadding.1 >= 0, outputPadding.0 < Swift.max(spec.stride.0, 1), outputPadding.1 < Swift.max(spec.stride.1, 1) else {
      throw TensorError("convTranspose2d: outputPadding must be >= 0 and smaller than the stride, got (\(outputPadding.0), \(outputPadding.1))")
    }
    func outputSize(_ n: Int, _ s: Int, _ p: Int, _ k: Int, _ op: Int) throws -> Int {
      let span = try Checked.mul(Swift.max(n - 1, 0), s, "convTranspose2d: output size")
      return try Checked.add(Checked.add(span, k, "convTranspose2d: output size"), op, "convTranspose2d: output size") - 2 * p
    }
    guard x.shape[2] > 0, x.shape[3] > 0 else { throw TensorError("convTranspose2d: input height and width must be positive, got \(formatShape(x.shape))") }
    let ho = try outputSize(x.shape[2], spec.stride.0, spec.padding.0, w.shape[2], outputPadding.0)
    let wo = try outputSize(x.shape[3], spec.stride.1, spec.padding.1, w.shape[3], outputPadding.1)
    guard ho > 0, wo > 0 else {
      throw TensorError("convTranspose2d: output size \(ho)x\(wo) is not positive (input \(formatShape(x.shape)), weight \(formatShape(w.shape)))")
    }
    var y = try convTranspose2dCore(x, w, spec, outputSize: (ho, wo))
    if let bias {
      guard bias.shape == [w.shape[1]] else {
        throw TensorError("convTranspose2d: bias has shape \(formatShape(bias.shape)) but weight has \(w.shape[1]) output channels")
      }
      y = try y.addIntoFresh(bias.reshape([1, w.shape[1], 1, 1]))
    }
    return y
  }

  /// convTranspose2d without argument checks: y is a conv output (N, Cout, ho, wo), w the conv
  /// weight (Cout, Cin, kH, kW); the result has the conv input's shape (N, Cin, H, W).
  static func convTranspose2dCore(_ y0: Tensor, _ w0: Tensor, _ spec: ConvSpec, outputSize: (Int, Int)) throws -> Tensor {
    let dt = DType.promote(y0.dtype, w0.dtype)
    let y = try y0.to(dt), w = try w0.to(dt)
    let g = ConvGeometry(input: [y.shape[0], w.shape[1], outputSize.0, outputSize.1], weight: w.shape, spec: spec)
    guard g.ho == y.shape[2], g.wo == y.shape[3] else {
      throw TensorError("convTranspose2d: input {\(y.shape[2]),\(y.shape[3])} does not match output size {\(outputSize.0),\(outputSize.1)} for this kernel, stride and padding")
    }
    // The kernel writes every element of x (it zeroes what it accumulates into); with no y it
    // does not run, and x is zero.
    let shape = [g.n, g.cin, g.h, g.w]
    let x = y.numel > 0 ? try Tensor.empty(shape, dtype: dt) : try Tensor.zeros(shape, dtype: dt)
    FlopCounter.add(g.flops)
    if x.numel > 0 && y.numel > 0 {
      let yc = try y.contiguousData(), wc = try w.contiguousData()
      switch dt {
      case .float32: try convBackwardInputKernel(Float.self, yc, wc, g, x)
      case .float64: try convBackwardInputKernel(Double.self, yc, wc, g, x)
      }
    }
    return record("convTranspose2d", x, [y, w]) { [ky = saved(y, if: w.requiresGrad), kw = saved(w, if: y.requiresGrad)] gx, needs in
      // the adjoint's adjoint is the convolution; its weight gradient correlates gx with y
      [needs[0] ? try Tensor.convCore(gx, kw!, g, spec) : nil,
       needs[1] ? try Tensor.conv2dWeight(gx, ky!, spec, kernel: (g.kh, g.kw)) : nil]
    }
  }

  /// The weight gradient of conv2d: Σ over the batch of gy ⋆ x, shaped (Cout, Cin, kH, kW).
  /// Linear in x and in gy; its pullbacks are conv2d and convTranspose2d.
  static func conv2dWeight(_ x0: Tensor, _ gy0: Tensor, _ spec: ConvSpec, kernel: (Int, Int)) throws -> Tensor {
    let dt = DType.promote(x0.dtype, gy0.dtype)
    let x = try x0.to(dt), gy = try gy0.to(dt)
    let wshape = [gy.shape[1], x.shape[1], kernel.0, kernel.1]
    let g = ConvGeometry(input: x.shape, weight: wshape, spec: spec)
    guard g.ho == gy.shape[2], g.wo == gy.shape[3], g.n == gy.shape[0] else {
      throw TensorError("conv2dWeight: output gradient \(formatShape(gy.shape)) does not match input \(formatShape(x.shape))")
    }
    let dw = try Tensor.zeros(wshape, dtype: dt)
    FlopCounter.add(g.flops)
    if g.n > 0 && g.howo > 0 {
      let xc = try x.contiguousData(), gc = try gy.contiguousData()
      switch dt {
      case .float32: try convBackwardWeightKernel(Float.self, xc, gc, g, dw)
      case .float64: try convBackwardWeightKernel(Double.self, xc, gc, g, dw)
      }
    }
    return record("conv2dWeight", dw, [x, gy]) { [kx = SavedOperand(x, if: gy.requiresGrad), kg = saved(gy, if: x.requiresGrad)] gw, needs in
      // ⟨dW(x, gy), V⟩ = ⟨gy, conv(x, V)⟩: d/dx = convᵀ(gy, V), d/dgy = conv(x, V)
      [needs[0] ? try Tensor.convTranspose2dCore(kg!, gw, spec, outputSize: (g.h, g.w)) : nil,
       needs[1] ? try Tensor.convCore(kx!.value(), gw, g, spec) : nil]
    }
  }
}
