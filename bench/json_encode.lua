-- tf.json.encode on the shapes shipped routes answer with: an ingest answer
-- of 50,000 details (keys fixed by tf.json.order), 1,000 /signals rows
-- (12 keys, no order: sorted), and 100,000 small error objects. Prints
-- milliseconds per encode (best of 5). Run: tickforge run bench/json_encode.lua
local function best(f, reps)
  local b = math.huge
  for _ = 1, 5 do
    local t = os.clock()
    for _ = 1, reps do f() end
    b = math.min(b, (os.clock() - t) / reps)
  end
  return b * 1e3
end

local details = tf.json.array({})
for i = 1, 50000 do
  details[i] = tf.json.order({ symbol = "EURUSD", timeframe = "M1", ts_original = "2025-10-20T03:00:00+00:00",
    ts_bucket = "2025-10-20T03:00:00+00:00", status = "inserted" }, { "symbol", "timeframe", "ts_original", "ts_bucket", "status" })
end
local ingest = tf.json.order({ ok = true, received = 50000, inserted = 50000, duplicates = 0, details = details },
  { "ok", "received", "inserted", "duplicates", "details" })

local rows = tf.json.array({})
for i = 1, 1000 do
  rows[i] = { id = i, strategy = "rsi_reversal", symbol = "EURUSD", timeframe = "M5", ts = "2025-10-20T03:00:00+00:00",
    side = "buy", strength = 0.5, price = 1.1, stop = 1.09, target = 1.12, comment = "c", created_at = "x" }
end
local signals = { ok = true, signals = rows, last_id = 1000 }

local small = { ok = false, error = "since: must be a non-negative integer", param = "since" }

print(string.format("| shape | ms per encode |\n|---|---|"))
print(string.format("| ingest answer, 50,000 details (ordered) | %.3f |", best(function() tf.json.encode(ingest) end, 3)))
print(string.format("| /signals, 1,000 rows of 12 keys (sorted) | %.3f |", best(function() tf.json.encode(signals) end, 20)))
print(string.format("| error object, 3 keys | %.5f |", best(function() tf.json.encode(small) end, 100000)))
