/// Index ops in adjoint pairs: indexSelect ↔ indexAdd, gather ↔ scatterAdd. Each is linear in
/// its tensor argument and its pullback is the other, so any order of derivative stays inside
/// the pair. Indices are 0-based Swift arrays here; the Lua bridge converts from 1-based.

/// A tensor-shaped array of 0-based indices (for gather/scatterAdd).
public struct IndexArray {
  public let shape: [Int]
  public let values: [Int]
  public init(shape: [Int], values: [Int]) { self.shape = shape; self.values = values }
}

extension Tensor {
  func checkIndices(_ idx: [Int], limit: Int, _ op: String) throws {
    for (k, i) in idx.enumerated() where i < 0 || i >= limit {
      throw TensorError("\(op): index \(i + 1) at position \(k + 1) is out of range 1..\(limit)")
    }
  }

  /// Rows `indices` (0-based) of `dim`, in order, repeats allowed. Reference: torch.index_select.
  public func indexSelect(dim: Int, _ indices: [Int]) throws -> Tensor {
    let d = try normalizedDim(dim, "indexSelect")
    guard rank > 0 else { throw TensorError("indexSelect: cannot index a 0-d tensor") }
    try checkIndices(indices, limit: shape[d], "indexSelect")
    var s = shape
    s[d] = indices.count
    let out = try Tensor.empty(s, dtype: dtype)
    let inner = shape[(d + 1)...].reduce(1, *), outer = shape[..<d].reduce(1, *), D = shape[d]
    if !isContiguous {
      // read through the strides: the work and memory are the result's, whatever the view
      let (outerAt, innerAt) = try stridedOffsets(around: d)
      let step = strides[d]
      func gatherRows<T: TensorScalar>(_: T.Type) {
        let px = storage.pointer(T.self) + offset, po = out.pointer(T.self)
        for o in 0..<outer { for (j, i) in indices.enumerated() {
          let from = px + outerAt[o] + i * step, to = po + (o * indices.count + j) * inner
          for k in 0..<inner { to[k] = from[innerAt[k]] }
        } }
      }
      switch dtype { case .float32: gatherRows(Float.self); case .float64: gatherRows(Double.self) }
      return record("indexSelect", out, [self]) { g, _ in [try g.indexAdd(dim: d, indices, size: D)] }
    }
    let src = self
    func go<T: TensorScalar>(_: T.Type) {
      let px = src.pointer(T.self), po = out.pointer(T.self)
      Parallel.forChunks(outer * indices.count, grain: Swift.max(1, Parallel.elementGrain / Swift.max(1, inner))) { r in
        for w in r {
          let o = w / indices.count, j = w % indices.count
          (po + w * inner).update(from: px + (o * D + indices[j]) * inner, count: inner)
        }
      }
    }
    switch dtype { case .float32: go(Float.self); case .float64: go(Double.self) }
    return record("indexSelect", out, [self]) { g, _ in [try g.indexAdd(dim: d, indices, size: D)] }  // scatter back
  }

  /// A zero tensor with `size` rows along `dim`, into which self's rows are added at `indices`
  /// (duplicates accumulate). Reference: torch.index_add.
  public func indexAdd(dim: Int, _ indices: [Int], size: Int) throws -> Tensor {
    let d = try normalizedDim(dim, "indexAdd")
    guard indices.count == shape[d] else {
      throw TensorError("indexAdd: \(indices.count) indices for \(shape[d]) rows")
    }
    try checkIndices(indices, limit: size, "indexAdd")
    let src = try contiguousData()
    var s = shape
    s[d] = size
    let out = try Tensor.zeros(s, dtype: dtype)
    let inner = shape[(d + 1)...].reduce(1, *), outer = shape[..<d].reduce(1, *)
    func go<T: TensorScalar>(_: T.Type) {
      let px = src.pointer(T.self), po = out.pointer(T.self)
      Parallel.forChunks(outer, grain: 1) { r in
        for o in r {
          for (j, i) in indices.enumerated() {
            let dst = po + (o * size + i) * inner, a = px + (o * indices.count + j) * inner
            for k in 0..<inner { dst[k] += a[k] }
          }
        }
      }
    }
    switch dtype { case .float32: go(Float.self); case .float64: go(Double.self) }
    return record("indexAdd", out, [self]) { g, _ in [try g.indexSelect(dim: d, indices)] }  // gather back
  }

