-- BigGAN-PyTorch's generator state dict loaded by biggan.fromPyTorch (scripts/lib/models/
-- biggan.lua): a G at the released ImageNet-128 configuration (hier, dim_z 120, shared_dim 128,
-- attention at 64, 1000 classes, SN_eps 1e-6) with G_ch 4 and random weights, saved by
-- torch.save and read by tensor.load, must give the reference's eval-mode output (its spectral
-- norm takes one fresh power step per eval forward). Fixture: scripts/dev/fixtures/
-- make_biggan_pytorch.py (a transcription of ajbrock/BigGAN-PyTorch's BigGAN.py and layers.py).
local T = require("testing")
local biggan = require("models.biggan")
local root = os.getenv("LUAGAN_HOME") or (debug.getinfo(1, "S").source:match("^@(.*)/scripts/dev/tests/") or ".")
local dir = root .. "/Tests/Fixtures/pth/"
local atol, rtol = 1e-4, 1e-4

T.test("a BigGAN-PyTorch G_ema-style state dict gives the reference's eval-mode samples", function()
  local sd = tensor.load(dir .. "biggan_pytorch_G.pth")
  local f = tensor.load(dir .. "biggan_pytorch_G.safetensors")
  local G, o = biggan.fromPyTorch(sd)
  T.check(o.resolution == 128 and o.ch == 4 and o.dimZ == 120 and o.sharedDim == 128 and o.hier and o.numClasses == 1000
    and o.attention == "64" and o.outChannels == 3, "the configuration read from the shapes")
  local y = f.y + 1                                       -- the reference's classes are 0-based
  local us = {}
  for name, t in pairs(G:stateDict()) do if name:match("weight_u$") then us[name] = t:clone() end end
  local out = tensor.noGrad(function() return G(f.z, G:embed(y)) end)
  T.close(out, f.out, atol, rtol, "G(z, shared(y)) in eval mode")
  for name, t in pairs(G:stateDict()) do
    if us[name] then T.check(T.maxDiff(us[name], t) == 0, "eval mode keeps " .. name) end
  end
  -- torch.nn.utils.spectral_norm's eval mode (sigma from the stored u and v) is a different function
  nn.utils.spectralNormEvalPowerStep(G, false)
  local plain = tensor.noGrad(function() return G(f.z, G:embed(y)) end)
  T.check(T.maxDiff(plain, f.out) > 1e-3, "the eval power step matters for these weights")
  print(("biggan_pytorch: max |diff| %.3g to the reference; %.3g without the eval power step")
    :format(T.maxDiff(out, f.out), T.maxDiff(plain, f.out)))
end)

T.test("unknown and missing names are errors that list them", function()
  local sd = tensor.load(dir .. "biggan_pytorch_G.pth")
  sd["blocks.0.0.conv1.u1"] = sd["blocks.0.0.conv1.u0"]    -- num_G_SVs 2 is not luagan's spectral norm
  sd["blocks.1.0.bn2.stored_var"] = nil
  local err = T.checkError("does not take: {blocks.0.0.conv1.u1}", biggan.fromPyTorch, sd)
  T.check(err:find("missing: {blocks.1.0.bn2.running_var}", 1, true), "the missing name is listed: " .. err)
  T.checkError("has no tensor shared.weight", biggan.fromPyTorch, { ["blocks.0.0.conv1.weight"] = tensor.zeros(1),
    ["blocks.1.0.conv1.weight"] = tensor.zeros(1), ["blocks.2.0.conv1.weight"] = tensor.zeros(1) })
  T.checkError("3, 4 or 5", biggan.fromPyTorch, {})
  T.checkError("state dict", biggan.fromPyTorch, "G_ema.pth")
end)

T.finish("biggan_pytorch")
