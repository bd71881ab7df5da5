-- The tick aggregator job against a plain SQL reference over the same random
-- ticks: late and out-of-order ticks, ticks sharing an instant, gaps and a
-- weekend break, a slow transaction that commits a lower seq after a higher
-- one was read, re-runs, and EA candles winning over tick-built bars.
local S = require("tests.lua.jobs_support")
local agg = require("tickforge.jobs.tick_aggregator")

-- What M1 must hold for symbol: the obvious GROUP BY, written independently.
local function reference(price)
  local p = ({ mid = "(bid + ask) / 2", bid = "bid", ask = "ask", last = "last" })[price or "mid"]
  return string.format([[
    SELECT date_trunc('minute', ts AT TIME ZONE 'UTC') AS m,
           ((array_agg(%s ORDER BY ts, seq))[1])::numeric(18,8) AS open,
           max(%s)::numeric(18,8) AS high, min(%s)::numeric(18,8) AS low,
           ((array_agg(%s ORDER BY ts DESC, seq DESC))[1])::numeric(18,8) AS close,
           count(*)::numeric(18,2) AS volume, avg((ask - bid)::numeric)::numeric(18,8) AS spread
      FROM ticks WHERE symbol = $1 AND %s IS NOT NULL GROUP BY 1]], p, p, p, p, p)
end

local GOT = [[SELECT ts AT TIME ZONE 'UTC', open, high, low, close, volume, spread
  FROM market_data WHERE symbol = $1 AND timeframe = 'M1' AND source = 'ticks']]

local function ctx(wm) return { name = "tick_aggregator", watermark = wm, log = tf.log } end

