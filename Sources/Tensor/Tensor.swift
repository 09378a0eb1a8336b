/// An n-dimensional array of float32 or float64 values: a strided view over a shared `Storage`,
/// plus what autograd needs (DESIGN.md house decision 4: one Tensor class, dtype at run time).
///
/// Views (`reshape` of contiguous data, `permute`, `expand`, `narrow`, `select`) share storage;
/// every other op returns a fresh contiguous tensor. Shapes and strides are in elements.
public final class Tensor {
  public let storage: Storage
  public let shape: [Int]
  public let strides: [Int]
  public let offset: Int
  public let numel: Int

  /// Whether gradients flow to this tensor. Set on leaves by the user; set on op outputs when
  /// any input requires grad while recording is on.
  public var requiresGrad: Bool
  /// Accumulated gradient of a leaf, filled by `backward`.
  public var grad: Tensor?
  /// The op that produced this tensor (nil for leaves and for results computed without grad).
  var node: Node?
  /// Set by upsampleNearest: this tensor is `source` upsampled by `factor`. A pullback that
  /// must keep this tensor keeps the factor²-times smaller source instead, and upsamples it
  /// again when it runs (a generator's convolutions read upsampled activations).
  var upsampledFrom: (source: Tensor, factor: Int)?

  public var dtype: DType { storage.dtype }
  public var rank: Int { shape.count }
  public var isLeaf: Bool { node == nil }
  /// The name of the op that produced this tensor, if it is part of a graph.
  public var gradFnName: String? { node?.op }

  init(storage: Storage, shape: [Int], strides: [Int], offset: Int) {
    self.storage = storage
    self.shape = shape
    self.strides = strides
    self.offset = offset
    self.numel = shape.reduce(1, *)
    self.requiresGrad = false
  }

  /// A fresh contiguous tensor with uninitialised contents.
  public static func empty(_ shape: [Int], dtype: DType = .float32) throws -> Tensor {
    let n = try checkedCount(shape)
    return Tensor(storage: try Storage(count: n, dtype: dtype), shape: shape, strides: contiguousStrides(shape), offset: 0)
  }

  /// A fresh contiguous tensor of zeros.
  public static func zeros(_ shape: [Int], dtype: DType = .float32) throws -> Tensor {
    let n = try checkedCount(shape)
    return Tensor(storage: try Storage(count: n, dtype: dtype, zeroed: true), shape: shape, strides: contiguousStrides(shape), offset: 0)
  }

  /// A fresh contiguous tensor of ones.
  public static func ones(_ shape: [Int], dtype: DType = .float32) throws -> Tensor { try full(shape, 1, dtype: dtype) }

  /// A tensor filled with `value`.
  public static func full(_ shape: [Int], _ value: Double, dtype: DType = .float32) throws -> Tensor {
    let t = try empty(shape, dtype: dtype)
    t.fillUnchecked(value)
    return t
  }

  /// A 0-dimensional tensor holding `value`.
  public static func scalar(_ value: Double, dtype: DType = .float32) throws -> Tensor {
    let t = try empty([], dtype: dtype)  // fails only past tensor.setMemoryLimit or when malloc does
    t.fillUnchecked(value)
    return t
  }

  /// A tensor with the given values (row-major) and shape.
  public static func from(_ values: [Double], shape: [Int], dtype: DType = .float32) throws -> Tensor {
    let n = try checkedCount(shape)
    guard n == values.count else {
      throw TensorError("tensor: \(values.count) values do not fill shape \(formatShape(shape)) (\(n) elements)")
    }
    let t = try empty(shape, dtype: dtype)
    switch dtype {
    case .float32:
      let p = t.mutablePointer(Float.self)
      for i in 0..<n { p[i] = Float(values[i]) }
    case .float64:
      let p = t.mutablePointer(Double.self)
      for i in 0..<n { p[i] = values[i] }
    }
    return t
  }

  public static func from(_ values: [Float], shape: [Int]) throws -> Tensor {
    let n = try checkedCount(shape)
    guard n == values.count else { throw TensorError("tensor: \(values.count) values do not fill shape \(formatShape(shape))") }
    let t = try empty(shape, dtype: .float32)
    values.withUnsafeBufferPointer { t.mutablePointer(Float.self).update(from: $0.baseAddress!, count: n) }
    return t
  }

  /// A new float32 tensor whose values `fill` writes in row-major order (no intermediate array).
  public static func filled(_ shape: [Int], _ fill: (UnsafeMutableBufferPointer<Float>) throws -> Void) throws -> Tensor {
    let t = try empty(shape, dtype: .float32)
    try fill(UnsafeMutableBufferPointer(start: t.mutablePointer(Float.self), count: t.numel))
    return t
  }

  /// The most dimensions a tensor may have (PyTorch's limit too): printing, indexing and
  /// reading nested tables recurse once per dimension.
  public static let maxRank = 64

