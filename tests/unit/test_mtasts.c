/*
 * test_mtasts.c - unit tests of scanner/mtasts.c: the _mta-sts TXT parser
 * (RFC 8461 3.1), the policy parser (3.2), the MX pattern matcher (4.1),
 * the findings mapping, and the checker end to end on a real libuv loop.
 *
 * Policies and records at the top are the RFC's own examples and what
 * mail.example.net publishes; the rest are written to hit one rule each.
 *
 * The end-to-end tests need no network but loopback and no server of
 * anyone else's. The group fixture starts, in a temporary directory:
 *   - a CA, a certificate for the mta-sts.<name>.test hosts it signs, one
 *     for another name, and a self-signed one (openssl(1));
 *   - a Python HTTPS server on 127.60.0.1 (an ephemeral port) that serves
 *     by Host: a valid policy, a testing policy, a 404, a 301, 100 KiB with
 *     and without Content-Length, a malformed policy, and the other two
 *     certificates by SNI;
 *   - a listener on 127.60.0.1 that never accepts (the kernel completes
 *     the TCP handshake, nobody answers: a tarpit) and a closed port;
 *   - a small DNS responder thread on 127.60.0.2 (an ephemeral UDP port)
 *     answering _mta-sts.<name>.test TXT and mta-sts.<name>.test A/AAAA
 *     from the table below, counting the TXT queries it gets.
 * Ports are ephemeral so that two builds can run the tests at once.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <uv.h>

#include "scanner/mtasts.h"
#include "scanner/verdict.h"
#include "tests/support/jsoncheck.h"

/* ==== pure parts ======================================================== */

/* Parses up to 4 NUL-terminated TXT strings with sts_txt_parse. */
static sts_txt_status_t txt(sts_txt_t *t, const char *a, const char *b, const char *c,
                            const char *d)
{
    const char *v[4] = {a, b, c, d};
    size_t l[4];
    int n = 0;
    for (int i = 0; i < 4 && v[i]; i++, n++) {
        l[i] = strlen(v[i]);
    }
    return sts_txt_parse(v, l, n, t);
}

/* Asserts that one TXT record is invalid and that its error mentions want. */
static void assert_txt_invalid(const char *record, const char *want)
{
    sts_txt_t t;
    assert_int_equal(txt(&t, record, NULL, NULL, NULL), STS_TXT_INVALID);
    assert_string_equal(t.id, "");
    if (!strstr(t.error, want)) {
        print_error("record \"%s\": error \"%s\" lacks \"%s\"\n", record, t.error, want);
        fail();
    }
}

/* The RFC 8461 3.1 example record is valid and yields its id. */
static void test_txt_rfc_example(void **state)
{
    (void)state;
    sts_txt_t t;
    assert_int_equal(txt(&t, "v=STSv1; id=20160831085700Z;", NULL, NULL, NULL), STS_TXT_VALID);
    assert_int_equal(t.nrecords, 1);
    assert_string_equal(t.id, "20160831085700Z");
    assert_string_equal(t.error, "");
}

/* Without the trailing ';', with whitespace around delimiters and with trailing whitespace. */
static void test_txt_delimiters(void **state)
{
    (void)state;
    sts_txt_t t;
    assert_int_equal(txt(&t, "v=STSv1;id=abc", NULL, NULL, NULL), STS_TXT_VALID);
    assert_string_equal(t.id, "abc");
    assert_int_equal(txt(&t, "v=STSv1 ;\tid=A1b2C3 ; ", NULL, NULL, NULL), STS_TXT_VALID);
    assert_string_equal(t.id, "A1b2C3");
}

/* Extension fields of the right shape are accepted; the id may come after them. */
static void test_txt_extensions(void **state)
{
    (void)state;
    sts_txt_t t;
    assert_int_equal(txt(&t, "v=STSv1; ext_1.a-b=x!y:z; id=42", NULL, NULL, NULL), STS_TXT_VALID);
    assert_string_equal(t.id, "42");
    assert_txt_invalid("v=STSv1; id=42; _x=1", "malformed field");
    assert_txt_invalid("v=STSv1; id=42; x=", "malformed field");
    assert_txt_invalid("v=STSv1; id=42; x=a b", "malformed field");
    assert_txt_invalid("v=STSv1; id=42; x=a=b", "malformed field");
    assert_txt_invalid("v=STSv1; id=42; nothing", "has no '='");
    assert_txt_invalid("v=STSv1;; id=42", "has no '='");
}

/* Other TXT strings are ignored; none with the exact, case-sensitive tag is NONE. */
static void test_txt_none(void **state)
{
    (void)state;
    sts_txt_t t;
    assert_int_equal(sts_txt_parse(NULL, NULL, 0, &t), STS_TXT_NONE);
    assert_int_equal(txt(&t, "v=spf1 -all", "V=STSv1; id=1", "v=STSv10; id=1", " v=STSv1; id=1"),
                     STS_TXT_NONE);
    assert_int_equal(t.nrecords, 0);
    assert_int_equal(txt(&t, "v=spf1 -all", "v=STSv1; id=7", NULL, NULL), STS_TXT_VALID);
    assert_string_equal(t.id, "7");
}

/* RFC 8461 3.1: more than one v=STSv1 record is invalid. */
static void test_txt_several(void **state)
{
    (void)state;
    sts_txt_t t;
    assert_int_equal(txt(&t, "v=STSv1; id=1", "v=STSv1; id=2", NULL, NULL), STS_TXT_INVALID);
    assert_int_equal(t.nrecords, 2);
    assert_non_null(strstr(t.error, "several"));
}

/* id= is required and is 1 to 32 letters and digits (a date with dashes is a common mistake). */
static void test_txt_id_rules(void **state)
{
    (void)state;
    sts_txt_t t;
    assert_txt_invalid("v=STSv1", "no id");
    assert_txt_invalid("v=STSv1;", "no id");
    assert_txt_invalid("v=STSv1; foo=bar", "no id");
    assert_txt_invalid("v=STSv1; id=", "not 1 to 32");
    assert_txt_invalid("v=STSv1; id=2019-04-29", "\"2019-04-29\" is not 1 to 32");
    assert_txt_invalid("v=STSv1; id=123456789012345678901234567890123", "not 1 to 32");
    assert_txt_invalid("v=STSv1; ID=1", "no id");
    assert_int_equal(txt(&t, "v=STSv1; id=12345678901234567890123456789012", NULL, NULL, NULL),
                     STS_TXT_VALID);
    assert_int_equal(strlen(t.id), 32);
    /* A repeated id keeps its first value. */
    assert_int_equal(txt(&t, "v=STSv1; id=first; id=second", NULL, NULL, NULL), STS_TXT_VALID);
    assert_string_equal(t.id, "first");
}

/* The version must be followed by the ';' delimiter. */
static void test_txt_missing_delimiter(void **state)
{
    (void)state;
    assert_txt_invalid("v=STSv1 id=1", "expected ';'");
}

/* The RFC 8461 3.2 example policy, with CRLF line ends as the RFC writes them. */
static const char rfc_policy[] = "version: STSv1\r\n"
                                 "mode: enforce\r\n"
                                 "mx: mail.example.com\r\n"
                                 "mx: *.example.net\r\n"
                                 "mx: backupmx.example.com\r\n"
                                 "max_age: 604800\r\n";

/* The policy mail.example.net publishes (LF line ends). */
static const char provider_policy[] = "version: STSv1\n"
                                      "mode: enforce\n"
                                      "mx: mx-in.mail.example.net\n"
                                      "mx: *.mx-in.mail.example.net\n"
                                      "max_age: 86400\n";

/* Parses a NUL-terminated policy; returns sts_policy_parse's value. */
static int policy(sts_policy_t *p, const char *body, char *err, size_t errlen)
{
    return sts_policy_parse(body, strlen(body), p, err, errlen);
}

/* Asserts that a policy is invalid, with want in the error. */
static void assert_policy_invalid(const char *body, const char *want)
{
    sts_policy_t p;
    char err[256];
    assert_int_equal(policy(&p, body, err, sizeof err), -1);
    if (!strstr(err, want)) {
        print_error("policy \"%s\": error \"%s\" lacks \"%s\"\n", body, err, want);
        fail();
    }
    sts_policy_clear(&p);
}

/* The RFC example parses to mode enforce, three mx patterns and its max_age. */
static void test_policy_rfc_example(void **state)
{
    (void)state;
    sts_policy_t p;
    char err[256];
    assert_int_equal(policy(&p, rfc_policy, err, sizeof err), 0);
    assert_string_equal(err, "");
    assert_string_equal(p.version, "STSv1");
    assert_int_equal(p.mode, STS_MODE_ENFORCE);
    assert_int_equal(p.max_age, 604800);
    assert_int_equal(p.nmx, 3);
    assert_string_equal(p.mx[0], "mail.example.com");
    assert_string_equal(p.mx[1], "*.example.net");
    assert_string_equal(p.mx[2], "backupmx.example.com");
    sts_policy_clear(&p);
    assert_int_equal(p.nmx, 0);
    assert_int_equal(p.max_age, -1);
}

