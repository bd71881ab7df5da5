/* tf.job: plugins register periodic jobs while they load, name first like
 * tf.strategy and tf.metrics:
 *   tf.job.every("tick_aggregator", "5s", fn, { timeout = "30s", overlap = "skip" })
 *   tf.job.cron("maintenance", "*\/5 * * * *", fn, { jitter = "10s" })
 * Definitions are checked here (so `tickforge check` and a reload report
 * file:line), kept in the VM's registry, and copied into the generation for
 * the scheduler (sched.c). A job worker then runs one with lua_job_run: the
 * ctx it gets and how its answer is read live here, not in the scheduler. */
#include "lua_job.h"

#include "acct.h"
#include "cron.h"
#include "lua_json.h"
#include "lua_tf.h"
#include "mem.h"
#include "units.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char jobs_key = 0; /* registry: array of job tables, in registration order */

/* A duration argument (units.h: "500ms", "5s", "2m", "1h", "1d", or a
 * number of seconds) in ms; -1 if it is not one. */
static long long duration_ms(lua_State *L, int idx)
{
    double ms;
    if (lua_type(L, idx) == LUA_TNUMBER) {
        double s = lua_tonumber(L, idx);
        return s >= 0 && s < 1e9 ? (long long)(s * 1000 + 0.5) : -1;
    }
    if (lua_type(L, idx) != LUA_TSTRING || units_duration_ms(lua_tostring(L, idx), &ms) ||
        ms >= 1e15)
        return -1;
    return (long long)(ms + 0.5);
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

/* "file:line:" of the nearest Lua caller (a pcall in between is skipped). */
static void caller_where(lua_State *L, char *out, size_t cap)
{
    lua_Debug ar;
    out[0] = 0;
    for (int level = 1; lua_getstack(L, level, &ar); level++)
        if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
            snprintf(out, cap, "%s:%d:", ar.short_src, ar.currentline);
            return;
        }
}

/* An argument as the warning shows it: a number as is, a string quoted. */
static void show_arg(lua_State *L, int idx, char *out, size_t cap)
{
    if (lua_type(L, idx) == LUA_TNUMBER)
        snprintf(out, cap, "%.14g", lua_tonumber(L, idx));
    else
        snprintf(out, cap, "\"%.80s\"", lua_tostring(L, idx));
}

/* The first releases took the schedule first (tf.job.every("5s", "name",
 * fn)). Plugins written then still load: the order is recognised (a
 * duration, or a cron expression with its spaces, where the name should
 * be), the two are swapped and a warning says how to rewrite the call. */
static void accept_old_order(lua_State *L, const char *kind)
{
    int old;
    if (!strcmp(kind, "every"))
        old = duration_ms(L, 1) >= 0 && lua_type(L, 2) == LUA_TSTRING && duration_ms(L, 2) < 0;
    else
        old = lua_type(L, 1) == LUA_TSTRING && strchr(lua_tostring(L, 1), ' ') &&
              lua_type(L, 2) == LUA_TSTRING && !strchr(lua_tostring(L, 2), ' ');
    if (!old) return;
    char where[300], sched[100], name[100], msg[800];
    caller_where(L, where, sizeof where);
    show_arg(L, 1, sched, sizeof sched);
    show_arg(L, 2, name, sizeof name);
    snprintf(msg, sizeof msg,
             "%s warning: tf.job.%s(%s, %s, ...) has the old argument order; write tf.job.%s(%s, "
             "%s, fn, opts): "
             "the name first, as tf.strategy(name, ...)",
             where, kind, sched, name, kind, name, sched);
    lvm_warn(L, msg);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_replace(L, 1);
    lua_replace(L, 2);
}

/* Shared by every and cron: validates opts and appends the job. Arguments:
 * name, schedule (interval or cron expression), fn [, opts]. */
static int add_job(lua_State *L, const char *kind)
{
    accept_old_order(L, kind);
    const char *name = luaL_checkstring(L, 1);
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
        long long ms = duration_ms(L, 2);
        if (ms < 100 || ms > 366LL * 86400000)
            return luaL_error(L, "tf.job.every: interval must be from 100ms to 366d, such as \"5s\" or \"1m\"");
        lua_pushinteger(L, ms);
        lua_setfield(L, t, "every_ms");
    } else {
        struct cron c;
        char err[160];
        const char *spec = luaL_checkstring(L, 2);
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

static void jobs_free(struct lvm_job *jobs, int n)
{
    for (int i = 0; jobs && i < n; i++) {
        mem_free(jobs[i].name);
        mem_free(jobs[i].cron);
        mem_free(jobs[i].plugin);
    }
    mem_free(jobs);
}

/* Copies the jobs registered in L into a C array (mem_*; jobs_free). May
 * raise; *out is set first, so the caller frees it after an error or a -1
 * alike. */
static int extract(lua_State *L, struct lvm_job **out, int *nout)
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

/* ---- the generation's copy (lua_tf.h) ---- */

static int take(lua_State *L, struct lvm_gen *g)
{
    return extract(L, &g->jobs, &g->njobs);
}

static void drop(struct lvm_gen *g)
{
    jobs_free(g->jobs, g->njobs);
    g->jobs = NULL, g->njobs = 0;
}

/* The same job names in the same order. */
static int same(lua_State *L, const struct lvm_gen *g)
{
    struct lvm_gen mine = {0};
    int same = take(L, &mine) == 0 && mine.njobs == g->njobs;
    for (int i = 0; same && i < mine.njobs; i++)
        same = !strcmp(mine.jobs[i].name, g->jobs[i].name);
    drop(&mine);
    return same;
}

const struct lua_tf_decl lua_job_decl = {take, same, drop};

/* ---- one run, in a job worker's VM ---- */

/* Pushes job i's function (i indexes the extracted array). */
static void push_fn(lua_State *L, int i)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &jobs_key);
    lua_rawgeti(L, -1, i + 1);
    lua_getfield(L, -1, "fn");
    lua_replace(L, -3);
    lua_pop(L, 1);
}

