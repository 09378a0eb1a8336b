-- log.TensorBoard: event files written by luagan, read back here with a reader written from
-- the formats (TFRecord framing with masked CRC-32C; event.proto and summary.proto decoded by
-- hand), and training.Run's events across a killed run and its resume.
local T = require("testing")
local check, checkError = T.check, T.checkError
local training = require("training")
local options = require("options")
local tmp = os.tmpname()
os.remove(tmp)
paths.mkdir(tmp)

-- MARK: - A reader, independent of the writer

-- CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), table-driven.
local crcTable = {}
for n = 0, 255 do
  local c = n
  for _ = 1, 8 do c = (c & 1 ~= 0) and ((c >> 1) ~ 0x82F63B78) or (c >> 1) end
  crcTable[n] = c
end
local function crc32c(s)
  local c = 0xFFFFFFFF
  for i = 1, #s do c = crcTable[(c ~ s:byte(i)) & 0xFF] ~ (c >> 8) end
  return c ~ 0xFFFFFFFF
end
local function masked(s)
  local c = crc32c(s)
  return (((c >> 15) | (c << 17)) + 0xa282ead8) & 0xFFFFFFFF
end

-- The records of a TFRecord file: each is length (u64 LE), masked CRC of the length, data,
-- masked CRC of the data. Fails unless both CRCs match and the file ends after a whole record.
local function readRecords(path)
  local f = assert(io.open(path, "rb"))
  local bytes = f:read("a")
  f:close()
  local out, pos = {}, 1
  while pos <= #bytes do
    check(#bytes - pos + 1 >= 12, ("%s: a torn record header at byte %d"):format(path, pos - 1))
    local lengthBytes = bytes:sub(pos, pos + 7)
    local length, lengthCrc = string.unpack("<I8", lengthBytes), string.unpack("<I4", bytes, pos + 8)
    check(lengthCrc == masked(lengthBytes), ("record %d: the length's CRC differs"):format(#out + 1))
    check(#bytes - pos + 1 >= 16 + length, ("record %d: torn (%d bytes declared)"):format(#out + 1, length))
    local data = bytes:sub(pos + 12, pos + 11 + length)
    check(string.unpack("<I4", bytes, pos + 12 + length) == masked(data), ("record %d: the data's CRC differs"):format(#out + 1))
    out[#out + 1] = data
    pos = pos + 16 + length
  end
  return out
end

-- A protocol buffer's fields: { [field] = { value, ... } }, values as wire type gives them
-- (0: integer, 1: 8 raw bytes, 2: string, 5: 4 raw bytes).
local function fields(s)
  local out, pos = {}, 1
  local function varint()
    local v, shift = 0, 0
    repeat
      local b = s:byte(pos)
      check(b, "a varint runs past the message")
      pos = pos + 1
      v = v | ((b & 0x7F) << shift)
      shift = shift + 7
    until b < 0x80
    return v
  end
  while pos <= #s do
    local key = varint()
    local field, wire, value = key >> 3, key & 7, nil
    if wire == 0 then value = varint()
    elseif wire == 1 then value = s:sub(pos, pos + 7); pos = pos + 8
    elseif wire == 2 then local n = varint(); value = s:sub(pos, pos + n - 1); pos = pos + n
    elseif wire == 5 then value = s:sub(pos, pos + 3); pos = pos + 4
    else error("unexpected wire type " .. wire) end
    out[field] = out[field] or {}
    table.insert(out[field], value)
  end
  check(pos == #s + 1, "a field runs past the message")
  return out
end

-- event.proto's Event: wall_time 1, step 2, file_version 3, summary 5, session_log 7; each
-- Summary.Value: tag 1, simple_value 2, image 4 (height 1, width 2, colorspace 3, PNG 4).
local function decodeEvent(data)
  local f = fields(data)
  local e = { wallTime = string.unpack("<d", f[1][1]), step = f[2] and f[2][1] or 0, fileVersion = f[3] and f[3][1] }
  if f[5] then
    e.values = {}
    for _, v in ipairs(fields(f[5][1])[1] or {}) do
      local vf = fields(v)
      local value = { tag = vf[1][1] }
      if vf[2] then value.scalar = string.unpack("<f", vf[2][1]) end
      if vf[4] then
        local img = fields(vf[4][1])
        value.image = { height = img[1][1], width = img[2][1], colorspace = img[3][1], png = img[4][1] }
      end
      e.values[#e.values + 1] = value
    end
  end
  if f[7] then e.sessionStatus = fields(f[7][1])[1][1] end
  check(not f[6], "field 6 is the deprecated log_message, never written")
  return e
end

local function eventsOf(path)
  local out = {}
  for _, r in ipairs(readRecords(path)) do out[#out + 1] = decodeEvent(r) end
  return out
end

-- The event files of a folder in the order TensorBoard reads them (by name).
local function eventFiles(dir)
  local out = {}
  for _, name in ipairs(paths.list(dir)) do
    if name:find("tfevents", 1, true) then out[#out + 1] = dir .. "/" .. name end
  end
  table.sort(out)
  return out
end

-- MARK: - The writer

T.test("CRC-32C: the reader's matches the standard check value", function()
  check(crc32c("123456789") == 0xE3069283, ("crc32c('123456789') = 0x%08X"):format(crc32c("123456789")))
  check(crc32c("") == 0)
end)

T.test("a new file: brain.Event:2 first, then scalars, every record framed with both CRCs, readable before close", function()
  local dir = tmp .. "/scalars/tb"
  local before = os.time()
  local tb = log.TensorBoard(dir)
  local path = tb:path()
  local stamp, host = path:match("^.*/events%.out%.tfevents%.(%d+)%.([^/]+)$")
  check(path:sub(1, #dir + 1) == dir .. "/" and stamp and host, path)
  check(tonumber(stamp) >= before - 1 and tonumber(stamp) <= os.time() + 1, "the name carries the unix time: " .. path)
  tb:scalars(1, { lossD = 1.5, lossG = tensor.new(0.25), ["sv_G/fc.weight.sv0"] = 3 })
  tb:scalars(2, { lossD = 0.1 })
  tb:scalars(3, {})      -- nothing to say: nothing written
  local events = eventsOf(path)   -- before close: each call's records are in the file already
  check(#events == 3, #events .. " events")
  check(events[1].fileVersion == "brain.Event:2" and events[1].step == 0 and not events[1].values)
  check(math.abs(events[1].wallTime - os.time()) < 5, "wall_time is unix seconds")
  local e = events[2]
  check(e.step == 1 and #e.values == 3, "one event holds the step's scalars")
  local tags = {}
  for _, v in ipairs(e.values) do tags[#tags + 1] = v.tag .. "=" .. v.scalar end
  check(table.concat(tags, " ") == "lossD=1.5 lossG=0.25 sv_G/fc.weight.sv0=3.0", table.concat(tags, " "))
  check(events[3].step == 2 and math.abs(events[3].values[1].scalar - 0.1) < 1e-7, "float32 simple values")
  check(events[3].wallTime >= events[2].wallTime)
  tb:close()
  tb:close()                        -- again: nothing
  check(tostring(tb):find("closed", 1, true), tostring(tb))
  checkError("is closed", function() tb:scalars(4, { x = 1 }) end)
end)

T.test("images: PNG bytes that decode to the tensor, with a range; gray and RGBA colorspaces", function()
  local tb = log.TensorBoard(tmp .. "/images/tb")
  local x = tensor.rand(3, 5, 7)
  tb:image(3, "samples", x)
  tb:image(4, "samples", x * 2 - 1, { range = { -1, 1 } })
  tb:image(5, "gray", tensor.rand(6, 4))
  tb:image(6, "rgba", tensor.rand(4, 2, 3))
  local events = eventsOf(tb:path())
  tb:close()
  check(#events == 5)
  for k, e in ipairs { events[2], events[3] } do
    local v = e.values[1]
    check(e.step == k + 2 and v.tag == "samples" and v.image, "an image value")
    check(v.image.height == 5 and v.image.width == 7 and v.image.colorspace == 3, "height, width, colorspace")
    check(v.image.png:sub(1, 8) == "\137PNG\r\n\26\n", "the bytes of a PNG file")
    local file = ("%s/images/back%d.png"):format(tmp, k)
    local f = assert(io.open(file, "wb")); f:write(v.image.png); f:close()
    local back = image.load(file)
    check(T.maxDiff(back, x) <= 0.5 / 255 + 1e-6, "8-bit quantization of x: " .. T.maxDiff(back, x))
  end
  local gray, rgba = events[4].values[1].image, events[5].values[1].image
  check(gray.colorspace == 1 and gray.height == 6 and gray.width == 4, "an (H, W) image is gray")
  check(rgba.colorspace == 4 and rgba.height == 2 and rgba.width == 3)
end)

T.test("the resume marker is SessionLog START at the step given; a second writer gets its own file", function()
  local dir = tmp .. "/resume/tb"
  local a = log.TensorBoard(dir)
  a:scalars(5, { x = 1 })
  local b = log.TensorBoard(dir)      -- the same second, most likely: a suffix keeps them apart
  check(a:path() ~= b:path(), "two writers, two files")
  b:resume(4)
  b:scalars(4, { x = 2 })
  local events = eventsOf(b:path())
  check(#events == 3 and events[1].fileVersion == "brain.Event:2", "each file starts with its version")
  check(events[2].step == 4 and events[2].sessionStatus == 1 and not events[2].values, "START = 1 at step 4")
  local files = eventFiles(dir)
  check(#files == 2 and files[1] == a:path() and files[2] == b:path(), "the later writer's file sorts after: " .. table.concat(files, " "))
  a:close(); b:close()
end)

T.test("misuse: clear errors naming the function and argument; the file keeps whole records", function()
  checkError("bad argument #1 to 'TensorBoard' (string expected, got no value)", function() return log.TensorBoard() end)
  checkError("bad argument #1 to 'TensorBoard' (folder name expected, got an empty string)", function() return log.TensorBoard("") end)
  checkError("log.TensorBoard: cannot create folder '/proc/luagan-nope/tb'", function() return log.TensorBoard("/proc/luagan-nope/tb") end)
  local f = assert(io.open(tmp .. "/afile", "w")); f:close()
  checkError("exists and is not a folder", function() return log.TensorBoard(tmp .. "/afile") end)
  local tb = log.TensorBoard(tmp .. "/misuse/tb")
  local x = tensor.rand(1, 2, 2)
  checkError("bad argument #1 to 'scalars' (step must be >= 0, got -1)", function() tb:scalars(-1, { x = 1 }) end)
  checkError("bad argument #1 to 'scalars' (number has no integer representation", function() tb:scalars(1.5, { x = 1 }) end)
  checkError("bad argument #1 to 'scalars' (integer expected, got string)", function() tb:scalars("1", { x = 1 }) end)
  checkError("bad argument #2 to 'scalars' (table of name = number expected, got number)", function() tb:scalars(1, 5) end)
  checkError("bad argument #2 to 'scalars' (scalar 'x' is table, expected a number or a one-element tensor)",
    function() tb:scalars(1, { x = {} }) end)
  checkError("scalar 'x' is a tensor of shape {2}", function() tb:scalars(1, { x = tensor.zeros(2) }) end)
  checkError("scalar 'x' is boolean", function() tb:scalars(1, { x = true }) end)
  checkError("scalar names must be non-empty strings, got number", function() tb:scalars(1, { 5 }) end)
  checkError("scalar names must be non-empty strings, got an empty string", function() tb:scalars(1, { [""] = 5 }) end)
  checkError("bad argument #2 to 'image' (string expected, got nil)", function() tb:image(1, nil, x) end)
  checkError("bad argument #2 to 'image' (tag expected, got an empty string)", function() tb:image(1, "", x) end)
  checkError("bad argument #3 to 'image' (luagan.Tensor expected, got string)", function() tb:image(1, "t", "x") end)
  checkError("bad argument #3 to 'image' ((C, H, W) image with C in 1..4 or (H, W) image expected, got shape {5,2,2})",
    function() tb:image(1, "t", tensor.zeros(5, 2, 2)) end)
  checkError("got shape {1,0,2}", function() tb:image(1, "t", tensor.zeros(1, 0, 2)) end)
  checkError("got shape {2}", function() tb:image(1, "t", tensor.zeros(2)) end)
  checkError("option 'range' {1, 1} is empty", function() tb:image(1, "t", x, { range = { 1, 1 } }) end)
  checkError("unknown option 'rnage'", function() tb:image(1, "t", x, { rnage = { 0, 1 } }) end)
  checkError("bad argument #1 to 'resume' (step must be >= 0, got -3)", function() tb:resume(-3) end)
  checkError("bad argument #1 to 'scalars' (luagan.TensorBoard expected, got number)", function() tb.scalars(5, 1, {}) end)
  checkError("calling 'close' on bad self (luagan.TensorBoard expected, got table)",
    function() local t = { close = tb.close }; t:close() end)
  tb:scalars(7, { ok = 1 })
  local events = eventsOf(tb:path())   -- only the first event and the good call: failed calls wrote nothing
  check(#events == 2 and events[2].step == 7 and events[2].values[1].tag == "ok", #events .. " events")
  tb:close()
end)

-- MARK: - training.Run

-- A run of training.Run with made-up losses (lossG = the session's number, so each point
-- says which session drew it), a sheet and one monitored weight; nothing is trained.
local function session(dir, number, args, lastIter, saved)
  local spec = training.commonSpec { iters = 20, out = dir, sampleEvery = 5, saveEvery = 5, evalEvery = 0, svEvery = 5,
    logEvery = 1, keep = 10 }
  local opt = options.parse(args, spec)
  local model = nn.Linear(4, 3)
  local run = training.Run(opt, {
    objects = { net = model }, info = { model = "tensorboard-test" }, monitor = { G = model },
    sheet = function() return tensor.rand(4, 1, 6, 6) * 2 - 1, 2 end,
  }, saved)
  while run:next() do
    run:afterStep({ lossD = run.iter / 100, lossG = number })
    if run.iter == lastIter then return run end     -- killed: no finish, no last checkpoint
  end
  run:finish()
  return run
end

-- What TensorBoard shows of a folder: its files in name order, each event in turn; the first
-- START marker marks the run's start, each later one drops every point read so far whose step
-- is >= the marker's (plugin_event_accumulator's _CheckForRestartAndMaybePurge, the stricter
-- of TensorBoard's readers). Returns { [tag] = { {step, scalar or image}, ... } }.
local function shown(dir)
  local series, started = {}, false
  for _, path in ipairs(eventFiles(dir)) do
    for _, e in ipairs(eventsOf(path)) do
      if e.sessionStatus == 1 and not started then
        started = true
      elseif e.sessionStatus == 1 then
        for tag, points in pairs(series) do
          local kept = {}
          for _, p in ipairs(points) do if p.step < e.step then kept[#kept + 1] = p end end
          series[tag] = kept
        end
      end
      for _, v in ipairs(e.values or {}) do
        series[v.tag] = series[v.tag] or {}
        table.insert(series[v.tag], { step = e.step, value = v.scalar, image = v.image })
      end
    end
  end
  return series
end

T.test("training.Run: scalars, sheets and singular values; a resumed run's marker hides the killed run's tail", function()
  local dir = tmp .. "/run"
  local killed = session(dir, 1, { "--quiet" }, 13)
  killed.tb:close()
  local stale = 0
  for _, e in ipairs(eventsOf(eventFiles(dir .. "/tb")[1])) do
    if e.step > 10 and e.values and e.values[1].tag == "lossD" then stale = stale + 1 end
  end
  check(stale == 3, "the killed session drew steps 11 to 13 after its last checkpoint (10): " .. stale)
  local saved = ckpt.load(dir .. "/ckpt")
  check(saved.iter == 10)
  session(dir, 2, { "--quiet", "--resume=" .. dir }, nil, saved)
  local files = eventFiles(dir .. "/tb")
  check(#files == 2, #files .. " event files")
  local first, marker = eventsOf(files[1])[2], eventsOf(files[2])[2]
  check(first.sessionStatus == 1 and first.step == 1, "the first session starts with START at 1, got step " .. first.step)
  check(marker.sessionStatus == 1 and marker.step == 11, "the resumed session starts with START at 11, got step " .. marker.step)
  local s = shown(dir .. "/tb")
  check(#s.lossD == 20 and #s.lossG == 20, ("one point per step: %d lossD, %d lossG"):format(#s.lossD, #s.lossG))
  for i, p in ipairs(s.lossG) do
    check(p.step == i and p.value == (i <= 10 and 1 or 2),
      ("step %d: lossG %s (session 1 before the resume, 2 after)"):format(p.step, p.value))
    check(math.abs(s.lossD[i].value - i / 100) < 1e-6)
  end
  local steps = {}
  for _, p in ipairs(s.samples) do
    steps[#steps + 1] = p.step
    check(p.image.height == 18 and p.image.width == 18 and p.image.colorspace == 1, "a 2x2 sheet of 6x6 gray images, padding 2")
  end
  check(table.concat(steps, ",") == "5,10,15,20", "sheets at " .. table.concat(steps, ","))
  check(s["sv_G/weight.sv0"] and #s["sv_G/weight.sv0"] == 4 and s["sv_G/weight.sv2"], "singular values every 5 iterations")
  -- the last sheet on disk is the last image event's PNG, byte for byte
  local f = assert(io.open(dir .. "/samples/iter-0000020.png", "rb"))
  check(f:read("a") == s.samples[4].image.png, "the sheet's PNG and the event's are the same bytes")
  f:close()
end)

T.test("training.Run with --no-tensorboard writes no events", function()
  local dir = tmp .. "/off"
  session(dir, 1, { "--quiet", "--no-tensorboard", "--iters=3" })
  check(not paths.exists(dir .. "/tb"), "no tb folder")
end)

paths.remove(tmp)
T.finish("tensorboard")
