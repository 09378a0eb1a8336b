-- fixtures.lua: checks luagan against the PyTorch fixtures written by
-- scripts/fixtures/make_fixtures.py (committed under Tests/Fixtures, so CI needs no torch).
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

return M
