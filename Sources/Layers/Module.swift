import Tensor

/// A layer or a network: ordered parameters, buffers and children, as torch.nn.Module keeps
/// them, so `stateDict` names are PyTorch's (DESIGN.md house decision 6: `conv1.weight`,
/// `bn.running_mean`, `0.weight` for a Sequential's first child).
///
/// Subclasses read their tensors and children by name (`parameter("weight")`), never through
/// stored references, so `copy()` and `loadStateDict` can swap what a name points to.
open class Module {
  /// The class name shown in `tostring` and errors ("Linear", or a Lua class's name).
  public let typeName: String
  public private(set) var training = true
  public private(set) var parameterSlots: [(name: String, tensor: Tensor)] = []
  public private(set) var bufferSlots: [(name: String, tensor: Tensor, persistent: Bool)] = []
  public private(set) var childSlots: [(name: String, module: Module)] = [] {
    didSet { relinkParents(old: oldValue) }
  }
  /// The modules holding this one as a child (weakly): a tree is checked for depth upwards.
  private var parentLinks: [WeakModule] = []

  /// How deep a module tree may be. Walks over the tree (parameters, state dicts, train/eval)
  /// recurse once per level; a bound keeps them, and the release of a tree, off the end of the
  /// stack, and turns a runaway construction loop into an error instead of a crash.
  public static let maxDepth = 256

  public init(typeName: String) { self.typeName = typeName }

  // MARK: - Registration (torch.nn.Module.register_parameter / register_buffer / add_module)

  /// Sets (or with nil removes) parameter `name`; a replaced parameter keeps its position.
  public func setParameter(_ name: String, _ t: Tensor?) {
    removeName(name, except: .parameter)
    if let i = parameterSlots.firstIndex(where: { $0.name == name }) {
      if let t { parameterSlots[i].tensor = t } else { parameterSlots.remove(at: i) }
    } else if let t {
      parameterSlots.append((name, t))
    }
  }

  public func setBuffer(_ name: String, _ t: Tensor?, persistent: Bool = true) {
    removeName(name, except: .buffer)
    if let i = bufferSlots.firstIndex(where: { $0.name == name }) {
      if let t { bufferSlots[i] = (name, t, persistent) } else { bufferSlots.remove(at: i) }
    } else if let t {
      bufferSlots.append((name, t, persistent))
    }
  }

  /// Sets (or with nil removes) child `name`. Refuses a child that would make a cycle (a
  /// module inside itself) or a tree deeper than `maxDepth`.
  public func setChild(_ name: String, _ m: Module?) throws {
    if let m { try checkCanAdopt(m) }
    removeName(name, except: .child)
    if let i = childSlots.firstIndex(where: { $0.name == name }) {
      if let m { childSlots[i].module = m } else { childSlots.remove(at: i) }
    } else if let m {
      childSlots.append((name, m))
    }
  }

  enum Kind { case parameter, buffer, child }
  /// A name belongs to one kind at a time: assigning a buffer where a parameter was replaces it.
  private func removeName(_ name: String, except kind: Kind) {
    if kind != .parameter { parameterSlots.removeAll { $0.name == name } }
    if kind != .buffer { bufferSlots.removeAll { $0.name == name } }
    if kind != .child { childSlots.removeAll { $0.name == name } }
  }

  // MARK: - Parents, cycles and depth

  private func relinkParents(old: [(name: String, module: Module)]) {
    let before = Set(old.map { ObjectIdentifier($0.module) }), after = Set(childSlots.map { ObjectIdentifier($0.module) })
    for (_, m) in old where !after.contains(ObjectIdentifier(m)) { m.parentLinks.removeAll { $0.module === self || $0.module == nil } }
    for (_, m) in childSlots where !before.contains(ObjectIdentifier(m)) { m.parentLinks.append(WeakModule(self)) }
  }

  /// Levels above this module: 0 for a root, else 1 + the deepest parent's (stops past maxDepth).
  private func levelsAbove() -> Int {
    var frontier: [Module] = [self], levels = 0
    while levels <= Module.maxDepth {
      var seen = Set<ObjectIdentifier>(), next: [Module] = []
      for m in frontier {
        for link in m.parentLinks { if let p = link.module, seen.insert(ObjectIdentifier(p)).inserted { next.append(p) } }
      }
      if next.isEmpty { return levels }
      frontier = next
      levels += 1
    }
    return levels
  }

  /// Throws unless `child` can hang under this module: it must not contain this module, and
  /// the tree must stay within maxDepth levels. Iterative: it never recurses.
  public func checkCanAdopt(_ child: Module) throws {
    let above = levelsAbove()
    var stack: [(Module, Int)] = [(child, 1)], deepest = [ObjectIdentifier: Int]()
    while let (m, level) = stack.popLast() {
      if m === self { throw TensorError("\(typeName): a module cannot contain itself (adding \(child.typeName) would make a cycle)") }
      if above + level > Module.maxDepth {
        throw TensorError("\(typeName): adding \(child.typeName) would make the module tree deeper than \(Module.maxDepth) levels")
      }
      if let d = deepest[ObjectIdentifier(m)], d >= level { continue }
      deepest[ObjectIdentifier(m)] = level
      for c in m.childSlots { stack.append((c.module, level + 1)) }
    }
  }

