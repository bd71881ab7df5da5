/* Candle batches: JSON body -> validated, bucketed items -> COPY (a batch of
 * new rows) or one INSERT ... ON CONFLICT over unnest()ed array parameters
 * (see candles.h). Values reach SQL only as parameters or COPY data. A batch
 * is two allocations (the struct and its items) freed by candles_free; the
 * only state kept between calls is the COPY gate below (one atomic). What
 * ticks share is in ingest.c; single-candle requests go through lane.c. */
#include "candles.h"

#include <cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "lane.h"
#include "metrics.h"

/* NUMERIC(18,8) holds values below 1e10; NUMERIC(18,2) below 1e16. A value
 * the column cannot hold would fail the whole statement, so it is rejected
 * here, item by item. */
#define PRICE_MAX 1e10
#define VOLUME_MAX 1e16

int candles_policy_parse(const char *s, enum candles_policy *out)
{
    if (!s || strcmp(s, "merge") == 0) *out = CANDLES_MERGE;
    else if (strcmp(s, "ignore") == 0) *out = CANDLES_IGNORE;
    else if (strcmp(s, "replace") == 0) *out = CANDLES_REPLACE;
    else return -1;
    return 0;
}

/* ---- decode ---- */

/* A required price: finite, > 0, storable. */
static int price(const cJSON *obj, const char *key, double *v, char *err, size_t errlen)
{
    if (ingest_json_positive(obj, key, v, err, errlen) < 0) return -1;
    if (*v < PRICE_MAX) return 0;
    snprintf(err, errlen, "%s: must be < 1e10, got %.10g", key, *v);
    return -1;
}

static int decode_item(const cJSON *it, const struct ingest_opts *o, void *item, char *err,
                       size_t el)
{
    struct candle *c = item;
    const char *why = NULL;
    int r;
    if (!cJSON_IsObject(it)) {
        snprintf(err, el, "item: must be a JSON object");
        return -1;
    }
    /* Identity first, so even a rejected item names itself in details. */
    int sym_ok = ingest_json_symbol(it, c->symbol, err, el) == 0;
    const cJSON *tf = ingest_json_field(it, "timeframe");
    if (cJSON_IsString(tf)) c->tf = (uint8_t)ts_tf_parse(tf->valuestring, strlen(tf->valuestring));
    else if (cJSON_IsNumber(tf)) c->tf = (uint8_t)ts_tf_from_enum(tf->valuedouble);
    char tserr[INGEST_ERR_MAX];
    int64_t us = 0;
    int ts_ok = ingest_json_ts(it, "ts", &us, c->ts_original, sizeof c->ts_original, tserr,
                               sizeof tserr) == 0;
    if (!sym_ok) return -1;
    if (c->tf == TS_TF_NONE) {
        if (!tf || cJSON_IsNull(tf)) snprintf(err, el, "timeframe: missing");
        else if (cJSON_IsString(tf))
            snprintf(err, el, "timeframe: unknown \"%.24s\" (want M1..MN1 or an ENUM_TIMEFRAMES value)",
                     tf->valuestring);
        else snprintf(err, el, "timeframe: unknown (want M1..MN1 or an ENUM_TIMEFRAMES value)");
        return -1;
    }
    if (!ts_ok) {
        snprintf(err, el, "%s", tserr);
        return -1;
    }
    if (price(it, "open", &c->open, err, el) || price(it, "high", &c->high, err, el) ||
        price(it, "low", &c->low, err, el) || price(it, "close", &c->close, err, el))
        return -1;
    c->volume = 0;
    r = ingest_json_number(it, "volume", &c->volume, &why);
    if (r < 0) {
        snprintf(err, el, "volume: %s", why);
        return -1;
    }
    if (c->volume < 0 || c->volume >= VOLUME_MAX) {
        snprintf(err, el, "volume: must be >= 0 and < 1e16, got %.10g", c->volume);
        return -1;
    }
    r = ingest_json_number(it, "spread", &c->spread, &why);
    if (r < 0) {
        snprintf(err, el, "spread: %s", why);
        return -1;
    }
    c->has_spread = r == 0;
    if (c->has_spread && (c->spread < 0 || c->spread >= PRICE_MAX)) {
        snprintf(err, el, "spread: must be >= 0 and < 1e10, got %.10g", c->spread);
        return -1;
    }
    double omax = fmax(c->open, c->close), omin = fmin(c->open, c->close);
    if (c->high < omax) {
        snprintf(err, el, "high: must be >= max(open, close), got %.10g < %.10g", c->high, omax);
        return -1;
    }
    if (c->low > omin) {
        snprintf(err, el, "low: must be <= min(open, close), got %.10g > %.10g", c->low, omin);
        return -1;
    }
    /* The old API echoed the parsed time in isoformat, before bucketing. */
    if (c->ts_original[0] && cJSON_IsString(ingest_json_field(it, "ts")))
        ts_format(us, c->ts_original, sizeof c->ts_original);
    return ingest_place(o, c->symbol, us, c->tf, &c->ts_us, &c->bucket_us, err, el);
}

