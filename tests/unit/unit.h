/* A tiny TAP unit-test harness for the pure C parts of core/.
 * Each tests/unit/X.c defines TEST(name) functions and a main() that calls
 * unit_run for each, then returns unit_done(). Output is TAP ("ok N - name"),
 * which scripts/test.sh counts. CHECK never aborts: a test reports every
 * failing check, with file:line. */
#ifndef UNIT_H
#define UNIT_H

#include <math.h>
#include <stdio.h>
#include <string.h>

extern int unit_failed_checks; /* checks failed in the running test */

void unit_run(const char *name, void (*fn)(void));
int unit_done(void);
void unit_fail(const char *file, int line, const char *fmt, ...);

#define TEST(name) static void name(void)
#define RUN(name) unit_run(#name, name)

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond)) unit_fail(__FILE__, __LINE__, "%s", #cond);                                   \
    } while (0)
#define CHECK_INT(a, b)                                                                            \
    do {                                                                                           \
        long long a_ = (long long)(a), b_ = (long long)(b);                                        \
        if (a_ != b_) unit_fail(__FILE__, __LINE__, "%s == %lld, want %lld", #a, a_, b_);          \
    } while (0)
#define CHECK_STR(a, b)                                                                            \
    do {                                                                                           \
        const char *a_ = (a), *b_ = (b);                                                           \
        if (!a_ || strcmp(a_, b_) != 0)                                                            \
            unit_fail(__FILE__, __LINE__, "%s == \"%s\", want \"%s\"", #a, a_ ? a_ : "(null)", b_); \
    } while (0)
/* Relative closeness; two NaNs are equal (undefined outputs must match too). */
#define CHECK_NEAR(a, b, rel)                                                                      \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        int ok_ = (isnan(a_) && isnan(b_)) ||                                                      \
                  fabs(a_ - b_) <= (rel) * fmax(1.0, fmax(fabs(a_), fabs(b_)));                   \
        if (!ok_) unit_fail(__FILE__, __LINE__, "%s == %.17g, want %.17g", #a, a_, b_);            \
    } while (0)

#endif
