-- The maintenance job: retention per table and timeframe (and nothing newer
-- than the cutoff, nothing it was not told about), whole partitions dropped
-- before the cutoff, partitions created ahead, and config errors naming keys.
local S = require("tests.lua.jobs_support")
local maint = require("tickforge.jobs.maintenance")

local ctx = { name = "maintenance", log = tf.log }
local DAY = 86400

describe("maintenance job", function()
  local syms, scratch = {}, {}
  setup(function() S.migrate() end)
  teardown(function()
    S.cleanup(syms)
    for _, t in ipairs(scratch) do tf.db.exec("DROP TABLE IF EXISTS " .. t) end
  end)

  it("deletes ticks past 30 days and M1 past 90 days, and keeps higher timeframes", function()
    local sym = S.symbol(); syms[#syms + 1] = sym
    local now = os.time()
    local ages = { 5, 29, 31, 60, 89, 91, 200 }
    for _, age in ipairs(ages) do
      S.insert_ticks({ { sym, now - age * DAY, 1.1, 1.1002 } })
      for _, tfname in ipairs({ "M1", "H1", "D1" }) do
        tf.db.exec([[INSERT INTO market_data (symbol, timeframe, ts, open, high, low, close)
          VALUES ($1, $2, tf_bucket(to_timestamp($3), $2), 1, 1, 1, 1)]], sym, tfname, now - age * DAY)
      end
    end
    local r = maint.run(ctx, { symbols = { sym } })
    local function count(sql) return tf.db.query(sql, sym)[1].n end
    assert.are.equal(2, count("SELECT count(*) AS n FROM ticks WHERE symbol = $1"))
    assert.are.equal(0, count("SELECT count(*) AS n FROM ticks WHERE symbol = $1 AND ts < now() - interval '30 days'"))
    assert.are.equal(5, count("SELECT count(*) AS n FROM market_data WHERE symbol = $1 AND timeframe = 'M1'"))
    assert.are.equal(7, count("SELECT count(*) AS n FROM market_data WHERE symbol = $1 AND timeframe = 'H1'"))
    assert.are.equal(7, count("SELECT count(*) AS n FROM market_data WHERE symbol = $1 AND timeframe = 'D1'"))
    assert.are.equal(5 + 2, r.rows)
    -- configured: H1 kept 100 days, ticks for ever
    maint.run(ctx, { symbols = { sym }, retention = { ticks = false, market_data = { H1 = "100d" } } })
    assert.are.equal(2, count("SELECT count(*) AS n FROM ticks WHERE symbol = $1"))
    assert.are.equal(6, count("SELECT count(*) AS n FROM market_data WHERE symbol = $1 AND timeframe = 'H1'"))
    assert.are.equal(0, maint.run(ctx, { symbols = { sym } }).rows) -- nothing left to do
  end)

  it("drops whole partitions before the cutoff and creates partitions ahead", function()
    local t = "t_parts_" .. math.random(100000, 999999); scratch[#scratch + 1] = t
    tf.db.exec("CREATE TABLE " .. t .. " (symbol text, ts timestamptz NOT NULL, v int) PARTITION BY RANGE (ts)")
    tf.db.exec("CREATE TABLE " .. t .. "_default PARTITION OF " .. t .. " DEFAULT")
    tf.db.query("SELECT tf_ensure_partitions($1::regclass, 'month', now() - interval '8 months', now()) AS n", t)
    tf.db.exec("INSERT INTO " .. t .. " SELECT 'X', now() - g * interval '1 day', g FROM generate_series(0, 300) g")
    local keep = tf.db.query("SELECT count(*) AS n FROM " .. t .. " WHERE ts >= now() - interval '100 days'")[1].n
    local r = maint.run(ctx, { partitions = { ticks = false, market_data = false, [t] = { step = "month", ahead = "70d" } },
                               retention = { ticks = false, market_data = false, [t] = "100d" } })
    assert.are.equal(keep, tf.db.query("SELECT count(*) AS n FROM " .. t)[1].n)
    assert.are.equal(0, tf.db.query("SELECT count(*) AS n FROM " .. t .. " WHERE ts < now() - interval '100 days'")[1].n)
    local parts = tf.db.query([[SELECT count(*) FILTER (WHERE hi <= now() - interval '100 days') AS old,
        count(*) FILTER (WHERE lo >= now() + interval '35 days') AS ahead
      FROM (SELECT substring(pg_get_expr(c.relpartbound, c.oid) FROM 'FROM \(''([^'']+)''\)')::timestamptz AS lo,
                   substring(pg_get_expr(c.relpartbound, c.oid) FROM 'TO \(''([^'']+)''\)')::timestamptz AS hi
              FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
             WHERE i.inhparent = $1::regclass AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT') p]], t)[1]
    assert.are.equal(0, parts.old)
    assert.is_true(parts.ahead >= 1)
    assert.is_truthy(r.note:match("dropped [1-9]"))
  end)

  it("names the key of a wrong setting", function()
    local ok, err = pcall(maint.run, ctx, { retention = { ticks = "a month" } })
    assert.is_false(ok)
    assert.is_truthy(tostring(err):match("jobs%.maintenance%.retention%.ticks"))
    ok, err = pcall(maint.run, ctx, { retention = { market_data = { M1 = -3 } } })
    assert.is_truthy(tostring(err):match("jobs%.maintenance%.retention%.market_data%.M1"))
    ok, err = pcall(maint.run, ctx, { partitions = { ticks = { step = "week" } } })
    assert.is_truthy(tostring(err):match("jobs%.maintenance%.partitions%.ticks%.step"))
    ok, err = pcall(maint.run, ctx, { retention = { ["ticks; DROP TABLE x"] = "1d" } })
    assert.is_truthy(tostring(err):match("plain identifier"))
  end)
end)
