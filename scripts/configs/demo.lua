-- The main job's settings (make demo): BigGAN at 32x32 on Fashion-MNIST, small enough to train
-- in about 15 minutes on 2 cores. The architecture and the update rule are BigGAN's; only the
-- scale is reduced: ch 8 (widths 32), batch 32, one D step per G step, 3000 iterations, and an
-- EMA that starts at 500 and averages over ~1000 steps, since the run is short.
-- (Measured by make demo on 2 cores: 13.6 minutes; class accuracy of 2,000 EMA samples under
-- the domain classifier 42.1% at 1000, 54.7% at 2000, 61.2% at 3000. At width 16 it learns
-- slower per minute; with D's lr at 4e-4, D's ReLUs died near step 900.)
--   luagan scripts/biggan.lua --config=scripts/configs/demo.lua [--iters=6000 ...]
return {
  ch = 8,
  numDSteps = 1,
  batchSize = 32,
  GLr = 2e-4,
  DLr = 2e-4,
  iters = 3000,
  emaDecay = 0.999,
  emaStart = 500,
  sampleEvery = 250,
  saveEvery = 500,
  evalEvery = 1000,
  evalSamples = 2000,
  out = "runs/demo",
}
