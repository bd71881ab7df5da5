-- A backtest report as one self-contained HTML page: the figures, the
-- equity and balance curves, the trades on a candle chart of the first
-- symbol, and the trade list. TradingView's lightweight-charts (the
-- standalone build, fetched by scripts/fetch_charts.sh into build/ui/) is
-- inlined so the file opens offline; without it the page draws the equity
-- curve as plain SVG and says so. Reads candles through tf.db; writes nothing.
local bt = require("tickforge.backtest")

local M = {}

M.MAX_CANDLES = 5000 -- more bars are merged, k at a time, so the page stays small
M.MAX_TRADE_ROWS = 5000

local CHART_JS_PATHS = {
  "build/ui/lightweight-charts.standalone.production.js",
  "build/ui/lightweight-charts.js",
}

--- chart_js() -> the library's text and its path, or nil and the paths tried.
function M.chart_js()
  local paths = {}
  local env = os.getenv("TICKFORGE_CHARTS_JS")
  if env and env ~= "" then paths[#paths + 1] = env end
  local conf = tf.config.get("backtest.charts_js")
  if type(conf) == "string" then paths[#paths + 1] = conf end
  for _, p in ipairs(CHART_JS_PATHS) do paths[#paths + 1] = p end
  for _, p in ipairs(paths) do
    local f = io.open(p, "rb")
    if f then
      local s = f:read("a")
      f:close()
      if s and #s > 1000 then return s, p end
    end
  end
  return nil, table.concat(paths, ", ")
end

local function esc(s)
  return (tostring(s):gsub("[&<>\"]", { ["&"] = "&amp;", ["<"] = "&lt;", [">"] = "&gt;", ['"'] = "&quot;" }))
end

local function num(v, d)
  if v == nil then return "-" end
  if v == math.huge then return "inf" end
  if math.type(v) == "integer" then return tostring(v) end
  return string.format("%." .. (d or 2) .. "f", v)
end

-- JSON safe inside <script>.
local function js(v) return (tf.json.encode(v):gsub("</", "<\\/")) end

-- Candles of the first symbol over the report's range, merged k at a time
-- when there are more than MAX_CANDLES.
local function candles(r)
  local where, args = { "symbol = $1", "timeframe = $2" }, { r.symbols[1], r.timeframe }
  if r.from then args[#args + 1] = r.from; where[#where + 1] = "ts >= $" .. #args .. "::timestamptz" end
  if r.to then args[#args + 1] = r.to; where[#where + 1] = "ts <= $" .. #args .. "::timestamptz" end
  local c, n = tf.db.columns("SELECT extract(epoch FROM ts)::float8 AS time, open::float8 AS open, high::float8 AS high, " ..
    "low::float8 AS low, close::float8 AS close FROM market_data WHERE " .. table.concat(where, " AND ") .. " ORDER BY ts",
    table.unpack(args))
  local k = math.max(1, math.ceil(n / M.MAX_CANDLES))
  local out = { time = {}, open = {}, high = {}, low = {}, close = {} }
  for i = 1, n, k do
    local j = math.min(i + k - 1, n)
    local hi, lo = c.high[i], c.low[i]
    for x = i + 1, j do
      if c.high[x] > hi then hi = c.high[x] end
      if c.low[x] < lo then lo = c.low[x] end
    end
    local m = #out.time + 1
    out.time[m], out.open[m], out.high[m], out.low[m], out.close[m] = math.floor(c.time[i]), c.open[i], hi, lo, c.close[j]
  end
  return out, k
end

-- The start of the candle holding time t (times ascending), or nil.
local function bucket(times, t)
  local lo, hi = 1, #times
  if hi == 0 or t < times[1] then return nil end
  while lo < hi do
    local mid = (lo + hi + 1) // 2
    if times[mid] <= t then lo = mid else hi = mid - 1 end
  end
  return times[lo]
end

local function svg_curve(r)
  local c = r.curve
  local n = #c.time
  if n < 2 then return "<p>Too few points for a curve.</p>" end
  local lo, hi = math.huge, -math.huge
  for i = 1, n do
    lo = math.min(lo, c.equity[i], c.balance[i])
    hi = math.max(hi, c.equity[i], c.balance[i])
  end
  if hi == lo then hi = lo + 1 end
  local t0, t1 = c.time[1], c.time[n]
  if t1 == t0 then t1 = t0 + 1 end
  local function pts(series)
    local p = {}
    for i = 1, n do
      p[i] = string.format("%.1f,%.1f", (c.time[i] - t0) / (t1 - t0) * 980 + 10, 290 - (series[i] - lo) / (hi - lo) * 280)
    end
    return table.concat(p, " ")
  end
  return string.format([[<svg viewBox="0 0 1000 300" width="100%%" height="300" role="img" aria-label="equity curve">
<rect width="1000" height="300" fill="#fff" stroke="#ddd"/>
<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="%s"/>
<polyline fill="none" stroke="#999" stroke-width="1" points="%s"/>
<text x="12" y="16" font-size="12">%s</text><text x="12" y="296" font-size="12">%s</text></svg>
<p class="legend"><span style="color:#1f77b4">equity</span> · <span style="color:#999">balance</span></p>]],
    pts(c.equity), pts(c.balance), num(hi), num(lo))
end

--- render(report) -> HTML text.
function M.render(r)
  local lib, where = M.chart_js()
  local s = r.summary
  local out = {}
  local function w(x) out[#out + 1] = x end
  w("<!doctype html><html><head><meta charset=\"utf-8\"><title>")
  w(esc(string.format("Backtest %s %s %s", r.strategy, table.concat(r.symbols, ","), r.timeframe)))
  w([[</title><style>
body{font:14px system-ui,sans-serif;margin:20px;color:#222}
table{border-collapse:collapse}td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:right}
th{text-align:left;font-weight:600}.fig td:first-child{text-align:left;color:#555}
.grid{display:grid;grid-template-columns:repeat(2,max-content);gap:0 40px}
#candles,#equity{width:100%;height:420px}#equity{height:260px}.note{color:#a60}.legend{color:#555}
.win{color:#2a7}.loss{color:#c33}</style></head><body>]])
  w(string.format("<h1>%s</h1><p>%s %s, %s .. %s · %d bars · %d trades · set %s · mode %s</p>",
    esc(r.strategy), esc(table.concat(r.symbols, ", ")), esc(r.timeframe), esc(r.from or "first bar"),
    esc(r.to or "last bar"), r.bars, #r.trades, esc(r.set), esc(r.settings.mode)))
  local pk = {}
  for k, v in pairs(r.params or {}) do pk[#pk + 1] = esc(k) .. " = " .. num(v, 4) end
  table.sort(pk)
  if #pk > 0 then w("<p>Parameters: " .. table.concat(pk, ", ") .. "</p>") end
  w("<div class=\"grid\">")
  local half = math.ceil(#bt.FIGURES / 2)
  for part = 0, 1 do
    w("<table class=\"fig\">")
    for i = part * half + 1, math.min((part + 1) * half, #bt.FIGURES) do
      local f = bt.FIGURES[i]
      w(string.format("<tr><td>%s</td><td>%s</td></tr>", esc(f[2]), num(s[f[1]])))
    end
    w("</table>")
  end
  w("</div>")
  if lib then
    local c, k = candles(r)
    local markers = {}
    for _, t in ipairs(r.trades) do
      if t.symbol == r.symbols[1] then
        local te, tx = bucket(c.time, t.entry_time), bucket(c.time, t.exit_time)
        if te then
          markers[#markers + 1] = { time = te, position = t.side == "buy" and "belowBar" or "aboveBar",
            color = t.side == "buy" and "#2962ff" or "#e91e63", shape = t.side == "buy" and "arrowUp" or "arrowDown",
            text = string.format("#%d %s %.2f", t.id, t.side, t.volume) }
        end
        if tx then
          markers[#markers + 1] = { time = tx, position = t.side == "buy" and "aboveBar" or "belowBar",
            color = t.net >= 0 and "#26a69a" or "#ef5350", shape = "circle",
            text = string.format("#%d %s %.2f", t.id, t.exit_reason, t.net) }
        end
      end
    end
    table.sort(markers, function(a, b) return a.time < b.time end)
    if #markers > 60 then -- labels would hide the candles: keep the shapes, the table has the numbers
      for _, m in ipairs(markers) do m.text = nil end
    end
    local eq, bal, last = {}, {}, nil
    for i, t in ipairs(r.curve.time) do
      t = math.floor(t)
      if t == last then eq[#eq], bal[#bal] = nil, nil end
      eq[#eq + 1] = { time = t, value = r.curve.equity[i] }
      bal[#bal + 1] = { time = t, value = r.curve.balance[i] }
      last = t
    end
    local bars = {}
    for i = 1, #c.time do
      bars[i] = { time = c.time[i], open = c.open[i], high = c.high[i], low = c.low[i], close = c.close[i] }
    end
    w(string.format("<h2>%s %s%s</h2><div id=\"candles\"></div><h2>Equity and balance</h2><div id=\"equity\"></div>",
      esc(r.symbols[1]), esc(r.timeframe), k > 1 and string.format(" (every %d bars merged into one candle)", k) or ""))
    w("<script>" .. lib:gsub("</script", "<\\/script") .. "</script>")
    w("<script>const BARS=" .. js(tf.json.array(bars)) .. ";const MARKERS=" .. js(tf.json.array(markers)) ..
      ";const EQUITY=" .. js(tf.json.array(eq)) .. ";const BALANCE=" .. js(tf.json.array(bal)) .. ";\n")
    w([[
const LW = window.LightweightCharts;
function add(chart, kind, opts) {  // v4 addXSeries, v5 addSeries(XSeries)
  return chart['add' + kind + 'Series'] ? chart['add' + kind + 'Series'](opts) : chart.addSeries(LW[kind + 'Series'], opts);
}
const base = { timeScale: { timeVisible: true }, layout: { background: { color: '#fff' } } };
const c1 = LW.createChart(document.getElementById('candles'), base);
const cs = add(c1, 'Candlestick', {});
cs.setData(BARS);
if (cs.setMarkers) cs.setMarkers(MARKERS); else if (LW.createSeriesMarkers) LW.createSeriesMarkers(cs, MARKERS);
c1.timeScale().fitContent();
const c2 = LW.createChart(document.getElementById('equity'), base);
add(c2, 'Line', { color: '#1f77b4', lineWidth: 2, title: 'equity' }).setData(EQUITY);
add(c2, 'Line', { color: '#999', lineWidth: 1, title: 'balance' }).setData(BALANCE);
c2.timeScale().fitContent();
</script>]])
  else
    w("<h2>Equity and balance</h2>")
    w(string.format("<p class=\"note\">The candle chart needs TradingView's lightweight-charts, not found (looked at %s); " ..
      "run <code>scripts/fetch_charts.sh</code> for it. The equity curve below is plain SVG.</p>", esc(where)))
    w(svg_curve(r))
  end
  w(string.format("<h2>Trades (%d)</h2><table><tr><th>#</th><th>symbol</th><th>side</th><th>lots</th><th>entry</th>" ..
    "<th>price</th><th>exit</th><th>price</th><th>reason</th><th>commission</th><th>net</th><th>balance</th></tr>", #r.trades))
  for i, t in ipairs(r.trades) do
    if i > M.MAX_TRADE_ROWS then
      w(string.format("<tr><td colspan=\"12\">… %d more in the JSON report</td></tr>", #r.trades - M.MAX_TRADE_ROWS))
      break
    end
    w(string.format("<tr><td>%d</td><td>%s</td><td>%s</td><td>%.2f</td><td>%s</td><td>%.5f</td><td>%s</td><td>%.5f</td>" ..
      "<td>%s</td><td>%.2f</td><td class=\"%s\">%.2f</td><td>%.2f</td></tr>", t.id, esc(t.symbol), t.side, t.volume,
      bt.iso(t.entry_time), t.entry_price, bt.iso(t.exit_time), t.exit_price, t.exit_reason, t.commission,
      t.net >= 0 and "win" or "loss", t.net, t.balance))
  end
  w("</table><p class=\"legend\">Generated by tickforge backtest; fill model and figures: docs/backtest.md.</p></body></html>\n")
  return table.concat(out)
end

return M
