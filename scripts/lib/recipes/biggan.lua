-- recipes/biggan.lua: BigGAN's training step, written once (Brock, Donahue & Simonyan 2019, as
-- ajbrock/BigGAN-PyTorch's train_fns.GAN_training_function takes it): numDSteps D steps, each
-- on fresh reals, noise and labels and one D pass over [fake; real] with the hinge loss, then
-- one G step with D frozen, the orthogonal penalty added to the gradients (G and D each with
-- their own beta), an optional spectrum clamp on G, and the EMA. Everything that uses the step
-- (scripts/biggan.lua's loop, make bench's workloads, the float64 comparison with PyTorch, the
-- fixture and checkpoint tests) calls this, so what is timed and verified is what users run.
--
--   local step = recipes.biggan.Step { G = G, D = D, optG = optG, optD = optD, ema = ema,
--                                      opt = opt, batch = B, draw = draw, aids = aids }
--   local lossD, dOut = step:updateD(iter)     -- (1)
--   local lossG = step:updateG(iter)           -- (2)
local training = require("training")

local M = {}

--- The options the step reads, with BigGAN-PyTorch's values (a script's options override them).
M.defaults = { numDSteps = 2, numDAccumulations = 1, numGAccumulations = 1, GOrthoBeta = 1e-4, DOrthoBeta = 0, DR1Gamma = 0,
               GSigmaClamp = 0 }

local Step = {}
Step.__index = Step

--- recipes.biggan.Step(parts): the step of one training run.
-- parts.G, parts.D        the networks (G(z, G:embed(y)), D(x, y))
-- parts.optG, parts.optD  their optimizers
-- parts.ema               optim.EMA of G, updated after each G step (optional)
-- parts.opt               the options above (missing ones take M.defaults)
-- parts.batch             samples per minibatch (this rank's share under mpirun)
-- parts.draw              where inputs come from: reals() -> images, labels; noise(n) -> z;
--                         labels(n) -> class labels (default: N(0, I) and uniform classes)
-- parts.aids              training.SmallData (DiffAugment, ADA, LeCam; default: none)
-- parts.observe(name, value)  called with "fake", "dOut", "lossD", "gradsD" (just before D's
--                         optimizer step), "lossG" and "gradsG": what fixture tests compare
function M.Step(parts)
  local opt = setmetatable({}, { __index = function(_, k)
    local v = parts.opt and parts.opt[k]
    if v == nil then v = M.defaults[k] end
    return v
  end })
  local G = parts.G
  local numClasses = G.options and G.options.numClasses or parts.numClasses
  local draw = parts.draw or {}
  local self = setmetatable({
    G = G, D = parts.D, optG = parts.optG, optD = parts.optD, ema = parts.ema, opt = opt, batch = parts.batch,
    aids = parts.aids or training.SmallData({ diffAugment = "", adaTarget = 0, lecam = 0 }),
    reals = draw.reals,
    noise = draw.noise or function(n) return tensor.randn(n, G.dimZ) end,
    labels = draw.labels or function(n) return tensor.randint(1, numClasses, n) end,
    observe = parts.observe or function() end,
    orthoExclude = G.orthoExclude and G:orthoExclude() or nil,
  }, Step)
  return self
end

--- (1) update D: numDSteps steps, each on fresh reals, noise and labels (numDAccumulations
-- minibatches of them). Returns the last step's loss and D's outputs on [fake; real].
function Step:updateD(iter)
  local G, D, B, opt, aids = self.G, self.D, self.batch, self.opt, self.aids
  local lossD, dOut
  for _ = 1, opt.numDSteps do
    self.optD:zeroGrad()
    lossD, dOut = training.accumulated(opt.numDAccumulations, function()
      local real, realY = self.reals()
      local z, fakeY = self.noise(B), self.labels(B)
      local fake = tensor.noGrad(function() return G(z, G:embed(fakeY)) end)
      self.observe("fake", fake)
      -- one D pass over [fake; real], as BigGAN-PyTorch's G_D
      local out = D(aids:augment(tensor.cat({ fake, real }, 1)), tensor.cat({ fakeY, realY }, 1))
      self.observe("dOut", out)
      local dFake, dReal = out:narrow(1, 1, B), out:narrow(1, B + 1, B)
      local loss = aids:dLoss(gan.hingeD(dReal, dFake), dReal, dFake, iter)
      if opt.DR1Gamma > 0 then   -- the paper's stability probe: R1 on the reals, by double backprop
        loss = loss + gan.r1Penalty(function(x) return D(aids:augment(x), realY) end, real, { gamma = opt.DR1Gamma })
      end
      self.observe("lossD", loss)
      return loss, out
    end, D)
    training.syncGradients(D)   -- under mpirun: the mean over ranks (a no-op in one process)
    if opt.DOrthoBeta > 0 then gan.addOrthoGrad(D, opt.DOrthoBeta) end
    self.observe("gradsD", D)
    self.optD:step()
  end
  return lossD, dOut
end

--- (2) update G with D's parameters frozen (BigGAN-PyTorch's toggle_grad: no D weight
-- gradients), then the orthogonal penalty, the optional spectrum clamp and the EMA.
function Step:updateG(iter)
  local G, D, B, opt, aids = self.G, self.D, self.batch, self.opt, self.aids
  self.optG:zeroGrad()
  D:requiresGrad(false)
  local _ <close> = training.onExit(function() D:requiresGrad(true) end)
  local lossG = training.accumulated(opt.numGAccumulations, function()
    local z, fakeY = self.noise(B), self.labels(B)
    local loss = gan.hingeG(D(aids:augment(G(z, G:embed(fakeY))), fakeY))
    self.observe("lossG", loss)
    return loss
  end, G)
  training.syncGradients(G)
  if opt.GOrthoBeta > 0 then gan.addOrthoGrad(G, opt.GOrthoBeta, { exclude = self.orthoExclude }) end
  self.observe("gradsG", G)
  self.optG:step()
  if opt.GSigmaClamp > 0 then
    for name, w in G:namedParameters() do   -- every weight but the shared class embedding
      if w:dim() >= 2 and not name:match("^shared%.") then nn.utils.clampSpectrum(w, opt.GSigmaClamp) end
    end
  end
  if self.ema then self.ema:update(G, iter) end
  return lossG
end

return M
