/* tf.json: encode walks Lua values into a growable C buffer (no Lua errors
 * can escape it, so the C core may call it anywhere); decode reads the text
 * once, pushing Lua values as it goes, and marks arrays so that []
 * round-trips. */
#include "lua_json.h"

#include "buf.h"
#include "lua_tf.h"
#include "mem.h"

#include <lauxlib.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 128
#define TEXT_(x) #x
#define TEXT(x) TEXT_(x) /* MAX_DEPTH as a string literal */

static const char json_null = 0;            /* its address is tf.json.null */
static const char array_mt_key = 0;         /* registry key of the array metatable */

void lua_json_pushnull(lua_State *L)
{
    lua_pushlightuserdata(L, (void *)&json_null);
}

static void push_array_mt(lua_State *L)
{
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &array_mt_key) == LUA_TNIL) {
        lua_pop(L, 1);
        lua_createtable(L, 0, 1);
        lua_pushliteral(L, "array");
        lua_setfield(L, -2, "__jsontype");
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, &array_mt_key);
    }
}

/* An encoding under way: the text, and the first error that is not the
 * buffer's own (static text, or errbuf). */
struct enc {
    struct buf b;
    const char *err;
    char errbuf[128];
};

static int failed(const struct enc *e)
{
    return e->err || buf_failed(&e->b);
}

static void put_number(struct buf *b, lua_State *L, int idx)
{
    if (lua_isinteger(L, idx))
        buf_json_int(b, (long long)lua_tointeger(L, idx));
    else
        buf_json_double(b, lua_tonumber(L, idx));
}

/* Is the table at idx a sequence 1..n (n >= 1), or marked as an array? */
static int array_length(lua_State *L, int idx, lua_Integer *n)
{
    int marked = 0;
    if (lua_getmetatable(L, idx)) {
        lua_getfield(L, -1, "__jsontype");
        const char *t = lua_tostring(L, -1);
        marked = t && !strcmp(t, "array") ? 1 : t && !strcmp(t, "object") ? -1 : 0;
        lua_pop(L, 2);
    }
    if (marked < 0) return 0;
    lua_Integer count = 0, max = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1) {
            lua_pop(L, 1);
            return marked > 0 ? (*n = (lua_Integer)lua_rawlen(L, idx), 1) : 0;
        }
        count++;
        if (lua_tointeger(L, -1) > max) max = lua_tointeger(L, -1);
    }
    if (count == 0) {
        *n = 0;
        return marked > 0;
    }
    if (max != count && !marked) return 0;
    *n = max;
    return 1;
}

/* Is the string at key listed in the order array at index order? */
static int in_order(lua_State *L, int order, int key)
{
    key = lua_absindex(L, key);
    for (lua_Integer i = 1;; i++) {
        int t = lua_rawgeti(L, order, i);
        int hit = t == LUA_TSTRING && lua_rawequal(L, -1, key);
        lua_pop(L, 1);
        if (hit) return 1;
        if (t != LUA_TSTRING) return 0;
    }
}

/* An object member waiting to be written: its key's stack slot (the value's
 * is the next one) and what sorts it. */
struct okey {
    int slot;
    int isnum;
    const char *s; /* string keys: valid while the key is on the stack */
    size_t n;
    double d;      /* number keys */
};

/* Stable key order, so two answers built alike read alike whichever VM
 * built them (Lua's hash order differs between VMs): "ok" first, then
 * string keys in byte order, then number keys in numeric order. */
static int okey_cmp(const void *pa, const void *pb)
{
    const struct okey *a = pa, *b = pb;
    if (a->isnum != b->isnum) return a->isnum - b->isnum;
    if (a->isnum) return a->d < b->d ? -1 : a->d > b->d;
    int aok = a->n == 2 && !memcmp(a->s, "ok", 2), bok = b->n == 2 && !memcmp(b->s, "ok", 2);
    if (aok != bok) return bok - aok;
    int c = memcmp(a->s, b->s, a->n < b->n ? a->n : b->n);
    return c ? c : (a->n > b->n) - (a->n < b->n);
}

/* okey_cmp's order: insertion sort for the few keys of most objects. */
static void sort_keys(struct okey *k, int n)
{
    if (n > 16) {
        qsort(k, (size_t)n, sizeof *k, okey_cmp);
        return;
    }
    for (int i = 1; i < n; i++) {
        struct okey x = k[i];
        int j = i;
        for (; j > 0 && okey_cmp(&k[j - 1], &x) > 0; j--)
            k[j] = k[j - 1];
        k[j] = x;
    }
}

