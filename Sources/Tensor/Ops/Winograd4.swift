import CKernels
import Foundation
import Synchronization

/// Winograd F(4×4, 3×3) for float32 3×3 convolutions (stride 1, padding 1): 6×6 input tiles
/// at stride 4, so each 4×4 output tile costs 36 multiplies per channel pair instead of 144
/// (2.25 per output against F(2×2, 3×3)'s 4), and the transformed planes are 2.25× the image
/// instead of 4× (Lavin & Gray 2015, "Fast Algorithms for Convolutional Neural Networks"):
///
///   y_tile = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A      d: 6×6 input patch, g: 3×3 kernel
///
/// with G (6×3) rows (1/4, 0, 0), (-1/6, -1/6, -1/6), (-1/6, 1/6, -1/6), (1/24, 1/12, 1/6),
/// (1/24, -1/12, 1/6), (0, 0, 1); Bᵀ and Aᵀ are in CKernels (kernels_body.h, wino4_*). The 36
/// products over channels are 36 GEMMs, and the adjoints reuse the transforms as `Winograd`
/// (F(2×2, 3×3)) does. Its float32 error is a few times F(2×2)'s (the transforms' constants
/// reach 8 and 1/24); float64 keeps F(2×2, 3×3), whose gradchecks agree to 1e-13.
enum Winograd4 {
  /// On by default for float32; LG_WINO_TILE=2 keeps F(2×2, 3×3) everywhere.
  nonisolated(unsafe) static var enabled = Tunables.winogradTile.value == 4

  /// Transformed kernels above this many bytes are written with non-temporal stores (LG_WINO_STREAM_MB).
  static let streamBytes = Tunables.winogradStreamMB.value << 20

  /// U = G g Gᵀ for every (k, c): u[ξ][k][c], computed in float64 (CKernels' wino4_weights, 16
  /// pairs per vector step: as a scalar loop it was 14% of BigGAN-64's step). flip swaps
  /// channels and rotates the kernel by 180° (the input gradient's kernel), as
  /// Winograd.transformWeights.
  static func transformWeights(_ w: UnsafePointer<Float>, K: Int, C: Int, flip: Bool, _ u: UnsafeMutablePointer<Float>) {
    // U larger than the caches goes straight to memory: a plain store would first read each line
    // in, and the GEMMs read U from memory anyway (the transform was 7% of biggan128@8, half of it
    // waiting on those stores).
    let stream: Int32 = 36 * K * C * MemoryLayout<Float>.size > streamBytes ? 1 : 0
    Parallel.forChunks(K * C, grain: 4096) { r in
      lg_wino4_weights(w, Int32(K), Int32(C), flip ? 1 : 0, stream, r.lowerBound, r.upperBound, u)
    }
  }

  /// y (N, K, H, W) = conv3x3(x (N, C, H, W), w), padding 1 (flip: w is the input gradient's
  /// kernel; C and K are then the convolution's output and input channels).
  static func forward(x: UnsafePointer<Float>, w: UnsafePointer<Float>, N: Int, C: Int, K: Int, H: Int, W: Int, flip: Bool,
                      y: UnsafeMutablePointer<Float>) throws {
    let th = (H + 3) / 4, tw = (W + 3) / 4, rows = N * th
    let br = Winograd.blockRows(Swift.max(C, K), tileRows: rows, tilesPerRow: tw, 4, planes: 36), tb = br * tw
    let small = SmallBlocks(C: C, K: K, rows: rows, tilesPerRow: tw, tiles: SmallBlocks.forwardTiles(channels: Swift.max(C, K)))
    try Scratch.with(Float.self, count: 36 * K * C + (small == nil ? 36 * C * tb + 36 * K * tb : 0)) { buf in
      let u = buf, v = buf + 36 * K * C, m = v + 36 * C * tb
      transformWeights(w, K: flip ? C : K, C: flip ? K : C, flip: flip, u)
      if let small { return try small.forward(x, u, H: H, W: W, y) }
      for r0 in stride(from: 0, to: rows, by: br) {
        let nr = Swift.min(br, rows - r0), n = nr * tw
        Parallel.forChunks(C, grain: 1) { r in
          lg_wino4_input(x, Int32(C), Int32(H), Int32(W), Int32(r0), Int32(nr), Int32(r.lowerBound), Int32(r.upperBound), v)
        }
        Parallel.independentBLAS(36) { xi in
          gemmCall(Float.self, transA: false, transB: false, M: K, N: n, K: C, alpha: 1, A: u + xi * K * C, lda: C,
                   B: v + xi * C * n, ldb: n, beta: 0, C: m + xi * K * n, ldc: n)
        }
        Parallel.forChunks(K, grain: 1) { r in
          lg_wino4_output(m, Int32(K), Int32(H), Int32(W), Int32(r0), Int32(nr), Int32(r.lowerBound), Int32(r.upperBound), y)
        }
      }
    }
  }

