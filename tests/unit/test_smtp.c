/*
 * test_smtp.c - unit tests of the SMTP reply parser and the EHLO helpers in
 * scanner/smtp.c: smtp_reply_feed() and its limits, smtp_ehlo_json() and
 * smtp_ehlo_has().
 *
 * The Postfix replies below were recorded from the loopback test network
 * (mx-valid.test at 127.25.0.1:25 and mx-authplain.test at 127.25.0.6:25,
 * "EHLO scanner.test"); the rest are written to hit one rule each.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scanner/smtp.h"
#include "tests/support/jsoncheck.h"

/* Recorded from Postfix 3.7 (Debian 12), mx-valid.test. */
static const char postfix_greeting[] = "220 mx-valid.test ESMTP mxscan testnet\r\n";
static const char postfix_ehlo[] = "250-mx-valid.test\r\n"
                                   "250-PIPELINING\r\n"
                                   "250-SIZE 10240000\r\n"
                                   "250-VRFY\r\n"
                                   "250-ETRN\r\n"
                                   "250-STARTTLS\r\n"
                                   "250-ENHANCEDSTATUSCODES\r\n"
                                   "250-8BITMIME\r\n"
                                   "250-DSN\r\n"
                                   "250 CHUNKING\r\n";
/* Recorded from Postfix, mx-authplain.test (smtpd_tls_auth_only = no). */
static const char postfix_auth_ehlo[] = "250-mx-authplain.test\r\n"
                                        "250-PIPELINING\r\n"
                                        "250-SIZE 10240000\r\n"
                                        "250-VRFY\r\n"
                                        "250-ETRN\r\n"
                                        "250-STARTTLS\r\n"
                                        "250-AUTH PLAIN LOGIN\r\n"
                                        "250-ENHANCEDSTATUSCODES\r\n"
                                        "250-8BITMIME\r\n"
                                        "250-DSN\r\n"
                                        "250 CHUNKING\r\n";
/* The reply text smtp_reply_feed builds from postfix_ehlo. */
static const char postfix_ehlo_text[] = "250-mx-valid.test\n"
                                        "250-PIPELINING\n"
                                        "250-SIZE 10240000\n"
                                        "250-VRFY\n"
                                        "250-ETRN\n"
                                        "250-STARTTLS\n"
                                        "250-ENHANCEDSTATUSCODES\n"
                                        "250-8BITMIME\n"
                                        "250-DSN\n"
                                        "250 CHUNKING";

/* A parser on the heap (it holds a 2 KiB line buffer), zeroed like a new session's. */
static smtp_reply_t *reply_new(void)
{
    smtp_reply_t *r = calloc(1, sizeof *r);
    assert_non_null(r);
    return r;
}

/* Frees a parser and its text. */
static void reply_del(smtp_reply_t *r)
{
    smtp_reply_free(r);
    free(r);
}

/* Feeds a whole buffer in one call through a heap copy of exactly len bytes. */
static int feed(smtp_reply_t *r, const char *data, size_t len, size_t *used, const char **err)
{
    char *copy = malloc(len ? len : 1);
    assert_non_null(copy);
    memcpy(copy, data, len);
    *err = NULL;
    int rc = smtp_reply_feed(r, copy, len, used, err);
    free(copy);
    assert_true(*used <= len);
    if (rc < 0) {
        assert_non_null(*err);
    }
    return rc;
}

