-- The metric formulas against their references (group "metrics", written by
-- scripts/dev/fixtures/make_metric_fixtures.py): FID against pytorch-fid and torch-fidelity; IS
-- against torch-fidelity and the OpenAI original; KID and precision/recall against
-- torch-fidelity on the same subsets; SWD and MS-SSIM against NumPy/SciPy versions of PGGAN's
-- procedures with the same RandomState stream.
local T = require("testing")
local fixtures = require("fixtures")
local f = fixtures.load("metrics")

-- Fixed relative tolerances, per reference (|ours - ref| <= rtol·|ref|).
local tol = {
  stats = 1e-12,          -- μ, Σ in float64 (absolute)
  fid = 1e-9,             -- well-conditioned Σ: eigen route vs scipy sqrtm / numpy eigvals
  fidSingular = 1e-6,     -- N < D and a dead unit: sqrtm of a singular product is itself inexact
  is = 1e-10,
  kid = 1e-10,            -- float64 features, same subsets
  kidFloat32 = 1e-5,      -- the reference computes float32 kernels; luagan float64
  swd = 1e-4,             -- float32 descriptors and projections on both sides
  msssim = 2e-6,          -- PGGAN filters by FFT, in single precision for float32 images
  msssimDirect = 1e-12,   -- the same formula with exact float64 filtering (scipy, method="direct")
  precisionRecall = 1e-7, -- torch-fidelity's mean is a float32 (the counts must agree)
}

local function rel(ours, ref, rtol, what)
  T.check(math.abs(ours - ref) <= rtol * math.abs(ref),
    ("%s: %.15g vs reference %.15g (rel diff %.3g > %g)"):format(what, ours, ref, math.abs(ours - ref) / math.abs(ref), rtol), 2)
end

for _, name in ipairs { "fid", "fid_singular", "fid64" } do
  T.test(name .. " matches pytorch-fid and torch-fidelity", function()
    local a, b = f[name .. ".a"], f[name .. ".b"]
    local s = metrics.featureStats(a)
    T.close(s.mu, f[name .. ".mu_a"], tol.stats, 0, "mu")
    T.close(s.sigma, f[name .. ".sigma_a"], tol.stats, 0, "sigma")
    local r = name == "fid_singular" and tol.fidSingular or tol.fid
    local d = metrics.fid(a, b)
    rel(d, f[name .. ".pytorch_fid"][1], r, "FID vs pytorch-fid")
    rel(d, f[name .. ".torch_fidelity"][1], r, "FID vs torch-fidelity")
    rel(metrics.fidFromStats(s, metrics.featureStats(b)), f[name .. ".pytorch_fid"][1], r, "fidFromStats")
  end)
end

T.test("inception score matches torch-fidelity (logits) and the OpenAI code (probabilities)", function()
  local logits, probs = f["is.logits"], f["is.probs"]
  local cases = {
    { "is.fidelity_noshuffle", logits, { logits = true } },
    { "is.fidelity_shuffle", logits, { logits = true, shuffleSeed = 2020 } },
    { "is.fidelity_splits3", logits, { logits = true, splits = 3 } },
    { "is.openai_splits10", probs, {} },
    { "is.openai_splits1", probs, { splits = 1 } },
  }
  for _, c in ipairs(cases) do
    local m, s = metrics.inceptionScore(c[2], c[3])
    rel(m, f[c[1]][1], tol.is, c[1] .. " mean")
    if f[c[1]][2] > 0 then rel(s, f[c[1]][2], 1e-8, c[1] .. " std") else T.check(s == 0, c[1] .. " std") end
  end
end)

T.test("KID matches torch-fidelity on the same RandomState subsets", function()
  local a, b = f["kid.a"], f["kid.b"]
  local base = { subsets = 20, subsetSize = 100 }
  local function with(extra)
    local o = {}
    for k, v in pairs(base) do o[k] = v end
    for k, v in pairs(extra or {}) do o[k] = v end
    return o
  end
  local cases = {
    { "kid.f64", a, b, with(), tol.kid },
    { "kid.f32", a:to("float32"), b:to("float32"), with(), tol.kidFloat32 },
    { "kid.deg2", a, b, with { degree = 2, gamma = 0.5, coef0 = 0.25 }, tol.kid },
    { "kid.seed7", a, b, with { seed = 7 }, tol.kid },
  }
  for _, c in ipairs(cases) do
    local m, s = metrics.kid(c[2], c[3], c[4])
    rel(m, f[c[1]][1], c[5], c[1] .. " mean")
    rel(s, f[c[1]][2], c[5] * 100, c[1] .. " std")
  end
end)

T.test("precision and recall match torch-fidelity exactly, ties included", function()
  for _, k in ipairs { 1, 3, 5 } do
    local p, r = metrics.precisionRecall(f["prc.real"], f["prc.gen"], { k = k })
    T.check(math.abs(p - f["prc.k" .. k][1]) <= tol.precisionRecall and math.abs(r - f["prc.k" .. k][2]) <= tol.precisionRecall,
      ("k=%d: precision %g recall %g vs %g %g"):format(k, p, r, f["prc.k" .. k][1], f["prc.k" .. k][2]))
  end
  local p, r = metrics.precisionRecall(f["prc.real_int"], f["prc.gen_int"])
  T.check(math.abs(p - f["prc.ties"][1]) <= tol.precisionRecall and math.abs(r - f["prc.ties"][2]) <= tol.precisionRecall, ("ties: %g %g vs %g %g"):format(p, r, f["prc.ties"][1], f["prc.ties"][2]))
end)

T.test("SWD matches PGGAN's procedure on the same RandomState stream", function()
  local function check(r, expected, what)
    T.check(#r.values == expected:size(1) - 1, what .. ": level count")
    for i, v in ipairs(r.values) do rel(v, expected[i], tol.swd, what .. " level " .. r.resolutions[i]) end
    rel(r.average, expected[expected:size(1)], tol.swd, what .. " average")
  end
  local r = metrics.swd(f["swd.a"], f["swd.b"])
  T.check(table.concat(r.resolutions, ",") == "32,16", "resolutions 32,16, got " .. table.concat(r.resolutions, ","))
  check(r, f["swd.default"], "default")
  check(metrics.swd(f["swd.a"], f["swd.b"], { seed = 5, nhoodSize = 5, nhoodsPerImage = 16, dirRepeats = 2, dirsPerRepeat = 32, minResolution = 8 }),
    f["swd.small"], "small")
  check(metrics.swd(f["swd.gray_a"], f["swd.gray_b"], { seed = 11 }), f["swd.gray"], "gray 64px")
end)

T.test("MS-SSIM matches PGGAN's procedure", function()
  local v = metrics.msssim(f["msssim.a"], f["msssim.b"])
  rel(v, f["msssim.value"][1], tol.msssim, "RGB pairs")
  rel(v, f["msssim.value_direct"][1], tol.msssimDirect, "RGB pairs (exact filtering)")
  local both = tensor.cat({ f["msssim.a"], f["msssim.b"] }, 1):indexSelect(1, { 1, 5, 2, 6, 3, 7, 4, 8 })
  rel(metrics.msssimDiversity(both), f["msssim.diversity"][1], tol.msssim, "diversity pairs")
  local g = metrics.msssim(f["msssim.gray_a"], f["msssim.gray_b"])
  rel(g, f["msssim.gray_value"][1], tol.msssim, "gray 48px")
  rel(g, f["msssim.gray_value_direct"][1], tol.msssimDirect, "gray 48px (exact filtering)")
end)

T.finish("fixtures_metrics")
