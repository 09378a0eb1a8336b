/// Shape and layout ops. reshape, permute, expand and narrow return views when they can;
/// pad and narrow are each other's pullback, as are cat and narrow, reshape and reshape.

extension Tensor {
  /// Resolves one -1 in a requested shape against `numel`.
  func inferShape(_ requested: [Int], _ op: String) throws -> [Int] {
    var s = requested
    let unknown = s.indices.filter { s[$0] == -1 }
    guard unknown.count <= 1 else { throw TensorError("\(op): only one dimension can be -1, got \(formatShape(requested))") }
    for d in s where d < -1 { throw TensorError("\(op): invalid size \(d) in \(formatShape(requested))") }
    if let u = unknown.first {
      let known = try Checked.product(s.enumerated().filter { $0.offset != u }.map { $0.element }, "\(op): shape \(formatShape(requested))")
      guard known > 0 && numel % known == 0 else {
        throw TensorError("\(op): shape \(formatShape(requested)) is invalid for a tensor of \(numel) elements (shape \(formatShape(shape)))")
      }
      s[u] = numel / known
    }
    guard let count = try? Tensor.checkedCount(s), count == numel else {
      throw TensorError("\(op): shape \(formatShape(requested)) is invalid for a tensor of \(numel) elements (shape \(formatShape(shape)))")
    }
    return s
  }

  /// The same elements in a new shape (one size may be -1). A view when the data is
  /// contiguous, a copy otherwise. Reference: torch.reshape.
  public func reshape(_ newShape: [Int]) throws -> Tensor {
    let s = try inferShape(newShape, "reshape")
    if s == shape { return self }
    let out: Tensor
    if isContiguous {
      out = Tensor(storage: storage, shape: s, strides: Tensor.contiguousStrides(s), offset: offset)
    } else if let st = Tensor.viewStrides(shape, strides, s) {
      out = Tensor(storage: storage, shape: s, strides: st, offset: offset)   // a view: unsqueeze of an expanded view stays cheap
    } else {
      let src = try contiguousData()
      out = Tensor(storage: src.storage, shape: s, strides: Tensor.contiguousStrides(s), offset: src.offset)
    }
    return record("reshape", out, [self]) { [shape = self.shape] g, _ in [try g.reshape(shape)] }
  }

  /// Like reshape, but never copies: the new shape must be expressible with strides over the
  /// same elements (always for contiguous tensors). Reference: torch.Tensor.view.
  public func view(_ newShape: [Int]) throws -> Tensor {
    let s = try inferShape(newShape, "view")
    guard isContiguous || Tensor.viewStrides(shape, strides, s) != nil else {
      throw TensorError("view: the tensor is not contiguous (shape \(formatShape(shape)), strides \(formatShape(strides))): "
                        + "\(formatShape(newShape)) cannot be a view of it; use reshape, or contiguous() first")
    }
    return try reshape(newShape)
  }

  /// Strides that make `newShape` a view of the elements of a tensor with `oldShape` and
  /// `oldStrides`, or nil when it takes a copy: the old dims are cut into chunks whose elements
  /// are evenly spaced, and each chunk must map onto whole new dims (PyTorch's view rule,
  /// ATen's computeStride).
  static func viewStrides(_ oldShape: [Int], _ oldStrides: [Int], _ newShape: [Int]) -> [Int]? {
    if oldShape.isEmpty || oldShape.contains(0) { return Tensor.contiguousStrides(newShape) }
    var newStrides = [Int](repeating: 0, count: newShape.count)
    var viewD = newShape.count - 1
    var chunkBase = oldStrides[oldShape.count - 1]
    var tensorNumel = 1, viewNumel = 1
    for d in stride(from: oldShape.count - 1, through: 0, by: -1) {
      tensorNumel *= oldShape[d]
      // a chunk ends where the next dim out is not laid out right after this one
      if d == 0 || (oldShape[d - 1] != 1 && oldStrides[d - 1] != tensorNumel &* chunkBase) {
        while viewD >= 0 && (viewNumel < tensorNumel || newShape[viewD] == 1) {
          newStrides[viewD] = viewNumel &* chunkBase
          viewNumel *= newShape[viewD]
          viewD -= 1
        }
        if viewNumel != tensorNumel { return nil }
        if d > 0 { chunkBase = oldStrides[d - 1]; tensorNumel = 1; viewNumel = 1 }
      }
    }
    return viewD == -1 ? newStrides : nil
  }

