-- Autograd through the Lua API: backward, accumulation, noGrad, tensor.grad with createGraph.
local T = require("testing")
local check, checkError, close = T.check, T.checkError, T.close

T.test("backward accumulates into leaves", function()
  local x = tensor.new({ 1, 2, 3 }):requiresGrad(true)
  check(x:requiresGrad() == true and x.isLeaf)
  local y = (x * x):sum()
  check(not y.isLeaf and y.gradFn == "sum")
  y:backward()
  close(x.grad, tensor.new { 2, 4, 6 })
  ;(x * 3):sum():backward()
  close(x.grad, tensor.new { 5, 7, 9 }, 0, 0, "gradients accumulate")
  x:zeroGrad()
  check(x.grad == nil)
  x.grad = tensor.ones(3)
  close(x.grad, tensor.ones(3))
  x.grad = nil
  checkError("grad must have the tensor's shape", function() x.grad = tensor.ones(2) end)
end)

T.test("backward with a gradient, and the graph is freed", function()
  local x = tensor.new({ 1, 2 }):requiresGrad(true)
  local y = x * 2
  y:backward(tensor.new { 1, 10 })
  close(x.grad, tensor.new { 2, 20 })
  checkError("already freed", function() y:backward(tensor.new { 1, 1 }) end)
  local z = x:exp()
  z:backward(tensor.ones(2), { retainGraph = true })
  z:backward(tensor.ones(2))
  checkError("not a scalar", function() (x * 2):backward() end)
  checkError("does not require grad", function() tensor.ones(2):sum():backward() end)
end)

T.test("detach and noGrad stop recording", function()
  local x = tensor.ones(2):requiresGrad(true)
  check(not (x:detach() * 2):requiresGrad())
  local y = tensor.noGrad(function() return x * 2 end)
  check(not y:requiresGrad())
  check(tensor.isGradEnabled())
  local ok = pcall(tensor.noGrad, function() error("inside") end)
  check(not ok and tensor.isGradEnabled(), "recording is restored after an error")
  local a, b = tensor.noGrad(function(p, q) return p + q, "second" end, 1, 2)
  check(a == 3 and b == "second", "noGrad passes arguments and returns every result")
end)

T.test("tensor.grad returns gradients without touching .grad", function()
  local x = tensor.new({ 1, -2 }, { dtype = "float64" }):requiresGrad(true)
  local g = tensor.grad((x ^ 3):sum(), x)[1]
  close(g, tensor.new { 3, 12 })
  check(x.grad == nil)
  local w = tensor.new({ 2, 3 }):requiresGrad(true)
  local gs = tensor.grad({ (w * x:float()):sum() }, { w, x }, { gradOutputs = { tensor.new(2) } })
  close(gs[1], tensor.new { 2, -4 })
  close(gs[2], tensor.new { 4, 6 })
  checkError("was not used", function() tensor.grad((w * 2):sum(), { w, tensor.ones(1):requiresGrad(true) }) end)
  local r = tensor.grad((w * 2):sum(), { w, tensor.ones(1):requiresGrad(true) }, { allowUnused = true })
  close(r[2], tensor.zeros(1))
end)

T.test("gradients of gradients (createGraph)", function()
  -- f = Σ x³: f' = 3x², and d/dx Σ f' = 6x
  local x = tensor.new({ 1, -2, 0.5 }, { dtype = "float64" }):requiresGrad(true)
  local g = tensor.grad((x ^ 3):sum(), x, { createGraph = true })[1]
  check(g:requiresGrad(), "createGraph makes the gradient differentiable")
  local gg = tensor.grad(g:sum(), x)[1]
  close(gg, tensor.new { 6, -12, 3 }, 1e-12)
  -- A WGAN-GP-style penalty on a tiny linear critic D(x) = tanh(x·w): the penalty's gradient
  -- with respect to w, computed by double backprop, matches finite differences.
  local function penalty(w)
    local xs = tensor.new({ { 0.3, -0.7 }, { 1.1, 0.4 } }, { dtype = "float64" }):requiresGrad(true)
    local d = xs:matmul(w):tanh()
    local gx = tensor.grad(d:sum(), xs, { createGraph = true })[1]
    return ((gx:norm(2) - 1) ^ 2):mean()
  end
  local ok, report = tensor.gradcheck(penalty, tensor.new({ 0.5, -0.25 }, { dtype = "float64" }))
  check(ok, report)
end)

