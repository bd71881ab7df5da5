-- tf.series and tf.ind as scripts and plugins use them (inside `tickforge run`):
-- batch calls, conventions, streams, the registry.
local function nan(x) return x ~= x end

local function walk(n)
  local h, l, c, v = {}, {}, {}, {}
  local p = 100
  for i = 1, n do
    local x = p * (1 + math.sin(i * 0.7) * 0.004 + math.cos(i * 0.13) * 0.003)
    c[i], h[i], l[i], v[i] = x, math.max(p, x) + 0.05, math.min(p, x) - 0.04, 100 + (i * 37) % 900
    p = x
  end
  return { high = h, low = l, close = c, volume = v }
end

describe("tf.series", function()
  it("is a contiguous array of numbers with length, indexing, slices and totable", function()
    local s = tf.series.from({ 1, 2, 3, 4 })
    assert.are.equal(4, #s)
    assert.are.equal(3, s[3])
    assert.is_nil(s[5])
    assert.are.same({ 2, 3 }, s:slice(2, 3):totable())
    assert.are.same({ 4 }, s:slice(-1):totable())
    assert.are.equal(4, s:last())
    s[1] = 10
    assert.are.equal(10, s[1])
    assert.is_true(tf.series.is(s))
    assert.is_false(tf.series.is({ 1 }))
  end)

  it("refuses non-numbers", function()
    assert.has_error(function() tf.series.from({ 1, "x" }) end)
  end)
end)

describe("tf.ind", function()
  local bars = walk(300)

  it("computes a simple moving average a quant can check by hand", function()
    local s = tf.ind.sma(bars.close, { period = 4 })
    assert.is_true(nan(s[3]))
    local want = (bars.close[297] + bars.close[298] + bars.close[299] + bars.close[300]) / 4
    assert.is_true(math.abs(s[300] - want) < 1e-9)
  end)

  it("returns one series per output and takes bars tables", function()
    local m, sig, hist = tf.ind.macd(bars.close, 12, 26, 9)
    assert.is_true(math.abs(hist[300] - (m[300] - sig[300])) < 1e-12)
    assert.is_true(nan(m[33]) and not nan(m[34]))
    local a = tf.ind.atr(bars, { period = 14 })
    local b = tf.ind.atr(bars.high, bars.low, bars.close, 14)
    assert.is_true(a == b)
  end)

  it("gives defined results on a constant series in both conventions", function()
    local flat = {}
    for i = 1, 60 do flat[i] = 1.5 end
    assert.are.equal(0, tf.ind.rsi(flat, 14)[60])                              -- TA-Lib
    assert.are.equal(50, tf.ind.rsi(flat, { 14, convention = "mt5" })[60])     -- RSI.mq5
    assert.are.equal(50, tf.ind.rsi(flat, { 14, smoothing = "sma" })[60])
    local up, mid, lo = tf.ind.bbands(flat, { period = 20 })
    assert.are.equal(mid[60], up[60])
    assert.are.equal(mid[60], lo[60])
  end)

  it("gives all NaN for a series shorter than the lookback, not an error", function()
    local s = tf.ind.rsi({ 1, 2, 3 }, 14)
    assert.are.equal(3, #s)
    assert.is_true(nan(s[1]) and nan(s[3]))
  end)

  it("streams exactly what the batch computes, and resumes from a saved state", function()
    local k, d = tf.ind.stoch(bars, { convention = "mt5" })
    local st = tf.ind.stream("stoch", { convention = "mt5" })
    for i = 1, 150 do st:update(bars.high[i], bars.low[i], bars.close[i]) end
    local again = tf.ind.stream("stoch", { convention = "mt5" }, st:state())
    for i = 151, 300 do
      local a, b = again:update({ high = bars.high[i], low = bars.low[i], close = bars.close[i] })
      assert.are.equal(k[i], a)
      assert.are.equal(d[i], b)
    end
  end)

  it("lists the registry with parameters, outputs and lookbacks", function()
    local names = {}
    for _, d in ipairs(tf.ind.list()) do names[d.name] = d end
    for _, want in ipairs({ "sma", "ema", "wma", "dema", "tema", "trima", "kama", "rsi", "macd", "atr",
      "natr", "trange", "bbands", "stddev", "stoch", "stochf", "stochrsi", "adx", "plus_di", "minus_di",
      "cci", "mfi", "obv", "roc", "mom", "willr", "aroon", "psar", "vwap", "donchian", "keltner",
      "ichimoku", "linreg" }) do
      assert.is_not_nil(names[want], want)
      assert.are.equal("function", type(tf.ind[want]))
    end
    assert.are.same({ "upper", "middle", "lower" }, names.bbands.outputs)
    assert.are.equal(33, tf.ind.lookback("macd"))
    assert.are.equal(20, names.bbands.params[1].default_mt5) -- BB.mq5's default period
    assert.are.equal(19, tf.ind.lookback("bbands", { convention = "mt5" }))
    assert.are.equal(4, tf.ind.lookback("bbands"))
  end)

  it("reports bad parameters clearly", function()
    assert.has_error(function() tf.ind.rsi(bars.close, { period = 1 }) end,
      "rsi: period must be in [2, 100000], got 1")
    assert.has_error(function() tf.ind.rsi(bars.close, { periods = 3 }) end, "rsi: unknown parameter 'periods'")
  end)
end)

describe("tf.indicators.stream", function()
  it("updates a whole set bar by bar exactly as the batch run, and resumes from one saved string", function()
    local bars = walk(200)
    local set = tf.indicators.set("spec_stream", { { "rsi", 14 }, { "macd", 5, 13, 4 }, { "stoch" }, convention = "mt5" })
    local batch = tf.indicators.run(set, bars)
    local st = tf.indicators.stream("spec_stream")
    local function bar(i) return { high = bars.high[i], low = bars.low[i], close = bars.close[i] } end
    for i = 1, 120 do st:update(bar(i)) end
    local saved = st:state()
    assert.are.equal("string", type(saved))
    local again = tf.indicators.stream("spec_stream", saved)
    assert.are.equal(120, again:bars())
    for i = 121, 200 do
      local v = again:update(bar(i))
      for _, col in ipairs(set.columns) do assert.are.equal(batch[col][i], v[col], col .. " at " .. i) end
    end
    assert.has_error(function() tf.indicators.stream("mt5_default", saved) end)
  end)
end)

