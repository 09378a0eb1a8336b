-- testing.lua: the harness of luagan's Lua-level tests, in the spirit of Lua's own testes:
-- plain functions, `check` and `checkError`, a summary, exit status 1 on any failure.
local M = {}

local passed, failures = 0, {}

--- Runs one named test case; an error (or failed check) inside fails the case, not the file.
function M.test(name, fn)
  local ok, err = xpcall(fn, debug.traceback)
  if ok then
    passed = passed + 1
  else
    failures[#failures + 1] = name .. ":\n  " .. tostring(err):gsub("\n", "\n  ")
  end
end

--- The misuse sweep: two test cases, "every exported function has misuse cases" (each name
-- in the sorted list `exported` has an entry in `cases`, a list of calls that must fail) and
-- "every misuse raises a Lua error" (each of those calls, and of the optional list `extra`,
-- raises). Returns how many calls were made.
function M.misuseSweep(exported, cases, extra)
  M.test("every exported function has misuse cases", function()
    local missing = {}
    for _, name in ipairs(exported) do if cases[name] == nil then missing[#missing + 1] = name end end
    M.check(#missing == 0, "no misuse cases for: " .. table.concat(missing, ", "))
  end)
  local calls = 0
  M.test("every misuse raises a Lua error", function()
    local survived = {}
    local function try(f, what)
      calls = calls + 1
      if pcall(f) then survived[#survived + 1] = what end
    end
    for _, name in ipairs(exported) do
      for i, f in ipairs(cases[name] or {}) do try(f, ("%s case %d"):format(name, i)) end
    end
    for i, f in ipairs(extra or {}) do try(f, "extra case " .. i) end
    M.check(#survived == 0, "these calls did not raise: " .. table.concat(survived, ", "))
  end)
  return calls
end

--- Fails with `msg` unless `cond` holds.
function M.check(cond, msg, level)
  if not cond then error(msg or "check failed", (level or 1) + 1) end
end

--- Calls fn(...) and expects an error whose message contains `substring` (plain text).
-- Returns the message.
function M.checkError(substring, fn, ...)
  local ok, err = pcall(fn, ...)
  if ok then error(("expected an error containing %q, but the call succeeded"):format(substring), 2) end
  err = tostring(err)
  if not err:find(substring, 1, true) then
    error(("expected an error containing %q, got: %s"):format(substring, err), 2)
  end
  return err
end

local function toNumbers(x)
  if type(x) == "number" then return { x } end
  if tensor.isTensor(x) then
    local flat = x:detach():reshape(-1):totable()
    return type(flat) == "table" and flat or { flat }
  end
  return x
end

--- Max absolute difference between two tensors or numbers (shapes must match).
function M.maxDiff(a, b)
  if tensor.isTensor(a) and tensor.isTensor(b) then
    local sa, sb = table.concat(a:shape(), ","), table.concat(b:shape(), ",")
    if sa ~= sb then error(("shapes differ: {%s} vs {%s}"):format(sa, sb), 3) end
  end
  local x, y = toNumbers(a), toNumbers(b)
  if #x ~= #y then error(("sizes differ: %d vs %d"):format(#x, #y), 3) end
  local worst = 0
  for i = 1, #x do
    local d = math.abs(x[i] - y[i])
    if d ~= d then return math.huge end
    if d > worst then worst = d end
  end
  return worst
end

--- Checks |a - b| <= atol + rtol·|b| elementwise (tensors or numbers).
function M.close(a, b, atol, rtol, msg)
  atol, rtol = atol or 1e-6, rtol or 1e-5
  local x, y = toNumbers(a), toNumbers(b)
  if tensor.isTensor(a) and tensor.isTensor(b) then
    local sa, sb = table.concat(a:shape(), ","), table.concat(b:shape(), ",")
    if sa ~= sb then error((msg and msg .. ": " or "") .. ("shapes differ: {%s} vs {%s}"):format(sa, sb), 2) end
  end
  if #x ~= #y then error((msg and msg .. ": " or "") .. ("sizes differ: %d vs %d"):format(#x, #y), 2) end
  for i = 1, #x do
    local d = math.abs(x[i] - y[i])
    if not (d <= atol + rtol * math.abs(y[i])) then
      error(("%sat element %d: %.9g vs expected %.9g (|diff| %.3g > atol %g + rtol %g)"):format(
        msg and msg .. ": " or "", i, x[i], y[i], d, atol, rtol), 2)
    end
  end
end

--- Prints the summary and exits 1 if anything failed.
function M.finish(name)
  name = name or (arg and arg[0]) or "tests"
  for _, f in ipairs(failures) do io.stderr:write("FAIL ", f, "\n") end
  print(("%s: %d passed, %d failed"):format(name, passed, #failures))
  -- a suite that ran no test checked nothing: that is a failure too (a test list emptied by mistake)
  if passed + #failures == 0 then io.stderr:write(("%s: no test ran\n"):format(name)) end
  os.exit((#failures == 0 and passed > 0) and 0 or 1)
end

return M
