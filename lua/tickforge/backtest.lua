-- tf.backtest: replays stored bars through a tf.strategy and fills its
-- signals as a broker would, returning a report with MT5 Strategy Tester's
-- figures (docs/backtest.md). The strategy sees, at each bar's close, what
-- the live strategies job would show it: the last `history` bars and the
-- set's stored values, through read-only views that answer nil past the
-- current bar. Values come from tf.indicators.compute (the indicators job's
-- code) and signals from the strategies job's decide(); nothing is copied.
-- Reads the database only; writes nothing.
--
--   local r = tf.backtest.run{ strategy = "rsi_reversal", symbols = { "EURUSD" }, timeframe = "M5",
--                              from = "2025-01-01", to = "2025-10-01", cash = 10000 }
--   print(r.summary.net_profit, #r.trades)
local strategies_job = require("tickforge.jobs.strategies")

local M = {}

local floor, huge, type, sqrt = math.floor, math.huge, type, math.sqrt

M.TF_SECONDS = {
  M1 = 60, M2 = 120, M3 = 180, M4 = 240, M5 = 300, M6 = 360, M10 = 600, M12 = 720, M15 = 900, M20 = 1200,
  M30 = 1800, H1 = 3600, H2 = 7200, H3 = 10800, H4 = 14400, H6 = 21600, H8 = 28800, H12 = 43200,
  D1 = 86400, W1 = 604800, MN1 = 2678400,
}

local function fail(field, fmt, ...)
  error("backtest: " .. field .. ": " .. string.format(fmt, ...), 0)
end
M.fail = fail

-- ---- dates ----

local function days_from_civil(y, m, d)
  if m <= 2 then y = y - 1 end
  local era = (y >= 0 and y or y - 399) // 400
  local yoe = y - era * 400
  local doy = (153 * (m + (m > 2 and -3 or 9)) + 2) // 5 + d - 1
  return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468
end

local MDAYS = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 }

--- parse_time(v, field) -> epoch seconds (UTC) or nil for nil. Takes epoch
-- seconds or "YYYY-MM-DD[(T| )HH:MM[:SS]][Z]" (always UTC); anything else
-- raises naming field.
function M.parse_time(v, field)
  if v == nil then return nil end
  if type(v) == "number" then
    if v ~= v or v == huge or v == -huge then fail(field, "must be a finite number of epoch seconds") end
    return v
  end
  if type(v) ~= "string" then fail(field, "must be a date such as 2025-01-01 or epoch seconds, got a %s", type(v)) end
  local bad = function() fail(field, "'%s' is not a date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM[:SS] (UTC)", v) end
  local y, mo, d, rest = v:match("^(%d%d%d%d)-(%d%d)-(%d%d)(.*)$")
  if not y then
    if v:match("^%-?%d+%.?%d*$") then return tonumber(v) end
    bad()
  end
  y, mo, d = tonumber(y), tonumber(mo), tonumber(d)
  local hh, mm, ss = 0, 0, 0
  if rest ~= "" then
    local h, m, s = rest:match("^[T ](%d%d):(%d%d):(%d%d)Z?$")
    if not h then
      h, m = rest:match("^[T ](%d%d):(%d%d)Z?$")
      s = "0"
    end
    if not h then bad() end
    hh, mm, ss = tonumber(h), tonumber(m), tonumber(s)
  end
  if mo < 1 or mo > 12 or d < 1 or d > MDAYS[mo] or (mo == 2 and d == 29 and not (y % 4 == 0 and (y % 100 ~= 0 or y % 400 == 0)))
    or hh > 23 or mm > 59 or ss > 59 then bad() end
  return days_from_civil(y, mo, d) * 86400 + hh * 3600 + mm * 60 + ss
end

--- iso(epoch) -> "YYYY-MM-DDTHH:MM:SSZ"
function M.iso(t)
  if t == nil or t ~= t then return nil end
  return os.date("!%Y-%m-%dT%H:%M:%SZ", floor(t))
end

-- ---- what the live job sees: market_data columns are NUMERIC(18,8) ----

