import CKernels
import Foundation

/// Winograd F(2×2, 3×3) for 3×3 convolutions with stride 1 and padding 1, the convolutions
/// BigGAN and PGGAN are made of. Each 2×2 output tile costs 16 multiplies per channel pair
/// instead of 36 (Lavin & Gray 2015, "Fast Algorithms for Convolutional Neural Networks"):
///
///   y_tile = Aᵀ [ (G g Gᵀ) ⊙ (Bᵀ d B) ] A        d: 4×4 input patch, g: 3×3 kernel
///
/// With U = G g Gᵀ and V = Bᵀ d B, the 16 products over channels are 16 GEMMs
/// M_ξ (K×T) = U_ξ (K×C) · V_ξ (C×T). The adjoints use the same transforms:
///   input gradient  = the forward with the kernel flipped and its channels swapped;
///   weight gradient = Gᵀ [ Σ_tiles (A ȳ Aᵀ) ⊙ V ] G, again 16 GEMMs.
/// Tiles are processed in fixed-size blocks (independent of thread count), so results are
/// deterministic. Error is a few float32 ulps relative to direct convolution.
enum Winograd {
  static var enabled: Bool { ConvolutionSettings.winograd }

  /// Whether a convolution takes this path: 3×3 kernel, stride 1, padding 1, enough channels
  /// for the GEMMs to be efficient (the RGB layers stay on im2col), and enough 4×4 output tiles
  /// over the batch: at 4×4 images and batch 8 (8 tiles; BigGAN's last D block at 128 px) the
  /// weight transforms and the 8-column products cost more than im2col's one GEMM (512
  /// channels, forward and both gradients: 27 ms against 14; 16 tiles: 24 against 27).
  static func applies(_ g: ConvGeometry) -> Bool {
    _ = SIMDKernels.selected
    return enabled && g.kh == 3 && g.kw == 3 && g.sh == 1 && g.sw == 1 && g.ph == 1 && g.pw == 1
      && g.cin >= minChannels && g.cout >= minChannels && g.ho == g.h && g.wo == g.w
      && g.n * ((g.ho + 3) / 4) * ((g.wo + 3) / 4) >= minTiles
  }
  nonisolated(unsafe) static var minChannels = Tunables.winogradMinChannels.value
  nonisolated(unsafe) static var minTiles = Tunables.winogradMinTiles.value
  nonisolated(unsafe) static var blockBudget = Tunables.winogradBlockBytes.value

  /// Tile-rows per block: the transformed block (`planes` planes: 16 for F(2×2), 36 for F(4×4))
  /// of the wider side stays near 4 MiB. Blocks are whole tile-rows, so the transforms run over
  /// contiguous rows.
  static func blockRows(_ channels: Int, tileRows: Int, tilesPerRow: Int, _ elementSize: Int, planes: Int = 16) -> Int {
    let tiles = Swift.max(64, (blockBudget) / (planes * channels * elementSize))
    return Swift.min(tileRows, Swift.max(1, tiles / tilesPerRow))
  }

