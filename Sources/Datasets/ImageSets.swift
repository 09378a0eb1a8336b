import Foundation
import Media
import Tensor

/// How images of any size become training samples: `channels` (1: luminance
/// 0.299R + 0.587G + 0.114B; 3: gray replicated, alpha dropped), made square by `fit`, then
/// resized to size×size (box averaging when shrinking, bilinear when growing).
public struct ImagePreparation: Sendable {
  public enum Fit: String, CaseIterable, Sendable {
    case crop      // the central square of side min(H, W), as BigGAN-PyTorch's CenterCropLongEdge
    case pad       // the image centred on a black square of side max(H, W)
    case stretch   // resized as it is, aspect ratio lost
  }
  public let size: Int, channels: Int, fit: Fit
  /// Unreadable images (corrupt, truncated, not an image) are left out and named in the data
  /// set's `skipped` list when true; an error when false.
  public let skipUnreadable: Bool

  public init(size: Int, channels: Int, fit: Fit, skipUnreadable: Bool = true, what: String) throws {
    guard size > 0, size <= 4096 else { throw TensorError("\(what): size must be in 1..4096, got \(size)") }
    guard channels == 1 || channels == 3 else { throw TensorError("\(what): channels must be 1 or 3, got \(channels)") }
    self.size = size; self.channels = channels; self.fit = fit; self.skipUnreadable = skipUnreadable
  }

  /// A decoded image (C, H, W) in [0, 1] as size×size 8-bit samples (C', size, size).
  public func prepare(_ decoded: Tensor) throws -> [UInt8] {
    var img = decoded
    let c = img.shape[0]
    if channels == 1 && c >= 3 {
      img = try img.narrow(dim: 0, start: 0, length: 1).mul(Tensor.scalar(0.299))
        .add(img.narrow(dim: 0, start: 1, length: 1).mul(Tensor.scalar(0.587)))
        .add(img.narrow(dim: 0, start: 2, length: 1).mul(Tensor.scalar(0.114)))
    } else if channels == 1 {
      img = try img.narrow(dim: 0, start: 0, length: 1)
    } else if c < 3 {
      img = try img.narrow(dim: 0, start: 0, length: 1).expand([3, img.shape[1], img.shape[2]])
    } else {
      img = try img.narrow(dim: 0, start: 0, length: 3)
    }
    let (h, w) = (img.shape[1], img.shape[2])
    switch fit {
    case .crop where h != w:
      let side = Swift.min(h, w)
      img = try img.narrow(dim: 1, start: (h - side) / 2, length: side).narrow(dim: 2, start: (w - side) / 2, length: side)
    case .pad where h != w:
      // Resized first, then centred on the black square: the square is made at the output size,
      // never at max(H, W) (a 1 x 20,000 image would otherwise need a 20,000² square).
      let side = Swift.max(h, w)
      let (th, tw) = (Swift.max(1, (h * size + side / 2) / side), Swift.max(1, (w * size + side / 2) / side))
      let fitted = try Images.resize(img, height: th, width: tw, mode: h >= th && w >= tw ? .box : .bilinear)
      let square = try Tensor.zeros([img.shape[0], size, size])
      _ = try square.narrow(dim: 1, start: (size - th) / 2, length: th).narrow(dim: 2, start: (size - tw) / 2, length: tw).copy_(fitted)
      return try square.toArray().map { UInt8(Swift.min(255, Swift.max(0, ($0 * 255).rounded()))) }
    default: break
    }
    let shrink = img.shape[1] >= size && img.shape[2] >= size
    img = try Images.resize(img, height: size, width: size, mode: shrink ? .box : .bilinear)
    return try img.toArray().map { UInt8(Swift.min(255, Swift.max(0, ($0 * 255).rounded()))) }
  }
}

/// Images from folders and zips, prepared once and cached as 8-bit pixels (the role of
/// BigGAN-PyTorch's HDF5 preparation): the cache is an `.npz` (pixels (N, C, S, S) uint8,
/// labels (N,) int64, plus classes.json), keyed by the source's names, sizes and times and by
/// the preparation, so a changed source or option prepares again.
public enum ImageSets {
  public static let imageExtensions: Set<String> = ["png", "jpg", "jpeg"]
  public typealias Progress = (_ done: Int, _ total: Int) -> Void

  static func isImage(_ name: String) -> Bool { imageExtensions.contains((name as NSString).pathExtension.lowercased()) }

