-- tf.db's per-connection prepared statements (core/db.c db_send_cached) in
-- a running server against the real PostgreSQL: a repeated statement is
-- planned once per connection and answers as before, its errors keep their
-- message and SQLSTATE, transactions and killed backends work, and through
-- PgBouncer in transaction mode (sessions that do not keep statements) every
-- statement still answers, with database.prepare on or off.
local H = require("tests.integration.helper")
local S = require("tests.integration.ingest_support")

-- One connection (pool_size 1), so every request meets the same session.
local PLUGIN = [[
local SQL = "SELECT $1::int * 2 AS v, (SELECT count(*) FROM pg_prepared_statements)::int AS prepared, " ..
  "pg_backend_pid() AS pid"
tf.route("GET", "/p", function(req)
  return 200, tf.db.query(SQL, tonumber(req.query.x))[1]
end, { auth = "none" })
tf.route("GET", "/cols", function(req)
  local c, n = tf.db.columns("SELECT g * $1::int AS v FROM generate_series(1, 3) g", tonumber(req.query.x))
  return 200, { n = n, last = c.v[3] }
end, { auth = "none" })
tf.route("GET", "/div", function(req)
  local ok, e = pcall(tf.db.query, "SELECT 10 / $1::int AS v", tonumber(req.query.x))
  if ok then return 200, e[1] end
  return 200, { code = e.code, message = e.message, sqlstate = e.sqlstate }
end, { auth = "none" })
tf.route("GET", "/forget", function(req)
  tf.db.exec("DEALLOCATE ALL")
  return 200, { ok = true }
end, { auth = "none" })
tf.route("GET", "/tx", function(req)
  local x = tonumber(req.query.x)
  local ok, e = pcall(tf.db.tx, function()
    tf.db.exec("INSERT INTO db_prepare_spec (k) VALUES ($1::int)", x)
    tf.db.exec("INSERT INTO db_prepare_spec (k) VALUES ($1::int)", x + 1)
    if req.query.fail then error("no") end
  end)
  local n = tf.db.query("SELECT count(*)::int AS n FROM db_prepare_spec WHERE k >= $1::int", 0)[1].n
  return 200, { ok = ok, n = n }
end, { auth = "none" })
]]

local function get(srv, path)
  local st, v = srv:json("GET", path)
  assert.are.equal(200, st, type(v) == "string" and v or "")
  return v
end

describe("tf.db prepares a repeated statement once per connection", function()
  local srv
  setup(function()
    H.migrate()
    H.psql("DROP TABLE IF EXISTS db_prepare_spec; CREATE TABLE db_prepare_spec (k int)")
    srv = H.start_server{ plugins = { ["p.lua"] = PLUGIN }, config = { database = { pool_size = 1 } } }
  end)
  teardown(function()
    if srv then srv:stop() end
    H.psql("DROP TABLE IF EXISTS db_prepare_spec")
  end)

  it("answers a repeated statement the same, prepared from its second run on", function()
    local pid
    for i = 1, 12 do
      local v = get(srv, "/p?x=" .. i)
      assert.are.equal(2 * i, v.v)
      pid = pid or v.pid
      assert.are.equal(pid, v.pid)
      assert.are.equal(i == 1 and 0 or 1, v.prepared)
    end
    for i = 1, 3 do assert.are.same({ n = 3, last = 3 * i }, get(srv, "/cols?x=" .. i)) end
    local m = select(2, srv:request("GET", "/metrics"))
    assert.truthy(m:match("tf_db_prepared_total %d"))
    assert.truthy(m:match("tf_db_prepared_hits_total %d"))
  end)

  it("reports an error of a prepared statement with the same message and SQLSTATE", function()
    for _ = 1, 4 do
      assert.are.same({ code = "error", message = "division by zero", sqlstate = "22012" }, get(srv, "/div?x=0"))
    end
    assert.are.same({ v = 5 }, get(srv, "/div?x=2"))
  end)

  it("runs a transaction's statements as a whole, committed or rolled back", function()
    assert.are.same({ ok = true, n = 2 }, get(srv, "/tx?x=1"))
    assert.are.same({ ok = false, n = 2 }, get(srv, "/tx?x=10&fail=1"))
    assert.are.same({ ok = true, n = 4 }, get(srv, "/tx?x=20"))
    assert.are.same({ ok = true, n = 6 }, get(srv, "/tx?x=30"))
  end)

  it("prepares again on the session that replaces a killed backend", function()
    local pid = get(srv, "/p?x=1").pid
    assert.are.equal("t", H.psql("SELECT pg_terminate_backend(" .. pid .. ")"))
    H.sleep(0.2)
    local v = get(srv, "/p?x=2")
    assert.are_not.equal(pid, v.pid)
    assert.are.same({ 4, 0 }, { v.v, v.prepared })
    v = get(srv, "/p?x=3")
    assert.are.same({ 6, 1 }, { v.v, v.prepared })
  end)

  -- last: it turns preparing off for this server
  it("runs a statement its session lost unprepared, then stops preparing", function()
    assert.are.equal(1, get(srv, "/p?x=1").prepared)
    get(srv, "/forget") -- what a pooler's other session looks like
    local v = get(srv, "/p?x=7")
    assert.are.same({ 14, 0 }, { v.v, v.prepared })
    assert.are.same({ code = "error", message = "division by zero", sqlstate = "22012" }, get(srv, "/div?x=0"))
    for i = 1, 3 do assert.are.same({ n = 3, last = 3 * i }, get(srv, "/cols?x=" .. i)) end
    assert.are.equal(0, get(srv, "/p?x=8").prepared)
    local m = select(2, srv:request("GET", "/metrics"))
    assert.are.equal("1", m:match("tf_db_prepared_retries_total (%d+)"))
    assert.truthy(srv:log():match("do not keep prepared statements"))
  end)
end)

