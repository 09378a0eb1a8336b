import CLua
import Datasets
import Foundation
import Tensor

/// The `tensor` library and the methods of luagan.Tensor. Uniform ops come straight from the
/// registry (`Tensor.ops`); the rest are written here. Every function is also a method:
/// `tensor.exp(x)` is `x:exp()`. Dims and indices are 1-based, negative dims count from the end.
enum TensorLib {
  typealias Fn = (String, BindingBody)

  static func install(_ L: LuaState) {
    let methods = registryBindings() + shapeBindings() + mathBindings() + nnBindings() + autogradBindings()
    // The method table, shared by __index and the library table.
    lua_createtable(L, 0, Int32(methods.count))
    for (name, body) in methods { setBinding(L, -1, name, "tensor.\(name)", body) }
    let methodsIndex = lua_gettop(L)

    // The library table: every method, plus constructors and utilities.
    lua_createtable(L, 0, Int32(methods.count + 32))
    lua_pushnil(L)
    while lg_pnext(L, methodsIndex) == 1 {
      lua_pushvalue(L, -2)
      lua_rotate(L, -2, 1)
      lua_rawset(L, -4)
    }
    for (name, body) in libraryBindings() + [signaturesBinding] { setBinding(L, -1, name, "tensor.\(name)", body) }
    let libIndex = lua_gettop(L)

    // The metatable.
    LuaVM.pushRegistry(L, LuaVM.tensorMeta.name)
    let meta = lua_gettop(L)
    lua_pushstring(L, "__index")
    lua_pushvalue(L, methodsIndex)
    lg_pushbinding(L, Bridge.register("Tensor.__index", indexFallback))
    lg_pushindex(L)
    lua_rawset(L, meta)
    for (name, body) in metamethods() {
      setBinding(L, meta, name, "Tensor.\(name)", body, isFinalizer: name == "__gc")
    }
    protectMetatable(L, meta)
    lg_pop(L, 1)

    // Globals and package.loaded.
    lua_pushvalue(L, libIndex)
    setGlobal(L, "tensor")
    lua_rawgeti(L, lg_registryindex(), lua_Integer(LUA_RIDX_GLOBALS))
    lua_pushstring(L, "package")
    lua_rawget(L, -2)
    lua_pushstring(L, "loaded")
    lua_rawget(L, -2)
    lua_pushstring(L, "tensor")
    lua_pushvalue(L, libIndex)
    lua_rawset(L, -3)
    lua_settop(L, methodsIndex - 1)
  }

  static func setBinding(_ L: LuaState, _ table: Int32, _ key: String, _ qualified: String, _ body: @escaping BindingBody, isFinalizer: Bool = false) {
    let t = lua_absindex(L, table)
    lua_pushstring(L, key)
    lg_pushbinding(L, Bridge.register(qualified, isFinalizer: isFinalizer, body))
    lua_rawset(L, t)
  }

  /// metatable.__metatable = false: getmetatable and setmetatable refuse to show or replace it.
  static func protectMetatable(_ L: LuaState, _ meta: Int32) {
    let m = lua_absindex(L, meta)
    lua_pushstring(L, "__metatable")
    lua_pushboolean(L, 0)
    lua_rawset(L, m)
  }

  static func setGlobal(_ L: LuaState, _ name: String) {
    lua_rawgeti(L, lg_registryindex(), lua_Integer(LUA_RIDX_GLOBALS))
    lua_pushstring(L, name)
    lua_rotate(L, -3, -1)
    lua_rawset(L, -3)
    lg_pop(L, 1)
  }

  // MARK: - Ops from the registry