-- PostgreSQL stores a float8 in NUMERIC(18,8) by printing it with 15
-- significant digits (DBL_DIG) and rounding half away from zero to 8
-- decimals; reading it back as float8 parses that decimal. The exact path:
local function numeric8_exact(v)
  local sign, d1, rest, e = string.format("%.14e", v):match("^(%-?)(%d)%.(%d+)e([-+]%d+)$")
  local digits, keep = d1 .. rest, tonumber(e) + 9 -- digits kept down to 1e-8
  if keep >= #digits then return tonumber(sign .. digits .. "e" .. (tonumber(e) - #digits + 1)) end
  if keep < 0 then return 0.0 end
  local k = keep > 0 and tonumber(digits:sub(1, keep)) or 0
  if tonumber(digits:sub(keep + 1, keep + 1)) >= 5 then k = k + 1 end
  if k == 0 then return 0.0 end
  return tonumber(sign .. k .. "e-8")
end

--- numeric8(v) -> the double the live job reads back after v was stored in
-- a NUMERIC(18,8) column (NaN stays NaN: it is stored as NULL). A fast path
-- in floating point, and the exact decimal path near a rounding tie.
function M.numeric8(v)
  if v ~= v then return v end
  local a = v < 0 and -v or v
  if a >= 1e6 then return numeric8_exact(v) end
  local x = a * 1e8
  local f = floor(x)
  local frac = x - f
  local d = frac - 0.5
  if d < 0 then d = -d end
  if d <= x * 4e-14 + 1e-7 then return numeric8_exact(v) end -- a tie, or the 15-digit step may decide it
  if frac > 0.5 then f = f + 1 end
  if f == 0 then return 0.0 end
  return (v < 0 and -f or f) / 1e8
end
M.numeric8_exact = numeric8_exact

-- ---- read-only windows over the loaded columns ----

-- Views over columns of one symbol: view[k] for 1 <= k <= n is
-- data[base + k]; anything else is nil, so a strategy cannot read past the
-- bar it is called on. set_at(j, n) moves the window to end at bar j. A
-- column becomes a Lua table (rounded by `round` if given) the first time a
-- strategy reads it: table reads are the hot path of a replay.
local function make_views(res, set, round, store)
  local base, n = 0, 0
  store = store or {}
  local function view(name, series, rnd)
    local p, mt, methods, data = {}, {}, {}, store[name]
    local function load()
      data = series:totable()
      if rnd then
        for k = 1, #series do data[k] = rnd(data[k]) end
      end
      store[name] = data
      return data
    end
    mt.__index = function(_, k)
      if type(k) == "number" then
        if k >= 1 and k <= n then return (data or load())[base + k] end
        return nil
      end
      return methods[k]
    end
    mt.__len = function() return n end
    mt.__newindex = function() error("backtest: a strategy's bars and values are read-only", 2) end
    mt.__tostring = function() return "tf.series(" .. n .. ", backtest view)" end
    function methods.len() return n end
    function methods.last(_, k)
      k = k or 1
      if k >= 1 and k <= n then return p[n - k + 1] end
      return nil
    end
    function methods.slice(_, i, j)
      i, j = i or 1, j or -1
      if i < 0 then i = n + i + 1 end
      if j < 0 then j = n + j + 1 end
      if i < 1 then i = 1 end
      if j > n then j = n end
      local s = tf.series.new(j >= i and j - i + 1 or 0)
      for k = i, j do s[k - i + 1] = p[k] end
      return s
    end
    function methods.copy() return methods.slice(p, 1, n) end
    function methods.totable(_, nan_as_nil)
      local t = {}
      for k = 1, n do
        local v = p[k]
        if not (nan_as_nil and v ~= v) then t[k] = v end
      end
      return t
    end
    return setmetatable(p, mt)
  end
  local bars, values = {}, {}
  for _, k in ipairs({ "time", "open", "high", "low", "close", "volume" }) do bars[k] = view("bars." .. k, res.bars[k]) end
  for _, col in ipairs(set.columns) do values[col] = view("values." .. col, res.values[col], round) end
  return bars, tf.strategy.values(set, values), function(j, nn) base, n = j - nn, nn end
end
M.make_views = make_views

-- ---- options ----

local DEFAULTS = {
  cash = 10000, commission = 0, slippage = 0, point = 0.00001, lot = 0.1, lot_step = 0.01,
  contract = 100000, sizing = "fixed", mode = "netting", spread_unit = "auto", curve_points = 2000,
}

local function number_opt(o, k, min, max)
  local v = o[k]
  if v == nil then return DEFAULTS[k] end
  if type(v) == "string" and tonumber(v) then v = tonumber(v) end
  if type(v) ~= "number" or v ~= v or v < min or v > max then
    fail(k, "must be a number in %s..%s, got %s", tostring(min), tostring(max), tostring(o[k]))
  end
  return v
