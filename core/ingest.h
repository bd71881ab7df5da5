/* The ingest layer: what candle and tick batches share. Item statuses and
 * counts, decode options, the JSON field readers, batch keys (hashing,
 * folding repeats onto their first item, mapping RETURNING rows back to
 * items), COPY text and the COPY-or-fall-back gate. Used by candles.c,
 * ticks.c and spool.c; it knows neither kind's fields beyond what a kind's
 * ref() shows it, and never builds SQL from item values. */
#ifndef INGEST_H
#define INGEST_H

#include <stddef.h>
#include <stdint.h>

#include "db.h"

#define INGEST_SYMBOL_MAX 32
#define INGEST_ERR_MAX 120
#define INGEST_TSORIG_MAX 48

/* Item status, as the old API spelled them in "details[].status". */
enum ingest_status {
    INGEST_VALID = 0, /* decoded, not stored yet */
    INGEST_INSERTED,  /* a new row */
    INGEST_DUPLICATE, /* the same key was already stored with these values (or policy ignore) */
    INGEST_UPDATED,   /* the same key was stored and changed (merge / replace) */
    INGEST_REJECTED,  /* invalid: error[] says which field and why */
    INGEST_QUEUED,    /* valid, in the durable spool (spool.h), stored once the database is back */
};
const char *ingest_status_name(int status);

/* Accepted top-level shapes of a candle body (ticks ignore it). */
enum ingest_shape {
    INGEST_SHAPE_ANY,    /* array, {"items": [...]}, or one candle object */
    INGEST_SHAPE_OBJECT, /* POST /ingest: one candle or {"items": [...]} */
    INGEST_SHAPE_ARRAY,  /* POST /ingest_batch: an array */
};

/* A configured clock offset: the EA's server time minus UTC, per symbol. */
struct ingest_offset {
    char symbol[INGEST_SYMBOL_MAX + 1];
    int64_t offset_us;
};

/* Decode options, for candles and ticks alike. */
struct ingest_opts {
    enum ingest_shape shape;
    size_t max_items;  /* 0 = no limit; more is a 413 */
    int64_t offset_us; /* subtracted from every ts (the sender's offset from UTC) */
    const struct ingest_offset *symbol_offsets; /* override offset_us per symbol */
    size_t nsymbol_offsets;
};
/* The offset for symbol: its own, else o->offset_us. */
int64_t ingest_offset_for(const struct ingest_opts *o, const char *symbol);

/* Counts per status, for the answer's received/inserted/... keys. */
struct ingest_counts {
    size_t received, inserted, duplicates, updated, rejected, queued;
};

/* ---- JSON ---- */

/* Parses the top of a body: trailing whitespace/NULs allowed. Before
 * parsing, counts what the tree would hold: nesting deeper than
 * INGEST_JSON_MAX_DEPTH is 400; with max_items (0 = no limit), a batch array
 * longer than it or more than INGEST_JSON_VALUES_PER_ITEM JSON values per
 * allowed item is 413 ("too many <noun>"). NULL with *http_status (400, 413,
 * 500 out of memory) and err (with the byte position for syntax errors) on
 * failure. Caller frees the tree with cJSON_Delete. */
#define INGEST_JSON_MAX_DEPTH 64
#define INGEST_JSON_VALUES_PER_ITEM 32
struct cJSON;
struct cJSON *ingest_json_parse(const char *body, size_t len, size_t max_items, const char *noun,
                                int *http_status, char *err, size_t errlen);
const struct cJSON *ingest_json_field(const struct cJSON *obj,
                                      const char *key); /* NULL if absent */
/* Reads a field as a finite number (JSON number or a numeric string). 0 ok,
 * 1 absent/null, -1 wrong type (reason in why). */
int ingest_json_number(const struct cJSON *obj, const char *key, double *v, const char **why);
/* A required number > 0: 0, or -1 with "<key>: missing" (or why) in err. */
int ingest_json_positive(const struct cJSON *obj, const char *key, double *v, char *err,
                         size_t errlen);
/* Validates and copies a symbol; 0 or -1 with reason in err. */
int ingest_json_symbol(const struct cJSON *obj, char *dst, char *err, size_t errlen);
/* Parses "ts" (string or number) into µs; 0 or -1 with reason; echoes the
 * raw form into orig (NUL-terminated, truncated). */
