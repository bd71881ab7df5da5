/* Unit tests for core/ticks.c: decoding and validating tick bodies, and
 * storing them in a real, freshly migrated PostgreSQL database: with ts_msc
 * a resend is a duplicate, without it ticks sharing a second are all kept. */
#include "db_fixture.h"
#include "mem.h"
#include "ticks.h"
#include "ts.h"
#include "unit.h"

static struct db_pool *pool;

static struct ticks_batch *decode(const char *body, int *st, char *err)
{
    struct ingest_opts o = {.max_items = 20000};
    struct ticks_batch *b = NULL;
    ticks_decode(body, strlen(body), &o, &b, st, err, 256);
    return b;
}

TEST(the_documented_body_decodes)
{
    int st;
    char err[256] = "", buf[40];
    struct ticks_batch *b = decode(
        "{\"ticks\":[{\"symbol\":\"EURUSD\",\"ts\":\"2025-10-20T03:01:10.123Z\",\"bid\":1.0855,\"ask\":1.0857},"
        "{\"symbol\":\"EURUSD\",\"ts\":\"2025-10-20T03:01:15.456Z\",\"bid\":1.0856,\"ask\":1.0858}]}",
        &st, err);
    CHECK(b && b->nvalid == 2);
    if (!b) return;
    CHECK_STR(b->items[0].ts_original, "2025-10-20T03:01:10.123Z");
    ts_format(b->items[0].bucket_us, buf, sizeof buf);
    CHECK_STR(buf, "2025-10-20T03:01:00+00:00");
    ts_format(b->items[1].ts_us, buf, sizeof buf);
    CHECK_STR(buf, "2025-10-20T03:01:15.456000+00:00");
    ticks_free(b);
}

TEST(bad_bodies_are_400_and_bad_ticks_are_rejected_by_field)
{
    int st;
    char err[256] = "";
    CHECK(decode("{\"ticks\":[", &st, err) == NULL);
    CHECK_INT(st, 400);
    CHECK(strstr(err, "invalid JSON at byte") != NULL);
    CHECK(decode("{\"tick\":[]}", &st, err) == NULL);
    CHECK(strstr(err, "\"ticks\" is missing") != NULL);
    CHECK(decode("{\"ticks\":{}}", &st, err) == NULL);
    CHECK(strstr(err, "ticks: must be an array") != NULL);

    static const struct {
        const char *tick, *err;
    } t[] = {
        {"{\"ts\":1,\"bid\":1,\"ask\":1}", "symbol: missing"},
        {"{\"symbol\":\"E\",\"bid\":1,\"ask\":1}", "ts: missing"},
        {"{\"symbol\":\"E\",\"ts\":\"soon\",\"bid\":1,\"ask\":1}", "ts: not a timestamp"},
        {"{\"symbol\":\"E\",\"ts\":1,\"ask\":1}", "bid: missing"},
        {"{\"symbol\":\"E\",\"ts\":1,\"bid\":0,\"ask\":1}", "bid: must be > 0"},
        {"{\"symbol\":\"E\",\"ts\":1,\"bid\":1,\"ask\":\"x\"}", "ask: must be a number"},
        {"{\"symbol\":\"E\",\"ts\":1,\"bid\":1,\"ask\":1,\"volume\":-3}", "volume: must be >= 0"},
        {"{\"symbol\":\"E\",\"ts\":1,\"bid\":1,\"ask\":1,\"last\":-1}", "last: must be >= 0"},
        {"{\"symbol\":\"E\",\"ts\":1,\"bid\":1,\"ask\":1,\"flags\":1.5}", "flags: must be a 32-bit"},
        {"{\"symbol\":\"E\",\"ts\":1,\"bid\":1,\"ask\":1,\"ts_msc\":-5}", "ts_msc: must be whole"},
        {"{\"symbol\":\"E\",\"ts\":1,\"bid\":1,\"ask\":1,\"ts_msc\":\"x\"}", "ts_msc: must be a number"},
        {"[]", "item: must be a JSON object"},
    };
    char body[8192];
    size_t len = (size_t)snprintf(body, sizeof body, "{\"ticks\":[{\"symbol\":\"OK\",\"ts\":1,\"bid\":1,\"ask\":2}");
    for (size_t i = 0; i < sizeof t / sizeof *t; i++)
        len += (size_t)snprintf(body + len, sizeof body - len, ",%s", t[i].tick);
    snprintf(body + len, sizeof body - len, "]}");
    struct ticks_batch *b = decode(body, &st, err);
    CHECK(b != NULL);
    if (!b) return;
    CHECK_INT(b->nvalid, 1);
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        CHECK_INT(b->items[i + 1].status, INGEST_REJECTED);
        if (!strstr(b->items[i + 1].error, t[i].err))
            printf("# case %zu: \"%s\" lacks \"%s\"\n", i, b->items[i + 1].error, t[i].err);
        CHECK(strstr(b->items[i + 1].error, t[i].err) != NULL);
    }
    ticks_free(b);
}

