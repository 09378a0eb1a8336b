-- Files people bring: JPEG (baseline, progressive, gray, Adobe CMYK) and 16-bit PNG against
-- what Pillow decodes; NumPy .npz (numpy-written arrays of every numeric dtype, deflated
-- archives, pytorch-fid statistics, pickles refused); stylegan2-ada dataset zips and image
-- folders with JPEGs, their prepared-pixel cache, and per-class subsets. Fixtures from
-- scripts/dev/fixtures/make_file_fixtures.py (numpy, Pillow) under Tests/Fixtures/files.
local T = require("testing")
local check, checkError, close = T.check, T.checkError, T.close
local root = os.getenv("LUAGAN_HOME") or (debug.getinfo(1, "S").source:match("^@(.*)/scripts/dev/tests/") or ".")
local dir = root .. "/Tests/Fixtures/files/"
local tmp = os.tmpname()
os.remove(tmp)
paths.mkdir(tmp)

local function read(path) local f = assert(io.open(path, "rb")); local s = f:read("a"); f:close(); return s end
local function write(path, bytes) local f = assert(io.open(path, "wb")); f:write(bytes); f:close() end

T.test("JPEG and 16-bit PNG decode as Pillow decodes them", function()
  local want = tensor.load(dir .. "images.safetensors")
  for _, name in ipairs { "rgb", "progressive", "gray", "cmyk" } do
    -- libjpeg-turbo's accurate integer IDCT is the same on every SIMD path; allow one level
    -- for a different library version.
    close(image.load(dir .. name .. ".jpg"), want[name], 1 / 255 + 1e-6, 0, name)
  end
  close(image.load(dir .. "gray16.png"), want.gray16, 1e-7, 0, "16-bit gray keeps its 16 bits")
  close(image.load(dir .. "rgb16.png"), want.rgb16, 1e-7, 0, "16-bit RGB")
  check(image.load(dir .. "cmyk.jpg"):size(1) == 3, "CMYK becomes RGB")
end)

