import COpenBLAS
import Foundation
import Tensor

/// PGGAN's image-statistics metrics (Karras et al. 2018, §5 and appendix): the multi-scale
/// sliced Wasserstein distance and MS-SSIM, as tkarras/progressive_growing_of_gans computes
/// them (metrics/sliced_wasserstein.py, metrics/ms_ssim.py). Images arrive as float (N, C, H, W)
/// tensors in `range` and are converted to 0…255 as PGGAN converts its fakes:
/// rint((x − lo)/(hi − lo)·255) clipped to [0, 255] (uint8), unless `quantize` is false.
public enum ImageMetrics {
  /// Images as 0…255 Float planes, validated.
  struct Images {
    let n, c, h, w: Int
    let values: [Float]  // (n, c, h, w)

    init(_ x: Tensor, _ name: String, _ function: String, range: (Double, Double), quantize: Bool) throws {
      guard x.rank == 4 else { throw TensorError("\(function): \(name) must be a 4-D (N, C, H, W) image batch, got shape \(formatShape(x.shape))") }
      guard range.1 > range.0 else { throw TensorError("\(function): range must be {lo, hi} with lo < hi, got {\(range.0), \(range.1)}") }
      n = x.shape[0]; c = x.shape[1]; h = x.shape[2]; w = x.shape[3]
      guard n >= 1, c >= 1, h >= 1, w >= 1 else { throw TensorError("\(function): \(name) is empty (shape \(formatShape(x.shape)))") }
      let raw = try x.toArray()
      if let bad = raw.firstIndex(where: { !$0.isFinite }) {
        throw TensorError("\(function): \(name) contains NaN or infinite values (first at image \(bad / (c * h * w) + 1))")
      }
      let scale = 255 / (range.1 - range.0), lo = range.0
      values = raw.map { v in
        let s = (v - lo) * scale
        return Float(quantize ? Swift.min(Swift.max(s.rounded(.toNearestOrEven), 0), 255) : s)
      }
    }
  }

  // MARK: - Sliced Wasserstein distance

  /// Settings of the SWD protocol; the defaults are the paper's (16384 images per set in the
  /// paper; the image count is the caller's).
  public struct SWDOptions {
    public var neighborhoodSize = 7
    public var neighborhoodsPerImage = 128
    public var directionRepeats = 4
    public var directionsPerRepeat = 128
    public var minResolution = 16
    public var seed: UInt32 = 2020
    public var range: (Double, Double) = (-1, 1)
    public var quantize = true
    public init() {}
  }

