import Foundation
import XCTest

/// End to end: a tunable moves speed, never bits. Here the F(4x4) weight transforms written with
/// non-temporal stores (U of a 256-channel 3x3 kernel: 9 MiB, past LG_WINO_STREAM_MB's 4) give
/// the forward, input and weight gradients of plain stores.
final class TunablesTests: XCTestCase {
  let conv = """
    tensor.manualSeed(5)
    local x = tensor.randn({4, 256, 16, 16}, {requiresGrad = true})
    local w = tensor.randn({256, 256, 3, 3}, {requiresGrad = true})
    local y = x:conv2d(w, nil, {padding = 1})
    y:backward(tensor.randn(y:shape()))
    local function bits(t) local d = t:to("float64"); return ("%a %a"):format(d:sum():item(), (d * d):sum():item()) end
    print(bits(y), bits(x.grad), bits(w.grad))
    """

  /// The small-layer sub-blocks (256 tiles by default at 64 channels) cut the forward and the
  /// input gradient anywhere without changing a bit: each tile's sums run over channels alone.
  func testSubBlockSizeKeepsTheBits() throws {
    let small = conv.replacingOccurrences(of: "256", with: "64")
    let byDefault = try Luagan.run(["-e", small], environment: ["LG_WINO_SUBTILES": ""])
    let cut = try Luagan.run(["-e", small], environment: ["LG_WINO_SUBTILES": "4"])
    XCTAssertEqual(byDefault.status, 0, byDefault.stderr)
    XCTAssertEqual(cut.status, 0, cut.stderr)
    XCTAssertFalse(byDefault.stdout.isEmpty)
    XCTAssertEqual(byDefault.stdout, cut.stdout)
  }

  func testStreamedWeightTransformsKeepTheBits() throws {
    let streamed = try Luagan.run(["-e", conv], environment: ["LG_WINO_STREAM_MB": "0"])
    let plain = try Luagan.run(["-e", conv], environment: ["LG_WINO_STREAM_MB": "100000"])
    XCTAssertEqual(streamed.status, 0, streamed.stderr)
    XCTAssertEqual(plain.status, 0, plain.stderr)
    XCTAssertFalse(plain.stdout.isEmpty)
    XCTAssertEqual(streamed.stdout, plain.stdout)
  }
}
