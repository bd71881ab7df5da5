/* tf.cache: the process-wide cache (cache.c, lvm_host(L)->cache) for plugins,
 * jobs and `tickforge run`.
 *   tf.cache.get(key) -> value | nil          tf.cache.set(key, value [, ttl_s]) -> true | false,
 * err tf.cache.get_or_load(key, ttl_s, loader) -> value (one loader per key at a time)
 *   tf.cache.delete(key) -> bool              tf.cache.delete_prefix(prefix) -> count
 *   tf.cache.stats() -> { hits, misses, hit_rate, entries, bytes, max_bytes, evictions, expired,
 * prefixes } Values (strings, numbers, booleans, nested tables) are stored serialized, so nothing
 * is ever shared between VMs; a get returns a fresh copy. */
#include <lauxlib.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "cache.h"
#include "config.h"
#include "lua_tf.h"
#include "lvm.h"
#include "mem.h"

#define STATE_MT "tf.cache.state"
#define FLIGHT_MT "tf.cache.flight"
#define MAX_DEPTH 64
#define DEFAULT_WAIT_MS 5000

/* Encoding: one tag byte, then
 *   'f' 't'     false, true
 *   'i' int64   'd' double     (native byte order: the bytes never leave the process)
 *   's' u32 len, bytes
 *   'T' u32 narr, u32 nhash, narr values (keys 1..narr), nhash key/value pairs */

struct enc {
    unsigned char *p;
    size_t len, cap, max;
    char *err;
    size_t errlen;
    int too_big; /* failed because of max, not because of the value's kind */
};

static int enc_put(struct enc *e, const void *d, size_t n)
{
    if (e->len + n > e->max) {
        snprintf(e->err, e->errlen, "the value is larger than cache.max_memory (%zu bytes)",
                 e->max);
        e->too_big = 1;
        return -1;
    }
    if (e->len + n > e->cap) {
        size_t cap = e->cap ? e->cap : 256;
        while (cap < e->len + n)
            cap *= 2;
        unsigned char *q = mem_realloc(e->p, cap);
        if (!q) {
            snprintf(e->err, e->errlen, "out of memory");
            return -1;
        }
        e->p = q;
        e->cap = cap;
    }
    memcpy(e->p + e->len, d, n);
    e->len += n;
    return 0;
}

static int enc_tag(struct enc *e, char tag)
{
    return enc_put(e, &tag, 1);
}

static int enc_u32(struct enc *e, size_t v)
{
    uint32_t u = (uint32_t)v;
    return enc_put(e, &u, 4);
}

/* Encodes the value at idx. Never raises (so the C buffer cannot leak):
 * -1 with a message naming where the bad value is (path) on failure. */
static int encode(lua_State *L, int idx, struct enc *e, int depth, const char *path)
{
    switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN:
        return enc_tag(e, lua_toboolean(L, idx) ? 't' : 'f');
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            int64_t i = (int64_t)lua_tointeger(L, idx);
            return enc_tag(e, 'i') || enc_put(e, &i, 8);
        } else {
            double d = (double)lua_tonumber(L, idx);
            return enc_tag(e, 'd') || enc_put(e, &d, 8);
        }
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        if (n > UINT32_MAX) break;
        return enc_tag(e, 's') || enc_u32(e, n) || enc_put(e, s, n);
    }
    case LUA_TTABLE: {
        if (depth >= MAX_DEPTH) {
            snprintf(e->err, e->errlen, "%s: tables nested deeper than %d (a cycle?)", path,
                     MAX_DEPTH);
            return -1;
        }
        if (!lua_checkstack(L, 4)) {
            snprintf(e->err, e->errlen, "out of memory");
            return -1;
        }
        idx = lua_absindex(L, idx);
        size_t narr = 0, nhash = 0;
        while (lua_rawgeti(L, idx, (lua_Integer)narr + 1) != LUA_TNIL) {
            lua_pop(L, 1);
            narr++;
        }
        lua_pop(L, 1);
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            lua_pop(L, 1);
            if (!(lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1 &&
                  (size_t)lua_tointeger(L, -1) <= narr))
                nhash++;
        }
        if (enc_tag(e, 'T') || enc_u32(e, narr) || enc_u32(e, nhash)) return -1;
        char sub[128];
        for (size_t i = 1; i <= narr; i++) {
            lua_rawgeti(L, idx, (lua_Integer)i);
            snprintf(sub, sizeof sub, "%s[%zu]", path, i);
            int rc = encode(L, -1, e, depth + 1, sub);
            lua_pop(L, 1);
            if (rc) return -1;
        }
        lua_pushnil(L);
        while (lua_next(L, idx)) {
            if (lua_isinteger(L, -2) && lua_tointeger(L, -2) >= 1 &&
                (size_t)lua_tointeger(L, -2) <= narr) {
                lua_pop(L, 1);
                continue;
            }
            int kt = lua_type(L, -2);
            if (kt == LUA_TSTRING)
                snprintf(sub, sizeof sub, "%s.%s", path, lua_tostring(L, -2));
            else if (kt == LUA_TNUMBER)
                snprintf(sub, sizeof sub, "%s[%s]", path,
                         lua_isinteger(L, -2) ? "integer" : "number");
            else
                snprintf(sub, sizeof sub, "%s[%s]", path, lua_typename(L, kt));
            if (kt != LUA_TSTRING && kt != LUA_TNUMBER && kt != LUA_TBOOLEAN) {
                snprintf(e->err, e->errlen,
                         "%s: a %s key cannot be cached (keys: strings, numbers, booleans)", sub,
                         lua_typename(L, kt));
                lua_pop(L, 2);
                return -1;
            }
            if (encode(L, -2, e, depth + 1, sub) || encode(L, -1, e, depth + 1, sub)) {
                lua_pop(L, 2);
                return -1;
            }
            lua_pop(L, 1);
        }
        return 0;
    }
    default:
        break;
    }
    snprintf(e->err, e->errlen, "%s: a %s cannot be cached (strings, numbers, booleans, tables)",
             path, luaL_typename(L, idx));
    return -1;
}

