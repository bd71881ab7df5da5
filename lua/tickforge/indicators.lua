-- tickforge.indicators (also tf.indicators): named indicator sets and their
-- computation over stored candles. A set is a list of tf.ind calls with a
-- convention; compute() loads candles through tf.db, runs every indicator as
-- one batch call over tf.series, and store() writes the values back. Uses only
-- tf.* and the sandbox's standard functions; never builds SQL from values.
local M = {}

local sets = {}  -- name -> normalised set (per Lua VM, like every plugin table)

-- market_data's indicator columns, which the old system filled.
local MARKET_DATA_COLUMNS = {
  rsi = true, macd = true, macd_signal = true, macd_hist = true, atr = true,
  bb_upper = true, bb_middle = true, bb_lower = true,
}
-- Column prefix per indicator when the entry has no `as`.
local PREFIX = { bbands = "bb" }

local function fail(level, fmt, ...)
  error(string.format(fmt, ...), level + 1)
end

-- Edit distance between two short names.
local function distance(a, b)
  local prev = {}
  for j = 0, #b do prev[j] = j end
  for i = 1, #a do
    local cur = { [0] = i }
    for j = 1, #b do
      cur[j] = math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a:byte(i) == b:byte(j) and 0 or 1))
    end
    prev = cur
  end
  return prev[#b]
end

-- ", did you mean 'rsi'?" for a name one or two edits from an indicator's, else "".
local function suggest(name)
  local best, bd = nil, 3
  for _, d in ipairs(tf.ind.list()) do
    local n = distance(name:lower(), d.name)
    if n < bd then best, bd = d.name, n end
  end
  return best and string.format(", did you mean '%s'?", best) or ""
end

-- One entry: { "rsi", 14 } / { "macd", 12, 26, 9 } / { "bbands", period = 20, as = "bb20" }
-- with an optional per-entry convention. Returns { ind, params, columns, lookback }.
local function normalise_entry(set_name, i, e, convention)
  if type(e) ~= "table" or type(e[1]) ~= "string" then
    fail(3, "indicator set '%s': entry %d must be { \"name\", params... }", set_name, i)
  end
  local ind = e[1]
  local info = tf.ind.info(ind)
  if not info then
    fail(3, "indicator set '%s': unknown indicator '%s'%s (docs/indicators.md lists them)", set_name, ind, suggest(ind))
  end
  local params = { convention = e.convention or convention }
  local names = {}
  for k, p in ipairs(info.params) do names[k] = p.name end
  if #e - 1 > #info.params then
    fail(3, "indicator set '%s': %s takes at most %d parameters (%s), got %d", set_name, ind, #info.params,
      table.concat(names, ", "), #e - 1)
  end
  for k = 2, #e do params[k - 1] = e[k] end
  for k, v in pairs(e) do
    if type(k) == "string" and k ~= "as" and k ~= "convention" then
      local known = false
      for _, n in ipairs(names) do known = known or n == k end
      if not known then
        fail(3, "indicator set '%s': %s has no parameter '%s' (parameters: %s, as, convention)", set_name, ind, k,
          table.concat(names, ", "))
      end
      params[k] = v
    end
  end
  local ok, lookback = pcall(tf.ind.lookback, ind, params)
  if not ok then fail(3, "indicator set '%s': %s", set_name, tostring(lookback)) end
  local prefix = e.as or PREFIX[ind] or ind
  local columns = {}
  for k, out in ipairs(info.outputs) do
    columns[k] = (#info.outputs == 1 or out == ind) and prefix or (prefix .. "_" .. out)
  end
  if #info.outputs == 1 and e.as == nil then columns[1] = ind end
  return { ind = ind, params = params, columns = columns, lookback = lookback }
end

--- tf.indicators.set(name, { {"rsi", 14}, {"macd", 12, 26, 9}, convention = "mt5" [, target = ...] })
-- Defines (or redefines) a set and returns it. Column names: the indicator's
-- name for one output, prefix_output otherwise (bbands -> bb_upper...), `as`
-- overrides the prefix. target: "market_data" when every column is one of
-- market_data's indicator columns (the shipped default set), else
-- "indicator_values"; give it explicitly to choose.
function M.set(name, spec)
  if type(name) ~= "string" or name == "" then fail(2, "tf.indicators.set: name must be a string") end
  if type(spec) ~= "table" then fail(2, "tf.indicators.set: '%s' needs a list of indicators", name) end
  local convention = spec.convention or "talib"
  if convention ~= "talib" and convention ~= "mt5" then
    fail(2, "indicator set '%s': convention must be \"talib\" or \"mt5\"", name)
  end
  local set = { name = name, convention = convention, entries = {}, columns = {}, lookback = 0 }
  local seen, all_md = {}, true
  for i, e in ipairs(spec) do
    local en = normalise_entry(name, i, e, convention)
    for _, col in ipairs(en.columns) do
      if seen[col] then fail(2, "indicator set '%s': column '%s' appears twice (use as=)", name, col) end
      seen[col] = true
      set.columns[#set.columns + 1] = col
      if not MARKET_DATA_COLUMNS[col] then all_md = false end
    end
    if en.lookback > set.lookback then set.lookback = en.lookback end
    set.entries[i] = en
  end
  if #set.entries == 0 then fail(2, "indicator set '%s' is empty", name) end
  set.target = spec.target or (all_md and "market_data" or "indicator_values")
  if set.target ~= "market_data" and set.target ~= "indicator_values" then
    fail(2, "indicator set '%s': target must be \"market_data\" or \"indicator_values\"", name)
  end
  if set.target == "market_data" and not all_md then
    fail(2, "indicator set '%s': market_data has no column for every output", name)
  end
  sets[name] = set
  return set
end

function M.get(name) return sets[name] end

function M.list()
  local out = {}
  for name in pairs(sets) do out[#out + 1] = name end
  table.sort(out)
  return out
end

local function resolve(set)
  if type(set) == "string" then
    local s = sets[set]
    if not s then fail(3, "tf.indicators: no set named '%s'", set) end
    return s
  end
  if type(set) ~= "table" or not set.entries then fail(3, "tf.indicators: expected a set or a set name") end
  return set
end

-- SQL for a time bound given as epoch seconds (number) or anything
-- PostgreSQL reads as timestamptz (string).
local function ts_param(v, n)
  if type(v) == "number" then return string.format("to_timestamp($%d::float8)", n) end
  return string.format("$%d::timestamptz", n)
end

--- Runs a set over candles given as a bars table (time/open/high/low/close/
-- volume series, as tf.db.columns returns them). Returns { column = series }.
function M.run(set, bars)
  set = resolve(set)
  local out = {}
  for _, en in ipairs(set.entries) do
    local res = { tf.ind[en.ind](bars, en.params) }
    for k, col in ipairs(en.columns) do out[col] = res[k] end
  end
  return out
end

--- tf.indicators.stream(set [, saved]) -> a stream over a whole set, for a job
-- that keeps values current bar by bar: st:update(bar) takes one bar table
-- (time/open/high/low/close/volume as numbers) and returns { column = value };
-- st:state() returns one binary string (persist it as bytea) that
-- tf.indicators.stream(set, saved) resumes from, in the same build (a state
-- from another layout version is refused: recompute from history then). O(1) per bar per indicator
-- except where docs/indicators.md says O(period).
function M.stream(set, saved)
  set = resolve(set)
  local states = {}
  if saved ~= nil then
    if type(saved) ~= "string" then fail(2, "tf.indicators.stream: saved state must be a string") end
    local pos, n = 1, nil
    n, pos = string.unpack(">I4", saved, pos)
    if n ~= #set.entries then fail(2, "tf.indicators.stream: saved state is for %d indicators, set '%s' has %d",
      n, set.name, #set.entries) end
    for i = 1, n do states[i], pos = string.unpack(">s4", saved, pos) end
  end
  local streams = {}
  for i, en in ipairs(set.entries) do streams[i] = tf.ind.stream(en.ind, en.params, states[i]) end
  local st = {}
  function st.update(_, bar)
    local out = {}
    for i, en in ipairs(set.entries) do
      local r = table.pack(streams[i]:update(bar))
      for k, col in ipairs(en.columns) do out[col] = r[k] end
    end
    return out
  end
  function st.state(_)
    local parts = { string.pack(">I4", #streams) }
    for i = 1, #streams do parts[#parts + 1] = string.pack(">s4", streams[i]:state()) end
    return table.concat(parts)
  end
  function st.bars(_) return streams[1]:bars() end
  return st
end

--- tf.indicators.compute(set, symbol, timeframe, from, to [, opts]) ->
--   { time = series (epoch s), bars = {...}, values = { column = series }, first = i, n = N }
-- Loads the symbol's candles up to `to` (nil: no bound) and computes the set.
-- Indicators with memory (EMA, RSI, ATR, ADX, MACD...) depend on where they
-- start, so by default every stored bar before `from` is loaded as warm-up
-- (the values then equal a run over the whole history); opts.warmup = N
-- loads only N bars before `from` (at least the set's lookback). Rows
-- from index `first` on are the ones in [from, to].
function M.compute(set, symbol, timeframe, from, to, opts)
  set = resolve(set)
  opts = opts or {}
  local args, where = { symbol, timeframe }, { "symbol = $1", "timeframe = $2" }
  if to ~= nil then
    args[#args + 1] = to
    where[#where + 1] = "ts <= " .. ts_param(to, #args)
  end
  local warm = opts.warmup
  if from ~= nil and warm ~= nil then
    if warm < set.lookback then warm = set.lookback end
    args[#args + 1] = from
    local f = ts_param(from, #args)
    args[#args + 1] = math.tointeger(warm) or math.floor(warm)
    -- the warm-up bars: from the N-th bar before `from` (all of them when fewer are stored)
    where[#where + 1] = string.format(
      "ts >= COALESCE((SELECT ts FROM market_data WHERE symbol = $1 AND timeframe = $2 AND ts < %s " ..
      "ORDER BY ts DESC OFFSET ($%d::int - 1) LIMIT 1), '-infinity'::timestamptz)", f, #args)
  end
  local sql = "SELECT extract(epoch FROM ts)::float8 AS time, open::float8 AS open, high::float8 AS high, " ..
    "low::float8 AS low, close::float8 AS close, COALESCE(volume, 0)::float8 AS volume " ..
    "FROM market_data WHERE " .. table.concat(where, " AND ") .. " ORDER BY ts"
  local bars, n = tf.db.columns(sql, table.unpack(args))
  local first = 1
  if from ~= nil then
    local f = from
    if type(f) ~= "number" then
      f = tf.db.query("SELECT extract(epoch FROM $1::timestamptz)::float8 AS t", from)[1].t
    end
    first = n + 1
    for i = 1, n do
      if bars.time[i] >= f then first = i break end
    end
  end
  return {
    time = bars.time, bars = bars, values = M.run(set, bars), first = first, n = n, set = set,
    symbol = symbol, timeframe = timeframe,
  }
end

-- indicator_values is created by sql/011_indicator_values.sql.

-- A PostgreSQL array literal of numbers, NaN as NULL.
local function pg_array(s, i, j)
  local parts = {}
  for k = i, j do
    local v = s[k]
    parts[#parts + 1] = (v ~= v) and "NULL" or string.format("%.17g", v)
  end
  return "{" .. table.concat(parts, ",") .. "}"
end

--- tf.indicators.store(result [, opts]) -> rows written. Writes the rows
-- first..n of a compute() result in one transaction: into market_data's
-- columns (UPDATE of existing candles) for a market_data set, else into
-- indicator_values (one row per bar and column, upserted). opts.chunk: rows
-- per statement (default 2000).
function M.store(res, opts)
  opts = opts or {}
  local set, chunk = res.set, opts.chunk or 2000
  local symbol, timeframe = opts.symbol or res.symbol, opts.timeframe or res.timeframe
  local written = 0
  if res.first > res.n then return 0 end
  tf.db.tx(function()
    for i = res.first, res.n, chunk do
      local j = math.min(i + chunk - 1, res.n)
      local times = pg_array(res.time, i, j)
      if set.target == "market_data" then
        local assign, names, arrays, args = {}, { "t" }, { "$3::float8[]" }, { symbol, timeframe, times }
        for k, col in ipairs(set.columns) do
          args[#args + 1] = pg_array(res.values[col], i, j)
          assign[k] = string.format("%s = u.%s", col, col)
          names[#names + 1] = col
          arrays[#arrays + 1] = string.format("$%d::float8[]", #args)
        end
        local sql = string.format(
          "UPDATE market_data m SET %s FROM unnest(%s) AS u(%s) " ..
          "WHERE m.symbol = $1 AND m.timeframe = $2 AND m.ts = to_timestamp(u.t)",
          table.concat(assign, ", "), table.concat(arrays, ", "), table.concat(names, ", "))
        written = written + tf.db.exec(sql, table.unpack(args))
      else
        for _, col in ipairs(set.columns) do
          written = written + tf.db.exec(
            "INSERT INTO indicator_values (symbol, timeframe, ts, set_name, name, value) " ..
            "SELECT $1, $2, to_timestamp(u.t), $3, $4, u.v FROM unnest($5::float8[], $6::float8[]) AS u(t, v) " ..
            "ON CONFLICT (symbol, timeframe, set_name, name, ts) DO UPDATE SET value = EXCLUDED.value",
            symbol, timeframe, set.name, col, times, pg_array(res.values[col], i, j))
        end
      end
    end
  end)
  return written
end

--- compute then store: the whole job for one symbol and timeframe.
function M.update(set, symbol, timeframe, from, to, opts)
  local res = M.compute(set, symbol, timeframe, from, to, opts)
  res.symbol, res.timeframe = symbol, timeframe
  return M.store(res, opts), res
end

local DOC_HEAD = [[
# Indicators

Generated from the indicator registry (`core/ind/`) by `tf.indicators.docs()`;
regenerate with

    echo 'io.write(tf.indicators.docs())' >/tmp/d.lua && build/tickforge run /tmp/d.lua >docs/indicators.md

(`tests/lua/ind_docs_spec.lua` fails when this file and the registry disagree).

## Conventions

Every indicator takes `convention = "talib"` (the default) or `"mt5"`.

- **talib** follows TA-Lib's default compatibility mode: its lookbacks, its
  seeding (EMA seeded with the SMA of the first period, RSI/ATR/ADX
  Wilder-smoothed), its expressions and its `TA_IS_ZERO` tests (epsilon
  1e-14). Checked against TA-Lib's C code (npm `talib` 1.1.6, TA-Lib 0.6)
  within 1e-9 on realistic and edge series: `tests/fixtures/ind/talib.txt`.
- **mt5** follows the sources of MetaTrader 5's built-in indicators
  (MovingAverages.mqh, RSI.mq5, MACD.mq5, ATR.mq5, BB.mq5, StdDev.mq5,
  Stochastic.mq5, CCI.mq5, MFI.mq5, Momentum.mq5, WPR.mq5, ADX.mq5, DEMA.mq5,
  TEMA.mq5, AMA.mq5, ParabolicSAR.mq5), checked against a line-by-line port of them:
  `tests/fixtures/ind/mt5.txt`. Where MT5 ships no such indicator, or
  computes exactly the same thing, `mt5` falls back to `talib`; the table
  below says which (column *mt5*). Under `mt5`, parameters default to
  MT5's own defaults where they differ (BBANDS/STDDEV 20, MOM/DEMA/TEMA 14,
  KAMA 10).

Deliberate departures from the references, each stated below and in the
fixtures: on a window where every value is equal, CCI is exactly 0, the
BBANDS/STDDEV width exactly 0 and the LINREG slope exactly 0 (TA-Lib and
MetaQuotes' code return rounding noise there: CCI +-66.67 for a constant
1.1, a band width of 1e-5 at 100.1); and ATR's and ADX's Wilder steps
multiply by 1/period where TA-Lib divides (within 1e-15 of TA-Lib), which
keeps the divider off their critical path.

Outputs before the lookback are NaN; a series of at most `lookback` bars is
all NaN (never an error). Flat and degenerate windows have the results given
per indicator below; nothing divides by zero. Inputs must be finite: a NaN
input (a NULL column) stays in rolling sums and makes every later value NaN.

Streaming is O(1) per bar, except where an indicator says O(period) (CCI,
linear regression, and the mt5 forms of BBANDS, STDDEV, MFI and the
Stochastic, which recompute their window as MetaQuotes' code does). Window
extremes (Stochastic, Williams %R, Aroon, Donchian, Ichimoku) are amortised
O(1): the window is rescanned only when its extreme leaves it. A stream's
state is a fixed-size block without pointers; `s:state()` returns it with a
checksum of the parameters and the layout version, so a job can persist it
and resume (a state from a build with another layout is refused, not
misread: recompute from history then).

## Lua

    local rsi = tf.ind.rsi(close, 14)                          -- a tf.series
    local m, signal, hist = tf.ind.macd(close, { 12, 26, 9, convention = "mt5" })
    local atr = tf.ind.atr(bars, { period = 14 })              -- bars: {high=..., low=..., close=...}
    local s = tf.ind.stream("rsi", { period = 14 })            -- O(1) per bar
    local v = s:update(1.0842)   ;  local saved = s:state()    -- resume: tf.ind.stream("rsi", {period = 14}, saved)
    tf.ind.list(), tf.ind.info("rsi"), tf.ind.lookback("macd")

Inputs are tf.series or arrays of numbers (positional, in the order listed
below), or one bars table with named fields (`real` reads `close`, or the
field named by `input = "open"`). Parameters are positional numbers or a
table of named/positional values.

Indicator sets (`tf.indicators`):

    tf.indicators.set("mine", { {"rsi", 14}, {"bbands", 20, 2, 2, as = "bb20"}, convention = "mt5" })
    local res = tf.indicators.compute("mine", "EURUSD", "H1", from, to)   -- res.values.rsi, ...
    tf.indicators.store(res)        -- or tf.indicators.update(set, symbol, tf, from, to)
    local st = tf.indicators.stream("mine")          -- bar by bar, for a job
    local v = st:update({ high = h, low = l, close = c })   -- v.rsi, v.bb20_upper, ...
    local saved = st:state()        -- one string; tf.indicators.stream("mine", saved) resumes

The shipped set `mt5_default` (RSI 14, MACD 12/26/9, ATR 14, BBANDS 20/2/2,
mt5) fills `market_data`'s columns `rsi, macd, macd_signal, macd_hist, atr,
bb_upper, bb_middle, bb_lower`; other sets go to `indicator_values`
(symbol, timeframe, ts, set_name, name, value). Column names: the indicator
name for one output, `prefix_output` otherwise (`bbands` uses prefix `bb`),
`as =` overrides.

## Summary

| name | title | inputs | outputs | lookback | mt5 |
|---|---|---|---|---|---|
]]

local function fmt_num(v)
  if v == math.huge then return "inf" end
  if v >= 3e37 then return "any" end
  if v <= -3e37 then return "any" end
  if math.type(v) == "float" and v == math.floor(v) and math.abs(v) < 1e15 then return string.format("%d", v) end
  return tostring(v)
end

--- Markdown describing every registry entry (docs/indicators.md).
function M.docs()
  local out = { DOC_HEAD }
  local list = tf.ind.list()
  for _, d in ipairs(list) do
    out[#out + 1] = string.format("| [%s](#%s) | %s | %s | %s | %s | %s |\n", d.name, d.name, d.title,
      table.concat(d.inputs, ", "), table.concat(d.outputs, ", "), d.lookback, d.mt5 and "own form" or "= talib")
  end
  for _, d in ipairs(list) do
    out[#out + 1] = string.format("\n### %s\n\n**%s**. Inputs: %s. Outputs: %s. Lookback: %s. mt5: %s.\n\n",
      d.name, d.title, table.concat(d.inputs, ", "), table.concat(d.outputs, ", "), d.lookback,
      d.mt5 and "own form" or "falls back to talib")
    if #d.params > 0 then
      out[#out + 1] = "| parameter | type | default | range | meaning |\n|---|---|---|---|---|\n"
      for _, p in ipairs(d.params) do
        local range = p.choices and table.concat(p.choices, " \\| ") or
          string.format("%s .. %s", fmt_num(p.min), fmt_num(p.max))
        local def = type(p.default) == "number" and fmt_num(p.default) or tostring(p.default)
        if p.default_mt5 then def = def .. " (mt5: " .. fmt_num(p.default_mt5) .. ")" end
        out[#out + 1] = string.format("| %s | %s | %s | %s | %s |\n", p.name, p.type, def, range, p.doc)
      end
      out[#out + 1] = "\n"
    end
    out[#out + 1] = d.doc .. "\n"
  end
  return table.concat(out)
end

-- The shipped default: market_data's columns as MT5 shows them.
M.set("mt5_default", {
  { "rsi", 14 }, { "macd", 12, 26, 9 }, { "atr", 14 }, { "bbands", 20, 2, 2 },
  convention = "mt5",
})

return M
