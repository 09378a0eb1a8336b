-- PGGAN at paper scale: the Theano branch's CIFAR-10 settings (config.py, the run behind the
-- paper's unsupervised IS of 8.80): 128 feature maps, latent 128, 400 kimg to stabilise and
-- 400 to fade each level, 20,000 kimg in all, minibatch 16, Adam 1e-3 (0, 0.99), WGAN-GP with
-- gamma 750 (the gradient norm target), drift 0.001, Gs 0.999. Weeks on a CPU; pggan.lua's
-- defaults are the same recipe sized for minutes.
--   luagan scripts/pggan.lua --config=scripts/configs/pggan_paper.lua --dataset=cifar10 --dataRoot=DIR
return {
  growth = "kimg",
  fmapBase = 4096,
  fmapMax = 128,
  latent = 128,
  trainKimg = 400.0,
  transKimg = 400.0,
  totalKimg = 20000.0,
  batchSize = 16,
  gpTarget = 750.0,
  minutes = 0.0,
  sampleEvery = 2000,
  saveEvery = 5000,
  evalEvery = 10000,
  out = "runs/pggan-paper",
}
