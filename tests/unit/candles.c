/* Unit tests for core/candles.c: decoding and validation of whole bodies
 * (pure), then storing with each conflict policy into a real, freshly
 * migrated PostgreSQL database (DATABASE_URL). */
#include "candles.h"
#include "mem.h"
#include "metrics.h"
#include "db_fixture.h"
#include "unit.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define C1 "{\"symbol\":\"EURUSD\",\"timeframe\":\"M1\",\"ts\":\"2025-10-20T03:00:00Z\",\"open\":1.0855,\"high\":1.0857,\"low\":1.0854,\"close\":1.0856,\"volume\":150,\"spread\":2}"
#define C2 "{\"symbol\":\"GBPUSD\",\"timeframe\":\"M1\",\"ts\":\"2025-10-20T03:00:00Z\",\"open\":1.2850,\"high\":1.2852,\"low\":1.2849,\"close\":1.2851,\"volume\":120,\"spread\":2}"

static struct db_pool *pool;

static struct candles_batch *decode(const char *body, enum ingest_shape shape, int *status,
                                    char *err)
{
    struct ingest_opts o = {.shape = shape, .max_items = 5000};
    struct candles_batch *b = NULL;
    candles_decode(body, strlen(body), &o, &b, status, err, 256);
    return b;
}

TEST(the_documented_bodies_decode)
{
    int st;
    char err[256] = "";
    struct candles_batch *b = decode("{\"items\":[" C1 "]}", INGEST_SHAPE_OBJECT, &st, err);
    CHECK(b != NULL);
    if (!b) return;
    CHECK_INT(st, 200);
    CHECK_INT(b->n, 1);
    CHECK_INT(b->items[0].status, INGEST_VALID);
    CHECK_STR(b->items[0].symbol, "EURUSD");
    CHECK_STR(b->items[0].ts_original, "2025-10-20T03:00:00+00:00");
    char buf[40];
    ts_format(b->items[0].bucket_us, buf, sizeof buf);
    CHECK_STR(buf, "2025-10-20T03:00:00+00:00");
    CHECK_NEAR(b->items[0].spread, 2, 0);
    candles_free(b);

    b = decode("[" C1 "," C2 "]", INGEST_SHAPE_ARRAY, &st, err);
    CHECK(b && b->n == 2 && b->nvalid == 2);
    candles_free(b);

    b = decode(C1, INGEST_SHAPE_OBJECT, &st, err); /* a single candle */
    CHECK(b && b->n == 1 && b->nvalid == 1);
    candles_free(b);
}

TEST(unparseable_bodies_and_wrong_shapes_are_400_with_a_position)
{
    static const struct {
        const char *body;
        enum ingest_shape shape;
        int status;
        const char *err;
    } t[] = {
        {"[" C1 ",", INGEST_SHAPE_ARRAY, 400, "invalid JSON at byte"},
        {"[{\"symbol\": }]", INGEST_SHAPE_ARRAY, 400, "invalid JSON at byte 12"},
        {"", INGEST_SHAPE_ARRAY, 400, "empty body"},
        {"42", INGEST_SHAPE_ANY, 400, "body: want"},
        {"\"x\"", INGEST_SHAPE_ARRAY, 400, "body: want a JSON array"},
        {C1, INGEST_SHAPE_ARRAY, 400, "body: want a JSON array of candles, got an object"},
        {"[" C1 "]", INGEST_SHAPE_OBJECT, 400, "got an array"},
        {"{\"items\": 3}", INGEST_SHAPE_OBJECT, 400, "items: must be an array"},
        {"[" C1 "] x", INGEST_SHAPE_ARRAY, 400, "unexpected data"},
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        int st = 0;
        char err[256] = "";
        struct candles_batch *b = decode(t[i].body, t[i].shape, &st, err);
        CHECK(b == NULL);
        candles_free(b);
        CHECK_INT(st, t[i].status);
        if (!strstr(err, t[i].err)) printf("# case %zu: \"%s\" lacks \"%s\"\n", i, err, t[i].err);
        CHECK(strstr(err, t[i].err) != NULL);
    }
}

