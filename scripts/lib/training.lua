-- training.lua: what every GAN script in scripts/ shares, so each script shows only its model
-- and its update rule: options (with --resume), the data set, the run folder (log, plots,
-- sample sheets, checkpoints), singular-value monitoring and periodic evaluation.
local options = require("options")

local M = {}

--- Options every training script has, appended to the script's own (defaults per script).
function M.commonSpec(d)
  return {
    { "dataset", d.dataset or "fashion-mnist", "fashion-mnist, mnist, cifar10, or a folder of class subfolders of PNGs" },
    { "dataRoot", "", "where the data set's files are (default: the Debian package for (fashion-)mnist)" },
    { "resolution", d.resolution or 32, "image size (28 px data sets are padded to 32)" },
    { "iters", d.iters, "training iterations (G steps)" },
    { "sampleEvery", d.sampleEvery or 500, "iterations between sample sheets" },
    { "saveEvery", d.saveEvery or 1000, "iterations between checkpoints" },
    { "evalEvery", d.evalEvery or 2000, "iterations between FID/accuracy evaluations (0: never; Fashion-MNIST only)" },
    { "evalSamples", d.evalSamples or 2000, "samples per evaluation" },
    { "logEvery", d.logEvery or 10, "iterations between log lines" },
    { "svEvery", d.svEvery or 100, "iterations between top-3 singular values of every weight (0: never)" },
    { "keep", d.keep or 3, "checkpoints kept" },
    { "seed", d.seed or 1, "random seed" },
    { "threads", d.threads or 0, "worker threads (0: all cores)" },
    { "out", d.out, "run folder" },
    { "resume", "", "continue the run saved in this folder (its options, unless given again)" },
    { "quiet", false, "no progress bar" },
  }
end

