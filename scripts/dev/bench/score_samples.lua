-- Judges a safetensors file {images (N,1,32,32) in [-1,1], labels 1..10} with the project's own
-- Fashion-MNIST classifier: domain FID vs the test split, IS, class accuracy. Without labels
-- (an unconditional generator: the PGGAN twin's samples) it gives what eval.lua gives a PGGAN
-- checkpoint: domain FID and IS, mode coverage, SWD per Laplacian level and MS-SSIM.
-- Against the test split by default; a second argument names the split (PGGAN's protocol: train).
-- Usage: luagan scripts/dev/bench/score_samples.lua FILE.safetensors [test|train]
local evaluation = require("evaluation")
local t = tensor.load(arg[1])
local ref = evaluation.reference { split = arg[2] or "test" }
if t.labels then
  local r = evaluation.metricsOf(t.images, t.labels, ref, { which = { "fid", "is", "accuracy" } })
  print(("%s: n %d, domain FID %.2f, IS %.2f, class accuracy %.1f%%"):format(arg[1], r.n, r.fid, r.is, 100 * r.accuracy))
else
  local r = evaluation.metricsOf(t.images, nil, ref, { which = { "fid", "is", "coverage", "swd", "msssim" } })
  print(("%s (no labels: PGGAN's evaluation)"):format(arg[1]))
  print(evaluation.format(r))
end