  /// dw (K, C, 3, 3) = Gᵀ [ Σ over batch and tiles of (A ȳ Aᵀ) ⊙ V ] G.
  static func backwardWeight(x: UnsafePointer<Float>, dy: UnsafePointer<Float>, N: Int, C: Int, K: Int, H: Int, W: Int,
                             dw: UnsafeMutablePointer<Float>) throws {
    let th = (H + 3) / 4, tw = (W + 3) / 4, rows = N * th
    let br = Winograd.blockRows(Swift.max(C, K), tileRows: rows, tilesPerRow: tw, 4, planes: 36), tb = br * tw
    let small = SmallBlocks(C: C, K: K, rows: rows, tilesPerRow: tw, tiles: SmallBlocks.weightTiles)
    try Scratch.with(Float.self, count: 36 * K * C + (small == nil ? 36 * C * tb + 36 * K * tb : 0)) { buf in
      let du = buf, v = buf + 36 * K * C, mb = v + 36 * C * tb
      if let small { try small.weightTransformed(x, dy, H: H, W: W, du) }
      for r0 in stride(from: 0, to: small == nil ? rows : 0, by: br) {
        let nr = Swift.min(br, rows - r0), n = nr * tw
        Parallel.forChunks(C, grain: 1) { r in
          lg_wino4_input(x, Int32(C), Int32(H), Int32(W), Int32(r0), Int32(nr), Int32(r.lowerBound), Int32(r.upperBound), v)
        }
        Parallel.forChunks(K, grain: 1) { r in
          lg_wino4_output_adjoint(dy, Int32(K), Int32(H), Int32(W), Int32(r0), Int32(nr), Int32(r.lowerBound), Int32(r.upperBound), mb)
        }
        let beta: Double = r0 == 0 ? 0 : 1
        Parallel.independentBLAS(36) { xi in
          // dU_ξ (K×C) += M̄_ξ (K×n) · V_ξᵀ (n×C)
          gemmCall(Float.self, transA: false, transB: true, M: K, N: C, K: n, alpha: 1, A: mb + xi * K * n, lda: n,
                   B: v + xi * C * n, ldb: n, beta: beta, C: du + xi * K * C, ldc: C)
        }
      }
      // dw = Gᵀ dU G, in float64 (CKernels' wino4_weights_adjoint)
      let plane = K * C
      Parallel.forChunks(plane, grain: 4096) { r in lg_wino4_weights_adjoint(du, plane, r.lowerBound, r.upperBound, dw) }
    }
  }
}

/// The F(4×4, 3×3) pipeline for convolutions with few channels (BigGAN-32's and the main job's
/// 32-channel layers): the tiles are cut into fixed sub-blocks of about `tiles` tiles and each
/// worker runs whole sub-blocks (input transform, 36 GEMMs, output transform) on its own
/// planes, which stay in its core's cache. The wide path's three parallel phases per block
/// cost more in dispatch than their arithmetic at these sizes (8x8 at 32 channels: 1.2 ms on
/// 2 threads against 1.0 on one). Sub-blocks depend only on the shape, so the forward is
/// the same for any thread count, and the weight gradient sums the sub-blocks' partials in order.
struct SmallBlocks {
  static let maxChannels = Tunables.winogradSmallChannels.value
  /// Tiles per forward / input-gradient sub-block: LG_WINO_SUBTILES when set (to a valid value), else 256 for
  /// layers of at most 64 channels and 128 above (2-core Zen 5, a step at 128 -> 256: pggan64
  /// 414 -> 405 ms, pggan128 761 -> 748, biggan128@8 800 -> 788; biggan32, whose layers reach
  /// 256 channels, 1,702-1,719 -> 1,731-1,769).
  static func forwardTiles(channels: Int) -> Int { forwardTilesSet ?? (channels <= 64 ? 256 : 128) }
  static let forwardTilesSet: Int? = {
    let knob = Tunables.winogradForwardTiles
    guard let s = knob.setting, let v = Int(s), knob.range.contains(v) else { return nil }
    return v
  }()
  static let weightTiles = Tunables.winogradWeightTiles.value
  let C, K, rows, tw, blockRows, blocks: Int

  /// nil when the layer is wide enough for the blocked path, or too small to split.
  init?(C: Int, K: Int, rows: Int, tilesPerRow: Int, tiles: Int) {
    guard Swift.max(C, K) <= SmallBlocks.maxChannels, rows > 0, tilesPerRow > 0 else { return nil }
    self.C = C; self.K = K; self.rows = rows; tw = tilesPerRow
    blockRows = Swift.max(1, Swift.min((rows + 1) / 2, tiles / tilesPerRow))   // two blocks at least, for two cores
    blocks = (rows + blockRows - 1) / blockRows
  }

