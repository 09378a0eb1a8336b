-- ckpt: round trips of every kind of entry, errors that name the offending entry, pruning,
-- and the bit-exact resume: 20 iterations straight equal 10 + save + load + 10.
local T = require("testing")
local tinygan = require("tinygan")
local check, checkError, close = T.check, T.checkError, T.close
local tmp = os.tmpname()
os.remove(tmp)
paths.mkdir(tmp)

T.test("JSON keeps integers, floats, strings and nesting exact", function()
  local v = { i = 9007199254740993, f = 0.1, neg = -2.5e-300, s = "a\"b\\c\n\1é", t = true, list = { 1, 2.0, "x" },
              nested = { { a = 1 } }, inf = math.huge, sparse = { [1] = "a", [3] = "c" }, empty = {} }
  local back = json.decode(json.encode(v))
  check(back.i == 9007199254740993 and math.type(back.i) == "integer", "2^53 + 1 survives")
  check(back.f == 0.1 and back.neg == -2.5e-300 and back.s == v.s and back.t == true)
  check(math.type(back.list[2]) == "float" and back.list[3] == "x" and back.nested[1].a == 1 and back.inf == math.huge)
  check(back.sparse[3] == "c" and back.sparse[2] == nil)
  checkError("trailing characters", json.decode, "{} x")
  checkError("expected a key", json.decode, "{1:2}")
end)

T.test("save and load every kind of entry", function()
  local m = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm2d(2))
  local opt = optim.Adam(m:parameters(), { lr = 0.01 })
  for _, p in ipairs(m:parameters()) do p.grad = tensor.ones(p:shape()) end
  opt:step()
  local ema = optim.EMA(m, { decay = 0.5, startIter = 2 })
  local loader = data.Loader(data.fashionMNIST { split = "test" }, { batchSize = 10, seed = 5 })
  loader:next(); loader:next()
  local state = { model = m, opt = opt, ema = ema, loader = loader, iter = 42, lr = 1e-4, name = "run",
                  rng = tensor.getRNGState(), fixedZ = tensor.randn(2, 3), opts = { betas = { 0, 0.999 }, hier = false } }
  local path = ckpt.save(tmp .. "/run", state, { name = "iter-000042" })
  check(path == tmp .. "/run/iter-000042")
  local m2 = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm2d(2))
  local opt2 = optim.Adam(m2:parameters(), { lr = 0.01 })
  local ema2 = optim.EMA(m2, { decay = 0.5, startIter = 2 })
  local loader2 = data.Loader(data.fashionMNIST { split = "test" }, { batchSize = 10, seed = 5 })
  local s = ckpt.load(tmp .. "/run", { model = m2, opt = opt2, ema = ema2, loader = loader2 })
  check(s.iter == 42 and math.type(s.iter) == "integer" and s.lr == 1e-4 and s.name == "run")
  check(s.opts.betas[2] == 0.999 and s.opts.hier == false)
  for i = 1, 4 do check(s.rng[i] == state.rng[i]) end
  close(s.fixedZ, state.fixedZ, 0, 0)
  for k, v in pairs(m:stateDict()) do close(m2:stateDict()[k], v, 0, 0, k) end
  close(opt2:stateDict().state[1].exp_avg, opt:stateDict().state[1].exp_avg, 0, 0)
  check(opt2:stateDict().state[1].step == 1)
  check(loader2:state().position == 2)
  close(loader2:next(), loader:next(), 0, 0, "the loader continues where it was saved")
end)

T.test("latest, keep, and loading a checkpoint folder directly", function()
  local dir = tmp .. "/keep"
  for i = 1, 5 do ckpt.save(dir, { i = i }, { keep = 2, name = ("it-%02d"):format(i) }) end
  check(table.concat(ckpt.list(dir), ",") == "it-04,it-05")
  check(ckpt.load(dir).i == 5 and ckpt.load(dir .. "/it-04").i == 4)
  ckpt.save(dir, { i = 6 })  -- an automatic name
  check(ckpt.load(dir).i == 6)
  ckpt.save(dir, { i = 7 }, { name = "it-05" })  -- saving over an existing name replaces it
  check(ckpt.load(dir .. "/it-05").i == 7)
end)

