-- fixtures.lua: checks luagan against the PyTorch fixtures written by
-- scripts/dev/fixtures/make_fixtures.py (committed under Tests/Fixtures, so CI needs no torch).
local T = require("testing")
local M = {}

-- Fixed tolerances (float32 inputs): |ours - torch| <= atol + rtol·|torch|.
M.forward = { atol = 1e-5, rtol = 1e-4 }
M.backward = { atol = 1e-4, rtol = 1e-3 }

--- The fixture file Tests/Fixtures/<group>.safetensors, relative to the project root.
function M.load(group)
  local root = os.getenv("LUAGAN_HOME") or (debug.getinfo(1, "S").source:match("^@(.*)/scripts/lib/") or ".")
  return (tensor.load(root .. "/Tests/Fixtures/" .. group .. ".safetensors"))
end

--- For each case in `fns` (name -> function(inputs..., consts...) returning a tensor):
-- recompute the output from the fixture's inputs, backpropagate its upstream gradient, and
-- compare the output and every input gradient. Cases in the file without a function, and
-- functions without a case, both fail.
function M.check(f, fns)
  local seen = {}
  for key in pairs(f) do
    local name = key:match("^(.*)%.out$")
    if name then seen[name] = true end
  end
  for name in pairs(fns) do
    T.test("fixture " .. name, function()
      T.check(seen[name], "no fixture named " .. name .. " (regenerate with make_fixtures.py)")
      local ins, args = {}, {}
      local i = 1
      while f[name .. ".in" .. i] do
        ins[i] = f[name .. ".in" .. i]:clone():requiresGrad(true)
        args[#args + 1] = ins[i]
        i = i + 1
      end
      i = 1
      while f[name .. ".c" .. i] do args[#args + 1] = f[name .. ".c" .. i]; i = i + 1 end
      local out = fns[name](table.unpack(args))
      T.close(out, f[name .. ".out"], M.forward.atol, M.forward.rtol, name .. " output")
      out:backward(f[name .. ".gout"])
      for k, x in ipairs(ins) do
        T.close(x.grad or tensor.zeros(x:shape()), f[name .. ".grad" .. k], M.backward.atol, M.backward.rtol,
          ("%s gradient of input %d"):format(name, k))
      end
    end)
  end
  T.test("every fixture case has a luagan function", function()
    local missing = {}
    for name in pairs(seen) do if not fns[name] then missing[#missing + 1] = name end end
    table.sort(missing)
    T.check(#missing == 0, "fixtures without a check: " .. table.concat(missing, ", "))
  end)
end

--- The entries of `f` under "prefix.", with the prefix removed (a state dict in a fixture).
function M.prefixed(f, prefix)
  local out, n = {}, #prefix + 1
  for k, v in pairs(f) do
    if k:sub(1, n) == prefix .. "." then out[k:sub(n + 1)] = v end
  end
  return out
end

--- Module cases: for each name, `cases[name] = { make = function() return module end,
-- train = bool }`. The module gets the fixture's state (strict), runs forward on its inputs
-- (in1.., then index inputs c1..) in the given mode; output, input gradients, parameter
-- gradients (by name) and buffers after the forward (running statistics, spectral-norm
-- vectors) are compared with PyTorch's.
function M.checkModules(f, cases)
  local seen = {}
  for key in pairs(f) do
    local name = key:match("^(.-)%.out$")
    if name then seen[name] = true end
  end
  for name, case in pairs(cases) do
    T.test("fixture " .. name, function()
      T.check(seen[name], "no fixture named " .. name)
      local m = case.make()
      m:loadStateDict(M.prefixed(f, name .. ".state"))
      if case.train == false then m:eval() else m:train() end
      local args, ins = {}, {}
      local i = 1
      while f[name .. ".in" .. i] or f[name .. ".c" .. i] do
        if f[name .. ".in" .. i] then
          local x = f[name .. ".in" .. i]:clone():requiresGrad(true)
          ins[i] = x
          args[i] = x
        else
          args[i] = f[name .. ".c" .. i]
        end
        i = i + 1
      end
      local out = m(table.unpack(args, 1, i - 1))
      T.close(out, f[name .. ".out"], M.forward.atol, M.forward.rtol, name .. " output")
      m:zeroGrad()
      out:backward(f[name .. ".gout"])
      for k, x in pairs(ins) do
        T.close(x.grad, f[name .. ".grad.in" .. k], M.backward.atol, M.backward.rtol, ("%s gradient of input %d"):format(name, k))
      end
      local grads = M.prefixed(f, name .. ".grad")
      for pname, p in m:namedParameters() do
        T.close(p.grad or tensor.zeros(p:shape()), grads[pname], M.backward.atol, M.backward.rtol, name .. " gradient of " .. pname)
      end
      local after = M.prefixed(f, name .. ".after")
      local nb = 0
      for bname, b in m:namedBuffers() do
        T.check(after[bname] ~= nil, name .. ": PyTorch has no buffer " .. bname)
        T.close(b, after[bname], M.forward.atol, M.forward.rtol, name .. " buffer " .. bname .. " after forward")
        nb = nb + 1
      end
      local expected = 0
      for _ in pairs(after) do expected = expected + 1 end
      T.check(nb == expected, ("%s: %d buffers, PyTorch has %d"):format(name, nb, expected))
    end)
  end
  T.test("every module fixture has a check", function()
    local missing = {}
    for name in pairs(seen) do if not cases[name] then missing[#missing + 1] = name end end
    table.sort(missing)
    T.check(#missing == 0, "fixtures without a check: " .. table.concat(missing, ", "))
  end)
end

return M
