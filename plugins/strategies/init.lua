-- Example strategies, loaded as one folder plugin (plugins/strategies/init.lua):
-- each file registers one tf.strategy; copy one to start your own. Which
-- symbols and timeframe they watch comes from the config's `strategies`
-- section (below). They only decide; the strategies job reads bars, stores
-- signals and never runs them twice for one bar.
--
--   strategies = {
--     rsi_reversal = { symbols = { "EURUSD", "GBPUSD" }, timeframe = "M5" },
--     macd_cross   = { symbols = { "EURUSD" }, timeframe = "H1" },
--     disabled     = { "macd_cross" },   -- names not to register at all
--   }
local disabled = {}
for _, name in ipairs(tf.config.get("strategies.disabled", {})) do disabled[name] = true end

for _, name in ipairs({ "rsi_reversal", "macd_cross" }) do
  if not disabled[name] then require("strategies." .. name) end
end
