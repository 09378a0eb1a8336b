-- GAN losses (values and gradients, including logits of ±300), WGAN-GP and R1 through a tiny
-- D with gradients for D's parameters by double backprop, and orthogonal regularization in
-- both forms. Fixtures: group "gan".
local T = require("testing")
local fixtures = require("fixtures")
local f = fixtures.load("gan")

fixtures.check(f, {
  hinge_d = function(a, b) return (gan.hingeD(a, b)) end,
  hinge_g = function(b) return gan.hingeG(b) end,
  logistic_d = function(a, b) return (gan.logisticD(a, b)) end,
  logistic_d_extreme = function(a, b) return (gan.logisticD(a, b)) end,
  logistic_g = function(b) return gan.logisticG(b) end,
  logistic_g_extreme = function(b) return gan.logisticG(b) end,
  wasserstein_d = function(a, b) return gan.wassersteinD(a, b) end,
  wasserstein_g = function(b) return gan.wassersteinG(b) end,
  lsgan_d = function(a, b) return (gan.lsganD(a, b)) end,
  lsgan_g = function(b) return gan.lsganG(b) end,
  drift = function(a) return gan.driftPenalty(a, 0.001) end,
})

local TinyD = nn.Module:extend("TinyD")
function TinyD:init()
  self.conv = nn.Conv2d(2, 3, 3, { padding = 1 })
  self.fc = nn.Linear(3 * 4 * 4, 1)
end
function TinyD:forward(x) return self.fc(self.conv(x):leakyRelu(0.2):flatten(2)) end

local penalties = {
  wgan_gp = function(D) return gan.gradientPenalty(D, f["penalty.real"], f["penalty.fake"], { u = f["penalty.u"] }) end,
  wgan_gp_scaled = function(D)
    return gan.gradientPenalty(D, f["penalty.real"], f["penalty.fake"], { u = f["penalty.u"], target = 2, gradScale = 0.5 })
  end,
  r1 = function(D) return gan.r1Penalty(D, f["penalty.real"], { gamma = 10 }) end,
}
for name, penalty in pairs(penalties) do
  T.test("penalty " .. name .. " and its gradient for D's parameters", function()
    local D = TinyD()
    D:loadStateDict(fixtures.prefixed(f, name .. ".state"))
    local value = penalty(D)
    T.close(value, f[name .. ".value"][1], 1e-5, 1e-4, name .. " value")
    D:zeroGrad()
    value:backward()
    local grads = fixtures.prefixed(f, name .. ".grad")
    for pname, p in D:namedParameters() do
      T.close(p.grad or tensor.zeros(p:shape()), grads[pname], 1e-5, 1e-3, name .. " gradient of " .. pname)
    end
  end)
end

local Net = nn.Module:extend("OrthoNet")
function Net:init()
  self.conv = nn.Conv2d(3, 6, 3)
  self.lin = nn.Linear(4, 20)
  self.shared = nn.Embedding(5, 7)
end

local function orthoNet()
  local m = Net()
  local st = {}
  for k, v in pairs(fixtures.prefixed(f, "ortho.state")) do st[k] = v end
  m:loadStateDict(st)
  return m
end

T.test("orthoReg (the paper's form) and its gradient", function()
  local m = orthoNet()
  local loss = gan.orthoReg(m, 0.01, { exclude = m.shared })
  T.close(loss, f["ortho.value"][1], 1e-6, 1e-5, "value")
  loss:backward()
  T.close(m.conv.weight.grad, f["ortho.grad.conv.weight"], 1e-6, 1e-4, "conv gradient")
  T.close(m.lin.weight.grad, f["ortho.grad.lin.weight"], 1e-6, 1e-4, "tall linear gradient")
  T.check(m.shared.weight.grad == nil, "excluded weights get no gradient")
  T.check(m.conv.bias.grad == nil, "biases (1-D) are skipped")
end)

T.test("addOrthoGrad matches BigGAN-PyTorch's utils.ortho, half of orthoReg's gradient", function()
  local m = orthoNet()
  gan.addOrthoGrad(m, 0.01, { exclude = { m.shared.weight } })
  T.close(m.conv.weight.grad, f["ortho.biggan.conv.weight"], 1e-7, 1e-4, "conv")
  T.close(m.lin.weight.grad, f["ortho.biggan.lin.weight"], 1e-7, 1e-4, "linear (W(WᵀW) form)")
  T.close(m.conv.weight.grad * 2, f["ortho.grad.conv.weight"], 1e-6, 1e-4, "the factor of 1/2")
  T.check(m.shared.weight.grad == nil)
end)

T.finish("fixtures_gan")
