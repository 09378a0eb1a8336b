-- biggan.lua: BigGAN (Brock, Donahue & Simonyan 2019) trained as ajbrock/BigGAN-PyTorch
-- trains it: hinge loss, numDSteps D steps per G step with fresh reals, noise and labels each,
-- Adam, orthogonal regularization added to G's gradients, an EMA of G's parameters and
-- buffers. The networks are in scripts/lib/models/biggan.lua.
--
--   luagan scripts/biggan.lua [--ch=32] [--orthoBeta=1e-4] [--iters=20000] [--out=runs/biggan] ...
--   luagan scripts/biggan.lua --help
local training = require("training")
local biggan = require("models.biggan")

local spec = training.concat({
  { "ch", 32, "channel multiplier (BigGAN's G_ch = D_ch; widths are multiples of it)" },
  { "dimZ", 128, "latent size (rounded down to a multiple of the z chunks with hier)" },
  { "sharedDim", 128, "shared class embedding size (0: dimZ)" },
  { "shared", true, "shared class embedding projected to every BN (off: per-class gains)" },
  { "hier", true, "hierarchical z: one z chunk per G block (needs shared)" },
  { "orthoBeta", 1e-4, "orthogonal regularization on G: adds 2·beta·(WWᵀ⊙(1−I))W to the gradients (0: off)" },
  { "DOrthoBeta", 0.0, "the same on D" },
  { "GAttn", "0", "G self-attention resolutions, e.g. '16' or '16_32' ('0': none)" },
  { "DAttn", "0", "D self-attention resolutions (at 32 px every D block is labelled 16)" },
  { "numDSteps", 2, "D steps per G step" },
  { "batchSize", 50, "samples per D step and per G step" },
  { "GLr", 2e-4, "G learning rate" },
  { "DLr", 2e-4, "D learning rate" },
  { "GBetas", { 0.0, 0.999 }, "G Adam betas" },
  { "DBetas", { 0.0, 0.999 }, "D Adam betas" },
  { "adamEps", 1e-8, "Adam epsilon" },
  { "snEps", 1e-8, "spectral norm epsilon" },
  { "bnEps", 1e-5, "conditional BatchNorm epsilon" },
  { "ema", true, "keep an exponential moving average of G (samples and metrics use it)" },
  { "emaDecay", 0.9999, "EMA decay" },
  { "emaStart", 1000, "the EMA copies G until this iteration" },
  { "init", "N02", "weight init: N02 (N(0, 0.02)), ortho or xavier" },
}, training.commonSpec { iters = 20000, out = "runs/biggan", sampleEvery = 500, saveEvery = 1000, evalEvery = 2000 })

local opt, saved = training.start(spec, "BigGAN: class-conditional GAN with a projection discriminator.")

-- Data and models -------------------------------------------------------------------------
local dataset, loader, channels, numClasses = training.data(opt, opt.batchSize)
local G = biggan.Generator { resolution = opt.resolution, ch = opt.ch, dimZ = opt.dimZ, sharedDim = opt.sharedDim,
  shared = opt.shared, hier = opt.hier, numClasses = numClasses, attention = opt.GAttn, snEps = opt.snEps,
  bnEps = opt.bnEps, init = opt.init, outChannels = channels }
local D = biggan.Discriminator { resolution = opt.resolution, ch = opt.ch, numClasses = numClasses,
  attention = opt.DAttn, snEps = opt.snEps, init = opt.init, inChannels = channels }
local optG = optim.Adam(G:parameters(), { lr = opt.GLr, betas = opt.GBetas, eps = opt.adamEps })
local optD = optim.Adam(D:parameters(), { lr = opt.DLr, betas = opt.DBetas, eps = opt.adamEps })
local ema = opt.ema and optim.EMA(G, { decay = opt.emaDecay, startIter = opt.emaStart }) or nil
local Gs = ema and ema.model or G        -- the generator samples and metrics come from
local dimZ = G.dimZ

local startIter = 0
if saved then
  ckpt.load(opt.resume .. "/ckpt", { G = G, D = D, optG = optG, optD = optD, ema = ema, loader = loader })
  tensor.setRNGState(saved.rng)
  startIter = saved.iter
end
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

local function uniformLabels(n) return tensor.randint(1, numClasses, n) end

local run = training.Run(opt, startIter)
local lossD, lossG
for iter = startIter + 1, opt.iters do
  G:train(); D:train()
  -- (1) update D: numDSteps steps, each on fresh reals, noise and labels
  for _ = 1, opt.numDSteps do
    optD:zeroGrad()
    local real, realY = loader:next()
    local z, fakeY = tensor.randn(opt.batchSize, dimZ), uniformLabels(opt.batchSize)
    local fake = tensor.noGrad(function() return G(z, G:embed(fakeY)) end)
    -- one D pass over [fake; real], as BigGAN-PyTorch's G_D
    local out = D(tensor.cat({ fake, real }, 1), tensor.cat({ fakeY, realY }, 1))
    local dFake, dReal = out:narrow(1, 1, opt.batchSize), out:narrow(1, opt.batchSize + 1, opt.batchSize)
    lossD = gan.hingeD(dReal, dFake)
    lossD:backward()
    if opt.DOrthoBeta > 0 then gan.addOrthoGrad(D, opt.DOrthoBeta) end
    optD:step()
  end
  -- (2) update G
  optG:zeroGrad()
  local z, fakeY = tensor.randn(opt.batchSize, dimZ), uniformLabels(opt.batchSize)
  lossG = gan.hingeG(D(G(z, G:embed(fakeY)), fakeY))
  lossG:backward()
  if opt.orthoBeta > 0 then gan.addOrthoGrad(G, opt.orthoBeta, { exclude = biggan.orthoExclude(G) }) end
  optG:step()
  if ema then ema:update(G, iter) end

  run:log(iter, { lossD = lossD, lossG = lossG })
  if opt.svEvery > 0 and iter % opt.svEvery == 0 then run:singularValues(iter, { G = G, D = D }) end
  if iter % opt.sampleEvery == 0 or iter == opt.iters then
    run:sheet(("iter-%07d"):format(iter), sample(sheetZ, sheetY), 10)
    run:sheet("latest", sample(sheetZ, sheetY), 10)
    run:plots({ "lossD", "lossG" })
  end
  if opt.evalEvery > 0 and (iter % opt.evalEvery == 0 or iter == opt.iters) then
    local r = run:evaluate(iter, function(n, i)
      local labels = {}
      for k = 0, n - 1 do labels[k + 1] = (i - 1 + k) % numClasses + 1 end   -- balanced classes
      local y = tensor.new(labels)
      return sample(training.withSeed(opt.seed + 7919 + i, function() return tensor.randn(n, dimZ) end), y), y
    end)
    if r and not opt.quiet then
      print(("\niter %d: domain FID %.2f, IS %.2f, class accuracy %.1f%% (%d EMA samples)"):format(iter, r.fid, r.is, 100 * r.accuracy, r.n))
    end
  end
  if iter % opt.saveEvery == 0 or iter == opt.iters then
    run:checkpoint(iter, { G = G, D = D, optG = optG, optD = optD, ema = ema, loader = loader, model = "biggan",
      meta = { channels = channels, numClasses = numClasses } })
  end
end
run:finish()
if not opt.quiet then print(("done: %s/samples/latest.png, checkpoints in %s/ckpt"):format(opt.out, opt.out)) end
