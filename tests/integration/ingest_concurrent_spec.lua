-- Single-candle requests arriving together from many clients: each keeps
-- its own answer; distinct candles are all inserted, the same candle sent by
-- many clients at once is stored once with one "inserted" and the rest
-- "duplicate", and nothing is lost.
local H = require("tests.integration.helper")
local S = require("tests.integration.ingest_support")

-- Sends bodies[i] to /ingest from parallel curl processes; returns answers.
local function burst(srv, bodies)
  local dir = H.tmpdir()
  local script = {}
  for i, body in ipairs(bodies) do
    H.write(string.format("%s/b%d.json", dir, i), body)
    script[#script + 1] = string.format(
      "curl -s -H 'X-API-Key: %s' --data-binary @%s/b%d.json %s/ingest > %s/a%d.json &",
      H.INGEST_KEY, dir, i, srv.base, dir, i)
  end
  script[#script + 1] = "wait"
  H.write(dir .. "/run.sh", table.concat(script, "\n"))
  H.sh("sh " .. dir .. "/run.sh")
  local answers = {}
  for i = 1, #bodies do answers[i] = tf.json.decode(H.read(string.format("%s/a%d.json", dir, i)) or "") end
  os.execute("rm -rf " .. dir)
  return answers
end

describe("single-candle requests arriving together", function()
  local srv
  setup(function()
    H.migrate()
    srv = H.start_server{ plugins = S.plugin(), config = { http = { threads = 8 } } }
  end)
  teardown(function() srv:stop() end)

  it("answers each request for its own candle and loses none", function()
    local sym = "CMB" .. math.random(1, 1e8)
    local bodies = {}
    for i = 1, 60 do
      bodies[i] = tf.json.encode({ symbol = sym, timeframe = "M1", ts = 1760929200 + 60 * i,
        open = 1.1, high = 1.2, low = 1.0, close = 1.15, volume = i })
    end
    for round = 1, 3 do
      local answers = burst(srv, bodies)
      for i, a in ipairs(answers) do
        assert.is_table(a, "request " .. i)
        assert.are.equal(1, a.received)
        assert.are.equal(round == 1 and "inserted" or "duplicate", a.details[1].status, "request " .. i)
      end
    end
    assert.are.equal("60", H.psql(string.format("SELECT count(*) FROM market_data WHERE symbol = '%s'", sym)))
    assert.are.equal("1830", H.psql(string.format("SELECT sum(volume)::int FROM market_data WHERE symbol = '%s'", sym)))
  end)

  it("stores one candle sent by many clients at once once, with one inserted", function()
    local sym = "CMB" .. math.random(1, 1e8)
    local bodies = {}
    for i = 1, 40 do
      bodies[i] = tf.json.encode({ symbol = sym, timeframe = "M5", ts = "2025-10-20T03:05:00Z",
        open = 1.1, high = 1.2, low = 1.0, close = 1.15, volume = 7 })
    end
    local n = { inserted = 0, duplicate = 0 }
    for _, a in ipairs(burst(srv, bodies)) do
      n[a.details[1].status] = (n[a.details[1].status] or 0) + 1
    end
    assert.are.same({ inserted = 1, duplicate = 39 }, n)
    assert.are.equal("1", H.psql(string.format("SELECT count(*) FROM market_data WHERE symbol = '%s'", sym)))
  end)
end)

-- Requests that arrive while the statement before them runs share the next
-- one (core/candles.c, "single candles"). A table lock holds the first
-- statement, so the others are certainly queued behind it.
describe("single-candle requests sharing a statement", function()
  local srv
  local url = os.getenv("DATABASE_URL")
  setup(function()
    H.migrate()
    srv = H.start_server{ plugins = S.plugin(),
      config = { http = { threads = 16 }, database = { single_lanes = 1 } } }
  end)
  teardown(function()
    H.psql("DROP TRIGGER IF EXISTS boom ON market_data; DROP FUNCTION IF EXISTS boom()")
    srv:stop()
  end)

  local function shared()
    local _, m = srv:request("GET", "/metrics")
    return tonumber(m:match("tf_candles_shared_statement_total (%d+)") or "0")
  end

  -- Holds market_data locked while the first body runs into the lock, then
  -- sends the rest one by one (in this order) so they queue behind it;
  -- returns every answer as { status, json }.
  local function behind_a_lock(first, rest)
    -- held 4 s: the rest must all be queued behind the first before it ends,
    -- which on a loaded machine (sanitizers, parallel builds) took over 2 s
    H.sh(string.format("psql %q -qAt -c 'BEGIN; LOCK TABLE market_data IN SHARE MODE; SELECT pg_sleep(4); COMMIT' >/dev/null 2>&1 &", url))
    for _ = 1, 50 do
      if H.psql("SELECT count(*) FROM pg_locks WHERE relation = 'market_data'::regclass AND mode = 'ShareLock' AND granted") == "1" then break end
      H.sleep(0.05)
    end
    local waits = { S.post_background(srv, "/ingest", first) }
    for _ = 1, 50 do -- the first is stuck in the lock before the others come
      if H.psql("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE 'SELECT * FROM tf_put_candles(%'") == "1" then break end
      H.sleep(0.05)
    end
    for _, body in ipairs(rest) do
      waits[#waits + 1] = S.post_background(srv, "/ingest", body)
      H.sleep(0.1)
    end
    local answers = {}
    for i, wait in ipairs(waits) do answers[i] = { wait() } end
    return answers
  end

  local function candle(sym, minute, fields)
    local c = { symbol = sym, timeframe = "M1", ts = 1760929200 + 60 * minute,
      open = 1.1, high = 1.2, low = 1.0, close = 1.15, volume = 10 }
    for k, v in pairs(fields or {}) do c[k] = v end
    return tf.json.encode(c)
  end

  it("stores the requests queued behind a statement with one statement, each with its own answer", function()
    local sym = "SHR" .. math.random(1, 1e8)
    local before = shared()
    local rest = {}
    for i = 1, 5 do rest[i] = candle(sym, i) end
    local answers = behind_a_lock(candle(sym, 0), rest)
    for i, a in ipairs(answers) do
      assert.are.equal(200, a[1], "request " .. i)
      assert.are.equal("inserted", a[2].details[1].status, "request " .. i)
    end
    assert.are.equal(5, shared() - before)
    assert.are.equal("6", H.psql(string.format("SELECT count(*) FROM market_data WHERE symbol = '%s'", sym)))
  end)

  it("gives later snapshots of one bar their own statements, in arrival order", function()
    local sym = "SHR" .. math.random(1, 1e8)
    local answers = behind_a_lock(candle(sym, 0), {
      candle(sym, 1, { high = 1.2, close = 1.15 }),
      candle(sym, 1, { high = 1.3, close = 1.25, volume = 12 }),  -- more complete: updated
      candle(sym, 1, { high = 1.3, close = 1.25, volume = 12 }),  -- the same again: duplicate
      candle(sym, 2),
    })
    local got = {}
    for i, a in ipairs(answers) do
      assert.are.equal(200, a[1], "request " .. i)
      got[i] = a[2].details[1].status
    end
    assert.are.same({ "inserted", "inserted", "updated", "duplicate", "inserted" }, got)
    assert.are.equal("1.10000000|1.30000000|1.00000000|1.25000000|12.00",
      H.psql(string.format("SELECT open, high, low, close, volume FROM market_data WHERE symbol = '%s' AND ts = to_timestamp(%d)",
        sym, 1760929200 + 60)))
  end)

  it("stores every neighbour of a request the database refuses, and names the refused one's error", function()
    H.psql([[CREATE OR REPLACE FUNCTION boom() RETURNS trigger LANGUAGE plpgsql AS
      $$ BEGIN RAISE EXCEPTION 'boom: % refused', NEW.symbol; END $$;
      CREATE TRIGGER boom BEFORE INSERT ON market_data FOR EACH ROW WHEN (NEW.symbol = 'BOOM')
      EXECUTE FUNCTION boom();]])
    local sym = "SHR" .. math.random(1, 1e8)
    local answers = behind_a_lock(candle(sym, 0), {
      candle(sym, 1), candle("BOOM", 1), candle(sym, 2), candle(sym, 3) })
    H.psql("DROP TRIGGER boom ON market_data")
    for i, a in ipairs(answers) do
      if i == 3 then
        assert.are.equal(500, a[1])
        assert.matches("boom: BOOM refused", a[2].error)
      else
        assert.are.equal(200, a[1], "request " .. i)
        assert.are.equal("inserted", a[2].details[1].status, "request " .. i)
      end
    end
    assert.are.equal("4", H.psql(string.format("SELECT count(*) FROM market_data WHERE symbol = '%s'", sym)))
    assert.are.equal("0", H.psql("SELECT count(*) FROM market_data WHERE symbol = 'BOOM'"))
  end)
end)
