import Tensor

/// BigGAN's non-local (self-attention) block, as SA-GAN's released code computes it:
///   θ = conv(x) C→C/8,  φ = maxpool2(conv(x)) C→C/8,  g = maxpool2(conv(x)) C→C/2
///   β = softmax over keys of θᵀφ   (HW × HW/4, no scaling)
///   out = γ · o(g βᵀ) + x,   o: C/2→C,  γ a scalar initialised to 0 (identity at start)
/// All four 1×1 convolutions are bias-free and (by default) spectrally normalized.
/// Reference: ajbrock/BigGAN-PyTorch layers.py Attention.
public final class SelfAttention: Module {
  public let channels: Int, spectralNorm: Bool, snEps: Double

  public init(_ channels: Int, spectralNorm: Bool = true, snEps: Double = 1e-12, generator: Generator = .global) throws {
    guard channels >= 8, channels % 8 == 0 else {
      throw TensorError("SelfAttention: channels must be a positive multiple of 8, got \(channels)")
    }
    self.channels = channels; self.spectralNorm = spectralNorm; self.snEps = snEps
    super.init(typeName: "SelfAttention")
    for (name, cin, cout) in [("theta", channels, channels / 8), ("phi", channels, channels / 8),
                              ("g", channels, channels / 2), ("o", channels / 2, channels)] {
      let conv = try Conv2d(cin, cout, kernel: (1, 1), bias: false, generator: generator)
      if spectralNorm { try conv.applySpectralNorm(eps: snEps, generator: generator) }
      try setChild(name, conv)
    }
    let gamma = try Tensor.zeros([])
    gamma.requiresGrad = true
    setParameter("gamma", gamma)
  }

  /// forward(x) or forward(x, y): the conditioning y is accepted and ignored, as in BigGAN.
  public override func forward(_ inputs: [Tensor]) throws -> Tensor {
    guard inputs.count == 1 || inputs.count == 2 else {
      throw TensorError("SelfAttention: forward expects x (and an ignored condition), got \(inputs.count) inputs")
    }
    let x = inputs[0]
    guard x.rank == 4, x.shape[1] == channels, x.shape[2] % 2 == 0, x.shape[3] % 2 == 0 else {
      throw TensorError("SelfAttention: input must be (N, \(channels), H, W) with even H and W, got \(formatShape(x.shape))")
    }
    let (n, h, w) = (x.shape[0], x.shape[2], x.shape[3])
    let c8 = channels / 8, c2 = channels / 2
    let theta = try requireChild("theta").forward([x]).reshape([n, c8, h * w])
    let phi = try requireChild("phi").forward([x]).maxPool2d(kernel: 2).reshape([n, c8, h * w / 4])
    let g = try requireChild("g").forward([x]).maxPool2d(kernel: 2).reshape([n, c2, h * w / 4])
    // (N, HW, HW/4); with no graph, the softmax runs in the logits' storage
    let beta = try theta.transpose(1, 2).bmm(phi).softmaxIntoFresh()
    let attended = try g.bmm(beta.transpose(1, 2)).reshape([n, c2, h, w])
    let o = try requireChild("o").forward([attended])
    return try o.mulIntoFresh(requireParameter("gamma")).addIntoFresh(x)
  }

  public override var summary: String { "(\(channels)\(spectralNorm ? ", spectralNorm" : ""))" }
  public override func makeShell() throws -> Module {
    try SelfAttention(channels, spectralNorm: spectralNorm, snEps: snEps, generator: Generator(seed: 0))
  }
}
