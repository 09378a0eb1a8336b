-- models/biggan_deep_weights.lua: BigGAN-deep built from PyTorch weights: pytorch-pretrained-
-- BigGAN's pytorch_model.bin (the TF-Hub BigGAN-deep 128/256/512, converted) and BigGAN-PyTorch's
-- BigGANdeep.py G.pth. The network itself is models/biggan_deep.lua.
local deep = require("models.biggan_deep")
local biggan = require("models.biggan")
local defaults = deep.defaults

local M = {}

-- 1-based permutations that turn pytorch-pretrained-BigGAN's layouts into this G's.
-- Rows of gen_z: it reshapes to TF's (N, 4, 4, C), this G to (N, C, 4, 4).
local function nhwcRows(c)
  local idx = {}
  for ch = 0, c - 1 do
    for p = 0, 15 do idx[#idx + 1] = p * c + ch + 1 end
  end
  return idx
end
-- Columns of every condition-taking linear: its condition is [z, embedding], this G's [embedding, z].
local function embeddingFirst(dimZ, embedDim)
  local idx = {}
  for j = 1, embedDim do idx[j] = dimZ + j end
  for j = 1, dimZ do idx[embedDim + j] = j end
  return idx
end

--- pytorch-pretrained-BigGAN's BigGAN-deep generator (huggingface/pytorch-pretrained-BigGAN
-- model.py, the TF-Hub BigGAN-deep 128/256/512 converted; its pytorch_model.bin read by
-- tensor.load) as a BigGANdeep.Generator. The configuration comes from the state dict's
-- shapes: resolution from the block count (10, 12, 14 -> 128, 256, 512), ch from gen_z,
-- numClasses and dimZ from the embedding, attention from the layer holding one. What differs
-- from BigGANdeep.py is mapped, not re-implemented: gen_z's rows (TF's NHWC reshape) and the
-- [z, embedding] condition's columns are permuted, with the spectral-norm vectors u and v;
-- eps is 1e-4 for every BN and SN (its config); the RGB conv is ch wide and the image is its
-- first three channels; each BN's statistics are indexed by truncation (Generator:setTruncation;
-- set to 1 here). Spectral norm in eval mode is torch.nn.utils.spectral_norm's (stored u and v).
-- Unknown or missing names are an error listing them. Returns G in eval mode and its options.
function M.fromPretrained(sd, o)
  if type(sd) ~= "table" then
    error("biggan_deep.fromPretrained: a state dict (name -> tensor, from tensor.load) expected, got " .. type(sd), 2)
  end
  o = o or {}
  local function need(name)
    local t = sd[name]
    if not tensor.isTensor(t) then
      error(("biggan_deep.fromPretrained: the state dict has no tensor %s (pytorch-pretrained-BigGAN's BigGAN-deep expected)")
        :format(name), 3)
    end
    return t
  end
  local embeddings, genZ = need("embeddings.weight"), need("generator.gen_z.weight_orig")
  local layers, attentionAt = 0, nil
  while sd[("generator.layers.%d.conv_0.weight_orig"):format(layers)] or sd[("generator.layers.%d.gamma"):format(layers)] do
    if sd[("generator.layers.%d.gamma"):format(layers)] then attentionAt = layers end
    layers = layers + 1
  end
  local blocks = layers - (attentionAt and 1 or 0)
  local resolution = ({ [10] = 128, [12] = 256, [14] = 512 })[blocks]
  if not resolution then
    error(("biggan_deep.fromPretrained: %d generator blocks; 10, 12 or 14 (128, 256 or 512 px) expected"):format(blocks), 2)
  end
  local arch = deep.arch[resolution].G
  local dimZ, numClasses = embeddings:size(1), embeddings:size(2)
  if genZ:dim() ~= 2 or genZ:size(2) ~= 2 * dimZ or genZ:size(1) % 256 ~= 0 then
    error(("biggan_deep.fromPretrained: gen_z is %s; (4 * 4 * 16 * ch, %d) expected from the %d-wide embedding")
      :format(table.concat(genZ:shape(), "x"), 2 * dimZ, dimZ), 2)
  end
  local ch = genZ:size(1) // 256
  local attention = "0"
  if attentionAt then
    if attentionAt % 2 ~= 0 then
      error(("biggan_deep.fromPretrained: attention at layer %d, inside a resolution"):format(attentionAt), 2)
    end
    attention = tostring(arch.res[attentionAt // 2])
  end
  local opts = { resolution = resolution, ch = ch, depth = 2, dimZ = dimZ, sharedDim = dimZ, numClasses = numClasses,
                 attention = attention, snEps = 1e-4, bnEps = 1e-4, outputBnEps = 1e-4, init = "N02", outChannels = 3,
                 outputWidth = need("generator.conv_to_rgb.weight_orig"):size(1) }
  local G = deep.Generator(opts)
  local state = G:stateDict()
  local rows, cols = nhwcRows(arch.inC[1] * ch), embeddingFirst(dimZ, dimZ)
  local mapped, unknown, stats = {}, {}, {}
  local function put(name, t) if state[name] then mapped[name] = t else unknown[#unknown + 1] = name end end
  for name, t in pairs(sd) do
    if not tensor.isTensor(t) then unknown[#unknown + 1] = name; goto continue end
    local rest = name:match("^generator%.(.*)$")
    if name == "embeddings.weight" then
      mapped["shared.weight"] = t:t():contiguous()
    elseif rest and rest:match("^gen_z%.") then
      local field = rest:match("^gen_z%.(.*)$")
      if field == "weight_orig" then t = t:indexSelect(1, rows):indexSelect(2, cols)
      elseif field == "weight_u" or field == "bias" then t = t:indexSelect(1, rows)
      elseif field == "weight_v" then t = t:indexSelect(1, cols) end
      put("linear." .. field, t)
    elseif rest and rest:match("^layers%.") then
      local l, field = rest:match("^layers%.(%d+)%.(.*)$")
      l = tonumber(l)
      if l == attentionAt then
        local part = field:gsub("^snconv1x1_o_conv%.", "o."):gsub("^snconv1x1_(%a+)%.", "%1.")
        put(("blocks.%d.2.%s"):format(l // 2 - 1, part), part == "gamma" and t:reshape({}) or t)
      else
        local k = (attentionAt and l > attentionAt) and l - 1 or l       -- the GenBlock's index
        local prefix = ("blocks.%d.%d."):format(k // 2, k % 2)
        local i, what = field:match("^bn_(%d)%.(.*)$")
        if i and (what == "running_means" or what == "running_vars") then
          local bn = prefix .. "bn" .. (tonumber(i) + 1)
          stats[bn] = stats[bn] or {}
          stats[bn][what] = t
        elseif i and what:match("^%a+%.") then
          local sub, f = what:match("^(%a+)%.(.*)$")
          sub = ({ scale = "gain", offset = "bias" })[sub] or sub
          if f == "weight_orig" then t = t:indexSelect(2, cols) elseif f == "weight_v" then t = t:indexSelect(1, cols) end
          put(("%sbn%d.%s.%s"):format(prefix, tonumber(i) + 1, sub, f), t)
        else
          local c, f = field:match("^conv_(%d)%.(.*)$")
          if c then put(("%sconv%d.%s"):format(prefix, tonumber(c) + 1, f), t) else unknown[#unknown + 1] = name end
        end
      end
    elseif rest and rest:match("^bn%.") then
      local f = rest:match("^bn%.(.*)$")
      if f == "running_means" or f == "running_vars" then
        stats.output_bn = stats.output_bn or {}
        stats.output_bn[f] = t
      else
        put("output_bn." .. f, t)
      end
    elseif rest and rest:match("^conv_to_rgb%.") then
      put("output_conv." .. rest:match("^conv_to_rgb%.(.*)$"), t)
    else
      unknown[#unknown + 1] = name
    end
    ::continue::
  end
  -- every BN's statistics: tables (n, C) kept on G; running_mean/var get truncation 1's
  local truncationStats, count = {}, nil
  for bn, s in pairs(stats) do
    local m, v = s.running_means, s.running_vars
    if not (m and v) or m:dim() ~= 2 or v:dim() ~= 2 or m:size(1) ~= v:size(1) or m:size(2) ~= v:size(2)
      or (count and m:size(1) ~= count) or m:size(1) < 2 then
      error(("biggan_deep.fromPretrained: %s needs running_means and running_vars of one shape (n_stats >= 2, C)"):format(bn), 2)
    end
    count = s.running_means:size(1)
    mapped[bn .. ".running_mean"] = s.running_means:select(1, count)
    mapped[bn .. ".running_var"] = s.running_vars:select(1, count)
    truncationStats[#truncationStats + 1] = { name = bn, means = s.running_means, vars = s.running_vars }
  end
  local missing = {}
  for name in pairs(state) do
    if name:match("num_batches_tracked$") then mapped[name] = state[name]
    elseif not mapped[name] then missing[#missing + 1] = name end
  end
  if #unknown > 0 or #missing > 0 then
    table.sort(unknown); table.sort(missing)
    error(("biggan_deep.fromPretrained: names the BigGAN-deep G built from these shapes (%d px, ch %d, attention %s) does not take: {%s}; "
      .. "missing: {%s} (luagan's names)"):format(resolution, ch, attention, table.concat(unknown, ", "), table.concat(missing, ", ")), 2)
  end
  local ok, err = pcall(G.loadStateDict, G, mapped)
  if not ok then error("biggan_deep.fromPretrained: " .. tostring(err), 2) end
  table.sort(truncationStats, function(a, b) return a.name < b.name end)
  for _, s in ipairs(truncationStats) do          -- "blocks.3.1.bn2" -> G.blocks[4][2].bn2
    local m = G
    for part in s.name:gmatch("[^.]+") do
      local n = tonumber(part)
      m = n and m[n + 1] or m[part]
    end
    s.bn = m
  end
  truncationStats.count = count
  G.truncationStats = truncationStats
  G:eval()
  G:setTruncation(1.0)
  return G, opts
end

--- BigGAN-PyTorch's BigGANdeep.py generator from its state dict (G.pth / G_ema.pth saved by
-- its train.py, read by tensor.load): resolution from the stage count (3-6 -> 32-256 px),
-- depth from the blocks per stage, ch from the first block, numClasses and sharedDim from the
-- shared embedding, dimZ from linear, attention from the stages holding one. Options: snEps
-- (1e-6), bnEps (1e-5) (scripts/launch_BigGAN_deep.sh). Spectral norm runs BigGAN-PyTorch's
-- eval-mode power step. Returns G in eval mode and its options.
function M.fromPyTorch(sd, o)
  if type(sd) ~= "table" then
    error("biggan_deep.fromPyTorch: a state dict (name -> tensor, from tensor.load) expected, got " .. type(sd), 2)
  end
  o = defaults(o, { snEps = 1e-6, bnEps = 1e-5 })
  local stages, depth = 0, 0
  while sd[("blocks.%d.0.conv1.weight"):format(stages)] do stages = stages + 1 end
  while sd[("blocks.0.%d.conv4.weight"):format(depth)] do depth = depth + 1 end
  local resolution = ({ [3] = 32, [4] = 64, [5] = 128, [6] = 256 })[stages]
  local shared, linear = sd["shared.weight"], sd["linear.weight"]
  if not resolution or depth == 0 or not tensor.isTensor(shared) or not tensor.isTensor(linear) then
    error(("biggan_deep.fromPyTorch: a BigGANdeep.py G state dict expected (shared.weight, linear.weight and 3-6 stages of "
      .. "bottleneck blocks blocks.i.j.conv1-4), got %d stages"):format(stages), 2)
  end
  local arch = deep.arch[resolution].G
  local attention = {}
  for i = 1, stages do
    if sd[("blocks.%d.%d.gamma"):format(i - 1, depth)] then attention[#attention + 1] = tostring(arch.res[i]) end
  end
  local opts = { resolution = resolution, ch = sd["blocks.0.0.conv1.weight"]:size(2) // arch.inC[1], depth = depth,
                 numClasses = shared:size(1), sharedDim = shared:size(2), dimZ = linear:size(2) - shared:size(2),
                 attention = #attention > 0 and table.concat(attention, "_") or "0", snEps = o.snEps, bnEps = o.bnEps,
                 init = "N02", outChannels = sd["output_layer.2.weight"] and sd["output_layer.2.weight"]:size(1) or 3 }
  local G = deep.Generator(opts)
  local ok, err = pcall(biggan.loadPyTorchState, G, sd, { snEps = o.snEps,
    what = ("the BigGANdeep.py G built from these shapes (%d px, ch %d, depth %d, attention %s)")
      :format(resolution, opts.ch, depth, opts.attention) })
  if not ok then error("biggan_deep.fromPyTorch: " .. tostring(err), 2) end
  nn.utils.spectralNormEvalPowerStep(G, true)
  G:eval()
  return G, opts
end

return M
