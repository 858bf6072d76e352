/*
 * test_grade.c - unit tests of scanner/grade.c (certificate checks and the
 * TLS grade) and of the context rules of verdict_severity.
 *
 * Every certificate is made here, with the OpenSSL 3 API, against a fixed
 * scan time NOW: keys (EC P-256, RSA 1024 and 2048, Ed25519), a root, an
 * intermediate and leaves with the dates, names and signature digests a
 * test needs, serialized leaf first as DER as tls.c records a chain. OCSP
 * responses are built and signed the same way. Verification errors are
 * given as the lists tls.c records; a few tests run X509_verify_cert on the
 * same chains to show those lists are what OpenSSL really reports. Nothing
 * here touches the network. docs/grading.md and docs/findings.md describe
 * the rules checked here.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "scanner/grade.h"
#include "scanner/verdict.h"
#include "tests/support/jsoncheck.h"

/* The scan time every date is judged against: 2025-06-15T15:06:40Z. */
static const time_t NOW = 1750000000;
#define DAY 86400L

/* ---- keys ------------------------------------------------------------ */

static EVP_PKEY *k_root, *k_int, *k_leaf, *k_rsa1024, *k_rsa2048, *k_ed25519, *k_other;
static X509 *root_ca, *int_ca;

/* ---- building certificates ------------------------------------------- */

typedef struct cspec {
    const char *cn;     /* subject CN */
    const char *issuer; /* issuer CN; NULL: self-issued (issuer = subject) */
    const char *san;    /* "DNS:a,DNS:b" for a subjectAltName, NULL for none */
    long nb, na;        /* notBefore and notAfter, seconds from NOW */
    EVP_PKEY *key;      /* the subject's key */
    EVP_PKEY *signer;   /* the issuer's key; NULL: signed with key (self-signed) */
    const EVP_MD *md;   /* signature digest; NULL for EdDSA */
    int ca;             /* basicConstraints CA:TRUE */
} cspec_t;

/* Adds an extension in OpenSSL's configuration syntax. */
static void add_ext(X509 *x, int nid, const char *value)
{
    X509V3_CTX v3;
    X509V3_set_ctx_nodb(&v3);
    X509V3_set_ctx(&v3, x, x, NULL, NULL, 0);
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, nid, value);
    assert_non_null(ext);
    assert_int_equal(X509_add_ext(x, ext, -1), 1);
    X509_EXTENSION_free(ext);
}

/* A certificate as s describes it, or NULL when OpenSSL refuses to sign it. */
static X509 *make_cert(const cspec_t *s)
{
    static long serial = 1;
    X509 *x = X509_new();
    assert_non_null(x);
    assert_int_equal(X509_set_version(x, 2), 1);
    assert_int_equal(ASN1_INTEGER_set(X509_get_serialNumber(x), serial++), 1);
    X509_NAME *subj = X509_NAME_new(), *iss = X509_NAME_new();
    assert_non_null(subj);
    assert_non_null(iss);
    assert_int_equal(X509_NAME_add_entry_by_txt(subj, "CN", MBSTRING_ASC,
                                                (const unsigned char *)s->cn, -1, -1, 0),
                     1);
    const char *icn = s->issuer ? s->issuer : s->cn;
    assert_int_equal(
        X509_NAME_add_entry_by_txt(iss, "CN", MBSTRING_ASC, (const unsigned char *)icn, -1, -1, 0),
        1);
    assert_int_equal(X509_set_subject_name(x, subj), 1);
    assert_int_equal(X509_set_issuer_name(x, iss), 1);
    X509_NAME_free(subj);
    X509_NAME_free(iss);
    time_t now = NOW;
    assert_non_null(X509_time_adj_ex(X509_getm_notBefore(x), 0, s->nb, &now));
    assert_non_null(X509_time_adj_ex(X509_getm_notAfter(x), 0, s->na, &now));
    assert_int_equal(X509_set_pubkey(x, s->key), 1);
    if (s->ca) {
        add_ext(x, NID_basic_constraints, "critical,CA:TRUE");
        add_ext(x, NID_key_usage, "critical,keyCertSign,cRLSign");
    }
    if (s->san) {
        add_ext(x, NID_subject_alt_name, s->san);
    }
    ERR_clear_error();
    if (X509_sign(x, s->signer ? s->signer : s->key, s->md) <= 0) {
        X509_free(x);
        ERR_clear_error();
        return NULL;
    }
    return x;
}

/* A leaf for host names san, issued by the intermediate, valid from nb to na. */
static X509 *make_leaf(const char *cn, const char *san, long nb, long na, EVP_PKEY *key)
{
    cspec_t s = {cn, "Example Int", san, nb, na, key, k_int, EVP_sha256(), 0};
    X509 *x = make_cert(&s);
    assert_non_null(x);
    return x;
}

/* A healthy leaf for mx.example.com: EC P-256, SHA-256, 30 days old, 60 days left. */
static X509 *good_leaf(void)
{
    return make_leaf("mx.example.com", "DNS:mx.example.com", -30 * DAY, 60 * DAY, k_leaf);
}

/* DER certificates concatenated, leaf first, as tls.c records a chain. */
typedef struct der {
    unsigned char *p;
    size_t len;
} der_t;

/* Appends one certificate to a chain. */
static void der_add(der_t *d, X509 *x)
{
    int n = i2d_X509(x, NULL);
    assert_true(n > 0);
    d->p = realloc(d->p, d->len + (size_t)n);
    assert_non_null(d->p);
    unsigned char *q = d->p + d->len;
    assert_int_equal(i2d_X509(x, &q), n);
    d->len += (size_t)n;
}

/* The chain of up to three certificates (NULL ends it early). */
static der_t chain_of(X509 *a, X509 *b, X509 *c)
{
    der_t d = {NULL, 0};
    der_add(&d, a);
    if (b) {
        der_add(&d, b);
        if (c) {
            der_add(&d, c);
        }
    }
    return d;
}

/* ---- OCSP responses -------------------------------------------------- */

/* A DER OCSP response: resp_status other than SUCCESSFUL gives a bare response (e.g.
 * TRYLATER); otherwise one single response of cert_status (V_OCSP_CERTSTATUS_*) for leaf,
 * signed by the intermediate. */
static der_t ocsp_response(X509 *leaf, int resp_status, int cert_status)
{
    OCSP_RESPONSE *r;
    if (resp_status != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
        r = OCSP_response_create(resp_status, NULL);
    } else {
        time_t now = NOW;
        OCSP_BASICRESP *bs = OCSP_BASICRESP_new();
        OCSP_CERTID *id = OCSP_cert_to_id(EVP_sha1(), leaf, int_ca);
        ASN1_TIME *thisupd = X509_time_adj_ex(NULL, 0, -3600, &now);
        ASN1_TIME *nextupd = X509_time_adj_ex(NULL, 7, 0, &now);
        ASN1_TIME *revtime = X509_time_adj_ex(NULL, -2, 0, &now);
        assert_non_null(bs);
        assert_non_null(id);
        int revoked = cert_status == V_OCSP_CERTSTATUS_REVOKED;
        assert_non_null(OCSP_basic_add1_status(bs, id, cert_status,
                                               revoked ? OCSP_REVOKED_STATUS_KEYCOMPROMISE : 0,
                                               revoked ? revtime : NULL, thisupd, nextupd));
        assert_int_equal(OCSP_basic_sign(bs, int_ca, k_int, EVP_sha256(), NULL, 0), 1);
        r = OCSP_response_create(OCSP_RESPONSE_STATUS_SUCCESSFUL, bs);
        OCSP_CERTID_free(id);
        ASN1_TIME_free(thisupd);
        ASN1_TIME_free(nextupd);
        ASN1_TIME_free(revtime);
        OCSP_BASICRESP_free(bs);
    }
    assert_non_null(r);
    der_t d = {NULL, 0};
    int n = i2d_OCSP_RESPONSE(r, &d.p);
    assert_true(n > 0);
    d.len = (size_t)n;
    OCSP_RESPONSE_free(r);
    return d;
}

/* ---- findings -------------------------------------------------------- */

#define MAXF 16

typedef struct found {
    int n;
    char code[MAXF][48];
    char detail[MAXF][512];
} found_t;

/* Collects findings; every code emitted must be one of verdict.c's table. */
static void collect(void *ctx, const char *code, const char *detail)
{
    found_t *f = ctx;
    if (!verdict_lookup(code)) {
        print_error("unknown code emitted: %s\n", code);
    }
    assert_non_null(verdict_lookup(code));
    assert_non_null(detail);
    assert_true(f->n < MAXF);
    snprintf(f->code[f->n], sizeof f->code[0], "%s", code);
    snprintf(f->detail[f->n], sizeof f->detail[0], "%s", detail);
    f->n++;
}

/* The detail of the finding code, or NULL when it was not emitted. */
static const char *got(const found_t *f, const char *code)
{
    for (int i = 0; i < f->n; i++) {
        if (strcmp(f->code[i], code) == 0) {
            return f->detail[i];
        }
    }
    return NULL;
}

/* The codes emitted, space separated, in order. */
static const char *codes(const found_t *f)
{
    static char buf[MAXF * 48];
    buf[0] = 0;
    for (int i = 0; i < f->n; i++) {
        if (i) {
            strcat(buf, " ");
        }
        strcat(buf, f->code[i]);
    }
    return buf;
}

/* ---- judging a chain ------------------------------------------------- */

