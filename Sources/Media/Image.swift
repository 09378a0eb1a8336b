import CPNG
import Foundation
import Tensor

/// PNG images in and out (libpng), sheets of samples, and resizing.
public enum Images {
  /// Pixels an image may have unless the caller allows more (PIL's MAX_IMAGE_PIXELS is 89M).
  public static let defaultMaxPixels = 1 << 26

  /// Reads a PNG or a JPEG (told apart by their signatures, not the name) as a float (C, H, W)
  /// tensor in [0, 1]; C is 1 (gray), 2 (gray + alpha), 3 (RGB) or 4 (RGBA); 16-bit PNG
  /// samples keep their precision (value / 65535); CMYK JPEGs become RGB. A missing, corrupt or
  /// truncated file is an error naming it, never a crash; so is one declaring more than
  /// `maxPixels` pixels, or (PNG) more than its size can hold.
  public static func load(_ path: String, maxPixels: Int = defaultMaxPixels) throws -> Tensor {
    let bytes = try [UInt8](readRegularFile(path, what: "image.load", limit: 1 << 31, copies: 2))
    do { return try decode(bytes, name: path, maxPixels: maxPixels) } catch let e as TensorError {
      throw TensorError("image.load: \(e.message)")
    }
  }

  /// An image file's bytes (PNG or JPEG) as a float (C, H, W) tensor in [0, 1]; `name` is the
  /// file (or zip entry) errors name.
  public static func decode(_ bytes: [UInt8], name: String, maxPixels: Int = defaultMaxPixels) throws -> Tensor {
    if JPEG.isJPEG(bytes) {
      let (pixels, H, W, C) = try JPEG.decode(bytes, name: name, maxPixels: maxPixels)
      return try planar(pixels, H, W, C) { Float($0) / 255 }
    }
    var w: Int32 = 0, h: Int32 = 0, c: Int32 = 0, sampleBytes: Int32 = 0
    var data: UnsafeMutablePointer<UInt8>? = nil
    var err = [CChar](repeating: 0, count: 512)
    let status = bytes.withUnsafeBufferPointer {
      lg_png_read_mem($0.baseAddress, $0.count, name, &w, &h, &c, &sampleBytes, &data, UInt64(Swift.max(0, maxPixels)), &err, err.count)
    }
    guard status == 0, let raw = data else {
      let message = String(cString: err)
      throw TensorError(message.contains("bad signature") ? "'\(name)' is neither a PNG nor a JPEG file" : message)
    }
    defer { free(raw) }
    let (W, H, C) = (Int(w), Int(h), Int(c))
    if sampleBytes == 2 {
      let samples = UnsafeBufferPointer(start: UnsafeRawPointer(raw).assumingMemoryBound(to: UInt16.self), count: W * H * C)
      return try planar(samples, H, W, C) { Float($0) / 65535 }
    }
    return try planar(UnsafeBufferPointer(start: raw, count: W * H * C), H, W, C) { Float($0) / 255 }
  }

  /// (H, W, C) interleaved samples -> a (C, H, W) float tensor, written straight into it.
  static func planar<S: Collection>(_ samples: S, _ H: Int, _ W: Int, _ C: Int, _ scale: (S.Element) -> Float) throws -> Tensor
  where S.Index == Int {
    try Tensor.filled([C, H, W]) { out in
      for y in 0..<H { for x in 0..<W { for ch in 0..<C { out[(ch * H + y) * W + x] = scale(samples[(y * W + x) * C + ch]) } } }
    }
  }

  /// Writes a (C, H, W) tensor (C = 1, 2, 3 or 4) or an (H, W) gray image as an 8-bit PNG, or
  /// as a JPEG when the name ends in .jpg / .jpeg (gray or RGB; `quality`, `subsampling`),
  /// mapping `range` to [0, 255] (clamped, rounded as torchvision's save_image), through a
  /// temporary file renamed into place.
  public static func save(_ x: Tensor, to path: String, range: (Double, Double) = (0, 1), quality: Int = 95,
                          subsampling: String = "444") throws {
    let name = path.lowercased()
    guard name.hasSuffix(".jpg") || name.hasSuffix(".jpeg") else {
      return try writeFile(encodePNG(x, range: range), to: path, what: "image.save")
    }
    let (pixels, c, h, w) = try samples(x, range: range, what: "image.save")
    let jpeg: [UInt8]
    do {
      jpeg = try JPEG.encode(pixels, height: h, width: w, channels: c, quality: quality, subsampling: subsampling)
    } catch let e as TensorError { throw TensorError("image.save: \(e.message)") }
    try writeFile(jpeg, to: path, what: "image.save")
  }

