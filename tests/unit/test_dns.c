/*
 * test_dns.c - unit tests of the DNS wire format code in scanner/dns.c:
 * dns_parse() on answers recorded from the loopback validating resolver
 * (tests/data/dns/rec_*.hex, see the README there), on hand-crafted TXT and
 * TLSA answers, and on malformed messages; and dns_build_query(), whose
 * output is decoded here independently of the parser.
 *
 * Data files are hex text: '#' starts a comment that runs to the end of the
 * line, whitespace is ignored. Every data file must be listed in one of the
 * tables below, so a new recording cannot go untested.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scanner/dns.h"

/* ---- data files ---------------------------------------------------- */

/* Path of a DNS data file: $MXSCAN_TESTDATA/dns, else tests/data/dns found from
 * this source file's own path (CMake compiles it by absolute path). */
static void data_path(char *buf, size_t len, const char *file)
{
    const char *d = getenv("MXSCAN_TESTDATA");
    if (d && *d) {
        snprintf(buf, len, "%s/dns/%s", d, file ? file : "");
        return;
    }
    const char *slash = strrchr(__FILE__, '/');
    int dirlen = slash ? (int)(slash - __FILE__) : 1;
    snprintf(buf, len, "%.*s/../data/dns/%s", dirlen, slash ? __FILE__ : ".", file ? file : "");
}

/* Reads a hex data file into a malloc'd buffer; fails the test if unreadable. */
static uint8_t *load_hex(const char *file, size_t *len)
{
    char path[1024];
    data_path(path, sizeof path, file);
    FILE *f = fopen(path, "r");
    if (!f) {
        print_error("cannot open %s\n", path);
        fail();
    }
    size_t cap = 4096, n = 0;
    uint8_t *buf = malloc(cap);
    assert_non_null(buf);
    int c, hi = -1, comment = 0;
    while ((c = fgetc(f)) != EOF) {
        if (comment) {
            comment = c != '\n';
            continue;
        }
        if (c == '#') {
            comment = 1;
            continue;
        }
        if (isspace(c)) {
            continue;
        }
        if (!isxdigit(c)) {
            print_error("%s: not a hex digit: '%c'\n", path, c);
            fail();
        }
        int v = isdigit(c) ? c - '0' : tolower(c) - 'a' + 10;
        if (hi < 0) {
            hi = v;
            continue;
        }
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        buf[n++] = (uint8_t)(hi << 4 | v);
        hi = -1;
    }
    fclose(f);
    if (hi >= 0) {
        print_error("%s: odd number of hex digits\n", path);
        fail();
    }
    *len = n;
    return buf;
}

/* ---- expectations -------------------------------------------------- */

typedef struct exp_rr {
    uint16_t pref;    /* MX */
    const char *text; /* MX target, address, or TXT joined text */
    uint8_t usage, selector, mtype;
    uint8_t first; /* TLSA: association data is first, first+1, ... (32 octets) */
} exp_rr_t;

typedef struct dns_case {
    const char *file;
    const char *qname;
    int qtype;
    dns_status_t status;
    int rcode;
    int ad;
    const char *cname; /* "" when the name is not an alias */
    uint32_t ttl_max;  /* every record's TTL is in 1..ttl_max */
    int nrr;
    exp_rr_t rr[3]; /* in any order */
} dns_case_t;

