/* Cron parsing into bitmasks and a next-match search that skips whole
 * months, days and hours that cannot match, so it is fast for any spec. */
#include "cron.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const struct { const char *name; int lo, hi; } fields[5] = {
    {"minute", 0, 59}, {"hour", 0, 23}, {"day of month", 1, 31}, {"month", 1, 12}, {"day of week", 0, 7},
};

/* Parses one field (a comma list) into bits; -1 with err on a bad field. */
static int parse_field(const char *s, size_t n, int f, uint64_t *bits, char *err, size_t errlen)
{
    const int lo = fields[f].lo, hi = fields[f].hi;
    *bits = 0;
    char buf[128];
    if (n == 0 || n >= sizeof buf) goto bad;
    memcpy(buf, s, n);
    buf[n] = 0;
    for (char *save = NULL, *item = strtok_r(buf, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        long a = lo, b = hi, step = 1;
        char *p = item, *end;
        if (*p == '*') {
            p++;
        } else {
            a = strtol(p, &end, 10);
            if (end == p) goto bad;
            b = a;
            p = end;
            if (*p == '-') {
                b = strtol(p + 1, &end, 10);
                if (end == p + 1) goto bad;
                p = end;
            }
        }
        if (*p == '/') {
            step = strtol(p + 1, &end, 10);
            if (end == p + 1 || step < 1) goto bad;
            if (step > hi) step = hi + 1; /* one value; v += step below must not overflow */
            if (item[0] != '*' && !strchr(item, '-')) b = hi; /* "5/15" means 5-hi/15 */
            p = end;
        }
        if (*p) goto bad;
        if (a < lo || b > hi || a > b) {
            snprintf(err, errlen, "field %d (%s): %ld-%ld is out of range %d..%d", f + 1, fields[f].name, a, b, lo, hi);
            return -1;
        }
        for (long v = a; v <= b; v += step) *bits |= 1ull << v;
    }
    return 0;
bad:
    snprintf(err, errlen, "field %d (%s): cannot parse '%.*s'", f + 1, fields[f].name, (int)n, s);
    return -1;
}

int cron_parse(struct cron *c, const char *spec, char *err, size_t errlen)
{
    const char *p = spec;
    uint64_t bits[5];
    memset(c, 0, sizeof *c);
    for (int f = 0; f < 5; f++) {
        while (*p == ' ' || *p == '\t') p++;
        size_t n = strcspn(p, " \t");
        if (n == 0) {
            snprintf(err, errlen, "expected 5 fields (minute hour day-of-month month day-of-week), got %d", f);
            return -1;
        }
        if (parse_field(p, n, f, &bits[f], err, errlen)) return -1;
        if (f == 2) c->dom_any = n == 1 && *p == '*';
        if (f == 4) c->dow_any = n == 1 && *p == '*';
        p += n;
    }
    while (*p == ' ' || *p == '\t') p++;
    if (*p) {
        snprintf(err, errlen, "expected 5 fields, found more: '%s'", p);
        return -1;
    }
    c->minute = bits[0];
    c->hour = (uint32_t)bits[1];
    c->dom = (uint32_t)bits[2];
    c->month = (uint16_t)bits[3];
    c->dow = (uint8_t)((bits[4] | (bits[4] >> 7)) & 0x7f); /* 7 is Sunday too */
    return 0;
}

static int day_matches(const struct cron *c, const struct tm *tm)
{
    int dom = (c->dom >> tm->tm_mday) & 1, dow = (c->dow >> tm->tm_wday) & 1;
    if (c->dom_any && c->dow_any) return 1;
    if (c->dom_any) return dow;
    if (c->dow_any) return dom;
    return dom || dow;
}

time_t cron_next(const struct cron *c, time_t t)
{
    struct tm tm;
    t = t - t % 60 + 60; /* strictly after, on a minute */
    time_t limit = t + 5 * 366 * 86400;
    while (t < limit) {
        gmtime_r(&t, &tm);
        if (!((c->month >> (tm.tm_mon + 1)) & 1)) { /* to the first of next month */
            tm.tm_mon++, tm.tm_mday = 1, tm.tm_hour = 0, tm.tm_min = 0, tm.tm_sec = 0;
            t = timegm(&tm);
            continue;
        }
        if (!day_matches(c, &tm)) {
            t += 86400 - (t % 86400);
            continue;
        }
        if (!((c->hour >> tm.tm_hour) & 1)) {
            t += 3600 - (t % 3600);
            continue;
        }
        if (!((c->minute >> tm.tm_min) & 1)) {
            t += 60;
            continue;
        }
        return t;
    }
    return -1;
}
