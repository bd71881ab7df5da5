/* The tickforge command line: serve | run | check | migrate | backtest | export | version.
 * Owns the process-wide services (the DB pool, the lvm_host) and the signal
 * loop (SIGHUP reloads; SIGINT/SIGTERM drain and stop). Every other thread
 * runs with those signals blocked, so they arrive only here. */
#include "acct.h"
#include "cache.h"
#include "candles.h"
#include "config.h"
#include "db.h"
#include "gen.h"
#include "http.h"
#include "log.h"
#include "lvm.h"
#include "mem.h"
#include "metrics.h"
#include "sched.h"
#include "spool.h"

#include <lauxlib.h>
#include <libpq-fe.h>
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_CONFIG "config/tickforge.lua"

static const char usage[] =
    "usage: tickforge <command> [options]\n"
    "\n"
    "commands:\n"
    "  serve   [--config FILE]             serve HTTP (default config: " DEFAULT_CONFIG ")\n"
    "  run     [--config FILE] SCRIPT [ARGS...]  run a Lua script with the whole tf API\n"
    "                                      (e.g. tickforge run $(command -v busted) tests/lua)\n"
    "  check   [--config FILE]             load the config and every plugin as a reload would;\n"
    "                                      print each error as file:line: message\n"
    "  migrate [--config FILE]             apply sql/*.sql to DATABASE_URL (or database.url)\n"
    "  backtest [--config FILE] STRATEGY --symbol S --timeframe TF --from D --to D [...]\n"
    "                                      replay stored bars through a strategy (docs/backtest.md)\n"
    "  export  [--config FILE] --symbol S --timeframe TF --set NAME [...]\n"
    "                                      write bars, indicator values and labels as CSV\n"
    "  version                             print versions\n"
    "\n"
    "environment: DATABASE_URL, TICKFORGE_LISTEN (host:port), TICKFORGE_API_KEY (or API_KEY),\n"
    "             TICKFORGE_ADMIN_KEY, TICKFORGE_LOG_LEVEL,\n"
    "             TICKFORGE_LUACHECK (the linter that check and reloads run; \"off\": none)\n";

static const char *const command_help[][2] = {
    {"serve", "usage: tickforge serve [--config FILE]\n"
              "Serves HTTP on the config's listen address with every enabled plugin.\n"
              "SIGHUP or POST /admin/reload (admin key) reloads config and plugins;\n"
              "SIGINT/SIGTERM stop accepting, finish requests in flight, and exit.\n"},
    {"run", "usage: tickforge run [--config FILE] SCRIPT [ARGS...]\n"
            "Runs SCRIPT with the full Lua standard library plus tf.* (no sandbox, no time\n"
            "limit). ARGS are in the global table arg. The config (default " DEFAULT_CONFIG
            " when it exists) supplies tf.config and the database.\n"},
    {"check", "usage: tickforge check [--config FILE]\n"
              "Loads the config and every plugin exactly as a reload would, then checks them\n"
              "statically: tickforge's own checks (a strategy naming a set that does not exist is an\n"
              "error) and luacheck's (undefined globals: warnings; Debian package lua-check).\n"
              "Prints each error as file:line: message and exits 1, or prints each warning as\n"
              "file:line: warning: message, then the routes, jobs, indicator sets and strategies,\n"
              "and exits 0.\n"},
    {"migrate", "usage: tickforge migrate [--config FILE]\n"
                "Applies the numbered sql/*.sql migrations not applied yet, each in a transaction\n"
                "under an advisory lock (safe with several instances).\n"},
    {"backtest", "usage: tickforge backtest [--config FILE] STRATEGY --symbol S --timeframe TF --from D --to D\n"
                 "         [--set NAME] [--cash N] [--commission N] [--slippage N] [--spread N]\n"
                 "         [--json FILE] [--html FILE] [--param k=v1,v2,...]... [--sort FIGURE]\n"
                 "`tickforge backtest --help` lists every option; docs/backtest.md explains them.\n"},
    {"export", "usage: tickforge export [--config FILE] --symbol S --timeframe TF --set NAME\n"
               "         [--from D] [--to D] [--label ret_fwd_5]... [--out FILE]\n"
               "`tickforge export --help` lists every option; docs/backtest.md explains them.\n"},
    {"version", "usage: tickforge version\n"},
};