static void encode(struct enc *e, lua_State *L, int idx, int depth);

/* Writes member k: its key, and the value in the slot after the key's. */
static void put_member(struct enc *e, lua_State *L, const struct okey *k, int *first, int depth)
{
    if (!*first) buf_putc(&e->b, ',');
    *first = 0;
    if (!k->isnum) {
        buf_json_str(&e->b, k->s, k->n);
    } else {
        char tmp[40];
        int kn = lua_isinteger(L, k->slot) ? snprintf(tmp, sizeof tmp, "%lld", (long long)lua_tointeger(L, k->slot))
                                           : snprintf(tmp, sizeof tmp, "%.17g", k->d);
        buf_json_str(&e->b, tmp, (size_t)kn);
    }
    buf_putc(&e->b, ':');
    encode(e, L, k->slot + 1, depth + 1);
}

/* The table at idx as a JSON object: the keys its metatable's __jsonorder
 * lists first, in that order (after "ok" when the list does not place it),
 * then the others in okey_cmp's order. One pass of lua_next leaves each key
 * and its value on the stack while they are written, so nothing here
 * allocates Lua memory. */
static void encode_object(struct enc *e, lua_State *L, int idx, int depth)
{
    int base = lua_gettop(L), order = 0, first = 1, n = 0, cap = 8, ok = -1;
    struct okey small[8], *keys = small;
    lua_pushnil(L);
    for (;;) {
        if (!lua_checkstack(L, 4)) {
            e->err = "an object with too many keys";
            goto out;
        }
        if (!lua_next(L, idx)) break; /* ... key value */
        int kt = lua_type(L, -2);
        if (kt != LUA_TSTRING && kt != LUA_TNUMBER) {
            e->err = "object keys must be strings or numbers";
            goto out;
        }
        if (n == cap) {
            struct okey *more = mem_alloc(sizeof *more * (size_t)cap * 2);
            if (!more) {
                e->err = "out of memory";
                goto out;
            }
            memcpy(more, keys, sizeof *keys * (size_t)n);
            if (keys != small) mem_free(keys);
            keys = more, cap *= 2;
        }
        struct okey *k = &keys[n++];
        k->slot = lua_gettop(L) - 1;
        k->isnum = kt == LUA_TNUMBER;
        k->s = k->isnum ? NULL : lua_tolstring(L, -2, &k->n); /* a string key: no conversion */
        k->d = k->isnum ? lua_tonumber(L, -2) : 0;
        if (!k->isnum && k->n == 2 && !memcmp(k->s, "ok", 2)) ok = n - 1;
        lua_pushvalue(L, -2); /* the key again, for lua_next */
    }
    if (failed(e)) goto out;
    buf_putc(&e->b, '{');
    if (lua_getmetatable(L, idx)) {
        lua_getfield(L, -1, "__jsonorder");
        lua_remove(L, -2);
        if (lua_istable(L, -1)) order = lua_gettop(L);
        else lua_pop(L, 1);
    }
    if (ok >= 0 && (!order || !in_order(L, order, keys[ok].slot)))
        put_member(e, L, &keys[ok], &first, depth);
    for (lua_Integer i = 1; order && !failed(e) && lua_rawgeti(L, order, i) == LUA_TSTRING; i++) {
        size_t kn;
        const char *ks = lua_tolstring(L, -1, &kn);
        for (int k = 0; k < n; k++)
            if (keys[k].slot && !keys[k].isnum && keys[k].n == kn && !memcmp(keys[k].s, ks, kn)) {
                put_member(e, L, &keys[k], &first, depth);
                keys[k].slot = 0; /* written */
                break;
            }
        lua_pop(L, 1);
    }
    if (order) lua_pop(L, 1); /* the failed rawgeti */
    if (ok >= 0) keys[ok].slot = 0;
    int m = 0;
    for (int k = 0; k < n; k++)
        if (keys[k].slot) keys[m++] = keys[k];
    sort_keys(keys, m);
    for (int k = 0; k < m && !failed(e); k++)
        put_member(e, L, &keys[k], &first, depth);
    buf_putc(&e->b, '}');
out:
    if (keys != small) mem_free(keys);
    lua_settop(L, base);
}

