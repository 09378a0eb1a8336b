-- The smoke example scripts/examples/gan2d.lua: a GAN on a ring of 8 Gaussians must cover at
-- least 7 of the 8 modes, in under a minute.
local T = require("testing")
local options = require("options")
local gan2d = dofile("scripts/examples/gan2d.lua")

T.test("the generator covers at least 7 of the 8 modes", function()
  local opt = options.parse({ "--quiet" }, gan2d.spec)
  local r = gan2d.train(opt)
  print(("gan2d: %d of 8 modes covered, %.1f%% of samples near a mode, %.1f s"):format(r.covered, 100 * r.quality, r.seconds))
  T.check(r.covered >= 7, ("only %d modes covered"):format(r.covered))
  T.check(r.seconds < 60, ("trained in %.1f s"):format(r.seconds))
end)

T.test("the coverage measure counts only real modes", function()
  local opt = options.parse({}, gan2d.spec)
  local oneMode = tensor.new({ { 2, 0 } }):expand(100, 2) + tensor.randn(100, 2) * 0.01
  T.check(gan2d.coverage(opt, oneMode) == 1, "a collapsed generator covers one mode")
  T.check(gan2d.coverage(opt, tensor.randn(500, 2) * 0.1) == 0, "noise at the centre covers none")
end)

T.finish("gan2d")