  /// PGGAN's multi-scale sliced Wasserstein distance between two image sets, ×10³ per level.
  /// For each level of a Laplacian pyramid (5-tap binomial filter, reflect-101 borders; levels
  /// at H, H/2, … down to `minResolution`, the last being the Gaussian residual), it takes
  /// `neighborhoodsPerImage` random 7×7×C patches per image (centres uniform in [3, S−4]),
  /// normalises each set's patches per channel with its own mean and (population) std, and
  /// averages over `directionRepeats`×`directionsPerRepeat` random unit directions the mean
  /// absolute difference of the two sorted projections. Returns the resolutions, the values
  /// ×10³ per level and their mean (PGGAN's SWDx1e3_<res> and SWDx1e3_avg).
  ///
  /// Random draws come from NumPy's RandomState(seed) in the order of PGGAN's API with each
  /// set fed as one minibatch: set A's patch centres for every level (x then y), then set
  /// B's, then per level `directionRepeats` draws of randn(C·k², directionsPerRepeat).
  /// Patches are laid out as PGGAN's ogrid indexing makes them (channel, column, row).
  public static func slicedWasserstein(_ a: Tensor, _ b: Tensor, options o: SWDOptions = SWDOptions(),
                                       function: String = "metrics.swd") throws -> (resolutions: [Int], values: [Double], average: Double) {
    try checkMetricInput(a, b, function: "slicedWasserstein")   // linear in the logical size
    let A = try Images(a, "imagesA", function, range: o.range, quantize: o.quantize)
    let B = try Images(b, "imagesB", function, range: o.range, quantize: o.quantize)
    guard A.n == B.n, A.c == B.c, A.h == B.h, A.w == B.w else {
      throw TensorError("\(function): imagesA and imagesB must have the same shape (as many images, same channels and size), got \(formatShape(a.shape)) and \(formatShape(b.shape))")
    }
    let k = o.neighborhoodSize, half = k / 2
    guard k >= 1, k % 2 == 1 else { throw TensorError("\(function): nhoodSize must be a positive odd number, got \(k)") }
    guard o.neighborhoodsPerImage >= 1, o.directionRepeats >= 1, o.directionsPerRepeat >= 1 else {
      throw TensorError("\(function): nhoodsPerImage, dirRepeats and dirsPerRepeat must be at least 1")
    }
    guard o.minResolution >= k else { throw TensorError("\(function): minResolution must be at least the patch size \(k), got \(o.minResolution)") }
    // Bounds keep the work finite (PGGAN's defaults: 7, 128, 4 and 128).
    guard k <= 255, o.neighborhoodsPerImage <= 1 << 20, o.directionRepeats <= 1 << 16, o.directionsPerRepeat <= 1 << 16,
          o.directionRepeats * o.directionsPerRepeat <= 1 << 20 else {
      throw TensorError("\(function): nhoodSize (<= 255), nhoodsPerImage (<= 2^20), dirRepeats and dirsPerRepeat (<= 2^16 each, product <= 2^20) are too large")
    }
    let patches = try Checked.mul(A.n, o.neighborhoodsPerImage, function), dims = A.c * k * k
    try Storage.checkAllocatable(count: try Checked.mul(patches, dims, function), elementBytes: 12, what: "\(function)'s descriptors")
    try Storage.checkAllocatable(count: try Checked.mul(dims, o.directionsPerRepeat, function), elementBytes: 16, what: "\(function)'s directions")
    var resolutions: [Int] = []
    var res = A.h
    while res >= o.minResolution { resolutions.append(res); res /= 2 }
    guard !resolutions.isEmpty else {
      throw TensorError("\(function): images of height \(A.h) are smaller than minResolution=\(o.minResolution)")
    }
    let levels = resolutions.count, factor = 1 << (levels - 1)
    guard A.h % factor == 0, A.w % factor == 0, A.w >> (levels - 1) >= k else {
      throw TensorError("\(function): a \(levels)-level pyramid needs height and width divisible by \(factor) (and at least \(k) px at the last level), got \(A.h)x\(A.w)")
    }

    var rng = NumpyRandomState(seed: o.seed)
    // Patch centres: [set][level] -> (x, y), one per patch (image-major).
    func drawCentres(_ n: Int) -> [(x: [Int], y: [Int])] {
      (0..<levels).map { l in
        let s = (A.h >> l, A.w >> l), count = n * o.neighborhoodsPerImage
        let xs = (0..<count).map { _ in rng.randint(half, s.1 - half) }
        let ys = (0..<count).map { _ in rng.randint(half, s.0 - half) }
        return (xs, ys)
      }
    }
    let centresA = drawCentres(A.n), centresB = drawCentres(B.n)

    var values: [Double] = []
    for l in 0..<levels {
      let descA = try descriptors(A, level: l, levels: levels, centres: centresA[l], k: k, perImage: o.neighborhoodsPerImage, function: function, name: "imagesA")
      let descB = try descriptors(B, level: l, levels: levels, centres: centresB[l], k: k, perImage: o.neighborhoodsPerImage, function: function, name: "imagesB")
      values.append(1e3 * slicedDistance(descA, A.n * o.neighborhoodsPerImage, descB, B.n * o.neighborhoodsPerImage,
                                         dims: A.c * k * k, repeats: o.directionRepeats, perRepeat: o.directionsPerRepeat, rng: &rng))
    }
    return (resolutions, values, values.reduce(0, +) / Double(values.count))
  }