/* Answers recorded from 127.53.0.1:5300 (rec_*) and crafted TXT/TLSA answers. */
static const dns_case_t cases[] = {
    {"rec_valid_mx.hex",
     "valid.test",
     DNS_T_MX,
     DNS_NOERROR,
     0,
     1,
     "",
     60,
     1,
     {{10, "mx-valid.test", 0, 0, 0, 0}}},
    {"rec_mx_valid_a.hex",
     "mx-valid.test",
     DNS_T_A,
     DNS_NOERROR,
     0,
     1,
     "",
     60,
     1,
     {{0, "127.25.0.1", 0, 0, 0, 0}}},
    {"rec_mx_v6_aaaa.hex",
     "mx-v6.test",
     DNS_T_AAAA,
     DNS_NOERROR,
     0,
     1,
     "",
     60,
     1,
     {{0, "::1", 0, 0, 0, 0}}},
    {"rec_partial_mx.hex",
     "partial.test",
     DNS_T_MX,
     DNS_NOERROR,
     0,
     1,
     "",
     60,
     2,
     {{10, "mx-valid.test", 0, 0, 0, 0}, {20, "mx-plain.test", 0, 0, 0, 0}}},
    /* The MX target is an alias, the domain itself is not: no cname here. */
    {"rec_cnamemx_mx.hex",
     "cnamemx.test",
     DNS_T_MX,
     DNS_NOERROR,
     0,
     1,
     "",
     60,
     1,
     {{10, "mx-alias.test", 0, 0, 0, 0}}},
    {"rec_mx_alias_a.hex",
     "mx-alias.test",
     DNS_T_A,
     DNS_NOERROR,
     0,
     1,
     "mx-valid.test",
     60,
     1,
     {{0, "127.25.0.1", 0, 0, 0, 0}}},
    {"rec_mx_alias_mx.hex",
     "mx-alias.test",
     DNS_T_MX,
     DNS_NODATA,
     0,
     1,
     "mx-valid.test",
     60,
     0,
     {{0}}},
    {"rec_nullmx_mx.hex",
     "nullmx.test",
     DNS_T_MX,
     DNS_NOERROR,
     0,
     1,
     "",
     60,
     1,
     {{0, ".", 0, 0, 0, 0}}},
    {"rec_nomx_mx.hex", "nomx.test", DNS_T_MX, DNS_NODATA, 0, 1, "", 60, 0, {{0}}},
    {"rec_nomx_txt.hex",
     "nomx.test",
     DNS_T_TXT,
     DNS_NOERROR,
     0,
     1,
     "",
     60,
     1,
     {{0, "exists, but has no MX and no address", 0, 0, 0, 0}}},
    {"rec_doesnotexist_mx.hex",
     "doesnotexist.test",
     DNS_T_MX,
     DNS_NXDOMAIN,
     3,
     1,
     "",
     60,
     0,
     {{0}}},
    {"rec_bogus_mx.hex", "bogus.test", DNS_T_MX, DNS_SERVFAIL, 2, 0, "", 60, 0, {{0}}},
    {"rec_bogus_mx_cd.hex",
     "bogus.test",
     DNS_T_MX,
     DNS_NOERROR,
     0,
     0,
     "",
     60,
     1,
     {{10, "mx-valid.test", 0, 0, 0, 0}}},
    {"rec_unsigned_mx.hex",
     "x.unsigned.test",
     DNS_T_MX,
     DNS_NOERROR,
     0,
     0,
     "",
     60,
     1,
     {{10, "mx-valid.test", 0, 0, 0, 0}}},
    {"rec_unsigned_txt.hex",
     "unsigned.test",
     DNS_T_TXT,
     DNS_NOERROR,
     0,
     0,
     "",
     60,
     1,
     {{0, "delegated from test. without DS: insecure", 0, 0, 0, 0}}},
    {"rec_tlsa_none.hex",
     "_25._tcp.mx-valid.test",
     DNS_T_TLSA,
     DNS_NXDOMAIN,
     3,
     1,
     "",
     60,
     0,
     {{0}}},
    {"txt_multi.hex",
     "spf.example.test",
     DNS_T_TXT,
     DNS_NOERROR,
     0,
     1,
     "",
     300,
     2,
     {{0, "v=spf1 ip4:192.0.2.0/24 -all", 0, 0, 0, 0}, {0, "second", 0, 0, 0, 0}}},
    {"tlsa_311.hex",
     "_25._tcp.mx.example.test",
     DNS_T_TLSA,
     DNS_NOERROR,
     0,
     1,
     "",
     3600,
     1,
     {{0, NULL, 3, 1, 1, 0x00}}},
    {"tlsa_201.hex",
     "_25._tcp.mx.example.test",
     DNS_T_TLSA,
     DNS_NOERROR,
     0,
     0,
     "_25._tcp.mx.other.test",
     3600,
     1,
     {{0, NULL, 2, 0, 1, 0xe0}}},
};

