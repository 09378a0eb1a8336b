-- models/pggan.lua: the progressively grown generator and discriminator of Karras et al. 2018,
-- as tkarras/progressive_growing_of_gans builds them (networks.py G_paper / D_paper): equalized
-- learning rate on every weight (biases unscaled, zero init), pixelnorm after every G conv and on
-- the latent, leaky ReLU 0.2, nearest upsampling and 2x2 average pooling (unfused, as the
-- paper's runs), minibatch standard deviation before D's 4x4 block, and no tanh on G's output.
--
-- Both networks run at the current resolution: G(z, level, t) returns images of 4·2^level
-- pixels, D(x, level, t) takes them. During a fade (t in (0, 1], t = lod - floor(lod), which
-- goes 1 -> 0), G blends the new level's toRGB with the upsampled previous one and D blends the
-- new fromRGB path with fromRGB of the pooled image, each as (1 - t)·new + t·old.
local M = {}

local sqrt2 = math.sqrt(2)

--- Feature maps at a stage: min(floor(fmapBase / 2^(stage·decay)), fmapMax).
function M.nf(o, stage) return math.min(math.floor(o.fmapBase / 2 ^ (stage * o.fmapDecay)), o.fmapMax) end

-- Equalized learning rate (the paper's): N(0, 1) parameters scaled by gain/√fan_in at run time.
-- Without it (PGGAN's Table 1 rows a-e), ordinary He init N(0, gain²/fan_in) and zero biases.
local function heInit(m, gain, fanIn)
  tensor.noGrad(function()
    nn.init.normal(m.weight, 0, gain / math.sqrt(fanIn))
    if m.bias then nn.init.zeros(m.bias) end
  end)
  return m
end

local function conv(o, cin, cout, k, gain)
  gain = gain or sqrt2
  if o.equalized then return nn.Conv2d(cin, cout, k, { padding = k // 2, equalized = true, gain = gain }) end
  return heInit(nn.Conv2d(cin, cout, k, { padding = k // 2 }), gain, cin * k * k)
end

local function linear(o, cin, cout, gain, bias)
  if o.equalized then return nn.Linear(cin, cout, { bias = bias, equalized = true, gain = gain }) end
  return heInit(nn.Linear(cin, cout, { bias = bias }), gain, cin)
end

local function defaults(o, d)
  o = o or {}
  for k, v in pairs(d) do if o[k] == nil then o[k] = v end end
  if o.resolution < 4 or 2 ^ math.floor(math.log(o.resolution, 2) + 0.5) ~= o.resolution then
    error(("PGGAN: resolution must be a power of two >= 4, got %s"):format(tostring(o.resolution)), 3)
  end
  o.levels = math.floor(math.log(o.resolution, 2) + 0.5) - 1       -- 4x4 is level 1
  return o
end

local defaultOptions = { resolution = 32, channels = 3, latent = 128, fmapBase = 4096, fmapDecay = 1.0, fmapMax = 128,
                         mbstdGroup = 4, equalized = true, pixelnorm = true }

--- The generator. Options: resolution (32), channels (3), latent (128), fmapBase (4096),
-- fmapDecay (1), fmapMax (128) — the paper's CIFAR-10 sizes; equalized (true: the equalized
-- learning rate) and pixelnorm (true), which PGGAN's Table 1 switches off.
local Generator = nn.Module:extend("PGGAN.Generator")
M.Generator = Generator
function Generator:init(o)
  o = defaults(o, defaultOptions)
  self.options = o
  local nf1 = M.nf(o, 1)
  self.pixelnorm = o.pixelnorm and nn.PixelNorm() or nn.Identity()
  -- 4x4: dense latent -> nf(1)·16 with gain √2/4 (the Theano 4x4 "full" conv), then one bias
  -- per channel after the reshape, lrelu, pixelnorm; then conv3x3.
  self.dense = linear(o, o.latent, nf1 * 16, sqrt2 / 4, false)
  self.dense_bias = tensor.zeros(nf1):requiresGrad(true)
  self.conv4 = conv(o, nf1, nf1, 3)
  self.blocks = nn.ModuleList()     -- level l >= 2 (8x8 and up): upsample, conv3x3, conv3x3
  self.toRGB = nn.ModuleList { conv(o, nf1, o.channels, 1, 1) }
  for level = 2, o.levels do
    local cin, cout = M.nf(o, level - 1), M.nf(o, level)
    self.blocks:add(nn.Sequential(conv(o, cin, cout, 3), conv(o, cout, cout, 3)))
    self.toRGB:add(conv(o, cout, o.channels, 1, 1))
  end
end

local function act(x) return x:leakyRelu(0.2) end

--- One G block's convs with their activation and pixelnorm: conv -> lrelu -> PN, twice.
function Generator:block(level, h)
  local seq = self.blocks[level - 1]
  for _, c in ipairs(seq:children()) do h = self.pixelnorm(act(c(h))) end
  return h
end

-- z: (N, latent); level: 1 (4x4) .. levels; t: fade weight of the previous level (0: none)
-- -> images (N, channels, 4·2^(level-1), same)
function Generator:forward(z, level, t)
  t = t or 0
  local n = z:size(1)
  local nf1 = M.nf(self.options, 1)
  local h = self.dense(self.pixelnorm(z)):view(n, nf1, 4, 4) + self.dense_bias:view(1, nf1, 1, 1)
  h = self.pixelnorm(act(h))
  h = self.pixelnorm(act(self.conv4(h)))
  local previous
  for l = 2, level do
    if l == level and t > 0 then previous = self.toRGB[l - 1](h):upsampleNearest(2) end
    h = self:block(l, h:upsampleNearest(2))
  end
  local img = self.toRGB[level](h)
  if previous then img = img * (1 - t) + previous * t end
  return img
end

--- The discriminator. Options as the generator's, plus mbstdGroup (4, TF's default; the
-- paper's runs used the whole minibatch; 0: no minibatch stddev layer, Table 1's rows a-d).
local Discriminator = nn.Module:extend("PGGAN.Discriminator")
M.Discriminator = Discriminator
function Discriminator:init(o)
  o = defaults(o, defaultOptions)
  self.options = o
  local nf0, nf1 = M.nf(o, 0), M.nf(o, 1)
  self.fromRGB = nn.ModuleList()
  self.blocks = nn.ModuleList()    -- level l >= 2: conv3x3 nf(l) -> nf(l), conv3x3 -> nf(l-1), avgpool
  for level = 1, o.levels do self.fromRGB:add(conv(o, o.channels, M.nf(o, level), 1)) end
  for level = 2, o.levels do
    self.blocks:add(nn.Sequential(conv(o, M.nf(o, level), M.nf(o, level), 3), conv(o, M.nf(o, level), M.nf(o, level - 1), 3)))
  end
  local withMbstd = o.mbstdGroup > 0
  self.mbstd = withMbstd and nn.MinibatchStdDev(o.mbstdGroup) or nn.Identity()
  self.conv4 = conv(o, nf1 + (withMbstd and 1 or 0), nf1, 3)
  self.dense0 = linear(o, nf1 * 16, nf0, sqrt2, true)
  self.dense1 = linear(o, nf0, 1, 1, true)
end

function Discriminator:block(level, h)
  for _, c in ipairs(self.blocks[level - 1]:children()) do h = act(c(h)) end
  return h:avgPool2d(2)
end

-- x: (N, channels, R, R) at the level's resolution -> scores (N, 1)
function Discriminator:forward(x, level, t)
  t = t or 0
  local h = act(self.fromRGB[level](x))
  for l = level, 2, -1 do
    h = self:block(l, h)
    if l == level and t > 0 then
      h = h * (1 - t) + act(self.fromRGB[l - 1](x:avgPool2d(2))) * t
    end
  end
  h = act(self.conv4(self.mbstd(h)))
  h = act(self.dense0(h:flatten(2)))
  return self.dense1(h)
end

--- The side in pixels of the images at a level: 4 at level 1, doubling with each level.
function M.resolutionOf(level) return 4 << (level - 1) end

--- The level to run and the fade weight t = lod - floor(lod) of the previous level, for a
-- level of detail lod (0 = the final resolution).
function M.levelOf(lod, resolution)
  local R = math.floor(math.log(resolution, 2) + 0.5)
  return (R - 2 - math.floor(lod)) + 1, lod - math.floor(lod)
end

--- The lod schedule (train.py TrainingSchedule): after `kimg` thousand real images, with
-- stabilise and fade lengths trainKimg / transKimg and growth from 4x4 to the final
-- resolution, returns lod (0 = final resolution), the level to run (1 = 4x4) and the fade
-- weight t = lod - floor(lod) of the previous level.
function M.schedule(kimg, o)
  local R = math.floor(math.log(o.resolution, 2) + 0.5)
  local phase = o.trainKimg + o.transKimg
  local phaseIdx = phase > 0 and math.floor(kimg / phase) or 0
  local phaseKimg = kimg - phaseIdx * phase
  local lod = R - 2 - phaseIdx
  if o.transKimg > 0 then lod = lod - math.max(phaseKimg - o.trainKimg, 0) / o.transKimg end
  lod = math.max(lod, 0)
  return lod, M.levelOf(lod, o.resolution)
end

--- Reals at a level with the fade: x·(1 - t) + upsample(avgpool(x))·t (process_reals), from
-- images at the final resolution box-downscaled to the level's.
function M.realsAt(x, level, t, resolution)
  local size = M.resolutionOf(level)
  if size < resolution then x = x:avgPool2d(resolution // size) end
  if t > 0 then x = x * (1 - t) + x:avgPool2d(2):upsampleNearest(2) * t end
  return x
end

--- PGGAN's sampling rule: G's images at (level, t), shown at the final resolution (nearest
-- upsampling of a lower level) and clipped to [-1, 1] as the reference's uint8 conversion does
-- (G has no tanh).
function M.sampleAt(G, z, level, t, resolution)
  local x = G(z, level, t)
  if x:size(3) < resolution then x = x:upsampleNearest(resolution // x:size(3)) end
  return x:clamp(-1, 1)
end

--- The generator a checkpoint of scripts/pggan.lua holds (the model protocol of
-- training.loadGenerator): G built from the run's options, the state to load (Gs's unless
-- asked for G's), and sample(z) at the level and fade the run had reached.
function M.fromCheckpoint(state, channels, opts)
  local o, s = state.opt, state.schedule
  local G = M.fromOptions(o, channels)
  local useEMA = opts.ema ~= false and type(state.Gs) == "table" and state.Gs.__ema
  return {
    G = G, dimZ = o.latent, numClasses = 0, lod = s.lod, level = s.level, t = s.t, ema = useEMA and true or false,
    weights = useEMA and state.Gs.model.stateDict or state.G.stateDict,
    sample = function(z) return M.sampleAt(G, z, s.level, s.t, o.resolution) end,
    describe = function()
      local size = M.resolutionOf(s.level)
      return s.lod > 0 and ("a %dx%d PGGAN generator%s (lod %.2f): its samples are upsampled to %dx%d"):format(size, size,
        s.t > 0 and (", fading in from %dx%d"):format(size // 2, size // 2) or "", s.lod, o.resolution, o.resolution) or nil
    end,
  }
end

--- G and D from scripts/pggan.lua's options and the data's `channels` (shared with
-- training.loadGenerator).
function M.fromOptions(o, channels)
  local sizes = { resolution = o.resolution, channels = channels, latent = o.latent, fmapBase = o.fmapBase,
                  fmapMax = o.fmapMax, mbstdGroup = o.mbstdGroup, equalized = o.equalized ~= false, pixelnorm = o.pixelnorm ~= false }
  return M.Generator(sizes), M.Discriminator(sizes)
end

return M