  /// The normalised (patches, C·k·k) descriptors of one pyramid level of a set.
  static func descriptors(_ im: Images, level l: Int, levels: Int, centres: (x: [Int], y: [Int]), k: Int, perImage: Int,
                          function: String, name: String) throws -> [Float] {
    let half = k / 2, dims = im.c * k * k
    let sw = im.w >> l
    var desc = [Float](repeating: 0, count: im.n * perImage * dims)
    let plane = im.h * im.w
    desc.withUnsafeMutableBufferPointer { out in
      im.values.withUnsafeBufferPointer { src in
        Parallel.forChunks(im.n, grain: 8) { range in
          for i in range {
            for ch in 0..<im.c {
              let band = laplacianBand(Array(src[((i * im.c + ch) * plane)..<((i * im.c + ch + 1) * plane)]), h: im.h, w: im.w, level: l, levels: levels)
              for p in 0..<perImage {
                let patch = i * perImage + p, cx = centres.x[patch], cy = centres.y[patch]
                let base = patch * dims + ch * k * k
                for a in 0..<k {  // a: column offset (PGGAN's ogrid "x" axis comes first)
                  for b in 0..<k { out[base + a * k + b] = band[(cy + b - half) * sw + (cx + a - half)] }
                }
              }
            }
          }
        }
      }
    }
    // Per-channel normalisation over all patches and pixels of this set.
    let count = im.n * perImage
    for ch in 0..<im.c {
      var sum = 0.0
      for p in 0..<count { for t in 0..<(k * k) { sum += Double(desc[p * dims + ch * k * k + t]) } }
      let mean = sum / Double(count * k * k)
      var sq = 0.0
      for p in 0..<count { for t in 0..<(k * k) { let d = Double(desc[p * dims + ch * k * k + t]) - mean; sq += d * d } }
      let std = (sq / Double(count * k * k)).squareRoot()
      guard std > 0 else {
        throw TensorError("\(function): \(name) is constant in channel \(ch + 1) at pyramid level \(l + 1) (\(im.h >> l)px): SWD is undefined for it")
      }
      let m = Float(mean), s = Float(std)
      for p in 0..<count { for t in 0..<(k * k) { let j = p * dims + ch * k * k + t; desc[j] = (desc[j] - m) / s } }
    }
    return desc
  }

  /// Level `l` of the Laplacian pyramid of one plane (float32 values, double accumulation,
  /// as scipy.ndimage.convolve on float32 arrays): G₀ = image, Gᵢ₊₁ = pyrDown(Gᵢ); band l is
  /// G_l − pyrUp(G_{l+1}), except the last level, which is the Gaussian residual G_{L−1}.
  static func laplacianBand(_ image: [Float], h: Int, w: Int, level l: Int, levels: Int) -> [Float] {
    var g = image, gh = h, gw = w
    for _ in 0..<l { g = pyramidDown(g, gh, gw); gh /= 2; gw /= 2 }
    if l == levels - 1 { return g }
    let up = pyramidUp(pyramidDown(g, gh, gw), gh / 2, gw / 2)
    for i in 0..<g.count { g[i] -= up[i] }
    return g
  }

  /// The binomial taps [1 4 6 4 1]/16; the 2-D filter is their outer product (PGGAN's /256 kernel).
  static let binomial: [Double] = [1, 4, 6, 4, 1].map { $0 / 16 }

  /// Reflect-101 index (scipy's mode='mirror', OpenCV's BORDER_REFLECT_101): d c b | a b c d | c b a.
  @inline(__always) static func mirror(_ i: Int, _ n: Int) -> Int {
    if n == 1 { return 0 }
    var j = i
    while j < 0 || j >= n { j = j < 0 ? -j : 2 * (n - 1) - j }
    return j
  }

