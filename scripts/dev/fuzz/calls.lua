-- calls.lua: random calls of every function luagan's libraries export, every method of its
-- objects and every metamethod, with hostile arguments: among them views expanded past 2^40
-- elements, saved states (loader, optimizer, EMA, RNG, checkpoint) with extreme fields, and
-- memory limits lowered mid-run. Run by the `luagan-fuzz` executable (Sources/LuaganFuzz),
-- which watches from outside for signals, hangs and runaway memory.
--
--   luagan scripts/dev/fuzz/calls.lua --seed=7 --calls=20000 [--trace=/dev/fd/3] [--verbose]
--
-- Deterministic per seed: the same seed makes the same calls in the same order, so a crash at
-- call k of seed s is replayed by running that seed again (--verbose prints every call).
-- Before each call one line "C <k> <description>" goes to the trace; "D <calls>" at the end.
-- Errors raised by the calls are expected and ignored: only a crash, a hang or a leak is a bug.

local opt = { seed = 1, calls = 1000, trace = nil, verbose = false }
for _, a in ipairs(arg) do
  local k, v = a:match("^%-%-(%w+)=(.*)$")
  if k == "seed" or k == "calls" then opt[k] = math.tointeger(tonumber(v))
  elseif k == "trace" then opt.trace = v
  elseif a == "--verbose" then opt.verbose = true
  else error("calls.lua: unknown argument " .. a) end
end

local trace = opt.trace and assert(io.open(opt.trace, "w")) or nil
if trace then trace:setvbuf("line") end
math.randomseed(opt.seed)
tensor.manualSeed(opt.seed)
-- Valid but huge requests fail fast instead of paging: a fuzzed call may ask for anything.
tensor.setMemoryLimit(768 << 20)

