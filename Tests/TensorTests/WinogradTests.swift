import CKernels
import Host
import Tensor
import XCTest

/// Winograd (F(4×4,3×3) and F(2×2,3×3)) and the direct kernel against im2col + GEMM, for all three convolution
/// passes, on odd and even sizes, in float64 (near-exact agreement) and float32 (a few ulps),
/// with every build of luagan's vector kernels this CPU can run (baseline, AVX2, AVX-512).
final class WinogradTests: XCTestCase {
  func compare(dtype: DType, n: Int, c: Int, k: Int, h: Int, w: Int, tol: Double) throws {
    let g = Generator(seed: 11)
    let x = try Tensor.randn([n, c, h, w], dtype: dtype, generator: g)
    let wt = try Tensor.randn([k, c, 3, 3], dtype: dtype, generator: g)
    let gy = try Tensor.randn([n, k, h, w], dtype: dtype, generator: g)
    func passes() throws -> [[Double]] {
      let xv = x.detach(), wv = wt.detach()
      xv.requiresGrad = true; wv.requiresGrad = true
      let y = try Tensor.conv2d(xv, wv, spec: ConvSpec(padding: (1, 1)))
      try y.backward(gy)
      return [try y.toArray(), try xv.grad!.toArray(), try wv.grad!.toArray()]
    }
    let saved = (ConvolutionSettings.winograd, ConvolutionSettings.direct)
    defer { (ConvolutionSettings.winograd, ConvolutionSettings.direct) = saved }
    ConvolutionSettings.winogradMinChannels = 1
    ConvolutionSettings.winogradMinTiles = 1   // tiny images too: their borders are the edge cases
    defer { ConvolutionSettings.winogradMinChannels = 16; ConvolutionSettings.winogradMinTiles = Tunables.winogradMinTiles.value }
    (ConvolutionSettings.winograd, ConvolutionSettings.direct) = (false, false)
    let reference = try passes()
    (ConvolutionSettings.winograd, ConvolutionSettings.direct) = (true, true)
    for level in [1, 3, 4] {
      let fast = try SIMDKernels.with(level: level) { try passes() }
      for (name, (a, b)) in zip(["output", "input grad", "weight grad"], zip(reference, fast)) {
        let scale = a.map { abs($0) }.max()!
        let err = zip(a, b).map { abs($0 - $1) }.max()!
        XCTAssertLessThanOrEqual(err / scale, tol, "\(dtype) \(name) n\(n) c\(c) k\(k) \(h)x\(w) kernels \(level): max error \(err) of \(scale)")
      }
    }
  }

  func testMatchesIm2colFloat64() throws {
    try compare(dtype: .float64, n: 2, c: 3, k: 4, h: 5, w: 7, tol: 1e-13)
    try compare(dtype: .float64, n: 1, c: 5, k: 2, h: 4, w: 4, tol: 1e-13)
    try compare(dtype: .float64, n: 3, c: 2, k: 3, h: 1, w: 3, tol: 1e-13)
  }

  /// float32 takes F(4×4, 3×3) (6×6 tiles; its transforms' constants reach 8 and 1/24, so a few
  /// times F(2×2)'s error: 6.5e-6 of the largest entry at worst here) unless told F(2×2, 3×3).
  /// 30×29 at batch 3 is 192 tiles, more than one of the kernels' 128-tile chunks; at 263 wide
  /// a chunk ends in the middle of a tile row.
  func testMatchesIm2colFloat32() throws {
    defer { ConvolutionSettings.winogradTile = 4 }
    for (tile, tol) in [(4, 1e-5), (2, 2e-6)] {
      ConvolutionSettings.winogradTile = tile
      try compare(dtype: .float32, n: 4, c: 64, k: 32, h: 8, w: 8, tol: tol)
      try compare(dtype: .float32, n: 2, c: 32, k: 48, h: 9, w: 6, tol: tol)
      try compare(dtype: .float32, n: 3, c: 16, k: 16, h: 1, w: 5, tol: tol)
      // one tile a row, crossing both borders (4, 2, 1 wide); 10 wide: a last tile 2 columns out;
      // 52 wide: 11 tiles inside the row, a run of 8 and one moved back over 5 of them
      for (h, w) in [(4, 4), (7, 2), (2, 1), (5, 10), (3, 52)] { try compare(dtype: .float32, n: 2, c: 16, k: 16, h: h, w: w, tol: tol) }
      try compare(dtype: .float32, n: 3, c: 16, k: 24, h: 30, w: 29, tol: tol)
      try compare(dtype: .float32, n: 1, c: 16, k: 8, h: 6, w: 263, tol: tol)   // 66 tiles a row: chunks end mid-row
      try compare(dtype: .float32, n: 2, c: 72, k: 80, h: 10, w: 9, tol: tol)   // wider than SmallBlocks: the blocked path
    }
  }

