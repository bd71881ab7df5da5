/* tf.ind: the Lua face of core/ind/. tf.ind.<name>(inputs..., params) runs a
 * batch over series and returns one series per output; tf.ind.stream(name,
 * params [, state]) returns a streaming object; tf.ind.list()/info() expose
 * the registry. All memory is Lua's (series and stream userdata) except the
 * state block ind_batch allocates and frees inside one call. Never keeps C
 * globals: the registry tables are const data. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include <lauxlib.h>

#include "ind/ind.h"
#include "lua_series.h"
#include "lua_tf.h"

#define STREAM_MT "tf.ind.stream"

/* Fills s from the value at idx: nil, a number (the first parameter), or a
 * table of named and/or positional parameters plus `convention`. Numbers
 * following idx (up to last) are further positional parameters. Raises a Lua
 * error on anything unknown or out of range. */
static void check_spec(lua_State *L, const char *name, int idx, int last, IndConv conv, IndSpec *s)
{
    char err[200];
    const IndDef *d = ind_find(name);
    if (!d) luaL_error(L, "tf.ind: unknown indicator '%s'", name);
    if (lua_type(L, idx) == LUA_TTABLE) {
        lua_getfield(L, idx, "convention");
        if (!lua_isnil(L, -1) && ind_conv_parse(lua_tostring(L, -1), &conv)) {
            luaL_error(L, "%s: convention must be \"talib\" or \"mt5\"", name);
        }
        lua_pop(L, 1);
    }
    if (ind_spec_init(s, name, conv, err, sizeof err)) luaL_error(L, "%s", err);
    if (lua_isnoneornil(L, idx)) return;
    if (lua_type(L, idx) == LUA_TNUMBER) {
        for (int i = idx, k = 0; i <= last; i++, k++) {
            if (k >= d->nparams) luaL_error(L, "%s: too many parameters (%d)", name, d->nparams);
            if (ind_spec_set(s, d->params[k].name, luaL_checknumber(L, i), err, sizeof err)) {
                luaL_error(L, "%s", err);
            }
        }
        return;
    }
    luaL_checktype(L, idx, LUA_TTABLE);
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        int k = -1;
        if (lua_type(L, -2) == LUA_TSTRING) {
            const char *key = lua_tostring(L, -2);
            if (!strcmp(key, "convention") || !strcmp(key, "input") || !strcmp(key, "as")) {
                lua_pop(L, 1);
                continue;
            }
            k = ind_param_index(d, key);
            if (k < 0) luaL_error(L, "%s: unknown parameter '%s'", name, key);
        } else if (lua_isinteger(L, -2)) {
            lua_Integer i = lua_tointeger(L, -2);
            if (i < 1 || i > d->nparams) luaL_error(L, "%s: no parameter #%d", name, (int)i);
            k = (int)i - 1;
        } else {
            luaL_error(L, "%s: bad parameter key", name);
        }
        const IndParam *p = &d->params[k];
        int rc;
        if (p->type == IND_P_ENUM && lua_type(L, -1) == LUA_TSTRING) {
            rc = ind_spec_set_choice(s, p->name, lua_tostring(L, -1), err, sizeof err);
        } else if (lua_type(L, -1) == LUA_TNUMBER) {
            rc = ind_spec_set(s, p->name, lua_tonumber(L, -1), err, sizeof err);
        } else {
            rc = -1;
            snprintf(err, sizeof err, "%s: %s must be a %s", name, p->name,
                     p->type == IND_P_ENUM ? "string" : "number");
        }
        if (rc) luaL_error(L, "%s", err);
        lua_pop(L, 1);
    }
}

/* The field of a bars table that feeds input `in`: "real" reads params.input
 * (default "close"). */
static const char *bars_field(lua_State *L, const char *in, int params)
{
    if (strcmp(in, "real") != 0) return in;
    const char *f = "close";
    if (lua_type(L, params) == LUA_TTABLE) {
        lua_getfield(L, params, "input");
        if (lua_type(L, -1) == LUA_TSTRING) f = lua_tostring(L, -1);
        lua_pop(L, 1); /* the string stays alive in the params table */
    }
    return f;
}

