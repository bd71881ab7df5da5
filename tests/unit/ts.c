/* Unit tests for core/ts.c: every timestamp form and every MT5 timeframe,
 * table-driven, with expected values written out by hand (and the civil
 * calendar cross-checked against libc's timegm/gmtime_r). */
#include "ts.h"
#include "unit.h"

#include <stdlib.h>
#include <time.h>

static const char *fmt(int64_t us)
{
    static char buf[64];
    ts_format(us, buf, sizeof buf);
    return buf;
}

static int64_t parse(const char *s)
{
    int64_t us = 0;
    char err[128] = "";
    if (ts_parse(s, strlen(s), &us, err, sizeof err) != 0) {
        printf("# parse(%s): %s\n", s, err);
        return INT64_MIN;
    }
    return us;
}

TEST(every_timestamp_form_parses_to_the_same_instant)
{
    static const struct {
        const char *in, *want;
    } t[] = {
        {"2025-10-20T03:00:00Z", "2025-10-20T03:00:00+00:00"},
        {"2025-10-20T03:00:00z", "2025-10-20T03:00:00+00:00"},
        {"2025-10-20T03:00:00", "2025-10-20T03:00:00+00:00"},
        {"2025-10-20 03:00:00", "2025-10-20T03:00:00+00:00"},
        {"2025-10-20T03:00", "2025-10-20T03:00:00+00:00"},
        {"2025-10-20T06:00:00+03:00", "2025-10-20T03:00:00+00:00"},
        {"2025-10-20T06:00:00+0300", "2025-10-20T03:00:00+00:00"},
        {"2025-10-20T06:00:00+03", "2025-10-20T03:00:00+00:00"},
        {"2025-10-19T23:30:00-03:30", "2025-10-20T03:00:00+00:00"},
        {"2025-10-20T03:00:00+00:00", "2025-10-20T03:00:00+00:00"},
        {"2025-10-20T03:01:10.123Z", "2025-10-20T03:01:10.123000+00:00"},
        {"2025-10-20T03:01:10.1234567Z", "2025-10-20T03:01:10.123456+00:00"},
        {"2025-10-20T03:01:10,5", "2025-10-20T03:01:10.500000+00:00"},
        {"2025-10-20", "2025-10-20T00:00:00+00:00"},
        {"2025.10.20 03:00", "2025-10-20T03:00:00+00:00"},
        {"2025.10.20 03:00:05", "2025-10-20T03:00:05+00:00"},
        {"2025.10.20", "2025-10-20T00:00:00+00:00"},
        {" 2025.10.20 03:00 ", "2025-10-20T03:00:00+00:00"},
        {"1760929200", "2025-10-20T03:00:00+00:00"},
        {"1760929200123", "2025-10-20T03:00:00.123000+00:00"},
        {"2024-02-29T12:00:00Z", "2024-02-29T12:00:00+00:00"},
        {"1969-12-31T23:59:59Z", "1969-12-31T23:59:59+00:00"},
        {"2099-01-01T00:00:00Z", "2099-01-01T00:00:00+00:00"}, /* never "in the future" */
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        int64_t us = parse(t[i].in);
        CHECK(us != INT64_MIN);
        if (us != INT64_MIN) CHECK_STR(fmt(us), t[i].want);
    }
}

TEST(bad_timestamps_are_rejected_with_a_reason)
{
    static const char *bad[] = {
        "", "   ", "yesterday", "2025-13-01T00:00:00Z", "2025-02-30", "2023-02-29",
        "2025-10-20T24:00:00Z", "2025-10-20T03:60", "2025-10-20T03:00:00+25:00",
        "2025/10/20 03:00", "2025-10-20T03", "2025-10-20T03:00:00Zjunk", "2025-10-20T03:00:00.Z",
        "12345678901234567890",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int64_t us;
        char err[128] = "";
        int rc = ts_parse(bad[i], strlen(bad[i]), &us, err, sizeof err);
        if (rc != -1) printf("# accepted \"%s\" as %s\n", bad[i], fmt(us));
        CHECK_INT(rc, -1);
        CHECK(err[0] != '\0');
    }
}

