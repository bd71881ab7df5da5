/* Tick batches (see ticks.h): JSON -> validated ticks -> COPY (a batch of
 * new ticks) or one INSERT over unnest()ed array parameters with ON CONFLICT
 * DO NOTHING on the (symbol, ts_msc, ts) unique index. Values reach SQL only
 * as parameters or COPY data; the batch owns its items, and the candles JSON
 * helpers do the field work. */
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

static int64_t offset_for(const struct candles_opts *o, const char *symbol)
{
    for (size_t i = 0; i < o->nsymbol_offsets; i++)
        if (strcmp(o->symbol_offsets[i].symbol, symbol) == 0) return o->symbol_offsets[i].offset_us;
    return o->offset_us;
}

/* Optional number: 0 set, 1 absent, -1 rejected (err written). */
static int opt_number(const cJSON *it, const char *key, double *v, double min, char *err,
                      size_t el)
{
    const char *why = NULL;
    int r = candles_json_number(it, key, v, &why);
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

static void decode_tick(const cJSON *it, const struct candles_opts *o, struct tick *t)
{
    char *err = t->error;
    size_t el = sizeof t->error;
    const char *why = NULL;
    t->status = CANDLES_REJECTED;
    t->leader = -1;
    if (!cJSON_IsObject(it)) {
        snprintf(err, el, "item: must be a JSON object");
        return;
    }
    int sym_ok = candles_json_symbol(it, t->symbol, err, el) == 0;
    char tserr[CANDLES_ERR_MAX];
    int64_t us = 0;
    int ts_ok = candles_json_ts(it, "ts", &us, t->ts_original, sizeof t->ts_original, tserr,
                                sizeof tserr) == 0;
    if (!sym_ok) return;
    double msc = 0;
    int r = candles_json_number(it, "ts_msc", &msc, &why);
    if (r < 0) {
        snprintf(err, el, "ts_msc: %s", why);
        return;
    }
    if (r == 0) {
        if (msc < 0 || msc != floor(msc) || msc >= 2.5e14) {
            snprintf(err, el, "ts_msc: must be whole epoch milliseconds, got %.17g", msc);
            return;
        }
        t->has_msc = 1;
        t->ts_msc = (int64_t)msc;
    }
    if (!ts_ok) {
        const cJSON *f = candles_json_field(it, "ts");
        if (!t->has_msc || (f && !cJSON_IsNull(f))) {
            snprintf(err, el, "%s", tserr);
            return;
        }
    }
    for (int k = 0; k < 2; k++) {
        const char *key = k ? "ask" : "bid";
        double *v = k ? &t->ask : &t->bid;
        r = candles_json_number(it, key, v, &why);
        if (r == 1) snprintf(err, el, "%s: missing", key);
        else if (r < 0) snprintf(err, el, "%s: %s", key, why);
        else if (!(*v > 0)) snprintf(err, el, "%s: must be > 0, got %.10g", key, *v);
        if (r != 0 || !(*v > 0)) return;
    }
    if ((r = opt_number(it, "last", &t->last, 0, err, el)) < 0) return;
    t->has_last = r == 0;
    if ((r = opt_number(it, "volume", &t->volume, 0, err, el)) < 0) return;
    t->has_volume = r == 0;
    if ((r = opt_number(it, "spread", &t->spread, 0, err, el)) < 0) return;
    t->has_spread = r == 0;
    double fl = 0;
    if ((r = opt_number(it, "flags", &fl, 0, err, el)) < 0) return;
    if (r == 0) {
        if (fl != floor(fl) || fl > 2147483647.0) {
            snprintf(err, el, "flags: must be a 32-bit unsigned integer, got %.17g", fl);
            return;
        }
        t->has_flags = 1;
        t->flags = (int64_t)fl;
    }
    /* MqlTick.time_msc is the precise time; ts is the same instant rounded. */
    if (t->has_msc) us = t->ts_msc * 1000;
    t->ts_us = us - offset_for(o, t->symbol);
    t->bucket_us = ts_bucket(t->ts_us, TS_M1);
    if (!ts_in_range(t->ts_us) || !ts_in_range(t->bucket_us)) { /* shifted out */
        snprintf(err, el, "ts: " TS_RANGE_ERROR " (after the server time offset)");
        return;
    }
    t->error[0] = '\0';
    t->status = CANDLES_VALID;
}

static uint64_t key_hash(const char *sym, int64_t msc)
{
    return candles_key_hash(sym, 0, (uint64_t)msc);
}

/* Marks later ticks with the (symbol, ts_msc) of an earlier one. */
static int fold_keys(struct ticks_batch *b)
{
    size_t cap = 16;
    while (cap < b->nvalid * 2) cap <<= 1;
    int32_t *slot = mem_alloc(cap * sizeof *slot);
    if (!slot) return -1;
    memset(slot, 0xff, cap * sizeof *slot);
    for (size_t i = 0; i < b->n; i++) {
        struct tick *t = &b->items[i];
        if (t->status != CANDLES_VALID || !t->has_msc) continue;
        size_t h = key_hash(t->symbol, t->ts_msc) & (cap - 1);
        for (;; h = (h + 1) & (cap - 1)) {
            if (slot[h] < 0) {
                slot[h] = (int32_t)i;
                break;
            }
            struct tick *l = &b->items[slot[h]];
            if (l->ts_msc == t->ts_msc && strcmp(l->symbol, t->symbol) == 0) {
                t->leader = slot[h];
                break;
            }
        }
    }
    mem_free(slot);
    return 0;
}

int ticks_fold(struct ticks_batch *b)
{
    for (size_t i = 0; i < b->n; i++) b->items[i].leader = -1;
    return fold_keys(b);
}

int ticks_decode(const char *body, size_t len, const struct candles_opts *o,
                 struct ticks_batch **out, int *http_status, char *err, size_t errlen)
{
    static const struct candles_opts defaults = {0};
    if (!o) o = &defaults;
    *out = NULL;
    *http_status = 400;
    cJSON *root = candles_json_parse(body, len, o->max_items, "ticks", http_status, err, errlen);
    if (!root) return -1;
    int rc = -1;
    struct ticks_batch *b = NULL;
    const cJSON *arr = root;
    if (cJSON_IsObject(root)) {
        arr = candles_json_field(root, "ticks");
        if (!arr) {
            snprintf(err, errlen, "body: want {\"ticks\": [...]}, \"ticks\" is missing");
            goto done;
        }
        if (!cJSON_IsArray(arr)) {
            snprintf(err, errlen, "ticks: must be an array");
            goto done;
        }
    } else if (!cJSON_IsArray(root)) {
        snprintf(err, errlen, "body: want {\"ticks\": [...]}");
        goto done;
    }
    size_t n = (size_t)cJSON_GetArraySize(arr);
    if (o->max_items && n > o->max_items) {
        *http_status = 413;
        snprintf(err, errlen, "too many ticks: %zu > %zu; split the batch", n, o->max_items);
        goto done;
    }
    b = mem_calloc(1, sizeof *b);
    if (!b || (n && !(b->items = mem_calloc(n, sizeof *b->items)))) {
        *http_status = 500;
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    b->n = n;
    size_t i = 0;
    for (const cJSON *it = arr->child; it; it = it->next, i++) {
        decode_tick(it, o, &b->items[i]);
        b->nvalid += b->items[i].status == CANDLES_VALID;
    }
    if (fold_keys(b) < 0) {
        *http_status = 500;
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    *out = b;
    b = NULL;
    *http_status = 200;
    rc = 0;
done:
    ticks_free(b);
    cJSON_Delete(root);
    return rc;
}

void ticks_free(struct ticks_batch *b)
{
    if (!b) return;
    mem_free(b->items);
    mem_free(b);
}

void ticks_count(const struct ticks_batch *b, struct candles_counts *c)
{
    memset(c, 0, sizeof *c);
    c->received = b->n;
    for (size_t i = 0; i < b->n; i++) {
        switch (b->items[i].status) {
        case CANDLES_INSERTED: c->inserted++; break;
        case CANDLES_DUPLICATE: c->duplicates++; break;
        case CANDLES_REJECTED: c->rejected++; break;
        case CANDLES_QUEUED: c->queued++; break;
        default: break;
        }
    }
}

/* A double as text that reads back as the same double: the short fixed
 * form when it round-trips (prices sent as "1.08553" do), else %.17g. */
static int fmt_double(char *out, double v)
{
    if (v >= 0 && v < 9e10) {
        int n = candles_fmt_fixed(out, v, 8);
        if (strtod(out, NULL) == v) return n;
    }
    return snprintf(out, 32, "%.17g", v);
}

static void put_opt(struct db_buf *b, int has, double v)
{
    if (!has) {
        db_buf_put(b, "NULL", 4);
        return;
    }
    char s[32];
    db_buf_put(b, s, (size_t)fmt_double(s, v));
}

/* COPY is the bulk path (see candles.c): a batch of at least COPY_MIN new
 * ticks is loaded by COPY; one that meets a stored (symbol, ts_msc) fails as
 * a whole and goes the ON CONFLICT DO NOTHING way, and COPY pauses. */
#define COPY_MIN 64
#define COPY_PAUSE_MS 30000
static _Atomic long long copy_paused_until;

static void copy_opt(struct db_buf *d, int has, double v)
{
    db_buf_putc(d, '\t');
    if (!has) {
        db_buf_put(d, "\\N", 2);
        return;
    }
    char s[32];
    db_buf_put(d, s, (size_t)fmt_double(s, v));
}

static int try_copy(struct db_conn *c, const struct ticks_batch *b, int *fell_back, char *err,
                    size_t errlen)
{
    struct db_buf d = {0};
    char ts[40];
    *fell_back = 0;
    for (size_t i = 0; i < b->n; i++) {
        const struct tick *t = &b->items[i];
        if (t->status != CANDLES_VALID || t->leader >= 0) continue;
        for (const char *q = t->symbol; *q; q++) {
            if (*q == '\\') db_buf_putc(&d, '\\');
            db_buf_putc(&d, *q);
        }
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
    if (d.oom) {
        db_buf_free(&d);
        snprintf(err, errlen, "out of memory");
        return DB_ERROR;
    }
    long rows;
    int rc = db_copy_in(c, "COPY ticks (symbol, ts, bid, ask, last, volume, flags, ts_msc, spread) FROM STDIN",
                        d.data, d.len, &rows, err, errlen);
    db_buf_free(&d);
    if (rc == DB_ERROR && strcmp(db_sqlstate(c), "23505") == 0) {
        copy_paused_until = clock_ms() + COPY_PAUSE_MS;
        *fell_back = 1;
        metrics_add("tf_ticks_copy_fallbacks_total", NULL, 1,
                    "Tick batches whose COPY met a stored key and went the ON CONFLICT way");
        return DB_OK;
    }
    return rc;
}

#define NCOL 9

int ticks_store(struct db_pool *p, struct ticks_batch *b, char *err, size_t errlen)
{
    struct db_buf col[NCOL] = {{0}};
    int rc = DB_ERROR, dbrc;
    PGresult *res = NULL;
    struct db_conn *c = NULL;
    int32_t *slot = NULL; /* RETURNING rows -> ticks, by (symbol, ts_msc) */
    size_t nsend = 0, nmsc = 0, cap = 16;
    if (b->nvalid == 0) return DB_OK;
    for (size_t i = 0; i < b->n; i++) nsend += b->items[i].status == CANDLES_VALID && b->items[i].leader < 0;
    c = db_acquire(p, &dbrc, err, errlen);
    if (!c) return dbrc;
    if (nsend >= COPY_MIN && clock_ms() >= copy_paused_until) {
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
                if (t->status == CANDLES_VALID) t->status = t->leader < 0 ? CANDLES_INSERTED : CANDLES_DUPLICATE;
            }
            metrics_add("tf_ticks_stored_total", NULL, (double)nsend, "Ticks inserted");
            return DB_OK;
        }
    }
    nsend = 0;
    for (int k = 0; k < NCOL; k++) db_buf_putc(&col[k], '{');
    for (size_t i = 0; i < b->n; i++) {
        const struct tick *t = &b->items[i];
        if (t->status != CANDLES_VALID || t->leader >= 0) continue;
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
    const char *sql =
        "INSERT INTO ticks (symbol, ts, bid, ask, last, volume, flags, ts_msc, spread) "
        "SELECT s, timestamptz 'epoch' + u * interval '1 microsecond', b, a, l, v, f, m, sp "
        "FROM unnest($1::text[], $2::int8[], $3::float8[], $4::float8[], $5::float8[], "
        "$6::float8[], $7::int4[], $8::int8[], $9::float8[]) AS x(s, u, b, a, l, v, f, m, sp) "
        "ON CONFLICT (symbol, ts_msc, ts) DO NOTHING";
    const char *sql_ret =
        "INSERT INTO ticks (symbol, ts, bid, ask, last, volume, flags, ts_msc, spread) "
        "SELECT s, timestamptz 'epoch' + u * interval '1 microsecond', b, a, l, v, f, m, sp "
        "FROM unnest($1::text[], $2::int8[], $3::float8[], $4::float8[], $5::float8[], "
        "$6::float8[], $7::int4[], $8::int8[], $9::float8[]) AS x(s, u, b, a, l, v, f, m, sp) "
        "ON CONFLICT (symbol, ts_msc, ts) DO NOTHING RETURNING symbol, ts_msc";
    const char *vals[NCOL];
    for (int k = 0; k < NCOL; k++) vals[k] = col[k].data;
    /* Allocated before the statement runs: once it has, the ticks are stored
     * and their statuses must be reported. */
    if (nmsc) {
        while (cap < nmsc * 2) cap <<= 1;
        slot = mem_alloc(cap * sizeof *slot);
        if (!slot) {
            snprintf(err, errlen, "out of memory");
            db_release(p, c);
            rc = DB_ERROR;
            goto done;
        }
        memset(slot, 0xff, cap * sizeof *slot);
    }
    rc = db_exec(c, nmsc ? sql_ret : sql, NCOL, vals, NULL, &res, err, errlen);
    db_release(p, c);
    c = NULL;
    if (rc != DB_OK) goto done;

    /* Without ts_msc a tick cannot conflict: inserted. With it, inserted
     * only when RETURNING names it. */
    if (nmsc) {
        for (size_t i = 0; i < b->n; i++) {
            struct tick *t = &b->items[i];
            if (t->status != CANDLES_VALID || t->leader >= 0 || !t->has_msc) continue;
            size_t h = key_hash(t->symbol, t->ts_msc) & (cap - 1);
            while (slot[h] >= 0) h = (h + 1) & (cap - 1);
            slot[h] = (int32_t)i;
        }
        for (int r = 0; r < PQntuples(res); r++) {
            const char *sym = PQgetvalue(res, r, 0);
            int64_t msc = strtoll(PQgetvalue(res, r, 1), NULL, 10);
            for (size_t h = key_hash(sym, msc) & (cap - 1); slot[h] >= 0; h = (h + 1) & (cap - 1)) {
                struct tick *t = &b->items[slot[h]];
                if (t->ts_msc == msc && strcmp(t->symbol, sym) == 0) {
                    t->status = CANDLES_INSERTED;
                    break;
                }
            }
        }
    }
    size_t inserted = 0;
    for (size_t i = 0; i < b->n; i++) {
        struct tick *t = &b->items[i];
        if (t->status != CANDLES_VALID) {
            inserted += t->status == CANDLES_INSERTED;
            continue;
        }
        if (t->leader >= 0 || t->has_msc) t->status = CANDLES_DUPLICATE;
        else t->status = CANDLES_INSERTED, inserted++;
    }
    metrics_add("tf_ticks_stored_total", NULL, (double)inserted, "Ticks inserted");
    rc = DB_OK;
done:
    if (res) PQclear(res);
    for (int k = 0; k < NCOL; k++) db_buf_free(&col[k]);
    mem_free(slot);
    return rc;
}
