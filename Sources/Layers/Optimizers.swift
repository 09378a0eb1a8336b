import Foundation
import Tensor

/// An optimizer over groups of parameters, each group with its own options, and per-parameter
/// state (step count and named tensors), as torch.optim keeps them. Parameters without a
/// gradient are skipped by `step`, as in PyTorch.
open class Optimizer {
  public struct Group {
    public var params: [Tensor]
    public var options: [String: Double]
    public init(params: [Tensor], options: [String: Double]) { self.params = params; self.options = options }
  }
  public struct ParamState {
    public var step = 0
    public var tensors: [String: Tensor] = [:]
    public init() {}
  }

  public let typeName: String
  public private(set) var groups: [Group]
  public var state: [ObjectIdentifier: ParamState] = [:]

  /// State tensors that must come together when a state is loaded.
  open class var requiredStateTensors: [String] { stateTensorNames }

  /// Options every group of this optimizer has, with defaults.
  open class var defaults: [String: Double] { [:] }
  /// The tensors each parameter's state holds, in stateDict order.
  open class var stateTensorNames: [String] { [] }

  public init(typeName: String, groups: [Group]) throws {
    self.typeName = typeName
    guard !groups.isEmpty else { throw TensorError("\(typeName): no parameters to optimize") }
    var seen = Set<ObjectIdentifier>()
    var filled: [Group] = []
    for (gi, g) in groups.enumerated() {
      guard !g.params.isEmpty else { throw TensorError("\(typeName): parameter group \(gi + 1) is empty") }
      for (pi, p) in g.params.enumerated() {
        guard p.requiresGrad, p.isLeaf else {
          throw TensorError("\(typeName): group \(gi + 1) entry \(pi + 1) is not a parameter (a leaf tensor with requiresGrad set)")
        }
        guard seen.insert(ObjectIdentifier(p)).inserted else {
          throw TensorError("\(typeName): group \(gi + 1) entry \(pi + 1) appears more than once among the parameters")
        }
      }
      var opts = Self.defaults
      for (k, v) in g.options {
        guard opts[k] != nil else {
          throw TensorError("\(typeName): unknown option '\(k)' (options are \(Self.defaults.keys.sorted().joined(separator: ", ")))")
        }
        opts[k] = v
      }
      try Self.validate(opts)
      filled.append(Group(params: g.params, options: opts))
    }
    self.groups = filled
  }

  open class func validate(_ options: [String: Double]) throws {}

  /// One update of every parameter that has a gradient.
  public func step() throws {
    try GradMode.withDisabled {
      for g in groups {
        for p in g.params {
          guard let grad = p.grad else { continue }
          let id = ObjectIdentifier(p)
          var s = state[id] ?? ParamState()
          s.step += 1
          try update(p, grad, &s, g.options)
          state[id] = s
        }
      }
    }
  }

  open func update(_ p: Tensor, _ g: Tensor, _ s: inout ParamState, _ o: [String: Double]) throws {}

  /// Clears every parameter's gradient (set to nil, PyTorch's default).
  public func zeroGrad() { for g in groups { for p in g.params { p.grad = nil } } }

  /// Forgets all state (PGGAN resets Adam when the resolution changes).
  public func resetState() { state = [:] }

  public func setOption(_ name: String, _ value: Double, group: Int? = nil) throws {
    guard Self.defaults[name] != nil else { throw TensorError("\(typeName): unknown option '\(name)'") }
    for i in groups.indices where group == nil || group == i { groups[i].options[name] = value }
    for g in groups { try Self.validate(g.options) }
  }

  /// Every parameter in group order (the numbering stateDict uses, from 0).
  public var allParameters: [Tensor] { groups.flatMap { $0.params } }

  /// Per parameter (by position across groups): its step and state tensors, or nil if none yet.
  public func stateEntries() -> [(step: Int, tensors: [(String, Tensor)])?] {
    allParameters.map { p in
      guard let s = state[ObjectIdentifier(p)] else { return nil }
      return (s.step, Self.stateTensorNames.compactMap { n in s.tensors[n].map { (n, $0) } })
    }
  }

  /// Restores state saved by `stateEntries` (and group options), checking counts and shapes.
  public func load(entries: [(step: Int, tensors: [String: Tensor])?], groupOptions: [[String: Double]]) throws {
    let params = allParameters
    guard entries.count == params.count else {
      throw TensorError("\(typeName).loadStateDict: the state has \(entries.count) parameters, this optimizer \(params.count)")
    }
    guard groupOptions.count == groups.count else {
      throw TensorError("\(typeName).loadStateDict: the state has \(groupOptions.count) parameter groups, this optimizer \(groups.count)")
    }
    var newState: [ObjectIdentifier: ParamState] = [:]
    for (i, (p, e)) in zip(params, entries).enumerated() {
      guard let e else { continue }
      // A state holds all of its tensors or none (Adam's two moments go together).
      let missing = Self.requiredStateTensors.filter { e.tensors[$0] == nil }
      guard e.tensors.isEmpty || missing.isEmpty else {
        throw TensorError("\(typeName).loadStateDict: parameter \(i + 1) has no '\(missing[0])' (its state must hold \(Self.requiredStateTensors.joined(separator: " and ")))")
      }
      guard e.step >= 0 else { throw TensorError("\(typeName).loadStateDict: parameter \(i + 1) has step \(e.step)") }
      var s = ParamState()
      s.step = e.step
      for (name, t) in e.tensors.sorted(by: { $0.key < $1.key }) {  // sorted: errors name the same entry every run
        guard Self.stateTensorNames.contains(name) else {
          throw TensorError("\(typeName).loadStateDict: parameter \(i + 1) has unexpected state '\(name)'")
        }
        guard t.shape == p.shape else {
          throw TensorError("\(typeName).loadStateDict: state '\(name)' of parameter \(i + 1) has shape \(formatShape(t.shape)), the parameter \(formatShape(p.shape))")
        }
        s.tensors[name] = try t.detach().to(p.dtype).clone()
      }
      newState[ObjectIdentifier(p)] = s
    }
    var newGroups = groups
    for (i, o) in groupOptions.enumerated() {
      for (k, v) in o.sorted(by: { $0.key < $1.key }) {
        guard Self.defaults[k] != nil else { throw TensorError("\(typeName).loadStateDict: unknown option '\(k)' in group \(i + 1)") }
        newGroups[i].options[k] = v
      }
      do { try Self.validate(newGroups[i].options) } catch let e as TensorError {
        throw TensorError("\(typeName).loadStateDict: group \(i + 1): \(e.message)")
      }
    }
    groups = newGroups  // nothing changes unless everything loaded
    state = newState
  }
}

