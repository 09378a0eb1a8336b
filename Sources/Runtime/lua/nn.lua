-- nn.lua: luagan's module system, over the Swift module tree (Sources/Layers).
--
-- A module is a userdata whose user value table holds its Lua fields; its class (built-in or
-- Lua-defined) supplies methods. Assigning a tensor or module to a field registers it on the
-- Swift side (parameter if it requires grad, buffer otherwise, child for modules), which is
-- where names, state dicts and train/eval live.

local nn, tensor = nn, tensor
local getuv = debug.getuservalue
local S = {}  -- the Swift bindings the classes below are built on
for k, v in pairs(nn) do
  if type(k) == "string" and k:sub(1, 1) == "_" then S[k:sub(2)] = v; nn[k] = nil end
end

local classes = {}  -- type name -> class, for modules created on the Swift side
S.setClassRegistry(classes)

local function isModule(x) return S.isModule(x) end
nn.isModule = isModule

local function newClass(name, parent, builtinConstructor)
  local cls = { __name = name, __parent = parent, __builtin = builtinConstructor }
  return setmetatable(cls, {
    __index = parent,
    __call = function(c, ...) return c.__new(c, ...) end,
    __tostring = function(c) return "class " .. rawget(c, "__name") end,
  })
end

local function checkModule(fname, m, i)
  if not isModule(m) then
    error(("bad argument #%d to '%s' (luagan.Module expected, got %s)"):format(i or 1, fname, type(m)), 3)
  end
end

--- nn.Module: the base of every module. Define your own with nn.Module:extend("Name").
local Module = newClass("Module")
nn.Module = Module
classes.Module = Module

function Module.__new(cls, ...)
  if cls == Module then error("nn.Module is abstract: define a class with nn.Module:extend('Name')", 3) end
  local self = S.ScriptModule(rawget(cls, "__name"))
  getuv(self).__class = cls
  local init = cls.init
  if init then init(self, ...) end
  return self
end

--- Class:extend(name): a subclass; define init(self, ...) and forward(self, ...) on it.
function Module.extend(parent, name)
  if type(name) ~= "string" or name == "" then
    error(("bad argument #1 to 'extend' (class name expected, got %s)"):format(type(name)), 2)
  end
  if rawget(parent, "__builtin") then
    error(("cannot extend the built-in nn.%s: extend nn.Module and hold an nn.%s as a field"):format(parent.__name, parent.__name), 2)
  end
  local cls = newClass(name, parent)
  classes[name] = cls
  return cls
end

function Module:forward()
  error(("%s: forward is not defined (define %s:forward(self, ...))"):format(self:typeName(), self:typeName()), 2)
end

local function iterate(names, values)
  local i = 0
  return function()
    i = i + 1
    if names[i] ~= nil then return names[i], values[i] end
  end
end

