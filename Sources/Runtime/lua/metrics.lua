-- metrics.lua: the Lua half of `metrics`. The formulas (fid, kid, inceptionScore,
-- precisionRecall, swd, msssim) are Swift bindings; here are statistics files and the loop
-- that runs a feature network over a large set in batches.
local metrics, tensor = metrics, tensor

local function argError(fn, i, expected, got)
  error(("bad argument #%d to '%s' (%s expected, got %s)"):format(i, fn, expected, got), 3)
end

--- metrics.saveStats(path, stats): writes feature statistics {mu, sigma, n} (float64), as a
-- safetensors file, or with a path ending in .npz as pytorch-fid's and clean-fid's `.npz`
-- (arrays mu and sigma; n is kept too, as a 1-element array).
function metrics.saveStats(path, stats)
  if type(path) ~= "string" then argError("metrics.saveStats", 1, "file name", type(path)) end
  if type(stats) ~= "table" or not tensor.isTensor(stats.mu) or not tensor.isTensor(stats.sigma) or math.type(stats.n) ~= "integer" then
    argError("metrics.saveStats", 2, "statistics table {mu=, sigma=, n=}", type(stats))
  end
  tensor.save(path, { mu = stats.mu:to("float64"), sigma = stats.sigma:to("float64"), n = tensor.new({ stats.n }, { dtype = "float64" }) })
end

--- metrics.loadStats(path) -> {mu, sigma, n}, as metrics.featureStats returns: a safetensors
-- file of saveStats, or a pytorch-fid / clean-fid `.npz` (mu (D), sigma (D, D); n is nil
-- when the file does not say). Pickled (object) arrays are refused.
function metrics.loadStats(path)
  if type(path) ~= "string" then argError("metrics.loadStats", 1, "file name", type(path)) end
  local t = tensor.load(path)
  if not (tensor.isTensor(t.mu) and tensor.isTensor(t.sigma)) then
    error(("metrics.loadStats: %s is not a statistics file (it needs arrays mu and sigma)"):format(path), 2)
  end
  local d = t.mu:numel()
  if t.mu:dim() ~= 1 or t.sigma:dim() ~= 2 or t.sigma:size(1) ~= d or t.sigma:size(2) ~= d then
    local function shape(x) return "{" .. table.concat(x:shape(), ",") .. "}" end
    error(("metrics.loadStats: %s holds mu %s and sigma %s; expected mu (D) and sigma (D, D)"):format(path,
      shape(t.mu), shape(t.sigma)), 2)
  end
  local n = tensor.isTensor(t.n) and t.n:numel() == 1 and math.tointeger(t.n:item()) or nil
  return { mu = t.mu:to("float64"), sigma = t.sigma:to("float64"), n = n }
end

--- metrics.extract(net, images, {batchSize=100}) -> outputs: runs net over images (N, ...)
-- in batches without recording gradients and concatenates its results along dim 1. net may
-- return several tensors (say features and logits); extract returns as many.
-- `images` may also be a function(i, n) returning the batch of rows i .. i+n-1, with
-- opts.count the total, so a generator's samples need not all be held at once.
function metrics.extract(net, images, opts)
  opts = opts or {}
  if type(net) ~= "function" and not (type(net) == "table" and getmetatable(net) and getmetatable(net).__call) then
    argError("metrics.extract", 1, "function or module", type(net))
  end
  local count, batchOf
  if tensor.isTensor(images) then
    count = images:size(1)
    batchOf = function(i, n) return images:narrow(1, i, n) end
  elseif type(images) == "function" then
    count = opts.count
    if math.type(count) ~= "integer" or count < 1 then
      error("metrics.extract: option 'count' (a positive integer) is required when images is a function", 2)
    end
    batchOf = images
  else
    argError("metrics.extract", 2, "tensor or function", type(images))
  end
  local batchSize = opts.batchSize or 100
  if math.type(batchSize) ~= "integer" or batchSize < 1 then
    error(("metrics.extract: option 'batchSize' must be a positive integer, got %s"):format(tostring(batchSize)), 2)
  end
  -- The results are allocated whole after the first batch (checked allocations), so a count
  -- that cannot fit (an expanded view of 2^30 images) fails at once, not after hours of batches.
  local results = {}
  tensor.noGrad(function()
    for i = 1, count, batchSize do
      local n = math.min(batchSize, count - i + 1)
      local outs = table.pack(net(batchOf(i, n)))
      for k = 1, outs.n do
        local o = outs[k]:detach()
        if i == 1 then
          local shape = o:shape()
          shape[1] = count
          results[k] = tensor.zeros(shape, { dtype = o:dtype() })
        end
        results[k]:narrow(1, i, n):copy(o)
      end
    end
  end)
  return table.unpack(results)
end
