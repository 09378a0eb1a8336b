import Foundation

/// Reverse-mode autograd on a dynamic graph, micrograd-sized.
///
/// Each primitive op records a `Node` holding its inputs and a pullback: a closure from the
/// output's gradient to the inputs' gradients, written with ordinary differentiable Tensor ops
/// (DESIGN.md house decision 1). `backward` runs pullbacks with recording off; with `createGraph` it runs
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

/// A recorded op: where its inputs' gradients go and the rule that maps the output's gradient
/// to theirs. `needs[i]` tells the pullback whether input i's gradient is wanted, so expensive
/// ones (a convolution's input gradient for the first layer) are skipped.
///
/// The node does not hold its input tensors, only their producing nodes (or, for leaves, the
/// leaf): an intermediate tensor lives only as long as some pullback captured it, as in
/// PyTorch's saved tensors, so a graph keeps what backward needs and no more.
final class Node {
  let op: String
  var edges: [Edge?]
  var pullback: ((Tensor, [Bool]) throws -> [Tensor?])?

  init(_ op: String, _ edges: [Edge?], _ pullback: @escaping (Tensor, [Bool]) throws -> [Tensor?]) {
    self.op = op
    self.edges = edges
    self.pullback = pullback
  }

  /// Releasing a node releases its inputs' nodes and what its pullback captured, which release
  /// theirs: a chain of 300,000 ops (`y = y + 1` in a loop) would recurse that deep and overflow
  /// the stack. The node hands what it holds to the graveyard, which drops it iteratively.
  deinit {
    if edges.isEmpty && pullback == nil { return }
    Graveyard.bury(self)
  }
}

/// Drops released graph pieces one at a time, so releasing a graph never recurses deeper than
/// one node, however long the graph. Per thread: nodes die where their last owner lets go.
enum Graveyard {
  final class Plot { var draining = false; var graves: [Any] = [] }
  static let key: pthread_key_t = {
    var k = pthread_key_t()
    pthread_key_create(&k) { if let p = $0 { Unmanaged<Plot>.fromOpaque(p).release() } }
    return k
  }()

  static var plot: Plot {
    if let p = pthread_getspecific(key) { return Unmanaged<Plot>.fromOpaque(p).takeUnretainedValue() }
    let p = Plot()
    pthread_setspecific(key, Unmanaged.passRetained(p).toOpaque())
    return p
  }

  /// Takes the node's edges and pullback (the graveyard then holds their last references: no
  /// local copy may outlive the drain, or releasing it would recurse after all).
  static func bury(_ node: Node) {
    let p = plot
    p.graves.append(node.edges)
    node.edges = []
    if let pullback = node.pullback { p.graves.append(pullback) }
    node.pullback = nil
    if p.draining { return }  // an outer bury is draining: it will drop these
    p.draining = true
    while let g = p.graves.popLast() { _ = g }  // dropping g may bury more: they land in graves
    p.draining = false
  }
}

/// What a pullback keeps of an operand it needs only for its partner's gradient: the operand
/// if that partner requires grad, else nothing (so x·mask, with a constant mask, does not keep
/// x alive).
@inline(__always) func saved(_ t: Tensor, if wanted: Bool) -> Tensor? { wanted ? t : nil }

/// What a pullback keeps of a big operand: the tensor, or, when it is a nearest upsampling of
/// another, that smaller tensor and the factor (rematerialized when the pullback runs; the
/// values and the graph to the source are the same).
enum SavedOperand {
  case tensor(Tensor)
  case upsampled(Tensor, Int)

  init?(_ t: Tensor, if wanted: Bool) {
    guard wanted else { return nil }
    if let (s, f) = t.upsampledFrom { self = .upsampled(s, f) } else { self = .tensor(t) }
  }

  func value() throws -> Tensor {
    switch self {
    case .tensor(let t): return t
    case .upsampled(let s, let f): return try s.upsampleNearest(f)
    }
  }
}

