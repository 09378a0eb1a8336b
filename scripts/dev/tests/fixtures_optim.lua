-- Adam and SGD trajectories and state against torch.optim over 5 steps, and the EMA of a
-- module's parameters and buffers against BigGAN's utils.ema. Fixtures: group "optim".
local T = require("testing")
local fixtures = require("fixtures")
local f = fixtures.load("optim")

-- Optimizer states are updated in place over several steps: compare with a slightly wider
-- absolute tolerance than a single op (still a fixed constant).
local atol, rtol = 2e-6, 1e-5

local configs = {
  adam_default = function(p) return optim.Adam({ p }, { lr = 1e-3 }) end,
  adam_biggan = function(p) return optim.Adam({ p }, { lr = 2e-4, betas = { 0, 0.999 }, eps = 1e-8 }) end,
  adam_pggan_wd = function(p) return optim.Adam({ p }, { lr = 1e-3, betas = { 0, 0.99 }, eps = 1e-8, weightDecay = 0.01 }) end,
  sgd_plain = function(p) return optim.SGD({ p }, { lr = 0.1 }) end,
  sgd_momentum = function(p) return optim.SGD({ p }, { lr = 0.05, momentum = 0.9, dampening = 0.1, weightDecay = 0.01 }) end,
  sgd_nesterov = function(p) return optim.SGD({ p }, { lr = 0.05, momentum = 0.9, nesterov = true }) end,
}

for name, make in pairs(configs) do
  T.test("trajectory " .. name, function()
    local p = f.p0:clone():requiresGrad(true)
    local opt = make(p)
    for i = 1, 5 do
      p.grad = f["grad" .. i]:clone()
      opt:step()
      T.close(p, f[name .. ".step" .. i], atol, rtol, name .. " step " .. i)
    end
    local st = opt:stateDict().state[1]
    for k, v in pairs(fixtures.prefixed(f, name .. ".state")) do
      T.close(st[k], v, atol, rtol, name .. " state " .. k)
    end
    if name:match("^adam") then T.check(st.step == 5, "step count") end
  end)
end

T.test("EMA of parameters and buffers", function()
  local model = nn.Sequential(nn.Conv2d(2, 3, 1), nn.BatchNorm2d(3))
  model:loadStateDict(fixtures.prefixed(f, "ema.init"))
  local ema = optim.EMA(model, { decay = 0.9, startIter = 2 })
  for it = 1, 4 do
    model:loadStateDict(fixtures.prefixed(f, "ema.source" .. it))
    ema:update(model, it)
    local expected = fixtures.prefixed(f, "ema.after" .. it)
    for k, v in pairs(ema.model:stateDict()) do
      T.close(v, expected[k], 1e-6, 1e-6, ("EMA after update %d: %s"):format(it, k))
    end
  end
end)

T.finish("fixtures_optim")
