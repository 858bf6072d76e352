/*
 * verdict.c - findings and postures from recorded facts (pure functions).
 *
 * The code table follows FINDINGS.md exactly; a code never changes meaning
 * once released. Endpoint rules:
 * - connect refused, unreachable or timed out, or closed before any
 *   greeting: smtp.connect.failed;
 * - connected but no greeting before the deadline: smtp.banner.timeout;
 * - a greeting other than 220 (RFC 5321 4.3.1): smtp.banner.rejected;
 * - a broken reply, an over-long reply, a timeout or close after the
 *   greeting, bytes after the STARTTLS 220 (RFC 3207 4.2): smtp.protocol;
 * - EHLO refused and HELO used (RFC 5321 4.1.1.1): smtp.ehlo.rejected;
 * - no STARTTLS keyword in the EHLO reply (RFC 3207 4): smtp.starttls.missing;
 * - STARTTLS answered with anything but 220: smtp.starttls.rejected;
 * - AUTH offered before TLS (RFC 4954 4, RFC 8314 3): smtp.auth.plaintext;
 * - STARTTLS accepted but no TLS session, whatever ended the handshake
 *   (alert, garbage, close, timeout): tls.handshake.failed.
 */
#include "scanner/verdict.h"

#include <stdio.h>
#include <string.h>

static const verdict_code_t codes[] = {
    {"mx.null", "info", NULL},
    {"mx.implicit", "warn", NULL},
    {"mx.none", "crit", NULL},
    {"mx.cname", "crit", NULL},
    {"mx.ip_literal", "crit", NULL},
    {"mx.unresolvable", "crit", NULL},
    {"dns.error", "warn", NULL},
    {"dns.bogus", "crit", "dnssec-invalid"},
    {"dns.ptr.missing", "warn", NULL},
    {"dns.fcrdns.mismatch", "warn", NULL},
    {"net.ipv6.none", "info", NULL},
    {"smtp.connect.failed", "warn", NULL},
    {"smtp.banner.timeout", "warn", NULL},
    {"smtp.banner.rejected", "warn", NULL},
    {"smtp.protocol", "warn", NULL},
    {"smtp.ehlo.rejected", "warn", NULL},
    {"smtp.starttls.missing", "crit", "starttls-not-supported"},
    {"smtp.starttls.rejected", "crit", "starttls-not-supported"},
    {"smtp.auth.plaintext", "crit", NULL},
    {"smtp.null_sender.rejected", "crit", NULL},
    {"smtp.postmaster.rejected", "crit", NULL},
    {"smtp.open_relay", "crit", NULL},
    {"tls.handshake.failed", "crit", "validation-failure"},
    {"tls.version.obsolete", "warn", NULL},
    {"tls.cipher.weak", "warn", NULL},
    {"tls.kex.weak", "warn", NULL},
    {"cert.expired", "crit", "certificate-expired"},
    {"cert.not_yet_valid", "crit", "certificate-expired"},
    {"cert.expiring", "warn", NULL},
    {"cert.name_mismatch", "warn", "certificate-host-mismatch"},
    {"cert.untrusted", "warn", "certificate-not-trusted"},
    {"cert.key.weak", "warn", NULL},
    {"cert.sig.weak", "warn", NULL},
    {"cert.ocsp.missing", "info", NULL},
    {"dane.none", "info", NULL},
    {"dane.insecure", "info", NULL},
    {"dane.valid", "info", NULL},
    {"dane.mismatch", "crit", "tlsa-invalid"},
    {"dane.unusable", "crit", "tlsa-invalid"},
    {"dane.bogus", "crit", "dnssec-invalid"},
    {"dane.no_starttls", "crit", "dane-required"},
    {"dane.rollover.risk", "warn", NULL},
    {"sts.none", "info", NULL},
    {"sts.txt.invalid", "crit", "sts-policy-invalid"},
    {"sts.fetch.failed", "crit", "sts-policy-fetch-error"},
    {"sts.webpki.invalid", "crit", "sts-webpki-invalid"},
    {"sts.policy.invalid", "crit", "sts-policy-invalid"},
    {"sts.mode.testing", "info", NULL},
    {"sts.mode.none", "info", NULL},
    {"sts.mx.mismatch", "crit", "validation-failure"},
    {"sts.mx.cert", "crit", "certificate-not-trusted"},
    {"tlsrpt.none", "info", NULL},
    {"tlsrpt.invalid", "warn", NULL},
};

