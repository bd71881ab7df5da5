-- The rollups job against a plain SQL reference over the same random M1
-- candles: gaps, weekend breaks, W1 and MN1 boundaries with and without a
-- broker offset, late and changed M1 bars, re-runs, EA precedence, and M1
-- retention leaving the higher timeframes alone.
local S = require("tests.lua.jobs_support")
local rollups = require("tickforge.jobs.rollups")

-- Random M1 candles for symbol over [from, to) (epoch s): ~8% of minutes
-- missing, nothing from Friday 21:00 to Sunday 21:00 UTC, a random walk.
local function m1(symbol, from, to, source)
  return tf.db.exec([[
    WITH mins AS (
        SELECT g AS ts, (random() - 0.5) * 0.002 AS step, random() AS r
          FROM generate_series(to_timestamp($2), to_timestamp($3) - interval '1 minute', interval '1 minute') g
         WHERE NOT ((extract(dow FROM g AT TIME ZONE 'UTC') = 5 AND extract(hour FROM g AT TIME ZONE 'UTC') >= 21)
                 OR extract(dow FROM g AT TIME ZONE 'UTC') = 6
                 OR (extract(dow FROM g AT TIME ZONE 'UTC') = 0 AND extract(hour FROM g AT TIME ZONE 'UTC') < 21))
    ), walk AS (
        SELECT ts, 1.1 + sum(step) OVER (ORDER BY ts) AS o, r FROM mins WHERE r > 0.08
    )
    INSERT INTO market_data (symbol, timeframe, ts, open, high, low, close, volume, spread, source)
    SELECT $1, 'M1', ts, o, o + r * 0.001 + 0.0004, o - r * 0.0007 - 0.0004, o + (r - 0.5) * 0.0006,
           floor(r * 100), CASE WHEN r < 0.15 THEN NULL ELSE round((r * 0.0003)::numeric, 8) END, $4
      FROM walk]], symbol, from, to, source or "ea")
end

-- The higher timeframes as they must be, with bucket rules written out in
-- plain arithmetic (not tf_bucket).
local DEFAULT_TFS = "('M5', 300), ('M15', 900), ('M30', 1800), ('H1', 3600), ('H4', 14400), ('D1', 0), ('W1', 0), ('MN1', 0)"
local function reference(offset, tfs)
  return string.format([[
    WITH k AS (
        SELECT m.*, f.tf, CASE f.tf
            WHEN 'MN1' THEN make_timestamptz(extract(year FROM m.ts AT TIME ZONE 'UTC' + interval '%d seconds')::int,
                                             extract(month FROM m.ts AT TIME ZONE 'UTC' + interval '%d seconds')::int,
                                             1, 0, 0, 0, 'UTC') - interval '%d seconds'
            WHEN 'W1' THEN to_timestamp(floor((extract(epoch FROM m.ts) + %d - 259200) / 604800) * 604800 + 259200 - %d)
            WHEN 'D1' THEN to_timestamp(floor((extract(epoch FROM m.ts) + %d) / 86400) * 86400 - %d)
            ELSE to_timestamp(floor(extract(epoch FROM m.ts) / f.len) * f.len) END AS b
          FROM market_data m, (VALUES %s) AS f(tf, len)
         WHERE m.symbol = $1 AND m.timeframe = 'M1'
    )
    SELECT tf, b, (array_agg(open ORDER BY ts))[1], max(high), min(low), (array_agg(close ORDER BY ts DESC))[1],
           sum(volume)::numeric(18,2), avg(spread)::numeric(18,8)
      FROM k GROUP BY tf, b]], offset, offset, offset, offset, offset, offset, offset, tfs or DEFAULT_TFS)
end

local GOT = [[SELECT timeframe, ts, open, high, low, close, volume, spread
  FROM market_data WHERE symbol = $1 AND timeframe <> 'M1' AND source = 'rollup']]

local ctx = { name = "rollups", log = tf.log }