static void encode(struct enc *e, lua_State *L, int idx, int depth)
{
    if (failed(e)) return;
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        buf_put(&e->b, "null", 4);
        return;
    case LUA_TBOOLEAN:
        lua_toboolean(L, idx) ? buf_put(&e->b, "true", 4) : buf_put(&e->b, "false", 5);
        return;
    case LUA_TNUMBER:
        put_number(&e->b, L, idx);
        return;
    case LUA_TSTRING: {
        size_t n;
        const char *s = lua_tolstring(L, idx, &n);
        buf_json_str(&e->b, s, n);
        return;
    }
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == &json_null) {
            buf_put(&e->b, "null", 4);
            return;
        }
        break;
    case LUA_TTABLE: {
        if (depth >= MAX_DEPTH) {
            e->err = "nested too deep (a cycle?)";
            return;
        }
        if (!lua_checkstack(L, 4)) {
            e->err = "out of Lua stack";
            return;
        }
        lua_Integer n;
        if (array_length(L, idx, &n)) {
            buf_putc(&e->b, '[');
            for (lua_Integer i = 1; i <= n && !failed(e); i++) {
                if (i > 1) buf_putc(&e->b, ',');
                lua_rawgeti(L, idx, i);
                encode(e, L, lua_gettop(L), depth + 1);
                lua_pop(L, 1);
            }
            buf_putc(&e->b, ']');
            return;
        }
        encode_object(e, L, idx, depth);
        return;
    }
    default: break;
    }
    snprintf(e->errbuf, sizeof e->errbuf, "cannot encode a %s", luaL_typename(L, idx));
    e->err = e->errbuf;
}

/* Encodes the value at idx into e (set up by the caller); 0, or -1 with
 * the reason in err. e's buffer is the caller's to free either way. */
static int encode_value(struct enc *e, lua_State *L, int idx, char *err, size_t errlen)
{
    e->err = NULL;
    encode(e, L, lua_absindex(L, idx), 0);
    if (!failed(e)) return 0;
    snprintf(err, errlen, "json: %s", e->err ? e->err : "out of memory");
    return -1;
}

char *lua_json_encode(lua_State *L, int idx, size_t *len, char *err, size_t errlen)
{
    struct enc e;
    buf_init(&e.b, NULL, 0, 0);
    if (encode_value(&e, L, idx, err, errlen)) {
        buf_free(&e.b);
        return NULL;
    }
    char *s = buf_detach(&e.b, len);
    if (!s) snprintf(err, errlen, "json: out of memory");
    return s;
}

/* ---- decode: one pass from the text to Lua values ----
 *
 * A recursive descent over the text that pushes each value as it is read:
 * no tree in between, every byte it allocates is the VM's own (so the VM's
 * memory limit bounds it, and a memory error leaks nothing). It takes what
 * the C ingest path (cJSON) takes: a leading UTF-8 BOM, numbers as strtod
 * reads them (leading zeros, "1."), raw control characters in strings but
 * not a NUL byte. Numbers that are whole and within 2^53 become integers. */

struct dec {
    lua_State *L;
    const char *s, *p, *end;
    char *err;
    size_t errlen;
};

static int dec_fail(struct dec *d, const char *why)
{
    size_t at = (size_t)(d->p - d->s);
    int n = (int)(d->end - d->p < 20 ? d->end - d->p : 20);
    snprintf(d->err, d->errlen, "byte %zu: invalid JSON near '%.*s': %s", at, n, d->p, why);
    return -1;
}

static void dec_ws(struct dec *d)
{
    while (d->p < d->end && (*d->p == ' ' || *d->p == '\n' || *d->p == '\r' || *d->p == '\t'))
        d->p++;
}

static int dec_literal(struct dec *d, const char *word, size_t n)
{
    if ((size_t)(d->end - d->p) < n || memcmp(d->p, word, n) != 0)
        return dec_fail(d, "expected a value");
    d->p += n;
    return 0;
}

static const double pow10_exact[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                     1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                     1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};

/* A number. Up to 2^53 of significant digits times an exact power of ten
 * (10^0..10^22) is one correctly rounded IEEE operation; anything else goes
 * to strtod (in the C locale tickforge runs in). */
