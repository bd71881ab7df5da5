/* Time parsing and timeframe buckets (see ts.h). All arithmetic is integer
 * microseconds with floor division, so instants before 1970 bucket correctly.
 * Used by candles.c and ticks.c on every item: it must never allocate, log
 * or consult the process time zone. */
#include "ts.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const struct {
    const char *name;
    int mt5_enum; /* ENUM_TIMEFRAMES value */
    long seconds;
} tf_table[TS_TF_COUNT] = {
    [TS_TF_NONE] = {"", 0, 0},
    [TS_M1] = {"M1", 1, 60},          [TS_M2] = {"M2", 2, 120},
    [TS_M3] = {"M3", 3, 180},         [TS_M4] = {"M4", 4, 240},
    [TS_M5] = {"M5", 5, 300},         [TS_M6] = {"M6", 6, 360},
    [TS_M10] = {"M10", 10, 600},      [TS_M12] = {"M12", 12, 720},
    [TS_M15] = {"M15", 15, 900},      [TS_M20] = {"M20", 20, 1200},
    [TS_M30] = {"M30", 30, 1800},     [TS_H1] = {"H1", 16385, 3600},
    [TS_H2] = {"H2", 16386, 7200},    [TS_H3] = {"H3", 16387, 10800},
    [TS_H4] = {"H4", 16388, 14400},   [TS_H6] = {"H6", 16390, 21600},
    [TS_H8] = {"H8", 16392, 28800},   [TS_H12] = {"H12", 16396, 43200},
    [TS_D1] = {"D1", 16408, 86400},   [TS_W1] = {"W1", 32769, 604800},
    [TS_MN1] = {"MN1", 49153, 0},
};

static int64_t floordiv(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0))) q--;
    return q;
}

static void seterr(char *err, size_t errlen, const char *msg)
{
    if (err && errlen) snprintf(err, errlen, "%s", msg);
}

enum ts_tf ts_tf_from_enum(double v)
{
    if (!(v >= 1 && v <= 65535) || v != floor(v)) return TS_TF_NONE;
    for (int i = 1; i < TS_TF_COUNT; i++)
        if (tf_table[i].mt5_enum == (int)v) return (enum ts_tf)i;
    return TS_TF_NONE;
}

enum ts_tf ts_tf_parse(const char *s, size_t len)
{
    if (len >= 7 && strncasecmp(s, "PERIOD_", 7) == 0) s += 7, len -= 7;
    if (len == 0 || len > 6) return TS_TF_NONE;
    if (s[0] >= '0' && s[0] <= '9') {
        int v = 0;
        for (size_t i = 0; i < len; i++) {
            if (s[i] < '0' || s[i] > '9') return TS_TF_NONE;
            v = v * 10 + (s[i] - '0');
        }
        return ts_tf_from_enum(v);
    }
    for (int i = 1; i < TS_TF_COUNT; i++)
        if (strlen(tf_table[i].name) == len && strncasecmp(tf_table[i].name, s, len) == 0)
            return (enum ts_tf)i;
    return TS_TF_NONE;
}

const char *ts_tf_name(enum ts_tf tf)
{
    return (tf > TS_TF_NONE && tf < TS_TF_COUNT) ? tf_table[tf].name : "";
}

long ts_tf_seconds(enum ts_tf tf)
{
    return (tf > TS_TF_NONE && tf < TS_TF_COUNT) ? tf_table[tf].seconds : 0;
}

/* Howard Hinnant's days_from_civil / civil_from_days. */
int64_t ts_days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = floordiv(y, 400);
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

void ts_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = floordiv(z, 146097);
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int64_t)yoe + era * 400 + (*m <= 2);
}

#define US_PER_DAY (86400LL * TS_US_PER_S)

