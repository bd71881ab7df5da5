-- MACD cross: buy when the MACD line crosses above its signal line, sell
-- when it crosses below. Strength grows with the histogram measured in ATRs;
-- stop 2 ATR away, no target (ride the trend). Reads the mt5_default set
-- (macd, macd_signal, atr). Settings in `strategies.macd_cross`.
local cfg = tf.config.get("strategies.macd_cross", {})

tf.strategy("macd_cross", {
  symbols = cfg.symbols or { "EURUSD" },
  timeframe = cfg.timeframe or "H1",
  set = "mt5_default",
}, function(s)
  local macd, signal, atr = s.values.macd, s.values.macd_signal, s.values.atr
  local i = s.n
  if i < 2 then return nil end
  local diff, prev = macd[i] - signal[i], macd[i - 1] - signal[i - 1]
  if diff ~= diff or prev ~= prev or not (atr[i] > 0) then return nil end -- NaN or no range yet
  local price = s.bars.close[i]
  local strength = math.min(1, math.abs(diff) / atr[i])
  if prev <= 0 and diff > 0 then
    return { side = "buy", strength = strength, price = price, stop = price - 2 * atr[i],
             comment = "MACD crossed above signal" }
  elseif prev >= 0 and diff < 0 then
    return { side = "sell", strength = strength, price = price, stop = price + 2 * atr[i],
             comment = "MACD crossed below signal" }
  end
end)