TEST(trailing_whitespace_and_nul_are_tolerated)
{
    static const char body[] = "[" C1 "]\r\n \0";
    struct ingest_opts o = {.shape = INGEST_SHAPE_ARRAY};
    struct candles_batch *b = NULL;
    int st;
    char err[256] = "";
    CHECK_INT(candles_decode(body, sizeof body, &o, &b, &st, err, sizeof err), 0);
    CHECK(b && b->nvalid == 1);
    candles_free(b);
}

TEST(too_many_items_is_413)
{
    struct ingest_opts o = {.shape = INGEST_SHAPE_ARRAY, .max_items = 1};
    struct candles_batch *b = NULL;
    int st;
    char err[256] = "";
    const char *body = "[" C1 "," C2 "]";
    CHECK_INT(candles_decode(body, strlen(body), &o, &b, &st, err, sizeof err), -1);
    CHECK_INT(st, 413);
    CHECK(strstr(err, "2 > 1") != NULL);
}

#define ITEM(fields) "{\"symbol\":\"EURUSD\",\"timeframe\":\"M5\",\"ts\":\"2025-10-20T03:07:00Z\"," fields "}"
#define OHLC "\"open\":1.1,\"high\":1.3,\"low\":1.0,\"close\":1.2,\"volume\":10"

TEST(every_bad_item_is_rejected_with_its_field_and_its_neighbours_survive)
{
    static const struct {
        const char *item, *err;
    } t[] = {
        {"42", "item: must be a JSON object"},
        {"{\"timeframe\":\"M1\",\"ts\":\"2025-10-20T03:00:00Z\"," OHLC "}", "symbol: missing"},
        {"{\"symbol\":\"\",\"timeframe\":\"M1\",\"ts\":1," OHLC "}", "symbol: must be 1..32"},
        {"{\"symbol\":\"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456\",\"timeframe\":\"M1\",\"ts\":1," OHLC "}",
         "symbol: must be 1..32 characters, got 33"},
        {"{\"symbol\":\"EUR\\nUSD\",\"timeframe\":\"M1\",\"ts\":1," OHLC "}", "symbol: must be printable"},
        {"{\"symbol\":7,\"timeframe\":\"M1\",\"ts\":1," OHLC "}", "symbol: must be a string"},
        {"{\"symbol\":\"EURUSD\",\"timeframe\":\"M7\",\"ts\":1," OHLC "}", "timeframe: unknown \"M7\""},
        {"{\"symbol\":\"EURUSD\",\"ts\":1," OHLC "}", "timeframe: missing"},
        {"{\"symbol\":\"EURUSD\",\"timeframe\":16389,\"ts\":1," OHLC "}", "timeframe: unknown"},
        {"{\"symbol\":\"EURUSD\",\"timeframe\":\"M1\"," OHLC "}", "ts: missing"},
        {"{\"symbol\":\"EURUSD\",\"timeframe\":\"M1\",\"ts\":\"2025-02-30T00:00:00Z\"," OHLC "}", "ts: day out of range"},
        {"{\"symbol\":\"EURUSD\",\"timeframe\":\"M1\",\"ts\":true," OHLC "}", "ts: must be a string"},
        {ITEM("\"high\":1.3,\"low\":1.0,\"close\":1.2"), "open: missing"},
        {ITEM("\"open\":\"abc\",\"high\":1.3,\"low\":1.0,\"close\":1.2"), "open: must be a number"},
        {ITEM("\"open\":0,\"high\":1.3,\"low\":1.0,\"close\":1.2"), "open: must be > 0"},
        {ITEM("\"open\":-1.1,\"high\":1.3,\"low\":1.0,\"close\":1.2"), "open: must be > 0"},
        {ITEM("\"open\":1.1,\"high\":1.3,\"low\":1.0,\"close\":\"NaN\""), "close: must be finite"},
        {ITEM("\"open\":1.1,\"high\":1e10,\"low\":1.0,\"close\":1.2"), "high: must be < 1e10"},
        {ITEM("\"open\":1.1,\"high\":1.15,\"low\":1.0,\"close\":1.2"), "high: must be >= max(open, close)"},
        {ITEM("\"open\":1.1,\"high\":1.3,\"low\":1.15,\"close\":1.2"), "low: must be <= min(open, close)"},
        {ITEM("\"open\":1.1,\"high\":1.3,\"low\":1.0,\"close\":1.2,\"volume\":-1"), "volume: must be >= 0"},
        {ITEM("\"open\":1.1,\"high\":1.3,\"low\":1.0,\"close\":1.2,\"volume\":[1]"), "volume: must be a number"},
        {ITEM(OHLC ",\"spread\":-2"), "spread: must be >= 0"},
        {ITEM(OHLC ",\"spread\":{}"), "spread: must be a number"},
    };
    char body[16384];
    size_t len = (size_t)snprintf(body, sizeof body, "[" C1);
    for (size_t i = 0; i < sizeof t / sizeof *t; i++)
        len += (size_t)snprintf(body + len, sizeof body - len, ",%s", t[i].item);
    snprintf(body + len, sizeof body - len, "," C2 "]");
    int st;
    char err[256] = "";
    struct candles_batch *b = decode(body, INGEST_SHAPE_ARRAY, &st, err);
    CHECK(b != NULL);
    if (!b) {
        printf("# %s\n", err);
        return;
    }
    CHECK_INT(b->n, sizeof t / sizeof *t + 2);
    CHECK_INT(b->nvalid, 2);
    CHECK_INT(b->items[0].status, INGEST_VALID);
    CHECK_INT(b->items[b->n - 1].status, INGEST_VALID);
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        const struct candle *c = &b->items[i + 1];
        CHECK_INT(c->status, INGEST_REJECTED);
        if (!strstr(c->error, t[i].err)) printf("# case %zu: \"%s\" lacks \"%s\"\n", i, c->error, t[i].err);
        CHECK(strstr(c->error, t[i].err) != NULL);
    }
    candles_free(b);
}

