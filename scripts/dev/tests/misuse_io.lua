-- The misuse loop for image, data, ckpt, log, plot, paths, json and dist: wrong types, nil, absurd sizes, bad
-- files and unknown options. Every call must raise a Lua error; every function has cases.
local T = require("testing")
local check = T.check
local tmp = os.tmpname()
os.remove(tmp)
local ds = data.fashionMNIST { split = "test" }

local cases = {
  -- dist in one process: rank 0 of 1; its calls still check their arguments
  ["dist.rank"] = {}, ["dist.size"] = {}, ["dist.active"] = {}, ["dist.stats"] = {}, ["dist.barrier"] = {},
  ["dist.allReduce"] = { function() return dist.allReduce() end, function() return dist.allReduce({ 1, 2 }) end,
    function() return dist.allReduce(tensor.zeros(2), { op = "max" }) end,
    function() return dist.allReduce(tensor.zeros(2), { opp = "sum" }) end },
  ["dist.broadcast"] = { function() return dist.broadcast() end, function() return dist.broadcast(tensor.zeros(2), 1) end,
    function() return dist.broadcast(tensor.zeros(2), -1) end, function() return dist.broadcast(tensor.zeros(2), 0.5) end },
  ["dist.allGather"] = { function() return dist.allGather() end, function() return dist.allGather("x") end },
  ["dist.broadcastModules"] = {},          -- a no-op with one rank; under mpirun scripts/dev/tests/dist checks it
  ["dist.averageGradients"] = { function() return dist.averageGradients(5) end },
  ["dist.GradientAverager"] = { function() return dist.GradientAverager(5) end,
    function() return dist.GradientAverager({ 1 }) end,
    function() return dist.GradientAverager({}, { bucketMB = -1 }) end,
    function() return dist.GradientAverager({}, { bucketMB = 0 / 0 }) end,
    function() return dist.GradientAverager({}, { bucketMB = 1e300 }) end, function() return dist.GradientAverager({}, { bucket = 1 }) end,
    function() return dist.GradientAverager({}).arm(5) end, function() return dist.GradientAverager({}).finish({}) end },
  ["dist.checkReplicas"] = {},
  ["dist.shard"] = { function() return dist.shard(-1) end, function() return dist.shard(2.5) end, function() return dist.shard() end,
    function() return dist.shard(1 << 40) end, function() return dist.shard(4, 1, 1) end, function() return dist.shard(4, 0, 0) end },
  ["image.load"] = { function() return image.load() end, function() return image.load(5) end,
    function() return image.load("/etc/passwd") end, function() return image.load("/") end },
  ["image.save"] = { function() return image.save(tmp .. ".png") end, function() return image.save(tmp .. ".png", "x") end,
    function() return image.save(tmp .. ".png", tensor.zeros(0, 2, 2)) end, function() return image.save(tmp .. ".png", tensor.zeros(2, 2), { range = 3 }) end,
    function() return image.save(5, tensor.zeros(2, 2)) end, function() return image.save(tmp .. ".png", tensor.zeros(1, 2, 2), { rnage = { 0, 1 } }) end },
  ["image.grid"] = { function() return image.grid(tensor.zeros(3, 2, 2)) end, function() return image.grid(tensor.zeros(2, 1, 2, 2), { nrow = 0 }) end,
    function() return image.grid(tensor.zeros(0, 1, 2, 2)) end, function() return image.grid(nil) end },
  ["image.resize"] = { function() return image.resize(tensor.zeros(2, 2), 4) end, function() return image.resize(tensor.zeros(1, 2, 2), 0) end,
    function() return image.resize(tensor.zeros(1, 2, 2), 1e9) end, function() return image.resize(tensor.zeros(1, 2, 2), 4, { mode = "cubic" }) end,
    function() return image.resize(tensor.zeros(1, 2, 2), { 4 }) end },
  ["data.fashionMNIST"] = { function() return data.fashionMNIST { split = 3 } end, function() return data.fashionMNIST("train") end,
    function() return data.fashionMNIST { root = "/nonexistent" } end, function() return data.fashionMNIST { slpit = "test" } end },
  ["data.mnist"] = { function() return data.mnist {} end, function() return data.mnist { root = "/nonexistent" } end },
  ["data.cifar10"] = { function() return data.cifar10 {} end, function() return data.cifar10 { root = "/nonexistent", split = "x" } end },
  ["data.imageFolder"] = { function() return data.imageFolder() end, function() return data.imageFolder("/nonexistent") end,
    function() return data.imageFolder("/", { size = 0 }) end },
  ["data.zipDataset"] = { function() return data.zipDataset() end, function() return data.zipDataset("/nonexistent.zip") end,
    function() return data.zipDataset("/", { size = 0 }) end, function() return data.zipDataset("/dev/null") end,
    function() return data.zipDataset("/etc/passwd", { fit = 3 }) end,
    function() return data.zipDataset("/etc/passwd", { cache = {} }) end },
  ["data.Loader"] = { function() return data.Loader(5) end, function() return data.Loader(ds, { batchSize = 0 }) end,
    function() return data.Loader(ds, { transform = 5 }) end, function() return data.Loader(ds, { transform = { data.pad(-1) } }) end,
    function() return data.Loader(ds, { transform = { data.randomFlip(2) } }) end, function() return data.Loader(ds, { transform = { data.scale(1, 1) } }) end,
    function() return data.Loader(ds, { batchsize = 4 }) end,
    function() return data.Loader(ds, { batchSize = 4 }):setState({ epoch = 1, position = 99999 }) end,
    function() return data.Loader(ds, { batchSize = 4 }):setState({ epoc = 1 }) end },
  ["data.pad"] = { function() return data.Loader(ds, { transform = { data.pad("a") } }) end },
  ["data.scale"] = { function() return data.Loader(ds, { transform = { data.scale("a") } }) end },
  ["data.randomFlip"] = { function() return data.Loader(ds, { transform = { data.randomFlip(-1) } }) end },
  ["data.downscale"] = { function() return data.Loader(ds, { transform = { data.downscale(0) } }) end,
    function() return data.Loader(ds, { transform = { data.downscale() } }) end },
  ["ckpt.save"] = { function() return ckpt.save() end, function() return ckpt.save(tmp, 5) end,
    function() return ckpt.save("/proc/nope/x", {}) end, function() return ckpt.save(tmp, {}, { keep = 0 }) end,
    function() return ckpt.save(tmp, { c = coroutine.create(print) }) end },
  ["ckpt.load"] = { function() return ckpt.load() end, function() return ckpt.load("/nonexistent") end,
    function() return ckpt.load(tmp, 5) end },
  ["ckpt.list"] = { function() return ckpt.list() end },
  ["ckpt.clean"] = { function() return ckpt.clean() end, function() return ckpt.clean(5) end },
  ["json.encode"] = { function() return json.encode(print) end,
    function() local t = {}; t.t = t; return json.encode(t) end },
  ["json.decode"] = { function() return json.decode("{") end, function() return json.decode('"\\q"') end,
    function() return json.decode("[1,]") end },
  ["log.Logger"] = { function() return log.Logger() end, function() return log.Logger("/proc/nope") end },
  ["log.TensorBoard"] = { function() return log.TensorBoard() end, function() return log.TensorBoard("") end,
    function() return log.TensorBoard("/proc/nope/tb") end, function() return log.TensorBoard(tmp .. "-tb"):scalars(-1, { x = 1 }) end,
    function() return log.TensorBoard(tmp .. "-tb"):scalars(1, { x = "a" }) end,
    function() return log.TensorBoard(tmp .. "-tb"):image(1, "t", tensor.zeros(5, 2, 2)) end,
    function() return log.TensorBoard(tmp .. "-tb"):image(1, "t", tensor.zeros(1, 2, 2), { range = { 0, 0 } }) end,
    function() return log.TensorBoard(tmp .. "-tb"):resume("x") end,
    function() local tb = log.TensorBoard(tmp .. "-tb"); tb:close(); return tb:scalars(1, { x = 1 }) end },
  ["log.clock"] = {},   -- takes no arguments: nothing to misuse
  ["log.interrupted"] = {},
  ["log.catchInterrupts"] = { function() return log.catchInterrupts() end, function() return log.catchInterrupts("x") end },
  ["log.read"] = { function() return log.read() end, function() return log.read("/nonexistent") end },
  ["log.series"] = { function() return log.series(5, "x") end },
  ["log.Progress"] = { function() return log.Progress(0) end, function() return log.Progress("x") end,
    function() return log.Progress(10):update() end },
  ["paths.mkdir"] = { function() return paths.mkdir() end, function() return paths.mkdir("/proc/nope/x") end,
    function() return paths.mkdir("/etc/passwd") end },
  ["paths.exists"] = { function() return paths.exists() end, function() return paths.exists({}) end },
  ["paths.list"] = { function() return paths.list() end, function() return paths.list("/nonexistent") end },
  ["paths.remove"] = { function() return paths.remove() end, function() return paths.remove("/") end,
    function() return paths.remove("..") end, function() return paths.remove("a/..") end },
  ["paths.rename"] = { function() return paths.rename("/nonexistent/a", "/nonexistent/b") end, function() return paths.rename("a") end },
  ["paths.fsync"] = { function() return paths.fsync("/nonexistent") end, function() return paths.fsync(5) end },
  ["paths.writeText"] = { function() return paths.writeText("/nonexistent/a", "x") end, function() return paths.writeText(tmp, 5) end },
  ["paths.readText"] = { function() return paths.readText("/nonexistent") end, function() return paths.readText() end },
  ["plot.lines"] = { function() return plot.lines() end, function() return plot.lines(tmp .. ".png", 5) end,
    function() return plot.lines(tmp .. ".png", { 5 }) end, function() return plot.lines(tmp .. ".png", { { y = { "a" } } }) end,
    function() return plot.lines("/proc/nope/x.png", { { y = { 1 } } }) end },
}

local exported = {}
for _, lib in ipairs { "image", "data", "ckpt", "log", "plot", "paths", "json", "dist" } do
  for k, v in pairs(_G[lib]) do
    if type(k) == "string" and k:sub(1, 1) ~= "_" then
      if type(v) == "function" then exported[#exported + 1] = lib .. "." .. k
      elseif type(v) == "table" then for k2, v2 in pairs(v) do if type(v2) == "function" then exported[#exported + 1] = lib .. "." .. k .. "." .. k2 end end end
    end
  end
end
table.sort(exported)

local calls = T.misuseSweep(exported, cases)

paths.remove(tmp)
paths.remove(tmp .. "-tb")
os.remove(tmp .. ".png")
print(("misuse_io: %d bad calls, all raised Lua errors"):format(calls))
T.finish("misuse_io")