  /// U = G g Gᵀ for every (k, c): u[ξ][k][c]. flip swaps channels and rotates the kernel by
  /// 180°, giving the kernel of the input-gradient convolution.
  static func transformWeights<T: TensorScalar>(_ w: UnsafePointer<T>, K: Int, C: Int, flip: Bool, _ u: UnsafeMutablePointer<T>) {
    let outer = flip ? C : K, inner = flip ? K : C, plane = outer * inner
    Parallel.forChunks(outer * inner, grain: 4096) { r in
      for oi in r {
        let o = oi / inner, i = oi % inner
        let src = flip ? w + (i * C + o) * 9 : w + (o * C + i) * 9
        @inline(__always) func g(_ a: Int, _ b: Int) -> T { flip ? src[(2 - a) * 3 + (2 - b)] : src[a * 3 + b] }
        // G g (4×3): rows g0, (g0+g1+g2)/2, (g0-g1+g2)/2, g2; then the same on the columns.
        for a in 0..<4 {
          let c0: T, c1: T, c2: T
          switch a {
          case 0: c0 = g(0, 0); c1 = g(0, 1); c2 = g(0, 2)
          case 1: c0 = (g(0, 0) + g(1, 0) + g(2, 0)) / 2; c1 = (g(0, 1) + g(1, 1) + g(2, 1)) / 2; c2 = (g(0, 2) + g(1, 2) + g(2, 2)) / 2
          case 2: c0 = (g(0, 0) - g(1, 0) + g(2, 0)) / 2; c1 = (g(0, 1) - g(1, 1) + g(2, 1)) / 2; c2 = (g(0, 2) - g(1, 2) + g(2, 2)) / 2
          default: c0 = g(2, 0); c1 = g(2, 1); c2 = g(2, 2)
          }
          u[(a * 4) * plane + oi] = c0
          u[(a * 4 + 1) * plane + oi] = (c0 + c1 + c2) / 2
          u[(a * 4 + 2) * plane + oi] = (c0 - c1 + c2) / 2
          u[(a * 4 + 3) * plane + oi] = c2
        }
      }
    }
  }

  /// The tile grid of an H×W image: th×tw tiles of 2×2 outputs.
  struct Grid {
    let H, W, th, tw: Int
    init(_ H: Int, _ W: Int) { self.H = H; self.W = W; th = (H + 1) / 2; tw = (W + 1) / 2 }
  }

  /// V = Bᵀ d B for channels 0..<C of tile-rows r0..<r0+nr: v[ξ][c][j], j over the block's
  /// tiles in order. One tile-row at a time: the vertical half of Bᵀ·B runs over padded image
  /// rows, the horizontal half over tiles.
  static func transformInput<T: TensorScalar>(_ x: UnsafePointer<T>, C: Int, _ g: Grid, r0: Int, nr: Int, _ v: UnsafeMutablePointer<T>) {
    if T.self == Float.self {  // the vector kernel for this CPU (CKernels), channels split across threads
      let xf = UnsafeRawPointer(x).assumingMemoryBound(to: Float.self), vf = UnsafeMutableRawPointer(v).assumingMemoryBound(to: Float.self)
      Parallel.forChunks(C, grain: 1) { r in
        lg_wino_input(xf, Int32(C), Int32(g.H), Int32(g.W), Int32(r0), Int32(nr), Int32(r.lowerBound), Int32(r.upperBound), vf)
      }
      return
    }
    let tb = nr * g.tw, wp = 2 * g.tw + 2
    Parallel.forChunks(C, grain: 1) { chunk in
      withUnsafeTemporaryAllocation(of: T.self, capacity: 8 * wp) { tmp in
        let p = tmp.baseAddress!, r = p + 4 * wp  // p: 4 padded input rows; r: their Bᵀ combinations
        for c in chunk {
          for row in 0..<nr {
            let tr = r0 + row, n = tr / g.th, ty = tr % g.th
            let plane = x + (n * C + c) * g.H * g.W
            for a in 0..<4 {
              let y = 2 * ty - 1 + a, dst = p + a * wp
              dst.update(repeating: 0, count: wp)
              if y >= 0 && y < g.H { (dst + 1).update(from: plane + y * g.W, count: g.W) }
            }
            let p0 = p, p1 = p + wp, p2 = p + 2 * wp, p3 = p + 3 * wp
            let q0 = r, q1 = r + wp, q2 = r + 2 * wp, q3 = r + 3 * wp
            for i in 0..<wp {  // Bᵀ d: rows d0 - d2, d1 + d2, d2 - d1, d1 - d3
              q0[i] = p0[i] - p2[i]; q1[i] = p1[i] + p2[i]; q2[i] = p2[i] - p1[i]; q3[i] = p1[i] - p3[i]
            }
            let base = row * g.tw
            for a in 0..<4 {  // (·) B on each tile's 4 columns: q0 - q2, q1 + q2, q2 - q1, q1 - q3
              let q = r + a * wp
              let v0 = v + ((a * 4) * C + c) * tb + base, v1 = v + ((a * 4 + 1) * C + c) * tb + base
              let v2 = v + ((a * 4 + 2) * C + c) * tb + base, v3 = v + ((a * 4 + 3) * C + c) * tb + base
              for j in 0..<g.tw {
                let e0 = q[2 * j], e1 = q[2 * j + 1], e2 = q[2 * j + 2], e3 = q[2 * j + 3]
                v0[j] = e0 - e2; v1[j] = e1 + e2; v2[j] = e2 - e1; v3[j] = e1 - e3
              }
            }
          }
        }
      }
    }
  }

