/* tf.series userdata: a length and the doubles right after it, one block the
 * Lua GC owns. Indexing is 1-based like tables; s[i] out of range is nil;
 * slices and totable copy. Must never keep a C pointer into a series past
 * the life of its userdata, nor allocate outside the Lua allocator. */
#include "lua_series.h"

#include "lua_tf.h"

#include <math.h>
#include <stdint.h>

#include <lauxlib.h>

typedef struct {
    size_t n;
    double v[]; /* n doubles */
} Series;

#define SERIES_MAX ((SIZE_MAX - sizeof(Series)) / sizeof(double) / 2)

static void series_meta_push(lua_State *L);

static Series *series_new(lua_State *L, size_t n)
{
    if (n > SERIES_MAX) luaL_error(L, "series too long (%I)", (lua_Integer)n);
    Series *s = lua_newuserdatauv(L, sizeof(Series) + n * sizeof(double), 0);
    s->n = n;
    series_meta_push(L); /* works even if tf.series was never opened */
    lua_setmetatable(L, -2);
    return s;
}

double *lua_series_push(lua_State *L, size_t n)
{
    return series_new(L, n)->v;
}

double *lua_series_push_copy(lua_State *L, const double *src, size_t n)
{
    double *d = lua_series_push(L, n);
    for (size_t i = 0; i < n; i++)
        d[i] = src[i];
    return d;
}

/* Converts the array table at absolute index idx into a new series left on
 * top of the stack. */
static Series *series_from_table(lua_State *L, int idx)
{
    size_t n = (size_t)luaL_len(L, idx);
    Series *s = series_new(L, n);
    for (size_t i = 0; i < n; i++) {
        int isnum;
        int t = lua_geti(L, idx, (lua_Integer)i + 1);
        double x = lua_tonumberx(L, -1, &isnum);
        if (!isnum) {
            luaL_error(L, "series: element %I is %s, not a number", (lua_Integer)i + 1,
                       lua_typename(L, t));
        }
        lua_pop(L, 1);
        s->v[i] = x;
    }
    return s;
}

double *lua_series_test(lua_State *L, int idx, size_t *n)
{
    idx = lua_absindex(L, idx);
    Series *s = luaL_testudata(L, idx, LUA_SERIES_MT);
    if (!s && lua_type(L, idx) == LUA_TTABLE) {
        s = series_from_table(L, idx);
        lua_replace(L, idx); /* keeps the new series alive in the caller's frame */
    }
    *n = s ? s->n : 0;
    return s ? s->v : NULL;
}

double *lua_series_check(lua_State *L, int idx, size_t *n)
{
    double *d = lua_series_test(L, idx, n);
    if (!d) luaL_typeerror(L, idx, "tf.series or array of numbers");
    return d;
}

static Series *check(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, LUA_SERIES_MT);
}

static int series_len(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)check(L, 1)->n);
    return 1;
}

/* Relative 1-based index; negative counts from the end (-1 = last). */
static lua_Integer rel_index(lua_Integer i, size_t n)
{
    return i < 0 ? (lua_Integer)n + i + 1 : i;
}

