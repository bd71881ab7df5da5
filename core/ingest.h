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
    int64_t *ts_us, *bucket_us;
    int has_key; /* a tick without ts_msc has none: it never folds */
    struct ingest_key key;
};

/* A kind of batch item, as the shared code sees it. */
struct ingest_kind {
    const char *noun; /* in "too many <noun>" */
    size_t size;      /* of one item */
    void (*ref)(void *item, struct ingest_ref *r);
    /* Fills *item from the JSON value it (rejected items name the field). */
    void (*decode)(const struct cJSON *it, const struct ingest_opts *o, void *item);
    /* Finds the items in a body: *arr, an array, or *one, the only item. 0,
     * or -1 with err for a body of the wrong shape. */
    int (*locate)(const struct cJSON *root, const struct ingest_opts *o, const struct cJSON **arr,
                  const struct cJSON **one, char *err, size_t errlen);
    /* Puts n items (nvalid of them valid) into batch, or into a new batch
     * when batch is NULL, which takes them over; returns the batch, NULL
     * when out of memory. items_of gives them back. A batch is these two
     * allocations (mem_alloc), freed by ingest_free. */
    void *(*wrap)(void *batch, void *items, size_t n, size_t nvalid);
    void *(*items_of)(const void *batch, size_t *n, size_t *nvalid);
};
/* Frees a batch of kind k and its items (NULL is fine). */
void ingest_free(const struct ingest_kind *k, void *batch);

/* Decodes body[0..len) (o may be NULL: no limit, no offset) into a batch of
 * kind k, which the caller frees with ingest_free (or the kind's own): items
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
