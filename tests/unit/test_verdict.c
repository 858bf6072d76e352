/*
 * test_verdict.c - unit tests of scanner/verdict.c: the code table against
 * FINDINGS.md, the endpoint rules listed at the top of verdict.c, and the
 * domain posture with its order of precedence.
 *
 * FINDINGS.md lives outside the repository (../shared/FINDINGS.md next to
 * the checkout); when it is absent, the table comparison is skipped with a
 * message and the rest still runs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scanner/verdict.h"

/* ---- locating files ------------------------------------------------ */

/* The repository root: $MXSCAN_SRC, else two levels above $MXSCAN_TESTDATA (tests/data), else
 * two levels above this source file's directory. */
static void repo_root(char *buf, size_t len)
{
    const char *src = getenv("MXSCAN_SRC"), *data = getenv("MXSCAN_TESTDATA");
    if (src && *src) {
        snprintf(buf, len, "%s", src);
    } else if (data && *data) {
        snprintf(buf, len, "%s/../..", data);
    } else {
        const char *slash = strrchr(__FILE__, '/');
        snprintf(buf, len, "%.*s/../..", slash ? (int)(slash - __FILE__) : 1,
                 slash ? __FILE__ : ".");
    }
}

/* Reads a whole text file (malloc'd), or NULL. */
static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        return NULL;
    }
    size_t cap = 1 << 16, n = 0, r;
    char *s = malloc(cap);
    assert_non_null(s);
    while ((r = fread(s + n, 1, cap - n - 1, f)) > 0) {
        n += r;
        if (n + 1 == cap) {
            cap *= 2;
            s = realloc(s, cap);
            assert_non_null(s);
        }
    }
    fclose(f);
    s[n] = 0;
    return s;
}

/* ---- FINDINGS.md --------------------------------------------------- */

typedef struct md_code {
    char code[64], sev[64], rtype[64];
} md_code_t;

typedef struct findings {
    md_code_t codes[128];
    int ncodes;
    char postures[16][64];
    int npostures;
} findings_t;

/* Copies a table cell without surrounding blanks. */
static void cell(char *out, size_t outlen, const char *b, const char *e)
{
    while (b < e && (*b == ' ' || *b == '\t')) {
        b++;
    }
    while (e > b && (e[-1] == ' ' || e[-1] == '\t')) {
        e--;
    }
    snprintf(out, outlen, "%.*s", (int)(e - b), b);
}

/* Parses the markdown tables of FINDINGS.md: "| code | sev | meaning | result_type |" tables
 * give codes, the "| posture | meaning |" table gives postures. */
static void parse_findings(const char *text, findings_t *f)
{
    memset(f, 0, sizeof *f);
    enum { NONE, CODES, POSTURES } mode = NONE;
    for (const char *line = text; line && *line;) {
        const char *eol = strchr(line, '\n');
        const char *end = eol ? eol : line + strlen(line);
        if (*line != '|') {
            mode = NONE; /* a table ends at the first line that is not a row */
        } else {
            /* split the row into cells */
            const char *bars[64];
            int nb = 0;
            for (const char *p = line; p < end && nb < 64; p++) {
                if (*p == '|') {
                    bars[nb++] = p;
                }
            }
            char first[64], second[64], last[64];
            cell(first, sizeof first, bars[0] + 1, nb > 1 ? bars[1] : end);
            cell(second, sizeof second, nb > 1 ? bars[1] + 1 : end, nb > 2 ? bars[2] : end);
            cell(last, sizeof last, nb > 2 ? bars[nb - 2] + 1 : end, bars[nb - 1]);
            if (strncmp(first, "---", 3) == 0) {
                /* separator row */
            } else if (strcmp(first, "code") == 0 && strcmp(second, "sev") == 0) {
                mode = CODES;
                assert_string_equal(last, "result_type");
            } else if (strcmp(first, "posture") == 0) {
                mode = POSTURES;
            } else if (mode == CODES) {
                assert_true(f->ncodes < 128);
                md_code_t *c = &f->codes[f->ncodes++];
                snprintf(c->code, sizeof c->code, "%s", first);
                /* "crit*" and "warn*": the star points at a footnote, not a severity */
                size_t sl = strlen(second);
                if (sl && second[sl - 1] == '*') {
                    second[sl - 1] = 0;
                }
                snprintf(c->sev, sizeof c->sev, "%s", second);
                snprintf(c->rtype, sizeof c->rtype, "%s", nb >= 5 ? last : "");
            } else if (mode == POSTURES) {
                assert_true(f->npostures < 16);
                snprintf(f->postures[f->npostures++], sizeof f->postures[0], "%s", first);
            }
        }
        line = eol ? eol + 1 : NULL;
    }
}