/* Malformed messages, each with the qtype that reaches the damage. */
static const struct bad_case {
    const char *file;
    const char *qname;
    int qtype;
} bad_cases[] = {
    {"bad_truncated_header.hex", "x.test", DNS_T_MX},
    {"bad_compression_loop.hex", "x.test", DNS_T_MX},
    {"bad_compression_loop2.hex", "loop.test", DNS_T_MX},
    {"bad_pointer_past_end.hex", "ptr.test", DNS_T_A},
    {"bad_rdlength_past_end.hex", "len.test", DNS_T_A},
    {"bad_label_too_long.hex", "x.test", DNS_T_A},
    {"bad_label_too_long_answer.hex", "lbl.test", DNS_T_MX},
    {"bad_truncated_question.hex", "cut.test", DNS_T_MX},
    {"bad_truncated_answer.hex", "cut.test", DNS_T_MX},
    {"bad_a_rdlength.hex", "a3.test", DNS_T_A},
    {"bad_aaaa_rdlength.hex", "a4.test", DNS_T_AAAA},
    {"bad_txt_overrun.hex", "txt.test", DNS_T_TXT},
    {"bad_mx_overrun.hex", "mx.test", DNS_T_MX},
    {"bad_mx_short.hex", "mx.test", DNS_T_MX},
    {"bad_tlsa_short.hex", "_25._tcp.t.test", DNS_T_TLSA},
    {"bad_cname_loop_target.hex", "cn.test", DNS_T_A},
    {"bad_name_too_long.hex", "x.test", DNS_T_A},
};

#define NCASES (sizeof cases / sizeof *cases)
#define NBAD   (sizeof bad_cases / sizeof *bad_cases)

static const int all_qtypes[] = {DNS_T_A, DNS_T_CNAME, DNS_T_MX, DNS_T_TXT, DNS_T_AAAA, DNS_T_TLSA};

/* Finds the record that matches an expectation, or -1. */
static int find_rr(const dns_result_t *res, int qtype, const exp_rr_t *e)
{
    for (int i = 0; i < res->nrr; i++) {
        const dns_rr_t *rr = &res->rr[i];
        switch (qtype) {
        case DNS_T_MX:
            if (rr->pref == e->pref && strcmp(rr->text, e->text) == 0) {
                return i;
            }
            break;
        case DNS_T_A:
        case DNS_T_AAAA:
            if (strcmp(rr->text, e->text) == 0) {
                return i;
            }
            break;
        case DNS_T_TXT:
            if (rr->data && rr->datalen == strlen(e->text) &&
                memcmp(rr->data, e->text, rr->datalen) == 0 && rr->data[rr->datalen] == 0) {
                return i;
            }
            break;
        case DNS_T_TLSA: {
            if (rr->usage != e->usage || rr->selector != e->selector || rr->mtype != e->mtype ||
                rr->datalen != 32 || !rr->data) {
                break;
            }
            int ok = 1;
            for (int k = 0; k < 32; k++) {
                ok &= rr->data[k] == (uint8_t)(e->first + k);
            }
            if (ok) {
                return i;
            }
            break;
        }
        default:
            break;
        }
    }
    return -1;
}

/* Asserts that a parse result matches a case. */
static void check_case(const dns_case_t *c, const dns_result_t *res)
{
    assert_int_equal(res->status, c->status);
    assert_int_equal(res->rcode, c->rcode);
    assert_int_equal(res->ad, c->ad);
    assert_int_equal(res->truncated, 0);
    assert_string_equal(res->cname, c->cname);
    assert_int_equal(res->nrr, c->nrr);
    if (c->nrr == 0) {
        assert_null(res->rr);
    }
    int used[4] = {0};
    for (int i = 0; i < c->nrr; i++) {
        int k = find_rr(res, c->qtype, &c->rr[i]);
        if (k < 0) {
            print_error("%s: expected record %d (%s) not found\n", c->file, i,
                        c->rr[i].text ? c->rr[i].text : "TLSA");
            fail();
        }
        assert_false(used[k]);
        used[k] = 1;
        assert_int_equal(res->rr[k].type, c->qtype);
        assert_in_range(res->rr[k].ttl, 1, c->ttl_max);
    }
}

/* A recorded or crafted answer parses to exactly the status, AD bit, alias and records expected. */
static void test_answer(void **state)
{
    const dns_case_t *c = *state;
    size_t len;
    uint8_t *buf = load_hex(c->file, &len);
    dns_result_t res;
    assert_int_equal(dns_parse(buf, len, c->qname, c->qtype, &res), 0);
    check_case(c, &res);
    dns_result_clear(&res);
    assert_null(res.rr);
    assert_int_equal(res.nrr, 0);
    free(buf);
}

