-- 5 BigGAN steps in float64 with cross-replica BatchNorm in G, run as one process or under
-- mpirun: every rank draws the same global batch (reals, noise, labels) and trains on its share
-- (dist.shard), gradients averaged over ranks while backward runs (dist.GradientAverager). Writes every parameter, buffer, EMA tensor and
-- Adam moment to <out>-rank<r>.safetensors. Tests/RuntimeTests/DistributedTests compares one
-- process with batch B against 2 ranks with B/2 each.
--   [mpirun -n 2] luagan scripts/dev/tests/dist/biggan_steps.lua OUT
local biggan = require("models.biggan")
local training = require("training")
local recipe = require("recipes.biggan")
local out = assert(arg[1], "usage: biggan_steps.lua OUT")
local B, steps, classes = 8, 5, 4
local f64 = { dtype = "float64" }
tensor.manualSeed(5)
local G = biggan.Generator { resolution = 32, ch = 2, dimZ = 16, sharedDim = 8, numClasses = classes, outChannels = 1 }:double()
local D = biggan.Discriminator { resolution = 32, ch = 2, numClasses = classes, inChannels = 1 }:double()
local norms = nn.utils.crossReplicaBN(G, true)
assert(norms == 7, "G's BatchNorms: " .. norms)
dist.broadcastModules({ G, D })
-- Adam's eps 1e-6 as BigGAN's ImageNet runs (launch_BigGAN_bs256x8.sh): the conv biases that feed
-- a BatchNorm have a zero gradient up to rounding, and Adam turns that noise into steps of
-- lr·g/eps, which differ with the summation order (with eps 1e-8: ~4e-10 after 5 steps).
local optG = optim.Adam(G:parameters(), { lr = 1e-3, betas = { 0, 0.999 }, eps = 1e-6 })
local optD = optim.Adam(D:parameters(), { lr = 4e-3, betas = { 0, 0.999 }, eps = 1e-6 })
local ema = optim.EMA(G, { decay = 0.9, startIter = 0 })
-- Gradients averaged while backward runs, in buckets of 4 KB (a few parameters each), so
-- that most start before backward ends (checked below).
training.bucketMB = 1 / 256
local share = dist.shard(B)
local function mine(t) return t:indexSelect(1, share) end

-- BigGAN's step as biggan.lua takes it (scripts/lib/recipes/biggan.lua), one D step, on this
-- rank's share of a global batch drawn the same on every rank
local batch = {}
local step = recipe.Step { G = G, D = D, optG = optG, optD = optD, ema = ema, batch = #share, opt = { numDSteps = 1 },
  draw = {
    reals = function() return mine(batch.real), mine(batch.realY) end,
    noise = function() return mine(batch.phase == "D" and batch.z or batch.z2) end,
    labels = function() return mine(batch.phase == "D" and batch.fakeY or batch.fakeY2) end,
  } }
for iter = 1, steps do
  tensor.manualSeed(1000 + iter)           -- the global batch, the same on every rank
  batch.real, batch.realY = tensor.rand(B, 1, 32, 32, f64) * 2 - 1, tensor.randint(1, classes, B)
  batch.z, batch.fakeY = tensor.randn(B, 16, f64), tensor.randint(1, classes, B)
  batch.z2, batch.fakeY2 = tensor.randn(B, 16, f64), tensor.randint(1, classes, B)
  G:train(); D:train()
  batch.phase = "D"
  step:updateD(iter)      -- (1) update D on this rank's share, gradients averaged over ranks
  batch.phase = "G"
  step:updateG(iter)      -- (2) update G
end
local averageD, averageG = training.averager(D), training.averager(G)
dist.checkReplicas({ G, D, ema.model }, "BigGAN")
if dist.size() > 1 then
  -- every bucket but the one holding the first layers starts before backward ends
  print(("overlapped buckets: D %d, G %d (%s, %s)"):format(averageD:overlapped(), averageG:overlapped(), averageD, averageG))
  assert(averageD:overlapped() >= 5 and averageG:overlapped() >= 5, "the all-reduces did not overlap backward")
end

local saveState = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "state.lua")
local state = saveState(out, { G = G, D = D, EMA = ema.model }, { optG = optG, optD = optD })
local count = 0
for _ in pairs(state) do count = count + 1 end
print(("rank %d of %d: %d tensors"):format(dist.rank(), dist.size(), count))
