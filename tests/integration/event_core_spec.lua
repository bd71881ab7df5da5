-- The event-driven core: handlers are coroutines that yield while they wait
-- on PostgreSQL, so a few workers serve thousands of waiting requests, slow
-- clients hold a socket and not the server, and reloads, disconnects and
-- database deaths while requests are suspended lose nothing. Real binary,
-- real PostgreSQL, real HTTP (curl and raw sockets).
local H = require("tests.integration.helper")
local S = require("tests.integration.ingest_support")
local socket = require("socket")

-- Starts n GETs of path at once (curl, up to 250 connections per process);
-- returns a function that waits for them (up to `seconds`) and returns the
-- table status -> count, and one that says whether all have answered.
local function burst(srv, path, n, seconds, curl_opts)
  local files, per = {}, 250
  for i = 1, math.ceil(n / per) do
    local k = math.min(per, n - (i - 1) * per)
    local f = os.tmpname()
    files[i] = f
    H.sh(string.format("(curl -s %s --parallel --parallel-immediate --parallel-max %d -o /dev/null " ..
      "-w '%%{http_code}\\n' '%s%s?i=[1-%d]' > %s.codes 2>/dev/null; echo done > %s.done) >/dev/null 2>&1 &",
      curl_opts or "", k, srv.base, path, k, f, f))
  end
  local function finished()
    for _, f in ipairs(files) do if not H.read(f .. ".done") then return false end end
    return true
  end
  return function()
    local deadline = socket.gettime() + (seconds or 60)
    while not finished() and socket.gettime() < deadline do H.sleep(0.1) end
    local counts = {}
    for _, f in ipairs(files) do
      for code in (H.read(f .. ".codes") or ""):gmatch("%d+") do counts[code] = (counts[code] or 0) + 1 end
      H.sh(string.format("rm -f %s %s.codes %s.done", f, f, f))
    end
    return counts
  end, finished
end

local function metric(srv, name)
  local _, text = srv:request("GET", "/metrics")
  return tonumber(text:match("\n" .. name:gsub("%p", "%%%0") .. " ([%d%.e%+]+)"))
end

local SLEEPY = [[
  tf.route("GET", "/sleep", function() tf.db.query("SELECT pg_sleep(0.2)"); return 200, "slept" end, { auth = "none" })
]]

