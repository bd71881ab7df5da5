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

/* Writes v escaped for a label value (\\, \", \n) into out (truncated to n). */
void metrics_escape_label(char *out, size_t n, const char *v);

/* A collector runs at the start of every metrics_render, outside the lock,
 * and refreshes series mirrored from another module (cache, pool). At most
 * 16; 0, or -1 when full. */
typedef void (*metrics_collector)(void *ud);
int metrics_add_collector(metrics_collector fn, void *ud);
void metrics_remove_collector(metrics_collector fn, void *ud);

/* Renders every series in Prometheus text format. Caller frees with mem_free. */
char *metrics_render(size_t *len);

#endif
