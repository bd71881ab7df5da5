/* Lua VM lifecycle: a counting allocator that caps each VM's memory, a
 * count hook that enforces a wall-time deadline on every call (once it
 * fires it fires again on every instruction, so pcall cannot swallow it),
 * the plugin sandbox built from an allow-list, plugin loading (routes are
 * registered by lua_route.c, jobs by lua_job.c), handler tasks, accounting,
 * and generations (config + plugins) published atomically for hot reload.
 * A VM is owned by one thread; generations are shared and refcounted. */
#include "lvm.h"

#include "clock.h"
#include "config.h"
#include "lint.h"
#include "log.h"
#include "lua_json.h"
#include "lua_tf.h"
#include "mem.h"

#include <dirent.h>
#include <lauxlib.h>
#include <lualib.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#define HOOK_COUNT 1000 /* instructions between deadline checks */
#define SPARE_TASKS 64  /* finished task coroutines a VM keeps for reuse */

struct lvm {
    lua_State *L;
    enum lvm_mode mode;
    struct lvm_gen *gen;
    struct lvm_host *host;
    size_t mem_used, mem_limit;
    long long allocated;   /* bytes ever allocated (growth of blocks counts its growth) */
    struct lvm_acct acct;  /* the current or last lvm_call */
    int mem_hit;           /* the allocator refused a request since the last call */
    _Atomic long long deadline_ns; /* CLOCK_MONOTONIC; 0 = none; lvm_abort sets 1 */
    int killed;            /* the deadline passed; keep raising until unwound */
    int loading;           /* plugins are loading: tf.route is allowed */
    struct lvm_task *task; /* the task being resumed now, or NULL */
    /* finished coroutines kept for the next tasks (anchored by their refs):
     * a request then costs no thread allocation, pcall or registry ref */
    lua_State *spare_co[SPARE_TASKS];
    int spare_ref[SPARE_TASKS], nspare;
    char err_code[32];     /* the `code` field of the last error object, if it had one */
    char *errors;          /* load errors, one per line (mem_*) */
    size_t errors_len;
    char *warnings;        /* static-check warnings, one per line (mem_*) */
    size_t warnings_len;
};

/* A source file as the generation first read it. Every VM of a generation
 * loads plugins and required modules from these snapshots, so a worker that
 * builds its VM after someone edited a file still runs the validated code. */
struct gen_file {
    char *path;
    char *data;
    size_t len;
    struct gen_file *next;
};

/* A plugin folder's modules as the generation first listed them, so every
 * VM of a generation sees the same drop-in files (tf.plugins.modules). */
struct gen_listing {
    char *dir;     /* "strategies" */
    char **names;  /* NULL-terminated, sorted: "strategies.macd_cross", ... */
    struct gen_listing *next;
};

struct gen_private {
    struct lvm_gen pub;
    atomic_int refs;
    pthread_mutex_t files_lock; /* guards files, plugins and listings */
    struct gen_file *files;
    char **plugins; /* plugin paths in load order; NULL until first listed */
    struct gen_listing *listings;
};

static int load_source(lua_State *L, struct lvm_gen *g, const char *path);
static int cmp_str(const void *a, const void *b);

static const char ctx_key = 0;    /* registry: light userdata -> struct lvm */
static const char loaded_key = 0; /* registry: sandboxed require's cache */

static struct lvm *ctx(lua_State *L)
{
    lua_rawgetp(L, LUA_REGISTRYINDEX, &ctx_key);
    struct lvm *vm = lua_touserdata(L, -1);
    lua_pop(L, 1);
    return vm;
}

struct lvm_host *lvm_host(lua_State *L)
{
    struct lvm *vm = ctx(L);
    return vm ? vm->host : NULL;
}

struct lvm_gen *lvm_gen_of(lua_State *L)
{
    struct lvm *vm = ctx(L);
    return vm ? vm->gen : NULL;
}

const struct config *lvm_config(lua_State *L)
{
    struct lvm_gen *g = lvm_gen_of(L);
    return g ? g->cfg : NULL;
}

lua_State *lvm_state(struct lvm *vm)
{
    return vm->L;
}

int lvm_loading(lua_State *L)
{
    struct lvm *vm = ctx(L);
    return vm && vm->loading;
}

int lvm_is_plugin(lua_State *L)
{
    struct lvm *vm = ctx(L);
    return vm && vm->mode == LVM_PLUGIN;
}

void lvm_abort(struct lvm *vm)
{
    long long d = atomic_load(&vm->deadline_ns);
    if (d) atomic_compare_exchange_strong(&vm->deadline_ns, &d, 1);
}

struct lvm_gen *lvm_gen(struct lvm *vm)
{
    return vm->gen;
}

size_t lvm_memory(struct lvm *vm)
{
    return vm->mem_used;
}

/* ---- allocator and time limit ---- */

static void *vm_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    struct lvm *vm = ud;
    size_t old = ptr ? osize : 0;
    if (nsize == 0) {
        free(ptr);
        vm->mem_used -= old;
        return NULL;
    }
    if (nsize > old && vm->mem_limit && vm->mem_used - old + nsize > vm->mem_limit) {
        vm->mem_hit = 1;
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (p) {
        vm->mem_used = vm->mem_used - old + nsize;
        if (nsize > old) vm->allocated += (long long)(nsize - old);
    }
    return p;
}

static long long thread_cpu_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

struct lvm_acct *lvm_acct(lua_State *L)
{
    static _Thread_local struct lvm_acct nowhere; /* a VM-less state: counted nowhere */
    struct lvm *vm = ctx(L);
    if (!vm) return &nowhere;
    return vm->task ? &vm->task->acct : &vm->acct;
}

const struct lvm_acct *lvm_call_acct(struct lvm *vm)
{
    return &vm->acct;
}

static void vm_hook(lua_State *L, lua_Debug *ar)
{
    struct lvm *vm = ctx(L);
    if (!vm) return;
    struct lvm_task *t = vm->task; /* a task has its own deadline */
    long long deadline = t ? t->deadline_ns : vm->deadline_ns;
    int *killed = t ? &t->killed : &vm->killed;
    if (!*killed && (!deadline || clock_ns() < deadline)) return;
    if (!*killed) {
        *killed = 1;
        /* from now on, every instruction, in this coroutine and the one it runs in */
        lua_sethook(L, vm_hook, LUA_MASKCOUNT, 1);
        if (t && L != t->co) lua_sethook(t->co, vm_hook, LUA_MASKCOUNT, 1);
        if (!t && L != vm->L) lua_sethook(vm->L, vm_hook, LUA_MASKCOUNT, 1);
    }
    luaL_error(L, "time limit exceeded");
}