  /// C = A·B (row-major, C overwritten) on one core, for the forward and the input gradient:
  /// CKernels' unpacked kernel (`LG_SMALL_GEMM`=1), since OpenBLAS's Haswell core packs both
  /// operands and zeroes C first, a third of its time at these sizes (pggan64 with that core:
  /// -15 to -20% of the step's CPU samples). The weight gradient's A·Bᵀ goes through gemmCall
  /// (the packed kernel on AVX-512, else the BLAS): a dot-product kernel lost to both.
  static let ownGemm = Tunables.smallGemm.value == 1
  static func gemm(M: Int, N: Int, K: Int, A: UnsafePointer<Float>, lda: Int, B: UnsafePointer<Float>, ldb: Int,
                   C: UnsafeMutablePointer<Float>, ldc: Int) {
    guard ownGemm, K <= LG_SGEMM_MAX_K else {
      return gemmCall(Float.self, transA: false, transB: false, M: M, N: N, K: K, alpha: 1, A: A, lda: lda, B: B, ldb: ldb,
                      beta: 0, C: C, ldc: ldc)
    }
    lg_sgemm_nn(A, lda, B, ldb, C, ldc, Int32(M), Int32(N), Int32(K))
  }

  /// Runs body(block, v, m) for every sub-block, each worker with its own V (36·C·tiles) and
  /// M (36·K·tiles) planes; which worker runs a block never changes what the block computes.
  /// Workers claim blocks one at a time rather than a fixed half each: the two vCPUs here do
  /// not run at the same speed (the second took 10-15% longer over the same blocks, measured
  /// per region in pggan64), and with fixed halves the faster one waited out the difference.
  func run(_ body: (Int, UnsafeMutablePointer<Float>, UnsafeMutablePointer<Float>) -> Void) throws {
    let workers = Swift.min(blocks, Parallel.threads), planes = 36 * blockRows * tw
    let nextBlock = Atomic<Int>(0)
    try Scratch.with(Float.self, count: workers * planes * (C + K)) { buf in
      Parallel.independentBLAS(workers) { t in
        let v = buf + t * planes * (C + K), m = v + planes * C
        while true {
          let b = nextBlock.wrappingAdd(1, ordering: .relaxed).oldValue
          if b >= blocks { break }
          body(b, v, m)
        }
      }
    }
  }

  /// y = the convolution, from the transformed kernel u[ξ][K][C].
  func forward(_ x: UnsafePointer<Float>, _ u: UnsafeMutablePointer<Float>, H: Int, W: Int, _ y: UnsafeMutablePointer<Float>) throws {
    try run { b, v, m in
      let r0 = b * blockRows, nr = Swift.min(blockRows, rows - r0), n = nr * tw
      lg_wino4_input(x, Int32(C), Int32(H), Int32(W), Int32(r0), Int32(nr), 0, Int32(C), v)
      for xi in 0..<36 {
        SmallBlocks.gemm(M: K, N: n, K: C, A: u + xi * K * C, lda: C, B: v + xi * C * n, ldb: n, C: m + xi * K * n, ldc: n)
      }
      lg_wino4_output(m, Int32(K), Int32(H), Int32(W), Int32(r0), Int32(nr), 0, Int32(K), y)
    }
  }

  /// du[ξ] (K×C) = Σ over sub-blocks, in order, of M̄_ξ · V_ξᵀ: the weight gradient before Gᵀ · G.
  func weightTransformed(_ x: UnsafePointer<Float>, _ dy: UnsafePointer<Float>, H: Int, W: Int,
                         _ du: UnsafeMutablePointer<Float>) throws {
    let plane = 36 * K * C
    try Scratch.with(Float.self, count: blocks * plane) { parts in
      try run { b, v, mb in
        let r0 = b * blockRows, nr = Swift.min(blockRows, rows - r0), n = nr * tw
        lg_wino4_input(x, Int32(C), Int32(H), Int32(W), Int32(r0), Int32(nr), 0, Int32(C), v)
        lg_wino4_output_adjoint(dy, Int32(K), Int32(H), Int32(W), Int32(r0), Int32(nr), 0, Int32(K), mb)
        for xi in 0..<36 {
          gemmCall(Float.self, transA: false, transB: true, M: K, N: C, K: n, alpha: 1, A: mb + xi * K * n, lda: n,
                   B: v + xi * C * n, ldb: n, beta: 0, C: parts + b * plane + xi * K * C, ldc: C)
        }
      }
      sumInOrder(parts, count: blocks, length: plane, into: du)
    }
  }
}