static void candle_ref(void *item, struct ingest_ref *r)
{
    struct candle *c = item;
    *r = (struct ingest_ref){.symbol = c->symbol,
                             .status = &c->status,
                             .leader = &c->leader,
                             .error = c->error,
                             .ts_us = &c->ts_us,
                             .bucket_us = &c->bucket_us,
                             .has_key = 1,
                             .key = {c->symbol, c->tf, (uint64_t)c->bucket_us}};
}

/* Where a candle body keeps its items, by o->shape. */
static int locate(const cJSON *root, const struct ingest_opts *o, const cJSON **arr,
                  const cJSON **one, char *err, size_t errlen)
{
    if (cJSON_IsArray(root)) {
        if (o->shape == INGEST_SHAPE_OBJECT) {
            snprintf(err, errlen, "body: want a candle object or {\"items\": [...]}, got an array");
            return -1;
        }
        *arr = root;
    } else if (cJSON_IsObject(root)) {
        if (o->shape == INGEST_SHAPE_ARRAY) {
            snprintf(err, errlen, "body: want a JSON array of candles, got an object");
            return -1;
        }
        const cJSON *items = ingest_json_field(root, "items");
        if (items && !cJSON_IsArray(items)) {
            snprintf(err, errlen, "items: must be an array");
            return -1;
        }
        if (items) *arr = items;
        else *one = root;
    } else {
        snprintf(err, errlen, "body: want %s",
                 o->shape == INGEST_SHAPE_ARRAY    ? "a JSON array of candles"
                 : o->shape == INGEST_SHAPE_OBJECT ? "a candle object or {\"items\": [...]}"
                                                   : "an array, {\"items\": [...]} or a candle");
        return -1;
    }
    return 0;
}

INGEST_BATCH_LAYOUT(struct candles_batch);

const struct ingest_kind candles_kind = {.noun = "items",
                                         .size = sizeof(struct candle),
                                         .ref = candle_ref,
                                         .decode = decode_item,
                                         .locate = locate};

/* ---- store ---- */

/* Folds follower f into its leader l under the policy; returns 1 when it
 * changed the leader's values. */
static int fold_into(struct candle *l, const struct candle *f, enum candles_policy pol)
{
    struct candle before = *l;
    switch (pol) {
    case CANDLES_IGNORE: return 0;
    case CANDLES_REPLACE:
        l->open = f->open, l->high = f->high, l->low = f->low, l->close = f->close;
        l->volume = f->volume;
        l->spread = f->spread, l->has_spread = f->has_spread;
        break;
    case CANDLES_MERGE:
        l->high = fmax(l->high, f->high);
        l->low = fmin(l->low, f->low);
        l->close = f->close;
        l->volume = fmax(l->volume, f->volume);
        if (f->has_spread) l->spread = f->spread, l->has_spread = 1;
        break;
    }
    return before.open != l->open || before.high != l->high || before.low != l->low ||
           before.close != l->close || before.volume != l->volume ||
           before.has_spread != l->has_spread || (l->has_spread && before.spread != l->spread);
}