/* Adds a traceback; an error object that is a table (tf.db raises
 * { code = "unavailable", message = ... }) is shown through its __tostring
 * and its code kept for lvm_error_code. */
/* A message handler's work: the error at 1 keeps its `code` (a tf.* error
 * table) in code, and becomes its text with co's traceback from level. */
static int traceback_keeping_code(lua_State *L, lua_State *co, int level, char *code, size_t codelen)
{
    if (lua_type(L, 1) == LUA_TTABLE && code) {
        lua_getfield(L, 1, "code");
        if (lua_type(L, -1) == LUA_TSTRING) snprintf(code, codelen, "%s", lua_tostring(L, -1));
        lua_pop(L, 1);
    }
    const char *msg = lua_type(L, 1) == LUA_TSTRING ? lua_tostring(L, 1) : luaL_tolstring(L, 1, NULL);
    luaL_traceback(L, co, msg, level);
    return 1;
}

static int msgh(lua_State *L)
{
    struct lvm *vm = ctx(L);
    return traceback_keeping_code(L, L, 1, vm ? vm->err_code : NULL, vm ? sizeof vm->err_code : 0);
}

const char *lvm_error_code(struct lvm *vm)
{
    return vm->err_code;
}

enum lvm_status lvm_call(struct lvm *vm, int nargs, int nresults, int timeout_ms, char *err,
                         size_t errlen)
{
    lua_State *L = vm->L;
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, msgh);
    lua_insert(L, base);
    vm->killed = 0;
    vm->mem_hit = 0;
    vm->err_code[0] = 0;
    vm->deadline_ns = timeout_ms > 0 ? clock_ns() + (long long)timeout_ms * 1000000LL : 0;
    memset(&vm->acct, 0, sizeof vm->acct);
    long long cpu0 = thread_cpu_ns(), alloc0 = vm->allocated;
    int rc = lua_pcall(L, nargs, nresults, base);
    vm->acct.cpu_ns = thread_cpu_ns() - cpu0;
    vm->acct.alloc_bytes = vm->allocated - alloc0;
    vm->deadline_ns = 0;
    enum lvm_status st = LVM_OK;
    if (rc == LUA_OK && vm->killed) { /* the kill was swallowed (a coroutine); results are void */
        lua_settop(L, base);
        snprintf(err, errlen, "time limit exceeded");
        st = LVM_TIMEOUT;
    } else if (rc != LUA_OK) {
        const char *m = lua_tostring(L, -1);
        snprintf(err, errlen, "%s", m ? m : "(no message)");
        st = vm->killed ? LVM_TIMEOUT : (rc == LUA_ERRMEM || vm->mem_hit) ? LVM_NOMEM : LVM_ERROR;
        lua_pop(L, 1);
    }
    lua_remove(L, base);
    if (vm->killed) {
        vm->killed = 0;
        lua_sethook(L, vm_hook, LUA_MASKCOUNT, HOOK_COUNT);
    }
    if (st != LVM_OK) lua_gc(L, LUA_GCCOLLECT);
    return st;
}

/* ---- the plugin file registering something ---- */

void lvm_push_caller_file(lua_State *L)
{
    const struct config *cfg = lvm_config(L);
    const char *dir = cfg && cfg->plugins_dir ? cfg->plugins_dir : "plugins";
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/') dl--;
    lua_Debug ar;
    for (int level = 1; lua_getstack(L, level, &ar); level++) {
        if (!lua_getinfo(L, "S", &ar) || ar.source[0] != '@') continue;
        const char *src = ar.source + 1;
        if (!strncmp(src, "./", 2)) src += 2;
        if (!strncmp(src, dir, dl) && src[dl] == '/') src += dl + 1;
        lua_pushstring(L, src);
        return;
    }
    lua_pushliteral(L, "");
}

/* ---- tf.plugins ---- */

/* The sorted module names of dir's *.lua files (init.lua excepted) as a
 * NULL-terminated mem_* array; an absent directory is an empty list. NULL
 * when out of memory. */
static char **list_modules(const char *root, const char *dir)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", root, dir);
    int n = 0, cap = 8;
    char **names = mem_calloc((size_t)cap + 1, sizeof *names);
    DIR *d = opendir(path);
    if (!names || !d) {
        if (d) closedir(d);
        return names;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t len = strlen(e->d_name);
        char p[1280], mod[512];
        struct stat st;
        if (e->d_name[0] == '.' || len <= 4 || strcmp(e->d_name + len - 4, ".lua") || !strcmp(e->d_name, "init.lua"))
            continue;
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        if (stat(p, &st) != 0 || !S_ISREG(st.st_mode)) continue;
        if (n == cap) {
            char **more = mem_realloc(names, ((size_t)cap * 2 + 1) * sizeof *names);
            if (!more) break;
            names = more;
            cap *= 2;
        }
        snprintf(mod, sizeof mod, "%s.%.*s", dir, (int)(len - 4), e->d_name);
        for (char *c = mod; *c; c++)
            if (*c == '/') *c = '.';
        if ((names[n] = mem_strdup(mod))) n++;
    }
    closedir(d);
    names[n] = NULL;
    qsort(names, (size_t)n, sizeof *names, cmp_str);
    return names;
}

/* tf.plugins.modules(dir) -> { "dir.name", ... }: the modules a plugin
 * folder holds (every .lua file in plugins/<dir> but init.lua), sorted, for
 * require: a folder plugin's init.lua loads its drop-in files with it. */
