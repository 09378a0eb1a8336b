-- sample.lua: sheets and a truncation sweep from a checkpoint of biggan.lua, pggan.lua or
-- dcgan.lua, from BigGAN-PyTorch's G.pth / G_ema.pth, or from pytorch-pretrained-BigGAN's
-- BigGAN-deep weights -- a template for your own sampling scripts.
--   classes.png            one row per class, 10 samples each (conditional models)
--   interp_z.png           rows interpolate between two z (class fixed per row)
--   interp_class.png       rows interpolate between two classes in the shared embedding (z fixed)
--   trunc-<t>.png          the class sheet at each truncation threshold t
--   truncation.png         IS against FID across thresholds (the domain classifier), and
--   truncation.json        the numbers behind it, with the paper's Table 2 from the sweep
--                          (untruncated, best FID, the validation data's IS, max IS), also printed
--
--   luagan scripts/sample.lua --ckpt=runs/biggan [--truncations={2,1,0.5,0.25}] [--n=2000]
--   luagan scripts/sample.lua --ckpt=path/to/G_ema.pth --classes={1,208,981}
--   luagan scripts/sample.lua --pretrained=biggan-deep-256 --weights=path/to/pytorch_model.bin
local options = require("options")
local training = require("training")

local opt, given = options.cli(arg, {
  { "ckpt", "", "a run folder (its latest checkpoint), a checkpoint folder, or BigGAN-PyTorch's G.pth / G_ema.pth" },
  { "pretrained", "", "pytorch-pretrained-BigGAN's model: biggan-deep-128, biggan-deep-256 or biggan-deep-512 (with --weights)" },
  { "weights", "", "its pytorch_model.bin" },
  { "classes", {}, "1-based classes for the sheets (ImageNet's 0-based 207 is 208; default: all up to 20, else 10 spread out)" },
  { "batch", 16, "images per forward pass", min = 1 },
  { "out", "", "where to write (default: <run>/sample)" },
  { "truncations", { 0, 2, 1.5, 1, 0.75, 0.5, 0.25 }, "thresholds to sweep (0: no truncation)" },
  { "n", 2000, "samples per threshold for FID and IS (0: sheets only)", min = 0, max = 1000000 },
  { "ema", true, "use the EMA generator when the checkpoint has one" },
  { "seed", 1, "seed of the noise" },
  { "standing", 0, "standing statistics: BatchNorm statistics averaged over this many batches before sampling at each "
    .. "threshold, then eval mode (BigGAN-PyTorch's --accumulate_stats; 0: off)", min = 0 },
  { "standingTruncated", false, "draw the standing passes' noise truncated as each threshold's samples (BigGAN-PyTorch: "
    .. "plain N(0, 1))" },
}, "Sample sheets, interpolations and a truncation sweep from a checkpoint.")
local function usage(message) io.stderr:write("sample.lua: ", message, "\n"); os.exit(2) end
local g
if opt.pretrained ~= "" then
  if opt.weights == "" then usage("--pretrained needs --weights=path/to/pytorch_model.bin") end
  if opt.standing > 0 then usage("--standing does not apply to --pretrained: its BN statistics are indexed by truncation") end
  g = training.loadPyTorchGenerator(opt.weights, { pretrained = opt.pretrained })
elseif opt.ckpt:match("%.pth?$") or opt.ckpt:match("%.bin$") then
  g = training.loadPyTorchGenerator(opt.ckpt)
elseif opt.ckpt ~= "" then
  g = training.loadGenerator(opt.ckpt, { ema = opt.ema })
else
  usage("--ckpt is required (a run folder such as runs/biggan, or a G_ema.pth), or --pretrained with --weights")
end
local noise = g.noise or function(n, t) return training.noise(n, g.dimZ, t) end
local truncations = opt.truncations
if g.truncations and not given.truncations then truncations = g.truncations end
local out = opt.out ~= "" and opt.out or (g.opt.out .. "/sample")
paths.mkdir(out)
tensor.manualSeed(opt.seed)

-- Generates in batches of --batch (a 256 px BigGAN-deep takes seconds per image on a CPU),
-- with a progress bar when there is more than one. `forward(from, count)` makes images from..from+count-1.
local function batched(n, forward)
  local parts, bar = {}, n > opt.batch and log.Progress(n) or nil
  for from = 1, n, opt.batch do
    local count = math.min(opt.batch, n - from + 1)
    parts[#parts + 1] = forward(from, count)
    if bar then bar:update(from + count - 1) end
  end
  if bar then bar:finish() end
  return tensor.cat(parts, 1)
end
local function generate(z, y, t)      -- z: (n, dimZ), y: (n) labels or nil
  if g.prepare then g.prepare(t or 0) end
  return batched(z:size(1), function(from, count)
    local zb = z:narrow(1, from, count)
    return y and g.sample(zb, y:narrow(1, from, count)) or g.sample(zb)
  end)
end
-- The sheets' classes: --classes, or all of them up to 20, or 10 spread over the range.
local sheetClasses = opt.classes
if #sheetClasses == 0 and g.numClasses > 0 then
  local k = math.min(g.numClasses, g.numClasses <= 20 and g.numClasses or 10)
  for i = 1, k do sheetClasses[i] = math.floor((i - 1) * g.numClasses / k) + 1 end
end
for _, c in ipairs(sheetClasses) do
  if math.type(c) ~= "integer" or c < 1 or c > g.numClasses then
    usage(("--classes: 1-based classes in 1..%d expected, got %s"):format(g.numClasses, tostring(c)))
  end
end
-- A class's name (the data set's, stored in the checkpoint) or its number.
local function className(c) return g.classNames and g.classNames[c] or ("class %d"):format(c) end
local function save(name, images, nrow, labels)
  local path = ("%s/%s.png"):format(out, name)
  image.save(path, image.grid(images, { nrow = nrow, padding = 2, padValue = 1, rowLabels = labels }), { range = { -1, 1 } })
  print("wrote " .. path)
end
local function lerp(a, b, steps)   -- rows: a -> b in `steps` columns
  local rows = {}
  for j = 0, steps - 1 do rows[#rows + 1] = (a + (b - a) * (j / (steps - 1))):unsqueeze(2) end
  return tensor.cat(rows, 2)        -- (R, steps, ...)
end

-- Class sheet: one row per class (or 8x8 samples for unconditional models).
local rowsOfClasses = math.max(#sheetClasses, 1)
local function sheet(truncation)
  if opt.standing > 0 then g.standing(opt.standing, opt.standingTruncated and truncation or nil) end
  local z = noise(rowsOfClasses * 10, truncation)
  if g.numClasses == 0 then return generate(z, nil, truncation), 10 end
  local y, names = {}, {}
  for r, c in ipairs(sheetClasses) do
    names[r] = className(c)
    for _ = 1, 10 do y[#y + 1] = c end
  end
  return generate(z, tensor.new(y), truncation), 10, names
end
save("classes", sheet(0))

-- Interpolation in z: 8 rows, 10 steps, the class fixed per row.
local rows, steps = 8, 10
local zs = lerp(noise(rows, 0), noise(rows, 0), steps):view(rows * steps, g.dimZ)
if g.numClasses > 0 then
  local y, names = {}, {}
  for r = 1, rows do
    local c = sheetClasses[(r - 1) % #sheetClasses + 1]
    names[r] = className(c)
    for _ = 1, steps do y[#y + 1] = c end
  end
  save("interp_z", generate(zs, tensor.new(y)), steps, names)
else
  save("interp_z", generate(zs), steps)
end

-- Interpolation between classes through the shared embedding (BigGAN with shared = true).
if g.embed and g.opt.shared then
  local from, to, names = {}, {}, {}
  for r = 1, rows do
    from[r] = sheetClasses[(r - 1) % #sheetClasses + 1]; to[r] = sheetClasses[r % #sheetClasses + 1]
    names[r] = className(from[r]) .. " > " .. className(to[r])
  end
  local e = lerp(g.embed(tensor.new(from)), g.embed(tensor.new(to)), steps):reshape(rows * steps, -1)
  local z = noise(rows, 0):unsqueeze(2):expand(rows, steps, g.dimZ):reshape(rows * steps, g.dimZ)
  if g.prepare then g.prepare(0) end
  save("interp_class", batched(rows * steps, function(from, count)
    return g.sampleEmbedded(z:narrow(1, from, count), e:narrow(1, from, count))
  end), steps, names)
end

-- Truncation sweep: a sheet per threshold, and FID / IS under the domain classifier.
local results = {}
local metricsOn = opt.n > 0 and g.channels == 1 and g.resolution == 32
local evaluation, ref
if metricsOn then
  evaluation = require("evaluation")
  ref = evaluation.reference { split = "test" }
end
for _, t in ipairs(truncations) do
  save(("trunc-%s"):format(t > 0 and t or "none"), sheet(t))
  if metricsOn then
    local r = evaluation.evaluate(function(n, i)
      local z = noise(n, t)
      if g.numClasses == 0 then return g.sample(z) end
      local y = {}
      for k = 0, n - 1 do y[k + 1] = (i - 1 + k) % g.numClasses + 1 end
      local labels = tensor.new(y)
      return g.sample(z, labels), labels
    end, ref, { n = opt.n, which = { "fid", "is", "accuracy" } })
    results[#results + 1] = { truncation = t, fid = r.fid, is = r.is, accuracy = r.accuracy }
    print(("truncation %-5s FID %7.3f  IS %6.3f%s"):format(t > 0 and t or "none", r.fid, r.is,
      r.accuracy and ("  class accuracy %.1f%%"):format(100 * r.accuracy) or ""))
  end
end
if #results > 0 then
  local xs, ys, labels = {}, {}, {}
  for i, r in ipairs(results) do xs[i], ys[i], labels[i] = r.fid, r.is, r.truncation > 0 and tostring(r.truncation) or "none" end
  -- The paper's Table 2 from this one sweep: untruncated, at the best FID, at the IS of the
  -- validation data (here the test split, under the same classifier), and at the largest IS.
  local dataIS = metrics.inceptionScore(ref.logits, { logits = true })
  local function best(score)
    local pick
    for _, r in ipairs(results) do if not pick or score(r) < score(pick) then pick = r end end
    return pick
  end
  local untruncated = best(function(r) return r.truncation > 0 and 1 or 0 end)
  local table2 = {
    { point = "untruncated", row = untruncated.truncation == 0 and untruncated or nil },
    { point = "best FID", row = best(function(r) return r.fid end), tag = "F" },
    { point = ("validation IS (%.2f)"):format(dataIS), row = best(function(r) return math.abs(r.is - dataIS) end), tag = "V" },
    { point = "max IS", row = best(function(r) return -r.is end), tag = "M" },
  }
  print(("\nTable 2 (BigGAN) from this sweep, %d samples per point:"):format(opt.n))
  print("| point | truncation | FID | IS | class accuracy |")
  print("|---|---|---|---|---|")
  if not table2[1].row then table.remove(table2, 1) end    -- the sweep had no untruncated point
  for i, e in ipairs(table2) do
    local r = e.row
    print(("| %s | %s | %.2f | %.2f | %s |"):format(e.point, r.truncation > 0 and r.truncation or "none", r.fid, r.is,
      r.accuracy and ("%.1f%%"):format(100 * r.accuracy) or "-"))
    table2[i] = { point = e.point, truncation = r.truncation, fid = r.fid, is = r.is, accuracy = r.accuracy }
    for k, x in ipairs(results) do       -- the plot tags each Table 2 point beside its threshold
      if x == r and e.tag then labels[k] = labels[k] .. " " .. e.tag end
    end
  end
  plot.lines(out .. "/truncation.png", { { name = (g.ema and "EMA G" or "G") .. (" at iteration %d"):format(g.iter), x = xs, y = ys,
    labels = labels } }, { title = ("truncation sweep, %d samples each (F best FID, V test split's IS, M max IS)"):format(opt.n),
    xlabel = "domain FID (lower is better)", ylabel = "domain IS (higher is better)" })
  local f = assert(io.open(out .. "/truncation.json", "w"))
  f:write(json.encode({ sweep = results, table2 = table2, validationIS = dataIS }, 2), "\n")
  f:close()
  print("wrote " .. out .. "/truncation.png and truncation.json")
end