int ingest_json_ts(const struct cJSON *obj, const char *key, int64_t *us, char *orig,
                   size_t origlen, char *err, size_t errlen);

/* ---- numbers as text ---- */

/* Writes 0 <= v < 9.2e10 with at most scale (0..8) decimals, trailing zeros
 * trimmed, into out (32 bytes); returns the length. No printf. */
int ingest_fmt_fixed(char *out, double v, int scale);
/* A double as text that reads back as the same double (out: 32 bytes). */
int ingest_fmt_double(char *out, double v);

/* ---- kinds, keys and folding ---- */

/* A batch key: the symbol and two integers (candles: timeframe and bucket;
 * ticks: 0 and ts_msc). */
struct ingest_key {
    const char *symbol;
    uint64_t a, b;
};
/* A keyed hash (SipHash-1-3, key random per process) of a batch key: the
 * symbol (up to INGEST_SYMBOL_MAX bytes) and two integers. */
uint64_t ingest_key_hash(const char *sym, uint64_t a, uint64_t b);

/* One item's shared fields, as pointers into it. */
struct ingest_ref {
    char *symbol;
    uint8_t *status; /* enum ingest_status */
    int32_t *leader; /* the first valid item with the same key, or -1 */
    char *error;     /* INGEST_ERR_MAX bytes: why it was rejected */
    int64_t *ts_us, *bucket_us;
    int has_key; /* a tick without ts_msc has none: it never folds */
    struct ingest_key key;
};

/* An item sent at us (µs since epoch UTC, as sent) for symbol, as stored:
 * *ts_us minus the symbol's offset and *bucket_us its bucket in tf (an enum ts_tf). 0, or -1
 * with the reason in err when either is outside the range ts.c stores. */
int ingest_place(const struct ingest_opts *o, const char *symbol, int64_t us, int tf,
                 int64_t *ts_us, int64_t *bucket_us, char *err, size_t errlen);

/* A kind of batch item, as the shared code sees it. */
struct ingest_kind {
    const char *noun; /* in "too many <noun>" */
    size_t size;      /* of one item */
    void (*ref)(void *item, struct ingest_ref *r);
    /* Fills *item from the JSON value it: 0, or -1 with the reason in err,
     * naming the field (the item is then REJECTED; its symbol, when it was
     * read, names it in the answer). */
    int (*decode)(const struct cJSON *it, const struct ingest_opts *o, void *item, char *err,
                  size_t errlen);
    /* Finds the items in a body: *arr, an array, or *one, the only item. 0,
     * or -1 with err for a body of the wrong shape. */
    int (*locate)(const struct cJSON *root, const struct ingest_opts *o, const struct cJSON **arr,
                  const struct cJSON **one, char *err, size_t errlen);
};

/* A batch of any kind: struct candles_batch and struct ticks_batch are this
 * with typed items (the same members in the same order, asserted where they
 * are defined). Two allocations (mem_alloc): the batch and its items. */
struct ingest_batch {
    size_t n, nvalid;
    void *items;
};
/* A new batch taking over n items (nvalid of them valid); NULL when out of
 * memory (the items are then still the caller's). */
