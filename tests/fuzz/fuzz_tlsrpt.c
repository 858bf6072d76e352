/*
 * fuzz_tlsrpt.c - libFuzzer harness for the TLSRPT record parser
 * (scanner/tlsrpt.c): tlsrpt_parse(), tlsrpt_rua_json(), tlsrpt_findings().
 *
 * The input, split at every 0xff byte, is the list of TXT strings found at
 * _smtp._tls.<domain> (NUL bytes may sit inside a string, as they can in
 * DNS); each string is an exact-size heap copy, so a read past its end is
 * an ASan report. The result is checked against tlsrpt.h and RFC 8460 3:
 * NONE has no record; VALID has one record, no error and at least one URI,
 * each mailto: or https:; INVALID says why and keeps no URI; the rua JSON
 * decodes back to the URIs; the findings are tlsrpt.none or tlsrpt.invalid
 * exactly when the status says so. The library is built with
 * -fsanitize=fuzzer-no-link, so coverage reaches tlsrpt.c through libmxcore.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "scanner/tlsrpt.h"
#include "tests/support/jsoncheck.h"

/* Stops the run: libFuzzer reports the crash with the input. */
static void fail(const char *what)
{
    fprintf(stderr, "fuzz_tlsrpt: %s\n", what);
    abort();
}

/* Findings seen, for the status check. */
typedef struct seen {
    int none, invalid, other;
} seen_t;

/* Counts findings by code. */
static void emit(void *ctx, const char *code, const char *detail)
{
    seen_t *s = ctx;
    if (!detail) {
        fail("finding without detail");
    }
    if (strcmp(code, "tlsrpt.none") == 0) {
        s->none++;
    } else if (strcmp(code, "tlsrpt.invalid") == 0) {
        s->invalid++;
    } else {
        s->other++;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
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
    tlsrpt_t t;
    tlsrpt_status_t st = tlsrpt_parse((const char *const *)v, l, n, &t);
    if (st != t.status || strnlen(t.error, sizeof t.error) == sizeof t.error) {
        fail("status or error inconsistent");
    }
    switch (st) {
    case TLSRPT_NONE:
        if (t.record || t.nrecords || t.nrua || t.error[0]) {
            fail("NONE with a record, URIs or an error");
        }
        break;
    case TLSRPT_VALID:
        if (!t.record || t.nrecords != 1 || t.nrua < 1 || t.error[0]) {
            fail("VALID without one record and a URI, or with an error");
        }
        for (int i = 0; i < t.nrua; i++) {
            if (strncasecmp(t.rua[i], "mailto:", 7) != 0 &&
                strncasecmp(t.rua[i], "https://", 8) != 0) {
                fail("a URI that is neither mailto: nor https:");
            }
        }
        break;
    case TLSRPT_INVALID:
        if (!t.record || t.nrecords < 1 || t.nrua || t.rua || !t.error[0]) {
            fail("INVALID without a record and a reason, or with URIs");
        }
        break;
    default:
        fail("unknown status");
    }
    char *j = tlsrpt_rua_json(&t);
    char **items = NULL;
    size_t ni = 0;
    if (!j || jc_json_string_array(j, 0, &items, &ni, NULL) != 0 || ni != (size_t)t.nrua) {
        fail("rua JSON is not an array of the URIs");
    }
    for (size_t i = 0; i < ni; i++) {
        if (strcmp(items[i], t.rua[i]) != 0) {
            fail("rua JSON does not decode to the URIs");
        }
    }
    jc_free_strings(items, ni);
    free(j);
    seen_t s = {0, 0, 0};
    tlsrpt_findings(&t, emit, &s);
    if (s.other || s.none != (st == TLSRPT_NONE) || s.invalid != (st == TLSRPT_INVALID)) {
        fail("findings do not follow the status");
    }
    tlsrpt_clear(&t);
    if (t.record || t.rua || t.nrua) {
        fail("tlsrpt_clear left data");
    }
    for (int i = 0; i < n; i++) {
        free(v[i]);
    }
    return 0;
}
