/* tf.candles and tf.ticks: whole-batch MT5 ingest for plugins.
 *   local b, err, status = tf.candles.decode(body, { shape = "array"|"object"|"any",
 *        max_items = 5000, offset = seconds, symbol_offsets = { EURUSD = 7200 } })
 *   local answer = tf.candles.store(b, { policy = "merge"|"ignore"|"replace", source = "ea",
 *        on_unavailable = "error"|"spool" })
 *   b:answer()  -- the answer table without storing; #b is the item count
 * tf.ticks.decode/store the same (no shape, no policy). decode returns nil,
 * message, 400|413 for a body that cannot be a batch. store raises the
 * tf.db error table ({code = "unavailable"|"timeout"|"error", message}) when the
 * database fails, and then nothing of the batch was stored. With
 * on_unavailable = "spool" (and a spool: `serve` with spool.enabled) an
 * unavailable database queues the valid items in the durable spool instead
 * (status "queued", stored by its replayer), and while the spool holds
 * batches every such store is queued behind them, so none overtakes a
 * spooled one; a full spool raises "unavailable". The per-item work
 * is C (candles.c, ticks.c); this file only converts. In a handler task a
 * store yields while it waits: a single candle joins the lanes without
 * blocking (candles_store_start), a batch of several rows is stored by a
 * small pool of helper threads (the blocking candles_store/ticks_store, at
 * most STORE_HELPERS at once) while its task is suspended. */
#include <lauxlib.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "acct.h"
#include "cache.h"
#include "candles.h"
#include "clock.h"
#include "lua_json.h"
#include "lua_tf.h"
#include "lvm.h"
#include "mem.h"
#include "metrics.h"
#include "spool.h"
#include "ticks.h"

#define CANDLES_MT "tf.candles.batch"
#define TICKS_MT "tf.ticks.batch"
#define MAX_SYMBOL_OFFSETS 256

struct ud {
    void *batch; /* struct candles_batch * or struct ticks_batch * */
};

/* as tf.db's: a request that is over stores nothing more */
#define DEAD_MSG "the request is over (past its time limit, or its client left): nothing stored"

static int raise_db(lua_State *L, int rc, const char *msg)
{
    lua_createtable(L, 0, 2);
    lua_pushstring(L, rc == DB_UNAVAILABLE ? "unavailable" : rc == DB_TIMEOUT ? "timeout" : "error");
    lua_setfield(L, -2, "code");
    lua_pushstring(L, msg);
    lua_setfield(L, -2, "message");
    luaL_setmetatable(L, "tf.db.error"); /* tostring -> "tf.db: ..." when tf.db is loaded */
    return lua_error(L);
}

/* Reads decode options from the table at idx (may be absent). so must hold
 * MAX_SYMBOL_OFFSETS entries. */
static void read_opts(lua_State *L, int idx, struct ingest_opts *o, struct ingest_offset *so)
{
    memset(o, 0, sizeof *o);
    if (lua_isnoneornil(L, idx)) return;
    luaL_checktype(L, idx, LUA_TTABLE);
    if (lua_getfield(L, idx, "shape") != LUA_TNIL) {
        const char *s = luaL_checkstring(L, -1);
        if (!strcmp(s, "array")) o->shape = INGEST_SHAPE_ARRAY;
        else if (!strcmp(s, "object")) o->shape = INGEST_SHAPE_OBJECT;
        else if (!strcmp(s, "any")) o->shape = INGEST_SHAPE_ANY;
        else luaL_error(L, "decode: shape must be \"array\", \"object\" or \"any\", got \"%s\"", s);
    }
    lua_pop(L, 1);
    if (lua_getfield(L, idx, "max_items") != LUA_TNIL) {
        lua_Integer n = luaL_checkinteger(L, -1);
        if (n < 0) luaL_error(L, "decode: max_items must be >= 0");
        o->max_items = (size_t)n;
    }
    lua_pop(L, 1);
    if (lua_getfield(L, idx, "offset") != LUA_TNIL)
        o->offset_us = (int64_t)(luaL_checknumber(L, -1) * 1e6);
    lua_pop(L, 1);
    if (lua_getfield(L, idx, "symbol_offsets") == LUA_TTABLE) {
        size_t n = 0;
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            if (n == MAX_SYMBOL_OFFSETS) luaL_error(L, "decode: more than %d symbol_offsets", MAX_SYMBOL_OFFSETS);
            const char *sym = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
            if (!sym || strlen(sym) > INGEST_SYMBOL_MAX || !lua_isnumber(L, -1))
                luaL_error(L, "decode: symbol_offsets must map symbols to seconds");
            snprintf(so[n].symbol, sizeof so[n].symbol, "%s", sym);
            so[n].offset_us = (int64_t)(lua_tonumber(L, -1) * 1e6);
            n++;
            lua_pop(L, 1);
        }
        o->symbol_offsets = so;
        o->nsymbol_offsets = n;
    }
    lua_pop(L, 1);
}

