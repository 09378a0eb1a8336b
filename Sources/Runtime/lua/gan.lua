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
