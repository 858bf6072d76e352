/*
 * grade.c - certificate checks and the TLS grade (pure; see grade.h).
 *
 * Certificates: the leaf's dates against the scan time, its names against
 * the MX host (X509_check_host, RFC 6125 rules as OpenSSL implements them;
 * RFC 7672 3.2.3 says SMTP matches the MX host name), key type and size,
 * signature algorithm of every certificate but a self-signed root, and the
 * trust errors that PKIX verification met, told apart into self-signed,
 * untrusted root, unknown issuer and incomplete chain. A stapled OCSP
 * response (RFC 6066 8) is decoded to good, revoked, unknown or try-later.
 *
 * The TLS grade follows SSL Labs' server rating guide: protocol 30%, key
 * exchange 30%, cipher 40%, then caps for known weaknesses. On port 25
 * PKIX trust does not cap the grade (opportunistic TLS, RFC 7435); the
 * cert.* findings report it.
 */
#include "scanner/grade.h"

#include <openssl/ocsp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "scanner/strbuf.h"

/* ---- certificates ----------------------------------------------------- */

/* ASN1_TIME as ISO 8601 UTC text. */
static void iso_time(const ASN1_TIME *t, char out[32])
{
    struct tm tm;
    out[0] = 0;
    if (t && ASN1_TIME_to_tm(t, &tm)) {
        strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
    }
}

/* One-line distinguished name. */
static void dn_text(const X509_NAME *n, char *out, size_t len)
{
    out[0] = 0;
    if (!n) {
        return;
    }
    BIO *b = BIO_new(BIO_s_mem());
    if (!b) {
        return;
    }
    X509_NAME_print_ex(b, n, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB);
    int r = BIO_read(b, out, (int)len - 1);
    out[r > 0 ? r : 0] = 0;
    BIO_free(b);
}

/* DNS names of the certificate as a JSON array: SAN dNSNames, else the CN. */
static char *names_json(X509 *x)
{
    strbuf_t sb;
    sb_init(&sb);
    sb_putc(&sb, '[');
    int n = 0;
    GENERAL_NAMES *gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    for (int i = 0; gens && i < sk_GENERAL_NAME_num(gens); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        if (g->type != GEN_DNS) {
            continue;
        }
        const unsigned char *s = ASN1_STRING_get0_data(g->d.dNSName);
        int l = ASN1_STRING_length(g->d.dNSName);
        if (n++) {
            sb_putc(&sb, ',');
        }
        sb_json_str(&sb, (const char *)s, (size_t)l);
    }
    GENERAL_NAMES_free(gens);
    if (n == 0) {
        char cn[256];
        if (X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof cn) >
            0) {
            sb_json_str(&sb, cn, strlen(cn));
        }
    }
    sb_putc(&sb, ']');
    return sb_take(&sb);
}

/* Key type and size of a certificate; non-zero if weak (RSA/DSA < 2048,
 * EC < 224 bits: the FINDINGS.md thresholds, after NIST SP 800-57). */
static int key_facts(X509 *x, char type[16], int *bits)
{
    EVP_PKEY *k = X509_get0_pubkey(x);
    snprintf(type, 16, "?");
    *bits = 0;
    if (!k) {
        return 0;
    }
    *bits = EVP_PKEY_get_bits(k);
    switch (EVP_PKEY_get_base_id(k)) {
    case EVP_PKEY_RSA:
    case EVP_PKEY_RSA_PSS:
        snprintf(type, 16, "RSA");
        return *bits < 2048;
    case EVP_PKEY_DSA:
        snprintf(type, 16, "DSA");
        return *bits < 2048;
    case EVP_PKEY_EC:
        snprintf(type, 16, "EC");
        return *bits < 224;
    case EVP_PKEY_ED25519:
        snprintf(type, 16, "ED25519");
        return 0;
    case EVP_PKEY_ED448:
        snprintf(type, 16, "ED448");
        return 0;
    default:
        snprintf(type, 16, "%s", EVP_PKEY_get0_type_name(k) ? EVP_PKEY_get0_type_name(k) : "?");
        return 0;
    }
}

