-- image: PNG through libpng (reading files another encoder wrote, round trips of every
-- channel count), value ranges, grids, resizing against PyTorch, and bad files.
local T = require("testing")
local fixtures = require("fixtures")
local check, checkError, close = T.check, T.checkError, T.close
local root = os.getenv("LUAGAN_HOME") or "."
local tmp = os.tmpname()
os.remove(tmp)
paths.mkdir(tmp)

T.test("reads PNGs written by another encoder: gray, gray+alpha, RGB, RGBA, 16-bit, palette", function()
  local expected = fixtures.load("png_expected")
  for _, name in ipairs { "gray8", "gray_alpha", "rgb8", "rgba8", "gray16", "palette_trns" } do
    local img = image.load(root .. "/Tests/Fixtures/png/" .. name .. ".png")
    close(img, expected[name], 1e-7, 0, name)
  end
end)

T.test("save and load round trips (8-bit quantization), with ranges and clamping", function()
  tensor.manualSeed(1)
  for _, c in ipairs { 1, 2, 3, 4 } do
    local x = tensor.rand(c, 7, 5)
    image.save(tmp .. "/rt.png", x)
    local y = image.load(tmp .. "/rt.png")
    check(table.concat(y:shape(), ",") == c .. ",7,5")
    check(T.maxDiff(x, y) <= 0.5 / 255 + 1e-6, ("%d channels: off by more than half a level"):format(c))
  end
  local x = tensor.rand(3, 4, 4) * 2 - 1
  image.save(tmp .. "/range.png", x, { range = { -1, 1 } })
  check(T.maxDiff(image.load(tmp .. "/range.png") * 2 - 1, x) <= 1 / 255 + 1e-6, "[-1, 1] maps onto [0, 255]")
  image.save(tmp .. "/clamp.png", tensor.new { { -5, 0.5, 7 } })  -- an (H, W) gray image
  close(image.load(tmp .. "/clamp.png"), tensor.new { { { 0, 128 / 255, 1 } } }, 1e-7, 0, "values outside the range are clamped")
end)

T.test("grid tiles a batch like make_grid", function()
  local b = tensor.ones(5, 1, 3, 4)
  local g = image.grid(b, { nrow = 3, padding = 1, padValue = 0.5 })
  check(table.concat(g:shape(), ",") == "1,9,16", table.concat(g:shape(), ","))  -- 2 rows of (3+1), 3 columns of (4+1), + 1
  check(g[1][1][1] == 0.5 and g[1][2][2] == 1 and g[1][9][16] == 0.5)
  check(g[1][6][12] == 0.5, "the missing sixth image leaves padding")
  local r = image.grid(tensor.ones(1, 3, 2, 2) * 3, { range = { -1, 5 }, padding = 0 })
  close(r, tensor.full({ 3, 2, 2 }, 4 / 6), 1e-6, 0, "range maps values to [0, 1]")
end)

T.test("resize matches torch.nn.functional.interpolate", function()
  local f = fixtures.load("images")
  for key, expected in pairs(f) do
    local mode, h, w = key:match("^resize%.(%a+)%.(%d+)x(%d+)$")
    if mode then
      local out = image.resize(f["resize.in"], { tonumber(h), tonumber(w) }, { mode = mode == "area" and "box" or mode })
      close(out, expected, 1e-6, 1e-5, key)
    end
  end
  close(image.resize(f["box.in"], 4, { mode = "box" }), f["box.out"], 1e-6, 1e-5, "box by 2 is PGGAN's 2x2 average")
  check(table.concat(image.resize(tensor.zeros(3, 10, 10), 4):shape(), ",") == "3,4,4", "(C, H, W) input")
end)

T.test("bad files give clear errors", function()
  checkError("image.load: no such file", image.load, tmp .. "/missing.png")
  local f = io.open(tmp .. "/text.png", "wb"); f:write("this is not a png at all"); f:close()
  checkError("is neither a PNG nor a JPEG file", image.load, tmp .. "/text.png")
  local src = io.open(root .. "/Tests/Fixtures/png/rgb8.png", "rb"):read("a")
  for _, cut in ipairs { 20, 40, #src - 20, #src - 4 } do
    f = io.open(tmp .. "/cut.png", "wb"); f:write(src:sub(1, cut)); f:close()
    checkError("image.load:", image.load, tmp .. "/cut.png")
  end
  local corrupt = src:sub(1, 60) .. ("\0"):rep(10) .. src:sub(71)
  f = io.open(tmp .. "/corrupt.png", "wb"); f:write(corrupt); f:close()
  checkError("image.load:", image.load, tmp .. "/corrupt.png")
  checkError("expected a (C, H, W) tensor", image.save, tmp .. "/x.png", tensor.zeros(5, 2, 2))
  checkError("option 'range' {1, 1} is empty", image.save, tmp .. "/x.png", tensor.zeros(1, 2, 2), { range = { 1, 1 } })
  checkError("image.save: cannot create folder", image.save, "/proc/luagan-no-such/x.png", tensor.zeros(1, 2, 2))
end)

paths.remove(tmp)
T.finish("images")