static void set_str(lua_State *L, const char *k, const char *v)
{
    lua_pushstring(L, v);
    lua_setfield(L, -2, k);
}

static void set_int(lua_State *L, const char *k, size_t v)
{
    lua_pushinteger(L, (lua_Integer)v);
    lua_setfield(L, -2, k);
}

/* The old API's key order, so answers read as EAs' authors saw them. */
static const char *const answer_keys[] = {"ok", "received", "inserted", "duplicates", "updated", "rejected",
                                          "queued", "details", NULL};
static const char *const detail_keys[] = {"symbol", "timeframe", "ts_original", "ts_bucket", "status", "error",
                                          NULL};

static void push_counts(lua_State *L, const struct ingest_counts *n, const char *kind)
{
    /* answer key, status in tf_ingest_items_total (none: not a status), count */
    const struct {
        const char *key, *status;
        size_t v;
    } f[] = {{"received", NULL, n->received},         {"inserted", "inserted", n->inserted},
             {"duplicates", "duplicate", n->duplicates}, {"updated", "updated", n->updated},
             {"rejected", "rejected", n->rejected},     {"queued", "queued", n->queued}};
    lua_json_order(L, -1, answer_keys);
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "ok");
    char lab[64];
    for (size_t i = 0; i < sizeof f / sizeof *f; i++) {
        /* "queued" only when some are: other answers keep their old shape */
        if (f[i].v || strcmp(f[i].key, "queued") != 0) set_int(L, f[i].key, f[i].v);
        if (!f[i].v || !f[i].status) continue;
        snprintf(lab, sizeof lab, "kind=\"%s\",status=\"%s\"", kind, f[i].status);
        metrics_add("tf_ingest_items_total", lab, (double)f[i].v, "Ingested items by kind and status");
    }
}

/* ---- the two kinds of batch ----
 * Candles and ticks differ in their C types and in how they are stored; for
 * everything else (decode, #b, the answer, freeing) this file handles a
 * batch through its kind. */

/* One item as an answer's detail shows it. */
struct detail {
    const char *symbol;
    int tf; /* an enum ts_tf, or -1: ticks have none */
    const char *ts_original, *error;
    int status;
    int64_t bucket_us;
};

struct kind {
    const char *mt, *name;          /* metatable; "candles" | "ticks" for metrics */
    const struct ingest_kind *items; /* decode, free, count (ingest.h) */
    void (*detail)(const void *batch, size_t i, struct detail *d);
};

static void detail_candle(const void *b, size_t i, struct detail *d)
{
    const struct candle *c = &((const struct candles_batch *)b)->items[i];
    *d = (struct detail){c->symbol, (int)c->tf, c->ts_original, c->error, c->status, c->bucket_us};
}

static void detail_tick(const void *b, size_t i, struct detail *d)
{
    const struct tick *t = &((const struct ticks_batch *)b)->items[i];
    *d = (struct detail){t->symbol, -1, t->ts_original, t->error, t->status, t->bucket_us};
}

static const struct kind CANDLES = {CANDLES_MT, "candles", &candles_kind, detail_candle};
static const struct kind TICKS = {TICKS_MT, "ticks", &ticks_kind, detail_tick};

