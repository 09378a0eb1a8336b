-- BigGAN's Table 1 (Brock et al. 2019) at the main job's scale, as sweep.lua rows over
-- scripts/configs/demo.lua: the baseline without BigGAN's three G features, each added in the
-- paper's order, then twice the batch and 1.5 times the width on top of the full recipe.
--   luagan scripts/sweep.lua --rows=scripts/configs/sweeps/biggan_table1.lua --seeds=3 --iters=4300 \
--     --parallel=2 --metric=fid --out=runs/table1
-- (docs/experiments.md has the table it gave)
return {
  { name = "baseline", shared = false, hier = false, GOrthoBeta = 0 },
  { name = "+shared", shared = true, hier = false, GOrthoBeta = 0 },
  { name = "+skip-z", shared = true, hier = true, GOrthoBeta = 0 },
  { name = "+ortho (the main job)" },
  { name = "x2 batch", batchSize = 32 },
  { name = "x1.5 width", ch = 18 },
}
