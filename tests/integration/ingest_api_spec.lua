-- The inherited MT5 ingest API end to end: the real binary with the shipped
-- plugins/mt5_ingest.lua, real HTTP, the real PostgreSQL of DATABASE_URL;
-- then the same suite again through PgBouncer in transaction mode.
local H = require("tests.integration.helper")
local S = require("tests.integration.ingest_support")

local DOC_CANDLE = [[{
  "symbol": "EURUSD", "timeframe": "M1", "ts": "2025-10-20T03:00:00Z",
  "open": 1.0855, "high": 1.0857, "low": 1.0854, "close": 1.0856, "volume": 150, "spread": 2 }]]
local DOC_CANDLE2 = [[{
  "symbol": "GBPUSD", "timeframe": "M1", "ts": "2025-10-20T03:00:00Z",
  "open": 1.2850, "high": 1.2852, "low": 1.2849, "close": 1.2851, "volume": 120, "spread": 2 }]]

local function candle(sym, tf, ts, o, h, l, c, v)
  return string.format('{"symbol":%q,"timeframe":%s,"ts":%s,"open":%s,"high":%s,"low":%s,"close":%s,"volume":%s}',
    sym, type(tf) == "number" and tostring(tf) or string.format("%q", tf),
    type(ts) == "number" and string.format("%d", ts) or string.format("%q", ts),
    o or 1.1, h or 1.2, l or 1.0, c or 1.15, v or 10)
end