int64_t ts_bucket(int64_t us, enum ts_tf tf)
{
    if (tf == TS_MN1) {
        int64_t y;
        unsigned m, d;
        ts_civil_from_days(floordiv(us, US_PER_DAY), &y, &m, &d);
        return ts_days_from_civil(y, m, 1) * US_PER_DAY;
    }
    int64_t len = (int64_t)ts_tf_seconds(tf) * TS_US_PER_S;
    if (len <= 0) return us;
    /* 1970-01-01 was a Thursday; Sunday 1970-01-04 anchors the weeks. */
    int64_t origin = tf == TS_W1 ? 3 * US_PER_DAY : 0;
    return floordiv(us - origin, len) * len + origin;
}

/* ---- parsing ---- */

struct cur {
    const char *p, *end;
};

/* Reads exactly n digits. */
static int digits(struct cur *c, int n, int *out)
{
    int v = 0;
    if (c->end - c->p < n) return -1;
    for (int i = 0; i < n; i++) {
        if (c->p[i] < '0' || c->p[i] > '9') return -1;
        v = v * 10 + (c->p[i] - '0');
    }
    c->p += n;
    *out = v;
    return 0;
}

static int eat(struct cur *c, char ch)
{
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return 1;
    }
    return 0;
}

static int days_in_month(int y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
    return dm[m - 1];
}

static int parse_epoch_digits(const char *s, size_t len, int64_t *us, char *err, size_t errlen)
{
    if (len > 16) {
        seterr(err, errlen, "epoch number too large");
        return -1;
    }
    int64_t v = 0; /* 16 digits fit; scaled only once known to stay in range */
    for (size_t i = 0; i < len; i++) v = v * 10 + (s[i] - '0');
    if (v >= 100000000000LL) { /* milliseconds */
        if (v > TS_MAX_US / 1000) {
            seterr(err, errlen, "epoch number " TS_RANGE_ERROR);
            return -1;
        }
        *us = v * 1000;
    } else {
        *us = v * TS_US_PER_S;
    }
    return 0;
}

int ts_parse(const char *s, size_t len, int64_t *us, char *err, size_t errlen)
{
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t')) len--;
    while (len && (*s == ' ' || *s == '\t')) s++, len--;
    if (len == 0) {
        seterr(err, errlen, "empty timestamp");
        return -1;
    }
    size_t nd = 0;
    while (nd < len && s[nd] >= '0' && s[nd] <= '9') nd++;
    if (nd == len) return parse_epoch_digits(s, len, us, err, errlen);

    struct cur c = {s, s + len};
    int y, mo, d, h = 0, mi = 0, se = 0;
    long frac = 0; /* microseconds */
    char sep;
    if (digits(&c, 4, &y) < 0) goto bad;
    if (eat(&c, '-')) sep = '-';
    else if (eat(&c, '.')) sep = '.';
    else goto bad;
    if (digits(&c, 2, &mo) < 0 || !eat(&c, sep) || digits(&c, 2, &d) < 0) goto bad;
    if (mo < 1 || mo > 12) {
        seterr(err, errlen, "month out of range");
        return -1;
    }
    if (d < 1 || d > days_in_month(y, mo)) {
        seterr(err, errlen, "day out of range");
        return -1;
    }
    int offset_s = 0;
    if (c.p < c.end) {
        if (!eat(&c, 'T') && !eat(&c, 't') && !eat(&c, ' ')) goto bad;
        while (sep == '.' && eat(&c, ' ')) /* MQL may pad */;
        if (digits(&c, 2, &h) < 0 || !eat(&c, ':') || digits(&c, 2, &mi) < 0) goto bad;
        if (eat(&c, ':')) {
            if (digits(&c, 2, &se) < 0) goto bad;
            if (eat(&c, '.') || eat(&c, ',')) {
                int n = 0;
                while (c.p < c.end && *c.p >= '0' && *c.p <= '9') {
                    if (n < 6) frac = frac * 10 + (*c.p - '0');
                    n++, c.p++;
                }
                if (n == 0) goto bad;
                for (; n < 6; n++) frac *= 10;
            }
        }
        if (h > 23 || mi > 59 || se > 60) { /* 60: a leap second, as ISO allows */
            seterr(err, errlen, "time of day out of range");
            return -1;
        }
        while (eat(&c, ' ')) ;
        if (eat(&c, 'Z') || eat(&c, 'z')) {
            /* UTC as sent */
        } else if (c.p < c.end && (*c.p == '+' || *c.p == '-')) {
            int sign = *c.p == '-' ? -1 : 1, oh, om = 0;
            c.p++;
            if (digits(&c, 2, &oh) < 0) goto bad;
            if (eat(&c, ':')) {
                if (digits(&c, 2, &om) < 0) goto bad;
            } else if (c.end - c.p >= 2) {
                if (digits(&c, 2, &om) < 0) goto bad;
            }
            if (oh > 23 || om > 59) {
                seterr(err, errlen, "UTC offset out of range");
                return -1;
            }
            offset_s = sign * (oh * 3600 + om * 60);
        }
    }
    if (c.p != c.end) goto bad;
    int64_t days = ts_days_from_civil(y, (unsigned)mo, (unsigned)d);
    int64_t v = ((days * 86400 + h * 3600 + mi * 60 + se) - offset_s) * TS_US_PER_S + frac;
    if (!ts_in_range(v)) { /* year 0000, or an offset across 0001/9999 */
        seterr(err, errlen, "timestamp " TS_RANGE_ERROR);
        return -1;
    }
    *us = v;
    return 0;
bad:
    seterr(err, errlen,
           "not a timestamp (want ISO-8601, YYYY.MM.DD HH:MM[:SS] or epoch seconds/milliseconds)");
    return -1;
}

