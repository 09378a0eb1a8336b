import CKernels
import COpenBLAS
import Host

/// Matrix products on OpenBLAS. mm and bmm are primitives; their pullbacks are products with
/// transposed views (which BLAS reads in place, without copies). matmul and linear compose them.

/// How a 2-D view is handed to BLAS: row-major as is, or as the transpose of a row-major
/// matrix. Anything else is copied first.
struct BLASOperand {
  let tensor: Tensor
  let transposed: Bool
  let ld: Int

  /// m: (rows, cols) view at dims (r, c) of t (batch dims before them).
  init(_ t: Tensor, rowDim: Int, colDim: Int) throws {
    let rows = t.shape[rowDim], cols = t.shape[colDim]
    if t.strides[colDim] == 1 || cols == 1, t.strides[rowDim] >= Swift.max(1, cols) || rows == 1 {
      tensor = t; transposed = false; ld = Swift.max(1, rows == 1 ? cols : t.strides[rowDim])
    } else if t.strides[rowDim] == 1 || rows == 1, t.strides[colDim] >= Swift.max(1, rows) || cols == 1 {
      tensor = t; transposed = true; ld = Swift.max(1, cols == 1 ? rows : t.strides[colDim])
    } else {
      let c = try t.contiguousData()
      tensor = c; transposed = false; ld = Swift.max(1, cols)
    }
  }
}

/// C (M×N) = alpha·op(A)·op(B) + beta·C, row-major, for either dtype.
@inline(__always)
func gemm<T: TensorScalar>(_: T.Type, transA: Bool, transB: Bool, M: Int, N: Int, K: Int, alpha: Double,
                           A: UnsafePointer<T>, lda: Int, B: UnsafePointer<T>, ldb: Int,
                           beta: Double, C: UnsafeMutablePointer<T>, ldc: Int) {
  if M == 0 || N == 0 { return }
  if K == 0 {  // BLAS may not touch C when K is 0: scale it here
    for i in 0..<M { for j in 0..<N { C[i * ldc + j] = beta == 0 ? 0 : C[i * ldc + j] * T(beta) } }
    return
  }
  // Big products are split into blocks of `gemmBlock` rows or columns of C (whichever side is
  // longer), computed concurrently by single-threaded BLAS calls: the split depends only on
  // the shape, so the result is the same for any thread count. K is never split.
  let splitColumns = N >= M
  let length = splitColumns ? N : M
  if M * N * K < 1 << 21 || length < 2 * gemmBlock {
    gemmCall(T.self, transA: transA, transB: transB, M: M, N: N, K: K, alpha: alpha, A: A, lda: lda, B: B, ldb: ldb, beta: beta, C: C, ldc: ldc)
    return
  }
  let blocks = (length + gemmBlock - 1) / gemmBlock
  Parallel.independentBLAS(blocks) { b in
    let start = b * gemmBlock, size = Swift.min(gemmBlock, length - start)
    if splitColumns {  // C[:, start..] = op(A) · op(B)[:, start..]
      let bOffset = transB ? start * ldb : start
      gemmCall(T.self, transA: transA, transB: transB, M: M, N: size, K: K, alpha: alpha, A: A, lda: lda,
               B: B + bOffset, ldb: ldb, beta: beta, C: C + start, ldc: ldc)
    } else {           // C[start.., :] = op(A)[start.., :] · op(B)
      let aOffset = transA ? start : start * lda
      gemmCall(T.self, transA: transA, transB: transB, M: size, N: N, K: K, alpha: alpha, A: A + aOffset, lda: lda,
               B: B, ldb: ldb, beta: beta, C: C + start * ldc, ldc: ldc)
    }
  }
}

