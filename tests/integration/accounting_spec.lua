-- Per-plugin accounting: what each route and each job costs (calls,
-- failures, Lua CPU, wall time, time waiting, statements, bytes allocated),
-- in /metrics and in /admin/status, kept across reloads. Real binary, real
-- PostgreSQL, real HTTP.
local H = require("tests.integration.helper")
local prom = require("tests.integration.prom")

local PLUGIN = [[
tf.route("GET", "/acct/db", function()
  tf.db.query("SELECT 1")
  tf.db.query("SELECT pg_sleep(0.05)")
  tf.db.exec("SELECT 2")
  return 200, "db"
end, { auth = "none" })

tf.route("GET", "/acct/cpu", function()
  local s = 0
  for i = 1, 2000000 do s = s + i % 7 end
  local big = string.rep("x", 1048576) .. s -- one 1 MB string, built in the VM
  return 200, tostring(#big)
end, { auth = "none" })

tf.route("POST", "/acct/fail", function() error("boom") end, { auth = "none" })

tf.job.every("acct_job", "1h", function()
  tf.db.query("SELECT 1")
  tf.db.query("SELECT pg_sleep(0.02)")
end)
]]

local function metrics(srv)
  local st, text = srv:request("GET", "/metrics")
  assert.are.equal(200, st)
  return assert(prom.parse(text))
end

local function route(f, what, name)
  return prom.value(f, "tf_route_" .. what, { route = name, plugin = "acct.lua" })
end

describe("per-plugin accounting", function()
  local srv
  setup(function()
    H.migrate()
    srv = H.start_server{ plugins = { ["acct.lua"] = PLUGIN }, config = { jobs = { enabled = true } } }
  end)
  teardown(function() if srv then srv:stop() end end)

  it("counts each route's calls, failures, statements, waits, CPU and allocations", function()
    for _ = 1, 5 do assert.are.equal(200, (srv:request("GET", "/acct/db"))) end
    for _ = 1, 3 do assert.are.equal(200, (srv:request("GET", "/acct/cpu"))) end
    for _ = 1, 2 do assert.are.equal(500, (srv:request("POST", "/acct/fail"))) end
    local f = metrics(srv)
    assert.are.equal(5, route(f, "calls_total", "GET /acct/db"))
    assert.are.equal(0, route(f, "failures_total", "GET /acct/db"))
    assert.are.equal(15, route(f, "db_statements_total", "GET /acct/db"))
    -- each call slept 50 ms in PostgreSQL: at least that long waiting, and
    -- its wall time covers its waits
    assert.is_true(route(f, "wait_seconds_total", "GET /acct/db") >= 0.25)
    assert.is_true(route(f, "wall_seconds_total", "GET /acct/db") >= route(f, "wait_seconds_total", "GET /acct/db"))
    -- the loop route costs more Lua CPU than the waiting one, and allocates its 1 MB strings
    assert.are.equal(3, route(f, "calls_total", "GET /acct/cpu"))
    assert.are.equal(0, route(f, "db_statements_total", "GET /acct/cpu"))
    assert.is_true(route(f, "cpu_seconds_total", "GET /acct/cpu") > route(f, "cpu_seconds_total", "GET /acct/db"))
    assert.is_true(route(f, "alloc_bytes_total", "GET /acct/cpu") >= 3 * 1048576)
    assert.are.equal(2, route(f, "calls_total", "POST /acct/fail"))
    assert.are.equal(2, route(f, "failures_total", "POST /acct/fail"))
  end)

  it("counts each job's runs the same way", function()
    local st = srv:json("POST", "/admin/jobs/acct_job/run", {}, H.admin_headers())
    assert.are.equal(200, st)
    local f = metrics(srv)
    local job = { job = "acct_job", plugin = "acct.lua" }
    assert.are.equal(1, prom.value(f, "tf_job_calls_total", job))
    assert.are.equal(2, prom.value(f, "tf_job_db_statements_total", job))
    assert.is_true(prom.value(f, "tf_job_wait_seconds_total", job) >= 0.02)
    assert.is_true(prom.value(f, "tf_job_cpu_seconds_total", job) > 0)
  end)

  it("shows the same figures in /admin/status, and keeps them across a reload", function()
    local function entry(kind, name)
      local st, s = srv:json("GET", "/admin/status", nil, H.admin_headers())
      assert.are.equal(200, st)
      for _, e in ipairs(s.accounting) do
        if e.kind == kind and e.name == name then return e end
      end
    end
    local e = entry("route", "GET /acct/db")
    assert.are.equal("acct.lua", e.plugin)
    assert.are.equal(5, e.calls)
    assert.are.equal(15, e.statements)
    assert.is_true(e.wait_s >= 0.25 and e.wall_s >= e.wait_s and e.cpu_s > 0)
    assert.are.equal(2, entry("route", "POST /acct/fail").failures)
    assert.are.equal(1, entry("job", "acct_job").calls)
    assert.are.equal(200, (srv:reload()))
    assert.are.equal(200, (srv:request("GET", "/acct/db")))
    assert.are.equal(6, entry("route", "GET /acct/db").calls)
    assert.are.equal(6, route(metrics(srv), "calls_total", "GET /acct/db"))
  end)
end)