/* tf.ind.<name>(in1, ..., inK [, params | p1, p2, ...]) or
 * tf.ind.<name>(bars [, params]) where bars has fields open/high/low/close/
 * volume/time (series or arrays). Returns one series per output. */
static int ind_call(lua_State *L)
{
    const char *name = lua_tostring(L, lua_upvalueindex(1));
    const IndDef *d = ind_find(name);
    const double *in[IND_MAX_INPUTS];
    double *out[IND_MAX_OUTPUTS];
    size_t n = 0;
    int params;
    /* a non-empty table without array part is a bars table, not an array */
    int bars = 0;
    if (lua_type(L, 1) == LUA_TTABLE && lua_rawlen(L, 1) == 0) {
        lua_pushnil(L);
        if ((bars = lua_next(L, 1))) lua_pop(L, 2);
    }
    if (bars) {
        params = 2;
        int top = lua_gettop(L) < 2 ? 2 : lua_gettop(L);
        lua_settop(L, top);
        for (int k = 0; k < d->ninputs; k++) {
            const char *f = bars_field(L, d->inputs[k], params);
            lua_getfield(L, 1, f);
            if (lua_isnil(L, -1)) luaL_error(L, "%s: bars table has no '%s'", name, f);
            size_t m;
            in[k] = lua_series_check(L, -1, &m); /* stays on the stack */
            if (k && m != n)
                luaL_error(L, "%s: input '%s' has %d values, not %d", name, f, (int)m, (int)n);
            n = m;
        }
        IndSpec s;
        check_spec(L, name, params, top, IND_TALIB, &s);
        for (int k = 0; k < d->noutputs; k++)
            out[k] = lua_series_push(L, n);
        char err[200];
        if (ind_batch(&s, n, in, out, err, sizeof err)) return luaL_error(L, "%s", err);
        return d->noutputs;
    }
    for (int k = 0; k < d->ninputs; k++) {
        size_t m;
        in[k] = lua_series_check(L, k + 1, &m);
        if (k && m != n)
            luaL_error(L, "%s: input %d has %d values, not %d", name, k + 1, (int)m, (int)n);
        n = m;
    }
    params = d->ninputs + 1;
    int last = lua_gettop(L);
    IndSpec s;
    check_spec(L, name, params, last, IND_TALIB, &s);
    lua_settop(L, last < params ? params : last);
    for (int k = 0; k < d->noutputs; k++)
        out[k] = lua_series_push(L, n);
    char err[200];
    if (ind_batch(&s, n, in, out, err, sizeof err)) return luaL_error(L, "%s", err);
    return d->noutputs;
}

/* ---- streaming ---- */

typedef struct {
    IndSpec spec;
    size_t size;
    long long bars;
    double last[IND_MAX_OUTPUTS];
} Stream;

#define STATE_OFF ((sizeof(Stream) + 15) & ~(size_t)15)

static void *stream_state(Stream *s)
{
    return (char *)s + STATE_OFF;
}

/* The checksum of a saved state starts from the layout version, so a state
 * saved by a build with other layouts is refused, not misread. */
#define STATE_SEED (14695981039346656037ull ^ (uint64_t)IND_STATE_VERSION)

static uint64_t fnv1a(const void *p, size_t n, uint64_t h)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 1099511628211ull;
    return h;
}

/* tf.ind.stream(name [, params [, state]]) */
static int ind_stream(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    IndSpec spec;
    lua_settop(L, 3);
    check_spec(L, name, 2, 2, IND_TALIB, &spec);
    size_t size = ind_state_size(&spec);
    Stream *s = lua_newuserdatauv(L, STATE_OFF + size, 1);
    memset(s, 0, sizeof *s);
    s->spec = spec;
    s->size = size;
    for (int k = 0; k < IND_MAX_OUTPUTS; k++)
        s->last[k] = NAN;
    ind_state_init(&spec, stream_state(s));
    if (!lua_isnil(L, 3)) { /* resume: a string from :state() of the same spec */
        size_t len;
        const char *b = luaL_checklstring(L, 3, &len);
        size_t want = sizeof(uint64_t) + sizeof s->bars + size;
        uint64_t sum;
        if (len != want)
            return luaL_error(L, "%s: state is %d bytes, expected %d", name, (int)len, (int)want);
        memcpy(&sum, b, sizeof sum);
        uint64_t h = fnv1a(&spec.conv, sizeof spec.conv, STATE_SEED);
        h = fnv1a(spec.p, sizeof spec.p, h);
        h = fnv1a(b + sizeof sum, len - sizeof sum, h);
        if (h != sum) return luaL_error(L, "%s: state does not match these parameters", name);
        memcpy(&s->bars, b + sizeof sum, sizeof s->bars);
        memcpy(stream_state(s), b + sizeof sum + sizeof s->bars, size);
    }
    lua_pushstring(L, name);
    lua_setiuservalue(L, -2, 1);
    luaL_setmetatable(L, STREAM_MT);
    return 1;
}