/* Non-zero when x is signed with MD5 or SHA-1. */
static int sig_weak(const X509 *x)
{
    int md = NID_undef;
    if (!X509_get_signature_info((X509 *)x, &md, NULL, NULL, NULL)) {
        int nid = X509_get_signature_nid(x);
        return nid == NID_md5WithRSAEncryption || nid == NID_sha1WithRSAEncryption ||
               nid == NID_ecdsa_with_SHA1 || nid == NID_dsaWithSHA1;
    }
    return md == NID_md5 || md == NID_sha1 || md == NID_md5_sha1;
}

/* Non-zero when x is self-issued (subject equals issuer). */
static int self_issued(X509 *x)
{
    return X509_NAME_cmp(X509_get_subject_name(x), X509_get_issuer_name(x)) == 0;
}

/* The first certificate of the chain (in path order from the leaf) whose
 * issuer was not sent: servers send chains out of order or with strays. */
static X509 *missing_issuer_of(STACK_OF(X509) * chain)
{
    X509 *cur = sk_X509_value(chain, 0);
    for (int steps = 0; steps < sk_X509_num(chain); steps++) {
        if (self_issued(cur)) {
            return cur;
        }
        X509 *next = NULL;
        for (int i = 0; i < sk_X509_num(chain) && !next; i++) {
            X509 *c = sk_X509_value(chain, i);
            if (c != cur &&
                X509_NAME_cmp(X509_get_subject_name(c), X509_get_issuer_name(cur)) == 0) {
                next = c;
            }
        }
        if (!next) {
            return cur;
        }
        cur = next;
    }
    return cur;
}

/* Tells apart the trust failures in words. */
static void untrusted_detail(const long *errs, int n, STACK_OF(X509) * chain, char *out, size_t len)
{
    out[0] = 0;
    X509 *last = missing_issuer_of(chain);
    char issuer[200];
    dn_text(X509_get_issuer_name(last), issuer, sizeof issuer);
    for (int i = 0; i < n; i++) {
        switch (errs[i]) {
        case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
            snprintf(out, len, "self-signed certificate");
            return;
        case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
            snprintf(out, len, "untrusted root: self-signed certificate in chain (%s)", issuer);
            return;
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
            if (last == sk_X509_value(chain, 0) && !self_issued(last)) {
                snprintf(out, len,
                         "incomplete chain or unknown issuer: only the leaf was sent, issuer %s "
                         "not found",
                         issuer);
            } else {
                snprintf(out, len, "unknown issuer: %s is not a trusted CA", issuer);
            }
            return;
        case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
            snprintf(out, len, "incomplete chain: the leaf's issuer %s was not sent", issuer);
            return;
        case X509_V_ERR_CERT_SIGNATURE_FAILURE:
        case X509_V_ERR_CERT_UNTRUSTED:
        case X509_V_ERR_CERT_REJECTED:
        case X509_V_ERR_INVALID_CA:
        case X509_V_ERR_PATH_LENGTH_EXCEEDED:
        case X509_V_ERR_INVALID_PURPOSE:
            snprintf(out, len, "invalid chain: %s", X509_verify_cert_error_string(errs[i]));
            return;
        default:
            break;
        }
    }
}

