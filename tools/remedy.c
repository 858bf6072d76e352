/*
 * remedy.c - one line of advice per finding code of FINDINGS.md: what the
 * operator of the domain or MX host should change so the finding goes
 * away. Shared by the "what to fix" panels of `mxscan report` and by
 * `mxscan check`. Codes that are facts rather than faults (dane.valid,
 * mx.null) say that nothing needs fixing, so no panel tells anyone to
 * "fix" something that is right.
 */
#include <stddef.h>
#include <string.h>

#include "tools/tools.h"

/* The remedies, in the order of FINDINGS.md. */
static const struct {
    const char *code;
    const char *remedy;
} remedies[] = {
    /* DNS posture */
    {"mx.null", "Nothing to fix if the domain sends and receives no mail; otherwise replace the "
                "null MX (RFC 7505) with real MX records."},
    {"mx.implicit", "Publish an MX record naming the mail server instead of relying on the "
                    "domain's own address (RFC 5321 5.1)."},
    {"mx.none", "Publish an MX record for a working mail server, or a null MX \"0 .\" (RFC 7505) "
                "if the domain takes no mail."},
    {"mx.cname", "Point the MX record at the canonical host name (the CNAME's target), not at an "
                 "alias (RFC 5321 5.1)."},
    {"mx.ip_literal", "Point the MX record at a host name with A/AAAA records, not at an IP "
                      "address."},
    {"mx.unresolvable", "Add A and/or AAAA records for the MX host, or remove the MX record that "
                        "names it."},
    {"dns.error", "Fix the authoritative DNS servers so the lookup named in the detail answers "
                  "(no SERVFAIL, REFUSED or timeout)."},
    {"dns.bogus", "Repair the DNSSEC chain (DS at the parent, DNSKEY, unexpired RRSIGs) so the "
                  "zone validates."},
    {"dns.ptr.missing", "Ask the owner of the IP address block to publish a PTR record for the MX "
                        "address."},
    {"dns.fcrdns.mismatch", "Make the PTR name of the MX address resolve back to the same address "
                            "(forward-confirmed reverse DNS)."},
    {"net.ipv6.none", "Optional: give at least one MX host an AAAA record so IPv6-only senders "
                      "can deliver."},
    /* SMTP */
    {"smtp.connect.failed", "Make the MX reachable on port 25 (server running, firewall open), or "
                            "remove the MX record that names it."},
    {"smtp.banner.timeout", "Send the 220 greeting promptly; a greet delay or tarpit makes "
                            "legitimate senders time out."},
    {"smtp.banner.rejected", "Greet with 220 on port 25, or remove the MX record of a server that "
                             "refuses all mail."},
    {"smtp.protocol", "Fix the SMTP server or the middlebox in front of it so replies follow RFC "
                      "5321 (the detail says what broke)."},
    {"smtp.ehlo.rejected", "Accept EHLO (RFC 5321 4.1.1.1); without it no extension, STARTTLS "
                           "included, can be offered."},
    {"smtp.starttls.missing", "Enable STARTTLS with a certificate on every MX (Postfix: "
                              "smtpd_tls_security_level = may)."},
    {"smtp.starttls.rejected", "Fix the TLS set-up of the server (certificate and key readable, "
                               "TLS library working) so STARTTLS is accepted."},
    {"smtp.auth.plaintext", "Offer AUTH only after STARTTLS (Postfix: smtpd_tls_auth_only = yes), "
                            "or not at all on port 25."},
    {"smtp.null_sender.rejected", "Accept MAIL FROM:<> so bounces and delivery reports reach the "
                                  "domain (RFC 5321 4.5.5)."},
    {"smtp.postmaster.rejected", "Accept mail to postmaster@ the domain (RFC 5321 4.5.1)."},
    {"smtp.open_relay", "Stop relaying for unauthenticated clients: accept only the domains the "
                        "server is the MX for."},
    /* TLS and certificate */
    {"tls.handshake.failed", "Fix the TLS configuration (certificate, key, protocol versions, "
                             "ciphers) so a handshake with a current client succeeds."},
    {"tls.version.obsolete", "Enable TLS 1.2 and TLS 1.3 and disable SSLv3, TLS 1.0 and TLS 1.1."},
    {"tls.cipher.weak", "Prefer AEAD ciphers (AES-GCM, ChaCha20-Poly1305) and disable RC4, 3DES, "
                        "NULL and EXPORT suites."},
    {"tls.kex.weak", "Use ECDHE key exchange (or DHE with at least 2048-bit groups); disable "
                     "static RSA key exchange."},
    {"cert.expired", "Renew the certificate and install it, with its intermediates, on the "
                     "server; automate renewal."},
    {"cert.not_yet_valid", "Install a certificate that is already valid, and check the clock of "
                           "the machine that issued it."},
    {"cert.expiring", "Renew the certificate before it expires; automate renewal (ACME)."},
    {"cert.name_mismatch",
     "Use a certificate that names the MX host name (in its subjectAltName)."},
    {"cert.untrusted", "Use a certificate from a public CA and send the full chain, intermediates "
                       "included."},
    {"cert.key.weak", "Issue a new certificate with an RSA key of at least 2048 bits or an EC key "
                      "(P-256 or better)."},
    {"cert.sig.weak", "Replace the certificate with one signed with SHA-256 or better."},
    {"cert.ocsp.missing", "Optional: enable OCSP stapling on the server."},
    /* DANE */
    {"dane.none", "Optional: publish a TLSA record at _25._tcp.<mx> (DANE-EE 3 1 1) to protect "
                  "delivery against downgrade (RFC 7672)."},
    {"dane.insecure", "Sign the zone with DNSSEC (MX host's zone and TLSA zone) if DANE is to "
                      "apply."},
    {"dane.valid", "Nothing to fix: a TLSA record matches the certificate."},
    {"dane.mismatch", "Publish TLSA records that match the certificate now served (update them "
                      "before each key or certificate change)."},
    {"dane.unusable", "Replace the TLSA records with usable ones for SMTP: DANE-EE(3) or "
                      "DANE-TA(2), e.g. \"3 1 1\" (RFC 7672 3.1.3)."},
    {"dane.bogus", "Repair DNSSEC of the TLSA records' zone so the lookup validates."},
    {"dane.no_starttls", "Make STARTTLS work on the MX, or remove the TLSA records: senders that "
                         "use DANE will not deliver in clear."},
    {"dane.rollover.risk", "Publish a second TLSA record for the next key (or a DANE-TA record) "
                           "before the key or certificate changes."},
    /* MTA-STS */
    {"sts.none", "Optional: publish an MTA-STS policy (RFC 8461) to protect delivery against "
                 "downgrade."},
    {"sts.txt.invalid", "Publish exactly one \"v=STSv1; id=<1-32 letters or digits>\" TXT record "
                        "at _mta-sts.<domain>."},
    {"sts.fetch.failed", "Serve the policy over HTTPS at mta-sts.<domain>/.well-known/mta-sts.txt "
                         "(status 200, no redirect, text/plain)."},
    {"sts.webpki.invalid", "Install a publicly trusted certificate for mta-sts.<domain> on the "
                           "policy web server."},
    {"sts.policy.invalid", "Fix the policy body: version: STSv1, mode, one mx: line per MX "
                           "pattern, max_age (RFC 8461 3.2)."},
    {"sts.mode.testing", "When TLSRPT reports show no failures, switch the policy to mode: "
                         "enforce."},
    {"sts.mode.none", "Switch the policy to testing, then enforce, or withdraw it."},
    {"sts.mx.mismatch", "Add an mx: line matching every MX host to the policy, then change the "
                        "policy id."},
    {"sts.mx.cert", "Give the MX a publicly trusted certificate that names it; under enforce, "
                    "senders bounce mail to it."},
    /* TLSRPT */
    {"tlsrpt.none", "Optional: publish \"v=TLSRPTv1; rua=mailto:...\" at _smtp._tls.<domain> to "
                    "receive TLS failure reports (RFC 8460)."},
    {"tlsrpt.invalid",
     "Publish exactly one valid \"v=TLSRPTv1; rua=mailto:...\" record (mailto: or "
     "https: URIs)."},
};

/* Looks up the remedy of a code; a generic line for codes this version does not know. */
const char *remedy_for(const char *code)
{
    if (code != NULL) {
        for (size_t i = 0; i < sizeof remedies / sizeof *remedies; i++) {
            if (strcmp(code, remedies[i].code) == 0) {
                return remedies[i].remedy;
            }
        }
    }
    return "See docs/findings.md for what this finding means and how to address it.";
}
