/* metrics.c: Prometheus text for counters, gauges and histograms, and the
 * bound on how many series outside input can create. */
#include "unit.h"

#include "mem.h"
#include "metrics.h"

TEST(counters_gauges_and_histograms_render_as_prometheus_text)
{
    metrics_add("t_requests_total", "route=\"/a\"", 1, "Requests");
    metrics_add("t_requests_total", "route=\"/a\"", 2, NULL);
    metrics_add("t_requests_total", "route=\"/b\"", 1, NULL);
    metrics_set("t_pool_size", NULL, 8, "Pool size");
    metrics_observe("t_latency_seconds", "route=\"/a\"", 0.003, "Latency");
    metrics_observe("t_latency_seconds", "route=\"/a\"", 20, NULL);
    size_t len;
    char *t = metrics_render(&len);
    CHECK(t != NULL);
    if (!t) return;
    CHECK(strstr(t, "# HELP t_requests_total Requests\n# TYPE t_requests_total counter\n") != NULL);
    CHECK(strstr(t, "t_requests_total{route=\"/a\"} 3\n") != NULL);
    CHECK(strstr(t, "t_requests_total{route=\"/b\"} 1\n") != NULL);
    CHECK(strstr(t, "# TYPE t_pool_size gauge\nt_pool_size 8\n") != NULL);
    CHECK(strstr(t, "t_latency_seconds_bucket{route=\"/a\",le=\"0.0025\"} 0\n") != NULL);
    CHECK(strstr(t, "t_latency_seconds_bucket{route=\"/a\",le=\"0.005\"} 1\n") != NULL);
    CHECK(strstr(t, "t_latency_seconds_bucket{route=\"/a\",le=\"10\"} 1\n") != NULL);
    CHECK(strstr(t, "t_latency_seconds_bucket{route=\"/a\",le=\"+Inf\"} 2\n") != NULL);
    CHECK(strstr(t, "t_latency_seconds_count{route=\"/a\"} 2\n") != NULL);
    CHECK_INT(strlen(t), len);
    mem_free(t);
}

TEST(series_are_bounded)
{
    char labels[64];
    for (int i = 0; i < 5000; i++) {
        snprintf(labels, sizeof labels, "id=\"%d\"", i);
        metrics_add("t_flood_total", labels, 1, NULL);
    }
    size_t len;
    char *t = metrics_render(&len);
    CHECK(t != NULL);
    CHECK(t && strstr(t, "t_flood_total{id=\"10\"} 1") != NULL);
    CHECK(t && strstr(t, "tf_metrics_dropped_total 0\n") == NULL);
    mem_free(t);
}

int main(void)
{
    RUN(counters_gauges_and_histograms_render_as_prometheus_text);
    RUN(series_are_bounded);
    return unit_done();
}
