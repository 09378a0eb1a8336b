-- A tiny BigGAN (scripts/lib/models/biggan.lua: 32 px, ch 2, hier z in 4 chunks, shared
-- embedding, G attention at 16, D attention after every block as the 32 px table labels it)
-- against the same architecture in PyTorch (scripts/dev/fixtures/make_fixtures.py, group
-- "biggan"): same weights in, then one D step and one G step as biggan.lua takes them --
-- hinge losses, Adam(0, 0.999), orthogonal regularization on G, the EMA over parameters and
-- buffers -- must give the same outputs, parameters, spectral-norm vectors and BN statistics.
local T = require("testing")
local fixtures = require("fixtures")
local biggan = require("models.biggan")
local recipe = require("recipes.biggan")
local f = fixtures.load("biggan")

local atol, rtol = 1e-5, 1e-4   -- forward values and parameters after one step (float32)

local function build()
  local G = biggan.Generator { resolution = 32, ch = 2, dimZ = 16, sharedDim = 8, numClasses = 3, attention = "16", outChannels = 1 }
  local D = biggan.Discriminator { resolution = 32, ch = 2, numClasses = 3, attention = "16", inChannels = 1 }
  G:loadStateDict(fixtures.prefixed(f, "G0"))
  D:loadStateDict(fixtures.prefixed(f, "D0"))
  return G, D
end

-- Biases that feed a BatchNorm in training mode (G's conv biases) have a zero gradient up to
-- rounding, and Adam's first step (β1 = 0) is lr·g/(|g| + eps), about ±lr whatever the size of
-- g: for such noise the sign is arbitrary, in PyTorch as here. So an element whose gradient is
-- within the gradient tolerance of 0 is only checked to have moved at most lr; every other
-- element must match.
local lr = 2e-4
local function compareState(module, prefix, what, gradPrefix, start)
  local expected = fixtures.prefixed(f, prefix)
  local grads = gradPrefix and fixtures.prefixed(f, gradPrefix) or {}
  local n = 0
  for name, t in pairs(module:stateDict()) do
    local e = expected[name]
    T.check(e ~= nil, ("%s: no expected entry %s"):format(what, name))
    local g = grads[name]
    if g then
      local determined = g:abs():gt(fixtures.backward.atol)
      T.close(tensor.where(determined, t, e), e, atol, rtol, ("%s %s"):format(what, name))
      T.close(tensor.where(determined, start[name], t), start[name], lr * 1.001, 0, ("%s %s (zero gradient)"):format(what, name))
    else
      T.close(t, e, atol, rtol, ("%s %s"):format(what, name))
    end
    n = n + 1
  end
  return n
end

local function compareGrads(module, prefix, what)
  local expected = fixtures.prefixed(f, prefix)
  for name, p in module:namedParameters() do
    T.close(p.grad, expected[name], fixtures.backward.atol, fixtures.backward.rtol, ("%s gradient of %s"):format(what, name))
  end
end

T.test("one D step and one G step match PyTorch", function()
  local G, D = build()
  local optG = optim.Adam(G:parameters(), { lr = 2e-4, betas = { 0, 0.999 }, eps = 1e-8 })
  local optD = optim.Adam(D:parameters(), { lr = 2e-4, betas = { 0, 0.999 }, eps = 1e-8 })
  local ema = optim.EMA(G, { decay = 0.9, startIter = 0 })
  local labels = function(t) return t + 1 end           -- the fixture's classes are 0-based
  local yD, yReal, yG = labels(f["in.yD"]), labels(f["in.yReal"]), labels(f["in.yG"])
  -- the recipe biggan.lua runs (scripts/lib/recipes/biggan.lua), one D step, on the fixture's inputs
  local phase = "D"
  local expected = {
    fake = function(v) T.close(v, f["out.fake"], atol, rtol, "G output") end,
    dOut = function(v) T.close(v, f["out.dOut"], atol, rtol, "D output") end,
    lossD = function(v) T.close(v, f["out.lossD"]:view({}), atol, rtol, "D loss") end,
    gradsD = function() compareGrads(D, "Dgrad", "D step") end,
    lossG = function(v) T.close(v, f["out.lossG"]:view({}), atol, rtol, "G loss") end,
    gradsG = function() compareGrads(G, "Ggrad", "G step (with orthogonal regularization)") end,
  }
  local seen = {}
  local step = recipe.Step { G = G, D = D, optG = optG, optD = optD, ema = ema, batch = 4, opt = { numDSteps = 1 },
    draw = {
      reals = function() return f["in.real"], yReal end,
      noise = function() return phase == "D" and f["in.zD"] or f["in.zG"] end,
      labels = function() return phase == "D" and yD or yG end,
    },
    observe = function(what, v) seen[what] = true; expected[what](v) end }
  step:updateD(1)                                         -- (1) D step
  phase = "G"
  step:updateG(1)                                         -- (2) G step and the EMA
  for what in pairs(expected) do T.check(seen[what], "the step reported " .. what) end
  local G0, D0 = fixtures.prefixed(f, "G0"), fixtures.prefixed(f, "D0")
  local emaStart = {}
  for k, v in pairs(G0) do emaStart[k] = v * 0.9 + f["G1." .. k] * 0.1 end
  local n = compareState(G, "G1", "G after both steps", "Ggrad", G0) + compareState(D, "D1", "D after both steps", "Dgrad", D0)
    + compareState(ema.model, "Gema1", "EMA of G", "Ggrad", emaStart)
  -- eval mode reads the running statistics and the stored spectral-norm vectors (from
  -- PyTorch's state, since the zero-gradient biases above may differ by up to lr)
  G:loadStateDict(fixtures.prefixed(f, "G1"))
  G:eval()
  T.close(tensor.noGrad(function() return G(f["in.zG"], G:embed(yG)) end), f["out.evalSample"], atol, rtol, "G in eval mode")
  print(("fixtures_biggan: %d state tensors match after one D and one G step"):format(n))
end)

T.finish("fixtures_biggan")