describe("tick aggregator job", function()
  local syms = {}
  setup(function() S.migrate() end)
  teardown(function() S.cleanup(syms) end)

  it("agrees exactly with a plain GROUP BY over random ticks, late ticks and a weekend break", function()
    local sym = S.symbol(); syms[#syms + 1] = sym
    local cfg = { symbols = { sym }, settle = 0 }
    local wm = { seq = S.max_seq() }
    local friday = 1760684400 -- 2025-10-17 07:00 UTC
    local t = S.ticks(sym, friday, 3000, 2)
    local r = agg.run(ctx(wm), cfg); wm = r.watermark
    assert.is_true(r.rows > 50)
    local d, got, want = S.diff(GOT, reference(), sym)
    assert.are.equal(0, d); assert.are.equal(want, got)
    -- after a weekend without ticks, then late ticks back inside Friday's minutes
    S.ticks(sym, friday + 2 * 86400 + 3600, 1000, 1)
    S.ticks(sym, friday + 600, 300, 0.5)
    S.ticks(sym, t - 120, 50, 0.2)
    r = agg.run(ctx(wm), cfg); wm = r.watermark
    d, got, want = S.diff(GOT, reference(), sym)
    assert.are.equal(0, d); assert.are.equal(want, got)
    -- no minute over the weekend was invented
    assert.are.equal(0, tf.db.query([[SELECT count(*) AS n FROM market_data WHERE symbol = $1
      AND ts > to_timestamp($2) + interval '1 minute' AND ts < to_timestamp($3) - interval '1 minute']],
      sym, t, friday + 2 * 86400 + 3600)[1].n)
    -- a re-run with the same and with the new watermark changes nothing
    local before = S.fingerprint(sym)
    assert.are.equal(0, agg.run(ctx(wm), cfg).rows)
    assert.are.equal(0, agg.run(ctx({ seq = 0 }), cfg).rows)
    local after = S.fingerprint(sym)
    assert.are.same(before, after)
  end)

  it("builds bars from bid, ask or last when configured", function()
    for _, price in ipairs({ "bid", "ask", "last" }) do
      local sym = S.symbol(); syms[#syms + 1] = sym
      local wm = { seq = S.max_seq() }
      S.ticks(sym, 1760000000, 500, 1)
      agg.run(ctx(wm), { symbols = { sym }, price = price })
      local d, got, want = S.diff(GOT, reference(price), sym)
      assert.are.equal(0, d, price); assert.are.equal(want, got, price)
    end
  end)

  it("counts ticks a slow transaction commits after higher seqs were read", function()
    local sym = S.symbol(); syms[#syms + 1] = sym
    local cfg = { symbols = { sym }, settle = 3600 }
    local wm = { seq = S.max_seq() }
    S.ticks(sym, 1760000000, 200, 1)
    wm = agg.run(ctx(wm), cfg).watermark
    -- a second session takes seqs now and commits after our next run read past them
    local url = os.getenv("DATABASE_URL")
    local done = os.tmpname()
    os.execute(string.format([[(psql %q -qAt -v ON_ERROR_STOP=1 -c "BEGIN; INSERT INTO ticks (symbol, ts, bid, ask)
      SELECT '%s', to_timestamp(1760000030 + g), 1.5 + g * 0.001, 1.5002 + g * 0.001 FROM generate_series(1, 20) g;
      SELECT pg_sleep(1.5); COMMIT;" >/dev/null 2>&1; touch %s.ok) &]], url, sym, done))
    local now = require("socket").gettime
    local deadline = now() + 5
    repeat -- wait until the slow session holds its seqs
      require("socket").sleep(0.02)
      local n = tf.db.query("SELECT count(*) AS n FROM pg_stat_activity WHERE query LIKE '%pg_sleep(1.5)%' AND wait_event = 'PgSleep' AND pid <> pg_backend_pid()")[1].n
    until n > 0 or now() > deadline
    S.ticks(sym, 1760000100, 50, 1) -- higher seqs, committed at once
    local r = agg.run(ctx(wm), cfg); wm = r.watermark
    assert.are.equal(0, (S.diff(GOT, reference(), sym)))
    local sleep = require("socket").sleep
    repeat sleep(0.05) until io.open(done .. ".ok") or now() > deadline + 10
    assert.is_true(S.diff(GOT, reference(), sym) > 0, "the slow transaction's ticks are visible now")
    os.remove(done .. ".ok"); os.remove(done)
    r = agg.run(ctx(wm), cfg)
    local d, got, want = S.diff(GOT, reference(), sym)
    assert.are.equal(0, d); assert.are.equal(want, got)
    assert.is_truthy(r.note:match("late commit"))
  end)

  it("advances its settled seq only past ticks older than `settle`", function()
    local sym = S.symbol(); syms[#syms + 1] = sym
    local start = S.max_seq()
    S.ticks(sym, 1760000000, 10, 1)
    local r = agg.run(ctx({ seq = start }), { symbols = { sym }, settle = 3600 })
    assert.are.equal(start, r.watermark.seq)
    assert.are.equal(10, r.watermark.count)
    assert.is_true(r.watermark.seen > start)
    r = agg.run(ctx(r.watermark), { symbols = { sym }, settle = 0 })
    assert.are.equal(r.watermark.seen, r.watermark.seq)
    assert.are.equal(0, r.watermark.count)
  end)

  it("never overwrites an EA candle, and fills the minutes the EA did not send", function()
    local sym = S.symbol(); syms[#syms + 1] = sym
    local cfg = { symbols = { sym }, settle = 0 }
    local wm = { seq = S.max_seq() }
    local ea = string.format('[{"symbol":"%s","timeframe":"M1","ts":1760000100,"open":2,"high":2.5,"low":1.5,"close":2.2,"volume":7,"spread":0.0001}]', sym)
    tf.candles.store(tf.candles.decode(ea, { shape = "array" }), { policy = "merge" })
    S.ticks(sym, 1760000000, 400, 1)
    wm = agg.run(ctx(wm), cfg).watermark
    local row = tf.db.query("SELECT open, close, volume, source FROM market_data WHERE symbol = $1 AND timeframe = 'M1' AND ts = to_timestamp(1760000100)", sym)[1]
    assert.are.same({ open = 2, close = 2.2, volume = 7, source = "ea" }, row)
    -- an EA candle replacing a tick-built bar takes it over for good
    local ea2 = ea:gsub("1760000100", "1760000160")
    tf.candles.store(tf.candles.decode(ea2, { shape = "array" }), { policy = "replace" })
    S.ticks(sym, 1760000160, 20, 1)
    agg.run(ctx(wm), cfg)
    row = tf.db.query("SELECT open, close, volume, source FROM market_data WHERE symbol = $1 AND timeframe = 'M1' AND ts = to_timestamp(1760000160)", sym)[1]
    assert.are.same({ open = 2, close = 2.2, volume = 7, source = "ea" }, row)
    -- every other minute is the ticks' own
    local d, got, want = S.diff(GOT, reference() .. " HAVING date_trunc('minute', min(ts) AT TIME ZONE 'UTC') NOT IN ('2025-10-09 08:55', '2025-10-09 08:56')", sym)
    assert.are.equal(0, d); assert.are.equal(want, got)
  end)

  it("works through a backlog in batches, across burnt sequence numbers larger than a batch", function()
    local sym = S.symbol(); syms[#syms + 1] = sym
    local cfg = { symbols = { sym }, settle = 0, batch = 40 }
    local wm = { seq = S.max_seq() }
    S.ticks(sym, 1760100000, 150, 1)
    tf.db.query("SELECT setval(pg_get_serial_sequence('ticks', 'seq'), nextval(pg_get_serial_sequence('ticks', 'seq')) + 500) AS s")
    S.ticks(sym, 1760100100, 100, 1)
    local last = tf.db.query("SELECT max(seq) AS s FROM ticks WHERE symbol = $1", sym)[1].s
    local runs = 0
    repeat
      local r = agg.run(ctx(wm), cfg)
      wm = r.watermark
      runs = runs + 1
    until wm.seen >= last or runs > 50
    assert.is_true(runs >= 6 and runs <= 12, "runs: " .. runs)
    local d, got, want = S.diff(GOT, reference(), sym)
    assert.are.equal(0, d); assert.are.equal(want, got)
  end)

  it("names the key of a wrong setting", function()
    local ok, err = pcall(agg.run, ctx(nil), { price = "median" })
    assert.is_false(ok)
    assert.is_truthy(tostring(err):match("jobs%.tick_aggregator%.price"))
    ok, err = pcall(agg.run, ctx(nil), { settle = "soon" })
    assert.is_truthy(tostring(err):match("jobs%.tick_aggregator%.settle"))
  end)
end)
