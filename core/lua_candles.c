/* tf.candles and tf.ticks: whole-batch MT5 ingest for plugins.
 *   local b, err, status = tf.candles.decode(body, { shape = "array"|"object"|"any",
 *        max_items = 5000, offset = seconds, symbol_offsets = { EURUSD = 7200 } })
 *   local answer = tf.candles.store(b, { policy = "merge"|"ignore"|"replace", source = "ea" })
 *   b:answer()  -- the answer table without storing; #b is the item count
 * tf.ticks.decode/store the same (no shape, no policy). decode returns nil,
 * message, 400|413 for a body that cannot be a batch. store raises the
 * tf.db error table ({code = "unavailable"|"timeout"|"error", message}) when the
 * database fails, and then nothing of the batch was stored. The per-item work
 * is C (candles.c, ticks.c); this file only converts. */
#include <lauxlib.h>
#include <stdio.h>
#include <string.h>

#include "candles.h"
#include "lua_json.h"
#include "lua_tf.h"
#include "lvm.h"
#include "mem.h"
#include "metrics.h"
#include "ticks.h"

#define CANDLES_MT "tf.candles.batch"
#define TICKS_MT "tf.ticks.batch"
#define MAX_SYMBOL_OFFSETS 256

struct ud {
    void *batch; /* struct candles_batch * or struct ticks_batch * */
};

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
static void read_opts(lua_State *L, int idx, struct candles_opts *o, struct candles_offset *so)
{
    memset(o, 0, sizeof *o);
    if (lua_isnoneornil(L, idx)) return;
    luaL_checktype(L, idx, LUA_TTABLE);
    if (lua_getfield(L, idx, "shape") != LUA_TNIL) {
        const char *s = luaL_checkstring(L, -1);
        if (!strcmp(s, "array")) o->shape = CANDLES_SHAPE_ARRAY;
        else if (!strcmp(s, "object")) o->shape = CANDLES_SHAPE_OBJECT;
        else if (!strcmp(s, "any")) o->shape = CANDLES_SHAPE_ANY;
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
            if (!sym || strlen(sym) > CANDLES_SYMBOL_MAX || !lua_isnumber(L, -1))
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

/* Marks the table on top as a JSON array through tf.json.array, so an empty
 * details list encodes as [] (harmless when tf.json is absent). */
static void mark_array(lua_State *L)
{
    int t = lua_gettop(L);
    if (lua_getglobal(L, "tf") == LUA_TTABLE && lua_getfield(L, -1, "json") == LUA_TTABLE &&
        lua_getfield(L, -1, "array") == LUA_TFUNCTION) {
        lua_pushvalue(L, t);
        lua_call(L, 1, 0);
    }
    lua_settop(L, t);
}

/* The old API's key order, so answers read as EAs' authors saw them. */
static const char *const answer_keys[] = {"ok", "received", "inserted", "duplicates", "updated", "rejected",
                                          "details", NULL};
static const char *const detail_keys[] = {"symbol", "timeframe", "ts_original", "ts_bucket", "status", "error",
                                          NULL};

static void push_counts(lua_State *L, const struct candles_counts *n, const char *kind)
{
    lua_json_order(L, -1, answer_keys);
    lua_pushboolean(L, 1);
    lua_setfield(L, -2, "ok");
    set_int(L, "received", n->received);
    set_int(L, "inserted", n->inserted);
    set_int(L, "duplicates", n->duplicates);
    set_int(L, "updated", n->updated);
    set_int(L, "rejected", n->rejected);
    char lab[64];
    static const char *names[] = {"inserted", "duplicate", "updated", "rejected"};
    const size_t vals[] = {n->inserted, n->duplicates, n->updated, n->rejected};
    for (int i = 0; i < 4; i++) {
        if (!vals[i]) continue;
        snprintf(lab, sizeof lab, "kind=\"%s\",status=\"%s\"", kind, names[i]);
        metrics_add("tf_ingest_items_total", lab, (double)vals[i], "Ingested items by kind and status");
    }
}

/* ---- candles ---- */

static struct candles_batch *check_candles(lua_State *L, int idx)
{
    struct ud *u = luaL_checkudata(L, idx, CANDLES_MT);
    if (!u->batch) luaL_argerror(L, idx, "batch already freed");
    return u->batch;
}

static int candles_gc(lua_State *L)
{
    struct ud *u = luaL_checkudata(L, 1, CANDLES_MT);
    candles_free(u->batch);
    u->batch = NULL;
    return 0;
}

static int candles_len(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)check_candles(L, 1)->n);
    return 1;
}

