-- What the shipped jobs need from the ingest tables.
-- ticks (symbol, ts): the tick aggregator re-reads every tick of each minute a
-- new tick touches, by symbol and time range.
-- rollup_queue: M1 bars written since the rollups job last ran, filled by
-- statement triggers on market_data (inserts and updates by anyone: EA
-- ingest, the tick aggregator, hand-written SQL) and emptied by the job in
-- the transaction that rolls them up, so nothing is lost to commit order.
-- Deletes (retention) are deliberately not queued: dropping old M1 bars must
-- not rewrite the higher timeframes kept from them.
CREATE INDEX IF NOT EXISTS ticks_symbol_ts ON ticks (symbol, ts);

CREATE TABLE IF NOT EXISTS rollup_queue (
    symbol TEXT NOT NULL,
    ts TIMESTAMPTZ NOT NULL            -- the M1 bar's open time
);
CREATE INDEX IF NOT EXISTS rollup_queue_symbol ON rollup_queue (symbol);

CREATE OR REPLACE FUNCTION tf_rollup_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO rollup_queue (symbol, ts) SELECT symbol, ts FROM tf_new_rows WHERE timeframe = 'M1';
    RETURN NULL;
END $$;

-- Row-level twin for TimescaleDB hypertables, which refuse transition tables.
CREATE OR REPLACE FUNCTION tf_rollup_enqueue_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.timeframe = 'M1' THEN
        INSERT INTO rollup_queue (symbol, ts) VALUES (NEW.symbol, NEW.ts);
    END IF;
    RETURN NULL;
END $$;

DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'market_data'::regclass
                                          AND tgname LIKE 'market_data_rollup_%') THEN
        RETURN;
    END IF;
    IF EXISTS (SELECT 1 FROM pg_class WHERE oid = 'market_data'::regclass AND relkind = 'p') THEN
        CREATE TRIGGER market_data_rollup_ins AFTER INSERT ON market_data
            REFERENCING NEW TABLE AS tf_new_rows FOR EACH STATEMENT EXECUTE FUNCTION tf_rollup_enqueue();
        CREATE TRIGGER market_data_rollup_upd AFTER UPDATE ON market_data
            REFERENCING NEW TABLE AS tf_new_rows FOR EACH STATEMENT EXECUTE FUNCTION tf_rollup_enqueue();
    ELSE
        CREATE TRIGGER market_data_rollup_row AFTER INSERT OR UPDATE ON market_data
            FOR EACH ROW EXECUTE FUNCTION tf_rollup_enqueue_row();
    END IF;
END $$;
