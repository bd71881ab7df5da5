/* tf.series: a Lua userdata holding a contiguous array of doubles, so long
 * series (query columns, indicator outputs) cross the C/Lua boundary without
 * becoming tables. The data lives inside the userdata and is owned by the Lua
 * GC; a returned pointer is valid while the userdata is reachable (keep it on
 * the stack). These functions never allocate through mem_*: Lua owns it all. */
#ifndef LUA_SERIES_H
#define LUA_SERIES_H

#include <stddef.h>

#include <lua.h>

#define LUA_SERIES_MT "tf.series" /* metatable name in the registry */

/* Pushes a new series of n doubles (uninitialised) and returns its data.
 * Raises a Lua error on OOM or absurd n. The Lua GC owns the memory. */
double *lua_series_push(lua_State *L, size_t n);

/* Pushes a new series copying n doubles from src. */
double *lua_series_push_copy(lua_State *L, const double *src, size_t n);

/* Checks that argument idx is a series, or a Lua array table of numbers
 * (nil holes and non-numbers: error; converted into a new series that is left
 * in place of the table at idx so it stays alive). Returns data and length. */
double *lua_series_check(lua_State *L, int idx, size_t *n);

/* Like lua_series_check but returns NULL (and n = 0) when idx is not a series
 * or table, without raising. */
double *lua_series_test(lua_State *L, int idx, size_t *n);

/* Pushes the tf.series namespace table: tf.series.new(n [, fill]),
 * tf.series.from(table), tf.series.is(v). */
int luaopen_tf_series(lua_State *L);

#endif