/* The text of one row's values, shared by the COPY, array and scalar paths. */
struct row_text {
    char v[6][32]; /* open, high, low, close, volume, spread ("" = NULL) */
    int len[6];
};

static void row_text(const struct candle *it, struct row_text *r)
{
    const double v[5] = {it->open, it->high, it->low, it->close, it->volume};
    for (int k = 0; k < 5; k++) r->len[k] = ingest_fmt_fixed(r->v[k], v[k], k == 4 ? 2 : 8);
    r->len[5] = it->has_spread ? ingest_fmt_fixed(r->v[5], it->spread, 8) : 0;
    if (!it->has_spread) r->v[5][0] = '\0';
}

/* COPY into market_data (see ingest.h): the bulk path for new rows. */
static struct ingest_copy_gate copy_gate = {
    0, "tf_candles_copy_fallbacks_total",
    "Candle batches whose COPY met a stored key and went the ON CONFLICT way"};

static int try_copy(struct db_conn *c, const struct candle *merged, size_t n, const char *source,
                    int *fell_back, char *err, size_t errlen)
{
    struct db_buf data = {0};
    char ts[40];
    struct row_text r = {{{0}}, {0}};
    for (size_t i = 0; i < n; i++) {
        const struct candle *it = &merged[i];
        if (it->status != INGEST_VALID || it->leader >= 0) continue;
        ingest_copy_text(&data, it->symbol);
        db_buf_putc(&data, '\t');
        db_buf_put(&data, ts_tf_name((enum ts_tf)it->tf), strlen(ts_tf_name((enum ts_tf)it->tf)));
        db_buf_putc(&data, '\t');
        db_buf_put(&data, ts, (size_t)ts_format(it->bucket_us, ts, sizeof ts));
        row_text(it, &r);
        for (int k = 0; k < 6; k++) {
            db_buf_putc(&data, '\t');
            if (k == 5 && !it->has_spread) db_buf_put(&data, "\\N", 2);
            else db_buf_put(&data, r.v[k], (size_t)r.len[k]);
        }
        db_buf_putc(&data, '\t');
        db_buf_put(&data, source, strlen(source));
        db_buf_putc(&data, '\n');
    }
    return ingest_copy_run(&copy_gate, c,
                           "COPY market_data (symbol, timeframe, ts, open, high, low, close, volume, "
                           "spread, source) FROM STDIN",
                           &data, fell_back, err, errlen);
}

static const char *const policy_name[] = {
    [CANDLES_MERGE] = "merge", [CANDLES_IGNORE] = "ignore", [CANDLES_REPLACE] = "replace"};

/* ---- the statement (candles.h): one tf_put_candles call ---- */

/* Everything that can fail is allocated before the statement goes: once it
 * has, the rows are stored and their statuses must be reported. */
int candles_put_send(struct db_conn *c, struct candles_put *pt, enum candles_policy pol,
                     const char *source, char *err, size_t errlen)
{
    struct row_text rt;
    size_t nsend = 0;
    for (int k = 0; k < 9; k++) db_buf_putc(&pt->col[k], '{');
    for (size_t i = 0; i < pt->n; i++) {
        const struct candle *it = &pt->items[i];
        if (it->status != INGEST_VALID || it->leader >= 0) continue;
        if (nsend++)
            for (int k = 0; k < 9; k++) db_buf_putc(&pt->col[k], ',');
        db_buf_quoted(&pt->col[0], it->symbol);
        db_buf_put(&pt->col[1], ts_tf_name((enum ts_tf)it->tf), strlen(ts_tf_name((enum ts_tf)it->tf)));
        db_buf_printf(&pt->col[2], "%lld", (long long)it->bucket_us);
        row_text(it, &rt);
        for (int k = 0; k < 5; k++) db_buf_put(&pt->col[3 + k], rt.v[k], (size_t)rt.len[k]);
        if (it->has_spread) db_buf_put(&pt->col[8], rt.v[5], (size_t)rt.len[5]);
        else db_buf_put(&pt->col[8], "NULL", 4);
    }
    int oom = 0;
    for (int k = 0; k < 9; k++) {
        db_buf_put(&pt->col[k], "}", 2); /* with the NUL */
        oom |= pt->col[k].oom;
    }
    if (oom || ingest_index_init(&pt->returned, nsend) < 0) {
        snprintf(err, errlen, "out of memory");
        return DB_ERROR;
    }
    const char *vals[11] = {policy_name[pol], source};
    for (int k = 0; k < 9; k++) vals[2 + k] = pt->col[k].data;
    return db_send(c,
                   "SELECT * FROM tf_put_candles($1, $2, $3::text[], $4::text[], $5::int8[], "
                   "$6::numeric[], $7::numeric[], $8::numeric[], $9::numeric[], $10::numeric[], $11::numeric[])",
                   11, vals, NULL, err, errlen);
}

