-- Scheduler state (core/sched.c). job_state: one row per job name, shared by
-- every instance: the last scheduled slot claimed (epoch ms; each slot runs
-- once across instances), the watermark the last successful run returned
-- (JSON text, handed to the next run as ctx.watermark), and the last outcome.
-- job_runs: the history of runs, newest first by id.
CREATE TABLE IF NOT EXISTS job_state (
    name TEXT PRIMARY KEY,
    last_slot_ms BIGINT,
    watermark TEXT,
    last_ok TIMESTAMPTZ,
    last_error TEXT
);

CREATE TABLE IF NOT EXISTS job_runs (
    id BIGSERIAL PRIMARY KEY,
    name TEXT NOT NULL,
    instance TEXT NOT NULL,
    scheduled TIMESTAMPTZ NOT NULL,
    started TIMESTAMPTZ NOT NULL,
    duration_ms DOUBLE PRECISION NOT NULL,
    rows BIGINT NOT NULL DEFAULT 0,
    result TEXT NOT NULL,
    error TEXT,
    manual BOOLEAN NOT NULL DEFAULT FALSE
);

CREATE INDEX IF NOT EXISTS job_runs_name_id ON job_runs (name, id DESC);