static int help_for(const char *cmd)
{
    for (size_t i = 0; i < sizeof command_help / sizeof *command_help; i++)
        if (!strcmp(command_help[i][0], cmd)) {
            fputs(command_help[i][1], stdout);
            return 0;
        }
    fputs(usage, stdout);
    return 0;
}

/* The config path: --config FILE, else the default when it exists, else
 * NULL (built-in defaults). Consumes the option from argv. */
static const char *config_arg(int *argc, char **argv, int *bad)
{
    *bad = 0;
    for (int i = 2; i < *argc; i++) {
        if (!strcmp(argv[i], "--")) break;
        if (!strcmp(argv[i], "--config") || !strncmp(argv[i], "--config=", 9)) {
            const char *v = argv[i][8] == '=' ? argv[i] + 9 : i + 1 < *argc ? argv[i + 1] : NULL;
            int used = argv[i][8] == '=' ? 1 : 2;
            if (!v) {
                *bad = 1;
                return NULL;
            }
            memmove(argv + i, argv + i + used, sizeof *argv * (size_t)(*argc - i - used + 1));
            *argc -= used;
            return v;
        }
        if (argv[i][0] != '-') break; /* options end at the script name */
    }
    struct stat st;
    return stat(DEFAULT_CONFIG, &st) == 0 ? DEFAULT_CONFIG : NULL;
}

/* The config at path (NULL: defaults) with its log level applied, or NULL
 * after printing why. The caller frees it with config_free. */
static struct config *load_config(const char *path)
{
    char err[8192];
    struct config *cfg = config_load(path, err, sizeof err);
    if (!cfg) {
        fprintf(stderr, "tickforge: %s\n", err);
        return NULL;
    }
    log_set_level((enum log_level)cfg->log_level);
    log_set_format((enum log_format)cfg->log_format);
    return cfg;
}

/* Creates the shared cache and opens the pool when the config names a
 * database. 0, or -1 with err (then nothing is left open). */
static int host_open(struct lvm_host *host, const struct config *cfg, char *err, size_t errlen)
{
    char hn[64] = "localhost";
    gethostname(hn, sizeof hn - 1);
    memset(host, 0, sizeof *host);
    snprintf(host->instance, sizeof host->instance, "%s:%d", hn, (int)getpid());
    if (!(host->cache = cache_new(cfg->cache_max_memory))) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    metrics_add_collector(cache_metrics, host->cache);
    metrics_add_collector(acct_metrics, NULL);
    if (!cfg->db_url || !*cfg->db_url) return 0;
    struct db_options o = {cfg->db_pool_size, cfg->db_checkout_timeout_ms, cfg->db_connect_timeout_s,
                           cfg->db_statement_timeout_ms};
    host->db = db_pool_open(cfg->db_url, &o, err, errlen);
    candles_set_lanes(cfg->db_single_lanes);
    if (!host->db) {
        metrics_remove_collector(cache_metrics, host->cache);
        cache_free(host->cache);
        host->cache = NULL;
        return -1;
    }
    return 0;
}

/* Opens the spool and starts its replayer (serve only, with a database).
 * 0, or -1 with err. */
static int host_open_spool(struct lvm_host *host, const struct config *cfg, char *err, size_t errlen)
{
    if (!cfg->spool_enabled || !host->db) return 0;
    struct spool_options o = {cfg->spool_dir, cfg->spool_max_bytes, cfg->spool_segment_bytes};
    if (!(host->spool = spool_open(&o, err, errlen))) return -1;
    if (spool_replayer_start(host->spool, host->db, host->cache, err, errlen)) {
        spool_close(host->spool);
        host->spool = NULL;
        return -1;
    }
    metrics_add_collector(spool_metrics, host->spool);
    return 0;
}

/* Closes what host_open opened; every VM using it is gone. The spool goes
 * before the pool: its replayer stores through it. */