describe("requests waiting on the database", function()
  it("are all answered, 1000 at once on 2 workers with 50 connections, while /health answers", function()
    H.migrate()
    local srv = H.start_server{ plugins = { ["s.lua"] = SLEEPY },
      config = { http = { workers = 2, max_connections_per_ip = 0 }, database = { pool_size = 50, checkout_timeout_ms = 30000 },
                 lua = { handler_timeout_ms = 60000 }, log = { level = "warn" } } }
    finally(function() srv:stop() end)
    local wait, finished = burst(srv, "/sleep", 1000, 60)
    H.sleep(1.0)
    local healths = 0
    for _ = 1, 5 do
      assert.are.equal(200, (srv:request("GET", "/health")))
      healths = healths + 1
    end
    assert.is_false(finished()) -- /health was answered while the requests waited
    assert.are.equal(5, healths)
    local counts = wait()
    assert.are.same({ ["200"] = 1000 }, counts)
    assert.are.equal(0, metric(srv, "tf_db_pool_in_use"))
    srv:stop()
  end)

  it("finish on the generation they were routed with when a reload comes while 500 are suspended", function()
    local function plugin(status)
      return string.format([[
        local STATUS = %d
        tf.route("GET", "/v", function() tf.db.query("SELECT pg_sleep(0.5)"); return STATUS, "v" end, { auth = "none" })
      ]], status)
    end
    local srv = H.start_server{ plugins = { ["v.lua"] = plugin(200) },
      config = { http = { workers = 2 }, database = { pool_size = 100, checkout_timeout_ms = 30000 },
                 lua = { handler_timeout_ms = 60000 }, log = { level = "warn" } } }
    finally(function() srv:stop() end)
    local wait = burst(srv, "/v", 500, 60)
    for _ = 1, 300 do -- until all 500 are routed (and waiting)
      if metric(srv, "tf_http_inflight") > 500 then break end
      H.sleep(0.05)
    end
    srv:write_plugin("v.lua", plugin(201))
    assert.are.equal(200, (srv:reload()))
    assert.are.equal(201, (srv:request("GET", "/v"))) -- new requests: the new generation
    assert.are.same({ ["200"] = 500 }, wait()) -- the suspended ones: their own, 0 errors
    srv:stop()
  end)

  it("give their connection back when their client disconnects while they wait", function()
    local srv = H.start_server{ plugins = { ["s.lua"] = SLEEPY .. [[
        tf.route("GET", "/sleep1", function() tf.db.query("SELECT pg_sleep(30)"); return 200, "slept" end, { auth = "none" })
        tf.route("GET", "/cached", function()
          return 200, tf.cache.get_or_load("slow:1", 60, function() tf.db.query("SELECT pg_sleep(30)"); return "v" end)
        end, { auth = "none" })
      ]] },
      config = { http = { max_connections_per_ip = 0 }, database = { pool_size = 10, checkout_timeout_ms = 60000,
                 statement_timeout_ms = 60000 }, lua = { handler_timeout_ms = 60000 } } }
    finally(function() srv:stop() end)
    -- 10 statements run, 90 queue for a connection, 50 wait on one cache load:
    -- none can be answered in time, and every client gives up after 0.3 s
    local wait = burst(srv, "/sleep1", 100, 30, "--max-time 0.3")
    local wait2 = burst(srv, "/cached", 50, 30, "--max-time 0.3")
    local counts, counts2 = wait(), wait2()
    assert.are.equal(100, counts["000"])
    assert.are.equal(50, counts2["000"])
    -- the server notices the hang-ups while they wait (statements cancelled,
    -- queued checkouts and cache waits dropped): nothing waits for the 30 s
    -- sleeps (or the 60 s limits) to end
    -- (a /metrics request is counted until its completion callback has run,
    -- which may be just after its client read the answer: the next probe can
    -- see its predecessor, so the values are taken from one settled reading)
    local in_use, inflight
    for _ = 1, 150 do
      in_use, inflight = metric(srv, "tf_db_pool_in_use"), metric(srv, "tf_http_inflight")
      if in_use == 0 and inflight == 1 then break end
      H.sleep(0.1)
    end
    assert.are.equal(150, metric(srv, "tf_http_abandoned_total"))
    assert.are.equal(0, in_use)
    assert.are.equal(10, metric(srv, "tf_db_pool_size"))
    assert.are.equal(1, inflight) -- only the /metrics request itself
    assert.are.equal(200, (srv:request("GET", "/sleep")))
    srv:stop()
  end)
end)

describe("a database that dies while requests are suspended", function()
  local pg, srv
  setup(function()
    pg = S.cluster()
    pg.migrate()
    srv = H.start_server{ env = { DATABASE_URL = pg.url },
      plugins = { ["s.lua"] = [[
        tf.route("GET", "/long", function() tf.db.query("SELECT pg_sleep(3)"); return 200, "done" end, { auth = "none" })
        tf.route("GET", "/quick", function() return 200, tf.db.query("SELECT 1 AS one") end, { auth = "none" })
      ]] },
      config = { database = { pool_size = 4, checkout_timeout_ms = 5000, connect_timeout_s = 1 },
                 lua = { handler_timeout_ms = 20000 } } }
  end)
  teardown(function()
    if srv then srv:stop() end
    if pg then pg.stop() end
  end)

  it("answers them 503 and serves again once it is back", function()
    local wait = burst(srv, "/long", 20, 30) -- 4 running, 16 waiting for a connection
    H.sleep(1.0)
    pg.kill()
    assert.are.same({ ["503"] = 20 }, wait())
    pg.start()
    local st
    for _ = 1, 50 do
      st = srv:request("GET", "/quick")
      if st == 200 then break end
      H.sleep(0.2)
    end
    assert.are.equal(200, st)
    assert.are.same({ ["200"] = 20 }, burst(srv, "/quick", 20, 30)())
  end)
end)

