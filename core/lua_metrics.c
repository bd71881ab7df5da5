/* tf.metrics: plugin counters, gauges and histograms in the one /metrics.
 *   local c = tf.metrics.counter(name, help, { labels = {"channel"}, max_series = 1000 })
 *   c:inc([n = 1], [labels])          -- labels: { channel = "x" }
 *   local g = tf.metrics.gauge(name, help, opts)      g:set(v, labels) g:inc(n, labels) g:dec(n,
 * labels) local h = tf.metrics.histogram(name, help, { labels = {...}, buckets = {0.005, ...} })
 * h:observe(v, labels) Declared while a plugin loads; a family is process-wide (metrics.c), so a
 * reload that declares it again gets the same one and its values. A bad
 * name, label or value raises; a label set past max_series is dropped and
 * counted in tf_metrics_dropped_total{metric="name"}. */
#include <lauxlib.h>
#include <string.h>

#include "lua_tf.h"
#include "lvm.h"
#include "metrics.h"

#define METRIC_MT "tf.metrics.metric"
#define DEFAULT_MAX_SERIES 1000

struct metric {
    struct metrics_family *f; /* process lifetime */
};

static const char *const kind_names[] = {"counter", "gauge", "histogram"};

static int declare(lua_State *L, enum metrics_kind kind)
{
    const char *name = luaL_checkstring(L, 1);
    const char *help = luaL_checkstring(L, 2);
    if (!lua_isnoneornil(L, 3)) luaL_checktype(L, 3, LUA_TTABLE);
    if (!lvm_loading(L) && lvm_is_plugin(L))
        return luaL_error(
            L,
            "tf.metrics.%s(\"%s\"): declare metrics while the plugin loads (at its top level), "
            "not in a handler or job",
            kind_names[kind], name);
    const char *labels[METRICS_MAX_LABELS];
    double buckets[METRICS_MAX_BUCKETS];
    struct metrics_decl d = {name, help, kind, labels, 0, NULL, 0, DEFAULT_MAX_SERIES};
    if (lua_istable(L, 3)) {
        if (lua_getfield(L, 3, "labels") != LUA_TNIL) {
            luaL_checktype(L, -1, LUA_TTABLE);
            lua_Integer n = luaL_len(L, -1);
            if (n > METRICS_MAX_LABELS)
                return luaL_error(L, "tf.metrics.%s(\"%s\"): at most %d labels", kind_names[kind],
                                  name, METRICS_MAX_LABELS);
            for (lua_Integer i = 1; i <= n; i++) {
                if (lua_rawgeti(L, -1, i) != LUA_TSTRING)
                    return luaL_error(L, "tf.metrics.%s(\"%s\"): labels[%d] must be a string",
                                      kind_names[kind], name, (int)i);
                labels[d.nlabels++] = lua_tostring(L, -1);
                lua_pop(L, 1); /* still referenced by the labels table */
            }
        }
        if (lua_getfield(L, 3, "max_series") != LUA_TNIL) {
            if (!lua_isinteger(L, -1))
                return luaL_error(L, "tf.metrics.%s(\"%s\"): max_series must be an integer",
                                  kind_names[kind], name);
            lua_Integer m = lua_tointeger(L, -1);
            d.max_series = m < 0 ? 0 : m > 1000000 ? 1000000 : (int)m;
        }
        if (lua_getfield(L, 3, "buckets") != LUA_TNIL) {
            if (kind != METRICS_HISTOGRAM)
                return luaL_error(L, "tf.metrics.%s(\"%s\"): buckets are for histograms",
                                  kind_names[kind], name);
            luaL_checktype(L, -1, LUA_TTABLE);
            lua_Integer n = luaL_len(L, -1);
            if (n < 1 || n > METRICS_MAX_BUCKETS)
                return luaL_error(L,
                                  "tf.metrics.histogram(\"%s\"): buckets: give 1..%d upper bounds",
                                  name, METRICS_MAX_BUCKETS);
            for (lua_Integer i = 1; i <= n; i++) {
                if (lua_rawgeti(L, -1, i) != LUA_TNUMBER)
                    return luaL_error(L,
                                      "tf.metrics.histogram(\"%s\"): buckets[%d] must be a number",
                                      name, (int)i);
                buckets[d.nbuckets++] = lua_tonumber(L, -1);
                lua_pop(L, 1);
            }
            d.buckets = buckets;
        }
    }
    char err[256];
    struct metrics_family *f = metrics_declare(&d, err, sizeof err);
    if (!f) return luaL_error(L, "tf.metrics.%s: %s", kind_names[kind], err);
    struct metric *m = lua_newuserdatauv(L, sizeof *m, 0);
    m->f = f;
    luaL_setmetatable(L, METRIC_MT);
    return 1;
}