local R = math.random
local function pick(list) return list[R(#list)] end
local function chance(p) return R() < p end

-- MARK: - Values

local interestingIntegers = { 0, 1, -1, 2, 3, 4, 7, 16, 255, 256, 65535, 65536, 1 << 31, (1 << 31) - 1, -(1 << 31), 1 << 32,
  1 << 40, 1 << 53, 1 << 62, math.maxinteger, math.mininteger, math.maxinteger - 1, math.mininteger + 1, -2, -3, 100, 1000,
  1 << 20, 1 << 30, 4096, 32768 }
local interestingFloats = { 0.5, -0.5, 0.0, -0.0, 1.5, 0 / 0, math.huge, -math.huge, 1e-300, 1e308, -1e308, 1e20, -1e20,
  2.0 ^ 63, -2.0 ^ 63, 2.0 ^ 64, 1e-7, 0.999, 1 / 3, 4.9e-324, 2.5, 1e9, 1e15 }
local strings = { "", "x", "float32", "float64", "int8", "box", "nearest", "bilinear", "sum", "mean", "fanIn", "fanOut",
  "relu", "leakyRelu", "linear", "tanh", "sigmoid", "conv2d", "weight", "bias", "train", "test", "a.png", "t.safetensors",
  "ckpt", "run", "nonexistent/dir/file", "no-such-dir/file", "/proc/self/status", ".", "latest", "%s%s%n", "\0",
  "weight_orig", "running_mean", "0", "1", "-1", "1e400", "nan", ("x"):rep(300), "é", "\255\254", "__index", "__gc",
  "grad", "shape", "training", "__class", "forward" }
-- Option keys that luagan's functions read, so option tables get past "unknown option" often.
local optionKeys = { "dtype", "requiresGrad", "stride", "padding", "dilation", "groups", "bias", "eps", "momentum",
  "affine", "inPlace", "outputsUsed", "numClasses", "inputSize", "spectralNorm", "snEps", "equalized", "gain", "nrow",
  "padValue", "range", "mode",
  "lo", "hi", "mean", "std", "keepdim", "unbiased", "createGraph", "retainGraph", "allowUnused", "gradOutputs",
  "secondOrder", "lr", "betas", "weightDecay", "nesterov", "dampening", "decay", "startIter", "batchSize", "shuffle",
  "seed", "dropLast", "transform", "split", "root", "size", "channels", "k", "subsets", "subsetSize", "degree", "gamma",
  "coef0", "splits", "logits", "nhoodSize", "nhoodsPerImage", "dirRepeats", "dirsPerRepeat", "minResolution",
  "quantize", "weights", "filterSize", "filterSigma", "k1", "k2", "maxValue", "lambda", "target", "exclude", "name",
  "keep", "title", "xlabel", "ylabel", "logy", "width", "height", "countIncludePad", "ceilMode", "outputPadding",
  "nPowerIterations", "dim", "persistent", "strict", "n", "mu", "sigma", "every", "maxPixels", "maxBytes", "op", "root",
  "threshold", "labels", "x", "y", "scalars", "interval", "total", "prefix", "batch", "cacheDir", "ncol" }

local pool = {}        -- values made by earlier calls, fed back in
local poolSize = 48
local function remember(v)
  if v == nil then return end
  if #pool < poolSize then pool[#pool + 1] = v else pool[R(poolSize)] = v end
end

local gen  -- forward declaration: gen(depth) -> a random value

local function randomShape(maxRank)
  local rank = R(0, maxRank or 4)
  local s = {}
  local budget = chance(0.05) and 4096 or 64
  local n = 1
  for i = 1, rank do
    local d = chance(0.08) and 0 or R(1, 4)
    if n * math.max(d, 1) > budget then d = 1 end
    s[i] = d
    n = n * math.max(d, 1)
  end
  return s
end

-- A view of 2^40 or more elements over a handful of real ones (expand's stride 0), sometimes
-- transposed, narrowed or in a graph; or of 2^28-2^34, gigabytes that fit in the machine but
-- not under the fuzzer's memory limit. Whatever a call does with it must cost what its result
-- needs or be refused: materializing the logical size is gigabytes to exabytes.
local function hugeView()
  local dtype = chance(0.4) and "float64" or "float32"
  local r = R(9)
  local ok, t = pcall(function()
    if r == 1 then return tensor.zeros(1, { dtype = dtype }):expand(1 << R(40, 62)) end
    if r == 2 then return tensor.zeros(1, 1, { dtype = dtype }):expand(1 << 20, 1 << R(20, 41)) end
    if r == 3 then   -- a small random tensor under two expanded leading dims
      local base = tensor.randn({ R(1, 3), R(1, 4) }, { dtype = dtype, requiresGrad = chance(0.3) })
      return base:view(1, 1, base:size(1), base:size(2)):expand(1 << R(10, 20), 1 << R(20, 30), base:size(1), base:size(2))
    end
    if r == 4 then return tensor.randn({ 2, 1, 3, 1 }, { dtype = dtype }):expand(2, 1 << 21, 3, 1 << R(19, 30)) end
    if r == 5 then return tensor.rand({ 1, 3, 1, 1 }, { dtype = dtype }):expand(1 << R(14, 20), 3, 1 << 13, 1 << 13) end
    if r == 6 then return tensor.zeros(1, { dtype = dtype }):expand(1 << 61) end
    if r == 7 then return tensor.zeros(1, 1, { dtype = dtype }):expand(1 << R(28, 34), 1) end
    if r == 8 then return tensor.randn({ 1, 2, 3 }, { dtype = dtype }):expand(1 << R(26, 31), 2, 3) end
    return tensor.zeros(1, 1):expand(1 << 62, R(2, 8))   -- past 2^63 elements: expand itself must refuse
  end)
  if not ok then t = tensor.zeros(1):expand(1 << 41) end
  local v = R(8)
  pcall(function()
    if v == 1 and t:dim() >= 2 then t = t:transpose(1, t:dim())
    elseif v == 2 then t = t:narrow(1, 2, t:size(1) - 1)
    elseif v == 3 then t = t:narrow(t:dim(), 1, math.max(1, t:size(t:dim()) // 3))
    elseif v == 4 then t = t:unsqueeze(R(1, t:dim() + 1))
    elseif v == 5 and t:dim() >= 2 then t = t:select(1, 1)
    elseif v == 6 and t:dim() >= 2 then
      local dims = {}
      for i = t:dim(), 1, -1 do dims[#dims + 1] = i end
      t = t:permute(table.unpack(dims))
    end
  end)
  return t
end

local function randomTensor()
  if chance(0.04) then return hugeView() end
  local shape
  local r = R()
  if r < 0.15 then shape = { R(1, 3), R(1, 3), R(1, 6), R(1, 6) }          -- image-like
  elseif r < 0.25 then shape = { R(1, 4), R(1, 8) }                       -- features
  elseif r < 0.3 then shape = randomShape(8)
  else shape = randomShape(4) end
  local dtype = chance(0.25) and "float64" or "float32"
  local ok, t = pcall(tensor.randn, shape, { dtype = dtype })
  if not ok then t = tensor.zeros(1) end
  r = R()
  if r < 0.05 then pcall(function() t:fill(0 / 0) end)
  elseif r < 0.08 then pcall(function() t:fill(math.huge) end)
  elseif r < 0.12 then pcall(function() t = t:abs() + 1 end) end
  -- Views.
  r = R()
  if r < 0.1 and t:dim() >= 2 then t = t:transpose(1, t:dim())
  elseif r < 0.15 and t:dim() >= 1 and t:size(1) > 1 then t = t:narrow(1, 2, t:size(1) - 1)
  elseif r < 0.2 then
    local ok2, e = pcall(function() return t:unsqueeze(1):expand(R(1, 3), table.unpack(t:shape())) end)
    if ok2 then t = e end
  end
  if chance(0.2) then pcall(t.requiresGrad, t, true) end
  if chance(0.15) then
    local ok3, y = pcall(function() return (t * 2):sum() end)  -- a tensor with a graph
    if ok3 and chance(0.5) then t = y end
  end
  if chance(0.03) then t:free() end
  return t
end

local moduleMakers = {
  function() return nn.Linear(R(1, 4), R(1, 4), { bias = chance(0.5) }) end,
  function() return nn.Conv2d(R(1, 3), R(1, 3), R(1, 3), { padding = R(0, 1), stride = R(1, 2) }) end,
  function() return nn.Conv2d(R(1, 3), 3, 3, { padding = 1, outputsUsed = R(1, 3) }) end,
  function() return nn.ConvTranspose2d(R(1, 3), R(1, 3), R(1, 4), { stride = R(1, 2) }) end,
  function() return nn.BatchNorm2d(R(1, 3)) end,
  function() return nn.BatchNorm2d(R(1, 3), { inPlace = true }) end,
  function() return nn.ConditionalBatchNorm2d(R(1, 3), { numClasses = R(1, 4) }) end,
  function() return nn.ConditionalBatchNorm2d(R(1, 3), { inputSize = R(1, 4) }) end,
  function() return nn.Embedding(R(1, 5), R(1, 4)) end,
  function() return nn.SpectralNorm(nn.Linear(R(1, 4), R(1, 4))) end,
  function() return nn.SpectralNorm(nn.Conv2d(R(1, 3), R(1, 3), 3, { padding = 1 })) end,
  function() return nn.SelfAttention(8) end,
  function() return nn.ReLU() end, function() return nn.Tanh() end, function() return nn.LeakyReLU(0.2) end,
  function() return nn.Upsample(2) end, function() return nn.AvgPool2d(2) end, function() return nn.PixelNorm() end,
  function() return nn.MinibatchStdDev(R(1, 4)) end, function() return nn.Identity() end,
  function() return nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1)) end,
  function() return nn.ModuleList { nn.Linear(2, 2), nn.Tanh() } end,
  function()
    local C = nn.Module:extend("Fuzz" .. R(1, 3))
    function C:init(n) self.lin = nn.Linear(n or 2, 2); self.scale = tensor.ones(1) end
    function C:forward(x) return self.lin(x) * self.scale end
    return C(2)
  end,
}
local function randomModule()
  local ok, m = pcall(pick(moduleMakers))
  return ok and m or nn.Identity()
end

local function randomOptimizer()
  local m = randomModule()
  local params = m:parameters()
  if #params == 0 then params = { tensor.randn(2):requiresGrad(true) } end
  if chance(0.5) then return optim.Adam(params, { lr = 1e-3 }) end
  return optim.SGD(params, { lr = 0.1, momentum = 0.9 })
end

local function randomFunction()
  local r = R()
  if r < 0.3 then return function(...) return (select(1, ...)) end end
  if r < 0.5 then return function(x) if tensor.isTensor(x) then return (x * 2):sum() end return tensor.zeros(1) end end
  if r < 0.6 then return function() error("fuzz: the callback raises") end end
  if r < 0.7 then return function() return coroutine.yield(1) end end
  if r < 0.8 then return function() return gen(2) end end
  if r < 0.9 then return function(m) if nn.isModule(m) then m.extra = tensor.ones(1) end return m end end
  return print
end

local function randomTable(depth)
  local r = R()
  if r < 0.1 then return {} end
  if r < 0.35 then  -- a list of integers (shapes, dims, indices, paddings)
    local t = {}
    for i = 1, R(0, 9) do t[i] = chance(0.7) and R(-2, 5) or pick(interestingIntegers) end
    return t
  end
  if r < 0.6 then  -- an options table
    local t = {}
    for _ = 1, R(1, 4) do t[pick(optionKeys)] = gen(depth + 1) end
    return t
  end
  if r < 0.7 then  -- a list of tensors
    local t = {}
    for i = 1, R(0, 5) do t[i] = randomTensor() end
    return t
  end
  if r < 0.8 then  -- name = tensor (state dicts)
    local t = {}
    for _ = 1, R(0, 4) do t[pick(strings)] = chance(0.8) and randomTensor() or gen(depth + 1) end
    return t
  end
  if r < 0.85 then  -- cyclic
    local t = { 1, 2 }
    t[3] = t
    t.self = t
    return t
  end
  if r < 0.9 then  -- deeply nested
    local t = {}
    local c = t
    for _ = 1, R(1, 300) do c[1] = {}; c = c[1] end
    return t
  end
  local t = {}
  for i = 1, R(0, 5) do t[i] = gen(depth + 1) end
  return t
end

function gen(depth)
  depth = depth or 0
  local r = R()
  if depth > 3 then r = r * 0.45 end
  if r < 0.06 then return nil end
  if r < 0.09 then return chance(0.5) end
  if r < 0.22 then return chance(0.6) and R(-3, 8) or pick(interestingIntegers) end
  if r < 0.28 then return pick(interestingFloats) end
  if r < 0.34 then return pick(strings) end
  if r < 0.45 then return randomTable(depth) end
  if r < 0.48 then return randomFunction() end
  if r < 0.72 then return randomTensor() end
  if r < 0.8 then return randomModule() end
  if r < 0.82 then return randomOptimizer() end
  if r < 0.83 then return coroutine.create(function() end) end
  if r < 0.84 then return io.stdout end
  if #pool > 0 then return pool[R(#pool)] end
  return randomTensor()
end

-- MARK: - Targets

local targets = {}
local function addFunction(name, fn) targets[#targets + 1] = { name = name, fn = fn } end

local function addLibrary(prefix, lib, seen)
  seen = seen or {}
  if seen[lib] then return end
  seen[lib] = true
  local names = {}
  for k in pairs(lib) do if type(k) == "string" then names[#names + 1] = k end end
  table.sort(names)
  for _, k in ipairs(names) do
    local v = rawget(lib, k)
    local mt = type(v) == "table" and getmetatable(v)
    if type(v) == "function" then addFunction(prefix .. k, v)
    elseif type(v) == "table" and type(mt) == "table" and mt.__call then
      addFunction(prefix .. k, function(...) return v(...) end)   -- a class: calling it constructs
      for _, m in ipairs { "extend", "forward", "init" } do
        if type(v[m]) == "function" then addFunction(prefix .. k .. "." .. m, v[m]) end
      end
    elseif type(v) == "table" and k ~= "__index" then addLibrary(prefix .. k .. ".", v, seen) end
  end
end
for _, lib in ipairs { "tensor", "nn", "optim", "gan", "image", "data", "metrics", "ckpt", "log", "plot", "paths", "dist" } do
  if type(_G[lib]) == "table" then addLibrary(lib .. ".", _G[lib]) end
end

-- Functions that end or freeze the process by design, or flood the terminal.
local excluded = { ["tensor.setNumThreads"] = true, ["tensor.setMemoryLimit"] = true }
do
  local kept = {}
  for _, t in ipairs(targets) do if not excluded[t.name] then kept[#kept + 1] = t end end
  targets = kept
end

-- Methods of each kind of object, found on the objects themselves.
local function methodNames(obj)
  local names, seen = {}, {}
  local function collect(t)
    if type(t) ~= "table" then return end
    for k, v in pairs(t) do
      if type(k) == "string" and type(v) == "function" and not seen[k] then seen[k] = true; names[#names + 1] = k end
    end
  end
  local mt = debug.getmetatable(obj)
  if mt then collect(mt.__index) end
  if type(obj) == "table" then collect(obj) end
  table.sort(names)
  return names
end

local moduleMethods = {}
do
  local seen = {}
  local cls = nn.Module
  for k, v in pairs(cls) do if type(v) == "function" and type(k) == "string" then seen[k] = true end end
  for k in pairs(seen) do moduleMethods[#moduleMethods + 1] = k end
  for _, k in ipairs { "add", "forward" } do if not seen[k] then moduleMethods[#moduleMethods + 1] = k end end
  table.sort(moduleMethods)
end
local optimizerMethods = methodNames(optim.Adam({ tensor.randn(1):requiresGrad(true) }))
local emaMethods = methodNames(optim.EMA(nn.Linear(1, 1)))
local loggerMethods, progressMethods, tensorBoardMethods = {}, {}, {}
do
  local ok, lg = pcall(log.Logger, "fuzz-log")
  if ok then loggerMethods = methodNames(lg) end
  local ok3, tb = pcall(log.TensorBoard, "fuzz-tb")
  if ok3 then tensorBoardMethods = methodNames(tb); tb:close() end
  local ok2, pg = pcall(log.Progress, 10, { every = 1 })
  if ok2 then progressMethods = methodNames(pg) end
end
local loaderMethods = { "next", "epoch", "state", "setState", "_begin", "_nextInEpoch" }
local datasetFields = { "get", "pixelStatistics", "images", "labels", "numClasses", "classNames", "size", "name" }

-- A small data set in the work folder, made once: an IDX pair like MNIST's.
local function writeIdx(path, magic, dims, bytes)
  local f = assert(io.open(path, "wb"))
  f:write(string.pack(">I4", magic))
  for _, d in ipairs(dims) do f:write(string.pack(">I4", d)) end
  f:write(bytes)
  f:close()
end
os.remove("fuzzdata")
paths.mkdir("fuzzdata")
do
  local n = 20
  local px = {}
  for i = 1, n * 28 * 28 do px[i] = string.char((i * 37) % 256) end
  local lb = {}
  for i = 1, n do lb[i] = string.char(i % 10) end
  for _, split in ipairs { "train", "t10k" } do
    writeIdx(("fuzzdata/%s-images-idx3-ubyte"):format(split), 0x803, { n, 28, 28 }, table.concat(px))
    writeIdx(("fuzzdata/%s-labels-idx1-ubyte"):format(split), 0x801, { n }, table.concat(lb))
  end
end
local dataset = data.mnist { root = "fuzzdata" }
local function randomLoader()
  local ok, l = pcall(data.Loader, dataset, { batchSize = R(1, 8), shuffle = chance(0.5), transform = { data.pad(2), data.scale() } })
  return ok and l or nil
end

-- MARK: - Describing a call (for the trace)

local function describe(v)
  local t = type(v)
  if t == "nil" or t == "boolean" then return tostring(v) end
  if t == "number" then return math.type(v) == "integer" and tostring(v) or ("%.17g"):format(v) end
  if t == "string" then return ("%q"):format(#v > 20 and v:sub(1, 20) .. "..." or v):gsub("\n", "n") end
  if tensor.isTensor(v) then
    local ok, s = pcall(function() return ("T%s{%s}"):format(v:dtype() == "float64" and "d" or "", table.concat(v:shape(), ",")) end)
    return ok and s or "T(freed)"
  end
  if nn.isModule(v) then local ok, n = pcall(v.typeName, v); return ok and ("M:" .. tostring(n)) or "M" end
  if t == "table" then
    local n = 0
    for _ in pairs(v) do n = n + 1; if n > 9 then break end end
    return ("{#%d,%d}"):format(#v, n)
  end
  return t
end

local function describeArgs(args, n)
  local parts = {}
  for i = 1, n do parts[i] = describe(args[i]) end
  return table.concat(parts, ", ")
end

-- MARK: - Learning from errors
-- A call that fails its argument checks says what it wanted ("bad argument #2 to 'narrow'
-- (integer expected, got string)", "unknown option 'x'; options are 'a', 'b'"). The fuzzer
-- remembers it per function and, most of the time, gives later calls what was asked for, so it
-- gets past the first check and into the code behind it.
local hints = {}      -- name -> { [i] = kind }
local optionsOf = {}  -- name -> list of option keys

local function learn(name, err)
  if type(err) ~= "string" then return end
  local i, kind = err:match("bad argument #(%d+) to '[^']*' %(([%w%.%s]-) expected")
  if i then
    hints[name] = hints[name] or {}
    hints[name][tonumber(i)] = kind
  end
  local key, okind = err:match("option '([%w_]+)' must be (%a+ ?%a*)")
  if key then
    hints[name] = hints[name] or {}
    hints[name].options = hints[name].options or {}
    hints[name].options[key] = okind
  end
  local list = err:match("options are (.*)$")
  if list then
    local keys = {}
    for k in list:gmatch("'([^']+)'") do keys[#keys + 1] = k end
    if #keys > 0 then optionsOf[name] = keys end
  end
end

local function valueOfKind(kind, name)
  if not kind then return gen(0) end
  if kind:find("luagan.Tensor") then return randomTensor() end
  if kind:find("luagan.Module") then return randomModule() end
  if kind:find("integer") then return chance(0.65) and R(-1, 6) or pick(interestingIntegers) end
  if kind:find("number") then return chance(0.6) and (R() * 4 - 1) or pick(chance(0.5) and interestingFloats or interestingIntegers) end
  if kind:find("string") or kind:find("name") then return pick(strings) end
  if kind:find("boolean") then return chance(0.5) end
  if kind:find("function") then return randomFunction() end
  if kind:find("option") and optionsOf[name] then
    local t = {}
    local typed = hints[name] and hints[name].options or {}
    for _ = 1, R(0, 3) do
      local key = pick(optionsOf[name])
      t[key] = (typed[key] and chance(0.75)) and valueOfKind(typed[key], name) or gen(1)
    end
    return t
  end
  if kind:find("table") or kind:find("list") or kind:find("sizes") then return randomTable(1) end
  return gen(0)
end

local function hintedArgs(name, first, n)
  local args = {}
  local h = hints[name]
  for i = 1, n do
    if i == 1 and first ~= nil then args[1] = first
    elseif h and h[i] and chance(0.75) then args[i] = valueOfKind(h[i], name)
    elseif optionsOf[name] and i == n and chance(0.6) then args[i] = valueOfKind("options table", name)
    else args[i] = gen(0) end
  end
  return args
end

-- MARK: - Saved states
-- A valid saved state (a loader's position, an optimizer's state dict, the generator's words,
-- ADA's and LeCam's running values, a checkpoint's JSON) with a few fields, at any depth,
-- replaced by extremes: a checkpoint from elsewhere may hold anything, and restoring it must be
-- a Lua error or a state that keeps working.
local integerExtremes = { math.maxinteger, math.mininteger, math.maxinteger - 1, math.mininteger + 1, -1, 0, 1 << 53,
  (1 << 53) + 1, 1 << 62, 1 << 32, 1 << 31, (1 << 31) - 1 }
local extremes = { 2.0 ^ 53, 2.0 ^ 63, -2.0 ^ 63, 2.0 ^ 64, 0 / 0, math.huge, -math.huge, 1e308, -1e308, 0.5, -0.0, "1", "",
  "9223372036854775807", "nan", true }
for _, v in ipairs(integerExtremes) do extremes[#extremes + 1] = v end
-- `plain`: only what JSON holds (no tensors). An integer field gets an integer extreme most of
-- the time, which is what overflows.
local function extreme(plain, original)
  local r = R()
  if math.type(original) == "integer" and r < 0.6 then return pick(integerExtremes) end
  if r < 0.85 or (plain and r >= 0.95) then return pick(extremes) end
  if r < 0.9 then return {} end
  if r < 0.95 then return { math.maxinteger, -1, { {} } } end
  return chance(0.5) and hugeView() or randomTensor()
end

-- A table's keys in one order on every run (pairs' order changes with the string hash seed).
local function sortedKeys(t)
  local keys = {}
  for k in pairs(t) do if type(k) == "string" or type(k) == "number" then keys[#keys + 1] = k end end
  table.sort(keys, function(a, b)
    if type(a) ~= type(b) then return type(a) == "number" end
    return a < b
  end)
  return keys
end

local function copyState(v, depth)
  if type(v) ~= "table" or depth > 16 then return v end
  local out = {}
  for k, x in pairs(v) do out[k] = copyState(x, depth + 1) end
  return out
end

-- A copy of `st` with 1-3 fields (at any depth) replaced by extremes, removed, or joined by an
-- unknown one; and what changed, for the trace.
local function mutateState(st, plain)
  st = copyState(st, 0)
  local slots = {}
  local function walk(t, path, depth)
    for _, k in ipairs(sortedKeys(t)) do
      local p = path == "" and tostring(k) or path .. "." .. tostring(k)
      slots[#slots + 1] = { t, k, p }
      if type(t[k]) == "table" and depth < 8 and #slots < 500 then walk(t[k], p, depth + 1) end
    end
  end
  if type(st) == "table" then walk(st, "", 0) end
  local changes = {}
  for _ = 1, R(1, 3) do
    if #slots == 0 then break end
    local s = pick(slots)
    local r = R()
    if r < 0.08 then
      s[1][s[2]] = nil
      changes[#changes + 1] = s[3] .. "=nil"
    elseif r < 0.12 then
      local v = extreme(plain)
      s[1].fuzz = v
      changes[#changes + 1] = s[3]:gsub("[^.]*$", "fuzz") .. "=" .. describe(v)
    else
      local v = extreme(plain, s[1][s[2]])
      s[1][s[2]] = v
      changes[#changes + 1] = s[3] .. "=" .. describe(v)
    end
  end
  return st, table.concat(changes, " ")
end

local function readAll(path) local f = assert(io.open(path, "rb")); local s = f:read("a"); f:close(); return s end
local function writeAll(path, s) local f = assert(io.open(path, "wb")); f:write(s); f:close() end

-- What a checkpoint case saves and loads back: the same layout every time, so that a valid
-- checkpoint loads into it.
local function ckptTargets()
  local model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
  local params = model:parameters()
  local into = { model = model, opt = optim.Adam(params, { lr = 1e-3 }), ema = optim.EMA(model, { startIter = 2 }),
                 loader = data.Loader(dataset, { batchSize = 4, shuffle = true, seed = 5 }) }
  return into, params
end
-- A valid checkpoint as a training run writes one, made once: its decoded state.json and its tensors.
local ckptBase = {}
do
  local into, params = ckptTargets()
  for _, p in ipairs(params) do p.grad = tensor.ones(p:shape()) end
  into.opt:step()
  into.loader:next(); into.loader:next()
  local st = { iter = 7, rng = tensor.getRNGState(), run = { elapsed = 12.5, milestones = { half = 5 }, rollbacks = 0 },
               smallData = { ada = gan.AdaptiveAugment():state(), lecam = gan.LeCam():state() } }
  for _, k in ipairs(sortedKeys(into)) do st[k] = into[k] end
  local dir = ckpt.save("fuzz-ckpt", st, { name = "base" })
  ckptBase.doc = json.decode(readAll(dir .. "/state.json"))
  ckptBase.tensors = readAll(dir .. "/tensors.safetensors")
end

local function randomParams()
  local m = randomModule()
  local params = m:parameters()
  if #params == 0 then params = { tensor.randn(2):requiresGrad(true) } end
  return m, params
end

-- Each returns a description and the call.
local stateCases = {
  function()
    local l = randomLoader()
    if not l then return "loader: none", function() end end
    for _ = 1, R(0, 3) do pcall(l.next, l) end
    local st, how = mutateState(l:state())
    return "loader:setState " .. how, function()
      l:setState(st)
      pcall(function() for x in l:epoch() do return x end end)
      for _ = 1, 2 do pcall(l.next, l) end
      return l:state()
    end
  end,
  function()
    local opts, how = mutateState({ batchSize = R(1, 8), seed = R(0, 9), shuffle = true, dropLast = chance(0.5), rank = 0, ranks = 1 })
    return "data.Loader " .. how, function()
      local l = data.Loader(dataset, opts)
      for _ = 1, 2 do l:next() end
      pcall(function() for x in l:epoch() do return x end end)
      return l:state()
    end
  end,
  function()
    local per, seed = chance(0.6) and extreme(true) or R(1, 3), chance(0.5) and extreme(true) or R(0, 9)
    return ("dataset:subset(%s, %s)"):format(describe(per), describe(seed)), function()
      local s = dataset:subset(per, seed)
      pcall(s.get, s, 1)
      local l = data.Loader(s, { batchSize = 2 })
      return l:next()
    end
  end,
  function()
    local _, params = randomParams()
    local o = chance(0.5) and optim.Adam(params, { lr = 1e-3 }) or optim.SGD(params, { lr = 0.1, momentum = 0.9 })
    for _, p in ipairs(params) do p.grad = tensor.ones(p:shape(), { dtype = p:dtype() }) end
    o:step()
    local st, how = mutateState(o:stateDict())
    return "optimizer:loadStateDict " .. how, function()
      o:loadStateDict(st)
      for _ = 1, 2 do o:step() end
      return o:stateDict()
    end
  end,
  function()
    local m = randomModule()
    local opts, how = mutateState({ decay = 0.999, startIter = R(0, 5) }, true)
    local start, iter = extreme(true), chance(0.5) and extreme(true) or R(0, 9)
    return ("optim.EMA %s; startAt(%s); update(iter=%s)"):format(how, describe(start), describe(iter)), function()
      local ema = optim.EMA(m, opts)
      pcall(ema.startAt, ema, start)
      ema:update(m, iter)
      return ema:settings()
    end
  end,
  function()
    local saved = tensor.getRNGState()
    local st, how = mutateState(saved)
    local seed = extreme(true)
    return ("tensor.setRNGState %s; manualSeed(%s)"):format(how, describe(seed)), function()
      local ok, err = pcall(function()
        tensor.setRNGState(st)
        tensor.randn(3); tensor.rand(2, 2); tensor.randint(1, 10, 4); tensor.randperm(6)
        tensor.manualSeed(seed)
        tensor.randn(3)
      end)
      tensor.setRNGState(saved)
      if not ok then error(err, 0) end
    end
  end,
  function()
    local ada, lecam = gan.AdaptiveAugment { interval = 1 }, gan.LeCam()
    local a, howA = mutateState(ada:state())
    local b, howB = mutateState(lecam:state())
    local iter = extreme(true)
    return ("ada:load %s; lecam:load %s; iter=%s"):format(howA, howB, describe(iter)), function()
      pcall(function()
        ada:load(a)
        ada:observe(tensor.randn(4))
        return gan.diffAugment(tensor.rand(2, 3, 8, 8), "color,translation,cutout", { p = ada.p })
      end)
      lecam:load(b)
      local dr, df = tensor.randn(4), tensor.randn(4)
      lecam:update(dr, df, iter)
      return lecam:penalty(dr, df)
    end
  end,
  function()
    local st, how = mutateState(ckptBase.doc.state, true)
    local doc = { format = "luagan-checkpoint", version = ckptBase.doc.version, state = st }
    return "ckpt.load " .. how, function()
      paths.remove("fuzz-ckpt/case")
      paths.mkdir("fuzz-ckpt/case")
      writeAll("fuzz-ckpt/case/state.json", json.encode(doc, 1))
      writeAll("fuzz-ckpt/case/tensors.safetensors", ckptBase.tensors)
      local into, params = ckptTargets()
      local saved = ckpt.load("fuzz-ckpt/case", into)
      -- what a resumed run does next with what came back
      local rng = tensor.getRNGState()
      pcall(function() tensor.setRNGState(saved.rng); tensor.randn(2) end)
      tensor.setRNGState(rng)
      pcall(function() for x in into.loader:epoch() do return x end end)
      pcall(into.loader.next, into.loader)
      for _, p in ipairs(params) do p.grad = tensor.ones(p:shape()) end
      pcall(into.opt.step, into.opt)
      pcall(into.ema.update, into.ema, into.model, saved.iter)
      if type(saved.smallData) == "table" then
        pcall(function() gan.AdaptiveAugment():load(saved.smallData.ada) end)
        pcall(function() gan.LeCam():load(saved.smallData.lecam) end)
      end
      return saved
    end
  end,
}
local function stateCall()
  local k = R(#stateCases)
  local desc, call = stateCases[k]()
  return "state" .. k .. ": " .. desc, call
end

-- MARK: - Views past 2^40 elements
-- The calls a script makes most with a tensor, and the ones that once materialized an expanded
-- view (saving, reducing, indexing, averaging gradients), each given a huge view. Those with a
-- small result (`true`, or a function giving the result's elements) may cost only that, so they
-- also run with no memory limit, where only their own bounds stand between the view's logical
-- size and the machine's memory. (Saving writes the full size: it runs under the limit.)
local viewOps = {
  { "sum", function(v) return v:sum() end, true }, { "mean", function(v) return v:mean() end, true },
  { "max", function(v) return v:max() end, true }, { "argmax", function(v) return v:argmax() end, true },
  { "std", function(v) return v:std() end, true }, { "norm", function(v) return v:norm() end, true },
  { "logsumexp", function(v) return v:logsumexp(1) end }, { "softmax", function(v) return v:softmax(v:dim()) end },
  { "sum(dim)", function(v) return v:sum(R(1, v:dim())) end }, { "mean(dim,keep)", function(v) return v:mean(1, true) end },
  { "indexSelect", function(v) return v:indexSelect(1, { 1 }) end, function(v) return v:numel() // v:size(1) end },
  { "gather", function(v) return v:gather(1, tensor.ones(v:dim() == 1 and { 1 } or { 1, 1 })) end },
  { "narrow:sum", function(v) return v:narrow(1, 1, 2):sum() end, true },
  { "select:sum", function(v) return v:select(1, 1):sum() end, true },
  { "contiguous", function(v) return v:contiguous() end }, { "clone", function(v) return v:clone() end },
  { "reshape", function(v) return v:reshape(-1) end }, { "view", function(v) return v:view(-1) end },
  { "flatten", function(v) return v:flatten() end }, { "totable", function(v) return v:totable() end },
  { "tostring", function(v) return tostring(v) end, true }, { "item", function(v) return v:item() end, true },
  { "eq", function(v) return v:eq(0) end }, { "x - 1", function(v) return v - 1 end }, { "2 * x", function(v) return 2 * v end },
  { "x + x", function(v) return v + v end }, { "exp", function(v) return v:exp() end }, { "pow", function(v) return v:pow(2) end },
  { "clamp", function(v) return v:clamp(0, 1) end }, { "fill", function(v) return v:fill(1) end },
  { "zero", function(v) return v:zero() end }, { "copy", function(v) return v:copy(v) end },
  { "to", function(v) return v:to(v:dtype() == "float64" and "float32" or "float64") end },
  { "flip", function(v) return v:flip(1) end }, { "split", function(v) return v:split(1, 1) end },
  { "chunk", function(v) return v:chunk(2, 1) end }, { "cat", function(v) return tensor.cat({ v, v }, 1) end },
  { "where", function(v) return tensor.where(v:gt(0), v, v) end },
  { "mm", function(v) local m = v:dim() == 2 and v or v:reshape(1, -1); return m:mm(m:t()) end },
  { "pad", function(v) return tensor.pad(v, { 1, 1 }) end },
  { "backward", function(v) return (v * 2):sum():backward() end },
  { "grad", function(v) return tensor.grad((v * v):sum(), { v }) end },
  { "tensor.save", function(v) return tensor.save("view.safetensors", { x = v }) end },
  { "tensor.save npz", function(v) return tensor.save("view.npz", { x = v }) end },
  { "ckpt.save", function(v) return ckpt.save("view-ckpt", { x = v, iter = 1 }, { keep = 1 }) end },
  { "image.save", function(v) return image.save("view.png", v) end },
  { "image.resize", function(v) return image.resize(v, 8) end }, { "image.grid", function(v) return image.grid(v) end },
  { "loadStateDict", function(v) return nn.Linear(2, 2):loadStateDict({ weight = v, bias = v }) end },
  { "nn.Linear", function(v) return nn.Linear(v:size(v:dim()) <= 8 and v:size(v:dim()) or 2, 2)(v) end },
  { "nn.Conv2d", function(v) return nn.Conv2d(3, 2, 3)(v) end },
  { "metrics.fid", function(v) return metrics.fid(v, v) end },
  { "dist.allReduce", function(v) return dist.allReduce(v) end }, { "dist.allGather", function(v) return dist.allGather(v) end },
  { "dist.broadcast", function(v) return dist.broadcast(v, 0) end },
  { "dist.averageGradients", function(v) return dist.averageGradients({ v }) end, true },
  { "dist.GradientAverager", function(v)
    local w = tensor.randn(3):requiresGrad(true)
    local avg = dist.GradientAverager({ w, v }, { bucketMB = 1 })
    avg:arm()
    ;(w * 2):sum():backward()
    return avg:finish()
  end, true },
}
local function viewCall()
  local v = hugeView()
  if chance(0.3) then   -- any function, the view first
    local tgt = pick(targets)
    local n = R(1, 4)
    local args = hintedArgs(tgt.name, v, n)
    return "view:" .. tgt.name .. "(" .. describeArgs(args, n) .. ")", function() return tgt.fn(table.unpack(args, 1, n)) end
  end
  local op = pick(viewOps)
  local small = op[3] == true or (op[3] and op[3](v) <= 1 << 24)
  if small and chance(0.5) then
    return ("view(no limit):%s(%s)"):format(op[1], describe(v)), function()
      tensor.setMemoryLimit(nil)
      local r = table.pack(pcall(op[2], v))
      tensor.setMemoryLimit(768 << 20)
      if not r[1] then error(r[2], 0) end
      return table.unpack(r, 2, r.n)
    end
  end
  return ("view:%s(%s)"):format(op[1], describe(v)), function() return op[2](v) end
end

-- MARK: - Memory limits set low mid-run
-- tensor.setMemoryLimit lowered to almost nothing between calls, as a script may: every
-- allocation after it, the temporaries of `x - 1` included (a number operand becomes a
-- tensor), must be refused with a Lua error. Then the usual limit comes back.
local lowLimits = { 1, 64, 4096, 1 << 20 }
local arithmetic = {
  { "x - n", function(x, n) return x - n end }, { "n - x", function(x, n) return n - x end },
  { "x + n", function(x, n) return x + n end }, { "n * x", function(x, n) return n * x end },
  { "x / n", function(x, n) return x / n end }, { "n / x", function(x, n) return n / x end },
  { "x ^ n", function(x, n) return x ^ n end }, { "n ^ x", function(x, n) return n ^ x end },
  { "x % n", function(x, n) return x % n end }, { "-x", function(x) return -x end },
  { "x < n", function(x, n) return x < n end }, { "x:add(n)", function(x, n) return x:add(n) end },
  { "x:sub(n)", function(x, n) return x:sub(n) end }, { "x:mul(n)", function(x, n) return x:mul(n) end },
  { "x:pow(n)", function(x, n) return x:pow(n) end }, { "x:clamp(n)", function(x, n) return x:clamp(-n, n) end },
  { "x:maximum(n)", function(x, n) return x:maximum(n) end }, { "x:lerp(x, n)", function(x, n) return x:lerp(x, n) end },
  { "x:fill(n)", function(x, n) return x:fill(n) end }, { "x:sum()", function(x) return x:sum() end },
  { "x:clone()", function(x) return x:clone() end }, { "x:contiguous()", function(x) return x:contiguous() end },
  { "tensor.full", function(x, n) return tensor.full(x:shape(), n) end },
  { "backward", function(x, n) return (x * n):sum():backward() end },
}
local nextCall  -- forward declaration: nextCall(depth) -> description, call, key
local function lowMemoryCall()
  local limit = pick(lowLimits)
  local x = randomTensor()
  local n = pick { 1, -1, 0.5, 2, 1e308, 0 / 0, math.maxinteger }
  local steps, parts = {}, {}
  for _ = 1, R(1, 3) do
    local a = pick(arithmetic)
    steps[#steps + 1] = function() return a[2](x, n) end
    parts[#parts + 1] = a[1]
  end
  for _ = 1, R(0, 3) do
    local made, desc, call = pcall(nextCall, 1)
    if made then steps[#steps + 1] = call; parts[#parts + 1] = desc end
  end
  return ("lowmem(%d) x=%s n=%s: %s"):format(limit, describe(x), describe(n), table.concat(parts, "; ")), function()
    tensor.setMemoryLimit(limit)
    for _, s in ipairs(steps) do pcall(s) end
    tensor.setMemoryLimit(768 << 20)
  end
end

-- MARK: - The loop

local nargsOf = function() return R(0, 5) end
local function argsFor(first, n)
  local args = {}
  local start = 1
  if first ~= nil then args[1] = first; start = 2 end
  for i = start, n do args[i] = gen(0) end
  return args
end

-- One random call: returns its description and a function that performs it. `depth` > 0: a
-- call made inside another (under a low memory limit), which does not lower the limit again.
function nextCall(depth)
  local r = R()
  if (depth or 0) > 0 then r = r * 0.975 end
  if r < 0.5 then  -- a library function
    local tgt = pick(targets)
    local n = nargsOf()
    local first = nil
    if tgt.name:match("^tensor%.") and chance(0.7) then first = randomTensor()
    elseif tgt.name:match("^gan%.") and chance(0.5) then first = chance(0.5) and randomModule() or randomTensor() end
    local args = hintedArgs(tgt.name, first, n)
    return tgt.name .. "(" .. describeArgs(args, n) .. ")", function() return tgt.fn(table.unpack(args, 1, n)) end, tgt.name
  elseif r < 0.61 then  -- a tensor method, through the metatable's __index
    local t = chance(0.85) and randomTensor() or gen(0)
    local name = pick(targets).name:match("^tensor%.(.*)$") or "add"
    local n = R(0, 4)
    local args = hintedArgs("T:" .. name, nil, n)
    return ("T:%s(%s)"):format(name, describeArgs(args, n)), function() return t[name](t, table.unpack(args, 1, n)) end, "T:" .. name
  elseif r < 0.72 then  -- a module method, or calling the module
    local m = chance(0.8) and randomModule() or (pool[R(math.max(#pool, 1))] or randomModule())
    local name = pick(moduleMethods)
    local n = R(0, 3)
    local args = hintedArgs("M:" .. name, nil, n)
    if chance(0.5) then args[1] = randomTensor() end
    if name == "__call" or chance(0.3) then
      return ("%s(%s)"):format(describe(m), describeArgs(args, n)), function() return m(table.unpack(args, 1, n)) end
    end
    return ("%s:%s(%s)"):format(describe(m), name, describeArgs(args, n)), function() return m[name](m, table.unpack(args, 1, n)) end, "M:" .. name
  elseif r < 0.77 then  -- an optimizer, EMA, logger, progress, loader, dataset or TensorBoard writer method
    local kind = R(1, 7)
    local obj, names
    if kind == 1 then obj, names = randomOptimizer(), optimizerMethods
    elseif kind == 2 then obj, names = optim.EMA(randomModule()), emaMethods
    elseif kind == 3 then local ok, l = pcall(log.Logger, "fuzz-log"); obj, names = ok and l or nil, loggerMethods
    elseif kind == 4 then local ok, p = pcall(log.Progress, R(0, 10)); obj, names = ok and p or nil, progressMethods
    elseif kind == 5 then obj, names = randomLoader(), loaderMethods
    elseif kind == 6 then obj, names = dataset, datasetFields
    else local ok, w = pcall(log.TensorBoard, "fuzz-tb"); obj, names = ok and w or nil, tensorBoardMethods end
    if obj == nil or #names == 0 then return "skip", function() end end
    local name = pick(names)
    local n = R(0, 3)
    local args = hintedArgs(("obj%d:%s"):format(kind, name), nil, n)
    return ("obj%d:%s(%s)"):format(kind, name, describeArgs(args, n)), function()
      local f = obj[name]
      if type(f) == "function" then return f(chance(0.9) and obj or gen(0), table.unpack(args, 1, n)) end
      return f
    end, ("obj%d:%s"):format(kind, name)
  elseif r < 0.86 then  -- a metamethod
    local a = chance(0.8) and randomTensor() or gen(0)
    local b = gen(0)
    local ops = {
      function() return a + b end, function() return a - b end, function() return a * b end, function() return a / b end,
      function() return a ^ b end, function() return -a end, function() return a % b end, function() return a // b end,
      function() return a < b end, function() return a <= b end, function() return a == b end, function() return a .. b end,
      function() return #a end, function() return tostring(a) end, function() return a[b] end,
      function() a[b] = gen(0) end, function() return a(b) end, function() local c <close> = a end,
      function() for k, v in pairs(a) do remember(v); break end end,
      function() local mt = debug.getmetatable(a); return mt and type(mt.__index) == "function" and mt.__index(b, a) end,
    }
    local k = R(#ops)
    return ("op%d(%s, %s)"):format(k, describe(a), describe(b)), ops[k]
  elseif r < 0.9 then  -- a call from inside a coroutine, whose function may yield across the bridge
    local tgt = pick(targets)
    local n = nargsOf()
    local args = argsFor(nil, n)
    return ("co:%s(%s)"):format(tgt.name, describeArgs(args, n)), function()
      local co = coroutine.wrap(function() return tgt.fn(table.unpack(args, 1, n)) end)
      local v = co()
      return v
    end
  elseif r < 0.94 then
    return viewCall()
  elseif r < 0.975 then
    return stateCall()
  end
  return lowMemoryCall()
end

local ok, failed = 0, 0
for k = 1, opt.calls do
  local made, desc, call, key = pcall(nextCall)  -- making a call can fail too (a freed tensor...)
  if not made then desc, call, key = "skip: " .. tostring(desc):gsub("\n", " "), function() end, nil end
  if trace then trace:write("C ", k, " ", desc, "\n") end
  if opt.verbose then io.stderr:write("C ", k, " ", desc, "\n") end
  local results = table.pack(pcall(call))
  if results[1] then
    ok = ok + 1
    for i = 2, math.min(results.n, 3) do
      local v = results[i]
      if type(v) == "userdata" or type(v) == "table" then remember(v) end
    end
  else
    failed = failed + 1
    if key then learn(key, results[2]) end
  end
  if k % 200 == 0 and chance(0.5) then pool = {} end
end
if trace then trace:write("D ", opt.calls, "\n") end
print(("calls.lua: seed %d, %d calls (%d returned, %d raised errors)"):format(opt.seed, opt.calls, ok, failed))
