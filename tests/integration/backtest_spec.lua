-- The backtest as users meet it: the real `tickforge backtest` and
-- `tickforge export` binaries over bars stored in real PostgreSQL (files
-- written, exit codes, clear errors, a sweep), and POST/GET /admin/backtest
-- through the real server and its job.
local H = require("tests.integration.helper")
local S = require("tests.lua.jobs_support")
local common = require("tickforge.cli.common")

local T0 = 1735689600 -- 2025-01-01T00:00:00Z

-- Runs the binary; returns exit status, stdout, stderr.
local function tickforge(args)
  local dir = H.tmpdir()
  local cmd = string.format("cd %s && %s %s >%s/out 2>%s/err", H.ROOT, H.BIN, args, dir, dir)
  local _, _, code = os.execute(cmd)
  local out, err = H.read(dir .. "/out"), H.read(dir .. "/err")
  H.sh("rm -rf " .. dir)
  return code, out, err
end

describe("tickforge backtest (CLI)", function()
  local sym, dir
  setup(function()
    H.migrate()
    sym = S.symbol("CLI")
    S.bars(sym, "M5", T0, 6000, 300)
    dir = H.tmpdir()
    common.load_plugins() -- the shipped strategies, as the CLI sees them
  end)
  teardown(function()
    S.cleanup({ sym })
    H.sh("rm -rf " .. dir)
    tf.strategy.clear()
  end)

  it("writes the JSON report and prints the figures, as tf.backtest.run computes them", function()
    local code, out, err = tickforge(string.format(
      "backtest rsi_reversal --symbol %s --timeframe M5 --from 2025-01-03 --to 2025-01-20T12:00 --commission 3 " ..
      "--slippage 1 --json %s/r.json --html %s/r.html --trades", sym, dir, dir))
    assert.are.equal(0, code, err)
    local r = tf.json.decode(H.read(dir .. "/r.json"))
    local want = tf.backtest.run{ strategy = "rsi_reversal", symbols = { sym }, timeframe = "M5", from = "2025-01-03",
                                  to = "2025-01-20T12:00", commission = 3, slippage = 1 }
    assert.is_true(want.summary.trades > 5)
    assert.are.equal(want.summary.trades, r.summary.trades)
    assert.are.equal(want.summary.net_profit, r.summary.net_profit)
    assert.are.equal(want.bars, r.bars)
    assert.are.equal("2025-01-20T12:00:00Z", r.to)
    assert.are.equal(#want.trades, #r.trades)
    assert.are.equal(want.trades[1].entry_price, r.trades[1].entry_price)
    assert.is_truthy(out:find("Total net profit", 1, true))
    assert.is_truthy(out:find(string.format("%.2f", want.summary.net_profit), 1, true))
    assert.is_truthy(out:find("rsi_reversal on " .. sym .. " M5", 1, true))
    local html = H.read(dir .. "/r.html")
    assert.is_truthy(html:find("<!doctype html>", 1, true))
    assert.is_truthy(html:find("Total net profit", 1, true))
    assert.is_nil(html:find("<script src", 1, true)) -- nothing fetched when opened
  end)

  it("exits 2 with a message naming the argument for bad input, and 1 when there is nothing to test", function()
    local cases = {
      { "backtest", "give exactly one STRATEGY" },
      { "backtest rsi_reversal --cash lots", "--cash: 'lots' is not a number" },
      { "backtest rsi_reversal --frobnicate", "unknown option --frobnicate" },
      { "backtest rsi_reversal --timeframe M7", "timeframe: 'M7' is not an MT5 timeframe" },
      { "backtest rsi_reversal --from 2025-02-30", "from: '2025-02-30' is not a date" },
      { "backtest no_such_strategy", "strategy: no strategy named 'no_such_strategy' (registered: " },
      { "backtest rsi_reversal --param nope=1", "params: strategy 'rsi_reversal' has no parameter 'nope'" },
      { "backtest rsi_reversal --param low=a,b", "--param low: 'a' is not a number" },
      { "backtest rsi_reversal --mode fifo", "mode: must be netting or hedging" },
      { "backtest rsi_reversal --symbol " .. sym .. " --param low=20,30 --sort luck", "--sort: 'luck' is not a figure" },
      { "backtest rsi_reversal --json", "--json needs a value" },
    }
    for _, c in ipairs(cases) do
      local code, out, err = tickforge(c[1])
      assert.are.equal(2, code, c[1] .. "\n" .. err)
      assert.is_truthy(err:find(c[2], 1, true), c[1] .. " said: " .. err)
      assert.are.equal("", out)
    end
    local code, _, err = tickforge("backtest rsi_reversal --symbol NO_BARS_HERE --timeframe M5")
    assert.are.equal(1, code)
    assert.is_truthy(err:find("no stored M5 bars of NO_BARS_HERE", 1, true), err)
    code = tickforge(string.format("backtest rsi_reversal --symbol %s --json /nonexistent/dir/r.json", sym))
    assert.are.equal(1, code)
    local help
    code, help = tickforge("backtest --help")
    assert.are.equal(0, code)
    assert.is_truthy(help:find("--param k=v", 1, true))
  end)

  it("sweeps a parameter grid in child processes and sorts the table by the chosen figure", function()
    local code, out, err = tickforge(string.format(
      "backtest rsi_reversal --symbol %s --timeframe M5 --from 2025-01-03 --param low=20,30 --param high=70,80 " ..
      "--sort profit_factor --jobs 2 --json %s/sweep.json", sym, dir))
    assert.are.equal(0, code, err)
    local sw = tf.json.decode(H.read(dir .. "/sweep.json"))
    assert.are.equal(4, sw.points)
    assert.are.equal(4, #sw.results)
    for i = 2, #sw.results do
      local function pf(r) -- JSON null is the inf of a point with no losing trade
        local v = r.summary.profit_factor
        return type(v) == "number" and v or math.huge
      end
      assert.is_true(pf(sw.results[i - 1]) >= pf(sw.results[i]))
    end
    -- each point is the run with those parameters (a child reads the bars once for all its points)
    local seen = {}
    for _, res in ipairs(sw.results) do
      local p = res.params
      seen[p.low .. "/" .. p.high] = true
      local one = tf.backtest.run{ strategy = "rsi_reversal", symbols = { sym }, timeframe = "M5", from = "2025-01-03",
                                   params = { low = p.low, high = p.high } }
      assert.are.equal(one.summary.net_profit, res.summary.net_profit)
      assert.are.equal(one.summary.trades, res.summary.trades)
      assert.are.equal(one.summary.max_drawdown, res.summary.max_drawdown)
    end
    assert.is_true(seen["20/70"] and seen["20/80"] and seen["30/70"] and seen["30/80"])
    assert.is_truthy(out:find("4 points, 2 at a time", 1, true))
    assert.is_truthy(out:find("sorted by profit_factor", 1, true))
  end)

  it("exports bars, the set's values and forward-return labels as CSV", function()
    local code, _, err = tickforge(string.format(
      "export --symbol %s --timeframe M5 --set mt5_default --from 2025-01-10 --to 2025-01-11 --label ret_fwd_5 " ..
      "--label ret_fwd_1 --out %s/d.csv", sym, dir))
    assert.are.equal(0, code, err)
    local lines = {}
    for l in H.read(dir .. "/d.csv"):gmatch("[^\n]+") do lines[#lines + 1] = l end
    assert.are.equal("time,symbol,timeframe,open,high,low,close,volume,spread,rsi,macd,macd_signal,macd_hist,atr," ..
      "bb_upper,bb_middle,bb_lower,ret_fwd_5,ret_fwd_1", lines[1])
    assert.are.equal(290, #lines) -- a header and 289 bars: both ends are included
    local f = {}
    for v in (lines[2] .. ","):gmatch("([^,]*),") do f[#f + 1] = v end
    assert.are.equal("2025-01-10T00:00:00Z", f[1])
    local batch = tf.indicators.compute("mt5_default", sym, "M5")
    local rows = tf.db.query([[SELECT close::float8 AS c FROM market_data WHERE symbol = $1 AND timeframe = 'M5'
      AND ts >= '2025-01-10' ORDER BY ts LIMIT 6]], sym)
    local i0
    for i = 1, batch.n do if batch.time[i] == 1736467200 then i0 = i break end end
    assert.are.equal(require("tickforge.backtest").numeric8(batch.values.rsi[i0]), tonumber(f[10]))
    assert.are.equal(rows[6].c / rows[1].c - 1, tonumber(f[18]))
    assert.are.equal(rows[2].c / rows[1].c - 1, tonumber(f[19]))
    -- bad input: exit 2 naming it
    local bad = { { "export --timeframe M5 --set mt5_default", "--symbol is required" },
                  { "export --symbol X --timeframe M5 --set nope", "set: no indicator set named 'nope'" },
                  { "export --symbol X --timeframe M5 --label fwd5", "--label: 'fwd5'" } }
    for _, c in ipairs(bad) do
      local code2, _, err2 = tickforge(c[1])
      assert.are.equal(2, code2, c[1])
      assert.is_truthy(err2:find(c[2], 1, true), err2)
    end
  end)
end)

describe("POST /admin/backtest", function()
  local srv, sym
  setup(function()
    H.migrate()
    sym = S.symbol("ADM")
    S.bars(sym, "M5", T0, 3000, 300)
    common.load_plugins()
    srv = H.start_server{ shipped = true, config = {
      jobs = { enabled = true, tick_aggregator = { enabled = false }, rollups = { enabled = false },
               indicators = { enabled = false }, strategies = { enabled = false }, maintenance = { enabled = false } },
      backtest = { poll = "200ms" },
    } }
  end)
  teardown(function()
    if srv then srv:stop() end
    S.cleanup({ sym })
    tf.strategy.clear()
  end)

  it("queues a backtest, runs it in the background and serves its report by id", function()
    local req = { strategy = "rsi_reversal", symbols = { sym }, timeframe = "M5", from = "2025-01-02", cash = 5000,
                  params = { low = 25 } }
    local st, body = srv:json("POST", "/admin/backtest", req, H.admin_headers())
    assert.are.equal(202, st, tf.json.encode(body))
    assert.is_true(body.id > 0)
    assert.are.equal("/admin/backtest/" .. body.id, body.url)
    local got
    for _ = 1, 100 do
      st, got = srv:json("GET", body.url, nil, H.admin_headers())
      assert.are.equal(200, st)
      if got.status == "done" or got.status == "failed" then break end
      H.sleep(0.2)
    end
    assert.are.equal("done", got.status, tf.json.encode(got))
    local want = tf.backtest.run(req)
    assert.are.equal(want.summary.trades, got.report.summary.trades)
    assert.are.equal(want.summary.net_profit, got.report.summary.net_profit)
    assert.are.equal(5000, got.report.summary.initial_deposit)
    assert.are.equal(25, got.report.params.low)
    assert.are.equal("rsi_reversal", got.request.strategy)
  end)

  it("answers 400 naming the bad field, 404 for an unknown id, 401/403 without the admin role", function()
    local cases = {
      { { strategy = "rsi_reversal", timeframe = "M7" }, "timeframe" },
      { { strategy = "nope" }, "strategy" },
      { { timeframe = "M5" }, "strategy" },
      { { strategy = "rsi_reversal", colour = "red" }, "colour" },
      { { strategy = "rsi_reversal", cash = "lots" }, "cash" },
    }
    for _, c in ipairs(cases) do
      local st, body = srv:json("POST", "/admin/backtest", c[1], H.admin_headers())
      assert.are.equal(400, st, tf.json.encode(c[1]))
      assert.are.equal(c[2], body.field)
      assert.is_truthy(body.error:find("^" .. c[2] .. ": "))
    end
    local st = srv:request("POST", "/admin/backtest", "{not json", H.admin_headers())
    assert.are.equal(400, st)
    assert.are.equal(404, (srv:json("GET", "/admin/backtest/999999999", nil, H.admin_headers())))
    assert.are.equal(400, (srv:json("GET", "/admin/backtest/abc", nil, H.admin_headers())))
    assert.are.equal(401, (srv:request("GET", "/admin/backtest/1")))
    local denied = srv:request("POST", "/admin/backtest", "{}", { ["X-API-Key"] = H.READ_KEY })
    assert.is_true(denied == 401 or denied == 403)
  end)
end)
