-- models/biggan_deep.lua: BigGAN-deep's generator and discriminator (Brock et al. 2019,
-- appendix B, Figure 16), as ajbrock/BigGAN-PyTorch builds them (BigGANdeep.py): bottleneck
-- ResBlocks (1x1 conv to a quarter of the channels, two 3x3 convs, 1x1 back out), two blocks
-- per resolution, the whole [embedding, z] as every CBN's condition, G's skip dropping channels
-- instead of a learned 1x1 conv, and D's skip concatenating new channels to the old ones.
-- pytorch-pretrained-BigGAN's BigGAN-deep 128/256/512 (converted from DeepMind's TF-Hub
-- modules) load into this same G with M.fromPretrained.
--
--   local deep = require("models.biggan_deep")
--   local G = deep.Generator { resolution = 128, ch = 128, numClasses = 1000 }
--   local D = deep.Discriminator { resolution = 128, ch = 128, numClasses = 1000 }
--   local x = G(z, G:embed(labels))       -- labels 1-based, or class vectors (N, numClasses)
local biggan = require("models.biggan")
local M = {}

local function SN(m, eps) return nn.SpectralNorm(m, { eps = eps }) end

local function defaults(o, d)
  o = o or {}
  for k, v in pairs(d) do if o[k] == nil then o[k] = v end end
  return o
end

-- Arch tables (BigGANdeep.py G_arch / D_arch), as multiples of ch. G stage i holds `depth`
-- blocks, in[i] -> in[i] then in[i] -> out[i], the last one doubling the resolution to res[i].
-- D stage i: in[i] -> out[i] (halving the resolution when down[i]) then out[i] -> out[i].
-- 512 px is pytorch-pretrained-BigGAN's (the 256 table plus a 1 -> 1 stage).
M.arch = {
  [32] = {
    G = { inC = { 4, 4, 4 }, outC = { 4, 4, 4 }, res = { 8, 16, 32 } },
    D = { inC = { 4, 4, 4 }, outC = { 4, 4, 4 }, down = { true, true, false }, res = { 16, 16, 16 } },
  },
  [64] = {
    G = { inC = { 16, 16, 8, 4 }, outC = { 16, 8, 4, 2 }, res = { 8, 16, 32, 64 } },
    D = { inC = { 1, 2, 4, 8 }, outC = { 2, 4, 8, 16 }, down = { true, true, true, true }, res = { 32, 16, 8, 4 } },
  },
  [128] = {
    G = { inC = { 16, 16, 8, 4, 2 }, outC = { 16, 8, 4, 2, 1 }, res = { 8, 16, 32, 64, 128 } },
    D = { inC = { 1, 2, 4, 8, 16 }, outC = { 2, 4, 8, 16, 16 }, down = { true, true, true, true, true }, res = { 64, 32, 16, 8, 4 } },
  },
  [256] = {
    G = { inC = { 16, 16, 8, 8, 4, 2 }, outC = { 16, 8, 8, 4, 2, 1 }, res = { 8, 16, 32, 64, 128, 256 } },
    D = { inC = { 1, 2, 4, 8, 8, 16 }, outC = { 2, 4, 8, 8, 16, 16 }, down = { true, true, true, true, true, true },
          res = { 128, 64, 32, 16, 8, 4 } },
  },
  [512] = {
    G = { inC = { 16, 16, 8, 8, 4, 2, 1 }, outC = { 16, 8, 8, 4, 2, 1, 1 }, res = { 8, 16, 32, 64, 128, 256, 512 } },
  },
}

local function archFor(resolution, which)
  local a = M.arch[resolution] and M.arch[resolution][which]
  if not a then
    error(("BigGAN-deep: %s resolution must be %s, got %s"):format(which,
      which == "G" and "32, 64, 128, 256 or 512" or "32, 64, 128 or 256", tostring(resolution)), 3)
  end
  return a
end

-- GBlock (BigGANdeep.py): CBN -> ReLU -> conv1x1 (to cin/4) -> CBN -> ReLU -> [upsample] ->
-- conv3x3 -> CBN -> ReLU -> conv3x3 -> CBN -> ReLU -> conv1x1 (to cout), plus the skip: x's
-- first cout channels, upsampled with h.
local GBlock = nn.Module:extend("BigGANdeep.GBlock")
function GBlock:init(cin, cout, upsample, bn, snEps)
  local hidden = cin // 4
  self.cout, self.upsample = cout, upsample
  self.bn1, self.conv1 = bn(cin), SN(nn.Conv2d(cin, hidden, 1), snEps)
  self.bn2, self.conv2 = bn(hidden), SN(nn.Conv2d(hidden, hidden, 3, { padding = 1 }), snEps)
  self.bn3, self.conv3 = bn(hidden), SN(nn.Conv2d(hidden, hidden, 3, { padding = 1 }), snEps)
  self.bn4, self.conv4 = bn(hidden), SN(nn.Conv2d(hidden, cout, 1), snEps)
