import CLua
import Foundation
import Layers
import Tensor

/// The Swift halves of `image`, `data`, `plot`, `ckpt` and `log`: PNG, data sets, loaders,
/// plots, and the file operations checkpoints need (atomic writes, folder renames, fsync).
enum MediaLib {
  typealias Fn = TensorLib.Fn
  static let datasetMeta = UserdataKind("luagan.Dataset")
  static let loaderMeta = UserdataKind("luagan.Loader")

  static func install(_ L: LuaState) {
    for (meta, fields) in [(datasetMeta, datasetIndex), (loaderMeta, loaderIndex)] {
      _ = luaL_newmetatable(L, meta.name)
      TensorLib.setBinding(L, -1, "__index", "\(meta.name).__index", fields)
      TensorLib.setBinding(L, -1, "__gc", "\(meta.name).__gc", { c in LuaVM.releaseObject(c.L, 1, meta: meta); return 0 }, isFinalizer: true)
      TensorLib.setBinding(L, -1, "__len", "\(meta.name).__len", { c in
        if let d = LuaVM.toObject(c.L, 1, meta: datasetMeta, as: Dataset.self) { c.push(d.count) } else { c.push(try loader(c).batchesPerEpoch) }
        return 1
      })
      TensorLib.protectMetatable(L, -1)
      lg_pop(L, 1)
    }
    for (name, fns) in [("image", imageBindings()), ("data", dataBindings()), ("plot", plotBindings()),
                        ("paths", fileBindings()), ("ckpt", ckptBindings()), ("log", logBindings())] {
      lua_createtable(L, 0, Int32(fns.count))
      for (fname, body) in fns { TensorLib.setBinding(L, -1, fname, "\(name).\(fname)", body) }
      TensorLib.setGlobal(L, name)
    }
  }

  // MARK: - image

  static func range(_ o: Options, _ key: String = "range") throws -> (Double, Double)? {
    guard o.has(key) else { return nil }
    lua_pushstring(o.L, key)
    lua_rawget(o.L, o.index)
    defer { lg_pop(o.L, 1) }
    let t = lua_gettop(o.L)
    guard lua_type(o.L, t) == LUA_TTABLE, lua_rawlen(o.L, t) == 2 else { throw o.call.error("option '\(key)' must be a pair {lo, hi}") }
    var r: [Double] = []
    for k in 1...2 {
      lua_rawgeti(o.L, t, lua_Integer(k))
      guard lua_type(o.L, -1) == LUA_TNUMBER else { lg_pop(o.L, 1); throw o.call.error("option '\(key)' must hold two numbers") }
      r.append(lua_tonumberx(o.L, -1, nil))
      lg_pop(o.L, 1)
    }
    guard r[1] > r[0] else { throw o.call.error(String(format: "option '%@' {%g, %g} is empty", key, r[0], r[1])) }
    return (r[0], r[1])
  }

  static func imageBindings() -> [Fn] {
    [
      ("load", { c in
        let path = try c.string(1)
        let o = try c.options(2)
        let maxPixels = try o.integer("maxPixels", Images.defaultMaxPixels)
        try o.finish()
        guard maxPixels > 0 else { throw c.error("option 'maxPixels' must be positive, got \(maxPixels)") }
        c.push(try Images.load(path, maxPixels: maxPixels))
        return 1
      }),
      ("save", { c in
        let path = try c.string(1), x = try c.tensor(2)
        let o = try c.options(3)
        let r = try range(o) ?? (0, 1)
        try o.finish()
        try Images.save(x.detach(), to: path, range: r)
        return 0
      }),
      ("grid", { c in
        let batch = try c.tensor(1)
        let o = try c.options(2)
        let nrow = try o.integer("nrow", 8), padding = try o.integer("padding", 2), padValue = try o.number("padValue", 0)
        let r = try range(o)
        try o.finish()
        var b = batch.detach()
        if let (lo, hi) = r { b = try b.sub(Tensor.scalar(lo, dtype: b.dtype)).div(Tensor.scalar(hi - lo, dtype: b.dtype)).clamp(min: 0, max: 1) }
        c.push(try Images.grid(b, nrow: nrow, padding: padding, padValue: padValue))
        return 1
      }),
      ("resize", { c in
        let x = try c.tensor(1)
        var h = 0, w = 0
        if c.isTable(2) {
          let s = try c.intList(2, what: "size")
          guard s.count == 2 else { throw c.argError(2, "size must be a number or {height, width}") }
          (h, w) = (s[0], s[1])
        } else { h = try c.integer(2); w = h }
        let o = try c.options(3)
        let modeName = try o.string("mode") ?? "bilinear"
        try o.finish()
        guard let mode = Images.ResizeMode(rawValue: modeName) else {
          throw c.error("option 'mode' must be 'box', 'nearest' or 'bilinear', got '\(modeName)'")
        }
        c.push(try Images.resize(x.detach(), height: h, width: w, mode: mode))
        return 1
      }),
    ]
  }