static int l_plugin_modules(lua_State *L)
{
    const char *dir = luaL_checkstring(L, 1);
    struct lvm *vm = ctx(L);
    size_t len = strlen(dir);
    int ok = len > 0 && len < 200 && dir[0] != '.' && !strstr(dir, "..");
    for (const char *p = dir; ok && *p; p++)
        ok = *p == '_' || *p == '-' || *p == '.' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
             (*p >= '0' && *p <= '9');
    if (!ok) return luaL_error(L, "tf.plugins.modules: invalid folder name '%s'", dir);
    if (!vm || !vm->gen || !vm->gen->cfg) return luaL_error(L, "tf.plugins.modules: no plugin directory configured");
    char rel[256];
    snprintf(rel, sizeof rel, "%s", dir);
    for (char *p = rel; *p; p++)
        if (*p == '.') *p = '/';
    struct gen_private *gp = (struct gen_private *)vm->gen;
    pthread_mutex_lock(&gp->files_lock);
    struct gen_listing *l = gp->listings;
    while (l && strcmp(l->dir, rel)) l = l->next;
    if (!l && (l = mem_calloc(1, sizeof *l))) {
        l->dir = mem_strdup(rel);
        l->names = list_modules(vm->gen->cfg->plugins_dir, rel);
        if (!l->dir || !l->names) {
            for (char **n = l->names; n && *n; n++) mem_free(*n);
            mem_free(l->names);
            mem_free(l->dir);
            mem_free(l);
            l = NULL;
        } else {
            l->next = gp->listings;
            gp->listings = l;
        }
    }
    pthread_mutex_unlock(&gp->files_lock);
    if (!l) return luaL_error(L, "tf.plugins.modules: out of memory");
    lua_newtable(L);
    for (int i = 0; l->names[i]; i++) { /* the listing lives as long as the generation */
        lua_pushstring(L, l->names[i]);
        lua_rawseti(L, -2, i + 1);
    }
    return 1;
}

int luaopen_tf_plugins(lua_State *L)
{
    static const luaL_Reg fns[] = {{"modules", l_plugin_modules}, {NULL, NULL}};
    luaL_newlib(L, fns);
    return 1;
}

/* ---- tasks ---- */

/* Under lua_pcall on the main thread: the coroutine, anchored. */
static int task_new(lua_State *L)
{
    struct lvm_task *t = lua_touserdata(L, 1);
    t->co = lua_newthread(L);
    lua_pushcfunction(t->co, t->body);
    lua_pushlightuserdata(t->co, t->ud);
    t->ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return 0;
}

int lvm_task_start(struct lvm *vm, struct lvm_task *t)
{
    t->co = NULL;
    t->ref = LUA_NOREF;
    t->killed = t->waiting = t->stray_yield = 0;
    atomic_store(&t->abandoned, 0);
    t->abort = NULL;
    t->abort_ud = NULL;
    memset(&t->acct, 0, sizeof t->acct);
    t->yielded_at = 0;
    t->err_code[0] = 0;
    if (vm->nspare) { /* a reset coroutine: its stack is empty and has room */
        vm->nspare--;
        t->co = vm->spare_co[vm->nspare];
        t->ref = vm->spare_ref[vm->nspare];
        lua_sethook(t->co, vm_hook, LUA_MASKCOUNT, HOOK_COUNT); /* a killed one had every instruction */
        lua_pushcfunction(t->co, t->body);
        lua_pushlightuserdata(t->co, t->ud);
        return 0;
    }
    lua_pushcfunction(vm->L, task_new);
    lua_pushlightuserdata(vm->L, t);
    if (lua_pcall(vm->L, 1, 0, 0) != LUA_OK) {
        lua_pop(vm->L, 1);
        t->co = NULL;
        return -1;
    }
    return 0;
}

/* Under lua_pcall on the main thread: the message of the task's error
 * (argument 1) with the coroutine's traceback (argument 2). */
static int task_msg(lua_State *L)
{
    struct lvm_task *t = lua_touserdata(L, 3);
    lua_State *co = lua_tothread(L, 2);
    return traceback_keeping_code(L, co, 0, t->err_code, sizeof t->err_code);
}

enum lvm_status lvm_task_resume(struct lvm *vm, struct lvm_task *t, char *err, size_t errlen)
{
    lua_State *co = t->co;
    int nres, nargs = lua_status(co) == LUA_OK ? 1 : 0;
    if (!t->killed && t->deadline_ns && clock_ns() >= t->deadline_ns) {
        t->killed = 1; /* it waited past its limit: it dies at its next instruction */
        lua_sethook(co, vm_hook, LUA_MASKCOUNT, 1);
    }
    if (!t->killed && atomic_load(&t->abandoned)) {
        t->killed = 1; /* nobody waits for its answer: it dies at its next instruction */
        lua_sethook(co, vm_hook, LUA_MASKCOUNT, 1);
    }
    vm->task = t;
    vm->mem_hit = 0;
    t->waiting = 0;
    t->abort = NULL;
    t->abort_ud = NULL;
    long long cpu0 = clock_ns(), alloc0 = vm->allocated;
    if (t->yielded_at) t->acct.wait_ns += cpu0 - t->yielded_at;
    int rc = lua_resume(co, vm->L, nargs, &nres);
    while (rc == LUA_YIELD && !t->waiting) {
        /* coroutine.yield in the handler itself: nothing would wake it */
        lua_pop(co, nres);
        t->killed = 1;
        t->stray_yield = 1;
        lua_sethook(co, vm_hook, LUA_MASKCOUNT, 1);
        rc = lua_resume(co, vm->L, 0, &nres);
    }
    vm->task = NULL;
    long long cpu1 = clock_ns();
    t->acct.cpu_ns += cpu1 - cpu0;
    t->acct.alloc_bytes += vm->allocated - alloc0;
    t->yielded_at = 0;
    if (rc == LUA_YIELD) {
        t->yielded_at = cpu1;
        lua_pop(co, nres);
        return LVM_YIELD;
    }
    if (t->stray_yield) {
        if (rc > LUA_YIELD) lua_pop(co, 1);
        snprintf(err, errlen, "the handler called coroutine.yield outside a coroutine of its own");
        return LVM_ERROR;
    }
    if (rc == LUA_OK) {
        if (!t->killed) return LVM_OK;
        snprintf(err, errlen, "time limit exceeded"); /* the kill was swallowed by a coroutine */
        return LVM_TIMEOUT;
    }
    enum lvm_status st = t->killed ? LVM_TIMEOUT : (rc == LUA_ERRMEM || vm->mem_hit) ? LVM_NOMEM : LVM_ERROR;
    lua_State *L = vm->L;
    lua_pushcfunction(L, task_msg);
    lua_xmove(co, L, 1);
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->ref);
    lua_pushlightuserdata(L, t);
    if (lua_pcall(L, 3, 1, 0) == LUA_OK && lua_tostring(L, -1))
        snprintf(err, errlen, "%s", lua_tostring(L, -1));
    else
        snprintf(err, errlen, "(an error that could not be shown: out of memory)");
    lua_pop(L, 1);
    return st;
}