/* Options at NOW with the default 14-day horizon and no --aka or --expect-ocsp. */
static grade_opts_t opts(void)
{
    grade_opts_t o = {.now = NOW, .expiry_warning_s = 14 * DAY};
    return o;
}

/* Runs grade_cert and grade_cert_findings on a chain for host with the given errors. */
static void judge_ex(const der_t *d, const char *host, const long *errs, int nerrs,
                     const der_t *ocsp, const grade_opts_t *o, cert_facts_t *c, found_t *f)
{
    memset(f, 0, sizeof *f);
    int rc = grade_cert(d->p, d->len, host, errs, nerrs, ocsp ? ocsp->p : NULL,
                        ocsp ? ocsp->len : 0, o, c);
    assert_int_equal(rc, 0);
    assert_int_equal(c->parsed, 1);
    grade_cert_findings(c, o, collect, f);
}

/* judge_ex with the default options and no OCSP staple. */
static void judge(const der_t *d, const char *host, const long *errs, int nerrs, cert_facts_t *c,
                  found_t *f)
{
    grade_opts_t o = opts();
    judge_ex(d, host, errs, nerrs, NULL, &o, c, f);
}

/* ISO 8601 text of NOW + off, as grade.c writes dates. */
static void iso_at(long off, char out[32])
{
    time_t t = NOW + off;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Frees a chain and its leaf. */
static void drop(der_t *d, X509 *leaf)
{
    free(d->p);
    d->p = NULL;
    X509_free(leaf);
}

/* ---- fixture ---------------------------------------------------------- */

/* Keys and the two CA certificates, made once for the whole group (RSA keys are slow). */
static int setup(void **state)
{
    (void)state;
    k_root = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    k_int = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    k_leaf = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    k_other = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    k_rsa1024 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    k_rsa2048 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    k_ed25519 = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (!k_root || !k_int || !k_leaf || !k_other || !k_rsa1024 || !k_rsa2048 || !k_ed25519) {
        return -1;
    }
    cspec_t r = {"Example Root", NULL,         NULL, -3650 * DAY, 3650 * DAY, k_root,
                 NULL,           EVP_sha256(), 1};
    cspec_t i = {"Example Int", "Example Root", NULL,         -365 * DAY, 1825 * DAY,
                 k_int,         k_root,         EVP_sha256(), 1};
    root_ca = make_cert(&r);
    int_ca = make_cert(&i);
    return root_ca && int_ca ? 0 : -1;
}

/* Frees the fixture. */
static int teardown(void **state)
{
    (void)state;
    X509_free(root_ca);
    X509_free(int_ca);
    EVP_PKEY *keys[] = {k_root, k_int, k_leaf, k_other, k_rsa1024, k_rsa2048, k_ed25519};
    for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
        EVP_PKEY_free(keys[i]);
    }
    return 0;
}

/* ---- certificate facts ------------------------------------------------ */

/* A healthy chain gives every fact right (names, dates, key, algorithm, DNs) and no finding
 * but cert.ocsp.missing. */
static void test_cert_clean(void **state)
{
    (void)state;
    X509 *leaf = good_leaf();
    der_t d = chain_of(leaf, int_ca, NULL);
    cert_facts_t c;
    found_t f;
    judge(&d, "mx.example.com", NULL, 0, &c, &f);
    char nb[32], na[32];
    iso_at(-30 * DAY, nb);
    iso_at(60 * DAY, na);
    assert_string_equal(c.subject, "CN=mx.example.com");
    assert_string_equal(c.issuer, "CN=Example Int");
    assert_string_equal(c.not_before, nb);
    assert_string_equal(c.not_after, na);
    assert_string_equal(c.not_after, "2025-08-14T15:06:40Z");
    assert_string_equal(c.names_json, "[\"mx.example.com\"]");
    assert_string_equal(c.key_type, "EC");
    assert_int_equal(c.key_bits, 256);
    assert_string_equal(c.sig_alg, "ecdsa-with-SHA256");
    assert_int_equal(c.days_left, 60);
    assert_false(c.expired || c.not_yet_valid || c.expiring || c.key_weak || c.sig_weak);
    assert_true(c.name_ok && c.trusted && c.pkix_valid);
    assert_string_equal(c.untrusted_detail, "");
    assert_string_equal(c.ocsp_status, "");
    assert_string_equal(codes(&f), "cert.ocsp.missing");
    grade_cert_clear(&c);
    assert_null(c.names_json);
    drop(&d, leaf);
}

/* Bytes that hold no certificate give -1 and parsed = 0, and no finding; bytes after a good
 * leaf are ignored. */
static void test_cert_unparsable(void **state)
{
    (void)state;
    grade_opts_t o = opts();
    cert_facts_t c;
    found_t f = {0};
    const unsigned char junk[] = "not a certificate";
    assert_int_equal(grade_cert(junk, sizeof junk, "mx.example.com", NULL, 0, NULL, 0, &o, &c), -1);
    assert_int_equal(c.parsed, 0);
    grade_cert_findings(&c, &o, collect, &f);
    assert_int_equal(f.n, 0);
    grade_cert_clear(&c);
    assert_int_equal(grade_cert(junk, 0, "mx.example.com", NULL, 0, NULL, 0, &o, &c), -1);
    grade_cert_clear(&c);

    X509 *leaf = good_leaf();
    der_t d = chain_of(leaf, NULL, NULL);
    d.p = realloc(d.p, d.len + sizeof junk);
    assert_non_null(d.p);
    memcpy(d.p + d.len, junk, sizeof junk);
    d.len += sizeof junk;
    assert_int_equal(grade_cert(d.p, d.len, "mx.example.com", NULL, 0, NULL, 0, &o, &c), 0);
    assert_true(c.parsed && c.name_ok);
    grade_cert_clear(&c);
    drop(&d, leaf);
}

/* notAfter in the past gives cert.expired with "N days ago", not cert.expiring, and
 * pkix_valid = 0; the expiry error in the list does not make the chain untrusted. */
static void test_cert_expired(void **state)
{
    (void)state;
    X509 *leaf = make_leaf("mx.example.com", "DNS:mx.example.com", -100 * DAY, -10 * DAY, k_leaf);
    der_t d = chain_of(leaf, int_ca, NULL);
    long errs[] = {X509_V_ERR_CERT_HAS_EXPIRED};
    cert_facts_t c;
    found_t f;
    judge(&d, "mx.example.com", errs, 1, &c, &f);
    char na[32], want[96];
    iso_at(-10 * DAY, na);
    snprintf(want, sizeof want, "notAfter %s (10 days ago)", na);
    assert_true(c.expired);
    assert_false(c.expiring);
    assert_int_equal(c.days_left, -10);
    assert_true(c.trusted);
    assert_false(c.pkix_valid);
    assert_non_null(got(&f, "cert.expired"));
    assert_string_equal(got(&f, "cert.expired"), want);
    assert_string_equal(codes(&f), "cert.expired cert.ocsp.missing");
    grade_cert_clear(&c);
    drop(&d, leaf);
}

/* notBefore in the future gives cert.not_yet_valid with the date, and pkix_valid = 0; the
 * not-yet-valid error does not make the chain untrusted. */
static void test_cert_not_yet_valid(void **state)
{
    (void)state;
    X509 *leaf = make_leaf("mx.example.com", "DNS:mx.example.com", 2 * DAY, 92 * DAY, k_leaf);
    der_t d = chain_of(leaf, int_ca, NULL);
    long errs[] = {X509_V_ERR_CERT_NOT_YET_VALID};
    cert_facts_t c;
    found_t f;
    judge(&d, "mx.example.com", errs, 1, &c, &f);
    char nb[32], want[64];
    iso_at(2 * DAY, nb);
    snprintf(want, sizeof want, "notBefore %s", nb);
    assert_true(c.not_yet_valid);
    assert_false(c.expired);
    assert_true(c.trusted);
    assert_false(c.pkix_valid);
    assert_non_null(got(&f, "cert.not_yet_valid"));
    assert_string_equal(got(&f, "cert.not_yet_valid"), want);
    assert_string_equal(codes(&f), "cert.not_yet_valid cert.ocsp.missing");
    grade_cert_clear(&c);
    drop(&d, leaf);
}

/* cert.expiring fires strictly inside the --expiry-warning horizon ("N days left") and not
 * outside it; it does not touch pkix_valid. */
static void test_cert_expiring_horizon(void **state)
{
    (void)state;
    struct {
        long na;
        long horizon;
        int expiring;
        long days;
    } cases[] = {
        {5 * DAY, 14 * DAY, 1, 5},       /* well inside the default horizon */
        {14 * DAY - 1, 14 * DAY, 1, 13}, /* one second inside */
        {14 * DAY, 14 * DAY, 0, 14},     /* exactly on it: not inside */
        {20 * DAY, 14 * DAY, 0, 20},     /* outside */
        {20 * DAY, 30 * DAY, 1, 20},     /* a longer --expiry-warning */
        {3600, 0, 0, 0},                 /* horizon 0: never */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        X509 *leaf =
            make_leaf("mx.example.com", "DNS:mx.example.com", -30 * DAY, cases[i].na, k_leaf);
        der_t d = chain_of(leaf, int_ca, NULL);
        grade_opts_t o = opts();
        o.expiry_warning_s = cases[i].horizon;
        cert_facts_t c;
        found_t f;
        judge_ex(&d, "mx.example.com", NULL, 0, NULL, &o, &c, &f);
        if (c.expiring != cases[i].expiring) {
            print_error("case %zu: expiring %d\n", i, c.expiring);
        }
        assert_int_equal(c.expiring, cases[i].expiring);
        assert_int_equal(c.days_left, cases[i].days);
        assert_true(c.pkix_valid);
        if (cases[i].expiring) {
            char na[32], want[96];
            iso_at(cases[i].na, na);
            snprintf(want, sizeof want, "notAfter %s (%ld days left)", na, cases[i].days);
            assert_non_null(got(&f, "cert.expiring"));
            assert_string_equal(got(&f, "cert.expiring"), want);
        } else {
            assert_null(got(&f, "cert.expiring"));
        }
        grade_cert_clear(&c);
        drop(&d, leaf);
    }
}