/* Loads FINDINGS.md, or skips the calling test when this checkout has none. */
static void load_findings(findings_t *f)
{
    char root[1024], path[1200];
    repo_root(root, sizeof root);
    snprintf(path, sizeof path, "%s/../shared/FINDINGS.md", root);
    char *text = read_text(path);
    if (!text) {
        print_message("FINDINGS.md not found at %s: comparison skipped\n", path);
        skip();
    }
    parse_findings(text, f);
    free(text);
    assert_true(f->ncodes > 0);
}

/* Codes of verdict.c's table, read from its source (the table has no iterator), or -1. */
static int table_codes_from_source(char codes[][64], int max)
{
    char root[1024], path[1200];
    repo_root(root, sizeof root);
    snprintf(path, sizeof path, "%s/scanner/verdict.c", root);
    char *text = read_text(path);
    if (!text) {
        return -1;
    }
    int n = 0;
    const char *p = strstr(text, "codes[] = {");
    const char *end = p ? strstr(p, "};") : NULL;
    while (p && end && (p = strstr(p, "{\"")) != NULL && p < end) {
        p += 2;
        const char *q = strchr(p, '"');
        assert_true(n < max);
        snprintf(codes[n++], 64, "%.*s", (int)(q - p), p);
        p = q;
    }
    free(text);
    return n;
}

/* Every FINDINGS.md code is in the table with the same severity and RFC 8460 result type. */
static void test_table_matches_findings(void **state)
{
    (void)state;
    findings_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    load_findings(f);
    int bad = 0;
    for (int i = 0; i < f->ncodes; i++) {
        const md_code_t *c = &f->codes[i];
        const verdict_code_t *v = verdict_lookup(c->code);
        if (!v) {
            print_error("FINDINGS.md code %s is not in verdict.c\n", c->code);
            bad++;
            continue;
        }
        if (strcmp(v->severity, c->sev) != 0) {
            print_error("%s: severity %s in verdict.c, %s in FINDINGS.md\n", c->code, v->severity,
                        c->sev);
            bad++;
        }
        const char *rt = v->result_type ? v->result_type : "";
        if (strcmp(rt, c->rtype) != 0) {
            print_error("%s: result_type '%s' in verdict.c, '%s' in FINDINGS.md\n", c->code, rt,
                        c->rtype);
            bad++;
        }
    }
    free(f);
    assert_int_equal(bad, 0);
}

/* Every code of the table is documented in FINDINGS.md, once (no undocumented or duplicate
 * codes either side). */
static void test_findings_cover_table(void **state)
{
    (void)state;
    findings_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    load_findings(f);
    for (int i = 0; i < f->ncodes; i++) {
        for (int j = i + 1; j < f->ncodes; j++) {
            assert_string_not_equal(f->codes[i].code, f->codes[j].code);
        }
    }
    static char codes[256][64];
    int n = table_codes_from_source(codes, 256);
    if (n < 0) {
        free(f);
        print_message("scanner/verdict.c not readable: reverse comparison skipped\n");
        skip();
        return;
    }
    assert_true(n > 0);
    int bad = 0;
    for (int i = 0; i < n; i++) {
        assert_non_null(verdict_lookup(codes[i]));
        int found = 0;
        for (int k = 0; k < f->ncodes; k++) {
            found += strcmp(f->codes[k].code, codes[i]) == 0;
        }
        for (int j = i + 1; j < n; j++) {
            assert_string_not_equal(codes[i], codes[j]);
        }
        if (found != 1) {
            print_error("verdict.c code %s appears %d times in FINDINGS.md\n", codes[i], found);
            bad++;
        }
    }
    int ncodes = f->ncodes;
    free(f);
    assert_int_equal(n, ncodes);
    assert_int_equal(bad, 0);
}