/* Decodes a stapled OCSP response into a status word. */
static void ocsp_status(const unsigned char *der, size_t len, char out[16])
{
    out[0] = 0;
    if (!der || len == 0) {
        return;
    }
    const unsigned char *p = der;
    OCSP_RESPONSE *r = d2i_OCSP_RESPONSE(NULL, &p, (long)len);
    if (!r) {
        snprintf(out, 16, "error");
        return;
    }
    int st = OCSP_response_status(r);
    if (st == OCSP_RESPONSE_STATUS_TRYLATER) {
        snprintf(out, 16, "try-later");
    } else if (st != OCSP_RESPONSE_STATUS_SUCCESSFUL) {
        snprintf(out, 16, "error");
    } else {
        OCSP_BASICRESP *b = OCSP_response_get1_basic(r);
        OCSP_SINGLERESP *s = b ? OCSP_resp_get0(b, 0) : NULL;
        int cs = s ? OCSP_single_get0_status(s, NULL, NULL, NULL, NULL) : -1;
        snprintf(out, 16, "%s",
                 cs == V_OCSP_CERTSTATUS_GOOD      ? "good"
                 : cs == V_OCSP_CERTSTATUS_REVOKED ? "revoked"
                 : cs == V_OCSP_CERTSTATUS_UNKNOWN ? "unknown"
                                                   : "error");
        OCSP_BASICRESP_free(b);
    }
    OCSP_RESPONSE_free(r);
}

/* Whether an error code is about trust (the chain), not dates or names. */
static int trust_error(long e)
{
    switch (e) {
    case X509_V_OK:
    case X509_V_ERR_CERT_HAS_EXPIRED:
    case X509_V_ERR_CERT_NOT_YET_VALID:
    case X509_V_ERR_HOSTNAME_MISMATCH:
    case X509_V_ERR_DANE_NO_MATCH:
        return 0;
    default:
        return 1;
    }
}

/* Judges a chain; see grade.h. */
int grade_cert(const unsigned char *der, size_t len, const char *host, const long *verify_errors,
               int nerrors, const unsigned char *ocsp, size_t ocsp_len, const grade_opts_t *o,
               cert_facts_t *out)
{
    STACK_OF(X509) *chain = sk_X509_new_null();
    const unsigned char *p = der, *end = der + len;
    while (chain && p < end) {
        X509 *x = d2i_X509(NULL, &p, (long)(end - p));
        if (!x) {
            break;
        }
        sk_X509_push(chain, x);
    }
    int r = grade_cert_chain(chain, host, verify_errors, nerrors, ocsp, ocsp_len, o, out);
    sk_X509_pop_free(chain, X509_free);
    return r;
}