static int l_candles_decode(lua_State *L)
{
    size_t len;
    const char *body = luaL_checklstring(L, 1, &len);
    struct candles_opts o;
    struct candles_offset so[MAX_SYMBOL_OFFSETS];
    read_opts(L, 2, &o, so);
    struct ud *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->batch = NULL;
    luaL_setmetatable(L, CANDLES_MT);
    char err[256];
    int status;
    struct candles_batch *b;
    if (candles_decode(body, len, &o, &b, &status, err, sizeof err) < 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        lua_pushinteger(L, status);
        return 3;
    }
    u->batch = b;
    return 1;
}

static int candles_answer(lua_State *L, struct candles_batch *b)
{
    struct candles_counts n;
    candles_count(b, &n);
    lua_createtable(L, 0, 7);
    push_counts(L, &n, "candles");
    lua_createtable(L, (int)b->n, 0);
    char buf[40];
    for (size_t i = 0; i < b->n; i++) {
        const struct candle *c = &b->items[i];
        lua_createtable(L, 0, 6);
        lua_json_order(L, -1, detail_keys);
        set_str(L, "symbol", c->symbol);
        set_str(L, "timeframe", ts_tf_name((enum ts_tf)c->tf));
        if (c->ts_original[0]) set_str(L, "ts_original", c->ts_original);
        else lua_json_pushnull(L), lua_setfield(L, -2, "ts_original");
        if (c->status == CANDLES_REJECTED) {
            lua_json_pushnull(L);
            lua_setfield(L, -2, "ts_bucket");
            set_str(L, "error", c->error);
        } else {
            ts_format(c->bucket_us, buf, sizeof buf);
            set_str(L, "ts_bucket", buf);
        }
        set_str(L, "status", candles_status_name(c->status));
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    if (b->n == 0) mark_array(L);
    lua_setfield(L, -2, "details");
    return 1;
}

static int l_candles_answer(lua_State *L) { return candles_answer(L, check_candles(L, 1)); }

static struct db_pool *pool_or_raise(lua_State *L)
{
    struct lvm_host *h = lvm_host(L);
    if (!h || !h->db) {
        raise_db(L, DB_UNAVAILABLE, "no database configured (set database.url or DATABASE_URL)");
        return NULL; /* not reached: raise_db does not return */
    }
    return h->db;
}

static int l_candles_store(lua_State *L)
{
    struct candles_batch *b = check_candles(L, 1);
    enum candles_policy pol = CANDLES_MERGE;
    const char *source = "ea";
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        if (lua_getfield(L, 2, "policy") != LUA_TNIL) {
            const char *s = luaL_checkstring(L, -1);
            if (candles_policy_parse(s, &pol) < 0)
                return luaL_error(L, "tf.candles.store: policy must be merge, ignore or replace, got \"%s\"", s);
        }
        if (lua_getfield(L, 2, "source") != LUA_TNIL) source = luaL_checkstring(L, -1);
    }
    if (b->nvalid) {
        char err[1024];
        int rc = candles_store(pool_or_raise(L), b, pol, source, err, sizeof err);
        if (rc != DB_OK) return raise_db(L, rc, err);
    }
    return candles_answer(L, b);
}

/* ---- ticks ---- */

static struct ticks_batch *check_ticks(lua_State *L, int idx)
{
    struct ud *u = luaL_checkudata(L, idx, TICKS_MT);
    if (!u->batch) luaL_argerror(L, idx, "batch already freed");
    return u->batch;
}

