-- The bridge contract: Lua-style error messages, finalizers, <close>, metatables, coroutines.
local T = require("testing")
local check, checkError = T.check, T.checkError

T.test("errors name the function, the argument, expected and got", function()
  local x = tensor.zeros(2)
  -- called through pcall the function is named as Lua's luaL_argerror names it
  checkError("bad argument #2 to 'tensor.conv2d' (luagan.Tensor expected, got no value)", tensor.conv2d, x)
  local e = checkError("conv2d' (luagan.Tensor expected, got nil)", function() return tensor.conv2d(x, nil) end)
  check(e:match("bridge%.lua:%d+: bad argument #2 to '"), e)
  -- method calls count like Lua's own: self is not an argument
  e = checkError("bad argument #1 to 'sum'", function() return x:sum("a") end)
  check(e:find("integer expected, got string", 1, true), e)
  checkError("bad argument #1 to 'sum' (luagan.Tensor expected, got table)", function() return x.sum({}) end)
  local impostor = setmetatable({}, { __index = { sum = x.sum } })
  checkError("calling 'sum' on bad self (luagan.Tensor expected, got table)", function() return impostor:sum() end)
  checkError("bad argument #1 to 'tensor.zeros' (size -3 is negative", tensor.zeros, -3)
  checkError("number has no integer representation", tensor.zeros, 2.5)
  checkError("conv2d: input has 3 channels but weight expects 1 (input {64,3,32,32}, weight {16,1,3,3})",
    tensor.conv2d, tensor.zeros(64, 3, 32, 32), tensor.zeros(16, 1, 3, 3))
  checkError("option 'padding' must be an integer or a pair of integers, got string", tensor.conv2d,
    tensor.zeros(1, 1, 4, 4), tensor.zeros(1, 1, 3, 3), nil, { padding = "same" })
  -- the error carries the caller's position
  local ok, msg = pcall(function() return tensor.zeros(2) + tensor.zeros(3) end)
  check(not ok and msg:match("^.-bridge%.lua:%d+: add:"), msg)
end)

T.test("__gc releases tensor memory", function()
  collectgarbage()
  local before = tensor.memory().tensorBytes
  do local big = tensor.zeros(1024, 1024) end
  collectgarbage(); collectgarbage()
  check(tensor.memory().tensorBytes <= before, "the 4 MiB tensor was released")
end)

T.test("<close> frees deterministically and a closed tensor is an error", function()
  local before = tensor.memory().tensorBytes
  local kept
  do
    local big <close> = tensor.zeros(1024, 1024)
    kept = big
    check(tensor.memory().tensorBytes >= before + 4 * 1024 * 1024)
  end
  check(tensor.memory().tensorBytes <= before, "freed at the end of the block, without the collector")
  checkError("closed tensor", function() return kept:sum() end)
  checkError("closed tensor", function() return kept + 1 end)
  local t = tensor.ones(3)
  t:free()
  checkError("closed tensor", function() return t:numel() end)
  t:free()  -- idempotent
end)

T.test("one tensor has one Lua identity", function()
  local x = tensor.ones(2):requiresGrad(true)
  ;(x * 2):sum():backward()
  local g1, g2 = x.grad, x.grad
  check(rawequal(g1, g2), "x.grad returns the same userdata each time")
  local t = { [g1] = true }
  check(t[x.grad], "usable as a table key")
end)

T.test("the metatable is protected and fields are checked", function()
  local x = tensor.ones(2)
  check(getmetatable(x) == false, "__metatable hides it")
  checkError("cannot set field 'foo' of a tensor", function() x.foo = 1 end)
  check(x.foo == nil, "unknown fields read as nil")
  checkError("attempt to call a nil value (method 'sumn')", function() return x:sumn() end)
  checkError("cannot index a 0-d tensor", function() return tensor.new(1)[1] end)
  checkError("index 3 out of range", function() return x[3] end)
  checkError("the % operator is not defined", function() return x % 2 end)
  checkError("cannot concatenate a tensor", function() return "a" .. x end)
  check(type(tostring(x)) == "string" and #x == 2)
end)

T.test("tensors work inside coroutines, and errors there stay catchable", function()
  local co = coroutine.wrap(function(n)
    local acc = tensor.zeros(2)
    for i = 1, n do acc = acc + i; coroutine.yield(acc:sum():item()) end
    return "done"
  end)
  check(co(3) == 2 and co() == 6 and co() == 12 and co() == "done")
  local co2 = coroutine.create(function() return tensor.zeros(2) + tensor.zeros(3) end)
  local ok, err = coroutine.resume(co2)
  check(not ok and err:find("cannot be broadcast", 1, true), err)
end)

T.test("the process keeps going after many caught errors", function()
  for i = 1, 2000 do
    local ok = pcall(tensor.conv2d, tensor.zeros(1, 2, 3, 3), tensor.zeros(1, 3, 3, 3))
    check(not ok)
  end
  check(tensor.ones(2):sum():item() == 2)
end)

T.finish("bridge")
