/* The size and duration parser (units.h). Both forms are a decimal number
 * and an optional unit; everything else, including hex, "inf", "nan", a
 * sign or trailing text, is refused, so a typo is an error, not a guess. */
#include "units.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct unit {
    const char *name;
    double scale;
};

/* Parses "<number>[ ]<unit>" with unit one of units (case-insensitive when
 * nocase); "" is the unit of a bare number and must be in the list. */
static int parse(const char *s, const struct unit *units, int nocase, double *out)
{
    if (!s || !((*s >= '0' && *s <= '9') || (*s == '.' && s[1] >= '0' && s[1] <= '9'))) return -1;
    char *end;
    double v = strtod(s, &end);
    if (end == s || end != s + strspn(s, "0123456789.") || !isfinite(v) || v < 0)
        return -1; /* no 0x, no 1e5 */
    while (*end == ' ')
        end++;
    for (const struct unit *u = units; u->name; u++)
        if (nocase ? !strcasecmp(end, u->name) : !strcmp(end, u->name)) {
            double r = v * u->scale;
            if (!isfinite(r)) return -1;
            *out = r;
            return 0;
        }
    return -1;
}

int units_size(const char *s, double *bytes)
{
    static const struct unit sizes[] = {
        {"", 1},        {"B", 1},        {"K", 1024},         {"KB", 1024},
        {"M", 1048576}, {"MB", 1048576}, {"G", 1073741824.0}, {"GB", 1073741824.0},
        {NULL, 0},
    };
    return parse(s, sizes, 1, bytes);
}

int units_duration_ms(const char *s, double *ms)
{
    /* case matters: "m" is minutes and "M" would read as months elsewhere */
    static const struct unit durations[] = {
        {"", 1000},     {"ms", 1},       {"s", 1000}, {"m", 60000},
        {"h", 3600000}, {"d", 86400000}, {NULL, 0},
    };
    return parse(s, durations, 0, ms);
}
