import Foundation
import Tensor

/// An exponential moving average of a model's parameters and buffers, as BigGAN keeps G_ema:
/// a deep copy whose every state entry becomes decay·ema + (1 − decay)·model after each
/// update; before `startIter` the copy is exact (decay 0). BN running statistics and
/// spectral-norm vectors are averaged too (BigGAN averages its whole state dict); counters
/// (num_batches_tracked) are copied. Reference: ajbrock/BigGAN-PyTorch utils.py ema.
public final class EMA {
  public let model: Module
  public var decay: Double
  public var startIter: Int

  public convenience init(_ source: Module, decay: Double = 0.9999, startIter: Int = 0) throws {
    try self.init(average: source.copy(), decay: decay, startIter: startIter)
  }

  /// An EMA that keeps `average` (already a copy of the model) up to date.
  public init(average: Module, decay: Double = 0.9999, startIter: Int = 0) throws {
    guard (0...1).contains(decay) else { throw TensorError("EMA: decay must be in [0, 1], got \(decay)") }
    model = average
    self.decay = decay
    self.startIter = startIter
    for p in model.parameters() { p.requiresGrad = false }
  }

  /// Blends `source`'s state into the average; `iteration` below startIter copies exactly.
  public func update(_ source: Module, iteration: Int? = nil) throws {
    let d = (iteration.map { $0 < startIter } ?? false) ? 0 : decay
    let src = source.stateDict(), dst = model.stateDict()
    guard src.count == dst.count else {
      throw TensorError("EMA.update: the model has \(src.count) state entries, the average \(dst.count)")
    }
    try GradMode.withDisabled {
      for ((sn, s), (dn, t)) in zip(src, dst) {
        guard sn == dn, s.shape == t.shape else {
          throw TensorError("EMA.update: state '\(sn)' \(formatShape(s.shape)) does not match the average's '\(dn)' "
                            + "\(formatShape(t.shape))")
        }
        if d == 0 || sn.hasSuffix("num_batches_tracked") { _ = try t.copy_(s) } else { try Tensor.emaStep(target: t, source: s, decay: d) }
      }
    }
  }
}
