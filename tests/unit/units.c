/* units.c: every form the config, tf.route and tf.job accepted before they
 * shared one parser still parses to the same value; typos are refused. */
#include "unit.h"

#include "units.h"

static double size_of(const char *s)
{
    double v = -2;
    return units_size(s, &v) ? -1 : v;
}

static double ms_of(const char *s)
{
    double v = -2;
    return units_duration_ms(s, &v) ? -1 : v;
}

TEST(sizes)
{
    CHECK(size_of("0") == 0);
    CHECK(size_of("100") == 100);
    CHECK(size_of("100B") == 100);
    CHECK(size_of("1KB") == 1024);
    CHECK(size_of("1k") == 1024);
    CHECK(size_of("512 kb") == 512 * 1024);
    CHECK(size_of("16MB") == 16 * 1048576);
    CHECK(size_of("16M") == 16 * 1048576);
    CHECK(size_of("1.5GB") == 1.5 * 1073741824.0);
    CHECK(size_of("1gb") == 1073741824.0);
}

TEST(bad_sizes)
{
    const char *bad[] = {"",    " 1MB", "MB",   "-1MB", "1TB",   "1MBs", "1 M B",
                         "inf", "nan",  "0x10", "+5",   "1e999", NULL};
    for (int i = 0; bad[i]; i++)
        if (size_of(bad[i]) != -1) unit_fail(__FILE__, __LINE__, "size \"%s\" parsed", bad[i]);
    CHECK(units_size(NULL, &(double){0}) == -1);
}

TEST(durations)
{
    CHECK(ms_of("0") == 0);
    CHECK(ms_of("5") == 5000);
    CHECK(ms_of("1.5") == 1500);
    CHECK(ms_of("500ms") == 500);
    CHECK(ms_of("5s") == 5000);
    CHECK(ms_of("30 s") == 30000);
    CHECK(ms_of("2m") == 120000);
    CHECK(ms_of("1h") == 3600000);
    CHECK(ms_of("0.5h") == 1800000);
    CHECK(ms_of("90d") == 90.0 * 86400000);
    CHECK(ms_of(".5s") == 500);
}

TEST(bad_durations)
{
    const char *bad[] = {"",   "s",      "5S",  "5M",  "5 min", "5sec", "-5s",
                         "5w", "1e999d", "nan", "inf", "5s ",   NULL};
    for (int i = 0; bad[i]; i++)
        if (ms_of(bad[i]) != -1) unit_fail(__FILE__, __LINE__, "duration \"%s\" parsed", bad[i]);
}

int main(void)
{
    RUN(sizes);
    RUN(bad_sizes);
    RUN(durations);
    RUN(bad_durations);
    return unit_done();
}
