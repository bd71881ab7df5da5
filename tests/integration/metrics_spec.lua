-- /metrics as Prometheus reads it: the strict parser (tests/integration/prom.lua)
-- first proves it rejects what it must, then checks every line of a real
-- server's /metrics with plugin metrics (tf.metrics) declared and used, the
-- cache's series, values surviving a reload, and the max_series bound.
local H = require("tests.integration.helper")
local prom = require("tests.integration.prom")

describe("the Prometheus text parser of the specs", function()
  local good = table.concat({
    "# HELP a_total Things. With a \\\\ and a \\n.",
    "# TYPE a_total counter",
    'a_total{x="1",y="q\\"uote\\\\back\\nline"} 3',
    "a_total 1e3",
    "# TYPE h histogram",
    'h_bucket{le="0.5"} 1',
    'h_bucket{le="+Inf"} 2',
    "h_sum 1.5",
    "h_count 2",
    "# TYPE g gauge",
    "g -Inf",
    "g{a=\"\"} NaN",
    "",
  }, "\n")

  it("accepts well-formed text and reads names, labels and values", function()
    local f = assert(prom.parse(good))
    assert.are.equal("counter", f.a_total.type)
    assert.are.equal("Things. With a \\ and a \n.", f.a_total.help)
    assert.are.equal(3, prom.value(f, "a_total", { x = "1", y = "q\"uote\\back\nline" }))
    assert.are.equal(1000, prom.value(f, "a_total"))
    assert.are.equal(2, prom.value(f, "h_count"))
    assert.are.equal(-math.huge, prom.value(f, "g"))
  end)

  local bad = {
    ["a sample before its TYPE"] = "x 1\n",
    ["a TYPE after the family's samples"] = "# TYPE x gauge\nx 1\n# TYPE x gauge\n",
    ["two TYPE lines"] = "# TYPE x gauge\n# TYPE x counter\nx 1\n",
    ["an unknown type"] = "# TYPE x thing\nx 1\n",
    ["a bad metric name"] = "# TYPE 1x gauge\n1x 1\n",
    ["a bad label name"] = '# TYPE x gauge\nx{1a="b"} 1\n',
    ["a label given twice"] = '# TYPE x gauge\nx{a="b",a="c"} 1\n',
    ["a bad escape"] = '# TYPE x gauge\nx{a="\\t"} 1\n',
    ["an unterminated label value"] = '# TYPE x gauge\nx{a="b} 1\n',
    ["a bad value"] = "# TYPE x gauge\nx one\n",
    ["a duplicate series"] = '# TYPE x gauge\nx{a="1",b="2"} 1\nx{b="2",a="1"} 2\n',
    ["samples not contiguous"] = "# TYPE x gauge\n# TYPE y gauge\nx 1\ny 1\nx{a=\"1\"} 2\n",
    ["a negative counter"] = "# TYPE x counter\nx -1\n",
    ["a missing final newline"] = "# TYPE x gauge\nx 1",
    ["a blank line"] = "# TYPE x gauge\n\nx 1\n",
    ["a timestamp"] = "# TYPE x gauge\nx 1 1700000000\n",
    ["two spaces"] = "# TYPE x gauge\nx  1\n",
    ["histogram buckets not cumulative"] = '# TYPE h histogram\nh_bucket{le="1"} 2\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
    ["histogram without +Inf"] = '# TYPE h histogram\nh_bucket{le="1"} 1\nh_sum 1\nh_count 1\n',
    ["histogram _count differing from +Inf"] = '# TYPE h histogram\nh_bucket{le="+Inf"} 2\nh_sum 1\nh_count 3\n',
    ["histogram without _sum"] = '# TYPE h histogram\nh_bucket{le="+Inf"} 1\nh_count 1\n',
    ["histogram le not increasing"] = '# TYPE h histogram\nh_bucket{le="2"} 1\nh_bucket{le="1"} 1\nh_bucket{le="+Inf"} 1\nh_sum 1\nh_count 1\n',
    ["a bad escape in HELP"] = "# HELP x a \\t\n# TYPE x gauge\nx 1\n",
    ["HELP without TYPE"] = "# HELP x a\n",
  }
  for what, text in pairs(bad) do
    it("rejects " .. what, function()
      local f, err = prom.parse(text)
      assert.is_nil(f, what)
      assert.is_string(err)
    end)
  end
end)

