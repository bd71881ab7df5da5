/* Candle batches: JSON body -> validated, bucketed items -> COPY (a batch of
 * new rows) or one INSERT ... ON CONFLICT over unnest()ed array parameters
 * (see candles.h). Values reach SQL only as parameters or COPY data. A batch
 * is two allocations (the struct and its items) freed by candles_free; the
 * only state kept between calls is the COPY pause below (one atomic). */
#include "candles.h"

#include <cJSON.h>
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
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

static void decode_item(const cJSON *it, const struct ingest_opts *o, void *item)
{
    struct candle *c = item;
    char *err = c->error;
    size_t el = sizeof c->error;
    const char *why = NULL;
    int r;
    c->status = INGEST_REJECTED;
    c->leader = -1;
    if (!cJSON_IsObject(it)) {
        snprintf(err, el, "item: must be a JSON object");
        return;
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
    if (!sym_ok) return;
    if (c->tf == TS_TF_NONE) {
        if (!tf || cJSON_IsNull(tf)) snprintf(err, el, "timeframe: missing");
        else if (cJSON_IsString(tf))
            snprintf(err, el, "timeframe: unknown \"%.24s\" (want M1..MN1 or an ENUM_TIMEFRAMES value)",
                     tf->valuestring);
        else snprintf(err, el, "timeframe: unknown (want M1..MN1 or an ENUM_TIMEFRAMES value)");
        return;
    }
    if (!ts_ok) {
        snprintf(err, el, "%s", tserr);
        return;
    }
    if (price(it, "open", &c->open, err, el) || price(it, "high", &c->high, err, el) ||
        price(it, "low", &c->low, err, el) || price(it, "close", &c->close, err, el))
        return;
    c->volume = 0;
    r = ingest_json_number(it, "volume", &c->volume, &why);
    if (r < 0) {
        snprintf(err, el, "volume: %s", why);
        return;
    }
    if (c->volume < 0 || c->volume >= VOLUME_MAX) {
        snprintf(err, el, "volume: must be >= 0 and < 1e16, got %.10g", c->volume);
        return;
    }
    r = ingest_json_number(it, "spread", &c->spread, &why);
    if (r < 0) {
        snprintf(err, el, "spread: %s", why);
        return;
    }
    c->has_spread = r == 0;
    if (c->has_spread && (c->spread < 0 || c->spread >= PRICE_MAX)) {
        snprintf(err, el, "spread: must be >= 0 and < 1e10, got %.10g", c->spread);
        return;
    }
    double omax = fmax(c->open, c->close), omin = fmin(c->open, c->close);
    if (c->high < omax) {
        snprintf(err, el, "high: must be >= max(open, close), got %.10g < %.10g", c->high, omax);
        return;
    }
    if (c->low > omin) {
        snprintf(err, el, "low: must be <= min(open, close), got %.10g > %.10g", c->low, omin);
        return;
    }
    /* The old API echoed the parsed time in isoformat, before bucketing. */
    if (c->ts_original[0] && cJSON_IsString(ingest_json_field(it, "ts")))
        ts_format(us, c->ts_original, sizeof c->ts_original);
    c->ts_us = us - ingest_offset_for(o, c->symbol);
    c->bucket_us = ts_bucket(c->ts_us, (enum ts_tf)c->tf);
    if (!ts_in_range(c->ts_us) || !ts_in_range(c->bucket_us)) { /* shifted or bucketed out */
        snprintf(err, el, "ts: " TS_RANGE_ERROR " (after the server time offset and bucketing)");
        return;
    }
    c->error[0] = '\0';
    c->status = INGEST_VALID;
}

static void candle_ref(void *item, struct ingest_ref *r)
{
    struct candle *c = item;
    *r = (struct ingest_ref){c->symbol, &c->status, &c->leader, &c->ts_us, &c->bucket_us, 1,
                             {c->symbol, c->tf, (uint64_t)c->bucket_us}};
}

static const struct ingest_kind candle_kind = {"items", sizeof(struct candle), candle_ref, decode_item};


int candles_decode(const char *body, size_t len, const struct ingest_opts *o,
                   struct candles_batch **out, int *http_status, char *err, size_t errlen)
{
    static const struct ingest_opts defaults = {0};
    if (!o) o = &defaults;
    *out = NULL;
    *http_status = 400;
    cJSON *root = ingest_json_parse(body, len, o->max_items, "items", http_status, err, errlen);
    if (!root) return -1;
    const cJSON *arr = NULL, *single = NULL;
    int rc = -1;
    struct candles_batch *b = NULL;
    if (cJSON_IsArray(root)) {
        if (o->shape == INGEST_SHAPE_OBJECT) {
            snprintf(err, errlen, "body: want a candle object or {\"items\": [...]}, got an array");
            goto done;
        }
        arr = root;
    } else if (cJSON_IsObject(root)) {
        if (o->shape == INGEST_SHAPE_ARRAY) {
            snprintf(err, errlen, "body: want a JSON array of candles, got an object");
            goto done;
        }
        const cJSON *items = ingest_json_field(root, "items");
        if (items) {
            if (!cJSON_IsArray(items)) {
                snprintf(err, errlen, "items: must be an array");
                goto done;
            }
            arr = items;
        } else {
            single = root;
        }
    } else {
        snprintf(err, errlen, "body: want %s",
                 o->shape == INGEST_SHAPE_ARRAY    ? "a JSON array of candles"
                 : o->shape == INGEST_SHAPE_OBJECT ? "a candle object or {\"items\": [...]}"
                                                    : "an array, {\"items\": [...]} or a candle");
        goto done;
    }
    b = mem_calloc(1, sizeof *b);
    if (!b) {
        *http_status = 500;
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    void *items;
    if (ingest_decode_items(&candle_kind, arr, single, o, &items, &b->n, &b->nvalid, http_status,
                            err, errlen) < 0)
        goto done;
    b->items = items;
    *out = b;
    b = NULL;
    *http_status = 200;
    rc = 0;
done:
    candles_free(b);
    cJSON_Delete(root);
    return rc;
}

void candles_free(struct candles_batch *b)
{
    if (!b) return;
    mem_free(b->items);
    mem_free(b);
}

int candles_fold(struct candles_batch *b)
{
    return ingest_fold(&candle_kind, b->items, b->n, b->nvalid);
}

void candles_count(const struct candles_batch *b, struct ingest_counts *c)
{
    ingest_count(&candle_kind, b->items, b->n, c);
}


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

/* One tf_put_candles statement (sql/004_put_candle.sql, where the policies
 * are spelled) in flight, for the leaders among items[0..n) (valid, leader
 * < 0, each key once). */
struct put {
    struct candle *items;
    size_t n;
    struct db_buf col[9];
    struct ingest_index returned; /* returned rows -> items, by key */
};

/* Sends the statement. Everything that can fail is allocated before it
 * goes: once it has, the rows are stored and their statuses must be
 * reported. */
static int put_send(struct db_conn *c, struct put *pt, enum candles_policy pol, const char *source,
                    char *err, size_t errlen)
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

/* Waits for the statement and sets the statuses: the rows it returned were
 * inserted or changed, the rest were duplicates. On failure nothing was
 * stored and the statuses stay VALID. */
static void put_apply(struct put *pt, PGresult *res);

static int put_recv(struct db_conn *c, struct put *pt, char *err, size_t errlen)
{
    PGresult *res;
    int rc = db_wait(c, &res, err, errlen);
    if (rc != DB_OK) return rc;
    put_apply(pt, res);
    return DB_OK;
}

/* Sets the statuses from the statement's result (and frees it). */
static void put_apply(struct put *pt, PGresult *res)
{
    /* A row whose created_at is this transaction's now() was inserted by it
     * (xmax = 0 would say so, but system columns are not returned from a
     * partitioned table). The leaders it returned no row for are
     * duplicates. */
    ingest_index_leaders(&pt->returned, &candle_kind, pt->items, pt->n);
    int nrows = PQntuples(res);
    for (int r = 0; r < nrows; r++) {
        struct ingest_key key = {PQgetvalue(res, r, 0),
                                 ts_tf_parse(PQgetvalue(res, r, 1), (size_t)PQgetlength(res, r, 1)),
                                 (uint64_t)strtoll(PQgetvalue(res, r, 2), NULL, 10)};
        int inserted = PQgetvalue(res, r, 3)[0] == 't';
        ingest_returned(&pt->returned, &candle_kind, pt->items, &key,
                        inserted ? INGEST_INSERTED : INGEST_UPDATED);
    }
    for (size_t i = 0; i < pt->n; i++) {
        struct candle *it = &pt->items[i];
        if (it->status == INGEST_VALID && it->leader < 0) it->status = INGEST_DUPLICATE;
    }
    PQclear(res);
    metrics_add("tf_candles_stored_total", NULL, (double)nrows, "Candle rows inserted or updated in market_data");
}

static void put_free(struct put *pt)
{
    for (int k = 0; k < 9; k++) db_buf_free(&pt->col[k]);
    ingest_index_free(&pt->returned);
}

/* Both halves: stores the leaders among items[0..n) and sets their statuses. */
static int put_rows(struct db_conn *c, struct candle *items, size_t n, enum candles_policy pol,
                    const char *source, char *err, size_t errlen)
{
    struct put pt = {.items = items, .n = n};
    int rc = put_send(c, &pt, pol, source, err, errlen);
    if (rc == DB_OK) rc = put_recv(c, &pt, err, errlen);
    put_free(&pt);
    return rc;
}

/* ---- single candles: one statement for many requests ----
 * The EAs' commonest request carries one candle. At most `lanes` statements
 * storing such candles run at once. A request arriving while they all run
 * queues; when a statement's result arrives, its lane takes the queued
 * requests that can share the next statement (same policy and source, a bar
 * no other request in it has), sends it at once on the same connection, so
 * PostgreSQL never waits for a thread to wake, and hands it to the first of
 * them to collect (a lane without a connection hands it over unsent: its
 * new leader checks one out). One round trip, one transaction, one wake-up
 * of a server process for many requests. A request for a bar already in the
 * statement waits for the next one, so every request gets exactly the
 * status it would have got alone, in arrival order. A statement that fails
 * for a reason other than the database being unavailable is redone one
 * request at a time, so a bad neighbour costs nobody else their candle.
 * A request waits either blocking on its condition (threads) or, started
 * by candles_store_start, as a job its owner steps when woken (tasks). */

#define GROUP_MAX 64

struct single;

struct group {
    struct single *m[GROUP_MAX];
    struct candle items[GROUP_MAX];
    int n;
    int rc;   /* of sending, then of the whole */
    int sent; /* its statement is on its way */
    char err[256];
    struct put pt;
};

struct single {
    struct db_pool *p;
    struct candle *it;
    enum candles_policy pol;
    const char *source;
    int state; /* QUEUED, LEAD (of g, sent on c, or unsent when c is NULL), DONE */
    int rc;
    char err[256];
    struct group *g;
    struct db_conn *c;
    pthread_cond_t cv;               /* a blocking waiter's */
    void (*wake)(struct single *s);  /* a job's, instead (called under singles.mu) */
    struct single *next;
};
enum { QUEUED, LEAD, DONE };

static struct {
    pthread_mutex_t mu;
    struct single *head, **tail;
    int running; /* lanes with a statement in flight */
    int lanes;
} singles = {PTHREAD_MUTEX_INITIALIZER, NULL, &singles.head, 0, 1};

void candles_set_lanes(int lanes)
{
    pthread_mutex_lock(&singles.mu);
    singles.lanes = lanes < 1 ? 1 : lanes;
    pthread_mutex_unlock(&singles.mu);
}

/* Under singles.mu: s's state changed. */
static void notify(struct single *s)
{
    if (s->wake) s->wake(s);
    else pthread_cond_signal(&s->cv);
}

static int can_join(const struct single *s, const struct group *g)
{
    const struct single *l = g->m[0];
    if (s->p != l->p || s->pol != l->pol || strcmp(s->source, l->source) != 0) return 0;
    for (int i = 0; i < g->n; i++) {
        const struct candle *a = g->m[i]->it, *b = s->it;
        if (a->tf == b->tf && a->bucket_us == b->bucket_us && strcmp(a->symbol, b->symbol) == 0) return 0;
    }
    return 1;
}

/* Under the lock: a group led by `first`, with the queued requests that can
 * join it, in arrival order, its items copied. NULL when out of memory. */
static struct group *group_take(struct single *first)
{
    struct group *g = mem_alloc(sizeof *g);
    if (!g) return NULL;
    g->n = 0;
    g->m[g->n++] = first;
    for (struct single **q = &singles.head; *q && g->n < GROUP_MAX;) {
        struct single *s = *q;
        if (can_join(s, g)) {
            g->m[g->n++] = s;
            *q = s->next;
            if (!*q) singles.tail = q;
        } else {
            q = &s->next;
        }
    }
    g->rc = DB_OK;
    g->sent = 0;
    g->err[0] = 0;
    memset(&g->pt, 0, sizeof g->pt);
    for (int i = 0; i < g->n; i++) {
        g->items[i] = *g->m[i]->it;
        g->items[i].status = INGEST_VALID;
        g->items[i].leader = -1;
    }
    g->pt.items = g->items;
    g->pt.n = (size_t)g->n;
    return g;
}

/* Sends g's statement on c; a failure is kept in g for its leader. */
static void group_send(struct group *g, struct db_conn *c)
{
    g->rc = put_send(c, &g->pt, g->m[0]->pol, g->m[0]->source, g->err, sizeof g->err);
    g->sent = g->rc == DB_OK;
}

/* Collects g's result into its requests: waits for it when res_rc is 1,
 * else takes res_rc/res/err as db_wait would have given them. */
static void group_finish(struct group *g, struct db_conn *c, int res_rc, PGresult *res, const char *err)
{
    if (g->rc == DB_OK && res_rc == 1) {
        g->rc = put_recv(c, &g->pt, g->err, sizeof g->err);
    } else if (g->rc == DB_OK) {
        g->rc = res_rc;
        if (res_rc == DB_OK) put_apply(&g->pt, res);
        else snprintf(g->err, sizeof g->err, "%s", err);
    }
    put_free(&g->pt);
    if (g->rc == DB_ERROR && g->n > 1 && c) { /* find the one that failed: each alone */
        for (int i = 0; i < g->n; i++) {
            struct single *s = g->m[i];
            s->rc = put_rows(c, &g->items[i], 1, s->pol, s->source, s->err, sizeof s->err);
            if (s->rc == DB_OK) s->it->status = g->items[i].status;
        }
        return;
    }
    for (int i = 0; i < g->n; i++) {
        struct single *s = g->m[i];
        s->rc = g->rc;
        if (g->rc == DB_OK) s->it->status = g->items[i].status;
        else snprintf(s->err, sizeof s->err, "%s", g->err);
    }
    if (g->n > 1)
        metrics_add("tf_candles_shared_statement_total", NULL, g->n,
                    "Single-candle requests stored by a statement shared with other requests");
}

/* Answers the requests of g other than me. */
static void group_wake(struct group *g, const struct single *me)
{
    pthread_mutex_lock(&singles.mu);
    for (int i = 0; i < g->n; i++) {
        if (g->m[i] == me) continue;
        g->m[i]->state = DONE;
        notify(g->m[i]);
    }
    pthread_mutex_unlock(&singles.mu);
}

/* The lane's statement g (led by me, on c) is finished: hands the lane to
 * the next queued request, with the next statement already sent when c is
 * still good, answers g's other requests, frees g. Never waits. */
static void lane_next(struct group *g, struct single *me, struct db_pool *p, struct db_conn *c)
{
    if (g->rc != DB_OK && c) { /* a failed connection is not handed on */
        db_release(p, c);
        c = NULL;
    }
    /* With a connection in hand, send the next statement before waking
     * anyone; without one, answer first. */
    int woken = !c;
    if (woken) group_wake(g, me);
    for (;;) {
        pthread_mutex_lock(&singles.mu);
        struct single *next = singles.head;
        if (!next) {
            singles.running--;
            pthread_mutex_unlock(&singles.mu);
            if (c) db_release(p, c);
            break;
        }
        singles.head = next->next;
        if (!singles.head) singles.tail = &singles.head;
        struct group *ng = group_take(next);
        pthread_mutex_unlock(&singles.mu);
        if (ng && c && next->p != p) {
            db_release(p, c);
            c = NULL;
        }
        if (ng && c) group_send(ng, c);
        pthread_mutex_lock(&singles.mu);
        if (!ng) { /* out of memory: answer it, try the one after */
            next->rc = DB_ERROR;
            snprintf(next->err, sizeof next->err, "out of memory");
            next->state = DONE;
            notify(next);
            pthread_mutex_unlock(&singles.mu);
            continue;
        }
        next->g = ng;
        next->c = c;
        next->state = LEAD;
        notify(next);
        pthread_mutex_unlock(&singles.mu);
        break;
    }
    if (!woken) group_wake(g, me);
    mem_free(g);
}

/* Stores one candle, the only row of its request, and sets its status
 * (blocking). */
static int store_single(struct db_pool *p, struct candle *it, enum candles_policy pol,
                        const char *source, char *err, size_t errlen)
{
    struct single me = {.p = p, .it = it, .pol = pol, .source = source, .state = QUEUED};
    struct group *g = NULL;
    struct db_conn *c = NULL;
    pthread_cond_init(&me.cv, NULL);

    pthread_mutex_lock(&singles.mu);
    if (singles.running < singles.lanes) { /* a free lane: lead a statement */
        g = group_take(&me);
        singles.running += g != NULL;
    } else {
        *singles.tail = &me;
        singles.tail = &me.next;
        while (me.state == QUEUED) pthread_cond_wait(&me.cv, &singles.mu);
        g = me.g, c = me.c; /* handed over by the lane before me; NULL when DONE */
    }
    pthread_mutex_unlock(&singles.mu);
    if (me.state != DONE && !g) { /* out of memory for a group */
        me.rc = DB_ERROR;
        snprintf(me.err, sizeof me.err, "out of memory");
    }
    if (g) {
        if (!g->sent && g->rc == DB_OK) { /* handed over unsent: check a connection out for it */
            if ((c = db_acquire(p, &g->rc, g->err, sizeof g->err))) group_send(g, c);
        }
        group_finish(g, c, 1, NULL, NULL);
        lane_next(g, &me, p, c);
    }
    pthread_cond_destroy(&me.cv);
    if (me.rc != DB_OK) snprintf(err, errlen, "%s", me.err);
    return me.rc;
}

/* ---- storing without blocking ---- */

struct candles_job {
    struct db_pool *p;
    struct candles_batch *b;
    struct candle *merged;
    int8_t *changed;
    void (*wake)(void *ud);
    void *ud;
    long long deadline_ms;
    struct single me;
    struct group *g;
    struct db_conn *c;
    struct db_op op;
    enum { J_QUEUED, J_ACQ, J_WAIT } state;
};

static void job_single_wake(struct single *s)
{
    struct candles_job *j = (struct candles_job *)((char *)s - offsetof(struct candles_job, me));
    j->wake(j->ud);
}

static void job_op_done(struct db_op *op)
{
    struct candles_job *j = op->ud;
    j->wake(j->ud);
}

static void job_free(struct candles_job *j)
{
    mem_free(j->merged);
    mem_free(j->changed);
    mem_free(j);
}

/* Followers take their status from their leader; the job ends. */
static int job_end(struct candles_job *j, int rc, const char *msg, char *err, size_t errlen)
{
    struct candles_batch *b = j->b;
    if (rc == DB_OK) {
        for (size_t i = 0; i < b->n; i++) {
            struct candle *it = &b->items[i];
            if (it->status != INGEST_VALID) continue;
            if (it->leader < 0) it->status = j->merged[i].status;
            else it->status = j->changed[i] ? INGEST_UPDATED : INGEST_DUPLICATE;
        }
    } else {
        snprintf(err, errlen, "%s", msg);
    }
    job_free(j);
    return rc;
}

static int job_step_collect(struct candles_job *j, int rc, char *err, size_t errlen);

/* Waits for the result of the lane's statement, sent on j->c. */
static int job_wait(struct candles_job *j)
{
    j->state = J_WAIT;
    j->op.done = job_op_done;
    j->op.ud = j;
    j->op.deadline_ms = j->deadline_ms;
    j->op.release = 0;
    db_wait_async(j->c, &j->op);
    return DB_PENDING;
}

/* Sends the lane's statement on j->c, or records why it could not. */
static int job_send(struct candles_job *j, char *err, size_t errlen)
{
    group_send(j->g, j->c);
    if (!j->g->sent) return job_step_collect(j, DB_ERROR, err, errlen);
    return job_wait(j);
}

/* The lane's statement is over (rc: DB_OK with j->op.res, or its failure). */
static int job_step_collect(struct candles_job *j, int rc, char *err, size_t errlen)
{
    struct group *g = j->g;
    if (g->sent) group_finish(g, j->c, j->op.rc, j->op.res, j->op.err);
    else group_finish(g, j->c, g->rc, NULL, g->err);
    j->op.res = NULL;
    lane_next(g, &j->me, j->p, j->c);
    j->g = NULL;
    j->c = NULL;
    return job_end(j, j->me.rc, j->me.err, err, errlen);
}

static int job_acquired(struct candles_job *j, int rc, char *err, size_t errlen)
{
    if (rc != DB_OK) {
        j->g->rc = rc;
        snprintf(j->g->err, sizeof j->g->err, "%.250s", j->op.err);
        return job_step_collect(j, rc, err, errlen);
    }
    j->c = j->op.conn;
    return job_send(j, err, errlen);
}

static int job_acquire(struct candles_job *j, char *err, size_t errlen)
{
    j->state = J_ACQ;
    j->op.done = job_op_done;
    j->op.ud = j;
    j->op.deadline_ms = j->deadline_ms;
    int rc = db_acquire_async(j->p, &j->op);
    if (rc == DB_PENDING) return DB_PENDING;
    j->state = J_WAIT; /* not waiting: the next step is now */
    return job_acquired(j, rc, err, errlen);
}

int candles_job_step(struct candles_job *j, char *err, size_t errlen)
{
    switch (j->state) {
    case J_QUEUED:
        pthread_mutex_lock(&singles.mu);
        if (j->me.state == QUEUED) { /* woken early: not its turn yet */
            pthread_mutex_unlock(&singles.mu);
            return DB_PENDING;
        }
        pthread_mutex_unlock(&singles.mu);
        if (j->me.state == DONE) return job_end(j, j->me.rc, j->me.err, err, errlen);
        j->g = j->me.g;
        j->c = j->me.c;
        if (!j->g->sent && j->g->rc == DB_OK) return job_acquire(j, err, errlen);
        if (!j->g->sent) return job_step_collect(j, j->g->rc, err, errlen); /* sending on the handed connection failed */
        return job_wait(j);
    case J_ACQ:
        if (j->op.rc == DB_OK) db_acquire_finish(&j->op);
        return job_acquired(j, j->op.rc, err, errlen);
    case J_WAIT:
        return job_step_collect(j, j->op.rc, err, errlen);
    }
    return DB_ERROR;
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
    size_t nsend = 0, first = 0;
    memcpy(j->merged, b->items, b->n * sizeof *j->merged);
    for (size_t i = 0; i < b->n; i++) {
        struct candle *it = &j->merged[i];
        if (it->status != INGEST_VALID) continue;
        if (it->leader < 0) {
            if (!nsend++) first = i;
        } else {
            j->changed[i] = (int8_t)fold_into(&j->merged[it->leader], it, pol);
        }
    }
    if (nsend != 1) { /* several rows: the caller stores it with candles_store */
        job_free(j);
        return CANDLES_NOT_SINGLE;
    }
    j->p = p;
    j->b = b;
    j->wake = wake;
    j->ud = ud;
    j->deadline_ms = deadline_ms;
    j->me = (struct single){.p = p, .it = &j->merged[first], .pol = pol, .source = source, .state = QUEUED,
                            .wake = job_single_wake};
    pthread_mutex_lock(&singles.mu);
    if (singles.running < singles.lanes) { /* a free lane: lead a statement */
        j->g = group_take(&j->me);
        singles.running += j->g != NULL;
        pthread_mutex_unlock(&singles.mu);
        if (!j->g) return job_end(j, DB_ERROR, "out of memory", err, errlen);
        j->me.state = LEAD;
        *out = j;
        int rc = job_acquire(j, err, errlen);
        if (rc != DB_PENDING) *out = NULL;
        return rc;
    }
    *singles.tail = &j->me;
    singles.tail = &j->me.next;
    j->state = J_QUEUED;
    pthread_mutex_unlock(&singles.mu);
    *out = j;
    return DB_PENDING;
}

int candles_store(struct db_pool *p, struct candles_batch *b, enum candles_policy pol,
                  const char *source, char *err, size_t errlen)
{
    /* Fold followers into leaders on copies, so a failed round trip leaves
     * the batch as it was. */
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
    memcpy(merged, b->items, b->n * sizeof *merged);
    for (size_t i = 0; i < b->n; i++) {
        struct candle *it = &merged[i];
        if (it->status != INGEST_VALID) continue;
        if (it->leader < 0) nsend++;
        else changed[i] = (int8_t)fold_into(&merged[it->leader], it, pol);
    }

    if (nsend == 1) {
        struct candle *it = merged;
        while (it->status != INGEST_VALID || it->leader >= 0) it++;
        rc = store_single(p, it, pol, source, err, errlen);
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
        if (fell_back && rc == DB_OK) rc = put_rows(c, merged, b->n, pol, source, err, errlen);
        db_release(p, c);
    }
    if (rc != DB_OK) goto done;

    /* Followers: a change to what came before them in the batch is an
     * update; the same values again are a duplicate. */
    for (size_t i = 0; i < b->n; i++) {
        struct candle *it = &b->items[i];
        if (it->status != INGEST_VALID) continue;
        if (it->leader < 0) it->status = merged[i].status;
        else it->status = changed[i] ? INGEST_UPDATED : INGEST_DUPLICATE;
    }
done:
    mem_free(merged);
    mem_free(changed);
    return rc;
}
