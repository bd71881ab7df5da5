-- The `tickforge run` example of the indicator engine, timed:
--   build/tickforge run bench/ind_compute.lua [SYMBOL [BARS]]
-- Seeds BARS (default 100000) M1 candles for SYMBOL (default BENCH_IND) into
-- market_data when fewer are stored, loads them back, computes the shipped
-- default set (mt5_default: RSI 14, MACD 12/26/9, ATR 14, BB 20/2), stores it
-- into market_data's indicator columns and prints the last values.
local symbol, want = arg and arg[1] or "BENCH_IND", tonumber(arg and arg[2]) or 100000
local clock = os.clock

local have = tf.db.query("SELECT count(*) AS n FROM market_data WHERE symbol = $1 AND timeframe = 'M1'", symbol)[1].n
if have < want then
  tf.db.exec("DELETE FROM market_data WHERE symbol = $1 AND timeframe = 'M1'", symbol)
  local t0, p, chunk = 1704067200, 1.1, 10000
  for start = 0, want - 1, chunk do
    local t, o, h, l, c, v = {}, {}, {}, {}, {}, {}
    for i = start, math.min(start + chunk, want) - 1 do
      local x = p * (1 + (math.sin(i * 0.37) + math.cos(i * 0.011)) * 0.0005)
      local k = #t + 1
      t[k], o[k], c[k] = string.format("%d", t0 + i * 60), string.format("%.5f", p), string.format("%.5f", x)
      h[k], l[k] = string.format("%.5f", math.max(p, x) + 0.0002), string.format("%.5f", math.min(p, x) - 0.0001)
      v[k] = tostring(10 + i % 50)
      p = x
    end
    local a = function(x) return "{" .. table.concat(x, ",") .. "}" end
    tf.db.exec([[INSERT INTO market_data (symbol, timeframe, ts, open, high, low, close, volume)
      SELECT $1, 'M1', to_timestamp(t), o, h, l, c, v
      FROM unnest($2::float8[], $3::numeric[], $4::numeric[], $5::numeric[], $6::numeric[], $7::numeric[])
      AS u(t, o, h, l, c, v)]], symbol, a(t), a(o), a(h), a(l), a(c), a(v))
  end
end

local c0 = clock()
local res = tf.indicators.compute("mt5_default", symbol, "M1", nil, nil)
local c1 = clock()
local written = tf.indicators.store(res)
local c2 = clock()
local n = res.n
print(string.format("%s M1: %d bars loaded and computed in %.3f s CPU (%.0f ns/bar for load+8 outputs), stored %d rows in %.3f s CPU",
  symbol, n, c1 - c0, (c1 - c0) / n * 1e9, written, c2 - c1))
local t = os.date("!%Y-%m-%d %H:%M", math.floor(res.time[n]))
print(string.format("last bar %s  close %.5f", t, res.bars.close[n]))
for _, col in ipairs(res.set.columns) do print(string.format("  %-12s %.8f", col, res.values[col][n])) end
