-- Candles, keeping the old API's table: the same column names and primary key
-- (symbol, timeframe, ts), so existing SQL, dashboards and ML scripts keep
-- working. Adds `source` ('ea' = sent by an EA, 'ticks' = built from ticks).
-- A TimescaleDB hypertable when the extension is usable, else native yearly
-- range partitions from 2000 to two years ahead plus a default partition, so
-- no timestamp is ever refused.
DO $$
DECLARE
    cols text := $c$
        id BIGSERIAL,
        symbol TEXT NOT NULL,
        timeframe TEXT NOT NULL,
        ts TIMESTAMPTZ NOT NULL,
        open NUMERIC(18,8) NOT NULL,
        high NUMERIC(18,8) NOT NULL,
        low NUMERIC(18,8) NOT NULL,
        close NUMERIC(18,8) NOT NULL,
        volume NUMERIC(18,2) DEFAULT 0,
        spread NUMERIC(18,8),
        rsi NUMERIC(18,8),
        macd NUMERIC(18,8),
        macd_signal NUMERIC(18,8),
        macd_hist NUMERIC(18,8),
        atr NUMERIC(18,8),
        bb_upper NUMERIC(18,8),
        bb_middle NUMERIC(18,8),
        bb_lower NUMERIC(18,8),
        created_at TIMESTAMPTZ DEFAULT NOW(),
        source TEXT NOT NULL DEFAULT 'ea',
        PRIMARY KEY (symbol, timeframe, ts)
    $c$;
BEGIN
    IF to_regclass('market_data') IS NOT NULL THEN
        -- an existing table from the old system: add what is new
        ALTER TABLE market_data ADD COLUMN IF NOT EXISTS source TEXT NOT NULL DEFAULT 'ea';
        RETURN;
    END IF;
    IF tf_timescaledb_usable() THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
        EXECUTE 'CREATE TABLE market_data (' || cols || ')';
        PERFORM create_hypertable('market_data', 'ts', chunk_time_interval => INTERVAL '1 day',
                                  if_not_exists => TRUE);
    ELSE
        EXECUTE 'CREATE TABLE market_data (' || cols || ') PARTITION BY RANGE (ts)';
        CREATE TABLE market_data_default PARTITION OF market_data DEFAULT;
        PERFORM tf_ensure_partitions('market_data', 'year', '2000-01-01', now() + INTERVAL '2 years');
    END IF;
END $$;

CREATE INDEX IF NOT EXISTS idx_market_data_ts ON market_data (ts DESC);