  /// The bytes of the PNG file `save` writes (TensorBoard's image summaries carry them as they
  /// are). Errors start with `what`.
  public static func encodePNG(_ x: Tensor, range: (Double, Double) = (0, 1), what: String = "image.save") throws -> [UInt8] {
    let (bytes, c, h, w) = try samples(x, range: range, what: what)
    return try encodePNG(pixels: bytes, width: w, height: h, channels: c, what: what)
  }

  /// A (C, H, W) or (H, W) tensor as 8-bit interleaved (H, W, C) samples, `range` mapped to
  /// [0, 255] (clamped, rounded as torchvision's save_image; NaN to 0).
  static func samples(_ x: Tensor, range: (Double, Double), what: String) throws -> ([UInt8], Int, Int, Int) {
    let img = x.rank == 2 ? try x.unsqueeze(dim: 0) : x
    guard img.rank == 3, (1...4).contains(img.shape[0]), img.shape[1] > 0, img.shape[2] > 0 else {
      throw TensorError("\(what): expected a (C, H, W) tensor with C in 1..4 or an (H, W) tensor, got \(formatShape(x.shape))")
    }
    guard range.1 > range.0 else { throw TensorError("\(what): range {\(range.0), \(range.1)} is empty") }
    let (C, H, W) = (img.shape[0], img.shape[1], img.shape[2])
    guard H <= 1 << 20, W <= 1 << 20 else { throw TensorError("\(what): \(W)x\(H) is too large for an image file") }
    try Storage.checkAllocatable(count: img.numel, elementBytes: 5, what: "\(what)'s pixels")
    let v = try img.toFloatArray()
    var bytes = [UInt8](repeating: 0, count: C * H * W)
    let lo = range.0, span = range.1 - range.0
    for ch in 0..<C {
      for y in 0..<H {
        for xx in 0..<W {
          let f = (Double(v[(ch * H + y) * W + xx]) - lo) / span
          let s = f.isNaN ? 0 : Swift.min(255, Swift.max(0, f * 255 + 0.5))
          bytes[(y * W + xx) * C + ch] = UInt8(s)
        }
      }
    }
    return (bytes, C, H, W)
  }

  /// PNG bytes of 8-bit interleaved (H, W, C) samples, C = 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA.
  public static func encodePNG(pixels: [UInt8], width: Int, height: Int, channels: Int, what: String) throws -> [UInt8] {
    guard pixels.count == width * height * channels else {
      throw TensorError("\(what): \(pixels.count) samples for a \(width)x\(height) image of \(channels) channels")
    }
    var out: UnsafeMutablePointer<UInt8>? = nil
    var size = 0
    var err = [CChar](repeating: 0, count: 512)
    guard lg_png_encode(Int32(width), Int32(height), Int32(channels), pixels, &out, &size, &err, err.count) == 0, let png = out else {
      throw TensorError("\(what): \(String(cString: err))")
    }
    defer { free(png) }
    return Array(UnsafeBufferPointer(start: png, count: size))
  }

  /// Writes a file's bytes through a temporary file synced and renamed into place (a crash
  /// leaves the old file or the new one), making its folder if missing. Errors start with `what`.
  public static func writeFile(_ bytes: [UInt8], to path: String, what: String) throws {
    do {
      try ensureParentDirectory(path)
      try writeAtomically(Data(bytes), to: path)
    } catch let e as TensorError { throw TensorError("\(what): \(e.message)") }
  }

