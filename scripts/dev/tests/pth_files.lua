-- PyTorch checkpoints (.pth/.pt/.bin) read by tensor.load without running their pickle: the zip
-- format and the legacy stream against what torch wrote (every dtype, views, shared storages,
-- transposes, stride 0, 0-d, empty), a model's state_dict loaded into luagan's modules, nested
-- checkpoints with Python values, pickle protocols 0-5 and a big-endian archive; then files that
-- must be refused with an error naming the file and the reason, nothing executed (os.system,
-- eval, subprocess, INST, a whole nn.Module), and corrupt or hostile ones (unknown opcodes,
-- truncation anywhere, short storages, sizes that overflow or cannot be held, cycles,
-- exponential sharing, deep nesting). Fixtures: scripts/dev/fixtures/make_pth_fixtures.py (torch,
-- safetensors) under Tests/Fixtures/pth.
local T = require("testing")
local check, checkError = T.check, T.checkError
local root = os.getenv("LUAGAN_HOME") or (debug.getinfo(1, "S").source:match("^@(.*)/scripts/dev/tests/") or ".")
local dir = root .. "/Tests/Fixtures/pth/"
local want = tensor.load(dir .. "expected.safetensors")
local tmp = os.tmpname()
os.remove(tmp)
paths.mkdir(tmp)
os.remove("/tmp/pwned")   -- what every payload below would write if it ran

local function read(path) local f = assert(io.open(path, "rb")); local s = f:read("a"); f:close(); return s end
local function write(path, bytes) local f = assert(io.open(path, "wb")); f:write(bytes); f:close() end

