/// Reverse-mode autograd on a dynamic graph, micrograd-sized.
///
/// Each primitive op records a `Node` holding its inputs and a pullback: a closure from the
/// output's gradient to the inputs' gradients, written with ordinary differentiable Tensor ops
/// (house decision 1). `backward` runs pullbacks with recording off; with `createGraph` it runs
/// them with recording on, so the gradients it returns can be differentiated again (R1, WGAN-GP).

/// Whether ops record onto the graph. Only the Lua thread ever changes it.
public enum GradMode {
  nonisolated(unsafe) public static var isEnabled = true

  /// Runs `body` with recording off (`tensor.noGrad`).
  public static func withDisabled<R>(_ body: () throws -> R) rethrows -> R {
    let saved = isEnabled
    isEnabled = false
    defer { isEnabled = saved }
    return try body()
  }
}

/// A recorded op: its inputs and the rule that maps the output's gradient to theirs.
/// `needs[i]` tells the pullback whether input i's gradient is wanted, so expensive ones
/// (a convolution's input gradient for the first layer) are skipped.
final class Node {
  let op: String
  var inputs: [Tensor]
  var pullback: ((Tensor, [Bool]) throws -> [Tensor?])?

  init(_ op: String, _ inputs: [Tensor], _ pullback: @escaping (Tensor, [Bool]) throws -> [Tensor?]) {
    self.op = op
    self.inputs = inputs
    self.pullback = pullback
  }
}

/// Attaches a node to `out` when recording is on and some input requires grad. Pullbacks that
/// need the output capture it weakly: the node hangs off the output, so a strong capture would
/// be a cycle; during backward the output is alive because the traversal holds it.
@inline(__always)
func record(_ op: String, _ out: Tensor, _ inputs: [Tensor], _ pullback: @escaping (Tensor, [Bool]) throws -> [Tensor?]) -> Tensor {
  if Profiler.isEnabled { Profiler.mark(op) }
  var any = false
  for t in inputs where t.requiresGrad { any = true; break }
  guard any, GradMode.isEnabled else { return out }
  out.requiresGrad = true
  out.node = Node(op, inputs, pullback)
  return out
}

extension Tensor {
  /// Accumulates d(self)/d(leaf) · gradient into `leaf.grad` for every leaf that requires grad
  /// (`y:backward([gradient])`). Without `gradient` the tensor must hold one element.
  public func backward(_ gradient: Tensor? = nil, retainGraph: Bool = false, createGraph: Bool = false) throws {
    _ = try Autograd.run(roots: [self], gradOutputs: [gradient], inputs: nil,
                         retainGraph: retainGraph || createGraph, createGraph: createGraph, allowUnused: true)
  }

  /// Returns d(sum of outputs · gradOutputs)/d(input) for each input, without touching `.grad`
  /// (`tensor.grad`, as torch.autograd.grad). `retainGraph` defaults to `createGraph`.
  public static func grad(outputs: [Tensor], inputs: [Tensor], gradOutputs: [Tensor?]? = nil,
                          createGraph: Bool = false, retainGraph: Bool? = nil, allowUnused: Bool = false) throws -> [Tensor] {
    let gos = gradOutputs ?? [Tensor?](repeating: nil, count: outputs.count)
    guard gos.count == outputs.count else {
      throw TensorError("grad: \(outputs.count) outputs but \(gos.count) gradOutputs")
    }
    let r = try Autograd.run(roots: outputs, gradOutputs: gos, inputs: inputs,
                             retainGraph: retainGraph ?? createGraph, createGraph: createGraph, allowUnused: allowUnused)
    return try zip(inputs, r).map { x, g in try g ?? Tensor.zeros(x.shape, dtype: x.dtype) }
  }

  /// Sets the gradient of a leaf to nil.
  public func zeroGrad() { grad = nil }
}

