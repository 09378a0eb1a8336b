import Tensor

/// y = x·Wᵀ + b, W (out, in). Default init is PyTorch's; `equalized` gives PGGAN's
/// equalized learning rate with `gain`. Reference: torch.nn.Linear.
public final class Linear: WeightedModule {
  public let inFeatures: Int, outFeatures: Int, hasBias: Bool

  public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, equalized: Bool = false,
              gain: Double = 2.0.squareRoot(), generator: Generator = .global) throws {
    guard inFeatures > 0, outFeatures > 0 else {
      throw TensorError("Linear: feature counts must be positive, got \(inFeatures) and \(outFeatures)")
    }
    self.inFeatures = inFeatures; self.outFeatures = outFeatures; self.hasBias = bias
    super.init(typeName: "Linear")
    setParameter("weight", try newParameter([outFeatures, inFeatures]))
    if bias { setParameter("bias", try newParameter([outFeatures])) }
    if equalized { try equalizedInit(fanIn: inFeatures, gain: gain, generator: generator) }
    else { try defaultInit(fanIn: inFeatures, generator: generator) }
  }

  public override func forward(_ inputs: [Tensor]) throws -> Tensor {
    try expectInputs(inputs, 1, "1 input (..., \(inFeatures))")
    return try Tensor.linear(inputs[0], effectiveWeight(), parameter("bias"))
  }

  public override var summary: String { "(\(inFeatures), \(outFeatures)\(hasBias ? "" : ", bias=false")\(reparametrizationSummary))" }
  public override func makeShell() throws -> Module {
    try Linear(inFeatures, outFeatures, bias: hasBias, generator: Generator(seed: 0))
  }
}
