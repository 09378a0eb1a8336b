-- models/biggan.lua: BigGAN's generator and discriminator (Brock et al. 2019), as
-- ajbrock/BigGAN-PyTorch builds them (BigGAN.py, layers.py): the same arch tables, block op
-- order, spectral-norm placement, conditional BN, shared embedding and hierarchical z.
--
--   local biggan = require("models.biggan")
--   local G = biggan.Generator { resolution = 32, ch = 64, numClasses = 10, outChannels = 1 }
--   local D = biggan.Discriminator { resolution = 32, ch = 64, numClasses = 10, inChannels = 1 }
--   local x = G(z, G:embed(labels))       -- images in [-1, 1]; labels are 1-based
--   local score = D(x, labels)            -- (N, 1)
local M = {}

local function SN(m, eps) return nn.SpectralNorm(m, { eps = eps }) end

-- Arch tables (BigGAN.py G_arch / D_arch), as multiples of ch. G: block i maps in[i] -> out[i]
-- channels and doubles the resolution to res[i]. D: block i maps in[i] -> out[i], halving
-- the resolution when down[i]; res[i] is the label attention placement reads (the reference's
-- 32 px table labels every D block 16, so D attention '16' at 32 px follows every block).
M.arch = {
  [32] = {
    G = { inC = { 4, 4, 4 }, outC = { 4, 4, 4 }, res = { 8, 16, 32 } },
    D = { inC = { 0, 4, 4, 4 }, outC = { 4, 4, 4, 4 }, down = { true, true, false, false }, res = { 16, 16, 16, 16 } },
  },
  [64] = {
    G = { inC = { 16, 16, 8, 4 }, outC = { 16, 8, 4, 2 }, res = { 8, 16, 32, 64 } },
    D = { inC = { 0, 1, 2, 4, 8 }, outC = { 1, 2, 4, 8, 16 }, down = { true, true, true, true, false }, res = { 32, 16, 8, 4, 4 } },
  },
  [128] = {
    G = { inC = { 16, 16, 8, 4, 2 }, outC = { 16, 8, 4, 2, 1 }, res = { 8, 16, 32, 64, 128 } },
    D = { inC = { 0, 1, 2, 4, 8, 16 }, outC = { 1, 2, 4, 8, 16, 16 }, down = { true, true, true, true, true, false },
          res = { 64, 32, 16, 8, 4, 4 } },
  },
}

--- The set of resolutions in an attention spec like "16", "16_32" or "0" (none).
function M.attentionSet(spec)
  local set = {}
  for item in tostring(spec):gmatch("[^_]+") do
    local r = tonumber(item)
    if not r or r % 1 ~= 0 then error(("attention resolutions must be like '16' or '16_32' ('0' for none), got '%s'"):format(spec), 3) end
    if r > 0 then set[math.tointeger(r)] = true end
  end
  return set
end

local function archFor(resolution)
  local a = M.arch[resolution]
  if not a then error(("BigGAN: resolution must be 32, 64 or 128, got %s"):format(tostring(resolution)), 3) end
  return a
end

-- GBlock (layers.py): CBN -> ReLU -> upsample x2 -> conv3x3 -> CBN -> ReLU -> conv3x3, plus the
-- shortcut upsample -> conv1x1. Every G block upsamples, so every shortcut is a learned conv.
-- Nearest upsampling and a 1x1 conv commute, so the shortcut convolves at the low resolution.
local GBlock = nn.Module:extend("GBlock")
function GBlock:init(cin, cout, bn, snEps)
  self.bn1 = bn(cin)
  self.conv1 = SN(nn.Conv2d(cin, cout, 3, { padding = 1 }), snEps)
  self.bn2 = bn(cout)
  self.conv2 = SN(nn.Conv2d(cout, cout, 3, { padding = 1 }), snEps)
  self.conv_sc = SN(nn.Conv2d(cin, cout, 1), snEps)
end
-- x: (N, cin, H, W), y: the condition (labels, or the shared embedding [+ z chunk]) -> (N, cout, 2H, 2W)
function GBlock:forward(x, y)
  local h = self.bn1(x, y):relu():upsampleNearest(2)
  h = self.conv2(self.bn2(self.conv1(h), y):relu())
  return h + self.conv_sc(x):upsampleNearest(2)
end

