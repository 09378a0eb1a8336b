-- ckpt.lua: checkpoints that survive crashes and resume bit-exactly.
--
-- ckpt.save(dir, state, {name=, keep=}) writes dir/<name>/ with tensors.safetensors (every
-- tensor: module state dicts, optimizer moments, EMA averages, loose tensors) and state.json
-- (everything else: counters, options, the generator state, loader positions), then points
-- dir/latest at it. The folder is written under a temporary name, flushed to disk and renamed
-- into place, so a crash or kill during a save leaves the previous checkpoint untouched and
-- `latest` always names a complete one. `keep=N` prunes all but the N newest.
--
-- ckpt.load(dir, into) reads the checkpoint `dir` (or the one dir/latest names), loads every
-- module, optimizer, EMA and loader of `into` in place from the entry with the same key, and
-- returns the whole state as plain data (state dicts for modules).
local ckpt, tensor, nn = ckpt, tensor, nn
local S = setmetatable({ pid = ckpt._pid }, { __index = paths })
ckpt._pid = nil

-- JSON with exact integers: integers print without a fraction and read back as integers;
-- floats print with 17 significant digits (exact round trip); non-finite numbers are tagged.
local json = {}
ckpt.json = json

local escapes = { ['"'] = '\\"', ["\\"] = "\\\\", ["\b"] = "\\b", ["\f"] = "\\f", ["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t" }
local function encodeString(s)
  return '"' .. s:gsub('[%c"\\]', function(c) return escapes[c] or ("\\u%04x"):format(c:byte()) end) .. '"'
end

local function isSequence(t)
  local n = 0
  for k in pairs(t) do
    if math.type(k) ~= "integer" or k < 1 then return false end
    n = n + 1
  end
  for i = 1, n do if t[i] == nil then return false end end
  return true, n
end

function json.encode(v, indent, depth)
  depth = depth or 0
  if indent ~= nil and (math.type(indent) ~= "integer" or indent < 0 or indent > 16) then
    error(("bad argument #2 to 'encode' (indent must be an integer in 0..16, got %s)"):format(tostring(indent)), 2)
  end
  local t = type(v)
  if v == nil then return "null"
  elseif t == "boolean" then return tostring(v)
  elseif t == "number" then
    if math.type(v) == "integer" then return tostring(v) end
    if v ~= v or v == math.huge or v == -math.huge then
      return ('{"__number":"%s"}'):format(v ~= v and "nan" or (v > 0 and "inf" or "-inf"))
    end
    local s = ("%.17g"):format(v)
    if not s:find("[%.eEn]") then s = s .. ".0" end
    return s
  elseif t == "string" then return encodeString(v)
  elseif t == "table" then
    if depth > 100 then error("json.encode: tables nested too deeply (a cycle?)", 2) end
    local seq, n = isSequence(v)
    local nl = indent and ("\n" .. (" "):rep(indent * (depth + 1))) or ""
    local close = indent and ("\n" .. (" "):rep(indent * depth)) or ""
    local parts = {}
    if seq and n > 0 then
      for i = 1, n do parts[i] = json.encode(v[i], indent, depth + 1) end
      return "[" .. nl .. table.concat(parts, "," .. nl) .. close .. "]"
    end
    local keys, allStrings = {}, true
    for k in pairs(v) do
      keys[#keys + 1] = k
      if type(k) ~= "string" then allStrings = false end
    end
    if not allStrings then  -- other keys (e.g. optimizer state by parameter number): tagged pairs
      table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)
      for i, k in ipairs(keys) do parts[i] = "[" .. json.encode(k, nil, depth + 1) .. "," .. json.encode(v[k], indent, depth + 1) .. "]" end
      return '{"__pairs":[' .. table.concat(parts, ",") .. "]}"
    end
    table.sort(keys)
    for i, k in ipairs(keys) do parts[i] = encodeString(k) .. (indent and ": " or ":") .. json.encode(v[k], indent, depth + 1) end
    return "{" .. nl .. table.concat(parts, "," .. nl) .. close .. "}"
  end
  error(("json.encode: cannot encode a %s"):format(t), 2)
end

function json.decode(s, name)
  name = name or "JSON"
  local pos, depth = 1, 0
  local function fail(msg) error(("%s: %s at character %d"):format(name, msg, pos), 0) end
  local function ws() pos = s:find("[^ \t\r\n]", pos) or #s + 1 end
  local value
  local function str()
    local out, i = {}, pos + 1
    while true do
      local c = s:sub(i, i)
      if c == "" then fail("unterminated string") end
      if c == '"' then pos = i + 1; return table.concat(out) end
      if c == "\\" then
        local e = s:sub(i + 1, i + 1)
        local map = { ['"'] = '"', ["\\"] = "\\", ["/"] = "/", b = "\b", f = "\f", n = "\n", r = "\r", t = "\t" }
        if map[e] then out[#out + 1] = map[e]; i = i + 2
        elseif e == "u" then
          local hex = s:sub(i + 2, i + 5)
          if not hex:match("^%x%x%x%x$") then fail("bad \\u escape") end
          out[#out + 1] = utf8.char(tonumber(hex, 16)); i = i + 6
        else fail("bad escape") end
      else
        out[#out + 1] = c; i = i + 1
      end
    end
  end
  function value()
    ws()
    local c = s:sub(pos, pos)
    if c == "{" or c == "[" then
      depth = depth + 1
      if depth > 200 then fail("arrays and objects nested more than 200 deep") end
    end
    if c == "{" then
      pos = pos + 1
      local t = {}
      ws()
      if s:sub(pos, pos) == "}" then pos = pos + 1; depth = depth - 1; return t end
      while true do
        ws()
        if s:sub(pos, pos) ~= '"' then fail("expected a key") end
        local k = str()
        ws()
        if s:sub(pos, pos) ~= ":" then fail("expected ':'") end
        pos = pos + 1
        t[k] = value()
        ws()
        local d = s:sub(pos, pos)
        pos = pos + 1
        if d == "}" then break elseif d ~= "," then fail("expected ',' or '}'") end
      end
      depth = depth - 1
      if t.__number then return t.__number == "nan" and 0 / 0 or (t.__number == "inf" and math.huge or -math.huge) end
      if t.__pairs then
        local r = {}
        for _, kv in ipairs(t.__pairs) do r[kv[1]] = kv[2] end
        return r
      end
      return t
    elseif c == "[" then
      pos = pos + 1
      local t = {}
      ws()
      if s:sub(pos, pos) == "]" then pos = pos + 1; depth = depth - 1; return t end
      while true do
        t[#t + 1] = value()
        ws()
        local d = s:sub(pos, pos)
        pos = pos + 1
        if d == "]" then break elseif d ~= "," then fail("expected ',' or ']'") end
      end
      depth = depth - 1
      return t
    elseif c == '"' then return str()
    elseif s:sub(pos, pos + 3) == "true" then pos = pos + 4; return true
    elseif s:sub(pos, pos + 4) == "false" then pos = pos + 5; return false
    elseif s:sub(pos, pos + 3) == "null" then pos = pos + 4; return nil
    end
    local num = s:match("^-?%d+%.?%d*[eE]?[-+]?%d*", pos)
    if not num or num == "" then fail("unexpected '" .. c .. "'") end
    pos = pos + #num
    if num:find("[%.eE]") then return tonumber(num) end
    return math.tointeger(tonumber(num)) or tonumber(num)
  end
  local v = value()
  ws()
  if pos <= #s then fail("trailing characters") end
  return v
end

-- Kinds of objects a checkpoint knows.
local function kindOf(v)
  if tensor.isTensor(v) then return "tensor" end
  if nn.isModule(v) then return "module" end
  local mt = getmetatable(v)
  if type(v) == "userdata" then
    local ok, name = pcall(function() return v.batchSize and v.sampleShape and "loader" end)
    if ok and name then return name end
    if pcall(function() return v.step and v.stateDict and v.zeroGrad end) then return "optimizer" end
  end
  if type(v) == "table" and mt and mt.__name == "optim.EMA" then return "ema" end
  return type(v)
end

-- Encodes `v` for JSON, moving tensors into `tensors` under path-like names. `open` holds the
-- tables being encoded (the path from the root): meeting one again is a cycle.
local function encode(v, path, tensors, open)
  local kind = kindOf(v)
  if kind == "tensor" then
    tensors[path] = v
    return { __tensor = path }
  elseif kind == "module" then
    local sd = {}
    for k, t in pairs(v:stateDict()) do sd[k] = encode(t, path .. "/" .. k, tensors, open) end
    return { __module = v:typeName(), stateDict = sd }
  elseif kind == "optimizer" then
    return { __optimizer = true, stateDict = encode(v:stateDict(), path, tensors, open) }
  elseif kind == "ema" then
    local st = v:settings()
    return { __ema = true, decay = st.decay, startIter = st.startIter, model = encode(v.model, path .. "/model", tensors, open) }
  elseif kind == "loader" then
    local st = v:state()
    return { __loader = true, epoch = st.epoch, position = st.position, seed = st.seed }
  elseif kind == "table" then
    if open[v] then error(("ckpt.save: entry %s contains itself (a cycle cannot be saved)"):format(path == "" and "/" or path), 0) end
    if open.depth >= 100 then error(("ckpt.save: entry %s is nested more than 100 tables deep"):format(path), 0) end
    open[v], open.depth = true, open.depth + 1
    local out = {}
    for k, x in pairs(v) do
      if type(k) ~= "string" and math.type(k) ~= "integer" then
        error(("ckpt.save: entry %s has a %s key; only string and integer keys can be saved"):format(path, type(k)), 0)
      end
      out[k] = encode(x, path .. "/" .. tostring(k), tensors, open)
    end
    open[v], open.depth = nil, open.depth - 1
    return out
  elseif kind == "number" or kind == "string" or kind == "boolean" then
    return v
  end
  error(("ckpt.save: entry %s is a %s, which a checkpoint cannot hold"):format(path, kind), 0)
end

local function decode(v, tensors, where)
  if type(v) ~= "table" then return v end
  if v.__tensor then
    local t = tensors[v.__tensor]
    if not t then error(("ckpt.load: %s: tensor '%s' is missing from tensors.safetensors"):format(where, v.__tensor), 0) end
    return t
  end
  local out = {}
  for k, x in pairs(v) do out[k] = decode(x, tensors, where) end
  return out
end

local function checkName(name)
  if type(name) ~= "string" or name == "" or name:find("[/\\]") or name:sub(1, 1) == "." or name == "latest" then
    error(("ckpt.save: invalid checkpoint name %s"):format(tostring(name)), 3)
  end
end

--- Checkpoint folders in dir (complete ones: they hold state.json), oldest first.
function ckpt.list(dir)
  local out = {}
  for _, n in ipairs(S.list(dir)) do
    if n:sub(1, 1) ~= "." and n ~= "latest" and S.exists(dir .. "/" .. n .. "/state.json") then out[#out + 1] = n end
  end
  table.sort(out)
  return out
end

function ckpt.save(dir, state, opts)
  if type(dir) ~= "string" then error(("bad argument #1 to 'save' (folder name expected, got %s)"):format(type(dir)), 2) end
  if type(state) ~= "table" then error(("bad argument #2 to 'save' (table of things to save expected, got %s)"):format(type(state)), 2) end
  opts = opts or {}
  for k in pairs(opts) do
    if k ~= "name" and k ~= "keep" then error(("ckpt.save: unknown option '%s'; options are 'keep', 'name'"):format(tostring(k)), 2) end
  end
  local keep = opts.keep
  if keep ~= nil and (math.type(keep) ~= "integer" or keep < 1) then error("ckpt.save: option 'keep' must be a positive integer", 2) end
  S.mkdir(dir)
  local existing = ckpt.list(dir)
  local name = opts.name or ("ckpt-%06d"):format(#existing > 0 and (tonumber(existing[#existing]:match("(%d+)$")) or #existing) + 1 or 1)
  checkName(name)

  local tensors = {}
  local body = encode(state, "", tensors, { depth = 0 })
  local doc = { format = "luagan-checkpoint", version = 1, state = body }
  local tmp = ("%s/.tmp-%s-%d"):format(dir, name, S.pid())
  S.remove(tmp)
  S.mkdir(tmp)
  tensor.save(tmp .. "/tensors.safetensors", tensors, { format = "luagan-checkpoint" })
  S.writeText(tmp .. "/state.json", json.encode(doc, 1) .. "\n")
  S.fsync(tmp)
  local final = dir .. "/" .. name
  if select(1, S.exists(final)) then
    local old = ("%s/.old-%s-%d"):format(dir, name, S.pid())
    S.rename(final, old)
    S.rename(tmp, final)
    S.remove(old)
  else
    S.rename(tmp, final)
  end
  S.fsync(dir)
  S.writeText(dir .. "/latest", name .. "\n")
  S.fsync(dir)
  if keep then
    local all = ckpt.list(dir)
    for i = 1, #all - keep do
      if all[i] ~= name then S.remove(dir .. "/" .. all[i]) end
    end
  end
  return final
end

-- The checkpoint folder for `dir`: itself if it holds state.json, else what dir/latest names,
-- else its newest complete checkpoint.
local function resolve(dir)
  if select(1, S.exists(dir .. "/state.json")) then return dir end
  local exists, isDir = S.exists(dir)
  if not exists or not isDir then error(("ckpt.load: no checkpoint folder '%s'"):format(dir), 0) end
  if select(1, S.exists(dir .. "/latest")) then
    local name = S.readText(dir .. "/latest"):gsub("%s+$", "")
    if name ~= "" and select(1, S.exists(dir .. "/" .. name .. "/state.json")) then return dir .. "/" .. name end
  end
  local all = ckpt.list(dir)
  if #all == 0 then error(("ckpt.load: '%s' holds no complete checkpoint"):format(dir), 0) end
  return dir .. "/" .. all[#all]
end

local function loadInto(key, target, saved, where)
  local kind = kindOf(target)
  if saved == nil then error(("ckpt.load: %s has no entry '%s'"):format(where, key), 0) end
  if kind == "module" then
    if type(saved) ~= "table" or not saved.__module then error(("ckpt.load: entry '%s' in %s is not a module"):format(key, where), 0) end
    local ok, err = pcall(target.loadStateDict, target, saved.stateDict)
    if not ok then error(("ckpt.load: entry '%s' (%s) in %s: %s"):format(key, saved.__module, where, tostring(err)), 0) end
  elseif kind == "optimizer" then
    if type(saved) ~= "table" or not saved.__optimizer then error(("ckpt.load: entry '%s' in %s is not an optimizer"):format(key, where), 0) end
    local ok, err = pcall(target.loadStateDict, target, saved.stateDict)
    if not ok then error(("ckpt.load: entry '%s' in %s: %s"):format(key, where, tostring(err)), 0) end
  elseif kind == "ema" then
    if type(saved) ~= "table" or not saved.__ema then error(("ckpt.load: entry '%s' in %s is not an EMA"):format(key, where), 0) end
    local ok, err = pcall(target.model.loadStateDict, target.model, saved.model.stateDict)
    if not ok then error(("ckpt.load: entry '%s' (EMA model) in %s: %s"):format(key, where, tostring(err)), 0) end
  elseif kind == "loader" then
    if type(saved) ~= "table" or not saved.__loader then error(("ckpt.load: entry '%s' in %s is not a loader"):format(key, where), 0) end
    local ok, err = pcall(target.setState, target, { epoch = saved.epoch, position = saved.position, seed = saved.seed })
    if not ok then error(("ckpt.load: entry '%s' in %s: %s"):format(key, where, tostring(err)), 0) end
  else
    error(("ckpt.load: into.%s is a %s; only modules, optimizers, EMAs and loaders are loaded in place"):format(key, kind), 0)
  end
end

function ckpt.load(dir, into)
  if type(dir) ~= "string" then error(("bad argument #1 to 'load' (folder name expected, got %s)"):format(type(dir)), 2) end
  if into ~= nil and type(into) ~= "table" then error(("bad argument #2 to 'load' (table of things to load expected, got %s)"):format(type(into)), 2) end
  local folder = resolve(dir)
  local ok, text = pcall(S.readText, folder .. "/state.json")
  if not ok then error(("ckpt.load: cannot read %s/state.json"):format(folder), 0) end
  local doc = json.decode(text, folder .. "/state.json")
  if type(doc) ~= "table" or doc.format ~= "luagan-checkpoint" then
    error(("ckpt.load: %s/state.json is not a luagan checkpoint"):format(folder), 0)
  end
  local ok2, tensors = pcall(tensor.load, folder .. "/tensors.safetensors")
  if not ok2 then error(("ckpt.load: %s"):format(tostring(tensors)), 0) end
  local state = decode(doc.state, tensors, folder)
  for key, target in pairs(into or {}) do loadInto(key, target, state[key], folder) end
  return state, folder
end