/// Matrix products on raw buffers for code outside this module (metrics), with the same
/// thread-count-independent blocking as the tensor ops. Row-major, C = alpha·op(A)·op(B) + beta·C.
public enum BLAS {
  public static func gemm(transA: Bool = false, transB: Bool = false, M: Int, N: Int, K: Int, alpha: Double = 1,
                          A: UnsafePointer<Float>, lda: Int, B: UnsafePointer<Float>, ldb: Int,
                          beta: Double = 0, C: UnsafeMutablePointer<Float>, ldc: Int) {
    Tensor.gemmBlocked(Float.self, transA: transA, transB: transB, M: M, N: N, K: K, alpha: alpha, A: A, lda: lda, B: B, ldb: ldb,
                       beta: beta, C: C, ldc: ldc)
  }
  public static func gemm(transA: Bool = false, transB: Bool = false, M: Int, N: Int, K: Int, alpha: Double = 1,
                          A: UnsafePointer<Double>, lda: Int, B: UnsafePointer<Double>, ldb: Int,
                          beta: Double = 0, C: UnsafeMutablePointer<Double>, ldc: Int) {
    Tensor.gemmBlocked(Double.self, transA: transA, transB: transB, M: M, N: N, K: K, alpha: alpha, A: A, lda: lda, B: B, ldb: ldb,
                       beta: beta, C: C, ldc: ldc)
  }
}

extension Tensor {
  static func gemmBlocked<T: TensorScalar>(_ t: T.Type, transA: Bool, transB: Bool, M: Int, N: Int, K: Int, alpha: Double,
                                           A: UnsafePointer<T>, lda: Int, B: UnsafePointer<T>, ldb: Int,
                                           beta: Double, C: UnsafeMutablePointer<T>, ldc: Int) {
    gemm(t, transA: transA, transB: transB, M: M, N: N, K: K, alpha: alpha, A: A, lda: lda, B: B, ldb: ldb, beta: beta, C: C, ldc: ldc)
  }
}

/// Float32 products on luagan's packed kernel (CKernels' lg_sgemm) where the CPU has AVX-512
/// (LG_OWN_GEMM): with OpenBLAS's Haswell core, which is what a forced or older OpenBLAS gives
/// an AVX-512 machine, sgemm reached half the CPU's peak (214 GFLOP/s on a 2-core Zen 5 against
/// 463 for the packed kernel and 371 for OpenBLAS's Cooperlake core), and the training steps
/// then depended on which core OpenBLAS had picked (biggan64: 886 against 710 ms a step).
let ownSgemm: Bool = { _ = SIMDKernels.selected; return Tunables.ownGemm.value == 1 }()
/// Whether float32 products run on that kernel now (LG_OWN_GEMM on, kernels at AVX-512).
var sgemmRunsOwnKernel: Bool { ownSgemm && SIMDKernels.level >= 4 }

/// Rows or columns of C per concurrent GEMM block.
let gemmBlock = 128

@inline(__always)
func gemmCall<T: TensorScalar>(_: T.Type, transA: Bool, transB: Bool, M: Int, N: Int, K: Int, alpha: Double,
                               A: UnsafePointer<T>, lda: Int, B: UnsafePointer<T>, ldb: Int,
                               beta: Double, C: UnsafeMutablePointer<T>, ldc: Int) {
  let ta = transA ? CblasTrans : CblasNoTrans, tb = transB ? CblasTrans : CblasNoTrans
  if T.self == Float.self, ownSgemm, M <= Int(Int32.max), N <= Int(Int32.max), K <= Int(Int32.max),
     lg_sgemm(transA ? 1 : 0, transB ? 1 : 0, Int32(M), Int32(N), Int32(K), Float(alpha),
              UnsafeRawPointer(A).assumingMemoryBound(to: Float.self), lda, UnsafeRawPointer(B).assumingMemoryBound(to: Float.self), ldb,
              Float(beta), UnsafeMutableRawPointer(C).assumingMemoryBound(to: Float.self), ldc) == 0 {
    return
  }
  if T.self == Float.self {
    cblas_sgemm(CblasRowMajor, ta, tb, Int32(M), Int32(N), Int32(K), Float(alpha),
                UnsafeRawPointer(A).assumingMemoryBound(to: Float.self), Int32(lda),
                UnsafeRawPointer(B).assumingMemoryBound(to: Float.self), Int32(ldb), Float(beta),
                UnsafeMutableRawPointer(C).assumingMemoryBound(to: Float.self), Int32(ldc))
  } else {
    cblas_dgemm(CblasRowMajor, ta, tb, Int32(M), Int32(N), Int32(K), alpha,
                UnsafeRawPointer(A).assumingMemoryBound(to: Double.self), Int32(lda),
                UnsafeRawPointer(B).assumingMemoryBound(to: Double.self), Int32(ldb), beta,
                UnsafeMutableRawPointer(C).assumingMemoryBound(to: Double.self), Int32(ldc))
  }
}

