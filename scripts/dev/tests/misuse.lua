-- The misuse loop: every function of the tensor library called with wrong types, wrong shapes,
-- nil and huge sizes. Each call must raise a Lua error (never crash, trap or hang), and the
-- process must keep going to the end. A function without misuse cases fails the test, so a
-- new binding cannot slip in untested.
local T = require("testing")
local check = T.check

local x = tensor.randn(2, 3)
local img = tensor.randn(1, 2, 4, 4)
local w = tensor.randn(3, 2, 3, 3)
local HUGE = 1e12

-- Values no tensor function accepts as a tensor.
local junk = { "nil", "string", "table", "boolean", "function", "number" }
local function junkValue(kind)
  if kind == "string" then return "x" elseif kind == "table" then return {} elseif kind == "boolean" then return true
  elseif kind == "function" then return print elseif kind == "number" then return 0 / 0 end
  return nil
end

-- Per function: calls that must fail. Methods also get the bad-self battery below.
local cases = {
  zeros = { function() return tensor.zeros(HUGE) end, function() return tensor.zeros(-1) end,
            function() return tensor.zeros("2") end, function() return tensor.zeros(2.5) end,
            function() return tensor.zeros(1e6, 1e6) end, function() return tensor.zeros({ 2, -2 }) end,
            function() return tensor.zeros(2, { dtype = "int8" }) end, function() return tensor.zeros(2, { dtpye = "float64" }) end,
            function() return tensor.zeros(math.maxinteger, math.maxinteger) end },
  ones = { function() return tensor.ones(HUGE) end, function() return tensor.ones(true) end,
           function() return tensor.ones(2, 3, { dtype = "int32" }) end, function() return tensor.ones({ 1e10, 1e10 }) end },
  full = { function() return tensor.full({ 2 }) end, function() return tensor.full({ 1e9, 1e9 }, 1) end,
           function() return tensor.full({ 2 }, "a") end, function() return tensor.full() end },
  rand = { function() return tensor.rand(2 ^ 40) end, function() return tensor.rand(2, { lo = "a" }) end },
  randn = { function() return tensor.randn(1e10) end, function() return tensor.randn(-5) end,
            function() return tensor.randn(2, { std = {} }) end },
  truncNormal = { function() return tensor.truncNormal({ 1e10 }, 1) end, function() return tensor.truncNormal({ 3 }, 0) end,
                  function() return tensor.truncNormal({ 3 }, -1) end, function() return tensor.truncNormal(3, 1) end,
                  function() return tensor.truncNormal({ 3 }) end },
  randint = { function() return tensor.randint(5, 1, 3) end, function() return tensor.randint(1, 2, HUGE) end,
              function() return tensor.randint("a", 2, 3) end },
  randperm = { function() return tensor.randperm(HUGE) end, function() return tensor.randperm(-1) end },
  arange = { function() return tensor.arange(0, 1e15) end, function() return tensor.arange(0, 1, 0) end,
             function() return tensor.arange(0, math.huge) end, function() return tensor.arange("a") end },
  linspace = { function() return tensor.linspace(0, 1, HUGE) end, function() return tensor.linspace(0, 1, -1) end,
               function() return tensor.linspace(0, math.huge, 3) end, function() return tensor.linspace(0, 1) end },
  eye = { function() return tensor.eye(1e7) end, function() return tensor.eye(-1) end, function() return tensor.eye(nil) end },
  new = { function() return tensor.new({ { 1 }, { 1, 2 } }) end, function() return tensor.new({ "a" }) end,
          function() return tensor.new("a") end, function() return tensor.new() end,
          function() local t = {}; local c = t; for _ = 1, 100 do c[1] = {}; c = c[1] end; return tensor.new(t) end },
  manualSeed = { function() return tensor.manualSeed("a") end, function() return tensor.manualSeed(0.5) end },
  setMemoryLimit = { function() return tensor.setMemoryLimit(-1) end, function() return tensor.setMemoryLimit("x") end,
                    function() return tensor.setMemoryLimit(0.5) end },
  getRNGState = {}, _signatures = {}, clock = {}, memory = {}, config = {}, flops = {}, resetPeakMemory = {}, isTensor = {}, isGradEnabled = {}, getNumThreads = {},
  _profileStart = {}, _profileStop = {},
  profile = { function() return tensor.profile(5) end, function() return tensor.profile(function() error("x") end) end },
  setRNGState = { function() return tensor.setRNGState({ 1, 2 }) end, function() return tensor.setRNGState("x") end },
  setNumThreads = { function() return tensor.setNumThreads(0) end, function() return tensor.setNumThreads(1e9) end },
  setGradEnabled = { function() return tensor.setGradEnabled(1) end },
  noGrad = { function() return tensor.noGrad(5) end, function() return tensor.noGrad(function() error("x") end) end },
  grad = { function() return tensor.grad(x:sum(), x) end, function() return tensor.grad(nil, x) end,
           function() local a = tensor.ones(2):requiresGrad(true); return tensor.grad(a * 2, a) end,
           function() local a = tensor.ones(1):requiresGrad(true); return tensor.grad((a * 2):sum(), a, { gradOutputs = 3 }) end,
           function() local a = tensor.ones(1):requiresGrad(true); return tensor.grad((a * 2):sum(), a, { createGrpah = true }) end },
  gradcheck = { function() return tensor.gradcheck(5, x) end, function() return tensor.gradcheck(function() error("x") end, x) end },
  save = { function() return tensor.save("/nonexistent/dir/f.safetensors", { a = x }) end,
           function() return tensor.save(os.tmpname(), { a = 5 }) end, function() return tensor.save(os.tmpname(), { x }) end,
           function() return tensor.save(nil, {}) end },
  load = { function() return tensor.load("/nonexistent.safetensors") end, function() return tensor.load({}) end },
  cat = { function() return tensor.cat({}) end, function() return tensor.cat({ x, tensor.zeros(3) }) end,
          function() return tensor.cat({ x, tensor.zeros(2, 4) }, 1) end, function() return tensor.cat({ x, 5 }) end,
          function() return tensor.cat(x) end, function() return tensor.cat({ x }, 9) end },
  where = { function() return tensor.where(x, x, tensor.zeros(4)) end, function() return tensor.where(x, "a", x) end },
  linear = { function() return tensor.linear(x, tensor.zeros(4, 4)) end, function() return tensor.linear(x, tensor.zeros(2, 3), tensor.zeros(3)) end },
  embedding = { function() return tensor.embedding(x, { 3 }) end, function() return tensor.embedding(x, { 0 }) end,
                function() return tensor.embedding(x, { 1.5 }) end, function() return tensor.embedding(tensor.zeros(2, 2, 2), { 1 }) end },
  conv2d = { function() return tensor.conv2d(img, tensor.zeros(3, 5, 3, 3)) end, function() return tensor.conv2d(x, w) end,
             function() return tensor.conv2d(img, w, nil, { stride = 0 }) end, function() return tensor.conv2d(img, w, nil, { padding = -1 }) end,
             function() return tensor.conv2d(img, tensor.zeros(3, 2, 9, 9)) end, function() return tensor.conv2d(img, w, tensor.zeros(4)) end,
             function() return tensor.conv2d(img, w, nil, { padding = 1e9 }) end, function() return tensor.conv2d(img, w, nil, { stride = { 1, 2, 3 } }) end },
  convTranspose2d = { function() return tensor.convTranspose2d(img, tensor.zeros(3, 2, 3, 3)) end,
                      function() return tensor.convTranspose2d(img, tensor.zeros(2, 2, 3, 3), nil, { outputPadding = 5, stride = 2 }) end,
                      function() return tensor.convTranspose2d(img, tensor.zeros(2, 2, 3, 3), nil, { padding = 9 }) end },
}