static int dec_number(struct dec *d)
{
    const char *q = d->p;
    int neg = q < d->end && *q == '-';
    q += neg;
    uint64_t m = 0;
    int frac = 0, exp = 0, exact = 1;
    const char *start = q;
    for (; q < d->end && *q >= '0' && *q <= '9'; q++) {
        if (m < 100000000000000000ULL)
            m = m * 10 + (uint64_t)(*q - '0');
        else
            exact = 0;
    }
    if (q == start) return dec_fail(d, "expected a value");
    int integer = 1;
    if (q < d->end && *q == '.') {
        integer = 0;
        for (q++; q < d->end && *q >= '0' && *q <= '9'; q++, frac++) {
            if (m < 100000000000000000ULL)
                m = m * 10 + (uint64_t)(*q - '0');
            else
                exact = 0;
        }
    }
    if (q < d->end && (*q == 'e' || *q == 'E')) {
        const char *e = q + 1;
        int eneg = e < d->end && *e == '-';
        if (e < d->end && (*e == '-' || *e == '+')) e++;
        if (e < d->end && *e >= '0' && *e <= '9') { /* else "1e" is 1 and "e" is what follows */
            integer = 0;
            for (; e < d->end && *e >= '0' && *e <= '9'; e++)
                if (exp < 100000) exp = exp * 10 + (*e - '0');
            exp = eneg ? -exp : exp;
            q = e;
        }
    }
    double v;
    int e10 = exp - frac;
    if (exact && integer && m <= 9007199254740992ULL) {
        lua_pushinteger(d->L, neg ? -(lua_Integer)m : (lua_Integer)m);
        d->p = q;
        return 0;
    }
    if (exact && m <= 9007199254740992ULL && e10 >= -22 && e10 <= 22) {
        v = e10 >= 0 ? (double)m * pow10_exact[e10] : (double)m / pow10_exact[-e10];
    } else {
        char buf[400];
        size_t n = (size_t)(q - d->p);
        if (n >= sizeof buf) return dec_fail(d, "number too long");
        memcpy(buf, d->p, n);
        buf[n] = '\0';
        v = strtod(buf + neg, NULL);
    }
    if (neg) v = -v;
    if (v == floor(v) && fabs(v) <= 9007199254740992.0)
        lua_pushinteger(d->L, (lua_Integer)v);
    else
        lua_pushnumber(d->L, v);
    d->p = q;
    return 0;
}

