-- The seed plugins while the database is down: cached reads are still
-- answered, everything else is a clear 503 (writes with Retry-After),
-- /services and /tp-capital/health say what is down, and all recovers when
-- the database is back. A throw-away cluster, so killing it disturbs no
-- other test.
local H = require("tests.integration.helper")
local I = require("tests.integration.ingest_support")

describe("catalog and TP Capital during a database outage", function()
  local pg, srv
  local W, R = H.ingest_headers(), { ["X-API-Key"] = H.READ_KEY }
  setup(function()
    pg = I.cluster()
    pg.migrate()
    srv = H.start_server{ shipped = true, env = { DATABASE_URL = pg.url }, config = { catalog = { enabled = true },
      database = { checkout_timeout_ms = 1000, connect_timeout_s = 1, pool_size = 2 } } }
  end)
  teardown(function()
    if srv then srv:stop() end
    if pg then pg.stop() end
  end)

  it("serves what is cached, answers 503 for the rest, and recovers", function()
    local _, a = srv:json("POST", "/products", { name = "Notebook", price = 3500, stock = 3, category = "eletronicos" }, W)
    local id = a.product.id
    assert.are.equal(200, (srv:json("GET", "/products/" .. id, nil, R))) -- now cached
    pg.kill()

    local st, p = srv:json("GET", "/products/" .. id, nil, R)
    assert.are.same({ 200, "Notebook" }, { st, p.product.name })
    local h
    st, a, h = srv:json("GET", "/products/" .. (id + 1), nil, R)
    assert.are.same({ 503, false, "database unavailable" }, { st, a.ok, a.error })
    assert.are.equal("1", h["retry-after"])
    st = srv:json("POST", "/products", { name = "Mouse", price = 50, stock = 1, category = "eletronicos" }, W)
    assert.are.equal(503, st)
    st = srv:json("POST", "/tp-capital/ingest", { channel = "c", message_id = 1, date = "2025-10-20T09:30:00Z",
      text = "BUY EURUSD 1.08 SL 1.07 TP 1.09" }, W)
    assert.are.equal(503, st)
    st, a = srv:json("GET", "/tp-capital/health")
    assert.are.same({ 503, "unhealthy", "unavailable" }, { st, a.status, a.database })
    st, a = srv:json("GET", "/services", nil, R)
    assert.are.same({ 503, false, "degraded", "unavailable", "connected" },
      { st, a.ok, a.status, a.services.database.status, a.services.cache.status })

    pg.start()
    local deadline = os.time() + 15
    repeat
      st = srv:json("GET", "/services", nil, R)
      if st ~= 200 then H.sleep(0.2) end
    until st == 200 or os.time() > deadline
    assert.are.equal(200, st)
    assert.are.equal(201, (srv:json("POST", "/products", { name = "Mouse", price = 50, stock = 1, category = "eletronicos" }, W)))
    st, a = srv:json("POST", "/tp-capital/ingest", { channel = "c", message_id = 1, date = "2025-10-20T09:30:00Z",
      text = "BUY EURUSD 1.08 SL 1.07 TP 1.09" }, W)
    assert.are.same({ 200, 1 }, { st, a.inserted })
  end)
end)
