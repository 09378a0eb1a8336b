-- Inception-v3 (scripts/lib/inception.lua) against pytorch-fid's own InceptionV3 on the same
-- closed-form weights and the same two images (fixture group "inception", written by
-- scripts/dev/fixtures/make_metric_fixtures.py, which also states the weight formula).
local T = require("testing")
local fixtures = require("fixtures")
local inception = require("inception")
local f = fixtures.load("inception")

-- The fixture's closed-form weights: entry i of the k-th state-dict tensor (keys sorted) is
-- base[(i + k * 104729) mod 10007] with base[j] = ((j * 7919) mod 10007) / 10007 - 0.5,
-- scaled by kind, in float64, then rounded to float32.
local P = 10007
local base = {}
for j = 0, P - 1 do base[j + 1] = ((j * 7919) % P) / P - 0.5 end
local baseTensor = tensor.new(base, { dtype = "float64" })

local function pattern(n, k)
  local offset = (k * 104729) % P
  local copies = (n + offset) // P + 1
  local tiled = {}
  for c = 1, copies do tiled[c] = baseTensor end
  return tensor.cat(tiled, 1):narrow(1, offset + 1, n)
end

local function closedFormState(state)
  local names = {}
  for name in pairs(state) do names[#names + 1] = name end
  table.sort(names)
  local out = {}
  for k, name in ipairs(names) do
    local t = state[name]
    if name:match("num_batches_tracked$") then
      out[name] = tensor.zeros(t:shape())
    else
      local u = pattern(t:numel(), k - 1)
      local v
      if name:match("conv%.weight$") then
        v = u * math.sqrt(24 / (t:size(2) * t:size(3) * t:size(4)))
      elseif name:match("bn%.weight$") then
        v = u * 0.4 + 1
      elseif name:match("bn%.bias$") or name:match("running_mean$") or name == "fc.bias" then
        v = u * 0.2
      elseif name:match("running_var$") then
        v = u * 0.5 + 1.5
      elseif name == "fc.weight" then
        v = u * math.sqrt(12 / 2048)
      else
        error("unexpected state entry " .. name)
      end
      out[name] = v:to("float32"):view(t:shape())
    end
  end
  return out
end

-- Features within 1e-4 (the issue's bar); achieved max differences are printed.
local atol, rtol = 1e-4, 1e-4

T.test("pytorch-fid's Inception-v3 architecture: pool3 and logits match on the same weights", function()
  local net = inception.new()
  local state = closedFormState(net:stateDict())
  T.close(state["fc.weight"]:view(-1):narrow(1, 1, 8), f["check.fc_weight_head"], 0, 0, "closed-form weights agree with Python")
  T.close(state["Conv2d_1a_3x3.conv.weight"]:view(-1):narrow(1, 1, 8), f["check.conv_head"], 0, 0, "closed-form conv weights")
  net:loadStateDict(state)
  net:eval()
  local pool3, logits, unbiased = tensor.noGrad(function() return net(f.images) end)
  T.close(pool3, f.pool3, atol, rtol, "pool3")
  T.close(logits, f.logits, atol, rtol, "logits")
  T.close(unbiased, f.logits_unbiased, atol, rtol, "logits without bias")
  print(("inception: max |diff| pool3 %.2e, logits %.2e (max |pool3| %.3f)"):format(
    T.maxDiff(pool3, f.pool3), T.maxDiff(logits, f.logits), f.pool3:abs():max():item()))
  -- grayscale input is repeated over the channels
  local gray = f.images:narrow(2, 1, 1)
  local a = tensor.noGrad(function() return net:features(gray) end)
  local b = tensor.noGrad(function() return net:features(gray:expand(2, 3, 32, 32):contiguous()) end)
  T.close(a, b, 0, 0, "grayscale = repeated channels")
end)

T.test("inception.load fills missing BatchNorm counters and rejects wrong files", function()
  local net = inception.new()
  local state = closedFormState(net:stateDict())
  local trimmed = {}
  for k, v in pairs(state) do if not k:match("num_batches_tracked$") then trimmed[k] = v end end
  local path = os.tmpname()
  tensor.save(path, trimmed)
  local loaded = inception.load(path)
  local pool3 = tensor.noGrad(function() return loaded:features(f.images) end)
  T.close(pool3, f.pool3, atol, rtol, "pool3 after load")
  tensor.save(path, { ["fc.weight"] = tensor.zeros(3, 3) })
  T.checkError("fc.weight", inception.load, path)
  os.remove(path)
  T.checkError("no weights at", inception.load, "/nonexistent.safetensors")
  T.checkError("pass the path", inception.load)
  T.checkError("expected images", function() return loaded:features(tensor.zeros(2, 4, 8, 8)) end)
end)

T.finish("inception_net")