  /// y = Aᵀ m A for channels 0..<K of tile-rows r0..<r0+nr, clipped to the image.
  static func transformOutput<T: TensorScalar>(_ m: UnsafePointer<T>, K: Int, _ g: Grid, r0: Int, nr: Int, _ y: UnsafeMutablePointer<T>) {
    if T.self == Float.self {
      let mf = UnsafeRawPointer(m).assumingMemoryBound(to: Float.self), yf = UnsafeMutableRawPointer(y).assumingMemoryBound(to: Float.self)
      Parallel.forChunks(K, grain: 1) { r in
        lg_wino_output(mf, Int32(K), Int32(g.H), Int32(g.W), Int32(r0), Int32(nr), Int32(r.lowerBound), Int32(r.upperBound), yf)
      }
      return
    }
    let tb = nr * g.tw
    Parallel.forChunks(K, grain: 1) { chunk in
      withUnsafeTemporaryAllocation(of: T.self, capacity: 2 * (2 * g.tw)) { tmp in
        let out0 = tmp.baseAddress!, out1 = out0 + 2 * g.tw
        for k in chunk {
          for row in 0..<nr {
            let tr = r0 + row, n = tr / g.th, ty = tr % g.th
            let base = row * g.tw
            @inline(__always) func mrow(_ xi: Int) -> UnsafePointer<T> { m + (xi * K + k) * tb + base }
            for j in 0..<g.tw {
              // Aᵀ m: s0 = m0 + m1 + m2, s1 = m1 - m2 - m3 (rows); then the same on columns
              var s0 = SIMD4<T>(), s1 = SIMD4<T>()
              for b in 0..<4 {
                let a0 = mrow(b)[j], a1 = mrow(4 + b)[j], a2 = mrow(8 + b)[j], a3 = mrow(12 + b)[j]
                s0[b] = a0 + a1 + a2; s1[b] = a1 - a2 - a3
              }
              out0[2 * j] = s0[0] + s0[1] + s0[2]; out0[2 * j + 1] = s0[1] - s0[2] - s0[3]
              out1[2 * j] = s1[0] + s1[1] + s1[2]; out1[2 * j + 1] = s1[1] - s1[2] - s1[3]
            }
            let plane = y + (n * K + k) * g.H * g.W, oy = 2 * ty
            (plane + oy * g.W).update(from: out0, count: g.W)
            if oy + 1 < g.H { (plane + (oy + 1) * g.W).update(from: out1, count: g.W) }
          }
        }
      }
    }
  }