end

local function choice_opt(o, k, choices)
  local v = o[k]
  if v == nil then return DEFAULTS[k] end
  for _, c in ipairs(choices) do if v == c then return v end end
  fail(k, "must be %s, got %s", table.concat(choices, " or "), tostring(v))
end

--- options(opts) -> the checked settings, or raises "backtest: FIELD: why".
function M.options(opts)
  if type(opts) ~= "table" then fail("options", "tf.backtest.run takes one table of options") end
  local st = opts.strategy
  if type(st) == "string" then
    local found = tf.strategy.get(st)
    if not found then
      local names = {}
      for i, s in ipairs(tf.strategy.list()) do names[i] = s.name end
      fail("strategy", "no strategy named '%s' (registered: %s)", st, #names > 0 and table.concat(names, ", ") or "none")
    end
    st = found
  elseif type(st) ~= "table" or type(st.fn) ~= "function" or type(st.name) ~= "string" then
    fail("strategy", "must be a strategy name or a table from tf.strategy.get, got %s", type(st))
  end
  local o = { strategy = st }
  local symbols = opts.symbols or opts.symbol or st.symbols
  if type(symbols) == "string" then symbols = { symbols } end
  if type(symbols) ~= "table" or #symbols == 0 then fail("symbols", "must be a non-empty list of symbols") end
  for i, s in ipairs(symbols) do
    if type(s) ~= "string" or s == "" or #s > 64 then fail("symbols", "entry %d must be a symbol of 1..64 characters", i) end
  end
  o.symbols = symbols
  o.timeframe = opts.timeframe or st.timeframe
  if not M.TF_SECONDS[o.timeframe] then fail("timeframe", "'%s' is not an MT5 timeframe (M1 .. MN1)", tostring(o.timeframe)) end
  o.set = opts.set or st.set
  if type(o.set) ~= "string" or not tf.indicators.get(o.set) then
    fail("set", "no indicator set named '%s' (known: %s)", tostring(o.set), table.concat(tf.indicators.list(), ", "))
  end
  o.from, o.to = M.parse_time(opts.from, "from"), M.parse_time(opts.to, "to")
  if o.from and o.to and o.from > o.to then fail("to", "is before from") end
  o.history = opts.history or st.history or 200
  if math.type(o.history) ~= "integer" or o.history < 1 or o.history > 100000 then
    fail("history", "must be an integer in 1..100000")
  end
  local params = {}
  for k, v in pairs(st.params or {}) do params[k] = v end
  for k, v in pairs(opts.params or {}) do
    if st.params == nil or st.params[k] == nil then
      local known = {}
      for name in pairs(st.params or {}) do known[#known + 1] = name end
      table.sort(known)
      fail("params", "strategy '%s' has no parameter '%s' (it declares: %s)", st.name, tostring(k),
        #known > 0 and table.concat(known, ", ") or "none")
    end
    if type(v) == "string" then v = tonumber(v) end
    if type(v) ~= "number" or v ~= v then fail("params", "%s must be a number, got %s", tostring(k), tostring(opts.params[k])) end
    params[k] = v
  end
  o.params = params
  o.cash = number_opt(opts, "cash", 1e-6, 1e15)
  o.commission = number_opt(opts, "commission", 0, 1e9)
  o.slippage = number_opt(opts, "slippage", 0, 1e9)
  o.point = number_opt(opts, "point", 1e-12, 1e6)
  o.lot = number_opt(opts, "lot", 1e-6, 1e6)
  o.lot_step = number_opt(opts, "lot_step", 1e-6, 1e6)
  o.contract = number_opt(opts, "contract", 1e-9, 1e12)
  o.curve_points = floor(number_opt(opts, "curve_points", 2, 1e6))
  if opts.spread ~= nil then o.spread = number_opt(opts, "spread", 0, 1e9) end
  o.sizing = choice_opt(opts, "sizing", { "fixed", "strength" })
  o.mode = choice_opt(opts, "mode", { "netting", "hedging" })
  o.spread_unit = choice_opt(opts, "spread_unit", { "auto", "points", "price" })
  o.now = opts.now or os.time()
  return o
end

-- ---- loading ----

local SPREAD_SQL = [[
SELECT COALESCE(spread, 0)::float8 AS spread FROM market_data
 WHERE symbol = $1 AND timeframe = $2 AND ts >= to_timestamp($3::float8) AND ts <= to_timestamp($4::float8)
 ORDER BY ts]]

-- The bars of one symbol up to `to`, every one before `from` as warm-up, the
-- set computed over them (tf.indicators.compute: the live job's code), and
-- the stored spread of the bars replayed (when no spread is configured).
local function load(o, symbol)
  local res = tf.indicators.compute(o.set, symbol, o.timeframe, o.from, o.to)
  local sym = { symbol = symbol, res = res, first = res.first, N = res.n, store = {} }
  if o.spread == nil and res.first <= res.n then
    local cols, n = tf.db.columns(SPREAD_SQL, symbol, o.timeframe, res.time[res.first], res.time[res.n])
    if n ~= res.n - res.first + 1 then
      error(string.format("backtest: the bars of %s %s changed while they were read; run it again", symbol, o.timeframe), 0)
    end
    sym.spread = cols.spread
  end
  return sym
end

-- ---- the run ----

local function round_lot(v, step)
  local k = floor(v / step + 1e-9)
  if k < 1 then k = 1 end
  return tonumber(string.format("%.8f", k * step))
end

--- run(opts [, cache]) -> report (see docs/backtest.md). Raises "backtest:
-- FIELD: why" on a bad option and the strategy's own error (with its bar)
-- when it fails. cache: a table kept between runs that differ only in
-- params, money or fill settings (a sweep): the bars and the set's values
-- are then read and computed once.
function M.run(opts, cache)
  local t_start = os.clock()
  local o = M.options(opts)
  local st, contract, slip, point = o.strategy, o.contract, o.slippage * o.point, o.point
  local set = tf.indicators.get(o.set)
  local round = set.target == "market_data" and M.numeric8 or nil
  local tfsec = M.TF_SECONDS[o.timeframe]
  local fixed_half = o.spread and o.spread * point / 2
  local unit = o.spread_unit
  local commission = o.commission
  local decide = strategies_job.decide

  local syms, total = {}, 0
  for i, symbol in ipairs(o.symbols) do
    local key = table.concat({ symbol, o.timeframe, o.set, tostring(o.from), tostring(o.to), tostring(o.spread == nil) }, "|")
    local L = cache and cache[key] or load(o, symbol)
    if cache then cache[key] = L end
    local S = { symbol = symbol, res = L.res, first = L.first, N = L.N, spread = L.spread }
    S.bars, S.values, S.set_at = make_views(S.res, set, round, L.store)
    S.s = { strategy = st.name, symbol = symbol, timeframe = o.timeframe, n = 0, time = 0,
            bars = S.bars, values = S.values, params = o.params, backtest = true }
    S.j = S.first
    S.unreal = 0
    S.positions = {}
    syms[i] = S
    if S.N >= S.first then total = total + (S.N - S.first + 1) end
  end

  local balance, cash = o.cash, o.cash
  local trades, signals, next_id = {}, {}, 0
  local curve = { time = {}, equity = {}, balance = {} }
  local t0 = huge
  for _, S in ipairs(syms) do
    if S.N >= S.first and S.res.time[S.first] < t0 then t0 = S.res.time[S.first] end
  end
  local balance_curve = { { time = t0 < huge and t0 or o.from, balance = balance } }
  local step = math.max(1, math.ceil(total / o.curve_points))
  local peak, maxdd, maxdd_pct, min_equity = cash, 0, 0, cash
  local bpeak, bmaxdd, bmaxdd_pct = cash, 0, 0
  local ignored, processed = 0, 0

  -- half the spread of bar j of S, in price
  local function half_spread(S, j)
    if fixed_half then return fixed_half end
    local v = S.spread[j - S.first + 1]
    if v ~= v or v <= 0 then return 0 end
    if unit == "points" or (unit == "auto" and v >= 1 and v == floor(v)) then return v * point / 2 end
    return v / 2
  end

  local function close_position(S, p, t, price, reason)
    local dir = p.side == "buy" and 1 or -1
    local profit = dir * (price - p.entry_price) * p.volume * contract
    local comm_exit = commission * p.volume
    balance = balance + profit - comm_exit
    local net = profit - p.commission - comm_exit
    local tr = {
      id = p.id, symbol = S.symbol, side = p.side, volume = p.volume,
      signal_time = p.signal_time, entry_time = p.entry_time, entry_price = p.entry_price,
      exit_time = t, exit_price = price, exit_reason = reason, stop = p.stop, target = p.target,
      profit = profit, commission = p.commission + comm_exit, net = net, balance = balance, comment = p.comment,
    }
    trades[#trades + 1] = tr
    balance_curve[#balance_curve + 1] = { time = t, balance = balance }
    if balance > bpeak then bpeak = balance end
    local dd = bpeak - balance
    if dd > bmaxdd then bmaxdd = dd end
    if bpeak > 0 and dd / bpeak * 100 > bmaxdd_pct then bmaxdd_pct = dd / bpeak * 100 end
  end

  local function close_all(S, t, o_mid, half, reason, only_side)
    local keep = {}
    for _, p in ipairs(S.positions) do
      if only_side == nil or p.side == only_side then
        local price = p.side == "buy" and o_mid - half - slip or o_mid + half + slip
        close_position(S, p, t, price, reason)
      else
        keep[#keep + 1] = p
      end
    end
    S.positions = keep
  end

  local function open_position(S, sig, j, half)
    local vol = o.lot
    if o.sizing == "strength" and sig.strength then vol = round_lot(o.lot * sig.strength, o.lot_step) end
    local op = S.res.bars.open[j]
    local price = sig.side == "buy" and op + half + slip or op - half - slip
    next_id = next_id + 1
    local comm = commission * vol
    balance = balance - comm
    S.positions[#S.positions + 1] = {
      id = next_id, side = sig.side, volume = vol, entry_time = S.res.time[j], entry_price = price,
      stop = sig.stop, target = sig.target, signal_time = sig.time, comment = sig.comment, commission = comm,
    }
  end

  -- signals from the previous bar, at bar j's open
  local function execute(S, sigs, j)
    local t, op, half = S.res.time[j], S.res.bars.open[j], half_spread(S, j)
    for _, sig in ipairs(sigs) do
      if sig.side == "close" then
        close_all(S, t, op, half, "signal")
      elseif o.mode == "hedging" then
        open_position(S, sig, j, half)
      else
        local cur = S.positions[1]
        if cur and cur.side == sig.side then
          ignored = ignored + 1
        else
          if cur then close_all(S, t, op, half, "reverse") end
          open_position(S, sig, j, half)
        end
      end
    end
  end

  -- stops and targets against bar j's range; both touched: the stop
  local function check_exits(S, j)
    local b = S.res.bars
    local op, hi, lo = b.open[j], b.high[j], b.low[j]
    local keep, half, t = nil, nil, S.res.time[j]
    for k, p in ipairs(S.positions) do
      local price, reason
      if p.side == "buy" then
        if p.stop and lo <= p.stop then
          half = half or half_spread(S, j)
          price, reason = (op <= p.stop and op or p.stop) - half - slip, "stop"
        elseif p.target and hi >= p.target then
          price, reason = op >= p.target and op or p.target, "target"
        end
      else
        if p.stop and hi >= p.stop then
          half = half or half_spread(S, j)
          price, reason = (op >= p.stop and op or p.stop) + half + slip, "stop"
        elseif p.target and lo <= p.target then
          price, reason = op <= p.target and op or p.target, "target"
        end
      end
      if price then
        if not keep then
          keep = {}
          for i = 1, k - 1 do keep[i] = S.positions[i] end
        end
        close_position(S, p, t, price, reason)
      elseif keep then
        keep[#keep + 1] = p
      end
    end
    if keep then S.positions = keep end
  end

  local function mark(S, j)
    local u = 0
    if #S.positions > 0 then
      local c, half = S.res.bars.close[j], half_spread(S, j)
      for _, p in ipairs(S.positions) do
        if p.side == "buy" then u = u + (c - half - p.entry_price) * p.volume * contract
        else u = u - (c + half - p.entry_price) * p.volume * contract end
      end
    end
    S.unreal = u
  end

  local nsyms = #syms
  while true do
    -- the symbol whose next bar is the oldest
    local S
    if nsyms == 1 then
      S = syms[1]
      if S.j > S.N then break end
    else
      local bt = huge
      for _, X in ipairs(syms) do
        if X.j <= X.N and X.res.time[X.j] < bt then S, bt = X, X.res.time[X.j] end
      end
      if not S then break end
    end
    local j = S.j
    S.j = j + 1
    local time = S.res.time[j]
    if S.pending then
      local sigs = S.pending
      S.pending = nil
      execute(S, sigs, j)
    end
    if #S.positions > 0 then check_exits(S, j) end
    -- the strategy at this bar's close, unless it is the newest and still forming
    if not (j == S.N and time + tfsec > o.now) then
      local n = j < o.history and j or o.history
      S.set_at(j, n)
      local s = S.s
      s.n, s.time = n, time
      local ok, sigs = pcall(decide, st, s, S.res.bars.close[j])
      if not ok then
        error(string.format("backtest: strategy '%s' failed on %s at %s: %s", st.name, S.symbol, M.iso(time),
          tostring(sigs)), 0)
      end
      if #sigs > 0 then
        for _, sig in ipairs(sigs) do
          sig.time = time
          signals[#signals + 1] = { time = time, symbol = S.symbol, side = sig.side, strength = sig.strength,
                                    price = sig.price, stop = sig.stop, target = sig.target, comment = sig.comment }
        end
        S.pending = sigs
      end
    end
    mark(S, j)
    local equity = balance
    if nsyms == 1 then equity = equity + S.unreal
    else for _, X in ipairs(syms) do equity = equity + X.unreal end end
    if equity > peak then peak = equity end
    local dd = peak - equity
    if dd > maxdd then maxdd = dd end
    if peak > 0 and dd / peak * 100 > maxdd_pct then maxdd_pct = dd / peak * 100 end
    if equity < min_equity then min_equity = equity end
    processed = processed + 1
    if processed % step == 0 or processed == total then
      local k = #curve.time + 1
      curve.time[k], curve.equity[k], curve.balance[k] = time, equity, balance
    end
  end
  -- the end of the test closes what is open, at the last bar's close
  for _, S in ipairs(syms) do
    if #S.positions > 0 then
      local j = S.j - 1
      close_all(S, S.res.time[j], S.res.bars.close[j], half_spread(S, j), "end")
      S.unreal = 0
    end
  end
  if #curve.time > 0 then
    local k = #curve.time
    curve.balance[k], curve.equity[k] = balance, balance
  end

  local report = M.summarise(o, trades, {
    maxdd = maxdd, maxdd_pct = maxdd_pct, min_equity = min_equity, bmaxdd = bmaxdd, bmaxdd_pct = bmaxdd_pct,
    balance = balance,
  })
  report.bars, report.ignored_signals = processed, ignored
  report.signals = signals
  report.curve = curve
  report.balance_curve = balance_curve
  report.elapsed_s = os.clock() - t_start
  return report
end

-- ---- figures ----

--- summarise(o, trades, acc) -> the report table (summary figures defined
-- in docs/backtest.md).
function M.summarise(o, trades, acc)
  local gp, gl, wins, losses, longs, shorts = 0, 0, 0, 0, 0, 0
  local lw, ll, comm = 0, 0, 0
  local cw, cl, cwm, clm, maxcw, maxcl, maxcwm, maxclm = 0, 0, 0, 0, 0, 0, 0, 0
  local sum_net = 0
  for _, tr in ipairs(trades) do
    local net = tr.net
    comm = comm + tr.commission
    if tr.side == "buy" then longs = longs + 1 else shorts = shorts + 1 end
    if net > 0 then
      gp, wins = gp + net, wins + 1
      if net > lw then lw = net end
      cw, cwm, cl, clm = cw + 1, cwm + net, 0, 0
      if cw > maxcw then maxcw, maxcwm = cw, cwm end
    elseif net < 0 then
      gl, losses = gl + net, losses + 1
      if net < ll then ll = net end
      cl, clm, cw, cwm = cl + 1, clm + net, 0, 0
      if cl > maxcl then maxcl, maxclm = cl, clm end
    else
      cw, cwm, cl, clm = 0, 0, 0, 0
    end
    sum_net = sum_net + net
  end
  local n = #trades
  local net_profit = acc.balance - o.cash
  local sharpe = 0
  if n >= 2 then
    local mean, var = sum_net / n, 0
    for i = 1, n do var = var + (trades[i].net - mean) ^ 2 end
    local sd = sqrt(var / (n - 1))
    sharpe = sd > 0 and mean / sd or 0
  end
  local summary = {
    initial_deposit = o.cash,
    net_profit = net_profit,
    gross_profit = gp,
    gross_loss = gl,
    profit_factor = gl < 0 and gp / -gl or (gp > 0 and huge or 0),
    expected_payoff = n > 0 and net_profit / n or 0,
    drawdown_absolute = acc.min_equity < o.cash and o.cash - acc.min_equity or 0,
    max_drawdown = acc.maxdd,
    max_drawdown_pct = acc.maxdd_pct,
    balance_max_drawdown = acc.bmaxdd,
    balance_max_drawdown_pct = acc.bmaxdd_pct,
    recovery_factor = acc.maxdd > 0 and net_profit / acc.maxdd or (net_profit > 0 and huge or 0),
    sharpe_ratio = sharpe,
    trades = n,
    long_trades = longs,
    short_trades = shorts,
    wins = wins,
    losses = losses,
    win_rate = n > 0 and wins / n * 100 or 0,
    largest_win = lw,
    largest_loss = ll,
    average_win = wins > 0 and gp / wins or 0,
    average_loss = losses > 0 and gl / losses or 0,
    max_consecutive_wins = maxcw,
    max_consecutive_wins_money = maxcwm,
    max_consecutive_losses = maxcl,
    max_consecutive_losses_money = maxclm,
    commission = comm,
    final_balance = acc.balance,
  }
  return {
    ok = true,
    strategy = o.strategy.name, symbols = o.symbols, timeframe = o.timeframe, set = o.set,
    from = M.iso(o.from), to = M.iso(o.to), params = o.params,
    settings = { cash = o.cash, commission = o.commission, slippage = o.slippage, spread = o.spread,
                 spread_unit = o.spread_unit, point = o.point, lot = o.lot, lot_step = o.lot_step, sizing = o.sizing,
                 contract = o.contract, mode = o.mode, history = o.history },
    summary = summary,
    trades = trades,
  }
end

--- The summary figures in the order MT5's report shows them, with labels
-- (the CLI table, the HTML page and the docs use this list).
M.FIGURES = {
  { "initial_deposit", "Initial deposit" }, { "net_profit", "Total net profit" },
  { "gross_profit", "Gross profit" }, { "gross_loss", "Gross loss" }, { "profit_factor", "Profit factor" },
  { "expected_payoff", "Expected payoff" }, { "recovery_factor", "Recovery factor" },
  { "sharpe_ratio", "Sharpe ratio" }, { "drawdown_absolute", "Equity drawdown absolute" },
  { "max_drawdown", "Equity drawdown maximal" }, { "max_drawdown_pct", "Equity drawdown relative %" },
  { "balance_max_drawdown", "Balance drawdown maximal" }, { "balance_max_drawdown_pct", "Balance drawdown relative %" },
  { "trades", "Total trades" }, { "long_trades", "Long trades" }, { "short_trades", "Short trades" },
  { "wins", "Profit trades" }, { "losses", "Loss trades" }, { "win_rate", "Win rate %" },
  { "largest_win", "Largest profit trade" }, { "largest_loss", "Largest loss trade" },
  { "average_win", "Average profit trade" }, { "average_loss", "Average loss trade" },
  { "max_consecutive_wins", "Max consecutive wins" }, { "max_consecutive_wins_money", "Max consecutive wins ($)" },
  { "max_consecutive_losses", "Max consecutive losses" },
  { "max_consecutive_losses_money", "Max consecutive losses ($)" }, { "commission", "Commission" },
  { "final_balance", "Final balance" },
}

--- to_json(report) -> JSON text with stable key order and [] for empty lists.
function M.to_json(r)
  tf.json.array(r.trades)
  tf.json.array(r.signals or {})
  tf.json.array(r.symbols)
  local keys = {}
  for i, f in ipairs(M.FIGURES) do keys[i] = f[1] end
  tf.json.order(r.summary, keys)
  local tkeys = { "id", "symbol", "side", "volume", "signal_time", "entry_time", "entry_price", "exit_time", "exit_price",
                  "exit_reason", "stop", "target", "profit", "commission", "net", "balance", "comment" }
  for _, t in ipairs(r.trades) do tf.json.order(t, tkeys) end
  tf.json.order(r.settings, { "cash", "commission", "slippage", "spread", "spread_unit", "point", "lot", "lot_step",
                              "sizing", "contract", "mode", "history" })
  tf.json.order(r, { "ok", "strategy", "symbols", "timeframe", "set", "from", "to", "params", "settings", "bars",
    "summary", "trades", "signals", "curve", "balance_curve" })
  return tf.json.encode(r)
end

return M