local function concat(a, b)
  local out = {}
  for _, x in ipairs(a) do out[#out + 1] = x end
  for _, x in ipairs(b) do out[#out + 1] = x end
  return out
end

--- Parses the command line (spec = the script's options ++ commonSpec), restores the saved
-- options when resuming (options given again override them), seeds the generator, sets the
-- thread count, creates the run folder and prints the effective options. Returns opt and the
-- saved state (nil unless resuming).
function M.start(spec, description)
  local opt, given = options.cli(arg, spec, description)
  local saved
  if opt.resume ~= "" then
    local ok, s = pcall(ckpt.load, opt.resume .. "/ckpt")
    if not ok then
      io.stderr:write(("%s: cannot resume from %s: %s\n"):format(arg[0], opt.resume, tostring(s)))
      os.exit(2)
    end
    saved = s
    local resume = opt.resume
    for k, v in pairs(s.opt or {}) do
      if rawget(opt, k) ~= nil and not given[k] then opt[k] = v end
    end
    opt.resume = resume
    if not given.out then opt.out = resume end
  end
  if opt.out == "" then io.stderr:write(arg[0] .. ": --out must name a folder\n"); os.exit(2) end
  -- A new run never writes into an old one (its log and checkpoints would interleave).
  local old = not saved and io.open(opt.out .. "/log.jsonl", "r")
  if old then
    old:close()
    io.stderr:write(("%s: %s already holds a run: continue it with --resume=%s, or choose another --out\n"):format(arg[0], opt.out, opt.out))
    os.exit(2)
  end
  if opt.threads > 0 then tensor.setNumThreads(opt.threads) end
  tensor.manualSeed(opt.seed)
  paths.mkdir(opt.out .. "/samples")
  local text = options.describe(opt, spec)
  local f = io.open(opt.out .. "/options.txt", "w")
  if f then f:write(text, "\n"); f:close() end
  if not opt.quiet then print(description .. (saved and (" (resuming at iteration %d)"):format(saved.iter) or "")); print(text) end
  return opt, saved
end

M.concat = concat

--- The training set as the scripts see it: images in [-1, 1] at opt.resolution.
-- Returns the dataset, a loader over it, its channel count and class count.
function M.data(opt, batchSize)
  local ds
  local name = opt.dataset
  local root = opt.dataRoot ~= "" and opt.dataRoot or nil
  if name == "fashion-mnist" then ds = data.fashionMNIST { split = "train", root = root }
  elseif name == "mnist" then ds = data.mnist { split = "train", root = root }
  elseif name == "cifar10" then
    if not root then error("--dataset=cifar10 needs --dataRoot (the folder of the CIFAR-10 binary batches)", 0) end
    ds = data.cifar10 { split = "train", root = root }
  else
    ds = data.imageFolder(name, { size = opt.resolution, channels = 3 })
  end
  local transform = {}
  local size = ds.images:size(3)
  if size == 28 then
    if opt.resolution ~= 32 then error(("%s images are 28x28: train them at --resolution=32 (padded)"):format(name), 0) end
    transform[#transform + 1] = data.pad(2)
  elseif size ~= opt.resolution then
    if size % opt.resolution ~= 0 then error(("%s images are %dx%d, not a multiple of --resolution=%d"):format(name, size, size, opt.resolution), 0) end
    transform[#transform + 1] = data.downscale(size // opt.resolution)
  end
  transform[#transform + 1] = data.scale(-1, 1)
  local loader = data.Loader(ds, { batchSize = batchSize, seed = opt.seed, dropLast = true, transform = transform })
  return ds, loader, ds.images:size(2), ds.numClasses
end

--- Runs fn() with `model`'s buffers (BN statistics, spectral-norm vectors) restored afterwards,
-- so drawing sample sheets never changes the model.
function M.withFrozenBuffers(model, fn)
  local saved = {}
  for name, b in model:namedBuffers() do saved[name] = b:clone() end
  local _ <close> = M.onExit(function()
    tensor.noGrad(function()
      for name, b in model:namedBuffers() do b:copy(saved[name]) end
    end)
  end)
  return fn()
end

--- A to-be-closed value that runs `restore` when its scope ends, normally or by an error:
-- `local _ <close> = training.onExit(f)`. The error then keeps its own traceback (a pcall,
-- restore, rethrow loses it).
function M.onExit(restore) return setmetatable({}, { __close = function() restore() end }) end

--- Runs fn() and puts the global generator back as it was, so whatever fn draws does not
-- move the training run.
function M.keepingRNG(fn)
  local state = tensor.getRNGState()
  local _ <close> = M.onExit(function() tensor.setRNGState(state) end)
  return fn()
end

--- Runs fn() with the global generator seeded by `seed`, then puts the training stream back:
-- fixed sample noise that does not move the training run.
function M.withSeed(seed, fn)
  return M.keepingRNG(function() tensor.manualSeed(seed); return fn() end)
end

-- A run: the folder, the log, the progress bar, plots.
local Run = {}
Run.__index = Run

function M.Run(opt, startIter)
  local self = setmetatable({ opt = opt, dir = opt.out, startIter = startIter or 0 }, Run)
  self.logger = log.Logger(opt.out)
  self.svLogger = log.Logger(opt.out, { name = "singular_values.jsonl" })
  self.bar = not opt.quiet and log.Progress(opt.iters) or nil
  return self
end

function Run:log(iter, scalars)
  if iter % self.opt.logEvery == 0 or iter == self.opt.iters then self.logger:log(iter, scalars) end
  if self.bar then
    local shown = {}
    for k, v in pairs(scalars) do shown[k] = tensor.isTensor(v) and v:item() or v end
    self.bar:update(iter, shown)
  end
end

--- Writes a sheet of images (N, C, H, W) in [-1, 1], nrow per row, to samples/<name>.png.
function Run:sheet(name, images, nrow)
  local path = ("%s/samples/%s.png"):format(self.dir, name)
  image.save(path, image.grid(images, { nrow = nrow, padding = 2, padValue = 1 }), { range = { -1, 1 } })
  return path
end

--- Logs the top-3 singular values of every weight (2+ dims) of the named models, and
-- redraws one plot per model: the largest singular value of each layer over training.
function Run:singularValues(iter, models)
  local rec = {}
  for prefix, model in pairs(models) do
    for name, p in model:namedParameters() do
      if p:dim() >= 2 then
        local svs = nn.utils.singularValues(p, math.min(3, p:size(1), p:numel() // p:size(1)))
        for k, s in ipairs(svs) do rec[("%s.%s.sv%d"):format(prefix, name, k - 1)] = s end
      end
    end
  end
  self.svLogger:log(iter, rec)
  local records = log.read(self.dir .. "/singular_values.jsonl")
  for prefix in pairs(models) do
    local series = {}
    local names = {}
    for key in pairs(rec) do
      if key:sub(1, #prefix + 1) == prefix .. "." and key:match("%.sv0$") then names[#names + 1] = key end
    end
    table.sort(names)
    for _, key in ipairs(names) do
      local s = log.series(records, key)
      s.name = key:sub(#prefix + 2):gsub("%.weight_orig%.sv0$", ""):gsub("%.weight%.sv0$", "")
      series[#series + 1] = s
    end
    if #series > 0 and #series[1].x >= 2 then
      plot.lines(("%s/sv_%s.png"):format(self.dir, prefix), series,
        { title = prefix .. ": top singular value of each weight", xlabel = "iteration", ylabel = "sigma_0" })
    end
  end
end

--- Redraws losses.png (and metrics.png when evaluations exist) from the log.
function Run:plots(lossNames)
  local records = log.read(self.dir .. "/log.jsonl")
  local series = {}
  for _, n in ipairs(lossNames) do
    local s = log.series(records, n)
    if #s.x >= 2 then series[#series + 1] = s end
  end
  if #series > 0 then plot.lines(self.dir .. "/losses.png", series, { title = "losses", xlabel = "iteration", ylabel = "loss" }) end
  local fid = log.series(records, "fid")
  if #fid.x >= 2 then
    plot.lines(self.dir .. "/fid.png", { fid }, { title = "domain FID of EMA samples", xlabel = "iteration", ylabel = "FID" })
  end
end

function Run:checkpoint(iter, state)
  state.iter = iter
  state.rng = tensor.getRNGState()
  state.opt = options.plain(self.opt)
  ckpt.save(self.dir .. "/ckpt", state, { name = ("iter-%07d"):format(iter), keep = self.opt.keep })
end

function Run:finish()
  if self.bar then self.bar:finish() end
  self.logger:close()
  self.svLogger:close()
end

--- Periodic evaluation on Fashion-MNIST: domain FID, IS, KID and class accuracy of
-- `sampler(n, offset)` samples against the test split (the reference is computed once).
function Run:evaluate(iter, sampler)
  if self.opt.dataset ~= "fashion-mnist" or self.opt.resolution ~= 32 then return nil end
  local evaluation = require("evaluation")
  -- Evaluating never changes the run: building the classifier draws its initial weights from
  -- the global generator, so the generator's state is restored afterwards, and a run gives
  -- the same numbers whatever its evalEvery.
  local r = M.keepingRNG(function()
    self.reference = self.reference or evaluation.reference { split = "test" }
    local images, labels = evaluation.draw(sampler, self.opt.evalSamples)
    return evaluation.metricsOf(images, labels, self.reference, { which = { "fid", "is", "accuracy" } })
  end)
  self.logger:log(iter, { fid = r.fid, is = r.is, accuracy = r.accuracy, evalSamples = r.n })
  return r
end

--- A generator restored from a checkpoint folder of biggan.lua, pggan.lua or dcgan.lua (the
-- latest checkpoint in `dir`, or `dir` itself), with its EMA weights when it has them. Returns
-- a table: model ("biggan" | "pggan" | "dcgan"), G, ema (whether G holds the EMA weights),
-- opt (the run's options), iter, dimZ,
-- numClasses (0: unconditional), channels, resolution, and sample(z, labels) -> images in
-- [-1, 1] at the final resolution (BigGAN and DCGAN sample with batch statistics, as their
-- reference scripts do, without changing the model).
function M.loadGenerator(dir, opts)
  opts = opts or {}
  local probe = io.open(dir .. "/ckpt/latest", "r")
  if probe then probe:close(); dir = dir .. "/ckpt" end       -- a run folder
  local state, folder = ckpt.load(dir)
  local o, meta = state.opt, state.meta or {}
  if type(o) ~= "table" or not state.model then error(("%s is not a checkpoint of biggan.lua, pggan.lua or dcgan.lua"):format(folder), 0) end
  local g = { model = state.model, opt = o, iter = state.iter, folder = folder, channels = meta.channels or 3,
              numClasses = 0, resolution = o.resolution }
  local weights
  local function pick(emaKey)
    local e = state[emaKey]
    if opts.ema ~= false and type(e) == "table" and e.__ema then g.ema = true; return e.model.stateDict end
    g.ema = false
    return state.G.stateDict
  end
  if state.model == "biggan" then
    local biggan = require("models.biggan")
    g.numClasses = meta.numClasses
    g.G = biggan.Generator { resolution = o.resolution, ch = o.ch, dimZ = o.dimZ, sharedDim = o.sharedDim, shared = o.shared,
      hier = o.hier, numClasses = meta.numClasses, attention = o.GAttn, snEps = o.snEps, bnEps = o.bnEps, init = o.init,
      outChannels = g.channels }
    g.dimZ = g.G.dimZ
    weights = pick("ema")
    g.sample = function(z, labels) return g.G(z, g.G:embed(labels)) end
    g.embed = function(labels) return g.G:embed(labels) end
    g.sampleEmbedded = function(z, e) return g.G(z, e) end
  elseif state.model == "pggan" then
    local pggan = require("models.pggan")
    g.G = pggan.Generator { resolution = o.resolution, channels = g.channels, latent = o.latent, fmapBase = o.fmapBase,
      fmapMax = o.fmapMax, mbstdGroup = o.mbstdGroup }
    g.dimZ = o.latent
    weights = pick("Gs")
    local s = state.schedule
    g.sample = function(z)
      local x = g.G(z, s.level, s.t)
      if x:size(3) < o.resolution then x = x:upsampleNearest(o.resolution // x:size(3)) end
      return x:clamp(-1, 1)     -- no tanh in PGGAN's G: clip as the uint8 conversion does
    end
    g.lod = s.lod
  elseif state.model == "dcgan" then
    local dcgan = require("models.dcgan")
    g.G = dcgan.Generator { nz = o.nz, ngf = o.ngf, nc = g.channels }
    g.dimZ = o.nz
    weights = pick("none")
    g.sample = function(z) return g.G(z) end
  else
    error(("%s: unknown model '%s'"):format(folder, tostring(state.model)), 0)
  end
  g.G:loadStateDict(weights)
  local raw = g.sample
  g.sample = function(...)
    local args = table.pack(...)
    return M.withFrozenBuffers(g.G, function()
      return tensor.noGrad(function() return raw(table.unpack(args, 1, args.n)) end)
    end)
  end
  if g.sampleEmbedded then
    local rawE = g.sampleEmbedded
    g.sampleEmbedded = function(z, e)
      return M.withFrozenBuffers(g.G, function() return tensor.noGrad(function() return rawE(z, e) end) end)
    end
  end
  return g
end

--- Latent noise: N(0, I), or truncated at |z| <= truncation (values beyond are resampled,
-- BigGAN's truncation trick) when truncation > 0.
function M.noise(n, dim, truncation)
  if truncation and truncation > 0 then return gan.truncatedNoise(n, dim, truncation) end
  return tensor.randn(n, dim)
end

return M
