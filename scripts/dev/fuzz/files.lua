-- files.lua: mutated files for every reader luagan has. Valid seeds are made first
-- (safetensors, PNG, IDX plain and gzip, CIFAR-10 batches, checkpoint folders, JSON logs,
-- PyTorch checkpoints in the zip and legacy formats, pickled here as torch.save does), then
-- each case mutates one (bit flips, interesting bytes and integers, truncation, splices,
-- edits of the JSON inside) and reads it back; other cases are files whose declared sizes lie
-- (zip entries, .npy shapes, prepared caches, .pth views, pickled integers, image aspect
-- ratios; see "Files whose declared sizes lie"). Reading must succeed or raise a Lua error: a
-- crash, hang or runaway allocation is a bug, caught by the driver (luagan-fuzz).
--
--   luagan scripts/dev/fuzz/files.lua --seed=7 --files=500 [--trace=/dev/fd/3] [--verbose]
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

-- The CRC-32 of A..B from crc(A), crc(B) and #B, as zlib's crc32_combine: B's length in zero
-- bits is applied to crc(A) by squaring the CRC's shift matrix over GF(2).
local function gf2Times(mat, vec)
  local sum, i = 0, 1
  while vec ~= 0 do
    if vec & 1 ~= 0 then sum = sum ~ mat[i] end
    vec, i = vec >> 1, i + 1
  end
  return sum
end
local function gf2Square(mat)
  local sq = {}
  for n = 1, 32 do sq[n] = gf2Times(mat, mat[n]) end
  return sq
end
local function crc32Combine(crc1, crc2, len2)
  if len2 <= 0 then return crc1 end
  local odd, row = { 0xEDB88320 }, 1
  for n = 2, 32 do odd[n] = row; row = row << 1 end
  local even = gf2Square(odd)   -- two zero bits
  odd = gf2Square(even)         -- four
  repeat
    even = gf2Square(odd)
    if len2 & 1 ~= 0 then crc1 = gf2Times(even, crc1) end
    len2 = len2 >> 1
    if len2 == 0 then break end
    odd = gf2Square(even)
    if len2 & 1 ~= 0 then crc1 = gf2Times(odd, crc1) end
    len2 = len2 >> 1
  until len2 == 0
  return crc1 ~ crc2
end
-- The CRC-32 and length of n copies of a string whose CRC-32 is c and length l.
local function crc32Repeat(c, l, n)
  local acc, accLength = 0, 0
  while n > 0 do
    if n & 1 ~= 0 then acc, accLength = crc32Combine(acc, c, l), accLength + l end
    n = n >> 1
    if n > 0 then c, l = crc32Combine(c, c, l), l * 2 end
  end
  return acc, accLength
end

-- MARK: - Deflate
-- Raw deflate (RFC 1951) of contents that are mostly runs, so that a file of kilobytes holds
-- hundreds of megabytes. A content is a list of pieces: a string, { run = byte, n = count }, or
-- { rep = pieces, n = count }. One dynamic-Huffman block whose code gives the length 258 and
-- the distance 1 a bit each, so a run costs 2 bits per 258 bytes, deflate's best ratio; other
-- lengths and literals take 9-10 bits, other distances 5-6.

-- A complete prefix code on symbols 0..n-1: `first` gets 1 bit, the other k = n-1 share the
-- other half, 2^L - k of them at L bits and the rest at L+1 (L = ceil(log2 k)).
local function halfAndRest(n, first)
  local k, L = n - 1, 0
  while (1 << L) < k do L = L + 1 end
  local lengths, j = {}, 0
  for s = 0, n - 1 do
    if s == first then lengths[s] = 1 else j = j + 1; lengths[s] = j <= (1 << L) - k and L or L + 1 end
  end
  return lengths
