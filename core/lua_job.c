/* tf.job: plugins register periodic jobs while they load.
 *   tf.job.every("5s", "tick_aggregator", fn, { timeout = "30s", overlap = "skip" })
 *   tf.job.cron("*\/5 * * * *", "maintenance", fn, { jitter = "10s" })
 * Definitions are checked here (so `tickforge check` and a reload report
 * file:line), kept in the VM's registry, and copied into the generation for
 * the scheduler (sched.c), which runs them in its own VMs. */
#include "acct.h"
#include "cron.h"
#include "lua_tf.h"
#include "lvm.h"
#include "mem.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char jobs_key = 0; /* registry: array of job tables, in registration order */

/* "500ms", "5s", "2m", "1h", "1d" or a number of seconds -> ms; -1 if bad. */
static long long duration_ms(lua_State *L, int idx)
{
    if (lua_type(L, idx) == LUA_TNUMBER) {
        double s = lua_tonumber(L, idx);
        return s >= 0 && s < 1e9 ? (long long)(s * 1000 + 0.5) : -1;
    }
    const char *s = lua_tostring(L, idx);
    if (!s) return -1;
    char *end;
    double v = strtod(s, &end);
    if (end == s || v < 0) return -1;
    double mul = !strcmp(end, "ms") ? 1 : !strcmp(end, "s") || !*end ? 1000 : !strcmp(end, "m") ? 60000
               : !strcmp(end, "h") ? 3600000 : !strcmp(end, "d") ? 86400000 : -1;
    if (mul < 0 || v * mul >= 1e15) return -1;
    return (long long)(v * mul + 0.5);
}

static void check_name(lua_State *L, const char *name)
{
    size_t n = strlen(name);
    int ok = n >= 1 && n <= 64;
    for (size_t i = 0; ok && i < n; i++)
        ok = name[i] == '_' || name[i] == '-' || name[i] == '.' || (name[i] >= 'a' && name[i] <= 'z') ||
             (name[i] >= 'A' && name[i] <= 'Z') || (name[i] >= '0' && name[i] <= '9');
    if (!ok) luaL_error(L, "tf.job: name '%s' must be 1..64 letters, digits, '_', '-' or '.'", name);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &jobs_key);
    for (lua_Integer i = 1; i <= luaL_len(L, -1); i++) {
        lua_rawgeti(L, -1, i);
        lua_getfield(L, -1, "name");
        if (!strcmp(lua_tostring(L, -1), name)) luaL_error(L, "tf.job: a job named '%s' is already registered", name);
        lua_pop(L, 2);
    }
    lua_pop(L, 1);
}

/* Shared by every and cron: validates opts and appends the job. */
static int add_job(lua_State *L, const char *kind)
{
    const char *name = luaL_checkstring(L, 2);
    luaL_checktype(L, 3, LUA_TFUNCTION);
    if (!lua_isnoneornil(L, 4)) luaL_checktype(L, 4, LUA_TTABLE);
    if (!lvm_loading(L)) return luaL_error(L, "tf.job.%s: jobs may only be registered while a plugin loads", kind);
    check_name(L, name);

    lua_createtable(L, 0, 10);
    int t = lua_gettop(L);
    lua_pushstring(L, name);
    lua_setfield(L, t, "name");
    lua_pushvalue(L, 3);
    lua_setfield(L, t, "fn");
    lvm_push_caller_file(L);
    lua_setfield(L, t, "plugin");
    if (!strcmp(kind, "every")) {
        long long ms = duration_ms(L, 1);
        if (ms < 100 || ms > 366LL * 86400000)
            return luaL_error(L, "tf.job.every: interval must be from 100ms to 366d, such as \"5s\" or \"1m\"");
        lua_pushinteger(L, ms);
        lua_setfield(L, t, "every_ms");
    } else {
        struct cron c;
        char err[160];
        const char *spec = luaL_checkstring(L, 1);
        if (cron_parse(&c, spec, err, sizeof err)) return luaL_error(L, "tf.job.cron: '%s': %s", spec, err);
        lua_pushstring(L, spec);
        lua_setfield(L, t, "cron");
    }
    long long timeout = 60000, jitter = 0;
    int queue = 0, at_start = 0, enabled = 1;
    if (lua_istable(L, 4)) {
        lua_getfield(L, 4, "timeout");
        if (!lua_isnil(L, -1) && ((timeout = duration_ms(L, -1)) < 1 || timeout > 86400000))
            return luaL_error(L, "tf.job: opts.timeout must be from 1ms to 1d, such as \"30s\"");
        lua_getfield(L, 4, "jitter");
        if (!lua_isnil(L, -1) && ((jitter = duration_ms(L, -1)) < 0 || jitter > 3600000))
            return luaL_error(L, "tf.job: opts.jitter must be from 0 to 1h, such as \"2s\"");
        lua_getfield(L, 4, "overlap");
        const char *o = lua_tostring(L, -1);
        if (o && !strcmp(o, "queue")) queue = 1;
        else if (!lua_isnil(L, -1) && !(o && !strcmp(o, "skip")))
            return luaL_error(L, "tf.job: opts.overlap must be \"skip\" or \"queue\"");
        lua_getfield(L, 4, "run_at_start");
        at_start = lua_toboolean(L, -1);
        lua_getfield(L, 4, "enabled");
        enabled = lua_isnil(L, -1) || lua_toboolean(L, -1);
        lua_settop(L, t);
    }
    lua_pushinteger(L, timeout);
    lua_setfield(L, t, "timeout_ms");
    lua_pushinteger(L, jitter);
    lua_setfield(L, t, "jitter_ms");
    lua_pushboolean(L, queue);
    lua_setfield(L, t, "queue");
    lua_pushboolean(L, at_start);
    lua_setfield(L, t, "run_at_start");
    lua_pushboolean(L, enabled);
    lua_setfield(L, t, "enabled");
    lua_rawgetp(L, LUA_REGISTRYINDEX, &jobs_key);
    lua_pushvalue(L, t);
    lua_rawseti(L, -2, luaL_len(L, -2) + 1);
    return 0;
}

