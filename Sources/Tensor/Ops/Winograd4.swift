import CKernels
import Foundation

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
  nonisolated(unsafe) static var enabled = ProcessInfo.processInfo.environment["LG_WINO_TILE"] != "2"

  static let g: [Double] = [1.0 / 4, 0, 0, -1.0 / 6, -1.0 / 6, -1.0 / 6, -1.0 / 6, 1.0 / 6, -1.0 / 6,
                            1.0 / 24, 1.0 / 12, 1.0 / 6, 1.0 / 24, -1.0 / 12, 1.0 / 6, 0, 0, 1]
  @inline(__always) static func G(_ a: Int, _ k: Int) -> Double { g[a * 3 + k] }

  /// U = G g Gᵀ for every (k, c): u[ξ][k][c], computed in float64. flip swaps channels and
  /// rotates the kernel by 180° (the input gradient's kernel), as Winograd.transformWeights.
  static func transformWeights(_ w: UnsafePointer<Float>, K: Int, C: Int, flip: Bool, _ u: UnsafeMutablePointer<Float>) {
    let outer = flip ? C : K, inner = flip ? K : C, plane = outer * inner
    Parallel.forChunks(plane, grain: 1024) { r in
      withUnsafeTemporaryAllocation(of: Double.self, capacity: 18) { tmp in
        let t = tmp.baseAddress!  // G g: 6×3
        for oi in r {
          let o = oi / inner, i = oi % inner
          let src = flip ? w + (i * C + o) * 9 : w + (o * C + i) * 9
          @inline(__always) func kernel(_ a: Int, _ b: Int) -> Double { Double(flip ? src[(2 - a) * 3 + (2 - b)] : src[a * 3 + b]) }
          for a in 0..<6 {
            for col in 0..<3 { t[a * 3 + col] = G(a, 0) * kernel(0, col) + G(a, 1) * kernel(1, col) + G(a, 2) * kernel(2, col) }
          }
          for a in 0..<6 {
            for b in 0..<6 {
              u[(a * 6 + b) * plane + oi] = Float(t[a * 3] * G(b, 0) + t[a * 3 + 1] * G(b, 1) + t[a * 3 + 2] * G(b, 2))
            }
          }
        }
      }
    }
  }

  /// y (N, K, H, W) = conv3x3(x (N, C, H, W), w), padding 1 (flip: w is the input gradient's
  /// kernel; C and K are then the convolution's output and input channels).
  static func forward(x: UnsafePointer<Float>, w: UnsafePointer<Float>, N: Int, C: Int, K: Int, H: Int, W: Int, flip: Bool,
                      y: UnsafeMutablePointer<Float>) throws {
    let th = (H + 3) / 4, tw = (W + 3) / 4, rows = N * th
    let br = Winograd.blockRows(Swift.max(C, K), tileRows: rows, tilesPerRow: tw, 4, planes: 36), tb = br * tw
    try Scratch.with(Float.self, count: 36 * K * C + 36 * C * tb + 36 * K * tb) { buf in
      let u = buf, v = buf + 36 * K * C, m = v + 36 * C * tb
      transformWeights(w, K: flip ? C : K, C: flip ? K : C, flip: flip, u)
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
    try Scratch.with(Float.self, count: 36 * K * C + 36 * C * tb + 36 * K * tb) { buf in
      let du = buf, v = buf + 36 * K * C, mb = v + 36 * C * tb
      for r0 in stride(from: 0, to: rows, by: br) {
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
      // dw[k][l] = Σ_ab G[a][k] dU[a][b] G[b][l], in float64
      let plane = K * C
      Parallel.forChunks(plane, grain: 1024) { r in
        for kc in r {
          for k in 0..<3 {
            for l in 0..<3 {
              var s = 0.0
              for a in 0..<6 where G(a, k) != 0 {
                var row = 0.0
                for b in 0..<6 { row += Double(du[(a * 6 + b) * plane + kc]) * G(b, l) }
                s += G(a, k) * row
              }
              dw[kc * 9 + k * 3 + l] = Float(s)
            }
          }
        }
      }
    }
  }
}
