-- RSI reversal: buy when RSI(14) climbs back above `low` (leaving oversold),
-- sell when it falls back below `high` (leaving overbought). Stop `stop_atr`
-- ATRs away (1.5), target `target_atr` ATRs away (2). Reads the mt5_default
-- set (rsi, atr). Settings in `strategies.rsi_reversal` (symbols, timeframe,
-- low, high, stop_atr, target_atr); the last four are params, so a backtest
-- can sweep them (--param low=20,25,30).
local cfg = tf.config.get("strategies.rsi_reversal", {})

tf.strategy("rsi_reversal", {
  symbols = cfg.symbols or { "EURUSD" },
  timeframe = cfg.timeframe or "M5",
  set = "mt5_default",
  params = { low = cfg.low or 30, high = cfg.high or 70, stop_atr = cfg.stop_atr or 1.5, target_atr = cfg.target_atr or 2 },
}, function(s)
  local LOW, HIGH, SL, TP = s.params.low, s.params.high, s.params.stop_atr, s.params.target_atr
  local rsi, atr, close = s.values.rsi, s.values.atr, s.bars.close
  local i = s.n
  if i < 2 then return nil end
  local now, before = rsi[i], rsi[i - 1]
  if now ~= now or before ~= before or atr[i] ~= atr[i] then return nil end -- NaN: still warming up
  local price = close[i]
  if before < LOW and now >= LOW then
    return { side = "buy", strength = math.min(1, (LOW - math.min(before, LOW)) / LOW + 0.5), price = price,
             stop = price - SL * atr[i], target = price + TP * atr[i],
             comment = string.format("RSI %.1f -> %.1f left oversold", before, now) }
  elseif before > HIGH and now <= HIGH then
    return { side = "sell", strength = math.min(1, (math.max(before, HIGH) - HIGH) / (100 - HIGH) + 0.5), price = price,
             stop = price + SL * atr[i], target = price - TP * atr[i],
             comment = string.format("RSI %.1f -> %.1f left overbought", before, now) }
  end
end)
