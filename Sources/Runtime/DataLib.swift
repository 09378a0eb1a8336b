import CLua
import Datasets
import Foundation
import Tensor

/// `data`: data sets (userdata luagan.Dataset) and loaders (luagan.Loader) (Sources/Datasets).
enum DataLib {
  typealias Fn = Binding.Fn
  static let datasetMeta = UserdataKind("luagan.Dataset")
  static let loaderMeta = UserdataKind("luagan.Loader")

  static func install(_ L: LuaState) {
    for (meta, fields) in [(datasetMeta, datasetIndex), (loaderMeta, loaderIndex)] {
      _ = luaL_newmetatable(L, meta.name)
      Binding.set(L, -1, "__index", "\(meta.name).__index", fields)
      Binding.set(L, -1, "__gc", "\(meta.name).__gc", { c in LuaVM.releaseObject(c.L, 1, meta: meta); return 0 }, isFinalizer: true)
      Binding.set(L, -1, "__len", "\(meta.name).__len", { c in
        if let d = LuaVM.toObject(c.L, 1, meta: datasetMeta, as: Dataset.self) { c.push(d.count) } else { c.push(try loader(c).batchesPerEpoch) }
        return 1
      })
      Binding.protectMetatable(L, -1)
      lg_pop(L, 1)
    }
    Binding.installLibrary(L, "data", dataBindings())
  }

  static func dataset(_ c: LuaCall, _ i: Int32 = 1) throws -> Dataset {
    guard let d = LuaVM.toObject(c.L, i, meta: datasetMeta, as: Dataset.self) else { throw c.typeError(i, "luagan.Dataset") }
    return d
  }
  static func loader(_ c: LuaCall) throws -> Loader {
    guard let l = LuaVM.toObject(c.L, 1, meta: loaderMeta, as: Loader.self) else { throw c.typeError(1, "luagan.Loader") }
    return l
  }

  static func pushLabels(_ c: LuaCall, _ labels: Tensor) throws { c.push(try labels.add(Tensor.scalar(1))) }

  /// ds.images, ds.labels (1-based), ds.numClasses, ds.classNames, ds.size, ds.name, ds:get(i),
  /// ds:pixelStatistics().
  static let datasetIndex: BindingBody = { c in
    let d = try dataset(c)
    switch c.isString(2) ? LuaVM.string(c.L, 2) : "" {
    case "images": c.push(try d.images())
    case "labels": c.push(try Tensor.from(d.labels.map { Double($0 + 1) }, shape: [d.count]))
    case "numClasses": c.push(d.classNames.count)
    case "classNames":
      lua_createtable(c.L, Int32(d.classNames.count), 0)
      for (i, n) in d.classNames.enumerated() { c.push(n); lua_rawseti(c.L, -2, lua_Integer(i + 1)) }
    case "size": c.push(d.count)
    case "skipped":
      lua_createtable(c.L, Int32(d.skipped.count), 0)
      for (i, s) in d.skipped.enumerated() { c.push(s); lua_rawseti(c.L, -2, lua_Integer(i + 1)) }
    case "name": c.push(d.name)
    case "get":
      lg_pushbinding(c.L, Bridge.register("Dataset.get") { c in
        let d = try dataset(c)
        let i = try TensorLib.index1(c, 2, size: d.count)
        let per = d.channels * d.height * d.width
        let px = d.pixels[(i * per)..<((i + 1) * per)].map { Float($0) / 255 }
        c.push(try Tensor.from(px, shape: [d.channels, d.height, d.width]))
        c.push(d.labels[i] + 1)
        return 2
      })
    case "subset":
      lg_pushbinding(c.L, Bridge.register("Dataset.subset") { c in
        let d = try dataset(c)
        let perClass = try c.integer(2), seed = try c.optInteger(3, 0)
        guard perClass > 0 else { throw c.argError(2, "perClass must be positive, got \(perClass)") }
        LuaVM.pushObject(c.L, try d.subset(perClass: perClass, seed: UInt64(bitPattern: Int64(seed))), meta: datasetMeta)
        return 1
      })
    case "pixelStatistics":
      lg_pushbinding(c.L, Bridge.register("Dataset.pixelStatistics") { c in
        let (m, s) = try dataset(c).pixelStatistics()
        c.push(m); c.push(s)
        return 2
      })
    default: c.pushNil()
    }
    return 1
  }

