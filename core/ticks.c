/* Tick batches (see ticks.h): JSON -> validated ticks -> COPY (a batch of
 * new ticks) or one INSERT over unnest()ed array parameters with ON CONFLICT
 * DO NOTHING on the (symbol, ts_msc, ts) unique index. Values reach SQL only
 * as parameters or COPY data; the batch owns its items, and the ingest
 * layer (ingest.h) does the field, key and COPY work. */
#include "ticks.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "mem.h"
#include "metrics.h"
#include "ts.h"

/* Optional number: 0 set, 1 absent, -1 rejected (err written). */
static int opt_number(const cJSON *it, const char *key, double *v, double min, char *err,
                      size_t el)
{
    const char *why = NULL;
    int r = ingest_json_number(it, key, v, &why);
    if (r < 0) {
        snprintf(err, el, "%s: %s", key, why);
        return -1;
    }
    if (r == 0 && (*v < min || *v >= 1e300)) {
        snprintf(err, el, "%s: must be >= %g, got %.10g", key, min, *v);
        return -1;
    }
    return r;
}

static int decode_tick(const cJSON *it, const struct ingest_opts *o, void *item, char *err,
                       size_t el)
{
    struct tick *t = item;
    const char *why = NULL;
    if (!cJSON_IsObject(it)) {
        snprintf(err, el, "item: must be a JSON object");
        return -1;
    }
    int sym_ok = ingest_json_symbol(it, t->symbol, err, el) == 0;
    char tserr[INGEST_ERR_MAX];
    int64_t us = 0;
    int ts_ok = ingest_json_ts(it, "ts", &us, t->ts_original, sizeof t->ts_original, tserr,
                               sizeof tserr) == 0;
    if (!sym_ok) return -1;
    double msc = 0;
    int r = ingest_json_number(it, "ts_msc", &msc, &why);
    if (r < 0) {
        snprintf(err, el, "ts_msc: %s", why);
        return -1;
    }
    if (r == 0) {
        if (msc < 0 || msc != floor(msc) || msc >= 2.5e14) {
            snprintf(err, el, "ts_msc: must be whole epoch milliseconds, got %.17g", msc);
            return -1;
        }
        t->has_msc = 1;
        t->ts_msc = (int64_t)msc;
    }
    if (!ts_ok) {
        const cJSON *f = ingest_json_field(it, "ts");
        if (!t->has_msc || (f && !cJSON_IsNull(f))) {
            snprintf(err, el, "%s", tserr);
            return -1;
        }
    }
    if (ingest_json_positive(it, "bid", &t->bid, err, el) ||
        ingest_json_positive(it, "ask", &t->ask, err, el))
        return -1;
    if ((r = opt_number(it, "last", &t->last, 0, err, el)) < 0) return -1;
    t->has_last = r == 0;
    if ((r = opt_number(it, "volume", &t->volume, 0, err, el)) < 0) return -1;
    t->has_volume = r == 0;
    if ((r = opt_number(it, "spread", &t->spread, 0, err, el)) < 0) return -1;
    t->has_spread = r == 0;
    double fl = 0;
    if ((r = opt_number(it, "flags", &fl, 0, err, el)) < 0) return -1;
    if (r == 0) {
        if (fl != floor(fl) || fl > 2147483647.0) {
            snprintf(err, el, "flags: must be a 32-bit unsigned integer, got %.17g", fl);
            return -1;
        }
        t->has_flags = 1;
        t->flags = (int64_t)fl;
    }
    /* MqlTick.time_msc is the precise time; ts is the same instant rounded. */
    if (t->has_msc) us = t->ts_msc * 1000;
    return ingest_place(o, t->symbol, us, TS_M1, &t->ts_us, &t->bucket_us, err, el);
}

static void tick_ref(void *item, struct ingest_ref *r)
{
    struct tick *t = item;
    *r = (struct ingest_ref){.symbol = t->symbol,
                             .status = &t->status,
                             .leader = &t->leader,
                             .error = t->error,
                             .ts_us = &t->ts_us,
                             .bucket_us = &t->bucket_us,
                             .has_key = t->has_msc,
                             .key = {t->symbol, 0, (uint64_t)t->ts_msc}};
}

