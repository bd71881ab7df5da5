/* Lock contention of core/cache.c: T threads doing 90% gets / 10% sets of
 * 256-byte values over 10000 keys, against one cache (one mutex) and against
 * 16 caches picked by key hash (what sharding the lock would give), so the
 * choice of one mutex is measured rather than guessed. Prints a markdown
 * table of million operations per second. Built by bench/cache_bench.sh. */
#include "cache.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define KEYS 10000
#define SHARDS 16
#define OPS 400000

struct arg {
    struct cache **caches;
    int ncaches;
    unsigned seed;
};

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void *worker(void *p)
{
    struct arg *a = p;
    char key[32], val[256], err[128];
    memset(val, 'v', sizeof val);
    struct cache_blob *b = cache_blob_new(val, sizeof val);
    for (int i = 0; i < OPS; i++) {
        unsigned k = (unsigned)rand_r(&a->seed) % KEYS;
        int n = snprintf(key, sizeof key, "bench:%u", k);
        struct cache *c = a->caches[k % (unsigned)a->ncaches];
        if (rand_r(&a->seed) % 10)
            cache_blob_release(cache_get(c, key, (size_t)n));
        else
            cache_set(c, key, (size_t)n, b, 0, err, sizeof err);
    }
    cache_blob_release(b);
    return NULL;
}

static double run(int nthreads, int ncaches)
{
    struct cache *caches[SHARDS];
    for (int i = 0; i < ncaches; i++)
        caches[i] = cache_new(((size_t)64 << 20) / (size_t)ncaches);
    pthread_t t[16];
    struct arg args[16];
    double t0 = now();
    for (int i = 0; i < nthreads; i++) {
        args[i] = (struct arg){caches, ncaches, (unsigned)i * 7919u + 1};
        pthread_create(&t[i], NULL, worker, &args[i]);
    }
    for (int i = 0; i < nthreads; i++)
        pthread_join(t[i], NULL);
    double secs = now() - t0;
    for (int i = 0; i < ncaches; i++)
        cache_free(caches[i]);
    return (double)nthreads * OPS / secs / 1e6;
}

int main(void)
{
    printf("| threads | one mutex (Mops/s) | 16 shards (Mops/s) | shards / one "
           "|\n|---|---|---|---|\n");
    for (int t = 1; t <= 8; t *= 2) {
        double one = run(t, 1), sharded = run(t, SHARDS);
        printf("| %d | %.2f | %.2f | %.2f |\n", t, one, sharded, sharded / one);
    }
    return 0;
}
