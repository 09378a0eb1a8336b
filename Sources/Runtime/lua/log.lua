-- log.lua: a training log a person can read at a glance.
--
-- log.Logger(dir) appends one JSON object per line to dir/log.jsonl (iteration, wall time,
-- seconds since start, any named scalars) and flushes each line, so a killed run keeps its
-- log; log.read(path) reads it back. log.Progress(total) draws a progress bar that redraws in
-- place on a terminal and prints plain periodic lines otherwise.
local log, ckpt = log, ckpt
local S = { isatty = log._isatty, time = log._time }
log._isatty, log._time = nil, nil

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

--- log.Progress(total, {every = seconds between plain lines (10), width = bar width (30)}).
function log.Progress(total, opts)
  if math.type(total) ~= "integer" or total < 1 then error("bad argument #1 to 'Progress' (positive integer total expected)", 2) end
  opts = opts or {}
  local now = S.time()
  return setmetatable({ total = total, start = now, last = -math.huge, every = opts.every or 10, width = opts.width or 30,
                        tty = opts.tty == nil and S.isatty() or opts.tty, first = nil, out = opts.out or io.stdout }, Progress)
end

function Progress:line(iter, scalars)
  local now = S.time()
  self.first = self.first or { iter = iter, time = now }
  local done = iter - self.first.iter
  local rate = done > 0 and done / math.max(now - self.first.time, 1e-9) or 0
  local eta = rate > 0 and (self.total - iter) / rate or math.huge
  local frac = math.min(1, math.max(0, iter / self.total))
  local fill = math.floor(frac * self.width + 0.5)
  local parts = { ("%d/%d [%s%s] %3d%% %.2f it/s ETA %s"):format(iter, self.total, ("="):rep(fill), (" "):rep(self.width - fill),
    math.floor(frac * 100), rate, duration(eta)) }
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
function Progress:update(iter, scalars)
  local text, now = self:line(iter, scalars)
  if self.tty then
    self.out:write("\r", text, "\27[K")
    self.out:flush()
  elseif now - self.last >= self.every or iter >= self.total then
    self.out:write(text, "\n")
    self.out:flush()
    self.last = now
  end
end

function Progress:finish()
  if self.tty then self.out:write("\n") end
  self.out:flush()
end
