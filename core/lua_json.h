/* tf.json: JSON <-> Lua values. Decoding uses cJSON; encoding walks the Lua
 * value straight into a buffer. Integers stay integers both ways, JSON null
 * is tf.json.null, and arrays carry a metatable so [] survives a round trip
 * (mark new ones with tf.json.array(t)). Also used by the C core (config,
 * HTTP responses) without raising Lua errors. */
#ifndef LUA_JSON_H
#define LUA_JSON_H

#include <lua.h>
#include <stddef.h>

/* Encodes the value at idx. Returns a NUL-terminated string the caller
 * frees with mem_free (its length in *len if len is not NULL), or NULL with
 * a message in err (a cycle, a function, too deep). Never raises. */
char *lua_json_encode(lua_State *L, int idx, size_t *len, char *err, size_t errlen);
#define lua_json_encode_value(L, idx, err, errlen) lua_json_encode(L, idx, NULL, err, errlen)

/* Decodes s[0..len) and pushes the value. Trailing whitespace and NULs are
 * allowed. Returns 0, or -1 with "byte N: <why>" in err and nothing pushed.
 * May raise a memory error (call it protected); nothing leaks then. */
int lua_json_decode(lua_State *L, const char *s, size_t len, char *err, size_t errlen);

/* Gives the table at idx a metatable whose __jsonorder lists keys to encode
 * first, in that order (others follow). keys is a static NULL-terminated
 * array; its address identifies the cached metatable. May raise. */
void lua_json_order(lua_State *L, int idx, const char *const *keys);

/* Marks the table at idx to encode as an array even when empty (what
 * tf.json.array does). May raise a memory error. */
void lua_json_mark_array(lua_State *L, int idx);

/* Pushes the light userdata that stands for JSON null. */
void lua_json_pushnull(lua_State *L);

#endif
