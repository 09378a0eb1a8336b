-- inception.lua: Inception-v3 as pytorch-fid defines it for FID (mseitzer/pytorch-fid,
-- src/pytorch_fid/inception.py, built on torchvision's Inception3), so luagan computes the
-- standard FID and IS when given the standard weights:
--   * BasicConv2d = conv (no bias) -> BatchNorm (eps 0.001) -> ReLU;
--   * Mixed_5b-5d, 6b-6e and 7b pool with 3x3 average pools that exclude the padding
--     (count_include_pad=False, TensorFlow's behaviour); Mixed_7c pools with a 3x3 max pool;
--   * input (N, 3, H, W) in [0, 1], resized to 299x299 bilinearly (align_corners=False), then
--     scaled 2x - 1; grayscale images are repeated over 3 channels;
--   * pool3: the 2048-d global average after Mixed_7c (FID, KID); logits: the 1008-way fc
--     (IS uses them without the bias, as the original TF graph: `logitsUnbiased`).
--
-- The weights cannot be downloaded here. Convert pytorch-fid's file once (Python, torch and
-- safetensors installed; pytorch-fid downloads pt_inception-2015-12-05-6726825d.pth):
--
--   python -c "import torch, safetensors.torch as s, pytorch_fid.inception as i; \
--     s.save_file({k: v.float().contiguous() for k, v in i.fid_inception_v3().state_dict().items()}, \
--     'inception-2015-12-05.safetensors')"
--
-- and pass the file to inception.load(path) (or --inception=path to scripts/eval.lua).
local M = {}

local BasicConv2d = nn.Module:extend("BasicConv2d")
function BasicConv2d:init(cin, cout, kernel, opts)
  opts = opts or {}
  self.conv = nn.Conv2d(cin, cout, kernel, { stride = opts.stride or 1, padding = opts.padding or 0, bias = false })
  self.bn = nn.BatchNorm2d(cout, { eps = 0.001 })
end
function BasicConv2d:forward(x) return self.bn(self.conv(x)):relu() end

-- 3x3 stride-1 average pool over the window's real pixels only (count_include_pad=False).
local function avgPoolExcludingPad(x) return x:avgPool2d(3, { stride = 1, padding = 1, countIncludePad = false }) end

local InceptionA = nn.Module:extend("FIDInceptionA")
function InceptionA:init(cin, poolFeatures)
  self.branch1x1 = BasicConv2d(cin, 64, 1)
  self.branch5x5_1 = BasicConv2d(cin, 48, 1)
  self.branch5x5_2 = BasicConv2d(48, 64, 5, { padding = 2 })
  self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
  self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, { padding = 1 })
  self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, { padding = 1 })
  self.branch_pool = BasicConv2d(cin, poolFeatures, 1)
end
function InceptionA:forward(x)
  local b5 = self.branch5x5_2(self.branch5x5_1(x))
  local b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
  return tensor.cat({ self.branch1x1(x), b5, b3, self.branch_pool(avgPoolExcludingPad(x)) }, 2)
end

local InceptionB = nn.Module:extend("InceptionB")   -- Mixed_6a: 35x35 -> 17x17
function InceptionB:init(cin)
  self.branch3x3 = BasicConv2d(cin, 384, 3, { stride = 2 })
  self.branch3x3dbl_1 = BasicConv2d(cin, 64, 1)
  self.branch3x3dbl_2 = BasicConv2d(64, 96, 3, { padding = 1 })
  self.branch3x3dbl_3 = BasicConv2d(96, 96, 3, { stride = 2 })
end
function InceptionB:forward(x)
  local b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
  return tensor.cat({ self.branch3x3(x), b3, x:maxPool2d(3, { stride = 2 }) }, 2)
end