describe("connections", function()
  it("stay open by the 10,000 while idle, and /health is still answered", function()
    local srv = H.start_server{ config = { http = { max_connections = 11000, max_connections_per_ip = 0 },
                                           log = { level = "warn" } } }
    finally(function() srv:stop() end)
    local conns = {}
    local function exchange(c)
      assert(c:send("GET /health HTTP/1.1\r\nHost: t\r\n\r\n"))
      local status = c:receive("*l")
      local len = 0
      repeat
        local line = assert(c:receive("*l"))
        local n = line:lower():match("^content%-length:%s*(%d+)")
        if n then len = tonumber(n) end
      until line == ""
      assert(c:receive(len))
      return tonumber(status:match("^HTTP/1%.1 (%d+)"))
    end
    for i = 1, 10000 do
      local c = socket.tcp()
      c:settimeout(10)
      assert(c:connect("127.0.0.1", srv.port))
      conns[i] = c
    end
    local ok = 0
    for i = 1, 10000 do
      if exchange(conns[i]) == 200 then ok = ok + 1 end
    end
    assert.are.equal(10000, ok) -- each answered once; now all 10,000 sit idle, kept alive
    assert.are.equal(200, (srv:request("GET", "/health"))) -- a new client
    assert.are.equal(200, exchange(conns[1]))
    assert.are.equal(200, exchange(conns[10000]))
    local rss = tonumber(H.read("/proc/" .. srv.pid .. "/status"):match("VmRSS:%s*(%d+)"))
    assert.is_true(rss < 1024 * 1024, "RSS " .. rss .. " kB with 10,000 connections") -- bounded, sanity only
    for _, c in ipairs(conns) do c:close() end
    srv:stop()
  end)

  it("take headers up to about 7 KB, and answer larger ones 431 instead of holding more", function()
    local srv = H.start_server{ config = { log = { level = "warn" } } }
    finally(function() srv:stop() end)
    assert.are.equal(200, (srv:request("GET", "/health", nil, { ["X-Big"] = ("a"):rep(6000) })))
    -- curl: it reads the answer though the server stops reading the headers
    local code = H.sh(string.format("curl -s -o /dev/null -w '%%{http_code}' -H 'X-Big: %s' '%s/health'",
      ("a"):rep(12000), srv.base))
    assert.are.equal("431", code:match("%d+"))
    assert.are.equal(200, (srv:request("GET", "/health")))
  end)

  describe("from slow clients", function()
    local srv
    setup(function()
      srv = H.start_server{ config = { http = { header_timeout = 1, connection_timeout = 2, min_body_rate = 1024 } },
        plugins = { ["e.lua"] = [[
          tf.route("POST", "/echo", function(req) return 200, { n = #req.body } end, { auth = "none", max_body = "1MB" })
        ]] } }
    end)
    teardown(function() srv:stop() end)

    -- Sends pieces every `every` seconds until the server closes the
    -- connection; returns the seconds it took, or nil if it never did.
    local function trickle(first, piece, every, limit)
      local c = socket.tcp()
      c:settimeout(every)
      assert(c:connect("127.0.0.1", srv.port))
      local t0 = socket.gettime()
      c:send(first)
      while socket.gettime() - t0 < limit do
        local _, err = c:receive(1)
        if err and err ~= "timeout" then c:close() return socket.gettime() - t0 end
        local _, serr = c:send(piece)
        if serr then c:close() return socket.gettime() - t0 end
      end
      c:close()
    end

    it("closes a client that trickles its headers past http.header_timeout", function()
      local took = trickle("GET /health HTTP/1.1\r\nHost: t\r\n", "X-Slow: 1\r\n", 0.3, 15)
      assert.is_not_nil(took)
    end)

    it("closes a client that trickles its request line", function()
      local took = trickle("G", "E", 0.5, 20)
      assert.is_not_nil(took)
    end)

    it("closes a client that trickles its body below http.min_body_rate", function()
      local took = trickle("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n", "0123456789", 0.3, 15)
      assert.is_not_nil(took)
      local _, m = srv:request("GET", "/metrics")
      assert.matches('tf_http_slow_closed_total{reason="body"}', m, 1, true)
    end)

    it("answers a client that sends its headers in pieces within the deadline", function()
      local c = socket.tcp()
      c:settimeout(5)
      assert(c:connect("127.0.0.1", srv.port))
      c:send("POST /echo HTTP/1.1\r\nHost: t\r\n")
      socket.sleep(0.3)
      c:send("Content-Length: 5\r\n\r\n")
      socket.sleep(0.3)
      c:send("hello")
      assert.matches("^HTTP/1.1 200", c:receive("*l"))
      c:close()
    end)
  end)
end)
