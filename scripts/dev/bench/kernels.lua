-- Kernel benchmarks: a large sgemm, and conv2d forward+backward at BigGAN's shapes (batch 50,
-- 256 channels, 3x3, padding 1, at 8, 16 and 32 pixels), all in the same run, plus
-- elementwise, reduction and im2col throughput at 1 and 2 threads (both cores must be used).
-- GFLOP/s for convolutions count the direct algorithm's 2·N·Cout·Cin·9·H·W per pass, so
-- Winograd's savings show up as a rate above sgemm's.
local reps = tonumber(os.getenv("BENCH_REPS") or "5")

local function time(fn, n)
  fn()  -- warm up (allocator pool, OpenBLAS buffers)
  local best, total = math.huge, 0
  for _ = 1, n do
    local t0 = tensor.clock()
    fn()
    local dt = tensor.clock() - t0
    best, total = math.min(best, dt), total + dt
  end
  return best, total / n
end

local results = {}
local function report(name, flops, fn, n)
  local best, mean = time(fn, n or reps)
  local rate = flops and flops / best / 1e9
  results[name] = rate or best
  print(("%-38s best %9.2f ms  mean %9.2f ms%s"):format(name, best * 1e3, mean * 1e3,
    rate and ("  %7.1f GFLOP/s"):format(rate) or ""))
  return best
end

local threads = tensor.getNumThreads()
local config = tensor.config()
print(("machine: %s (%s), %s"):format(config.cpu, config.vendor, config.isa))
print(("BLAS: OpenBLAS %s kernels (best for this CPU: %s; chosen by %s); %d threads"):format(
  config.blasCore, config.blasBest, config.blasChosenBy, threads))
print(("luagan kernels: level %d"):format(config.simdLevel))
print(("luagan kernel benchmarks (%d threads)"):format(threads))
local n = 4096
local a, b = tensor.randn(n, n), tensor.randn(n, n)
report("sgemm 4096x4096", 2 * n ^ 3, function() return a:mm(b) end, 3)
a, b = nil, nil
collectgarbage()
-- Far below what this CPU's ISA should reach means the BLAS is not running the kernels the CPU
-- can (an OpenBLAS fallback core, or a busy machine).
local expected = config.expectedSgemmGflopsPerThread * threads
if results["sgemm 4096x4096"] < expected then
  print(("WARNING: sgemm %.1f GFLOP/s is far below the %.0f GFLOP/s a %s CPU should reach on %d threads (BLAS core %s)"):format(
    results["sgemm 4096x4096"], expected, config.isa, threads, config.blasCore))
end
paths.mkdir("runs/bench")
paths.writeText("runs/bench/kernels.json", json.encode({ sgemm = results["sgemm 4096x4096"], blasCore = config.blasCore }))

for _, hw in ipairs { 8, 16, 32 } do
  local x = tensor.randn(50, 256, hw, hw):requiresGrad(true)
  local w = tensor.randn(256, 256, 3, 3):mul(0.02):requiresGrad(true)
  local g = tensor.randn(50, 256, hw, hw)
  local flops = 2 * 50 * 256 * 256 * 9 * hw * hw
  report(("conv2d fwd+bwd 50x256x%dx%d"):format(hw, hw), 3 * flops, function()
    x.grad, w.grad = nil, nil
    tensor.conv2d(x, w, nil, { padding = 1 }):backward(g)
  end)
end

local sgemm = results["sgemm 4096x4096"]
print()
for _, hw in ipairs { 8, 16, 32 } do
  local r = results[("conv2d fwd+bwd 50x256x%dx%d"):format(hw, hw)]
  print(("conv2d %2dx%-2d fwd+bwd: %6.1f GFLOP/s = %5.1f%% of sgemm"):format(hw, hw, r, 100 * r / sgemm))
end

-- Thread scaling of the memory-bound kernels (after releasing the convolution tensors, so
-- each section measures its own steady state).
collectgarbage(); collectgarbage()
print()
local big = tensor.randn(50, 256, 32, 32)
local img = tensor.randn(50, 3, 32, 32)
local w3 = tensor.randn(256, 3, 3, 3)
local scaling = {}
for _, t in ipairs { 1, threads } do
  tensor.setNumThreads(t)
  local ew = report(("elementwise x*2+1 (13M), %d thread%s"):format(t, t > 1 and "s" or ""), nil, function() return big * 2 + 1 end)
  local red = report(("reduction sum over (1,3,4), %d thread%s"):format(t, t > 1 and "s" or ""), nil, function() return big:sum({ 1, 3, 4 }) end)
  local col = report(("im2col conv 3->256 32x32, %d thread%s"):format(t, t > 1 and "s" or ""), nil, function() return tensor.conv2d(img, w3, nil, { padding = 1 }) end)
  scaling[t] = { ew, red, col }
  if threads == 1 then break end
end
tensor.setNumThreads(threads)
if threads > 1 then
  print(("speed-up at %d threads: elementwise %.2fx, reduction %.2fx, im2col conv %.2fx"):format(threads,
    scaling[1][1] / scaling[threads][1], scaling[1][2] / scaling[threads][2], scaling[1][3] / scaling[threads][3]))
end