/* The recorded Postfix greeting and EHLO reply parse whole: code, line count, text. */
static void test_postfix_replies(void **state)
{
    (void)state;
    smtp_reply_t *r = reply_new();
    size_t used;
    const char *err;
    assert_int_equal(feed(r, postfix_greeting, strlen(postfix_greeting), &used, &err), 1);
    assert_int_equal(used, strlen(postfix_greeting));
    assert_int_equal(r->code, 220);
    assert_int_equal(r->nlines, 1);
    assert_string_equal(r->text, "220 mx-valid.test ESMTP mxscan testnet");

    smtp_reply_reset(r);
    assert_int_equal(r->nlines, 0);
    assert_string_equal(r->text, "");
    assert_int_equal(feed(r, postfix_ehlo, strlen(postfix_ehlo), &used, &err), 1);
    assert_int_equal(used, strlen(postfix_ehlo));
    assert_int_equal(r->code, 250);
    assert_int_equal(r->nlines, 10);
    assert_string_equal(r->text, postfix_ehlo_text);
    assert_int_equal(r->len, strlen(postfix_ehlo_text));
    reply_del(r);
}

/* Splitting the reply at any byte boundary (in two or three pieces) gives the same reply. */
static void test_split_everywhere(void **state)
{
    (void)state;
    const char *msg = postfix_auth_ehlo;
    size_t len = strlen(msg);
    smtp_reply_t *whole = reply_new();
    size_t used;
    const char *err;
    assert_int_equal(feed(whole, msg, len, &used, &err), 1);

    smtp_reply_t *r = reply_new();
    for (size_t i = 0; i <= len; i++) {
        for (size_t j = i; j <= len; j++) {
            smtp_reply_reset(r);
            size_t cuts[4] = {0, i, j, len}, total = 0;
            int done = 0;
            for (int k = 0; k < 3; k++) {
                size_t n = cuts[k + 1] - cuts[k];
                if (done) {
                    assert_int_equal(n, 0); /* the reply ended with the last byte */
                    continue;
                }
                int rc = feed(r, msg + cuts[k], n, &used, &err);
                total += used;
                if (cuts[k + 1] < len) {
                    /* The final LF has not been seen yet: all bytes taken, no reply. */
                    assert_int_equal(rc, 0);
                    assert_int_equal(used, n);
                } else {
                    assert_int_equal(rc, 1);
                    done = 1;
                }
            }
            assert_true(done);
            assert_int_equal(total, len);
            assert_int_equal(r->code, whole->code);
            assert_int_equal(r->nlines, whole->nlines);
            assert_string_equal(r->text, whole->text);
        }
    }
    /* And one byte per call. */
    smtp_reply_reset(r);
    for (size_t i = 0; i < len; i++) {
        int rc = feed(r, msg + i, 1, &used, &err);
        assert_int_equal(used, 1);
        assert_int_equal(rc, i + 1 == len ? 1 : 0);
    }
    assert_string_equal(r->text, whole->text);
    reply_del(r);
    reply_del(whole);
}

/* Bare LF ends a line like CRLF does, mixed in one reply too; the text is the same. */
static void test_bare_lf(void **state)
{
    (void)state;
    char lf[sizeof postfix_ehlo], mixed[sizeof postfix_ehlo];
    size_t n = 0, m = 0;
    int line = 0;
    for (const char *p = postfix_ehlo; *p; p++) {
        if (*p != '\r') {
            lf[n++] = *p;
        }
        if (*p == '\r' && line % 2 == 1) {
            continue; /* odd lines lose their CR in the mixed copy */
        }
        mixed[m++] = *p;
        line += *p == '\n';
    }
    const char *bufs[] = {lf, mixed};
    size_t lens[] = {n, m};
    for (int b = 0; b < 2; b++) {
        smtp_reply_t *r = reply_new();
        size_t used;
        const char *err;
        assert_int_equal(feed(r, bufs[b], lens[b], &used, &err), 1);
        assert_int_equal(used, lens[b]);
        assert_int_equal(r->nlines, 10);
        assert_string_equal(r->text, postfix_ehlo_text);
        reply_del(r);
    }
}

