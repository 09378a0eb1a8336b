-- Flat memory without collectgarbage(): the collector is paced by tensor bytes (house
-- decision 3), so a loop that drops 4 MiB tensors on the floor stays flat.
local T = require("testing")

T.test("3000 iterations of 4 MiB temporaries stay under 300 MiB resident", function()
  local peakRss, peakTensors, peakCached = 0, 0, 0
  local a = tensor.ones(1024, 1024)  -- 4 MiB of float32
  local t0 = tensor.clock()
  for i = 1, 3000 do
    local b = a * 2           -- four fresh 4 MiB tensors per iteration, all garbage at once
    local c = b + 1
    local d = c:sqrt()
    local e = d - b
    if i % 50 == 0 then
      local m = tensor.memory()
      peakRss = math.max(peakRss, m.rss)
      peakTensors = math.max(peakTensors, m.tensorBytes)
      peakCached = math.max(peakCached, m.cachedBytes)
    end
    assert(e)
  end
  local mib = 1024 * 1024
  print(("memory: 3000 iterations x 4 x 4 MiB in %.1f s; peak resident %.1f MiB, peak live tensors %.1f MiB")
    :format(tensor.clock() - t0, peakRss / mib, peakTensors / mib))
  T.check(peakTensors <= 64 * mib, ("live tensors reached %.1f MiB"):format(peakTensors / mib))
  -- freed blocks kept for reuse stay under the allocator's floor (the live peak is small)
  T.check(peakCached > 0 and peakCached <= 256 * mib, ("cached %.1f MiB"):format(peakCached / mib))
  if tensor.config().addressSanitizer then   -- its quarantine keeps freed blocks resident
    print("memory: resident size not bounded under AddressSanitizer")
  else
    T.check(peakRss < 300 * mib, ("resident size reached %.1f MiB"):format(peakRss / mib))
  end
end)

-- The collector's runs free storages; tensor.profile shows them on their own line instead of
-- charging them to whichever op triggered them.
T.test("tensor.profile puts the collector's time on a line of its own", function()
  local a = tensor.ones(1024, 1024)
  local report = tensor.profile(function()
    for _ = 1, 100 do assert((a * 2 + 1):sqrt()) end   -- 1.2 GB of garbage in 4 MiB tensors
  end)
  local rows = {}
  for _, r in ipairs(report) do rows[r.op] = r end
  T.check(rows["(collector)"] and rows["(collector)"].calls > 0, "no (collector) row in\n" .. tostring(report))
  T.check(rows.mul and rows.mul.calls == 100, "mul's calls:\n" .. tostring(report))
end)

-- Issue 30: with no graph to record, a forward holds its weights and a few activations. At the
-- output of BigGAN-deep (the largest activations: the last block's skip and output, the output
-- BN and conv, each `unit` bytes) the forward written without in-place steps held 5.5 units at
-- once (every activation alive until its block returned, the skip upsampled into a copy); then
-- 2.3: a block holds its input, one activation and its output, the output stage its BN and conv.
T.test("BigGAN-deep's forward under noGrad holds its weights and at most 2.1 output-sized activations", function()
  local deep = require("models.biggan_deep")
  tensor.manualSeed(1)
  local G = deep.Generator { resolution = 128, ch = 16, numClasses = 10, attention = "0", outputWidth = 16, init = "N02" }
  local n = 4
  local z, y = gan.truncatedNoise(n, 128, 2) * 0.4, tensor.randint(1, 10, n)
  local unit = n * 16 * 128 * 128 * 4                         -- one (N, ch, 128, 128) float32 activation
  for _ = 1, 3 do tensor.noGrad(function() return G(z, G:embed(y)) end) end  -- training mode: SN and BN statistics settle
  G:eval()
  local sampled = tensor.noGrad(function() return G(z, G:embed(y)) end)
  T.check(sampled:abs():max():item() > 0 and sampled:abs():max():item() <= 1, "the samples are finite images")
  collectgarbage()
  local before = tensor.memory().tensorBytes
  tensor.resetPeakMemory()
  sampled = tensor.noGrad(function() return G(z, G:embed(y)) end)
  local peak = tensor.memory().peakTensorBytes - before
  print(("memory: BigGAN-deep 128 (ch 16, batch %d) under noGrad: %.2f MiB above the weights, %.2f units of %.2f MiB")
    :format(n, peak / 2^20, peak / unit, unit / 2^20))
  T.check(peak <= 2.1 * unit, ("the forward held %.2f output-sized activations"):format(peak / unit))
  -- the in-place path changes no bit: the same forward recorded on a graph gives the same image
  local recorded = G(z, G:embed(y))
  T.check(recorded:requiresGrad() and T.maxDiff(recorded:detach(), sampled) == 0, "noGrad and recorded forwards agree bit for bit")
end)