end
-- With no graph to record (sampling, evaluation), a normalization's output is rectified and a
-- convolution's output takes the skip in place (nothing else reads them), and each activation is
-- dropped as soon as the next has been made (the collector frees it before the op after), so a
-- 256 px forward holds a block's input, its skip and two activations, not every intermediate.
local function relu(h) if h:requiresGrad() then return h:relu() end return h:relu_() end
-- h + the skip x (upsampled nearest x2 when `up`). With no graph, x is added into h where it
-- lands, never upsampled into a copy of h's size: h (N, C, 2H, 2W) viewed as (N, C, H, 2, 2, W)
-- takes x (N, C, H, 1, 1, W) broadcast over each 2x2 block (the same sums, bit for bit).
local function plusSkip(h, x, up)
  if h:requiresGrad() or x:requiresGrad() then return h + (up and x:upsampleNearest(2) or x) end
  if not up then return h:add_(x) end
  local n, c, height, width = x:size(1), x:size(2), x:size(3), x:size(4)
  h:view(n, c, height, 2, width, 2):permute(1, 2, 3, 4, 6, 5):add_(x:unsqueeze(4):unsqueeze(4))
  return h
end

-- `new` takes over from `old`, an activation this forward made: with no graph, old goes back to
-- the pool now instead of when the collector next finds it.
local function replace(old, new)
  if not old:requiresGrad() and not rawequal(old, new) then old:free() end
  return new
end

-- x: (N, cin, H, W), y: (N, condition) -> (N, cout, H or 2H, W or 2W)
function GBlock:forward(x, y)
  local h = self.conv1(relu(self.bn1(x, y)))
  h = replace(h, relu(self.bn2(h, y)))
  if self.upsample then h = replace(h, h:upsampleNearest(2)) end
  h = replace(h, self.conv2(h))
  h = replace(h, relu(self.bn3(h, y)))
  h = replace(h, self.conv3(h))
  h = replace(h, relu(self.bn4(h, y)))
  h = replace(h, self.conv4(h))
  -- the skip, made last (its upsampled copy is as large as the output): x's first cout channels
  -- (no weights), upsampled with h
  if x:size(2) ~= self.cout then x = x:narrow(2, 1, self.cout) end
  return plusSkip(h, x, self.upsample)
end

-- DBlock (BigGANdeep.py): ReLU -> conv1x1 (to cout/4) -> ReLU -> conv3x3 -> ReLU -> conv3x3 ->
-- ReLU -> [avgpool 2] -> conv1x1 (to cout); skip: [avgpool 2], then when the width grows, x
-- concatenated with a learned conv1x1 giving the cout - cin new channels.
local DBlock = nn.Module:extend("BigGANdeep.DBlock")
function DBlock:init(cin, cout, downsample, snEps)
  local hidden = cout // 4
  self.downsample = downsample
  self.conv1 = SN(nn.Conv2d(cin, hidden, 1), snEps)
  self.conv2 = SN(nn.Conv2d(hidden, hidden, 3, { padding = 1 }), snEps)
  self.conv3 = SN(nn.Conv2d(hidden, hidden, 3, { padding = 1 }), snEps)
  self.conv4 = SN(nn.Conv2d(hidden, cout, 1), snEps)
  if cin ~= cout then self.conv_sc = SN(nn.Conv2d(cin, cout - cin, 1), snEps) end
end
-- x: (N, cin, H, W) -> (N, cout, H/2 or H, W/2 or W)
function DBlock:forward(x)
  local h = self.conv3(self.conv2(self.conv1(x:relu()):relu()):relu()):relu()   -- out of place: the skip needs x
  if self.downsample then h, x = h:avgPool2d(2), x:avgPool2d(2) end
  if self.conv_sc then x = tensor.cat({ x, self.conv_sc(x) }, 2) end
  return self.conv4(h) + x
end

