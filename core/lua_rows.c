/* tf.rows: renders a table of columns (tf.series or Lua arrays, as
 * tf.db.columns and tf.indicators.compute return them) as JSON or CSV text in
 * one C call, so a route answering a million rows never loops in Lua.
 *   tf.rows.encode("json" | "csv", columns, names [, opts]) -> text, nrows | nil, error
 * It only formats: no I/O, no SQL. The text is built in a Lua buffer (owned
 * by the VM, counted against lua.memory_limit) and bounded by opts.max_bytes. */
#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "lua_series.h"
#include "lua_tf.h"
#include "mem.h"
#include "ts.h"

#define ROWS_MAX_COLS 64

struct col {
    const char *name;   /* output name */
    const double *d;    /* a series (or NULL: a Lua array at index idx) */
    size_t n;           /* its length */
    int idx;            /* stack index of the array */
    int time;           /* epoch seconds rendered as ISO-8601 UTC */
    long long off;      /* row i reads element i + off */
};

/* Shortest "%.*g" text that reads back as the same double. */
static int fmt_number(char *out, size_t cap, double v)
{
    int n = (int)buf_short_decimal(out, v);
    if (n) {
        out[n] = 0;
        return n;
    }
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(out, cap, "%.*g", prec, v);
        if (strtod(out, NULL) == v) break;
    }
    return n;
}

/* 2025-10-20T03:05:00+00:00, as the ingest answers write times (ts_format). */
static int fmt_time(char *out, size_t cap, double t)
{
    if (!(fabs(t) < 253402300800.0)) return snprintf(out, cap, "%.17g", t);
    return ts_format((int64_t)llround(t * 1e6), out, cap);
}

static void add_json_string(luaL_Buffer *b, const char *s, size_t len)
{
    char *p = luaL_prepbuffsize(b, BUF_JSON_QUOTED_MAX(len));
    luaL_addsize(b, buf_json_quote(p, s, len));
}

static void add_csv_string(luaL_Buffer *b, const char *s, size_t len)
{
    if (!strpbrk(s, ",\"\r\n") && len == strlen(s)) {
        luaL_addlstring(b, s, len);
        return;
    }
    luaL_addchar(b, '"');
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '"') luaL_addchar(b, '"');
        luaL_addchar(b, s[i]);
    }
    luaL_addchar(b, '"');
}

/* Adds v as column c writes it: a time as an ISO string, else a number;
 * JSON null / an empty CSV field when it is NaN or infinite. */
static void add_number(luaL_Buffer *b, const struct col *c, double v, int json)
{
    char tmp[64];
    if (!isfinite(v)) {
        if (json) luaL_addstring(b, "null");
        return;
    }
    int n = c->time ? fmt_time(tmp, sizeof tmp, v) : fmt_number(tmp, sizeof tmp, v);
    if (c->time && json) add_json_string(b, tmp, (size_t)n);
    else luaL_addlstring(b, tmp, (size_t)n);
}

/* Adds row i (0-based) of column c; JSON null / an empty CSV field for NaN,
 * a nil hole or an infinity. */
static void add_cell(lua_State *L, luaL_Buffer *b, const struct col *c, long long i, int json)
{
    if (c->d) {
        add_number(b, c, i >= 0 && (size_t)i < c->n ? c->d[i] : NAN, json);
        return;
    }
    /* the buffer's box must be on the stack top when it grows: read the
     * cell, take what it holds off the stack, then add it */
    int t = lua_rawgeti(L, c->idx, (lua_Integer)i + 1);
    if (t == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        char small[256], *copy = len < sizeof small ? small : mem_alloc(len + 1);
        if (!copy) luaL_error(L, "tf.rows: out of memory");
        memcpy(copy, s, len + 1);
        lua_pop(L, 1);
        if (json) add_json_string(b, copy, len);
        else add_csv_string(b, copy, len);
        if (copy != small) mem_free(copy);
        return;
    }
    int kind = t == LUA_TNUMBER ? 'n' : t == LUA_TBOOLEAN ? 'b' : 0;
    double v = kind == 'n' ? lua_tonumber(L, -1) : 0;
    int boolean = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (kind == 'n') {
        add_number(b, c, v, json);
    } else if (kind == 'b') {
        luaL_addstring(b, boolean ? "true" : "false");
    } else if (json) {
        luaL_addstring(b, "null");
    }
}

static lua_Integer opt_int(lua_State *L, int opts, const char *k, lua_Integer def)
{
    if (!lua_istable(L, opts)) return def;
    lua_getfield(L, opts, k);
    lua_Integer v = lua_isnil(L, -1) ? def : luaL_checkinteger(L, -1);
    lua_pop(L, 1);
    return v;
}

/* tf.rows.encode(format, columns, names [, opts])
 *   names: the output columns in order; an entry "out=src" renames column src.
 *   opts.first, opts.last: the 1-based row range (default all rows of the first column)
 *   opts.offset: { name = k } row i of that column is its element i + k
 *   opts.reverse: true writes the rows last to first
 *   opts.time: { name = true } columns holding epoch seconds, written as ISO-8601 UTC
 *   opts.header: false leaves out the CSV header row
 *   opts.max_bytes: nil, "max_bytes" when the text would be longer
 * JSON is an array of objects with keys in `names` order. */
