-- The dist library under mpirun (Tests/RuntimeTests/DistributedTests runs it with 2 ranks):
-- collectives, agreement checks, cross-replica sums with their gradients, and the data
-- loader's shares. Prints "ok" on rank 0 when every check passed.
local T = require("testing")
local r, n = dist.rank(), dist.size()
assert(n >= 2, "run under mpirun with 2 or more ranks")

T.test("allReduce, broadcast and allGather", function()
  local t = tensor.full({ 2, 3 }, r + 1, { dtype = "float64" })
  dist.allReduce(t)
  T.check(t[2][3] == n * (n + 1) / 2, "sum over ranks")
  local m = dist.allReduce(tensor.full({ 4 }, r + 1), { op = "mean" })
  T.check(math.abs(m[4] - (n + 1) / 2) < 1e-6, "mean over ranks")
  local b = dist.broadcast(tensor.full({ 3 }, r * 10), n - 1)
  T.check(b[1] == (n - 1) * 10, "rank n-1's values everywhere")
  local g = dist.allGather(tensor.full({ 1, 2 }, r))
  T.check(g:size(1) == n and g[n][2] == n - 1, "every rank's rows in rank order")
  T.check(dist.stats().seconds >= 0 and dist.stats().bytes > 0, "communication is counted")
end)

T.test("ranks that disagree get the same clear error on every rank", function()
  T.checkError("ranks disagree", dist.allReduce, tensor.zeros(r + 1))
  T.checkError("rank 0: allReduce of a float32 (3)", dist.allReduce, r == 0 and tensor.zeros(3) or tensor.zeros(3, { dtype = "float64" }))
  local ok, err = pcall(function() if r == 0 then dist.barrier() else dist.broadcast(tensor.zeros(2), 0) end end)
  T.check(not ok and err:find("rank 0: barrier", 1, true) and err:find("broadcast", 1, true), "barrier vs broadcast: " .. tostring(err))
  T.checkError("root must be a rank in 0..", dist.broadcast, tensor.zeros(1), n)
  -- in place needs contiguous memory: one rank's transposed view fails on every rank
  T.checkError("a contiguous tensor expected on every rank", dist.allReduce, r == 0 and tensor.zeros(3, 4):t() or tensor.zeros(4, 3))
  T.checkError("op must be 'sum' or 'mean'", dist.allReduce, tensor.zeros(1), { op = "max" })
  dist.barrier()
end)

T.test("replicaSum: the forward and its gradient are sums over ranks", function()
  local x = tensor.full({ 2 }, r + 1, { dtype = "float64" }):requiresGrad(true)
  local y = x:replicaSum()
  T.check(y[1] == n * (n + 1) / 2, "forward")
  local loss = (y * (r + 1)):sum()
  loss:backward()
  T.check(x.grad[1] == n * (n + 1) / 2, "backward: the sum of every rank's upstream gradient")
end)

T.test("GradientAverager: the blocking average's bits, reduced while backward runs", function()
  -- a small chain whose parameters mix dtypes; one parameter gets no gradient
  local function params()
    tensor.manualSeed(3)
    return { tensor.randn(64, 32):requiresGrad(true), tensor.randn(32, { dtype = "float64" }):requiresGrad(true),
             tensor.randn(32, 16):requiresGrad(true), tensor.randn(5):requiresGrad(true) }
  end
  local function loss(p, scale)
    local x = tensor.full({ 4, 64 }, r + 1) * scale
    local h = (x:mm(p[1]):to("float64") + p[2]):tanh():to("float32")
    return (h:mm(p[3]) ^ 2):sum()
  end
  local a, b = params(), params()
  -- two backward passes into the same gradients (accumulation): only the last one is armed
  loss(a, 1):backward(); loss(a, 0.5):backward()
  dist.averageGradients(a)
  local avg = dist.GradientAverager(b, { bucketMB = 1 / 1024 })   -- 1 KB: a bucket per tensor, or less
  T.check(not avg:finish(), "finish without arm does nothing")
  loss(b, 1):backward()
  avg:arm()
  loss(b, 0.5):backward()
  T.check(avg:finish(), "armed")
  for i = 1, 3 do
    T.check((a[i].grad - b[i].grad):abs():max():item() == 0, "parameter " .. i .. ": the same bits as averageGradients")
  end
  T.check(b[4].grad ~= nil and b[4].grad:abs():max():item() == 0, "a parameter without a gradient averages zeros")
  T.check(avg:overlapped() >= 2, "buckets started before backward ended: " .. avg:overlapped())
  -- armed again for the next step; an unfinished round can be abandoned
  avg:arm(); loss(b, 1):backward(); avg:cancel()
  T.check(not avg:finish(), "cancelled")
  T.checkError("bucketMB must be in", dist.GradientAverager, b, { bucketMB = 0 })
  T.checkError("bad argument #1", dist.GradientAverager, 5)
  dist.barrier()
end)