describe("tf.metrics in a script", function()
  it("raises on a bad name, label, bucket or value, naming it", function()
    local function err_of(f, ...) local ok, e = pcall(f, ...); assert.is_false(ok); return e end
    assert.matches("must match", err_of(tf.metrics.counter, "bad name", "h"))
    assert.matches("belong to the core", err_of(tf.metrics.counter, "tf_mine_total", "h"))
    assert.matches("label name \"1x\"", err_of(tf.metrics.counter, "spec_c1_total", "h", { labels = { "1x" } }))
    assert.matches("listed twice", err_of(tf.metrics.counter, "spec_c2_total", "h", { labels = { "a", "a" } }))
    assert.matches("reserved", err_of(tf.metrics.histogram, "spec_h1", "h", { labels = { "le" } }))
    assert.matches("greater than the one before", err_of(tf.metrics.histogram, "spec_h2", "h", { buckets = { 1, 1 } }))
    assert.matches("max_series must be", err_of(tf.metrics.gauge, "spec_g1", "h", { max_series = 0 }))
    local c = tf.metrics.counter("spec_c3_total", "h", { labels = { "a" } })
    assert.matches("label a: missing", err_of(c.inc, c, 1, {}))
    assert.matches("label b was not declared", err_of(c.inc, c, 1, { a = "x", b = "y" }))
    assert.matches("only goes up", err_of(c.inc, c, -1, { a = "x" }))
    assert.matches("not a method of a counter", err_of(c.set, c, 1, { a = "x" }))
    assert.matches("finite", err_of(c.inc, c, 0 / 0, { a = "x" }))
    assert.matches("already declared as a counter",
      err_of(tf.metrics.counter, "spec_c3_total", "h", { labels = { "b" } }))
    local again = tf.metrics.counter("spec_c3_total", "other help", { labels = { "a" } }) -- the same family
    assert.matches("^tf.metrics.counter: ", tostring(again))
    assert.are.equal(tostring(c), tostring(again))
  end)
end)

-- The plugin under test: declared at load; routes move the values.
local PLUGIN = [[
local orders = tf.metrics.counter("spec_orders_total", "Orders seen, by channel and symbol",
  { labels = { "channel", "symbol" }, max_series = 3 })
local depth = tf.metrics.gauge("spec_queue_depth", "Queue depth")
local lat = tf.metrics.histogram("spec_latency_seconds", "Latency with \\ and\nnewline",
  { labels = { "kind" }, buckets = { 0.005, 0.1, 1 } })
tf.route("POST", "/m", function(req)
  local b = tf.json.decode(req.body)
  orders:inc(b.n or 1, { channel = b.channel, symbol = b.symbol })
  depth:set(b.depth or 0)
  depth:inc(2)
  depth:dec()
  lat:observe(b.latency or 0.05, { kind = b.kind or "x" })
  return 200, { ok = true }
end, { auth = "ingest" })
tf.route("GET", "/declare_late", function(req)
  local ok, err = pcall(tf.metrics.counter, "spec_late_total", "late")
  return 200, { ok = ok, err = tostring(err) }
end)
tf.route("GET", "/c", function(req)
  tf.cache.set("spec:" .. req.query.k, { 1, 2, 3 })
  tf.cache.get("spec:" .. req.query.k)
  tf.cache.get("spec:none")
  return 200, { ok = true }
end)
]]

