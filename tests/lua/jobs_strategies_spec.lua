-- Strategies and signals: a strategy sees the newest closed bar with the
-- indicator values stored for it, runs once per bar, emits signals stored
-- once; a failing strategy does not stop the others. End to end through the
-- real server: the two shipped examples run by POST /admin/jobs/strategies/run
-- and an EA polls GET /signals?symbol=&since=.
local S = require("tests.lua.jobs_support")
local job = require("tickforge.jobs.strategies")

local ctx = function(wm) return { name = "strategies", watermark = wm, log = tf.log } end
local M5 = 300

-- Bars falling steadily, then one sharp rise: RSI leaves oversold and MACD
-- crosses its signal line on the last bar.
local function v_shape(symbol, t0, n)
  tf.db.exec([[INSERT INTO market_data (symbol, timeframe, ts, open, high, low, close, volume, spread)
    SELECT $1, 'M5', to_timestamp($2::float8 + i * 300), o, o + 0.0001, o - 0.0006, o - 0.0005, 10, 0.0001
      FROM (SELECT i, 1.2 - i * 0.0005 AS o FROM generate_series(0, $3::int - 2) i) x]], symbol, t0, n)
  tf.db.exec([[INSERT INTO market_data (symbol, timeframe, ts, open, high, low, close, volume, spread)
    SELECT $1, 'M5', to_timestamp($2::float8 + ($3::int - 1) * 300), c, c + 0.0205, c - 0.0001, c + 0.02, 10, 0.0001
      FROM (SELECT 1.2 - ($3::int - 1) * 0.0005 AS c) x]], symbol, t0, n)
  return t0 + (n - 1) * M5
end