static struct ud *check_batch(lua_State *L, int idx, const struct kind *k)
{
    struct ud *u = luaL_checkudata(L, idx, k->mt);
    if (!u->batch) luaL_argerror(L, idx, "batch already freed");
    return u;
}

/* The kind of the batch whose methods are running: upvalue 1. */
static const struct kind *kind_of(lua_State *L) { return lua_touserdata(L, lua_upvalueindex(1)); }

static int l_gc(lua_State *L)
{
    const struct kind *k = kind_of(L);
    struct ud *u = luaL_checkudata(L, 1, k->mt);
    ingest_batch_free(u->batch);
    u->batch = NULL;
    return 0;
}

static int l_len(lua_State *L)
{
    const struct kind *k = kind_of(L);
    const struct ingest_batch *b = check_batch(L, 1, k)->batch;
    lua_pushinteger(L, (lua_Integer)b->n);
    return 1;
}

static int l_decode(lua_State *L)
{
    const struct kind *k = kind_of(L);
    size_t len;
    const char *body = luaL_checklstring(L, 1, &len);
    struct ingest_opts o;
    struct ingest_offset so[MAX_SYMBOL_OFFSETS];
    read_opts(L, 2, &o, so);
    struct ud *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->batch = NULL;
    luaL_setmetatable(L, k->mt);
    char err[256];
    int status;
    if (ingest_decode(k->items, body, len, &o, &u->batch, &status, err, sizeof err) < 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        lua_pushinteger(L, status);
        return 3;
    }
    return 1;
}