/* ---- names ------------------------------------------------------------ */

/* The MX host name matches a SAN entry exactly (case-insensitively), and only that name. */
static void test_name_exact(void **state)
{
    (void)state;
    X509 *leaf = make_leaf("mx.example.com", "DNS:mx.example.com,DNS:mx2.example.com", -DAY,
                           90 * DAY, k_leaf);
    der_t d = chain_of(leaf, int_ca, NULL);
    const char *ok[] = {"mx.example.com", "MX.Example.COM", "mx2.example.com"};
    const char *bad[] = {"example.com", "mx3.example.com", "a.mx.example.com"};
    cert_facts_t c;
    found_t f;
    for (size_t i = 0; i < 3; i++) {
        judge(&d, ok[i], NULL, 0, &c, &f);
        assert_true(c.name_ok);
        assert_null(got(&f, "cert.name_mismatch"));
        grade_cert_clear(&c);
        judge(&d, bad[i], NULL, 0, &c, &f);
        assert_false(c.name_ok);
        assert_non_null(got(&f, "cert.name_mismatch"));
        grade_cert_clear(&c);
    }
    drop(&d, leaf);
}

/* A wildcard SAN covers exactly one label (RFC 6125 6.4.3): not the parent, not two labels. */
static void test_name_wildcard(void **state)
{
    (void)state;
    X509 *leaf = make_leaf("*.example.com", "DNS:*.example.com", -DAY, 90 * DAY, k_leaf);
    der_t d = chain_of(leaf, int_ca, NULL);
    cert_facts_t c;
    found_t f;
    judge(&d, "mx.example.com", NULL, 0, &c, &f);
    assert_true(c.name_ok);
    assert_string_equal(c.names_json, "[\"*.example.com\"]");
    grade_cert_clear(&c);
    judge(&d, "a.mx.example.com", NULL, 0, &c, &f);
    assert_false(c.name_ok);
    grade_cert_clear(&c);
    judge(&d, "example.com", NULL, 0, &c, &f);
    assert_false(c.name_ok);
    grade_cert_clear(&c);
    drop(&d, leaf);
}

/* An --aka name accepted for every MX makes a certificate for another name match. */
static void test_name_aka(void **state)
{
    (void)state;
    X509 *leaf = make_leaf("mail.example.net", "DNS:mail.example.net", -DAY, 90 * DAY, k_leaf);
    der_t d = chain_of(leaf, int_ca, NULL);
    cert_facts_t c;
    found_t f;
    judge(&d, "mx.example.com", NULL, 0, &c, &f);
    assert_false(c.name_ok);
    assert_false(c.pkix_valid);
    grade_cert_clear(&c);

    const char *aka[] = {"other.example.org", "mail.example.net"};
    grade_opts_t o = opts();
    o.aka = aka;
    o.naka = 2;
    judge_ex(&d, "mx.example.com", NULL, 0, NULL, &o, &c, &f);
    assert_true(c.name_ok);
    assert_true(c.pkix_valid);
    assert_null(got(&f, "cert.name_mismatch"));
    grade_cert_clear(&c);

    o.naka = 1; /* only other.example.org */
    judge_ex(&d, "mx.example.com", NULL, 0, NULL, &o, &c, &f);
    assert_false(c.name_ok);
    grade_cert_clear(&c);
    drop(&d, leaf);
}

/* A mismatch names every DNS name of the certificate in its detail (SAN, else the CN); a
 * hostname-mismatch error does not make the chain untrusted. */
static void test_name_mismatch_detail(void **state)
{
    (void)state;
    X509 *leaf = make_leaf("a.example.net", "DNS:a.example.net,DNS:b.example.net,IP:192.0.2.1",
                           -DAY, 90 * DAY, k_leaf);
    der_t d = chain_of(leaf, int_ca, NULL);
    long errs[] = {X509_V_ERR_HOSTNAME_MISMATCH};
    cert_facts_t c;
    found_t f;
    judge(&d, "mx.example.com", errs, 1, &c, &f);
    assert_false(c.name_ok);
    assert_true(c.trusted);
    assert_false(c.pkix_valid);
    assert_string_equal(c.names_json, "[\"a.example.net\",\"b.example.net\"]");
    assert_non_null(got(&f, "cert.name_mismatch"));
    assert_string_equal(got(&f, "cert.name_mismatch"),
                        "certificate names [\"a.example.net\",\"b.example.net\"]");
    char **items = NULL;
    size_t n = 0;
    assert_int_equal(jc_json_string_array(c.names_json, 0, &items, &n, NULL), 0);
    assert_int_equal(n, 2);
    jc_free_strings(items, n);
    grade_cert_clear(&c);
    drop(&d, leaf);

    /* No SAN: the CN is the one name (OpenSSL's X509_check_host falls back to it). */
    leaf = make_leaf("cn-only.example.net", NULL, -DAY, 90 * DAY, k_leaf);
    d = chain_of(leaf, int_ca, NULL);
    judge(&d, "mx.example.com", NULL, 0, &c, &f);
    assert_string_equal(c.names_json, "[\"cn-only.example.net\"]");
    assert_string_equal(got(&f, "cert.name_mismatch"),
                        "certificate names [\"cn-only.example.net\"]");
    grade_cert_clear(&c);
    judge(&d, "cn-only.example.net", NULL, 0, &c, &f);
    assert_true(c.name_ok);
    grade_cert_clear(&c);
    drop(&d, leaf);
}

/* ---- keys and signatures ---------------------------------------------- */

