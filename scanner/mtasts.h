/*
 * mtasts.h - SMTP MTA Strict Transport Security (RFC 8461): the _mta-sts
 * TXT record, the policy file fetched over HTTPS, the MX pattern matcher,
 * and the per-domain check that ties them together on the libuv loop.
 *
 * The parsers and the matcher are pure and work on recorded bytes. The check
 * looks up _mta-sts.<domain> TXT through our dns_t and, when the record is
 * valid, fetches https://mta-sts.<domain>/.well-known/mta-sts.txt with
 * libcurl's multi interface driven by the same loop: the policy host's
 * address comes from our resolver and is pinned, the connection waits its
 * turn at the scan's rate limiter, the certificate must be PKIX-valid for
 * the name, redirects are refused, and size and time are capped (RFC 8461
 * 3.3). Checks are single-flight by domain: every caller that asks for a
 * domain already in flight waits on the same lookup and fetch.
 */
#ifndef MXSCAN_MTASTS_H
#define MXSCAN_MTASTS_H

#include <stddef.h>
#include <uv.h>

#include "scanner/dns.h"
#include "scanner/ratelimit.h"

#define STS_ID_MAX       32       /* sts-id = 1*32(ALPHA / DIGIT), RFC 8461 3.1 */
#define STS_MX_MAX       64       /* mx: patterns kept; a policy with more is invalid */
#define STS_LINE_MAX     1000     /* policy line length cap, terminator excluded */
#define STS_MAX_AGE_MAX  31557600 /* RFC 8461 3.2: about one year */
#define STS_BODY_DEFAULT 65536    /* policy size cap unless sts_opts_t says otherwise */
#define STS_TIMEOUT_DEF  10000    /* fetch deadline (ms) unless sts_opts_t says otherwise */
#define STS_ERROR_MAX    256      /* fetch error text, at least curl's CURL_ERROR_SIZE */

/* Emitter of one finding: a FINDINGS.md code and a detail text. */
typedef void (*sts_emit_fn)(void *ctx, const char *code, const char *detail);

/* ---- the TXT record (RFC 8461 3.1) ---------------------------------- */

typedef enum sts_txt_status {
    STS_TXT_NONE = 0, /* no TXT string starts with v=STSv1 */
    STS_TXT_VALID,
    STS_TXT_INVALID, /* several records, no or bad id, malformed field */
} sts_txt_status_t;

typedef struct sts_txt {
    sts_txt_status_t status;
    int nrecords;            /* TXT strings that start with v=STSv1 */
    char id[STS_ID_MAX + 1]; /* the id= of a valid record */
    char error[256];         /* why the record is invalid, "" otherwise */
} sts_txt_t;

/* Parses the TXT strings found at _mta-sts.<domain>: txt[i] holds len[i]
 * bytes (one record's character-strings joined, as dns.h gives them), n of
 * them. Fills out and returns its status. */
sts_txt_status_t sts_txt_parse(const char *const *txt, const size_t *len, int n, sts_txt_t *out);

/* ---- the policy file (RFC 8461 3.2) --------------------------------- */

typedef enum sts_mode {
    STS_MODE_UNSET = 0, /* no valid mode: field */
    STS_MODE_ENFORCE,
    STS_MODE_TESTING,
    STS_MODE_NONE,
} sts_mode_t;

typedef struct sts_policy {
    char version[16]; /* the version: value as given (truncated), "" when absent */
    sts_mode_t mode;
    long max_age; /* seconds, -1 when absent or unreadable */
    int nmx;
    char *mx[STS_MX_MAX]; /* mx: patterns in order (malloc'd strings) */
} sts_policy_t;

/* Parses a policy body of len bytes (already capped by the fetcher). Fills p
 * with what it read (free it with sts_policy_clear), also when the policy
 * is invalid. Returns 0 when valid, -1 with the first reason in err. */
int sts_policy_parse(const char *body, size_t len, sts_policy_t *p, char *err, size_t errlen);
void sts_policy_clear(sts_policy_t *p);
/* The mx: patterns as a JSON array (malloc), "[]" when none. */
char *sts_mx_json(const sts_policy_t *p);
/* "enforce" | "testing" | "none", or NULL for STS_MODE_UNSET. */
const char *sts_mode_name(sts_mode_t m);

/* Does an MX host match one mx: pattern (RFC 8461 4.1)? Case-insensitive,
 * one trailing dot on either side ignored; "*.example.com" matches exactly
 * one more label on the left ("a.example.com", not "a.b.example.com" nor
 * "example.com"); no other wildcard form matches anything. 1 or 0. */
int sts_mx_match(const char *pattern, const char *host);

/* ---- the per-domain check ------------------------------------------- */

typedef enum sts_fetch_status {
    STS_FETCH_NONE = 0, /* not fetched (no valid TXT, or cancelled first) */
    STS_FETCH_OK,       /* HTTP 200 with a body within the cap */
    STS_FETCH_DNS,      /* mta-sts.<domain> has no address, or its lookup failed */
    STS_FETCH_CONNECT,  /* TCP connect failed */
    STS_FETCH_TLS,      /* TLS handshake failed for a reason other than the certificate */
    STS_FETCH_WEBPKI,   /* the certificate is not PKIX-valid for mta-sts.<domain> */
    STS_FETCH_HTTP,     /* status other than 200 and 3xx, or a broken HTTP exchange */
    STS_FETCH_REDIRECT, /* a 3xx: redirects are not followed (RFC 8461 3.3) */
    STS_FETCH_SIZE,     /* body over the cap */
    STS_FETCH_TIMEOUT,  /* the deadline passed */
} sts_fetch_status_t;