  /// out[..., j, ...] = self[..., index[..., j, ...], ...] along `dim`; index has self's shape
  /// except along dim. Reference: torch.gather.
  public func gather(dim: Int, index: IndexArray) throws -> Tensor {
    let d = try normalizedDim(dim, "gather")
    try checkGatherShape(index, d, "gather", sizeAlong: nil)
    try checkIndices(index.values, limit: shape[d], "gather")
    let out = try Tensor.empty(index.shape, dtype: dtype)
    let inner = shape[(d + 1)...].reduce(1, *), outer = shape[..<d].reduce(1, *)
    let D = shape[d], J = index.shape[d]
    if !isContiguous {
      // read through the strides: the work and memory are the result's, whatever the view
      let (outerAt, innerAt) = try stridedOffsets(around: d)
      let step = strides[d]
      func pick<T: TensorScalar>(_: T.Type) {
        let px = storage.pointer(T.self) + offset, po = out.pointer(T.self)
        for o in 0..<outer { for j in 0..<J {
          let base = (o * J + j) * inner
          for k in 0..<inner { po[base + k] = px[outerAt[o] + index.values[base + k] * step + innerAt[k]] }
        } }
      }
      switch dtype { case .float32: pick(Float.self); case .float64: pick(Double.self) }
      return record("gather", out, [self]) { [shape = self.shape] g, _ in [try g.scatterAdd(dim: d, index: index, size: shape[d])] }
    }
    let src = self
    func go<T: TensorScalar>(_: T.Type) {
      let px = src.pointer(T.self), po = out.pointer(T.self)
      index.values.withUnsafeBufferPointer { ib in
        let iv = ib.baseAddress!
        Parallel.forChunks(outer, grain: Swift.max(1, Parallel.elementGrain / Swift.max(1, J * inner))) { r in
          for o in r {
            for j in 0..<J {
              let base = (o * J + j) * inner
              for k in 0..<inner { po[base + k] = px[(o * D + iv[base + k]) * inner + k] }
            }
          }
        }
      }
    }
    switch dtype { case .float32: go(Float.self); case .float64: go(Double.self) }
    return record("gather", out, [self]) { [shape = self.shape] g, _ in
      [try g.scatterAdd(dim: d, index: index, size: shape[d])]  // route each gradient to its source
    }
  }

  /// A zero tensor with `size` entries along `dim` into which self is added at `index`
  /// positions (duplicates accumulate). Reference: torch.scatter_add.
  public func scatterAdd(dim: Int, index: IndexArray, size: Int) throws -> Tensor {
    let d = try normalizedDim(dim, "scatterAdd")
    guard index.shape == shape else {
      throw TensorError("scatterAdd: index shape \(formatShape(index.shape)) differs from source shape \(formatShape(shape))")
    }
    try checkIndices(index.values, limit: size, "scatterAdd")
    let src = try contiguousData()
    var s = shape
    s[d] = size
    let out = try Tensor.zeros(s, dtype: dtype)
    let inner = shape[(d + 1)...].reduce(1, *), outer = shape[..<d].reduce(1, *), J = shape[d]
    func go<T: TensorScalar>(_: T.Type) {
      let px = src.pointer(T.self), po = out.pointer(T.self)
      index.values.withUnsafeBufferPointer { ib in
        let iv = ib.baseAddress!
        Parallel.forChunks(outer, grain: Swift.max(1, Parallel.elementGrain / Swift.max(1, J * inner))) { r in
          for o in r {
            for j in 0..<J {
              let base = (o * J + j) * inner
              for k in 0..<inner { po[(o * size + iv[base + k]) * inner + k] += px[base + k] }
            }
          }
        }
      }
    }
    switch dtype { case .float32: go(Float.self); case .float64: go(Double.self) }
    return record("scatterAdd", out, [self]) { g, _ in [try g.gather(dim: d, index: index)] }
  }

  /// Element offsets (from `offset`) of every position of the dims before `d` and of the dims
  /// after it, each in row-major order: with them a strided view is read without a copy.
  func stridedOffsets(around d: Int) throws -> (outer: [Int], inner: [Int]) {
    func table(_ dims: Range<Int>) throws -> [Int] {
      let count = shape[dims].reduce(1, *)
      try Storage.checkAllocatable(count: count, elementBytes: 8, what: "an index table")
      var out = [Int](repeating: 0, count: count)
      for i in 0..<count {
        var rest = i, at = 0
        for k in dims.reversed() {
          at += (rest % shape[k]) * strides[k]
          rest /= shape[k]
        }
        out[i] = at
      }
      return out
    }
    return (try table(0..<d), try table((d + 1)..<rank))
  }

  func checkGatherShape(_ index: IndexArray, _ d: Int, _ op: String, sizeAlong: Int?) throws {
    guard index.shape.count == rank else {
      throw TensorError("\(op): index has \(index.shape.count) dimensions but the tensor has \(rank)")
    }
    for k in 0..<rank where k != d && index.shape[k] != shape[k] {
      throw TensorError("\(op): index shape \(formatShape(index.shape)) must match the tensor shape \(formatShape(shape)) except in dim \(d + 1)")
    }
    guard index.values.count == index.shape.reduce(1, *) else { throw TensorError("\(op): index values do not fill its shape") }
  }

  /// Rows of `weight` (V, D) picked by 0-based `indices`, shaped indexShape + {D}.
  /// Reference: torch.nn.functional.embedding.
  public static func embedding(_ weight: Tensor, indices: [Int], indexShape: [Int]) throws -> Tensor {
    guard weight.rank == 2 else {
      throw TensorError("embedding: weight must be 2-D (numEmbeddings, dim), got \(formatShape(weight.shape))")
    }
    return try weight.indexSelect(dim: 0, indices).reshape(indexShape + [weight.shape[1]])
  }
}
