/* The one monotonic clock: CLOCK_MONOTONIC (a vDSO read, no system call),
 * in nanoseconds or milliseconds, for deadlines and durations everywhere in
 * the core. Calendar times are read where they are needed (time(NULL),
 * CLOCK_REALTIME). */
#ifndef CLOCK_H
#define CLOCK_H

#include <time.h>

static inline long long clock_ns(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

static inline long long clock_ms(void)
{
    return clock_ns() / 1000000;
}

#endif
