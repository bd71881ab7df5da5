-- tf.backtest against real PostgreSQL with stored bars: an SMA crossover with
-- stop and target equals a plainly written reference loop trade for trade;
-- a strategy cannot read past its bar; the live strategies job and the
-- backtest emit the same signals on the same bars; values stored in
-- market_data's NUMERIC columns are reproduced bit for bit.
local S = require("tests.lua.jobs_support")
local bt = require("tickforge.backtest")
local job = require("tickforge.jobs.strategies")

local M5 = 300
local T0 = 1735689600 -- 2025-01-01T00:00:00Z

-- A fixed series: two sines, prices with 5 decimals, a spread of 2 pips
-- stored as a price difference, every 40th bar opening with a gap.
local function fixed_series(symbol, n)
  tf.db.exec([[
    WITH c AS (SELECT i, round((1.1 + 0.01 * sin(i / 15.0) + 0.002 * sin(i / 3.7))::numeric, 5) AS close
                 FROM generate_series(0, $3::int - 1) i),
         b AS (SELECT i, close, COALESCE(lag(close) OVER (ORDER BY i), close)
                      + CASE WHEN i % 40 = 39 THEN 0.0015 ELSE 0 END AS open FROM c)
    INSERT INTO market_data (symbol, timeframe, ts, open, high, low, close, volume, spread)
    SELECT $1, 'M5', to_timestamp($2::float8 + i * 300), open, greatest(open, close) + 0.0008,
           least(open, close) - 0.0008, close, 100, 0.0002 FROM b]], symbol, T0, n)
end

