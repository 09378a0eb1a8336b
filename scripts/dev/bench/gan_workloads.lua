-- gan_workloads.lua: the biggan32, pggan32 and demo32 training workloads of ../shared/bench/README.md,
-- built from luagan's own modules (scripts/lib/models/*.lua), one iteration = one D step and
-- one G step, on random data; and deep128 / deep256 / deep512, one sampling forward of
-- BigGAN-deep (batch 8 / 8 / 4, pytorch-pretrained-BigGAN's configurations, random weights; its PyTorch side is
-- scripts/dev/bench/torch/biggan_deep_forward.py). Prints one JSON line like torch_reference.py,
-- so the two can be run back to back and compared as a ratio:
--
--   luagan scripts/dev/bench/gan_workloads.lua biggan32 [--steps=5] [--warmup=2] [--threads=2]
--   python ../shared/bench/torch_reference.py biggan32 --steps 5 --threads 2
local options = require("options")
local training = require("training")
local recipe = require("recipes.biggan")
local pggan_recipe = require("recipes.pggan")
local biggan = require("models.biggan")
local pggan = require("models.pggan")
local deep = require("models.biggan_deep")

local workload = arg[1]
local sampling = { deep128 = 128, deep256 = 256, deep512 = 512 }
-- the scaling workloads (PyTorch side: scripts/dev/bench/torch/scaling.py): resolution, width, batch
local scaling = { biggan64 = { 64, 32, 16 }, biggan128 = { 128, 32, 8 }, pggan64 = { 64, 64, 16 }, pggan128 = { 128, 64, 8 } }
local fixed = { biggan32 = true, pggan32 = true, demo32 = true }
if not fixed[workload] and not sampling[workload] and not scaling[workload] then
  io.stderr:write("usage: luagan scripts/dev/bench/gan_workloads.lua"
    .. " biggan32|pggan32|demo32|biggan64|biggan128|pggan64|pggan128|deep128|deep256|deep512"
    .. " [--steps=5] [--warmup=2] [--threads=2]\n")
  os.exit(2)
end
local rest = { [0] = arg[0] }
for i = 2, #arg do rest[i - 1] = arg[i] end
local opt = options.cli(rest, {
  { "steps", 5, "timed iterations" },
  { "warmup", 2, "untimed iterations first" },
  { "threads", 2, "worker threads" },
  { "channels", 0, "biggan: ch (default 64); pggan: feature maps (default 128)" },
  { "batch", 0, "batch size (default 50 for biggan32, 64 for pggan32)" },
  { "overlap", true, "under mpirun: average gradients while backward runs (false: all after it)" },
  { "profile", false, "print where the time goes (tensor.profile) after the timed steps" },
}, "The side-by-side GAN benchmark workloads.")
tensor.setNumThreads(opt.threads)
tensor.manualSeed(0)