  /// cv2.pyrDown: blur with the 5×5 binomial filter (mirror borders), keep even rows and columns.
  static func pyramidDown(_ x: [Float], _ h: Int, _ w: Int) -> [Float] {
    let oh = (h + 1) / 2, ow = (w + 1) / 2
    var rows = [Double](repeating: 0, count: h * ow)  // horizontal pass at even columns
    for y in 0..<h {
      for ox in 0..<ow {
        var s = 0.0
        for t in 0..<5 { s += binomial[t] * Double(x[y * w + mirror(2 * ox + t - 2, w)]) }
        rows[y * ow + ox] = s
      }
    }
    var out = [Float](repeating: 0, count: oh * ow)
    for oy in 0..<oh {
      for ox in 0..<ow {
        var s = 0.0
        for t in 0..<5 { s += binomial[t] * rows[mirror(2 * oy + t - 2, h) * ow + ox] }
        out[oy * ow + ox] = Float(s)
      }
    }
    return out
  }

  /// cv2.pyrUp: zero-stuff to (2h, 2w) and blur with 4× the binomial filter (mirror borders).
  static func pyramidUp(_ x: [Float], _ h: Int, _ w: Int) -> [Float] {
    let uh = 2 * h, uw = 2 * w
    @inline(__always) func stuffed(_ y: Int, _ xx: Int) -> Double { (y % 2 == 0 && xx % 2 == 0) ? Double(x[(y / 2) * w + xx / 2]) : 0 }
    var rows = [Double](repeating: 0, count: uh * uw)
    for y in stride(from: 0, to: uh, by: 2) {  // odd rows of the stuffed image are zero
      for xx in 0..<uw {
        var s = 0.0
        for t in 0..<5 { s += 2 * binomial[t] * stuffed(y, mirror(xx + t - 2, uw)) }
        rows[y * uw + xx] = s
      }
    }
    var out = [Float](repeating: 0, count: uh * uw)
    for y in 0..<uh {
      for xx in 0..<uw {
        var s = 0.0
        for t in 0..<5 { s += 2 * binomial[t] * rows[mirror(y + t - 2, uh) * uw + xx] }
        out[y * uw + xx] = Float(s)
      }
    }
    return out
  }

  /// Mean over random unit directions of the mean |sort(A·d) − sort(B·d)| (PGGAN's
  /// `sliced_wasserstein`); A and B hold the same number of descriptors (`rows`, `dims`).
  static func slicedDistance(_ a: [Float], _ na: Int, _ b: [Float], _ nb: Int, dims: Int, repeats: Int, perRepeat: Int,
                             rng: inout NumpyRandomState) -> Double {
    precondition(na == nb)
    let rows = na
    var results: [Double] = []
    let group = Swift.max(1, Swift.min(perRepeat, (1 << 25) / Swift.max(1, rows)))
    var projA = [Float](repeating: 0, count: group * rows), projB = projA
    for _ in 0..<repeats {
      // dirs: randn(dims, perRepeat) in row-major order, columns normalised in float64, then float32.
      var dirs = [Double](repeating: 0, count: dims * perRepeat)
      for i in 0..<dirs.count { dirs[i] = rng.standardNormal() }
      var dirsT = [Float](repeating: 0, count: perRepeat * dims)  // (direction, component)
      for j in 0..<perRepeat {
        var n = 0.0
        for i in 0..<dims { n += dirs[i * perRepeat + j] * dirs[i * perRepeat + j] }
        n = n.squareRoot()
        for i in 0..<dims { dirsT[j * dims + i] = Float(dirs[i * perRepeat + j] / n) }
      }
      var total = 0.0
      var j0 = 0
      while j0 < perRepeat {
        let g = Swift.min(group, perRepeat - j0)
        // proj (g, rows) = dirsᵀ[j0..<j0+g] · descᵀ
        dirsT.withUnsafeBufferPointer { d in
          BLAS.gemm(transB: true, M: g, N: rows, K: dims, A: d.baseAddress! + j0 * dims, lda: dims, B: a, ldb: dims, C: &projA, ldc: rows)
          BLAS.gemm(transB: true, M: g, N: rows, K: dims, A: d.baseAddress! + j0 * dims, lda: dims, B: b, ldb: dims, C: &projB, ldc: rows)
        }
        var partial = [Double](repeating: 0, count: g)
        projA.withUnsafeMutableBufferPointer { pa in
          projB.withUnsafeMutableBufferPointer { pb in
            partial.withUnsafeMutableBufferPointer { out in
              Parallel.forChunks(g, grain: 1) { range in
                var scratch = [UInt32](repeating: 0, count: rows)
                for r in range {
                  radixSort(pa.baseAddress! + r * rows, rows, &scratch)
                  radixSort(pb.baseAddress! + r * rows, rows, &scratch)
                  var s = 0.0
                  for i in 0..<rows { s += Double(Swift.abs(pa[r * rows + i] - pb[r * rows + i])) }
                  out[r] = s
                }
              }
            }
          }
        }
        total += partial.reduce(0, +)
        j0 += g
      }
      results.append(total / Double(rows * perRepeat))
    }
    return results.reduce(0, +) / Double(results.count)
  }

