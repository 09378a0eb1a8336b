-- training.lua: what every GAN script in scripts/ shares, so each script shows only its model
-- and its update rule: options (with --resume), the data set, the run folder (log, plots,
-- sample sheets, checkpoints, TensorBoard events in tb/), singular-value monitoring and periodic
-- evaluation.
local options = require("options")

local M = {}

--- Options every training script has, appended to the script's own (defaults per script).
function M.commonSpec(d)
  return {
    { "dataset", d.dataset or "fashion-mnist", "fashion-mnist, mnist, cifar10, or a folder of class subfolders of PNGs" },
    { "dataRoot", "", "where the data set's files are (default: the Debian package for (fashion-)mnist; folder/zip: the folder or zip)" },
    { "channels", d.channels or 3, "image channels for folder and zip data sets (1 or 3)", oneOf = { 1, 3 } },
    { "fit", "crop", "how folder and zip images become square: crop (central square), pad (black borders) or stretch",
      oneOf = { "crop", "pad", "stretch" } },
    { "perClass", 0, "train on this many images per class, drawn with the seed (0: all; 600 = 10% of Fashion-MNIST)", min = 0 },
    { "resolution", d.resolution or 32, "image size (28 px data sets are padded to 32)" },
    { "iters", d.iters, "training iterations (G steps)" },
    { "minutes", d.minutes or 0.0, "train for this wall-clock budget instead of --iters (0: use --iters)", min = 0 },
    { "sampleEvery", d.sampleEvery or 500, "iterations between sample sheets" },
    { "saveEvery", d.saveEvery or 1000, "iterations between checkpoints" },
    { "evalEvery", d.evalEvery or 2000, "iterations between FID/accuracy evaluations (0: never; Fashion-MNIST only)" },
    { "evalSamples", d.evalSamples or 2000, "samples per evaluation" },
    { "logEvery", d.logEvery or 10, "iterations between log lines" },
    { "svEvery", d.svEvery or 100, "iterations between top-3 singular values of every weight (0: never)" },
    { "keep", d.keep or 3, "checkpoints kept", min = 1 },
    { "onCollapse", d.onCollapse or "warn", "when D dies or G's spectra explode: warn, stop, or rollback (to the last good checkpoint, fresh seed)",
      oneOf = { "warn", "stop", "rollback" } },
    { "collapsePatience", d.collapsePatience or 50, "iterations of constant D outputs that mean D is dead", min = 1 },
    { "collapseGrowth", d.collapseGrowth or 4.0, "growth of G's first-layer sigma_0 within 5 svEvery records that means it exploded", min = 1 },
    { "collapseRetries", d.collapseRetries or 3, "rollbacks before a run that keeps collapsing stops", min = 0 },
    { "seed", d.seed or 1, "random seed" },
    { "threads", d.threads or 0, "worker threads (0: all cores)" },
    { "out", d.out, "run folder" },
    { "resume", "", "continue the run saved in this folder (its options, unless given again)" },
    { "quiet", false, "no progress bar" },
    { "tensorboard", true, "also write TensorBoard event files (scalars, sample sheets) to <out>/tb" },
    { "crossReplicaBN", false, "under mpirun: BatchNorm statistics over every rank's share of the batch (BigGAN's; off: each rank's own)" },
    { "checkReplicasEvery", d.checkReplicasEvery or 100, "under mpirun: iterations between checksums that the ranks' models are identical",
      min = 1 },
  }
end

