import Foundation

/// `tostring(x)`: values laid out as PyTorch prints them (4 decimals, scientific notation when
/// magnitudes call for it, integers as "1.", "..." beyond 1000 elements), followed by the
/// shape and dtype.
extension Tensor: CustomStringConvertible {
  public var description: String {
    // Only the elements shown are read, so a huge (or huge expanded) tensor prints quickly.
    if numel == 0 {
      return "tensor([], shape=\(formatShape(shape)), dtype=\(dtype.rawValue)\(requiresGrad ? ", requiresGrad=true" : ""))"
    }
    let summarize = numel > 1000
    // Summarizing keeps 6 entries per dim: with many small dims that is still too many (2^40
    // for 40 dims of 2), so past a few thousand shown values only the shape is printed.
    let shownCount = shape.reduce(1.0) { $0 * Double(summarize && $1 > 6 ? 6 : $1) }
    if shownCount > 4096 {
      return "tensor([...], shape=\(formatShape(shape)), dtype=\(dtype.rawValue)\(requiresGrad ? ", requiresGrad=true" : ""))"
    }
    let value = elementReader()
    let shown = summarize ? summarizedValues(value) : (0..<numel).map(value)
    let fmt = ValueFormatter(shown.filter { $0.isFinite })
    var body = ""
    if rank == 0 {
      body = fmt.format(numel > 0 ? value(0) : 0)
    } else {
      body = render(value, dim: 0, base: 0, indent: 7, fmt: fmt, summarize: summarize)
    }
    var suffix = ", shape=\(formatShape(shape)), dtype=\(dtype.rawValue)"
    if let op = node?.op { suffix += ", gradFn=\(op)" } else if requiresGrad { suffix += ", requiresGrad=true" }
    return "tensor(\(body)\(suffix))"
  }

  /// The element at a row-major position, read through the strides (no copy).
  func elementReader() -> (Int) -> Double {
    let rowMajor = Tensor.contiguousStrides(shape)
    return { [self] linear in
      var rem = linear, at = offset
      for d in 0..<rank {
        at += (rem / rowMajor[d]) * strides[d]
        rem %= rowMajor[d]
      }
      switch dtype {
      case .float32: return Double(storage.pointer(Float.self)[at])
      case .float64: return storage.pointer(Double.self)[at]
      }
    }
  }

  private func summarizedValues(_ v: (Int) -> Double) -> [Double] {
    // The values that will be shown: first and last 3 along every dim.
    var out: [Double] = []
    func walk(_ dim: Int, _ base: Int) {
      if dim == rank { out.append(v(base)); return }
      let n = shape[dim], st = Tensor.contiguousStrides(shape)[dim]
      let idx = n > 6 ? Array(0..<3) + Array((n - 3)..<n) : Array(0..<n)
      for i in idx { walk(dim + 1, base + i * st) }
    }
    walk(0, 0)
    return out
  }

  private func render(_ v: (Int) -> Double, dim: Int, base: Int, indent: Int, fmt: ValueFormatter, summarize: Bool) -> String {
    let n = shape[dim], st = Tensor.contiguousStrides(shape)[dim]
    let idx: [Int?] = summarize && n > 6 ? [0, 1, 2, nil, n - 3, n - 2, n - 1] : (0..<n).map { $0 }
    if dim == rank - 1 {
      var items = idx.map { $0.map { fmt.format(v(base + $0 * st)) } ?? "..." }
      // Wrap long rows at about 80 columns, as PyTorch does.
      let perLine = Swift.max(1, (80 - indent) / (fmt.width + 2))
      if items.count > perLine {
        var lines: [String] = []
        while !items.isEmpty {
          lines.append(items.prefix(perLine).joined(separator: ", "))
          items.removeFirst(Swift.min(perLine, items.count))
        }
        return "[" + lines.joined(separator: ",\n" + String(repeating: " ", count: indent + 1)) + "]"
      }
      return "[" + items.joined(separator: ", ") + "]"
    }
    let sep = ",\n" + String(repeating: "\n", count: rank - dim - 2) + String(repeating: " ", count: indent + 1)
    let parts = idx.map { i in
      i.map { render(v, dim: dim + 1, base: base + $0 * st, indent: indent + 1, fmt: fmt, summarize: summarize) } ?? "..."
    }
    return "[" + parts.joined(separator: sep) + "]"
  }
}

/// PyTorch's _Formatter: integer mode, fixed 4 decimals, or scientific.
struct ValueFormatter {
  enum Mode { case integer, fixed, scientific }
  let mode: Mode
  let width: Int

  init(_ finite: [Double]) {
    let nonzero = finite.map { Swift.abs($0) }.filter { $0 != 0 }
    if finite.allSatisfy({ $0 == $0.rounded() }) {
      mode = (nonzero.max() ?? 0) > 1e8 ? .scientific : .integer
    } else if let mx = nonzero.max(), let mn = nonzero.min(), mx / mn > 1000 || mx > 1e8 || mn < 1e-4 {
      mode = .scientific
    } else {
      mode = .fixed
    }
    var w = 1
    for x in finite { w = Swift.max(w, ValueFormatter.raw(x, mode).count) }
    width = w
  }

  static func raw(_ x: Double, _ mode: Mode) -> String {
    if x.isNaN { return "nan" }
    if x.isInfinite { return x > 0 ? "inf" : "-inf" }
    switch mode {
    case .integer: return String(format: "%.0f.", x)
    case .fixed: return String(format: "%.4f", x)
    case .scientific: return String(format: "%.4e", x)
    }
  }

  func format(_ x: Double) -> String {
    let s = ValueFormatter.raw(x, mode)
    return String(repeating: " ", count: Swift.max(0, width - s.count)) + s
  }
}