end
-- Canonical codes for code lengths (RFC 1951 3.2.2), bit-reversed: deflate packs bits from
-- the least significant end but sends Huffman codes most significant bit first.
local function canonical(lengths, n)
  local count, nextCode, codes = {}, {}, {}
  for b = 0, 15 do count[b] = 0 end
  for s = 0, n - 1 do if lengths[s] > 0 then count[lengths[s]] = count[lengths[s]] + 1 end end
  local code = 0
  for b = 1, 15 do code = (code + count[b - 1]) << 1; nextCode[b] = code end
  for s = 0, n - 1 do
    local l = lengths[s]
    if l > 0 then
      local c, r = nextCode[l], 0
      nextCode[l] = c + 1
      for _ = 1, l do r, c = (r << 1) | (c & 1), c >> 1 end
      codes[s] = r
    end
  end
  return codes
end
local litLengths, distLengths = halfAndRest(286, 285), halfAndRest(30, 0)
local litCodes, distCodes = canonical(litLengths, 286), canonical(distLengths, 30)
local lengthBase, lengthExtra, distBase, distExtra = {}, {}, {}, {}
do
  local base = 3
  for code = 257, 284 do
    lengthBase[code], lengthExtra[code] = base, code < 265 and 0 or (code - 261) // 4
    base = base + (1 << lengthExtra[code])
  end
  lengthBase[285], lengthExtra[285] = 258, 0
  base = 1
  for code = 0, 29 do
    distBase[code], distExtra[code] = base, code < 4 and 0 or (code - 2) // 2
    base = base + (1 << distExtra[code])
  end
end

