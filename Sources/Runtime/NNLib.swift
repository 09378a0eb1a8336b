import CLua
import Foundation
import Layers
import Tensor

/// The Swift half of `nn`: constructors of the built-in layers, the module tree methods the
/// Lua classes call (names beginning with `_` are the prelude's), spectral norm, spectra
/// utilities and initializers. Modules are userdata `luagan.Module` whose user value table
/// holds the Lua-side fields; assigning a tensor or module to a field registers it here.
enum NNLib {
  typealias Fn = Binding.Fn

  static func install(_ L: LuaState) {
    // The module metatable.
    _ = luaL_newmetatable(L, LuaVM.moduleMeta.name)
    let meta = lua_gettop(L)
    lua_pushstring(L, "__index")
    lg_pushbinding(L, Bridge.register("Module.__index", fieldFallback))
    lg_pushmoduleindex(L)
    lua_rawset(L, meta)
    for (name, body) in moduleMetamethods() {
      Binding.set(L, meta, name, "Module.\(name)", body, isFinalizer: name == "__gc")
    }
    Binding.protectMetatable(L, meta)
    lg_pop(L, 1)
    // The weak map from Swift module to userdata.
    LuaVM.createWeakMap(L, LuaVM.moduleMap)

    // The nn table (the prelude adds the classes), with nn.utils and nn.init.
    lua_createtable(L, 0, 64)
    for (name, body) in constructors() + treeBindings() { Binding.set(L, -1, name, "nn.\(name)", body) }
    lua_createtable(L, 0, 4)
    for (name, body) in utilsBindings() { Binding.set(L, -1, name, "nn.utils.\(name)", body) }
    LuaCall(L, "").setField(-2, "utils")
    lua_createtable(L, 0, 12)
    for (name, body) in initBindings() { Binding.set(L, -1, name, "nn.init.\(name)", body) }
    LuaCall(L, "").setField(-2, "init")
    Binding.setGlobal(L, "nn")
  }

  // MARK: - Constructors (wrapped by the Lua classes nn.Linear, nn.Conv2d, ...)

  static func kernelArg(_ c: LuaCall, _ i: Int32) throws -> (Int, Int) {
    if c.isTable(i) {
      let k = try c.intList(i, what: "kernel size")
      guard k.count == 2 else { throw c.argError(i, "kernel size must be a number or {kH, kW}, got \(k.count) values") }
      return (k[0], k[1])
    }
    let k = try c.integer(i)
    return (k, k)
  }

