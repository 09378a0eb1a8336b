import Foundation

/// Elementwise primitives. Each op's pullback sits right under its forward, with the derivative
/// in a comment; pullbacks use only differentiable ops, so they can be differentiated again.

protocol UnaryFn { func apply<T: TensorScalar>(_ x: T) -> T }
protocol BinaryFn { func apply<T: TensorScalar>(_ a: T, _ b: T) -> T }

extension Tensor {
  @inline(__always)
  func unary<F: UnaryFn>(_ f: F) throws -> Tensor {
    switch dtype {
    case .float32: return try mapKernel(self, Float.self, f)
    case .float64: return try mapKernel(self, Double.self, f)
    }
  }

  /// Promotes both operands to a common dtype and computes the broadcast shape.
  func binaryOperands(_ other: Tensor, _ op: String) throws -> (Tensor, Tensor, [Int]) {
    let shape = try broadcastShapes(shape, other.shape, op: op)
    let dt = DType.promote(dtype, other.dtype)
    return (try to(dt), try other.to(dt), shape)
  }

  @inline(__always)
  func binary<F: BinaryFn>(_ other: Tensor, _ shape: [Int], _ f: F) throws -> Tensor {
    switch dtype {
    case .float32: return try zipKernel(self, other, shape, Float.self, f)
    case .float64: return try zipKernel(self, other, shape, Double.self, f)
    }
  }

  /// self·[mask > 0] + slope·self·[mask ≤ 0], not recorded: the fused pullback of relu and leakyRelu.
  func maskedBy(_ mask: Tensor, slope: Double) throws -> Tensor {
    let (a, b, shape) = try binaryOperands(mask, "relu backward")
    return try a.binary(b, shape, LeakyPassFn(slope: slope))
  }

  /// A 0-d constant of this tensor's dtype.
  func constant(_ v: Double) throws -> Tensor { try Tensor.scalar(v, dtype: dtype) }
}

struct AddFn: BinaryFn { func apply<T: TensorScalar>(_ a: T, _ b: T) -> T { a + b } }
struct SubFn: BinaryFn { func apply<T: TensorScalar>(_ a: T, _ b: T) -> T { a - b } }
struct MulFn: BinaryFn { func apply<T: TensorScalar>(_ a: T, _ b: T) -> T { a * b } }
struct DivFn: BinaryFn { func apply<T: TensorScalar>(_ a: T, _ b: T) -> T { a / b } }
// One type per comparison, so each kernel is specialised and vectorised (a runtime switch in
// the inner loop made comparisons 10x slower than arithmetic).
struct GtFn: BinaryFn { func apply<T: TensorScalar>(_ a: T, _ b: T) -> T { a > b ? 1 : 0 } }
struct LtFn: BinaryFn { func apply<T: TensorScalar>(_ a: T, _ b: T) -> T { a < b ? 1 : 0 } }
struct GeFn: BinaryFn { func apply<T: TensorScalar>(_ a: T, _ b: T) -> T { a >= b ? 1 : 0 } }
struct LeFn: BinaryFn { func apply<T: TensorScalar>(_ a: T, _ b: T) -> T { a <= b ? 1 : 0 } }
struct EqFn: BinaryFn { func apply<T: TensorScalar>(_ a: T, _ b: T) -> T { a == b ? 1 : 0 } }
struct NeFn: BinaryFn { func apply<T: TensorScalar>(_ a: T, _ b: T) -> T { a != b ? 1 : 0 } }

extension Tensor {
  // MARK: - Binary arithmetic (broadcasting; a Lua number on either side becomes a 0-d tensor)

  /// a + b. Reference: torch.add.
  public func add(_ other: Tensor) throws -> Tensor {
    let (a, b, shape) = try binaryOperands(other, "add")
    let out = try a.binary(b, shape, AddFn())
    return record("add", out, [a, b]) { [sa = a.shape, sb = b.shape] g, needs in
      // d(a+b)/da = 1, d(a+b)/db = 1 (summed over broadcast dims)
      [needs[0] ? try g.sumTo(sa) : nil, needs[1] ? try g.sumTo(sb) : nil]
    }
  }

