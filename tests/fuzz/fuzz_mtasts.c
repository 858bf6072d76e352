/*
 * fuzz_mtasts.c - libFuzzer harness for the pure MTA-STS code
 * (scanner/mtasts.c): sts_policy_parse(), sts_txt_parse(), sts_mx_match()
 * and sts_mx_json().
 *
 * One input is used three ways: whole, as a policy body; split at every
 * 0xff byte, as the TXT strings of _mta-sts.<domain> (so NUL bytes can sit
 * inside a string, as they can in DNS); and split at its first newline, as
 * an mx pattern and a host name. Every buffer handed over is an exact-size
 * heap copy, so a read past the end is an ASan report, and every result is
 * checked against the promises of mtasts.h and RFC 8461:
 *   - a valid policy has version STSv1, a mode, max_age 0..31557600, at
 *     most 64 mx patterns and at least one unless the mode is none; each
 *     pattern matches a host built from it (one more label for "*.") and the
 *     JSON array of patterns decodes back to them;
 *   - a valid TXT record has one candidate and an id of 1-32 letters and
 *     digits; an invalid one says why; NONE means no candidate;
 *   - matching ignores ASCII case and one trailing dot on the host, and a
 *     wildcard never matches the bare suffix.
 * The library is built with -fsanitize=fuzzer-no-link, so coverage reaches
 * mtasts.c through libmxcore.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scanner/mtasts.h"
#include "tests/support/jsoncheck.h"

/* Stops the run: libFuzzer reports the crash with the input. */
static void fail(const char *what)
{
    fprintf(stderr, "fuzz_mtasts: %s\n", what);
    abort();
}

/* A NUL-terminated heap copy of n bytes. */
static char *dupn(const uint8_t *p, size_t n)
{
    char *s = malloc(n + 1);
    if (!s) {
        abort();
    }
    memcpy(s, p, n);
    s[n] = 0;
    return s;
}

/* Checks one mx pattern of a valid policy against hosts built from it. */
static void check_pattern(const char *pat)
{
    size_t n = strlen(pat);
    if (n == 0 || n > 256) { /* "*." + 253 + a root dot */
        fail("mx pattern empty or longer than a name");
    }
    char host[600];
    if (pat[0] == '*') {
        snprintf(host, sizeof host, "mx7%s", pat + 1);
        if (!sts_mx_match(pat, host)) {
            fail("*.domain does not match label.domain");
        }
        if (sts_mx_match(pat, pat + 2)) {
            fail("*.domain matches the bare domain");
        }
        snprintf(host, sizeof host, "a.b%s", pat + 1);
        if (sts_mx_match(pat, host)) {
            fail("*.domain matches two more labels");
        }
    } else {
        if (!sts_mx_match(pat, pat)) {
            fail("a pattern does not match itself");
        }
        for (size_t i = 0; i < n && i < sizeof host - 1; i++) {
            host[i] = (char)toupper((unsigned char)pat[i]);
        }
        host[n < sizeof host - 1 ? n : sizeof host - 1] = 0;
        if (!sts_mx_match(pat, host)) {
            fail("matching is not case-insensitive");
        }
    }
}

/* The policy view of the input. */
static void fuzz_policy(const uint8_t *data, size_t size)
{
    char *body = malloc(size ? size : 1);
    if (!body) {
        abort();
    }
    memcpy(body, data, size);
    sts_policy_t p;
    char err[256];
    memset(err, 'x', sizeof err);
    int r = sts_policy_parse(body, size, &p, err, sizeof err);
    if (r != 0 && r != -1) {
        fail("sts_policy_parse returned neither 0 nor -1");
    }
    if (strnlen(err, sizeof err) == sizeof err ||
        strnlen(p.version, sizeof p.version) == sizeof p.version) {
        fail("error or version not terminated");
    }
    if (p.nmx < 0 || p.nmx > STS_MX_MAX) {
        fail("mx count out of range");
    }
    if (r == 0) {
        if (err[0] || strcmp(p.version, "STSv1") != 0 || p.mode == STS_MODE_UNSET ||
            p.max_age < 0 || p.max_age > STS_MAX_AGE_MAX ||
            (p.mode != STS_MODE_NONE && p.nmx == 0)) {
            fail("a valid policy breaks RFC 8461 3.2");
        }
        for (int i = 0; i < p.nmx; i++) {
            check_pattern(p.mx[i]);
        }
    } else if (!err[0]) {
        fail("an invalid policy without a reason");
    }
    char *j = sts_mx_json(&p);
    char **items = NULL;
    size_t n = 0;
    if (!j || jc_json_string_array(j, 0, &items, &n, NULL) != 0 || n != (size_t)p.nmx) {
        fail("mx JSON is not an array of the patterns");
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(items[i], p.mx[i]) != 0) {
            fail("mx JSON does not decode to the patterns");
        }
    }
    jc_free_strings(items, n);
    free(j);
    sts_policy_clear(&p);
    if (p.nmx != 0 || p.max_age != -1) {
        fail("sts_policy_clear left patterns");
    }
    free(body);
}

