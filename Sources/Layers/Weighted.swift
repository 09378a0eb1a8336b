import Foundation
import Tensor

/// A module whose `weight` may be reparametrized, the two ways the papers need:
/// - equalized learning rate (PGGAN): the stored weight is N(0, 1) and the forward uses
///   weight·gain/√fan_in (biases unscaled);
/// - spectral normalization (Miyato et al. 2018, as torch.nn.utils.spectral_norm and BigGAN):
///   the weight is stored as `weight_orig` with persistent power-iteration vectors `weight_u`
///   and `weight_v`; each training forward runs nPowerIterations steps
///   v = normalize(Wᵀu), u = normalize(Wv) without gradient and uses W/σ, σ = uᵀWv, with the
///   gradient flowing through σ. In eval mode u and v stay as they are, and σ = uᵀWv from them
///   (torch.nn.utils.spectral_norm); with `evalPowerStep`, an eval forward runs one fresh step
///   from the stored u and uses its σ without storing anything, as ajbrock/BigGAN-PyTorch's
///   layers.py SN.W_ (power_iteration with update=False), so its checkpoints give its outputs.
open class WeightedModule: Module {
  /// gain/√fan_in when the learning rate is equalized.
  public internal(set) var equalizedScale: Double?
  public private(set) var spectralNorm: SpectralNormSettings?

  public struct SpectralNormSettings: Equatable {
    public var eps: Double
    public var iterations: Int
    /// The weight dim that becomes the rows of the matrix (0; 1 for ConvTranspose2d).
    public var dim: Int
    /// BigGAN-PyTorch's eval mode: one power step from the stored u per forward, not stored.
    public var evalPowerStep = false
  }

  /// The dim spectral normalization treats as output rows by default.
  open var spectralNormDim: Int { 0 }

  /// The weight the forward uses.
  public func effectiveWeight() throws -> Tensor {
    if let sn = spectralNorm {
      return try spectralNormalizedWeight(sn, update: training, freshStep: !training && sn.evalPowerStep)
    }
    let w = try requireParameter("weight")
    if let s = equalizedScale { return try w.mul(Tensor.scalar(s, dtype: w.dtype)) }
    return w
  }

  /// Switches spectral normalization on: `weight` becomes `weight_orig`, plus buffers
  /// `weight_u` (rows) and `weight_v` (columns), initialised to normalized Gaussians.
  public func applySpectralNorm(eps: Double = 1e-12, iterations: Int = 1, dim: Int? = nil, evalPowerStep: Bool = false,
                                generator: Generator = .global) throws {
    guard spectralNorm == nil else { throw TensorError("SpectralNorm: \(typeName) is already spectrally normalized") }
    guard equalizedScale == nil else { throw TensorError("SpectralNorm: \(typeName) uses an equalized learning rate; use one or the other") }
    guard eps > 0, iterations >= 0 else { throw TensorError("SpectralNorm: eps must be > 0 and nPowerIterations >= 0") }
    let w = try requireParameter("weight")
    let d = dim ?? spectralNormDim
    guard d >= 0 && d < w.rank else { throw TensorError("SpectralNorm: dim \(d + 1) out of range for weight \(formatShape(w.shape))") }
    let h = w.shape[d], cols = w.numel / Swift.max(h, 1)
    let u = try Tensor.randn([h], dtype: w.dtype, generator: generator)
    let v = try Tensor.randn([cols], dtype: w.dtype, generator: generator)
    try GradMode.withDisabled {
      _ = try u.copy_(normalize(u, eps))
      _ = try v.copy_(normalize(v, eps))
    }
    setParameter("weight", nil)
    setParameter("weight_orig", w)
    setBuffer("weight_u", u)
    setBuffer("weight_v", v)
    spectralNorm = SpectralNormSettings(eps: eps, iterations: iterations, dim: d, evalPowerStep: evalPowerStep)
  }

  /// Switches BigGAN-PyTorch's eval-mode power step on or off (see the class comment).
  /// Returns false, changing nothing, when this module is not spectrally normalized.
  @discardableResult
  public func setSpectralNormEvalPowerStep(_ on: Bool) -> Bool {
    guard spectralNorm != nil else { return false }
    spectralNorm?.evalPowerStep = on
    return true
  }