/* Unknown codes are not in the table. */
static void test_lookup_unknown(void **state)
{
    (void)state;
    assert_null(verdict_lookup("smtp.nonsense"));
    assert_null(verdict_lookup(""));
    assert_null(verdict_lookup("SMTP.STARTTLS.MISSING")); /* codes are exact strings */
    const verdict_code_t *v = verdict_lookup("smtp.starttls.missing");
    assert_non_null(v);
    assert_string_equal(v->code, "smtp.starttls.missing");
}

/* ---- endpoint rules ------------------------------------------------ */

typedef struct emitted {
    int n;
    char code[16][64];
    char detail[16][256];
} emitted_t;

/* Collects findings; every code emitted must be a known one. */
static void collect(void *ctx, const char *code, const char *detail)
{
    emitted_t *e = ctx;
    assert_non_null(code);
    assert_non_null(detail);
    assert_non_null(verdict_lookup(code));
    assert_true(e->n < 16);
    snprintf(e->code[e->n], sizeof e->code[0], "%s", code);
    snprintf(e->detail[e->n], sizeof e->detail[0], "%s", detail);
    e->n++;
}

/* Runs verdict_endpoint and asserts the exact set of codes (in order of the rules). */
static emitted_t run(const smtp_result_t *r, const char *const *want, int nwant)
{
    emitted_t e;
    memset(&e, 0, sizeof e);
    verdict_endpoint(r, collect, &e);
    int ok = e.n == nwant;
    for (int i = 0; ok && i < nwant; i++) {
        ok = strcmp(e.code[i], want[i]) == 0;
    }
    if (!ok) {
        print_error("emitted:");
        for (int i = 0; i < e.n; i++) {
            print_error(" %s", e.code[i]);
        }
        print_error("\nexpected:");
        for (int i = 0; i < nwant; i++) {
            print_error(" %s", want[i]);
        }
        print_error("\n");
        fail();
    }
    return e;
}

/* The expected codes as run()'s (array, count) arguments. */
#define WANT(...)                                                                                  \
    (const char *const[]){__VA_ARGS__},                                                            \
        (int)(sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))
#define WANT_NONE NULL, 0

static char ehlo_tls[] = "250-mx.test\n250-PIPELINING\n250-SIZE 10240000\n250-STARTTLS\n"
                         "250 CHUNKING";
static char ehlo_plain[] = "250-mx.test\n250-PIPELINING\n250 SIZE 10240000";
static char ehlo_auth[] = "250-mx.test\n250-STARTTLS\n250-AUTH PLAIN LOGIN\n250 CHUNKING";
static char ehlo_auth_eq[] = "250-mx.test\n250-STARTTLS\n250-AUTH=LOGIN\n250 CHUNKING";
static char helo_reply[] = "250 mx.test";
static char greeting_554[] = "554 5.7.1 mx.test: no service for you";
static char starttls_454[] = "454 4.7.0 TLS not available due to local problem";

/* A session that got as far as the caller says, with everything before it successful. */
static smtp_result_t session(void)
{
    smtp_result_t r;
    memset(&r, 0, sizeof r);
    snprintf(r.host, sizeof r.host, "mx.test");
    snprintf(r.ip, sizeof r.ip, "127.25.0.1");
    r.port = 25;
    r.t_connect = r.t_banner = r.t_ehlo = r.t_starttls = r.t_tls = r.t_ehlo2 = -1;
    r.tls.verify_depth = -1;
    return r;
}

