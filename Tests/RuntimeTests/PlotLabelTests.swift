import Media
import XCTest

/// Point labels (the truncation sweep's thresholds) sit beside their points without crossing
/// the line, the plot's border or each other.
final class PlotLabelTests: XCTestCase {
  let plot: Plot.Box = (100, 50, 500, 400)
  // a line falling from the top-left to (490, 300), sampled every few pixels
  lazy var path: [(Int, Int)] = (0...130).map { (100 + 3 * $0, 50 + 250 * $0 / 130) }

  func inside(_ p: (Int, Int), _ b: Plot.Box) -> Bool { p.0 >= b.0 && p.0 <= b.2 && p.1 >= b.1 && p.1 <= b.3 }

  func testALabelAtTheRightBorderGoesWhereTheLineIsNot() {
    let text = "0.25", w = 4 * 12 - 2, h = 18
    let at = Plot.placeLabel(text, at: (490, 300), within: plot, avoiding: path, [])
    let box = (at.0, at.1, at.0 + w, at.1 + h)
    XCTAssertTrue(box.0 >= plot.0 && box.2 <= plot.2 && box.1 >= plot.1 && box.3 <= plot.3, "\(box) leaves the plot")
    XCTAssertFalse(path.contains { inside($0, box) }, "the label \(box) crosses the line")
    XCTAssertGreaterThan(at.1, 300, "below the point: above it, on the left, is where the line comes from")
  }

  func testLabelsAvoidEachOther() {
    let first = Plot.placeLabel("none", at: (300, 200), within: plot, avoiding: [], [])
    XCTAssertEqual(first.0, 307, "above-right when nothing is in the way")
    XCTAssertLessThan(first.1, 200)
    let taken: Plot.Box = (first.0, first.1, first.0 + 46, first.1 + 18)
    let second = Plot.placeLabel("2", at: (305, 203), within: plot, avoiding: [], [taken])
    let box: Plot.Box = (second.0, second.1, second.0 + 10, second.1 + 18)
    XCTAssertFalse(taken.0 < box.2 && box.0 < taken.2 && taken.1 < box.3 && box.1 < taken.3, "\(box) overlaps \(taken)")
  }

  /// An axis of whole numbers (a sweep's rows, iterations) has no fractional ticks, even when
  /// its range is a single value padded by half a unit either side.
  func testWholeNumberAxesHaveWholeTicks() {
    XCTAssertEqual(Plot.axisTicks(0.5, 1.5, whole: true), [1])
    XCTAssertEqual(Plot.axisTicks(0.9, 3.1, whole: true), [1, 2, 3])
    XCTAssertTrue(Plot.axisTicks(0.5, 1.5, whole: false).contains { $0 != $0.rounded() })
  }
}
