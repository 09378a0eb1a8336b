/// Every failure in the Tensor library: bad shapes, bad arguments, allocation failure, a freed
/// graph. The message names the operation and says what was expected and what came; dimension
/// numbers in messages are 1-based, as users see them.
public struct TensorError: Error, CustomStringConvertible, Sendable {
  public let message: String
  public init(_ message: String) { self.message = message }
  public var description: String { message }
}

/// `{2, 3, 4}`: shapes print as Lua tables, the form users write them in.
public func formatShape(_ shape: [Int]) -> String { "{" + shape.map(String.init).joined(separator: ",") + "}" }