/* A complete, healthy STARTTLS session. */
static smtp_result_t good_session(void)
{
    smtp_result_t r = session();
    r.banner_code = 220;
    r.ehlo_code = 250;
    r.ehlo_before = ehlo_tls;
    r.starttls_offered = 1;
    r.starttls_code = 220;
    r.tls_done = 1;
    r.ehlo_after = ehlo_tls;
    return r;
}

/* A healthy STARTTLS session has no findings, is reached and has TLS. */
static void test_endpoint_clean(void **state)
{
    (void)state;
    smtp_result_t r = good_session();
    run(&r, WANT_NONE);
    assert_true(verdict_reached(&r));
    assert_true(verdict_tls_ok(&r));
}

/* Connect refused, unreachable or timed out gives smtp.connect.failed with the error as detail. */
static void test_endpoint_connect_failed(void **state)
{
    (void)state;
    const char *errors[] = {"connection refused", "host is unreachable", "connect timed out"};
    for (int i = 0; i < 3; i++) {
        smtp_result_t r = session();
        r.fail = SMTP_F_CONNECT;
        r.failed_step = SMTP_STEP_CONNECT;
        snprintf(r.error, sizeof r.error, "%s", errors[i]);
        emitted_t e = run(&r, WANT("smtp.connect.failed"));
        assert_string_equal(e.detail[0], errors[i]);
        assert_false(verdict_reached(&r));
    }
}

/* A connection closed before any greeting is smtp.connect.failed too. */
static void test_endpoint_closed_before_greeting(void **state)
{
    (void)state;
    smtp_result_t r = session();
    r.fail = SMTP_F_CLOSED;
    r.failed_step = SMTP_STEP_BANNER;
    snprintf(r.error, sizeof r.error, "connection closed by the server in BANNER");
    run(&r, WANT("smtp.connect.failed"));
}

/* Connected but no greeting before the deadline gives smtp.banner.timeout. */
static void test_endpoint_banner_timeout(void **state)
{
    (void)state;
    smtp_result_t r = session();
    r.fail = SMTP_F_TIMEOUT;
    r.failed_step = SMTP_STEP_BANNER;
    snprintf(r.error, sizeof r.error, "timeout waiting in BANNER");
    run(&r, WANT("smtp.banner.timeout"));
}

/* A greeting other than 220 gives smtp.banner.rejected, with the greeting as detail. */
static void test_endpoint_banner_rejected(void **state)
{
    (void)state;
    smtp_result_t r = session();
    r.fail = SMTP_F_REJECTED;
    r.failed_step = SMTP_STEP_BANNER;
    r.banner_code = 554;
    r.greeting = greeting_554;
    snprintf(r.error, sizeof r.error, "greeting was %s", greeting_554);
    emitted_t e = run(&r, WANT("smtp.banner.rejected"));
    assert_string_equal(e.detail[0], greeting_554);
}

/* Broken or over-long replies, and a timeout or close after the greeting, give smtp.protocol
 * and nothing about STARTTLS (its check did not run). */
static void test_endpoint_protocol(void **state)
{
    (void)state;
    static const struct {
        smtp_fail_t fail;
        const char *step;
        const char *error;
        int reached;
    } v[] = {
        {SMTP_F_PROTOCOL, SMTP_STEP_BANNER, "reply line longer than 2048 octets", 0},
        {SMTP_F_PROTOCOL, SMTP_STEP_EHLO, "malformed reply line (no three-digit code)", 0},
        {SMTP_F_PROTOCOL, SMTP_STEP_EHLO, "reply too long (over 512 lines or 64 KiB)", 0},
        {SMTP_F_PROTOCOL, SMTP_STEP_EHLO, "reply lines with different codes", 0},
        {SMTP_F_TIMEOUT, SMTP_STEP_EHLO, "timeout waiting in EHLO", 0},
        {SMTP_F_CLOSED, SMTP_STEP_EHLO, "connection closed by the server in EHLO", 0},
        {SMTP_F_TIMEOUT, SMTP_STEP_STARTTLS, "timeout waiting in STARTTLS", 1},
        {SMTP_F_CLOSED, SMTP_STEP_STARTTLS, "connection closed by the server in STARTTLS", 1},
        {SMTP_F_TIMEOUT, SMTP_STEP_EHLO2, "timeout waiting in EHLO2", 1},
    };
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        smtp_result_t r = session();
        r.banner_code = 220;
        if (v[i].reached) {
            r.ehlo_code = 250;
            r.ehlo_before = ehlo_tls;
            r.starttls_offered = 1;
        }
        r.fail = v[i].fail;
        r.failed_step = v[i].step;
        snprintf(r.error, sizeof r.error, "%s", v[i].error);
        emitted_t e = run(&r, WANT("smtp.protocol"));
        assert_string_equal(e.detail[0], v[i].error);
    }
}

