import COpenBLAS
import Foundation
import Tensor

/// Metrics over feature vectors (rows of an (N, D) tensor), computed in float64:
/// FID, Inception Score, KID and k-NN precision/recall, each as its reference defines it
/// (the references and their traps are in docs/DESIGN.md's notes on metrics).
public enum FeatureMetrics {
  // MARK: - Inputs

  /// An (N, D) matrix of features, validated: finite, at least `minRows` rows.
  struct Features {
    let rows: Int, dims: Int
    let values: [Double]  // row-major (rows, dims)

    init(_ x: Tensor, _ name: String, _ function: String, minRows: Int = 1) throws {
      guard x.rank == 2 else {
        throw TensorError("\(function): \(name) must be a 2-D (N, D) tensor of features, got shape \(formatShape(x.shape))")
      }
      rows = x.shape[0]; dims = x.shape[1]
      guard dims >= 1 else { throw TensorError("\(function): \(name) has no feature columns (shape \(formatShape(x.shape)))") }
      guard rows >= minRows else {
        throw TensorError("\(function): too few samples in \(name): need at least \(minRows), got \(rows)")
      }
      values = try x.toArray()
      try FeatureMetrics.requireFinite(values, dims, name, function)
    }

    @inline(__always) func row(_ i: Int) -> ArraySlice<Double> { values[(i * dims)..<((i + 1) * dims)] }

    /// The rows at `indices`, gathered into a new row-major block.
    func gather(_ indices: [Int]) -> [Double] {
      var out = [Double](repeating: 0, count: indices.count * dims)
      for (k, i) in indices.enumerated() { out.replaceSubrange((k * dims)..<((k + 1) * dims), with: row(i)) }
      return out
    }

    /// Squared row norms.
    func squaredNorms() -> [Double] {
      (0..<rows).map { i in values[(i * dims)..<((i + 1) * dims)].reduce(0) { $0 + $1 * $1 } }
    }
  }

  static func requireFinite(_ values: [Double], _ dims: Int, _ name: String, _ function: String) throws {
    if let bad = values.firstIndex(where: { !$0.isFinite }) {
      throw TensorError("\(function): \(name) contains NaN or infinite values (first at row \(bad / dims + 1), column \(bad % dims + 1))")
    }
  }

  static func requireSameWidth(_ a: Features, _ b: Features, _ names: (String, String), _ function: String) throws {
    guard a.dims == b.dims else {
      throw TensorError("\(function): \(names.0) and \(names.1) must have the same feature size, got \(a.dims) and \(b.dims)")
    }
  }

  // MARK: - Feature statistics and the Fréchet distance

  /// Mean and covariance of a feature set, in float64: μ = mean of the rows and
  /// Σ = (X − μ)ᵀ(X − μ) / (N − 1), NumPy's `np.cov(x, rowvar=False)` (ddof = 1) as in pytorch-fid.
  public struct Statistics {
    public var mean: [Double]
    public var covariance: [Double]  // (D, D) row-major
    public var count: Int
    public var dimension: Int { mean.count }

    public init(mean: [Double], covariance: [Double], count: Int) throws {
      guard !mean.isEmpty, covariance.count == mean.count * mean.count else {
        throw TensorError("feature statistics: mean has \(mean.count) entries but covariance has \(covariance.count) (expected \(mean.count)²)")
      }
      self.mean = mean; self.covariance = covariance; self.count = count
    }
  }