/* "ok" | "dns" | "connect" | "tls" | "webpki" | "http" | "redirect" |
 * "size" | "timeout", or NULL for STS_FETCH_NONE (the column stays NULL). */
const char *sts_fetch_status_name(sts_fetch_status_t s);

/* Everything the mta_sts table records about one domain. */
typedef struct sts_result {
    char domain[DNS_NAME_MAX + 1]; /* lower case, no trailing dot */
    int cancelled;                 /* sts_free, the resolver or the gate shut down first */
    /* _mta-sts.<domain> TXT */
    dns_status_t txt_status;
    int txt_rcode; /* -1 without an answer */
    char *txt;     /* the v=STSv1 strings joined with newlines (malloc), NULL when none */
    sts_txt_t txt_parsed;
    /* the policy fetch (done only for a valid TXT record) */
    sts_fetch_status_t fetch_status;
    char fetch_error[STS_ERROR_MAX]; /* verbatim from curl, or what we saw */
    char fetch_ip[46];               /* address the policy host was reached at */
    int excluded;                    /* fetch_ip is listed by --exclude: not fetched */
    long http_status;                /* 0 without a response */
    int webpki_valid;                /* 1, 0, or -1 when TLS was not reached */
    double t_fetch;                  /* ms from the connection grant to the end, -1 */
    char *body;                      /* the body of a 200 response (malloc, capped) */
    size_t body_len;
    /* the policy (parsed only after a successful fetch) */
    int policy_valid; /* 1, 0, or -1 when not parsed */
    sts_policy_t policy;
    char policy_error[256];
} sts_result_t;

typedef struct sts_opts {
    int port;            /* policy host port; 0 = 443 (tests use another) */
    int timeout_ms;      /* deadline of one fetch, connect to last byte; 0 = STS_TIMEOUT_DEF */
    size_t max_body;     /* policy size cap in bytes; 0 = STS_BODY_DEFAULT */
    const char *ca_file; /* PEM trust anchors; with ca_path NULL too, the system store */
    const char *ca_path; /* hashed certificate directory */
    const struct exclude *exclude; /* --exclude: a listed policy host address is not fetched */
    int forget_done; /* 0: finished results stay cached for the life of sts_t (a domain
                      * asked again is answered from memory); 1: only checks in flight are
                      * shared, so memory stays flat over millions of domains */
} sts_opts_t;

typedef struct sts sts_t;
/* Receives the result of one check; r is valid during the call only. */
typedef void (*sts_cb)(void *arg, const sts_result_t *r);

/* Creates the checker on loop, resolving through dns and connecting through
 * rl (NULL: no gate, for tools). Options are copied. NULL with err set on
 * failure (libcurl could not start). */
sts_t *sts_new(uv_loop_t *loop, dns_t *dns, rl_t *rl, const sts_opts_t *o, char *err,
               size_t errlen);
/* Checks domain (a host name; case and one trailing dot do not matter). cb
 * runs later on the loop, exactly once, never under this call. Returns 0,
 * or -1 (cb not called) when domain is not a usable name, memory ran out
 * or the checker is shutting down. */
int sts_check(sts_t *s, const char *domain, sts_cb cb, void *arg);
/* Checks in flight (lookups, waits at the gate and fetches). */
size_t sts_pending(const sts_t *s);
/* Cancels every check in flight (callbacks run now, once, with cancelled
 * set), stops the fetches and closes the handles; s is freed once the loop
 * has run the closes and the resolver and the gate have answered every
 * request s still had with them (dns_free and rl_cancel_all answer them at
 * once). Safe to call from inside an sts_cb. */
void sts_free(sts_t *s);

/* ---- findings (FINDINGS.md, MTA-STS table) --------------------------- */

/* Domain-level findings of a check: sts.none, sts.txt.invalid,
 * sts.fetch.failed, sts.webpki.invalid, sts.policy.invalid,
 * sts.mode.testing, sts.mode.none; dns.error when the TXT lookup itself
 * failed (the check could not run, so it is not reported as "none").
 * Nothing for a cancelled check. */
/* A deep copy of a result, for a caller that keeps it past the callback;
 * sts_result_clear frees the copy. Returns 0, or -1 out of memory. */
int sts_result_copy(sts_result_t *dst, const sts_result_t *src);
void sts_result_clear(sts_result_t *r);

void sts_findings(const sts_result_t *r, sts_emit_fn emit, void *ctx);
/* Per-MX findings under a valid enforce or testing policy: sts.mx.mismatch
 * when mx_host matches no mx: pattern, else sts.mx.cert when its
 * certificate failed PKIX (mx_pkix_valid == 0; -1, "not known", is no
 * failure). Nothing under mode none, an invalid policy or a cancelled check. */
void sts_mx_findings(const sts_result_t *r, const char *mx_host, int mx_pkix_valid,
                     sts_emit_fn emit, void *ctx);

#endif
