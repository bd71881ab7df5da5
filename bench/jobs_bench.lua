-- Times the shipped job bodies inside `tickforge run` (the same tf.db path
-- the scheduler uses), for bench/jobs_bench.sh:
--   tickforge run bench/jobs_bench.lua agg      tick aggregator over every tick, one run
--   tickforge run bench/jobs_bench.lua rollup   rollups over the whole queue, one run
--   tickforge run bench/jobs_bench.lua rollup_step   one new M1 bar per symbol, one rollups run
--   tickforge run bench/jobs_bench.lua idle N   N runs of each job with nothing new to do
-- Prints "name seconds rows" lines. Never asserts on timings.
local now = require("socket").gettime
local agg = require("tickforge.jobs.tick_aggregator")
local rollups = require("tickforge.jobs.rollups")
local indicators = require("tickforge.jobs.indicators")
local what, n = arg[1], tonumber(arg[2] or "50")

local function timed(name, fn)
  local t0 = now()
  local r = fn()
  print(string.format("%s %.4f %d", name, now() - t0, r and r.rows or 0))
  return r
end

if what == "agg" then
  timed("agg", function() return agg.run({ watermark = { seq = 0 } }, { settle = 0, batch = 1e12 }) end)
elseif what == "rollup" then
  timed("rollup", function() return rollups.run({}, {}) end)
elseif what == "rollup_step" then
  -- steady state: one new M1 bar per symbol after its newest one
  tf.db.exec([[INSERT INTO market_data (symbol, timeframe, ts, open, high, low, close, volume, spread)
    SELECT DISTINCT ON (symbol) symbol, 'M1', ts + interval '1 minute', close, close, close, close, 1, spread
      FROM market_data WHERE timeframe = 'M1' ORDER BY symbol, ts DESC]])
  timed("rollup_step", function() return rollups.run({}, {}) end)
elseif what == "idle" then
  local wm = agg.run({ watermark = { seq = 0 } }, { settle = 0, batch = 1e12 }).watermark
  rollups.run({}, {})
  local sym = tf.db.query("SELECT symbol FROM market_data WHERE timeframe = 'M1' LIMIT 1")[1].symbol
  local icfg = { targets = { { symbols = { sym }, timeframes = { "M1" }, sets = { "mt5_default" } } } }
  local iwm = indicators.run({}, icfg).watermark
  for _, job in ipairs({
    { "idle_tick_aggregator", function() return agg.run({ watermark = wm }, { settle = 0 }) end },
    { "idle_rollups", function() return rollups.run({}, {}) end },
    { "idle_indicators_1_series", function() return indicators.run({ watermark = iwm }, icfg) end },
  }) do
    local t0 = now()
    for _ = 1, n do job[2]() end
    print(string.format("%s %.6f 0", job[1], (now() - t0) / n))
  end
end
