/* Tick batches from MT5: decode {"ticks": [...]} in C, validate every tick
 * (per-item status and a field-specific reason), and store the valid ones in
 * the typed `ticks` table in one round trip. Used by lua_candles.c
 * (tf.ticks.decode/store). Ticks with ts_msc deduplicate on (symbol, ts_msc);
 * ticks without it are all kept, even when they share a timestamp. */
#ifndef TICKS_H
#define TICKS_H

#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "ingest.h"

struct tick {
    char symbol[INGEST_SYMBOL_MAX + 1];
    uint8_t status; /* enum ingest_status: VALID, INSERTED, DUPLICATE, REJECTED */
    uint8_t has_last, has_volume, has_flags, has_msc, has_spread;
    int32_t leader;    /* first valid tick with the same (symbol, ts_msc), or -1 */
    int64_t ts_us;     /* stored time: ts_msc when sent, else ts; minus the offset */
    int64_t bucket_us; /* its M1 bucket, echoed as ts_bucket */
    double bid, ask, last, volume, spread;
    int64_t flags, ts_msc;
    char ts_original[INGEST_TSORIG_MAX]; /* the ts as sent */
    char error[INGEST_ERR_MAX];
};

struct ticks_batch {
    size_t n, nvalid;
    struct tick *items;
};

/* struct tick as the ingest layer sees it (key: symbol, ts_msc; none without
 * ts_msc). */
extern const struct ingest_kind ticks_kind;

/* ticks_decode takes {"ticks": [...]} (a bare array is accepted too), options
 * as for candles (shape is ignored); ticks_decode, ticks_free, ticks_fold and
 * ticks_count as their candles_ namesakes. */
INGEST_TYPED(ticks, struct ticks_batch, ticks_kind)

/* Inserts the valid ticks in one statement; a tick whose (symbol, ts_msc)
 * is stored already becomes DUPLICATE. DB_OK, or DB_ERROR / DB_UNAVAILABLE
 * with err and nothing stored. */
int ticks_store(struct db_pool *p, struct ticks_batch *b, char *err, size_t errlen);

#endif
