/*
 * fuzz_smtp.c - libFuzzer harness for the SMTP reply parser and the EHLO
 * helpers (scanner/smtp.c: smtp_reply_feed, smtp_ehlo_json, smtp_ehlo_has)
 * and the JSON escaping they use (scanner/strbuf.c).
 *
 * Input layout: byte 0 gives k (0-7), the next k bytes are chunk sizes
 * (0 means 1; cycled), and the rest is the byte stream from a server. The
 * stream is fed in those chunks until it is exhausted, like reads from a
 * socket; after a complete reply or an error the parser is reset and takes
 * the bytes it left unconsumed, as a new reply would. The same stream is
 * also fed in one piece, and both runs must see the same sequence of
 * replies and errors: where reads split the bytes must not matter.
 * Every complete reply is checked against the limits of smtp.h, and its
 * EHLO JSON must be an array of strings, one per extension line.
 *
 * smtp.c and strbuf.c are compiled into this file rather than taken from
 * libmxcore, so that libFuzzer's coverage instrumentation sees them.
 *
 * Known bug left out of the checks unless built with -DFUZZ_KNOWN_BUGS:
 * sb_json_str copies overlong UTF-8, UTF-8-encoded surrogates and code
 * points above U+10FFFF raw (test_strbuf.c), so the strict UTF-8 check of
 * the JSON output (tests/support/jsoncheck.c) is relaxed by default.
 */
#include "scanner/smtp.c"
#include "scanner/strbuf.c"
#include "tests/support/jsoncheck.h"

#include <stdint.h>

#define MAX_EVENTS 4096

/* Stops the run: libFuzzer reports the crash with the input. */
static void fail(const char *what)
{
    fprintf(stderr, "fuzz_smtp: %s\n", what);
    abort();
}

/* What one parse produced: a reply (code, text hash) or an error (its offset). */
typedef struct event {
    int rc;
    int code, nlines;
    size_t len, offset;
    uint64_t hash;
} event_t;

/* FNV-1a of a byte range. */
static uint64_t fnv(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    }
    return h;
}

/* Strictness of the check of the EHLO JSON (see the known bug above). */
#ifdef FUZZ_KNOWN_BUGS
#define JSON_FLAGS 0
#else
#define JSON_FLAGS JC_LAX_UTF8
#endif

/* Checks that json is an array of exactly `want` strings. */
static void check_json_array(const char *json, int want)
{
    char **items;
    size_t count;
    const char *why = NULL;
    if (jc_json_string_array(json, JSON_FLAGS, &items, &count, &why) < 0) {
        fprintf(stderr, "fuzz_smtp: %s\n", why);
        fail("EHLO JSON is not an array of valid strings");
    }
    jc_free_strings(items, count);
    if (count != (size_t)want) {
        fail("EHLO JSON does not have one string per extension line");
    }
}

/* Independent model of smtp_ehlo_has: a line after the first whose text (after "250-") starts
 * with kw, case-insensitively, followed by its end, a space or '='. */
static int model_has(const char *text, const char *kw)
{
    size_t kl = strlen(kw);
    int lineno = 0;
    const char *p = text;
    while (*p) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (lineno++ > 0 && n >= 4 + kl) {
            int eq = 1;
            for (size_t i = 0; i < kl; i++) {
                eq &= tolower((unsigned char)p[4 + i]) == tolower((unsigned char)kw[i]);
            }
            if (eq && (n == 4 + kl || p[4 + kl] == ' ' || p[4 + kl] == '=')) {
                return 1;
            }
        }
        if (!e) {
            break;
        }
        p = e + 1;
    }
    return 0;
}