-- The option specs given, one after another, as one list.
local function concat(...)
  local out = {}
  for _, spec in ipairs { ... } do
    for _, x in ipairs(spec) do out[#out + 1] = x end
  end
  return out
end

--- Parses the command line (spec = the script's options ++ commonSpec), restores the saved
-- options when resuming (options given again override them), seeds the generator, sets the
-- thread count, creates the run folder and prints the effective options. Returns opt and the
-- saved state (nil unless resuming).
function M.start(spec, description)
  local opt, given = options.cli(arg, spec, description)
  M.rank, M.ranks = dist.rank(), dist.size()
  if M.rank > 0 then opt.quiet = true end                   -- rank 0 speaks and writes for the run
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
  if M.ranks > 1 and opt.batchSize and opt.batchSize % M.ranks ~= 0 then
    error(("--batchSize=%d is the global batch: it must be a multiple of the %d ranks"):format(opt.batchSize, M.ranks), 0)
  end
  tensor.manualSeed(opt.seed)                               -- the same initial models on every rank
  local text = options.describe(opt, spec)
  if M.rank == 0 then
    paths.mkdir(opt.out .. "/samples")
    local f = io.open(opt.out .. "/options.txt", "w")
    if f then f:write(text, "\n"); f:close() end
  end
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
    -- folder / zip: --dataRoot names it (a folder path as --dataset also works); prepared
    -- pixels are cached in runs/cache so later runs do not decode the images again.
    local prep = { size = opt.resolution, channels = opt.channels, fit = opt.fit, cache = "runs/cache" }
    if name == "zip" then
      if not root then error("--dataset=zip needs --dataRoot (the zip, e.g. one made by stylegan2-ada's dataset_tool)", 0) end
      ds = data.zipDataset(root, prep)
    else
      if name == "folder" and not root then error("--dataset=folder needs --dataRoot (a folder of class sub-folders or of images)", 0) end
      ds = data.imageFolder(name == "folder" and root or name, prep)
    end
  end
  if opt.perClass > 0 then ds = ds:subset(opt.perClass, opt.seed) end
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
  -- batchSize is the global batch; under mpirun each rank's loader yields its share of it
  local loader = data.Loader(ds, { batchSize = batchSize, seed = opt.seed, dropLast = true, transform = transform,
                                   rank = dist.rank(), ranks = dist.size() })
  return ds, loader, ds.images:size(2), ds.numClasses
end

--- This rank's share of a global batch size (the whole of it without mpirun).
function M.localBatch(globalBatch) return globalBatch // dist.size() end

-- One dist.GradientAverager per model (its parameter list fixed when first asked for).
local averagers = setmetatable({}, { __mode = "k" })
local function averagerOf(model)
  local params = model:parameters()
  local a = averagers[model]
  if not a or a.count ~= #params then
    a = { averager = dist.GradientAverager(params), count = #params }
    averagers[model] = a
  end
  return a.averager
end

--- A step's last backward pass: under mpirun, each bucket of `model`'s gradients starts its
-- all-reduce as soon as backward has finished it, overlapping communication with the rest of
-- backward (syncGradients then waits for them). In one process, loss:backward().
function M.lastBackward(loss, model)
  if dist.size() > 1 then averagerOf(model):arm() end
  loss:backward()
end

--- The end of a step's backward passes under mpirun: the gradients of `model`'s parameters
-- averaged over ranks (bucketed), so every rank's optimizer takes the same step. Finishes what
-- lastBackward started, else reduces them all now.
function M.syncGradients(model)
  if dist.size() == 1 then return end
  if not averagerOf(model):finish() then dist.averageGradients(model:parameters()) end
end

--- The small-data options the GAN scripts share (training.SmallData uses them).
function M.smallDataSpec()
  return {
    { "diffAugment", "", "DiffAugment policy for every image D sees, e.g. 'color,translation,cutout' ('': none)" },
    { "adaTarget", 0.0, "with diffAugment: ADA's adaptive probability, steered toward this E[sign D(real)] (0: always augment)",
      min = 0, max = 1 },
    { "adaKimg", 100.0, "ADA: thousands of images for the probability to go from 0 to 1", min = 0 },
    { "lecam", 0.0, "LeCam regularization weight on D (Tseng et al. 2021; 0.3 for BigGAN on CIFAR; 0: off)", min = 0 },
  }
end

local SmallData = {}
SmallData.__index = SmallData

--- DiffAugment (with ADA's probability when adaTarget is set) and LeCam as the options ask,
-- their running state restored from `saved`: aids:augment(x) on everything D sees,
-- aids:dLoss(loss, dReal, dFake, iter) for D's loss, aids:state() for the checkpoint's
-- values (as `smallData`), aids:scalars(t) for the log.
function M.SmallData(opt, saved)
  local self = setmetatable({ policy = opt.diffAugment, weight = opt.lecam }, SmallData)
  if opt.diffAugment ~= "" then gan.diffAugment(tensor.zeros(1, 1, 2, 2), opt.diffAugment) end   -- a bad policy fails now
  self.ada = opt.diffAugment ~= "" and opt.adaTarget > 0 and gan.AdaptiveAugment { target = opt.adaTarget, kimg = opt.adaKimg } or nil
  self.lecam = opt.lecam > 0 and gan.LeCam() or nil
  local s = saved and saved.smallData or {}
  if self.ada and s.ada then self.ada:load(s.ada) end
  if self.lecam and s.lecam then self.lecam:load(s.lecam) end
  return self
end
function SmallData:augment(x)
  if self.policy == "" then return x end
  return gan.diffAugment(x, self.policy, { p = self.ada and self.ada.p or 1 })
end
function SmallData:dLoss(loss, dReal, dFake, iter)
  if self.ada then self.ada:observe(dReal) end
  if not self.lecam then return loss end
  self.lecam:update(dReal, dFake, iter)      -- the averages first, as google/lecam-gan
  return loss + self.lecam:penalty(dReal, dFake) * self.weight
end
function SmallData:state() return { ada = self.ada and self.ada:state(), lecam = self.lecam and self.lecam:state() } end
function SmallData:scalars(t)
  if self.ada then t.augmentP = self.ada.p end
  return t
end

--- Gradient accumulation (BigGAN-PyTorch's num_D_accumulations / num_G_accumulations): calls
-- lossFn(k) for k = 1..n, each on its own minibatch, and backpropagates loss/n, so the
-- gradients are those of the mean loss over the n minibatches: one step on the combined batch
-- (BatchNorm statistics aside). Returns the mean loss (detached) and lossFn's other results
-- from its last call. With `model`, the last backward is lastBackward(loss, model).
function M.accumulated(n, lossFn, model)
  local total, last = 0, nil
  for k = 1, n do
    local results = table.pack(lossFn(k))
    local loss = results[1]
    if n > 1 then loss = loss / n end
    if model and k == n then M.lastBackward(loss, model) else loss:backward() end
    total = total + loss:detach()
    last = results
  end
  return total, table.unpack(last, 2, last.n)
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

-- The collapse watch: a D whose outputs no longer depend on its input (dead ReLUs: the output
-- is the last layer's bias, the hinge loss sits at 2 and no gradient reaches D's weights), a
-- loss that is no longer finite, or G's first-layer top singular value exploding (BigGAN,
-- Brock et al. 2019, Section 4.1 and Figure 3: sigma_0 of G's first layer jumps as training
-- collapses). Each check returns a diagnosis and the iteration the trouble began.
local Watch = {}
Watch.__index = Watch

function M.CollapseWatch(opts)
  opts = opts or {}
  return setmetatable({ patience = opts.patience or 50, growth = opts.growth or 4.0, window = opts.window or 5,
                        flat = 0, flatSince = nil, sigmas = {} }, Watch)
end

local function isFinite(x) return x == x and x > -math.huge and x < math.huge end

--- watch:step(iter, scalars, dOut): scalars = the step's losses; dOut = D's outputs on the
-- step's batch (any shape). Returns diagnosis, sinceIter when D is dead or a loss diverged.
function Watch:step(iter, scalars, dOut)
  for name, v in pairs(scalars) do
    local x = tensor.isTensor(v) and v:item() or v
    if type(x) == "number" and not isFinite(x) then return ("%s is %s"):format(name, tostring(x)), iter end
  end
  if dOut and dOut:numel() >= 2 then
    local out = dOut:detach():reshape(-1)
    local spread, level = out:std():item(), out:abs():mean():item()
    if spread <= 1e-6 * math.max(1, level) then
      self.flat = self.flat + 1
      self.flatSince = self.flatSince or iter
      if self.flat >= self.patience then
        return ("D is dead: its outputs have been constant (%.6g) for %d iterations"):format(out[1], self.flat),
          self.flatSince
      end
    else
      self.flat, self.flatSince = 0, nil
    end
  end
end

--- watch:sigma(iter, value, name): G's first-layer sigma_0 at a monitoring step (name: that
-- weight's). Returns diagnosis, sinceIter when it grew by `growth` or more within the last
-- `window` records.
function Watch:sigma(iter, value, name)
  local layer = name and ("G's first layer (%s)"):format(name) or "G's first layer"
  local s = self.sigmas
  s[#s + 1] = { iter = iter, value = value }
  if #s > self.window + 1 then table.remove(s, 1) end
  if not isFinite(value) then return ("%s: sigma_0 is %s"):format(layer, tostring(value)), s[1].iter end
  local low = s[1]
  for i = 2, #s - 1 do if s[i].value < low.value then low = s[i] end end
  if #s >= 2 and low.value > 0 and value >= self.growth * low.value then
    return ("%s: sigma_0 exploded, %.4g at iteration %d, %.4g at %d"):format(layer, low.value, low.iter, value, iter), low.iter
  end
end

-- A run: the folder, the log, the progress bar, plots, and what every training script does
-- around its two updates.
local Run = {}
Run.__index = Run

--- training.Run(opt, parts, saved): the run of a training script.
-- parts.objects   what checkpoints load in place: modules, optimizers, EMAs, the loader
-- parts.info      plain values saved with every checkpoint (model = "biggan", meta = {...})
-- parts.values()  plain values that change during the run (e.g. PGGAN's schedule), saved too
-- parts.restore(state)  adopts a checkpoint's state after a resume or a rollback (optional)
-- parts.sheet()   images (N, C, H, W) in [-1, 1], the row length, and a name suffix (optional)
-- parts.evaluate(n, i) -> images, labels: samples for FID/IS/accuracy (optional), when
--                 parts.canEvaluate() (if given) says the model is ready
-- parts.monitor   models whose singular values are logged ({G = G, D = D})
-- parts.firstLayer  the name of G's first layer's weight, whose sigma_0 the collapse watch
--                 follows (default: G's first parameter with 2+ dims)
-- parts.losses    names of the scalars plotted as losses
-- Then:  while run:next() do local iter = run.iter ... run:afterStep(scalars, dOut) end
--        run:finish()
-- With --minutes the run lasts that wall-clock budget (time spent saving, sampling and
-- evaluating included), otherwise --iters iterations; resuming continues the budget.
function M.Run(opt, parts, saved)
  local self = setmetatable({ opt = opt, dir = opt.out, parts = parts, iter = 0, elapsed = 0, milestones = {},
                              rollbacks = 0, done = {} }, Run)
  if saved then
    ckpt.load(opt.resume .. "/ckpt", parts.objects)
    tensor.setRNGState(saved.rng)
    self.iter = saved.iter
    local r = saved.run or {}
    self.elapsed, self.milestones, self.rollbacks = r.elapsed or 0, r.milestones or {}, r.rollbacks or 0
    if parts.restore then parts.restore(saved) end
  end
  self.startIter = self.iter
  self.rank, self.ranks = dist.rank(), dist.size()
  if self.ranks > 1 then
    -- the same models, optimizers' parameters and buffers everywhere (rank 0's), then a
    -- different noise stream per rank, fixed by (seed, iteration, rank) so a resume with
    -- another rank count is deterministic too
    local modules = {}
    for _, v in pairs(parts.objects) do if nn.isModule(v) then modules[#modules + 1] = v end end
    table.sort(modules, function(a, b) return a:typeName() < b:typeName() end)
    self.modules = modules
    dist.broadcastModules(modules)
    tensor.manualSeed(opt.seed * 1000003 + self.iter * 7919 + self.rank)
    for _, m in ipairs(parts.crossReplica or {}) do nn.utils.crossReplicaBN(m, opt.crossReplicaBN) end
  end
  local silent = { log = function() end, close = function() end }      -- ranks other than 0 write nothing
  self.logger = self.rank == 0 and log.Logger(opt.out) or silent
  self.svLogger = self.rank == 0 and log.Logger(opt.out, { name = "singular_values.jsonl" }) or silent
  if opt.tensorboard and self.rank == 0 then
    self.tb = log.TensorBoard(opt.out .. "/tb")
    -- Each session starts with a marker at its first step, iter + 1 (the checkpoint holds iter):
    -- at a later session's marker TensorBoard drops what earlier ones drew at and after that
    -- step (a killed run's tail); the server's reader takes the first marker as the start.
    self.tb:resume(self.iter + 1)
  end
  self.watch = M.CollapseWatch { patience = opt.collapsePatience, growth = opt.collapseGrowth }
  if not opt.quiet then
    self.bar = opt.minutes > 0 and log.Progress(nil, { seconds = opt.minutes * 60 }) or log.Progress(opt.iters)
  end
  self.clock = log.clock()
  return self
end

--- Advances to the next iteration (run.iter) while the budget (time or iterations) lasts.
function Run:next()
  self:tick()
  local more
  if self.opt.minutes > 0 then
    if self.ranks > 1 then      -- rank 0's clock decides for everyone
      local e = tensor.new({ self.elapsed }, { dtype = "float64" })
      dist.broadcast(e, 0)
      self.elapsed = e[1]
    end
    more = self.elapsed < self.opt.minutes * 60
  else
    more = self.iter < self.opt.iters
  end
  if more then self.iter = self.iter + 1 end
  return more
end

-- Adds the time since the last tick to the budget spent.
function Run:tick()
  local now = log.clock()
  self.elapsed, self.clock = self.elapsed + (now - self.clock), now
end

--- The share of the run behind us: of the time budget with --minutes, else of --iters.
function Run:progress()
  if self.opt.minutes > 0 then return self.elapsed / (self.opt.minutes * 60) end
  return self.iter / self.opt.iters
end

--- The learning-rate factor of a linear decay that starts at `fraction` of the run and reaches
-- 0 at its end: 1 before, then (1 - progress) / (1 - fraction). It follows progress(), so with
-- --minutes the decay ends when the budget does, however many iterations fit.
function Run:decayFactor(fraction)
  if fraction >= 1 then return 1 end
  local p = self:progress()
  if p <= fraction then return 1 end
  return math.max(0, (1 - p) / (1 - fraction))
end

--- True once, at the first iteration where the run has passed `fraction` of itself; the
-- iteration is remembered (and saved), so a resumed run does not pass it again.
function Run:reaches(name, fraction)
  if self.milestones[name] or self:progress() < fraction then return false end
  self.milestones[name] = self.iter
  self.logger:log(self.iter, { milestone = name })
  return true
end

function Run:log(iter, scalars)
  if iter % self.opt.logEvery == 0 then
    self.logger:log(iter, scalars)
    if self.tb then self.tb:scalars(iter, scalars) end
  end
  if self.bar then
    local shown = {}
    for k, v in pairs(scalars) do shown[k] = tensor.isTensor(v) and v:item() or v end
    self.bar:update(iter, shown, self.opt.minutes > 0 and self.elapsed or nil)
  end
end

--- After the two updates: log, collapse watch, singular values, sheets, evaluation and
-- checkpoints at their intervals. `dOut`: D's outputs of the step, for the collapse watch.
function Run:afterStep(scalars, dOut)
  local opt, iter, parts = self.opt, self.iter, self.parts
  if self.ranks > 1 then scalars, dOut = self:gathered(scalars, dOut) end
  self:log(iter, scalars)
  local trouble, since = self.watch:step(iter, scalars, dOut)
  if self.ranks > 1 and iter % opt.checkReplicasEvery == 0 then dist.checkReplicas(self.modules, "the models") end
  if not trouble and opt.svEvery > 0 and iter % opt.svEvery == 0 and parts.monitor then
    trouble, since = self:singularValues(iter, parts.monitor)
  end
  if trouble then return self:collapsed(trouble, since) end
  if iter % opt.sampleEvery == 0 then self:drawSheets() end
  if opt.evalEvery > 0 and iter % opt.evalEvery == 0 then self:evaluateNow() end
  if iter % opt.saveEvery == 0 then self:checkpoint() end
end

-- Under mpirun: the step's scalars averaged over ranks and D's outputs of all ranks, so that
-- the log speaks for the global batch and every rank's collapse watch decides the same.
function Run:gathered(scalars, dOut)
  local names, values = {}, {}
  for k, v in pairs(scalars) do
    if tensor.isTensor(v) or type(v) == "number" then names[#names + 1] = k end
  end
  table.sort(names)
  for i, k in ipairs(names) do values[i] = tensor.isTensor(scalars[k]) and scalars[k]:item() or scalars[k] end
  local t = dist.allReduce(tensor.new(values, { dtype = "float64" }), { op = "mean" })
  local out = {}
  for k, v in pairs(scalars) do out[k] = v end
  for i, k in ipairs(names) do out[k] = t[i] end
  return out, dOut and dist.allGather(dOut:detach():contiguous()) or nil
end

-- Runs fn with cross-replica BatchNorm off: sampling for sheets (rank 0 alone) and for
-- evaluation (each rank its own share) uses each rank's own batch statistics, and makes no
-- collective call another rank would not make.
function Run:locally(fn)
  local models = self.ranks > 1 and self.opt.crossReplicaBN and self.parts.crossReplica or {}
  for _, m in ipairs(models) do nn.utils.crossReplicaBN(m, false) end
  local results = table.pack(pcall(fn))
  for _, m in ipairs(models) do nn.utils.crossReplicaBN(m, true) end
  if not results[1] then error(results[2], 0) end
  return table.unpack(results, 2, results.n)
end

function Run:drawSheets()
  if not self.parts.sheet or self.done.sheet == self.iter or self.rank > 0 then return end
  self.done.sheet = self.iter
  local images, nrow, suffix = self:locally(self.parts.sheet)
  local _, grid = self:sheet(("iter-%07d%s"):format(self.iter, suffix or ""), images, nrow)
  self:sheet("latest", images, nrow)
  if self.tb then self.tb:image(self.iter, "samples", grid, { range = { -1, 1 } }) end
  self:plots(self.parts.losses or { "lossD", "lossG" })
end

function Run:evaluateNow()
  local parts = self.parts
  if not parts.evaluate or self.done.eval == self.iter or (parts.canEvaluate and not parts.canEvaluate()) then return end
  self.done.eval = self.iter
  local r = self:locally(function() return self:evaluate(self.iter, self.parts.evaluate) end)
  if r and not self.opt.quiet then
    print(("\niter %d: domain FID %.2f, IS %.2f%s (%d samples)"):format(self.iter, r.fid, r.is,
      r.accuracy and (", class accuracy %.1f%%"):format(100 * r.accuracy) or "", r.n))
  end
  return r
end

-- Says what went wrong, then warns, stops, or rolls back as --onCollapse asks. A run that
-- stops (or has no checkpoint to go back to) saves its state, then exits with status 3.
function Run:collapsed(trouble, since)
  local opt = self.opt
  local message = ("iteration %d: training collapsed: %s"):format(self.iter, trouble)
  if self.bar then io.stdout:write("\n") end
  print(message)
  self.logger:log(self.iter, { collapse = trouble, since = since })
  if opt.onCollapse == "warn" then
    self.watch = M.CollapseWatch { patience = opt.collapsePatience, growth = opt.collapseGrowth }   -- say it once per episode
    return
  end
  if opt.onCollapse == "rollback" then
    if self.rollbacks >= opt.collapseRetries then
      print(("%d rollback(s) already (--collapseRetries=%d)"):format(self.rollbacks, opt.collapseRetries))
    elseif self:rollback(since) then
      return
    end
  end
  self:finish()
  io.stderr:write(("%s: %s (stopped: --onCollapse=%s)\n"):format(arg and arg[0] or "luagan", message, opt.onCollapse))
  os.exit(3)
end

-- Loads the newest checkpoint from before `since` and goes on from it with a fresh seed.
-- Checkpoints after it (already collapsed) are removed. Returns false when there is none.
function Run:rollback(since)
  local dir = self.dir .. "/ckpt"
  local names = select(1, paths.exists(dir)) and ckpt.list(dir) or {}
  local target
  for _, name in ipairs(names) do
    local it = tonumber(name:match("^iter%-(%d+)$"))
    if it and it < since then target = name end
  end
  if not target then
    print(("no checkpoint from before iteration %d to roll back to"):format(since))
    return false
  end
  for _, name in ipairs(names) do
    if name > target then paths.remove(dir .. "/" .. name) end
  end
  local saved = ckpt.load(dir .. "/" .. target, self.parts.objects)
  local r = saved.run or {}
  self.iter, self.elapsed = saved.iter, self.elapsed       -- the time already spent stays spent
  self.milestones = r.milestones or {}
  self.rollbacks = self.rollbacks + 1
  if self.parts.restore then self.parts.restore(saved) end
  local seed = self.opt.seed + 1000 * self.rollbacks
  tensor.manualSeed(seed)
  self.watch = M.CollapseWatch { patience = self.opt.collapsePatience, growth = self.opt.collapseGrowth }
  self.done = {}
  self.logger:log(self.iter, { rollback = target, seed = seed })
  if self.tb then self.tb:resume(self.iter + 1) end   -- TensorBoard drops the collapsed tail (see M.Run)
  print(("rolled back to %s, continuing with seed %d"):format(target, seed))
  return true
end

--- Writes a sheet of images (N, C, H, W) in [-1, 1], nrow per row, to samples/<name>.png.
-- Returns the path and the sheet (C, H', W'), still in [-1, 1].
function Run:sheet(name, images, nrow)
  local path = ("%s/samples/%s.png"):format(self.dir, name)
  local grid = image.grid(images, { nrow = nrow, padding = 2, padValue = 1 })
  image.save(path, grid, { range = { -1, 1 } })
  return path, grid
end

--- Logs the top-3 singular values of every weight (2+ dims) of the named models, and
-- redraws one plot per model: the largest singular value of each layer over training.
-- Returns the collapse watch's diagnosis of G's first layer, if any.
function Run:singularValues(iter, models)
  local rec = {}
  local firstG, firstName
  for prefix, model in pairs(models) do
    for name, p in model:namedParameters() do
      if p:dim() >= 2 then
        local svs = nn.utils.singularValues(p, math.min(3, p:size(1), p:numel() // p:size(1)))
        for k, s in ipairs(svs) do rec[("%s.%s.sv%d"):format(prefix, name, k - 1)] = s end
        local watched = self.parts.firstLayer
        if prefix == "G" and ((watched and name == watched) or (not watched and not firstG)) then
          firstG, firstName = svs[1], name
        end
      end
    end
  end
  self.svLogger:log(iter, rec)
  if self.tb then
    local named = {}   -- "G.conv1.weight.sv0" -> "sv_G/conv1.weight.sv0": TensorBoard groups tags by prefix
    for key, s in pairs(rec) do named[key:gsub("^([^.]+)%.", "sv_%1/", 1)] = s end
    self.tb:scalars(iter, named)
  end
  local records = self.rank == 0 and log.read(self.dir .. "/singular_values.jsonl") or {}
  for prefix in pairs(self.rank == 0 and models or {}) do
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
  if firstG then return self.watch:sigma(iter, firstG, firstName) end
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

function Run:checkpoint()
  if self.done.save == self.iter or self.rank > 0 then return end
  self.done.save = self.iter
  local state = {}
  for k, v in pairs(self.parts.objects) do state[k] = v end
  for k, v in pairs(self.parts.info or {}) do state[k] = v end
  for k, v in pairs(self.parts.values and self.parts.values() or {}) do state[k] = v end
  self:tick()      -- the checkpoint counts the time up to now, this iteration's included
  state.iter = self.iter
  state.rng = tensor.getRNGState()
  state.opt = options.plain(self.opt)
  state.run = { elapsed = self.elapsed, milestones = self.milestones, rollbacks = self.rollbacks }
  ckpt.save(self.dir .. "/ckpt", state, { name = ("iter-%07d"):format(self.iter), keep = self.opt.keep })
end

--- The end of the run: the last sheet, evaluation and checkpoint (unless this iteration had
-- them), and how many iterations the run took.
function Run:finish()
  if self.finished then return end
  self.finished = true
  if self.ranks > 1 then dist.checkReplicas(self.modules, "the models") end
  if self.iter > self.startIter then
    self:drawSheets()
    if self.opt.evalEvery > 0 then self:evaluateNow() end
    self:checkpoint()
  end
  if self.bar then self.bar:finish() end
  local minutes = self.elapsed / 60
  self.logger:log(self.iter, { iterations = self.iter, minutes = minutes })
  if not self.opt.quiet then
    print(("%d iterations in %.1f minutes (%.2f it/s)%s"):format(self.iter, minutes, self.iter / math.max(self.elapsed, 1e-9),
      self.rollbacks > 0 and (", %d rollback(s)"):format(self.rollbacks) or ""))
  end
  self.logger:close()
  self.svLogger:close()
  if self.tb then self.tb:close() end
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
    local images, labels = evaluation.draw(sampler, self.opt.evalSamples, nil, { rank = self.rank, ranks = self.ranks })
    return evaluation.metricsOf(images, labels, self.reference, { which = { "fid", "is", "accuracy" } })
  end)
  self.logger:log(iter, { fid = r.fid, is = r.is, accuracy = r.accuracy, evalSamples = r.n })
  if self.tb then self.tb:scalars(iter, { ["eval/fid"] = r.fid, ["eval/is"] = r.is, ["eval/accuracy"] = r.accuracy }) end
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
    g.numClasses = meta.numClasses
    g.G = require(o.arch == "deep" and "models.biggan_deep" or "models.biggan").fromOptions(o, g.channels, meta.numClasses)
    g.dimZ = g.G.dimZ
    weights = pick("ema")
    g.sample = function(z, labels) return g.G(z, g.G:embed(labels)) end
    g.embed = function(labels) return g.G:embed(labels) end
    g.sampleEmbedded = function(z, e) return g.G(z, e) end
  elseif state.model == "pggan" then
    g.G = require("models.pggan").fromOptions(o, g.channels)
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
    g.G = require("models.dcgan").fromOptions(o, g.channels)
    g.dimZ = o.nz
    weights = pick("none")
    g.sample = function(z) return g.G(z) end
  else
    error(("%s: unknown model '%s'"):format(folder, tostring(state.model)), 0)
  end
  g.G:loadStateDict(weights)
  local raw = g.sample
  -- g.standing(n, truncation): standing statistics over n batches of 64 (noise truncated as
  -- the samples will be), after which G samples in eval mode (nn.utils.standingStats).
  g.standing = function(n, truncation)
    nn.utils.standingStats(g.G, n, function()
      local z = M.noise(64, g.dimZ, truncation or 0)
      if g.numClasses > 0 then raw(z, tensor.randint(1, g.numClasses, 64)) else raw(z) end
    end)
  end
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
--- A generator from PyTorch weights, with loadGenerator's fields (model, G, dimZ, numClasses,
-- channels, resolution, sample, embed, sampleEmbedded, standing) plus noise(n, truncation) and
-- prepare(truncation), which samplers call before each batch at a truncation:
-- * `path` a BigGAN-PyTorch G.pth / G_ema.pth (BigGAN.py or BigGANdeep.py, told apart by its
--   names), sampled in eval mode with its stored BN statistics (or standing ones), truncation
--   by resampling as gan.truncatedNoise;
-- * with opts.pretrained = "biggan-deep-128" | "-256" | "-512", `path` is pytorch-pretrained-
--   BigGAN's pytorch_model.bin: its truncation t in (0, 1] scales noise truncated at 2 (its
--   truncated_noise_sample) and picks its BN statistics (threshold 0 means t = 1).
function M.loadPyTorchGenerator(path, opts)
  opts = opts or {}
  local sd = tensor.load(path)
  local g = { iter = 0, ema = path:match("ema") ~= nil, opt = { shared = true, out = (path:match("^(.*)/[^/]*$") or ".") } }
  if opts.pretrained then
    local resolution = tonumber(tostring(opts.pretrained):match("^biggan%-deep%-(%d+)$"))
    if not ({ [128] = true, [256] = true, [512] = true })[resolution] then
      error(("--pretrained must be biggan-deep-128, biggan-deep-256 or biggan-deep-512, got '%s'"):format(tostring(opts.pretrained)), 0)
    end
    local ok, G, o = pcall(require("models.biggan_deep").fromPretrained, sd)
    if not ok then error(("%s: %s"):format(path, G), 0) end
    if o.resolution ~= resolution then
      error(("%s holds a %d px BigGAN-deep, not %s"):format(path, o.resolution, opts.pretrained), 0)
    end
    g.model, g.G, g.opt.pretrained = "biggan-deep", G, opts.pretrained
    g.noise = function(n, t)
      local z = M.noise(n, o.dimZ, 2.0)
      return (t > 0 and t < 1) and z * t or z
    end
    g.prepare = function(t) G:setTruncation((t > 0 and t <= 1) and t or 1.0) end
    g.truncations = { 1, 0.75, 0.5, 0.4, 0.25 }
  else
    if type(sd) ~= "table" or not tensor.isTensor(sd["linear.weight"]) then
      error(("%s is not a BigGAN-PyTorch generator state dict (G.pth or G_ema.pth: no linear.weight)"):format(path), 0)
    end
    local deep = tensor.isTensor(sd["blocks.0.0.conv4.weight"])
    local ok, G = pcall(require(deep and "models.biggan_deep" or "models.biggan").fromPyTorch, sd)
    if not ok then error(("%s: %s"):format(path, G), 0) end
    g.model, g.G = deep and "biggan-deep" or "biggan", G
  end
  local o = g.G.options
  g.dimZ, g.numClasses, g.channels, g.resolution = g.G.dimZ, o.numClasses, o.outChannels, o.resolution
  g.noise = g.noise or function(n, t) return M.noise(n, g.dimZ, t) end
  g.embed = function(labels) return g.G:embed(labels) end
  g.sampleEmbedded = function(z, e) return tensor.noGrad(function() return g.G(z, e) end) end
  g.sample = function(z, labels) return g.sampleEmbedded(z, g.G:embed(labels)) end
  g.standing = function(n, truncation)
    nn.utils.standingStats(g.G, n, function() g.G(g.noise(64, truncation or 0), g.G:embed(tensor.randint(1, g.numClasses, 64))) end)
  end
  return g
end

function M.noise(n, dim, truncation)
  if truncation and truncation > 0 then return gan.truncatedNoise(n, dim, truncation) end
  return tensor.randn(n, dim)
end

return M