int candles_put_recv(struct db_conn *c, struct candles_put *pt, char *err, size_t errlen)
{
    PGresult *res;
    int rc = db_wait(c, &res, err, errlen);
    if (rc != DB_OK) return rc;
    candles_put_apply(pt, res);
    return DB_OK;
}

void candles_put_apply(struct candles_put *pt, PGresult *res)
{
    /* A row whose created_at is this transaction's now() was inserted by it
     * (xmax = 0 would say so, but system columns are not returned from a
     * partitioned table). The leaders it returned no row for are
     * duplicates. */
    ingest_index_leaders(&pt->returned, &candles_kind, pt->items, pt->n);
    int nrows = PQntuples(res);
    for (int r = 0; r < nrows; r++) {
        struct ingest_key key = {PQgetvalue(res, r, 0),
                                 ts_tf_parse(PQgetvalue(res, r, 1), (size_t)PQgetlength(res, r, 1)),
                                 (uint64_t)strtoll(PQgetvalue(res, r, 2), NULL, 10)};
        int inserted = PQgetvalue(res, r, 3)[0] == 't';
        ingest_returned(&pt->returned, &candles_kind, pt->items, &key,
                        inserted ? INGEST_INSERTED : INGEST_UPDATED);
    }
    for (size_t i = 0; i < pt->n; i++) {
        struct candle *it = &pt->items[i];
        if (it->status == INGEST_VALID && it->leader < 0) it->status = INGEST_DUPLICATE;
    }
    PQclear(res);
    metrics_add("tf_candles_stored_total", NULL, (double)nrows, "Candle rows inserted or updated in market_data");
}

void candles_put_free(struct candles_put *pt)
{
    for (int k = 0; k < 9; k++) db_buf_free(&pt->col[k]);
    ingest_index_free(&pt->returned);
}

int candles_put_rows(struct db_conn *c, struct candle *items, size_t n, enum candles_policy pol,
                     const char *source, char *err, size_t errlen)
{
    struct candles_put pt = {.items = items, .n = n};
    int rc = candles_put_send(c, &pt, pol, source, err, errlen);
    if (rc == DB_OK) rc = candles_put_recv(c, &pt, err, errlen);
    candles_put_free(&pt);
    return rc;
}

/* ---- storing ---- */

void candles_set_lanes(int lanes)
{
    lane_set(lanes);
}

/* Folds followers into their leaders in merged (a copy of b's items, so a
 * failed round trip leaves the batch as it was), noting in changed[] which
 * follower changed what came before it. Returns the rows to send. */
static size_t merge(const struct candles_batch *b, enum candles_policy pol, struct candle *merged,
                    int8_t *changed)
{
    size_t nsend = 0;
    memcpy(merged, b->items, b->n * sizeof *merged);
    for (size_t i = 0; i < b->n; i++) {
        struct candle *it = &merged[i];
        if (it->status != INGEST_VALID) continue;
        if (it->leader < 0) nsend++;
        else changed[i] = (int8_t)fold_into(&merged[it->leader], it, pol);
    }
    return nsend;
}

/* The first row to send among merged (there is one). */
static struct candle *first_leader(struct candle *merged)
{
    while (merged->status != INGEST_VALID || merged->leader >= 0) merged++;
    return merged;
}

