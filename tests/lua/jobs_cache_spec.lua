-- The shipped jobs that write market_data with SQL (tick aggregator, rollups,
-- indicators) drop the cached candle reads (tf.cache keys
-- candles:<symbol>:<timeframe>:...) of exactly the (symbol, timeframe) pairs
-- they wrote, once they commit; keys of other pairs, and every key when a run
-- writes nothing, stay.
local S = require("tests.lua.jobs_support")
local agg = require("tickforge.jobs.tick_aggregator")
local rollups = require("tickforge.jobs.rollups")
local indicators = require("tickforge.jobs.indicators")

local function ctx(name, wm) return { name = name, watermark = wm, log = tf.log } end

-- Sets one key per name under candles:<name>, returns the keys.
local function put(names)
  local keys = {}
  for i, k in ipairs(names) do
    keys[i] = "candles:" .. k
    assert.is_true(tf.cache.set(keys[i], { bars = { 1, 2, 3 }, k = k }) ~= false)
  end
  return keys
end

local function present(key) return tf.cache.get(key) ~= nil end

describe("jobs invalidate the candle cache", function()
  local syms = {}
  setup(function() S.migrate() end)
  teardown(function()
    S.cleanup(syms)
    for _, s in ipairs(syms) do tf.cache.delete_prefix("candles:" .. s) end
  end)

  it("tick aggregator: the M1 reads of the symbols it wrote, nothing else", function()
    local a, b = S.symbol("CA"), S.symbol("CB"); syms[#syms + 1] = a; syms[#syms + 1] = b
    local cfg = { symbols = { a, b }, settle = 0 }
    local wm = { seq = S.max_seq() }
    S.ticks(a, 1760684400, 200, 1)
    local k = put({ a .. ":M1:last500", a .. ":M1:0:1:mt5_default", a .. ":M5:last500", b .. ":M1:last500",
                    a .. "X:M1:last500", a .. ":M1" })
    local r = agg.run(ctx("tick_aggregator", wm), cfg)
    assert.is_true(r.rows > 0)
    assert.is_false(present(k[1])); assert.is_false(present(k[2]))
    assert.is_true(present(k[3]))   -- another timeframe of the symbol
    assert.is_true(present(k[4]))   -- a symbol without new ticks
    assert.is_true(present(k[5]))   -- a symbol the first one is a prefix of
    assert.is_true(present(k[6]))   -- not under "candles:<symbol>:M1:"
    -- a run with no new ticks drops nothing
    k = put({ a .. ":M1:last500" })
    r = agg.run(ctx("tick_aggregator", r.watermark), cfg)
    assert.are.equal(0, r.rows)
    assert.is_true(present(k[1]))
  end)

  it("tick aggregator: an EA candle it may not overwrite drops nothing", function()
    local a = S.symbol("CE"); syms[#syms + 1] = a
    local cfg = { symbols = { a }, settle = 0 }
    local wm = { seq = S.max_seq() }
    -- one minute of ticks, and the EA's own bar for that minute
    S.insert_ticks({ { a, 1760684410, 1.1, 1.1002 }, { a, 1760684420, 1.1001, 1.1003 } })
    S.bars(a, "M1", 1760684400, 1, 60, "ea")
    local k = put({ a .. ":M1:last500" })
    local r = agg.run(ctx("tick_aggregator", wm), cfg)
    assert.are.equal(0, r.rows)
    assert.is_true(present(k[1]))
  end)

  it("rollups: the timeframes it built for the symbols it rolled up, nothing else", function()
    local a, b = S.symbol("CR"), S.symbol("CS"); syms[#syms + 1] = a; syms[#syms + 1] = b
    S.bars(a, "M1", 1760684400, 30, 60, "ea")   -- 07:00 .. 07:29, fills the rollup queue
    S.bars(b, "M1", 1760684400, 30, 60, "ea")
    local cfg = { symbols = { a }, timeframes = { "M5", "H1" } }
    local k = put({ a .. ":M5:last500", a .. ":H1:x", a .. ":M1:last500", a .. ":D1:x", b .. ":M5:last500" })
    local r = rollups.run(ctx("rollups"), cfg)
    assert.are.equal(7, r.rows) -- 6 M5 bars and 1 H1 bar
    assert.is_false(present(k[1])); assert.is_false(present(k[2]))
    assert.is_true(present(k[3]))   -- M1: read, not written
    assert.is_true(present(k[4]))   -- D1: not a configured timeframe
    assert.is_true(present(k[5]))   -- another symbol (its queue is not processed)
    -- a new M1 bar whose M5 bucket is an EA bar: only H1 is written and dropped
    S.bars(a, "M5", 1760684400 + 1800, 1, 300, "ea")
    S.bars(a, "M1", 1760684400 + 1800, 1, 60, "ea")
    k = put({ a .. ":M5:last500", a .. ":H1:x" })
    r = rollups.run(ctx("rollups"), cfg)
    assert.are.equal(1, r.rows)
    assert.is_true(present(k[1])); assert.is_false(present(k[2]))
    -- nothing queued: nothing dropped
    k = put({ a .. ":M5:last500", a .. ":H1:x" })
    assert.are.equal(0, rollups.run(ctx("rollups"), cfg).rows)
    assert.is_true(present(k[1])); assert.is_true(present(k[2]))
  end)

  it("indicators: the pairs whose values it stored (they are joined into /candles?set=)", function()
    local a, b = S.symbol("CI"), S.symbol("CJ"); syms[#syms + 1] = a; syms[#syms + 1] = b
    S.bars(a, "M1", os.time() - 3600, 60, 60, "ea")
    S.bars(b, "M1", os.time() - 3600, 60, 60, "ea")
    local cfg = { targets = { { timeframes = { "M1" }, sets = { "mt5_default" }, symbols = { a } } } }
    local k = put({ a .. ":M1:60:mt5_default", a .. ":M5:x", b .. ":M1:60:mt5_default" })
    local r = indicators.run(ctx("indicators"), cfg)
    assert.is_true(r.rows > 0)
    assert.is_false(present(k[1]))
    assert.is_true(present(k[2])); assert.is_true(present(k[3]))
    -- nothing new since: nothing computed, nothing dropped
    k = put({ a .. ":M1:60:mt5_default" })
    r = indicators.run(ctx("indicators", r.watermark), cfg)
    assert.are.equal(0, r.rows)
    assert.is_true(present(k[1]))
  end)
end)
