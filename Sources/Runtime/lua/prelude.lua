-- prelude.lua: the Lua half of luagan's libraries, compiled into the binary.
-- Runs once per state, after the Swift bindings are installed.

local tensor = tensor

--- tensor.noGrad(fn, ...): calls fn(...) with gradient recording off and returns its results.
-- Recording is restored even if fn raises (the error then propagates unchanged).
function tensor.noGrad(fn, ...)
  if type(fn) ~= "function" then
    error(("bad argument #1 to 'noGrad' (function expected, got %s)"):format(type(fn)), 2)
  end
  local prev = tensor.setGradEnabled(false)
  local _ <close> = setmetatable({}, { __close = function() tensor.setGradEnabled(prev) end })
  return fn(...)
end

-- The libraries every script sees as globals and can also require (nn and optim come from
-- Swift; gan, image, data and metrics start empty and are filled by the files that follow).
for _, name in ipairs { "nn", "optim", "gan", "image", "data", "metrics", "ckpt", "log", "plot", "paths", "json" } do
  local lib = rawget(_G, name) or {}
  rawset(_G, name, lib)
  package.loaded[name] = lib
end

--- tensor.profile(fn, ...) -> report, fn's results: runs fn(...) with the op profiler on.
-- The report lists {op=, calls=, seconds=} rows, the most expensive first: each op is charged
-- the time since the op before it (its kernel and the Lua that led to it), ops inside
-- pullbacks as "backward <op>", the collector's runs (and the storages they free) as
-- "(collector)". tostring(report) prints a table.
local reportMeta = {
  __tostring = function(rows)
    local total = 0
    for _, r in ipairs(rows) do total = total + r.seconds end
    local lines = { ("%-34s %8s %10s %6s"):format("op", "calls", "ms", "%") }
    for i, r in ipairs(rows) do
      if i > 25 then lines[#lines + 1] = ("... %d more"):format(#rows - 25); break end
      lines[#lines + 1] = ("%-34s %8d %10.2f %6.1f"):format(r.op, r.calls, r.seconds * 1e3, 100 * r.seconds / math.max(total, 1e-12))
    end
    lines[#lines + 1] = ("%-34s %8s %10.2f"):format("total", "", total * 1e3)
    return table.concat(lines, "\n")
  end,
}
function tensor.profile(fn, ...)
  if type(fn) ~= "function" then
    error(("bad argument #1 to 'profile' (function expected, got %s)"):format(type(fn)), 2)
  end
  tensor._profileStart()
  local stopped
  local _ <close> = setmetatable({}, { __close = function() if not stopped then tensor._profileStop() end end })
  local results = table.pack(fn(...))
  stopped = setmetatable(tensor._profileStop(), reportMeta)
  return stopped, table.unpack(results, 1, results.n)
end
