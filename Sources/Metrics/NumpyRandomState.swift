import Foundation

/// NumPy's legacy `np.random.RandomState(seed)`: the MT19937 generator and the exact draw
/// procedures of `permutation`, `choice(n, m, replace=False)`, `randint` and `randn`.
///
/// The metrics' reference implementations draw their random subsets, patches and directions
/// from this stream (torch-fidelity's KID subsets and IS shuffle use RandomState(2020); PGGAN's
/// SWD uses np.random), so reproducing it bit for bit lets luagan's numbers be compared with
/// theirs on the very same subsets. References: Matsumoto & Nishimura 1998 (mt19937ar.c),
/// numpy/random/_mt19937.pyx (legacy seeding), numpy/random/src/legacy/legacy-distributions.c
/// (legacy_gauss), numpy/random/src/distributions/distributions.c (random_interval,
/// masked bounded integers) and mtrand.pyx (shuffle, choice).
public struct NumpyRandomState {
  private var mt = [UInt32](repeating: 0, count: 624)
  private var index = 624
  private var cachedGaussian: Double? = nil

  /// RandomState(seed) for an integer seed in 0..<2³²: MT19937's init_genrand.
  public init(seed: UInt32) {
    mt[0] = seed
    for i in 1..<624 { mt[i] = 1_812_433_253 &* (mt[i - 1] ^ (mt[i - 1] >> 30)) &+ UInt32(i) }
  }

  /// The next 32-bit output (genrand_int32).
  public mutating func nextUInt32() -> UInt32 {
    if index >= 624 { twist() }
    var y = mt[index]
    index += 1
    y ^= y >> 11
    y ^= (y << 7) & 0x9D2C_5680
    y ^= (y << 15) & 0xEFC6_0000
    y ^= y >> 18
    return y
  }

  private mutating func twist() {
    for i in 0..<624 {
      let y = (mt[i] & 0x8000_0000) | (mt[(i + 1) % 624] & 0x7FFF_FFFF)
      mt[i] = mt[(i + 397) % 624] ^ (y >> 1) ^ ((y & 1) == 0 ? 0 : 0x9908_B0DF)
    }
    index = 0
  }

  /// A double in [0, 1) with 53 random bits (genrand_res53, numpy's legacy_double).
  public mutating func nextDouble() -> Double {
    let a = Double(nextUInt32() >> 5), b = Double(nextUInt32() >> 6)
    return (a * 67_108_864.0 + b) / 9_007_199_254_740_992.0
  }

  /// A uniform integer in 0...max by masked rejection (numpy's random_interval, used by shuffle).
  public mutating func interval(_ max: UInt64) -> UInt64 {
    if max == 0 { return 0 }
    var mask = max
    for shift in [1, 2, 4, 8, 16, 32] as [UInt64] { mask |= mask >> shift }
    if max <= 0xFFFF_FFFF {
      while true {
        let v = UInt64(nextUInt32()) & mask
        if v <= max { return v }
      }
    }
    while true {
      let hi = UInt64(nextUInt32()), lo = UInt64(nextUInt32())
      let v = ((hi << 32) | lo) & mask
      if v <= max { return v }
    }
  }

  /// `permutation(n)`: arange(n) shuffled by Fisher–Yates from the back (mtrand's _shuffle_raw).
  public mutating func permutation(_ n: Int) -> [Int] {
    var a = Array(0..<n)
    if n > 1 {
      for i in stride(from: n - 1, through: 1, by: -1) {
        a.swapAt(i, Int(interval(UInt64(i))))
      }
    }
    return a
  }

  /// `choice(n, m, replace=False)`: the first m entries of permutation(n).
  public mutating func choiceWithoutReplacement(_ n: Int, _ m: Int) -> [Int] {
    Array(permutation(n).prefix(m))
  }

  /// `randint(low, high)` with the default int64 dtype: low + a masked-rejection draw in
  /// 0...(high - low - 1) (numpy's bounded integers with use_masked=True).
  public mutating func randint(_ low: Int, _ high: Int) -> Int {
    precondition(high > low, "randint: empty range")
    let range = UInt64(high - low - 1)
    if range == 0 { return low }
    if range == 0xFFFF_FFFF { return low + Int(nextUInt32()) }
    return low + Int(interval(range))
  }

  /// `randn()`: the polar Box–Muller method with one value cached (legacy_gauss).
  public mutating func standardNormal() -> Double {
    if let g = cachedGaussian { cachedGaussian = nil; return g }
    var x1 = 0.0, x2 = 0.0, r2 = 0.0
    repeat {
      x1 = 2.0 * nextDouble() - 1.0
      x2 = 2.0 * nextDouble() - 1.0
      r2 = x1 * x1 + x2 * x2
    } while r2 >= 1.0 || r2 == 0.0
    let f = (-2.0 * Foundation.log(r2) / r2).squareRoot()
    cachedGaussian = f * x1
    return f * x2
  }
}