/* A blob holding the value at idx (caller releases), or NULL with err;
 * *too_big tells a value over max from one that can never be cached. */
static struct cache_blob *to_blob(lua_State *L, int idx, size_t max, char *err, size_t errlen,
                                  int *too_big)
{
    struct enc e = {NULL, 0, 0, max, err, errlen, 0};
    struct cache_blob *b = NULL;
    if (encode(L, idx, &e, 0, "value") == 0 && !(b = cache_blob_new(e.p, e.len)))
        snprintf(err, errlen, "out of memory");
    mem_free(e.p);
    *too_big = e.too_big;
    return b;
}

struct dec {
    const unsigned char *p, *end;
};

static uint32_t dec_u32(struct dec *d)
{
    uint32_t u;
    memcpy(&u, d->p, 4);
    d->p += 4;
    return u;
}

/* Pushes the value encoded at d (written by encode, so trusted). May raise
 * a memory error: the caller keeps the blob where it can be released. */
static void decode(lua_State *L, struct dec *d)
{
    luaL_checkstack(L, 3, "tf.cache: value nested too deep");
    char tag = (char)*d->p++;
    switch (tag) {
    case 'f':
        lua_pushboolean(L, 0);
        break;
    case 't':
        lua_pushboolean(L, 1);
        break;
    case 'i': {
        int64_t i;
        memcpy(&i, d->p, 8);
        d->p += 8;
        lua_pushinteger(L, (lua_Integer)i);
        break;
    }
    case 'd': {
        double v;
        memcpy(&v, d->p, 8);
        d->p += 8;
        lua_pushnumber(L, (lua_Number)v);
        break;
    }
    case 's': {
        uint32_t n = dec_u32(d);
        lua_pushlstring(L, (const char *)d->p, n);
        d->p += n;
        break;
    }
    case 'T': {
        uint32_t narr = dec_u32(d), nhash = dec_u32(d);
        lua_createtable(L, (int)narr, (int)nhash);
        for (uint32_t i = 1; i <= narr; i++) {
            decode(L, d);
            lua_rawseti(L, -2, i);
        }
        for (uint32_t i = 0; i < nhash; i++) {
            decode(L, d);
            decode(L, d);
            lua_rawset(L, -3);
        }
        break;
    }
    default:
        luaL_error(L, "tf.cache: corrupt value (tag %d)", tag);
    }
}

/* Per-VM state, one userdata in the registry: the blob being decoded (so a
 * memory error while decoding cannot leak it: the next call or the VM's
 * close releases it) and whether this VM applied its config yet. */
struct state {
    struct cache_blob *decoding;
    int configured;
};

static int state_gc(lua_State *L)
{
    struct state *s = luaL_checkudata(L, 1, STATE_MT);
    cache_blob_release(s->decoding);
    s->decoding = NULL;
    return 0;
}

