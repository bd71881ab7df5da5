-- The durable spool (docs/spool.md) with the shipped ingest routes: while
-- the database is down, ingests are answered 200 with "queued" items; once it
-- is back the spool is replayed and every queued item is stored exactly once;
-- a record corrupted on disk is skipped, counted and logged, and the rest
-- replayed; a full spool answers 503 with Retry-After; batches sent while the spool
-- drains are queued behind it, so none overtakes a spooled one. A throw-away
-- cluster, stopped and started by the tests.
local H = require("tests.integration.helper")
local S = require("tests.integration.ingest_support")
local prom = require("tests.integration.prom")

local T0 = 1760929200 -- 2025-10-20T03:00:00Z

local function candle(sym, i, close, extra)
  return string.format('{"symbol":"%s","timeframe":"M1","ts":%d,"open":1.1,"high":1.9,"low":1.0,"close":%s,"volume":%d%s}',
    sym, T0 + 60 * i, close or "1.15", i, extra or "")
end

local function spool_status(srv)
  local st, v = srv:json("GET", "/admin/status", nil, H.admin_headers())
  assert.are.equal(200, st)
  return v.spool
end

-- Waits until the spool is empty (replayed); returns the last status.
local function drained(srv, seconds)
  local deadline = os.time() + (seconds or 20)
  local sp
  repeat
    sp = spool_status(srv)
    if sp.records == 0 then return sp end
    H.sleep(0.1)
  until os.time() > deadline
  return sp
end

local function start(pg, config)
  local cfg = { database = { checkout_timeout_ms = 1000, connect_timeout_s = 1, pool_size = 2 } }
  for k, v in pairs(config or {}) do cfg[k] = v end
  return H.start_server{ plugins = S.plugin(), env = { DATABASE_URL = pg.url }, config = cfg }
end

