-- The Fashion-MNIST domain classifier (scripts/lib/fmnist_classifier.lua, weights committed in
-- scripts/models/) and the domain metrics built on it, on real data: its test accuracy, the
-- train-vs-test FID, and FID growing with noise and blur (the FID-MNIST sanity test).
local T = require("testing")
local classifier = require("fmnist_classifier")
local evaluation = require("evaluation")

local model = classifier.load()
local test, testLabels = evaluation.dataset("test")
local train = evaluation.dataset("train")
local testFeatures, testLogits = evaluation.classify(model, test)
local testStats = metrics.featureStats(testFeatures)

T.test("the committed classifier classifies at least 92% of the test set", function()
  local accuracy = testLogits:argmax(2):view(-1):eq(testLabels):mean():item()
  print(("domain_metrics: classifier test accuracy %.2f%%"):format(100 * accuracy))
  T.check(accuracy >= 0.92, ("test accuracy %.4f < 0.92"):format(accuracy))
end)

T.test("real data: small train-vs-test FID and KID, IS near 10, precision and recall near 1", function()
  local trainFeatures, trainLogits = evaluation.classify(model, train:narrow(1, 1, 10000))
  local fid = metrics.fidFromStats(metrics.featureStats(trainFeatures), testStats)
  local kid = metrics.kid(trainFeatures, testFeatures)
  local is = metrics.inceptionScore(trainLogits, { logits = true })
  local p, r = metrics.precisionRecall(testFeatures:narrow(1, 1, 5000), trainFeatures:narrow(1, 1, 5000))
  print(("domain_metrics: train (10k) vs test (10k): FID %.3f, KID %.2e, IS %.3f, precision %.3f, recall %.3f"):format(fid, kid, is, p, r))
  T.check(fid < 3, "train-vs-test FID " .. fid)
  T.check(math.abs(kid) < 2e-3, "train-vs-test KID " .. kid)
  T.check(is > 7, "IS of real images " .. is)
  T.check(p > 0.7 and r > 0.7, ("precision %g recall %g"):format(p, r))
end)

T.test("FID rises monotonically with noise and with blur", function()
  local base = test:narrow(1, 1, 5000)
  local function fidOf(images)
    local feats = evaluation.classify(model, images)
    return metrics.fidFromStats(metrics.featureStats(feats), testStats)
  end
  tensor.manualSeed(1)
  local noise, last = {}, -1
  for _, sigma in ipairs { 0.05, 0.2, 0.5 } do
    local v = fidOf((base + tensor.randn(base:shape()) * sigma):clamp(-1, 1))
    noise[#noise + 1] = ("%.2f"):format(v)
    T.check(v > last, ("noise %g gives FID %g, not above %g"):format(sigma, v, last))
    last = v
  end
  local blur, x = {}, base
  last = -1
  for _ = 1, 3 do
    x = x:avgPool2d(3, { stride = 1, padding = 1, countIncludePad = false })
    local v = fidOf(x)
    blur[#blur + 1] = ("%.2f"):format(v)
    T.check(v > last, ("blur gives FID %g, not above %g"):format(v, last))
    last = v
  end
  print(("domain_metrics: FID under noise 0.05/0.2/0.5: %s; under 1/2/3 box blurs: %s"):format(
    table.concat(noise, ", "), table.concat(blur, ", ")))
end)

T.finish("domain_metrics")
