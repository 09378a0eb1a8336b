import CZlib
import Foundation
import Media
import Tensor

/// An image-classification data set held in memory as 8-bit pixels (N, C, H, W), with 0-based
/// class labels and class names. `images()` gives floats in [0, 1].
public final class Dataset {
  public let name: String
  public let count: Int, channels: Int, height: Int, width: Int
  public let pixels: [UInt8]
  public let labels: [Int]
  public let classNames: [String]
  /// Files left out when the set was prepared because they could not be read, each with why.
  public var skipped: [String] = []
  private var cachedImages: Tensor?

  public init(name: String, count: Int, channels: Int, height: Int, width: Int, pixels: [UInt8], labels: [Int], classNames: [String]) throws {
    guard pixels.count == count * channels * height * width, labels.count == count else {
      throw TensorError("\(name): \(pixels.count) pixel bytes and \(labels.count) labels for \(count) images of \(channels)x\(height)x\(width)")
    }
    for (i, l) in labels.enumerated() where l < 0 || l >= classNames.count {
      throw TensorError("\(name): label \(l) of image \(i + 1) is not one of the \(classNames.count) classes")
    }
    self.name = name; self.count = count; self.channels = channels; self.height = height; self.width = width
    self.pixels = pixels; self.labels = labels; self.classNames = classNames
  }

  /// All images as a float (N, C, H, W) tensor in [0, 1] (made once, then shared).
  public func images() throws -> Tensor {
    if let c = cachedImages { return c }
    let made = try Tensor.from(pixels.map { Float($0) / 255 }, shape: [count, channels, height, width])
    cachedImages = made
    return made
  }

  /// `perClass` images of each class (all of a smaller class), drawn in a seeded random order
  /// and kept in their original order: the small-data setting (600 per class = 10% of
  /// Fashion-MNIST). The same seed gives the same images.
  public func subset(perClass: Int, seed: UInt64) throws -> Dataset {
    guard perClass > 0 else { throw TensorError("subset: perClass must be positive, got \(perClass)") }
    var taken = [Int](repeating: 0, count: classNames.count)
    var keep: [Int] = []
    for i in Generator(seed: seed).permutation(count) where taken[labels[i]] < perClass {
      taken[labels[i]] += 1
      keep.append(i)
    }
    keep.sort()
    let per = channels * height * width
    var px = [UInt8]()
    px.reserveCapacity(keep.count * per)
    for i in keep { px += pixels[(i * per)..<((i + 1) * per)] }
    return try Dataset(name: "\(name) (\(perClass) per class)", count: keep.count, channels: channels, height: height, width: width,
                       pixels: px, labels: keep.map { labels[$0] }, classNames: classNames)
  }

  /// Pixel mean and standard deviation over the whole set, in [0, 1] units.
  public func pixelStatistics() -> (mean: Double, std: Double) {
    var s = 0.0, s2 = 0.0
    for p in pixels { let v = Double(p) / 255; s += v; s2 += v * v }
    let n = Double(pixels.count)
    let mean = s / n
    return (mean, (s2 / n - mean * mean).squareRoot())
  }
}

/// Readers for the data sets luagan knows.
public enum DatasetReaders {
  public static let fashionMNISTClasses = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
  public static let cifar10Classes = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
  /// Where Debian's dataset-fashion-mnist package puts the files (`dpkg -L dataset-fashion-mnist`).
  public static let fashionMNISTRoot = "/usr/share/datasets/fashion-mnist"

  /// Bytes a data set file may inflate to unless the caller allows more (`maxBytes`).
  public static let defaultMaxBytes = 4 << 30

