-- TP Capital signal grammar: turns the text of one forwarded channel message
-- into a parse (kind "signal", "partial" or "chatter"). Pure Lua, no tf.*,
-- no I/O, so it runs the same in a handler, a job and a busted spec. The
-- grammar it implements is written down in docs/tp_capital.md; never raises
-- on any string (chatter is an answer, not an error).
local P = {}

-- Symbol aliases (after upper-casing): what channels write -> one name.
local ALIASES = {
  GOLD = "XAUUSD", XAU = "XAUUSD", XAUUSD = "XAUUSD", OURO = "XAUUSD",
  SILVER = "XAGUSD", XAG = "XAGUSD", XAGUSD = "XAGUSD", PRATA = "XAGUSD",
  BTC = "BTCUSD", BITCOIN = "BTCUSD", BTCUSD = "BTCUSD", BTCUSDT = "BTCUSD",
  ETH = "ETHUSD", ETHEREUM = "ETHUSD", ETHUSD = "ETHUSD", ETHUSDT = "ETHUSD",
  US30 = "US30", DOW = "US30", DJ30 = "US30", DOWJONES = "US30", WS30 = "US30",
  NAS100 = "NAS100", NASDAQ = "NAS100", US100 = "NAS100", USTEC = "NAS100", NQ = "NAS100",
  US500 = "US500", SPX = "US500", SPX500 = "US500", SP500 = "US500",
  GER40 = "GER40", GER30 = "GER40", DAX = "GER40", DE40 = "GER40",
  UK100 = "UK100", FTSE = "UK100", JP225 = "JP225", NIKKEI = "JP225",
  OIL = "USOIL", WTI = "USOIL", USOIL = "USOIL", UKOIL = "UKOIL", BRENT = "UKOIL",
}
local CURRENCIES = { EUR = 1, USD = 1, GBP = 1, JPY = 1, CHF = 1, AUD = 1, NZD = 1, CAD = 1,
  SGD = 1, HKD = 1, NOK = 1, SEK = 1, MXN = 1, ZAR = 1, TRY = 1, BRL = 1, PLN = 1 }

local SIDES = { BUY = "buy", LONG = "buy", COMPRA = "buy", COMPRAR = "buy", COMPRE = "buy",
  SELL = "sell", SHORT = "sell", VENDA = "sell", VENDER = "sell", VENDE = "sell" }
local JOINED_SIDES = { BUYLIMIT = { "buy", "limit" }, BUYSTOP = { "buy", "stop" },
  SELLLIMIT = { "sell", "limit" }, SELLSTOP = { "sell", "stop" } }

-- Words that switch the field the next prices belong to.
local FIELD = {
  ENTRY = "entry", ENTRADA = "entry", ENTER = "entry", AT = "entry", PRICE = "entry",
  ZONE = "entry", ZONA = "entry", AREA = "entry", RANGE = "entry", EM = "entry",
  SL = "sl", STOPLOSS = "sl", STOP = "sl", SLOSS = "sl", LOSS = "sl",
  TP = "tp", TAKEPROFIT = "tp", TAKE = "tp", PROFIT = "tp", TARGET = "tp", TARGETS = "tp",
  TGT = "tp", ALVO = "tp", ALVOS = "tp", OBJETIVO = "tp", GAIN = "tp",
  -- numbers after these are not prices
  LOT = "skip", LOTS = "skip", LOTE = "skip", RISK = "skip", RISCO = "skip", RR = "skip",
  LEVERAGE = "skip", SIGNAL = "skip", SINAL = "skip", ID = "skip",
}
local MARKET = { NOW = true, MARKET = true, CMP = true, AGORA = true, MERCADO = true, INSTANT = true }
local PIPS = { PIPS = true, PIP = true, PTS = true, POINTS = true, PONTOS = true }