TEST(epoch_numbers_are_seconds_or_milliseconds)
{
    int64_t us;
    char err[64];
    CHECK_INT(ts_from_epoch(1760929200, &us, err, sizeof err), 0);
    CHECK_STR(fmt(us), "2025-10-20T03:00:00+00:00");
    CHECK_INT(ts_from_epoch(1760929200123.0, &us, err, sizeof err), 0);
    CHECK_STR(fmt(us), "2025-10-20T03:00:00.123000+00:00");
    CHECK_INT(ts_from_epoch(1760929200.5, &us, err, sizeof err), 0);
    CHECK_STR(fmt(us), "2025-10-20T03:00:00.500000+00:00");
    CHECK_INT(ts_from_epoch(0, &us, err, sizeof err), 0);
    CHECK_STR(fmt(us), "1970-01-01T00:00:00+00:00");
    CHECK_INT(ts_from_epoch(NAN, &us, err, sizeof err), -1);
    CHECK_INT(ts_from_epoch(INFINITY, &us, err, sizeof err), -1);
    CHECK_INT(ts_from_epoch(1e300, &us, err, sizeof err), -1);
}

/* Every instant ts accepts is one PostgreSQL reads back (0001..9999); the
 * rest is refused with a reason and no arithmetic overflow on the way (the
 * 16-digit millisecond epochs once overflowed int64 when scaled). */
TEST(instants_outside_year_1_to_9999_are_refused)
{
    static const char *const bad[] = {
        "9223372036854776", "9999999999999999", "9223372036854775807", "253402300800000",
        "0000-01-01", "0000-12-31T23:59:59Z", "0001-01-01T00:30:00+01:00",
        "9999-12-31T23:30:00-01:00", "0000.06.01 12:00",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int64_t us = 42;
        char err[128] = "";
        CHECK_INT(ts_parse(bad[i], strlen(bad[i]), &us, err, sizeof err), -1);
        CHECK(us == 42);
        CHECK(err[0] != '\0');
    }
    CHECK_INT(parse("253402300799999") == INT64_MIN, 0); /* 9999-12-31T23:59:59.999 in ms */
    CHECK_STR(fmt(parse("253402300799999")), "9999-12-31T23:59:59.999000+00:00");
    CHECK_STR(fmt(parse("0001-01-01T00:00:00Z")), "0001-01-01T00:00:00+00:00");
    CHECK_STR(fmt(parse("9999-12-31T23:59:59.999999Z")), "9999-12-31T23:59:59.999999+00:00");
    int64_t us;
    char err[128];
    CHECK_INT(ts_from_epoch(-62135596801.0, &us, err, sizeof err), -1); /* 0000-12-31T23:59:59 */
    CHECK_INT(ts_from_epoch(-62135596800.0, &us, err, sizeof err), 0);
    CHECK_STR(fmt(us), "0001-01-01T00:00:00+00:00");
    CHECK_INT(ts_from_epoch(-2.4e14, &us, err, sizeof err), -1);
    CHECK_INT(ts_from_epoch(2.49e14, &us, err, sizeof err), 0);
    CHECK(ts_in_range(TS_MIN_US) && ts_in_range(TS_MAX_US));
    CHECK(!ts_in_range(TS_MIN_US - 1) && !ts_in_range(TS_MAX_US + 1));
    CHECK_STR(fmt(TS_MAX_US), "9999-12-31T23:59:59.999999+00:00");
}

