-- `tickforge export`: a dataset for Python (what the old stack's
-- prepare_dataset.py built by hand) as CSV: one row per stored bar in
-- [from, to] with its OHLCV and spread, the indicator set's values exactly
-- as a strategy sees them (tf.backtest's views: full-history warm-up, and
-- market_data's NUMERIC(18,8) rounding for sets stored there), and
-- forward-return labels. Parquet: Debian 12 packages no Parquet library, so
-- CSV only (docs/backtest.md). Exit 0 done, 1 failed, 2 bad arguments.
local common = require("tickforge.cli.common")
local bt = require("tickforge.backtest")

local USAGE = [==[
usage: tickforge export [--config FILE] --symbol S --timeframe TF [options]

Writes stored bars, an indicator set's values and forward-return labels as
CSV (header row; times in UTC ISO 8601; empty cell = no value).

  --symbol S[,S...]   symbols (repeatable), rows grouped by symbol
  --timeframe TF      M1 .. MN1
  --set NAME          indicator set (default: mt5_default)
  --from D, --to D    range, YYYY-MM-DD[THH:MM[:SS]] UTC, inclusive (default: all)
  --label L           a label column (repeatable): ret_fwd_N = close[t+N] / close[t] - 1,
                      logret_fwd_N = ln(close[t+N] / close[t]); empty for the last N bars
  --out FILE          output file (default: standard output)
  --format csv        the only format (Parquet: no library in Debian 12, see docs/backtest.md)
]==]

local SPEC = { symbol = "multi", timeframe = "string", set = "string", from = "string", to = "string",
               label = "multi", out = "string", format = "string", help = "flag" }

local SPREAD_SQL = [[
SELECT COALESCE(spread::float8, 'NaN') AS spread FROM market_data
 WHERE symbol = $1 AND timeframe = $2 AND ts >= to_timestamp($3::float8) AND ts <= to_timestamp($4::float8)
 ORDER BY ts]]

-- The shortest text that reads back as the same double.
local function cell(v)
  if v == nil or v ~= v then return "" end
  local s = string.format("%.15g", v)
  if tonumber(s) ~= v then
    s = string.format("%.16g", v)
    if tonumber(s) ~= v then s = string.format("%.17g", v) end
  end
  return s
end

local function main(...)
  local o, pos = common.parse({ ... }, SPEC)
  if o.help then
    io.write(USAGE)
    return 0
  end
  if #pos > 0 then common.usage_error("unexpected argument '%s' (see --help)", pos[1]) end
  local symbols = common.list(o.symbol)
  if #symbols == 0 then common.usage_error("--symbol is required") end
  if not o.timeframe then common.usage_error("--timeframe is required") end
  if not bt.TF_SECONDS[o.timeframe] then common.usage_error("timeframe: '%s' is not an MT5 timeframe (M1 .. MN1)", o.timeframe) end
  if o.format and o.format ~= "csv" then
    common.usage_error("--format: '%s' is not available; CSV only (Debian 12 packages no Parquet library: " ..
      "convert with pandas, pd.read_csv(f).to_parquet(...))", o.format)
  end
  for _, e in ipairs(common.load_plugins()) do io.stderr:write("tickforge export: warning: plugin: " .. e .. "\n") end
  local set_name = o.set or "mt5_default"
  local set = tf.indicators.get(set_name)
  if not set then common.usage_error("set: no indicator set named '%s' (known: %s)", set_name, table.concat(tf.indicators.list(), ", ")) end
  local ok, from = pcall(bt.parse_time, o.from, "from")
  if not ok then common.usage_error("%s", tostring(from):gsub("^backtest: ", "")) end
  local to
  ok, to = pcall(bt.parse_time, o.to, "to")
  if not ok then common.usage_error("%s", tostring(to):gsub("^backtest: ", "")) end
  local labels = {}
  for _, l in ipairs(o.label or {}) do
    local kind, n = l:match("^(%a+)_fwd_(%d+)$")
    n = tonumber(n)
    if not (kind == "ret" or kind == "logret") or not n or n < 1 or n > 100000 then
      common.usage_error("--label: '%s' is not ret_fwd_N or logret_fwd_N (N in 1..100000)", l)
    end
    labels[#labels + 1] = { name = l, log = kind == "logret", n = math.tointeger(n) }
  end
  local round = set.target == "market_data" and bt.numeric8 or function(v) return v end
  local out = io.stdout
  if o.out then
    local err
    out, err = io.open(o.out, "w")
    if not out then error(string.format("cannot write %s: %s", o.out, tostring(err)), 0) end
  end
  local head = { "time", "symbol", "timeframe", "open", "high", "low", "close", "volume", "spread" }
  for _, c in ipairs(set.columns) do head[#head + 1] = c end
  for _, l in ipairs(labels) do head[#head + 1] = l.name end
  out:write(table.concat(head, ","), "\n")
  local rows = 0
  for _, symbol in ipairs(symbols) do
    local res = tf.indicators.compute(set, symbol, o.timeframe, from, to)
    local b, n = res.bars, res.n
    local spread
    if res.first <= n then
      local cols, m = tf.db.columns(SPREAD_SQL, symbol, o.timeframe, res.time[res.first], res.time[n])
      if m ~= n - res.first + 1 then error("the bars of " .. symbol .. " changed while they were read; run it again", 0) end
      spread = cols.spread
    end
    local buf = {}
    for i = res.first, n do
      local line = { bt.iso(b.time[i]), symbol, o.timeframe, cell(b.open[i]), cell(b.high[i]), cell(b.low[i]),
                     cell(b.close[i]), cell(b.volume[i]), cell(spread[i - res.first + 1]) }
      for _, c in ipairs(set.columns) do line[#line + 1] = cell(round(res.values[c][i])) end
      for _, l in ipairs(labels) do
        local j = i + l.n
        local v
        if j <= n then
          v = b.close[j] / b.close[i]
          v = l.log and math.log(v) or v - 1
        end
        line[#line + 1] = cell(v)
      end
      buf[#buf + 1] = table.concat(line, ",")
      if #buf == 10000 then
        out:write(table.concat(buf, "\n"), "\n")
        buf = {}
      end
      rows = rows + 1
    end
    if #buf > 0 then out:write(table.concat(buf, "\n"), "\n") end
  end
  if o.out then
    out:close()
    io.stderr:write(string.format("tickforge export: %d rows to %s\n", rows, o.out))
  end
  return 0
end

return function(...) return common.run(main, "export", ...) end