/* Bytes pipelined after the STARTTLS 220 (RFC 3207 4.2) give smtp.protocol, not a STARTTLS
 * rejection. */
static void test_endpoint_bytes_after_starttls(void **state)
{
    (void)state;
    smtp_result_t r = good_session();
    r.tls_done = 0;
    r.ehlo_after = NULL;
    r.fail = SMTP_F_PROTOCOL;
    r.failed_step = SMTP_STEP_STARTTLS;
    snprintf(r.error, sizeof r.error, "6 bytes pipelined after the STARTTLS 220 reply");
    run(&r, WANT("smtp.protocol"));
    assert_false(verdict_tls_ok(&r));
}

/* EHLO refused and HELO used gives smtp.ehlo.rejected, and (no extensions) smtp.starttls.missing.
 */
static void test_endpoint_ehlo_rejected(void **state)
{
    (void)state;
    smtp_result_t r = session();
    r.banner_code = 220;
    r.helo_fallback = 1;
    r.ehlo_code = 250;
    r.ehlo_before = helo_reply;
    run(&r, WANT("smtp.ehlo.rejected", "smtp.starttls.missing"));
}

/* No STARTTLS keyword in the EHLO reply gives smtp.starttls.missing (only that). */
static void test_endpoint_starttls_missing(void **state)
{
    (void)state;
    smtp_result_t r = session();
    r.banner_code = 220;
    r.ehlo_code = 250;
    r.ehlo_before = ehlo_plain;
    emitted_t e = run(&r, WANT("smtp.starttls.missing"));
    assert_string_equal(e.detail[0], "EHLO reply lacks STARTTLS");
}

/* STARTTLS answered with anything but 220 gives smtp.starttls.rejected with the reply. */
static void test_endpoint_starttls_rejected(void **state)
{
    (void)state;
    const int codes[] = {454, 502, 501, 554};
    for (int i = 0; i < 4; i++) {
        smtp_result_t r = good_session();
        r.tls_done = 0;
        r.ehlo_after = NULL;
        r.starttls_code = codes[i];
        r.starttls_reply = starttls_454;
        emitted_t e = run(&r, WANT("smtp.starttls.rejected"));
        assert_string_equal(e.detail[0], starttls_454);
    }
}

/* AUTH offered before TLS (both the "AUTH mech" and "AUTH=mech" forms) gives
 * smtp.auth.plaintext; AUTH offered only after TLS does not. */
static void test_endpoint_auth_plaintext(void **state)
{
    (void)state;
    char *forms[] = {ehlo_auth, ehlo_auth_eq};
    for (int i = 0; i < 2; i++) {
        smtp_result_t r = good_session();
        r.ehlo_before = forms[i];
        run(&r, WANT("smtp.auth.plaintext"));
    }
    smtp_result_t r = good_session();
    r.ehlo_after = ehlo_auth;
    run(&r, WANT_NONE);
}

/* STARTTLS accepted but the handshake failed gives tls.handshake.failed with the error. */
static void test_endpoint_tls_failed(void **state)
{
    (void)state;
    smtp_result_t r = good_session();
    r.tls_done = 0;
    r.ehlo_after = NULL;
    r.fail = SMTP_F_TLS;
    r.failed_step = SMTP_STEP_TLS;
    snprintf(r.error, sizeof r.error, "error:0A000410:SSL routines::sslv3 alert handshake failure");
    emitted_t e = run(&r, WANT("tls.handshake.failed"));
    assert_string_equal(e.detail[0], r.error);
    assert_false(verdict_tls_ok(&r));
}