  /// Sorts `count` finite floats ascending in place: LSD radix sort on order-preserving keys
  /// (sign bit flipped for positives, all bits for negatives), three passes of 11/11/10 bits.
  static func radixSort(_ x: UnsafeMutablePointer<Float>, _ count: Int, _ scratch: inout [UInt32]) {
    if count < 2 { return }
    if scratch.count < count { scratch = [UInt32](repeating: 0, count: count) }
    x.withMemoryRebound(to: UInt32.self, capacity: count) { keys in
      for i in 0..<count { let u = keys[i]; keys[i] = (u & 0x8000_0000) != 0 ? ~u : u | 0x8000_0000 }
      scratch.withUnsafeMutableBufferPointer { tmp in
        var src = keys, dst = tmp.baseAddress!
        for (shift, bits) in [(0, 11), (11, 11), (22, 10)] {
          let buckets = 1 << bits, mask = UInt32(buckets - 1)
          var counts = [Int](repeating: 0, count: buckets + 1)
          for i in 0..<count { counts[Int((src[i] >> UInt32(shift)) & mask) + 1] += 1 }
          for i in 0..<buckets { counts[i + 1] += counts[i] }
          for i in 0..<count {
            let bucket = Int((src[i] >> UInt32(shift)) & mask)
            dst[counts[bucket]] = src[i]
            counts[bucket] += 1
          }
          swap(&src, &dst)
        }
        // Three passes leave the result in the scratch buffer.
        if src != keys { keys.update(from: src, count: count) }
      }
      for i in 0..<count { let u = keys[i]; keys[i] = (u & 0x8000_0000) != 0 ? u & 0x7FFF_FFFF : ~u }
    }
  }

  // MARK: - MS-SSIM

  /// Settings of MS-SSIM; the defaults are PGGAN's (from tensorflow/models' msssim.py).
  public struct MSSSIMOptions {
    public var weights: [Double] = [0.0448, 0.2856, 0.3001, 0.2363, 0.1333]
    public var filterSize = 11
    public var filterSigma = 1.5
    public var k1 = 0.01
    public var k2 = 0.03
    public var maxValue = 255.0
    public var range: (Double, Double) = (-1, 1)
    public var quantize = true
    public init() {}
  }

