-- GET /ui in a real browser: Debian's chromium, headless, loads the page from
-- a real server holding bars ingested over HTTP, with the key in the URL
-- fragment (the page moves it to sessionStorage). The page marks what it drew
-- (data-bars on the chart, data-jobs on the jobs table); the DOM is dumped
-- after a virtual-time budget and a screenshot is left in build/test-output/.
-- Skipped with "skipped: chromium not installable" only when there is no chromium.
local H = require("tests.integration.helper")
local R = require("tests.integration.read_support")

local CHROMIUM = H.sh("command -v chromium 2>/dev/null"):gsub("%s+$", "")
local CHARTS = H.ROOT .. "/build/ui/lightweight-charts.standalone.production.js"
local OUT = H.ROOT .. "/build/test-output"

-- Runs chromium headless on url; mode "dom" returns the DOM after the
-- budget, "png" writes a screenshot to path.
local function chromium(url, mode, path)
  local profile = H.tmpdir()
  local flags = table.concat({ "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
    "--user-data-dir=" .. profile, "--window-size=1400,1100", "--virtual-time-budget=10000" }, " ")
  local what = mode == "dom" and "--dump-dom" or ("--screenshot=" .. path)
  local out = H.sh(string.format("timeout 90 %s %s %s %q 2>/dev/null", CHROMIUM, flags, what, url))
  H.sh("rm -rf " .. profile)
  return out
end

local function attr(dom, id, name)
  -- the element with this id, then the attribute on it
  local tag = dom:match('<[^>]-id="' .. id .. '"[^>]*>')
  return tag and tag:match(name .. '="([^"]*)"')
end

describe("the status page in a headless browser", function()
  if CHROMIUM == "" then
    pending("skipped: chromium not installable")
    return
  end

  local srv, sym, N = nil, nil, 400

  setup(function()
    H.migrate()
    sym = R.symbol("UI")
    local off = { enabled = false, every = "1h" }
    srv = H.start_server{ shipped = true, config = {
      scheduler = { enabled = true },
      jobs = { enabled = true, tick_aggregator = off, rollups = off, strategies = off, maintenance = off,
        indicators = { every = "1h", targets = { { timeframes = { "M1" }, sets = { "mt5_default" }, symbols = { sym } } } } },
    } }
    R.ingest_bars(srv, sym, "M1", N, 60)
    -- one run of the indicators job: the jobs table shows it, and the chart's values are stored ones
    local st, run = srv:json("POST", "/admin/jobs/indicators/run", nil, H.admin_headers())
    assert(st == 200 and run.result == "ok", "indicators run: " .. tostring(st) .. " " .. tf.json.encode(run))
    H.sh("mkdir -p " .. OUT)
  end)

  teardown(function()
    if srv then srv:stop() end
    if sym then R.cleanup(sym) end
  end)

  it("draws the bars it was given with stored indicators, and fills the jobs table (admin key)", function()
    assert.is_not_nil(H.read(CHARTS), "run make deps: lightweight-charts is missing from build/ui/")
    local url = string.format("%s/ui?symbol=%s&timeframe=M1&poll=600000#key=%s", srv.base, sym, H.ADMIN_KEY)
    local dom = chromium(url, "dom")
    assert.are.equal("1", dom:match('<body[^>]-data%-ready="(%d)"'), "the page did not finish loading:\n" .. dom:sub(1, 2000))
    assert.are.equal(tostring(N), attr(dom, "chart", "data%-bars"))
    assert.are.equal("stored", attr(dom, "chart", "data%-indicators"))
    local _, jobs = srv:json("GET", "/admin/jobs", nil, H.admin_headers()) -- every job the server registered
    local njobs = #(jobs.jobs or jobs)
    assert.is_true(njobs >= 5)
    assert.are.equal(tostring(njobs), attr(dom, "jobs", "data%-jobs"))
    local _, rows = dom:gsub('<tr class="job">', "")
    assert.are.equal(njobs, rows)
    assert.truthy(dom:find("<td>indicators</td>", 1, true) or dom:find("<td>indicators ", 1, true))
    assert.truthy(dom:find('<span class="ok">ok</span>', 1, true)) -- the indicators run
    assert.truthy(dom:find("/candles</code>", 1, true)) -- the routes table, from /openapi.json
    assert.truthy(dom:find("last reload: ", 1, true))
    assert.truthy(dom:find("<th>hit rate</th>", 1, true)) -- the cache panel, from /stats
    -- the costs table (per-plugin accounting of /admin/status): at least the
    -- indicators job that ran before the page was opened
    assert.is_true(tonumber(attr(dom, "costs", "data%-costs")) >= 1)
    assert.truthy(dom:find("<td>job</td><td>indicators</td><td>jobs.lua</td>", 1, true))
    -- the chart library drew canvases for the price chart and both panes
    local _, canvases = dom:gsub("<canvas", "")
    assert.is_true(canvases >= 6)
    local png = OUT .. "/ui.png"
    os.remove(png)
    chromium(url, "png", png)
    local img = H.read(png)
    assert.is_not_nil(img, "no screenshot at " .. png)
    assert.are.equal("\137PNG", img:sub(1, 4))
    assert.is_true(#img > 20000)
  end)

  it("says that jobs need the admin role when the key only reads", function()
    local url = string.format("%s/ui?symbol=%s&timeframe=M1&poll=600000#key=%s", srv.base, sym, H.READ_KEY)
    local dom = chromium(url, "dom")
    assert.are.equal(tostring(N), attr(dom, "chart", "data%-bars"))
    assert.are.equal("-1", attr(dom, "jobs", "data%-jobs"))
    assert.truthy(dom:find("need a key with the admin role", 1, true))
  end)

  it("asks for the key when it has none, and says how to get the chart library when it is missing", function()
    local dom = chromium(srv.base .. "/ui", "dom")
    assert.truthy(dom:match('<div id="key%-form" class="">') or dom:match('<div id="key%-form">'),
      "the key form is not shown")
    local bare = H.start_server{ shipped = true, config = { ui = { charts_js = "/nonexistent/charts.js" } } }
    local st, body = bare:request("GET", "/ui/lightweight-charts.js")
    assert.are.equal(404, st)
    assert.matches("make deps", body)
    local d2 = chromium(string.format("%s/ui?symbol=%s&timeframe=M1#key=%s", bare.base, sym, H.READ_KEY), "dom")
    bare:stop()
    assert.are.equal("missing", attr(d2, "chart", "data%-chart"))
    assert.truthy(d2:find("make deps", 1, true))
  end)
end)