/* The TXT view: strings split at 0xff. */
static void fuzz_txt(const uint8_t *data, size_t size)
{
    enum { MAXS = 16 };
    char *v[MAXS];
    size_t l[MAXS];
    int n = 0;
    size_t start = 0;
    for (size_t i = 0; i <= size && n < MAXS; i++) {
        if (i == size || data[i] == 0xff) {
            l[n] = i - start;
            v[n] = malloc(l[n] ? l[n] : 1);
            if (!v[n]) {
                abort();
            }
            memcpy(v[n], data + start, l[n]);
            n++;
            start = i + 1;
        }
    }
    sts_txt_t t;
    sts_txt_status_t st = sts_txt_parse((const char *const *)v, l, n, &t);
    if (st != t.status || strnlen(t.error, sizeof t.error) == sizeof t.error ||
        strnlen(t.id, sizeof t.id) == sizeof t.id) {
        fail("status or text fields inconsistent");
    }
    int cand = 0;
    for (int i = 0; i < n; i++) {
        cand += l[i] >= 7 && memcmp(v[i], "v=STSv1", 7) == 0;
    }
    switch (st) {
    case STS_TXT_NONE:
        if (t.nrecords != 0 || t.error[0] || t.id[0]) {
            fail("NONE with records, an error or an id");
        }
        break;
    case STS_TXT_VALID: {
        size_t il = strlen(t.id);
        if (t.nrecords != 1 || t.error[0] || il < 1 || il > STS_ID_MAX) {
            fail("VALID without exactly one record and an id");
        }
        for (size_t i = 0; i < il; i++) {
            if (!isalnum((unsigned char)t.id[i])) {
                fail("id is not letters and digits");
            }
        }
        break;
    }
    case STS_TXT_INVALID:
        if (t.nrecords < 1 || !t.error[0] || t.id[0]) {
            fail("INVALID without a record and a reason, or with an id");
        }
        break;
    default:
        fail("unknown status");
    }
    if (t.nrecords > cand) {
        fail("more records than strings starting with v=STSv1");
    }
    for (int i = 0; i < n; i++) {
        free(v[i]);
    }
}

/* The matcher view: pattern and host split at the first newline. */
static void fuzz_match(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t pl = nl ? (size_t)(nl - data) : size;
    char *pat = dupn(data, pl);
    char *host = nl ? dupn(nl + 1, size - pl - 1) : dupn(data, 0);
    int m = sts_mx_match(pat, host);
    if (m != 0 && m != 1) {
        fail("sts_mx_match returned neither 0 nor 1");
    }
    size_t hl = strlen(host), pls = strlen(pat);
    char *up = dupn((const uint8_t *)host, hl);
    for (size_t i = 0; i < hl; i++) {
        up[i] = (char)toupper((unsigned char)up[i]);
    }
    if (sts_mx_match(pat, up) != m) {
        fail("host case changes the match");
    }
    if (hl > 0 && host[hl - 1] != '.') {
        char *dotted = malloc(hl + 2);
        if (!dotted) {
            abort();
        }
        memcpy(dotted, host, hl);
        dotted[hl] = '.';
        dotted[hl + 1] = 0;
        if (sts_mx_match(pat, dotted) != m) {
            fail("a trailing dot on the host changes the match");
        }
        free(dotted);
    }
    if (m && pls >= 2 && pat[0] == '*' && pat[1] == '.') {
        /* The host has one label more than the suffix: it is longer by at least 2. */
        size_t sfx = pls - 2 - (pat[pls - 1] == '.');
        size_t h = hl - (host[hl - 1] == '.');
        if (h < sfx + 2 || host[h - sfx - 1] != '.') {
            fail("a wildcard matched without one more label");
        }
    }
    if (m && strchr(host, '*')) {
        fail("a host with '*' matched");
    }
    free(up);
    free(pat);
    free(host);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_policy(data, size);
    fuzz_txt(data, size);
    fuzz_match(data, size);
    return 0;
}