  /// m̄ = A ȳ Aᵀ, the adjoint of the output transform, for tile-rows r0..<r0+nr: mb[ξ][k][j];
  /// ȳ is 0 outside the image.
  static func transformOutputAdjoint<T: TensorScalar>(_ dy: UnsafePointer<T>, K: Int, _ g: Grid, r0: Int, nr: Int, _ mb: UnsafeMutablePointer<T>) {
    if T.self == Float.self {
      let df = UnsafeRawPointer(dy).assumingMemoryBound(to: Float.self), mf = UnsafeMutableRawPointer(mb).assumingMemoryBound(to: Float.self)
      Parallel.forChunks(K, grain: 1) { r in
        lg_wino_output_adjoint(df, Int32(K), Int32(g.H), Int32(g.W), Int32(r0), Int32(nr), Int32(r.lowerBound), Int32(r.upperBound), mf)
      }
      return
    }
    let tb = nr * g.tw, w2 = 2 * g.tw
    Parallel.forChunks(K, grain: 1) { chunk in
      withUnsafeTemporaryAllocation(of: T.self, capacity: 2 * w2) { tmp in
        let g0 = tmp.baseAddress!, g1 = g0 + w2
        for k in chunk {
          for row in 0..<nr {
            let tr = r0 + row, n = tr / g.th, ty = tr % g.th
            let plane = dy + (n * K + k) * g.H * g.W, oy = 2 * ty
            g0.update(repeating: 0, count: 2 * w2)
            g0.update(from: plane + oy * g.W, count: g.W)
            if oy + 1 < g.H { g1.update(from: plane + (oy + 1) * g.W, count: g.W) }
            let base = row * g.tw
            @inline(__always) func dst(_ xi: Int) -> UnsafeMutablePointer<T> { mb + (xi * K + k) * tb + base }
            // A ȳ: rows (ȳ0, ȳ0 + ȳ1, ȳ0 - ȳ1, -ȳ1); each row [p, q] ↦ [p, p + q, p - q, -q]
            for j in 0..<g.tw {
              let a = g0[2 * j], b = g0[2 * j + 1], c = g1[2 * j], d = g1[2 * j + 1]
              let rows = (SIMD2(a, b), SIMD2(a + c, b + d), SIMD2(a - c, b - d), SIMD2(-c, -d))
              for (i, pq) in [rows.0, rows.1, rows.2, rows.3].enumerated() {
                dst(i * 4)[j] = pq[0]; dst(i * 4 + 1)[j] = pq[0] + pq[1]; dst(i * 4 + 2)[j] = pq[0] - pq[1]; dst(i * 4 + 3)[j] = -pq[1]
              }
            }
          }
        }
      }
    }
  }

  /// y (N, K, H, W) = conv3x3(x (N, C, H, W), w), padding 1. With flip, w is read as the
  /// kernel of the input gradient (then C and K are the conv's output and input channels).
  static func forward<T: TensorScalar>(_: T.Type, x: UnsafePointer<T>, w: UnsafePointer<T>, N: Int, C: Int, K: Int,
                                       H: Int, W: Int, flip: Bool, y: UnsafeMutablePointer<T>) throws {
    if T.self == Float.self && Winograd4.enabled {
      return try Winograd4.forward(x: DirectConv.f32(x), w: DirectConv.f32(w), N: N, C: C, K: K, H: H, W: W, flip: flip,
                                   y: DirectConv.f32(y))
    }
    let grid = Grid(H, W), rows = N * grid.th
    let br = blockRows(Swift.max(C, K), tileRows: rows, tilesPerRow: grid.tw, MemoryLayout<T>.stride)
    let tb = br * grid.tw
    try Scratch.with(T.self, count: 16 * K * C + 16 * C * tb + 16 * K * tb) { buf in
      let u = buf, v = buf + 16 * K * C, m = v + 16 * C * tb
      // With flip, the stored weight is (C, K) = (conv out, conv in): transform to [ξ][K][C].
      transformWeights(w, K: flip ? C : K, C: flip ? K : C, flip: flip, u)
      for r0 in stride(from: 0, to: rows, by: br) {
        let nr = Swift.min(br, rows - r0), n = nr * grid.tw
        transformInput(x, C: C, grid, r0: r0, nr: nr, v)
        Parallel.independentBLAS(16) { xi in
          gemmCall(T.self, transA: false, transB: false, M: K, N: n, K: C, alpha: 1, A: u + xi * K * C, lda: C,
               B: v + xi * C * n, ldb: n, beta: 0, C: m + xi * K * n, ldc: n)
        }
        transformOutput(UnsafePointer(m), K: K, grid, r0: r0, nr: nr, y)
      }
    }
  }

