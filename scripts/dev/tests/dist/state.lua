-- Saves every tensor of the named modules (prefix -> module) and the Adam moments of the named
-- optimizers to <out>-rank<r>.safetensors, for compare.lua (shared by biggan_steps and pggan_steps).
return function(out, modules, optimizers)
  local state = {}
  for prefix, m in pairs(modules) do
    for name, t in pairs(m:stateDict()) do state[prefix .. "." .. name] = t end
  end
  for prefix, o in pairs(optimizers) do
    for i, e in pairs(o:stateDict().state) do
      for k, t in pairs(e) do if tensor.isTensor(t) then state[("%s.%d.%s"):format(prefix, i, k)] = t end end
    end
  end
  tensor.save(("%s-rank%d.safetensors"):format(out, dist.rank()), state)
  return state
end