int ts_from_epoch(double v, int64_t *us, char *err, size_t errlen)
{
    /* year 9999 is about 2.5e11 s; milliseconds from 1e11 up to 2.5e14 */
    if (!isfinite(v) || fabs(v) >= 2.5e14) {
        seterr(err, errlen, "epoch number out of range");
        return -1;
    }
    double x = fabs(v) >= 1e11 ? v * 1e3 : v * 1e6;
    int64_t r = (int64_t)llround(x); /* |x| < 2.5e17: fits */
    if (!ts_in_range(r)) {
        seterr(err, errlen, "epoch number " TS_RANGE_ERROR);
        return -1;
    }
    *us = r;
    return 0;
}

static char *put2(char *p, unsigned v)
{
    *p++ = (char)('0' + v / 10);
    *p++ = (char)('0' + v % 10);
    return p;
}

int ts_format(int64_t us, char *buf, size_t n)
{
    int64_t secs = floordiv(us, TS_US_PER_S);
    long frac = (long)(us - secs * TS_US_PER_S);
    int64_t days = floordiv(secs, 86400), sod = secs - days * 86400;
    int64_t y;
    unsigned m, d;
    ts_civil_from_days(days, &y, &m, &d);
    unsigned h = (unsigned)(sod / 3600), mi = (unsigned)(sod / 60 % 60), s = (unsigned)(sod % 60);
    if (y < 0 || y > 9999 || n < 33) /* rare: let printf handle signs and widths */
        return frac ? snprintf(buf, n, "%04lld-%02u-%02uT%02u:%02u:%02u.%06ld+00:00", (long long)y, m,
                               d, h, mi, s, frac)
                    : snprintf(buf, n, "%04lld-%02u-%02uT%02u:%02u:%02u+00:00", (long long)y, m, d,
                               h, mi, s);
    /* the hot path (every item of every batch): no printf */
    char *p = buf;
    p = put2(p, (unsigned)(y / 100));
    p = put2(p, (unsigned)(y % 100));
    *p++ = '-';
    p = put2(p, m);
    *p++ = '-';
    p = put2(p, d);
    *p++ = 'T';
    p = put2(p, h);
    *p++ = ':';
    p = put2(p, mi);
    *p++ = ':';
    p = put2(p, s);
    if (frac) {
        *p++ = '.';
        for (long div = 100000; div; div /= 10) *p++ = (char)('0' + frac / div % 10);
    }
    memcpy(p, "+00:00", 7);
    return (int)(p - buf) + 6;
}
