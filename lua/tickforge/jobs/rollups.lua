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
-- Once a run commits, the cached candle reads of each (symbol, timeframe) it
-- wrote are dropped (tf.cache prefix candles:<symbol>:<timeframe>:).
local config = require("tickforge.jobs.config")

local M = {}

M.DEFAULT_TIMEFRAMES = { "M5", "M15", "M30", "H1", "H4", "D1", "W1", "MN1" }
local SECONDS = {
  M2 = 120, M3 = 180, M4 = 240, M5 = 300, M6 = 360, M10 = 600, M12 = 720, M15 = 900,
  M20 = 1200, M30 = 1800, H1 = 3600, H2 = 7200, H3 = 10800, H4 = 14400, H6 = 21600, H8 = 28800,
  H12 = 43200, D1 = 86400, W1 = 604800, MN1 = 86400,
}
local VALID = SECONDS

-- The statement, built for a timeframe list (names from SECONDS only, so no
-- value ever reaches the SQL text). $1 timeframes text[], $2 broker offset
-- (s), $3 symbols text[] or NULL, $4 partial length (s): the largest length
-- every requested bucket is made of (5 minutes for the defaults).
--   1. the queued M1 keys -> the touched bucket of every timeframe;
--   2. their spans, merged per symbol into ranges; the M1 bars of each range
--      read once by primary key and folded into partial bars (first/last by
--      time, extremes, sums, and the spread as sum and count);
--   3. each timeframe aggregated from the largest already built level that
--      nests in it (M15 from M5, H4 from H1, W1 and MN1 from D1...), so the
--      spread average stays exactly the M1 average;
--   4. the touched buckets of every timeframe upserted.
local HEAD = [[
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
           sum(m.spread) AS spread_sum, count(m.spread)::numeric AS spread_n
      FROM ranges r CROSS JOIN LATERAL (   -- LATERAL + OFFSET 0: a key range scan per range
           SELECT ts, open, high, low, close, volume, spread FROM market_data
            WHERE symbol = r.symbol AND timeframe = 'M1' AND ts >= r.lo AND ts < r.hi OFFSET 0) m
     GROUP BY 1, 2
)]]

-- The upsert of the touched buckets: EA bars are never overwritten, equal
-- bars are not rewritten. Answers the bars written per symbol and timeframe.
local INSERT_SQL = [[
, written AS (
INSERT INTO market_data AS md (symbol, timeframe, ts, open, high, low, close, volume, spread, source)
SELECT symbol, tf, b, open, high, low, close, volume, spread, 'rollup' FROM bars
ON CONFLICT (symbol, timeframe, ts) DO UPDATE
   SET open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
       volume = EXCLUDED.volume, spread = EXCLUDED.spread
 WHERE md.source <> 'ea'
   AND (md.open, md.high, md.low, md.close, md.volume, md.spread) IS DISTINCT FROM
       (EXCLUDED.open, EXCLUDED.high, EXCLUDED.low, EXCLUDED.close, EXCLUDED.volume, EXCLUDED.spread)
RETURNING md.symbol, md.timeframe
)
SELECT symbol, timeframe, count(*) AS n FROM written GROUP BY 1, 2]]

-- One level: timeframe tf built from the rows of `parent`.
local LEVEL = [[
, lvl_%s AS (
    SELECT x.symbol, tf_bucket(x.p, '%s', $2::int) AS p,
           (array_agg(x.open ORDER BY x.p))[1] AS open, max(x.high) AS high, min(x.low) AS low,
           (array_agg(x.close ORDER BY x.p DESC))[1] AS close, sum(x.volume) AS volume,
           sum(x.spread_sum) AS spread_sum, sum(x.spread_n) AS spread_n
      FROM %s x GROUP BY 1, 2
)]]

-- The touched buckets of one level.
local PICK = [[
    SELECT l.symbol, '%s' AS tf, l.p AS b, l.open, l.high, l.low, l.close, l.volume,
           l.spread_sum / NULLIF(l.spread_n, 0) AS spread
      FROM lvl_%s l JOIN buckets k ON k.symbol = l.symbol AND k.tf = '%s' AND k.b = l.p]]

local OFFSET_TF = { D1 = true, W1 = true, MN1 = true }
local ORDER = { D1 = 86400, W1 = 604800, MN1 = 2678400 } -- MN1 after W1

-- Can every bucket of timeframe `from` be found whole inside one bucket of `to`?
local function nests(from, to, offset)
  if from == "D1" then return to == "W1" or to == "MN1" end
  if OFFSET_TF[from] then return false end
  local len = SECONDS[from]
  if OFFSET_TF[to] then return 86400 % len == 0 and offset % len == 0 end
  return SECONDS[to] % len == 0
end

-- The statement for timeframes tfs (validated names) and an offset.
function M.build_sql(tfs, offset)
  local order = {}
  for i, tf in ipairs(tfs) do order[i] = tf end
  table.sort(order, function(x, y) return (ORDER[x] or SECONDS[x]) < (ORDER[y] or SECONDS[y]) end)
  local parts, picks, built = { HEAD }, {}, {}
  for _, tf in ipairs(order) do
    local parent, plen = "partials", 0
    for _, done in ipairs(built) do
      local len = ORDER[done] or SECONDS[done]
      if nests(done, tf, offset) and len > plen then parent, plen = "lvl_" .. done, len end
    end
    parts[#parts + 1] = string.format(LEVEL, tf, tf, parent)
    picks[#picks + 1] = string.format(PICK, tf, tf, tf)
    built[#built + 1] = tf
  end
  parts[#parts + 1] = ", bars AS (\n" .. table.concat(picks, "\n    UNION ALL\n") .. "\n)\n"
  return table.concat(parts) .. INSERT_SQL
end

local function settings(override)
  local c = config.section("rollups", override)
  local tfs = c:strings("timeframes", M.DEFAULT_TIMEFRAMES)
  local seen = {}
  for i, tf in ipairs(tfs) do
    if not VALID[tf] then c:fail("timeframes", "entry %d: '%s' is not a timeframe above M1 (M2 .. MN1)", i, tf) end
    if seen[tf] then c:fail("timeframes", "entry %d: '%s' is listed twice", i, tf) end
    seen[tf] = true
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
           sql = M.build_sql(tfs, math.tointeger(offset)),
           symbols = config.text_array(c:strings("symbols")), work_mem = c:memory("work_mem", "64MB") }
end
M.settings = settings

-- run(ctx [, cfg]) -> { rows = higher-timeframe bars written }
function M.run(ctx, override)
  local s = settings(override)
  local written = tf.db.tx(function()
    config.tune_transaction(s.work_mem)
    return tf.db.query(s.sql, s.timeframes, s.offset, s.symbols, s.partial)
  end)
  local rows = 0
  for _, w in ipairs(written) do
    rows = rows + math.tointeger(w.n)
    tf.cache.delete_prefix("candles:" .. w.symbol .. ":" .. w.timeframe .. ":")
  end
  return { rows = rows }
end

return M
