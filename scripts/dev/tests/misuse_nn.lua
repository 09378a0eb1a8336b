-- The misuse loop for nn, nn.utils, nn.init, optim and gan: wrong types, wrong shapes, missing
-- inputs, non-parameters, unknown options, huge sizes. Every call must raise a Lua error and
-- the process must keep going. Every exported function must have cases.
local T = require("testing")
local check = T.check

local x4 = tensor.randn(2, 3, 4, 4)
local p = tensor.ones(2):requiresGrad(true)
local HUGE = 1e9

local cases = {
  ["nn.Linear"] = { function() return nn.Linear(0, 2) end, function() return nn.Linear("a", 2) end,
    function() return nn.Linear(2) end, function() return nn.Linear(2, 2, { bais = false }) end,
    function() return nn.Linear(HUGE, HUGE) end, function() return nn.Linear(3, 2)(x4) end,
    function() return nn.Linear(3, 2)() end, function() return nn.Linear(3, 2)("x") end },
  ["nn.Conv2d"] = { function() return nn.Conv2d(3, 4, 0) end, function() return nn.Conv2d(3, 4, { 1, 2, 3 }) end,
    function() return nn.Conv2d(3, 4, 3, { stride = 0 }) end, function() return nn.Conv2d(3, 4, 3, { padding = -1 }) end,
    function() return nn.Conv2d(5, 4, 3)(x4) end, function() return nn.Conv2d(3, 4, 9)(x4) end,
    function() return nn.Conv2d(3, 4, 3)(tensor.randn(3, 4)) end, function() return nn.Conv2d(HUGE, HUGE, 3) end,
    function() return nn.Conv2d(3, 4, 3, { outputsUsed = 0 }) end, function() return nn.Conv2d(3, 4, 3, { outputsUsed = 5 }) end,
    function() return nn.Conv2d(3, 4, 3, { outputsUsed = 1.5 }) end, function() return nn.Conv2d(3, 4, 3, { outputsUsed = "3" }) end },
  ["nn.ConvTranspose2d"] = { function() return nn.ConvTranspose2d(3, 4, -1) end,
    function() return nn.ConvTranspose2d(4, 3, 2)(x4) end,
    function() return nn.ConvTranspose2d(3, 4, 3, { outputPadding = 2 })(x4) end },
  ["nn.Embedding"] = { function() return nn.Embedding(0, 3) end, function() return nn.Embedding(5, 3)({ 6 }) end,
    function() return nn.Embedding(5, 3)({ 0 }) end, function() return nn.Embedding(5, 3)(tensor.new { 1.5 }) end,
    function() return nn.Embedding(5, 3)() end },
  ["nn.BatchNorm2d"] = { function() return nn.BatchNorm2d(0) end, function() return nn.BatchNorm2d(3, { eps = -1 }) end,
    function() return nn.BatchNorm2d(4)(x4) end, function() return nn.BatchNorm2d(3)(tensor.randn(2, 3)) end,
    function() return nn.BatchNorm2d(3, { momentun = 0.1 }) end, function() return nn.BatchNorm2d(3, { inPlace = 1 }) end,
    function() local bn = nn.BatchNorm2d(4, { inPlace = true }); bn:eval(); return bn(x4) end },
  ["nn.ConditionalBatchNorm2d"] = { function() return nn.ConditionalBatchNorm2d(3) end,
    function() return nn.ConditionalBatchNorm2d(3, { numClasses = 2, inputSize = 4 }) end,
    function() return nn.ConditionalBatchNorm2d(3, { numClasses = 0 }) end,
    function() return nn.ConditionalBatchNorm2d(3, { numClasses = 4 })(x4) end,
    function() return nn.ConditionalBatchNorm2d(3, { numClasses = 4 })(x4, { 1, 2, 3 }) end,
    function() return nn.ConditionalBatchNorm2d(3, { inputSize = 5 })(x4, tensor.randn(2, 4)) end },
  ["nn.SelfAttention"] = { function() return nn.SelfAttention(12) end, function() return nn.SelfAttention(16)(x4) end,
    function() return nn.SelfAttention(8)(tensor.randn(1, 8, 3, 3)) end, function() return nn.SelfAttention(16, { sn = true }) end },
  ["nn.SpectralNorm"] = { function() return nn.SpectralNorm(nn.Tanh()) end, function() return nn.SpectralNorm("x") end,
    function() return nn.SpectralNorm(nn.Linear(2, 2), { eps = 0 }) end,
    function() return nn.SpectralNorm(nn.Linear(2, 2, { equalized = true })) end,
    function() return nn.SpectralNorm(nn.Linear(2, 2), { dim = 3 }) end },
  ["nn.Identity"] = { function() return nn.Identity()() end },
  ["nn.ReLU"] = { function() return nn.ReLU()("a") end },
  ["nn.LeakyReLU"] = { function() return nn.LeakyReLU("a") end },
  ["nn.Tanh"] = { function() return nn.Tanh()(nil) end },
  ["nn.Sigmoid"] = { function() return nn.Sigmoid()(x4, x4) end },
  ["nn.Upsample"] = { function() return nn.Upsample(0) end, function() return nn.Upsample(2)(tensor.randn(3)) end,
    function() return nn.Upsample(HUGE)(x4) end },
  ["nn.AvgPool2d"] = { function() return nn.AvgPool2d(0) end, function() return nn.AvgPool2d(9)(x4) end },
  ["nn.PixelNorm"] = { function() return nn.PixelNorm({ epsilon = 1 }) end, function() return nn.PixelNorm()(tensor.randn(3)) end },
  ["nn.MinibatchStdDev"] = { function() return nn.MinibatchStdDev(0) end, function() return nn.MinibatchStdDev(4)(tensor.randn(6, 2, 2, 2)) end },
  ["nn.Sequential"] = { function() return nn.Sequential(5) end, function() return nn.Sequential(nn.Linear(2, 3), nn.Linear(2, 3))(tensor.randn(1, 2)) end,
    function() return nn.Sequential():add("x") end, function() return nn.Sequential { nn.Tanh(), 3 } end },
  ["nn.ModuleList"] = { function() return nn.ModuleList { 1 } end, function() return nn.ModuleList()() end,
    function() return nn.ModuleList():add(nil) end },
  ["nn.Module"] = { function() return nn.Module() end, function() return nn.Module:extend() end,
    function() return nn.Module:extend("")() end and function() return nn.Module:extend(5) end },
  ["nn.isModule"] = {},
  ["nn.utils.singularValues"] = { function() return nn.utils.singularValues(tensor.randn(3)) end,
    function() return nn.utils.singularValues(tensor.randn(3, 3), 0) end, function() return nn.utils.singularValues("w") end },
  ["nn.utils.standingStats"] = { function() return nn.utils.standingStats(5, 1, print) end,
    function() return nn.utils.standingStats(nn.BatchNorm2d(2), 1.5, print) end,
    function() return nn.utils.standingStats(nn.BatchNorm2d(2), 1, 7) end },
  ["nn.utils.crossReplicaBN"] = { function() return nn.utils.crossReplicaBN(5, true) end,
    function() return nn.utils.crossReplicaBN(nn.BatchNorm2d(2), "yes") end },
  ["nn.utils.spectralNormEvalPowerStep"] = { function() return nn.utils.spectralNormEvalPowerStep(5, true) end,
    function() return nn.utils.spectralNormEvalPowerStep(nn.Linear(2, 2), "yes") end,
    function() return nn.utils.spectralNormEvalPowerStep(nn.Linear(2, 2)) end },
  ["nn.utils.clampSpectrum"] = { function() return nn.utils.clampSpectrum(tensor.randn(3, 3), -1) end,
    function() return nn.utils.clampSpectrum(tensor.randn(3)) end },
  ["nn.init.orthogonal"] = { function() return nn.init.orthogonal(tensor.zeros(3)) end, function() return nn.init.orthogonal(3) end },
  ["nn.init.normal"] = { function() return nn.init.normal("w") end, function() return nn.init.normal(tensor.zeros(2), "a") end },
  ["nn.init.uniform"] = { function() return nn.init.uniform(tensor.zeros(2), 1, 0) end },
  ["nn.init.xavierUniform"] = { function() return nn.init.xavierUniform(tensor.zeros(3)) end },
  ["nn.init.xavierNormal"] = { function() return nn.init.xavierNormal(tensor.zeros(3)) end },
  ["nn.init.kaimingNormal"] = { function() return nn.init.kaimingNormal(tensor.zeros(2, 2), { mode = "fanMiddle" }) end,
    function() return nn.init.kaimingNormal(tensor.zeros(2, 2), { nonlinearity = "swish" }) end },
  ["nn.init.kaimingUniform"] = { function() return nn.init.kaimingUniform(tensor.zeros(2)) end },
  ["nn.init.zeros"] = { function() return nn.init.zeros({}) end },
  ["nn.init.ones"] = { function() return nn.init.ones(nil) end },
  ["nn.init.constant"] = { function() return nn.init.constant(tensor.zeros(2)) end },
  ["nn.init.calculateGain"] = { function() return nn.init.calculateGain("gelu") end },
  ["optim.Adam"] = { function() return optim.Adam({ tensor.ones(2) }) end, function() return optim.Adam({}) end,
    function() return optim.Adam(5) end, function() return optim.Adam({ p }, { lr = -1 }) end,
    function() return optim.Adam({ { params = { p } }, { lr = 1 } }) end, function() return optim.Adam({ { params = {} } }) end,
    function() return optim.Adam({ p }, { betas = 0.9 }) end, function() return optim.Adam({ p * 2 }) end },
  ["optim.SGD"] = { function() return optim.SGD({ "p" }) end, function() return optim.SGD({ p }, { momentum = -1 }) end,
    function() return optim.SGD({ p, p }) end },
  ["optim.EMA"] = { function() return optim.EMA(p) end, function() return optim.EMA(nn.Linear(1, 1), { decay = 2 }) end,
    function() return optim.EMA(nn.Linear(1, 1)):update(nn.Linear(2, 1)) end,
    function() return optim.EMA(nn.Linear(1, 1)):update("m") end },
  ["gan.hingeD"] = { function() return gan.hingeD("a", "b") end, function() return gan.hingeD(tensor.ones(2), tensor.ones(3) + tensor.ones(2)) end },
  ["gan.hingeG"] = { function() return gan.hingeG(nil) end },
  ["gan.logisticD"] = { function() return gan.logisticD(1) end },
  ["gan.logisticG"] = { function() return gan.logisticG({}) end },
  ["gan.wassersteinD"] = { function() return gan.wassersteinD(nil, tensor.ones(1)) end },
  ["gan.wassersteinG"] = { function() return gan.wassersteinG(true) end },
  ["gan.lsganD"] = { function() return gan.lsganD(tensor.ones(1)) end },
  ["gan.lsganG"] = { function() return gan.lsganG("x") end },
  ["gan.gradientPenalty"] = { function() return gan.gradientPenalty(5, x4, x4) end,
    function() return gan.gradientPenalty(nn.Linear(2, 1), x4, x4) end,
    function() return gan.gradientPenalty(function(x) return x:sum() end, x4, x4, { lamda = 10 }) end,
    function() return gan.gradientPenalty(function(x) return x:detach():sum() end, x4, x4) end },
  ["gan.driftPenalty"] = { function() return gan.driftPenalty("d") end },
  ["gan.r1Penalty"] = { function() return gan.r1Penalty(nil, x4) end, function() return gan.r1Penalty(nn.Tanh(), "x") end,
    function() return gan.r1Penalty(nn.Tanh(), x4, { gama = 1 }) end },
  ["gan.orthoReg"] = { function() return gan.orthoReg("m", 1) end, function() return gan.orthoReg(nn.Linear(2, 2)) end,
    function() return gan.orthoReg(nn.Linear(2, 2), 1, { exclude = 5 }) end },
  ["gan.addOrthoGrad"] = { function() return gan.addOrthoGrad(nn.Linear(2, 2), "b") end, function() return gan.addOrthoGrad({}, 1) end },
  ["gan.diffAugment"] = { function() return gan.diffAugment(nil, "color") end, function() return gan.diffAugment(x4, 5) end,
    function() return gan.diffAugment(x4, "color", { p = -1 }) end, function() return gan.diffAugment(x4, "zoom") end,
    function() return gan.diffAugment(x4, "color", { cutoutRatio = "a" }) end, function() return gan.diffAugment(x4, "color", 7) end },
  ["gan.LeCam"] = { function() return gan.LeCam { decay = -1 } end, function() return gan.LeCam { start = 1.5 } end,
    function() return gan.LeCam(5) end, function() return gan.LeCam():update(1, 2, 3) end,
    function() return gan.LeCam():update(x4, x4, "i") end, function() return gan.LeCam():penalty(nil, x4) end,
    function() return gan.LeCam():load(5) end, function() return gan.LeCam().update(nil) end,
    function() return gan.LeCam():applies(1.5) end, function() return gan.LeCam().applies(3) end },
  ["gan.AdaptiveAugment"] = { function() return gan.AdaptiveAugment { interval = 0 } end,
    function() return gan.AdaptiveAugment { kimg = 0 } end,
    function() return gan.AdaptiveAugment { p = -1 } end, function() return gan.AdaptiveAugment { p = math.huge } end,
    function() return gan.AdaptiveAugment { speed = 1 } end,
    function() return gan.AdaptiveAugment():observe("d") end, function() return gan.AdaptiveAugment():load({}) end },
  ["gan.truncatedNoise"] = { function() return gan.truncatedNoise(2, 3, 0) end, function() return gan.truncatedNoise(-1, 3, 1) end,
    function() return gan.truncatedNoise(1e9, 1e9, 1) end },
}

