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

local json = json

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

--- ckpt.clean(dir): removes what an interrupted save left in `dir` (.tmp-* folders; an .old-*
-- folder is moved back when its checkpoint did not come back). Returns how many it removed.
function ckpt.clean(dir)
  if type(dir) ~= "string" then error(("bad argument #1 to 'clean' (folder name expected, got %s)"):format(type(dir)), 2) end
  local exists, isDir = S.exists(dir)
  if not exists or not isDir then return 0 end
  local removed = 0
  for _, name in ipairs(S.list(dir)) do
    local old = name:match("^%.old%-(.+)%-%d+$")
    if name:match("^%.tmp%-") then
      S.remove(dir .. "/" .. name); removed = removed + 1
    elseif old then
      if select(1, S.exists(dir .. "/" .. old)) then S.remove(dir .. "/" .. name); removed = removed + 1
      else S.rename(dir .. "/" .. name, dir .. "/" .. old) end
    end
  end
  return removed
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
    if math.type(saved.startIter) == "integer" then target:startAt(saved.startIter) end
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
