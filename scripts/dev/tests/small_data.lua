-- Small-data training aids: DiffAugment's transforms (what each does, gradchecked to second
-- order, R1 through it), ADA's probability controller, LeCam's regularizer, and gradient
-- accumulation equal to one step on the combined batch.
package.path = (debug.getinfo(1, "S").source:match("^@(.*)/tests/") or "scripts") .. "/lib/?.lua;" .. package.path
local T = require("testing")
local training = require("training")
local biggan = require("models.biggan")
local check, checkError, close = T.check, T.checkError, T.close

T.test("translation: each image is itself shifted by at most size/8 pixels, zeros coming in", function()
  tensor.manualSeed(3)
  local x = tensor.rand(6, 2, 8, 8) + 0.5                  -- no zeros of its own
  local y = gan.diffAugment(x, "translation")
  local padded = x:pad({ 1, 1, 1, 1 })                     -- (6, 2, 10, 10)
  for n = 1, 6 do
    local found = false
    for dy = -1, 1 do
      for dx = -1, 1 do
        local shifted = padded[n]:narrow(2, 2 - dy, 8):narrow(3, 2 - dx, 8)
        if (shifted - y[n]):abs():max():item() == 0 then found = true end
      end
    end
    check(found, "image " .. n .. " is a shift of its input")
  end
end)

T.test("cutout: one zeroed square of half the side per image, clipped at the border", function()
  tensor.manualSeed(4)
  local y = gan.diffAugment(tensor.ones(20, 3, 8, 8), "cutout")
  for n = 1, 20 do
    local zero = y[n][1]:eq(0)
    local count = zero:sum():item()
    local rows, cols = zero:sum(2):gt(0):sum():item(), zero:sum(1):gt(0):sum():item()
    check(count == rows * cols and rows >= 2 and rows <= 4 and cols >= 2 and cols <= 4, "a rectangle of 2..4 x 2..4")
    check((y[n][1] - y[n][3]):abs():max():item() == 0, "the same square in every channel")
  end
end)

T.test("color, p and option checks", function()
  local x = tensor.rand(4, 3, 6, 6)
  close(gan.diffAugment(x, "color,translation,cutout", { p = 0 }), x, 0, 0, "p = 0 changes nothing")
  tensor.manualSeed(5)
  local c = gan.diffAugment(x, "color")
  check((c - x):abs():max():item() > 0)
  checkError("unknown transform 'blur'", gan.diffAugment, x, "color,blur")
  checkError("must be a number in [0, 1]", gan.diffAugment, x, "color", { p = 2 })
  checkError("an (N, C, H, W) tensor expected", gan.diffAugment, tensor.ones(3, 4), "color")
end)

T.test("DiffAugment is differentiable to second order (float64 gradcheck), so R1 runs through it", function()
  local x = tensor.randn(2, 2, 5, 5, { dtype = "float64" }):requiresGrad(true)
  for _, p in ipairs { 1, 0.5 } do
    local f = function(v) tensor.manualSeed(9); return gan.diffAugment(v, "color,translation,cutout", { p = p }) end
    local ok, msg = tensor.gradcheck(f, { x }, { secondOrder = true })
    check(ok, "p = " .. p .. ": " .. msg)
  end
  local D = nn.Sequential(nn.Conv2d(2, 4, 3, { padding = 1 }), nn.LeakyReLU(0.2), nn.Conv2d(4, 1, 5)):double()
  local real = tensor.randn(3, 2, 5, 5, { dtype = "float64" })
  local r1 = gan.r1Penalty(function(v) return D(gan.diffAugment(v, "color,translation,cutout")) end, real, { gamma = 10 })
  r1:backward()
  for name, p in D:namedParameters() do    -- biases do not change ∇x D, so R1 has no gradient for them
    if p:dim() > 1 then check(p.grad and p.grad:abs():max():item() > 0, "R1's gradient reaches " .. name) end
  end
end)

