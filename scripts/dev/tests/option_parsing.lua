-- scripts/lib/options.lua: the option parser every training script uses.
local T = require("testing")
local options = require("options")
local check, checkError = T.check, T.checkError

local spec = {
  { "iters", 100, "iterations" },
  { "lr", 2e-4, "learning rate" },
  { "hier", true, "skip-z" },
  { "name", "run", "run name" },
  { "betas", { 0, 0.999 }, "Adam betas" },
}

T.test("forms: --k=v, --k v, --flag, --no-flag, tables", function()
  local o = options.parse({ "--iters=5", "--lr", "1e-3", "--no-hier", "--name=x", "--betas={0.5,0.9}" }, spec)
  check(o.iters == 5 and math.type(o.iters) == "integer" and o.lr == 1e-3 and o.hier == false and o.name == "x")
  check(o.betas[1] == 0.5 and o.betas[2] == 0.9)
  check(options.parse({ "--hier" }, spec).hier == true and options.parse({ "--hier=false" }, spec).hier == false)
  local d = options.parse({}, spec)
  check(d.iters == 100 and d.betas[2] == 0.999)
  d.betas[1] = 7
  check(options.parse({}, spec).betas[1] == 0, "defaults are copied, not shared")
end)

T.test("mistakes are errors that say what to do", function()
  checkError("unknown option --itres (did you mean --iters?)", options.parse, { "--itres=3" }, spec)
  checkError("option --iters expects an integer, got '2.5'", options.parse, { "--iters=2.5" }, spec)
  checkError("option --lr expects a number, got 'fast'", options.parse, { "--lr=fast" }, spec)
  checkError("option --hier expects a boolean", options.parse, { "--hier=maybe" }, spec)
  checkError("option --betas expects a Lua table", options.parse, { "--betas=0.9" }, spec)
  checkError("unexpected argument 'extra'", options.parse, { "extra" }, spec)
  checkError("no option named 'nope'", function() return options.parse({}, spec).nope end)
end)

T.test("config files, overridden by the command line", function()
  local path = os.tmpname()
  local f = io.open(path, "w"); f:write("iters = 7\nlr = 0.5\n"); f:close()
  local o = options.parse({ "--config=" .. path, "--lr=0.1" }, spec)
  check(o.iters == 7 and o.lr == 0.1)
  local _, given = options.parse({ "--config=" .. path, "--lr=0.1" }, spec)
  check(given.lr == true and given.iters == "config", "given tells the command line (true) from the config file")
  local o2 = options.parse({ "--lr=0.1", "--config", path }, spec)
  check(o2.lr == 0.1, "a value given on the command line wins wherever --config appears")
  f = io.open(path, "w"); f:write("return { iter = 3 }"); f:close()
  checkError("unknown option 'iter' in " .. path .. " (did you mean 'iters'?)", options.parse, { "--config=" .. path }, spec)
  f = io.open(path, "w"); f:write("return { iters = 'many' }"); f:close()
  checkError("option iters in " .. path .. " must be a number", options.parse, { "--config=" .. path }, spec)
  f = io.open(path, "w"); f:write("os.exit(3)"); f:close()
  checkError("error in config file", options.parse, { "--config=" .. path }, spec)
  os.remove(path)
  checkError("cannot read config file", options.parse, { "--config=/no/such.lua" }, spec)
end)

T.test("describe and plain", function()
  local o = options.parse({ "--iters=3" }, spec)
  check(options.describe(o, spec):find("iters = 3", 1, true))
  check(getmetatable(options.plain(o)) == nil and options.plain(o).iters == 3)
end)

T.finish("option_parsing")
