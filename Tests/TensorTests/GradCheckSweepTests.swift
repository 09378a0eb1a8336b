import Tensor
import XCTest

/// The sweep over THE registry: every differentiable op, every case, first and second order,
/// in float64 with GradCheck's fixed tolerances (eps 1e-6, atol 1e-5, rtol 1e-3).
final class GradCheckSweepTests: XCTestCase {
  /// Inputs drawn uniformly from the case's domains, kept 0.05 away from its kinks.
  static func inputs(for c: GradCase, seed: UInt64) throws -> [Tensor] {
    let g = Generator(seed: seed)
    return try zip(c.shapes, c.domains).map { shape, dom in
      let n = try Tensor.checkedCount(shape)
      let values = (0..<n).map { _ -> Double in
        while true {
          let v = dom.lowerBound + (dom.upperBound - dom.lowerBound) * g.uniform()
          if c.avoid.allSatisfy({ abs(v - $0) > 0.05 }) { return v }
        }
      }
      return try Tensor.from(values, shape: shape, dtype: .float64)
    }
  }

  func testFirstOrderEveryRegisteredOp() throws {
    var checked: [String] = []
    for spec in Tensor.ops {
      for (i, c) in spec.cases.enumerated() {
        let report = try GradCheck.check(c.fn, inputs: Self.inputs(for: c, seed: UInt64(100 + i)))
        XCTAssertTrue(report.passed, "\(c.label): \(report)")
        checked.append(c.label)
      }
    }
    print("first-order gradcheck: \(checked.count) cases over \(Tensor.ops.filter(\.differentiable).count) ops")
  }

  func testSecondOrderEveryRegisteredOp() throws {
    var checked = 0
    for spec in Tensor.ops {
      for (i, c) in spec.cases.enumerated() {
        let report = try GradCheck.checkSecondOrder(c.fn, inputs: Self.inputs(for: c, seed: UInt64(200 + i)))
        XCTAssertTrue(report.passed, "\(c.label) (second order): \(report)")
        checked += 1
      }
    }
    print("second-order gradcheck: \(checked) cases")
  }

  /// The checker must be able to fail: a deliberately wrong pullback is caught.
  func testCheckerCatchesAWrongGradient() throws {
    // f(x) = x·x computed so that autograd sees only one factor: x·detach(x). Its true
    // derivative is 2x, autograd's is x.
    let wrong: ([Tensor]) throws -> Tensor = { try $0[0].mul($0[0].detach()) }
    let x = try Tensor.from([0.5, -1.5, 2.0], shape: [3], dtype: .float64)
    XCTAssertFalse(try GradCheck.check(wrong, inputs: [x]).passed)
  }
}
