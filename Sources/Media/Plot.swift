import Foundation
import Tensor

/// Line charts drawn by luagan itself (no plotting dependency) and written as PNG: axes with
/// "nice" tick labels, an optional log y axis, grid lines, a legend, a title and axis labels
/// in a 5×7 bitmap font drawn at twice its size. For training losses, the top singular values
/// of every layer over training, and metric curves (e.g. IS against FID across truncations).
public enum Plot {
  public struct Series {
    public var name: String
    public var x: [Double]
    public var y: [Double]
    /// Optional text drawn next to each point (e.g. the truncation of each point of a curve).
    public var labels: [String]
    public init(name: String, x: [Double], y: [Double], labels: [String] = []) {
      self.name = name; self.x = x; self.y = y; self.labels = labels
    }
  }

  public struct Options {
    public var title = "", xlabel = "", ylabel = ""
    public var logy = false
    public var width = 960, height = 600
    public init() {}
  }

  /// The dash of series k: solid for the first ten, then dashed, then dotted, so a plot of
  /// every layer's singular values keeps its lines apart when the colours repeat.
  static func dash(_ k: Int) -> Int { [0, 7, 3][(k / palette.count) % 3] }

  /// The colours of successive series (matplotlib's tab10).
  static let palette: [(UInt8, UInt8, UInt8)] = [
    (31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
    (140, 86, 75), (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207),
  ]

  /// An RGB raster with a few drawing primitives.
  struct Canvas {
    let width: Int, height: Int
    var pixels: [UInt8]
    init(width: Int, height: Int) {
      self.width = width; self.height = height
      pixels = [UInt8](repeating: 255, count: width * height * 3)
    }
    mutating func set(_ x: Int, _ y: Int, _ c: (UInt8, UInt8, UInt8), clip: (Int, Int, Int, Int)? = nil) {
      if let (x0, y0, x1, y1) = clip, x < x0 || x > x1 || y < y0 || y > y1 { return }
      guard x >= 0, y >= 0, x < width, y < height else { return }
      let i = (y * width + x) * 3
      pixels[i] = c.0; pixels[i + 1] = c.1; pixels[i + 2] = c.2
    }
    mutating func rect(_ x0: Int, _ y0: Int, _ x1: Int, _ y1: Int, _ c: (UInt8, UInt8, UInt8)) {
      for y in Swift.min(y0, y1)...Swift.max(y0, y1) { for x in Swift.min(x0, x1)...Swift.max(x0, x1) { set(x, y, c) } }
    }
    /// A line `thickness` pixels wide (Bresenham, stamping squares), clipped.
    /// A line; with `dash` > 0 it is drawn `dash` pixels on, `dash` pixels off.
    mutating func line(_ xa: Int, _ ya: Int, _ xb: Int, _ yb: Int, _ c: (UInt8, UInt8, UInt8), thickness: Int = 1,
                       clip: (Int, Int, Int, Int)? = nil, dash: Int = 0) {
      var x = xa, y = ya
      let dx = Swift.abs(xb - xa), dy = -Swift.abs(yb - ya), sx = xa < xb ? 1 : -1, sy = ya < yb ? 1 : -1
      var err = dx + dy
      let lo = -(thickness - 1) / 2, hi = thickness / 2
      var steps = 0
      while true {
        if dash <= 0 || (steps / dash) % 2 == 0 {
          for oy in lo...hi { for ox in lo...hi { set(x + ox, y + oy, c, clip: clip) } }
        }
        if x == xb && y == yb { break }
        steps += 1
        if steps > 20_000 { break }
        let e2 = 2 * err
        if e2 >= dy { err += dy; x += sx }
        if e2 <= dx { err += dx; y += sy }
      }
    }
    /// Text at scale s with its top-left corner at (x, y); vertical text reads bottom to top.
    mutating func text(_ s: String, _ x: Int, _ y: Int, scale: Int = 2, color: (UInt8, UInt8, UInt8) = (0, 0, 0), vertical: Bool = false) {
      var cx = 0
      for ch in s {
        let g = Font.glyph(ch)
        for row in 0..<Font.height {
          for col in 0..<Font.width where g[row] & (0x10 >> UInt8(col)) != 0 {
            for dy in 0..<scale {
              for dx in 0..<scale {
                let gx = cx + col * scale + dx, gy = row * scale + dy
                if vertical { set(x + gy, y - gx, color) } else { set(x + gx, y + gy, color) }
              }
            }
          }
        }
        cx += (Font.width + 1) * scale
      }
    }
    static func textWidth(_ s: String, scale: Int = 2) -> Int { Swift.max(0, s.count * (Font.width + 1) * scale - scale) }
  }

  /// About `count` round tick values covering [lo, hi] (steps of 1, 2 or 5 × 10^k).
  static func niceTicks(_ lo: Double, _ hi: Double, count: Int = 6) -> [Double] {
    guard hi > lo else { return [lo] }
    let raw = (hi - lo) / Double(count)
    let mag = Foundation.pow(10, Foundation.floor(Foundation.log10(raw)))
    let step = [1.0, 2, 2.5, 5, 10].map { $0 * mag }.first { $0 >= raw } ?? 10 * mag
    var ticks: [Double] = []
    var t = Foundation.ceil(lo / step) * step
    while t <= hi + step * 1e-9 { ticks.append(Swift.abs(t) < step * 1e-9 ? 0 : t); t += step }
    return ticks
  }

  /// A compact label: 0.001, 1.5e-05, 250, 1.2e+06.
  static func label(_ v: Double) -> String {
    if v == 0 { return "0" }
    let a = Swift.abs(v)
    if a >= 1e5 || a < 1e-3 {
      var s = String(format: "%.2e", v)
      while s.contains(".") && (s.contains("0e") || s.contains(".e")) { s = s.replacingOccurrences(of: "0e", with: "e").replacingOccurrences(of: ".e", with: "e") }
      return s
    }
    var s = String(format: "%.4f", v)
    while s.hasSuffix("0") { s.removeLast() }
    if s.hasSuffix(".") { s.removeLast() }
    return s
  }

  /// A rectangle in pixels: (x0, y0, x1, y1).
  public typealias Box = (Int, Int, Int, Int)

  /// Where a point's label goes (its top-left corner): above or below the point, right or left
  /// of it, whichever stays inside the plot and covers the fewest line pixels and none of the
  /// labels already placed (and the legend); ties go to above-right.
  public static func placeLabel(_ text: String, at p: (Int, Int), within plot: Box, avoiding path: [(Int, Int)],
                                _ taken: [Box]) -> (Int, Int) {
    let w = Canvas.textWidth(text), h = 2 * Font.height
    let candidates = [(p.0 + 7, p.1 - h - 6), (p.0 + 7, p.1 + 6), (p.0 - 7 - w, p.1 - h - 6), (p.0 - 7 - w, p.1 + 6)]
    func cost(_ c: (Int, Int)) -> Int {
      let box = (c.0 - 2, c.1 - 2, c.0 + w + 2, c.1 + h + 2)
      var cost = box.0 < plot.0 || box.2 > plot.2 || box.1 < plot.1 || box.3 > plot.3 ? 1_000_000 : 0
      for t in taken where t.0 < box.2 && box.0 < t.2 && t.1 < box.3 && box.1 < t.3 { cost += 10_000 }
      for q in path where q.0 >= box.0 && q.0 <= box.2 && q.1 >= box.1 && q.1 <= box.3 { cost += 1 }
      return cost
    }
    return candidates.min { cost($0) < cost($1) }!
  }

  /// The ticks of an axis from `lo` to `hi`; when its values are all whole numbers (iterations,
  /// rows, seeds), whole-number ticks only.
  public static func axisTicks(_ lo: Double, _ hi: Double, whole: Bool) -> [Double] {
    niceTicks(lo, hi).filter { $0 >= lo && $0 <= hi && (!whole || $0 == $0.rounded()) }
  }

  /// The corner of `plot` where a `width` x `height` box covers the fewest of `points`.
  static func emptiestCorner(width w: Int, height h: Int, plot: Box, points: [(Int, Int)]) -> Box {
    let (left, top, right, bottom) = plot
    let corners = [(right - w - 10, top + 10), (left + 10, top + 10), (right - w - 10, bottom - h - 10), (left + 10, bottom - h - 10)]
    func covered(_ c: (Int, Int)) -> Int {
      points.filter { $0.0 >= c.0 - 8 && $0.0 <= c.0 + w + 8 && $0.1 >= c.1 - 8 && $0.1 <= c.1 + h + 8 }.count
    }
    let (x0, y0) = corners.min { covered($0) < covered($1) }!
    return (x0, y0, x0 + w, y0 + h)
  }

  /// Draws the legend's entries (series index, name): framed in `inside` when given, otherwise
  /// in columns to the right of the plot's top-right corner.
  static func drawLegend(_ c: inout Canvas, _ entries: [(Int, String)], inside: Box?, rightOf corner: (right: Int, top: Int), rowsPerColumn: Int,
                         rowHeight: Int, entryWidth: Int) {
    func entry(_ k: Int, _ name: String, _ x: Int, _ y: Int) {
      c.line(x + 8, y + 7, x + 34, y + 7, palette[k % palette.count], thickness: 3, dash: dash(k))
      c.text(name, x + 42, y)
    }
    if let (x0, y0, x1, y1) = inside {
      let frame: (UInt8, UInt8, UInt8) = (180, 180, 180)
      c.rect(x0, y0, x1, y1, (255, 255, 255))
      c.line(x0, y0, x1, y0, frame); c.line(x0, y1, x1, y1, frame); c.line(x0, y0, x0, y1, frame); c.line(x1, y0, x1, y1, frame)
      for (row, (k, name)) in entries.enumerated() { entry(k, name, x0, y0 + 10 + row * rowHeight) }
      return
    }
    for (i, (k, name)) in entries.enumerated() {
      let x = corner.right + 20 + (i / rowsPerColumn) * (entryWidth + 10), y = corner.top + 5 + (i % rowsPerColumn) * rowHeight
      if x + entryWidth <= c.width { entry(k, name, x, y) }
    }
  }

  /// Renders the chart to RGB pixels.
  static func render(_ series: [Series], _ o: Options) throws -> Canvas {
    guard o.width >= 200, o.height >= 150, o.width <= 8000, o.height <= 8000 else {
      throw TensorError("plot.lines: size \(o.width)x\(o.height) must be between 200x150 and 8000x8000")
    }
    let left = 110 + (o.ylabel.isEmpty ? 0 : 24), right = o.width - 30
    let top = o.title.isEmpty ? 30 : 64, bottom = o.height - (o.xlabel.isEmpty ? 56 : 84)
    // The legend: inside the plot when it takes at most half its height, otherwise in columns
    // to the right of it (the canvas grows), so a plot of every layer stays readable.
    let named = series.enumerated().filter { !$0.element.name.isEmpty }
    let rowHeight = 24, entryWidth = (named.map { Canvas.textWidth($0.element.name) }.max() ?? 0) + 50
    let legendInside = named.count * rowHeight + 10 <= (bottom - top) / 2
    let rowsPerColumn = legendInside ? Swift.max(1, named.count) : Swift.max(1, (bottom - top - 10) / rowHeight)
    let legendColumns = named.isEmpty ? 0 : (named.count + rowsPerColumn - 1) / rowsPerColumn
    let width = legendInside ? o.width : Swift.min(8000, o.width + legendColumns * (entryWidth + 10))
    var c = Canvas(width: width, height: o.height)
    let clip = (left + 1, top + 1, right - 1, bottom - 1)

    func ty(_ v: Double) -> Double { o.logy ? Foundation.log10(v) : v }
    var xs: [Double] = [], ys: [Double] = []
    for s in series {
      for (x, y) in zip(s.x, s.y) where x.isFinite && y.isFinite && (!o.logy || y > 0) { xs.append(x); ys.append(ty(y)) }
    }
    var (xmin, xmax) = (xs.min() ?? 0, xs.max() ?? 1), (ymin, ymax) = (ys.min() ?? 0, ys.max() ?? 1)
    if xmax - xmin < 1e-12 { xmin -= 0.5; xmax += 0.5 }
    if ymax - ymin < 1e-12 { ymin -= 0.5; ymax += 0.5 }
    let ypad = (ymax - ymin) * 0.05, xpad = (xmax - xmin) * (series.contains { $0.x.count <= 40 } ? 0.05 : 0)
    // Point labels go above or below their points: leave them room inside the borders.
    let labelled = series.contains { !$0.labels.isEmpty }
    ymin -= labelled ? 2.5 * ypad : ypad; ymax += labelled ? 2.5 * ypad : ypad; xmin -= xpad; xmax += xpad
    func px(_ x: Double) -> Int { left + Int(((x - xmin) / (xmax - xmin) * Double(right - left)).rounded()) }
    func py(_ y: Double) -> Int { bottom - Int(((y - ymin) / (ymax - ymin) * Double(bottom - top)).rounded()) }

    // Grid and tick labels.
    let grid: (UInt8, UInt8, UInt8) = (228, 228, 228), ink: (UInt8, UInt8, UInt8) = (40, 40, 40)
    for t in axisTicks(xmin, xmax, whole: !xs.isEmpty && xs.allSatisfy { $0 == $0.rounded() }) {
      let x = px(t)
      c.line(x, top, x, bottom, grid)
      c.line(x, bottom, x, bottom + 5, ink)
      let l = label(t)
      c.text(l, x - Canvas.textWidth(l) / 2, bottom + 10)
    }
    var yticks: [(Double, String)] = []
    if o.logy {
      var k = Int(Foundation.floor(ymin)), decades: [Double] = []
      while Double(k) <= ymax { decades.append(Double(k)); k += 1 }
      for d in decades {
        for m in (decades.count <= 2 ? [1.0, 2, 5] : [1.0]) {
          let v = Foundation.log10(m) + d
          if v >= ymin && v <= ymax { yticks.append((v, label(m * Foundation.pow(10, d)))) }
        }
      }
    } else {
      yticks = niceTicks(ymin, ymax).filter { $0 >= ymin && $0 <= ymax }.map { ($0, label($0)) }
    }
    for (v, l) in yticks {
      let y = py(v)
      c.line(left, y, right, y, grid)
      c.line(left - 5, y, left, y, ink)
      c.text(l, left - 10 - Canvas.textWidth(l), y - 7)
    }
    // Frame, title, axis labels.
    c.line(left, top, right, top, ink); c.line(left, bottom, right, bottom, ink)
    c.line(left, top, left, bottom, ink); c.line(right, top, right, bottom, ink)
    if !o.title.isEmpty {   // large, unless that would not fit the width
      let scale = Canvas.textWidth(o.title, scale: 3) <= o.width - 20 ? 3 : 2
      c.text(o.title, Swift.max(4, (o.width - Canvas.textWidth(o.title, scale: scale)) / 2), scale == 3 ? 18 : 24, scale: scale)
    }
    if !o.xlabel.isEmpty { c.text(o.xlabel, (left + right - Canvas.textWidth(o.xlabel)) / 2, o.height - 30) }
    if !o.ylabel.isEmpty { c.text(o.ylabel, 12, (top + bottom + Canvas.textWidth(o.ylabel)) / 2, vertical: true) }

    // The legend's corner inside the plot: the one that covers the fewest points.
    let legendW = entryWidth, legendH = named.count * rowHeight + 10
    var legendBox: Box? = nil
    if !named.isEmpty && legendInside {
      let plotted = series.flatMap { s in zip(s.x, s.y).filter { $0.0.isFinite && $0.1.isFinite && (!o.logy || $0.1 > 0) }.map { (px($0.0), py(ty($0.1))) } }
      legendBox = emptiestCorner(width: legendW, height: legendH, plot: (left, top, right, bottom), points: plotted)
    }
    // The series: lines and markers when few points; then the point labels, each placed beside
    // its point where it crosses the fewest lines, other labels and the legend.
    var path: [(Int, Int)] = [], labels: [(String, (Int, Int), (UInt8, UInt8, UInt8))] = []
    for (k, s) in series.enumerated() {
      let color = palette[k % palette.count]
      var prev: (Int, Int)? = nil
      for (i, (x, y)) in zip(s.x, s.y).enumerated() {
        guard x.isFinite, y.isFinite, !o.logy || y > 0 else { prev = nil; continue }
        let p = (px(x), py(ty(y)))
        if let q = prev {
          c.line(q.0, q.1, p.0, p.1, color, thickness: 2, clip: clip, dash: dash(k))
          let n = Swift.max(1, Swift.max(abs(p.0 - q.0), abs(p.1 - q.1)) / 2)
          for j in 0...n { path.append((q.0 + (p.0 - q.0) * j / n, q.1 + (p.1 - q.1) * j / n)) }
        }
        if s.x.count <= 40 { for dy in -3...3 { for dx in -3...3 { c.set(p.0 + dx, p.1 + dy, color, clip: clip) } } }
        if i < s.labels.count { labels.append((s.labels[i], p, color)) }
        prev = p
      }
    }
    var taken: [Box] = legendBox.map { [$0] } ?? []
    for (text, p, color) in labels {
      let at = placeLabel(text, at: p, within: (left, top, right, bottom), avoiding: path, taken)
      taken.append((at.0, at.1, at.0 + Canvas.textWidth(text), at.1 + 2 * Font.height))
      c.text(text, at.0, at.1, color: color)
    }
    drawLegend(&c, named.map { ($0.offset, $0.element.name) }, inside: legendBox, rightOf: (right, top), rowsPerColumn: rowsPerColumn,
               rowHeight: rowHeight, entryWidth: entryWidth)
    return c
  }

  /// Draws `series` and writes the PNG to `path` (through a temporary file).
  public static func lines(path: String, series: [Series], options: Options) throws {
    guard !series.isEmpty else { throw TensorError("plot.lines: no series to draw") }
    for s in series where s.x.count != s.y.count {
      throw TensorError("plot.lines: series '\(s.name)' has \(s.x.count) x values and \(s.y.count) y values")
    }
    let canvas = try render(series, options)
    let png = try Images.encodePNG(pixels: canvas.pixels, width: canvas.width, height: canvas.height, channels: 3, what: "plot.lines")
    try Images.writeFile(png, to: path, what: "plot.lines")
  }
}
