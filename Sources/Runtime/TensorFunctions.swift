import CLua
import Datasets
import Foundation
import Tensor

/// The `tensor` library and the methods of luagan.Tensor. Uniform ops come straight from the
/// registry (`Tensor.ops`); the rest are written here. Every function is also a method:
/// `tensor.exp(x)` is `x:exp()`. Dims and indices are 1-based, negative dims count from the end.
/// `tensor`'s library functions: constructors (zeros, randn, new, arange, ...), state (seeds,
/// memory limits, config, save and load) and utilities (gradcheck, profile, clocks), and how
/// nested tables and PyTorch values become Lua values. The ops and methods are in TensorLib.swift.
extension TensorLib {
  // MARK: - Library functions (constructors and utilities)

  /// Every `tensor.*` function that is not a method: constructors, the machine and run
  /// state, and whole-tensor utilities (concatenation, gradients, files).
  static func libraryBindings() -> [Fn] { constructorBindings() + rangeBindings() + stateBindings() + utilityBindings() + fileBindings() }

  /// tensor.zeros/ones/full/rand/randn/truncNormal/randint/randperm/new.
  /// zeros/ones (a fixed value) and full (value == nil: the value follows the sizes).
  static func filled(_ value: Double?) -> BindingBody {
    { c in
      let (shape, next) = try c.shape(from: 1)
      var v = value ?? 0
      var optIndex = next
      if value == nil {
        guard !c.isNil(next) else { throw c.argError(next, "number expected for the fill value, got no value") }
        v = try c.number(next)
        optIndex = next + 1
      }
      let o = try c.options(optIndex)
      let dt = try o.dtype()
      let rg = try o.bool("requiresGrad", false)
      try o.finish()
      let t = try Tensor.full(shape, v, dtype: dt)
      t.requiresGrad = rg
      c.push(t)
      return 1
    }
  }

  static func constructorBindings() -> [Fn] {
    [
      ("zeros", filled(0)),
      ("ones", filled(1)),
      ("full", { c in
        // full(shape..., value, opts): with varargs the last number is the value.
        if c.isTable(1) { return try filled(nil)(c) }
        var n: Int32 = 0
        while n + 1 <= c.argc && c.isNumber(n + 1) { n += 1 }
        guard n >= 1 else { throw c.typeError(1, "sizes and a value") }
        var shape: [Int] = []
        for i in 1..<n { shape.append(try c.integer(i)) }
        for d in shape where d < 0 { throw c.argError(1, "size \(d) is negative") }
        let o = try c.options(n + 1)
        let dt = try o.dtype()
        try o.finish()
        c.push(try Tensor.full(shape, c.number(n), dtype: dt))
        return 1
      }),
      ("rand", { c in
        let (shape, next) = try c.shape(from: 1)
        let o = try c.options(next)
        let dt = try o.dtype(), lo = try o.number("lo", 0), hi = try o.number("hi", 1)
        try o.finish()
        c.push(try Tensor.rand(shape, lo: lo, hi: hi, dtype: dt))
        return 1
      }),
      ("randn", { c in
        let (shape, next) = try c.shape(from: 1)
        let o = try c.options(next)
        let dt = try o.dtype(), mean = try o.number("mean", 0), std = try o.number("std", 1)
        let rg = try o.bool("requiresGrad", false)
        try o.finish()
        let t = try Tensor.randn(shape, mean: mean, std: std, dtype: dt)
        t.requiresGrad = rg
        c.push(t)
        return 1
      }),
      ("truncNormal", { c in
        guard c.isTable(1) else { throw c.typeError(1, "shape table") }
        let (shape, _) = try c.shape(from: 1)
        let th = try c.number(2)
        let o = try c.options(3)
        let dt = try o.dtype()
        try o.finish()
        c.push(try Tensor.truncNormal(shape, threshold: th, dtype: dt))
        return 1
      }),
      ("randint", { c in
        let lo = try c.integer(1), hi = try c.integer(2)
        let (shape, next) = try c.shape(from: 3)
        let o = try c.options(next)
        let dt = try o.dtype()
        try o.finish()
        c.push(try Tensor.randint(lo, hi, shape, dtype: dt))
        return 1
      }),
      ("randperm", { c in
        let n = try c.integer(1)
        guard n >= 0 else { throw c.argError(1, "size must be >= 0, got \(n)") }
        c.push(try Tensor.randperm(n).add(Tensor.scalar(1)))
        return 1
      }),
      ("new", { c in
        if let t = try LuaVM.toTensor(c.L, 1) { c.push(try t.detach().clone()); return 1 }
        let o = try c.options(2)
        let dt = try o.dtype()
        let rg = try o.bool("requiresGrad", false)
        try o.finish()
        let t = try tensorFromNested(c, 1, dtype: dt)
        t.requiresGrad = rg
        c.push(t)
        return 1
      }),
    ]
  }

