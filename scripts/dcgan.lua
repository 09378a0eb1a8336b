-- dcgan.lua: the classic DCGAN (Radford et al. 2016) in the shape of soumith/dcgan.torch, the
-- small, fast baseline: options, the networks (scripts/lib/models/dcgan.lua), then per
-- iteration (1) update D, (2) update G, with the non-saturating loss and Adam(2e-4, 0.5).
--
--   luagan scripts/dcgan.lua [--iters=5000] [--ngf=64] [--out=runs/dcgan]
local training = require("training")
local dcgan = require("models.dcgan")

local spec = training.concat({
  { "nz", 100, "latent size" },
  { "ngf", 64, "G width" },
  { "ndf", 64, "D width" },
  { "batchSize", 64, "samples per step" },
  { "lr", 2e-4, "Adam learning rate" },
  { "beta1", 0.5, "Adam beta1" },
}, training.commonSpec { iters = 5000, out = "runs/dcgan", sampleEvery = 500, saveEvery = 1000, evalEvery = 0, svEvery = 0 })

local opt, saved = training.start(spec, "DCGAN: transposed-conv generator, strided-conv discriminator.")
local _, loader, channels = training.data(opt, opt.batchSize)
if opt.resolution ~= 32 then io.stderr:write("dcgan.lua builds 32x32 networks: use --resolution=32\n"); os.exit(2) end
local G = dcgan.Generator { nz = opt.nz, ngf = opt.ngf, nc = channels }
local D = dcgan.Discriminator { ndf = opt.ndf, nc = channels }
local optG = optim.Adam(G:parameters(), { lr = opt.lr, betas = { opt.beta1, 0.999 } })
local optD = optim.Adam(D:parameters(), { lr = opt.lr, betas = { opt.beta1, 0.999 } })

local startIter = 0
if saved then
  ckpt.load(opt.resume .. "/ckpt", { G = G, D = D, optG = optG, optD = optD, loader = loader })
  tensor.setRNGState(saved.rng)
  startIter = saved.iter
end
local sheetZ = training.withSeed(opt.seed + 1000003, function() return tensor.randn(64, opt.nz) end)

local run = training.Run(opt, startIter)
for iter = startIter + 1, opt.iters do
  -- (1) update D: maximize log D(x) + log(1 - D(G(z)))
  optD:zeroGrad()
  local real = loader:next()
  local fake = G(tensor.randn(opt.batchSize, opt.nz))
  local lossD = gan.logisticD(D(real), D(fake:detach()))
  lossD:backward()
  optD:step()
  -- (2) update G: maximize log D(G(z)) (the same fake batch, as dcgan.torch)
  optG:zeroGrad()
  local lossG = gan.logisticG(D(fake))
  lossG:backward()
  optG:step()

  run:log(iter, { lossD = lossD, lossG = lossG })
  if opt.svEvery > 0 and iter % opt.svEvery == 0 then run:singularValues(iter, { G = G, D = D }) end
  if iter % opt.sampleEvery == 0 or iter == opt.iters then
    local images = training.withFrozenBuffers(G, function()
      return tensor.noGrad(function() return G(sheetZ) end)
    end)
    run:sheet(("iter-%07d"):format(iter), images, 8)
    run:sheet("latest", images, 8)
    run:plots({ "lossD", "lossG" })
  end
  if opt.evalEvery > 0 and (iter % opt.evalEvery == 0 or iter == opt.iters) then
    local r = run:evaluate(iter, function(n, i)
      local z = training.withSeed(opt.seed + 7919 + i, function() return tensor.randn(n, opt.nz) end)
      return training.withFrozenBuffers(G, function() return tensor.noGrad(function() return G(z) end) end)
    end)
    if r and not opt.quiet then print(("\niter %d: domain FID %.2f, IS %.2f (%d samples)"):format(iter, r.fid, r.is, r.n)) end
  end
  if iter % opt.saveEvery == 0 or iter == opt.iters then
    run:checkpoint(iter, { G = G, D = D, optG = optG, optD = optD, loader = loader, model = "dcgan", meta = { channels = channels } })
  end
end
run:finish()
if not opt.quiet then print(("done: %s/samples/latest.png, checkpoints in %s/ckpt"):format(opt.out, opt.out)) end
