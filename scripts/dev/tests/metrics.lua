-- Sanity cases for the metric formulas (values known in closed form) and their errors:
-- mismatched feature sizes, too few samples, NaN input, bad options, for every function.
local T = require("testing")
local check = T.check

tensor.manualSeed(3)
local a = tensor.randn(400, 6, { dtype = "float64" })
local b = tensor.randn(300, 6, { dtype = "float64" }) * 1.2 + 0.3

T.test("FID of a set with itself is 0; equal covariances give exactly the squared mean distance", function()
  check(math.abs(metrics.fid(a, a)) < 1e-10, "fid(a, a) = " .. metrics.fid(a, a))
  local s = metrics.featureStats(b)
  local shifted = { mu = s.mu + tensor.new({ 1, -2, 0.5, 0, 0, 3 }, { dtype = "float64" }), sigma = s.sigma, n = s.n }
  local d = metrics.fidFromStats(s, shifted)
  check(math.abs(d - 14.25) < 1e-10, ("equal covariances: %.15g, expected 14.25"):format(d))
  -- adding a constant to every feature changes μ, not Σ
  T.close(metrics.fid(a, a + 2), 6 * 4, 1e-9, 0, "fid(a, a + 2)")
  check(metrics.fid(a, b) > 0.5, "different sets give a clearly positive FID")
end)

T.test("FID follows the references when a covariance is singular (N <= D, dead units)", function()
  local few = tensor.randn(4, 6, { dtype = "float64" })
  local dead = tensor.cat({ tensor.zeros(50, 1, { dtype = "float64" }), tensor.randn(50, 5, { dtype = "float64" }) }, 2)
  for _, x in ipairs { few, dead } do
    local d = metrics.fid(x, b)
    check(d == d and d > 0 and d < 1e6, "finite positive FID for a singular covariance, got " .. d)
  end
  check(math.abs(metrics.fid(dead, dead)) < 1e-7, "a singular set against itself: " .. metrics.fid(dead, dead))
end)

T.test("feature statistics are float64 mean and (N-1) covariance, and round-trip through a file", function()
  local x = tensor.new({ { 0, 0 }, { 2, 0 }, { 0, 4 }, { 2, 4 } })
  local s = metrics.featureStats(x)
  T.close(s.mu, tensor.new({ 1, 2 }, { dtype = "float64" }), 0, 0, "mu")
  T.close(s.sigma, tensor.new({ { 4 / 3, 0 }, { 0, 16 / 3 } }, { dtype = "float64" }), 1e-15, 0, "sigma")
  check(s.n == 4 and s.mu:dtype() == "float64", "n and dtype")
  local path = os.tmpname()
  metrics.saveStats(path, s)
  local back = metrics.loadStats(path)
  os.remove(path)
  check(back.n == 4 and metrics.fidFromStats(s, back) == 0, "saved statistics reload exactly")
end)

