import CTurboJPEG
import Foundation
import Tensor

/// JPEG in and out through libjpeg-turbo's TurboJPEG API (the library Pillow and
/// torchvision decode with): baseline and progressive, gray, YCbCr and CMYK/YCCK files.
/// Decoding uses libjpeg's defaults (accurate integer IDCT, smooth chroma upsampling), so
/// pixels match Pillow's. Any libjpeg warning (a truncated or corrupt stream) is an error.
public enum JPEG {
  /// A JPEG starts with SOI (FF D8) and a marker (FF).
  public static func isJPEG(_ head: [UInt8]) -> Bool { head.count >= 3 && head[0] == 0xFF && head[1] == 0xD8 && head[2] == 0xFF }

  /// Interleaved 8-bit samples (H, W, C), C = 1 (gray) or 3 (RGB); CMYK files become RGB.
  public static func decode(_ bytes: [UInt8], name: String, maxPixels: Int) throws
    -> (pixels: [UInt8], height: Int, width: Int, channels: Int) {
    guard let handle = tjInitDecompress() else { throw TensorError("'\(name)': libjpeg-turbo could not start") }
    defer { tjDestroy(handle) }
    func failure(_ what: String) -> TensorError {
      TensorError("'\(name)' is not a readable JPEG (\(what): \(String(cString: tjGetErrorStr2(handle))))")
    }
    var w: Int32 = 0, h: Int32 = 0, subsampling: Int32 = 0, colorspace: Int32 = 0
    guard tjDecompressHeader3(handle, bytes, UInt(bytes.count), &w, &h, &subsampling, &colorspace) == 0 else { throw failure("header") }
    let (W, H) = (Int(w), Int(h))
    guard W > 0, H > 0 else { throw TensorError("'\(name)' is not a readable JPEG (it declares \(W)x\(H) pixels)") }
    guard W * H <= maxPixels else {
      throw TensorError("'\(name)' is \(W)x\(H) = \(W * H) pixels, more than the limit of \(maxPixels) (option maxPixels)")
    }
    let cmyk = colorspace == TJCS_CMYK.rawValue || colorspace == TJCS_YCCK.rawValue
    let gray = colorspace == TJCS_GRAY.rawValue
    let format = cmyk ? TJPF_CMYK : gray ? TJPF_GRAY : TJPF_RGB
    let stored = cmyk ? 4 : gray ? 1 : 3
    try Storage.checkAllocatable(count: W * H * stored, elementBytes: 1, what: "the pixels of '\(name)'")
    var out = [UInt8](repeating: 0, count: W * H * stored)
    let status = out.withUnsafeMutableBufferPointer { dst in
      tjDecompress2(handle, bytes, UInt(bytes.count), dst.baseAddress, w, 0, h, format.rawValue, TJFLAG_STOPONWARNING)
    }
    guard status == 0 else { throw failure("truncated or corrupt data") }
    guard cmyk else { return (out, H, W, stored) }
    return (cmykToRGB(out, inverted: hasAdobeMarker(bytes)), H, W, 3)
  }

  /// CMYK to RGB as Pillow converts (Convert.c, cmyk2rgb): with nk = 255 - K,
  /// R = nk - round(C·nk / 255). Adobe files (Photoshop, Pillow) store every ink inverted, so
  /// there C = 255 - the stored value (Pillow's raw mode "CMYK;I").
  static func cmykToRGB(_ stored: [UInt8], inverted: Bool) -> [UInt8] {
    func muldiv255(_ a: Int, _ b: Int) -> Int { let t = a * b + 128; return ((t >> 8) + t) >> 8 }
    var rgb = [UInt8](repeating: 0, count: stored.count / 4 * 3)
    for p in 0..<(stored.count / 4) {
      let ink = (0..<4).map { inverted ? 255 - Int(stored[4 * p + $0]) : Int(stored[4 * p + $0]) }
      let nk = 255 - ink[3]
      for c in 0..<3 { rgb[3 * p + c] = UInt8(Swift.max(0, Swift.min(255, nk - muldiv255(ink[c], nk)))) }
    }
    return rgb
  }

  /// True when an APP14 "Adobe" segment precedes the first scan.
  static func hasAdobeMarker(_ b: [UInt8]) -> Bool {
    var i = 2
    while i + 4 <= b.count, b[i] == 0xFF {
      let marker = b[i + 1]
      if marker == 0xDA || marker == 0xD9 { return false }          // start of scan / end of image
      let length = Int(b[i + 2]) << 8 | Int(b[i + 3])
      if marker == 0xEE, length >= 7, i + 9 <= b.count, Array(b[(i + 4)..<(i + 9)]) == Array("Adobe".utf8) { return true }
      i += 2 + length
    }
    return false
  }

  /// A JPEG of interleaved 8-bit samples (H, W, C), C = 1 (gray) or 3 (RGB). `quality` 1-100;
  /// `subsampling` of the chroma: "444", "422" or "420" (ignored for gray).
  public static func encode(_ pixels: [UInt8], height: Int, width: Int, channels: Int, quality: Int,
                            subsampling: String) throws -> [UInt8] {
    guard channels == 1 || channels == 3 else {
      throw TensorError("a JPEG holds gray or RGB images, not \(channels) channels "
                        + "(it has no alpha; save a PNG, or drop the alpha channel)")
    }
    guard (1...100).contains(quality) else { throw TensorError("JPEG quality must be in 1..100, got \(quality)") }
    let samp: TJSAMP
    switch (channels, subsampling) {
    case (1, _): samp = TJSAMP_GRAY
    case (_, "444"): samp = TJSAMP_444
    case (_, "422"): samp = TJSAMP_422
    case (_, "420"): samp = TJSAMP_420
    default: throw TensorError("JPEG subsampling must be \"444\", \"422\" or \"420\", got \"\(subsampling)\"")
    }
    guard width <= 65535, height <= 65535 else { throw TensorError("a JPEG is at most 65535 pixels on a side, got \(width)x\(height)") }
    guard let handle = tjInitCompress() else { throw TensorError("libjpeg-turbo could not start") }
    defer { tjDestroy(handle) }
    var buffer: UnsafeMutablePointer<UInt8>? = nil
    var size: UInt = 0
    let status = pixels.withUnsafeBufferPointer { src in
      tjCompress2(handle, src.baseAddress, Int32(width), 0, Int32(height), (channels == 1 ? TJPF_GRAY : TJPF_RGB).rawValue,
                  &buffer, &size, Int32(samp.rawValue), Int32(quality), TJFLAG_ACCURATEDCT)
    }
    defer { if let buffer { tjFree(buffer) } }
    guard status == 0, let buffer else { throw TensorError("JPEG encoding failed: \(String(cString: tjGetErrorStr2(handle)))") }
    return Array(UnsafeBufferPointer(start: buffer, count: Int(size)))
  }
}
