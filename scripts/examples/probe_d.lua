-- probe_d.lua: does a BigGAN run's D remember its training images? D's mean output on 500 of
-- them against 500 test images it never saw (Karras et al. 2020, Fig. 1b), at every checkpoint
-- the run kept; a gap that widens with the iterations is D overfitting, what DiffAugment, ADA
-- and LeCam are for. Runs evaluated while training (--evalEvery) log the same numbers as
-- dTrain / dHeldOut / dGap; this reads any BigGAN run folder, older ones included.
--   luagan scripts/examples/probe_d.lua runs/small [more run folders ...]
local training = require("training")

if #arg == 0 then io.stderr:write("usage: luagan scripts/examples/probe_d.lua <BigGAN run folder> [...]\n"); os.exit(2) end
print("run | iteration | D(training images) | D(held-out images) | gap")
for _, run in ipairs(arg) do
  local folders = {}
  for _, name in ipairs(select(1, paths.exists(run .. "/ckpt")) and paths.list(run .. "/ckpt") or {}) do
    if name:match("^iter%-%d+$") then folders[#folders + 1] = name end
  end
  table.sort(folders)
  if #folders == 0 then io.stderr:write(("probe_d.lua: %s has no checkpoints (expected %s/ckpt/iter-*)\n"):format(run, run)); os.exit(1) end
  local probe, D
  for _, name in ipairs(folders) do
    local state = ckpt.load(run .. "/ckpt/" .. name)
    if state.model ~= "biggan" then
      io.stderr:write(("probe_d.lua: %s is a %s run, not BigGAN\n"):format(run, tostring(state.model))); os.exit(1)
    end
    if not probe then     -- the run's own training set (its --perClass subset and seed) and D
      local o = setmetatable({ quiet = true }, { __index = state.opt })
      local dataset, _, channels, numClasses = training.data(o, 1)
      D = select(2, require(o.arch == "deep" and "models.biggan_deep" or "models.biggan").fromOptions(o, channels, numClasses))
      probe = training.overfitProbe(o, dataset, 500, function(x, y)
        return training.withFrozenBuffers(D, function() return D(x, y) end)
      end)
      if not probe then io.stderr:write(("probe_d.lua: %s trained on %s, which has no test split\n"):format(run, o.dataset)); os.exit(1) end
    end
    D:loadStateDict(state.D.stateDict)
    D:train()          -- as the run evaluates it
    local dTrain, dHeldOut = probe()
    print(("%s | %d | %.4f | %.4f | %.4f"):format(run, state.iter, dTrain, dHeldOut, dTrain - dHeldOut))
  end
end