  /// Mean MS-SSIM (Wang et al. 2003) over the pairs (a[i], b[i]): at each of the 5 scales an
  /// SSIM map with a Gaussian window of size min(11, H, W) and sigma size·1.5/11 (MATLAB's
  /// fspecial), 'valid' filtering per channel, then a 2×2 box downsample; luminance·contrast·
  /// structure at the coarsest scale and contrast·structure at the others, clipped at 0, are
  /// combined as Π csₗ^wₗ · ssim_L^w_L. Reference: PGGAN metrics/ms_ssim.py `msssim`.
  public static func msssim(_ a: Tensor, _ b: Tensor, options o: MSSSIMOptions = MSSSIMOptions(),
                            function: String = "metrics.msssim") throws -> Double {
    try checkMetricInput(a, b, function: "msssim")   // linear in the logical size
    let A = try Images(a, "a", function, range: o.range, quantize: o.quantize)
    let B = try Images(b, "b", function, range: o.range, quantize: o.quantize)
    guard a.shape == b.shape else {
      throw TensorError("\(function): a and b must have the same shape, got \(formatShape(a.shape)) and \(formatShape(b.shape))")
    }
    return try meanMSSSIM(A, B, pairs: (0..<A.n).map { ($0, $0) }, o, function)
  }

  /// PGGAN's diversity measure: mean MS-SSIM over the pairs (x[1], x[2]), (x[3], x[4]), …
  /// of one batch of generated images (lower = more diverse).
  public static func msssimDiversity(_ x: Tensor, options o: MSSSIMOptions = MSSSIMOptions(),
                                     function: String = "metrics.msssimDiversity") throws -> Double {
    try checkMetricInput(x, function: "msssimDiversity")   // linear in the logical size
    let X = try Images(x, "images", function, range: o.range, quantize: o.quantize)
    guard X.n >= 2, X.n % 2 == 0 else {
      throw TensorError("\(function): images must hold an even number (at least 2) of images to pair, got \(X.n)")
    }
    return try meanMSSSIM(X, X, pairs: (0..<(X.n / 2)).map { (2 * $0, 2 * $0 + 1) }, o, function)
  }

  static func meanMSSSIM(_ A: Images, _ B: Images, pairs: [(Int, Int)], _ o: MSSSIMOptions, _ function: String) throws -> Double {
    let levels = o.weights.count
    guard levels >= 1, levels <= 16 else { throw TensorError("\(function): weights must hold 1 to 16 scale weights, got \(levels)") }
    guard o.filterSize >= 1, o.filterSize <= 255, o.filterSigma > 0, o.filterSigma.isFinite else {
      throw TensorError("\(function): filterSize must be in 1..255 and filterSigma positive")
    }
    guard o.weights.allSatisfy({ $0.isFinite }), o.k1.isFinite, o.k2.isFinite, o.maxValue.isFinite else {
      throw TensorError("\(function): weights, k1, k2 and maxValue must be finite")
    }
    let factor = 1 << (levels - 1)
    guard A.h % factor == 0, A.w % factor == 0 else {
      throw TensorError("\(function): \(levels) scales need height and width divisible by \(factor), got \(A.h)x\(A.w)")
    }
    let plane = A.c * A.h * A.w
    var scores = [Double](repeating: 0, count: pairs.count)
    scores.withUnsafeMutableBufferPointer { out in
      Parallel.forChunks(pairs.count, grain: 4) { range in
        for p in range {
          let (i, j) = pairs[p]
          var x = Array(A.values[(i * plane)..<((i + 1) * plane)]), y = Array(B.values[(j * plane)..<((j + 1) * plane)])
          var h = A.h, w = A.w
          var score = 1.0
          for l in 0..<levels {
            let (ssim, cs) = ssimAndContrast(x, y, c: A.c, h: h, w: w, o)
            score *= Foundation.pow(Swift.max(l == levels - 1 ? ssim : cs, 0), o.weights[l])
            if l < levels - 1 { x = boxDownsample(x, c: A.c, h: h, w: w); y = boxDownsample(y, c: A.c, h: h, w: w); h /= 2; w /= 2 }
          }
          out[p] = score
        }
      }
    }
    return scores.reduce(0, +) / Double(scores.count)
  }

