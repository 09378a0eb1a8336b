-- training.Run, the tail every training script shares: the collapse watch (a dead D, a
-- diverged loss, G's first-layer sigma_0 exploding), rolling back to the last good checkpoint
-- with a fresh seed, a wall-clock budget instead of an iteration count, milestones that
-- survive a resume, and option checks declared in the spec.
local T = require("testing")
local check, checkError = T.check, T.checkError
local training = require("training")
local options = require("options")
local tinygan = require("tinygan")
local tmp = os.tmpname()
os.remove(tmp)
paths.mkdir(tmp)

T.test("the watch: constant D outputs for `patience` steps mean a dead D, varying ones do not", function()
  local watch = training.CollapseWatch { patience = 5 }
  for i = 1, 20 do check(watch:step(i, { lossD = 1.2 }, tensor.randn(8)) == nil, "a D whose outputs vary is alive") end
  local dead = tensor.full({ 8, 1 }, 0.25)
  for i = 21, 24 do check(watch:step(i, { lossD = 2.0 }, dead) == nil, "not before patience") end
  local diagnosis, since = watch:step(25, { lossD = 2.0 }, dead)
  check(diagnosis and diagnosis:find("D is dead", 1, true) and since == 21, tostring(diagnosis) .. " since " .. tostring(since))
  -- one varying step resets the count
  local w2 = training.CollapseWatch { patience = 3 }
  w2:step(1, {}, dead); w2:step(2, {}, dead)
  w2:step(3, {}, tensor.randn(8))
  check(w2:step(4, {}, dead) == nil and w2:step(5, {}, dead) == nil)
  check(w2:step(6, {}, dead) ~= nil)
end)

T.test("the watch: a dying D that varies on a few batches is still dead; the spread tolerance decides what is flat", function()
  -- D's outputs: flat (a bias) on 19 batches in 20, varying on the 20th, as a D with a few live units
  local function dying(i) return i % 20 == 0 and tensor.randn(16) or tensor.full({ 16 }, -0.12) end
  local watch = training.CollapseWatch { patience = 50 }
  local diagnosis, since
  for i = 1, 100 do
    diagnosis, since = watch:step(i, {}, dying(i))
    if diagnosis then break end
  end
  check(diagnosis and diagnosis:find("D is dead", 1, true) and since == 1, tostring(diagnosis) .. " since " .. tostring(since))
  -- flat on only 4 batches in 5: alive
  local w2 = training.CollapseWatch { patience = 50 }
  for i = 1, 200 do
    check(w2:step(i, {}, i % 5 == 0 and tensor.randn(16) or tensor.full({ 16 }, 0.3)) == nil, "80% flat is not dead, at " .. i)
  end
  -- outputs that vary by 1% of the hinge margin: dead under a spread tolerance of 5%, alive under the exact default
  local function small(i) return tensor.randn(16):mul(0.01):add(-0.1) end
  local loose, exact = training.CollapseWatch { patience = 10, spread = 0.05 }, training.CollapseWatch { patience = 10 }
  local fired
  for i = 1, 10 do
    fired = loose:step(i, {}, small(i))
    check(exact:step(i, {}, small(i)) == nil, "a 1e-6 tolerance sees 1% variation as alive")
  end
  check(fired ~= nil, "a 5% tolerance sees 1% variation as flat")
  -- healthy outputs (spread ~0.5) are never flat at 5%
  local healthy = training.CollapseWatch { patience = 10, spread = 0.05 }
  for i = 1, 100 do check(healthy:step(i, {}, tensor.randn(16):mul(0.5)) == nil, "a live D at " .. i) end
  -- the tolerance is relative to the output level above 1 (WGAN critics drift far from 0)
  local drifted = training.CollapseWatch { patience = 10, spread = 0.05 }
  for i = 1, 30 do check(drifted:step(i, {}, tensor.randn(16):mul(3):add(40)) == nil, "spread 3 at level 40 is alive") end
end)

T.test("the watch: a loss that is not finite is a collapse at once", function()
  local watch = training.CollapseWatch()
  local d, since = watch:step(7, { lossG = tensor.new(0 / 0) }, tensor.randn(4))
  check(d and d:find("lossG is", 1, true) and since == 7, tostring(d))
  check(watch:step(8, { lossD = math.huge }) ~= nil)
end)

T.test("the watch: G's first-layer sigma_0 exploding, not growing steadily", function()
  local watch = training.CollapseWatch { growth = 4, window = 5 }
  local sigma = 1
  for i = 1, 30 do        -- +10% per record: 17x over the run, but never 4x within 5 records
    check(watch:sigma(i * 100, sigma) == nil, "steady growth at " .. i)
    sigma = sigma * 1.1
  end
  local d, since = watch:sigma(3100, sigma * 4.5)
  check(d and d:find("sigma_0 exploded", 1, true) and since >= 2600 and since < 3100, tostring(d) .. " " .. tostring(since))
  check(training.CollapseWatch():sigma(100, 0 / 0) ~= nil, "NaN sigma")
end)

-- A tiny conditional GAN run through training.Run, as the scripts run theirs.
local function newRun(dir, extra)
  local spec = training.concat({}, training.commonSpec { iters = 60, out = dir, sampleEvery = 1000, saveEvery = 10,
    evalEvery = 0, svEvery = 0, keep = 10 })
  local args = { "--quiet" }
  for _, a in ipairs(extra or {}) do args[#args + 1] = a end
  local opt = options.parse(args, spec)
  paths.mkdir(dir)
  local gan_ = tinygan.build(3)
  local run = training.Run(opt, {
    objects = { G = gan_.G, D = gan_.D, optG = gan_.optG, optD = gan_.optD, ema = gan_.ema, loader = gan_.loader },
    info = { model = "tiny" },
  })
  return run, gan_, opt
end

local function step(g)
  local real, y = g.loader:next()
  g.optD:zeroGrad()
  local z, yf = tensor.randn(16, 16), tensor.randint(1, 10, 16)
  local fake = tensor.noGrad(function() return g.G(z, yf) end)
  local dReal, dFake = g.D(real, y), g.D(fake, yf)
  local lossD = gan.hingeD(dReal, dFake)
  lossD:backward()
  g.optD:step()
  g.optG:zeroGrad()
  local lossG = gan.hingeG(g.D(g.G(tensor.randn(16, 16), yf), yf))
  lossG:backward()
  g.optG:step()
  return { lossD = lossD, lossG = lossG }, tensor.cat({ dReal:detach(), dFake:detach() }, 1)
end

-- Kills D as dead ReLUs do: the conv biases so negative that every unit after them is 0,
-- so D's output is the last layer's bias whatever the input, and no gradient flows back.
local function killD(D)
  tensor.noGrad(function()
    for name, p in D:namedParameters() do
      if name:find("conv", 1, true) and name:find("bias", 1, true) then p:fill(-1e3) end
    end
  end)
end

-- A rolling-back run whose D is killed once, at iteration killAt: its models and the last
-- collapse, rollback and record of its log.
local function runKillingDAt(dir, killAt)
  local run, g = newRun(dir, { "--onCollapse=rollback", "--collapsePatience=5" })
  check(ckpt.list(dir .. "/ckpt")[1] == "iter-0000000", "the starting point is kept")
  local killed = false
  while run:next() do
    if run.iter == killAt and not killed then killD(g.D); killed = true end
    run:afterStep(step(g))
  end
  run:finish()
  local collapse, rollback, last
  for _, r in ipairs(log.read(dir .. "/log.jsonl")) do
    if r.collapse then collapse = r end
    if r.rollback then rollback = r end
    last = r
  end
  return g, collapse, rollback, last
end

T.test("a D forced to die is detected and the run rolls back to the last good checkpoint with a fresh seed", function()
  local dir = tmp .. "/rollback"
  local g, collapse, rollback, last = runKillingDAt(dir, 26)
  check(collapse and collapse.collapse:find("D is dead", 1, true), "the collapse is logged")
  check(collapse.iter == 30 and collapse.since == 26, ("detected at %s, since %s"):format(collapse.iter, collapse.since))
  check(rollback and rollback.rollback == "iter-0000020" and rollback.seed == 1001, "rolled back to the checkpoint before the death")
  check(last.iterations == 60, "the run went on to its end: " .. tostring(last.iterations))
  local names = ckpt.list(dir .. "/ckpt")
  check(names[#names] == "iter-0000060", names[#names])
  -- D is alive again: the weights came back from iter-0000020 and trained on
  local alive = 0
  for _, p in g.D:namedParameters() do alive = alive + p:abs():sum():item() end
  check(alive > 0)
end)

T.test("a D that dies before the first checkpoint rolls back to the run's starting point", function()
  local _, _, rollback, last = runKillingDAt(tmp .. "/rollback-early", 3)
  check(rollback and rollback.rollback == "iter-0000000" and rollback.seed == 1001, "rolled back to the start")
  check(last.iterations == 60, "the run went on to its end: " .. tostring(last.iterations))
  local warned = tmp .. "/warn-no-start"
  local wrun = newRun(warned, { "--onCollapse=warn" })
  check(not select(1, paths.exists(warned .. "/ckpt/iter-0000000")), "a run that never rolls back keeps no starting point")
  wrun.logger:close(); wrun.svLogger:close()
  if wrun.tb then wrun.tb:close() end
  log.catchInterrupts(false)
end)

T.test("--onCollapse=warn says it once per episode and trains on", function()
  local dir = tmp .. "/warn"
  local run, g = newRun(dir, { "--collapsePatience=5", "--iters=30" })
  local lines = {}
  local realPrint = print
  print = function(s) lines[#lines + 1] = tostring(s) end
  local _ <close> = training.onExit(function() print = realPrint end)
  while run:next() do
    if run.iter == 5 then killD(g.D) end
    run:afterStep(step(g))
  end
  run:finish()
  local warned = 0
  for _, s in ipairs(lines) do if s:find("training collapsed", 1, true) then warned = warned + 1 end end
  check(warned == 5, "one warning per 5 dead iterations: " .. warned)   -- 5 episodes of 5 over iterations 5..30
end)

T.test("a wall-clock budget: the run stops when it is spent, milestones fire once and survive a resume", function()
  local dir = tmp .. "/budget"
  local run, g = newRun(dir, { "--minutes=0.004", "--iters=1000000" })
  local reached = {}
  while run:next() do
    if run:reaches("half", 0.5) then reached[#reached + 1] = run.iter end
    run:afterStep(step(g))
  end
  run:finish()
  check(run.elapsed >= 0.24 and run.elapsed < 30, "stopped by time: " .. run.elapsed)
  check(#reached == 1 and reached[1] > 1 and reached[1] < run.iter, "the half-way milestone fired once")
  local saved = ckpt.load(dir .. "/ckpt")
  -- the last checkpoint holds the time spent up to its save (a resume continues from there)
  check(saved.iter == run.iter and saved.run.milestones.half == reached[1] and saved.run.elapsed > 0.1
    and saved.run.elapsed <= run.elapsed,
    ("saved iter %s of %s, milestone %s of %s, elapsed %s"):format(saved.iter, run.iter, tostring(saved.run.milestones.half),
      reached[1], saved.run.elapsed))
end)

T.test("option checks declared in the spec", function()
  local spec = {
    { "mode", "a", "", oneOf = { "a", "b" } },
    { "n", 3, "", min = 1, max = 10 },
    { "x", 0.5, "", check = function(v, opt) if v > opt.n then return "must not exceed --n" end end },
  }
  check(options.parse({ "--mode=b", "--n=10", "--x=2" }, spec).mode == "b")
  checkError('option --mode must be one of "a", "b", got "c"', options.parse, { "--mode=c" }, spec)
  checkError("option --n must be at least 1, got 0", options.parse, { "--n=0" }, spec)
  checkError("option --n must be at most 10, got 11", options.parse, { "--n=11" }, spec)
  checkError("option --x: must not exceed --n", options.parse, { "--x=4" }, spec)
  checkError("option --x: must not exceed --n", options.parse, { "--x=4" }, spec)
end)

T.test("the progress bar against a time budget", function()
  local lines = {}
  local sink = { write = function(_, ...) for _, s in ipairs { ... } do lines[#lines + 1] = s end end, flush = function() end }
  local bar = log.Progress(nil, { seconds = 60, tty = false, every = 0, out = sink })
  bar:update(10, { lossD = 1 }, 30)
  local text = table.concat(lines)
  check(text:find("10 [", 1, true) and text:find(" 50%", 1, true) and text:find("left 30s", 1, true), text)
  checkError("option 'seconds' must be a positive number", log.Progress, nil, { seconds = -1 })
  checkError("positive integer total expected", log.Progress, nil)
end)

paths.remove(tmp)
T.test("the run's own evaluations: a resume's later value, a rollback's abandoned branch dropped, eval.lua's lines left out", function()
  local records = {
    { iter = 10, lossD = 1.0 },
    { iter = 100, evalSamples = 50, fid = 30, accuracy = 0.5 },
    { iter = 200, evalSamples = 50, fid = 20, accuracy = 0.6, dGap = 0.1 },
    { iter = 300, evalSamples = 50, fid = 90, accuracy = 0.1 },            -- the branch that collapsed
    { iter = 350, evalSamples = 50, fid = 95, accuracy = 0.1 },            -- (never evaluated again)
    { iter = 360, collapse = "D is dead", since = 250 },
    { iter = 200, rollback = "iter-0000200", seed = 1001 },
    { iter = 100, evalSamples = 200, fid = 33, source = "eval.lua" },        -- eval.lua on an old checkpoint
    { iter = 300, evalSamples = 50, fid = 15, accuracy = 0.7 },
    { iter = 400, evalSamples = 50, fid = 12, accuracy = 0.8 },
    { iter = 400, iterations = 400, minutes = 1 },
    { iter = 400, evalSamples = 2000, fid = 11, accuracy = 0.9 },           -- an older eval.lua line, untagged
    { iter = 500, evalSamples = 50, fid = 10 },                              -- resumed with more iterations
  }
  local e = training.trainingEvaluations(records, { "fid", "accuracy", "dGap", "is" })
  local its = {}
  for it, v in pairs(e.fid) do its[#its + 1] = ("%d=%g"):format(it, v) end
  table.sort(its)
  check(table.concat(its, " ") == "100=30 200=20 300=15 400=12 500=10", "fid: " .. table.concat(its, " "))
  check(e.accuracy[300] == 0.7 and e.accuracy[400] == 0.8 and e.accuracy[500] == nil, "accuracy where it was logged")
  check(e.dGap[200] == 0.1 and next(e.is) == nil, "a key nobody logged is empty")
end)

T.finish("training_run")
