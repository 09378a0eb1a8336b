-- show_data.lua: a sheet of Fashion-MNIST (one row per class) and a plot of the demo's loss,
-- written with luagan's own image and plot libraries.
--   luagan scripts/examples/show_data.lua [out folder, default docs]
local out = arg[1] or "docs"
local ds = data.fashionMNIST { split = "train" }
local labels = ds.labels
local rows = {}
for k = 1, ds.numClasses do
  local idx = {}
  for i = 1, #ds do
    if labels[i] == k then idx[#idx + 1] = i end
    if #idx == 10 then break end
  end
  rows[k] = ds.images:indexSelect(1, idx)
end
image.save(out .. "/fashion_mnist_classes.png", image.grid(tensor.cat(rows, 1), { nrow = 10, padding = 2 }))
for k, name in ipairs(ds.classNames) do io.write(("%d %s%s"):format(k, name, k < 10 and ", " or "\n")) end

-- The loss curve of a tiny regression, as the demo trains it.
tensor.manualSeed(1)
local x = tensor.rand(256, 1, { lo = -1, hi = 1 })
local y = (x * 3):sin()
local w1, b1 = tensor.randn(1, 64, { std = math.sqrt(2) }):requiresGrad(true), tensor.zeros(64):requiresGrad(true)
local w2, b2 = tensor.randn(64, 1, { std = 0.1 }):requiresGrad(true), tensor.zeros(1):requiresGrad(true)
local opt = optim.Adam({ w1, b1, w2, b2 }, { lr = 1e-2 })
local its, losses = {}, {}
for step = 1, 300 do
  opt:zeroGrad()
  local loss = (((x:matmul(w1) + b1):relu():matmul(w2) + b2 - y) ^ 2):mean()
  loss:backward()
  opt:step()
  its[step], losses[step] = step, loss:item()
end
plot.lines(out .. "/sample_plot.png", { { name = "MSE (Adam, lr 0.01)", x = its, y = losses } },
  { title = "A two-layer network fits sin(3x)", xlabel = "step", ylabel = "loss", logy = true })
print("wrote " .. out .. "/fashion_mnist_classes.png and " .. out .. "/sample_plot.png")
