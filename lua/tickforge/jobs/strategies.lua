-- Strategies job: runs every strategy registered with tf.strategy (see
-- lua/tickforge/strategy.lua) on each new closed bar of each of its symbols,
-- and stores the signals they return in `signals`, one INSERT per run.
-- plugins/jobs.lua schedules run(ctx) every minute; tests call run(ctx, cfg).
-- It first brings the strategy's indicator set up to date (the indicators
-- job's update, so values equal a full-history batch), then reads the last
-- `history` closed bars with those values. A bar is closed when a newer bar
-- exists or its period has ended. It never calls a strategy twice for one
-- bar (the watermark), and a signal stored twice is one row (unique key).
--
-- Config (jobs.strategies, all optional):
--   only     = nil   -- run only these strategy names (default: every one)
--   disabled = {}    -- strategy names to skip
-- A strategy that raises does not stop the others: their signals are
-- stored, then the run fails naming it, and the next run retries the bar.
local config = require("tickforge.jobs.config")
local indicators_job = require("tickforge.jobs.indicators")

local M = {}

-- The bars and values a strategy sees. $1 symbol, $2 timeframe, $3 history.
local BARS_SQL = [[
SELECT * FROM (
    SELECT extract(epoch FROM m.ts)::float8 AS time, m.open::float8 AS open, m.high::float8 AS high,
           m.low::float8 AS low, m.close::float8 AS close, COALESCE(m.volume, 0)::float8 AS volume%s
      FROM market_data m
     WHERE m.symbol = $1 AND m.timeframe = $2
       AND (m.ts < (SELECT max(ts) FROM market_data WHERE symbol = $1 AND timeframe = $2)
            OR CASE $2 WHEN 'MN1' THEN tf_bucket(m.ts + interval '32 days', 'MN1')
                       ELSE m.ts + make_interval(secs => tf_timeframe_seconds($2)) END <= now())
     ORDER BY m.ts DESC LIMIT $3) x
 ORDER BY time]]

