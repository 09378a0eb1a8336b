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
  local results = table.pack(pcall(fn, ...))
  tensor.setGradEnabled(prev)
  if not results[1] then error(results[2], 0) end
  return table.unpack(results, 2, results.n)
end

-- The libraries every script sees as globals and can also require (nn and optim come from
-- Swift; gan, image, data and metrics start empty and are filled by the files that follow).
for _, name in ipairs { "nn", "optim", "gan", "image", "data", "metrics", "ckpt", "log", "plot" } do
  local lib = rawget(_G, name) or {}
  rawset(_G, name, lib)
  package.loaded[name] = lib
end
