/*
 * test_strbuf.c - unit tests of the string buffer's JSON escaping
 * (scanner/strbuf.c, sb_json_str).
 *
 * The promise under test is the one in strbuf.h: whatever bytes go in, the
 * output is one valid JSON string (RFC 8259 section 7, and section 8.1: the
 * text is UTF-8), valid UTF-8 is carried through unchanged, and each byte
 * that is not part of valid UTF-8 becomes \u00XX of that byte. Validity is
 * checked here by the strict JSON string parser of tests/support/jsoncheck.c,
 * and content by comparing its decoding with an independent model of the
 * mapping.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scanner/strbuf.h"
#include "tests/support/jsoncheck.h"

/* Validates that s[0..n) is exactly one JSON string and decodes it to UTF-8 in out (at least
 * n bytes). Returns the decoded length, or -1 with *why set. */
static long json_decode(const unsigned char *s, size_t n, unsigned char *out, const char **why)
{
    size_t p = 0, o;
    if (jc_json_string(s, n, &p, 0, out, &o, why) < 0) {
        return -1;
    }
    if (p != n) {
        *why = "bytes after the closing quote";
        return -1;
    }
    return (long)o;
}

/* The model: valid UTF-8 sequences unchanged, every other byte b as code point U+00b. */
static size_t model(const unsigned char *in, size_t n, unsigned char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n;) {
        size_t l = jc_utf8_len(in + i, n - i);
        if (l) {
            memcpy(out + o, in + i, l);
            o += l;
            i += l;
        } else {
            jc_put_utf8(in[i], out, &o);
            i++;
        }
    }
    return o;
}

/* Prints bytes as hex for a failure message. */
static void print_hex(const char *what, const unsigned char *s, size_t n)
{
    print_error("%s (%zu bytes):", what, n);
    for (size_t i = 0; i < n && i < 200; i++) {
        print_error(" %02x", s[i]);
    }
    print_error("\n");
}

/* Escapes in (n bytes, from a heap copy of exactly n) and checks validity and content;
 * returns 0 or -1 (with the reason printed) so loops can report the first bad input. */
static int check_one(const unsigned char *in, size_t n)
{
    unsigned char *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    memcpy(copy, in, n);
    strbuf_t b;
    sb_init(&b);
    sb_json_str(&b, (const char *)copy, n);
    free(copy);
    assert_false(b.oom);
    assert_non_null(b.s);
    assert_int_equal(strlen(b.s), b.len); /* no raw NUL in the output */
    unsigned char *dec = malloc(b.len + 1), *want = malloc(4 * n + 1);
    assert_non_null(dec);
    assert_non_null(want);
    const char *why = NULL;
    long dl = json_decode((const unsigned char *)b.s, b.len, dec, &why);
    size_t wl = model(in, n, want);
    int rc = 0;
    if (dl < 0) {
        print_hex("input", in, n);
        print_error("output %s is not a valid JSON string: %s\n", b.s, why);
        rc = -1;
    } else if ((size_t)dl != wl || memcmp(dec, want, wl) != 0) {
        print_hex("input", in, n);
        print_hex("decoded", dec, (size_t)dl);
        print_hex("expected", want, wl);
        rc = -1;
    }
    free(dec);
    free(want);
    sb_free(&b);
    return rc;
}

/* Each of the 256 single bytes gives a valid JSON string decoding to that byte's code point. */
static void test_all_single_bytes(void **state)
{
    (void)state;
    for (int c = 0; c < 256; c++) {
        unsigned char b = (unsigned char)c;
        assert_int_equal(check_one(&b, 1), 0);
    }
}

/* Quote and backslash are escaped, '/' and UTF-8 are not, a stray byte is \u00XX (strbuf.h). */
static void test_exact_escapes(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        size_t n;
        const char *out;
    } v[] = {
        {"", 0, "\"\""},
        {"abc", 3, "\"abc\""},
        {"\"", 1, "\"\\\"\""},
        {"\\", 1, "\"\\\\\""},
        {"/", 1, "\"/\""},
        {"\xff", 1, "\"\\u00ff\""},
        {"caf\xc3\xa9", 5, "\"caf\xc3\xa9\""},
    };
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        strbuf_t b;
        sb_init(&b);
        sb_json_str(&b, v[i].in, v[i].n);
        assert_string_equal(b.s, v[i].out);
        sb_free(&b);
    }
}

/* All 65,536 two-byte strings give valid JSON with the expected content. */
static void test_all_byte_pairs(void **state)
{
    (void)state;
    for (int c = 0; c < 65536; c++) {
        unsigned char b[2] = {(unsigned char)(c >> 8), (unsigned char)c};
        if (check_one(b, 2) < 0) {
            fail();
        }
    }
}

/* Valid UTF-8 of every length passes through unchanged, up to U+10FFFF. */
static void test_valid_utf8_kept(void **state)
{
    (void)state;
    const char *ok[] = {"\xc2\x80",         "\xdf\xbf",        "\xe0\xa0\x80", "\xe2\x82\xac",
                        "\xed\x9f\xbf",     "\xee\x80\x80",    "\xef\xbf\xbf", "\xf0\x90\x80\x80",
                        "\xf0\x9f\x98\x80", "\xf4\x8f\xbf\xbf"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++) {
        size_t n = strlen(ok[i]);
        strbuf_t b;
        sb_init(&b);
        sb_json_str(&b, ok[i], n);
        assert_int_equal(b.len, n + 2);
        assert_memory_equal(b.s + 1, ok[i], n);
        sb_free(&b);
        assert_int_equal(check_one((const unsigned char *)ok[i], n), 0);
    }
}

