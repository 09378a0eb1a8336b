-- options.lua: command-line options for luagan scripts, in the spirit of torch.CmdLine.
--
--   local opt = options.parse(arg, {
--     { "iters", 1000, "training iterations" },
--     { "lr", 2e-4, "learning rate" },
--     { "hier", true, "hierarchical z (skip-z)" },
--   }, "BigGAN on Fashion-MNIST")
--
-- Accepted forms: --key=value, --key value, --flag / --no-flag for booleans, and
-- --config=file.lua (a Lua file returning a table of options, or assigning them as globals,
-- run in an empty sandbox). Each value takes the type of its default (a table default takes a
-- Lua table literal, e.g. --betas={0,0.999}); an unknown key is an error that suggests the
-- closest name; a value of the wrong type is an error; --help prints every option with its
-- default and help, then exits.
local M = {}

local function distance(a, b)
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      local cost = a:sub(i, i) == b:sub(j, j) and 0 or 1
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost)
    end
    prev = cur
  end
  return prev[#b]
end

--- The known name closest to `name`, if it is close enough to be a typo.
function M.closest(name, names)
  local best, bd = nil, math.huge
  for _, n in ipairs(names) do
    local d = distance(name:lower(), n:lower())
    if d < bd then best, bd = n, d end
  end
  if best and bd <= math.max(2, #name // 3) then return best end
end

local function render(v)
  if type(v) == "table" then
    local parts, keys = {}, {}
    for _, x in ipairs(v) do parts[#parts + 1] = render(x) end
    for k in pairs(v) do
      if not (math.type(k) == "integer" and k >= 1 and k <= #v) then keys[#keys + 1] = k end
    end
    table.sort(keys, function(a, b)
      if type(a) == "number" and type(b) == "number" then return a < b end
      return tostring(a) < tostring(b)
    end)
    for _, k in ipairs(keys) do   -- keyed entries, e.g. {[4]=64,[8]=32}
      local key = type(k) == "string" and k:match("^[%a_][%w_]*$") and k or ("[" .. render(k) .. "]")
      parts[#parts + 1] = key .. "=" .. render(v[k])
    end
    return "{" .. table.concat(parts, ",") .. "}"
  elseif type(v) == "string" then
    return ("%q"):format(v)
  end
  return tostring(v)
end
M.render = render

-- Converts a command-line string to the type of `default`.
local function coerce(name, raw, default)
  local kind = type(default)
  if kind == "number" then
    local n = tonumber(raw)
    if not n then error(("option --%s expects a number, got '%s'"):format(name, raw), 0) end
    if math.type(default) == "integer" and math.type(n) ~= "integer" then
      if n ~= math.floor(n) then error(("option --%s expects an integer, got '%s'"):format(name, raw), 0) end
      n = math.tointeger(n)
    end
    return n
  elseif kind == "boolean" then
    local v = ({ ["true"] = true, ["1"] = true, yes = true, on = true, ["false"] = false, ["0"] = false, no = false, off = false })[raw:lower()]
    if v == nil then error(("option --%s expects a boolean (true/false), got '%s'"):format(name, raw), 0) end
    return v
  elseif kind == "table" then
    local chunk, err = load("return " .. raw, "=--" .. name, "t", {})
    local ok, v = false, nil
    if chunk then ok, v = pcall(chunk) end
    if not ok or type(v) ~= "table" then
      error(("option --%s expects a Lua table such as %s, got '%s'%s"):format(name, render(default), raw, err and (": " .. err) or ""), 0)
    end
    return v
  end
  return raw
end

-- Checks a value from a config file against the default's type.
local function checkType(name, v, default, source)
  if type(v) ~= type(default) then
    error(("option %s in %s must be a %s (like its default %s), got a %s"):format(name, source, type(default), render(default), type(v)), 0)
  end
  if type(default) == "number" and math.type(default) == "integer" and math.type(v) ~= "integer" then
    if v ~= math.floor(v) then error(("option %s in %s must be an integer, got %s"):format(name, source, tostring(v)), 0) end
    v = math.tointeger(v)
  end
  return v
end

--- Prints the help text.
function M.help(spec, description, script)
  print(("usage: luagan %s [--option=value ...] [--config=file.lua]"):format(script or "script.lua"))
  if description then print(description) end
  print("options:")
  local width = 0
  for _, o in ipairs(spec) do width = math.max(width, #o[1]) end
  for _, o in ipairs(spec) do
    local allowed = o.oneOf and (" (" .. table.concat(o.oneOf, " | ") .. ")") or ""
    print(("  --%-" .. width .. "s  %-14s %s%s"):format(o[1], render(o[2]), o[3] or "", allowed))
  end
end

--- Parses `args` (the script's arg table) against `spec`, a list of {name, default, help}.
-- Returns the options table and the set of names given explicitly: given[name] is true for the
-- command line, "config" for a config file. --help prints the options and exits 0.
function M.parse(args, spec, description)
  local defaults, order, names, renamed = {}, {}, {}, M.aliases(spec)
  for _, o in ipairs(spec) do
    assert(type(o[1]) == "string" and o[2] ~= nil, "each option needs a name and a default")
    defaults[o[1]] = o[2]
    order[#order + 1] = o[1]
    names[#names + 1] = o[1]
  end
  -- An old name (a spec entry's `aliases`) still works, with a notice naming the new one.
  local function current(name, where)
    local new = renamed[name]
    if not new then return name end
    io.stderr:write(("note: %s is now --%s\n"):format(where and ("'" .. name .. "' in " .. where) or ("--" .. name), new))
    return new
  end
  local opt = {}
  local function copy(t) local c = {} for key, val in pairs(t) do c[key] = val end return c end   -- lists and dicts
  for k, v in pairs(defaults) do opt[k] = type(v) == "table" and copy(v) or v end

  local function unknown(name)
    local hint = M.closest(name, names)
    error(("unknown option --%s%s (see --help)"):format(name, hint and (" (did you mean --" .. hint .. "?)") or ""), 0)
  end

  local i, given, fromConfig = 1, {}, {}
  args = args or {}
  while i <= #args do
    local a = args[i]
    if a == "--help" or a == "-h" then
      M.help(spec, description, args[0])
      os.exit(0)
    end
    local key, value = a:match("^%-%-([%w_%-]+)=(.*)$")
    if not key then key = a:match("^%-%-([%w_%-]+)$") end
    if not key then error(("unexpected argument '%s' (options look like --name=value)"):format(a), 0) end
    key = current(key)
    if key == "config" then
      if not value then i = i + 1; value = args[i] end
      if not value then error("--config expects a file name", 0) end
      -- scripts/configs/x.lua from outside the checkout: the one beside the shipped script
      local function readable(path) local f = io.open(path); if f then f:close() end; return f ~= nil end
      local shipped = not readable(value) and type(arg) == "table" and type(arg[0]) == "string"
        and arg[0]:match("^(.*/)scripts/[^/]+%.lua$")
      if shipped and value:match("^scripts/") and readable(shipped .. value) then value = shipped .. value end
      local env = {}
      local chunk, err = loadfile(value, "t", env)
      if not chunk then error(("cannot read config file: %s"):format(err), 0) end
      local ok, result = pcall(chunk)
      if not ok then error(("error in config file %s: %s"):format(value, tostring(result)), 0) end
      local t = type(result) == "table" and result or env
      for k0, v in pairs(t) do
        local k = type(k0) == "string" and current(k0, value) or k0
        if defaults[k] == nil then
          local hint = type(k) == "string" and M.closest(k, names)
          error(("unknown option '%s' in %s%s"):format(tostring(k), value, hint and (" (did you mean '" .. hint .. "'?)") or ""), 0)
        end
        if not given[k] then opt[k] = checkType(k, v, defaults[k], value); fromConfig[k] = true end
      end
    else
      local negated = key:match("^no%-(.+)$")
      if value == nil and negated and type(defaults[negated]) == "boolean" then
        key, value = negated, "false"
      elseif defaults[key] == nil then
        unknown(key)
      elseif value == nil then
        if type(defaults[key]) == "boolean" then
          value = "true"
        else
          i = i + 1
          value = args[i]
          if value == nil then error(("option --%s expects a value"):format(key), 0) end
        end
      end
      opt[key] = coerce(key, value, defaults[key])
      given[key] = true
    end
    i = i + 1
  end
  for k in pairs(fromConfig) do given[k] = given[k] or "config" end   -- truthy; the command line (true) wins
  M.validate(opt, spec)
  return setmetatable(opt, { __index = function(_, k) error(("no option named '%s'"):format(tostring(k)), 2) end }), given
end

--- Old option names and what they are now: { oldName = newName } from the spec's `aliases`.
function M.aliases(spec)
  local map = {}
  for _, o in ipairs(spec) do for _, a in ipairs(o.aliases or {}) do map[a] = o[1] end end
  return map
end

--- Checks every value against what its spec entry declares besides the type: oneOf = {...}
-- (allowed values), min / max (inclusive bounds of a number), check = function(value, opt)
-- returning an error message or nil (for rules that involve other options).
function M.validate(opt, spec)
  for _, o in ipairs(spec) do
    local name, v = o[1], opt[o[1]]
    if o.oneOf then
      local ok = false
      for _, allowed in ipairs(o.oneOf) do ok = ok or v == allowed end
      if not ok then
        local shown = {}
        for i, allowed in ipairs(o.oneOf) do shown[i] = render(allowed) end
        error(("option --%s must be one of %s, got %s"):format(name, table.concat(shown, ", "), render(v)), 0)
      end
    end
    if o.min and type(v) == "number" and not (v >= o.min) then
      error(("option --%s must be at least %s, got %s"):format(name, render(o.min), render(v)), 0)
    end
    if o.max and type(v) == "number" and not (v <= o.max) then
      error(("option --%s must be at most %s, got %s"):format(name, render(o.max), render(v)), 0)
    end
    local problem = o.check and o.check(v, opt)
    if problem then error(("option --%s: %s"):format(name, problem), 0) end
  end
end

--- For scripts: parse, or print the problem on one line of stderr (with a pointer to --help)
-- and exit with status 2 (a usage error), without a traceback.
function M.cli(args, spec, description)
  local ok, result, given = pcall(M.parse, args, spec, description)
  if ok then return result, given end
  local message = tostring(result)
  if not message:find("%-%-help") then message = message .. " (see --help)" end
  local name = (args and args[0] or "luagan"):match("([^/]*)$")
  io.stderr:write(("%s: %s\n"):format(name, message))
  os.exit(2)
end

--- The options as printable lines, in spec order (for logs and checkpoints).
function M.describe(opt, spec)
  local lines = {}
  for _, o in ipairs(spec) do lines[#lines + 1] = ("  %s = %s"):format(o[1], render(rawget(opt, o[1]))) end
  return table.concat(lines, "\n")
end

--- A plain copy of the options (no metatable), e.g. to store in a checkpoint.
function M.plain(opt)
  local t = {}
  for k, v in pairs(opt) do t[k] = v end
  return t
end

return M
