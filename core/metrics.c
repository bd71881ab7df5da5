/* Prometheus metrics in one open-addressing table under one mutex. A series
 * (name + labels) is allocated the first time it is seen and never freed
 * while the process runs; the table is bounded (MAX_SERIES) so label values
 * from the outside can never grow it without limit: past the bound new
 * series are dropped and counted in tf_metrics_dropped_total. */
#include "metrics.h"

#include "mem.h"

#include <assert.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SERIES 4096 /* power of two; load stays under 1/2 */
#define NBUCKETS 14

enum kind { COUNTER, GAUGE, HISTOGRAM };

struct series {
    char *name, *labels, *help;
    enum kind kind;
    double value;                  /* counter/gauge; histogram sum */
    uint64_t count;                /* histogram */
    uint64_t buckets[NBUCKETS];    /* histogram, cumulative at render */
};

static const double bucket_le[NBUCKETS] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                           0.1,    0.25,  0.5,    1,     2.5,  5,     10};
static struct series *table[MAX_SERIES * 2];
static int nseries;
static double dropped;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;

static uint32_t hash(const char *a, const char *b)
{
    uint32_t h = 2166136261u;
    for (; *a; a++) h = (h ^ (unsigned char)*a) * 16777619u;
    h = (h ^ '{') * 16777619u;
    for (; b && *b; b++) h = (h ^ (unsigned char)*b) * 16777619u;
    return h;
}

/* Finds or creates the series; called with lock held. NULL when full or OOM. */
static struct series *lookup(const char *name, const char *labels, enum kind kind, const char *help)
{
    const char *lb = labels ? labels : "";
    uint32_t mask = MAX_SERIES * 2 - 1, i = hash(name, lb) & mask;
    for (;; i = (i + 1) & mask) {
        struct series *s = table[i];
        if (!s) break;
        if (strcmp(s->name, name) == 0 && strcmp(s->labels, lb) == 0) return s;
    }
    if (nseries >= MAX_SERIES) {
        dropped++;
        return NULL;
    }
    struct series *s = mem_calloc(1, sizeof *s);
    if (!s) return NULL;
    s->name = mem_strdup(name);
    s->labels = mem_strdup(lb);
    s->help = mem_strdup(help ? help : "");
    if (!s->name || !s->labels || !s->help) {
        mem_free(s->name);
        mem_free(s->labels);
        mem_free(s->help);
        mem_free(s);
        return NULL;
    }
    s->kind = kind;
    table[i] = s;
    nseries++;
    return s;
}

void metrics_add(const char *name, const char *labels, double v, const char *help)
{
    pthread_mutex_lock(&lock);
    struct series *s = lookup(name, labels, COUNTER, help);
    if (s) s->value += v;
    pthread_mutex_unlock(&lock);
}

void metrics_set(const char *name, const char *labels, double v, const char *help)
{
    pthread_mutex_lock(&lock);
    struct series *s = lookup(name, labels, GAUGE, help);
    if (s) s->value = v;
    pthread_mutex_unlock(&lock);
}

void metrics_observe(const char *name, const char *labels, double seconds, const char *help)
{
    pthread_mutex_lock(&lock);
    struct series *s = lookup(name, labels, HISTOGRAM, help);
    if (s) {
        s->value += seconds;
        s->count++;
        for (int b = 0; b < NBUCKETS; b++)
            if (seconds <= bucket_le[b]) {
                s->buckets[b]++;
                break;
            }
    }
    pthread_mutex_unlock(&lock);
}

void metrics_set_total(const char *name, const char *labels, double v, const char *help)
{
    pthread_mutex_lock(&lock);
    struct series *s = lookup(name, labels, COUNTER, help);
    if (s) s->value = v;
    pthread_mutex_unlock(&lock);
}

void metrics_escape_label(char *out, size_t n, const char *v)
{
    size_t o = 0;
    assert(n > 0);
    for (; *v; v++) {
        const char *rep = *v == '\\' ? "\\\\" : *v == '"' ? "\\\"" : *v == '\n' ? "\\n" : NULL;
        size_t k = rep ? 2 : 1;
        if (o + k >= n) break;
        if (rep) memcpy(out + o, rep, 2);
        else out[o] = *v;
        o += k;
    }
    out[o] = 0;
}