  /// The direct kernel for few output channels (a generator's gray or RGB output layer).
  func testDirectMatchesIm2colFloat32() throws {
    try compare(dtype: .float32, n: 3, c: 32, k: 1, h: 8, w: 8, tol: 2e-6)
    try compare(dtype: .float32, n: 2, c: 5, k: 3, h: 7, w: 1, tol: 2e-6)
    try compare(dtype: .float32, n: 2, c: 1, k: 4, h: 2, w: 9, tol: 2e-6)
  }

  /// 1×1 convolutions (stride 1, no padding) take per-image GEMMs; the same 1×1 kernel with
  /// padding 1, cropped, takes im2col and must agree in all three passes. Batch 19 is three of
  /// the weight gradient's 8-image partial sums.
  func testPointwiseMatchesPaddedIm2col() throws {
    for (dtype, tol) in [(DType.float64, 1e-13), (.float32, 2e-6)] {
      let g = Generator(seed: 3)
      let (n, c, k, h, w) = (19, 5, 7, 6, 3)
      let x = try Tensor.randn([n, c, h, w], dtype: dtype, generator: g)
      let wt = try Tensor.randn([k, c, 1, 1], dtype: dtype, generator: g)
      let gy = try Tensor.randn([n, k, h, w], dtype: dtype, generator: g)
      func passes(padding: Int) throws -> [[Double]] {
        let xv = x.detach(), wv = wt.detach()
        xv.requiresGrad = true; wv.requiresGrad = true
        let y = try Tensor.conv2d(xv, wv, spec: ConvSpec(padding: (padding, padding)))
          .narrow(dim: 2, start: padding, length: h).narrow(dim: 3, start: padding, length: w)
        try y.backward(gy)
        return [try y.toArray(), try xv.grad!.toArray(), try wv.grad!.toArray()]
      }
      for (name, (a, b)) in zip(["output", "input grad", "weight grad"], zip(try passes(padding: 1), try passes(padding: 0))) {
        let scale = a.map { abs($0) }.max()!, err = zip(a, b).map { abs($0 - $1) }.max()!
        XCTAssertLessThanOrEqual(err / scale, tol, "\(dtype) 1x1 \(name): max error \(err) of \(scale)")
      }
    }
  }

  /// The small-layer Winograd products' own GEMM (C = A·B, row-major, strided) against a
  /// float64 sum, with sizes off every register tile (edges in both directions), at every ISA
  /// level this CPU runs; C's padding columns and the row after it stay untouched.
  func testSmallGemmKernel() {
    let g = Generator(seed: 3)
    let shapes = [(64, 128, 64), (13, 37, 29), (1, 1, 1), (8, 33, 17), (7, 5, 100), (64, 64, 256), (3, 200, 5), (17, 31, 1),
                  (32, 140, 32), (9, 70, 0)]
    for (M, N, K) in shapes {
      let lda = K + 3, ldb = N + 5, ldc = N + 2
      let a = (0..<(M * lda)).map { _ in Float(g.normal()) }
      let b = (0..<(K * ldb)).map { _ in Float(g.normal()) }
      for level in [1, 3, 4] where level <= CPU.current.isaLevel {
        var c = [Float](repeating: 7, count: (M + 1) * ldc)
        SIMDKernels.with(level: level) { lg_sgemm_nn(a, lda, b, ldb, &c, ldc, Int32(M), Int32(N), Int32(K)) }
        var worst = 0.0
        for i in 0..<M {
          for j in 0..<ldc {
            guard j < N else { XCTAssertEqual(c[i * ldc + j], 7, "padding written"); continue }
            var exact = 0.0, bound = 0.0
            for k in 0..<K {
              let p = Double(a[i * lda + k]) * Double(b[k * ldb + j])
              exact += p; bound += abs(p)
            }
            worst = max(worst, abs(Double(c[i * ldc + j]) - exact) / bound)
          }
        }
        XCTAssertLessThan(worst, Double(K + 1) * 1.2e-7, "A·B \(M)x\(N)x\(K) at level \(level)")
        XCTAssertEqual(c[(M * ldc)...], ArraySlice(repeating: 7, count: ldc), "written past C's last row")
      }
    }
  }

