/*
 * grade.h - certificate checks and the TLS grade, judged from recorded
 * facts only (the DER chain, the verification errors seen, the stapled
 * OCSP response, the negotiated version, cipher and key exchange). No I/O:
 * the same functions run during a scan and over a stored database.
 * docs/grading.md is the human-readable form of these rules.
 */
#ifndef MXSCAN_GRADE_H
#define MXSCAN_GRADE_H

#include <stddef.h>
#include <time.h>

#include <openssl/x509.h>

#include "scanner/verdict.h"

typedef struct grade_opts {
    time_t now;             /* dates are judged against the scan time */
    long expiry_warning_s;  /* cert.expiring horizon (--expiry-warning) */
    const char *const *aka; /* further names accepted for every MX (--aka) */
    int naka;
    int expect_ocsp; /* --expect-ocsp: a missing staple is crit */
} grade_opts_t;

/* What the leaf certificate and its chain say, for the endpoints table. */
typedef struct cert_facts {
    int parsed; /* a leaf could be read from the chain */
    char subject[256], issuer[256];
    char not_before[32], not_after[32]; /* ISO 8601 UTC */
    char key_type[16];
    int key_bits;
    char sig_alg[64];
    char *names_json; /* JSON array of DNS names (malloc) */
    int expired, not_yet_valid, expiring;
    long days_left;
    int name_ok, trusted, key_weak, sig_weak;
    char sig_weak_detail[128];
    char untrusted_detail[256];
    char ocsp_status[16]; /* good, revoked, unknown, try-later, error, "" */
    int pkix_valid;       /* trusted, name matches, dates good */
} cert_facts_t;

/* Parses the chain (leaf first, DER concatenated) and judges it for host.
 * verify_errors are the X509_V_* codes PKIX verification met. Returns 0, or
 * -1 when no certificate could be read (out->parsed = 0). */
int grade_cert(const unsigned char *der, size_t len, const char *host, const long *verify_errors,
               int nerrors, const unsigned char *ocsp, size_t ocsp_len, const grade_opts_t *o,
               cert_facts_t *out);
/* The same from a parsed chain (leaf first), as the handshake left it:
 * decoding certificates again costs more than judging them. */
int grade_cert_chain(STACK_OF(X509) * chain, const char *host, const long *verify_errors,
                     int nerrors, const unsigned char *ocsp, size_t ocsp_len, const grade_opts_t *o,
                     cert_facts_t *out);
void grade_cert_clear(cert_facts_t *c);
/* Emits cert.* findings of judged facts. */
void grade_cert_findings(const cert_facts_t *c, const grade_opts_t *o, verdict_emit_fn emit,
                         void *ctx);

/* What the TLS grade is computed from. */
typedef struct grade_tls_in {
    const char *version; /* TLSv1.3, TLSv1.2, TLSv1.1, TLSv1, SSLv3 */
    const char *cipher;  /* OpenSSL name, for details */
    int cipher_bits;
    int aead;
    const char *kx;            /* ECDHE, DHE, RSA, any, other */
    const char *group;         /* x25519, secp256r1, ffdhe2048, DH, RSA ... */
    int kex_bits;              /* size of the ephemeral key */
    const char *worst_version; /* with --enum: the oldest version accepted, else NULL */
    const cert_facts_t *cert;  /* for the key-size cap and static-RSA strength; may be NULL */
} grade_tls_in_t;

typedef struct grade_result {
    int protocol, kex, cipher; /* the three sub-scores, 0..100 */
    int score;                 /* 0.3 protocol + 0.3 kex + 0.4 cipher */
    char grade[2];             /* A..F after caps */
    char caps[512];            /* JSON array of the reasons that capped it */
} grade_result_t;

/* Computes the grade and emits tls.version.obsolete, tls.cipher.weak and
 * tls.kex.weak. emit may be NULL. */
void grade_tls(const grade_tls_in_t *in, grade_result_t *out, verdict_emit_fn emit, void *ctx);

/* Score of a protocol version name (100 for TLS 1.2 and 1.3). */
int grade_protocol_score(const char *version);

#endif