/* mail.example.net's policy (LF ends), and the same without a final line end. */
static void test_policy_provider_and_no_final_newline(void **state)
{
    (void)state;
    sts_policy_t p;
    char err[256];
    assert_int_equal(policy(&p, provider_policy, err, sizeof err), 0);
    assert_int_equal(p.nmx, 2);
    assert_int_equal(p.max_age, 86400);
    sts_policy_clear(&p);
    assert_int_equal(
        policy(&p, "version: STSv1\nmode: testing\nmx: a.example\nmax_age: 0", err, sizeof err), 0);
    assert_int_equal(p.mode, STS_MODE_TESTING);
    assert_int_equal(p.max_age, 0);
    sts_policy_clear(&p);
}

/* Mode none needs no mx; enforce and testing need at least one. */
static void test_policy_mx_required_unless_none(void **state)
{
    (void)state;
    sts_policy_t p;
    char err[256];
    assert_int_equal(policy(&p, "version: STSv1\nmode: none\nmax_age: 86400\n", err, sizeof err),
                     0);
    assert_int_equal(p.mode, STS_MODE_NONE);
    assert_int_equal(p.nmx, 0);
    sts_policy_clear(&p);
    assert_policy_invalid("version: STSv1\nmode: enforce\nmax_age: 86400\n", "no mx");
    assert_policy_invalid("version: STSv1\nmode: testing\nmax_age: 86400\n", "no mx");
}

/* version, mode and max_age are required. */
static void test_policy_required_fields(void **state)
{
    (void)state;
    assert_policy_invalid("mode: enforce\nmx: a.example\nmax_age: 1\n", "no version");
    assert_policy_invalid("version: STSv1\nmx: a.example\nmax_age: 1\n", "no mode");
    assert_policy_invalid("version: STSv1\nmode: enforce\nmx: a.example\n", "no max_age");
    assert_policy_invalid("", "no version");
    /* Keys are case-sensitive: "Version" is an unknown key, so there is no version. */
    assert_policy_invalid("Version: STSv1\nmode: enforce\nmx: a.example\nmax_age: 1\n",
                          "no version");
}

/* Values are checked exactly: version STSv1, mode one of three lower-case words. */
static void test_policy_values(void **state)
{
    (void)state;
    sts_policy_t p;
    char err[256];
    assert_policy_invalid("version: STSv2\nmode: enforce\nmx: a.example\nmax_age: 1\n",
                          "version is \"STSv2\"");
    assert_policy_invalid("version: STSv1\nmode: Enforce\nmx: a.example\nmax_age: 1\n",
                          "mode \"Enforce\"");
    assert_policy_invalid("version: STSv1\nmode: reject\nmx: a.example\nmax_age: 1\n",
                          "not enforce, testing or none");
    /* An invalid policy still reports what it read. */
    assert_int_equal(policy(&p, "version: STSv2\n", err, sizeof err), -1);
    assert_string_equal(p.version, "STSv2");
    sts_policy_clear(&p);
}

/* max_age: 1 to 10 digits, at most 31557600. */
static void test_policy_max_age(void **state)
{
    (void)state;
    sts_policy_t p;
    char err[256];
    assert_int_equal(policy(&p, "version: STSv1\nmode: none\nmax_age: 31557600\n", err, sizeof err),
                     0);
    assert_int_equal(p.max_age, 31557600);
    sts_policy_clear(&p);
    assert_policy_invalid("version: STSv1\nmode: none\nmax_age: 31557601\n", "max_age");
    assert_policy_invalid("version: STSv1\nmode: none\nmax_age: 1w\n", "max_age \"1w\"");
    assert_policy_invalid("version: STSv1\nmode: none\nmax_age: -1\n", "max_age");
    assert_policy_invalid("version: STSv1\nmode: none\nmax_age: 00000000001\n", "max_age");
    assert_policy_invalid("version: STSv1\nmode: none\nmax_age:\n", "max_age");
}

/* mx patterns are host names or "*." and a host name, nothing else. */
static void test_policy_mx_syntax(void **state)
{
    (void)state;
    static const char *bad[] = {
        "mail example.com",
        "*.",
        "*",
        "a*.example.com",
        "*.*.example.com",
        "-mx.example.com",
        "mx-.example.com",
        "mx..example.com",
        ".example.com",
        "mx_1.example.com",
        "mx.example.com:25",
        "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.example"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char body[512];
        snprintf(body, sizeof body, "version: STSv1\nmode: enforce\nmx: %s\nmax_age: 1\n", bad[i]);
        assert_policy_invalid(body, "is not a domain name or *.domain");
    }
    sts_policy_t p;
    char err[256];
    assert_int_equal(policy(&p,
                            "version: STSv1\nmode: enforce\nmx: MX1.Example.COM.\nmx: "
                            "*.xn--bcher-kva.example\nmx: 1.2-3.example\nmax_age: 1\n",
                            err, sizeof err),
                     0);
    assert_int_equal(p.nmx, 3);
    assert_string_equal(p.mx[0], "MX1.Example.COM.");
    sts_policy_clear(&p);
}

/* At most 64 mx patterns: 64 are fine, 65 make the policy invalid. */
static void test_policy_mx_cap(void **state)
{
    (void)state;
    char body[8192];
    size_t o = (size_t)snprintf(body, sizeof body, "version: STSv1\nmode: enforce\nmax_age: 9\n");
    for (int i = 0; i < 64; i++) {
        o += (size_t)snprintf(body + o, sizeof body - o, "mx: mx%d.example.com\n", i);
    }
    sts_policy_t p;
    char err[256];
    assert_int_equal(policy(&p, body, err, sizeof err), 0);
    assert_int_equal(p.nmx, 64);
    sts_policy_clear(&p);
    snprintf(body + o, sizeof body - o, "mx: one-more.example.com\n");
    assert_policy_invalid(body, "more than 64 mx");
}

/* Lines are capped at 1000 bytes (terminator excluded): 1000 pass, 1001 fail. */
static void test_policy_line_cap(void **state)
{
    (void)state;
    char body[1200];
    int head = snprintf(body, sizeof body, "version: STSv1\nmode: none\nmax_age: 1\nx: ");
    memset(body + head, 'a', 1000 - 3);
    body[head + 997] = '\r';
    body[head + 998] = '\n';
    body[head + 999] = 0;
    sts_policy_t p;
    char err[256];
    assert_int_equal(policy(&p, body, err, sizeof err), 0);
    sts_policy_clear(&p);
    body[head + 997] = 'a';
    body[head + 998] = 'a';
    body[head + 999] = '\n';
    body[head + 1000] = 0;
    assert_policy_invalid(body, "longer than 1000");
}

/* Control characters (NUL, a bare CR) and lines that are not "key: value" are invalid. */
static void test_policy_malformed_lines(void **state)
{
    (void)state;
    static const char with_nul[] = "version: STSv1\nmode: none\nmax_age: 1\nx: a\0b\n";
    sts_policy_t p;
    char err[256];
    assert_int_equal(sts_policy_parse(with_nul, sizeof with_nul - 1, &p, err, sizeof err), -1);
    assert_non_null(strstr(err, "control character 0x00"));
    sts_policy_clear(&p);
    assert_policy_invalid("version: STSv1\rmode: none\nmax_age: 1\n", "control character 0x0d");
    assert_policy_invalid("version: STSv1\nmode none\nmax_age: 1\n", "line 2 is not");
    assert_policy_invalid("version: STSv1\nmode : none\nmax_age: 1\n", "line 2 is not");
    assert_policy_invalid(" version: STSv1\nmode: none\nmax_age: 1\n", "line 1 is not");
    assert_policy_invalid("\xef\xbb\xbfversion: STSv1\nmode: none\nmax_age: 1\n", "line 1 is not");
    assert_policy_invalid("<html><body>Not here</body></html>\n", "line 1 is not");
}

/* Unknown keys are ignored, repeated fields keep their first value, blank lines and
 * trailing whitespace are tolerated. */
static void test_policy_lenient_readings(void **state)
{
    (void)state;
    sts_policy_t p;
    char err[256];
    assert_int_equal(policy(&p,
                            "version: STSv1\n\nmode:testing \t\nmode: enforce\nfoo.bar: anything "
                            "at all\nmx: a.example\nmax_age: 5\nmax_age: 99999999999\nversion: "
                            "STSv9\n\n",
                            err, sizeof err),
                     0);
    assert_int_equal(p.mode, STS_MODE_TESTING);
    assert_int_equal(p.max_age, 5);
    assert_string_equal(p.version, "STSv1");
    sts_policy_clear(&p);
}

