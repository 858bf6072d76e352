/*
 * verdict.h - from recorded facts to findings and a posture. Pure: no I/O,
 * so the rules are unit-tested on plain structs and can be re-run over a
 * stored database. The codes, severities and RFC 8460 result types are
 * those of FINDINGS.md; this table is the one place they are written.
 */
#ifndef MXSCAN_VERDICT_H
#define MXSCAN_VERDICT_H

#include "scanner/smtp.h"

typedef struct verdict_code {
    const char *code;
    const char *severity;    /* crit | warn | info */
    const char *result_type; /* RFC 8460 result type or NULL */
} verdict_code_t;

/* The entry of a code, or NULL for an unknown code. */
const verdict_code_t *verdict_lookup(const char *code);

/* The severity of a finding in its context (FINDINGS.md's starred rules):
 * cert.expired and cert.not_yet_valid are warn on port 25, where delivery
 * is opportunistic (RFC 7435); cert.ocsp.missing is crit with
 * --expect-ocsp; tls.version.obsolete is crit for SSLv3. */
const char *verdict_severity(const char *code, const char *detail, int port, int expect_ocsp);

/* Receives one finding: code (a FINDINGS.md code) and a detail text. */
typedef void (*verdict_emit_fn)(void *ctx, const char *code, const char *detail);

/* Findings of one SMTP session (smtp.*, tls.handshake.failed). */
void verdict_endpoint(const smtp_result_t *r, verdict_emit_fn emit, void *ctx);

/* Non-zero when the session answered EHLO or HELO (mail could be handed over). */
int verdict_reached(const smtp_result_t *r);
/* Non-zero when STARTTLS (or TLS on connect) ended in a completed handshake. */
int verdict_tls_ok(const smtp_result_t *r);

/* What the posture of a domain is decided from. */
typedef struct domain_facts {
    int null_mx;        /* RFC 7505 null MX */
    int dns_failed;     /* MX lookup (or implicit-MX address lookup) failed or bogus */
    int n_endpoints;    /* sessions of all its MX hosts */
    int n_reached;      /* of those, how many answered EHLO/HELO */
    int n_tls;          /* of those, how many completed TLS */
    int n_dane_valid;   /* of those, how many matched a usable TLSA record */
    int dane_broken;    /* an MX host publishes DANE that fails (mismatch, unusable, no
                           STARTTLS, bogus TLSA) */
    int sts_broken;     /* an MTA-STS enforce policy that fails (sts.mx.*, fetch, webpki) */
    int sts_enforce_ok; /* enforce policy, every MX matched and PKIX-valid */
    int sts_testing_ok; /* testing policy that would pass in enforce */
} domain_facts_t;

/* The posture of FINDINGS.md, by its order of precedence: no-mail,
 * dns-error, unreachable, broken, plaintext, partial, dane, mta-sts,
 * mta-sts-testing, starttls. */
const char *verdict_posture(const domain_facts_t *f);

#endif