/* Lines of one reply that carry different codes are a protocol error. */
static void test_code_mismatch(void **state)
{
    (void)state;
    static const char msg[] = "250-mx.test\r\n251 SIZE\r\n";
    smtp_reply_t *r = reply_new();
    size_t used;
    const char *err;
    assert_int_equal(feed(r, msg, strlen(msg), &used, &err), -1);
    assert_int_equal(used, strlen(msg)); /* the error is found at the end of the second line */
    reply_del(r);

    /* Same first digit, different last digits; and a 4xx continuation of a 2xx reply. */
    const char *more[] = {"220-a\r\n221 b\r\n", "250-a\r\n450 b\r\n",
                          "250-a\n250-b\n251-c\n250 d\n"};
    for (size_t i = 0; i < sizeof more / sizeof *more; i++) {
        r = reply_new();
        assert_int_equal(feed(r, more[i], strlen(more[i]), &used, &err), -1);
        reply_del(r);
    }
}

/* Builds "250 " + filler up to a line of text_len octets, then the terminator. */
static char *long_line(size_t text_len, const char *term, size_t *len)
{
    size_t tl = strlen(term);
    char *s = malloc(text_len + tl + 1);
    assert_non_null(s);
    memcpy(s, "250 ", 4);
    memset(s + 4, 'x', text_len - 4);
    memcpy(s + text_len, term, tl + 1);
    *len = text_len + tl;
    return s;
}

/* A reply line of 2049 octets is rejected, whatever ends it, and nothing past octet 2049 is read.
 */
static void test_line_2049_rejected(void **state)
{
    (void)state;
    const char *terms[] = {"\r\n", "\n", ""};
    for (int t = 0; t < 3; t++) {
        size_t len, used;
        const char *err;
        char *s = long_line(2049, terms[t], &len);
        smtp_reply_t *r = reply_new();
        assert_int_equal(feed(r, s, len, &used, &err), -1);
        assert_int_equal(used, 2049);
        reply_del(r);
        free(s);
    }
    /* A megabyte without a newline costs one line buffer, not a megabyte. */
    size_t big = 1 << 20, used;
    char *s = malloc(big);
    assert_non_null(s);
    memset(s, 'y', big);
    memcpy(s, "220 ", 4);
    smtp_reply_t *r = reply_new();
    const char *err = NULL;
    assert_int_equal(smtp_reply_feed(r, s, big, &used, &err), -1);
    assert_int_equal(used, 2049);
    assert_non_null(err);
    assert_true(r->len <= SMTP_LINE_MAX);
    reply_del(r);
    free(s);
}

/* A 2048-octet line is accepted with a bare LF and with CRLF alike: the cap counts the line,
 * not its terminator. */
static void test_line_2048_accepted(void **state)
{
    (void)state;
    const char *terms[] = {"\n", "\r\n"};
    for (int t = 0; t < 2; t++) {
        size_t len, used;
        const char *err;
        char *s = long_line(2048, terms[t], &len);
        smtp_reply_t *r = reply_new();
        int rc = feed(r, s, len, &used, &err);
        size_t textlen = r->len;
        reply_del(r); /* freed before asserting, so a failure leaks nothing */
        free(s);
        if (rc != 1) {
            print_error("2048-octet line ended by %s: rc %d (%s)\n", t ? "CRLF" : "LF", rc,
                        err ? err : "");
        }
        assert_int_equal(rc, 1);
        assert_int_equal(used, len);
        assert_int_equal(textlen, 2048);
    }
}

/* Builds a reply of n lines "250-l<i>" with the last one "250 end". */
static char *many_lines(int n, size_t *len)
{
    char *s = malloc((size_t)n * 16 + 16);
    assert_non_null(s);
    size_t o = 0;
    for (int i = 0; i < n - 1; i++) {
        o += (size_t)sprintf(s + o, "250-l%d\r\n", i);
    }
    o += (size_t)sprintf(s + o, "250 end\r\n");
    *len = o;
    return s;
}

