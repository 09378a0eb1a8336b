-- sweep.lua: "try these values" as one command. A training script, a base config (--base), a grid or a
-- list of rows of option values, and seeds: every cell (row x seed) is a normal run folder,
-- trained on the same budget and evaluated with eval.lua; the sweep writes results.jsonl, a
-- table (markdown and CSV) with mean +- std over seeds per row and the best row marked, and a
-- plot of each metric across the rows (one point per seed), and, when the cells evaluated while
-- training (--evalEvery), each metric's curve per row against the iteration. A killed sweep
-- continues where it stopped: finished cells are never rerun, a cell with a checkpoint resumes
-- from it.
--
--   luagan scripts/sweep.lua --grid='GOrthoBeta={0,1e-4,1e-3}' --seeds=3 --minutes=5
--   luagan scripts/sweep.lua --script=scripts/pggan.lua --rows=rows.lua --seeds=3 --iters=20000 --parallel=2
-- rows.lua returns a list of rows: { { name = "baseline", shared = false, hier = false }, ... }.
local options = require("options")
local training = require("training")

local opt = options.cli(arg, {
  { "script", "scripts/biggan.lua", "the training script every cell runs" },
  { "base", "scripts/configs/demo.lua", "the config file every cell starts from ('': the script's defaults)" },
  { "grid", "", "option={v1,v2,...}, several joined by ';': every combination is a row (no --grid or --rows: one row, "
    .. "the base config)" },
  { "rows", "", "a Lua file returning a list of rows, each a table of options (and an optional name)" },
  { "only", "", "the rows to run and tabulate, by name, joined by ';' (default: every row); a row keeps its folder, "
    .. "and the table and plots then hold only these rows" },
  { "set", "", "options every cell takes, as --k=v words joined by spaces (e.g. '--ch=8 --batchSize=32')" },
  { "seeds", 3, "seeds per row: 1..seeds", min = 1, max = 1000 },
  { "minutes", 0.0, "each cell's wall-clock budget (or --iters)", min = 0 },
  { "iters", 0, "each cell's iterations (or --minutes)", min = 0 },
  { "parallel", 1, "cells at once; the cores are split between them (--threads each)", min = 1, max = 64 },
  { "evalSamples", 2000, "samples eval.lua draws for each cell's metrics (0: no evaluation)", min = 0, max = 1000000 },
  { "metric", "fid", "the metric that marks the best row: fid, kid, swd, coverageKL (lower is better) or is, accuracy" },
  { "out", "runs/sweep", "the sweep's folder: a folder per cell, results.jsonl, table.md, table.csv, <metric>.png, "
    .. "<metric>_curve.png" },
}, "Runs a training script over a grid or list of option values and seeds, and tabulates the results.")

local function usage(message) io.stderr:write("sweep.lua: " .. message .. "\n"); os.exit(2) end
if (opt.minutes > 0) == (opt.iters > 0) then usage("give each cell's budget: --minutes or --iters (one of them)") end
if opt.grid ~= "" and opt.rows ~= "" then usage("give the rows by --grid or by --rows, not both") end
local lowerIsBetter = { fid = true, kid = true, swd = true, coverageKL = true }
local higherIsBetter = { is = true, accuracy = true }
if not lowerIsBetter[opt.metric] and not higherIsBetter[opt.metric] then
  usage(("--metric=%s: expected one of fid, kid, swd, coverageKL, is, accuracy"):format(opt.metric))
end

-- A Lua literal from an option string, read with no access to anything.
local function literal(text, what)
  local chunk, err = load("return " .. text, "=" .. what, "t", {})
  if not chunk then usage(("%s: %s"):format(what, err)) end
  local ok, v = pcall(chunk)
  if not ok then usage(("%s: %s"):format(what, tostring(v))) end
  return v
end

