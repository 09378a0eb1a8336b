-- The main job's settings (make demo): BigGAN at 32x32 on Fashion-MNIST for a 15-minute
-- wall-clock budget on whatever CPU runs it. The architecture and the update rule are BigGAN's;
-- only the scale is reduced: ch 12, batch 16, two D steps per G step, Adam G 2e-4 / D 4e-4, an
-- EMA of decay 0.995 from a sixth of the budget, and a collapse rolled back to the last good
-- checkpoint. How each value was measured and chosen: docs/recipes.md.
--   luagan scripts/biggan.lua --config=scripts/configs/demo.lua [--minutes=30 ...]
return {
  ch = 12,
  numDSteps = 2,
  batchSize = 16,
  GLr = 2e-4,
  DLr = 4e-4,
  minutes = 15.0,
  iters = 1000000,      -- the budget ends the run
  emaDecay = 0.995,
  emaStart = 1 / 6,
  onCollapse = "rollback",
  sampleEvery = 250,
  saveEvery = 500,
  evalEvery = 1000,
  evalSamples = 2000,
  out = "runs/demo",
}