static int l_counter(lua_State *L)
{
    return declare(L, METRICS_COUNTER);
}
static int l_gauge(lua_State *L)
{
    return declare(L, METRICS_GAUGE);
}
static int l_histogram(lua_State *L)
{
    return declare(L, METRICS_HISTOGRAM);
}

/* Applies op with v to the series named by the labels table at idx. */
static int update(lua_State *L, struct metric *m, int idx, enum metrics_op op, double v,
                  const char *method)
{
    const char *const *names;
    int n = metrics_family_labels(m->f, &names);
    const char *values[METRICS_MAX_LABELS];
    if (lua_isnoneornil(L, idx)) {
        if (n)
            return luaL_error(L, "%s: labels missing (want %s%s)", method, names[0],
                              n > 1 ? ", ..." : "");
    } else {
        luaL_checktype(L, idx, LUA_TTABLE);
        for (int i = 0; i < n; i++) {
            int t = lua_getfield(L, idx, names[i]);
            if (t != LUA_TSTRING && t != LUA_TNUMBER && t != LUA_TBOOLEAN)
                return luaL_error(L, "%s: label %s: %s", method, names[i],
                                  t == LUA_TNIL ? "missing"
                                                : "must be a string, number or boolean");
            values[i] =
                t == LUA_TBOOLEAN ? (lua_toboolean(L, -1) ? "true" : "false") : lua_tostring(L, -1);
        }
        lua_pushnil(L);
        while (lua_next(L, idx)) { /* a label not declared is a typo, not a new dimension */
            lua_pop(L, 1);
            int known = 0;
            for (int i = 0; i < n && !known; i++)
                known = lua_type(L, -1) == LUA_TSTRING && !strcmp(lua_tostring(L, -1), names[i]);
            if (!known)
                return luaL_error(L, "%s: label %s was not declared", method,
                                  lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                                                                 : luaL_typename(L, -1));
        }
    }
    char err[256];
    if (metrics_update(m->f, values, op, v, err, sizeof err) < 0)
        return luaL_error(L, "%s: %s", method, err);
    return 0;
}

static struct metric *check_kind(lua_State *L, enum metrics_kind kind, const char *method)
{
    struct metric *m = luaL_checkudata(L, 1, METRIC_MT);
    if (metrics_family_kind(m->f) != kind)
        luaL_error(L, "%s: not a method of a %s", method, kind_names[metrics_family_kind(m->f)]);
    return m;
}

/* (n, labels) with n optional: m:inc(), m:inc(2), m:inc({a = "x"}), m:inc(2, {a = "x"}). */
static int inc_like(lua_State *L, double sign, const char *method)
{
    struct metric *m = luaL_checkudata(L, 1, METRIC_MT);
    if (metrics_family_kind(m->f) == METRICS_HISTOGRAM ||
        (sign < 0 && metrics_family_kind(m->f) != METRICS_GAUGE))
        return luaL_error(L, "%s: not a method of a %s", method,
                          kind_names[metrics_family_kind(m->f)]);
    if (lua_istable(L, 2)) return update(L, m, 2, METRICS_INC, sign, method);
    double n = luaL_optnumber(L, 2, 1);
    return update(L, m, 3, METRICS_INC, sign * n, method);
}

static int l_inc(lua_State *L)
{
    return inc_like(L, 1, "inc");
}
static int l_dec(lua_State *L)
{
    return inc_like(L, -1, "dec");
}

static int l_set(lua_State *L)
{
    struct metric *m = check_kind(L, METRICS_GAUGE, "set");
    return update(L, m, 3, METRICS_SET, luaL_checknumber(L, 2), "set");
}

static int l_observe(lua_State *L)
{
    struct metric *m = check_kind(L, METRICS_HISTOGRAM, "observe");
    return update(L, m, 3, METRICS_OBSERVE, luaL_checknumber(L, 2), "observe");
}

static int l_tostring(lua_State *L)
{
    struct metric *m = luaL_checkudata(L, 1, METRIC_MT);
    lua_pushfstring(L, "tf.metrics.%s: %p", kind_names[metrics_family_kind(m->f)], (void *)m->f);
    return 1;
}

int luaopen_tf_metrics(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"inc", l_inc}, {"dec", l_dec}, {"set", l_set}, {"observe", l_observe}, {NULL, NULL},
    };
    static const luaL_Reg fns[] = {
        {"counter", l_counter},
        {"gauge", l_gauge},
        {"histogram", l_histogram},
        {NULL, NULL},
    };
    if (luaL_newmetatable(L, METRIC_MT)) {
        luaL_newlib(L, methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, l_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
    luaL_newlib(L, fns);
    return 1;
}
