-- Generates the ingest benchmark's data (run with `tickforge run`):
--   tickforge run bench/ingest_gen.lua DIR CANDLES BATCH TICKS TICK_BATCH
-- DIR/candles.csv and DIR/ticks.csv for psql \copy, and the same rows as
-- JSON bodies DIR/c_N.json (arrays of BATCH candles) and DIR/t_N.json
-- ({"ticks": [...]} of TICK_BATCH ticks), plus curl configs that POST them.
-- Never talks to a server or a database.
local dir, ncandles, batch, nticks, tbatch = arg[1], tonumber(arg[2]), tonumber(arg[3]),
  tonumber(arg[4]), tonumber(arg[5])
assert(dir and ncandles and batch and nticks and tbatch, "usage: ingest_gen.lua DIR CANDLES BATCH TICKS TICK_BATCH")

local SYMBOLS = { "EURUSD", "GBPUSD", "USDJPY", "AUDUSD", "USDCAD", "USDCHF", "NZDUSD", "XAUUSD", "EURJPY", "GBPJPY" }
local T0 = 1577836800 -- 2020-01-01

local csv = assert(io.open(dir .. "/candles.csv", "w"))
local per_symbol = ncandles // #SYMBOLS
local n, file_no, body = 0, 0, {}
local function flush_candles()
  if #body == 0 then return end
  file_no = file_no + 1
  local f = assert(io.open(string.format("%s/c_%d.json", dir, file_no), "w"))
  f:write("[", table.concat(body, ","), "]")
  f:close()
  body = {}
end
-- interleave symbols the way several EAs would send them
for i = 0, per_symbol - 1 do
  for s = 1, #SYMBOLS do
    local t = T0 + i * 60
    local ts = os.date("!%Y-%m-%dT%H:%M:%SZ", t)
    local o = 1 + s / 10 + (i % 1000) / 100000
    local h, l, c = o + 0.0004, o - 0.0003, o + 0.0001
    local v = 100 + i % 50
    csv:write(string.format("%s\tM1\t%s\t%.5f\t%.5f\t%.5f\t%.5f\t%d\t2\tea\n", SYMBOLS[s], ts, o, h, l, c, v))
    body[#body + 1] = string.format('{"symbol":"%s","timeframe":"M1","ts":"%s","open":%.5f,"high":%.5f,"low":%.5f,"close":%.5f,"volume":%d,"spread":2}',
      SYMBOLS[s], ts, o, h, l, c, v)
    n = n + 1
    if #body == batch then flush_candles() end
  end
end
flush_candles()
csv:close()
local ncfiles = file_no

csv = assert(io.open(dir .. "/ticks.csv", "w"))
file_no = 0
local per_tick_symbol = nticks // #SYMBOLS
local TMS0 = 1760929200000
for i = 0, per_tick_symbol - 1 do
  for s = 1, #SYMBOLS do
    local msc = TMS0 + i * 250 + s
    local ts = os.date("!%Y-%m-%dT%H:%M:%S", msc // 1000) .. string.format(".%03dZ", msc % 1000)
    local bid = 1 + s / 10 + (i % 1000) / 100000
    local ask = bid + 0.0002
    csv:write(string.format("%s\t%s\t%.5f\t%.5f\t0\t1\t6\t%d\n", SYMBOLS[s], ts, bid, ask, msc))
    body[#body + 1] = string.format('{"symbol":"%s","ts":"%s","bid":%.5f,"ask":%.5f,"last":0,"volume":1,"flags":6,"ts_msc":%d}',
      SYMBOLS[s], ts, bid, ask, msc)
    if #body == tbatch then
      file_no = file_no + 1
      local f = assert(io.open(string.format("%s/t_%d.json", dir, file_no), "w"))
      f:write('{"ticks":[', table.concat(body, ","), "]}")
      f:close()
      body = {}
    end
  end
end
csv:close()
print(string.format("%d candles in %d files, %d ticks in %d files", n, ncfiles, per_tick_symbol * #SYMBOLS, file_no))