  /// A folder of class sub-folders (labels from the sorted folder names) or, when it has no
  /// sub-folder holding images, a flat folder of one class. PNG and JPEG files, sorted.
  public static func imageFolder(root: String, prep: ImagePreparation, cacheDir: String?, progress: Progress?) throws -> Dataset {
    let what = "data.imageFolder"
    var isDir: ObjCBool = false
    guard FileManager.default.fileExists(atPath: root, isDirectory: &isDir), isDir.boolValue else {
      throw TensorError("\(what): no folder '\(root)'")
    }
    let fm = FileManager.default
    let top = try fm.contentsOfDirectory(atPath: root).filter { !$0.hasPrefix(".") }.sorted()
    func imagesUnder(_ dir: String) -> [String] {
      (fm.enumerator(atPath: dir)?.allObjects as? [String] ?? []).filter(isImage).sorted()
        .map { (dir as NSString).appendingPathComponent($0) }
    }
    var classes: [String] = [], files: [(String, Int)] = []
    for name in top {
      let dir = (root as NSString).appendingPathComponent(name)
      var d: ObjCBool = false
      guard fm.fileExists(atPath: dir, isDirectory: &d), d.boolValue else { continue }
      let found = imagesUnder(dir)
      if found.isEmpty { continue }
      files += found.map { ($0, classes.count) }
      classes.append(name)
    }
    if classes.isEmpty {      // flat: the images directly in root are one class
      files = top.filter(isImage).map { ((root as NSString).appendingPathComponent($0), 0) }
      classes = [((root as NSString).standardizingPath as NSString).lastPathComponent]
    }
    guard !files.isEmpty else {
      throw TensorError("\(what): no PNG or JPEG files under '\(root)' (expected \(root)/<class>/*.png|jpg, or images in it)")
    }
    var key = "folder|\(root)|\(prep.size)|\(prep.channels)|\(prep.fit.rawValue)|\(prep.skipUnreadable)"
    for (path, label) in files {
      var st = stat()
      _ = stat(path, &st)
      key += "|\(path)|\(label)|\(st.st_size)|\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)"
    }
    return try cached(key: key, source: root, what: what, cacheDir: cacheDir) {
      try decodeAll(files.count, prep: prep, name: "data.imageFolder('\(root)')", classes: classes, progress: progress) { i in
        (try Images.decode([UInt8](readRegularFile(files[i].0, what: what, limit: 1 << 31)), name: files[i].0), files[i].1)
      }
    }
  }

  /// A zip in stylegan2-ada's dataset_tool layout: image entries (PNG or JPEG, sorted by name)
  /// and an optional `dataset.json` {"labels": [[name, label], ...] or null} with 0-based
  /// integer labels; without labels every image is of one class.
  public static func zipDataset(path: String, prep: ImagePreparation, cacheDir: String?, progress: Progress?) throws -> Dataset {
    let what = "data.zipDataset"
    let zip = try ZipReader(path, what: what)
    let images = zip.entries.filter { !$0.name.hasSuffix("/") && isImage($0.name) }.sorted { $0.name < $1.name }
    guard !images.isEmpty else { throw TensorError("\(what): '\(path)' holds no PNG or JPEG entries") }
    var labelOf: [String: Int]? = nil
    if let meta = zip.entry(named: "dataset.json") {
      let text = try zip.read(meta, limit: 256 << 20, what: what)
      let json: JSON
      do { json = try JSON.parse(text, name: "dataset.json") } catch {
        throw TensorError("\(what): '\(path)' dataset.json is not valid JSON")
      }
      if case .array(let pairs)? = json["labels"] {
        var map: [String: Int] = [:]
        for (k, p) in pairs.enumerated() {
          guard case .array(let pair) = p, pair.count == 2, case .string(let name) = pair[0], case .int(let label) = pair[1],
                label >= 0, label < 1 << 20 else {
            throw TensorError("\(what): '\(path)' dataset.json label \(k + 1) is not a [name, non-negative integer] pair")
          }
          map[name] = label
        }
        labelOf = map
      }
    }
    var labels = [Int]()
    for e in images {
      if let map = labelOf {
        guard let l = map[e.name] else { throw TensorError("\(what): '\(path)' dataset.json has no label for '\(e.name)'") }
        labels.append(l)
      } else {
        labels.append(0)
      }
    }
    let classes = labelOf == nil ? [((path as NSString).lastPathComponent as NSString).deletingPathExtension]
      : (0...(labels.max() ?? 0)).map(String.init)
    var st = stat()
    _ = stat(path, &st)
    let key = "zip|\(path)|\(st.st_size)|\(st.st_mtim.tv_sec).\(st.st_mtim.tv_nsec)|\(prep.size)|\(prep.channels)|\(prep.fit.rawValue)"
      + "|\(prep.skipUnreadable)"
    return try cached(key: key, source: path, what: what, cacheDir: cacheDir) {
      try decodeAll(images.count, prep: prep, name: "data.zipDataset('\(path)')", classes: classes, progress: progress) { i in
        let bytes = try zip.read(images[i], limit: 1 << 30, what: what)
        return (try Images.decode(bytes, name: "\(path):\(images[i].name)"), labels[i])
      }
    }
  }

