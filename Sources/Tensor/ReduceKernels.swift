/// Sum kernels. Accumulation is in Double for both dtypes and every output element is summed
/// in a fixed order by one thread, so results do not depend on the thread count.

/// Σ p[0..<n] in a fixed order (8 lanes, then the lanes in order, then the tail).
@inline(__always)
func sumRun<T: TensorScalar>(_ p: UnsafePointer<T>, _ n: Int) -> Double {
  var i = 0
  var acc = SIMD8<Double>(repeating: 0)
  if T.self == Float.self {
    let f = UnsafeRawPointer(p)
    while i + 8 <= n {
      acc += SIMD8<Double>(f.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self))
      i += 8
    }
  } else {
    let d = UnsafeRawPointer(p)
    while i + 8 <= n {
      acc += d.loadUnaligned(fromByteOffset: i * 8, as: SIMD8<Double>.self)
      i += 8
    }
  }
  var s = acc.sum()
  while i < n { s += Double(p[i]); i += 1 }
  return s
}

/// Sums a contiguous tensor over the dimensions flagged in `reduce` (true = summed away).
/// Returns the kept-dims shape with reduced dims set to 1.
func sumKernel<T: TensorScalar>(_ x: Tensor, reduce: [Bool], _: T.Type) throws -> Tensor {
  precondition(x.isContiguous)
  let outShape = zip(x.shape, reduce).map { $1 ? 1 : $0 }
  let out = try Tensor.empty(outShape, dtype: T.dtype)
  let po = out.pointer(T.self), px = UnsafePointer(x.pointer(T.self))
  if out.numel == 0 { return out }
  if x.numel == 0 { po.update(repeating: 0, count: out.numel); return out }

  // Group consecutive dims of the same kind (size-1 dims join either).
  var sizes: [Int] = [], isR: [Bool] = []
  for (d, r) in zip(x.shape, reduce) where d != 1 {
    if let last = isR.last, last == r { sizes[sizes.count - 1] *= d } else { sizes.append(d); isR.append(r) }
  }
  if sizes.isEmpty { po[0] = px[0]; return out }
  var strides = [Int](repeating: 1, count: sizes.count)
  for i in stride(from: sizes.count - 2, through: 0, by: -1) { strides[i] = strides[i + 1] * sizes[i + 1] }
  let kIdx = (0..<sizes.count).filter { !isR[$0] }, rIdx = (0..<sizes.count).filter { isR[$0] }

  @inline(__always) func offset(_ linear: Int, _ dims: ArraySlice<Int>) -> Int {
    var rem = linear, off = 0
    for g in dims.reversed() { off += (rem % sizes[g]) * strides[g]; rem /= sizes[g] }
    return off
  }

  if isR.last! {
    // Innermost group summed: each output is Σ over runs of length L.
    let L = sizes.last!
    let outerR = rIdx.dropLast()
    let rCount = outerR.reduce(1) { $0 * sizes[$1] }
    if kIdx.isEmpty {
      // Whole-tensor sum: fixed blocks in parallel, then the blocks in order.
      let block = 1 << 16, total = x.numel
      let nb = (total + block - 1) / block
      var partial = [Double](repeating: 0, count: nb)
      partial.withUnsafeMutableBufferPointer { pp in
        let pb = pp.baseAddress!
        Parallel.forChunks(nb, grain: 1) { r in
          for b in r { pb[b] = sumRun(px + b * block, Swift.min(block, total - b * block)) }
        }
      }
      var s = 0.0
      for v in partial { s += v }
      po[0] = T(s)
      return out
    }
    let kCount = out.numel
    Parallel.forChunks(kCount, grain: Swift.max(1, Parallel.elementGrain / Swift.max(1, rCount * L))) { r in
      for o in r {
        let base = offset(o, kIdx[...])
        var s = 0.0
        for j in 0..<rCount { s += sumRun(px + base + offset(j, outerR), L) }
        po[o] = T(s)
      }
    }
  } else {
    // Innermost group kept: accumulate whole rows of D columns, in column chunks.
    let D = sizes.last!
    let outerK = kIdx.dropLast()
    let oCount = outerK.reduce(1) { $0 * sizes[$1] }
    let rCount = rIdx.reduce(1) { $0 * sizes[$1] }
    let colChunk = 512
    let nChunks = (D + colChunk - 1) / colChunk
    Parallel.forChunks(oCount * nChunks, grain: Swift.max(1, Parallel.elementGrain / Swift.max(1, rCount * colChunk))) { r in
      var acc = [Double](repeating: 0, count: colChunk)
      acc.withUnsafeMutableBufferPointer { ab in
        let a = ab.baseAddress!
        for w in r {
          let o = w / nChunks, c0 = (w % nChunks) * colChunk, c1 = Swift.min(D, c0 + colChunk)
          let base = offset(o, outerK) + c0
          a.update(repeating: 0, count: c1 - c0)
          for j in 0..<rCount {
            let p = px + base + offset(j, rIdx[...])
            for c in 0..<(c1 - c0) { a[c] += Double(p[c]) }
          }
          let q = po + o * D + c0
          for c in 0..<(c1 - c0) { q[c] = T(a[c]) }
        }
      }
    }
  }
  return out
}

/// Index (0-based) of the largest (or smallest) value along `dim` of a contiguous tensor,
/// first occurrence on ties; NaN counts as the extreme, as in PyTorch.
func argExtremeKernel<T: TensorScalar>(_ x: Tensor, dim: Int, largest: Bool, _: T.Type) -> [Int] {
  precondition(x.isContiguous)
  let D = x.shape[dim]
  let inner = x.shape[(dim + 1)...].reduce(1, *), outer = x.shape[..<dim].reduce(1, *)
  var result = [Int](repeating: 0, count: outer * inner)
  let px = x.pointer(T.self)
  result.withUnsafeMutableBufferPointer { rb in
    let res = rb.baseAddress!
    Parallel.forChunks(outer * inner, grain: Swift.max(1, Parallel.elementGrain / Swift.max(1, D))) { r in
      for w in r {
        let o = w / inner, i = w % inner
        let p = px + o * D * inner + i
        var best = p[0], bi = 0
        if !best.isNaN {
          for k in 1..<Swift.max(D, 1) {
            let v = p[k * inner]
            if v.isNaN { bi = k; break }
            if largest ? v > best : v < best { best = v; bi = k }
          }
        }
        res[w] = bi
      }
    }
  }
  return result
}
