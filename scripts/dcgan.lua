-- dcgan.lua: the classic DCGAN (Radford et al. 2016) in the shape of soumith/dcgan.torch, the
-- small, fast baseline: options, the networks (scripts/lib/models/dcgan.lua), then per
-- iteration (1) update D, (2) update G, with the non-saturating loss and Adam(2e-4, 0.5).
--
-- The defaults are sized for a CPU (widths 32, batch 32, a 10-minute budget); dcgan.torch's
-- are --ngf=64 --ndf=64 --batchSize=64.
--   luagan scripts/dcgan.lua [--minutes=10] [--iters=5000] [--ngf=64] [--out=runs/dcgan]
local training = require("training")
local dcgan = require("models.dcgan")

local spec = training.concat({
  { "nz", 100, "latent size", min = 1, max = 4096 },
  { "ngf", 32, "G width (dcgan.torch: 64)", min = 1, max = 2048 },
  { "ndf", 32, "D width (dcgan.torch: 64)", min = 1, max = 2048 },
  { "batchSize", 32, "samples per step (dcgan.torch: 64)", min = 1, max = 65536 },
  { "lr", 2e-4, "Adam learning rate", min = 0, max = 100 },
  { "beta1", 0.5, "Adam beta1", min = 0, max = 0.9999 },
}, training.smallDataSpec(),
  training.commonSpec { iters = 1000000, minutes = 10.0, out = "runs/dcgan", sampleEvery = 250, saveEvery = 500, evalEvery = 0,
                        svEvery = 0 })

local opt, saved = training.start(spec, "DCGAN: transposed-conv generator, strided-conv discriminator.")
local dataset, loader, channels = training.data(opt, opt.batchSize)
if opt.resolution ~= 32 then io.stderr:write("dcgan.lua builds 32x32 networks: use --resolution=32\n"); os.exit(2) end
local G, D = dcgan.fromOptions(opt, channels)
local optG = optim.Adam(G:parameters(), { lr = opt.lr, betas = { opt.beta1, 0.999 } })
local optD = optim.Adam(D:parameters(), { lr = opt.lr, betas = { opt.beta1, 0.999 } })

local sheetZ = training.withSeed(opt.seed + 1000003, function() return tensor.randn(64, opt.nz) end)

local function sample(z)
  return training.withFrozenBuffers(G, function() return tensor.noGrad(function() return G(z) end) end)
end

-- Small data: DiffAugment on everything D sees (ADA's probability with adaTarget), LeCam.
local aids = training.SmallData(opt, saved)

local run = training.Run(opt, {
  objects = { G = G, D = D, optG = optG, optD = optD, loader = loader },
  crossReplica = { G, D },
  info = { model = "dcgan", meta = { channels = channels, classNames = dataset.classNames } },
  values = function() return { smallData = aids:state() } end,
  monitor = { G = G, D = D },
  sheet = function() return sample(sheetZ), 8 end,
  evaluate = function(n, i)
    return sample(training.withSeed(opt.seed + 7919 + i, function() return tensor.randn(n, opt.nz) end))
  end,
}, saved)

while run:next() do
  -- (1) update D: maximize log D(x) + log(1 - D(G(z)))
  optD:zeroGrad()
  local real = loader:next()
  local fake = G(tensor.randn(training.localBatch(opt.batchSize), opt.nz))   -- this rank's share
  local dReal, dFake = D(aids:augment(real)), D(aids:augment(fake:detach()))
  local lossD = aids:dLoss(gan.logisticD(dReal, dFake), dReal, dFake, run.iter)
  training.lastBackward(lossD, D)   -- under mpirun, gradients start averaging while it runs
  training.syncGradients(D)   -- under mpirun: the mean over ranks (a no-op in one process)
  optD:step()
  -- (2) update G: maximize log D(G(z)) (the same fake batch, as dcgan.torch)
  optG:zeroGrad()
  D:requiresGrad(false)     -- no D weight gradients in G's step
  local lossG = gan.logisticG(D(aids:augment(fake)))
  training.lastBackward(lossG, G)
  D:requiresGrad(true)
  training.syncGradients(G)
  optG:step()

  run:afterStep(aids:scalars { lossD = lossD, lossG = lossG }, tensor.cat({ dReal:detach(), dFake:detach() }, 1))
end
run:finish()
if not opt.quiet then print(("done: %s/samples/latest.png, checkpoints in %s/ckpt"):format(opt.out, opt.out)) end