--- BigGAN-deep's generator. Options: resolution (128), ch (128), depth (2 blocks per
-- resolution), dimZ (128), sharedDim (128; 0 means dimZ), numClasses (1000), attention ("64"),
-- snEps (1e-6), bnEps (1e-5, the CBNs), outputBnEps (1e-5), init ("ortho"), outChannels (3),
-- outputWidth (the last conv's width, default outChannels; pytorch-pretrained-BigGAN's is ch,
-- of which the first outChannels are the image). The shared embedding and the [embedding, z]
-- condition are always on: BigGAN-deep has no other mode.
local Generator = nn.Module:extend("BigGANdeep.Generator")
M.Generator = Generator
function Generator:init(o)
  o = defaults(o, { resolution = 128, ch = 128, depth = 2, dimZ = 128, sharedDim = 128, numClasses = 1000, attention = "64",
                    snEps = 1e-6, bnEps = 1e-5, outputBnEps = 1e-5, init = "ortho", outChannels = 3 })
  o.outputWidth = o.outputWidth or o.outChannels
  if o.outputWidth < o.outChannels then
    error(("BigGAN-deep: outputWidth (%d) must be at least outChannels (%d)"):format(o.outputWidth, o.outChannels), 3)
  end
  local arch = archFor(o.resolution, "G")
  self.dimZ = o.dimZ
  local sharedDim = o.sharedDim > 0 and o.sharedDim or o.dimZ
  self.shared = nn.Embedding(o.numClasses, sharedDim)               -- no SN on G's embedding
  local condSize = sharedDim + o.dimZ
  local function bn(c)
    return nn.ConditionalBatchNorm2d(c, { inputSize = condSize, spectralNorm = true, snEps = o.snEps, eps = o.bnEps })
  end
  self.width0 = arch.inC[1] * o.ch
  self.linear = SN(nn.Linear(condSize, self.width0 * 16), o.snEps)
  local attention = biggan.attentionSet(o.attention)
  self.blocks = nn.ModuleList()
  for i = 1, #arch.inC do
    local stage = nn.ModuleList()
    for j = 1, o.depth do
      local cin = arch.inC[i] * o.ch
      stage:add(GBlock(cin, j == o.depth and arch.outC[i] * o.ch or cin, j == o.depth, bn, o.snEps))
    end
    if attention[arch.res[i]] then stage:add(nn.SelfAttention(arch.outC[i] * o.ch, { spectralNorm = true, snEps = o.snEps })) end
    self.blocks:add(stage)
  end
  local last = arch.outC[#arch.outC] * o.ch
  -- With no graph, the output BN writes over the last activation, and the RGB conv makes only
  -- the channels the image keeps (pytorch-pretrained-BigGAN's is 128 wide and keeps 3): at
  -- 512 px and batch 8 each would otherwise be a second 1 GiB tensor at the forward's peak.
  self.output_bn = nn.BatchNorm2d(last, { eps = o.outputBnEps, inPlace = true })
  self.output_conv = SN(nn.Conv2d(last, o.outputWidth, 3, { padding = 1, outputsUsed = o.outChannels }), o.snEps)
  self.options = o
  biggan.initWeights(self, o.init)
end

--- The condition's class part: the shared embedding of 1-based labels (N), or of class
-- vectors (N, numClasses), e.g. one-hot rows or mixtures for interpolating between classes.
function Generator:embed(labels)
  if tensor.isTensor(labels) and labels:dim() == 2 then return labels:matmul(self.shared.weight) end
  return self.shared(labels)
end

-- z: (N, dimZ), y: (N, sharedDim) embedding -> images (N, outChannels, R, R) in [-1, 1]
function Generator:forward(z, y)
  local cond = tensor.cat({ y, z }, 2)
  local h = self.linear(cond):view(z:size(1), self.width0, 4, 4)
  for _, stage in ipairs(self.blocks) do
    for _, block in ipairs(stage) do h = replace(h, block(h, cond)) end
  end
  h = replace(h, relu(self.output_bn(h)))
  return replace(h, self.output_conv(h)):tanh()
end

--- pytorch-pretrained-BigGAN's truncation-indexed BatchNorm statistics: each BN of a
-- pretrained G holds running means and variances for n truncations 0, 1/(n-1), ..., 1, and a
-- forward at truncation t uses, with (coef, k) = modf(t (n-1)), stats[k] coef + stats[k+1]
-- (1 - coef) (its BigGANBatchNorm, interpolation weights as written there). Sets every BN's
-- running statistics for t; G must be in eval mode to use them.
function Generator:setTruncation(t)
  if not self.truncationStats then
    error("BigGANdeep.Generator:setTruncation: this G has no truncation-indexed statistics (only pytorch-pretrained-BigGAN's have)", 2)
  end
  if type(t) ~= "number" or not (t > 0 and t <= 1) then
    error(("BigGANdeep.Generator:setTruncation: truncation must be in (0, 1], got %s"):format(tostring(t)), 2)
  end
  local n = self.truncationStats.count
  local whole, frac = math.modf(t / (1.0 / (n - 1)))
  local start = math.tointeger(whole)
  tensor.noGrad(function()
    for _, s in ipairs(self.truncationStats) do
      local mean, var = s.means:select(1, start + 1), s.vars:select(1, start + 1)
      if frac ~= 0 then
        mean = mean * frac + s.means:select(1, start + 2) * (1 - frac)
        var = var * frac + s.vars:select(1, start + 2) * (1 - frac)
      end
      s.bn.running_mean:copy(mean)
      s.bn.running_var:copy(var)
    end
  end)
  self.truncation = t
  return self
end

--- BigGAN-deep's projection discriminator. Options: resolution (128), ch (128), depth (2),
-- numClasses (1000), attention ("64"), snEps (1e-6), init ("ortho"), inChannels (3).
local Discriminator = nn.Module:extend("BigGANdeep.Discriminator")
M.Discriminator = Discriminator
function Discriminator:init(o)
  o = defaults(o, { resolution = 128, ch = 128, depth = 2, numClasses = 1000, attention = "64", snEps = 1e-6, init = "ortho",
                    inChannels = 3 })
  local arch = archFor(o.resolution, "D")
  local attention = biggan.attentionSet(o.attention)
  self.input_conv = SN(nn.Conv2d(o.inChannels, arch.inC[1] * o.ch, 3, { padding = 1 }), o.snEps)
  self.blocks = nn.ModuleList()
  for i = 1, #arch.inC do
    local stage = nn.ModuleList()
    for j = 1, o.depth do
      stage:add(DBlock((j == 1 and arch.inC[i] or arch.outC[i]) * o.ch, arch.outC[i] * o.ch, arch.down[i] and j == 1, o.snEps))
    end
    if attention[arch.res[i]] then stage:add(nn.SelfAttention(arch.outC[i] * o.ch, { spectralNorm = true, snEps = o.snEps })) end
    self.blocks:add(stage)
  end
  local width = arch.outC[#arch.outC] * o.ch
  self.linear = SN(nn.Linear(width, 1), o.snEps)
  self.embed = SN(nn.Embedding(o.numClasses, width), o.snEps)
  self.options = o
  biggan.initWeights(self, o.init)
end

-- x: (N, C, R, R) -> h: (N, width), the sum over H, W of the last block's ReLU'd features
function Discriminator:features(x)
  local h = self.input_conv(x)
  for _, stage in ipairs(self.blocks) do
    for _, block in ipairs(stage) do h = block(h) end
  end
  return h:relu():sum({ 3, 4 })
end

-- x: (N, C, R, R), y: (N) labels -> (N, 1): BigGAN's projection head on features(x)
Discriminator.forward = biggan.Discriminator.forward

-- BigGAN-deep from PyTorch weights (pytorch-pretrained-BigGAN's and BigGAN-PyTorch's) is in
-- models/biggan_deep_weights.lua; these load it when first called.
function M.fromPretrained(...) return require("models.biggan_deep_weights").fromPretrained(...) end
function M.fromPyTorch(...) return require("models.biggan_deep_weights").fromPyTorch(...) end
M.defaults = defaults

--- The parameters orthogonal regularization skips in G: the shared embedding.
function M.orthoExclude(G) return G.shared end
function Generator:orthoExclude() return self.shared end

--- G and D from scripts/biggan.lua's options (--arch=deep) and the data's channels and classes.
function M.fromOptions(o, channels, numClasses)
  local G = M.Generator { resolution = o.resolution, ch = o.ch, depth = o.depth, dimZ = o.dimZ, sharedDim = o.sharedDim,
    numClasses = numClasses, attention = o.GAttn, snEps = o.snEps, bnEps = o.bnEps, init = o.init, outChannels = channels }
  local D = M.Discriminator { resolution = o.resolution, ch = o.ch, depth = o.depth, numClasses = numClasses, attention = o.DAttn,
    snEps = o.snEps, init = o.init, inChannels = channels }
  return G, D
end

return M