/* Judges a parsed chain; see grade.h. */
int grade_cert_chain(STACK_OF(X509) * chain, const char *host, const long *verify_errors,
                     int nerrors, const unsigned char *ocsp, size_t ocsp_len, const grade_opts_t *o,
                     cert_facts_t *out)
{
    memset(out, 0, sizeof *out);
    if (!chain || sk_X509_num(chain) == 0) {
        return -1;
    }
    X509 *leaf = sk_X509_value(chain, 0);
    out->parsed = 1;
    dn_text(X509_get_subject_name(leaf), out->subject, sizeof out->subject);
    dn_text(X509_get_issuer_name(leaf), out->issuer, sizeof out->issuer);
    iso_time(X509_get0_notBefore(leaf), out->not_before);
    iso_time(X509_get0_notAfter(leaf), out->not_after);
    out->names_json = names_json(leaf);

    time_t now = o->now;
    out->expired = X509_cmp_time(X509_get0_notAfter(leaf), &now) < 0;
    out->not_yet_valid = X509_cmp_time(X509_get0_notBefore(leaf), &now) > 0;
    int pday = 0, psec = 0;
    ASN1_TIME *nowt = ASN1_TIME_set(NULL, now);
    if (nowt && ASN1_TIME_diff(&pday, &psec, nowt, X509_get0_notAfter(leaf))) {
        out->days_left = pday;
        long left = (long)pday * 86400 + psec;
        out->expiring = !out->expired && left < o->expiry_warning_s;
    }
    ASN1_TIME_free(nowt);

    out->name_ok = X509_check_host(leaf, host, 0, 0, NULL) == 1;
    for (int i = 0; !out->name_ok && i < o->naka; i++) {
        out->name_ok = X509_check_host(leaf, o->aka[i], 0, 0, NULL) == 1;
    }
    out->trusted = 1;
    const char *ca_dates = NULL;
    for (int i = 0; i < nerrors; i++) {
        if (trust_error(verify_errors[i])) {
            out->trusted = 0;
        }
        /* A date error that is not the leaf's is a CA certificate's: the
         * chain does not validate (an intermediate, or a root in the store). */
        if ((verify_errors[i] == X509_V_ERR_CERT_HAS_EXPIRED && !out->expired) ||
            (verify_errors[i] == X509_V_ERR_CERT_NOT_YET_VALID && !out->not_yet_valid)) {
            out->trusted = 0;
            ca_dates = verify_errors[i] == X509_V_ERR_CERT_HAS_EXPIRED ? "has expired"
                                                                       : "is not yet valid";
        }
    }
    if (!out->trusted) {
        untrusted_detail(verify_errors, nerrors, chain, out->untrusted_detail,
                         sizeof out->untrusted_detail);
        if (!out->untrusted_detail[0] && ca_dates) {
            snprintf(out->untrusted_detail, sizeof out->untrusted_detail,
                     "a CA certificate of the chain %s", ca_dates);
        }
        if (!out->untrusted_detail[0]) {
            for (int i = 0; i < nerrors; i++) {
                if (trust_error(verify_errors[i])) {
                    snprintf(out->untrusted_detail, sizeof out->untrusted_detail, "%s",
                             X509_verify_cert_error_string(verify_errors[i]));
                    break;
                }
            }
        }
    }
    out->key_weak = key_facts(leaf, out->key_type, &out->key_bits);
    int signid = X509_get_signature_nid(leaf);
    snprintf(out->sig_alg, sizeof out->sig_alg, "%s",
             signid != NID_undef ? OBJ_nid2ln(signid) : "?");
    /* The signature on a self-signed root is never checked by anyone. */
    for (int i = 0; i < sk_X509_num(chain); i++) {
        X509 *x = sk_X509_value(chain, i);
        if (i > 0 && self_issued(x)) {
            continue;
        }
        if (sig_weak(x)) {
            out->sig_weak = 1;
            snprintf(out->sig_weak_detail, sizeof out->sig_weak_detail,
                     "%s on the certificate at depth %d", OBJ_nid2ln(X509_get_signature_nid(x)), i);
            break;
        }
    }
    ocsp_status(ocsp, ocsp_len, out->ocsp_status);
    out->pkix_valid = out->trusted && out->name_ok && !out->expired && !out->not_yet_valid;
    return 0;
}

/* Frees what grade_cert allocated. */
void grade_cert_clear(cert_facts_t *c)
{
    free(c->names_json);
    c->names_json = NULL;
}

/* Emits the cert.* findings of judged facts. */
void grade_cert_findings(const cert_facts_t *c, const grade_opts_t *o, verdict_emit_fn emit,
                         void *ctx)
{
    char d[512];
    if (!c->parsed) {
        return;
    }
    if (c->expired) {
        snprintf(d, sizeof d, "notAfter %s (%ld days ago)", c->not_after, -c->days_left);
        emit(ctx, "cert.expired", d);
    } else if (c->expiring) {
        snprintf(d, sizeof d, "notAfter %s (%ld days left)", c->not_after, c->days_left);
        emit(ctx, "cert.expiring", d);
    }
    if (c->not_yet_valid) {
        snprintf(d, sizeof d, "notBefore %s", c->not_before);
        emit(ctx, "cert.not_yet_valid", d);
    }
    if (!c->name_ok) {
        snprintf(d, sizeof d, "certificate names %s", c->names_json ? c->names_json : "[]");
        emit(ctx, "cert.name_mismatch", d);
    }
    if (!c->trusted) {
        emit(ctx, "cert.untrusted", c->untrusted_detail);
    }
    if (c->key_weak) {
        snprintf(d, sizeof d, "%s %d bits", c->key_type, c->key_bits);
        emit(ctx, "cert.key.weak", d);
    }
    if (c->sig_weak) {
        emit(ctx, "cert.sig.weak", c->sig_weak_detail);
    }
    if (!c->ocsp_status[0]) {
        emit(ctx, "cert.ocsp.missing",
             o->expect_ocsp ? "no OCSP staple (--expect-ocsp)" : "no OCSP staple");
    }
}

