import CLua
import Foundation
import Layers
import Tensor

/// `optim`: Adam and SGD (userdata `luagan.Optimizer`) with parameter groups and state dicts,
/// and the Swift core of optim.EMA (the Lua wrapper in the prelude keeps `ema.model`).
enum OptimLib {
  typealias Fn = Binding.Fn

  static func install(_ L: LuaState) {
    for (meta, methods) in [(LuaVM.optimizerMeta, optimizerMethods()), (LuaVM.emaMeta, [Fn]())] {
      _ = luaL_newmetatable(L, meta.name)
      lua_pushstring(L, "__index")
      lua_createtable(L, 0, Int32(methods.count))
      for (name, body) in methods { Binding.set(L, -1, name, "Optimizer.\(name)", body) }
      lua_rawset(L, -3)
      Binding.set(L, -1, "__gc", "\(meta.name).__gc", { c in LuaVM.releaseObject(c.L, 1, meta: meta); return 0 }, isFinalizer: true)
      if meta.name == LuaVM.optimizerMeta.name {
        Binding.set(L, -1, "__tostring", "Optimizer.__tostring", { c in
          let o = try optimizer(c)
          c.push("\(o.typeName) (\(o.groups.count) group\(o.groups.count == 1 ? "" : "s"), \(o.allParameters.count) parameters: " +
                 o.groups.map { g in g.options.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: ", ") }.joined(separator: " | ") + ")")
          return 1
        })
      }
      Binding.protectMetatable(L, -1)
      lg_pop(L, 1)
    }
    lua_createtable(L, 0, 8)
    for (name, body) in libraryBindings() { Binding.set(L, -1, name, "optim.\(name)", body) }
    Binding.setGlobal(L, "optim")
  }

  static func optimizer(_ c: LuaCall) throws -> Optimizer {
    guard let o = LuaVM.toObject(c.L, 1, meta: LuaVM.optimizerMeta, as: Optimizer.self) else { throw c.typeError(1, "luagan.Optimizer") }
    return o
  }

  /// Lua options → optimizer option names (betas = {b1, b2} → beta1, beta2).
  static func readOptions(_ o: Options, adam: Bool) throws -> [String: Double] {
    var out: [String: Double] = [:]
    if let lr = try o.number("lr") { out["lr"] = lr }
    if let wd = try o.number("weightDecay") { out["weightDecay"] = wd }
    if adam {
      if let e = try o.number("eps") { out["eps"] = e }
      if let h = try o.bool("epsilonHat") { out["epsilonHat"] = h ? 1 : 0 }
      if o.has("betas") {
        lua_pushstring(o.L, "betas")
        lua_rawget(o.L, o.index)
        defer { lg_pop(o.L, 1) }
        let t = lua_gettop(o.L)
        guard lua_type(o.L, t) == LUA_TTABLE, lua_rawlen(o.L, t) == 2 else { throw o.call.error("option 'betas' must be a pair {beta1, beta2}") }
        for (k, name) in ["beta1", "beta2"].enumerated() {
          lua_rawgeti(o.L, t, lua_Integer(k + 1))
          guard lua_type(o.L, -1) == LUA_TNUMBER else { lg_pop(o.L, 1); throw o.call.error("option 'betas' must hold two numbers") }
          out[name] = lua_tonumberx(o.L, -1, nil)
          lg_pop(o.L, 1)
        }
      }
    } else {
      if let m = try o.number("momentum") { out["momentum"] = m }
      if let d = try o.number("dampening") { out["dampening"] = d }
      if let n = try o.bool("nesterov") { out["nesterov"] = n ? 1 : 0 }
    }
    return out
  }

  /// Parameters as a module, a list of tensors, or a list of groups {params = ..., lr = ...}.
  static func groups(_ c: LuaCall, adam: Bool) throws -> [Optimizer.Group] {
    let defaults = try c.options(2)
    let base = try readOptions(defaults, adam: adam)
    try defaults.finish()
    if let m = LuaVM.toModule(c.L, 1) { return [Optimizer.Group(params: m.parameters(), options: base)] }
    guard c.isTable(1) else { throw c.typeError(1, "list of parameters, list of groups, or a module") }
    lua_rawgeti(c.L, 1, 1)
    let firstIsGroup = lua_type(c.L, -1) == LUA_TTABLE
    lg_pop(c.L, 1)
    if !firstIsGroup { return [Optimizer.Group(params: try paramList(c, 1, "parameters"), options: base)] }
    let n = Int(lua_rawlen(c.L, 1))
    var out: [Optimizer.Group] = []
    for g in 0..<n {
      lua_rawgeti(c.L, 1, lua_Integer(g + 1))
      let gi = lua_gettop(c.L)
      guard lua_type(c.L, gi) == LUA_TTABLE else { throw c.argError(1, "group \(g + 1) is \(c.typeName(gi)), expected a table {params = ...}") }
      let o = Options(call: c, index: gi)
      guard o.has("params") else { throw c.argError(1, "group \(g + 1) has no 'params'") }
      lua_pushstring(c.L, "params")
      lua_rawget(c.L, gi)
      let params: [Tensor]
      if let m = LuaVM.toModule(c.L, -1) { params = m.parameters() } else { params = try paramList(c, lua_gettop(c.L), "group \(g + 1) params") }
      lg_pop(c.L, 1)
      var opts = base
      for (k, v) in try readOptions(o, adam: adam) { opts[k] = v }
      try o.finish()
      out.append(Optimizer.Group(params: params, options: opts))
      lg_pop(c.L, 1)
    }
    return out
  }

  static func paramList(_ c: LuaCall, _ i: Int32, _ what: String) throws -> [Tensor] {
    guard lua_type(c.L, i) == LUA_TTABLE else { throw c.error("\(what) must be a list of tensors, got \(c.typeName(i))") }
    let n = Int(lua_rawlen(c.L, i))
    var out: [Tensor] = []   // not reserved: lua_rawlen is a border, not a count
    for k in 0..<n {
      lua_rawgeti(c.L, i, lua_Integer(k + 1))
      defer { lg_pop(c.L, 1) }
      guard let t = try LuaVM.toTensor(c.L, -1) else {
        throw c.error("\(what): entry \(k + 1) is \(c.typeName(-1)), not a parameter tensor")
      }
      out.append(t)
    }
    return out
  }

  static func libraryBindings() -> [Fn] {
    [
      ("Adam", { c in
        LuaVM.pushObject(c.L, try Adam(groups: groups(c, adam: true)), meta: LuaVM.optimizerMeta)
        return 1
      }),
      ("SGD", { c in
        LuaVM.pushObject(c.L, try SGD(groups: groups(c, adam: false)), meta: LuaVM.optimizerMeta)
        return 1
      }),
      ("_EMA", { c in
        let avg = try c.module(1)
        LuaVM.pushObject(c.L, try EMA(average: avg, decay: c.optNumber(2, 0.9999), startIter: c.optInteger(3, 0)), meta: LuaVM.emaMeta)
        return 1
      }),
      ("_emaUpdate", { c in
        guard let e = LuaVM.toObject(c.L, 1, meta: LuaVM.emaMeta, as: EMA.self) else { throw c.typeError(1, "luagan.EMA") }
        let m = try c.module(2)
        try e.update(m, iteration: c.isNil(3) ? nil : c.integer(3))
        return 0
      }),
      ("_emaSettings", { c in
        guard let e = LuaVM.toObject(c.L, 1, meta: LuaVM.emaMeta, as: EMA.self) else { throw c.typeError(1, "luagan.EMA") }
        c.push(e.decay); c.push(e.startIter)
        return 2
      }),
      ("_emaSetStart", { c in
        guard let e = LuaVM.toObject(c.L, 1, meta: LuaVM.emaMeta, as: EMA.self) else { throw c.typeError(1, "luagan.EMA") }
        e.startIter = try c.integer(2)
        return 0
      }),
    ]
  }

  static func optimizerMethods() -> [Fn] {
    [
      ("step", { c in try optimizer(c).step(); return 0 }),
      ("zeroGrad", { c in try optimizer(c).zeroGrad(); return 0 }),
      ("resetState", { c in try optimizer(c).resetState(); return 0 }),
      ("setLr", { c in
        let o = try optimizer(c)
        let lr = try c.number(2)
        let group = c.isNil(3) ? nil : try c.integer(3)
        if let g = group, g < 1 || g > o.groups.count { throw c.argError(3, "group \(g) out of range 1..\(o.groups.count)") }
        try o.setOption("lr", lr, group: group.map { $0 - 1 })
        return 0
      }),
      ("getLr", { c in
        let o = try optimizer(c)
        let g = try c.optInteger(2, 1)
        guard g >= 1 && g <= o.groups.count else { throw c.argError(2, "group \(g) out of range 1..\(o.groups.count)") }
        c.push(o.groups[g - 1].options["lr"] ?? 0)
        return 1
      }),
      ("parameters", { c in c.push(try optimizer(c).allParameters); return 1 }),
      ("stateDict", { c in
        try pushState(c, optimizer(c))
        return 1
      }),
      ("loadStateDict", { c in
        let o = try optimizer(c)
        guard c.isTable(2) else { throw c.typeError(2, "optimizer state (from stateDict)") }
        try o.load(entries: readEntries(c, count: o.allParameters.count), groupOptions: readGroupOptions(c, o))
        return 0
      }),
    ]
  }

  /// Pushes `o`'s state as torch.optim's state_dict: {state = {[i] = {step, exp_avg, ...}},
  /// paramGroups = {{lr, betas, ..., params = {i...}}}}.
  static func pushState(_ c: LuaCall, _ o: Optimizer) throws {
    let isAdam = o is Adam
    lua_createtable(c.L, 0, 2)
    lua_createtable(c.L, 0, 0)
    for (i, e) in o.stateEntries().enumerated() {
      guard let e else { continue }
      lua_createtable(c.L, 0, 3)
      c.push(e.step); c.setField(-1, "step")
      for (n, t) in e.tensors { c.push(t); c.setField(-1, n) }
      lua_rawseti(c.L, -2, lua_Integer(i + 1))
    }
    c.setField(-2, "state")
    lua_createtable(c.L, Int32(o.groups.count), 0)
    var index = 1
    for (gi, g) in o.groups.enumerated() {
      lua_createtable(c.L, 0, 6)
      for (k, v) in g.options.sorted(by: { $0.key < $1.key }) where !(isAdam && k.hasPrefix("beta")) {
        if k == "nesterov" || k == "epsilonHat" { c.push(v != 0) } else { c.push(v) }
        c.setField(-1, k)
      }
      if isAdam {
        lua_createtable(c.L, 2, 0)
        c.push(g.options["beta1"]!); lua_rawseti(c.L, -2, 1)
        c.push(g.options["beta2"]!); lua_rawseti(c.L, -2, 2)
        c.setField(-2, "betas")
      }
      c.push(ints: Array(index..<(index + g.params.count)))
      c.setField(-2, "params")
      index += g.params.count
      lua_rawseti(c.L, -2, lua_Integer(gi + 1))
    }
    c.setField(-2, "paramGroups")
  }

  /// The per-parameter entries of a state table at argument 2 (validated: indices 1..count,
  /// whole steps, tensors).
  static func readEntries(_ c: LuaCall, count n: Int) throws -> [(step: Int, tensors: [String: Tensor])?] {
    var entries = [(step: Int, tensors: [String: Tensor])?](repeating: nil, count: n)
    lua_pushstring(c.L, "state")
    guard lua_rawget(c.L, 2) == LUA_TTABLE else { throw c.argError(2, "the state has no 'state' table") }
    let st = lua_gettop(c.L)
    lua_pushnil(c.L)
    while try c.next(st) {
      var ok: Int32 = 0
      let i = Int(lua_tointegerx(c.L, -2, &ok))
      guard ok != 0, i >= 1, i <= n, lua_type(c.L, -1) == LUA_TTABLE else {
        lg_pop(c.L, 2)
        throw c.argError(2, "state entries must be parameter numbers 1..\(n) with tables")
      }
      let et = lua_gettop(c.L)
      var tensors: [String: Tensor] = [:], step = 0
      lua_pushnil(c.L)
      while try c.next(et) {
        let key = lua_type(c.L, -2) == LUA_TSTRING ? LuaVM.string(c.L, -2) : "?"
        if key == "step" {
          var isInt: Int32 = 0
          let v = lua_tointegerx(c.L, -1, &isInt)
          guard c.isNumber(-1), isInt != 0, v >= 0, v <= 1 << 53 else {
            lg_pop(c.L, 2)
            throw c.argError(2, "state \(i): step must be a whole number in 0..2^53")
          }
          step = Int(v)
        } else if let t = try LuaVM.toTensor(c.L, -1) {
          tensors[key] = t
        } else {
          lg_pop(c.L, 2)
          throw c.argError(2, "state \(i): '\(key)' must be a tensor")
        }
        lg_pop(c.L, 1)
      }
      entries[i - 1] = (step, tensors)
      lg_pop(c.L, 1)
    }
    lg_pop(c.L, 1)
    return entries
  }

  /// Each group's options from the state table at argument 2 (or `o`'s own when it has none);
  /// a group whose parameter count differs from `o`'s is an error.
  static func readGroupOptions(_ c: LuaCall, _ o: Optimizer) throws -> [[String: Double]] {
    var groupOptions: [[String: Double]] = []
    lua_pushstring(c.L, "paramGroups")
    if lua_rawget(c.L, 2) == LUA_TTABLE {
      let gt = lua_gettop(c.L)
      for g in 0..<Int(lua_rawlen(c.L, gt)) {
        lua_rawgeti(c.L, gt, lua_Integer(g + 1))
        let gti = lua_gettop(c.L)
        guard lua_type(c.L, gti) == LUA_TTABLE else { throw c.argError(2, "paramGroups[\(g + 1)] must be a table") }
        var opts: [String: Double] = [:]
        lua_pushstring(c.L, "params")
        if lua_rawget(c.L, gti) == LUA_TTABLE {
          let saved = Int(lua_rawlen(c.L, -1))
          if g < o.groups.count && saved != o.groups[g].params.count {
            throw c.argError(2, "the state has \(saved) parameters in group \(g + 1), this optimizer \(o.groups[g].params.count)")
          }
        }
        lg_pop(c.L, 1)
        lua_pushnil(c.L)
        while try c.next(gti) {
          let key = lua_type(c.L, -2) == LUA_TSTRING ? LuaVM.string(c.L, -2) : ""
          if key == "betas", lua_type(c.L, -1) == LUA_TTABLE {
            lua_rawgeti(c.L, -1, 1); opts["beta1"] = lua_tonumberx(c.L, -1, nil); lg_pop(c.L, 1)
            lua_rawgeti(c.L, -1, 2); opts["beta2"] = lua_tonumberx(c.L, -1, nil); lg_pop(c.L, 1)
          } else if key == "nesterov" || key == "epsilonHat", lua_type(c.L, -1) == LUA_TBOOLEAN {
            opts[key] = lua_toboolean(c.L, -1) != 0 ? 1 : 0
          } else if key != "params", lua_type(c.L, -1) == LUA_TNUMBER {
            opts[key] = lua_tonumberx(c.L, -1, nil)
          }
          lg_pop(c.L, 1)
        }
        groupOptions.append(opts)
        lg_pop(c.L, 1)
      }
    } else {
      groupOptions = o.groups.map { $0.options }
    }
    lg_pop(c.L, 1)
    return groupOptions
  }
}
