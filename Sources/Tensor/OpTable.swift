/// THE registry of tensor ops: one entry per op, feeding both the Lua bindings (Runtime binds
/// every uniform entry automatically and hand-binds the `.custom` ones) and the gradcheck sweep
/// (every case below is checked to first and second order in float64).
///
/// Adding an op: write it (a primitive with its pullback, or a composite), then add one entry.

/// How Runtime exposes an op to Lua.
public enum OpBinding {
  /// `t:name()` and `tensor.name(t)`.
  case unary((Tensor) throws -> Tensor)
  /// `t:name(number)`; the number may be omitted when a default exists.
  case unaryNumber((Tensor, Double) throws -> Tensor, defaultValue: Double?)
  /// `tensor.name(a, b)` and `a:name(b)`; a Lua number on either side becomes a constant.
  case binary((Tensor, Tensor) throws -> Tensor)
  /// `t:name()`, `t:name(dim)`, `t:name(dim, keepdim)`, `t:name({dims...}, keepdim)`.
  case reduction((Tensor, [Int]?, Bool) throws -> Tensor)
  /// `t:name(dim)` with the dim required.
  case alongDim((Tensor, Int) throws -> Tensor)
  /// A hand-written binding in Runtime (irregular signature).
  case custom
}

/// One gradcheck case: input shapes, the range inputs are drawn from (per input, or one for
/// all), points to keep away from (kinks), and the function under test.
public struct GradCase {
  public let label: String
  public let shapes: [[Int]]
  public let domains: [ClosedRange<Double>]
  public let avoid: [Double]
  public let fn: ([Tensor]) throws -> Tensor

  public init(_ label: String, _ shapes: [[Int]], domain: ClosedRange<Double> = -2...2, domains: [ClosedRange<Double>]? = nil,
              avoid: [Double] = [], _ fn: @escaping ([Tensor]) throws -> Tensor) {
    self.label = label
    self.shapes = shapes
    self.domains = domains ?? [ClosedRange<Double>](repeating: domain, count: shapes.count)
    self.avoid = avoid
    self.fn = fn
  }
}

public struct OpSpec {
  public let name: String
  public let binding: OpBinding
  /// Gradcheck cases; empty for ops without a gradient (comparisons, argmax, sign).
  public let cases: [GradCase]
  public init(_ name: String, _ binding: OpBinding, _ cases: [GradCase] = []) {
    self.name = name; self.binding = binding; self.cases = cases
  }
  public var differentiable: Bool { !cases.isEmpty }
}

extension Tensor {
  static func unaryCases(_ name: String, domain: ClosedRange<Double> = -2...2, avoid: [Double] = [], _ f: @escaping (Tensor) throws -> Tensor) -> [GradCase] {
    [GradCase("\(name) {3,4}", [[3, 4]], domain: domain, avoid: avoid) { try f($0[0]) },
     GradCase("\(name) 0-d", [[]], domain: domain, avoid: avoid) { try f($0[0]) },
     GradCase("\(name) strided", [[4, 3]], domain: domain, avoid: avoid) { try f($0[0].t()) }]
  }
  static func binaryCases(_ name: String, domains: [ClosedRange<Double>] = [-2...2, -2...2], _ f: @escaping (Tensor, Tensor) throws -> Tensor) -> [GradCase] {
    [GradCase("\(name) same shape", [[3, 4], [3, 4]], domains: domains) { try f($0[0], $0[1]) },
     GradCase("\(name) broadcast", [[3, 1], [1, 4]], domains: domains) { try f($0[0], $0[1]) },
     GradCase("\(name) scalar", [[], [2, 3]], domains: domains) { try f($0[0], $0[1]) }]
  }