TEST(numbers_in_any_json_form_and_extra_keys)
{
    const char *body =
        "[{\"symbol\":\"XAUUSD#\",\"timeframe\":\"16385\",\"ts\":\"2025.10.20 03:30\",\"open\":5e-05,"
        "\"high\":6E-5,\"low\":4.0e-5,\"close\":\"5.5e-05\",\"volume\":0.0,\"meta\":{\"a\":[1]},"
        "\"kind\":\"bar\"},"
        "{\"symbol\":\"EURUSD.a\",\"timeframe\":16408,\"ts\":1760929200123,\"open\":1,\"high\":1,"
        "\"low\":1,\"close\":1}]";
    int st;
    char err[256] = "";
    struct candles_batch *b = decode(body, INGEST_SHAPE_ARRAY, &st, err);
    CHECK(b && b->nvalid == 2);
    if (!b) return;
    char buf[40];
    CHECK_STR(ts_tf_name((enum ts_tf)b->items[0].tf), "H1");
    ts_format(b->items[0].bucket_us, buf, sizeof buf);
    CHECK_STR(buf, "2025-10-20T03:00:00+00:00");
    CHECK_NEAR(b->items[0].close, 5.5e-05, 1e-15);
    CHECK_STR(b->items[1].symbol, "EURUSD.a");
    CHECK_STR(ts_tf_name((enum ts_tf)b->items[1].tf), "D1");
    ts_format(b->items[1].bucket_us, buf, sizeof buf);
    CHECK_STR(buf, "2025-10-20T00:00:00+00:00");
    CHECK_STR(b->items[1].ts_original, "1760929200123");
    CHECK_INT(b->items[1].has_spread, 0);
    candles_free(b);
}

TEST(a_configured_offset_moves_the_bucket)
{
    struct ingest_offset so[] = {{"GBPUSD", 3 * 3600 * TS_US_PER_S}};
    struct ingest_opts o = {.offset_us = 2 * 3600 * TS_US_PER_S, .symbol_offsets = so,
                             .nsymbol_offsets = 1};
    struct candles_batch *b = NULL;
    int st;
    char err[256], buf[40];
    const char *body = "[" C1 "," C2 "]";
    CHECK_INT(candles_decode(body, strlen(body), &o, &b, &st, err, sizeof err), 0);
    if (!b) return;
    ts_format(b->items[0].bucket_us, buf, sizeof buf);
    CHECK_STR(buf, "2025-10-20T01:00:00+00:00");
    ts_format(b->items[1].bucket_us, buf, sizeof buf);
    CHECK_STR(buf, "2025-10-20T00:00:00+00:00");
    CHECK_STR(b->items[0].ts_original, "2025-10-20T03:00:00+00:00"); /* what was sent */
    candles_free(b);
}