/* 512 lines make a reply; a 513th line is rejected before the reply ends. */
static void test_line_count_cap(void **state)
{
    (void)state;
    size_t len, used;
    const char *err;
    char *s = many_lines(SMTP_REPLY_LINES, &len);
    smtp_reply_t *r = reply_new();
    assert_int_equal(feed(r, s, len, &used, &err), 1);
    assert_int_equal(r->nlines, 512);
    assert_int_equal(used, len);
    reply_del(r);
    free(s);

    s = many_lines(SMTP_REPLY_LINES + 1, &len);
    r = reply_new();
    assert_int_equal(feed(r, s, len, &used, &err), -1);
    assert_int_equal(used, len); /* found at the end of line 513, the last one */
    assert_int_equal(r->nlines, 512);
    reply_del(r);
    free(s);

    /* An endless continuation stops at the cap too. */
    size_t big = 600 * 8;
    s = malloc(big + 1);
    assert_non_null(s);
    for (size_t i = 0; i < 600; i++) {
        memcpy(s + i * 8, "250-ab\r\n", 8);
    }
    r = reply_new();
    assert_int_equal(feed(r, s, big, &used, &err), -1);
    assert_int_equal(used, 513 * 8);
    reply_del(r);
    free(s);
}

/* A reply over 64 KiB in total is rejected; one just under it is accepted. */
static void test_reply_size_cap(void **state)
{
    (void)state;
    for (int nlines = 32; nlines <= 33; nlines++) {
        /* lines of 2000 octets: 32 make 64,031 octets of text, 33 make 66,032 */
        size_t len = 0, cap = (size_t)nlines * 2002 + 1;
        char *s = malloc(cap);
        assert_non_null(s);
        for (int i = 0; i < nlines; i++) {
            memcpy(s + len, i == nlines - 1 ? "250 " : "250-", 4);
            memset(s + len + 4, 'z', 1996);
            memcpy(s + len + 2000, "\r\n", 2);
            len += 2002;
        }
        smtp_reply_t *r = reply_new();
        size_t used;
        const char *err;
        int rc = feed(r, s, len, &used, &err);
        assert_int_equal(rc, nlines == 32 ? 1 : -1);
        assert_true(r->len < SMTP_REPLY_MAX);
        reply_del(r);
        free(s);
    }
}

/* Lines without a three-digit code, with a bad separator, or outside 2xx-5xx are rejected. */
static void test_junk(void **state)
{
    (void)state;
    const char *junk[] = {"hello\r\n",       "\r\n",       "25\r\n",    "2500 x\r\n",
                          "250x\r\n",        "099 x\r\n",  "150 x\r\n", "650 x\r\n",
                          "25a x\r\n",       " 250 x\r\n", "250_x\r\n", "\x16\x03\x01\n",
                          "HTTP/1.1 400\r\n"};
    for (size_t i = 0; i < sizeof junk / sizeof *junk; i++) {
        smtp_reply_t *r = reply_new();
        size_t used;
        const char *err;
        int rc = feed(r, junk[i], strlen(junk[i]), &used, &err);
        if (rc != -1) {
            print_error("junk line %zu accepted (rc %d)\n", i, rc);
        }
        assert_int_equal(rc, -1);
        reply_del(r);
    }
    /* A code alone is a complete line (RFC 5321 4.2: the text is optional). */
    smtp_reply_t *r = reply_new();
    size_t used;
    const char *err;
    assert_int_equal(feed(r, "354\r\n", 5, &used, &err), 1);
    assert_int_equal(r->code, 354);
    reply_del(r);
}

/* Bytes after the final line stay unconsumed (*used stops at its LF), for the next reply or
 * for the STARTTLS injection check. */