  /// The Lua calling convention of each registry signature:
  ///   unary        `t:name()` and `tensor.name(t)`
  ///   unaryNumber  `t:name(number)`; the number may be omitted when the op has a default
  ///   binary       `tensor.name(a, b)` and `a:name(b)`; a Lua number on either side is a constant
  ///   pair         `a:name(b)`, both tensors
  ///   unaryInteger `t:name(n)`, n an integer
  ///   reduction    `t:name()`, `t:name(dim)`, `t:name(dim, keepdim)`, `t:name({dims...}, keepdim)`
  ///   alongDim     `t:name(dim)`, the dim required
  ///   alongDimKeep `t:name(dim)`, `t:name(dim, keepdim)`
  ///   sizes        `t:name(2, -1, 4)` or `t:name({2, -1, 4})`
  ///   dims         `t:name(3, 1, 2)` or `t:name({3, 1, 2})`
  ///   indexAlongDim `t:name(dim, indices)`, indices a table or tensor of 1-based indices
  ///   pieces       `t:name(n)`, `t:name(n, dim)` (dim 1 by default); returns a table of tensors
  /// Dims are 1-based, negative from the end. Irregular ops are bound by hand below; internal
  /// ones (adjoints used by pullbacks) are not bound.
  static func registryBindings() -> [Fn] {
    Tensor.ops.compactMap { spec -> Fn? in
      switch spec.signature {
      case .unary(let f):
        return (spec.name, { c in c.push(try f(c.tensor(1))); return 1 })
      case .unaryNumber(let f, let def):
        return (spec.name, { c in
          let x = try c.tensor(1)
          let v = def != nil ? try c.optNumber(2, def!) : try c.number(2)
          c.push(try f(x, v))
          return 1
        })
      case .binary(let f):
        return (spec.name, { c in
          let a = c.isNumber(1) ? nil : try c.tensor(1)
          let b = try c.tensorOrNumber(2, like: a)
          c.push(try f(a ?? c.tensorOrNumber(1, like: b), b))
          return 1
        })
      case .pair(let f):
        return (spec.name, { c in c.push(try f(c.tensor(1), c.tensor(2))); return 1 })
      case .unaryInteger(let f):
        return (spec.name, { c in c.push(try f(c.tensor(1), c.integer(2))); return 1 })
      case .reduction(let f):
        return (spec.name, { c in
          let x = try c.tensor(1)
          let (dims, keep) = try reductionArgs(c, x, from: 2)
          c.push(try f(x, dims, keep))
          return 1
        })
      case .alongDim(let f):
        return (spec.name, { c in
          let x = try c.tensor(1)
          c.push(try f(x, c.dim(2, rank: x.rank)))
          return 1
        })
      case .alongDimKeep(let f):
        return (spec.name, { c in
          let x = try c.tensor(1)
          c.push(try f(x, c.dim(2, rank: x.rank), c.optBool(3, false)))
          return 1
        })
      case .sizes(let f):
        return (spec.name, { c in c.push(try f(c.tensor(1), sizesAllowingMinusOne(c, from: 2))); return 1 })
      case .dims(let f):
        return (spec.name, { c in
          let x = try c.tensor(1)
          c.push(try f(x, dimList(c, x, from: 2)))
          return 1
        })
      case .indexAlongDim(let f):
        return (spec.name, { c in
          let x = try c.tensor(1)
          let d = try c.dim(2, rank: x.rank)
          let (values, shape) = try c.indices(3)
          c.push(try f(x, d, IndexArray(shape: shape, values: values)))
          return 1
        })
      case .pieces(let f):
        return (spec.name, { c in
          let x = try c.tensor(1)
          c.push(try f(x, c.integer(2), c.isNil(3) ? 0 : c.dim(3, rank: x.rank)))
          return 1
        })
      case .irregular, .internal:
        return nil
      }
    }
  }

  /// `tensor._signatures()`: name -> signature kind of every bound registry op, from which
  /// the misuse sweep (scripts/tests/misuse.lua) derives each op's bad calls.
  static let signaturesBinding: Fn = ("_signatures", { c in
    lua_createtable(c.L, 0, Int32(Tensor.ops.count))
    for spec in Tensor.ops where spec.signature.kind != "internal" {
      c.push(spec.signature.kind)
      lua_setfield(c.L, -2, spec.name)
    }
    return 1
  })

  /// `(dim | {dims} | nil, keepdim)` as 0-based dims.
  static func reductionArgs(_ c: LuaCall, _ x: Tensor, from i: Int32) throws -> ([Int]?, Bool) {
    var dims: [Int]? = nil
    if c.isTable(i) {
      dims = try c.intList(i, what: "dimension").map { d in try LuaCall.convertDim(d, rank: x.rank) { throw c.argError(i, $0) } }
    } else if !c.isNil(i) {
      dims = [try c.dim(i, rank: x.rank)]
    }
    return (dims, try c.optBool(i + 1, false))
  }

