-- fit_sine.lua: a first taste of luagan. A two-layer network learns y = sin(3x) from 256 noisy
-- points, with autograd and plain SGD, written with tensors only; its loss falls as it trains.
local opt = { steps = 600, hidden = 64, lr = 0.05, seed = 1, printEvery = 50 }

tensor.manualSeed(opt.seed)
local x = tensor.rand(256, 1, { lo = -1, hi = 1 })
local y = (x * 3):sin() + tensor.randn(256, 1, { std = 0.05 })

-- Parameters: He-style init for the ReLU layer, small init for the output.
local w1 = tensor.randn(1, opt.hidden, { std = math.sqrt(2) }):requiresGrad(true)
local b1 = tensor.zeros(opt.hidden):requiresGrad(true)
local w2 = tensor.randn(opt.hidden, 1, { std = 0.1 }):requiresGrad(true)
local b2 = tensor.zeros(1):requiresGrad(true)
local params = { w1, b1, w2, b2 }

local first, last
for step = 1, opt.steps do
  local pred = (x:matmul(w1) + b1):relu():matmul(w2) + b2
  local loss = ((pred - y) ^ 2):mean()
  for _, p in ipairs(params) do p:zeroGrad() end
  loss:backward()
  tensor.noGrad(function()
    for _, p in ipairs(params) do p:copy(p - p.grad * opt.lr) end
  end)
  local l = loss:item()
  first = first or l
  last = l
  if step == 1 or step % opt.printEvery == 0 then print(("step %4d  loss %.5f"):format(step, l)) end
end
print(("loss fell from %.4f to %.4f"):format(first, last))