/* The asked name matches regardless of case and of a trailing dot. */
static void test_qname_case_and_dot(void **state)
{
    (void)state;
    const char *variants[] = {"VALID.TEST", "Valid.Test.", "valid.test."};
    size_t len;
    uint8_t *buf = load_hex("rec_valid_mx.hex", &len);
    for (size_t i = 0; i < sizeof variants / sizeof *variants; i++) {
        dns_result_t res;
        assert_int_equal(dns_parse(buf, len, variants[i], DNS_T_MX, &res), 0);
        check_case(&cases[0], &res);
        dns_result_clear(&res);
    }
    free(buf);
}

/* Records of another owner or of another type (RRSIG included) never count as answers. */
static void test_other_name_or_type_ignored(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = load_hex("rec_valid_mx.hex", &len);
    dns_result_t res;
    assert_int_equal(dns_parse(buf, len, "other.test", DNS_T_MX, &res), 0);
    assert_int_equal(res.status, DNS_NODATA);
    assert_int_equal(res.nrr, 0);
    dns_result_clear(&res);
    assert_int_equal(dns_parse(buf, len, "valid.test", DNS_T_A, &res), 0);
    assert_int_equal(res.status, DNS_NODATA);
    assert_int_equal(res.nrr, 0);
    assert_int_equal(res.ad, 1);
    dns_result_clear(&res);
    free(buf);

    /* mx-alias.test A: the answer's A record is owned by the CNAME target, which the
     * chain reaches; asked for AAAA, the same message has nothing. */
    buf = load_hex("rec_mx_alias_a.hex", &len);
    assert_int_equal(dns_parse(buf, len, "mx-alias.test", DNS_T_AAAA, &res), 0);
    assert_string_equal(res.cname, "mx-valid.test");
    assert_int_equal(res.status, DNS_NODATA);
    assert_int_equal(res.nrr, 0);
    dns_result_clear(&res);
    /* Asked directly for the target, the alias's CNAME is not followed. */
    assert_int_equal(dns_parse(buf, len, "mx-valid.test", DNS_T_A, &res), 0);
    assert_string_equal(res.cname, "");
    assert_int_equal(res.nrr, 1);
    assert_string_equal(res.rr[0].text, "127.25.0.1");
    dns_result_clear(&res);
    free(buf);
}

/* The TC bit of the header is reported as truncated. */
static void test_tc_bit(void **state)
{
    (void)state;
    size_t len;
    uint8_t *buf = load_hex("rec_valid_mx.hex", &len);
    buf[2] |= 0x02;
    dns_result_t res;
    assert_int_equal(dns_parse(buf, len, "valid.test", DNS_T_MX, &res), 0);
    assert_int_equal(res.truncated, 1);
    assert_int_equal(res.nrr, 1);
    dns_result_clear(&res);
    free(buf);
}

/* Rcodes map to statuses: REFUSED, NOTIMP/FORMERR as FORMERR (a parse that succeeds). */
static void test_rcode_mapping(void **state)
{
    (void)state;
    static const struct {
        int rcode;
        dns_status_t st;
    } map[] = {{0, DNS_NODATA},  {1, DNS_FORMERR}, {2, DNS_SERVFAIL}, {3, DNS_NXDOMAIN},
               {4, DNS_FORMERR}, {5, DNS_REFUSED}, {9, DNS_FORMERR}};
    size_t len;
    uint8_t *buf = load_hex("rec_bogus_mx.hex", &len); /* no answer records */
    for (size_t i = 0; i < sizeof map / sizeof *map; i++) {
        buf[3] = (uint8_t)((buf[3] & 0xf0) | map[i].rcode);
        dns_result_t res;
        assert_int_equal(dns_parse(buf, len, "bogus.test", DNS_T_MX, &res), 0);
        assert_int_equal(res.rcode, map[i].rcode);
        assert_int_equal(res.status, map[i].st);
        dns_result_clear(&res);
    }
    free(buf);
}

