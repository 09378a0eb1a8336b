-- optim.lua: the Lua half of optim (Adam and SGD are Swift: see Sources/Runtime/OptimLib.swift).
local optim, nn = optim, nn
local S = { EMA = optim._EMA, update = optim._emaUpdate, settings = optim._emaSettings, setStart = optim._emaSetStart }
optim._EMA, optim._emaUpdate, optim._emaSettings, optim._emaSetStart = nil, nil, nil, nil

local EMA = {}
EMA.__index = EMA
EMA.__name = "optim.EMA"

--- optim.EMA(model, {decay = 0.9999, startIter = 0}): an averaged copy of model's parameters
-- and buffers (BN statistics and spectral-norm vectors too, as BigGAN's G_ema). ema.model is
-- an ordinary module; ema:update(model, iter) blends model in (copying exactly while
-- iter < startIter).
function optim.EMA(model, opts)
  if not nn.isModule(model) then
    error(("bad argument #1 to 'EMA' (luagan.Module expected, got %s)"):format(type(model)), 2)
  end
  opts = opts or {}
  for k in pairs(opts) do
    if k ~= "decay" and k ~= "startIter" then
      error(("EMA: unknown option '%s'; options are 'decay', 'startIter'"):format(tostring(k)), 2)
    end
  end
  local average = model:clone()
  local impl = S.EMA(average, opts.decay or 0.9999, opts.startIter or 0)
  return setmetatable({ model = average, _impl = impl }, EMA)
end

function EMA:update(model, iter)
  if getmetatable(self) ~= EMA then error("EMA:update must be called with ':'", 2) end
  S.update(self._impl, model, iter)
end

--- ema:startAt(iter): from iteration `iter` on, update blends instead of copying (a schedule
-- decided during the run, e.g. after a fraction of a time budget). Saved in checkpoints.
function EMA:startAt(iter)
  if getmetatable(self) ~= EMA then error("EMA:startAt must be called with ':'", 2) end
  if math.type(iter) ~= "integer" then error(("bad argument #1 to 'startAt' (integer iteration expected, got %s)"):format(type(iter)), 2) end
  S.setStart(self._impl, iter)
end

function EMA:settings()
  local decay, startIter = S.settings(self._impl)
  return { decay = decay, startIter = startIter }
end
