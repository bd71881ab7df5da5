/* buf.c: the buffer grows from caller storage to the heap and gives it
 * back; out of memory and max are sticky and leave nothing behind; the
 * JSON writer matches a plain byte-by-byte escaper and printf's numbers on
 * random input, and a string cut by max stays a string of whole characters. */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>

#include "buf.h"
#include "mem.h"
#include "unit.h"

static unsigned long long rng_state = 88172645463325252ULL;

static unsigned long long rnd(void) /* xorshift64: the same inputs every run */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* The obviously correct escaper the JSON writer must agree with. */
static size_t ref_quote(char *out, const unsigned char *s, size_t n)
{
    size_t j = 0;
    out[j++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = s[i];
        if (c == '"')
            j += (size_t)sprintf(out + j, "\\\"");
        else if (c == '\\')
            j += (size_t)sprintf(out + j, "\\\\");
        else if (c == '\n')
            j += (size_t)sprintf(out + j, "\\n");
        else if (c == '\r')
            j += (size_t)sprintf(out + j, "\\r");
        else if (c == '\t')
            j += (size_t)sprintf(out + j, "\\t");
        else if (c < 0x20)
            j += (size_t)sprintf(out + j, "\\u%04x", c);
        else
            out[j++] = (char)c;
    }
    out[j++] = '"';
    return j;
}

TEST(appends_grow_from_stack_storage_to_the_heap_and_detach)
{
    size_t base = mem_in_use();
    char small[8];
    struct buf b;
    buf_init(&b, small, sizeof small, 0);
    buf_puts(&b, "abc");
    buf_putc(&b, 'd');
    CHECK(b.p == small && !b.heap);
    CHECK_STR(buf_cstr(&b), "abcd");
    buf_printf(&b, "-%d-%s", 42, "a longer tail that does not fit in eight bytes");
    CHECK(b.heap && b.p != small);
    CHECK_STR(buf_cstr(&b), "abcd-42-a longer tail that does not fit in eight bytes");
    for (int i = 0; i < 10000; i++)
        buf_put(&b, "0123456789", 10);
    CHECK_INT(b.len, 54 + 100000);
    CHECK_INT(buf_failed(&b), BUF_OK);
    size_t len = 0;
    char *s = buf_detach(&b, &len);
    CHECK(s != NULL);
    CHECK_INT(len, 100054);
    CHECK(s && s[len] == 0 && !memcmp(s + 100044, "0123456789", 10));
    CHECK_INT(b.len, 0); /* left empty */
    mem_free(s);
    CHECK_INT(mem_in_use(), base);
}

TEST(detach_copies_out_of_storage_and_an_empty_buffer_is_an_empty_string)
{
    size_t base = mem_in_use();
    char small[64];
    struct buf b;
    buf_init(&b, small, sizeof small, 0);
    buf_puts(&b, "kept");
    size_t len;
    char *s = buf_detach(&b, &len);
    CHECK(s && s != small && len == 4 && !strcmp(s, "kept"));
    mem_free(s);
    buf_init(&b, NULL, 0, 0);
    CHECK_STR(buf_cstr(&b), "");
    s = buf_detach(&b, NULL);
    CHECK(s && !*s);
    mem_free(s);
    buf_free(&b); /* harmless twice */
    CHECK_INT(mem_in_use(), base);
}

TEST(reserve_setlen_and_reset_keep_the_memory)
{
    struct buf b;
    buf_init(&b, NULL, 0, 0);
    char *w = buf_reserve(&b, 1000);
    CHECK(w != NULL);
    if (!w) return;
    memset(w, 'x', 10);
    buf_added(&b, 10);
    CHECK_INT(b.len, 10);
    buf_setlen(&b, 3);
    CHECK_STR(buf_cstr(&b), "xxx");
    char *p = b.p;
    buf_reset(&b);
    CHECK_INT(b.len, 0);
    buf_puts(&b, "again");
    CHECK(b.p == p);
    CHECK_STR(buf_cstr(&b), "again");
    buf_free(&b);
}

/* Builds the same text with the n-th allocation failing: either the whole
 * text or BUF_OOM, and nothing leaked either way. */
static void build(struct buf *b)
{
    for (int i = 0; i < 500; i++) {
        buf_printf(b, "%d,", i);
        buf_json_str(b, "a\"b", 3);
        buf_putc(b, ';');
    }
}

/* Builds the same text with the n-th allocation failing: either the whole
 * text or BUF_OOM, and nothing leaked either way. */
