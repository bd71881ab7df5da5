/* Per-plugin accounting (see acct.h). A mutex guards the list of entries
 * (taken when an entry is created, and by the readers); the counters are
 * atomics, updated without it. */
#include "acct.h"

#include "mem.h"
#include "metrics.h"

#include <cJSON.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct acct_entry {
    enum acct_kind kind;
    char *name, *plugin;
    _Atomic long long calls, failures, cpu_ns, wall_ns, wait_ns, statements, alloc_bytes;
    struct acct_entry *next;
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct acct_entry *entries;
static int nentries;

struct acct_entry *acct_entry(enum acct_kind kind, const char *name, const char *plugin)
{
    if (!plugin) plugin = "";
    pthread_mutex_lock(&lock);
    struct acct_entry *e = entries;
    while (e && !(e->kind == kind && !strcmp(e->name, name) && !strcmp(e->plugin, plugin)))
        e = e->next;
    if (!e && (e = mem_calloc(1, sizeof *e))) {
        e->kind = kind;
        e->name = mem_strdup(name);
        e->plugin = mem_strdup(plugin);
        if (!e->name || !e->plugin) {
            mem_free(e->name);
            mem_free(e->plugin);
            mem_free(e);
            e = NULL;
        } else {
            e->next = entries;
            entries = e;
            nentries++;
        }
    }
    pthread_mutex_unlock(&lock);
    return e;
}

void acct_record(struct acct_entry *e, const struct lvm_acct *a, long long wall_ns, int failed)
{
    if (!e) return;
    atomic_fetch_add_explicit(&e->calls, 1, memory_order_relaxed);
    if (failed) atomic_fetch_add_explicit(&e->failures, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&e->wall_ns, wall_ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&e->cpu_ns, a->cpu_ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&e->wait_ns, a->wait_ns, memory_order_relaxed);
    atomic_fetch_add_explicit(&e->statements, a->statements, memory_order_relaxed);
    atomic_fetch_add_explicit(&e->alloc_bytes, a->alloc_bytes, memory_order_relaxed);
}

/* A copy of every entry's counters, taken under the lock. */
struct snap {
    const struct acct_entry *e;
    long long calls, failures, cpu_ns, wall_ns, wait_ns, statements, alloc_bytes;
};

static int snapshot(struct snap **out)
{
    pthread_mutex_lock(&lock);
    int n = 0;
    struct snap *s = mem_alloc(sizeof *s * (size_t)(nentries ? nentries : 1));
    for (const struct acct_entry *e = entries; s && e; e = e->next, n++)
        s[n] = (struct snap){e,          e->calls,   e->failures,   e->cpu_ns,
                             e->wall_ns, e->wait_ns, e->statements, e->alloc_bytes};
    pthread_mutex_unlock(&lock);
    *out = s;
    return s ? n : -1;
}

/* The series of an entry, in the order of acct_metrics' values. */
static const struct {
    const char *route, *job, *help;
} SERIES[7] = {
    {"tf_route_calls_total", "tf_job_calls_total",
     "Calls of a route's handler or runs of a job (per-plugin accounting)"},
    {"tf_route_failures_total", "tf_job_failures_total",
     "Calls that failed: an error, a time limit, a 5xx answer"},
    {"tf_route_cpu_seconds_total", "tf_job_cpu_seconds_total",
     "Time its Lua code ran (CPU; for routes the clock while resumed, so preemption counts)"},
    {"tf_route_wall_seconds_total", "tf_job_wall_seconds_total", "Wall time from start to answer"},
    {"tf_route_wait_seconds_total", "tf_job_wait_seconds_total",
     "Time spent waiting: on the database, a store, or another caller's cache load"},
    {"tf_route_db_statements_total", "tf_job_db_statements_total",
     "Statements sent to the database (a store counts one)"},
    {"tf_route_alloc_bytes_total", "tf_job_alloc_bytes_total", "Bytes the Lua VM allocated for it"},
};

void acct_metrics(void *ud)
{
    (void)ud;
    struct snap *s;
    int n = snapshot(&s);
    for (int i = 0; i < n; i++) {
        const struct snap *x = &s[i];
        char name[300], plugin[300], labels[700];
        metrics_escape_label(name, sizeof name, x->e->name);
        metrics_escape_label(plugin, sizeof plugin, x->e->plugin);
        int route = x->e->kind == ACCT_ROUTE;
        snprintf(labels, sizeof labels, "%s=\"%s\",plugin=\"%s\"", route ? "route" : "job", name,
                 plugin);
        double v[7] = {(double)x->calls,      (double)x->failures, x->cpu_ns / 1e9,
                       x->wall_ns / 1e9,      x->wait_ns / 1e9,    (double)x->statements,
                       (double)x->alloc_bytes};
        for (int k = 0; k < 7; k++)
            metrics_set_total(route ? SERIES[k].route : SERIES[k].job, labels, v[k],
                              SERIES[k].help);
    }
    mem_free(s);
}

static int by_wall(const void *a, const void *b)
{
    long long x = ((const struct snap *)a)->wall_ns, y = ((const struct snap *)b)->wall_ns;
    return x < y ? 1 : x > y ? -1 : 0;
}

cJSON *acct_to_json(void)
{
    struct snap *s;
    int n = snapshot(&s);
    cJSON *arr = cJSON_CreateArray();
    if (n < 0 || !arr) {
        mem_free(s);
        return arr;
    }
    qsort(s, (size_t)n, sizeof *s, by_wall);
    for (int i = 0; i < n; i++) {
        const struct snap *x = &s[i];
        cJSON *o = cJSON_CreateObject();
        if (!o) break;
        cJSON_AddItemToArray(arr, o);
        cJSON_AddStringToObject(o, "kind", x->e->kind == ACCT_ROUTE ? "route" : "job");
        cJSON_AddStringToObject(o, "name", x->e->name);
        cJSON_AddStringToObject(o, "plugin", x->e->plugin);
        cJSON_AddNumberToObject(o, "calls", (double)x->calls);
        cJSON_AddNumberToObject(o, "failures", (double)x->failures);
        cJSON_AddNumberToObject(o, "cpu_s", x->cpu_ns / 1e9);
        cJSON_AddNumberToObject(o, "wall_s", x->wall_ns / 1e9);
        cJSON_AddNumberToObject(o, "wait_s", x->wait_ns / 1e9);
        cJSON_AddNumberToObject(o, "statements", (double)x->statements);
        cJSON_AddNumberToObject(o, "alloc_bytes", (double)x->alloc_bytes);
    }
    mem_free(s);
    return arr;
}
