-- Tick aggregator job: ticks -> M1 candles in market_data (source 'ticks').
-- plugins/jobs.lua schedules run(ctx) every 5 s; tests call run(ctx, cfg).
-- Each run reads the ticks sequenced after its watermark, and recomputes
-- WHOLE every minute they touch from all of that minute's ticks, so late and
-- repeated ticks are counted and a re-run changes nothing. It must never
-- overwrite a candle an EA sent (source 'ea' wins), nor loop over rows in Lua.
-- Once a run commits, the cached candle reads of each symbol whose M1 bars it
-- wrote are dropped (tf.cache prefix candles:<symbol>:M1:).
--
-- Config (jobs.tick_aggregator, all optional):
--   price   = "mid"     -- mid (bid+ask)/2 | bid | ask | last (ticks without last are skipped)
--   settle  = nil       -- seconds after which a tick's transaction is surely over;
--                       -- default 2 x database.statement_timeout_ms (60 s)
--   batch   = 1000000   -- at most this many sequence numbers per run
--   symbols = nil       -- only these symbols (default: all)
--   work_mem = "64MB"   -- PostgreSQL work_mem for the run's sorts (SET LOCAL)
--
-- Watermark { seq, seen, count }: seq = every tick up to it is aggregated and
-- no transaction can still add one below it; seen = the highest seq read;
-- count = how many ticks were visible in (seq, seen]. ticks.seq comes from a
-- sequence, handed out at insert but visible at commit, so a slow transaction
-- can commit a lower seq after a higher one was read. seq therefore advances
-- only to ticks whose received_at (their transaction's start) is older than
-- `settle`; ticks in (seq, seen] are re-counted every run, and when the count
-- changed (a slow transaction committed) their minutes are recomputed too.
local config = require("tickforge.jobs.config")

local M = {}

local PRICE = {
  mid = "(t.bid + t.ask) / 2",
  bid = "t.bid",
  ask = "t.ask",
  last = "t.last",
}

-- Statistics of the ticks after the watermark, in the run's snapshot.
-- The batch reaches at least the first tick after the watermark, however
-- many sequence numbers were burnt (duplicates, rollbacks) before it.
local STATS_SQL = [[
WITH lim AS (
    SELECT GREATEST($1::int8 + $4::int8, (SELECT min(seq) FROM ticks WHERE seq > $1::int8 AND ($5::text[] IS NULL OR symbol = ANY($5)))) AS hi
)
SELECT max(seq) AS hi,
       count(*) FILTER (WHERE seq <= $2::int8) AS n_old,
       max(seq) FILTER (WHERE received_at < statement_timestamp() - make_interval(secs => $3::float8)) AS settled
  FROM ticks
 WHERE seq > $1::int8 AND seq <= (SELECT hi FROM lim) AND ($5::text[] IS NULL OR symbol = ANY($5))]]

-- The minutes touched by ticks with seq in ($1, $2], merged into runs of
-- consecutive minutes per symbol (read by the (symbol, ts) index), each
-- minute aggregated from all its ticks, upserted unless an EA sent it.
-- Open/close are the first/last tick by (ts, seq); prices keep float8 until
-- the NUMERIC(18,8) column rounds them; the spread is averaged as numeric so
-- the result does not depend on the order PostgreSQL reads rows in. It
-- answers the bars written (inserted or changed) per symbol.
local AGG_SQL = [[
WITH touched AS MATERIALIZED (
    SELECT symbol, date_bin('1 minute', ts, timestamptz 'epoch') AS m
      FROM ticks
     WHERE seq > $1::int8 AND seq <= $2::int8 AND ($3::text[] IS NULL OR symbol = ANY($3))
     GROUP BY 1, 2
), runs AS (
    SELECT symbol, min(m) AS lo, max(m) + interval '1 minute' AS hi
      FROM (SELECT symbol, m, m - make_interval(mins => (row_number() OVER (PARTITION BY symbol ORDER BY m))::int) AS grp
              FROM touched) x
     GROUP BY symbol, grp
), bars AS (
    SELECT t.symbol, date_bin('1 minute', t.ts, timestamptz 'epoch') AS ts,
           array_agg(%s ORDER BY t.ts, t.seq) AS p,
           max(%s) AS high, min(%s) AS low, count(*) AS volume,
           avg((t.ask - t.bid)::numeric) AS spread
      FROM runs r CROSS JOIN LATERAL (   -- LATERAL + OFFSET 0: an index range scan per run
           SELECT * FROM ticks WHERE symbol = r.symbol AND ts >= r.lo AND ts < r.hi OFFSET 0) t
     WHERE %s IS NOT NULL
     GROUP BY 1, 2
), written AS (
INSERT INTO market_data AS md (symbol, timeframe, ts, open, high, low, close, volume, spread, source)
SELECT symbol, 'M1', ts, p[1], high, low, p[array_upper(p, 1)], volume, spread, 'ticks' FROM bars
ON CONFLICT (symbol, timeframe, ts) DO UPDATE
   SET open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
       volume = EXCLUDED.volume, spread = EXCLUDED.spread
 WHERE md.source = 'ticks'
   AND (md.open, md.high, md.low, md.close, md.volume, md.spread) IS DISTINCT FROM
       (EXCLUDED.open, EXCLUDED.high, EXCLUDED.low, EXCLUDED.close, EXCLUDED.volume, EXCLUDED.spread)
RETURNING md.symbol
)
SELECT symbol, count(*) AS n FROM written GROUP BY symbol]]

local COUNT_SQL = [[
SELECT count(*) AS n FROM ticks WHERE seq > $1::int8 AND seq <= $2::int8 AND ($3::text[] IS NULL OR symbol = ANY($3))]]

-- The SQL for one price choice (exposed for the benchmark and the docs).
function M.sql(price)
  local p = assert(PRICE[price], "unknown price")
  return string.format(AGG_SQL, p, p, p, p)
end

local function settings(override)
  local c = config.section("tick_aggregator", override)
  local default_settle = 2 * (tf.config.get("database.statement_timeout_ms", 30000) or 30000) / 1000
  if default_settle <= 0 then default_settle = 600 end -- no statement timeout: assume 5 minutes
  return {
    price = c:choice("price", "mid", { "mid", "bid", "ask", "last" }),
    settle = c:duration("settle", default_settle),
    batch = math.tointeger(c:number("batch", 1000000, 1, 1e12)) or 1000000,
    symbols = config.text_array(c:strings("symbols")),
    work_mem = c:memory("work_mem", "64MB"),
  }
end
M.settings = settings

-- run(ctx [, cfg]) -> { rows = M1 bars written, watermark = {...}, note = "..." }
function M.run(ctx, override)
  local s = settings(override)
  local wm = type(ctx.watermark) == "table" and ctx.watermark or {}
  local from = math.tointeger(wm.seq) or 0
  local seen = math.tointeger(wm.seen) or from
  local written = {}
  local result = tf.db.tx(function()
    -- one snapshot for the statistics and the aggregation
    tf.db.exec("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    config.tune_transaction(s.work_mem)
    local st = tf.db.query(STATS_SQL, from, seen, s.settle, s.batch, s.symbols)[1]
    local hi = math.tointeger(st.hi)
    if not hi then return { rows = 0, watermark = { seq = from, seen = from, count = 0 }, note = "no new ticks" } end
    -- ticks below `seen` we have not seen yet (a slow transaction committed)?
    local recheck = (math.tointeger(st.n_old) or 0) ~= (math.tointeger(wm.count) or 0)
    local lo = recheck and from or seen
    local rows = 0
    if hi > lo then
      written = tf.db.query(M.sql(s.price), lo, hi, s.symbols)
      for _, w in ipairs(written) do rows = rows + math.tointeger(w.n) end
    end
    local settled = math.max(from, math.tointeger(st.settled) or from)
    local count = math.tointeger(tf.db.query(COUNT_SQL, settled, hi, s.symbols)[1].n)
    return {
      rows = rows,
      watermark = { seq = settled, seen = hi, count = count },
      note = string.format("seq %d..%d%s", lo, hi, recheck and " (late commit re-read)" or ""),
    }
  end)
  -- committed: drop the cached candle reads of every symbol whose M1 bars changed
  for _, w in ipairs(written) do tf.cache.delete_prefix("candles:" .. w.symbol .. ":M1:") end
  return result
end

return M
