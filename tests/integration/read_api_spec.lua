-- The read API end to end: the real binary with the shipped plugins, data
-- sent through the real HTTP ingest routes, then GET /candles, /indicators,
-- /symbols and /ticks over real HTTP (JSON and CSV), every bad parameter,
-- the row cap, and indicator values stored by the job code vs computed.
local H = require("tests.integration.helper")
local R = require("tests.integration.read_support")

local N = 300 -- M1 bars

describe("the read API", function()
  local srv, sym, bars

  setup(function()
    H.migrate()
    sym = R.symbol("RA")
    srv = H.start_server{ shipped = true }
    bars = R.ingest_bars(srv, sym, "M1", N, 60)
    R.ingest_bars(srv, sym, "M5", 40, 300)
    R.ingest_ticks(srv, sym, {
      { symbol = sym, ts = "2025-10-20T05:00:01.250Z", bid = 1.08, ask = 1.0802, ts_msc = 1760936401250, volume = 2 },
      { symbol = sym, ts = "2025-10-20T05:00:02Z", bid = 1.081, ask = 1.0812 },
      { symbol = sym, ts = "2025-10-20T05:00:03Z", bid = 1.082, ask = 1.0822, last = 1.0821 },
    })
  end)

  teardown(function()
    if srv then srv:stop() end
    if sym then R.cleanup(sym) end
  end)

  it("answers the bars ingested over HTTP, oldest first, with ISO UTC times and 'ok' first", function()
    local st, body = srv:request("GET", "/candles?symbol=" .. sym .. "&timeframe=M1&from=2025-10-20T00:00:00Z&limit=3",
      nil, R.read_headers())
    assert.are.equal(200, st)
    assert.truthy(body:find('^{"ok":true,"symbol":"' .. sym .. '","timeframe":"M1","order":"asc","count":3,"candles":%['))
    local v = tf.json.decode(body)
    assert.are.equal(3, #v.candles)
    for i = 1, 3 do
      local b, c = bars[i], v.candles[i]
      assert.are.equal(tf.time.format(b.ts), c.ts)
      assert.are.same({ b.open, b.high, b.low, b.close, b.volume, b.spread },
        { c.open, c.high, c.low, c.close, c.volume, c.spread })
    end
    assert.are.equal("2025-10-20T00:00:00+00:00", v.candles[1].ts)
  end)

  it("gives the newest bars without from (default limit), in either order", function()
    local st, v = R.get(srv, "/candles?symbol=" .. sym .. "&timeframe=M1&limit=5")
    assert.are.equal(200, st)
    assert.are.equal(5, v.count)
    assert.are.equal(tf.time.format(bars[N].ts), v.candles[5].ts)
    assert.are.equal(tf.time.format(bars[N - 4].ts), v.candles[1].ts)
    local _, d = R.get(srv, "/candles?symbol=" .. sym .. "&timeframe=M1&limit=5&order=desc")
    assert.are.equal("desc", d.order)
    assert.are.equal(v.candles[5].ts, d.candles[1].ts)
    assert.are.equal(v.candles[1].ts, d.candles[5].ts)
    local _, all = R.get(srv, "/candles?symbol=" .. sym .. "&timeframe=M1")
    assert.are.equal(N, all.count) -- 300 < the default limit of 1000
  end)

  it("reads from/to as ISO, MQL, epoch seconds and milliseconds alike", function()
    local want
    for _, range in ipairs({
      "from=2025-10-20T01:00:00Z&to=2025-10-20T01:09:00Z",
      "from=2025.10.20%2001:00&to=2025.10.20%2001:09",
      "from=1760922000&to=1760922540",
      "from=1760922000000&to=1760922540000",
      "from=2025-10-20T04:00:00%2B03:00&to=2025-10-20T04:09:00%2B03:00",
    }) do
      local st, v = R.get(srv, "/candles?symbol=" .. sym .. "&timeframe=M1&" .. range)
      assert.are.equal(200, st, range)
      assert.are.equal(10, v.count, range)
      want = want or v
      assert.are.same(want.candles, v.candles, range)
    end
    assert.are.equal("2025-10-20T01:00:00+00:00", want.candles[1].ts)
  end)

  it("serves any stored timeframe, and timeframes by their ENUM_TIMEFRAMES number", function()
    local st, v = R.get(srv, "/candles?symbol=" .. sym .. "&timeframe=M5&limit=2")
    assert.are.equal(200, st)
    assert.are.equal("M5", v.timeframe)
    assert.are.equal("2025-10-20T03:15:00+00:00", v.candles[2].ts)
    local _, w = R.get(srv, "/candles?symbol=" .. sym .. "&timeframe=5&limit=2")
    assert.are.same(v, w)
  end)

  it("an unknown symbol is an empty result, not an error", function()
    for _, path in ipairs({ "/candles?symbol=NOSUCH1&timeframe=M1", "/ticks?symbol=NOSUCH1",
                            "/indicators?symbol=NOSUCH1&timeframe=M1&set=mt5_default" }) do
      local st, v = R.get(srv, path)
      assert.are.equal(200, st, path)
      assert.are.equal(0, v.count, path)
    end
    local st, body = srv:request("GET", "/candles?symbol=NOSUCH1&timeframe=M1", nil, R.read_headers())
    assert.are.equal(200, st)
    assert.truthy(body:find('"candles":[]', 1, true))
  end)

  it("joins mt5_default computed on the fly when not stored, equal to tf.indicators.compute", function()
    local st, v = R.get(srv, "/candles?symbol=" .. sym .. "&timeframe=M1&limit=50&set=mt5_default")
    assert.are.equal(200, st)
    assert.are.equal("computed", v.indicators_source)
    assert.are.equal("mt5_default", v.set)
    local res = tf.indicators.compute("mt5_default", sym, "M1")
    for i = 1, 50 do
      local row, k = v.candles[i], N - 50 + i
      for _, col in ipairs({ "rsi", "macd", "macd_signal", "macd_hist", "atr", "bb_upper", "bb_middle", "bb_lower" }) do
        assert.is_true(math.abs(row[col] - res.values[col][k]) < 1e-12, col .. " row " .. i)
      end
    end
    -- the first bars of the history are inside the lookback: null
    local _, first = R.get(srv, "/indicators?symbol=" .. sym .. "&timeframe=M1&set=mt5_default&from=" .. R.T0 .. "&limit=3")
    assert.are.equal(tf.json.null, first.values[1].rsi)
    assert.are.equal(tf.json.null, first.values[1].macd)
  end)

  it("uses the stored values once the indicators job code wrote them, and says so", function()
    local written = tf.indicators.update("mt5_default", sym, "M1")
    assert.is_true(written > 0)
    local st, v = R.get(srv, "/candles?symbol=" .. sym .. "&timeframe=M1&limit=20&set=mt5_default")
    assert.are.equal(200, st)
    assert.are.equal("stored", v.indicators_source)
    local res = tf.indicators.compute("mt5_default", sym, "M1")
    for i = 1, 20 do -- market_data keeps 8 decimals
      assert.is_true(math.abs(v.candles[i].rsi - res.values.rsi[N - 20 + i]) < 1e-8)
    end
    local _, iv = R.get(srv, "/indicators?symbol=" .. sym .. "&timeframe=M1&set=mt5_default&limit=20")
    assert.are.equal("stored", iv.indicators_source)
    assert.are.equal(v.candles[20].atr, iv.values[20].atr)
    assert.is_nil(iv.values[1].open) -- /indicators has no OHLC
  end)

  it("answers CSV for format=csv and for Accept: text/csv, loadable by a CSV reader", function()
    local st, text, h = srv:request("GET", "/candles?symbol=" .. sym .. "&timeframe=M1&limit=10&set=mt5_default&format=csv",
      nil, R.read_headers())
    assert.are.equal(200, st)
    assert.matches("^text/csv", h["content-type"])
    assert.are.equal("stored", h["x-indicators-source"])
    local header, rows = R.parse_csv(text)
    assert.are.same({ "ts", "open", "high", "low", "close", "volume", "spread", "rsi", "macd", "macd_signal",
      "macd_hist", "atr", "bb_upper", "bb_middle", "bb_lower" }, header)
    assert.are.equal(10, #rows)
    local last = bars[N]
    assert.are.equal(tf.time.format(last.ts), rows[10][1])
    assert.are.equal(last.close, tonumber(rows[10][5]))
    local _, j = R.get(srv, "/candles?symbol=" .. sym .. "&timeframe=M1&limit=10&set=mt5_default")
    assert.are.equal(j.candles[10].rsi, tonumber(rows[10][8]))
    local st2, text2 = srv:request("GET", "/candles?symbol=" .. sym .. "&timeframe=M1&limit=10&set=mt5_default",
      nil, R.read_headers({ Accept = "text/csv" }))
    assert.are.equal(200, st2)
    assert.are.equal(text, text2)
    -- empty cells for values inside the lookback
    local _, t3 = srv:request("GET", "/indicators?symbol=" .. sym .. "&timeframe=M1&set=mt5_default&from=" .. R.T0 ..
      "&limit=2&format=csv", nil, R.read_headers())
    local _, r3 = R.parse_csv(t3)
    assert.are.equal("", r3[1][2])
  end)

  it("exports bars without a set as CSV straight from PostgreSQL, the same values as JSON, in either order", function()
    local q = "/candles?symbol=" .. sym .. "&timeframe=M1&from=2025-10-20T01:00:00Z&to=2025-10-20T02:00:00Z"
    local _, j = R.get(srv, q)
    for _, order in ipairs({ "asc", "desc" }) do
      local st, text, h = srv:request("GET", q .. "&format=csv&order=" .. order, nil, R.read_headers())
      assert.are.equal(200, st)
      assert.matches("^text/csv", h["content-type"])
      local header, rows = R.parse_csv(text)
      assert.are.same({ "ts", "open", "high", "low", "close", "volume", "spread" }, header)
      assert.are.equal(61, #rows)
      for i, row in ipairs(rows) do
        local c = j.candles[order == "asc" and i or 62 - i]
        assert.are.same({ c.ts, c.open, c.high, c.low, c.close, c.volume, c.spread },
          { row[1], tonumber(row[2]), tonumber(row[3]), tonumber(row[4]), tonumber(row[5]), tonumber(row[6]), tonumber(row[7]) })
        assert.is_nil(row[2]:find("0$"), row[2]) -- shortest text, no numeric(18,8) padding
      end
    end
    local _, newest = srv:request("GET", "/candles?symbol=" .. sym .. "&timeframe=M1&limit=2&format=csv", nil, R.read_headers())
    local _, nr = R.parse_csv(newest)
    assert.are.equal(tf.time.format(bars[N].ts), nr[2][1])
  end)

  it("answers 400 naming each bad parameter", function()
    local base = "/candles?symbol=" .. sym .. "&timeframe=M1"
    for _, case in ipairs({
      { "/candles?timeframe=M1", "symbol" },
      { "/candles?symbol=" .. sym, "timeframe" },
      { "/candles?symbol=" .. sym .. "&timeframe=M7", "timeframe" },
      { base .. "&from=2025-10-21&to=2025-10-20", "from" },
      { base .. "&from=yesterday", "from" },
      { base .. "&to=2025-13-01", "to" },
      { base .. "&set=no_such_set", "set" },
      { base .. "&limit=0", "limit" },
      { base .. "&limit=100001", "limit" },
      { base .. "&limit=ten", "limit" },
      { base .. "&order=up", "order" },
      { base .. "&format=xml", "format" },
      { base .. "&symbl=EURUSD", "symbl" },
      { "/indicators?symbol=" .. sym .. "&timeframe=M1", "set" },
      { "/ticks?from=2025-10-20", "symbol" },
      { "/ticks?symbol=" .. sym .. "&limit=-1", "limit" },
      { "/ticks?symbol=" .. sym .. "&timeframe=M1", "timeframe" },
      { "/symbols?symbol=" .. ("x"):rep(65), "symbol" },
    }) do
      local st, v = R.get(srv, case[1])
      assert.are.equal(400, st, case[1])
      assert.are.equal(false, v.ok, case[1])
      assert.are.equal(case[2], v.param, case[1])
      assert.are.equal(case[2] .. ":", v.error:match("^%S+"), case[1])
    end
  end)

  it("caches the latest bars until candles of that symbol and timeframe are stored", function()
    local path = "/candles?symbol=" .. sym .. "&timeframe=M1&limit=2"
    local _, a = R.get(srv, path)
    -- a bar written behind the server's back (not through tf.candles.store) is not seen: the answer is cached
    H.psql(string.format("INSERT INTO market_data (symbol, timeframe, ts, open, high, low, close) " ..
      "VALUES ('%s', 'M1', to_timestamp(%d), 1, 1, 1, 1)", sym, R.T0 + N * 60))
    local _, b = R.get(srv, path)
    assert.are.same(a, b)
    -- storing a candle through the ingest route drops the symbol's cached answers
    local st = srv:json("POST", "/ingest", tf.json.encode(R.bar(sym, "M1", R.T0 + (N + 1) * 60, N + 1)), H.ingest_headers())
    assert.are.equal(200, st)
    local _, c = R.get(srv, path)
    assert.are.equal(tf.time.format(R.T0 + (N + 1) * 60), c.candles[2].ts)
    assert.are.equal(tf.time.format(R.T0 + N * 60), c.candles[1].ts)
    -- a range is never served from the cache
    local _, d = R.get(srv, "/candles?symbol=" .. sym .. "&timeframe=M1&from=" .. (R.T0 + N * 60))
    assert.are.equal(2, d.count)
    H.psql(string.format("DELETE FROM market_data WHERE symbol = '%s' AND ts >= to_timestamp(%d)", sym, R.T0 + N * 60))
  end)

  it("needs a key with the read role", function()
    local st = srv:json("GET", "/candles?symbol=" .. sym .. "&timeframe=M1")
    assert.are.equal(401, st)
    local st2, v = srv:json("GET", "/symbols", nil, { Authorization = "Bearer " .. H.READ_KEY })
    assert.are.equal(200, st2)
    assert.is_true(v.ok)
  end)

  it("lists the symbol with its timeframes, first/last bar, bar count, last ingest time and ticks", function()
    local st, v = R.get(srv, "/symbols?symbol=" .. sym)
    assert.are.equal(200, st)
    assert.are.equal(1, v.count)
    local s = v.symbols[1]
    assert.are.equal(sym, s.symbol)
    assert.are.equal(2, #s.timeframes)
    local m1, m5 = s.timeframes[1], s.timeframes[2]
    assert.are.same({ "M1", "2025-10-20T00:00:00+00:00", "2025-10-20T04:59:00+00:00", N },
      { m1.timeframe, m1.first, m1.last, m1.bars })
    assert.are.same({ "M5", 40 }, { m5.timeframe, m5.bars })
    local ingested = tf.time.parse(m1.last_ingest)
    assert.is_true(math.abs(ingested - os.time()) < 600, m1.last_ingest)
    assert.are.equal(3, s.ticks.count)
    assert.are.equal("2025-10-20T05:00:01.250000+00:00", s.ticks.first)
    local _, all = R.get(srv, "/symbols")
    local found = false
    for _, x in ipairs(all.symbols) do if x.symbol == sym then found = true end end
    assert.is_true(found)
  end)

  it("serves ticks in JSON and CSV, by range, newest first on request", function()
    local st, v = R.get(srv, "/ticks?symbol=" .. sym)
    assert.are.equal(200, st)
    assert.are.equal(3, v.count)
    assert.are.same({ ts = "2025-10-20T05:00:01.250000+00:00", bid = 1.08, ask = 1.0802, last = tf.json.null,
      volume = 2, flags = tf.json.null, ts_msc = 1760936401250, spread = tf.json.null }, v.ticks[1])
    local _, r = R.get(srv, "/ticks?symbol=" .. sym .. "&from=2025-10-20T05:00:02Z&to=2025-10-20T05:00:02Z")
    assert.are.equal(1, r.count)
    assert.are.equal(1.081, r.ticks[1].bid)
    local _, d = R.get(srv, "/ticks?symbol=" .. sym .. "&order=desc&limit=1")
    assert.are.equal(1.0821, d.ticks[1].last)
    local _, text = srv:request("GET", "/ticks?symbol=" .. sym .. "&format=csv", nil, R.read_headers())
    local header, rows = R.parse_csv(text)
    assert.are.same({ "ts", "bid", "ask", "last", "volume", "flags", "ts_msc", "spread" }, header)
    assert.are.equal(3, #rows)
    assert.are.equal("1760936401250", rows[1][7])
  end)
end)

describe("the read API with a set of its own and a small row cap", function()
  local srv, sym
  local SET = [[tf.indicators.set("read_spec_set", { { "sma", 5 }, { "ema", 3, as = "fast" } })]]

  setup(function()
    H.migrate()
    sym = R.symbol("RB")
    srv = H.start_server{
      plugins = {
        ["market_read.lua"] = H.read(H.ROOT .. "/plugins/market_read.lua"),
        ["mt5_ingest.lua"] = H.read(H.ROOT .. "/plugins/mt5_ingest.lua"),
        ["sets.lua"] = SET,
      },
      config = { read = { max_rows = 50, default_limit = 20 } },
    }
    R.ingest_bars(srv, sym, "H1", 80, 3600)
    load(SET)()
  end)

  teardown(function()
    if srv then srv:stop() end
    if sym then R.cleanup(sym) end
  end)

  it("caps a range at read.max_rows with a 400 naming it, and limit at the same bound", function()
    local st, v = R.get(srv, "/candles?symbol=" .. sym .. "&timeframe=H1&from=2025-10-20")
    assert.are.equal(400, st)
    assert.are.equal("read.max_rows", v.param)
    assert.matches("read.max_rows", v.error)
    local stc, vc = R.get(srv, "/candles?symbol=" .. sym .. "&timeframe=H1&from=2025-10-20&format=csv")
    assert.are.equal(400, stc) -- the CSV export path too
    assert.are.equal("read.max_rows", vc.param)
    local st2, v2 = R.get(srv, "/candles?symbol=" .. sym .. "&timeframe=H1&limit=51")
    assert.are.equal(400, st2)
    assert.are.equal("limit", v2.param)
    assert.matches("1..50", v2.error)
    local st3, v3 = R.get(srv, "/candles?symbol=" .. sym .. "&timeframe=H1&from=2025-10-20&limit=50")
    assert.are.equal(200, st3)
    assert.are.equal(50, v3.count)
    local _, v4 = R.get(srv, "/candles?symbol=" .. sym .. "&timeframe=H1")
    assert.are.equal(20, v4.count) -- read.default_limit
  end)

  it("computes a set stored in indicator_values until it is stored, then reads it from there", function()
    local st, v = R.get(srv, "/indicators?symbol=" .. sym .. "&timeframe=H1&set=read_spec_set&limit=10")
    assert.are.equal(200, st)
    assert.are.equal("computed", v.indicators_source)
    local res = tf.indicators.compute("read_spec_set", sym, "H1")
    assert.is_true(math.abs(v.values[10].sma - res.values.sma[80]) < 1e-12)
    assert.is_true(math.abs(v.values[10].fast - res.values.fast[80]) < 1e-12)
    assert.is_true(tf.indicators.update("read_spec_set", sym, "H1") > 0)
    local _, s = R.get(srv, "/indicators?symbol=" .. sym .. "&timeframe=H1&set=read_spec_set&limit=10")
    assert.are.equal("stored", s.indicators_source)
    assert.are.same(v.values, s.values) -- float8 storage: the same numbers
  end)
end)

describe("the read API streaming large ranges", function()
  -- read.page_rows = 1000: a range of more rows goes out in chunks, a page at
  -- a time; the answers must equal what the bars and the set say, whole.
  local srv, sym, bars
  local NB = 3500

  setup(function()
    H.migrate()
    sym = R.symbol("RS")
    srv = H.start_server{ shipped = true, config = { read = { page_rows = 1000, max_rows = 3000 } } }
    bars = R.ingest_bars(srv, sym, "M1", NB, 60)
  end)

  teardown(function()
    if srv then srv:stop() end
    if sym then R.cleanup(sym) end
  end)

  local function q(extra)
    return "/candles?symbol=" .. sym .. "&timeframe=M1&from=2025-10-20T00:00:00Z" .. extra
  end

  it("streams a range in chunks, every bar once and in order, in JSON and CSV, either order", function()
    local st, text, h = srv:request("GET", q("&limit=2500"), nil, R.read_headers())
    assert.are.equal(200, st)
    assert.are.equal("chunked", h["transfer-encoding"])
    assert.truthy(text:find('^{"ok":true,"symbol":"' .. sym .. '","timeframe":"M1","order":"asc","count":2500,"candles":%['))
    local v = tf.json.decode(text)
    assert.are.equal(2500, #v.candles)
    for i = 1, 2500 do
      local b, c = bars[i], v.candles[i]
      assert.are.same({ tf.time.format(b.ts), b.open, b.close, b.volume }, { c.ts, c.open, c.close, c.volume })
    end
    local _, d = R.get(srv, q("&limit=2500&order=desc"))
    assert.are.equal(2500, #d.candles)
    for i = 1, 2500 do assert.are.equal(v.candles[2501 - i].ts, d.candles[i].ts) end
    for _, order in ipairs({ "asc", "desc" }) do
      local stc, csv, hc = srv:request("GET", q("&limit=2500&format=csv&order=" .. order), nil, R.read_headers())
      assert.are.equal(200, stc)
      assert.are.equal("chunked", hc["transfer-encoding"])
      local header, rows = R.parse_csv(csv)
      assert.are.same({ "ts", "open", "high", "low", "close", "volume", "spread" }, header)
      assert.are.equal(2500, #rows)
      for i, row in ipairs(rows) do
        local c = v.candles[order == "asc" and i or 2501 - i]
        assert.are.same({ c.ts, c.open, c.high, c.low, c.close, c.volume, c.spread },
          { row[1], tonumber(row[2]), tonumber(row[3]), tonumber(row[4]), tonumber(row[5]), tonumber(row[6]), tonumber(row[7]) })
      end
    end
  end)

  it("bounds a streamed range by to, and still caps a range at read.max_rows with a 400", function()
    local _, v = R.get(srv, q("&to=2025-10-20T20:00:00Z"))
    assert.are.equal(1201, v.count)
    assert.are.equal(1201, #v.candles)
    assert.are.equal("2025-10-20T20:00:00+00:00", v.candles[1201].ts)
    -- the export of the same range: its span proves it fits, so it streams without a count
    local stc0, csv = srv:request("GET", q("&to=2025-10-20T20:00:00Z&format=csv"), nil, R.read_headers())
    assert.are.equal(200, stc0)
    local _, rows = R.parse_csv(csv)
    assert.are.equal(1201, #rows)
    for i = 1, 1201 do assert.are.equal(v.candles[i].ts, rows[i][1]) end
    local st, e = R.get(srv, q(""))
    assert.are.equal(400, st)
    assert.are.equal("read.max_rows", e.param)
    local stc, ec = R.get(srv, q("&format=csv"))
    assert.are.equal(400, stc)
    assert.are.equal("read.max_rows", ec.param)
  end)

  it("streams stored indicator values, the same as a whole answer of each page", function()
    assert.is_true(tf.indicators.update("mt5_default", sym, "M1") > 0)
    local st, v = R.get(srv, "/indicators?symbol=" .. sym .. "&timeframe=M1&set=mt5_default&from=" .. R.T0 .. "&limit=2200")
    assert.are.equal(200, st)
    assert.are.equal("stored", v.indicators_source)
    assert.are.equal(2200, #v.values)
    local _, small = R.get(srv, "/indicators?symbol=" .. sym .. "&timeframe=M1&set=mt5_default&from=" ..
      (R.T0 + 1500 * 60) .. "&limit=10")
    for i = 1, 10 do assert.are.same(small.values[i], v.values[1500 + i]) end
    local stc, csv = srv:request("GET", "/candles?symbol=" .. sym .. "&timeframe=M1&set=mt5_default&from=" .. R.T0 ..
      "&limit=2200&format=csv", nil, R.read_headers())
    assert.are.equal(200, stc)
    local header, rows = R.parse_csv(csv)
    assert.are.equal("rsi", header[8])
    assert.are.equal(2200, #rows)
    assert.are.equal(v.values[1600].rsi, tonumber(rows[1600][8]))
  end)

  it("holds no more than a page while a slow client reads a large range", function()
    -- 3,000 bars through a client that reads 64 KB a second: the server's
    -- queue stays bounded and the answer is whole
    local out = os.tmpname()
    local rc = os.execute(string.format("curl -sf --limit-rate 64k -H 'X-API-Key: %s' '%s%s' -o %s",
      H.READ_KEY, srv.base, q("&limit=3000&format=csv"), out))
    assert.is_true(rc == true or rc == 0)
    local _, rows = R.parse_csv(H.read(out))
    os.remove(out)
    assert.are.equal(3000, #rows)
    assert.are.equal(tf.time.format(bars[3000].ts), rows[3000][1])
  end)

  it("streams ticks in pages on (time, sequence), ticks that share a time included, either order", function()
    -- 3,400 ticks without ts_msc, two to a second: they share their time, and
    -- the pages (1,000) and the limit (2,500) end between the two of a pair
    local ticks, t0 = {}, R.T0 + 86400
    for i = 1, 3400 do
      ticks[i] = { symbol = sym, ts = tf.time.format(t0 + i // 2), bid = 1 + i / 1e5, ask = 1.001 + i / 1e5, volume = i }
    end
    R.ingest_ticks(srv, sym, ticks)
    local from = "&from=" .. t0
    local want = {} -- the volumes in the order PostgreSQL reads them
    for x in H.psql(string.format("SELECT volume::int FROM ticks WHERE symbol = '%s' ORDER BY ts, seq LIMIT 2500",
      sym)):gmatch("%d+") do want[#want + 1] = tonumber(x) end
    assert.are.equal(2500, #want)
    local st, text, h = srv:request("GET", "/ticks?symbol=" .. sym .. from .. "&limit=2500", nil, R.read_headers())
    assert.are.equal(200, st, text)
    assert.are.equal("chunked", h["transfer-encoding"])
    local v = tf.json.decode(text)
    assert.are.equal(2500, v.count)
    local got = {}
    for i, t in ipairs(v.ticks) do got[i] = t.volume end
    assert.are.same(want, got)
    local _, d = R.get(srv, "/ticks?symbol=" .. sym .. from .. "&limit=2500&order=desc")
    assert.are.equal(2500, #d.ticks)
    for i = 1, 2500 do assert.are.same(v.ticks[2501 - i], d.ticks[i]) end
    local stc, csv, hc = srv:request("GET", "/ticks?symbol=" .. sym .. from .. "&limit=2500&format=csv", nil, R.read_headers())
    assert.are.equal(200, stc)
    assert.are.equal("chunked", hc["transfer-encoding"])
    local header, rows = R.parse_csv(csv)
    assert.are.same({ "ts", "bid", "ask", "last", "volume", "flags", "ts_msc", "spread" }, header)
    assert.are.equal(2500, #rows)
    for i, row in ipairs(rows) do assert.are.equal(want[i], tonumber(row[5])) end
    -- a range bounded by to streams whole, newest first on request; one
    -- holding more than read.max_rows (3,000) is still a 400
    local to = "&to=" .. (t0 + 1300)
    local _, r = R.get(srv, "/ticks?symbol=" .. sym .. from .. to .. "&order=desc")
    assert.are.equal(2601, r.count) -- i = 1 .. 2601 (i // 2 <= 1300)
    assert.are.equal(2601, #r.ticks)
    assert.are.equal(tf.time.format(t0 + 1300):sub(1, 19), r.ticks[1].ts:sub(1, 19))
    assert.are.equal(tf.time.format(t0):sub(1, 19), r.ticks[2601].ts:sub(1, 19))
    local st4, e = R.get(srv, "/ticks?symbol=" .. sym .. from)
    assert.are.equal(400, st4)
    assert.are.equal("read.max_rows", e.param)
  end)
end)