T.test("errors name the offending entry", function()
  local dir = tmp .. "/errs"
  local p = tensor.ones(2):requiresGrad(true)
  local adam = optim.Adam({ p })
  p.grad = tensor.ones(2)
  adam:step()
  ckpt.save(dir, { G = nn.Linear(3, 2), opt = adam }, { name = "a" })
  local e = checkError("ckpt.load: entry 'G' (Linear)", ckpt.load, dir, { G = nn.Linear(4, 2) })
  check(e:find("weight (expected {2,4}, got {2,3})", 1, true), e)
  e = checkError("ckpt.load: entry 'G' (Linear)", ckpt.load, dir, { G = nn.Sequential(nn.Linear(3, 2)) })
  check(e:find("missing: 0.weight, 0.bias", 1, true) and e:find("unexpected: bias, weight", 1, true), e)
  checkError("has no entry 'D'", ckpt.load, dir, { D = nn.Linear(3, 2) })
  checkError("state 'exp_avg' of parameter 1 has shape {2}, the parameter {3}", ckpt.load, dir, { opt = optim.Adam({ tensor.ones(3):requiresGrad(true) }) })
  checkError("entry 'G' in " .. dir .. "/a is not an optimizer", ckpt.load, dir, { G = optim.SGD({ tensor.ones(2):requiresGrad(true) }) })
  -- a truncated tensor file
  local f = io.open(dir .. "/a/tensors.safetensors", "rb"); local bytes = f:read("a"); f:close()
  f = io.open(dir .. "/a/tensors.safetensors", "wb"); f:write(bytes:sub(1, #bytes - 5)); f:close()
  checkError("tensors.safetensors' is not a valid safetensors file", ckpt.load, dir)
  -- a corrupt state file
  f = io.open(dir .. "/a/state.json", "wb"); f:write('{"format": "luagan-checkpoint", "state": {'); f:close()
  checkError("state.json", ckpt.load, dir)
  checkError("no checkpoint folder", ckpt.load, tmp .. "/nothing-here")
  checkError("cannot hold", ckpt.save, tmp .. "/bad", { f = print })
  checkError("only string and integer keys", ckpt.save, tmp .. "/bad", { t = { [true] = 1 } })
  checkError("invalid checkpoint name", ckpt.save, tmp .. "/bad", {}, { name = "../x" })
  checkError("unknown option 'kep'", ckpt.save, tmp .. "/bad", {}, { kep = 2 })
end)

T.test("resume is bit-exact: 20 iterations straight equal 10 + save + load + 10", function()
  local straight = tinygan.build(1)
  tinygan.train(straight, 20)
  local expected = tinygan.fingerprint(straight)

  local first = tinygan.build(1)
  tinygan.train(first, 10)
  ckpt.save(tmp .. "/resume", { G = first.G, D = first.D, optG = first.optG, optD = first.optD, ema = first.ema,
                               loader = first.loader, iter = first.iter, rng = tensor.getRNGState() })
  first = nil
  collectgarbage()
  local resumed = tinygan.build(999)  -- different initial weights and stream: all must come from the checkpoint
  local s = ckpt.load(tmp .. "/resume", { G = resumed.G, D = resumed.D, optG = resumed.optG, optD = resumed.optD,
                                          ema = resumed.ema, loader = resumed.loader })
  tensor.setRNGState(s.rng)
  resumed.iter = s.iter
  tinygan.train(resumed, 10)
  local got = tinygan.fingerprint(resumed)
  local n = 0
  for k, v in pairs(expected) do
    check(got[k] ~= nil, "missing " .. k)
    check(T.maxDiff(got[k], v) == 0, "differs after resume: " .. k)
    n = n + 1
  end
  print(("resume: %d tensors identical (parameters, buffers, EMA, Adam moments, the next noise)"):format(n))
end)

paths.remove(tmp)
T.finish("checkpoints")
