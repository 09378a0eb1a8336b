-- dist_calls.lua: dist's collectives under mpirun, called with different arguments on each rank:
-- shapes, dtypes, roots, ops, contiguity, views of 2^40+ elements, calls in different orders,
-- gradient averagers over different parameters, and the Lua helpers built on them. Every rank
-- makes its calls in pcall. A mismatch must be the same clear error on every rank, which then
-- go on; the run must end normally on every rank. A hang or a signal is a bug, caught by the
-- driver (luagan-fuzz --mpi-cases).
--
--   mpirun --oversubscribe --allow-run-as-root -n 2 luagan scripts/dev/fuzz/dist_calls.lua --seed=7 --calls=200
--       [--trace=stdout|PATH] [--verbose]
--
-- Deterministic per seed: every rank draws the same plan for each round (what each rank will
-- call, with what), then makes its own part of it, so the ranks differ only where the plan says.
-- Before each round one line "C <k> <description>" goes to the trace from every rank; "D <calls>"
-- at the end. After each round the ranks gather the round's number: a rank whose collectives
-- fell out of step with the others' (one made a call the others did not) ends the run there
-- with an error naming the round, instead of hanging somewhere later.
local opt = { seed = 1, calls = 100, trace = nil, verbose = false }
for _, a in ipairs(arg) do
  local k, v = a:match("^%-%-(%w+)=(.*)$")
  if k == "seed" or k == "calls" then opt[k] = math.tointeger(tonumber(v))
  elseif k == "trace" then opt.trace = v
  elseif a == "--verbose" then opt.verbose = true
  else error("dist_calls.lua: unknown argument " .. a) end
end
local trace = opt.trace == "stdout" and io.stdout or (opt.trace and assert(io.open(opt.trace, "w"))) or nil
if trace then trace:setvbuf("line") end
local rank, size = dist.rank(), dist.size()
math.randomseed(opt.seed)
tensor.setMemoryLimit(768 << 20)