/* The answer for batch b: the old API's keys, then details per item. */
static int answer(lua_State *L, const struct kind *k, const void *b)
{
    struct ingest_counts n;
    const struct ingest_batch *ib = b;
    ingest_count(k->items, ib->items, ib->n, &n);
    lua_createtable(L, 0, 7);
    push_counts(L, &n, k->name);
    lua_createtable(L, (int)ib->n, 0);
    char buf[40];
    for (size_t i = 0; i < ib->n; i++) {
        struct detail d;
        k->detail(b, i, &d);
        lua_createtable(L, 0, 6);
        lua_json_order(L, -1, detail_keys);
        set_str(L, "symbol", d.symbol);
        if (d.tf >= 0) set_str(L, "timeframe", ts_tf_name((enum ts_tf)d.tf));
        if (d.ts_original[0]) set_str(L, "ts_original", d.ts_original);
        else lua_json_pushnull(L), lua_setfield(L, -2, "ts_original");
        if (d.status == INGEST_REJECTED) {
            lua_json_pushnull(L);
            lua_setfield(L, -2, "ts_bucket");
            set_str(L, "error", d.error);
        } else {
            ts_format(d.bucket_us, buf, sizeof buf);
            set_str(L, "ts_bucket", buf);
        }
        set_str(L, "status", ingest_status_name(d.status));
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    if (ib->n == 0) lua_json_mark_array(L, -1); /* an empty list encodes as [] */
    lua_setfield(L, -2, "details");
    return 1;
}

static int l_answer(lua_State *L)
{
    const struct kind *k = kind_of(L);
    return answer(L, k, check_batch(L, 1, k)->batch);
}

static struct db_pool *pool_or_raise(lua_State *L)
{
    struct lvm_host *h = lvm_host(L);
    if (!h || !h->db) {
        raise_db(L, DB_UNAVAILABLE, "no database configured (set database.url or DATABASE_URL)");
        return NULL; /* not reached: raise_db does not return */
    }
    return h->db;
}

/* Drops the cached ranges of every (symbol, timeframe) the batch changed:
 * the keys "candles:<symbol>:<timeframe>:..." (README "Shared cache").
 * Duplicates changed nothing and keep their entries. Each pair is dropped
 * once (a batch holds few pairs; past 64 distinct ones, repeats are cheap
 * compared with the store). */
static void invalidate(struct lvm_host *h, const struct candles_batch *b)
{
    if (!h || !h->cache) return;
    const struct candle *seen[64];
    int nseen = 0;
    for (size_t i = 0; i < b->n; i++) {
        const struct candle *c = &b->items[i];
        if (c->status != INGEST_INSERTED && c->status != INGEST_UPDATED) continue;
        int k = 0;
        while (k < nseen && !(seen[k]->tf == c->tf && !strcmp(seen[k]->symbol, c->symbol))) k++;
        if (k < nseen) continue;
        if (nseen < 64) seen[nseen++] = c;
        char prefix[INGEST_SYMBOL_MAX + 32];
        int n = snprintf(prefix, sizeof prefix, "candles:%s:%s:", c->symbol, ts_tf_name((enum ts_tf)c->tf));
        cache_delete_prefix(h->cache, prefix, (size_t)n);
    }
}

/* ---- stores in a task ---- */

#define STORE_HELPERS 8

/* A store in flight for a task: a userdata on its stack, so it stays put
 * while the task is suspended. */
struct store {
    struct lvm_task *t;
    struct db_pool *p;
    void *batch;
    int candles; /* else ticks */
    enum candles_policy pol;
    const char *source; /* on the task's stack */
    struct candles_job *job;
    struct spool *spool; /* on_unavailable = "spool" and a spool is open; else NULL */
    int spool_tried;     /* the spool answered (queued, full or failed): it is not asked again */
    int append_only;     /* for a helper: the database failed already, only spool */
    int rc;
    char err[1024];
    struct store *next; /* in the helpers' queue */
};

/* Queues st's batch in the spool (only_if_busy: only behind batches already
 * there) and sets st->rc from the outcome: DB_OK with the items "queued", or
 * DB_UNAVAILABLE with why. Returns the spool's result. Blocks for the
 * fdatasync. */
static int spool_put(struct store *st, int only_if_busy)
{
    char serr[512];
    int r = st->candles ? spool_append_candles(st->spool, st->batch, st->pol, st->source, only_if_busy, serr, sizeof serr)
                        : spool_append_ticks(st->spool, st->batch, only_if_busy, serr, sizeof serr);
    if (r == SPOOL_IDLE) return r;
    st->spool_tried = 1;
    char why[sizeof st->err];
    snprintf(why, sizeof why, "%s", only_if_busy ? "the spool holds batches not stored yet" : st->err);
    if (r == SPOOL_OK) st->rc = DB_OK;
    else if (r == SPOOL_FULL)
        st->rc = DB_UNAVAILABLE,
        snprintf(st->err, sizeof st->err, "%.700s; the spool is full (spool.max_bytes), nothing queued: retry later", why);
    else
        st->rc = DB_UNAVAILABLE, snprintf(st->err, sizeof st->err, "%.500s; the spool failed: %.400s", why, serr);
    return r;
}

/* The whole store of st, blocking (a helper thread, or a caller outside a
 * task): behind the spool while it holds batches, else the database, then
 * the spool when the database is unavailable. */
static void store_blocking(struct store *st)
{
    if (st->append_only) {
        spool_put(st, 0);
        return;
    }
    if (st->spool && spool_pending(st->spool) > 0 && spool_put(st, 1) != SPOOL_IDLE) return;
    st->rc = st->candles ? candles_store(st->p, st->batch, st->pol, st->source, st->err, sizeof st->err)
                         : ticks_store(st->p, st->batch, st->err, sizeof st->err);
    if (st->rc == DB_UNAVAILABLE && st->spool) spool_put(st, 0);
}

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct store *head, **tail;
    int threads, idle;
} helpers = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, NULL, &helpers.head, 0, 0};

static void *helper_main(void *arg)
{
    pthread_mutex_lock(&helpers.mu);
    for (;;) {
        while (!helpers.head) {
            helpers.idle++;
            pthread_cond_wait(&helpers.cv, &helpers.mu);
            helpers.idle--;
        }
        struct store *st = helpers.head;
        helpers.head = st->next;
        if (!helpers.head) helpers.tail = &helpers.head;
        pthread_mutex_unlock(&helpers.mu);
        store_blocking(st);
        lvm_task_wake(st->t);
        pthread_mutex_lock(&helpers.mu);
    }
    return NULL;
}

