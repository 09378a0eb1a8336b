-- training/data.lua: the data set a training script names, as a loader of images in [-1, 1].
-- Part of scripts/lib/training.lua (require("training")), which loads every part into one table.
local M = require("training")

-- The loader's transforms: 28x28 images padded to 32, larger ones downscaled to
-- opt.resolution, pixels to [-1, 1].
local function transformsFor(opt, ds, name)
  local transform = {}
  local size = ds.images:size(3)
  if size == 28 then
    if opt.resolution ~= 32 then error(("%s images are 28x28: train them at --resolution=32 (padded)"):format(name), 0) end
    transform[#transform + 1] = data.pad(2)
  elseif size ~= opt.resolution then
    if size % opt.resolution ~= 0 then
      error(("%s images are %dx%d, not a multiple of --resolution=%d"):format(name, size, size, opt.resolution), 0)
    end
    transform[#transform + 1] = data.downscale(size // opt.resolution)
  end
  transform[#transform + 1] = data.scale(-1, 1)
  return transform
end

--- The training set as the scripts see it: images in [-1, 1] at opt.resolution.
-- Returns the dataset, a loader over it, its channel count and class count.
function M.data(opt, batchSize)
  local ds
  local name = opt.dataset
  local root = opt.dataRoot ~= "" and opt.dataRoot or nil
  if name == "fashion-mnist" then ds = data.fashionMNIST { split = "train", root = root }
  elseif name == "mnist" then ds = data.mnist { split = "train", root = root }
  elseif name == "cifar10" then
    if not root then error("--dataset=cifar10 needs --dataRoot (the folder of the CIFAR-10 binary batches)", 0) end
    local ok, loaded = pcall(data.cifar10, { split = "train", root = root })
    if not ok then
      local why = tostring(loaded):gsub("^[^:]*:%d+: ", ""):gsub("^data%.cifar10: ", ""):gsub(" %(download.*$", "")
      error(("--dataRoot=%s: %s (download cifar-10-binary.tar.gz, unpack it, and give the folder holding "
        .. "data_batch_1.bin ... as --dataRoot)"):format(root, why), 0)
    end
    ds = loaded
  else
    -- folder / zip: --dataRoot names it (a folder path as --dataset also works); prepared
    -- pixels are cached in runs/cache so later runs do not decode the images again.
    local prep = { size = opt.resolution, channels = opt.channels, fit = opt.fit, cache = "runs/cache",
                   skipUnreadable = opt.badImages ~= "fail" }
    if name == "zip" then
      if not root then error("--dataset=zip needs --dataRoot (the zip, e.g. one made by stylegan2-ada's dataset_tool)", 0) end
      ds = data.zipDataset(root, prep)
    else
      if name == "folder" and not root then error("--dataset=folder needs --dataRoot (a folder of class sub-folders or of images)", 0) end
      local folder = name == "folder" and root or name
      if not select(1, paths.exists(folder)) then
        if name == "folder" then
          error(("--dataRoot=%s: no such folder (give a folder of class sub-folders of PNG or JPEG images, or of images)"):format(root), 0)
        end
        error(("--dataset=%s: not one of fashion-mnist, mnist, cifar10, folder or zip, nor a folder"):format(name), 0)
      end
      ds = data.imageFolder(folder, prep)
    end
  end
  if opt.perClass > 0 then ds = ds:subset(opt.perClass, opt.seed) end
  if dist.rank() == 0 and not opt.quiet then
    print(("data: %d images of %d class%s: %s"):format(ds.size, ds.numClasses, ds.numClasses == 1 and "" or "es",
      table.concat(ds.classNames, ", ", 1, math.min(ds.numClasses, 20)) .. (ds.numClasses > 20 and ", ..." or "")))
  end
  local skipped = ds.skipped
  if skipped and #skipped > 0 and dist.rank() == 0 then
    -- unreadable images are left out (--badImages=fail makes them an error); say which and how many
    io.stderr:write(("warning: %d unreadable image%s left out of %d: %s%s\n"):format(#skipped, #skipped == 1 and "" or "s",
      ds.size + #skipped, skipped[1], #skipped > 1 and (" (and %d more)"):format(#skipped - 1) or ""))
  end
  local transform = transformsFor(opt, ds, name)
  -- batchSize is the global batch; under mpirun each rank's loader yields its share of it
  local loader = data.Loader(ds, { batchSize = batchSize, seed = opt.seed, dropLast = true, transform = transform,
                                   rank = dist.rank(), ranks = dist.size() })
  return ds, loader, ds.images:size(2), ds.numClasses
end

--- D's memory of its training set (Karras et al. 2020, Fig. 1b): a function probe() -> dTrain,
-- dHeldOut, D(x, y)'s mean over n training images and over n images of the data set's test
-- split that D never sees, both as the loader gives them (no augmentation). A gap that widens
-- as training goes on is D memorizing its images, the overfitting that DiffAugment, ADA and
-- LeCam are for. D runs without gradients, its buffers (spectral norm's u) left as they were,
-- and the global generator untouched, so probing never changes a run. nil for data sets
-- without a test split (folders and zips). The images are drawn once, with a seed of their own.
function M.overfitProbe(opt, ds, n, D)
  local root = opt.dataRoot ~= "" and opt.dataRoot or nil
  local testSplit = ({
    ["fashion-mnist"] = function() return data.fashionMNIST { split = "test", root = root } end,
    mnist = function() return data.mnist { split = "test", root = root } end,
    cifar10 = function() return data.cifar10 { split = "test", root = root } end,
  })[opt.dataset]
  if not testSplit then return nil end
  local train, heldOut
  local function draw(set)
    local loader = data.Loader(set, { batchSize = math.min(n, set.size), seed = 20200611,
                                      transform = transformsFor(opt, set, opt.dataset) })
    local x, y = loader:next()
    return { x = x, y = y }
  end
  local function mean(r)
    return M.keepingRNG(function()
      return M.withFrozenBuffers(D, function() return tensor.noGrad(function() return D(r.x, r.y):mean():item() end) end)
    end)
  end
  return function()
    if not train then train, heldOut = draw(ds), draw(testSplit()) end
    return mean(train), mean(heldOut)
  end
end