  /// The packed GEMM every float32 product takes on an AVX-512 CPU (lg_sgemm: C = alpha·op(A)·op(B)
  /// + beta·C) against a float64 sum, for all four transposes, sizes off every block and
  /// register tile (M off 8 and the 128-row block, N off the 32-wide sliver, one vector or less,
  /// past the 512-column panel, K past the 256 block), strided operands, and alpha, beta: C's
  /// padding stays untouched and, with beta 0, C is not read (NaN there stays out of the result).
  /// Without AVX-512 it declines (returns 1) and the BLAS runs.
  func testPackedGemmKernel() {
    let g = Generator(seed: 5)
    let shapes = [(1, 1, 1), (8, 32, 256), (13, 37, 29), (7, 16, 300), (130, 100, 257), (17, 530, 40), (64, 112, 520), (9, 15, 3),
                  (129, 33, 1)]
    for (M, N, K) in shapes {
      for (transA, transB) in [(false, false), (true, false), (false, true), (true, true)] {
        for (alpha, beta) in [(Float(1), Float(0)), (0.5, 1), (1, -0.25)] {
          let lda = (transA ? M : K) + 3, ldb = (transB ? K : N) + 5, ldc = N + 2
          let a = (0..<((transA ? K : M) * lda)).map { _ in Float(g.normal()) }
          let b = (0..<((transB ? N : K) * ldb)).map { _ in Float(g.normal()) }
          let c0 = (0..<((M + 1) * ldc)).map { i in i % ldc < N && i < M * ldc ? (beta == 0 ? Float.nan : Float(g.normal())) : 7 }
          var c = c0
          let declined = SIMDKernels.with(level: 4) {
            lg_sgemm(transA ? 1 : 0, transB ? 1 : 0, Int32(M), Int32(N), Int32(K), alpha, a, lda, b, ldb, beta, &c, ldc)
          }
          guard CPU.current.isaLevel >= 4 else { XCTAssertEqual(declined, 1, "lg_sgemm ran without AVX-512"); continue }
          XCTAssertEqual(declined, 0)
          var worst = 0.0
          for i in 0..<M {
            for j in 0..<ldc {
              guard j < N else { XCTAssertEqual(c[i * ldc + j], 7, "padding written"); continue }
              var exact = beta == 0 ? 0 : Double(beta) * Double(c0[i * ldc + j]), bound = abs(exact)
              for k in 0..<K {
                let p = Double(alpha) * Double(transA ? a[k * lda + i] : a[i * lda + k]) * Double(transB ? b[j * ldb + k] : b[k * ldb + j])
                exact += p; bound += abs(p)
              }
              worst = max(worst, abs(Double(c[i * ldc + j]) - exact) / bound)
            }
          }
          let what = "\(transA ? "Aᵀ" : "A")·\(transB ? "Bᵀ" : "B") \(M)x\(N)x\(K) alpha \(alpha) beta \(beta)"
          XCTAssertLessThan(worst, Double(K + 2) * 1.2e-7, what)
          XCTAssertEqual(c[(M * ldc)...], ArraySlice(repeating: 7, count: ldc), "written past C's last row: \(what)")
        }
      }
    }
  }