static struct state *state_of(lua_State *L)
{
    lua_getfield(L, LUA_REGISTRYINDEX, STATE_MT "#");
    struct state *s = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return s;
}

/* The host's cache, with this generation's cache.max_memory applied the
 * first time a VM uses it (unless a newer generation applied its own). Raises when the host has
 * none (only VMs built without main's host, such as unit tests). */
static struct cache *cache_of(lua_State *L)
{
    struct lvm_host *h = lvm_host(L);
    if (!h || !h->cache) lua_tf_raise(L, "unavailable", "tf.cache: no cache in this process");
    struct state *s = state_of(L);
    if (s && !s->configured) {
        const struct lvm_gen *g = lvm_gen_of(L);
        if (g && g->cfg) cache_configure(h->cache, g->cfg->cache_max_memory, g->id);
        s->configured = 1;
    }
    return h->cache;
}

static size_t max_value(lua_State *L)
{
    const struct config *cfg = lvm_config(L);
    return cfg ? cfg->cache_max_memory : (size_t)64 << 20;
}

/* Pushes the value in b and releases b. */
static void push_blob(lua_State *L, struct cache_blob *b)
{
    struct state *s = state_of(L);
    if (s) {
        cache_blob_release(s->decoding); /* left by a decode that raised */
        s->decoding = b;
    }
    struct dec d = {b->data, b->data + b->len};
    decode(L, &d);
    if (s) s->decoding = NULL;
    cache_blob_release(b);
}

static const char *check_key(lua_State *L, int idx, size_t *len)
{
    const char *k = luaL_checklstring(L, idx, len);
    if (*len == 0 || *len > CACHE_KEY_MAX)
        luaL_argerror(
            L, idx,
            lua_pushfstring(L, "a key must be 1..%d bytes, got %d", CACHE_KEY_MAX, (int)*len));
    return k;
}

static int64_t check_ttl(lua_State *L, int idx)
{
    if (lua_isnoneornil(L, idx)) return 0;
    lua_Number t = luaL_checknumber(L, idx);
    if (!(t >= 0 && t <= 315360000)) /* ten years */
        luaL_argerror(L, idx, "ttl must be 0 (no expiry) .. 315360000 seconds");
    int64_t ms = (int64_t)(t * 1000 + 0.5);
    return t > 0 && ms == 0 ? 1 : ms;
}

static int l_get(lua_State *L)
{
    size_t klen;
    const char *k = check_key(L, 1, &klen);
    struct cache_blob *b = cache_get(cache_of(L), k, klen);
    if (!b)
        lua_pushnil(L);
    else
        push_blob(L, b);
    return 1;
}

