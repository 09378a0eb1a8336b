/// Every failure in the Tensor library: bad shapes, bad arguments, allocation failure, a freed
/// graph. The message names the operation and says what was expected and what came; dimension
/// numbers in messages are 1-based, as users see them.
public struct TensorError: Error, CustomStringConvertible, Sendable {
  public let message: String
  public init(_ message: String) { self.message = message }
  public var description: String { message }
}

/// `{2, 3, 4}`: shapes print as Lua tables, the form users write them in.
public func formatShape(_ shape: [Int]) -> String {
  // a shape of thousands of dims (a fuzzer's, a mistake's) must not make a message of megabytes
  if shape.count > 16 {
    return "{" + shape.prefix(8).map(String.init).joined(separator: ",") + ",...," + shape.suffix(4).map(String.init).joined(separator: ",")
      + "} (\(shape.count) dims)"
  }
  return "{" + shape.map(String.init).joined(separator: ",") + "}"
}

/// Size arithmetic on numbers that came from a script or a file: an overflow is an error that
/// names what was being computed, never a silent wrap (release builds) or a trap (debug).
public enum Checked {
  public static func add(_ a: Int, _ b: Int, _ what: @autoclosure () -> String) throws -> Int {
    let (r, o) = a.addingReportingOverflow(b)
    if o { throw TensorError("\(what()): \(a) + \(b) is too large") }
    return r
  }
  public static func sub(_ a: Int, _ b: Int, _ what: @autoclosure () -> String) throws -> Int {
    let (r, o) = a.subtractingReportingOverflow(b)
    if o { throw TensorError("\(what()): \(a) - \(b) is out of range") }
    return r
  }
  public static func mul(_ a: Int, _ b: Int, _ what: @autoclosure () -> String) throws -> Int {
    let (r, o) = a.multipliedReportingOverflow(by: b)
    if o { throw TensorError("\(what()): \(a) × \(b) is too large") }
    return r
  }
  /// The product of `values`, or an error.
  public static func product(_ values: [Int], _ what: @autoclosure () -> String) throws -> Int {
    var p = 1
    for v in values { p = try mul(p, v, what()) }
    return p
  }
}