  /// Element count of `shape`, refusing negative sizes and overflow. The product of the sizes
  /// with zeros counted as ones must fit too, so that no stride, and no product of some of the
  /// sizes (flatten of an empty tensor), can overflow either.
  public static func checkedCount(_ shape: [Int]) throws -> Int {
    guard shape.count <= maxRank else { throw TensorError("a tensor of \(shape.count) dimensions: at most \(maxRank) are allowed") }
    var n = 1, span = 1
    for d in shape {
      guard d >= 0 else { throw TensorError("invalid shape \(formatShape(shape)): sizes must be >= 0") }
      let (m, o) = n.multipliedReportingOverflow(by: d), (sp, o2) = span.multipliedReportingOverflow(by: Swift.max(d, 1))
      guard !o, !o2 else { throw TensorError("shape \(formatShape(shape)) has too many elements") }
      n = m
      span = sp
    }
    return n
  }

  public static func contiguousStrides(_ shape: [Int]) -> [Int] {
    var strides = [Int](repeating: 1, count: shape.count)
    var s = 1
    for i in stride(from: shape.count - 1, through: 0, by: -1) {
      strides[i] = s
      s *= Swift.max(shape[i], 1)
    }
    return strides
  }

  /// True when the elements are laid out densely in row-major order.
  public var isContiguous: Bool {
    var s = 1
    for i in stride(from: rank - 1, through: 0, by: -1) where shape[i] != 1 {
      if strides[i] != s { return false }
      s *= shape[i]
    }
    return true
  }

  // MARK: - Raw access (contiguous tensors only)

  @inline(__always) func pointer<T>(_: T.Type) -> UnsafeMutablePointer<T> { storage.pointer(T.self) + offset }
  /// Pointer for writing into a freshly made tensor (no version bump: nobody saw it yet).
  @inline(__always) func mutablePointer<T>(_: T.Type) -> UnsafeMutablePointer<T> { storage.pointer(T.self) + offset }

  func fillUnchecked(_ value: Double) {
    precondition(isContiguous)
    switch dtype {
    case .float32: pointer(Float.self).update(repeating: Float(value), count: numel)
    case .float64: pointer(Double.self).update(repeating: value, count: numel)
    }
  }

  /// The values in row-major order, as Doubles.
  public func toArray() throws -> [Double] {
    try Storage.checkAllocatable(count: numel, elementBytes: 8, what: "an array of the tensor's values")
    let c = try contiguousData()
    switch dtype {
    case .float32: let p = c.pointer(Float.self); return (0..<numel).map { Double(p[$0]) }
    case .float64: let p = c.pointer(Double.self); return Array(UnsafeBufferPointer(start: p, count: numel))
    }
  }

  /// Runs `body` on the bytes of this tensor, which must be contiguous, and marks it written:
  /// for transports that fill a tensor in place (MPI's all-reduce and broadcast). Outside the
  /// graph, like any in-place write; the version bump makes a backward that saved it fail.
  public func withUnsafeMutableBytes<R>(_ body: (UnsafeMutableRawBufferPointer) throws -> R) throws -> R {
    guard isContiguous else { throw TensorError("in-place transfer: the tensor must be contiguous (call :contiguous() first)") }
    bumpVersion()
    switch dtype {
    case .float32: return try body(UnsafeMutableRawBufferPointer(UnsafeMutableBufferPointer(start: pointer(Float.self), count: numel)))
    case .float64: return try body(UnsafeMutableRawBufferPointer(UnsafeMutableBufferPointer(start: pointer(Double.self), count: numel)))
    }
  }

  /// Runs `body` on the bytes of this tensor's elements in row-major order, read only: the
  /// tensor's own memory when it is contiguous, else a contiguous copy (checked allocation).
  public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) throws -> R {
    let c = try contiguousData()
    return try body(UnsafeRawBufferPointer(start: c.storage.raw + c.offset * dtype.byteSize, count: numel * dtype.byteSize))
  }

  /// The values in row-major order, as Floats.
  public func toFloatArray() throws -> [Float] {
    try Storage.checkAllocatable(count: numel, elementBytes: 4, what: "an array of the tensor's values")
    let c = try contiguousData()
    switch dtype {
    case .float32: return Array(UnsafeBufferPointer(start: c.pointer(Float.self), count: numel))
    case .float64: let p = c.pointer(Double.self); return (0..<numel).map { Float(p[$0]) }
    }
  }

  /// The single value of a one-element tensor.
  public func item() throws -> Double {
    guard numel == 1 else { throw TensorError("item: expected a tensor with one element, got shape \(formatShape(shape))") }
    switch dtype {
    case .float32: return Double(storage.pointer(Float.self)[offset])
    case .float64: return storage.pointer(Double.self)[offset]
    }
  }

  /// A contiguous tensor with the same values, without recording (shares storage if possible).
  /// Throws when a copy is needed and cannot be allocated (an expanded view can be huge).
  func contiguousData() throws -> Tensor {
    if isContiguous { return self }
    return try stridedCopy(self)
  }

  /// A new Tensor object over the same storage and layout, outside any graph.
  public func detach() -> Tensor { Tensor(storage: storage, shape: shape, strides: strides, offset: offset) }

  /// Marks the storage as written in place.
  func bumpVersion() { storage.version &+= 1 }
}
