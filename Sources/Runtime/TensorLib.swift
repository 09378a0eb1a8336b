import CLua
import Datasets
import Foundation
import Tensor

/// The `tensor` library and the methods of luagan.Tensor. Uniform ops come straight from the
/// registry (`Tensor.ops`); the rest are written here. Every function is also a method:
/// `tensor.exp(x)` is `x:exp()`. Dims and indices are 1-based, negative dims count from the end.
enum TensorLib {
  typealias Fn = Binding.Fn

  static func install(_ L: LuaState) {
    let methods = registryBindings() + shapeBindings() + mathBindings() + nnBindings() + autogradBindings()
    // The method table, shared by __index and the library table.
    lua_createtable(L, 0, Int32(methods.count))
    for (name, body) in methods { Binding.set(L, -1, name, "tensor.\(name)", body) }
    let methodsIndex = lua_gettop(L)

    // The library table: every method, plus constructors and utilities.
    lua_createtable(L, 0, Int32(methods.count + 32))
    lua_pushnil(L)
    while lg_pnext(L, methodsIndex) == 1 {
      lua_pushvalue(L, -2)
      lua_rotate(L, -2, 1)
      lua_rawset(L, -4)
    }
    for (name, body) in libraryBindings() + [signaturesBinding] { Binding.set(L, -1, name, "tensor.\(name)", body) }
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
      Binding.set(L, meta, name, "Tensor.\(name)", body, isFinalizer: name == "__gc")
    }
    Binding.protectMetatable(L, meta)
    lg_pop(L, 1)

    // Globals and package.loaded.
    lua_pushvalue(L, libIndex)
    Binding.setGlobal(L, "tensor")
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
  /// the misuse sweep (scripts/dev/tests/misuse.lua) derives each op's bad calls.
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
      // In place, for forwards with no graph to record (sampling): refused on a graph node.
      ("add_", { c in let x = try c.tensor(1); c.push(try x.add_(c.tensorOrNumber(2, like: x))); return 1 }),
      ("relu_", { c in c.push(try c.tensor(1).relu_()); return 1 }),
      ("free", { c in
        guard LuaVM.isUserdata(c.L, 1, LuaVM.tensorMeta) else { throw c.typeError(1, "luagan.Tensor") }
        weak var storage: Storage? = try? c.tensor(1).storage
        LuaVM.releaseTensor(c.L, 1, unmap: true)  // idempotent: a closed tensor stays closed
        // Its storage outlives it when views of it do, often garbage the collector has not yet
        // found: then collect before the next op run with recording off, so that freeing a
        // forward's activation returns its memory before the next one is made.
        if storage != nil { LuaVM.collectSoon(c.L) }
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
  /// 0-based indices as a float32 tensor of 1-based ones, written straight into the tensor.
  static func oneBased(_ idx: [Int], shape: [Int]) throws -> Tensor {
    try Tensor.filled(shape) { out in for (k, i) in idx.enumerated() { out[k] = Float(i + 1) } }
  }

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
    // What the nested tables take: every table (one per index of every dim but the last, and
    // the outer one) costs its 56-byte header plus malloc's overhead, and every array slot, a
    // number or a row, 16 bytes; a quarter more for the allocator's rounding. The values are
    // first read into a Swift array of numel doubles. For shape (8388608, 1, 2) that is 16.8M
    // tables, not the 8.4M the innermost rows alone would suggest.
    var rows = 1, tables = 1, slots = 0, overflow = false
    for (k, d) in x.shape.enumerated() {
      let (r, o1) = rows.multipliedReportingOverflow(by: Swift.max(d, 1))
      let (s, o2) = slots.addingReportingOverflow(r)
      let (t, o3) = k < x.rank - 1 ? tables.addingReportingOverflow(r) : (tables, false)
      rows = r; slots = s; tables = t; overflow = overflow || o1 || o2 || o3
    }
    let (tableBytes, o9) = tables.multipliedReportingOverflow(by: 80)
    let (slotBytes, o4) = slots.multipliedReportingOverflow(by: 16)
    let (valueBytes, o5) = x.numel.multipliedReportingOverflow(by: 8)
    let (sum, o6) = tableBytes.addingReportingOverflow(slotBytes)
    let (total, o7) = (sum / 4).addingReportingOverflow(sum)
    let (withValues, o8) = total.addingReportingOverflow(valueBytes)
    guard !(overflow || o4 || o5 || o6 || o7 || o8 || o9) else {
      throw c.error("a tensor of shape \(formatShape(x.shape)) is too large for Lua tables")
    }
    try c.reserveHeap(withValues)
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
    c.push(try oneBased(idx, shape: values.shape))
    return 2
  }

  static func argBinding(_ c: LuaCall, largest: Bool) throws -> Int32 {
    let x = try c.tensor(1)
    let d = c.isNil(2) ? nil : try c.dim(2, rank: x.rank)
    let keep = try c.optBool(3, false)
    let (idx, shape) = largest ? try x.argmax(dim: d, keepDim: keep) : try x.argmin(dim: d, keepDim: keep)
    c.push(try oneBased(idx, shape: shape))
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
}
