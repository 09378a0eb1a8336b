-- pggan_equivalence.lua: PGGAN's recipe (scripts/lib/recipes/pggan.lua, as scripts/pggan.lua
-- trains it) in float64 across a fade and level changes, writing what the PyTorch twin of the
-- official code needs to take the same path: the initial weights, every iteration's reals,
-- latents and penalty weights, the level of detail, and the state every `every` iterations.
-- scripts/dev/bench/pggan_equivalence.py then trains the twin (scripts/dev/bench/torch/pggan_twin.py,
-- at full resolution as tkarras/progressive_growing_of_gans computes it) from the same weights
-- on the same inputs and compares every parameter, Gs entry and Adam moment. Run by hand:
--
--   luagan scripts/dev/bench/pggan_equivalence.lua [--iters=200] [--every=10] [--out=runs/pggan-equivalence]
--   python scripts/dev/bench/pggan_equivalence.py runs/pggan-equivalence
package.path = package.path .. ";scripts/lib/?.lua"
local options = require("options")
local pggan = require("models.pggan")
local recipe = require("recipes.pggan")

local opt = options.cli(arg, {
  { "iters", 200, "iterations (one D step and one G step each)", min = 1 },
  { "every", 10, "iterations between saved states", min = 1 },
  { "kimg", 0.4, "thousands of images to stabilise and to fade each level (0.4 at batch 8: 50 iterations)" },
  { "batch", 8, "minibatch" },
  { "seed", 1, "random seed" },
  { "out", "runs/pggan-equivalence", "folder for the exchanged files" },
}, "PGGAN's recipe in float64, with its inputs and states saved for the comparison with the official code's twin.")
paths.mkdir(opt.out)
tensor.manualSeed(opt.seed)

-- A small PGGAN at 32x32, 1 channel (Fashion-MNIST's), every part on: equalized LR, pixelnorm,
-- minibatch stddev (group 4), WGAN-GP with drift, Adam with TensorFlow's epsilon, Gs.
local cfg = { resolution = 32, latent = 16, fmapBase = 128, fmapMax = 16, mbstdGroup = 4, batchSize = opt.batch,
              trainKimg = opt.kimg, transKimg = opt.kimg, lr = 1e-3, gpLambda = 10, gpTarget = 1, drift = 0.001,
              GsBeta = 0.999, schedulePeriod = 4 }
local G, D = pggan.fromOptions(cfg, 1)
G:double(); D:double()
local function adam(m) return optim.Adam(m:parameters(), { lr = cfg.lr, betas = { 0, 0.99 }, eps = 1e-8, epsilonHat = true }) end
local optG, optD = adam(G), adam(D)
local Gs = optim.EMA(G, { decay = cfg.GsBeta })
local loader = data.Loader(data.fashionMNIST { split = "train" }, { batchSize = opt.batch, seed = opt.seed, dropLast = true,
  transform = { data.pad(2), data.scale(-1, 1) } })

local function snapshot(path, extra)
  local t = {}
  for k, v in pairs(G:stateDict()) do t["G." .. k] = v end
  for k, v in pairs(D:stateDict()) do t["D." .. k] = v end
  for k, v in pairs(Gs.model:stateDict()) do t["Gs." .. k] = v end
  for _, o in ipairs { { "optG", optG, G }, { "optD", optD, D } } do
    local params = {}
    for name in o[3]:namedParameters() do params[#params + 1] = name end
    for i, st in pairs(o[2]:stateDict().state) do      -- Adam's moments, by parameter name
      t[("%s.%s.exp_avg"):format(o[1], params[i])] = st.exp_avg
      t[("%s.%s.exp_avg_sq"):format(o[1], params[i])] = st.exp_avg_sq
    end
  end
  for k, v in pairs(extra or {}) do t[k] = v end
  tensor.save(path, t)
end
snapshot(opt.out .. "/state-0000.safetensors")

-- The recipe itself, with every input it draws recorded: the reals at full resolution, the D
-- and G steps' latents, the penalty's interpolation weights.
local f64 = { dtype = "float64" }
local inputs, draws = {}, 0
local step = recipe.Step { G = G, D = D, optG = optG, optD = optD, Gs = Gs, opt = cfg,
  draw = {
    reals = function() local x = (loader:next()):double(); inputs.real = x; return x end,
    noise = function(n)
      draws = draws + 1
      local z = tensor.randn(n, cfg.latent, f64)
      inputs[draws == 1 and "zD" or "zG"] = z
      return z
    end,
    uniform = function(n) local u = tensor.rand(n, 1, 1, 1, f64); inputs.u = u; return u end,
  } }
local levels = {}
for iter = 1, opt.iters do
  inputs, draws = {}, 0
  step:advance(iter)
  local s = step.state
  inputs.lod = tensor.new({ s.lod }, f64)
  local lossD = step:updateD(iter)      -- (1) update D (WGAN-GP + drift), then Gs
  local lossG = step:updateG(iter)      -- (2) update G
  tensor.save(("%s/inputs-%04d.safetensors"):format(opt.out, iter), inputs)
  levels[#levels + 1] = s.lod
  if iter % opt.every == 0 then
    snapshot(("%s/state-%04d.safetensors"):format(opt.out, iter), { lossD = lossD:detach():reshape(1), lossG = lossG:detach():reshape(1) })
  end
end
local f = assert(io.open(opt.out .. "/run.json", "w"))
f:write(json.encode({ iters = opt.iters, every = opt.every, config = cfg, lods = levels }), "\n")
f:close()
print(("wrote %d iterations to %s (lod %.2f -> %.2f)"):format(opt.iters, opt.out, levels[1], levels[#levels]))
