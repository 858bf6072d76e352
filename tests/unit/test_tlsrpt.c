/*
 * test_tlsrpt.c - unit tests of scanner/tlsrpt.c: the RFC 8460 section 3
 * record parser over the TXT strings of _smtp._tls.<domain>, the rua list
 * as JSON, and the findings it maps to.
 *
 * The first records are as published by large mail domains (mail.example.net,
 * and the shape most report processors hand out); the rest are written to
 * hit one rule of the grammar each.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scanner/tlsrpt.h"
#include "scanner/verdict.h"
#include "tests/support/jsoncheck.h"

/* Parses up to 4 NUL-terminated TXT strings. */
static tlsrpt_status_t parse(tlsrpt_t *t, const char *a, const char *b, const char *c,
                             const char *d)
{
    const char *v[4] = {a, b, c, d};
    size_t l[4];
    int n = 0;
    for (int i = 0; i < 4 && v[i]; i++, n++) {
        l[i] = strlen(v[i]);
    }
    return tlsrpt_parse(v, l, n, t);
}

/* Asserts that one record is invalid and that its error mentions want. */
static void assert_invalid(const char *record, const char *want)
{
    tlsrpt_t t;
    assert_int_equal(parse(&t, record, NULL, NULL, NULL), TLSRPT_INVALID);
    assert_int_equal(t.status, TLSRPT_INVALID);
    assert_int_equal(t.nrua, 0);
    assert_null(t.rua);
    if (!strstr(t.error, want)) {
        print_error("record \"%s\": error \"%s\" lacks \"%s\"\n", record, t.error, want);
        fail();
    }
    tlsrpt_clear(&t);
}

/* The record mail.example.net publishes parses to one mailto: URI. */
static void test_provider_record(void **state)
{
    (void)state;
    tlsrpt_t t;
    assert_int_equal(parse(&t, "v=TLSRPTv1;rua=mailto:sts-reports@example.net", NULL, NULL, NULL),
                     TLSRPT_VALID);
    assert_int_equal(t.nrecords, 1);
    assert_int_equal(t.nrua, 1);
    assert_string_equal(t.rua[0], "mailto:sts-reports@example.net");
    assert_string_equal(t.record, "v=TLSRPTv1;rua=mailto:sts-reports@example.net");
    assert_string_equal(t.error, "");
    tlsrpt_clear(&t);
}

/* Two URIs, mailto: and https:, with whitespace around the comma and the delimiters. */
static void test_two_uris_with_whitespace(void **state)
{
    (void)state;
    tlsrpt_t t;
    assert_int_equal(parse(&t,
                           "v=TLSRPTv1 ; rua=mailto:tlsrpt@example.com , "
                           "https://reports.example.net/v1/tlsrpt ;",
                           NULL, NULL, NULL),
                     TLSRPT_VALID);
    assert_int_equal(t.nrua, 2);
    assert_string_equal(t.rua[0], "mailto:tlsrpt@example.com");
    assert_string_equal(t.rua[1], "https://reports.example.net/v1/tlsrpt");
    tlsrpt_clear(&t);
}

/* Other TXT strings at the name (SPF, site verification) are ignored. */
static void test_other_txt_ignored(void **state)
{
    (void)state;
    tlsrpt_t t;
    assert_int_equal(parse(&t, "v=spf1 -all", "site-verification=abc",
                           "v=TLSRPTv1; rua=mailto:r@example.org", NULL),
                     TLSRPT_VALID);
    assert_int_equal(t.nrecords, 1);
    assert_string_equal(t.record, "v=TLSRPTv1; rua=mailto:r@example.org");
    tlsrpt_clear(&t);
}

/* No strings, or none starting with the exact case-sensitive version tag, is NONE. */
static void test_none(void **state)
{
    (void)state;
    tlsrpt_t t;
    assert_int_equal(tlsrpt_parse(NULL, NULL, 0, &t), TLSRPT_NONE);
    assert_null(t.record);
    tlsrpt_clear(&t);
    assert_int_equal(parse(&t, "v=spf1 -all", "V=TLSRPTv1; rua=mailto:a@b.example",
                           "v=TLSRPTv10; rua=mailto:a@b.example", " v=TLSRPTv1;rua=mailto:a@b.c"),
                     TLSRPT_NONE);
    assert_int_equal(t.nrecords, 0);
    assert_string_equal(t.error, "");
    tlsrpt_clear(&t);
}

/* RFC 8460 3: more than one record is invalid, and both are kept joined by a newline. */
static void test_several_records(void **state)
{
    (void)state;
    tlsrpt_t t;
    assert_int_equal(parse(&t, "v=TLSRPTv1; rua=mailto:a@example.com",
                           "v=TLSRPTv1; rua=mailto:b@example.com", NULL, NULL),
                     TLSRPT_INVALID);
    assert_int_equal(t.nrecords, 2);
    assert_non_null(strstr(t.error, "several records"));
    assert_string_equal(
        t.record, "v=TLSRPTv1; rua=mailto:a@example.com\nv=TLSRPTv1; rua=mailto:b@example.com");
    assert_int_equal(t.nrua, 0);
    tlsrpt_clear(&t);
}

