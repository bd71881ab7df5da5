-- tf.cache: the one in-process cache shared by every VM. The API itself runs
-- here, inside `tickforge run` (the same C code a server uses); the sharing,
-- the single-flight loads and the invalidation by ingest run against a real
-- server over real HTTP with the real PostgreSQL.
local H = require("tests.integration.helper")

local function uniq(p) return string.format("%s%d_%d", p, os.time(), math.random(1, 1e9)) end

describe("tf.cache in a script", function()
  it("returns a deep copy of what was set, never the table itself", function()
    local v = { 1, 2, { 3, "x" }, name = "eur", ok = true, off = false, f = 1.5, big = 1 << 62, [7] = "gap", [2.5] = "float key" }
    assert.is_true(tf.cache.set("spec:copy", v))
    local got = tf.cache.get("spec:copy")
    assert.are.same(v, got)
    assert.are_not.equal(v, got)
    assert.are.equal("integer", math.type(got.big))
    assert.are.equal(1 << 62, got.big)
    got[3][1] = 99 -- changing the copy changes nothing in the cache
    assert.are.equal(3, tf.cache.get("spec:copy")[3][1])
    v.name = "changed" -- nor does changing the original
    assert.are.equal("eur", tf.cache.get("spec:copy").name)
  end)

  it("forgets an entry after its TTL, and keeps one without", function()
    tf.cache.set("spec:ttl", "short", 1)
    tf.cache.set("spec:forever", "long")
    assert.are.equal("short", tf.cache.get("spec:ttl"))
    H.sleep(1.05)
    assert.is_nil(tf.cache.get("spec:ttl"))
    assert.are.equal("long", tf.cache.get("spec:forever"))
  end)

  it("deletes one key or every key under a prefix", function()
    tf.cache.set("spec:p:a", 1); tf.cache.set("spec:p:b", 2); tf.cache.set("spec:q", 3)
    assert.is_true(tf.cache.delete("spec:q"))
    assert.is_false(tf.cache.delete("spec:q"))
    assert.are.equal(2, tf.cache.delete_prefix("spec:p:"))
    assert.is_nil(tf.cache.get("spec:p:a"))
    assert.is_true(tf.cache.set("spec:nil", 1))
    assert.is_true(tf.cache.set("spec:nil", nil)) -- set(k, nil) forgets k
    assert.is_nil(tf.cache.get("spec:nil"))
  end)

  it("loads a missing key once, caches nothing for nil, and re-raises a loader's error", function()
    local n = 0
    local function loader() n = n + 1; return { n = n } end
    assert.are.equal(1, tf.cache.get_or_load("spec:load", 60, loader).n)
    assert.are.equal(1, tf.cache.get_or_load("spec:load", 60, loader).n)
    assert.are.equal(1, n)
    assert.is_nil(tf.cache.get_or_load("spec:none", 60, function() return nil end))
    assert.is_nil(tf.cache.get("spec:none"))
    local ok, err = pcall(tf.cache.get_or_load, "spec:boom", 60, function() error({ code = "mine" }) end)
    assert.is_false(ok)
    assert.are.equal("mine", err.code) -- the loader's own error value, unchanged
    assert.are.equal("ok", tf.cache.get_or_load("spec:boom", 60, function() return "ok" end)) -- not stuck
  end)

  it("rejects what it cannot store with an error naming where", function()
    local ok, err = pcall(tf.cache.set, "spec:bad", { rows = { { f = print } } })
    assert.is_false(ok)
    assert.matches("value.rows%[1%].f: a function cannot be cached", err)
    local t = {}; t.self = t
    ok, err = pcall(tf.cache.set, "spec:cycle", t)
    assert.is_false(ok)
    assert.matches("nested deeper than 64", err)
    ok, err = pcall(tf.cache.set, "", 1)
    assert.is_false(ok)
    assert.matches("a key must be 1..1024 bytes", err)
    ok, err = pcall(tf.cache.set, "spec:ttl", 1, -1)
    assert.is_false(ok)
    assert.matches("ttl must be", err)
    ok, err = pcall(tf.cache.delete_prefix, "")
    assert.is_false(ok)
    assert.matches("must not be empty", err)
  end)

  it("counts hits and misses per key prefix", function()
    local before = tf.cache.stats()
    local p = uniq("pfx")
    tf.cache.set(p .. ":a", "x")
    tf.cache.get(p .. ":a"); tf.cache.get(p .. ":a"); tf.cache.get(p .. ":b")
    local s = tf.cache.stats()
    assert.are.equal(before.hits + 2, s.hits)
    assert.are.equal(before.misses + 1, s.misses)
    assert.are.same({ hits = 2, misses = 1, entries = 1, bytes = s.prefixes[p].bytes }, s.prefixes[p])
    assert.is_true(s.prefixes[p].bytes > 0)
    assert.are.equal(64 * 1024 * 1024, s.max_bytes)
    assert.is_true(s.hit_rate > 0 and s.hit_rate < 1)
  end)
end)

