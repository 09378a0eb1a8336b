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

--- Growth by shares of the run instead of by images: levelShares[res] (normalized) of the run
-- at each resolution, the first fadeShare of which fades that level in (the 4x4 level has no
-- fade), so a run of a time budget reaches the final resolution on a slow CPU as on a fast one
-- (the images each phase sees follow the CPU). Returns progress (0..1) -> lod.
function M.shareSchedule(opt)
  local levels = select(1, pggan.levelOf(0, opt.resolution))
  local shares, total = {}, 0
  for level = 1, levels do
    local s = opt.levelShares[pggan.resolutionOf(level)]
    if type(s) ~= "number" or not (s > 0) then
      error(("--levelShares needs a positive share for %dx%d"):format(pggan.resolutionOf(level), pggan.resolutionOf(level)), 0)
    end
    shares[level], total = s, total + s
  end
  return function(progress)
    local p, at = math.min(math.max(progress, 0), 1), 0
    for level = 1, levels do
      local share = shares[level] / total
      if p < at + share or level == levels then
        local q = math.min((p - at) / share, 1)     -- how far into this level's share
        local settled = levels - level             -- its lod once faded in
        if level > 1 and q < opt.fadeShare then return settled + 1 - q / opt.fadeShare end
        return settled
      end
      at = at + share
    end
  end
end

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
    onPhase = parts.onPhase,
    state = parts.state or { level = 0, lodFloor = -1, lodCeil = -1, lod = 0, t = 0, nimg = 0 },
  }, Step)
end

--- The schedule, re-read every schedulePeriod minibatches (train.py's minibatch_repeats): the
-- level and fade, Adam reset when floor(lod) or ceil(lod) changes (the start and end of each
-- fade), and the learning rates of the level's resolution.
function Step:advance(iter, seconds)
  local state, opt = self.state, self.opt
  self:observeCost(seconds)
  if (iter - 1) % opt.schedulePeriod ~= 0 then return end
  local lod = self.schedule(state)
  local level, t = pggan.levelOf(lod, opt.resolution)
  self:notePhase(iter, seconds, level, t)
  if math.floor(lod) ~= state.lodFloor or math.ceil(lod) ~= state.lodCeil then
    if state.lodFloor >= 0 then self.optG:resetState(); self.optD:resetState() end
    state.lodFloor, state.lodCeil = math.floor(lod), math.ceil(lod)
  end
  state.lod, state.level, state.t = lod, level, t
  local res = pggan.resolutionOf(level)
  self.optG:setLr(opt.GLrDict[res] or opt.lr)
  self.optD:setLr(opt.DLrDict[res] or opt.lr)
end

--- The phases the run went through, each { name = "8x8" | "fade 8x8", iter, kimg, seconds } at
-- its start (kept in the schedule state, so a checkpoint carries them); a new one is reported
-- through parts.onPhase.
function Step:notePhase(iter, seconds, level, t)
  local res = pggan.resolutionOf(level)
  local name = t > 0 and ("fade %dx%d"):format(res, res) or ("%dx%d"):format(res, res)
  local phases = self.state.phases or {}
  self.state.phases = phases
  if phases[#phases] and phases[#phases].name == name then return end
  phases[#phases + 1] = { name = name, iter = iter, kimg = self.state.nimg / 1000, seconds = seconds or 0 }
  if self.onPhase then self.onPhase(phases[#phases]) end
end

--- Where the run is, for the progress line: "level 3 (16x16) fade 40%".
function Step:status()
  local s = self.state
  if s.level < 1 then return nil end
  local res = pggan.resolutionOf(s.level)
  return ("level %d (%dx%d)%s"):format(s.level, res, res, s.t > 0 and (" fade %d%%"):format(math.floor((1 - s.t) * 100)) or "")
end

--- The images each phase saw and how long it took, up to `iter`/`seconds`/the images so far.
function Step:phaseTable(iter, seconds)
  local rows, phases = {}, self.state.phases or {}
  for i, ph in ipairs(phases) do
    local nxt = phases[i + 1] or { iter = iter + 1, kimg = self.state.nimg / 1000, seconds = seconds }
    rows[i] = { name = ph.name, fromIter = ph.iter, iters = nxt.iter - ph.iter, kimg = nxt.kimg - ph.kimg,
                fromMinute = ph.seconds / 60, minutes = (nxt.seconds - ph.seconds) / 60 }
  end
  return rows
end

-- Seconds per real image at each level, as measured (an average over the last ~50
-- iterations, time spent on sheets and checkpoints included): the cost model of the estimate
-- below.
function Step:observeCost(seconds)
  local s = self.state
  if seconds and self.lastSeconds and s.nimg > self.lastImages and s.level >= 1 then
    local perImage = (seconds - self.lastSeconds) / (s.nimg - self.lastImages)
    self.cost = self.cost or {}
    local old = self.cost[s.level]
    self.cost[s.level] = old and (0.98 * old + 0.02 * perImage) or perImage
  end
  self.lastSeconds, self.lastImages = seconds, s.nimg
end

-- Multiply-adds of one image through G and D at each level (counted once, on a batch of 2),
-- to scale the cost of the levels not reached yet from the one running now.
function Step:levelFlops()
  if self.flops then return self.flops end
  local flops, levels = {}, select(1, pggan.levelOf(0, self.opt.resolution))
  tensor.noGrad(function()
    training.keepingRNG(function()
      for level = 1, levels do
        local before = tensor.flops()
        local x = self.G(self.noise(2), level, 0)
        self.D(x, level, 0)
        flops[level] = (tensor.flops() - before) / 2
      end
    end)
  end)
  self.flops = flops
  return flops
end

--- Seconds until the schedule has shown `totalKimg` thousand images: the images each level
-- will still see, at the cost per image measured at that level, or for a level not reached
-- yet the current level's cost scaled by the two levels' FLOPs per image. nil before any
-- measurement.
function Step:remainingSeconds(totalKimg)
  local s, opt = self.state, self.opt
  local here = self.cost and self.cost[s.level]
  if not here then return nil end
  local flops = self:levelFlops()
  local function perImage(level)
    return self.cost[level] or here * flops[level] / math.max(flops[s.level], 1)
  end
  local nimg, seconds = s.nimg, 0
  while nimg < totalKimg * 1000 do
    local _, level = pggan.schedule(nimg / 1000, opt)
    local images = opt.schedulePeriod * M.minibatchAt(opt, pggan.resolutionOf(level))
    seconds, nimg = seconds + images * perImage(level), nimg + images
  end
  return seconds
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