#define MAX_COLLECTORS 16
static struct {
    metrics_collector fn;
    void *ud;
} collectors[MAX_COLLECTORS];
static pthread_mutex_t collectors_lock = PTHREAD_MUTEX_INITIALIZER;

int metrics_add_collector(metrics_collector fn, void *ud)
{
    int rc = -1;
    pthread_mutex_lock(&collectors_lock);
    for (int i = 0; i < MAX_COLLECTORS && rc; i++)
        if (!collectors[i].fn) {
            collectors[i].fn = fn;
            collectors[i].ud = ud;
            rc = 0;
        }
    pthread_mutex_unlock(&collectors_lock);
    return rc;
}

void metrics_remove_collector(metrics_collector fn, void *ud)
{
    pthread_mutex_lock(&collectors_lock);
    for (int i = 0; i < MAX_COLLECTORS; i++)
        if (collectors[i].fn == fn && collectors[i].ud == ud) collectors[i].fn = NULL;
    pthread_mutex_unlock(&collectors_lock);
}

/* Runs the collectors; they call metrics_set*, which take `lock`. A
 * collector is never removed while it runs (collectors_lock is held). */
static void collect(void)
{
    pthread_mutex_lock(&collectors_lock);
    for (int i = 0; i < MAX_COLLECTORS; i++)
        if (collectors[i].fn) collectors[i].fn(collectors[i].ud);
    pthread_mutex_unlock(&collectors_lock);
}

static int by_name(const void *a, const void *b)
{
    const struct series *x = *(struct series *const *)a, *y = *(struct series *const *)b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->labels, y->labels);
}

struct buf {
    char *p;
    size_t len, cap;
    int oom;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        if (b->oom) return;
        va_start(ap, fmt);
        int n = vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if ((size_t)n < b->cap - b->len) {
            b->len += (size_t)n;
            return;
        }
        char *q = mem_realloc(b->p, b->cap * 2 + (size_t)n);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = b->cap * 2 + (size_t)n;
    }
}

/* Label list for a histogram line: the series' labels plus le. */
static void put_bucket(struct buf *b, const struct series *s, const char *le, uint64_t v)
{
    put(b, "%s_bucket{%s%sle=\"%s\"} %llu\n", s->name, s->labels, *s->labels ? "," : "", le,
        (unsigned long long)v);
}

char *metrics_render(size_t *len)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    collect();
    struct buf b = {mem_alloc(8192), 0, 8192, 0};
    if (!b.p) return NULL;
    pthread_mutex_lock(&lock);
    struct series **all = mem_alloc(sizeof *all * (size_t)(nseries ? nseries : 1));
    int n = 0;
    if (all) {
        for (size_t i = 0; i < MAX_SERIES * 2; i++)
            if (table[i]) all[n++] = table[i];
        qsort(all, (size_t)n, sizeof *all, by_name);
    }
    for (int i = 0; i < n; i++) {
        const struct series *s = all[i];
        if (i == 0 || strcmp(all[i - 1]->name, s->name) != 0) {
            if (*s->help) put(&b, "# HELP %s %s\n", s->name, s->help);
            put(&b, "# TYPE %s %s\n", s->name, type_names[s->kind]);
        }
        if (s->kind == HISTOGRAM) {
            uint64_t cum = 0;
            char le[32];
            for (int k = 0; k < NBUCKETS; k++) {
                cum += s->buckets[k];
                snprintf(le, sizeof le, "%g", bucket_le[k]);
                put_bucket(&b, s, le, cum);
            }
            put_bucket(&b, s, "+Inf", s->count);
            put(&b, "%s_sum%s%s%s %.9g\n", s->name, *s->labels ? "{" : "", s->labels,
                *s->labels ? "}" : "", s->value);
            put(&b, "%s_count%s%s%s %llu\n", s->name, *s->labels ? "{" : "", s->labels,
                *s->labels ? "}" : "", (unsigned long long)s->count);
        } else {
            put(&b, "%s%s%s%s %.17g\n", s->name, *s->labels ? "{" : "", s->labels,
                *s->labels ? "}" : "", s->value);
        }
    }
    put(&b, "# TYPE tf_metrics_dropped_total counter\ntf_metrics_dropped_total %.17g\n", dropped);
    pthread_mutex_unlock(&lock);
    mem_free(all);
    if (b.oom || !all) {
        mem_free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}
