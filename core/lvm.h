/* Lua VMs: lifecycle, the allow-list sandbox, the counting allocator that
 * caps a VM's memory, the time limit per call or per task (a coroutine whose
 * waits yield), per-call accounting, plugin loading and its warnings, and
 * generations (config + plugins, with the routes and jobs they registered
 * copied into C) published atomically for hot reload. A VM is used by one
 * thread at a time; its tasks are driven by their owner (lua_http.c, the
 * scheduler). Nothing here speaks HTTP or SQL: routes and jobs are only
 * described for the router and the scheduler, and taken from a VM through
 * the declarations listed in lua_tf.c (lua_route.c, lua_job.c), which this
 * file does not know by name. */
#ifndef LVM_H
#define LVM_H

#include <lua.h>
#include <stdatomic.h>
#include <stddef.h>

struct acct_entry;
struct cache;
struct config;
struct db_pool;
struct sched;
struct spool;

/* Process-wide services a VM may reach, owned by main and outliving every VM.
 * Bindings find it with lvm_host(L); never through C globals. */
struct lvm_host {
    struct db_pool *db;    /* NULL when no database is configured */
    struct sched *sched;   /* NULL unless serving */
    struct cache *cache;   /* the shared cache (tf.cache); `tickforge check` gets a throw-away one */
    struct spool *spool;   /* the durable ingest spool (spool.h): `serve` with a database only, else NULL */
    char instance[96];     /* "hostname:pid", names this process in job history */
};

enum lvm_mode {
    LVM_PLUGIN, /* sandboxed: serve, check, reload */
    LVM_SCRIPT  /* full standard library + tf: `tickforge run` (quants, busted) */
};

/* What a plugin registered with tf.route, as the HTTP router needs it
 * before any body is read. */
struct lvm_route {
    char method[8];
    char *path;      /* "/items/{id}" */
    unsigned roles;  /* ROLE_* a key needs; 0 = open */
    size_t max_body; /* bytes */
    char *plugin;    /* the file that registered it, relative to plugins.dir */
    struct acct_entry *acct; /* its accounting (acct.h) */
};

/* What a plugin registered with tf.job.every / tf.job.cron. */
struct lvm_job {
    char *name;
    long long every_ms; /* > 0: an interval, aligned to the epoch */
    char *cron;         /* otherwise: a five-field UTC cron spec */
    int timeout_ms;     /* wall time per run */
    int jitter_ms;      /* random delay added to each run, 0..jitter */
    int overlap_queue;  /* 1: a run due while one runs waits; 0: it is skipped */
    int run_at_start;
    int enabled;
    char *plugin;    /* the file that registered it, relative to plugins.dir */
    struct acct_entry *acct; /* its accounting (acct.h) */
};

/* A generation: one config and the plugins it names, validated together.
 * Reference counted: every VM built from it holds a reference. */
struct lvm_gen {
    long id;
    struct config *cfg;
    struct lvm_route *routes;
    int nroutes;
    struct lvm_job *jobs;
    int njobs;
    int declared;        /* routes and jobs were taken from the VM that validated it (lua_tf.h) */
    char *warnings;      /* static-check findings, "file:line: warning: ..." one per line; NULL when none */
    int linted;          /* luacheck ran over the plugin files */
    char lint_note[256]; /* why it did not ("luacheck not found..."), else "" */
};

struct lvm_host *lvm_host(lua_State *L);
struct lvm_gen *lvm_gen_of(lua_State *L); /* NULL in LVM_SCRIPT mode without plugins */
const struct config *lvm_config(lua_State *L);

/* ---- VMs ---- */

struct lvm; /* a lua_State plus its context; opaque */

/* Builds a VM of the given mode. In LVM_PLUGIN mode it loads every plugin
 * the generation's config names; if gen already has routes (it was validated
 * before), the new VM must register the same ones. Takes a reference on gen
 * (may be NULL in LVM_SCRIPT mode). Returns NULL with every error, one per
 * line as "file:line: message", in err. Caller frees with lvm_free. */
