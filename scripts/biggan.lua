-- biggan.lua: BigGAN (Brock, Donahue & Simonyan 2019) trained as ajbrock/BigGAN-PyTorch
-- trains it: hinge loss, numDSteps D steps per G step with fresh reals, noise and labels each,
-- Adam, orthogonal regularization added to G's gradients, an EMA of G's parameters and
-- buffers. The networks are in scripts/lib/models/biggan.lua (--arch=deep: BigGAN-deep's, in
-- scripts/lib/models/biggan_deep.lua).
--
--   luagan scripts/biggan.lua                       (10 minutes on 2 cores, the main job's recipe)
--   luagan scripts/biggan.lua [--ch=32] [--GOrthoBeta=1e-4] [--iters=20000] [--out=runs/biggan] ...
--   luagan scripts/biggan.lua --config=scripts/configs/biggan_cifar.lua     (BigGAN-PyTorch's CIFAR recipe)
--   luagan scripts/biggan.lua --arch=deep --depth=2 ...
--   luagan scripts/biggan.lua --help
local training = require("training")
local recipe = require("recipes.biggan")

-- Attention resolutions as BigGAN-PyTorch writes them: '0', '16' or '16_32'.
local function attention(v)
  if not tostring(v):match("^%d+$") and not tostring(v):match("^%d+[_%d]*%d$") then
    return ("must be like '16' or '16_32' ('0' for none), got '%s'"):format(tostring(v))
  end
end

local spec = training.concat({
  { "arch", "standard", "standard: BigGAN; deep: BigGAN-deep (bottleneck blocks, depth per resolution, [embedding, z] "
    .. "at every block; shared and hier are implied)", oneOf = { "standard", "deep" } },
  { "depth", 2, "BigGAN-deep's blocks per resolution (G_depth = D_depth)", min = 1 },
  { "ch", 12, "channel multiplier (BigGAN's G_ch = D_ch; widths are multiples of it)", min = 1, max = 1024 },
  { "dimZ", 128, "latent size (rounded down to a multiple of the z chunks with hier)", min = 1, max = 4096 },
  { "sharedDim", 128, "shared class embedding size (0: dimZ)", min = 0, max = 4096 },
  { "shared", true, "shared class embedding projected to every BN (off: per-class gains; needs --hier=false)" },
  { "hier", true, "hierarchical z: one z chunk per G block (needs shared)",
    check = function(hier, opt)
      if hier and not opt.shared then return "needs --shared (or give --hier=false with --shared=false)" end
    end },
  { "GOrthoBeta", 1e-4, "orthogonal regularization on G: adds 2·beta·(WWᵀ⊙(1−I))W to the gradients (0: off)", min = 0, max = 1,
    aliases = { "orthoBeta" } },
  { "DOrthoBeta", 0.0, "the same on D", min = 0, max = 1 },
  { "GAttn", "0", "G self-attention resolutions, e.g. '16' or '16_32' ('0': none)", check = function(v) return attention(v) end },
  { "DAttn", "0", "D self-attention resolutions (at 32 px every D block is labelled 16)", check = function(v) return attention(v) end },
  { "numDSteps", 2, "D steps per G step", min = 1, max = 100 },
  { "batchSize", 16, "samples per D step and per G step", min = 1, max = 65536 },
  { "GLr", 2e-4, "G learning rate", min = 0, max = 100 },
  { "DLr", 4e-4, "D learning rate", min = 0, max = 100 },
  { "lrDecay", 1.0, "both learning rates fall linearly to 0 from this share of the run to its end (1: constant, as BigGAN)",
    min = 0, max = 1 },
  { "GSigmaClamp", 0.0, "clamp the top singular value of every G weight to this after each G step (BigGAN §4.1; 0: off)", min = 0 },
  { "DR1Gamma", 0.0, "R1 penalty gamma/2·E‖∇D(real)‖² on D's reals (BigGAN §4.2; 0: off)", min = 0 },
  { "numDAccumulations", 1, "minibatches whose gradients each D step accumulates (BigGAN-PyTorch's num_D_accumulations)", min = 1 },
  { "numGAccumulations", 1, "the same for G's step", min = 1 },
  { "GBetas", { 0.0, 0.999 }, "G Adam betas" },
  { "DBetas", { 0.0, 0.999 }, "D Adam betas" },
  { "adamEps", 1e-8, "Adam epsilon", min = 0, max = 1 },
  { "snEps", 1e-8, "spectral norm epsilon", min = 0, max = 1 },
  { "bnEps", 1e-5, "conditional BatchNorm epsilon", min = 0, max = 1 },
  { "ema", true, "keep an exponential moving average of G (samples and metrics use it)" },
  { "emaDecay", 0.995, "EMA decay (BigGAN-PyTorch: 0.9999 over its 125,000-step runs)", min = 0, max = 1 },
  { "emaStart", 1 / 6, "the EMA copies G until this iteration (below 1: this fraction of the run, e.g. of --minutes)", min = 0 },
  { "init", "N02", "weight init: N02 (N(0, 0.02)), ortho or xavier", oneOf = { "N02", "ortho", "xavier" } },
}, training.smallDataSpec(),
  -- sized for a CPU: a 10-minute budget with the main job's recipe (scripts/configs/demo.lua at 10 minutes);
  -- paper scale is --config=scripts/configs/biggan_cifar.lua
  training.commonSpec { iters = 1000000, minutes = 10.0, out = "runs/biggan", sampleEvery = 250, saveEvery = 500, evalEvery = 1000,
                        -- the hinge margin is 1: outputs varying by under 5% of it no longer tell reals from fakes
                        onCollapse = "rollback", collapseSpread = 0.05 })

local opt, saved = training.start(spec, "BigGAN: class-conditional GAN with a projection discriminator.")

-- Data and models -------------------------------------------------------------------------
local dataset, loader, channels, numClasses = training.data(opt, opt.batchSize)
local B = training.localBatch(opt.batchSize)   -- this rank's share of the global batch (all of it without mpirun)
local biggan = require(opt.arch == "deep" and "models.biggan_deep" or "models.biggan")
local G, D = biggan.fromOptions(opt, channels, numClasses)
local optG = optim.Adam(G:parameters(), { lr = opt.GLr, betas = opt.GBetas, eps = opt.adamEps })
local optD = optim.Adam(D:parameters(), { lr = opt.DLr, betas = opt.DBetas, eps = opt.adamEps })
-- emaStart below 1 is a share of the run: the EMA starts when the run reaches it (run:reaches).
local ema = opt.ema and optim.EMA(G, { decay = opt.emaDecay,
  startIter = opt.emaStart >= 1 and math.floor(opt.emaStart) or math.maxinteger }) or nil
local Gs = ema and ema.model or G        -- the generator samples and metrics come from
local dimZ = G.dimZ
if not opt.quiet then
  print(("G: %d parameters, D: %d parameters, %d classes, %d channel(s), %s"):format(G:numParameters(), D:numParameters(),
    numClasses, channels, dataset.name))
end

-- Fixed noise for the sheets: one row per class, 10 columns, drawn from its own seed.
local sheetZ, sheetY = training.withSeed(opt.seed + 1000003, function()
  local y = {}
  for c = 1, numClasses do for _ = 1, 10 do y[#y + 1] = c end end
  return tensor.randn(numClasses * 10, dimZ), tensor.new(y)
end)

local function sample(z, y)   -- images from the EMA generator, without changing it
  return training.withFrozenBuffers(Gs, function()
    return tensor.noGrad(function() return Gs(z, Gs:embed(y)) end)
  end)
end

-- Small data: DiffAugment on everything D sees (ADA's probability with adaTarget), LeCam.
local aids = training.SmallData(opt, saved)

local run = training.Run(opt, {
  objects = { G = G, D = D, optG = optG, optD = optD, ema = ema, loader = loader },
  crossReplica = { G },
  info = { model = "biggan", meta = { channels = channels, numClasses = numClasses, classNames = dataset.classNames } },
  values = function() return { smallData = aids:state() } end,
  monitor = { G = G, D = D },
  firstLayer = "linear.weight_orig",     -- z's first chunk -> 4x4 (the shared embedding comes first)
  sheet = function() return sample(sheetZ, sheetY), 10, nil, dataset.classNames end,   -- a row per class, named
  evaluate = function(n, i)      -- balanced classes, noise from its own seed
    local labels = {}
    for k = 0, n - 1 do labels[k + 1] = (i - 1 + k) % numClasses + 1 end
    local y = tensor.new(labels)
    return sample(training.withSeed(opt.seed + 7919 + i, function() return tensor.randn(n, dimZ) end), y), y
  end,
  -- D's mean output on 500 training images against 500 it never sees, at each evaluation
  probeD = training.overfitProbe(opt, dataset, 500, D),
}, saved)

local step = recipe.Step { G = G, D = D, optG = optG, optD = optD, ema = ema, opt = opt, batch = B, aids = aids,
                           draw = { reals = function() return loader:next() end } }
while run:next() do
  G:train(); D:train()
  if opt.lrDecay < 1 then
    local f = run:decayFactor(opt.lrDecay)
    optG:setLr(opt.GLr * f); optD:setLr(opt.DLr * f)
  end
  if ema and opt.emaStart < 1 and run:reaches("emaStart", opt.emaStart) then ema:startAt(run.iter) end
  -- (1) update D: numDSteps steps, each on fresh reals, noise and labels
  local lossD, dOut = step:updateD(run.iter)
  -- (2) update G (D frozen), orthogonal regularization, EMA
  local lossG = step:updateG(run.iter)
  run:afterStep(aids:scalars { lossD = lossD, lossG = lossG }, dOut)
end
run:finish()
if not opt.quiet then print(("done: %s/samples/latest.png, checkpoints in %s/ckpt"):format(opt.out, opt.out)) end