-- DBlock (layers.py, wide): [ReLU] -> conv3x3 -> ReLU -> conv3x3 -> [avgpool 2]; the first
-- block has no ReLU on the image. Shortcut: conv1x1 then avgpool (first block: avgpool then
-- conv1x1), learned only when the channels change or the block downsamples.
local DBlock = nn.Module:extend("DBlock")
function DBlock:init(cin, cout, downsample, preactivation, snEps)
  self.downsample, self.preactivation = downsample, preactivation
  self.conv1 = SN(nn.Conv2d(cin, cout, 3, { padding = 1 }), snEps)
  self.conv2 = SN(nn.Conv2d(cout, cout, 3, { padding = 1 }), snEps)
  if cin ~= cout or downsample then self.conv_sc = SN(nn.Conv2d(cin, cout, 1), snEps) end
end
function DBlock:shortcut(x)
  if self.preactivation then
    if self.conv_sc then x = self.conv_sc(x) end
    if self.downsample then x = x:avgPool2d(2) end
  else
    if self.downsample then x = x:avgPool2d(2) end
    if self.conv_sc then x = self.conv_sc(x) end
  end
  return x
end
function DBlock:forward(x)
  local h = self.preactivation and x:relu() or x     -- out of place: the shortcut needs x
  h = self.conv2(self.conv1(h):relu())
  if self.downsample then h = h:avgPool2d(2) end
  return h + self:shortcut(x)
end

--- Initializes the weights of every Linear, Conv2d and Embedding (spectrally normalized
-- ones through weight_orig) as BigGAN's init_weights: 'N02' N(0, 0.02), 'ortho' orthogonal,
-- 'xavier' Glorot uniform. Biases keep PyTorch's default U(±1/√fan_in).
function M.initWeights(model, kind)
  local init = ({
    N02 = function(w) nn.init.normal(w, 0, 0.02) end,
    ortho = function(w) nn.init.orthogonal(w) end,
    xavier = function(w) nn.init.xavierUniform(w) end,
    glorot = function(w) nn.init.xavierUniform(w) end,
  })[kind]
  if not init then error(("init must be 'N02', 'ortho' or 'xavier', got '%s'"):format(tostring(kind)), 2) end
  tensor.noGrad(function()
    for _, m in ipairs(model:modules()) do
      local t = m:typeName()
      if t == "Linear" or t == "Conv2d" or t == "Embedding" then init(m.weight_orig or m.weight) end
    end
  end)
end

local function defaults(o, d)
  o = o or {}
  for k, v in pairs(d) do if o[k] == nil then o[k] = v end end
  return o
end

