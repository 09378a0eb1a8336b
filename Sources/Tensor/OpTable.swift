/// THE registry of tensor ops: one entry per op. An entry names the op, gives its signature
/// (the Swift function, once) and its gradcheck cases; from it alone come the Lua binding
/// (Runtime binds every uniform signature), the first- and second-order gradcheck sweep
/// (Tests/TensorTests/GradCheckSweepTests) and the misuse cases (scripts/dev/tests/misuse.lua asks
/// Runtime for each op's signature). Every op recorded on the tape has an entry here
/// (RegistryTests checks the sources). docs/DESIGN.md walks through adding one.

/// The shape of an op's Swift signature. How a kind is called from Lua is Runtime's business
/// (TensorLib.registryBindings); Tensor only says what the function takes.
public enum OpSignature {
  /// (Tensor) -> Tensor.
  case unary((Tensor) throws -> Tensor)
  /// (Tensor, Double) -> Tensor, with a default for the number when it has one.
  case unaryNumber((Tensor, Double) throws -> Tensor, defaultValue: Double?)
  /// (Tensor, Tensor) -> Tensor, broadcasting.
  case binary((Tensor, Tensor) throws -> Tensor)
  /// (Tensor, Tensor) -> Tensor where both must be tensors (matrix products).
  case pair((Tensor, Tensor) throws -> Tensor)
  /// (Tensor, Int) -> Tensor (a count or factor).
  case unaryInteger((Tensor, Int) throws -> Tensor)
  /// (Tensor, dims (nil: all), keepDim) -> Tensor, dims 0-based.
  case reduction((Tensor, [Int]?, Bool) throws -> Tensor)
  /// (Tensor, dim) -> Tensor, dim 0-based and required.
  case alongDim((Tensor, Int) throws -> Tensor)
  /// (Tensor, dim, keepDim) -> Tensor, dim 0-based and required.
  case alongDimKeep((Tensor, Int, Bool) throws -> Tensor)
  /// (Tensor, sizes) -> Tensor, where a size of -1 is inferred or kept (reshape, view, expand).
  case sizes((Tensor, [Int]) throws -> Tensor)
  /// (Tensor, dims) -> Tensor, dims 0-based (permute, flip).
  case dims((Tensor, [Int]) throws -> Tensor)
  /// (Tensor, dim, indices) -> Tensor, dim and indices 0-based (indexSelect, gather).
  case indexAlongDim((Tensor, Int, IndexArray) throws -> Tensor)
  /// (Tensor, count, dim) -> [Tensor]: the pieces along dim, 0-based (split, chunk).
  case pieces((Tensor, Int, Int) throws -> [Tensor])
  /// Irregular arguments (options, lists, several results): Runtime binds it by hand.
  case irregular
  /// Not a user-facing op (an adjoint used inside pullbacks): gradchecked, never bound.
  case `internal`

  /// The kind's name, as Runtime reports it to the misuse sweep.
  public var kind: String {
    switch self {
    case .unary: return "unary"
    case .unaryNumber: return "unaryNumber"
    case .binary: return "binary"
    case .pair: return "pair"
    case .unaryInteger: return "unaryInteger"
    case .reduction: return "reduction"
    case .alongDim: return "alongDim"
    case .alongDimKeep: return "alongDimKeep"
    case .sizes: return "sizes"
    case .dims: return "dims"
    case .indexAlongDim: return "indexAlongDim"
    case .pieces: return "pieces"
    case .irregular: return "irregular"
    case .internal: return "internal"
    }
  }
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
  public let signature: OpSignature
  /// Gradcheck cases; empty for ops without a gradient (comparisons, argmax, sign).
  public let cases: [GradCase]
  public init(_ name: String, _ signature: OpSignature, _ cases: [GradCase] = []) {
    self.name = name; self.signature = signature; self.cases = cases
  }
  public var differentiable: Bool { !cases.isEmpty }

  /// An elementwise op x -> f(x), gradchecked on a matrix, a 0-d tensor and a strided view.
  static func unary(_ name: String, domain: ClosedRange<Double> = -2...2, avoid: [Double] = [],
                    _ f: @escaping (Tensor) throws -> Tensor) -> OpSpec {
    OpSpec(name, .unary(f), Tensor.unaryCases(name, domain: domain, avoid: avoid, f))
  }
  /// An elementwise op of two broadcast tensors, gradchecked same-shape, broadcast and 0-d.
  static func binary(_ name: String, domains: [ClosedRange<Double>] = [-2...2, -2...2],
                     _ f: @escaping (Tensor, Tensor) throws -> Tensor) -> OpSpec {
    OpSpec(name, .binary(f), Tensor.binaryCases(name, domains: domains, f))
  }
  /// A comparison: binary, without a gradient.
  static func comparison(_ name: String, _ f: @escaping (Tensor, Tensor) throws -> Tensor) -> OpSpec {
    OpSpec(name, .binary(f))
  }
}

