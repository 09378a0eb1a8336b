-- side_by_side.lua: luagan's GAN workloads and PyTorch's (../shared/bench/torch_reference.py),
-- run back to back, alternating (A B A B), on the same machine; prints each run, the ratio of
-- medians luagan/PyTorch, GFLOP/s against the sgemm rate of the same make bench, and peak RSS.
--
--   luagan scripts/dev/bench/side_by_side.lua [--workloads=biggan32,pggan32,demo32,deep256] [--rounds=2]
--                                         [--steps=5] [--sgemm=GFLOPS] [--python=PATH]
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
local own = { deep256 = "biggan_deep_forward.py" }
local rows = {}
for w in opt.workloads:gmatch("[^,]+") do
  local lg, pt, lgRSS, ptRSS, gflops = {}, {}, {}, {}, {}
  for r = 1, opt.rounds do
    local a = runJSON(("%q %q %s --steps=%d --threads=%d"):format(exe, root .. "/scripts/dev/bench/gan_workloads.lua", w, opt.steps, opt.threads))
    lg[r], lgRSS[r], gflops[r] = a.ms_per_iter, a.peak_rss_mb, a.gflops
    io.write(("%-9s round %d  luagan %8.1f ms  (%.0f MB, %.1f GFLOP/s)"):format(w, r, a.ms_per_iter, a.peak_rss_mb, a.gflops))
    if withTorch then
      local script = own[w] and (root .. "/scripts/dev/bench/torch/" .. own[w]) or reference
      -- a PyTorch side that cannot run here (e.g. pytorch-pretrained-biggan missing) skips that
      -- workload's comparison, not the rest of the benchmark
      local b, why = tryJSON(("%q %q %s --steps %d --threads %d"):format(python, script, w, opt.steps, opt.threads))
      if b then
        pt[r], ptRSS[r] = b.ms_per_iter, b.peak_rss_mb
        io.write(("   PyTorch %8.1f ms  (%.0f MB)   ratio %.2f"):format(b.ms_per_iter, b.peak_rss_mb, a.ms_per_iter / b.ms_per_iter))
      else
        io.write("   PyTorch side failed: " .. why)
      end
    end
    io.write("\n")
    io.stdout:flush()
  end
  rows[#rows + 1] = { w = w, lg = median(lg), pt = #pt > 0 and median(pt) or nil, lgRSS = math.max(table.unpack(lgRSS)),
                      ptRSS = #ptRSS > 0 and math.max(table.unpack(ptRSS)) or nil, gflops = median(gflops) }
end

print()
print(("%-9s %12s %12s %10s %14s %12s %12s"):format("workload", "luagan ms", "PyTorch ms", "ratio", "GFLOP/s", "luagan MB", "PyTorch MB"))
for _, r in ipairs(rows) do
  local share = opt.sgemm > 0 and (" (%3.0f%%)"):format(100 * r.gflops / opt.sgemm) or ""
  print(("%-9s %12.1f %12s %10s %8.1f%s %12.0f %12s"):format(r.w, r.lg, r.pt and ("%.1f"):format(r.pt) or "-",
    r.pt and ("%.2f"):format(r.lg / r.pt) or "-", r.gflops, share, r.lgRSS, r.ptRSS and ("%.0f"):format(r.ptRSS) or "-"))
end
if opt.sgemm > 0 then print(("(GFLOP/s: matrix products and convolutions at the direct count; %% of this run's sgemm, %.1f GFLOP/s)"):format(opt.sgemm)) end
