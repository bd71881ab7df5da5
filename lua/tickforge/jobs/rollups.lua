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
--   work_mem = "64MB"  -- PostgreSQL work_mem for the run's sorts (SET LOCAL)
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
local SECONDS = {
  M2 = 120, M3 = 180, M4 = 240, M5 = 300, M6 = 360, M10 = 600, M12 = 720, M15 = 900,
  M20 = 1200, M30 = 1800, H1 = 3600, H2 = 7200, H3 = 10800, H4 = 14400, H6 = 21600, H8 = 28800,
  H12 = 43200, D1 = 86400, W1 = 604800, MN1 = 86400,
}
local VALID = SECONDS

-- $1 timeframes text[], $2 broker offset (s), $3 symbols text[] or NULL,
-- $4 partial length (s): the largest length every requested bucket is made
-- of (5 minutes for the defaults). M1 bars are read once, by primary-key
-- range over the merged spans of the touched buckets, folded into partial
-- bars of that length (first/last kept by time, spread as sum and count so
-- the final average is exactly the M1 average), and every timeframe is
-- built from the partials of its touched buckets.
M.SQL = [[
WITH queued AS (
    DELETE FROM rollup_queue WHERE ($3::text[] IS NULL OR symbol = ANY($3)) RETURNING symbol, ts
), touched AS (
    SELECT DISTINCT symbol, date_bin(make_interval(secs => $4::int), ts, timestamptz 'epoch') AS p FROM queued
), buckets AS MATERIALIZED (
    SELECT DISTINCT t.symbol, f.tf, tf_bucket(t.p, f.tf, $2::int) AS b
      FROM touched t CROSS JOIN unnest($1::text[]) AS f(tf)
), spans AS (   -- each touched bucket and the start of the next one
    SELECT symbol, b AS lo, CASE tf WHEN 'MN1' THEN tf_bucket(b + interval '32 days', 'MN1', $2::int)
                                    ELSE b + make_interval(secs => tf_timeframe_seconds(tf)) END AS hi
      FROM buckets
), merged AS (  -- overlapping or adjacent spans of a symbol become one range
    SELECT symbol, lo, hi, count(*) FILTER (WHERE lo > reach) OVER (PARTITION BY symbol ORDER BY lo, hi) AS k
      FROM (SELECT *, max(hi) OVER (PARTITION BY symbol ORDER BY lo, hi ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS reach
              FROM spans) x
), ranges AS (
    SELECT symbol, min(lo) AS lo, max(hi) AS hi FROM merged GROUP BY symbol, k
), partials AS MATERIALIZED (
    SELECT r.symbol, date_bin(make_interval(secs => $4::int), m.ts, timestamptz 'epoch') AS p,
           (array_agg(m.open ORDER BY m.ts))[1] AS open, max(m.high) AS high, min(m.low) AS low,
           (array_agg(m.close ORDER BY m.ts DESC))[1] AS close, sum(m.volume) AS volume,
           sum(m.spread) AS spread_sum, count(m.spread) AS spread_n
      FROM ranges r CROSS JOIN LATERAL (   -- LATERAL + OFFSET 0: a key range scan per range
           SELECT ts, open, high, low, close, volume, spread FROM market_data
            WHERE symbol = r.symbol AND timeframe = 'M1' AND ts >= r.lo AND ts < r.hi OFFSET 0) m
     GROUP BY 1, 2
), placed AS (   -- each partial in its bucket of every timeframe (OFFSET 0: computed before the join)
    SELECT p.*, f.tf, tf_bucket(p.p, f.tf, $2::int) AS b FROM partials p CROSS JOIN unnest($1::text[]) AS f(tf) OFFSET 0
), bars AS (
    SELECT p.symbol, p.tf, p.b,
           (array_agg(p.open ORDER BY p.p))[1] AS open, max(p.high) AS high, min(p.low) AS low,
           (array_agg(p.close ORDER BY p.p DESC))[1] AS close, sum(p.volume) AS volume,
           sum(p.spread_sum) / NULLIF(sum(p.spread_n), 0) AS spread
      FROM placed p JOIN buckets k USING (symbol, tf, b)   -- only the touched buckets
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
  -- the partial length: gcd of the bucket lengths, D1/W1/MN1 counting as a
  -- day shifted by the offset (so partials nest in every bucket), in minutes
  local function gcd(a, b) while b ~= 0 do a, b = b, a % b end return a end
  local p = 0
  for _, tf in ipairs(tfs) do
    local len = (tf == "D1" or tf == "W1" or tf == "MN1") and gcd(86400, math.abs(math.tointeger(offset)) % 86400)
                or SECONDS[tf]
    p = gcd(p, len)
  end
  p = math.max(60, p - p % 60) -- below a minute: each partial is one M1 bar
  return { timeframes = config.text_array(tfs), offset = math.tointeger(offset), partial = p,
           symbols = config.text_array(c:strings("symbols")), work_mem = c:memory("work_mem", "64MB") }
end
M.settings = settings

-- run(ctx [, cfg]) -> { rows = higher-timeframe bars written }
function M.run(ctx, override)
  local s = settings(override)
  local rows = tf.db.tx(function()
    config.tune_transaction(s.work_mem)
    return tf.db.exec(M.SQL, s.timeframes, s.offset, s.symbols, s.partial)
  end)
  return { rows = rows }
end

return M