/* rua= is required: a version alone, or with an extension only, is invalid. */
static void test_rua_required(void **state)
{
    (void)state;
    assert_invalid("v=TLSRPTv1", "no rua");
    assert_invalid("v=TLSRPTv1;", "no rua");
    assert_invalid("v=TLSRPTv1; ext=1", "no rua");
}

/* A URI that is neither mailto: nor https: makes the record invalid, and the detail names it. */
static void test_bad_scheme_named(void **state)
{
    (void)state;
    assert_invalid("v=TLSRPTv1; rua=http://reports.example.com/tlsrpt",
                   "\"http://reports.example.com/tlsrpt\" is neither mailto: nor https:");
    assert_invalid("v=TLSRPTv1; rua=mailto:a@example.com,ftp://x.example", "\"ftp://x.example\"");
    assert_invalid("v=TLSRPTv1; rua=tlsrpt@example.com", "\"tlsrpt@example.com\"");
}

/* mailto: needs an address with both sides of the '@'; https: needs a host. */
static void test_uri_shapes(void **state)
{
    (void)state;
    assert_invalid("v=TLSRPTv1; rua=mailto:", "\"mailto:\"");
    assert_invalid("v=TLSRPTv1; rua=mailto:nobody", "\"mailto:nobody\" is malformed");
    assert_invalid("v=TLSRPTv1; rua=mailto:@example.com", "malformed");
    assert_invalid("v=TLSRPTv1; rua=mailto:a@", "malformed");
    assert_invalid("v=TLSRPTv1; rua=https://", "\"https://\"");
    assert_invalid("v=TLSRPTv1; rua=https:///path", "malformed");
    assert_invalid("v=TLSRPTv1; rua=https:reports.example.com", "malformed");
    tlsrpt_t t;
    /* Schemes are case-insensitive (RFC 3986 3.1); hfields and ports are fine. */
    assert_int_equal(parse(&t,
                           "v=TLSRPTv1; rua=MAILTO:tls@example.com?subject=x,"
                           "HTTPS://r.example.com:8443/in",
                           NULL, NULL, NULL),
                     TLSRPT_VALID);
    assert_int_equal(t.nrua, 2);
    tlsrpt_clear(&t);
}

/* Empty URIs and URIs with characters no URI may hold are invalid. */
static void test_uri_empty_or_bad_chars(void **state)
{
    (void)state;
    assert_invalid("v=TLSRPTv1; rua=", "empty URI");
    assert_invalid("v=TLSRPTv1; rua=mailto:a@example.com,,mailto:b@example.com", "empty URI");
    assert_invalid("v=TLSRPTv1; rua=mailto:a@example.com,", "empty URI");
    assert_invalid("v=TLSRPTv1; rua=https://r.example.com/a|b", "characters a URI cannot hold");
    assert_invalid("v=TLSRPTv1; rua=mailto:a@example.com mailto:b@example.com",
                   "separated by commas");
}

/* Extension fields of the right shape are accepted and ignored; others invalidate. */
static void test_extensions(void **state)
{
    (void)state;
    tlsrpt_t t;
    assert_int_equal(
        parse(&t, "v=TLSRPTv1; x-ext.1=value!; rua=mailto:a@example.com; z=9", NULL, NULL, NULL),
        TLSRPT_VALID);
    assert_int_equal(t.nrua, 1);
    tlsrpt_clear(&t);
    assert_invalid("v=TLSRPTv1; rua=mailto:a@example.com; bad name=1", "malformed field");
    assert_invalid("v=TLSRPTv1; rua=mailto:a@example.com; _x=1", "malformed field");
    assert_invalid("v=TLSRPTv1; rua=mailto:a@example.com; x=", "malformed field");
    assert_invalid("v=TLSRPTv1; rua=mailto:a@example.com; x=a b", "malformed field");
    assert_invalid("v=TLSRPTv1; rua=mailto:a@example.com; justaword", "has no '='");
    assert_invalid("v=TLSRPTv1; ; rua=mailto:a@example.com", "has no '='");
}

/* The version must be followed by the ';' delimiter (whitespace alone does not separate). */
static void test_delimiter_required(void **state)
{
    (void)state;
    assert_invalid("v=TLSRPTv1 rua=mailto:a@example.com", "expected ';'");
}

/* Fields are case-sensitive: "RUA=" is an extension, so the record has no rua. */
static void test_rua_case_sensitive(void **state)
{
    (void)state;
    assert_invalid("v=TLSRPTv1; RUA=mailto:a@example.com", "no rua");
}