extension Tensor {
  /// Matrix product of 2-D tensors (M, K)·(K, N). Reference: torch.mm.
  public func mm(_ other: Tensor) throws -> Tensor {
    guard rank == 2, other.rank == 2 else {
      throw TensorError("mm: expected 2-D tensors, got \(formatShape(shape)) and \(formatShape(other.shape))")
    }
    guard shape[1] == other.shape[0] else {
      throw TensorError("mm: inner sizes differ: \(formatShape(shape)) times \(formatShape(other.shape))")
    }
    let dt = DType.promote(dtype, other.dtype)
    let a = try to(dt), b = try other.to(dt)
    let M = shape[0], K = shape[1], N = other.shape[1]
    let out = try Tensor.empty([M, N], dtype: dt)
    FlopCounter.add(2 &* M &* N &* K)
    let oa = try BLASOperand(a, rowDim: 0, colDim: 1), ob = try BLASOperand(b, rowDim: 0, colDim: 1)
    func go<T: TensorScalar>(_: T.Type) {
      gemm(T.self, transA: oa.transposed, transB: ob.transposed, M: M, N: N, K: K, alpha: 1,
           A: oa.tensor.pointer(T.self), lda: oa.ld, B: ob.tensor.pointer(T.self), ldb: ob.ld,
           beta: 0, C: out.pointer(T.self), ldc: N)
    }
    switch dt { case .float32: go(Float.self); case .float64: go(Double.self) }
    // An operand stored transposed (linear's Wᵀ) gets its gradient in that layout, as bmm's do:
    // the permute back to W is then contiguous, and W.grad accumulates without a strided add.
    let aT = oa.transposed && M > 1 && K > 1, bT = ob.transposed && K > 1 && N > 1
    return record("mm", out, [a, b]) { [ka = saved(a, if: b.requiresGrad), kb = saved(b, if: a.requiresGrad)] g, needs in
      // d(AB)/dA = G·Bᵀ = (B·Gᵀ)ᵀ, d(AB)/dB = Aᵀ·G = (Gᵀ·A)ᵀ
      [needs[0] ? (aT ? try kb!.mm(g.t()).t() : try g.mm(kb!.t())) : nil,
       needs[1] ? (bT ? try g.t().mm(ka!).t() : try ka!.t().mm(g)) : nil]
    }
  }

  /// Batched matrix product (B, M, K)·(B, K, N). Reference: torch.bmm.
  public func bmm(_ other: Tensor) throws -> Tensor {
    guard rank == 3, other.rank == 3 else {
      throw TensorError("bmm: expected 3-D tensors, got \(formatShape(shape)) and \(formatShape(other.shape))")
    }
    guard shape[0] == other.shape[0], shape[2] == other.shape[1] else {
      throw TensorError("bmm: shapes \(formatShape(shape)) and \(formatShape(other.shape)) do not multiply (need {B,M,K} and {B,K,N})")
    }
    let dt = DType.promote(dtype, other.dtype)
    let a = try to(dt), b = try other.to(dt)
    let Bn = shape[0], M = shape[1], K = shape[2], N = other.shape[2]
    let out = try Tensor.empty([Bn, M, N], dtype: dt)
    FlopCounter.add(2 &* Bn &* M &* N &* K)
    let oa = try BLASOperand(a, rowDim: 1, colDim: 2), ob = try BLASOperand(b, rowDim: 1, colDim: 2)
    func go<T: TensorScalar>(_: T.Type) {
      for i in 0..<Bn {
        gemm(T.self, transA: oa.transposed, transB: ob.transposed, M: M, N: N, K: K, alpha: 1,
             A: oa.tensor.pointer(T.self) + i * oa.tensor.strides[0], lda: oa.ld,
             B: ob.tensor.pointer(T.self) + i * ob.tensor.strides[0], ldb: ob.ld,
             beta: 0, C: out.pointer(T.self) + i * M * N, ldc: N)
      }
    }
    switch dt { case .float32: go(Float.self); case .float64: go(Double.self) }
    // An operand stored transposed (attention's βᵀ) gets its gradient in that layout, (Bᵀ-side
    // product)ᵀ, so it reaches the op that made it contiguous instead of as a strided view.
    let aT = oa.transposed && M > 1 && K > 1, bT = ob.transposed && K > 1 && N > 1
    return record("bmm", out, [a, b]) { [ka = saved(a, if: b.requiresGrad), kb = saved(b, if: a.requiresGrad)] g, needs in
      // per batch: d(AB)/dA = G·Bᵀ = (B·Gᵀ)ᵀ, d(AB)/dB = Aᵀ·G = (Gᵀ·A)ᵀ
      [needs[0] ? (aT ? try kb!.bmm(g.transpose(1, 2)).transpose(1, 2) : try g.bmm(kb!.transpose(1, 2))) : nil,
       needs[1] ? (bT ? try g.transpose(1, 2).bmm(ka!).transpose(1, 2) : try ka!.transpose(1, 2).bmm(g)) : nil]
    }
  }

