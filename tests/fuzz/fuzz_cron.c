/* libFuzzer target: the cron parser (core/cron.c) on any bytes. An accepted
 * expression's next run is strictly later and matches every field. */
#include "cron.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char spec[256], err[160];
    if (size >= sizeof spec) return 0;
    memcpy(spec, data, size);
    spec[size] = '\0';
    struct cron c;
    if (cron_parse(&c, spec, err, sizeof err) != 0) {
        assert(err[0]);
        return 0;
    }
    time_t t = 1760929200; /* 2025-10-20T03:00:00Z */
    for (int i = 0; i < 3; i++) {
        time_t n = cron_next(&c, t);
        if (n < 0) break;
        assert(n > t && n % 60 == 0);
        struct tm tm;
        gmtime_r(&n, &tm);
        assert(c.minute >> tm.tm_min & 1);
        assert(c.hour >> tm.tm_hour & 1);
        assert(c.month >> (tm.tm_mon + 1) & 1);
        t = n;
    }
    return 0;
}