/* Queues st for a helper; 0, or -1 when no helper thread can run it. */
static int helpers_submit(struct store *st)
{
    pthread_mutex_lock(&helpers.mu);
    st->next = NULL;
    *helpers.tail = st;
    helpers.tail = &st->next;
    if (helpers.idle == 0 && helpers.threads < STORE_HELPERS) {
        pthread_t th;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&th, &a, helper_main, NULL) == 0) helpers.threads++;
        pthread_attr_destroy(&a);
    }
    int ok = helpers.threads > 0;
    if (ok) pthread_cond_signal(&helpers.cv);
    else helpers.head = NULL, helpers.tail = &helpers.head;
    pthread_mutex_unlock(&helpers.mu);
    return ok ? 0 : -1;
}

static void store_wake(void *ud)
{
    lvm_task_wake(ud);
}

static int helper_k(lua_State *L, int status, lua_KContext ctx);

/* After a wait: the store's result, then the answer (batch at index 1).
 * A single candle the database could not take goes to the spool on a
 * helper thread (the fdatasync must not hold the worker). */
static int store_done(lua_State *L, struct store *st, lua_KContext ctx)
{
    if (st->rc == DB_UNAVAILABLE && st->spool && !st->spool_tried) {
        st->append_only = 1;
        if (helpers_submit(st) == 0) return lvm_task_yield(L, ctx, helper_k);
    }
    if (st->rc != DB_OK) return raise_db(L, st->rc, st->err);
    if (st->candles) invalidate(lvm_host(L), st->batch);
    return answer(L, st->candles ? &CANDLES : &TICKS, st->batch);
}

static int helper_k(lua_State *L, int status, lua_KContext ctx)
{
    return store_done(L, lua_touserdata(L, (int)ctx), ctx);
}

static int single_k(lua_State *L, int status, lua_KContext ctx)
{
    struct store *st = lua_touserdata(L, (int)ctx);
    st->rc = candles_job_step(st->job, st->err, sizeof st->err);
    if (st->rc == DB_PENDING) return lvm_task_yield(L, ctx, single_k);
    st->job = NULL;
    return store_done(L, st, ctx);
}

/* Stores the batch at index 1 in task t, yielding while it waits. While
 * the spool holds batches, a store that may be spooled goes to a helper
 * straight away (queued behind them there, or stored if it drained). */
static int store_in_task(lua_State *L, struct lvm_task *t, int candles, enum candles_policy pol,
                         const char *source, struct spool *spool)
{
    struct store *st = lua_newuserdatauv(L, sizeof *st, 0);
    memset(st, 0, sizeof *st);
    int si = lua_gettop(L);
    st->t = t;
    st->p = pool_or_raise(L);
    st->batch = check_batch(L, 1, candles ? &CANDLES : &TICKS)->batch;
    st->candles = candles;
    st->pol = pol;
    st->source = source;
    st->spool = spool;
    if (candles && !(spool && spool_pending(spool) > 0)) {
        st->rc = candles_store_start(st->p, st->batch, pol, source, lvm_task_deadline_ms(t), store_wake, t,
                                     &st->job, st->err, sizeof st->err);
        if (st->rc == DB_PENDING) return lvm_task_yield(L, si, single_k);
        if (st->rc != CANDLES_NOT_SINGLE) return store_done(L, st, si);
    }
    if (helpers_submit(st) != 0) return raise_db(L, DB_UNAVAILABLE, "no thread to store the batch; retry later");
    return lvm_task_yield(L, si, helper_k);
}

/* Reads the store options at idx (may be absent): policy and source for
 * candles, on_unavailable for both. *spool is the spool to use, or NULL. */
static void read_store_opts(lua_State *L, int idx, const char *fn, enum candles_policy *pol, const char **source,
                            struct spool **spool)
{
    *spool = NULL;
    if (lua_isnoneornil(L, idx)) return;
    luaL_checktype(L, idx, LUA_TTABLE);
    if (pol && lua_getfield(L, idx, "policy") != LUA_TNIL) {
        const char *s = luaL_checkstring(L, -1);
        if (candles_policy_parse(s, pol) < 0)
            luaL_error(L, "%s: policy must be merge, ignore or replace, got \"%s\"", fn, s);
    }
    if (source && lua_getfield(L, idx, "source") != LUA_TNIL) *source = luaL_checkstring(L, -1);
    if (lua_getfield(L, idx, "on_unavailable") != LUA_TNIL) {
        const char *s = luaL_checkstring(L, -1);
        if (!strcmp(s, "spool")) {
            struct lvm_host *h = lvm_host(L);
            *spool = h && h->db ? h->spool : NULL; /* no spool (run, check, spool.enabled off): as "error" */
        } else if (strcmp(s, "error")) {
            luaL_error(L, "%s: on_unavailable must be \"error\" or \"spool\", got \"%s\"", fn, s);
        }
    }
}