T.test("gradcheck from Lua, first and second order", function()
  local ok, msg = tensor.gradcheck(function(a, b) return (a * b):sigmoid():sum(2) end,
    { tensor.randn(3, 4, { dtype = "float64" }), tensor.randn(3, 4, { dtype = "float64" }) })
  check(ok, msg)
  ok, msg = tensor.gradcheck(function(a) return tensor.conv2d(a, a:narrow(1, 1, 1):narrow(2, 1, 1):narrow(3, 1, 3):narrow(4, 1, 3), nil, { padding = 1 }) end,
    tensor.randn(1, 1, 4, 4, { dtype = "float64" }), { secondOrder = true })
  check(ok, msg)
  -- A wrong gradient is caught: x·detach(x) has derivative 2x, autograd sees x.
  ok = tensor.gradcheck(function(a) return a * a:detach() end, tensor.randn(3, { dtype = "float64" }))
  check(not ok, "gradcheck must fail on a wrong gradient")
  checkError("the function raised an error", tensor.gradcheck, function() error("nope") end, tensor.ones(1))
  checkError("must return a tensor", tensor.gradcheck, function() return 1 end, tensor.ones(1))
end)

T.test("in-place writes into graph nodes are refused", function()
  local x = tensor.ones(2):requiresGrad(true)
  local y = x * 2
  checkError("part of a graph", function() y:fill(0) end)
  tensor.noGrad(function() x:fill(3) end)  -- leaves may be written (initialisers, optimisers)
  check(x[1] == 3)
end)

T.test("softmax: rows far from 0, -inf entries and any dim, as torch.softmax", function()
  local x = tensor.new({ { 1000, 999, 998 }, { -1000, -1001, -1002 }, { 0, -math.huge, 1 }, { 1e-3, 2e-3, 3e-3 } })
  local y = x:softmax(2)
  -- the same row shifted by a constant gives the same softmax, with no overflow
  local e = { 1 / (1 + math.exp(-1) + math.exp(-2)), math.exp(-1) / (1 + math.exp(-1) + math.exp(-2)) }
  for r = 1, 2 do
    check(math.abs(y[r][1] - e[1]) < 1e-6 and math.abs(y[r][2] - e[2]) < 1e-6, "row " .. r .. " shifted")
  end
  check(y[3][2] == 0 and math.abs(y[3][3] - 1 / (1 + math.exp(-1))) < 1e-6, "a -inf entry gets 0")
  -- an all -inf row is NaN, as in PyTorch
  local z = tensor.new({ { -math.huge, -math.huge } }):softmax(2)
  check(z[1][1] ~= z[1][1], "all -inf gives NaN")
  -- along a middle dim it is the composite exp(logSoftmax) to rounding, and rows sum to 1
  local a = tensor.randn(2, 5, 3, { dtype = "float64" }) * 4
  check((a:softmax(2) - a:logSoftmax(2):exp()):abs():max():item() < 1e-15, "dim 2 of 3")
  check((a:softmax(2):sum(2) - 1):abs():max():item() < 1e-15, "sums to 1")
end)

-- linear computes x·Wᵀ with Wᵀ a transposed view; mm returns that operand's gradient in its
-- layout, so W.grad arrives contiguous and later steps accumulate into it in place (a strided
-- add of a transposed gradient cost 4 ms per step for a 4096x512 weight).
T.test("a linear layer's weight gradient is contiguous and accumulates in place", function()
  local lin = nn.Linear(6, 5)
  local x = tensor.randn(3, 6)
  check(tensor.grad(lin(x):sum(), lin.weight)[1]:isContiguous(), "the gradient as backward produces it")
  lin(x):sum():backward()
  local g1 = lin.weight.grad
  check(g1:isContiguous(), "weight.grad after one backward")
  local first = g1:clone()
  lin(x):sum():backward()
  check(lin.weight.grad:isContiguous(), "weight.grad after two")
  check((lin.weight.grad - first * 2):abs():max():item() < 1e-6, "accumulated twice")
  check((first - x:sum(1):reshape(1, 6):expand(5, 6)):abs():max():item() < 1e-6, "dW = Σ_n x")
end)

T.finish("autograd")