-- Methods (functions whose first argument is a tensor): a battery of bad second arguments, in
-- addition to the bad-self battery. Each entry: calls with a valid tensor first.
local methodCases = {
  detach = {}, numel = {}, dim = {},
  shape = {}, totable = {}, dtype = {}, isContiguous = {}, float = {}, double = {}, t = {}, zero = {}, free = {},
  zeroGrad = {},
  leakyRelu = { function() return x:leakyRelu("a") end },
  add = { function() return x:add(tensor.zeros(4)) end, function() return x:add("a") end, function() return x:add() end },
  sub = { function() return x:sub(tensor.zeros(2, 2)) end, function() return x:sub({}) end },
  mul = { function() return x:mul(tensor.zeros(5)) end, function() return x:mul(true) end },
  div = { function() return x:div(tensor.zeros(7, 3)) end, function() return x:div(nil) end },
  maximum = { function() return x:maximum(tensor.zeros(4)) end }, minimum = { function() return x:minimum("a") end },
  gt = { function() return x:gt(tensor.zeros(4)) end }, lt = { function() return x:lt({}) end },
  ge = { function() return x:ge(tensor.zeros(9)) end }, le = { function() return x:le(print) end },
  eq = { function() return x:eq(tensor.zeros(4)) end }, ne = { function() return x:ne(nil) end },
  pow = { function() return x:pow("a") end, function() return x:pow() end },
  lerp = { function() return x:lerp(tensor.zeros(4), 0.5) end },
  clamp = { function() return x:clamp(3, 1) end, function() return x:clamp("a") end },
  sum = { function() return x:sum(3) end, function() return x:sum(0) end, function() return x:sum("a") end,
          function() return x:sum({ 1, 1 }) end, function() return x:sum(1, "yes") end, function() return x:sum(HUGE) end },
  mean = { function() return x:mean(-3) end }, norm = { function() return x:norm(5) end },
  var = { function() return x:var(4) end, function() return x:var(1, false, { unbaised = true }) end },
  std = { function() return x:std(3) end },
  max = { function() return x:max(5) end, function() return tensor.zeros(0):max() end },
  min = { function() return x:min(0) end }, argmax = { function() return x:argmax(3) end }, argmin = { function() return x:argmin(-5) end },
  logsumexp = { function() return x:logsumexp() end, function() return x:logsumexp(9) end },
  softmax = { function() return x:softmax() end, function() return x:softmax(3) end },
  logSoftmax = { function() return x:logSoftmax("a") end },
  item = { function() return x:item() end },
  size = { function() return x:size(3) end, function() return x:size("a") end },
  reshape = { function() return x:reshape(4, 2) end, function() return x:reshape(-1, -1) end, function() return x:reshape(HUGE) end,
              function() return x:reshape(-2, 3) end },
  view = { function() return x:t():view(6) end, function() return x:view(5) end },
  expand = { function() return x:expand(4, 3) end, function() return x:expand(3) end,
             function() return tensor.ones(1):expand(1e6, 1e6):contiguous() end },
  permute = { function() return x:permute(1, 1) end, function() return x:permute(1) end, function() return x:permute(1, 3) end },
  transpose = { function() return x:transpose(1, 3) end, function() return x:transpose() end },
  squeeze = { function() return x:squeeze(3) end }, unsqueeze = { function() return x:unsqueeze(4) end },
  flatten = { function() return x:flatten(2, 1) end, function() return x:flatten(5) end },
  narrow = { function() return x:narrow(1, 0, 1) end, function() return x:narrow(1, 2, 2) end, function() return x:narrow(3, 1, 1) end,
             function() return x:narrow(1, 1, -1) end },
  select = { function() return x:select(1, 3) end, function() return x:select(1, 0) end },
  indexSelect = { function() return x:indexSelect(1, { 3 }) end, function() return x:indexSelect(1, { 0 }) end,
                  function() return x:indexSelect(1, "a") end, function() return x:indexSelect(1, { 1.5 }) end },
  gather = { function() return x:gather(2, tensor.new { { 4, 1, 1 }, { 1, 1, 1 } }) end, function() return x:gather(2, { 1 }) end },
  split = { function() return x:split(0) end, function() return x:split(1, 5) end },
  chunk = { function() return x:chunk(0) end },
  flip = { function() return x:flip(3) end },
  pad = { function() return x:pad({ 1 }) end, function() return x:pad({ -1, 0 }) end, function() return x:pad({ 1e9, 1e9, 1e9, 1e9 }) end,
          function() return x:pad({ 1, 1, 1, 1, 1, 1 }) end },
  to = { function() return x:to("int32") end, function() return x:to(1) end },
  copy = { function() return x:copy(tensor.zeros(4)) end, function() return x:copy("a") end },
  fill = { function() return x:fill("a") end, function() return x:fill() end },
  add_ = { function() return x:add_(tensor.zeros(4)) end, function() return x:add_("a") end, function() return x:add_() end,
           function() return tensor.zeros(1):expand(3):add_(1) end,
           function() return (tensor.ones(2):requiresGrad(true) * 2):add_(1) end },
  relu_ = { function() return tensor.zeros(1):expand(3):relu_() end,
            function() return (tensor.ones(2):requiresGrad(true) * 2):relu_() end },
  mm = { function() return x:mm(x) end, function() return x:mm(tensor.zeros(3)) end },
  bmm = { function() return x:bmm(x) end, function() return tensor.zeros(2, 2, 3):bmm(tensor.zeros(3, 3, 2)) end },
  matmul = { function() return x:matmul(tensor.zeros(2)) end, function() return tensor.new(1):matmul(x) end },
  avgPool2d = { function() return img:avgPool2d(9) end, function() return img:avgPool2d(0) end, function() return x:avgPool2d(2) end,
                function() return img:avgPool2d(2, { padding = 2 }) end, function() return img:avgPool2d(2, { stide = 1 }) end },
  maxPool2d = { function() return img:maxPool2d(5) end, function() return x:maxPool2d(1) end, function() return img:maxPool2d(2, { stride = -1 }) end },
  batchNorm = { function() return tensor.batchNorm(x) end, function() return tensor.batchNorm(img, tensor.ones(1, 3)) end,
                function() return tensor.batchNorm(img, nil, nil, { eps = 0 }) end, function() return tensor.batchNorm(tensor.randn(1, 2, 1, 1)) end,
                function() return tensor.batchNorm(img, "x") end, function() return tensor.batchNorm(img, nil, nil, { esp = 1 }) end },
  upsampleNearest = { function() return img:upsampleNearest(0) end, function() return x:upsampleNearest(2) end,
                      function() return img:upsampleNearest(1e6) end },
  requiresGrad = { function() return x:requiresGrad("yes") end, function() return (tensor.ones(1):requiresGrad(true) * 2):requiresGrad(false) end },
  backward = { function() return x:backward() end, function() return tensor.ones(2):requiresGrad(true):sum():backward(tensor.ones(3)) end,
               function() return tensor.ones(2):requiresGrad(true):sum():backward(nil, { retain = true }) end },
}