struct lvm *lvm_new(enum lvm_mode mode, struct lvm_gen *gen, struct lvm_host *host, char *err,
                    size_t errlen);
void lvm_free(struct lvm *vm);
lua_State *lvm_state(struct lvm *vm);
struct lvm_gen *lvm_gen(struct lvm *vm);
size_t lvm_memory(struct lvm *vm); /* bytes the VM holds now */

enum lvm_status {
    LVM_OK,
    LVM_ERROR,   /* a Lua error; err holds "file:line: message" and the traceback */
    LVM_TIMEOUT, /* killed by the time limit (the kill cannot be caught by pcall) */
    LVM_NOMEM,   /* the VM's memory limit was hit */
    LVM_YIELD    /* lvm_task_resume only: the task waits; resume it when woken */
};

/* Calls the function below nargs arguments on the stack, like lua_pcall,
 * bounded by timeout_ms of wall time (0: none) and the VM's memory limit.
 * On LVM_OK nresults values are left on the stack; otherwise nothing. */
enum lvm_status lvm_call(struct lvm *vm, int nargs, int nresults, int timeout_ms, char *err,
                         size_t errlen);

/* After LVM_ERROR: the `code` field of the error object when it was a table
 * (tf.db raises codes "unavailable", "timeout", "error"), else "". */
const char *lvm_error_code(struct lvm *vm);

/* ---- accounting (acct.h sums these per route and per job) ----
 * What one call (lvm_call) or one task costs: the time its Lua code ran (a
 * call: the thread's CPU clock; a task: the monotonic clock while resumed,
 * which is its CPU time plus any preemption — reading the thread CPU clock
 * is a system call, twice per resume, and cost a Lua route 10-20 % of its
 * throughput in bench/acct_bench.sh), the wall time it waited (a task: while suspended; a call:
 * blocked in tf.db / tf.candles / tf.ticks), the statements it sent (a
 * store counts one) and the bytes the VM allocated for it. */
struct lvm_acct {
    long long cpu_ns, wait_ns, statements, alloc_bytes;
};
/* The accounting of what runs in L now: the task being resumed, else the
 * current lvm_call. Bindings add their statements and blocking waits. */
struct lvm_acct *lvm_acct(lua_State *L);
/* The costs of vm's last lvm_call. */
const struct lvm_acct *lvm_call_acct(struct lvm *vm);

/* ---- tasks: calls that may wait without blocking their thread ----
 * A task is a coroutine of a VM whose waits yield (STYLE.md rule 16). Its
 * driver (lua_http.c for handlers) starts it, resumes it on the VM's thread
 * whenever t->wake said its wait ended, and frees it. Many tasks may be
 * suspended on one VM; one runs at a time. A binding that must wait asks
 * lvm_task_of(L): NULL means block as before (jobs, `tickforge run`, plugin
 * loading, or a coroutine of the plugin's own); otherwise it starts the
 * wait with a done callback that calls lvm_task_wake(t) and returns
 * lvm_task_yield(L, ctx, k); k runs when the task is resumed. */