extension Tensor {
  static func unaryCases(_ name: String, domain: ClosedRange<Double> = -2...2, avoid: [Double] = [],
                         _ f: @escaping (Tensor) throws -> Tensor) -> [GradCase] {
    [GradCase("\(name) {3,4}", [[3, 4]], domain: domain, avoid: avoid) { try f($0[0]) },
     GradCase("\(name) 0-d", [[]], domain: domain, avoid: avoid) { try f($0[0]) },
     GradCase("\(name) strided", [[4, 3]], domain: domain, avoid: avoid) { try f($0[0].t()) }]
  }
  static func binaryCases(_ name: String, domains: [ClosedRange<Double>] = [-2...2, -2...2],
                          _ f: @escaping (Tensor, Tensor) throws -> Tensor) -> [GradCase] {
    [GradCase("\(name) same shape", [[3, 4], [3, 4]], domains: domains) { try f($0[0], $0[1]) },
     GradCase("\(name) broadcast", [[3, 1], [1, 4]], domains: domains) { try f($0[0], $0[1]) },
     GradCase("\(name) scalar", [[], [2, 3]], domains: domains) { try f($0[0], $0[1]) }]
  }

  /// Every op luagan's `tensor` library exposes.
  public static let ops: [OpSpec] = [
    // Elementwise arithmetic
    OpSpec.binary("add") { try $0.add($1) },
    OpSpec.binary("sub") { try $0.sub($1) },
    OpSpec.binary("mul") { try $0.mul($1) },
    OpSpec.binary("div", domains: [-2...2, 0.5...2]) { try $0.div($1) },
    OpSpec.binary("maximum") { try $0.maximum($1) },
    OpSpec.binary("minimum") { try $0.minimum($1) },
    OpSpec.comparison("gt") { try $0.gt($1) }, OpSpec.comparison("lt") { try $0.lt($1) },
    OpSpec.comparison("ge") { try $0.ge($1) }, OpSpec.comparison("le") { try $0.le($1) },
    OpSpec.comparison("eq") { try $0.eq($1) }, OpSpec.comparison("ne") { try $0.ne($1) },
    OpSpec("where", .irregular, [
      GradCase("where", [[3, 4], [3, 4], [3, 4]]) { try Tensor.where($0[0].gt($0[0].constant(0)), $0[1], $0[2]) },
      GradCase("where broadcast", [[3, 1], [1, 4], []]) { try Tensor.where($0[0].gt($0[0].constant(0)), $0[1], $0[2]) }]),
    OpSpec("lerp", .irregular, [GradCase("lerp", [[3, 4], [3, 4], [3, 1]]) { try $0[0].lerp($0[1], $0[2]) }]),

    // Elementwise unary
    OpSpec.unary("neg") { try $0.neg() },
    OpSpec.unary("exp") { try $0.exp() },
    OpSpec.unary("log", domain: 0.5...2) { try $0.log() },
    OpSpec.unary("log1p", domain: -0.5...2) { try $0.log1p() },
    OpSpec.unary("sqrt", domain: 0.5...2) { try $0.sqrt() },
    OpSpec.unary("rsqrt", domain: 0.5...2) { try $0.rsqrt() },
    OpSpec.unary("sin") { try $0.sin() },
    OpSpec.unary("cos") { try $0.cos() },
    OpSpec.unary("tanh") { try $0.tanh() },
    OpSpec.unary("sinh") { try $0.sinh() }, OpSpec.unary("cosh") { try $0.cosh() },
    OpSpec.unary("sigmoid") { try $0.sigmoid() },
    OpSpec.unary("relu", avoid: [0]) { try $0.relu() },
    OpSpec.unary("abs", avoid: [0]) { try $0.abs() },
    OpSpec.unary("softplus") { try $0.softplus() },
    OpSpec.unary("logSigmoid") { try $0.logSigmoid() },
    OpSpec("sign", .unary { try $0.sign() }),
    OpSpec("leakyRelu", .unaryNumber({ try $0.leakyRelu($1) }, defaultValue: 0.01),
           unaryCases("leakyRelu", avoid: [0]) { try $0.leakyRelu(0.2) }),
    OpSpec("pow", .irregular, unaryCases("pow 3", domain: 0.5...2) { try $0.pow(3) }
           + unaryCases("pow -1.5", domain: 0.5...2) { try $0.pow(-1.5) }
           + [GradCase("pow tensor", [[3, 4], [3, 4]], domains: [0.5...2, -2...2]) { try $0[0].pow($0[1]) }]),
    OpSpec("clamp", .irregular, unaryCases("clamp", avoid: [-0.5, 0.7]) { try $0.clamp(min: -0.5, max: 0.7) }),
    // `to` is checked in TensorBasicsTests: a float32 round trip cannot be finite-differenced.
    OpSpec("to", .irregular),

    // Reductions
    OpSpec("sum", .reduction { try $0.sum(dims: $1, keepDim: $2) }, [
      GradCase("sum all", [[3, 4]]) { try $0[0].sum() },
      GradCase("sum dim 2 keepdim", [[3, 4]]) { try $0[0].sum(dims: [1], keepDim: true) },
      GradCase("sum dims 1,3", [[2, 3, 4]]) { try $0[0].sum(dims: [0, 2]) }]),
    OpSpec("mean", .reduction { try $0.mean(dims: $1, keepDim: $2) }, [
      GradCase("mean all", [[3, 4]]) { try $0[0].mean() },
      GradCase("mean dims 1,3,4", [[2, 3, 2, 2]]) { try $0[0].mean(dims: [0, 2, 3], keepDim: true) }]),
    OpSpec("var", .irregular, [
      GradCase("var unbiased", [[3, 4]]) { try $0[0].variance(dims: [1]) },
      GradCase("var biased all", [[3, 4]]) { try $0[0].variance(unbiased: false) }]),
    OpSpec("std", .irregular, [GradCase("std", [[3, 4]]) { try $0[0].std(dims: [0], keepDim: true) }]),
    OpSpec("max", .irregular, [
      GradCase("max all", [[3, 4]]) { try $0[0].max() },
      GradCase("max dim", [[3, 4]]) { try $0[0].max(dim: 1).values }]),
    OpSpec("min", .irregular, [GradCase("min dim keepdim", [[3, 4]]) { try $0[0].min(dim: 0, keepDim: true).values }]),
    OpSpec("argmax", .irregular), OpSpec("argmin", .irregular),
    OpSpec("logsumexp", .alongDimKeep { try $0.logsumexp(dim: $1, keepDim: $2) },
           [GradCase("logsumexp", [[3, 4]]) { try $0[0].logsumexp(dim: 1) }]),
    OpSpec("softmax", .alongDim { try $0.softmax(dim: $1) }, [
      GradCase("softmax", [[3, 4]]) { try $0[0].softmax(dim: -1) }, GradCase("softmax dim 1", [[2, 3, 4]]) { try $0[0].softmax(dim: 1) },
      // the output itself is not kept (only a view of it): the pullback rebuilds it for second order
      GradCase("softmax, output dropped", [[3, 4]]) { try $0[0].softmax(dim: -1).narrow(dim: 1, start: 1, length: 2) },
    ]),
    OpSpec("logSoftmax", .alongDim { try $0.logSoftmax(dim: $1) }, [GradCase("logSoftmax", [[3, 4]]) { try $0[0].logSoftmax(dim: 0) }]),
    OpSpec("norm", .reduction { try $0.norm(dims: $1, keepDim: $2) }, [GradCase("norm", [[3, 4]]) { try $0[0].norm(dims: [1]) }]),

    // Shape and layout
    OpSpec("reshape", .sizes { try $0.reshape($1) }, [GradCase("reshape", [[3, 4]]) { try $0[0].reshape([2, -1]) }]),
    OpSpec("view", .sizes { try $0.view($1) }, [GradCase("view", [[3, 4]]) { try $0[0].view([12]) }]),
    OpSpec("permute", .dims { try $0.permute($1) }, [GradCase("permute", [[2, 3, 4]]) { try $0[0].permute([2, 0, 1]) }]),
    OpSpec("transpose", .irregular, [GradCase("transpose", [[2, 3, 4]]) { try $0[0].transpose(0, 2).contiguous() }]),
    OpSpec("expand", .sizes { try $0.expand($1) }, [GradCase("expand", [[3, 1]]) { try $0[0].expand([2, 3, 4]) }]),
    OpSpec("narrow", .irregular, [GradCase("narrow", [[5, 4]]) { try $0[0].narrow(dim: 0, start: 1, length: 3) }]),
    OpSpec("select", .irregular, [GradCase("select", [[3, 4]]) { try $0[0].select(dim: 1, index: 2) }]),
    OpSpec("squeeze", .irregular, [GradCase("squeeze", [[3, 1, 4]]) { try $0[0].squeeze() }]),
    OpSpec("unsqueeze", .irregular, [GradCase("unsqueeze", [[3, 4]]) { try $0[0].unsqueeze(dim: 1) }]),
    OpSpec("flatten", .irregular, [GradCase("flatten", [[2, 3, 4]]) { try $0[0].flatten(startDim: 1) }]),
    OpSpec("contiguous", .unary { try $0.contiguous() },
           [GradCase("contiguous", [[3, 4]]) { try $0[0].t().contiguous() }]),
    OpSpec("clone", .unary { try $0.clone() }, [GradCase("clone", [[3, 4]]) { try $0[0].clone() }]),
    OpSpec("replicaSum", .unary { try $0.replicaSum() }, [GradCase("replicaSum", [[3, 4]]) { try $0[0].replicaSum().mul($0[0]) }]),
    OpSpec("flip", .dims { try $0.flip(dims: $1) }, [GradCase("flip", [[3, 4]]) { try $0[0].flip(dims: [1]) }]),
    OpSpec("pad", .irregular, [GradCase("pad", [[2, 3]]) { try $0[0].pad([(1, 0), (2, 1)], value: 0.5) }]),
    OpSpec("cat", .irregular, [GradCase("cat", [[2, 3], [1, 3]]) { try Tensor.cat([$0[0], $0[1]], dim: 0) }]),
    OpSpec("split", .pieces { try $0.split(size: $1, dim: $2) }, [GradCase("split", [[5, 2]]) { try $0[0].split(size: 2, dim: 0)[2] }]),
    OpSpec("chunk", .pieces { try $0.chunk($1, dim: $2) }, [GradCase("chunk", [[2, 6]]) { try $0[0].chunk(3, dim: 1)[1] }]),
    OpSpec("indexSelect", .indexAlongDim { try $0.indexSelect(dim: $1, $2.values) },
           [GradCase("indexSelect", [[4, 3]]) { try $0[0].indexSelect(dim: 0, [3, 0, 3]) }]),
    OpSpec("gather", .indexAlongDim { try $0.gather(dim: $1, index: $2) }, [GradCase("gather", [[3, 4]]) {
      try $0[0].gather(dim: 1, index: IndexArray(shape: [3, 2], values: [0, 3, 1, 1, 2, 0]))
    }]),
    OpSpec("embedding", .irregular, [GradCase("embedding", [[5, 3]]) {
      try Tensor.embedding($0[0], indices: [4, 0, 4, 2], indexShape: [2, 2])
    }]),

    // Matrix products
    OpSpec("mm", .pair { try $0.mm($1) }, [GradCase("mm", [[3, 4], [4, 2]]) { try $0[0].mm($0[1]) },
                           GradCase("mm transposed", [[4, 3], [2, 4]]) { try $0[0].t().mm($0[1].t()) }]),
    OpSpec("bmm", .pair { try $0.bmm($1) }, [
      GradCase("bmm", [[2, 3, 4], [2, 4, 2]]) { try $0[0].bmm($0[1]) },
      // operands stored transposed take the other product for their gradients
      GradCase("bmm of transposed views", [[2, 4, 3], [2, 5, 4]]) { try $0[0].transpose(1, 2).bmm($0[1].transpose(1, 2)) },
    ]),
    OpSpec("matmul", .pair { try $0.matmul($1) }, [
      GradCase("matmul batch broadcast", [[2, 1, 3, 4], [3, 4, 2]]) { try $0[0].matmul($0[1]) },
      GradCase("matmul vector", [[4], [4, 3]]) { try $0[0].matmul($0[1]) }]),
    OpSpec("linear", .irregular, [GradCase("linear", [[2, 3], [4, 3], [4]]) { try Tensor.linear($0[0], $0[1], $0[2]) }]),

    // Convolution, pooling, resampling
    OpSpec("conv2d", .irregular, [
      GradCase("conv2d 3x3 pad 1", [[2, 2, 4, 4], [3, 2, 3, 3], [3]]) {
        try Tensor.conv2d($0[0], $0[1], bias: $0[2], spec: ConvSpec(padding: (1, 1)))
      },
      GradCase("conv2d stride 2", [[1, 2, 5, 5], [2, 2, 3, 3]]) { try Tensor.conv2d($0[0], $0[1], spec: ConvSpec(stride: (2, 2))) },
      GradCase("conv2d 1x1", [[3, 2, 2, 2], [2, 2, 1, 1]]) { try Tensor.conv2d($0[0], $0[1]) },
      GradCase("conv2d 1x1, 9 images (two weight-gradient chunks)", [[9, 2, 1, 2], [3, 2, 1, 1]]) { try Tensor.conv2d($0[0], $0[1]) }]),
    OpSpec("convTranspose2d", .irregular, [
      GradCase("convTranspose2d stride 2", [[1, 2, 3, 3], [2, 2, 4, 4], [2]]) {
        try Tensor.convTranspose2d($0[0], $0[1], bias: $0[2], spec: ConvSpec(stride: (2, 2), padding: (1, 1)))
      },
      GradCase("convTranspose2d output padding", [[1, 2, 2, 2], [2, 1, 3, 3]]) {
        try Tensor.convTranspose2d($0[0], $0[1], spec: ConvSpec(stride: (2, 2), padding: (1, 1)), outputPadding: (1, 1))
      }]),
    OpSpec("avgPool2d", .irregular, [
      GradCase("avgPool2d 2x2", [[1, 2, 4, 4]]) { try $0[0].avgPool2d(kernel: 2) },
      GradCase("avgPool2d 2x2 odd sizes", [[1, 2, 5, 3]]) { try $0[0].avgPool2d(kernel: 2) },
      GradCase("avgPool2d 3x3 pad exclude", [[1, 1, 4, 4]]) {
        try $0[0].avgPool2d(kernel: 3, stride: 1, padding: 1, countIncludePad: false)
      }]),
    OpSpec("maxPool2d", .irregular, [
      GradCase("maxPool2d", [[1, 2, 4, 4]]) { try $0[0].maxPool2d(kernel: 2) },
      GradCase("maxPool2d 3x3 s2 pad", [[1, 1, 5, 5]]) { try $0[0].maxPool2d(kernel: 3, stride: 2, padding: 1) }]),
    OpSpec("batchNorm", .irregular, [
      GradCase("batchNorm per-sample affine", [[3, 2, 2, 2], [3, 2], [3, 2]], domains: [-2...2, 0.5...2, -2...2]) {
        try Tensor.batchNorm($0[0], scale: $0[1], shift: $0[2], eps: 1e-5).0
      },
      GradCase("batchNorm channel affine", [[2, 3, 2, 3], [1, 3], [1, 3]]) {
        try Tensor.batchNorm($0[0], scale: $0[1], shift: $0[2], eps: 1e-3).0
      },
      GradCase("batchNorm plain", [[4, 2, 1, 2]]) { try Tensor.batchNorm($0[0], scale: nil, shift: nil, eps: 1e-5).0 }]),
    OpSpec("upsampleNearest", .unaryInteger { try $0.upsampleNearest($1) },
           [GradCase("upsampleNearest", [[1, 2, 2, 3]]) { try $0[0].upsampleNearest(2) }]),

    // Adjoints recorded inside pullbacks (so second-order gradients can pass through them)
    OpSpec("indexAdd", .internal, [GradCase("indexAdd duplicates", [[3, 2]]) { try $0[0].indexAdd(dim: 0, [2, 0, 2], size: 4) }]),
    OpSpec("scatterAdd", .internal, [GradCase("scatterAdd", [[2, 3]]) {
      try $0[0].scatterAdd(dim: 1, index: IndexArray(shape: [2, 3], values: [0, 3, 0, 1, 1, 2]), size: 4)
    }]),
    OpSpec("avgPool2dTranspose", .internal, [GradCase("avgPool2dTranspose 3x3 pad exclude", [[1, 2, 2, 2]]) {
      try $0[0].avgPool2dTranspose(kernel: 3, stride: 2, padding: 1, countIncludePad: false, outputSize: (4, 4))
    }]),
    OpSpec("conv2dWeight", .internal, [
      GradCase("conv2dWeight 3x3 pad 1", [[2, 2, 4, 4], [2, 3, 4, 4]]) {
        try Tensor.conv2dWeight($0[0], $0[1], ConvSpec(padding: (1, 1)), kernel: (3, 3))
      },
      GradCase("conv2dWeight stride 2", [[1, 2, 5, 5], [1, 2, 2, 2]]) {
        try Tensor.conv2dWeight($0[0], $0[1], ConvSpec(stride: (2, 2)), kernel: (3, 3))
      }]),
  ]
}