  /// The content of a file, gunzipped if it is gzip (zlib reads plain files as they are), at
  /// most `limit` bytes: a file that inflates to more is an error, found without inflating it
  /// all (a 1.5 MB gzip can inflate to gigabytes).
  /// With `prefix`, the first `limit` bytes are returned without looking further.
  public static func readMaybeGzip(_ path: String, limit: Int = defaultMaxBytes, prefix: Bool = false) throws -> [UInt8] {
    guard FileManager.default.fileExists(atPath: path) else { throw TensorError("no such file '\(path)'") }
    guard let f = gzopen(path, "rb") else { throw TensorError("cannot open '\(path)'") }
    defer { gzclose(f) }
    var out: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 1 << 20)
    while true {
      if prefix && out.count >= limit { return Array(out.prefix(limit)) }
      guard out.count <= limit else {
        throw TensorError("'\(path)' holds more than \(Storage.humanBytes(limit)) (more than its header declares, or more than the limit maxBytes)")
      }
      let want = Swift.min(chunk.count, limit + 1 - out.count)
      let n = chunk.withUnsafeMutableBytes { gzread(f, $0.baseAddress, UInt32(want)) }
      if n < 0 {
        var code: Int32 = 0
        let msg = gzerror(f, &code).map { String(cString: $0) } ?? "read error"
        throw TensorError("'\(path)' is corrupt: \(msg)")
      }
      if n == 0 { break }
      // growing doubles the buffer (old and new both alive while it copies): checked first
      if out.count + Int(n) > out.capacity {
        try Storage.checkAllocatable(count: (out.count + Int(n)) * 3, elementBytes: 1, what: "the contents of '\(path)'")
      }
      out.append(contentsOf: chunk[0..<Int(n)])
    }
    // A truncated gzip stream reads as a short file without an error; zlib flags it at EOF.
    var code: Int32 = 0
    _ = gzerror(f, &code)
    if code != Z_OK && code != Z_STREAM_END { throw TensorError("'\(path)' is truncated or corrupt (zlib error \(code))") }
    return out
  }

  static func bigEndian32(_ b: [UInt8], _ at: Int) -> Int {
    Int(b[at]) << 24 | Int(b[at + 1]) << 16 | Int(b[at + 2]) << 8 | Int(b[at + 3])
  }

  /// An IDX image file (magic 0x803: N×rows×cols unsigned bytes) and its label file (0x801).
  /// The headers are read first; the pixels are read only up to the size the header declares,
  /// which must be within `maxBytes`.
  public static func idx(images imagesPath: String, labels labelsPath: String, name: String, classNames: [String],
                         maxBytes: Int = defaultMaxBytes) throws -> Dataset {
    let img: [UInt8], lab: [UInt8]
    do {
      let head = try readMaybeGzip(imagesPath, limit: 16, prefix: true)
      guard head.count >= 16, bigEndian32(head, 0) == 0x803 else {
        throw TensorError("'\(imagesPath)' is not an IDX image file (expected magic 0x00000803)")
      }
      let n = bigEndian32(head, 4), rows = bigEndian32(head, 8), cols = bigEndian32(head, 12)
      guard n > 0, rows > 0, cols > 0 else { throw TensorError("'\(imagesPath)' declares \(n) images of \(rows)x\(cols)") }
      let declared = try Checked.add(Checked.product([n, rows, cols], "'\(imagesPath)': image size"), 16, "'\(imagesPath)'")
      guard declared <= maxBytes else {
        throw TensorError("'\(imagesPath)' declares \(n) images of \(rows)x\(cols) (\(Storage.humanBytes(declared))), more than maxBytes \(Storage.humanBytes(maxBytes))")
      }
      img = try readMaybeGzip(imagesPath, limit: declared)
      guard img.count == declared else {
        throw TensorError("'\(imagesPath)' declares \(n) images of \(rows)x\(cols) but holds \(img.count - 16) pixel bytes (truncated?)")
      }
      lab = try readMaybeGzip(labelsPath, limit: n + 8)
    } catch let e as TensorError {
      throw TensorError("\(name): \(e.message)")
    }
    guard lab.count >= 8, bigEndian32(lab, 0) == 0x801 else {
      throw TensorError("\(name): '\(labelsPath)' is not an IDX label file (expected magic 0x00000801)")
    }
    let n = bigEndian32(img, 4), rows = bigEndian32(img, 8), cols = bigEndian32(img, 12)
    let nl = bigEndian32(lab, 4)
    guard nl == n, lab.count == 8 + n else {
      throw TensorError("\(name): '\(labelsPath)' has \(lab.count - 8) labels (declares \(nl)) for \(n) images")
    }
    // the pixels copied out of the file's bytes, and a label per image
    try Storage.checkAllocatable(count: img.count + 8 * n, elementBytes: 1, what: "\(name)'s \(n) images")
    return try Dataset(name: name, count: n, channels: 1, height: rows, width: cols, pixels: Array(img[16...]),
                       labels: lab[8...].map { Int($0) }, classNames: classNames)
  }

  static func findFile(_ root: String, _ candidates: [String]) -> String? {
    for c in candidates {
      let p = (root as NSString).appendingPathComponent(c)
      if FileManager.default.fileExists(atPath: p) { return p }
    }
    return nil
  }

  /// MNIST-format files (Fashion-MNIST or MNIST) for a split, gzipped or not.
  static func mnistFormat(root: String, split: String, name: String, classNames: [String], hint: String,
                          maxBytes: Int) throws -> Dataset {
    guard split == "train" || split == "test" else { throw TensorError("\(name): split must be 'train' or 'test', got '\(split)'") }
    let prefix = split == "train" ? "train" : "t10k"
    let imgNames = ["\(prefix)-images-idx3-ubyte.gz", "\(prefix)-images-idx3-ubyte", "\(prefix)-images.idx3-ubyte"]
    let labNames = ["\(prefix)-labels-idx1-ubyte.gz", "\(prefix)-labels-idx1-ubyte", "\(prefix)-labels.idx1-ubyte"]
    guard let ip = findFile(root, imgNames), let lp = findFile(root, labNames) else {
      throw TensorError("\(name): no \(split) files in '\(root)' (expected \(imgNames[0]) and \(labNames[0])); \(hint)")
    }
    return try idx(images: ip, labels: lp, name: name, classNames: classNames, maxBytes: maxBytes)
  }

  public static func fashionMNIST(root: String = fashionMNISTRoot, split: String = "train", maxBytes: Int = defaultMaxBytes) throws -> Dataset {
    try mnistFormat(root: root, split: split, name: "data.fashionMNIST", classNames: fashionMNISTClasses,
                    hint: "install Debian's dataset-fashion-mnist (sudo apt-get install dataset-fashion-mnist) or pass root=",
                    maxBytes: maxBytes)
  }

  public static func mnist(root: String, split: String = "train", maxBytes: Int = defaultMaxBytes) throws -> Dataset {
    try mnistFormat(root: root, split: split, name: "data.mnist", classNames: (0...9).map(String.init),
                    hint: "download MNIST's four IDX files into that folder", maxBytes: maxBytes)
  }

  /// CIFAR-10's binary version: data_batch_1..5.bin (train) or test_batch.bin, records of one
  /// label byte and 3072 pixel bytes (R, G, B planes of 32×32), in `root` or its
  /// cifar-10-batches-bin subfolder.
  public static func cifar10(root: String, split: String = "train", maxBytes: Int = defaultMaxBytes) throws -> Dataset {
    guard split == "train" || split == "test" else { throw TensorError("data.cifar10: split must be 'train' or 'test', got '\(split)'") }
    var dir = root
    if findFile(root, ["data_batch_1.bin", "test_batch.bin"]) == nil,
       findFile((root as NSString).appendingPathComponent("cifar-10-batches-bin"), ["data_batch_1.bin", "test_batch.bin"]) != nil {
      dir = (root as NSString).appendingPathComponent("cifar-10-batches-bin")
    }
    let files = split == "train" ? (1...5).map { "data_batch_\($0).bin" } : ["test_batch.bin"]
    var pixels: [UInt8] = [], labels: [Int] = []
    for f in files {
      let path = (dir as NSString).appendingPathComponent(f)
      guard FileManager.default.fileExists(atPath: path) else {
        throw TensorError("data.cifar10: missing '\(path)' (download the CIFAR-10 binary version, cifar-10-binary.tar.gz, and pass its folder as root=)")
      }
      let bytes: [UInt8]
      do { bytes = try readMaybeGzip(path, limit: maxBytes) } catch let e as TensorError { throw TensorError("data.cifar10: \(e.message)") }
      try Storage.checkAllocatable(count: pixels.count + bytes.count * 2, elementBytes: 1, what: "data.cifar10's images")
      guard bytes.count > 0, bytes.count % 3073 == 0 else {
        throw TensorError("data.cifar10: '\(path)' has \(bytes.count) bytes, not a whole number of 3073-byte records (truncated?)")
      }
      for r in 0..<(bytes.count / 3073) {
        let base = r * 3073
        guard bytes[base] < 10 else { throw TensorError("data.cifar10: '\(path)' record \(r + 1) has label \(bytes[base]), expected 0..9") }
        labels.append(Int(bytes[base]))
        pixels.append(contentsOf: bytes[(base + 1)..<(base + 3073)])
      }
    }
    var names = cifar10Classes
    if let meta = try? String(contentsOfFile: (dir as NSString).appendingPathComponent("batches.meta.txt"), encoding: .utf8) {
      let lines = meta.split(whereSeparator: \.isNewline).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
      if lines.count == 10 { names = lines }
    }
    return try Dataset(name: "data.cifar10", count: labels.count, channels: 3, height: 32, width: 32, pixels: pixels, labels: labels, classNames: names)
  }
}