struct ingest_batch *ingest_batch_new(void *items, size_t n, size_t nvalid);
/* Frees a batch of any kind and its items (NULL is fine). */
void ingest_batch_free(void *batch);
/* Asserts that a kind's typed batch struct T is laid out as struct ingest_batch. */
#define INGEST_BATCH_LAYOUT(T)                                                                     \
    _Static_assert(offsetof(T, n) == offsetof(struct ingest_batch, n) &&                           \
                       offsetof(T, nvalid) == offsetof(struct ingest_batch, nvalid) &&             \
                       offsetof(T, items) == offsetof(struct ingest_batch, items) &&               \
                       sizeof(T) == sizeof(struct ingest_batch),                                   \
                   #T " is laid out as struct ingest_batch")

/* Decodes body[0..len) (o may be NULL: no limit, no offset) into a batch of
 * kind k, which the caller frees with ingest_batch_free (or the kind's own): items
 * located, decoded one by one (a bad one is REJECTED with its reason), keys
 * folded. 0 and *batch; or -1 with *http_status 400 (a body that does not
 * parse or has the wrong shape: the reason, with the byte position for a
 * syntax error), 413 (more than o->max_items) or 500 (out of memory). */
int ingest_decode(const struct ingest_kind *k, const char *body, size_t len,
                  const struct ingest_opts *o, void **batch, int *http_status, char *err,
                  size_t errlen);

/* Sets each valid item's leader to the first valid item with its key (or
 * -1). 0, or -1 when out of memory. */
int ingest_fold(const struct ingest_kind *k, void *items, size_t n, size_t nvalid);
/* Counts items[0..n) per status (VALID ones are only received). */
void ingest_count(const struct ingest_kind *k, void *items, size_t n, struct ingest_counts *c);

/* The typed entry points of a kind whose batch is struct T (laid out as
 * struct ingest_batch) and whose ingest_kind is K, named <p>_decode,
 * <p>_free, <p>_fold and <p>_count: ingest_decode, ingest_batch_free,
 * ingest_fold (a batch put together from others, spool.c) and ingest_count,
 * taking and giving struct T. */
#define INGEST_TYPED(p, T, K)                                                                      \
    static inline int p##_decode(const char *body, size_t len, const struct ingest_opts *o,        \
                                 T **out, int *http_status, char *err, size_t errlen)              \
    {                                                                                              \
        void *b;                                                                                   \
        int rc = ingest_decode(&(K), body, len, o, &b, http_status, err, errlen);                  \
        *out = b;                                                                                  \
        return rc;                                                                                 \
    }                                                                                              \
    static inline void p##_free(T *b)                                                              \
    {                                                                                              \
        ingest_batch_free(b);                                                                      \
    }                                                                                              \
    static inline int p##_fold(T *b)                                                               \
    {                                                                                              \
        return ingest_fold(&(K), b->items, b->n, b->nvalid);                                       \
    }                                                                                              \
    static inline void p##_count(const T *b, struct ingest_counts *c)                              \
    {                                                                                              \
        ingest_count(&(K), b->items, b->n, c);                                                     \
    }

/* Items by key: open addressing over indexes into one batch's items. */
struct ingest_index {
    int32_t *slot;
    size_t cap;
};
/* Room for nkeys keys; 0, or -1 when out of memory. Freed by
 * ingest_index_free (also after a failed init). */
int ingest_index_init(struct ingest_index *x, size_t nkeys);
void ingest_index_free(struct ingest_index *x);
/* Adds the leaders to send (valid, leader < 0, with a key): the items a
 * statement's RETURNING rows name. Never allocates. */
void ingest_index_leaders(struct ingest_index *x, const struct ingest_kind *k, void *items,
                          size_t n);
/* The RETURNING → status mapping: the indexed item with key *key gets
 * status. 0, or -1 when no item has that key. */
int ingest_returned(const struct ingest_index *x, const struct ingest_kind *k, void *items,
                    const struct ingest_key *key, int status);

/* ---- COPY ---- */

/* COPY is the bulk path for new data: a batch of at least INGEST_COPY_MIN
 * rows to send that meets no stored key is PostgreSQL's fastest load. One
 * that does meet one fails as a whole (unique_violation, nothing stored) and
 * goes the ON CONFLICT way; COPY is then left alone for INGEST_COPY_PAUSE_MS,
 * as resends tend to come in runs. One gate per table. */
#define INGEST_COPY_MIN 64
#define INGEST_COPY_PAUSE_MS 30000
struct ingest_copy_gate {
    _Atomic long long paused_until;
    const char *fallback_metric, *fallback_help;
};
/* Whether nsend rows go by COPY now. */
int ingest_copy_ready(const struct ingest_copy_gate *g, size_t nsend);
/* Runs sql (a COPY ... FROM STDIN) with d's rows and frees d. A unique
 * violation pauses the gate and is DB_OK with *fell_back = 1; else the
 * COPY's result (DB_ERROR "out of memory" when d ran out). */
int ingest_copy_run(struct ingest_copy_gate *g, struct db_conn *c, const char *sql,
                    struct db_buf *d, int *fell_back, char *err, size_t errlen);
/* Appends s as COPY text (printable ASCII: only \ needs escaping). */
void ingest_copy_text(struct db_buf *d, const char *s);

#endif
