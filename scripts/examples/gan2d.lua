-- gan2d.lua: a small GAN learns a ring of 8 Gaussians, the classic test of mode collapse.
-- In the shape of dcgan.torch: options, the networks, then per iteration (1) update D and
-- (2) update G. Prints the losses and, at the end, how many of the 8 modes the generator
-- covers (a mode counts when at least 2% of samples fall within 4 std of its centre).
--
--   luagan scripts/examples/gan2d.lua [--iters=1500] [--seed=1] ...
local options = require("options")

local spec = {
  { "iters", 1500, "training iterations" },
  { "batchSize", 256, "samples per batch" },
  { "nz", 4, "latent size" },
  { "hidden", 128, "hidden units of G and D" },
  { "lr", 1e-3, "Adam learning rate" },
  { "beta1", 0.5, "Adam beta1" },
  { "beta2", 0.9, "Adam beta2" },
  { "r1", 0.1, "R1 penalty weight on D (0 turns it off)" },
  { "modes", 8, "Gaussians on the ring" },
  { "radius", 2, "ring radius" },
  { "std", 0.05, "standard deviation of each Gaussian" },
  { "seed", 1, "random seed" },
  { "printEvery", 250, "iterations between progress lines" },
  { "quiet", false, "print only the summary" },
}

local M = {}

--- A batch of real samples: n points, each from a random mode of the ring.
local function sampleReal(opt, n)
  local angle = tensor.randint(0, opt.modes - 1, n) * (2 * math.pi / opt.modes)
  local centres = tensor.cat({ angle:cos():unsqueeze(2), angle:sin():unsqueeze(2) }, 2) * opt.radius
  return centres + tensor.randn(n, 2) * opt.std
end

--- How many modes hold at least 2% of the samples within 4 std of their centre.
function M.coverage(opt, samples)
  local n = samples:size(1)
  local covered, quality = 0, 0
  for k = 0, opt.modes - 1 do
    local a = k * 2 * math.pi / opt.modes
    local centre = tensor.new { math.cos(a) * opt.radius, math.sin(a) * opt.radius }
    local near = (samples - centre):norm(2):lt(4 * opt.std):sum():item()
    quality = quality + near
    if near >= 0.02 * n then covered = covered + 1 end
  end
  return covered, quality / n
end

function M.train(opt)
  tensor.manualSeed(opt.seed)
  local G = nn.Sequential(nn.Linear(opt.nz, opt.hidden), nn.ReLU(), nn.Linear(opt.hidden, opt.hidden), nn.ReLU(),
    nn.Linear(opt.hidden, 2))
  local D = nn.Sequential(nn.Linear(2, opt.hidden), nn.LeakyReLU(0.2), nn.Linear(opt.hidden, opt.hidden),
    nn.LeakyReLU(0.2), nn.Linear(opt.hidden, 1))
  local optG = optim.Adam(G:parameters(), { lr = opt.lr, betas = { opt.beta1, opt.beta2 } })
  local optD = optim.Adam(D:parameters(), { lr = opt.lr, betas = { opt.beta1, opt.beta2 } })
  local t0 = tensor.clock()
  for iter = 1, opt.iters do
    -- (1) update D: non-saturating logistic loss, plus R1 on the reals
    optD:zeroGrad()
    local real = sampleReal(opt, opt.batchSize)
    local fake = tensor.noGrad(function() return G(tensor.randn(opt.batchSize, opt.nz)) end)
    local lossD = gan.logisticD(D(real), D(fake))
    if opt.r1 > 0 then lossD = lossD + gan.r1Penalty(D, real, { gamma = opt.r1 }) end
    lossD:backward()
    optD:step()
    -- (2) update G: maximize log D(G(z))
    optG:zeroGrad()
    local lossG = gan.logisticG(D(G(tensor.randn(opt.batchSize, opt.nz))))
    lossG:backward()
    optG:step()
    if not opt.quiet and (iter == 1 or iter % opt.printEvery == 0) then
      print(("iter %5d  lossD %.4f  lossG %.4f  (%.1f s)"):format(iter, lossD:item(), lossG:item(), tensor.clock() - t0))
    end
  end
  local samples = tensor.noGrad(function() return G(tensor.randn(2000, opt.nz)) end)
  local covered, quality = M.coverage(opt, samples)
  return { covered = covered, quality = quality, seconds = tensor.clock() - t0, G = G, D = D }
end

if arg and arg[0] and arg[0]:match("gan2d%.lua$") then
  local opt = options.cli(arg, spec, "A small GAN on a ring of Gaussians.")
  local r = M.train(opt)
  print(("modes covered: %d of %d; %.1f%% of samples within 4 std of a mode; %.1f s"):format(
    r.covered, opt.modes, 100 * r.quality, r.seconds))
end

M.spec = spec
return M