  /// tensor.arange / linspace / eye: evenly spaced values and the identity.
  static func rangeBindings() -> [Fn] {
    [
      ("arange", { c in
        var start = 0.0, end = 0.0, step = 1.0, optIndex: Int32 = 2
        if c.isNumber(2) {
          start = try c.number(1); end = try c.number(2)
          if c.isNumber(3) { step = try c.number(3); optIndex = 4 } else { optIndex = 3 }
        } else { end = try c.number(1) }
        let o = try c.options(optIndex)
        let dt = try o.dtype()
        try o.finish()
        c.push(try Tensor.arange(start, end, step: step, dtype: dt))
        return 1
      }),
      ("linspace", { c in
        let start = try c.number(1), end = try c.number(2), steps = try c.integer(3)
        guard steps >= 0 else { throw c.argError(3, "steps must be >= 0, got \(steps)") }
        let o = try c.options(4)
        let dt = try o.dtype()
        try o.finish()
        c.push(try Tensor.linspace(start, end, steps: steps, dtype: dt))
        return 1
      }),
      ("eye", { c in
        let n = try c.integer(1)
        let m = c.isNumber(2) ? try c.integer(2) : n
        guard n >= 0, m >= 0 else { throw c.argError(1, "sizes must be >= 0") }
        let o = try c.options(c.isNumber(2) ? 3 : 2)
        let dt = try o.dtype()
        try o.finish()
        c.push(try Tensor.eye(n, m, dtype: dt))
        return 1
      }),
    ]
  }

  /// The run's state: profiling, clock, RNG, threads, FLOPs, config, grad mode, memory.
  /// Every LG_* knob: name -> { value =, default =, set = what the environment held (or nil), help = }.
  static func pushTunables(_ c: LuaCall) {
    lua_createtable(c.L, 0, Int32(Tunables.all.count))
    for k in Tunables.all {
      lua_createtable(c.L, 0, 4)
      c.push(k.value); c.setField(-1, "value")
      c.push(k.defaultValue); c.setField(-1, "default")
      if let s = k.setting { c.push(s); c.setField(-1, "set") }
      c.push(k.help); c.setField(-1, "help")
      c.setField(-1, k.name)
    }
  }

