-- The main job's settings (make demo): BigGAN at 32x32 on Fashion-MNIST, small enough to train
-- in about 15 minutes on 2 cores. The architecture and update rule are BigGAN's; only the
-- scale is reduced: ch 8 (widths 32), one D step per G step, 2000 iterations, and an EMA that
-- starts early and averages over ~1000 steps, since the run is short.
--   luagan scripts/biggan.lua --config=scripts/configs/demo.lua [--iters=4000 ...]
return {
  ch = 8,
  numDSteps = 1,
  batchSize = 50,
  GLr = 2e-4,
  DLr = 2e-4,
  iters = 2000,
  emaDecay = 0.999,
  emaStart = 500,
  sampleEvery = 250,
  saveEvery = 500,
  evalEvery = 1000,
  evalSamples = 2000,
  out = "runs/demo",
}
