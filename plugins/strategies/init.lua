-- Strategies, loaded as one folder plugin: every other file of this folder
-- (plugins/strategies/*.lua) registers one or more tf.strategy and is
-- loaded here in name order, so a new strategy is a new file: drop it in,
-- then `tickforge check` lists it and a reload runs it. Copy one of the
-- examples to start. Which symbols and timeframe the examples watch comes
-- from the config's `strategies` section (below). Strategies only decide;
-- the strategies job reads bars, stores signals and never runs them twice
-- for one bar.
--
--   strategies = {
--     rsi_reversal = { symbols = { "EURUSD", "GBPUSD" }, timeframe = "M5" },
--     macd_cross   = { symbols = { "EURUSD" }, timeframe = "H1" },
--     disabled     = { "macd_cross" },   -- files and strategy names not to load or register
--   }
local disabled = {}
for _, name in ipairs(tf.config.get("strategies.disabled", {})) do disabled[name] = true end

for _, module in ipairs(tf.plugins.modules("strategies")) do
  if not disabled[module:match("[^.]+$")] then require(module) end
end
