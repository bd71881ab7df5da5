-- The plugin host end to end: the real binary, real HTTP, inline plugins.
local H = require("tests.integration.helper")

local HELLO = [[
tf.route("GET", "/hello/{name}", function(req)
  return 200, { hello = req.params.name, q = req.query.q, ua = req.headers["user-agent"],
                version = "v1", rid = req.request_id }
end, { auth = "none" })
tf.route("POST", "/echo", function(req)
  local v, err = tf.json.decode(req.body)
  if not v then return 400, { ok = false, error = err } end
  return 200, v
end)
tf.route("POST", "/ingest-only", function(req) return 200, { ok = true } end, { auth = "ingest" })
tf.route("POST", "/small", function(req) return 200, { n = #req.body } end, { auth = "none", max_body = 1000 })
tf.route("GET", "/text", function(req) return 201, "plain", { ["X-Extra"] = "1" } end, { auth = "none" })
]]

describe("the plugin host", function()
  local srv
  setup(function()
    srv = H.start_server{ plugins = { ["a_hello.lua"] = HELLO },
      config = { lua = { handler_timeout_ms = 300, memory_limit = "32MB" } } }
  end)
  teardown(function() srv:stop() end)

  it("serves a plugin route with path parameters, query and headers", function()
    local st, v = srv:json("GET", "/hello/bob?q=42", nil, { ["User-Agent"] = "MT5" })
    assert.are.equal(200, st)
    assert.are.same("bob", v.hello)
    assert.are.same("42", v.q)
    assert.are.same("MT5", v.ua)
  end)

  it("passes status, string body and headers through as the handler returned them", function()
    local st, body, h = srv:request("GET", "/text")
    assert.are.equal(201, st)
    assert.are.equal("plain", body)
    assert.are.equal("1", h["x-extra"])
    assert.matches("text/plain", h["content-type"])
  end)

  it("echoes X-Request-Id, or generates one", function()
    local _, v, h = srv:json("GET", "/hello/x", nil, { ["X-Request-Id"] = "ea-req-77" })
    assert.are.equal("ea-req-77", h["x-request-id"])
    assert.are.equal("ea-req-77", v.rid)
    local _, _, h2 = srv:request("GET", "/hello/x")
    assert.matches("^%x+$", h2["x-request-id"])
  end)

  it("keeps integers integers, and [] and null through a JSON round trip", function()
    local st, body = srv:request("POST", "/echo", '{"a":[1,2.5,null,{}],"b":[],"c":1729400000000}',
      { ["X-API-Key"] = H.READ_KEY })
    assert.are.equal(200, st)
    local v = tf.json.decode(body)
    assert.are.equal(1729400000000, v.c)
    assert.matches('"b":%[%]', body)
    assert.matches('null', body)
    assert.matches('"c":1729400000000', body)
  end)

  it("answers 401 to a missing or wrong key and accepts X-API-Key or Bearer", function()
    local st, v = srv:json("POST", "/echo", "{}")
    assert.are.equal(401, st)
    assert.matches("missing API key", v.error)
    st, v = srv:json("POST", "/echo", "{}", { ["X-API-Key"] = "wrong-key-123" })
    assert.are.equal(401, st)
    assert.matches("invalid API key", v.error)
    st = srv:json("POST", "/echo", "{}", { ["x-api-key"] = H.READ_KEY })
    assert.are.equal(200, st)
    st = srv:json("POST", "/echo", "{}", { Authorization = "Bearer " .. H.READ_KEY })
    assert.are.equal(200, st)
  end)

  it("answers 403 when the key lacks the route's role", function()
    local st, v = srv:json("POST", "/ingest-only", "{}", { ["X-API-Key"] = H.READ_KEY })
    assert.are.equal(403, st)
    assert.matches("ingest role", v.error)
    st = srv:json("POST", "/ingest-only", "{}", { ["X-API-Key"] = H.INGEST_KEY })
    assert.are.equal(200, st)
  end)

  it("answers 404 to an unknown path and 405 to a wrong method, as JSON", function()
    local st, v = srv:json("GET", "/nope")
    assert.are.equal(404, st)
    assert.are.equal(false, v.ok)
    st, v = srv:json("DELETE", "/hello/x")
    assert.are.equal(405, st)
    assert.is_string(v.request_id)
  end)

  it("answers 413 from Content-Length alone, before the body is sent", function()
    -- Only the headers go out; the answer must come without the 100 kB body.
    local out = srv:raw("POST /small HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n", 2)
    assert.matches("^HTTP/1.1 413", out)
    assert.matches("limit of 1000 bytes", out)
  end)

  it("answers 413 to a chunked body that outgrows the route's limit", function()
    local chunk = string.rep("x", 800)
    local req = "POST /small HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
      .. string.format("%x\r\n%s\r\n", #chunk, chunk):rep(3) .. "0\r\n\r\n"
    assert.matches("^HTTP/1.1 413", srv:raw(req))
    assert.are.equal(200, (srv:request("POST", "/small", "abc")))
  end)

  it("answers /health and /metrics from C", function()
    local st, v = srv:json("GET", "/health")
    assert.are.equal(200, st)
    assert.are.equal("healthy", v.status)
    local st2, text = srv:request("GET", "/metrics")
    assert.are.equal(200, st2)
    assert.matches('tf_http_requests_total{route="/hello/{name}",status="200"}', text, 1, true)
  end)

  it("guards the admin routes with the admin role", function()
    assert.are.equal(401, (srv:request("POST", "/admin/reload")))
    assert.are.equal(403, (srv:request("POST", "/admin/reload", nil, { ["X-API-Key"] = H.INGEST_KEY })))
    local st, v = srv:json("GET", "/admin/status", nil, H.admin_headers())
    assert.are.equal(200, st)
    assert.is_true(v.generation >= 1)
    assert.are.equal(5, #v.routes)
  end)
end)

describe("the request object", function()
  it("builds headers, query and remote_addr on first use, and never from another request", function()
    local srv = H.start_server{ config = { http = { workers = 1 } }, plugins = { ["a.lua"] = [[
      local kept
      tf.route("GET", "/a", function(req)
        kept = req
        return 200, { ua = req.headers["user-agent"], again = req.headers["user-agent"], ip = req.remote_addr }
      end, { auth = "none" })
      tf.route("GET", "/b", function(req)
        return 200, { kept_ua = kept.headers["user-agent"], stale_query = next(kept.query) or "empty", q = req.query.x }
      end, { auth = "none" })
    ]] } }
    local _, v = srv:json("GET", "/a?x=1", nil, { ["User-Agent"] = "UA" })
    assert.are.same({ ua = "UA", again = "UA", ip = "127.0.0.1" }, v)
    _, v = srv:json("GET", "/b?x=2")
    assert.are.same({ kept_ua = "UA", stale_query = "empty", q = "2" }, v)
    srv:stop()
  end)
end)

describe("handlers that misbehave", function()
  local srv
  setup(function()
    srv = H.start_server{ config = { http = { workers = 1 }, lua = { handler_timeout_ms = 1000, memory_limit = "32MB" } },
      plugins = { ["bad.lua"] = [[
        tf.route("GET", "/loop", function() while true do end end, { auth = "none" })
        tf.route("GET", "/pcall-loop", function()
          while true do pcall(function() while true do end end) end
        end, { auth = "none" })
        tf.route("GET", "/coroutine-loop", function()
          local co = coroutine.wrap(function() while true do end end)
          pcall(co)
          return 200, "escaped"
        end, { auth = "none" })
        tf.route("GET", "/hog", function()
          local t = {}
          for i = 1, 1e9 do t[i] = string.rep("x", 1000000) .. i end
        end, { auth = "none" })
        tf.route("GET", "/pcall-hog", function()
          local ok = pcall(function() local t = {} for i = 1, 1e9 do t[i] = string.rep("y", 1000000) .. i end end)
          return 200, { caught = not ok }
        end, { auth = "none" })
        tf.route("GET", "/boom", function() local x = nil; return x.field end, { auth = "none" })
        tf.route("GET", "/bad-status", function() return 42, {} end, { auth = "none" })
        tf.route("GET", "/ok", function() return 200, { ok = true } end, { auth = "none" })
      ]] } }
  end)
  teardown(function() srv:stop() end)

  it("kills an infinite loop at the time limit with 503, and the worker keeps serving", function()
    local t0 = H.sh("date +%s%N")
    local st, v = srv:json("GET", "/loop")
    local ms = (tonumber(H.sh("date +%s%N")) - tonumber(t0)) / 1e6
    assert.are.equal(503, st)
    assert.matches("time limit of 1000 ms", v.error)
    assert.is_true(ms >= 1000 and ms < 5000, "took " .. ms .. " ms")
    assert.are.equal(200, (srv:request("GET", "/ok")))
  end)

  it("cannot be cheated by pcall or a coroutine", function()
    assert.are.equal(503, (srv:request("GET", "/pcall-loop")))
    assert.are.equal(503, (srv:request("GET", "/coroutine-loop")))
    assert.are.equal(200, (srv:request("GET", "/ok")))
  end)

  it("gives a handler that allocates without bound a memory error; the process lives", function()
    local st, v = srv:json("GET", "/hog")
    assert.are.equal(500, st)
    assert.matches("memory limit", v.error)
    local st2, v2 = srv:json("GET", "/pcall-hog")
    assert.are.equal(200, st2)
    assert.is_true(v2.caught)
    assert.is_true(srv:alive())
    assert.are.equal(200, (srv:request("GET", "/ok")))
  end)

  it("answers a handler error with a 500 naming the request id, and logs file:line with a traceback", function()
    local st, v = srv:json("GET", "/boom", nil, { ["X-Request-Id"] = "boom-1" })
    assert.are.equal(500, st)
    assert.are.equal("boom-1", v.request_id)
    assert.not_matches("field", v.error) -- internals stay in the log
    local log = srv:log()
    assert.matches('rid=boom%-1 route=/boom kind=error error=".-bad.lua:%d+: attempt to index a nil value', log)
    assert.matches("stack traceback", log)
    assert.are.equal(500, (srv:request("GET", "/bad-status")))
    assert.are.equal(200, (srv:request("GET", "/ok")))
  end)
end)

describe("hot reload", function()
  local srv
  local function v(n)
    return string.format([[tf.route("GET", "/v", function() return 200, { v = %d } end, { auth = "none" })]], n)
  end
  before_each(function() srv = H.start_server{ plugins = { ["v.lua"] = v(1) } } end)
  after_each(function() srv:stop() end)

  it("changes the answer after an edit and SIGHUP, without a restart", function()
    local pid = srv.pid
    assert.are.equal(1, select(2, srv:json("GET", "/v")).v)
    srv:write_plugin("v.lua", v(2))
    srv:signal("HUP")
    local got
    for _ = 1, 50 do
      got = select(2, srv:json("GET", "/v")).v
      if got == 2 then break end
      H.sleep(0.05)
    end
    assert.are.equal(2, got)
    assert.are.equal(pid, srv.pid)
    assert.is_true(srv:alive())
  end)

  it("changes the answer after POST /admin/reload, and adds and removes routes", function()
    srv:write_plugin("v.lua", v(3))
    srv:write_plugin("w.lua", [[tf.route("GET", "/w", function() return 200, "w" end, { auth = "none" })]])
    local st, r = srv:reload()
    assert.are.equal(200, st)
    assert.is_true(r.ok)
    assert.are.equal(3, select(2, srv:json("GET", "/v")).v)
    assert.are.equal(200, (srv:request("GET", "/w")))
    srv:remove_plugin("w.lua")
    srv:reload()
    assert.are.equal(404, (srv:request("GET", "/w")))
  end)

  it("rejects a plugin with a syntax error with file:line, and the old generation keeps serving", function()
    srv:write_plugin("v.lua", v(4) .. "\nlocal x = (")
    local st, r = srv:reload()
    assert.are.equal(422, st)
    assert.is_false(r.ok)
    assert.matches("plugins/v.lua:2: ", r.error)
    assert.are.equal(1, select(2, srv:json("GET", "/v")).v)
    local _, status = srv:json("GET", "/admin/status", nil, H.admin_headers())
    assert.is_false(status.last_reload.ok)
    assert.matches("v.lua:2:", status.last_reload.error)
    assert.matches("reload rejected", srv:log())
    assert.are.equal("healthy", select(2, srv:json("GET", "/health")).status)
  end)

  it("rejects a plugin whose registration fails, naming file and line", function()
    srv:write_plugin("x.lua", "\n\ntf.route('FETCH', '/x', function() end)")
    local st, r = srv:reload()
    assert.are.equal(422, st)
    assert.matches("x.lua:3: tf.route: unknown method 'FETCH'", r.error)
    srv:write_plugin("x.lua", "tf.route('GET', '/v', function() end)")
    st, r = srv:reload()
    assert.matches("already registered", r.error)
    srv:write_plugin("x.lua", "tf.route('GET', '/health', function() end)")
    st, r = srv:reload()
    assert.matches("served by the core", r.error)
    srv:write_plugin("x.lua", "while true do end")
    st, r = srv:reload()
    assert.are.equal(422, st)
    assert.matches("x.lua: loading took longer", r.error)
    assert.are.equal(1, select(2, srv:json("GET", "/v")).v)
  end)

  it("rejects a config with a wrong value, naming the key", function()
    local cfg = H.read(srv.config_path)
    H.write(srv.config_path, cfg:gsub("%[\"workers\"%] = 2", '["workers"] = -1'))
    local st, r = srv:reload()
    assert.are.equal(422, st)
    assert.matches("http.workers: must be an integer 0..256, got %-1", r.error)
    H.write(srv.config_path, cfg:gsub('%["log"%] = {', '["log"] = { ["levle"] = "x",'))
    st, r = srv:reload()
    assert.matches("log.levle: unknown key", r.error)
    assert.are.equal(1, select(2, srv:json("GET", "/v")).v)
  end)
end)

describe("the file watch", function()
  it("reloads by itself when a plugin file changes, and reports a broken edit once", function()
    local srv = H.start_server{ config = { reload = { watch = true, interval_ms = 100 } },
      plugins = { ["v.lua"] = [[tf.route("GET", "/v", function() return 200, { v = 1 } end, { auth = "none" })]] } }
    H.sleep(0.3)
    srv:write_plugin("v.lua", [[tf.route("GET", "/v", function() return 200, { v = 2 } end, { auth = "none" })]])
    local got
    for _ = 1, 50 do
      got = select(2, srv:json("GET", "/v")).v
      if got == 2 then break end
      H.sleep(0.1)
    end
    assert.are.equal(2, got)
    srv:write_plugin("v.lua", "tf.route(")
    H.sleep(1)
    assert.are.equal(2, select(2, srv:json("GET", "/v")).v)
    local _, n = srv:log():gsub("reload rejected", "")
    assert.are.equal(1, n)
    srv:stop()
  end)
end)

-- Handlers run as coroutines on their worker's Lua VM; a handler that waits
-- (here on pg_sleep) yields, and its worker serves other requests meanwhile.
describe("handlers that wait", function()
  local SLOW = [[
    tf.route("GET", "/slow", function() tf.db.query("SELECT pg_sleep(1.5)"); return 200, { slow = true } end, { auth = "none" })
    tf.route("GET", "/fast", function() return 200, { fast = true } end, { auth = "none" })
    tf.route("GET", "/caught", function()
      local ok, err = pcall(tf.db.query, "SELECT pg_sleep(1.5)")
      return 200, { caught = tostring(err) }
    end, { auth = "none" })
    tf.route("GET", "/tx", function()
      local ok, err = pcall(tf.db.query, "SELECT * FROM no_such_table_here")
      local n, v = tf.db.tx(function(a)
        tf.db.exec("CREATE TEMP TABLE t_tx (v int) ON COMMIT DROP")
        tf.db.exec("INSERT INTO t_tx VALUES ($1), ($2)", a, a + 1)
        local rows = setmetatable({}, { __index = function(_, k) return tf.db.query("SELECT sum(v) AS s FROM t_tx")[1].s end })
        return #tf.db.query("SELECT v FROM t_tx"), rows.anything
      end, 20)
      return 200, { n = n, sum = v, err_code = type(err) == "table" and err.code or "none" }
    end, { auth = "none" })
  ]]
  -- Starts GET path in the background; returns a function that waits for
  -- and returns its status, and one that says whether it has answered.
  local function background(srv, path)
    local f = os.tmpname()
    H.sh(string.format("curl -s -o /dev/null -w '%%{http_code}' %s%s > %s.st 2>&1 &", srv.base, path, f))
    local function done() local s = H.read(f .. ".st"); return s and #s == 3 end
    return function()
      for _ = 1, 100 do if done() then break end H.sleep(0.05) end
      return tonumber(H.read(f .. ".st"))
    end, done
  end

  it("answer other connections on the same worker while some are waiting on the database", function()
    H.migrate()
    local srv = H.start_server{ config = { http = { workers = 1 } }, plugins = { ["s.lua"] = SLOW } }
    local waits, dones = {}, {}
    for i = 1, 6 do waits[i], dones[i] = background(srv, "/slow") end
    H.sleep(0.3)
    for _ = 1, 20 do assert.are.equal(200, (srv:request("GET", "/fast"))) end
    local still_waiting = 0
    for i = 1, 6 do if not dones[i]() then still_waiting = still_waiting + 1 end end
    assert.are.equal(6, still_waiting) -- the fast ones were answered first
    for i = 1, 6 do assert.are.equal(200, waits[i]()) end
    srv:stop()
  end)

  it("keep pcall, tf.db.tx and metamethods working across their waits", function()
    local srv = H.start_server{ plugins = { ["s.lua"] = SLOW } }
    local st, v = srv:json("GET", "/tx")
    assert.are.equal(200, st)
    assert.are.same({ n = 2, sum = 41, err_code = "error" }, v)
    srv:stop()
  end)

  it("answer 503 when a wait outlasts the handler time limit, even under pcall", function()
    local srv = H.start_server{ config = { lua = { handler_timeout_ms = 300 } }, plugins = { ["s.lua"] = SLOW } }
    local st, body, headers = srv:request("GET", "/caught")
    assert.are.equal(503, st)
    assert.matches("handler exceeded its time limit of 300 ms", body)
    assert.are.equal("1", headers["retry-after"])
    st, body = srv:request("GET", "/slow")
    assert.are.equal(503, st)
    assert.matches("time limit", body)
    assert.are.equal(200, (srv:request("GET", "/fast")))
    -- the cancelled statements gave their connections back
    local _, metrics = srv:request("GET", "/metrics")
    assert.matches("tf_db_pool_in_use 0", metrics)
    srv:stop()
  end)
end)

describe("hot reload under load", function()
  it("answers every request 2xx across 20 reloads", function()
    local srv = H.start_server{ config = { log = { level = "warn" } },
      plugins = { ["v.lua"] = [[tf.route("GET", "/v", function() return 200, { v = 0 } end, { auth = "none" })]] } }
    local wrk = io.popen(string.format("wrk -t2 -c16 -d8s --latency %s/v 2>&1", srv.base))
    for i = 1, 20 do
      H.sleep(0.3)
      srv:write_plugin("v.lua", string.format([[tf.route("GET", "/v", function() return 200, { v = %d } end, { auth = "none" })]], i))
      local st = srv:reload()
      assert.are.equal(200, st)
    end
    local out = wrk:read("a")
    wrk:close()
    srv:stop()
    assert.matches("Requests/sec", out)
    assert.not_matches("Non%-2xx", out)
    assert.not_matches("Socket errors", out)
    local n = tonumber(out:match("(%d+) requests in"))
    assert.is_true(n > 1000, out)
  end)
end)

describe("the sandbox", function()
  local srv
  setup(function()
    srv = H.start_server{ plugins = { ["s.lua"] = [[
      local function try(f) local ok, e = pcall(f) return ok and "allowed" or tostring(e) end
      tf.route("GET", "/probe", function()
        return 200, {
          os_execute = tostring(os.execute), io = tostring(io), debug = tostring(debug),
          popen = try(function() return io.popen("id") end),
          dofile = tostring(dofile), loadfile = tostring(loadfile),
          package = tostring(package),
          dump = tostring(string.dump), method_dump = tostring(("").dump),
          binary = select(2, load("\27Lua")) or "loaded",
          req_outside = try(function() return require("os") end),
          req_escape = try(function() return require("..secret") end),
          req_lua = try(function() return require("sandbox_probe_mod") end),
          getenv = tostring(os.getenv), exit = tostring(os.exit),
          tf = type(tf), json = type(tf.json),
        }
      end, { auth = "none" })
    ]], ["sandbox_probe_mod.lua"] = "return { fine = true }" },
      config = { plugins = { disabled = { "sandbox_probe_mod" } } } }
  end)
  teardown(function() srv:stop() end)

  it("offers only the allow-list: no os.execute, io, debug, package, dofile or binary chunks", function()
    local st, v = srv:json("GET", "/probe")
    assert.are.equal(200, st)
    for _, k in ipairs{ "os_execute", "io", "debug", "dofile", "loadfile", "package", "dump", "method_dump", "getenv", "exit" } do
      assert.are.equal("nil", v[k], k)
    end
    assert.matches("attempt to index a nil value", v.popen)
    assert.matches("attempt to load a binary chunk", v.binary)
    assert.are.equal("table", v.tf)
  end)

  it("lets require reach only lua/ and plugins/", function()
    local _, v = srv:json("GET", "/probe")
    assert.matches("module 'os' not found", v.req_outside)
    assert.matches("invalid module name", v.req_escape)
    assert.are.equal("allowed", v.req_lua)
  end)
end)

describe("the command line", function()
  it("tickforge check exits 0 on the shipped plugins and non-zero with file:line on a broken one", function()
    local out = H.sh(H.BIN .. " check 2>&1; echo rc=$?")
    assert.matches("rc=0", out)
    assert.matches("ok: config/tickforge.lua", out)
    local dir = H.tmpdir()
    H.sh("mkdir -p " .. dir .. "/plugins")
    H.write(dir .. "/plugins/a.lua", "tf.route('GET', '/a', function() end)\n")
    H.write(dir .. "/plugins/b.lua", "local t = {\n")
    H.write(dir .. "/plugins/c.lua", "\nerror('registration failed')\n")
    H.write(dir .. "/tf.lua", string.format("return { plugins = { dir = %q } }", dir .. "/plugins"))
    out = H.sh(H.BIN .. " check --config " .. dir .. "/tf.lua 2>&1; echo rc=$?")
    assert.matches("rc=1", out)
    assert.matches("plugins/b.lua:2: ", out)
    assert.matches("plugins/c.lua:2: registration failed", out)
    os.execute("rm -rf " .. dir)
  end)

  it("tickforge serve refuses a bad config with a message naming the key", function()
    local dir = H.tmpdir()
    H.write(dir .. "/tf.lua", "return { database = { pool_size = 'many' } }")
    local out = H.sh(H.BIN .. " serve --config " .. dir .. "/tf.lua 2>&1; echo rc=$?")
    assert.matches('database.pool_size: must be a number, got "many"', out)
    assert.matches("rc=1", out)
    os.execute("rm -rf " .. dir)
  end)

  it("takes keys from TICKFORGE_API_KEY and the old system's API_KEY", function()
    for _, var in ipairs{ "TICKFORGE_API_KEY", "API_KEY" } do
      local srv = H.start_server{ env = { [var] = "env-key-123456" }, config = { auth = { keys = {} } },
        plugins = { ["p.lua"] = [[tf.route("POST", "/p", function() return 200, "ok" end, { auth = "ingest" })]] } }
      assert.are.equal(200, (srv:request("POST", "/p", "", { ["X-API-Key"] = "env-key-123456" })), var)
      assert.are.equal(401, (srv:request("POST", "/p", "", { ["X-API-Key"] = "env-key-1234567" })), var)
      srv:stop()
    end
  end)

  it("prints help for every command and a version", function()
    for _, c in ipairs{ "serve", "run", "check", "migrate" } do
      assert.matches("usage: tickforge " .. c, H.sh(H.BIN .. " " .. c .. " --help"))
    end
    assert.matches("tickforge .*Lua 5.4", H.sh(H.BIN .. " version"))
  end)
end)

describe("make run", function()
  it("brings up the server with the sample plugin route and the shipped config", function()
    local port = H.free_port()
    local log = os.tmpname()
    local pid = H.sh(string.format("TICKFORGE_LISTEN=127.0.0.1:%d setsid make run >%s 2>&1 & echo $!", port, log)):gsub("%s+$", "")
    local s = H.attach(port, tonumber(pid))
    local ok = s:wait_healthy(60)
    local st, v = s:json("GET", "/hello/world")
    os.execute("kill -TERM -" .. pid .. " 2>/dev/null")
    local out = H.read(log)
    os.remove(log)
    assert.is_true(ok, out)
    assert.are.equal(200, st, out)
    assert.are.equal("world", v.hello)
    assert.matches("development keys", out)
  end)
end)