  static func constructors() -> [Fn] {
    func make(_ build: @escaping (LuaCall) throws -> Module) -> BindingBody {
      { c in c.push(try build(c)); return 1 }
    }
    return [
      ("_Linear", make { c in
        let o = try c.options(3)
        let m = try Linear(c.integer(1), c.integer(2), bias: o.bool("bias", true), equalized: o.bool("equalized", false),
                           gain: o.number("gain", 2.0.squareRoot()))
        try o.finish()
        return m
      }),
      ("_Conv2d", make { c in
        let o = try c.options(4)
        let m = try Conv2d(c.integer(1), c.integer(2), kernel: kernelArg(c, 3), stride: o.pair("stride", (1, 1)),
                           padding: o.pair("padding", (0, 0)), bias: o.bool("bias", true), equalized: o.bool("equalized", false),
                           gain: o.number("gain", 2.0.squareRoot()), outputsUsed: o.integer("outputsUsed"))
        try o.finish()
        return m
      }),
      ("_ConvTranspose2d", make { c in
        let o = try c.options(4)
        let m = try ConvTranspose2d(c.integer(1), c.integer(2), kernel: kernelArg(c, 3), stride: o.pair("stride", (1, 1)),
                                    padding: o.pair("padding", (0, 0)), outputPadding: o.pair("outputPadding", (0, 0)),
                                    bias: o.bool("bias", true))
        try o.finish()
        return m
      }),
      ("_Embedding", make { c in try Embedding(c.integer(1), c.integer(2)) }),
      ("_BatchNorm2d", make { c in
        let o = try c.options(2)
        let m = try BatchNorm2d(c.integer(1), eps: o.number("eps", 1e-5), momentum: o.number("momentum", 0.1), affine: o.bool("affine", true),
                                inPlace: o.bool("inPlace", false))
        try o.finish()
        return m
      }),
      ("_ConditionalBatchNorm2d", make { c in
        let o = try c.options(2)
        let classes = try o.integer("numClasses"), inputSize = try o.integer("inputSize")
        let sn = try o.bool("spectralNorm", true), snEps = try o.number("snEps", 1e-12)
        let eps = try o.number("eps", 1e-5), momentum = try o.number("momentum", 0.1)
        try o.finish()
        let condition: ConditionalBatchNorm2d.Condition
        switch (classes, inputSize) {
        case (let k?, nil): condition = .classes(k)
        case (nil, let n?): condition = .vector(inputSize: n, spectralNorm: sn, snEps: snEps)
        default: throw c.error("give exactly one of numClasses (per-class gains) or inputSize (linear gains of a condition vector)")
        }
        return try ConditionalBatchNorm2d(c.integer(1), condition: condition, eps: eps, momentum: momentum)
      }),
      ("_SelfAttention", make { c in
        let o = try c.options(2)
        let m = try SelfAttention(c.integer(1), spectralNorm: o.bool("spectralNorm", true), snEps: o.number("snEps", 1e-12))
        try o.finish()
        return m
      }),
      ("_Identity", make { _ in Elementwise.identity() }),
      ("_ReLU", make { _ in Elementwise.relu() }),
      ("_Tanh", make { _ in Elementwise.tanh() }),
      ("_Sigmoid", make { _ in Elementwise.sigmoid() }),
      ("_LeakyReLU", make { c in Elementwise.leakyRelu(try c.optNumber(1, 0.01)) }),
      ("_Upsample", make { c in try Elementwise.upsample(c.integer(1)) }),
      ("_AvgPool2d", make { c in
        let o = try c.options(2)
        let k = try c.integer(1)
        let m = try Elementwise.avgPool2d(k, stride: o.integer("stride"), padding: o.integer("padding", 0))
        try o.finish()
        return m
      }),
      ("_PixelNorm", make { c in
        let o = try c.options(1)
        let m = PixelNorm(eps: try o.number("eps", 1e-8))
        try o.finish()
        return m
      }),
      ("_MinibatchStdDev", make { c in try MinibatchStdDev(groupSize: c.optInteger(1, 4)) }),
      ("_ScriptModule", make { c in ScriptModule(typeName: try c.string(1)) }),
      ("_Sequential", { c in try container(c, try Sequential()) }),
      ("_ModuleList", { c in try container(c, try ModuleList()) }),
      ("SpectralNorm", { c in
        let m = try c.module(1)
        guard let wm = m as? WeightedModule else {
          throw c.argError(1, "\(m.typeName) has no weight to normalize (Linear, Conv2d, ConvTranspose2d or Embedding expected)")
        }
        let o = try c.options(2)
        let eps = try o.number("eps", 1e-12), iterations = try o.integer("nPowerIterations", 1)
        let evalPowerStep = try o.bool("evalPowerStep", false)
        var dim: Int? = nil
        if let d = try o.integer("dim") { dim = try LuaCall.convertDim(d, rank: 2) { throw c.error($0) } }
        try o.finish()
        try wm.applySpectralNorm(eps: eps, iterations: iterations, dim: dim, evalPowerStep: evalPowerStep)
        lua_settop(c.L, 1)
        return 1
      }),
    ]
  }

