/* The allocator wrapper: malloc with a size header so the bytes in use can be
 * reported in /metrics, and a countdown that makes the n-th allocation fail
 * so tests can walk every out-of-memory path. */
#include "mem.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define HDR 16 /* keeps the user pointer 16-byte aligned */

static atomic_size_t in_use;
static atomic_long fail_countdown = -1;

static int should_fail(void)
{
    long n = atomic_load(&fail_countdown);
    if (n < 0) return 0;
    return atomic_fetch_sub(&fail_countdown, 1) == 0;
}

void *mem_alloc(size_t n)
{
    if (n > (size_t)-1 - HDR || should_fail()) return NULL;
    char *p = malloc(n + HDR);
    if (!p) return NULL;
    memcpy(p, &n, sizeof n);
    atomic_fetch_add(&in_use, n);
    return p + HDR;
}

void *mem_calloc(size_t n, size_t m)
{
    if (m && n > (size_t)-1 / m) return NULL;
    void *p = mem_alloc(n * m);
    if (p) memset(p, 0, n * m);
    return p;
}

void *mem_realloc(void *p, size_t n)
{
    if (!p) return mem_alloc(n);
    if (n > (size_t)-1 - HDR || should_fail()) return NULL;
    char *base = (char *)p - HDR;
    size_t old;
    memcpy(&old, base, sizeof old);
    char *q = realloc(base, n + HDR);
    if (!q) return NULL;
    memcpy(q, &n, sizeof n);
    atomic_fetch_add(&in_use, n);
    atomic_fetch_sub(&in_use, old);
    return q + HDR;
}

char *mem_strdup(const char *s)
{
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = mem_alloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

void mem_free(void *p)
{
    if (!p) return;
    char *base = (char *)p - HDR;
    size_t n;
    memcpy(&n, base, sizeof n);
    atomic_fetch_sub(&in_use, n);
    free(base);
}

size_t mem_in_use(void)
{
    return atomic_load(&in_use);
}

void mem_fail_after(long n)
{
    atomic_store(&fail_countdown, n);
}