  /// a - b. Reference: torch.sub.
  public func sub(_ other: Tensor) throws -> Tensor {
    let (a, b, shape) = try binaryOperands(other, "sub")
    let out = try a.binary(b, shape, SubFn())
    return record("sub", out, [a, b]) { [sa = a.shape, sb = b.shape] g, needs in
      // d(a-b)/da = 1, d(a-b)/db = -1
      [needs[0] ? try g.sumTo(sa) : nil, needs[1] ? try g.neg().sumTo(sb) : nil]
    }
  }

  /// a * b, elementwise. Reference: torch.mul.
  public func mul(_ other: Tensor) throws -> Tensor {
    let (a, b, shape) = try binaryOperands(other, "mul")
    let out = try a.binary(b, shape, MulFn())
    // Each operand is kept only if the other one's gradient can be asked for.
    return record("mul", out, [a, b]) { [sa = a.shape, sb = b.shape, ka = saved(a, if: b.requiresGrad), kb = saved(b, if: a.requiresGrad)] g, needs in
      // d(ab)/da = b, d(ab)/db = a
      [needs[0] ? try g.mul(kb!).sumTo(sa) : nil, needs[1] ? try g.mul(ka!).sumTo(sb) : nil]
    }
  }

  /// a / b, elementwise. Reference: torch.div.
  public func div(_ other: Tensor) throws -> Tensor {
    let (a, b, shape) = try binaryOperands(other, "div")
    let out = try a.binary(b, shape, DivFn())
    return record("div", out, [a, b]) { [sa = a.shape, sb = b.shape, ka = saved(a, if: b.requiresGrad)] g, needs in
      // d(a/b)/da = 1/b, d(a/b)/db = -a/b²
      [needs[0] ? try g.div(b).sumTo(sa) : nil,
       needs[1] ? try g.mul(ka!).div(b.mul(b)).neg().sumTo(sb) : nil]
    }
  }

  /// Elementwise comparisons giving 0/1 tensors (not differentiable). Reference: torch.gt etc.
  public func gt(_ o: Tensor) throws -> Tensor { try compare(o, GtFn(), "gt") }
  public func lt(_ o: Tensor) throws -> Tensor { try compare(o, LtFn(), "lt") }
  public func ge(_ o: Tensor) throws -> Tensor { try compare(o, GeFn(), "ge") }
  public func le(_ o: Tensor) throws -> Tensor { try compare(o, LeFn(), "le") }
  public func eq(_ o: Tensor) throws -> Tensor { try compare(o, EqFn(), "eq") }
  public func ne(_ o: Tensor) throws -> Tensor { try compare(o, NeFn(), "ne") }
  func compare<F: BinaryFn>(_ other: Tensor, _ f: F, _ name: String) throws -> Tensor {
    let (a, b, shape) = try binaryOperands(other, name)
    return try a.binary(b, shape, f)
  }

  /// cond ? a : b, elementwise with broadcasting over all three; cond is any tensor (nonzero =
  /// true) and gets no gradient. Reference: torch.where.
  public static func `where`(_ cond: Tensor, _ a: Tensor, _ b: Tensor) throws -> Tensor {
    let s1 = try broadcastShapes(a.shape, b.shape, op: "where")
    let shape = try broadcastShapes(cond.shape, s1, op: "where")
    let dt = DType.promote(a.dtype, b.dtype)
    let (c, x, y) = (try cond.detach().to(dt), try a.to(dt), try b.to(dt))
    let out: Tensor
    switch dt {
    case .float32: out = try whereKernel(c, x, y, shape, Float.self)
    case .float64: out = try whereKernel(c, x, y, shape, Double.self)
    }
    return record("where", out, [x, y]) { [sx = x.shape, sy = y.shape] g, needs in
      // d/da = [cond], d/db = [!cond]
      let zero = try g.constant(0)
      return [needs[0] ? try Tensor.where(c, g, zero).sumTo(sx) : nil,
              needs[1] ? try Tensor.where(c, zero, g).sumTo(sy) : nil]
    }
  }
}

