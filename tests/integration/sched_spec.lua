-- The scheduler end to end: the real binary, real PostgreSQL, jobs from
-- inline plugins. Job names carry a random suffix so runs never mix with
-- other tests' rows in job_state / job_runs.
local H = require("tests.integration.helper")

local function uniq(prefix) return prefix .. "_" .. math.random(1, 1e9) end

local function runs(name, where)
  return tonumber(H.psql(string.format("SELECT count(*) FROM job_runs WHERE name = '%s'%s", name,
    where and (" AND " .. where) or "")))
end

local function wait_for(pred, seconds)
  local deadline = os.time() + (seconds or 10)
  while os.time() <= deadline do
    if pred() then return true end
    H.sleep(0.1)
  end
  return false
end

describe("the scheduler", function()
  setup(function()
    math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)"), 16) % 100000)
    H.migrate()
  end)

  it("runs a job every period, hands each run the previous watermark, and keeps history", function()
    local name = uniq("counter")
    local srv = H.start_server{ plugins = { ["j.lua"] = string.format([[
      tf.job.every(%q, "500ms", function(ctx)
        local n = (ctx.watermark and ctx.watermark.n or 0) + 1
        ctx.log.info("counted", { n = n })
        return { rows = n, watermark = { n = n } }
      end)
    ]], name) } }
    assert.is_true(wait_for(function() return runs(name) >= 4 end, 10))
    local st, v = srv:json("GET", "/admin/jobs", nil, H.admin_headers())
    assert.are.equal(200, st)
    local job
    for _, j in ipairs(v.jobs) do if j.name == name then job = j end end
    assert.is_table(job)
    assert.are.equal(500, job.every_ms)
    assert.is_true(job.runs >= 4)
    assert.are.equal("ok", job.history[1].result)
    -- rows count up by one each run: the watermark went from each run to the next
    local rows = H.psql(string.format("SELECT string_agg(rows::text, ',' ORDER BY id) FROM job_runs WHERE name = '%s'", name))
    local i = 0
    for r in rows:gmatch("%d+") do i = i + 1; assert.are.equal(i, tonumber(r)) end
    local line = srv:log():match('[^\n]*msg="counted" src=[^ ]*j.lua:3 [^\n]*')
    assert.is_string(line)
    assert.matches(' job="' .. name .. '"', line, 1, true)
    assert.matches(" n=%d+", line)
    -- a manual run answers with its record and continues the watermark
    local st2, rec = srv:json("POST", "/admin/jobs/" .. name .. "/run", nil, H.admin_headers())
    assert.are.equal(200, st2)
    assert.are.equal("ok", rec.result)
    assert.is_true(rec.manual)
    assert.is_true(rec.rows > i)
    assert.are.equal(404, (srv:request("POST", "/admin/jobs/no_such_job/run", nil, H.admin_headers())))
    assert.are.equal(403, (srv:request("GET", "/admin/jobs", nil, { ["X-API-Key"] = H.INGEST_KEY })))
    srv:stop()
  end)

  it("records a job's error and retries it the next period with the old watermark", function()
    local name = uniq("flaky")
    local srv = H.start_server{ config = { scheduler = { workers = 1 } }, plugins = { ["j.lua"] = string.format([[
      local failed = false
      tf.job.every(%q, "500ms", function(ctx)
        local n = (ctx.watermark or 0) + 1
        if n == 2 and not failed then
          failed = true
          error("transient failure")
        end
        return { watermark = n, rows = n }
      end)
    ]], name) } }
    assert.is_true(wait_for(function() return runs(name, "result = 'ok'") >= 3 end, 10))
    assert.are.equal(1, runs(name, "result = 'error' AND error LIKE '%transient failure%'"))
    -- the run after the failure started again from watermark 1: rows go 1, 2, 3 among the ok runs
    local rows = H.psql(string.format("SELECT string_agg(rows::text, ',' ORDER BY id) FROM job_runs WHERE name = '%s' AND result = 'ok'", name))
    assert.matches("^1,2,3", rows)
    srv:stop()
  end)

  it("never runs a job twice at once: a slow job's overdue periods are skipped", function()
    local name = uniq("slow")
    local srv = H.start_server{ plugins = { ["j.lua"] = string.format([[
      tf.job.every(%q, "200ms", function(ctx)
        tf.db.exec("INSERT INTO sched_test_overlap (job, t0) VALUES ($1, clock_timestamp())", ctx.name)
        local t = os.clock() + 0.7 while os.clock() < t do end
        tf.db.exec("UPDATE sched_test_overlap SET t1 = clock_timestamp() WHERE job = $1 AND t1 IS NULL", ctx.name)
      end, { timeout = "5s" })
    ]], name) } }
    H.psql("CREATE TABLE IF NOT EXISTS sched_test_overlap (job text, t0 timestamptz, t1 timestamptz)")
    -- (a bound for a loaded machine: each run spins 0.7 s of CPU; under
    -- sanitizers and a busy machine three runs took more than 15 s)
    assert.is_true(wait_for(function() return runs(name, "result = 'ok'") >= 3 end, 45))
    srv:stop()
    local overlaps = H.psql(string.format([[SELECT count(*) FROM sched_test_overlap a JOIN sched_test_overlap b
      ON a.job = b.job AND a.ctid < b.ctid AND a.t0 < b.t1 AND b.t0 < a.t1 WHERE a.job = '%s']], name))
    assert.are.equal("0", overlaps)
    assert.is_true(runs(name, "result = 'ok'") >= 3)
  end)

  it("kills a job that exceeds its timeout and keeps scheduling it", function()
    local name = uniq("stuck")
    local srv = H.start_server{ plugins = { ["j.lua"] = string.format([[
      tf.job.every(%q, "300ms", function() while true do end end, { timeout = "200ms" })
    ]], name) } }
    assert.is_true(wait_for(function() return runs(name, "result = 'timeout'") >= 2 end, 10))
    assert.is_true(srv:alive())
    srv:stop()
  end)

  it("rejects bad job definitions with file:line at reload", function()
    local srv = H.start_server{ plugins = { ["ok.lua"] = "" } }
    local cases = {
      { 'tf.job.every("a", "soon", function() end)', "interval must be from 100ms to 366d" },
      { 'tf.job.cron("a", "61 * * * *", function() end)', "field 1 %(minute%)" },
      { 'tf.job.every("a b", "1s", function() end)', "name 'a b' must be" },
      { 'tf.job.every("a", "1s", function() end)\ntf.job.every("a", "1s", function() end)', "j.lua:2: tf.job: a job named 'a' is already registered" },
      { 'tf.job.every("a", "1s", function() end, { overlap = "maybe" })', "opts.overlap must be" },
    }
    for _, c in ipairs(cases) do
      srv:write_plugin("j.lua", c[1])
      local st, r = srv:reload()
      assert.are.equal(422, st, c[1])
      assert.matches(c[2], r.error)
    end
    srv:stop()
  end)

  it("lets a running job finish on its code across a reload; the next run uses the new code", function()
    local name = uniq("reloaded")
    local function plugin(version, seconds)
      return string.format([[
        tf.job.every(%q, "500ms", function(ctx)
          local t = os.clock() + %s while os.clock() < t do end
          return { note = %q }
        end, { timeout = "10s" })
      ]], name, seconds, version)
    end
    local srv = H.start_server{ plugins = { ["j.lua"] = plugin("v1", 1.5) } }
    assert.is_true(wait_for(function()
      local _, v = srv:json("GET", "/admin/jobs", nil, H.admin_headers())
      for _, j in ipairs(v.jobs) do if j.name == name and j.running then return true end end
    end, 10))
    srv:write_plugin("j.lua", plugin("v2", 0))
    assert.are.equal(200, (srv:reload()))
    assert.is_true(wait_for(function() return runs(name, "note = 'v2' AND error IS NULL") >= 1 end, 10))
    -- the run in progress at the reload completed with v1, before any v2 run
    local notes = H.psql(string.format("SELECT string_agg(note, ',' ORDER BY id) FROM job_runs WHERE name = '%s' AND result = 'ok'", name))
    assert.matches("^v1,.*v2", notes)
    srv:stop()
  end)

  it("stops scheduling a job removed by a reload", function()
    local name = uniq("removed")
    local srv = H.start_server{ plugins = { ["j.lua"] = string.format('tf.job.every(%q, "300ms", function() end)', name) } }
    assert.is_true(wait_for(function() return runs(name) >= 1 end, 10))
    srv:write_plugin("j.lua", "")
    srv:reload()
    H.sleep(0.5)
    local n = runs(name)
    H.sleep(1.2)
    assert.are.equal(n, runs(name))
    local _, v = srv:json("GET", "/admin/jobs", nil, H.admin_headers())
    for _, j in ipairs(v.jobs) do assert.are_not.equal(name, j.name) end
    srv:stop()
  end)

  it("runs each period once in total across two instances on one database", function()
    local name = uniq("shared")
    H.psql("CREATE TABLE IF NOT EXISTS sched_test_slots (job text, scheduled double precision, instance text)")
    local plugin = string.format([[
      tf.job.every(%q, "250ms", function(ctx)
        tf.db.exec("INSERT INTO sched_test_slots VALUES ($1, $2, $3)", ctx.name, ctx.scheduled, ctx.instance)
      end)
    ]], name)
    local a = H.start_server{ plugins = { ["j.lua"] = plugin } }
    local b = H.start_server{ plugins = { ["j.lua"] = plugin } }
    H.sleep(4)
    a:stop()
    b:stop()
    local total = tonumber(H.psql(string.format("SELECT count(*) FROM sched_test_slots WHERE job = '%s'", name)))
    local distinct = tonumber(H.psql(string.format("SELECT count(DISTINCT scheduled) FROM sched_test_slots WHERE job = '%s'", name)))
    local instances = tonumber(H.psql(string.format("SELECT count(DISTINCT instance) FROM sched_test_slots WHERE job = '%s'", name)))
    assert.is_true(total >= 10, "ran " .. total .. " times")
    assert.are.equal(distinct, total)
    assert.is_true(instances >= 1)
  end)

  it("lets a running job finish at shutdown, within the bound", function()
    local name = uniq("draining")
    local srv = H.start_server{ plugins = { ["j.lua"] = string.format([[
      tf.job.every(%q, "300ms", function()
        local t = os.clock() + 1.0 while os.clock() < t do end
        return { note = "finished" }
      end, { timeout = "10s" })
    ]], name) } }
    assert.is_true(wait_for(function()
      local _, v = srv:json("GET", "/admin/jobs", nil, H.admin_headers())
      for _, j in ipairs(v.jobs) do if j.name == name and j.running and j.runs == 0 then return true end end
    end, 10))
    srv:signal("TERM")
    assert.is_true(wait_for(function() return not srv:alive() end, 8))
    assert.are.equal(1, runs(name, "result = 'ok' AND note = 'finished' AND error IS NULL"))
    srv:stop()
  end)

  it("keeps scheduling after hundreds of reloads that rename jobs (slots are reused)", function()
    -- luacheck off: 300 linter runs would only slow this test down
    local srv = H.start_server{ config = { scheduler = { workers = 1 } }, plugins = { ["j.lua"] = "" },
                                env = { TICKFORGE_LUACHECK = "off" } }
    local last
    for i = 1, 300 do
      last = uniq("renamed" .. i)
      srv:write_plugin("j.lua", string.format('tf.job.every(%q, "1h", function() return { note = "ran" } end)', last))
      assert.are.equal(200, (srv:reload()))
    end
    local v
    assert.is_true(wait_for(function()
      v = select(2, srv:json("GET", "/admin/jobs", nil, H.admin_headers()))
      return #v.jobs == 1 and v.jobs[1].name == last
    end, 5))
    local st, rec = srv:json("POST", "/admin/jobs/" .. last .. "/run", nil, H.admin_headers())
    assert.are.equal(200, st)
    assert.are.equal("ran", rec.note)
    assert.are.equal(tf.json.null, rec.error)
    assert.not_matches("job table full", srv:log())
    srv:stop()
  end)
end)