describe("tf.db through PgBouncer in transaction mode", function()
  local bouncer
  setup(function()
    H.migrate()
    H.psql("DROP TABLE IF EXISTS db_prepare_spec; CREATE TABLE db_prepare_spec (k int)")
    bouncer = S.pgbouncer(os.getenv("DATABASE_URL"))
  end)
  teardown(function()
    if bouncer then bouncer.stop() end
    H.psql("DROP TABLE IF EXISTS db_prepare_spec")
  end)

  local function exercise(srv)
    for round = 1, 3 do
      for i = 1, 4 do
        local v = get(srv, "/p?x=" .. i)
        assert.are.equal(2 * i, v.v)
      end
      for _ = 1, 3 do assert.are.same({ n = 3, last = 6 }, get(srv, "/cols?x=2")) end
      for _ = 1, 3 do
        assert.are.same({ code = "error", message = "division by zero", sqlstate = "22012" }, get(srv, "/div?x=0"))
      end
      assert.are.same({ v = 5 }, get(srv, "/div?x=2"))
      assert.are.same({ ok = true, n = 2 * round }, get(srv, "/tx?x=" .. round * 10))
    end
  end

  it("answers every statement with database.prepare on (the default)", function()
    H.psql("TRUNCATE db_prepare_spec")
    local srv = H.start_server{ plugins = { ["p.lua"] = PLUGIN },
      config = { database = { url = bouncer.url, pool_size = 1 } } }
    local ok, err = pcall(exercise, srv)
    local m = select(2, srv:request("GET", "/metrics")) or ""
    local log = srv:log() or ""
    srv:stop()
    assert(ok, tostring(err) .. "\n" .. log)
    assert.truthy(m:match("tf_db_prepared_total %d"))
  end)

  it("prepares nothing with database.prepare = false", function()
    H.psql("TRUNCATE db_prepare_spec")
    local srv = H.start_server{ plugins = { ["p.lua"] = PLUGIN },
      config = { database = { url = bouncer.url, pool_size = 1, prepare = false } } }
    local ok, err = pcall(exercise, srv)
    local m = select(2, srv:request("GET", "/metrics")) or ""
    local log = srv:log() or ""
    srv:stop()
    assert(ok, tostring(err) .. "\n" .. log)
    assert.falsy(m:match("tf_db_prepared_total %d"))
    assert.falsy(log:match("do not keep prepared statements"))
  end)
end)