static int hex4(const char *p, unsigned *out)
{
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

/* A string (d->p at its opening quote): pushed as it is when it has no
 * escapes, else unescaped into a luaL_Buffer; \u escapes become UTF-8,
 * surrogate pairs joined. */
static int dec_string(struct dec *d)
{
    const char *q = ++d->p;
    while (q < d->end && *q != '"' && *q != '\\' && *q)
        q++;
    if (q < d->end && *q == '"') {
        lua_pushlstring(d->L, d->p, (size_t)(q - d->p));
        d->p = q + 1;
        return 0;
    }
    luaL_Buffer b;
    luaL_buffinit(d->L, &b);
    luaL_addlstring(&b, d->p, (size_t)(q - d->p));
    for (d->p = q; d->p < d->end && *d->p != '"';) {
        const char *run = d->p;
        while (d->p < d->end && *d->p != '"' && *d->p != '\\' && *d->p)
            d->p++;
        luaL_addlstring(&b, run, (size_t)(d->p - run));
        if (d->p == d->end || *d->p == '"') break;
        if (!*d->p) return dec_fail(d, "a NUL byte in a string");
        if (d->end - d->p < 2) return dec_fail(d, "a string without its closing quote");
        char c = d->p[1], out;
        switch (c) {
        case '"':
            out = '"';
            break;
        case '\\':
            out = '\\';
            break;
        case '/':
            out = '/';
            break;
        case 'b':
            out = '\b';
            break;
        case 'f':
            out = '\f';
            break;
        case 'n':
            out = '\n';
            break;
        case 'r':
            out = '\r';
            break;
        case 't':
            out = '\t';
            break;
        case 'u': {
            unsigned u, lo;
            if (d->end - d->p < 6 || hex4(d->p + 2, &u))
                return dec_fail(d, "\\u wants 4 hex digits");
            if (u >= 0xDC00 && u <= 0xDFFF) return dec_fail(d, "a lone low surrogate");
            int len = 6;
            if (u >= 0xD800 && u <= 0xDBFF) {
                if (d->end - d->p < 12 || d->p[6] != '\\' || d->p[7] != 'u' ||
                    hex4(d->p + 8, &lo) || lo < 0xDC00 || lo > 0xDFFF)
                    return dec_fail(d, "a high surrogate without its low half");
                u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
                len = 12;
            }
            char utf8[4];
            size_t n;
            if (u < 0x80)
                utf8[0] = (char)u, n = 1;
            else if (u < 0x800)
                utf8[0] = (char)(0xC0 | u >> 6), utf8[1] = (char)(0x80 | (u & 0x3F)), n = 2;
            else if (u < 0x10000)
                utf8[0] = (char)(0xE0 | u >> 12), utf8[1] = (char)(0x80 | ((u >> 6) & 0x3F)),
                utf8[2] = (char)(0x80 | (u & 0x3F)), n = 3;
            else
                utf8[0] = (char)(0xF0 | u >> 18), utf8[1] = (char)(0x80 | ((u >> 12) & 0x3F)),
                utf8[2] = (char)(0x80 | ((u >> 6) & 0x3F)), utf8[3] = (char)(0x80 | (u & 0x3F)),
                n = 4;
            luaL_addlstring(&b, utf8, n);
            d->p += len;
            continue;
        }
        default:
            return dec_fail(d, "an unknown escape");
        }
        luaL_addchar(&b, out);
        d->p += 2;
    }
    if (d->p >= d->end) return dec_fail(d, "a string without its closing quote");
    d->p++;
    luaL_pushresult(&b);
    return 0;
}

static int dec_value(struct dec *d, int depth);

/* At a container's opening bracket: steps past it; 1 when the container is
 * empty (its closing bracket read too), else 0 at its first member. */
static int dec_open(struct dec *d, char close)
{
    d->p++;
    dec_ws(d);
    if (d->p == d->end || *d->p != close) return 0;
    d->p++;
    return 1;
}

/* After a member: 1 when a ',' says another follows (d->p at it), 0 when the
 * closing bracket ends the container, -1 on anything else. */
static int dec_more(struct dec *d, char close)
{
    dec_ws(d);
    if (d->p < d->end && *d->p == ',') {
        d->p++;
        dec_ws(d);
        return 1;
    }
    if (d->p < d->end && *d->p == close) {
        d->p++;
        return 0;
    }
    return dec_fail(d, close == ']' ? "expected ',' or ']'" : "expected ',' or '}'");
}

static int dec_array(struct dec *d, int depth)
{
    lua_State *L = d->L;
    lua_newtable(L);
    int more = !dec_open(d, ']');
    for (lua_Integer i = 1; more > 0; i++) {
        if (dec_value(d, depth + 1)) return -1;
        lua_rawseti(L, -2, i);
        more = dec_more(d, ']');
    }
    if (more < 0) return -1;
    push_array_mt(L);
    lua_setmetatable(L, -2);
    return 0;
}

static int dec_object(struct dec *d, int depth)
{
    lua_State *L = d->L;
    lua_createtable(L, 0, 8);
    int more = !dec_open(d, '}');
    while (more > 0) {
        if (d->p == d->end || *d->p != '"') return dec_fail(d, "expected a key in double quotes");
        if (dec_string(d)) return -1;
        dec_ws(d);
        if (d->p == d->end || *d->p != ':') return dec_fail(d, "expected ':' after a key");
        d->p++;
        dec_ws(d);
        if (dec_value(d, depth + 1)) return -1;
        lua_rawset(L, -3); /* a repeated key: the last one wins */
        more = dec_more(d, '}');
    }
    return more;
}

static int dec_value(struct dec *d, int depth)
{
    if (depth > MAX_DEPTH) return dec_fail(d, "nested deeper than " TEXT(MAX_DEPTH) " levels");
    if (!lua_checkstack(d->L, 4)) return dec_fail(d, "nested too deep for the Lua stack");
    if (d->p == d->end) return dec_fail(d, "expected a value");
    switch (*d->p) {
    case '{':
        return dec_object(d, depth);
    case '[':
        return dec_array(d, depth);
    case '"':
        return dec_string(d);
    case 't':
        if (dec_literal(d, "true", 4)) return -1;
        lua_pushboolean(d->L, 1);
        return 0;
    case 'f':
        if (dec_literal(d, "false", 5)) return -1;
        lua_pushboolean(d->L, 0);
        return 0;
    case 'n':
        if (dec_literal(d, "null", 4)) return -1;
        lua_json_pushnull(d->L);
        return 0;
    default:
        return dec_number(d);
    }
}

int lua_json_decode(lua_State *L, const char *s, size_t len, char *err, size_t errlen)
{
    while (len && (s[len - 1] == 0 || s[len - 1] == ' ' || s[len - 1] == '\n' ||
                   s[len - 1] == '\r' || s[len - 1] == '\t'))
        len--;
    if (len == 0) {
        snprintf(err, errlen, "byte 0: empty body, expected a JSON value");
        return -1;
    }
    struct dec d = {L, s, s, s + len, err, errlen};
    if (len >= 3 && !memcmp(s, "\xEF\xBB\xBF", 3)) d.p += 3; /* a UTF-8 byte order mark */
    int top = lua_gettop(L);
    dec_ws(&d);
    if (dec_value(&d, 0)) {
        lua_settop(L, top);
        return -1;
    }
    dec_ws(&d);
    if (d.p < d.end) {
        lua_settop(L, top);
        snprintf(err, errlen, "byte %zu: unexpected data after the JSON value", (size_t)(d.p - s));
        return -1;
    }
    return 0;
}

void lua_json_order(lua_State *L, int idx, const char *const *keys)
{
    idx = lua_absindex(L, idx);
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, keys) == LUA_TNIL) { /* one metatable per key list */
        lua_pop(L, 1);
        lua_createtable(L, 0, 1);
        lua_newtable(L);
        for (int i = 0; keys[i]; i++) {
            lua_pushstring(L, keys[i]);
            lua_rawseti(L, -2, i + 1);
        }
        lua_setfield(L, -2, "__jsonorder");
        lua_pushvalue(L, -1);
        lua_rawsetp(L, LUA_REGISTRYINDEX, keys);
    }
    lua_setmetatable(L, idx);
}

