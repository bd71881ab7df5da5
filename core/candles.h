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
#include "ts.h"

#define CANDLES_SYMBOL_MAX 32
#define CANDLES_ERR_MAX 120
#define CANDLES_TSORIG_MAX 48

/* Item status, as the old API spelled them in "details[].status". */
enum candles_status {
    CANDLES_VALID = 0,   /* decoded, not stored yet */
    CANDLES_INSERTED,    /* a new row */
    CANDLES_DUPLICATE,   /* the same key was already stored with these values (or policy ignore) */
    CANDLES_UPDATED,     /* the same key was stored and changed (merge / replace) */
    CANDLES_REJECTED,    /* invalid: error[] says which field and why */
    CANDLES_QUEUED,      /* valid, in the durable spool (spool.h), stored once the database is back */
};
const char *candles_status_name(int status);

/* What happens when (symbol, timeframe, ts) is already stored. An identical
 * resend is a duplicate under every policy. */
enum candles_policy {
    CANDLES_MERGE,   /* keep open, max high, min low, latest close, max volume */
    CANDLES_IGNORE,  /* first wins */
    CANDLES_REPLACE, /* latest wins */
};
int candles_policy_parse(const char *s, enum candles_policy *out); /* 0 / -1 */

/* Accepted top-level shapes of a body. */
enum candles_shape {
    CANDLES_SHAPE_ANY,    /* array, {"items": [...]}, or one candle object */
    CANDLES_SHAPE_OBJECT, /* POST /ingest: one candle or {"items": [...]} */
    CANDLES_SHAPE_ARRAY,  /* POST /ingest_batch: an array */
};

/* A configured clock offset: the EA's server time minus UTC, per symbol. */
struct candles_offset {
    char symbol[CANDLES_SYMBOL_MAX + 1];
    int64_t offset_us;
};

struct candles_opts {
    enum candles_shape shape;
    size_t max_items;       /* 0 = no limit; more is a 413 */
    int64_t offset_us;      /* subtracted from every ts (the sender's offset from UTC) */
    const struct candles_offset *symbol_offsets; /* override offset_us per symbol */
    size_t nsymbol_offsets;
};

struct candle {
    char symbol[CANDLES_SYMBOL_MAX + 1];
    uint8_t tf;         /* enum ts_tf */
    uint8_t status;     /* enum candles_status */
    uint8_t has_spread;
    int32_t leader;     /* index of the first valid item with the same key, or -1 */
    int64_t ts_us;      /* as sent, minus the offset, µs since epoch UTC */
    int64_t bucket_us;  /* start of its timeframe bucket */
    double open, high, low, close, volume, spread;
    char ts_original[CANDLES_TSORIG_MAX]; /* what was sent, as the old API echoed it */
    char error[CANDLES_ERR_MAX];          /* "high: must be >= max(open, close)" */
};

struct candles_batch {
    size_t n;
    size_t nvalid;
    struct candle *items; /* n items, in body order */
};

/* Decodes body[0..len) (trailing whitespace or NULs tolerated). On success
 * returns 0 and *out, a batch the caller frees with candles_free; invalid
 * items are in it with status REJECTED. On a body that does not parse or has
 * the wrong top-level shape returns -1, *http_status = 400 and the reason with
 * the byte position in err; over o->max_items: -1 and 413. */
int candles_decode(const char *body, size_t len, const struct candles_opts *o,
                   struct candles_batch **out, int *http_status, char *err, size_t errlen);
void candles_free(struct candles_batch *b);
/* Recomputes every valid item's leader (the first valid item with its key),
 * as decode does: for a batch put together from others (spool.c). 0, or -1
 * when out of memory. */
int candles_fold(struct candles_batch *b);

/* Stores the batch's valid items in one statement and sets each item's
 * status: COPY when there are at least 64 of them and none is stored yet
 * (a stored key fails the COPY as a whole; the batch is then redone as one
 * call of tf_put_candles, sql/004_put_candle.sql). A batch with one row to
 * send shares its statement with the single candles of other requests
 * waiting at the same time (see "single candles" in candles.c). source
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

/* Counts per status, for the answer's received/inserted/... keys. */
struct candles_counts {
    size_t received, inserted, duplicates, updated, rejected, queued;
};
void candles_count(const struct candles_batch *b, struct candles_counts *c);

/* Shared with ticks.c: read a field as a finite number (JSON number or a
 * numeric string). 0 ok, 1 absent/null, -1 wrong type (reason in why). */
struct cJSON;
const struct cJSON *candles_json_field(const struct cJSON *obj, const char *key); /* NULL if absent */
int candles_json_number(const struct cJSON *obj, const char *key, double *v, const char **why);
/* Validates and copies a symbol; 0 or -1 with reason in err. */
int candles_json_symbol(const struct cJSON *obj, char *dst, char *err, size_t errlen);
/* Parses "ts" (string or number) into µs; 0 or -1 with reason; echoes the
 * raw form into orig (NUL-terminated, truncated). */
int candles_json_ts(const struct cJSON *obj, const char *key, int64_t *us, char *orig,
                    size_t origlen, char *err, size_t errlen);
/* Writes 0 <= v < 9.2e10 with at most scale (0..8) decimals, trailing zeros
 * trimmed, into out (32 bytes); returns the length. No printf. */
int candles_fmt_fixed(char *out, double v, int scale);
/* Parses the top of a body: trailing whitespace/NULs allowed. Before
 * parsing, counts what the tree would hold: nesting deeper than
 * CANDLES_JSON_MAX_DEPTH is 400; with max_items (0 = no limit), a batch array
 * longer than it or more than CANDLES_JSON_VALUES_PER_ITEM JSON values per
 * allowed item is 413 ("too many <noun>"). NULL with *http_status (400, 413,
 * 500 out of memory) and err (with the byte position for syntax errors) on
 * failure. Caller frees the tree with cJSON_Delete. */
/* A keyed hash (SipHash-1-3, key random per process) of a batch key: the
 * symbol (up to CANDLES_SYMBOL_MAX bytes) and two integers. */
uint64_t candles_key_hash(const char *sym, uint64_t a, uint64_t b);

#define CANDLES_JSON_MAX_DEPTH 64
#define CANDLES_JSON_VALUES_PER_ITEM 32
struct cJSON *candles_json_parse(const char *body, size_t len, size_t max_items, const char *noun,
                                 int *http_status, char *err, size_t errlen);

#endif
