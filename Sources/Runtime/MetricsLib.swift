import CLua
import Foundation
import Metrics
import Tensor

/// The Swift half of `metrics`: the formulas over features (FID, IS, KID, precision/recall)
/// and over images (SWD, MS-SSIM). Feature networks and file helpers are in lua/metrics.lua.
enum MetricsLib {
  typealias Fn = Binding.Fn

  static func install(_ L: LuaState) {
    let fns = bindings()
    lua_createtable(L, 0, Int32(fns.count))
    for (fname, body) in fns { Binding.set(L, -1, fname, "metrics.\(fname)", body) }
    Binding.setGlobal(L, "metrics")
  }

  /// A seed option: an integer in 0 ..< 2³² (NumPy's RandomState accepts exactly these).
  static func seed(_ o: Options, _ key: String, _ def: UInt32?) throws -> UInt32? {
    guard let s = try o.integer(key) else { return def }
    guard s >= 0, s <= Int(UInt32.max) else { throw o.call.error("option '\(key)' must be an integer in 0..4294967295, got \(s)") }
    return UInt32(s)
  }

  /// Pushes feature statistics as { mu = (D) float64, sigma = (D, D) float64, n = N }.
  static func push(_ c: LuaCall, _ s: FeatureMetrics.Statistics) throws {
    lua_createtable(c.L, 0, 3)
    let t = lua_gettop(c.L)
    c.push(try Tensor.from(s.mean, shape: [s.dimension], dtype: .float64)); c.setField(t, "mu")
    c.push(try Tensor.from(s.covariance, shape: [s.dimension, s.dimension], dtype: .float64)); c.setField(t, "sigma")
    c.push(s.count); c.setField(t, "n")
  }

  /// Reads a statistics table (as featureStats returns, or metrics.loadStats).
  static func statistics(_ c: LuaCall, _ i: Int32) throws -> FeatureMetrics.Statistics {
    guard c.isTable(i) else { throw c.typeError(i, "statistics table {mu=, sigma=, n=}") }
    let o = try c.options(i)
    guard let mu = try o.tensor("mu"), let sigma = try o.tensor("sigma") else {
      throw c.argError(i, "statistics table needs tensors 'mu' (D) and 'sigma' (D, D)")
    }
    let n = try o.integer("n", 0)
    try o.finish()
    guard mu.rank == 1, sigma.rank == 2, sigma.shape == [mu.shape[0], mu.shape[0]] else {
      throw c.argError(i, "statistics must hold mu of shape (D) and sigma of shape (D, D), got \(formatShape(mu.shape)) and \(formatShape(sigma.shape))")
    }
    return try FeatureMetrics.Statistics(mean: mu.toArray(), covariance: sigma.toArray(), count: n)
  }

  static func swdOptions(_ o: Options) throws -> ImageMetrics.SWDOptions {
    var s = ImageMetrics.SWDOptions()
    s.neighborhoodSize = try o.integer("nhoodSize", s.neighborhoodSize)
    s.neighborhoodsPerImage = try o.integer("nhoodsPerImage", s.neighborhoodsPerImage)
    s.directionRepeats = try o.integer("dirRepeats", s.directionRepeats)
    s.directionsPerRepeat = try o.integer("dirsPerRepeat", s.directionsPerRepeat)
    s.minResolution = try o.integer("minResolution", s.minResolution)
    s.seed = try seed(o, "seed", s.seed)!
    s.range = try ImageLib.range(o) ?? s.range
    s.quantize = try o.bool("quantize", s.quantize)
    try o.finish()
    return s
  }

  static func msssimOptions(_ o: Options) throws -> ImageMetrics.MSSSIMOptions {
    var s = ImageMetrics.MSSSIMOptions()
    if o.has("weights") {
      lua_pushstring(o.L, "weights")
      lua_rawget(o.L, o.index)
      defer { lg_pop(o.L, 1) }
      let t = lua_gettop(o.L)
      guard lua_type(o.L, t) == LUA_TTABLE, lua_rawlen(o.L, t) >= 1 else { throw o.call.error("option 'weights' must be a list of scale weights") }
      s.weights = []
      for k in 1...Int(lua_rawlen(o.L, t)) {
        lua_rawgeti(o.L, t, lua_Integer(k))
        defer { lg_pop(o.L, 1) }
        guard lua_type(o.L, -1) == LUA_TNUMBER else { throw o.call.error("option 'weights' must hold numbers (entry \(k) is not)") }
        s.weights.append(lua_tonumberx(o.L, -1, nil))
      }
    }
    s.filterSize = try o.integer("filterSize", s.filterSize)
    s.filterSigma = try o.number("filterSigma", s.filterSigma)
    s.k1 = try o.number("k1", s.k1)
    s.k2 = try o.number("k2", s.k2)
    s.maxValue = try o.number("maxValue", s.maxValue)
    s.range = try ImageLib.range(o) ?? s.range
    s.quantize = try o.bool("quantize", s.quantize)
    try o.finish()
    return s
  }

