-- training/small_data.lua: DiffAugment, ADA and LeCam as the scripts' options ask.
-- Part of scripts/lib/training.lua (require("training")), which loads every part into one table.
local M = require("training")

--- The small-data options the GAN scripts share (training.SmallData uses them).
function M.smallDataSpec()
  return {
    { "diffAugment", "", "DiffAugment policy for every image D sees, e.g. 'color,translation,cutout' ('': none)" },
    { "adaTarget", 0.0, "with diffAugment: ADA's adaptive probability, steered toward this E[sign D(real)] (0: always augment)",
      min = 0, max = 1 },
    { "adaKimg", 500.0, "ADA: thousands of images for the probability to go from 0 to 1 (stylegan2-ada: 500; 100 to resume "
      .. "a trained network)", min = 0.001, max = 1e6 },
    { "lecam", 0.0, "LeCam regularization weight on D (Tseng et al. 2021; 0.3 for BigGAN on CIFAR; 0: off)", min = 0, max = 1e6 },
    { "lecamDecay", 0.9, "LeCam: decay of the moving averages of D's outputs (google/lecam-gan's BigGAN: 0.9)", min = 0, max = 0.9999 },
    { "lecamStart", 1000, "LeCam: the penalty applies after this iteration; the averages are the latest means until then",
      min = 0, max = 1e9 },
  }
end

local SmallData = {}
SmallData.__index = SmallData

--- DiffAugment (with ADA's probability when adaTarget is set) and LeCam as the options ask,
-- their running state restored from `saved`: aids:augment(x) on everything D sees,
-- aids:dLoss(loss, dReal, dFake, iter) for D's loss, aids:state() for the checkpoint's
-- values (as `smallData`), aids:scalars(t) for the log.
function M.SmallData(opt, saved)
  local self = setmetatable({ policy = opt.diffAugment, weight = opt.lecam }, SmallData)
  if opt.diffAugment ~= "" then gan.diffAugment(tensor.zeros(1, 1, 2, 2), opt.diffAugment) end   -- a bad policy fails now
  self.ada = opt.diffAugment ~= "" and opt.adaTarget > 0 and gan.AdaptiveAugment { target = opt.adaTarget, kimg = opt.adaKimg } or nil
  self.lecam = opt.lecam > 0 and gan.LeCam { decay = opt.lecamDecay, start = opt.lecamStart } or nil
  local s = saved and saved.smallData or {}
  if self.ada and s.ada then self.ada:load(s.ada) end
  if self.lecam and s.lecam then self.lecam:load(s.lecam) end
  return self
end
function SmallData:augment(x)
  if self.policy == "" then return x end
  return gan.diffAugment(x, self.policy, { p = self.ada and math.min(1, self.ada.p) or 1 })
end
function SmallData:dLoss(loss, dReal, dFake, iter)
  if self.ada then self.ada:observe(dReal) end
  if not self.lecam then return loss end
  self.lecam:update(dReal, dFake, iter)      -- the averages first, as google/lecam-gan
  if not self.lecam:applies(iter) then return loss end
  return loss + self.lecam:penalty(dReal, dFake) * self.weight
end
function SmallData:state() return { ada = self.ada and self.ada:state(), lecam = self.lecam and self.lecam:state() } end
function SmallData:scalars(t)
  if self.ada then t.augmentP = self.ada.p end
  return t
end