  /// Loader methods: loader:_begin(), loader:_nextInEpoch(), loader:next(), loader:state(),
  /// loader:setState(st), loader.batchSize, loader.sampleShape (epoch() is in the prelude).
  static let loaderIndex: BindingBody = { c in
    let l = try loader(c)
    let key = c.isString(2) ? LuaVM.string(c.L, 2) : ""
    // Methods written in Lua (the prelude's data.lua) come first.
    LuaVM.pushRegistry(c.L, "luagan.loaderLuaMethods")
    if lua_type(c.L, -1) == LUA_TTABLE {
      lua_pushvalue(c.L, 2)
      if lua_rawget(c.L, -2) != LUA_TNIL { return 1 }
      lg_pop(c.L, 1)
    }
    lg_pop(c.L, 1)
    let methods: [String: BindingBody] = [
      "_begin": { c in
        let l = try loader(c)
        try l.begin(epoch: try Checked.add(l.epoch, 1, "data.Loader: epoch"))
        return 0
      },
      "_nextInEpoch": { c in
        guard let (x, y) = try loader(c).nextInEpoch() else { return 0 }
        c.push(x)
        try pushLabels(c, y)
        return 2
      },
      "next": { c in
        let (x, y) = try loader(c).next()
        c.push(x)
        try pushLabels(c, y)
        return 2
      },
      "state": { c in
        let l = try loader(c)
        lua_createtable(c.L, 0, 3)
        c.push(l.epoch); c.setField(-1, "epoch")
        c.push(l.position); c.setField(-1, "position")
        c.push(Int(Int64(bitPattern: l.seed))); c.setField(-1, "seed")
        return 1
      },
      "setState": { c in
        let l = try loader(c)
        let o = try c.options(2)
        let e = try o.integer("epoch", 0), p = try o.integer("position", 0), s = try o.integer("seed")
        try o.finish()
        if let s, UInt64(bitPattern: Int64(s)) != l.seed {
          throw c.error("the saved loader state has seed \(s), this loader \(Int64(bitPattern: l.seed))")
        }
        if e == 0 { return 0 }
        try l.begin(epoch: e, position: p)
        return 0
      },
    ]
    if let body = methods[key] {
      lg_pushbinding(c.L, Bridge.register("Loader.\(key)", body))
      return 1
    }
    switch key {
    case "batchSize": c.push(l.batchSize)
    case "sampleShape": c.push(ints: l.sampleShape)
    case "epochNumber": c.push(l.epoch)
    case "dataset": LuaVM.pushObject(c.L, l.dataset, meta: datasetMeta)
    default: c.pushNil()
    }
    return 1
  }

  /// The options of imageFolder / zipDataset: {size = 32, channels = 3, fit = "crop"|"pad"|"stretch",
  /// cache = folder for the prepared pixels (none if absent), skipUnreadable = true (unreadable
  /// images left out and listed in ds.skipped; false: an error)}.
  static func preparation(_ c: LuaCall, _ i: Int32, _ what: String) throws -> (ImagePreparation, String?) {
    let o = try c.options(i)
    let size = try o.integer("size", 32), channels = try o.integer("channels", 3)
    let fitName = try o.string("fit") ?? "crop"
    let cache = try o.string("cache")
    let skip = try o.bool("skipUnreadable", true)
    try o.finish()
    guard let fit = ImagePreparation.Fit(rawValue: fitName) else {
      let names = ImagePreparation.Fit.allCases.map(\.rawValue).joined(separator: ", ")
      throw c.error("option 'fit' must be one of \(names), got '\(fitName)'")
    }
    return (try ImagePreparation(size: size, channels: channels, fit: fit, skipUnreadable: skip, what: what), cache)
  }

  /// Prints "what: prepared k/n images" while a set is decoded (in place on a terminal, every
  /// tenth otherwise), so a first run over thousands of JPEGs shows it is working.
  static func progressPrinter(_ what: String) -> ImageSets.Progress {
    let tty = isatty(2) != 0
    var last = 0.0
    return { done, total in
      var ts = timespec()
      clock_gettime(CLOCK_MONOTONIC, &ts)
      let now = Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
      let tenth = Swift.max(1, total / 10)
      guard done == total ? total >= 100 : (tty ? now - last >= 0.2 : done % tenth == 0 && total >= 100) else { return }
      last = now
      let line = "\(what): prepared \(done)/\(total) images"
      FileHandle.standardError.write(Data(((tty ? "\r" : "") + line + (tty && done < total ? "" : "\n")).utf8))
    }
  }