// MARK: - Unary primitives

struct NegFn: UnaryFn { func apply<T: TensorScalar>(_ x: T) -> T { -x } }
struct ExpFn: UnaryFn { func apply<T: TensorScalar>(_ x: T) -> T { T.exp(x) } }
struct LogFn: UnaryFn { func apply<T: TensorScalar>(_ x: T) -> T { T.log(x) } }
struct Log1pFn: UnaryFn { func apply<T: TensorScalar>(_ x: T) -> T { T.log1p(x) } }
struct SqrtFn: UnaryFn { func apply<T: TensorScalar>(_ x: T) -> T { T.sqrt(x) } }
struct RsqrtFn: UnaryFn { func apply<T: TensorScalar>(_ x: T) -> T { 1 / T.sqrt(x) } }
struct SinFn: UnaryFn { func apply<T: TensorScalar>(_ x: T) -> T { T.sin(x) } }
struct CosFn: UnaryFn { func apply<T: TensorScalar>(_ x: T) -> T { T.cos(x) } }
struct TanhFn: UnaryFn { func apply<T: TensorScalar>(_ x: T) -> T { T.tanh(x) } }
/// A unary function given as its libm pair (float, double), so a new elementwise op needs no
/// new TensorScalar requirement. Specialisation folds the dtype test away.
struct LibmFn: UnaryFn {
  let float: (Float) -> Float, double: (Double) -> Double
  init(_ float: @escaping (Float) -> Float, _ double: @escaping (Double) -> Double) { self.float = float; self.double = double }
  @inline(__always) func apply<T: TensorScalar>(_ x: T) -> T {
    if T.self == Float.self { return unsafeBitCast(float(unsafeBitCast(x, to: Float.self)), to: T.self) }
    return unsafeBitCast(double(unsafeBitCast(x, to: Double.self)), to: T.self)
  }
}
struct SigmoidFn: UnaryFn {
  // Two branches so neither exp overflows: 1/(1+e^-x) for x >= 0, e^x/(1+e^x) below.
  func apply<T: TensorScalar>(_ x: T) -> T {
    if x >= 0 { return 1 / (1 + T.exp(-x)) }
    let e = T.exp(x)
    return e / (1 + e)
  }
}
struct ReluFn: UnaryFn { func apply<T: TensorScalar>(_ x: T) -> T { x > 0 ? x : 0 } }
struct LeakyReluFn: UnaryFn {
  let slope: Double
  func apply<T: TensorScalar>(_ x: T) -> T { x > 0 ? x : x * T(slope) }
}
/// The derivative of leaky ReLU: 1 where x > 0, slope elsewhere (a constant mask).
struct LeakyMaskFn: UnaryFn {
  let slope: Double
  func apply<T: TensorScalar>(_ x: T) -> T { x > 0 ? 1 : T(slope) }
}
/// g·[y > 0] + slope·g·[y ≤ 0] in one pass (relu: slope 0, and 0 where masked even when g is not
/// finite, as torch's threshold_backward): the (leaky) relu pullback when no graph is being built.
struct LeakyPassFn: BinaryFn {
  let slope: Double
  func apply<T: TensorScalar>(_ g: T, _ y: T) -> T { y > 0 ? g : slope == 0 ? 0 : g * T(slope) }
}
struct AbsFn: UnaryFn { func apply<T: TensorScalar>(_ x: T) -> T { Swift.abs(x) } }
struct SignFn: UnaryFn { func apply<T: TensorScalar>(_ x: T) -> T { x > 0 ? 1 : (x < 0 ? -1 : 0) } }
struct PowFn: UnaryFn {
  let p: Double
  func apply<T: TensorScalar>(_ x: T) -> T {
    if p == 2 { return x * x }
    if p == 1 { return x }
    if p == 0.5 { return T.sqrt(x) }
    return T.pow(x, T(p))
  }
}