  static func stateBindings() -> [Fn] {
    [
      ("_profileStart", { _ in Profiler.start(); return 0 }),
      ("_profileStop", { c in
        let rows = Profiler.stop()
        lua_createtable(c.L, Int32(rows.count), 0)
        for (i, r) in rows.enumerated() {
          lua_createtable(c.L, 0, 3)
          c.push(r.op); c.setField(-1, "op")
          c.push(r.calls); c.setField(-1, "calls")
          c.push(r.seconds); c.setField(-1, "seconds")
          lua_rawseti(c.L, -2, lua_Integer(i + 1))
        }
        return 1
      }),
      ("clock", { c in
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        c.push(Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9)
        return 1
      }),
      ("isTensor", { c in c.push(c.isTensor(1)); return 1 }),
      ("manualSeed", { c in
        let s = try c.integer(1)
        Generator.global.seed(UInt64(bitPattern: Int64(s)))
        return 0
      }),
      ("getRNGState", { c in c.push(ints: Generator.global.words.map { Int(Int64(bitPattern: $0)) }); return 1 }),
      ("setRNGState", { c in
        let w = try c.intList(1, what: "word")
        guard w.count == 4 else { throw c.argError(1, "expected the 4 words returned by getRNGState, got \(w.count)") }
        try Generator.global.restore(w.map { UInt64(bitPattern: Int64($0)) })
        return 0
      }),
      ("setNumThreads", { c in
        let n = try c.integer(1)
        guard n >= 1 && n <= 1024 else { throw c.argError(1, "thread count must be in 1..1024, got \(n)") }
        Parallel.threads = n
        return 0
      }),
      ("getNumThreads", { c in c.push(Parallel.threads); return 1 }),
      ("flops", { c in c.push(FlopCounter.total); return 1 }),
      ("config", { c in
        // What runs: the CPU, its ISA level, the BLAS core and who chose it, the thread count.
        let cpu = CPU.current
        lua_createtable(c.L, 0, 12)
        c.push(cpu.brand); c.setField(-1, "cpu")
        c.push(cpu.vendor); c.setField(-1, "vendor")
        c.push(cpu.family); c.setField(-1, "family")
        c.push(cpu.model); c.setField(-1, "model")
        c.push(cpu.isaLevel); c.setField(-1, "isaLevel")
        c.push(cpu.isaDescription); c.setField(-1, "isa")
        lua_createtable(c.L, Int32(cpu.features.count), 0)
        for (i, f) in cpu.features.enumerated() { c.push(f); lua_rawseti(c.L, -2, lua_Integer(i + 1)) }
        c.setField(-1, "features")
        c.push(BLASCore.current); c.setField(-1, "blasCore")
        c.push(BLASCore.best(for: cpu)); c.setField(-1, "blasBest")
        c.push(BLASCore.rank(BLASCore.current)); c.setField(-1, "blasRank")
        c.push(BLASCore.rank(BLASCore.best(for: cpu))); c.setField(-1, "blasBestRank")
        c.push(BLASCore.chosenBy); c.setField(-1, "blasChosenBy")
        c.push(BLASCore.expectedGflopsPerThread(BLASCore.best(for: cpu))); c.setField(-1, "expectedSgemmGflopsPerThread")
        c.push(Parallel.blasDescription); c.setField(-1, "openblas")
        c.push(Parallel.threads); c.setField(-1, "threads")
        c.push(SIMDKernels.level); c.setField(-1, "simdLevel")
        c.push(Build.addressSanitizer); c.setField(-1, "addressSanitizer")
        pushTunables(c); c.setField(-1, "tunables")
        return 1
      }),
      ("setGradEnabled", { c in
        let prev = GradMode.isEnabled
        GradMode.isEnabled = try c.bool(1)
        c.push(prev)
        return 1
      }),
      ("isGradEnabled", { c in c.push(GradMode.isEnabled); return 1 }),
      ("resetPeakMemory", { _ in MemoryAccounting.resetPeak(); return 0 }),
      ("setMemoryLimit", { c in
        if c.isNil(1) { MemoryAccounting.limitBytes = nil; return 0 }
        let bytes = try c.integer(1)
        guard bytes > 0 else { throw c.argError(1, "the limit must be a positive number of bytes (or nil for none), got \(bytes)") }
        MemoryAccounting.limitBytes = bytes
        return 0
      }),
      ("memory", { c in
        lua_createtable(c.L, 0, 6)
        c.push(MemoryAccounting.liveBytes); c.setField(-1, "tensorBytes")
        c.push(MemoryAccounting.peakBytes); c.setField(-1, "peakTensorBytes")
        c.push(residentBytes()); c.setField(-1, "rss")
        c.push(StorageAllocator.cachedBytes); c.setField(-1, "cachedBytes")
        c.push(Int(lg_gc_count_kb(c.L)) * 1024); c.setField(-1, "luaBytes")
        if let limit = MemoryAccounting.limitBytes { c.push(limit); c.setField(-1, "limit") }
        return 1
      }),
    ]
  }

