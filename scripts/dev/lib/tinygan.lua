-- tinygan.lua: a small class-conditional GAN on Fashion-MNIST at 16x16, with every part a
-- checkpoint must carry: spectral norm (u, v buffers), conditional batch norm (running
-- statistics), Adam moments, an EMA of G, a data loader's position and the global stream.
-- Used by the checkpoint tests to check that resuming is bit-exact.
local recipe = require("recipes.biggan")

local M = {}

local G = nn.Module:extend("TinyG")
function G:init(nz, ch, classes)
  self.nz, self.ch, self.dimZ, self.numClasses = nz, ch, nz, classes
  self.fc = nn.SpectralNorm(nn.Linear(nz, ch * 16), { eps = 1e-8 })
  self.bn1 = nn.ConditionalBatchNorm2d(ch, { numClasses = classes })
  self.conv1 = nn.SpectralNorm(nn.Conv2d(ch, ch, 3, { padding = 1 }), { eps = 1e-8 })
  self.bn2 = nn.ConditionalBatchNorm2d(ch, { numClasses = classes })
  self.out = nn.SpectralNorm(nn.Conv2d(ch, 1, 3, { padding = 1 }), { eps = 1e-8 })
end
function G:embed(y) return y end         -- the class labels go to the conditional BNs as they are
function G:forward(z, y)
  local h = self.fc(z):view(z:size(1), self.ch, 4, 4)
  h = self.conv1(self.bn1(h, y):relu():upsampleNearest(2))
  return self.out(self.bn2(h, y):relu():upsampleNearest(2)):tanh()
end

local D = nn.Module:extend("TinyD")
function D:init(ch, classes)
  self.conv1 = nn.SpectralNorm(nn.Conv2d(1, ch, 3, { padding = 1 }), { eps = 1e-8 })
  self.conv2 = nn.SpectralNorm(nn.Conv2d(ch, ch, 3, { padding = 1 }), { eps = 1e-8 })
  self.linear = nn.SpectralNorm(nn.Linear(ch, 1), { eps = 1e-8 })
  self.embed = nn.SpectralNorm(nn.Embedding(classes, ch), { eps = 1e-8 })
end
function D:forward(x, y)
  local h = self.conv1(x):relu():avgPool2d(2)
  h = self.conv2(h):relu():sum({ 3, 4 })
  return self.linear(h) + (self.embed(y) * h):sum(2, true)
end

--- A run: models, optimizers, EMA and loader, built from `seed`.
function M.build(seed)
  tensor.manualSeed(seed)
  local run = { G = G(16, 8, 10), D = D(8, 10) }
  run.optG = optim.Adam(run.G:parameters(), { lr = 2e-4, betas = { 0, 0.999 } })
  run.optD = optim.Adam(run.D:parameters(), { lr = 2e-4, betas = { 0, 0.999 } })
  run.ema = optim.EMA(run.G, { decay = 0.9, startIter = 5 })
  run.loader = data.Loader(data.fashionMNIST { split = "test" }, { batchSize = 16, seed = 11,
    transform = { data.pad(2), data.downscale(2), data.scale(-1, 1), data.randomFlip() } })
  run.iter = 0
  return run
end

--- `iters` more iterations of BigGAN's recipe (scripts/lib/recipes/biggan.lua): (1) update D
-- (hinge + R1), (2) update G (hinge + orthogonal regularization), EMA.
function M.train(run, iters)
  run.step = run.step or recipe.Step { G = run.G, D = run.D, optG = run.optG, optD = run.optD, ema = run.ema, batch = 16,
    numClasses = 10, opt = { numDSteps = 1, DR1Gamma = 1 }, draw = { reals = function() return run.loader:next() end } }
  for _ = 1, iters do
    run.iter = run.iter + 1
    run.step:updateD(run.iter)
    run.step:updateG(run.iter)
  end
end

--- Everything a checkpoint must reproduce, as a flat name -> tensor map.
function M.fingerprint(run)
  local out = {}
  for k, v in pairs(run.G:stateDict()) do out["G." .. k] = v end
  for k, v in pairs(run.D:stateDict()) do out["D." .. k] = v end
  for k, v in pairs(run.ema.model:stateDict()) do out["ema." .. k] = v end
  for _, o in ipairs { "optG", "optD" } do
    for i, st in pairs(run[o]:stateDict().state) do
      out[("%s.%d.exp_avg"):format(o, i)] = st.exp_avg
      out[("%s.%d.exp_avg_sq"):format(o, i)] = st.exp_avg_sq
    end
  end
  out.nextNoise = tensor.randn(4)  -- the generator stream continues identically
  return out
end

return M
