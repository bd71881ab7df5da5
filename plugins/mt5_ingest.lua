-- MT5 ingest: the routes the old FastAPI system served, for EAs that must
-- work unchanged. Decoding, validation, bucketing and storing run in C as
-- whole-batch calls (tf.candles / tf.ticks); this file only picks options and
-- maps outcomes to the status codes the EAs understand: 200 with a status per
-- item whenever the body parses (bad items "rejected", good ones stored),
-- 400 only for an unparseable body or wrong top-level shape, 413 for too many
-- items. When the database is unavailable the valid items go to the durable
-- spool and the answer is 200 with "queued": N and each such item "queued"
-- (stored by the spool's replayer once the database is back; docs/spool.md);
-- 503 with Retry-After only when the spool is full or turned off (then
-- nothing of the batch is stored). While the spool holds batches, new ones
-- are queued behind them, so none overtakes a spooled one.
-- It never answers 409, and never builds SQL.
--
-- Settings, all optional, in the config file's `ingest` section:
--   ingest = {
--     policy = "merge",          -- same (symbol, timeframe, ts) again: merge | ignore | replace
--     max_items = 50000,         -- candles per request; more is 413 (EAs split and resend)
--     max_ticks = 100000,        -- ticks per request; more is 413
--     max_body = "16MB",         -- body limit of these routes (default http.max_body)
--     offset_seconds = 0,        -- EA server time minus UTC, subtracted from every ts
--     symbol_offsets = { },      -- per symbol, e.g. { ["XAUUSD#"] = 7200 }
--     key_offsets = { },         -- per API key name (auth.keys[].name), e.g. { ["ea-cy"] = 10800 }
--     on_unavailable = "spool",  -- database unreachable: "spool" (queue, answer 200) | "error" (503)
--   }
-- Times are stored as sent (read as UTC, even with a "Z") unless an offset is set.

local cfg = tf.config.ingest or {}
local POLICY = cfg.policy or "merge"
local MAX_ITEMS = cfg.max_items or 50000
local MAX_TICKS = cfg.max_ticks or 100000
local OFFSET = cfg.offset_seconds or 0
local SYMBOL_OFFSETS = cfg.symbol_offsets
local KEY_OFFSETS = cfg.key_offsets or {}
local ON_UNAVAILABLE = cfg.on_unavailable or "spool"

-- A wrong setting stops the load (and so a reload) with the key's name.
local function check(ok, msg) if not ok then error("config ingest." .. msg, 0) end end
check(POLICY == "merge" or POLICY == "ignore" or POLICY == "replace",
  "policy: must be merge, ignore or replace, got " .. tostring(POLICY))
check(math.type(MAX_ITEMS) == "integer" and MAX_ITEMS >= 1, "max_items: must be an integer >= 1")
check(math.type(MAX_TICKS) == "integer" and MAX_TICKS >= 1, "max_ticks: must be an integer >= 1")
check(type(OFFSET) == "number", "offset_seconds: must be a number of seconds")
check(SYMBOL_OFFSETS == nil or type(SYMBOL_OFFSETS) == "table", "symbol_offsets: must be a table symbol = seconds")
for k, v in pairs(SYMBOL_OFFSETS or {}) do
  check(type(k) == "string" and type(v) == "number", "symbol_offsets: must map symbols to seconds")
end
check(type(KEY_OFFSETS) == "table", "key_offsets: must be a table key name = seconds")
check(ON_UNAVAILABLE == "spool" or ON_UNAVAILABLE == "error",
  "on_unavailable: must be spool or error, got " .. tostring(ON_UNAVAILABLE))

-- The answer EAs scrape (documented in GET /openapi.json).
local DETAIL = { type = "object", required = { "symbol", "timeframe", "ts_original", "ts_bucket", "status" },
  properties = { symbol = { type = { "string", "null" } }, timeframe = { type = { "string", "null" } },
    ts_original = { type = { "string", "null" } }, ts_bucket = { type = { "string", "null" } },
    status = { type = "string", enum = { "inserted", "duplicate", "updated", "rejected", "queued" } },
    error = { type = "string" } } }
local ANSWER = { type = "object", required = { "ok", "received", "inserted", "duplicates", "details" },
  properties = { ok = { type = "boolean" }, received = { type = "integer" }, inserted = { type = "integer" },
    duplicates = { type = "integer" }, updated = { type = "integer" }, rejected = { type = "integer" },
    queued = { type = "integer" }, details = { type = "array", items = DETAIL } } }
local CANDLE = { type = "object", required = { "symbol", "timeframe", "ts", "open", "high", "low", "close" },
  properties = { symbol = { type = "string" }, timeframe = { type = { "string", "integer" } },
    ts = { type = { "string", "number" } }, open = { type = "number" }, high = { type = "number" },
    low = { type = "number" }, close = { type = "number" }, volume = { type = "number" }, spread = { type = "number" } } }
local DESCRIPTION = "A body that parses is always 200 with a status per item (bad items rejected with the reason, " ..
  "good neighbours stored); 400 only for unparseable JSON, 413 for too large a body or batch (split and resend)."

local function route_opts(summary, body, response)
  return { auth = "ingest", max_body = cfg.max_body, doc = { summary = summary, description = DESCRIPTION,
    body = body, response = response or ANSWER } }
end

local function decode_opts(req, shape, max)
  -- req.key_name is the name of the API key used, when the host provides it
  local key_offset = req.key_name and KEY_OFFSETS[req.key_name]
  return { shape = shape, max_items = max, offset = key_offset or OFFSET,
           symbol_offsets = SYMBOL_OFFSETS }
end

-- The database failed: 503 (the EA retries) when it is unavailable (and the
-- spool full or off) or timed out, 500 otherwise; either way nothing of the
-- batch was stored.
local function failed(e)
  if type(e) == "table" and (e.code == "unavailable" or e.code == "timeout") then
    tf.log.warn("ingest: database " .. e.code, { error = e.message })
    return 503, { ok = false, error = e.message }, { ["Retry-After"] = "1" }
  end
  local msg = type(e) == "table" and e.message or tostring(e)
  tf.log.error("ingest: store failed", { error = msg })
  return 500, { ok = false, error = msg }
end

local function candles(shape)
  return function(req)
    local batch, err, status = tf.candles.decode(req.body, decode_opts(req, shape, MAX_ITEMS))
    if not batch then return status, { ok = false, error = err } end
    local ok, answer = pcall(tf.candles.store, batch, { policy = POLICY, source = "ea", on_unavailable = ON_UNAVAILABLE })
    if not ok then return failed(answer) end
    return 200, answer
  end
end

-- POST /ingest: one candle object, or {"items": [candle, ...]}
tf.route("POST", "/ingest", candles("object"), route_opts("Stores one candle, or {\"items\": [candle, ...]}",
  { oneOf = { CANDLE, { type = "object", required = { "items" }, properties = { items = { type = "array", items = CANDLE } } } } }))

-- POST /ingest_batch: a JSON array of candles
tf.route("POST", "/ingest_batch", candles("array"), route_opts("Stores a JSON array of candles",
  { type = "array", items = CANDLE }))

-- POST /ingest/tick: {"ticks": [tick, ...]}
tf.route("POST", "/ingest/tick", function(req)
  local batch, err, status = tf.ticks.decode(req.body, decode_opts(req, nil, MAX_TICKS))
  if not batch then return status, { ok = false, error = err } end
  local ok, answer = pcall(tf.ticks.store, batch, { on_unavailable = ON_UNAVAILABLE })
  if not ok then return failed(answer) end
  return 200, answer
end, route_opts("Stores ticks: {\"ticks\": [{symbol, ts, bid, ask, ...}]}",
  { type = "object", required = { "ticks" }, properties = { ticks = { type = "array", items = { type = "object",
    required = { "symbol", "ts", "bid", "ask" } } } } },
  { type = "object", required = { "ok", "received", "inserted" }, properties = { ok = { type = "boolean" },
    received = { type = "integer" }, inserted = { type = "integer" } } }))
