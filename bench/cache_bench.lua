-- tf.cache hits against the tf.db queries they save, in one `tickforge run`
-- process on the real PostgreSQL of DATABASE_URL (run by bench/cache_bench.sh):
-- one candle row by primary key, and the last 500 M1 bars of a symbol. Each
-- case runs N times uncached (tf.db.query) and N times as get_or_load hits
-- (the first call loads). Prints a markdown table with the ratio.
--   tickforge run bench/cache_bench.lua [N]
local socket = require("socket")
local N = tonumber(arg and arg[1]) or 5000
local SYM = "BENCHCACHE"

tf.db.exec("DELETE FROM market_data WHERE symbol = $1", SYM)
tf.db.exec([[INSERT INTO market_data (symbol, timeframe, ts, open, high, low, close, volume, spread, source)
  SELECT $1, 'M1', timestamptz '2025-10-20 00:00:00+00' + make_interval(mins => g),
         1.1 + g * 1e-5, 1.1002 + g * 1e-5, 1.0998 + g * 1e-5, 1.1001 + g * 1e-5, 100 + g, 0.00012, 'bench'
  FROM generate_series(0, 1999) AS g]], SYM)
tf.db.exec("ANALYZE market_data")

local cases = {
  { name = "one candle by key", key = "candles:" .. SYM .. ":M1:one",
    sql = "SELECT symbol, timeframe, ts, open, high, low, close, volume, spread FROM market_data WHERE symbol = $1 AND timeframe = 'M1' AND ts = timestamptz '2025-10-20 12:00:00+00'" },
  { name = "last 500 M1 bars", key = "candles:" .. SYM .. ":M1:last500",
    sql = "SELECT symbol, timeframe, ts, open, high, low, close, volume, spread FROM market_data WHERE symbol = $1 AND timeframe = 'M1' ORDER BY ts DESC LIMIT 500" },
}

local function time(n, f)
  for _ = 1, math.min(200, n) do f() end -- warm up
  local t0 = socket.gettime()
  for _ = 1, n do f() end
  return (socket.gettime() - t0) / n
end

print(string.format("N = %d per case; per-call wall time, microseconds", N))
print("| case | tf.db.query | tf.cache.get_or_load hit | ratio |")
print("|---|---|---|---|")
for _, c in ipairs(cases) do
  local n = c.name:match("500") and math.max(1, N // 10) or N
  local rows = #tf.db.query(c.sql, SYM)
  local db = time(n, function() return tf.db.query(c.sql, SYM) end)
  tf.cache.delete(c.key)
  local hit = time(n, function()
    return tf.cache.get_or_load(c.key, 600, function() return tf.db.query(c.sql, SYM) end)
  end)
  print(string.format("| %s (%d rows, %d calls) | %.1f | %.1f | %.1fx |", c.name, rows, n, db * 1e6, hit * 1e6, db / hit))
end
local s = tf.cache.stats()
print(string.format("\ncache: %d loads, %d hits, %d misses, %d bytes in %d entries", s.loads, s.hits, s.misses, s.bytes, s.entries))
tf.db.exec("DELETE FROM market_data WHERE symbol = $1", SYM)