TEST(every_allocation_failure_is_a_clean_error)
{
    const char *body = "[" C1 "," C2 "," C1 "]";
    size_t base = mem_in_use();
    int failures = 0;
    for (long n = 0; n < 50; n++) {
        struct ingest_opts o = {.shape = INGEST_SHAPE_ARRAY};
        struct candles_batch *b = NULL;
        int st = 0;
        char err[256] = "";
        mem_fail_after(n);
        int rc = candles_decode(body, strlen(body), &o, &b, &st, err, sizeof err);
        mem_fail_after(-1);
        if (rc < 0) {
            failures++;
            CHECK_INT(st, 500);
            CHECK_STR(err, "out of memory");
            CHECK(b == NULL);
        } else {
            CHECK(b && b->nvalid == 3);
            candles_free(b);
        }
        CHECK_INT(mem_in_use(), base);
    }
    CHECK(failures > 0); /* the loop did reach the allocations */
}

TEST(deep_nesting_and_huge_numbers_are_errors_not_crashes)
{
    size_t n = 200000;
    char *deep = malloc(n + 1);
    memset(deep, '[', n);
    deep[n] = '\0';
    int st;
    char err[256] = "";
    struct candles_batch *b = decode(deep, INGEST_SHAPE_ANY, &st, err);
    CHECK(b == NULL);
    CHECK_INT(st, 400);
    free(deep);
    b = decode("[{\"symbol\":\"E\",\"timeframe\":\"M1\",\"ts\":1,\"open\":1e999,\"high\":1,\"low\":1,\"close\":1}]",
               INGEST_SHAPE_ANY, &st, err);
    CHECK(b && b->items[0].status == INGEST_REJECTED && strstr(b->items[0].error, "open: must be finite"));
    candles_free(b);
}

/* ---- storing ---- */

static struct candles_batch *store(const char *body, enum candles_policy pol, int *rc)
{
    int st;
    char err[512] = "";
    struct candles_batch *b = decode(body, INGEST_SHAPE_ANY, &st, err);
    if (!b) {
        printf("# decode: %s\n", err);
        *rc = -99;
        return NULL;
    }
    *rc = candles_store(pool, b, pol, "ea", err, sizeof err);
    if (*rc) printf("# store: %s\n", err);
    return b;
}

#define BAR(sym, ts, o, h, l, c, v)                                                                \
    "{\"symbol\":\"" sym "\",\"timeframe\":\"M1\",\"ts\":\"" ts "\",\"open\":" #o ",\"high\":" #h  \
    ",\"low\":" #l ",\"close\":" #c ",\"volume\":" #v "}"

TEST(a_resend_is_a_duplicate_and_is_not_stored_twice)
{
    int rc;
    struct ingest_counts n;
    struct candles_batch *b = store("[" C1 "," C2 "]", CANDLES_MERGE, &rc);
    CHECK_INT(rc, DB_OK);
    candles_count(b, &n);
    CHECK_INT(n.inserted, 2);
    CHECK_STR(ingest_status_name(b->items[0].status), "inserted");
    candles_free(b);
    for (int pol = CANDLES_MERGE; pol <= CANDLES_REPLACE; pol++) {
        b = store("[" C1 "," C2 "]", (enum candles_policy)pol, &rc);
        CHECK_INT(rc, DB_OK);
        candles_count(b, &n);
        CHECK_INT(n.duplicates, 2);
        CHECK_INT(n.inserted, 0);
        candles_free(b);
    }
    CHECK_STR(fixture_value("SELECT count(*) FROM market_data WHERE ts = '2025-10-20T03:00:00Z'"), "2");
    CHECK_STR(fixture_value("SELECT open || ' ' || high || ' ' || low || ' ' || close || ' ' || volume || ' ' || spread || ' ' || source FROM market_data WHERE symbol = 'EURUSD' AND ts = '2025-10-20T03:00:00Z'"),
              "1.08550000 1.08570000 1.08540000 1.08560000 150.00 2.00000000 ea");
}