/* The mx patterns are written as a strict JSON array. */
static void test_policy_mx_json(void **state)
{
    (void)state;
    sts_policy_t p;
    char err[256];
    assert_int_equal(policy(&p, rfc_policy, err, sizeof err), 0);
    char *j = sts_mx_json(&p);
    char **items = NULL;
    size_t n = 0;
    assert_int_equal(jc_json_string_array(j, 0, &items, &n, NULL), 0);
    assert_int_equal(n, 3);
    assert_string_equal(items[1], "*.example.net");
    jc_free_strings(items, n);
    free(j);
    sts_policy_clear(&p);
    j = sts_mx_json(&p);
    assert_string_equal(j, "[]");
    free(j);
}

/* RFC 8461 4.1 matching: one leftmost label for "*.", case and one trailing dot ignored. */
static void test_mx_match(void **state)
{
    (void)state;
    static const struct {
        const char *pattern, *host;
        int want;
    } cases[] = {
        {"*.example.com", "a.example.com", 1},
        {"*.example.com", "a.b.example.com", 0},
        {"*.example.com", "example.com", 0},
        {"*.example.com", ".example.com", 0},
        {"*.example.com", "A.EXAMPLE.COM", 1},
        {"*.EXAMPLE.com", "mx1.example.com.", 1},
        {"*.example.com.", "mx1.example.com", 1},
        {"*.example.com", "a.example.com.evil", 0},
        {"*.example.com", "aexample.com", 0},
        {"mail.example.com", "mail.example.com", 1},
        {"mail.example.com", "MAIL.Example.Com.", 1},
        {"mail.example.com.", "mail.example.com", 1},
        {"mail.example.com", "mail.example.com..", 0},
        {"mail.example.com", "x.mail.example.com", 0},
        {"mail.example.com", "mail.example.co", 0},
        {"example.com", "mail.example.com", 0},
        {"*", "example.com", 0},
        {"*.", "a.", 0},
        {"a*.example.com", "ab.example.com", 0},
        {"*mail.example.com", "mail.example.com", 0},
        {"mail.*.com", "mail.example.com", 0},
        {"*.*.example.com", "a.b.example.com", 0},
        {"*.example.com", "*.example.com", 0},
        {"", "", 0},
        {"", "a.example", 0},
        {"a.example", "", 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        if (sts_mx_match(cases[i].pattern, cases[i].host) != cases[i].want) {
            print_error("sts_mx_match(\"%s\", \"%s\") != %d\n", cases[i].pattern, cases[i].host,
                        cases[i].want);
            fail();
        }
    }
    assert_int_equal(sts_mx_match(NULL, "a.example"), 0);
    assert_int_equal(sts_mx_match("a.example", NULL), 0);
}

/* Names stored in the database. */
static void test_names(void **state)
{
    (void)state;
    assert_string_equal(sts_mode_name(STS_MODE_ENFORCE), "enforce");
    assert_string_equal(sts_mode_name(STS_MODE_TESTING), "testing");
    assert_string_equal(sts_mode_name(STS_MODE_NONE), "none");
    assert_null(sts_mode_name(STS_MODE_UNSET));
    assert_null(sts_fetch_status_name(STS_FETCH_NONE));
    static const char *want[] = {"ok",   "dns",      "connect", "tls",    "webpki",
                                 "http", "redirect", "size",    "timeout"};
    for (int s = STS_FETCH_OK; s <= STS_FETCH_TIMEOUT; s++) {
        assert_string_equal(sts_fetch_status_name((sts_fetch_status_t)s), want[s - 1]);
    }
}

/* ---- findings ------------------------------------------------------------ */

typedef struct emitted {
    int n;
    char code[8][32];
    char detail[8][1024];
} emitted_t;

/* Collects findings; every code must be one of verdict.c's table. */
static void collect(void *ctx, const char *code, const char *detail)
{
    emitted_t *e = ctx;
    assert_true(e->n < 8);
    if (!verdict_lookup(code)) {
        print_error("unknown finding code %s\n", code);
        fail();
    }
    snprintf(e->code[e->n], sizeof e->code[e->n], "%s", code);
    snprintf(e->detail[e->n], sizeof e->detail[e->n], "%s", detail);
    e->n++;
}

/* A result as the checker would leave it after a valid TXT and a 200 with body. */
static void result_with_policy(sts_result_t *r, const char *body)
{
    memset(r, 0, sizeof *r);
    snprintf(r->domain, sizeof r->domain, "example.com");
    r->txt_status = DNS_NOERROR;
    r->txt_rcode = 0;
    txt(&r->txt_parsed, "v=STSv1; id=1", NULL, NULL, NULL);
    r->fetch_status = STS_FETCH_OK;
    r->http_status = 200;
    r->webpki_valid = 1;
    r->policy_valid = sts_policy_parse(body, strlen(body), &r->policy, r->policy_error,
                                       sizeof r->policy_error) == 0;
}

/* Runs sts_findings on r into a fresh list. */
static emitted_t findings(const sts_result_t *r)
{
    emitted_t e;
    memset(&e, 0, sizeof e);
    sts_findings(r, collect, &e);
    return e;
}

/* Each way a domain check ends maps to its one domain-level code. */
static void test_findings_domain(void **state)
{
    (void)state;
    sts_result_t r;
    emitted_t e;

    memset(&r, 0, sizeof r);
    snprintf(r.domain, sizeof r.domain, "example.com");
    r.txt_status = DNS_NXDOMAIN;
    e = findings(&r);
    assert_int_equal(e.n, 1);
    assert_string_equal(e.code[0], "sts.none");

    r.txt_status = DNS_SERVFAIL;
    e = findings(&r);
    assert_int_equal(e.n, 1);
    assert_string_equal(e.code[0], "dns.error");
    assert_string_equal(e.detail[0], "_mta-sts.example.com TXT SERVFAIL");

    r.txt_status = DNS_NOERROR;
    txt(&r.txt_parsed, "v=STSv1; id=2019-01-01", NULL, NULL, NULL);
    r.txt = "v=STSv1; id=2019-01-01";
    e = findings(&r);
    assert_int_equal(e.n, 1);
    assert_string_equal(e.code[0], "sts.txt.invalid");
    assert_non_null(strstr(e.detail[0], "v=STSv1; id=2019-01-01"));
    r.txt = NULL;

    txt(&r.txt_parsed, "v=STSv1; id=1", NULL, NULL, NULL);
    r.fetch_status = STS_FETCH_WEBPKI;
    snprintf(r.fetch_error, sizeof r.fetch_error, "SSL certificate problem: self-signed");
    e = findings(&r);
    assert_int_equal(e.n, 1);
    assert_string_equal(e.code[0], "sts.webpki.invalid");
    assert_non_null(strstr(e.detail[0], "https://mta-sts.example.com/.well-known/mta-sts.txt"));
    assert_non_null(strstr(e.detail[0], "self-signed"));

    static const sts_fetch_status_t fails[] = {STS_FETCH_DNS,    STS_FETCH_CONNECT,  STS_FETCH_TLS,
                                               STS_FETCH_HTTP,   STS_FETCH_REDIRECT, STS_FETCH_SIZE,
                                               STS_FETCH_TIMEOUT};
    for (size_t i = 0; i < sizeof fails / sizeof *fails; i++) {
        r.fetch_status = fails[i];
        snprintf(r.fetch_error, sizeof r.fetch_error, "HTTP 404");
        e = findings(&r);
        assert_int_equal(e.n, 1);
        assert_string_equal(e.code[0], "sts.fetch.failed");
        assert_non_null(strstr(e.detail[0], sts_fetch_status_name(fails[i])));
    }

    /* Cancelled: the check did not run, nothing is claimed. */
    r.cancelled = 1;
    e = findings(&r);
    assert_int_equal(e.n, 0);
}

/* Policy outcomes: invalid, enforce (nothing), testing and none. */
static void test_findings_policy(void **state)
{
    (void)state;
    sts_result_t r;
    emitted_t e;

    result_with_policy(&r, "version: STSv1\nmode: enforce\nmax_age: 1\n");
    e = findings(&r);
    assert_int_equal(e.n, 1);
    assert_string_equal(e.code[0], "sts.policy.invalid");
    assert_non_null(strstr(e.detail[0], "no mx"));
    sts_policy_clear(&r.policy);

    result_with_policy(&r, rfc_policy);
    e = findings(&r);
    assert_int_equal(e.n, 0);
    sts_policy_clear(&r.policy);

    result_with_policy(&r, "version: STSv1\nmode: testing\nmx: a.example\nmax_age: 1\n");
    e = findings(&r);
    assert_int_equal(e.n, 1);
    assert_string_equal(e.code[0], "sts.mode.testing");
    sts_policy_clear(&r.policy);

    result_with_policy(&r, "version: STSv1\nmode: none\nmax_age: 1\n");
    e = findings(&r);
    assert_int_equal(e.n, 1);
    assert_string_equal(e.code[0], "sts.mode.none");
    sts_policy_clear(&r.policy);
}

/* Per MX: mismatch under enforce/testing, cert failure only for a matched MX, nothing under
 * mode none, an invalid policy or an unknown certificate verdict. */
static void test_findings_mx(void **state)
{
    (void)state;
    sts_result_t r;
    emitted_t e;
    result_with_policy(&r, rfc_policy);

    memset(&e, 0, sizeof e);
    sts_mx_findings(&r, "mx.attacker.example", 1, collect, &e);
    assert_int_equal(e.n, 1);
    assert_string_equal(e.code[0], "sts.mx.mismatch");
    assert_non_null(strstr(e.detail[0], "mx.attacker.example"));
    assert_non_null(strstr(e.detail[0], "*.example.net"));

    memset(&e, 0, sizeof e);
    sts_mx_findings(&r, "a.example.net", 1, collect, &e);
    assert_int_equal(e.n, 0);

    memset(&e, 0, sizeof e);
    sts_mx_findings(&r, "MAIL.example.com.", 0, collect, &e);
    assert_int_equal(e.n, 1);
    assert_string_equal(e.code[0], "sts.mx.cert");

    memset(&e, 0, sizeof e);
    sts_mx_findings(&r, "mail.example.com", -1, collect, &e);
    assert_int_equal(e.n, 0);

    /* A mismatched MX is a mismatch, whatever its certificate. */
    memset(&e, 0, sizeof e);
    sts_mx_findings(&r, "a.b.example.net", 0, collect, &e);
    assert_int_equal(e.n, 1);
    assert_string_equal(e.code[0], "sts.mx.mismatch");
    sts_policy_clear(&r.policy);

    result_with_policy(&r, "version: STSv1\nmode: testing\nmx: a.example\nmax_age: 1\n");
    memset(&e, 0, sizeof e);
    sts_mx_findings(&r, "b.example", 1, collect, &e);
    assert_int_equal(e.n, 1);
    assert_string_equal(e.code[0], "sts.mx.mismatch");
    sts_policy_clear(&r.policy);

    result_with_policy(&r, "version: STSv1\nmode: none\nmax_age: 1\n");
    memset(&e, 0, sizeof e);
    sts_mx_findings(&r, "b.example", 0, collect, &e);
    assert_int_equal(e.n, 0);
    sts_policy_clear(&r.policy);

    result_with_policy(&r, "version: STSv1\nmode: enforce\nmax_age: 1\n");
    memset(&e, 0, sizeof e);
    sts_mx_findings(&r, "b.example", 0, collect, &e);
    assert_int_equal(e.n, 0);
    sts_policy_clear(&r.policy);
}

/* ==== end to end ========================================================= */

#define HTTPS_IP "127.60.0.1"
#define DNS_IP   "127.60.0.2"

/* Domains the HTTPS server's certificate names (as mta-sts.<d>). */
static const char *https_domains[] = {
    "good.test",  "testing.test",   "notfound.test", "redirect.test", "big.test",
    "bigcl.test", "badpolicy.test", "multi.test",    "single.test",   "forget.test",
    "gate1.test", "gate2.test",     "cbfree1.test",  "cbfree2.test"};

/* What the fixture started. */
static struct fixture {
    char dir[256];
    pid_t server;
    int https_port, tarpit_port, closed_port, dns_port;
    int tarpit_fd, dns_fd;
    pthread_t dns_thread;
    volatile int dns_stop;
    pthread_mutex_t lock;
    int txt_queries_single, txt_queries_forget;
} fx;

/* ---- DNS responder ------------------------------------------------------ */

/* Appends a big-endian 16-bit value. */
static void put16(uint8_t *b, size_t *o, unsigned v)
{
    b[(*o)++] = (uint8_t)(v >> 8);
    b[(*o)++] = (uint8_t)v;
}

/* Appends one answer record whose owner is the question name (pointer 0xc00c). */
static void put_rr(uint8_t *b, size_t *o, int type, const uint8_t *rd, size_t rdlen)
{
    put16(b, o, 0xc00c);
    put16(b, o, (unsigned)type);
    put16(b, o, 1);
    put16(b, o, 0);
    put16(b, o, 60);
    put16(b, o, (unsigned)rdlen);
    memcpy(b + *o, rd, rdlen);
    *o += rdlen;
}

/* Appends a TXT record made of up to 3 character-strings. */
static void put_txt(uint8_t *b, size_t *o, const char *s1, const char *s2, const char *s3)
{
    uint8_t rd[600];
    size_t n = 0;
    const char *parts[3] = {s1, s2, s3};
    for (int i = 0; i < 3 && parts[i]; i++) {
        size_t l = strlen(parts[i]);
        rd[n++] = (uint8_t)l;
        memcpy(rd + n, parts[i], l);
        n += l;
    }
    put_rr(b, o, 16, rd, n);
}

/* Answers one query from the table in the file comment. */
static size_t dns_answer(const uint8_t *q, size_t qlen, uint8_t *out)
{
    if (qlen < 17) {
        return 0;
    }
    char name[256];
    size_t off = 12, nl = 0;
    while (off < qlen && q[off] != 0) {
        size_t l = q[off++];
        if (l > 63 || off + l > qlen || nl + l + 2 > sizeof name) {
            return 0;
        }
        if (nl) {
            name[nl++] = '.';
        }
        for (size_t i = 0; i < l; i++) {
            char c = (char)q[off + i];
            name[nl++] = (char)(c >= 'A' && c <= 'Z' ? c + 32 : c);
        }
        off += l;
    }
    name[nl] = 0;
    off++;
    if (off + 4 > qlen) {
        return 0;
    }
    int qtype = q[off] << 8 | q[off + 1];
    off += 4;
    size_t o = 0;
    memcpy(out, q, 2);
    o = 2;
    int rcode = 0;
    size_t an_at = 6;
    memcpy(out + 12, q + 12, off - 12);
    o = off;
    int an = 0;
    if (strncmp(name, "_mta-sts.", 9) == 0 && qtype == 16) {
        const char *d = name + 9;
        pthread_mutex_lock(&fx.lock);
        fx.txt_queries_single += strcmp(d, "single.test") == 0;
        fx.txt_queries_forget += strcmp(d, "forget.test") == 0;
        pthread_mutex_unlock(&fx.lock);
        if (strcmp(d, "none.test") == 0) {
            rcode = 3;
        } else if (strcmp(d, "servfail.test") == 0) {
            rcode = 2;
        } else if (strcmp(d, "spfonly.test") == 0) {
            put_txt(out, &o, "v=spf1 -all", NULL, NULL);
            an = 1;
        } else if (strcmp(d, "badtxt.test") == 0) {
            put_txt(out, &o, "v=STSv1; id=2024-01-01", NULL, NULL);
            an = 1;
        } else if (strcmp(d, "twice.test") == 0) {
            put_txt(out, &o, "v=STSv1; id=1", NULL, NULL);
            put_txt(out, &o, "v=STSv1; id=2", NULL, NULL);
            an = 2;
        } else if (strcmp(d, "multi.test") == 0) {
            /* One record of two character-strings, which dns.c joins. */
            put_txt(out, &o, "v=spf1 -all", NULL, NULL);
            put_txt(out, &o, "v=STSv1; ", "id=abc123;", NULL);
            an = 2;
        } else {
            put_txt(out, &o, "v=STSv1; id=20240101T000000;", NULL, NULL);
            put_txt(out, &o, "v=spf1 -all", NULL, NULL);
            an = 2;
        }
    } else if (strncmp(name, "mta-sts.", 8) == 0 && (qtype == 1 || qtype == 28)) {
        const char *d = name + 8;
        if (strcmp(d, "noaddr.test") == 0) {
            rcode = 3;
        } else if (strcmp(d, "v6only.test") == 0) {
            if (qtype == 28) {
                static const uint8_t lo6[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
                put_rr(out, &o, 28, lo6, 16);
                an = 1;
            }
        } else if (qtype == 1) {
            static const uint8_t ip4[4] = {127, 60, 0, 1};
            put_rr(out, &o, 1, ip4, 4);
            an = 1;
        }
    } else {
        rcode = 3;
    }
    out[2] = 0x81;                    /* QR, RD */
    out[3] = (uint8_t)(0x80 | rcode); /* RA */
    out[4] = 0;
    out[5] = 1;
    out[an_at] = 0;
    out[an_at + 1] = (uint8_t)an;
    memset(out + 8, 0, 4);
    return o;
}

/* The responder thread: one datagram in, one out, until told to stop. */
static void *dns_main(void *arg)
{
    (void)arg;
    uint8_t q[1500], a[4096];
    while (!fx.dns_stop) {
        struct pollfd p = {.fd = fx.dns_fd, .events = POLLIN};
        if (poll(&p, 1, 100) <= 0) {
            continue;
        }
        struct sockaddr_storage from;
        socklen_t fl = sizeof from;
        ssize_t n = recvfrom(fx.dns_fd, q, sizeof q, 0, (struct sockaddr *)&from, &fl);
        if (n <= 0) {
            continue;
        }
        size_t al = dns_answer(q, (size_t)n, a);
        if (al > 0) {
            sendto(fx.dns_fd, a, al, 0, (struct sockaddr *)&from, fl);
        }
    }
    return NULL;
}

/* ---- fixture ------------------------------------------------------------ */

/* A socket of type bound to ip on an ephemeral port; the port goes to *port. */
static int bind_ephemeral(int type, const char *ip, int *port)
{
    int fd = socket(AF_INET, type, 0);
    if (fd < 0) {
        return -1;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    inet_pton(AF_INET, ip, &sa.sin_addr);
    socklen_t sl = sizeof sa;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) < 0) {
        close(fd);
        return -1;
    }
    *port = ntohs(sa.sin_port);
    return fd;
}

/* Runs a shell command in the fixture directory; 0 on success. */
static int sh(const char *fmt, ...)
{
    char cmd[4096];
    int n = snprintf(cmd, sizeof cmd, "cd '%s' && ", fx.dir);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd + n, sizeof cmd - (size_t)n, fmt, ap);
    va_end(ap);
    int r = system(cmd);
    if (r != 0) {
        fprintf(stderr, "fixture command failed (%d): %s\n", r, cmd);
    }
    return r;
}