/* Finds a code in the table. */
const verdict_code_t *verdict_lookup(const char *code)
{
    for (size_t i = 0; i < sizeof codes / sizeof *codes; i++) {
        if (strcmp(codes[i].code, code) == 0) {
            return &codes[i];
        }
    }
    return NULL;
}

/* Severity of a finding in context; see verdict.h. */
const char *verdict_severity(const char *code, const char *detail, int port, int expect_ocsp)
{
    const verdict_code_t *vc = verdict_lookup(code);
    const char *sev = vc ? vc->severity : "warn";
    if (port == 25 &&
        (strcmp(code, "cert.expired") == 0 || strcmp(code, "cert.not_yet_valid") == 0)) {
        return "warn";
    }
    if (expect_ocsp && strcmp(code, "cert.ocsp.missing") == 0) {
        return "crit";
    }
    if (strcmp(code, "tls.version.obsolete") == 0 && detail && strstr(detail, "SSLv3")) {
        return "crit";
    }
    return sev;
}

/* The session answered EHLO or HELO. */
int verdict_reached(const smtp_result_t *r)
{
    return r->ehlo_code == 250;
}

/* The session completed a TLS handshake. */
int verdict_tls_ok(const smtp_result_t *r)
{
    return r->tls_done;
}

/* Findings of one session; see the file comment for the rules. */
void verdict_endpoint(const smtp_result_t *r, verdict_emit_fn emit, void *ctx)
{
    const char *step = r->failed_step ? r->failed_step : "";
    if (strcmp(step, SMTP_STEP_TLS) == 0 && r->fail != SMTP_F_ABORTED) {
        emit(ctx, "tls.handshake.failed", r->error);
        return;
    }
    switch (r->fail) {
    case SMTP_F_CONNECT:
        emit(ctx, "smtp.connect.failed", r->error);
        break;
    case SMTP_F_TIMEOUT:
        emit(ctx, strcmp(step, SMTP_STEP_BANNER) == 0 ? "smtp.banner.timeout" : "smtp.protocol",
             r->error);
        break;
    case SMTP_F_CLOSED:
        emit(ctx, strcmp(step, SMTP_STEP_BANNER) == 0 ? "smtp.connect.failed" : "smtp.protocol",
             r->error);
        break;
    case SMTP_F_PROTOCOL:
        emit(ctx, "smtp.protocol", r->error);
        break;
    case SMTP_F_REJECTED:
        if (strcmp(step, SMTP_STEP_BANNER) == 0) {
            emit(ctx, "smtp.banner.rejected", r->greeting ? r->greeting : r->error);
        } else {
            emit(ctx, "smtp.protocol", r->error);
        }
        break;
    case SMTP_F_TLS:
        emit(ctx, "tls.handshake.failed", r->error);
        break;
    case SMTP_OK:
    case SMTP_F_ABORTED:
        break;
    }
    if (r->helo_fallback) {
        emit(ctx, "smtp.ehlo.rejected", "EHLO refused; HELO used");
    }
    if (r->ehlo_before && smtp_ehlo_has(r->ehlo_before, "AUTH")) {
        emit(ctx, "smtp.auth.plaintext", "AUTH offered before STARTTLS");
    }
    if (r->tls_on_connect || !verdict_reached(r)) {
        return; /* STARTTLS checks did not run */
    }
    if (!r->starttls_offered) {
        emit(ctx, "smtp.starttls.missing",
             r->helo_fallback ? "HELO session: no extensions" : "EHLO reply lacks STARTTLS");
    } else if (r->starttls_code != 220 && r->starttls_code != 0) {
        emit(ctx, "smtp.starttls.rejected", r->starttls_reply ? r->starttls_reply : "");
    }
}

/* Posture by FINDINGS.md's precedence. */
const char *verdict_posture(const domain_facts_t *f)
{
    if (f->null_mx) {
        return "no-mail";
    }
    if (f->dns_failed) {
        return "dns-error";
    }
    if (f->n_reached == 0) {
        return "unreachable";
    }
    if (f->dane_broken || f->sts_broken) {
        return "broken";
    }
    if (f->n_tls == 0) {
        return "plaintext";
    }
    if (f->n_tls < f->n_reached) {
        return "partial";
    }
    if (f->n_dane_valid >= f->n_reached) {
        return "dane";
    }
    if (f->sts_enforce_ok) {
        return "mta-sts";
    }
    if (f->sts_testing_ok) {
        return "mta-sts-testing";
    }
    return "starttls";
}