TEST(merge_keeps_open_extends_high_low_takes_close_and_max_volume)
{
    int rc;
    struct candles_batch *b = store(BAR("MRG", "2025-10-21T00:00:10Z", 1.10, 1.12, 1.09, 1.11, 10), CANDLES_MERGE, &rc);
    CHECK_INT(b->items[0].status, INGEST_INSERTED);
    candles_free(b);
    b = store(BAR("MRG", "2025-10-21T00:00:50Z", 1.105, 1.15, 1.095, 1.14, 25), CANDLES_MERGE, &rc);
    CHECK_INT(rc, DB_OK);
    CHECK_STR(ingest_status_name(b->items[0].status), "updated");
    candles_free(b);
    CHECK_STR(fixture_value("SELECT open || ' ' || high || ' ' || low || ' ' || close || ' ' || volume FROM market_data WHERE symbol = 'MRG'"),
              "1.10000000 1.15000000 1.09000000 1.14000000 25.00");
    /* a stale snapshot changes nothing it should not: lower high, lower volume */
    b = store(BAR("MRG", "2025-10-21T00:00:30Z", 1.10, 1.14, 1.09, 1.14, 5), CANDLES_MERGE, &rc);
    CHECK_STR(ingest_status_name(b->items[0].status), "duplicate");
    candles_free(b);
}

TEST(ignore_keeps_the_first_and_replace_takes_the_latest)
{
    int rc;
    struct candles_batch *b = store(BAR("IGN", "2025-10-21T00:00:00Z", 1.1, 1.2, 1.0, 1.15, 1), CANDLES_IGNORE, &rc);
    candles_free(b);
    b = store(BAR("IGN", "2025-10-21T00:00:00Z", 1.1, 1.3, 1.0, 1.25, 2), CANDLES_IGNORE, &rc);
    CHECK_STR(ingest_status_name(b->items[0].status), "duplicate");
    candles_free(b);
    CHECK_STR(fixture_value("SELECT high || ' ' || close FROM market_data WHERE symbol = 'IGN'"), "1.20000000 1.15000000");

    b = store(BAR("REP", "2025-10-21T00:00:00Z", 1.1, 1.3, 1.0, 1.25, 9), CANDLES_REPLACE, &rc);
    candles_free(b);
    b = store(BAR("REP", "2025-10-21T00:00:00Z", 1.2, 1.22, 1.19, 1.21, 3), CANDLES_REPLACE, &rc);
    CHECK_STR(ingest_status_name(b->items[0].status), "updated");
    candles_free(b);
    CHECK_STR(fixture_value("SELECT open || ' ' || high || ' ' || low || ' ' || close || ' ' || volume FROM market_data WHERE symbol = 'REP'"),
              "1.20000000 1.22000000 1.19000000 1.21000000 3.00");
}

TEST(the_same_bar_twice_in_one_batch_is_folded_not_an_error)
{
    int rc;
    struct candles_batch *b = store("[" BAR("DUP", "2025-10-21T00:00:00Z", 1.1, 1.2, 1.0, 1.15, 1) ","
                                    BAR("DUP", "2025-10-21T00:00:30Z", 1.1, 1.25, 1.0, 1.2, 2) ","
                                    BAR("DUP", "2025-10-21T00:00:30Z", 1.1, 1.25, 1.0, 1.2, 2) "]",
                                    CANDLES_MERGE, &rc);
    CHECK_INT(rc, DB_OK);
    CHECK_STR(ingest_status_name(b->items[0].status), "inserted");
    CHECK_STR(ingest_status_name(b->items[1].status), "updated");
    CHECK_STR(ingest_status_name(b->items[2].status), "duplicate");
    candles_free(b);
    CHECK_STR(fixture_value("SELECT count(*) || ' ' || max(high) || ' ' || max(close) FROM market_data WHERE symbol = 'DUP'"),
              "1 1.25000000 1.20000000");
}

TEST(a_batch_with_a_bad_item_stores_the_rest)
{
    int rc;
    struct ingest_counts n;
    struct candles_batch *b = store("[" BAR("BAD1", "2025-10-21T00:00:00Z", 1.1, 1.2, 1.0, 1.15, 1) ","
                                    BAR("BAD1", "2025-10-21T00:01:00Z", 1.1, 1.0, 1.0, 1.15, 1) ","
                                    BAR("BAD1", "2025-10-21T00:02:00Z", 1.1, 1.2, 1.0, 1.15, 1) "]",
                                    CANDLES_MERGE, &rc);
    CHECK_INT(rc, DB_OK);
    candles_count(b, &n);
    CHECK_INT(n.received, 3);
    CHECK_INT(n.inserted, 2);
    CHECK_INT(n.rejected, 1);
    CHECK(strstr(b->items[1].error, "high") != NULL);
    candles_free(b);
    CHECK_STR(fixture_value("SELECT count(*) FROM market_data WHERE symbol = 'BAD1'"), "2");
}