local R = math.random
local function pick(list) return list[R(#list)] end
local function chance(p) return R() < p end
-- pcall that says what failed when --verbose
local function try(f, ...)
  local r = table.pack(pcall(f, ...))
  if not r[1] and opt.verbose then io.stderr:write(("rank %d:   %s\n"):format(rank, tostring(r[2]):sub(1, 300))) end
  return table.unpack(r, 1, r.n)
end

-- MARK: - What a rank hands to a collective

-- A tensor spec: a shape, a dtype and how it is viewed ("plain", "transposed", "narrowed",
-- "expanded" to 2^41+ elements, or "scalar"), turned into a tensor by make().
local function randomSpec()
  local shape = {}
  for i = 1, R(1, 3) do shape[i] = R(1, 4) end
  return { shape = shape, dtype = chance(0.3) and "float64" or "float32", view = chance(0.8) and "plain" or
           pick { "transposed", "narrowed", "expanded", "scalar" } }
end
local function copySpec(s) local c = {}; for k, v in pairs(s) do c[k] = v end; c.shape = { table.unpack(s.shape) }; return c end
-- One rank's spec made different from the others' in one way.
local function differ(s)
  local c = copySpec(s)
  local how = R(5)
  if how == 1 then c.shape[R(#c.shape)] = c.shape[R(#c.shape)] + R(1, 3)
  elseif how == 2 then c.shape[#c.shape + 1] = R(1, 3)
  elseif how == 3 then c.dtype = c.dtype == "float32" and "float64" or "float32"
  elseif how == 4 then c.view = c.view == "plain" and pick { "transposed", "expanded", "narrowed" } or "plain"
  else c.shape = { table.unpack(c.shape, 1, math.max(1, #c.shape - 1)) }; c.shape[1] = c.shape[1] * 2 end
  return c
end
local function describeSpec(s)
  return ("%s%s{%s}"):format(s.dtype == "float64" and "d" or "f", s.view == "plain" and "" or s.view:sub(1, 2),
    table.concat(s.shape, ","))
end
local function make(s, value)
  local t = tensor.full(s.shape, value or (rank + 1), { dtype = s.dtype })
  if s.view == "transposed" and t:dim() >= 2 then t = t:transpose(1, t:dim())
  elseif s.view == "narrowed" and t:size(1) > 1 then t = t:narrow(1, 2, t:size(1) - 1)
  elseif s.view == "expanded" then t = tensor.zeros(1, { dtype = s.dtype }):expand(1 << 41, table.unpack(s.shape))
  elseif s.view == "scalar" then t = tensor.full({}, rank + 1, { dtype = s.dtype }) end
  return t
end

-- The same value for every rank, except one chosen rank (with probability p) whose value
-- `vary` makes from it. Draws the same random numbers whatever happens.
local function perRank(base, vary, p)
  local out = {}
  for r = 0, size - 1 do out[r] = base end
  local odd, varied = R(0, size - 1), vary(base)
  if chance(p) then out[odd] = varied end
  return out
end

-- MARK: - Steps: one collective each, the same number on every rank

-- Each maker returns a description and, per rank, a function making that rank's one call.
local steps = {}
function steps.allReduce(p)
  local specs = perRank(randomSpec(), differ, p)
  local op = perRank(pick { "sum", "mean" }, function(o) return o == "sum" and "mean" or "sum" end, p / 3)
  return ("allReduce r0=%s/%s r1=%s/%s"):format(describeSpec(specs[0]), op[0], describeSpec(specs[1]), op[1]), function()
    return dist.allReduce(make(specs[rank]), { op = op[rank] })
  end
end
function steps.broadcast(p)
  local specs = perRank(randomSpec(), differ, p)
  local root = perRank(R(0, size - 1), function(r) return (r + 1) % size end, p / 3)
  return ("broadcast r0=%s from %d r1=%s from %d"):format(describeSpec(specs[0]), root[0], describeSpec(specs[1]), root[1]), function()
    return dist.broadcast(make(specs[rank]), root[rank])
  end
end
function steps.allGather(p)
  local specs = perRank(randomSpec(), differ, p)
  return ("allGather r0=%s r1=%s"):format(describeSpec(specs[0]), describeSpec(specs[1])), function()
    return dist.allGather(make(specs[rank]))
  end
end
function steps.barrier() return "barrier", function() return dist.barrier() end end
-- replicaSum's forward is an all-reduce, and so is its pullback: two collectives, made or
-- skipped together (a mismatch in the forward fails it on every rank).
function steps.replicaSum(p)
  local specs = perRank(randomSpec(), differ, p)
  return ("replicaSum+backward r0=%s r1=%s"):format(describeSpec(specs[0]), describeSpec(specs[1])), function()
    -- backward on both ranks or neither (an expanded view on either rank is no leaf): a rank that
    -- alone runs the pullback's all-reduce makes a call the other never makes, which no
    -- agreement can repair (both fail, then stand one collective apart)
    local x, leaf = make(specs[rank]), specs[0].view ~= "expanded" and specs[1].view ~= "expanded"
    if leaf then x = x:clone():requiresGrad(true) end
    local y = x:replicaSum()
    if leaf then (y * 2):sum():backward() end
    return y
  end
end

-- MARK: - Gradient averagers
-- Both ranks build an averager over their own parameters (which may differ in count, shape,
-- dtype or bucket size), arm it, run backward and finish (or cancel): the same calls, so any
-- difference in the parameters must be found by the averager's own agreement check.
local function averagerPlan(p)
  local base = {}
  for i = 1, R(1, 4) do base[i] = randomSpec(); base[i].view = "plain" end
  local function vary(list)
    local c = {}
    for i, s in ipairs(list) do c[i] = copySpec(s) end
    local how, i = R(4), R(#c)
    if how == 1 then c[i] = differ(c[i]); c[i].view = "plain"
    elseif how == 2 then c[#c + 1] = randomSpec(); c[#c].view = "plain"
    elseif how == 3 and #c > 1 then table.remove(c, i)
    else c[i].view = "expanded" end   -- not a parameter at all: a view of 2^41+ elements
    return c
  end
  local params = perRank(base, vary, p)
  local bucket = perRank(pick { 1 / 1024, 1 / 64, 1, 25 }, function(b) return b == 1 and 1 / 1024 or 1 end, p / 2)
  local finish = pick { "finish", "finish", "cancel", "twice" }
  local function list(r) local d = {}; for i, s in ipairs(params[r]) do d[i] = describeSpec(s) end; return table.concat(d, " ") end
  return ("GradientAverager(%s) r0=[%s]/%gMB r1=[%s]/%gMB"):format(finish, list(0), bucket[0], list(1), bucket[1]), function()
    local ps = {}
    for i, s in ipairs(params[rank]) do
      ps[i] = make(s)
      if s.view ~= "expanded" then ps[i] = ps[i]:clone():requiresGrad(true) end
    end
    local ok, avg = try(dist.GradientAverager, ps, { bucketMB = bucket[rank] })
    if not ok then return nil end
    try(avg.arm, avg)
    for _, x in ipairs(ps) do try(function() (x * x):sum():backward() end) end
    if finish == "cancel" then return try(avg.cancel, avg) end
    local done = table.pack(try(avg.finish, avg))
    if finish == "twice" then   -- the next step's round, with the same averager
      try(avg.arm, avg)
      for _, x in ipairs(ps) do try(function() (x * 3):sum():backward() end) end
      return try(avg.finish, avg)
    end
    return table.unpack(done, 1, done.n)
  end
end

-- MARK: - The Lua helpers (dist.lua), over different modules or parameter lists per rank
local function moduleOf(kind)
  if kind == 1 then return nn.Linear(3, 4) end
  if kind == 2 then return nn.Linear(4, 3) end
  if kind == 3 then return nn.Sequential(nn.Linear(3, 4), nn.BatchNorm2d(4)) end
  return nn.Conv2d(2, 3, 3)
end
local function helperPlan(p)
  local which = R(3)
  local kinds = perRank(R(4), function(k) return (k + R(0, 2)) % 4 + 1 end, p)   -- 1 and 3 share a prefix
  local name, bucket = ({ "broadcastModules", "checkReplicas", "averageGradients" })[which], pick { 1e-6, 1 / 1024, 25 }
  return ("%s r0=module%d r1=module%d"):format(name, kinds[0], kinds[1]), function()
    local m = moduleOf(kinds[rank])
    if which == 1 then return dist.broadcastModules(m, 0) end
    if which == 2 then return dist.checkReplicas(m, "the fuzz model") end
    local params = m:parameters()
    for _, q in ipairs(params) do q.grad = tensor.ones(q:shape()) end
    return dist.averageGradients(params, { bucketMB = bucket })   -- 1e-6: a bucket per parameter
  end
end

-- MARK: - Rounds

-- How often each kind of round comes. "step": one collective, whose arguments differ on one
-- rank 70% of the time; "agree": the same, identical everywhere; "order": two collectives, one
-- rank making them in the other order; "averager": gradient averagers over different
-- parameters; "helper": dist.lua's broadcastModules, checkReplicas and averageGradients over
-- different modules; "local": one rank failing its own argument checks (an unknown op, a root
-- out of range, a number for a tensor, a bucket of 0 MB) where the others' calls are valid.
local roundKinds = {
  { "step", 50 }, { "order", 10 }, { "averager", 22 }, { "helper", 5 }, { "local", 3 }, { "agree", 10 },
}
local stepNames = { "allReduce", "broadcast", "allGather", "barrier", "replicaSum" }
local function weighted()
  local total = 0
  for _, k in ipairs(roundKinds) do total = total + k[2] end
  local x = R(total)
  for _, k in ipairs(roundKinds) do x = x - k[2]; if x <= 0 then return k[1] end end
end

-- A round: a description and this rank's list of calls.
local function nextRound()
  local kind = weighted()
  if kind == "step" or kind == "agree" then
    local p = kind == "agree" and 0 or 0.7
    local desc, call = steps[pick(stepNames)](p)
    return kind .. ": " .. desc, { call }
  elseif kind == "order" then   -- two collectives, one rank making them in the other order
    local d1, c1 = steps[pick(stepNames)](0.2)
    local d2, c2 = steps[pick(stepNames)](0.2)
    local swapped = R(0, size - 1)
    return ("order (rank %d swapped): %s; %s"):format(swapped, d1, d2), rank == swapped and { c2, c1 } or { c1, c2 }
  elseif kind == "averager" then
    local desc, call = averagerPlan(0.7)
    return "averager: " .. desc, { call }
  elseif kind == "helper" then
    local desc, call = helperPlan(0.6)
    return "helper: " .. desc, { call }
  end
  local odd = R(0, size - 1)
  local bad = pick {
    { "allReduce op 'max'", function() return dist.allReduce(tensor.zeros(3), { op = rank == odd and "max" or "sum" }) end },
    { "broadcast root out of range", function() return dist.broadcast(tensor.zeros(3), rank == odd and size or 0) end },
    { "allGather of a number", function() return dist.allGather(rank == odd and 3 or tensor.zeros(1, 3)) end },
    { "averager bucket 0 MB", function()
      local w = tensor.ones(3):requiresGrad(true)
      local avg = dist.GradientAverager({ w }, { bucketMB = rank == odd and 0 or 1 })
      avg:arm(); (w * 2):sum():backward()
      return avg:finish()
    end },
  }
  return ("local (rank %d): %s"):format(odd, bad[1]), { bad[2] }
end

local made, failed = 0, 0
for k = 1, opt.calls do
  local desc, calls = nextRound()
  if trace then trace:write("C ", k, " ", desc, "\n") end
  if opt.verbose then io.stderr:write(("rank %d: C %d %s\n"):format(rank, k, desc)) end
  for _, call in ipairs(calls) do
    made = made + 1
    if not try(call) then failed = failed + 1 end
  end
  local ok, all = pcall(dist.allGather, tensor.full({ 1, 1 }, k))
  if not ok or all:min():item() ~= k or all:max():item() ~= k then   -- an error here ends every rank (luagan aborts the job)
    error(("dist_calls.lua: out of step with the other ranks after round %d (%s): %s"):format(k, desc,
      ok and "they are at another round" or tostring(all)), 0)
  end
end
if trace then trace:write("D ", opt.calls, "\n") end
if opt.verbose then
  io.stderr:write(("dist_calls.lua: rank %d of %d, seed %d, %d rounds, %d calls (%d raised errors)\n"):format(rank, size, opt.seed,
    opt.calls, made, failed))
end