/* Several rua= fields are merged in order (the grammar lets fields repeat). */
static void test_rua_fields_merged(void **state)
{
    (void)state;
    tlsrpt_t t;
    assert_int_equal(parse(&t, "v=TLSRPTv1; rua=mailto:a@example.com; rua=https://b.example.com",
                           NULL, NULL, NULL),
                     TLSRPT_VALID);
    assert_int_equal(t.nrua, 2);
    assert_string_equal(t.rua[1], "https://b.example.com");
    tlsrpt_clear(&t);
}

/* A NUL byte inside the TXT data (lengths, not C strings, bound it) is a bad URI character. */
static void test_embedded_nul(void **state)
{
    (void)state;
    static const char rec[] = "v=TLSRPTv1; rua=mailto:a@exa\0mple.com";
    const char *v[1] = {rec};
    size_t l[1] = {sizeof rec - 1};
    tlsrpt_t t;
    assert_int_equal(tlsrpt_parse(v, l, 1, &t), TLSRPT_INVALID);
    assert_non_null(strstr(t.error, "characters a URI cannot hold"));
    tlsrpt_clear(&t);
}

/* The rua list is written as a strict JSON array that decodes back to the URIs. */
static void test_rua_json(void **state)
{
    (void)state;
    tlsrpt_t t;
    assert_int_equal(parse(&t, "v=TLSRPTv1; rua=mailto:a@example.com,https://r.example.com/x?a=1",
                           NULL, NULL, NULL),
                     TLSRPT_VALID);
    char *j = tlsrpt_rua_json(&t);
    char **items = NULL;
    size_t n = 0;
    assert_int_equal(jc_json_string_array(j, 0, &items, &n, NULL), 0);
    assert_int_equal(n, 2);
    assert_string_equal(items[0], "mailto:a@example.com");
    assert_string_equal(items[1], "https://r.example.com/x?a=1");
    jc_free_strings(items, n);
    free(j);
    tlsrpt_clear(&t);
    j = tlsrpt_rua_json(&t);
    assert_string_equal(j, "[]");
    free(j);
}

typedef struct emitted {
    int n;
    char code[4][32];
    char detail[4][512];
} emitted_t;

/* Collects findings. */
static void collect(void *ctx, const char *code, const char *detail)
{
    emitted_t *e = ctx;
    assert_true(e->n < 4);
    assert_non_null(verdict_lookup(code));
    snprintf(e->code[e->n], sizeof e->code[e->n], "%s", code);
    snprintf(e->detail[e->n], sizeof e->detail[e->n], "%s", detail);
    e->n++;
}

/* NONE maps to tlsrpt.none, INVALID to tlsrpt.invalid with the reason, VALID to nothing. */
static void test_findings(void **state)
{
    (void)state;
    tlsrpt_t t;
    emitted_t e = {0};
    parse(&t, "v=spf1 -all", NULL, NULL, NULL);
    tlsrpt_findings(&t, collect, &e);
    tlsrpt_clear(&t);
    assert_int_equal(e.n, 1);
    assert_string_equal(e.code[0], "tlsrpt.none");

    memset(&e, 0, sizeof e);
    parse(&t, "v=TLSRPTv1; rua=ftp://x.example", NULL, NULL, NULL);
    tlsrpt_findings(&t, collect, &e);
    tlsrpt_clear(&t);
    assert_int_equal(e.n, 1);
    assert_string_equal(e.code[0], "tlsrpt.invalid");
    assert_non_null(strstr(e.detail[0], "ftp://x.example"));

    memset(&e, 0, sizeof e);
    parse(&t, "v=TLSRPTv1; rua=mailto:a@example.com", NULL, NULL, NULL);
    tlsrpt_findings(&t, collect, &e);
    tlsrpt_clear(&t);
    assert_int_equal(e.n, 0);
}

/* Status names are the words stored in the database. */
static void test_status_names(void **state)
{
    (void)state;
    assert_string_equal(tlsrpt_status_name(TLSRPT_NONE), "none");
    assert_string_equal(tlsrpt_status_name(TLSRPT_VALID), "valid");
    assert_string_equal(tlsrpt_status_name(TLSRPT_INVALID), "invalid");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_provider_record),
        cmocka_unit_test(test_two_uris_with_whitespace),
        cmocka_unit_test(test_other_txt_ignored),
        cmocka_unit_test(test_none),
        cmocka_unit_test(test_several_records),
        cmocka_unit_test(test_rua_required),
        cmocka_unit_test(test_bad_scheme_named),
        cmocka_unit_test(test_uri_shapes),
        cmocka_unit_test(test_uri_empty_or_bad_chars),
        cmocka_unit_test(test_extensions),
        cmocka_unit_test(test_delimiter_required),
        cmocka_unit_test(test_rua_case_sensitive),
        cmocka_unit_test(test_rua_fields_merged),
        cmocka_unit_test(test_embedded_nul),
        cmocka_unit_test(test_rua_json),
        cmocka_unit_test(test_findings),
        cmocka_unit_test(test_status_names),
    };
    return cmocka_run_group_tests_name("tlsrpt", tests, NULL, NULL);
}
