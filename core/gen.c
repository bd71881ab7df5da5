/* Generations in a serving process (see gen.h). One reload at a time (a
 * mutex); a reload never blocks requests: it builds its VM on the caller's
 * thread and publishes with one pointer swap (lvm_gen_publish). The file
 * watch compares a cheap signature (names, sizes, mtimes) of the config file
 * and the plugin and lua directories. */
#include "gen.h"

#include "clock.h"
#include "config.h"
#include "log.h"
#include "lvm.h"
#include "mem.h"
#include "metrics.h"
#include "sched.h"

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

struct gen_ctl {
    char *config_path;
    struct lvm_host *host;
    pthread_mutex_t lock; /* one reload at a time; guards the fields below */
    long last_at;
    int last_ok;
    char last_error[4096];
    char last_trigger[32];
    unsigned long long watch_sig;     /* the files as the current generation saw them */
    unsigned long long watch_pending; /* as the last poll saw them */
    int watch_interval_ms;
};

static void sig_mix(unsigned long long *h, const char *s, long long a, long long b)
{
    for (; *s; s++) *h = (*h ^ (unsigned char)*s) * 1099511628211ull;
    *h = (*h ^ (unsigned long long)a) * 1099511628211ull;
    *h = (*h ^ (unsigned long long)b) * 1099511628211ull;
}

static void sig_dir(unsigned long long *h, const char *dir, int depth)
{
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char p[1024];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (stat(p, &st) != 0) continue;
        sig_mix(h, p, (long long)st.st_size, (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec);
        if (S_ISDIR(st.st_mode) && depth < 4) sig_dir(h, p, depth + 1);
    }
    closedir(d);
}

static unsigned long long watch_signature(struct gen_ctl *gc)
{
    unsigned long long h = 1469598103934665603ull;
    struct lvm_gen *g = lvm_gen_current();
    struct stat st;
    if (gc->config_path && stat(gc->config_path, &st) == 0)
        sig_mix(&h, gc->config_path, (long long)st.st_size, (long long)st.st_mtim.tv_sec * 1000000000LL + st.st_mtim.tv_nsec);
    if (g) {
        sig_dir(&h, g->cfg->plugins_dir, 0);
        for (int i = 0; i < g->cfg->nlua_path; i++) sig_dir(&h, g->cfg->lua_path[i], 0);
        lvm_gen_unref(g);
    }
    return h;
}

struct gen_ctl *gen_open(const char *config_path, struct lvm_host *host, struct lvm **vm, char *err,
                         size_t errlen)
{
    struct gen_ctl *gc = mem_calloc(1, sizeof *gc);
    if (!gc) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    gc->host = host;
    gc->config_path = config_path ? mem_strdup(config_path) : NULL;
    pthread_mutex_init(&gc->lock, NULL);
    *vm = lvm_gen_build(config_path, host, err, errlen);
    if (!*vm) {
        gen_close(gc);
        return NULL;
    }
    struct lvm_gen *g = lvm_gen(*vm);
    lvm_gen_publish(g);
    log_set_level((enum log_level)g->cfg->log_level);
    gc->last_ok = 1;
    gc->last_at = (long)time(NULL);
    snprintf(gc->last_trigger, sizeof gc->last_trigger, "start");
    gc->watch_interval_ms = g->cfg->reload_interval_ms;
    gc->watch_sig = watch_signature(gc);
    return gc;
}

void gen_close(struct gen_ctl *gc)
{
    if (!gc) return;
    pthread_mutex_destroy(&gc->lock);
    mem_free(gc->config_path);
    mem_free(gc);
}

int gen_reload(struct gen_ctl *gc, const char *trigger, char *err, size_t errlen)
{
    pthread_mutex_lock(&gc->lock);
    long long t0 = clock_ns();
    struct lvm *vm = lvm_gen_build(gc->config_path, gc->host, err, errlen);
    gc->last_at = (long)time(NULL);
    snprintf(gc->last_trigger, sizeof gc->last_trigger, "%s", trigger);
    int rc = -1;
    if (vm) {
        struct lvm_gen *g = lvm_gen(vm);
        struct lvm_gen *old = lvm_gen_current();
        if (old && (strcmp(old->cfg->listen_host, g->cfg->listen_host) || old->cfg->listen_port != g->cfg->listen_port ||
                    old->cfg->http_workers != g->cfg->http_workers ||
                    old->cfg->http_max_connections != g->cfg->http_max_connections))
            log_warn("listen, http.workers and http.max_connections take effect at the next restart", NULL);
        if (old) lvm_gen_unref(old);
        lvm_gen_publish(g);
        sched_wake(gc->host->sched);
        log_set_level((enum log_level)g->cfg->log_level);
        log_info("reloaded", "gen=%ld trigger=%s routes=%d ms=%.1f", g->id, trigger, g->nroutes, (double)(clock_ns() - t0) / 1e6);
        lvm_free(vm);
        gc->last_ok = 1;
        gc->last_error[0] = 0;
        metrics_add("tf_reloads_total", "result=\"ok\"", 1, "Reloads attempted, by result");
        rc = 0;
    } else {
        char q[2048];
        log_error("reload rejected; the previous generation keeps serving", "trigger=%s error=%s", trigger,
                  log_quote(q, sizeof q, err));
        gc->last_ok = 0;
        snprintf(gc->last_error, sizeof gc->last_error, "%s", err);
        metrics_add("tf_reloads_total", "result=\"error\"", 1, "Reloads attempted, by result");
    }
    gc->watch_sig = watch_signature(gc);
    pthread_mutex_unlock(&gc->lock);
    return rc;
}

void gen_watch(struct gen_ctl *gc)
{
    struct lvm_gen *g = lvm_gen_current();
    int on = g && g->cfg->reload_watch;
    if (g) {
        gc->watch_interval_ms = g->cfg->reload_interval_ms;
        lvm_gen_unref(g);
    }
    if (!on) return;
    unsigned long long sig = watch_signature(gc);
    pthread_mutex_lock(&gc->lock);
    /* Reload once the files have stopped changing for a whole interval, so
     * a file caught half-written is never loaded; a broken edit is then
     * reported once, not at every poll. */
    int changed = sig != gc->watch_sig && sig == gc->watch_pending;
    gc->watch_pending = sig;
    if (changed) gc->watch_sig = sig;
    pthread_mutex_unlock(&gc->lock);
    if (changed) {
        char err[4096];
        gen_reload(gc, "watch", err, sizeof err);
    }
}

int gen_watch_interval_ms(struct gen_ctl *gc)
{
    return gc->watch_interval_ms;
}

void gen_status(struct gen_ctl *gc, struct gen_status *out)
{
    pthread_mutex_lock(&gc->lock);
    snprintf(out->config_path, sizeof out->config_path, "%s", gc->config_path ? gc->config_path : "(defaults)");
    out->at = gc->last_at;
    out->ok = gc->last_ok;
    snprintf(out->trigger, sizeof out->trigger, "%s", gc->last_trigger);
    snprintf(out->error, sizeof out->error, "%s", gc->last_error);
    pthread_mutex_unlock(&gc->lock);
}
