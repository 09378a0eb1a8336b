-- Reproducibility: the same seed gives the same numbers for any thread count (house
-- decision 7). Kernels split work at boundaries that depend only on the problem size, and
-- the Winograd GEMMs run single-threaded each, whatever the pool size.
local T = require("testing")
local biggan = require("models.biggan")

local function step(threads)
  tensor.setNumThreads(threads)
  tensor.manualSeed(11)
  local G = biggan.Generator { resolution = 32, ch = 4, dimZ = 32, sharedDim = 16, numClasses = 10, attention = "16", outChannels = 1 }
  local D = biggan.Discriminator { resolution = 32, ch = 4, numClasses = 10, inChannels = 1 }
  local z, y = tensor.randn(12, G.dimZ), tensor.randint(1, 10, 12)
  local loss = gan.hingeG(D(G(z, G:embed(y)), y))
  loss:backward()
  local out = { loss = loss:detach() }
  for name, p in G:namedParameters() do out["G." .. name] = p.grad end
  for name, p in D:namedParameters() do out["D." .. name] = p.grad end
  -- big enough for several chunks and blocks: a Winograd conv, an im2col conv, a sum, a matmul
  local x, w = tensor.randn(9, 48, 20, 20), tensor.randn(40, 48, 3, 3)
  out.winograd = tensor.conv2d(x, w, nil, { padding = 1 })
  out.strided = tensor.conv2d(x, w, nil, { stride = 2 })
  -- a padded 3x3 conv's output and the weight gradient of sum(y²)
  local function convAndWeightGrad(xs, ws)
    local wg = ws:requiresGrad(true)
    local y = tensor.conv2d(xs, wg, nil, { padding = 1 })
    ;(y * y):sum():backward()
    return y:detach(), wg.grad
  end
  -- wider than 64 channels (each Winograd phase split across workers where the sub-block limit
  -- is 64; as sub-blocks where it is 256), then wider than 256 (the limit where luagan's AVX-512
  -- GEMM runs, LG_WINO_SMALL; 32 tiles), and a 1x1 conv whose weight gradient sums two 8-image
  -- chunks
  out.wide, out.wideWeightGrad = convAndWeightGrad(tensor.randn(3, 80, 12, 12), tensor.randn(72, 80, 3, 3))
  out.wider, out.widerWeightGrad = convAndWeightGrad(tensor.randn(2, 264, 16, 16), tensor.randn(264, 264, 3, 3))
  local w1 = tensor.randn(24, 48, 1, 1):requiresGrad(true)
  local y1 = tensor.conv2d(x, w1)
  local loss1 = (y1 * y1):sum()
  loss1:backward()
  out.pointwiseWeightGrad = w1.grad
  out.sum = tensor.randn(1000, 3000):sum(1)
  out.matmul = tensor.randn(300, 200):matmul(tensor.randn(200, 500))
  return out
end

T.test("a BigGAN step, convolutions, reductions and matmul give identical bits on 1 and 2 threads", function()
  local one, two = step(1), step(2)
  local n = 0
  for k, v in pairs(one) do
    T.check(two[k] ~= nil, "missing " .. k)
    T.check((v - two[k]):abs():max():item() == 0, k .. " differs between 1 and 2 threads")
    n = n + 1
  end
  print(("threads: %d tensors identical on 1 and 2 threads"):format(n))
end)

T.finish("threads")