  /// Matrix product with torch.matmul's rules: 1-D·1-D is a dot product, 1-D operands gain and
  /// lose a unit dim, and leading batch dims broadcast. Reference: torch.matmul.
  public func matmul(_ other: Tensor) throws -> Tensor {
    switch (rank, other.rank) {
    case (0, _), (_, 0):
      throw TensorError("matmul: both arguments need at least 1 dimension, got \(formatShape(shape)) and \(formatShape(other.shape))")
    case (1, 1):
      guard shape[0] == other.shape[0] else {
        throw TensorError("matmul: vectors of different lengths \(shape[0]) and \(other.shape[0])")
      }
      return try mul(other).sum()
    case (2, 2): return try mm(other)
    case (1, 2): return try unsqueeze(dim: 0).mm(other).squeeze(dim: 0)
    case (2, 1): return try mm(other.unsqueeze(dim: 1)).squeeze(dim: 1)
    default:
      let a = rank == 1 ? try unsqueeze(dim: 0) : self
      let b = other.rank == 1 ? try other.unsqueeze(dim: 1) : other
      let M = a.shape[a.rank - 2], K = a.shape[a.rank - 1], K2 = b.shape[b.rank - 2], N = b.shape[b.rank - 1]
      guard K == K2 else {
        throw TensorError("matmul: inner sizes differ: \(formatShape(shape)) times \(formatShape(other.shape))")
      }
      let batch = try broadcastShapes(Array(a.shape.dropLast(2)), Array(b.shape.dropLast(2)), op: "matmul")
      let nb = batch.reduce(1, *)
      let a3 = try a.expand(batch + [M, K]).reshape([nb, M, K])
      let b3 = try b.expand(batch + [K, N]).reshape([nb, K, N])
      var r = try a3.bmm(b3).reshape(batch + [M, N])
      if rank == 1 { r = try r.squeeze(dim: -2) }
      if other.rank == 1 { r = try r.squeeze(dim: -1) }
      return r
    }
  }

  /// x·Wᵀ + b for x (..., in), W (out, in), b (out). Reference: torch.nn.functional.linear.
  public static func linear(_ x: Tensor, _ weight: Tensor, _ bias: Tensor?) throws -> Tensor {
    guard weight.rank == 2 else { throw TensorError("linear: weight must be 2-D (out, in), got \(formatShape(weight.shape))") }
    guard x.rank >= 1, x.shape[x.rank - 1] == weight.shape[1] else {
      throw TensorError("linear: input has \(x.rank >= 1 ? x.shape[x.rank - 1] : 0) features but weight expects \(weight.shape[1]) (input \(formatShape(x.shape)), weight \(formatShape(weight.shape)))")
    }
    let flat = try x.reshape([-1, weight.shape[1]])
    var y = try flat.mm(weight.t())
    if let bias {
      guard bias.shape == [weight.shape[0]] else {
        throw TensorError("linear: bias has shape \(formatShape(bias.shape)) but weight has \(weight.shape[0]) outputs")
      }
      y = try y.addIntoFresh(bias)
    }
    return try y.reshape(Array(x.shape.dropLast()) + [weight.shape[0]])
  }
}
