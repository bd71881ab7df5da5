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

TEST(plugin_families_render_with_their_labels_and_buckets_and_are_found_again)
{
    static const char *const labels[] = {"sym"};
    static const double buckets[] = {0.5, 1};
    char err[256];
    struct metrics_decl d = {"p_hist", "A \\ help\nline", METRICS_HISTOGRAM, labels, 1, buckets, 2, 2};
    struct metrics_family *f = metrics_declare(&d, err, sizeof err);
    CHECK(f != NULL);
    if (!f) return;
    CHECK(metrics_declare(&d, err, sizeof err) == f); /* the same declaration: the same family */
    const char *v1[] = {"EUR\"USD"}, *v2[] = {"b"}, *v3[] = {"c"};
    CHECK_INT(metrics_update(f, v1, METRICS_OBSERVE, 0.25, err, sizeof err), 0);
    CHECK_INT(metrics_update(f, v1, METRICS_OBSERVE, 3, err, sizeof err), 0);
    CHECK_INT(metrics_update(f, v2, METRICS_OBSERVE, 1, err, sizeof err), 0);
    CHECK_INT(metrics_update(f, v3, METRICS_OBSERVE, 1, err, sizeof err), 1); /* past max_series = 2 */
    CHECK_INT(metrics_update(f, v1, METRICS_OBSERVE, NAN, err, sizeof err), -1);
    d.nlabels = 0;
    CHECK(metrics_declare(&d, err, sizeof err) == NULL);
    CHECK(strstr(err, "already declared as a histogram") != NULL);
    struct metrics_decl c = {"p_count_total", "", METRICS_COUNTER, NULL, 0, NULL, 0, 10};
    struct metrics_family *fc = metrics_declare(&c, err, sizeof err);
    CHECK(fc != NULL);
    size_t len;
    char *t = metrics_render(&len);
    CHECK(t != NULL);
    if (!t) return;
    CHECK(strstr(t, "# HELP p_hist A \\\\ help\\nline\n# TYPE p_hist histogram\n") != NULL);
    CHECK(strstr(t, "p_hist_bucket{sym=\"EUR\\\"USD\",le=\"0.5\"} 1\n") != NULL);
    CHECK(strstr(t, "p_hist_bucket{sym=\"EUR\\\"USD\",le=\"1\"} 1\n") != NULL);
    CHECK(strstr(t, "p_hist_bucket{sym=\"EUR\\\"USD\",le=\"+Inf\"} 2\n") != NULL);
    CHECK(strstr(t, "p_hist_sum{sym=\"EUR\\\"USD\"} 3.25\n") != NULL);
    CHECK(strstr(t, "p_hist_count{sym=\"b\"} 1\n") != NULL);
    CHECK(strstr(t, "sym=\"c\"") == NULL);
    CHECK(strstr(t, "tf_metrics_dropped_total{metric=\"p_hist\"} 1\n") != NULL);
    CHECK(strstr(t, "# TYPE p_count_total counter\np_count_total 0\n") != NULL); /* shown from the start */
    mem_free(t);
}

TEST(bad_plugin_declarations_are_refused_with_the_reason)
{
    static const char *const bad_label[] = {"__x"};
    char err[256];
    struct metrics_decl d = {"ok_name", "", METRICS_GAUGE, bad_label, 1, NULL, 0, 10};
    CHECK(metrics_declare(&d, err, sizeof err) == NULL);
    CHECK(strstr(err, "label name \"__x\"") != NULL);
    d.nlabels = 0;
    d.name = "tf_core_thing";
    CHECK(metrics_declare(&d, err, sizeof err) == NULL);
    d.name = "a-b";
    CHECK(metrics_declare(&d, err, sizeof err) == NULL);
    CHECK(strstr(err, "must match") != NULL);
}

int main(void)
{
    RUN(counters_gauges_and_histograms_render_as_prometheus_text);
    RUN(series_are_bounded);
    RUN(plugin_families_render_with_their_labels_and_buckets_and_are_found_again);
    RUN(bad_plugin_declarations_are_refused_with_the_reason);
    return unit_done();
}
