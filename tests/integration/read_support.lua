-- Shared by the read-side specs: a unique symbol per run (the test database
-- is shared), deterministic bars and ticks sent through the real HTTP ingest
-- routes, and the clean-up.
local H = require("tests.integration.helper")

local R = {}

R.T0 = 1760918400 -- 2025-10-20T00:00:00Z

function R.symbol(prefix)
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)") or "0", 16) % 100000)
  return string.format("%s%06d", prefix or "RD", math.random(0, 999999))
end

-- Bar i (0-based) of a gentle wave, rounded as an EA would send it.
function R.bar(symbol, timeframe, t, i)
  local p = 1.08 + 0.002 * math.sin(i / 7) + 0.0001 * (i % 5)
  local function r(x) return math.floor(x * 1e5 + 0.5) / 1e5 end
  return { symbol = symbol, timeframe = timeframe, ts = t, open = r(p), high = r(p + 0.0006),
           low = r(p - 0.0005), close = r(p + 0.0002), volume = 100 + i, spread = 10 + i % 3 }
end

-- POSTs n bars of one timeframe (step seconds apart) to /ingest_batch in
-- chunks; returns the bars sent. Asserts every one was inserted.
function R.ingest_bars(srv, symbol, timeframe, n, step, t0)
  local bars = {}
  for i = 0, n - 1 do bars[#bars + 1] = R.bar(symbol, timeframe, (t0 or R.T0) + i * step, i) end
  for i = 1, n, 5000 do
    local chunk = {}
    for k = i, math.min(i + 4999, n) do chunk[#chunk + 1] = bars[k] end
    local st, v = srv:json("POST", "/ingest_batch", tf.json.encode(chunk), H.ingest_headers())
    assert(st == 200 and v.inserted == #chunk, "ingest failed: " .. tostring(st) .. " " .. tf.json.encode(v))
  end
  return bars
end

function R.ingest_ticks(srv, symbol, ticks)
  local st, v = srv:json("POST", "/ingest/tick", tf.json.encode({ ticks = ticks }), H.ingest_headers())
  assert(st == 200 and v.inserted == #ticks, "tick ingest failed: " .. tostring(st) .. " " .. tf.json.encode(v))
end

function R.cleanup(symbol)
  H.psql(string.format("DELETE FROM market_data WHERE symbol = '%s'; DELETE FROM ticks WHERE symbol = '%s'; " ..
    "DELETE FROM indicator_values WHERE symbol = '%s';", symbol, symbol, symbol))
end

function R.read_headers(extra)
  local h = { ["X-API-Key"] = H.READ_KEY }
  for k, v in pairs(extra or {}) do h[k] = v end
  return h
end

-- GET path with the read key; returns status, decoded body (or text), headers.
function R.get(srv, path, headers)
  return srv:json("GET", path, nil, R.read_headers(headers))
end

-- Parses CSV text with Python's csv module (what pandas.read_csv agrees with
-- for this dialect): returns the header and the rows as arrays of strings.
function R.parse_csv(text)
  local f = os.tmpname()
  H.write(f, text)
  local out = H.sh(string.format([[python3 -c 'import csv,json,sys; r=list(csv.reader(open(sys.argv[1], newline=""))); print(json.dumps(r))' %s]], f))
  os.remove(f)
  local rows = assert(tf.json.decode(out), "python csv: " .. out)
  local header = table.remove(rows, 1)
  return header, rows
end

return R
