-- 5 PGGAN steps in float64 during the 16 -> 32 fade-in, WGAN-GP (lambda 10) + drift, run as
-- one process or under mpirun: every rank draws the same global batch (reals, latents, the
-- penalty's interpolation weights) and trains on its share (dist.shard: every size-th sample,
-- so a rank's minibatch-stddev group is a group of the whole batch), gradients averaged over
-- ranks. Writes <out>-rank<r>.safetensors as biggan_steps.lua.
--   [mpirun -n 2] luagan scripts/dev/tests/dist/pggan_steps.lua OUT
local pggan = require("models.pggan")
local recipe = require("recipes.pggan")
local out = assert(arg[1], "usage: pggan_steps.lua OUT")
local B, steps, level, t = 8, 5, 4, 0.5
local f64 = { dtype = "float64" }
tensor.manualSeed(7)
local sizes = { resolution = 32, channels = 3, latent = 16, fmapBase = 64, fmapMax = 8, mbstdGroup = 4 }
local G, D = pggan.Generator(sizes):double(), pggan.Discriminator(sizes):double()
dist.broadcastModules({ G, D })
local Gs = optim.EMA(G, { decay = 0.999 })
local optG = optim.Adam(G:parameters(), { lr = 1e-3, betas = { 0, 0.99 }, eps = 1e-8 })
local optD = optim.Adam(D:parameters(), { lr = 1e-3, betas = { 0, 0.99 }, eps = 1e-8 })
local share = dist.shard(B)
local function mine(x) return x:indexSelect(1, share) end

-- PGGAN's step as pggan.lua takes it (scripts/lib/recipes/pggan.lua), held at lod 0.5, on this
-- rank's share of a global batch drawn the same on every rank
local batch = {}
local step = recipe.Step { G = G, D = D, optG = optG, optD = optD, Gs = Gs, opt = { batchSize = B, resolution = 32 },
  schedule = function() return 1 - t end, share = function() return #share end,
  draw = {
    reals = function() return mine(batch.real) end,
    noise = function() batch.draws = batch.draws + 1; return mine(batch.draws == 1 and batch.z or batch.z2) end,
    uniform = function() return mine(batch.u) end,
  } }
for iter = 1, steps do
  tensor.manualSeed(2000 + iter)           -- the global batch, the same on every rank
  batch.real = tensor.rand(B, 3, 32, 32, f64) * 2 - 1
  batch.z, batch.z2, batch.u = tensor.randn(B, 16, f64), tensor.randn(B, 16, f64), tensor.rand(B, 1, 1, 1, f64)
  batch.draws = 0
  step:advance(iter)
  step:updateD(iter)      -- (1) update D: WGAN-GP with drift on this rank's share, then Gs
  step:updateG(iter)      -- (2) update G
end
dist.checkReplicas({ G, D, Gs.model }, "PGGAN")

local saveState = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "state.lua")
local state = saveState(out, { G = G, D = D, Gs = Gs.model }, { optG = optG, optD = optD })