  static func dataBindings() -> [Fn] {
    func splitAndRoot(_ c: LuaCall, defaultRoot: String?) throws -> (String, String, Int) {
      let o = try c.options(1)
      let split = try o.string("split") ?? "train"
      let root = try o.string("root") ?? defaultRoot
      let maxBytes = try o.integer("maxBytes", DatasetReaders.defaultMaxBytes)
      try o.finish()
      guard let root else { throw c.error("option 'root' is required: the folder holding the data set's files") }
      guard maxBytes > 0 else { throw c.error("option 'maxBytes' must be positive, got \(maxBytes)") }
      return (root, split, maxBytes)
    }
    return [
      ("fashionMNIST", { c in
        let (root, split, maxBytes) = try splitAndRoot(c, defaultRoot: DatasetReaders.fashionMNISTRoot)
        LuaVM.pushObject(c.L, try DatasetReaders.fashionMNIST(root: root, split: split, maxBytes: maxBytes), meta: datasetMeta)
        return 1
      }),
      ("mnist", { c in
        let (root, split, maxBytes) = try splitAndRoot(c, defaultRoot: nil)
        LuaVM.pushObject(c.L, try DatasetReaders.mnist(root: root, split: split, maxBytes: maxBytes), meta: datasetMeta)
        return 1
      }),
      ("cifar10", { c in
        let (root, split, maxBytes) = try splitAndRoot(c, defaultRoot: nil)
        LuaVM.pushObject(c.L, try DatasetReaders.cifar10(root: root, split: split, maxBytes: maxBytes), meta: datasetMeta)
        return 1
      }),
      ("imageFolder", { c in
        let root = try c.string(1)
        let (prep, cache) = try preparation(c, 2, "data.imageFolder")
        let ds = try ImageSets.imageFolder(root: root, prep: prep, cacheDir: cache, progress: progressPrinter("data.imageFolder"))
        LuaVM.pushObject(c.L, ds, meta: datasetMeta)
        return 1
      }),
      ("zipDataset", { c in
        let path = try c.string(1)
        let (prep, cache) = try preparation(c, 2, "data.zipDataset")
        let ds = try ImageSets.zipDataset(path: path, prep: prep, cacheDir: cache, progress: progressPrinter("data.zipDataset"))
        LuaVM.pushObject(c.L, ds, meta: datasetMeta)
        return 1
      }),
      ("_setLoaderMethods", { c in
        guard c.isTable(1) else { throw c.typeError(1, "table") }
        lua_pushstring(c.L, "luagan.loaderLuaMethods")
        lua_pushvalue(c.L, 1)
        lua_rawset(c.L, lg_registryindex())
        return 0
      }),
      ("Loader", { c in
        let d = try dataset(c)
        let o = try c.options(2)
        let bs = try o.integer("batchSize", 64), shuffle = try o.bool("shuffle", true), dropLast = try o.bool("dropLast", false)
        let seed = try o.integer("seed", 0)
        let rank = try o.integer("rank", 0), ranks = try o.integer("ranks", 1)
        var transforms: [Loader.Transform] = []
        if o.has("transform") {
          lua_pushstring(c.L, "transform")
          lua_rawget(c.L, o.index)
          let t = lua_gettop(c.L)
          guard lua_type(c.L, t) == LUA_TTABLE else { throw c.error("option 'transform' must be a list of data.pad/scale/randomFlip/downscale") }
          // One transform alone (transform = data.pad(2)) is a list of one.
          lua_pushstring(c.L, "kind")
          if lua_rawget(c.L, t) != LUA_TNIL {
            lg_pop(c.L, 1)
            lua_createtable(c.L, 1, 0)
            lua_pushvalue(c.L, t)
            lua_rawseti(c.L, -2, 1)
            lua_copy(c.L, -1, t)
            lg_pop(c.L, 1)
          } else {
            lg_pop(c.L, 1)
          }
          for k in 1...Swift.max(1, Int(lua_rawlen(c.L, t))) where k <= Int(lua_rawlen(c.L, t)) {
            lua_rawgeti(c.L, t, lua_Integer(k))
            let tt = lua_gettop(c.L)
            guard lua_type(c.L, tt) == LUA_TTABLE else { throw c.error("transform \(k) is \(c.typeName(tt)), expected one made by data.pad/scale/randomFlip/downscale") }
            let to = Options(call: c, index: tt)
            let kind = try to.string("kind") ?? ""
            switch kind {
            case "pad": transforms.append(.pad(pixels: try to.integer("pixels", 0), value: try to.number("value", 0)))
            case "scale": transforms.append(.scale(lo: try to.number("lo", -1), hi: try to.number("hi", 1)))
            case "randomFlip": transforms.append(.randomFlip(p: try to.number("p", 0.5)))
            case "downscale": transforms.append(.downscale(factor: try to.integer("factor", 1)))
            default: throw c.error("transform \(k) has an unknown kind '\(kind)'")
            }
            try to.finish()
            lg_pop(c.L, 1)
          }
          lg_pop(c.L, 1)
        }
        try o.finish()
        LuaVM.pushObject(c.L, try Loader(d, batchSize: bs, shuffle: shuffle, dropLast: dropLast, seed: UInt64(bitPattern: Int64(seed)),
                                         transforms: transforms, rank: rank, ranks: ranks), meta: loaderMeta)
        return 1
      }),
    ]
  }
}
