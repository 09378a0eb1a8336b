-- log and plot: JSON-lines logs flushed line by line, the progress bar on and off a terminal,
-- and PNG line charts drawn by luagan (checked by reading the PNG back).
local T = require("testing")
local check, checkError = T.check, T.checkError
local tmp = os.tmpname()
os.remove(tmp)
paths.mkdir(tmp)

T.test("the logger appends one JSON object per line and flushes it", function()
  local lg = log.Logger(tmp .. "/run")
  lg:log(1, { lossD = 1.5, lossG = tensor.new(0.25), note = "start" })
  -- readable before close: each line is flushed
  local records = log.read(tmp .. "/run/log.jsonl")
  check(#records == 1 and records[1].iter == 1 and records[1].lossD == 1.5 and records[1].lossG == 0.25 and records[1].note == "start")
  check(type(records[1].time) == "number" and records[1].elapsed >= 0)
  for i = 2, 5 do lg:log(i, { lossD = 1 / i }) end
  lg:close()
  local again = log.Logger(tmp .. "/run")  -- appends, as a resumed run does
  again:log(6, { lossD = 0.1 })
  again:close()
  local f = io.open(tmp .. "/run/log.jsonl", "a"); f:write('{"iter": 7, "lossD": 0.'); f:close()  -- a line cut by a kill
  records = log.read(tmp .. "/run/log.jsonl")
  check(#records == 6, "the cut line is skipped")
  local s = log.series(records, "lossD")
  check(#s.x == 6 and s.x[6] == 6 and s.y[2] == 0.5 and s.name == "lossD")
  checkError("integer iteration expected", function() log.Logger(tmp .. "/run"):log(1.5, {}) end)
  checkError("scalar 'x' is a table", function() log.Logger(tmp .. "/run"):log(1, { x = {} }) end)
  checkError("log.read: cannot open", log.read, tmp .. "/none.jsonl")
end)

T.test("progress: plain periodic lines off a terminal, a redrawn line on one", function()
  local lines = {}
  local sink = { write = function(_, ...) for _, s in ipairs { ... } do lines[#lines + 1] = s end end, flush = function() end }
  local bar = log.Progress(100, { tty = false, every = 0, out = sink })
  for i = 1, 3 do bar:update(i * 10, { lossD = 0.5 }) end
  bar:finish()
  local text = table.concat(lines)
  check(select(2, text:gsub("\n", "")) == 3, "one line per update")
  check(text:find("10/100 [", 1, true) and text:find("lossD 0.5", 1, true) and text:find("it/s", 1, true) and text:find("ETA", 1, true), text)
  lines = {}
  bar = log.Progress(50, { tty = true, out = sink })
  bar:update(25, { lossG = 1 })
  check(table.concat(lines):sub(1, 1) == "\r" and table.concat(lines):find(" 50%", 1, true), table.concat(lines))
  local quiet = log.Progress(100, { tty = false, every = 3600, out = sink })
  lines = {}
  for i = 1, 50 do quiet:update(i) end
  check(#lines == 2, "off a terminal, lines are rate-limited")
end)

T.test("plot.lines draws a PNG with the series' colours", function()
  local y1, y2 = {}, {}
  for i = 1, 50 do y1[i] = math.exp(-i / 10); y2[i] = 0.5 + 0.1 * math.sin(i) end
  local path = tmp .. "/plots/losses.png"
  plot.lines(path, { { name = "lossD", y = y1 }, { name = "lossG", x = tensor.arange(1, 51), y = tensor.new(y2) } },
    { title = "Losses", xlabel = "iteration", ylabel = "loss", width = 640, height = 400 })
  local img = image.load(path)
  check(table.concat(img:shape(), ",") == "3,400,640")
  -- tab10 blue (31, 119, 180) and orange (255, 127, 14) are present
  local r, g, b = img[1], img[2], img[3]
  local blue = r:lt(0.2):mul(g:gt(0.4)):mul(b:gt(0.6)):sum():item()
  local orange = r:gt(0.9):mul(g:gt(0.4)):mul(g:lt(0.6)):mul(b:lt(0.15)):sum():item()
  check(blue > 100 and orange > 100, ("blue %d, orange %d pixels"):format(blue, orange))
  check(img:lt(0.3):sum():item() > 500, "dark text and axes")
  plot.lines(tmp .. "/plots/log.png", { { name = "sigma", y = y1 } }, { logy = true })
  plot.lines(tmp .. "/plots/nan.png", { { name = "with gaps", y = { 1, 0 / 0, 3, math.huge, 2 } } })
  checkError("has 2 x values and 3 y values", plot.lines, tmp .. "/p.png", { { x = { 1, 2 }, y = { 1, 2, 3 } } })
  checkError("no series to draw", plot.lines, tmp .. "/p.png", {})
  checkError("unknown option 'titel'", plot.lines, tmp .. "/p.png", { { y = { 1 } } }, { titel = "x" })
  checkError("must be between", plot.lines, tmp .. "/p.png", { { y = { 1 } } }, { width = 1e6 })
  checkError("has no y values", plot.lines, tmp .. "/p.png", { { x = { 1 } } })
end)

T.test("a legend of many series goes beside the plot, in columns; a few stay inside", function()
  local many, few = {}, {}
  for k = 1, 30 do
    local x, y = {}, {}
    for i = 1, 20 do x[i], y[i] = i, k + math.sin(i) end
    many[k] = { name = ("blocks.%d.conv1"):format(k), x = x, y = y }
  end
  for k = 1, 3 do few[k] = many[k] end
  plot.lines(tmp .. "/many.png", many, { title = "sv", width = 960, height = 600 })
  plot.lines(tmp .. "/few.png", few, { title = "sv", width = 960, height = 600 })
  local wide, narrow = image.load(tmp .. "/many.png"), image.load(tmp .. "/few.png")
  T.check(narrow:size(3) == 960, "3 series keep the requested width, got " .. narrow:size(3))
  T.check(wide:size(3) > 960 + 2 * 200, "30 series need two legend columns beside the plot, got width " .. wide:size(3))
  -- The 30th series' colour (tab10 index 9, cyan, dotted) appears in the legend area.
  local legend = wide:narrow(3, 961, wide:size(3) - 960)
  local cyan = legend[1]:lt(0.2):mul(legend[2]:gt(0.6)):mul(legend[3]:gt(0.7)):sum():item()
  T.check(cyan > 0, "the legend beside the plot shows the last series")
end)

paths.remove(tmp)
T.finish("logs_plots")
