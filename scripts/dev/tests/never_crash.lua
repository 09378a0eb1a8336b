-- Every crash, hang and silent loss found by trying luagan adversarially, as a
-- regression case: each must now be a clear Lua error (or simply work), and the process must
-- reach the end. Before the fixes each of these killed the process or corrupted its heap.
local T = require("testing")
local check, checkError = T.check, T.checkError

local tmp = os.tmpname()
os.remove(tmp)
paths.mkdir(tmp)

-- MARK: - The Lua stack

T.test("containers with many children, also inside a coroutine", function()
  local function build(k)
    local list = {}
    for i = 1, k do list[i] = nn.Identity() end
    local s = nn.Sequential(table.unpack(list))
    local l = nn.ModuleList(list)
    return #s, #l
  end
  check(select(1, build(100)) == 100)
  local co = coroutine.wrap(function() return build(300) end)
  local a, b = co()
  check(a == 300 and b == 300, "300 children inside a coroutine")
end)

T.test("totable on rank-40 and rank-60 tensors", function()
  for _, rank in ipairs { 40, 60 } do
    local shape = {}
    for i = 1, rank do shape[i] = 1 end
    local t = tensor.ones(shape):totable()
    for _ = 1, rank - 1 do t = t[1] end
    check(t[1] == 1, "rank " .. rank)
  end
end)

T.test("gradcheck of 80 inputs inside a coroutine", function()
  local inputs = {}
  for i = 1, 80 do inputs[i] = tensor.randn(1, { dtype = "float64" }):requiresGrad(true) end
  local ok, msg = coroutine.wrap(function()
    return tensor.gradcheck(function(...)
      local s = select(1, ...)
      for i = 2, select("#", ...) do s = s + select(i, ...) end
      return s
    end, inputs)
  end)()
  check(ok == true, msg)
end)

-- MARK: - Size arithmetic

T.test("sizes that would wrap are errors", function()
  local x = tensor.randn(3, 4)
  checkError("outside dim", function() return x:narrow(1, 2, math.maxinteger) end)
  checkError("too large", function() return x:pad { math.maxinteger, math.maxinteger } end)
  checkError("padding", function() return tensor.randn(1, 1, 5, 5):avgPool2d(5, { padding = math.maxinteger, stride = 1 }) end)
  checkError("upsampleNearest", function() return tensor.randn(1, 1, 2, 2):upsampleNearest(1 << 62) end)
  local e = tensor.zeros(1):expand(1 << 62)
  checkError("cat", function() return tensor.cat({ e, e, e, e }) end)
  checkError("image.grid", function() return image.grid(tensor.rand(2, 1, 4, 4), { padding = math.maxinteger }) end)
  local f = tensor.randn(8, 3)
  checkError("k must be", function() return metrics.precisionRecall(f, f, { k = math.maxinteger }) end)
end)

-- An IDX file (MNIST layout), optionally gzip-compressed by a run-length deflate encoder.
local function be32(v) return string.pack(">I4", v) end
local function writeFile(path, bytes) local fh = assert(io.open(path, "wb")); fh:write(bytes); fh:close() end

T.test("an IDX header declaring 2^30 x 2^30 images with no pixels", function()
  local root = tmp .. "/idx"
  paths.mkdir(root)
  writeFile(root .. "/train-images-idx3-ubyte", be32(0x803) .. be32(16) .. be32(1 << 30) .. be32(1 << 30))
  writeFile(root .. "/train-labels-idx1-ubyte", be32(0x801) .. be32(16) .. ("\0"):rep(16))
  checkError("data.mnist", function() return data.mnist { root = root } end)
end)