  // MARK: - data

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
        try l.begin(epoch: l.epoch + 1)
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

  static func dataBindings() -> [Fn] {
    func splitAndRoot(_ c: LuaCall, defaultRoot: String?) throws -> (String, String, Int) {
      let o = try c.options(1)
      let split = try o.string("split") ?? "train"
      let root = try o.string("root") ?? defaultRoot
      let maxBytes = try o.integer("maxBytes", Datasets.defaultMaxBytes)
      try o.finish()
      guard let root else { throw c.error("option 'root' is required: the folder holding the data set's files") }
      guard maxBytes > 0 else { throw c.error("option 'maxBytes' must be positive, got \(maxBytes)") }
      return (root, split, maxBytes)
    }
    return [
      ("fashionMNIST", { c in
        let (root, split, maxBytes) = try splitAndRoot(c, defaultRoot: Datasets.fashionMNISTRoot)
        LuaVM.pushObject(c.L, try Datasets.fashionMNIST(root: root, split: split, maxBytes: maxBytes), meta: datasetMeta)
        return 1
      }),
      ("mnist", { c in
        let (root, split, maxBytes) = try splitAndRoot(c, defaultRoot: nil)
        LuaVM.pushObject(c.L, try Datasets.mnist(root: root, split: split, maxBytes: maxBytes), meta: datasetMeta)
        return 1
      }),
      ("cifar10", { c in
        let (root, split, maxBytes) = try splitAndRoot(c, defaultRoot: nil)
        LuaVM.pushObject(c.L, try Datasets.cifar10(root: root, split: split, maxBytes: maxBytes), meta: datasetMeta)
        return 1
      }),
      ("imageFolder", { c in
        let root = try c.string(1)
        let o = try c.options(2)
        let size = try o.integer("size", 32), channels = try o.integer("channels", 3)
        try o.finish()
        LuaVM.pushObject(c.L, try Datasets.imageFolder(root: root, size: size, channels: channels), meta: datasetMeta)
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
        var transforms: [Loader.Transform] = []
        if o.has("transform") {
          lua_pushstring(c.L, "transform")
          lua_rawget(c.L, o.index)
          let t = lua_gettop(c.L)
          guard lua_type(c.L, t) == LUA_TTABLE else { throw c.error("option 'transform' must be a list of data.pad/scale/randomFlip/downscale") }
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
                                         transforms: transforms), meta: loaderMeta)
        return 1
      }),
    ]
  }

  // MARK: - plot

  static func numbers(_ c: LuaCall, _ i: Int32, _ what: String) throws -> [Double] {
    if let t = try LuaVM.toTensor(c.L, i) { return try t.detach().reshape([-1]).toArray() }
    guard lua_type(c.L, i) == LUA_TTABLE else { throw c.error("\(what) must be a table of numbers or a tensor, got \(c.typeName(i))") }
    let n = Int(lua_rawlen(c.L, i))
    return try (0..<n).map { k in
      lua_rawgeti(c.L, i, lua_Integer(k + 1))
      defer { lg_pop(c.L, 1) }
      guard lua_type(c.L, -1) == LUA_TNUMBER else { throw c.error("\(what)[\(k + 1)] is \(c.typeName(-1)), expected a number") }
      return lua_tonumberx(c.L, -1, nil)
    }
  }

  static func plotBindings() -> [Fn] {
    [
      ("lines", { c in
        let path = try c.string(1)
        guard c.isTable(2) else { throw c.typeError(2, "list of series {name=, y=, x=}") }
        var series: [Plot.Series] = []
        for k in 0..<Int(lua_rawlen(c.L, 2)) {
          lua_rawgeti(c.L, 2, lua_Integer(k + 1))
          let st = lua_gettop(c.L)
          guard lua_type(c.L, st) == LUA_TTABLE else { throw c.argError(2, "series \(k + 1) is \(c.typeName(st)), expected {name=, y=, x=}") }
          let so = Options(call: c, index: st)
          let name = try so.string("name") ?? ""
          guard so.has("y") else { throw c.argError(2, "series \(k + 1) has no y values") }
          lua_pushstring(c.L, "y"); lua_rawget(c.L, st)
          let y = try numbers(c, lua_gettop(c.L), "series \(k + 1) y"); lg_pop(c.L, 1)
          var x = (0..<y.count).map { Double($0 + 1) }
          if so.has("x") { lua_pushstring(c.L, "x"); lua_rawget(c.L, st); x = try numbers(c, lua_gettop(c.L), "series \(k + 1) x"); lg_pop(c.L, 1) }
          var labels: [String] = []
          if so.has("labels") {
            lua_pushstring(c.L, "labels"); lua_rawget(c.L, st)
            let lt = lua_gettop(c.L)
            for j in 0..<Int(lua_rawlen(c.L, lt)) {
              lua_rawgeti(c.L, lt, lua_Integer(j + 1))
              labels.append(lua_type(c.L, -1) == LUA_TSTRING || lua_type(c.L, -1) == LUA_TNUMBER ? LuaVM.string(c.L, -1) : "")
              lg_pop(c.L, 1)
            }
            lg_pop(c.L, 1)
          }
          try so.finish()
          series.append(Plot.Series(name: name, x: x, y: y, labels: labels))
          lg_pop(c.L, 1)
        }
        let o = try c.options(3)
        var opts = Plot.Options()
        opts.title = try o.string("title") ?? ""
        opts.xlabel = try o.string("xlabel") ?? ""
        opts.ylabel = try o.string("ylabel") ?? ""
        opts.logy = try o.bool("logy", false)
        opts.width = try o.integer("width", 960)
        opts.height = try o.integer("height", 600)
        try o.finish()
        try Plot.lines(path: path, series: series, options: opts)
        return 0
      }),
    ]
  }

  // MARK: - paths (files and folders through the OS, never a shell), ckpt and log

  static func fileBindings() -> [Fn] {
    [
      ("mkdir", { c in try ensureDirectory(c.string(1)); return 0 }),
      ("exists", { c in
        var isDir: ObjCBool = false
        let e = FileManager.default.fileExists(atPath: try c.string(1), isDirectory: &isDir)
        c.push(e); c.push(isDir.boolValue)
        return 2
      }),
      ("list", { c in
        let path = try c.string(1)
        let names: [String]
        do { names = try FileManager.default.contentsOfDirectory(atPath: path) } catch {
          throw c.error("cannot list folder '\(path)': \(error.localizedDescription)")
        }
        lua_createtable(c.L, Int32(names.count), 0)
        for (i, n) in names.sorted().enumerated() { c.push(n); lua_rawseti(c.L, -2, lua_Integer(i + 1)) }
        return 1
      }),
      ("remove", { c in
        let p = try c.string(1)
        let last = URL(fileURLWithPath: p).standardizedFileURL.path
        guard !p.isEmpty, last != "/", !p.hasSuffix("/."), !p.hasSuffix("/.."), p != ".", p != ".." else {
          throw c.argError(1, "refusing to remove '\(p)'")
        }
        if FileManager.default.fileExists(atPath: p) {
          do { try FileManager.default.removeItem(atPath: p) } catch { throw c.error("cannot remove '\(p)': \(error.localizedDescription)") }
        }
        return 0
      }),
      ("rename", { c in
        let a = try c.string(1), b = try c.string(2)
        guard rename(a, b) == 0 else { throw c.error("cannot rename '\(a)' to '\(b)': \(String(cString: strerror(errno)))") }
        return 0
      }),
      ("fsync", { c in
        let p = try c.string(1)
        let fd = open(p, O_RDONLY)
        guard fd >= 0 else { throw c.error("cannot open '\(p)': \(String(cString: strerror(errno)))") }
        _ = fsync(fd)
        close(fd)
        return 0
      }),
      ("writeText", { c in
        let p = try c.string(1), s = try c.string(2)
        try writeAtomically(Data(s.utf8), to: p)
        return 0
      }),
      ("readText", { c in
        let p = try c.string(1)
        let d = try readRegularFile(p, what: "readText", limit: 1 << 30)
        try c.reserveHeap(d.count * 2)
        c.push(String(decoding: d, as: UTF8.self))
        return 1
      }),
    ]
  }

  static func ckptBindings() -> [Fn] { [("_pid", { c in c.push(Int(getpid())); return 1 })] }

  static func logBindings() -> [Fn] {
    [
      ("_isatty", { c in c.push(isatty(1) != 0); return 1 }),
      ("_time", { c in
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        c.push(Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9)
        return 1
      }),
    ]
  }
}