  /// A Sequential or ModuleList from the modules given as arguments (or one table of them).
  /// Children are read one at a time (never all on the stack at once: a list may be long).
  static func container(_ c: LuaCall, _ m: Module) throws -> Int32 {
    let fromTable = c.argc == 1 && c.isTable(1)
    let n = fromTable ? Int(lua_rawlen(c.L, 1)) : Int(c.argc)
    // Check every child first, so a bad element leaves no half-built container behind.
    for k in 0..<n {
      if fromTable {
        lua_rawgeti(c.L, 1, lua_Integer(k + 1))
        defer { lg_pop(c.L, 1) }
        guard LuaVM.toModule(c.L, -1) != nil else { throw c.argError(1, "element \(k + 1) is \(c.typeName(-1)), expected luagan.Module") }
      } else if LuaVM.toModule(c.L, Int32(k + 1)) == nil {
        throw c.argError(Int32(k + 1), "luagan.Module expected, got \(c.typeName(Int32(k + 1)))")
      }
    }
    c.push(m)
    let me = lua_gettop(c.L)
    for k in 0..<n {
      if fromTable { lua_rawgeti(c.L, 1, lua_Integer(k + 1)) } else { lua_pushvalue(c.L, Int32(k + 1)) }
      try appendChild(c, me, m, lua_gettop(c.L), LuaVM.toModule(c.L, -1)!)
      lua_settop(c.L, me)
    }
    return 1
  }

  /// Appends `child` (the userdata at `childIndex`) to a container at `me`.
  static func appendChild(_ c: LuaCall, _ me: Int32, _ m: Module, _ childIndex: Int32, _ child: Module) throws {
    let name = String(m.childSlots.count)
    if let s = m as? Sequential { try s.append(child) } else if let l = m as? ModuleList { try l.append(child) } else {
      throw c.error("\(m.typeName) is not a container (Sequential or ModuleList)")
    }
    lua_pushvalue(c.L, childIndex)
    LuaVM.setModuleField(c.L, me, name)
  }

  // MARK: - Tree methods (called by the nn.Module methods in the prelude)

  static func pushNamed(_ c: LuaCall, _ items: [(String, Tensor)]) -> Int32 {
    lua_createtable(c.L, Int32(items.count), 0)
    for (k, (n, _)) in items.enumerated() { c.push(n); lua_rawseti(c.L, -2, lua_Integer(k + 1)) }
    c.push(items.map { $0.1 })
    return 2
  }

  static func treeBindings() -> [Fn] { walkBindings() + stateBindings() + structureBindings() }

  /// Calling a module and walking its tree: forward, parameters, buffers, children, train, zeroGrad, names.
  static func walkBindings() -> [Fn] {
    [
      ("_forward", { c in
        let m = try c.module(1)
        var inputs: [Tensor] = []
        let indexPositions = Set(m.indexInputs)
        for i in stride(from: Int32(2), through: c.argc, by: 1) {
          let pos = Int(i) - 2
          if indexPositions.contains(pos) {
            let (v, s) = try c.indices(i)  // 1-based in Lua, 0-based here
            inputs.append(try Tensor.from(v.map(Double.init), shape: s))
          } else if c.isNil(i) {
            throw c.argError(i, "luagan.Tensor expected, got nil (\(m.typeName) forward input \(pos + 1))")
          } else {
            inputs.append(try c.tensorOrNumber(i, like: nil))
          }
        }
        c.push(try m.forward(inputs))
        return 1
      }),
      ("_parameters", { c in c.push(try c.module(1).parameters()); return 1 }),
      ("_namedParameters", { c in pushNamed(c, try c.module(1).namedParameters()) }),
      ("_namedBuffers", { c in pushNamed(c, try c.module(1).namedBuffers()) }),
      ("_namedChildren", { c in
        let m = try c.module(1)
        lua_createtable(c.L, Int32(m.childSlots.count), 0)
        for (k, s) in m.childSlots.enumerated() { c.push(s.name); lua_rawseti(c.L, -2, lua_Integer(k + 1)) }
        lua_createtable(c.L, Int32(m.childSlots.count), 0)
        for (k, s) in m.childSlots.enumerated() { c.push(s.module); lua_rawseti(c.L, -2, lua_Integer(k + 1)) }
        return 2
      }),
      ("_train", { c in try c.module(1).setTraining(c.bool(2)); return 0 }),
      ("_convert", { c in     // m:double() / m:float() (lua/nn.lua)
        let s = try c.string(2)
        guard let d = DType(rawValue: s) else { throw c.argError(2, "'float32' or 'float64' expected, got '\(s)'") }
        try c.module(1).convert(to: d)
        return 0
      }),
      ("_zeroGrad", { c in try c.module(1).zeroGrad(); return 0 }),
      ("_parameterCount", { c in c.push(try c.module(1).parameterCount); return 1 }),
      ("_typeName", { c in c.push(try c.module(1).typeName); return 1 }),
      ("_tostring", { c in c.push(try c.module(1).treeDescription()); return 1 }),
    ]
  }