  /// μ and Σ of the rows of `features` (N, D), N ≥ 2. Reference: pytorch-fid
  /// `calculate_activation_statistics` (np.mean, np.cov with ddof = 1).
  public static func statistics(_ features: Tensor, name: String = "feats", function: String = "metrics.featureStats") throws -> Statistics {
    try checkMetricInput(features, function: "statistics")   // linear in the logical size
    guard features.rank == 2, features.shape[1] >= 1 else {
      throw TensorError("\(function): \(name) must be a 2-D (N, D) tensor of features, got shape \(formatShape(features.shape))")
    }
    let n = features.shape[0], d = features.shape[1]
    guard n >= 2 else { throw TensorError("\(function): too few samples in \(name): need at least 2 rows for a covariance, got \(n)") }
    // the mean, the D×D covariance, and FID's later copies of it (about five D×D arrays)
    try Storage.checkAllocatable(count: try Checked.mul(try Checked.mul(d, d, "\(function): D×D"), 6, "\(function): D×D"),
                                 elementBytes: 8, what: "\(function)'s covariance of \(d) features")
    // Two passes over blocks of rows, so a large set is never copied whole into float64.
    let blockRows = Swift.max(1, (1 << 22) / d)
    func forBlocks(_ body: (Int, [Double]) throws -> Void) throws {
      var i0 = 0
      while i0 < n {
        let count = Swift.min(blockRows, n - i0)
        try body(i0, features.narrow(dim: 0, start: i0, length: count).toArray())
        i0 += count
      }
    }
    var mean = [Double](repeating: 0, count: d)
    try forBlocks { i0, block in
      if let bad = block.firstIndex(where: { !$0.isFinite }) {
        throw TensorError("\(function): \(name) contains NaN or infinite values (first at row \(i0 + bad / d + 1), column \(bad % d + 1))")
      }
      for i in 0..<(block.count / d) { for j in 0..<d { mean[j] += block[i * d + j] } }
    }
    for j in 0..<d { mean[j] /= Double(n) }
    // Σ·(N − 1) = Σ_blocks Xcᵀ Xc (upper triangle), then mirrored and scaled.
    var cov = [Double](repeating: 0, count: d * d)
    try forBlocks { _, block in
      var centered = block
      let rows = block.count / d
      for i in 0..<rows { for j in 0..<d { centered[i * d + j] -= mean[j] } }
      cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, Int32(d), Int32(rows), 1, centered, Int32(d), 1, &cov, Int32(d))
    }
    let scale = 1 / Double(n - 1)
    for i in 0..<d {
      for j in i..<d {
        cov[i * d + j] *= scale
        cov[j * d + i] = cov[i * d + j]
      }
    }
    return try Statistics(mean: mean, covariance: cov, count: n)
  }

  /// The Fréchet distance between two Gaussians (Heusel et al. 2017, FID):
  ///   d² = ‖μ₁ − μ₂‖² + Tr Σ₁ + Tr Σ₂ − 2 Tr (Σ₁Σ₂)^½.
  /// Tr (Σ₁Σ₂)^½ = Σᵢ √λᵢ with λᵢ the eigenvalues of Σ₁^½ Σ₂ Σ₁^½ (similar to Σ₁Σ₂ and
  /// symmetric positive semidefinite), found with LAPACK's dsyevd in float64; eigenvalues
  /// below zero are rounding noise and count as 0, the real part that torch-fidelity takes.
  /// As pytorch-fid (`calculate_frechet_distance`), a non-finite result is retried with
  /// `eps`·I added to both covariances. Agrees with scipy's sqrtm route to ~1e-10 relative on
  /// well-conditioned inputs and ~1e-6 when a covariance is singular (N ≤ D or dead units).
  public static func frechetDistance(_ a: Statistics, _ b: Statistics, eps: Double = 1e-6,
                                     function: String = "metrics.fidFromStats") throws -> Double {
    guard a.dimension == b.dimension else {
      throw TensorError("\(function): the statistics have different feature sizes, \(a.dimension) and \(b.dimension)")
    }
    let d = a.dimension
    for (s, name) in [(a, "first"), (b, "second")] {
      guard s.covariance.count == d * d, (s.mean + s.covariance).allSatisfy({ $0.isFinite }) else {
        throw TensorError("\(function): the \(name) statistics contain NaN or infinite values")
      }
    }
    var meanTerm = 0.0
    for j in 0..<d { meanTerm += (a.mean[j] - b.mean[j]) * (a.mean[j] - b.mean[j]) }
    var traces = 0.0
    for j in 0..<d { traces += a.covariance[j * d + j] + b.covariance[j * d + j] }
    var root = try traceSqrtProduct(a.covariance, b.covariance, d)
    if !root.isFinite {
      var s1 = a.covariance, s2 = b.covariance
      for j in 0..<d { s1[j * d + j] += eps; s2[j * d + j] += eps }
      root = try traceSqrtProduct(s1, s2, d)
    }
    return meanTerm + traces - 2 * root
  }

  /// Tr (S₁S₂)^½ for symmetric positive semidefinite S₁, S₂ (d × d, row-major).
  static func traceSqrtProduct(_ s1: [Double], _ s2: [Double], _ d: Int) throws -> Double {
    var v = s1
    let w = try symmetricEigen(&v, d, vectors: true)  // rows of v: eigenvectors of S₁
    // R = S₁^½ = Vᵀ diag(√w) V
    var scaled = v
    for i in 0..<d {
      let r = Swift.max(w[i], 0).squareRoot()
      for j in 0..<d { scaled[i * d + j] *= r }
    }
    var root = [Double](repeating: 0, count: d * d)
    BLAS.gemm(transA: true, M: d, N: d, K: d, A: v, lda: d, B: scaled, ldb: d, C: &root, ldc: d)
    // M = R S₂ R
    var t = [Double](repeating: 0, count: d * d), m = [Double](repeating: 0, count: d * d)
    BLAS.gemm(M: d, N: d, K: d, A: root, lda: d, B: s2, ldb: d, C: &t, ldc: d)
    BLAS.gemm(M: d, N: d, K: d, A: t, lda: d, B: root, ldb: d, C: &m, ldc: d)
    for i in 0..<d { for j in (i + 1)..<d { let s = 0.5 * (m[i * d + j] + m[j * d + i]); m[i * d + j] = s; m[j * d + i] = s } }
    let lambda = try symmetricEigen(&m, d, vectors: false)
    return lambda.reduce(0) { $0 + Swift.max($1, 0).squareRoot() }
  }

  /// Eigenvalues (ascending) of the symmetric d × d matrix `a` by LAPACK dsyevd; with
  /// `vectors`, `a` is overwritten by the eigenvectors, one per row (row i ↔ eigenvalue i).
  static func symmetricEigen(_ a: inout [Double], _ d: Int, vectors: Bool) throws -> [Double] {
    var n = Int32(d), lda = Int32(d), info: Int32 = 0
    var w = [Double](repeating: 0, count: d)
    var jobz = Int8(UInt8(ascii: vectors ? "V" : "N")), uplo = Int8(UInt8(ascii: "L"))
    var lwork: Int32 = -1, liwork: Int32 = -1
    var workSize = 0.0, iworkSize: Int32 = 0
    dsyevd_(&jobz, &uplo, &n, &a, &lda, &w, &workSize, &lwork, &iworkSize, &liwork, &info)
    guard info == 0 else { throw TensorError("symmetric eigendecomposition: workspace query failed (LAPACK info \(info))") }
    lwork = Int32(workSize); liwork = iworkSize
    var work = [Double](repeating: 0, count: Int(lwork)), iwork = [Int32](repeating: 0, count: Int(liwork))
    dsyevd_(&jobz, &uplo, &n, &a, &lda, &w, &work, &lwork, &iwork, &liwork, &info)
    guard info == 0 else { throw TensorError("symmetric eigendecomposition did not converge (LAPACK dsyevd info \(info))") }
    return w
  }

  // MARK: - Inception Score

  /// The Inception Score exp(E_x KL(p(y|x) ‖ p(y))) over `splits` contiguous chunks of the
  /// rows (chunk i holds rows ⌊iN/s⌋ ..< ⌊(i+1)N/s⌋), returning the mean and the population
  /// standard deviation over chunks (Salimans et al. 2016, openai/improved-gan; torch-fidelity
  /// `isc_features_to_metric` in float64). `x` holds probabilities, or logits when `logits` is
  /// set (then log p comes from log-softmax, as torch-fidelity). A zero probability contributes
  /// 0 (the limit of p log p). `shuffleSeed` permutes the rows first with NumPy's
  /// RandomState(seed).permutation, as torch-fidelity's samples_shuffle (its default seed: 2020).
  public static func inceptionScore(_ x: Tensor, splits: Int = 10, logits: Bool = false, shuffleSeed: UInt32? = nil,
                                    function: String = "metrics.inceptionScore") throws -> (mean: Double, std: Double) {
    try checkMetricInput(x, function: "inceptionScore")   // linear in the logical size
    guard splits >= 1 else { throw TensorError("\(function): splits must be at least 1, got \(splits)") }
    let f = try Features(x, logits ? "logits" : "probs", function, minRows: splits)
    let n = f.rows, k = f.dims
    var p = f.values, logp = f.values
    if logits {
      for i in 0..<n {
        let row = i * k
        var mx = -Double.infinity
        for j in 0..<k { mx = Swift.max(mx, f.values[row + j]) }
        var s = 0.0
        for j in 0..<k { s += Foundation.exp(f.values[row + j] - mx) }
        let lse = mx + Foundation.log(s)
        for j in 0..<k { logp[row + j] = f.values[row + j] - lse; p[row + j] = Foundation.exp(logp[row + j]) }
      }
    } else {
      for i in 0..<n {
        var s = 0.0
        for j in 0..<k {
          let v = p[i * k + j]
          guard v >= 0, v <= 1 else {
            throw TensorError("\(function): probs must be probabilities in [0, 1], got \(v) at row \(i + 1), column \(j + 1) (pass {logits=true} for logits)")
          }
          s += v
          logp[i * k + j] = Foundation.log(v)
        }
        guard Swift.abs(s - 1) <= 1e-3 else {
          throw TensorError("\(function): each row of probs must sum to 1, row \(i + 1) sums to \(s) (pass {logits=true} for logits)")
        }
      }
    }
    var order = Array(0..<n)
    if let seed = shuffleSeed { var rng = NumpyRandomState(seed: seed); order = rng.permutation(n) }
    var scores: [Double] = []
    for s in 0..<splits {
      let lo = s * n / splits, hi = (s + 1) * n / splits
      var q = [Double](repeating: 0, count: k)
      for r in lo..<hi { let i = order[r]; for j in 0..<k { q[j] += p[i * k + j] } }
      let logq = q.map { Foundation.log($0 / Double(hi - lo)) }
      var kl = 0.0
      for r in lo..<hi {
        let i = order[r]
        var rowKL = 0.0
        for j in 0..<k where p[i * k + j] > 0 { rowKL += p[i * k + j] * (logp[i * k + j] - logq[j]) }
        kl += rowKL
      }
      scores.append(Foundation.exp(kl / Double(hi - lo)))
    }
    return meanAndPopulationStd(scores)
  }

  static func meanAndPopulationStd(_ v: [Double]) -> (mean: Double, std: Double) {
    let mean = v.reduce(0, +) / Double(v.count)
    let variance = v.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(v.count)
    return (mean, variance.squareRoot())
  }

  // MARK: - Kernel Inception Distance

  /// KID (Bińkowski et al. 2018): the unbiased MMD² estimate with the polynomial kernel
  /// k(x, y) = (γ xᵀy + c)^degree (γ = 1/D by default, c = 1, degree 3), averaged over
  /// `subsets` random subsets of `subsetSize` rows drawn without replacement from each set;
  /// returns the mean and the population standard deviation over subsets.
  ///   MMD²ᵤ = (ΣK_XX − tr K_XX + ΣK_YY − tr K_YY) / (m(m−1)) − 2 ΣK_XY / m²
  /// Subsets come from NumPy's RandomState(seed): for each subset, choice(N_A, m) then
  /// choice(N_B, m), exactly as torch-fidelity's `kid_features_to_metric` (default seed 2020),
  /// so with the same seed both pick the same rows. Computed in float64 (the references use
  /// float32, about 1e-6 relative away).
  public static func kernelInceptionDistance(_ a: Tensor, _ b: Tensor, subsets: Int = 100, subsetSize: Int = 1000,
                                             degree: Int = 3, gamma: Double? = nil, coef0: Double = 1, seed: UInt32 = 2020,
                                             function: String = "metrics.kid") throws -> (mean: Double, std: Double) {
    try checkMetricInput(a, b, function: "kernelInceptionDistance")   // linear in the logical size
    // Bounds keep every request a finite amount of work (the defaults are 100, 1000 and 3).
    guard subsets >= 1, subsets <= 100_000 else { throw TensorError("\(function): subsets must be in 1..100000, got \(subsets)") }
    guard subsetSize >= 2 else { throw TensorError("\(function): subsetSize must be at least 2, got \(subsetSize)") }
    guard degree >= 1, degree <= 64 else { throw TensorError("\(function): degree must be in 1..64, got \(degree)") }
    guard coef0.isFinite, gamma.map({ $0.isFinite }) ?? true else { throw TensorError("\(function): gamma and coef0 must be finite") }
    let fa = try Features(a, "featsA", function), fb = try Features(b, "featsB", function)
    try requireSameWidth(fa, fb, ("featsA", "featsB"), function)
    for (f, name) in [(fa, "featsA"), (fb, "featsB")] where f.rows < subsetSize {
      throw TensorError("\(function): too few samples in \(name): \(f.rows) rows, fewer than subsetSize=\(subsetSize) (pass a smaller {subsetSize=})")
    }
    try Storage.checkAllocatable(count: try Checked.mul(subsetSize, subsetSize, function), elementBytes: 8, what: "\(function)'s kernel matrix")
    let d = fa.dims, m = subsetSize
    let g = gamma ?? 1 / Double(d)
    var rng = NumpyRandomState(seed: seed)
    @inline(__always) func power(_ x: Double) -> Double { var r = x; for _ in 1..<degree { r *= x }; return r }
    /// Σ of k over X Yᵀ, and its trace when square.
    func kernelSum(_ x: [Double], _ y: [Double]) -> (sum: Double, trace: Double) {
      var k = [Double](repeating: 0, count: m * m)
      BLAS.gemm(transB: true, M: m, N: m, K: d, alpha: g, A: x, lda: d, B: y, ldb: d, C: &k, ldc: m)
      var sum = 0.0, trace = 0.0
      for i in 0..<m {
        var rowSum = 0.0
        for j in 0..<m { rowSum += power(k[i * m + j] + coef0) }
        sum += rowSum
        trace += power(k[i * m + i] + coef0)
      }
      return (sum, trace)
    }
    var values: [Double] = []
    for _ in 0..<subsets {
      let x = fa.gather(rng.choiceWithoutReplacement(fa.rows, m))
      let y = fb.gather(rng.choiceWithoutReplacement(fb.rows, m))
      let kxx = kernelSum(x, x), kyy = kernelSum(y, y), kxy = kernelSum(x, y)
      let md = Double(m)
      values.append((kxx.sum - kxx.trace + kyy.sum - kyy.trace) / (md * (md - 1)) - 2 * kxy.sum / (md * md))
    }
    return meanAndPopulationStd(values)
  }

  // MARK: - Precision and recall

  /// Improved precision and recall (Kynkäänniemi et al. 2019): each set's manifold is the
  /// union of balls around its samples with radius the distance to the k-th nearest other
  /// sample of the same set. Precision = fraction of `fake` rows inside the real manifold;
  /// recall = fraction of `real` rows inside the fake manifold; membership counts ties
  /// (distance ≤ radius). Euclidean distances in float64 as √max(‖a‖² − 2a·b + ‖b‖², 0),
  /// radii = kthvalue(k + 1) of each row of the set's own distance matrix (the row includes
  /// the sample itself), as torch-fidelity's `calculate_precision_recall_full`.
  /// Returns precision, recall and F = 2PR / max(P + R, 1e-5).
  public static func precisionRecall(real: Tensor, fake: Tensor, k: Int = 3,
                                     function: String = "metrics.precisionRecall") throws -> (precision: Double, recall: Double, fScore: Double) {
    try checkMetricInput(real, fake, function: "precisionRecall")   // linear in the logical size
    guard k >= 1, k < 1 << 40 else { throw TensorError("\(function): k must be at least 1 and less than the number of samples, got \(k)") }
    let r = try Features(real, "real", function, minRows: k + 1), f = try Features(fake, "fake", function, minRows: k + 1)
    try requireSameWidth(r, f, ("real", "fake"), function)
    let radiiReal = kNearestRadii(r, k), radiiFake = kNearestRadii(f, k)
    var fakeInReal = [Bool](repeating: false, count: f.rows), realInFake = [Bool](repeating: false, count: r.rows)
    forDistanceBlocks(f, r) { i0, rowsInBlock, dist in
      for bi in 0..<rowsInBlock {
        let row = bi * r.rows
        for j in 0..<r.rows {
          let dij = dist[row + j]
          if dij <= radiiReal[j] { fakeInReal[i0 + bi] = true }
          if dij <= radiiFake[i0 + bi] { realInFake[j] = true }
        }
      }
    }
    let precision = Double(fakeInReal.filter { $0 }.count) / Double(f.rows)
    let recall = Double(realInFake.filter { $0 }.count) / Double(r.rows)
    return (precision, recall, 2 * precision * recall / Swift.max(1e-5, precision + recall))
  }

  /// For each row of `x`, its distance to the k-th nearest row of `x` other than itself
  /// (the (k+1)-th smallest in its row of the distance matrix, which includes itself).
  static func kNearestRadii(_ x: Features, _ k: Int) -> [Double] {
    var radii = [Double](repeating: 0, count: x.rows)
    radii.withUnsafeMutableBufferPointer { out in
      forDistanceBlocks(x, x) { i0, rowsInBlock, dist in
        Parallel.forChunks(rowsInBlock, grain: 16) { range in
          var smallest = [Double](repeating: .infinity, count: k + 1)  // ascending
          for bi in range {
            for t in 0...k { smallest[t] = .infinity }
            let row = bi * x.rows
            for j in 0..<x.rows {
              let v = dist[row + j]
              if v < smallest[k] {
                var t = k
                while t > 0 && smallest[t - 1] > v { smallest[t] = smallest[t - 1]; t -= 1 }
                smallest[t] = v
              }
            }
            out[i0 + bi] = smallest[k]
          }
        }
      }
    }
    return radii
  }

  /// Calls `body(firstRow, rowCount, distances)` for blocks of rows of `a`, with the
  /// Euclidean distances from those rows to every row of `b` (rowCount × b.rows, row-major).
  static func forDistanceBlocks(_ a: Features, _ b: Features, _ body: (Int, Int, UnsafeMutablePointer<Double>) -> Void) {
    let d = a.dims, block = Swift.max(1, Swift.min(a.rows, (1 << 24) / Swift.max(1, b.rows)))
    let na = a.squaredNorms(), nb = b.squaredNorms()
    let dist = UnsafeMutablePointer<Double>.allocate(capacity: block * b.rows)
    defer { dist.deallocate() }
    a.values.withUnsafeBufferPointer { pa in
      var i0 = 0
      while i0 < a.rows {
        let count = Swift.min(block, a.rows - i0)
        BLAS.gemm(transB: true, M: count, N: b.rows, K: d, alpha: -2, A: pa.baseAddress! + i0 * d, lda: d,
                  B: b.values, ldb: d, C: dist, ldc: b.rows)
        Parallel.forChunks(count, grain: 16) { range in
          for bi in range {
            let row = bi * b.rows
            for j in 0..<b.rows { dist[row + j] = Swift.max(dist[row + j] + na[i0 + bi] + nb[j], 0).squareRoot() }
          }
        }
        body(i0, count, dist)
        i0 += count
      }
    }
  }
}

/// Metrics read every element of their inputs (as float64, in blocks or whole): an input
/// whose logical size could not be held as float64 (an expanded view of 2^34 rows, say) is
/// refused before hours of work on it.
func checkMetricInput(_ inputs: Tensor..., function: String) throws {
  for t in inputs {
    try Storage.checkAllocatable(count: t.numel, elementBytes: 8, what: "\(function)'s input of shape \(formatShape(t.shape)) as float64")
  }
}