static int l_set(lua_State *L)
{
    size_t klen;
    const char *k = check_key(L, 1, &klen);
    int64_t ttl = check_ttl(L, 3);
    struct cache *c = cache_of(L);
    if (lua_isnoneornil(L, 2)) { /* set(k, nil) forgets k */
        cache_delete(c, k, klen);
        lua_pushboolean(L, 1);
        return 1;
    }
    char err[256];
    int too_big;
    struct cache_blob *b = to_blob(L, 2, max_value(L), err, sizeof err, &too_big);
    if (!b && !too_big) return luaL_error(L, "tf.cache.set(\"%s\"): %s", k, err);
    int rc = b ? cache_set(c, k, klen, b, ttl, err, sizeof err) : -1;
    cache_blob_release(b);
    if (rc) { /* too large: not an error of the program, the cache is just too small */
        cache_delete(c, k, klen); /* an old value must not outlive the new one */
        lua_pushboolean(L, 0);
        lua_pushstring(L, err);
        return 2;
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* ---- get_or_load ----
 * Stack while loading: 1 key, 2 ttl, 3 loader, 4 the flight guard, 5 the
 * waiter (a handler task) or nil, 6 the loader's result (or error). The
 * loader runs under lua_pcallk so that it may yield (the event-driven core):
 * load_done is the continuation and also the code after a call that did not
 * yield. The guard ends the flight as failed if the coroutine is collected
 * without being resumed. In a task, another caller's load is awaited by
 * yielding (cache_load_begin_as with the waiter, continuing in waited_k);
 * elsewhere cache_load_begin blocks, bounded by cache.load_timeout_ms. */

struct flight_guard {
    struct cache *cache;
    struct cache_flight *flight; /* NULL once ended */
};

struct task_wait {
    struct cache_waiter w;
    struct lvm_task *t;
};

#define WAIT_MT "tf.cache.wait"

static void guard_end(struct flight_guard *g, struct cache_blob *v, int64_t ttl, int failed,
                      char *err, size_t errlen)
{
    struct cache_flight *f = g->flight;
    g->flight = NULL;
    if (f) cache_load_end(g->cache, f, v, ttl, failed, err, errlen);
}

static int flight_gc(lua_State *L)
{
    char err[8];
    guard_end(luaL_checkudata(L, 1, FLIGHT_MT), NULL, 0, 1, err, sizeof err);
    return 0;
}

static int wait_gc(lua_State *L)
{
    cache_waiter_clear(&((struct task_wait *)luaL_checkudata(L, 1, WAIT_MT))->w);
    return 0;
}

static void wait_wake(void *ud)
{
    lvm_task_wake(((struct task_wait *)ud)->t);
}

static int wait_abort(void *ud) /* the task's client left */
{
    return cache_wait_cancel(&((struct task_wait *)ud)->w);
}

static int load_done(lua_State *L, int status, lua_KContext ctx)
{
    (void)ctx;
    struct flight_guard *g = luaL_checkudata(L, 4, FLIGHT_MT);
    char err[256];
    if (status != LUA_OK && status != LUA_YIELD) {
        guard_end(g, NULL, 0, 1, err, sizeof err);
        return lua_error(L); /* the loader's error, unchanged */
    }
    if (lua_isnil(L, 6)) {
        guard_end(g, NULL, 0, 0, err, sizeof err);
        return 1;
    }
    int too_big;
    struct cache_blob *b = to_blob(L, 6, max_value(L), err, sizeof err, &too_big);
    if (!b) {
        char ignored[8];
        guard_end(g, NULL, 0, 1, ignored, sizeof ignored); /* waiters load it themselves */
        if (too_big) return 1;                             /* answered, not cached */
        return luaL_error(L, "tf.cache.get_or_load(\"%s\"): the loader returned %s",
                          lua_tostring(L, 1), err);
    }
    guard_end(g, b, check_ttl(L, 2), 0, err, sizeof err);
    cache_blob_release(b);
    return 1; /* the loader's own value: it is this VM's */
}

static int waited_k(lua_State *L, int status, lua_KContext ctx);

/* Looks the key up and answers, loads it, or (in a task) waits for another
 * caller's load. The stack is as described above, up to 5. */
static int try_load(lua_State *L)
{
    size_t klen;
    const char *k = lua_tolstring(L, 1, &klen);
    struct cache *c = cache_of(L);
    const struct config *cfg = lvm_config(L);
    int wait_ms = cfg ? cfg->cache_load_timeout_ms : DEFAULT_WAIT_MS;
    struct flight_guard *g = lua_touserdata(L, 4);
    struct task_wait *tw = lua_touserdata(L, 5);
    struct cache_blob *b;
    struct cache_flight *f;
    enum cache_load r = tw ? cache_load_begin_as(c, k, klen, wait_ms, tw->t, &tw->w, &b, &f)
                           : cache_load_begin(c, k, klen, wait_ms, &b, &f);
    switch (r) {
    case CACHE_HIT:
        push_blob(L, b);
        return 1;
    case CACHE_NIL:
        lua_pushnil(L);
        return 1;
    case CACHE_WAIT:
        tw->t->abort = wait_abort;
        tw->t->abort_ud = tw;
        return lvm_task_yield(L, 0, waited_k);
    case CACHE_TIMEOUT:
        return lua_tf_raise(
            L, "timeout",
            "tf.cache.get_or_load(\"%s\"): another caller has been loading it for %d ms "
            "(cache.load_timeout_ms)",
            k, wait_ms);
    case CACHE_RECURSIVE:
        return luaL_error(
            L, "tf.cache.get_or_load(\"%s\"): the loader of this key asked for the same key", k);
    case CACHE_LOAD:
        break;
    }
    g->flight = f;
    lua_pushvalue(L, 3);
    return load_done(L, lua_pcallk(L, 0, 1, 0, 0, load_done), 0);
}

/* A task resumed after another caller's load ended (or its client left). */
static int waited_k(lua_State *L, int status, lua_KContext ctx)
{
    (void)status;
    (void)ctx;
    if (lvm_task_dead(L)) {
        cache_waiter_clear(&((struct task_wait *)lua_touserdata(L, 5))->w);
        return lua_tf_raise(
            L, "timeout",
            "tf.cache.get_or_load(\"%s\"): the request is over (past its time limit, "
            "or its client left)",
            lua_tostring(L, 1));
    }
    return try_load(L);
}

static int l_get_or_load(lua_State *L)
{
    size_t klen;
    check_key(L, 1, &klen);
    check_ttl(L, 2);
    luaL_checktype(L, 3, LUA_TFUNCTION);
    lua_settop(L, 3);
    /* the guard first: allocating it cannot fail after the flight exists */
    struct flight_guard *g = lua_newuserdatauv(L, sizeof *g, 0);
    g->cache = cache_of(L);
    g->flight = NULL;
    luaL_setmetatable(L, FLIGHT_MT);
    struct lvm_task *t = lvm_task_of(L);
    if (t) {
        struct task_wait *tw = lua_newuserdatauv(L, sizeof *tw, 0);
        memset(tw, 0, sizeof *tw);
        tw->t = t;
        tw->w.wake = wait_wake;
        tw->w.ud = tw;
        luaL_setmetatable(L, WAIT_MT);
    } else if (lvm_task_dead(L)) { /* a dead task must not block its worker on someone's load */
        return lua_tf_raise(
            L, "timeout",
            "tf.cache.get_or_load(\"%s\"): the request is over (past its time limit, "
            "or its client left)",
            lua_tostring(L, 1));
    } else {
        lua_pushnil(L);
    }
    return try_load(L);
}

static int l_delete(lua_State *L)
{
    size_t klen;
    const char *k = check_key(L, 1, &klen);
    lua_pushboolean(L, cache_delete(cache_of(L), k, klen));
    return 1;
}

static int l_delete_prefix(lua_State *L)
{
    size_t plen;
    const char *p = luaL_checklstring(L, 1, &plen);
    if (plen == 0) luaL_argerror(L, 1, "the prefix must not be empty (it would drop every entry)");
    lua_pushinteger(L, (lua_Integer)cache_delete_prefix(cache_of(L), p, plen));
    return 1;
}

static void set_int(lua_State *L, const char *k, uint64_t v)
{
    lua_pushinteger(L, (lua_Integer)v);
    lua_setfield(L, -2, k);
}

static int l_stats(lua_State *L)
{
    struct cache_stats *s = lua_newuserdatauv(L, sizeof *s, 0); /* collected with the call */
    cache_stats(cache_of(L), s);
    lua_createtable(L, 0, 12);
    set_int(L, "hits", s->hits);
    set_int(L, "misses", s->misses);
    lua_pushnumber(L, s->hits + s->misses ? (double)s->hits / (double)(s->hits + s->misses) : 0);
    lua_setfield(L, -2, "hit_rate");
    set_int(L, "entries", s->entries);
    set_int(L, "bytes", s->bytes);
    set_int(L, "max_bytes", s->max_bytes);
    set_int(L, "evictions", s->evictions);
    set_int(L, "expired", s->expired);
    set_int(L, "loads", s->loads);
    set_int(L, "waits", s->waits);
    lua_createtable(L, 0, s->nprefixes);
    for (int i = 0; i < s->nprefixes; i++) {
        lua_createtable(L, 0, 4);
        set_int(L, "hits", s->prefixes[i].hits);
        set_int(L, "misses", s->prefixes[i].misses);
        set_int(L, "entries", s->prefixes[i].entries);
        set_int(L, "bytes", s->prefixes[i].bytes);
        lua_setfield(L, -2, s->prefixes[i].prefix);
    }
    lua_setfield(L, -2, "prefixes");
    return 1;
}

int luaopen_tf_cache(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"get", l_get},
        {"set", l_set},
        {"get_or_load", l_get_or_load},
        {"delete", l_delete},
        {"delete_prefix", l_delete_prefix},
        {"stats", l_stats},
        {NULL, NULL},
    };
    if (luaL_newmetatable(L, FLIGHT_MT)) {
        lua_pushcfunction(L, flight_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, WAIT_MT)) {
        lua_pushcfunction(L, wait_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    if (luaL_newmetatable(L, STATE_MT)) {
        lua_pushcfunction(L, state_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    struct state *s = lua_newuserdatauv(L, sizeof *s, 0);
    memset(s, 0, sizeof *s);
    luaL_setmetatable(L, STATE_MT);
    lua_setfield(L, LUA_REGISTRYINDEX, STATE_MT "#");
    luaL_newlib(L, fns);
    return 1;
}