static void host_close(struct lvm_host *host)
{
    if (host->spool) {
        metrics_remove_collector(spool_metrics, host->spool);
        spool_close(host->spool); /* stops the replayer after its batch in hand, syncs */
        host->spool = NULL;
    }
    if (host->db) db_pool_close(host->db);
    host->db = NULL;
    if (host->cache) {
        metrics_remove_collector(cache_metrics, host->cache);
        cache_free(host->cache);
        host->cache = NULL;
    }
}

/* Waits for a second stop signal during the drain; then exits at once
 * (status 1): whatever was acknowledged is on disk already (the spool
 * syncs before answering; the database commits before answering). */
static void *stop_now(void *arg)
{
    int sig;
    if (sigwait(arg, &sig) == 0) {
        log_warn("stopping now, without draining", "signal=%d", sig);
        _exit(1);
    }
    return NULL;
}

static int cmd_serve(const char *config_path)
{
    char err[8192];
    /* blocked before any thread starts (the pool's, the spool's replayer):
     * every thread inherits the mask, so the signals arrive only here */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    struct config *cfg = load_config(config_path);
    if (!cfg) return 1;
    if (!config_path) log_warn("no config file; using built-in defaults", "looked_for=" DEFAULT_CONFIG);
    struct lvm_host host;
    if (host_open(&host, cfg, err, sizeof err)) {
        fprintf(stderr, "tickforge: database: %s\n", err);
        config_free(cfg);
        return 1;
    }
    if (!host.db) log_warn("no database configured (database.url / DATABASE_URL); tf.db is unavailable", NULL);
    if (!cfg->nkeys) log_warn("no API keys configured (auth.keys / TICKFORGE_API_KEY); authenticated routes answer 401", NULL);
    int sched_on = cfg->sched_enabled, sched_workers = cfg->sched_workers;
    int spool_rc = host_open_spool(&host, cfg, err, sizeof err);
    config_free(cfg);
    if (spool_rc) {
        fprintf(stderr, "tickforge: %s\n", err);
        host_close(&host);
        return 1;
    }

    struct http_server *s = http_start(config_path, &host, err, sizeof err);
    if (!s) {
        fprintf(stderr, "tickforge: %s\n", err);
        host_close(&host);
        return 1;
    }
    if (sched_on && !(host.sched = sched_start(&host, sched_workers, err, sizeof err)))
        log_error("the scheduler did not start; jobs will not run", "error=\"%s\"", err);
    for (;;) {
        int ms = gen_watch_interval_ms(http_gen(s));
        struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
        int sig = sigtimedwait(&set, NULL, &ts);
        if (sig == SIGHUP) {
            gen_reload(http_gen(s), "signal", err, sizeof err);
        } else if (sig == SIGINT || sig == SIGTERM) {
            log_info("stopping", "signal=%d", sig);
            break;
        } else {
            gen_watch(http_gen(s));
        }
    }
    /* a second SIGINT/SIGTERM while draining: stop at once */
    pthread_t impatient;
    static sigset_t stop_set;
    stop_set = set;
    sigdelset(&stop_set, SIGHUP);
    if (pthread_create(&impatient, NULL, stop_now, &stop_set) == 0) pthread_detach(impatient);
    sched_stop(host.sched, 10000);
    host.sched = NULL;
    http_stop(s, 10000);
    host_close(&host);
    log_flush(); /* the access lines still buffered */
    log_info("stopped", NULL);
    return 0;
}

/* tickforge run: os.exit closes the Lua state and the pool before exiting
 * (busted ends with os.exit; LeakSanitizer checks what is left at exit).
 * Closing the state from inside a call is what Lua's os.exit(code, true)
 * does too: nothing returns into it afterwards. */
static struct lvm *run_vm;
static struct lvm_host *run_host;

static int run_exit(lua_State *L)
{
    int status = lua_isboolean(L, 1) ? (lua_toboolean(L, 1) ? EXIT_SUCCESS : EXIT_FAILURE)
                                     : (int)luaL_optinteger(L, 1, EXIT_SUCCESS);
    fflush(NULL);
    lvm_free(run_vm);
    if (run_host) host_close(run_host);
    exit(status);
}

/* Runs SCRIPT (a file) or, when module is set, require(module)(ARGS...)
 * whose integer result is the exit status: the shipped commands written in
 * Lua (backtest, export) use this. The Lua side gets arg, with arg.exe
 * (this binary) and arg.config (the config path or nil). */