TEST(odd_symbols_and_far_timestamps_are_stored_verbatim)
{
    int rc;
    struct candles_batch *b = store("[" BAR("X\\\"{,}\\\\ 1", "1999-01-01T00:00:00Z", 1, 1, 1, 1, 0) ","
                                    BAR("XAUUSD#", "2099-06-01T00:00:59Z", 1, 1, 1, 1, 0) "]",
                                    CANDLES_MERGE, &rc);
    CHECK_INT(rc, DB_OK);
    CHECK_INT(b->items[0].status, INGEST_INSERTED);
    CHECK_INT(b->items[1].status, INGEST_INSERTED);
    candles_free(b);
    CHECK_STR(fixture_value("SELECT symbol FROM market_data WHERE ts = '1999-01-01'"), "X\"{,}\\ 1");
    CHECK_STR(fixture_value("SELECT tableoid::regclass FROM market_data WHERE symbol = 'XAUUSD#'"), "market_data_default");
}

/* A batch of new rows goes through COPY; one that meets a stored key falls
 * back to ON CONFLICT as a whole, and the statuses are right either way. */
TEST(big_batches_load_by_copy_and_fall_back_on_a_stored_key)
{
    char *body = malloc(200 * 200 + 16);
    size_t len = 0, mlen;
    int rc;
    struct ingest_counts n;
    len += (size_t)sprintf(body + len, "[");
    for (int i = 0; i < 100; i++)
        len += (size_t)sprintf(body + len, "%s{\"symbol\":\"CPY\",\"timeframe\":\"M1\",\"ts\":%d,\"open\":1.1,\"high\":1.2,\"low\":1.0,\"close\":1.15,\"volume\":%d}",
                               i ? "," : "", 1699999980 + 60 * i, i);
    sprintf(body + len, "]");
    struct candles_batch *b = store(body, CANDLES_MERGE, &rc);
    CHECK_INT(rc, DB_OK);
    candles_count(b, &n);
    CHECK_INT(n.inserted, 100);
    candles_free(b);
    char *m = metrics_render(&mlen);
    CHECK(m && !strstr(m, "tf_candles_copy_fallbacks_total 1"));
    mem_free(m);
    CHECK_STR(fixture_value("SELECT count(*) || ' ' || sum(volume) || ' ' || min(open) FROM market_data WHERE symbol = 'CPY'"), "100 4950.00 1.10000000");

    len = (size_t)sprintf(body, "[");
    for (int i = 50; i < 150; i++)
        len += (size_t)sprintf(body + len, "%s{\"symbol\":\"CPY\",\"timeframe\":\"M1\",\"ts\":%d,\"open\":1.1,\"high\":1.2,\"low\":1.0,\"close\":1.15,\"volume\":%d}",
                               i > 50 ? "," : "", 1699999980 + 60 * i, i);
    sprintf(body + len, "]");
    b = store(body, CANDLES_MERGE, &rc);
    CHECK_INT(rc, DB_OK);
    candles_count(b, &n);
    CHECK_INT(n.inserted, 50);
    CHECK_INT(n.duplicates, 50);
    candles_free(b);
    m = metrics_render(&mlen);
    CHECK(m && strstr(m, "tf_candles_copy_fallbacks_total 1"));
    mem_free(m);
    CHECK_STR(fixture_value("SELECT count(*) FROM market_data WHERE symbol = 'CPY'"), "150");
    free(body);
}

