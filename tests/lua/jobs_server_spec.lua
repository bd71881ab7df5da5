-- The shipped jobs under the real scheduler: ticks posted to /ingest/tick
-- become M1 bars, M5 bars and indicator values when the jobs are run through
-- POST /admin/jobs/{name}/run, with the watermark carried between runs by the
-- scheduler (job_state, JSON). Jobs are limited to this test's symbol.
local S = require("tests.lua.jobs_support")

describe("shipped jobs in the server", function()
  local H, srv, sym
  setup(function()
    H = S.migrate()
    sym = S.symbol()
    srv = H.start_server{ shipped = true, config = {
      jobs = {
        enabled = true,
        tick_aggregator = { every = "1h", symbols = { sym }, settle = 0 },
        rollups = { every = "1h", symbols = { sym } },
        indicators = { every = "1h", targets = { { symbols = { sym }, timeframes = { "M1", "M5" }, sets = { "mt5_default" } } } },
        strategies = { enabled = false }, maintenance = { enabled = false },
      },
    } }
  end)
  teardown(function()
    if srv then srv:stop() end
    S.cleanup({ sym })
  end)

  local function post_ticks(t0, n)
    local ticks = {}
    for i = 1, n do
      local bid = 1.1 + math.sin(i / 7) * 0.001
      ticks[i] = { symbol = sym, ts = t0 + i * 1.5, bid = bid, ask = bid + 0.0001 * (1 + i % 3) }
    end
    local st, body = srv:json("POST", "/ingest/tick", { ticks = ticks }, H.ingest_headers())
    assert.are.equal(200, st, tf.json.encode(body))
  end

  local function run(job)
    local st, rec = srv:json("POST", "/admin/jobs/" .. job .. "/run", nil, H.admin_headers())
    assert.are.equal(200, st, tf.json.encode(rec))
    return rec
  end

  local REF = [[SELECT date_trunc('minute', ts AT TIME ZONE 'UTC') AS m,
      ((array_agg((bid + ask) / 2 ORDER BY ts, seq))[1])::numeric(18,8), max((bid + ask) / 2)::numeric(18,8),
      min((bid + ask) / 2)::numeric(18,8), ((array_agg((bid + ask) / 2 ORDER BY ts DESC, seq DESC))[1])::numeric(18,8),
      count(*)::numeric(18,2), avg((ask - bid)::numeric)::numeric(18,8)
    FROM ticks WHERE symbol = $1 GROUP BY 1]]
  local GOT = [[SELECT ts AT TIME ZONE 'UTC', open, high, low, close, volume, spread
    FROM market_data WHERE symbol = $1 AND timeframe = 'M1']]

  it("aggregates posted ticks, late ones included, then rolls up and computes indicators", function()
    post_ticks(1760000000, 600)
    run("tick_aggregator")
    local d, got, want = S.diff(GOT, REF, sym)
    assert.are.equal(0, d); assert.is_true(got > 10); assert.are.equal(want, got)
    local wm = tf.json.decode(tf.db.query("SELECT watermark FROM job_state WHERE name = 'tick_aggregator'")[1].watermark)
    assert.is_true(wm.seen > 0)
    -- late ticks inside minutes already built, then a re-run with the stored watermark
    post_ticks(1760000100, 40)
    run("tick_aggregator")
    d, got, want = S.diff(GOT, REF, sym)
    assert.are.equal(0, d); assert.are.equal(want, got)
    run("rollups")
    assert.is_true(tf.db.query("SELECT count(*) AS n FROM market_data WHERE symbol = $1 AND timeframe = 'M5' AND source = 'rollup'", sym)[1].n >= 3)
    run("indicators")
    local n = tf.db.query("SELECT count(rsi) AS n FROM market_data WHERE symbol = $1 AND timeframe = 'M1'", sym)[1].n
    assert.is_true(n > 0)
  end)
end)

describe("plugins/jobs.lua config checks", function()
  local H = require("tests.integration.helper")

  local function check(jobs)
    local dir = H.tmpdir()
    local cfg = { listen = "127.0.0.1:1", plugins = { dir = H.ROOT .. "/plugins" }, lua = { path = { H.ROOT .. "/lua" } },
                  jobs = jobs }
    H.write(dir .. "/c.lua", "return " .. H.lua_literal(cfg) .. "\n")
    local out = H.sh(string.format("%s check --config %s/c.lua 2>&1; echo rc=$?", H.BIN, dir))
    os.execute("rm -rf " .. dir)
    return out
  end

  it("accepts the jobs section of the shipped, commented config", function()
    local ex = dofile(H.ROOT .. "/config/tickforge.lua")
    assert.matches("rc=0", check(ex.jobs))
  end)

  it("refuses a wrong value with an error naming its key", function()
    for key, jobs in pairs({
      ["jobs.tick_aggregator.price"] = { tick_aggregator = { price = "median" } },
      ["jobs.rollups.timeframes"] = { rollups = { timeframes = { "H5" } } },
      ["jobs.maintenance.retention.ticks"] = { maintenance = { retention = { ticks = "a month" } } },
      ["jobs.indicators.enabled"] = { indicators = { enabled = "yes" } },
      ["jobs.strategies"] = { strategies = { every = "often" } },
    }) do
      local out = check(jobs)
      assert.matches("rc=[1-9]", out, key)
      assert.is_truthy(out:find(key, 1, true), key .. ": " .. out)
    end
  end)
end)