T.test("a gzip IDX file that inflates past its header is refused without inflating it all", function()
  local root = tmp .. "/bomb"
  paths.mkdir(root)
  -- 1 image of 28x28 declared, then 64 MiB of zeros: fixed-Huffman deflate, each 13-bit symbol
  -- pair repeats the last byte 258 times.
  local header = be32(0x803) .. be32(1) .. be32(28) .. be32(28)
  local bits, nbits, out = 0, 0, {}
  local function put(v, n)  -- LSB-first bit packing
    bits = bits | (v << nbits); nbits = nbits + n
    while nbits >= 8 do out[#out + 1] = string.char(bits & 0xff); bits = bits >> 8; nbits = nbits - 8 end
  end
  local function rev(v, n) local r = 0; for _ = 1, n do r = (r << 1) | (v & 1); v = v >> 1 end; return r end
  local function literal(b)  -- fixed Huffman: 0..143 -> 8 bits from 0x30
    if b < 144 then put(rev(0x30 + b, 8), 8) else put(rev(0x190 + b - 144, 9), 9) end
  end
  put(1, 1); put(1, 2)  -- final block, fixed Huffman
  for i = 1, #header do literal(header:byte(i)) end
  literal(0)
  local repeats = (64 << 20) // 258
  local sym = rev(0xC5, 8)  -- length code 285 (258), 8 bits 11000101; distance code 0, 5 bits
  for _ = 1, repeats do put(sym, 8); put(0, 5) end
  put(0, 7)  -- end of block (256: 7 zero bits)
  put(0, 7)
  local gz = "\31\139\8\0\0\0\0\0\0\255" .. table.concat(out) .. string.pack("<I4I4", 0, 0)
  writeFile(root .. "/train-images-idx3-ubyte.gz", gz)
  writeFile(root .. "/train-labels-idx1-ubyte", be32(0x801) .. be32(1) .. "\0")
  tensor.resetPeakMemory()
  local before = tensor.memory().rss
  checkError("holds more than", function() return data.mnist { root = root } end)
  check(tensor.memory().rss - before < 32 << 20, "reading stopped at the declared size")
end)

T.test("indices of math.mininteger", function()
  local x = tensor.randn(4, 3)
  checkError("out of range", function() return x:indexSelect(1, { math.mininteger }) end)
  checkError("out of range", function() return tensor.embedding(x, { math.mininteger }) end)
  checkError("out of range", function() return nn.Embedding(4, 3)({ math.mininteger }) end)
  checkError("index", function() return nn.Embedding(4, 3)(tensor.new { -9.2e18 }) end)
end)

T.test("a 0-d tensor has no dimension 1", function()
  local s = tensor.new(3)
  for _, f in ipairs {
    function() return s:argmax(1) end, function() return s:max(1) end, function() return s:softmax(1) end,
    function() return s:flip(1) end, function() return tensor.cat({ s, s }, 1) end, function() return s:size(1) end,
    function() return s:select(1, 1) end, function() return s:split(1, 1) end, function() return s:sum(1) end,
    function() return s:narrow(1, 1, 1) end, function() return s:transpose(1, 1) end,
  } do checkError("dimension", f) end
  check(s:unsqueeze(1):size(1) == 1, "unsqueeze of a 0-d tensor still works")
end)

T.test("elementwise ops on a zero-size inner dim", function()
  local e = tensor.randn(4, 0)
  check(e:exp():numel() == 0 and (e + 1):numel() == 0 and e:sum():item() == 0)
  check(tensor.randn(0, 3):t():contiguous():numel() == 0)
end)

-- MARK: - Sizes nobody bounded

T.test("huge views and huge requests are errors, not traps", function()
  -- a reshape that the strides can express is a view, as in PyTorch; one they cannot is a copy, refused
  check(tensor.zeros(1):expand(1 << 40):reshape(1 << 20, -1):size(2) == 1 << 20, "reshape of an expanded view: a view")
  checkError("cannot allocate", function() return tensor.zeros(2, 1):expand(2, 1 << 40):reshape(-1) end)
  checkError("totable", function() return tensor.zeros(1):expand(1 << 40):totable() end)
  check(#tostring(tensor.zeros(1):expand(1 << 40)) < 2000, "printing a huge view reads only what it shows")
  -- in-place writes into an expanded view are refused (a fuzzer case: zero() of a 2^53-long expand ran for days)
  checkError("cannot write in place into an expanded tensor", function() return tensor.zeros(1):expand(1 << 53):zero() end)
  checkError("cannot write in place into an expanded tensor", function() return tensor.zeros(3, 1):expand(3, 4):fill(2) end)
  check(#tostring(tensor.zeros(1 << 40, 0)) < 200, "printing an empty tensor with a huge dim")
  checkError("image.resize", function() return image.resize(tensor.rand(4, 1, 4, 3), 32768) end)
  checkError("dirsPerRepeat", function()
    local im = tensor.rand(2, 1, 16, 16)
    return metrics.swd(im, im, { dirsPerRepeat = 1 << 40 })
  end)
  local ds = data.fashionMNIST { split = "test" }
  checkError("data.Loader", function() return data.Loader(ds, { batchSize = 1 << 40, transform = { data.pad(4096) } }) end)
  checkError("split", function() return tensor.zeros(1):expand(1 << 40):split(1) end)
end)

-- Run with LUAGAN_LUA_HEAP_LIMIT=512M (ScriptTests does), so the heap runs out quickly.
T.test("the Lua heap running out is a catchable error", function()
  local ok, err = pcall(string.rep, "x", 1 << 30)
  check(not ok and tostring(err):find("not enough memory"), tostring(err))
  local ok2, err2 = pcall(function() local t = {}; for i = 1, 1 << 40 do t[i] = i end end)
  check(not ok2 and tostring(err2):find("not enough memory"), tostring(err2))
  collectgarbage()
  check(tensor.ones(2):sum():item() == 2, "the state still works")
end)

-- MARK: - Structures that recurse

T.test("a module cannot contain itself, and trees are bounded", function()
  local s = nn.Sequential(nn.Identity())
  checkError("itself", function() return s:add(s) end)
  local outer = nn.Sequential(s)
  checkError("itself", function() return s:add(outer) end)
  local l = nn.ModuleList { nn.Identity() }
  checkError("itself", function() return l:add(l) end)
  -- A chain built from the top and from the bottom stops at the depth limit, quickly.
  local top = nn.Identity()
  local ok = pcall(function() for _ = 1, 100000 do top = nn.Sequential(top) end end)
  check(not ok, "a 100,000-deep chain from the top is refused")
  local root = nn.Sequential()
  local cur = root
  local ok2, err = pcall(function() for _ = 1, 100000 do local n = nn.Sequential(); cur:add(n); cur = n end end)
  check(not ok2 and tostring(err):find("deeper"), tostring(err))
  check(#root:parameters() == 0 and #root:stateDictNames() == 0, "walks of the deepest allowed tree work")
  root, cur, top = nil, nil, nil
  collectgarbage()
end)

T.test("dropping a 300,000-op autograd chain", function()
  local x = tensor.ones(1):requiresGrad(true)
  local y = x
  for _ = 1, 300000 do y = y + 1 end
  check(y:item() == 300001)
  y = nil
  collectgarbage()
  collectgarbage()
  local z = x * 2
  z:sum():backward()
  check(x.grad:item() == 2, "autograd still works")
end)

T.test("ckpt.save of a table that contains itself", function()
  local t = { a = 1 }
  t.self = t
  checkError("contains itself", function() return ckpt.save(tmp .. "/cyc", { state = t }) end)
  local deep = {}
  local c = deep
  for _ = 1, 500 do c.x = {}; c = c.x end
  checkError("nested", function() return ckpt.save(tmp .. "/deep", { state = deep }) end)
  checkError("nested more than", function() return json.decode(("["):rep(10000)) end)
end)

-- MARK: - State that is trusted

T.test("optimizer and generator states are validated", function()
  local p = tensor.randn(3):requiresGrad(true)
  local opt = optim.Adam({ p })
  p.grad = tensor.ones(3)
  opt:step()
  local sd = opt:stateDict()
  sd.state[1].exp_avg_sq = nil
  checkError("exp_avg_sq", function() return opt:loadStateDict(sd) end)
  for _, bad in ipairs { 0 / 0, math.huge, 1e20, -1, 2.5 } do
    local s2 = opt:stateDict()
    s2.state[1].step = bad
    checkError("step", function() return opt:loadStateDict(s2) end)
  end
  local s3 = opt:stateDict()
  s3.paramGroups[1].lr = 0 / 0
  checkError("lr", function() return opt:loadStateDict(s3) end)
  opt:step()  -- still usable
  checkError("all-zero", function() return tensor.setRNGState { 0, 0, 0, 0 } end)
  check(tensor.randint(1, 10, 5):numel() == 5 and tensor.randperm(5):numel() == 5)
  tensor.randint(math.mininteger, math.maxinteger, 4)
end)

T.test("the module metatable's __index called by hand", function()
  local m = nn.Linear(2, 2)
  local index = debug.getmetatable(m).__index
  check(getmetatable(m) == false, "the metatable is protected")
  for _, args in ipairs { { 5, "weight" }, { "x", "y" }, { io.stdout, "weight" }, { {}, "weight", 1, 2, 3 }, {} } do
    pcall(index, table.unpack(args))
  end
  check(index(m, "weight") ~= nil)
end)

-- MARK: - Files and options that are bombs

T.test("a PNG declaring far more pixels than its bytes can hold", function()
  -- CRC-32 (PNG's), for hand-made chunks.
  local crcTable = {}
  for n = 0, 255 do
    local c = n
    for _ = 1, 8 do c = (c & 1) ~= 0 and (0xEDB88320 ~ (c >> 1)) or (c >> 1) end
    crcTable[n] = c
  end
  local function crc(s)
    local c = 0xFFFFFFFF
    for i = 1, #s do c = crcTable[(c ~ s:byte(i)) & 0xff] ~ (c >> 8) end
    return c ~ 0xFFFFFFFF
  end
  local function chunk(kind, body) return be32(#body) .. kind .. body .. be32(crc(kind .. body)) end
  local png = "\137PNG\r\n\26\n" .. chunk("IHDR", be32(8000) .. be32(8000) .. "\8\0\0\0\0")
    .. chunk("IDAT", ("\0"):rep(4096)) .. chunk("IEND", "")
  writeFile(tmp .. "/bomb.png", png)
  tensor.resetPeakMemory()
  checkError("more than its", function() return image.load(tmp .. "/bomb.png") end)
  checkError("maxPixels", function() return image.load(tmp .. "/bomb.png", { maxPixels = 1000 }) end)
  check(tensor.memory().peakTensorBytes < 64 << 20, "no pixel memory was allocated")
end)

T.test("metrics options that never return", function()
  local f = tensor.randn(20, 4)
  checkError("subsets", function() return metrics.kid(f, f, { subsets = 1 << 40, subsetSize = 10 }) end)
  checkError("degree", function() return metrics.kid(f, f, { degree = math.maxinteger, subsetSize = 10 }) end)
  local im = tensor.rand(2, 1, 16, 16)
  checkError("weights", function() return metrics.msssim(im, im, { weights = { 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1 } }) end)
end)

-- MARK: - Security

T.test("paths from options never reach a shell", function()
  local marker = tmp .. "/pwned"
  local dir = tmp .. "/$(touch " .. marker .. ")"
  local lg = log.Logger(dir)
  lg:log(1, { x = 1 })
  lg:close()
  check(not io.open(marker), "the shell command ran")
  check(select(2, paths.exists(dir)), "the folder has the literal name")
  ckpt.save(tmp .. "/`touch " .. marker .. "`", { a = 1 })
  check(not io.open(marker), "the shell command ran (ckpt)")
end)

T.test("a foreign userdata given the tensor metatable is not a tensor", function()
  local mt = debug.getmetatable(tensor.zeros(1))
  local saved = debug.getmetatable(io.stdout)
  debug.setmetatable(io.stdout, mt)
  local ok = pcall(function()
    checkError("luagan.Tensor", function() return tensor.exp(io.stdout) end)
    checkError("luagan.Tensor", function() return io.stdout:exp() end)
    checkError("luagan.Tensor", function() return io.stdout + 1 end)
    checkError("luagan.Tensor", function() return tostring(io.stdout) end)
  end)
  debug.setmetatable(io.stdout, saved)
  check(ok, "foreign userdata checks")
  local mm = debug.getmetatable(nn.Linear(1, 1))
  debug.setmetatable(io.stderr, mm)
  local ok2 = pcall(function() return io.stderr:parameters() end)
  debug.setmetatable(io.stderr, saved)
  check(not ok2, "a file handle is not a module")
end)

-- MARK: - Interrupts and saves

T.test("an error during tensor.save's walk fails the save and writes nothing", function()
  local path = tmp .. "/partial.safetensors"
  local state = { a = tensor.ones(2), b = tensor.ones(2), c = tensor.ones(2), d = tensor.ones(2) }
  -- Raise on the 3rd call after the hook is set: the first is tensor.save itself, the next ones
  -- are the protected lua_next steps of its walk (as Ctrl-C's hook would, mid-walk).
  local calls = 0
  local ok, err = pcall(function()
    debug.sethook(function()
      calls = calls + 1
      if calls == 3 then debug.sethook(); error("interrupted!") end
    end, "c")
    tensor.save(path, state)
    debug.sethook()
  end)
  debug.sethook()
  check(not ok and tostring(err):find("interrupted"), "tensor.save reported success: " .. tostring(err))
  check(io.open(path) == nil, "a partial file was written")
  tensor.save(path, state)
  local back = tensor.load(path)
  local n = 0
  for _ in pairs(back) do n = n + 1 end
  check(n == 4, "all four tensors saved")
end)

paths.remove(tmp)
T.finish("never_crash")
