-- training/parallel.lua: data parallelism under mpirun (each rank's share, gradients averaged over ranks) and gradient
-- accumulation.
-- Part of scripts/lib/training.lua (require("training")), which loads every part into one table.
local M = require("training")

--- This rank's share of a global batch size (the whole of it without mpirun).
function M.localBatch(globalBatch) return globalBatch // dist.size() end

--- The size of the buckets gradients are averaged in, in MB (PyTorch DDP's 25).
M.bucketMB = 25

-- One dist.GradientAverager per model (its parameter list fixed when first asked for).
local averagers = setmetatable({}, { __mode = "k" })
local function averagerOf(model)
  local params = model:parameters()
  local a = averagers[model]
  if not a or a.count ~= #params then
    a = { averager = dist.GradientAverager(params, { bucketMB = M.bucketMB }), count = #params }
    averagers[model] = a
  end
  return a.averager
end
--- The dist.GradientAverager that averages `model`'s gradients.
M.averager = averagerOf

--- Whether gradients are averaged while backward runs (true) or all at once after it.
M.overlapGradients = true

--- A step's last backward pass: under mpirun, each bucket of `model`'s gradients starts its
-- all-reduce as soon as backward has finished it, overlapping communication with the rest of
-- backward (syncGradients then waits for them). In one process, loss:backward().
function M.lastBackward(loss, model)
  if dist.size() > 1 and M.overlapGradients then averagerOf(model):arm() end
  loss:backward()
end

--- The end of a step's backward passes under mpirun: the gradients of `model`'s parameters
-- averaged over ranks (bucketed), so every rank's optimizer takes the same step. Finishes what
-- lastBackward started, else reduces them all now.
function M.syncGradients(model)
  if dist.size() == 1 then return end
  if not averagerOf(model):finish() then dist.averageGradients(model:parameters()) end
end


--- Gradient accumulation (BigGAN-PyTorch's num_D_accumulations / num_G_accumulations): calls
-- lossFn(k) for k = 1..n, each on its own minibatch, and backpropagates loss/n, so the
-- gradients are those of the mean loss over the n minibatches: one step on the combined batch
-- (BatchNorm statistics aside). Returns the mean loss (detached) and lossFn's other results
-- from its last call. With `model`, the last backward is lastBackward(loss, model).
function M.accumulated(n, lossFn, model)
  local total, last = 0, nil
  for k = 1, n do
    local results = table.pack(lossFn(k))
    local loss = results[1]
    if n > 1 then loss = loss / n end
    if model and k == n then M.lastBackward(loss, model) else loss:backward() end
    total = total + loss:detach()
    last = results
  end
  return total, table.unpack(last, 2, last.n)
end
