-- Ticks with typed columns (the old market_data_raw kept JSON blobs).
-- seq is the ingestion sequence the tick aggregator reads from (a sequence:
-- ordered by insertion, not by commit, so a reader keeps a small lag window).
-- (symbol, ts_msc, ts) is unique: a resent tick with ts_msc is a duplicate;
-- ticks without ts_msc (NULL) never conflict, so ticks sharing a second are
-- all kept. Partitioned like market_data, by month, with a default partition.
DO $$
DECLARE
    cols text := $c$
        seq BIGSERIAL,
        symbol TEXT NOT NULL,
        ts TIMESTAMPTZ NOT NULL,
        bid DOUBLE PRECISION NOT NULL,
        ask DOUBLE PRECISION NOT NULL,
        last DOUBLE PRECISION,
        volume DOUBLE PRECISION,
        flags INTEGER,
        ts_msc BIGINT,
        spread DOUBLE PRECISION,
        received_at TIMESTAMPTZ NOT NULL DEFAULT now()
    $c$;
BEGIN
    IF to_regclass('ticks') IS NOT NULL THEN
        RETURN;
    END IF;
    IF tf_timescaledb_usable() THEN
        CREATE EXTENSION IF NOT EXISTS timescaledb;
        EXECUTE 'CREATE TABLE ticks (' || cols || ')';
        PERFORM create_hypertable('ticks', 'ts', chunk_time_interval => INTERVAL '1 day',
                                  if_not_exists => TRUE);
    ELSE
        EXECUTE 'CREATE TABLE ticks (' || cols || ') PARTITION BY RANGE (ts)';
        CREATE TABLE ticks_default PARTITION OF ticks DEFAULT;
        PERFORM tf_ensure_partitions('ticks', 'month', date_trunc('month', now()) - INTERVAL '12 months',
                                     now() + INTERVAL '6 months');
    END IF;
END $$;

CREATE UNIQUE INDEX IF NOT EXISTS ticks_symbol_msc_ts ON ticks (symbol, ts_msc, ts);
CREATE INDEX IF NOT EXISTS ticks_seq ON ticks (seq);