-- SQL and extra parameters reading a set's values beside the bars.
local function bars_query(set)
  local cols, args = {}, {}
  for i, col in ipairs(set.columns) do
    if set.target == "market_data" then
      cols[i] = string.format(", m.%s::float8 AS c%d", col, i) -- market_data's own column names
    else
      args[#args + 1] = col
      cols[i] = string.format([[, (SELECT value FROM indicator_values iv WHERE iv.symbol = $1
        AND iv.timeframe = $2 AND iv.set_name = $4 AND iv.name = $%d AND iv.ts = m.ts) AS c%d]], 4 + #args, i)
    end
  end
  if #args > 0 then table.insert(args, 1, set.name) end
  return string.format(BARS_SQL, table.concat(cols)), args
end

local INSERT_SQL = [[
INSERT INTO signals (strategy, symbol, timeframe, ts, side, strength, price, stop, target, comment)
SELECT u.strategy, u.symbol, u.timeframe, to_timestamp(u.t), u.side, u.strength, u.price, u.stop, u.target, u.comment
  FROM unnest($1::text[], $2::text[], $3::text[], $4::float8[], $5::text[], $6::float8[], $7::float8[],
              $8::float8[], $9::float8[], $10::text[]) WITH ORDINALITY
       AS u(strategy, symbol, timeframe, t, side, strength, price, stop, target, comment, k)
 ORDER BY u.k
ON CONFLICT (strategy, symbol, timeframe, ts, side) DO NOTHING]]

-- Array literals for INSERT_SQL.
local function text_array(list, n)
  local parts = {}
  for i = 1, n do
    local v = list[i]
    parts[i] = v == nil and "NULL" or '"' .. tostring(v):gsub('[\\"]', '\\%0') .. '"'
  end
  return "{" .. table.concat(parts, ",") .. "}"
end
local function num_array(list, n)
  local parts = {}
  for i = 1, n do parts[i] = list[i] == nil and "NULL" or string.format("%.17g", list[i]) end
  return "{" .. table.concat(parts, ",") .. "}"
end

local function settings(override)
  local c = config.section("strategies", override)
  local only = c:strings("only")
  local set = function(list)
    if not list then return nil end
    local t = {}
    for _, n in ipairs(list) do t[n] = true end
    return t
  end
  return { only = set(only), disabled = set(c:strings("disabled", {})) }
end
M.settings = settings

-- One strategy on one symbol: returns the signals (list) and the bar time
-- evaluated, or nothing when there is no new closed bar.
function M.evaluate(st, symbol, last_time)
  local set = tf.indicators.get(st.set)
  if not set then error(string.format("strategy '%s': no indicator set named '%s'", st.name, st.set), 0) end
  local sql, extra = bars_query(set)
  local cols, n = tf.db.columns(sql, symbol, st.timeframe, st.history, table.unpack(extra))
  if n == 0 then return nil end
  local t = cols.time[n]
  if last_time and t <= last_time then return nil end
  local values = {}
  for i, col in ipairs(set.columns) do values[col] = cols["c" .. i] end
  local s = {
    strategy = st.name, symbol = symbol, timeframe = st.timeframe, n = n, time = t,
    bars = { time = cols.time, open = cols.open, high = cols.high, low = cols.low, close = cols.close,
             volume = cols.volume },
    values = tf.strategy.values(set, values), params = st.params,
  }
  return M.decide(st, s, cols.close[n]), t
end

-- Calls the strategy on the view s and returns its signals checked and
-- normalised (a list, maybe empty); close is the price a signal without one
-- gets. The backtest (lua/tickforge/backtest.lua) calls this too, so a
-- strategy's output means the same in both.
function M.decide(st, s, close)
  local out = st.fn(s)
  if out == nil then return {} end
  if type(out) == "table" and out.side ~= nil then out = { out } end
  local sigs = {}
  for i, sig in ipairs(out) do sigs[i] = tf.strategy.check_signal(st.name, sig, close) end
  return sigs
end

-- run(ctx [, cfg]) -> { rows = signals stored, watermark = { bars = {...}, ind = {...} } }
function M.run(ctx, override)
  local s = settings(override)
  local old = type(ctx.watermark) == "table" and ctx.watermark or {}
  local old_bars, old_ind = old.bars or {}, old.ind or {}
  local wm = { bars = {}, ind = {} }
  local rows = { strategy = {}, symbol = {}, timeframe = {}, t = {}, side = {}, strength = {}, price = {},
                 stop = {}, target = {}, comment = {} }
  local n, errors, evaluated = 0, {}, 0
  for _, st in ipairs(tf.strategy.list()) do
    if (not s.only or s.only[st.name]) and not s.disabled[st.name] then
      for _, symbol in ipairs(st.symbols) do
        local ikey = symbol .. "|" .. st.timeframe .. "|" .. st.set
        local _, istate = indicators_job.update(st.set, symbol, st.timeframe, wm.ind[ikey] or old_ind[ikey])
        wm.ind[ikey] = istate
        local key = st.name .. "|" .. symbol
        local ok, sigs, t = pcall(M.evaluate, st, symbol, old_bars[key])
        if not ok then
          errors[#errors + 1] = string.format("%s on %s: %s", st.name, symbol, tostring(sigs))
          wm.bars[key] = old_bars[key]
        else
          wm.bars[key] = t or old_bars[key]
          if t then evaluated = evaluated + 1 end
          for _, sig in ipairs(sigs or {}) do
            n = n + 1
            rows.strategy[n], rows.symbol[n], rows.timeframe[n], rows.t[n] = st.name, symbol, st.timeframe, t
            rows.side[n], rows.strength[n], rows.price[n] = sig.side, sig.strength, sig.price
            rows.stop[n], rows.target[n], rows.comment[n] = sig.stop, sig.target, sig.comment
          end
        end
      end
    end
  end
  local stored = 0
  if n > 0 then
    stored = tf.db.exec(INSERT_SQL, text_array(rows.strategy, n), text_array(rows.symbol, n),
      text_array(rows.timeframe, n), num_array(rows.t, n), text_array(rows.side, n), num_array(rows.strength, n),
      num_array(rows.price, n), num_array(rows.stop, n), num_array(rows.target, n), text_array(rows.comment, n))
  end
  if #errors > 0 then error("strategies failed: " .. table.concat(errors, "; "), 0) end
  return { rows = stored, watermark = wm, note = string.format("%d bars evaluated, %d signals", evaluated, n) }
end

return M
