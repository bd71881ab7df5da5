-- Backtests for the status page and scripts, as a background task:
--   POST /admin/backtest  {"strategy":"rsi_reversal","symbols":["EURUSD"],"timeframe":"M5",
--                          "from":"2025-01-01","to":"2025-10-01","params":{"low":25}, ...}
--     -> 202 {"ok":true,"id":N,"status":"queued","url":"/admin/backtest/N"}
--   GET /admin/backtest/{id}
--     -> {"ok":true,"id":N,"status":"queued|running|done|failed","error":..,"report":{...}}
-- The options are tf.backtest.run's (docs/backtest.md); they are checked
-- before queueing (400 names the field). The `backtests` job claims queued
-- requests (any instance, FOR UPDATE SKIP LOCKED), runs them and stores the
-- report in backtest_reports (sql/042_backtest_reports.sql), so any
-- instance answers the GET. Auth role admin. Config section `backtest`:
--   backtest = {
--     poll    = "2s",   -- how often the job looks for queued backtests (100ms..1h)
--     timeout = "1h",   -- longest backtest run (1s..1d); the job VM's lua.memory_limit applies
--     per_run = 10,     -- backtests one job run may take before yielding (1..1000)
--   }
-- The job follows jobs.enabled like the shipped jobs; with it off, requests
-- stay queued until an instance with jobs on runs them.
local FIELDS = {
  strategy = true, symbols = true, symbol = true, timeframe = true, from = true, to = true, set = true,
  params = true, cash = true, commission = true, slippage = true, spread = true, spread_unit = true,
  point = true, lot = true, lot_step = true, sizing = true, contract = true, mode = true, history = true,
  curve_points = true,
}

local function bad(field, msg) return 400, { ok = false, error = field .. ": " .. msg, field = field } end

tf.route("POST", "/admin/backtest", function(req)
  local body, err = tf.json.decode(req.body or "")
  if body == nil then return 400, { ok = false, error = "body: not JSON (" .. tostring(err) .. ")" } end
  if type(body) ~= "table" or body[1] ~= nil then return bad("body", "must be a JSON object of backtest options") end
  for k in pairs(body) do
    if not FIELDS[k] then return bad(tostring(k), "unknown option (see docs/backtest.md)") end
  end
  if type(body.strategy) ~= "string" then return bad("strategy", "required: the name of a registered strategy") end
  local ok, e = pcall(tf.backtest.options, body)
  if not ok then
    local field, msg = tostring(e):match("^backtest: ([%w_]+): (.*)$")
    return bad(field or "options", msg or tostring(e))
  end
  local id = tf.db.query("INSERT INTO backtest_reports (request) VALUES ($1) RETURNING id", tf.json.encode(body))[1].id
  local out = { ok = true, id = id, status = "queued", url = "/admin/backtest/" .. id }
  if tf.config.get("jobs.enabled", true) == false then
    out.note = "jobs are off in this instance (jobs.enabled): an instance with jobs on will run it"
  end
  return 202, out
end, { auth = "admin", doc = {
  summary = "Queue a backtest of a registered strategy (runs in the background)",
  description = "The body holds tf.backtest.run's options (docs/backtest.md); they are checked before queueing.",
  status = 202,
  body = { type = "object", required = { "strategy" }, properties = { strategy = { type = "string" },
    symbols = { type = "array", items = { type = "string" } }, symbol = { type = "string" },
    timeframe = { type = "string" }, from = { type = "string" }, to = { type = "string" }, params = { type = "object" } } },
  response = { type = "object", required = { "ok", "id", "status", "url" }, properties = {
    ok = { type = "boolean" }, id = { type = "integer" }, status = { type = "string", enum = { "queued" } },
    url = { type = "string" }, note = { type = "string" } } },
} })

tf.route("GET", "/admin/backtest/{id}", function(req)
  local id = req.params.id
  if not id:match("^%d+$") or #id > 18 then return bad("id", "must be a positive integer") end
  local r = tf.db.query([[SELECT id, status, error, report, request,
      to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS created_at,
      to_char(started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS started_at,
      to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') AS finished_at
    FROM backtest_reports WHERE id = $1::int8]], id)[1]
  if not r then return 404, { ok = false, error = "no backtest with id " .. id } end
  local head = { ok = true, id = r.id, status = r.status, error = r.error or tf.json.null, created_at = r.created_at,
                 started_at = r.started_at or tf.json.null, finished_at = r.finished_at or tf.json.null }
  tf.json.order(head, { "ok", "id", "status", "error", "created_at", "started_at", "finished_at" })
  local text = tf.json.encode(head)
  -- the stored JSON goes out as it is, not decoded and encoded again
  text = text:sub(1, -2) .. ',"request":' .. r.request .. ',"report":' .. (r.report or "null") .. "}"
  return 200, text, { ["Content-Type"] = "application/json" }
end, { auth = "admin", doc = {
  summary = "A backtest's status and, once done, its report",
  params = { { name = "id", type = "integer", description = "The id POST /admin/backtest answered" } },
  response = { type = "object", required = { "ok", "id", "status", "request" }, properties = {
    ok = { type = "boolean" }, id = { type = "integer" },
    status = { type = "string", enum = { "queued", "running", "done", "failed" } },
    request = { type = "object" }, report = { type = { "object", "null" } } } },
} })

if tf.config.get("jobs.enabled", true) == false then return end

local cfg = tf.config.get("backtest", {})
local per_run = cfg.per_run or 10
if math.type(per_run) ~= "integer" or per_run < 1 or per_run > 1000 then
  error("backtest.per_run: must be an integer in 1..1000", 0)
end

local CLAIM = [[
UPDATE backtest_reports SET status = 'running', started_at = now(), instance = $1
 WHERE id = (SELECT id FROM backtest_reports WHERE status = 'queued' ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED)
RETURNING id, request]]

local function run_queue(ctx)
  local done = 0
  for _ = 1, per_run do
    local row = tf.db.query(CLAIM, ctx.instance or "?")[1]
    if not row then break end
    local ok, report = pcall(function() return tf.backtest.to_json(tf.backtest.run(tf.json.decode(row.request))) end)
    if ok then
      tf.db.exec("UPDATE backtest_reports SET status = 'done', report = $2, finished_at = now() WHERE id = $1", row.id, report)
    else
      tf.db.exec("UPDATE backtest_reports SET status = 'failed', error = $2, finished_at = now() WHERE id = $1", row.id,
        tostring(report))
    end
    done = done + 1
  end
  return { rows = done, note = string.format("%d backtests run", done) }
end

for key, default in pairs({ poll = "2s", timeout = "1h" }) do
  local _, err = tf.duration(cfg[key] or default)
  if err then error("config backtest." .. key .. ": " .. err, 0) end
end
tf.job.every("backtests", cfg.poll or "2s", run_queue, { timeout = cfg.timeout or "1h", overlap = "skip" })
