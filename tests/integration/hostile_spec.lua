-- Hostile input and hostile plugins, end to end: the real binary, real HTTP,
-- real PostgreSQL. Each case is something a network or a plugin can throw at
-- the server, and each has one clear expected answer; after every one the
-- server still serves.
local H = require("tests.integration.helper")
local S = require("tests.integration.ingest_support")

-- Routes a plugin author could write, probing the sandbox from inside.
local PROBE = [==[
local function try(f, ...)
  local ok, v = pcall(f, ...)
  if ok then return type(v) == "string" and v or v == nil and "nil" or type(v) end
  return "error: " .. tostring(v)
end

tf.route("GET", "/escape/{what}", function(req)
  local w = req.params.what
  local r
  if w == "os.execute" then r = try(function() return os.execute("touch /tmp/tf-hostile-pwned") end)
  elseif w == "io.open" then r = try(function() return io.open("/etc/passwd") end)
  elseif w == "debug" then r = try(function() return debug.getinfo(1) end)
  elseif w == "string.dump" then r = try(function() return string.dump(function() end) end)
  elseif w == "bytecode" then
    r = try(function() local f, e = load("\27Lua\84\0\25\147\13\10\26\10\4\8\8\120\86"); return f and "loaded" or e end)
  elseif w == "collectgarbage" then r = try(function() return collectgarbage("count") end)
  elseif w == "package" then r = try(function() return package.loadlib end)
  elseif w == "require" then r = try(require, "../../../../etc/passwd")
  elseif w == "dofile" then r = try(function() return dofile("/etc/passwd") end)
  elseif w == "tf.file.read" then r = try(tf.file.read, "/etc/passwd")
  elseif w == "req_mt" then r = try(function() return getmetatable(req).__index(1, "headers") end)
  elseif w == "tf_mt" then r = try(function() return getmetatable(tf).__index(1, "strategy") end)
  elseif w == "string_mt" then r = try(function() getmetatable("").__index = {} end)
  elseif w == "stacked_sql" then
    r = try(tf.db.query, "SELECT 1; CREATE TABLE hostile_stacked_ran (a int)")
  elseif w == "config_url" then r = tf.config.database and tf.config.database.url or "none"
  end
  return 200, { result = r }
end, { auth = "none" })

tf.route("POST", "/open", function(req) return 200, { n = #req.body } end, { auth = "none" })
tf.route("POST", "/open-big", function(req) return 200, { n = #req.body } end,
  { auth = "none", max_body = "1MB" })
tf.route("POST", "/decode", function(req)
  local v, err = tf.json.decode(req.body)
  return 200, { ok = v ~= nil, error = err }
end, { auth = "none" })
tf.route("POST", "/decode-big", function(req)
  local ok, v = pcall(tf.json.decode, req.body)
  return 200, { ok = ok, n = ok and #v or nil, error = not ok and tostring(v) or nil }
end, { auth = "none", max_body = "8MB" })
]==]

local function ingest(srv, path, body)
  return srv:json("POST", path, body, H.ingest_headers())
end

local function candle(sym, ts)
  return { symbol = sym, timeframe = "M1", ts = ts, open = 1.1, high = 1.2, low = 1.0, close = 1.15 }
end

describe("hostile input", function()
  local srv
  setup(function()
    H.migrate()
    local plugins = S.plugin()
    plugins["probe.lua"] = PROBE
    srv = H.start_server{ plugins = plugins,
      config = { http = { connection_timeout = 2 }, lua = { handler_timeout_ms = 5000, memory_limit = "64MB" } } }
  end)
  teardown(function() srv:stop() end)

  after_each(function()
    assert.is_true(srv:alive(), "the server died:\n" .. (srv:log() or ""))
    assert.are.equal(200, (srv:request("GET", "/health")))
  end)

  it("answers huge headers with a 4xx and keeps serving", function()
    local out = srv:raw("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " .. string.rep("a", 1024 * 1024) ..
      "\r\nConnection: close\r\n\r\n", 5)
    assert.matches("^HTTP/1.1 4%d%d", out)
  end)

  it("drops a body that never ends after the connection timeout, serving others meanwhile", function()
    local socket = require("socket")
    local c = assert(socket.tcp())
    c:settimeout(10)
    assert(c:connect("127.0.0.1", srv.port))
    local t0 = socket.gettime()
    c:send("POST /ingest HTTP/1.1\r\nHost: x\r\nX-API-Key: " .. H.INGEST_KEY ..
      "\r\nContent-Length: 100000\r\n\r\n" .. string.rep("[", 100))
    assert.are.equal(200, (srv:request("GET", "/health")))
    local data, err, partial = c:receive("*a")
    local waited = socket.gettime() - t0
    c:close()
    assert.is_true(waited < 9, "the stalled connection was kept " .. waited .. " s")
    -- closed without a success answer (nothing stored from a cut body)
    assert.is_nil((data or partial or ""):match("^HTTP/1.1 2"))
  end)

  it("refuses a million-item batch with 413 before parsing it", function()
    local st, v = ingest(srv, "/ingest_batch", "[" .. string.rep("{},", 999999) .. "{}]")
    assert.are.equal(413, st)
    assert.matches("too many items: 1000000 > 50000; split the batch", v.error, 1, true)
  end)

  it("refuses deep nesting with 400 naming the depth", function()
    local st, v = ingest(srv, "/ingest_batch", string.rep("[", 100000) .. string.rep("]", 100000))
    assert.are.equal(400, st)
    assert.matches("nested deeper than 64 levels", v.error, 1, true)
    local st2, v2 = srv:json("POST", "/decode", string.rep("[", 20000) .. string.rep("]", 20000))
    assert.are.equal(200, st2)
    assert.is_false(v2.ok)
  end)

  it("charges tf.json.decode's parse tree to the VM's memory limit before parsing", function()
    -- 3.5M numbers (7MB): ~220MB of cJSON nodes, over the 64MB limit of these VMs
    local st, v = srv:json("POST", "/decode-big", "[" .. string.rep("0,", 3500000 - 1) .. "0]")
    assert.are.equal(200, st)
    assert.is_false(v.ok)
    assert.matches("not enough memory", v.error)
    -- refused before cJSON built its ~220MB tree: the process never grew to it
    local hwm = tonumber(H.read("/proc/" .. srv.pid .. "/status"):match("VmHWM:%s*(%d+)"))
    assert.is_true(hwm < 150 * 1024, "peak RSS " .. hwm .. " kB")
    local st2, v2 = srv:json("POST", "/decode-big", "[" .. string.rep("0,", 9999) .. "0]")
    assert.are.equal(200, st2)
    assert.are.equal(10000, v2.n)
  end)

  it("rejects invalid UTF-8 and NUL bytes per item and stores the valid neighbour", function()
    local sym = S.symbol("UTF")
    local body = '[{"symbol":"EUR\255\254","timeframe":"M1","ts":"2025-10-20T03:00:00Z","open":1,"high":1,"low":1,"close":1},' ..
      '{"symbol":"EUR\\u0000USD","timeframe":"M1","ts":"2025-10-20T03:00:00Z","open":1,"high":1,"low":1,"close":1},' ..
      tf.json.encode(candle(sym, "2025-10-20T03:00:00Z")) .. ']'
    local st, v = ingest(srv, "/ingest_batch", body)
    assert.are.equal(200, st)
    assert.are.equal("rejected", v.details[1].status)
    assert.matches("symbol: must be printable ASCII", v.details[1].error, 1, true)
    -- "\u0000" cannot live in a C string: it is read as U+FFFD, never cut
    assert.are.equal("rejected", v.details[2].status)
    assert.matches("symbol: must be printable ASCII (byte 3 is 0xef)", v.details[2].error, 1, true)
    assert.are.equal("inserted", v.details[3].status)
    -- a raw NUL byte inside the JSON is a syntax error with its position
    local st2, v2 = ingest(srv, "/ingest_batch", '[{"symbol":"A\0B"}]')
    assert.are.equal(400, st2)
    assert.matches("invalid JSON at byte 13: a NUL byte in a string", v2.error, 1, true)
  end)

  it("stores SQL in a symbol verbatim and never runs it", function()
    local sym = "x');DROP TABLE market_data;--" .. (os.time() % 1000)
    local st, v = ingest(srv, "/ingest", candle(sym, "2025-10-20T03:00:00Z"))
    assert.are.equal(200, st)
    assert.are.equal("inserted", v.details[1].status)
    assert.are.equal("1", H.psql(string.format("SELECT count(*) FROM market_data WHERE symbol = '%s'",
      sym:gsub("'", "''"))))
  end)

  it("rejects, per item, every timestamp PostgreSQL would refuse, and stores the rest", function()
    local sym = S.symbol("TS")
    local bad = { "9223372036854776", "9999999999999999", "0000-01-01T00:00:00Z",
                  "0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00", -62135596801, 2.6e14, -2.6e14 }
    local items = {}
    for _, ts in ipairs(bad) do items[#items + 1] = candle(sym, ts) end
    items[#items + 1] = candle(sym, "0001-01-01T00:00:00Z")
    items[#items + 1] = candle(sym, "9999-12-31T23:59:00Z")
    local w1 = candle(sym, "0001-01-02T00:00:00Z") -- its week began in year 0
    w1.timeframe = "W1"
    items[#items + 1] = w1
    local st, v = ingest(srv, "/ingest_batch", tf.json.encode(items))
    assert.are.equal(200, st)
    for i = 1, #bad do
      assert.are.equal("rejected", v.details[i].status, tostring(bad[i]))
      assert.matches("out of range", v.details[i].error, 1, true)
    end
    assert.are.equal("inserted", v.details[#bad + 1].status)
    assert.are.equal("inserted", v.details[#bad + 2].status)
    assert.are.equal("rejected", v.details[#bad + 3].status)
    assert.are.equal("2", H.psql(string.format("SELECT count(*) FROM market_data WHERE symbol = '%s'", sym)))
  end)

  it("does not let a path escape its route", function()
    -- an encoded slash is a slash: more segments than the route has
    assert.are.equal(404, (srv:request("GET", "/escape/..%2F..%2Fetc%2Fpasswd")))
    for _, p in ipairs{ "/escape/../admin/status", "/../admin/status", "/escape/x/../../admin/status" } do
      local st2 = srv:request("GET", p)
      assert.is_true(st2 == 401 or st2 == 404 or st2 == 400, p .. " answered " .. tostring(st2))
    end
  end)

  it("gives routes anyone may call 64KB of body unless they ask for more", function()
    assert.are.equal(200, (srv:request("POST", "/open", string.rep("x", 65536))))
    -- refused from Content-Length alone, before the body is sent
    local out = srv:raw("POST /open HTTP/1.1\r\nHost: x\r\nContent-Length: 65537\r\n\r\n", 2)
    assert.matches("^HTTP/1.1 413", out)
    assert.matches("limit of 65536 bytes", out)
    assert.are.equal(200, (srv:request("POST", "/open-big", string.rep("x", 500000))))
  end)
end)

describe("a hostile plugin", function()
  local srv
  setup(function()
    H.migrate()
    os.remove("/tmp/tf-hostile-pwned")
    srv = H.start_server{ plugins = { ["probe.lua"] = PROBE },
      env = { DATABASE_URL = "postgresql://tfuser:s3cret-pw@/nodb?host=/nonexistent&password=other-s3cret" } }
  end)
  teardown(function() srv:stop() end)

  local function probe(what)
    local st, v = srv:json("GET", "/escape/" .. what)
    assert.are.equal(200, st, what)
    assert.is_true(srv:alive(), what .. " killed the server:\n" .. (srv:log() or ""))
    return v.result
  end

  it("cannot reach os.execute, io, debug, package, dofile, string.dump or collectgarbage", function()
    for _, w in ipairs{ "os.execute", "io.open", "debug", "package", "dofile", "string.dump", "collectgarbage" } do
      assert.matches("^error: .*attempt to", probe(w), nil, false, w)
    end
    assert.is_nil(io.open("/tmp/tf-hostile-pwned"))
  end)

  it("cannot read files from a handler (tf.file.read is for assets, while it loads)", function()
    assert.matches("^error: .*only while a plugin loads", probe("tf.file.read"))
  end)

  it("cannot load bytecode or require outside lua/ and plugins/", function()
    assert.matches("binary", probe("bytecode"))
    assert.matches("^error: require: invalid module name", probe("require"))
  end)

  it("cannot crash the process through the C metamethods", function()
    -- once a segfault: getmetatable(req).__index(1, "headers")
    for _, w in ipairs{ "req_mt", "tf_mt", "string_mt" } do
      assert.matches("^error: .*index a boolean", probe(w), nil, false, w)
    end
  end)

  it("sees the database URL without its password", function()
    local url = probe("config_url")
    assert.is_nil(url:find("s3cret", 1, true), url)
    assert.are.equal("postgresql://tfuser:***@/nodb?host=/nonexistent&password=***", url)
  end)
end)

describe("a plugin with a database", function()
  it("cannot run stacked statements", function()
    H.migrate()
    local srv = H.start_server{ plugins = { ["probe.lua"] = PROBE } }
    local st, v = srv:json("GET", "/escape/stacked_sql")
    srv:stop()
    assert.are.equal(200, st)
    assert.matches("multiple commands", v.result)
    assert.are.equal("0", H.psql("SELECT count(*) FROM pg_class WHERE relname = 'hostile_stacked_ran'"))
  end)
end)

describe("reload and jobs", function()
  it("answers a failed reload with valid JSON however long the error and the request id", function()
    local srv = H.start_server{ plugins = { ["ok.lua"] = "tf.route('GET', '/ok', function() return 200, {} end)" } }
    srv:write_plugin("zz_bad.lua", "error(string.rep('e', 6000))")
    local rid = string.rep("r", 64)
    local st, v = srv:json("POST", "/admin/reload", nil, { ["X-API-Key"] = H.ADMIN_KEY, ["X-Request-Id"] = rid })
    srv:stop()
    assert.are.equal(422, st)
    assert.is_table(v)
    assert.is_false(v.ok)
    assert.are.equal(rid, v.request_id)
    assert.is_true(select(2, v.error:gsub("e", "")) >= 1000, v.error)
  end)

  it("lists every route in /admin/status however many there are (once cut at 64KB)", function()
    local srv = H.start_server{ plugins = { ["many.lua"] = [[
      for i = 1, 1500 do
        tf.route("GET", "/many/" .. string.rep("p", 80) .. "/" .. i, function() return 200, {} end)
      end
    ]] } }
    local st, v = srv:json("GET", "/admin/status", nil, H.admin_headers())
    srv:stop()
    assert.are.equal(200, st)
    assert.are.equal(1500, #v.routes)
    assert.are.equal("/many/" .. string.rep("p", 80) .. "/1500", v.routes[1500].path)
    assert.are.equal("many.lua", v.routes[1500].plugin)
    assert.are.equal(1500, #v.accounting)
  end)

  it("keeps a job watermark over 8KB whole from run to run", function()
    H.migrate()
    local name = "wm_big_" .. math.random(1, 1e9)
    local srv = H.start_server{ config = { jobs = { enabled = true } }, plugins = { ["j.lua"] = string.format([[
      tf.job.every(%q, "300ms", function(ctx)
        local wm = ctx.watermark or { n = 0, pad = string.rep("x", 20000) }
        assert(#wm.pad == 20000, "watermark cut to " .. #wm.pad)
        return { rows = wm.n + 1, watermark = { n = wm.n + 1, pad = wm.pad } }
      end)
    ]], name) } }
    local rows
    for _ = 1, 100 do
      rows = H.psql(string.format("SELECT string_agg(rows::text || result, ',' ORDER BY id) FROM job_runs WHERE name = '%s'", name))
      if select(2, rows:gsub(",", "")) >= 3 then break end
      H.sleep(0.1)
    end
    srv:stop()
    assert.matches("^1ok,2ok,3ok", rows)
  end)
end)
