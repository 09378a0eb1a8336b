import Foundation
import Tensor

/// Singular-value tools for BigGAN's instability analysis (Brock et al. 2019, §4.1).
public enum Spectra {
  /// The top `k` singular values of `weight` viewed as (size(0), -1), with their left and
  /// right singular vectors, by power iteration with Gram–Schmidt deflation against the
  /// vectors already found (as BigGAN's power_iteration), in float64. The start vectors come
  /// from a fixed-seed generator, so logging never moves the training stream.
  public static func top(_ weight: Tensor, k: Int, maxIterations: Int = 500, tolerance: Double = 1e-10)
    throws -> [(sigma: Double, u: [Double], v: [Double])] {
    guard weight.rank >= 2 else { throw TensorError("singularValues: weight must have 2 or more dims, got \(formatShape(weight.shape))") }
    let rows = weight.shape[0], cols = weight.numel / Swift.max(rows, 1)
    guard k >= 1, k <= Swift.min(rows, cols) else {
      throw TensorError("singularValues: k must be in 1..\(Swift.min(rows, cols)) for a \(rows)x\(cols) matrix, got \(k)")
    }
    let w = try weight.detach().reshape([rows, cols]).to(.float64).contiguous()
    let wt = try w.t().contiguous()
    let g = Generator(seed: 0x5EC7_2A)
    var found: [(Double, [Double], [Double])] = []
    func orthogonalize(_ x: inout [Double], against vs: [[Double]]) {
      for v in vs {
        var d = 0.0
        for i in 0..<x.count { d += x[i] * v[i] }
        for i in 0..<x.count { x[i] -= d * v[i] }
      }
    }
    func normalized(_ x: [Double]) -> ([Double], Double) {
      let n = x.reduce(0) { $0 + $1 * $1 }.squareRoot()
      return (n > 0 ? x.map { $0 / n } : x, n)
    }
    func mv(_ m: Tensor, _ x: [Double]) throws -> [Double] {
      try m.matmul(Tensor.from(x, shape: [x.count], dtype: .float64)).toArray()
    }
    for _ in 0..<k {
      var u = normalized((0..<rows).map { _ in g.normal() }).0
      orthogonalize(&u, against: found.map { $0.1 })
      u = normalized(u).0
      var v = [Double](repeating: 0, count: cols), sigma = 0.0
      for _ in 0..<maxIterations {
        var nv = try mv(wt, u)                        // v = normalize(Wᵀu ⊥ previous v)
        orthogonalize(&nv, against: found.map { $0.2 })
        v = normalized(nv).0
        var nu = try mv(w, v)                         // u = normalize(Wv ⊥ previous u)
        orthogonalize(&nu, against: found.map { $0.1 })
        let (uu, s) = normalized(nu)
        u = uu
        let converged = Swift.abs(s - sigma) <= tolerance * Swift.max(s, 1e-300)
        sigma = s
        if converged { break }
      }
      found.append((sigma, u, v))
    }
    return found.map { (sigma: $0.0, u: $0.1, v: $0.2) }
  }

  /// The top `k` singular values.
  public static func singularValues(_ weight: Tensor, k: Int) throws -> [Double] { try top(weight, k: k).map { $0.sigma } }

  /// Clamps the top singular value in place: W ← W − max(0, σ₀ − σ_clamp)·u₀v₀ᵀ
  /// (the experiment of BigGAN §4.1). Returns σ₀ before clamping.
  @discardableResult
  public static func clampTop(_ weight: Tensor, sigmaClamp: Double) throws -> Double {
    guard sigmaClamp >= 0 else { throw TensorError("clampSpectrum: sigmaClamp must be >= 0, got \(sigmaClamp)") }
    let t = try top(weight, k: 1)[0]
    let excess = t.sigma - sigmaClamp
    guard excess > 0 else { return t.sigma }
    let rows = t.u.count, cols = t.v.count
    var outer = [Double](repeating: 0, count: rows * cols)
    for i in 0..<rows { for j in 0..<cols { outer[i * cols + j] = excess * t.u[i] * t.v[j] } }
    let delta = try Tensor.from(outer, shape: weight.shape, dtype: weight.dtype)
    try GradMode.withDisabled { _ = try weight.copy_(weight.detach().sub(delta)) }
    return t.sigma
  }
}
