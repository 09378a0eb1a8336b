-- The module system, layers, initializers, spectra, optimizers and penalties: behaviour that
-- the PyTorch fixtures do not pin down.
local T = require("testing")
local check, checkError, close = T.check, T.checkError, T.close

local function names(iter)
  local out = {}
  for n in iter do out[#out + 1] = n end
  return table.concat(out, " ")
end

T.test("Lua-defined modules register fields, reassignment too", function()
  local Block = nn.Module:extend("GBlock")
  function Block:init(cin, cout)
    self.conv1 = nn.Conv2d(cin, cout, 3, { padding = 1 })
    self.bn1 = nn.BatchNorm2d(cout)
    self.gamma = tensor.zeros(1):requiresGrad(true)
    self.steps = tensor.zeros(1)  -- a buffer
    self.label = "block"
  end
  function Block:forward(x) return self.bn1(self.conv1(x)) * (1 + self.gamma) end
  local b = Block(2, 3)
  check(names(b:namedParameters()) == "gamma conv1.weight conv1.bias bn1.weight bn1.bias", names(b:namedParameters()))
  check(names(b:namedBuffers()) == "steps bn1.running_mean bn1.running_var bn1.num_batches_tracked")
  check(#b:children() == 2 and b.label == "block" and b:typeName() == "GBlock")
  check(b:numParameters() == 1 + 2 * 3 * 9 + 3 + 3 + 3)
  -- reassignment replaces, keeping the position; nil removes
  b.conv1 = nn.Conv2d(2, 3, 1)
  check(names(b:namedParameters()) == "gamma conv1.weight conv1.bias bn1.weight bn1.bias")
  check(b.conv1:parameters()[1]:size(3) == 1)
  b.gamma = nil
  check(names(b:namedParameters()) == "conv1.weight conv1.bias bn1.weight bn1.bias")
  checkError("holds a parameter", function() b.conv1.weight = tensor.zeros(3, 2, 1, 1) end)
  checkError("a parameter must be a leaf tensor", function() b.w = tensor.ones(1):requiresGrad(true) * 2 end)
  checkError("use nn.ModuleList", function() b.blocks = { nn.Linear(1, 1) } end)
  checkError("holds a submodule; assign nil first", function() b.bn1 = 5 end)
  checkError("cannot contain itself", function() b.me = b end)
  checkError("reserved", function() b.training = false end)
  -- methods are inherited, overridable, and classes can be extended again
  local Sub = Block:extend("SubBlock")
  function Sub:forward(x) return Block.forward(self, x) * 2 end
  local s = Sub(2, 3)
  check(s:typeName() == "SubBlock" and s(tensor.randn(2, 2, 4, 4)):size(2) == 3)
  checkError("cannot extend the built-in nn.Linear", function() return nn.Linear:extend("MyLinear") end)
  checkError("nn.Module is abstract", function() return nn.Module() end)
  local NoForward = nn.Module:extend("NoForward")
  checkError("NoForward: forward is not defined", function() return NoForward()(tensor.ones(1)) end)
end)

T.test("train/eval reach every descendant; apply is children first", function()
  local m = nn.Sequential(nn.Linear(2, 2), nn.Sequential(nn.BatchNorm2d(1), nn.ReLU()))
  check(m.training and m[2][1].training)
  m:eval()
  check(not m.training and not m[2][1].training)
  m:train()
  check(m[2][1].training)
  local order = {}
  m:apply(function(x) order[#order + 1] = x:typeName() end)
  check(table.concat(order, ",") == "Linear,BatchNorm2d,ReLU,Sequential,Sequential", table.concat(order, ","))
  check(#m:modules() == 5)
end)

T.test("stateDict follows PyTorch's names; zeroGrad; tostring shows counts", function()
  local m = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2), nn.SpectralNorm(nn.Linear(4, 2)))
  check(table.concat(m:stateDictNames(), " ") ==
    "0.weight 0.bias 1.weight 1.bias 1.running_mean 1.running_var 1.num_batches_tracked 2.bias 2.weight_orig 2.weight_u 2.weight_v",
    table.concat(m:stateDictNames(), " "))
  local sd = m:stateDict()
  check(tensor.isTensor(sd["2.weight_u"]) and sd["2.weight_u"]:size(1) == 2 and sd["2.weight_v"]:size(1) == 4)
  for _, p in ipairs(m:parameters()) do p.grad = tensor.ones(p:shape()) end
  m:zeroGrad()
  for _, p in ipairs(m:parameters()) do check(p.grad == nil) end
  local s = tostring(m)
  check(s:find("Sequential {  [", 1, true) and s:find("(2): Linear(4, 2, spectralNorm", 1, true), s)
  check(s:find("[20 params]", 1, true), s)
end)

T.test("requiresGrad(false) freezes every parameter: input gradients still flow, weight gradients are not made", function()
  local D = nn.Sequential(nn.SpectralNorm(nn.Conv2d(1, 2, 3, { padding = 1 })), nn.ReLU(), nn.Conv2d(2, 1, 1)):eval()  -- u frozen
  local x = tensor.randn(2, 1, 4, 4):requiresGrad(true)
  D:forward(x):sum():backward()
  local withGrad = x.grad:clone()
  x.grad = nil
  check(D:requiresGrad(false) == D)
  D:zeroGrad()
  D:forward(x):sum():backward()
  for _, p in ipairs(D:parameters()) do check(p.grad == nil and not p:requiresGrad()) end
  check((x.grad - withGrad):abs():max():item() == 0, "the input gradient does not depend on the parameters' flags")
  D:requiresGrad(true)
  D:forward(x):sum():backward()
  for _, p in ipairs(D:parameters()) do check(p.grad ~= nil) end
  checkError("requiresGrad' (boolean expected, got nil)", function() D:requiresGrad() end)
end)

T.test("standing statistics: running estimates are the plain average over the passes, then eval mode", function()
  tensor.manualSeed(2)
  local bn = nn.BatchNorm2d(3)
  local batches = { tensor.randn(4, 3, 2, 2) * 2 + 1, tensor.randn(4, 3, 2, 2) - 3, tensor.randn(4, 3, 2, 2) * 0.5 }
  nn.utils.standingStats(bn, 3, function(k) bn(batches[k]) end)
  local mean, var = tensor.zeros(3), tensor.zeros(3)
  for _, b in ipairs(batches) do
    local flat = b:permute(2, 1, 3, 4):reshape(3, -1)      -- (C, N·H·W)
    mean = mean + flat:mean(2) / 3
    var = var + ((flat - flat:mean(2, true)) ^ 2):sum(2) / (flat:size(2) - 1) / 3   -- unbiased, as the running estimate
  end
  local sd = bn:stateDict()
  close(sd.running_mean, mean, 1e-6, 1e-5)
  close(sd.running_var, var, 1e-6, 1e-5)
  check(not bn.training, "eval mode afterwards")
  -- outside standingStats the momentum average is back
  bn:train()
  bn(batches[1])
  close(sd.running_mean, mean * 0.9 + batches[1]:permute(2, 1, 3, 4):reshape(3, -1):mean(2) * 0.1, 1e-6, 1e-5)
  checkError("boom", nn.utils.standingStats, bn, 2, function(k) if k == 2 then error("boom") end; bn(batches[3]) end)
  bn:train()
  local before = sd.running_mean:clone()
  bn(batches[2])     -- an error inside left no accumulation switched on: momentum 0.1 again
  close(sd.running_mean, before * 0.9 + batches[2]:permute(2, 1, 3, 4):reshape(3, -1):mean(2) * 0.1, 1e-6, 1e-5)
  checkError("positive integer expected", nn.utils.standingStats, bn, 0, function() end)
end)

T.test("clone is deep and keeps Lua fields and classes", function()
  local Net = nn.Module:extend("CloneNet")
  function Net:init() self.fc = nn.Linear(3, 2); self.scale = 3; self.stat = tensor.ones(2) end
  function Net:forward(x) return self.fc(x) * self.scale end
  local a = Net()
  local b = a:clone()
  check(b:typeName() == "CloneNet" and b.scale == 3)
  local x = tensor.randn(4, 3)
  close(a(x), b(x), 0, 0)
  tensor.noGrad(function() b.fc.weight:fill(0) end)
  check(a.fc.weight:abs():sum():item() > 0, "the copy does not share storage")
  check(not rawequal(a.stat, b.stat) and b.stat:sum():item() == 2)
end)

T.test("containers: Sequential adds error context; ModuleList indexes and iterates", function()
  local s = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(5, 1))
  local err = checkError("Sequential: in module 3 (Linear)", function() return s(tensor.randn(2, 3)) end)
  check(err:find("input has 4 features but weight expects 5", 1, true), err)
  local l = nn.ModuleList { nn.Linear(1, 1), nn.Linear(1, 2) }
  l:add(nn.Linear(2, 3))
  check(#l == 3 and l[3]:typeName() == "Linear")
  local count = 0
  for i, m in ipairs(l) do count = count + 1; check(m == l[i]) end
  check(count == 3)
  check(names(l:namedParameters()):find("2.weight", 1, true))
  checkError("ModuleList has no forward", function() return l(tensor.ones(1)) end)
end)

T.test("forward argument checks", function()
  checkError("Linear: forward expects 1 input", function() return nn.Linear(2, 2)() end)
  checkError("ConditionalBatchNorm2d: forward expects 2 inputs", function()
    return nn.ConditionalBatchNorm2d(3, { numClasses = 4 })(tensor.randn(2, 3, 2, 2))
  end)
  checkError("is not a class in 1..4", function()
    return nn.ConditionalBatchNorm2d(3, { numClasses = 4 })(tensor.randn(2, 3, 2, 2), { 1, 5 })
  end)
  checkError("expected more than 1 value per channel", function() return nn.BatchNorm2d(2)(tensor.randn(1, 2, 1, 1)) end)
  checkError("not divisible by the group size", function() return nn.MinibatchStdDev(4)(tensor.randn(6, 2, 2, 2)) end)
end)

T.test("BatchNorm2d inPlace writes over its input only in eval mode with no graph, the same bits", function()
  tensor.manualSeed(3)
  local plain, inPlace = nn.BatchNorm2d(3), nn.BatchNorm2d(3, { inPlace = true })
  local x = tensor.randn(4, 3, 5, 5)
  for _ = 1, 2 do plain(x); inPlace(x) end                     -- the same running statistics
  T.check(tostring(inPlace):find("inPlace", 1, true), "tostring names inPlace")
  plain:eval(); inPlace:eval()
  local expected = tensor.noGrad(function() return plain(x) end)
  local x2 = x:clone()
  local y = tensor.noGrad(function() return inPlace(x2) end)
  T.check(rawequal(y, x2) and T.maxDiff(x2, expected) == 0, "eval + noGrad: written over the input, bit for bit")
  -- a graph to record (the input or the affine weight needs a gradient): out of place
  local x3 = x:clone():requiresGrad(true)
  local y3 = inPlace(x3)
  T.check(not rawequal(y3, x3) and T.maxDiff(y3:detach(), expected) == 0 and T.maxDiff(x3:detach(), x) == 0,
    "on a graph the input is left alone")
  local x4 = x:clone()
  local y4 = inPlace(x4)
  T.check(not rawequal(y4, x4) and y4:requiresGrad() and T.maxDiff(x4, x) == 0, "a weight that needs a gradient keeps x")
  inPlace:train()
  local x5 = x:clone()
  T.check(not rawequal(tensor.noGrad(function() return inPlace(x5) end), x5), "training mode normalizes out of place")
end)

T.test("Conv2d outputsUsed computes the first channels only; the rest get no gradient", function()
  tensor.manualSeed(4)
  local full = nn.Conv2d(5, 8, 3, { padding = 1 }):double()
  local used = nn.Conv2d(5, 8, 3, { padding = 1, outputsUsed = 3 }):double()
  used:loadStateDict(full:stateDict())
  T.check(tostring(used):find("outputsUsed=3", 1, true), "tostring names outputsUsed")
  local x = tensor.randn(2, 5, 6, 6):double()
  local y = used(x)
  T.check(y:size(2) == 3 and T.maxDiff(y, full(x):narrow(2, 1, 3)) < 1e-12, "the first three channels of the full conv")
  y:sum():backward()
  local gw = used.weight.grad
  T.check(gw:size(1) == 8 and gw:narrow(1, 4, 5):abs():max():item() == 0 and gw:narrow(1, 1, 3):abs():max():item() > 0,
    "the unused rows' gradient is zero")
  T.check(used:clone()(x):size(2) == 3, "a copy keeps outputsUsed")
end)

T.test("spectral norm: one power step per training forward, u frozen in eval, sigma -> 1", function()
  tensor.manualSeed(3)
  local lin = nn.SpectralNorm(nn.Linear(8, 6))
  local u0 = lin.weight_u:clone()
  lin(tensor.randn(2, 8))
  check(T.maxDiff(u0, lin.weight_u) > 0, "training forward updates u")
  lin:eval()
  local u1 = lin.weight_u:clone()
  lin(tensor.randn(2, 8))
  check(T.maxDiff(u1, lin.weight_u) == 0, "eval keeps u")
  lin:train()
  for _ = 1, 100 do lin(tensor.randn(1, 8)) end
  local sv = nn.utils.singularValues(lin.weight, 1)[1]
  check(math.abs(sv - 1) < 1e-3, "the normalized weight has spectral norm 1, got " .. sv)
  local sv0 = nn.utils.singularValues(lin.weight_orig, 1)[1]
  close(lin.weight * sv0, lin.weight_orig, 1e-4, 1e-3, "weight = weight_orig / sigma")
  checkError("already spectrally normalized", nn.SpectralNorm, lin)
  checkError("has no weight to normalize", nn.SpectralNorm, nn.ReLU())
end)

T.test("spectral norm with evalPowerStep: BigGAN-PyTorch's eval mode, one fresh power step, nothing stored", function()
  tensor.manualSeed(4)
  local lin = nn.SpectralNorm(nn.Linear(8, 6), { evalPowerStep = true })
  local ref = nn.SpectralNorm(nn.Linear(8, 6))
  ref:loadStateDict(lin:stateDict())
  local x = tensor.randn(3, 8)
  close(lin(x), ref(x), 0, 0, "training mode is unchanged by the option")
  close(lin.weight_u, ref.weight_u, 0, 0, "training mode stores u as before")
  lin:eval(); ref:eval()
  local W, u, v = lin.weight_orig, lin.weight_u:clone(), lin.weight_v:clone()
  local v1 = W:t():matmul(u); v1 = v1 / v1:norm():item()      -- one step from the stored u (layers.py power_iteration)
  local u1 = W:matmul(v1); u1 = u1 / u1:norm():item()
  local fresh = (u1 * W:matmul(v1)):sum():item()
  local stored = (u * W:matmul(v)):sum():item()
  check(math.abs(fresh - stored) > 1e-6, "the stored u has not converged, so the two eval modes differ")
  close(lin(x), x:matmul(W:t()) / fresh + lin.bias, 1e-6, 1e-5, "eval output with W / sigma of a fresh step")
  close(ref(x), x:matmul(W:t()) / stored + ref.bias, 1e-6, 1e-5, "without the option, sigma from the stored u and v")
  close(lin.weight_u, u, 0, 0, "u is not stored in eval mode")
  close(lin.weight_v, v, 0, 0, "v is not stored in eval mode")
  check(tostring(lin):find("eval power step", 1, true), "the module's description names the option")
  local m = nn.Sequential(nn.SpectralNorm(nn.Conv2d(2, 2, 1)), nn.ReLU(), nn.SelfAttention(8), ref)
  check(nn.utils.spectralNormEvalPowerStep(m, true) == 6, "set on every spectrally normalized module of a tree")
  close(ref(x), lin(x), 0, 0, "switched on afterwards, the same function")
  check(nn.utils.spectralNormEvalPowerStep(m, false) == 6 and T.maxDiff(ref(x), lin(x)) > 0, "and off again")
end)

T.test("default and equalized initialization", function()
  tensor.manualSeed(5)
  local lin = nn.Linear(400, 300)
  local b = 1 / math.sqrt(400)
  check(lin.weight:abs():max():item() <= b and lin.weight:abs():max():item() > 0.95 * b, "U(±1/sqrt(fan_in))")
  local eq = nn.Conv2d(64, 32, 3, { equalized = true })
  check(math.abs(eq.weight:std():item() - 1) < 0.05 and eq.bias:abs():sum():item() == 0, "N(0,1) weights, zero bias")
  local emb = nn.Embedding(100, 100)
  check(math.abs(emb.weight:std():item() - 1) < 0.05, "embeddings are N(0,1)")
  local bn = nn.BatchNorm2d(4)
  check(bn.weight:sum():item() == 4 and bn.running_var:sum():item() == 4)
  local att = nn.SelfAttention(16)
  check(att.gamma:dim() == 0 and att.gamma:item() == 0, "attention starts as the identity")
  local x = tensor.randn(2, 16, 4, 4)
  close(att(x), x, 0, 0)
end)

T.test("initializers", function()
  tensor.manualSeed(9)
  for _, shape in ipairs { { 6, 10 }, { 10, 6 }, { 8, 3, 3, 3 } } do
    local w = tensor.zeros(shape)
    nn.init.orthogonal(w, 2)
    local m = w:reshape(shape[1], -1)
    local gram = m:size(1) <= m:size(2) and m:mm(m:t()) or m:t():mm(m)
    close(gram, tensor.eye(gram:size(1)) * 4, 1e-5, 0, "orthogonal rows (or columns) with gain 2")
  end
  local w = tensor.zeros(200, 300)
  nn.init.xavierUniform(w)
  local bound = math.sqrt(6 / 500)
  check(w:abs():max():item() <= bound and w:abs():max():item() > 0.95 * bound)
  nn.init.kaimingNormal(w, { mode = "fanIn", nonlinearity = "relu" })
  check(math.abs(w:std():item() - math.sqrt(2 / 300)) < 0.005)
  nn.init.normal(w, 0, 0.02)
  check(math.abs(w:std():item() - 0.02) < 0.001)
  nn.init.uniform(w, -1, 1); check(w:min():item() >= -1 and w:max():item() < 1)
  nn.init.zeros(w); check(w:abs():sum():item() == 0)
  nn.init.ones(w); check(w:sum():item() == 60000)
  close(nn.init.calculateGain("leakyRelu", 0.2), math.sqrt(2 / 1.04), 1e-12)
end)

T.test("singular values by power iteration with deflation; clampSpectrum", function()
  -- W = U diag(5, 3, 1) Vᵀ with orthogonal U (4x3) and V (3x3)
  local u, v = tensor.zeros(4, 3, { dtype = "float64" }), tensor.zeros(3, 3, { dtype = "float64" })
  nn.init.orthogonal(u); nn.init.orthogonal(v)
  local w = u:mm(tensor.new({ { 5, 0, 0 }, { 0, 3, 0 }, { 0, 0, 1 } }, { dtype = "float64" })):mm(v:t())
  local sv = nn.utils.singularValues(w, 3)
  close(tensor.new(sv), tensor.new { 5, 3, 1 }, 1e-6, 0, "top-3 singular values")
  local before = nn.utils.clampSpectrum(w, 2)
  check(math.abs(before - 5) < 1e-6)
  close(tensor.new(nn.utils.singularValues(w, 3)), tensor.new { 3, 2, 1 }, 1e-6, 0, "clamped to 2 (now second)")
  checkError("k must be in 1..3", nn.utils.singularValues, w, 4)
end)

T.test("optimizers: parameter groups, state dicts, reset, lr", function()
  local a, b = tensor.ones(2):requiresGrad(true), tensor.ones(3):requiresGrad(true)
  local opt = optim.Adam({ { params = { a }, lr = 0.1 }, { params = { b } } }, { lr = 0.01, betas = { 0, 0.9 } })
  check(opt:getLr(1) == 0.1 and opt:getLr(2) == 0.01)
  a.grad, b.grad = tensor.ones(2), tensor.ones(3)
  opt:step()
  close(a, tensor.full({ 2 }, 0.9), 1e-6, 0, "first Adam step with beta1 0 moves by lr")
  local sd = opt:stateDict()
  check(sd.state[1].step == 1 and sd.state[2].exp_avg:size(1) == 3 and sd.paramGroups[2].params[1] == 2)
  check(sd.paramGroups[1].betas[1] == 0 and sd.paramGroups[1].betas[2] == 0.9)
  local a2, b2 = a:detach():clone():requiresGrad(true), b:detach():clone():requiresGrad(true)
  local opt2 = optim.Adam({ { params = { a2 } }, { params = { b2 } } })
  opt2:loadStateDict(sd)
  a.grad, a2.grad = tensor.ones(2), tensor.ones(2)
  opt:step(); opt2:step()
  close(a2, a, 0, 0, "a loaded optimizer continues identically")
  opt:resetState()
  check(next(opt:stateDict().state) == nil)
  opt:setLr(0.5)
  check(opt:getLr(2) == 0.5)
  opt:zeroGrad()
  check(a.grad == nil and b.grad == nil)
  local sgd = optim.SGD(nn.Linear(2, 2), { lr = 0.1, momentum = 0.9 })
  check(#sgd:parameters() == 2, "a module's parameters")
  checkError("is not a parameter", function() optim.Adam({ tensor.ones(2) }) end)
  checkError("appears more than once", function() optim.SGD({ a, a }) end)
  checkError("not a parameter tensor", function() optim.Adam({ a, 5 }) end)
  checkError("unknown option 'beta1'", function() optim.Adam({ a }, { beta1 = 0.5 }) end)
  checkError("betas must be in [0, 1)", function() optim.Adam({ a }, { betas = { 1, 0.9 } }) end)
  checkError("Nesterov momentum requires", function() optim.SGD({ a }, { nesterov = true }) end)
  checkError("the state has 1 parameters in group 1, this optimizer 2", function() optim.Adam({ a, b }):loadStateDict(optim.Adam({ a }):stateDict()) end)
end)

T.test("EMA copies exactly before startIter, then averages; its model is usable", function()
  local G = nn.Sequential(nn.Linear(2, 2), nn.Tanh())
  local ema = optim.EMA(G, { decay = 0.5, startIter = 3 })
  check(not ema.model:parameters()[1]:requiresGrad(), "the average is not trained")
  tensor.noGrad(function() G[1].weight:fill(1) end)
  ema:update(G, 1)
  close(ema.model[1].weight, tensor.ones(2, 2), 0, 0, "exact copy before startIter")
  tensor.noGrad(function() G[1].weight:fill(3) end)
  ema:update(G, 3)
  close(ema.model[1].weight, tensor.full({ 2, 2 }, 2), 0, 0, "0.5·1 + 0.5·3")
  check(ema.model(tensor.ones(1, 2)):size(2) == 2)
  check(ema:settings().decay == 0.5)
  checkError("unknown option 'decy'", function() optim.EMA(G, { decy = 0.9 }) end)
  checkError("luagan.Module expected", function() optim.EMA({}) end)
end)

-- A tiny smooth D as a function of its parameters, for float64 gradchecks of the penalties.
local function tinyD(w, b, v)
  return function(x) return tensor.conv2d(x, w, b, { padding = 1 }):softplus():flatten(2):matmul(v) end
end

T.test("gradcheck of R1 and WGAN-GP in float64, first and second order", function()
  tensor.manualSeed(11)
  local f64 = { dtype = "float64" }
  local real, fake = tensor.randn(2, 1, 3, 3, f64), tensor.randn(2, 1, 3, 3, f64)
  local u = tensor.new({ 0.3, 0.8 }, f64)
  local params = { tensor.randn(2, 1, 3, 3, f64) * 0.5, tensor.randn(2, f64) * 0.1, tensor.randn(18, f64) * 0.3 }
  local r1 = function(w, b, v) return gan.r1Penalty(tinyD(w, b, v), real, { gamma = 10 }) end
  local gp = function(w, b, v) return (gan.gradientPenalty(tinyD(w, b, v), real, fake, { u = u })) end
  for name, fn in pairs { r1 = r1, wganGP = gp } do
    local ok, msg = tensor.gradcheck(fn, params)
    check(ok, name .. " first order: " .. msg)
    ok, msg = tensor.gradcheck(fn, params, { secondOrder = true })
    check(ok, name .. " second order: " .. msg)
  end
end)

T.test("losses stay finite at logits of ±300", function()
  local big = tensor.new { 300, -300 }:requiresGrad(true)
  local l = gan.logisticD(big, -big) + gan.logisticG(big)
  check(l:item() == l:item() and math.abs(l:item()) < 1e3)
  l:backward()
  check(big.grad:abs():max():item() < 10)
end)

T.test("double() and float() convert every parameter and buffer, and training runs in that dtype", function()
  tensor.manualSeed(3)
  local m = nn.Sequential(nn.SpectralNorm(nn.Conv2d(2, 3, 3, { padding = 1 })), nn.BatchNorm2d(3))
  local before = m:stateDict()["0.weight_orig"]:clone()
  check(m:double() == m)
  for name, t in pairs(m:stateDict()) do check(t:dtype() == "float64", name .. " is " .. t:dtype()) end
  T.close(m:stateDict()["0.weight_orig"], before:double(), 0, 0, "values kept exactly")
  local opt = optim.Adam(m:parameters(), { lr = 1e-3 })
  local y = m(tensor.randn(4, 2, 5, 5, { dtype = "float64" }))
  check(y:dtype() == "float64")
  y:pow(2):mean():backward()
  for name, p in m:namedParameters() do check(p.grad and p.grad:dtype() == "float64", name) end
  opt:step()
  check(m:stateDict()["1.running_mean"]:dtype() == "float64")
  m:float()
  for name, t in pairs(m:stateDict()) do check(t:dtype() == "float32", name) end
end)

T.test("double() and float() re-point the Lua fields that hold registered tensors", function()
  local M = nn.Module:extend("WithBiasField")
  function M:init() self.lin = nn.Linear(2, 2, { bias = false }); self.bias = tensor.zeros(2):requiresGrad(true) end
  function M:forward(x) return self.lin(x) + self.bias end
  local m = M():double()
  T.check(m.bias:dtype() == "float64", "the field follows the conversion")
  local opt = optim.SGD(m:parameters(), { lr = 1 })
  m(tensor.ones(1, 2, { dtype = "float64" })):sum():backward()
  opt:step()
  T.check(m.bias[1] == -1 and m:stateDict().bias[1] == -1, "the optimizer stepped the tensor the forward uses")
  m:float()
  T.check(m.bias:dtype() == "float32" and m.bias[1] == -1, "and back")
end)

T.finish("nn_modules")
