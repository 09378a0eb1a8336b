-- Sizes that a file, a saved state or a script declares, trusted nowhere: each case below once
-- trapped, aborted, hung or took gigabytes (an adversarial fuzzer found the twelve families),
-- and must now be a clear Lua error or cost what its result needs.
--
--   luagan scripts/dev/tests/declared_sizes.lua                  every family
--   prlimit --as=4294967296 luagan scripts/dev/tests/declared_sizes.lua --allocations
--        only the allocation cases, which must be Lua errors under a 4 GiB address space
--
-- The two-rank cases (the gradient averager's agreement) are in scripts/dev/tests/dist/collectives.lua.
local T = require("testing")
local check, checkError = T.check, T.checkError

local allocationsOnly = arg[1] == "--allocations"
local fixtures = "Tests/Fixtures/sizes/"
local tmp = os.tmpname()
os.remove(tmp)
paths.mkdir(tmp)

-- Runs fn and returns its results, with the wall time and how much resident memory grew (the
-- process's peak, VmHWM, before and after): a case that took gigabytes shows it here.
local function peakKiB()
  local f = assert(io.open("/proc/self/status"))
  local kb = tonumber(f:read("a"):match("VmHWM:%s*(%d+)"))
  f:close()
  return kb
end
local function cheaply(what, maxMiB, maxSeconds, fn)
  local before, t0 = peakKiB(), os.clock()
  local r = table.pack(fn())
  local grewMiB, seconds = (peakKiB() - before) / 1024, os.clock() - t0
  -- (under AddressSanitizer its quarantine keeps freed blocks resident: no bound there)
  check(grewMiB <= maxMiB or tensor.config().addressSanitizer,
        ("%s: resident peak grew by %.0f MiB (at most %d expected)"):format(what, grewMiB, maxMiB))
  check(seconds <= maxSeconds, ("%s: took %.1f s of CPU (at most %g expected)"):format(what, seconds, maxSeconds))
  return table.unpack(r, 1, r.n)
end

-- A zip of stored entries whose directory may lie: entries = { {name, data, declared = n} }.
-- `declared` replaces the uncompressed size (ZIP64 when past 4 GiB); method 8 with `deflated`.
local function crc32(s)
  local c = 0xFFFFFFFF
  for i = 1, #s do
    c = c ~ s:byte(i)
    for _ = 1, 8 do c = (c & 1) ~= 0 and (0xEDB88320 ~ (c >> 1)) or (c >> 1) end
  end
  return c ~ 0xFFFFFFFF
end
local function zipFile(path, entries)
  local out, dir = {}, {}
  local at = 0
  for _, e in ipairs(entries) do
    local data, size = e.data, e.declared or #e.data
    local method = e.deflated and 8 or 0
    local big = size >= 0xFFFFFFFF
    local extra = big and string.pack("<I2I2I8I8", 1, 16, size, #data) or ""
    local local_ = string.pack("<I4I2I2I2I2I2I4I4I4I2I2", 0x04034b50, 45, 0, method, 0, 0x21, crc32(data), #data,
      big and 0xFFFFFFFF or size, #e.name, #extra) .. e.name .. extra .. data
    local cextra = big and string.pack("<I2I2I8I8", 1, 16, size, #data) or ""
    dir[#dir + 1] = string.pack("<I4I2I2I2I2I2I2I4I4I4I2I2I2I2I2I4I4", 0x02014b50, 45, 45, 0, method, 0, 0x21, crc32(data),
      #data, big and 0xFFFFFFFF or size, #e.name, #cextra, 0, 0, 0, 0, at) .. e.name .. cextra
    out[#out + 1] = local_
    at = at + #local_
  end
  local d = table.concat(dir)
  local f = assert(io.open(path, "wb"))
  f:write(table.concat(out), d, string.pack("<I4I2I2I2I2I4I4I2", 0x06054b50, 0, 0, #entries, #entries, #d, at, 0))
  f:close()
end
-- Raw deflate of n zero bytes in fixed-Huffman blocks: a literal 0, then matches of 258 at
-- distance 1 (each 258-byte run costs 2 bytes), so a few hundred bytes inflate to ~100 KB.
local function deflatedZeros(n)
  local bits, acc, nbits, out = {}, 0, 0, {}
  local function put(v, count) -- LSB first
    acc = acc | (v << nbits); nbits = nbits + count
    while nbits >= 8 do out[#out + 1] = string.char(acc & 0xFF); acc = acc >> 8; nbits = nbits - 8 end
  end
  local function putHuffman(code, len) -- Huffman codes go MSB first
    local r = 0
    for i = 0, len - 1 do r = r | (((code >> i) & 1) << (len - 1 - i)) end
    put(r, len)
  end
  put(1, 1); put(1, 2)                    -- BFINAL, fixed Huffman
  putHuffman(0x30, 8)                     -- literal 0
  local left = n - 1
  while left >= 258 do
    putHuffman(0xC5, 8)                   -- length 258: code 285 = 11000101
    putHuffman(0, 5)                      -- distance 1
    left = left - 258
  end
  for _ = 1, left do putHuffman(0x30, 8) end
  putHuffman(0, 7)                        -- end of block (256)
  if nbits > 0 then put(0, 8 - nbits) end
  return table.concat(out), bits
end

local function same(a, b) return a:numel() == b:numel() and (a - b):abs():max():item() == 0 end

local function npyHeader(descr, shape)
  local dims = table.concat(shape, ", ") .. (#shape == 1 and "," or "")
  local h = ("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }"):format(descr, dims)
  h = h .. (" "):rep((64 - (10 + #h + 1) % 64) % 64) .. "\n"
  return "\147NUMPY\1\0" .. string.pack("<I2", #h) .. h
end

if not allocationsOnly then

-- MARK: - 1, 2: the gradient averager

T.test("1. the gradient averager sums parameter sizes with overflow checks", function()
  local p = tensor.zeros(1, { dtype = "float64" }):expand(1 << 61)
  checkError("too large", function() return dist.GradientAverager({ p }) end)
  checkError("too large", function() return dist.GradientAverager({ tensor.zeros(1):expand(1 << 62), tensor.zeros(1):expand(1 << 62) }) end)
  local ok = dist.GradientAverager({ tensor.zeros(3):requiresGrad(true) })
  ok:arm(); check(ok:finish() == true)
end)

-- MARK: - 3: a number operand under a tiny memory limit

T.test("3. a number operand past tensor.setMemoryLimit is an error, not a trap", function()
  local x = tensor.zeros(2)
  tensor.setMemoryLimit(1)
  local ok1, e1 = pcall(function() return x - 1 end)
  local ok2, e2 = pcall(function() return 2 * x end)
  local ok3, e3 = pcall(function() return x:clamp(0, 1) end)
  tensor.setMemoryLimit(nil)
  check(not ok1 and tostring(e1):find("setMemoryLimit"), tostring(e1))
  check(not ok2 and tostring(e2):find("setMemoryLimit"), tostring(e2))
  check(not ok3, "clamp under the limit")
  check((x - 1):sum():item() == -2, "works again once the limit is lifted")
end)

-- MARK: - 4: saved loader state

T.test("4. a loader state with an extreme epoch is refused", function()
  local ds = data.fashionMNIST { split = "test" }
  local loader = data.Loader(ds, { batchSize = 16 })
  for _, e in ipairs { math.maxinteger, (1 << 40) + 1, -1, math.mininteger } do
    checkError("epoch must be in 1..", function() loader:setState { epoch = e, position = 0, seed = 0 } end)
  end
  checkError("cannot start epoch", function() loader:setState { epoch = 1, position = math.maxinteger, seed = 0 } end)
  loader:setState { epoch = 1 << 40, position = #loader, seed = 0 }   -- the last epoch, at its end
  checkError("epoch must be in 1..", function() return loader:next() end)
  loader:setState { epoch = 3, position = 0, seed = 0 }
  check(loader:next():size(1) == 16, "usable again from a sane state")
end)

-- MARK: - 5: saving views

T.test("5. saving an expanded view streams it, or refuses it before allocating", function()
  local huge = tensor.zeros(1):expand(1 << 40)
  checkError("safetensors keeps no strides", function() tensor.save(tmp .. "/huge.safetensors", { w = huge }) end)
  checkError("safetensors keeps no strides", function() ckpt.save(tmp .. "/ck", { w = huge }) end)
  check(not paths.exists(tmp .. "/huge.safetensors"), "no file left behind")
  for _, name in ipairs(paths.list(tmp)) do check(not name:find("%.tmp%-"), "a temporary file left: " .. name) end
  -- 64 MiB written from a 12-byte storage without making it whole in memory
  local row = tensor.new { 1, 2, 3 }
  local v = cheaply("save of a 64 MiB expanded view", 32, 10, function()
    tensor.save(tmp .. "/view.safetensors", { w = row:unsqueeze(1):expand(1 << 22, 3) })
  end)
  local back = tensor.load(tmp .. "/view.safetensors").w
  check(back:size(1) == 1 << 22 and back[1 << 22][3] == 3 and back:sum():item() == 6 * (1 << 22), "the view's values")
end)

-- MARK: - 6: zip entries and .npy headers

T.test("6. zip entries and .npy headers that declare more than they hold", function()
  local body = npyHeader("<f8", { 2 }) .. string.pack("<dd", 1, 2)
  zipFile(tmp .. "/ok.npz", { { name = "a.npy", data = body } })
  check(tensor.load(tmp .. "/ok.npz").a[2] == 2, "an honest npz reads")
  for _, gib in ipairs { 3, 8, 1024 } do
    zipFile(tmp .. "/lie.npz", { { name = "a.npy", data = body, declared = gib << 30 } })
    local ok, e = cheaply(gib .. " GiB declared by a stored entry", 16, 1, function() return pcall(tensor.load, tmp .. "/lie.npz") end)
    check(not ok and tostring(e):find("declares"), tostring(e))
  end
  local zeros = deflatedZeros(100000)
  zipFile(tmp .. "/bomb.npz", { { name = "a.npy", data = zeros, deflated = true, declared = 3 << 30 } })
  local ok, e = cheaply("3 GiB declared by 800 deflated bytes", 16, 1, function() return pcall(tensor.load, tmp .. "/bomb.npz") end)
  check(not ok and tostring(e):find("more than deflate can expand"), tostring(e))
  -- an .npy header declaring 1 TiB over 16 bytes
  zipFile(tmp .. "/shape.npz", { { name = "a.npy", data = npyHeader("|u1", { 1 << 40 }) .. ("\0"):rep(16) } })
  ok, e = cheaply("an .npy header of 1 TiB", 16, 1, function() return pcall(tensor.load, tmp .. "/shape.npz") end)
  check(not ok and tostring(e):find("needs"), tostring(e))
  -- 8 MiB of uint8 zeros: float64 in memory (8x), never an intermediate array on top
  local n = 8 << 20
  zipFile(tmp .. "/u8.npz", { { name = "a.npy", data = npyHeader("|u1", { n }) .. ("\0"):rep(n) } })
  local t = cheaply("an 8 MiB uint8 array", 100, 5, function() return tensor.load(tmp .. "/u8.npz").a end)
  check(t:numel() == n and t:dtype() == "float64", "uint8 read as float64")
end)

T.test("6. a prepared cache whose pixels.npy declares 1 TiB is prepared again", function()
  local root, cache = tmp .. "/folder", tmp .. "/cache"
  paths.mkdir(root)
  for i = 1, 3 do image.save(root .. "/" .. i .. ".png", tensor.rand(3, 8, 8)) end
  local ds = data.imageFolder(root, { size = 8, cache = cache })
  check(ds.size == 3, "prepared")
  local file
  for _, name in ipairs(paths.list(cache)) do if name:match("%.npz$") then file = cache .. "/" .. name end end
  local f = assert(io.open(file, "rb")); local bytes = f:read("a"); f:close()
  local meta = bytes:match('({"key".-%]})')
  check(meta, "the cache's classes.json")
  zipFile(file, {
    { name = "pixels.npy", data = npyHeader("|u1", { 1 << 40, 3, 8, 8 }) .. ("\0"):rep(64), declared = 1 << 40 },
    { name = "labels.npy", data = npyHeader("<i8", { 3 }) .. ("\0"):rep(24) },
    { name = "classes.json", data = meta },
  })
  local again = cheaply("a lying cache", 64, 5, function() return data.imageFolder(root, { size = 8, cache = cache }) end)
  check(again.size == 3, "prepared again from the images")
end)

-- MARK: - 7, 8, 9: PyTorch checkpoints

T.test("7. a .pth storage viewed with stride 0 as 2^29 float64 stays a view", function()
  local sd = cheaply("expanded_view.pth", 16, 1, function() return tensor.load(fixtures .. "expanded_view.pth") end)
  check(sd.w:numel() == 1 << 29 and sd.w:dtype() == "float64", "shape and dtype")
  local s = cheaply("its sum", 16, 1, function() return sd.w:sum():item() end)
  check(s == 0, "sum")
end)

T.test("8. pickled decimal integers of 4,300 digits are read in linear time", function()
  local list = cheaply("long_decimals.pth (26 MB of digits)", 200, 5, function() return tensor.load(fixtures .. "long_decimals.pth") end)
  check(#list == 6000 and list[1] == math.huge, "6,000 integers past a double's range")
end)

T.test("9. an 80 MB pickled integer as a dict key is refused cheaply", function()
  local ok, e = cheaply("bigint_key.pth", 400, 3, function() return pcall(tensor.load, fixtures .. "bigint_key.pth") end)
  check(not ok and tostring(e):find("dict keys of more than"), tostring(e))
end)

-- MARK: - 10: fitting images

T.test("10. fit = 'pad' of a 1 x 20,000 image never makes the 20,000-pixel square", function()
  local root = tmp .. "/strip"
  paths.mkdir(root)
  image.save(root .. "/strip.png", tensor.rand(3, 1, 20000))
  image.save(root .. "/square.png", tensor.ones(3, 16, 16))
  local ds = cheaply("a 1 x 20,000 PNG, padded", 100, 5, function() return data.imageFolder(root, { size = 32, fit = "pad" }) end)
  check(ds.size == 2, "both images")
  local strip = ds:get(2)   -- sorted: square.png, strip.png
  check(strip:shape()[2] == 32 and strip[1][16]:sum():item() > 0 and strip[1][1]:sum():item() == 0, "a bright row centred on black")
end)

-- MARK: - 11: ops on expanded views

T.test("11. reductions and indexing of expanded views cost their results", function()
  local e = tensor.zeros(1):expand(1 << 30, 1)
  local r = cheaply("indexSelect", 16, 1, function() return e:indexSelect(1, { 1 }) end)
  check(r:numel() == 1, "indexSelect")
  check(cheaply("sum", 16, 1, function() return e:sum():item() end) == 0, "sum")
  check(cheaply("max", 16, 1, function() return e:max():item() end) == 0, "max")
  local b = tensor.randn(3, 1, 2, { dtype = "float64" })
  local big = b:expand(3, 1 << 40, 2)
  local s = cheaply("sum over 2^41 elements", 16, 1, function() return big:sum(2) end)
  check(((s - b:sum(2) * 2 ^ 40):abs():max():item()) <= 1e-3 * s:abs():max():item(), "sum = slice x count")
  check(false == pcall(function() return big:max(3) end), "a 2^41-element result is refused")
  local v, i = big:max(2)
  check(same(v, b:squeeze(2)) and i:eq(1):sum():item() == 6, "max along an expanded dim: the first copy")
  local mid = b:expand(3, 4096, 2)
  local index = tensor.ones(3, 4096, 1) + tensor.rand(3, 4096, 1):gt(0.5)
  check(same(mid:gather(3, index), mid:contiguous():gather(3, index)), "gather through the strides")
  check(same(mid:indexSelect(2, { 4096, 1 }), b:expand(3, 2, 2)), "indexSelect along an expanded dim")
  local t = tensor.randn(5, 6):t()
  check(same(t:indexSelect(1, { 6, 2 }), t:contiguous():indexSelect(1, { 6, 2 })), "indexSelect of a transpose")
  checkError("cannot allocate", function() return big:gather(3, tensor.ones(1):expand(3, 1 << 40, 1)) end)
end)

-- MARK: - Borders, shared rows and many dimensions (a second reading of every allocation)

-- A table of 41 entries whose border (#t) is 2^40: Lua's length operator is a border, not a count.
local function bigBorder(e)
  local parts = {}
  for k = 0, e do parts[#parts + 1] = ("[%d]=1"):format(1 << k) end
  return load("return {" .. table.concat(parts, ",") .. "}")()
end

T.test("tables whose border is far past their entries size nothing", function()
  local t = bigBorder(40)
  check(#t == 1 << 40, "the border really is 2^40")
  checkError("", function() return tensor.zeros(t) end)
  checkError("", function() return tensor.cat(t) end)
  checkError("", function() return optim.Adam(t) end)
  checkError("", function() return tensor.new(t) end)
  checkError("", function() return plot.lines(tmp .. "/p.png", { { y = t } }) end)
  plot.lines(tmp .. "/p.png", { { y = { 1, 2 }, labels = t } })   -- labels past the points are ignored
end)

T.test("nested tables that share their rows are checked before their values are read", function()
  local a = {}
  for i = 1, 1000 do a[i] = 0 end
  local b = {}
  for i = 1, 1000 do b[i] = a end
  local c = {}
  for i = 1, 1000 do c[i] = b end
  local d = {}
  for i = 1, 1000 do d[i] = c end
  checkError("cannot allocate", function() return tensor.new(d) end)
  checkError("MiB of JSON", function() return json.encode(c) end)
end)

T.test("more than 64 dimensions is an error; many small dimensions print as a shape", function()
  local s = {}
  for i = 1, 100000 do s[i] = 1 end
  local ok, e = pcall(tensor.zeros, s)
  check(not ok and tostring(e):find("at most 64") and #tostring(e) < 400, "a short error: " .. tostring(e):sub(1, 200))
  local twos = {}
  for i = 1, 40 do twos[i] = 2 end
  local text = cheaply("printing 2^40 values of 40 dims", 16, 1, function() return tostring(tensor.zeros(1):expand(twos)) end)
  check(#text < 2000, "printed as its shape")
end)

T.test("totable, log.series and metrics.extract of huge views fail at once", function()
  checkError("too large for Lua tables", function() return tensor.zeros(1):expand(1 << 59):totable() end)
  checkError("list of log records", function() return log.series(tensor.zeros(1):expand(1 << 27, 2), "x") end)
  checkError("cannot allocate", function()
    return metrics.extract(function(x) return x:flatten(2) end, tensor.zeros(1, 1, 1, 1):expand(1 << 30, 1, 4, 4))
  end)
end)

T.test("metrics, gradcheck and split of expanded views are checked first", function()
  local e = tensor.zeros(1, 1):expand(2, 1 << 20)
  checkError("cannot allocate", function() return metrics.featureStats(e) end)
  checkError("cannot allocate", function() return tensor.gradcheck(function(x) return x:expand(1 << 40) end, { tensor.zeros(1) }) end)
  checkError("", function() return tensor.zeros(1):expand(1 << 40):split(1) end)
end)

end -- not allocationsOnly

-- MARK: - 12: allocations past the process's own limits

T.test("12. allocations larger than the process may take are Lua errors", function()
  local cases = {
    { "image.resize to 32768", function() return image.resize(tensor.rand(1, 4, 4), 32768) end },
    { "a loader batch of 4.3 GB", function()
      local loader = data.Loader(data.fashionMNIST { split = "test" }, { batchSize = 16, transform = { data.pad(4096) } })
      return loader:next()
    end },
    { "a 5 GB tensor", function() return tensor.zeros(5 << 30, { dtype = "float64" }) end },
    { "an expanded view made contiguous", function() return tensor.zeros(1):expand(3 << 30):contiguous() end },
    { "toArray of a big view", function() return tensor.zeros(1):expand(1 << 31):totable() end },
    -- 33.5M rows of one row each: 67M tables, which the innermost rows alone (33.5M) undercount
    { "totable of many one-row rows", function() return tensor.zeros(1, 1, 1):expand(1 << 25, 1, 2):totable() end },
    { "a loader's intermediate of 270 MB per sample, for a 1-pixel sample", function()
      local ds = data.fashionMNIST { split = "test" }
      return data.Loader(ds, { batchSize = 1, transform = { data.pad(4096), data.pad(4096), data.pad(4096), data.pad(4096),
        data.pad(4096), data.pad(4096), data.downscale(49180) } }):next()
    end },
    { "tensor.new of 1e9 shared values", function()
      local a = {}
      for i = 1, 1000 do a[i] = 0 end
      local b = {}
      for i = 1, 1000 do b[i] = a end
      local c = {}
      for i = 1, 1000 do c[i] = b end
      return tensor.new(c)
    end },
    { "argmax of a 600-million-row view", function() return tensor.zeros(1, 1):expand(6e8 // 1, 2):argmax(2) end },
    { "image.resize of a big input", function() return image.resize(tensor.zeros(1, 1, 16384, 16384), 16384) end },
  }
  if not allocationsOnly then return end  -- without the limit these would really allocate
  for _, case in ipairs(cases) do
    local ok, e = pcall(case[2])
    local why = tostring(e)
    check(not ok and (why:find("cannot allocate") or why:find("not enough memory")), case[1] .. ": " .. why)
  end
end)

-- Freed tensors stay mapped in the allocator's cache (up to 1.3x the live peak); under an
-- address-space limit, a request that fits only once the cache is handed back must still succeed.
T.test("13. memory freed to the allocator's cache is usable under the limit", function()
  if not allocationsOnly then return end
  local held = {}
  for i = 1, 400 do held[i] = tensor.ones(1024, 1024) end   -- 1.6 GiB
  held = nil
  collectgarbage()
  check(tensor.memory().cachedBytes > 1 << 30, ("cached %d bytes"):format(tensor.memory().cachedBytes))
  local ok, big = pcall(tensor.zeros, 590, 1024, 1024)       -- 2.3 GiB
  check(ok, "after freeing 1.6 GiB: " .. tostring(big))
  if ok then check(big:numel() == 590 * 1024 * 1024) end
end)

os.execute("rm -rf '" .. tmp .. "'")
T.finish()