describe("rollups job", function()
  local syms = {}
  setup(function() S.migrate() end)
  teardown(function() S.cleanup(syms) end)

  for _, offset in ipairs({ 0, 7200, -18000 }) do
    it("agrees exactly with plain SQL across week and month boundaries (broker offset " .. offset .. " s)", function()
      local sym = S.symbol(); syms[#syms + 1] = sym
      local cfg = { symbols = { sym }, broker_offset = offset }
      -- 2025-09-24 .. 2025-10-08: two Sunday week starts, the October month start
      assert.is_true(m1(sym, 1758672000, 1759881600) > 10000)
      local r = rollups.run(ctx, cfg)
      assert.is_true(r.rows > 1000)
      local d, got, want = S.diff(GOT, reference(offset), sym)
      assert.are.equal(0, d); assert.are.equal(want, got)
      local w1 = tf.db.query([[SELECT min(extract(dow FROM ts AT TIME ZONE 'UTC' + make_interval(secs => $2))) AS dow,
        min(extract(hour FROM ts AT TIME ZONE 'UTC' + make_interval(secs => $2))) AS h
        FROM market_data WHERE symbol = $1 AND timeframe = 'W1']], sym, offset)[1]
      assert.are.same({ dow = 0, h = 0 }, w1) -- weeks start Sunday 00:00 broker time
      -- late bars, changed bars, then a re-run that changes nothing
      tf.db.exec([[UPDATE market_data SET high = high + 0.01 WHERE symbol = $1 AND timeframe = 'M1'
        AND ts IN (to_timestamp(1759276800), to_timestamp(1759276800 - 60), to_timestamp(1758900000))]], sym)
      tf.db.exec([[INSERT INTO market_data (symbol, timeframe, ts, open, high, low, close, volume, spread)
        VALUES ($1, 'M1', to_timestamp(1759017600), 9, 9.5, 0.5, 1, 5, 0.1)
        ON CONFLICT DO NOTHING]], sym)
      r = rollups.run(ctx, cfg)
      assert.is_true(r.rows > 0)
      d, got, want = S.diff(GOT, reference(offset), sym)
      assert.are.equal(0, d); assert.are.equal(want, got)
      local before = S.fingerprint(sym)
      assert.are.equal(0, rollups.run(ctx, cfg).rows)
      assert.are.same(before, S.fingerprint(sym))
    end)
  end

  it("agrees with plain SQL for timeframes that are not made of 5-minute parts (M2, M3, M12; offset 1800 s)", function()
    local sym = S.symbol(); syms[#syms + 1] = sym
    local cfg = { symbols = { sym }, broker_offset = 1800, timeframes = { "M2", "M3", "M12", "H1", "D1", "W1", "MN1" } }
    m1(sym, 1759100000, 1759400000)
    rollups.run(ctx, cfg)
    local d, got, want = S.diff(GOT, reference(1800, "('M2', 120), ('M3', 180), ('M12', 720), ('H1', 3600), ('D1', 0), ('W1', 0), ('MN1', 0)"), sym)
    assert.are.equal(0, d); assert.are.equal(want, got)
  end)

  it("rolls up only the buckets touched since the last run", function()
    local sym = S.symbol(); syms[#syms + 1] = sym
    local cfg = { symbols = { sym } }
    m1(sym, 1759100000, 1759200000)
    rollups.run(ctx, cfg)
    tf.db.exec([[UPDATE market_data SET close = close + 0.0001, high = high + 0.01
      WHERE symbol = $1 AND timeframe = 'M1' AND ts = (SELECT max(ts) FROM market_data WHERE symbol = $1 AND timeframe = 'M1')]], sym)
    -- one M1 bar touched: at most one bar per timeframe changes
    local r = rollups.run(ctx, cfg)
    assert.is_true(r.rows >= 1 and r.rows <= 8)
    assert.are.equal(0, tf.db.query("SELECT count(*) AS n FROM rollup_queue WHERE symbol = $1", sym)[1].n)
  end)

  it("rolls up M1 candles stored by the ingest path (COPY, then a merge of a forming bar)", function()
    local sym = S.symbol(); syms[#syms + 1] = sym
    local items = {}
    for i = 0, 59 do
      items[#items + 1] = string.format('{"symbol":"%s","timeframe":"M1","ts":%d,"open":1.1,"high":1.2,"low":1.0,"close":1.15,"volume":%d}',
        sym, 1760000400 + i * 60, i + 1)
    end
    tf.candles.store(tf.candles.decode("[" .. table.concat(items, ",") .. "]", { shape = "array" }), { policy = "merge" })
    rollups.run(ctx, { symbols = { sym }, timeframes = { "H1" } })
    local h1 = tf.db.query("SELECT high::float8 AS high, volume::float8 AS volume FROM market_data WHERE symbol = $1 AND timeframe = 'H1'", sym)
    assert.are.same({ { high = 1.2, volume = 1830 } }, h1)
    -- a more complete snapshot of the last bar, merged by the ingest route
    local last = items[#items]:gsub('"high":1.2', '"high":1.3'):gsub('"volume":60', '"volume":99')
    tf.candles.store(tf.candles.decode("[" .. last .. "]", { shape = "array" }), { policy = "merge" })
    rollups.run(ctx, { symbols = { sym }, timeframes = { "H1" } })
    h1 = tf.db.query("SELECT high::float8 AS high, volume::float8 AS volume FROM market_data WHERE symbol = $1 AND timeframe = 'H1'", sym)
    assert.are.same({ { high = 1.3, volume = 1869 } }, h1)
  end)

  it("never overwrites an EA candle of a higher timeframe", function()
    local sym = S.symbol(); syms[#syms + 1] = sym
    tf.db.exec([[INSERT INTO market_data (symbol, timeframe, ts, open, high, low, close, volume, spread, source)
      VALUES ($1, 'H1', to_timestamp(1759147200), 5, 6, 4, 5.5, 1, 0.1, 'ea')]], sym)
    m1(sym, 1759140000, 1759160000)
    rollups.run(ctx, { symbols = { sym }, timeframes = { "H1" } })
    local row = tf.db.query("SELECT open, volume, source FROM market_data WHERE symbol = $1 AND timeframe = 'H1' AND ts = to_timestamp(1759147200)", sym)[1]
    assert.are.same({ open = 5, volume = 1, source = "ea" }, row)
    assert.is_true(tf.db.query("SELECT count(*) AS n FROM market_data WHERE symbol = $1 AND timeframe = 'H1' AND source = 'rollup'", sym)[1].n > 2)
  end)

  it("keeps the higher timeframes when old M1 bars are deleted", function()
    local sym = S.symbol(); syms[#syms + 1] = sym
    m1(sym, 1759140000, 1759160000)
    rollups.run(ctx, { symbols = { sym } })
    local before = S.fingerprint(sym)
    tf.db.exec("DELETE FROM market_data WHERE symbol = $1 AND timeframe = 'M1' AND ts < to_timestamp(1759150000)", sym)
    assert.are.equal(0, rollups.run(ctx, { symbols = { sym } }).rows)
    local h1 = tf.db.query("SELECT count(*) AS n FROM market_data WHERE symbol = $1 AND timeframe <> 'M1'", sym)[1].n
    assert.is_true(h1 > 0)
    assert.is_true(tf.db.query("SELECT count(*) AS n FROM market_data WHERE symbol = $1 AND timeframe = 'H1' AND ts < to_timestamp(1759146000)", sym)[1].n > 0)
  end)

  it("names the key of a wrong setting", function()
    local ok, err = pcall(rollups.run, ctx, { timeframes = { "H1", "H5" } })
    assert.is_false(ok)
    assert.is_truthy(tostring(err):match("jobs%.rollups%.timeframes: entry 2"))
    ok, err = pcall(rollups.run, ctx, { broker_offset = "3h" })
    assert.is_truthy(tostring(err):match("jobs%.rollups%.broker_offset"))
  end)
end)
