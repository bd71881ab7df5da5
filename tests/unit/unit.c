/* The TAP harness behind unit.h: numbers tests, prints one "ok"/"not ok"
 * line per test with its failing checks as TAP comments, and a plan. */
#include "unit.h"

#include <stdarg.h>

int unit_failed_checks;
static int tests_run, tests_failed;

void unit_fail(const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    if (unit_failed_checks++ >= 20) return; /* one broken loop must not flood the log */
    printf("# %s:%d: ", file, line);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("\n");
}

void unit_run(const char *name, void (*fn)(void))
{
    unit_failed_checks = 0;
    fn();
    tests_run++;
    if (unit_failed_checks) tests_failed++;
    printf("%s %d - %s\n", unit_failed_checks ? "not ok" : "ok", tests_run, name);
    fflush(stdout);
}

int unit_done(void)
{
    printf("1..%d\n", tests_run);
    return tests_failed ? 1 : 0;
}