static int l_encode(lua_State *L)
{
    const char *format = luaL_checkstring(L, 1);
    int json = !strcmp(format, "json");
    if (!json && strcmp(format, "csv")) return luaL_argerror(L, 1, "format must be \"json\" or \"csv\"");
    luaL_checktype(L, 2, LUA_TTABLE);
    luaL_checktype(L, 3, LUA_TTABLE);
    int opts = lua_istable(L, 4) ? 4 : 0;
    int ncols = (int)luaL_len(L, 3);
    if (ncols < 1 || ncols > ROWS_MAX_COLS) return luaL_argerror(L, 3, "1..64 column names expected");
    struct col cols[ROWS_MAX_COLS];
    lua_settop(L, 4);
    luaL_checkstack(L, 2 * ncols + 8, "tf.rows.encode");
    for (int j = 0; j < ncols; j++) {
        lua_rawgeti(L, 3, j + 1);
        const char *spec = lua_tostring(L, -1);
        if (!spec) return luaL_error(L, "tf.rows.encode: names[%d] must be a string", j + 1);
        const char *eq = strchr(spec, '=');
        cols[j].name = spec; /* kept alive by the names table */
        if (eq) lua_pushlstring(L, spec, (size_t)(eq - spec)), lua_replace(L, -2), lua_pushstring(L, eq + 1);
        else lua_pushstring(L, spec);
        /* stack: name, src */
        lua_gettable(L, 2);
        cols[j].d = NULL;
        cols[j].n = 0;
        if (lua_type(L, -1) == LUA_TUSERDATA) {
            cols[j].d = lua_series_check(L, lua_gettop(L), &cols[j].n);
        } else if (lua_istable(L, -1)) {
            cols[j].n = (size_t)lua_rawlen(L, -1);
        } else {
            return luaL_error(L, "tf.rows.encode: no column '%s' (a tf.series or an array)", eq ? eq + 1 : spec);
        }
        cols[j].idx = lua_gettop(L);
        cols[j].time = 0;
        cols[j].off = 0;
        if (opts) {
            lua_getfield(L, opts, "offset");
            if (lua_istable(L, -1)) {
                lua_pushvalue(L, -3);
                lua_gettable(L, -2);
                cols[j].off = lua_isnil(L, -1) ? 0 : (long long)luaL_checkinteger(L, -1);
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
            lua_getfield(L, opts, "time");
            if (lua_istable(L, -1)) {
                lua_pushvalue(L, -3);
                cols[j].time = lua_gettable(L, -2) != LUA_TNIL && lua_toboolean(L, -1);
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
        }
        cols[j].name = lua_tostring(L, -2); /* the output name, alive on the stack */
    }
    lua_Integer first = opt_int(L, opts, "first", 1);
    lua_Integer last = opt_int(L, opts, "last", (lua_Integer)cols[0].n);
    lua_Integer max_bytes = opt_int(L, opts, "max_bytes", 0);
    int header = 1, reverse = 0;
    if (opts) {
        lua_getfield(L, opts, "reverse");
        reverse = lua_toboolean(L, -1);
        lua_pop(L, 1);
        lua_getfield(L, opts, "header");
        header = !(lua_isboolean(L, -1) && !lua_toboolean(L, -1));
        lua_pop(L, 1);
    }
    if (first < 1) first = 1;
    if (last < first - 1) last = first - 1;

    luaL_Buffer b;
    luaL_buffinit(L, &b);
    if (json) {
        luaL_addchar(&b, '[');
    } else if (header) {
        for (int j = 0; j < ncols; j++) {
            if (j) luaL_addchar(&b, ',');
            add_csv_string(&b, cols[j].name, strlen(cols[j].name));
        }
        luaL_addchar(&b, '\n');
    }
    for (lua_Integer k = first; k <= last; k++) {
        lua_Integer i = reverse ? last - (k - first) : k;
        if (json) {
            luaL_addstring(&b, k > first ? ",{" : "{");
            for (int j = 0; j < ncols; j++) {
                if (j) luaL_addchar(&b, ',');
                add_json_string(&b, cols[j].name, strlen(cols[j].name));
                luaL_addchar(&b, ':');
                add_cell(L, &b, &cols[j], i - 1 + cols[j].off, 1);
            }
            luaL_addchar(&b, '}');
        } else {
            for (int j = 0; j < ncols; j++) {
                if (j) luaL_addchar(&b, ',');
                add_cell(L, &b, &cols[j], i - 1 + cols[j].off, 0);
            }
            luaL_addchar(&b, '\n');
        }
        if (max_bytes > 0 && (lua_Integer)luaL_bufflen(&b) > max_bytes) {
            luaL_pushresult(&b);
            lua_pushnil(L);
            lua_pushstring(L, "max_bytes");
            return 2;
        }
    }
    if (json) luaL_addchar(&b, ']');
    luaL_pushresult(&b);
    lua_pushinteger(L, last - first + 1);
    return 2;
}

static const luaL_Reg rows_funcs[] = {
    {"encode", l_encode},
    {NULL, NULL},
};

int luaopen_tf_rows(lua_State *L)
{
    luaL_newlib(L, rows_funcs);
    return 1;
}