struct lvm_task {
    lua_CFunction body;   /* runs as the coroutine's function, with ud as its argument */
    void *ud;
    long long deadline_ns; /* CLOCK_MONOTONIC wall-time limit of the whole task; 0 = none */
    void (*wake)(struct lvm_task *t); /* set by the driver; called from any thread, once per wait */
    /* set by lvm */
    lua_State *co;
    int ref;               /* anchors co in the registry */
    int killed;            /* past its deadline: every instruction raises, pcall cannot catch it */
    int waiting;           /* it yielded through lvm_task_yield (not coroutine.yield) */
    int stray_yield;       /* it called coroutine.yield itself: killed */
    _Atomic int abandoned; /* its client left (set by the driver, any thread): it is dead */
    struct lvm_acct acct;  /* what it cost so far */
    long long yielded_at;  /* CLOCK_MONOTONIC ns of its last wait's start, 0 when running */
    /* the current wait's canceller, set by the binding before it yields and
     * cleared when the task is resumed: the driver may call abort(abort_ud)
     * from another thread while the task is suspended (under the driver's
     * own lock), to end the wait early. It returns 1 when the wait ended at
     * once and the driver must wake the task itself (wake would take that
     * lock again), 0 when t->wake will come as usual (db_op_abort). */
    int (*abort)(void *ud);
    void *abort_ud;
    char err_code[32];     /* as lvm_error_code, for the task's last error */
};
/* Creates t's coroutine. 0, or -1 when out of memory. */
int lvm_task_start(struct lvm *vm, struct lvm_task *t);
/* Runs t until it finishes (LVM_OK: body's results are on t->co), waits
 * (LVM_YIELD) or fails (err as lvm_call's). */
enum lvm_status lvm_task_resume(struct lvm *vm, struct lvm_task *t, char *err, size_t errlen);
/* Releases t's coroutine (the driver's last call for t). */
void lvm_task_end(struct lvm *vm, struct lvm_task *t);
struct lvm_task *lvm_task_of(lua_State *L);
struct lvm_task *lvm_task_running(lua_State *L); /* the task being resumed in L's VM, or NULL */
int lvm_task_yield(lua_State *L, lua_KContext ctx, lua_KFunction k);
/* Is the task running in L's VM dead: past its deadline, or its client gone
 * (the driver set its deadline to the past)? A binding then starts no new
 * wait: it gives back what it holds and raises (a "timeout" tf.db error),
 * so an abandoned request never runs another statement. */
int lvm_task_dead(lua_State *L);
void lvm_task_wake(struct lvm_task *t);
/* The task's deadline in db_now_ms() terms (0 = none), for waits to carry. */
long long lvm_task_deadline_ms(const struct lvm_task *t);

/* Pushes the plugin file that is registering something now: the nearest
 * Lua caller's chunk, relative to plugins.dir ("tp_capital/init.lua"), or
 * "" when there is none. For tf.route and tf.job. */
void lvm_push_caller_file(lua_State *L);

/* Is a plugin being loaded (registration allowed)? */
int lvm_loading(lua_State *L);
/* Adds a warning about the plugin loading now ("file:line: warning: ...");
 * like the static checks' warnings, `tickforge check` prints it, a reload
 * logs it once and /admin/status lists it. Never rejects a generation. */
void lvm_warn(lua_State *L, const char *msg);
/* Is L a sandboxed plugin VM (serve, check, jobs) rather than a script? */
int lvm_is_plugin(lua_State *L);

/* Makes the call running in vm (on another thread) hit its time limit at
 * its next Lua instruction. Safe from any thread. */
void lvm_abort(struct lvm *vm);

/* ---- generations ---- */

/* Loads the config at path, builds a candidate generation and validates it
 * in a fresh VM. On success returns the VM (owning a reference to the new,
 * unpublished generation); on failure NULL with err as in lvm_new. */
struct lvm *lvm_gen_build(const char *config_path, struct lvm_host *host, char *err, size_t errlen);
/* A generation of just a config (no plugins loaded), for LVM_SCRIPT VMs.
 * Takes ownership of cfg; returns a reference (NULL when out of memory). */
struct lvm_gen *lvm_gen_new(struct config *cfg);
void lvm_gen_publish(struct lvm_gen *g);  /* makes g current; takes a reference */
struct lvm_gen *lvm_gen_current(void);    /* returns a reference, or NULL before the first publish */
long lvm_gen_current_id(void);            /* cheap: one atomic load */
void lvm_gen_ref(struct lvm_gen *g);
void lvm_gen_unref(struct lvm_gen *g);

#endif