static Stream *check_stream(lua_State *L)
{
    return luaL_checkudata(L, 1, STREAM_MT);
}

/* s:update(x1, ..., xK) or s:update(bar) with named fields; returns outputs. */
static int stream_update(lua_State *L)
{
    Stream *s = check_stream(L);
    const IndDef *d = s->spec.def;
    double x[IND_MAX_INPUTS];
    if (lua_type(L, 2) == LUA_TTABLE) {
        for (int k = 0; k < d->ninputs; k++) {
            const char *f = strcmp(d->inputs[k], "real") ? d->inputs[k] : "close";
            int t = lua_getfield(L, 2, f);
            if (t == LUA_TNIL && !strcmp(f, "close"))
                lua_pop(L, 1), t = lua_getfield(L, 2, "value");
            if (t != LUA_TNUMBER)
                return luaL_error(L, "%s:update: bar has no number '%s'", d->name, f);
            x[k] = lua_tonumber(L, -1);
            lua_pop(L, 1);
        }
    } else {
        for (int k = 0; k < d->ninputs; k++)
            x[k] = luaL_checknumber(L, k + 2);
    }
    ind_state_update(&s->spec, stream_state(s), x, s->last);
    s->bars++;
    for (int k = 0; k < d->noutputs; k++)
        lua_pushnumber(L, s->last[k]);
    return d->noutputs;
}

/* s:value(): the last outputs (NaN before the lookback or before any bar). */
static int stream_value(lua_State *L)
{
    Stream *s = check_stream(L);
    for (int k = 0; k < s->spec.def->noutputs; k++)
        lua_pushnumber(L, s->last[k]);
    return s->spec.def->noutputs;
}

/* s:state(): a binary string to persist; tf.ind.stream(name, params, it) resumes. */
static int stream_save(lua_State *L)
{
    Stream *s = check_stream(L);
    luaL_Buffer b;
    uint64_t h = fnv1a(&s->spec.conv, sizeof s->spec.conv, STATE_SEED);
    h = fnv1a(s->spec.p, sizeof s->spec.p, h);
    h = fnv1a(&s->bars, sizeof s->bars, h);
    h = fnv1a(stream_state(s), s->size, h);
    luaL_buffinit(L, &b);
    luaL_addlstring(&b, (const char *)&h, sizeof h);
    luaL_addlstring(&b, (const char *)&s->bars, sizeof s->bars);
    luaL_addlstring(&b, (const char *)stream_state(s), s->size);
    luaL_pushresult(&b);
    return 1;
}

static int stream_bars(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)check_stream(L)->bars);
    return 1;
}

static int stream_lookback(lua_State *L)
{
    lua_pushinteger(L, ind_lookback(&check_stream(L)->spec));
    return 1;
}

static int stream_tostring(lua_State *L)
{
    Stream *s = check_stream(L);
    lua_pushfstring(L, "tf.ind.stream(%s, %s, %I bars)", s->spec.def->name,
                    ind_conv_name(s->spec.conv), (lua_Integer)s->bars);
    return 1;
}

static const luaL_Reg stream_methods[] = {
    {"update", stream_update}, {"value", stream_value},       {"state", stream_save},
    {"bars", stream_bars},     {"lookback", stream_lookback}, {NULL, NULL},
};

/* ---- registry ---- */

static void push_strings(lua_State *L, const char *const *v, int n)
{
    lua_createtable(L, n, 0);
    for (int i = 0; i < n; i++) {
        lua_pushstring(L, v[i]);
        lua_rawseti(L, -2, i + 1);
    }
}