  static func decodeAll(_ count: Int, prep: ImagePreparation, name: String, classes: [String], progress: Progress?,
                        _ item: (Int) throws -> (Tensor, Int)) throws -> Dataset {
    let per = prep.channels * prep.size * prep.size
    try Storage.checkAllocatable(count: try Checked.mul(count, per, name), elementBytes: 1, what: "\(name)'s pixels")
    var pixels = [UInt8](), labels = [Int](), skipped = [String]()
    pixels.reserveCapacity(count * per)
    for i in 0..<count {
      let img: Tensor, label: Int
      do { (img, label) = try item(i) } catch let e as TensorError {
        let message = e.message.hasPrefix("data.") ? e.message : "\(name.prefix { $0 != "(" }): \(e.message)"
        guard prep.skipUnreadable else { throw TensorError(message) }
        skipped.append(e.message)
        progress?(i + 1, count)
        continue
      }
      pixels += try prep.prepare(img)
      labels.append(label)
      progress?(i + 1, count)
    }
    guard !labels.isEmpty else {
      throw TensorError("\(name.prefix { $0 != "(" }): none of the \(count) images could be read (the first: \(skipped.first ?? "?"))")
    }
    let ds = try Dataset(name: name, count: labels.count, channels: prep.channels, height: prep.size, width: prep.size,
                         pixels: pixels, labels: labels, classNames: classes)
    ds.skipped = skipped
    return ds
  }

  /// The prepared set from cacheDir when its key matches, else `make()` and a new cache entry.
  static func cached(key: String, source: String, what: String, cacheDir: String?, _ make: () throws -> Dataset) throws -> Dataset {
    guard let cacheDir else { return try make() }
    let stem = ((source as NSString).standardizingPath as NSString).lastPathComponent
    let path = (cacheDir as NSString).appendingPathComponent("\(stem)-\(fnv1a(key)).npz")
    if FileManager.default.fileExists(atPath: path), let ds = try? readCache(path, key: key, name: "\(what)('\(source)')") { return ds }
    let ds = try make()
    do { try ensureDirectory(cacheDir) } catch let e as TensorError { throw TensorError("\(what): cache: \(e.message)") }
    try writeCache(ds, key: key, to: path)
    return ds
  }

  static func fnv1a(_ s: String) -> String {
    var h: UInt64 = 0xcbf2_9ce4_8422_2325
    for b in s.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01b3 }
    return String(h, radix: 16)
  }

  static func writeCache(_ ds: Dataset, key: String, to path: String) throws {
    // the images left out are remembered, so a run from the cache warns as the first one did
    let meta = try JSON.object([("key", .string(key)), ("classes", .array(ds.classNames.map { .string($0) })),
                                ("skipped", .array(ds.skipped.map { .string($0) }))]).serialized()
    let labels = ds.labels.flatMap { l in withUnsafeBytes(of: Int64(l).littleEndian) { Array($0) } }
    try ZipWriter.write([
      (name: "pixels.npy", data: NumPyFiles.npyHeader(descr: "|u1", shape: [ds.count, ds.channels, ds.height, ds.width]) + ds.pixels),
      (name: "labels.npy", data: NumPyFiles.npyHeader(descr: "<i8", shape: [ds.count]) + labels),
      (name: "classes.json", data: Array(meta.utf8)),
    ], to: path)
  }

  static func readCache(_ path: String, key: String, name: String) throws -> Dataset? {
    let zip = try ZipReader(path, what: "cache")
    guard let m = zip.entry(named: "classes.json"), let p = zip.entry(named: "pixels.npy"),
          let l = zip.entry(named: "labels.npy") else { return nil }
    let meta = try JSON.parse(try zip.read(m, limit: 64 << 20, what: "cache"), name: path)
    guard case .string(key)? = meta["key"], case .array(let names)? = meta["classes"] else { return nil }
    let classes = names.compactMap { if case .string(let n) = $0 { return n } else { return nil } }
    guard classes.count == names.count else { return nil }
    let (pd, pshape, pixels) = try NumPyFiles.raw(try zip.read(p, limit: Int.max / 2, what: "cache"), what: path)
    let (ld, lshape, labelBytes) = try NumPyFiles.raw(try zip.read(l, limit: Int.max / 2, what: "cache"), what: path)
    guard pd == "|u1", ld == "<i8", pshape.count == 4, lshape == [pshape[0]] else { return nil }
    let labels = (0..<pshape[0]).map { i in
      Int((0..<8).reduce(UInt64(0)) { $0 | UInt64(labelBytes[i * 8 + $1]) << (8 * UInt64($1)) })
    }
    let ds = try Dataset(name: name, count: pshape[0], channels: pshape[1], height: pshape[2], width: pshape[3],
                         pixels: pixels, labels: labels, classNames: classes)
    if case .array(let skipped)? = meta["skipped"] {
      ds.skipped = skipped.compactMap { if case .string(let n) = $0 { return n } else { return nil } }
    }
    return ds
  }
}
