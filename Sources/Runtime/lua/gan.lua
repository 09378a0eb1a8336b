-- gan.lua: GAN losses and regularizers, written with tensor ops (autograd does the rest).
-- D outputs are raw scores (logits), shaped (N) or (N, 1).
local gan, tensor, nn = gan, tensor, nn

--- Hinge loss for D (BigGAN, Lim & Ye 2017): mean(relu(1 - D(x))) + mean(relu(1 + D(G(z)))).
-- Returns the total and its real and fake parts.
function gan.hingeD(dReal, dFake)
  local real, fake = (1 - dReal):relu():mean(), (1 + dFake):relu():mean()
  return real + fake, real, fake
end
--- Hinge loss for G: -mean(D(G(z))).
function gan.hingeG(dFake) return -dFake:mean() end

--- Non-saturating logistic loss for D (Goodfellow et al. 2014), written with softplus so
-- logits of ±300 stay finite: mean(softplus(-D(x))) + mean(softplus(D(G(z)))).
function gan.logisticD(dReal, dFake)
  local real, fake = (-dReal):softplus():mean(), dFake:softplus():mean()
  return real + fake, real, fake
end
--- Non-saturating logistic loss for G: mean(softplus(-D(G(z)))) = -mean(log σ(D(G(z)))).
function gan.logisticG(dFake) return (-dFake):softplus():mean() end

--- Wasserstein critic loss (Arjovsky et al. 2017): mean(D(G(z))) - mean(D(x)).
function gan.wassersteinD(dReal, dFake) return dFake:mean() - dReal:mean() end
--- Wasserstein generator loss: -mean(D(G(z))).
function gan.wassersteinG(dFake) return -dFake:mean() end

--- Least-squares loss for D (Mao et al. 2017, a = 0, b = c = 1):
-- ½mean((D(x) - realTarget)²) + ½·fakeWeight·mean((D(G(z)) - fakeTarget)²).
-- PGGAN's variant (reals to 0, fakes to 1, fake weight 0.1, no ½) is written out in its script.
function gan.lsganD(dReal, dFake, opts)
  opts = opts or {}
  local rt, ft, w = opts.realTarget or 1, opts.fakeTarget or 0, opts.fakeWeight or 1
  local real, fake = ((dReal - rt) ^ 2):mean() * 0.5, ((dFake - ft) ^ 2):mean() * (0.5 * w)
  return real + fake, real, fake
end
--- Least-squares loss for G: ½mean((D(G(z)) - target)²), target 1.
function gan.lsganG(dFake, opts)
  return ((dFake - ((opts or {}).target or 1)) ^ 2):mean() * 0.5
end

local function checkOpts(fname, opts, allowed)
  opts = opts or {}
  if type(opts) ~= "table" then error(("%s: options must be a table, got %s"):format(fname, type(opts)), 3) end
  for k in pairs(opts) do
    if not allowed[k] then
      local names = {}
      for n in pairs(allowed) do names[#names + 1] = "'" .. n .. "'" end
      table.sort(names)
      error(("%s: unknown option '%s'; options are %s"):format(fname, tostring(k), table.concat(names, ", ")), 3)
    end
  end
  return opts
end

local function checkD(fname, D)
  if not (type(D) == "function" or nn.isModule(D)) then
    error(("bad argument #1 to '%s' (a discriminator module or function expected, got %s)"):format(fname, type(D)), 3)
  end
end

--- WGAN-GP's gradient penalty (Gulrajani et al. 2017, PGGAN's form):
--   x̂ = real + u·(fake - real), one u ~ U(0, 1) per sample,
--   λ/γ² · mean((‖∇D(x̂)‖·gradScale - γ)²)
-- computed by double backprop, so its gradient reaches D's parameters. opts: lambda (10),
-- target γ (1), gradScale (1; PGGAN at native resolution uses 1/2^floor(lod)), u (the
-- interpolation weights, shape (N); drawn from tensor.rand when absent). Extra arguments are
-- passed to D. Returns the penalty and the per-sample norms.
function gan.gradientPenalty(D, real, fake, opts, ...)
  checkD("gradientPenalty", D)
  opts = checkOpts("gradientPenalty", opts, { lambda = true, target = true, gradScale = true, u = true })
  local lambda, target, scale = opts.lambda or 10, opts.target or 1, opts.gradScale or 1
  real, fake = real:detach(), fake:detach()
  local shape = { real:size(1) }
  for i = 2, real:dim() do shape[i] = 1 end
  local u = opts.u and opts.u:detach():reshape(shape) or tensor.rand(shape, { dtype = real:dtype() })
  local mixed = (real + (fake - real) * u):requiresGrad(true)
  local g = tensor.grad(D(mixed, ...):sum(), mixed, { createGraph = true })[1]
  local norms = g:reshape(real:size(1), -1):norm(2) * scale
  return ((norms - target) ^ 2):mean() * (lambda / (target * target)), norms