-- Normalises the text: upper case, S/L and T/P joined, EUR/USD joined,
-- times and percentages removed, every other non-ASCII byte a space.
local function normalise(text)
  local s = text:upper()
  s = s:gsub("[\128-\255]+", " ")                  -- emoji, accents: separators
  s = s:gsub("S%s*/%s*L", " SL "):gsub("T%s*/%s*P", " TP ")
  s = s:gsub("(%u%u%u)%s*/%s*(%u%u%u)", function(a, b)
    if CURRENCIES[a] and CURRENCIES[b] then return a .. b end
  end)
  s = s:gsub("STOP%s*LOSS", " SL "):gsub("TAKE%s*PROFIT", " TP ")
  s = s:gsub("%f[%d](%d%d?):(%d%d)%f[^%d.]", " ")   -- 09:30 is a time, not two prices
  s = s:gsub("#%d+", " ")                          -- #125: a post number
  s = s:gsub("[%d.]+%s*%%", " ")                   -- 50%: a size, not a price
  return s
end

-- Reads one number at s[i] (digits with one decimal point or comma).
-- "2,350" (comma + exactly three digits, no more) is a thousands separator;
-- "1,0850" a decimal comma. Returns value and the index after it.
local function read_number(s, i)
  local int, j = s:match("^(%d+)()", i)
  local frac
  local c = s:sub(j, j)
  if c == "." then
    frac, j = s:match("^%.(%d+)()", j)
    if not frac then return tonumber(int), j end
  elseif c == "," then
    local digits, k = s:match("^,(%d+)()", j)
    if digits and #digits == 3 and not s:sub(k, k):match("[%d,.]") then
      int, j = int .. digits, k
      if s:sub(j, j) == "." then
        frac, j = s:match("^%.(%d+)()", j)
        j = j or k
      end
    elseif digits then
      frac, j = digits, k
    end
  end
  return tonumber(frac and (int .. "." .. frac) or int), j
end

