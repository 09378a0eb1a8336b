/// The iteration space of an elementwise kernel: a shape and, per dimension, the strides of up
/// to four operands (lane 0 is the output). Dimensions of size 1 are dropped and neighbours
/// that are laid out alike are merged, so a broadcast bias add over (N, C, H, W) runs as
/// (N, C, H*W) with long contiguous inner runs.
struct Loop {
  var shape: [Int]
  var strides: [SIMD4<Int>]
  /// Some dimension has size 0: there is nothing to visit.
  let isEmpty: Bool

  init(shape: [Int], strides: [[Int]]) {
    isEmpty = shape.contains(0)
    var s: [Int] = [], st: [SIMD4<Int>] = []
    for d in 0..<shape.count where shape[d] != 1 {
      var v = SIMD4<Int>(repeating: 0)
      for k in 0..<strides.count { v[k] = strides[k][d] }
      s.append(shape[d]); st.append(v)
    }
    // Merge dim i into i+1 when every operand steps over i as over a block of i+1.
    var i = s.count - 2
    while i >= 0 {
      if st[i] == st[i + 1] &* SIMD4<Int>(repeating: s[i + 1]) {
        s[i + 1] *= s[i]
        s.remove(at: i); st.remove(at: i)
      }
      i -= 1
    }
    self.shape = s
    self.strides = st
  }

  /// Calls `body(n, offsets, innerStrides)` for every inner run, covering the whole space.
  /// Runs are grouped into chunks of about `grain` elements, which may run concurrently.
  @inline(__always)
  func run(grain: Int = Parallel.elementGrain, _ body: (Int, SIMD4<Int>, SIMD4<Int>) -> Void) {
    if isEmpty { return }
    guard let inner = shape.last else { body(1, .zero, .zero); return }
    let innerStride = strides[shape.count - 1]
    let outerRank = shape.count - 1
    var outerCount = 1
    for d in 0..<outerRank { outerCount *= shape[d] }
    if outerCount == 1 {
      Parallel.forChunks(inner, grain: grain) { r in
        body(r.count, innerStride &* SIMD4<Int>(repeating: r.lowerBound), innerStride)
      }
      return
    }
    Parallel.forChunks(outerCount, grain: Swift.max(1, grain / inner)) { r in
      // Decompose the first outer index, then step an odometer.
      var idx = [Int](repeating: 0, count: outerRank)
      var rem = r.lowerBound
      var off = SIMD4<Int>.zero
      for d in stride(from: outerRank - 1, through: 0, by: -1) {
        idx[d] = rem % shape[d]
        rem /= shape[d]
        off &+= strides[d] &* SIMD4<Int>(repeating: idx[d])
      }
      for _ in r {
        body(inner, off, innerStride)
        var d = outerRank - 1
        while d >= 0 {
          idx[d] += 1
          off &+= strides[d]
          if idx[d] < shape[d] { break }
          off &-= strides[d] &* SIMD4<Int>(repeating: shape[d])
          idx[d] = 0
          d -= 1
        }
      }
    }
  }
}

/// Strides of `t` seen as a tensor of shape `target` (right-aligned broadcasting: missing and
/// size-1 dimensions get stride 0).
func broadcastStrides(_ t: Tensor, to target: [Int]) -> [Int] {
  var out = [Int](repeating: 0, count: target.count)
  let shift = target.count - t.rank
  for d in 0..<t.rank where t.shape[d] != 1 { out[d + shift] = t.strides[d] }
  return out
}

/// The broadcast shape of two shapes (numpy rules), or an error naming the op and both shapes.
func broadcastShapes(_ a: [Int], _ b: [Int], op: String) throws -> [Int] {
  let n = Swift.max(a.count, b.count)
  var out = [Int](repeating: 1, count: n)
  for i in 0..<n {
    let da = i < n - a.count ? 1 : a[i - (n - a.count)]
    let db = i < n - b.count ? 1 : b[i - (n - b.count)]
    if da == db || db == 1 { out[i] = da } else if da == 1 { out[i] = db } else {
      throw TensorError("\(op): shapes \(formatShape(a)) and \(formatShape(b)) cannot be broadcast together (dim \(i + 1) of the result: \(da) vs \(db))")
    }
  }
  return out
}

// MARK: - Elementwise kernels

/// out = f(x), elementwise; out is a fresh contiguous tensor of x's shape.
/// The op is a type (`F: UnaryFn`), not a closure value: generic specialization then inlines it
/// into the inner loop even inside the closure that worker threads run, where a closure value
/// would cost an indirect call per element (measured: 3x slower at 2 threads than at 1).
func mapKernel<T: TensorScalar, F: UnaryFn>(_ x: Tensor, _: T.Type, _ f: F) throws -> Tensor {
  let out = try Tensor.empty(x.shape, dtype: T.dtype)
  let po = out.pointer(T.self), px = x.pointer(T.self)
  Loop(shape: x.shape, strides: [out.strides, x.strides]).run { n, off, s in
    let o = po + off[0], a = px + off[1]
    if s[1] == 1 { for i in 0..<n { o[i] = f.apply(a[i]) } } else { for i in 0..<n { o[i] = f.apply(a[i &* s[1]]) } }
  }
  return out
}

