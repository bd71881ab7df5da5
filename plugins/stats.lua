-- Server state for people and probes.
--   GET /stats  (role read): the shared cache (tf.cache.stats()): hits,
--               misses, hit_rate, entries, bytes, max_bytes, evictions,
--               expired, loads, waits, and the same per key prefix. The
--               numbers are the ones /metrics shows as tf_cache_*.
--   GET /ready  (no key, for load balancers and orchestrators): 503 until
--               the database answers and every migration file of
--               database.migrations is recorded in schema_migrations, then
--               200. Liveness stays GET /health (the core's, no database).
-- Both answer Cache-Control: no-store.

local NO_STORE = { ["Cache-Control"] = "no-store" }

tf.route("GET", "/stats", function()
  return 200, { cache = tf.cache.stats() }, NO_STORE
end, { auth = "read" })

-- tf.db errors are tables { code, message, sqlstate }; anything else is text.
local function reason(e)
  if type(e) == "table" then return e.message or e.code or "error", e.sqlstate end
  return tostring(e)
end

tf.route("GET", "/ready", function()
  local ok, files = pcall(tf.db.migrations)
  if not ok then
    return 503, { ready = false, reason = "migrations folder: " .. reason(files) }, NO_STORE
  end
  local rows
  ok, rows = pcall(tf.db.query, "SELECT version FROM schema_migrations")
  if not ok then
    local msg, sqlstate = reason(rows)
    if sqlstate == "42P01" then -- undefined_table: never migrated
      return 503, { ready = false, reason = "no migration applied yet (run tickforge migrate)",
                    pending = #files }, NO_STORE
    end
    return 503, { ready = false, reason = "database: " .. msg }, NO_STORE
  end
  local applied = {}
  for _, r in ipairs(rows) do applied[r.version] = true end
  local pending = {}
  for _, f in ipairs(files) do
    if not applied[f.version] then pending[#pending + 1] = f.name end
  end
  if #pending > 0 then
    return 503, { ready = false, reason = #pending .. " migration(s) not applied (run tickforge migrate)",
                  pending = pending }, NO_STORE
  end
  local latest = files[#files]
  return 200, { ready = true, migration = latest and latest.name or nil }, NO_STORE
end, { auth = "none" })