extension Tensor {
  /// -x.
  public func neg() throws -> Tensor {
    let out = try unary(NegFn())
    return record("neg", out, [self]) { g, _ in [try g.neg()] }  // d(-x)/dx = -1
  }

  /// e^x. Reference: torch.exp.
  public func exp() throws -> Tensor {
    let out = try unary(ExpFn())
    return record("exp", out, [self]) { [weak out, x = self] g, _ in
      [try g.mul(out ?? x.exp())]  // d e^x/dx = e^x (the output)
    }
  }

  /// Natural logarithm. Reference: torch.log.
  public func log() throws -> Tensor {
    let out = try unary(LogFn())
    return record("log", out, [self]) { [x = self] g, _ in [try g.div(x)] }  // d log x/dx = 1/x
  }

  /// log(1 + x), accurate for small x. Reference: torch.log1p.
  public func log1p() throws -> Tensor {
    let out = try unary(Log1pFn())
    return record("log1p", out, [self]) { [x = self] g, _ in [try g.div(x.add(x.constant(1)))] }  // 1/(1+x)
  }

  /// √x. Reference: torch.sqrt.
  public func sqrt() throws -> Tensor {
    let out = try unary(SqrtFn())
    return record("sqrt", out, [self]) { [weak out, x = self] g, _ in
      [try g.div((out ?? x.sqrt()).mul(x.constant(2)))]  // d√x/dx = 1/(2√x)
    }
  }

  /// 1/√x. Reference: torch.rsqrt.
  public func rsqrt() throws -> Tensor {
    let out = try unary(RsqrtFn())
    return record("rsqrt", out, [self]) { [weak out, x = self] g, _ in
      let r = try out ?? x.rsqrt()
      return [try g.mul(r.mul(r).mul(r)).mul(x.constant(-0.5))]  // d x^(-1/2)/dx = -x^(-3/2)/2
    }
  }

  /// sin x. Reference: torch.sin.
  public func sin() throws -> Tensor {
    let out = try unary(SinFn())
    return record("sin", out, [self]) { [x = self] g, _ in [try g.mul(x.cos())] }  // cos x
  }

  /// cos x. Reference: torch.cos.
  public func cos() throws -> Tensor {
    let out = try unary(CosFn())
    return record("cos", out, [self]) { [x = self] g, _ in [try g.mul(x.sin()).neg()] }  // -sin x
  }

  /// sinh x = (e^x - e^-x)/2. Reference: torch.sinh.
  public func sinh() throws -> Tensor {
    let out = try unary(LibmFn(Foundation.sinhf, Foundation.sinh))
    return record("sinh", out, [self]) { [x = self] g, _ in [try g.mul(x.cosh())] }  // cosh x
  }

  /// cosh x = (e^x + e^-x)/2. Reference: torch.cosh.
  public func cosh() throws -> Tensor {
    let out = try unary(LibmFn(Foundation.coshf, Foundation.cosh))
    return record("cosh", out, [self]) { [x = self] g, _ in [try g.mul(x.sinh())] }  // sinh x
  }

  /// tanh x. Reference: torch.tanh.
  public func tanh() throws -> Tensor {
    let out = try unary(TanhFn())
    return record("tanh", out, [self]) { [weak out, x = self] g, _ in
      let t = try out ?? x.tanh()
      return [try g.mul(x.constant(1).sub(t.mul(t)))]  // 1 - tanh²x
    }
  }

  /// 1/(1 + e^-x), stable for large |x|. Reference: torch.sigmoid.
  public func sigmoid() throws -> Tensor {
    let out = try unary(SigmoidFn())
    return record("sigmoid", out, [self]) { [weak out, x = self] g, _ in
      let s = try out ?? x.sigmoid()
      return [try g.mul(s.mul(x.constant(1).sub(s)))]  // σ(1 - σ)
    }
  }