/* The HTTPS server: routes by Host, certificates by SNI (see the file comment). */
static const char server_py[] =
    "import http.server, os, ssl, sys\n"
    "d, ip = sys.argv[1], sys.argv[2]\n"
    "def ctx(name):\n"
    "    c = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)\n"
    "    c.load_cert_chain(os.path.join(d, name + '.pem'), os.path.join(d, name + '.key'))\n"
    "    return c\n"
    "main, selfsigned, wrong = ctx('srv'), ctx('self'), ctx('wrong')\n"
    "def sni(sock, name, _):\n"
    "    if name == 'mta-sts.selfsigned.test': sock.context = selfsigned\n"
    "    elif name == 'mta-sts.wrongname.test': sock.context = wrong\n"
    "main.sni_callback = sni\n"
    "GOOD = b'version: STSv1\\r\\nmode: enforce\\r\\nmx: mx1.good.test\\r\\n' \\\n"
    "       b'mx: *.mx.good.test\\r\\nmax_age: 604800\\r\\n'\n"
    "TESTING = b'version: STSv1\\nmode: testing\\nmx: *.testing.test\\nmax_age: 86400\\n'\n"
    "BAD = b'version: STSv1\\nmode: enforce\\nmax_age: 86400\\n'\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def log_message(self, *a): pass\n"
    "    def body(self, code, data, length=True):\n"
    "        self.send_response(code)\n"
    "        self.send_header('Content-Type', 'text/plain')\n"
    "        if length: self.send_header('Content-Length', str(len(data)))\n"
    "        self.end_headers()\n"
    "        self.wfile.write(data)\n"
    "    def do_GET(self):\n"
    "        host = (self.headers.get('Host') or '').split(':')[0]\n"
    "        dom = host[8:] if host.startswith('mta-sts.') else host\n"
    "        if self.path != '/.well-known/mta-sts.txt' or dom == 'notfound.test':\n"
    "            return self.body(404, b'<html>not found</html>')\n"
    "        if dom == 'redirect.test':\n"
    "            self.send_response(301)\n"
    "            self.send_header('Location', "
    "'https://elsewhere.test/.well-known/mta-sts.txt')\n"
    "            self.send_header('Content-Length', '0')\n"
    "            return self.end_headers()\n"
    "        if dom == 'big.test': return self.body(200, b'x' * 102400, False)\n"
    "        if dom == 'bigcl.test': return self.body(200, b'x' * 102400)\n"
    "        if dom == 'badpolicy.test': return self.body(200, BAD)\n"
    "        if dom == 'testing.test': return self.body(200, TESTING)\n"
    "        return self.body(200, GOOD)\n"
    "class S(http.server.ThreadingHTTPServer):\n"
    "    daemon_threads = True\n"
    "    def finish_request(self, request, addr):\n"
    "        try:\n"
    "            s = main.wrap_socket(request, server_side=True)\n"
    "        except (ssl.SSLError, OSError):\n"
    "            return\n"
    "        try:\n"
    "            self.RequestHandlerClass(s, addr, self)\n"
    "        except OSError:\n"
    "            pass\n"
    "        finally:\n"
    "            s.close()\n"
    "srv = S((ip, 0), H)\n"
    "with open(os.path.join(d, 'port.tmp'), 'w') as f: f.write(str(srv.server_address[1]))\n"
    "os.rename(os.path.join(d, 'port.tmp'), os.path.join(d, 'port'))\n"
    "srv.serve_forever()\n";