/* Each malformed message gives -1 and FORMERR, with nothing allocated. */
static void test_malformed(void **state)
{
    (void)state;
    for (size_t i = 0; i < NBAD; i++) {
        size_t len;
        uint8_t *buf = load_hex(bad_cases[i].file, &len);
        dns_result_t res;
        int r = dns_parse(buf, len, bad_cases[i].qname, bad_cases[i].qtype, &res);
        if (r != -1) {
            print_error("%s: dns_parse returned %d, status %s\n", bad_cases[i].file, r,
                        dns_status_name(res.status));
            fail();
        }
        assert_int_equal(res.status, DNS_FORMERR);
        assert_int_equal(res.nrr, 0);
        assert_null(res.rr);
        dns_result_clear(&res);
        free(buf);
    }
}

/* Malformed messages asked for any type either parse or fail cleanly, never with records leaked. */
static void test_malformed_any_qtype(void **state)
{
    (void)state;
    for (size_t i = 0; i < NBAD; i++) {
        size_t len;
        uint8_t *buf = load_hex(bad_cases[i].file, &len);
        for (size_t t = 0; t < sizeof all_qtypes / sizeof *all_qtypes; t++) {
            dns_result_t res;
            int r = dns_parse(buf, len, bad_cases[i].qname, all_qtypes[t], &res);
            assert_true(r == 0 || r == -1);
            if (r < 0) {
                assert_int_equal(res.status, DNS_FORMERR);
                assert_int_equal(res.nrr, 0);
                assert_null(res.rr);
            }
            dns_result_clear(&res);
        }
        free(buf);
    }
}

/* Results compare equal: status, flags, alias and every record. */
static void assert_same_result(const dns_result_t *a, const dns_result_t *b)
{
    assert_int_equal(a->status, b->status);
    assert_int_equal(a->rcode, b->rcode);
    assert_int_equal(a->ad, b->ad);
    assert_string_equal(a->cname, b->cname);
    assert_int_equal(a->nrr, b->nrr);
    for (int i = 0; i < a->nrr; i++) {
        assert_int_equal(a->rr[i].type, b->rr[i].type);
        assert_int_equal(a->rr[i].pref, b->rr[i].pref);
        assert_string_equal(a->rr[i].text, b->rr[i].text);
        assert_int_equal(a->rr[i].datalen, b->rr[i].datalen);
        if (a->rr[i].datalen) {
            assert_memory_equal(a->rr[i].data, b->rr[i].data, a->rr[i].datalen);
        }
    }
}

/* Every prefix of every good answer is either rejected (-1) or gives the full answer's result. */
static void test_truncated_prefixes(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCASES; i++) {
        size_t len;
        uint8_t *buf = load_hex(cases[i].file, &len);
        dns_result_t full;
        assert_int_equal(dns_parse(buf, len, cases[i].qname, cases[i].qtype, &full), 0);
        for (size_t n = 0; n < len; n++) {
            /* A copy of exactly n bytes, so ASan sees any read past the end. */
            uint8_t *cut = malloc(n ? n : 1);
            assert_non_null(cut);
            memcpy(cut, buf, n);
            dns_result_t res;
            int r = dns_parse(cut, n, cases[i].qname, cases[i].qtype, &res);
            if (n < 12) {
                assert_int_equal(r, -1);
                assert_int_equal(res.rcode, -1);
            }
            if (r < 0) {
                assert_int_equal(res.status, DNS_FORMERR);
                assert_int_equal(res.nrr, 0);
            } else {
                assert_same_result(&res, &full);
            }
            dns_result_clear(&res);
            free(cut);
        }
        dns_result_clear(&full);
        free(buf);
    }
}

/* Every byte of every answer flipped to every value gives a clean result (a bounded mutation
 * sweep). */
static void test_byte_mutations(void **state)
{
    (void)state;
    for (size_t i = 0; i < NCASES; i++) {
        size_t len;
        uint8_t *buf = load_hex(cases[i].file, &len);
        for (size_t pos = 0; pos < len; pos++) {
            uint8_t orig = buf[pos];
            for (int v = 0; v < 256; v += 7) {
                buf[pos] = (uint8_t)v;
                dns_result_t res;
                int r = dns_parse(buf, len, cases[i].qname, cases[i].qtype, &res);
                assert_true(r == 0 || r == -1);
                if (r < 0) {
                    assert_int_equal(res.nrr, 0);
                    assert_int_equal(res.status, DNS_FORMERR);
                }
                for (int k = 0; k < res.nrr; k++) {
                    assert_true(strlen(res.rr[k].text) <= DNS_NAME_MAX);
                }
                assert_true(strlen(res.cname) <= DNS_NAME_MAX);
                dns_result_clear(&res);
            }
            buf[pos] = orig;
        }
        free(buf);
    }
}

