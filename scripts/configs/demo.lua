-- The main job's settings (make demo): BigGAN at 32x32 on Fashion-MNIST, trained for a
-- 15-minute wall-clock budget on whatever CPU runs it. The architecture and the update rule are
-- BigGAN's; only the scale is reduced: ch 8 (widths 32), batch 32, one D step per G step, and
-- an EMA over ~1000 steps that starts after a sixth of the budget (iteration ~500 on 2 cores),
-- since the run is short. A collapse (dead D, exploding spectra) rolls back to the last good
-- checkpoint with a fresh seed rather than wasting the rest of the budget.
-- (Measured at a fixed 3000 iterations, 13.6 minutes on 2 cores: class accuracy of 2,000 EMA
-- samples under the domain classifier 42.1% at 1000, 54.7% at 2000, 61.2% at 3000. At width 16
-- it learns slower per minute; with D's lr at 4e-4, D's ReLUs died near step 900.)
--   luagan scripts/biggan.lua --config=scripts/configs/demo.lua [--minutes=30 ...]
return {
  ch = 8,
  numDSteps = 1,
  batchSize = 32,
  GLr = 2e-4,
  DLr = 2e-4,
  minutes = 15.0,
  iters = 1000000,      -- the budget ends the run
  emaDecay = 0.999,
  emaStart = 1 / 6,
  onCollapse = "rollback",
  sampleEvery = 250,
  saveEvery = 500,
  evalEvery = 1000,
  evalSamples = 2000,
  out = "runs/demo",
}