  /// Reorders dimensions: result dim i is input dim perm[i]. A view. Reference: torch.permute.
  public func permute(_ perm: [Int]) throws -> Tensor {
    guard perm.count == rank else {
      throw TensorError("permute: expected \(rank) dimensions, got \(perm.count)")
    }
    let p = try perm.map { try normalizedDim($0, "permute") }
    guard Set(p).count == rank else { throw TensorError("permute: dimensions must be a permutation, got \(formatShape(perm.map { $0 + 1 }))") }
    if p == Array(0..<rank) { return self }
    let out = Tensor(storage: storage, shape: p.map { shape[$0] }, strides: p.map { strides[$0] }, offset: offset)
    var inverse = [Int](repeating: 0, count: rank)
    for (i, d) in p.enumerated() { inverse[d] = i }
    return record("permute", out, [self]) { g, _ in [try g.permute(inverse)] }
  }

  /// Swaps two dimensions (a view). Reference: torch.transpose.
  public func transpose(_ d0: Int, _ d1: Int) throws -> Tensor {
    var p = Array(0..<rank)
    let a = try normalizedDim(d0, "transpose"), b = try normalizedDim(d1, "transpose")
    p.swapAt(a, b)
    return try permute(p)
  }

  /// The transpose of a 2-D tensor.
  public func t() throws -> Tensor {
    guard rank == 2 else { throw TensorError("t: expected a 2-D tensor, got shape \(formatShape(shape))") }
    return try transpose(0, 1)
  }

  /// A view of `base`'s elements (row-major, `base` contiguous) with any sizes, strides and
  /// offset that stay inside it, outside any graph: how a file that stores a tensor as a
  /// storage plus strides (PyTorch's) is read without making an expanded view full size.
  public static func strided(over base: Tensor, shape: [Int], strides: [Int], offset: Int) throws -> Tensor {
    guard base.isContiguous, shape.count == strides.count, offset >= 0 else {
      throw TensorError("strided view: a contiguous base, as many strides as sizes and a non-negative offset are needed")
    }
    let n = try checkedCount(shape)
    if n > 0 {
      var last = offset
      for (size, stride) in zip(shape, strides) {
        guard stride >= 0 else { throw TensorError("strided view: negative stride \(stride)") }
        last = try Checked.add(last, try Checked.mul(size - 1, stride, "strided view: extent"), "strided view: extent")
      }
      guard last < base.numel else {
        throw TensorError("strided view: sizes \(formatShape(shape)), strides \(formatShape(strides)) and offset \(offset) reach element "
                          + "\(last + 1) of \(base.numel)")
      }
    }
    return Tensor(storage: base.storage, shape: shape, strides: strides, offset: base.offset + offset)
  }

  /// Repeats size-1 dims (and adds leading ones) without copying; -1 keeps a size.
  /// Reference: torch.Tensor.expand.
  public func expand(_ target: [Int]) throws -> Tensor {
    guard target.count >= rank else {
      throw TensorError("expand: target \(formatShape(target)) has fewer dimensions than the tensor \(formatShape(shape))")
    }
    let lead = target.count - rank
    var s = target, st = [Int](repeating: 0, count: target.count)
    for i in 0..<target.count {
      if i < lead {
        guard target[i] >= 0 else { throw TensorError("expand: size -1 not allowed for a new leading dimension") }
        continue
      }
      let cur = shape[i - lead]
      if target[i] == -1 || target[i] == cur { s[i] = cur; st[i] = strides[i - lead] }
      else if cur == 1 { guard target[i] >= 0 else { throw TensorError("expand: invalid size \(target[i])") } }
      else {
        throw TensorError("expand: cannot expand size \(cur) to \(target[i]) at dim \(i + 1) (tensor \(formatShape(shape)), target \(formatShape(target)))")
      }
    }
    if s == shape { return self }
    _ = try Tensor.checkedCount(s)
    let out = Tensor(storage: storage, shape: s, strides: st, offset: offset)
    return record("expand", out, [self]) { [shape = self.shape] g, _ in [try g.sumTo(shape)] }  // transpose of a broadcast
  }