  // MARK: - Shape and layout

  /// Sizes given as varargs or a table, allowing -1 (reshape, view, expand).
  static func sizesAllowingMinusOne(_ c: LuaCall, from i: Int32) throws -> [Int] {
    let s: [Int]
    if c.isTable(i) { s = try c.intList(i, what: "size") } else {
      var v: [Int] = [], j = i
      while j <= c.argc { v.append(try c.integer(j)); j += 1 }
      s = v
    }
    for d in s where d < -1 { throw c.argError(i, "size \(d) is invalid in \(formatShape(s))") }
    return s
  }

  static func dimList(_ c: LuaCall, _ x: Tensor, from i: Int32) throws -> [Int] {
    let raw: [Int]
    if c.isTable(i) { raw = try c.intList(i, what: "dimension") } else {
      var v: [Int] = [], j = i
      while j <= c.argc { v.append(try c.integer(j)); j += 1 }
      raw = v
    }
    return try raw.map { d in try LuaCall.convertDim(d, rank: x.rank) { throw c.argError(i, $0) } }
  }

  /// Methods about a tensor's shape and layout, its views, its indexing and its storage.
  static func shapeBindings() -> [Fn] { inspectionBindings() + viewBindings() }

  /// shape, size, dim, numel, item, totable, dtype, isContiguous; to/float/double, copy, fill, zero, free.
  static func inspectionBindings() -> [Fn] {
    [
      ("shape", { c in c.push(ints: try c.tensor(1).shape); return 1 }),
      ("size", { c in
        let x = try c.tensor(1)
        if c.isNil(2) { c.push(ints: x.shape) } else { c.push(x.shape[try c.dim(2, rank: x.rank)]) }
        return 1
      }),
      ("dim", { c in c.push(try c.tensor(1).rank); return 1 }),
      ("numel", { c in c.push(try c.tensor(1).numel); return 1 }),
      ("item", { c in c.push(try c.tensor(1).item()); return 1 }),
      ("totable", { c in try pushNested(c, try c.tensor(1)); return 1 }),
      ("dtype", { c in c.push(try c.tensor(1).dtype.rawValue); return 1 }),
      ("isContiguous", { c in c.push(try c.tensor(1).isContiguous); return 1 }),
      ("to", { c in
        let x = try c.tensor(1)
        let s = try c.string(2)
        guard let d = DType(rawValue: s) else { throw c.argError(2, "'float32' or 'float64' expected, got '\(s)'") }
        c.push(try x.to(d))
        return 1
      }),
      ("float", { c in c.push(try c.tensor(1).to(.float32)); return 1 }),
      ("double", { c in c.push(try c.tensor(1).to(.float64)); return 1 }),
      ("copy", { c in c.push(try c.tensor(1).copy_(c.tensorOrNumber(2, like: nil))); return 1 }),
      ("fill", { c in c.push(try c.tensor(1).fill_(c.number(2))); return 1 }),
      ("zero", { c in c.push(try c.tensor(1).fill_(0)); return 1 }),
      ("free", { c in
        guard LuaVM.isUserdata(c.L, 1, LuaVM.tensorMeta) else { throw c.typeError(1, "luagan.Tensor") }
        LuaVM.releaseTensor(c.L, 1, unmap: true)  // idempotent: a closed tensor stays closed
        return 0
      }),
    ]
  }