-- A plugin with cache routes; the stampede route's loader counts its runs
-- in a row of cache_spec_loads and takes long enough for every request to
-- arrive while it runs.
local CACHE_PLUGIN = [[
tf.route("GET", "/stampede", function(req)
  local key = req.query.key
  local v = tf.cache.get_or_load("stampede:" .. key, 60, function()
    tf.db.exec("UPDATE cache_spec_loads SET n = n + 1 WHERE k = $1", key)
    tf.db.query("SELECT pg_sleep(0.5)")
    return { key = key, loaded_at = os.time() }
  end)
  return 200, v
end)
tf.route("POST", "/cache/set", function(req)
  local b = tf.json.decode(req.body)
  local ok, err = tf.cache.set(b.key, b.value)
  return 200, { ok = ok, err = err }
end, { auth = "ingest" })
tf.route("GET", "/cache/get", function(req)
  return 200, { value = tf.cache.get(req.query.key) }
end)
]]

describe("tf.cache in a server", function()
  local srv
  setup(function()
    H.migrate()
    tf.db.exec("CREATE TABLE IF NOT EXISTS cache_spec_loads (k text PRIMARY KEY, n int NOT NULL)")
    srv = H.start_server{
      plugins = { ["cache.lua"] = CACHE_PLUGIN, ["mt5_ingest.lua"] = H.read(H.ROOT .. "/plugins/mt5_ingest.lua") },
      config = { http = { threads = 24 }, auth = { metrics_open = true } },
      env = { DATABASE_URL = os.getenv("DATABASE_URL") },
    }
  end)
  teardown(function()
    if srv then srv:stop() end
  end)

  it("runs the loader once when 100 concurrent requests miss the same key", function()
    local key = uniq("k")
    tf.db.exec("INSERT INTO cache_spec_loads (k, n) VALUES ($1, 0)", key)
    local f = os.tmpname()
    local cfg = {}
    for i = 1, 100 do
      cfg[#cfg + 1] = string.format('url = "%s/stampede?key=%s"\nheader = "X-API-Key: %s"\noutput = "%s.%d"\nwrite-out = "%%{http_code}\\n"',
        srv.base, key, H.READ_KEY, f, i)
    end
    H.write(f .. ".curl", table.concat(cfg, "\nnext\n") .. "\n")
    local codes = H.sh("curl -sS --no-progress-meter -Z --parallel-immediate --parallel-max 100 -K " .. f .. ".curl")
    local _, n200 = codes:gsub("200", "")
    assert.are.equal(100, n200, codes .. (srv:log() or ""))
    local first
    for i = 1, 100 do
      local v = tf.json.decode(H.read(f .. "." .. i))
      os.remove(f .. "." .. i)
      first = first or v
      assert.are.same(first, v) -- every request got the one loaded value
    end
    os.remove(f); os.remove(f .. ".curl")
    assert.are.equal(key, first.key)
    assert.are.equal(1, tf.db.query("SELECT n FROM cache_spec_loads WHERE k = $1", key)[1].n)
  end)

  it("shares a value set by one request with the others, as a copy", function()
    local key = uniq("share:")
    local st = srv:json("POST", "/cache/set", { key = key, value = { a = { 1, 2 }, b = "x" } }, H.ingest_headers())
    assert.are.equal(200, st)
    for _ = 1, 5 do
      local st2, v = srv:json("GET", "/cache/get?key=" .. key, nil, { ["X-API-Key"] = H.READ_KEY })
      assert.are.equal(200, st2)
      assert.are.same({ a = { 1, 2 }, b = "x" }, v.value)
    end
  end)

  it("drops candles:<symbol>:<timeframe>: keys when /ingest stores a candle of that pair", function()
    local sym = ("CS" .. math.random(100000, 999999))
    local keys = { "candles:" .. sym .. ":M1:last500", "candles:" .. sym .. ":M1:range:1:2",
                   "candles:" .. sym .. ":M5:last500", "candles:" .. sym .. "X:M1:last500" }
    for _, k in ipairs(keys) do
      assert.are.equal(200, (srv:json("POST", "/cache/set", { key = k, value = 1 }, H.ingest_headers())))
    end
    local candle = { symbol = sym, timeframe = "M1", ts = "2025-10-20T03:00:00Z", open = 1.1, high = 1.2,
                     low = 1.0, close = 1.15, volume = 10 }
    local st, v = srv:json("POST", "/ingest", candle, H.ingest_headers())
    assert.are.equal(200, st)
    assert.are.equal(1, v.inserted)
    local function get(k) return select(2, srv:json("GET", "/cache/get?key=" .. k, nil, { ["X-API-Key"] = H.READ_KEY })).value end
    assert.is_nil(get(keys[1]))
    assert.is_nil(get(keys[2]))
    assert.are.equal(1, get(keys[3])) -- another timeframe
    assert.are.equal(1, get(keys[4])) -- another symbol sharing the prefix of the name
    -- a resend is a duplicate: it changed nothing and drops nothing
    assert.are.equal(200, (srv:json("POST", "/cache/set", { key = keys[1], value = 2 }, H.ingest_headers())))
    st, v = srv:json("POST", "/ingest", candle, H.ingest_headers())
    assert.are.equal(1, v.duplicates)
    assert.are.equal(2, get(keys[1]))
  end)
end)

