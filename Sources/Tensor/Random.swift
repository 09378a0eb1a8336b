import Foundation

/// The one seeded generator (DESIGN.md house decision 7): xoshiro256** seeded through splitmix64.
/// Draws happen on the calling thread in a fixed order, so the stream is the same for any
/// thread count, and its 256-bit state can be saved and restored for bit-exact resume.
public final class Generator {
  public private(set) var state: (UInt64, UInt64, UInt64, UInt64)

  public init(seed: UInt64) {
    state = (0, 0, 0, 0)
    self.seed(seed)
  }

  /// Restarts the stream from `seed` (tensor.manualSeed).
  public func seed(_ seed: UInt64) {
    var z = seed
    func splitmix() -> UInt64 {
      z &+= 0x9E37_79B9_7F4A_7C15
      var r = z
      r = (r ^ (r >> 30)) &* 0xBF58_476D_1CE4_E5B9
      r = (r ^ (r >> 27)) &* 0x94D0_49BB_1331_11EB
      return r ^ (r >> 31)
    }
    state = (splitmix(), splitmix(), splitmix(), splitmix())
  }

  /// The state as four words (for checkpoints); `restore` takes them back.
  public var words: [UInt64] { [state.0, state.1, state.2, state.3] }

  /// Restores a state saved from `words`. All zeros is refused: xoshiro's one fixed point,
  /// from which it would return 0 forever (and rejection samplers would never finish).
  public func restore(_ w: [UInt64]) throws {
    guard w.count == 4 else { throw TensorError("setRNGState: expected 4 words, got \(w.count)") }
    guard w.contains(where: { $0 != 0 }) else { throw TensorError("setRNGState: an all-zero state is not a valid generator state") }
    state = (w[0], w[1], w[2], w[3])
  }

  @inline(__always) public func next() -> UInt64 {
    let result = rotl(state.1 &* 5, 7) &* 9
    let t = state.1 << 17
    state.2 ^= state.0
    state.3 ^= state.1
    state.1 ^= state.2
    state.0 ^= state.3
    state.2 ^= t
    state.3 = rotl(state.3, 45)
    return result
  }
  @inline(__always) private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

  /// Uniform in [0, 1) with 53 random bits.
  @inline(__always) public func uniform() -> Double { Double(next() >> 11) * 0x1.0p-53 }
  /// Uniform in (0, 1].
  @inline(__always) func uniformOpenZero() -> Double { (Double(next() >> 11) + 1) * 0x1.0p-53 }

  /// A standard normal pair by Box–Muller.
  @inline(__always) public func normalPair() -> (Double, Double) {
    let r = (-2 * Foundation.log(uniformOpenZero())).squareRoot()
    let theta = 2 * Double.pi * uniform()
    return (r * Foundation.cos(theta), r * Foundation.sin(theta))
  }

  /// A standard normal draw (uses one pair; the second value is discarded, so every call
  /// consumes the same amount of stream).
  public func normal() -> Double { normalPair().0 }

  /// Uniform integer in lo...hi.
  public func integer(_ lo: Int, _ hi: Int) -> Int {
    let span = UInt64(bitPattern: Int64(hi &- lo)) &+ 1  // hi >= lo: the difference fits in 64 bits unsigned
    if span == 0 { return lo &+ Int(bitPattern: UInt(next())) }
    // Lemire's nearly divisionless method, with rejection for exact uniformity.
    var m = next().multipliedFullWidth(by: span)
    if m.low < span {
      let t = (0 &- span) % span
      while m.low < t { m = next().multipliedFullWidth(by: span) }
    }
    return lo &+ Int(bitPattern: UInt(m.high))
  }

  /// A uniformly random permutation of 0..<n (Fisher–Yates).
  public func permutation(_ n: Int) -> [Int] {
    var p = Array(0..<n)
    if n > 1 { for i in stride(from: n - 1, to: 0, by: -1) { p.swapAt(i, integer(0, i)) } }
    return p
  }

  /// The process-wide generator behind tensor.rand, randn and every initializer.
  nonisolated(unsafe) public static let global = Generator(seed: 0x5EED)
}

extension Tensor {
  /// A fresh tensor of `shape` filled by `next()`, element by element in order. The tensor is
  /// allocated first, so an absurd size fails before any work is done.
  static func generated(_ shape: [Int], dtype: DType, _ next: () -> Double) throws -> Tensor {
    let t = try empty(shape, dtype: dtype)
    switch dtype {
    case .float32: let p = t.pointer(Float.self); for i in 0..<t.numel { p[i] = Float(next()) }
    case .float64: let p = t.pointer(Double.self); for i in 0..<t.numel { p[i] = next() }
    }
    return t
  }