static int l_every(lua_State *L)
{
    return add_job(L, "every");
}

static int l_cron(lua_State *L)
{
    return add_job(L, "cron");
}

int luaopen_tf_job(lua_State *L)
{
    static const luaL_Reg fns[] = {{"every", l_every}, {"cron", l_cron}, {NULL, NULL}};
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &jobs_key);
    luaL_newlib(L, fns);
    return 1;
}

void lua_job_free(struct lvm_job *jobs, int n)
{
    for (int i = 0; jobs && i < n; i++) {
        mem_free(jobs[i].name);
        mem_free(jobs[i].cron);
        mem_free(jobs[i].plugin);
    }
    mem_free(jobs);
}

int lua_job_extract(lua_State *L, struct lvm_job **out, int *nout)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &jobs_key);
    int n = lua_istable(L, -1) ? (int)luaL_len(L, -1) : 0;
    struct lvm_job *j = mem_calloc((size_t)(n ? n : 1), sizeof *j);
    if (!j) {
        lua_pop(L, 1);
        return -1;
    }
    *out = j; /* at once: after a Lua error here the caller frees it */
    *nout = n;
    int rc = 0;
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, -1, i + 1);
        int t = lua_gettop(L);
        lua_getfield(L, t, "name");
        j[i].name = mem_strdup(lua_tostring(L, -1));
        lua_getfield(L, t, "every_ms");
        j[i].every_ms = lua_tointeger(L, -1);
        lua_getfield(L, t, "cron");
        j[i].cron = lua_isstring(L, -1) ? mem_strdup(lua_tostring(L, -1)) : NULL;
        lua_getfield(L, t, "timeout_ms");
        j[i].timeout_ms = (int)lua_tointeger(L, -1);
        lua_getfield(L, t, "jitter_ms");
        j[i].jitter_ms = (int)lua_tointeger(L, -1);
        lua_getfield(L, t, "queue");
        j[i].overlap_queue = lua_toboolean(L, -1);
        lua_getfield(L, t, "run_at_start");
        j[i].run_at_start = lua_toboolean(L, -1);
        lua_getfield(L, t, "enabled");
        j[i].enabled = lua_toboolean(L, -1);
        lua_getfield(L, t, "plugin");
        j[i].plugin = mem_strdup(lua_isstring(L, -1) ? lua_tostring(L, -1) : "");
        if (!j[i].name || !j[i].plugin || (!j[i].every_ms && !j[i].cron)) rc = -1;
        else j[i].acct = acct_entry(ACCT_JOB, j[i].name, j[i].plugin);
        lua_settop(L, t - 1);
    }
    lua_pop(L, 1);
    return rc;
}

void lua_job_push(lua_State *L, int i)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &jobs_key);
    lua_rawgeti(L, -1, i + 1);
    lua_getfield(L, -1, "fn");
    lua_replace(L, -3);
    lua_pop(L, 1);
}