  /// State dicts: stateDict, stateDictNames, loadStateDict.
  static func stateBindings() -> [Fn] {
    [
      ("_stateDict", { c in
        let sd = try c.module(1).stateDict()
        lua_createtable(c.L, 0, Int32(sd.count))
        for (n, t) in sd { c.push(t); c.setField(-1, n) }
        return 1
      }),
      ("_stateDictNames", { c in
        let sd = try c.module(1).stateDict()
        lua_createtable(c.L, Int32(sd.count), 0)
        for (k, (n, _)) in sd.enumerated() { c.push(n); lua_rawseti(c.L, -2, lua_Integer(k + 1)) }
        return 1
      }),
      ("_loadStateDict", { c in
        let m = try c.module(1)
        guard c.isTable(2) else { throw c.typeError(2, "table of name = tensor") }
        var entries: [String: Tensor] = [:]
        lua_pushnil(c.L)
        while try c.next(2) {
          guard lua_type(c.L, -2) == LUA_TSTRING, let t = try LuaVM.toTensor(c.L, -1) else {
            let kn = c.typeName(-2), vn = c.typeName(-1)
            lg_pop(c.L, 2)
            throw c.argError(2, "entries must be name = tensor, got a \(kn) key with a \(vn) value")
          }
          entries[LuaVM.string(c.L, -2)] = t
          lg_pop(c.L, 1)
        }
        let o = try c.options(3)
        let strict = try o.bool("strict", true)
        try o.finish()
        try m.loadStateDict(entries, strict: strict)
        return 0
      }),
    ]
  }

  /// Building and inspecting the tree from Lua: registering tensors, adding and copying
  /// children, the class registry and metamethods.
  static func structureBindings() -> [Fn] {
    [
      ("_registerParameter", { c in
        let m = try c.module(1)
        let name = try c.string(2)
        if c.isNil(3) { m.setParameter(name, nil); lua_pushnil(c.L); LuaVM.setModuleField(c.L, 1, name); return 0 }
        let t = try c.tensor(3)
        guard t.isLeaf else { throw c.argError(3, "a parameter must be a leaf tensor (use detach())") }
        t.requiresGrad = true
        m.setParameter(name, t)
        lua_pushvalue(c.L, 3)
        LuaVM.setModuleField(c.L, 1, name)
        return 0
      }),
      ("_registerBuffer", { c in
        let m = try c.module(1)
        let name = try c.string(2)
        let t = try c.optTensor(3)
        let o = try c.options(4)
        let persistent = try o.bool("persistent", true)
        try o.finish()
        m.setBuffer(name, t, persistent: persistent)
        lua_pushvalue(c.L, 3)
        LuaVM.setModuleField(c.L, 1, name)
        return 0
      }),
      ("_add", { c in
        let m = try c.module(1)
        let child = try c.module(2)
        try appendChild(c, 1, m, 2, child)
        lua_settop(c.L, 1)
        return 1
      }),
      ("_copy", { c in c.push(try c.module(1).copy()); return 1 }),
      ("_child", { c in
        let m = try c.module(1)
        if let ch = m.child(try c.string(2)) { c.push(ch) } else { c.pushNil() }
        return 1
      }),
      ("_tensorNamed", { c in
        let m = try c.module(1)
        let name = try c.string(2)
        if let t = m.parameter(name) ?? m.buffer(name) { c.push(t) } else { c.pushNil() }
        return 1
      }),
      ("_isModule", { c in c.push(LuaVM.isUserdata(c.L, 1, LuaVM.moduleMeta)); return 1 }),
      ("_setClassRegistry", { c in
        guard c.isTable(1) else { throw c.typeError(1, "table") }
        lua_pushstring(c.L, LuaVM.moduleClasses)
        lua_pushvalue(c.L, 1)
        lua_rawset(c.L, lg_registryindex())
        return 0
      }),
      ("_setModuleMetamethod", { c in
        let name = try c.string(1)
        guard ["__call", "__close", "__pairs"].contains(name), lua_type(c.L, 2) == LUA_TFUNCTION else {
          throw c.error("only __call, __close and __pairs can be set from Lua")
        }
        LuaVM.pushRegistry(c.L, LuaVM.moduleMeta.name)
        lua_pushstring(c.L, name)
        lua_pushvalue(c.L, 2)
        lua_rawset(c.L, -3)
        return 0
      }),
    ]
  }

