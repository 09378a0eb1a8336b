-- State exchange with PyTorch. A small CNN's state from torch loads into luagan and gives
-- torch's outputs (eval and train mode, and the same buffers after a training forward); a
-- state written by luagan loaded strictly into the torch module there, and luagan reproduces
-- the outputs torch computed from it. Fixtures: group "exchange" and luagan_cnn.safetensors.
local T = require("testing")
local fixtures = require("fixtures")
local models = require("fixture_models")
local f = fixtures.load("exchange")

T.test("PyTorch's state dict loads into luagan and gives the same outputs", function()
  local m = models.SmallCNN()
  m:loadStateDict(fixtures.prefixed(f, "torch.state"))
  m:eval()
  T.close(m(f["torch.input"]), f["torch.eval_out"], 1e-5, 1e-4, "eval output")
  m:train()
  T.close(m(f["torch.input"]), f["torch.train_out"], 1e-5, 1e-4, "train output")
  local after = fixtures.prefixed(f, "torch.after")
  for k, v in pairs(m:stateDict()) do T.close(v, after[k], 1e-5, 1e-4, "after a training forward: " .. k) end
end)

T.test("a state dict written by luagan loads into PyTorch, which computes the same outputs", function()
  local saved = fixtures.load("luagan_cnn")
  -- The seeded model is reproducible: rebuilding it gives the committed state exactly.
  local m, x = models.seededSmallCNN()
  for k, v in pairs(m:stateDict()) do T.close(v, saved[k], 0, 0, "seeded state " .. k) end
  T.close(x, saved.input, 0, 0, "seeded input")
  m:eval()
  T.close(m(x), f["luagan.eval_out"], 1e-5, 1e-4, "torch's output from luagan's state")
end)

T.test("loadStateDict names every missing, unexpected and mis-shaped entry", function()
  local m = models.SmallCNN()
  local sd = fixtures.prefixed(f, "torch.state")
  sd["fc.bias"] = nil
  sd["extra.weight"] = tensor.zeros(1)
  sd["conv1.weight"] = tensor.zeros(8, 3, 5, 5)
  local err = T.checkError("loadStateDict: SmallCNN state does not match", function() m:loadStateDict(sd) end)
  T.check(err:find("mis-shaped: conv1.weight (expected {8,3,3,3}, got {8,3,5,5})", 1, true), err)
  T.check(err:find("missing: fc.bias", 1, true), err)
  T.check(err:find("unexpected: extra.weight", 1, true), err)
  sd["conv1.weight"] = fixtures.prefixed(f, "torch.state")["conv1.weight"]
  m:loadStateDict(sd, { strict = false })  -- missing and extra names are allowed when not strict
end)

T.finish("fixtures_exchange")
