-- demo_equivalence.lua: the main job's recipe (scripts/configs/demo.lua, as scripts/biggan.lua
-- trains it) in float64 for many iterations, writing what PyTorch needs to take the same path:
-- the initial weights, every step's reals, labels and noise, and the state every `every`
-- iterations. scripts/dev/bench/demo_equivalence.py then trains the PyTorch twin from the same
-- weights on the same inputs and compares every parameter and buffer along the way. Run by
-- hand (PyTorch is never needed by CI):
--
--   luagan scripts/dev/bench/demo_equivalence.lua [--iters=200] [--every=10] [--out=runs/equivalence]
--   .venv-torch/bin/python scripts/dev/bench/demo_equivalence.py runs/equivalence
package.path = package.path .. ";scripts/lib/?.lua"
local options = require("options")
local biggan = require("models.biggan")
local recipe = require("recipes.biggan")

local opt = options.cli(arg, {
  { "iters", 200, "iterations (demo.lua's numDSteps D steps and one G step each)", min = 1 },
  { "every", 10, "iterations between saved states", min = 1 },
  { "emaStart", 100, "the EMA copies G before this iteration (so the run checks both regimes)" },
  { "seed", 1, "random seed" },
  { "out", "runs/equivalence", "folder for the exchanged files" },
}, "The demo recipe in float64, with its inputs and states saved for the PyTorch comparison.")
local here = debug.getinfo(1, "S").source:match("^@(.*/)") or "./"   -- runs from any folder
local demo = dofile(here .. "../../configs/demo.lua")
paths.mkdir(opt.out)
tensor.manualSeed(opt.seed)

-- The demo's models (biggan.lua's defaults for what demo.lua does not set), in float64.
local G, D = biggan.fromOptions({ resolution = 32, ch = demo.ch, dimZ = 128, sharedDim = 128, shared = true, hier = true,
  GAttn = "0", DAttn = "0", snEps = 1e-8, bnEps = 1e-5, init = "N02" }, 1, 10)
G:double(); D:double()
local optG = optim.Adam(G:parameters(), { lr = demo.GLr, betas = { 0, 0.999 }, eps = 1e-8 })
local optD = optim.Adam(D:parameters(), { lr = demo.DLr, betas = { 0, 0.999 }, eps = 1e-8 })
local ema = optim.EMA(G, { decay = demo.emaDecay, startIter = opt.emaStart })
local loader = data.Loader(data.fashionMNIST { split = "train" }, { batchSize = demo.batchSize, seed = opt.seed, dropLast = true,
  transform = { data.pad(2), data.scale(-1, 1) } })
local B, dSteps = demo.batchSize, demo.numDSteps

local function snapshot(path, extra)
  local t = {}
  for k, v in pairs(G:stateDict()) do t["G." .. k] = v end
  for k, v in pairs(D:stateDict()) do t["D." .. k] = v end
  for k, v in pairs(ema.model:stateDict()) do t["Gema." .. k] = v end
  for k, v in pairs(extra or {}) do t[k] = v end
  tensor.save(path, t)
end
snapshot(opt.out .. "/state-0000.safetensors")

-- The demo's step itself (scripts/lib/recipes/biggan.lua), with every input it draws recorded:
-- the k-th D step's as real<k>, realY<k>, z<k>, fakeY<k>, the G step's as zG, fakeYG.
local f64 = { dtype = "float64" }
local inputs, phase, k = {}, "D", 0
local function name(base) return phase == "G" and base .. "G" or base .. k end
local step = recipe.Step { G = G, D = D, optG = optG, optD = optD, ema = ema, batch = B, opt = demo,
  draw = {
    reals = function()
      k = k + 1
      local real, realY = loader:next()
      real = real:double()
      inputs["real" .. k], inputs["realY" .. k] = real, realY
      return real, realY
    end,
    noise = function(n) local z = tensor.randn(n, 128, f64); inputs[name("z")] = z; return z end,
    labels = function(n) local y = tensor.randint(1, 10, n); inputs[name("fakeY")] = y; return y end,
  } }
for iter = 1, opt.iters do
  inputs, phase, k = {}, "D", 0
  local lossD = step:updateD(iter)      -- (1) update D: numDSteps steps
  phase = "G"
  local lossG = step:updateG(iter)      -- (2) update G, orthogonal regularization, EMA
  tensor.save(("%s/inputs-%04d.safetensors"):format(opt.out, iter), inputs)
  if iter % opt.every == 0 then
    snapshot(("%s/state-%04d.safetensors"):format(opt.out, iter), { lossD = lossD:detach():reshape(1), lossG = lossG:detach():reshape(1) })
  end
end
local f = io.open(opt.out .. "/run.json", "w")
f:write(json.encode({ iters = opt.iters, every = opt.every, emaStart = opt.emaStart, emaDecay = demo.emaDecay, lrG = demo.GLr,
  lrD = demo.DLr, batchSize = B, ch = demo.ch, numDSteps = dSteps }), "\n")
f:close()
print(("wrote %d iterations to %s"):format(opt.iters, opt.out))