/* Every file in tests/data/dns is listed in a table of this test (nothing recorded goes unchecked).
 */
static void test_every_file_listed(void **state)
{
    (void)state;
    char dir[1024];
    data_path(dir, sizeof dir, NULL);
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *e;
    int nhex = 0;
    while ((e = readdir(d)) != NULL) {
        size_t l = strlen(e->d_name);
        if (l < 4 || strcmp(e->d_name + l - 4, ".hex") != 0) {
            continue;
        }
        nhex++;
        int found = 0;
        for (size_t i = 0; i < NCASES; i++) {
            found |= strcmp(cases[i].file, e->d_name) == 0;
        }
        for (size_t i = 0; i < NBAD; i++) {
            found |= strcmp(bad_cases[i].file, e->d_name) == 0;
        }
        if (!found) {
            print_error("%s is in tests/data/dns but in no table of test_dns.c\n", e->d_name);
            fail();
        }
    }
    closedir(d);
    assert_int_equal(nhex, (int)(NCASES + NBAD));
}

/* ---- query builder ------------------------------------------------- */

/* Decodes an uncompressed name at *off (independently of dns.c); -1 if malformed. */
static int decode_name(const uint8_t *m, size_t len, size_t *off, char *out, size_t outlen)
{
    size_t o = 0, p = *off;
    for (;;) {
        if (p >= len || m[p] > 63) {
            return -1;
        }
        uint8_t l = m[p++];
        if (l == 0) {
            break;
        }
        if (p + l > len || o + l + 2 > outlen) {
            return -1;
        }
        if (o) {
            out[o++] = '.';
        }
        memcpy(out + o, m + p, l);
        o += l;
        p += l;
    }
    out[o] = 0;
    *off = p;
    return 0;
}

/* Reads a 16-bit big-endian field. */
static unsigned u16(const uint8_t *p)
{
    return (unsigned)(p[0] << 8 | p[1]);
}

/* Checks a built query: header, question (name, type, IN) and the OPT record with DO. */
static void check_query(const uint8_t *q, int qlen, uint16_t id, const char *name, int type, int cd)
{
    assert_true(qlen >= 12 + 1 + 4 + 11);
    assert_int_equal(u16(q), id);
    assert_int_equal(q[2], 0x01);                   /* QR=0, opcode QUERY, RD */
    assert_int_equal(q[3], 0x20 | (cd ? 0x10 : 0)); /* AD, CD when asked, Z and rcode 0 */
    assert_int_equal(u16(q + 4), 1);
    assert_int_equal(u16(q + 6), 0);
    assert_int_equal(u16(q + 8), 0);
    assert_int_equal(u16(q + 10), 1);
    size_t off = 12;
    char got[DNS_NAME_MAX + 2];
    assert_int_equal(decode_name(q, (size_t)qlen, &off, got, sizeof got), 0);
    char want[DNS_NAME_MAX + 2];
    snprintf(want, sizeof want, "%s", name);
    size_t wl = strlen(want);
    if (wl && want[wl - 1] == '.') {
        want[wl - 1] = 0;
    }
    assert_string_equal(got, want);
    assert_int_equal(u16(q + off), (unsigned)type);
    assert_int_equal(u16(q + off + 2), 1); /* IN */
    off += 4;
    /* OPT pseudo-RR (RFC 6891 6.1.2): root owner, type 41, class = UDP size, TTL = ext. */
    assert_int_equal((size_t)qlen, off + 11);
    assert_int_equal(q[off], 0);
    assert_int_equal(u16(q + off + 1), 41);
    assert_int_equal(u16(q + off + 3), 1232);
    assert_int_equal(q[off + 5], 0);            /* extended rcode */
    assert_int_equal(q[off + 6], 0);            /* version 0 */
    assert_int_equal(u16(q + off + 7), 0x8000); /* DO only */
    assert_int_equal(u16(q + off + 9), 0);      /* no options */
}