/* With TLS on connect (port 465) the STARTTLS checks do not run; a failed handshake is still
 * tls.handshake.failed. */
static void test_endpoint_tls_on_connect(void **state)
{
    (void)state;
    smtp_result_t r = session();
    r.port = 465;
    r.tls_on_connect = 1;
    r.tls_done = 1;
    r.banner_code = 220;
    r.ehlo_code = 250;
    r.ehlo_after = ehlo_plain;
    run(&r, WANT_NONE);

    r = session();
    r.port = 465;
    r.tls_on_connect = 1;
    r.fail = SMTP_F_TLS;
    r.failed_step = SMTP_STEP_TLS;
    snprintf(r.error, sizeof r.error, "handshake failed");
    run(&r, WANT("tls.handshake.failed"));
}

/* An interrupted scan leaves no finding behind for the session. */
static void test_endpoint_aborted(void **state)
{
    (void)state;
    smtp_result_t r = session();
    r.banner_code = 220;
    r.fail = SMTP_F_ABORTED;
    r.failed_step = SMTP_STEP_EHLO;
    run(&r, WANT_NONE);
}

/* Several rules apply together: EHLO with AUTH and without STARTTLS after a HELO fallback. */
static void test_endpoint_combined(void **state)
{
    (void)state;
    static char ehlo_auth_only[] = "250-mx.test\n250 AUTH LOGIN";
    smtp_result_t r = session();
    r.banner_code = 220;
    r.ehlo_code = 250;
    r.ehlo_before = ehlo_auth_only;
    run(&r, WANT("smtp.auth.plaintext", "smtp.starttls.missing"));
}

/* ---- posture ------------------------------------------------------- */

/* Posture of a set of facts. */
static const char *posture(int null_mx, int dns_failed, int n_endpoints, int n_reached, int n_tls)
{
    domain_facts_t f = {.null_mx = null_mx,
                        .dns_failed = dns_failed,
                        .n_endpoints = n_endpoints,
                        .n_reached = n_reached,
                        .n_tls = n_tls};
    return verdict_posture(&f);
}

/* Posture of two reachable TLS endpoints with downgrade-protection facts. */
static const char *posture_protected(int n_dane_valid, int dane_broken, int sts_broken,
                                     int sts_enforce_ok, int sts_testing_ok)
{
    domain_facts_t f = {.n_endpoints = 2,
                        .n_reached = 2,
                        .n_tls = 2,
                        .n_dane_valid = n_dane_valid,
                        .dane_broken = dane_broken,
                        .sts_broken = sts_broken,
                        .sts_enforce_ok = sts_enforce_ok,
                        .sts_testing_ok = sts_testing_ok};
    return verdict_posture(&f);
}

/* broken, dane, mta-sts and mta-sts-testing each come out of their own facts,
 * in FINDINGS.md's order: broken > plaintext > partial > dane > mta-sts >
 * mta-sts-testing > starttls. */
static void test_posture_protection_values(void **state)
{
    (void)state;
    assert_string_equal(posture_protected(0, 1, 0, 0, 0), "broken");
    assert_string_equal(posture_protected(0, 0, 1, 0, 0), "broken");
    assert_string_equal(posture_protected(2, 0, 0, 0, 0), "dane");
    assert_string_equal(posture_protected(1, 0, 0, 0, 0), "starttls"); /* not every endpoint */
    assert_string_equal(posture_protected(0, 0, 0, 1, 0), "mta-sts");
    assert_string_equal(posture_protected(0, 0, 0, 0, 1), "mta-sts-testing");
    assert_string_equal(posture_protected(2, 0, 0, 1, 1), "dane");
    assert_string_equal(posture_protected(2, 1, 0, 1, 0), "broken");
    assert_string_equal(posture_protected(0, 0, 0, 1, 1), "mta-sts");
    /* broken outranks plaintext: a published policy that fails is worse */
    domain_facts_t f = {.n_endpoints = 1, .n_reached = 1, .n_tls = 0, .dane_broken = 1};
    assert_string_equal(verdict_posture(&f), "broken");
}

