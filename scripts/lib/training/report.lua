-- training/report.lua: what a run reports besides its log: sample sheets, evaluation, singular values and
-- plots, and what it does when training collapses.
-- Part of scripts/lib/training.lua (require("training")), which loads every part into one table.
local M = require("training")
local Run = M.RunMethods

-- Says what went wrong, then warns, stops, or rolls back as --onCollapse asks. A run that
-- stops (or has no checkpoint to go back to) saves its state, then exits with status 3.
function Run:collapsed(trouble, since)
  local opt = self.opt
  local message = ("iteration %d: training collapsed: %s"):format(self.iter, trouble)
  if self.bar then io.stdout:write("\n") end
  print(message)
  self.logger:log(self.iter, { collapse = trouble, since = since })
  if opt.onCollapse == "warn" then
    self.watch = M.collapseWatchFor(opt)   -- say it once per episode
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
  self.watch = M.collapseWatchFor(self.opt)
  self.done = {}
  self.logger:log(self.iter, { rollback = target, seed = seed })
  if self.tb then self.tb:resume(self.iter + 1) end   -- TensorBoard drops the collapsed tail (see M.Run)
  print(("rolled back to %s, continuing with seed %d"):format(target, seed))
  return true
end


--- Writes a sheet of images (N, C, H, W) in [-1, 1], nrow per row, to samples/<name>.png.
-- Returns the path and the sheet (C, H', W'), still in [-1, 1].
function Run:sheet(name, images, nrow, labels)
  local path = ("%s/samples/%s.png"):format(self.dir, name)
  local grid = image.grid(images, { nrow = nrow, padding = 2, padValue = 1, rowLabels = labels })
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


--- A run's own evaluations during training, from its log records (log.read): for each of
-- `keys`, { [iteration] = value }. An iteration evaluated again after a resume keeps its later
-- value; a rollback drops what the abandoned branch evaluated past the checkpoint it went back
-- to; eval.lua's lines (source = "eval.lua"; in older logs, an evaluation at the run's last
-- iteration after its end) have other noise and sample counts and are left out.
function M.trainingEvaluations(records, keys)
  local byKey, ended = {}, nil
  for _, k in ipairs(keys) do byKey[k] = {} end
  for _, e in ipairs(records) do
    if type(e) == "table" and type(e.iter) == "number" then
      if e.rollback then
        for _, at in pairs(byKey) do for it in pairs(at) do if it > e.iter then at[it] = nil end end end
      elseif e.iterations then
        ended = e.iter
      elseif e.evalSamples and e.source == nil and e.iter ~= ended then
        for k, at in pairs(byKey) do if type(e[k]) == "number" then at[e.iter] = e[k] end end
      end
    end
  end
  return byKey
end

--- Periodic evaluation on Fashion-MNIST: domain FID, IS, KID and class accuracy of
-- `sampler(n, offset)` samples against the test split (the reference is computed once), and
-- with parts.probeD, D's mean output on training against held-out images (dTrain, dHeldOut,
-- dGap).
function Run:evaluate(iter, sampler)
  if self.opt.dataset ~= "fashion-mnist" or self.opt.resolution ~= 32 then return nil end
  local evaluation = require("evaluation")
  -- Evaluating never changes the run: building the classifier draws its initial weights from
  -- the global generator, so the generator's state is restored afterwards, and a run gives
  -- the same numbers whatever its evalEvery.
  local r = M.keepingRNG(function()
    self.reference = self.reference or evaluation.reference { split = "test" }
    local images, labels = evaluation.draw(sampler, self.opt.evalSamples, nil, { rank = self.rank, ranks = self.ranks })
    -- class accuracy for conditional models; mode coverage (class histogram, KL to uniform) for all
    return evaluation.metricsOf(images, labels, self.reference, { which = { "fid", "is", "accuracy", "coverage" } })
  end)
  local logged = { fid = r.fid, is = r.is, accuracy = r.accuracy, classesCovered = r.classesCovered, coverageKL = r.coverageKL,
                   evalSamples = r.n }
  if self.parts.probeD then      -- D on its training images against held-out ones (training.overfitProbe)
    logged.dTrain, logged.dHeldOut = self.parts.probeD()
    logged.dGap = logged.dTrain - logged.dHeldOut
    r.dTrain, r.dHeldOut, r.dGap = logged.dTrain, logged.dHeldOut, logged.dGap
  end
  self.logger:log(iter, logged)
  if self.tb then
    self.tb:scalars(iter, { ["eval/fid"] = r.fid, ["eval/is"] = r.is, ["eval/accuracy"] = r.accuracy, ["eval/coverageKL"] = r.coverageKL,
                            ["eval/dGap"] = r.dGap })
  end
  return r
end