describe("/metrics of a running server", function()
  local srv
  local function scrape()
    local st, text = srv:request("GET", "/metrics")
    assert.are.equal(200, st)
    local f, err = prom.parse(text)
    assert(f, (err or "") .. "\n---\n" .. text)
    return f, text
  end
  local function post(body)
    local st = srv:json("POST", "/m", body, H.ingest_headers())
    assert.are.equal(200, st)
  end

  setup(function()
    H.migrate()
    srv = H.start_server{ plugins = { ["m.lua"] = PLUGIN }, config = { auth = { metrics_open = true } },
                          env = { DATABASE_URL = os.getenv("DATABASE_URL") } }
  end)
  teardown(function() if srv then srv:stop() end end)

  it("passes the strict parser with plugin, cache and core metrics in it", function()
    post({ channel = "ea", symbol = "EURUSD", n = 2, depth = 5, latency = 0.003, kind = "a\"b" })
    post({ channel = "ea", symbol = "EURUSD", latency = 0.5, kind = "a\"b" })
    post({ channel = "web\\x", symbol = "GBP\nUSD", latency = 7 })
    assert.are.equal(200, (srv:request("GET", "/c?k=1", nil, { ["X-API-Key"] = H.READ_KEY })))
    local f = scrape()
    assert.are.equal("counter", f.spec_orders_total.type)
    assert.are.equal(3, prom.value(f, "spec_orders_total", { channel = "ea", symbol = "EURUSD" }))
    assert.are.equal(1, prom.value(f, "spec_orders_total", { channel = "web\\x", symbol = "GBP\nUSD" }))
    assert.are.equal(1, prom.value(f, "spec_queue_depth")) -- set 0 (last post), +2, -1
    assert.are.equal("Latency with \\ and\nnewline", f.spec_latency_seconds.help)
    assert.are.equal(1, prom.value(f, "spec_latency_seconds_bucket", { kind = "a\"b", le = "0.005" }))
    assert.are.equal(1, prom.value(f, "spec_latency_seconds_bucket", { kind = "a\"b", le = "0.1" }))
    assert.are.equal(2, prom.value(f, "spec_latency_seconds_bucket", { kind = "a\"b", le = "1" }))
    assert.are.equal(2, prom.value(f, "spec_latency_seconds_count", { kind = "a\"b" }))
    assert.are.equal(0, prom.value(f, "spec_latency_seconds_bucket", { kind = "x", le = "1" }))
    assert.are.equal(1, prom.value(f, "spec_latency_seconds_bucket", { kind = "x", le = "+Inf" }))
    assert.are.equal(7, prom.value(f, "spec_latency_seconds_sum", { kind = "x" }))
    -- the cache's series, by prefix
    assert.are.equal(1, prom.value(f, "tf_cache_hits_total", { prefix = "spec" }))
    assert.are.equal(1, prom.value(f, "tf_cache_misses_total", { prefix = "spec" }))
    assert.are.equal(1, prom.value(f, "tf_cache_entries", { prefix = "spec" }))
    assert.is_true(prom.value(f, "tf_cache_bytes", { prefix = "spec" }) > 0)
    assert.are.equal(64 * 1024 * 1024, prom.value(f, "tf_cache_max_bytes"))
    assert.is_not_nil(prom.value(f, "tf_cache_evictions_total"))
    -- and the core's own
    assert.is_not_nil(f.tf_http_requests_total)
    assert.are.equal("histogram", f.tf_http_request_duration_seconds.type)
  end)

  it("drops label sets past max_series and counts them per metric", function()
    post({ channel = "c1", symbol = "A" })
    post({ channel = "c2", symbol = "A" }) -- the 4th set: over max_series = 3
    post({ channel = "c3", symbol = "A" })
    local f = scrape()
    assert.are.equal(3, #f.spec_orders_total.samples)
    assert.is_nil(prom.value(f, "spec_orders_total", { channel = "c3", symbol = "A" }))
    assert.is_true(prom.value(f, "tf_metrics_dropped_total", { metric = "spec_orders_total" }) >= 1)
  end)

  it("refuses a declaration outside plugin loading", function()
    local st, v = srv:json("GET", "/declare_late", nil, { ["X-API-Key"] = H.READ_KEY })
    assert.are.equal(200, st)
    assert.is_false(v.ok)
    assert.matches("while the plugin loads", v.err)
  end)

  it("keeps the values across a reload, and rejects a reload that re-declares a metric differently", function()
    local before = prom.value(scrape(), "spec_orders_total", { channel = "ea", symbol = "EURUSD" })
    local st = srv:reload()
    assert.are.equal(200, st)
    post({ channel = "ea", symbol = "EURUSD" })
    assert.are.equal(before + 1, prom.value(scrape(), "spec_orders_total", { channel = "ea", symbol = "EURUSD" }))
    srv:write_plugin("m.lua", PLUGIN:gsub('labels = { "channel", "symbol" }', 'labels = { "channel" }'))
    local st2, v = srv:reload()
    assert.are_not.equal(200, st2)
    assert.matches("spec_orders_total: already declared", tf.json.encode(v))
    post({ channel = "ea", symbol = "EURUSD" }) -- the old generation still serves
    assert.are.equal(before + 2, prom.value(scrape(), "spec_orders_total", { channel = "ea", symbol = "EURUSD" }))
  end)
end)

describe("GET /ready", function()
  local STATS = H.read(H.ROOT .. "/plugins/stats.lua")
  local function ready(srv)
    local st, v = srv:json("GET", "/ready")
    return st, v
  end

  it("answers 200 without a key once the database answers and every migration is applied", function()
    H.migrate()
    local srv = H.start_server{ plugins = { ["stats.lua"] = STATS }, env = { DATABASE_URL = os.getenv("DATABASE_URL") } }
    local st, v = ready(srv)
    srv:stop()
    assert.are.equal(200, st)
    assert.is_true(v.ready)
    local latest = H.sh("ls " .. H.ROOT .. "/sql | grep -E '^[0-9]+_.*\\.sql$' | sort -n | tail -1"):gsub("%s+$", "")
    assert.are.equal(latest, v.migration)
  end)

  it("answers 503 naming the migration files not applied yet", function()
    local dir = H.tmpdir()
    H.sh(string.format("cp %s/sql/*.sql %s/ && printf 'SELECT 1;\\n' > %s/999_ready_spec.sql", H.ROOT, dir, dir))
    local srv = H.start_server{ plugins = { ["stats.lua"] = STATS }, config = { database = { migrations = dir } },
                                env = { DATABASE_URL = os.getenv("DATABASE_URL") } }
    local st, v = ready(srv)
    srv:stop()
    os.execute("rm -rf " .. dir)
    assert.are.equal(503, st)
    assert.is_false(v.ready)
    assert.are.same({ "999_ready_spec.sql" }, v.pending)
  end)

  it("answers 503 while the database is down", function()
    local srv = H.start_server{ plugins = { ["stats.lua"] = STATS },
                                env = { DATABASE_URL = "postgresql://postgres@127.0.0.1:1/none?connect_timeout=1" } }
    local st, v = ready(srv)
    local hst = srv:request("GET", "/health")
    srv:stop()
    assert.are.equal(503, st)
    assert.matches("^database: ", v.reason)
    assert.is_not_nil(hst) -- liveness is /health's business, answered either way
  end)

  it("answers 503 on an empty database, then 200 after tickforge migrate", function()
    local db = "ready_spec_" .. math.random(1, 1e9)
    local url = os.getenv("DATABASE_URL"):gsub("/tickforge%?", "/" .. db .. "?")
    assert.are_not.equal(url, os.getenv("DATABASE_URL"), "cannot derive a database URL from DATABASE_URL")
    H.psql("CREATE DATABASE " .. db)
    local srv = H.start_server{ plugins = { ["stats.lua"] = STATS }, env = { DATABASE_URL = url } }
    local st, v = ready(srv)
    local out = H.sh(string.format("DATABASE_URL=%q %s migrate 2>&1; echo rc=$?", url, H.BIN))
    local st2 = ready(srv)
    srv:stop()
    H.psql("DROP DATABASE " .. db)
    assert.are.equal(503, st)
    assert.matches("no migration applied yet", v.reason)
    assert.matches("rc=0", out)
    assert.are.equal(200, st2)
  end)
end)