static int ticks_gc(lua_State *L)
{
    struct ud *u = luaL_checkudata(L, 1, TICKS_MT);
    ticks_free(u->batch);
    u->batch = NULL;
    return 0;
}

static int ticks_len(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)check_ticks(L, 1)->n);
    return 1;
}

static int l_ticks_decode(lua_State *L)
{
    size_t len;
    const char *body = luaL_checklstring(L, 1, &len);
    struct candles_opts o;
    struct candles_offset so[MAX_SYMBOL_OFFSETS];
    read_opts(L, 2, &o, so);
    struct ud *u = lua_newuserdatauv(L, sizeof *u, 0);
    u->batch = NULL;
    luaL_setmetatable(L, TICKS_MT);
    char err[256];
    int status;
    struct ticks_batch *b;
    if (ticks_decode(body, len, &o, &b, &status, err, sizeof err) < 0) {
        lua_pushnil(L);
        lua_pushstring(L, err);
        lua_pushinteger(L, status);
        return 3;
    }
    u->batch = b;
    return 1;
}

static int ticks_answer(lua_State *L, struct ticks_batch *b)
{
    struct candles_counts n;
    ticks_count(b, &n);
    lua_createtable(L, 0, 7);
    push_counts(L, &n, "ticks");
    lua_createtable(L, (int)b->n, 0);
    char buf[40];
    for (size_t i = 0; i < b->n; i++) {
        const struct tick *t = &b->items[i];
        lua_createtable(L, 0, 5);
        lua_json_order(L, -1, detail_keys);
        set_str(L, "symbol", t->symbol);
        if (t->ts_original[0]) set_str(L, "ts_original", t->ts_original);
        else lua_json_pushnull(L), lua_setfield(L, -2, "ts_original");
        if (t->status == CANDLES_REJECTED) {
            lua_json_pushnull(L);
            lua_setfield(L, -2, "ts_bucket");
            set_str(L, "error", t->error);
        } else {
            ts_format(t->bucket_us, buf, sizeof buf);
            set_str(L, "ts_bucket", buf);
        }
        set_str(L, "status", candles_status_name(t->status));
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    if (b->n == 0) mark_array(L);
    lua_setfield(L, -2, "details");
    return 1;
}

static int l_ticks_answer(lua_State *L) { return ticks_answer(L, check_ticks(L, 1)); }

static int l_ticks_store(lua_State *L)
{
    struct ticks_batch *b = check_ticks(L, 1);
    if (b->nvalid) {
        char err[1024];
        int rc = ticks_store(pool_or_raise(L), b, err, sizeof err);
        if (rc != DB_OK) return raise_db(L, rc, err);
    }
    return ticks_answer(L, b);
}

static void new_batch_mt(lua_State *L, const char *name, lua_CFunction gc, lua_CFunction len,
                         lua_CFunction answer)
{
    if (luaL_newmetatable(L, name)) {
        lua_pushcfunction(L, gc);
        lua_setfield(L, -2, "__gc");
        lua_pushcfunction(L, len);
        lua_setfield(L, -2, "__len");
        lua_createtable(L, 0, 1);
        lua_pushcfunction(L, answer);
        lua_setfield(L, -2, "answer");
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
}

int luaopen_tf_candles(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"decode", l_candles_decode}, {"store", l_candles_store}, {"answer", l_candles_answer}, {NULL, NULL},
    };
    new_batch_mt(L, CANDLES_MT, candles_gc, candles_len, l_candles_answer);
    luaL_newlib(L, fns);
    return 1;
}

int luaopen_tf_ticks(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"decode", l_ticks_decode}, {"store", l_ticks_store}, {"answer", l_ticks_answer}, {NULL, NULL},
    };
    new_batch_mt(L, TICKS_MT, ticks_gc, ticks_len, l_ticks_answer);
    luaL_newlib(L, fns);
    return 1;
}
