/* libFuzzer target: the timestamp and timeframe parsers (core/ts.c) on any
 * bytes. Properties checked: an accepted instant is in range, formats to a
 * string that parses back to the same instant, and buckets to a start no
 * later than itself; epoch numbers from the same bytes obey the same range. */
#include "ts.h"

#include <assert.h>
#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    char err[128], buf[64];
    int64_t us = 0;
    if (ts_parse(s, size, &us, err, sizeof err) == 0) {
        assert(ts_in_range(us));
        int n = ts_format(us, buf, sizeof buf);
        int64_t back = 0;
        assert(n > 0 && ts_parse(buf, (size_t)n, &back, err, sizeof err) == 0 && back == us);
        for (int tf = 1; tf < TS_TF_COUNT; tf++) {
            int64_t b = ts_bucket(us, (enum ts_tf)tf);
            assert(b <= us);
            if (ts_in_range(b)) ts_format(b, buf, sizeof buf);
        }
    } else {
        assert(err[0]);
    }
    enum ts_tf tf = ts_tf_parse(s, size);
    assert(tf >= TS_TF_NONE && tf < TS_TF_COUNT);
    if (tf != TS_TF_NONE) assert(ts_tf_name(tf)[0] && ts_tf_seconds(tf) >= 0);
    if (size >= sizeof(double)) {
        double v;
        memcpy(&v, data, sizeof v);
        if (ts_from_epoch(v, &us, err, sizeof err) == 0) assert(ts_in_range(us));
        (void)ts_tf_from_enum(v);
    }
    return 0;
}