/* Makes the CA, the server certificate for every https_domains name, a CA-signed one for
 * another name, and a self-signed one. */
static int make_certs(void)
{
    char san[2048] = "subjectAltName=";
    size_t o = strlen(san);
    for (size_t i = 0; i < sizeof https_domains / sizeof *https_domains; i++) {
        o += (size_t)snprintf(san + o, sizeof san - o, "%sDNS:mta-sts.%s", i ? "," : "",
                              https_domains[i]);
    }
    const char *key = "-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes";
    if (sh("openssl req -x509 %s -keyout ca.key -out ca.pem -days 2 -subj /CN=mxscan-sts-test-ca "
           "-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign "
           ">/dev/null 2>&1",
           key) ||
        sh("printf '%%s\\nbasicConstraints=CA:FALSE\\nextendedKeyUsage=serverAuth\\n' '%s' "
           ">srv.ext && printf 'subjectAltName=DNS:other.test\\n' >wrong.ext",
           san) ||
        sh("openssl req %s -keyout srv.key -out srv.csr -subj /CN=mta-sts.good.test "
           ">/dev/null 2>&1 && openssl x509 -req -in srv.csr -CA ca.pem -CAkey ca.key "
           "-CAcreateserial -days 2 -extfile srv.ext -out srv.pem >/dev/null 2>&1",
           key) ||
        sh("openssl req %s -keyout wrong.key -out wrong.csr -subj /CN=other.test >/dev/null 2>&1 "
           "&& openssl x509 -req -in wrong.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 "
           "-extfile wrong.ext -out wrong.pem >/dev/null 2>&1",
           key) ||
        sh("openssl req -x509 %s -keyout self.key -out self.pem -days 2 "
           "-subj /CN=mta-sts.selfsigned.test -addext "
           "subjectAltName=DNS:mta-sts.selfsigned.test >/dev/null 2>&1",
           key)) {
        return -1;
    }
    return 0;
}

/* Starts the Python server and waits (10 s at most) for the port it chose. */
static int start_server(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/server.py", fx.dir);
    FILE *f = fopen(path, "w");
    if (!f) {
        return -1;
    }
    fputs(server_py, f);
    fclose(f);
    fx.server = fork();
    if (fx.server < 0) {
        return -1;
    }
    if (fx.server == 0) {
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive a crashed test */
        execlp("python3", "python3", path, fx.dir, HTTPS_IP, (char *)NULL);
        _exit(127);
    }
    snprintf(path, sizeof path, "%s/port", fx.dir);
    for (int i = 0; i < 200; i++) {
        f = fopen(path, "r");
        if (f) {
            int ok = fscanf(f, "%d", &fx.https_port) == 1;
            fclose(f);
            if (ok) {
                return 0;
            }
        }
        int st;
        if (waitpid(fx.server, &st, WNOHANG) == fx.server) {
            fx.server = 0;
            return -1;
        }
        usleep(50000);
    }
    return -1;
}