local InceptionC = nn.Module:extend("FIDInceptionC")
function InceptionC:init(cin, c7)
  self.branch1x1 = BasicConv2d(cin, 192, 1)
  self.branch7x7_1 = BasicConv2d(cin, c7, 1)
  self.branch7x7_2 = BasicConv2d(c7, c7, { 1, 7 }, { padding = { 0, 3 } })
  self.branch7x7_3 = BasicConv2d(c7, 192, { 7, 1 }, { padding = { 3, 0 } })
  self.branch7x7dbl_1 = BasicConv2d(cin, c7, 1)
  self.branch7x7dbl_2 = BasicConv2d(c7, c7, { 7, 1 }, { padding = { 3, 0 } })
  self.branch7x7dbl_3 = BasicConv2d(c7, c7, { 1, 7 }, { padding = { 0, 3 } })
  self.branch7x7dbl_4 = BasicConv2d(c7, c7, { 7, 1 }, { padding = { 3, 0 } })
  self.branch7x7dbl_5 = BasicConv2d(c7, 192, { 1, 7 }, { padding = { 0, 3 } })
  self.branch_pool = BasicConv2d(cin, 192, 1)
end
function InceptionC:forward(x)
  local b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
  local d = self.branch7x7dbl_1(x)
  d = self.branch7x7dbl_5(self.branch7x7dbl_4(self.branch7x7dbl_3(self.branch7x7dbl_2(d))))
  return tensor.cat({ self.branch1x1(x), b7, d, self.branch_pool(avgPoolExcludingPad(x)) }, 2)
end

local InceptionD = nn.Module:extend("InceptionD")   -- Mixed_7a: 17x17 -> 8x8
function InceptionD:init(cin)
  self.branch3x3_1 = BasicConv2d(cin, 192, 1)
  self.branch3x3_2 = BasicConv2d(192, 320, 3, { stride = 2 })
  self.branch7x7x3_1 = BasicConv2d(cin, 192, 1)
  self.branch7x7x3_2 = BasicConv2d(192, 192, { 1, 7 }, { padding = { 0, 3 } })
  self.branch7x7x3_3 = BasicConv2d(192, 192, { 7, 1 }, { padding = { 3, 0 } })
  self.branch7x7x3_4 = BasicConv2d(192, 192, 3, { stride = 2 })
end
function InceptionD:forward(x)
  local b3 = self.branch3x3_2(self.branch3x3_1(x))
  local b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
  return tensor.cat({ b3, b7, x:maxPool2d(3, { stride = 2 }) }, 2)
end

