-- Driver of bench/backtest_bench.sh, run by `tickforge run`:
--   read SYMBOL ROUNDS      -> "read <best seconds> <bars>": read the M1 bars and compute mt5_default
--   backtest SYMBOL ROUNDS  -> "backtest <best seconds> <bars> <trades>": tf.backtest.run of rsi_reversal
-- Wall time (LuaSocket's clock), best of ROUNDS; never asserts.
local socket = require("socket")
local common = require("tickforge.cli.common")
local mode, symbol, rounds = arg[1], arg[2], tonumber(arg[3] or "3")
common.load_plugins()
local best, extra = math.huge, ""
for _ = 1, rounds do
  collectgarbage()
  local t0 = socket.gettime()
  if mode == "read" then
    local res = tf.indicators.compute("mt5_default", symbol, "M1")
    extra = tostring(res.n)
  else
    local r = tf.backtest.run{ strategy = "rsi_reversal", symbols = { symbol }, timeframe = "M1" }
    extra = string.format("%d %d", r.bars, r.summary.trades)
  end
  local dt = socket.gettime() - t0
  if dt < best then best = dt end
end
print(string.format("%s %.3f %s", mode, best, extra))
