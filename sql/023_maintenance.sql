-- tf_drop_partitions_before(parent, cutoff): drops the range partitions of a
-- natively partitioned table that lie wholly before cutoff (upper bound <=
-- cutoff), the cheap way to apply retention to ticks. Used by the
-- maintenance job. Never drops the default partition or a partition that
-- reaches past cutoff; returns how many it dropped.
CREATE OR REPLACE FUNCTION tf_drop_partitions_before(parent regclass, cutoff timestamptz)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    part record;
    dropped integer := 0;
BEGIN
    FOR part IN
        SELECT c.oid::regclass AS rel,
               substring(pg_get_expr(c.relpartbound, c.oid) FROM $re$TO \('([^']+)'\)$re$)::timestamptz AS hi
          FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
         WHERE i.inhparent = parent AND pg_get_expr(c.relpartbound, c.oid) <> 'DEFAULT'
    LOOP
        IF part.hi IS NOT NULL AND part.hi <= cutoff THEN
            EXECUTE format('ALTER TABLE %s DETACH PARTITION %s', parent, part.rel);
            EXECUTE format('DROP TABLE %s', part.rel);
            dropped := dropped + 1;
        END IF;
    END LOOP;
    RETURN dropped;
END $$;