TEST(ts_msc_alone_is_enough_and_is_the_precise_time)
{
    int st;
    char err[256] = "", buf[40];
    struct ticks_batch *b = decode(
        "{\"ticks\":[{\"symbol\":\"E\",\"ts_msc\":1760929270123,\"bid\":1,\"ask\":1},"
        "{\"symbol\":\"E\",\"ts\":\"2025.10.20 03:01:10\",\"ts_msc\":1760929270456,\"bid\":1,\"ask\":1}]}",
        &st, err);
    CHECK(b && b->nvalid == 2);
    if (!b) return;
    ts_format(b->items[0].ts_us, buf, sizeof buf);
    CHECK_STR(buf, "2025-10-20T03:01:10.123000+00:00");
    ts_format(b->items[1].ts_us, buf, sizeof buf);
    CHECK_STR(buf, "2025-10-20T03:01:10.456000+00:00");
    ticks_free(b);
}

TEST(a_big_batch_decodes)
{
    size_t n = 20000, cap = n * 120 + 64, len = 0;
    char *body = malloc(cap);
    len += (size_t)snprintf(body, cap, "{\"ticks\":[");
    for (size_t i = 0; i < n; i++)
        len += (size_t)snprintf(body + len, cap - len, "%s{\"symbol\":\"EURUSD\",\"ts\":%zu,\"bid\":1.0855,\"ask\":1.0857}",
                                i ? "," : "", 1760929200000 + i);
    snprintf(body + len, cap - len, "]}");
    int st;
    char err[256] = "";
    struct ticks_batch *b = decode(body, &st, err);
    CHECK(b && b->nvalid == n);
    ticks_free(b);
    struct ingest_opts o = {.max_items = 10000};
    CHECK_INT(ticks_decode(body, strlen(body), &o, &b, &st, err, sizeof err), -1);
    CHECK_INT(st, 413);
    free(body);
}

static struct ticks_batch *store(const char *body, int *rc)
{
    int st;
    char err[512] = "";
    struct ticks_batch *b = decode(body, &st, err);
    if (!b) {
        printf("# decode: %s\n", err);
        *rc = -99;
        return NULL;
    }
    *rc = ticks_store(pool, b, err, sizeof err);
    if (*rc) printf("# store: %s\n", err);
    return b;
}

TEST(ticks_without_ts_msc_sharing_a_second_are_all_kept)
{
    int rc;
    struct ingest_counts n;
    const char *body = "{\"ticks\":[{\"symbol\":\"NOMSC\",\"ts\":\"2025-10-20T03:01:10Z\",\"bid\":1.1,\"ask\":1.2},"
                       "{\"symbol\":\"NOMSC\",\"ts\":\"2025-10-20T03:01:10Z\",\"bid\":1.1,\"ask\":1.2}]}";
    struct ticks_batch *b = store(body, &rc);
    CHECK_INT(rc, DB_OK);
    ticks_count(b, &n);
    CHECK_INT(n.inserted, 2);
    ticks_free(b);
    b = store(body, &rc);
    ticks_count(b, &n);
    CHECK_INT(n.inserted, 2);
    ticks_free(b);
    CHECK_STR(fixture_value("SELECT count(*) FROM ticks WHERE symbol = 'NOMSC'"), "4");
}

TEST(ticks_with_ts_msc_deduplicate_on_symbol_and_ts_msc)
{
    int rc;
    struct ingest_counts n;
    const char *body =
        "{\"ticks\":[{\"symbol\":\"MSC\",\"ts\":\"2025-10-20T03:01:10.123Z\",\"ts_msc\":1760929270123,\"bid\":1.1,\"ask\":1.2,\"last\":0,\"volume\":3,\"flags\":6,\"spread\":10},"
        "{\"symbol\":\"MSC\",\"ts\":\"2025-10-20T03:01:10.123Z\",\"ts_msc\":1760929270123,\"bid\":1.1,\"ask\":1.2},"
        "{\"symbol\":\"MSC\",\"ts\":\"2025-10-20T03:01:10.124Z\",\"ts_msc\":1760929270124,\"bid\":1.1,\"ask\":1.2},"
        "{\"symbol\":\"MSC2\",\"ts\":\"2025-10-20T03:01:10.123Z\",\"ts_msc\":1760929270123,\"bid\":1.1,\"ask\":1.2}]}";
    struct ticks_batch *b = store(body, &rc);
    CHECK_INT(rc, DB_OK);
    ticks_count(b, &n);
    CHECK_INT(n.inserted, 3);
    CHECK_INT(n.duplicates, 1);
    CHECK_STR(ingest_status_name(b->items[1].status), "duplicate");
    ticks_free(b);
    b = store(body, &rc);
    ticks_count(b, &n);
    CHECK_INT(n.inserted, 0);
    CHECK_INT(n.duplicates, 4);
    ticks_free(b);
    CHECK_STR(fixture_value("SELECT count(*) FROM ticks WHERE symbol LIKE 'MSC%'"), "3");
    CHECK_STR(fixture_value("SELECT bid || ' ' || ask || ' ' || last || ' ' || volume || ' ' || flags || ' ' || ts_msc || ' ' || spread || ' ' || (ts = '2025-10-20T03:01:10.123Z') FROM ticks WHERE symbol = 'MSC' ORDER BY ts LIMIT 1"),
              "1.1 1.2 0 3 6 1760929270123 10 true");
}