-- Module methods called with bad arguments (on a real module).
local m = nn.Sequential(nn.Linear(2, 2))
local methodCases = {
  function() return m:loadStateDict(5) end, function() return m:loadStateDict({ ["0.weight"] = "w" }) end,
  function() return m:loadStateDict({}, { strict = "yes" }) end, function() return m:apply(5) end,
  function() return m:train("yes") end, function() return m:requiresGrad("no") end,
  function() return m:registerBuffer(5, tensor.ones(1)) end,
  function() return m:registerParameter("w", tensor.ones(1) * tensor.ones(1):requiresGrad(true)) end,
  function() return m.forward(5) end, function() return nn.Linear(2, 2).parameters("x") end,
  function() return optim.Adam({ p }):setLr("a") end, function() return optim.Adam({ p }):setLr(0.1, 3) end,
  function() return optim.Adam({ p }):getLr(0) end, function() return optim.Adam({ p }):loadStateDict({ state = { [5] = {} } }) end,
  function() return optim.Adam({ p }):loadStateDict({ state = { [1] = { exp_avg = tensor.ones(3) } } }) end,
  function() return optim.Adam({ p }).step(nil) end,
}

local exported = {}
local function collect(prefix, t)
  for k, v in pairs(t) do
    if type(k) == "string" and k:sub(1, 1) ~= "_" then
      if type(v) == "function" or (type(v) == "table" and rawget(v, "__name")) then exported[#exported + 1] = prefix .. k
      elseif type(v) == "table" and (k == "utils" or k == "init") then collect(prefix .. k .. ".", v) end
    end
  end
end
collect("nn.", nn); collect("optim.", optim); collect("gan.", gan)
table.sort(exported)

local calls = T.misuseSweep(exported, cases, methodCases)

T.test("the process kept going", function()
  check(calls > 120, "ran " .. calls .. " calls")
  check(nn.Linear(2, 2)(tensor.ones(1, 2)):numel() == 2 and tensor.isGradEnabled())
end)

print(("misuse_nn: %d bad calls, all raised Lua errors"):format(calls))
T.finish("misuse_nn")