T.test("ADA: p climbs while D is sure of the reals, falls when it is not, by batch·interval/(kimg·1000)", function()
  check(gan.AdaptiveAugment().kimg == 500, "stylegan2-ada's ada_kimg is 500")
  local ada = gan.AdaptiveAugment { target = 0.6, interval = 4, kimg = 1 }
  for _ = 1, 4 do ada:observe(tensor.ones(50, 1)) end          -- sign 1 > 0.6
  close(ada.p, 200 / 1000, 1e-12, 0)
  for _ = 1, 8 do ada:observe(-tensor.ones(50, 1)) end
  check(ada.p == 0, "clamped at 0")
  -- no clamp at 1, as stylegan2-ada: 10 intervals of 200 images take p to 2, and the way back
  -- below 1 takes as many intervals as the overshoot (augmenting is as at p = 1 meanwhile)
  for _ = 1, 40 do ada:observe(tensor.ones(50, 1)) end
  close(ada.p, 2, 1e-12, 0)
  for _ = 1, 20 do ada:observe(-tensor.ones(50, 1)) end
  close(ada.p, 1, 1e-12, 0)
  local copy = gan.AdaptiveAugment { target = 0.6, interval = 4, kimg = 1 }
  copy:load { p = 1.5 }
  check(copy.p == 1.5, "a saved p above 1 loads")
  checkError("target must be in [-1, 1]", gan.AdaptiveAugment, { target = 2 })
  checkError("finite number >= 0", gan.AdaptiveAugment, { p = -0.1 })
  checkError("finite number >= 0", function() copy:load { p = 0 / 0 } end)
  -- the scripts' option: p above 1 augments every image (diffAugment's p is clamped to 1)
  local aids = training.SmallData({ diffAugment = "cutout", adaTarget = 0.6, adaKimg = 500, lecam = 0 },
                                  { smallData = { ada = { p = 3 } } })
  local x = tensor.ones(64, 1, 4, 4)
  local out = aids:augment(x)
  for i = 1, 64 do check(out[i]:sum():item() < 16, "image " .. i .. " was cut out") end
end)

T.test("LeCam: the regularizer and its moving averages as google/lecam-gan computes them", function()
  local default = gan.LeCam()
  check(default.decay == 0.9 and default.start == 1000, "the BigGAN path's ema_losses(decay 0.9, start_itr 1000)")
  check(not default:applies(1000) and default:applies(1001), "the penalty applies after iteration 1000, as itr > start_itr")
  local lc = gan.LeCam { decay = 0.9, start = 2 }
  local dReal, dFake = tensor.new { 1, 3 }, tensor.new { -2, 0.5 }
  lc:update(dReal, dFake, 1)                       -- before start: the latest means
  check(lc.real == 2 and lc.fake == -0.75)
  lc:update(tensor.new { 0, 0 }, tensor.new { 0, 0 }, 2)
  close(lc.real, 1.8, 1e-12, 0)
  close(lc.fake, -0.675, 1e-12, 0)
  -- mean(relu(dReal - fake)^2) + mean(relu(real - dFake)^2)
  local want = ((1 + 0.675) ^ 2 + (3 + 0.675) ^ 2) / 2 + ((1.8 + 2) ^ 2 + (1.8 - 0.5) ^ 2) / 2
  close(lc:penalty(dReal, dFake):item(), want, 1e-5, 1e-6)
  checkError("decay must be in [0, 1)", gan.LeCam, { decay = 1 })
  -- the scripts' D loss: unchanged up to lecamStart, the penalty added after it
  local aids = training.SmallData({ diffAugment = "", adaTarget = 0, lecam = 0.5, lecamDecay = 0.9, lecamStart = 3 })
  local loss = tensor.new(1.0)
  for iter = 1, 3 do check(aids:dLoss(loss, dReal, dFake, iter):item() == 1, "no penalty at iteration " .. iter) end
  local a = aids.lecam
  local real, fake = a.real * 0.9 + 2 * 0.1, a.fake * 0.9 - 0.75 * 0.1
  local expected = 1 + 0.5 * (((1 - fake) ^ 2 + (3 - fake) ^ 2) / 2
    + (math.max(0, real + 2) ^ 2 + math.max(0, real - 0.5) ^ 2) / 2)
  close(aids:dLoss(loss, dReal, dFake, 4):item(), expected, 1e-5, 1e-6)
end)

