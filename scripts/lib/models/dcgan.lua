-- models/dcgan.lua: DCGAN (Radford, Metz & Chintala 2016) as soumith/dcgan.torch builds it,
-- for 32x32 images: G = transposed convs with BatchNorm and ReLU, tanh at the end; D = strided
-- convs with LeakyReLU 0.2 and BatchNorm (none on the input layer); weights N(0, 0.02), BN
-- gains N(1, 0.02) and biases 0.
local M = {}

local function bnInit(m)
  nn.init.normal(m.weight, 1, 0.02)
  nn.init.zeros(m.bias)
end

--- z (N, nz) -> images (N, nc, 32, 32) in [-1, 1].
local Generator = nn.Module:extend("DCGAN.Generator")
M.Generator = Generator
function Generator:init(o)
  local nz, ngf, nc = o.nz or 100, o.ngf or 64, o.nc or 3
  self.nz = nz
  self.net = nn.Sequential(
    nn.ConvTranspose2d(nz, ngf * 4, 4, { stride = 1, padding = 0, bias = false }), nn.BatchNorm2d(ngf * 4), nn.ReLU(),      -- 4x4
    nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, { stride = 2, padding = 1, bias = false }), nn.BatchNorm2d(ngf * 2), nn.ReLU(), -- 8x8
    nn.ConvTranspose2d(ngf * 2, ngf, 4, { stride = 2, padding = 1, bias = false }), nn.BatchNorm2d(ngf), nn.ReLU(),         -- 16x16
    nn.ConvTranspose2d(ngf, nc, 4, { stride = 2, padding = 1, bias = false }), nn.Tanh())                                 -- 32x32
  M.init(self)
end
function Generator:forward(z) return self.net(z:view(z:size(1), self.nz, 1, 1)) end

--- images (N, nc, 32, 32) -> logits (N, 1).
local Discriminator = nn.Module:extend("DCGAN.Discriminator")
M.Discriminator = Discriminator
function Discriminator:init(o)
  local ndf, nc = o.ndf or 64, o.nc or 3
  self.net = nn.Sequential(
    nn.Conv2d(nc, ndf, 4, { stride = 2, padding = 1, bias = false }), nn.LeakyReLU(0.2),                                 -- 16x16
    nn.Conv2d(ndf, ndf * 2, 4, { stride = 2, padding = 1, bias = false }), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2),    -- 8x8
    nn.Conv2d(ndf * 2, ndf * 4, 4, { stride = 2, padding = 1, bias = false }), nn.BatchNorm2d(ndf * 4), nn.LeakyReLU(0.2),-- 4x4
    nn.Conv2d(ndf * 4, 1, 4, { stride = 1, padding = 0, bias = false }))                                                  -- 1x1
  M.init(self)
end
function Discriminator:forward(x) return self.net(x):view(-1, 1) end

--- dcgan.torch's weights_init.
function M.init(model)
  tensor.noGrad(function()
    for _, m in ipairs(model:modules()) do
      local t = m:typeName()
      if t == "Conv2d" or t == "ConvTranspose2d" then nn.init.normal(m.weight, 0, 0.02)
      elseif t == "BatchNorm2d" then bnInit(m) end
    end
  end)
end

--- The generator a checkpoint of scripts/dcgan.lua holds (the model protocol of
-- training.loadGenerator): G and its state (dcgan.lua keeps no EMA), sampled as G(z).
function M.fromCheckpoint(state, channels)
  local G = M.fromOptions(state.opt, channels)
  return { G = G, dimZ = state.opt.nz, numClasses = 0, ema = false, weights = state.G.stateDict,
           sample = function(z) return G(z) end }
end

--- G and D from scripts/dcgan.lua's options and the data's `channels` (shared with
-- training.loadGenerator).
function M.fromOptions(o, channels)
  return M.Generator { nz = o.nz, ngf = o.ngf, nc = channels }, M.Discriminator { ndf = o.ndf, nc = channels }
end

return M
