-- The TP Capital signal grammar (plugins/tp_capital/parser.lua) against a
-- corpus of messages written the ways channels write them. Each row is a
-- message and its expected parse; entry = price or { low, high }. Prices,
-- symbol, side and kind are always compared (absent = must be absent);
-- flags, missing, order_type and market only when the row gives them.
local P = require("plugins.tp_capital.parser")

local CORPUS = {
  -- the issue's three examples
  { "BUY EURUSD @ 1.0850 SL 1.0800 TP1 1.0900 TP2 1.0950",
    { kind = "signal", symbol = "EURUSD", side = "buy", entry = 1.0850, sl = 1.0800, tps = { 1.0900, 1.0950 }, order_type = "market", market = false, missing = {}, flags = {} } },
  { "EURUSD SELL NOW 1.0850 / SL: 1.0900 / TP: 1.0800",
    { kind = "signal", symbol = "EURUSD", side = "sell", entry = 1.0850, sl = 1.0900, tps = { 1.0800 }, market = true, missing = {} } },
  { "Gold buy zone 2350-2345 sl 2338 tp 2360 tp 2375",
    { kind = "signal", symbol = "XAUUSD", side = "buy", entry = { 2345, 2350 }, sl = 2338, tps = { 2360, 2375 }, flags = {} } },
  -- line breaks and emoji between fields
  { "🔴 XAUUSD SELL\nEntry: 2365.50\nSL: 2372\nTP1: 2358\nTP2: 2350\nTP3: OPEN",
    { kind = "signal", symbol = "XAUUSD", side = "sell", entry = 2365.50, sl = 2372, tps = { 2358, 2350 }, flags = { "tp_open" } } },
  { "🟢 BUY GBPUSD 🟢\n\n📍 Entry 1.2710\n❌ SL 1.2660\n✅ TP1 1.2760\n✅ TP2 1.2810\n✅ TP3 1.2900",
    { kind = "signal", symbol = "GBPUSD", side = "buy", entry = 1.2710, sl = 1.2660, tps = { 1.2760, 1.2810, 1.2900 } } },
  { "📉SELL📉 #USDJPY\n@ 151.20\nstop loss 151.80\ntake profit 150.40",
    { kind = "signal", symbol = "USDJPY", side = "sell", entry = 151.20, sl = 151.80, tps = { 150.40 } } },
  { "XAUUSD BUY NOW @2341\n\nSL:2333\nTP:2348\nTP:2355\nTP:2370",
    { kind = "signal", symbol = "XAUUSD", side = "buy", entry = 2341, sl = 2333, tps = { 2348, 2355, 2370 }, market = true } },
  -- case and separators: @ : - =
  { "sell gbpjpy @ 191.450 sl - 192.000 tp - 190.800",
    { kind = "signal", symbol = "GBPJPY", side = "sell", entry = 191.450, sl = 192.000, tps = { 190.800 } } },
  { "Buy AUDUSD 0.6620 SL=0.6590 TP=0.6680",
    { kind = "signal", symbol = "AUDUSD", side = "buy", entry = 0.6620, sl = 0.6590, tps = { 0.6680 } } },
  { "EUR/USD BUY 1.0842 | SL 1.0812 | TP 1.0902",
    { kind = "signal", symbol = "EURUSD", side = "buy", entry = 1.0842, sl = 1.0812, tps = { 1.0902 } } },
  { "usdcad short at 1.3650, s/l 1.3690, t/p 1.3590",
    { kind = "signal", symbol = "USDCAD", side = "sell", entry = 1.3650, sl = 1.3690, tps = { 1.3590 } } },
  { "LONG NZDUSD - 0.6010 - SL 0.5980 - TP 0.6060",
    { kind = "signal", symbol = "NZDUSD", side = "buy", entry = 0.6010, sl = 0.5980, tps = { 0.6060 } } },
  -- GOLD / XAU aliases and broker suffixes
  { "GOLD SELL 2388 SL 2395 TP 2380 TP 2370",
    { kind = "signal", symbol = "XAUUSD", side = "sell", entry = 2388, sl = 2395, tps = { 2380, 2370 } } },
  { "XAU/USD buy 2310.5 sl 2302 tp 2320",
    { kind = "signal", symbol = "XAUUSD", side = "buy", entry = 2310.5, sl = 2302, tps = { 2320 } } },
  { "XAUUSDm BUY 2322 SL 2315 TP 2330",
    { kind = "signal", symbol = "XAUUSD", side = "buy", entry = 2322, sl = 2315, tps = { 2330 } } },
  { "EURUSD.pro sell 1.0901 sl 1.0931 tp 1.0861",
    { kind = "signal", symbol = "EURUSD", side = "sell", entry = 1.0901, sl = 1.0931, tps = { 1.0861 } } },
  { "Silver buy 29.40 sl 29.10 tp 29.90",
    { kind = "signal", symbol = "XAGUSD", side = "buy", entry = 29.40, sl = 29.10, tps = { 29.90 } } },
  -- now / market without a price
  { "SELL EURUSD NOW\nSL 1.0920\nTP 1.0850",
    { kind = "signal", symbol = "EURUSD", side = "sell", sl = 1.0920, tps = { 1.0850 }, market = true, order_type = "market", missing = {} } },
  { "Buy gold market price, sl 2290, tp 2320",
    { kind = "signal", symbol = "XAUUSD", side = "buy", sl = 2290, tps = { 2320 }, market = true, missing = {} } },
  -- entry ranges (zones)
  { "GOLD SELL ZONE 2368 - 2372\nSL 2378\nTP 2360\nTP 2352\nTP 2340",
    { kind = "signal", symbol = "XAUUSD", side = "sell", entry = { 2368, 2372 }, sl = 2378, tps = { 2360, 2352, 2340 } } },
  { "BUY XAUUSD 2325/2320 SL 2314 TP 2335 TP 2345",
    { kind = "signal", symbol = "XAUUSD", side = "buy", entry = { 2320, 2325 }, sl = 2314, tps = { 2335, 2345 } } },
  { "Gbpusd buy zone: 1.2650-1.2640\nsl: 1.2610\ntp1: 1.2690\ntp2: 1.2720",
    { kind = "signal", symbol = "GBPUSD", side = "buy", entry = { 1.2640, 1.2650 }, sl = 1.2610, tps = { 1.2690, 1.2720 } } },
  -- numbered targets written "TP 1:", "Target 2", "T1"
  { "EURJPY BUY 163.20\nSL 162.70\nTP 1: 163.70\nTP 2: 164.20",
    { kind = "signal", symbol = "EURJPY", side = "buy", entry = 163.20, sl = 162.70, tps = { 163.70, 164.20 } } },
  { "SELL CHFJPY 172.40 stop 172.90 target1 171.90 target2 171.40",
    { kind = "signal", symbol = "CHFJPY", side = "sell", entry = 172.40, sl = 172.90, tps = { 171.90, 171.40 } } },
  { "BTCUSD long 67250 sl 66400 targets 68000 69000 70500",
    { kind = "signal", symbol = "BTCUSD", side = "buy", entry = 67250, sl = 66400, tps = { 68000, 69000, 70500 } } },
  -- thousands separators and decimal commas
  { "BUY BTC @ 67,250 SL 66,400 TP 68,900",
    { kind = "signal", symbol = "BTCUSD", side = "buy", entry = 67250, sl = 66400, tps = { 68900 } } },
  { "VENDA EURUSD 1,0850 STOP 1,0890 ALVO 1,0800",
    { kind = "signal", symbol = "EURUSD", side = "sell", entry = 1.0850, sl = 1.0890, tps = { 1.0800 } } },
  -- Portuguese (the channels TP Capital follows are Brazilian)
  { "🚨 SINAL 🚨\nCOMPRA OURO AGORA\nEntrada: 2340\nStop: 2332\nAlvo 1: 2348\nAlvo 2: 2356",
    { kind = "signal", symbol = "XAUUSD", side = "buy", entry = 2340, sl = 2332, tps = { 2348, 2356 }, market = true } },
  { "Venda GBPUSD na zona 1.2780 - 1.2790, stop 1.2820, alvos 1.2740 e 1.2700",
    { kind = "signal", symbol = "GBPUSD", side = "sell", entry = { 1.2780, 1.2790 }, sl = 1.2820, tps = { 1.2740, 1.2700 } } },
  -- pending orders
  { "BUY LIMIT EURUSD 1.0800 SL 1.0770 TP 1.0860",
    { kind = "signal", symbol = "EURUSD", side = "buy", order_type = "limit", entry = 1.0800, sl = 1.0770, tps = { 1.0860 } } },
  { "XAUUSD SELL STOP 2295 SL 2303 TP 2280",
    { kind = "signal", symbol = "XAUUSD", side = "sell", order_type = "stop", entry = 2295, sl = 2303, tps = { 2280 } } },
  { "SELLLIMIT USDCHF 0.9150 SL 0.9180 TP 0.9100",
    { kind = "signal", symbol = "USDCHF", side = "sell", order_type = "limit", entry = 0.9150, sl = 0.9180, tps = { 0.9100 } } },
  -- indices and oil
  { "US30 SELL 39250 SL 39400 TP 39000",
    { kind = "signal", symbol = "US30", side = "sell", entry = 39250, sl = 39400, tps = { 39000 } } },
  { "NASDAQ buy now 18120 sl 18040 tp 18250",
    { kind = "signal", symbol = "NAS100", side = "buy", entry = 18120, sl = 18040, tps = { 18250 }, market = true } },
  { "Oil short 78.40 SL 79.10 TP 77.20",
    { kind = "signal", symbol = "USOIL", side = "sell", entry = 78.40, sl = 79.10, tps = { 77.20 } } },
  -- noise around the signal: post numbers, times, lots, risk, pips
  { "Signal #482 ⏰ 09:45\nBUY EURGBP 0.8560\nSL 0.8530\nTP 0.8610\nLot 0.05 | Risk 1%",
    { kind = "signal", symbol = "EURGBP", side = "buy", entry = 0.8560, sl = 0.8530, tps = { 0.8610 } } },
  { "SELL AUDJPY 99.80 SL 30 pips TP 60 pips",
    { kind = "signal", symbol = "AUDJPY", side = "sell", entry = 99.80, missing = { "sl", "tp" }, flags = { "pips" } } },
  -- half-signals: side and symbol, no prices (stored, flagged "no_prices")
  { "GOLD BUY NOW",
    { kind = "partial", symbol = "XAUUSD", side = "buy", market = true, missing = { "sl", "tp" }, flags = { "no_prices" } } },
  { "Getting ready to sell EURUSD, details soon 👀",
    { kind = "partial", symbol = "EURUSD", side = "sell", missing = { "entry", "sl", "tp" }, flags = { "no_prices" } } },
  { "GBPJPY long",
    { kind = "partial", symbol = "GBPJPY", side = "buy", missing = { "entry", "sl", "tp" } } },
  -- signals missing one part
  { "BUY USDJPY 150.10 TP 150.80",
    { kind = "signal", symbol = "USDJPY", side = "buy", entry = 150.10, tps = { 150.80 }, missing = { "sl" } } },
  { "SELL GOLD 2401 SL 2409",
    { kind = "signal", symbol = "XAUUSD", side = "sell", entry = 2401, sl = 2409, missing = { "tp" } } },
  -- suspicious numbers are kept and flagged
  { "BUY EURUSD 1.0850 SL 1.0900 TP 1.0950",
    { kind = "signal", symbol = "EURUSD", side = "buy", entry = 1.0850, sl = 1.0900, tps = { 1.0950 }, flags = { "sl_wrong_side" } } },
  { "SELL EURUSD 1.0850 SL 1.0900 TP 1.0950",
    { kind = "signal", symbol = "EURUSD", side = "sell", entry = 1.0850, sl = 1.0900, tps = { 1.0950 }, flags = { "tp_wrong_side" } } },
  { "BUY EURUSD 1.0850 SL 1.0800 TP 1.0900\nSELL GBPUSD 1.2700",
    { kind = "signal", symbol = "EURUSD", side = "buy", entry = 1.0850, sl = 1.0800, tps = { 1.0900 },
      flags = { "several_sides", "several_symbols", "extra_numbers" } } },
  -- chatter: never an error, never a signal
  { "Good morning traders! ☀️ London opens at 08:00", { kind = "chatter" } },
  { "TP1 HIT ✅ +50 pips on GOLD 🔥🔥", { kind = "chatter" } },
  { "Don't sell yourself short. Discipline wins.", { kind = "chatter" } },
  { "EURUSD looking heavy today, waiting for a setup", { kind = "chatter" } },
  { "", { kind = "chatter" } },
  { "🔥🔥🔥", { kind = "chatter" } },
  { "SL 1.0800 TP 1.0900", { kind = "chatter" } },
  { "Bom dia pessoal! Hoje tem NFP às 10:30, cuidado 🙏", { kind = "chatter" } },
}