  public func parameter(_ name: String) -> Tensor? { parameterSlots.first { $0.name == name }?.tensor }
  public func buffer(_ name: String) -> Tensor? { bufferSlots.first { $0.name == name }?.tensor }
  public func child(_ name: String) -> Module? { childSlots.first { $0.name == name }?.module }

  /// The parameter `name`, or an error naming the module (for layers reading their own state).
  public func requireParameter(_ name: String) throws -> Tensor {
    guard let t = parameter(name) else { throw TensorError("\(typeName): parameter '\(name)' is missing") }
    return t
  }
  public func requireBuffer(_ name: String) throws -> Tensor {
    guard let t = buffer(name) else { throw TensorError("\(typeName): buffer '\(name)' is missing") }
    return t
  }
  public func requireChild(_ name: String) throws -> Module {
    guard let m = child(name) else { throw TensorError("\(typeName): submodule '\(name)' is missing") }
    return m
  }

  // MARK: - The tree

  /// Parameters of this module and its descendants, depth first in definition order, with
  /// dotted names; a tensor registered twice is listed once (as PyTorch does).
  public func namedParameters() -> [(String, Tensor)] {
    var seen = Set<ObjectIdentifier>(), out: [(String, Tensor)] = []
    walk { prefix, m in
      for (n, t) in m.parameterSlots where seen.insert(ObjectIdentifier(t)).inserted { out.append((prefix + n, t)) }
    }
    return out
  }

  public func parameters() -> [Tensor] { namedParameters().map { $0.1 } }

  /// Buffers of this module and its descendants (persistent ones only when asked).
  public func namedBuffers(persistentOnly: Bool = false) -> [(String, Tensor)] {
    var seen = Set<ObjectIdentifier>(), out: [(String, Tensor)] = []
    walk { prefix, m in
      for b in m.bufferSlots where (!persistentOnly || b.persistent) && seen.insert(ObjectIdentifier(b.tensor)).inserted {
        out.append((prefix + b.name, b.tensor))
      }
    }
    return out
  }

  /// Every module below and including this one, with its dotted name ("" for this one).
  public func namedModules() -> [(String, Module)] {
    var out: [(String, Module)] = []
    walk { prefix, m in out.append((prefix.isEmpty ? "" : String(prefix.dropLast()), m)) }
    return out
  }

  func walk(_ prefix: String = "", _ visit: (String, Module) -> Void) {
    visit(prefix, self)
    for c in childSlots { c.module.walk(prefix + c.name + ".", visit) }
  }

  /// The state torch.nn.Module.state_dict holds, in its order: per module, parameters then
  /// persistent buffers, then each child's. The tensors are the live ones (not copies).
  public func stateDict() -> [(String, Tensor)] {
    var out: [(String, Tensor)] = []
    walk { prefix, m in
      for (n, t) in m.parameterSlots { out.append((prefix + n, t)) }
      for b in m.bufferSlots where b.persistent { out.append((prefix + b.name, b.tensor)) }
    }
    return out
  }

  /// Copies `entries` into this module's state, in place. With `strict`, a missing or
  /// unexpected name is an error; a shape mismatch always is. The error lists every name.
  public func loadStateDict(_ entries: [String: Tensor], strict: Bool = true) throws {
    let mine = stateDict()
    let names = Set(mine.map { $0.0 })
    var missing: [String] = [], unexpected: [String] = [], misshaped: [String] = []
    for (n, t) in mine {
      guard let src = entries[n] else { missing.append(n); continue }
      if src.shape != t.shape { misshaped.append("\(n) (expected \(formatShape(t.shape)), got \(formatShape(src.shape)))") }
    }
    for n in entries.keys where !names.contains(n) { unexpected.append(n) }
    var problems: [String] = []
    if !misshaped.isEmpty { problems.append("mis-shaped: " + misshaped.sorted().joined(separator: ", ")) }
    if strict && !missing.isEmpty { problems.append("missing: " + missing.joined(separator: ", ")) }
    if strict && !unexpected.isEmpty { problems.append("unexpected: " + unexpected.sorted().joined(separator: ", ")) }
    if !problems.isEmpty { throw TensorError("loadStateDict: \(typeName) state does not match (\(problems.joined(separator: "; ")))") }
    try GradMode.withDisabled {
      for (n, t) in mine { if let src = entries[n] { try t.copy_(src) } }
    }
  }