  /// dw (K, C, 3, 3) = Σ over batch and tiles of the Winograd weight adjoint.
  static func backwardWeight<T: TensorScalar>(_: T.Type, x: UnsafePointer<T>, dy: UnsafePointer<T>, N: Int, C: Int, K: Int,
                                              H: Int, W: Int, dw: UnsafeMutablePointer<T>) throws {
    if T.self == Float.self && Winograd4.enabled {
      return try Winograd4.backwardWeight(x: DirectConv.f32(x), dy: DirectConv.f32(dy), N: N, C: C, K: K, H: H, W: W,
                                          dw: DirectConv.f32(dw))
    }
    let grid = Grid(H, W), rows = N * grid.th
    let br = blockRows(Swift.max(C, K), tileRows: rows, tilesPerRow: grid.tw, MemoryLayout<T>.stride)
    let tb = br * grid.tw
    try Scratch.with(T.self, count: 16 * K * C + 16 * C * tb + 16 * K * tb) { buf in
      let du = buf, v = buf + 16 * K * C, mb = v + 16 * C * tb
      var first = true
      for r0 in stride(from: 0, to: rows, by: br) {
        let nr = Swift.min(br, rows - r0), n = nr * grid.tw
        transformInput(x, C: C, grid, r0: r0, nr: nr, v)
        transformOutputAdjoint(dy, K: K, grid, r0: r0, nr: nr, mb)
        let beta: Double = first ? 0 : 1
        Parallel.independentBLAS(16) { xi in
          // dU_ξ (K×C) += M̄_ξ (K×n) · V_ξᵀ (n×C)
          gemmCall(T.self, transA: false, transB: true, M: K, N: C, K: n, alpha: 1, A: mb + xi * K * n, lda: n,
               B: v + xi * C * n, ldb: n, beta: beta, C: du + xi * K * C, ldc: C)
        }
        first = false
      }
      // dw = Gᵀ dU G, with Gᵀ rows (u0 + (u1+u2)/2, (u1-u2)/2, (u1+u2)/2 + u3).
      Parallel.forChunks(K * C, grain: 1024) { r in
        for kc in r {
          var q0 = SIMD4<T>(), q1 = SIMD4<T>(), q2 = SIMD4<T>()  // Gᵀ dU: 3 rows of 4
          for b in 0..<4 {
            let u0 = du[((0 * 4 + b) * K * C) + kc], u1 = du[((1 * 4 + b) * K * C) + kc]
            let u2 = du[((2 * 4 + b) * K * C) + kc], u3 = du[((3 * 4 + b) * K * C) + kc]
            q0[b] = u0 + (u1 + u2) / 2; q1[b] = (u1 - u2) / 2; q2[b] = (u1 + u2) / 2 + u3
          }
          let o = dw + kc * 9
          for (a, q) in [q0, q1, q2].enumerated() {
            o[a * 3] = q[0] + (q[1] + q[2]) / 2; o[a * 3 + 1] = (q[1] - q[2]) / 2; o[a * 3 + 2] = (q[1] + q[2]) / 2 + q[3]
          }
        }
      }
    }
  }
}

/// Switches for the convolution algorithms (tests compare Winograd against im2col).
public enum ConvolutionSettings {
  /// Use Winograd where it applies (default on): F(4×4, 3×3) in float32, F(2×2, 3×3) in float64.
  nonisolated(unsafe) public static var winograd = true
  /// Use the direct kernel for convolutions with few output channels (default on).
  public static var direct: Bool {
    get { DirectConv.enabled }
    set { DirectConv.enabled = newValue }
  }
  /// The output tile of float32 Winograd: 4 (F(4×4, 3×3), default) or 2 (F(2×2, 3×3), as float64).
  public static var winogradTile: Int {
    get { Winograd4.enabled ? 4 : 2 }
    set { Winograd4.enabled = newValue == 4 }
  }
  /// The fewest input and output channels for which Winograd is used.
  public static var winogradMinChannels: Int {
    get { Winograd.minChannels }
    set { Winograd.minChannels = newValue }
  }
  /// The fewest 4×4 output tiles over the batch for which Winograd is used.
  public static var winogradMinTiles: Int {
    get { Winograd.minTiles }
    set { Winograd.minTiles = newValue }
  }
}