  /// Tiles an (N, C, H, W) batch into one (C, H', W') image, nrow images per row, with
  /// `padding` pixels of padValue around each (torchvision.utils.make_grid's layout).
  public static func grid(_ batch: Tensor, nrow: Int = 8, padding: Int = 2, padValue: Double = 0,
                          rowLabels: [String] = []) throws -> Tensor {
    let plain = try gridOnly(batch, nrow: nrow, padding: padding, padValue: padValue)
    guard !rowLabels.isEmpty else { return plain }
    // the ink is the images' own extreme farthest from the padding (black on a white margin)
    let lo = try batch.min().item(), hi = try batch.max().item()
    return try labelRows(plain, rowLabels, rowHeight: batch.shape[2] + padding, padding: padding, padValue: padValue,
                         ink: Swift.abs(padValue - lo) >= Swift.abs(padValue - hi) ? lo : hi)
  }

  /// A margin on the left of a grid with one label per row of images (the 5x9 plot font),
  /// centred on its row: class names beside a class sheet. `ink` is the text's value.
  static func labelRows(_ grid: Tensor, _ labels: [String], rowHeight: Int, padding: Int, padValue: Double, ink: Double) throws -> Tensor {
    let shown = labels.map { String($0.prefix(24)) }       // a margin of at most 24 characters
    let margin = (shown.map(\.count).max() ?? 0) * (Font.width + 1) + 2 * padding
    let (c, h, w) = (grid.shape[0], grid.shape[1], grid.shape[2])
    let out = try Tensor.full([c, h, try Checked.add(w, margin, "image.grid")], padValue, dtype: grid.dtype)
    try GradMode.withDisabled {
      _ = try out.narrow(dim: 2, start: margin, length: w).copy_(grid)
      for (row, label) in shown.enumerated() {
        let top = padding + row * rowHeight + (rowHeight - padding - Font.height) / 2
        guard top >= 0, top + Font.height <= h else { continue }
        var x = padding
        for ch in label {
          let g = Font.glyph(ch)
          for gy in 0..<Font.height {
            for gx in 0..<Font.width where g[gy] & (0x10 >> UInt8(gx)) != 0 {
              _ = try out.narrow(dim: 1, start: top + gy, length: 1).narrow(dim: 2, start: x + gx, length: 1).fill_(ink)
            }
          }
          x += Font.width + 1
        }
      }
    }
    return out
  }

  static func gridOnly(_ batch: Tensor, nrow: Int, padding: Int, padValue: Double) throws -> Tensor {
    guard batch.rank == 4, batch.shape[0] > 0 else {
      throw TensorError("image.grid: expected a non-empty (N, C, H, W) batch, got \(formatShape(batch.shape))")
    }
    guard nrow >= 1, padding >= 0 else { throw TensorError("image.grid: nrow must be >= 1 and padding >= 0") }
    let (n, c, h, w) = (batch.shape[0], batch.shape[1], batch.shape[2], batch.shape[3])
    let xmaps = Swift.min(nrow, n), ymaps = n / xmaps + (n % xmaps == 0 ? 0 : 1)
    let height = try Checked.add(h, padding, "image.grid"), width = try Checked.add(w, padding, "image.grid")
    let outH = try Checked.add(Checked.mul(height, ymaps, "image.grid"), padding, "image.grid")
    let outW = try Checked.add(Checked.mul(width, xmaps, "image.grid"), padding, "image.grid")
    let out = try Tensor.full([c, outH, outW], padValue, dtype: batch.dtype)
    try GradMode.withDisabled {
      for k in 0..<n {
        let y = k / xmaps, x = k % xmaps
        let dst = try out.narrow(dim: 1, start: y * height + padding, length: h).narrow(dim: 2, start: x * width + padding, length: w)
        _ = try dst.copy_(batch.select(dim: 0, index: k).detach())
      }
    }
    return out
  }

  public enum ResizeMode: String, CaseIterable { case box, nearest, bilinear }

