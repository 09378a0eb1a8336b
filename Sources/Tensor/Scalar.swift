import Foundation

/// The element types a tensor can hold. float32 is the default; float64 exists so that
/// finite-difference gradient checks mean something.
public enum DType: String, CaseIterable, Sendable {
  case float32, float64

  public var byteSize: Int { self == .float32 ? 4 : 8 }
  /// The dtype two operands compute in (PyTorch's promotion: float64 wins).
  public static func promote(_ a: DType, _ b: DType) -> DType { a == .float64 || b == .float64 ? .float64 : .float32 }
}

/// The scalar operations kernels need, written once per element type so generic kernels
/// specialise to plain libm calls.
@usableFromInline
protocol TensorScalar: BinaryFloatingPoint, SIMDScalar where Self.RawSignificand: FixedWidthInteger {
  static var dtype: DType { get }
  static func exp(_ x: Self) -> Self
  static func log(_ x: Self) -> Self
  static func log1p(_ x: Self) -> Self
  static func sin(_ x: Self) -> Self
  static func cos(_ x: Self) -> Self
  static func tanh(_ x: Self) -> Self
  static func pow(_ x: Self, _ y: Self) -> Self
  static func sqrt(_ x: Self) -> Self
}

extension Float: TensorScalar {
  @usableFromInline static var dtype: DType { .float32 }
  @inline(__always) @usableFromInline static func exp(_ x: Float) -> Float { Foundation.expf(x) }
  @inline(__always) @usableFromInline static func log(_ x: Float) -> Float { Foundation.logf(x) }
  @inline(__always) @usableFromInline static func log1p(_ x: Float) -> Float { Foundation.log1pf(x) }
  @inline(__always) @usableFromInline static func sin(_ x: Float) -> Float { Foundation.sinf(x) }
  @inline(__always) @usableFromInline static func cos(_ x: Float) -> Float { Foundation.cosf(x) }
  @inline(__always) @usableFromInline static func tanh(_ x: Float) -> Float { Foundation.tanhf(x) }
  @inline(__always) @usableFromInline static func pow(_ x: Float, _ y: Float) -> Float { Foundation.powf(x, y) }
  @inline(__always) @usableFromInline static func sqrt(_ x: Float) -> Float { x.squareRoot() }
}

extension Double: TensorScalar {
  @usableFromInline static var dtype: DType { .float64 }
  @inline(__always) @usableFromInline static func exp(_ x: Double) -> Double { Foundation.exp(x) }
  @inline(__always) @usableFromInline static func log(_ x: Double) -> Double { Foundation.log(x) }
  @inline(__always) @usableFromInline static func log1p(_ x: Double) -> Double { Foundation.log1p(x) }
  @inline(__always) @usableFromInline static func sin(_ x: Double) -> Double { Foundation.sin(x) }
  @inline(__always) @usableFromInline static func cos(_ x: Double) -> Double { Foundation.cos(x) }
  @inline(__always) @usableFromInline static func tanh(_ x: Double) -> Double { Foundation.tanh(x) }
  @inline(__always) @usableFromInline static func pow(_ x: Double, _ y: Double) -> Double { Foundation.pow(x, y) }
  @inline(__always) @usableFromInline static func sqrt(_ x: Double) -> Double { x.squareRoot() }
}
