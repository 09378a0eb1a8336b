import Dispatch
import Foundation
import Tensor

/// Mini-batches of a data set: shuffled per epoch, transformed, and prepared one batch ahead
/// on a background queue while the current one trains. Everything random is drawn from
/// generators seeded by (seed, epoch, batch), never from the global stream and never from
/// shared state, so the batches are the same for a seed whatever the timing, and a saved
/// (epoch, position) resumes the exact stream.
public final class Loader {
  /// A per-sample transform, applied in order on floats in [0, 1] (as read).
  public enum Transform: Equatable {
    /// `pixels` of `value` on every side (28 → 32 for Fashion-MNIST with 2).
    case pad(pixels: Int, value: Double)
    /// [0, 1] → [lo, hi] (linear).
    case scale(lo: Double, hi: Double)
    /// Horizontal flip with probability p.
    case randomFlip(p: Double)
    /// Box (area) average over factor×factor blocks: PGGAN's levels of detail.
    case downscale(factor: Int)
  }

  public let dataset: Dataset
  public let batchSize: Int, shuffle: Bool, dropLast: Bool, seed: UInt64
  /// Data parallelism: batchSize is the global batch, of which this loader yields rank's share,
  /// every ranks-th sample from rank (stylegan2-ada-pytorch's order[rank::num_replicas]). Every
  /// rank shuffles with the same seed, so the shares are disjoint and cover the global batch.
  public let rank: Int, ranks: Int
  public let transforms: [Transform]
  /// The shape of one transformed sample.
  public let sampleShape: [Int]
  /// Epochs started (the current epoch's number, from 1) and batches handed out in it.
  public private(set) var epoch = 0
  public private(set) var position = 0
  private var order: [Int] = []

  private let queue = DispatchQueue(label: "luagan.loader")
  private var prefetched: (epoch: Int, index: Int, group: DispatchGroup, box: ResultBox)?
  private final class ResultBox: @unchecked Sendable { var result: Result<(Tensor, Tensor), Error>? }

  public init(_ dataset: Dataset, batchSize: Int, shuffle: Bool = true, dropLast: Bool = false, seed: UInt64 = 0,
              transforms: [Transform] = [], rank: Int = 0, ranks: Int = 1) throws {
    guard batchSize >= 1 else { throw TensorError("data.Loader: batchSize must be >= 1, got \(batchSize)") }
    guard ranks >= 1, rank >= 0, rank < ranks else {
      throw TensorError("data.Loader: rank must be in 0..<ranks, got rank \(rank) of \(ranks)")
    }
    guard batchSize % ranks == 0 else {
      throw TensorError("data.Loader: the global batchSize \(batchSize) must be a multiple of the \(ranks) ranks (equal shares)")
    }
    guard ranks == 1 || dropLast else { throw TensorError("data.Loader: several ranks need dropLast (every rank's share the same size)") }
    guard !dropLast || batchSize <= dataset.count else {
      throw TensorError("data.Loader: batchSize \(batchSize) is larger than the data set (\(dataset.count)) with dropLast")
    }
    var shape = [dataset.channels, dataset.height, dataset.width]
    var largest = try Checked.product(shape, "data.Loader: sample size")   // the largest image a transform makes
    for t in transforms {
      switch t {
      case .pad(let p, _):
        guard p >= 0, p <= 4096 else { throw TensorError("data.pad: padding must be in 0..4096, got \(p)") }
        shape[1] += 2 * p; shape[2] += 2 * p
      case .scale(let lo, let hi):
        guard lo.isFinite, hi.isFinite, lo != hi else { throw TensorError("data.scale: bounds must be finite and different") }
      case .randomFlip(let p):
        guard (0...1).contains(p) else { throw TensorError("data.randomFlip: probability must be in [0, 1], got \(p)") }
      case .downscale(let f):
        guard f >= 1, shape[1] % f == 0, shape[2] % f == 0 else {
          throw TensorError("data.downscale: factor \(f) does not divide the image size \(shape[1])x\(shape[2])")
        }
        shape[1] /= f; shape[2] /= f
      }
      largest = Swift.max(largest, try Checked.product(shape, "data.Loader: sample size"))
    }
    // the per-sample scratch images (two of the largest) and the random draws of a batch
    let flips = transforms.filter { if case .randomFlip = $0 { return true } else { return false } }.count
    try Storage.checkAllocatable(count: try Checked.mul(largest, 2, "data.Loader: scratch"), elementBytes: 4,
                                 what: "data.Loader's scratch images of \(largest) values")
    try Storage.checkAllocatable(count: try Checked.mul(flips, Swift.min(batchSize, dataset.count), "data.Loader: draws"),
                                 elementBytes: 16, what: "data.Loader's random draws")
    // One batch is built as an array, a scratch image pair and a tensor: refuse what cannot be.
    let per = try Checked.product(shape, "data.Loader: sample size")
    try Storage.checkAllocatable(count: try Checked.mul(Swift.min(batchSize, dataset.count), per, "data.Loader: batch size"),
                                 elementBytes: 12, what: "data.Loader's batch of \(formatShape(shape)) samples")
    self.dataset = dataset; self.batchSize = batchSize; self.shuffle = shuffle; self.dropLast = dropLast
    self.seed = seed; self.transforms = transforms; self.sampleShape = shape
    self.rank = rank; self.ranks = ranks
  }

