-- wrk script for the spool benchmark: every request POSTs new candles (a
-- unique minute per thread, request and item) of symbol BENCH_SYMBOL: one
-- candle object to /ingest when BENCH_BATCH is 1, else an array of
-- BENCH_BATCH candles to /ingest_batch.
local counter = 0
local threads = {}
function setup(thread)
  thread:set("thread_id", #threads + 1)
  threads[#threads + 1] = thread
end
local batch, symbol
function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-API-Key"] = os.getenv("BENCH_KEY")
  batch = tonumber(os.getenv("BENCH_BATCH") or "1")
  symbol = os.getenv("BENCH_SYMBOL") or "SPB"
end
local function candle(t)
  return string.format('{"symbol":"%s","timeframe":"M1","ts":%d,"open":1.1,"high":1.2,"low":1.0,"close":1.15,"volume":10,"spread":2}',
    symbol, t)
end
function request()
  counter = counter + 1
  local base = 1577836800 + (counter * 16 + thread_id) * batch * 60 -- threads interleave, never collide
  if batch == 1 then return wrk.format(nil, "/ingest", nil, candle(base)) end
  local items = {}
  for i = 1, batch do items[i] = candle(base + (i - 1) * 60) end
  return wrk.format(nil, "/ingest_batch", nil, "[" .. table.concat(items, ",") .. "]")
end