/* A built query carries RD, AD and EDNS DO, CD only when asked, and the name label by label. */
static void test_build_query_fields(void **state)
{
    (void)state;
    uint8_t q[512];
    int n = dns_build_query(q, sizeof q, 0xbeef, "mx-valid.test", DNS_T_MX, 0);
    assert_true(n > 0);
    check_query(q, n, 0xbeef, "mx-valid.test", DNS_T_MX, 0);
    static const uint8_t wire[] = {8,   'm', 'x', '-', 'v', 'a', 'l', 'i',
                                   'd', 4,   't', 'e', 's', 't', 0};
    assert_memory_equal(q + 12, wire, sizeof wire);

    n = dns_build_query(q, sizeof q, 7, "_25._tcp.mx.example.test.", DNS_T_TLSA, DNS_Q_CD);
    assert_true(n > 0);
    check_query(q, n, 7, "_25._tcp.mx.example.test", DNS_T_TLSA, 1);

    for (size_t t = 0; t < sizeof all_qtypes / sizeof *all_qtypes; t++) {
        n = dns_build_query(q, sizeof q, (uint16_t)t, "Example.TEST", all_qtypes[t], 0);
        check_query(q, n, (uint16_t)t, "Example.TEST", all_qtypes[t], 0);
    }
}

/* A trailing dot does not change the encoding. */
static void test_build_query_trailing_dot(void **state)
{
    (void)state;
    uint8_t a[512], b[512];
    int na = dns_build_query(a, sizeof a, 1, "valid.test", DNS_T_MX, 0);
    int nb = dns_build_query(b, sizeof b, 1, "valid.test.", DNS_T_MX, 0);
    assert_true(na > 0);
    assert_int_equal(na, nb);
    assert_memory_equal(a, b, (size_t)na);
}

/* The parser accepts our own queries: one question skipped, no answers, the AD bit we sent. */
static void test_build_query_round_trip(void **state)
{
    (void)state;
    const char *names[] = {"valid.test", "a.b.c.d.e.f.g", "_25._tcp.mx-valid.test."};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        for (size_t t = 0; t < sizeof all_qtypes / sizeof *all_qtypes; t++) {
            uint8_t q[512];
            int n =
                dns_build_query(q, sizeof q, 0x1234, names[i], all_qtypes[t], t % 2 ? DNS_Q_CD : 0);
            assert_true(n > 0);
            dns_result_t res;
            assert_int_equal(dns_parse(q, (size_t)n, names[i], all_qtypes[t], &res), 0);
            assert_int_equal(res.status, DNS_NODATA);
            assert_int_equal(res.rcode, 0);
            assert_int_equal(res.ad, 1);
            assert_int_equal(res.truncated, 0);
            assert_int_equal(res.nrr, 0);
            assert_string_equal(res.cname, "");
            dns_result_clear(&res);
        }
    }
}

/* Labels of 63 octets and names of 253 octets are accepted; 64 and 254 are not. */
static void test_build_query_lengths(void **state)
{
    (void)state;
    uint8_t q[512];
    char name[300];
    memset(name, 'a', 63);
    strcpy(name + 63, ".test");
    int n = dns_build_query(q, sizeof q, 1, name, DNS_T_A, 0);
    check_query(q, n, 1, name, DNS_T_A, 0);

    memset(name, 'a', 64);
    strcpy(name + 64, ".test");
    assert_int_equal(dns_build_query(q, sizeof q, 1, name, DNS_T_A, 0), -1);

    /* 63.63.63.61 = 253 octets of text: the longest name (255 on the wire). */
    memset(name, 'b', 253);
    name[63] = name[127] = name[191] = '.';
    name[253] = 0;
    n = dns_build_query(q, sizeof q, 1, name, DNS_T_A, 0);
    check_query(q, n, 1, name, DNS_T_A, 0);
    assert_int_equal(n, 12 + 255 + 4 + 11);
    strcpy(name + 253, "."); /* the same with a trailing dot */
    assert_int_equal(dns_build_query(q, sizeof q, 1, name, DNS_T_A, 0), n);

    memset(name, 'b', 254); /* 63.63.63.62 */
    name[63] = name[127] = name[191] = '.';
    name[254] = 0;
    assert_int_equal(dns_build_query(q, sizeof q, 1, name, DNS_T_A, 0), -1);
}

/* Empty labels are rejected wherever they are: leading, inside, or a doubled final dot. */
static void test_build_query_empty_label(void **state)
{
    (void)state;
    const char *bad[] = {".test", "a..test", "..", "a.b..c"};
    uint8_t q[512];
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (dns_build_query(q, sizeof q, 1, bad[i], DNS_T_MX, 0) != -1) {
            print_error("'%s' was accepted\n", bad[i]);
            fail();
        }
    }
}