/* Group setup: certificates, servers, listeners, resolver. */
static int fixture_up(void **state)
{
    (void)state;
    memset(&fx, 0, sizeof fx);
    fx.tarpit_fd = fx.dns_fd = -1;
    pthread_mutex_init(&fx.lock, NULL);
    snprintf(fx.dir, sizeof fx.dir, "%s/mxscan-sts-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(fx.dir) || make_certs() < 0 || start_server() < 0) {
        fprintf(stderr,
                "test_mtasts: cannot start the HTTPS fixture (python3 and openssl needed)\n");
        return -1;
    }
    fx.tarpit_fd = bind_ephemeral(SOCK_STREAM, HTTPS_IP, &fx.tarpit_port);
    if (fx.tarpit_fd < 0 || listen(fx.tarpit_fd, 16) < 0) {
        return -1;
    }
    int fd = bind_ephemeral(SOCK_STREAM, HTTPS_IP, &fx.closed_port);
    if (fd < 0) {
        return -1;
    }
    close(fd); /* bound once, never listened on: connections are refused */
    fx.dns_fd = bind_ephemeral(SOCK_DGRAM, DNS_IP, &fx.dns_port);
    if (fx.dns_fd < 0 || pthread_create(&fx.dns_thread, NULL, dns_main, NULL) != 0) {
        return -1;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return 0;
}

/* Group teardown: stops everything fixture_up started and removes the directory. */
static int fixture_down(void **state)
{
    (void)state;
    if (fx.dns_fd >= 0) {
        fx.dns_stop = 1;
        pthread_join(fx.dns_thread, NULL);
        close(fx.dns_fd);
    }
    if (fx.tarpit_fd >= 0) {
        close(fx.tarpit_fd);
    }
    if (fx.server > 0) {
        kill(fx.server, SIGTERM);
        waitpid(fx.server, NULL, 0);
    }
    if (fx.dir[0]) {
        sh("cd / && rm -rf '%s'", fx.dir);
    }
    pthread_mutex_destroy(&fx.lock);
    curl_global_cleanup();
    return 0;
}

/* ---- one loop, one checker -------------------------------------------- */

/* What a callback saw, copied out of the result (valid during the call only). */
typedef struct got {
    int calls;
    int during_check; /* the callback ran inside sts_check */
    const sts_result_t *ptr;
    int cancelled;
    dns_status_t txt_status;
    sts_txt_status_t txt;
    char txt_id[STS_ID_MAX + 1];
    char txt_joined[256];
    sts_fetch_status_t fetch;
    char fetch_error[STS_ERROR_MAX], fetch_ip[46];
    long http;
    int webpki, policy_valid;
    char policy_error[256];
    sts_mode_t mode;
    int nmx;
    long max_age;
    char mx0[64];
    size_t body_len;
    char codes[256]; /* sts_findings codes, comma-joined */
} got_t;

typedef struct run {
    uv_loop_t loop;
    uv_timer_t watchdog, later;
    dns_t *dns;
    rl_t *rl;
    sts_t *sts;
    int in_check;
    int fired;
    void (*later_fn)(struct run *);
    sts_t *free_in_cb; /* sts_free() from inside the callback of got[0] */
} run_t;

static run_t *cur;

/* Appends finding codes to a got_t. */
static void add_code(void *ctx, const char *code, const char *detail)
{
    got_t *g = ctx;
    (void)detail;
    assert_non_null(verdict_lookup(code));
    size_t n = strlen(g->codes);
    snprintf(g->codes + n, sizeof g->codes - n, "%s%s", n ? "," : "", code);
}

/* The sts_cb of the tests: copies what the result says. */
static void got_cb(void *arg, const sts_result_t *r)
{
    got_t *g = arg;
    g->calls++;
    g->during_check |= cur->in_check;
    g->ptr = r;
    g->cancelled = r->cancelled;
    g->txt_status = r->txt_status;
    g->txt = r->txt_parsed.status;
    snprintf(g->txt_id, sizeof g->txt_id, "%s", r->txt_parsed.id);
    snprintf(g->txt_joined, sizeof g->txt_joined, "%s", r->txt ? r->txt : "");
    g->fetch = r->fetch_status;
    snprintf(g->fetch_error, sizeof g->fetch_error, "%s", r->fetch_error);
    snprintf(g->fetch_ip, sizeof g->fetch_ip, "%s", r->fetch_ip);
    g->http = r->http_status;
    g->webpki = r->webpki_valid;
    g->policy_valid = r->policy_valid;
    snprintf(g->policy_error, sizeof g->policy_error, "%s", r->policy_error);
    g->mode = r->policy.mode;
    g->nmx = r->policy.nmx;
    g->max_age = r->policy.max_age;
    snprintf(g->mx0, sizeof g->mx0, "%s", r->policy.nmx ? r->policy.mx[0] : "");
    g->body_len = r->body_len;
    g->codes[0] = 0;
    sts_findings(r, add_code, g);
    if (cur->free_in_cb) {
        sts_t *s = cur->free_in_cb;
        cur->free_in_cb = NULL;
        sts_free(s);
        cur->sts = NULL;
    }
}

/* The loop ran far too long: a check never called back. */
static void watchdog_cb(uv_timer_t *t)
{
    run_t *r = t->data;
    r->fired = 1;
    uv_stop(&r->loop);
}

/* Runs the test's delayed action. */
static void later_cb(uv_timer_t *t)
{
    run_t *r = t->data;
    r->later_fn(r);
}

/* A loop with a resolver on the fixture's DNS, a gate, and a checker on port. */
static run_t *run_open(int port, int timeout_ms, int forget_done, int concurrency)
{
    run_t *r = calloc(1, sizeof *r);
    assert_non_null(r);
    cur = r;
    assert_int_equal(uv_loop_init(&r->loop), 0);
    char servers[64], err[256];
    snprintf(servers, sizeof servers, DNS_IP ":%d", fx.dns_port);
    r->dns = dns_new(&r->loop, servers, 2000, 2, err, sizeof err);
    assert_non_null(r->dns);
    rl_limits_t lim = {.concurrency = concurrency, .per_ip = concurrency, .rate = 0};
    r->rl = rl_new(&r->loop, &lim);
    assert_non_null(r->rl);
    char ca[300];
    snprintf(ca, sizeof ca, "%s/ca.pem", fx.dir);
    sts_opts_t o = {.port = port,
                    .timeout_ms = timeout_ms,
                    .max_body = 0,
                    .ca_file = ca,
                    .forget_done = forget_done};
    r->sts = sts_new(&r->loop, r->dns, r->rl, &o, err, sizeof err);
    assert_non_null(r->sts);
    uv_timer_init(&r->loop, &r->watchdog);
    r->watchdog.data = r;
    uv_timer_start(&r->watchdog, watchdog_cb, 30000, 0);
    uv_unref((uv_handle_t *)&r->watchdog); /* only fires if the loop stays busy */
    uv_timer_init(&r->loop, &r->later);
    r->later.data = r;
    return r;
}

/* Starts a check with in_check set around the call. */
static int check(run_t *r, const char *domain, got_t *g)
{
    r->in_check = 1;
    int rc = sts_check(r->sts, domain, got_cb, g);
    r->in_check = 0;
    return rc;
}

/* Runs the loop until everything in flight is done; fails on the watchdog. */
static void run_loop(run_t *r)
{
    uv_run(&r->loop, UV_RUN_DEFAULT);
    assert_int_equal(r->fired, 0);
}

/* Frees everything in the order a scan would, and checks the loop closes clean. */
static void run_close(run_t *r)
{
    if (r->sts) {
        sts_free(r->sts);
    }
    dns_free(r->dns);
    rl_cancel_all(r->rl);
    rl_free(r->rl);
    uv_close((uv_handle_t *)&r->watchdog, NULL);
    uv_close((uv_handle_t *)&r->later, NULL);
    uv_run(&r->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&r->loop), 0);
    free(r);
    cur = NULL;
}

/* Checks one domain on the main HTTPS port and returns what came back. */
static got_t check_one(const char *domain)
{
    got_t g;
    memset(&g, 0, sizeof g);
    run_t *r = run_open(fx.https_port, 5000, 0, 4);
    assert_int_equal(check(r, domain, &g), 0);
    run_loop(r);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.during_check, 0);
    assert_int_equal(sts_pending(r->sts), 0);
    assert_int_equal(rl_inflight(r->rl), 0);
    run_close(r);
    return g;
}

/* 200 with a valid enforce policy: TXT valid, fetched over PKIX-valid TLS, parsed. */
static void test_e2e_ok(void **state)
{
    (void)state;
    got_t g = check_one("good.test");
    assert_int_equal(g.cancelled, 0);
    assert_int_equal(g.txt_status, DNS_NOERROR);
    assert_int_equal(g.txt, STS_TXT_VALID);
    assert_string_equal(g.txt_id, "20240101T000000");
    assert_string_equal(g.txt_joined, "v=STSv1; id=20240101T000000;");
    assert_int_equal(g.fetch, STS_FETCH_OK);
    assert_string_equal(g.fetch_ip, HTTPS_IP);
    assert_int_equal(g.http, 200);
    assert_int_equal(g.webpki, 1);
    assert_int_equal(g.policy_valid, 1);
    assert_int_equal(g.mode, STS_MODE_ENFORCE);
    assert_int_equal(g.nmx, 2);
    assert_string_equal(g.mx0, "mx1.good.test");
    assert_int_equal(g.max_age, 604800);
    assert_true(g.body_len > 60);
    assert_string_equal(g.codes, "");
}