/* Key thresholds: RSA 1024 is weak ("RSA 1024 bits"), RSA 2048, EC P-256 and Ed25519 are not. */
static void test_key_sizes(void **state)
{
    (void)state;
    struct {
        EVP_PKEY **key;
        const char *type;
        int bits, weak;
    } cases[] = {
        {&k_rsa1024, "RSA", 1024, 1},
        {&k_rsa2048, "RSA", 2048, 0},
        {&k_leaf, "EC", 256, 0},
        {&k_ed25519, "ED25519", 256, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        X509 *leaf =
            make_leaf("mx.example.com", "DNS:mx.example.com", -DAY, 90 * DAY, *cases[i].key);
        der_t d = chain_of(leaf, int_ca, NULL);
        cert_facts_t c;
        found_t f;
        judge(&d, "mx.example.com", NULL, 0, &c, &f);
        assert_string_equal(c.key_type, cases[i].type);
        assert_int_equal(c.key_bits, cases[i].bits);
        assert_int_equal(c.key_weak, cases[i].weak);
        if (cases[i].weak) {
            assert_non_null(got(&f, "cert.key.weak"));
            assert_string_equal(got(&f, "cert.key.weak"), "RSA 1024 bits");
        } else {
            assert_null(got(&f, "cert.key.weak"));
        }
        /* A weak key is not a PKIX failure. */
        assert_true(c.pkix_valid);
        grade_cert_clear(&c);
        drop(&d, leaf);
    }
}

/* A leaf signed by an Ed25519 issuer has an EdDSA signature, which is not weak. */
static void test_sig_ed25519(void **state)
{
    (void)state;
    cspec_t s = {"mx.example.com",
                 "Ed Int",
                 "DNS:mx.example.com",
                 -DAY,
                 90 * DAY,
                 k_leaf,
                 k_ed25519,
                 NULL,
                 0};
    X509 *leaf = make_cert(&s);
    assert_non_null(leaf);
    der_t d = chain_of(leaf, NULL, NULL);
    cert_facts_t c;
    found_t f;
    judge(&d, "mx.example.com", NULL, 0, &c, &f);
    assert_string_equal(c.sig_alg, "ED25519");
    assert_false(c.sig_weak);
    grade_cert_clear(&c);
    drop(&d, leaf);
}

/* Signs a certificate with SHA-1, or skips the test when this OpenSSL refuses to. */
static X509 *make_sha1(const cspec_t *s)
{
    X509 *x = make_cert(s);
    if (!x) {
        print_message("OpenSSL refused to sign with SHA-1 (X509_sign with EVP_sha1() failed); "
                      "SHA-1 tests skipped\n");
        skip();
    }
    return x;
}

/* A SHA-1 leaf gives cert.sig.weak naming the algorithm and depth 0. */
static void test_sig_sha1_leaf(void **state)
{
    (void)state;
    cspec_t s = {"mx.example.com", "RSA Int", "DNS:mx.example.com", -DAY, 90 * DAY,
                 k_leaf,           k_rsa2048, EVP_sha1(),           0};
    X509 *leaf = make_sha1(&s);
    der_t d = chain_of(leaf, NULL, NULL);
    cert_facts_t c;
    found_t f;
    judge(&d, "mx.example.com", NULL, 0, &c, &f);
    assert_string_equal(c.sig_alg, "sha1WithRSAEncryption");
    assert_true(c.sig_weak);
    assert_non_null(got(&f, "cert.sig.weak"));
    assert_string_equal(got(&f, "cert.sig.weak"),
                        "sha1WithRSAEncryption on the certificate at depth 0");
    assert_true(c.pkix_valid); /* weak signature is reported, not a PKIX failure here */
    grade_cert_clear(&c);
    drop(&d, leaf);

    /* ECDSA with SHA-1 is weak too. */
    cspec_t e = {"mx.example.com", "Example Int", "DNS:mx.example.com", -DAY, 90 * DAY,
                 k_leaf,           k_int,         EVP_sha1(),           0};
    leaf = make_sha1(&e);
    d = chain_of(leaf, int_ca, NULL);
    judge(&d, "mx.example.com", NULL, 0, &c, &f);
    assert_string_equal(got(&f, "cert.sig.weak"), "ecdsa-with-SHA1 on the certificate at depth 0");
    grade_cert_clear(&c);
    drop(&d, leaf);
}

/* A SHA-1 signature on a self-signed root in the chain does not count (nobody checks it);
 * one on an intermediate does, at depth 1. */
static void test_sig_sha1_root_not_counted(void **state)
{
    (void)state;
    cspec_t rs = {"Old Root", NULL, NULL, -3650 * DAY, 3650 * DAY, k_rsa2048, NULL, EVP_sha1(), 1};
    X509 *old_root = make_sha1(&rs);
    cspec_t is = {"Old Int", "Old Root", NULL,         -365 * DAY, 365 * DAY,
                  k_int,     k_rsa2048,  EVP_sha256(), 1};
    X509 *old_int = make_cert(&is);
    assert_non_null(old_int);
    cspec_t ls = {"mx.example.com", "Old Int", "DNS:mx.example.com", -DAY, 90 * DAY,
                  k_leaf,           k_int,     EVP_sha256(),         0};
    X509 *leaf = make_cert(&ls);
    assert_non_null(leaf);
    der_t d = chain_of(leaf, old_int, old_root);
    cert_facts_t c;
    found_t f;
    judge(&d, "mx.example.com", NULL, 0, &c, &f);
    assert_false(c.sig_weak);
    assert_null(got(&f, "cert.sig.weak"));
    grade_cert_clear(&c);
    free(d.p);

    /* The same intermediate signed with SHA-1 counts. */
    cspec_t is1 = is;
    is1.md = EVP_sha1();
    X509 *sha1_int = make_sha1(&is1);
    d = chain_of(leaf, sha1_int, old_root);
    judge(&d, "mx.example.com", NULL, 0, &c, &f);
    assert_true(c.sig_weak);
    assert_string_equal(got(&f, "cert.sig.weak"),
                        "sha1WithRSAEncryption on the certificate at depth 1");
    assert_string_equal(c.sig_alg, "ecdsa-with-SHA256"); /* sig_alg is the leaf's */
    grade_cert_clear(&c);
    free(d.p);
    X509_free(sha1_int);
    X509_free(old_int);
    X509_free(old_root);
    X509_free(leaf);
}

/* ---- trust ------------------------------------------------------------ */

/* Judges chain d with one verification error and returns the untrusted detail (static). */
static const char *untrusted_with(const der_t *d, long err)
{
    static char detail[256];
    cert_facts_t c;
    found_t f;
    judge(d, "mx.example.com", &err, 1, &c, &f);
    assert_false(c.trusted);
    assert_false(c.pkix_valid);
    assert_non_null(got(&f, "cert.untrusted"));
    assert_string_equal(got(&f, "cert.untrusted"), c.untrusted_detail);
    snprintf(detail, sizeof detail, "%s", c.untrusted_detail);
    grade_cert_clear(&c);
    return detail;
}

/* Each trust error is told apart in words: {18} self-signed, {19} untrusted root naming it,
 * {20} with only a leaf (incomplete chain), {20} with an intermediate (unknown issuer),
 * {21} (incomplete chain), signature failures and other errors. */
static void test_trust_details(void **state)
{
    (void)state;
    cspec_t ss = {"mx.example.com", NULL, "DNS:mx.example.com", -DAY, 90 * DAY,
                  k_leaf,           NULL, EVP_sha256(),         0};
    X509 *self = make_cert(&ss);
    assert_non_null(self);
    der_t d = chain_of(self, NULL, NULL);
    assert_string_equal(untrusted_with(&d, X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT),
                        "self-signed certificate");
    drop(&d, self);

    X509 *leaf = good_leaf();
    d = chain_of(leaf, int_ca, root_ca);
    assert_string_equal(untrusted_with(&d, X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN),
                        "untrusted root: self-signed certificate in chain (CN=Example Root)");
    free(d.p);

    d = chain_of(leaf, NULL, NULL);
    assert_string_equal(untrusted_with(&d, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY),
                        "incomplete chain or unknown issuer: only the leaf was sent, issuer "
                        "CN=Example Int not found");
    assert_string_equal(untrusted_with(&d, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT),
                        "incomplete chain or unknown issuer: only the leaf was sent, issuer "
                        "CN=Example Int not found");
    assert_string_equal(untrusted_with(&d, X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE),
                        "incomplete chain: the leaf's issuer CN=Example Int was not sent");
    free(d.p);

    d = chain_of(leaf, int_ca, NULL);
    assert_string_equal(untrusted_with(&d, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY),
                        "unknown issuer: CN=Example Root is not a trusted CA");
    assert_string_equal(untrusted_with(&d, X509_V_ERR_CERT_SIGNATURE_FAILURE),
                        "invalid chain: certificate signature failure");
    assert_string_equal(untrusted_with(&d, X509_V_ERR_INVALID_CA),
                        "invalid chain: invalid CA certificate");
    /* An error with no words of its own gets OpenSSL's text. */
    assert_string_equal(untrusted_with(&d, X509_V_ERR_CERT_CHAIN_TOO_LONG),
                        X509_verify_cert_error_string(X509_V_ERR_CERT_CHAIN_TOO_LONG));
    drop(&d, leaf);
}

/* With several errors, dates and names are skipped and the first trust error gives the
 * words; errors that are only about dates or names never make a chain untrusted. */
static void test_trust_only_from_trust_errors(void **state)
{
    (void)state;
    X509 *leaf = good_leaf();
    der_t d = chain_of(leaf, int_ca, NULL);
    cert_facts_t c;
    found_t f;
    long names[] = {X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_DANE_NO_MATCH, X509_V_OK};
    judge(&d, "mx.example.com", names, 3, &c, &f);
    assert_true(c.trusted);
    assert_null(got(&f, "cert.untrusted"));
    grade_cert_clear(&c);

    /* The leaf's own date errors are cert.expired / cert.not_yet_valid, not trust. */
    X509 *old = make_leaf("mx.example.com", "DNS:mx.example.com", -90 * DAY, -5 * DAY, k_leaf);
    der_t od = chain_of(old, int_ca, NULL);
    long expired[] = {X509_V_ERR_CERT_HAS_EXPIRED};
    judge(&od, "mx.example.com", expired, 1, &c, &f);
    assert_true(c.trusted);
    assert_true(c.expired);
    assert_null(got(&f, "cert.untrusted"));
    grade_cert_clear(&c);
    drop(&od, old);

    long mixed[] = {X509_V_ERR_CERT_HAS_EXPIRED, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY};
    judge(&d, "mx.example.com", mixed, 2, &c, &f);
    assert_false(c.trusted);
    assert_string_equal(got(&f, "cert.untrusted"),
                        "unknown issuer: CN=Example Root is not a trusted CA");
    grade_cert_clear(&c);
    drop(&d, leaf);
}

/* pkix_valid is trusted AND name matches AND not expired AND not before notBefore, for all
 * sixteen combinations. */
static void test_pkix_valid_truth_table(void **state)
{
    (void)state;
    long untrusted[] = {X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY};
    for (int bits = 0; bits < 16; bits++) {
        int trusted = !(bits & 1), name = !(bits & 2), expired = (bits & 4) != 0,
            future = (bits & 8) != 0;
        X509 *leaf = make_leaf("mx.example.com", "DNS:mx.example.com", future ? DAY : -60 * DAY,
                               expired ? -DAY : 60 * DAY, k_leaf);
        der_t d = chain_of(leaf, int_ca, NULL);
        cert_facts_t c;
        found_t f;
        judge(&d, name ? "mx.example.com" : "other.example.com", trusted ? NULL : untrusted,
              trusted ? 0 : 1, &c, &f);
        assert_int_equal(c.trusted, trusted);
        assert_int_equal(c.name_ok, name);
        assert_int_equal(c.expired, expired);
        assert_int_equal(c.not_yet_valid, future);
        assert_int_equal(c.pkix_valid, trusted && name && !expired && !future);
        grade_cert_clear(&c);
        drop(&d, leaf);
    }
}

/* ---- what OpenSSL really reports -------------------------------------- */

typedef struct observed {
    long errs[8];
    int n;
} observed_t;

/* Records every distinct verification error, as tls.c's observe_verify_cb does. */
static int observe_cb(int ok, X509_STORE_CTX *xs)
{
    observed_t *o = X509_STORE_CTX_get_app_data(xs);
    if (!ok) {
        long e = X509_STORE_CTX_get_error(xs);
        int seen = 0;
        for (int i = 0; i < o->n; i++) {
            seen |= o->errs[i] == e;
        }
        if (!seen && o->n < 8) {
            o->errs[o->n++] = e;
        }
    }
    return 1;
}

/* Verifies leaf with the untrusted certificates a and b against a store holding anchor (or
 * nothing) at NOW, and returns the errors met. */
static observed_t observe(X509 *leaf, X509 *a, X509 *b, X509 *anchor)
{
    observed_t o = {{0}, 0};
    X509_STORE *st = X509_STORE_new();
    STACK_OF(X509) *untrusted = sk_X509_new_null();
    X509_STORE_CTX *ctx = X509_STORE_CTX_new();
    assert_non_null(st);
    assert_non_null(untrusted);
    assert_non_null(ctx);
    if (anchor) {
        assert_int_equal(X509_STORE_add_cert(st, anchor), 1);
    }
    if (a) {
        sk_X509_push(untrusted, a);
    }
    if (b) {
        sk_X509_push(untrusted, b);
    }
    assert_int_equal(X509_STORE_CTX_init(ctx, st, leaf, untrusted), 1);
    X509_VERIFY_PARAM_set_time(X509_STORE_CTX_get0_param(ctx), NOW);
    X509_STORE_CTX_set_verify_cb(ctx, observe_cb);
    X509_STORE_CTX_set_app_data(ctx, &o);
    (void)X509_verify_cert(ctx);
    X509_STORE_CTX_free(ctx);
    sk_X509_free(untrusted);
    X509_STORE_free(st);
    return o;
}

/* Asserts an observed error list. */
static void assert_errors(const observed_t *o, const long *want, int n)
{
    if (o->n != n) {
        print_error("observed %d errors, want %d:", o->n, n);
        for (int i = 0; i < o->n; i++) {
            print_error(" %ld", o->errs[i]);
        }
        print_error("\n");
    }
    assert_int_equal(o->n, n);
    for (int i = 0; i < n; i++) {
        assert_int_equal(o->errs[i], want[i]);
    }
}

/* The error lists the trust tests use are what X509_verify_cert (OpenSSL 3.0, callback
 * returning 1 as in tls.c) reports: a lone self-signed leaf {18}, a chain up to an untrusted
 * root {19}, leaf and intermediate without the root {20}, a lone leaf {20, 21} (so the
 * "only the leaf was sent" words win), a complete chain to a trusted root none. */
static void test_observed_errors_match(void **state)
{
    (void)state;
    cspec_t ss = {"mx.example.com", NULL, "DNS:mx.example.com", -DAY, 90 * DAY,
                  k_leaf,           NULL, EVP_sha256(),         0};
    X509 *self = make_cert(&ss);
    assert_non_null(self);
    X509 *leaf = good_leaf();
    observed_t o;

    o = observe(self, NULL, NULL, NULL);
    assert_errors(&o, (long[]){X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT}, 1);
    o = observe(leaf, int_ca, root_ca, NULL);
    assert_errors(&o, (long[]){X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN}, 1);
    o = observe(leaf, int_ca, NULL, NULL);
    assert_errors(&o, (long[]){X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY}, 1);
    o = observe(leaf, NULL, NULL, NULL);
    assert_errors(&o,
                  (long[]){X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
                           X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE},
                  2);
    o = observe(leaf, int_ca, NULL, root_ca);
    assert_errors(&o, NULL, 0);

    /* And grade_cert words them as the trust tests expect. */
    der_t d = chain_of(leaf, NULL, NULL);
    o = observe(leaf, NULL, NULL, NULL);
    cert_facts_t c;
    found_t f;
    judge(&d, "mx.example.com", o.errs, o.n, &c, &f);
    assert_string_equal(c.untrusted_detail, "incomplete chain or unknown issuer: only the leaf "
                                            "was sent, issuer CN=Example Int not found");
    grade_cert_clear(&c);
    free(d.p);

    /* A trusted, complete chain is PKIX-valid from what verification reports. */
    d = chain_of(leaf, int_ca, NULL);
    o = observe(leaf, int_ca, NULL, root_ca);
    judge(&d, "mx.example.com", o.errs, o.n, &c, &f);
    assert_true(c.pkix_valid);
    grade_cert_clear(&c);
    free(d.p);
    X509_free(self);
    X509_free(leaf);
}

/* BUG (grade.c:218-230, 275-280, 312): an expired intermediate. X509_verify_cert reports
 * {10} (CERT_HAS_EXPIRED) for a valid leaf under an expired intermediate and a trusted root;
 * grade_cert treats error 10 as "about the leaf's dates", judges dates from the leaf alone,
 * and so reports trusted = 1, pkix_valid = 1 and no finding at all for a chain that PKIX
 * (RFC 5280 6.1.3 (a)(2)) and every MTA-STS sender reject. Expected: pkix_valid = 0 and a
 * cert.* finding saying why. */
static void test_expired_intermediate_not_pkix_valid(void **state)
{
    (void)state;
    cspec_t is = {"Example Int", "Example Root", NULL,         -800 * DAY, -5 * DAY,
                  k_int,         k_root,         EVP_sha256(), 1};
    X509 *old_int = make_cert(&is);
    assert_non_null(old_int);
    X509 *leaf = good_leaf();
    observed_t o = observe(leaf, old_int, NULL, root_ca);
    assert_errors(&o, (long[]){X509_V_ERR_CERT_HAS_EXPIRED}, 1);
    der_t d = chain_of(leaf, old_int, NULL);
    cert_facts_t c;
    found_t f;
    judge(&d, "mx.example.com", o.errs, o.n, &c, &f);
    int pkix_valid = c.pkix_valid;
    int explained = got(&f, "cert.untrusted") || got(&f, "cert.expired");
    grade_cert_clear(&c);
    drop(&d, leaf);
    X509_free(old_int);
    if (pkix_valid || !explained) {
        print_error("expired intermediate: pkix_valid = %d, findings: %s\n", pkix_valid, codes(&f));
    }
    assert_false(pkix_valid);
    assert_true(explained);
}

/* BUG (grade.c:146-148, used at 155-169): the trust detail names the issuer of the LAST
 * certificate sent, which is the missing issuer only when the server sent a proper chain.
 * Input: the server sends the leaf (issued by CN=Example Int) followed by an unrelated CA
 * certificate (CN=Other Int, issued by CN=Other Root), the usual wrong or stale intermediate;
 * X509_verify_cert reports {20, 21}. Expected: the detail names the leaf's issuer
 * CN=Example Int, which was not sent. Actual: "unknown issuer: CN=Other Root is not a trusted
 * CA", blaming a CA that has nothing to do with the leaf. */
static void test_untrusted_detail_names_missing_issuer(void **state)
{
    (void)state;
    cspec_t os = {"Other Int", "Other Root", NULL,         -DAY, 365 * DAY,
                  k_other,     k_other,      EVP_sha256(), 1};
    X509 *other = make_cert(&os);
    assert_non_null(other);
    X509 *leaf = good_leaf();
    observed_t o = observe(leaf, other, NULL, root_ca);
    assert_errors(&o,
                  (long[]){X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY,
                           X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE},
                  2);
    der_t d = chain_of(leaf, other, NULL);
    cert_facts_t c;
    found_t f;
    judge(&d, "mx.example.com", o.errs, o.n, &c, &f);
    char detail[256];
    snprintf(detail, sizeof detail, "%s", c.untrusted_detail);
    grade_cert_clear(&c);
    drop(&d, leaf);
    X509_free(other);
    if (!strstr(detail, "CN=Example Int") || strstr(detail, "Other Root")) {
        print_error("leaf + unrelated CA: detail \"%s\" should name CN=Example Int\n", detail);
    }
    assert_non_null(strstr(detail, "CN=Example Int"));
    assert_null(strstr(detail, "Other Root"));
}

/* ---- OCSP ------------------------------------------------------------- */

/* Judges the good leaf with a staple and returns its status word (static). */
static const char *staple_status(der_t *staple, int expect_ocsp, found_t *f)
{
    static char status[16];
    X509 *leaf = good_leaf();
    der_t d = chain_of(leaf, int_ca, NULL);
    grade_opts_t o = opts();
    o.expect_ocsp = expect_ocsp;
    cert_facts_t c;
    judge_ex(&d, "mx.example.com", NULL, 0, staple, &o, &c, f);
    snprintf(status, sizeof status, "%s", c.ocsp_status);
    grade_cert_clear(&c);
    drop(&d, leaf);
    return status;
}

/* A real signed OCSP response decodes to good, revoked or unknown; a staple present never
 * gives cert.ocsp.missing. */
static void test_ocsp_statuses(void **state)
{
    (void)state;
    int st[] = {V_OCSP_CERTSTATUS_GOOD, V_OCSP_CERTSTATUS_REVOKED, V_OCSP_CERTSTATUS_UNKNOWN};
    const char *want[] = {"good", "revoked", "unknown"};
    for (int i = 0; i < 3; i++) {
        X509 *leaf = good_leaf();
        der_t r = ocsp_response(leaf, OCSP_RESPONSE_STATUS_SUCCESSFUL, st[i]);
        X509_free(leaf);
        found_t f;
        assert_string_equal(staple_status(&r, 0, &f), want[i]);
        assert_null(got(&f, "cert.ocsp.missing"));
        free(r.p);
    }
}

/* A TRYLATER response is "try-later", another unsuccessful one and garbage are "error". */
static void test_ocsp_unsuccessful_and_garbage(void **state)
{
    (void)state;
    found_t f;
    der_t r = ocsp_response(NULL, OCSP_RESPONSE_STATUS_TRYLATER, 0);
    assert_string_equal(staple_status(&r, 0, &f), "try-later");
    assert_null(got(&f, "cert.ocsp.missing"));
    free(r.p);
    r = ocsp_response(NULL, OCSP_RESPONSE_STATUS_INTERNALERROR, 0);
    assert_string_equal(staple_status(&r, 0, &f), "error");
    free(r.p);
    unsigned char junk[] = {0x30, 0x03, 0x0a, 0x01};
    der_t g = {junk, sizeof junk};
    assert_string_equal(staple_status(&g, 0, &f), "error");
    assert_null(got(&f, "cert.ocsp.missing"));
}

/* No staple gives cert.ocsp.missing (info), whose detail and severity change with
 * --expect-ocsp (crit). */
static void test_ocsp_missing(void **state)
{
    (void)state;
    found_t f;
    assert_string_equal(staple_status(NULL, 0, &f), "");
    assert_non_null(got(&f, "cert.ocsp.missing"));
    assert_string_equal(got(&f, "cert.ocsp.missing"), "no OCSP staple");
    assert_string_equal(verdict_severity("cert.ocsp.missing", got(&f, "cert.ocsp.missing"), 25, 0),
                        "info");
    assert_string_equal(staple_status(NULL, 1, &f), "");
    assert_string_equal(got(&f, "cert.ocsp.missing"), "no OCSP staple (--expect-ocsp)");
    assert_string_equal(verdict_severity("cert.ocsp.missing", got(&f, "cert.ocsp.missing"), 25, 1),
                        "crit");
}

/* ---- TLS grade -------------------------------------------------------- */

/* Runs grade_tls; checks that caps is a JSON array of strings. */
static void grade(const grade_tls_in_t *in, grade_result_t *g, found_t *f)
{
    memset(f, 0, sizeof *f);
    grade_tls(in, g, collect, f);
    char **items = NULL;
    size_t n = 0;
    const char *why = NULL;
    if (jc_json_string_array(g->caps, 0, &items, &n, &why) != 0) {
        print_error("caps %s: %s\n", g->caps, why);
        fail();
    }
    jc_free_strings(items, n);
    assert_int_equal(strlen(g->grade), 1);
}

/* Certificate facts of a leaf key, as grade_cert would give them. */
static cert_facts_t cert_key(const char *type, int bits, int weak)
{
    cert_facts_t c;
    memset(&c, 0, sizeof c);
    c.parsed = 1;
    snprintf(c.key_type, sizeof c.key_type, "%s", type);
    c.key_bits = bits;
    c.key_weak = weak;
    return c;
}

/* TLS 1.3 with an AEAD cipher over x25519 and a good key is an A with no cap and no finding:
 * protocol 100, kex 90 (x25519 = RSA 3072), cipher 100, score 97. */
static void test_tls13_aead_x25519_is_a(void **state)
{
    (void)state;
    cert_facts_t ec = cert_key("EC", 256, 0);
    grade_tls_in_t in = {"TLSv1.3", "TLS_AES_256_GCM_SHA384", 256, 1, "any", "x25519", 253, NULL,
                         &ec};
    grade_result_t g;
    found_t f;
    grade(&in, &g, &f);
    assert_int_equal(g.protocol, 100);
    assert_int_equal(g.kex, 90);
    assert_int_equal(g.cipher, 100);
    assert_int_equal(g.score, 97);
    assert_string_equal(g.grade, "A");
    assert_string_equal(g.caps, "[]");
    assert_int_equal(f.n, 0);

    /* A 128-bit AEAD cipher: cipher 80, score (3000 + 2700 + 3200 + 50) / 100 = 89. */
    in.cipher = "TLS_AES_128_GCM_SHA256";
    in.cipher_bits = 128;
    grade(&in, &g, &f);
    assert_int_equal(g.cipher, 80);
    assert_int_equal(g.score, 89);
    assert_string_equal(g.grade, "A");
    assert_int_equal(f.n, 0);

    /* grade_tls may run without an emit function. */
    grade_tls(&in, &g, NULL, NULL);
    assert_string_equal(g.grade, "A");
}

/* TLS 1.0 with a CBC cipher: two B caps with their reasons, tls.version.obsolete and
 * tls.cipher.weak; with static RSA also the third code, tls.kex.weak, and a third cap. */
static void test_tls10_cbc_capped_b(void **state)
{
    (void)state;
    grade_tls_in_t in = {"TLSv1", "ECDHE-RSA-AES128-SHA", 128, 0, "ECDHE", "secp256r1", 256, NULL,
                         NULL};
    grade_result_t g;
    found_t f;
    grade(&in, &g, &f);
    assert_int_equal(g.protocol, 90);
    assert_int_equal(g.score, 86); /* (2700 + 2700 + 3200 + 50) / 100: an A before caps */
    assert_string_equal(g.grade, "B");
    assert_string_equal(g.caps, "[\"TLSv1 accepted (max B)\",\"no AEAD cipher (max B)\"]");
    assert_string_equal(codes(&f), "tls.version.obsolete tls.cipher.weak");
    assert_string_equal(got(&f, "tls.version.obsolete"), "best version offered: TLSv1");
    assert_string_equal(got(&f, "tls.cipher.weak"), "ECDHE-RSA-AES128-SHA (128 bits, not AEAD)");
    assert_string_equal(
        verdict_severity("tls.version.obsolete", "best version offered: TLSv1", 25, 0), "warn");

    cert_facts_t rsa = cert_key("RSA", 2048, 0);
    grade_tls_in_t st = {"TLSv1", "AES128-SHA", 128, 0, "RSA", "RSA", 0, NULL, &rsa};
    grade(&st, &g, &f);
    assert_string_equal(g.grade, "B");
    assert_string_equal(g.caps, "[\"TLSv1 accepted (max B)\",\"no AEAD cipher (max B)\","
                                "\"no forward secrecy (static RSA key exchange) (max B)\"]");
    assert_string_equal(codes(&f), "tls.version.obsolete tls.cipher.weak tls.kex.weak");

    /* TLS 1.1 is capped the same way and scores 95. */
    in.version = "TLSv1.1";
    grade(&in, &g, &f);
    assert_int_equal(g.protocol, 95);
    assert_string_equal(g.caps, "[\"TLSv1.1 accepted (max B)\",\"no AEAD cipher (max B)\"]");
    assert_string_equal(got(&f, "tls.version.obsolete"), "best version offered: TLSv1.1");
}

/* Static RSA key exchange: tls.kex.weak, cap B, and a kex score from the certificate's RSA
 * key (2048 -> 90; no certificate -> 0). */
static void test_static_rsa(void **state)
{
    (void)state;
    cert_facts_t rsa = cert_key("RSA", 2048, 0);
    grade_tls_in_t in = {"TLSv1.2", "AES128-GCM-SHA256", 128, 1, "RSA", "RSA", 0, NULL, &rsa};
    grade_result_t g;
    found_t f;
    grade(&in, &g, &f);
    assert_int_equal(g.kex, 90);
    assert_int_equal(g.score, 89);
    assert_string_equal(g.grade, "B");
    assert_string_equal(g.caps, "[\"no forward secrecy (static RSA key exchange) (max B)\"]");
    assert_string_equal(codes(&f), "tls.kex.weak");
    assert_string_equal(got(&f, "tls.kex.weak"), "static RSA key exchange: no forward secrecy");

    rsa.key_bits = 4096;
    grade(&in, &g, &f);
    assert_int_equal(g.kex, 100);
    in.cert = NULL;
    grade(&in, &g, &f);
    assert_int_equal(g.kex, 0);
    assert_int_equal(g.score, 62); /* (3000 + 0 + 3200 + 50) / 100: C by score, below the cap */
    assert_string_equal(g.grade, "C");
}

/* Finite-field DH: 1024 bits gives tls.kex.weak and cap B, 768 bits cap F, 2048 nothing;
 * the kex score follows the size (80, 40, 90). */
static void test_dhe_sizes(void **state)
{
    (void)state;
    grade_tls_in_t in = {"TLSv1.2", "DHE-RSA-AES128-GCM-SHA256", 128, 1, "DHE", "DH", 1024, NULL,
                         NULL};
    grade_result_t g;
    found_t f;
    grade(&in, &g, &f);
    assert_int_equal(g.kex, 80);
    assert_int_equal(g.score, 86);
    assert_string_equal(g.grade, "B");
    assert_string_equal(g.caps, "[\"DH parameters under 2048 bits (max B)\"]");
    assert_string_equal(codes(&f), "tls.kex.weak");
    assert_string_equal(got(&f, "tls.kex.weak"), "finite-field DH of 1024 bits");

    in.kex_bits = 768;
    grade(&in, &g, &f);
    assert_int_equal(g.kex, 40);
    assert_int_equal(g.score, 74);
    assert_string_equal(g.grade, "F");
    assert_string_equal(g.caps, "[\"DH parameters under 1024 bits (max F)\"]");
    assert_string_equal(got(&f, "tls.kex.weak"), "finite-field DH of 768 bits");

    in.kex_bits = 2048;
    grade(&in, &g, &f);
    assert_int_equal(g.kex, 90);
    assert_string_equal(g.grade, "A");
    assert_string_equal(g.caps, "[]");
    assert_int_equal(f.n, 0);

    /* TLS 1.3 over an RFC 7919 group is judged as DH by its name. */
    grade_tls_in_t t13 = {
        "TLSv1.3", "TLS_AES_128_GCM_SHA256", 128, 1, "any", "ffdhe4096", 4096, NULL, NULL};
    grade(&t13, &g, &f);
    assert_int_equal(g.kex, 100);
    t13.group = "ffdhe2048";
    t13.kex_bits = 2048;
    grade(&t13, &g, &f);
    assert_int_equal(g.kex, 90);
    assert_int_equal(f.n, 0);
}

/* A NULL cipher (0 bits) caps at F. */
static void test_null_cipher_f(void **state)
{
    (void)state;
    grade_tls_in_t in = {"TLSv1.2", "ECDHE-RSA-NULL-SHA", 0, 0, "ECDHE", "x25519", 253, NULL, NULL};
    grade_result_t g;
    found_t f;
    grade(&in, &g, &f);
    assert_int_equal(g.cipher, 0);
    assert_int_equal(g.score, 57);
    assert_string_equal(g.grade, "F");
    assert_string_equal(g.caps, "[\"NULL cipher (max F)\",\"no AEAD cipher (max B)\"]");
    assert_string_equal(got(&f, "tls.cipher.weak"), "ECDHE-RSA-NULL-SHA (0 bits, not AEAD)");
}

/* A 112-bit cipher (3DES) scores 20 and caps at C. */
static void test_112_bit_cipher_c(void **state)
{
    (void)state;
    grade_tls_in_t in = {
        "TLSv1.2", "ECDHE-RSA-DES-CBC3-SHA", 112, 0, "ECDHE", "secp256r1", 256, NULL, NULL};
    grade_result_t g;
    found_t f;
    grade(&in, &g, &f);
    assert_int_equal(g.cipher, 20);
    assert_int_equal(g.score, 65);
    assert_string_equal(g.grade, "C");
    assert_string_equal(g.caps, "[\"cipher under 128 bits (RC4, 3DES, DES, export) (max C)\","
                                "\"no AEAD cipher (max B)\"]");
    assert_string_equal(codes(&f), "tls.cipher.weak");
    assert_string_equal(got(&f, "tls.cipher.weak"), "ECDHE-RSA-DES-CBC3-SHA (112 bits, not AEAD)");
}

/* A weak certificate key caps at C, also when the facts come from grade_cert. */
static void test_weak_cert_key_c(void **state)
{
    (void)state;
    X509 *leaf = make_leaf("mx.example.com", "DNS:mx.example.com", -DAY, 90 * DAY, k_rsa1024);
    der_t d = chain_of(leaf, int_ca, NULL);
    cert_facts_t c;
    found_t f;
    judge(&d, "mx.example.com", NULL, 0, &c, &f);
    grade_tls_in_t in = {"TLSv1.3", "TLS_AES_256_GCM_SHA384", 256, 1, "any", "x25519", 253, NULL,
                         &c};
    grade_result_t g;
    grade(&in, &g, &f);
    assert_int_equal(g.score, 97);
    assert_string_equal(g.grade, "C");
    assert_string_equal(g.caps, "[\"weak certificate key (RSA 1024) (max C)\"]");
    assert_int_equal(f.n, 0); /* the key is cert.key.weak's business, not a tls.* code */
    grade_cert_clear(&c);
    drop(&d, leaf);
}

/* SSLv3 caps at C and gives tls.version.obsolete, which is crit for SSLv3. */
static void test_sslv3_c(void **state)
{
    (void)state;
    grade_tls_in_t in = {"SSLv3", "ECDHE-RSA-AES256-SHA", 256, 0, "ECDHE", "secp384r1", 384, NULL,
                         NULL};
    grade_result_t g;
    found_t f;
    grade(&in, &g, &f);
    assert_int_equal(g.protocol, 80);
    assert_int_equal(g.kex, 100);
    assert_int_equal(g.score, 94);
    assert_string_equal(g.grade, "C");
    assert_string_equal(g.caps, "[\"SSLv3 accepted (max C)\",\"no AEAD cipher (max B)\"]");
    assert_string_equal(got(&f, "tls.version.obsolete"), "best version offered: SSLv3");
    assert_string_equal(
        verdict_severity("tls.version.obsolete", got(&f, "tls.version.obsolete"), 25, 0), "crit");
}

/* An unknown or missing version scores 0 and caps at F, with no obsolete finding. */
static void test_unknown_version_f(void **state)
{
    (void)state;
    grade_tls_in_t in = {"SSLv2", "X", 128, 1, "ECDHE", "x25519", 253, NULL, NULL};
    grade_result_t g;
    found_t f;
    grade(&in, &g, &f);
    assert_int_equal(g.protocol, 0);
    assert_string_equal(g.grade, "F");
    assert_string_equal(g.caps, "[\"SSLv2 or unknown protocol (max F)\"]");
    assert_null(got(&f, "tls.version.obsolete"));
    in.version = NULL;
    grade(&in, &g, &f);
    assert_string_equal(g.grade, "F");
}

/* With --enum's oldest version the protocol score is the mean of best and worst, the cap
 * follows the oldest, and tls.version.obsolete still follows the best. */
static void test_worst_version(void **state)
{
    (void)state;
    grade_tls_in_t in = {"TLSv1.3", "TLS_AES_256_GCM_SHA384", 256, 1, "any", "x25519", 253, "TLSv1",
                         NULL};
    grade_result_t g;
    found_t f;
    grade(&in, &g, &f);
    assert_int_equal(g.protocol, 95);
    assert_int_equal(g.score, 96); /* (2850 + 2700 + 4000 + 50) / 100 */
    assert_string_equal(g.grade, "B");
    assert_string_equal(g.caps, "[\"TLSv1 accepted (max B)\"]");
    assert_int_equal(f.n, 0);
    in.worst_version = "SSLv3";
    grade(&in, &g, &f);
    assert_int_equal(g.protocol, 90);
    assert_string_equal(g.grade, "C");
    in.worst_version = "SSLv2";
    grade(&in, &g, &f);
    assert_int_equal(g.protocol, 50);
    assert_string_equal(g.grade, "F");
}

/* The protocol table: TLS 1.3 and 1.2 100, TLS 1.1 95, TLS 1.0 90, SSLv3 80, others 0. */
static void test_protocol_scores(void **state)
{
    (void)state;
    assert_int_equal(grade_protocol_score("TLSv1.3"), 100);
    assert_int_equal(grade_protocol_score("TLSv1.2"), 100);
    assert_int_equal(grade_protocol_score("TLSv1.1"), 95);
    assert_int_equal(grade_protocol_score("TLSv1"), 90);
    assert_int_equal(grade_protocol_score("SSLv3"), 80);
    assert_int_equal(grade_protocol_score("SSLv2"), 0);
    assert_int_equal(grade_protocol_score("TLSv1.0"), 0);
    assert_int_equal(grade_protocol_score(""), 0);
    assert_int_equal(grade_protocol_score(NULL), 0);
}

/* Key-exchange scores of the groups: P-384, P-521 and X448 count as RSA 7680 (100), X25519
 * and P-256 as RSA 3072 (90); DH by its size: <512 20, <1024 40, <2048 80, <4096 90, else 100. */
static void test_kex_scores(void **state)
{
    (void)state;
    struct {
        const char *kx, *group;
        int bits, kex;
    } cases[] = {
        {"ECDHE", "x25519", 253, 90},     {"ECDHE", "secp256r1", 256, 90},
        {"ECDHE", "secp384r1", 384, 100}, {"ECDHE", "secp521r1", 521, 100},
        {"any", "x448", 448, 100},        {"ECDHE", "brainpoolP384r1", 384, 100},
        {"DHE", "DH", 256, 20},           {"DHE", "DH", 511, 20},
        {"DHE", "DH", 512, 40},           {"DHE", "DH", 1023, 40},
        {"DHE", "DH", 1024, 80},          {"DHE", "DH", 2047, 80},
        {"DHE", "DH", 2048, 90},          {"DHE", "DH", 3072, 90},
        {"DHE", "DH", 4096, 100},         {"DHE", "DH", 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        grade_tls_in_t in = {"TLSv1.2",      "c",           128,  1,   cases[i].kx,
                             cases[i].group, cases[i].bits, NULL, NULL};
        grade_result_t g;
        found_t f;
        grade(&in, &g, &f);
        if (g.kex != cases[i].kex) {
            print_error("%s %s %d: kex %d\n", cases[i].kx, cases[i].group, cases[i].bits, g.kex);
        }
        assert_int_equal(g.kex, cases[i].kex);
    }
}

/* BUG (grade.c:398-407): ec_equiv_bits gives every curve under 384 bits the strength of RSA
 * 3072, although its comment cites NIST SP 800-57 (SP 800-57 Part 1 table 2: 160-223-bit
 * curves = RSA 1024, 224-255 = RSA 2048). Input: kx ECDHE, group secp192r1, 192 bits.
 * Expected kex score 80 (RSA 1024 -> 80); actual 90. OpenSSL 3's default client group list
 * has no curve under 256 bits, so a live scan does not meet it today; re-judged facts or a
 * wider group list would. */
static void test_small_curve_scored_by_strength(void **state)
{
    (void)state;
    grade_tls_in_t in = {
        "TLSv1.2", "ECDHE-ECDSA-AES128-GCM-SHA256", 128, 1, "ECDHE", "secp192r1", 192, NULL, NULL};
    grade_result_t g;
    found_t f;
    grade(&in, &g, &f);
    assert_int_equal(g.kex, 80);
}

/* BUG (grade.c:478-482): cap 2's reason says "cipher under 128 bits (RC4, 3DES, DES, export)",
 * but RC4-128 has 128 bits, so the condition cipher_bits < 128 never catches RC4 and it is
 * capped only by "no AEAD cipher" (max B). Input: TLSv1.2, ECDHE-RSA-RC4-SHA, 128 bits, not
 * AEAD, ECDHE P-256. Expected: C, as the cap's own reason (and SSL Labs' guide, which grade.c
 * follows) says; actual: B. OpenSSL 3 has RC4 only in the legacy provider, so a live scan does
 * not negotiate it today; stored or imported facts can hold it. */
static void test_rc4_capped_c(void **state)
{
    (void)state;
    grade_tls_in_t in = {"TLSv1.2", "ECDHE-RSA-RC4-SHA", 128, 0, "ECDHE", "secp256r1", 256, NULL,
                         NULL};
    grade_result_t g;
    found_t f;
    grade(&in, &g, &f);
    assert_non_null(got(&f, "tls.cipher.weak")); /* the finding is there */
    if (strcmp(g.grade, "C") != 0) {
        print_error("RC4-128: grade %s, caps %s\n", g.grade, g.caps);
    }
    assert_string_equal(g.grade, "C");
}

/* Score arithmetic: 0.3 protocol + 0.3 kex + 0.4 cipher, rounded half up; the letter comes
 * from the score (A 80, B 65, C 50, D 35, E 20) and a cap never improves it. */
static void test_score_arithmetic_and_letters(void **state)
{
    (void)state;
    struct {
        const char *version;
        int bits, aead;
        const char *kx, *group;
        int kbits, p, k, c, score;
        const char *grade;
    } cases[] = {
        /* TLS 1.2 AES-256-GCM ECDHE P-256: 30 + 27 + 40 = 97 */
        {"TLSv1.2", 256, 1, "ECDHE", "secp256r1", 256, 100, 90, 100, 97, "A"},
        /* TLS 1.1 AES-128-GCM DHE 1024: 28.5 + 24 + 32 = 84.5 -> 85, capped B */
        {"TLSv1.1", 128, 1, "DHE", "DH", 1024, 95, 80, 80, 85, "B"},
        /* TLS 1.0 static RSA without certificate: 27 + 0 + 32 = 59 -> C (caps say B) */
        {"TLSv1", 128, 0, "RSA", "RSA", 0, 90, 0, 80, 59, "C"},
        /* TLS 1.0 3DES static RSA without certificate: 27 + 0 + 8 = 35 -> D */
        {"TLSv1", 112, 0, "RSA", "RSA", 0, 90, 0, 20, 35, "D"},
        /* SSLv3 3DES static RSA without certificate: 24 + 0 + 8 = 32 -> E */
        {"SSLv3", 112, 0, "RSA", "RSA", 0, 80, 0, 20, 32, "E"},
        /* TLS 1.2 AES-128-GCM DHE 768: 30 + 12 + 32 = 74 -> B by score, F by cap */
        {"TLSv1.2", 128, 1, "DHE", "DH", 768, 100, 40, 80, 74, "F"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        grade_tls_in_t in = {cases[i].version, "c",         cases[i].bits,
                             cases[i].aead,    cases[i].kx, cases[i].group,
                             cases[i].kbits,   NULL,        NULL};
        grade_result_t g;
        found_t f;
        grade(&in, &g, &f);
        if (g.score != cases[i].score || strcmp(g.grade, cases[i].grade) != 0) {
            print_error("case %zu: %d/%d/%d score %d grade %s caps %s\n", i, g.protocol, g.kex,
                        g.cipher, g.score, g.grade, g.caps);
        }
        assert_int_equal(g.protocol, cases[i].p);
        assert_int_equal(g.kex, cases[i].k);
        assert_int_equal(g.cipher, cases[i].c);
        assert_int_equal(g.score, cases[i].score);
        assert_string_equal(g.grade, cases[i].grade);
    }
}

/* The grade does not look at trust, names or dates: an untrusted, mismatched, expired
 * certificate still grades A (PKIX does not cap on port 25, RFC 7435). */
static void test_pkix_does_not_cap(void **state)
{
    (void)state;
    X509 *leaf = make_leaf("other.example.net", "DNS:other.example.net", -100 * DAY, -DAY, k_leaf);
    der_t d = chain_of(leaf, NULL, NULL);
    long errs[] = {X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE, X509_V_ERR_CERT_HAS_EXPIRED};
    cert_facts_t c;
    found_t f;
    judge(&d, "mx.example.com", errs, 2, &c, &f);
    assert_false(c.pkix_valid);
    grade_tls_in_t in = {"TLSv1.3", "TLS_AES_128_GCM_SHA256", 128, 1, "any", "x25519", 253, NULL,
                         &c};
    grade_result_t g;
    grade(&in, &g, &f);
    assert_string_equal(g.grade, "A");
    assert_string_equal(g.caps, "[]");
    grade_cert_clear(&c);
    drop(&d, leaf);
}

/* ---- severities in context -------------------------------------------- */

/* cert.expired and cert.not_yet_valid are warn on port 25 and crit elsewhere (465, 587);
 * cert.ocsp.missing is crit only with --expect-ocsp; tls.version.obsolete is crit for SSLv3;
 * other codes keep their table severity, unknown ones are warn. */
static void test_verdict_severity(void **state)
{
    (void)state;
    assert_string_equal(verdict_severity("cert.expired", "x", 25, 0), "warn");
    assert_string_equal(verdict_severity("cert.expired", "x", 465, 0), "crit");
    assert_string_equal(verdict_severity("cert.expired", "x", 587, 0), "crit");
    assert_string_equal(verdict_severity("cert.not_yet_valid", "x", 25, 0), "warn");
    assert_string_equal(verdict_severity("cert.not_yet_valid", "x", 465, 0), "crit");
    assert_string_equal(verdict_severity("cert.ocsp.missing", "no OCSP staple", 465, 0), "info");
    assert_string_equal(verdict_severity("cert.ocsp.missing", "no OCSP staple", 465, 1), "crit");
    assert_string_equal(
        verdict_severity("tls.version.obsolete", "best version offered: SSLv3", 25, 0), "crit");
    assert_string_equal(
        verdict_severity("tls.version.obsolete", "best version offered: TLSv1.1", 465, 0), "warn");
    assert_string_equal(verdict_severity("cert.untrusted", "x", 465, 1), "warn");
    assert_string_equal(verdict_severity("cert.name_mismatch", "x", 465, 0), "warn");
    assert_string_equal(verdict_severity("cert.key.weak", "x", 25, 0), "warn");
    assert_string_equal(verdict_severity("tls.kex.weak", "x", 25, 0), "warn");
    assert_string_equal(verdict_severity("no.such.code", "x", 25, 0), "warn");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cert_clean),
        cmocka_unit_test(test_cert_unparsable),
        cmocka_unit_test(test_cert_expired),
        cmocka_unit_test(test_cert_not_yet_valid),
        cmocka_unit_test(test_cert_expiring_horizon),
        cmocka_unit_test(test_name_exact),
        cmocka_unit_test(test_name_wildcard),
        cmocka_unit_test(test_name_aka),
        cmocka_unit_test(test_name_mismatch_detail),
        cmocka_unit_test(test_key_sizes),
        cmocka_unit_test(test_sig_ed25519),
        cmocka_unit_test(test_sig_sha1_leaf),
        cmocka_unit_test(test_sig_sha1_root_not_counted),
        cmocka_unit_test(test_trust_details),
        cmocka_unit_test(test_trust_only_from_trust_errors),
        cmocka_unit_test(test_pkix_valid_truth_table),
        cmocka_unit_test(test_observed_errors_match),
        cmocka_unit_test(test_expired_intermediate_not_pkix_valid),
        cmocka_unit_test(test_untrusted_detail_names_missing_issuer),
        cmocka_unit_test(test_ocsp_statuses),
        cmocka_unit_test(test_ocsp_unsuccessful_and_garbage),
        cmocka_unit_test(test_ocsp_missing),
        cmocka_unit_test(test_tls13_aead_x25519_is_a),
        cmocka_unit_test(test_tls10_cbc_capped_b),
        cmocka_unit_test(test_static_rsa),
        cmocka_unit_test(test_dhe_sizes),
        cmocka_unit_test(test_null_cipher_f),
        cmocka_unit_test(test_112_bit_cipher_c),
        cmocka_unit_test(test_weak_cert_key_c),
        cmocka_unit_test(test_sslv3_c),
        cmocka_unit_test(test_unknown_version_f),
        cmocka_unit_test(test_worst_version),
        cmocka_unit_test(test_protocol_scores),
        cmocka_unit_test(test_kex_scores),
        cmocka_unit_test(test_small_curve_scored_by_strength),
        cmocka_unit_test(test_rc4_capped_c),
        cmocka_unit_test(test_score_arithmetic_and_letters),
        cmocka_unit_test(test_pkix_does_not_cap),
        cmocka_unit_test(test_verdict_severity),
    };
    return cmocka_run_group_tests_name("grade", tests, setup, teardown);
}