-- Tokens: { t = "word", v = "SELL" } | { t = "num", v = 1.085 } | { t = "range" }
local function tokens(s)
  local out, i, n = {}, 1, #s
  while i <= n do
    local c = s:sub(i, i)
    if c:match("%u") then
      local w, j = s:match("^(%u[%u%d]*)()", i)
      out[#out + 1] = { t = "word", v = w }
      i = j
    elseif c:match("%d") then
      local v, j = read_number(s, i)
      out[#out + 1] = { t = "num", v = v }
      i = j
    elseif c == "-" or c == "/" or c == "~" then
      out[#out + 1] = { t = "range" }
      i = i + 1
    elseif c == "\n" then
      out[#out + 1] = { t = "nl" }
      i = i + 1
    else
      i = i + 1 -- @ : = , ( ) spaces and the rest only separate
    end
  end
  return out
end

local function symbol_of(w)
  if ALIASES[w] then return ALIASES[w] end
  if #w == 6 and CURRENCIES[w:sub(1, 3)] and CURRENCIES[w:sub(4, 6)] and w:sub(1, 3) ~= w:sub(4, 6) then return w end
  -- broker suffixes: EURUSDM, XAUUSDPRO
  if #w > 6 and #w <= 9 then
    local head = w:sub(1, 6)
    if ALIASES[head] then return ALIASES[head] end
    if CURRENCIES[head:sub(1, 3)] and CURRENCIES[head:sub(4, 6)] and head:sub(1, 3) ~= head:sub(4, 6) then return head end
  end
  return nil
end

local function add_flag(r, f)
  for _, x in ipairs(r.flags) do if x == f then return end end
  r.flags[#r.flags + 1] = f
end

-- P.parse(text) -> {
--   kind = "signal" | "partial" | "chatter",
--   symbol, side ("buy"|"sell"), order_type ("market"|"limit"|"stop"),
--   market (true when "now"/"market" was written), entry_low, entry_high
--   (equal for one price), sl, tps = { ... } (in the order written),
--   missing = { "entry", "sl", "tp" } (what a signal lacks),
--   flags = { ... } (see docs/tp_capital.md) }
function P.parse(text)
  local r = { kind = "chatter", tps = {}, missing = {}, flags = {}, market = false }
  if type(text) ~= "string" then return r end
  local toks = tokens(normalise(text))
  local field = nil          -- where the next number goes: entry | sl | tp | skip
  local entry = {}           -- at most two numbers (a range)
  local range_open = false   -- a dash/slash right after the first entry number
  local seen = false         -- a side or a symbol was seen: numbers may be prices now
  for k, tok in ipairs(toks) do
    if tok.t == "word" then
      local w = tok.v
      range_open = false
      local sym = symbol_of(w)
      local joined = JOINED_SIDES[w]
      if sym then
        if r.symbol and r.symbol ~= sym then add_flag(r, "several_symbols")
        elseif not r.symbol then r.symbol = sym end
        seen = true
        if field == nil or field == "skip" then field = "entry" end
      elseif SIDES[w] or joined then
        local side = joined and joined[1] or SIDES[w]
        if r.side and r.side ~= side then add_flag(r, "several_sides")
        elseif not r.side then r.side = side end
        if joined then r.order_type = joined[2] end
        local nxt = toks[k + 1]
        if nxt and nxt.t == "word" and (nxt.v == "LIMIT" or nxt.v == "STOP") then
          r.order_type = nxt.v:lower()
          nxt.consumed = true
        end
        seen = true
        field = "entry"
      elseif tok.consumed then
        -- LIMIT/STOP right after the side: the order type, read above
      elseif MARKET[w] then
        r.market = true
        field = "entry"
        seen = true
      elseif PIPS[w] then
        -- the number just read was a distance, not a price: take it back
        local prev = toks[k - 1]
        if prev and prev.t == "num" and prev.field then
          if prev.field == "tp" then table.remove(r.tps)
          elseif prev.field == "sl" then r.sl = nil
          elseif prev.field == "entry" then table.remove(entry) end
          add_flag(r, "pips")
        end
      elseif w == "OPEN" and field == "tp" then
        add_flag(r, "tp_open") -- "TP3: open": a target left to the trader
      elseif w:match("^TP%d$") or w:match("^T%d$") or w:match("^TARGET%d$") or w:match("^ALVO%d$") then
        field = "tp"
      elseif w:match("^SL%d?$") then
        field = "sl"
      elseif FIELD[w] then
        field = FIELD[w]
      end
    elseif tok.t == "range" then
      range_open = field == "entry" and #entry == 1 and toks[k - 1] and toks[k - 1].t == "num"
    elseif tok.t == "num" and seen and field and field ~= "skip" then
      local v = tok.v
      -- "TP 1: 1.0900": a small integer right after TP followed by a price is an index
      local nxt = toks[k + 1]
      local prev = toks[k - 1]
      local is_index = field == "tp" and math.type(v) == "integer" and v >= 1 and v <= 9
        and prev and prev.t == "word" and nxt and nxt.t == "num"
      if not is_index then
        tok.field = field
        if field == "entry" then
          if #entry == 0 or (range_open and #entry == 1) then
            entry[#entry + 1] = v
          else
            add_flag(r, "extra_numbers")
          end
        elseif field == "sl" then
          if r.sl == nil then r.sl = v else add_flag(r, "extra_numbers") end
        elseif field == "tp" then
          if #r.tps < 10 then r.tps[#r.tps + 1] = v else add_flag(r, "extra_numbers") end
        end
      end
      range_open = false
    end
  end

  if not (r.symbol and r.side) then
    -- a side without a symbol, or a symbol without a side: not a signal
    return { kind = "chatter", tps = {}, missing = {}, flags = {}, market = false }
  end
  if #entry >= 1 then
    r.entry_low = math.min(entry[1], entry[2] or entry[1])
    r.entry_high = math.max(entry[1], entry[2] or entry[1])
  end
  r.order_type = r.order_type or "market" -- "limit"/"stop" only when written
  if not r.entry_low and not r.market then r.missing[#r.missing + 1] = "entry" end
  if r.sl == nil then r.missing[#r.missing + 1] = "sl" end
  if #r.tps == 0 then r.missing[#r.missing + 1] = "tp" end
  if not r.entry_low and r.sl == nil and #r.tps == 0 then
    r.kind = "partial"
    add_flag(r, "no_prices")
    return r
  end
  r.kind = "signal"
  -- a stop or a target on the wrong side of the entry: kept, but flagged
  local lo, hi = r.entry_low, r.entry_high
  if lo then
    if r.sl and ((r.side == "buy" and r.sl >= lo) or (r.side == "sell" and r.sl <= hi)) then add_flag(r, "sl_wrong_side") end
    for _, tp in ipairs(r.tps) do
      if (r.side == "buy" and tp <= hi) or (r.side == "sell" and tp >= lo) then add_flag(r, "tp_wrong_side") break end
    end
  end
  return r
end

P.ALIASES = ALIASES
return P