describe("tf.cache across jobs and handlers", function()
  it("shows a handler what a job stored", function()
    local srv = H.start_server{ plugins = {
      ["cache.lua"] = CACHE_PLUGIN,
      ["job.lua"] = [[
        local runs = 0
        tf.job.every("cache_spec_job", "200ms", function()
          runs = runs + 1
          tf.cache.set("job:last", { runs = runs, from = "job" })
        end)
      ]],
    } }
    local v
    local deadline = os.time() + 10
    repeat
      H.sleep(0.1)
      v = select(2, srv:json("GET", "/cache/get?key=job:last", nil, { ["X-API-Key"] = H.READ_KEY })).value
    until v or os.time() > deadline
    srv:stop()
    assert.is_table(v)
    assert.are.equal("job", v.from)
    assert.is_true(v.runs >= 1)
  end)
end)

describe("GET /stats", function()
  local srv
  setup(function()
    srv = H.start_server{
      plugins = { ["cache.lua"] = CACHE_PLUGIN, ["stats.lua"] = H.read(H.ROOT .. "/plugins/stats.lua") },
      config = { cache = { max_memory = "64KB" }, auth = { metrics_open = true } },
    }
  end)
  teardown(function() if srv then srv:stop() end end)

  local function stats()
    local st, v = srv:json("GET", "/stats", nil, { ["X-API-Key"] = H.READ_KEY })
    assert.are.equal(200, st)
    return v.cache
  end

  it("needs a key with the read role", function()
    assert.are.equal(401, (srv:request("GET", "/stats")))
  end)

  it("shows hits, misses, evictions past cache.max_memory, and the same numbers as /metrics", function()
    local blob = string.rep("x", 1000)
    for i = 1, 100 do -- ~100 KB into a 64 KB cache
      assert.are.equal(200, (srv:json("POST", "/cache/set", { key = "big:" .. i, value = blob }, H.ingest_headers())))
    end
    local function get(k) return select(2, srv:json("GET", "/cache/get?key=" .. k, nil, { ["X-API-Key"] = H.READ_KEY })).value end
    assert.are.equal(blob, get("big:100")) -- the most recent stays
    assert.is_nil(get("big:1"))             -- the oldest went
    local s = stats()
    assert.are.equal(64 * 1024, s.max_bytes)
    assert.is_true(s.bytes <= s.max_bytes)
    assert.is_true(s.evictions > 0)
    assert.are.equal(100 - s.entries, s.evictions)
    assert.are.same({ hits = 1, misses = 1, entries = s.entries, bytes = s.bytes }, s.prefixes.big)
    assert.are.equal(0.5, s.hit_rate)

    -- a value larger than the whole cache is refused, not an error
    local st0, v = srv:json("POST", "/cache/set", { key = "big:100", value = string.rep("y", 70000) }, H.ingest_headers())
    assert.are.equal(200, st0)
    assert.is_false(v.ok)
    assert.matches("larger than cache.max_memory %(65536 bytes%)", v.err)
    assert.is_nil(get("big:100")) -- and the old value is gone with it
    s = stats()

    local prom = require("tests.integration.prom")
    local st, text = srv:request("GET", "/metrics")
    assert.are.equal(200, st)
    local f = assert(prom.parse(text))
    assert.are.equal(s.evictions, prom.value(f, "tf_cache_evictions_total"))
    assert.are.equal(s.max_bytes, prom.value(f, "tf_cache_max_bytes"))
    assert.are.same({ hits = 1, misses = 2 }, { hits = s.prefixes.big.hits, misses = s.prefixes.big.misses })
    assert.are.equal(1, prom.value(f, "tf_cache_hits_total", { prefix = "big" }))
    assert.are.equal(2, prom.value(f, "tf_cache_misses_total", { prefix = "big" }))
    assert.are.equal(s.entries, prom.value(f, "tf_cache_entries", { prefix = "big" }))
    assert.are.equal(s.bytes, prom.value(f, "tf_cache_bytes", { prefix = "big" }))
  end)
end)
