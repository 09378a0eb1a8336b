-- pggan.lua: progressive growing of GANs (Karras et al. 2018) as tkarras/progressive_growing_of_gans
-- trains it: grow from 4x4, each level stabilised for trainKimg thousand real images then faded
-- in over transKimg (G's output, D's input and the reals blended with the same t), Adam reset
-- whenever the level changes, WGAN-GP with drift (or the LSGAN variant), and Gs, an EMA of G.
-- With --growth=shares the levels take shares of the run instead (of its --minutes budget),
-- so it reaches the final resolution whatever the CPU. The networks are in
-- scripts/lib/models/pggan.lua, the step in scripts/lib/recipes/pggan.lua.
--
--   luagan scripts/pggan.lua                                           (10 minutes on 2 cores)
--   luagan scripts/pggan.lua --config=scripts/configs/demo_pggan.lua   (make demo-pggan: 15 minutes)
--   luagan scripts/pggan.lua --growth=kimg --trainKimg=60 --transKimg=60 --totalKimg=420 [--out=runs/pggan]
--   luagan scripts/pggan.lua --config=scripts/configs/pggan_paper.lua  (the paper's CIFAR-10 settings)
local training = require("training")
local pggan = require("models.pggan")
local recipe = require("recipes.pggan")

-- Per-resolution settings (train.py TrainingSchedule): the resolution is 2^(R - floor(lod)),
-- so during a fade into 2r everything already uses 2r's minibatch and learning rates. The
-- checks below are declared with the options and run when the command line is read.
local function isBatch(b) return math.type(b) == "integer" and b >= 1 end
local function isLr(x) return type(x) == "number" and x > 0 and x < math.huge end
local function perResolution(isValid, expected)
  return function(dict, opt)
    for res, v in pairs(dict) do
      local r = math.tointeger(res)
      if not r or r < 4 or r > opt.resolution or r & (r - 1) ~= 0 then
        return ("key %s is not a resolution (a power of two from 4 to %d)"):format(tostring(res), opt.resolution)
      end
      if not isValid(v) then return ("[%d]: %s expected, got %s"):format(r, expected, tostring(v)) end
    end
  end
end
local minibatchAt = recipe.minibatchAt
local function groupsDivide(group, opt)
  local res = 4
  while res <= opt.resolution and group > 0 do
    local b = minibatchAt(opt, res)
    if isBatch(b) and b % math.min(group, b) ~= 0 then
      return ("the minibatch at %dx%d (%d; --batchSize=%d) must be divisible by --mbstdGroup=%d"):format(res, res, b, opt.batchSize, group)
    end
    res = res * 2
  end
end

local spec = training.concat({
  { "latent", 128, "latent size", min = 1 },
  { "fmapBase", 1024, "feature maps: min(fmapBase / 2^stage, fmapMax) (the paper's CIFAR-10: 4096)", min = 1, max = 1 << 20 },
  { "fmapMax", 32, "most feature maps in a layer (the paper's CIFAR-10: 128)", min = 1, max = 4096 },
  { "growth", "shares", "kimg: each level trainKimg then transKimg thousand images (the paper's); shares: --levelShares of the "
    .. "run (its --minutes budget or --iters); none: the final resolution from the start (Table 1's first row)",
    oneOf = { "kimg", "shares", "none" } },
  { "trainKimg", 60.0, "thousands of real images to stabilise each level (paper: 800; CIFAR-10: 400)", min = 0 },
  { "transKimg", 60.0, "thousands of real images to fade each new level in (paper: 800; CIFAR-10: 400)", min = 0 },
  { "totalKimg", 420.0, "thousands of real images in all (420 at 32x32 and 60/60: the last 60 at full resolution)", min = 0 },
  { "levelShares", { [4] = 0.5, [8] = 1, [16] = 2, [32] = 8 }, "--growth=shares: each resolution's share of the run",
    check = perResolution(isLr, "a positive share") },
  { "fadeShare", 0.4, "--growth=shares: the part of a level's share that fades it in", min = 0, max = 1 },
  { "equalized", true, "equalized learning rate (off: He init, as Table 1's rows a-e, with --lr=1e-4 there)" },
  { "pixelnorm", true, "pixelwise feature normalization in G (off: Table 1's rows a-f)" },
  { "batchSize", 16, "minibatch (minibatch_base: the paper's for every resolution up to 128)", min = 1 },
  { "minibatchDict", {}, "minibatch per resolution, overriding batchSize, e.g. {[4]=64,[8]=32} (minibatch_dict)",
    check = perResolution(isBatch, "a positive integer") },
  { "lr", 1e-3, "Adam learning rate of G and D (G_lrate_base, D_lrate_base)", min = 0 },
  { "GLrDict", {}, "G learning rate per resolution, overriding lr, e.g. {[32]=1.5e-3} (G_lrate_dict)",
    check = perResolution(isLr, "a positive learning rate") },
  { "DLrDict", {}, "D learning rate per resolution, overriding lr (D_lrate_dict)", check = perResolution(isLr, "a positive learning rate") },
  { "betas", { 0.0, 0.99 }, "Adam betas" },
  { "adamEps", 1e-8, "Adam epsilon", min = 0 },
  { "loss", "wgangp", "WGAN-GP with drift, or PGGAN's LSGAN", oneOf = { "wgangp", "lsgan" } },
  { "gpLambda", 10.0, "gradient penalty weight", min = 0 },
  { "gpTarget", 1.0, "gradient norm target (the paper's CIFAR-10 run: 750)" },
  { "drift", 0.001, "drift penalty on real scores", min = 0 },
  { "mbstdGroup", 4, "minibatch stddev group size (TF default 4; the paper: the whole minibatch; 0: none, Table 1's rows a-d)",
    min = 0, check = groupsDivide },
  { "GsBeta", 0.999, "Gs = EMA of G with this decay per step", min = 0, max = 1 },
  { "schedulePeriod", 4, "minibatches between schedule evaluations (minibatch_repeats)", min = 1 },
  -- sized for a CPU: a 10-minute budget grown by shares of it (the main job's recipe); the paper's
  -- kimg schedule and sizes are --config=scripts/configs/pggan_paper.lua
}, training.commonSpec { iters = 0, minutes = 10.0, out = "runs/pggan", sampleEvery = 250, saveEvery = 500, evalEvery = 0 })

local opt, saved = training.start(spec, "PGGAN: progressive growing with equalized learning rate, pixelnorm and minibatch stddev.", {
  -- kimg lengths given on the command line mean the paper's schedule, whose totalKimg then
  -- ends the run (unless --minutes or --iters is given too)
  adjust = function(o, given)
    if not given.growth and (given.trainKimg or given.transKimg or given.totalKimg) then o.growth = "kimg" end
    if o.growth == "kimg" and not given.minutes and not given.iters then o.minutes = 0 end
  end,
})
local resolutionOf = pggan.resolutionOf
-- Under mpirun every minibatch is global: each rank takes an equal share, and minibatch stddev
-- groups form within a rank's share (as PGGAN's code does per GPU).
local res = 4
while res <= opt.resolution do
  local b, ranks = minibatchAt(opt, res), dist.size()
  if b % ranks ~= 0 or (opt.mbstdGroup > 0 and (b // ranks) % math.min(opt.mbstdGroup, b // ranks) ~= 0) then
    error(("the minibatch at %dx%d (%d) must split into %d equal shares divisible by --mbstdGroup=%d"):format(res, res, b, ranks,
      opt.mbstdGroup), 0)
  end
  res = res * 2
end

-- One iteration is one D step and one G step. The run lasts totalKimg thousand reals, in whole
-- schedule periods as train.py's loop does, unless --iters or --minutes is given.
if opt.growth ~= "kimg" and opt.iters == 0 and opt.minutes == 0 then
  error("--growth=" .. opt.growth .. " needs the run's length: --minutes (a time budget) or --iters", 0)
end
if opt.iters == 0 and opt.minutes == 0 then
  local nimg, iters = 0, 0
  while nimg < opt.totalKimg * 1000 do
    local _, level = pggan.schedule(nimg / 1000, opt)
    nimg, iters = nimg + opt.schedulePeriod * minibatchAt(opt, resolutionOf(level)), iters + opt.schedulePeriod
  end
  opt.iters = iters
end
if opt.iters == 0 then opt.iters = math.maxinteger end   -- the budget ends the run

-- Reals come in chunks of the gcd of every minibatch, so each level's minibatch is a whole
-- number of loader batches and a checkpoint's loader position resumes the stream exactly.
local function gcd(a, b) while b ~= 0 do a, b = b, a % b end return a end
local chunk = opt.batchSize
for _, b in pairs(opt.minibatchDict) do chunk = gcd(chunk, b) end
local dataset, loader, channels = training.data(opt, chunk)
local function reals(n)
  if n == chunk then return (loader:next()) end
  local parts = {}
  for i = 1, n // chunk do parts[i] = loader:next() end
  return tensor.cat(parts, 1)
end

local G, D = pggan.fromOptions(opt, channels)
-- TensorFlow's Adam, as the official code trains with (eps added before the bias correction)
local function adam(m) return optim.Adam(m:parameters(), { lr = opt.lr, betas = opt.betas, eps = opt.adamEps, epsilonHat = true }) end
local optG, optD = adam(G), adam(D)
local Gs = optim.EMA(G, { decay = opt.GsBeta })

-- The level of detail: by images shown (the paper's), by the share of the run behind us, or the
-- final resolution throughout.
local run
local byShare = opt.growth == "shares" and recipe.shareSchedule(opt)
local schedule = opt.growth == "shares" and function() return byShare(run:progress()) end
  or opt.growth == "none" and function() return 0 end or nil
local step = recipe.Step { G = G, D = D, optG = optG, optD = optD, Gs = Gs, opt = opt, share = training.localBatch,
                           draw = { reals = reals }, state = saved and saved.schedule, schedule = schedule,
                           onPhase = function(phase)   -- each phase begins in the log and on the console
                             if run then run.logger:log(phase.iter, { phase = phase.name, kimg = phase.kimg }) end
                             if not opt.quiet then
                               print(("\n%s from iteration %d (%.1f kimg, minute %.1f)"):format(phase.name, phase.iter, phase.kimg,
                                 phase.seconds / 60))
                             end
                           end }
if not opt.quiet then
  print(("G: %d parameters, D: %d parameters, %s, %d channel(s)"):format(G:numParameters(), D:numParameters(), dataset.name, channels))
end

local sheetZ = training.withSeed(opt.seed + 1000003, function() return tensor.randn(64, opt.latent) end)
local function sample(z, level, t)
  return tensor.noGrad(function() return pggan.sampleAt(Gs.model, z, level, t, opt.resolution) end)
end

run = training.Run(opt, {
  objects = { G = G, D = D, optG = optG, optD = optD, Gs = Gs, loader = loader },
  info = { model = "pggan", meta = { channels = channels, classNames = dataset.classNames } },
  values = function() return { schedule = step.state } end,
  restore = function(saved) step.state = saved.schedule end,
  monitor = { G = G, D = D },
  sheet = function()
    return sample(sheetZ, step.state.level, step.state.t), 8, ("-lod%.2f"):format(step.state.lod)
  end,
  canEvaluate = function() return step.state.lod == 0 end,
  status = function() return step:status() end,
  remaining = opt.growth == "kimg" and opt.minutes == 0 and function(r)
    -- later levels cost more per image: the schedule's images at each level's cost
    if r.iter % 25 == 0 or not step.eta then step.eta = step:remainingSeconds(opt.totalKimg) end
    return step.eta
  end or nil,
  evaluate = function(n, i)
    local z = training.withSeed(opt.seed + 7919 + i, function() return tensor.randn(n, opt.latent) end)
    return sample(z, step.state.level, 0)
  end,
}, saved)

while run:next() do
  step:advance(run.iter, run.elapsed)   -- the level and fade of this iteration, Adam reset at level changes
  -- (1) update D on fresh reals blended with the same fade, then Gs
  local lossD, dOut = step:updateD(run.iter)
  -- (2) update G (D frozen)
  local lossG = step:updateG(run.iter)
  local state = step.state
  run:afterStep({ lossD = lossD, lossG = lossG, lod = state.lod, kimg = state.nimg / 1000, minibatch = step:minibatch() }, dOut)
end
run:finish()
if not opt.quiet then
  -- which level ran when, and how many images each phase saw
  print(("%-10s %8s %8s %8s %9s"):format("phase", "from it", "iters", "kimg", "minutes"))
  for _, r in ipairs(step:phaseTable(run.iter, run.elapsed)) do
    print(("%-10s %8d %8d %8.1f %9.2f"):format(r.name, r.fromIter, r.iters, r.kimg, r.minutes))
  end
  print(("done: %s/samples/latest.png, checkpoints in %s/ckpt"):format(opt.out, opt.out))
end