  /// Swift.max(x, 0). Reference: torch.relu. The gradient at 0 is 0, as in PyTorch.
  public func relu() throws -> Tensor {
    let out = try unary(ReluFn())
    // The mask [x > 0] = [relu(x) > 0] is read from the output (a storage alias without its
    // node), which the next layer keeps anyway, rather than keeping the input alive too.
    return record("relu", out, [self]) { [y = out.detach()] g, _ in
      // [x > 0]; a single pass when this backward is not itself differentiated
      GradMode.isEnabled ? [try g.mul(y.gt(y.constant(0)))] : [try g.maskedBy(y, slope: 0)]
    }
  }

  /// x for x > 0, slope·x otherwise. Reference: torch.nn.functional.leaky_relu.
  public func leakyRelu(_ slope: Double = 0.01) throws -> Tensor {
    let out = try unary(LeakyReluFn(slope: slope))
    // For slope > 0 the sign of the output is the sign of the input: keep the output, as relu.
    return record("leakyRelu", out, [self]) { [x = slope > 0 ? out.detach() : self.detach()] g, _ in
      // 1 for x > 0, slope otherwise; a single pass when this backward is not itself differentiated
      GradMode.isEnabled ? [try g.mul(x.unary(LeakyMaskFn(slope: slope)))] : [try g.maskedBy(x, slope: slope)]
    }
  }

  /// |x|. Reference: torch.abs (gradient 0 at 0).
  public func abs() throws -> Tensor {
    let out = try unary(AbsFn())
    return record("abs", out, [self]) { [x = self] g, _ in [try g.mul(x.detach().unary(SignFn()))] }  // sign x
  }

  /// Sign of x: -1, 0 or 1 (not differentiable). Reference: torch.sign.
  public func sign() throws -> Tensor { try detach().unary(SignFn()) }

  /// x^p for a constant exponent. Reference: torch.pow.
  public func pow(_ p: Double) throws -> Tensor {
    let out = try unary(PowFn(p: p))
    return record("pow", out, [self]) { [x = self] g, _ in
      if p == 0 { return [try g.mul(x.constant(0))] }
      return [try g.mul(x.pow(p - 1)).mul(x.constant(p))]  // d x^p/dx = p·x^(p-1)
    }
  }

  /// The same values in another dtype. Reference: torch.Tensor.to.
  public func to(_ dt: DType) throws -> Tensor {
    if dt == dtype { return self }
    let out = try castKernel(self, to: dt)
    let src = dtype
    return record("to", out, [self]) { g, _ in [try g.to(src)] }  // identity, cast back
  }
}

// MARK: - Operators

extension Tensor {
  public static func + (a: Tensor, b: Tensor) throws -> Tensor { try a.add(b) }
  public static func - (a: Tensor, b: Tensor) throws -> Tensor { try a.sub(b) }
  public static func * (a: Tensor, b: Tensor) throws -> Tensor { try a.mul(b) }
  public static func / (a: Tensor, b: Tensor) throws -> Tensor { try a.div(b) }
  public static func + (a: Tensor, b: Double) throws -> Tensor { try a.add(a.constant(b)) }
  public static func - (a: Tensor, b: Double) throws -> Tensor { try a.sub(a.constant(b)) }
  public static func * (a: Tensor, b: Double) throws -> Tensor { try a.mul(a.constant(b)) }
  public static func / (a: Tensor, b: Double) throws -> Tensor { try a.div(a.constant(b)) }
  public static func + (a: Double, b: Tensor) throws -> Tensor { try b.constant(a).add(b) }
  public static func - (a: Double, b: Tensor) throws -> Tensor { try b.constant(a).sub(b) }
  public static func * (a: Double, b: Tensor) throws -> Tensor { try b.constant(a).mul(b) }
  public static func / (a: Double, b: Tensor) throws -> Tensor { try b.constant(a).div(b) }
  public static prefix func - (a: Tensor) throws -> Tensor { try a.neg() }
}