/* A testing policy is fetched and reported as sts.mode.testing. */
static void test_e2e_testing(void **state)
{
    (void)state;
    got_t g = check_one("Testing.TEST.");
    assert_int_equal(g.fetch, STS_FETCH_OK);
    assert_int_equal(g.mode, STS_MODE_TESTING);
    assert_string_equal(g.codes, "sts.mode.testing");
}

/* A record split over two character-strings is joined, among other TXT records. */
static void test_e2e_txt_joined(void **state)
{
    (void)state;
    got_t g = check_one("multi.test");
    assert_int_equal(g.txt, STS_TXT_VALID);
    assert_string_equal(g.txt_id, "abc123");
    assert_string_equal(g.txt_joined, "v=STSv1; id=abc123;");
    assert_int_equal(g.fetch, STS_FETCH_OK);
}

/* A 404 is an http failure: TLS was fine (webpki 1), no body kept. */
static void test_e2e_404(void **state)
{
    (void)state;
    got_t g = check_one("notfound.test");
    assert_int_equal(g.fetch, STS_FETCH_HTTP);
    assert_int_equal(g.http, 404);
    assert_int_equal(g.webpki, 1);
    assert_int_equal(g.policy_valid, -1);
    assert_int_equal(g.body_len, 0);
    assert_string_equal(g.fetch_error, "HTTP 404");
    assert_string_equal(g.codes, "sts.fetch.failed");
}

/* A 301 is not followed (RFC 8461 3.3): a redirect failure naming the target. */
static void test_e2e_redirect(void **state)
{
    (void)state;
    got_t g = check_one("redirect.test");
    assert_int_equal(g.fetch, STS_FETCH_REDIRECT);
    assert_int_equal(g.http, 301);
    assert_non_null(strstr(g.fetch_error, "https://elsewhere.test/"));
    assert_string_equal(g.codes, "sts.fetch.failed");
}

/* A self-signed certificate fails PKIX: webpki, webpki_valid 0, curl's text verbatim. */
static void test_e2e_self_signed(void **state)
{
    (void)state;
    got_t g = check_one("selfsigned.test");
    assert_int_equal(g.fetch, STS_FETCH_WEBPKI);
    assert_int_equal(g.webpki, 0);
    assert_int_equal(g.http, 0);
    assert_non_null(strstr(g.fetch_error, "certificate"));
    assert_string_equal(g.codes, "sts.webpki.invalid");
}

/* A CA-signed certificate for another name fails too (the name is part of PKIX). */
static void test_e2e_wrong_name(void **state)
{
    (void)state;
    got_t g = check_one("wrongname.test");
    assert_int_equal(g.fetch, STS_FETCH_WEBPKI);
    assert_int_equal(g.webpki, 0);
    assert_string_equal(g.codes, "sts.webpki.invalid");
}

/* A body past the 64 KiB cap without Content-Length is cut in the write callback: size. */
static void test_e2e_size_streamed(void **state)
{
    (void)state;
    got_t g = check_one("big.test");
    assert_int_equal(g.fetch, STS_FETCH_SIZE);
    assert_non_null(strstr(g.fetch_error, "larger than 65536"));
    assert_int_equal(g.body_len, 0);
    assert_string_equal(g.codes, "sts.fetch.failed");
}

/* A Content-Length past the cap is refused before the body: size too. */
static void test_e2e_size_declared(void **state)
{
    (void)state;
    got_t g = check_one("bigcl.test");
    assert_int_equal(g.fetch, STS_FETCH_SIZE);
}

/* A fetched but malformed policy: policy_valid 0 with the parser's reason. */
static void test_e2e_bad_policy(void **state)
{
    (void)state;
    got_t g = check_one("badpolicy.test");
    assert_int_equal(g.fetch, STS_FETCH_OK);
    assert_int_equal(g.policy_valid, 0);
    assert_non_null(strstr(g.policy_error, "no mx"));
    assert_string_equal(g.codes, "sts.policy.invalid");
}

/* No TXT (NXDOMAIN), only SPF, a bad id, two records, SERVFAIL: no fetch is tried. */
static void test_e2e_txt_outcomes(void **state)
{
    (void)state;
    got_t g = check_one("none.test");
    assert_int_equal(g.txt_status, DNS_NXDOMAIN);
    assert_int_equal(g.txt, STS_TXT_NONE);
    assert_int_equal(g.fetch, STS_FETCH_NONE);
    assert_string_equal(g.codes, "sts.none");
    g = check_one("spfonly.test");
    assert_int_equal(g.txt_status, DNS_NOERROR);
    assert_int_equal(g.txt, STS_TXT_NONE);
    assert_string_equal(g.codes, "sts.none");
    g = check_one("badtxt.test");
    assert_int_equal(g.txt, STS_TXT_INVALID);
    assert_int_equal(g.fetch, STS_FETCH_NONE);
    assert_string_equal(g.codes, "sts.txt.invalid");
    g = check_one("twice.test");
    assert_int_equal(g.txt, STS_TXT_INVALID);
    assert_string_equal(g.txt_joined, "v=STSv1; id=1\nv=STSv1; id=2");
    g = check_one("servfail.test");
    assert_int_equal(g.txt_status, DNS_SERVFAIL);
    assert_string_equal(g.codes, "dns.error");
}

/* mta-sts.<domain> without A or AAAA: a dns fetch failure naming both lookups. */
static void test_e2e_no_address(void **state)
{
    (void)state;
    got_t g = check_one("noaddr.test");
    assert_int_equal(g.fetch, STS_FETCH_DNS);
    assert_non_null(strstr(g.fetch_error, "A NXDOMAIN, AAAA NXDOMAIN"));
    assert_string_equal(g.codes, "sts.fetch.failed");
}

/* With no A record the AAAA is used (::1 here; nothing listens there: connect). */
static void test_e2e_aaaa_fallback(void **state)
{
    (void)state;
    got_t g;
    memset(&g, 0, sizeof g);
    run_t *r = run_open(fx.closed_port, 3000, 0, 4);
    assert_int_equal(check(r, "v6only.test", &g), 0);
    run_loop(r);
    run_close(r);
    assert_int_equal(g.calls, 1);
    assert_string_equal(g.fetch_ip, "::1");
    assert_int_equal(g.fetch, STS_FETCH_CONNECT);
}

/* A server that accepts and never answers ends at the deadline: timeout. */
static void test_e2e_timeout(void **state)
{
    (void)state;
    got_t g;
    memset(&g, 0, sizeof g);
    run_t *r = run_open(fx.tarpit_port, 400, 0, 4);
    uint64_t t0 = uv_now(&r->loop);
    assert_int_equal(check(r, "good.test", &g), 0);
    run_loop(r);
    uint64_t took = uv_now(&r->loop) - t0;
    run_close(r);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.fetch, STS_FETCH_TIMEOUT);
    assert_int_equal(g.webpki, -1);
    assert_true(took >= 350 && took < 5000);
    assert_non_null(strstr(g.fetch_error, "timed out"));
    assert_string_equal(g.codes, "sts.fetch.failed");
}

/* No listener: connect, with curl's error text. */
static void test_e2e_connect_refused(void **state)
{
    (void)state;
    got_t g;
    memset(&g, 0, sizeof g);
    run_t *r = run_open(fx.closed_port, 3000, 0, 4);
    assert_int_equal(check(r, "good.test", &g), 0);
    run_loop(r);
    run_close(r);
    assert_int_equal(g.fetch, STS_FETCH_CONNECT);
    assert_int_equal(g.webpki, -1);
    assert_true(g.fetch_error[0] != 0);
}

/* Single flight: three asks for one domain (case, trailing dot) make one lookup and share one
 * result; a later ask is answered from the cache, from the loop, with no new lookup. */
static void test_e2e_single_flight(void **state)
{
    (void)state;
    got_t g[4];
    memset(g, 0, sizeof g);
    pthread_mutex_lock(&fx.lock);
    fx.txt_queries_single = 0;
    pthread_mutex_unlock(&fx.lock);
    run_t *r = run_open(fx.https_port, 5000, 0, 4);
    assert_int_equal(check(r, "single.test", &g[0]), 0);
    assert_int_equal(check(r, "SINGLE.test.", &g[1]), 0);
    assert_int_equal(check(r, "single.TEST", &g[2]), 0);
    assert_int_equal(sts_pending(r->sts), 1);
    run_loop(r);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(g[i].calls, 1);
        assert_int_equal(g[i].fetch, STS_FETCH_OK);
        assert_ptr_equal(g[i].ptr, g[0].ptr);
    }
    assert_int_equal(check(r, "single.test", &g[3]), 0);
    assert_int_equal(g[3].calls, 0); /* not under sts_check */
    run_loop(r);
    assert_int_equal(g[3].calls, 1);
    assert_int_equal(g[3].during_check, 0);
    assert_ptr_equal(g[3].ptr, g[0].ptr);
    run_close(r);
    pthread_mutex_lock(&fx.lock);
    assert_int_equal(fx.txt_queries_single, 1);
    pthread_mutex_unlock(&fx.lock);
}