  // MARK: - Metamethods

  /// Fields the instance table and class do not have: registered parameters, buffers and
  /// children by name, `training`, the normalized `weight` under spectral norm, and children
  /// of containers by 1-based position.
  static let fieldFallback: BindingBody = { c in
    let m = try c.module(1)
    if c.isNumber(2) {
      let k = try c.integer(2)
      if k >= 1 && k <= m.childSlots.count { c.push(m.childSlots[k - 1].module) } else { c.pushNil() }
      return 1
    }
    guard c.isString(2) else { c.pushNil(); return 1 }
    let key = LuaVM.string(c.L, 2)
    if key == "training" { c.push(m.training); return 1 }
    if let t = m.parameter(key) ?? m.buffer(key) { c.push(t); return 1 }
    if let ch = m.child(key) { c.push(ch); return 1 }
    if key == "weight", let wm = m as? WeightedModule, let w = try wm.currentNormalizedWeight() { c.push(w); return 1 }
    c.pushNil()
    return 1
  }

  static func moduleMetamethods() -> [Fn] {
    [
      ("__newindex", { c in
        let m = try c.module(1)
        guard c.isString(2) else { throw c.error("module fields are named by strings, got a \(c.typeName(2)) key") }
        let key = LuaVM.string(c.L, 2)
        guard key != "__class", key != "training" else {
          throw c.error("'\(key)' is reserved (use train() and eval() to change the mode)")
        }
        if let t = try LuaVM.toTensor(c.L, 3) {
          if t.requiresGrad {
            guard t.isLeaf else {
              throw c.error("\(m.typeName).\(key): a parameter must be a leaf tensor; use x:detach():requiresGrad(true)")
            }
            m.setParameter(key, t)
          } else {
            if m.parameter(key) != nil {
              throw c.error("\(m.typeName).\(key) holds a parameter: assign a tensor with requiresGrad(true), or nil first")
            }
            m.setBuffer(key, t)
          }
        } else if let child = LuaVM.toModule(c.L, 3) {
          do { try m.setChild(key, child) } catch let e as TensorError { throw c.error("\(m.typeName).\(key): \(e.message)") }
        } else if c.isNil(3) {
          m.setParameter(key, nil)  // clears a parameter, buffer or child of that name
        } else {
          if m.parameter(key) != nil || m.buffer(key) != nil || m.child(key) != nil {
            throw c.error("\(m.typeName).\(key) holds a \(m.child(key) != nil ? "submodule" : "tensor"); assign nil first to store a \(c.typeName(3)) there")
          }
          if c.isTable(3) {
            lua_rawgeti(c.L, 3, 1)
            let holdsModules = LuaVM.isUserdata(c.L, -1, LuaVM.moduleMeta)
            lg_pop(c.L, 1)
            if holdsModules {
              throw c.error("\(m.typeName).\(key): a plain table of modules is not registered (its parameters would be invisible); use nn.ModuleList{...}")
            }
          }
        }
        lua_pushvalue(c.L, 3)
        LuaVM.setModuleField(c.L, 1, key)
        return 0
      }),
      ("__len", { c in c.push(try c.module(1).childSlots.count); return 1 }),
      ("__tostring", { c in c.push(try c.module(1).treeDescription()); return 1 }),
      ("__gc", { c in LuaVM.releaseObject(c.L, 1, meta: LuaVM.moduleMeta); return 0 }),
    ]
  }

  // MARK: - nn.utils and nn.init

