/* Unit tests for core/ingest.c, the layer candles and ticks share, through a
 * toy kind of item (a symbol and a number, keyed on both, "-" items without
 * a key): folding repeats onto their first item, mapping RETURNING rows back
 * to statuses, counting, decoding with its limits, COPY text and numbers. */
#include <cJSON.h>
#include <stdlib.h>

#include "ingest.h"
#include "mem.h"
#include "unit.h"

struct toy {
    char symbol[INGEST_SYMBOL_MAX + 1];
    uint8_t status;
    int32_t leader;
    int64_t ts_us, bucket_us;
    double v;
    char error[INGEST_ERR_MAX];
};

struct toys {
    size_t n, nvalid;
    struct toy *items;
};

static void toy_ref(void *item, struct ingest_ref *r)
{
    struct toy *t = item;
    *r = (struct ingest_ref){
        t->symbol, &t->status,    &t->leader,          t->error,
        &t->ts_us, &t->bucket_us, t->symbol[0] != '-', {t->symbol, 7, (uint64_t)t->v}};
}

static int toy_decode(const cJSON *it, const struct ingest_opts *o, void *item, char *err,
                      size_t el)
{
    struct toy *t = item;
    if (ingest_json_symbol(it, t->symbol, err, el) < 0 ||
        ingest_json_positive(it, "v", &t->v, err, el) < 0)
        return -1;
    t->ts_us = (int64_t)t->v - ingest_offset_for(o, t->symbol);
    return 0;
}

static int toy_locate(const cJSON *root, const struct ingest_opts *o, const cJSON **arr,
                      const cJSON **one, char *err, size_t errlen)
{
    if (cJSON_IsArray(root))
        *arr = root;
    else if (cJSON_IsObject(root))
        *one = root;
    else
        return snprintf(err, errlen, "body: want toys"), -1;
    return 0;
}

INGEST_BATCH_LAYOUT(struct toys);

static const struct ingest_kind toy_kind = {.noun = "toys",
                                            .size = sizeof(struct toy),
                                            .ref = toy_ref,
                                            .decode = toy_decode,
                                            .locate = toy_locate};

static struct toys *decode(const char *body, const struct ingest_opts *o, int *st, char *err)
{
    void *b = NULL;
    ingest_decode(&toy_kind, body, strlen(body), o, &b, st, err, 256);
    return b;
}

TEST(repeats_fold_onto_their_first_item_and_keyless_items_never_fold)
{
    int st;
    char err[256] = "";
    struct toys *b =
        decode("[{\"symbol\":\"A\",\"v\":1},{\"symbol\":\"B\",\"v\":1},{\"symbol\":\"A\",\"v\":1},"
               "{\"symbol\":\"A\",\"v\":0},{\"symbol\":\"-\",\"v\":1},{\"symbol\":\"-\",\"v\":1},"
               "{\"symbol\":\"B\",\"v\":\"1\"}]",
               NULL, &st, err);
    CHECK(b && st == 200);
    if (!b) return;
    CHECK_INT(b->n, 7);
    CHECK_INT(b->nvalid, 6);
    const int want[] = {-1, -1, 0, -1, -1, -1, 1};
    for (int i = 0; i < 7; i++)
        CHECK_INT(b->items[i].leader, want[i]);
    CHECK_STR(b->items[3].error, "v: must be > 0, got 0");
    /* folding again (a batch put together from others) gives the same */
    CHECK_INT(ingest_fold(&toy_kind, b->items, b->n, b->nvalid), 0);
    for (int i = 0; i < 7; i++)
        CHECK_INT(b->items[i].leader, want[i]);
    ingest_batch_free(b);
}