-- biggan32: ch 64, batch 50, 3 channels, G attention at 16; demo32 (the main job's step,
-- scripts/configs/demo.lua): ch 8, batch 32, 1 channel, no attention.
local function biggan32(demo)
  local ch = opt.channels > 0 and opt.channels or (demo and 8 or 64)
  -- under mpirun the batch is global and each rank trains on its share, gradients averaged
  local bs = (opt.batch > 0 and opt.batch or (demo and 32 or 50)) // dist.size()
  local imgCh, attention = demo and 1 or 3, demo and "0" or "16"
  -- BigGAN at 32x32: shared embedding 128, hierarchical z 128 = 4 chunks of 32, SN (eps 1e-8)
  -- everywhere, CBN eps 1e-5, N(0, 0.02) init.
  local G = biggan.Generator { resolution = 32, ch = ch, dimZ = 128, sharedDim = 128, shared = true, hier = true,
    numClasses = 10, attention = attention, snEps = 1e-8, bnEps = 1e-5, init = "N02", outChannels = imgCh }
  local D = biggan.Discriminator { resolution = 32, ch = ch, numClasses = 10, attention = "0", snEps = 1e-8, init = "N02", inChannels = imgCh }
  local ema = optim.EMA(G, { decay = 0.9999, startIter = 0 })
  local optG = optim.Adam(G:parameters(), { lr = 2e-4, betas = { 0, 0.999 }, eps = 1e-8 })
  local optD = optim.Adam(D:parameters(), { lr = 2e-4, betas = { 0, 0.999 }, eps = 1e-8 })
  -- under mpirun, gradients are averaged over ranks while backward runs (or, with
  -- --overlap=false, all at once after it)
  training.overlapGradients = opt.overlap
  local x, y = tensor.rand(bs, imgCh, 32, 32) * 2 - 1, tensor.randint(1, 10, bs)
  -- one D step and one G step of BigGAN's recipe (scripts/lib/recipes/biggan.lua), on fixed reals
  local step = recipe.Step { G = G, D = D, optG = optG, optD = optD, ema = ema, batch = bs, opt = { numDSteps = 1 },
                             draw = { reals = function() return x, y end } }
  local it = 0
  local function iteration()
    it = it + 1
    step:updateD(it)
    step:updateG(it)
  end
  return iteration, G:numParameters() + D:numParameters()
end