  /// Every op luagan's `tensor` library exposes.
  public static let ops: [OpSpec] = [
    // Elementwise arithmetic
    OpSpec("add", .binary { try $0.add($1) }, binaryCases("add") { try $0.add($1) }),
    OpSpec("sub", .binary { try $0.sub($1) }, binaryCases("sub") { try $0.sub($1) }),
    OpSpec("mul", .binary { try $0.mul($1) }, binaryCases("mul") { try $0.mul($1) }),
    OpSpec("div", .binary { try $0.div($1) }, binaryCases("div", domains: [-2...2, 0.5...2]) { try $0.div($1) }),
    OpSpec("maximum", .binary { try $0.maximum($1) }, binaryCases("maximum") { try $0.maximum($1) }),
    OpSpec("minimum", .binary { try $0.minimum($1) }, binaryCases("minimum") { try $0.minimum($1) }),
    OpSpec("gt", .binary { try $0.gt($1) }), OpSpec("lt", .binary { try $0.lt($1) }),
    OpSpec("ge", .binary { try $0.ge($1) }), OpSpec("le", .binary { try $0.le($1) }),
    OpSpec("eq", .binary { try $0.eq($1) }), OpSpec("ne", .binary { try $0.ne($1) }),
    OpSpec("where", .custom, [
      GradCase("where", [[3, 4], [3, 4], [3, 4]]) { try Tensor.where($0[0].gt($0[0].constant(0)), $0[1], $0[2]) },
      GradCase("where broadcast", [[3, 1], [1, 4], []]) { try Tensor.where($0[0].gt($0[0].constant(0)), $0[1], $0[2]) }]),
    OpSpec("lerp", .custom, [GradCase("lerp", [[3, 4], [3, 4], [3, 1]]) { try $0[0].lerp($0[1], $0[2]) }]),

    // Elementwise unary
    OpSpec("neg", .unary { try $0.neg() }, unaryCases("neg") { try $0.neg() }),
    OpSpec("exp", .unary { try $0.exp() }, unaryCases("exp") { try $0.exp() }),
    OpSpec("log", .unary { try $0.log() }, unaryCases("log", domain: 0.5...2) { try $0.log() }),
    OpSpec("log1p", .unary { try $0.log1p() }, unaryCases("log1p", domain: -0.5...2) { try $0.log1p() }),
    OpSpec("sqrt", .unary { try $0.sqrt() }, unaryCases("sqrt", domain: 0.5...2) { try $0.sqrt() }),
    OpSpec("rsqrt", .unary { try $0.rsqrt() }, unaryCases("rsqrt", domain: 0.5...2) { try $0.rsqrt() }),
    OpSpec("sin", .unary { try $0.sin() }, unaryCases("sin") { try $0.sin() }),
    OpSpec("cos", .unary { try $0.cos() }, unaryCases("cos") { try $0.cos() }),
    OpSpec("tanh", .unary { try $0.tanh() }, unaryCases("tanh") { try $0.tanh() }),
    OpSpec("sigmoid", .unary { try $0.sigmoid() }, unaryCases("sigmoid") { try $0.sigmoid() }),
    OpSpec("relu", .unary { try $0.relu() }, unaryCases("relu", avoid: [0]) { try $0.relu() }),
    OpSpec("abs", .unary { try $0.abs() }, unaryCases("abs", avoid: [0]) { try $0.abs() }),
    OpSpec("softplus", .unary { try $0.softplus() }, unaryCases("softplus") { try $0.softplus() }),
    OpSpec("logSigmoid", .unary { try $0.logSigmoid() }, unaryCases("logSigmoid") { try $0.logSigmoid() }),
    OpSpec("sign", .unary { try $0.sign() }),
    OpSpec("leakyRelu", .unaryNumber({ try $0.leakyRelu($1) }, defaultValue: 0.01),
           unaryCases("leakyRelu", avoid: [0]) { try $0.leakyRelu(0.2) }),
    OpSpec("pow", .custom, unaryCases("pow 3", domain: 0.5...2) { try $0.pow(3) } + unaryCases("pow -1.5", domain: 0.5...2) { try $0.pow(-1.5) }
           + [GradCase("pow tensor", [[3, 4], [3, 4]], domains: [0.5...2, -2...2]) { try $0[0].pow($0[1]) }]),
    OpSpec("clamp", .custom, unaryCases("clamp", avoid: [-0.5, 0.7]) { try $0.clamp(min: -0.5, max: 0.7) }),
    // `to` is checked in TensorBasicsTests: a float32 round trip cannot be finite-differenced.
    OpSpec("to", .custom),

    // Reductions
    OpSpec("sum", .reduction { try $0.sum(dims: $1, keepDim: $2) }, [
      GradCase("sum all", [[3, 4]]) { try $0[0].sum() },
      GradCase("sum dim 2 keepdim", [[3, 4]]) { try $0[0].sum(dims: [1], keepDim: true) },
      GradCase("sum dims 1,3", [[2, 3, 4]]) { try $0[0].sum(dims: [0, 2]) }]),
    OpSpec("mean", .reduction { try $0.mean(dims: $1, keepDim: $2) }, [
      GradCase("mean all", [[3, 4]]) { try $0[0].mean() },
      GradCase("mean dims 1,3,4", [[2, 3, 2, 2]]) { try $0[0].mean(dims: [0, 2, 3], keepDim: true) }]),
    OpSpec("var", .custom, [
      GradCase("var unbiased", [[3, 4]]) { try $0[0].variance(dims: [1]) },
      GradCase("var biased all", [[3, 4]]) { try $0[0].variance(unbiased: false) }]),
    OpSpec("std", .custom, [GradCase("std", [[3, 4]]) { try $0[0].std(dims: [0], keepDim: true) }]),
    OpSpec("max", .custom, [
      GradCase("max all", [[3, 4]]) { try $0[0].max() },
      GradCase("max dim", [[3, 4]]) { try $0[0].max(dim: 1).values }]),
    OpSpec("min", .custom, [GradCase("min dim keepdim", [[3, 4]]) { try $0[0].min(dim: 0, keepDim: true).values }]),
    OpSpec("argmax", .custom), OpSpec("argmin", .custom),
    OpSpec("logsumexp", .custom, [GradCase("logsumexp", [[3, 4]]) { try $0[0].logsumexp(dim: 1) }]),
    OpSpec("softmax", .alongDim { try $0.softmax(dim: $1) }, [GradCase("softmax", [[3, 4]]) { try $0[0].softmax(dim: -1) }]),
    OpSpec("logSoftmax", .alongDim { try $0.logSoftmax(dim: $1) }, [GradCase("logSoftmax", [[3, 4]]) { try $0[0].logSoftmax(dim: 0) }]),
    OpSpec("norm", .reduction { try $0.norm(dims: $1, keepDim: $2) }, [GradCase("norm", [[3, 4]]) { try $0[0].norm(dims: [1]) }]),

    // Shape and layout
    OpSpec("reshape", .custom, [GradCase("reshape", [[3, 4]]) { try $0[0].reshape([2, -1]) }]),
    OpSpec("view", .custom, [GradCase("view", [[3, 4]]) { try $0[0].view([12]) }]),
    OpSpec("permute", .custom, [GradCase("permute", [[2, 3, 4]]) { try $0[0].permute([2, 0, 1]) }]),
    OpSpec("transpose", .custom, [GradCase("transpose", [[2, 3, 4]]) { try $0[0].transpose(0, 2).contiguous() }]),
    OpSpec("expand", .custom, [GradCase("expand", [[3, 1]]) { try $0[0].expand([2, 3, 4]) }]),
    OpSpec("narrow", .custom, [GradCase("narrow", [[5, 4]]) { try $0[0].narrow(dim: 0, start: 1, length: 3) }]),
    OpSpec("select", .custom, [GradCase("select", [[3, 4]]) { try $0[0].select(dim: 1, index: 2) }]),
    OpSpec("squeeze", .custom, [GradCase("squeeze", [[3, 1, 4]]) { try $0[0].squeeze() }]),
    OpSpec("unsqueeze", .custom, [GradCase("unsqueeze", [[3, 4]]) { try $0[0].unsqueeze(dim: 1) }]),
    OpSpec("flatten", .custom, [GradCase("flatten", [[2, 3, 4]]) { try $0[0].flatten(startDim: 1) }]),
    OpSpec("contiguous", .custom, [GradCase("contiguous", [[3, 4]]) { try $0[0].t().contiguous() }]),
    OpSpec("clone", .custom, [GradCase("clone", [[3, 4]]) { try $0[0].clone() }]),
    OpSpec("flip", .custom, [GradCase("flip", [[3, 4]]) { try $0[0].flip(dims: [1]) }]),
    OpSpec("pad", .custom, [GradCase("pad", [[2, 3]]) { try $0[0].pad([(1, 0), (2, 1)], value: 0.5) }]),
    OpSpec("cat", .custom, [GradCase("cat", [[2, 3], [1, 3]]) { try Tensor.cat([$0[0], $0[1]], dim: 0) }]),
    OpSpec("split", .custom, [GradCase("split", [[5, 2]]) { try $0[0].split(size: 2, dim: 0)[2] }]),
    OpSpec("chunk", .custom, [GradCase("chunk", [[2, 6]]) { try $0[0].chunk(3, dim: 1)[1] }]),
    OpSpec("indexSelect", .custom, [GradCase("indexSelect", [[4, 3]]) { try $0[0].indexSelect(dim: 0, [3, 0, 3]) }]),
    OpSpec("gather", .custom, [GradCase("gather", [[3, 4]]) { try $0[0].gather(dim: 1, index: IndexArray(shape: [3, 2], values: [0, 3, 1, 1, 2, 0])) }]),
    OpSpec("embedding", .custom, [GradCase("embedding", [[5, 3]]) { try Tensor.embedding($0[0], indices: [4, 0, 4, 2], indexShape: [2, 2]) }]),

    // Matrix products
    OpSpec("mm", .custom, [GradCase("mm", [[3, 4], [4, 2]]) { try $0[0].mm($0[1]) },
                           GradCase("mm transposed", [[4, 3], [2, 4]]) { try $0[0].t().mm($0[1].t()) }]),
    OpSpec("bmm", .custom, [GradCase("bmm", [[2, 3, 4], [2, 4, 2]]) { try $0[0].bmm($0[1]) }]),
    OpSpec("matmul", .custom, [GradCase("matmul batch broadcast", [[2, 1, 3, 4], [3, 4, 2]]) { try $0[0].matmul($0[1]) },
                               GradCase("matmul vector", [[4], [4, 3]]) { try $0[0].matmul($0[1]) }]),
    OpSpec("linear", .custom, [GradCase("linear", [[2, 3], [4, 3], [4]]) { try Tensor.linear($0[0], $0[1], $0[2]) }]),

    // Convolution, pooling, resampling
    OpSpec("conv2d", .custom, [
      GradCase("conv2d 3x3 pad 1", [[2, 2, 4, 4], [3, 2, 3, 3], [3]]) { try Tensor.conv2d($0[0], $0[1], bias: $0[2], spec: ConvSpec(padding: (1, 1))) },
      GradCase("conv2d stride 2", [[1, 2, 5, 5], [2, 2, 3, 3]]) { try Tensor.conv2d($0[0], $0[1], spec: ConvSpec(stride: (2, 2))) },
      GradCase("conv2d 1x1", [[3, 2, 2, 2], [2, 2, 1, 1]]) { try Tensor.conv2d($0[0], $0[1]) }]),
    OpSpec("convTranspose2d", .custom, [
      GradCase("convTranspose2d stride 2", [[1, 2, 3, 3], [2, 2, 4, 4], [2]]) {
        try Tensor.convTranspose2d($0[0], $0[1], bias: $0[2], spec: ConvSpec(stride: (2, 2), padding: (1, 1)))
      },
      GradCase("convTranspose2d output padding", [[1, 2, 2, 2], [2, 1, 3, 3]]) {
        try Tensor.convTranspose2d($0[0], $0[1], spec: ConvSpec(stride: (2, 2), padding: (1, 1)), outputPadding: (1, 1))
      }]),
    OpSpec("avgPool2d", .custom, [
      GradCase("avgPool2d 2x2", [[1, 2, 4, 4]]) { try $0[0].avgPool2d(kernel: 2) },
      GradCase("avgPool2d 3x3 pad exclude", [[1, 1, 4, 4]]) { try $0[0].avgPool2d(kernel: 3, stride: 1, padding: 1, countIncludePad: false) }]),
    OpSpec("maxPool2d", .custom, [GradCase("maxPool2d", [[1, 2, 4, 4]]) { try $0[0].maxPool2d(kernel: 2) },
                                  GradCase("maxPool2d 3x3 s2 pad", [[1, 1, 5, 5]]) { try $0[0].maxPool2d(kernel: 3, stride: 2, padding: 1) }]),
    OpSpec("batchNorm", .custom, [
      GradCase("batchNorm per-sample affine", [[3, 2, 2, 2], [3, 2], [3, 2]], domains: [-2...2, 0.5...2, -2...2]) {
        try Tensor.batchNorm($0[0], scale: $0[1], shift: $0[2], eps: 1e-5).0
      },
      GradCase("batchNorm channel affine", [[2, 3, 2, 3], [1, 3], [1, 3]]) { try Tensor.batchNorm($0[0], scale: $0[1], shift: $0[2], eps: 1e-3).0 },
      GradCase("batchNorm plain", [[4, 2, 1, 2]]) { try Tensor.batchNorm($0[0], scale: nil, shift: nil, eps: 1e-5).0 }]),
    OpSpec("upsampleNearest", .custom, [GradCase("upsampleNearest", [[1, 2, 2, 3]]) { try $0[0].upsampleNearest(2) }]),
  ]
}
