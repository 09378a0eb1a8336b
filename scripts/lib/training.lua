-- training.lua: what every GAN script in scripts/ shares, so each script shows only its model
-- and its update rule. One table, filled by its parts in scripts/lib/training/:
--   cli          options every script has (commonSpec, concat), start (--resume, the run folder)
--   data         data(opt, batch): the data set the options name, as a loader
--   parallel     localBatch, lastBackward, syncGradients (mpirun), accumulated (gradient accumulation)
--   small_data   smallDataSpec, SmallData (DiffAugment, ADA, LeCam)
--   scopes       withFrozenBuffers, onExit, keepingRNG, withSeed, noise
--   watch        CollapseWatch
--   run, report  Run: the budget, log, progress, checkpoints, sheets, evaluation, the collapse response
--   generators   loadGenerator (the model protocol), loadPyTorchGenerator
local M = {}
package.loaded["training"] = M     -- the parts add themselves to this table
for _, part in ipairs { "cli", "data", "parallel", "small_data", "scopes", "watch", "run", "report", "generators" } do
  require("training." .. part)
end
return M
