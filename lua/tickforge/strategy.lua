-- tf.strategy(name, { symbols, timeframe, set [, history] }, fn): registers a
-- strategy; the strategies job (lua/tickforge/jobs/strategies.lua) calls fn
-- once per symbol whenever a new closed bar is there, with the latest bars
-- and the set's indicator values, and stores the signals fn returns in the
-- `signals` table (polled by EAs through GET /signals). Registration only
-- checks and records: it never touches the database. tf.strategy is this
-- module (callable); tf.strategy.list()/get(name) read the registry.
--
--   tf.strategy("rsi_reversal", { symbols = { "EURUSD" }, timeframe = "M5", set = "mt5_default" },
--     function(s)
--       -- s.symbol, s.timeframe, s.n (index of the newest closed bar), s.time (its epoch),
--       -- s.bars.open/high/low/close/volume/time (tf.series, oldest first, s.n long),
--       -- s.values.rsi, s.values.macd ... (the set's columns, same length; NaN = none)
--       -- s.params: the spec's params (name = number); a backtest may override them
--       if s.values.rsi[s.n] < 30 then
--         return { side = "buy", strength = 0.7, stop = s.bars.low[s.n], comment = "oversold" }
--       end
--     end)
--
-- The set may be defined by any plugin, before or after the strategy: once
-- every plugin has loaded, `tickforge check` and each reload reject a
-- strategy whose set does not exist (lua/tickforge/check.lua). A name in the
-- config's strategies.disabled list is not registered at all. Reading a
-- column the set does not have (s.values.fastt) raises
-- "set ema_pair has no output fastt (outputs: fast, slow)".
--
-- spec.params (optional): tunable numbers, { low = 30, high = 70 }, read by
-- fn as s.params.low; `tickforge backtest --param low=20,25,30` sweeps them.
--
-- fn returns nil, one signal or a list of them. A signal: side "buy" | "sell"
-- | "close" (required); strength (0..1), price (default: the bar's close),
-- stop, target: numbers; comment: a string.
local M = {}

local registry, order = {}, {}

local TIMEFRAMES = {
  M1 = true, M2 = true, M3 = true, M4 = true, M5 = true, M6 = true, M10 = true, M12 = true, M15 = true,
  M20 = true, M30 = true, H1 = true, H2 = true, H3 = true, H4 = true, H6 = true, H8 = true, H12 = true,
  D1 = true, W1 = true, MN1 = true,
}

local function fail(fmt, ...) error(string.format(fmt, ...), 3) end

local function register(_, name, spec, fn)
  if type(name) ~= "string" or not name:match("^[%w_%.%-]+$") or #name > 64 then
    fail("tf.strategy: name must be 1..64 letters, digits, '_', '-' or '.', got %s", tostring(name))
  end
  if type(spec) ~= "table" then fail("strategy '%s': second argument must be { symbols, timeframe, set }", name) end
  if type(fn) ~= "function" then fail("strategy '%s': third argument must be a function", name) end
  local symbols = spec.symbols
  if type(symbols) == "string" then symbols = { symbols } end
  if type(symbols) ~= "table" or #symbols == 0 then fail("strategy '%s': symbols must be a non-empty list", name) end
  for i, s in ipairs(symbols) do
    if type(s) ~= "string" or s == "" then fail("strategy '%s': symbols[%d] must be a non-empty string", name, i) end
  end
  local timeframe = spec.timeframe or "M1"
  if not TIMEFRAMES[timeframe] then fail("strategy '%s': timeframe '%s' is not an MT5 timeframe", name, tostring(timeframe)) end
  local set = spec.set or "mt5_default"
  if type(set) ~= "string" or set == "" then fail("strategy '%s': set must be the name of an indicator set", name) end
  local history = spec.history or 200
  if math.type(history) ~= "integer" or history < 1 or history > 100000 then
    fail("strategy '%s': history must be an integer in 1..100000", name)
  end
  local params = spec.params or {}
  if type(params) ~= "table" then fail("strategy '%s': params must be a table of name = number", name) end
  for k, v in pairs(params) do
    if type(k) ~= "string" or type(v) ~= "number" then
      fail("strategy '%s': params must be a table of name = number, got %s = %s", name, tostring(k), tostring(v))
    end
  end
  for _, off in ipairs(tf.config.get("strategies.disabled", {})) do
    if off == name then return nil end
  end
  local _, where = pcall(error, "", 3) -- "file:line: " of the tf.strategy call, for check's messages
  if not registry[name] then order[#order + 1] = name end
  registry[name] = { name = name, symbols = symbols, timeframe = timeframe, set = set, history = history,
                     params = params, fn = fn,
                     where = type(where) == "string" and where or "" }
  return registry[name]
end

function M.get(name) return registry[name] end

-- Registered strategies in registration order.
function M.list()
  local out = {}
  for i, name in ipairs(order) do out[i] = registry[name] end
  return out
end

local SIDES = { buy = true, sell = true, close = true }

-- Checks one signal from strategy `name`; returns it normalised or raises.
function M.check_signal(name, sig, default_price)
  if type(sig) ~= "table" then error(string.format("strategy '%s': a signal must be a table, got %s", name, type(sig)), 0) end
  if not SIDES[sig.side] then
    error(string.format("strategy '%s': signal side must be buy, sell or close, got %s", name, tostring(sig.side)), 0)
  end
  local out = { side = sig.side, price = sig.price or default_price }
  for _, k in ipairs({ "strength", "price", "stop", "target" }) do
    local v = sig[k] == nil and out[k] or sig[k]
    if v ~= nil and (type(v) ~= "number" or v ~= v or v == math.huge or v == -math.huge) then
      error(string.format("strategy '%s': signal %s must be a finite number, got %s", name, k, tostring(v)), 0)
    end
    out[k] = v
  end
  if out.strength ~= nil and (out.strength < 0 or out.strength > 1) then
    error(string.format("strategy '%s': signal strength must be in 0..1, got %s", name, tostring(out.strength)), 0)
  end
  if sig.comment ~= nil and type(sig.comment) ~= "string" then
    error(string.format("strategy '%s': signal comment must be a string", name), 0)
  end
  out.comment = sig.comment
  return out
end

-- A strategy's view of its set's columns (s.values): reading a column the
-- set does not have raises, naming the set and its outputs, at the line
-- that read it.
function M.values(set, columns)
  return setmetatable(columns, { __index = function(_, k)
    if type(k) ~= "string" then return nil end -- ipairs and friends probe integer keys
    error(string.format("set %s has no output %s (outputs: %s)", set.name, tostring(k),
      table.concat(set.columns, ", ")), 2)
  end })
end

-- Forgets every strategy (tests).
function M.clear() registry, order = {}, {} end

return setmetatable(M, { __call = register })