end

--- PGGAN's drift term: eps · mean(D(x)²), on real scores (eps 0.001).
function gan.driftPenalty(dReal, eps) return (dReal ^ 2):mean() * (eps or 0.001) end

--- R1 (Mescheder et al. 2018): γ/2 · mean over samples of ‖∇ₓD(x)‖² on real data, by double
-- backprop. opts: gamma (10). Extra arguments are passed to D.
function gan.r1Penalty(D, real, opts, ...)
  checkD("r1Penalty", D)
  opts = checkOpts("r1Penalty", opts, { gamma = true })
  local gamma = opts.gamma or 10
  local x = real:detach():requiresGrad(true)
  local g = tensor.grad(D(x, ...):sum(), x, { createGraph = true })[1]
  return (g * g):reshape(x:size(1), -1):sum(2):mean() * (gamma / 2)
end

-- The set of parameters to skip: opts.exclude is a module or a list of tensors (or modules).
local function excludedSet(opts)
  local set = {}
  local ex = opts.exclude
  if ex == nil then return set end
  if nn.isModule(ex) then ex = ex:parameters() end
  if type(ex) ~= "table" then error("orthogonal regularization: option 'exclude' must be a module or a list of tensors", 3) end
  for _, p in ipairs(ex) do
    if nn.isModule(p) then for _, q in ipairs(p:parameters()) do set[q] = true end else set[p] = true end
  end
  return set
end

local function orthoWeights(module, opts, fname)
  if not nn.isModule(module) then
    error(("bad argument #1 to '%s' (luagan.Module expected, got %s)"):format(fname, type(module)), 3)
  end
  local excluded = excludedSet(checkOpts(fname, opts, { exclude = true }))
  local out = {}
  for _, p in ipairs(module:parameters()) do
    if p:dim() >= 2 and not excluded[p] then out[#out + 1] = p end
  end
  return out
end

--- BigGAN's orthogonal regularization as a loss term (the paper's R_β, Brock et al. 2019 §3.1):
--   beta · Σ_W ‖W Wᵀ ⊙ (1 - I)‖²_F
-- over every parameter of 2 or more dims viewed as (out, -1) (rows are filters), skipping
-- opts.exclude. Differentiable: add it to G's loss. Its gradient is 4·beta·(WWᵀ⊙(1-I))W.
-- Note the factor between the two forms: BigGAN-PyTorch's --G_ortho β (gan.addOrthoGrad(G, β))
-- equals gan.orthoReg(G, β/2).
function gan.orthoReg(module, beta, opts)
  if type(beta) ~= "number" then error(("bad argument #2 to 'orthoReg' (number expected, got %s)"):format(type(beta)), 2) end
  local total
  for _, p in ipairs(orthoWeights(module, opts, "orthoReg")) do
    local w = p:reshape(p:size(1), -1)
    local off = w:mm(w:t()) * (1 - tensor.eye(w:size(1), { dtype = p:dtype() }))
    local term = (off * off):sum()
    total = total and total + term or term
  end
  return total and total * beta or tensor.zeros()
end

