-- tf_bucket(ts, timeframe, offset_seconds): the start of the MT5 timeframe
-- bucket holding ts, the same rule as core/ts.c (fixed lengths from the Unix
-- epoch; W1 from Sunday 00:00, MN1 from the 1st), with D1/W1/MN1 measured in
-- broker time: offset_seconds is broker time minus UTC, so a D1 bar starts at
-- broker midnight. Used by the rollups job and handy in ad-hoc SQL. Pure,
-- IMMUTABLE; NULL for an unknown timeframe (never a guess).
CREATE OR REPLACE FUNCTION tf_timeframe_seconds(tf text) RETURNS integer
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE tf
        WHEN 'M1' THEN 60 WHEN 'M2' THEN 120 WHEN 'M3' THEN 180 WHEN 'M4' THEN 240
        WHEN 'M5' THEN 300 WHEN 'M6' THEN 360 WHEN 'M10' THEN 600 WHEN 'M12' THEN 720
        WHEN 'M15' THEN 900 WHEN 'M20' THEN 1200 WHEN 'M30' THEN 1800
        WHEN 'H1' THEN 3600 WHEN 'H2' THEN 7200 WHEN 'H3' THEN 10800 WHEN 'H4' THEN 14400
        WHEN 'H6' THEN 21600 WHEN 'H8' THEN 28800 WHEN 'H12' THEN 43200
        WHEN 'D1' THEN 86400 WHEN 'W1' THEN 604800 WHEN 'MN1' THEN 0
    END
$$;

-- A single SQL expression of immutable functions only (timestamptz + interval
-- is merely stable), so the planner inlines it into set-based queries.
CREATE OR REPLACE FUNCTION tf_bucket(ts timestamptz, tf text, offset_seconds integer DEFAULT 0)
RETURNS timestamptz LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
    SELECT CASE
        WHEN tf = 'MN1' THEN (date_trunc('month', (ts AT TIME ZONE 'UTC') + make_interval(secs => offset_seconds))
                              - make_interval(secs => offset_seconds)) AT TIME ZONE 'UTC'
        WHEN tf = 'W1' THEN date_bin('7 days', ts, to_timestamp(259200 - offset_seconds))
        WHEN tf = 'D1' THEN date_bin('1 day', ts, to_timestamp(-offset_seconds))
        ELSE date_bin(make_interval(secs => tf_timeframe_seconds(tf)), ts, timestamptz '1970-01-01 00:00:00+00')
    END
$$;
