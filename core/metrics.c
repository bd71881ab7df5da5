/* Prometheus metrics in one open-addressing table under one mutex. A series
 * (name + labels) is allocated the first time it is seen and never freed
 * while the process runs; the table is bounded (MAX_SERIES) so label values
 * from the outside can never grow it without limit: past the bound new
 * series are dropped and counted in tf_metrics_dropped_total. Plugin
 * families (tf.metrics) live beside it, each with its own bounded table,
 * and collectors refresh mirrored series (the cache) before each render. */
#include "metrics.h"

#include "buf.h"
#include "mem.h"

#include <assert.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
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
    /* metrics_request's updates, without the lock; added in at render */
    _Atomic unsigned long long fast_n, fast_ns, fast_b[NBUCKETS];
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

/* A series found once and updated many times (the request counters): the
 * pointer stays valid while the process runs. */
struct metrics_series *metrics_series(const char *name, const char *labels, int histogram, const char *help)
{
    pthread_mutex_lock(&lock);
    struct series *s = lookup(name, labels, histogram ? HISTOGRAM : COUNTER, help);
    pthread_mutex_unlock(&lock);
    return (struct metrics_series *)s;
}

void metrics_request(struct metrics_series *count, struct metrics_series *latency, double seconds)
{
    /* every request of every worker comes here: atomic adds, no lock; the
     * count before the bucket, and the render reads the buckets first, so
     * a rendered count is never below its buckets */
    struct series *c = (struct series *)count, *h = (struct series *)latency;
    if (c) atomic_fetch_add(&c->fast_n, 1);
    if (!h) return;
    int b = 0;
    while (b < NBUCKETS && seconds > bucket_le[b]) b++;
    atomic_fetch_add(&h->fast_n, 1);
    atomic_fetch_add(&h->fast_ns, (unsigned long long)(seconds * 1e9));
    if (b < NBUCKETS) atomic_fetch_add(&h->fast_b[b], 1);
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

/* ---- plugin families ---- */

static const double default_buckets[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

struct pseries {
    char *labels;      /* rendered: a="x",b="y" (escaped) */
    double value;      /* counter/gauge; histogram sum */
    uint64_t count;    /* histogram */
    uint64_t *buckets; /* histogram: per bucket (not cumulative) */
};

struct metrics_family {
    char *name, *help;
    enum metrics_kind kind;
    char *labels[METRICS_MAX_LABELS];
    int nlabels;
    double buckets[METRICS_MAX_BUCKETS];
    int nbuckets;
    int max_series, nseries;
    double dropped;
    struct pseries **table; /* open addressing; cap a power of two, load <= 1/2 */
    size_t cap;
};

static struct metrics_family *families[METRICS_MAX_FAMILIES];
static int nfamilies;

static int valid_name(const char *s, int colon)
{
    if (!s || !*s) return 0;
    for (const char *p = s; *p; p++) {
        int alpha = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' || (colon && *p == ':');
        if (!alpha && !(p > s && *p >= '0' && *p <= '9')) return 0;
    }
    return strlen(s) <= 128;
}

static int same_decl(const struct metrics_family *f, const struct metrics_decl *d, const double *b, int nb)
{
    if (f->kind != d->kind || f->nlabels != d->nlabels || f->max_series != d->max_series) return 0;
    for (int i = 0; i < d->nlabels; i++)
        if (strcmp(f->labels[i], d->labels[i])) return 0;
    if (d->kind != METRICS_HISTOGRAM) return 1;
    if (f->nbuckets != nb) return 0;
    for (int i = 0; i < nb; i++)
        if (f->buckets[i] != b[i]) return 0;
    return 1;
}

static struct pseries *family_series(struct metrics_family *f, const char *labels);

static void family_free(struct metrics_family *f)
{
    if (!f) return;
    for (size_t i = 0; i < f->cap; i++)
        if (f->table[i]) {
            mem_free(f->table[i]->labels);
            mem_free(f->table[i]->buckets);
            mem_free(f->table[i]);
        }
    mem_free(f->table);
    mem_free(f->name);
    mem_free(f->help);
    for (int i = 0; i < f->nlabels; i++) mem_free(f->labels[i]);
    mem_free(f);
}

struct metrics_family *metrics_declare(const struct metrics_decl *d, char *err, size_t errlen)
{
    static const char *const kinds[] = {"counter", "gauge", "histogram"};
    const double *b = d->buckets ? d->buckets : default_buckets;
    int nb = d->buckets ? d->nbuckets : (int)(sizeof default_buckets / sizeof *default_buckets);
    if (!valid_name(d->name, 1)) {
        snprintf(err, errlen, "metric name \"%s\": must match [a-zA-Z_:][a-zA-Z0-9_:]* (at most 128 bytes)",
                 d->name ? d->name : "");
        return NULL;
    }
    if (!strncmp(d->name, "tf_", 3)) {
        snprintf(err, errlen, "metric name \"%s\": names starting with tf_ belong to the core", d->name);
        return NULL;
    }
    if (d->nlabels < 0 || d->nlabels > METRICS_MAX_LABELS) {
        snprintf(err, errlen, "metric %s: at most %d labels", d->name, METRICS_MAX_LABELS);
        return NULL;
    }
    for (int i = 0; i < d->nlabels; i++) {
        const char *l = d->labels[i];
        if (!valid_name(l, 0) || !strncmp(l, "__", 2)) {
            snprintf(err, errlen, "metric %s: label name \"%s\": must match [a-zA-Z_][a-zA-Z0-9_]* and not start with __",
                     d->name, l ? l : "");
            return NULL;
        }
        if (d->kind == METRICS_HISTOGRAM && !strcmp(l, "le")) {
            snprintf(err, errlen, "metric %s: label name \"le\" is reserved for histogram buckets", d->name);
            return NULL;
        }
        for (int j = 0; j < i; j++)
            if (!strcmp(l, d->labels[j])) {
                snprintf(err, errlen, "metric %s: label \"%s\" is listed twice", d->name, l);
                return NULL;
            }
    }
    if (d->kind == METRICS_HISTOGRAM) {
        if (nb < 1 || nb > METRICS_MAX_BUCKETS) {
            snprintf(err, errlen, "metric %s: buckets: give 1..%d upper bounds", d->name, METRICS_MAX_BUCKETS);
            return NULL;
        }
        for (int i = 0; i < nb; i++)
            if (!isfinite(b[i]) || (i && b[i] <= b[i - 1])) {
                snprintf(err, errlen, "metric %s: buckets[%d]: must be finite and greater than the one before", d->name,
                         i + 1);
                return NULL;
            }
    }
    if (d->max_series < 1 || d->max_series > 100000) {
        snprintf(err, errlen, "metric %s: max_series must be 1..100000, got %d", d->name, d->max_series);
        return NULL;
    }
    struct metrics_family *f = NULL;
    pthread_mutex_lock(&lock);
    for (int i = 0; i < nfamilies; i++)
        if (!strcmp(families[i]->name, d->name)) {
            f = families[i];
            break;
        }
    if (f) {
        if (!same_decl(f, d, b, nb)) {
            snprintf(err, errlen, "metric %s: already declared as a %s with other labels, buckets or max_series "
                     "(restart to change a declaration)", d->name, kinds[f->kind]);
            f = NULL;
        }
        goto out;
    }
    if (nfamilies >= METRICS_MAX_FAMILIES) {
        snprintf(err, errlen, "metric %s: too many metrics declared (at most %d per process)", d->name,
                 METRICS_MAX_FAMILIES);
        goto out;
    }
    f = mem_calloc(1, sizeof *f);
    if (!f || !(f->name = mem_strdup(d->name)) || !(f->help = mem_strdup(d->help ? d->help : ""))) goto oom;
    f->kind = d->kind;
    for (int i = 0; i < d->nlabels; i++, f->nlabels++)
        if (!(f->labels[i] = mem_strdup(d->labels[i]))) goto oom;
    if (d->kind == METRICS_HISTOGRAM) {
        memcpy(f->buckets, b, sizeof *b * (size_t)nb);
        f->nbuckets = nb;
    }
    f->max_series = d->max_series;
    if (!d->nlabels && !family_series(f, "")) goto oom; /* shown (as 0) from the start */
    families[nfamilies++] = f;
    goto out;
oom:
    family_free(f);
    f = NULL;
    snprintf(err, errlen, "out of memory");
out:
    pthread_mutex_unlock(&lock);
    return f;
}

int metrics_family_labels(const struct metrics_family *f, const char *const **names)
{
    *names = (const char *const *)f->labels;
    return f->nlabels;
}

enum metrics_kind metrics_family_kind(const struct metrics_family *f)
{
    return f->kind;
}

/* The series of labels in f, created when there is room; under lock. NULL
 * when full (counted) or out of memory. */
static struct pseries *family_series(struct metrics_family *f, const char *labels)
{
    uint32_t h = hash(labels, NULL);
    if (f->table) {
        for (size_t i = h & (f->cap - 1);; i = (i + 1) & (f->cap - 1)) {
            struct pseries *s = f->table[i];
            if (!s) break;
            if (!strcmp(s->labels, labels)) return s;
        }
    }
    if (f->nseries >= f->max_series) {
        f->dropped++;
        return NULL;
    }
    if ((size_t)(f->nseries + 1) * 2 > f->cap) { /* grow (or create) the table */
        size_t cap = f->cap ? f->cap * 2 : 16;
        struct pseries **t = mem_calloc(cap, sizeof *t);
        if (!t) return NULL;
        for (size_t i = 0; i < f->cap; i++)
            if (f->table[i]) {
                size_t j = hash(f->table[i]->labels, NULL) & (cap - 1);
                while (t[j]) j = (j + 1) & (cap - 1);
                t[j] = f->table[i];
            }
        mem_free(f->table);
        f->table = t;
        f->cap = cap;
    }
    struct pseries *s = mem_calloc(1, sizeof *s);
    if (!s || !(s->labels = mem_strdup(labels)) ||
        (f->kind == METRICS_HISTOGRAM && !(s->buckets = mem_calloc((size_t)f->nbuckets, sizeof *s->buckets)))) {
        if (s) mem_free(s->labels);
        mem_free(s);
        return NULL;
    }
    size_t i = h & (f->cap - 1);
    while (f->table[i]) i = (i + 1) & (f->cap - 1);
    f->table[i] = s;
    f->nseries++;
    return s;
}

int metrics_update(struct metrics_family *f, const char *const *values, enum metrics_op op, double v,
                   char *err, size_t errlen)
{
    if (!isfinite(v)) {
        snprintf(err, errlen, "%s: the value must be a finite number", f->name);
        return -1;
    }
    if (f->kind == METRICS_COUNTER && v < 0) {
        snprintf(err, errlen, "%s: a counter only goes up (got %g)", f->name, v);
        return -1;
    }
    char labels[METRICS_MAX_LABELS * (METRICS_MAX_VALUE * 2 + 140)];
    size_t n = 0;
    labels[0] = 0;
    for (int i = 0; i < f->nlabels; i++) {
        if (strlen(values[i]) > METRICS_MAX_VALUE) {
            snprintf(err, errlen, "%s: label %s: the value is longer than %d bytes", f->name, f->labels[i],
                     METRICS_MAX_VALUE);
            return -1;
        }
        char esc[METRICS_MAX_VALUE * 2 + 1];
        metrics_escape_label(esc, sizeof esc, values[i]);
        n += (size_t)snprintf(labels + n, sizeof labels - n, "%s%s=\"%s\"", i ? "," : "", f->labels[i], esc);
    }
    pthread_mutex_lock(&lock);
    struct pseries *s = family_series(f, labels);
    if (s) {
        if (op == METRICS_SET) s->value = v;
        else if (op == METRICS_INC) s->value += v;
        else {
            s->value += v;
            s->count++;
            for (int b = 0; b < f->nbuckets; b++)
                if (v <= f->buckets[b]) {
                    s->buckets[b]++;
                    break;
                }
        }
    }
    pthread_mutex_unlock(&lock);
    return s ? 0 : 1;
}

static int family_by_name(const void *a, const void *b)
{
    return strcmp((*(struct metrics_family *const *)a)->name, (*(struct metrics_family *const *)b)->name);
}

static int pseries_by_labels(const void *a, const void *b)
{
    return strcmp((*(struct pseries *const *)a)->labels, (*(struct pseries *const *)b)->labels);
}

static int by_name(const void *a, const void *b)
{
    const struct series *x = *(struct series *const *)a, *y = *(struct series *const *)b;
    int c = strcmp(x->name, y->name);
    return c ? c : strcmp(x->labels, y->labels);
}

/* Label list for a histogram line: the series' labels plus le. */
static void put_bucket(struct buf *b, const struct series *s, const char *le, uint64_t v)
{
    buf_printf(b, "%s_bucket{%s%sle=\"%s\"} %llu\n", s->name, s->labels, *s->labels ? "," : "", le,
               (unsigned long long)v);
}

/* "# HELP name text" with text escaped (backslash, newline). */
static void put_help(struct buf *b, const char *name, const char *help)
{
    buf_printf(b, "# HELP %s ", name);
    for (const char *p = help; *p; p++) {
        if (*p == '\\')
            buf_put(b, "\\\\", 2);
        else if (*p == '\n')
            buf_put(b, "\\n", 2);
        else
            buf_putc(b, *p);
    }
    buf_putc(b, '\n');
}

/* The shortest of %.15g..%.17g that reads back as v ("0.005", not "0.0050000000000000001"). */
static const char *fmt_double(char *out, size_t n, double v)
{
    if (isnan(v)) return "NaN";
    if (isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, n, "%.*g", prec, v);
        if (strtod(out, NULL) == v) break;
    }
    return out;
}

static void put_value(struct buf *b, double v)
{
    char num[40];
    buf_printf(b, "%s\n", fmt_double(num, sizeof num, v));
}

/* The plugin families, by name, each series by labels; under lock. 0, or
 * -1 when a sort array cannot be allocated. */
static int render_families(struct buf *b)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    struct metrics_family **fs = mem_alloc(sizeof *fs * (size_t)(nfamilies ? nfamilies : 1));
    if (!fs) return -1;
    memcpy(fs, families, sizeof *fs * (size_t)nfamilies);
    qsort(fs, (size_t)nfamilies, sizeof *fs, family_by_name);
    for (int i = 0; i < nfamilies; i++) {
        struct metrics_family *f = fs[i];
        if (*f->help) put_help(b, f->name, f->help);
        buf_printf(b, "# TYPE %s %s\n", f->name, type_names[f->kind]);
        struct pseries **ss = mem_alloc(sizeof *ss * (size_t)(f->nseries ? f->nseries : 1));
        if (!ss) {
            mem_free(fs);
            return -1;
        }
        int n = 0;
        for (size_t k = 0; k < f->cap; k++)
            if (f->table[k]) ss[n++] = f->table[k];
        qsort(ss, (size_t)n, sizeof *ss, pseries_by_labels);
        for (int k = 0; k < n; k++) {
            const struct pseries *s = ss[k];
            const char *lb = s->labels, *open = *lb ? "{" : "", *close = *lb ? "}" : "";
            if (f->kind != METRICS_HISTOGRAM) {
                buf_printf(b, "%s%s%s%s ", f->name, open, lb, close);
                put_value(b, s->value);
                continue;
            }
            uint64_t cum = 0;
            char num[40];
            for (int j = 0; j < f->nbuckets; j++) {
                cum += s->buckets[j];
                buf_printf(b, "%s_bucket{%s%sle=\"%s\"} %llu\n", f->name, lb, *lb ? "," : "",
                           fmt_double(num, sizeof num, f->buckets[j]), (unsigned long long)cum);
            }
            buf_printf(b, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", f->name, lb, *lb ? "," : "",
                       (unsigned long long)s->count);
            buf_printf(b, "%s_sum%s%s%s ", f->name, open, lb, close);
            put_value(b, s->value);
            buf_printf(b, "%s_count%s%s%s %llu\n", f->name, open, lb, close,
                       (unsigned long long)s->count);
        }
        mem_free(ss);
    }
    mem_free(fs);
    return 0;
}