/// Where a gradient flows: into the node that produced a tensor, or into a leaf tensor.
enum Edge {
  case node(Node)
  case leaf(Tensor)

  var key: ObjectIdentifier {
    switch self {
    case .node(let n): return ObjectIdentifier(n)
    case .leaf(let t): return ObjectIdentifier(t)
    }
  }

  /// The edge a gradient for `t` follows, or nil when t does not require grad.
  init?(_ t: Tensor) {
    if let n = t.node { self = .node(n) } else if t.requiresGrad { self = .leaf(t) } else { return nil }
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
  out.node = Node(op, inputs.map { Edge($0) }, pullback)
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

/// Watches a `backward` (not `grad`): `leafReady` is called for each leaf as soon as its
/// gradient is final and stored in `.grad` (the last node feeding it has run), and `progress`
/// after every node. Data parallelism starts each bucket's all-reduce from `leafReady` while
/// backward goes on (PyTorch DDP's reducer hooks), and lets the reduction advance from
/// `progress`. Set by the Lua thread, which runs backward; an error thrown ends the backward.
public protocol BackwardObserver: AnyObject {
  /// Before any node runs: the leaves this backward will reach (by ObjectIdentifier); the
  /// others will get no gradient from it.
  func backwardStarts(reaching leaves: Set<ObjectIdentifier>) throws
  func leafReady(_ leaf: Tensor) throws
  func progress() throws
}

public enum BackwardObservation {
  nonisolated(unsafe) public static var observer: BackwardObserver?
}

enum Autograd {
  /// Stores a leaf's gradient `g` into `.grad` (added to what is there).
  static func accumulate(_ g: Tensor, into t: Tensor, createGraph: Bool) throws {
    if createGraph {
      t.grad = try t.grad.map { try $0 + g } ?? g
    } else if let existing = t.grad, existing.node == nil, existing.isContiguous, existing.shape == g.shape, existing.dtype == g.dtype {
      try existing.addInPlace(g)
    } else {
      t.grad = try t.grad.map { try ($0 + g).detach() } ?? g.detachedCopyIfShared()
    }
  }

  /// The edges in topological order: every node after all the nodes it feeds (iterative DFS
  /// from the roots; a node's children are its input edges).
  static func topologicalOrder(_ rootEdges: [Edge]) throws -> [Edge] {
    var order: [Edge] = []
    var visited = Set<ObjectIdentifier>()
    var stack: [(Edge, Int)] = []
    for root in rootEdges where !visited.contains(root.key) {
      visited.insert(root.key)
      stack.append((root, 0))
      while let (e, i) = stack.last {
        var children: [Edge?] = []
        if case .node(let n) = e {
          if n.pullback == nil {
            throw TensorError("backward: the graph through '\(n.op)' was already freed by an earlier backward; pass retainGraph=true to the first one")
          }
          children = n.edges
        }
        if i < children.count {
          stack[stack.count - 1].1 = i + 1
          if let c = children[i], !visited.contains(c.key) {
            visited.insert(c.key)
            stack.append((c, 0))
          }
        } else {
          stack.removeLast()
          order.append(e)
        }
      }
    }
    return order
  }

  /// The traversal shared by `backward` and `grad`. With `inputs` nil, gradients reaching
  /// leaves are accumulated into `.grad`; otherwise they are returned for `inputs`.
  /// Gradients are keyed by edge: a node (the gradient of its output) or a leaf tensor.
  static func run(roots: [Tensor], gradOutputs: [Tensor?], inputs: [Tensor]?, retainGraph: Bool,
                  createGraph: Bool, allowUnused: Bool) throws -> [Tensor?] {
    // Seed gradients.
    var grads: [ObjectIdentifier: Tensor] = [:]
    var rootEdges: [Edge] = []
    for (i, (root, go)) in zip(roots, gradOutputs).enumerated() {
      guard root.requiresGrad, let edge = Edge(root) else {
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
      grads[edge.key] = try grads[edge.key].map { try $0 + seed } ?? seed
      rootEdges.append(edge)
    }

    let order = try topologicalOrder(rootEdges)

    // Which edges lead to a wanted gradient (a requested input, or any leaf), and so which
    // nodes must run their pullback.
    let inputKeys: [ObjectIdentifier]? = try inputs.map { list in
      try list.enumerated().map { i, x in
        guard let e = Edge(x) else {
          if allowUnused { return ObjectIdentifier(x) }
          throw TensorError("grad: input \(i + 1) does not require grad, so no gradient reaches it")
        }
        return e.key
      }
    }
    let inputKeySet = Set(inputKeys ?? [])
    var needed = Set<ObjectIdentifier>()
    for e in order {
      let key = e.key
      switch e {
      case .node(let n):
        if inputKeySet.contains(key) || n.edges.contains(where: { $0.map { needed.contains($0.key) } ?? false }) { needed.insert(key) }
      case .leaf:
        if inputs == nil || inputKeySet.contains(key) { needed.insert(key) }
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

    // With an observer (backward only): how many needed nodes still feed each leaf; a leaf
    // whose count reaches zero has its final gradient, stored and announced at once.
    let observer = inputs == nil ? BackwardObservation.observer : nil
    var pendingFeeds: [ObjectIdentifier: Int] = [:]
    if observer != nil {
      for e in order {
        guard case .node(let n) = e, needed.contains(e.key) else { continue }
        for case .leaf(let t)? in n.edges where needed.contains(ObjectIdentifier(t)) { pendingFeeds[ObjectIdentifier(t), default: 0] += 1 }
      }
      var reached = Set(pendingFeeds.keys)
      for case .leaf(let t) in order where grads[ObjectIdentifier(t)] != nil { reached.insert(ObjectIdentifier(t)) }
      try observer?.backwardStarts(reaching: reached)
    }
    func nodeDone(_ edges: [Edge?]) throws {
      guard let observer else { return }
      for case .leaf(let t)? in edges {
        let key = ObjectIdentifier(t)
        guard let left = pendingFeeds[key] else { continue }
        if left > 1 { pendingFeeds[key] = left - 1; continue }
        pendingFeeds[key] = nil
        if let g = grads.removeValue(forKey: key) { try accumulate(g, into: t, createGraph: createGraph) }
        try observer.leafReady(t)
      }
      try observer.progress()
    }

    for e in order.reversed() {
      guard case .node(let node) = e else { continue }
      let key = e.key
      guard needed.contains(key) else { continue }
      let edges = node.edges
      guard let g = grads[key] else { try nodeDone(edges); continue }
      let propagates = node.edges.contains { $0.map { needed.contains($0.key) } ?? false }
      if propagates {
        guard let pullback = node.pullback else {
          throw TensorError("backward: the graph through '\(node.op)' was already freed by an earlier backward; pass retainGraph=true to the first one")
        }
        let needs = node.edges.map { $0.map { needed.contains($0.key) } ?? false }
        let inputGrads = try pullback(g, needs)
        for (edge, gx) in zip(node.edges, inputGrads) {
          guard let edge, let gx, needed.contains(edge.key) else { continue }
          grads[edge.key] = try grads[edge.key].map { try $0 + gx } ?? gx
        }
      }
      if !retainGraph {
        node.pullback = nil
        node.edges = []
      }
      if !inputKeySet.contains(key) { grads[key] = nil }  // free intermediate gradients early
      try nodeDone(edges)
    }

    if let inputKeys {
      return try inputKeys.enumerated().map { i, key in
        if let g = grads[key] { return g }
        if !allowUnused {
          throw TensorError("grad: input \(i + 1) was not used to compute the outputs (pass allowUnused=true to get zeros)")
        }
        return nil
      }
    }
    // Accumulate into leaves (with an observer, only the roots that are leaves are left).
    for e in order {
      guard case .leaf(let t) = e, let g = grads[e.key] else { continue }
      try accumulate(g, into: t, createGraph: createGraph)
      try observer?.leafReady(t)
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
