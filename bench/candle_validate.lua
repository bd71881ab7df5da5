-- The candle validation the HTTP benches run (bench/http_peer_bench.sh on
-- tickforge and on nginx + lua, bench/route_cost_bench.sh): concatenated
-- in front of the route that calls validate(c), so plain Lua 5.1..5.4.
local TF = { M1 = true, M5 = true, M15 = true, M30 = true, H1 = true, H4 = true, D1 = true, W1 = true, MN1 = true }
local function validate(c)
  if type(c) ~= "table" then return nil, "body: must be a JSON object" end
  if type(c.symbol) ~= "string" or #c.symbol < 1 or #c.symbol > 32 then return nil, "symbol: must be 1..32 characters" end
  if not TF[c.timeframe] then return nil, "timeframe: unknown" end
  if type(c.ts) ~= "string" and type(c.ts) ~= "number" then return nil, "ts: must be a string or a number" end
  for _, k in ipairs({ "open", "high", "low", "close" }) do
    local v = c[k]
    if type(v) ~= "number" or v <= 0 or v >= 1e10 then return nil, k .. ": must be a number > 0" end
  end
  if c.high < math.max(c.open, c.close) then return nil, "high: must be >= max(open, close)" end
  if c.low > math.min(c.open, c.close) then return nil, "low: must be <= min(open, close)" end
  local vol = c.volume or 0
  if type(vol) ~= "number" or vol < 0 then return nil, "volume: must be >= 0" end
  return { ok = true, symbol = c.symbol, timeframe = c.timeframe, ts = c.ts }
end
