-- tf_put_candles: stores candles under a conflict policy and returns the
-- rows it inserted or changed (inserted = true for a new row); a row it does
-- not return was a duplicate. This is where the three policies live: every
-- ON CONFLICT store of tf.candles.store (core/candles.c) calls it, for a
-- batch and for the single candles of many requests stored together.
-- PL/pgSQL keeps each INSERT's plan for the life of the server connection,
-- so PostgreSQL parses and plans the long ON CONFLICT clause once per
-- connection rather than once per request; unlike named prepared statements
-- this works behind PgBouncer's transaction pooling.
--
-- The arrays are parallel, one element per candle; (symbol, timeframe, us)
-- must be unique within a call (ON CONFLICT cannot touch a row twice in one
-- statement; the caller folds repeats first). us is the bucket start in
-- microseconds since the epoch (UTC).
-- The rows to store, from the parallel arrays (inlined by the planner).
CREATE OR REPLACE FUNCTION tf_candle_rows(p_source text, p_symbol text[], p_timeframe text[], p_us int8[],
                                          p_open numeric[], p_high numeric[], p_low numeric[],
                                          p_close numeric[], p_volume numeric[], p_spread numeric[])
RETURNS TABLE (symbol text, timeframe text, ts timestamptz, open numeric, high numeric, low numeric,
               close numeric, volume numeric, spread numeric, source text)
LANGUAGE sql STABLE AS $$
    SELECT x.s, x.f, timestamptz 'epoch' + x.u * interval '1 microsecond', x.o, x.h, x.l, x.c, x.v, x.sp, p_source
    FROM unnest(p_symbol, p_timeframe, p_us, p_open, p_high, p_low, p_close, p_volume, p_spread)
         AS x(s, f, u, o, h, l, c, v, sp)
$$;

CREATE OR REPLACE FUNCTION tf_put_candles(p_policy text, p_source text, p_symbol text[],
                                          p_timeframe text[], p_us int8[], p_open numeric[],
                                          p_high numeric[], p_low numeric[], p_close numeric[],
                                          p_volume numeric[], p_spread numeric[])
RETURNS TABLE (symbol text, timeframe text, us text, inserted boolean)
LANGUAGE plpgsql AS $$
#variable_conflict use_column
BEGIN
    IF p_policy = 'merge' THEN
        -- Keep open, widen high and low, take the latest close, the largest
        -- volume. An EA's candle is authoritative over one built by a job
        -- (source 'ticks' or 'rollup'): it replaces that bar whole.
        RETURN QUERY INSERT INTO market_data AS m (symbol, timeframe, ts, open, high, low, close, volume, spread, source)
        SELECT * FROM tf_candle_rows(p_source, p_symbol, p_timeframe, p_us, p_open, p_high, p_low, p_close, p_volume, p_spread)
        ON CONFLICT ON CONSTRAINT market_data_pkey DO UPDATE SET
            open = CASE WHEN m.source IS DISTINCT FROM EXCLUDED.source AND EXCLUDED.source = 'ea'
                        THEN EXCLUDED.open ELSE m.open END,
            high = CASE WHEN m.source IS DISTINCT FROM EXCLUDED.source AND EXCLUDED.source = 'ea'
                        THEN EXCLUDED.high ELSE GREATEST(m.high, EXCLUDED.high) END,
            low = CASE WHEN m.source IS DISTINCT FROM EXCLUDED.source AND EXCLUDED.source = 'ea'
                       THEN EXCLUDED.low ELSE LEAST(m.low, EXCLUDED.low) END,
            close = EXCLUDED.close,
            volume = CASE WHEN m.source IS DISTINCT FROM EXCLUDED.source AND EXCLUDED.source = 'ea'
                          THEN EXCLUDED.volume ELSE GREATEST(m.volume, EXCLUDED.volume) END,
            spread = CASE WHEN m.source IS DISTINCT FROM EXCLUDED.source AND EXCLUDED.source = 'ea'
                          THEN EXCLUDED.spread ELSE COALESCE(EXCLUDED.spread, m.spread) END,
            source = CASE WHEN m.source IS DISTINCT FROM EXCLUDED.source AND EXCLUDED.source = 'ea'
                          THEN EXCLUDED.source ELSE m.source END
        WHERE (m.source IS DISTINCT FROM EXCLUDED.source AND EXCLUDED.source = 'ea')
           OR (m.high, m.low, m.close, m.volume, m.spread) IS DISTINCT FROM
              (GREATEST(m.high, EXCLUDED.high), LEAST(m.low, EXCLUDED.low), EXCLUDED.close,
               GREATEST(m.volume, EXCLUDED.volume), COALESCE(EXCLUDED.spread, m.spread))
        RETURNING m.symbol, m.timeframe, ((extract(epoch FROM m.ts) * 1000000)::int8)::text, m.created_at = now();
    ELSIF p_policy = 'replace' THEN
        -- The latest snapshot wins whole.
        RETURN QUERY INSERT INTO market_data AS m (symbol, timeframe, ts, open, high, low, close, volume, spread, source)
        SELECT * FROM tf_candle_rows(p_source, p_symbol, p_timeframe, p_us, p_open, p_high, p_low, p_close, p_volume, p_spread)
        ON CONFLICT ON CONSTRAINT market_data_pkey DO UPDATE SET
            open = EXCLUDED.open, high = EXCLUDED.high, low = EXCLUDED.low, close = EXCLUDED.close,
            volume = EXCLUDED.volume, spread = EXCLUDED.spread, source = EXCLUDED.source
        WHERE (m.open, m.high, m.low, m.close, m.volume, m.spread) IS DISTINCT FROM
              (EXCLUDED.open, EXCLUDED.high, EXCLUDED.low, EXCLUDED.close, EXCLUDED.volume, EXCLUDED.spread)
        RETURNING m.symbol, m.timeframe, ((extract(epoch FROM m.ts) * 1000000)::int8)::text, m.created_at = now();
    ELSIF p_policy = 'ignore' THEN
        -- The first snapshot wins.
        RETURN QUERY INSERT INTO market_data AS m (symbol, timeframe, ts, open, high, low, close, volume, spread, source)
        SELECT * FROM tf_candle_rows(p_source, p_symbol, p_timeframe, p_us, p_open, p_high, p_low, p_close, p_volume, p_spread)
        ON CONFLICT ON CONSTRAINT market_data_pkey DO NOTHING
        RETURNING m.symbol, m.timeframe, ((extract(epoch FROM m.ts) * 1000000)::int8)::text, m.created_at = now();
    ELSE
        RAISE EXCEPTION 'tf_put_candles: policy must be merge, replace or ignore, got %', p_policy
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
END $$;