/* forget_done: a finished result is not kept, so asking again looks up again. */
static void test_e2e_forget_done(void **state)
{
    (void)state;
    got_t g[2];
    memset(g, 0, sizeof g);
    pthread_mutex_lock(&fx.lock);
    fx.txt_queries_forget = 0;
    pthread_mutex_unlock(&fx.lock);
    run_t *r = run_open(fx.https_port, 5000, 1, 4);
    assert_int_equal(check(r, "forget.test", &g[0]), 0);
    run_loop(r);
    assert_int_equal(check(r, "forget.test", &g[1]), 0);
    run_loop(r);
    run_close(r);
    assert_int_equal(g[0].fetch, STS_FETCH_OK);
    assert_int_equal(g[1].fetch, STS_FETCH_OK);
    pthread_mutex_lock(&fx.lock);
    assert_int_equal(fx.txt_queries_forget, 2);
    pthread_mutex_unlock(&fx.lock);
}

/* Names that cannot be put in a DNS query or a URL are refused at once. */
static void test_e2e_bad_names(void **state)
{
    (void)state;
    got_t g;
    memset(&g, 0, sizeof g);
    run_t *r = run_open(fx.https_port, 5000, 0, 4);
    static const char *bad[] = {
        "",    ".",  "a..b",        "a/b.test", "user@good.test", "good.test:443",
        "a b", "..", "xn--%41.test"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        assert_int_equal(check(r, bad[i], &g), -1);
    }
    char longname[300];
    memset(longname, 'a', sizeof longname);
    for (int i = 60; i < 299; i += 61) {
        longname[i] = '.';
    }
    longname[299] = 0;
    assert_int_equal(check(r, longname, &g), -1);
    run_loop(r);
    run_close(r);
    assert_int_equal(g.calls, 0);
}

/* Two domains through a gate of one slot: both complete, and every slot comes back. */
static void test_e2e_gate_serializes(void **state)
{
    (void)state;
    got_t g[2];
    memset(g, 0, sizeof g);
    run_t *r = run_open(fx.https_port, 5000, 0, 1);
    assert_int_equal(check(r, "gate1.test", &g[0]), 0);
    assert_int_equal(check(r, "gate2.test", &g[1]), 0);
    run_loop(r);
    assert_int_equal(g[0].fetch, STS_FETCH_OK);
    assert_int_equal(g[1].fetch, STS_FETCH_OK);
    assert_int_equal(rl_inflight(r->rl), 0);
    assert_int_equal(rl_waiting(r->rl), 0);
    run_close(r);
}

/* Frees the checker from a timer, as a scan's shutdown would. */
static void free_later(run_t *r)
{
    sts_free(r->sts);
    r->sts = NULL;
}

/* sts_free during a fetch to a tarpit: the callback runs once, cancelled, and the loop
 * closes clean (the transfer and its socket are gone). */
static void test_e2e_cancel_fetch(void **state)
{
    (void)state;
    got_t g;
    memset(&g, 0, sizeof g);
    run_t *r = run_open(fx.tarpit_port, 20000, 0, 4);
    assert_int_equal(check(r, "good.test", &g), 0);
    r->later_fn = free_later;
    uv_timer_start(&r->later, later_cb, 300, 0);
    run_loop(r);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.cancelled, 1);
    assert_string_equal(g.codes, "");
    assert_int_equal(rl_inflight(r->rl), 0);
    run_close(r);
}

/* A request that holds the gate's only slot until released. */
static rl_req_t blocker;
static int blocker_granted;

/* Grant of the blocking request. */
static void blocker_cb(rl_req_t *req, int cancelled)
{
    (void)req;
    blocker_granted = !cancelled;
}

/* Releases the blocker after the checker is gone: the gate then grants the orphaned check. */
static void release_blocker(run_t *r)
{
    sts_free(r->sts);
    r->sts = NULL;
    rl_release(r->rl, &blocker);
}

/* sts_free while a check waits at the gate: cancelled at once, and the entry is freed when the
 * gate grants it later (no leak, no use after free, the slot is given back). */
static void test_e2e_cancel_at_gate(void **state)
{
    (void)state;
    got_t g;
    memset(&g, 0, sizeof g);
    run_t *r = run_open(fx.https_port, 5000, 0, 1);
    blocker_granted = 0;
    rl_acquire(r->rl, &blocker, HTTPS_IP, blocker_cb);
    assert_int_equal(blocker_granted, 1);
    assert_int_equal(check(r, "good.test", &g), 0);
    r->later_fn = release_blocker;
    uv_timer_start(&r->later, later_cb, 500, 0);
    run_loop(r);
    assert_int_equal(g.calls, 1);
    assert_int_equal(g.cancelled, 1);
    assert_int_equal(rl_inflight(r->rl), 0);
    assert_int_equal(rl_waiting(r->rl), 0);
    run_close(r);
}

/* sts_free from inside a callback: the checker's other check, still in flight (a fetch to the
 * tarpit), is told once, cancelled, and the loop closes clean. */
static void test_e2e_free_in_callback(void **state)
{
    (void)state;
    got_t g[2];
    memset(g, 0, sizeof g);
    run_t *r = run_open(fx.tarpit_port, 20000, 0, 4);
    assert_int_equal(check(r, "none.test", &g[0]), 0); /* ends after one lookup */
    assert_int_equal(check(r, "cbfree1.test", &g[1]), 0);
    r->free_in_cb = r->sts;
    run_loop(r);
    assert_null(r->sts);
    assert_int_equal(g[0].calls, 1);
    assert_int_equal(g[0].cancelled, 0);
    assert_string_equal(g[0].codes, "sts.none");
    assert_int_equal(g[1].calls, 1);
    assert_int_equal(g[1].cancelled, 1);
    assert_int_equal(rl_inflight(r->rl), 0);
    run_close(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_txt_rfc_example),
        cmocka_unit_test(test_txt_delimiters),
        cmocka_unit_test(test_txt_extensions),
        cmocka_unit_test(test_txt_none),
        cmocka_unit_test(test_txt_several),
        cmocka_unit_test(test_txt_id_rules),
        cmocka_unit_test(test_txt_missing_delimiter),
        cmocka_unit_test(test_policy_rfc_example),
        cmocka_unit_test(test_policy_provider_and_no_final_newline),
        cmocka_unit_test(test_policy_mx_required_unless_none),
        cmocka_unit_test(test_policy_required_fields),
        cmocka_unit_test(test_policy_values),
        cmocka_unit_test(test_policy_max_age),
        cmocka_unit_test(test_policy_mx_syntax),
        cmocka_unit_test(test_policy_mx_cap),
        cmocka_unit_test(test_policy_line_cap),
        cmocka_unit_test(test_policy_malformed_lines),
        cmocka_unit_test(test_policy_lenient_readings),
        cmocka_unit_test(test_policy_mx_json),
        cmocka_unit_test(test_mx_match),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_findings_domain),
        cmocka_unit_test(test_findings_policy),
        cmocka_unit_test(test_findings_mx),
        cmocka_unit_test(test_e2e_ok),
        cmocka_unit_test(test_e2e_testing),
        cmocka_unit_test(test_e2e_txt_joined),
        cmocka_unit_test(test_e2e_404),
        cmocka_unit_test(test_e2e_redirect),
        cmocka_unit_test(test_e2e_self_signed),
        cmocka_unit_test(test_e2e_wrong_name),
        cmocka_unit_test(test_e2e_size_streamed),
        cmocka_unit_test(test_e2e_size_declared),
        cmocka_unit_test(test_e2e_bad_policy),
        cmocka_unit_test(test_e2e_txt_outcomes),
        cmocka_unit_test(test_e2e_no_address),
        cmocka_unit_test(test_e2e_aaaa_fallback),
        cmocka_unit_test(test_e2e_timeout),
        cmocka_unit_test(test_e2e_connect_refused),
        cmocka_unit_test(test_e2e_single_flight),
        cmocka_unit_test(test_e2e_forget_done),
        cmocka_unit_test(test_e2e_bad_names),
        cmocka_unit_test(test_e2e_gate_serializes),
        cmocka_unit_test(test_e2e_cancel_fetch),
        cmocka_unit_test(test_e2e_cancel_at_gate),
        cmocka_unit_test(test_e2e_free_in_callback),
    };
    return cmocka_run_group_tests_name("mtasts", tests, fixture_up, fixture_down);
}
