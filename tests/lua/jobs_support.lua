-- Shared by the jobs_*_spec files: unique symbols, random ticks and candles
-- written with plain SQL, and comparisons of market_data against a reference
-- query. Runs inside `tickforge run` (tf.db reaches DATABASE_URL); uses psql
-- only where a second, concurrent session is the point of the test.
local S = {}

math.randomseed(os.time() ~ (tonumber(tostring({}):match("0x(%x+)"), 16) or 0))

function S.migrate()
  local H = require("tests.integration.helper")
  H.migrate()
  return H
end

function S.symbol(prefix)
  return string.format("%s_%s_%06d", prefix or "T", os.time() % 100000, math.random(0, 999999))
end

-- Inserts n random-walk ticks for symbol starting at epoch second t0, dt
-- seconds apart on average (several may share a timestamp); returns the
-- epoch of the last one.
function S.ticks(symbol, t0, n, dt, price)
  local rows, t, p = {}, t0, price or 1.1
  for i = 1, n do
    t = t + math.random() * 2 * (dt or 1)
    if math.random() < 0.1 then t = t - math.random() * (dt or 1) end -- out of order
    p = p + (math.random() - 0.5) * 0.001
    local spread = math.random(1, 30) * 0.00001
    local ts = math.floor(t * 1000) / 1000
    if math.random() < 0.05 and rows[#rows] then ts = rows[#rows][2] end -- same instant
    rows[i] = { symbol, ts, p, p + spread, math.random() < 0.8 and p + spread / 2 or nil }
  end
  S.insert_ticks(rows)
  return t
end

-- rows: { {symbol, epoch, bid, ask, last}, ... } in one statement
function S.insert_ticks(rows)
  local sym, ts, bid, ask, last = {}, {}, {}, {}, {}
  for i, r in ipairs(rows) do
    sym[i] = r[1]; ts[i] = string.format("%.3f", r[2]); bid[i] = string.format("%.17g", r[3])
    ask[i] = string.format("%.17g", r[4]); last[i] = r[5] and string.format("%.17g", r[5]) or "NULL"
  end
  return tf.db.exec([[INSERT INTO ticks (symbol, ts, bid, ask, last)
    SELECT s, to_timestamp(t), b, a, l FROM unnest($1::text[], $2::float8[], $3::float8[], $4::float8[], $5::float8[]) AS u(s, t, b, a, l)]],
    "{" .. table.concat(sym, ",") .. "}", "{" .. table.concat(ts, ",") .. "}",
    "{" .. table.concat(bid, ",") .. "}", "{" .. table.concat(ask, ",") .. "}",
    "{" .. table.concat(last, ",") .. "}")
end

function S.max_seq()
  return tf.db.query("SELECT COALESCE(max(seq), 0) AS s FROM ticks")[1].s
end

-- Rows of `got` not in `want` plus rows of `want` not in `got` (both SQL
-- queries returning the same columns), and the two row counts.
function S.diff(got, want, ...)
  local r = tf.db.query(string.format([[
    WITH g AS (%s), w AS (%s)
    SELECT (SELECT count(*) FROM (SELECT * FROM g EXCEPT ALL SELECT * FROM w) a) +
           (SELECT count(*) FROM (SELECT * FROM w EXCEPT ALL SELECT * FROM g) b) AS diff,
           (SELECT count(*) FROM g) AS got, (SELECT count(*) FROM w) AS want]], got, want), ...)[1]
  return r.diff, r.got, r.want
end

-- n random-walk bars of timeframe tf for symbol, the first at epoch t0
-- (every bar present, len seconds apart); returns the epoch of the last.
function S.bars(symbol, timeframe, t0, n, len, source)
  tf.db.exec([[
    WITH g AS (SELECT i, (random() - 0.5) * 0.004 AS step, random() AS r FROM generate_series(0, $4::int - 1) i),
         w AS (SELECT i, 1.1 + sum(step) OVER (ORDER BY i) AS o, r FROM g)
    INSERT INTO market_data (symbol, timeframe, ts, open, high, low, close, volume, spread, source)
    SELECT $1, $2, to_timestamp($3::float8 + i * $5::int), o, o + r * 0.002 + 0.0002, o - (1 - r) * 0.002 - 0.0002,
           o + (r - 0.5) * 0.002, floor(r * 100) + 1, 0.0001, $6
      FROM w]], symbol, timeframe, t0, n, len, source or "ea")
  return t0 + (n - 1) * len
end

function S.cleanup(symbols)
  local arr = "{" .. table.concat(symbols, ",") .. "}"
  tf.db.exec("DELETE FROM ticks WHERE symbol = ANY($1::text[])", arr)
  tf.db.exec("DELETE FROM market_data WHERE symbol = ANY($1::text[])", arr)
  tf.db.exec("DELETE FROM rollup_queue WHERE symbol = ANY($1::text[])", arr)
  tf.db.exec("DELETE FROM signals WHERE symbol = ANY($1::text[])", arr)
  if tf.db.query("SELECT to_regclass('indicator_values') IS NOT NULL AS x")[1].x then
    tf.db.exec("DELETE FROM indicator_values WHERE symbol = ANY($1::text[])", arr)
  end
end

-- A fingerprint of everything stored for symbol (to see that a re-run changes nothing).
function S.fingerprint(symbol)
  return tf.db.query([[SELECT count(*) AS n, COALESCE(md5(string_agg(
      concat_ws('|', timeframe, ts, open, high, low, close, volume, spread, source, xmin::text), ',' ORDER BY timeframe, ts)), '') AS h
    FROM market_data WHERE symbol = $1]], symbol)[1]
end

return S
