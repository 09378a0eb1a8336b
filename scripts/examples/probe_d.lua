-- probe_d.lua: does a BigGAN run's D remember its training images? D's mean output on 500 of
-- them against 500 test images it never saw (Karras et al. 2020, Fig. 1b), at every checkpoint
-- the run kept; a gap that widens with the iterations is D overfitting, what DiffAugment, ADA
-- and LeCam are for. Runs evaluated while training (--evalEvery) log the same numbers as
-- dTrain / dHeldOut / dGap; this reads any BigGAN run folder, older ones included.
--   luagan scripts/examples/probe_d.lua runs/small [more run folders ...]
local training = require("training")

local function fail(message) io.stderr:write("probe_d.lua: " .. message .. "\n"); os.exit(1) end
local function why(err) return tostring(err):gsub("^[^:]*:%d+: ", "") end
if #arg == 0 then io.stderr:write("usage: luagan scripts/examples/probe_d.lua <BigGAN run folder> [...]\n"); os.exit(2) end

-- The options a run may predate take the scripts' defaults.
local defaults = {}
for _, o in ipairs(training.commonSpec {}) do defaults[o[1]] = o[2] end
local hasTestSplit = { ["fashion-mnist"] = true, mnist = true, cifar10 = true }

print("run | iteration | D(training images) | D(held-out images) | gap")
for _, run in ipairs(arg) do
  local listed, names = pcall(paths.list, run .. "/ckpt")
  if not listed then fail(("%s: no checkpoint folder %s/ckpt (give a BigGAN run folder)"):format(run, run)) end
  local folders = {}
  for _, name in ipairs(names) do
    if name:match("^iter%-%d+$") then folders[#folders + 1] = name end
  end
  table.sort(folders)
  if #folders == 0 then fail(("%s has no checkpoints (expected %s/ckpt/iter-*)"):format(run, run)) end
  local probe, D
  for _, name in ipairs(folders) do
    local loaded, state = pcall(ckpt.load, run .. "/ckpt/" .. name)
    if not loaded then fail(("%s/ckpt/%s: %s"):format(run, name, why(state))) end
    if state.model ~= "biggan" or type(state.opt) ~= "table" or type(state.D) ~= "table" or type(state.D.stateDict) ~= "table" then
      fail(("%s/ckpt/%s is not a BigGAN checkpoint with its D (model %s)"):format(run, name, tostring(state.model)))
    end
    if not probe then     -- the run's own training set (its --perClass subset and seed) and D
      local o = setmetatable({ quiet = true }, { __index = function(_, k)
        if state.opt[k] ~= nil then return state.opt[k] end
        return defaults[k]
      end })
      if not hasTestSplit[o.dataset] then
        fail(("%s trained on %s, which has no test split to hold out"):format(run, tostring(o.dataset)))
      end
      local built, err = pcall(function()
        local dataset, _, channels, numClasses = training.data(o, 1)
        D = select(2, require(o.arch == "deep" and "models.biggan_deep" or "models.biggan").fromOptions(o, channels, numClasses))
        probe = training.overfitProbe(o, dataset, 500, D)
      end)
      if not built then fail(("%s: %s"):format(run, why(err))) end
    end
    local ok, err = pcall(function() D:loadStateDict(state.D.stateDict) end)
    if not ok then fail(("%s/ckpt/%s: D's weights do not fit the run's options: %s"):format(run, name, why(err))) end
    D:train()          -- as the run evaluates it
    local dTrain, dHeldOut = probe()
    print(("%s | %d | %.4f | %.4f | %.4f"):format(run, state.iter, dTrain, dHeldOut, dTrain - dHeldOut))
  end
end