--- Parameters of this module and every descendant, in definition order.
function Module:parameters() return S.parameters(self) end
--- for name, p in m:namedParameters() do ... end (dotted names, as PyTorch's)
function Module:namedParameters() return iterate(S.namedParameters(self)) end
function Module:buffers() local _, b = S.namedBuffers(self); return b end
function Module:namedBuffers() return iterate(S.namedBuffers(self)) end
function Module:children() local _, c = S.namedChildren(self); return c end
function Module:namedChildren() return iterate(S.namedChildren(self)) end
--- This module and all its descendants, depth first.
function Module:modules()
  local out = { self }
  for _, c in ipairs(self:children()) do
    for _, m in ipairs(c:modules()) do out[#out + 1] = m end
  end
  return out
end
function Module:train(mode)
  if mode ~= nil and type(mode) ~= "boolean" then error(("bad argument #1 to 'train' (boolean expected, got %s)"):format(type(mode)), 2) end
  S.train(self, mode ~= false)
  return self
end
function Module:eval() S.train(self, false); return self end
--- m:double(), m:float(): every parameter and buffer converted to float64 / float32 (as torch's
-- .double() / .float()); make optimizers afterwards, since parameters become new tensors.
function Module:zeroGrad() return S.zeroGrad(self) end
--- m:requiresGrad(flag): turns gradient tracking of every parameter on or off (torch's
-- requires_grad_). GAN scripts turn D's off for G's step, as BigGAN-PyTorch's toggle_grad does, so
-- that backward computes no weight gradients nobody reads.
function Module:requiresGrad(flag)
  if type(flag) ~= "boolean" then error(("bad argument #1 to 'requiresGrad' (boolean expected, got %s)"):format(type(flag)), 2) end
  for _, p in ipairs(self:parameters()) do p:requiresGrad(flag) end
  return self
end
--- name -> tensor (the live tensors), names as torch.nn's state_dict gives them.
function Module:stateDict() return S.stateDict(self) end
--- The stateDict names in PyTorch's order.
function Module:stateDictNames() return S.stateDictNames(self) end
--- Copies a state dict in; {strict = false} ignores missing and unexpected names.
function Module:loadStateDict(sd, opts) return S.loadStateDict(self, sd, opts) end
--- Calls fn on every descendant, then on this module (torch.nn.Module.apply's order).
function Module:apply(fn)
  if type(fn) ~= "function" then error(("bad argument #1 to 'apply' (function expected, got %s)"):format(type(fn)), 2) end
  for _, c in ipairs(self:children()) do c:apply(fn) end
  fn(self)
  return self
end
function Module:registerBuffer(name, t, opts) return S.registerBuffer(self, name, t, opts) end
function Module:registerParameter(name, t) return S.registerParameter(self, name, t) end
function Module:numParameters() return S.parameterCount(self) end
function Module:typeName() return S.typeName(self) end

-- Copies the Lua fields of src onto its Swift copy dst, mapping registered tensors and
-- children to their copies by name.
local function mirror(src, dst)
  local sf, df = getuv(src), getuv(dst)
  for k, v in pairs(sf) do
    if k == "__class" then
      df.__class = v
    elseif isModule(v) then
      local c = S.child(dst, k)
      if c then rawset(df, k, c); mirror(v, c) end
    elseif tensor.isTensor(v) then
      rawset(df, k, S.tensorNamed(dst, k) or v)
    else
      rawset(df, k, v)
    end
  end
  -- Children registered on the Swift side only (inside built-ins) still carry Lua fields if
  -- a script set any on them.
  local names, kids = S.namedChildren(src)
  for i, name in ipairs(names) do
    if sf[name] == nil then
      local c = S.child(dst, name)
      if c then mirror(kids[i], c) end
    end
  end
end

-- After a conversion to another dtype the registered tensors are new ones: a Lua field that
-- held one (PGGAN's G.dense_bias) must hold the new one too, or the forward would use the old
-- tensor while the optimizer steps the new.
local function repoint(m)
  local uv = getuv(m)
  for k, v in pairs(uv) do
    if isModule(v) then repoint(v)
    elseif tensor.isTensor(v) then rawset(uv, k, S.tensorNamed(m, k) or v) end
  end
  local names, kids = S.namedChildren(m)
  for i, name in ipairs(names) do if uv[name] == nil then repoint(kids[i]) end end
end

function Module:double() S.convert(self, "float64"); repoint(self); return self end
function Module:float() S.convert(self, "float32"); repoint(self); return self end

--- A deep copy: cloned parameters and buffers, the same classes and Lua fields.
function Module:clone()
  local copy = S.copy(self)
  mirror(self, copy)
  return copy
end

S.setModuleMetamethod("__call", function(self, ...) return self:forward(...) end)

-- Built-in layers (Swift): their class's forward is the Swift one. (Wrappers above call their
-- bindings in tail position, so an error reports the caller's line, not this file's.)
local function builtin(name, constructor)
  local cls = newClass(name, Module, constructor)
  rawset(cls, "forward", S.forward)
  rawset(cls, "__new", function(_, ...) return constructor(...) end)
  classes[name] = cls
  nn[name] = cls
  return cls
end

builtin("Linear", S.Linear)
builtin("Conv2d", S.Conv2d)
builtin("ConvTranspose2d", S.ConvTranspose2d)
builtin("Embedding", S.Embedding)
builtin("BatchNorm2d", S.BatchNorm2d)
builtin("ConditionalBatchNorm2d", S.ConditionalBatchNorm2d)
builtin("SelfAttention", S.SelfAttention)
builtin("Identity", S.Identity)
builtin("ReLU", S.ReLU)
builtin("LeakyReLU", S.LeakyReLU)
builtin("Tanh", S.Tanh)
builtin("Sigmoid", S.Sigmoid)
builtin("Upsample", S.Upsample)
builtin("AvgPool2d", S.AvgPool2d)
builtin("PixelNorm", S.PixelNorm)
builtin("MinibatchStdDev", S.MinibatchStdDev)

--- nn.Sequential(m1, m2, ...) or nn.Sequential{...}: children "0", "1", ... applied in order.
local Sequential = builtin("Sequential", S.Sequential)
function Sequential:forward(x, ...)
  local children = self:children()
  for i = 1, #children do
    local m = children[i]
    local ok, y
    if i == 1 then ok, y = pcall(m, x, ...) else ok, y = pcall(m, x) end
    if not ok then
      error(("Sequential: in module %d (%s): %s"):format(i, m:typeName(), tostring(y)), 0)
    end
    x = y
  end
  return x
end
function Sequential:add(m) checkModule("add", m); return S.add(self, m) end

--- nn.ModuleList{...}: a registered list of modules, indexed from 1, iterated with ipairs.
local ModuleList = builtin("ModuleList", S.ModuleList)
function ModuleList:forward()
  error("ModuleList has no forward: iterate it (for i, m in ipairs(list) do ... end)", 2)
end
function ModuleList:add(m) checkModule("add", m); return S.add(self, m) end

--- nn.utils.standingStats(model, n, forward): standing statistics (BigGAN-PyTorch's
-- --accumulate_stats; the paper samples its released models with them): every BatchNorm's
-- running mean and variance in `model` become the average over n calls of forward(k) in
-- training mode (no gradients; the k-th pass weighs 1/k), then the model is put in eval mode,
-- where it normalizes with them. forward draws its own noise and labels.
local standing = nn.utils._standing
nn.utils._standing = nil
function nn.utils.standingStats(model, n, forward)
  if not nn.isModule(model) then error(("bad argument #1 to 'standingStats' (module expected, got %s)"):format(type(model)), 2) end
  if math.type(n) ~= "integer" or n < 1 then
    error(("bad argument #2 to 'standingStats' (positive integer expected, got %s)"):format(tostring(n)), 2)
  end
  if type(forward) ~= "function" then
    error(("bad argument #3 to 'standingStats' (function expected, got %s)"):format(type(forward)), 2)
  end
  model:train()
  standing(true)
  local ok, err = pcall(function()
    for k = 1, n do tensor.noGrad(function() forward(k) end) end
  end)
  standing(false)
  model:eval()
  if not ok then error(err, 0) end
  return model
end
