-- Flat memory without collectgarbage(): the collector is paced by tensor bytes (house
-- decision 3), so a loop that drops 4 MiB tensors on the floor stays flat.
local T = require("testing")

T.test("3000 iterations of 4 MiB temporaries stay under 300 MiB resident", function()
  local peakRss, peakTensors = 0, 0
  local a = tensor.ones(1024, 1024)  -- 4 MiB of float32
  local t0 = tensor.clock()
  for i = 1, 3000 do
    local b = a * 2           -- four fresh 4 MiB tensors per iteration, all garbage at once
    local c = b + 1
    local d = c:sqrt()
    local e = d - b
    if i % 50 == 0 then
      local m = tensor.memory()
      peakRss = math.max(peakRss, m.rss)
      peakTensors = math.max(peakTensors, m.tensorBytes)
    end
    assert(e)
  end
  local mib = 1024 * 1024
  print(("memory: 3000 iterations x 4 x 4 MiB in %.1f s; peak resident %.1f MiB, peak live tensors %.1f MiB")
    :format(tensor.clock() - t0, peakRss / mib, peakTensors / mib))
  T.check(peakTensors <= 64 * mib, ("live tensors reached %.1f MiB"):format(peakTensors / mib))
  if tensor.config().addressSanitizer then   -- its quarantine keeps freed blocks resident
    print("memory: resident size not bounded under AddressSanitizer")
  else
    T.check(peakRss < 300 * mib, ("resident size reached %.1f MiB"):format(peakRss / mib))
  end
end)

T.finish("memory")
