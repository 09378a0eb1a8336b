-- log.lua: a training log a person can read at a glance.
--
-- log.Logger(dir) appends one JSON object per line to dir/log.jsonl (iteration, wall time,
-- seconds since start, any named scalars) and flushes each line, so a killed run keeps its
-- log; log.read(path) reads it back. log.Progress(total) draws a progress bar that redraws in
-- place on a terminal and prints plain periodic lines otherwise. log.TensorBoard(dir) (bound in
-- LogLib.swift) writes TensorBoard event files: :scalars, :image, :resume, :close, :path.
local log, ckpt = log, ckpt
local S = { isatty = log._isatty, time = log._time, clock = tensor.clock }   -- tensor.clock: monotonic
log._isatty, log._time = nil, nil

--- log.clock(): seconds on a monotonic clock (for durations and time budgets; log records
-- carry wall-clock time).
function log.clock() return S.clock() end

local Logger = {}
Logger.__index = Logger
Logger.__name = "log.Logger"

function log.Logger(dir, opts)
  if type(dir) ~= "string" then error(("bad argument #1 to 'Logger' (folder name expected, got %s)"):format(type(dir)), 2) end
  opts = opts or {}
  local name = opts.name or "log.jsonl"
  local ok, err = pcall(paths.mkdir, dir)
  if not ok then error(("log.Logger: %s"):format(tostring(err)), 2) end
  local path = dir .. "/" .. name
  local f, err = io.open(path, "a")
  if not f then error(("log.Logger: cannot open %s: %s"):format(path, tostring(err)), 2) end
  return setmetatable({ path = path, file = f, start = S.time() }, Logger)
end

--- logger:log(iter, {name = number, ...}): one line, written and flushed.
function Logger:log(iter, scalars)
  if getmetatable(self) ~= Logger then error("Logger:log must be called with ':'", 2) end
  if math.type(iter) ~= "integer" then error(("bad argument #1 to 'log' (integer iteration expected, got %s)"):format(type(iter)), 2) end
  local rec = { iter = iter, time = S.time(), elapsed = S.time() - self.start }
  for k, v in pairs(scalars or {}) do
    if type(k) ~= "string" then error("log: scalar names must be strings", 2) end
    if tensor.isTensor(v) then v = v:item() end
    if type(v) ~= "number" and type(v) ~= "string" and type(v) ~= "boolean" then
      error(("log: scalar '%s' is a %s; log numbers, strings or one-element tensors"):format(k, type(v)), 2)
    end
    rec[k] = v
  end
  self.file:write(json.encode(rec), "\n")
  self.file:flush()
end

function Logger:close() if self.file then self.file:close(); self.file = nil end end

--- The records of a JSON-lines log, in order (a truncated last line is skipped).
function log.read(path)
  local f, err = io.open(path, "r")
  if not f then error(("log.read: cannot open %s: %s"):format(path, tostring(err)), 2) end
  local out = {}
  for line in f:lines() do
    if line:match("%S") then
      local ok, rec = pcall(json.decode, line, path)
      if ok then out[#out + 1] = rec end
    end
  end
  f:close()
  return out
end

--- log.series(records, name): the iterations and values of one scalar, for plot.lines.
function log.series(records, name)
  if type(records) ~= "table" then
    error(("bad argument #1 to 'series' (list of log records expected, got %s)"):format(type(records)), 2)
  end
  local xs, ys = {}, {}
  for _, r in ipairs(records) do
    if type(r[name]) == "number" then xs[#xs + 1] = r.iter; ys[#ys + 1] = r[name] end
  end
  return { name = name, x = xs, y = ys }
end

local function duration(s)
  if s ~= s or s == math.huge then return "?" end
  s = math.floor(s + 0.5)
  if s >= 3600 then return ("%dh%02dm"):format(s // 3600, (s % 3600) // 60) end
  if s >= 60 then return ("%dm%02ds"):format(s // 60, s % 60) end
  return ("%ds"):format(s)
end

local Progress = {}
Progress.__index = Progress

--- log.Progress(total, {every = seconds between plain lines (10), width = bar width (30),
-- seconds = a time budget}). With `seconds`, the bar measures time spent against the budget
-- (total may then be nil: the iterations that fit are not known in advance).
function log.Progress(total, opts)
  opts = opts or {}
  local budget = opts.seconds
  if budget ~= nil and (type(budget) ~= "number" or not (budget > 0 and budget < math.huge)) then
    error("bad argument #2 to 'Progress' (option 'seconds' must be a positive number)", 2)
  end
  if not (budget and total == nil) and (math.type(total) ~= "integer" or total < 1) then
    error("bad argument #1 to 'Progress' (positive integer total expected)", 2)
  end
  local now = S.clock()
  return setmetatable({ total = total, budget = budget, start = now, last = -math.huge, every = opts.every or 10,
                        width = opts.width or 30, tty = opts.tty == nil and S.isatty() or opts.tty, first = nil,
                        out = opts.out or io.stdout }, Progress)
end

function Progress:line(iter, scalars, spent)
  local now = S.clock()
  self.first = self.first or { iter = iter, time = now }
  local done = iter - self.first.iter
  local rate = done > 0 and done / math.max(now - self.first.time, 1e-9) or 0
  local frac, eta, count
  if self.budget then
    spent = spent or (now - self.start)
    frac, eta, count = spent / self.budget, math.max(0, self.budget - spent), tostring(iter)
  else
    frac = iter / self.total
    eta, count = rate > 0 and (self.total - iter) / rate or math.huge, ("%d/%d"):format(iter, self.total)
    -- bar.remaining: the caller's own estimate (iterations that grow dearer as the run goes on)
    if type(self.remaining) == "number" and self.remaining >= 0 then eta = self.remaining end
  end
  frac = math.min(1, math.max(0, frac))
  local fill = math.floor(frac * self.width + 0.5)
  local parts = { ("%s [%s%s] %3d%% %.2f it/s %s %s"):format(count, ("="):rep(fill), (" "):rep(self.width - fill),
    math.floor(frac * 100), rate, self.budget and "left" or "ETA", duration(eta)) }
  if type(self.status) == "string" then parts[#parts + 1] = self.status end   -- bar.status: where the run is
  local keys = {}
  for k in pairs(scalars or {}) do keys[#keys + 1] = k end
  table.sort(keys)
  for _, k in ipairs(keys) do
    local v = scalars[k]
    if tensor.isTensor(v) then v = v:item() end
    parts[#parts + 1] = type(v) == "number" and ("%s %.4g"):format(k, v) or ("%s %s"):format(k, tostring(v))
  end
  return table.concat(parts, "  "), now
end

--- bar:update(iter, {name = value, ...}): redraws on a terminal; prints every `every` s otherwise.
--- With a time budget, `spent` (seconds, default: since the bar began) is the budget used.
function Progress:update(iter, scalars, spent)
  local text, now = self:line(iter, scalars, spent)
  if self.tty then
    self.out:write("\r", text, "\27[K")
    self.out:flush()
  elseif now - self.last >= self.every or (self.total and iter >= self.total) then
    self.out:write(text, "\n")
    self.out:flush()
    self.last = now
  end
end

function Progress:finish()
  if self.tty then self.out:write("\n") end
  self.out:flush()
end
