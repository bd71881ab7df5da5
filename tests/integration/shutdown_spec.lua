-- Graceful shutdown: SIGTERM stops accepting, finishes the requests in
-- flight, stops the spool's replayer and syncs the spool, closes the pool and
-- exits 0; what the spool held is replayed by the next start. A second
-- SIGTERM while it drains exits at once (status 1). The server runs under a
-- small shell wrapper that records its exit status.
local H = require("tests.integration.helper")
local S = require("tests.integration.ingest_support")
local socket = require("socket")

local PLUGIN = [[
tf.route("GET", "/slow", function(req)
  tf.db.query("SELECT pg_sleep($1::float8)", tonumber(req.query.s) or 1)
  return 200, { ok = true }
end, { auth = "none" })
]]

-- Starts the server through a wrapper that writes its exit status to
-- <dir>/exit_status; srv.pid is the server's own pid.
local function start(pg, config)
  local wrapper = H.tmpdir() .. "/tickforge"
  H.write(wrapper, "#!/bin/sh\n\"" .. H.BIN .. "\" \"$@\"\necho $? > exit_status\n")
  H.sh("chmod +x " .. wrapper)
  local real = H.BIN
  H.BIN = wrapper
  local ok, srv = pcall(H.start_server, { env = { DATABASE_URL = pg.url }, config = config,
    plugins = { ["slow.lua"] = PLUGIN, ["mt5_ingest.lua"] = S.repo_file("plugins/mt5_ingest.lua") } })
  H.BIN = real
  assert(ok, srv)
  srv.wrapper_dir = wrapper:match("^(.*)/[^/]+$")
  local child = H.sh("pgrep -P " .. srv.pid):match("%d+")
  srv.pid = tonumber(child)
  return srv
end

-- Waits up to seconds for the server to exit; returns its status and how long it took.
local function exit_status(srv, seconds)
  local t0 = socket.gettime()
  local deadline = t0 + seconds
  local st
  repeat
    st = H.read(srv.dir .. "/exit_status")
    if st and st:match("%d") then return tonumber(st:match("%d+")), socket.gettime() - t0 end
    socket.sleep(0.02)
  until socket.gettime() > deadline
  return nil, socket.gettime() - t0
end

describe("stopping the server", function()
  local pg
  setup(function()
    pg = S.cluster()
    pg.migrate()
  end)
  teardown(function()
    if pg then pg.stop() end
  end)

  it("finishes the requests in flight on SIGTERM and exits 0", function()
    local srv = start(pg, { lua = { handler_timeout_ms = 10000 } })
    local f = os.tmpname()
    H.sh(string.format("curl -s -o %s.body -w '%%{http_code}' '%s/slow?s=1.5' > %s &", f, srv.base, f))
    H.sleep(0.4)
    srv:signal("TERM")
    local status, took = exit_status(srv, 10)
    assert.are.equal(0, status)
    assert.is_true(took >= 0.8, "it waited for the request in flight")
    assert.are.equal("200", H.read(f))
    assert.matches('msg="stopped"', srv:log())
    os.remove(f)
    os.remove(f .. ".body")
    srv:stop()
  end)

  it("syncs and closes the spool on SIGTERM while the database is down, and the next start replays it", function()
    local dir = H.tmpdir()
    local cfg = { spool = { dir = dir .. "/spool" },
                  database = { checkout_timeout_ms = 1000, connect_timeout_s = 1, pool_size = 2 } }
    local srv = start(pg, cfg)
    local sym = S.symbol("SHD")
    pg.kill()
    for i = 1, 3 do
      local body = string.format('{"symbol":"%s","timeframe":"M1","ts":%d,"open":1.1,"high":1.2,"low":1.0,"close":1.15}',
        sym, 1760929200 + 60 * i)
      local st, a = srv:json("POST", "/ingest", body, H.ingest_headers())
      assert.are.same({ 200, 1 }, { st, a.queued })
    end
    srv:signal("TERM")
    local status, took = exit_status(srv, 10)
    assert.are.equal(0, status)
    assert.is_true(took < 5, "the replayer, waiting for the database, did not hold the stop up")
    srv:stop()
    pg.start()
    srv = start(pg, cfg)
    local deadline, n = os.time() + 20, nil
    repeat
      n = pg.psql("SELECT count(*) FROM market_data WHERE symbol = '" .. sym .. "'")
      if n ~= "3" then H.sleep(0.1) end
    until n == "3" or os.time() > deadline
    assert.are.equal("3", n)
    srv:stop()
    os.execute("rm -rf " .. dir)
  end)

  it("exits at once on a second SIGTERM while it drains", function()
    local srv = start(pg, { lua = { handler_timeout_ms = 30000 } })
    local f = os.tmpname()
    H.sh(string.format("curl -s -m 20 -o /dev/null -w '%%{http_code}' '%s/slow?s=15' > %s &", srv.base, f))
    H.sleep(0.4)
    srv:signal("TERM")
    H.sleep(0.5)
    assert.is_true(srv:alive(), "still draining the slow request")
    srv:signal("TERM")
    local status, took = exit_status(srv, 3)
    assert.are.equal(1, status)
    assert.is_true(took < 1)
    assert.matches("stopping now, without draining", srv:log())
    os.remove(f)
    srv:stop()
  end)
end)
