-- evaluation.lua: every metric for a generator's samples against a data set split, shared by
-- scripts/eval.lua, the training scripts (their periodic FID) and scripts/sample.lua.
--
--   local evaluation = require("evaluation")
--   local ref = evaluation.reference { split = "test" }          -- features cached on disk
--   local r = evaluation.evaluate(sampler, ref, { n = 10000 })  -- sampler(n) -> images, labels
--   print(evaluation.format(r))
--
-- Domain metrics (Fashion-MNIST): features and class probabilities of the domain classifier
-- (scripts/lib/fmnist_classifier.lua: 128-d penultimate features, inputs (N, 1, 32, 32) in
-- [-1, 1]): FID, KID (100 subsets of min(1000, N)), precision/recall (k = 3), IS (10 splits),
-- and, for class-conditional samples, the classifier's accuracy on the intended classes.
-- Image statistics: PGGAN's SWD (x1e3 per Laplacian level, 128 patches per image) against as
-- many real images, and the MS-SSIM of consecutive sample pairs (real pairs for comparison).
-- With Inception weights (inception.lua): FID on pool3 and IS on the unbiased logits.
local classifier = require("fmnist_classifier")

local M = {}

local root = debug.getinfo(1, "S").source:match("^@(.*)/scripts/lib/") or "."
M.cacheDir = root .. "/runs/cache"

--- A data set split as the GAN scripts see it: images (N, 1, 32, 32) in [-1, 1] and labels 1..10.
function M.dataset(split)
  local ds = data.fashionMNIST { split = split or "test" }
  return classifier.prepare(ds.images), ds.labels, ds
end

--- A short fingerprint of a module's weights (so caches follow the weights they came from).
local function fingerprint(model)
  local s, q = 0, 0
  for _, t in ipairs(model:parameters()) do
    s = s + t:to("float64"):sum():item()
    q = q + (t:to("float64") ^ 2):sum():item()
  end
  return ("%.10e_%.10e"):format(s, q):gsub("[^%w]", "")
end

--- Runs the classifier over images in batches: features (N, 128), logits (N, 10).
function M.classify(model, images, batchSize)
  return metrics.extract(function(x) return model:featuresAndLogits(x) end, images, { batchSize = batchSize or 250 })
end

--- The reference statistics of a split: the classifier's features, statistics and logits
-- of every image, and the images themselves (for SWD and MS-SSIM). Features are cached in
-- runs/cache/, keyed by split and classifier weights. opts: split ("test"), classifier (a
-- loaded model), cache (true), inception (a loaded Inception-v3, optional).
function M.reference(opts)
  opts = opts or {}
  local split = opts.split or "test"
  local model = opts.classifier or classifier.load()
  local images, labels = M.dataset(split)
  local ref = { split = split, images = images, labels = labels, classifier = model, inception = opts.inception }
  local key = ("fmnist-%s-classifier-%s"):format(split, fingerprint(model))
  local path = M.cacheDir .. "/" .. key .. ".safetensors"
  local cached = opts.cache ~= false and io.open(path, "rb")
  if cached then
    cached:close()
    local t = tensor.load(path)
    ref.features, ref.logits = t.features, t.logits
  else
    ref.features, ref.logits = M.classify(model, images)
    if opts.cache ~= false then
      paths.mkdir(M.cacheDir)
      tensor.save(path, { features = ref.features, logits = ref.logits })
    end
  end
  ref.stats = metrics.featureStats(ref.features)
  if opts.inception then
    local ipath = M.cacheDir .. ("/fmnist-%s-inception-%s.safetensors"):format(split, fingerprint(opts.inception))
    local f = opts.cache ~= false and io.open(ipath, "rb")
    if f then
      f:close()
      ref.inceptionStats = metrics.loadStats(ipath)
    else
      local pool3 = metrics.extract(function(x) return opts.inception:features((x + 1) / 2) end, images, { batchSize = 50 })
      ref.inceptionStats = metrics.featureStats(pool3)
      if opts.cache ~= false then
        paths.mkdir(M.cacheDir)
        metrics.saveStats(ipath, ref.inceptionStats)
      end
    end
  end
  return ref
end