TEST(returned_rows_map_back_to_the_leaders_that_sent_them)
{
    int st;
    char err[256] = "";
    struct toys *b =
        decode("[{\"symbol\":\"A\",\"v\":1},{\"symbol\":\"B\",\"v\":2},{\"symbol\":\"A\",\"v\":1},"
               "{\"symbol\":\"C\",\"v\":3}]",
               NULL, &st, err);
    CHECK(b != NULL);
    if (!b) return;
    struct ingest_index x;
    CHECK_INT(ingest_index_init(&x, 3), 0);
    ingest_index_leaders(&x, &toy_kind, b->items, b->n);
    struct ingest_key c = {"C", 7, 3}, a = {"A", 7, 1}, none = {"A", 7, 2}, other = {"B", 8, 2};
    CHECK_INT(ingest_returned(&x, &toy_kind, b->items, &c, INGEST_INSERTED), 0);
    CHECK_INT(ingest_returned(&x, &toy_kind, b->items, &a, INGEST_UPDATED), 0);
    CHECK_INT(ingest_returned(&x, &toy_kind, b->items, &none, INGEST_INSERTED), -1);
    CHECK_INT(ingest_returned(&x, &toy_kind, b->items, &other, INGEST_INSERTED), -1);
    ingest_index_free(&x);
    CHECK_INT(b->items[0].status, INGEST_UPDATED);
    CHECK_INT(b->items[1].status, INGEST_VALID);
    CHECK_INT(b->items[2].status, INGEST_VALID); /* a follower: never named by a row */
    CHECK_INT(b->items[3].status, INGEST_INSERTED);
    struct ingest_counts n;
    ingest_count(&toy_kind, b->items, b->n, &n);
    CHECK_INT(n.received, 4);
    CHECK_INT(n.inserted, 1);
    CHECK_INT(n.updated, 1);
    CHECK_INT(n.duplicates + n.rejected + n.queued, 0);
    CHECK_STR(ingest_status_name(b->items[0].status), "updated");
    ingest_batch_free(b);
}

TEST(decode_limits_shapes_and_offsets)
{
    int st;
    char err[256] = "";
    struct ingest_offset so[] = {{"B", 5}};
    struct ingest_opts o = {
        .max_items = 2, .offset_us = 1, .symbol_offsets = so, .nsymbol_offsets = 1};
    CHECK(decode("[{},{},{}]", &o, &st, err) == NULL);
    CHECK_INT(st, 413);
    CHECK_STR(err, "too many toys: 3 > 2; split the batch");
    CHECK(decode("7", &o, &st, err) == NULL);
    CHECK_INT(st, 400);
    CHECK_STR(err, "body: want toys");
    CHECK(decode("[1,", &o, &st, err) == NULL);
    CHECK_INT(st, 400);
    struct toys *b = decode("{\"symbol\":\"B\",\"v\":10}", &o, &st, err);
    CHECK(b && b->n == 1 && b->items[0].ts_us == 5);
    ingest_batch_free(b);
    b = decode("[{\"symbol\":\"A\",\"v\":10}]", &o, &st, err);
    CHECK(b && b->n == 1 && b->items[0].ts_us == 9);
    ingest_batch_free(b);
}

TEST(every_allocation_failure_while_decoding_is_a_clean_500)
{
    const char *body = "[{\"symbol\":\"A\",\"v\":1},{\"symbol\":\"A\",\"v\":1}]";
    size_t base = mem_in_use();
    int failures = 0;
    for (long n = 0; n < 30; n++) {
        int st = 0;
        char err[256] = "";
        mem_fail_after(n);
        struct toys *b = decode(body, NULL, &st, err);
        mem_fail_after(-1);
        if (!b) {
            failures++;
            CHECK_INT(st, 500);
            CHECK_STR(err, "out of memory");
        } else {
            CHECK(b->nvalid == 2 && b->items[1].leader == 0);
            ingest_batch_free(b);
        }
    }
    CHECK(failures > 0);
    CHECK_INT(mem_in_use(), base);
}

TEST(copy_text_escapes_backslashes_and_numbers_read_back)
{
    struct db_buf d = {0};
    ingest_copy_text(&d, "EUR\\USD.a");
    db_buf_putc(&d, '\0');
    CHECK_STR(d.data, "EUR\\\\USD.a");
    db_buf_free(&d);
    char s[32];
    CHECK_INT(ingest_fmt_fixed(s, 1.085530001, 8), 7);
    CHECK_STR(s, "1.08553");
    ingest_fmt_fixed(s, 12.5, 2);
    CHECK_STR(s, "12.5");
    ingest_fmt_fixed(s, 3, 8);
    CHECK_STR(s, "3");
    const double v[] = {1.08553, 0.1 + 0.2, 1e-9, 123456789012.5, -2.5};
    for (int i = 0; i < 5; i++) {
        ingest_fmt_double(s, v[i]);
        CHECK(strtod(s, NULL) == v[i]);
    }
    ingest_fmt_double(s, 1.08553);
    CHECK_STR(s, "1.08553");
}

int main(void)
{
    RUN(repeats_fold_onto_their_first_item_and_keyless_items_never_fold);
    RUN(returned_rows_map_back_to_the_leaders_that_sent_them);
    RUN(decode_limits_shapes_and_offsets);
    RUN(every_allocation_failure_while_decoding_is_a_clean_500);
    RUN(copy_text_escapes_backslashes_and_numbers_read_back);
    return unit_done();
}
