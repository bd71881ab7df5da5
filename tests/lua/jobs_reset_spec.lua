-- Admin control of a job's watermark through the real server: an EA sends
-- history older than the indicators job's watermark, which the job does not
-- notice; POST /admin/jobs/indicators/run with {"reset_watermark": true}
-- rebuilds the set from scratch so every value equals a batch computation
-- over the whole history. Also: the small JSON body many clients send ({})
-- is accepted, a wrong one is a 400 naming the option, and successful runs
-- record a note with error null (job_runs, /admin/jobs).
local S = require("tests.lua.jobs_support")

describe("resetting a job's watermark", function()
  local H, srv, sym
  local T0, N_OLD, N_NEW = 1761000000, 120, 80 -- minute-aligned epoch

  setup(function()
    H = S.migrate()
    sym = S.symbol()
    srv = H.start_server{ shipped = true, config = {
      jobs = {
        enabled = true,
        tick_aggregator = { enabled = false }, rollups = { enabled = false },
        indicators = { every = "1h", targets = { { symbols = { sym }, timeframes = { "M1" }, sets = { "mt5_default" } } } },
        strategies = { enabled = false }, maintenance = { enabled = false },
      },
    } }
  end)
  teardown(function()
    if srv then srv:stop() end
    S.cleanup({ sym })
  end)

  -- Candles i = first..last (minute i after T0) as an EA sends them.
  local function send(first, last)
    local candles = {}
    for i = first, last do
      local o = 1.1 + math.sin(i / 9) * 0.01 + i * 0.0001
      candles[#candles + 1] = { symbol = sym, timeframe = "M1", ts = T0 + i * 60, open = o, high = o + 0.002,
                                low = o - 0.0015, close = o + math.cos(i / 5) * 0.001, volume = 10 + i % 7 }
    end
    local st, body = srv:json("POST", "/ingest_batch", candles, H.ingest_headers())
    assert.are.equal(200, st, tf.json.encode(body))
    assert.are.equal(last - first + 1, body.inserted)
  end

  local function run(job, body)
    local st, text = srv:request("POST", "/admin/jobs/" .. job .. "/run", body, H.admin_headers())
    local rec = tf.json.decode(text)
    assert.are.equal(200, st, text)
    return rec
  end

  -- Stored rsi/macd against a batch computation over every stored bar.
  local function mismatches()
    local want = tf.indicators.compute("mt5_default", sym, "M1")
    local got = tf.db.query([[SELECT rsi::float8 AS rsi, macd::float8 AS macd FROM market_data
      WHERE symbol = $1 AND timeframe = 'M1' ORDER BY ts]], sym)
    assert.are.equal(want.n, #got)
    local bad = 0
    for i = 1, want.n do
      for _, col in ipairs({ "rsi", "macd" }) do
        local w, g = want.values[col][i], got[i][col]
        if w == w then -- a value (not NaN): it must be stored, to numeric(18,8)'s precision
          if g == nil or math.abs(g - w) > 1e-8 then bad = bad + 1 end
        elseif g ~= nil then
          bad = bad + 1
        end
      end
    end
    return bad
  end

  it("rebuilds an indicator set after history older than the watermark is resent", function()
    send(N_OLD + 1, N_OLD + N_NEW)
    local rec = run("indicators")
    assert.are.equal("ok", rec.result)
    assert.are.equal(0, mismatches())
    -- the EA resends older history; a plain run (with the body {} clients
    -- send by default) does not notice it
    send(1, N_OLD)
    rec = run("indicators", "{}")
    assert.is_true(rec.ok)
    assert.are.equal("ok", rec.result)
    assert.is_false(rec.reset_watermark)
    assert.is_true(mismatches() > 0)
    -- the reset run recomputes everything from the whole history
    rec = run("indicators", '{"reset_watermark": true}')
    assert.is_true(rec.ok)
    assert.are.equal("ok", rec.result)
    assert.is_true(rec.reset_watermark)
    assert.is_true(rec.rows >= N_OLD + N_NEW)
    assert.are.equal(0, mismatches())
    -- and the watermark it stored carries on: the next plain run has nothing to do
    rec = run("indicators")
    assert.are.equal(0, rec.rows)
    assert.are.equal("0 series updated", rec.note)
  end)

  it("answers a body that is not run options with 400 naming what is wrong, and an oversized one 413", function()
    local cases = {
      { '{"reset": true}', "unknown option 'reset' %(the options are: reset_watermark%)" },
      { '{"reset_watermark": "yes"}', "reset_watermark must be true or false" },
      { "[1]", "must be a JSON object" },
      { "{", "must be a JSON object" },
    }
    for _, c in ipairs(cases) do
      local st, text = srv:request("POST", "/admin/jobs/indicators/run", c[1], H.admin_headers())
      assert.are.equal(400, st, c[1])
      local body = tf.json.decode(text)
      assert.is_false(body.ok)
      assert.matches(c[2], body.error)
    end
    local st = srv:request("POST", "/admin/jobs/indicators/run", '{"x":"' .. string.rep("a", 5000) .. '"}', H.admin_headers())
    assert.are.equal(413, st)
    assert.are.equal(404, (srv:request("POST", "/admin/jobs/nope/run", "{}", H.admin_headers())))
  end)

  it("records a successful run's message as its note, with error null, in job_runs and /admin/jobs", function()
    local rec = run("indicators", "{}")
    assert.are.equal("ok", rec.result)
    assert.are.equal(tf.json.null, rec.error)
    assert.are.equal("0 series updated", rec.note)
    local row = tf.db.query([[SELECT error, note FROM job_runs WHERE name = 'indicators' AND result = 'ok'
      ORDER BY id DESC LIMIT 1]])[1]
    assert.is_nil(row.error)
    assert.are.equal("0 series updated", row.note)
    local _, jobs = srv:json("GET", "/admin/jobs", nil, H.admin_headers())
    assert.is_true(jobs.ok)
    local job
    for _, j in ipairs(jobs.jobs) do if j.name == "indicators" then job = j end end
    assert.are.equal(tf.json.null, job.history[1].error)
    assert.are.equal("0 series updated", job.history[1].note)
    assert.are.equal(0, tf.db.query("SELECT count(*) AS n FROM job_runs WHERE result = 'ok' AND error IS NOT NULL")[1].n)
  end)
end)
