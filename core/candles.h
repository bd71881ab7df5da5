/* Candle batches from MT5: decode a whole JSON body, validate and bucket every
 * item in C (per-item status with a field-specific reason), then store the
 * valid ones in one database round trip with a conflict policy.
 * Used by lua_candles.c (tf.candles.decode/store). A bad item never costs its
 * valid neighbours; this module never builds SQL from item values. */
#ifndef CANDLES_H
#define CANDLES_H

#include <stddef.h>
#include <stdint.h>

#include "db.h"
#include "ingest.h"
#include "ts.h"

/* What happens when (symbol, timeframe, ts) is already stored. An identical
 * resend is a duplicate under every policy. */
enum candles_policy {
    CANDLES_MERGE,   /* keep open, max high, min low, latest close, max volume */
    CANDLES_IGNORE,  /* first wins */
    CANDLES_REPLACE, /* latest wins */
};
int candles_policy_parse(const char *s, enum candles_policy *out); /* 0 / -1 */

struct candle {
    char symbol[INGEST_SYMBOL_MAX + 1];
    uint8_t tf;         /* enum ts_tf */
    uint8_t status;     /* enum ingest_status */
    uint8_t has_spread;
    int32_t leader;     /* index of the first valid item with the same key, or -1 */
    int64_t ts_us;      /* as sent, minus the offset, µs since epoch UTC */
    int64_t bucket_us;  /* start of its timeframe bucket */
    double open, high, low, close, volume, spread;
    char ts_original[INGEST_TSORIG_MAX]; /* what was sent, as the old API echoed it */
    char error[INGEST_ERR_MAX];          /* "high: must be >= max(open, close)" */
};

struct candles_batch {
    size_t n;
    size_t nvalid;
    struct candle *items; /* n items, in body order */
};

/* struct candle as the ingest layer sees it (key: symbol, timeframe, bucket). */
extern const struct ingest_kind candles_kind;

/* candles_decode(body, len, opts, &batch, &http_status, err, errlen): body[0..len)
 * (trailing whitespace or NULs tolerated). On success 0 and a batch the caller
 * frees with candles_free; invalid items are in it with status REJECTED. On a
 * body that does not parse or has the wrong top-level shape -1, http_status
 * 400 and the reason with the byte position in err; over o->max_items: -1 and
 * 413. candles_fold recomputes every valid item's leader (the first valid item
 * with its key), as decode does, for a batch put together from others
 * (spool.c); candles_count counts per status, for the answer's
 * received/inserted/... keys. */
INGEST_TYPED(candles, struct candles_batch, candles_kind)

/* Stores the batch's valid items in one statement and sets each item's
 * status: COPY when there are at least 64 of them and none is stored yet
 * (a stored key fails the COPY as a whole; the batch is then redone as one
 * call of tf_put_candles, sql/004_put_candle.sql). A batch with one row to
 * send shares its statement with the single candles of other requests
 * waiting at the same time (the lanes, lane.h). source
 * labels the rows ("ea", "ticks"). Returns DB_OK, or DB_ERROR /
 * DB_UNAVAILABLE with err; then nothing was stored and the statuses stay
 * VALID. Items with the same key inside one batch are folded in order by
 * the policy before the round trip. */
int candles_store(struct db_pool *p, struct candles_batch *b, enum candles_policy pol,
                  const char *source, char *err, size_t errlen);

/* candles_store without blocking, for callers that must not wait
 * (handler tasks): a batch with one row to send joins the single-candle
 * lanes. Returns DB_PENDING with *job: wake(ud) is called (any thread, with
 * locks held: it must only schedule) whenever the job may go on; the caller
 * then calls candles_job_step on its own thread, which returns DB_PENDING
 * again or the final result (the job is then freed; statuses set as by
 * candles_store). Returns the final result at once (no job) when it needs
 * no wait, and CANDLES_NOT_SINGLE for a batch of several rows: store that
 * one with candles_store. deadline_ms: db_now_ms() clock, 0 = none. */
#define CANDLES_NOT_SINGLE 2
struct candles_job;
int candles_store_start(struct db_pool *p, struct candles_batch *b, enum candles_policy pol,
                        const char *source, long long deadline_ms, void (*wake)(void *ud), void *ud,
                        struct candles_job **job, char *err, size_t errlen);
int candles_job_step(struct candles_job *job, char *err, size_t errlen);

/* At most this many statements storing single candles run at once; the
 * requests arriving meanwhile share the next one (database.single_lanes). */
void candles_set_lanes(int lanes);

/* ---- the statement, for lane.c ----
 * One tf_put_candles call (sql/004_put_candle.sql, where the policies are
 * spelled) for the leaders among items[0..n) (valid, leader < 0, each key
 * once), sent and collected in two halves so a lane can send the next one
 * before waking anyone. The caller owns pt and frees what the halves
 * allocated with candles_put_free. */
struct candles_put {
    struct candle *items;
    size_t n;
    struct db_buf col[9];
    struct ingest_index returned; /* returned rows -> items, by key */
};
/* Sends the statement (DB_OK), or fails with nothing sent. */
int candles_put_send(struct db_conn *c, struct candles_put *pt, enum candles_policy pol,
                     const char *source, char *err, size_t errlen);
/* Waits for its result and sets the statuses: the rows it returned were
 * inserted or changed, the other leaders are duplicates. On failure nothing
 * was stored and the statuses stay VALID. */
int candles_put_recv(struct db_conn *c, struct candles_put *pt, char *err, size_t errlen);
/* Sets the statuses from a result collected elsewhere (and frees it). */
void candles_put_apply(struct candles_put *pt, PGresult *res);
void candles_put_free(struct candles_put *pt);
/* Both halves: stores the leaders among items[0..n) and sets their statuses. */
int candles_put_rows(struct db_conn *c, struct candle *items, size_t n, enum candles_policy pol,
                     const char *source, char *err, size_t errlen);

#endif
