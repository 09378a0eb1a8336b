-- Every built-in layer against PyTorch (or the papers' reference code, for the layers
-- torch.nn lacks), forward and backward, in train and eval mode, including the buffers each
-- forward updates. Fixtures: scripts/dev/fixtures/make_fixtures.py, group "layers".
local T = require("testing")
local fixtures = require("fixtures")

local function mod(make, train) return { make = make, train = train ~= false } end

fixtures.checkModules(fixtures.load("layers"), {
  linear = mod(function() return nn.Linear(5, 4) end),
  conv2d = mod(function() return nn.Conv2d(3, 4, 3, { padding = 1 }) end),
  conv2d_stride = mod(function() return nn.Conv2d(2, 3, 4, { stride = 2, padding = 1 }) end),
  conv2d_nobias = mod(function() return nn.Conv2d(2, 3, 1, { bias = false }) end),
  conv_transpose2d = mod(function() return nn.ConvTranspose2d(4, 3, 4, { stride = 2, padding = 1 }) end),
  embedding = mod(function() return nn.Embedding(7, 3) end),
  batchnorm_train = mod(function() return nn.BatchNorm2d(3) end),
  batchnorm_eval = mod(function() return nn.BatchNorm2d(3) end, false),
  cbn_classes_train = mod(function() return nn.ConditionalBatchNorm2d(6, { numClasses = 10 }) end),
  cbn_classes_eval = mod(function() return nn.ConditionalBatchNorm2d(6, { numClasses = 10 }) end, false),
  cbn_vector_sn_train = mod(function() return nn.ConditionalBatchNorm2d(6, { inputSize = 12 }) end),
  sn_linear_train = mod(function() return nn.SpectralNorm(nn.Linear(6, 5)) end),
  sn_linear_eval = mod(function() return nn.SpectralNorm(nn.Linear(6, 5)) end, false),
  sn_conv_train = mod(function() return nn.SpectralNorm(nn.Conv2d(3, 4, 3, { padding = 1 }), { eps = 1e-8 }) end),
  sn_conv_two_steps = mod(function() return nn.SpectralNorm(nn.Conv2d(3, 4, 3, { padding = 1 }), { nPowerIterations = 2 }) end),
  sn_embedding_train = mod(function() return nn.SpectralNorm(nn.Embedding(5, 4)) end),
  sn_conv_transpose_train = mod(function() return nn.SpectralNorm(nn.ConvTranspose2d(3, 2, 4, { stride = 2, padding = 1 })) end),
  attention_train = mod(function() return nn.SelfAttention(16) end),
  attention_eval = mod(function() return nn.SelfAttention(16) end, false),
  minibatch_stddev = mod(function() return nn.MinibatchStdDev(4) end),
  minibatch_stddev_group2 = mod(function() return nn.MinibatchStdDev(2) end),
  pixelnorm = mod(function() return nn.PixelNorm() end),
  pixelnorm_latent = mod(function() return nn.PixelNorm() end),
  equalized_conv = mod(function() return nn.Conv2d(3, 4, 3, { padding = 1, equalized = true }) end),
  equalized_linear = mod(function() return nn.Linear(8, 6, { equalized = true, gain = math.sqrt(2) / 4 }) end),
  sequential = mod(function()
    return nn.Sequential(nn.Conv2d(2, 3, 3, { padding = 1 }), nn.LeakyReLU(0.2), nn.AvgPool2d(2), nn.Upsample(2), nn.Tanh())
  end),
})

T.finish("fixtures_layers")
