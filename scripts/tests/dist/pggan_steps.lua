-- 5 PGGAN steps in float64 during the 16 -> 32 fade-in, WGAN-GP (lambda 10) + drift, run as
-- one process or under mpirun: every rank draws the same global batch (reals, latents, the
-- penalty's interpolation weights) and trains on its share (dist.shard: every size-th sample,
-- so a rank's minibatch-stddev group is a group of the whole batch), gradients averaged over
-- ranks. Writes <out>-rank<r>.safetensors as biggan_steps.lua.
--   [mpirun -n 2] luagan scripts/tests/dist/pggan_steps.lua OUT
local pggan = require("models.pggan")
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

for step = 1, steps do
  tensor.manualSeed(2000 + step)           -- the global batch, the same on every rank
  local real = pggan.realsAt(tensor.rand(B, 3, 32, 32, f64) * 2 - 1, level, t, 32)
  local z, z2, u = tensor.randn(B, 16, f64), tensor.randn(B, 16, f64), tensor.rand(B, 1, 1, 1, f64)
  -- (1) update D: WGAN-GP with drift on this rank's share
  local fake = tensor.noGrad(function() return G(mine(z), level, t) end)
  optD:zeroGrad()
  local dReal, dFake = D(mine(real), level, t), D(fake, level, t)
  local lossD = gan.wassersteinD(dReal, dFake) + gan.driftPenalty(dReal, 0.001)
  lossD:backward()
  gan.gradientPenalty(D, mine(real), fake, { lambda = 10, target = 1, u = mine(u) }, level, t):backward()
  dist.averageGradients(D:parameters())
  optD:step()
  -- (2) update G
  optG:zeroGrad()
  D:requiresGrad(false)
  gan.wassersteinG(D(G(mine(z2), level, t), level, t)):backward()
  D:requiresGrad(true)
  dist.averageGradients(G:parameters())
  optG:step()
  Gs:update(G, step)
end
dist.checkReplicas({ G, D, Gs.model }, "PGGAN")

local saveState = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "state.lua")
local state = saveState(out, { G = G, D = D, Gs = Gs.model }, { optG = optG, optD = optD })