  static func utilsBindings() -> [Fn] {
    [
      ("singularValues", { c in
        let w = try c.tensor(1)
        let k = try c.optInteger(2, 1)
        let values = try Spectra.singularValues(w, k: k)
        lua_createtable(c.L, Int32(values.count), 0)
        for (i, v) in values.enumerated() { c.push(v); lua_rawseti(c.L, -2, lua_Integer(i + 1)) }
        return 1
      }),
      ("clampSpectrum", { c in c.push(try Spectra.clampTop(c.tensor(1), sigmaClamp: c.number(2))); return 1 }),
      // nn.utils.spectralNormEvalPowerStep(model, on): BigGAN-PyTorch's eval-mode spectral norm
      // (one fresh power step per forward, nothing stored) on every spectrally normalized
      // module in the tree; returns how many there are.
      ("spectralNormEvalPowerStep", { c in
        let m = try c.module(1), on = try c.bool(2)
        c.push(m.namedModules().filter { ($0.1 as? WeightedModule)?.setSpectralNormEvalPowerStep(on) ?? false }.count)
        return 1
      }),
      // nn.utils.crossReplicaBN(model, on): every BatchNorm2d and ConditionalBatchNorm2d in the
      // tree normalizes training batches with the statistics of all ranks' batches together
      // (under mpirun; a single process is unchanged); returns how many there are.
      ("crossReplicaBN", { c in
        let m = try c.module(1), on = try c.bool(2)
        let norms = m.namedModules().compactMap { $0.1 as? CrossReplicaNormalization }
        for n in norms { n.crossReplica = on }
        c.push(norms.count)
        return 1
      }),
      ("_standing", { c in     // nn.utils.standingStats (lua/nn.lua) brackets its passes with these
        if try c.bool(1) { StandingStatistics.begin() } else { StandingStatistics.end() }
        return 0
      }),
    ]
  }

  static func initBindings() -> [Fn] {
    func inPlace(_ body: @escaping (LuaCall, Tensor) throws -> Void) -> BindingBody {
      { c in
        let t = try c.tensor(1)
        try body(c, t)
        lua_settop(c.L, 1)
        return 1
      }
    }
    return [
      ("orthogonal", inPlace { c, t in try Init.orthogonal(t, gain: c.optNumber(2, 1)) }),
      ("normal", inPlace { c, t in try Init.normal(t, mean: c.optNumber(2, 0), std: c.optNumber(3, 1)) }),
      ("uniform", inPlace { c, t in
        let a = try c.optNumber(2, 0), b = try c.optNumber(3, 1)
        guard a <= b else { throw c.argError(3, "upper bound \(b) is below lower bound \(a)") }
        try Init.uniform(t, a, b)
      }),
      ("xavierUniform", inPlace { c, t in try Init.xavierUniform(t, gain: c.optNumber(2, 1)) }),
      ("xavierNormal", inPlace { c, t in try Init.xavierNormal(t, gain: c.optNumber(2, 1)) }),
      ("kaimingNormal", inPlace { c, t in
        let o = try c.options(2)
        let a = try o.number("a", 0), mode = try o.string("mode") ?? "fanIn", nl = try o.string("nonlinearity") ?? "leakyRelu"
        try o.finish()
        try Init.kaimingNormal(t, a: a, mode: mode, nonlinearity: nl)
      }),
      ("kaimingUniform", inPlace { c, t in
        let o = try c.options(2)
        let a = try o.number("a", 0), mode = try o.string("mode") ?? "fanIn", nl = try o.string("nonlinearity") ?? "leakyRelu"
        try o.finish()
        try Init.kaimingUniform(t, a: a, mode: mode, nonlinearity: nl)
      }),
      ("zeros", inPlace { _, t in try Init.constant(t, 0) }),
      ("ones", inPlace { _, t in try Init.constant(t, 1) }),
      ("constant", inPlace { c, t in try Init.constant(t, c.number(2)) }),
      ("calculateGain", { c in c.push(try Init.gain(c.string(1), c.isNil(2) ? nil : c.number(2))); return 1 }),
    ]
  }
}
