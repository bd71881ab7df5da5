-- Backtests asked for through POST /admin/backtest (plugins/backtest.lua):
-- the request is queued here, the `backtests` job of any instance claims it
-- (FOR UPDATE SKIP LOCKED), runs tf.backtest and stores the report as JSON
-- text, so GET /admin/backtest/{id} can be answered by every instance.
CREATE TABLE IF NOT EXISTS backtest_reports (
    id BIGSERIAL PRIMARY KEY,
    status TEXT NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'failed')),
    request TEXT NOT NULL,                    -- the options as JSON
    report TEXT,                              -- the report as JSON (status done)
    error TEXT,                               -- why it failed (status failed)
    instance TEXT,                            -- who ran it
    created_at TIMESTAMPTZ NOT NULL DEFAULT now(),
    started_at TIMESTAMPTZ,
    finished_at TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS backtest_reports_queued ON backtest_reports (id) WHERE status = 'queued';