/* ctx.log.info(msg [, fields]) etc.: tf.log.<level> with job=<name> added
 * to the fields. Upvalues: the job name, the tf.log function. */
static int ctx_log(lua_State *L)
{
    luaL_checkstring(L, 1);
    lua_settop(L, 2);
    lua_newtable(L);
    if (lua_istable(L, 2)) {
        lua_pushnil(L);
        while (lua_next(L, 2)) {
            lua_pushvalue(L, -2);
            lua_insert(L, -2);
            lua_rawset(L, 3);
        }
    }
    lua_pushvalue(L, lua_upvalueindex(1));
    lua_setfield(L, 3, "job");
    lua_pushvalue(L, lua_upvalueindex(2));
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 3);
    lua_call(L, 2, 0);
    return 0;
}

/* The job's ctx: name, scheduled, manual, reset_watermark, instance,
 * watermark (decoded; absent when there is none), log. */
static void push_ctx(lua_State *L, const struct lua_job_run *r)
{
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    char err[128];
    lua_createtable(L, 0, 7);
    lua_pushstring(L, r->name);
    lua_setfield(L, -2, "name");
    double scheduled = r->slot_ms ? (double)r->slot_ms / 1e3 : 0;
    if (!r->slot_ms) {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        scheduled = (double)((long long)t.tv_sec * 1000 + t.tv_nsec / 1000000) / 1e3;
    }
    lua_pushnumber(L, scheduled);
    lua_setfield(L, -2, "scheduled");
    lua_pushboolean(L, r->manual);
    lua_setfield(L, -2, "manual");
    lua_pushboolean(L, r->reset);
    lua_setfield(L, -2, "reset_watermark");
    lua_pushstring(L, r->instance);
    lua_setfield(L, -2, "instance");
    if (r->watermark && *r->watermark &&
        lua_json_decode(L, r->watermark, strlen(r->watermark), err, sizeof err) == 0)
        lua_setfield(L, -2, "watermark");
    lua_createtable(L, 0, 4);
    lua_getglobal(L, "tf");
    lua_getfield(L, -1, "log");
    for (int i = 0; i < 4; i++) {
        lua_pushstring(L, r->name);
        lua_getfield(L, -2, levels[i]);
        lua_pushcclosure(L, ctx_log, 2);
        lua_setfield(L, -4, levels[i]);
    }
    lua_pop(L, 2);
    lua_setfield(L, -2, "log");
}

/* Calls the job with its ctx and reads its answer into the run, inside the
 * protected call (everything that allocates does). */
static int call_job(lua_State *L)
{
    struct lua_job_run *r = lua_touserdata(L, 1);
    push_fn(L, r->idx);
    push_ctx(L, r);
    lua_call(L, 1, 1);
    if (!lua_istable(L, -1)) return 0;
    lua_getfield(L, -1, "rows");
    r->rows = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : (long long)lua_tonumber(L, -1);
    lua_getfield(L, -2, "note");
    if (lua_isstring(L, -1)) snprintf(r->note, sizeof r->note, "%s", lua_tostring(L, -1));
    lua_getfield(L, -3, "watermark");
    if (!lua_isnil(L, -1)) {
        char jerr[128];
        if (!(r->watermark_out = lua_json_encode(L, -1, NULL, jerr, sizeof jerr)))
            snprintf(r->error, sizeof r->error, "watermark: %s", jerr);
    }
    return 0;
}

enum lvm_status lua_job_run(struct lvm *vm, struct lua_job_run *r, int timeout_ms, char *err,
                            size_t errlen)
{
    lua_State *L = lvm_state(vm);
    r->rows = 0;
    r->note[0] = r->error[0] = 0;
    r->watermark_out = NULL;
    lua_pushcfunction(L, call_job);
    lua_pushlightuserdata(L, r);
    return lvm_call(vm, 1, 0, timeout_ms, err, errlen);
}