/* tf.json.order(t, {keys...}) -> t: encode these keys first, in this order */
static int l_order(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    lua_createtable(L, 0, 1);
    lua_pushvalue(L, 2);
    lua_setfield(L, -2, "__jsonorder");
    lua_setmetatable(L, 1);
    lua_settop(L, 1);
    return 1;
}

/* Pushes the text of the struct buf that is the light userdata at 1. */
static int push_text(lua_State *L)
{
    const struct buf *b = lua_touserdata(L, 1);
    lua_pushlstring(L, b->p, b->len);
    return 1;
}

/* tf.json.encode(v) -> string | raises. A short text is built on the C
 * stack; a longer one in the heap is copied into Lua under pcall, so the
 * VM's memory limit striking then cannot leak it. */
static int l_encode(lua_State *L)
{
    char err[160], small[1024];
    struct enc e;
    luaL_checkany(L, 1);
    buf_init(&e.b, small, sizeof small, 0);
    if (encode_value(&e, L, 1, err, sizeof err)) {
        buf_free(&e.b);
        return luaL_error(L, "%s", err);
    }
    if (!e.b.heap) {
        lua_pushlstring(L, e.b.p, e.b.len);
        return 1;
    }
    lua_pushcfunction(L, push_text);
    lua_pushlightuserdata(L, &e.b);
    int rc = lua_pcall(L, 1, 1, 0);
    buf_free(&e.b);
    return rc == LUA_OK ? 1 : lua_error(L);
}

/* tf.json.decode(s) -> value | nil, "byte N: why" */
static int l_decode(lua_State *L)
{
    char err[160];
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    if (lua_json_decode(L, s, n, err, sizeof err)) {
        luaL_pushfail(L);
        lua_pushstring(L, err);
        return 2;
    }
    return 1;
}

void lua_json_mark_array(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    push_array_mt(L);
    lua_setmetatable(L, idx);
}

/* tf.json.array([t]) -> t, marked to encode as an array even when empty */
static int l_array(lua_State *L)
{
    if (lua_isnoneornil(L, 1)) lua_newtable(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_json_mark_array(L, 1);
    return 1;
}

int luaopen_tf_json(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"encode", l_encode}, {"decode", l_decode}, {"array", l_array}, {"order", l_order}, {NULL, NULL},
    };
    luaL_newlib(L, fns);
    lua_json_pushnull(L);
    lua_setfield(L, -2, "null");
    return 1;
}