/* ---- TLS grade -------------------------------------------------------- */

/* Protocol score, SSL Labs' table. */
int grade_protocol_score(const char *v)
{
    if (!v) {
        return 0;
    }
    if (strcmp(v, "TLSv1.3") == 0 || strcmp(v, "TLSv1.2") == 0) {
        return 100;
    }
    if (strcmp(v, "TLSv1.1") == 0) {
        return 95;
    }
    if (strcmp(v, "TLSv1") == 0) {
        return 90;
    }
    if (strcmp(v, "SSLv3") == 0) {
        return 80;
    }
    return 0;
}

/* Key-exchange score from an RSA-equivalent strength in bits. */
static int kex_score_bits(int bits)
{
    return bits <= 0     ? 0
           : bits < 512  ? 20
           : bits < 1024 ? 40
           : bits < 2048 ? 80
           : bits < 4096 ? 90
                         : 100;
}

/* RSA-equivalent strength of an elliptic-curve group (NIST SP 800-57
 * part 1, table 2: 160-223 bits ~ RSA 1024, 224-255 ~ 2048, 256-383 ~
 * 3072, 384 and up ~ 7680). */
static int ec_equiv_bits(const char *group, int bits)
{
    if (group && strcasecmp(group, "x25519") == 0) {
        return 3072; /* 253 bits, 128-bit security */
    }
    if (group && strcasecmp(group, "x448") == 0) {
        return 7680;
    }
    return bits < 160 ? 512 : bits < 224 ? 1024 : bits < 256 ? 2048 : bits < 384 ? 3072 : 7680;
}

/* Ciphers broken whatever their key length: RC4, DES, 3DES, export. */
static int cipher_broken(const char *name)
{
    return name && (strstr(name, "RC4") || strstr(name, "DES") || strstr(name, "EXP"));
}

/* Cipher score from symmetric strength. */
static int cipher_score(int bits)
{
    return bits <= 0 ? 0 : bits < 128 ? 20 : bits < 256 ? 80 : 100;
}

/* Letter of a score. */
static char letter(int score)
{
    return score >= 80   ? 'A'
           : score >= 65 ? 'B'
           : score >= 50 ? 'C'
           : score >= 35 ? 'D'
           : score >= 20 ? 'E'
                         : 'F';
}

/* Applies a cap: the grade can be no better than cap; the reason is kept. */
static void cap(grade_result_t *r, strbuf_t *caps, char max, const char *why)
{
    if (r->grade[0] < max) {
        r->grade[0] = max; /* letters grow worse as they grow */
    }
    if (caps->len > 1) {
        sb_putc(caps, ',');
    }
    char t[256];
    snprintf(t, sizeof t, "%.200s (max %c)", why, max);
    sb_json_str(caps, t, strlen(t));
}