static void test_used_stops_at_reply_end(void **state)
{
    (void)state;
    static const char two[] = "250 2.0.0 Ok\r\n221 2.0.0 Bye\r\n";
    smtp_reply_t *r = reply_new();
    size_t used;
    const char *err;
    assert_int_equal(feed(r, two, strlen(two), &used, &err), 1);
    assert_int_equal(used, 14);
    assert_string_equal(r->text, "250 2.0.0 Ok");
    smtp_reply_reset(r);
    assert_int_equal(feed(r, two + used, strlen(two) - 14, &used, &err), 1);
    assert_int_equal(r->code, 221);
    assert_string_equal(r->text, "221 2.0.0 Bye");

    /* STARTTLS 220 followed by injected plaintext: 3 bytes left for the caller to see. */
    static const char inj[] = "220 2.0.0 Ready to start TLS\r\nRSET\r\n";
    smtp_reply_reset(r);
    assert_int_equal(feed(r, inj, strlen(inj), &used, &err), 1);
    assert_int_equal(strlen(inj) - used, 6);
    assert_int_equal(r->code, 220);

    /* A multi-line reply with the next reply's first bytes in the same read. */
    static const char ml[] = "250-a\r\n250 b\r\n250-c";
    smtp_reply_reset(r);
    assert_int_equal(feed(r, ml, strlen(ml), &used, &err), 1);
    assert_int_equal(used, 14);
    assert_int_equal(r->nlines, 2);
    reply_del(r);
}

/* After a reset the parser takes the next reply with a different code (state fully cleared). */
static void test_reset_reuse(void **state)
{
    (void)state;
    smtp_reply_t *r = reply_new();
    size_t used;
    const char *err;
    assert_int_equal(feed(r, "250-a\r\n250-b", 12, &used, &err), 0);
    smtp_reply_reset(r);
    assert_int_equal(feed(r, "421 bye\r\n", 9, &used, &err), 1);
    assert_int_equal(r->code, 421);
    assert_int_equal(r->nlines, 1);
    assert_string_equal(r->text, "421 bye");
    reply_del(r);
}

/* Asserts that smtp_ehlo_json(text) is a valid JSON array holding exactly want[]. */
static void check_ehlo_json(const char *text, const char *const *want, int nwant)
{
    char *json = smtp_ehlo_json(text);
    assert_non_null(json);
    char **items;
    size_t count;
    const char *why = NULL;
    if (jc_json_string_array(json, 0, &items, &count, &why) < 0) {
        print_error("not a JSON array of strings (%s): %s\n", why, json);
        fail();
    }
    assert_int_equal(count, nwant);
    for (size_t i = 0; i < count; i++) {
        assert_string_equal(items[i], want[i]);
    }
    jc_free_strings(items, count);
    free(json);
}

/* The EHLO JSON is valid and lists the extensions without the server name line. */
static void test_ehlo_json(void **state)
{
    (void)state;
    static const char *const want[] = {"PIPELINING", "SIZE 10240000", "VRFY",
                                       "ETRN",       "STARTTLS",      "ENHANCEDSTATUSCODES",
                                       "8BITMIME",   "DSN",           "CHUNKING"};
    check_ehlo_json(postfix_ehlo_text, want, 9);
    check_ehlo_json("250 mx.test greets you", NULL, 0); /* no extensions */
    check_ehlo_json("", NULL, 0);

    /* Quotes, backslashes, control bytes, non-UTF-8 and UTF-8 in a line: still valid JSON. */
    static const char odd[] = "250-mx.test\n"
                              "250-X-\"QUOTED\" \\path\\\n"
                              "250-X-CTL \x01\x1f\x7f\t\n"
                              "250-X-BIN \xff\xfe\xc3\n"
                              "250 X-UTF8 caf\xc3\xa9";
    static const char *const want_odd[] = {"X-\"QUOTED\" \\path\\", "X-CTL \x01\x1f\x7f\t",
                                           "X-BIN \xc3\xbf\xc3\xbe\xc3\x83", "X-UTF8 caf\xc3\xa9"};
    check_ehlo_json(odd, want_odd, 4);
}