--- BigGAN-PyTorch's orthogonal regularization (utils.ortho): after backward, adds
--   2·beta·(W Wᵀ ⊙ (1 - I))·W
-- straight into each weight's .grad, the gradient of (beta/2)·‖WWᵀ⊙(1-I)‖²_F. So beta here is
-- the code's --G_ortho (1e-4 in the paper's recipe); gan.orthoReg(m, beta/2) gives the same
-- gradient as a loss term. Uses W(WᵀW) - diag(‖wᵢ‖²)W when W has more rows than columns.
function gan.addOrthoGrad(module, beta, opts)
  if type(beta) ~= "number" then error(("bad argument #2 to 'addOrthoGrad' (number expected, got %s)"):format(type(beta)), 2) end
  local weights = orthoWeights(module, opts, "addOrthoGrad")
  tensor.noGrad(function()
    for _, p in ipairs(weights) do
      local w = p:detach():reshape(p:size(1), -1)
      local g
      if w:size(1) <= w:size(2) then
        g = (w:mm(w:t()) * (1 - tensor.eye(w:size(1), { dtype = p:dtype() }))):mm(w)
      else
        g = w:mm(w:t():mm(w)) - w * (w * w):sum(2, true)
      end
      g = (g * (2 * beta)):reshape(p:shape())
      p.grad = p.grad and p.grad + g or g
    end
  end)
end

--- n samples of a dim-dimensional truncated normal: |z| > threshold resampled (BigGAN's
-- truncation trick as the paper states it).
function gan.truncatedNoise(n, dim, threshold, opts)
  return tensor.truncNormal({ n, dim }, threshold, opts)
end

-- Small-data augmentation and regularization ----------------------------------------------

local function sizes(x, fname)
  if not tensor.isTensor(x) or x:dim() ~= 4 then
    error(("bad argument #1 to '%s' (an (N, C, H, W) tensor expected, got %s)"):format(fname,
      tensor.isTensor(x) and ("a " .. x:dim() .. "-d tensor") or type(x)), 3)
  end
  local s = x:shape()
  return s[1], s[2], s[3], s[4]
end

-- DiffAugment's transforms (Zhao et al. 2020, mit-han-lab/data-efficient-gans,
-- DiffAugment_pytorch.py), each with per-sample random parameters and built from
-- differentiable ops only, so G's gradient (and R1's double backprop) flows through them.
local augment = {}
-- color: brightness + U(-0.5, 0.5); saturation ×U(0, 2) around the channel mean; contrast
-- ×U(0.5, 1.5) around the image mean.
function augment.color(x, n)
  x = x + (tensor.rand(n, 1, 1, 1) - 0.5)
  local m = x:mean(2, true)
  x = (x - m) * (tensor.rand(n, 1, 1, 1) * 2) + m
  m = x:mean({ 2, 3, 4 }, true)
  return (x - m) * (tensor.rand(n, 1, 1, 1) + 0.5) + m
end
-- translation by up to ratio·size pixels each way (integers in [-s, s]), the vacated border
-- zero: a gather from the zero-padded image at clamped coordinates, as the reference indexes.
function augment.translation(x, n, o)
  local _, c, h, w = x:size(1), x:size(2), x:size(3), x:size(4)
  local sh, sw = math.floor(h * o.translationRatio + 0.5), math.floor(w * o.translationRatio + 0.5)
  local f64 = { dtype = "float64" }
  local tx = tensor.randint(-sh, sh, n):to("float64"):reshape(n, 1, 1)
  local ty = tensor.randint(-sw, sw, n):to("float64"):reshape(n, 1, 1)
  local rows = (tensor.arange(0, h, 1, f64):reshape(1, h, 1) + tx + 1):clamp(0, h + 1)
  local cols = (tensor.arange(0, w, 1, f64):reshape(1, 1, w) + ty + 1):clamp(0, w + 1)
  local batch = tensor.arange(0, n, 1, f64):reshape(n, 1, 1) * ((h + 2) * (w + 2))
  local index = (batch + rows * (w + 2) + cols):reshape(n * h * w) + 1
  local pixels = x:pad({ 1, 1, 1, 1 }):permute(1, 3, 4, 2):reshape(n * (h + 2) * (w + 2), c)   -- (N·(H+2)·(W+2), C)
  return pixels:indexSelect(1, index):reshape(n, h, w, c):permute(1, 4, 2, 3)
end
-- cutout: one zeroed square of ratio·size per image, centred at a uniform position (clipped
-- at the border).
function augment.cutout(x, n, o)
  local h, w = x:size(3), x:size(4)
  local ch, cw = math.floor(h * o.cutoutRatio + 0.5), math.floor(w * o.cutoutRatio + 0.5)
  local top = tensor.randint(0, h - ch % 2, n):reshape(n, 1, 1) - ch // 2
  local left = tensor.randint(0, w - cw % 2, n):reshape(n, 1, 1) - cw // 2
  local r, c = tensor.arange(0, h):reshape(1, h, 1), tensor.arange(0, w):reshape(1, 1, w)
  local inRows = r:ge(top):mul(r:le(top + (ch - 1)))
  local inCols = c:ge(left):mul(c:le(left + (cw - 1)))
  return x * (1 - inRows * inCols):unsqueeze(2):to(x:dtype())