TEST(every_failed_allocation_is_sticky_checked_once_and_leaks_nothing)
{
    size_t base = mem_in_use();
    struct buf whole;
    buf_init(&whole, NULL, 0, 0);
    build(&whole);
    CHECK(!buf_failed(&whole) && whole.len == 1890 + 500 * 7);
    int failures = 0;
    for (long n = 0; n < 20; n++) {
        char small[16];
        struct buf b;
        buf_init(&b, small, sizeof small, 0);
        mem_fail_after(n);
        build(&b);
        mem_fail_after(-1);
        if (buf_failed(&b)) {
            failures++;
            CHECK_INT(buf_failed(&b), BUF_OOM);
            size_t len = b.len;
            buf_puts(&b, "more"); /* sticky: nothing is added after a failure */
            buf_putc(&b, 'x');
            buf_json_int(&b, 7);
            buf_printf(&b, "%d", 7);
            CHECK_INT(b.len, len);
            CHECK(buf_reserve(&b, 1) == NULL);
            CHECK(buf_detach(&b, NULL) == NULL);
        } else {
            CHECK(b.len == whole.len && !memcmp(b.p, whole.p, whole.len));
            buf_free(&b);
        }
    }
    buf_free(&whole);
    CHECK_INT(mem_in_use(), base);
    CHECK(failures > 3); /* the doubling allocations did fail */
}

TEST(max_cuts_appends_and_never_allocates)
{
    size_t base = mem_in_use();
    char line[16];
    struct buf b;
    buf_init(&b, line, sizeof line, 10);
    buf_puts(&b, "0123456");
    buf_puts(&b, "789abc");
    CHECK_INT(buf_failed(&b), BUF_FULL);
    CHECK_INT(b.len, 10);
    buf_putc(&b, 'x');
    buf_put(&b, "", 0);
    CHECK_STR(buf_cstr(&b), "0123456789");
    buf_setlen(&b, 4);
    buf_putc(&b, 'x'); /* still failed: cutting back does not reopen it */
    CHECK_STR(buf_cstr(&b), "0123");
    buf_reset(&b);
    buf_printf(&b, "%s=%d", "key", 123456789);
    CHECK_INT(buf_failed(&b), BUF_FULL);
    CHECK_STR(buf_cstr(&b), "key=123456");
    buf_reset(&b);
    buf_printf(&b, "%d", 12);
    CHECK(buf_reserve(&b, 9) == NULL); /* all or nothing */
    CHECK_INT(buf_failed(&b), BUF_FULL);
    buf_putc(&b, 'x');
    CHECK_STR(buf_cstr(&b), "12");
    CHECK(b.p == line);
    CHECK_INT(mem_in_use(), base);
}

TEST(json_strings_match_a_plain_escaper_on_random_bytes)
{
    static const struct {
        const char *in, *out;
    } fixed[] = {
        {"", "\"\""},
        {"a/b", "\"a/b\""}, /* "/" is not escaped */
        {"\"\\\n\r\t", "\"\\\"\\\\\\n\\r\\t\""},
        {"\b\f\x01\x1f", "\"\\u0008\\u000c\\u0001\\u001f\""},
        {"\x7f\xc3\xa9\xff\xfe",
         "\"\x7f\xc3\xa9\xff\xfe\""}, /* DEL, UTF-8 and invalid UTF-8 pass */
    };
    struct buf b;
    buf_init(&b, NULL, 0, 0);
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) {
        buf_reset(&b);
        buf_json_str(&b, fixed[i].in, strlen(fixed[i].in));
        CHECK_STR(buf_cstr(&b), fixed[i].out);
    }
    buf_reset(&b);
    buf_json_str(&b, "a\0b", 3);
    CHECK(b.len == 10 && !memcmp(b.p, "\"a\\u0000b\"", 10));
    unsigned char in[300];
    char want[300 * 6 + 2], raw[300 * 6 + 2];
    /* one byte at every place of every length up to 20 (the writer reads 8 at a time) */
    static const unsigned char odd[] = {0x00, 0x01, 0x1f, '"',  '\\', 0x20, 0x21,
                                        0x23, 0x5b, 0x5d, 0x7f, 0x80, 0xff};
    for (size_t n = 1; n <= 20; n++)
        for (size_t at = 0; at < n; at++)
            for (size_t k = 0; k < sizeof odd; k++) {
                memset(in, 'x', n);
                in[at] = odd[k];
                size_t wn = ref_quote(want, in, n);
                buf_reset(&b);
                buf_json_str(&b, (const char *)in, n);
                CHECK(b.len == wn && !memcmp(b.p, want, wn));
            }
    for (int t = 0; t < 20000; t++) {
        size_t n = rnd() % 300;
        int ascii = t & 1; /* half mostly printable, as real text is */
        for (size_t i = 0; i < n; i++)
            in[i] = (unsigned char)(ascii && rnd() % 8 ? 0x20 + rnd() % 0x5f : rnd());
        size_t wn = ref_quote(want, in, n);
        buf_reset(&b);
        buf_json_str(&b, (const char *)in, n);
        CHECK(b.len == wn && !memcmp(b.p, want, wn));
        CHECK_INT(buf_json_quote(raw, (const char *)in, n), wn);
        CHECK(!memcmp(raw, want, wn));
        if (unit_failed_checks) break;
    }
    buf_free(&b);
}

/* Under max, a string is cut before the closing quote, at a character
 * boundary: the text is a prefix of the whole one, then '"'. */