void lvm_task_end(struct lvm *vm, struct lvm_task *t)
{
    if (!t->co) return;
    /* closes pending to-be-closed variables, empties its stack */
    if (lua_resetthread(t->co) == LUA_OK && vm->nspare < SPARE_TASKS) {
        vm->spare_co[vm->nspare] = t->co;
        vm->spare_ref[vm->nspare++] = t->ref;
    } else {
        luaL_unref(vm->L, LUA_REGISTRYINDEX, t->ref);
    }
    t->co = NULL;
    t->ref = LUA_NOREF;
}

struct lvm_task *lvm_task_of(lua_State *L)
{
    struct lvm *vm = ctx(L);
    struct lvm_task *t = vm ? vm->task : NULL;
    return t && t->co == L && !t->killed && lua_isyieldable(L) ? t : NULL;
}

struct lvm_task *lvm_task_running(lua_State *L)
{
    struct lvm *vm = ctx(L);
    return vm ? vm->task : NULL;
}

int lvm_task_dead(lua_State *L)
{
    struct lvm *vm = ctx(L);
    struct lvm_task *t = vm ? vm->task : NULL;
    return t && (t->killed || atomic_load(&t->abandoned) || (t->deadline_ns && clock_ns() >= t->deadline_ns));
}

int lvm_task_yield(lua_State *L, lua_KContext ctx_, lua_KFunction k)
{
    struct lvm *vm = ctx(L);
    if (vm && vm->task) vm->task->waiting = 1;
    return lua_yieldk(L, 0, ctx_, k);
}

void lvm_task_wake(struct lvm_task *t)
{
    t->wake(t);
}

long long lvm_task_deadline_ms(const struct lvm_task *t)
{
    return t->deadline_ns ? t->deadline_ns / 1000000LL : 0;
}

/* ---- what plugins declare (lua_tf.h) ---- */

struct decl_call {
    const struct lua_tf_decl *d;
    struct lvm_gen *g;
    int take; /* else same */
    int rc;
};

static int decl_protected(lua_State *L)
{
    struct decl_call *c = lua_touserdata(L, 1);
    c->rc = c->take ? c->d->take(L, c->g) : c->d->same(L, c->g);
    return 0;
}

/* d's take or same under lua_pcall; -1 (take) or 0 (same) on a Lua error. */
static int decl_call(struct lvm *vm, const struct lua_tf_decl *d, struct lvm_gen *g, int take)
{
    struct decl_call c = {d, g, take, take ? -1 : 0};
    lua_pushcfunction(vm->L, decl_protected);
    lua_pushlightuserdata(vm->L, &c);
    if (lua_pcall(vm->L, 1, 0, 0) != LUA_OK) {
        lua_pop(vm->L, 1);
        return take ? -1 : 0;
    }
    return c.rc;
}

static void drop_decls(struct lvm_gen *g)
{
    for (const struct lua_tf_decl *const *d = lua_tf_decls; *d; d++)
        (*d)->drop(g);
}

/* Copies everything vm's plugins declared into g; -1 when out of memory
 * (nothing is kept then). */
static int take_decls(struct lvm *vm, struct lvm_gen *g)
{
    for (const struct lua_tf_decl *const *d = lua_tf_decls; *d; d++) {
        if (decl_call(vm, *d, g, 1) != 0) {
            drop_decls(g);
            return -1;
        }
    }
    g->declared = 1;
    return 0;
}

static int same_decls(struct lvm *vm, struct lvm_gen *g)
{
    for (const struct lua_tf_decl *const *d = lua_tf_decls; *d; d++)
        if (!decl_call(vm, *d, g, 0)) return 0;
    return 1;
}

/* ---- sandbox ---- */

/* require(name) for plugins: only lua/ (config lua.path) and the plugin
 * directory, only text chunks, run in the sandbox, cached per VM. */
