-- A tiny BigGAN (scripts/lib/models/biggan.lua: 32 px, ch 2, hier z in 4 chunks, shared
-- embedding, G attention at 16, D attention after every block as the 32 px table labels it)
-- against the same architecture in PyTorch (scripts/fixtures/make_fixtures.py, group
-- "biggan"): same weights in, then one D step and one G step as biggan.lua takes them --
-- hinge losses, Adam(0, 0.999), orthogonal regularization on G, the EMA over parameters and
-- buffers -- must give the same outputs, parameters, spectral-norm vectors and BN statistics.
local T = require("testing")
local fixtures = require("fixtures")
local biggan = require("models.biggan")
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
  local bs = 4
  -- (1) D step
  optD:zeroGrad()
  local yD, yReal = labels(f["in.yD"]), labels(f["in.yReal"])
  local fake = tensor.noGrad(function() return G(f["in.zD"], G:embed(yD)) end)
  T.close(fake, f["out.fake"], atol, rtol, "G output")
  local out = D(tensor.cat({ fake, f["in.real"] }, 1), tensor.cat({ yD, yReal }, 1))
  T.close(out, f["out.dOut"], atol, rtol, "D output")
  local lossD = gan.hingeD(out:narrow(1, bs + 1, bs), out:narrow(1, 1, bs))
  T.close(lossD, f["out.lossD"]:view({}), atol, rtol, "D loss")
  lossD:backward()
  compareGrads(D, "Dgrad", "D step")
  optD:step()
  -- (2) G step
  optG:zeroGrad()
  local yG = labels(f["in.yG"])
  local lossG = gan.hingeG(D(G(f["in.zG"], G:embed(yG)), yG))
  T.close(lossG, f["out.lossG"]:view({}), atol, rtol, "G loss")
  lossG:backward()
  gan.addOrthoGrad(G, 1e-4, { exclude = biggan.orthoExclude(G) })
  compareGrads(G, "Ggrad", "G step (with orthogonal regularization)")
  optG:step()
  ema:update(G, 1)
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