static int run_lua(const char *config_path, const char *module, int argc, char **argv)
{
    char err[8192];
    struct config *cfg = load_config(config_path);
    if (!cfg) return 1;
    struct lvm_host host;
    if (host_open(&host, cfg, err, sizeof err)) {
        fprintf(stderr, "tickforge: database: %s\n", err);
        config_free(cfg);
        return 1;
    }
    struct lvm_gen *g = lvm_gen_new(cfg);
    struct lvm *vm = g ? lvm_new(LVM_SCRIPT, g, &host, err, sizeof err) : NULL;
    if (g) lvm_gen_unref(g);
    if (!vm) {
        fprintf(stderr, "tickforge: %s\n", g ? err : "out of memory");
        host_close(&host);
        return 1;
    }
    lua_State *L = lvm_state(vm);
    run_vm = vm;
    run_host = &host;
    lua_getglobal(L, "os");
    lua_pushcfunction(L, run_exit);
    lua_setfield(L, -2, "exit");
    lua_pop(L, 1);
    lua_createtable(L, argc, 3); /* arg, as the standalone lua sets it */
    for (int i = 0; i < argc; i++) {
        lua_pushstring(L, argv[i]);
        lua_rawseti(L, -2, i);
    }
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    lua_pushstring(L, n > 0 ? (exe[n] = 0, exe) : "tickforge");
    lua_setfield(L, -2, "exe");
    lua_pushstring(L, config_path);
    lua_setfield(L, -2, "config");
    lua_setglobal(L, "arg");
    int rc = 0;
    if (module) {
        lua_getglobal(L, "require");
        lua_pushstring(L, module);
        if (lvm_call(vm, 1, 1, 0, err, sizeof err) != LVM_OK) {
            fprintf(stderr, "tickforge: %s\n", err);
            rc = 1;
        } else {
            for (int i = 1; i < argc; i++) lua_pushstring(L, argv[i]);
            if (lvm_call(vm, argc - 1, 1, 0, err, sizeof err) != LVM_OK) {
                fprintf(stderr, "tickforge: %s\n", err);
                rc = 1;
            } else {
                rc = lua_isinteger(L, -1) ? (int)lua_tointeger(L, -1) : 0;
            }
        }
    } else if (luaL_loadfilex(L, argv[0], "t") != LUA_OK) {
        fprintf(stderr, "tickforge: %s\n", lua_tostring(L, -1));
        rc = 1;
    } else {
        for (int i = 1; i < argc; i++) lua_pushstring(L, argv[i]);
        if (lvm_call(vm, argc - 1, 0, 0, err, sizeof err) != LVM_OK) {
            fprintf(stderr, "tickforge: %s\n", err);
            rc = 1;
        }
    }
    lvm_free(vm);
    host_close(&host);
    return rc;
}

/* The indicator sets and strategies the plugins registered, as lines
 * (tickforge.check's summary), pushed on vm's stack with their counts. */
static int check_summary(lua_State *L)
{
    lua_getglobal(L, "require");
    lua_pushliteral(L, "tickforge.check");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "summary");
    lua_call(L, 0, 3);
    return 3;
}

static int cmd_run(const char *config_path, int argc, char **argv)
{
    if (argc < 1) {
        fputs(command_help[1][1], stderr);
        return 2;
    }
    return run_lua(config_path, NULL, argc, argv);
}

