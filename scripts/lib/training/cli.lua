-- training/cli.lua: the options every training script shares, and the start of a run (--resume, the run folder).
-- Part of scripts/lib/training.lua (require("training")), which loads every part into one table.
local M = require("training")
local options = require("options")

--- Options every training script has, appended to the script's own (defaults per script).
function M.commonSpec(d)
  return {
    { "dataset", d.dataset or "fashion-mnist", "fashion-mnist, mnist, cifar10, folder (--dataRoot: a folder of class sub-folders "
      .. "of PNG or JPEG images, or of images), or zip (--dataRoot: a stylegan2-ada dataset zip)" },
    { "dataRoot", "", "where the data set's files are (default: the Debian package for (fashion-)mnist; folder/zip: the folder or zip)" },
    { "channels", d.channels or 3, "image channels for folder and zip data sets (1 or 3)", oneOf = { 1, 3 } },
    { "fit", "crop", "how folder and zip images become square: crop (central square), pad (black borders) or stretch",
      oneOf = { "crop", "pad", "stretch" } },
    { "badImages", "skip", "folder and zip images that cannot be read: skip them (with a warning and a count) or fail",
      oneOf = { "skip", "fail" } },
    { "perClass", 0, "train on this many images per class, drawn with the seed (0: all; 600 = 10% of Fashion-MNIST)", min = 0 },
    { "resolution", d.resolution or 32, "image size (28 px data sets are padded to 32)", min = 4, max = 1024 },
    { "iters", d.iters, "training iterations (G steps)", min = 0 },
    { "minutes", d.minutes or 0.0, "train for this wall-clock budget instead of --iters (0: use --iters)", min = 0 },
    { "sampleEvery", d.sampleEvery or 500, "iterations between sample sheets", min = 1 },
    { "saveEvery", d.saveEvery or 1000, "iterations between checkpoints", min = 1 },
    { "evalEvery", d.evalEvery or 2000, "iterations between FID/accuracy evaluations (0: never; Fashion-MNIST only)", min = 0 },
    { "evalSamples", d.evalSamples or 2000, "samples per evaluation", min = 2, max = 1000000 },
    { "logEvery", d.logEvery or 10, "iterations between log lines", min = 1 },
    { "svEvery", d.svEvery or 100, "iterations between top-3 singular values of every weight (0: never)", min = 0 },
    { "keep", d.keep or 3, "checkpoints kept", min = 1 },
    { "onCollapse", d.onCollapse or "warn",
      "when D dies or G's spectra explode: warn, stop, or rollback (to the last good checkpoint, fresh seed; "
        .. "the run's start, iter-0000000, is kept for it)",
      oneOf = { "warn", "stop", "rollback" } },
    { "collapsePatience", d.collapsePatience or 50, "iterations of flat D outputs (90% of them) that mean D is dead", min = 1 },
    { "collapseSpread", d.collapseSpread or 1e-6, "D's outputs are flat when their spread (std over the batch) is at most this "
      .. "x max(1, mean |output|)", min = 0, max = 1 },
    { "collapseGrowth", d.collapseGrowth or 4.0, "growth of G's first-layer sigma_0 within 5 svEvery records that means it exploded",
      min = 1 },
    { "collapseRetries", d.collapseRetries or 3, "rollbacks before a run that keeps collapsing stops", min = 0 },
    { "seed", d.seed or 1, "random seed" },
    { "threads", d.threads or 0, "worker threads (0: all cores)", min = 0, max = 1024 },
    { "out", d.out, "run folder" },
    { "resume", "", "continue the run saved in this folder (its options, unless given again)" },
    { "quiet", false, "no progress bar (not kept by --resume)" },
    { "tensorboard", true, "also write TensorBoard event files (scalars, sample sheets) to <out>/tb (--no-tensorboard: don't)" },
    { "crossReplicaBN", false, "under mpirun: BatchNorm statistics over every rank's share of the batch (BigGAN's; off: each rank's own)" },
    { "checkReplicasEvery", d.checkReplicasEvery or 100, "under mpirun: iterations between checksums that the ranks' models are identical",
      min = 1 },
  }