  /// tensor.cat, tensor.grad, tensor.save/load and tensor.gradcheck.
  static func utilityBindings() -> [Fn] {
    [
      ("cat", { c in
        let list = try c.tensorList(1)
        guard let first = list.first else { throw c.argError(1, "expected a non-empty list of tensors") }
        let d = c.isNil(2) ? 0 : try c.dim(2, rank: first.rank)
        c.push(try Tensor.cat(list, dim: d))
        return 1
      }),
      ("grad", { c in
        let outputs = try c.tensorOrList(1), inputs = try c.tensorOrList(2)
        let o = try c.options(3)
        let create = try o.bool("createGraph", false)
        let retain = try o.bool("retainGraph")
        let allowUnused = try o.bool("allowUnused", false)
        var gos: [Tensor?]? = nil
        if o.has("gradOutputs") {
          lua_pushstring(c.L, "gradOutputs")
          lua_rawget(c.L, o.index)
          let t = lua_gettop(c.L)
          if let one = try LuaVM.toTensor(c.L, t) { gos = [one] } else if lua_type(c.L, t) == LUA_TTABLE {
            gos = try LuaCall(c.L, c.name).tensorList(t).map { $0 }
          } else { throw c.error("option 'gradOutputs' must be a tensor or a list of tensors") }
          lg_pop(c.L, 1)
        }
        try o.finish()
        c.push(try Tensor.grad(outputs: outputs, inputs: inputs, gradOutputs: gos, createGraph: create,
                               retainGraph: retain, allowUnused: allowUnused))
        return 1
      }),
      ("gradcheck", { c in
        guard lua_type(c.L, 1) == LUA_TFUNCTION else { throw c.typeError(1, "function") }
        let inputs = try c.tensorOrList(2)
        let o = try c.options(3)
        let second = try o.bool("secondOrder", false)
        try o.finish()
        let f: ([Tensor]) throws -> Tensor = { xs in try callLuaFunction(c, 1, xs) }
        let report = second ? try GradCheck.checkSecondOrder(f, inputs: inputs) : try GradCheck.check(f, inputs: inputs)
        c.push(report.passed)
        c.push(report.description)
        return 2
      }),
    ]
  }

