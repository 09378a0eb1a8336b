-- training/watch.lua: the collapse watch: a dead D, a diverged loss, exploding spectra.
-- Part of scripts/lib/training.lua (require("training")), which loads every part into one table.
local M = require("training")

-- The collapse watch: a D whose outputs no longer depend on its input (dead ReLUs: the output
-- is the last layer's bias, the hinge loss sits at 2 and no gradient reaches D's weights), a
-- loss that is no longer finite, or G's first-layer top singular value exploding (BigGAN,
-- Brock et al. 2019, Section 4.1 and Figure 3: sigma_0 of G's first layer jumps as training
-- collapses). Each check returns a diagnosis and the iteration the trouble began.
--
-- A dying D is seldom exactly constant: a few live units leave a trickle of variation, and an
-- odd batch reaches one of them. So a step counts as flat when the spread (std over the batch)
-- of D's outputs is at most `spread` x max(1, mean |output|), and D is dead when at least 90%
-- of the last `patience` steps were flat. (Measured: a BigGAN D that died at ~1,400 iterations
-- of the main job went on giving a varying batch every 20-50 iterations for 3,000 more, with
-- outputs varying by 0.005-0.05 against 0.15-1 while alive; see docs/experiments.md.)
local Watch = {}
Watch.__index = Watch

function M.CollapseWatch(opts)
  opts = opts or {}
  return setmetatable({ patience = opts.patience or 50, spread = opts.spread or 1e-6, growth = opts.growth or 4.0,
                        window = opts.window or 5, flags = {}, iters = {}, seen = 0, flatCount = 0, sigmas = {} }, Watch)
end

--- The watch a run's options ask for (--collapsePatience, --collapseSpread, --collapseGrowth).
function M.collapseWatchFor(opt)
  return M.CollapseWatch { patience = opt.collapsePatience, spread = opt.collapseSpread, growth = opt.collapseGrowth }
end

local function isFinite(x) return x == x and x > -math.huge and x < math.huge end

--- watch:step(iter, scalars, dOut): scalars = the step's losses; dOut = D's outputs on the
-- step's batch (any shape). Returns diagnosis, sinceIter when D is dead or a loss diverged.
function Watch:step(iter, scalars, dOut)
  for name, v in pairs(scalars) do
    local x = tensor.isTensor(v) and v:item() or v
    if type(x) == "number" and not isFinite(x) then return ("%s is %s"):format(name, tostring(x)), iter end
  end
  if dOut and dOut:numel() >= 2 then
    local out = dOut:detach():reshape(-1)
    local spread, level = out:std():item(), out:abs():mean():item()
    -- a ring of the last `patience` steps (slot = step number mod patience) and its count of flat ones
    local isFlat, slot = spread <= self.spread * math.max(1, level), self.seen % self.patience + 1
    if self.flags[slot] then self.flatCount = self.flatCount - 1 end
    self.flags[slot], self.iters[slot] = isFlat, iter
    if isFlat then self.flatCount = self.flatCount + 1 end
    self.seen = self.seen + 1
    if self.seen >= self.patience and self.flatCount >= math.ceil(0.9 * self.patience) then
      local since
      for i = 1, self.patience do
        if self.flags[i] and (not since or self.iters[i] < since) then since = self.iters[i] end
      end
      return ("D is dead: its outputs stopped depending on its input (spread %.3g at level %.3g; flat on %d of the last %d iterations)")
        :format(spread, level, self.flatCount, self.patience), since
    end
  end
end

--- watch:sigma(iter, value, name): G's first-layer sigma_0 at a monitoring step (name: that
-- weight's). Returns diagnosis, sinceIter when it grew by `growth` or more within the last
-- `window` records.
function Watch:sigma(iter, value, name)
  local layer = name and ("G's first layer (%s)"):format(name) or "G's first layer"
  local s = self.sigmas
  s[#s + 1] = { iter = iter, value = value }
  if #s > self.window + 1 then table.remove(s, 1) end
  if not isFinite(value) then return ("%s: sigma_0 is %s"):format(layer, tostring(value)), s[1].iter end
  local low = s[1]
  for i = 2, #s - 1 do if s[i].value < low.value then low = s[i] end end
  if #s >= 2 and low.value > 0 and value >= self.growth * low.value then
    return ("%s: sigma_0 exploded, %.4g at iteration %d, %.4g at %d"):format(layer, low.value, low.iter, value, iter), low.iter
  end
end
