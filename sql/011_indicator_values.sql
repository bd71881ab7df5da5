-- Values of indicator sets other than the shipped mt5_default (which fills
-- market_data's own columns): one row per bar, set and output column, so a
-- new indicator needs no migration. Written by tf.indicators.store.
CREATE TABLE IF NOT EXISTS indicator_values (
    symbol TEXT NOT NULL,
    timeframe TEXT NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    set_name TEXT NOT NULL,
    name TEXT NOT NULL,
    value DOUBLE PRECISION,
    PRIMARY KEY (symbol, timeframe, set_name, name, ts)
);