static int series_totable(lua_State *L)
{
    Series *s = check(L, 1);
    int nan_as_nil = lua_toboolean(L, 2);
    lua_createtable(L, s->n > INT32_MAX ? 0 : (int)s->n, 0);
    for (size_t i = 0; i < s->n; i++) {
        if (nan_as_nil && isnan(s->v[i])) continue;
        lua_pushnumber(L, s->v[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

/* s:slice(i [, j]): a copy of elements i..j (inclusive, 1-based, negatives
 * from the end, clamped), like string.sub. */
static int series_slice(lua_State *L)
{
    Series *s = check(L, 1);
    lua_Integer i = rel_index(luaL_optinteger(L, 2, 1), s->n);
    lua_Integer j = rel_index(luaL_optinteger(L, 3, -1), s->n);
    if (i < 1) i = 1;
    if (j > (lua_Integer)s->n) j = (lua_Integer)s->n;
    size_t m = j >= i ? (size_t)(j - i + 1) : 0;
    lua_series_push_copy(L, s->v + (i - 1), m);
    return 1;
}

static int series_last(lua_State *L)
{
    Series *s = check(L, 1);
    lua_Integer k = luaL_optinteger(L, 2, 1);
    if (k < 1 || (size_t)k > s->n)
        lua_pushnil(L);
    else
        lua_pushnumber(L, s->v[s->n - (size_t)k]);
    return 1;
}

static int series_copy(lua_State *L)
{
    Series *s = check(L, 1);
    lua_series_push_copy(L, s->v, s->n);
    return 1;
}

static const luaL_Reg series_methods[] = {
    {"totable", series_totable}, {"slice", series_slice}, {"last", series_last},
    {"copy", series_copy},       {"len", series_len},     {NULL, NULL},
};

static int series_index(lua_State *L)
{
    Series *s = check(L, 1);
    int isint;
    lua_Integer i = lua_tointegerx(L, 2, &isint);
    if (isint) {
        if (i >= 1 && (size_t)i <= s->n)
            lua_pushnumber(L, s->v[i - 1]);
        else
            lua_pushnil(L);
        return 1;
    }
    lua_getmetatable(L, 1);
    lua_getfield(L, -1, "methods");
    lua_pushvalue(L, 2);
    lua_rawget(L, -2);
    return 1;
}

static int series_newindex(lua_State *L)
{
    Series *s = check(L, 1);
    lua_Integer i = luaL_checkinteger(L, 2);
    double x = luaL_checknumber(L, 3);
    luaL_argcheck(L, i >= 1 && (size_t)i <= s->n, 2, "index out of range");
    s->v[i - 1] = x;
    return 0;
}

static int series_tostring(lua_State *L)
{
    Series *s = check(L, 1);
    lua_pushfstring(L, "tf.series(%I)", (lua_Integer)s->n);
    return 1;
}

static int series_eq(lua_State *L)
{
    Series *a = check(L, 1), *b = check(L, 2);
    int eq = a->n == b->n;
    for (size_t i = 0; eq && i < a->n; i++) {
        eq = a->v[i] == b->v[i] || (isnan(a->v[i]) && isnan(b->v[i]));
    }
    lua_pushboolean(L, eq);
    return 1;
}

static const luaL_Reg series_meta[] = {
    {"__len", series_len},           {"__index", series_index}, {"__newindex", series_newindex},
    {"__tostring", series_tostring}, {"__eq", series_eq},       {NULL, NULL},
};

/* tf.series.new(n [, fill]) : n copies of fill (default NaN). */
static int lseries_new(lua_State *L)
{
    lua_Integer n = luaL_checkinteger(L, 1);
    double fill = luaL_optnumber(L, 2, NAN);
    luaL_argcheck(L, n >= 0, 1, "negative length");
    double *d = lua_series_push(L, (size_t)n);
    for (lua_Integer i = 0; i < n; i++)
        d[i] = fill;
    return 1;
}

static int lseries_from(lua_State *L)
{
    size_t n;
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_series_check(L, 1, &n);
    lua_settop(L, 1);
    return 1;
}

static int lseries_is(lua_State *L)
{
    lua_pushboolean(L, luaL_testudata(L, 1, LUA_SERIES_MT) != NULL);
    return 1;
}

static const luaL_Reg series_funcs[] = {
    {"new", lseries_new},
    {"from", lseries_from},
    {"is", lseries_is},
    {NULL, NULL},
};

/* Pushes the series metatable, creating it in the registry on first use. */
static void series_meta_push(lua_State *L)
{
    if (luaL_newmetatable(L, LUA_SERIES_MT)) {
        luaL_setfuncs(L, series_meta, 0);
        lua_tf_seal(L);
        luaL_newlib(L, series_methods);
        lua_setfield(L, -2, "methods");
    }
}

int luaopen_tf_series(lua_State *L)
{
    series_meta_push(L);
    lua_pop(L, 1);
    luaL_newlib(L, series_funcs);
    return 1;
}