char *metrics_render(size_t *len)
{
    static const char *const type_names[] = {"counter", "gauge", "histogram"};
    collect();
    struct buf b;
    buf_init(&b, NULL, 0, 0);
    buf_reserve(&b, 8192); /* the usual size at once; a failure shows at the end */
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
            if (*s->help) put_help(&b, s->name, s->help);
            buf_printf(&b, "# TYPE %s %s\n", s->name, type_names[s->kind]);
        }
        /* metrics_request's part: buckets before the count (see there) */
        unsigned long long fb[NBUCKETS], fns = atomic_load(&s->fast_ns);
        for (int k = 0; k < NBUCKETS; k++) fb[k] = atomic_load(&s->fast_b[k]);
        unsigned long long fn = atomic_load(&s->fast_n);
        if (s->kind == HISTOGRAM) {
            uint64_t cum = 0;
            char le[32];
            for (int k = 0; k < NBUCKETS; k++) {
                cum += s->buckets[k] + fb[k];
                snprintf(le, sizeof le, "%g", bucket_le[k]);
                put_bucket(&b, s, le, cum);
            }
            put_bucket(&b, s, "+Inf", s->count + fn);
            buf_printf(&b, "%s_sum%s%s%s %.9g\n", s->name, *s->labels ? "{" : "", s->labels,
                       *s->labels ? "}" : "", s->value + (double)fns / 1e9);
            buf_printf(&b, "%s_count%s%s%s %llu\n", s->name, *s->labels ? "{" : "", s->labels,
                       *s->labels ? "}" : "", (unsigned long long)s->count + fn);
        } else {
            buf_printf(&b, "%s%s%s%s %.17g\n", s->name, *s->labels ? "{" : "", s->labels,
                       *s->labels ? "}" : "", s->value + (double)fn);
        }
    }
    int rc = all ? render_families(&b) : -1;
    buf_printf(&b,
               "# HELP tf_metrics_dropped_total Metric updates dropped: the series table was full "
               "(no label), or "
               "a plugin metric's max_series was reached (metric)\n"
               "# TYPE tf_metrics_dropped_total counter\ntf_metrics_dropped_total %.17g\n",
               dropped);
    for (int i = 0; i < nfamilies; i++)
        if (families[i]->dropped > 0)
            buf_printf(&b, "tf_metrics_dropped_total{metric=\"%s\"} %.17g\n", families[i]->name,
                       families[i]->dropped);
    pthread_mutex_unlock(&lock);
    mem_free(all);
    if (rc) {
        buf_free(&b);
        return NULL;
    }
    return buf_detach(&b, len); /* NULL when b failed */
}
