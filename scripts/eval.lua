-- eval.lua: every metric for a checkpoint of biggan.lua, pggan.lua or dcgan.lua against a
-- Fashion-MNIST split: domain FID, KID, precision/recall, IS and class accuracy (the domain
-- classifier, scripts/lib/fmnist_classifier.lua), PGGAN's SWD and MS-SSIM, and with
-- --inception=weights.safetensors the Inception-v3 FID and IS. Prints a table and writes JSON.
-- The split's features are cached in runs/cache/.
--
--   luagan scripts/eval.lua --ckpt=runs/biggan [--n=10000] [--truncation=0] [--split=test]
local options = require("options")
local training = require("training")
local evaluation = require("evaluation")

local opt = options.cli(arg, {
  { "ckpt", "", "a run folder (its latest checkpoint) or a checkpoint folder" },
  { "n", 10000, "samples to generate (the split has 10,000 test / 60,000 train images)", min = 2, max = 1000000 },
  { "split", "test", "Fashion-MNIST split to compare with: test or train" },
  { "truncation", 0.0, "resample |z| above this (BigGAN's truncation trick; 0: no truncation)", min = 0 },
  { "ema", true, "use the EMA generator when the checkpoint has one" },
  { "inception", "", "converted pytorch-fid Inception weights (see scripts/lib/inception.lua) for Inception FID/IS" },
  { "seed", 2020, "seed of the sample noise and labels" },
  { "standing", 0, "standing statistics over this many batches before sampling (BigGAN-PyTorch's --accumulate_stats; 0: off)",
    min = 0 },
  { "standingTruncated", false, "draw the standing passes' noise truncated as the samples' (BigGAN-PyTorch: plain N(0, 1))" },
  { "json", "", "where to write the results (default: <run>/eval-<iter>.json)" },
}, "Computes every metric for a checkpoint.")
if opt.ckpt == "" then io.stderr:write("eval.lua: --ckpt is required (a run folder such as runs/biggan)\n"); os.exit(2) end

local g = training.loadGenerator(opt.ckpt, { ema = opt.ema })
if opt.standing > 0 then g.standing(opt.standing, opt.standingTruncated and opt.truncation or nil) end
if g.channels ~= 1 or g.resolution ~= 32 then
  io.stderr:write("eval.lua: the domain metrics are for Fashion-MNIST generators (1 channel, 32x32)\n"); os.exit(2)
end
local inception = opt.inception ~= "" and require("inception").load(opt.inception) or nil
local ref = evaluation.reference { split = opt.split, inception = inception }

tensor.manualSeed(opt.seed)
local function sampler(n, i)
  local z = training.noise(n, g.dimZ, opt.truncation)
  if g.numClasses > 0 then
    local labels = {}
    for k = 0, n - 1 do labels[k + 1] = (i - 1 + k) % g.numClasses + 1 end   -- balanced classes
    local y = tensor.new(labels)
    return g.sample(z, y), y
  end
  return g.sample(z)
end
local r = evaluation.evaluate(sampler, ref, { n = opt.n })
r.checkpoint, r.iter, r.model, r.truncation = g.folder, g.iter, g.model, opt.truncation

print(("%s at iteration %d (%s generator), truncation %s:"):format(g.model, g.iter, g.ema and "EMA" or "raw",
  opt.truncation > 0 and opt.truncation or "none"))
local caveat = g.describe and g.describe()    -- e.g. a PGGAN run that has not grown to full size yet
if caveat then print(("note: this is %s; these metrics judge it at that size"):format(caveat)) end
print(evaluation.format(r))
-- also a line in the run's own log, beside its training records (marked as eval.lua's: other
-- noise and sample counts than the run's own evaluations)
local logged = { evalSamples = r.n, fid = r.fid, is = r.is, kid = r.kid, swd = r.swd, msssim = r.msssim, msssimReal = r.msssimReal,
                 accuracy = r.accuracy, classesCovered = r.classesCovered, coverageKL = r.coverageKL, source = "eval.lua" }
for i, v in ipairs(r.swdLevels or {}) do logged[("swd%d"):format(r.swdResolutions[i])] = v end
local okLog = pcall(function() local l = log.Logger(g.opt.out); l:log(g.iter, logged); l:close() end)
if not okLog then io.stderr:write(("eval.lua: could not add to %s/log.jsonl\n"):format(g.opt.out)) end
local path = opt.json ~= "" and opt.json or ("%s/eval-%07d.json"):format(g.opt.out, g.iter)
local f = assert(io.open(path, "w"))
f:write(evaluation.toJSON(r), "\n")
f:close()
print(("wrote %s (%.0f s)"):format(path, r.seconds))