/* A tick body is {"ticks": [...]} or a bare array. */
static int locate(const cJSON *root, const struct ingest_opts *o, const cJSON **arr,
                  const cJSON **one, char *err, size_t errlen)
{
    *arr = root;
    if (cJSON_IsObject(root)) {
        *arr = ingest_json_field(root, "ticks");
        if (!*arr) {
            snprintf(err, errlen, "body: want {\"ticks\": [...]}, \"ticks\" is missing");
            return -1;
        }
        if (!cJSON_IsArray(*arr)) {
            snprintf(err, errlen, "ticks: must be an array");
            return -1;
        }
    } else if (!cJSON_IsArray(root)) {
        snprintf(err, errlen, "body: want {\"ticks\": [...]}");
        return -1;
    }
    return 0;
}

INGEST_BATCH_LAYOUT(struct ticks_batch);

/* Ticks fold on (symbol, ts_msc); a tick without ts_msc has no key. */
const struct ingest_kind ticks_kind = {.noun = "ticks",
                                       .size = sizeof(struct tick),
                                       .ref = tick_ref,
                                       .decode = decode_tick,
                                       .locate = locate};

static void put_opt(struct db_buf *b, int has, double v)
{
    if (!has) {
        db_buf_put(b, "NULL", 4);
        return;
    }
    char s[32];
    db_buf_put(b, s, (size_t)ingest_fmt_double(s, v));
}

/* COPY into ticks (see ingest.h): the bulk path for new ticks; one that
 * meets a stored (symbol, ts_msc) goes the ON CONFLICT DO NOTHING way. */
static struct ingest_copy_gate copy_gate = {
    0, "tf_ticks_copy_fallbacks_total",
    "Tick batches whose COPY met a stored key and went the ON CONFLICT way"};

static void copy_opt(struct db_buf *d, int has, double v)
{
    db_buf_putc(d, '\t');
    if (!has) {
        db_buf_put(d, "\\N", 2);
        return;
    }
    char s[32];
    db_buf_put(d, s, (size_t)ingest_fmt_double(s, v));
}

static int try_copy(struct db_conn *c, const struct ticks_batch *b, int *fell_back, char *err,
                    size_t errlen)
{
    struct db_buf d = {0};
    char ts[40];
    for (size_t i = 0; i < b->n; i++) {
        const struct tick *t = &b->items[i];
        if (t->status != INGEST_VALID || t->leader >= 0) continue;
        ingest_copy_text(&d, t->symbol);
        db_buf_putc(&d, '\t');
        db_buf_put(&d, ts, (size_t)ts_format(t->ts_us, ts, sizeof ts));
        copy_opt(&d, 1, t->bid);
        copy_opt(&d, 1, t->ask);
        copy_opt(&d, t->has_last, t->last);
        copy_opt(&d, t->has_volume, t->volume);
        if (t->has_flags) db_buf_printf(&d, "\t%lld", (long long)t->flags);
        else db_buf_put(&d, "\t\\N", 3);
        if (t->has_msc) db_buf_printf(&d, "\t%lld", (long long)t->ts_msc);
        else db_buf_put(&d, "\t\\N", 3);
        copy_opt(&d, t->has_spread, t->spread);
        db_buf_putc(&d, '\n');
    }
    return ingest_copy_run(&copy_gate, c,
                           "COPY ticks (symbol, ts, bid, ask, last, volume, flags, ts_msc, spread) FROM STDIN",
                           &d, fell_back, err, errlen);
}

#define NCOL 9

