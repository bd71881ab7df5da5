-- Time partitioning helper for the native (non-TimescaleDB) layout: creates
-- the missing range partitions of a table partitioned BY RANGE (ts) between
-- two instants, moving any rows that already landed in the default
-- partition. Idempotent; called by later migrations and by maintenance jobs
-- to create partitions ahead. Never drops or detaches anything with data.
CREATE OR REPLACE FUNCTION tf_ensure_partitions(parent regclass, step text,
                                                from_ts timestamptz, to_ts timestamptz)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    lo timestamptz := date_trunc(step, from_ts AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
    hi timestamptz;
    pname text;
    deflt regclass;
    created integer := 0;
BEGIN
    IF step NOT IN ('month', 'year') THEN
        RAISE EXCEPTION 'tf_ensure_partitions: step must be month or year, got %', step;
    END IF;
    SELECT c.oid::regclass INTO deflt
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = parent AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT';
    WHILE lo < to_ts LOOP
        hi := ((lo AT TIME ZONE 'UTC') + ('1 ' || step)::interval) AT TIME ZONE 'UTC';
        pname := parent::text || '_p' || to_char(lo AT TIME ZONE 'UTC',
                                                  CASE step WHEN 'year' THEN 'YYYY' ELSE 'YYYYMM' END);
        IF to_regclass(pname) IS NULL THEN
            EXECUTE format('CREATE TABLE %I (LIKE %s INCLUDING DEFAULTS INCLUDING CONSTRAINTS)',
                           pname, parent);
            IF deflt IS NOT NULL THEN
                EXECUTE format('WITH moved AS (DELETE FROM %s WHERE ts >= %L AND ts < %L RETURNING *) '
                               'INSERT INTO %I SELECT * FROM moved', deflt, lo, hi, pname);
            END IF;
            EXECUTE format('ALTER TABLE %s ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                           parent, pname, lo, hi);
            created := created + 1;
        END IF;
        lo := hi;
    END LOOP;
    RETURN created;
END $$;

-- True when TimescaleDB can be used here (installed and preloaded).
CREATE OR REPLACE FUNCTION tf_timescaledb_usable() RETURNS boolean LANGUAGE sql AS $$
    SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
       AND current_setting('shared_preload_libraries', true) LIKE '%timescaledb%'
$$;