TEST(timeframes_by_name_and_by_enum)
{
    static const struct {
        const char *in;
        const char *want;
    } t[] = {
        {"M1", "M1"},       {"M2", "M2"},       {"M3", "M3"},       {"M4", "M4"},
        {"M5", "M5"},       {"M6", "M6"},       {"M10", "M10"},     {"M12", "M12"},
        {"M15", "M15"},     {"M20", "M20"},     {"M30", "M30"},     {"H1", "H1"},
        {"H2", "H2"},       {"H3", "H3"},       {"H4", "H4"},       {"H6", "H6"},
        {"H8", "H8"},       {"H12", "H12"},     {"D1", "D1"},       {"W1", "W1"},
        {"MN1", "MN1"},     {"m5", "M5"},       {"PERIOD_H1", "H1"}, {"1", "M1"},
        {"5", "M5"},        {"30", "M30"},      {"16385", "H1"},    {"16386", "H2"},
        {"16387", "H3"},    {"16388", "H4"},    {"16390", "H6"},    {"16392", "H8"},
        {"16396", "H12"},   {"16408", "D1"},    {"32769", "W1"},    {"49153", "MN1"},
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++)
        CHECK_STR(ts_tf_name(ts_tf_parse(t[i].in, strlen(t[i].in))), t[i].want);
    static const char *bad[] = {"", "M7", "H5", "D2", "MN", "W2", "0", "7", "16384", "16389",
                                "60", "3600", "M1 ", "1m", "PERIOD_", "M01"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (ts_tf_parse(bad[i], strlen(bad[i])) != TS_TF_NONE) printf("# accepted \"%s\"\n", bad[i]);
        CHECK_INT(ts_tf_parse(bad[i], strlen(bad[i])), TS_TF_NONE);
    }
    CHECK_INT(ts_tf_from_enum(16388), TS_H4);
    CHECK_INT(ts_tf_from_enum(16388.5), TS_TF_NONE);
    CHECK_INT(ts_tf_from_enum(-1), TS_TF_NONE);
}

TEST(buckets_follow_the_old_api_table_and_mt5)
{
    static const struct {
        const char *tf, *in, *want;
    } t[] = {
        /* the old API's "Normalização de Timestamps" table */
        {"M1", "2025-10-20T03:05:23Z", "2025-10-20T03:05:00+00:00"},
        {"M5", "2025-10-20T03:07:00Z", "2025-10-20T03:05:00+00:00"},
        {"M15", "2025-10-20T03:12:00Z", "2025-10-20T03:00:00+00:00"},
        {"M30", "2025-10-20T03:45:00Z", "2025-10-20T03:30:00+00:00"},
        {"H1", "2025-10-20T03:30:00Z", "2025-10-20T03:00:00+00:00"},
        {"H4", "2025-10-20T05:00:00Z", "2025-10-20T04:00:00+00:00"},
        {"D1", "2025-10-20T15:00:00Z", "2025-10-20T00:00:00+00:00"},
        /* the rest of the MT5 set */
        {"M2", "2025-10-20T03:05:59.9Z", "2025-10-20T03:04:00+00:00"},
        {"M3", "2025-10-20T03:05:00Z", "2025-10-20T03:03:00+00:00"},
        {"M4", "2025-10-20T03:07:00Z", "2025-10-20T03:04:00+00:00"},
        {"M6", "2025-10-20T03:59:00Z", "2025-10-20T03:54:00+00:00"},
        {"M10", "2025-10-20T03:59:00Z", "2025-10-20T03:50:00+00:00"},
        {"M12", "2025-10-20T03:59:00Z", "2025-10-20T03:48:00+00:00"},
        {"M20", "2025-10-20T03:59:00Z", "2025-10-20T03:40:00+00:00"},
        {"H2", "2025-10-20T03:59:00Z", "2025-10-20T02:00:00+00:00"},
        {"H3", "2025-10-20T05:59:00Z", "2025-10-20T03:00:00+00:00"},
        {"H6", "2025-10-20T05:59:00Z", "2025-10-20T00:00:00+00:00"},
        {"H8", "2025-10-20T23:59:00Z", "2025-10-20T16:00:00+00:00"},
        {"H12", "2025-10-20T11:59:59Z", "2025-10-20T00:00:00+00:00"},
        /* W1 starts on Sunday: 2025-10-20 is a Monday, 2025-10-19 a Sunday */
        {"W1", "2025-10-20T03:00:00Z", "2025-10-19T00:00:00+00:00"},
        {"W1", "2025-10-19T00:00:00Z", "2025-10-19T00:00:00+00:00"},
        {"W1", "2025-10-18T23:59:59Z", "2025-10-12T00:00:00+00:00"},
        {"W1", "1970-01-01T00:00:00Z", "1969-12-28T00:00:00+00:00"},
        {"MN1", "2025-10-20T03:00:00Z", "2025-10-01T00:00:00+00:00"},
        {"MN1", "2024-02-29T23:59:59Z", "2024-02-01T00:00:00+00:00"},
        {"MN1", "1969-12-31T23:59:59Z", "1969-12-01T00:00:00+00:00"},
        {"16388", "2025.10.20 07:59", "2025-10-20T04:00:00+00:00"},
        {"49153", "2025.12.31 23:59:59", "2025-12-01T00:00:00+00:00"},
        /* before 1970 floors downwards, not towards zero */
        {"H1", "1969-12-31T23:30:00Z", "1969-12-31T23:00:00+00:00"},
    };
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        enum ts_tf tf = ts_tf_parse(t[i].tf, strlen(t[i].tf));
        CHECK(tf != TS_TF_NONE);
        int64_t us = parse(t[i].in);
        if (strcmp(fmt(ts_bucket(us, tf)), t[i].want) != 0)
            printf("# %s %s -> %s, want %s\n", t[i].tf, t[i].in, fmt(ts_bucket(us, tf)), t[i].want);
        CHECK_STR(fmt(ts_bucket(us, tf)), t[i].want);
    }
}