  /// Converts every parameter and buffer of this module and its descendants to `dtype`
  /// (torch.nn.Module.double() / .float()). Parameters become new leaves that require grad, so
  /// optimizers must be made after the conversion. Layers read their tensors by name, so they
  /// compute in the new dtype from then on.
  public func convert(to dtype: DType) throws {
    for (_, m) in namedModules() {
      for (name, t) in m.parameterSlots where t.dtype != dtype {
        let p = try t.detach().to(dtype).clone()
        p.requiresGrad = true
        m.setParameter(name, p)
      }
      for (name, t, persistent) in m.bufferSlots where t.dtype != dtype {
        m.setBuffer(name, try t.detach().to(dtype).clone(), persistent: persistent)
      }
    }
  }

  /// Sets training mode on this module and every descendant (`train()` / `eval()`).
  public func setTraining(_ on: Bool) {
    walk { _, m in m.training = on }
  }

  /// Clears the gradient of every parameter.
  public func zeroGrad() { for p in parameters() { p.grad = nil } }

  /// The number of parameter elements, counting shared tensors once.
  public var parameterCount: Int { parameters().reduce(0) { $0 + $1.numel } }

  // MARK: - Subclass hooks

  /// The computation. `inputs` are tensors; class indices arrive 0-based (see indexInputs).
  open func forward(_ inputs: [Tensor]) throws -> Tensor {
    throw TensorError("\(typeName): forward is not defined")
  }

  /// Positions of inputs that are class indices (the Lua bridge converts them from 1-based).
  open var indexInputs: [Int] { [] }

  /// The line `tostring` shows for this module, after its type name, e.g. "(256, 256, ...)".
  open var summary: String { "" }

  /// A module of the same class and configuration whose state will be overwritten (by copy).
  /// The generator it draws from is a throwaway one, so copying never moves the global stream.
  open func makeShell() throws -> Module {
    throw TensorError("\(typeName): this module cannot be copied")
  }

  /// A deep copy: same structure, cloned tensors (gradients not copied), same mode.
  public func copy() throws -> Module {
    let m = try makeShell()
    m.training = training
    m.parameterSlots = try parameterSlots.map { slot in
      let c = try slot.tensor.detach().clone()
      c.requiresGrad = slot.tensor.requiresGrad
      return (slot.name, c)
    }
    m.bufferSlots = try bufferSlots.map { ($0.name, try $0.tensor.detach().clone(), $0.persistent) }
    m.childSlots = try childSlots.map { ($0.name, try $0.module.copy()) }
    try m.copyConfiguration(from: self)
    return m
  }

  /// Copies non-tensor state that `makeShell` does not reproduce (spectral norm settings...).
  open func copyConfiguration(from other: Module) throws {}

  /// Checks the number of inputs a forward received.
  public func expectInputs(_ inputs: [Tensor], _ n: Int, _ what: String) throws {
    guard inputs.count == n else {
      throw TensorError("\(typeName): forward expects \(what), got \(inputs.count) input\(inputs.count == 1 ? "" : "s")")
    }
  }

  /// The tree as torch prints it, each module with its parameter count.
  public func treeDescription(indent: String = "") -> String {
    let count = formatCount(parameterCount)
    if childSlots.isEmpty { return "\(typeName)\(summary)  [\(count) params]" }
    var s = "\(typeName)\(summary) {  [\(count) params]\n"
    for c in childSlots { s += "\(indent)  (\(c.name)): " + c.module.treeDescription(indent: indent + "  ") + "\n" }
    return s + indent + "}"
  }
}

/// A parent link that does not keep the parent alive.
final class WeakModule {
  weak var module: Module?
  init(_ m: Module) { module = m }
}

/// 1,234,567
public func formatCount(_ n: Int) -> String {
  let s = String(n)
  var out = ""
  for (i, ch) in s.reversed().enumerated() {
    if i > 0 && i % 3 == 0 { out.append(",") }
    out.append(ch)
  }
  return String(out.reversed())
}

/// A module defined in a script: its forward lives in Lua; its state is registered here.
public final class ScriptModule: Module {
  public override func makeShell() throws -> Module { ScriptModule(typeName: typeName) }
}

/// Children applied in order (`nn.Sequential`); named "0", "1", ... as in PyTorch.
public final class Sequential: Module {
  public init(_ modules: [Module] = []) throws {
    super.init(typeName: "Sequential")
    for m in modules { try append(m) }
  }
  public func append(_ m: Module) throws { try setChild(String(childSlots.count), m) }
  public override func forward(_ inputs: [Tensor]) throws -> Tensor {
    var x = inputs
    for c in childSlots { x = [try c.module.forward(x)] }
    guard let out = x.first else { throw TensorError("Sequential: forward expects an input") }
    return out
  }
  public override func makeShell() throws -> Module { try Sequential() }
}

/// A list of modules, registered as children "0", "1", ... (`nn.ModuleList`).
public final class ModuleList: Module {
  public init(_ modules: [Module] = []) throws {
    super.init(typeName: "ModuleList")
    for m in modules { try append(m) }
  }
  public func append(_ m: Module) throws { try setChild(String(childSlots.count), m) }
  public override func makeShell() throws -> Module { try ModuleList() }
}