  /// The softmax kernel's 16-lane vector groups and its scalar tail. Against float64 softmax on
  /// rows shorter than, equal to and longer than a group, with entries that underflow and a -inf;
  /// the vector exp and the scalar one give the same bits (a row of 17 whose last entry repeats
  /// its first: one in a group, one in the tail), also for +inf and NaN rows; and AVX2 gives
  /// AVX-512's bits (both contract into FMAs; the baseline build cannot, so it agrees to rounding).
  func testSoftmaxRowsAcrossKernelLevels() throws {
    func same(_ a: [Double], _ b: [Double]) -> Bool {
      a.count == b.count && zip(a, b).allSatisfy { $0 == $1 || ($0.isNaN && $1.isNaN) }
    }
    let g = Generator(seed: 13)
    let levels = [1, 3, 4].filter { $0 <= SIMDKernels.level }
    for n in [2, 15, 16, 17, 40, 1037] {
      var values = try Tensor.randn([6, n], generator: g).toArray().map { $0 * 40 }
      values[0] = -Double.infinity
      values[values.count - 1] = -200
      let x = try Tensor.from(values, shape: [6, n])
      // float64 softmax of the same float32 entries; the kernel's x - max rounds in float32 (up to
      // 2^-24 of |x - max| <= 320 here), so exp agrees to about 1e-5 relative
      let exact = try x.to(.float64).softmax(dim: 1).toArray()
      let results = try levels.map { level in try SIMDKernels.with(level: level) { try x.softmax(dim: 1).toArray() } }
      if levels.count == 3 { XCTAssertTrue(same(results[1], results[2]), "rows of \(n): AVX2 against AVX-512") }
      for (level, r) in zip(levels, results) {
        for (a, b) in zip(exact, r) { XCTAssertEqual(a, b, accuracy: 2e-5 * Swift.max(abs(a), 1e-30), "rows of \(n), kernels \(level)") }
      }
    }
    // first and last entries equal: the group's lane 0 and the tail's lane 0 must agree
    var row = try Tensor.randn([17], generator: g).toArray()
    row[16] = row[0]
    for level in levels {
      let y = try SIMDKernels.with(level: level) { try Tensor.from(row, shape: [1, 17]).softmax(dim: 1).toArray() }
      XCTAssertEqual(y[0].bitPattern, y[16].bitPattern, "kernels \(level): vector and scalar exp differ")
      let special = try SIMDKernels.with(level: level) {
        try Tensor.from([0, .infinity] + Array(repeating: 1, count: 15) + [.nan, 2], shape: [1, 19]).softmax(dim: 1).toArray()
      }
      XCTAssertTrue(special.allSatisfy { $0.isNaN || $0 == 0 }, "kernels \(level): a +inf or NaN row gives NaN or 0, got \(special)")
    }
  }

  func testKernelLevelIsChosenByCPUID() {
    XCTAssertEqual(SIMDKernels.level, CPU.current.isaLevel >= 4 ? 4 : CPU.current.isaLevel >= 3 ? 3 : 1)
  }

  /// Second-order gradients through the Winograd path.
  func testGradGradThroughWinograd() throws {
    ConvolutionSettings.winogradMinChannels = 1
    ConvolutionSettings.winogradMinTiles = 1   // tiny images too: their borders are the edge cases
    defer { ConvolutionSettings.winogradMinChannels = 16; ConvolutionSettings.winogradMinTiles = Tunables.winogradMinTiles.value }
    let g = Generator(seed: 5)
    let x = try Tensor.randn([1, 2, 4, 3], dtype: .float64, generator: g)
    let w = try Tensor.randn([2, 2, 3, 3], dtype: .float64, generator: g)
    let f: ([Tensor]) throws -> Tensor = { try Tensor.conv2d($0[0], $0[1], spec: ConvSpec(padding: (1, 1))).tanh() }
    XCTAssertTrue(try GradCheck.check(f, inputs: [x, w]).passed)
    let r = try GradCheck.checkSecondOrder(f, inputs: [x, w])
    XCTAssertTrue(r.passed, r.description)
  }
}