  /// Views and padding with irregular arguments: transpose, t, squeeze, unsqueeze, flatten, narrow, select,
  /// pad (reshape, view, expand, permute, flip, indexSelect, gather, split, chunk come from the registry).
  static func viewBindings() -> [Fn] {
    [
      ("transpose", { c in
        let x = try c.tensor(1)
        c.push(try x.transpose(c.dim(2, rank: x.rank), c.dim(3, rank: x.rank)))
        return 1
      }),
      ("t", { c in c.push(try c.tensor(1).t()); return 1 }),
      ("squeeze", { c in
        let x = try c.tensor(1)
        c.push(c.isNil(2) ? try x.squeeze() : try x.squeeze(dim: c.dim(2, rank: x.rank)))
        return 1
      }),
      ("unsqueeze", { c in
        let x = try c.tensor(1)
        c.push(try x.unsqueeze(dim: c.dim(2, rank: x.rank, allowEnd: true)))
        return 1
      }),
      ("flatten", { c in
        let x = try c.tensor(1)
        if x.rank == 0 { c.push(try x.reshape([1])); return 1 }
        let a = c.isNil(2) ? 0 : try c.dim(2, rank: x.rank), b = c.isNil(3) ? x.rank - 1 : try c.dim(3, rank: x.rank)
        c.push(try x.flatten(startDim: a, endDim: b))
        return 1
      }),
      ("narrow", { c in
        let x = try c.tensor(1)
        let d = try c.dim(2, rank: x.rank)
        let start = try c.integer(3), length = try c.integer(4)
        guard start >= 1 else { throw c.argError(3, "start must be >= 1 (indices are 1-based), got \(start)") }
        c.push(try x.narrow(dim: d, start: start - 1, length: length))
        return 1
      }),
      ("select", { c in
        let x = try c.tensor(1)
        let d = try c.dim(2, rank: x.rank)
        c.push(try x.select(dim: d, index: index1(c, 3, size: x.shape[d])))
        return 1
      }),
      ("pad", { c in
        let x = try c.tensor(1)
        let p = try c.intList(2, what: "padding")
        guard p.count % 2 == 0, p.count / 2 <= x.rank else {
          throw c.argError(2, "expected pairs {left, right, top, bottom, ...} for at most \(x.rank) dims, got \(p.count) values")
        }
        var pads = [(Int, Int)](repeating: (0, 0), count: x.rank)
        for k in 0..<(p.count / 2) { pads[x.rank - 1 - k] = (p[2 * k], p[2 * k + 1]) }
        c.push(try x.pad(pads, value: c.optNumber(3, 0)))
        return 1
      }),
    ]
  }

  /// A 1-based (or negative) index into a dim of `size`, as 0-based.
  static func index1(_ c: LuaCall, _ i: Int32, size: Int) throws -> Int {
    let k = try c.integer(i)
    let r = k > 0 ? k - 1 : size + k
    guard k != 0, r >= 0, r < size else {
      throw c.argError(i, "index \(k) out of range for a dimension of size \(size) (expected 1..\(size) or -\(size)..-1)")
    }
    return r
  }

  /// Nested tables of numbers, one level per dim (one stack slot per level).
  static func pushNested(_ c: LuaCall, _ x: Tensor) throws {
    // A Lua table holds a number in 16 bytes, plus 56 per table.
    let (tables, o1) = x.shape.dropLast().reduce((1, false)) { acc, d in
      let (p, o) = acc.0.multipliedReportingOverflow(by: Swift.max(d, 1)); return (p, acc.1 || o)
    }
    let (cells, o2) = x.numel.multipliedReportingOverflow(by: 16)
    guard !o1, !o2, !tables.multipliedReportingOverflow(by: 56).overflow else { throw c.error("a tensor of shape \(formatShape(x.shape)) is too large for Lua tables") }
    try c.reserveHeap(cells + tables * 56)
    try c.reserve(x.rank + 4)
    let v = try x.toArray()
    if x.rank == 0 { c.push(v.first ?? 0); return }
    let strides = Tensor.contiguousStrides(x.shape)
    func build(_ dim: Int, _ base: Int) {
      let n = x.shape[dim]
      lua_createtable(c.L, Int32(n), 0)
      for i in 0..<n {
        if dim == x.rank - 1 { lua_pushnumber(c.L, v[base + i]) } else { build(dim + 1, base + i * strides[dim]) }
        lua_rawseti(c.L, -2, lua_Integer(i + 1))
      }
    }
    build(0, 0)
  }

  // MARK: - Math with irregular signatures