--- Draws n samples from sampler(count, offset) -> images (count, 1, 32, 32) in [-1, 1] and
-- optionally the intended labels, in batches; returns images and labels (or nil).
function M.draw(sampler, n, batchSize, split)
  batchSize = batchSize or 250
  local rank, ranks = split and split.rank or 0, split and split.ranks or 1
  local images, labels = {}, {}
  -- Under mpirun (split = {rank, ranks}) each rank draws every ranks-th batch and all of them
  -- are gathered, in batch order, on every rank: the same set as one process draws.
  local starts = {}
  for i = 1, n, batchSize do starts[#starts + 1] = i end
  if #starts < ranks then rank, ranks = 0, 1 end          -- too few batches to share: every rank draws them all
  tensor.noGrad(function()
    for b = rank + 1, #starts, ranks do
      local i = starts[b]
      local x, y = sampler(math.min(batchSize, n - i + 1), i)
      images[#images + 1] = x:detach()
      if y then labels[#labels + 1] = y end
    end
  end)
  if ranks == 1 then return tensor.cat(images, 1), #labels > 0 and tensor.cat(labels, 1) or nil end
  -- gather: pad every rank's part to the same number of batches, then put batches back in order
  local rounds = (#starts + ranks - 1) // ranks
  local function gather(parts, like)
    local padded = {}
    for k = 1, rounds do
      local b = (k - 1) * ranks + rank + 1
      local size = b <= #starts and math.min(batchSize, n - starts[b] + 1) or 0
      local part = parts[k]
      local full = tensor.zeros({ batchSize, table.unpack(like, 2) })
      if part then full:narrow(1, 1, size):copy(part) end
      padded[k] = full
    end
    local all = dist.allGather(tensor.cat(padded, 1):contiguous())     -- (ranks * rounds * batchSize, ...)
    local out = {}
    for b = 1, #starts do
      local r, k = (b - 1) % ranks, (b - 1) // ranks
      out[b] = all:narrow(1, (r * rounds + k) * batchSize + 1, math.min(batchSize, n - starts[b] + 1))
    end
    return tensor.cat(out, 1)
  end
  local x = gather(images, images[1]:shape())
  local y = #labels > 0 and gather(labels, labels[1]:shape()) or nil
  return x, y
end

--- Every metric for `samples` (images in [-1, 1], optional labels) against `ref`.
-- opts: which (list of metric names; default all that apply), kidSubsetSize (1000),
-- swdImages (max images for SWD, default all), seed (2020 for KID and SWD).
function M.metricsOf(images, labels, ref, opts)
  opts = opts or {}
  local n = images:size(1)
  local want = {}
  for _, m in ipairs(opts.which or { "fid", "kid", "pr", "is", "accuracy", "coverage", "swd", "msssim", "inception" }) do
    want[m] = true
  end
  local r = { n = n, split = ref.split, referenceN = ref.images:size(1) }
  local t0 = tensor.clock()
  local feats, logits = M.classify(ref.classifier, images)
  if want.fid then r.fid = metrics.fidFromStats(metrics.featureStats(feats), ref.stats) end
  if want.kid then
    local m = math.min(opts.kidSubsetSize or 1000, n, ref.features:size(1))
    r.kid, r.kidStd = metrics.kid(feats, ref.features, { subsetSize = m, seed = opts.seed or 2020 })
    r.kidSubsetSize = m
  end
  if want.pr then
    local m = math.min(n, ref.features:size(1), opts.prSamples or 10000)
    r.precision, r.recall = metrics.precisionRecall(ref.features:narrow(1, 1, m), feats:narrow(1, 1, m))
    r.prSamples = m
  end
  if want.is then r.is, r.isStd = metrics.inceptionScore(logits, { logits = true }) end
  if want.accuracy and labels then
    r.accuracy = logits:argmax(2):view(-1):eq(labels:view(-1)):mean():item()
  end
  if want.coverage then
    -- mode coverage: the classifier's class histogram of the samples; a class is covered when
    -- it holds at least 1% of them; KL(histogram || uniform) in nats (0: every class equally)
    local classes = logits:size(2)
    local predicted = logits:argmax(2):view(-1)
    local counts, covered, kl = {}, 0, 0
    for c = 1, classes do
      counts[c] = predicted:eq(c):sum():item()
      local p = counts[c] / n
      if p >= 0.01 then covered = covered + 1 end
      if p > 0 then kl = kl + p * math.log(p * classes) end
    end
    r.classCounts, r.classesCovered, r.coverageKL, r.classes = counts, covered, kl, classes
  end
  if want.swd then
    local m = math.min(n, ref.images:size(1), opts.swdImages or n)
    local s = metrics.swd(ref.images:narrow(1, 1, m), images:narrow(1, 1, m), { seed = opts.seed or 2020 })
    r.swd, r.swdLevels, r.swdResolutions, r.swdImages = s.average, s.values, s.resolutions, m
  end
  if want.msssim then
    local pairs = math.min(n, opts.msssimImages or 10000) // 2 * 2
    r.msssim = metrics.msssimDiversity(images:narrow(1, 1, pairs))
    r.msssimReal = metrics.msssimDiversity(ref.images:narrow(1, 1, math.min(pairs, ref.images:size(1) // 2 * 2)))
    r.msssimPairs = pairs // 2
  end
  if want.inception and ref.inception then
    local pool3, _, unbiased = metrics.extract(function(x) return ref.inception((x + 1) / 2) end, images, { batchSize = 50 })
    r.inceptionFid = metrics.fidFromStats(metrics.featureStats(pool3), ref.inceptionStats)
    r.inceptionIs, r.inceptionIsStd = metrics.inceptionScore(unbiased, { logits = true })
  end
  r.seconds = tensor.clock() - t0
  return r
end

--- Samples n images from `sampler` and computes every metric (see metricsOf).
function M.evaluate(sampler, ref, opts)
  opts = opts or {}
  local images, labels = M.draw(sampler, opts.n or 10000, opts.batchSize)
  return M.metricsOf(images, labels, ref, opts), images, labels
end

--- A plain-text table of the results.
function M.format(r)
  local rows = {}
  local function row(name, value, note)
    if value ~= nil then rows[#rows + 1] = ("  %-22s %12s   %s"):format(name, value, note or "") end
  end
  row("samples", tostring(r.n), ("vs Fashion-MNIST %s (%d images)"):format(r.split or "?", r.referenceN or 0))
  row("FID (domain)", r.fid and ("%.3f"):format(r.fid), "classifier 128-d features")
  row("KID (domain) x1e3", r.kid and ("%.3f ± %.3f"):format(1e3 * r.kid, 1e3 * r.kidStd), ("100 subsets of %s"):format(r.kidSubsetSize))
  row("precision", r.precision and ("%.4f"):format(r.precision), ("k = 3, %s samples"):format(r.prSamples))
  row("recall", r.recall and ("%.4f"):format(r.recall))
  row("IS (domain)", r.is and ("%.3f ± %.3f"):format(r.is, r.isStd), "classifier softmax, 10 splits")
  row("class accuracy", r.accuracy and ("%.2f%%"):format(100 * r.accuracy), "classifier on the intended labels")
  if r.classCounts then
    local shares = {}
    for c, k in ipairs(r.classCounts) do shares[c] = ("%.1f"):format(100 * k / r.n) end
    row("classes covered", ("%d/%d"):format(r.classesCovered, r.classes), "a class counts at >= 1% of the samples")
    row("KL(hist || uniform)", ("%.4f"):format(r.coverageKL), "class % " .. table.concat(shares, " "))
  end
  if r.swd then
    local per = {}
    for i, v in ipairs(r.swdLevels) do per[i] = ("%d: %.2f"):format(r.swdResolutions[i], v) end
    row("SWD x1e3 (avg)", ("%.3f"):format(r.swd), table.concat(per, ", ") .. (" (%d images)"):format(r.swdImages))
  end
  row("MS-SSIM", r.msssim and ("%.4f"):format(r.msssim), r.msssimReal and ("real data %.4f, %d pairs"):format(r.msssimReal, r.msssimPairs))
  row("FID (Inception)", r.inceptionFid and ("%.3f"):format(r.inceptionFid), "pool3, pytorch-fid network")
  row("IS (Inception)", r.inceptionIs and ("%.3f ± %.3f"):format(r.inceptionIs, r.inceptionIsStd), "1008-way logits, no bias")
  return table.concat(rows, "\n")
end

--- The results as JSON-ready scalars (drops nothing numeric).
function M.toJSON(r)
  local out = {}
  for k, v in pairs(r) do
    if type(v) == "number" or type(v) == "string" then out[k] = v
    elseif type(v) == "table" then out[k] = v end
  end
  return json.encode(out, 2)
end

return M
