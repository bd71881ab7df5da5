-- Signals emitted by strategies (lua/tickforge/strategy.lua, run by the
-- strategies job) and polled by EAs through GET /signals?since=<last id>.
-- One row per (strategy, symbol, timeframe, bar, side): re-running a strategy
-- over the same bar adds nothing. ids only grow; rows are never updated.
CREATE TABLE IF NOT EXISTS signals (
    id BIGSERIAL PRIMARY KEY,
    strategy TEXT NOT NULL,
    symbol TEXT NOT NULL,
    timeframe TEXT NOT NULL,
    ts TIMESTAMPTZ NOT NULL,                 -- open time of the bar the signal is about
    side TEXT NOT NULL CHECK (side IN ('buy', 'sell', 'close')),
    strength DOUBLE PRECISION,               -- 0..1 by convention
    price DOUBLE PRECISION,
    stop DOUBLE PRECISION,
    target DOUBLE PRECISION,
    comment TEXT,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (strategy, symbol, timeframe, ts, side)
);
CREATE INDEX IF NOT EXISTS signals_symbol_id ON signals (symbol, id);
