-- side_by_side.lua: luagan's GAN workloads and PyTorch's (../shared/bench/torch_reference.py),
-- run back to back, alternating (A B A B), on the same machine; prints each run, the ratio of
-- medians luagan/PyTorch, GFLOP/s against the sgemm rate of the same make bench, and peak RSS.
--
--   luagan scripts/dev/bench/side_by_side.lua [--workloads=biggan32,pggan32,demo32,deep256] [--rounds=2]
--                                         [--steps=5] [--sgemm=GFLOPS] [--python=PATH] [--compiled]
-- A workload written name@B runs at batch B on both sides (the scaling table's "2x the batch").
-- With --compiled, the scaling workloads (biggan64/128, pggan64/128) at their own batch also run PyTorch under
-- torch.compile in every round (A B C), its compile time reported apart.
-- PyTorch is found at $TORCH_PYTHON, ../.venv-torch/bin/python or .venv-torch/bin/python; the
-- reference script at $SHARED_BENCH/torch_reference.py or ../shared/bench. Without them,
-- luagan's side runs alone.
local options = require("options")
local opt = options.cli(arg, {
  { "workloads", "biggan32,pggan32,demo32,deep256", "comma-separated workloads" },
  { "rounds", 2, "A B rounds per workload" },
  { "steps", 5, "timed iterations per run" },
  { "threads", 2, "threads on both sides" },
  { "sgemm", 0, "sgemm GFLOP/s of this run (default: runs/bench/kernels.json from kernels.lua)" },
  { "python", "", "the Python with torch (default: searched)" },
  { "compiled", false, "also time torch.compile (inductor) on the scaling workloads" },
}, "luagan against PyTorch, back to back.")

local root = (debug.getinfo(1, "S").source:match("^@(.*)/scripts/dev/bench/") or ".")
local function exists(p) return (paths.exists(p)) end
local python = opt.python ~= "" and opt.python or os.getenv("TORCH_PYTHON")
if not python then
  for _, p in ipairs { root .. "/../.venv-torch/bin/python", root .. "/.venv-torch/bin/python" } do
    if exists(p) then python = p; break end
  end
end
local shared = os.getenv("SHARED_BENCH") or (root .. "/../shared/bench")
local reference = shared .. "/torch_reference.py"
local withTorch = python and exists(reference)

-- Runs a command (fixed strings built here, never user input) and returns its JSON line, or
-- nil and the last line it printed (stderr included) when it gave none.
local function tryJSON(cmd)
  local p = assert(io.popen(cmd .. " 2>&1"))
  local out = p:read("a")
  p:close()
  local line = out:match("(%b{})%s*$") or out:match("(%b{})")
  if not line then return nil, (out:match("([^\n]+)\n?$") or "no output") end
  return json.decode(line, cmd)
end

local function runJSON(cmd)
  local r, why = tryJSON(cmd)
  if not r then error("no JSON from: " .. cmd .. "\n" .. why) end
  return r
end

local function median(v)
  table.sort(v)
  local n = #v
  return n % 2 == 1 and v[(n + 1) // 2] or (v[n // 2] + v[n // 2 + 1]) / 2
end

if opt.sgemm == 0 and paths.exists("runs/bench/kernels.json") then
  opt.sgemm = json.decode(paths.readText("runs/bench/kernels.json")).sgemm or 0
end
local c = tensor.config()
print(("machine: %s, %s; BLAS %s (%s); %d threads"):format(c.cpu, c.isa, c.blasCore, c.blasChosenBy, opt.threads))
if not withTorch then print("PyTorch not found (set TORCH_PYTHON, or make ../.venv-torch): luagan's side only") end

local exe = root .. "/.build/release/luagan"
-- workloads whose PyTorch side is ours, not ../shared/bench's
local own = { deep128 = "biggan_deep_forward.py", deep256 = "biggan_deep_forward.py", deep512 = "biggan_deep_forward.py",
              biggan64 = "scaling.py", biggan128 = "scaling.py", pggan64 = "scaling.py", pggan128 = "scaling.py" }
local rows = {}
for spec in opt.workloads:gmatch("[^,]+") do
  local w, batch = spec:match("^([%w_]+)@(%d+)$")
  w = w or spec
  local lgBatch, ptBatch = batch and (" --batch=" .. batch) or "", batch and (" --batch " .. batch) or ""
  local compiled = opt.compiled and own[w] == "scaling.py" and not batch   -- compiled at the base batch only
  local lg, pt, pc, lgRSS, ptRSS, pcRSS, gflops, compileS = {}, {}, {}, {}, {}, {}, {}, {}
  for r = 1, opt.rounds do
    local a = runJSON(("%q %q %s --steps=%d --threads=%d%s"):format(exe, root .. "/scripts/dev/bench/gan_workloads.lua", w, opt.steps,
                                                                     opt.threads, lgBatch))
    lg[r], lgRSS[r], gflops[r] = a.ms_per_iter, a.peak_rss_mb, a.gflops
    io.write(("%-13s round %d  luagan %8.1f ms  (%.0f MB, %.1f GFLOP/s)"):format(spec, r, a.ms_per_iter, a.peak_rss_mb, a.gflops))
    if withTorch then
      local script = own[w] and (root .. "/scripts/dev/bench/torch/" .. own[w]) or reference
      -- a PyTorch side that cannot run here (e.g. pytorch-pretrained-biggan missing) skips that
      -- workload's comparison, not the rest of the benchmark
      local cmd = ("%q %q %s --steps %d --threads %d%s"):format(python, script, w, opt.steps, opt.threads, ptBatch)
      local b, why = tryJSON(cmd)
      if b then
        pt[#pt + 1], ptRSS[#ptRSS + 1] = b.ms_per_iter, b.peak_rss_mb
        io.write(("   PyTorch %8.1f ms  (%.0f MB)   ratio %.2f"):format(b.ms_per_iter, b.peak_rss_mb, a.ms_per_iter / b.ms_per_iter))
      else
        io.write("   PyTorch side failed: " .. why)
      end
      if compiled then
        local cb, cwhy = tryJSON(cmd .. " --compile")
        if cb then
          pc[#pc + 1], pcRSS[#pcRSS + 1], compileS[#compileS + 1] = cb.ms_per_iter, cb.peak_rss_mb, cb.warmup_s
          io.write(("   compiled %8.1f ms  (%.0f MB, compile %.0f s)   ratio %.2f"):format(cb.ms_per_iter, cb.peak_rss_mb, cb.warmup_s,
                                                                                     a.ms_per_iter / cb.ms_per_iter))
        else
          io.write("   compiled side failed: " .. cwhy)
        end
      end
    end
    io.write("\n")
    io.stdout:flush()
  end
  local function maxOf(v) return #v > 0 and math.max(table.unpack(v)) or nil end
  rows[#rows + 1] = { w = spec, lg = median(lg), pt = #pt > 0 and median(pt) or nil, pc = #pc > 0 and median(pc) or nil,
                      lgRSS = maxOf(lgRSS), ptRSS = maxOf(ptRSS), pcRSS = maxOf(pcRSS), compileS = #compileS > 0 and median(compileS) or nil,
                      gflops = median(gflops) }
end

local function fmt(v, f) return v and (f or "%.1f"):format(v) or "-" end
print()
print(("%-13s %11s %11s %7s %12s %7s %14s %10s %10s %11s %10s"):format("workload", "luagan ms", "PyTorch ms", "ratio", "compiled ms",
  "ratio", "GFLOP/s", "luagan MB", "PyTorch MB", "compiled MB", "MB ratio"))
for _, r in ipairs(rows) do
  local share = opt.sgemm > 0 and (" (%3.0f%%)"):format(100 * r.gflops / opt.sgemm) or ""
  print(("%-13s %11.1f %11s %7s %12s %7s %8.1f%s %10.0f %10s %11s %10s"):format(r.w, r.lg, fmt(r.pt),
    fmt(r.pt and r.lg / r.pt, "%.2f"), fmt(r.pc), fmt(r.pc and r.lg / r.pc, "%.2f"), r.gflops, share, r.lgRSS,
    fmt(r.ptRSS, "%.0f"), fmt(r.pcRSS, "%.0f"), fmt(r.ptRSS and r.lgRSS / math.min(r.ptRSS, r.pcRSS or math.huge), "%.2f")))
end
for _, r in ipairs(rows) do
  if r.compileS then print(("%s: torch.compile took %.0f s before its timed iterations (median of the rounds)"):format(r.w, r.compileS)) end
end
if opt.sgemm > 0 then print(("(GFLOP/s: matrix products and convolutions at the direct count; %% of this run's sgemm, %.1f GFLOP/s)"):format(opt.sgemm)) end
