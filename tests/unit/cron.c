/* cron.c: parsing errors name the field; next matches agree with a plain
 * minute-by-minute scan on many specs and start times. */
#include "unit.h"

#include "cron.h"

#include <stdlib.h>

static time_t at(int y, int mo, int d, int h, int mi)
{
    struct tm tm = {0};
    tm.tm_year = y - 1900, tm.tm_mon = mo - 1, tm.tm_mday = d, tm.tm_hour = h, tm.tm_min = mi;
    return timegm(&tm);
}

static time_t next_of(const char *spec, time_t t)
{
    struct cron c;
    char err[128];
    if (cron_parse(&c, spec, err, sizeof err)) return -2;
    return cron_next(&c, t);
}

TEST(common_specs)
{
    time_t t = at(2026, 11, 24, 15, 52);
    CHECK_INT(next_of("*/5 * * * *", t), at(2026, 11, 24, 15, 55));
    CHECK_INT(next_of("* * * * *", t), at(2026, 11, 24, 15, 53));
    CHECK_INT(next_of("0 * * * *", t), at(2026, 11, 24, 16, 0));
    CHECK_INT(next_of("30 2 * * *", t), at(2026, 11, 25, 2, 30));
    CHECK_INT(next_of("0 0 1 * *", t), at(2026, 12, 1, 0, 0));
    CHECK_INT(next_of("0 0 * * 0", t), at(2026, 11, 29, 0, 0)); /* a Sunday */
    CHECK_INT(next_of("0 0 * * 7", t), at(2026, 11, 29, 0, 0));
    CHECK_INT(next_of("0 0 29 2 *", t), at(2028, 2, 29, 0, 0));
    CHECK_INT(next_of("0 0 31 2 *", t), -1);
    CHECK_INT(next_of("15,45 9-17/4 * * 1-5", t), at(2026, 11, 24, 17, 15));
    CHECK_INT(next_of("15,45 9-17/4 * * 1-5", at(2026, 11, 24, 17, 50)), at(2026, 11, 25, 9, 15));
    CHECK_INT(next_of("5/20 * * * *", at(2026, 1, 1, 0, 0)), at(2026, 1, 1, 0, 5));
    /* found by tests/fuzz/fuzz_cron: a huge step overflowed the loop counter */
    CHECK_INT(next_of("0 9/2555555555555555555555 * * *", t), at(2026, 11, 25, 9, 0));
    CHECK_INT(next_of("7/99 */9223372036854775807 * * *", t), at(2026, 11, 25, 0, 7));
}

TEST(errors_name_the_field)
{
    static const struct { const char *spec, *want; } bad[] = {
        {"* * * *", "expected 5 fields"},
        {"* * * * * *", "found more"},
        {"60 * * * *", "field 1 (minute): 60-60 is out of range 0..59"},
        {"* 24 * * *", "field 2 (hour)"},
        {"* * 0 * *", "field 3 (day of month)"},
        {"* * * 13 *", "field 4 (month)"},
        {"* * * * 8", "field 5 (day of week)"},
        {"*/0 * * * *", "cannot parse"},
        {"a * * * *", "cannot parse 'a'"},
        {"5-1 * * * *", "out of range"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct cron c;
        char err[128] = "";
        CHECK_INT(cron_parse(&c, bad[i].spec, err, sizeof err), -1);
        if (!strstr(err, bad[i].want)) unit_fail(__FILE__, __LINE__, "'%s': got '%s', want '%s'", bad[i].spec, err, bad[i].want);
    }
}

/* The obviously-correct reference: test every minute. */
static int matches(const struct cron *c, time_t t)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    int dom = (c->dom >> tm.tm_mday) & 1, dow = (c->dow >> tm.tm_wday) & 1;
    int day = c->dom_any && c->dow_any ? 1 : c->dom_any ? dow : c->dow_any ? dom : (dom || dow);
    return ((c->minute >> tm.tm_min) & 1) && ((c->hour >> tm.tm_hour) & 1) && day &&
           ((c->month >> (tm.tm_mon + 1)) & 1);
}

TEST(agrees_with_a_minute_by_minute_scan)
{
    static const char *specs[] = {"*/7 * * * *", "0 */3 * * *", "10 4 * * 1", "0 12 1,15 * *",
                                  "0 0 * 2 *", "*/15 8-10 * * 6", "0 0 13 * 5", "59 23 31 12 *"};
    srand(7);
    for (size_t s = 0; s < sizeof specs / sizeof *specs; s++) {
        struct cron c;
        char err[128];
        CHECK_INT(cron_parse(&c, specs[s], err, sizeof err), 0);
        for (int k = 0; k < 20; k++) {
            time_t t = at(2024, 1, 1, 0, 0) + (time_t)(rand() % (3 * 365)) * 86400 + rand() % 86400;
            time_t got = cron_next(&c, t), want = t - t % 60 + 60;
            while (!matches(&c, want)) want += 60;
            if (got != want) unit_fail(__FILE__, __LINE__, "%s from %ld: got %ld want %ld", specs[s], (long)t, (long)got, (long)want);
        }
    }
}

int main(void)
{
    RUN(common_specs);
    RUN(errors_name_the_field);
    RUN(agrees_with_a_minute_by_minute_scan);
    return unit_done();
}
