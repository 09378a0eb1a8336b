import Tensor

/// 2-D convolution (cross-correlation) of (N, Cin, H, W) with W (Cout, Cin, kH, kW), zero
/// padding, optional bias; default init is PyTorch's, `equalized` is PGGAN's.
/// Reference: torch.nn.Conv2d.
public final class Conv2d: WeightedModule {
  public let inChannels: Int, outChannels: Int, kernel: (Int, Int), spec: ConvSpec, hasBias: Bool
  /// The forward computes only the first `outputsUsed` output channels (nil: all): a layer
  /// whose later channels are thrown away, as pytorch-pretrained-BigGAN's 128-wide RGB conv of
  /// which the image keeps 3, need not make them (at 512 px and batch 8 they are 1 GiB). The
  /// weight keeps all outChannels rows (spectral norm's σ is still the whole matrix's).
  public let outputsUsed: Int?

  public init(_ inChannels: Int, _ outChannels: Int, kernel: (Int, Int), stride: (Int, Int) = (1, 1),
              padding: (Int, Int) = (0, 0), bias: Bool = true, equalized: Bool = false,
              gain: Double = 2.0.squareRoot(), outputsUsed: Int? = nil, generator: Generator = .global) throws {
    guard inChannels > 0, outChannels > 0, kernel.0 > 0, kernel.1 > 0 else {
      throw TensorError("Conv2d: channels and kernel size must be positive, got \(inChannels), \(outChannels), \(kernel.0)x\(kernel.1)")
    }
    if let k = outputsUsed, k < 1 || k > outChannels {
      throw TensorError("Conv2d: outputsUsed must be in 1...\(outChannels) (the output channels), got \(k)")
    }
    self.outputsUsed = outputsUsed
    guard stride.0 > 0, stride.1 > 0, padding.0 >= 0, padding.1 >= 0 else {
      throw TensorError("Conv2d: stride must be positive and padding >= 0")
    }
    self.inChannels = inChannels; self.outChannels = outChannels; self.kernel = kernel
    self.spec = ConvSpec(stride: stride, padding: padding); self.hasBias = bias
    super.init(typeName: "Conv2d")
    setParameter("weight", try newParameter([outChannels, inChannels, kernel.0, kernel.1]))
    if bias { setParameter("bias", try newParameter([outChannels])) }
    let fanIn = inChannels * kernel.0 * kernel.1
    if equalized { try equalizedInit(fanIn: fanIn, gain: gain, generator: generator) }
    else { try defaultInit(fanIn: fanIn, generator: generator) }
  }

  public override func forward(_ inputs: [Tensor]) throws -> Tensor {
    try expectInputs(inputs, 1, "1 input (N, \(inChannels), H, W)")
    var w = try effectiveWeight(), b = parameter("bias")
    if let k = outputsUsed, k < outChannels {
      w = try w.narrow(dim: 0, start: 0, length: k)
      b = try b?.narrow(dim: 0, start: 0, length: k)
    }
    return try Tensor.conv2d(inputs[0], w, bias: b, spec: spec)
  }

  public override var summary: String {
    let k = kernel.0 == kernel.1 ? "\(kernel.0)" : "\(kernel.0)x\(kernel.1)"
    var s = "(\(inChannels), \(outChannels), kernel=\(k)"
    func pair(_ p: (Int, Int)) -> String { p.0 == p.1 ? "\(p.0)" : "(\(p.0), \(p.1))" }
    if spec.stride != (1, 1) { s += ", stride=\(pair(spec.stride))" }
    if spec.padding != (0, 0) { s += ", padding=\(pair(spec.padding))" }
    if let k = outputsUsed { s += ", outputsUsed=\(k)" }
    return s + (hasBias ? "" : ", bias=false") + reparametrizationSummary + ")"
  }
  public override func makeShell() throws -> Module {
    try Conv2d(inChannels, outChannels, kernel: kernel, stride: spec.stride, padding: spec.padding, bias: hasBias,
               outputsUsed: outputsUsed, generator: Generator(seed: 0))
  }
}

/// The transpose of Conv2d (fractionally strided convolution), weight (Cin, Cout, kH, kW).
/// Reference: torch.nn.ConvTranspose2d.
public final class ConvTranspose2d: WeightedModule {
  public let inChannels: Int, outChannels: Int, kernel: (Int, Int), spec: ConvSpec, outputPadding: (Int, Int), hasBias: Bool

  public init(_ inChannels: Int, _ outChannels: Int, kernel: (Int, Int), stride: (Int, Int) = (1, 1),
              padding: (Int, Int) = (0, 0), outputPadding: (Int, Int) = (0, 0), bias: Bool = true,
              generator: Generator = .global) throws {
    guard inChannels > 0, outChannels > 0, kernel.0 > 0, kernel.1 > 0, stride.0 > 0, stride.1 > 0, padding.0 >= 0, padding.1 >= 0 else {
      throw TensorError("ConvTranspose2d: channels, kernel and stride must be positive and padding >= 0")
    }
    self.inChannels = inChannels; self.outChannels = outChannels; self.kernel = kernel
    self.spec = ConvSpec(stride: stride, padding: padding); self.outputPadding = outputPadding; self.hasBias = bias
    super.init(typeName: "ConvTranspose2d")
    setParameter("weight", try newParameter([inChannels, outChannels, kernel.0, kernel.1]))
    if bias { setParameter("bias", try newParameter([outChannels])) }
    // PyTorch computes the fan from the weight as stored: size(1)·kH·kW = out·kH·kW.
    try defaultInit(fanIn: outChannels * kernel.0 * kernel.1, generator: generator)
  }

  public override var spectralNormDim: Int { 1 }

  public override func forward(_ inputs: [Tensor]) throws -> Tensor {
    try expectInputs(inputs, 1, "1 input (N, \(inChannels), H, W)")
    return try Tensor.convTranspose2d(inputs[0], effectiveWeight(), bias: parameter("bias"), spec: spec, outputPadding: outputPadding)
  }

  public override var summary: String {
    "(\(inChannels), \(outChannels), kernel=\(kernel.0), stride=\(spec.stride.0), padding=\(spec.padding.0)"
      + "\(hasBias ? "" : ", bias=false")\(reparametrizationSummary))"
  }
  public override func makeShell() throws -> Module {
    try ConvTranspose2d(inChannels, outChannels, kernel: kernel, stride: spec.stride, padding: spec.padding,
                        outputPadding: outputPadding, bias: hasBias, generator: Generator(seed: 0))
  }
}
