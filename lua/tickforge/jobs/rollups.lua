-- Rollups job: M1 candles -> the higher timeframes (M5 ... MN1) in
-- market_data, source 'rollup'. plugins/jobs.lua schedules run(ctx) every
-- minute; tests call run(ctx, cfg). It recomputes, whole and from M1, only
-- the buckets holding an M1 bar written since it last ran, in one statement.
-- It must never overwrite a candle an EA sent (source 'ea'), and never
-- rebuild a bucket because M1 bars were deleted (retention keeps the rollups).
--
-- Config (jobs.rollups, all optional):
--   timeframes = { "M5", "M15", "M30", "H1", "H4", "D1", "W1", "MN1" }
--   broker_offset = ingest.offset_seconds or 0  -- seconds, broker time minus
--       UTC: D1, W1 and MN1 start at the broker's midnight (W1 on Sunday, as
--       core/ts.c does); shorter timeframes are plain UTC buckets
--   symbols = nil    -- only these symbols (default: all)
--
-- "Written since the last run" is the rollup_queue table, filled by triggers
-- on market_data for every M1 insert and update (EA or tick aggregator) and
-- emptied here in the same transaction that rolls the buckets up: an M1 bar
-- committed late is simply still in the queue next time. So this job keeps
-- no watermark. Bars: open = first M1 open, close = last M1 close, high/low
-- the extremes, volume the sum, spread the average of the M1 spreads.
local config = require("tickforge.jobs.config")

local M = {}

M.DEFAULT_TIMEFRAMES = { "M5", "M15", "M30", "H1", "H4", "D1", "W1", "MN1" }
local VALID = {
  M2 = true, M3 = true, M4 = true, M5 = true, M6 = true, M10 = true, M12 = true, M15 = true,
  M20 = true, M30 = true, H1 = true, H2 = true, H3 = true, H4 = true, H6 = true, H8 = true,
  H12 = true, D1 = true, W1 = true, MN1 = true,
}

-- $1 timeframes text[], $2 broker offset (s), $3 symbols text[] or NULL.
-- Touched buckets are merged into runs of consecutive buckets per symbol and
-- timeframe, so M1 bars are read by primary-key range, once per run.
M.SQL = [[
WITH queued AS (
    DELETE FROM rollup_queue WHERE ($3::text[] IS NULL OR symbol = ANY($3)) RETURNING symbol, ts
), buckets AS (
    SELECT DISTINCT q.symbol, f.tf, tf_bucket(q.ts, f.tf, $2::int) AS b
      FROM queued q CROSS JOIN unnest($1::text[]) AS f(tf)
), spans AS (   -- each bucket with the start of the next one
    SELECT symbol, tf, b, CASE tf WHEN 'MN1' THEN tf_bucket(b + interval '32 days', 'MN1', $2::int)
                                  ELSE b + make_interval(secs => tf_timeframe_seconds(tf)) END AS nx
      FROM buckets
), islands AS (
    SELECT symbol, tf, b, nx,
           count(*) FILTER (WHERE NOT adjacent) OVER (PARTITION BY symbol, tf ORDER BY b) AS island
      FROM (SELECT *, b = lag(nx) OVER (PARTITION BY symbol, tf ORDER BY b) AS adjacent FROM spans) x
), runs AS (
    SELECT symbol, tf, min(b) AS lo, max(nx) AS hi FROM islands GROUP BY symbol, tf, island
), bars AS (
    SELECT r.symbol, r.tf, tf_bucket(m.ts, r.tf, $2::int) AS b,
           (array_agg(m.open ORDER BY m.ts))[1] AS open, max(m.high) AS high, min(m.low) AS low,
           (array_agg(m.close ORDER BY m.ts DESC))[1] AS close,
           sum(m.volume) AS volume, avg(m.spread) AS spread
      FROM runs r CROSS JOIN LATERAL (   -- LATERAL + OFFSET 0: a key range scan per run
           SELECT ts, open, high, low, close, volume, spread FROM market_data
            WHERE symbol = r.symbol AND timeframe = 'M1' AND ts >= r.lo AND ts < r.hi OFFSET 0) m
     GROUP BY 1, 2, 3
)
INSERT INTO market_data AS md (symbol, timeframe, ts, open, high, low, close, volume, spread, source)
SELECT symbol, tf, b, open, high, low, close, volume, spread, 'rollup' FROM bars
ON CONFLICT (symbol, timeframe, ts) DO UPDATE
   SET open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
       volume = EXCLUDED.volume, spread = EXCLUDED.spread
 WHERE md.source <> 'ea'
   AND (md.open, md.high, md.low, md.close, md.volume, md.spread) IS DISTINCT FROM
       (EXCLUDED.open, EXCLUDED.high, EXCLUDED.low, EXCLUDED.close, EXCLUDED.volume, EXCLUDED.spread)]]

local function settings(override)
  local c = config.section("rollups", override)
  local tfs = c:strings("timeframes", M.DEFAULT_TIMEFRAMES)
  for i, tf in ipairs(tfs) do
    if not VALID[tf] then c:fail("timeframes", "entry %d: '%s' is not a timeframe above M1 (M2 .. MN1)", i, tf) end
  end
  local offset = c:number("broker_offset", tf.config.get("ingest.offset_seconds", 0) or 0, -86400, 86400)
  if math.type(offset) ~= "integer" and offset ~= math.floor(offset) then
    c:fail("broker_offset", "must be whole seconds, got %s", tostring(offset))
  end
  return { timeframes = config.text_array(tfs), offset = math.tointeger(offset),
           symbols = config.text_array(c:strings("symbols")) }
end
M.settings = settings

-- run(ctx [, cfg]) -> { rows = higher-timeframe bars written }
function M.run(ctx, override)
  local s = settings(override)
  local rows = tf.db.tx(function()
    return tf.db.exec(M.SQL, s.timeframes, s.offset, s.symbols)
  end)
  return { rows = rows }
end

return M
