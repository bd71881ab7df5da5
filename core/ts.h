/* Time parsing and timeframe buckets for MT5 data: every timestamp form the
 * EAs send becomes microseconds since the Unix epoch (UTC), and every MT5
 * timeframe (by name or numeric ENUM_TIMEFRAMES) maps to a bucket rule.
 * Pure C: no I/O, no allocation, no Lua, no database, no time zone database
 * (a string's offset is honoured; "Z" or no zone means UTC as sent). */
#ifndef TS_H
#define TS_H

#include <stddef.h>
#include <stdint.h>

/* The MT5 timeframe set, in MT5 order. TS_TF_NONE is "not a timeframe". */
enum ts_tf {
    TS_TF_NONE = 0,
    TS_M1, TS_M2, TS_M3, TS_M4, TS_M5, TS_M6, TS_M10, TS_M12, TS_M15, TS_M20, TS_M30,
    TS_H1, TS_H2, TS_H3, TS_H4, TS_H6, TS_H8, TS_H12,
    TS_D1, TS_W1, TS_MN1,
    TS_TF_COUNT
};

#define TS_US_PER_S 1000000LL

/* Week buckets (W1) start on Sunday 00:00 UTC, as MT5 opens weekly bars on
 * Sunday (server time). Month buckets (MN1) start on the 1st at 00:00. */
#define TS_WEEK_START_SUNDAY 1

/* Parses a timeframe: MT5 names ("M1".."MN1", case-insensitive, with or
 * without "PERIOD_") or the numeric ENUM_TIMEFRAMES value as text ("16385"
 * = H1, "5" = M5). Returns TS_TF_NONE for anything else. len excludes NUL. */
enum ts_tf ts_tf_parse(const char *s, size_t len);
/* The same for a number sent as a JSON number (16385, 5). */
enum ts_tf ts_tf_from_enum(double v);
/* Canonical name ("H4"); "" for TS_TF_NONE. Static storage. */
const char *ts_tf_name(enum ts_tf tf);
/* Fixed bucket length in seconds; W1 = 604800; MN1 = 0 (calendar months). */
long ts_tf_seconds(enum ts_tf tf);

/* Start of the bucket of timeframe tf holding instant us (µs since epoch,
 * UTC). Works for instants before 1970 too. tf must not be TS_TF_NONE. */
int64_t ts_bucket(int64_t us, enum ts_tf tf);

/* Parses a timestamp string of length len (no NUL needed) into µs since
 * epoch, UTC:
 *   ISO-8601  2025-10-20T03:00:00Z, ...T03:00:00.123+03:00, ...T03:00 (no
 *             zone = UTC), a space instead of T, offsets ±HH:MM ±HHMM ±HH,
 *             date only 2025-10-20
 *   MQL       2025.10.20 03:00, 2025.10.20 03:00:05, 2025.10.20
 *   epoch     a run of digits: seconds, or milliseconds when >= 1e11
 * Returns 0, or -1 with the reason in err ("month 13 out of range"). */
int ts_parse(const char *s, size_t len, int64_t *us, char *err, size_t errlen);

/* An epoch number sent as a JSON number: seconds, or milliseconds when its
 * magnitude is >= 1e11 (1e11 s is the year 5138). Fractions are kept to the
 * microsecond. -1 for NaN, infinities and values beyond year ±9999. */
int ts_from_epoch(double v, int64_t *us, char *err, size_t errlen);

/* Formats us like Python's isoformat with UTC offset, as the old API did:
 * "2025-10-20T03:00:00+00:00", fractional digits only when non-zero
 * ("...03:01:10.123000+00:00"). Needs 33 bytes; returns the length. */
int ts_format(int64_t us, char *buf, size_t n);

/* The instants tickforge accepts: 0001-01-01T00:00:00Z to
 * 9999-12-31T23:59:59.999999Z, what ts_format writes with a 4-digit year and
 * PostgreSQL reads back. ts_parse and ts_from_epoch reject the rest; callers
 * that shift or bucket a parsed instant check the result with ts_in_range. */
#define TS_MIN_US (-62135596800LL * TS_US_PER_S)
#define TS_MAX_US (253402300800LL * TS_US_PER_S - 1)
#define TS_RANGE_ERROR "out of range (0001-01-01 to 9999-12-31 UTC)"
static inline int ts_in_range(int64_t us) { return us >= TS_MIN_US && us <= TS_MAX_US; }

/* Civil date <-> days since 1970-01-01 (proleptic Gregorian). */
int64_t ts_days_from_civil(int64_t y, unsigned m, unsigned d);
void ts_civil_from_days(int64_t z, int64_t *y, unsigned *m, unsigned *d);

#endif