/* "valid.test.." has an empty last label and is not a domain name: it is rejected, not
 * silently queried as "valid.test". */
static void test_build_query_double_trailing_dot(void **state)
{
    (void)state;
    uint8_t q[512];
    int n = dns_build_query(q, sizeof q, 1, "valid.test..", DNS_T_MX, 0);
    if (n != -1) {
        char got[DNS_NAME_MAX + 2] = "?";
        size_t off = 12;
        decode_name(q, (size_t)n, &off, got, sizeof got);
        print_error("'valid.test..' accepted, query built for '%s'\n", got);
    }
    assert_int_equal(n, -1);
}

/* The buffer bound is exact: the query's own length fits, one byte less does not. */
static void test_build_query_buffer(void **state)
{
    (void)state;
    uint8_t q[512];
    int n = dns_build_query(q, sizeof q, 1, "mx-valid.test", DNS_T_MX, 0);
    assert_int_equal(n, 12 + 15 + 4 + 11);
    uint8_t *exact = malloc((size_t)n); /* heap, so ASan catches a write past it */
    assert_non_null(exact);
    assert_int_equal(dns_build_query(exact, (size_t)n, 1, "mx-valid.test", DNS_T_MX, 0), n);
    assert_memory_equal(exact, q, (size_t)n);
    assert_int_equal(dns_build_query(exact, (size_t)n - 1, 1, "mx-valid.test", DNS_T_MX, 0), -1);
    assert_int_equal(dns_build_query(exact, 0, 1, "mx-valid.test", DNS_T_MX, 0), -1);
    free(exact);
}

/* Status and type names are the strings stored in the database. */
static void test_names(void **state)
{
    (void)state;
    static const char *st[] = {"NOERROR", "NODATA",  "NXDOMAIN", "SERVFAIL", "REFUSED",
                               "TIMEOUT", "FORMERR", "NETERR",   "CANCELLED"};
    for (int i = 0; i <= DNS_CANCELLED; i++) {
        assert_string_equal(dns_status_name((dns_status_t)i), st[i]);
    }
    assert_string_equal(dns_status_name((dns_status_t)99), "?");
    assert_string_equal(dns_type_name(DNS_T_MX), "MX");
    assert_string_equal(dns_type_name(DNS_T_TLSA), "TLSA");
    assert_string_equal(dns_type_name(DNS_T_AAAA), "AAAA");
    assert_string_equal(dns_type_name(DNS_T_TXT), "TXT");
    assert_string_equal(dns_type_name(DNS_T_A), "A");
    assert_string_equal(dns_type_name(DNS_T_CNAME), "CNAME");
    assert_string_equal(dns_type_name(999), "?");
}

int main(void)
{
    static const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_qname_case_and_dot),
        cmocka_unit_test(test_other_name_or_type_ignored),
        cmocka_unit_test(test_tc_bit),
        cmocka_unit_test(test_rcode_mapping),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_malformed_any_qtype),
        cmocka_unit_test(test_truncated_prefixes),
        cmocka_unit_test(test_byte_mutations),
        cmocka_unit_test(test_every_file_listed),
        cmocka_unit_test(test_build_query_fields),
        cmocka_unit_test(test_build_query_trailing_dot),
        cmocka_unit_test(test_build_query_round_trip),
        cmocka_unit_test(test_build_query_lengths),
        cmocka_unit_test(test_build_query_empty_label),
        cmocka_unit_test(test_build_query_double_trailing_dot),
        cmocka_unit_test(test_build_query_buffer),
        cmocka_unit_test(test_names),
    };
    /* One named test per data file, then the fixed tests. */
    size_t nfixed = sizeof fixed / sizeof *fixed, n = NCASES + nfixed;
    struct CMUnitTest *tests = calloc(n, sizeof *tests);
    if (!tests) {
        return 1;
    }
    for (size_t i = 0; i < NCASES; i++) {
        tests[i].name = cases[i].file;
        tests[i].test_func = test_answer;
        tests[i].initial_state = (void *)&cases[i];
    }
    memcpy(tests + NCASES, fixed, sizeof fixed);
    int r = _cmocka_run_group_tests("dns", tests, n, NULL, NULL);
    free(tests);
    return r;
}