  static func mathBindings() -> [Fn] {
    [
      ("where", { c in
        let cond = try c.tensor(1)
        let a = c.isNumber(2) ? nil : try c.tensor(2)
        let b = try c.tensorOrNumber(3, like: a ?? cond)
        c.push(try Tensor.where(cond, a ?? c.tensorOrNumber(2, like: b), b))
        return 1
      }),
      ("lerp", { c in
        let a = try c.tensor(1)
        c.push(try a.lerp(c.tensorOrNumber(2, like: a), c.tensorOrNumber(3, like: a)))
        return 1
      }),
      ("pow", { c in
        if c.isNumber(1) {  // number ^ tensor
          let e = try c.tensor(2)
          c.push(try Tensor.scalar(c.number(1), dtype: e.dtype).pow(e))
          return 1
        }
        let x = try c.tensor(1)
        c.push(c.isNumber(2) ? try x.pow(c.number(2)) : try x.pow(c.tensor(2)))
        return 1
      }),
      ("clamp", { c in
        let x = try c.tensor(1)
        let lo = c.isNil(2) ? nil : try c.number(2), hi = c.isNil(3) ? nil : try c.number(3)
        c.push(try x.clamp(min: lo, max: hi))
        return 1
      }),
      ("var", { c in try varianceBinding(c, std: false) }),
      ("std", { c in try varianceBinding(c, std: true) }),
      ("max", { c in try extremeBinding(c, largest: true) }),
      ("min", { c in try extremeBinding(c, largest: false) }),
      ("argmax", { c in try argBinding(c, largest: true) }),
      ("argmin", { c in try argBinding(c, largest: false) }),
      ("linear", { c in c.push(try Tensor.linear(c.tensor(1), c.tensor(2), c.optTensor(3))); return 1 }),
    ]
  }

  static func varianceBinding(_ c: LuaCall, std: Bool) throws -> Int32 {
    let x = try c.tensor(1)
    var dims: [Int]? = nil, keep = false, optIndex: Int32 = 2
    if !c.isTable(2) || (c.isTable(2) && lua_rawlen(c.L, 2) > 0) {
      (dims, keep) = try reductionArgs(c, x, from: 2)
      optIndex = c.isTable(4) ? 4 : (c.isTable(3) ? 3 : 4)
    }
    let o = try c.options(optIndex)
    let unbiased = try o.bool("unbiased", true)
    try o.finish()
    c.push(std ? try x.std(dims: dims, unbiased: unbiased, keepDim: keep) : try x.variance(dims: dims, unbiased: unbiased, keepDim: keep))
    return 1
  }

  static func extremeBinding(_ c: LuaCall, largest: Bool) throws -> Int32 {
    let x = try c.tensor(1)
    if c.isNil(2) {
      c.push(largest ? try x.max() : try x.min())
      return 1
    }
    let d = try c.dim(2, rank: x.rank)
    let keep = try c.optBool(3, false)
    let (values, idx) = largest ? try x.max(dim: d, keepDim: keep) : try x.min(dim: d, keepDim: keep)
    c.push(values)
    c.push(try Tensor.from(idx.map { Double($0 + 1) }, shape: values.shape))
    return 2
  }

  static func argBinding(_ c: LuaCall, largest: Bool) throws -> Int32 {
    let x = try c.tensor(1)
    let d = c.isNil(2) ? nil : try c.dim(2, rank: x.rank)
    let keep = try c.optBool(3, false)
    let (idx, shape) = largest ? try x.argmax(dim: d, keepDim: keep) : try x.argmin(dim: d, keepDim: keep)
    c.push(try Tensor.from(idx.map { Double($0 + 1) }, shape: shape))
    return 1
  }

  // MARK: - Convolution, pooling, embedding