T.test("averagers whose buckets differ between ranks fail on every rank, then work again", function()
  -- each case: a different parameter size, a different dtype, another dist call at that moment,
  -- a tensor of more than 8 dims on one rank only; before the check these hung or crashed
  local differentSize = dist.GradientAverager({ tensor.zeros(r == 0 and 10 or 12):requiresGrad(true) })
  T.checkError("ranks disagree", differentSize.arm, differentSize)
  local differentDtype = dist.GradientAverager({ tensor.zeros(10, { dtype = r == 0 and "float32" or "float64" }):requiresGrad(true) })
  T.checkError("float64 elements", differentDtype.arm, differentDtype)
  local alone = dist.GradientAverager({ tensor.zeros(3):requiresGrad(true) })
  if r == 0 then T.checkError("barrier", alone.arm, alone) else T.checkError("GradientAverager:arm", dist.barrier) end
  T.checkError("at most 8 dims", dist.allReduce, r == 0 and tensor.zeros(1, 1, 1, 1, 1, 1, 1, 1, 1) or tensor.zeros(2))
  -- a rank whose own arguments are refused fails every rank, after the exchange, not before it
  T.checkError(r == 0 and "luagan.Tensor expected" or "rank 0 could not make this call", dist.allGather, r == 0 and 3 or tensor.ones(2))
  T.checkError(r == 1 and "root must be a rank" or "rank 1 could not make this call", dist.broadcast, tensor.ones(2), r == 1 and 7 or 0)
  T.checkError(r == 0 and "bucketMB" or "rank 0 could not make this call", dist.GradientAverager, { tensor.ones(2) },
    { bucketMB = r == 0 and 0 or 1 })
  T.checkError("", function() return tensor.zeros(1):expand(1 << 41):replicaSum() end)           -- every rank refuses it
  T.checkError("replicaSum", function() return tensor.ones(r == 0 and 3 or 4):replicaSum() end)   -- sizes differ
  -- the helpers compare their tensor lists first: a prefix of a list does not pair up silently
  local m = r == 0 and nn.Linear(3, 4) or nn.Sequential(nn.Linear(3, 4), nn.BatchNorm2d(4))
  T.checkError("tensor lists differ", dist.broadcastModules, m)
  T.checkError("tensor lists differ", dist.checkReplicas, m)
  local same = dist.GradientAverager({ tensor.ones(4):requiresGrad(true) })
  same:arm()
  T.check(same:finish(), "an averager the ranks agree on still works")
  dist.barrier()
end)

T.test("the loader's shares are disjoint and together the global batch", function()
  local ds = data.fashionMNIST { split = "test" }
  local opts = { batchSize = 4 * n, seed = 11, dropLast = true, transform = { data.randomFlip(0.5), data.scale(-1, 1) } }
  local full = data.Loader(ds, opts)
  opts.rank, opts.ranks = r, n
  local mine = data.Loader(ds, opts)
  for _ = 1, 3 do
    local x, y = full:next()
    local xs, ys = mine:next()
    T.check(xs:size(1) == 4, "an equal share")
    local gx, gy = dist.allGather(xs:contiguous()), dist.allGather(ys:contiguous())
    -- rank k holds samples k+1, k+1+n, ...: gathered row k*4 + j is global sample k + 1 + (j-1) n
    for k = 0, n - 1 do
      for j = 1, 4 do
        local global = k + 1 + (j - 1) * n
        T.check((gx[k * 4 + j] - x[global]):abs():max():item() == 0 and gy[k * 4 + j] == y[global],
          ("rank %d's sample %d is the global batch's %d"):format(k, j, global))
      end
    end
  end
  T.checkError("multiple of the", data.Loader, ds, { batchSize = 4 * n + 1, rank = r, ranks = n, dropLast = true })
end)

T.finish(("dist (rank %d of %d)"):format(r, n))