-- Cases derived from each registry op's signature (tensor._signatures(), from Tensor.ops): an
-- op added to the registry is swept without an edit here; the hand-written cases above are
-- added to these.
local derived = {
  unary = function() return {} end,   -- the bad-self battery below covers a one-argument op
  unaryNumber = function(name)
    return { function() return x[name](x, "a") end, function() return x[name](x, {}) end }
  end,
  binary = function(name)
    return { function() return x[name](x, tensor.zeros(4)) end, function() return x[name](x, "a") end,
             function() return x[name](x) end, function() return x[name](x, {}) end }
  end,
  pair = function(name)
    return { function() return x[name](x, 2) end, function() return x[name](x, "a") end, function() return x[name](x) end }
  end,
  unaryInteger = function(name)
    return { function() return x[name](x, "a") end, function() return x[name](x, 1.5) end, function() return x[name](x) end }
  end,
  reduction = function(name)
    return { function() return x[name](x, 3) end, function() return x[name](x, 0) end, function() return x[name](x, "a") end,
             function() return x[name](x, HUGE) end, function() return x[name](x, 1, "yes") end }
  end,
  alongDim = function(name)
    return { function() return x[name](x) end, function() return x[name](x, 3) end, function() return x[name](x, "a") end }
  end,
  alongDimKeep = function(name)
    return { function() return x[name](x) end, function() return x[name](x, 3) end, function() return x[name](x, "a") end,
             function() return x[name](x, 1, "yes") end }
  end,
  sizes = function(name)
    return { function() return x[name](x, "a") end, function() return x[name](x, { 1.5 }) end, function() return x[name](x, HUGE) end,
             function() return x[name](x, -2, 3) end, function() return x[name](x, {}) end, function() return x[name](x, 5) end }
  end,
  dims = function(name)
    return { function() return x[name](x, 3) end, function() return x[name](x, "a") end, function() return x[name](x, { 0 }) end,
             function() return x[name](x, 1.5) end, function() return x[name](x, HUGE) end }
  end,
  indexAlongDim = function(name)
    return { function() return x[name](x, 1) end, function() return x[name](x, 1, "a") end, function() return x[name](x, 3, { 1 }) end,
             function() return x[name](x, 1, { 0 }) end, function() return x[name](x, 1, { 1.5 }) end,
             function() return x[name](x, 1, { HUGE }) end }
  end,
  pieces = function(name)
    return { function() return x[name](x) end, function() return x[name](x, 0) end, function() return x[name](x, "a") end,
             function() return x[name](x, 1.5) end, function() return x[name](x, 1, 3) end }
  end,
}
for name, kind in pairs(tensor._signatures()) do
  if derived[kind] then
    local list = derived[kind](name)
    for _, f in ipairs(methodCases[name] or {}) do list[#list + 1] = f end
    methodCases[name] = list
  end
end

local sample = tensor.ones(1)
-- Binary ops take a number on either side, so a number first is not misuse for them.
local numberFirstOK = { add = true, sub = true, mul = true, div = true, pow = true, maximum = true, minimum = true,
                        eq = true, ne = true, gt = true, lt = true, ge = true, le = true }
local names = {}
for name in pairs(tensor) do names[#names + 1] = name end
table.sort(names)

T.test("every function has misuse cases", function()
  local missing = {}
  for _, name in ipairs(names) do
    if cases[name] == nil and methodCases[name] == nil then missing[#missing + 1] = name end
  end
  check(#missing == 0, "no misuse cases for: " .. table.concat(missing, ", "))
end)

local calls = 0
T.test("every misuse raises a Lua error", function()
  local survived = {}
  for _, name in ipairs(names) do
    local fn = tensor[name]
    local isMethod = type(sample[name]) == "function"
    if isMethod then
      -- a method called on something that is not a tensor
      for _, kind in ipairs(junk) do
        if kind == "number" and numberFirstOK[name] then goto continue end
        calls = calls + 1
        local ok = pcall(fn, junkValue(kind), x, 1)
        if ok then survived[#survived + 1] = ("%s(<%s>, ...)"):format(name, kind) end
        ::continue::
      end
    end
    for i, f in ipairs(cases[name] or methodCases[name] or {}) do
      calls = calls + 1
      local ok = pcall(f)
      if ok then survived[#survived + 1] = ("%s case %d"):format(name, i) end
    end
  end
  check(#survived == 0, "these calls did not raise: " .. table.concat(survived, ", "))
end)

T.test("the process kept going and still computes", function()
  check(calls > 400, "ran " .. calls .. " misuse calls")
  check(tensor.ones(2, 2):mm(tensor.ones(2, 2)):sum():item() == 8)
  check(tensor.isGradEnabled())
end)

print(("misuse: %d bad calls, all raised Lua errors"):format(calls))
T.finish("misuse")