TEST(a_json_string_cut_by_max_keeps_its_quotes_and_whole_characters)
{
    const char *s = "ab\"c\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\n"; /* é € 😀 */
    char whole[128], line[64];
    size_t wn = ref_quote(whole, (const unsigned char *)s, strlen(s));
    for (size_t max = 1; max <= wn + 2; max++) { /* 0 would be no limit */
        struct buf b;
        buf_init(&b, line, sizeof line, max);
        buf_json_str(&b, s, strlen(s));
        if (max >= wn) {
            CHECK(b.len == wn && !memcmp(b.p, whole, wn) && !buf_failed(&b));
            continue;
        }
        CHECK_INT(buf_failed(&b), BUF_FULL);
        if (max < 2) {
            CHECK_INT(b.len, 0);
            continue;
        }
        CHECK(b.len >= 2 && b.len <= max);
        CHECK(!memcmp(b.p, whole, b.len - 1) && b.p[b.len - 1] == '"');
        unsigned char last = (unsigned char)b.p[b.len - 2];
        size_t k = b.len - 2; /* the cut never leaves a sequence unfinished */
        while (k > 1 && ((unsigned char)b.p[k] & 0xC0) == 0x80)
            k--;
        unsigned char lead = (unsigned char)b.p[k];
        size_t seq = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
        CHECK(last < 0x80 || b.len - 1 - k == seq);
        size_t len = b.len;
        buf_json_str(&b, "x", 1);
        CHECK_INT(b.len, len);
    }
}

TEST(json_numbers_are_printf_s)
{
    char want[64];
    struct buf b;
    buf_init(&b, NULL, 0, 0);
    const long long ints[] = {0,         1, -1, 9, 10, -10, LLONG_MAX, LLONG_MIN, LLONG_MIN + 1,
                              1000000007};
    for (size_t i = 0; i < sizeof ints / sizeof *ints + 100000; i++) {
        long long v = i < sizeof ints / sizeof *ints ? ints[i] : (long long)(rnd() >> (rnd() % 64));
        if (i & 1 && v != LLONG_MIN) v = -v;
        snprintf(want, sizeof want, "%lld", v);
        buf_reset(&b);
        buf_json_int(&b, v);
        CHECK_STR(buf_cstr(&b), want);
        if (unit_failed_checks) break;
    }
    const double fixed[] = {0.0,
                            -0.0,
                            1.1,
                            1.09,
                            0.1,
                            0.5,
                            1e15,
                            1e16,
                            123456789012345.0,
                            1e-4,
                            1e-5,
                            5e-324,
                            1.7976931348623157e308,
                            0.30000000000000004,
                            -2.5,
                            100,
                            1e21};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed + 300000; i++) {
        double d;
        if (i < sizeof fixed / sizeof *fixed) {
            d = fixed[i];
        } else if (i % 3 == 0) { /* any bits */
            uint64_t u = rnd();
            memcpy(&d, &u, sizeof d);
        } else if (i % 6 == 2) { /* the double nearest a random decimal of 1..17 digits */
            char dec[64];
            int digits = 1 + (int)(rnd() % 17);
            snprintf(dec, sizeof dec, "%.*fe%d", digits - 1, (double)(rnd() % 1000000000) / 1e8 + 1,
                     (int)(rnd() % 26) - 8);
            d = strtod(dec, NULL);
        } else if (i % 3 == 1) { /* a price: a few decimals */
            static const double p10[] = {1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10};
            d = (double)(long long)(rnd() % 100000000000ULL) / p10[rnd() % 11];
        } else { /* any magnitude */
            d = (double)(rnd() >> 11) / 9007199254740992.0 * pow(10, (double)(rnd() % 40) - 20);
        }
        if (i & 1) d = -d;
        if (!isfinite(d)) {
            snprintf(want, sizeof want, "null");
        } else {
            snprintf(want, sizeof want, "%.15g", d);
            if (strtod(want, NULL) != d) snprintf(want, sizeof want, "%.17g", d);
        }
        buf_reset(&b);
        buf_json_double(&b, d);
        CHECK_STR(buf_cstr(&b), want);
        if (unit_failed_checks) break;
    }
    buf_json_double(&b, NAN);
    buf_json_double(&b, -INFINITY);
    CHECK(strstr(buf_cstr(&b), "nullnull") != NULL);
    buf_free(&b);
}

int main(void)
{
    RUN(appends_grow_from_stack_storage_to_the_heap_and_detach);
    RUN(detach_copies_out_of_storage_and_an_empty_buffer_is_an_empty_string);
    RUN(reserve_setlen_and_reset_keep_the_memory);
    RUN(every_failed_allocation_is_sticky_checked_once_and_leaks_nothing);
    RUN(max_cuts_appends_and_never_allocates);
    RUN(json_strings_match_a_plain_escaper_on_random_bytes);
    RUN(a_json_string_cut_by_max_keeps_its_quotes_and_whole_characters);
    RUN(json_numbers_are_printf_s);
    return unit_done();
}