TEST(the_ingestion_sequence_grows_in_batch_order)
{
    int rc;
    struct ticks_batch *b = store("{\"ticks\":[{\"symbol\":\"SEQ\",\"ts\":3,\"bid\":3,\"ask\":3},"
                                  "{\"symbol\":\"SEQ\",\"ts\":1,\"bid\":1,\"ask\":1},"
                                  "{\"symbol\":\"SEQ\",\"ts\":2,\"bid\":2,\"ask\":2}]}", &rc);
    CHECK_INT(rc, DB_OK);
    ticks_free(b);
    CHECK_STR(fixture_value("SELECT string_agg(bid::text, ',' ORDER BY seq) FROM ticks WHERE symbol = 'SEQ'"), "3,1,2");
}

TEST(big_batches_load_by_copy_and_a_resend_falls_back_to_duplicates)
{
    char *body = malloc(100 * 160 + 32);
    size_t len = (size_t)sprintf(body, "{\"ticks\":[");
    for (int i = 0; i < 100; i++)
        len += (size_t)sprintf(body + len, "%s{\"symbol\":\"BIG\",\"ts_msc\":%lld,\"bid\":1.0855%d,\"ask\":1.0857,\"volume\":%d}",
                               i ? "," : "", 1760929270000LL + i * 7, i % 10, i);
    sprintf(body + len, "]}");
    int rc;
    struct ingest_counts n;
    struct ticks_batch *b = store(body, &rc);
    CHECK_INT(rc, DB_OK);
    ticks_count(b, &n);
    CHECK_INT(n.inserted, 100);
    ticks_free(b);
    b = store(body, &rc);
    CHECK_INT(rc, DB_OK);
    ticks_count(b, &n);
    CHECK_INT(n.inserted, 0);
    CHECK_INT(n.duplicates, 100);
    ticks_free(b);
    free(body);
    CHECK_STR(fixture_value("SELECT count(*) || ' ' || sum(volume) || ' ' || min(bid) || ' ' || max(bid) FROM ticks WHERE symbol = 'BIG'"),
              "100 4950 1.0855 1.08559");
}

TEST(an_allocation_failure_while_storing_stores_nothing)
{
    for (int size = 3; size <= 70; size += 67) { /* the unnest and the COPY path */
        for (long n = -1; n < 12; n++) {          /* -1: warm-up, metrics series appear */
            char *body = malloc(160 * 80);
            size_t len = (size_t)sprintf(body, "{\"ticks\":[");
            for (int i = 0; i < size; i++)
                len += (size_t)sprintf(body + len, "%s{\"symbol\":\"OOM%d_%ld\",\"ts_msc\":%lld,\"bid\":1.1,\"ask\":1.2}",
                                       i ? "," : "", size, n, 1760929270000LL + i);
            sprintf(body + len, "]}");
            int st;
            char err[256] = "", q[128];
            struct ticks_batch *b = decode(body, &st, err);
            size_t base = mem_in_use();
            mem_fail_after(n);
            int rc = ticks_store(pool, b, err, sizeof err);
            if (n < 0) base = mem_in_use();
            mem_fail_after(-1);
            CHECK_INT(mem_in_use(), base);
            snprintf(q, sizeof q, "SELECT count(*) FROM ticks WHERE symbol = 'OOM%d_%ld'", size, n);
            if (rc == DB_OK) {
                CHECK_INT(b->items[0].status, INGEST_INSERTED);
                CHECK_INT(atoi(fixture_value(q)), size);
            } else {
                CHECK_STR(err, "out of memory");
                CHECK_INT(b->items[0].status, INGEST_VALID);
                CHECK_STR(fixture_value(q), "0");
            }
            ticks_free(b);
            free(body);
        }
    }
}

int main(void)
{
    RUN(the_documented_body_decodes);
    RUN(bad_bodies_are_400_and_bad_ticks_are_rejected_by_field);
    RUN(ts_msc_alone_is_enough_and_is_the_precise_time);
    RUN(a_big_batch_decodes);
    const char *ci = fixture_db_create("tfu_ticks", 1);
    struct db_options o = {.pool_size = 2, .checkout_timeout_ms = 2000, .connect_timeout_s = 2,
                           .statement_timeout_ms = 10000};
    char err[256];
    pool = ci ? db_pool_open(ci, &o, err, sizeof err) : NULL;
    if (!pool) {
        printf("not ok - the database tests need DATABASE_URL and a running cluster\n");
        return 1;
    }
    /* before any COPY fallback pauses COPY, so both store paths are walked */
    RUN(an_allocation_failure_while_storing_stores_nothing);
    RUN(ticks_without_ts_msc_sharing_a_second_are_all_kept);
    RUN(ticks_with_ts_msc_deduplicate_on_symbol_and_ts_msc);
    RUN(the_ingestion_sequence_grows_in_batch_order);
    RUN(big_batches_load_by_copy_and_a_resend_falls_back_to_duplicates);
    db_pool_close(pool);
    fixture_db_drop();
    return unit_done();
}
