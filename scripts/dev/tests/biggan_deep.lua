-- BigGAN-deep (scripts/lib/models/biggan_deep.lua) against the two references, on random
-- weights written by scripts/dev/fixtures/make_biggan_deep.py:
-- * pytorch-pretrained-BigGAN's own model.py at its 128, 256 and 512 configurations (channel
--   width 4): biggan_deep.fromPretrained on its state dict, sampled at three truncations with
--   one-hot and mixed class vectors, must give its outputs;
-- * BigGAN-PyTorch's BigGANdeep.py G and D at 32 px: the same state in luagan's G and D must give
--   the same training-mode samples, scores and gradients.
local T = require("testing")
local deep = require("models.biggan_deep")
local biggan = require("models.biggan")
local root = os.getenv("LUAGAN_HOME") or (debug.getinfo(1, "S").source:match("^@(.*)/scripts/dev/tests/") or ".")
local dir = root .. "/Tests/Fixtures/pth/"

local function every(stride, n)                 -- the 1-based indices 1, 1 + stride, ... <= n
  local idx = {}
  for i = 1, n, stride do idx[#idx + 1] = i end
  return idx
end
-- out (N, C, R, R) at every stride-th pixel: the fixture's 64 x 64 grid
local function grid(out, resolution)
  local idx = every(resolution // 64, resolution)
  return out:indexSelect(3, idx):indexSelect(4, idx)
end

for _, resolution in ipairs({ 128, 256, 512 }) do
  T.test(("pytorch-pretrained-BigGAN's BigGAN-deep %d: same samples at every truncation"):format(resolution), function()
    local sd = tensor.load(dir .. ("biggan_deep_%d.bin"):format(resolution))
    local f = tensor.load(dir .. ("biggan_deep_%d.safetensors"):format(resolution))
    local G, o = deep.fromPretrained(sd)
    T.check(o.resolution == resolution and o.ch == 4 and o.dimZ == 128 and o.numClasses == 1000 and o.attention == "64"
      and o.outputWidth == 4, "the configuration read from the shapes")
    local worst = 0
    for i = 0, 2 do
      local truncation = f["truncation" .. i]:item()
      G:setTruncation(truncation)
      local out = tensor.noGrad(function() return G(f["z" .. i], G:embed(f["y" .. i])) end)
      T.close(grid(out, resolution), f["out" .. i], 1e-4, 1e-4, ("G(z, class vector) at truncation %g"):format(truncation))
      worst = math.max(worst, T.maxDiff(grid(out, resolution), f["out" .. i]))
    end
    -- the statistics matter: at another truncation's the output moves
    G:setTruncation(0.02)
    local other = tensor.noGrad(function() return G(f.z0, G:embed(f.y0)) end)
    T.check(T.maxDiff(grid(other, resolution), f.out0) > 1e-2, "truncation-indexed statistics are used")
    print(("biggan_deep %d: max |diff| %.3g over three truncations"):format(resolution, worst))
  end)
end

T.test("pretrained loading: wrong files and names are errors that say so", function()
  local sd = tensor.load(dir .. "biggan_deep_128.bin")
  sd["generator.layers.0.bn_0.extra"] = sd["generator.layers.0.bn_0.running_means"]
  sd["generator.layers.3.conv_1.bias"] = nil
  local err = T.checkError("does not take: {generator.layers.0.bn_0.extra}", deep.fromPretrained, sd)
  T.check(err:find("missing: {blocks.1.1.conv2.bias}", 1, true), "the missing name is listed: " .. err)
  T.checkError("has no tensor embeddings.weight", deep.fromPretrained, { ["generator.gen_z.weight_orig"] = tensor.zeros(4, 4) })
  T.checkError("10, 12 or 14", deep.fromPretrained, { ["embeddings.weight"] = tensor.zeros(128, 10),
    ["generator.gen_z.weight_orig"] = tensor.zeros(256, 256) })
  T.checkError("state dict", deep.fromPretrained, "pytorch_model.bin")
  local G = deep.fromPretrained(tensor.load(dir .. "biggan_deep_128.bin"))
  T.checkError("truncation must be in (0, 1]", G.setTruncation, G, 1.5)
  T.checkError("truncation must be in (0, 1]", G.setTruncation, G, 0)
  local untrained = deep.Generator { resolution = 32, ch = 8, numClasses = 3 }
  T.checkError("no truncation-indexed statistics", untrained.setTruncation, untrained, 0.5)
  -- a BigGAN-PyTorch (not deep) state dict is named, not mis-loaded
  T.checkError("BigGAN-deep expected", deep.fromPretrained, tensor.load(dir .. "biggan_pytorch_G.pth"))
end)

-- the fixture's G. and D. halves as two state dicts
local function halves(sd)
  local G, D = {}, {}
  for name, t in pairs(sd) do
    local which, rest = name:match("^([GD])%.(.*)$")
    if which == "G" then G[rest] = t else D[rest] = t end
  end
  return G, D
end

T.test("BigGANdeep.py's G and D: same samples, scores and gradients in training mode", function()
  local gsd, dsd = halves(tensor.load(dir .. "biggan_deep_bgp.pth"))
  local f = tensor.load(dir .. "biggan_deep_bgp.safetensors")
  local G = deep.Generator { resolution = 32, ch = 8, numClasses = 10, attention = "16", init = "N02" }
  local D = deep.Discriminator { resolution = 32, ch = 8, numClasses = 10, attention = "16", init = "N02" }
  biggan.loadPyTorchState(G, gsd)
  biggan.loadPyTorchState(D, dsd)
  G:train(); D:train()
  local y = f.y + 1
  local x = G(f.z, G:embed(y))
  T.close(x, f.x, 1e-5, 1e-4, "G(z, shared(y)), batch statistics")
  local out = D(x, y)
  T.close(out, f.out, 1e-4, 1e-5, "D(G(z), y)")
  out:sum():backward()
  local params = {}
  for name, p in G:namedParameters() do params["gG." .. name] = p end
  for name, p in D:namedParameters() do params["gD." .. name] = p end
  local worst = 0
  for name, ref in pairs(f) do
    if name:match("^g[GD]%.") then
      local luaganName = name:gsub("%.weight$", ".weight_orig")
      local p = params[luaganName] or params[name]
      T.check(p ~= nil, "a parameter for " .. name)
      local g = p.grad:reshape(ref:shape())
      -- G's gradients pass six batch-statistics BNs backwards: torch's own float32 ones differ
      -- from its float64 ones by up to 2.2e-3 of the largest (measured on this fixture), so two
      -- float32 implementations may differ by twice that; luagan's differ from torch's by 3.4e-6
      -- with OpenBLAS's Haswell sgemm, 5.3e-4 with its Cooperlake one, 2.1e-3 with luagan's own
      T.close(g, ref, 4.4e-3 * ref:abs():max():item(), 0, "gradient of " .. name)
      worst = math.max(worst, T.maxDiff(g, ref) / ref:abs():max():item())
    end
  end
  print(("biggan_deep (BigGANdeep.py): samples %.3g, scores %.3g, gradients %.3g relative to their largest")
    :format(T.maxDiff(x, f.x), T.maxDiff(out, f.out), worst))
end)

T.test("a BigGANdeep.py G checkpoint builds itself from its shapes", function()
  local gsd = halves(tensor.load(dir .. "biggan_deep_bgp.pth"))
  local G, o = deep.fromPyTorch(gsd)
  T.check(o.resolution == 32 and o.ch == 8 and o.depth == 2 and o.dimZ == 128 and o.sharedDim == 128 and o.numClasses == 10
    and o.attention == "16", "the configuration read from the shapes")
  local x = tensor.noGrad(function() return G(tensor.randn(3, 128), G:embed(tensor.new({ 1, 2, 3 }))) end)
  T.check(x:size(1) == 3 and x:size(2) == 3 and x:size(3) == 32 and x:abs():max():item() <= 1, "samples in [-1, 1]")
  gsd["blocks.0.0.conv4.u0"] = nil
  T.checkError("missing: {blocks.0.0.conv4.weight_u", deep.fromPyTorch, gsd)
  T.checkError("BigGANdeep.py G state dict expected", deep.fromPyTorch, {})
end)

T.test("BigGAN-deep's shapes: every resolution, depth and class vectors", function()
  for _, r in ipairs({ 32, 64 }) do
    local G = deep.Generator { resolution = r, ch = 4, numClasses = 5, attention = "0", dimZ = 16, sharedDim = 8 }
    local D = deep.Discriminator { resolution = r, ch = 4, numClasses = 5, attention = "0" }
    local x = G(tensor.randn(2, 16), G:embed(tensor.new({ 1, 5 })))
    T.check(x:size(3) == r and x:size(4) == r, ("G makes %d px"):format(r))
    local s = D(x, tensor.new({ 1, 5 }))
    T.check(s:size(1) == 2 and s:size(2) == 1, "D scores (N, 1)")
    -- a one-hot class vector is the label's embedding; a mixture is the mixture of embeddings
    local onehot = tensor.zeros(2, 5); onehot[1][2] = 1; onehot[2][4] = 0.5; onehot[2][5] = 0.5
    local e = G:embed(onehot)
    T.close(e[1], G:embed(tensor.new({ 2 }))[1], 1e-6, 0, "one-hot = label")
    T.close(e[2], (G:embed(tensor.new({ 4 }))[1] + G:embed(tensor.new({ 5 }))[1]) * 0.5, 1e-6, 1e-6, "mixture")
  end
  T.checkError("resolution must be 32, 64, 128, 256 or 512", deep.Generator, { resolution = 48 })
  T.checkError("resolution must be 32, 64, 128 or 256", deep.Discriminator, { resolution = 512, ch = 1 })
end)

T.test("BigGAN-deep in float64: gradients and gradients of gradients by finite differences", function()
  local G = deep.Generator { resolution = 32, ch = 2, numClasses = 3, attention = "0", dimZ = 4, sharedDim = 4 }:double()
  local D = deep.Discriminator { resolution = 32, ch = 2, numClasses = 3, attention = "0" }:double()
  G:eval(); D:eval()                              -- fixed statistics and u: a function of the inputs alone
  local y = tensor.new({ 1, 3 })
  local base = tensor.randn(2, 3, 32, 32, { dtype = "float64" })
  -- D's input as base + an 8x upsampled (2, 3, 4, 4) offset: 96 inputs to perturb, not 6,144
  local function score(s) return D(base + s:upsampleNearest(8), y):sum() end
  local ok, report = tensor.gradcheck(function(z) return G(z, G:embed(y)):sum() end, tensor.randn(2, 4, { dtype = "float64" }))
  T.check(ok, "G's z: " .. tostring(report))
  ok, report = tensor.gradcheck(score, tensor.randn(2, 3, 4, 4, { dtype = "float64" }))
  T.check(ok, "D's image: " .. tostring(report))
  -- second order through D's body as R1 needs it: d/dw of |grad_x <features(x), w>|^2. (D's
  -- ReLUs make the second derivative in x zero almost everywhere and finite differences across
  -- their kinks meaningless; w comes after the last ReLU, so this one is smooth.)
  local r1 = function(w) return gan.r1Penalty(function(x) return D:features(x):matmul(w) end, base, { gamma = 10 }) end
  ok, report = tensor.gradcheck(r1, tensor.randn(D.linear.weight_orig:size(2), { dtype = "float64" }))
  T.check(ok, "R1 through D's body, second order: " .. tostring(report))
end)

T.finish("biggan_deep")