-- At 512 px the last stage keeps its width (1 -> 1 ch), so the output stage, not the last block,
-- set the peak: the BN's fresh result or the 16-wide RGB conv's was a second output-sized tensor
-- beside the last activation (2 units). The BN now writes over it and the conv makes the 3 image
-- channels: the last block's input, hidden activation and output (1.5 units) are the peak.
T.test("BigGAN-deep 512's output stage under noGrad adds no second output-sized tensor", function()
  local deep = require("models.biggan_deep")
  tensor.manualSeed(2)
  local G = deep.Generator { resolution = 512, ch = 16, numClasses = 10, attention = "0", outputWidth = 16, init = "N02" }
  local z, y = gan.truncatedNoise(1, 128, 2) * 0.4, tensor.randint(1, 10, 1)
  tensor.noGrad(function() return G(z, G:embed(y)) end)   -- training mode once: BN statistics that do not overflow
  G:eval()
  local unit = 16 * 512 * 512 * 4                             -- one (1, ch, 512, 512) float32 activation
  collectgarbage()
  local before = tensor.memory().tensorBytes
  tensor.resetPeakMemory()
  local sampled = tensor.noGrad(function() return G(z, G:embed(y)) end)
  local peak = tensor.memory().peakTensorBytes - before
  print(("memory: BigGAN-deep 512 (ch 16, batch 1) under noGrad: %.2f units of %.2f MiB"):format(peak / unit, unit / 2^20))
  T.check(sampled:size(2) == 3 and sampled:abs():max():item() <= 1, "(1, 3, 512, 512) images")
  T.check(peak <= 1.75 * unit, ("the forward held %.2f output-sized activations"):format(peak / unit))
end)

T.test("self-attention under noGrad holds its attention map about twice, with the same bits", function()
  tensor.manualSeed(2)
  local A = nn.SelfAttention(64)
  A.gamma:fill(0.5)
  A:eval()                                                     -- spectral norms fixed: every call the same weights
  local x = tensor.randn(4, 64, 32, 32)
  local map = 4 * 1024 * 256 * 4                               -- the (N, HW, HW/4) float32 attention map
  tensor.noGrad(function() return A(x) end)
  collectgarbage()
  local before = tensor.memory().tensorBytes
  tensor.resetPeakMemory()
  local fast = tensor.noGrad(function() return A(x) end)
  local peak = tensor.memory().peakTensorBytes - before
  print(("memory: SelfAttention(64) at 32x32, batch 4, under noGrad: %.2f MiB, %.2f attention maps"):format(peak / 2^20, peak / map))
  T.check(peak <= 2.6 * map, ("the forward held %.2f attention maps"):format(peak / map))
  local recorded = A(x)
  T.check(recorded:requiresGrad() and T.maxDiff(recorded:detach(), fast) == 0, "noGrad and recorded forwards agree bit for bit")
end)

T.test("self-attention on a graph keeps one attention map for its backward", function()
  tensor.manualSeed(2)
  local A = nn.SelfAttention(64)
  A.gamma:fill(0.5)
  local x = tensor.randn(4, 64, 32, 32):requiresGrad(true)
  local map = 4 * 1024 * 256 * 4                               -- the (N, HW, HW/4) float32 attention map
  collectgarbage()
  local before = tensor.memory().tensorBytes
  tensor.resetPeakMemory()
  local y = A(x)
  collectgarbage()
  local held = tensor.memory().tensorBytes - before
  y:sum():backward()
  local peak = tensor.memory().peakTensorBytes - before
  print(("memory: SelfAttention(64) at 32x32, batch 4, recorded: %.2f maps held for backward, %.2f at the backward's peak")
    :format(held / map, peak / map))
  -- softmax keeps its output, not the logits; bmm hands βᵀ's gradient back contiguous (the composite
  -- softmax held 3.7 maps and peaked at 5.3)
  T.check(held <= 1.8 * map, ("the graph held %.2f attention maps"):format(held / map))
  T.check(peak <= 3.5 * map, ("forward and backward peaked at %.2f attention maps"):format(peak / map))
end)

T.test("relu_ and add_ write in place, and refuse a graph node", function()
  local x = tensor.new({ -1, 2, -3, 4 })
  local r = x:relu_()
  T.check(T.maxDiff(x, tensor.new({ 0, 2, 0, 4 })) == 0 and T.maxDiff(r, x) == 0, "relu_ rectifies x itself and returns it")
  r = x:add_(tensor.new({ 1, 1, 1, 1 }))
  T.check(T.maxDiff(x, tensor.new({ 1, 3, 1, 5 })) == 0 and T.maxDiff(r, x) == 0, "add_ adds into x and returns it")
  x:add_(0.5)
  T.check(T.maxDiff(x, tensor.new({ 1.5, 3.5, 1.5, 5.5 })) == 0, "add_ of a number")
  local w = tensor.new({ 1, -2 }):requiresGrad(true)
  local h = w * 3
  T.checkError("part of a graph", function() h:relu_() end)
  T.checkError("part of a graph", function() h:add_(1) end)
  T.checkError("expanded", function() tensor.new({ 1 }):expand(3):relu_() end)
  tensor.noGrad(function() T.check(T.maxDiff((w * 3):relu_(), tensor.new({ 3, 0 })) == 0, "in place under noGrad") end)
end)

T.finish("memory")
