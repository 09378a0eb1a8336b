-- dist.lua: the Lua half of `dist`, data parallelism as stylegan2-ada-pytorch does it: the
-- same model on every rank (parameters and buffers broadcast from rank 0 at start), each rank
-- its own slice of the global batch, gradients averaged over ranks before every optimizer step
-- (so optimizers and EMAs stay identical), and a cheap checksum now and then that stops the
-- run if replicas ever drift apart. The collectives (allReduce, broadcast, allGather,
-- barrier) are Swift bindings over Open MPI.
local dist, tensor = dist, tensor

local function argError(fn, i, expected, got)
  error(("bad argument #%d to '%s' (%s expected, got %s)"):format(i, fn, expected, got), 3)
end

-- The tensors of `modules` (a module or a list of them) in a fixed order: the order of their
-- state dicts' names, the same on every rank.
local function stateTensors(modules, fn)
  if nn.isModule(modules) then modules = { modules } end
  if type(modules) ~= "table" then argError(fn, 1, "module or list of modules", type(modules)) end
  local out = {}
  for i, m in ipairs(modules) do
    if not nn.isModule(m) then argError(fn, 1, "module or list of modules", ("%s at [%d]"):format(type(m), i)) end
    local sd = m:stateDict()
    for _, name in ipairs(m:stateDictNames()) do out[#out + 1] = sd[name] end
  end
  return out
end

-- Before a helper makes one collective per tensor, the ranks compare their lists (count and a
-- hash of shapes and dtypes): lists that differ, or a rank whose arguments were refused, are an
-- error on every rank, never ranks that fall out of step (a prefix of one list would pair up
-- silently). `ok, list` are a pcall's results: list is the error when ok is false.
local function agreeList(fn, ok, list)
  local count, hash = -1, 0
  if ok then
    count = #list
    for _, t in ipairs(list) do
      for _, n in ipairs(t:shape()) do hash = (hash * 31 + n) & 0xFFFFFFFFFF end   -- 40 bits: exact as a float64
      hash = (hash * 7 + (t:dtype() == "float64" and 2 or 1)) & 0xFFFFFFFFFF
    end
  end
  local all = dist.allGather(tensor.new({ count, hash }, { dtype = "float64" }):view(1, 2))
  if not ok then error(list, 0) end
  for r = 1, all:size(1) do
    if all[r][1] < 0 then error(("%s: rank %d's arguments were refused"):format(fn, r - 1), 3) end
    if all[r][1] ~= all[1][1] or all[r][2] ~= all[1][2] then
      error(("%s: the ranks' tensor lists differ (rank 0: %d tensors, rank %d: %d; or their shapes differ)")
        :format(fn, math.tointeger(all[1][1]), r - 1, math.tointeger(all[r][1])), 3)
    end
  end
  return list
end

--- dist.broadcastModules(modules[, root]): every parameter and buffer of the modules (a module
-- or a list) copied from rank root (0) to all ranks, as at the start of a data-parallel run.
function dist.broadcastModules(modules, root)
  if dist.size() == 1 then return end
  local list = agreeList("dist.broadcastModules", pcall(stateTensors, modules, "dist.broadcastModules"))
  tensor.noGrad(function()
    for _, t in ipairs(list) do dist.broadcast(t, root or 0) end
  end)
end

--- dist.averageGradients(params[, opts]): the gradients of `params` (a list of tensors, e.g.
-- G:parameters()) replaced by their mean over ranks, in buckets of opts.bucketMB (25) MB: each
-- bucket is flattened into one buffer, all-reduced once, and copied back. A parameter without a
-- gradient counts as zeros, so every rank reduces the same buffers.
function dist.averageGradients(params, opts)
  if type(params) ~= "table" then argError("dist.averageGradients", 1, "list of tensors", type(params)) end
  if dist.size() == 1 then return end
  agreeList("dist.averageGradients", pcall(function()
    for i, p in ipairs(params) do
      if not tensor.isTensor(p) then argError("dist.averageGradients", 1, "list of tensors", ("%s at [%d]"):format(type(p), i)) end
    end
    return params
  end))
  local limit = math.floor((opts and opts.bucketMB or 25) * 2 ^ 20)
  local bucket, bytes = {}, 0
  local function flush()
    if #bucket == 0 then return end
    local flat = {}
    for i, p in ipairs(bucket) do flat[i] = (p.grad or tensor.zeros(p:shape(), { dtype = p:dtype() })):reshape(-1) end
    local buffer = tensor.cat(flat, 1)
    dist.allReduce(buffer, { op = "mean" })
    local at = 1
    for _, p in ipairs(bucket) do
      local n = p:numel()
      local g = buffer:narrow(1, at, n):view(p:shape())
      if p.grad then p.grad:copy(g) else p.grad = g:clone() end
      at = at + n
    end
    bucket, bytes = {}, 0
  end
  tensor.noGrad(function()
    for _, p in ipairs(params) do
      bucket[#bucket + 1] = p
      bytes = bytes + p:numel() * (p:dtype() == "float64" and 8 or 4)
      if bytes >= limit then flush() end
    end
    flush()
  end)
end

--- dist.checkReplicas(modules, what): a checksum of every parameter and buffer (sum and sum
-- of squares per tensor, float64) gathered from all ranks and compared exactly; an error
-- naming the first tensor that differs when the replicas have drifted apart.
function dist.checkReplicas(modules, what)
  if dist.size() == 1 then return true end
  agreeList("dist.checkReplicas", pcall(stateTensors, modules, "dist.checkReplicas"))
  local sums, names = {}, {}
  if nn.isModule(modules) then modules = { modules } end
  tensor.noGrad(function()
    for _, m in ipairs(modules) do
      local sd = m:stateDict()
      for _, name in ipairs(m:stateDictNames()) do
        local d = sd[name]:to("float64")
        sums[#sums + 1] = d:sum():item(); sums[#sums + 1] = (d * d):sum():item()
        names[#names + 1] = name; names[#names + 1] = name
      end
    end
  end)
  local all = dist.allGather(tensor.new(sums, { dtype = "float64" }):view(1, -1))   -- (size, 2 tensors)
  for r = 2, all:size(1) do
    for i = 1, #sums do
      if all[r][i] ~= all[1][i] then
        error(("dist.checkReplicas: the replicas of %s differ between rank 0 and rank %d, first at %s: "
          .. "a rank took a different step"):format(what or "the model", r - 1, names[i]), 2)
      end
    end
  end
  return true
end

--- dist.shard(n[, rank, size]): rank's share of n items, as a list of 1-based indices: every
-- size-th item from rank + 1 (stylegan2-ada-pytorch's InfiniteSampler: order[rank::size]). The
-- shares are disjoint and together cover 1..n; with n a multiple of size they are equal, and
-- PGGAN's minibatch-stddev groups of a rank's share are then the groups the whole batch forms.
function dist.shard(n, rank, size)
  rank, size = rank or dist.rank(), size or dist.size()
  if math.type(n) ~= "integer" or n < 0 then argError("dist.shard", 1, "non-negative integer", tostring(n)) end
  if math.type(size) ~= "integer" or size < 1 then argError("dist.shard", 3, "positive integer", tostring(size)) end
  if math.type(rank) ~= "integer" or rank < 0 or rank >= size then
    argError("dist.shard", 2, ("rank in 0..%d"):format(size - 1), tostring(rank))
  end
  if n // size > 1 << 26 then argError("dist.shard", 1, "at most 2^26 items per rank", tostring(n)) end
  local idx = {}
  for i = rank + 1, n, size do idx[#idx + 1] = i end
  return idx
end
