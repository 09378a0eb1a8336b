-- files.lua: mutated files for every reader luagan has. Valid seeds are made first
-- (safetensors, PNG, IDX plain and gzip, CIFAR-10 batches, checkpoint folders, JSON logs,
-- PyTorch checkpoints in the zip and legacy formats, pickled here as torch.save does), then
-- each case mutates one (bit flips, interesting bytes and integers, truncation, splices,
-- edits of the JSON inside) and reads it back. Reading must succeed or raise a Lua error: a
-- crash, hang or runaway allocation is a bug, caught by the driver (luagan-fuzz).
--
--   luagan scripts/fuzz/files.lua --seed=7 --files=500 [--trace=/dev/fd/3] [--verbose]
local opt = { seed = 1, files = 100, trace = nil, verbose = false }
for _, a in ipairs(arg) do
  local k, v = a:match("^%-%-(%w+)=(.*)$")
  if k == "seed" or k == "files" then opt[k] = math.tointeger(tonumber(v))
  elseif k == "trace" then opt.trace = v
  elseif a == "--verbose" then opt.verbose = true
  else error("files.lua: unknown argument " .. a) end
end
local trace = opt.trace and assert(io.open(opt.trace, "w")) or nil
if trace then trace:setvbuf("line") end
math.randomseed(opt.seed)
tensor.manualSeed(opt.seed)
tensor.setMemoryLimit(768 << 20)
local R = math.random
local function pick(list) return list[R(#list)] end
local function chance(p) return R() < p end

local function readFile(path) local f = assert(io.open(path, "rb")); local s = f:read("a"); f:close(); return s end
local function writeFile(path, s) local f = assert(io.open(path, "wb")); f:write(s); f:close() end
local function be32(v) return string.pack(">I4", v) end

-- CRC-32 for gzip members.
local crcTable = {}
for n = 0, 255 do
  local c = n
  for _ = 1, 8 do c = (c & 1) ~= 0 and (0xEDB88320 ~ (c >> 1)) or (c >> 1) end
  crcTable[n] = c
end
local function crc32(s)
  local c = 0xFFFFFFFF
  for i = 1, #s do c = crcTable[(c ~ s:byte(i)) & 0xff] ~ (c >> 8) end
  return c ~ 0xFFFFFFFF
end
-- A gzip member holding `s` in stored (uncompressed) deflate blocks.
local function gzip(s)
  local parts = { "\31\139\8\0\0\0\0\0\0\255" }
  local pos = 1
  repeat
    local block = s:sub(pos, pos + 65534)
    pos = pos + #block
    parts[#parts + 1] = string.char(pos > #s and 1 or 0) .. string.pack("<I2I2", #block, (~#block) & 0xffff) .. block
  until pos > #s
  parts[#parts + 1] = string.pack("<I4I4", crc32(s), #s & 0xffffffff)
  return table.concat(parts)
end

-- MARK: - Seeds

paths.mkdir("seeds")
local seeds = {}  -- kind -> list of { path = , bytes = } (a folder for checkpoints)

local function addSeed(kind, path)
  seeds[kind] = seeds[kind] or {}
  table.insert(seeds[kind], { path = path, bytes = readFile(path) })
end

for i = 1, 4 do
  local p = ("seeds/t%d.safetensors"):format(i)
  local entries = {}
  for k = 1, R(1, 4) do
    local shape = {}
    for d = 1, R(0, 3) do shape[d] = R(0, 4) end
    entries["w" .. k] = tensor.randn(shape, { dtype = chance(0.3) and "float64" or "float32" })
  end
  tensor.save(p, entries, chance(0.5) and { note = "fuzz" } or nil)
  addSeed("safetensors", p)
end
for i, c in ipairs { 1, 2, 3, 4, 1, 3 } do
  local p = ("seeds/i%d.png"):format(i)
  image.save(p, tensor.rand(c, R(1, 12), R(1, 12)))
  addSeed("png", p)
end
for i, c in ipairs { 1, 3, 3 } do
  local p = ("seeds/j%d.jpg"):format(i)
  image.save(p, tensor.rand(c, R(1, 20), R(1, 20)), { quality = R(10, 100), subsampling = pick { "444", "422", "420" } })
  addSeed("jpeg", p)
end
for i = 1, 2 do
  local p = ("seeds/a%d.npz"):format(i)
  tensor.save(p, { mu = tensor.randn(R(1, 5), { dtype = "float64" }), sigma = tensor.randn(R(1, 3), R(1, 3)) })
  addSeed("npz", p)
end
-- A zip of stored entries (APPNOTE's local headers, central directory and end record), for a
-- dataset zip seed in stylegan2-ada's layout (crc32 is gzip's, above).
local function zipOf(entries)
  local body, dir = {}, {}
  local offset = 0
  for _, e in ipairs(entries) do
    local name, data = e[1], e[2]
    local crc = crc32(data)
    local head = string.pack("<I4I2I2I2I2I2I4I4I4I2I2", 0x04034b50, 20, 0, 0, 0, 0x21, crc, #data, #data, #name, 0) .. name
    dir[#dir + 1] = string.pack("<I4I2I2I2I2I2I2I4I4I4I2I2I2I2I2I4I4", 0x02014b50, 20, 20, 0, 0, 0, 0x21, crc, #data, #data,
      #name, 0, 0, 0, 0, 0, offset) .. name
    body[#body + 1] = head .. data
    offset = offset + #head + #data
  end
  local central = table.concat(dir)
  return table.concat(body) .. central .. string.pack("<I4I2I2I2I2I4I4I2", 0x06054b50, 0, 0, #entries, #entries, #central, offset, 0)
end
do
  image.save("seeds/z0.png", tensor.rand(3, 6, 5)); image.save("seeds/z1.jpg", tensor.rand(3, 5, 6))
  writeFile("seeds/d.zip", zipOf { { "00000/img0.png", readFile("seeds/z0.png") }, { "00000/img1.jpg", readFile("seeds/z1.jpg") },
    { "dataset.json", '{"labels": [["00000/img0.png", 0], ["00000/img1.jpg", 1]]}' } })
  addSeed("zip", "seeds/d.zip")
end
do
  local n, h, w = 6, 5, 4
  local px = {}
  for i = 1, n * h * w do px[i] = string.char(R(0, 255)) end
  local labels = {}
  for i = 1, n do labels[i] = string.char(R(0, 9)) end
  local images = be32(0x803) .. be32(n) .. be32(h) .. be32(w) .. table.concat(px)
  local lab = be32(0x801) .. be32(n) .. table.concat(labels)
  writeFile("seeds/idx-images", images); addSeed("idx-images", "seeds/idx-images")
  writeFile("seeds/idx-labels", lab); addSeed("idx-labels", "seeds/idx-labels")
  writeFile("seeds/idx-images.gz", gzip(images)); addSeed("idx-images-gz", "seeds/idx-images.gz")
  writeFile("seeds/idx-labels.gz", gzip(lab)); addSeed("idx-labels-gz", "seeds/idx-labels.gz")
  local rec = {}
  for r = 1, 3 do
    local b = { string.char(R(0, 9)) }
    for j = 1, 3072 do b[j + 1] = string.char((j * r) % 256) end
    rec[r] = table.concat(b)
  end
  writeFile("seeds/test_batch.bin", table.concat(rec)); addSeed("cifar", "seeds/test_batch.bin")
end
local function makeTargets()
  local model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm2d(4), nn.ReLU())
  local opt2 = optim.Adam(model:parameters(), { lr = 1e-3 })
  local ema = optim.EMA(nn.Linear(2, 2))
  return { model = model, opt = opt2, ema = ema }
end
do
  local t = makeTargets()
  t.model:parameters()[1].grad = tensor.ones(4, 3)
  t.opt:step()
  ckpt.save("seeds/ckpt", { model = t.model, opt = t.opt, ema = t.ema, iter = 7, options = { lr = 2e-4, name = "x", list = { 1, 2.5, true } } })
  local dir = "seeds/ckpt/" .. ckpt.list("seeds/ckpt")[1]
  seeds.ckptState = { { path = dir .. "/state.json", bytes = readFile(dir .. "/state.json") } }
  seeds.ckptTensors = { { path = dir .. "/tensors.safetensors", bytes = readFile(dir .. "/tensors.safetensors") } }
  local lg = log.Logger("seeds/log")
  for i = 1, 5 do lg:log(i, { lossD = i * 0.5, lossG = -i, acc = 0.5 }) end
  lg:close()
  addSeed("jsonl", "seeds/log/log.jsonl")
end

-- PyTorch checkpoints: a state dict pickled as torch.save does (protocol 2: an OrderedDict of
-- _rebuild_tensor_v2(persistent storage id, offset, size, stride, False, OrderedDict())), with
-- views, transposes, stride-0 and 0-d tensors over a few shared storages, in the zip layout
-- (<archive>/data.pkl, <archive>/data/<key>) and as the legacy stream (magic, 1001, sys_info,
-- the object, the storage keys, then each storage's count and data).
local function pstr(str) return "X" .. string.pack("<I4", #str) .. str end
local function pint(i) return "J" .. string.pack("<i4", i) end
local function ptuple(items) return "(" .. table.concat(items) .. "t" end
local function pints(list) local out = {}; for i, v in ipairs(list) do out[i] = pint(v) end; return ptuple(out) end
local storageKinds = {
  { "FloatStorage", 4, function() return string.pack("<f", R() * 4 - 2) end },
  { "DoubleStorage", 8, function() return string.pack("<d", chance(0.05) and 1 / 0 or R() * 4 - 2) end },
  { "LongStorage", 8, function() return string.pack("<i8", R(-1000, 1000)) end },
  { "HalfStorage", 2, function() return string.pack("<I2", R(0, 0xffff)) end },
  { "BFloat16Storage", 2, function() return string.pack("<I2", R(0, 0xffff)) end },
  { "BoolStorage", 1, function() return string.char(R(0, 1)) end },
}
-- A view inside a storage of n elements: (offset, size, stride).
local function pthView(n)
  local kind = R(4)
  if kind == 1 then local off = R(0, n - 1); return off, { R(0, n - off) }, { 1 } end
  if kind == 2 then return R(0, n - 1), {}, {} end
  local a = R(1, math.min(4, n)); local b = n // a
  local off = R(0, n - a * b)
  if kind == 3 then if chance(0.5) then return off, { a, b }, { b, 1 } else return off, { b, a }, { 1, b } end end   -- transposed
  return off, { R(1, 3), b }, { 0, 1 }   -- expanded: a stride of 0
end
local function pthCheckpoint(legacy)
  local storages, body = {}, {}
  for s = 1, R(1, 3) do
    local kind, n = pick(storageKinds), R(1, 24)
    local data = {}
    for i = 1, n do data[i] = kind[3]() end
    storages[s] = { key = legacy and tostring(R(10 ^ 8, 10 ^ 9)) or tostring(s - 1), kind = kind, n = n, data = table.concat(data) }
  end
  for k = 1, math.max(#storages, R(1, 5)) do
    local st = storages[k] or pick(storages)   -- every storage used (the legacy keys list must name only those)
    local off, size, stride = pthView(st.n)
    -- now and then a dimension of size 1, whose stride (any) is never used
    if chance(0.2) then local at = R(#size + 1); table.insert(size, at, 1); table.insert(stride, at, R(0, 99)) end
    local pid = { pstr("storage"), "ctorch\n" .. st.kind[1] .. "\n", pstr(st.key), pstr("cpu"), pint(st.n) }
    if legacy then pid[#pid + 1] = "N" end
    body[#body + 1] = pstr("w" .. k) .. "ctorch._utils\n_rebuild_tensor_v2\n" .. ptuple { ptuple(pid) .. "Q", pint(off), pints(size),
      pints(stride), "\x89", "ccollections\nOrderedDict\n)R" } .. "R"
  end
  body[#body + 1] = pstr("step") .. pint(R(0, 99)) .. pstr("meta") .. "}(" .. pstr("lr") .. "G" .. string.pack(">d", 2e-4) .. "u"
  local pkl = "\x80\x02ccollections\nOrderedDict\n)R(" .. table.concat(body) .. "u."
  if legacy then
    local keys, data = {}, {}
    for i, st in ipairs(storages) do keys[i] = pstr(st.key); data[i] = string.pack("<i8", st.n) .. st.data end
    local head = "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19.\x80\x02M\xe9\x03.\x80\x02}."
    return head .. pkl .. "\x80\x02](" .. table.concat(keys) .. "e." .. table.concat(data), pkl, storages
  end
  local entries = { { "archive/data.pkl", pkl }, { "archive/byteorder", "little" } }
  for _, st in ipairs(storages) do entries[#entries + 1] = { "archive/data/" .. st.key, st.data } end
  entries[#entries + 1] = { "archive/version", "3\n" }
  return zipOf(entries), pkl, storages
end
for i, legacy in ipairs { false, true, false, true } do
  local file, pkl, storages = pthCheckpoint(legacy)
  local p = ("seeds/c%d.pth"):format(i)
  writeFile(p, file)
  addSeed("pth", p)
  -- the pickle alone, mutated and put back into a zip with its storages (whose CRCs stay right)
  if not legacy then
    seeds.pthPickle = seeds.pthPickle or {}
    table.insert(seeds.pthPickle, { path = p, bytes = pkl, storages = storages })
  end
end

-- MARK: - Mutations

local interestingBytes = { 0, 1, 0x7f, 0x80, 0xff, 0xfe, 0x20, 0x22, 0x5b, 0x7b, 0x30, 0x39 }
local interestingInts = { 0, 1, 0xffffffff, 0x7fffffff, 0x80000000, 0x10000, 0xffff, 16, 1 << 30, 0x803, 0x801, 3073, 28 }
local interestingNumbers = { "0", "-1", "1e308", "-1e308", "1e400", "99999999999999999999", "9223372036854775807",
  "-9223372036854775808", "4294967296", "0.5", "NaN", "1e-400", "18446744073709551615", "65536", "2147483648" }

local mutations = {
  flip = function(s)
    if #s == 0 then return s end
    local i = R(#s)
    return s:sub(1, i - 1) .. string.char(s:byte(i) ~ (1 << R(0, 7))) .. s:sub(i + 1)
  end,
  byte = function(s)
    if #s == 0 then return s end
    local i = R(#s)
    return s:sub(1, i - 1) .. string.char(pick(interestingBytes)) .. s:sub(i + 1)
  end,
  int32 = function(s)
    if #s < 4 then return s end
    local i = R(#s - 3)
    local v = pick(interestingInts)
    local packed = chance(0.5) and string.pack(">I4", v) or string.pack("<I4", v)
    return s:sub(1, i - 1) .. packed .. s:sub(i + 4)
  end,
  int64 = function(s)
    if #s < 8 then return s end
    local i = chance(0.5) and 1 or R(#s - 7)
    local v = pick { 0, 1, 1 << 40, math.maxinteger, -1, 100000000, #s, #s + 8, 7 }
    return s:sub(1, i - 1) .. string.pack("<i8", v) .. s:sub(i + 8)
  end,
  truncate = function(s) return s:sub(1, R(0, math.max(#s - 1, 0))) end,
  append = function(s) return s .. ("\0"):rep(R(1, 64)) .. tostring(R(1, 1e6)) end,
  splice = function(s)
    if #s < 2 then return s end
    local a = R(#s); local b = math.min(#s, a + R(1, 64))
    local at = R(#s)
    return s:sub(1, at) .. s:sub(a, b) .. s:sub(at + 1)
  end,
  delete = function(s)
    if #s < 2 then return s end
    local a = R(#s); local b = math.min(#s, a + R(1, 32))
    return s:sub(1, a - 1) .. s:sub(b + 1)
  end,
  number = function(s)  -- replace a run of digits (in JSON text or a header) with an interesting number
    local starts = {}
    for p in s:gmatch("()%-?%d+") do starts[#starts + 1] = p; if #starts > 200 then break end end
    if #starts == 0 then return s end
    local p = pick(starts)
    local e = s:find("[^%-%d%.eE+]", p) or (#s + 1)
    return s:sub(1, p - 1) .. pick(interestingNumbers) .. s:sub(e)
  end,
  token = function(s)  -- JSON structure: nest, unbalance, retype
    local tokens = { "[", "]", "{", "}", ",", ":", '"', "null", "true", "[[[[[[[[", ('['):rep(300), '"x":', "\\u0000", "{}" }
    local i = R(math.max(#s, 1))
    return s:sub(1, i - 1) .. pick(tokens) .. s:sub(i + (chance(0.5) and 1 or 0))
  end,
}
local mutationNames = {}
for k in pairs(mutations) do mutationNames[#mutationNames + 1] = k end
table.sort(mutationNames)

local function mutate(s, textual)
  local applied = {}
  for _ = 1, R(1, 3) do
    local name = (textual and chance(0.6)) and pick { "number", "token", "delete", "splice" } or pick(mutationNames)
    s = mutations[name](s)
    applied[#applied + 1] = name
  end
  return s, table.concat(applied, "+")
end

-- For a safetensors file: mutate the JSON header or the payload.
local function mutateSafetensors(s)
  if #s >= 8 and chance(0.5) then
    local n = string.unpack("<I8", s)
    if n <= #s - 8 then
      local header, body = s:sub(9, 8 + n), s:sub(9 + n)
      local h2, how = mutate(header, true)
      local len = chance(0.8) and #h2 or n
      return string.pack("<I8", len) .. h2 .. body, "header:" .. how
    end
  end
  return mutate(s, false)
end

-- MARK: - Readers

-- Uses what a reader returned, so corrupt values (NaN, odd shapes) go through real code.
local function use(v, depth)
  depth = depth or 0
  if depth > 3 then return end
  if tensor.isTensor(v) then
    pcall(function() return v:sum():item() + v:float():mean():item() end)
    pcall(function() return tostring(v) end)
  elseif type(v) == "table" then
    local n = 0
    for _, x in pairs(v) do n = n + 1; if n > 50 then break end; use(x, depth + 1) end
  end
end

local readers = {
  safetensors = function(path) local t, meta = tensor.load(path); use(t); use(meta) end,
  png = function(path)
    local img = image.load(path, chance(0.3) and { maxPixels = 4096 } or nil)
    use(img)
    image.save(path .. ".out.png", img)
  end,
  jpeg = function(path)
    local img = image.load(path, chance(0.3) and { maxPixels = 4096 } or nil)
    use(img)
    image.save(path .. ".out.jpg", img:narrow(1, 1, math.min(3, img:size(1)) == 2 and 1 or math.min(3, img:size(1))))
  end,
  npz = function(path) local t = tensor.load(path); use(t); if t.mu and t.sigma then use(pcall(metrics.loadStats, path)) end end,
  zip = function(path)
    local ds = data.zipDataset(path, { size = R(1, 8), fit = pick { "crop", "pad", "stretch" } })
    use(ds.images); use(ds.labels)
  end,
  ["idx-images"] = function(_, root) local ds = data.mnist { root = root }; use(ds.images); use(ds.labels); local l = data.Loader(ds, { batchSize = 2 }); use(l:next()) end,
  cifar = function(_, root) local ds = data.cifar10 { root = root, split = "test" }; use(ds:get(1)); use(ds.labels) end,
  ckptState = function(_, dir) local t = makeTargets(); local st = ckpt.load(dir, chance(0.7) and t or nil); use(st) end,
  jsonl = function(path) local recs = log.read(path); use(recs); use(log.series(recs, "lossD")) end,
  pth = function(path) local t, meta = tensor.load(path); use(t); use(meta) end,
}
readers.pthPickle = readers.pth
readers.ckptTensors = readers.ckptState
readers["idx-labels"] = readers["idx-images"]
readers["idx-images-gz"] = readers["idx-images"]
readers["idx-labels-gz"] = readers["idx-images"]
local kinds = {}
for k in pairs(readers) do kinds[#kinds + 1] = k end
table.sort(kinds)

-- Lays out a mutated file where its reader looks for it; returns (path, root folder).
local function place(kind, k, bytes, seed)
  local dir = ("case%d"):format(k % 4)
  paths.remove(dir)
  paths.mkdir(dir)
  if kind:match("^idx") then
    local gz = kind:match("gz$")
    local imgs = gz and seeds["idx-images-gz"][1].bytes or seeds["idx-images"][1].bytes
    local labs = gz and seeds["idx-labels-gz"][1].bytes or seeds["idx-labels"][1].bytes
    if kind:match("images") then imgs = bytes else labs = bytes end
    local suffix = gz and ".gz" or ""
    writeFile(dir .. "/train-images-idx3-ubyte" .. suffix, imgs)
    writeFile(dir .. "/train-labels-idx1-ubyte" .. suffix, labs)
    return dir .. "/train-images-idx3-ubyte" .. suffix, dir
  elseif kind == "cifar" then
    writeFile(dir .. "/test_batch.bin", bytes)
    return dir .. "/test_batch.bin", dir
  elseif kind == "ckptState" or kind == "ckptTensors" then
    writeFile(dir .. "/state.json", kind == "ckptState" and bytes or seeds.ckptState[1].bytes)
    writeFile(dir .. "/tensors.safetensors", kind == "ckptTensors" and bytes or seeds.ckptTensors[1].bytes)
    return dir .. "/state.json", dir
  elseif kind == "pthPickle" then
    local entries = { { "archive/data.pkl", bytes } }
    for _, st in ipairs(seed.storages) do entries[#entries + 1] = { "archive/data/" .. st.key, st.data } end
    writeFile(dir .. "/file.pth", zipOf(entries))
    return dir .. "/file.pth", dir
  end
  local path = dir .. "/file"
  writeFile(path, bytes)
  return path, dir
end

local ok, failed = 0, 0
for k = 1, opt.files do
  local kind = pick(kinds)
  local seed = pick(seeds[kind])
  local bytes, how
  if kind == "safetensors" or kind == "ckptTensors" then bytes, how = mutateSafetensors(seed.bytes)
  else bytes, how = mutate(seed.bytes, kind == "ckptState" or kind == "jsonl") end
  local desc = ("%s %s (%d bytes)"):format(kind, how, #bytes)
  if trace then trace:write("F ", k, " ", desc, "\n") end
  if opt.verbose then io.stderr:write("F ", k, " ", desc, "\n") end
  local path, root = place(kind, k, bytes, seed)
  local good = pcall(readers[kind], path, root)
  if good then ok = ok + 1 else failed = failed + 1 end
end
if trace then trace:write("D ", opt.files, "\n") end
print(("files.lua: seed %d, %d files (%d read, %d refused with an error)"):format(opt.seed, opt.files, ok, failed))