/* Random instants: the bucket holds the instant, is aligned, and the civil
 * calendar agrees with libc's. */
TEST(random_instants_agree_with_libc)
{
    srand(12345);
    for (int i = 0; i < 20000; i++) {
        int64_t secs = (int64_t)(((double)rand() / RAND_MAX) * 8e9) - 2000000000LL;
        time_t tt = (time_t)secs;
        struct tm tm;
        gmtime_r(&tt, &tm);
        char s[64];
        snprintf(s, sizeof s, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
        int64_t us = parse(s);
        CHECK_INT(us, secs * TS_US_PER_S);
        for (int tf = TS_M1; tf < TS_TF_COUNT; tf++) {
            int64_t b = ts_bucket(us, (enum ts_tf)tf);
            CHECK(b <= us);
            if (tf == TS_MN1) {
                struct tm bt;
                time_t bs = (time_t)(b / TS_US_PER_S);
                gmtime_r(&bs, &bt);
                CHECK(bt.tm_mday == 1 && bt.tm_hour == 0 && bt.tm_min == 0 && bt.tm_sec == 0);
                CHECK(bt.tm_mon == tm.tm_mon && bt.tm_year == tm.tm_year);
            } else {
                int64_t len = ts_tf_seconds((enum ts_tf)tf) * TS_US_PER_S;
                CHECK(us - b < len);
                if (tf == TS_W1) {
                    struct tm bt;
                    time_t bs = (time_t)(b / TS_US_PER_S);
                    gmtime_r(&bs, &bt);
                    CHECK_INT(bt.tm_wday, 0); /* Sunday */
                    CHECK_INT(bt.tm_hour, 0);
                } else {
                    CHECK_INT(b % len, 0);
                }
            }
        }
        if (unit_failed_checks) break;
    }
}

int main(void)
{
    RUN(every_timestamp_form_parses_to_the_same_instant);
    RUN(bad_timestamps_are_rejected_with_a_reason);
    RUN(epoch_numbers_are_seconds_or_milliseconds);
    RUN(instants_outside_year_1_to_9999_are_refused);
    RUN(timeframes_by_name_and_by_enum);
    RUN(buckets_follow_the_old_api_table_and_mt5);
    RUN(random_instants_agree_with_libc);
    return unit_done();
}