end

-- The option specs given, one after another, as one list.
function M.concat(...)
  local out = {}
  for _, spec in ipairs { ... } do
    for _, x in ipairs(spec) do out[#out + 1] = x end
  end
  return out
end

--- Parses the command line (spec = the script's options ++ commonSpec), restores the saved
-- options when resuming (options given again override them), seeds the generator, sets the
-- thread count, creates the run folder and prints the effective options. Returns opt and the
-- saved state (nil unless resuming). hooks.adjust(opt, given), when given, may change options
-- that follow from others before they are printed and saved.
function M.start(spec, description, hooks)
  local opt, given = options.cli(arg, spec, description)
  M.rank, M.ranks = dist.rank(), dist.size()
  if M.rank > 0 then opt.quiet = true end                   -- rank 0 speaks and writes for the run
  local saved
  if opt.resume ~= "" then
    local ok, s = pcall(ckpt.load, opt.resume .. "/ckpt")
    if not ok then
      io.stderr:write(("%s: cannot resume from %s: %s\n"):format(arg[0], opt.resume, tostring(s)))
      os.exit(2)
    end
    saved = s
    local resume = opt.resume
    local renamed = options.aliases(spec)    -- a checkpoint from before an option was renamed
    for k, v in pairs(s.opt or {}) do
      k = renamed[k] or k
      -- the saved options, except how this session talks (--quiet is for this terminal)
      if rawget(opt, k) ~= nil and not given[k] and k ~= "quiet" then opt[k] = v end
    end
    opt.resume = resume
    if not given.out then opt.out = resume end
  end
  if opt.out == "" then io.stderr:write(arg[0] .. ": --out must name a folder\n"); os.exit(2) end
  -- A new run never writes into an old one (its log and checkpoints would interleave).
  local old = not saved and io.open(opt.out .. "/log.jsonl", "r")
  if old then
    old:close()
    io.stderr:write(("%s: %s already holds a run: continue it with --resume=%s, or choose another --out\n")
      :format(arg[0], opt.out, opt.out))
    os.exit(2)
  end
  if opt.threads > 0 then tensor.setNumThreads(opt.threads) end
  if M.ranks > 1 and opt.batchSize and opt.batchSize % M.ranks ~= 0 then
    error(("--batchSize=%d is the global batch: it must be a multiple of the %d ranks"):format(opt.batchSize, M.ranks), 0)
  end
  -- --iters without --minutes means a run of that many iterations, even where the default is a
  -- time budget; on the command line it also overrides a config file's budget
  -- (--config=demo.lua --iters=4300: 4,300 iterations)
  local itersOnly = given.iters and (not given.minutes or (given.iters == true and given.minutes ~= true))
  if itersOnly and rawget(opt, "minutes") then opt.minutes = 0 end
  -- the script's own implications between options (hooks.adjust(opt, given), a new run only)
  if hooks and hooks.adjust and not saved then hooks.adjust(opt, given) end
  tensor.manualSeed(opt.seed)                               -- the same initial models on every rank
  local text = options.describe(opt, spec)
  if M.rank == 0 then
    paths.mkdir(opt.out .. "/samples")
    local f = io.open(opt.out .. "/options.txt", "w")
    if f then f:write(text, "\n"); f:close() end
  end
  if not opt.quiet then print(description .. (saved and (" (resuming at iteration %d)"):format(saved.iter) or "")); print(text) end
  if M.ranks > 1 and M.rank == 0 then
    print(("under mpirun: %d ranks%s"):format(M.ranks, opt.batchSize
      and (", the global batch of %d is %d per rank"):format(opt.batchSize, opt.batchSize // M.ranks) or ""))
  end
  return opt, saved
end