/* The EHLO JSON of every reply the parser accepts is a valid array of its extension lines. */
static void test_ehlo_json_from_parser(void **state)
{
    (void)state;
    const char *replies[] = {postfix_ehlo, postfix_auth_ehlo, "250 only.name\r\n",
                             "250-n\r\n250\r\n", "250-n\r\n250-\r\n250 x\r\n"};
    for (size_t i = 0; i < sizeof replies / sizeof *replies; i++) {
        smtp_reply_t *r = reply_new();
        size_t used;
        const char *err;
        assert_int_equal(feed(r, replies[i], strlen(replies[i]), &used, &err), 1);
        char *json = smtp_ehlo_json(r->text);
        char **items;
        size_t count;
        assert_int_equal(jc_json_string_array(json, 0, &items, &count, NULL), 0);
        assert_true(count <= (size_t)(r->nlines - 1));
        jc_free_strings(items, count);
        free(json);
        reply_del(r);
    }
}

/* Extension keywords match case-insensitively, as a whole word, with the AUTH= form, and never
 * on the first line (the server's name). */
static void test_ehlo_has(void **state)
{
    (void)state;
    assert_true(smtp_ehlo_has(postfix_ehlo_text, "STARTTLS"));
    assert_true(smtp_ehlo_has(postfix_ehlo_text, "starttls"));
    assert_true(smtp_ehlo_has(postfix_ehlo_text, "StartTls"));
    assert_true(smtp_ehlo_has(postfix_ehlo_text, "SIZE"));
    assert_true(smtp_ehlo_has(postfix_ehlo_text, "CHUNKING")); /* the last line, "250 " */
    assert_false(smtp_ehlo_has(postfix_ehlo_text, "AUTH"));
    assert_false(smtp_ehlo_has(postfix_ehlo_text, "PIPE"));          /* prefix of PIPELINING */
    assert_false(smtp_ehlo_has(postfix_ehlo_text, "mx-valid.test")); /* first line */

    assert_true(smtp_ehlo_has("250-mx.test\n250-AUTH PLAIN LOGIN\n250 STARTTLS", "AUTH"));
    assert_true(smtp_ehlo_has("250-mx.test\n250-AUTH=LOGIN\n250 HELP", "AUTH"));
    assert_true(smtp_ehlo_has("250-mx.test\n250-auth=login plain\n250 HELP", "AUTH"));
    assert_true(smtp_ehlo_has("250-mx.test\n250 AUTH", "auth"));

    assert_false(smtp_ehlo_has("250-mx.test\n250 STARTTLSX", "STARTTLS"));
    assert_false(smtp_ehlo_has("250-mx.test\n250-XSTARTTLS\n250 HELP", "STARTTLS"));
    assert_false(smtp_ehlo_has("250-mx.test\n250 X-EXT STARTTLS", "STARTTLS")); /* a parameter */
    assert_false(smtp_ehlo_has("250 STARTTLS", "STARTTLS")); /* one line: only the name */
    assert_false(smtp_ehlo_has("250-STARTTLS\n250 HELP", "STARTTLS"));
    assert_false(smtp_ehlo_has("250-mx.test\n250 AUTHX PLAIN", "AUTH"));
    assert_false(smtp_ehlo_has("", "STARTTLS"));
    assert_false(smtp_ehlo_has("250-mx.test\n250 START", "STARTTLS")); /* shorter line */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_postfix_replies),
        cmocka_unit_test(test_split_everywhere),
        cmocka_unit_test(test_bare_lf),
        cmocka_unit_test(test_code_mismatch),
        cmocka_unit_test(test_line_2049_rejected),
        cmocka_unit_test(test_line_2048_accepted),
        cmocka_unit_test(test_line_count_cap),
        cmocka_unit_test(test_reply_size_cap),
        cmocka_unit_test(test_junk),
        cmocka_unit_test(test_used_stops_at_reply_end),
        cmocka_unit_test(test_reset_reuse),
        cmocka_unit_test(test_ehlo_json),
        cmocka_unit_test(test_ehlo_json_from_parser),
        cmocka_unit_test(test_ehlo_has),
    };
    return cmocka_run_group_tests_name("smtp", tests, NULL, NULL);
}