T.test("inception score: confident and balanced predictions give K, uniform ones give 1", function()
  local K, perClass = 5, 4
  local rows = {}
  for _ = 1, perClass do                       -- each split of 10 sees every class equally
    for c = 1, K do
      for _ = 1, 2 do
        local r = {}
        for j = 1, K do r[j] = (j == c) and 1 or 0 end
        rows[#rows + 1] = r
      end
    end
  end
  local m, s = metrics.inceptionScore(tensor.new(rows), { splits = 4 })
  T.close(m, K, 1e-12, 0, "IS of one-hot balanced predictions")
  T.close(s, 0, 1e-12, 0, "its std")
  T.close((metrics.inceptionScore(tensor.full({ 20, 7 }, 1 / 7))), 1, 1e-12, 0, "IS of uniform predictions")
  local logits = tensor.randn(100, 10) * 3
  local ml = metrics.inceptionScore(logits, { logits = true })
  T.close(ml, (metrics.inceptionScore(logits:softmax(2))), 1e-5, 1e-5, "logits and probabilities agree")
end)

T.test("KID: near 0 for two samples of one distribution, large for shifted ones", function()
  local x, y = tensor.randn(600, 8, { dtype = "float64" }), tensor.randn(600, 8, { dtype = "float64" })
  local same, sameStd = metrics.kid(x, y, { subsets = 20, subsetSize = 200 })
  local shifted = metrics.kid(x, y + 0.5, { subsets = 20, subsetSize = 200 })
  check(math.abs(same) < 3 * sameStd + 1e-3, ("same distribution: %g ± %g"):format(same, sameStd))
  check(shifted > 20 * math.abs(same), ("shifted: %g vs same %g"):format(shifted, same))
  local again = metrics.kid(x, y, { subsets = 20, subsetSize = 200 })
  check(again == same, "the default seed makes KID reproducible")
end)

T.test("precision and recall: identical sets 1 and 1, far-apart sets 0 and 0", function()
  local p, r, f1 = metrics.precisionRecall(a, a)
  check(p == 1 and r == 1 and math.abs(f1 - 1) < 1e-12, ("identical: %g %g %g"):format(p, r, f1))
  p, r = metrics.precisionRecall(a, a + 100)
  check(p == 0 and r == 0, ("far apart: %g %g"):format(p, r))
  p, r = metrics.precisionRecall(a, a * 0.1)   -- the fake set collapsed into the middle of the real one
  check(p > 0.9 and r < 0.5, ("collapsed fakes: precision %g (high), recall %g (low)"):format(p, r))
end)

local function smooth(n, c, size, blur)
  local x = tensor.rand(n, c, size, size)
  for _ = 1, blur do x = x:avgPool2d(3, { stride = 1, padding = 1, countIncludePad = false }) end
  return (x - x:min()) / (x:max() - x:min()) * 2 - 1
end

T.test("SWD: small between two draws of one distribution, larger for a different one", function()
  local x, y, z = smooth(64, 1, 32, 2), smooth(64, 1, 32, 2), smooth(64, 1, 32, 0)
  local same, other = metrics.swd(x, y), metrics.swd(x, z)
  check(#same.values == 2 and same.resolutions[1] == 32 and same.resolutions[2] == 16, "two levels for 32px images")
  check(other.average > 2.5 * same.average, ("different %g vs same %g"):format(other.average, same.average))
  local again = metrics.swd(x, y)
  check(again.average == same.average, "the default seed makes SWD reproducible")
end)

T.test("MS-SSIM: 1 for identical images, lower for unrelated ones; diversity pairs neighbours", function()
  local x, y = smooth(4, 3, 32, 1), smooth(4, 3, 32, 1)
  T.close(metrics.msssim(x, x), 1, 1e-12, 0, "msssim(x, x)")
  local unrelated = metrics.msssim(x, y)
  check(unrelated < 0.5, "unrelated images: " .. unrelated)
  local pairs = tensor.cat({ x, x }, 1):indexSelect(1, { 1, 5, 2, 6, 3, 7, 4, 8 })
  T.close(metrics.msssimDiversity(pairs), 1, 1e-12, 0, "diversity of identical pairs")
  T.close(metrics.msssimDiversity(tensor.cat({ x, y }, 1):indexSelect(1, { 1, 5, 2, 6, 3, 7, 4, 8 })), unrelated, 1e-12, 0,
    "diversity = mean MS-SSIM of consecutive pairs")
end)

-- Errors: every exported metrics function has bad calls, each must raise a Lua error, and the
-- listed ones must say what was wrong.
local nan = tensor.randn(20, 6); nan[3][2] = 0 / 0
local img = smooth(4, 1, 32, 1)
local messages = {
  { "same feature size", function() return metrics.fid(a, tensor.randn(30, 5)) end },
  { "too few samples in featsA", function() return metrics.fid(a:narrow(1, 1, 1), b) end },
  { "NaN or infinite values (first at row 3, column 2)", function() return metrics.fid(nan, b) end },
  { "same feature size", function() return metrics.kid(a, tensor.randn(300, 5), { subsetSize = 100 }) end },
  { "fewer than subsetSize=1000", function() return metrics.kid(a, b) end },
  { "NaN or infinite", function() return metrics.kid(nan, b, { subsetSize = 10 }) end },
  { "same feature size", function() return metrics.precisionRecall(a, tensor.randn(30, 5)) end },
  { "too few samples in fake: need at least 4", function() return metrics.precisionRecall(a, b:narrow(1, 1, 3)) end },
  { "NaN or infinite", function() return metrics.precisionRecall(a, nan) end },
  { "too few samples in probs: need at least 10", function() return metrics.inceptionScore(tensor.full({ 5, 3 }, 1 / 3)) end },
  { "sum to 1", function() return metrics.inceptionScore(tensor.rand(20, 3) * 0.5) end },
  { "probabilities in [0, 1]", function() return metrics.inceptionScore(tensor.randn(20, 3)) end },
  { "NaN or infinite", function() return metrics.inceptionScore(nan, { logits = true }) end },
  { "unknown option 'split' (did you mean 'splits'?)", function() return metrics.inceptionScore(tensor.full({ 20, 3 }, 1 / 3), { split = 2 }) end },
  { "option 'seed' must be an integer in 0..4294967295", function() return metrics.kid(a, b, { seed = -1 }) end },
  { "same shape", function() return metrics.swd(img, smooth(4, 1, 16, 0)) end },
  { "divisible by 4", function() return metrics.swd(tensor.zeros(2, 1, 66, 66), tensor.zeros(2, 1, 66, 66)) end },
  { "constant in channel 1", function() return metrics.swd(tensor.zeros(2, 1, 32, 32), img:narrow(1, 1, 2)) end },
  { "even number", function() return metrics.msssimDiversity(img:narrow(1, 1, 3)) end },
  { "divisible by 16", function() return metrics.msssim(tensor.zeros(2, 1, 28, 28), tensor.zeros(2, 1, 28, 28)) end },
  { "statistics table", function() return metrics.fidFromStats({ mu = tensor.zeros(3) }, metrics.featureStats(a)) end },
  { "different feature sizes", function() return metrics.fidFromStats(metrics.featureStats(a), metrics.featureStats(tensor.randn(9, 2))) end },
}
T.test("errors name the problem", function()
  for _, m in ipairs(messages) do T.checkError(m[1], m[2]) end
end)

local cases = {
  featureStats = { function() return metrics.featureStats() end, function() return metrics.featureStats(tensor.zeros(5)) end },
  fid = { function() return metrics.fid(a) end, function() return metrics.fid(a, "b") end },
  fidFromStats = { function() return metrics.fidFromStats({}, {}) end, function() return metrics.fidFromStats(5, 6) end },
  inceptionScore = { function() return metrics.inceptionScore() end, function() return metrics.inceptionScore(a, { splits = 0 }) end },
  kid = { function() return metrics.kid(a, b, { subsets = 0 }) end, function() return metrics.kid(a, b, { degree = 0, subsetSize = 10 }) end },
  precisionRecall = { function() return metrics.precisionRecall(a, b, { k = 0 }) end, function() return metrics.precisionRecall(a, {}) end },
  swd = { function() return metrics.swd(img, img, { nhoodSize = 4 }) end, function() return metrics.swd(img, img, { range = { 1, 0 } }) end,
    function() return metrics.swd(img:view(4, 32, 32), img) end, function() return metrics.swd(img, img, { minResolution = 64 }) end },
  msssim = { function() return metrics.msssim(img, img:narrow(1, 1, 2)) end, function() return metrics.msssim(img, img, { weights = {} }) end,
    function() return metrics.msssim(img, img, { weights = { "a" } }) end },
  msssimDiversity = { function() return metrics.msssimDiversity(img, { filterSize = 0 }) end },
  saveStats = { function() return metrics.saveStats("/tmp/x", {}) end, function() return metrics.saveStats(5, metrics.featureStats(a)) end,
    function() return metrics.saveStats("/proc/nope/x", metrics.featureStats(a)) end },
  loadStats = { function() return metrics.loadStats("/nonexistent") end, function() return metrics.loadStats() end },
  extract = { function() return metrics.extract(5, a) end, function() return metrics.extract(function(x) return x end, 5) end,
    function() return metrics.extract(function(x) return x end, function() end) end,
    function() return metrics.extract(function(x) return x end, a, { batchSize = 0 }) end },
}
T.test("every metrics function has misuse cases, and each raises", function()
  local missing, survived = {}, {}
  for name, fn in pairs(metrics) do
    if type(fn) == "function" and name:sub(1, 1) ~= "_" and not cases[name] then missing[#missing + 1] = name end
  end
  table.sort(missing)
  check(#missing == 0, "no misuse cases for: " .. table.concat(missing, ", "))
  for name, list in pairs(cases) do
    for i, f in ipairs(list) do if pcall(f) then survived[#survived + 1] = name .. " case " .. i end end
  end
  check(#survived == 0, "these calls did not raise: " .. table.concat(survived, ", "))
end)

T.test("metrics.extract runs a network in batches and concatenates every output", function()
  local net = function(x) return x * 2, x:sum(2, true) end
  local feats, sums = metrics.extract(net, a, { batchSize = 64 })
  T.close(feats, a * 2, 0, 0, "first output")
  T.close(sums, a:sum(2, true), 1e-12, 0, "second output")
  local viaFn = metrics.extract(net, function(i, n) return a:narrow(1, i, n) end, { count = 400, batchSize = 150 })
  T.close(viaFn, a * 2, 0, 0, "batches from a function")
end)

T.finish("metrics")