  static func nnBindings() -> [Fn] {
    [
      ("conv2d", { c in
        let x = try c.tensor(1), w = try c.tensor(2), b = try c.optTensor(3)
        let o = try c.options(4)
        let spec = ConvSpec(stride: try o.pair("stride", (1, 1)), padding: try o.pair("padding", (0, 0)))
        try o.finish()
        c.push(try Tensor.conv2d(x, w, bias: b, spec: spec))
        return 1
      }),
      ("convTranspose2d", { c in
        let x = try c.tensor(1), w = try c.tensor(2), b = try c.optTensor(3)
        let o = try c.options(4)
        let spec = ConvSpec(stride: try o.pair("stride", (1, 1)), padding: try o.pair("padding", (0, 0)))
        let op = try o.pair("outputPadding", (0, 0))
        try o.finish()
        c.push(try Tensor.convTranspose2d(x, w, bias: b, spec: spec, outputPadding: op))
        return 1
      }),
      ("avgPool2d", { c in
        let x = try c.tensor(1), k = try c.integer(2)
        let o = try c.options(3)
        let s = try o.integer("stride", k), p = try o.integer("padding", 0), inc = try o.bool("countIncludePad", true)
        try o.finish()
        c.push(try x.avgPool2d(kernel: k, stride: s, padding: p, countIncludePad: inc))
        return 1
      }),
      ("maxPool2d", { c in
        let x = try c.tensor(1), k = try c.integer(2)
        let o = try c.options(3)
        let s = try o.integer("stride", k), p = try o.integer("padding", 0)
        try o.finish()
        c.push(try x.maxPool2d(kernel: k, stride: s, padding: p))
        return 1
      }),
      ("batchNorm", { c in
        // tensor.batchNorm(x, scale, shift, {eps=}) -> y, mean, var (batch statistics, biased variance)
        let x = try c.tensor(1), scale = try c.optTensor(2), shift = try c.optTensor(3)
        let o = try c.options(4)
        let eps = try o.number("eps", 1e-5)
        try o.finish()
        let (y, mean, variance) = try Tensor.batchNorm(x, scale: scale, shift: shift, eps: eps)
        c.push(y)
        c.push(try Tensor.from(mean, shape: [mean.count], dtype: y.dtype))
        c.push(try Tensor.from(variance, shape: [variance.count], dtype: y.dtype))
        return 3
      }),
      ("embedding", { c in
        let w = try c.tensor(1)
        let (idx, shape) = try c.indices(2)
        c.push(try Tensor.embedding(w, indices: idx, indexShape: shape))
        return 1
      }),
    ]
  }

  // MARK: - Autograd

  static func autogradBindings() -> [Fn] {
    [
      ("requiresGrad", { c in
        let x = try c.tensor(1)
        if c.isNil(2) { c.push(x.requiresGrad); return 1 }
        let flag = try c.bool(2)
        if !flag && !x.isLeaf { throw c.error("cannot turn off requiresGrad on a non-leaf tensor (use detach())") }
        x.requiresGrad = flag
        lua_settop(c.L, 1)
        return 1
      }),
      ("backward", { c in
        let y = try c.tensor(1)
        var gi: Int32 = 2
        var gradient: Tensor? = nil
        if !c.isNil(2) && !c.isTable(2) { gradient = try c.tensor(2); gi = 3 } else if c.isNil(2) && c.argc >= 3 { gi = 3 }
        let o = try c.options(gi)
        let retain = try o.bool("retainGraph", false), create = try o.bool("createGraph", false)
        try o.finish()
        try y.backward(gradient, retainGraph: retain, createGraph: create)
        if !retain && !create { LuaVM.collectAfterBackward(c.L) }
        return 0
      }),
      ("zeroGrad", { c in try c.tensor(1).zeroGrad(); return 0 }),
      ("detach", { c in c.push(try c.tensor(1).detach()); return 1 }),
    ]
  }

  /// Fields that are not methods: x.grad, x.isLeaf, x.gradFn, and x[i].
  static let indexFallback: BindingBody = { c in
    let x = try c.tensor(1)
    if c.isNumber(2) {
      guard x.rank > 0 else { throw c.error("cannot index a 0-d tensor") }
      let i = try index1(c, 2, size: x.shape[0])
      if x.rank == 1 { c.push(try x.select(dim: 0, index: i).item()) } else { c.push(try x.select(dim: 0, index: i)) }
      return 1
    }
    switch c.isString(2) ? LuaVM.string(c.L, 2) : "" {
    case "grad": if let g = x.grad { c.push(g) } else { c.pushNil() }
    case "isLeaf": c.push(x.isLeaf)
    case "gradFn": if let n = x.gradFnName { c.push(n) } else { c.pushNil() }
    default: c.pushNil()
    }
    return 1
  }

  // MARK: - Metamethods