/* Outside a task: the same path, blocking. */
static int store_here(lua_State *L, int candles, void *b, enum candles_policy pol, const char *source,
                      struct spool *spool)
{
    struct store st = {.p = pool_or_raise(L), .batch = b, .candles = candles, .pol = pol, .source = source,
                       .spool = spool};
    long long t0 = clock_ns();
    store_blocking(&st);
    lvm_acct(L)->wait_ns += clock_ns() - t0;
    if (st.rc != DB_OK) return raise_db(L, st.rc, st.err);
    if (candles) invalidate(lvm_host(L), b);
    return answer(L, candles ? &CANDLES : &TICKS, b);
}

/* Stores the batch at index 1 (candles, else ticks) and answers. */
static int store_batch(lua_State *L, int candles, enum candles_policy pol, const char *source,
                       struct spool *spool)
{
    const struct kind *k = candles ? &CANDLES : &TICKS;
    void *b = check_batch(L, 1, k)->batch;
    if (((const struct ingest_batch *)b)->nvalid) {
        if (lvm_task_dead(L)) return raise_db(L, DB_TIMEOUT, DEAD_MSG);
        struct lvm_task *t = lvm_task_of(L);
        lvm_acct(L)->statements++;
        if (t) return store_in_task(L, t, candles, pol, source, spool);
        return store_here(L, candles, b, pol, source, spool);
    }
    return answer(L, k, b);
}

static int l_candles_store(lua_State *L)
{
    enum candles_policy pol = CANDLES_MERGE;
    const char *source = "ea";
    struct spool *spool;
    check_batch(L, 1, &CANDLES);
    read_store_opts(L, 2, "tf.candles.store", &pol, &source, &spool);
    return store_batch(L, 1, pol, source, spool);
}

static int l_ticks_store(lua_State *L)
{
    struct spool *spool;
    check_batch(L, 1, &TICKS);
    read_store_opts(L, 2, "tf.ticks.store", NULL, NULL, &spool);
    return store_batch(L, 0, CANDLES_MERGE, NULL, spool);
}

/* Registers k's metatable and returns its library (decode, store, answer);
 * the generic functions get k as their upvalue. */
static int open_kind(lua_State *L, const struct kind *k, lua_CFunction store)
{
    if (luaL_newmetatable(L, k->mt)) {
        lua_pushlightuserdata(L, (void *)k);
        lua_pushcclosure(L, l_gc, 1);
        lua_setfield(L, -2, "__gc");
        lua_tf_seal(L);
        lua_pushlightuserdata(L, (void *)k);
        lua_pushcclosure(L, l_len, 1);
        lua_setfield(L, -2, "__len");
        lua_createtable(L, 0, 1);
        lua_pushlightuserdata(L, (void *)k);
        lua_pushcclosure(L, l_answer, 1);
        lua_setfield(L, -2, "answer");
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    lua_createtable(L, 0, 3);
    lua_pushlightuserdata(L, (void *)k);
    lua_pushcclosure(L, l_decode, 1);
    lua_setfield(L, -2, "decode");
    lua_pushcfunction(L, store);
    lua_setfield(L, -2, "store");
    lua_pushlightuserdata(L, (void *)k);
    lua_pushcclosure(L, l_answer, 1);
    lua_setfield(L, -2, "answer");
    return 1;
}

int luaopen_tf_candles(lua_State *L) { return open_kind(L, &CANDLES, l_candles_store); }

int luaopen_tf_ticks(lua_State *L) { return open_kind(L, &TICKS, l_ticks_store); }
