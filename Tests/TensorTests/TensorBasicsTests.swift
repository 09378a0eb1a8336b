import Tensor
import XCTest

final class TensorBasicsTests: XCTestCase {
  func testBroadcastAddAndSum() throws {
    let a = try Tensor.from([1, 2, 3, 4, 5, 6], shape: [2, 3])
    let b = try Tensor.from([10, 20, 30], shape: [3])
    XCTAssertEqual(try (a + b).toArray(), [11, 22, 33, 14, 25, 36])
    XCTAssertEqual(try a.sum(dims: [0]).toArray(), [5, 7, 9])
    XCTAssertEqual(try a.sum(dims: [1], keepDim: true).shape, [2, 1])
    XCTAssertEqual(try a.sum().item(), 21)
  }

  func testConvMatchesDirectLoop() throws {
    let g = Generator(seed: 3)
    let x = try Tensor.randn([2, 3, 6, 5], dtype: .float64, generator: g)
    let w = try Tensor.randn([4, 3, 3, 3], dtype: .float64, generator: g)
    let y = try Tensor.conv2d(x, w, spec: ConvSpec(stride: (2, 1), padding: (1, 1)))
    XCTAssertEqual(y.shape, [2, 4, 3, 5])
    let xv = try x.toArray(), wv = try w.toArray(), yv = try y.toArray()
    for n in 0..<2 { for o in 0..<4 { for i in 0..<3 { for j in 0..<5 {
      var s = 0.0
      for c in 0..<3 { for ki in 0..<3 { for kj in 0..<3 {
        let ih = i * 2 - 1 + ki, iw = j - 1 + kj
        if ih >= 0 && ih < 6 && iw >= 0 && iw < 5 { s += xv[((n * 3 + c) * 6 + ih) * 5 + iw] * wv[((o * 3 + c) * 3 + ki) * 3 + kj] }
      }}}
      XCTAssertEqual(yv[((n * 4 + o) * 3 + i) * 5 + j], s, accuracy: 1e-12)
    }}}}
  }

  func testBackwardAccumulatesAndFreesGraph() throws {
    let x = try Tensor.from([1, 2, 3], shape: [3], dtype: .float64)
    x.requiresGrad = true
    let y = try x.mul(x).sum()
    try y.backward()
    XCTAssertEqual(try x.grad?.toArray(), [2, 4, 6])
    XCTAssertThrowsError(try y.backward())  // graph freed
    let z = try x.mul(x).sum()
    try z.backward()
    XCTAssertEqual(try x.grad?.toArray(), [4, 8, 12])  // accumulated
  }

  /// A backward observer (data parallelism's hook) hears of each leaf once, as soon as its
  /// gradient is final: w2 (used last in the forward) before w1, whose gradient is stored when
  /// announced; a leaf the backward does not reach is named up front.
  func testBackwardObserverAnnouncesFinalGradientsInReverseOrder() throws {
    final class Recorder: BackwardObserver {
      var events: [String] = []
      var names: [ObjectIdentifier: String] = [:]
      var gradsAtReady: [String: [Double]] = [:]
      func backwardStarts(reaching leaves: Set<ObjectIdentifier>) throws {
        events.append("starts: " + names.filter { leaves.contains($0.key) }.map(\.value).sorted().joined(separator: ","))
      }
      func leafReady(_ leaf: Tensor) throws {
        let name = names[ObjectIdentifier(leaf)] ?? "?"
        events.append(name)
        gradsAtReady[name] = try leaf.grad?.toArray()
      }
      func progress() throws {}
    }
    let x = try Tensor.from([1, 2], shape: [2], dtype: .float64)
    let w1 = try Tensor.from([0.5, -1], shape: [2], dtype: .float64), w2 = try Tensor.from([3], shape: [1], dtype: .float64)
    let unused = try Tensor.from([7], shape: [1], dtype: .float64)
    for t in [w1, w2, unused] { t.requiresGrad = true }
    let rec = Recorder()
    rec.names = [ObjectIdentifier(w1): "w1", ObjectIdentifier(w2): "w2", ObjectIdentifier(unused): "unused"]
    // y = Σ tanh(x·w1)² · w2, used twice: w1 is fed by two nodes and is final after the second
    let h = try x.mul(w1).tanh()
    let y = try h.mul(h).sum().mul(w2).sum()
    BackwardObservation.observer = rec
    defer { BackwardObservation.observer = nil }
    try y.backward()
    XCTAssertEqual(rec.events, ["starts: w1,w2", "w2", "w1"])
    XCTAssertEqual(rec.gradsAtReady["w1"], try w1.grad?.toArray())
    XCTAssertEqual(rec.gradsAtReady["w2"], try w2.grad?.toArray())
    XCTAssertNil(unused.grad)
    // tensor.grad (torch.autograd.grad) does not report
    rec.events = []
    _ = try Tensor.grad(outputs: [x.mul(w1).sum()], inputs: [w1])
    XCTAssertEqual(rec.events, [])
  }

  func testDoubleBackward() throws {
    // f = Σ x³; df/dx = 3x²; d/dx Σ(df/dx) = 6x
    let x = try Tensor.from([1, -2], shape: [2], dtype: .float64)
    x.requiresGrad = true
    let g = try Tensor.grad(outputs: [x.pow(3).sum()], inputs: [x], createGraph: true)[0]
    XCTAssertEqual(try g.toArray(), [3, 12])
    let gg = try Tensor.grad(outputs: [g.sum()], inputs: [x])[0]
    XCTAssertEqual(try gg.toArray(), [6, -12])
  }
}

final class DTypeTests: XCTestCase {
  func testGradientFlowsThroughCasts() throws {
    let x = try Tensor.from([1, 2], shape: [2])
    x.requiresGrad = true
    let y = try x.to(.float64).mul(Tensor.scalar(3, dtype: .float64)).sum()
    try y.backward()
    XCTAssertEqual(x.grad?.dtype, .float32)
    XCTAssertEqual(try x.grad?.toArray(), [3, 3])
  }
}