  static func metamethods() -> [Fn] {
    func arith(_ op: @escaping (Tensor, Tensor) throws -> Tensor) -> BindingBody {
      { c in
        let a = c.isNumber(1) ? nil : try c.tensor(1)
        let b = try c.tensorOrNumber(2, like: a)
        c.push(try op(a ?? c.tensorOrNumber(1, like: b), b))
        return 1
      }
    }
    return [
      ("__add", arith { try $0.add($1) }),
      ("__sub", arith { try $0.sub($1) }),
      ("__mul", arith { try $0.mul($1) }),
      ("__div", arith { try $0.div($1) }),
      ("__pow", { c in
        if c.isNumber(1) { let e = try c.tensor(2); c.push(try Tensor.scalar(c.number(1), dtype: e.dtype).pow(e)); return 1 }
        let x = try c.tensor(1)
        c.push(c.isNumber(2) ? try x.pow(c.number(2)) : try x.pow(c.tensor(2)))
        return 1
      }),
      ("__unm", { c in c.push(try c.tensor(1).neg()); return 1 }),
      ("__mod", { c in throw c.error("the % operator is not defined for tensors") }),
      ("__idiv", { c in throw c.error("the // operator is not defined for tensors") }),
      ("__lt", { c in throw c.error("< on tensors is not elementwise; use a:lt(b) (or a:item() < b for numbers)") }),
      ("__le", { c in throw c.error("<= on tensors is not elementwise; use a:le(b) (or a:item() <= b for numbers)") }),
      ("__concat", { c in throw c.error("cannot concatenate a tensor; use tostring(x) or tensor.cat") }),
      ("__len", { c in let x = try c.tensor(1); c.push(x.rank == 0 ? 0 : x.shape[0]); return 1 }),
      ("__tostring", { c in c.push(try c.tensor(1).description); return 1 }),
      ("__newindex", { c in
        let x = try c.tensor(1)
        if c.isNumber(2) {
          guard x.rank > 0 else { throw c.error("cannot index a 0-d tensor") }
          let i = try index1(c, 2, size: x.shape[0])
          try x.select(dim: 0, index: i).detach().copy_(c.tensorOrNumber(3, like: x))
          return 0
        }
        let key = c.isString(2) ? LuaVM.string(c.L, 2) : ""
        guard key == "grad" else {
          throw c.error("cannot set field '\(c.isString(2) ? key : c.typeName(2))' of a tensor (only 'grad' and numeric indices can be assigned)")
        }
        if c.isNil(3) { x.grad = nil; return 0 }
        let g = try c.tensor(3)
        guard g.shape == x.shape else {
          throw c.error("grad must have the tensor's shape \(formatShape(x.shape)), got \(formatShape(g.shape))")
        }
        x.grad = g
        return 0
      }),
      ("__gc", { c in LuaVM.releaseTensor(c.L, 1, unmap: false); return 0 }),
      ("__close", { c in LuaVM.releaseTensor(c.L, 1, unmap: true); return 0 }),
    ]
  }

  // MARK: - Library functions (constructors and utilities)

  /// Every `tensor.*` function that is not a method: constructors, the machine and run
  /// state, and whole-tensor utilities (concatenation, gradients, files).
  static func libraryBindings() -> [Fn] { constructorBindings() + stateBindings() + utilityBindings() }

  /// tensor.zeros/ones/full/rand/randn/truncNormal/randint/randperm/arange/eye/new.
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

  /// The run's state: profiling, clock, RNG, threads, FLOPs, config, grad mode, memory.
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
        lua_createtable(c.L, 0, 4)
        c.push(MemoryAccounting.liveBytes); c.setField(-1, "tensorBytes")
        c.push(MemoryAccounting.peakBytes); c.setField(-1, "peakTensorBytes")
        c.push(residentBytes()); c.setField(-1, "rss")
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
    var values = [Double]()
    values.reserveCapacity(n)
    func walk(_ level: Int, _ path: [Int]) throws {
      let idx = lua_gettop(c.L)
      guard lua_type(c.L, idx) == LUA_TTABLE else {
        throw c.argError(i, "element \(path.map { "[\($0)]" }.joined()) is \(c.typeName(idx)), expected a table of \(shape[level]) values")
      }
      let len = Int(lua_rawlen(c.L, idx))
      guard len == shape[level] else {
        throw c.argError(i, "row \(path.map { "[\($0)]" }.joined()) has \(len) elements but the first row at that depth has \(shape[level]) (tables must be rectangular)")
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