TEST(an_allocation_failure_while_storing_stores_nothing)
{
    /* 70 new candles: the COPY path; 3: the ON CONFLICT path. n = -1 is a
     * warm-up: metrics allocate a series the first time one is seen. */
    for (int size = 3; size <= 70; size += 67) {
        for (long n = -1; n < 12; n++) {
            char *body = malloc(200 * 80);
            size_t len = (size_t)sprintf(body, "[");
            for (int i = 0; i < size; i++)
                len += (size_t)sprintf(body + len, "%s{\"symbol\":\"OOM%d_%ld\",\"timeframe\":\"M1\",\"ts\":%d,\"open\":1.1,\"high\":1.2,\"low\":1.0,\"close\":1.15}",
                                       i ? "," : "", size, n, 1699999980 + 60 * i);
            sprintf(body + len, "]");
            int st;
            char err[256] = "", q[128];
            struct candles_batch *b = decode(body, INGEST_SHAPE_ARRAY, &st, err);
            size_t base = mem_in_use();
            mem_fail_after(n);
            int rc = candles_store(pool, b, CANDLES_MERGE, "ea", err, sizeof err);
            if (n < 0) base = mem_in_use(); /* the warm-up stored; its series stay */
            mem_fail_after(-1);
            CHECK_INT(mem_in_use(), base);
            snprintf(q, sizeof q, "SELECT count(*) FROM market_data WHERE symbol = 'OOM%d_%ld'", size, n);
            if (rc == DB_OK) {
                CHECK_INT(b->items[0].status, INGEST_INSERTED);
                CHECK_INT(atoi(fixture_value(q)), size);
            } else {
                CHECK_INT(rc, DB_ERROR);
                CHECK_STR(err, "out of memory");
                CHECK_INT(b->items[0].status, INGEST_VALID);
                CHECK_STR(fixture_value(q), "0");
            }
            candles_free(b);
            free(body);
        }
    }
}

TEST(a_database_error_leaves_the_batch_unstored)
{
    int rc;
    struct candles_batch *b = store(BAR("ROLL", "2025-10-21T00:00:00Z", 1.1, 1.2, 1.0, 1.15, 1), CANDLES_MERGE, &rc);
    candles_free(b);
    /* the database refuses one row: the statement, and so the batch, fails */
    PGconn *pg = PQconnectdb(fixture_conninfo);
    PQclear(PQexec(pg, "ALTER TABLE market_data ADD CONSTRAINT no_zzz CHECK (symbol <> 'ZZZ')"));
    b = store("[" BAR("ROLL2", "2025-10-21T00:00:00Z", 1.1, 1.2, 1.0, 1.15, 1) ","
              BAR("ZZZ", "2025-10-21T00:00:00Z", 1.1, 1.2, 1.0, 1.15, 1) "]", CANDLES_MERGE, &rc);
    CHECK_INT(rc, DB_ERROR);
    CHECK_INT(b->items[0].status, INGEST_VALID);
    candles_free(b);
    PQclear(PQexec(pg, "ALTER TABLE market_data DROP CONSTRAINT no_zzz"));
    PQfinish(pg);
    CHECK_STR(fixture_value("SELECT count(*) FROM market_data WHERE symbol = 'ROLL2'"), "0");
}

/* The parse is bounded before it starts: a 16MB "[0,0,...]" once cost
 * ~640MB of cJSON nodes before max_items was looked at. */