-- The rows: { name =, values = { option = value, ... } } in order.
local rows, swept = {}, {}
if opt.grid ~= "" then
  local axes = {}
  for part in opt.grid:gmatch("[^;]+") do
    local name, list = part:match("^%s*([%a_][%w_]*)%s*=%s*(.-)%s*$")
    if not name then usage(("--grid: '%s' is not option={values}"):format(part)) end
    local values = literal(list, "--grid " .. name)
    if type(values) ~= "table" or #values == 0 then usage(("--grid: %s needs a non-empty list {v1, v2, ...}"):format(name)) end
    axes[#axes + 1] = { name = name, values = values }
    swept[#swept + 1] = name
  end
  local function expand(i, chosen)
    if i > #axes then
      local values, words = {}, {}
      for k, a in ipairs(axes) do values[a.name] = chosen[k]; words[#words + 1] = a.name .. "=" .. options.render(chosen[k]) end
      rows[#rows + 1] = { name = table.concat(words, ","), values = values }
      return
    end
    for _, v in ipairs(axes[i].values) do chosen[i] = v; expand(i + 1, chosen) end
  end
  expand(1, {})
elseif opt.rows == "" then
  rows[1] = { name = "base", values = {} }      -- neither: the base config alone, over the seeds
else
  local chunk, err = loadfile(opt.rows, "t", {})
  if not chunk then usage(("--rows: %s"):format(err)) end
  local ok, list = pcall(chunk)
  if not ok or type(list) ~= "table" or #list == 0 then usage(("--rows: %s must return a non-empty list of rows"):format(opt.rows)) end
  for i, r in ipairs(list) do
    if type(r) ~= "table" then usage(("--rows: row %d is a %s, expected a table of options"):format(i, type(r))) end
    local values, words = {}, {}
    for k, v in pairs(r) do
      if k ~= "name" then
        if type(k) ~= "string" then usage(("--rows: row %d has a %s key, expected option names"):format(i, type(k))) end
        values[k] = v; words[#words + 1] = k .. "=" .. options.render(v)
      end
    end
    table.sort(words)
    rows[#rows + 1] = { name = r.name and tostring(r.name) or (#words > 0 and table.concat(words, ",") or "defaults"), values = values }
  end
end
local seen = {}
for i, r in ipairs(rows) do
  -- the table, the plots and --only find a row's cells by its name
  if seen[r.name] then usage(("rows %d and %d are both named '%s': give each row its own name"):format(seen[r.name], i, r.name)) end
  seen[r.name] = i
  r.folder = ("%02d-%s"):format(i, r.name:gsub("[^%w%.%-_=,+]", "_"):sub(1, 80))
end
-- --only: a subset of the rows by name, each keeping the folder (and number) it has in the full list,
-- so a subset's cells are the full sweep's cells
if opt.only ~= "" then
  local byName, names = {}, {}
  for _, r in ipairs(rows) do byName[r.name] = r; names[#names + 1] = "'" .. r.name .. "'" end
  local chosen = {}
  for name in opt.only:gmatch("[^;]+") do
    name = name:match("^%s*(.-)%s*$")
    local r = byName[name]
    if not r then usage(("--only: no row named '%s'; the rows are %s"):format(name, table.concat(names, ", "))) end
    if r.chosen then usage(("--only: row '%s' named twice"):format(name)) end
    r.chosen = true
    chosen[#chosen + 1] = r
  end
  if #chosen == 0 then usage("--only: name at least one row") end
  rows = chosen
end

-- The command lines. Every word is quoted for the shell.
local function quote(s) return "'" .. tostring(s):gsub("'", "'\\''") .. "'" end
local function word(k, v)
  if type(v) == "table" then return quote(("--%s=%s"):format(k, options.render(v))) end
  return quote(("--%s=%s"):format(k, tostring(v)))
end
local luagan = arg[-1] or "luagan"
local here = arg[0]:match("^(.*)/[^/]*$") or "."
local evalScript = here .. "/eval.lua"
local threads = math.max(1, tensor.getNumThreads() // opt.parallel)
paths.mkdir(opt.out)

local function exists(p) return select(1, paths.exists(p)) end
local function readJSON(p)
  local f = io.open(p, "r")
  if not f then return nil end
  local text = f:read("a"); f:close()
  local ok, v = pcall(json.decode, text)
  return ok and v or nil
end
local function writeAtomically(p, text)
  local f, err = io.open(p .. ".tmp", "w")
  if not f then error(("sweep.lua: cannot write %s: %s"):format(p, err), 0) end
  f:write(text); f:close()
  assert(os.rename(p .. ".tmp", p))
end

-- A cell: the training run (resumed when it has a checkpoint), then eval.lua, then its record.
local cells = {}
for _, r in ipairs(rows) do
  for seed = 1, opt.seeds do
    local dir = ("%s/%s/seed%d"):format(opt.out, r.folder, seed)
    cells[#cells + 1] = { row = r, seed = seed, dir = dir, done = dir .. "/sweep-cell.json" }
  end
end

local function command(c)
  local words = { quote(luagan), quote(opt.script) }
  -- a cell killed before its first checkpoint starts again in a clean folder (a run that rolls
  -- back keeps its starting point, iter-0000000: that is no progress to resume)
  local latest = io.open(c.dir .. "/ckpt/latest", "r")
  local resuming = latest ~= nil and latest:read("l") ~= "iter-0000000"
  if latest then latest:close() end
  if resuming then
    words[#words + 1] = quote("--resume=" .. c.dir)
  else
    if exists(c.dir) then os.execute("rm -rf " .. quote(c.dir)) end
    if opt.base ~= "" then words[#words + 1] = quote("--config=" .. opt.base) end
    for w in opt.set:gmatch("%S+") do words[#words + 1] = quote(w) end
    local keys = {}
    for k in pairs(c.row.values) do keys[#keys + 1] = k end
    table.sort(keys)
    for _, k in ipairs(keys) do words[#words + 1] = word(k, c.row.values[k]) end
    words[#words + 1] = word("seed", c.seed)
    words[#words + 1] = quote("--out=" .. c.dir)
  end
  words[#words + 1] = opt.minutes > 0 and word("minutes", opt.minutes) or word("iters", opt.iters)
  words[#words + 1] = quote("--quiet")
  words[#words + 1] = word("threads", threads)
  local train = table.concat(words, " ")
  local evaluate = opt.evalSamples > 0 and ("%s %s %s %s %s"):format(quote(luagan), quote(evalScript), quote("--ckpt=" .. c.dir),
    word("n", opt.evalSamples), quote("--json=" .. c.dir .. "/eval.json")) or "true"
  -- the status of each part is kept (evaluation only after a complete run); the cell's console
  -- output goes to a log beside its run folder
  return ("( %s; s=$?; echo $s > %s; if [ $s -eq 0 ]; then %s; echo $? > %s; fi ) > %s 2>&1"):format(train,
    quote(c.dir .. ".train-status"), evaluate, quote(c.dir .. ".eval-status"), quote(c.dir .. ".log")), resuming
end

local function status(p)
  local f = io.open(p, "r")
  if not f then return nil end
  local s = tonumber(f:read("l")); f:close()
  return s
end

-- What a finished cell records: its options, seed, iterations and metrics.
local function finish(c)
  local record = { row = c.row.name, seed = c.seed, dir = c.dir, options = c.row.values }
  record.trainStatus, record.evalStatus = status(c.dir .. ".train-status"), status(c.dir .. ".eval-status")
  local f = io.open(c.dir .. "/log.jsonl", "r")
  if f then
    for line in f:lines() do
      local ok, e = pcall(json.decode, line)
      if ok and type(e) == "table" and e.iterations then record.iterations = e.iterations end
    end
    f:close()
  end
  local m = readJSON(c.dir .. "/eval.json") or {}
  for _, k in ipairs { "fid", "is", "accuracy", "kid", "swd", "msssim", "classesCovered", "coverageKL" } do record[k] = m[k] end
  record.ok = record.trainStatus == 0 and (opt.evalSamples == 0 or record.evalStatus == 0)
  os.remove(c.dir .. ".train-status"); os.remove(c.dir .. ".eval-status")
  paths.mkdir(c.dir)     -- a cell whose run failed before it made its folder is recorded too
  writeAtomically(c.done, json.encode(record) .. "\n")
  return record
end

-- Run the cells, opt.parallel at a time. A cell of an earlier sweep still running (its pid alive)
-- is waited for rather than started twice. Ctrl-C reaches the cells too (they save and stop); the
-- sweep then waits for them and says how to continue.
log.catchInterrupts(true)
local pending, active, finished, started = {}, {}, 0, 0
for _, c in ipairs(cells) do
  if exists(c.done) then finished = finished + 1 else pending[#pending + 1] = c end
end
print(("sweep: %d rows x %d seeds = %d cells in %s; %d finished before, %d to run, %d at a time with %d threads each")
  :format(#rows, opt.seeds, #cells, opt.out, finished, #pending, opt.parallel, threads))
-- Whether cell c's recorded process still runs it: not a zombie (an orphan whose parent was
-- killed may wait unreaped) and not a later process that reused the pid (its command line names
-- the cell's folder). Without /proc, kill -0 is all there is.
local function running(c)
  local pid = status(c.dir .. ".pid")
  if not pid or os.execute(("kill -0 %d 2>/dev/null"):format(pid)) ~= true then return false end
  local stat = io.open(("/proc/%d/stat"):format(pid), "r")
  if not stat then return true end
  local state = (stat:read("a") or ""):match("^%d+ %b() (%a)")
  stat:close()
  local cmd = io.open(("/proc/%d/cmdline"):format(pid), "r")
  local line = cmd and cmd:read("a") or ""
  if cmd then cmd:close() end
  return state ~= "Z" and state ~= "X" and line:find(c.dir, 1, true) ~= nil
end
while #pending > 0 or #active > 0 do
  if log.interrupted() then pending = {} end
  while #active < opt.parallel and #pending > 0 do
    local c = table.remove(pending, 1)
    paths.mkdir(c.dir:match("^(.*)/[^/]*$"))
    if not running(c) then
      local line, resuming = command(c)
      os.remove(c.dir .. ".train-status"); os.remove(c.dir .. ".eval-status")
      os.execute(("sh -c %s & echo $! > %s"):format(quote(line), quote(c.dir .. ".pid")))
      started, c.waited = started + 1, false
      print(("%s %s seed %d"):format(resuming and "resuming" or "starting", c.row.name, c.seed))
    else
      c.waited = true
      print(("waiting for %s seed %d (pid %d, from an earlier sweep)"):format(c.row.name, c.seed, status(c.dir .. ".pid")))
    end
    active[#active + 1] = c
  end
  os.execute("sleep 0.5")
  for i = #active, 1, -1 do
    local c = active[i]
    if not running(c) then
      table.remove(active, i)
      local trained = status(c.dir .. ".train-status")
      local unfinished = trained == nil or trained == 130 or trained == 137 or (trained == 0 and not status(c.dir .. ".eval-status"))
      if unfinished and c.waited and not log.interrupted() then
        table.insert(pending, 1, c)      -- the earlier sweep's process ended without finishing it: continue it here
      elseif unfinished then
        print(("%s seed %d was interrupted: run the sweep again to continue it"):format(c.row.name, c.seed))
      else
        local r = finish(c)
        os.remove(c.dir .. ".pid")
        finished = finished + 1
        print(("finished %s seed %d (%d/%d)%s"):format(c.row.name, c.seed, finished, #cells,
          r.ok and "" or (": failed, see %s.log"):format(c.dir)))
      end
    end
  end
end

-- results.jsonl: every finished cell, in the sweep's order.
local records = {}
for _, c in ipairs(cells) do
  local r = readJSON(c.done)
  -- where the cell is now: a sweep folder moved, or tabulated from another directory, still finds its logs
  if r then r.dir = c.dir; records[#records + 1] = r end
end
local lines = {}
for _, r in ipairs(records) do lines[#lines + 1] = json.encode(r) end
writeAtomically(opt.out .. "/results.jsonl", table.concat(lines, "\n") .. "\n")

-- The table: per row, mean +- std over its seeds (sample std), the best row marked.
local metrics = {}
for _, k in ipairs { "fid", "is", "accuracy", "coverageKL", "swd", "msssim", "kid" } do
  for _, r in ipairs(records) do if r[k] then metrics[#metrics + 1] = k; break end end
end
local function stats(xs)
  local n, sum = #xs, 0
  if n == 0 then return nil end
  for _, x in ipairs(xs) do sum = sum + x end
  local mean, ss = sum / n, 0
  for _, x in ipairs(xs) do ss = ss + (x - mean) ^ 2 end
  return mean, n > 1 and math.sqrt(ss / (n - 1)) or 0, n
end
local summary = {}
for i, row in ipairs(rows) do
  local s = { name = row.name, n = 0, failed = 0, values = {}, iterations = {} }
  for _, r in ipairs(records) do
    if r.row == row.name then
      if r.ok then
        s.n = s.n + 1
        if r.iterations then s.iterations[#s.iterations + 1] = r.iterations end
        for _, k in ipairs(metrics) do
          if r[k] then s.values[k] = s.values[k] or {}; table.insert(s.values[k], r[k]) end
        end
      else
        s.failed = s.failed + 1
      end
    end
  end
  summary[i] = s
end
local best
for i, s in ipairs(summary) do
  local m = s.values[opt.metric] and stats(s.values[opt.metric])
  if m and (not best or (lowerIsBetter[opt.metric] and m < best.m) or (higherIsBetter[opt.metric] and m > best.m)) then
    best = { i = i, m = m }
  end
end
local scale = { accuracy = 100 }
local function cell(xs, k)
  local mean, std = stats(xs or {})
  if not mean then return "-" end
  local f = scale[k] or 1
  return ("%.3g ± %.2g"):format(mean * f, std * f)
end
local header = { "row", "seeds", "iterations" }
for _, k in ipairs(metrics) do header[#header + 1] = k == "accuracy" and "accuracy %" or k end
local md = { "| " .. table.concat(header, " | ") .. " |", "|" .. ("---|"):rep(#header) }
local csv = { "row,seeds,iterations_mean," .. table.concat((function()
  local t = {}
  for _, k in ipairs(metrics) do t[#t + 1] = k .. "_mean"; t[#t + 1] = k .. "_std" end
  return t
end)(), ",") }
for i, s in ipairs(summary) do
  local its = stats(s.iterations)
  local fields = { (best and best.i == i and "**" .. s.name .. "** (best " .. opt.metric .. ")" or s.name),
                  tostring(s.n) .. (s.failed > 0 and (" (%d failed)"):format(s.failed) or ""), its and ("%.0f"):format(its) or "-" }
  local c = { ('"%s"'):format(s.name:gsub('"', '""')), tostring(s.n), its and ("%.1f"):format(its) or "" }
  for _, k in ipairs(metrics) do
    fields[#fields + 1] = cell(s.values[k], k)
    local mean, std = stats(s.values[k] or {})
    c[#c + 1] = mean and ("%.6g"):format(mean) or ""; c[#c + 1] = std and ("%.6g"):format(std) or ""
  end
  md[#md + 1] = "| " .. table.concat(fields, " | ") .. " |"
  csv[#csv + 1] = table.concat(c, ",")
end
local budget = opt.minutes > 0 and ("%g minutes"):format(opt.minutes) or ("%d iterations"):format(opt.iters)
local intro = ("%s, %s per cell, %d seeds, %s samples per evaluation (mean ± std over seeds)"):format(opt.script, budget, opt.seeds,
  opt.evalSamples)
writeAtomically(opt.out .. "/table.md", intro .. "\n\n" .. table.concat(md, "\n") .. "\n")
writeAtomically(opt.out .. "/table.csv", table.concat(csv, "\n") .. "\n")
print(intro .. "\n\n" .. table.concat(md, "\n"))

-- A plot per metric: x is the row (labelled with its name), one series of points per seed.
for _, k in ipairs(metrics) do
  local series = {}
  for seed = 1, opt.seeds do
    local xs, ys, labels = {}, {}, {}
    for i, row in ipairs(rows) do
      for _, r in ipairs(records) do
        if r.row == row.name and r.seed == seed and r.ok and r[k] then
          xs[#xs + 1], ys[#ys + 1] = i, r[k] * (scale[k] or 1)
          labels[#labels + 1] = seed == 1 and (#rows <= 8 and row.name or tostring(i)) or nil
        end
      end
    end
    if #xs > 0 then series[#series + 1] = { name = ("seed %d"):format(seed), x = xs, y = ys, labels = seed == 1 and labels or nil } end
  end
  if #series > 0 then
    local title = #swept == 1 and ("%s against %s"):format(k, swept[1]) or ("%s per row"):format(k)
    plot.lines(("%s/%s.png"):format(opt.out, k), series, { title = title, xlabel = "row (table.md)",
      ylabel = k == "accuracy" and "class accuracy %" or k })
  end
end
-- Curves: what the cells evaluated while training (--evalEvery) against the iteration, one line
-- per row, the mean over its seeds at each iteration every seed reached (the run's own
-- evaluations: training.trainingEvaluations).
local curveKeys = { "fid", "is", "accuracy", "coverageKL", "dGap" }   -- dGap: training.overfitProbe
local curveLabels = { accuracy = "class accuracy %", dGap = "D(training images) - D(held-out images)" }
local evaluations = {}      -- [cell record] = { [key] = { [iteration] = value } }
for _, r in ipairs(records) do
  local ok, lines = pcall(log.read, r.dir .. "/log.jsonl")
  evaluations[r] = training.trainingEvaluations(ok and lines or {}, curveKeys)
end
local curves = {}
for _, k in ipairs(curveKeys) do
  local series = {}
  for _, row in ipairs(rows) do
    local perSeed = {}
    for _, r in ipairs(records) do
      if r.row == row.name and r.ok then perSeed[#perSeed + 1] = evaluations[r][k] end
    end
    local xs, ys = {}, {}
    for it in pairs(perSeed[1] or {}) do
      local everySeed = true
      for _, at in ipairs(perSeed) do everySeed = everySeed and at[it] ~= nil end
      if everySeed then xs[#xs + 1] = it end
    end
    table.sort(xs)
    for j, it in ipairs(xs) do
      local values = {}
      for i, at in ipairs(perSeed) do values[i] = at[it] end
      ys[j] = stats(values) * (scale[k] or 1)
    end
    -- a row some of whose cells failed (or have not finished) says over how many seeds its line is the mean
    local name = #perSeed < opt.seeds and ("%s (%d of %d seeds)"):format(row.name, #perSeed, opt.seeds) or row.name
    if #xs >= 2 then series[#series + 1] = { name = name, x = xs, y = ys } end
  end
  if #series > 0 then
    plot.lines(("%s/%s_curve.png"):format(opt.out, k), series, { title = ("%s during training (mean over seeds)"):format(k),
      xlabel = "iteration", ylabel = curveLabels[k] or k })
    curves[#curves + 1] = k
  end
end
print(("wrote %s/results.jsonl, table.md, table.csv, a plot per metric%s (%d cells run now)"):format(opt.out,
  #curves > 0 and " and its curve during training" or "", started))
if finished < #cells then
  io.stderr:write(("sweep: interrupted with %d of %d cells finished; the same command continues it\n"):format(finished, #cells))
  os.exit(130)
end
