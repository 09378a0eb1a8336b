-- The small-data tools on a subset of Fashion-MNIST, as sweep.lua rows over
-- scripts/configs/demo.lua: no augmentation, DiffAugment (Zhao et al. 2020, all three policies),
-- DiffAugment with LeCam regularization (Tseng et al. 2021, lambda 0.3 from iteration 1,000), and
-- ADA (Karras et al. 2020: DiffAugment's operations applied with the adaptive probability p, target
-- 0.6, p moving at the reference's speed of 500 kimg from 0 to 1).
-- The subset is drawn with each cell's seed, so the rows of one seed share their images.
--   luagan scripts/sweep.lua --rows=scripts/configs/sweeps/small_data.lua --set='--perClass=60' \
--     --seeds=3 --iters=7000 --parallel=2 --metric=fid --out=runs/small1
-- and on 10%, the first four rows: --set='--perClass=600' --only='none;DiffAugment;DiffAugment + LeCam;ADA'
-- (docs/experiments.md has the tables they gave)
return {
  { name = "none" },
  { name = "DiffAugment", diffAugment = "color,translation,cutout" },
  { name = "DiffAugment + LeCam", diffAugment = "color,translation,cutout", lecam = 0.3 },
  { name = "ADA", diffAugment = "color,translation,cutout", adaTarget = 0.6 },
  -- LeCam squeezes D's outputs together, under the 5% spread the collapse watch calls a dead D:
  -- the same row with the watch only warning, to see what LeCam does when left to run
  { name = "DiffAugment + LeCam, watch off", diffAugment = "color,translation,cutout", lecam = 0.3, onCollapse = "warn" },
}
