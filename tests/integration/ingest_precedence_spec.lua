-- An EA's candle is authoritative over a bar a job built (source 'ticks' or
-- 'rollup'): under the default merge policy it replaces that bar whole and
-- marks it 'ea'; later snapshots from the EA merge as a forming bar does.
-- Also: req.key_name reaches handlers, and an uncaught tf.db outage is a 503.
local H = require("tests.integration.helper")
local S = require("tests.integration.ingest_support")

describe("source precedence under merge", function()
  local srv
  setup(function()
    H.migrate()
    srv = H.start_server{ plugins = S.plugin() }
  end)
  teardown(function() srv:stop() end)

  it("an EA candle replaces a tick-built bar whole and marks it 'ea'", function()
    local sym = "PREC" .. math.random(1, 1e8)
    H.psql(string.format([[INSERT INTO market_data (symbol, timeframe, ts, open, high, low, close, volume, spread, source)
      VALUES ('%s', 'M1', '2025-10-20 03:00:00+00', 1.1000, 1.1090, 1.0900, 1.1010, 999, 2, 'ticks')]], sym))
    local candle = { symbol = sym, timeframe = "M1", ts = "2025-10-20T03:00:00Z",
                     open = 1.1005, high = 1.1020, low = 1.0995, close = 1.1015, volume = 10, spread = 1 }
    local st, v = srv:json("POST", "/ingest", candle, H.ingest_headers())
    assert.are.equal(200, st)
    assert.are.equal("updated", v.details[1].status)
    assert.are.equal("1.10050000|1.10200000|1.09950000|1.10150000|10.00|ea",
      H.psql(string.format("SELECT concat_ws('|', open, high, low, close, volume, source) FROM market_data WHERE symbol = '%s'", sym)))
    -- a later, more complete snapshot from the EA merges (open kept, extremes widened)
    candle.high, candle.close, candle.volume = 1.1030, 1.1025, 12
    st, v = srv:json("POST", "/ingest", candle, H.ingest_headers())
    assert.are.equal("updated", v.details[1].status)
    assert.are.equal("1.10050000|1.10300000|1.09950000|1.10250000|12.00|ea",
      H.psql(string.format("SELECT concat_ws('|', open, high, low, close, volume, source) FROM market_data WHERE symbol = '%s'", sym)))
    -- an identical resend is a duplicate
    st, v = srv:json("POST", "/ingest", candle, H.ingest_headers())
    assert.are.equal("duplicate", v.details[1].status)
  end)
end)

describe("the host around plugins", function()
  it("tells a handler which key was used", function()
    local srv = H.start_server{ plugins = { ["k.lua"] = [[
      tf.route("GET", "/who", function(req) return 200, { key = req.key_name or "none" } end)
      tf.route("GET", "/open", function(req) return 200, { key = req.key_name or "none" } end, { auth = "none" })
    ]] } }
    assert.are.equal("test-read", select(2, srv:json("GET", "/who", nil, { ["X-API-Key"] = H.READ_KEY })).key)
    assert.are.equal("none", select(2, srv:json("GET", "/open")).key)
    srv:stop()
  end)

  it("applies the clock offset configured for the API key that sent the candle", function()
    H.migrate()
    local srv = H.start_server{ plugins = S.plugin(), config = { ingest = { key_offsets = { ["test-ingest"] = 3600 } } } }
    local sym = "KOFF" .. math.random(1, 1e8)
    local st, v = srv:json("POST", "/ingest", { symbol = sym, timeframe = "H1", ts = "2025-10-20T03:00:00Z",
      open = 1.1, high = 1.2, low = 1.0, close = 1.15, volume = 1 }, H.ingest_headers())
    srv:stop()
    assert.are.equal(200, st)
    assert.are.equal("2025-10-20T02:00:00+00:00", v.details[1].ts_bucket)
  end)

  it("answers 503 when a handler lets a tf.db outage escape", function()
    local srv = H.start_server{ env = { DATABASE_URL = "postgresql://postgres@127.0.0.1:1/none" },
      config = { database = { connect_timeout_s = 1, checkout_timeout_ms = 300 } },
      plugins = { ["d.lua"] = [[
        tf.route("GET", "/d", function() return 200, tf.db.query("SELECT 1 AS one") end, { auth = "none" })
      ]] } }
    local st, v = srv:json("GET", "/d")
    assert.are.equal(503, st)
    assert.matches("database unavailable", v.error)
    srv:stop()
  end)
end)