/// out = f(a, b) with broadcasting; a and b already have dtype T.
func zipKernel<T: TensorScalar, F: BinaryFn>(_ a: Tensor, _ b: Tensor, _ shape: [Int], _: T.Type, _ f: F) throws -> Tensor {
  let out = try Tensor.empty(shape, dtype: T.dtype)
  let po = out.pointer(T.self), pa = a.pointer(T.self), pb = b.pointer(T.self)
  Loop(shape: shape, strides: [out.strides, broadcastStrides(a, to: shape), broadcastStrides(b, to: shape)]).run { n, off, s in
    let o = po + off[0], x = pa + off[1], y = pb + off[2]
    let sx = s[1], sy = s[2]
    if sx == 1 && sy == 1 {
      for i in 0..<n { o[i] = f.apply(x[i], y[i]) }
    } else if sx == 1 && sy == 0 {
      let v = y[0]
      for i in 0..<n { o[i] = f.apply(x[i], v) }
    } else if sx == 0 && sy == 1 {
      let v = x[0]
      for i in 0..<n { o[i] = f.apply(v, y[i]) }
    } else {
      for i in 0..<n { o[i] = f.apply(x[i &* sx], y[i &* sy]) }
    }
  }
  return out
}

/// out = c != 0 ? a : b with broadcasting over all three.
func whereKernel<T: TensorScalar>(_ c: Tensor, _ a: Tensor, _ b: Tensor, _ shape: [Int], _: T.Type) throws -> Tensor {
  let out = try Tensor.empty(shape, dtype: T.dtype)
  let po = out.pointer(T.self), pc = c.pointer(T.self), pa = a.pointer(T.self), pb = b.pointer(T.self)
  Loop(shape: shape, strides: [out.strides, broadcastStrides(c, to: shape), broadcastStrides(a, to: shape), broadcastStrides(b, to: shape)]).run { n, off, s in
    let o = po + off[0], cc = pc + off[1], x = pa + off[2], y = pb + off[3]
    for i in 0..<n { o[i] = cc[i &* s[1]] != 0 ? x[i &* s[2]] : y[i &* s[3]] }
  }
  return out
}

/// A contiguous copy of any strided tensor (same dtype).
func stridedCopy(_ x: Tensor) throws -> Tensor {
  let out = try Tensor.empty(x.shape, dtype: x.dtype)
  switch x.dtype {
  case .float32: copyInto(out, x, Float.self)
  case .float64: copyInto(out, x, Double.self)
  }
  return out
}

/// dst[...] = src[...] with src broadcast to dst's shape; both of dtype T; dst may be a view.
func copyInto<T: TensorScalar>(_ dst: Tensor, _ src: Tensor, _: T.Type) {
  let pd = dst.pointer(T.self), ps = src.pointer(T.self)
  Loop(shape: dst.shape, strides: [dst.strides, broadcastStrides(src, to: dst.shape)]).run { n, off, s in
    let o = pd + off[0], a = ps + off[1]
    if s[0] == 1 && s[1] == 1 { o.update(from: a, count: n) }
    else if s[1] == 0 { let v = a[0]; for i in 0..<n { o[i &* s[0]] = v } }
    else { for i in 0..<n { o[i &* s[0]] = a[i &* s[1]] } }
  }
}

/// dst = f(dst, src) element by element, src broadcast to dst's shape: the in-place form of
/// zipKernel (the same f on the same operands, so the same bits).
func zipInto<T: TensorScalar, F: BinaryFn>(_ dst: Tensor, _ src: Tensor, _: T.Type, _ f: F) {
  let pd = dst.pointer(T.self), ps = src.pointer(T.self)
  Loop(shape: dst.shape, strides: [dst.strides, broadcastStrides(src, to: dst.shape)]).run { n, off, s in
    let o = pd + off[0], a = ps + off[1]
    if s[0] == 1 && s[1] == 1 { for i in 0..<n { o[i] = f.apply(o[i], a[i]) } }
    else if s[0] == 1 && s[1] == 0 { let v = a[0]; for i in 0..<n { o[i] = f.apply(o[i], v) } }
    else { for i in 0..<n { o[i &* s[0]] = f.apply(o[i &* s[0]], a[i &* s[1]]) } }
  }
}

/// x = f(x) element by element: the in-place form of mapKernel.
func mapInto<T: TensorScalar, F: UnaryFn>(_ x: Tensor, _: T.Type, _ f: F) {
  let px = x.pointer(T.self)
  Loop(shape: x.shape, strides: [x.strides]).run { n, off, s in
    let a = px + off[0]
    if s[0] == 1 { for i in 0..<n { a[i] = f.apply(a[i]) } } else { for i in 0..<n { a[i &* s[0]] = f.apply(a[i &* s[0]]) } }
  }
}

/// Converts between dtypes (fresh contiguous result).
func castKernel(_ x: Tensor, to dtype: DType) throws -> Tensor {
  let out = try Tensor.empty(x.shape, dtype: dtype)
  func go<S: TensorScalar, D: TensorScalar>(_: S.Type, _: D.Type) {
    let po = out.pointer(D.self), px = x.pointer(S.self)
    Loop(shape: x.shape, strides: [out.strides, x.strides]).run { n, off, s in
      let o = po + off[0], a = px + off[1]
      for i in 0..<n { o[i] = D(a[i &* s[1]]) }
    }
  }
  switch (x.dtype, dtype) {
  case (.float32, .float64): go(Float.self, Double.self)
  case (.float64, .float32): go(Double.self, Float.self)
  case (.float32, .float32): go(Float.self, Float.self)
  case (.float64, .float64): go(Double.self, Double.self)
  }
  return out
}
