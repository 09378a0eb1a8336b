import Foundation
import Tensor

/// Weight initializers, as torch.nn.init computes them (fans, gains, the QR of orthogonal).
/// Each writes in place without recording and draws from `generator`.
public enum Init {
  /// (fan_in, fan_out) of a weight: size(1)·receptive and size(0)·receptive.
  /// Reference: torch.nn.init._calculate_fan_in_and_fan_out.
  public static func fans(_ t: Tensor) throws -> (Int, Int) {
    guard t.rank >= 2 else { throw TensorError("init: fan in and fan out need a tensor of 2 or more dims, got \(formatShape(t.shape))") }
    let receptive = t.shape.dropFirst(2).reduce(1, *)
    return (t.shape[1] * receptive, t.shape[0] * receptive)
  }

  /// The recommended gain for a nonlinearity. Reference: torch.nn.init.calculate_gain.
  public static func gain(_ nonlinearity: String, _ param: Double? = nil) throws -> Double {
    switch nonlinearity {
    case "linear", "identity", "conv1d", "conv2d", "conv3d", "sigmoid": return 1
    case "tanh": return 5.0 / 3
    case "relu": return 2.0.squareRoot()
    case "leakyRelu", "leaky_relu":
      let a = param ?? 0.01
      return (2.0 / (1 + a * a)).squareRoot()
    case "selu": return 3.0 / 4
    default: throw TensorError("init: unknown nonlinearity '\(nonlinearity)' (linear, sigmoid, tanh, relu, leakyRelu, selu)")
    }
  }

  static func write(_ t: Tensor, _ values: Tensor) throws {
    try GradMode.withDisabled { _ = try t.copy_(values) }
  }

  public static func uniform(_ t: Tensor, _ a: Double, _ b: Double, generator: Generator = .global) throws {
    try write(t, Tensor.rand(t.shape, lo: a, hi: b, dtype: t.dtype, generator: generator))
  }

  public static func normal(_ t: Tensor, mean: Double = 0, std: Double = 1, generator: Generator = .global) throws {
    try write(t, Tensor.randn(t.shape, mean: mean, std: std, dtype: t.dtype, generator: generator))
  }

  public static func constant(_ t: Tensor, _ v: Double) throws { try GradMode.withDisabled { _ = try t.fill_(v) } }

  /// U(-b, b), b = gain·√(6/(fan_in + fan_out)). Reference: torch.nn.init.xavier_uniform_.
  public static func xavierUniform(_ t: Tensor, gain: Double = 1, generator: Generator = .global) throws {
    let (fi, fo) = try fans(t)
    let b = gain * (6.0 / Double(fi + fo)).squareRoot()
    try uniform(t, -b, b, generator: generator)
  }

  /// N(0, gain·√(2/(fan_in + fan_out))). Reference: torch.nn.init.xavier_normal_.
  public static func xavierNormal(_ t: Tensor, gain: Double = 1, generator: Generator = .global) throws {
    let (fi, fo) = try fans(t)
    try normal(t, std: gain * (2.0 / Double(fi + fo)).squareRoot(), generator: generator)
  }

  static func kaimingStd(_ t: Tensor, a: Double, mode: String, nonlinearity: String) throws -> Double {
    let (fi, fo) = try fans(t)
    guard mode == "fanIn" || mode == "fanOut" || mode == "fan_in" || mode == "fan_out" else {
      throw TensorError("init: mode must be 'fanIn' or 'fanOut', got '\(mode)'")
    }
    let fan = mode.lowercased().hasSuffix("in") ? fi : fo
    return try gain(nonlinearity, a) / Double(fan).squareRoot()
  }

  /// N(0, gain/√fan). Reference: torch.nn.init.kaiming_normal_.
  public static func kaimingNormal(_ t: Tensor, a: Double = 0, mode: String = "fanIn", nonlinearity: String = "leakyRelu",
                                   generator: Generator = .global) throws {
    try normal(t, std: kaimingStd(t, a: a, mode: mode, nonlinearity: nonlinearity), generator: generator)
  }

  /// U(-b, b), b = √3·gain/√fan. Reference: torch.nn.init.kaiming_uniform_.
  public static func kaimingUniform(_ t: Tensor, a: Double = 0, mode: String = "fanIn", nonlinearity: String = "leakyRelu",
                                    generator: Generator = .global) throws {
    let b = 3.0.squareRoot() * (try kaimingStd(t, a: a, mode: mode, nonlinearity: nonlinearity))
    try uniform(t, -b, b, generator: generator)
  }

  /// A (semi-)orthogonal matrix over the weight viewed as (size(0), -1), times gain: the Q of
  /// the QR decomposition of a Gaussian matrix, with R's diagonal made positive.
  /// Reference: torch.nn.init.orthogonal_.
  public static func orthogonal(_ t: Tensor, gain: Double = 1, generator: Generator = .global) throws {
    guard t.rank >= 2 else { throw TensorError("init.orthogonal: only tensors with 2 or more dimensions are supported, got \(formatShape(t.shape))") }
    let rows = t.shape[0], cols = t.numel / Swift.max(rows, 1)
    guard rows > 0 && cols > 0 else { return }
    let g = try Tensor.randn([rows, cols], dtype: .float64, generator: generator).toArray()
    // Work on the tall orientation (m >= n): the transpose when rows < cols.
    let transpose = rows < cols
    let m = transpose ? cols : rows, n = transpose ? rows : cols
    var a = [Double](repeating: 0, count: m * n)  // column-major m×n
    for i in 0..<rows { for j in 0..<cols { if transpose { a[i * m + j] = g[i * cols + j] } else { a[j * m + i] = g[i * cols + j] } } }
    // Modified Gram–Schmidt, twice (reorthogonalisation), gives Q with R's diagonal positive.
    for j in 0..<n {
      for _ in 0..<2 {
        for k in 0..<j {
          var d = 0.0
          for i in 0..<m { d += a[k * m + i] * a[j * m + i] }
          for i in 0..<m { a[j * m + i] -= d * a[k * m + i] }
        }
      }
      var norm = 0.0
      for i in 0..<m { norm += a[j * m + i] * a[j * m + i] }
      norm = norm.squareRoot()
      guard norm > 0 else { throw TensorError("init.orthogonal: degenerate random matrix") }
      for i in 0..<m { a[j * m + i] /= norm }
    }
    var q = [Double](repeating: 0, count: rows * cols)
    for i in 0..<rows { for j in 0..<cols { q[i * cols + j] = gain * (transpose ? a[i * m + j] : a[j * m + i]) } }
    try write(t, Tensor.from(q, shape: t.shape, dtype: t.dtype))
  }
}
