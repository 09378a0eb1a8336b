import Tensor

/// A lookup table of `count` vectors of `dim` (N(0, 1) init); forward takes class indices
/// (0-based here; 1-based in Lua). Reference: torch.nn.Embedding.
public final class Embedding: WeightedModule {
  public let count: Int, dim: Int

  public init(_ count: Int, _ dim: Int, generator: Generator = .global) throws {
    guard count > 0, dim > 0 else { throw TensorError("Embedding: sizes must be positive, got \(count) and \(dim)") }
    self.count = count; self.dim = dim
    super.init(typeName: "Embedding")
    setParameter("weight", try newParameter([count, dim]))
    try Init.normal(try requireParameter("weight"), generator: generator)
  }

  public override var indexInputs: [Int] { [0] }

  public override func forward(_ inputs: [Tensor]) throws -> Tensor {
    try expectInputs(inputs, 1, "1 input (class indices)")
    let indices = try Embedding.indices(inputs[0], limit: count, typeName)
    return try Tensor.embedding(effectiveWeight(), indices: indices, indexShape: inputs[0].shape)
  }

  /// Integer values of a tensor of 0-based indices, checked against `limit`.
  static func indices(_ t: Tensor, limit: Int, _ op: String) throws -> [Int] {
    try t.toArray().map { v in
      guard v == v.rounded(), v >= 0, v < Double(limit) else {
        throw TensorError("\(op): index \(v + 1) is not a class in 1..\(limit)")
      }
      return Int(v)
    }
  }

  public override var summary: String { "(\(count), \(dim)\(reparametrizationSummary))" }
  public override func makeShell() throws -> Module { try Embedding(count, dim, generator: Generator(seed: 0)) }
}
