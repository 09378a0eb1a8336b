-- training/run.lua: the run of a training script: its budget, log and progress, checkpoints, and the
-- end of the run. Its reports (sheets, evaluation, singular values, the collapse response) are in
-- training/report.lua.
-- Part of scripts/lib/training.lua (require("training")), which loads every part into one table.
local M = require("training")
local options = require("options")

-- A run: the folder, the log, the progress bar, plots, and what every training script does
-- around its two updates.
local Run = {}
Run.__index = Run
M.RunMethods = Run      -- training/report.lua adds the reporting methods

--- training.Run(opt, parts, saved): the run of a training script.
-- parts.objects   what checkpoints load in place: modules, optimizers, EMAs, the loader
-- parts.info      plain values saved with every checkpoint (model = "biggan", meta = {...})
-- parts.values()  plain values that change during the run (e.g. PGGAN's schedule), saved too
-- parts.restore(state)  adopts a checkpoint's state after a resume or a rollback (optional)
-- parts.sheet()   images (N, C, H, W) in [-1, 1], the row length, a name suffix and a label per
--                 row (class names) (optional)
-- parts.evaluate(n, i) -> images, labels: samples for FID/IS/accuracy (optional), when
--                 parts.canEvaluate() (if given) says the model is ready
-- parts.probeD()  -> D's mean output on training and on held-out images, logged with each
--                 evaluation as dTrain, dHeldOut, dGap (training.overfitProbe; optional)
-- parts.monitor   models whose singular values are logged ({G = G, D = D})
-- parts.firstLayer  the name of G's first layer's weight, whose sigma_0 the collapse watch
--                 follows (default: G's first parameter with 2+ dims)
-- parts.losses    names of the scalars plotted as losses
-- parts.status()  a few words on where the run is, for the progress line (optional)
-- parts.remaining(run)  seconds the rest of the run will take, when the iteration rate says
--                 less than the script knows (optional)
-- Then:  while run:next() do local iter = run.iter ... run:afterStep(scalars, dOut) end
--        run:finish()
-- With --minutes the run lasts that wall-clock budget (time spent saving, sampling and
-- evaluating included), otherwise --iters iterations; resuming continues the budget.
function M.Run(opt, parts, saved)
  local self = setmetatable({ opt = opt, dir = opt.out, parts = parts, iter = 0, elapsed = 0, milestones = {},
                              rollbacks = 0, done = {} }, Run)
  if saved then
    local was, is = saved.model, parts.info and parts.info.model
    if was and is and was ~= is then
      error(("%s holds a %s run, not %s: continue it with luagan scripts/%s.lua --resume=%s"):format(opt.resume, was, is, was,
        opt.resume), 0)
    end
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
  self.watch = M.collapseWatchFor(opt)
  if not opt.quiet then
    self.bar = opt.minutes > 0 and log.Progress(nil, { seconds = opt.minutes * 60 }) or log.Progress(opt.iters)
  end
  self.clock = log.clock()
  -- Ctrl-C: the first finishes the step, saves and stops (Run:next); a second stops at once
  log.catchInterrupts(true)
  if self.rank == 0 then ckpt.clean(opt.out .. "/ckpt") end    -- what an interrupted save left behind
  -- a run that rolls back on collapse keeps its starting point too: a D that dies before the
  -- first --saveEvery checkpoint restarts from its initialization with a fresh seed
  if not saved and opt.onCollapse == "rollback" and opt.collapseRetries > 0 then self:checkpoint() end
  return self
end

--- Advances to the next iteration (run.iter) while the budget (time or iterations) lasts.
function Run:next()
  self:tick()
  if self.iter > self.startIter and self:interrupted() then self:stopOnInterrupt() end
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

-- Whether Ctrl-C was pressed (on any rank: they agree, so all stop at the same iteration).
function Run:interrupted()
  local asked = log.interrupted()
  if self.ranks > 1 then
    asked = dist.allReduce(tensor.new({ asked and 1 or 0 }, { dtype = "float64" }))[1] > 0
  end
  return asked
end

-- The step before Ctrl-C is complete: save it, say how to resume, and stop (status 130, as a
-- shell reports an interrupted command). A second Ctrl-C during the save stops at once and
-- leaves the last complete checkpoint as it was.
function Run:stopOnInterrupt()
  if self.bar then io.stdout:write("\n") end
  if self.rank == 0 then
    io.stderr:write(("interrupted at iteration %d: saving a checkpoint (Ctrl-C again stops at once; the last complete "
      .. "checkpoint stays)\n"):format(self.iter))
  end
  self:checkpoint()
  self.logger:log(self.iter, { interrupted = true })
  self.logger:close(); self.svLogger:close()
  if self.tb then self.tb:close() end
  log.catchInterrupts(false)
  if self.rank == 0 then
    io.stderr:write(("saved %s/ckpt/iter-%07d; continue with: luagan %s --resume=%s\n"):format(self.dir, self.iter,
      arg and arg[0] or "script.lua", self.dir))
  end
  if self.ranks > 1 then dist.barrier() end
  os.exit(130)
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
    -- a script may say where the run is (PGGAN: its level and fade) and how long the rest takes
    -- when iterations are not all alike (later levels cost more per image)
    self.bar.status = self.parts.status and self.parts.status() or nil
    self.bar.remaining = self.parts.remaining and self.parts.remaining(self) or nil
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
  local images, nrow, suffix, labels = self:locally(self.parts.sheet)
  local _, grid = self:sheet(("iter-%07d%s"):format(self.iter, suffix or ""), images, nrow, labels)
  self:sheet("latest", images, nrow, labels)
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
      r.accuracy and (", class accuracy %.1f%%"):format(100 * r.accuracy)
        or (", %d/%d classes, KL %.3f"):format(r.classesCovered, r.classes, r.coverageKL), r.n))
  end
  return r
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