/* Checks a complete reply and runs the EHLO helpers on it. */
static void check_reply(const smtp_reply_t *r)
{
    if (r->code < 200 || r->code > 599 || r->nlines < 1 || r->nlines > SMTP_REPLY_LINES) {
        fail("reply code or line count out of range");
    }
    if (r->len >= SMTP_REPLY_MAX || !r->text || r->text[r->len] != 0) {
        fail("reply text too long or not terminated");
    }
    /* Every line carries the reply's code; lines are at most SMTP_LINE_MAX long. */
    char code[4];
    snprintf(code, sizeof code, "%03d", r->code);
    int lines = 0, ext_lines = 0;
    const char *p = r->text, *end = r->text + r->len;
    while (p <= end) {
        const char *e = memchr(p, '\n', (size_t)(end - p));
        size_t n = e ? (size_t)(e - p) : (size_t)(end - p);
        if (n < 3 || memcmp(p, code, 3) != 0 || n > SMTP_LINE_MAX) {
            fail("reply line without the reply's code, or too long");
        }
        if (lines > 0 && n > 4 && !memchr(p, 0, n)) {
            ext_lines++;
        }
        lines++;
        if (!e) {
            break;
        }
        p = e + 1;
    }
    if (lines != r->nlines) {
        fail("line count differs from the text");
    }
    if (memchr(r->text, 0, r->len)) {
        return; /* a NUL byte ends the C string the EHLO helpers take */
    }
    char *json = smtp_ehlo_json(r->text);
    if (!json) {
        fail("smtp_ehlo_json returned NULL");
    }
    check_json_array(json, ext_lines);
    free(json);
    static const char *kws[] = {"STARTTLS", "AUTH", "SIZE", "PIPELINING", "starttls", ""};
    for (size_t i = 0; i < sizeof kws / sizeof *kws; i++) {
        if (!!smtp_ehlo_has(r->text, kws[i]) != model_has(r->text, kws[i])) {
            fail("smtp_ehlo_has disagrees with the model");
        }
    }
}

/* Feeds the stream in the given chunk sizes and records what the parser reports. */
static int run(smtp_reply_t *r, const char *s, size_t len, const uint8_t *sizes, size_t nsizes,
               event_t *ev)
{
    int nev = 0;
    size_t pos = 0, ci = 0;
    smtp_reply_reset(r);
    while (pos < len && nev < MAX_EVENTS) {
        size_t n = len - pos;
        if (nsizes) {
            size_t want = sizes[ci++ % nsizes];
            want = want ? want : 1;
            n = want < n ? want : n;
        }
        /* Each read is its own exact-size heap buffer, as from a socket. */
        char *chunk = malloc(n);
        if (!chunk) {
            return nev;
        }
        memcpy(chunk, s + pos, n);
        size_t off = 0;
        while (off < n && nev < MAX_EVENTS) {
            size_t used = 0;
            const char *err = NULL;
            int rc = smtp_reply_feed(r, chunk + off, n - off, &used, &err);
            if (used > n - off) {
                fail("used more bytes than given");
            }
            off += used;
            if (rc == 0) {
                if (off != n) {
                    fail("incomplete reply left bytes unconsumed");
                }
                break;
            }
            if (rc < 0 && !err) {
                fail("error without a message");
            }
            if (rc != 1 && rc != -1) {
                fail("smtp_reply_feed returned an unknown value");
            }
            if (used == 0) {
                fail("a reply or error consumed nothing");
            }
            event_t *e = &ev[nev++];
            memset(e, 0, sizeof *e);
            e->rc = rc;
            e->offset = pos + off;
            if (rc == 1) {
                check_reply(r);
                e->code = r->code;
                e->nlines = r->nlines;
                e->len = r->len;
                e->hash = fnv(r->text, r->len);
            }
            smtp_reply_reset(r);
        }
        free(chunk);
        pos += n;
    }
    return nev;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    size_t k = data[0] % 8;
    if (size < 1 + k) {
        return 0;
    }
    const uint8_t *sizes = data + 1;
    const char *stream = (const char *)data + 1 + k;
    size_t len = size - 1 - k;

    static event_t ev1[MAX_EVENTS], ev2[MAX_EVENTS];
    smtp_reply_t *r = calloc(1, sizeof *r);
    if (!r) {
        return 0;
    }
    int n1 = run(r, stream, len, sizes, k, ev1);
    int n2 = run(r, stream, len, NULL, 0, ev2);
    smtp_reply_free(r);
    free(r);
    if (n1 < MAX_EVENTS && n2 < MAX_EVENTS) {
        if (n1 != n2) {
            fail("chunked and whole feeding saw a different number of replies");
        }
        for (int i = 0; i < n1; i++) {
            if (ev1[i].rc != ev2[i].rc || ev1[i].offset != ev2[i].offset ||
                ev1[i].code != ev2[i].code || ev1[i].nlines != ev2[i].nlines ||
                ev1[i].len != ev2[i].len || ev1[i].hash != ev2[i].hash) {
                fail("chunked and whole feeding disagree");
            }
        }
    }
    return 0;
}