end

--- gan.diffAugment(x, policy, opts): DiffAugment (Zhao et al. 2020) on a batch x (N, C, H, W)
-- in [-1, 1]: policy is a comma-separated list of "color", "translation", "cutout" (the
-- paper's choice is all three), applied in that order with fresh random parameters per
-- sample. Apply it to every image D sees, real and fake, in the D step and the G step. opts:
-- p (1: always; below 1, each transform is applied to each sample with probability p, as ADA
-- does), translationRatio (1/8), cutoutRatio (1/2).
function gan.diffAugment(x, policy, opts)
  local n = sizes(x, "diffAugment")
  if type(policy) ~= "string" then error(("bad argument #2 to 'diffAugment' (policy string expected, got %s)"):format(type(policy)), 2) end
  opts = checkOpts("diffAugment", opts, { p = true, translationRatio = true, cutoutRatio = true })
  local o = { p = opts.p or 1, translationRatio = opts.translationRatio or 0.125, cutoutRatio = opts.cutoutRatio or 0.5 }
  for k, v in pairs(o) do
    if type(v) ~= "number" or v < 0 or v > 1 then
      error(("diffAugment: option '%s' must be a number in [0, 1], got %s"):format(k, tostring(v)), 2)
    end
  end
  for name in policy:gmatch("[^,%s]+") do
    local f = augment[name]
    if not f then
      error(("diffAugment: unknown transform '%s' in policy '%s' (known: color, translation, cutout)"):format(name, policy), 2)
    end
    if o.p >= 1 then
      x = f(x, n, o)
    elseif o.p > 0 then
      local apply = tensor.rand(n):lt(o.p):to(x:dtype()):reshape(n, 1, 1, 1)
      x = x + apply * (f(x, n, o) - x)
    end
  end
  return x
end

--- gan.LeCam{decay = 0.9, start = 1000}: LeCam regularization (Tseng et al. 2021, the BigGAN
-- path of google/lecam-gan): R = mean(relu(D(x) - α_fake)²) + mean(relu(α_real - D(G(z)))²),
-- where α_real, α_fake are exponential moving averages of D's mean outputs (decay 0.9; up to
-- iteration `start` they are the latest means). lc:update(dReal, dFake, iter) with D's outputs
-- of each D step, then, when lc:applies(iter) (iter > start, as the reference), add
-- lc:penalty(dReal, dFake) times λ to D's loss (the paper uses 0.3 for BigGAN on CIFAR).
-- lc:state() / lc:load(state) keep it in the checkpoint.
local LeCam = {}
LeCam.__index = LeCam
LeCam.__name = "gan.LeCam"
function gan.LeCam(opts)
  opts = checkOpts("LeCam", opts, { decay = true, start = true })
  local decay, start = opts.decay or 0.9, opts.start or 1000
  if type(decay) ~= "number" or decay < 0 or decay >= 1 then
    error(("LeCam: decay must be in [0, 1), got %s"):format(tostring(decay)), 2)
  end
  if math.type(start) ~= "integer" or start < 0 then
    error(("LeCam: start must be a non-negative integer, got %s"):format(tostring(start)), 2)
  end
  return setmetatable({ decay = decay, start = start, real = 0.0, fake = 0.0 }, LeCam)
end
function LeCam:update(dReal, dFake, iter)
  if getmetatable(self) ~= LeCam then error("LeCam:update must be called with ':'", 2) end
  if not (tensor.isTensor(dReal) and tensor.isTensor(dFake)) then
    error("bad argument to 'LeCam:update' (D's outputs on reals and fakes expected)", 2)
  end
  if math.type(iter) ~= "integer" then
    error(("bad argument #3 to 'LeCam:update' (integer iteration expected, got %s)"):format(type(iter)), 2)
  end
  local d = iter < self.start and 0 or self.decay
  self.real = self.real * d + dReal:detach():mean():item() * (1 - d)
  self.fake = self.fake * d + dFake:detach():mean():item() * (1 - d)