enum Autograd {
  /// The traversal shared by `backward` and `grad`. With `inputs` nil, gradients reaching
  /// leaves are accumulated into `.grad`; otherwise they are returned for `inputs`.
  static func run(roots: [Tensor], gradOutputs: [Tensor?], inputs: [Tensor]?, retainGraph: Bool,
                  createGraph: Bool, allowUnused: Bool) throws -> [Tensor?] {
    // Seed gradients.
    var grads: [ObjectIdentifier: Tensor] = [:]
    for (i, (root, go)) in zip(roots, gradOutputs).enumerated() {
      guard root.requiresGrad else {
        throw TensorError("backward: output \(i + 1) does not require grad (no input of the computation had requiresGrad set, or it ran under noGrad)")
      }
      let seed: Tensor
      if let go {
        guard go.shape == root.shape else {
          throw TensorError("backward: gradient has shape \(formatShape(go.shape)) but the output has shape \(formatShape(root.shape))")
        }
        seed = go.dtype == root.dtype ? go : try go.to(root.dtype)
      } else {
        guard root.numel == 1 else {
          throw TensorError("backward: output of shape \(formatShape(root.shape)) is not a scalar; pass a gradient of the same shape")
        }
        seed = try Tensor.full(root.shape, 1, dtype: root.dtype)
      }
      let key = ObjectIdentifier(root)
      grads[key] = try grads[key].map { try $0 + seed } ?? seed
    }

    // Topological order: every tensor after all of its inputs (iterative DFS).
    var order: [Tensor] = []
    var visited = Set<ObjectIdentifier>()
    var stack: [(Tensor, Int)] = []
    for root in roots where !visited.contains(ObjectIdentifier(root)) {
      visited.insert(ObjectIdentifier(root))
      stack.append((root, 0))
      while let (t, i) = stack.last {
        if let node = t.node, node.pullback == nil {
          throw TensorError("backward: the graph through '\(node.op)' was already freed by an earlier backward; pass retainGraph=true to the first one")
        }
        let parents = t.node?.inputs ?? []
        if i < parents.count {
          stack[stack.count - 1].1 = i + 1
          let p = parents[i]
          if p.requiresGrad && !visited.contains(ObjectIdentifier(p)) {
            visited.insert(ObjectIdentifier(p))
            stack.append((p, 0))
          }
        } else {
          stack.removeLast()
          order.append(t)
        }
      }
    }

    // Which tensors lead to a wanted gradient (a requested input, or a leaf that requires
    // grad), and which nodes must run their pullback to get there.
    let inputIDs = Set((inputs ?? []).map(ObjectIdentifier.init))
    var needed = Set<ObjectIdentifier>(), propagates = Set<ObjectIdentifier>()
    for t in order {
      let id = ObjectIdentifier(t)
      if let node = t.node, node.inputs.contains(where: { needed.contains(ObjectIdentifier($0)) }) {
        propagates.insert(id)
        needed.insert(id)
      } else if inputs != nil ? inputIDs.contains(id) : (t.node == nil && t.requiresGrad) {
        needed.insert(id)
      }
    }

    let saved = GradMode.isEnabled, savedPhase = Profiler.inBackward
    GradMode.isEnabled = createGraph
    if Profiler.isEnabled { Profiler.mark("backward setup"); Profiler.inBackward = true }
    defer {
      GradMode.isEnabled = saved
      if Profiler.isEnabled { Profiler.mark("backward accumulate") }
      Profiler.inBackward = savedPhase
    }

    for t in order.reversed() {
      let id = ObjectIdentifier(t)
      guard let node = t.node, propagates.contains(id) else { continue }
      guard let g = grads[id] else { continue }
      guard let pullback = node.pullback else {
        throw TensorError("backward: the graph through '\(node.op)' was already freed by an earlier backward; pass retainGraph=true to the first one")
      }
      let needs = node.inputs.map { $0.requiresGrad && needed.contains(ObjectIdentifier($0)) }
      let inputGrads = try pullback(g, needs)
      for (x, gx) in zip(node.inputs, inputGrads) {
        guard let gx, x.requiresGrad else { continue }
        let key = ObjectIdentifier(x)
        grads[key] = try grads[key].map { try $0 + gx } ?? gx
      }
      if !retainGraph {
        node.pullback = nil
        node.inputs = []
      }
      if inputs == nil || !inputIDs.contains(id) { grads[id] = nil }  // free intermediate gradients early
    }

    if let inputs {
      return try inputs.enumerated().map { i, x in
        if let g = grads[ObjectIdentifier(x)] { return g }
        if !allowUnused {
          throw TensorError("grad: input \(i + 1) was not used to compute the outputs (pass allowUnused=true to get zeros)")
        }
        return nil
      }
    }
    // Accumulate into leaves.
    for t in order where t.node == nil && t.requiresGrad {
      guard let g = grads[ObjectIdentifier(t)] else { continue }
      if createGraph {
        t.grad = try t.grad.map { try $0 + g } ?? g
      } else if let existing = t.grad, existing.node == nil, existing.isContiguous, existing.shape == g.shape, existing.dtype == g.dtype {
        try existing.addInPlace(g)
      } else {
        t.grad = try t.grad.map { try ($0 + g).detach() } ?? g.detachedCopyIfShared()
      }
    }
    return []
  }
}

extension Tensor {
  /// A gradient stored into `.grad` must not alias another tensor the user can see (a pullback
  /// may return its incoming gradient unchanged), or a later in-place accumulation would write
  /// through to it.
  func detachedCopyIfShared() throws -> Tensor { try detach().clone() }
}
