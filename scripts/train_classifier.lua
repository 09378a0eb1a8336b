-- train_classifier.lua: trains the Fashion-MNIST domain classifier (scripts/lib/fmnist_classifier.lua)
-- whose features give luagan's domain FID, KID and precision/recall, and whose softmax gives
-- the domain IS and the class accuracy of conditional samples. Writes the weights with the
-- test accuracy and settings in the file's metadata.
--
--   luagan scripts/train_classifier.lua [--epochs=12] [--out=scripts/models/fmnist_classifier.safetensors]
local options = require("options")
local classifier = require("fmnist_classifier")

local opt = options.cli(arg, {
  { "epochs", 12, "passes over the 60,000 training images", min = 1, max = 10000 },
  { "batchSize", 128, "images per step", min = 1, max = 65536 },
  { "lr", 2e-3, "Adam learning rate (cosine-decayed to 0 over the run)", min = 0, max = 1 },
  { "weightDecay", 5e-4, "L2 penalty on conv and linear weights (added to the gradient)", min = 0, max = 1 },
  { "seed", 1, "random seed (initialisation and batch order)" },
  { "limit", 0, "train on only this many batches per epoch (0: all; for quick checks)", min = 0 },
  { "out", classifier.weightsPath, "where to write the weights" },
}, "Trains the Fashion-MNIST domain classifier.")

tensor.manualSeed(opt.seed)
local train = data.fashionMNIST { split = "train" }
local test = data.fashionMNIST { split = "test" }
local testImages, testLabels = classifier.prepare(test.images), test.labels
-- pad 28 -> 32 with background, scale to [-1, 1], mirror half the images (clothes are near-symmetric)
local loader = data.Loader(train, { batchSize = opt.batchSize, seed = opt.seed, dropLast = true,
  transform = { data.pad(2), data.scale(-1, 1), data.randomFlip() } })

local model = classifier.new()
local optimizer = optim.Adam(model:parameters(), { lr = opt.lr })
local decayed = {}
for name, p in model:namedParameters() do
  if name:match("weight$") and p:dim() > 1 then decayed[#decayed + 1] = p end
end

local stepsPerEpoch = opt.limit > 0 and math.min(opt.limit, #loader) or #loader
local totalSteps, step = opt.epochs * stepsPerEpoch, 0
local t0 = tensor.clock()
local accuracy = 0
for epoch = 1, opt.epochs do
  model:train()
  local lossSum, seen = 0, 0
  local bar = log.Progress(stepsPerEpoch)
  for x, y in loader:epoch() do
    if seen >= stepsPerEpoch then break end
    optimizer:setLr(opt.lr * 0.5 * (1 + math.cos(math.pi * step / totalSteps)))
    optimizer:zeroGrad()
    local loss = -(model(x):logSoftmax(2):gather(2, y:view(-1, 1))):mean()
    loss:backward()
    tensor.noGrad(function()
      for _, w in ipairs(decayed) do w.grad:add(w * opt.weightDecay) end
    end)
    optimizer:step()
    step, seen = step + 1, seen + 1
    lossSum = lossSum + loss:item()
    bar:update(seen, { loss = lossSum / seen })
  end
  model:eval()
  accuracy = classifier.accuracy(model, testImages, testLabels)
  print(("epoch %2d  loss %.4f  test accuracy %.2f%%  (%.0f s)"):format(epoch, lossSum / seen, 100 * accuracy, tensor.clock() - t0))
end

tensor.save(opt.out, model:stateDict(), {
  testAccuracy = ("%.4f"):format(accuracy),
  input = "(N, 1, 32, 32) in [-1, 1]: Fashion-MNIST padded by 2 px of background, x -> 2x - 1",
  features = "128-d penultimate activations (after fc1-bn1-relu)",
  trainedWith = ("luagan scripts/train_classifier.lua --epochs=%d --batchSize=%d --lr=%g --weightDecay=%g --seed=%d"):format(
    opt.epochs, opt.batchSize, opt.lr, opt.weightDecay, opt.seed),
})
print(("wrote %s: test accuracy %.2f%%"):format(opt.out, 100 * accuracy))