  /// `length` elements of `dim` from `start` (0-based), a view. Reference: torch.narrow.
  public func narrow(dim: Int, start: Int, length: Int) throws -> Tensor {
    guard rank > 0 else { throw TensorError("narrow: cannot narrow a 0-d tensor") }
    let d = try normalizedDim(dim, "narrow")
    guard start >= 0, length >= 0, start <= shape[d], length <= shape[d] - start else {
      throw TensorError("narrow: start \(start &+ 1) with length \(length) is outside dim \(d + 1) of size \(shape[d])")
    }
    if start == 0 && length == shape[d] { return self }
    var s = shape
    s[d] = length
    let out = Tensor(storage: storage, shape: s, strides: strides, offset: offset + start * strides[d])
    var pads = [(Int, Int)](repeating: (0, 0), count: rank)
    pads[d] = (start, shape[d] - start - length)
    return record("narrow", out, [self]) { g, _ in [try g.pad(pads)] }  // zeros outside the window
  }

  /// The slice at `index` (0-based) along `dim`, with that dim removed (a view).
  public func select(dim: Int, index: Int) throws -> Tensor {
    let d = try normalizedDim(dim, "select")
    guard index >= 0 && index < shape[d] else {
      throw TensorError("index \(index + 1) out of range for dim \(d + 1) of size \(shape[d])")
    }
    return try narrow(dim: d, start: index, length: 1).squeeze(dim: d)
  }

  /// Removes size-1 dims (all of them, or just `dim`). Reference: torch.squeeze.
  public func squeeze(dim: Int? = nil) throws -> Tensor {
    if let dim {
      let d = try normalizedDim(dim, "squeeze")
      guard rank > 0, shape[d] == 1 else { return self }
      var s = shape
      s.remove(at: d)
      return try reshape(s)
    }
    return try reshape(shape.filter { $0 != 1 })
  }

  /// Inserts a size-1 dim at position `dim` (0...rank). Reference: torch.unsqueeze.
  public func unsqueeze(dim: Int) throws -> Tensor {
    let d = try normalizedDim(dim, "unsqueeze", rank: rank + 1)
    var s = shape
    s.insert(1, at: d)
    return try reshape(s)
  }

  /// Merges dims startDim...endDim into one. Reference: torch.flatten.
  public func flatten(startDim: Int = 0, endDim: Int = -1) throws -> Tensor {
    if rank == 0 { return try reshape([1]) }
    let a = try normalizedDim(startDim, "flatten"), b = try normalizedDim(endDim, "flatten")
    guard a <= b else { throw TensorError("flatten: start dim \(a + 1) is after end dim \(b + 1)") }
    let merged = shape[a...b].reduce(1, *)
    return try reshape(Array(shape[..<a]) + [merged] + Array(shape[(b + 1)...]))
  }

  /// A contiguous tensor with the same values (self when already contiguous).
  public func contiguous() throws -> Tensor {
    if isContiguous { return self }
    return try clone()
  }

  /// A copy with its own storage. Reference: torch.clone.
  public func clone() throws -> Tensor {
    let out = try stridedCopy(self)
    return record("clone", out, [self]) { g, _ in [g] }  // identity
  }

  /// Pads each dim with (before, after) elements of `value`. pads has one entry per dim.
  public func pad(_ pads: [(Int, Int)], value: Double = 0) throws -> Tensor {
    guard pads.count == rank else { throw TensorError("pad: expected \(rank) (before, after) pairs, got \(pads.count)") }
    for (b, a) in pads where b < 0 || a < 0 { throw TensorError("pad: padding must be >= 0, got (\(b), \(a))") }
    if pads.allSatisfy({ $0 == (0, 0) }) { return self }
    let s = try zip(shape, pads).map { try Checked.add(Checked.add($0, $1.0, "pad"), $1.1, "pad") }
    let out = try Tensor.full(s, value, dtype: dtype)
    var inner: Tensor = out
    for d in 0..<rank {
      inner = Tensor(storage: inner.storage, shape: inner.shape.enumerated().map { $0.offset == d ? shape[d] : $0.element },
                     strides: inner.strides, offset: inner.offset + pads[d].0 * inner.strides[d])
    }
    switch dtype {
    case .float32: copyInto(inner, self, Float.self)
    case .float64: copyInto(inner, self, Double.self)
    }
    return record("pad", out, [self]) { [shape = self.shape] g, _ in
      var r = g  // crop the padding away, dim by dim
      for d in 0..<shape.count where pads[d] != (0, 0) { r = try r.narrow(dim: d, start: pads[d].0, length: shape[d]) }
      return [r]
    }
  }