describe("strategies job", function()
  local syms = {}
  setup(function() S.migrate() end)
  teardown(function() S.cleanup(syms) end)

  it("calls a strategy once per new closed bar with the stored indicator values, and stores its signals once", function()
    local sym = S.symbol(); syms[#syms + 1] = sym
    local name = "t_seen_" .. math.random(1e6)
    local seen = {}
    tf.strategy(name, { symbols = { sym }, timeframe = "M5", set = "mt5_default", history = 50 }, function(s)
      seen[#seen + 1] = { n = s.n, time = s.time, rsi = s.values.rsi[s.n], close = s.bars.close[s.n] }
      return { side = s.bars.close[s.n] >= s.bars.open[s.n] and "buy" or "sell", strength = 0.5, comment = "bar " .. s.n }
    end)
    local cfg = { only = { name } }
    local last = S.bars(sym, "M5", 1759000200, 120, M5)
    local r = job.run(ctx(nil), cfg)
    assert.are.equal(1, r.rows)
    assert.are.equal(1, #seen)
    assert.are.equal(50, seen[1].n)
    assert.are.equal(last, seen[1].time)
    local stored = tf.db.query([[SELECT rsi::float8 AS rsi, close::float8 AS close FROM market_data
      WHERE symbol = $1 AND timeframe = 'M5' AND ts = to_timestamp($2)]], sym, last)[1]
    assert.is_true(stored.rsi ~= nil and stored.rsi == stored.rsi)
    assert.are.equal(stored.rsi, seen[1].rsi)
    local sig = tf.db.query("SELECT strategy, side, price, strength, comment, extract(epoch FROM ts) AS t FROM signals WHERE symbol = $1", sym)
    assert.are.equal(1, #sig)
    assert.are.equal(stored.close, sig[1].price) -- price defaults to the bar's close
    assert.are.equal(last, sig[1].t)
    -- same bar again: not called; a lost watermark: called, but nothing stored twice
    assert.are.equal(0, job.run(ctx(r.watermark), cfg).rows)
    assert.are.equal(1, #seen)
    assert.are.equal(0, job.run(ctx(nil), cfg).rows)
    -- a new bar, and a forming bar that is not closed yet
    local newbar = S.bars(sym, "M5", last + M5, 1, M5)
    tf.db.exec([[INSERT INTO market_data (symbol, timeframe, ts, open, high, low, close)
      VALUES ($1, 'M5', tf_bucket(now(), 'M5'), 1, 1, 1, 1)]], sym)
    r = job.run(ctx(r.watermark), cfg)
    assert.are.equal(1, r.rows)
    assert.are.equal(newbar, seen[#seen].time)
    tf.strategy.clear()
  end)

  it("sees the values of a set stored in indicator_values", function()
    local sym = S.symbol(); syms[#syms + 1] = sym
    tf.indicators.set("t_strat_iv", { { "ema", 8 }, { "rsi", 6, as = "rsi6" } })
    local got
    tf.strategy("t_iv", { symbols = { sym }, timeframe = "M5", set = "t_strat_iv", history = 30 }, function(s)
      got = { ema = s.values.ema[s.n], rsi6 = s.values.rsi6[s.n], prev = s.values.ema[s.n - 1], time = s.time }
    end)
    S.bars(sym, "M5", 1759000200, 80, M5)
    job.run(ctx(nil), { only = { "t_iv" } })
    local batch = tf.indicators.compute("t_strat_iv", sym, "M5")
    assert.are.equal(batch.values.ema[batch.n], got.ema)
    assert.are.equal(batch.values.rsi6[batch.n], got.rsi6)
    assert.are.equal(batch.values.ema[batch.n - 1], got.prev)
    assert.are.equal(batch.time[batch.n], got.time)
    tf.strategy.clear()
  end)

  it("stores the other strategies' signals when one fails, and fails naming it", function()
    local sym = S.symbol(); syms[#syms + 1] = sym
    S.bars(sym, "M5", 1759000200, 60, M5)
    tf.strategy("t_good", { symbols = { sym }, timeframe = "M5" }, function() return { side = "close" } end)
    tf.strategy("t_bad", { symbols = { sym }, timeframe = "M5" }, function() return { side = "long" } end)
    local ok, err = pcall(job.run, ctx(nil), { only = { "t_good", "t_bad" } })
    assert.is_false(ok)
    assert.is_truthy(tostring(err):match("t_bad on " .. sym .. ": strategy 't_bad': signal side must be buy, sell or close"))
    assert.are.equal(1, tf.db.query("SELECT count(*) AS n FROM signals WHERE symbol = $1 AND strategy = 't_good'", sym)[1].n)
    tf.strategy.clear()
  end)

  it("refuses a strategy with a wrong definition", function()
    assert.has_error(function() tf.strategy("x y", { symbols = { "A" } }, function() end) end)
    assert.has_error(function() tf.strategy("t_x", { symbols = {} }, function() end) end)
    assert.has_error(function() tf.strategy("t_x", { symbols = { "A" }, timeframe = "M7" }, function() end) end)
    assert.has_error(function() tf.strategy("t_x", { symbols = { "A" }, set = 42 }, function() end) end)
    assert.are.equal(0, #tf.strategy.list())
    -- a set no plugin defines: refused once every plugin has loaded (check, reload), naming the line
    tf.strategy("t_x", { symbols = { "A" }, set = "nope" }, function() end)
    local errors = require("tickforge.check").run()
    assert.are.equal(1, #errors)
    assert.matches("jobs_strategies_spec.lua:%d+: strategy 't_x': no indicator set named 'nope' %(sets: .*mt5_default", errors[1])
    tf.strategy.clear()
  end)
end)

describe("shipped strategies and GET /signals", function()
  local H, srv, sym
  setup(function()
    H = S.migrate()
    sym = S.symbol()
    srv = H.start_server{ shipped = true, config = {
      jobs = { enabled = true, tick_aggregator = { enabled = false }, rollups = { enabled = false }, indicators = { enabled = false },
               maintenance = { enabled = false }, strategies = { every = "1h" } },
      strategies = { rsi_reversal = { symbols = { sym }, timeframe = "M5" }, macd_cross = { symbols = { sym }, timeframe = "M5" } },
    } }
  end)
  teardown(function()
    if srv then srv:stop() end
    S.cleanup({ sym })
  end)

  it("serves the signals of the example strategies to an EA polling by id", function()
    local last = v_shape(sym, 1759000200, 120)
    local st, run = srv:json("POST", "/admin/jobs/strategies/run", nil, H.admin_headers())
    assert.are.equal(200, st, tf.json.encode(run))
    local read = { ["X-API-Key"] = H.READ_KEY }
    local body
    st, body = srv:json("GET", "/signals?symbol=" .. sym .. "&since=0", nil, read)
    assert.are.equal(200, st)
    assert.is_true(body.ok)
    assert.are.equal(2, #body.signals, tf.json.encode(body))
    local by = {}
    for i, s in ipairs(body.signals) do
      by[s.strategy] = s
      assert.are.equal(sym, s.symbol)
      assert.are.equal("M5", s.timeframe)
      assert.are.equal("buy", s.side)
      if i > 1 then assert.is_true(s.id > body.signals[i - 1].id) end
    end
    assert.is_truthy(by.rsi_reversal and by.macd_cross)
    assert.is_true(by.rsi_reversal.stop < by.rsi_reversal.price and by.rsi_reversal.target > by.rsi_reversal.price)
    assert.are.equal(os.date("!%Y-%m-%dT%H:%M:%S+00:00", last), by.rsi_reversal.ts)
    assert.are.equal(tf.json.null, by.macd_cross.target)
    assert.are.equal(body.signals[2].id, body.last_id)
    -- polling from the last id: nothing new
    st, body = srv:json("GET", "/signals?symbol=" .. sym .. "&since=" .. body.last_id, nil, read)
    assert.are.equal(200, st)
    assert.are.equal(0, #body.signals)
    assert.are.equal("[]", tf.json.encode(body.signals))
    -- paging with limit, and filtering by strategy
    local first
    st, first = srv:json("GET", "/signals?symbol=" .. sym .. "&since=0&limit=1", nil, read)
    assert.are.equal(1, #first.signals)
    assert.are.equal(first.signals[1].id, first.last_id)
    st, body = srv:json("GET", "/signals?symbol=" .. sym .. "&limit=1&since=" .. first.last_id, nil, read)
    assert.are.equal(1, #body.signals)
    assert.is_true(body.signals[1].id > first.last_id)
    st, body = srv:json("GET", "/signals?symbol=" .. sym .. "&strategy=macd_cross", nil, read)
    assert.are.equal(1, #body.signals)
    assert.are.equal("macd_cross", body.signals[1].strategy)
    -- running the job again stores nothing twice
    srv:json("POST", "/admin/jobs/strategies/run", nil, H.admin_headers())
    st, body = srv:json("GET", "/signals?symbol=" .. sym, nil, read)
    assert.are.equal(2, #body.signals)
  end)

  it("answers 400 naming a bad parameter, and 401 without a key", function()
    local read = { ["X-API-Key"] = H.READ_KEY }
    for q, param in pairs({ ["since=-1"] = "since", ["since=abc"] = "since", ["limit=0"] = "limit",
                            ["limit=5000"] = "limit", ["symbol="] = "symbol" }) do
      local st, body = srv:json("GET", "/signals?" .. q, nil, read)
      assert.are.equal(400, st, q)
      assert.are.equal(param, body.param, q)
      assert.is_truthy(body.error:match("^" .. param .. ":"), q)
    end
    assert.are.equal(401, (srv:request("GET", "/signals?since=0")))
  end)
end)