-- biggan64 / biggan128: the same iteration at 64 / 128 px with BigGAN-PyTorch's arch tables, ch 32,
-- hierarchical z 120 (one chunk per G block plus one), G attention at half the resolution, batch 16 / 8.
local function bigganScaling(resolution, ch, batch)
  local bs = opt.batch > 0 and opt.batch or batch
  local G = biggan.Generator { resolution = resolution, ch = ch, dimZ = 120, sharedDim = 128, shared = true, hier = true,
    numClasses = 10, attention = tostring(resolution // 2), snEps = 1e-8, bnEps = 1e-5, init = "N02", outChannels = 3 }
  local D = biggan.Discriminator { resolution = resolution, ch = ch, numClasses = 10, attention = "0", snEps = 1e-8, init = "N02",
    inChannels = 3 }
  local ema = optim.EMA(G, { decay = 0.9999, startIter = 0 })
  local optG = optim.Adam(G:parameters(), { lr = 2e-4, betas = { 0, 0.999 }, eps = 1e-8 })
  local optD = optim.Adam(D:parameters(), { lr = 2e-4, betas = { 0, 0.999 }, eps = 1e-8 })
  local x, y = tensor.rand(bs, 3, resolution, resolution) * 2 - 1, tensor.randint(1, 10, bs)
  local step = recipe.Step { G = G, D = D, optG = optG, optD = optD, ema = ema, batch = bs, opt = { numDSteps = 1 },
                             draw = { reals = function() return x, y end } }
  local it = 0
  return function()
    it = it + 1
    step:updateD(it)
    step:updateG(it)
  end, G:numParameters() + D:numParameters()
end

local function pggan32(resolution, width, batch)
  resolution = resolution or 32
  local nf, bs = opt.channels > 0 and opt.channels or (width or 128), opt.batch > 0 and opt.batch or (batch or 64)
  -- PGGAN at 32x32 during the 16 -> 32 fade-in (t = 0.5): equalized LR, pixelnorm, mbstd group 4,
  -- nf maps everywhere, latent 128, WGAN-GP (lambda 10, target 1) by double backprop, drift 0.001,
  -- Adam(1e-3, 0, 0.99) (its state is reset once, at the first iteration, as a run's is). pggan64 /
  -- pggan128: the same at 64 / 128 px during the last fade-in, 64 maps, batch 16 / 8.
  local sizes = { resolution = resolution, channels = 3, latent = 128, fmapBase = nf * 1024, fmapMax = nf, mbstdGroup = 4 }
  local G, D = pggan.Generator(sizes), pggan.Discriminator(sizes)
  local Gs = optim.EMA(G, { decay = 0.999 })
  local optG = optim.Adam(G:parameters(), { lr = 1e-3, betas = { 0, 0.99 }, eps = 1e-8 })
  local optD = optim.Adam(D:parameters(), { lr = 1e-3, betas = { 0, 0.99 }, eps = 1e-8 })
  local x = tensor.randn(bs, 3, resolution, resolution)
  -- one D step and one G step of PGGAN's recipe (scripts/lib/recipes/pggan.lua), held at lod 0.5
  local step = pggan_recipe.Step { G = G, D = D, optG = optG, optD = optD, Gs = Gs, schedule = function() return 0.5 end,
                                   opt = { batchSize = bs, resolution = resolution }, draw = { reals = function() return x end } }
  local it = 0
  local function iteration()
    it = it + 1
    step:advance(1)
    step:updateD(it)
    step:updateG(it)
  end
  return iteration, G:numParameters() + D:numParameters()
end

-- deep128 / deep256 / deep512: pytorch-pretrained-BigGAN's biggan-deep-128 / 256 / 512 (ch 128,
-- eps 1e-4, a 128-wide RGB conv) in eval mode, truncation 0.4, a batch of 8 / 8 / 4 one-hot
-- classes, no gradients.
local function deepSampling(resolution)
  local bs = opt.batch > 0 and opt.batch or (resolution == 512 and 4 or 8)
  local G = deep.Generator { resolution = resolution, ch = 128, numClasses = 1000, attention = "64", snEps = 1e-4, bnEps = 1e-4,
    outputBnEps = 1e-4, outputWidth = 128, init = "N02" }
  G:eval()
  local y = tensor.zeros(bs, 1000)
  for i = 1, bs do y[i][(i * 97) % 1000 + 1] = 1 end
  local function iteration()
    tensor.noGrad(function() return G(gan.truncatedNoise(bs, 128, 2) * 0.4, G:embed(y)) end)
  end
  return iteration, G:numParameters()
end

local iteration, params
if workload == "pggan32" then iteration, params = pggan32()
elseif sampling[workload] then iteration, params = deepSampling(sampling[workload])
elseif scaling[workload] then
  local make = workload:match("^biggan") and bigganScaling or pggan32
  iteration, params = make(table.unpack(scaling[workload]))
else iteration, params = biggan32(workload == "demo32") end
for _ = 1, opt.warmup do iteration() end
local flops0 = tensor.flops()
iteration()
local flopsPerIter = tensor.flops() - flops0  -- matrix products and convolutions, direct count
local times = {}
local comm0 = dist.stats().seconds
for i = 1, opt.steps do
  local t0 = tensor.clock()
  iteration()
  times[i] = tensor.clock() - t0
end
table.sort(times)
local median = #times % 2 == 1 and times[(#times + 1) // 2] or (times[#times // 2] + times[#times // 2 + 1]) / 2

local function peakRSS()
  local f = io.open("/proc/self/status", "r")
  if not f then return 0 end
  local text = f:read("a")
  f:close()
  return (tonumber(text:match("VmHWM:%s+(%d+)")) or 0) / 1024
end
local commMs = (dist.stats().seconds - comm0) / opt.steps * 1e3    -- mean time in collectives per iteration
print(('{"workload": "%s", "ranks": %d, "comm_ms_per_iter": %.1f, "ms_per_iter": %.1f, "ms_min": %.1f, "ms_max": %.1f, "peak_rss_mb": %.1f, "params": %d, "threads": %d, "gflop_per_iter": %.2f, "gflops": %.1f, "blas_core": "%s", "luagan": true}')
  :format(workload, dist.size(), commMs, median * 1e3, times[1] * 1e3, times[#times] * 1e3, peakRSS(), params, opt.threads,
          flopsPerIter / 1e9, flopsPerIter / median / 1e9, tensor.config().blasCore))
if opt.profile then print(tensor.profile(iteration)) end
if os.getenv("LG_MEM") then
  local m = tensor.memory()
  print(("peak tensor bytes %.1f MB, live %.1f MB, rss %.1f MB"):format(m.peakTensorBytes / 2^20, m.tensorBytes / 2^20, m.rss / 2^20))
end
