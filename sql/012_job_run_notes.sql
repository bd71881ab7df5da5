-- job_runs.note: what a run that did not fail says ("no new ticks", "2 bars
-- evaluated, 0 signals", why it was skipped). error is set only when the run
-- failed (result error or timeout); runs recorded before this migration kept
-- their note in error, so it moves.
ALTER TABLE job_runs ADD COLUMN IF NOT EXISTS note TEXT;

UPDATE job_runs SET note = error, error = NULL
 WHERE result IN ('ok', 'skipped') AND error IS NOT NULL AND note IS NULL;
