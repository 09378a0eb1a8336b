import CKernels
import Foundation

/// Reductions. `sum` and `softmax` are the primitives; mean, var, std, logsumexp and logSoftmax
/// are composites.
/// `max`/`min` along a dim are a `gather` at the arg-extreme positions, so their gradient flows
/// to the chosen elements only (first occurrence on ties).

extension Tensor {
  /// Maps a possibly negative dim (-1 = last) to 0..<rank, or throws naming the op.
  public func normalizedDim(_ d: Int, _ op: String, rank r: Int? = nil) throws -> Int {
    let n = r ?? rank
    let dd = d < 0 ? d + n : d
    guard dd >= 0 && dd < n else {
      throw TensorError("\(op): dimension \(d < 0 ? d : d + 1) out of range for a tensor with \(n) dimension\(n == 1 ? "" : "s")")
    }
    return dd
  }

  func reduceMask(_ dims: [Int]?, _ op: String) throws -> [Bool] {
    var mask = [Bool](repeating: dims == nil, count: rank)
    for d in dims ?? [] {
      let dd = try normalizedDim(d, op)
      guard rank > 0 else { continue }
      if mask[dd] { throw TensorError("\(op): dimension \(dd + 1) given twice") }
      mask[dd] = true
    }
    return mask
  }

  /// Σ over `dims` (all when nil), keeping reduced dims as size 1 when `keepDim`.
  /// Reference: torch.sum.
  public func sum(dims: [Int]? = nil, keepDim: Bool = false) throws -> Tensor {
    let mask = try reduceMask(dims, "sum")
    // An expanded dim repeats one slice: summing it is that slice times its size, so the work
    // and memory follow the data, not the view's logical size.
    let repeated = expandedDims
    let compact = repeated.isEmpty ? self : compactedView()
    let src = try compact.contiguousData()
    var kept: Tensor
    switch dtype {
    case .float32: kept = try sumKernel(src, reduce: mask, Float.self)
    case .float64: kept = try sumKernel(src, reduce: mask, Double.self)
    }
    if !repeated.isEmpty {
      let factor = repeated.filter { mask[$0] }.reduce(1) { $0 * shape[$1] }
      let spread = zip(shape, mask).map { $1 ? 1 : $0 }
      kept = try GradMode.withDisabled {
        let scaled = factor > 1 ? try kept.mul(try kept.constant(Double(factor))) : kept
        return spread == scaled.shape ? scaled : try scaled.expand(spread).contiguous()
      }
    }
    let keptShape = kept.shape
    let outShape = keepDim ? keptShape : zip(shape, mask).filter { !$1 }.map { $0.0 }
    let out = Tensor(storage: kept.storage, shape: outShape, strides: Tensor.contiguousStrides(outShape), offset: 0)
    return record("sum", out, [self]) { [shape = self.shape] g, _ in
      [try g.reshape(keptShape).expand(shape)]  // d Σx/dx = 1, spread back over the summed dims
    }
  }

  /// Sums a broadcast gradient back to `target` (the transpose of broadcasting).
  public func sumTo(_ target: [Int]) throws -> Tensor {
    if shape == target { return self }
    let lead = rank - target.count
    guard lead >= 0 else { throw TensorError("sumTo: cannot reduce \(formatShape(shape)) to \(formatShape(target))") }
    var dims = Array(0..<lead)
    for i in 0..<target.count where target[i] == 1 && shape[lead + i] != 1 { dims.append(lead + i) }
    let s = dims.isEmpty ? self : try sum(dims: dims, keepDim: true)
    return try s.reshape(target)
  }

  /// Mean over `dims` (all when nil). Reference: torch.mean.
  public func mean(dims: [Int]? = nil, keepDim: Bool = false) throws -> Tensor {
    let mask = try reduceMask(dims, "mean")
    let n = zip(shape, mask).reduce(1) { $1.1 ? $0 * $1.0 : $0 }
    return try sum(dims: dims, keepDim: keepDim).div(constant(Double(n)))
  }

  /// Variance over `dims`: Σ(x - mean)² / (n - 1) when `unbiased` (PyTorch's default), / n
  /// otherwise. Reference: torch.var.
  public func variance(dims: [Int]? = nil, unbiased: Bool = true, keepDim: Bool = false) throws -> Tensor {
    let mask = try reduceMask(dims, "var")
    let n = zip(shape, mask).reduce(1) { $1.1 ? $0 * $1.0 : $0 }
    if !expandedDims.isEmpty {
      // Repeated slices add no spread: the biased variance is the data's (each value counted
      // as often as the others), then n/(n-1) for the unbiased one, spread back over the
      // expanded dims that are kept. The work follows the data, not the logical size.
      var v = try compactRecorded().variance(dims: dims, unbiased: false, keepDim: true)
      if unbiased { v = try v.mul(constant(Double(n) / Double(n - 1))) }
      return try v.spread(to: zip(shape, mask).map { $1 ? 1 : $0 }, keepDim: keepDim, mask: mask)
    }
    let centered = try sub(mean(dims: dims, keepDim: true))
    let ss = try centered.mul(centered).sum(dims: dims, keepDim: keepDim)
    return try ss.div(constant(Double(unbiased ? n - 1 : n)))
  }