int ticks_store(struct db_pool *p, struct ticks_batch *b, char *err, size_t errlen)
{
    struct db_buf col[NCOL] = {{0}};
    int rc = DB_ERROR, dbrc;
    PGresult *res = NULL;
    struct db_conn *c = NULL;
    struct ingest_index returned = {0}; /* RETURNING rows -> ticks, by (symbol, ts_msc) */
    size_t nsend = 0, nmsc = 0;
    if (b->nvalid == 0) return DB_OK;
    for (size_t i = 0; i < b->n; i++) nsend += b->items[i].status == INGEST_VALID && b->items[i].leader < 0;
    c = db_acquire(p, &dbrc, err, errlen);
    if (!c) return dbrc;
    if (ingest_copy_ready(&copy_gate, nsend)) {
        int fell_back;
        rc = try_copy(c, b, &fell_back, err, errlen);
        if (rc != DB_OK) {
            db_release(p, c);
            return rc;
        }
        if (!fell_back) {
            db_release(p, c);
            for (size_t i = 0; i < b->n; i++) {
                struct tick *t = &b->items[i];
                if (t->status == INGEST_VALID) t->status = t->leader < 0 ? INGEST_INSERTED : INGEST_DUPLICATE;
            }
            metrics_add("tf_ticks_stored_total", NULL, (double)nsend, "Ticks inserted");
            return DB_OK;
        }
    }
    nsend = 0;
    for (int k = 0; k < NCOL; k++) db_buf_putc(&col[k], '{');
    for (size_t i = 0; i < b->n; i++) {
        const struct tick *t = &b->items[i];
        if (t->status != INGEST_VALID || t->leader >= 0) continue;
        if (nsend++)
            for (int k = 0; k < NCOL; k++) db_buf_putc(&col[k], ',');
        nmsc += t->has_msc;
        db_buf_quoted(&col[0], t->symbol);
        db_buf_printf(&col[1], "%lld", (long long)t->ts_us);
        put_opt(&col[2], 1, t->bid);
        put_opt(&col[3], 1, t->ask);
        put_opt(&col[4], t->has_last, t->last);
        put_opt(&col[5], t->has_volume, t->volume);
        if (t->has_flags) db_buf_printf(&col[6], "%lld", (long long)t->flags);
        else db_buf_put(&col[6], "NULL", 4);
        if (t->has_msc) db_buf_printf(&col[7], "%lld", (long long)t->ts_msc);
        else db_buf_put(&col[7], "NULL", 4);
        put_opt(&col[8], t->has_spread, t->spread);
    }
    for (int k = 0; k < NCOL; k++) {
        db_buf_put(&col[k], "}", 2);
        if (col[k].oom) {
            snprintf(err, errlen, "out of memory");
            db_release(p, c);
            goto done;
        }
    }
    /* RETURNING only what maps statuses back: ticks with ts_msc. */
#define INSERT_TICKS                                                                             \
    "INSERT INTO ticks (symbol, ts, bid, ask, last, volume, flags, ts_msc, spread) "               \
    "SELECT s, timestamptz 'epoch' + u * interval '1 microsecond', b, a, l, v, f, m, sp "           \
    "FROM unnest($1::text[], $2::int8[], $3::float8[], $4::float8[], $5::float8[], "               \
    "$6::float8[], $7::int4[], $8::int8[], $9::float8[]) AS x(s, u, b, a, l, v, f, m, sp) "        \
    "ON CONFLICT (symbol, ts_msc, ts) DO NOTHING"
    const char *sql = INSERT_TICKS, *sql_ret = INSERT_TICKS " RETURNING symbol, ts_msc";
    const char *vals[NCOL];
    for (int k = 0; k < NCOL; k++) vals[k] = col[k].data;
    /* Allocated before the statement runs: once it has, the ticks are stored
     * and their statuses must be reported. */
    if (nmsc && ingest_index_init(&returned, nmsc) < 0) {
        snprintf(err, errlen, "out of memory");
        db_release(p, c);
        rc = DB_ERROR;
        goto done;
    }
    rc = db_exec(c, nmsc ? sql_ret : sql, NCOL, vals, NULL, &res, err, errlen);
    db_release(p, c);
    c = NULL;
    if (rc != DB_OK) goto done;

    /* Without ts_msc a tick cannot conflict: inserted. With it, inserted
     * only when RETURNING names it. */
    if (nmsc) {
        ingest_index_leaders(&returned, &ticks_kind, b->items, b->n);
        for (int r = 0; r < PQntuples(res); r++) {
            struct ingest_key key = {PQgetvalue(res, r, 0), 0,
                                     (uint64_t)strtoll(PQgetvalue(res, r, 1), NULL, 10)};
            ingest_returned(&returned, &ticks_kind, b->items, &key, INGEST_INSERTED);
        }
    }
    size_t inserted = 0;
    for (size_t i = 0; i < b->n; i++) {
        struct tick *t = &b->items[i];
        if (t->status != INGEST_VALID) {
            inserted += t->status == INGEST_INSERTED;
            continue;
        }
        if (t->leader >= 0 || t->has_msc) t->status = INGEST_DUPLICATE;
        else t->status = INGEST_INSERTED, inserted++;
    }
    metrics_add("tf_ticks_stored_total", NULL, (double)inserted, "Ticks inserted");
    rc = DB_OK;
done:
    if (res) PQclear(res);
    for (int k = 0; k < NCOL; k++) db_buf_free(&col[k]);
    ingest_index_free(&returned);
    return rc;
}