local function sorted(t)
  local c = {}
  for i, v in ipairs(t or {}) do c[i] = v end
  table.sort(c)
  return c
end

describe("TP Capital signal grammar", function()
  it("has a corpus of at least 40 messages", function()
    assert.is_true(#CORPUS >= 40, "corpus has " .. #CORPUS)
  end)

  for i, row in ipairs(CORPUS) do
    local text, want = row[1], row[2]
    it(string.format("#%d parses %q", i, text:gsub("\n", " | "):sub(1, 60)), function()
      local got = P.parse(text)
      assert.are.equal(want.kind, got.kind)
      assert.are.equal(want.symbol, got.symbol)
      assert.are.equal(want.side, got.side)
      local lo, hi = want.entry, want.entry
      if type(want.entry) == "table" then lo, hi = want.entry[1], want.entry[2] end
      assert.are.equal(lo, got.entry_low)
      assert.are.equal(hi, got.entry_high)
      assert.are.equal(want.sl, got.sl)
      assert.are.same(want.tps or {}, got.tps)
      if want.market ~= nil then assert.are.equal(want.market, got.market) end
      if want.order_type then assert.are.equal(want.order_type, got.order_type) end
      if want.missing then assert.are.same(sorted(want.missing), sorted(got.missing)) end
      if want.flags then assert.are.same(sorted(want.flags), sorted(got.flags)) end
    end)
  end

  it("never raises, whatever the input", function()
    local samples = { "\0\1\2", string.rep("9", 5000), string.rep("BUY ", 2000), "TP TP TP 1 2 3",
      "1,2,3,4,5", "-----", "////", "BUY EURUSD " .. string.rep("1.1 ", 500), "TP1: 1e999", "BUY GOLD 1.2.3.4" }
    for _, s in ipairs(samples) do
      local ok, r = pcall(P.parse, s)
      assert.is_true(ok, tostring(r))
      assert.is_truthy(r.kind)
    end
    assert.are.equal("chatter", P.parse(nil).kind)
  end)
end)