describe("the ingest spool", function()
  local pg
  setup(function()
    pg = S.cluster()
    pg.migrate()
  end)
  teardown(function()
    if pg then pg.stop() end
  end)

  it("answers 200 with queued items while the database is stopped, and stores each exactly once when it is back", function()
    local srv = start(pg)
    local sym = S.symbol("SPQ")
    local st, a = srv:json("POST", "/ingest_batch", "[" .. candle(sym, 0) .. "]", H.ingest_headers())
    assert.are.same({ 200, 1 }, { st, a.inserted })
    assert.is_nil(a.queued) -- a direct store keeps the old answer's shape
    pg.kill()

    local body = "[" .. table.concat({ candle(sym, 1), candle(sym, 2), '{"symbol":"' .. sym .. '","timeframe":"M1"}',
      candle(sym, 3), candle(sym, 1, "1.16") }, ",") .. "]"
    st, a = srv:json("POST", "/ingest_batch", body, H.ingest_headers())
    assert.are.equal(200, st)
    assert.are.same({ true, 5, 0, 0, 1, 4 }, { a.ok, a.received, a.inserted, a.duplicates, a.rejected, a.queued })
    local statuses = {}
    for i, d in ipairs(a.details) do statuses[i] = d.status end
    assert.are.same({ "queued", "queued", "rejected", "queued", "queued" }, statuses)
    assert.are.equal("2025-10-20T03:01:00+00:00", a.details[1].ts_bucket)

    st, a = srv:json("POST", "/ingest", candle(sym, 4), H.ingest_headers()) -- a single candle
    assert.are.same({ 200, 1, "queued" }, { st, a.queued, a.details[1].status })
    local ticks = string.format('{"ticks":[{"symbol":"%s","ts":%d,"ts_msc":%d,"bid":1.1,"ask":1.2},' ..
      '{"symbol":"%s","ts":%d,"ts_msc":%d,"bid":1.1,"ask":1.2}]}', sym, T0, T0 * 1000 + 5, sym, T0, T0 * 1000 + 6)
    st, a = srv:json("POST", "/ingest/tick", ticks, H.ingest_headers())
    assert.are.same({ 200, 2 }, { st, a.queued })

    local sp = spool_status(srv)
    assert.are.equal(3, sp.records)
    assert.is_true(sp.bytes > 0)
    local _, text = srv:request("GET", "/metrics")
    local fams = assert(prom.parse(text))
    assert.are.equal(3, prom.value(fams, "tf_spool_records"))
    assert.are.equal(3, prom.value(fams, "tf_spool_appended_total"))
    assert.is_true(prom.value(fams, "tf_spool_oldest_age_seconds") >= 0)

    pg.start()
    sp = drained(srv)
    assert.are.same({ 0, 3, 0 }, { sp.records, sp.replayed, sp.corrupt })
    assert.are.equal("5", pg.psql("SELECT count(*) FROM market_data WHERE symbol = '" .. sym .. "'"))
    assert.are.equal("5", pg.psql("SELECT count(DISTINCT ts) FROM market_data WHERE symbol = '" .. sym .. "'"))
    -- the batch's two items for one bar were folded in order, as a direct store does
    assert.are.equal("1.16000000", pg.psql("SELECT close FROM market_data WHERE symbol = '" .. sym ..
      "' AND ts = to_timestamp(" .. (T0 + 60) .. ")"))
    assert.are.equal("2", pg.psql("SELECT count(*) FROM ticks WHERE symbol = '" .. sym .. "'"))
    _, text = srv:request("GET", "/metrics")
    fams = assert(prom.parse(text))
    assert.are.equal(3, prom.value(fams, "tf_spool_replayed_total"))
    assert.are.equal(0, prom.value(fams, "tf_spool_records"))

    -- the database answers again: the same batch is now a direct store of duplicates
    st, a = srv:json("POST", "/ingest_batch", body, H.ingest_headers())
    assert.are.equal(200, st)
    assert.are.equal(0, a.inserted)
    assert.is_nil(a.queued)
    srv:stop()
  end)

  it("replays what a killed server had queued, once, after its restart", function()
    local dir = H.tmpdir()
    local cfg = { spool = { dir = dir .. "/spool" } }
    local srv = start(pg, cfg)
    local sym = S.symbol("SPK")
    pg.kill()
    for i = 1, 5 do
      local st, a = srv:json("POST", "/ingest", candle(sym, i), H.ingest_headers())
      assert.are.same({ 200, 1 }, { st, a.queued })
    end
    srv:signal("KILL")
    H.sleep(0.2)
    pg.start()
    srv = start(pg, cfg)
    local sp = drained(srv)
    assert.are.equal(0, sp.records)
    assert.are.equal("5", pg.psql("SELECT count(*) FROM market_data WHERE symbol = '" .. sym .. "'"))
    srv:stop()
    os.execute("rm -rf " .. dir)
  end)

  it("skips a corrupt record after a crash, counts and logs it, and replays the rest", function()
    local dir = H.tmpdir()
    local cfg = { spool = { dir = dir .. "/spool" } }
    local srv = start(pg, cfg)
    local sym = S.symbol("SPC")
    pg.kill()
    for i = 1, 3 do
      local st, a = srv:json("POST", "/ingest", candle(sym, i), H.ingest_headers())
      assert.are.same({ 200, 1 }, { st, a.queued })
    end
    srv:signal("KILL")
    while srv:alive() and not H.sh("ps -o stat= -p " .. srv.pid):match("Z") do H.sleep(0.02) end
    -- one bit flipped in the middle of the second of three records of equal size
    local seg = H.sh("find " .. dir .. "/spool -name '*.seg' -size +0 | head -1"):gsub("%s+$", "")
    local f = assert(io.open(seg, "r+b"))
    local bytes = f:read("a")
    assert.are.equal(0, #bytes % 3)
    local at = #bytes // 3 + #bytes // 6
    f:seek("set", at)
    f:write(string.char(bytes:byte(at + 1) ~ 0x10))
    f:close()
    pg.start()
    srv = start(pg, cfg)
    local sp = drained(srv)
    assert.are.same({ 0, 1, 2 }, { sp.records, sp.corrupt, sp.replayed })
    assert.are.equal("2", pg.psql("SELECT count(*) FROM market_data WHERE symbol = '" .. sym .. "'"))
    assert.are.equal("1,3", pg.psql("SELECT string_agg(volume::int::text, ',' ORDER BY ts) FROM market_data WHERE symbol = '" ..
      sym .. "'"))
    local _, text = srv:request("GET", "/metrics")
    assert.are.equal(1, prom.value(assert(prom.parse(text)), "tf_spool_corrupt_records_total"))
    assert.matches("spool: a torn or corrupt record skipped", srv:log())
    srv:stop()
    os.execute("rm -rf " .. dir)
  end)

  it("answers 503 with Retry-After when the spool is full, and stores every batch it queued", function()
    local srv = start(pg, { spool = { max_bytes = 4096 } })
    local sym = S.symbol("SPF")
    pg.kill()
    local queued, st, a, h = 0, nil, nil, nil
    for i = 1, 200 do
      st, a, h = srv:json("POST", "/ingest", candle(sym, i), H.ingest_headers())
      if st ~= 200 then break end
      assert.are.equal(1, a.queued)
      queued = queued + 1
    end
    assert.are.equal(503, st)
    assert.are.equal(false, a.ok)
    assert.matches("spool is full", a.error)
    assert.are.equal("1", h["retry-after"])
    assert.is_true(queued > 10 and queued < 200)
    pg.start()
    assert.are.equal(0, drained(srv).records)
    assert.are.equal(tostring(queued), pg.psql("SELECT count(*) FROM market_data WHERE symbol = '" .. sym .. "'"))
    srv:stop()
  end)

  it("queues new batches behind the spooled ones while it drains, so the last one sent wins", function()
    local srv = start(pg)
    local sym = S.symbol("SPO")
    pg.kill()
    -- the same bar, again and again: under the merge policy its close is the last one stored
    local n = 0
    for k = 1, 60 do
      n = n + 1
      local st, a = srv:json("POST", "/ingest", candle(sym, 0, string.format("1.%03d", 100 + n)), H.ingest_headers())
      assert.are.same({ 200, "queued" }, { st, a.details[1].status }, "update " .. k)
    end
    pg.start()
    local statuses = {}
    for _ = 1, 40 do
      n = n + 1
      local st, a = srv:json("POST", "/ingest", candle(sym, 0, string.format("1.%03d", 100 + n)), H.ingest_headers())
      assert.are.equal(200, st)
      statuses[a.details[1].status] = (statuses[a.details[1].status] or 0) + 1
    end
    assert.is_true((statuses.queued or 0) > 0, "no batch was sent while the spool drained")
    assert.are.equal(0, drained(srv).records)
    assert.are.equal(string.format("1.%03d00000", 100 + n),
      pg.psql("SELECT close FROM market_data WHERE symbol = '" .. sym .. "'"))
    srv:stop()
  end)

  it("keeps the old behaviour for routes that do not ask for the spool: 503, nothing queued", function()
    local srv = H.start_server{ env = { DATABASE_URL = pg.url },
      config = { database = { checkout_timeout_ms = 1000, connect_timeout_s = 1, pool_size = 2 } },
      plugins = { ["p.lua"] = [[
        tf.route("POST", "/plain", function(req)
          local ok, e = pcall(tf.candles.store, tf.candles.decode(req.body))
          if ok then return 200, e end
          return 503, { error = e.code }
        end, { auth = "none" })
        tf.route("POST", "/bad", function(req)
          local ok, e = pcall(tf.candles.store, tf.candles.decode(req.body), { on_unavailable = "later" })
          return 500, { error = tostring(e) }
        end, { auth = "none" })
      ]] } }
    local sym = S.symbol("SPE")
    pg.kill()
    local st, a = srv:json("POST", "/plain", "[" .. candle(sym, 1) .. "]")
    assert.are.same({ 503, "unavailable" }, { st, a.error })
    assert.are.equal(0, spool_status(srv).records)
    st, a = srv:json("POST", "/bad", "[" .. candle(sym, 1) .. "]")
    assert.matches('on_unavailable must be "error" or "spool"', a.error)
    pg.start()
    srv:stop()
  end)
end)
