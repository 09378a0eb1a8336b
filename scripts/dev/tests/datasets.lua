-- data: Fashion-MNIST from Debian's package, MNIST/CIFAR-10/image-folder readers on files
-- written here, corrupt inputs for every reader, and the loader (determinism, resume,
-- transforms, throughput).
local T = require("testing")
local check, checkError, close = T.check, T.checkError, T.close
local tmp = os.tmpname()
os.remove(tmp)
paths.mkdir(tmp)

local function write(path, bytes) local f = assert(io.open(path, "wb")); f:write(bytes); f:close() end
local function u32(n) return string.pack(">I4", n) end

T.test("Fashion-MNIST: 60,000 training images, 6,000 per class, known pixel statistics", function()
  local train = data.fashionMNIST { split = "train" }
  check(#train == 60000 and train.numClasses == 10)
  check(train.classNames[1] == "T-shirt/top" and train.classNames[10] == "Ankle boot")
  local labels = train.labels
  check(labels:min():item() == 1 and labels:max():item() == 10, "labels are 1-based")
  for k = 1, 10 do check(labels:eq(k):sum():item() == 6000, "class " .. k) end
  local mean, std = train:pixelStatistics()
  print(("fashion-mnist train: mean %.4f std %.4f"):format(mean, std))
  check(math.abs(mean - 0.2860) < 5e-4 and math.abs(std - 0.3530) < 5e-4)
  local img, label = train:get(1)
  check(table.concat(img:shape(), ",") == "1,28,28" and label == train.labels[1])
  local test = data.fashionMNIST { split = "test" }
  check(#test == 10000 and test.images:size(1) == 10000 and table.concat(test.images:shape(), ",") == "10000,1,28,28")
  checkError("split must be 'train' or 'test'", data.fashionMNIST, { split = "val" })
  checkError("install Debian's dataset-fashion-mnist", data.fashionMNIST, { root = tmp })
end)

T.test("MNIST-format files (plain or gzip) and their corruptions", function()
  local n, r, c = 3, 2, 2
  local pixels = string.char(0, 255, 128, 1, 2, 3, 4, 5, 250, 251, 252, 253)
  write(tmp .. "/train-images-idx3-ubyte", u32(0x803) .. u32(n) .. u32(r) .. u32(c) .. pixels)
  write(tmp .. "/train-labels-idx1-ubyte", u32(0x801) .. u32(n) .. string.char(7, 0, 9))
  local ds = data.mnist { root = tmp }
  check(#ds == 3 and ds.classNames[1] == "0")
  close(ds.labels, tensor.new { 8, 1, 10 }, 0, 0, "1-based labels")
  close(ds.images[1], tensor.new { { { 0, 1 }, { 128 / 255, 1 / 255 } } }, 1e-7, 0)
  write(tmp .. "/train-labels-idx1-ubyte", u32(0x801) .. u32(2) .. string.char(7, 0))
  checkError("has 2 labels (declares 2) for 3 images", data.mnist, { root = tmp })
  write(tmp .. "/train-labels-idx1-ubyte", u32(0x801) .. u32(n) .. string.char(7, 0, 9))
  write(tmp .. "/train-images-idx3-ubyte", u32(0x803) .. u32(n) .. u32(r) .. u32(c) .. pixels:sub(1, 7))
  checkError("holds 7 pixel bytes (truncated?)", data.mnist, { root = tmp })
  write(tmp .. "/train-images-idx3-ubyte", u32(0x801) .. u32(n) .. u32(r) .. u32(c) .. pixels)
  checkError("is not an IDX image file", data.mnist, { root = tmp })
  write(tmp .. "/train-labels-idx1-ubyte", u32(0x801) .. u32(n) .. string.char(7, 0, 99))
  write(tmp .. "/train-images-idx3-ubyte", u32(0x803) .. u32(n) .. u32(r) .. u32(c) .. pixels)
  checkError("label 99 of image 3 is not one of the 10 classes", data.mnist, { root = tmp })
  checkError("option 'root' is required", data.mnist, {})
  -- a truncated gzip from the real Fashion-MNIST file
  local gz = io.open("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz", "rb"):read("a")
  paths.mkdir(tmp .. "/cut")
  write(tmp .. "/cut/t10k-labels-idx1-ubyte.gz", gz:sub(1, #gz // 2))
  write(tmp .. "/cut/t10k-images-idx3-ubyte.gz", io.open("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz", "rb"):read("a"))
  checkError("data.fashionMNIST: '" .. tmp .. "/cut/t10k-labels-idx1-ubyte.gz' is truncated or corrupt", data.fashionMNIST, { root = tmp .. "/cut", split = "test" })
end)

T.test("CIFAR-10 binary batches and their corruptions", function()
  local dir = tmp .. "/cifar-10-batches-bin"
  paths.mkdir(dir)
  local rec = function(label, v) return string.char(label) .. string.char(v):rep(3072) end
  write(dir .. "/test_batch.bin", rec(3, 10) .. rec(9, 200))
  local ds = data.cifar10 { root = tmp, split = "test" }
  check(#ds == 2 and table.concat(ds.images:shape(), ",") == "2,3,32,32" and ds.classNames[4] == "cat")
  close(ds.labels, tensor.new { 4, 10 }, 0, 0)
  write(dir .. "/test_batch.bin", rec(3, 10):sub(1, 3000))
  checkError("not a whole number of 3073-byte records", data.cifar10, { root = tmp, split = "test" })
  write(dir .. "/test_batch.bin", rec(12, 10))
  checkError("has label 12, expected 0..9", data.cifar10, { root = tmp, split = "test" })
  checkError("missing", data.cifar10, { root = tmp, split = "train" })
end)

T.test("image folders: classes from sub-folders, resized, channels converted", function()
  local root = tmp .. "/folder"
  for _, cls in ipairs { "cats", "dogs" } do paths.mkdir(root .. "/" .. cls) end
  image.save(root .. "/cats/a.png", tensor.ones(3, 8, 8) * 0.5)
  image.save(root .. "/cats/b.png", tensor.zeros(1, 4, 6))
  image.save(root .. "/dogs/c.png", tensor.ones(4, 8, 8))
  local ds = data.imageFolder(root, { size = 4, channels = 3 })
  check(#ds == 3 and ds.numClasses == 2 and ds.classNames[2] == "dogs")
  close(ds.labels, tensor.new { 1, 1, 2 }, 0, 0)
  check(table.concat(ds.images:shape(), ",") == "3,3,4,4")
  close(ds.images[1], tensor.full({ 3, 4, 4 }, 128 / 255), 1e-6, 0)
  local gray = data.imageFolder(root, { size = 2, channels = 1 })
  check(gray.images:size(2) == 1)
  checkError("no PNG or JPEG files under", data.imageFolder, tmp .. "/cifar-10-batches-bin", { size = 4 })
  write(root .. "/dogs/bad.png", "nope")
  -- an unreadable image is left out and listed (the scripts warn with the count), or an error when asked
  local skipping = data.imageFolder(root, { size = 4 })
  check(#skipping == 3 and #skipping.skipped == 1, ("one of 4 images left out, got %d kept"):format(#skipping))
  check(skipping.skipped[1]:find("bad.png' is neither a PNG nor a JPEG", 1, true), skipping.skipped[1])
  checkError("data.imageFolder: '" .. root .. "/dogs/bad.png' is neither a PNG nor a JPEG", data.imageFolder, root,
    { size = 4, skipUnreadable = false })
  -- the prepared-pixels cache remembers what it left out, and a strict reading does not use it
  local cache = tmp .. "/prepared"
  check(#data.imageFolder(root, { size = 4, cache = cache }).skipped == 1)
  local again = data.imageFolder(root, { size = 4, cache = cache })
  check(#again == 3 and #again.skipped == 1, "from the cache: the same images, the same list of the left out")
  checkError("is neither a PNG nor a JPEG", data.imageFolder, root, { size = 4, cache = cache, skipUnreadable = false })
  write(root .. "/cats/a.png", "nope"); write(root .. "/cats/b.png", "nope"); write(root .. "/dogs/c.png", "nope")
  checkError("none of the 4 images could be read", data.imageFolder, root, { size = 4 })
  checkError("channels must be 1 or 3", data.imageFolder, root, { size = 4, channels = 2 })
end)

local ds = data.fashionMNIST { split = "test" }

local function collect(loader, n)
  local out = {}
  for i = 1, n do local x, y = loader:next(); out[i] = { x, y } end
  return out
end

T.test("the loader is deterministic for a seed, whatever the background thread does", function()
  local opts = { batchSize = 32, seed = 7, transform = { data.pad(2), data.scale(-1, 1), data.randomFlip() } }
  local a, b = collect(data.Loader(ds, opts), 5), collect(data.Loader(ds, opts), 5)
  for i = 1, 5 do
    check(T.maxDiff(a[i][1], b[i][1]) == 0 and T.maxDiff(a[i][2], b[i][2]) == 0, "batch " .. i)
  end
  local c = collect(data.Loader(ds, { batchSize = 32, seed = 8, transform = opts.transform }), 1)
  check(T.maxDiff(a[1][2], c[1][2]) > 0, "another seed shuffles differently")
  local x, y = a[1][1], a[1][2]
  check(table.concat(x:shape(), ",") == "32,1,32,32" and x:min():item() >= -1 and x:max():item() <= 1)
  check(y:min():item() >= 1 and y:max():item() <= 10)
  check(x[1][1][1][1] == -1, "the 2-pixel border is background (0, scaled to -1)")
  tensor.setNumThreads(1)
  local d = collect(data.Loader(ds, opts), 5)
  tensor.setNumThreads(2)
  check(T.maxDiff(d[5][1], a[5][1]) == 0, "thread count does not matter")
end)

T.test("a saved loader state resumes the exact stream, across epochs", function()
  local opts = { batchSize = 3000, seed = 3, dropLast = true, transform = { data.randomFlip() } }
  local straight = data.Loader(ds, opts)
  local first = collect(straight, 4)                 -- 3 batches per epoch: crosses into epoch 2
  local st = straight:state()
  check(st.epoch == 2 and st.position == 1)
  local rest = collect(straight, 3)
  local resumed = data.Loader(ds, opts)
  resumed:setState(st)
  local again = collect(resumed, 3)
  for i = 1, 3 do check(T.maxDiff(rest[i][1], again[i][1]) == 0, "batch after resume " .. i) end
  check(#straight == 3)
  checkError("has seed 3, this loader 4", function() data.Loader(ds, { batchSize = 3000, seed = 4 }):setState(st) end)
end)

T.test("epochs, dropLast, no shuffle, downscale", function()
  local l = data.Loader(ds, { batchSize = 4096, shuffle = false })
  local sizes = {}
  for x, y in l:epoch() do sizes[#sizes + 1] = x:size(1) end
  check(table.concat(sizes, ",") == "4096,4096,1808" and #l == 3)
  local first = data.Loader(ds, { batchSize = 2, shuffle = false }):next()
  close(first, ds.images:narrow(1, 1, 2), 0, 0, "without shuffle, the data set's order")
  local small = data.Loader(ds, { batchSize = 2, shuffle = false, transform = { data.pad(2), data.downscale(4) } }):next()
  check(small:size(3) == 8, "32 / 4 = 8")
  close(small[1][1][3][3], ds.images[1][1]:pad({ 2, 2, 2, 2 }):narrow(1, 9, 4):narrow(2, 9, 4):mean(), 1e-6, 0, "box average")
  checkError("does not divide the image size", data.Loader, ds, { transform = { data.downscale(3) } })
  checkError("batchSize 20000 is larger than the data set", data.Loader, ds, { batchSize = 20000, dropLast = true })
  checkError("unknown kind 'blur'", data.Loader, ds, { transform = { { kind = "blur" } } })
end)

T.test("loader throughput", function()
  local train = data.fashionMNIST { split = "train" }
  local l = data.Loader(train, { batchSize = 64, seed = 1, transform = { data.pad(2), data.scale(-1, 1), data.randomFlip() } })
  l:next()
  local t0, n = tensor.clock(), 0
  for _ = 1, 200 do local x = l:next(); n = n + x:size(1) end
  local rate = n / (tensor.clock() - t0)
  print(("loader: %.0f images/s (batch 64, pad + scale + flip)"):format(rate))
  check(rate > 1000)
end)

paths.remove(tmp)
T.finish("datasets")
