-- fixture_models.lua: models shared by the fixture generator and the tests.
--
-- SmallCNN mirrors the PyTorch SmallCNN in scripts/dev/fixtures/make_fixtures.py (same state
-- names), for the state-exchange test. Run as a script,
--   luagan scripts/dev/lib/fixture_models.lua write PATH
-- it writes a seeded SmallCNN's state dict (plus an input) for PyTorch to load.
local M = {}

local SmallCNN = nn.Module:extend("SmallCNN")
function SmallCNN:init()
  self.conv1 = nn.Conv2d(3, 8, 3, { padding = 1 })
  self.bn1 = nn.BatchNorm2d(8)
  self.conv2 = nn.SpectralNorm(nn.Conv2d(8, 8, 3, { padding = 1 }))
  self.fc = nn.Linear(8 * 4 * 4, 5)
end
function SmallCNN:forward(x)
  local h = self.bn1(self.conv1(x)):relu()
  h = self.conv2(h):leakyRelu(0.2):avgPool2d(2)
  return self.fc(h:flatten(2))
end
M.SmallCNN = SmallCNN

--- The seeded model and input whose state the fixture stores.
function M.seededSmallCNN()
  tensor.manualSeed(123)
  local m = SmallCNN()
  tensor.noGrad(function()
    m.bn1.running_mean:copy(tensor.randn(8) * 0.1)
    m.bn1.running_var:copy(tensor.rand(8) + 0.5)
  end)
  return m, tensor.randn(2, 3, 8, 8)
end

if arg and arg[0] and arg[0]:match("fixture_models%.lua$") and arg[1] == "write" then
  local m, x = M.seededSmallCNN()
  local sd = m:stateDict()
  sd.input = x
  tensor.save(assert(arg[2], "usage: fixture_models.lua write PATH"), sd)
  print("wrote " .. arg[2])
end

return M