  /// Standard deviation: √var. Reference: torch.std.
  public func std(dims: [Int]? = nil, unbiased: Bool = true, keepDim: Bool = false) throws -> Tensor {
    try variance(dims: dims, unbiased: unbiased, keepDim: keepDim).sqrt()
  }

  /// Index (0-based) of the largest value along `dim`, or over the flattened tensor when nil.
  public func argmax(dim: Int? = nil, keepDim: Bool = false) throws -> (indices: [Int], shape: [Int]) {
    try argExtreme(dim: dim, keepDim: keepDim, largest: true, "argmax")
  }
  public func argmin(dim: Int? = nil, keepDim: Bool = false) throws -> (indices: [Int], shape: [Int]) {
    try argExtreme(dim: dim, keepDim: keepDim, largest: false, "argmin")
  }

  func argExtreme(dim: Int?, keepDim: Bool, largest: Bool, _ op: String) throws -> (indices: [Int], shape: [Int]) {
    guard numel > 0 else { throw TensorError("\(op): the tensor is empty") }
    // An expanded dim repeats one slice, whose first copy is the first occurrence: the search
    // runs over the data (expanded dims narrowed to 1) and its answer is mapped back.
    let repeated = expandedDims
    let compact = repeated.isEmpty ? self : compactedView()
    if dim == nil {
      let flat = try compact.contiguousData()
      let x = Tensor(storage: flat.storage, shape: [flat.numel], strides: [1], offset: flat.offset)
      let i = try argExtremeIndices(x, 0, largest)[0]
      // compact row-major index -> the same element's first position in self's row-major order
      var rest = i, full = 0, unit = 1
      for k in stride(from: rank - 1, through: 0, by: -1) {
        let c = rest % compact.shape[k]
        rest /= compact.shape[k]
        full += c * unit
        unit *= shape[k]
      }
      return ([full], keepDim ? [Int](repeating: 1, count: rank) : [])
    }
    let d = try normalizedDim(dim!, op)
    var outShape = shape
    outShape[d] = 1
    try Storage.checkAllocatable(count: try Tensor.checkedCount(outShape), elementBytes: 8, what: "\(op)'s indices")
    var idx = try argExtremeIndices(try compact.contiguousData(), d, largest)
    if !repeated.isEmpty {
      var compactOut = compact.shape
      compactOut[d] = 1
      if compactOut != outShape { idx = Tensor.broadcastIndices(idx, from: compactOut, to: outShape) }
    }
    if !keepDim { outShape.remove(at: d) }
    return (idx, outShape)
  }

  func argExtremeIndices(_ src: Tensor, _ d: Int, _ largest: Bool) throws -> [Int] {
    switch dtype {
    case .float32: return argExtremeKernel(src, dim: d, largest: largest, Float.self)
    case .float64: return argExtremeKernel(src, dim: d, largest: largest, Double.self)
    }
  }

  /// `values` laid out row-major over `from` (sizes 1 or equal to `to`'s), repeated along the
  /// dims where `from` has 1 and `to` more, row-major over `to`.
  static func broadcastIndices(_ values: [Int], from: [Int], to: [Int]) -> [Int] {
    let count = to.reduce(1, *)
    var out = [Int](repeating: 0, count: count)
    var sourceStrides = [Int](repeating: 0, count: to.count), s = 1
    for k in stride(from: to.count - 1, through: 0, by: -1) {
      sourceStrides[k] = from[k] == 1 ? 0 : s
      s *= from[k]
    }
    for i in 0..<count {
      var rest = i, at = 0
      for k in stride(from: to.count - 1, through: 0, by: -1) {
        at += (rest % to[k]) * sourceStrides[k]
        rest /= to[k]
      }
      out[i] = values[at]
    }
    return out
  }

  /// This view with every expanded dim narrowed to size 1, as a recorded op (the gradient
  /// reaches the first copy of each repeated slice, which expand's pullback then sums).
  func compactRecorded() throws -> Tensor {
    var x = self
    for d in expandedDims { x = try x.narrow(dim: d, start: 0, length: 1) }
    return x
  }

  /// A reduction's result computed on the data (shape with 1s), repeated to `kept` (the
  /// logical reduction's shape with reduced dims as 1) as a view, then squeezed unless keepDim.
  func spread(to kept: [Int], keepDim: Bool, mask: [Bool]) throws -> Tensor {
    let full = shape == kept ? self : try expand(kept)
    return keepDim ? full : try full.reshape(zip(kept, mask).filter { !$1 }.map { $0.0 })
  }

