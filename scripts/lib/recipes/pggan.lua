-- recipes/pggan.lua: PGGAN's training step, written once (Karras et al. 2018, as
-- tkarras/progressive_growing_of_gans's train.py and loss.py take it): the level of detail
-- read from the schedule every schedulePeriod minibatches, Adam reset whenever floor(lod) or
-- ceil(lod) changes, the minibatch and learning rates of the current resolution; then one D
-- step (WGAN-GP with drift, or PGGAN's LSGAN) on reals blended with the same fade as G and D,
-- Gs updated from G, and one G step with D frozen. scripts/pggan.lua's loop, make bench's
-- pggan32, the two-rank test and the float64 comparison with the PyTorch twin call this.
--
--   local step = recipes.pggan.Step { G = G, D = D, optG = optG, optD = optD, Gs = Gs, opt = opt,
--                                     draw = draw, schedule = function(state) return lod end }
--   step:advance(iter)                      -- the schedule, at its period
--   local lossD, dOut = step:updateD(iter)  -- (1)
--   local lossG = step:updateG(iter)        -- (2)
local training = require("training")
local pggan = require("models.pggan")

local M = {}

--- The options the step reads, with the paper's values (a script's options override them).
M.defaults = { batchSize = 16, minibatchDict = {}, lr = 1e-3, GLrDict = {}, DLrDict = {}, loss = "wgangp", gpLambda = 10,
               gpTarget = 1, drift = 0.001, schedulePeriod = 4, resolution = 32, trainKimg = 800, transKimg = 800 }

local Step = {}
Step.__index = Step

--- The minibatch at a resolution (minibatch_dict, else batchSize): global, under mpirun too.
function M.minibatchAt(opt, resolution) return opt.minibatchDict[resolution] or opt.batchSize end

--- recipes.pggan.Step(parts): the step of one training run.
-- parts.G, parts.D, parts.optG, parts.optD, parts.Gs (optim.EMA of G)
-- parts.opt        the options above (missing ones take M.defaults)
-- parts.draw       reals(n) -> n images at the final resolution in [-1, 1]; noise(n) -> latents
--                  (default N(0, I)); uniform(n) -> the penalty's interpolation weights (N, 1, 1, 1)
--                  (default U(0, 1))
-- parts.schedule   state -> lod (0 = the final resolution): how far the run has grown, from
--                  state.nimg (reals shown to D) or anything else the caller tracks; default
--                  models/pggan.lua's kimg schedule of trainKimg and transKimg
-- parts.state      a saved schedule state to continue from (a checkpoint's)
-- parts.share(n)   this rank's share of a global minibatch of n (default all of it)
function M.Step(parts)
  local opt = setmetatable({}, { __index = function(_, k)
    local v = parts.opt and parts.opt[k]
    if v == nil then v = M.defaults[k] end
    return v
  end })
  local draw = parts.draw or {}
  local latent = parts.G.options.latent
  return setmetatable({
    G = parts.G, D = parts.D, optG = parts.optG, optD = parts.optD, Gs = parts.Gs, opt = opt,
    reals = draw.reals,
    noise = draw.noise or function(n) return tensor.randn(n, latent) end,
    uniform = draw.uniform,
    schedule = parts.schedule or function(state) return (pggan.schedule(state.nimg / 1000, opt)) end,
    share = parts.share or function(n) return n end,
    state = parts.state or { level = 0, lodFloor = -1, lodCeil = -1, lod = 0, t = 0, nimg = 0 },
  }, Step)
end

--- The schedule, re-read every schedulePeriod minibatches (train.py's minibatch_repeats): the
-- level and fade, Adam reset when floor(lod) or ceil(lod) changes (the start and end of each
-- fade), and the learning rates of the level's resolution.
function Step:advance(iter)
  local state, opt = self.state, self.opt
  if (iter - 1) % opt.schedulePeriod ~= 0 then return end
  local lod = self.schedule(state)
  local level, t = pggan.levelOf(lod, opt.resolution)
  if math.floor(lod) ~= state.lodFloor or math.ceil(lod) ~= state.lodCeil then
    if state.lodFloor >= 0 then self.optG:resetState(); self.optD:resetState() end
    state.lodFloor, state.lodCeil = math.floor(lod), math.ceil(lod)
  end
  state.lod, state.level, state.t = lod, level, t
  local res = pggan.resolutionOf(level)
  self.optG:setLr(opt.GLrDict[res] or opt.lr)
  self.optD:setLr(opt.DLrDict[res] or opt.lr)
end

--- The global minibatch at the current level.
function Step:minibatch() return M.minibatchAt(self.opt, pggan.resolutionOf(self.state.level)) end

--- (1) update D on fresh reals blended with the same t, then Gs from G (train.py updates Gs
-- after each D step, from G before this iteration's G step). Returns D's loss and its outputs
-- on [real; fake].
function Step:updateD(iter)
  local G, D, opt, state = self.G, self.D, self.opt, self.state
  local level, t, batch = state.level, state.t, self:minibatch()
  local mine = self.share(batch)
  -- At level l the networks run at 4·2^(l-1) px; the reference runs at full resolution, where
  -- D first average-pools by k = 2^floor(lod). Same forward values, but the penalty's gradient
  -- norm is taken w.r.t. the full-resolution image: ‖∇‖_full = ‖∇‖_native / k.
  local k = 2 ^ math.floor(state.lod)
  self.optD:zeroGrad()
  local real = pggan.realsAt(self.reals(batch), level, t, opt.resolution)
  state.nimg = state.nimg + batch
  local fake = tensor.noGrad(function() return G(self.noise(mine), level, t) end)
  local dReal, dFake = D(real, level, t), D(fake, level, t)
  local lossD
  if opt.loss == "wgangp" then
    -- Backward in two passes into the same gradients: the real and fake graphs are freed
    -- before the penalty's double-backprop graph is built (same sum, half the peak memory).
    lossD = gan.wassersteinD(dReal, dFake) + gan.driftPenalty(dReal, opt.drift)
    lossD:backward()
    local u = self.uniform and self.uniform(mine) or nil
    local gp = gan.gradientPenalty(D, real, fake, { lambda = opt.gpLambda, target = opt.gpTarget, gradScale = 1 / k, u = u },
      level, t)
    training.lastBackward(gp, D)
    lossD = lossD:detach() + gp:detach()
  else
    -- PGGAN's LSGAN: mean(D(real)²) + 0.1·mean((D(fake) - 1)²) (reals target 0, fakes 1)
    lossD = gan.lsganD(dReal, dFake, { realTarget = 0, fakeTarget = 1, fakeWeight = 0.1 }) * 2
    training.lastBackward(lossD, D)
  end
  training.syncGradients(D)   -- under mpirun: the mean over ranks (a no-op in one process)
  self.optD:step()
  if self.Gs then self.Gs:update(G, iter) end
  return lossD, tensor.cat({ dReal:detach(), dFake:detach() }, 1)
end

--- (2) update G with D's parameters frozen (the reference differentiates G's variables only).
function Step:updateG()
  local G, D, opt, state = self.G, self.D, self.opt, self.state
  local level, t, mine = state.level, state.t, self.share(self:minibatch())
  self.optG:zeroGrad()
  D:requiresGrad(false)
  local _ <close> = training.onExit(function() D:requiresGrad(true) end)
  local dG = D(G(self.noise(mine), level, t), level, t)
  local lossG = opt.loss == "wgangp" and gan.wassersteinG(dG) or gan.lsganG(dG, { target = 0 }) * 2
  training.lastBackward(lossG, G)
  training.syncGradients(G)
  self.optG:step()
  return lossG
end

return M