end
function LeCam:applies(iter)
  if getmetatable(self) ~= LeCam then error("LeCam:applies must be called with ':'", 2) end
  if math.type(iter) ~= "integer" then
    error(("bad argument #1 to 'LeCam:applies' (integer iteration expected, got %s)"):format(type(iter)), 2)
  end
  return iter > self.start
end
function LeCam:penalty(dReal, dFake)
  if getmetatable(self) ~= LeCam then error("LeCam:penalty must be called with ':'", 2) end
  if not (tensor.isTensor(dReal) and tensor.isTensor(dFake)) then
    error("bad argument to 'LeCam:penalty' (D's outputs on reals and fakes expected)", 2)
  end
  return (dReal - self.fake):relu():pow(2):mean() + (-dFake + self.real):relu():pow(2):mean()
end
function LeCam:state() return { real = self.real, fake = self.fake } end
function LeCam:load(s)
  if type(s) ~= "table" or type(s.real) ~= "number" or type(s.fake) ~= "number" then
    error("LeCam:load: expected a table from LeCam:state()", 2)
  end
  self.real, self.fake = s.real, s.fake
end

--- gan.AdaptiveAugment{target = 0.6, interval = 4, kimg = 500, p = 0}: ADA's augmentation
-- probability (Karras et al. 2020, stylegan2-ada's training_loop.py): every `interval` D steps,
-- r_t = E[sign(D(x_real))] over them, and p moves by sign(r_t - target)·(images seen in the
-- interval)/(kimg·1000), clamped below at 0 only, as the reference: p may pass 1 (augmenting
-- as at 1) and then takes as long to come back as it overshot. So p can go from 0 to 1 in `kimg`
-- thousand images (stylegan2-ada uses 500, 100 when resuming a trained network).
-- ada:observe(dReal) after each D step; ada.p for diffAugment's {p = math.min(1, p)};
-- state()/load() for the checkpoint.
local Adaptive = {}
Adaptive.__index = Adaptive
Adaptive.__name = "gan.AdaptiveAugment"
function gan.AdaptiveAugment(opts)
  opts = checkOpts("AdaptiveAugment", opts, { target = true, interval = true, kimg = true, p = true })
  local self = setmetatable({ target = opts.target or 0.6, interval = opts.interval or 4, kimg = opts.kimg or 500,
                              p = opts.p or 0.0, sum = 0.0, count = 0, steps = 0 }, Adaptive)
  if type(self.target) ~= "number" or self.target < -1 or self.target > 1 then error("AdaptiveAugment: target must be in [-1, 1]", 2) end
  if math.type(self.interval) ~= "integer" or self.interval < 1 then error("AdaptiveAugment: interval must be a positive integer", 2) end
  if type(self.kimg) ~= "number" or self.kimg <= 0 then error("AdaptiveAugment: kimg must be positive", 2) end
  if type(self.p) ~= "number" or not (self.p >= 0 and self.p < math.huge) then
    error("AdaptiveAugment: p must be a finite number >= 0", 2)
  end
  return self
end
function Adaptive:observe(dReal)
  if getmetatable(self) ~= Adaptive then error("AdaptiveAugment:observe must be called with ':'", 2) end
  if not tensor.isTensor(dReal) then
    error(("bad argument #1 to 'observe' (D's outputs on reals expected, got %s)"):format(type(dReal)), 2)
  end
  local s = dReal:detach()
  self.sum, self.count, self.steps = self.sum + s:sign():sum():item(), self.count + s:numel(), self.steps + 1
  if self.steps % self.interval == 0 then
    local rt = self.sum / self.count
    local adjust = (rt > self.target and 1 or rt < self.target and -1 or 0) * self.count / (self.kimg * 1000)
    self.p = math.max(0, self.p + adjust)
    self.sum, self.count = 0.0, 0
    return rt
  end
end
function Adaptive:state() return { p = self.p, sum = self.sum, count = self.count, steps = self.steps } end
function Adaptive:load(s)
  if type(s) ~= "table" or type(s.p) ~= "number" or not (s.p >= 0 and s.p < math.huge) then
    error("AdaptiveAugment:load: expected a table from state() (p a finite number >= 0)", 2)
  end
  self.p, self.sum, self.count, self.steps = s.p, s.sum or 0.0, s.count or 0, s.steps or 0
end