  static func bindings() -> [Fn] {
    [
      ("featureStats", { c in
        try push(c, FeatureMetrics.statistics(c.tensor(1)))
        return 1
      }),
      ("fidFromStats", { c in
        let a = try statistics(c, 1), b = try statistics(c, 2)
        let o = try c.options(3)
        let eps = try o.number("eps", 1e-6)
        try o.finish()
        c.push(try FeatureMetrics.frechetDistance(a, b, eps: eps))
        return 1
      }),
      ("fid", { c in
        let x = try c.tensor(1), y = try c.tensor(2)
        let o = try c.options(3)
        let eps = try o.number("eps", 1e-6)
        try o.finish()
        if x.rank == 2, y.rank == 2, x.shape[1] != y.shape[1] {
          throw c.error("featsA and featsB must have the same feature size, got \(formatShape(x.shape)) and \(formatShape(y.shape))")
        }
        let a = try FeatureMetrics.statistics(x, name: "featsA", function: "metrics.fid")
        let b = try FeatureMetrics.statistics(y, name: "featsB", function: "metrics.fid")
        c.push(try FeatureMetrics.frechetDistance(a, b, eps: eps, function: "metrics.fid"))
        return 1
      }),
      ("inceptionScore", { c in
        let x = try c.tensor(1)
        let o = try c.options(2)
        let splits = try o.integer("splits", 10), logits = try o.bool("logits", false)
        let shuffle = try seed(o, "shuffleSeed", nil)
        try o.finish()
        let r = try FeatureMetrics.inceptionScore(x, splits: splits, logits: logits, shuffleSeed: shuffle)
        c.push(r.mean); c.push(r.std)
        return 2
      }),
      ("kid", { c in
        let x = try c.tensor(1), y = try c.tensor(2)
        let o = try c.options(3)
        let subsets = try o.integer("subsets", 100), size = try o.integer("subsetSize", 1000)
        let degree = try o.integer("degree", 3), gamma = try o.number("gamma"), coef0 = try o.number("coef0", 1)
        let s = try seed(o, "seed", 2020)!
        try o.finish()
        let r = try FeatureMetrics.kernelInceptionDistance(x, y, subsets: subsets, subsetSize: size, degree: degree,
                                                           gamma: gamma, coef0: coef0, seed: s)
        c.push(r.mean); c.push(r.std)
        return 2
      }),
      ("precisionRecall", { c in
        let real = try c.tensor(1), fake = try c.tensor(2)
        let o = try c.options(3)
        let k = try o.integer("k", 3)
        try o.finish()
        let r = try FeatureMetrics.precisionRecall(real: real, fake: fake, k: k)
        c.push(r.precision); c.push(r.recall); c.push(r.fScore)
        return 3
      }),
      ("swd", { c in
        let a = try c.tensor(1), b = try c.tensor(2)
        let r = try ImageMetrics.slicedWasserstein(a, b, options: swdOptions(c.options(3)))
        lua_createtable(c.L, 0, 3)
        let t = lua_gettop(c.L)
        c.push(ints: r.resolutions); c.setField(t, "resolutions")
        lua_createtable(c.L, Int32(r.values.count), 0)
        for (i, v) in r.values.enumerated() { c.push(v); lua_rawseti(c.L, -2, lua_Integer(i + 1)) }
        c.setField(t, "values")
        c.push(r.average); c.setField(t, "average")
        return 1
      }),
      ("msssim", { c in
        let a = try c.tensor(1), b = try c.tensor(2)
        c.push(try ImageMetrics.msssim(a, b, options: msssimOptions(c.options(3))))
        return 1
      }),
      ("msssimDiversity", { c in
        let x = try c.tensor(1)
        c.push(try ImageMetrics.msssimDiversity(x, options: msssimOptions(c.options(2))))
        return 1
      }),
    ]
  }
}