T.test("gradient accumulation: two half batches give the gradients of one full batch", function()
  tensor.manualSeed(11)
  local G = biggan.Generator { resolution = 32, ch = 2, dimZ = 16, sharedDim = 8, numClasses = 3, outChannels = 1 }
  local D = biggan.Discriminator { resolution = 32, ch = 2, numClasses = 3, inChannels = 1 }
  G:eval(); D:eval()      -- BatchNorm's statistics and SN's power step are what accumulation may not equal
  -- float64: the sum of two halves and the whole batch round differently, and this tiny D's
  -- gradients reach 1e7, so float32 would compare GEMM kernels' rounding, not accumulation
  G:double(); D:double()
  local f64 = { dtype = "float64" }
  local z, y, real = tensor.randn(8, 16, f64), tensor.new { 1, 2, 3, 1, 2, 3, 1, 2 }, tensor.rand(8, 1, 32, 32, f64) * 2 - 1
  local function dLoss(idx)
    local fake = tensor.noGrad(function() return G(z:indexSelect(1, idx), G:embed(y:indexSelect(1, idx))) end)
    local out = D(tensor.cat({ fake, real:indexSelect(1, idx) }, 1), tensor.cat({ y:indexSelect(1, idx), y:indexSelect(1, idx) }, 1))
    return gan.hingeD(out:narrow(1, idx:numel() + 1, idx:numel()), out:narrow(1, 1, idx:numel()))
  end
  local function gLoss(idx) return gan.hingeG(D(G(z:indexSelect(1, idx), G:embed(y:indexSelect(1, idx))), y:indexSelect(1, idx))) end
  local halves = { tensor.new { 1, 2, 3, 4 }, tensor.new { 5, 6, 7, 8 } }
  local all = tensor.arange(1, 9)
  for _, case in ipairs { { D, dLoss }, { G, gLoss } } do
    local model, lossOf = case[1], case[2]
    G:zeroGrad(); D:zeroGrad()
    lossOf(all):backward()
    local want = {}
    for i, p in ipairs(model:parameters()) do want[i] = p.grad:clone() end
    G:zeroGrad(); D:zeroGrad()
    local mean = training.accumulated(2, function(k) return lossOf(halves[k]) end)
    for i, p in ipairs(model:parameters()) do close(p.grad, want[i], 1e-9, 1e-9, "parameter " .. i) end
    close(mean:item(), lossOf(all):item(), 1e-12, 1e-12, "the mean loss")
  end
end)

T.test("the overfitting probe: D's mean output on its training images against images it never saw", function()
  local opt = { dataset = "fashion-mnist", dataRoot = "", resolution = 32, perClass = 20, seed = 4 }
  local ds = data.fashionMNIST({ split = "train" }):subset(20, 4)           -- 200 images
  -- a D that has memorized its training set: 1 on an image of it, 0 on any other
  local function fingerprint(img) return ("%.5f/%.5f"):format(img:sum():item(), (img * img):sum():item()) end
  local all = data.Loader(ds, { batchSize = ds.size, shuffle = false, transform = { data.pad(2), data.scale(-1, 1) } }):next()
  local seen = {}
  for i = 1, ds.size do seen[fingerprint(all[i])] = true end
  local calls = {}
  local memorizing = setmetatable({ namedBuffers = function() return pairs({}) end }, { __call = function(_, x, y)
    calls[#calls + 1] = { n = x:size(1), shape = table.concat(x:shape(), "x"), labels = ("%d..%d"):format(y:min():item(), y:max():item()) }
    local out = {}
    for i = 1, x:size(1) do out[i] = seen[fingerprint(x[i])] and 1 or 0 end
    return tensor.new(out)
  end })
  local probe = training.overfitProbe(opt, ds, 150, memorizing)
  local dTrain, dHeldOut = probe()
  check(dTrain == 1, "every training image is one D has seen: " .. dTrain)
  check(dHeldOut < 0.02, "the held-out images are the test split's: " .. dHeldOut)
  check(#calls == 2 and calls[1].n == 150 and calls[2].n == 150, "150 images each")
  check(calls[1].shape == "150x1x32x32" and calls[2].labels == "1..10", "padded to 32x32 as the loader gives them, with labels: "
    .. calls[1].shape .. " " .. calls[2].labels)
  local again = { probe() }
  check(again[1] == dTrain and again[2] == dHeldOut, "the same images at every call")
  local whole = training.overfitProbe(opt, ds, 1000, memorizing)
  whole()
  check(calls[#calls - 1].n == 200, "n beyond the training set: all of it")
  check(training.overfitProbe({ dataset = "folder", dataRoot = "", resolution = 32 }, ds, 10, memorizing) == nil,
    "no test split, no probe")
  -- a real D (spectral norm's u is a buffer its forward steps) and the global generator: unchanged
  local D = biggan.Discriminator { resolution = 32, ch = 2, numClasses = 10, inChannels = 1 }
  D:train()
  local buffers = {}
  for name, b in D:namedBuffers() do buffers[name] = b:clone() end
  tensor.manualSeed(12)
  local rng = tensor.getRNGState()
  local real = training.overfitProbe(opt, ds, 40, D)
  local first = { real() }
  check(first[1] == first[1] and first[2] == first[2] and first[1] ~= first[2], "two means: " .. first[1] .. " " .. first[2])
  check(table.concat(tensor.getRNGState(), ",") == table.concat(rng, ","), "the global generator untouched")
  for name, b in D:namedBuffers() do check((b - buffers[name]):abs():max():item() == 0, name .. " unchanged") end
  check(#buffers == 0 and next(buffers) ~= nil, "D has buffers to keep")
end)

T.finish("small_data")