  /// The dims this view repeats (stride 0 and size above 1: made by expand).
  var expandedDims: [Int] { (0..<rank).filter { strides[$0] == 0 && shape[$0] > 1 } }

  /// This view with every expanded dim narrowed to size 1: the data it repeats, no copy, outside
  /// any graph.
  func compactedView() -> Tensor {
    Tensor(storage: storage, shape: (0..<rank).map { strides[$0] == 0 ? 1 : shape[$0] }, strides: strides, offset: offset)
  }

  /// Largest values along `dim` and their 0-based indices. Reference: torch.max(dim).
  public func max(dim: Int, keepDim: Bool = false) throws -> (values: Tensor, indices: [Int]) {
    try extreme(dim: dim, keepDim: keepDim, largest: true, "max")
  }
  /// Smallest values along `dim` and their 0-based indices. Reference: torch.min(dim).
  public func min(dim: Int, keepDim: Bool = false) throws -> (values: Tensor, indices: [Int]) {
    try extreme(dim: dim, keepDim: keepDim, largest: false, "min")
  }
  /// The largest element (a 0-d tensor). Reference: torch.max.
  public func max() throws -> Tensor { try extremeElement(largest: true, "max") }
  /// The smallest element (a 0-d tensor). Reference: torch.min.
  public func min() throws -> Tensor { try extremeElement(largest: false, "min") }

  /// The element `argExtreme` finds over the whole tensor, picked by a narrow of each dim (a
  /// view: an expanded view is never made full size); the gradient reaches that element only.
  func extremeElement(largest: Bool, _ op: String) throws -> Tensor {
    let (idx, _) = try argExtreme(dim: nil, keepDim: false, largest: largest, op)
    var rest = idx[0], x = self
    for k in stride(from: rank - 1, through: 0, by: -1) {
      x = try x.narrow(dim: k, start: rest % shape[k], length: 1)
      rest /= shape[k]
    }
    return try x.reshape([])
  }

  func extreme(dim: Int, keepDim: Bool, largest: Bool, _ op: String) throws -> (values: Tensor, indices: [Int]) {
    let d = try normalizedDim(dim, op)
    let (idx, _) = try argExtreme(dim: d, keepDim: true, largest: largest, op)
    var ishape = shape
    ishape[d] = 1
    let values = try gather(dim: d, index: IndexArray(shape: ishape, values: idx))
    return (keepDim ? values : try values.squeeze(dim: d), idx)
  }

  /// log Σ exp(x) along `dim`, computed as m + log Σ exp(x - m) with m the (detached) max, so
  /// it neither overflows nor underflows. Reference: torch.logsumexp.
  public func logsumexp(dim: Int, keepDim: Bool = false) throws -> Tensor {
    let d = try normalizedDim(dim, "logsumexp")
    if !expandedDims.isEmpty {
      // k copies of each value along an expanded dim: log Σ = log k + the data's log Σ
      var s = try compactRecorded().logsumexp(dim: d, keepDim: true)
      if strides[d] == 0 && shape[d] > 1 { s = try s.add(constant(Foundation.log(Double(shape[d])))) }
      var mask = [Bool](repeating: false, count: rank)
      mask[d] = true
      return try s.spread(to: zip(shape, mask).map { $1 ? 1 : $0 }, keepDim: keepDim, mask: mask)
    }
    var m = try detach().max(dim: d, keepDim: true).values
    // An all -inf (or +inf) row would give inf - inf; shift by 0 there instead.
    m = try Tensor.where(m.abs().lt(constant(.infinity)), m, constant(0))
    let s = try sub(m).exp().sum(dims: [d], keepDim: true).log().add(m)
    return keepDim ? s : try s.squeeze(dim: d)
  }

  /// Softmax along `dim`: y = exp(x - m) / Σ exp(x - m), m the row's max (0 where it is not
  /// finite, as in logsumexp). A primitive, not exp(logSoftmax): one output instead of the
  /// composite's four map-sized temporaries and their four pullbacks, which is what an attention
  /// map of (N, HW, HW/4) costs at 64 and 128 px. Reference: torch.softmax.
  public func softmax(dim: Int) throws -> Tensor {
    let d = try normalizedDim(dim, "softmax"), last = rank - 1
    if d != last { return try transpose(d, last).softmax(dim: last).transpose(d, last) }
    let out = try Tensor.empty(shape, dtype: dtype)
    let src = try contiguousData()
    switch dtype {
    case .float32: softmaxRows(src, into: out, Float.self)
    case .float64: softmaxRows(src, into: out, Double.self)
    }
    return record("softmax", out, [self], Tensor.softmaxPullback(out, Edge(self), dim: last))
  }

