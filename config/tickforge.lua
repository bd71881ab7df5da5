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
--   TICKFORGE_LOG_FORMAT  log.format
--
-- Relative paths are relative to the working directory of the process.
-- `tickforge check` validates this file and every plugin without serving.
-- Reload (SIGHUP, POST /admin/reload, or reload.watch) re-reads it; listen,
-- http.workers and http.max_connections take effect at the next restart.

return {
  -- Address and port to serve HTTP on. IPv4 address or "localhost".
  listen = "127.0.0.1:8080",

  http = {
    workers = 0,               -- libmicrohttpd worker threads, each polling its connections with
                               -- epoll and owning one Lua VM per generation; 0 = one per core (0..256).
                               -- A handler that waits (database, pool) yields: its worker serves
                               -- other requests meanwhile
    max_connections = 10000,   -- open connections at once (1..1000000); the open-file limit is
                               -- raised to match when the hard limit allows
    max_connections_per_ip = 1000, -- open connections from one client address; 0 = no limit (0..1000000)
    connection_timeout = 30,   -- seconds an idle keep-alive connection stays open (1..3600)
    header_timeout = 10,       -- seconds from a request line to the end of its headers; a client
                               -- that is slower is closed (slowloris) (1..3600)
    min_body_rate = "1KB",     -- bytes per second a body must average once header_timeout has
                               -- passed since its headers; a slower one is closed (0..1GB)
    max_body = "16MB",         -- default request body limit; a route may set its own (1KB..1GB).
                               -- Routes with auth = "none" default to at most 64KB.
    -- threads = 16,           -- no longer used (the thread-per-connection model); accepted
  },

  lua = {
    memory_limit = "256MB",    -- per Lua VM; a handler that exceeds it gets a memory error (1MB..64GB)
    handler_timeout_ms = 5000, -- wall time per request's handler, its waits included; then 503
                               -- (a waiting statement is cancelled) (1..600000). Plugin
                               -- loading gets four times this.
    path = { "lua" },          -- directories `require` searches (after them: plugins.dir)
  },

  database = {
    url = "",                  -- libpq URL; "" = no database (set DATABASE_URL)
    pool_size = 8,             -- connections, fixed (1..256)
    checkout_timeout_ms = 5000,-- wait for a free connection before answering 503 (1..600000)
    connect_timeout_s = 5,     -- libpq connect_timeout (1..600)
    statement_timeout_ms = 30000, -- per statement; 0 = none (0..3600000)
    prepare = true,            -- prepare a parameterised statement a connection runs twice
                               -- (plans once per connection; falls back by itself behind PgBouncer)
    single_lanes = 1,          -- statements storing single-candle requests at once (1..256);
                               -- requests arriving meanwhile share the next one (docs/ingest.md)
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

  cache = {
    -- tf.cache: one in-process cache shared by every handler, job and
    -- `tickforge run` script (README "Shared cache"). LRU eviction past the
    -- bound, per-entry TTLs; GET /stats and /metrics show hits and misses.
    max_memory = "64MB",       -- bytes held: keys + values (serialized) + ~96 B per entry
                               -- (64KB..1TB). A value larger than this is never cached.
                               -- Applied when a generation's VMs start (reload shrinks or grows it)
    load_timeout_ms = 5000,    -- get_or_load: how long a caller waits for another caller's
                               -- load of the same key before raising; a load older than this
                               -- is presumed abandoned and taken over (1..600000)
  },

  spool = {
    -- The durable ingest spool (docs/spool.md): while the database is
    -- unreachable, routes that ask for it (tf.candles.store(b, { on_unavailable
    -- = "spool" }); the shipped mt5_ingest does) queue batches here, fsynced
    -- before the answer, and a replayer stores them in order once it is back.
    -- Read at start (a reload keeps the running spool).
    enabled = true,            -- tickforge serve opens it (only with a database configured)
    dir = "var/spool",         -- relative to the working directory; created if missing;
                               -- one process at a time (locked)
    max_bytes = "1GB",         -- pending bytes on disk (4KB..1TB); past it, spooling routes
                               -- answer 503 with Retry-After
    segment_bytes = "64MB",    -- segment file size before the next one begins (4KB..4GB);
                               -- a replayed segment is deleted
  },

  log = {
    level = "info",            -- debug | info | warn | error (info logs one line per request)
    format = "logfmt",         -- logfmt | json (one JSON object per line: ts, level, msg, then the
                               -- fields, numbers as numbers); read at start, a reload keeps it
    access = true,             -- the per-request line (level info), buffered per worker and
                               -- written every 200 ms or 64 KB; false: only 5xx answers (warn)
  },

  -- Sections other than the ones above belong to plugins and are passed
  -- through untouched as tf.config.<section>; see each plugin's header.

  -- Read by plugins/mt5_ingest.lua (/ingest, /ingest_batch, /ingest/tick);
  -- docs/ingest.md explains each key.
  ingest = {
    policy = "merge",          -- same (symbol, timeframe, ts) again: merge | ignore | replace
    max_items = 50000,         -- candles per request; more is 413 (EAs split and resend)
    max_ticks = 100000,        -- ticks per request; more is 413
    -- max_body = "16MB",      -- body limit of these routes (default http.max_body)
    offset_seconds = 0,        -- EA server time minus UTC, subtracted from every ts
    symbol_offsets = {},       -- per symbol, e.g. { ["XAUUSD#"] = 7200 }
    key_offsets = {},          -- per API key name (auth.keys[].name), e.g. { ["ea-cy"] = 10800 }
    on_unavailable = "spool",  -- database unreachable: "spool" (queue in the spool, answer 200
                               -- "queued") | "error" (503 with Retry-After, nothing stored)
  },

  -- Read by plugins/market_read.lua (/candles, /indicators, /symbols, /ticks);
  -- docs/read.md explains each key.
  read = {
    max_rows = 100000,         -- most rows one answer holds (1..10000000); a range holding
                               -- more is a 400 naming read.max_rows (the answer is built in
                               -- memory: keep it within lua.memory_limit, ~200 bytes a row)
    default_limit = 1000,      -- rows when neither limit nor from is given (1..max_rows)
    cache_ttl = 60,            -- seconds a latest-bars answer stays in tf.cache (0: no caching);
                               -- storing candles of that symbol/timeframe drops it at once
  },

  -- Read by plugins/ui (GET /ui, the status page).
  ui = {
    enabled = true,            -- false: no /ui routes
    -- charts_js = "build/ui/lightweight-charts.standalone.production.js",
    --                         -- default: <plugins.dir>/../build/ui/..., fetched by `make deps`
  },

  -- Read by plugins/jobs.lua (the shipped jobs) and plugins/strategies;
  -- docs/jobs.md explains each job.
  jobs = {
    enabled = true,              -- false: this instance registers none of the shipped jobs

    -- Every job also takes the scheduler's options:
    --   every = "5s" | cron = "m h dom mon dow" (UTC; give one of the two),
    --   timeout = "60s", overlap = "skip" | "queue", jitter = "0s",
    --   run_at_start = false, enabled = true

    tick_aggregator = {          -- ticks -> M1 candles (source 'ticks')
      every = "5s",
      timeout = "60s",
      price = "mid",             -- mid (bid+ask)/2 | bid | ask | last (ticks without last are skipped)
      settle = nil,              -- seconds after which an ingest transaction is surely over; the
                                 -- watermark only settles past ticks this old. Default: 2 x
                                 -- database.statement_timeout_ms (60 s with the default 30 s)
      batch = 1000000,           -- at most this many sequence numbers per run (1..1e12)
      symbols = nil,             -- only these symbols, e.g. { "EURUSD" } (default: all). Ticks of
                                 -- other symbols are passed over for good, not kept for later
      work_mem = "64MB",         -- PostgreSQL work_mem for the run (SET LOCAL; "512kB", "1GB")
    },

    rollups = {                  -- M1 -> higher timeframes (source 'rollup')
      every = "1m",
      timeout = "120s",
      timeframes = { "M5", "M15", "M30", "H1", "H4", "D1", "W1", "MN1" },  -- any of M2 .. MN1
      broker_offset = nil,       -- seconds, broker time minus UTC, for D1/W1/MN1 boundaries
                                 -- (-86400..86400). Default: ingest.offset_seconds, else 0
      symbols = nil,             -- only these symbols (default: all)
      work_mem = "64MB",         -- PostgreSQL work_mem for the run
    },

    indicators = {               -- indicator values for new bars
      every = "60s",
      timeout = "300s",
      targets = {                -- which series to keep computed
        { timeframes = { "M1" }, sets = { "mt5_default" }, symbols = nil },
        -- { timeframes = { "M5", "H1" }, sets = { "mt5_default", "my_set" }, symbols = { "EURUSD" } },
      },                         -- symbols nil: every symbol with a bar in the last `recent`
      recent = "7d",
      warmup = nil,              -- nil: whole stored history as warm-up (values equal a full
                                 -- batch); N bars: faster, last digits of EMA-style values differ
    },

    strategies = {               -- runs tf.strategy definitions, stores signals
      every = "1m",
      timeout = "120s",
      only = nil,                -- run only these strategy names (default: all registered)
      disabled = {},             -- strategy names to skip
    },

    maintenance = {              -- partitions ahead, retention
      cron = "17 3 * * *",       -- daily at 03:17 UTC
      timeout = "30m",
      partitions = {             -- natively partitioned tables; step "month" | "year"
        ticks = { step = "month", ahead = "90d" },
        market_data = { step = "year", ahead = "400d" },
      },
      retention = {              -- rows older than this (by ts) are deleted; whole partitions
        ticks = "30d",           -- before the cutoff are dropped. false: keep for ever
        market_data = { M1 = "90d" },  -- per timeframe; timeframes not listed are kept
        -- signals = "365d",
      },
    },
  },

  -- Read by plugins/strategies (every plugins/strategies/*.lua is loaded;
  -- these settings are the shipped examples') and by tf.strategy.
  strategies = {
    rsi_reversal = { symbols = { "EURUSD" }, timeframe = "M5", low = 30, high = 70 },
    macd_cross = { symbols = { "EURUSD" }, timeframe = "H1" },
    disabled = {},               -- default {}: strategy names not to register, and files of
                                 -- plugins/strategies/ (without .lua) not to load: { "macd_cross" }
  },

  -- Read by plugins/backtest.lua (POST /admin/backtest, GET /admin/backtest/{id})
  -- and the `backtest` commands; docs/backtest.md. Queued backtests run in the
  -- `backtests` job, which follows jobs.enabled like the shipped jobs.
  backtest = {
    poll = "2s",                 -- how often the job looks for queued backtests (100ms..1h)
    timeout = "1h",              -- longest run of the job (1ms..1d); lua.memory_limit applies to it
    per_run = 10,                -- backtests one job run takes before it yields (1..1000)
    charts_js = nil,             -- lightweight-charts standalone JS for --html reports (default:
                                 -- build/ui/lightweight-charts.standalone.production.js, fetched
                                 -- by scripts/fetch_charts.sh; env TICKFORGE_CHARTS_JS wins)
  },

  -- Read by plugins/tp_capital (signals forwarded from Telegram channels:
  -- POST /tp-capital/ingest, GET /tp-capital/signals, /tp-capital/health);
  -- docs/tp_capital.md explains the routes and the signal grammar.
  tp_capital = {
    enabled = true,              -- false: the plugin registers no route
    max_batch = 500,             -- messages per request (1..10000); more is 413
    max_text = 16384,            -- bytes of text per message (1..1048576); longer is rejected
    cache = true,                -- false: every listing reads the database (for comparison)
    cache_ttl = 30,              -- seconds a GET /tp-capital/signals answer stays cached
                                 -- (0..86400; 0 = until an ingest changes it)
  },

  -- Read by plugins/catalog (a products REST API with a cache: GET/POST
  -- /products, GET/PUT/PATCH/DELETE /products/{id}, /catalog/stats,
  -- /services); docs/catalog.md. Off by default: config/examples/catalog.lua
  -- turns it on.
  catalog = {
    enabled = false,             -- true: serve the catalog routes
    cache = true,                -- false: every read goes to the database (for comparison)
    cache_ttl = 300,             -- seconds a cached product or listing lives (0..86400; 0 = until a write)
    max_limit = 100,             -- largest ?limit= of GET /products (1..1000)
    write_role = "ingest",       -- role that POST/PUT/PATCH/DELETE need: "ingest" | "admin"
  },
}

