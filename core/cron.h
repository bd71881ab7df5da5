/* Five-field cron expressions (minute hour day-of-month month day-of-week),
 * evaluated in UTC: numbers, '*', ranges a-b, steps ('*' or a range, slash n), lists.
 * Day-of-week 0 or 7 is Sunday. As in Vixie cron, when both day fields are
 * restricted a day matches if either does. Pure C, no allocation. */
#ifndef CRON_H
#define CRON_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct cron {
    uint64_t minute;        /* bit n: minute n matches (0..59) */
    uint32_t hour;          /* 0..23 */
    uint32_t dom;           /* 1..31 */
    uint16_t month;         /* 1..12 */
    uint8_t dow;            /* 0..6, Sunday = 0 */
    uint8_t dom_any, dow_any; /* the field was '*' */
};

/* 0, or -1 with "field 2 (hour): 24 is out of range 0..23" in err. */
int cron_parse(struct cron *c, const char *spec, char *err, size_t errlen);

/* The first minute strictly after t that matches, or -1 if none within
 * five years (an impossible date such as 31 February). */
time_t cron_next(const struct cron *c, time_t t);

#endif
