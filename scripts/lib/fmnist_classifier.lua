-- fmnist_classifier.lua: the Fashion-MNIST domain classifier behind luagan's domain FID,
-- KID, precision/recall, IS and class accuracy (Inception-v3 knows nothing of 28x28 clothes).
--
--   input     (N, 1, 32, 32) in [-1, 1]: Fashion-MNIST padded by 2 px of background, then
--             scaled x -> 2x - 1 (the same images the GAN scripts train on)
--   network   [conv3x3-BN-ReLU]x2 (32) - maxpool - [conv3x3-BN-ReLU]x2 (64) - maxpool
--             - conv3x3-BN-ReLU (128) - maxpool - linear 2048->128 - BN - ReLU - linear 128->10
--   features  the 128-d penultimate activations (after that ReLU): what the last layer sees
--   weights   scripts/models/fmnist_classifier.safetensors, written by scripts/train_classifier.lua;
--             its metadata records the test accuracy and the training settings
local M = {}

local root = debug.getinfo(1, "S").source:match("^@(.*)/scripts/lib/") or "."
M.weightsPath = root .. "/scripts/models/fmnist_classifier.safetensors"
M.featureSize = 128
M.inputSize = 32

local Classifier = nn.Module:extend("FMNISTClassifier")

local function convBlock(cin, cout)
  return nn.Sequential(nn.Conv2d(cin, cout, 3, { padding = 1, bias = false }), nn.BatchNorm2d(cout), nn.ReLU())
end

function Classifier:init()
  self.block1 = nn.Sequential(convBlock(1, 32), convBlock(32, 32))      -- 32x32
  self.block2 = nn.Sequential(convBlock(32, 64), convBlock(64, 64))     -- 16x16
  self.block3 = convBlock(64, 128)                                      -- 8x8
  self.fc1 = nn.Linear(128 * 4 * 4, M.featureSize, { bias = false })
  self.bn1 = nn.BatchNorm2d(M.featureSize)                              -- on (N, 128, 1, 1)
  self.fc2 = nn.Linear(M.featureSize, 10)
end

--- x: (N, 1, 32, 32) in [-1, 1] -> the 128-d features (N, 128).
function Classifier:features(x)
  if not tensor.isTensor(x) or x:dim() ~= 4 or x:size(2) ~= 1 or x:size(3) ~= 32 or x:size(4) ~= 32 then
    error(("FMNISTClassifier: expected images of shape (N, 1, 32, 32) in [-1, 1], got %s"):format(
      tensor.isTensor(x) and "{" .. table.concat(x:shape(), ",") .. "}" or type(x)), 3)
  end
  local h = self.block1(x):maxPool2d(2)
  h = self.block2(h):maxPool2d(2)
  h = self.block3(h):maxPool2d(2):flatten(2)
  h = self.bn1(self.fc1(h):view(-1, M.featureSize, 1, 1)):view(-1, M.featureSize)
  return h:relu()
end

--- x -> logits (N, 10).
function Classifier:forward(x) return self.fc2(self:features(x)) end

--- x -> features (N, 128), logits (N, 10).
function Classifier:featuresAndLogits(x)
  local f = self:features(x)
  return f, self.fc2(f)
end

M.Classifier = Classifier

--- A fresh, untrained classifier.
function M.new() return Classifier() end

--- The trained classifier from `path` (default: the committed weights), in eval mode.
function M.load(path)
  path = path or M.weightsPath
  local f = io.open(path, "rb")
  if not f then
    error(("fmnist_classifier: no weights at %s (train them with: luagan scripts/train_classifier.lua)"):format(path), 2)
  end
  f:close()
  -- Built without touching the global generator (its random init is overwritten anyway), so
  -- loading the classifier inside a training run never changes the run.
  local rng = tensor.getRNGState()
  local model = Classifier()
  tensor.setRNGState(rng)
  model:loadStateDict((tensor.load(path)))
  model:eval()
  return model
end

--- Fashion-MNIST images as the classifier (and the GAN scripts) see them: (N, 1, 28, 28) in
-- [0, 1] -> (N, 1, 32, 32) in [-1, 1], padding with background.
function M.prepare(images)
  return images:pad({ 2, 2, 2, 2 }) * 2 - 1
end

--- Fraction of `images` whose argmax class equals `labels` (1-based), in batches.
function M.accuracy(model, images, labels, batchSize)
  local logits = metrics.extract(function(x) return model(x) end, images, { batchSize = batchSize or 500 })
  local predicted = logits:argmax(2):view(-1)
  return predicted:eq(labels:view(-1)):mean():item()
end

return M
