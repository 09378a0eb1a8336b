import Foundation

/// The `LG_*` environment variables that tune luagan's kernels and allocator, each declared once
/// here with its default, its bounds and what it changes. Every one only moves speed and memory
/// against each other, and the splits they change are fixed by the shape, never by timing, so a
/// setting gives the same bits on every run and thread count. Most give the same bits whatever
/// they are set to; those that pick an algorithm or regroup a sum do not: LG_WINO_TILE (the
/// Winograd variant), LG_WINO_MIN and LG_WINO_MIN_TILES (Winograd or im2col), LG_SMALL_GEMM and
/// LG_OWN_GEMM (whose GEMM), and LG_WINO_SMALL, LG_WINO_BUDGET and LG_WINO_WTILES (how the weight
/// gradient's partial sums are grouped). A value that is not an integer in bounds is ignored
/// (the default holds) and reported by `tensor.config().tunables`.
public enum Tunables {
  public struct Knob: Sendable {
    public let name: String
    public let defaultValue: Int
    public let range: ClosedRange<Int>
    public let help: String
    /// What the environment held, if anything.
    public let setting: String?
    /// The value in use: the setting when it is an integer in range, else the default.
    public var value: Int {
      guard let s = setting, let v = Int(s), range.contains(v) else { return defaultValue }
      return v
    }

    init(_ name: String, _ defaultValue: Int, _ range: ClosedRange<Int>, _ help: String) {
      self.name = name; self.defaultValue = defaultValue; self.range = range; self.help = help
      setting = ProcessInfo.processInfo.environment[name]
    }
  }

  public static let winogradMinChannels = Knob("LG_WINO_MIN", 16, 1...1 << 20,
    "3x3 convolutions with fewer input or output channels than this use im2col + GEMM instead of Winograd")
  public static let winogradMinTiles = Knob("LG_WINO_MIN_TILES", 16, 1...1 << 20,
    "3x3 convolutions with fewer 4x4 output tiles than this over the batch (4x4 images at batch 8: 8) use im2col + GEMM")
  public static let winogradBlockBytes = Knob("LG_WINO_BUDGET", 4 << 20, 1 << 16...1 << 30,
    "bytes of transformed tiles per block in wide Winograd layers (cache blocking)")
  public static let winogradTile = Knob("LG_WINO_TILE", 4, 2...4,
    "4: float32 3x3 convolutions use F(4x4,3x3); 2: F(2x2,3x3) everywhere (float64 always uses F(2x2))")
  /// 256 where the float32 products run on luagan's packed GEMM (AVX-512), 64 elsewhere: with
  /// that GEMM, layers of 128 and 256 channels ran faster as whole sub-blocks per worker than as
  /// three phases across workers (2-core Zen 5: biggan64 702 -> 658 ms a step, biggan128@8
  /// 951 -> 914, deep256 sampling 1,205 -> 1,166; deep512 at batch 4 1,098 -> 1,127).
  public static let winogradSmallChannels = Knob("LG_WINO_SMALL", sgemmRunsOwnKernel ? 256 : 64,
    0...1 << 20, "layers of at most this many channels run whole Winograd sub-blocks per worker (one dispatch per conv); "
      + "default 256 with luagan's AVX-512 GEMM, else 64")
  /// 4 MiB: biggan128 at batch 8 (2-core Zen 5, L3 32 MiB), whose 256- and 512-channel layers have
  /// U of 9 and 38 MiB: 890 -> 855 ms a step streaming at 2, 4 or 8 MiB, 866 at 20 (the 512s only).
  public static let winogradStreamMB = Knob("LG_WINO_STREAM_MB", 4, 0...1 << 20,
    "F(4x4) weight transforms whose 36 planes exceed this many MiB are written with non-temporal stores (0: always)")
  public static let winogradForwardTiles = Knob("LG_WINO_SUBTILES", 128, 1...1 << 20,
    "tiles per sub-block in the small-layer forward and input gradient (unset: 256 for layers of at most 64 channels, else 128)")
  public static let winogradWeightTiles = Knob("LG_WINO_WTILES", 256, 1...1 << 20,
    "tiles per sub-block in the small-layer weight gradient")
  public static let smallGemm = Knob("LG_SMALL_GEMM", 1, 0...1,
    "1: the small-layer Winograd forward and input-gradient products use luagan's own unpacked GEMM kernel; 0: the BLAS's sgemm")
  public static let ownGemm = Knob("LG_OWN_GEMM", 1, 0...1,
    "1: float32 matrix products use luagan's packed AVX-512 kernel where the CPU has AVX-512; 0: the BLAS's sgemm everywhere")
  public static let directMaxChannels = Knob("LG_DIRECT_MAX", 4, 0...64,
    "3x3 convolutions with at most this many output channels (a generator's image layer) use the direct kernel")
  public static let poolPercentOfPeak = Knob("LG_POOL_FRACTION", 130, 0...1000,
    "percent of the peak of live tensor bytes that live plus pooled (freed, kept for reuse) bytes may reach")
  public static let poolFloorMB = Knob("LG_POOL_FLOOR_MB", 256, 0...1 << 20,
    "MiB the allocator's reuse pool may hold whatever the peak")

  /// 128 Ki elements (512 KiB of float32): elementwise ops, reductions, pooling and norms split
  /// work between threads in chunks of at least this many elements. Memory-bound work on a
  /// tensor that one core just wrote runs faster on that core than split with a core that must
  /// first fetch half of it: on a 2-core Zen 5, 32 Ki -> 128 Ki took pggan64 from 445 to 431 ms a
  /// step, pggan128 842 -> 788, deep128 sampling 452 -> 431, deep256 1,172 -> 1,141, BigGAN's
  /// training within 1% (smaller grains were slower everywhere: pggan64 at 8 Ki 462, at 2 Ki 493).
  public static let elementGrain = Knob("LG_ELEMENT_GRAIN", 1 << 17, 1024...1 << 30,
    "elements of memory-bound work (elementwise, reductions, pooling, norms) per thread chunk at least")

  public static let spinMicroseconds = Knob("LG_SPIN_US", 300, 0...1_000_000,
    "microseconds a worker thread spins waiting for the next parallel region before it sleeps")

  public static let all: [Knob] = [winogradMinChannels, winogradMinTiles, winogradBlockBytes, winogradTile, winogradSmallChannels,
                                   winogradStreamMB, winogradForwardTiles, winogradWeightTiles, smallGemm, ownGemm, directMaxChannels,
                                   elementGrain, poolPercentOfPeak, poolFloorMB, spinMicroseconds]
}