  deinit { if let p = prefetched { p.group.wait() } }

  public var batchesPerEpoch: Int {
    dataset.count / batchSize + (dropLast || dataset.count % batchSize == 0 ? 0 : 1)
  }

  /// The last epoch a loader counts to (2^40: far past any run, and room to add to).
  public static let maxEpoch = 1 << 40

  /// A seed for (epoch, batch, stream) derived from the loader's seed (splitmix64 mixing).
  func derivedSeed(_ e: Int, _ b: Int, _ stream: UInt64) -> UInt64 {
    var z = seed &+ 0x9E37_79B9_7F4A_7C15 &* (UInt64(truncatingIfNeeded: e) &+ 1)
    z ^= UInt64(truncatingIfNeeded: b) &* 0xBF58_476D_1CE4_E5B9 &+ stream
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }

  /// Starts epoch `e` (1-based) at batch `position`.
  public func begin(epoch e: Int, position p: Int = 0) throws {
    guard e >= 1, e <= Loader.maxEpoch else {
      throw TensorError("data.Loader: epoch must be in 1..\(Loader.maxEpoch), got \(e) (a saved state from elsewhere?)")
    }
    guard p >= 0, p <= batchesPerEpoch else {
      throw TensorError("data.Loader: cannot start epoch \(e) at batch \(p) (an epoch has \(batchesPerEpoch) batches)")
    }
    if let old = prefetched { old.group.wait(); prefetched = nil }
    epoch = e
    position = p
    order = shuffle ? Generator(seed: derivedSeed(e, 0, 0x5EED)).permutation(dataset.count) : Array(0..<dataset.count)
    prefetch(position)
  }

  /// The next batch of the current epoch (images, 0-based labels as floats), or nil at its end.
  public func nextInEpoch() throws -> (Tensor, Tensor)? {
    guard epoch >= 1 else { throw TensorError("data.Loader: call epoch() (or next()) to start an epoch first") }
    guard position < batchesPerEpoch else { return nil }
    let batch: (Tensor, Tensor)
    if let p = prefetched, p.epoch == epoch, p.index == position {
      p.group.wait()
      prefetched = nil
      batch = try p.box.result!.get()
    } else {
      batch = try makeBatch(position)
    }
    position += 1
    prefetch(position)
    return batch
  }

  /// The next batch, moving on to the next epoch when one ends (for loops by iteration).
  public func next() throws -> (Tensor, Tensor) {
    if epoch == 0 { try begin(epoch: 1) }
    if let b = try nextInEpoch() { return b }
    try begin(epoch: try Checked.add(epoch, 1, "data.Loader: epoch"))
    guard let b = try nextInEpoch() else { throw TensorError("data.Loader: the data set yields no batch") }
    return b
  }

