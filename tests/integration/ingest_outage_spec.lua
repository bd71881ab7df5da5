-- The database dies in the middle of a batch: the EA gets a clear 503 (it
-- retries), no part of the batch is stored, requests while it is down fail
-- fast, and the pool recovers by itself when the database is back. Uses a
-- throw-away cluster of its own, so killing it disturbs no other test. The
-- routes here answer errors instead of spooling (ingest.on_unavailable =
-- "error"); spool_spec.lua covers the spool.
local H = require("tests.integration.helper")
local S = require("tests.integration.ingest_support")

local function batch(n, slow_at)
  local items = {}
  for i = 1, n do
    local sym = i == slow_at and "SLOW" or "KILL"
    items[i] = string.format('{"symbol":"%s","timeframe":"M1","ts":%d,"open":1.1,"high":1.2,"low":1.0,"close":1.15,"volume":%d}',
      sym, 1760929200 + 60 * i, i)
  end
  return "[" .. table.concat(items, ",") .. "]"
end

describe("a database outage during ingest", function()
  local pg, srv
  setup(function()
    pg = S.cluster()
    pg.migrate()
    -- the row in the middle of the batch waits, so the kill lands mid-statement
    pg.psql([[CREATE FUNCTION slow_row() RETURNS trigger LANGUAGE plpgsql AS
      $$ BEGIN PERFORM pg_sleep(3); RETURN NEW; END $$;]])
    srv = H.start_server{ plugins = S.plugin(), env = { DATABASE_URL = pg.url },
      config = { database = { checkout_timeout_ms = 1000, connect_timeout_s = 1, pool_size = 2 },
                 ingest = { on_unavailable = "error" } } }
  end)
  teardown(function()
    if srv then srv:stop() end
    if pg then pg.stop() end
  end)

  local function outage(n, path)
    it("answers 503 when the database is killed mid-batch (" .. path .. "), stores none of it, and recovers", function()
    pg.psql("TRUNCATE market_data")
    pg.psql("CREATE TRIGGER slow_row BEFORE INSERT ON market_data FOR EACH ROW " ..
      "WHEN (NEW.symbol = 'SLOW') EXECUTE FUNCTION slow_row()")
    local body = batch(n, n // 2)
    local f = os.tmpname()
    H.write(f, body)
    local out = f .. ".out"
    H.sh(string.format("curl -s -o %s.body -w '%%{http_code}' -X POST -H 'X-API-Key: %s' " ..
      "-H 'Content-Type: application/json' --data-binary @%s %s/ingest_batch >%s 2>&1 &",
      out, H.INGEST_KEY, f, srv.base, out))
    H.sleep(1.0)
    assert.are.equal("1", pg.psql("SELECT count(*) FROM pg_stat_activity WHERE application_name = 'tickforge' " ..
      "AND state = 'active' AND (query LIKE 'COPY market_data%' OR query LIKE 'SELECT * FROM tf_put_candles(%')"))
    pg.kill()
    local status
    for _ = 1, 100 do
      status = H.read(out)
      if status and #status >= 3 then break end
      H.sleep(0.1)
    end
    assert.are.equal("503", status)
    local answer = tf.json.decode(H.read(out .. ".body"))
    assert.are.equal(false, answer.ok)
    assert.matches("database unavailable", answer.error)

    -- while it is down: a fast 503, not a hang
    local t0 = os.time()
    local st, v = srv:json("POST", "/ingest_batch", batch(3), H.ingest_headers())
    assert.are.equal(503, st)
    assert.matches("database unavailable", v.error)
    assert.is_true(os.time() - t0 <= 3)

    pg.start()
    pg.psql("DROP TRIGGER slow_row ON market_data")
    assert.are.equal("0", pg.psql("SELECT count(*) FROM market_data"))

    -- the same batch again: every item is new, so nothing was half stored
    local answer2
    for _ = 1, 50 do
      st, answer2 = srv:json("POST", "/ingest_batch", body, H.ingest_headers())
      if st == 200 then break end
      H.sleep(0.2)
    end
    assert.are.equal(200, st)
    assert.are.equal(n, answer2.inserted)
    assert.are.equal(tostring(n), pg.psql("SELECT count(*) FROM market_data"))
    os.remove(f)
    os.remove(out)
    os.remove(out .. ".body")
  end)
  end
  it("answers 503 when a batch runs past the statement timeout, and stores none of it", function()
    pg.psql("TRUNCATE market_data")
    pg.psql("CREATE TRIGGER slow_row BEFORE INSERT ON market_data FOR EACH ROW " ..
      "WHEN (NEW.symbol = 'SLOW') EXECUTE FUNCTION slow_row()")
    local quick = H.start_server{ plugins = S.plugin(), env = { DATABASE_URL = pg.url },
      config = { database = { statement_timeout_ms = 400, pool_size = 2 }, ingest = { on_unavailable = "error" } } }
    for _, n in ipairs{ 20, 200 } do -- the ON CONFLICT and the COPY path
      local t0 = os.time()
      local st, v = quick:json("POST", "/ingest_batch", batch(n, n // 2), H.ingest_headers())
      assert.are.equal(503, st)
      assert.matches("statement timeout", v.error)
      assert.is_true(os.time() - t0 <= 3)
    end
    -- the connection stays usable, and nothing of either batch was stored
    local st, v = quick:json("POST", "/ingest_batch", batch(5), H.ingest_headers())
    assert.are.equal(200, st)
    assert.are.equal(5, v.inserted)
    assert.are.equal("5", pg.psql("SELECT count(*) FROM market_data"))
    quick:stop()
    pg.psql("DROP TRIGGER slow_row ON market_data")
  end)
  it("answers 503 to single candles caught by the kill, queued ones included, and stores them again after", function()
    pg.psql("TRUNCATE market_data")
    pg.psql("CREATE TRIGGER slow_row BEFORE INSERT ON market_data FOR EACH ROW " ..
      "WHEN (NEW.symbol = 'SLOW') EXECUTE FUNCTION slow_row()")
    local function candle(i, sym)
      return string.format('{"symbol":"%s","timeframe":"M1","ts":%d,"open":1.1,"high":1.2,"low":1.0,"close":1.15,"volume":1}',
        sym, 1760929200 + 60 * i)
    end
    local waits = { S.post_background(srv, "/ingest", candle(1, "SLOW")) } -- holds the statement
    H.sleep(0.5)
    for i = 2, 4 do waits[i] = S.post_background(srv, "/ingest", candle(i, "KILL")) end -- queued behind it
    H.sleep(0.5)
    pg.kill()
    for i, wait in ipairs(waits) do
      local status, answer = wait()
      assert.are.equal(503, status, "request " .. i)
      assert.matches("database unavailable", answer.error)
    end
    pg.start()
    pg.psql("DROP TRIGGER slow_row ON market_data")
    assert.are.equal("0", pg.psql("SELECT count(*) FROM market_data"))
    local st, v
    for _ = 1, 50 do
      st, v = srv:json("POST", "/ingest", candle(2, "KILL"), H.ingest_headers())
      if st == 200 then break end
      H.sleep(0.2)
    end
    assert.are.equal(200, st)
    assert.are.equal(1, v.inserted)
    local again = { S.post_background(srv, "/ingest", candle(3, "KILL")), S.post_background(srv, "/ingest", candle(4, "KILL")) }
    for _, wait in ipairs(again) do assert.are.equal(200, (wait())) end
    assert.are.equal("3", pg.psql("SELECT count(*) FROM market_data"))
  end)
  outage(1000, "COPY path")
  outage(20, "ON CONFLICT path")
end)
