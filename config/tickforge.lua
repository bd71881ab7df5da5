-- tickforge configuration.
--
-- This file returns a Lua table. Every key is optional: the value shown is
-- the default. Sizes accept a number of bytes or text like "16MB", "512KB".
-- A wrong value (type, range, unknown key in a core section) stops the server
-- at start, and rejects a reload with a message naming the key; the previous
-- generation keeps serving.
--
-- Environment variables override the file (for deployment):
--   DATABASE_URL          database.url
--   TICKFORGE_LISTEN      listen ("host:port")
--   TICKFORGE_API_KEY     adds a key with roles ingest + read
--                         (API_KEY, the old system's name, is accepted too)
--   TICKFORGE_ADMIN_KEY   adds a key with roles admin + read
--   TICKFORGE_LOG_LEVEL   log.level
--
-- Relative paths are relative to the working directory of the process.
-- `tickforge check` validates this file and every plugin without serving.
-- Reload (SIGHUP, POST /admin/reload, or reload.watch) re-reads it; listen
-- and http.* take effect at the next restart.

return {
  -- Address and port to serve HTTP on. IPv4 address or "localhost".
  listen = "127.0.0.1:8080",

  http = {
    threads = 4,               -- worker threads (1..256), each with its own Lua VM
    max_connections = 1024,    -- open connections at once (1..100000)
    connection_timeout = 30,   -- seconds an idle keep-alive connection stays open (1..3600)
    max_body = "16MB",         -- default request body limit; a route may set its own (1KB..1GB)
  },

  lua = {
    memory_limit = "256MB",    -- per Lua VM; a handler that exceeds it gets a memory error (1MB..64GB)
    handler_timeout_ms = 5000, -- wall time per handler call; then 503 (1..600000). Plugin
                               -- loading gets four times this.
    path = { "lua" },          -- directories `require` searches (after them: plugins.dir)
  },

  database = {
    url = "",                  -- libpq URL; "" = no database (set DATABASE_URL)
    pool_size = 8,             -- connections, fixed (1..256)
    checkout_timeout_ms = 5000,-- wait for a free connection before answering 503 (1..600000)
    connect_timeout_s = 5,     -- libpq connect_timeout (1..600)
    statement_timeout_ms = 30000, -- per statement; 0 = none (0..3600000)
    migrations = "sql",        -- folder of numbered *.sql migrations
  },

  auth = {
    -- API keys and their roles: "ingest" (POST market data), "read" (query
    -- data and signals), "admin" (reload, status, jobs). Keys are sent as
    -- X-API-Key: <key> or Authorization: Bearer <key>; at least 8 characters.
    keys = {
      -- { key = "change-me-ingest", roles = { "ingest", "read" }, name = "ea-fleet" },
      -- { key = "change-me-admin",  roles = { "admin", "read" },  name = "ops" },
    },
    metrics_open = true,       -- GET /metrics without a key (false: needs "read")
  },

  plugins = {
    dir = "plugins",           -- every dir/*.lua and dir/*/init.lua, loaded in name order
    -- enabled = { "mt5_ingest.lua", "hello.lua" },  -- an explicit list and order instead
    disabled = {},             -- names to skip: "hello" or "hello.lua"
  },

  reload = {
    watch = false,             -- poll config and plugin files and reload on change
    interval_ms = 1000,        -- how often to poll (100..60000)
  },

  scheduler = {
    enabled = true,            -- run the jobs plugins register with tf.job in this instance
    workers = 2,               -- job threads (1..16), each with its own Lua VM; a running job
                               -- holds one database connection (its lock) plus what it uses
  },

  log = {
    level = "info",            -- debug | info | warn | error (info logs one line per request)
  },

  -- Sections other than the ones above belong to plugins and are passed
  -- through untouched as tf.config.<section>; see each plugin's header.
}
