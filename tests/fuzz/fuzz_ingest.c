/* libFuzzer target: the candle and tick JSON decode/validate path, exactly
 * as the ingest routes run it (candles_decode / ticks_decode with each body
 * shape and a small max_items), on any bytes. Must never crash, leak or read
 * out of bounds; every item is either valid or rejected with a reason. */
#include "candles.h"
#include "ticks.h"

#include <assert.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const enum ingest_shape shapes[] = {INGEST_SHAPE_ANY, INGEST_SHAPE_ARRAY, INGEST_SHAPE_OBJECT};
    char err[512];
    int st = 0;
    /* the body is a copy without a terminating NUL: decode must honour len */
    char *body = malloc(size ? size : 1);
    if (!body) return 0;
    memcpy(body, data, size);
    for (size_t k = 0; k < sizeof shapes / sizeof *shapes; k++) {
        struct ingest_opts o = {.shape = shapes[k], .max_items = k == 2 ? 3 : 5000,
                                 .offset_us = k == 1 ? 7200LL * 1000000 : 0};
        struct candles_batch *b = NULL;
        if (candles_decode(body, size, &o, &b, &st, err, sizeof err) == 0) {
            for (size_t i = 0; i < b->n; i++)
                assert(b->items[i].status == INGEST_VALID || b->items[i].error[0]);
            candles_free(b);
        } else {
            assert(err[0] && (st == 400 || st == 413 || st == 500));
        }
    }
    struct ingest_opts o = {.max_items = 5000};
    struct ticks_batch *t = NULL;
    if (ticks_decode(body, size, &o, &t, &st, err, sizeof err) == 0) ticks_free(t);
    else assert(err[0] && (st == 400 || st == 413 || st == 500));
    free(body);
    return 0;
}