/* Each posture value this stage decides comes out of its own facts. */
static void test_posture_each_value(void **state)
{
    (void)state;
    assert_string_equal(posture(1, 0, 0, 0, 0), "no-mail");
    assert_string_equal(posture(0, 1, 0, 0, 0), "dns-error");
    assert_string_equal(posture(0, 0, 2, 0, 0), "unreachable");
    assert_string_equal(posture(0, 0, 2, 2, 0), "plaintext");
    assert_string_equal(posture(0, 0, 2, 2, 1), "partial");
    assert_string_equal(posture(0, 0, 2, 2, 2), "starttls");
}

/* The order of precedence is no-mail > dns-error > unreachable > plaintext > partial > starttls. */
static void test_posture_precedence(void **state)
{
    (void)state;
    assert_string_equal(posture(1, 1, 3, 3, 3), "no-mail");
    assert_string_equal(posture(1, 0, 2, 2, 2), "no-mail");
    assert_string_equal(posture(0, 1, 2, 2, 2), "dns-error");
    assert_string_equal(posture(0, 1, 2, 0, 0), "dns-error");
    assert_string_equal(posture(0, 0, 0, 0, 0), "unreachable"); /* no endpoint at all */
    assert_string_equal(posture(0, 0, 3, 1, 0), "plaintext");
    assert_string_equal(posture(0, 0, 3, 3, 2), "partial");
    /* Endpoints that never answered do not count against a domain. */
    assert_string_equal(posture(0, 0, 3, 1, 1), "starttls");
}

/* Every posture value returned is one FINDINGS.md defines. */
static void test_posture_values_documented(void **state)
{
    (void)state;
    findings_t *f = calloc(1, sizeof *f);
    assert_non_null(f);
    load_findings(f);
    const char *values[] = {posture(1, 0, 0, 0, 0), posture(0, 1, 0, 0, 0), posture(0, 0, 1, 0, 0),
                            posture(0, 0, 1, 1, 0), posture(0, 0, 2, 2, 1), posture(0, 0, 1, 1, 1)};
    for (size_t i = 0; i < sizeof values / sizeof *values; i++) {
        int found = 0;
        for (int k = 0; k < f->npostures; k++) {
            found |= strcmp(f->postures[k], values[i]) == 0;
        }
        if (!found) {
            print_error("posture %s is not in FINDINGS.md\n", values[i]);
        }
        assert_true(found);
    }
    free(f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_matches_findings),
        cmocka_unit_test(test_findings_cover_table),
        cmocka_unit_test(test_lookup_unknown),
        cmocka_unit_test(test_endpoint_clean),
        cmocka_unit_test(test_endpoint_connect_failed),
        cmocka_unit_test(test_endpoint_closed_before_greeting),
        cmocka_unit_test(test_endpoint_banner_timeout),
        cmocka_unit_test(test_endpoint_banner_rejected),
        cmocka_unit_test(test_endpoint_protocol),
        cmocka_unit_test(test_endpoint_bytes_after_starttls),
        cmocka_unit_test(test_endpoint_ehlo_rejected),
        cmocka_unit_test(test_endpoint_starttls_missing),
        cmocka_unit_test(test_endpoint_starttls_rejected),
        cmocka_unit_test(test_endpoint_auth_plaintext),
        cmocka_unit_test(test_endpoint_tls_failed),
        cmocka_unit_test(test_endpoint_tls_on_connect),
        cmocka_unit_test(test_endpoint_aborted),
        cmocka_unit_test(test_endpoint_combined),
        cmocka_unit_test(test_posture_each_value),
        cmocka_unit_test(test_posture_protection_values),
        cmocka_unit_test(test_posture_precedence),
        cmocka_unit_test(test_posture_values_documented),
    };
    return cmocka_run_group_tests_name("verdict", tests, NULL, NULL);
}