/// Adam (Kingma & Ba 2015) exactly as torch.optim.Adam (amsgrad off): weight decay added to the
/// gradient, bias-corrected moments, eps added after dividing √v by √(1-β2ᵗ).
public final class Adam: Optimizer {
  /// epsilonHat = 1: eps added to √v before the bias correction, as TensorFlow's Adam (its
  /// "epsilon hat", which PGGAN's official code trains with); 0: after it, as PyTorch's.
  public override class var defaults: [String: Double] {
    ["lr": 1e-3, "beta1": 0.9, "beta2": 0.999, "eps": 1e-8, "weightDecay": 0, "epsilonHat": 0]
  }
  public override class var stateTensorNames: [String] { ["exp_avg", "exp_avg_sq"] }
  public init(groups: [Group]) throws { try super.init(typeName: "Adam", groups: groups) }

  public override class func validate(_ o: [String: Double]) throws {
    guard o["lr"]! >= 0, o["lr"]!.isFinite else { throw TensorError("Adam: lr must be finite and >= 0, got \(o["lr"]!)") }
    guard (0..<1).contains(o["beta1"]!), (0..<1).contains(o["beta2"]!) else {
      throw TensorError("Adam: betas must be in [0, 1), got {\(o["beta1"]!), \(o["beta2"]!)}")
    }
    guard o["eps"]! >= 0, o["weightDecay"]! >= 0, o["eps"]!.isFinite, o["weightDecay"]!.isFinite else {
      throw TensorError("Adam: eps and weightDecay must be finite and >= 0")
    }
  }

  public override func update(_ p: Tensor, _ g: Tensor, _ s: inout ParamState, _ o: [String: Double]) throws {
    if s.tensors["exp_avg"] == nil || s.tensors["exp_avg_sq"] == nil {
      s.tensors["exp_avg"] = try Tensor.zeros(p.shape, dtype: p.dtype)
      s.tensors["exp_avg_sq"] = try Tensor.zeros(p.shape, dtype: p.dtype)
    }
    guard let m = s.tensors["exp_avg"], let v = s.tensors["exp_avg_sq"] else { return }
    try Tensor.adamStep(param: p, grad: g, expAvg: m, expAvgSq: v, step: s.step,
                        lr: o["lr"]!, beta1: o["beta1"]!, beta2: o["beta2"]!, eps: o["eps"]!, weightDecay: o["weightDecay"]!,
                        epsilonHat: (o["epsilonHat"] ?? 0) != 0)
  }
}

/// Stochastic gradient descent with optional momentum, dampening, Nesterov and weight decay,
/// as torch.optim.SGD.
public final class SGD: Optimizer {
  public override class var defaults: [String: Double] { ["lr": 1e-3, "momentum": 0, "dampening": 0, "weightDecay": 0, "nesterov": 0] }
  public override class var stateTensorNames: [String] { ["momentum_buffer"] }
  public override class var requiredStateTensors: [String] { [] }  // no buffer without momentum
  public init(groups: [Group]) throws { try super.init(typeName: "SGD", groups: groups) }

  public override class func validate(_ o: [String: Double]) throws {
    guard o["lr"]! >= 0, o["momentum"]! >= 0, o["weightDecay"]! >= 0, o["lr"]!.isFinite, o["momentum"]!.isFinite,
          o["weightDecay"]!.isFinite, o["dampening"]!.isFinite else {
      throw TensorError("SGD: lr, momentum and weightDecay must be finite and >= 0")
    }
    if o["nesterov"]! != 0 && (o["momentum"]! <= 0 || o["dampening"]! != 0) {
      throw TensorError("SGD: Nesterov momentum requires a momentum and zero dampening")
    }
  }

  public override func update(_ p: Tensor, _ g: Tensor, _ s: inout ParamState, _ o: [String: Double]) throws {
    let momentum = o["momentum"]!
    var first = false
    if momentum != 0 && s.tensors["momentum_buffer"] == nil {
      s.tensors["momentum_buffer"] = try Tensor.zeros(p.shape, dtype: p.dtype)
      first = true
    }
    try Tensor.sgdStep(param: p, grad: g, momentumBuffer: momentum != 0 ? s.tensors["momentum_buffer"] : nil, firstStep: first,
                       lr: o["lr"]!, momentum: momentum, dampening: o["dampening"]!, weightDecay: o["weightDecay"]!,
                       nesterov: o["nesterov"]! != 0)
  }
}