/* Followers: a change to what came before them in the batch is an update;
 * the same values again are a duplicate. Leaders take their row's status. */
static void settle(struct candles_batch *b, const struct candle *merged, const int8_t *changed)
{
    for (size_t i = 0; i < b->n; i++) {
        struct candle *it = &b->items[i];
        if (it->status != INGEST_VALID) continue;
        if (it->leader < 0) it->status = merged[i].status;
        else it->status = changed[i] ? INGEST_UPDATED : INGEST_DUPLICATE;
    }
}

struct candles_job {
    struct candles_batch *b;
    struct candle *merged;
    int8_t *changed;
    struct lane_job *lane;
};

static void job_free(struct candles_job *j)
{
    mem_free(j->merged);
    mem_free(j->changed);
    mem_free(j);
}

static int job_end(struct candles_job *j, int rc)
{
    if (rc == DB_OK) settle(j->b, j->merged, j->changed);
    job_free(j);
    return rc;
}

int candles_store_start(struct db_pool *p, struct candles_batch *b, enum candles_policy pol,
                        const char *source, long long deadline_ms, void (*wake)(void *ud), void *ud,
                        struct candles_job **out, char *err, size_t errlen)
{
    *out = NULL;
    if (b->nvalid == 0) return DB_OK;
    if (!source) source = "ea";
    struct candles_job *j = mem_calloc(1, sizeof *j);
    if (j) {
        j->merged = mem_alloc(b->n * sizeof *j->merged);
        j->changed = mem_calloc(b->n, 1);
    }
    if (!j || !j->merged || !j->changed) {
        if (j) job_free(j);
        snprintf(err, errlen, "out of memory");
        return DB_ERROR;
    }
    j->b = b;
    size_t nsend = merge(b, pol, j->merged, j->changed);
    if (nsend != 1) { /* several rows: the caller stores it with candles_store */
        job_free(j);
        return CANDLES_NOT_SINGLE;
    }
    *out = j; /* before the lane may wake its owner */
    int rc = lane_start(p, first_leader(j->merged), pol, source, deadline_ms, wake, ud, &j->lane,
                        err, errlen);
    if (rc == DB_PENDING) return rc;
    *out = NULL;
    return job_end(j, rc);
}

int candles_job_step(struct candles_job *j, char *err, size_t errlen)
{
    int rc = lane_step(j->lane, err, errlen);
    if (rc == DB_PENDING) return rc;
    return job_end(j, rc);
}

int candles_store(struct db_pool *p, struct candles_batch *b, enum candles_policy pol,
                  const char *source, char *err, size_t errlen)
{
    struct candle *merged = NULL;
    int8_t *changed = NULL;
    struct db_conn *c = NULL;
    size_t nsend = 0;
    int rc = DB_ERROR;

    if (b->nvalid == 0) return DB_OK;
    if (!source) source = "ea";
    merged = mem_alloc(b->n * sizeof *merged);
    changed = mem_calloc(b->n, 1);
    if (!merged || !changed) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    nsend = merge(b, pol, merged, changed);
    if (nsend == 1) {
        rc = lane_store(p, first_leader(merged), pol, source, err, errlen);
    } else if ((c = db_acquire(p, &rc, err, errlen))) {
        int fell_back = 1;
        if (ingest_copy_ready(&copy_gate, nsend)) {
            rc = try_copy(c, merged, b->n, source, &fell_back, err, errlen);
            if (rc == DB_OK && !fell_back) {
                for (size_t i = 0; i < b->n; i++)
                    if (merged[i].status == INGEST_VALID && merged[i].leader < 0)
                        merged[i].status = INGEST_INSERTED;
                metrics_add("tf_candles_stored_total", NULL, (double)nsend,
                            "Candle rows inserted or updated in market_data");
            }
        }
        if (fell_back && rc == DB_OK) rc = candles_put_rows(c, merged, b->n, pol, source, err, errlen);
        db_release(p, c);
    }
    if (rc != DB_OK) goto done;

    settle(b, merged, changed);
done:
    mem_free(merged);
    mem_free(changed);
    return rc;
}