-- The reference: plain loops over plain rows, written from docs/backtest.md.
local function reference(symbol, from, to, p)
  local rows = tf.db.query([[SELECT extract(epoch FROM ts)::float8 AS t, open::float8 AS o, high::float8 AS h,
    low::float8 AS l, close::float8 AS c, spread::float8 AS sp FROM market_data
    WHERE symbol = $1 AND timeframe = 'M5' AND ts <= to_timestamp($2) ORDER BY ts]], symbol, to)
  local function sma(i, len)
    if i < len then return nil end
    local sum = 0
    for k = i - len + 1, i do sum = sum + rows[k].c end
    return sum / len
  end
  local slip = p.slippage * 0.00001
  local cash, balance = p.cash, p.cash
  local pos, pending, trades = nil, nil, {}
  local peak, maxdd, maxdd_pct, min_eq = cash, 0, 0, cash
  local function close_pos(t, price, reason)
    local dir = pos.side == "buy" and 1 or -1
    local profit = dir * (price - pos.entry) * p.lot * 100000
    balance = balance + profit - p.commission * p.lot
    trades[#trades + 1] = { side = pos.side, entry_time = pos.t, entry_price = pos.entry, exit_time = t,
      exit_price = price, exit_reason = reason, net = profit - 2 * p.commission * p.lot }
    pos = nil
  end
  for i, r in ipairs(rows) do
    if r.t >= from then
      local half = r.sp / 2
      if pending then
        if pos and pos.side ~= pending.side then close_pos(r.t, pos.side == "buy" and r.o - half - slip or r.o + half + slip, "reverse") end
        if not pos then
          pos = { side = pending.side, t = r.t, stop = pending.stop, target = pending.target,
                  entry = pending.side == "buy" and r.o + half + slip or r.o - half - slip }
          balance = balance - p.commission * p.lot
        end
        pending = nil
      end
      if pos then
        if pos.side == "buy" then
          if r.l <= pos.stop then close_pos(r.t, math.min(r.o, pos.stop) - half - slip, "stop")
          elseif r.h >= pos.target then close_pos(r.t, math.max(r.o, pos.target), "target") end
        else
          if r.h >= pos.stop then close_pos(r.t, math.max(r.o, pos.stop) + half + slip, "stop")
          elseif r.l <= pos.target then close_pos(r.t, math.min(r.o, pos.target), "target") end
        end
      end
      local f1, s1, f0, s0 = sma(i, 5), sma(i, 20), sma(i - 1, 5), sma(i - 1, 20)
      if f1 and s1 and f0 and s0 then
        if f0 <= s0 and f1 > s1 then pending = { side = "buy", stop = r.c - 0.003, target = r.c + 0.004 }
        elseif f0 >= s0 and f1 < s1 then pending = { side = "sell", stop = r.c + 0.003, target = r.c - 0.004 } end
      end
      local eq = balance
      if pos then
        eq = balance + (pos.side == "buy" and (r.c - half - pos.entry) or -(r.c + half - pos.entry)) * p.lot * 100000
      end
      peak = math.max(peak, eq)
      maxdd = math.max(maxdd, peak - eq)
      maxdd_pct = math.max(maxdd_pct, (peak - eq) / peak * 100)
      min_eq = math.min(min_eq, eq)
    end
  end
  if pos then
    local r = rows[#rows]
    close_pos(r.t, pos.side == "buy" and r.c - r.sp / 2 - slip or r.c + r.sp / 2 + slip, "end")
  end
  local f = { trades = #trades, gross_profit = 0, gross_loss = 0, wins = 0, losses = 0, largest_win = 0, largest_loss = 0 }
  local run_w, run_l = 0, 0
  f.max_consecutive_wins, f.max_consecutive_losses = 0, 0
  for _, tr in ipairs(trades) do
    if tr.net > 0 then
      f.gross_profit, f.wins, run_w, run_l = f.gross_profit + tr.net, f.wins + 1, run_w + 1, 0
      f.largest_win = math.max(f.largest_win, tr.net)
    elseif tr.net < 0 then
      f.gross_loss, f.losses, run_l, run_w = f.gross_loss + tr.net, f.losses + 1, run_l + 1, 0
      f.largest_loss = math.min(f.largest_loss, tr.net)
    end
    f.max_consecutive_wins = math.max(f.max_consecutive_wins, run_w)
    f.max_consecutive_losses = math.max(f.max_consecutive_losses, run_l)
  end
  f.net_profit = balance - cash
  f.final_balance = balance
  f.profit_factor = f.gross_profit / -f.gross_loss
  f.expected_payoff = f.net_profit / #trades
  f.win_rate = f.wins / #trades * 100
  f.average_win = f.gross_profit / f.wins
  f.average_loss = f.gross_loss / f.losses
  f.max_drawdown, f.max_drawdown_pct = maxdd, maxdd_pct
  f.drawdown_absolute = math.max(0, cash - min_eq)
  f.recovery_factor = f.net_profit / maxdd
  local sum, sq = 0, 0
  for _, tr in ipairs(trades) do sum = sum + tr.net end
  for _, tr in ipairs(trades) do sq = sq + (tr.net - sum / #trades) ^ 2 end
  f.sharpe_ratio = (sum / #trades) / math.sqrt(sq / (#trades - 1))
  return trades, f
end

local function sma_cross(name, symbol, set)
  tf.strategy(name, { symbols = { symbol }, timeframe = "M5", set = set, history = 50 }, function(s)
    local f, sl, c, i = s.values.fast, s.values.slow, s.bars.close, s.n
    if i < 2 or f[i - 1] ~= f[i - 1] or sl[i - 1] ~= sl[i - 1] then return nil end
    if f[i - 1] <= sl[i - 1] and f[i] > sl[i] then
      return { side = "buy", stop = c[i] - 0.003, target = c[i] + 0.004 }
    elseif f[i - 1] >= sl[i - 1] and f[i] < sl[i] then
      return { side = "sell", stop = c[i] + 0.003, target = c[i] - 0.004 }
    end
  end)
end

describe("tf.backtest", function()
  local syms = {}
  setup(function()
    S.migrate()
    tf.indicators.set("t_bt_sma", { { "sma", 5, as = "fast" }, { "sma", 20, as = "slow" } })
  end)
  teardown(function()
    S.cleanup(syms)
    tf.strategy.clear()
  end)

  it("fills an SMA crossover with stop and target exactly as a plain reference loop does", function()
    local sym = S.symbol("BT"); syms[#syms + 1] = sym
    fixed_series(sym, 600)
    sma_cross("t_bt_cross", sym, "t_bt_sma")
    local from, to = T0 + 60 * M5, T0 + 580 * M5
    local p = { cash = 10000, commission = 3.5, slippage = 1, lot = 0.5 }
    local r = tf.backtest.run{ strategy = "t_bt_cross", from = bt.iso(from), to = to, cash = p.cash,
                               commission = p.commission, slippage = p.slippage, lot = p.lot }
    local want, f = reference(sym, from, to, p)
    assert.is_true(#want >= 8, "the series must give several trades, got " .. #want)
    local reasons = {}
    for _, tr in ipairs(want) do reasons[tr.exit_reason] = true end
    assert.is_true(reasons.stop and reasons.target and reasons.reverse and true or false, "every exit kind occurs")
    assert.are.equal(#want, #r.trades)
    for i, w in ipairs(want) do
      local g = r.trades[i]
      for _, k in ipairs({ "side", "entry_time", "entry_price", "exit_time", "exit_price", "exit_reason", "net" }) do
        assert.are.equal(w[k], g[k], string.format("trade %d %s", i, k))
      end
    end
    for k, v in pairs(f) do assert.are.equal(v, r.summary[k], k) end
    assert.are.equal(521, r.bars)
    assert.are.equal(bt.iso(from), r.from)
  end)

  it("marks both touched in one bar as the stop, and a gap fills at the open", function()
    local sym = S.symbol("BT"); syms[#syms + 1] = sym
    -- bar 0 signals; bar 1 fills at 1.1000 and spans both levels; bar 2..: a gap below the next stop
    tf.db.exec([[INSERT INTO market_data (symbol, timeframe, ts, open, high, low, close, spread) VALUES
      ($1, 'M5', to_timestamp($2::float8), 1.1, 1.1, 1.1, 1.1, 0),
      ($1, 'M5', to_timestamp($2::float8 + 300), 1.1, 1.103, 1.097, 1.1, 0),
      ($1, 'M5', to_timestamp($2::float8 + 600), 1.1, 1.1, 1.1, 1.1, 0),
      ($1, 'M5', to_timestamp($2::float8 + 900), 1.09, 1.092, 1.089, 1.09, 0)]], sym, T0)
    tf.strategy("t_bt_both", { symbols = { sym }, timeframe = "M5" }, function(s)
      if s.n == 1 or s.n == 2 then return { side = "buy", stop = 1.098, target = 1.102 } end
    end)
    local r = tf.backtest.run{ strategy = "t_bt_both" }
    assert.are.equal(2, #r.trades)
    assert.are.equal("stop", r.trades[1].exit_reason)
    assert.are.equal(1.098, r.trades[1].exit_price)
    assert.are.equal(T0 + 300, r.trades[1].exit_time)
    assert.are.equal("stop", r.trades[2].exit_reason)
    assert.are.equal(1.09, r.trades[2].exit_price) -- opened below the stop: filled at the open
  end)

  it("never shows a strategy a bar or a value past the one it is called on", function()
    local sym = S.symbol("BT"); syms[#syms + 1] = sym
    S.bars(sym, "M5", T0, 300, M5)
    local calls, leaks, checked = 0, {}, 0
    tf.strategy("t_bt_peek", { symbols = { sym }, timeframe = "M5", history = 40 }, function(s)
      calls = calls + 1
      local n = s.n
      local probes = {
        s.bars.close[n + 1], s.bars.time[n + 1], s.bars.high[n + 2], s.values.rsi[n + 1], s.values.atr[n + 100],
        s.bars.close:last(0), s.bars.open[0],
      }
      for k = 1, 7 do if probes[k] ~= nil then leaks[#leaks + 1] = k end end
      if #s.bars.close ~= n or s.bars.close:len() ~= n or s.bars.close:last() ~= s.bars.close[n] then leaks[#leaks + 1] = "len" end
      if #s.bars.close:slice(1, n + 10) ~= n or #s.values.rsi:totable() ~= n then leaks[#leaks + 1] = "slice" end
      if s.bars.time[n] ~= s.time then leaks[#leaks + 1] = "time" end
      -- an indicator computed by the strategy itself sees only the window too
      if #tf.ind.sma(s.bars.close, 3) ~= n then leaks[#leaks + 1] = "ind" end
      if not pcall(function() s.bars.close[n + 1] = 1 end) then checked = checked + 1 end
    end)
    local r = tf.backtest.run{ strategy = "t_bt_peek", from = T0 + 100 * M5 }
    assert.are.equal(200, calls)
    assert.are.equal(200, checked) -- writing into a view raises
    assert.are.same({}, leaks)
    assert.are.equal(200, r.bars)
  end)

  it("emits the same signals on the same bars as the live strategies job", function()
    local sym = S.symbol("BT"); syms[#syms + 1] = sym
    local name = "t_bt_live"
    -- signals on most bars, their numbers made of the set's stored values
    tf.strategy(name, { symbols = { sym }, timeframe = "M5", set = "mt5_default", history = 30 }, function(s)
      local i, rsi, atr, c = s.n, s.values.rsi, s.values.atr, s.bars.close
      if i < 6 or rsi[i] ~= rsi[i] or atr[i] ~= atr[i] then return nil end
      local side = rsi[i] >= rsi[i - 5] and "buy" or "sell"
      return { side = side, strength = rsi[i] / 100, stop = c[i] - atr[i] * 1.5, target = c[i] + s.values.macd_hist[i],
               comment = string.format("n=%d bb=%.17g", i, s.values.bb_upper[i]) }
    end)
    local last = S.bars(sym, "M5", T0, 80, M5)
    local wm
    local ctx = function(w) return { name = "strategies", watermark = w, log = tf.log } end
    for k = 1, 70 do -- the live way: one new closed bar at a time
      last = S.bars(sym, "M5", last + M5, 1, M5)
      wm = job.run(ctx(wm), { only = { name } }).watermark
    end
    local live = tf.db.query([[SELECT extract(epoch FROM ts)::float8 AS time, side, strength, price, stop, target, comment
      FROM signals WHERE strategy = $1 AND symbol = $2 ORDER BY ts]], name, sym)
    assert.is_true(#live >= 60, "signals stored: " .. #live)
    local r = tf.backtest.run{ strategy = name, from = T0 + 80 * M5 }
    assert.are.equal(70, r.bars)
    assert.are.equal(#live, #r.signals)
    for i, l in ipairs(live) do
      for _, k in ipairs({ "time", "side", "strength", "price", "stop", "target", "comment" }) do
        assert.are.equal(l[k], r.signals[i][k], string.format("signal %d %s", i, k))
      end
    end
    tf.db.exec("DELETE FROM signals WHERE symbol = $1", sym)
  end)

  it("reads market_data's NUMERIC(18,8) values back exactly as PostgreSQL does", function()
    local vals = { 0.5e-8, 1.5e-8, -2.5e-8, 70.000000005, 29.999999995, 1e-9, 4.9999999e-9, 123456.123456785,
                   999999.999999995, 1234567.12345678, -0.000000015, 0.1 + 0.2, 1 / 3, 12.345678905 }
    for _ = 1, 3000 do
      local e = math.random(-6, 8)
      local v = (math.random() - 0.5) * 10 ^ e
      if math.random() < 0.3 then v = (math.floor(v * 1e8) + 0.5) / 1e8 end -- near a tie
      vals[#vals + 1] = v
    end
    local parts = {}
    for i, v in ipairs(vals) do parts[i] = string.format("%.17g", v) end
    local got = tf.db.columns([[SELECT (v::numeric(18,8))::float8 AS v FROM unnest($1::float8[]) WITH ORDINALITY u(v, k)
      ORDER BY k]], "{" .. table.concat(parts, ",") .. "}")
    for i, v in ipairs(vals) do
      assert.are.equal(got.v[i], bt.numeric8(v), string.format("%.17g", v))
    end
  end)

  it("refuses bad options naming the field", function()
    tf.strategy("t_bt_opts", { symbols = { "X" }, timeframe = "M5", params = { low = 30 } }, function() end)
    local cases = {
      { { strategy = "nope" }, "backtest: strategy: no strategy named 'nope'" },
      { { strategy = "t_bt_opts", timeframe = "M7" }, "backtest: timeframe: 'M7' is not an MT5 timeframe" },
      { { strategy = "t_bt_opts", from = "2025-13-01" }, "backtest: from: '2025-13-01' is not a date" },
      { { strategy = "t_bt_opts", from = "2025-02-01", to = "2025-01-01" }, "backtest: to: is before from" },
      { { strategy = "t_bt_opts", cash = -5 }, "backtest: cash: must be a number" },
      { { strategy = "t_bt_opts", mode = "fifo" }, "backtest: mode: must be netting or hedging" },
      { { strategy = "t_bt_opts", set = "none_such" }, "backtest: set: no indicator set named 'none_such'" },
      { { strategy = "t_bt_opts", params = { hi = 3 } }, "backtest: params: strategy 't_bt_opts' has no parameter 'hi' (it declares: low)" },
      { { strategy = "t_bt_opts", symbols = {} }, "backtest: symbols: must be a non-empty list" },
    }
    for _, c in ipairs(cases) do
      local ok, err = pcall(tf.backtest.run, c[1])
      assert.is_false(ok)
      assert.is_truthy(tostring(err):find(c[2], 1, true), tostring(err))
    end
  end)

  it("runs several symbols on one account, and hedging keeps opposite positions", function()
    local a, b = S.symbol("BTA"), S.symbol("BTB")
    syms[#syms + 1] = a; syms[#syms + 1] = b
    fixed_series(a, 600)
    fixed_series(b, 600)
    sma_cross("t_bt_multi", a, "t_bt_sma")
    local one = tf.backtest.run{ strategy = "t_bt_multi", symbols = { a } }
    local two = tf.backtest.run{ strategy = "t_bt_multi", symbols = { a, b } }
    assert.are.equal(2 * #one.trades, #two.trades)
    assert.are.equal(1200, two.bars)
    assert.is_true(math.abs(two.summary.net_profit - 2 * one.summary.net_profit) < 1e-6)
    local seen = {}
    for _, tr in ipairs(two.trades) do seen[tr.symbol] = true end
    assert.is_true(seen[a] and seen[b])
    local h = tf.backtest.run{ strategy = "t_bt_multi", symbols = { a }, mode = "hedging" }
    -- hedging never closes on an opposite signal
    for _, tr in ipairs(h.trades) do assert.are_not.equal("reverse", tr.exit_reason) end
    local reversed = 0
    for _, tr in ipairs(one.trades) do
      if tr.exit_reason == "reverse" then reversed = reversed + 1 end
    end
    assert.is_true(reversed > 0, "the netting run reverses")
    assert.is_true(#h.trades > #one.trades - reversed)
  end)
end)