T.test("JPEG out: quality, subsampling, gray; round trips; what a JPEG cannot hold is refused", function()
  local x = image.load(dir .. "rgb.jpg")
  -- JPEG is lossy: judge the round trip by its mean error, and bound the ringing at the
  -- test image's hard checker edges
  local function near(a, b, mean, worst, what)
    local d = (a - b):abs()
    local m, w = d:mean():item(), d:max():item()
    check(m < mean and w < worst, ("%s: mean error %.4f, max %.4f"):format(what, m, w))
  end
  image.save(tmp .. "/q95.jpg", x)
  near(image.load(tmp .. "/q95.jpg"), x, 3 / 255, 16 / 255, "quality 95, 4:4:4")
  image.save(tmp .. "/q20.jpeg", x, { quality = 20, subsampling = "420" })
  check(#read(tmp .. "/q20.jpeg") < #read(tmp .. "/q95.jpg"), "lower quality, smaller file")
  image.save(tmp .. "/g.jpg", (tensor.arange(0, 64) / 63):reshape(1, 8, 8))
  local g = image.load(tmp .. "/g.jpg")
  check(g:size(1) == 1, "gray stays gray")
  near(g, (tensor.arange(0, 64) / 63):reshape(1, 8, 8), 1.5 / 255, 6 / 255, "gray")
  image.save(tmp .. "/range.jpg", x * 2 - 1, { range = { -1, 1 } })
  near(image.load(tmp .. "/range.jpg"), x, 3 / 255, 16 / 255, "range maps as for PNG")
  checkError("no alpha", image.save, tmp .. "/a.jpg", tensor.ones(4, 4, 4))
  checkError("quality must be in 1..100", image.save, tmp .. "/a.jpg", x, { quality = 101 })
  checkError("subsampling must be", image.save, tmp .. "/a.jpg", x, { subsampling = "411" })
  check(not paths.exists(tmp .. "/a.jpg"), "a refused save leaves no file")
end)

T.test("corrupt and truncated JPEGs are errors naming the file", function()
  local good = read(dir .. "rgb.jpg")
  write(tmp .. "/half.jpg", good:sub(1, #good // 2))
  checkError(tmp .. "/half.jpg", image.load, tmp .. "/half.jpg")
  write(tmp .. "/soi.jpg", "\xFF\xD8\xFF")
  checkError("not a readable JPEG", image.load, tmp .. "/soi.jpg")
  write(tmp .. "/garbage.jpg", good:sub(1, 200) .. string.rep("\x55", 400) .. good:sub(601))
  checkError("garbage.jpg", image.load, tmp .. "/garbage.jpg")
  write(tmp .. "/text.jpg", "this is not an image")
  checkError("neither a PNG nor a JPEG", image.load, tmp .. "/text.jpg")
  -- a header declaring 65500x65500 is refused before any pixel memory is taken
  local sof = good:find("\xFF\xC0", 1, true)
  write(tmp .. "/huge.jpg", good:sub(1, sof + 4) .. "\xFF\xDC\xFF\xDC" .. good:sub(sof + 9))
  checkError("more than the limit", image.load, tmp .. "/huge.jpg")
end)

T.test(".npz from numpy: every numeric dtype, both orders, deflated too; pickles refused", function()
  local want = tensor.load(dir .. "arrays.safetensors")
  for _, file in ipairs { "arrays.npz", "compressed.npz" } do
    local got = tensor.load(dir .. file)
    for _, name in ipairs { "f32", "f64_big", "i16", "u8", "flags", "fortran" } do
      close(got[name]:to("float64"), want[name]:to("float64"), 0, 0, file .. " " .. name)
    end
    check(got.scalar:dim() == 0 and got.scalar:item() == 3.25, "a 0-d array")
    check(got.f32:dtype() == "float32" and got.i16:dtype() == "float64", "float32 stays float32; the rest float64")
    local h, w = got.half, want.half
    check(h[5] == math.huge and w[5] == math.huge, "float16 infinity")
    close(h:narrow(1, 1, 4), w:narrow(1, 1, 4), 0, 0, "float16 normals and subnormals")
  end
  checkError("needs pickle", tensor.load, dir .. "pickled.npz")
  local stats = metrics.loadStats(dir .. "stats.npz")
  close(stats.mu, want.stats_mu, 0, 0)
  close(stats.sigma, want.stats_sigma, 0, 0)
  check(stats.n == nil and stats.mu:dtype() == "float64", "pytorch-fid files carry no n")
end)

T.test(".npz out: tensors and statistics round trip; corrupt archives are errors", function()
  local a, b = tensor.randn(3, 4), tensor.randn(2, 2, 2, { dtype = "float64" })
  tensor.save(tmp .. "/t.npz", { a = a, b = b })
  local back = tensor.load(tmp .. "/t.npz")
  close(back.a, a, 0, 0)
  close(back.b, b, 0, 0)
  check(back.a:dtype() == "float32" and back.b:dtype() == "float64")
  local s = { mu = tensor.randn(5, { dtype = "float64" }), sigma = tensor.eye(5, { dtype = "float64" }), n = 77 }
  metrics.saveStats(tmp .. "/s.npz", s)
  local s2 = metrics.loadStats(tmp .. "/s.npz")
  close(s2.mu, s.mu, 0, 0)
  check(s2.n == 77)
  tensor.save(tmp .. "/bad.npz", { mu = tensor.ones(3), sigma = tensor.ones(2, 2) })
  checkError("expected mu (D) and sigma (D, D)", metrics.loadStats, tmp .. "/bad.npz")
  local bytes = read(tmp .. "/t.npz")
  write(tmp .. "/cut.npz", bytes:sub(1, #bytes - 30))
  checkError("not a zip file", tensor.load, tmp .. "/cut.npz")
  local at = bytes:find("NUMPY", 1, true) + 120         -- a byte inside the first array's data
  write(tmp .. "/flip.npz", bytes:sub(1, at - 1) .. string.char((bytes:byte(at) + 1) % 256) .. bytes:sub(at + 1))
  checkError("CRC-32 mismatch", tensor.load, tmp .. "/flip.npz")
end)

T.test("stylegan2-ada dataset zips: labels from dataset.json, crop / pad / stretch, cached pixels", function()
  local want = tensor.load(dir .. "dataset_expected.safetensors")      -- (12, 3, 8, 10) in 0..255
  local stretch = data.zipDataset(dir .. "dataset.zip", { size = 8, fit = "stretch" })
  check(#stretch == 12 and stretch.numClasses == 3 and stretch.classNames[1] == "0")
  close(stretch.labels, want.labels + 1, 0, 0, "labels are 1-based")
  local crop = data.zipDataset(dir .. "dataset.zip", { size = 8, fit = "crop", cache = tmp .. "/cache" })
  close(crop.images, want.pixels:narrow(4, 2, 8) / 255, 1e-6, 0, "the central 8x8 of 8x10")
  local pad = data.zipDataset(dir .. "dataset.zip", { size = 10, fit = "pad" })
  close(pad.images:narrow(3, 2, 8), want.pixels / 255, 1e-6, 0, "centred on a black square")
  check(pad.images:narrow(3, 1, 1):abs():max():item() == 0, "the padding is black")
  local cached = data.zipDataset(dir .. "dataset.zip", { size = 8, fit = "crop", cache = tmp .. "/cache" })
  close(cached.images, crop.images, 0, 0, "from the cache")
  check(#paths.list(tmp .. "/cache") == 1, "one prepared file")
  data.zipDataset(dir .. "dataset.zip", { size = 4, fit = "crop", cache = tmp .. "/cache" })
  check(#paths.list(tmp .. "/cache") == 2, "other options prepare again")
  local gray = data.zipDataset(dir .. "dataset.zip", { size = 8, channels = 1 })
  check(gray.images:size(2) == 1)
  checkError("not a zip file", data.zipDataset, dir .. "rgb.jpg")
  checkError("option 'fit' must be one of", data.zipDataset, dir .. "dataset.zip", { fit = "squash" })
  checkError("holds no PNG or JPEG entries", data.zipDataset, dir .. "stats.npz")
end)

T.test("image folders: JPEG and PNG, class sub-folders or flat; per-class subsets", function()
  local f = tmp .. "/folder"
  for _, c in ipairs { "b_cats", "a_dogs" } do paths.mkdir(f .. "/" .. c) end
  image.save(f .. "/b_cats/1.jpg", tensor.ones(3, 12, 16) * 0.25)
  image.save(f .. "/b_cats/2.png", tensor.ones(3, 16, 12) * 0.75)
  image.save(f .. "/a_dogs/3.JPEG", tensor.zeros(1, 8, 8))
  local ds = data.imageFolder(f, { size = 8 })
  check(#ds == 3 and ds.classNames[1] == "a_dogs" and ds.classNames[2] == "b_cats", "sorted class names")
  close(ds.labels, tensor.new { 1, 2, 2 }, 0, 0)
  close(ds.images[2], tensor.full({ 3, 8, 8 }, 0.25), 2 / 255, 0, "the JPEG, cropped and box-resized")
  local flat = tmp .. "/flat"
  paths.mkdir(flat)
  for i = 1, 3 do image.save(("%s/%d.jpg"):format(flat, i), tensor.ones(3, 4, 4) * i / 4) end
  local one = data.imageFolder(flat, { size = 4, cache = tmp .. "/fcache" })
  check(#one == 3 and one.numClasses == 1 and one.classNames[1] == "flat")
  image.save(flat .. "/4.jpg", tensor.ones(3, 4, 4))
  check(#data.imageFolder(flat, { size = 4, cache = tmp .. "/fcache" }) == 4, "a new file invalidates the cache")
  local fm = data.fashionMNIST { split = "test" }
  local sub = fm:subset(100, 3)
  check(#sub == 1000)
  for k = 1, 10 do check(sub.labels:eq(k):sum():item() == 100, "class " .. k) end
  close(fm:subset(100, 3).images, sub.images, 0, 0, "the same seed, the same images")
  check((fm:subset(100, 4).images - sub.images):abs():max():item() > 0, "another seed, other images")
  checkError("perClass must be positive", function() return fm:subset(0) end)
end)

paths.remove(tmp)
T.finish("file_formats")