static void push_def(lua_State *L, const IndDef *d)
{
    lua_createtable(L, 0, 10);
    lua_pushstring(L, d->name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, d->title);
    lua_setfield(L, -2, "title");
    push_strings(L, d->inputs, d->ninputs);
    lua_setfield(L, -2, "inputs");
    push_strings(L, d->outputs, d->noutputs);
    lua_setfield(L, -2, "outputs");
    lua_createtable(L, d->nparams, 0);
    for (int i = 0; i < d->nparams; i++) {
        const IndParam *p = &d->params[i];
        lua_createtable(L, 0, 7);
        lua_pushstring(L, p->name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, p->type == IND_P_INT    ? "integer"
                          : p->type == IND_P_REAL ? "number"
                                                  : "choice");
        lua_setfield(L, -2, "type");
        if (p->type == IND_P_ENUM) {
            int n = 0;
            while (p->choices[n])
                n++;
            push_strings(L, p->choices, n);
            lua_setfield(L, -2, "choices");
            lua_pushstring(L, p->choices[(int)p->def]);
        } else {
            lua_pushnumber(L, p->def);
            lua_pushnumber(L, p->min);
            lua_setfield(L, -3, "min");
            lua_pushnumber(L, p->max);
            lua_setfield(L, -3, "max");
        }
        lua_setfield(L, -2, "default");
        if (d->mt5_defaults && d->mt5_defaults[i] != p->def) {
            lua_pushnumber(L, d->mt5_defaults[i]);
            lua_setfield(L, -2, "default_mt5");
        }
        lua_pushstring(L, p->doc);
        lua_setfield(L, -2, "doc");
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "params");
    lua_pushstring(L, d->lookback_doc);
    lua_setfield(L, -2, "lookback");
    lua_pushboolean(L, d->has_mt5);
    lua_setfield(L, -2, "mt5");
    lua_pushstring(L, d->doc);
    lua_setfield(L, -2, "doc");
}

/* tf.ind.list(): array of registry entries, registry order. */
static int ind_list(lua_State *L)
{
    lua_createtable(L, (int)ind_count(), 0);
    for (size_t i = 0; i < ind_count(); i++) {
        push_def(L, ind_at(i));
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

/* tf.ind.info(name): one registry entry, or nil. */
static int ind_info(lua_State *L)
{
    const IndDef *d = ind_find(luaL_checkstring(L, 1));
    if (!d) return 0;
    push_def(L, d);
    return 1;
}

/* tf.ind.lookback(name [, params]): bars before the first defined output. */
static int ind_lookback_l(lua_State *L)
{
    IndSpec s;
    lua_settop(L, 2);
    check_spec(L, luaL_checkstring(L, 1), 2, 2, IND_TALIB, &s);
    lua_pushinteger(L, ind_lookback(&s));
    return 1;
}

static const luaL_Reg ind_funcs[] = {
    {"stream", ind_stream},       {"list", ind_list}, {"info", ind_info},
    {"lookback", ind_lookback_l}, {NULL, NULL},
};

/* tf.indicators: the Lua module tickforge.indicators (lua/), loaded with the
 * VM's own `require` (the sandboxed one in plugins) on first use. */
static int indicators_index(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "tickforge.indicators");
    lua_call(L, 1, 1);
    lua_pushvalue(L, 2);
    lua_gettable(L, -2);
    return 1;
}

int luaopen_tf_indicators(lua_State *L)
{
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushcfunction(L, indicators_index);
    lua_setfield(L, -2, "__index");
    lua_tf_seal(L);
    lua_setmetatable(L, -2);
    return 1;
}

int luaopen_tf_ind(lua_State *L)
{
    if (luaL_newmetatable(L, STREAM_MT)) {
        luaL_newlib(L, stream_methods);
        lua_setfield(L, -2, "__index");
        lua_pushcfunction(L, stream_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_tf_seal(L);
    }
    lua_pop(L, 1);
    luaL_newlib(L, ind_funcs);
    for (size_t i = 0; i < ind_count(); i++) {
        lua_pushstring(L, ind_at(i)->name);
        lua_pushcclosure(L, ind_call, 1);
        lua_setfield(L, -2, ind_at(i)->name);
    }
    return 1;
}