static int l_require(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    struct lvm *vm = ctx(L);
    for (const char *p = name; *p; p++)
        if (!(*p == '_' || *p == '.' || *p == '-' || (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9')))
            return luaL_error(L, "require: invalid module name '%s'", name);
    if (strstr(name, "..") || name[0] == '.') return luaL_error(L, "require: invalid module name '%s'", name);
    lua_rawgetp(L, LUA_REGISTRYINDEX, &loaded_key);
    if (lua_getfield(L, -1, name) != LUA_TNIL) return 1;
    lua_pop(L, 1);

    char rel[256], path[1024], tried[2048] = "";
    size_t tlen = 0;
    snprintf(rel, sizeof rel, "%s", name);
    for (char *p = rel; *p; p++)
        if (*p == '.') *p = '/';
    const struct config *cfg = vm && vm->gen ? vm->gen->cfg : NULL;
    int ndirs = cfg ? cfg->nlua_path + 1 : 1;
    for (int d = 0; d < ndirs; d++) {
        const char *dir = !cfg ? "lua" : d < cfg->nlua_path ? cfg->lua_path[d] : cfg->plugins_dir;
        for (int form = 0; form < 2; form++) {
            snprintf(path, sizeof path, form ? "%s/%s/init.lua" : "%s/%s.lua", dir, rel);
            int rc = vm && vm->gen ? load_source(L, vm->gen, path) : luaL_loadfilex(L, path, "t");
            if (rc == LUA_ERRFILE) {
                lua_pop(L, 1);
                if (tlen < sizeof tried)
                    tlen += (size_t)snprintf(tried + tlen, sizeof tried - tlen, "\n\tno file '%s'", path);
                continue;
            }
            if (rc != LUA_OK) return lua_error(L);
            lua_pushstring(L, name);
            lua_call(L, 1, 1);
            if (lua_isnil(L, -1)) {
                lua_pop(L, 1);
                lua_pushboolean(L, 1);
            }
            lua_pushvalue(L, -1);
            lua_setfield(L, -3, name); /* loaded[name] */
            return 1;
        }
    }
    return luaL_error(L, "module '%s' not found:%s", name, tried);
}

/* load(chunk [, name [, mode [, env]]]) for plugins: text only. */
static int l_load(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 1, &n);
    const char *name = luaL_optstring(L, 2, "=(load)");
    int env = !lua_isnone(L, 4);
    if (luaL_loadbufferx(L, s, n, name, "t") != LUA_OK) {
        luaL_pushfail(L);
        lua_insert(L, -2);
        return 2;
    }
    if (env) {
        lua_pushvalue(L, 4);
        if (!lua_setupvalue(L, -2, 1)) lua_pop(L, 1);
    }
    return 1;
}

/* print(...) in a plugin logs at info level instead of writing to stdout. */
static int l_print(lua_State *L)
{
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= lua_gettop(L); i++) {
        if (i > 1) luaL_addchar(&b, '\t');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    log_info(lua_tostring(L, -1), "src=plugin");
    return 0;
}

/* Copies the named fields of the table at src into the table on top. */
static void copy_fields(lua_State *L, int src, const char *const *names)
{
    for (; *names; names++) {
        lua_getfield(L, src, *names);
        lua_setfield(L, -2, *names);
    }
}

/* The sandbox's allow-list: the base functions and, per library, the
 * functions a plugin may call (also what the linter is told exists). */
static const char *const base_fns[] = {"assert", "error", "getmetatable", "ipairs", "next", "pairs",
    "pcall", "rawequal", "rawget", "rawlen", "rawset", "select", "setmetatable", "tonumber",
    "tostring", "type", "xpcall", "_VERSION", NULL};
static const char *const string_fns[] = {"byte", "char", "find", "format", "gmatch", "gsub", "len",
    "lower", "match", "rep", "reverse", "sub", "upper", "pack", "packsize", "unpack", NULL};
static const char *const table_fns[] = {"concat", "insert", "move", "pack", "remove", "sort", "unpack", NULL};
static const char *const math_fns[] = {"abs", "ceil", "cos", "deg", "exp", "floor", "fmod", "huge",
    "log", "max", "maxinteger", "min", "mininteger", "modf", "pi", "rad", "random", "randomseed",
    "sin", "sqrt", "tan", "tointeger", "type", "ult", "atan", "asin", "acos", NULL};
static const char *const utf8_fns[] = {"char", "charpattern", "codes", "codepoint", "len", "offset", NULL};
static const char *const co_fns[] = {"create", "isyieldable", "resume", "running", "status", "wrap",
    "yield", "close", NULL};
static const char *const os_fns[] = {"clock", "date", "difftime", "time", NULL};
static const struct { const char *lib; const char *const *fns; } libs[] = {
    {"string", string_fns}, {"table", table_fns}, {"math", math_fns}, {"utf8", utf8_fns},
    {"coroutine", co_fns}, {"os", os_fns}, {NULL, NULL}};
/* Globals the sandbox adds to the allow-list. */
static const char *const sandbox_extra[] = {"require", "load", "print", "_G", "tf", NULL};

static void build_sandbox(lua_State *L)
{
    lua_pushglobaltable(L);
    int g = lua_gettop(L);
    lua_newtable(L); /* the sandbox environment */
    copy_fields(L, g, base_fns);
    for (int i = 0; libs[i].lib; i++) {
        lua_getfield(L, g, libs[i].lib);
        lua_newtable(L);
        copy_fields(L, lua_gettop(L) - 1, libs[i].fns);
        if (!strcmp(libs[i].lib, "string")) { /* strings' methods: the filtered table */
            lua_pushliteral(L, "");
            lua_getmetatable(L, -1);
            lua_pushvalue(L, -3);
            lua_setfield(L, -2, "__index");
            lua_tf_seal(L);
            lua_pop(L, 2);
        }
        lua_setfield(L, -3, libs[i].lib);
        lua_pop(L, 1);
    }
    lua_pushcfunction(L, l_require);
    lua_setfield(L, -2, "require");
    lua_pushcfunction(L, l_load);
    lua_setfield(L, -2, "load");
    lua_pushcfunction(L, l_print);
    lua_setfield(L, -2, "print");
    lua_pushvalue(L, -1);
    lua_setfield(L, -2, "_G");
    lua_rawseti(L, LUA_REGISTRYINDEX, LUA_RIDX_GLOBALS); /* new chunks see only the sandbox */
    lua_pop(L, 1);
}

/* Script mode: the whole standard library; `require` also finds lua/. */
static void extend_package_path(lua_State *L, const struct config *cfg)
{
    lua_getglobal(L, "package");
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    int n = cfg ? cfg->nlua_path : 0;
    for (int i = 0; i < (n ? n : 1); i++) {
        const char *d = n ? cfg->lua_path[i] : "lua";
        lua_pushfstring(L, "%s/?.lua;%s/?/init.lua;", d, d);
        luaL_addvalue(&b);
    }
    lua_getfield(L, -2, "path");
    luaL_addvalue(&b);
    luaL_pushresult(&b);
    lua_setfield(L, -2, "path");
    lua_pop(L, 1);
}

/* ---- plugins ---- */

static void add_error(struct lvm *vm, const char *msg)
{
    size_t n = strlen(msg);
    char *e = mem_realloc(vm->errors, vm->errors_len + n + 2);
    if (!e) return;
    vm->errors = e;
    if (vm->errors_len) e[vm->errors_len++] = '\n';
    memcpy(e + vm->errors_len, msg, n + 1);
    vm->errors_len += n;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int listed(char **list, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(list[i], name)) return 1;
    return 0;
}

/* The plugin files of the config, in load order: every dir/X.lua and
 * dir/X/init.lua sorted by X (or the config's explicit list), minus the
 * disabled ones. Returns a NULL-terminated mem_* array of mem_* strings. */
static char **plugin_files(const struct config *cfg, char *err, size_t errlen)
{
    int cap = 16, n = 0;
    char **names = mem_calloc((size_t)cap + 1, sizeof *names);
    if (!names) return NULL;
    if (cfg->plugins_enabled) {
        for (int i = 0; i < cfg->nplugins_enabled && n < cap; i++) names[n++] = mem_strdup(cfg->plugins_enabled[i]);
        if (cfg->nplugins_enabled > cap) {
            cap = cfg->nplugins_enabled;
            char **more = mem_realloc(names, ((size_t)cap + 1) * sizeof *names);
            if (!more) goto oom;
            names = more;
            for (int i = n; i < cap; i++) names[n++] = mem_strdup(cfg->plugins_enabled[i]);
        }
    } else {
        DIR *d = opendir(cfg->plugins_dir);
        if (!d) {
            snprintf(err, errlen, "%s: cannot open the plugin directory", cfg->plugins_dir);
            mem_free(names);
            return NULL;
        }
        struct dirent *e;
        while ((e = readdir(d))) {
            char p[1024];
            struct stat st;
            size_t len = strlen(e->d_name);
            if (e->d_name[0] == '.') continue;
            snprintf(p, sizeof p, "%s/%s", cfg->plugins_dir, e->d_name);
            if (stat(p, &st) != 0) continue;
            int is_lua = S_ISREG(st.st_mode) && len > 4 && !strcmp(e->d_name + len - 4, ".lua");
            int is_dir = S_ISDIR(st.st_mode) && (snprintf(p, sizeof p, "%s/%s/init.lua", cfg->plugins_dir, e->d_name), stat(p, &st) == 0);
            if (!is_lua && !is_dir) continue;
            if (n == cap) {
                char **more = mem_realloc(names, ((size_t)cap * 2 + 1) * sizeof *names);
                if (!more) {
                    closedir(d);
                    goto oom;
                }
                names = more;
                cap *= 2;
            }
            names[n++] = mem_strdup(is_lua ? e->d_name : (snprintf(p, sizeof p, "%s/init.lua", e->d_name), p));
        }
        closedir(d);
        qsort(names, (size_t)n, sizeof *names, cmp_str);
    }
    names[n] = NULL;
    /* drop disabled ones ("x", "x.lua" or "x/init.lua" all name plugin x) */
    int k = 0;
    for (int i = 0; i < n; i++) {
        char base[256];
        snprintf(base, sizeof base, "%s", names[i] ? names[i] : "");
        char *cut = strstr(base, "/init.lua");
        if (!cut) cut = strstr(base, ".lua");
        if (cut) *cut = 0;
        if (!names[i] || listed(cfg->plugins_disabled, cfg->nplugins_disabled, base) ||
            listed(cfg->plugins_disabled, cfg->nplugins_disabled, names[i]))
            mem_free(names[i]);
        else
            names[k++] = names[i];
    }
    names[k] = NULL;
    return names;
oom:
    for (int i = 0; i < n; i++) mem_free(names[i]);
    mem_free(names);
    snprintf(err, errlen, "out of memory");
    return NULL;
}

/* The generation's snapshot of path, read from disk the first time it is
 * asked for. NULL when the file does not exist or cannot be read. */
static const struct gen_file *gen_file(struct lvm_gen *g, const char *path)
{
    struct gen_private *gp = (struct gen_private *)g;
    pthread_mutex_lock(&gp->files_lock);
    struct gen_file *f = gp->files;
    while (f && strcmp(f->path, path)) f = f->next;
    if (!f) {
        FILE *fp = fopen(path, "rb");
        struct stat st;
        if (fp && fstat(fileno(fp), &st) == 0 && S_ISREG(st.st_mode) && (f = mem_calloc(1, sizeof *f))) {
            f->path = mem_strdup(path);
            f->data = mem_alloc((size_t)st.st_size + 1);
            if (f->path && f->data && fread(f->data, 1, (size_t)st.st_size, fp) == (size_t)st.st_size) {
                f->len = (size_t)st.st_size;
                f->next = gp->files;
                gp->files = f;
            } else {
                mem_free(f->path);
                mem_free(f->data);
                mem_free(f);
                f = NULL;
            }
        }
        if (fp) fclose(fp);
    }
    pthread_mutex_unlock(&gp->files_lock);
    return f;
}

/* Loads path from the generation's snapshot as a text chunk named @path. */
static int load_source(lua_State *L, struct lvm_gen *g, const char *path)
{
    const struct gen_file *f = gen_file(g, path);
    if (!f) {
        lua_pushfstring(L, "%s: cannot read the file", path);
        return LUA_ERRFILE;
    }
    lua_pushfstring(L, "@%s", path);
    int rc = luaL_loadbufferx(L, f->data, f->len, lua_tostring(L, -1), "t");
    lua_remove(L, -2);
    return rc;
}

/* Loads the plugin at the path given as light userdata and runs it. A
 * compile error is raised with its file:line message. */
static int run_plugin(lua_State *L)
{
    const char *path = lua_touserdata(L, 1);
    struct lvm *vm = ctx(L);
    if (load_source(L, vm->gen, path) != LUA_OK) return lua_error(L);
    lua_call(L, 0, 0);
    return 0;
}

static void load_plugins(struct lvm *vm)
{
    const struct config *cfg = vm->gen->cfg;
    struct gen_private *gp = (struct gen_private *)vm->gen;
    char err[512];
    pthread_mutex_lock(&gp->files_lock);
    if (!gp->plugins) gp->plugins = plugin_files(cfg, err, sizeof err);
    char **files = gp->plugins;
    pthread_mutex_unlock(&gp->files_lock);
    if (!files) {
        add_error(vm, err);
        return;
    }
    vm->loading = 1;
    for (char **f = files; *f; f++) {
        char path[1024], msg[2048];
        snprintf(path, sizeof path, "%s/%s", cfg->plugins_dir, *f);
        lua_pushcfunction(vm->L, run_plugin); /* compiles and runs it, protected and timed */
        lua_pushlightuserdata(vm->L, path);
        enum lvm_status st = lvm_call(vm, 1, 0, cfg->lua_handler_timeout_ms * 4, msg, sizeof msg);
        if (st != LVM_OK) {
            char *tb = strstr(msg, "\nstack traceback:");
            if (tb) *tb = 0; /* file:line: message is what an admin needs here */
            if (st == LVM_TIMEOUT) {
                char m2[3200];
                snprintf(m2, sizeof m2, "%s: loading took longer than %d ms (%s)", path, cfg->lua_handler_timeout_ms * 4, msg);
                add_error(vm, m2);
            } else {
                add_error(vm, msg);
            }
        }
    }
    vm->loading = 0;
}

/* ---- static checks ---- */

/* Appends msg as one line to a (buffer, length) pair (mem_*). */
static void add_line(char **buf, size_t *len, const char *msg)
{
    size_t n = strlen(msg);
    while (n && msg[n - 1] == '\n') n--;
    char *e = mem_realloc(*buf, *len + n + 2);
    if (!e) return;
    *buf = e;
    if (*len) e[(*len)++] = '\n';
    memcpy(e + *len, msg, n);
    *len += n;
    e[*len] = 0;
}

void lvm_warn(lua_State *L, const char *msg)
{
    struct lvm *vm = ctx(L);
    if (vm) add_line(&vm->warnings, &vm->warnings_len, msg);
}

/* source_of(fn) -> path, first line, text of its lines (from the
 * generation's snapshot), or nil: for checks that read a function's source
 * (the plugin sandbox has no debug library and no files). */
static int l_source_of(lua_State *L)
{
    lua_Debug ar;
    struct lvm *vm = ctx(L);
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_pushvalue(L, 1);
    if (!lua_getinfo(L, ">S", &ar) || ar.source[0] != '@' || ar.linedefined <= 0 || !vm || !vm->gen) return 0;
    const struct gen_file *f = gen_file(vm->gen, ar.source + 1);
    if (!f) return 0;
    const char *p = f->data, *end = f->data + f->len, *from = NULL;
    for (int line = 1; p < end && line <= ar.lastlinedefined; line++) {
        if (line == ar.linedefined) from = p;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        p = nl ? nl + 1 : end;
    }
    if (!from) return 0;
    lua_pushstring(L, ar.source + 1);
    lua_pushinteger(L, ar.linedefined);
    lua_pushlstring(L, from, (size_t)(p - from));
    return 3;
}

/* Runs tickforge.check's run(source_of) in the VM: what tickforge itself
 * knows is wrong once every plugin has registered (a strategy naming a set
 * that does not exist...). Its errors go to vm->errors, its warnings to
 * vm->warnings. */
static int checks_protected(lua_State *L)
{
    struct lvm *vm = ctx(L);
    lua_getglobal(L, "require");
    lua_pushliteral(L, "tickforge.check");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "run");
    lua_pushcfunction(L, l_source_of);
    lua_call(L, 1, 2);
    for (int list = 0; list < 2; list++) {
        int t = lua_gettop(L) - 1 + list;
        for (lua_Integer i = 1; lua_istable(L, t) && lua_rawgeti(L, t, i) == LUA_TSTRING; i++) {
            if (list == 0) add_error(vm, lua_tostring(L, -1));
            else add_line(&vm->warnings, &vm->warnings_len, lua_tostring(L, -1));
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    return 0;
}

/* The files of the generation under the plugin directory, for the linter. */
static int plugin_sources(struct gen_private *p, const char **out, int cap)
{
    const char *dir = p->pub.cfg->plugins_dir;
    size_t dl = strlen(dir);
    int n = 0;
    pthread_mutex_lock(&p->files_lock);
    for (struct gen_file *f = p->files; f && n < cap; f = f->next)
        if (!strncmp(f->path, dir, dl) && f->path[dl] == '/') out[n++] = f->path; /* live as long as p */
    pthread_mutex_unlock(&p->files_lock);
    return n;
}

/* Static checks of a candidate generation: tickforge's own (in vm, when it
 * loaded; errors reject the generation) and the linter's over every plugin
 * file read (warnings), into p's warnings and lint note. */
static void static_checks(struct lvm *vm, struct gen_private *p)
{
    char msg[2048];
    if (vm) {
        lua_pushcfunction(vm->L, checks_protected);
        if (lvm_call(vm, 0, 0, p->pub.cfg->lua_handler_timeout_ms * 4, msg, sizeof msg) != LVM_OK) {
            char *tb = strstr(msg, "\nstack traceback:");
            if (tb) *tb = 0;
            char w[2200];
            snprintf(w, sizeof w, "warning: tickforge's static check did not finish: %s", msg);
            add_line(&vm->warnings, &vm->warnings_len, w);
        }
        if (vm->warnings) {
            p->pub.warnings = vm->warnings;
            vm->warnings = NULL;
        }
    }
    const char *program = getenv("TICKFORGE_LUACHECK");
    if (!program || !*program) program = "luacheck";
    if (!strcmp(program, "off")) {
        snprintf(p->pub.lint_note, sizeof p->pub.lint_note, "luacheck is off (TICKFORGE_LUACHECK=off)");
        return;
    }
    const char *files[256];
    int nfiles = plugin_sources(p, files, 256);
    const char *globals[256];
    int ng = 0;
    for (int i = 0; base_fns[i]; i++) globals[ng++] = base_fns[i];
    for (int i = 0; sandbox_extra[i]; i++) globals[ng++] = sandbox_extra[i];
    char *owned[200];
    int nowned = 0;
    for (int l = 0; libs[l].lib; l++)
        for (int i = 0; libs[l].fns[i] && nowned < 200; i++) {
            char name[64];
            snprintf(name, sizeof name, "%s.%s", libs[l].lib, libs[l].fns[i]);
            if ((owned[nowned] = mem_strdup(name))) globals[ng++] = owned[nowned++];
        }
    globals[ng] = NULL;
    size_t len = p->pub.warnings ? strlen(p->pub.warnings) : 0;
    char *found = NULL;
    size_t flen = 0;
    int rc = lint_luacheck(program, files, nfiles, globals, &found, &flen, p->pub.lint_note, sizeof p->pub.lint_note);
    for (int i = 0; i < nowned; i++) mem_free(owned[i]);
    p->pub.linted = rc == 1;
    if (found) add_line(&p->pub.warnings, &len, found);
    mem_free(found);
}

/* An error outside any protected call is a bug in the core: say where. */
static int vm_panic(lua_State *L)
{
    const char *m = lua_tostring(L, -1);
    log_error("Lua panic (an unprotected call failed); aborting", "error=\"%s\"", m ? m : "?");
    return 0; /* Lua aborts */
}

/* The VM's setup, run under lua_pcall so running out of memory is an error. */
static int setup(lua_State *L)
{
    struct lvm *vm = lua_touserdata(L, 1);
    lua_pushlightuserdata(L, vm);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &ctx_key);
    lua_newtable(L);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &loaded_key);
    lua_sethook(L, vm_hook, LUA_MASKCOUNT, HOOK_COUNT);
    luaL_openlibs(L);
    if (vm->mode == LVM_PLUGIN) build_sandbox(L);
    else extend_package_path(L, vm->gen ? vm->gen->cfg : NULL);
    lua_tf_open(L);
    return 0;
}

struct lvm *lvm_new(enum lvm_mode mode, struct lvm_gen *gen, struct lvm_host *host, char *err,
                    size_t errlen)
{
    struct lvm *vm = mem_calloc(1, sizeof *vm);
    if (!vm) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    vm->mode = mode;
    vm->host = host;
    vm->gen = gen;
    if (gen) lvm_gen_ref(gen);
    vm->mem_limit = gen && gen->cfg ? gen->cfg->lua_memory_limit : 0;
    vm->L = lua_newstate(vm_alloc, vm);
    if (!vm->L) {
        snprintf(err, errlen, "cannot create a Lua state (out of memory)");
        lvm_free(vm);
        return NULL;
    }
    lua_State *L = vm->L;
    lua_atpanic(L, vm_panic);
    lua_pushcfunction(L, setup); /* everything that allocates runs protected */
    lua_pushlightuserdata(L, vm);
    if (lua_pcall(L, 1, 0, 0) != LUA_OK) {
        snprintf(err, errlen, "cannot set up a Lua VM: %s (lua.memory_limit is %zu bytes)",
                 lua_tostring(L, -1) ? lua_tostring(L, -1) : "error", vm->mem_limit);
        lvm_free(vm);
        return NULL;
    }

    if (mode == LVM_PLUGIN) {
        load_plugins(vm);
        if (!vm->errors && gen->declared && !same_decls(vm, gen))
            add_error(vm, "plugins registered different routes or jobs than when the generation was validated");
        if (vm->errors) {
            snprintf(err, errlen, "%s", vm->errors);
            lvm_free(vm);
            return NULL;
        }
    }
    lua_gc(L, LUA_GCGEN, 0, 0);
    return vm;
}

void lvm_free(struct lvm *vm)
{
    if (!vm) return;
    if (vm->L) lua_close(vm->L);
    if (vm->gen) lvm_gen_unref(vm->gen);
    mem_free(vm->errors);
    mem_free(vm->warnings);
    mem_free(vm);
}

/* ---- generations ---- */

static pthread_mutex_t gen_lock = PTHREAD_MUTEX_INITIALIZER;
static struct lvm_gen *current;
static atomic_long current_id;
static atomic_long next_id = 1;

void lvm_gen_ref(struct lvm_gen *g)
{
    atomic_fetch_add(&((struct gen_private *)g)->refs, 1);
}

void lvm_gen_unref(struct lvm_gen *g)
{
    struct gen_private *p = (struct gen_private *)g;
    if (!g || atomic_fetch_sub(&p->refs, 1) != 1) return;
    drop_decls(g);
    for (struct gen_file *f = p->files, *next; f; f = next) {
        next = f->next;
        mem_free(f->path);
        mem_free(f->data);
        mem_free(f);
    }
    for (char **f = p->plugins; f && *f; f++) mem_free(*f);
    mem_free(p->plugins);
    for (struct gen_listing *l = p->listings, *next; l; l = next) {
        next = l->next;
        for (char **n = l->names; *n; n++) mem_free(*n);
        mem_free(l->names);
        mem_free(l->dir);
        mem_free(l);
    }
    pthread_mutex_destroy(&p->files_lock);
    config_free(g->cfg);
    mem_free(g->warnings);
    mem_free(p);
}

struct lvm_gen *lvm_gen_new(struct config *cfg)
{
    struct gen_private *p = mem_calloc(1, sizeof *p);
    if (!p) {
        config_free(cfg);
        return NULL;
    }
    atomic_init(&p->refs, 1);
    pthread_mutex_init(&p->files_lock, NULL);
    p->pub.cfg = cfg;
    p->pub.id = atomic_fetch_add(&next_id, 1);
    return &p->pub;
}

struct lvm *lvm_gen_build(const char *config_path, struct lvm_host *host, char *err, size_t errlen)
{
    struct config *cfg = config_load(config_path, err, errlen);
    if (!cfg) return NULL;
    struct gen_private *p = (struct gen_private *)lvm_gen_new(cfg);
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    struct lvm *vm = lvm_new(LVM_PLUGIN, &p->pub, host, err, errlen);
    static_checks(vm, p);
    if (vm && vm->errors) { /* tickforge's own checks found errors */
        snprintf(err, errlen, "%s", vm->errors);
        lvm_free(vm);
        vm = NULL;
    }
    if (!vm && p->pub.warnings) { /* a warning may explain an error: show both */
        size_t n = strlen(err);
        snprintf(err + n, errlen - n, "\n%s", p->pub.warnings);
    }
    if (vm && take_decls(vm, &p->pub) != 0) {
        snprintf(err, errlen, "out of memory");
        lvm_free(vm);
        vm = NULL;
    }
    lvm_gen_unref(&p->pub); /* the VM holds the remaining reference */
    return vm;
}

void lvm_gen_publish(struct lvm_gen *g)
{
    for (const char *w = g->warnings; w && *w;) { /* once per generation, where admins look */
        const char *nl = strchr(w, '\n');
        char line[2048], q[2100];
        snprintf(line, sizeof line, "%.*s", (int)(nl ? nl - w : (long)strlen(w)), w);
        log_warn("plugin warning", "gen=%ld warning=%s", g->id, log_quote(q, sizeof q, line));
        w = nl ? nl + 1 : w + strlen(w);
    }
    lvm_gen_ref(g);
    pthread_mutex_lock(&gen_lock);
    struct lvm_gen *old = current;
    current = g;
    atomic_store(&current_id, g->id);
    pthread_mutex_unlock(&gen_lock);
    if (old) lvm_gen_unref(old);
}

struct lvm_gen *lvm_gen_current(void)
{
    pthread_mutex_lock(&gen_lock);
    struct lvm_gen *g = current;
    if (g) lvm_gen_ref(g);
    pthread_mutex_unlock(&gen_lock);
    return g;
}

long lvm_gen_current_id(void)
{
    return atomic_load(&current_id);
}
