-- Compares the state files of one process (ONE-rank0) and K ranks (TWO-rank<r>): every tensor
-- within RTOL of its largest entry (max |a - b| <= RTOL max |a|), and the ranks' replicas
-- bit-identical. A tensor whose entries are all below 1e-20 is rounding noise (Adam's second
-- moment of a gradient that is zero up to rounding, e.g. a conv bias feeding a BatchNorm) and is
-- held to 1e-24 absolute instead. Prints the worst difference; exits 1 on failure.
--   luagan scripts/dev/tests/dist/compare.lua ONE TWO K RTOL
local one, two, k, rtol = arg[1], arg[2], tonumber(arg[3]), tonumber(arg[4])
local ref = tensor.load(one .. "-rank0.safetensors")
local ranks = {}
for r = 0, k - 1 do ranks[r] = tensor.load(("%s-rank%d.safetensors"):format(two, r)) end
local worst, worstName, count, bad = 0, "", 0, {}
for name, a in pairs(ref) do
  local b = ranks[0][name]
  if not b then bad[#bad + 1] = "missing " .. name
  else
    count = count + 1
    -- relative to the tensor's scale, so entries near zero are judged by their tensor's size
    local scale = a:abs():max():item()
    local diff = (a - b):abs():max():item()
    local d = scale < 1e-20 and (diff <= 1e-24 and 0 or math.huge) or diff / scale
    if d > worst then worst, worstName = d, name end
    if d > rtol then bad[#bad + 1] = ("%s: %.3g"):format(name, d) end
    for r = 1, k - 1 do
      if (ranks[r][name] - b):abs():max():item() ~= 0 then bad[#bad + 1] = ("rank %d differs from rank 0 at %s"):format(r, name) end
    end
  end
end
print(("%d tensors; largest difference %.3g of the tensor's largest entry (%s); ranks bit-identical: %s")
  :format(count, worst, worstName, #bad == 0 and "yes" or "see below"))
if #bad > 0 or count == 0 then
  table.sort(bad)
  print("FAILED: " .. table.concat(bad, "; "))
  os.exit(1)
end