TEST(oversized_batches_are_refused_before_the_parse)
{
    size_t n = 2 * 1000 * 1000, len = 0;
    char *body = malloc(2 * n + 32);
    body[len++] = '[';
    for (size_t i = 0; i < n; i++) body[len++] = '0', body[len++] = i + 1 < n ? ',' : ']';
    body[len] = '\0';
    size_t base = mem_in_use();
    mem_fail_after(0); /* the refusal allocates nothing at all */
    int st = 0;
    char err[256] = "";
    struct ingest_opts o = {.max_items = 50000};
    struct candles_batch *b = NULL;
    CHECK_INT(candles_decode(body, len, &o, &b, &st, err, sizeof err), -1);
    mem_fail_after(-1);
    CHECK_INT(st, 413);
    CHECK_STR(err, "too many items: 2000000 > 50000; split the batch");
    CHECK_INT(mem_in_use(), base);
    /* the same inside {"items": [...]} */
    memmove(body + 9, body, len + 1);
    memcpy(body, "{\"items\":", 9);
    strcat(body, "}");
    CHECK_INT(candles_decode(body, strlen(body), &o, &b, &st, err, sizeof err), -1);
    CHECK_INT(st, 413);
    CHECK_STR(err, "too many items: 2000000 > 50000; split the batch");
    /* one item that carries a huge array: too many values for the batch */
    o.max_items = 10;
    len = (size_t)sprintf(body, "[{\"symbol\":\"X\",\"junk\":[");
    for (int i = 0; i < 1000; i++) len += (size_t)sprintf(body + len, "%s1", i ? "," : "");
    strcpy(body + len, "]}]");
    CHECK_INT(candles_decode(body, strlen(body), &o, &b, &st, err, sizeof err), -1);
    CHECK_INT(st, 413);
    CHECK(strstr(err, "JSON values is too many") != NULL);
    /* nesting: 64 levels parse (and are a wrong shape), 65 are refused */
    for (int depth = 64; depth <= 65; depth++) {
        len = 0;
        for (int i = 0; i < depth; i++) body[len++] = '[';
        for (int i = 0; i < depth; i++) body[len++] = ']';
        body[len] = '\0';
        o.max_items = 0;
        CHECK_INT(candles_decode(body, len, &o, &b, &st, err, sizeof err), depth == 64 ? 0 : -1);
        if (depth == 64) {
            CHECK_INT(b->items[0].status, INGEST_REJECTED);
            candles_free(b);
        } else {
            CHECK_INT(st, 400);
            CHECK_STR(err, "invalid JSON at byte 64: nested deeper than 64 levels");
        }
    }
    /* brackets inside strings are not nesting */
    strcpy(body, "[{\"symbol\":\"[[[[\\\"]]]\"}]");
    o.max_items = 1;
    CHECK_INT(candles_decode(body, strlen(body), &o, &b, &st, err, sizeof err), 0);
    if (b) candles_free(b);
    free(body);
}

/* Batch keys fold through a keyed hash: another process (another key)
 * places the same keys elsewhere, so nobody can precompute colliding keys. */
TEST(batch_keys_hash_with_a_per_process_key)
{
    CHECK(ingest_key_hash("EURUSD", 1, 2) == ingest_key_hash("EURUSD", 1, 2));
    CHECK(ingest_key_hash("EURUSD", 1, 2) != ingest_key_hash("EURUSD", 1, 3));
    CHECK(ingest_key_hash("AB", 0, 0) != ingest_key_hash("A", 0, 0));
    char cmd[64], line[2][64] = {"", ""};
    snprintf(cmd, sizeof cmd, "TF_PRINT_HASH=1 /proc/%d/exe", (int)getpid());
    for (int i = 0; i < 2; i++) {
        FILE *f = popen(cmd, "r");
        CHECK(f && fgets(line[i], sizeof line[i], f));
        if (f) pclose(f);
    }
    CHECK(line[0][0] && strcmp(line[0], line[1]) != 0);
}

int main(void)
{
    if (getenv("TF_PRINT_HASH")) {
        printf("%llu\n", (unsigned long long)ingest_key_hash("EURUSD", 1, 2));
        return 0;
    }
    RUN(the_documented_bodies_decode);
    RUN(oversized_batches_are_refused_before_the_parse);
    RUN(batch_keys_hash_with_a_per_process_key);
    RUN(unparseable_bodies_and_wrong_shapes_are_400_with_a_position);
    RUN(trailing_whitespace_and_nul_are_tolerated);
    RUN(too_many_items_is_413);
    RUN(every_bad_item_is_rejected_with_its_field_and_its_neighbours_survive);
    RUN(numbers_in_any_json_form_and_extra_keys);
    RUN(a_configured_offset_moves_the_bucket);
    RUN(every_allocation_failure_is_a_clean_error);
    RUN(deep_nesting_and_huge_numbers_are_errors_not_crashes);

    const char *ci = fixture_db_create("tfu_candles", 1);
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
    RUN(big_batches_load_by_copy_and_fall_back_on_a_stored_key);
    RUN(a_resend_is_a_duplicate_and_is_not_stored_twice);
    RUN(merge_keeps_open_extends_high_low_takes_close_and_max_volume);
    RUN(ignore_keeps_the_first_and_replace_takes_the_latest);
    RUN(the_same_bar_twice_in_one_batch_is_folded_not_an_error);
    RUN(a_batch_with_a_bad_item_stores_the_rest);
    RUN(odd_symbols_and_far_timestamps_are_stored_verbatim);
    RUN(a_database_error_leaves_the_batch_unstored);
    db_pool_close(pool);
    fixture_db_drop();
    return unit_done();
}
