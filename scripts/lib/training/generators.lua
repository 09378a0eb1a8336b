-- training/generators.lua: generators restored from checkpoints and from PyTorch weights, for
-- sampling and evaluation.
-- Part of scripts/lib/training.lua (require("training")), which loads every part into one table.
local M = require("training")

--- A generator restored from a checkpoint folder of a training script (the latest checkpoint in
-- `dir`, or `dir` itself), with its EMA weights when it has them (opts.ema = false: G's own).
-- The checkpoint's `model` names its module in scripts/lib/models, whose fromCheckpoint(state,
-- channels, opts) builds it (the model protocol). Returns a table: model, G, ema (whether G
-- holds the EMA weights), opt (the run's options), iter, dimZ, numClasses (0: unconditional),
-- channels, resolution, sample(z[, labels]) -> images in [-1, 1] at the final resolution
-- (with batch statistics, as the reference scripts sample, without changing the model),
-- standing(n, truncation), and what the model adds (embed, sampleEmbedded for BigGAN; lod and
-- describe() for PGGAN).
function M.loadGenerator(dir, opts)
  opts = opts or {}
  if not select(1, paths.exists(dir)) then
    error(("no run or checkpoint folder '%s' (give a run folder such as runs/demo, or a checkpoint folder inside its "
      .. "ckpt/)"):format(dir), 0)
  end
  local probe = io.open(dir .. "/ckpt/latest", "r")
  if probe then probe:close(); dir = dir .. "/ckpt" end       -- a run folder
  local state, folder = ckpt.load(dir)
  if state.iter == 0 then       -- a rolling-back run's starting point, kept before its first save
    io.stderr:write(("note: %s is the run's starting point (iteration 0): its generator is untrained\n"):format(folder))
  end
  local o, meta = state.opt, state.meta or {}
  local name = state.model
  if type(o) ~= "table" or type(name) ~= "string" or not name:match("^[%w_]+$") then
    error(("%s is not a checkpoint of a training script (it names no model)"):format(folder), 0)
  end
  local found, models = pcall(require, "models." .. name)
  if not found or type(models) ~= "table" or not models.fromCheckpoint then
    error(("%s: unknown model '%s' (no scripts/lib/models/%s.lua with fromCheckpoint)"):format(folder, name, name), 0)
  end
  local g = models.fromCheckpoint(state, meta.channels or 3, opts)
  g.model, g.opt, g.iter, g.folder, g.channels, g.resolution = name, o, state.iter, folder, meta.channels or 3, o.resolution
  g.numClasses = g.numClasses or 0
  g.classNames = meta.classNames            -- the data set's class names, when the run stored them
  local weights = g.weights
  g.weights = nil
  g.G:loadStateDict(weights)
  local raw = g.sample
  -- g.standing(n, truncation): standing statistics over n batches of 64, after which G samples
  -- in eval mode (nn.utils.standingStats). The noise is plain N(0, 1), as BigGAN-PyTorch's
  -- accumulate_standing_stats draws it, unless a truncation is given.
  g.standing = function(n, truncation)
    nn.utils.standingStats(g.G, n, function()
      local z = M.noise(64, g.dimZ, truncation or 0)
      if g.numClasses > 0 then raw(z, tensor.randint(1, g.numClasses, 64)) else raw(z) end
    end)
  end
  g.sample = function(...)
    local args = table.pack(...)
    return M.withFrozenBuffers(g.G, function()
      return tensor.noGrad(function() return raw(table.unpack(args, 1, args.n)) end)
    end)
  end
  if g.sampleEmbedded then
    local rawE = g.sampleEmbedded
    g.sampleEmbedded = function(z, e)
      return M.withFrozenBuffers(g.G, function() return tensor.noGrad(function() return rawE(z, e) end) end)
    end
  end
  return g
end


--- A generator from PyTorch weights, with loadGenerator's fields (model, G, dimZ, numClasses,
-- channels, resolution, sample, embed, sampleEmbedded, standing) plus noise(n, truncation) and
-- prepare(truncation), which samplers call before each batch at a truncation:
-- * `path` a BigGAN-PyTorch G.pth / G_ema.pth (BigGAN.py or BigGANdeep.py, told apart by its
--   names), sampled in eval mode with its stored BN statistics (or standing ones), truncation
--   by resampling as gan.truncatedNoise;
-- * with opts.pretrained = "biggan-deep-128" | "-256" | "-512", `path` is pytorch-pretrained-
--   BigGAN's pytorch_model.bin: its truncation t in (0, 1] scales noise truncated at 2 (its
--   truncated_noise_sample) and picks its BN statistics (threshold 0 means t = 1).
function M.loadPyTorchGenerator(path, opts)
  opts = opts or {}
  if not select(1, paths.exists(path)) then
    error(("no such file '%s' (%s)"):format(path, opts.pretrained and "--weights: pytorch-pretrained-BigGAN's pytorch_model.bin"
      or "a BigGAN-PyTorch G.pth or G_ema.pth"), 0)
  end
  local sd = tensor.load(path)
  local g = { iter = 0, ema = path:match("ema") ~= nil, opt = { shared = true, out = (path:match("^(.*)/[^/]*$") or ".") } }
  if opts.pretrained then
    local resolution = tonumber(tostring(opts.pretrained):match("^biggan%-deep%-(%d+)$"))
    if not ({ [128] = true, [256] = true, [512] = true })[resolution] then
      error(("--pretrained must be biggan-deep-128, biggan-deep-256 or biggan-deep-512, got '%s'"):format(tostring(opts.pretrained)), 0)
    end
    local ok, G, o = pcall(require("models.biggan_deep").fromPretrained, sd)
    if not ok then error(("%s: %s"):format(path, G), 0) end
    if o.resolution ~= resolution then
      error(("%s holds a %d px BigGAN-deep, not %s"):format(path, o.resolution, opts.pretrained), 0)
    end
    g.model, g.G, g.opt.pretrained = "biggan-deep", G, opts.pretrained
    g.noise = function(n, t)
      local z = M.noise(n, o.dimZ, 2.0)
      return (t > 0 and t < 1) and z * t or z
    end
    g.prepare = function(t) G:setTruncation((t > 0 and t <= 1) and t or 1.0) end
    g.truncations = { 1, 0.75, 0.5, 0.4, 0.25 }
  else
    if type(sd) ~= "table" or not tensor.isTensor(sd["linear.weight"]) then
      error(("%s is not a BigGAN-PyTorch generator state dict (G.pth or G_ema.pth: no linear.weight)"):format(path), 0)
    end
    local deep = tensor.isTensor(sd["blocks.0.0.conv4.weight"])
    local ok, G = pcall(require(deep and "models.biggan_deep" or "models.biggan").fromPyTorch, sd)
    if not ok then error(("%s: %s"):format(path, G), 0) end
    g.model, g.G = deep and "biggan-deep" or "biggan", G
  end
  local o = g.G.options
  g.dimZ, g.numClasses, g.channels, g.resolution = g.G.dimZ, o.numClasses, o.outChannels, o.resolution
  g.noise = g.noise or function(n, t) return M.noise(n, g.dimZ, t) end
  g.embed = function(labels) return g.G:embed(labels) end
  g.sampleEmbedded = function(z, e) return tensor.noGrad(function() return g.G(z, e) end) end
  g.sample = function(z, labels) return g.sampleEmbedded(z, g.G:embed(labels)) end
  g.standing = function(n, truncation)
    nn.utils.standingStats(g.G, n, function() g.G(g.noise(64, truncation or 0), g.G:embed(tensor.randint(1, g.numClasses, 64))) end)
  end
  return g
end