/* Computes the grade; see grade.h and docs/grading.md. */
void grade_tls(const grade_tls_in_t *in, grade_result_t *out, verdict_emit_fn emit, void *ctx)
{
    memset(out, 0, sizeof *out);
    const char *v = in->version ? in->version : "";
    int best = grade_protocol_score(v);
    int worst = in->worst_version ? grade_protocol_score(in->worst_version) : best;
    out->protocol = (best + worst) / 2;

    const char *kx = in->kx ? in->kx : "";
    int fs = strcmp(kx, "RSA") != 0;
    int dh = strcmp(kx, "DHE") == 0 || (in->group && strncmp(in->group, "ffdhe", 5) == 0) ||
             (in->group && strcmp(in->group, "DH") == 0);
    if (!fs) {
        out->kex = kex_score_bits(in->cert ? in->cert->key_bits : 0);
    } else if (dh) {
        out->kex = kex_score_bits(in->kex_bits);
    } else {
        out->kex = kex_score_bits(ec_equiv_bits(in->group, in->kex_bits));
    }
    out->cipher = cipher_score(in->cipher_bits);
    out->score = (30 * out->protocol + 30 * out->kex + 40 * out->cipher + 50) / 100;
    out->grade[0] = letter(out->score);
    out->grade[1] = 0;

    strbuf_t caps;
    sb_init(&caps);
    sb_putc(&caps, '[');
    char d[200];
    const char *oldest = in->worst_version ? in->worst_version : v;
    if (best == 0 || strcmp(oldest, "SSLv2") == 0) {
        cap(out, &caps, 'F', "SSLv2 or unknown protocol");
    } else if (strcmp(oldest, "SSLv3") == 0) {
        cap(out, &caps, 'C', "SSLv3 accepted");
    } else if (strcmp(oldest, "TLSv1") == 0 || strcmp(oldest, "TLSv1.1") == 0) {
        snprintf(d, sizeof d, "%s accepted", oldest);
        cap(out, &caps, 'B', d);
    }
    if (in->cipher_bits == 0) {
        cap(out, &caps, 'F', "NULL cipher");
    } else if (in->cipher_bits < 128 || cipher_broken(in->cipher)) {
        cap(out, &caps, 'C', "cipher under 128 bits (RC4, 3DES, DES, export)");
    }
    if (!in->aead) {
        cap(out, &caps, 'B', "no AEAD cipher");
    }
    if (!fs) {
        cap(out, &caps, 'B', "no forward secrecy (static RSA key exchange)");
    } else if (dh && in->kex_bits > 0 && in->kex_bits < 1024) {
        cap(out, &caps, 'F', "DH parameters under 1024 bits");
    } else if (dh && in->kex_bits > 0 && in->kex_bits < 2048) {
        cap(out, &caps, 'B', "DH parameters under 2048 bits");
    }
    if (in->cert && in->cert->key_weak) {
        snprintf(d, sizeof d, "weak certificate key (%s %d)", in->cert->key_type,
                 in->cert->key_bits);
        cap(out, &caps, 'C', d);
    }
    sb_putc(&caps, ']');
    snprintf(out->caps, sizeof out->caps, "%s", caps.s ? caps.s : "[]");
    sb_free(&caps);

    if (!emit) {
        return;
    }
    /* FINDINGS.md: obsolete is the best version offered being TLS 1.1 or
     * older; the client offers everything, so the negotiated version is the
     * best the server has. */
    if (best > 0 && best < 100) {
        snprintf(d, sizeof d, "best version offered: %s", v);
        emit(ctx, "tls.version.obsolete", d);
    }
    /* NCSC TLS guidance: good and sufficient ciphers are AEAD of 128 bits
     * or more; CBC, RC4, 3DES, NULL and export suites are not. */
    if (!in->aead || in->cipher_bits < 128) {
        snprintf(d, sizeof d, "%s (%d bits%s)", in->cipher ? in->cipher : "?", in->cipher_bits,
                 in->aead ? "" : ", not AEAD");
        emit(ctx, "tls.cipher.weak", d);
    }
    if (!fs) {
        emit(ctx, "tls.kex.weak", "static RSA key exchange: no forward secrecy");
    } else if (dh && in->kex_bits > 0 && in->kex_bits < 2048) {
        snprintf(d, sizeof d, "finite-field DH of %d bits", in->kex_bits);
        emit(ctx, "tls.kex.weak", d);
    }
}
