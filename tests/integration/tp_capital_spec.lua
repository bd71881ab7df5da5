-- TP Capital signal ingestion end to end: the real binary with the shipped
-- plugins, real HTTP, the real database (schema tp_capital).
local H = require("tests.integration.helper")
local S = require("tests.integration.seeds_support")

describe("TP Capital", function()
  local srv, ch
  local ingest = H.ingest_headers()
  local read = { ["X-API-Key"] = H.READ_KEY }

  local function post(body) return srv:json("POST", "/tp-capital/ingest", body, ingest) end
  local function msg(id, text, extra)
    local m = { channel = ch, message_id = id, date = "2025-10-20T09:30:00Z", text = text }
    for k, v in pairs(extra or {}) do m[k] = v end
    return m
  end
  local function list(query) return srv:json("GET", "/tp-capital/signals?" .. (query or ""), nil, read) end
  local function history(id)
    return tonumber(H.psql(string.format([[SELECT count(*) FROM tp_capital.signal_history h
      JOIN tp_capital.forwarded_messages m ON m.id = h.message_ref WHERE m.channel = '%s' AND m.message_id = '%s']], ch, id)))
  end

  setup(function()
    srv = S.start()
  end)
  teardown(function() srv:stop() end)
  before_each(function() ch = S.unique("tpspec") end)

  it("stores a forwarded signal and lists it parsed, ok first", function()
    local st, a = post(msg(1, "BUY EURUSD @ 1.0850 SL 1.0800 TP1 1.0900 TP2 1.0950"))
    assert.are.equal(200, st)
    assert.are.same({ 1, 1, 0, 0, 0 }, { a.received, a.inserted, a.updated, a.duplicates, a.rejected })
    local d = a.details[1]
    assert.are.same({ "inserted", "signal", "EURUSD", "buy", 1 }, { d.status, d.kind, d.symbol, d.side, d.version })
    local st2, text = srv:request("GET", "/tp-capital/signals?channel=" .. ch, nil, read)
    assert.are.equal(200, st2)
    assert.matches('^{"ok":true,"count":1,"signals":%[{"id":', text)
    local s = tf.json.decode(text).signals[1]
    assert.are.same({ ch, "1", "2025-10-20T09:30:00Z", "signal", "EURUSD", "buy", 1.085, 1.085, 1.08 },
      { s.channel, s.message_id, s.ts, s.kind, s.symbol, s.side, s.entry_low, s.entry_high, s.sl })
    assert.are.same({ 1.09, 1.095 }, s.tps)
    assert.are.equal(d.signal_id, s.id)
  end)

  it("a resend is a duplicate: nothing changes, no new history", function()
    post(msg(7, "GOLD SELL 2388 SL 2395 TP 2380"))
    local st, a = post(msg(7, "GOLD SELL 2388 SL 2395 TP 2380"))
    assert.are.equal(200, st)
    assert.are.equal(1, a.duplicates)
    assert.are.same({ "duplicate", "XAUUSD", 1 }, { a.details[1].status, a.details[1].symbol, a.details[1].version })
    assert.are.equal(1, history(7))
    local _, l = list("channel=" .. ch)
    assert.are.equal(1, l.count)
  end)

  it("an edited message updates its signal in place and keeps every version", function()
    local _, a1 = post(msg(9, "BUY GBPUSD 1.2710 SL 1.2660 TP 1.2760"))
    local _, a2 = post(msg(9, "BUY GBPUSD 1.2700 SL 1.2650 TP 1.2760 TP 1.2800"))
    assert.are.same({ "updated", 2 }, { a2.details[1].status, a2.details[1].version })
    assert.are.equal(a1.details[1].signal_id, a2.details[1].signal_id)
    local _, l = list("channel=" .. ch)
    assert.are.same({ 1, 1.27, 1.265, 2 }, { l.count, l.signals[1].entry_low, l.signals[1].sl, l.signals[1].version })
    assert.are.same({ 1.276, 1.28 }, l.signals[1].tps)
    -- edited into chatter: the signal goes, the history stays
    local _, a3 = post(msg(9, "cancelled, sorry"))
    assert.are.same({ "updated", "chatter", 3 }, { a3.details[1].status, a3.details[1].kind, a3.details[1].version })
    local _, l2 = list("channel=" .. ch)
    assert.are.equal(0, l2.count)
    assert.are.equal(3, history(9))
    assert.are.equal("signal|1\nsignal|2\nchatter|3", H.psql(string.format([[SELECT h.kind || '|' || h.version
      FROM tp_capital.signal_history h JOIN tp_capital.forwarded_messages m ON m.id = h.message_ref
      WHERE m.channel = '%s' ORDER BY h.version]], ch)))
  end)

  it("stores chatter as chatter and a half-signal flagged, never an error", function()
    local st, a = post({ messages = { msg(20, "Good morning traders ☀️"), msg(21, "GOLD BUY NOW") } })
    assert.are.equal(200, st)
    assert.are.same({ 2, 0 }, { a.inserted, a.rejected })
    assert.are.equal("chatter", a.details[1].kind)
    assert.is_nil(a.details[1].signal_id)
    assert.are.equal("partial", a.details[2].kind)
    assert.are.same({ "no_prices" }, a.details[2].flags)
    assert.are.equal("chatter", H.psql(string.format(
      "SELECT kind FROM tp_capital.forwarded_messages WHERE channel = '%s' AND message_id = '20'", ch)))
    local _, l = list("channel=" .. ch .. "&kind=partial")
    assert.are.same({ 1, "XAUUSD", true }, { l.count, l.signals[1].symbol, l.signals[1].market })
    assert.are.equal(tf.json.null, l.signals[1].sl)
  end)

  it("rejects a bad message in a batch by field and keeps its neighbours", function()
    local st, a = post({ msg(30, "SELL EURUSD 1.09 SL 1.095 TP 1.08"), { channel = ch, date = "2025-10-20T09:30:00Z", text = "x" },
      msg(31, "x", { date = "yesterday" }), msg(32, "x", { date = "2025-13-45T99:00:00Z" }), msg(33, 42),
      msg(34, "BUY EURUSD 1.08 SL 1.07 TP 1.09", { date = 1760952600 }) })
    assert.are.equal(200, st)
    assert.are.same({ 6, 2, 4 }, { a.received, a.inserted, a.rejected })
    assert.are.same({ "inserted", "rejected", "rejected", "rejected", "rejected", "inserted" },
      { a.details[1].status, a.details[2].status, a.details[3].status, a.details[4].status, a.details[5].status, a.details[6].status })
    assert.are.same({ "message_id", "date", "date", "text" },
      { a.details[2].field, a.details[3].field, a.details[4].field, a.details[5].field })
    local _, l = list("channel=" .. ch)
    assert.are.equal(2, l.count)
    assert.are.equal("2025-10-20T09:30:00Z", l.signals[1].ts) -- epoch 1760952600 = the same time
  end)

  it("answers malformed requests with 400/401/403/413 naming what is wrong", function()
    local st, a = srv:json("POST", "/tp-capital/ingest", "{not json", ingest)
    assert.are.same({ 400, false, "body" }, { st, a.ok, a.field })
    st, a = post(msg(40, "x", { channel = "" }))
    assert.are.same({ 400, "channel" }, { st, a.field })
    assert.matches("^channel: ", a.error)
    st, a = post({ channel = ch, message_id = 41, text = "BUY EURUSD" })
    assert.are.same({ 400, "date" }, { st, a.field })
    st, a = post("42")
    assert.are.same({ 400, "body" }, { st, a.field })
    local many = {}
    for i = 1, 501 do many[i] = msg(i, "x") end
    st, a = post(many)
    assert.are.same({ 413, "messages" }, { st, a.field })
    st = srv:json("POST", "/tp-capital/ingest", msg(43, "x"), { ["X-API-Key"] = "wrong-key-123456" })
    assert.are.equal(401, st)
    st = srv:json("POST", "/tp-capital/ingest", msg(43, "x"), read)
    assert.are.equal(403, st)
    for q, field in pairs({ ["limit=0"] = "limit", ["limit=x"] = "limit", ["since=tomorrow"] = "since",
      ["kind=chatter"] = "kind", ["symbol=%3Bdrop"] = "symbol", ["since=2025-02-31T00:00:00Z"] = "since" }) do
      st, a = list(q)
      assert.are.same({ 400, field }, { st, a.field }, q)
    end
  end)

  it("reads a date without a zone as UTC, and one with a zone in its zone", function()
    post({ msg(90, "BUY EURUSD 1.08 SL 1.07 TP 1.09", { date = "2025-10-20 12:30:00" }),
      msg(91, "BUY EURUSD 1.08 SL 1.07 TP 1.09", { date = "2025-10-20T12:30:00-03:00" }),
      msg(92, "BUY EURUSD 1.08 SL 1.07 TP 1.09", { date = 1760963400000 }) })
    local _, l = list("channel=" .. ch)
    local ts = {}
    for _, s in ipairs(l.signals) do ts[s.message_id] = s.ts end
    assert.are.same({ ["90"] = "2025-10-20T12:30:00Z", ["91"] = "2025-10-20T15:30:00Z", ["92"] = "2025-10-20T12:30:00Z" }, ts)
    local _, since = list("channel=" .. ch .. "&since=2025-10-20T13:00:00")
    assert.are.equal(1, since.count)
  end)

  it("filters by symbol (aliases too), channel, since and limit, newest first", function()
    post({ msg(50, "BUY XAUUSD 2300 SL 2290 TP 2310", { date = "2025-10-20T08:00:00Z" }),
      msg(51, "SELL GOLD 2320 SL 2330 TP 2310", { date = "2025-10-20T10:00:00Z" }),
      msg(52, "BUY EURUSD 1.08 SL 1.07 TP 1.09", { date = "2025-10-20T11:00:00Z" }) })
    local _, l = list("channel=" .. ch .. "&symbol=gold")
    assert.are.same({ 2, "51", "50" }, { l.count, l.signals[1].message_id, l.signals[2].message_id })
    _, l = list("channel=" .. ch .. "&since=2025-10-20T09:00:00Z")
    assert.are.same({ 2, "52", "51" }, { l.count, l.signals[1].message_id, l.signals[2].message_id })
    _, l = list("channel=" .. ch .. "&limit=1")
    assert.are.same({ 1, "52" }, { l.count, l.signals[1].message_id })
  end)

  it("the same message posted by many clients at once is stored once", function()
    local body = tf.json.encode(msg(60, "SELL USDJPY 151.20 SL 151.80 TP 150.40"))
    local reqs = {}
    for i = 1, 12 do reqs[i] = { "POST", "/tp-capital/ingest", body } end
    local out = S.burst(srv, reqs)
    local inserted, dup = 0, 0
    for _, r in ipairs(out) do
      assert.are.equal(200, r.status)
      inserted = inserted + r.body.inserted
      dup = dup + r.body.duplicates
    end
    assert.are.same({ 1, 11 }, { inserted, dup })
    assert.are.equal(1, history(60))
  end)

  it("serves listings from the cache; ingest drops exactly the listings it changes", function()
    local function cache() local _, h = srv:json("GET", "/tp-capital/health") return h.cache end
    post(msg(70, "BUY EURUSD 1.08 SL 1.07 TP 1.09"))
    local q_eur, q_gold = "channel=" .. ch .. "&symbol=EURUSD", "channel=" .. ch .. "&symbol=XAUUSD"
    local c0 = cache()
    list(q_eur); list(q_eur); list(q_gold)
    local c1 = cache()
    assert.are.same({ 2, 1 }, { c1.misses - c0.misses, c1.hits - c0.hits })
    -- a gold signal: the EURUSD listing of this channel stays cached, gold's is dropped
    post(msg(71, "SELL GOLD 2400 SL 2410 TP 2380"))
    local _, e = list(q_eur)
    local _, g = list(q_gold)
    local c2 = cache()
    assert.are.same({ 1, 1 }, { c2.misses - c1.misses, c2.hits - c1.hits })
    assert.are.same({ 1, 1 }, { e.count, g.count })
    -- an edit that changes the symbol drops both symbols' listings
    post(msg(70, "BUY GOLD 2390 SL 2380 TP 2400"))
    _, e = list(q_eur)
    _, g = list(q_gold)
    assert.are.same({ 0, 2 }, { e.count, g.count })
    -- chatter changes no listing
    local c3 = cache()
    post(msg(72, "gm"))
    list(q_gold)
    assert.are.equal(1, cache().hits - c3.hits)
  end)

  it("counts stored signals in tpcapital_signals_total{channel,symbol,side}", function()
    local function metric(sym, side)
      local _, text = srv:request("GET", "/metrics")
      local series = '\ntpcapital_signals_total{channel="' .. ch .. '",symbol="' .. sym .. '",side="' .. side .. '"} '
      local at = text:find(series, 1, true)
      return at and tonumber(text:match("^%d+", at + #series)) or 0
    end
    post({ msg(80, "BUY EURUSD 1.08 SL 1.07 TP 1.09"), msg(81, "BUY EURUSD 1.09 SL 1.08 TP 1.10"),
      msg(82, "SELL GOLD 2400 SL 2410 TP 2380"), msg(83, "hello") })
    post(msg(80, "BUY EURUSD 1.081 SL 1.07 TP 1.09")) -- an edit: not a new signal
    post(msg(81, "BUY EURUSD 1.09 SL 1.08 TP 1.10"))  -- a resend: neither
    assert.are.same({ 2, 1, 0 }, { metric("EURUSD", "buy"), metric("XAUUSD", "sell"), metric("EURUSD", "sell") })
    local _, text = srv:request("GET", "/metrics")
    assert.matches('\n# TYPE tpcapital_signals_total counter', text)
    assert.matches('\ntpcapital_messages_total{status="duplicate"} %d+', text)
  end)

  it("reports its health", function()
    local st, a = srv:json("GET", "/tp-capital/health")
    assert.are.same({ 200, true, "healthy", "connected" }, { st, a.ok, a.status, a.database })
    assert.is_true(a.messages >= 0)
  end)
end)