  private func prefetch(_ index: Int) {
    guard index < batchesPerEpoch else { return }
    let group = DispatchGroup(), box = ResultBox()
    let e = epoch
    group.enter()
    queue.async { [self] in
      box.result = Result { try self.makeBatch(index, epoch: e) }
      group.leave()
    }
    prefetched = (e, index, group, box)
  }

  /// Builds batch `index` of the current order: gathers, converts, transforms.
  func makeBatch(_ index: Int, epoch e: Int? = nil) throws -> (Tensor, Tensor) {
    let start = index * batchSize, end = Swift.min(batchSize, dataset.count - start) + start  // index < batchesPerEpoch
    let global = Array(order[start..<end])
    // The random draws of the whole global batch, in order, so a sample is transformed the same
    // whichever rank builds it; then this rank's share.
    let rng = Generator(seed: derivedSeed(e ?? epoch, index, 0xF11B))
    let flipsPerSample = transforms.filter { if case .randomFlip = $0 { return true } else { return false } }.count
    let draws = global.map { _ in (0..<flipsPerSample).map { _ in rng.uniform() } }
    let mine = Array(stride(from: rank, to: global.count, by: ranks))
    let idx = mine.map { global[$0] }
    let (c, h0, w0) = (dataset.channels, dataset.height, dataset.width)
    let per = sampleShape.reduce(1, *)
    // The batch is written straight into its tensor (checked storage: a batch larger than the
    // memory left is an error here, not an abort in a Swift array).
    let batch = try Tensor.empty([idx.count] + sampleShape)
    var labels = [Float](repeating: 0, count: idx.count)
    try batch.withUnsafeMutableBytes { raw in
    let out = raw.bindMemory(to: Float.self)
    try dataset.pixels.withUnsafeBufferPointer { src in
      var buf = [Float](), tmp = [Float]()
      for (k, i) in idx.enumerated() {
        labels[k] = Float(dataset.labels[i])
        var flip = draws[mine[k]].makeIterator()
        var h = h0, w = w0
        let base = i * c * h0 * w0
        try Storage.checkAllocatable(count: per, elementBytes: 8, what: "data.Loader's scratch images")
        buf = (0..<(c * h * w)).map { Float(src[base + $0]) / 255 }
        for t in transforms {
          switch t {
          case .pad(let p, let v):
            let (nh, nw) = (h + 2 * p, w + 2 * p)
            tmp = [Float](repeating: Float(v), count: c * nh * nw)
            for ch in 0..<c { for y in 0..<h { for x in 0..<w { tmp[(ch * nh + y + p) * nw + x + p] = buf[(ch * h + y) * w + x] } } }
            swap(&buf, &tmp); h = nh; w = nw
          case .scale(let lo, let hi):
            let a = Float(hi - lo), b = Float(lo)
            for j in buf.indices { buf[j] = buf[j] * a + b }
          case .randomFlip(let p):
            if flip.next()! < p {
              for ch in 0..<c { for y in 0..<h {
                let row = (ch * h + y) * w
                for x in 0..<(w / 2) { buf.swapAt(row + x, row + w - 1 - x) }
              } }
            }
          case .downscale(let f):
            let (nh, nw) = (h / f, w / f)
            tmp = [Float](repeating: 0, count: c * nh * nw)
            let inv = 1 / Float(f * f)
            for ch in 0..<c { for y in 0..<nh { for x in 0..<nw {
              var s: Float = 0
              for dy in 0..<f { for dx in 0..<f { s += buf[(ch * h + y * f + dy) * w + x * f + dx] } }
              tmp[(ch * nh + y) * nw + x] = s * inv
            } } }
            swap(&buf, &tmp); h = nh; w = nw
          }
        }
        for j in 0..<per { out[k * per + j] = buf[j] }
      }
    }
    }
    return (batch, try Tensor.from(labels, shape: [idx.count]))
  }
}