  /// Resizes (C, H, W) or (N, C, H, W) images to (height, width):
  /// - box: area averaging (torch's mode='area', adaptive average pooling); for an integer
  ///   factor it is exact block averaging, PGGAN's 2×2 box filter for its levels;
  /// - nearest: torch's mode='nearest' (source index floor(dst·in/out));
  /// - bilinear: torch's mode='bilinear', align_corners=False (half-pixel centres).
  /// Not differentiable (it is for data, sample sheets and metric inputs).
  public static func resize(_ x: Tensor, height: Int, width: Int, mode: ResizeMode) throws -> Tensor {
    guard x.rank == 3 || x.rank == 4 else { throw TensorError("image.resize: expected (C, H, W) or (N, C, H, W), got \(formatShape(x.shape))") }
    guard height > 0, width > 0, height <= 1 << 15, width <= 1 << 15 else {
      throw TensorError("image.resize: size \(height)x\(width) must be positive and at most 32768")
    }
    let batched = x.rank == 4 ? x : try x.unsqueeze(dim: 0)
    let (n, c, ih, iw) = (batched.shape[0], batched.shape[1], batched.shape[2], batched.shape[3])
    guard ih > 0, iw > 0 else { throw TensorError("image.resize: empty input \(formatShape(x.shape))") }
    let outCount = try Checked.product([n, c, height, width], "image.resize")
    // the output (an array, then a tensor) and the input's float64 copy and array, all at once
    let inCount = try Checked.product([n, c, ih, iw], "image.resize")
    try Storage.checkAllocatable(count: try Checked.add(outCount, inCount, "image.resize"), elementBytes: 16,
                                 what: "image.resize's input and output")
    let src = try batched.detach().to(.float64).contiguous().toArray()
    var out = [Double](repeating: 0, count: outCount)
    switch mode {
    case .box:
      func span(_ i: Int, _ inSize: Int, _ outSize: Int) -> (Int, Int) {
        (i * inSize / outSize, ((i + 1) * inSize + outSize - 1) / outSize)
      }
      for p in 0..<(n * c) {
        for oy in 0..<height {
          let (y0, y1) = span(oy, ih, height)
          for ox in 0..<width {
            let (x0, x1) = span(ox, iw, width)
            var s = 0.0
            for yy in y0..<y1 { for xx in x0..<x1 { s += src[(p * ih + yy) * iw + xx] } }
            out[(p * height + oy) * width + ox] = s / Double((y1 - y0) * (x1 - x0))
          }
        }
      }
    case .nearest:
      let sy = Double(ih) / Double(height), sx = Double(iw) / Double(width)
      for p in 0..<(n * c) {
        for oy in 0..<height {
          let yy = Swift.min(Int(Double(oy) * sy), ih - 1)
          for ox in 0..<width {
            out[(p * height + oy) * width + ox] = src[(p * ih + yy) * iw + Swift.min(Int(Double(ox) * sx), iw - 1)]
          }
        }
      }
    case .bilinear:
      func coords(_ o: Int, _ inSize: Int, _ outSize: Int) -> (Int, Int, Double, Double) {
        let s = Swift.max(0, (Double(o) + 0.5) * Double(inSize) / Double(outSize) - 0.5)
        let i0 = Swift.min(Int(s), inSize - 1), i1 = Swift.min(i0 + 1, inSize - 1)
        let l1 = s - Double(i0)
        return (i0, i1, 1 - l1, l1)
      }
      let ys = (0..<height).map { coords($0, ih, height) }, xs = (0..<width).map { coords($0, iw, width) }
      for p in 0..<(n * c) {
        let base = p * ih * iw
        for oy in 0..<height {
          let (y0, y1, h0, h1) = ys[oy]
          for ox in 0..<width {
            let (x0, x1, w0, w1) = xs[ox]
            out[(p * height + oy) * width + ox] =
              h0 * (w0 * src[base + y0 * iw + x0] + w1 * src[base + y0 * iw + x1]) +
              h1 * (w0 * src[base + y1 * iw + x0] + w1 * src[base + y1 * iw + x1])
          }
        }
      }
    }
    let result = try Tensor.from(out, shape: [n, c, height, width], dtype: x.dtype)
    return x.rank == 4 ? result : try result.squeeze(dim: 0)
  }
}