local function prefixed(prefix)
  local out, n = {}, 0
  for k, v in pairs(want) do
    if k:sub(1, #prefix) == prefix then out[k:sub(#prefix + 1)] = v; n = n + 1 end
  end
  return out, n
end

local function flat(t) local v = t:reshape(-1):totable(); return type(v) == "table" and v or { v } end

-- Exactly equal: shape, dtype (when given) and every value (NaN to NaN, -0 to -0, infinities).
local function same(got, expected, dtype, what)
  check(tensor.isTensor(got), what .. ": not a tensor but " .. type(got), 2)
  local gs, es = table.concat(got:shape(), ","), table.concat(expected:shape(), ",")
  check(gs == es, ("%s: shape {%s}, expected {%s}"):format(what, gs, es), 2)
  check(not dtype or got:dtype() == dtype, ("%s: dtype %s, expected %s"):format(what, got:dtype(), dtype), 2)
  local a, b = flat(got:to("float64")), flat(expected:to("float64"))
  for i = 1, #b do
    local x, y = a[i], b[i]
    local ok = (x == y and (x ~= 0 or 1 / x == 1 / y)) or (x ~= x and y ~= y)
    check(ok, ("%s: element %d is %.17g, expected %.17g"):format(what, i, x, y), 2)
  end
end

local float32 = { f32 = true, f16 = true, bf16 = true, shared_a = true, shared_b = true, view = true, transposed = true,
                  strided = true, expanded = true, scalar = true, empty = true }

T.test("zip and legacy state dicts: every dtype, views, shared storages, transposes, stride 0, 0-d, empty", function()
  local expected, count = prefixed("tensors.")
  for _, file in ipairs { "tensors.pth", "tensors_legacy.pth" } do
    local got, meta = tensor.load(dir .. file)
    check(type(meta) == "table" and next(meta) == nil, file .. ": an empty metadata table second, as for safetensors")
    local n = 0
    for name in pairs(got) do n = n + 1; check(expected[name], file .. ": an unexpected entry " .. tostring(name)) end
    check(n == count, ("%s: %d entries, expected %d"):format(file, n, count))
    for name, e in pairs(expected) do same(got[name], e, float32[name] and "float32" or "float64", file .. " " .. name) end
    check(got.scalar:dim() == 0 and got.scalar:item() == 3.25 and got.count:item() == 7, "0-d tensors")
    check(flat(got.i64)[6] == 2 ^ 53 and flat(got.i64)[1] == -(2 ^ 40), "int64 exact to 2^53")
    local h = flat(got.f16)
    check(h[5] == math.huge and 1 / h[6] == -math.huge and h[4] > 0, "float16 infinity, -0 and a subnormal")
    check(got.empty:dim() == 2 and got.empty:size(1) == 0 and got.empty:size(2) == 3, "an empty (0, 3) tensor")
  end
end)

T.test("a Conv+BN model's state_dict loads into luagan's modules and gives torch's output", function()
  local expected, count = prefixed("module.")
  for _, file in ipairs { "module.pth", "module_legacy.pth" } do
    local sd = tensor.load(dir .. file)
    local n = 0
    for name, t in pairs(sd) do n = n + 1; same(t, expected[name], nil, file .. " " .. name) end
    check(n == count and sd["1.num_batches_tracked"]:dtype() == "float64" and sd["1.num_batches_tracked"]:item() == 2,
      "num_batches_tracked (int64) as a float64 0-d tensor")
    local m = nn.Sequential(nn.Conv2d(2, 3, 3), nn.BatchNorm2d(3), nn.ReLU(), nn.Conv2d(3, 2, 2))
    m:loadStateDict(sd)
    m:eval()
    T.close(m(want["module_io.input"]), want["module_io.output"], 1e-6, 1e-5, file .. ": eval output")
  end
end)

T.test("nested checkpoints: tables of tables, optimizer state keyed by ints, Python values as Lua values", function()
  for _, file in ipairs { "nested.pth", "nested_legacy.pth" } do
    local c = tensor.load(dir .. file)
    same(c.state_dict.w, want["nested.state_dict.w"], "float32", file .. " state_dict.w")
    same(c.state_dict.b, want["nested.state_dict.b"], "float64", file .. " state_dict.b")
    same(c.param, want["nested.param"], "float32", file .. " an nn.Parameter")
    check(c.iteration == 1200 and math.type(c.iteration) == "integer", "an int is a Lua integer")
    check(c.lr == 2e-4 and c.name == "biggan" and c.unicode == "h\u{e9}llo \u{2211}", "float, str, unicode")
    check(c.raw == "\0abc\xff", "bytes as a Lua string, NUL included")
    check(#c.flags == 2 and c.flags[1] == true and c.flags[2] == false, "a list of bools")
    check(#c.shape == 2 and c.shape[1] == 4 and c.shape[2] == 5, "a tuple as an array")
    check(#c.size == 2 and c.size[1] == 2 and c.size[2] == 3, "torch.Size as an array")
    local cfg = c.config
    check(cfg.G_ch == 64 and cfg.shared == true and cfg.none == nil and cfg.ratio == -0.5, "a nested dict")
    check(cfg.neg == -(1 << 40) and math.type(cfg.neg) == "integer", "a negative int past 32 bits")
    check(cfg.big == 2 ^ 70 and math.type(cfg.big) == "float", "an int past 64 bits as a float")
    check(next(c.empty_list) == nil and next(c.empty_dict) == nil, "empty containers")
    local ids = 0
    for pid, st in pairs(c.optimizer.state) do
      ids = ids + 1
      check(math.type(pid) == "integer", "Adam's state is keyed by Python's parameter ids")
      for k, v in pairs(st) do same(v, want[("nested.optimizer.%d.%s"):format(pid, k)], nil, ("%s state[%d].%s"):format(file, pid, k)) end
    end
    local group = c.optimizer.param_groups[1]
    check(ids == 6 and #group.params == 6 and group.params[1] == 0 and group.lr == 2e-4, "param_groups")
    check(group.betas[1] == 0 and group.betas[2] == 0.999 and group.amsgrad == false, "betas, a tuple of floats")
  end
  same(tensor.load(dir .. "bare.pth"), want.bare, "float64", "torch.save of a single (transposed) tensor")
end)

T.test("pickle protocols 0 to 5, Python 2's protocol 0, legacy protocol 1, unsigned dtypes, a big-endian archive", function()
  local function values(v, what)
    check(v.int == 7 and math.type(v.int) == "integer" and v.neg == -123456789, what .. ": ints")
    check(v.big == 2 ^ 70 and v.float == 0.1 and v.inf == math.huge, what .. ": big int, floats")
    check(v.str == "h\u{e9}llo\n'q'" and v.raw == "\0\xff", what .. ": str and bytes")
    check(v.yes == true and v.no == false and v.none == nil, what .. ": bools and None")
    check(v.list[1] == 1 and v.list[2][2] == 3 and v.list[3][2] == "five" and #v.list == 3, what .. ": nested lists and tuples")
    check(v.dict.a == 1 and v.dict[2] == "b", what .. ": a dict with str and int keys")
    check(#v.set == 1 and v.set[1] == 3, what .. ": a set as an array")
  end
  values(tensor.load(dir .. "p0.pth").values, "protocol 0")
  for _, file in ipairs { "p1.pth", "p2.pth", "p3.pth", "p4.pth", "p5.pth", "legacy_p1.pth" } do
    local c = tensor.load(dir .. file)
    values(c.values, file)
    same(c.t, want["protocols.t"], "float32", file .. " t")
    same(c.n, want["protocols.n"], "float64", file .. " n")
  end
  local py2 = tensor.load(dir .. "p0_py2.pth")
  check(py2.key == "va'lA\n" and py2.n == 42 and py2.b == true and py2.l == 12345678901234567890.0, "STRING, INT, LONG")
  check(#py2.x == 3 and py2.x[1] == 0.5 and py2.x[2] == -3 and py2.x[3] == py2.key, "LIST, APPEND, FLOAT, GET of a memo")
  local u = tensor.load(dir .. "unsigned.pth")
  for _, name in ipairs { "u16", "u32", "u64" } do same(u[name], want["unsigned." .. name], "float64", "_rebuild_tensor_v3 " .. name) end
  local be = tensor.load(dir .. "bigendian.pth")
  same(be.f32, want["bigendian.f32"], "float32", "big-endian float32")
  same(be.i16, want["bigendian.i16"], "float64", "big-endian int16, transposed")
  same(be.f64, want["bigendian.f64"], "float64", "big-endian float64, 0-d")
end)

T.test("code in a checkpoint is refused by name, and never runs", function()
  local cases = {
    { "evil.pth", "uses the global posix.system, which a state dict never needs; refused" },
    { "evil_legacy.pth", "uses the global posix.system, which a state dict never needs; refused (the object pickle" },
    { "evil_nested.pth", "uses the global posix.system" },
    { "evil_eval.pth", "uses the global builtins.eval" },
    { "evil_subprocess_legacy.pth", "uses the global commands.call" },   -- pickle's Python 2 name for subprocess.call
    { "evil_inst.pth", "uses the global os.system" },
    { "evil_module.pth", "uses the global torch.nn.modules.container.Sequential" },
  }
  for _, case in ipairs(cases) do
    local err = checkError(case[2], tensor.load, dir .. case[1])
    check(err:find("tensor.load: '" .. dir .. case[1] .. "'", 1, true), "the error names the file: " .. err)
  end
  check(not paths.exists("/tmp/pwned"), "no payload ran")
end)

T.test("a stride-0 tensor of 2^40 elements on one element of storage loads as the view it is", function()
  local w = tensor.load(dir .. "huge_expand.pth").w
  T.check(w:numel() == 1 << 40 and w:sum():item() == 0, "2^40 zeros, summed without making them")
end)

T.test("corrupt and hostile checkpoints are errors naming the file and the reason", function()
  local cases = {
    { "bad_opcode.pth", "has an unknown pickle opcode 0xff" },
    { "truncated.pth", "is truncated: the pickle ends" },
    { "truncated_legacy.pth", "is truncated: storage" },
    { "short_storage.pth", "needs 10 float32 elements of storage '0', which holds 4; it is corrupt" },
    { "huge_size.pth", "declares a size that overflows" },
    { "huge_storage.pth", "storage '0' holds 16 bytes, but its tensors declare 1099511627776 elements" },
    { "missing_storage.pth", "has no entry 'missing_storage/data/0' for storage '0'" },
    { "cyclic.pth", "nests values more than 100 deep (or holds a list that contains itself)" },
    { "laughs.pth", "holds more than 10000000 values once shared references are expanded" },
    { "complex.pth", "holds a torch.ComplexFloatStorage, a complex or quantized storage, which luagan does not read" },
    { "float8.pth", "holds a tensor of dtype torch.float8_e4m3fn, which luagan does not read" },
    { "torchscript.pt", "is a TorchScript archive (torch.jit.save), not a state dict" },
  }
  for _, case in ipairs(cases) do
    local err = checkError(case[2], tensor.load, dir .. case[1])
    check(err:find(dir .. case[1], 1, true), "the error names the file: " .. err)
  end
end)

-- The legacy stream around a hand-written object pickle: magic, protocol 1001, sys_info, the
-- object, an empty list of storage keys.
local header = "\x80\x02\x8a\x0a\x6c\xfc\x9c\x46\xf9\x20\x6a\xa8\x50\x19." .. "\x80\x02M\xe9\x03." .. "\x80\x02}."
local function legacy(obj) return header .. obj .. "\x80\x02]." end

T.test("hand-made pickles: refused opcodes, a broken stack, a million-deep nesting, every truncation", function()
  local cases = {
    { "\x80\x02\x82\x01.", "uses the pickle opcode EXT1" },
    { "\x80\x05\x97.", "uses the pickle opcode NEXT_BUFFER" },
    { "\x80\x02(o.", "uses the pickle opcode OBJ" },
    { "\x80\x06N.", "uses pickle protocol 6" },
    { "\x80\x02a.", "pops an empty stack" },
    { "\x80\x02h\x07.", "reads memo entry 7, which was never stored" },
    { "\x80\x02]K\x01K\x02s.", "sets an item of a list, not a dict" },
    { "\x80\x02}]]s.", "a dict key that is a list" },
    { "\x80\x02K\x01t.", "ends a MARK that was never set" },
    { "\x80\x02cposix\nsystem\nX\x04\x00\x00\x00trueR.", "uses the global posix.system" },
    { "\x80\x02X\x01\x00\x00\x00aQ.", "has a persistent id that is a str" },
    { "\x80\x02\x8b\xff\xff\xff\xff.", "LONG4 of negative length" },
    { "\x80\x02}(K\x01K\x02\x86K\x03u.", "has a dict key that is not a string, a number or a boolean" },
    { "\x80\x02X\xff\xff\xff\x7fab.", "is truncated" },
  }
  for k, case in ipairs(cases) do
    local path = ("%s/case%d.pth"):format(tmp, k)
    write(path, legacy(case[1]))
    local err = checkError(case[2], tensor.load, path)
    check(err:find(path, 1, true), "names the file: " .. err)
  end
  local zip = read(dir .. "tensors.pth")
  write(tmp .. "/half.pth", zip:sub(1, #zip // 2))
  checkError("tensor.load: '" .. tmp .. "/half.pth' is not a zip file", tensor.load, tmp .. "/half.pth")
  local deep = 1000000
  write(tmp .. "/deep.pth", legacy("\x80\x02" .. ("]"):rep(deep) .. ("a"):rep(deep - 1) .. "."))
  checkError("nests values more than 100 deep", tensor.load, tmp .. "/deep.pth")
  -- Cut anywhere, a checkpoint is an error (never a crash or a hang).
  for _, file in ipairs { "tensors_legacy.pth", "nested_legacy.pth", "tensors.pth" } do
    local bytes = read(dir .. file)
    for cut = 0, #bytes - 1, math.max(1, #bytes // 97) do
      write(tmp .. "/cut.pth", bytes:sub(1, cut))
      local ok, err = pcall(tensor.load, tmp .. "/cut.pth")
      check(not ok and type(err) == "string", ("%s cut at %d: %s"):format(file, cut, tostring(err)))
    end
  end
end)

T.test("the formats stay apart: safetensors whose header length reads as PROTO 2, .npz", function()
  -- A safetensors header of 640 bytes starts the file with 0x80 0x02, pickle's PROTO 2.
  local found = false
  for k = 500, 700 do
    local path = tmp .. "/s.safetensors"
    tensor.save(path, { [("n"):rep(k)] = tensor.ones(2) })
    local head = read(path):sub(1, 2)
    if head == "\x80\x02" then
      local t = tensor.load(path)
      check(t[("n"):rep(k)]:sum():item() == 2, "still safetensors")
      found = true
      break
    end
  end
  check(found, "a safetensors file starting with 0x80 0x02 was made")
  tensor.save(tmp .. "/a.npz", { a = tensor.ones(3) })
  check(tensor.load(tmp .. "/a.npz").a:sum():item() == 3, "a zip without data.pkl is still .npz")
end)

T.test("what a load made is freed with the tables holding it (no cycle keeps a tensor alive)", function()
  collectgarbage()
  collectgarbage()
  local before = tensor.memory().tensorBytes
  for _ = 1, 20 do
    tensor.load(dir .. "tensors.pth")
    tensor.load(dir .. "nested_legacy.pth")
    pcall(tensor.load, dir .. "short_storage.pth")
  end
  collectgarbage()
  collectgarbage()
  check(tensor.memory().tensorBytes == before, ("%d tensor bytes before, %d after"):format(before, tensor.memory().tensorBytes))
end)

paths.remove(tmp)
T.finish("pth_files")
