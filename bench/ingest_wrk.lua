-- wrk script for the single-candle benchmark: every request POSTs one new
-- candle (a unique minute per thread and request) to /ingest.
local counter = 0
local threads = {}
function setup(thread)
  thread:set("thread_id", #threads + 1)
  threads[#threads + 1] = thread
end
function init(args)
  wrk.method = "POST"
  wrk.headers["Content-Type"] = "application/json"
  wrk.headers["X-API-Key"] = os.getenv("BENCH_KEY")
end
function request()
  counter = counter + 1
  local t = 1577836800 + (counter * 2 + thread_id) * 60 -- threads interleave, never collide
  local body = string.format('{"symbol":"WRK","timeframe":"M1","ts":%d,"open":1.1,"high":1.2,"low":1.0,"close":1.15,"volume":10,"spread":2}', t)
  return wrk.format(nil, "/ingest", nil, body)
end