  /// Concatenates along `dim`; all other sizes must match. Reference: torch.cat.
  public static func cat(_ tensors: [Tensor], dim: Int) throws -> Tensor {
    guard let first = tensors.first else { throw TensorError("cat: expected a non-empty list of tensors") }
    let d = try first.normalizedDim(dim, "cat")
    let dt = tensors.dropFirst().reduce(first.dtype) { DType.promote($0, $1.dtype) }
    let parts = try tensors.map { try $0.to(dt) }
    var total = 0
    for (i, t) in parts.enumerated() {
      guard t.rank == first.rank else {
        throw TensorError("cat: tensor \(i + 1) has \(t.rank) dimensions but tensor 1 has \(first.rank)")
      }
      for k in 0..<t.rank where k != d && t.shape[k] != first.shape[k] {
        throw TensorError("cat: tensor \(i + 1) has shape \(formatShape(t.shape)) but tensor 1 has \(formatShape(first.shape)); sizes must match except in dim \(d + 1)")
      }
      total = try Checked.add(total, t.shape[d], "cat: the total size of dim \(d + 1)")
    }
    var s = first.shape
    s[d] = total
    let out = try Tensor.empty(s, dtype: dt)
    var start = 0
    for t in parts {
      let dst = Tensor(storage: out.storage, shape: t.shape, strides: out.strides, offset: start * out.strides[d])
      switch dt {
      case .float32: copyInto(dst, t, Float.self)
      case .float64: copyInto(dst, t, Double.self)
      }
      start += t.shape[d]
    }
    let sizes = parts.map { $0.shape[d] }
    return record("cat", out, parts) { g, needs in
      var offset = 0
      return try sizes.enumerated().map { i, n in
        defer { offset += n }
        return needs[i] ? try g.narrow(dim: d, start: offset, length: n) : nil  // each input's window
      }
    }
  }

  /// Splits `dim` into pieces of `size` (the last may be smaller). Reference: torch.split.
  public func split(size: Int, dim: Int) throws -> [Tensor] {
    let d = try normalizedDim(dim, "split")
    guard size > 0 else { throw TensorError("split: size must be positive, got \(size)") }
    let pieces = shape[d] / size + (shape[d] % size == 0 ? 0 : 1)
    guard pieces <= 1 << 20 else { throw TensorError("split: \(pieces) pieces are too many (at most 2^20)") }
    // each piece is a view object, and a Lua value once returned (about 1 KB with its graph node)
    try Storage.checkAllocatable(count: pieces, elementBytes: 1024, what: "split's \(pieces) pieces")
    return try stride(from: 0, to: shape[d], by: size).map { try narrow(dim: d, start: $0, length: Swift.min(size, shape[d] - $0)) }
  }

  /// Splits `dim` into `chunks` nearly equal pieces. Reference: torch.chunk.
  public func chunk(_ chunks: Int, dim: Int) throws -> [Tensor] {
    guard chunks > 0 else { throw TensorError("chunk: number of chunks must be positive, got \(chunks)") }
    let d = try normalizedDim(dim, "chunk")
    return try split(size: Swift.max(1, shape[d] / chunks + (shape[d] % chunks == 0 ? 0 : 1)), dim: d)
  }

  /// Reverses the order of elements along `dims` (a copy). Reference: torch.flip.
  public func flip(dims: [Int]) throws -> Tensor {
    let ds = Set(try dims.map { try normalizedDim($0, "flip") })
    var off = offset, st = strides
    for d in ds where shape[d] > 0 { off += (shape[d] - 1) * strides[d]; st[d] = -strides[d] }
    let view = Tensor(storage: storage, shape: shape, strides: st, offset: off)
    let out = try stridedCopy(view)
    return record("flip", out, [self]) { g, _ in [try g.flip(dims: Array(ds))] }  // its own inverse
  }
}
