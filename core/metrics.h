/* Process-wide Prometheus metrics: counters and gauges keyed by name and a
 * label string, rendered as text by GET /metrics. Thread-safe; cheap enough
 * for every request (one mutex, an open-addressing table, no allocation
 * after a series is first seen). Histograms are kept for request latency. */
#ifndef METRICS_H
#define METRICS_H

#include <stddef.h>

/* labels: the inside of {...} already formatted, e.g. "route=\"/ingest\"", or NULL.
 * help: one line of HELP text for the metric name (used the first time). */
void metrics_add(const char *name, const char *labels, double v, const char *help); /* counter += v */
void metrics_set(const char *name, const char *labels, double v, const char *help); /* gauge = v */
void metrics_observe(const char *name, const char *labels, double seconds, const char *help); /* histogram */
/* counter = v: mirrors a total counted elsewhere (the cache's hits). */
void metrics_set_total(const char *name, const char *labels, double v, const char *help);

/* The series name{labels} (a counter, or a latency histogram), found or
 * created once; NULL past the series bound. metrics_request then adds one
 * request to count and seconds to latency (either may be NULL) without
 * formatting or hashing anything: the per-request path of http.c. */
struct metrics_series;
struct metrics_series *metrics_series(const char *name, const char *labels, int histogram, const char *help);
void metrics_request(struct metrics_series *count, struct metrics_series *latency, double seconds);

/* Writes v escaped for a label value (\\, \", \n) into out (truncated to n). */
void metrics_escape_label(char *out, size_t n, const char *v);

/* A collector runs at the start of every metrics_render, outside the lock,
 * and refreshes series mirrored from another module (cache, pool). At most
 * 16; 0, or -1 when full. */
typedef void (*metrics_collector)(void *ud);
int metrics_add_collector(metrics_collector fn, void *ud);
void metrics_remove_collector(metrics_collector fn, void *ud);

/* ---- plugin metrics (tf.metrics, lua_metrics.c) ----
 * A family is declared once per process (name, type, label names, buckets)
 * and lives until exit, so its values survive reloads: declaring the same
 * family again returns it. Each family holds at most max_series label sets;
 * updates past that are dropped and counted in
 * tf_metrics_dropped_total{metric="name"}. Names starting with "tf_" belong
 * to the core. */
enum metrics_kind { METRICS_COUNTER, METRICS_GAUGE, METRICS_HISTOGRAM };
#define METRICS_MAX_LABELS 8     /* label names per family */
#define METRICS_MAX_BUCKETS 32   /* histogram buckets (+Inf is implicit) */
#define METRICS_MAX_FAMILIES 512 /* plugin families per process */
#define METRICS_MAX_VALUE 256    /* bytes in a label value */

struct metrics_decl {
    const char *name, *help;
    enum metrics_kind kind;
    const char *const *labels; /* nlabels label names */
    int nlabels;
    const double *buckets; /* histograms: nbuckets upper bounds, increasing; NULL: the default set */
    int nbuckets;
    int max_series; /* 1..100000 */
};

struct metrics_family;
/* The family d describes, created or found. NULL with err naming what is
 * wrong (a bad name, label or bucket; the same name declared differently). */
struct metrics_family *metrics_declare(const struct metrics_decl *d, char *err, size_t errlen);
/* The family's label names (static while the process runs); returns how many. */
int metrics_family_labels(const struct metrics_family *f, const char *const **names);
enum metrics_kind metrics_family_kind(const struct metrics_family *f);

enum metrics_op {
    METRICS_INC,    /* counter or gauge += v (a counter needs v >= 0) */
    METRICS_SET,    /* gauge = v */
    METRICS_OBSERVE /* histogram */
};
/* Applies op to the series of the given label values (one per label name,
 * in declaration order). 0; 1 when dropped (max_series reached); -1 with err
 * for a bad value (not finite, a counter going down, a label value too long). */
int metrics_update(struct metrics_family *f, const char *const *values, enum metrics_op op, double v,
                   char *err, size_t errlen);

/* Renders every series in Prometheus text format. Caller frees with mem_free. */
char *metrics_render(size_t *len);

#endif
