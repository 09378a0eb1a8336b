-- PGGAN's recipe (scripts/lib/recipes/pggan.lua) and what its main job reports: the growth
-- schedules, phases and progress status, Table 1's switches, TensorFlow's Adam epsilon, and
-- the mode-coverage metric.
local T = require("testing")
local check, close = T.check, T.close
local pggan = require("models.pggan")
local recipe = require("recipes.pggan")

T.test("growth by shares of the run: stabilise 4x4, then fade in and stabilise each level", function()
  local lodAt = recipe.shareSchedule { resolution = 32, levelShares = { [4] = 1, [8] = 1, [16] = 1, [32] = 1 }, fadeShare = 0.5 }
  -- four equal shares: 4x4 on [0, .25), fade to 8 on [.25, .375), 8x8 on [.375, .5), ...
  local expected = { { 0, 3 }, { 0.2, 3 }, { 0.25, 3 }, { 0.3125, 2.5 }, { 0.375, 2 }, { 0.45, 2 }, { 0.5625, 1.5 }, { 0.7, 1 },
                     { 0.8125, 0.5 }, { 0.875, 0 }, { 1, 0 }, { 1.5, 0 } }
  for _, e in ipairs(expected) do close(lodAt(e[1]), e[2], 1e-12, 0, ("progress %g"):format(e[1])) end
  local level, t = pggan.levelOf(2.5, 32)
  check(level == 2 and t == 0.5 and pggan.resolutionOf(level) == 8, "lod 2.5: fading into 8x8")
  T.checkError("levelShares needs", function()
    return recipe.shareSchedule { resolution = 32, levelShares = { [4] = 1 }, fadeShare = 0.5 }
  end)
end)

T.test("the kimg schedule is train.py's: stabilise trainKimg, fade transKimg, clamp at 0", function()
  local o = { resolution = 32, trainKimg = 60, transKimg = 60 }
  for _, e in ipairs { { 0, 3 }, { 59, 3 }, { 90, 2.5 }, { 120, 2 }, { 300, 1 - 0 }, { 330, 0.5 }, { 360, 0 }, { 1000, 0 } } do
    close((pggan.schedule(e[1], o)), e[2], 1e-12, 0, ("kimg %g"):format(e[1]))
  end
end)

-- A tiny PGGAN run through the recipe for `iters` iterations with a given schedule.
local function tiny(opts)
  tensor.manualSeed(3)
  local o = { resolution = 16, latent = 8, fmapBase = 64, fmapMax = 8, mbstdGroup = opts.mbstdGroup or 4,
              equalized = opts.equalized ~= false, pixelnorm = opts.pixelnorm ~= false }
  local G, D = pggan.fromOptions(o, 1)
  local function adam(m) return optim.Adam(m:parameters(), { lr = 1e-3, betas = { 0, 0.99 }, epsilonHat = true }) end
  local reals = tensor.rand(8, 1, 16, 16) * 2 - 1
  local step = recipe.Step { G = G, D = D, optG = adam(G), optD = adam(D), Gs = optim.EMA(G, { decay = 0.999 }),
    opt = { resolution = 16, batchSize = 8, trainKimg = 0.024, transKimg = 0.04 }, schedule = opts.schedule,
    draw = { reals = function() return reals end } }
  local seconds = 0
  for iter = 1, opts.iters do
    seconds = seconds + 0.1
    step:advance(iter, seconds)
    step:updateD(iter)
    step:updateG(iter)
  end
  return step, G, D, seconds
end

T.test("phases, status and the estimate of what is left", function()
  local step, _, _, seconds = tiny { iters = 24 }
  local names = {}
  for i, r in ipairs(step:phaseTable(24, seconds)) do names[i] = r.name end
  check(table.concat(names, ",") == "4x4,fade 8x8,8x8,fade 16x16,16x16", table.concat(names, ","))
  check(step:status() == "level 3 (16x16)", step:status())
  local rest = step:remainingSeconds(0.5)       -- 0.5 kimg at 8 per iteration: about 38 more iterations
  check(rest and rest > 0, "an estimate once costs were measured")
end)

T.test("Table 1's switches build and train: no mbstd, no pixelnorm, no equalized learning rate", function()
  for _, o in ipairs { { mbstdGroup = 0 }, { pixelnorm = false }, { equalized = false } } do
    o.iters, o.schedule = 3, function() return 0 end
    local step, G, D = tiny(o)
    check(step.state.level == 3, "at full resolution from the start")
    check(tostring(D.mbstd):find(o.mbstdGroup == 0 and "Identity" or "MinibatchStdDev"), tostring(D.mbstd))
    check(tostring(G.pixelnorm):find(o.pixelnorm == false and "Identity" or "PixelNorm"), tostring(G.pixelnorm))
    check((tostring(G.conv4):find("equalized") ~= nil) == (o.equalized ~= false), tostring(G.conv4))
  end
end)

T.test("Adam's epsilon hat (TensorFlow's form, as the official code) against the formula", function()
  local g, eps, lr = 2e-7, 1e-6, 1e-2
  local p = tensor.zeros(1, { dtype = "float64" }):requiresGrad(true)
  local opt = optim.Adam({ p }, { lr = lr, betas = { 0, 0.99 }, eps = eps, epsilonHat = true })
  for _ = 1, 3 do
    p.grad = tensor.new({ g }, { dtype = "float64" })
    opt:step()
  end
  -- by hand, for a constant gradient and beta1 = 0 (m = g):
  -- p_t = p_{t-1} - lr·√(1-β2ᵗ)·g / (√v_t + eps) with v_t = (1 - β2ᵗ)·g²
  local q = 0
  for t = 1, 3 do
    local v = (1 - 0.99 ^ t) * g * g
    q = q - lr * math.sqrt(1 - 0.99 ^ t) * g / (math.sqrt(v) + eps)
  end
  close(p:item(), q, 1e-18, 1e-12, "epsilon hat")
  local torchForm = optim.Adam({ tensor.zeros(1):requiresGrad(true) }, { eps = eps })
  check(torchForm:stateDict().paramGroups[1].epsilonHat == false, "PyTorch's form by default")
end)

T.test("mode coverage: classes holding 1% of the samples, KL to uniform", function()
  local evaluation = require("evaluation")
  -- a classifier stand-in: the class is the first channel's mean pixel bucket
  local classifier = { featuresAndLogits = function(_, x)
    local logits = tensor.zeros(x:size(1), 10)
    for i = 1, x:size(1) do logits[i][math.floor((x[i][1][1][1] + 1) * 5) + 1] = 1 end
    return tensor.zeros(x:size(1), 4), logits
  end }
  local ref = { classifier = classifier, images = tensor.zeros(4, 1, 32, 32), split = "test" }
  -- 500 samples: 300 in class 1, 200 in class 2, none elsewhere
  local images = tensor.cat({ tensor.full({ 300, 1, 32, 32 }, -0.95), tensor.full({ 200, 1, 32, 32 }, -0.75) }, 1)
  local r = evaluation.metricsOf(images, nil, ref, { which = { "coverage" } })
  check(r.classesCovered == 2 and r.classCounts[1] == 300 and r.classCounts[2] == 200, "histogram")
  close(r.coverageKL, 0.6 * math.log(6) + 0.4 * math.log(4), 1e-12, 0, "KL(hist || uniform)")
end)

T.finish("pggan_recipe")
