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

  /// Runs `script` under two settings of one knob and asserts both succeed with the same output.
  func assertSameBits(_ script: String, _ knob: String, _ a: String, _ b: String, file: StaticString = #filePath,
                      line: UInt = #line) throws {
    let first = try Luagan.run(["-e", script], environment: [knob: a])
    let second = try Luagan.run(["-e", script], environment: [knob: b])
    XCTAssertEqual(first.status, 0, first.stderr, file: file, line: line)
    XCTAssertEqual(second.status, 0, second.stderr, file: file, line: line)
    XCTAssertFalse(first.stdout.isEmpty, file: file, line: line)
    XCTAssertEqual(first.stdout, second.stdout, "\(knob)=\(a) against \(b)", file: file, line: line)
  }

  /// The small-layer sub-blocks (256 tiles by default at 64 channels) cut the forward and the
  /// input gradient anywhere without changing a bit: each tile's sums run over channels alone.
  func testSubBlockSizeKeepsTheBits() throws {
    try assertSameBits(conv.replacingOccurrences(of: "256", with: "64"), "LG_WINO_SUBTILES", "", "4")
  }

  func testStreamedWeightTransformsKeepTheBits() throws {
    try assertSameBits(conv, "LG_WINO_STREAM_MB", "0", "100000")
  }
}