/* Ill-formed sequences whose lead byte looks right are escaped byte by byte: overlong forms,
 * UTF-16 surrogates and code points above U+10FFFF are not UTF-8 (RFC 3629 sections 3, 10). */
static void test_ill_formed_utf8_escaped(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        const char *bytes;
    } bad[] = {
        {"overlong 2-byte NUL", "\xc0\x80"},
        {"overlong 2-byte '/'", "\xc1\xaf"},
        {"truncated 3-byte", "\xe2\x82"},
        {"lone continuation", "\x80"},
        {"F5 lead", "\xf5\x80\x80\x80"},
        {"overlong 3-byte NUL", "\xe0\x80\x80"},
        {"overlong 3-byte U+07FF", "\xe0\x9f\xbf"},
        {"surrogate U+D800", "\xed\xa0\x80"},
        {"surrogate U+DFFF", "\xed\xbf\xbf"},
        {"overlong 4-byte NUL", "\xf0\x80\x80\x80"},
        {"overlong 4-byte U+FFFF", "\xf0\x8f\xbf\xbf"},
        {"above U+10FFFF", "\xf4\x90\x80\x80"},
    };
    int failures = 0;
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (check_one((const unsigned char *)bad[i].bytes, strlen(bad[i].bytes)) < 0) {
            print_error("  ^ %s\n", bad[i].name);
            failures++;
        }
    }
    assert_int_equal(failures, 0);
}

/* A small deterministic generator (xorshift64*), so failures repeat. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static uint64_t rnd(void)
{
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338717ull;
}

/* Random byte strings of up to 64 bytes always give valid JSON with the expected content. */
static void test_random_bytes(void **state)
{
    (void)state;
    unsigned char buf[64];
    for (int iter = 0; iter < 200000; iter++) {
        size_t n = rnd() % (sizeof buf + 1);
        for (size_t i = 0; i < n; i++) {
            buf[i] = (unsigned char)rnd();
        }
        if (check_one(buf, n) < 0) {
            print_error("iteration %d\n", iter);
            fail();
        }
    }
}

/* Random mixes of valid code points (encoded), ASCII specials and stray bytes that cannot
 * start a sequence give valid JSON: valid UTF-8 kept, each stray byte escaped alone. */
static void test_random_mixed(void **state)
{
    (void)state;
    unsigned char buf[256];
    for (int iter = 0; iter < 50000; iter++) {
        size_t n = 0, target = rnd() % 200;
        while (n < target) {
            switch (rnd() % 4) {
            case 0: { /* a valid code point, any plane, no surrogate */
                unsigned c = (unsigned)(rnd() % 0x110000);
                if (c >= 0xd800 && c <= 0xdfff) {
                    c = 0xfffd;
                }
                jc_put_utf8(c, buf, &n);
                break;
            }
            case 1:
                buf[n++] = (unsigned char)"\"\\\n\t\x01\x7f/"[rnd() % 7];
                break;
            case 2: { /* a stray byte that can never lead a sequence: 80-BF, C0, C1, F5-FF */
                static const unsigned char lead_free[] = {0x80, 0x9f, 0xa0, 0xbf, 0xc0,
                                                          0xc1, 0xf5, 0xf8, 0xfe, 0xff};
                buf[n++] = lead_free[rnd() % sizeof lead_free];
                break;
            }
            default:
                buf[n++] = (unsigned char)(' ' + rnd() % 95);
                break;
            }
        }
        if (check_one(buf, n) < 0) {
            print_error("iteration %d\n", iter);
            fail();
        }
    }
}

/* Several strings appended to one buffer each stay intact (growth keeps earlier bytes). */
static void test_appends_grow(void **state)
{
    (void)state;
    strbuf_t b;
    sb_init(&b);
    sb_putc(&b, '[');
    for (int i = 0; i < 1000; i++) {
        if (i) {
            sb_putc(&b, ',');
        }
        char item[32];
        int n = snprintf(item, sizeof item, "item\"%d\xff", i);
        sb_json_str(&b, item, (size_t)n);
    }
    sb_putc(&b, ']');
    char *s = sb_take(&b);
    assert_null(b.s);
    assert_int_equal(b.len, 0);
    const char *first = "[\"item\\\"0\\u00ff\",\"item\\\"1\\u00ff\",";
    assert_int_equal(strncmp(s, first, strlen(first)), 0);
    const char *last = "\"item\\\"999\\u00ff\"]";
    assert_string_equal(s + strlen(s) - strlen(last), last);
    free(s);
    s = sb_take(&b); /* an empty buffer hands over "" */
    assert_non_null(s);
    assert_string_equal(s, "");
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_all_single_bytes),
        cmocka_unit_test(test_exact_escapes),
        cmocka_unit_test(test_all_byte_pairs),
        cmocka_unit_test(test_valid_utf8_kept),
        cmocka_unit_test(test_ill_formed_utf8_escaped),
        cmocka_unit_test(test_random_bytes),
        cmocka_unit_test(test_random_mixed),
        cmocka_unit_test(test_appends_grow),
    };
    return cmocka_run_group_tests_name("strbuf", tests, NULL, NULL);
}