-- Mixed_7b (average pool, padding excluded) and Mixed_7c (max pool: pytorch-fid's FIDInceptionE_2).
local InceptionE = nn.Module:extend("FIDInceptionE")
function InceptionE:init(cin, maxPool)
  self.maxPool = maxPool
  self.branch1x1 = BasicConv2d(cin, 320, 1)
  self.branch3x3_1 = BasicConv2d(cin, 384, 1)
  self.branch3x3_2a = BasicConv2d(384, 384, { 1, 3 }, { padding = { 0, 1 } })
  self.branch3x3_2b = BasicConv2d(384, 384, { 3, 1 }, { padding = { 1, 0 } })
  self.branch3x3dbl_1 = BasicConv2d(cin, 448, 1)
  self.branch3x3dbl_2 = BasicConv2d(448, 384, 3, { padding = 1 })
  self.branch3x3dbl_3a = BasicConv2d(384, 384, { 1, 3 }, { padding = { 0, 1 } })
  self.branch3x3dbl_3b = BasicConv2d(384, 384, { 3, 1 }, { padding = { 1, 0 } })
  self.branch_pool = BasicConv2d(cin, 192, 1)
end
function InceptionE:forward(x)
  local b3 = self.branch3x3_1(x)
  b3 = tensor.cat({ self.branch3x3_2a(b3), self.branch3x3_2b(b3) }, 2)
  local d = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
  d = tensor.cat({ self.branch3x3dbl_3a(d), self.branch3x3dbl_3b(d) }, 2)
  local pooled = self.maxPool and x:maxPool2d(3, { stride = 1, padding = 1 }) or avgPoolExcludingPad(x)
  return tensor.cat({ self.branch1x1(x), b3, d, self.branch_pool(pooled) }, 2)
end

local Inception = nn.Module:extend("FIDInceptionV3")
function Inception:init()
  self.Conv2d_1a_3x3 = BasicConv2d(3, 32, 3, { stride = 2 })
  self.Conv2d_2a_3x3 = BasicConv2d(32, 32, 3)
  self.Conv2d_2b_3x3 = BasicConv2d(32, 64, 3, { padding = 1 })
  self.Conv2d_3b_1x1 = BasicConv2d(64, 80, 1)
  self.Conv2d_4a_3x3 = BasicConv2d(80, 192, 3)
  self.Mixed_5b = InceptionA(192, 32)
  self.Mixed_5c = InceptionA(256, 64)
  self.Mixed_5d = InceptionA(288, 64)
  self.Mixed_6a = InceptionB(288)
  self.Mixed_6b = InceptionC(768, 128)
  self.Mixed_6c = InceptionC(768, 160)
  self.Mixed_6d = InceptionC(768, 160)
  self.Mixed_6e = InceptionC(768, 192)
  self.Mixed_7a = InceptionD(768)
  self.Mixed_7b = InceptionE(1280, false)
  self.Mixed_7c = InceptionE(2048, true)
  self.fc = nn.Linear(2048, 1008)
end

--- x: (N, 3 or 1, H, W) in [0, 1] -> pool3 features (N, 2048).
function Inception:features(x)
  if not tensor.isTensor(x) or x:dim() ~= 4 or (x:size(2) ~= 3 and x:size(2) ~= 1) then
    error(("FIDInceptionV3: expected images (N, 3, H, W) or (N, 1, H, W) in [0, 1], got %s"):format(
      tensor.isTensor(x) and "{" .. table.concat(x:shape(), ",") .. "}" or type(x)), 3)
  end
  if x:size(2) == 1 then x = x:expand(x:size(1), 3, x:size(3), x:size(4)) end
  if x:size(3) ~= 299 or x:size(4) ~= 299 then x = image.resize(x, 299, { mode = "bilinear" }) end
  x = x * 2 - 1
  x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x))):maxPool2d(3, { stride = 2 })   -- 147 -> 73
  x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x)):maxPool2d(3, { stride = 2 })                       -- 71 -> 35
  x = self.Mixed_5d(self.Mixed_5c(self.Mixed_5b(x)))
  x = self.Mixed_6e(self.Mixed_6d(self.Mixed_6c(self.Mixed_6b(self.Mixed_6a(x)))))                   -- 17x17, 768
  x = self.Mixed_7c(self.Mixed_7b(self.Mixed_7a(x)))                                                  -- 8x8, 2048
  return x:mean({ 3, 4 })
end

--- x -> pool3 (N, 2048), logits (N, 1008) with the fc bias, logits without it (for IS).
function Inception:forward(x)
  local pool3 = self:features(x)
  local unbiased = pool3:matmul(self.fc.weight:t())
  return pool3, unbiased + self.fc.bias, unbiased
end

M.Inception = Inception

--- An Inception-v3 with untrained weights (fill them with loadStateDict).
function M.new() return Inception() end

--- The network with the converted pytorch-fid weights from `path`, in eval mode. BatchNorm's
-- num_batches_tracked counters may be absent from the file (older PyTorch exports).
function M.load(path)
  if type(path) ~= "string" then
    error("inception.load: pass the path of the converted weights (see scripts/lib/inception.lua for the command)", 2)
  end
  local f = io.open(path, "rb")
  if not f then error(("inception.load: no weights at %s (see scripts/lib/inception.lua for the conversion command)"):format(path), 2) end
  f:close()
  local rng = tensor.getRNGState()   -- the random init is overwritten: leave the stream as it was
  local net = Inception()
  tensor.setRNGState(rng)
  local state = tensor.load(path)
  for name, t in pairs(net:stateDict()) do
    if name:match("num_batches_tracked$") and state[name] == nil then state[name] = t end
  end
  net:loadStateDict(state)
  net:eval()
  return net
end

return M
