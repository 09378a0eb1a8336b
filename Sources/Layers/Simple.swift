import Tensor

/// A module applying one stateless function of one tensor.
public final class Elementwise: Module {
  let fn: (Tensor) throws -> Tensor
  let detail: String
  let rebuild: () throws -> Module

  init(_ name: String, _ detail: String, _ fn: @escaping (Tensor) throws -> Tensor, rebuild: @escaping () throws -> Module) {
    self.fn = fn; self.detail = detail; self.rebuild = rebuild
    super.init(typeName: name)
  }
  public override func forward(_ inputs: [Tensor]) throws -> Tensor {
    try expectInputs(inputs, 1, "1 input")
    return try fn(inputs[0])
  }
  public override var summary: String { detail.isEmpty ? "()" : "(\(detail))" }
  public override func makeShell() throws -> Module { try rebuild() }

  public static func identity() -> Elementwise { Elementwise("Identity", "", { $0 }, rebuild: { identity() }) }
  public static func relu() -> Elementwise { Elementwise("ReLU", "", { try $0.relu() }, rebuild: { relu() }) }
  public static func tanh() -> Elementwise { Elementwise("Tanh", "", { try $0.tanh() }, rebuild: { tanh() }) }
  public static func sigmoid() -> Elementwise { Elementwise("Sigmoid", "", { try $0.sigmoid() }, rebuild: { sigmoid() }) }
  public static func leakyRelu(_ slope: Double = 0.01) -> Elementwise {
    Elementwise("LeakyReLU", "negativeSlope=\(slope)", { try $0.leakyRelu(slope) }, rebuild: { leakyRelu(slope) })
  }
  /// Nearest-neighbour upsampling by an integer factor. Reference: torch.nn.Upsample(mode='nearest').
  public static func upsample(_ factor: Int) throws -> Elementwise {
    guard factor >= 1 else { throw TensorError("Upsample: factor must be a positive integer, got \(factor)") }
    return Elementwise("Upsample", "scaleFactor=\(factor)", { try $0.upsampleNearest(factor) }, rebuild: { try upsample(factor) })
  }
  /// Average pooling (PGGAN's box downscale at kernel 2). Reference: torch.nn.AvgPool2d.
  public static func avgPool2d(_ k: Int, stride: Int? = nil, padding: Int = 0) throws -> Elementwise {
    guard k >= 1, (stride ?? k) >= 1, padding >= 0 else { throw TensorError("AvgPool2d: kernel and stride must be positive, padding >= 0") }
    return Elementwise("AvgPool2d", "kernel=\(k)\(stride.map { ", stride=\($0)" } ?? "")\(padding > 0 ? ", padding=\(padding)" : "")",
                       { try $0.avgPool2d(kernel: k, stride: stride, padding: padding) }, rebuild: { try avgPool2d(k, stride: stride, padding: padding) })
  }
}