  /// dx = y ⊙ (g - Σ_d g ⊙ y): the row Jacobian diag(y) - y yᵀ applied to g. It keeps y (its
  /// storage, through a detached alias: no cycle through y's node), never x, so attention's
  /// logits go as soon as the softmax has run. When y's own Tensor has gone and
  /// the pullback records (createGraph), y is rebuilt over that storage with a softmax node of
  /// its own on the same edge, so second derivatives still reach x.
  static func softmaxPullback(_ out: Tensor, _ input: Edge?, dim d: Int) -> (Tensor, [Bool]) throws -> [Tensor?] {
    let saved = out.detach()
    return { [weak out] g, _ in
      var y = out ?? saved
      if out == nil, GradMode.isEnabled, let input {
        y = saved.detach()
        y.requiresGrad = true
        y.node = Node("softmax", [input], softmaxPullback(y, input, dim: d))
      }
      // recording off (a plain backward): one pass per row instead of three map-sized temporaries
      if !GradMode.isEnabled, d == y.rank - 1, y.isContiguous, g.shape == y.shape, g.dtype == y.dtype { return [try softmaxBackward(y, g)] }
      return [try y.mul(g.sub(g.mul(y).sum(dims: [d], keepDim: true)))]
    }
  }

  /// dx = y ⊙ (g - Σ_last g ⊙ y) along the last dim, unrecorded (the pullback's fused form).
  static func softmaxBackward(_ y: Tensor, _ g: Tensor) throws -> Tensor {
    let dx = try Tensor.empty(y.shape, dtype: y.dtype), gc = try g.contiguousData()
    switch y.dtype {
    case .float32: softmaxBackwardRows(y, gc, into: dx, Float.self)
    case .float64: softmaxBackwardRows(y, gc, into: dx, Double.self)
    }
    return dx
  }

  /// x - logsumexp(x) along `dim`. Reference: torch.log_softmax.
  public func logSoftmax(dim: Int) throws -> Tensor { try sub(logsumexp(dim: dim, keepDim: true)) }
}

/// Runs body(n, rows) over the rows of t's last dim (n elements each), split across threads
/// by a grain fixed by the shape: a row is always one worker's, so sums along it are in order.
func forEachRowChunk(_ t: Tensor, _ body: (Int, Range<Int>) -> Void) {
  let n = t.shape.last ?? 1, rows = n == 0 ? 0 : t.numel / n
  Parallel.forChunks(rows, grain: Swift.max(1, 16384 / Swift.max(1, n))) { body(n, $0) }
}

/// y = softmax of each row of x's last dim (x contiguous; y may be x): the max, then exp(x - max)
/// summed in float64 (float32: CKernels' softmax_rows), then scaled by the sum's reciprocal, as
/// PyTorch's CPU kernel scales. Each row is summed in order, so any thread count gives the same bits.
func softmaxRows<T: TensorScalar>(_ x: Tensor, into y: Tensor, _: T.Type) {
  let px = x.pointer(T.self), py = y.pointer(T.self)
  if T.self == Float.self {   // the vector kernel for this CPU (CKernels: a vectorizable expf, lanes summed in order)
    let xf = UnsafeRawPointer(px).assumingMemoryBound(to: Float.self), yf = UnsafeMutableRawPointer(py).assumingMemoryBound(to: Float.self)
    forEachRowChunk(x) { n, r in lg_softmax_rows(xf, yf, n, r.lowerBound, r.upperBound) }
    return
  }
  forEachRowChunk(x) { n, r in
    for row in r {
      let a = px + row * n, b = py + row * n
      var m = a[0]
      for i in 1..<n where a[i] > m { m = a[i] }
      if !m.isFinite { m = 0 }
      var s = 0.0
      for i in 0..<n {
        let e = T.exp(a[i] - m)
        b[i] = e
        s += Double(e)
      }
      let inv = T(1 / s)
      for i in 0..<n { b[i] *= inv }
    }
  }
}

/// dx = y ⊙ (g - Σ g ⊙ y) for each row of the last dim (all contiguous), the sum in float64.
func softmaxBackwardRows<T: TensorScalar>(_ y: Tensor, _ g: Tensor, into dx: Tensor, _: T.Type) {
  let py = y.pointer(T.self), pg = g.pointer(T.self), pd = dx.pointer(T.self)
  forEachRowChunk(y) { n, r in
    for row in r {
      let a = py + row * n, b = pg + row * n, c = pd + row * n
      var s = 0.0
      for i in 0..<n { s += Double(a[i]) * Double(b[i]) }
      let st = T(s)
      for i in 0..<n { c[i] = a[i] * (b[i] - st) }
    }
  }
}