  /// Uniform values in [lo, hi). Reference: torch.rand.
  public static func rand(_ shape: [Int], lo: Double = 0, hi: Double = 1, dtype: DType = .float32, generator: Generator = .global) throws -> Tensor {
    try generated(shape, dtype: dtype) { lo + (hi - lo) * generator.uniform() }
  }

  /// Standard normal values (times std, plus mean). Reference: torch.randn.
  public static func randn(_ shape: [Int], mean: Double = 0, std: Double = 1, dtype: DType = .float32, generator: Generator = .global) throws -> Tensor {
    var spare: Double? = nil  // Box–Muller gives pairs; the second half feeds the next element
    return try generated(shape, dtype: dtype) {
      if let s = spare { spare = nil; return mean + std * s }
      let (a, b) = generator.normalPair()
      spare = b
      return mean + std * a
    }
  }

  /// Standard normal values with every |x| > threshold resampled: the truncated normal of
  /// BigGAN's truncation trick (a threshold on |z|, not a rescaling). Sampling never loops
  /// unboundedly: small thresholds use a uniform proposal, whose acceptance is >= 60%.
  public static func truncNormal(_ shape: [Int], threshold: Double, dtype: DType = .float32, generator: Generator = .global) throws -> Tensor {
    guard threshold > 0, !threshold.isNaN else {
      throw TensorError("truncNormal: threshold must be positive, got \(threshold)")
    }
    return try generated(shape, dtype: dtype) {
      if threshold >= 1 {
        var x = generator.normal()
        while Swift.abs(x) > threshold { x = generator.normal() }
        return x
      }
      while true {
        let x = threshold * (2 * generator.uniform() - 1)
        if generator.uniform() <= Foundation.exp(-0.5 * x * x) { return x }
      }
    }
  }

  /// Uniform integers in lo...hi (inclusive, like Lua's math.random), as float values.
  public static func randint(_ lo: Int, _ hi: Int, _ shape: [Int], dtype: DType = .float32, generator: Generator = .global) throws -> Tensor {
    guard lo <= hi else { throw TensorError("randint: empty range \(lo)..\(hi)") }
    return try generated(shape, dtype: dtype) { Double(generator.integer(lo, hi)) }
  }

  /// A random permutation of 0..<n as float values. Reference: torch.randperm.
  public static func randperm(_ n: Int, dtype: DType = .float32, generator: Generator = .global) throws -> Tensor {
    let t = try empty([n], dtype: dtype)  // sized first: refuses absurd n before building the permutation
    try Storage.checkAllocatable(count: n, elementBytes: 8, what: "randperm's permutation")
    let p = generator.permutation(n)
    var i = 0
    return try generated([n], dtype: dtype) { defer { i += 1 }; _ = t; return Double(p[i]) }
  }

  /// start, start+step, ... up to but excluding end. Reference: torch.arange.
  public static func arange(_ start: Double, _ end: Double, step: Double = 1, dtype: DType = .float32) throws -> Tensor {
    guard step != 0, step.isFinite, start.isFinite, end.isFinite else {
      throw TensorError("arange: step must be nonzero and bounds finite, got start \(start), end \(end), step \(step)")
    }
    let steps = Foundation.ceil((end - start) / step)
    guard steps < 1e15 else { throw TensorError("arange: \(steps) elements do not fit in memory") }
    let count = Swift.max(0, Int(steps))
    var i = 0
    return try generated([count], dtype: dtype) { defer { i += 1 }; return start + Double(i) * step }
  }

  /// `steps` evenly spaced values from start to end, both included: start + i·(end−start)/(steps−1).
  /// Reference: torch.linspace, whose CPU kernel counts the second half back from `end` so that
  /// the last value is `end` exactly; so does this.
  public static func linspace(_ start: Double, _ end: Double, steps: Int, dtype: DType = .float32) throws -> Tensor {
    guard start.isFinite, end.isFinite else { throw TensorError("linspace: bounds must be finite, got \(start) and \(end)") }
    guard steps >= 0 else { throw TensorError("linspace: steps must be >= 0, got \(steps)") }
    let step = steps > 1 ? (end - start) / Double(steps - 1) : 0
    let half = steps / 2
    var i = 0
    return try generated([steps], dtype: dtype) {
      defer { i += 1 }
      return i < half || steps == 1 ? start + step * Double(i) : end - step * Double(steps - 1 - i)
    }
  }

  /// The n×m identity matrix. Reference: torch.eye.
  public static func eye(_ n: Int, _ m: Int? = nil, dtype: DType = .float32) throws -> Tensor {
    let cols = m ?? n
    let t = try zeros([n, cols], dtype: dtype)
    for i in 0..<Swift.min(n, cols) {
      switch dtype {
      case .float32: t.pointer(Float.self)[i * cols + i] = 1
      case .float64: t.pointer(Double.self)[i * cols + i] = 1
      }
    }
    return t
  }
}
