import Foundation

/// Finite-difference gradient checks in float64, the oracle that needs no PyTorch
/// (torch/nn ships its Jacobian.lua inside the library for the same reason).
///
/// `check` builds the full Jacobian twice, by central differences (one column per input
/// element) and by backprop (one row per output element, one-hot gradOutput), and compares
/// every entry: |analytic - numeric| <= atol + rtol·|numeric|. `checkSecondOrder` runs the same
/// check on the backward function (x, v) ↦ ∂⟨f(x), v⟩/∂x built with createGraph, as PyTorch's
/// gradgradcheck does, so every pullback is itself differentiated.
public enum GradCheck {
  /// Fixed tolerances (PyTorch's gradcheck defaults).
  public static let eps = 1e-6, atol = 1e-5, rtol = 1e-3

  public struct Report: CustomStringConvertible {
    public let maxError: Double
    public let worst: String
    public let passed: Bool
    public var description: String { passed ? "ok (max error \(String(format: "%.2e", maxError)))" : "FAILED: \(worst)" }
  }

  /// Compares the analytic and numeric Jacobians of `f` at `inputs` (float64 tensors).
  public static func check(_ f: ([Tensor]) throws -> Tensor, inputs raw: [Tensor]) throws -> Report {
    let inputs = try raw.map { x -> Tensor in
      let c = try x.detach().to(.float64).clone()
      c.requiresGrad = true
      return c
    }
    let y0 = try f(inputs.map { $0.detach() })
    let m = y0.numel
    // the analytic and numeric Jacobians: m rows of every input's size, each
    let columns = try inputs.reduce(1) { try Checked.add($0, $1.numel, "gradcheck: Jacobian size") }
    try Storage.checkAllocatable(count: try Checked.mul(m, columns, "gradcheck: Jacobian size"), elementBytes: 16,
                                 what: "gradcheck's Jacobians (\(m) outputs x \(columns) inputs)")
    // Analytic rows: ∂y_j/∂x for each output element j.
    var analytic: [[[Double]]] = inputs.map { x in [[Double]](repeating: [Double](repeating: 0, count: x.numel), count: m) }
    let y = try f(inputs)
    if y.requiresGrad {
      for j in 0..<m {
        var e = [Double](repeating: 0, count: m)
        e[j] = 1
        let go = try Tensor.from(e, shape: y.shape, dtype: .float64)
        let gs = try Tensor.grad(outputs: [y], inputs: inputs, gradOutputs: [go], retainGraph: true, allowUnused: true)
        for (k, g) in gs.enumerated() { analytic[k][j] = try g.toArray() }
      }
    }
    // Numeric columns, by central differences.
    var maxErr = 0.0, worst = "", passed = true
    for (k, x) in inputs.enumerated() {
      let base = try x.toArray()
      for i in 0..<x.numel {
        var plus = base, minus = base
        plus[i] += eps
        minus[i] -= eps
        let fp = try f(replacing(inputs, k, try Tensor.from(plus, shape: x.shape, dtype: .float64))).detach().toArray()
        let fm = try f(replacing(inputs, k, try Tensor.from(minus, shape: x.shape, dtype: .float64))).detach().toArray()
        for j in 0..<m {
          let numeric = (fp[j] - fm[j]) / (2 * eps), a = analytic[k][j][i]
          let err = Swift.abs(a - numeric)
          if !(err <= atol + rtol * Swift.abs(numeric)) {
            if passed { worst = "input \(k + 1) element \(i + 1), output element \(j + 1): analytic \(a) vs numeric \(numeric)" }
            passed = false
          }
          if err > maxErr || err.isNaN { maxErr = err.isNaN ? .infinity : err }
        }
      }
    }
    return Report(maxError: maxErr, worst: worst, passed: passed)
  }

  /// Checks the gradient of the gradient: the function (x..., v) ↦ cat(∂⟨f(x), v⟩/∂x_k) must
  /// itself pass `check`. v is a fixed random tensor of f's output shape.
  public static func checkSecondOrder(_ f: @escaping ([Tensor]) throws -> Tensor, inputs: [Tensor], seed: UInt64 = 7) throws -> Report {
    // Not under noGrad: f may itself differentiate (a gradient penalty).
    let shapeOut = try f(inputs.map { try $0.detach().to(.float64) }).shape
    let v = try Tensor.randn(shapeOut, dtype: .float64, generator: Generator(seed: seed))
    let n = inputs.count
    let backwardFn: ([Tensor]) throws -> Tensor = { args in
      // From the numeric path the inputs are plain tensors: make them leaves so the inner
      // gradient exists; from the analytic path they already carry the outer graph.
      let xs = args.prefix(n).map { x -> Tensor in
        if x.requiresGrad { return x }
        let leaf = x.detach()
        leaf.requiresGrad = true
        return leaf
      }
      let gv = args[n]
      let y = try f(xs)
      guard y.requiresGrad else { return try Tensor.zeros([xs.reduce(0) { $0 + $1.numel }], dtype: .float64) }
      let gs = try Tensor.grad(outputs: [y], inputs: xs, gradOutputs: [gv], createGraph: true, allowUnused: true)
      return try Tensor.cat(gs.map { try $0.reshape([-1]) }, dim: 0)
    }
    return try check(backwardFn, inputs: inputs + [v])
  }

  static func replacing(_ xs: [Tensor], _ k: Int, _ t: Tensor) -> [Tensor] {
    var r = xs
    r[k] = t
    return r
  }
}