static int cmd_check(const char *config_path)
{
    char err[65536];
    struct lvm_host host = {NULL}; /* plugins must load without touching the database */
    /* a throw-away cache, so a plugin using tf.cache at load checks as it serves */
    if (!(host.cache = cache_new((size_t)64 << 20))) {
        fprintf(stderr, "tickforge: out of memory\n");
        return 1;
    }
    struct lvm *vm = lvm_gen_build(config_path, &host, err, sizeof err);
    if (!vm) {
        fprintf(stderr, "%s\n", err);
        cache_free(host.cache);
        return 1;
    }
    struct lvm_gen *g = lvm_gen(vm);
    lua_State *L = lvm_state(vm);
    lua_pushcfunction(L, check_summary);
    const char *lines = NULL;
    int nsets = 0, nstrategies = 0;
    if (lvm_call(vm, 0, 3, 0, err, sizeof err) == LVM_OK) {
        lines = lua_tostring(L, -3);
        nsets = (int)lua_tointeger(L, -2);
        nstrategies = (int)lua_tointeger(L, -1);
    } else {
        fprintf(stderr, "tickforge: cannot list indicator sets and strategies: %s\n", err);
    }
    int nwarn = 0;
    for (const char *w = g->warnings; w && *w; w++) nwarn += *w == '\n';
    if (g->warnings && *g->warnings) {
        nwarn++;
        fprintf(stderr, "%s\n", g->warnings);
    }
    if (!g->linted) fprintf(stderr, "note: %s\n", g->lint_note);
    printf("ok: %s, %d route%s, %d job%s, %d indicator set%s, %d strateg%s; %d warning%s\n",
           config_path ? config_path : "(built-in defaults)", g->nroutes, g->nroutes == 1 ? "" : "s", g->njobs,
           g->njobs == 1 ? "" : "s", nsets, nsets == 1 ? "" : "s", nstrategies, nstrategies == 1 ? "y" : "ies", nwarn,
           nwarn == 1 ? "" : "s");
    for (int i = 0; i < g->nroutes; i++) printf("  %-8s %s\n", g->routes[i].method, g->routes[i].path);
    for (int i = 0; i < g->njobs; i++) {
        if (g->jobs[i].every_ms > 0) printf("  job      %s every %lld ms\n", g->jobs[i].name, g->jobs[i].every_ms);
        else printf("  job      %s cron \"%s\"\n", g->jobs[i].name, g->jobs[i].cron);
    }
    if (lines && *lines) printf("%s\n", lines);
    fflush(stdout);
    lvm_free(vm);
    cache_free(host.cache);
    return 0;
}

static int cmd_migrate(const char *config_path)
{
    char err[8192];
    struct config *cfg = load_config(config_path);
    if (!cfg) return 1;
    int rc = 0;
    if (!*cfg->db_url) {
        fprintf(stderr, "tickforge: migrate: no database: set DATABASE_URL or database.url\n");
        rc = 1;
    } else if (db_migrate(cfg->db_url, cfg->migrations_dir, err, sizeof err)) {
        fprintf(stderr, "tickforge: migrate: %s\n", err);
        rc = 1;
    }
    config_free(cfg);
    return rc;
}

static int cmd_version(void)
{
    printf("tickforge %s\n%s, libmicrohttpd %s, libpq %d\n", TF_VERSION, LUA_RELEASE,
           MHD_get_version(), PQlibVersion());
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        if (argc >= 3 && !strcmp(argv[1], "help")) return help_for(argv[2]);
        fputs(usage, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *cmd = argv[1];
    int own_help = !strcmp(cmd, "run") || !strcmp(cmd, "backtest") || !strcmp(cmd, "export"); /* Lua prints theirs */
    for (int i = 2; i < argc && !own_help; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return help_for(cmd);
    if (!strcmp(cmd, "run") && argc >= 3 && (!strcmp(argv[2], "--help") || !strcmp(argv[2], "-h")))
        return help_for(cmd);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) return cmd_version();

    int bad;
    const char *config_path = config_arg(&argc, argv, &bad);
    if (bad) {
        fprintf(stderr, "tickforge: --config needs a file name\n");
        return 2;
    }
    if (!strcmp(cmd, "serve")) return cmd_serve(config_path);
    if (!strcmp(cmd, "check")) return cmd_check(config_path);
    if (!strcmp(cmd, "migrate")) return cmd_migrate(config_path);
    if (!strcmp(cmd, "run")) return cmd_run(config_path, argc - 2, argv + 2);
    if (!strcmp(cmd, "backtest")) return run_lua(config_path, "tickforge.cli.backtest", argc - 1, argv + 1);
    if (!strcmp(cmd, "export")) return run_lua(config_path, "tickforge.cli.export", argc - 1, argv + 1);
    fprintf(stderr, "tickforge: unknown command '%s'\n\n%s", cmd, usage);
    return 2;
}
