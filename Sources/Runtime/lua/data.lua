-- data.lua: the Lua half of `data` (readers and loaders are Swift: Sources/Layers).
local data = data

--- Transforms for data.Loader, applied per sample in order (images start in [0, 1]).
local function arg(fname, i, v, kind, optional)
  if v == nil and optional then return end
  local ok = kind == "integer" and math.type(v) == "integer" or kind == "number" and type(v) == "number"
  if not ok then error(("bad argument #%d to '%s' (%s expected, got %s)"):format(i, fname, kind, v == nil and "no value" or type(v)), 3) end
end

-- data.pad(p, value): p pixels of `value` on every side (28 -> 32 with 2).
function data.pad(pixels, value)
  arg("pad", 1, pixels, "integer"); arg("pad", 2, value, "number", true)
  return { kind = "pad", pixels = pixels, value = value or 0 }
end
-- data.scale(lo, hi): [0, 1] -> [lo, hi] (default [-1, 1]).
function data.scale(lo, hi)
  arg("scale", 1, lo, "number", true); arg("scale", 2, hi, "number", true)
  return { kind = "scale", lo = lo or -1, hi = hi or 1 }
end
-- data.randomFlip(p): horizontal flip with probability p (0.5).
function data.randomFlip(p)
  arg("randomFlip", 1, p, "number", true)
  return { kind = "randomFlip", p = p or 0.5 }
end
-- data.downscale(factor): box average over factor x factor blocks (PGGAN's levels).
function data.downscale(factor)
  arg("downscale", 1, factor, "integer")
  return { kind = "downscale", factor = factor }
end

local methods = {}
--- for x, y in loader:epoch() do ... end: the next epoch's batches (labels 1-based).
function methods.epoch(self)
  self:_begin()
  return function() return self:_nextInEpoch() end
end
data._setLoaderMethods(methods)
data._setLoaderMethods = nil
