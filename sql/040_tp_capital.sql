-- TP Capital (plugins/tp_capital): messages forwarded from Telegram channels
-- and the trading signals parsed from them, in a schema of their own.
-- A message is unique per (channel, message_id); an edit (same id, new text)
-- bumps its version, replaces its signal and appends to signal_history, so
-- every text a message ever had is kept.
CREATE SCHEMA IF NOT EXISTS tp_capital;

CREATE TABLE IF NOT EXISTS tp_capital.forwarded_messages (
    id BIGSERIAL PRIMARY KEY,
    channel TEXT NOT NULL,
    message_id TEXT NOT NULL,
    posted_at TIMESTAMPTZ NOT NULL,              -- the message's "date"
    text TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('signal', 'partial', 'chatter')),
    version INT NOT NULL DEFAULT 1,              -- 1 + edits received
    received_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (channel, message_id)
);

-- One row per message that parsed as a signal (kind 'signal') or a
-- half-signal (kind 'partial': side and symbol, no prices). A message edited
-- into chatter loses its row; its history stays.
CREATE TABLE IF NOT EXISTS tp_capital.signals (
    id BIGSERIAL PRIMARY KEY,
    message_ref BIGINT NOT NULL UNIQUE REFERENCES tp_capital.forwarded_messages (id) ON DELETE CASCADE,
    channel TEXT NOT NULL,
    message_id TEXT NOT NULL,
    ts TIMESTAMPTZ NOT NULL,                     -- when the channel posted it
    kind TEXT NOT NULL CHECK (kind IN ('signal', 'partial')),
    symbol TEXT NOT NULL,
    side TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
    order_type TEXT NOT NULL CHECK (order_type IN ('market', 'limit', 'stop')),
    market BOOLEAN NOT NULL DEFAULT false,       -- "now" / "market" was written
    entry_low DOUBLE PRECISION,                  -- equal to entry_high for one price
    entry_high DOUBLE PRECISION,
    sl DOUBLE PRECISION,
    tps JSONB NOT NULL DEFAULT '[]',             -- targets, in the order written
    missing JSONB NOT NULL DEFAULT '[]',         -- of "entry", "sl", "tp"
    flags JSONB NOT NULL DEFAULT '[]',           -- docs/tp_capital.md
    version INT NOT NULL DEFAULT 1,
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS tp_signals_ts ON tp_capital.signals (ts DESC, id DESC);
CREATE INDEX IF NOT EXISTS tp_signals_symbol_ts ON tp_capital.signals (symbol, ts DESC);
CREATE INDEX IF NOT EXISTS tp_signals_channel_ts ON tp_capital.signals (channel, ts DESC);

-- Every version of every message with what it parsed to; never updated.
CREATE TABLE IF NOT EXISTS tp_capital.signal_history (
    id BIGSERIAL PRIMARY KEY,
    message_ref BIGINT NOT NULL REFERENCES tp_capital.forwarded_messages (id) ON DELETE CASCADE,
    version INT NOT NULL,
    text TEXT NOT NULL,
    kind TEXT NOT NULL,
    parsed JSONB NOT NULL,
    recorded_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (message_ref, version)
);
