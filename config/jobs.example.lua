-- The `jobs` section of the config (and the `strategies` section the example
-- strategies read), every key with its default. Merge it into
-- config/tickforge.lua; each key is optional. plugins/jobs.lua registers the
-- five shipped jobs from it; a wrong value stops the start (or a reload) with
-- an error naming the key, e.g. "jobs.tick_aggregator.price: must be one of
-- mid, bid, ask, last, got median". docs/jobs.md explains each job.
-- Durations: a number of seconds or "500ms", "5s", "2m", "1h", "30d".
return {
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

  -- Read by plugins/strategies (the shipped examples).
  strategies = {
    rsi_reversal = { symbols = { "EURUSD" }, timeframe = "M5", low = 30, high = 70 },
    macd_cross = { symbols = { "EURUSD" }, timeframe = "H1" },
    disabled = {},               -- example names not to register: { "macd_cross" }
  },
}
