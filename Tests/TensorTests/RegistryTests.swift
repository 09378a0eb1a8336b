import Foundation
import Tensor
import XCTest

/// THE registry is complete: every op recorded on the tape anywhere in Sources/Tensor (each
/// `record("name", ...)` call) has a registry entry with gradcheck cases, so the first- and
/// second-order sweep covers every pullback, including adjoints used only inside pullbacks.
final class RegistryTests: XCTestCase {
  static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
  /// Recorded ops that cannot be gradchecked, each with the reason.
  static let exempt = ["to": "a float32 round trip cannot be finite-differenced (checked in TensorBasicsTests)"]

  func recordedOps() throws -> Set<String> {
    let dir = Self.root.appendingPathComponent("Sources/Tensor")
    guard let walker = FileManager.default.enumerator(at: dir, includingPropertiesForKeys: nil) else {
      throw TensorError("cannot list \(dir.path)")
    }
    let pattern = try NSRegularExpression(pattern: #"record\("([A-Za-z0-9_]+)""#)
    var names = Set<String>()
    for case let url as URL in walker where url.pathExtension == "swift" {
      let text = try String(contentsOf: url, encoding: .utf8)
      for m in pattern.matches(in: text, range: NSRange(text.startIndex..., in: text)) {
        names.insert(String(text[Range(m.range(at: 1), in: text)!]))
      }
    }
    return names
  }

  func testEveryRecordedOpIsRegisteredAndGradchecked() throws {
    let recorded = try recordedOps()
    XCTAssertGreaterThan(recorded.count, 40, "the scan found the primitives")
    let checked = Set(Tensor.ops.filter(\.differentiable).map(\.name))
    let missing = recorded.subtracting(checked).subtracting(Self.exempt.keys).sorted()
    XCTAssertEqual(missing, [], "recorded on the tape but not registered with gradcheck cases")
  }

  func testNamesAreUnique() {
    var seen = Set<String>()
    for spec in Tensor.ops { XCTAssertTrue(seen.insert(spec.name).inserted, "\(spec.name) is registered twice") }
  }
}