  /// x / max(‖x‖, eps), as torch.nn.functional.normalize.
  func normalize(_ x: Tensor, _ eps: Double) throws -> Tensor {
    let n = try x.norm().item()
    return try x.div(Tensor.scalar(Swift.max(n, eps), dtype: x.dtype))
  }

  /// The weight viewed as (rows, -1) with `dim` as rows.
  func weightMatrix(_ w: Tensor, _ dim: Int) throws -> Tensor {
    var m = w
    if dim != 0 {
      var perm = Array(0..<w.rank)
      perm.remove(at: dim)
      perm.insert(dim, at: 0)
      m = try w.permute(perm)
    }
    return try m.reshape([w.shape[dim], -1])
  }

  /// W/σ. `update`: run the power steps and store u, v (training). `freshStep`: σ from one
  /// step v = normalize(Wᵀu), u' = normalize(Wv) from the stored u, nothing stored
  /// (BigGAN-PyTorch's power_iteration(update=False)).
  func spectralNormalizedWeight(_ sn: SpectralNormSettings, update: Bool, freshStep: Bool = false) throws -> Tensor {
    let w = try requireParameter("weight_orig")
    var u = try requireBuffer("weight_u"), v = try requireBuffer("weight_v")
    let wm = try weightMatrix(w, sn.dim)
    if freshStep && !update {
      try GradMode.withDisabled {
        let wd = wm.detach()
        v = try normalize(wd.t().matmul(u), sn.eps)
        u = try normalize(wd.matmul(v), sn.eps)
      }
    }
    if update && sn.iterations > 0 {
      try GradMode.withDisabled {
        let wd = wm.detach()
        var uu = u, vv = v
        for _ in 0..<sn.iterations {
          vv = try normalize(wd.t().matmul(uu), sn.eps)
          uu = try normalize(wd.matmul(vv), sn.eps)
        }
        _ = try u.copy_(uu)
        _ = try v.copy_(vv)
      }
    }
    // σ = uᵀ W v with u, v constants: the gradient reaches W through σ as well.
    let sigma = try u.detach().clone().mul(wm.matmul(v.detach().clone())).sum()
    return try w.div(sigma)
  }

  /// The spectrally normalized weight from the stored vectors (no power step): what
  /// `module.weight` reads as under spectral norm.
  public func currentNormalizedWeight() throws -> Tensor? {
    guard let sn = spectralNorm else { return nil }
    return try GradMode.withDisabled { try spectralNormalizedWeight(sn, update: false) }
  }

  open override func copyConfiguration(from other: Module) throws {
    guard let o = other as? WeightedModule else { return }
    equalizedScale = o.equalizedScale
    spectralNorm = o.spectralNorm
  }

  /// PyTorch's default for Linear and Conv: kaiming_uniform(a=√5) on the weight, which is
  /// U(±1/√fan_in), and U(±1/√fan_in) on the bias.
  func defaultInit(fanIn: Int, generator: Generator) throws {
    let b = 1 / Double(Swift.max(fanIn, 1)).squareRoot()
    try Init.uniform(try requireParameter("weight"), -b, b, generator: generator)
    if let bias = parameter("bias") { try Init.uniform(bias, -b, b, generator: generator) }
  }

  /// PGGAN's equalized learning rate: N(0, 1) weight, zero bias, run-time scale gain/√fan_in.
  func equalizedInit(fanIn: Int, gain: Double, generator: Generator) throws {
    try Init.normal(try requireParameter("weight"), generator: generator)
    if let bias = parameter("bias") { try Init.constant(bias, 0) }
    equalizedScale = gain / Double(Swift.max(fanIn, 1)).squareRoot()
  }

  var reparametrizationSummary: String {
    var s = ""
    if let e = equalizedScale { s += ", equalized (scale \(String(format: "%.4g", e)))" }
    if let sn = spectralNorm {
      let steps = "\(sn.iterations) step\(sn.iterations == 1 ? "" : "s")\(sn.evalPowerStep ? ", eval power step" : "")"
      s += ", spectralNorm (eps \(sn.eps), \(steps))"
    }
    return s
  }
}

func newParameter(_ shape: [Int]) throws -> Tensor {
  let t = try Tensor.zeros(shape)
  t.requiresGrad = true
  return t
}
