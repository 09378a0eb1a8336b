import Layers
import Tensor
import XCTest

/// The layers used from Swift alone: Layers knows nothing of Lua.
final class LayersTests: XCTestCase {
  func testModuleTreeNamesAndStateDict() throws {
    let g = Generator(seed: 1)
    let seq = try Sequential([try Conv2d(1, 2, kernel: (3, 3), padding: (1, 1), generator: g), try BatchNorm2d(2),
                          Elementwise.relu(), try Linear(4, 3, generator: g)])
    try (seq.childSlots[3].module as! WeightedModule).applySpectralNorm(generator: g)
    XCTAssertEqual(seq.stateDict().map { $0.0 }, ["0.weight", "0.bias", "1.weight", "1.bias", "1.running_mean", "1.running_var",
                                                  "1.num_batches_tracked", "3.bias", "3.weight_orig", "3.weight_u", "3.weight_v"])
    XCTAssertEqual(seq.parameterCount, 2 * 9 + 2 + 2 + 2 + 3 * 4 + 3)
    let copy = try seq.copy()
    XCTAssertEqual(try copy.stateDict().map { try $0.1.toArray() }, try seq.stateDict().map { try $0.1.toArray() })
    XCTAssertFalse(copy.stateDict()[0].1 === seq.stateDict()[0].1)
  }

  func testBatchNormTrainingUpdatesRunningStatistics() throws {
    let bn = try BatchNorm2d(1, momentum: 0.5)
    let x = try Tensor.from([1, 2, 3, 4], shape: [4, 1, 1, 1])
    let y = try bn.forward([x])
    XCTAssertEqual(try y.mean().item(), 0, accuracy: 1e-6)
    XCTAssertEqual(try bn.requireBuffer("running_mean").item(), 1.25, accuracy: 1e-6)           // 0.5·0 + 0.5·2.5
    XCTAssertEqual(try bn.requireBuffer("running_var").item(), 0.5 + 0.5 * (5.0 / 3), accuracy: 1e-6)  // unbiased 5/3
  }

  func testAdamFirstStepWithBeta1ZeroMovesByLearningRate() throws {
    let p = try Tensor.from([1, -1], shape: [2]); p.requiresGrad = true
    let opt = try Adam(groups: [.init(params: [p], options: ["lr": 0.1, "beta1": 0])])
    p.grad = try Tensor.from([3, -0.5], shape: [2])
    try opt.step()
    XCTAssertEqual(try p.toArray()[0], 0.9, accuracy: 1e-6)
    XCTAssertEqual(try p.toArray()[1], -0.9, accuracy: 1e-6)
  }
}
