/* libFuzzer target: tf.json.decode (core/lua_json.c) on any bytes, in a VM
 * with a small memory cap. A refusal says where ("byte N: ..."); an accepted
 * text re-encodes to a text that decodes and encodes to itself. */
#include "lua_json.h"
#include "mem.h"

#include <assert.h>
#include <lauxlib.h>
#include <lualib.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t used;

/* 8 MB at most, so a huge array is a memory error, not an out-of-memory kill. */
static void *capped(void *ud, void *p, size_t osize, size_t nsize)
{
    (void)ud;
    if (!p) osize = 0;
    if (nsize == 0) {
        free(p);
        used -= osize;
        return NULL;
    }
    if (nsize > osize && used + (nsize - osize) > 8u << 20) return NULL;
    void *q = realloc(p, nsize);
    if (q) used = used - osize + nsize;
    return q;
}

struct call {
    const char *s;
    size_t len;
    int rc;
    char err[160];
};

static int decode(lua_State *L)
{
    struct call *c = lua_touserdata(L, 1);
    c->rc = lua_json_decode(L, c->s, c->len, c->err, sizeof c->err);
    return c->rc ? 0 : 1;
}

/* Decodes s under lua_pcall: 1 with the value pushed, 0 refused, -1 out of memory. */
static int decode_protected(lua_State *L, const char *s, size_t len)
{
    struct call c = {s, len, -1, ""};
    lua_pushcfunction(L, decode);
    lua_pushlightuserdata(L, &c);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        lua_pop(L, 1);
        return -1;
    }
    if (c.rc) {
        lua_pop(L, 1);
        assert(!strncmp(c.err, "byte ", 5));
        return 0;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    used = 0;
    lua_State *L = lua_newstate(capped, NULL);
    if (!L) return 0;
    if (decode_protected(L, (const char *)data, size) == 1) {
        char err[160];
        size_t n1, n2;
        char *e1 = lua_json_encode(L, -1, &n1, err, sizeof err);
        if (e1 && decode_protected(L, e1, n1) == 1) {
            char *e2 = lua_json_encode(L, -1, &n2, err, sizeof err);
            assert(e2 && n1 == n2 && !memcmp(e1, e2, n1));
            mem_free(e2);
        }
        mem_free(e1);
    }
    lua_close(L);
    return 0;
}
