-- training/scopes.lua: state that a scope restores when it ends: buffers, the random stream, fixed seeds, and
-- latent noise.
-- Part of scripts/lib/training.lua (require("training")), which loads every part into one table.
local M = require("training")

--- Runs fn() with `model`'s buffers (BN statistics, spectral-norm vectors) restored afterwards,
-- so drawing sample sheets never changes the model.
function M.withFrozenBuffers(model, fn)
  local saved = {}
  for name, b in model:namedBuffers() do saved[name] = b:clone() end
  local _ <close> = M.onExit(function()
    tensor.noGrad(function()
      for name, b in model:namedBuffers() do b:copy(saved[name]) end
    end)
  end)
  return fn()
end

--- A to-be-closed value that runs `restore` when its scope ends, normally or by an error:
-- `local _ <close> = training.onExit(f)`. The error then keeps its own traceback (a pcall,
-- restore, rethrow loses it).
function M.onExit(restore) return setmetatable({}, { __close = function() restore() end }) end

--- Runs fn() and puts the global generator back as it was, so whatever fn draws does not
-- move the training run.
function M.keepingRNG(fn)
  local state = tensor.getRNGState()
  local _ <close> = M.onExit(function() tensor.setRNGState(state) end)
  return fn()
end

--- Runs fn() with the global generator seeded by `seed`, then puts the training stream back:
-- fixed sample noise that does not move the training run.
function M.withSeed(seed, fn)
  return M.keepingRNG(function() tensor.manualSeed(seed); return fn() end)
end

--- Latent noise: N(0, I), or truncated at |z| <= truncation (values beyond are resampled,
-- BigGAN's truncation trick) when truncation > 0.
function M.noise(n, dim, truncation)
  if truncation and truncation > 0 then return gan.truncatedNoise(n, dim, truncation) end
  return tensor.randn(n, dim)
end
