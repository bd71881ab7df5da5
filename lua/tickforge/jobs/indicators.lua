-- Indicators job: for each configured symbol, timeframe and indicator set,
-- computes the values of bars that are new (or changed) since the last run
-- and stores them (tf.indicators.update: market_data columns or
-- indicator_values). plugins/jobs.lua schedules run(ctx) every 60 s; the
-- strategies job calls update() before it reads values. It must never store
-- a value that differs from a batch computation over the full history.
--
-- Config (jobs.indicators, all optional):
--   targets = {                         -- default: the one shown
--     { timeframes = { "M1" }, sets = { "mt5_default" }, symbols = nil },
--   },                                  -- symbols nil: those with a bar of that
--                                       -- timeframe in the last `recent` days
--   recent  = "7d"
--   warmup  = nil   -- nil: the whole stored history is the warm-up (exact);
--                   -- N: only N bars before the new ones (faster, and values of
--                   -- EMA-style indicators then differ in the last digits)
--
-- Exactness choice: warm-up, not persisted streaming state. Indicators with
-- memory (EMA, RSI, ATR, MACD...) depend on where they start, so each update
-- loads every stored bar before the new ones (one query) and runs the set as
-- batch calls in C; only the new bars' values are written. The watermark
-- keeps, per symbol|timeframe|set, the newest bar computed and its OHLCV: a
-- run does nothing for a pair whose newest bar is unchanged, and recomputes
-- from that bar on when it changed (a forming bar) or newer bars came. A bar
-- older than that one, changed later (an EA resending history), is not
-- noticed: clear the job's watermark to recompute everything.
local config = require("tickforge.jobs.config")

local M = {}

M.DEFAULT_TARGETS = { { timeframes = { "M1" }, sets = { "mt5_default" } } }

local function settings(override)
  local c = config.section("indicators", override)
  local targets = c:table("targets", M.DEFAULT_TARGETS)
  local out = {}
  for i, t in ipairs(targets) do
    local tc = config.section("indicators.targets[" .. i .. "]", t)
    local sets = tc:strings("sets", { "mt5_default" })
    for _, name in ipairs(sets) do
      if not tf.indicators.get(name) then tc:fail("sets", "no indicator set named '%s' (tf.indicators.set)", name) end
    end
    out[i] = { timeframes = tc:strings("timeframes", { "M1" }), sets = sets, symbols = tc:strings("symbols") }
  end
  local warmup = c:raw("warmup")
  if warmup ~= nil then warmup = math.tointeger(c:number("warmup", 0, 1, 1e9)) end
  return { targets = out, recent = c:duration("recent", "7d"), warmup = warmup }
end
M.settings = settings

-- The newest bar of symbol/timeframe: epoch seconds and its OHLCV as text
-- (not xmin: storing the values rewrites the row), or nil.
local function newest(symbol, timeframe)
  local r = tf.db.query([[SELECT extract(epoch FROM ts)::float8 AS t,
    concat_ws(' ', open, high, low, close, volume) AS v FROM market_data
    WHERE symbol = $1 AND timeframe = $2 ORDER BY ts DESC LIMIT 1]], symbol, timeframe)[1]
  return r and r.t, r and r.v
end

-- update(set, symbol, timeframe, state) -> rows written, new state. state is
-- the watermark entry { t = epoch of the newest bar computed, v = its OHLCV }.
function M.update(set_name, symbol, timeframe, state, warmup)
  local t, v = newest(symbol, timeframe)
  if not t then return 0, state end
  if state and state.t == t and state.v == v then return 0, state end
  -- from the previously newest bar on (it may have changed since), or everything
  local from = state and math.min(state.t, t) or nil
  local written = tf.indicators.update(set_name, symbol, timeframe, from, t, { warmup = warmup })
  -- cached candle reads join indicator values (/candles?set=): drop that pair's
  if written > 0 then tf.cache.delete_prefix("candles:" .. symbol .. ":" .. timeframe .. ":") end
  return written, { t = t, v = v }
end

local function symbols_of(target, timeframe, recent)
  if target.symbols then return target.symbols end
  local rows = tf.db.query([[SELECT DISTINCT symbol FROM market_data
    WHERE timeframe = $1 AND ts > now() - make_interval(secs => $2::float8) ORDER BY symbol]], timeframe, recent)
  local out = {}
  for i, r in ipairs(rows) do out[i] = r.symbol end
  return out
end

-- run(ctx [, cfg]) -> { rows = values rows written, watermark = { ["sym|tf|set"] = {t, v} } }
function M.run(ctx, override)
  local s = settings(override)
  local old = type(ctx.watermark) == "table" and ctx.watermark or {}
  local wm, rows, pairs_done = {}, 0, 0
  for _, target in ipairs(s.targets) do
    for _, timeframe in ipairs(target.timeframes) do
      for _, symbol in ipairs(symbols_of(target, timeframe, s.recent)) do
        for _, set_name in ipairs(target.sets) do
          local key = symbol .. "|" .. timeframe .. "|" .. set_name
          local n, state = M.update(set_name, symbol, timeframe, old[key], s.warmup)
          wm[key] = state
          rows = rows + n
          if n > 0 then pairs_done = pairs_done + 1 end
        end
      end
    end
  end
  return { rows = rows, watermark = wm, note = string.format("%d series updated", pairs_done) }
end

return M