  /// Mean SSIM and mean contrast-structure term of one image pair (C planes of h×w) at one scale.
  static func ssimAndContrast(_ x: [Float], _ y: [Float], c: Int, h: Int, w: Int, _ o: MSSSIMOptions) -> (Double, Double) {
    let size = Swift.min(o.filterSize, h, w)
    let sigma = Double(size) * o.filterSigma / Double(o.filterSize)
    let window = gaussianTaps(size, sigma)
    let c1 = (o.k1 * o.maxValue) * (o.k1 * o.maxValue), c2 = (o.k2 * o.maxValue) * (o.k2 * o.maxValue)
    let oh = h - size + 1, ow = w - size + 1
    var ssimSum = 0.0, csSum = 0.0
    for ch in 0..<c {
      let px = Array(x[(ch * h * w)..<((ch + 1) * h * w)]), py = Array(y[(ch * h * w)..<((ch + 1) * h * w)])
      // The squares and product are taken in float32, as the reference multiplies float32 arrays.
      let mu1 = filterValid(px, h, w, window), mu2 = filterValid(py, h, w, window)
      let s11 = filterValid(zip(px, px).map { $0 * $1 }, h, w, window)
      let s22 = filterValid(zip(py, py).map { $0 * $1 }, h, w, window)
      let s12 = filterValid(zip(px, py).map { $0 * $1 }, h, w, window)
      for t in 0..<(oh * ow) {
        let m11 = mu1[t] * mu1[t], m22 = mu2[t] * mu2[t], m12 = mu1[t] * mu2[t]
        let v1 = 2 * (s12[t] - m12) + c2, v2 = (s11[t] - m11) + (s22[t] - m22) + c2
        ssimSum += ((2 * m12 + c1) * v1) / ((m11 + m22 + c1) * v2)
        csSum += v1 / v2
      }
    }
    let count = Double(c * oh * ow)
    return (ssimSum / count, csSum / count)
  }

  /// MATLAB fspecial('gaussian', size, sigma) as 1-D taps (the 2-D window is their outer
  /// product): offsets −r…r, shifted by ½ for an even size, normalised to sum 1.
  static func gaussianTaps(_ size: Int, _ sigma: Double) -> [Double] {
    let start = Double(-(size / 2)) + (size % 2 == 0 ? 0.5 : 0)
    let g = (0..<size).map { Foundation.exp(-((start + Double($0)) * (start + Double($0))) / (2 * sigma * sigma)) }
    let s = g.reduce(0, +)
    return g.map { $0 / s }
  }

  /// 'valid' separable filtering of an h×w plane by taps⊗taps (symmetric, so convolution
  /// and correlation agree).
  static func filterValid(_ x: [Float], _ h: Int, _ w: Int, _ taps: [Double]) -> [Double] {
    let k = taps.count, oh = h - k + 1, ow = w - k + 1
    var rows = [Double](repeating: 0, count: h * ow)
    for y in 0..<h {
      for ox in 0..<ow {
        var s = 0.0
        for t in 0..<k { s += taps[t] * Double(x[y * w + ox + t]) }
        rows[y * ow + ox] = s
      }
    }
    var out = [Double](repeating: 0, count: oh * ow)
    for oy in 0..<oh {
      for ox in 0..<ow {
        var s = 0.0
        for t in 0..<k { s += taps[t] * rows[(oy + t) * ow + ox] }
        out[oy * ow + ox] = s
      }
    }
    return out
  }

  /// 2×2 box downsample in float32: (x[0::2,0::2] + x[1::2,0::2] + x[0::2,1::2] + x[1::2,1::2])·¼.
  static func boxDownsample(_ x: [Float], c: Int, h: Int, w: Int) -> [Float] {
    let oh = h / 2, ow = w / 2
    var out = [Float](repeating: 0, count: c * oh * ow)
    for ch in 0..<c {
      for y in 0..<oh {
        for xx in 0..<ow {
          let p = ch * h * w
          let s = x[p + 2 * y * w + 2 * xx] + x[p + (2 * y + 1) * w + 2 * xx] + x[p + 2 * y * w + 2 * xx + 1] + x[p + (2 * y + 1) * w + 2 * xx + 1]
          out[(ch * oh + y) * ow + xx] = s * 0.25
        }
      }
    }
    return out
  }
}