  /// tensor.save / tensor.load: safetensors (the default), NumPy's .npz, PyTorch checkpoints (read only).
  static func fileBindings() -> [Fn] {
    [
      ("save", { c in
        let path = try c.string(1)
        guard c.isTable(2) else { throw c.typeError(2, "table of name = tensor") }
        var entries: [(String, Tensor)] = []
        lua_pushnil(c.L)
        while try c.next(2) {
          guard lua_type(c.L, -2) == LUA_TSTRING else {
            lg_pop(c.L, 2)
            throw c.argError(2, "keys must be tensor names (strings), got a \(c.typeName(-2)) key")
          }
          let name = LuaVM.string(c.L, -2)
          guard let t = try LuaVM.toTensor(c.L, -1) else {
            let tn = c.typeName(-1)
            lg_pop(c.L, 2)
            throw c.argError(2, "entry '\(name)' is \(tn), expected luagan.Tensor")
          }
          entries.append((name, t))
          lg_pop(c.L, 1)
        }
        var metadata: [String: String] = [:]
        if c.isTable(3) {
          lua_pushnil(c.L)
          while try c.next(3) {
            if lua_type(c.L, -2) == LUA_TSTRING && lua_type(c.L, -1) == LUA_TSTRING {
              metadata[LuaVM.string(c.L, -2)] = LuaVM.string(c.L, -1)
            }
            lg_pop(c.L, 1)
          }
        }
        entries.sort { $0.0 < $1.0 }
        if path.lowercased().hasSuffix(".npz") {      // NumPy's format (np.savez), for numpy users
          try NumPyFiles.saveNpz(entries, to: path)
        } else {
          try Safetensors.save(entries, to: path, metadata: metadata)
        }
        return 0
      }),
      ("load", { c in
        let path = try c.string(1)
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir), !isDir.boolValue else {
          throw c.error("tensor.load: no such file '\(path)'\(isDir.boolValue ? " (it is a folder)" : "")")
        }
        // A PyTorch checkpoint (.pth/.pt/.bin, a zip holding data.pkl or torch's legacy stream) is
        // read without running its pickle; its dicts become tables, nested as they were.
        if let format = TorchFiles.format(of: path) {
          try pushTorchValue(c, try TorchFiles.load(path, as: format, what: "tensor.load"), file: path)
          lua_createtable(c.L, 0, 0)
          return 2
        }
        // Another zip is NumPy's .npz (np.savez, pytorch-fid's statistics); anything else safetensors.
        let head = fileHead(path, count: 4)
        let (tensors, metadata) = head == [0x50, 0x4B, 0x03, 0x04] || head == [0x50, 0x4B, 0x05, 0x06]
          ? (try NumPyFiles.loadNpz(path), [:]) : try Safetensors.load(path)
        lua_createtable(c.L, 0, Int32(tensors.count))
        for (name, t) in tensors { c.push(t); c.setField(-1, name) }
        lua_createtable(c.L, 0, Int32(metadata.count))
        for (k, v) in metadata { c.push(v); c.setField(-1, k) }
        return 2
      }),
    ]
  }

  /// Pushes what a PyTorch checkpoint holds: dicts as tables (str, int, float and bool keys),
  /// lists and tuples as arrays, tensors, numbers (ints as Lua integers), str and bytes as
  /// strings, booleans, None as nil. Nesting is bounded by TorchFiles; `file` names errors.
  static func pushTorchValue(_ c: LuaCall, _ v: TorchValue, file: String) throws {
    let L = c.L
    try c.reserve(8)
    switch v {
    case .none: lua_pushnil(L)
    case .bool(let b): c.push(b)
    case .int(let i): c.push(i)
    case .float(let d): c.push(d)
    case .tensor(let t): c.push(t)
    case .string(let s): try pushBytes(c, Array(s.utf8))
    case .bytes(let b): try pushBytes(c, b)
    case .list(let items):
      try c.reserveHeap(items.count * 16 + 64)
      lua_createtable(L, Int32(clamping: items.count), 0)
      for (k, item) in items.enumerated() {
        try pushTorchValue(c, item, file: file)
        lua_rawseti(L, -2, lua_Integer(k + 1))
      }
    case .dict(let pairs):
      try c.reserveHeap(pairs.count * 40 + 64)
      lua_createtable(L, 0, Int32(clamping: pairs.count))
      for (key, value) in pairs {
        switch key {
        case .string, .bytes, .int, .bool: break
        case .float(let d) where !d.isNaN: break
        default:
          throw TensorError("tensor.load: '\(file)' has a dict key that is not a string, a number or a boolean (None, NaN, a tuple "
                            + "or a tensor), which a Lua table cannot hold")
        }
        try pushTorchValue(c, key, file: file)
        try pushTorchValue(c, value, file: file)
        lua_rawset(L, -3)
      }
    }
  }

  static func pushBytes(_ c: LuaCall, _ b: [UInt8]) throws {
    try c.reserveHeap(b.count + 32)
    // Lua copies the bytes (NULs included); an empty string may come with a null pointer.
    b.withUnsafeBytes { raw in _ = lua_pushlstring(c.L, raw.baseAddress?.assumingMemoryBound(to: CChar.self), raw.count) }
  }

  /// Calls the Lua function at `fi` with tensors, expecting one tensor back (protected).
  static func callLuaFunction(_ c: LuaCall, _ fi: Int32, _ xs: [Tensor]) throws -> Tensor {
    let top = lua_gettop(c.L)
    defer { lua_settop(c.L, top) }
    try c.reserve(xs.count + 8)
    lua_pushvalue(c.L, fi)
    for x in xs { c.push(x) }
    guard lg_pcall(c.L, Int32(xs.count), 1) == LUA_OK else {
      throw c.error("the function raised an error: \(lua_type(c.L, -1) == LUA_TSTRING ? LuaVM.string(c.L, -1) : c.typeName(-1))")
    }
    guard let t = try LuaVM.toTensor(c.L, -1) else {
      throw c.error("the function must return a tensor, got \(c.typeName(-1))")
    }
    return t
  }

  /// tensor.new: a number, or nested tables of numbers, rectangular.
  static func tensorFromNested(_ c: LuaCall, _ i: Int32, dtype: DType) throws -> Tensor {
    if c.isNumber(i) { return try Tensor.scalar(try c.number(i), dtype: dtype) }
    guard c.isTable(i) else { throw c.typeError(i, "number or table of numbers") }
    // The shape is read off the first element at each depth, then every row is checked.
    var shape: [Int] = []
    lua_pushvalue(c.L, i)
    var depth = 0
    while lua_type(c.L, -1) == LUA_TTABLE {
      guard depth < 32 else { lua_settop(c.L, lua_gettop(c.L) - Int32(depth) - 1); throw c.argError(i, "tables nested too deeply") }
      shape.append(Int(lua_rawlen(c.L, -1)))
      if shape.last == 0 { break }
      lua_rawgeti(c.L, -1, 1)
      depth += 1
    }
    lua_settop(c.L, lua_gettop(c.L) - Int32(depth) - 1)
    let n = try Tensor.checkedCount(shape)
    // Rows may be one table shared many times (or have borders far past their entries): the
    // shape can claim far more values than the tables hold, so the result is checked first.
    try Storage.checkAllocatable(count: n, elementBytes: 8 + dtype.byteSize, what: "tensor.new's \(formatShape(shape)) values")
    var values = [Double]()
    values.reserveCapacity(n)
    func walk(_ level: Int, _ path: [Int]) throws {
      let idx = lua_gettop(c.L)
      guard lua_type(c.L, idx) == LUA_TTABLE else {
        throw c.argError(i, "element \(path.map { "[\($0)]" }.joined()) is \(c.typeName(idx)), expected a table of \(shape[level]) values")
      }
      let len = Int(lua_rawlen(c.L, idx))
      guard len == shape[level] else {
        throw c.argError(i, "row \(path.map { "[\($0)]" }.joined()) has \(len) elements but the first row at that depth has "
                         + "\(shape[level]) (tables must be rectangular)")
      }
      for k in 1...Swift.max(len, 1) where k <= len {
        lua_rawgeti(c.L, idx, lua_Integer(k))
        defer { lg_pop(c.L, 1) }
        if level == shape.count - 1 {
          guard lua_type(c.L, -1) == LUA_TNUMBER else {
            throw c.argError(i, "element \((path + [k]).map { "[\($0)]" }.joined()) is \(c.typeName(-1)), expected a number")
          }
          values.append(lua_tonumberx(c.L, -1, nil))
        } else {
          try walk(level + 1, path + [k])
        }
      }
    }
    lua_pushvalue(c.L, i)
    defer { lg_pop(c.L, 1) }
    try walk(0, [])
    return try Tensor.from(values, shape: shape, dtype: dtype)
  }
}

/// Resident set size of this process, from /proc/self/statm.
func residentBytes() -> Int {
  guard let s = try? String(contentsOfFile: "/proc/self/statm", encoding: .utf8) else { return 0 }
  let parts = s.split(separator: " ")
  guard parts.count > 1, let pages = Int(parts[1]) else { return 0 }
  return pages * Int(sysconf(Int32(_SC_PAGESIZE)))
}
