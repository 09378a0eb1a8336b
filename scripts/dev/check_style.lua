-- check_style.lua: the code's budgets, checked by CI (make lint) with luagan itself, so CI
-- needs nothing else. Every Swift, C and Lua line fits in 140 columns, with no tabs and no
-- trailing spaces; every Swift function fits in 100 lines. What exceeded a budget when the
-- check was introduced is listed below with its size then: those allowances are a ratchet,
-- they may only shrink (a file with more long lines than allowed, a listed function grown
-- longer, or an allowance for something that no longer exists fails the check).
--
--   luagan scripts/dev/check_style.lua [--verbose] [--baseline]   (--baseline prints the tables)
local MAX_COLUMNS, MAX_BODY = 140, 100

-- Functions over MAX_BODY lines: "file:function" = lines. Shrink them, then lower or remove.
-- Lines over MAX_COLUMNS per file: path = count. Both tables are in scripts/dev/lib/style_allowances.lua
-- of the tree being checked (the current directory).
local allowances = dofile("scripts/dev/lib/style_allowances.lua")
local allowed, allowedLong = allowances.functions, allowances.longLines

local verbose, baseline = false, false
for _, a in ipairs(arg) do verbose = verbose or a == "--verbose"; baseline = baseline or a == "--baseline" end
local problems = {}
local function problem(fmt, ...) problems[#problems + 1] = fmt:format(...) end

local function walk(dir, out)
  local names = paths.list(dir)
  table.sort(names)
  for _, name in ipairs(names) do
    local path = dir .. "/" .. name
    local _, isDir = paths.exists(path)
    if isDir then walk(path, out) else out[#out + 1] = path end
  end
  return out
end

local function lines(path)
  local out = {}
  for line in (paths.readText(path) .. "\n"):gmatch("(.-)\n") do out[#out + 1] = line end
  return out
end

-- Counts braces outside string literals and comments (enough for this code base: no braces in
-- multi-line strings that would unbalance a function).
local function braceDelta(line)
  local code = line:gsub('\\"', ""):gsub('"[^"]*"', ""):gsub("//.*$", "")
  local _, opens = code:gsub("{", "")
  local _, closes = code:gsub("}", "")
  return opens - closes
end

local function functionBodies(path, text)
  local found = {}
  local i = 1
  while i <= #text do
    local name = text[i]:match("func%s+([%w_]+)") or text[i]:match("^%s*(init)%s*%(") or text[i]:match("[%s%.](init)%s*%(")
    if name and not text[i]:match("^%s*//") then
      -- the body starts at the first line that opens a brace
      local depth, j, started = 0, i, false
      while j <= #text do
        local d = braceDelta(text[j])
        if text[j]:find("{", 1, true) then started = true end
        depth = depth + d
        if started and depth <= 0 then break end
        if not started and (text[j]:match("%)%s*$") == nil and j > i + 8) then break end   -- a requirement without a body
        j = j + 1
      end
      if started then found[#found + 1] = { name = name, line = i, length = j - i + 1 } end
    end
    i = i + 1
  end
  return found
end

local files = {}
for _, root in ipairs { "Sources", "Tests", "scripts" } do walk(root, files) end
local seen, longest, longCounts = {}, {}, {}
for _, path in ipairs(files) do
  local ext = path:match("%.(%w+)$")
  if ext == "swift" or ext == "lua" or ext == "c" or ext == "h" then
    local text = lines(path)
    local long = {}
    for n, line in ipairs(text) do
      local width = utf8.len(line) or #line
      if width > MAX_COLUMNS then long[#long + 1] = ("%s:%d: %d columns"):format(path, n, width) end
      if line:find("\t", 1, true) then problem("%s:%d: a tab (indent with spaces)", path, n) end
      if line:find("%s$") then problem("%s:%d: trailing whitespace", path, n) end
    end
    longCounts[path] = #long > 0 and #long or nil
    local allowance = allowedLong[path] or 0
    if #long > allowance then
      problem("%s: %d lines over %d columns (allowed: %d, the rest were there when the budget began):\n  %s",
        path, #long, MAX_COLUMNS, allowance, table.concat(long, "\n  "))
    end
    if ext == "swift" then
      for _, f in ipairs(functionBodies(path, text)) do
        local key = path .. ":" .. f.name
        if seen[key] ~= nil or (longest[#longest] and longest[#longest].key == key) then key = key .. "@" .. f.line end
        longest[#longest + 1] = { key = key, length = f.length, line = f.line }
        local budget = allowed[key]
        if budget then
          seen[key] = true
          if f.length <= MAX_BODY then problem("%s: %s is %d lines now, within budget: remove its allowance", path, f.name, f.length) end
          if f.length > budget then problem("%s:%d: %s is %d lines; its allowance is %d (it may only shrink)", path, f.line, f.name, f.length, budget) end
        elseif f.length > MAX_BODY then
          problem("%s:%d: %s is %d lines (budget %d)", path, f.line, f.name, f.length, MAX_BODY)
        end
      end
    end
  end
end
for key in pairs(allowed) do
  if not seen[key] then problem("%s: listed in style_allowances.lua but not found: remove it", key) end
end
for path, n in pairs(allowedLong) do
  if (longCounts[path] or 0) < n then
    problem("%s: %d long lines now, %d allowed: lower its allowance in style_allowances.lua to %d", path, longCounts[path] or 0, n,
      longCounts[path] or 0)
  end
end

if baseline then
  print("return {\n  functions = {")
  table.sort(longest, function(a, b) return a.key < b.key end)
  for _, f in ipairs(longest) do if f.length > MAX_BODY then print(("    [%q] = %d,"):format(f.key, f.length)) end end
  print("  },\n  longLines = {")
  local paths_ = {}
  for path in pairs(longCounts) do paths_[#paths_ + 1] = path end
  table.sort(paths_)
  for _, path in ipairs(paths_) do print(("    [%q] = %d,"):format(path, longCounts[path])) end
  print("  },\n}")
  os.exit(0)
end

if verbose then
  table.sort(longest, function(a, b) return a.length > b.length end)
  for i = 1, math.min(15, #longest) do print(("%4d  %s (line %d)"):format(longest[i].length, longest[i].key, longest[i].line)) end
end
if #problems > 0 then
  for _, p in ipairs(problems) do io.stderr:write(p, "\n") end
  io.stderr:write(("check_style: %d problem(s)\n"):format(#problems))
  os.exit(1)
end
print(("check_style: %d files within budget (%d columns, %d-line functions)"):format(#files, MAX_COLUMNS, MAX_BODY))
