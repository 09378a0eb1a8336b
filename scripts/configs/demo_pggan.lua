-- PGGAN's main job (make demo-pggan): progressive growing on Fashion-MNIST at 32x32,
-- unconditional, for a 15-minute wall-clock budget on whatever CPU runs it. Everything is the
-- paper's (equalized learning rate, pixelnorm, minibatch stddev, WGAN-GP with drift, Adam
-- reset at every level change, fades of G's output, D's input and the reals, Gs), scaled down;
-- the growth schedule is expressed as shares of the budget, so a slow CPU reaches 32x32 too.
-- How each value was measured and chosen: docs/recipes.md ("How PGGAN's main job was scheduled").
--   luagan scripts/pggan.lua --config=scripts/configs/demo_pggan.lua [--minutes=30 ...]
return {
  growth = "shares",
  levelShares = { [4] = 0.5, [8] = 1, [16] = 2, [32] = 8 },   -- 70% of the budget at 32x32, 42% stable
  fadeShare = 0.4,
  fmapBase = 1024,
  fmapMax = 32,
  latent = 128,
  batchSize = 16,
  minutes = 15.0,
  sampleEvery = 250,
  saveEvery = 500,
  evalEvery = 0,           -- evaluated once at the end, at full resolution (make demo-pggan)
  out = "runs/demo-pggan",
}