local function deflatePieces(pieces)
  local out, acc, nbits = {}, 0, 0
  local function put(value, bits)
    acc, nbits = acc | (value << nbits), nbits + bits
    while nbits >= 8 do
      out[#out + 1] = string.char(acc & 0xff)
      acc, nbits = acc >> 8, nbits - 8
    end
  end
  local function symbol(s) put(litCodes[s], litLengths[s]) end
  local function copy(dist, len)   -- len >= 3, split into deflate's lengths of 3..258
    local dc = 29
    while distBase[dc] > dist do dc = dc - 1 end
    while len > 0 do
      local l = len <= 258 and len or (len - 258 < 3 and len - 3 or 258)
      local lc = 285
      if l < 258 then lc = 284; while lengthBase[lc] > l do lc = lc - 1 end end
      symbol(lc)
      if lengthExtra[lc] > 0 then put(l - lengthBase[lc], lengthExtra[lc]) end
      put(distCodes[dc], distLengths[dc])
      if distExtra[dc] > 0 then put(dist - distBase[dc], distExtra[dc]) end
      len = len - l
    end
  end
  local function run(c, n)
    symbol(c)
    if n >= 4 then copy(1, n - 1) else for _ = 2, n do symbol(c) end end
  end
  local function emit(list)
    for _, p in ipairs(list) do
      if type(p) == "string" then
        local i = 1
        while i <= #p do
          local c, j = p:byte(i), i
          while j < #p and p:byte(j + 1) == c do j = j + 1 end
          run(c, j - i + 1)
          i = j + 1
        end
      elseif p.run then
        if p.n > 0 then run(p.run:byte(), p.n) end
      else
        for _ = 1, p.n do emit(p.rep) end
      end
    end
  end
  put(1, 1); put(2, 2)                         -- the last block, dynamic codes
  put(286 - 257, 5); put(30 - 1, 5); put(19 - 4, 4)
  -- the code-length code: the lengths in use, by a complete code (2^L - k at L-1 bits, the rest at L)
  local used, list = {}, {}
  for s = 0, 285 do used[litLengths[s]] = true end
  for s = 0, 29 do used[distLengths[s]] = true end
  for v = 0, 18 do if used[v] then list[#list + 1] = v end end
  local k, L = #list, 0
  while (1 << L) < k do L = L + 1 end
  local clLengths = {}
  for v = 0, 18 do clLengths[v] = 0 end
  for i, v in ipairs(list) do clLengths[v] = i <= (1 << L) - k and L - 1 or L end
  local clCodes = canonical(clLengths, 19)
  for _, v in ipairs { 16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15 } do put(clLengths[v], 3) end
  for s = 0, 285 do put(clCodes[litLengths[s]], clLengths[litLengths[s]]) end
  for s = 0, 29 do put(clCodes[distLengths[s]], clLengths[distLengths[s]]) end
  emit(pieces)
  symbol(256)
  if nbits > 0 then out[#out + 1] = string.char(acc & 0xff) end
  return table.concat(out)
end

-- The CRC-32 and length of a content (pieces as deflatePieces takes them), without building it.
local function crcPieces(pieces)
  local c, length = 0, 0
  for _, p in ipairs(pieces) do
    local pc, pl
    if type(p) == "string" then pc, pl = crc32(p), #p
    elseif p.run then pc, pl = crc32Repeat(crc32(p.run), 1, p.n)
    else
      local rc, rl = crcPieces(p.rep)
      pc, pl = crc32Repeat(rc, rl, p.n)
    end
    c, length = crc32Combine(c, pc, pl), length + pl
  end
  return c, length
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
-- A zip (APPNOTE's local headers, central directory and end record) of entries { name, data },
-- stored, or { name, deflated = bytes, crc = , size = } deflated; crc32 is gzip's, above. The
-- size an entry declares (`size` in the directory, `localSize` in its local header) may lie:
-- past 32 bits it goes in a ZIP64 extra field, as Python's zipfile writes it.
local function zipOf(entries)
  local body, dir = {}, {}
  local offset = 0
  for _, e in ipairs(entries) do
    local name, data = e[1], e.deflated or e[2]
    local method, crc = e.deflated and 8 or 0, e.crc or crc32(data)
    local function header(central, size)
      local big = size >= 0xFFFFFFFF
      local extra = big and string.pack("<I2I2I8I8", 1, 16, size, #data) or ""
      local s32, c32, version = big and 0xFFFFFFFF or size, big and 0xFFFFFFFF or #data, big and 45 or 20
      if central then
        return string.pack("<I4I2I2I2I2I2I2I4I4I4I2I2I2I2I2I4I4", 0x02014b50, version, version, 0, method, 0, 0x21, crc, c32, s32,
          #name, #extra, 0, 0, 0, 0, offset) .. name .. extra
      end
      return string.pack("<I4I2I2I2I2I2I4I4I4I2I2", 0x04034b50, version, 0, method, 0, 0x21, crc, c32, s32, #name, #extra) .. name .. extra
    end
    local head = header(false, e.localSize or e.size or #data)
    dir[#dir + 1] = header(true, e.size or #data)
    body[#body + 1] = head .. data
    offset = offset + #head + #data
  end
  local central = table.concat(dir)
  return table.concat(body) .. central .. string.pack("<I4I2I2I2I2I4I4I2", 0x06054b50, 0, 0, #entries, #entries, #central, offset, 0)
end
-- A deflated zip entry of a content (pieces, as deflatePieces takes them); `size` overrides
-- the size it declares.
local function deflatedEntry(name, pieces, size)
  local crc, length = crcPieces(pieces)
  return { name, deflated = deflatePieces(pieces), crc = crc, size = size or length }
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
-- BININT, or LONG1 of 8 bytes past 32 bits (huge sizes in a lying view)
local function pint(i) return (i >= -(1 << 31) and i < 1 << 31) and "J" .. string.pack("<i4", i) or "\x8a\x08" .. string.pack("<i8", i) end
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
-- `lie`: the first tensor's storage and view, given ({ kind, n, offset, size, stride }).
local function pthCheckpoint(legacy, lie)
  local storages, body = {}, {}
  for s = 1, R(1, 3) do
    local kind, n = pick(storageKinds), R(1, 24)
    if lie and s == 1 then kind, n = lie.kind, lie.n end
    local data = {}
    for i = 1, n do data[i] = kind[3]() end
    storages[s] = { key = legacy and tostring(R(10 ^ 8, 10 ^ 9)) or tostring(s - 1), kind = kind, n = n, data = table.concat(data) }
  end
  for k = 1, math.max(#storages, R(1, 5)) do
    local st = storages[k] or pick(storages)   -- every storage used (the legacy keys list must name only those)
    local off, size, stride = pthView(st.n)
    if lie and k == 1 then off, size, stride = lie.offset, lie.size, lie.stride end
    -- now and then a dimension of size 1, whose stride (any) is never used
    if chance(0.2) and not (lie and k == 1) then local at = R(#size + 1); table.insert(size, at, 1); table.insert(stride, at, R(0, 99)) end
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

-- A prepared cache of seeds/d.zip (data.zipDataset's {cache = }): its file name and key depend
-- on the zip's path, size and time, so the cases keep them and replace only the contents.
do
  data.zipDataset("seeds/d.zip", { size = 8, fit = "crop", cache = "seeds/cache" })
  for _, name in ipairs(paths.list("seeds/cache")) do
    if name:match("%.npz$") then seeds.cacheName = name end
  end
  addSeed("cache", "seeds/cache/" .. seeds.cacheName)
  seeds.cacheMeta = seeds.cache[1].bytes:match('(%{%s*"key".-%]%s*%})')
end
-- Images of extreme aspect ratios (a few hundred bytes each).
seeds.pngAspect = {}
for i, shape in ipairs { { 3, 1, 20000 }, { 1, 20000, 1 }, { 4, 2, 30000 }, { 3, 1, 65535 } } do
  local p = ("seeds/aspect%d.png"):format(i)
  image.save(p, tensor.zeros(shape) + 0.5)
  addSeed("pngAspect", p)
end

-- MARK: - Files whose declared sizes lie
-- Each makes a file of kilobytes that declares gigabytes or more: a zip entry's size, an .npy
-- shape, a .pth tensor's view of its storage, pickled integers of thousands of digits or tens of
-- megabytes, an image's aspect ratio. Reading one must refuse it, or cost what the bytes present
-- justify. Half of them are read with no tensor memory limit (as scripts run), where only the
-- reader's own bounds stand between the file and the machine's memory.
local GiB = 1 << 30
local lieSizes = { 3 * GiB, 8 * GiB, 1 << 40, GiB - 1, 256 << 20, 1 << 62 }

-- An .npy (format 1.0, C order) of a declared dtype and shape, followed by `data`.
local function npy(descr, shape, data)
  local dims = {}
  for i, d in ipairs(shape) do dims[i] = tostring(d) end
  local text = #dims == 1 and "(" .. dims[1] .. ",)" or "(" .. table.concat(dims, ", ") .. ")"
  local header = ("{'descr': '%s', 'fortran_order': False, 'shape': %s, }"):format(descr, text)
  header = header .. (" "):rep((64 - (10 + #header + 1) % 64) % 64) .. "\n"
  return "\x93NUMPY\1\0" .. string.pack("<I2", #header) .. header .. (data or "")
end
local function product(shape) local n = 1; for _, d in ipairs(shape) do n = n * d end; return n end
local hugeShapes = { { 1 << 20, 1 << 20 }, { 1 << 40 }, { 1 << 31, 1 << 31, 1 << 31 }, { 0, 1 << 62 }, { 3, 1 << 61 }, { 1 << 28 } }
local elementBytes = { ["<f8"] = 8, ["<f4"] = 4, ["|u1"] = 1, ["<i8"] = 8, ["<f2"] = 2, ["|b1"] = 1 }
local descrs = { "<f8", "<f4", "|u1", "<i8", "<f2", "|b1" }

-- A torch.save zip whose data.pkl is a content (pieces), deflated.
local function pthOfPickle(pieces)
  return zipOf { deflatedEntry("archive/data.pkl", pieces), { "archive/byteorder", "little" }, { "archive/version", "3\n" } }
end

-- Each returns the file's bytes and what it claims.
local lies = {}
function lies.npzLie()
  local v = R(6)
  if v == 1 then   -- a small array, deflated, in an entry that declares gigabytes
    local payload = npy("<f4", { 2, 2 }, string.pack("<ffff", 1, 2, 3, 4))
    local e = deflatedEntry("mu.npy", { payload }, pick(lieSizes))
    if chance(0.5) then e.localSize = #payload end
    return zipOf { e, { "sigma.npy", npy("<f8", { 1, 1 }, string.pack("<d", 1)) } }, "entry declares " .. e.size
  elseif v == 2 then   -- an .npy header declaring terabytes over a few bytes
    local descr, shape = pick(descrs), pick(hugeShapes)
    return zipOf { { "mu.npy", npy(descr, shape, ("\0"):rep(R(0, 64))) } }, ("npy %s of shape %s"):format(descr, table.concat(shape, "x"))
  elseif v == 3 then   -- the same, and the entry declares what the shape needs (deflated, so nothing is there)
    local descr, shape = pick(descrs), { 1 << R(10, 20), 1 << R(10, 20) }
    local head = npy(descr, shape)
    local e = deflatedEntry("mu.npy", { head, { run = "\0", n = R(0, 4096) } }, #head + product(shape) * elementBytes[descr])
    return zipOf { e }, ("npy %s of shape %s, entry declares %d"):format(descr, table.concat(shape, "x"), e.size)
  elseif v == 4 then   -- tens of megabytes of zero bytes in tens of kilobytes: decoded as doubles, 8x
    local n, descr = pick { 16 << 20, 32 << 20 }, pick { "|u1", "|b1" }
    return zipOf { deflatedEntry("mu.npy", { npy(descr, { n }), { run = "\0", n = n } }) }, ("%d zero bytes as %s"):format(n, descr)
  elseif v == 5 then   -- a ZIP64 end record declaring a huge directory
    local zip = zipOf { { "mu.npy", npy("<f8", { 1 }, string.pack("<d", 1)) } }
    local count, size, at = pick { 1 << 40, 0xFFFF, 1 << 62, 1 }, pick { 1 << 40, 46, 0, 1 << 62 }, pick { 0, 1 << 40, #zip }
    local body = zip:sub(1, #zip - 22)
    local record = string.pack("<I4I8I2I2I4I4I8I8I8I8", 0x06064b50, 44, 45, 45, 0, 0, count, count, size, at)
    local locator = string.pack("<I4I4I8I4", 0x07064b50, 0, #body, 1)
    local eocd = string.pack("<I4I2I2I2I2I4I4I2", 0x06054b50, 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)
    return body .. record .. locator .. eocd, ("ZIP64 directory of %d entries, %d bytes at %d"):format(count, size, at)
  end
  -- several entries, each declaring what one entry may take
  local entries, size = {}, pick { GiB - 1, 512 << 20, 3 * GiB }
  for i = 1, R(2, 6) do entries[i] = deflatedEntry(("a%d.npy"):format(i), { npy("<f4", { 1 }, "\0\0\0\0") }, size) end
  return zipOf(entries), ("%d entries declaring %d each"):format(#entries, size)
end

function lies.zipLie()
  local png = seeds.png[1].bytes
  local v = R(4)
  if v == 1 then   -- an image entry declaring far more than its deflated bytes
    local e = deflatedEntry("00000/img0.png", { png }, pick(lieSizes))
    if chance(0.5) then e.localSize = #png end
    return zipOf { e }, "image entry declares " .. e.size
  elseif v == 2 then   -- dataset.json declaring more than its limit, or just under it
    local json = '{"labels": [["00000/img0.png", 0]]}'
    local e = deflatedEntry("dataset.json", { json }, pick { 256 << 20, (256 << 20) + 1, 3 * GiB, 1 << 40 })
    return zipOf { { "00000/img0.png", png }, e }, "dataset.json declares " .. e.size
  elseif v == 3 then   -- many entries, each declaring just under the per-image limit
    local entries = {}
    for i = 1, R(2, 8) do entries[i] = deflatedEntry(("00000/img%d.png"):format(i), { png }, GiB - R(1, 2)) end
    return zipOf(entries), #entries .. " images declaring 1 GiB each"
  end
  -- an honest entry holding an image of extreme aspect ratio
  local img = pick(seeds.pngAspect).bytes
  return zipOf { deflatedEntry("00000/wide.png", { img }), { "00000/img0.png", png } }, "an image of extreme aspect ratio"
end

-- A prepared cache that lies; the valid one's key and name, so that the reader takes it.
function lies.cacheLie()
  local pixels = npy("|u1", { 2, 3, 8, 8 }, ("\7"):rep(2 * 3 * 8 * 8))
  local labels = npy("<i8", { 2 }, string.pack("<i8i8", 0, 1))
  local meta = seeds.cacheMeta
  local v = R(4)
  local entries, how
  if v == 1 then   -- pixels.npy deflated, declaring gigabytes to a terabyte
    local e = deflatedEntry("pixels.npy", { pixels }, pick { 3 * GiB, 8 * GiB, 1 << 40, 1 << 62 })
    entries, how = { e, { "labels.npy", labels }, { "classes.json", meta } }, "pixels.npy declares " .. e.size
  elseif v == 2 then   -- a pixels header of 2^40 images over a few bytes
    local n = pick { 1 << 40, 1 << 31, 1 << 59 }
    entries = { { "pixels.npy", npy("|u1", { n, 3, 8, 8 }, ("\0"):rep(64)) }, { "labels.npy", labels }, { "classes.json", meta } }
    how = "pixels of " .. n .. " images"
  elseif v == 3 then   -- the header and the entry agree on 1 TiB of pixels (deflated: nothing is there)
    local head = npy("|u1", { 1 << 34, 1, 8, 8 })
    entries = { deflatedEntry("pixels.npy", { head, { run = "\0", n = 4096 } }, #head + (1 << 40)), { "labels.npy", labels },
                { "classes.json", meta } }
    how = "pixels.npy of 1 TiB"
  else   -- labels or classes.json declaring gigabytes
    local name = pick { "labels.npy", "classes.json" }
    local e = deflatedEntry(name, { name == "labels.npy" and labels or meta }, pick(lieSizes))
    entries = { { "pixels.npy", pixels }, e, name == "labels.npy" and { "classes.json", meta } or { "labels.npy", labels } }
    how = name .. " declares " .. e.size
  end
  return zipOf(entries), how
end

-- A .pth whose first tensor views a storage of a few elements as gigabytes or more (stride 0),
-- or with a size whose extent no storage holds.
function lies.pthLie()
  local views = {
    { kind = storageKinds[2], n = 1, offset = 0, size = { 1 << 29 }, stride = { 0 } },
    { kind = storageKinds[1], n = 1, offset = 0, size = { 1 << 20, 1 << 20 }, stride = { 0, 0 } },
    { kind = storageKinds[4], n = 4, offset = 0, size = { 1 << 31, 4 }, stride = { 0, 1 } },
    { kind = storageKinds[3], n = 2, offset = 0, size = { 2, 1 << 40 }, stride = { 1, 0 } },
    { kind = storageKinds[6], n = 1, offset = 0, size = { 1 << 30 }, stride = { 0 } },
    { kind = storageKinds[2], n = 1, offset = 0, size = { 1 << 62 }, stride = { 0 } },
    { kind = storageKinds[1], n = 8, offset = 0, size = { 1 << 40 }, stride = { 1 } },
    { kind = storageKinds[2], n = 4, offset = 3, size = { 1 << 31, 1 << 31 }, stride = { 0, 0 } },
  }
  local lie = pick(views)
  local legacy = chance(0.3)
  local file = pthCheckpoint(legacy, lie)
  return file, ("%s%s of %d viewed as %s stride %s"):format(legacy and "legacy " or "", lie.kind[1], lie.n,
    table.concat(lie.size, "x"), table.concat(lie.stride, ","))
end

-- Protocol 0 decimal integers (LONG "L...L\n" or INT "I...\n") of up to Python's 4300 digits (and
-- one past), thousands of times over: tens of megabytes of pickle in tens of kilobytes of file.
-- Parsing must be linear.
function lies.pickleLong()
  local digits, count = pick { 4300, 4300, 4300, 2000, 4301 }, pick { 3000, 6000, 9000 }
  local op = pick { "L", "L", "I" }
  local unit = { op .. (chance(0.2) and "-" or "") .. "1", { run = "7", n = digits - 1 }, op == "L" and "L\n" or "\n" }
  local v = R(3)
  local pieces
  if v == 1 then pieces = { "\x80\x02(", { rep = unit, n = count }, "l." }                         -- a list of them
  elseif v == 2 then pieces = { "\x80\x02}(", { rep = { unit[1], unit[2], unit[3], "N" }, n = count }, "u." }   -- dict keys
  else pieces = { "\x80\x02(", { rep = { unit[1], unit[2], unit[3], "0" }, n = count }, "N." } end    -- each popped
  local how = ("%d %s of %d digits (%s)"):format(count, op == "L" and "LONGs" or "INTs", digits, ({ "list", "keys", "pop" })[v])
  return pthOfPickle(pieces), how
end

-- A LONG4 of tens of megabytes (runs: a few kilobytes deflated) as a dict key, a key twice in
-- a tuple (through the memo), or a list item.
function lies.pngAspect()
  local img = pick(seeds.pngAspect)
  return img.bytes, img.path:match("[^/]*$")
end

function lies.pickleKey()
  local n = pick { 24000000, 48000000, 89000000, 100000000 }
  local long4 = { "\x8b" .. string.pack("<i4", n), { run = "\1", n = n } }
  local v = R(3)
  local pieces
  if v == 1 then pieces = { "\x80\x02}", long4[1], long4[2], "Ns." }
  elseif v == 2 then pieces = { "\x80\x02}", long4[1], long4[2], "q\0h\0\x86Ns." }
  else pieces = { "\x80\x02]", long4[1], long4[2], "a." } end
  return pthOfPickle(pieces), ("LONG4 of %d bytes as %s"):format(n, ({ "a dict key", "a tuple key, twice", "a list item" })[v])
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

-- Uses what a reader returned, so corrupt values (NaN, odd shapes) go through real code; under
-- the usual memory limit, since a read without one is over (the use's costs are not the reader's).
local function use(v, depth)
  depth = depth or 0
  if depth == 0 then tensor.setMemoryLimit(768 << 20) end
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
-- a cache placed where data.zipDataset looks for seeds/d.zip's (the key holds the path as given)
readers.cache = function(_, root)
  local ds = data.zipDataset("seeds/d.zip", { size = 8, fit = "crop", cache = root .. "/cache" })
  use(ds.images)
end
readers.cacheLie = readers.cache
readers.npzLie = readers.npz
readers.pthLie, readers.pickleLong, readers.pickleKey = readers.pth, readers.pth, readers.pth
readers.zipLie = function(path)
  local ds = data.zipDataset(path, { size = R(1, 32), fit = pick { "pad", "pad", "crop", "stretch" } })
  use(ds.images)
end
readers.pngAspect = function(_, root)
  local ds = data.imageFolder(root, { size = R(1, 32), channels = pick { 1, 3 }, fit = pick { "pad", "pad", "crop", "stretch" } })
  use(ds.images)
end
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
  elseif kind == "cache" or kind == "cacheLie" then
    paths.mkdir(dir .. "/cache")
    writeFile(dir .. "/cache/" .. seeds.cacheName, bytes)
    return dir .. "/cache/" .. seeds.cacheName, dir
  elseif kind == "pngAspect" then
    writeFile(dir .. "/wide.png", bytes)
    if chance(0.5) then writeFile(dir .. "/small.png", seeds.png[1].bytes) end
    return dir .. "/wide.png", dir
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
  local seed, bytes, how, unlimited
  if lies[kind] then   -- the lie is the case; now and then mutated on top
    bytes, how = lies[kind]()
    if chance(0.15) then local m; bytes, m = mutate(bytes, false); how = how .. ", then " .. m end
    unlimited = chance(0.5)
    if unlimited then how = how .. ", no memory limit" end
  else
    seed = pick(seeds[kind])
    if kind == "safetensors" or kind == "ckptTensors" then bytes, how = mutateSafetensors(seed.bytes)
    else bytes, how = mutate(seed.bytes, kind == "ckptState" or kind == "jsonl") end
  end
  local desc = ("%s %s (%d bytes)"):format(kind, how, #bytes)
  if trace then trace:write("F ", k, " ", desc, "\n") end
  if opt.verbose then io.stderr:write("F ", k, " ", desc, "\n") end
  local path, root = place(kind, k, bytes, seed)
  if unlimited then tensor.setMemoryLimit(nil) end
  local good, err = pcall(readers[kind], path, root)
  tensor.setMemoryLimit(768 << 20)
  if opt.verbose and not good then io.stderr:write("  ", tostring(err):sub(1, 300), "\n") end
  if good then ok = ok + 1 else failed = failed + 1 end
end
if trace then trace:write("D ", opt.files, "\n") end
print(("files.lua: seed %d, %d files (%d read, %d refused with an error)"):format(opt.seed, opt.files, ok, failed))