--- BigGAN's generator. Options: resolution (32), ch (64), dimZ (128), sharedDim (128; 0 means
-- dimZ), shared (true: a shared class embedding projected to every CBN by spectrally normalized
-- linears; false: per-class gain/bias embeddings), hier (true: z split into one chunk per block
-- plus one for the first linear, each block's condition = [embedding, chunk]), numClasses (10),
-- attention ("0"; e.g. "16"), snEps (1e-8), bnEps (1e-5, the CBNs; the output BN always uses
-- 1e-5 as the reference), init ("N02"), outChannels (3).
local Generator = nn.Module:extend("BigGAN.Generator")
M.Generator = Generator
function Generator:init(o)
  o = defaults(o, { resolution = 32, ch = 64, dimZ = 128, sharedDim = 128, shared = true, hier = true, numClasses = 10,
                    attention = "0", snEps = 1e-8, bnEps = 1e-5, init = "N02", outChannels = 3 })
  local arch = archFor(o.resolution).G
  if o.hier and not o.shared then error("BigGAN.Generator: hier (skip-z) needs the shared embedding (shared = true)", 3) end
  local blocks = #arch.inC
  self.numSlots = o.hier and blocks + 1 or 1
  if o.hier and o.dimZ < self.numSlots then
    error(("BigGAN.Generator: dimZ %d is smaller than the %d z chunks of a %d px G with hier (one per block and one for the "
      .. "input): give at least %d"):format(o.dimZ, self.numSlots, o.resolution, self.numSlots), 3)
  end
  self.zChunk = o.hier and o.dimZ // self.numSlots or 0
  self.dimZ = o.hier and self.zChunk * self.numSlots or o.dimZ      -- rounded down, as the reference
  local sharedDim = o.sharedDim > 0 and o.sharedDim or self.dimZ
  local bn
  if o.shared then
    self.shared = nn.Embedding(o.numClasses, sharedDim)              -- no SN on G's embedding
    local condSize = sharedDim + self.zChunk
    bn = function(c) return nn.ConditionalBatchNorm2d(c, { inputSize = condSize, spectralNorm = true, snEps = o.snEps, eps = o.bnEps }) end
  else
    bn = function(c) return nn.ConditionalBatchNorm2d(c, { numClasses = o.numClasses, eps = o.bnEps }) end
  end
  self.width0 = arch.inC[1] * o.ch
  self.linear = SN(nn.Linear(self.dimZ // self.numSlots, self.width0 * 16), o.snEps)
  local attention = M.attentionSet(o.attention)
  self.blocks = nn.ModuleList()
  for i = 1, blocks do
    local stage = nn.ModuleList { GBlock(arch.inC[i] * o.ch, arch.outC[i] * o.ch, bn, o.snEps) }
    if attention[arch.res[i]] then stage:add(nn.SelfAttention(arch.outC[i] * o.ch, { spectralNorm = true, snEps = o.snEps })) end
    self.blocks:add(stage)
  end
  local last = arch.outC[blocks] * o.ch
  self.output_bn = nn.BatchNorm2d(last, { eps = 1e-5 })
  self.output_conv = SN(nn.Conv2d(last, o.outChannels, 3, { padding = 1 }), o.snEps)
  self.options = o
  M.initWeights(self, o.init)
end

--- The condition G's blocks take for class labels (1-based): the shared embedding, or the
-- labels themselves without one. (BigGAN calls G(z, G.shared(y)), so class interpolation
-- happens in embedding space.)
function Generator:embed(labels)
  if self.shared then return self.shared(labels) end
  return labels
end

-- z: (N, dimZ), y: (N, sharedDim) embedding or (N) labels -> images (N, outChannels, R, R) in [-1, 1]
function Generator:forward(z, y)
  local h, conds
  if self.numSlots > 1 then
    local zs = z:split(self.zChunk, 2)
    h = self.linear(zs[1])
    conds = {}
    for i = 2, #zs do conds[i - 1] = tensor.cat({ y, zs[i] }, 2) end
  else
    h = self.linear(z)
  end
  h = h:view(z:size(1), self.width0, 4, 4)
  for i, stage in ipairs(self.blocks) do
    local cond = conds and conds[i] or y
    for _, block in ipairs(stage) do
      if block:typeName() == "SelfAttention" then h = block(h) else h = block(h, cond) end
    end
  end
  return self.output_conv(self.output_bn(h):relu()):tanh()
end

--- BigGAN's projection discriminator. Options: resolution (32), ch (64), numClasses (10),
-- attention ("0"), snEps (1e-8), init ("N02"), inChannels (3).
local Discriminator = nn.Module:extend("BigGAN.Discriminator")
M.Discriminator = Discriminator
function Discriminator:init(o)
  o = defaults(o, { resolution = 32, ch = 64, numClasses = 10, attention = "0", snEps = 1e-8, init = "N02", inChannels = 3 })
  local arch = archFor(o.resolution).D
  local attention = M.attentionSet(o.attention)
  self.blocks = nn.ModuleList()
  for i = 1, #arch.inC do
    local cin = i == 1 and o.inChannels or arch.inC[i] * o.ch
    local stage = nn.ModuleList { DBlock(cin, arch.outC[i] * o.ch, arch.down[i], i > 1, o.snEps) }
    if attention[arch.res[i]] then stage:add(nn.SelfAttention(arch.outC[i] * o.ch, { spectralNorm = true, snEps = o.snEps })) end
    self.blocks:add(stage)
  end
  local width = arch.outC[#arch.outC] * o.ch
  self.linear = SN(nn.Linear(width, 1), o.snEps)
  self.embed = SN(nn.Embedding(o.numClasses, width), o.snEps)
  self.options = o
  M.initWeights(self, o.init)
end

-- x: (N, C, R, R) -> h: (N, width), the sum over H, W of the last block's ReLU'd features
function Discriminator:features(x)
  local h = x
  for _, stage in ipairs(self.blocks) do
    for _, block in ipairs(stage) do h = block(h) end
  end
  return h:relu():sum({ 3, 4 })
end

-- x: (N, C, R, R), y: (N) labels -> (N, 1): linear(h) + <embed(y), h>, h = features(x) (the
-- projection head, shared with BigGAN-deep's D)
function Discriminator:forward(x, y)
  local h = self:features(x)
  return self.linear(h) + (self.embed(y) * h):sum(2, true)
end

--- The parameters orthogonal regularization skips in G: the shared embedding (as the reference).
function M.orthoExclude(G) return G.shared end
function Generator:orthoExclude() return self.shared end

--- G and D from a training script's options (scripts/biggan.lua's spec) and the data's
-- `channels` and `numClasses`: one place that maps options to constructors, shared by the
-- script and by training.loadGenerator.
function M.fromOptions(o, channels, numClasses)
  local G = M.Generator { resolution = o.resolution, ch = o.ch, dimZ = o.dimZ, sharedDim = o.sharedDim, shared = o.shared,
    hier = o.hier, numClasses = numClasses, attention = o.GAttn, snEps = o.snEps, bnEps = o.bnEps, init = o.init,
    outChannels = channels }
  local D = M.Discriminator { resolution = o.resolution, ch = o.ch, numClasses = numClasses, attention = o.DAttn,
    snEps = o.snEps, init = o.init, inChannels = channels }
  return G, D
end

--- The generator a checkpoint of scripts/biggan.lua holds (the model protocol of
-- training.loadGenerator): G built from the run's options (BigGAN-deep's with --arch=deep), the
-- state to load (the EMA's unless asked for G's), and how to sample and embed labels.
function M.fromCheckpoint(state, channels, opts)
  local o, meta = state.opt, state.meta or {}
  local G = (o.arch == "deep" and require("models.biggan_deep") or M).fromOptions(o, channels, meta.numClasses)
  local useEMA = opts.ema ~= false and type(state.ema) == "table" and state.ema.__ema
  return {
    G = G, dimZ = G.dimZ, numClasses = meta.numClasses, ema = useEMA and true or false,
    weights = useEMA and state.ema.model.stateDict or state.G.stateDict,
    sample = function(z, labels) return G(z, G:embed(labels)) end,
    embed = function(labels) return G:embed(labels) end,
    sampleEmbedded = function(z, e) return G(z, e) end,
  }
end

-- A BigGAN-PyTorch G state name -> luagan's: output_layer.0 (bn) -> output_bn, output_layer.2
-- -> output_conv, stored_mean/var -> running_mean/var, bn's gain -> weight, an SN layer's
-- weight -> weight_orig, u0 -> weight_u; false for sv0 (the logged sigma, not state here).
local function luaganName(name, state)
  local n = name:gsub("^output_layer%.0%.", "output_bn."):gsub("^output_layer%.2%.", "output_conv.")
  n = n:gsub("%.stored_mean$", ".running_mean"):gsub("%.stored_var$", ".running_var")
  if n == "output_bn.gain" then return "output_bn.weight" end
  local p = n:match("^(.*)%.u0$")
  if p then return p .. ".weight_u" end
  p = n:match("^(.*)%.sv0$")
  if p and state[p .. ".weight_u"] then return false end
  p = n:match("^(.*)%.weight$")
  if p and state[p .. ".weight_orig"] then return p .. ".weight_orig" end
  return n
end

--- Loads a BigGAN-PyTorch state dict (BigGAN.py or BigGANdeep.py names: layers.py's SN keeps
-- `weight` and `u0`, ccbn/bn keep stored_mean/var, bn's gain) into `model`, a luagan BigGAN or
-- BigGAN-deep G or D built with the same configuration. Names map as luaganName above; SN's
-- weight_v = normalize(Wᵀu) is derived (o.snEps, default 1e-6). Unknown or missing names are an
-- error listing them all; o.what names the model in it.
function M.loadPyTorchState(model, sd, o)
  o = o or {}
  local eps, what = o.snEps or 1e-6, o.what or "the model"
  local state = model:stateDict()
  local mapped, unknown = {}, {}
  for name, t in pairs(sd) do
    local n = luaganName(name, state)
    if n and state[n] and tensor.isTensor(t) then
      mapped[n] = n:match("weight_u$") and t:reshape(-1) or t     -- u0 is (1, h)
    elseif n ~= false then
      unknown[#unknown + 1] = name
    end
  end
  local missing = {}
  for name in pairs(state) do
    local p = name:match("^(.*)%.weight_v$")
    if p and mapped[p .. ".weight_u"] and mapped[p .. ".weight_orig"] then   -- v = normalize(Wᵀu), u's partner
      local w = mapped[p .. ".weight_orig"]:to(state[name]:dtype())
      local v = w:reshape(w:size(1), -1):t():matmul(mapped[p .. ".weight_u"]:to(state[name]:dtype()))
      mapped[name] = v / math.max(v:norm():item(), eps)
    elseif name:match("num_batches_tracked$") then
      mapped[name] = state[name]                                  -- BigGAN-PyTorch's bn does not count
    elseif not mapped[name] then
      missing[#missing + 1] = name
    end
  end
  if #unknown > 0 or #missing > 0 then
    table.sort(unknown); table.sort(missing)
    error(("names %s does not take: {%s}; missing: {%s} (luagan's names)")
      :format(what, table.concat(unknown, ", "), table.concat(missing, ", ")), 2)
  end
  model:loadStateDict(mapped)
  return model
end

--- BigGAN-PyTorch's generator from its state dict (ajbrock/BigGAN-PyTorch BigGAN.py Generator,
-- e.g. the released ImageNet-128 G_ema.pth read by tensor.load): the architecture comes from
-- the checkpoint's shapes (resolution from the block count, ch, numClasses, sharedDim, hier
-- and the z chunk, attention from the blocks that hold one, outChannels); the shared embedding
-- is required (G_shared, as every released model). Options: snEps (1e-6) and bnEps (1e-5),
-- which a state dict does not hold (scripts/launch_BigGAN_bs256x8.sh). Names map as
-- luaganName above; weight_v = normalize(Wᵀu) is derived, and an unknown or missing name is an
-- error listing them all. Spectral norm runs BigGAN-PyTorch's eval-mode power step (nn.utils.spectralNormEvalPowerStep).
-- Returns G in eval mode and the options it was built with.
function M.fromPyTorch(sd, o)
  if type(sd) ~= "table" then error("biggan.fromPyTorch: a state dict (name -> tensor, from tensor.load) expected, got " .. type(sd), 2) end
  o = defaults(o, { snEps = 1e-6, bnEps = 1e-5 })
  local function need(name)
    local t = sd[name]
    if not tensor.isTensor(t) then
      error(("biggan.fromPyTorch: the state dict has no tensor %s (a BigGAN-PyTorch G with G_shared expected)"):format(name), 3)
    end
    return t
  end
  local blocks = 0
  while sd[("blocks.%d.0.conv1.weight"):format(blocks)] do blocks = blocks + 1 end
  local resolution = ({ [3] = 32, [4] = 64, [5] = 128 })[blocks]
  if not resolution then error(("biggan.fromPyTorch: %d G blocks; 3, 4 or 5 (32, 64 or 128 px) expected"):format(blocks), 2) end
  local arch = M.arch[resolution].G
  local shared, linear = need("shared.weight"), need("linear.weight")
  local numClasses, sharedDim = shared:size(1), shared:size(2)
  local ch = linear:size(1) // (arch.inC[1] * 16)
  local zChunk = need("blocks.0.0.bn1.gain.weight"):size(2) - sharedDim
  local hier = zChunk > 0
  local attention = {}
  for i = 1, blocks do
    if sd[("blocks.%d.1.gamma"):format(i - 1)] then attention[#attention + 1] = tostring(arch.res[i]) end
  end
  local opts = { resolution = resolution, ch = ch, numClasses = numClasses, sharedDim = sharedDim, shared = true, hier = hier,
                 dimZ = hier and zChunk * (blocks + 1) or linear:size(2),
                 attention = #attention > 0 and table.concat(attention, "_") or "0",
                 outChannels = need("output_layer.2.weight"):size(1), snEps = o.snEps, bnEps = o.bnEps, init = "N02" }
  if hier and linear:size(2) ~= zChunk then
    error(("biggan.fromPyTorch: linear takes %d inputs but the CBNs' z chunk is %d"):format(linear:size(2), zChunk), 2)
  end
  local G = M.Generator(opts)
  local describe = opts.attention ~= "0" and ("%d px, ch %d, attention %s"):format(resolution, ch, opts.attention)
    or ("%d px, ch %d"):format(resolution, ch)
  local ok, err = pcall(M.loadPyTorchState, G, sd,
    { snEps = o.snEps, what = "the BigGAN-PyTorch G built from these shapes (" .. describe .. ")" })
  if not ok then error("biggan.fromPyTorch: " .. tostring(err), 2) end
  nn.utils.spectralNormEvalPowerStep(G, true)
  G:eval()
  return G, opts
end

return M