local function suite(name, db_url)
  describe(name, function()
    local srv, psql
    setup(function()
      local env = { DATABASE_URL = db_url() }
      psql = function(sql)
        local out = H.sh(string.format("psql %q -qAt -v ON_ERROR_STOP=1 -c %q 2>&1", os.getenv("DATABASE_URL"), sql))
        return (out:gsub("%s+$", ""))
      end
      H.migrate()
      srv = H.start_server{ plugins = S.plugin(), env = env,
        config = { ingest = { max_items = 2000, max_body = "2MB" } } }
      -- the documented examples use fixed keys: clear them so each run starts empty
      psql("DELETE FROM market_data WHERE symbol IN ('EURUSD', 'GBPUSD') AND timeframe = 'M1' AND ts = '2025-10-20T03:00:00Z'")
      psql("DELETE FROM ticks WHERE symbol = 'EURUSD' AND ts >= '2025-10-20T03:01:10Z' AND ts < '2025-10-20T03:01:16Z'")
    end)
    teardown(function() if srv then srv:stop() end end)

    it("answers the documented /ingest example with the documented answer", function()
      local st, v = srv:json("POST", "/ingest", '{"items": [' .. DOC_CANDLE .. ']}', H.ingest_headers())
      assert.are.equal(200, st)
      assert.are.same({ ok = true, received = 1, inserted = 1, duplicates = 0, updated = 0, rejected = 0,
        details = { { symbol = "EURUSD", timeframe = "M1", ts_original = "2025-10-20T03:00:00+00:00",
                      ts_bucket = "2025-10-20T03:00:00+00:00", status = "inserted" } } }, v)
      assert.are.equal("EURUSD|M1|1.08550000|1.08570000|1.08540000|1.08560000|150.00|2.00000000|ea",
        psql("SELECT symbol, timeframe, open, high, low, close, volume, spread, source FROM market_data " ..
             "WHERE symbol = 'EURUSD' AND timeframe = 'M1' AND ts = '2025-10-20T03:00:00Z'"))
    end)

    it("reports a resend as a duplicate and stores nothing twice", function()
      local st, body = srv:request("POST", "/ingest_batch", "[" .. DOC_CANDLE .. "," .. DOC_CANDLE2 .. "]", H.ingest_headers())
      assert.are.equal(200, st)
      -- field clients scrape these keys from the text
      assert.matches('"received":2', body)
      assert.matches('"inserted":1', body)
      assert.matches('"duplicates":1', body)
      st, body = srv:request("POST", "/ingest_batch", "[" .. DOC_CANDLE .. "," .. DOC_CANDLE2 .. "]", H.ingest_headers())
      assert.are.equal(200, st)
      assert.matches('"inserted":0', body)
      assert.matches('"duplicates":2', body)
      assert.are.equal("2", psql("SELECT count(*) FROM market_data WHERE symbol IN ('EURUSD', 'GBPUSD') " ..
                                 "AND timeframe = 'M1' AND ts = '2025-10-20T03:00:00Z'"))
    end)

    it("accepts a single candle object on /ingest", function()
      local sym = S.symbol("ONE")
      local st, v = srv:json("POST", "/ingest", candle(sym, "M5", "2025-10-20T03:07:00Z"), H.ingest_headers())
      assert.are.equal(200, st)
      assert.are.equal(1, v.inserted)
      assert.are.equal("2025-10-20T03:05:00+00:00", v.details[1].ts_bucket)
    end)

    it("answers the documented /ingest/tick example", function()
      local st, v = srv:json("POST", "/ingest/tick", [[{"ticks":[
        {"symbol":"EURUSD","ts":"2025-10-20T03:01:10.123Z","bid":1.0855,"ask":1.0857},
        {"symbol":"EURUSD","ts":"2025-10-20T03:01:15.456Z","bid":1.0856,"ask":1.0858}]}]], H.ingest_headers())
      assert.are.equal(200, st)
      assert.are.equal(true, v.ok)
      assert.are.equal(2, v.received)
      assert.are.equal(2, v.inserted)
      assert.are.equal(0, v.duplicates)
      assert.are.same({ symbol = "EURUSD", ts_original = "2025-10-20T03:01:10.123Z",
                        ts_bucket = "2025-10-20T03:01:00+00:00", status = "inserted" }, v.details[1])
      assert.are.equal("2025-10-20T03:01:00+00:00", v.details[2].ts_bucket)
      assert.are.equal("2", psql("SELECT count(*) FROM ticks WHERE symbol = 'EURUSD' AND ts IN " ..
                                 "('2025-10-20T03:01:10.123Z', '2025-10-20T03:01:15.456Z')"))
    end)

    it("stores the good neighbours of a bad item and names the bad one's field", function()
      local sym = S.symbol("BAD")
      local body = "[" .. candle(sym, "M1", "2025-10-20T03:00:00Z") .. "," ..
                   candle(sym, "M1", "2025-10-20T03:01:00Z", 1.1, 1.05, 1.0, 1.15) .. "," ..
                   candle(sym, "M9", "2025-10-20T03:02:00Z") .. "," ..
                   '{"symbol":"' .. sym .. '","timeframe":"M1","ts":"not a time","open":1,"high":1,"low":1,"close":1},' ..
                   candle(sym, "M1", "2025-10-20T03:04:00Z") .. "]"
      local st, v = srv:json("POST", "/ingest_batch", body, H.ingest_headers())
      assert.are.equal(200, st)
      assert.are.equal(5, v.received)
      assert.are.equal(2, v.inserted)
      assert.are.equal(3, v.rejected)
      assert.are.equal("inserted", v.details[1].status)
      assert.are.equal("rejected", v.details[2].status)
      assert.matches("^high: must be >= max%(open, close%)", v.details[2].error)
      assert.matches("^timeframe: unknown \"M9\"", v.details[3].error)
      assert.matches("^ts: not a timestamp", v.details[4].error)
      assert.are.equal(tf.json.null, v.details[4].ts_bucket)
      assert.are.equal("inserted", v.details[5].status)
      assert.are.equal("2", psql("SELECT count(*) FROM market_data WHERE symbol = '" .. sym .. "'"))
    end)

    it("merges a more complete snapshot of a forming bar", function()
      local sym = S.symbol("MRG")
      local st, v = srv:json("POST", "/ingest", candle(sym, "M1", "2025-10-20T03:00:05Z", 1.10, 1.12, 1.09, 1.11, 10), H.ingest_headers())
      assert.are.equal("inserted", v.details[1].status)
      st, v = srv:json("POST", "/ingest", candle(sym, "M1", "2025-10-20T03:00:40Z", 1.105, 1.15, 1.095, 1.14, 25), H.ingest_headers())
      assert.are.equal(200, st)
      assert.are.equal("updated", v.details[1].status)
      assert.are.equal(1, v.updated)
      st, v = srv:json("POST", "/ingest", candle(sym, "M1", "2025-10-20T03:00:40Z", 1.105, 1.15, 1.095, 1.14, 25), H.ingest_headers())
      assert.are.equal("duplicate", v.details[1].status)
      assert.are.equal("1.10000000|1.15000000|1.09000000|1.14000000|25.00",
        psql("SELECT open, high, low, close, volume FROM market_data WHERE symbol = '" .. sym .. "'"))
    end)

    it("buckets every timeframe and timestamp form", function()
      local sym = S.symbol("TF")
      local cases = {
        { "M1", "2025-10-20T03:05:23Z", "2025-10-20T03:05:00+00:00" },
        { "M2", "2025-10-20T03:05:23Z", "2025-10-20T03:04:00+00:00" },
        { "M3", "2025-10-20T03:05:23Z", "2025-10-20T03:03:00+00:00" },
        { "M4", "2025-10-20T03:07:00Z", "2025-10-20T03:04:00+00:00" },
        { "M5", "2025-10-20T03:07:00", "2025-10-20T03:05:00+00:00" },
        { "M6", "2025.10.20 03:59", "2025-10-20T03:54:00+00:00" },
        { "M10", "2025.10.20 03:59:59", "2025-10-20T03:50:00+00:00" },
        { "M12", "2025-10-20 03:59:00", "2025-10-20T03:48:00+00:00" },
        { "M15", "2025-10-20T03:12:00Z", "2025-10-20T03:00:00+00:00" },
        { "M20", "2025-10-20T06:59:00+03:00", "2025-10-20T03:40:00+00:00" },
        { "M30", "2025-10-20T03:45:00.5Z", "2025-10-20T03:30:00+00:00" },
        { "H1", 1760931000, "2025-10-20T03:00:00+00:00" },          -- epoch seconds (03:30)
        { "H2", 1760931000000, "2025-10-20T02:00:00+00:00" },       -- epoch milliseconds
        { "H3", "2025-10-20T05:00:00Z", "2025-10-20T03:00:00+00:00" },
        { "H4", "2025-10-20T05:00:00Z", "2025-10-20T04:00:00+00:00" },
        { "H6", "2025-10-20T05:00:00Z", "2025-10-20T00:00:00+00:00" },
        { "H8", "2025-10-20T23:00:00Z", "2025-10-20T16:00:00+00:00" },
        { "H12", "2025-10-20T11:00:00Z", "2025-10-20T00:00:00+00:00" },
        { "D1", "2025-10-20T15:00:00Z", "2025-10-20T00:00:00+00:00" },
        { "W1", "2025-10-22T15:00:00Z", "2025-10-19T00:00:00+00:00" },  -- weeks start on Sunday
        { "MN1", "2025-10-22T15:00:00Z", "2025-10-01T00:00:00+00:00" },
        { "16385", "2025-10-21T03:30:00Z", "2025-10-21T03:00:00+00:00" },
        { "16388", "2025-10-21T05:00:00Z", "2025-10-21T04:00:00+00:00" },
        { "16408", "2025-10-21T15:00:00Z", "2025-10-21T00:00:00+00:00" },
        { "32769", "2025-10-29T15:00:00Z", "2025-10-26T00:00:00+00:00" },
        { "49153", "2025-11-22T15:00:00Z", "2025-11-01T00:00:00+00:00" },
        { "5", "2025-10-21T03:07:00Z", "2025-10-21T03:05:00+00:00" },
        { 16386, "2025-10-22T03:30:00Z", "2025-10-22T02:00:00+00:00" },  -- a JSON number
        { "2099-01-01T00:00:00Z", "2099-01-01T00:00:00+00:00" },   -- never "in the future"
      }
      local items = {}
      for i, c in ipairs(cases) do
        if #c == 2 then c = { "D1", c[1], c[2] } cases[i] = c end
        items[#items + 1] = candle(sym, c[1], c[2])
      end
      local st, v = srv:json("POST", "/ingest_batch", "[" .. table.concat(items, ",") .. "]", H.ingest_headers())
      assert.are.equal(200, st)
      for i, c in ipairs(cases) do
        local d = v.details[i]
        assert.are.equal("inserted", d.status, tostring(c[1]) .. " " .. tostring(c[2]) .. ": " .. tostring(d.error))
        assert.are.equal(c[3], d.ts_bucket, tostring(c[1]) .. " " .. tostring(c[2]))
      end
      assert.are.equal(tostring(#cases), psql("SELECT count(*) FROM market_data WHERE symbol = '" .. sym .. "'"))
      assert.are.equal("W1|2025-10-19 00:00", psql("SELECT timeframe, to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI') FROM market_data WHERE symbol = '" ..
        sym .. "' AND timeframe = 'W1' AND ts < '2025-10-25'"))
    end)

    it("deduplicates ticks on ts_msc and keeps ticks without it that share a second", function()
      local sym = S.symbol("TK")
      local body = string.format([[{"ticks":[
        {"symbol":%q,"ts":"2025-10-20T03:01:10Z","bid":1.1,"ask":1.2},
        {"symbol":%q,"ts":"2025-10-20T03:01:10Z","bid":1.1,"ask":1.2},
        {"symbol":%q,"ts":"2025-10-20T03:01:10.5Z","ts_msc":1760929270500,"bid":1.1,"ask":1.2,"last":0,"volume":1,"flags":6,"kind":"x"}]}]], sym, sym, sym)
      local st, v = srv:json("POST", "/ingest/tick", body, H.ingest_headers())
      assert.are.equal(200, st)
      assert.are.equal(3, v.inserted)
      st, v = srv:json("POST", "/ingest/tick", body, H.ingest_headers())
      assert.are.equal(2, v.inserted)
      assert.are.equal(1, v.duplicates)
      assert.are.equal("duplicate", v.details[3].status)
      assert.are.equal("5", psql("SELECT count(*) FROM ticks WHERE symbol = '" .. sym .. "'"))
    end)

    it("stores a batch of 10,000 ticks in one request", function()
      local sym = S.symbol("TKB")
      local ticks = {}
      for i = 1, 10000 do
        ticks[i] = string.format('{"symbol":%q,"ts":%d,"bid":1.08%03d,"ask":1.09,"ts_msc":%d}', sym, 1760929200 + i // 4, i % 1000, 1760929200000 + i * 250)
      end
      local st, v = srv:json("POST", "/ingest/tick", '{"ticks":[' .. table.concat(ticks, ",") .. "]}", H.ingest_headers())
      assert.are.equal(200, st)
      assert.are.equal(10000, v.inserted)
      assert.are.equal("10000", psql("SELECT count(*) FROM ticks WHERE symbol = '" .. sym .. "'"))
    end)

    it("stores a batch once when eight clients send it at the same moment", function()
      local sym = S.symbol("RACE")
      local items = {}
      for i = 1, 100 do items[i] = candle(sym, "M1", 1760929200 + 60 * i) end
      local f = os.tmpname()
      H.write(f, "[" .. table.concat(items, ",") .. "]")
      local cfg = {}
      for i = 1, 8 do
        cfg[#cfg + 1] = string.format('url = "%s/ingest_batch"\nheader = "X-API-Key: %s"\ndata-binary = "@%s"\noutput = "%s.%d"\nwrite-out = "%%{http_code}\\n"', srv.base, H.INGEST_KEY, f, f, i)
      end
      H.write(f .. ".curl", table.concat(cfg, "\nnext\n") .. "\n")
      local codes = H.sh("curl -sS --no-progress-meter -Z --parallel-max 8 -K " .. f .. ".curl")
      local _, n200 = codes:gsub("200", "")
      assert.are.equal(8, n200, codes)
      local inserted, duplicates = 0, 0
      for i = 1, 8 do
        local v = tf.json.decode(H.read(f .. "." .. i))
        inserted, duplicates = inserted + v.inserted, duplicates + v.duplicates
        os.remove(f .. "." .. i)
      end
      os.remove(f); os.remove(f .. ".curl")
      assert.are.equal(100, inserted)
      assert.are.equal(700, duplicates)
      assert.are.equal("100", psql("SELECT count(*) FROM market_data WHERE symbol = '" .. sym .. "'"))
    end)

    it("answers 400 with the byte position to an unparseable body, and to a wrong shape", function()
      local st, v = srv:json("POST", "/ingest_batch", '[{"symbol":"EURUSD",]', H.ingest_headers())
      assert.are.equal(400, st)
      assert.are.equal(false, v.ok)
      assert.matches("invalid JSON at byte %d+", v.error)
      st, v = srv:json("POST", "/ingest_batch", DOC_CANDLE, H.ingest_headers())
      assert.are.equal(400, st)
      assert.matches("want a JSON array", v.error)
      st, v = srv:json("POST", "/ingest", "[" .. DOC_CANDLE .. "]", H.ingest_headers())
      assert.are.equal(400, st)
      st, v = srv:json("POST", "/ingest/tick", '{"ticks": 5}', H.ingest_headers())
      assert.are.equal(400, st)
      assert.matches("ticks: must be an array", v.error)
      st = srv:json("POST", "/ingest/tick", '', H.ingest_headers())
      assert.are.equal(400, st)
    end)

    it("tolerates trailing whitespace and a trailing NUL after the JSON", function()
      local sym = S.symbol("NUL")
      local st, v = srv:json("POST", "/ingest_batch", "[" .. candle(sym, "M1", "2025-10-20T03:00:00Z") .. "]\r\n\0", H.ingest_headers())
      assert.are.equal(200, st)
      assert.are.equal(1, v.inserted)
    end)

    it("answers 413 to too many items and to an oversized body", function()
      local items = {}
      for i = 1, 2001 do items[i] = candle("X", "M1", 1760929200 + 60 * i) end
      local st, v = srv:json("POST", "/ingest_batch", "[" .. table.concat(items, ",") .. "]", H.ingest_headers())
      assert.are.equal(413, st)
      assert.matches("2001 > 2000", v.error)
      -- the server answers from Content-Length, before the body arrives
      local out = srv:raw("POST /ingest_batch HTTP/1.1\r\nHost: t\r\nX-API-Key: " .. H.INGEST_KEY ..
        "\r\nContent-Type: application/json\r\nContent-Length: " .. (3 * 1024 * 1024) .. "\r\n\r\n[")
      assert.matches("^HTTP/1.1 413", out)
    end)

    it("answers 401 to a missing or wrong key and accepts a Bearer token", function()
      assert.are.equal(401, (srv:request("POST", "/ingest", DOC_CANDLE, { ["Content-Type"] = "application/json" })))
      assert.are.equal(401, (srv:request("POST", "/ingest", DOC_CANDLE, { ["X-API-Key"] = "not-the-key-1234" })))
      local st, v = srv:json("POST", "/ingest", DOC_CANDLE, { Authorization = "Bearer " .. H.INGEST_KEY })
      assert.are.equal(200, st)
      assert.are.equal(1, v.duplicates)
    end)
  end)
end

suite("MT5 ingest against PostgreSQL", function() return os.getenv("DATABASE_URL") end)

describe("MT5 ingest through PgBouncer in transaction mode", function()
  local bouncer
  setup(function() bouncer = S.pgbouncer(os.getenv("DATABASE_URL")) end)
  teardown(function() if bouncer then bouncer.stop() end end)
  suite("the same suite", function() return bouncer.url end)
end)

describe("the ingest plugin's settings", function()
  local srv
  setup(function()
    H.migrate()
    srv = H.start_server{ plugins = S.plugin(),
      config = { ingest = { policy = "ignore", offset_seconds = 3600, symbol_offsets = { ["OFFS#"] = 7200 } } } }
  end)
  teardown(function() if srv then srv:stop() end end)

  it("keeps the first snapshot under policy ignore", function()
    local sym = S.symbol("IGN")
    local st, v = srv:json("POST", "/ingest", candle(sym, "M1", "2025-10-20T03:00:00Z", 1.1, 1.2, 1.0, 1.15, 1), H.ingest_headers())
    assert.are.equal("inserted", v.details[1].status)
    st, v = srv:json("POST", "/ingest", candle(sym, "M1", "2025-10-20T03:00:30Z", 1.1, 1.3, 1.0, 1.25, 2), H.ingest_headers())
    assert.are.equal(200, st)
    assert.are.equal("duplicate", v.details[1].status)
    assert.are.equal("1.20000000|1.15000000", H.psql("SELECT high, close FROM market_data WHERE symbol = '" .. sym .. "'"))
  end)

  it("applies the configured clock offsets, per symbol first", function()
    local sym = S.symbol("OFF")
    local _, v = srv:json("POST", "/ingest_batch", "[" .. candle(sym, "H1", "2025-10-20T05:30:00Z") .. "," ..
      candle("OFFS#", "H1", "2025-10-20T05:30:00Z") .. "]", H.ingest_headers())
    assert.are.equal("2025-10-20T04:00:00+00:00", v.details[1].ts_bucket)
    assert.are.equal("2025-10-20T03:00:00+00:00", v.details[2].ts_bucket)
    assert.are.equal("2025-10-20T05:30:00+00:00", v.details[1].ts_original) -- what was sent
    H.psql("DELETE FROM market_data WHERE symbol = 'OFFS#'")
  end)
  it("refuses to load with a wrong setting, naming the key", function()
    local dir = H.tmpdir()
    H.sh("mkdir -p " .. dir .. "/plugins")
    H.write(dir .. "/plugins/mt5_ingest.lua", S.repo_file("plugins/mt5_ingest.lua"))
    H.write(dir .. "/tf.lua", 'return { plugins = { dir = "' .. dir .. '/plugins" }, ingest = { policy = "newest" } }')
    local out = H.sh(H.BIN .. " check --config " .. dir .. "/tf.lua 2>&1; echo rc=$?")
    assert.matches("rc=1", out)
    assert.matches("ingest%.policy: must be merge, ignore or replace, got newest", out)
    H.write(dir .. "/tf.lua", 'return { plugins = { dir = "' .. dir .. '/plugins" }, ingest = { max_items = 0 } }')
    out = H.sh(H.BIN .. " check --config " .. dir .. "/tf.lua 2>&1; echo rc=$?")
    assert.matches("ingest%.max_items", out)
    H.write(dir .. "/tf.lua", 'return { plugins = { dir = "' .. dir .. '/plugins" } }')
    out = H.sh(H.BIN .. " check --config " .. dir .. "/tf.lua 2>&1; echo rc=$?")
    assert.matches("rc=0", out)
    assert.matches("POST%s+/ingest_batch", out)
    os.execute("rm -rf " .. dir)
  end)
end)
