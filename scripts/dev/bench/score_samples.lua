-- Judges a safetensors file {images (N,1,32,32) in [-1,1], labels 1..10} with the project's own
-- Fashion-MNIST classifier: domain FID vs the test split, IS, class accuracy.
-- Usage (from the project root): luagan scripts/dev/bench/score_samples.lua FILE.safetensors
package.path = "scripts/lib/?.lua;" .. package.path
local evaluation = require("evaluation")
local t = tensor.load(arg[1])
local r = evaluation.metricsOf(t.images, t.labels, evaluation.reference { split = "test" }, { which = { "fid", "is", "accuracy" } })
print(("%s: n %d, domain FID %.2f, IS %.2f, class accuracy %.1f%%"):format(arg[1], r.n, r.fid, r.is, 100 * r.accuracy))
