/* The allocator wrapper: malloc with a size header so the bytes in use can be
 * reported in /metrics, and a countdown that makes the n-th allocation fail
 * so tests can walk every out-of-memory path. */
#include "mem.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define HDR 16 /* keeps the user pointer 16-byte aligned */

/* Bytes in use, counted in per-thread shards (each its own cache line) so
 * that two HTTP workers allocating per request do not fight over one
 * counter; a thread's frees may land in another shard than its mallocs, so
 * only the sum means anything. */
#define SHARDS 16
static struct {
    _Alignas(64) atomic_llong n;
} in_use[SHARDS];
static atomic_uint next_shard;
static _Thread_local int my_shard = -1;

static void count(long long d)
{
    if (my_shard < 0) my_shard = (int)(atomic_fetch_add(&next_shard, 1) % SHARDS);
    atomic_fetch_add_explicit(&in_use[my_shard].n, d, memory_order_relaxed);
}
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
    count((long long)n);
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
    count((long long)n - (long long)old);
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
    count(-(long long)n);
    free(base);
}

size_t mem_in_use(void)
{
    long long sum = 0;
    for (int i = 0; i < SHARDS; i++) sum += atomic_load_explicit(&in_use[i].n, memory_order_relaxed);
    return sum > 0 ? (size_t)sum : 0;
}

void mem_fail_after(long n)
{
    atomic_store(&fail_countdown, n);
}
