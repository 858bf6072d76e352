/*
 * mtasts.c - MTA-STS (RFC 8461): the TXT and policy parsers, the MX
 * pattern matcher, the HTTPS policy fetcher on libcurl's multi interface,
 * and the single-flight per-domain check.
 *
 * The parsers apply the RFC's ABNF with a few readings written out where
 * they are made: trailing whitespace after the last TXT field, blank policy
 * lines and a root dot at the end of an mx pattern are accepted, and a
 * repeated field keeps its first value (RFC 8461 3.2 says so for the policy;
 * the TXT record is read the same way). A finding must never come from
 * being stricter than the RFC, and every input is bounded: the body by the
 * fetcher's cap, lines at 1000 bytes, mx patterns at 64.
 *
 * libcurl runs on our loop in the classic multi_socket shape: curl names
 * the sockets it wants watched (CURLMOPT_SOCKETFUNCTION), we keep one
 * uv_poll_t per socket and hand readiness back with
 * curl_multi_socket_action(); curl's own deadline runs on one uv_timer_t
 * (CURLMOPT_TIMERFUNCTION). curl never resolves a name itself: the address
 * comes from our dns_t and is pinned with CURLOPT_RESOLVE in a DNS cache
 * private to the fetch (a CURLSH), so the pinned entries, which curl keeps
 * forever, go away with the fetch. Every connection is granted by the
 * scan's rate limiter first.
 *
 * A check is an entry in a hash table by domain: TXT -> A (then AAAA) ->
 * gate -> fetch -> done. Waiters are told from a zero timer, never under
 * sts_check() nor under a curl, c-ares or gate callback, so a callback may
 * call anything, sts_free() included. Entries still owed an answer by the
 * resolver or the gate when sts_free() runs are kept as orphans until that
 * answer arrives.
 */
#include "scanner/mtasts.h"

#include "inputs/exclude.h"

#include <ctype.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

#include "scanner/log.h"
#include "scanner/strbuf.h"

_Static_assert(STS_ERROR_MAX >= CURL_ERROR_SIZE, "fetch_error must hold curl's error buffer");

#define STS_VERSION    "v=STSv1"
#define STS_WELL_KNOWN "/.well-known/mta-sts.txt"

/* ---- small helpers ---------------------------------------------------- */

/* Space or tab: WSP of RFC 5234. */
static int is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

/* Copies n bytes for an error message, non-printable bytes as '?', at most
 * 80 of them, so details stay readable whatever the server sent. */
static const char *printable(char *dst, size_t dstlen, const char *s, size_t n)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < dstlen && i < 80; i++) {
        unsigned char c = (unsigned char)s[i];
        dst[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
    }
    dst[o] = 0;
    return dst;
}

/* Formats into an error buffer that may be NULL or empty. */
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ext-name = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / "."): the
 * shape of every TXT field name and policy key (RFC 8461 3.1 and 3.2). */
static int ext_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > 32 || !isalnum((unsigned char)s[0])) {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!isalnum(c) && c != '_' && c != '-' && c != '.') {
            return 0;
        }
    }
    return 1;
}

/* ---- TXT record (RFC 8461 3.1) ----------------------------------------- */

/* A TXT string counts when it starts with "v=STSv1" followed by the field
 * delimiter, whitespace or its end (3.1: the others are discarded, so
 * "v=STSv10" is not one). */
static int txt_is_candidate(const char *s, size_t n)
{
    size_t vl = sizeof STS_VERSION - 1;
    return s && n >= vl && memcmp(s, STS_VERSION, vl) == 0 &&
           (n == vl || s[vl] == ';' || is_wsp(s[vl]));
}

/* sts-ext-value = 1*(%x21-3A / %x3C / %x3E-7E). */
static int txt_ext_value_ok(const char *s, size_t n)
{
    if (n == 0) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e || c == ';' || c == '=') {
            return 0;
        }
    }
    return 1;
}

/* Parses the one candidate record:
 *   sts-text-record = sts-version 1*(*WSP field-delim *WSP sts-field) [field-delim]
 *   sts-field       = sts-id / sts-extension
 *   sts-id          = %s"id=" 1*32(ALPHA / DIGIT)
 * Returns 0 or -1 with out->error set. */
static int txt_parse_record(sts_txt_t *out, const char *s, size_t n)
{
    char pb[96];
    size_t i = sizeof STS_VERSION - 1;
    int have_id = 0;
    for (;;) {
        while (i < n && is_wsp(s[i])) {
            i++;
        }
        if (i == n) {
            break;
        }
        if (s[i] != ';') {
            snprintf(out->error, sizeof out->error, "expected ';' at offset %zu", i);
            return -1;
        }
        i++;
        while (i < n && is_wsp(s[i])) {
            i++;
        }
        if (i == n) {
            break; /* the optional trailing delimiter */
        }
        /* A field runs to the next ';'; its trailing whitespace belongs to
         * the delimiter, any other whitespace makes the value invalid. */
        size_t start = i;
        while (i < n && s[i] != ';') {
            i++;
        }
        size_t end = i;
        while (end > start && is_wsp(s[end - 1])) {
            end--;
        }
        const char *f = s + start;
        size_t fl = end - start;
        const char *eq = memchr(f, '=', fl);
        if (!eq) {
            snprintf(out->error, sizeof out->error, "field \"%s\" has no '='",
                     printable(pb, sizeof pb, f, fl));
            return -1;
        }
        size_t nl = (size_t)(eq - f), vl = fl - nl - 1;
        const char *v = eq + 1;
        if (nl == 2 && memcmp(f, "id", 2) == 0) {
            int ok = vl >= 1 && vl <= STS_ID_MAX;
            for (size_t k = 0; ok && k < vl; k++) {
                ok = isalnum((unsigned char)v[k]) != 0;
            }
            if (!ok) {
                snprintf(out->error, sizeof out->error,
                         "id \"%s\" is not 1 to 32 letters and digits",
                         printable(pb, sizeof pb, v, vl));
                return -1;
            }
            if (!have_id) {
                memcpy(out->id, v, vl);
                out->id[vl] = 0;
                have_id = 1;
            }
        } else if (!ext_name_ok(f, nl) || !txt_ext_value_ok(v, vl)) {
            snprintf(out->error, sizeof out->error, "malformed field \"%s\"",
                     printable(pb, sizeof pb, f, fl));
            return -1;
        }
    }
    if (!have_id) {
        snprintf(out->error, sizeof out->error, "no id= field");
        return -1;
    }
    return 0;
}

/* Parses the TXT strings of _mta-sts.<domain>; see mtasts.h. */
sts_txt_status_t sts_txt_parse(const char *const *txt, const size_t *len, int n, sts_txt_t *out)
{
    memset(out, 0, sizeof *out);
    int which = -1;
    for (int i = 0; i < n; i++) {
        if (txt_is_candidate(txt[i], len[i])) {
            out->nrecords++;
            which = i;
        }
    }
    if (out->nrecords == 0) {
        out->status = STS_TXT_NONE;
    } else if (out->nrecords > 1) {
        /* 3.1: if the number of records left is not one, senders assume
         * the domain has no available policy. */
        snprintf(out->error, sizeof out->error, "several v=STSv1 records (%d)", out->nrecords);
        out->status = STS_TXT_INVALID;
    } else if (txt_parse_record(out, txt[which], len[which]) < 0) {
        out->id[0] = 0;
        out->status = STS_TXT_INVALID;
    } else {
        out->status = STS_TXT_VALID;
    }
    return out->status;
}

/* ---- policy file (RFC 8461 3.2) ----------------------------------------- */

/* sts-policy-mx-value = ["*."] Domain, Domain of RFC 5321 4.1.2: labels of
 * letters, digits and inner hyphens, each 1 to 63 bytes, 253 in all. A
 * final root dot is accepted: it names the same host. */
static int mx_pattern_ok(const char *v, size_t n)
{
    if (n >= 2 && v[0] == '*' && v[1] == '.') {
        v += 2;
        n -= 2;
    }
    if (n > 0 && v[n - 1] == '.') {
        n--;
    }
    if (n == 0 || n > 253) {
        return 0;
    }
    size_t lab = 0;
    for (size_t i = 0; i <= n; i++) {
        if (i == n || v[i] == '.') {
            if (lab == 0 || lab > 63 || v[i - 1] == '-') {
                return 0;
            }
            lab = 0;
            continue;
        }
        unsigned char c = (unsigned char)v[i];
        if (!isalnum(c) && !(c == '-' && lab > 0)) {
            return 0;
        }
        lab++;
    }
    return 1;
}

/* Frees the mx patterns of a policy. */
void sts_policy_clear(sts_policy_t *p)
{
    for (int i = 0; i < p->nmx; i++) {
        free(p->mx[i]);
    }
    memset(p, 0, sizeof *p);
    p->max_age = -1;
}

/* Reads one known field; returns 0 or -1 with err set. first_* flags keep
 * the first of a repeated field (3.2: later ones SHALL be ignored). */
static int policy_field(sts_policy_t *p, const char *k, size_t kl, const char *v, size_t vl,
                        int lineno, int *have, char *err, size_t errlen)
{
    char pb[96];
    enum { H_VERSION = 1, H_MODE = 2, H_MAX_AGE = 4 };
    if (kl == 7 && memcmp(k, "version", 7) == 0) {
        if (*have & H_VERSION) {
            return 0;
        }
        *have |= H_VERSION;
        snprintf(p->version, sizeof p->version, "%s", printable(pb, sizeof pb, v, vl));
        if (vl != 5 || memcmp(v, "STSv1", 5) != 0) {
            set_err(err, errlen, "line %d: version is \"%s\", not STSv1", lineno,
                    printable(pb, sizeof pb, v, vl));
            return -1;
        }
    } else if (kl == 4 && memcmp(k, "mode", 4) == 0) {
        if (*have & H_MODE) {
            return 0;
        }
        *have |= H_MODE;
        if (vl == 7 && memcmp(v, "enforce", 7) == 0) {
            p->mode = STS_MODE_ENFORCE;
        } else if (vl == 7 && memcmp(v, "testing", 7) == 0) {
            p->mode = STS_MODE_TESTING;
        } else if (vl == 4 && memcmp(v, "none", 4) == 0) {
            p->mode = STS_MODE_NONE;
        } else {
            set_err(err, errlen, "line %d: mode \"%s\" is not enforce, testing or none", lineno,
                    printable(pb, sizeof pb, v, vl));
            return -1;
        }
    } else if (kl == 7 && memcmp(k, "max_age", 7) == 0) {
        if (*have & H_MAX_AGE) {
            return 0;
        }
        *have |= H_MAX_AGE;
        /* sts-policy-max-age-value = 1*10(DIGIT), at most 31557600. */
        long age = 0;
        int ok = vl >= 1 && vl <= 10;
        for (size_t i = 0; ok && i < vl; i++) {
            ok = v[i] >= '0' && v[i] <= '9';
            age = age * 10 + (v[i] - '0');
        }
        if (!ok || age > STS_MAX_AGE_MAX) {
            set_err(err, errlen, "line %d: max_age \"%s\" is not a number of seconds 0..%d", lineno,
                    printable(pb, sizeof pb, v, vl), STS_MAX_AGE_MAX);
            return -1;
        }
        p->max_age = age;
    } else if (kl == 2 && memcmp(k, "mx", 2) == 0) {
        if (!mx_pattern_ok(v, vl)) {
            set_err(err, errlen, "line %d: mx \"%s\" is not a domain name or *.domain", lineno,
                    printable(pb, sizeof pb, v, vl));
            return -1;
        }
        if (p->nmx == STS_MX_MAX) {
            set_err(err, errlen, "line %d: more than %d mx patterns", lineno, STS_MX_MAX);
            return -1;
        }
        char *m = malloc(vl + 1);
        if (!m) {
            set_err(err, errlen, "out of memory");
            return -1;
        }
        memcpy(m, v, vl);
        m[vl] = 0;
        p->mx[p->nmx++] = m;
    }
    /* 3.2: unknown keys SHOULD be ignored, whatever their value. */
    return 0;
}

/* Parses a policy body; see mtasts.h. Lines are "key:" *WSP value, ended
 * by LF or CRLF (the last one may lack it). */
int sts_policy_parse(const char *body, size_t len, sts_policy_t *p, char *err, size_t errlen)
{
    char pb[96];
    memset(p, 0, sizeof *p);
    p->max_age = -1;
    set_err(err, errlen, "%s", "");
    int have = 0, lineno = 0;
    size_t pos = 0;
    while (pos < len) {
        lineno++;
        const char *line = body + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t ll = nl ? (size_t)(nl - line) : len - pos;
        pos += ll + (nl ? 1 : 0);
        if (ll > 0 && line[ll - 1] == '\r') {
            ll--;
        }
        if (ll > STS_LINE_MAX) {
            set_err(err, errlen, "line %d longer than %d bytes", lineno, STS_LINE_MAX);
            return -1;
        }
        if (ll == 0) {
            continue; /* blank lines carry nothing; deployed senders skip them */
        }
        for (size_t i = 0; i < ll; i++) {
            unsigned char c = (unsigned char)line[i];
            if ((c < 0x20 && c != '\t') || c == 0x7f) {
                set_err(err, errlen, "line %d has control character 0x%02x", lineno, c);
                return -1;
            }
        }
        const char *colon = memchr(line, ':', ll);
        size_t kl = colon ? (size_t)(colon - line) : 0;
        if (!colon || !ext_name_ok(line, kl)) {
            set_err(err, errlen, "line %d is not \"key: value\": \"%s\"", lineno,
                    printable(pb, sizeof pb, line, ll));
            return -1;
        }
        /* sts-policy-field-delim = ":" *WSP; whitespace may end the line. */
        const char *v = colon + 1;
        size_t vl = ll - kl - 1;
        while (vl > 0 && is_wsp(*v)) {
            v++;
            vl--;
        }
        while (vl > 0 && is_wsp(v[vl - 1])) {
            vl--;
        }
        if (policy_field(p, line, kl, v, vl, lineno, &have, err, errlen) < 0) {
            return -1;
        }
    }
    if (!(have & 1)) {
        set_err(err, errlen, "no version field");
        return -1;
    }
    if (!(have & 2)) {
        set_err(err, errlen, "no mode field");
        return -1;
    }
    if (!(have & 4)) {
        set_err(err, errlen, "no max_age field");
        return -1;
    }
    if (p->mode != STS_MODE_NONE && p->nmx == 0) {
        set_err(err, errlen, "no mx field (required in mode %s)", sts_mode_name(p->mode));
        return -1;
    }
    return 0;
}

/* The mx patterns as a JSON array. */
char *sts_mx_json(const sts_policy_t *p)
{
    strbuf_t sb;
    sb_init(&sb);
    sb_putc(&sb, '[');
    for (int i = 0; i < p->nmx; i++) {
        if (i > 0) {
            sb_putc(&sb, ',');
        }
        sb_json_str(&sb, p->mx[i], strlen(p->mx[i]));
    }
    sb_putc(&sb, ']');
    return sb_take(&sb);
}

/* Mode name, as stored. */
const char *sts_mode_name(sts_mode_t m)
{
    switch (m) {
    case STS_MODE_ENFORCE:
        return "enforce";
    case STS_MODE_TESTING:
        return "testing";
    case STS_MODE_NONE:
        return "none";
    default:
        return NULL;
    }
}

/* ---- MX matching (RFC 8461 4.1) ----------------------------------------- */

/* Matches an MX host against one pattern; see mtasts.h. */
int sts_mx_match(const char *pattern, const char *host)
{
    if (!pattern || !host) {
        return 0;
    }
    size_t pl = strlen(pattern), hl = strlen(host);
    if (pl > 0 && pattern[pl - 1] == '.') {
        pl--;
    }
    if (hl > 0 && host[hl - 1] == '.') {
        hl--;
    }
    if (pl == 0 || hl == 0 || memchr(host, '*', hl)) {
        return 0;
    }
    if (pl > 2 && pattern[0] == '*' && pattern[1] == '.') {
        /* 4.1: the wildcard stands for exactly one label, the leftmost. */
        const char *sfx = pattern + 2;
        size_t sl = pl - 2;
        if (memchr(sfx, '*', sl)) {
            return 0;
        }
        const char *dot = memchr(host, '.', hl);
        if (!dot || dot == host) {
            return 0;
        }
        size_t rest = hl - (size_t)(dot + 1 - host);
        return rest == sl && strncasecmp(dot + 1, sfx, sl) == 0;
    }
    if (memchr(pattern, '*', pl)) {
        return 0;
    }
    return pl == hl && strncasecmp(pattern, host, pl) == 0;
}

/* ---- findings ---------------------------------------------------------- */

/* Fetch status name, as stored. */
const char *sts_fetch_status_name(sts_fetch_status_t s)
{
    static const char *names[] = {NULL,     "ok",   "dns",      "connect", "tls",
                                  "webpki", "http", "redirect", "size",    "timeout"};
    return (unsigned)s < sizeof names / sizeof *names ? names[s] : NULL;
}

/* Domain-level findings; see mtasts.h. */
void sts_findings(const sts_result_t *r, sts_emit_fn emit, void *ctx)
{
    char d[1024];
    if (r->cancelled) {
        return;
    }
    switch (r->txt_status) {
    case DNS_NOERROR:
    case DNS_NODATA:
    case DNS_NXDOMAIN:
        break;
    default:
        snprintf(d, sizeof d, "_mta-sts.%s TXT %s", r->domain, dns_status_name(r->txt_status));
        emit(ctx, "dns.error", d);
        return;
    }
    switch (r->txt_parsed.status) {
    case STS_TXT_NONE:
        snprintf(d, sizeof d, "no v=STSv1 TXT record at _mta-sts.%s", r->domain);
        emit(ctx, "sts.none", d);
        return;
    case STS_TXT_INVALID:
        snprintf(d, sizeof d, "%s: %.400s", r->txt_parsed.error, r->txt ? r->txt : "");
        emit(ctx, "sts.txt.invalid", d);
        return;
    case STS_TXT_VALID:
        break;
    }
    if (r->fetch_status == STS_FETCH_NONE) {
        return; /* not fetched: nothing was learnt about the policy */
    }
    if (r->fetch_status == STS_FETCH_WEBPKI) {
        snprintf(d, sizeof d, "https://mta-sts.%s" STS_WELL_KNOWN ": %s", r->domain,
                 r->fetch_error);
        emit(ctx, "sts.webpki.invalid", d);
        return;
    }
    if (r->fetch_status != STS_FETCH_OK) {
        snprintf(d, sizeof d, "https://mta-sts.%s" STS_WELL_KNOWN ": %s: %s", r->domain,
                 sts_fetch_status_name(r->fetch_status), r->fetch_error);
        emit(ctx, "sts.fetch.failed", d);
        return;
    }
    if (r->policy_valid != 1) {
        emit(ctx, "sts.policy.invalid", r->policy_error);
        return;
    }
    if (r->policy.mode == STS_MODE_TESTING || r->policy.mode == STS_MODE_NONE) {
        snprintf(d, sizeof d, "mode %s, max_age %ld, id %s", sts_mode_name(r->policy.mode),
                 r->policy.max_age, r->txt_parsed.id);
        emit(ctx, r->policy.mode == STS_MODE_TESTING ? "sts.mode.testing" : "sts.mode.none", d);
    }
}

/* Per-MX findings; see mtasts.h. */
void sts_mx_findings(const sts_result_t *r, const char *mx_host, int mx_pkix_valid,
                     sts_emit_fn emit, void *ctx)
{
    if (r->cancelled || r->policy_valid != 1 ||
        (r->policy.mode != STS_MODE_ENFORCE && r->policy.mode != STS_MODE_TESTING)) {
        return;
    }
    for (int i = 0; i < r->policy.nmx; i++) {
        if (sts_mx_match(r->policy.mx[i], mx_host)) {
            if (mx_pkix_valid == 0) {
                char d[512];
                snprintf(d, sizeof d,
                         "%s matches mx pattern %s of the %s policy, but its certificate is not "
                         "PKIX-valid",
                         mx_host, r->policy.mx[i], sts_mode_name(r->policy.mode));
                emit(ctx, "sts.mx.cert", d);
            }
            return;
        }
    }
    strbuf_t sb;
    sb_init(&sb);
    sb_printf(&sb, "%s matches no mx pattern of the %s policy (", mx_host,
              sts_mode_name(r->policy.mode));
    for (int i = 0; i < r->policy.nmx; i++) {
        sb_printf(&sb, "%s%s", i ? ", " : "", r->policy.mx[i]);
    }
    sb_putc(&sb, ')');
    char *d = sb_take(&sb);
    emit(ctx, "sts.mx.mismatch", d ? d : mx_host);
    free(d);
}

/* ---- the checker: state ---------------------------------------------- */

typedef struct sts_waiter {
    struct sts_waiter *next;
    sts_cb cb;
    void *arg;
} sts_waiter_t;

typedef enum entry_state { E_TXT, E_ADDR_A, E_ADDR_AAAA, E_GATE, E_FETCH, E_DONE } entry_state_t;

static const char *entry_state_names[] = {"TXT", "ADDR_A", "ADDR_AAAA", "GATE", "FETCH", "DONE"};

/* One domain's check: its place in the table, what it waits for, its result. */
typedef struct sts_entry {
    struct sts_entry *hnext; /* hash chain (and teardown's list) */
    struct sts_entry *dnext; /* delivery queue */
    sts_t *owner;
    entry_state_t state;
    int in_table, queued, orphan;
    int dns_out;  /* a lookup of ours is with the resolver */
    int gate_out; /* a request of ours waits at the gate */
    int granted;  /* we hold a gate slot */
    rl_req_t req;
    dns_status_t a_status; /* of the A lookup, for the "no address" text */
    CURL *easy;
    CURLSH *share;
    struct curl_slist *pin;
    char errbuf[CURL_ERROR_SIZE];
    size_t body_cap;
    int too_big;
    uint64_t t0;
    sts_waiter_t *whead, *wtail;
    sts_result_t res;
} sts_entry_t;

/* One socket curl asked us to watch. */
typedef struct sts_sock {
    uv_poll_t poll;
    curl_socket_t fd;
    sts_t *owner;
    struct sts_sock *prev, *next;
} sts_sock_t;

struct sts {
    uv_loop_t *loop;
    dns_t *dns;
    rl_t *rl;
    int port, timeout_ms, forget_done;
    const struct exclude *exclude;
    size_t max_body;
    char *ca_file, *ca_path;
    CURLM *multi;
    uv_timer_t curl_timer; /* curl's next deadline */
    uv_timer_t defer;      /* tells waiters from the loop */
    sts_sock_t *socks;
    sts_entry_t **buckets;
    size_t nbuckets, count;
    sts_entry_t *dhead, *dtail; /* entries with waiters to tell */
    size_t pending;             /* entries not done */
    int open_handles;           /* timers + polls not yet closed */
    int orphans;                /* entries kept for the resolver's or the gate's answer */
    int depth;                  /* nesting of our entry points; teardown waits for 0 */
    int closing, torn_down;
};

static void teardown(sts_t *s);
static void defer_cb(uv_timer_t *t);

/* Marks entry into one of our callbacks. */
static void enter(sts_t *s)
{
    s->depth++;
}

/* Leaves a callback; an sts_free() made inside it takes effect now. */
static void leave(sts_t *s)
{
    if (--s->depth == 0 && s->closing && !s->torn_down) {
        teardown(s);
    }
}

/* Frees s once nothing refers to it any more. */
static void maybe_free(sts_t *s)
{
    if (!s->torn_down || s->open_handles > 0 || s->orphans > 0) {
        return;
    }
    free(s->buckets);
    free(s->ca_file);
    free(s->ca_path);
    free(s);
}

/* Closes one handle of ours; s may be freed after the last. */
static void handle_close_cb(uv_handle_t *h)
{
    sts_t *s = h->data;
    s->open_handles--;
    maybe_free(s);
}

/* ---- the table --------------------------------------------------------- */

/* FNV-1a of a domain. */
static size_t hash_name(const char *s)
{
    size_t h = 1469598103934665603ull;
    while (*s) {
        h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    }
    return h;
}

/* The entry of a domain, or NULL. */
static sts_entry_t *table_find(sts_t *s, const char *name)
{
    for (sts_entry_t *e = s->buckets[hash_name(name) & (s->nbuckets - 1)]; e; e = e->hnext) {
        if (strcmp(e->res.domain, name) == 0) {
            return e;
        }
    }
    return NULL;
}

/* Doubles the table when the chains get long (a failed grow only costs speed). */
static void table_grow(sts_t *s)
{
    size_t nb = s->nbuckets * 2;
    sts_entry_t **b = calloc(nb, sizeof *b);
    if (!b) {
        return;
    }
    for (size_t i = 0; i < s->nbuckets; i++) {
        sts_entry_t *e = s->buckets[i];
        while (e) {
            sts_entry_t *n = e->hnext;
            size_t k = hash_name(e->res.domain) & (nb - 1);
            e->hnext = b[k];
            b[k] = e;
            e = n;
        }
    }
    free(s->buckets);
    s->buckets = b;
    s->nbuckets = nb;
}

/* Adds an entry to the table. */
static void table_add(sts_t *s, sts_entry_t *e)
{
    size_t k = hash_name(e->res.domain) & (s->nbuckets - 1);
    e->hnext = s->buckets[k];
    s->buckets[k] = e;
    e->in_table = 1;
    if (++s->count > s->nbuckets * 2) {
        table_grow(s);
    }
}

/* Takes an entry out of the table. */
static void table_remove(sts_t *s, sts_entry_t *e)
{
    size_t k = hash_name(e->res.domain) & (s->nbuckets - 1);
    for (sts_entry_t **pp = &s->buckets[k]; *pp; pp = &(*pp)->hnext) {
        if (*pp == e) {
            *pp = e->hnext;
            e->in_table = 0;
            s->count--;
            return;
        }
    }
}

/* Deep copy of a result; see mtasts.h. */
int sts_result_copy(sts_result_t *dst, const sts_result_t *src)
{
    *dst = *src;
    dst->txt = NULL;
    dst->body = NULL;
    dst->policy.nmx = 0;
    if (src->txt && !(dst->txt = strdup(src->txt))) {
        return -1;
    }
    if (src->body && (dst->body = malloc(src->body_len + 1))) {
        memcpy(dst->body, src->body, src->body_len);
        dst->body[src->body_len] = 0;
    } else if (src->body) {
        sts_result_clear(dst);
        return -1;
    }
    for (int i = 0; i < src->policy.nmx; i++) {
        if (!(dst->policy.mx[i] = strdup(src->policy.mx[i]))) {
            sts_result_clear(dst);
            return -1;
        }
        dst->policy.nmx = i + 1;
    }
    return 0;
}

/* Frees what sts_result_copy allocated. */
void sts_result_clear(sts_result_t *r)
{
    free(r->txt);
    free(r->body);
    r->txt = r->body = NULL;
    sts_policy_clear(&r->policy);
}

/* Frees an entry and its result. */
static void entry_free(sts_entry_t *e)
{
    sts_waiter_t *w = e->whead;
    while (w) {
        sts_waiter_t *n = w->next;
        free(w);
        w = n;
    }
    free(e->res.txt);
    free(e->res.body);
    sts_policy_clear(&e->res.policy);
    free(e);
}

/* An orphan got its last outstanding answer: it can go, and maybe s too. */
static void orphan_release(sts_entry_t *e)
{
    if (e->dns_out || e->gate_out) {
        return;
    }
    sts_t *s = e->owner;
    entry_free(e);
    s->orphans--;
    maybe_free(s);
}

/* Puts an entry on the delivery queue (once) and arms the zero timer. */
static void queue_delivery(sts_entry_t *e)
{
    sts_t *s = e->owner;
    if (e->queued) {
        return;
    }
    e->queued = 1;
    e->dnext = NULL;
    if (s->dtail) {
        s->dtail->dnext = e;
    } else {
        s->dhead = e;
    }
    s->dtail = e;
    if (!s->torn_down) {
        uv_timer_start(&s->defer, defer_cb, 0, 0);
    }
}

/* Moves an entry to its next state, logged at debug level. */
static void set_state(sts_entry_t *e, entry_state_t st)
{
    LOG_DEBUG("sts %s: %s -> %s", e->res.domain, entry_state_names[e->state],
              entry_state_names[st]);
    e->state = st;
}

/* The check is over: its waiters are told from the loop. */
static void finish(sts_entry_t *e)
{
    sts_t *s = e->owner;
    if (e->state == E_DONE) {
        return;
    }
    set_state(e, E_DONE);
    s->pending--;
    if (s->forget_done && e->in_table) {
        table_remove(s, e);
    }
    queue_delivery(e);
}

/* Ends a check that could not run to its end (shutdown, out of memory). */
static void finish_cancelled(sts_entry_t *e)
{
    e->res.cancelled = 1;
    finish(e);
}

/* Takes the first entry off the delivery queue and calls its waiters;
 * returns it (the caller decides its fate), or NULL when the queue is empty. */
static sts_entry_t *deliver_next(sts_t *s)
{
    if (!s->dhead) {
        return NULL;
    }
    sts_entry_t *e = s->dhead;
    s->dhead = e->dnext;
    if (!s->dhead) {
        s->dtail = NULL;
    }
    e->queued = 0;
    sts_waiter_t *w = e->whead;
    e->whead = e->wtail = NULL;
    while (w) {
        sts_waiter_t *n = w->next;
        w->cb(w->arg, &e->res);
        free(w);
        w = n;
    }
    return e;
}

/* Tells the waiters of each queued entry; see the file comment. */
static void defer_cb(uv_timer_t *t)
{
    sts_t *s = t->data;
    enter(s);
    sts_entry_t *e;
    while ((e = deliver_next(s)) != NULL) {
        /* A callback may have asked for the domain again (queued anew). */
        if (!e->in_table && !e->queued) {
            entry_free(e);
        }
    }
    leave(s);
}

/* ---- curl on the loop -------------------------------------------------- */

static void check_multi_info(sts_t *s);

/* A watched socket is ready (or failed): curl takes it from here. */
static void poll_cb(uv_poll_t *h, int status, int events)
{
    sts_sock_t *k = h->data;
    sts_t *s = k->owner;
    int flags = 0, running = 0;
    if (status < 0) {
        flags = CURL_CSELECT_ERR;
    }
    if (events & UV_READABLE) {
        flags |= CURL_CSELECT_IN;
    }
    if (events & UV_WRITABLE) {
        flags |= CURL_CSELECT_OUT;
    }
    enter(s);
    curl_multi_socket_action(s->multi, k->fd, flags, &running);
    check_multi_info(s);
    leave(s);
}

/* Frees a socket watcher once libuv is done with it. */
static void sock_close_cb(uv_handle_t *h)
{
    sts_sock_t *k = h->data;
    sts_t *s = k->owner;
    free(k);
    s->open_handles--;
    maybe_free(s);
}

/* Stops watching a socket, before curl closes it (epoll must not outlive
 * the descriptor, which curl may reuse for the next connection at once). */
static void sock_close(sts_t *s, sts_sock_t *k)
{
    if (k->prev) {
        k->prev->next = k->next;
    } else {
        s->socks = k->next;
    }
    if (k->next) {
        k->next->prev = k->prev;
    }
    uv_poll_stop(&k->poll);
    uv_close((uv_handle_t *)&k->poll, sock_close_cb);
}

/* CURLMOPT_SOCKETFUNCTION: curl says which events it wants on a socket. */
static int sock_cb(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    (void)easy;
    sts_t *s = userp;
    sts_sock_t *k = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (k) {
            curl_multi_assign(s->multi, fd, NULL);
            sock_close(s, k);
        }
        return 0;
    }
    if (!k) {
        k = calloc(1, sizeof *k);
        if (!k) {
            return 0; /* unwatched: the transfer ends at its deadline */
        }
        if (uv_poll_init_socket(s->loop, &k->poll, fd) != 0) {
            free(k);
            return 0;
        }
        k->fd = fd;
        k->owner = s;
        k->poll.data = k;
        k->next = s->socks;
        if (s->socks) {
            s->socks->prev = k;
        }
        s->socks = k;
        s->open_handles++;
        curl_multi_assign(s->multi, fd, k);
    }
    int ev = ((what & CURL_POLL_IN) ? UV_READABLE : 0) | ((what & CURL_POLL_OUT) ? UV_WRITABLE : 0);
    uv_poll_start(&k->poll, ev, poll_cb);
    return 0;
}

/* curl's deadline passed. */
static void curl_timer_cb(uv_timer_t *t)
{
    sts_t *s = t->data;
    int running = 0;
    enter(s);
    curl_multi_socket_action(s->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_multi_info(s);
    leave(s);
}

/* CURLMOPT_TIMERFUNCTION: curl's next deadline; -1 means none. Only arms
 * the timer: curl must not be re-entered from here. */
static int timer_fn(CURLM *multi, long timeout_ms, void *userp)
{
    (void)multi;
    sts_t *s = userp;
    if (s->torn_down) {
        return 0;
    }
    if (timeout_ms < 0) {
        uv_timer_stop(&s->curl_timer);
    } else {
        uv_timer_start(&s->curl_timer, curl_timer_cb, (uint64_t)timeout_ms, 0);
    }
    return 0;
}

/* ---- the fetch (RFC 8461 3.3) ------------------------------------------ */

/* CURLOPT_WRITEFUNCTION: keeps the body, up to the cap; past it the
 * transfer is aborted (a short count is a write error to curl). */
static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    sts_entry_t *e = userdata;
    size_t n = size * nmemb, max = e->owner->max_body;
    if (n > max - e->res.body_len) {
        e->too_big = 1;
        return 0;
    }
    if (e->res.body_len + n + 1 > e->body_cap) {
        size_t cap = e->body_cap ? e->body_cap : 1024;
        while (cap < e->res.body_len + n + 1) {
            cap *= 2;
        }
        if (cap > max + 1) {
            cap = max + 1;
        }
        char *b = realloc(e->res.body, cap);
        if (!b) {
            return 0;
        }
        e->res.body = b;
        e->body_cap = cap;
    }
    memcpy(e->res.body + e->res.body_len, ptr, n);
    e->res.body_len += n;
    e->res.body[e->res.body_len] = 0;
    return n;
}

/* Releases the curl objects of a fetch (removing it from the multi first). */
static void fetch_cleanup(sts_entry_t *e)
{
    sts_t *s = e->owner;
    if (e->easy) {
        curl_multi_remove_handle(s->multi, e->easy);
        curl_easy_cleanup(e->easy);
        e->easy = NULL;
    }
    if (e->share) {
        curl_share_cleanup(e->share);
        e->share = NULL;
    }
    curl_slist_free_all(e->pin);
    e->pin = NULL;
}

/* Gives the gate slot back. */
static void gate_release(sts_entry_t *e)
{
    if (e->granted) {
        e->granted = 0;
        rl_release(e->owner->rl, &e->req);
    }
}

/* Ends a fetch that failed before curl had it. */
static void fetch_fail(sts_entry_t *e, sts_fetch_status_t st, const char *msg)
{
    e->res.fetch_status = st;
    snprintf(e->res.fetch_error, sizeof e->res.fetch_error, "%.*s",
             (int)sizeof e->res.fetch_error - 1, msg);
    fetch_cleanup(e);
    gate_release(e);
    finish(e);
}

/* Starts the HTTPS GET of the policy, pinned to the address we resolved. */
static void fetch_start(sts_entry_t *e)
{
    sts_t *s = e->owner;
    set_state(e, E_FETCH);
    e->easy = curl_easy_init();
    e->share = curl_share_init();
    char url[DNS_NAME_MAX + 64], pin[DNS_NAME_MAX + 96];
    snprintf(url, sizeof url, "https://mta-sts.%s" STS_WELL_KNOWN, e->res.domain);
    snprintf(pin, sizeof pin,
             strchr(e->res.fetch_ip, ':') ? "mta-sts.%s:%d:[%s]" : "mta-sts.%s:%d:%s",
             e->res.domain, s->port, e->res.fetch_ip);
    e->pin = curl_slist_append(NULL, pin);
    if (!e->easy || !e->share || !e->pin) {
        fetch_fail(e, STS_FETCH_CONNECT, "cannot set up the fetch (out of memory)");
        return;
    }
    /* A DNS cache of its own: the pinned entry dies with the fetch. */
    curl_share_setopt(e->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
    CURL *c = e->easy;
    int bad = 0;
    bad |= curl_easy_setopt(c, CURLOPT_URL, url) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_PORT, (long)s->port) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_SHARE, e->share) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_RESOLVE, e->pin) != CURLE_OK;
    /* HTTPS only, no redirect followed (3.3: a 3xx is a failure), no proxy. */
    bad |= curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "https") != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "https") != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_NOPROXY, "*") != CURLE_OK;
    /* 3.3: the certificate must be PKIX-valid for mta-sts.<domain>. */
    bad |= curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK;
    if (s->ca_file) {
        bad |= curl_easy_setopt(c, CURLOPT_CAINFO, s->ca_file) != CURLE_OK;
    }
    if (s->ca_path) {
        bad |= curl_easy_setopt(c, CURLOPT_CAPATH, s->ca_path) != CURLE_OK;
    }
    /* One connection per gate grant, closed after the fetch. */
    bad |= curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_FORBID_REUSE, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)s->timeout_ms) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)s->max_body) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, write_cb) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_WRITEDATA, e) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_ERRORBUFFER, e->errbuf) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_PRIVATE, e) != CURLE_OK;
    bad |= curl_easy_setopt(c, CURLOPT_USERAGENT, "mxscan/" MXSCAN_VERSION) != CURLE_OK;
    if (bad) {
        fetch_fail(e, STS_FETCH_CONNECT, "cannot set up the fetch (libcurl refused an option)");
        return;
    }
    e->errbuf[0] = 0;
    e->t0 = uv_hrtime();
    if (curl_multi_add_handle(s->multi, c) != CURLM_OK) {
        fetch_fail(e, STS_FETCH_CONNECT, "cannot start the fetch");
    }
}

/* Sorts a finished transfer into the fetch classes of mta-sts.fetch_status. */
static void fetch_classify(sts_entry_t *e, CURLcode rc)
{
    sts_result_t *r = &e->res;
    long code = 0;
    curl_off_t appconnect = 0;
    char *loc = NULL;
    curl_easy_getinfo(e->easy, CURLINFO_RESPONSE_CODE, &code);
    curl_easy_getinfo(e->easy, CURLINFO_APPCONNECT_TIME_T, &appconnect);
    curl_easy_getinfo(e->easy, CURLINFO_REDIRECT_URL, &loc);
    r->http_status = code;
    r->t_fetch = (double)(uv_hrtime() - e->t0) / 1e6;
    /* With verification on, a completed handshake means the certificate
     * passed; a verification failure is the one way to learn it did not. */
    r->webpki_valid = rc == CURLE_PEER_FAILED_VERIFICATION ? 0 : appconnect > 0 ? 1 : -1;
    const char *cerr = e->errbuf[0] ? e->errbuf : curl_easy_strerror(rc);
    if (e->too_big || rc == CURLE_FILESIZE_EXCEEDED) {
        r->fetch_status = STS_FETCH_SIZE;
        snprintf(r->fetch_error, sizeof r->fetch_error, "policy larger than %zu bytes (%.200s)",
                 e->owner->max_body, cerr);
        return;
    }
    if (rc == CURLE_OK) {
        r->webpki_valid = 1;
        if (code == 200) {
            r->fetch_status = STS_FETCH_OK;
        } else if (code >= 300 && code < 400) {
            r->fetch_status = STS_FETCH_REDIRECT;
            snprintf(r->fetch_error, sizeof r->fetch_error, "HTTP %ld redirect to %.200s", code,
                     loc ? loc : "(no Location)");
        } else {
            r->fetch_status = STS_FETCH_HTTP;
            snprintf(r->fetch_error, sizeof r->fetch_error, "HTTP %ld", code);
        }
        return;
    }
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
        r->fetch_status = STS_FETCH_TIMEOUT;
        break;
    case CURLE_COULDNT_CONNECT:
        r->fetch_status = STS_FETCH_CONNECT;
        break;
    case CURLE_COULDNT_RESOLVE_HOST:
        r->fetch_status = STS_FETCH_DNS;
        break;
    case CURLE_PEER_FAILED_VERIFICATION:
        r->fetch_status = STS_FETCH_WEBPKI;
        break;
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
        r->fetch_status = STS_FETCH_TLS;
        break;
    default:
        /* Nothing, a reset or garbage after the handshake: the HTTP exchange broke. */
        r->fetch_status = STS_FETCH_HTTP;
        break;
    }
    snprintf(r->fetch_error, sizeof r->fetch_error, "%s", cerr);
}

/* A transfer ended: classify, parse a fetched policy, free the gate slot. */
static void fetch_done(sts_entry_t *e, CURLcode rc)
{
    fetch_classify(e, rc);
    fetch_cleanup(e);
    gate_release(e);
    sts_result_t *r = &e->res;
    if (r->fetch_status == STS_FETCH_OK) {
        r->policy_valid = sts_policy_parse(r->body ? r->body : "", r->body_len, &r->policy,
                                           r->policy_error, sizeof r->policy_error) == 0;
    } else {
        /* Only a policy is worth keeping; an error page is not. */
        free(r->body);
        r->body = NULL;
        r->body_len = 0;
    }
    LOG_DEBUG("sts %s: fetch %s (%s) HTTP %ld", r->domain, sts_fetch_status_name(r->fetch_status),
              r->fetch_error, r->http_status);
    finish(e);
}

/* Picks up the transfers curl has finished. */
static void check_multi_info(sts_t *s)
{
    CURLMsg *m;
    int left;
    while (s->multi && (m = curl_multi_info_read(s->multi, &left))) {
        if (m->msg != CURLMSG_DONE) {
            continue;
        }
        CURLcode rc = m->data.result;
        char *priv = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
        if (priv) {
            fetch_done((sts_entry_t *)(void *)priv, rc);
        }
    }
}

/* ---- the check: lookups and the gate ----------------------------------- */

static void txt_cb(void *arg, const dns_result_t *r);
static void addr_cb(void *arg, const dns_result_t *r);

/* Asks the resolver about prefix + domain. 0, or -1 if it refused. */
static int lookup(sts_entry_t *e, const char *prefix, int type, dns_cb cb)
{
    char name[DNS_NAME_MAX + 16];
    snprintf(name, sizeof name, "%s%s", prefix, e->res.domain);
    e->dns_out = 1;
    if (dns_query(e->owner->dns, name, type, 0, cb, e) < 0) {
        e->dns_out = 0;
        return -1;
    }
    return 0;
}

/* The gate let us connect (or shut down). */
static void gate_cb(rl_req_t *req, int cancelled)
{
    sts_entry_t *e = (sts_entry_t *)(void *)((char *)req - offsetof(sts_entry_t, req));
    sts_t *s = e->owner;
    e->gate_out = 0;
    if (e->orphan || e->state == E_DONE || s->closing) {
        if (!cancelled) {
            rl_release(s->rl, req);
        }
        if (e->orphan) {
            orphan_release(e);
        } else if (e->state != E_DONE) {
            finish_cancelled(e);
        }
        return;
    }
    enter(s);
    if (cancelled) {
        finish_cancelled(e);
    } else {
        e->granted = 1;
        fetch_start(e);
    }
    leave(s);
}

/* Waits at the gate for the policy host's address. */
static void go_gate(sts_entry_t *e)
{
    sts_t *s = e->owner;
    set_state(e, E_GATE);
    if (!s->rl) {
        fetch_start(e);
        return;
    }
    e->gate_out = 1;
    rl_acquire(s->rl, &e->req, e->res.fetch_ip, gate_cb);
}

/* Answer for mta-sts.<domain> A or AAAA. */
static void addr_cb(void *arg, const dns_result_t *r)
{
    sts_entry_t *e = arg;
    sts_t *s = e->owner;
    e->dns_out = 0;
    if (e->orphan) {
        orphan_release(e);
        return;
    }
    if (e->state == E_DONE) {
        return;
    }
    enter(s);
    if (r->status == DNS_CANCELLED || s->closing) {
        finish_cancelled(e);
    } else if (r->status == DNS_NOERROR && r->nrr > 0) {
        snprintf(e->res.fetch_ip, sizeof e->res.fetch_ip, "%.45s", r->rr[0].text);
        if (s->exclude && exclude_ip(s->exclude, e->res.fetch_ip) != 0) {
            /* listed: no packet goes to it; the domain's policy stays unknown */
            e->res.excluded = 1;
            fetch_fail(e, STS_FETCH_NONE, "not fetched: the address is excluded (--exclude)");
        } else {
            go_gate(e);
        }
    } else if (e->state == E_ADDR_A) {
        /* No IPv4 address: IPv6 is as good a way to the policy. */
        e->a_status = r->status;
        set_state(e, E_ADDR_AAAA);
        if (lookup(e, "mta-sts.", DNS_T_AAAA, addr_cb) < 0) {
            fetch_fail(e, STS_FETCH_DNS, "the resolver refused the AAAA query");
        }
    } else {
        char msg[DNS_NAME_MAX + 96];
        snprintf(msg, sizeof msg, "mta-sts.%s has no address (A %s, AAAA %s)", e->res.domain,
                 dns_status_name(e->a_status), dns_status_name(r->status));
        fetch_fail(e, STS_FETCH_DNS, msg);
    }
    leave(s);
}

/* Answer for _mta-sts.<domain> TXT. */
static void txt_cb(void *arg, const dns_result_t *r)
{
    sts_entry_t *e = arg;
    sts_t *s = e->owner;
    e->dns_out = 0;
    if (e->orphan) {
        orphan_release(e);
        return;
    }
    if (e->state == E_DONE) {
        return;
    }
    enter(s);
    e->res.txt_status = r->status;
    e->res.txt_rcode = r->rcode;
    if (r->status == DNS_CANCELLED || s->closing) {
        finish_cancelled(e);
        leave(s);
        return;
    }
    int n = r->status == DNS_NOERROR ? r->nrr : 0;
    const char **v = calloc((size_t)n + 1, sizeof *v);
    size_t *l = calloc((size_t)n + 1, sizeof *l);
    if (!v || !l) {
        free(v);
        free(l);
        finish_cancelled(e);
        leave(s);
        return;
    }
    strbuf_t sb;
    sb_init(&sb);
    for (int i = 0; i < n; i++) {
        v[i] = (const char *)r->rr[i].data;
        l[i] = r->rr[i].datalen;
        if (txt_is_candidate(v[i], l[i])) {
            if (sb.len) {
                sb_putc(&sb, '\n');
            }
            sb_put(&sb, v[i], l[i]);
        }
    }
    sts_txt_parse(v, l, n, &e->res.txt_parsed);
    e->res.txt = sb.len ? sb_take(&sb) : NULL;
    sb_free(&sb);
    free(v);
    free(l);
    /* 3.3: a policy is only fetched on the strength of a valid record. */
    if (e->res.txt_parsed.status == STS_TXT_VALID) {
        set_state(e, E_ADDR_A);
        if (lookup(e, "mta-sts.", DNS_T_A, addr_cb) < 0) {
            fetch_fail(e, STS_FETCH_DNS, "the resolver refused the A query");
        }
    } else {
        finish(e);
    }
    leave(s);
}

/* ---- the checker: public side ------------------------------------------ */

/* Lower-cases a domain without its trailing dot into out and checks that
 * it can be put in a DNS name and a URL: labels of letters, digits, '-' and
 * '_' (underscore names are not hosts, but harmless), short enough for the
 * "_mta-sts." prefix. 0 or -1. */
static int domain_key(const char *in, char out[DNS_NAME_MAX + 1])
{
    size_t n = in ? strlen(in) : 0;
    if (n > 0 && in[n - 1] == '.') {
        n--;
    }
    if (n == 0 || n > 253 - 9) { /* room for "_mta-sts." */
        return -1;
    }
    size_t lab = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '.') {
            if (lab == 0) {
                return -1;
            }
            lab = 0;
        } else if (isalnum(c) || c == '-' || c == '_') {
            if (++lab > 63) {
                return -1;
            }
        } else {
            return -1;
        }
        out[i] = (char)tolower(c);
    }
    out[n] = 0;
    return lab > 0 ? 0 : -1;
}

/* Creates the checker; see mtasts.h. */
sts_t *sts_new(uv_loop_t *loop, dns_t *dns, rl_t *rl, const sts_opts_t *o, char *err, size_t errlen)
{
    static int curl_ready;
    if (!curl_ready) {
        CURLcode rc = curl_global_init(CURL_GLOBAL_DEFAULT);
        if (rc != CURLE_OK) {
            set_err(err, errlen, "libcurl: %s", curl_easy_strerror(rc));
            return NULL;
        }
        curl_ready = 1;
    }
    sts_t *s = calloc(1, sizeof *s);
    if (!s) {
        set_err(err, errlen, "out of memory");
        return NULL;
    }
    s->loop = loop;
    s->dns = dns;
    s->rl = rl;
    s->port = o && o->port > 0 ? o->port : 443;
    s->timeout_ms = o && o->timeout_ms > 0 ? o->timeout_ms : STS_TIMEOUT_DEF;
    s->max_body = o && o->max_body > 0 ? o->max_body : STS_BODY_DEFAULT;
    s->forget_done = o ? o->forget_done : 0;
    s->exclude = o ? o->exclude : NULL;
    s->ca_file = o && o->ca_file ? strdup(o->ca_file) : NULL;
    s->ca_path = o && o->ca_path ? strdup(o->ca_path) : NULL;
    s->nbuckets = 1024;
    s->buckets = calloc(s->nbuckets, sizeof *s->buckets);
    s->multi = curl_multi_init();
    if (!s->buckets || !s->multi || (o && o->ca_file && !s->ca_file) ||
        (o && o->ca_path && !s->ca_path)) {
        set_err(err, errlen, "out of memory");
        if (s->multi) {
            curl_multi_cleanup(s->multi);
        }
        free(s->buckets);
        free(s->ca_file);
        free(s->ca_path);
        free(s);
        return NULL;
    }
    curl_multi_setopt(s->multi, CURLMOPT_SOCKETFUNCTION, sock_cb);
    curl_multi_setopt(s->multi, CURLMOPT_SOCKETDATA, s);
    curl_multi_setopt(s->multi, CURLMOPT_TIMERFUNCTION, timer_fn);
    curl_multi_setopt(s->multi, CURLMOPT_TIMERDATA, s);
    uv_timer_init(loop, &s->curl_timer);
    uv_timer_init(loop, &s->defer);
    s->curl_timer.data = s->defer.data = s;
    s->open_handles = 2;
    return s;
}

/* Starts or joins the check of a domain; see mtasts.h. */
int sts_check(sts_t *s, const char *domain, sts_cb cb, void *arg)
{
    char key[DNS_NAME_MAX + 1];
    if (s->closing || domain_key(domain, key) < 0) {
        return -1;
    }
    sts_waiter_t *w = calloc(1, sizeof *w);
    if (!w) {
        return -1;
    }
    w->cb = cb;
    w->arg = arg;
    sts_entry_t *e = table_find(s, key);
    int created = 0;
    if (!e) {
        e = calloc(1, sizeof *e);
        if (!e) {
            free(w);
            return -1;
        }
        created = 1;
        e->owner = s;
        memcpy(e->res.domain, key, strlen(key) + 1);
        e->res.txt_rcode = -1;
        e->res.webpki_valid = -1;
        e->res.policy_valid = -1;
        e->res.t_fetch = -1;
        e->res.policy.max_age = -1;
        e->state = E_TXT;
        table_add(s, e);
        s->pending++;
    }
    if (e->wtail) {
        e->wtail->next = w;
    } else {
        e->whead = w;
    }
    e->wtail = w;
    if (!created) {
        if (e->state == E_DONE) {
            queue_delivery(e); /* answered from the cache, from the loop */
        }
        return 0;
    }
    LOG_DEBUG("sts %s: start", key);
    enter(s);
    if (lookup(e, "_mta-sts.", DNS_T_TXT, txt_cb) < 0 && e->state != E_DONE) {
        e->res.txt_status = DNS_NETERR;
        finish_cancelled(e);
    }
    leave(s);
    return 0;
}

/* Checks in flight. */
size_t sts_pending(const sts_t *s)
{
    return s->pending;
}

/* Stops a check in flight, keeping it if the resolver or the gate still
 * owes it an answer. */
static void cancel_entry(sts_entry_t *e)
{
    fetch_cleanup(e);
    gate_release(e);
    finish_cancelled(e);
}

/* Cancels and tells everything, closes curl and the handles; see sts_free. */
static void teardown(sts_t *s)
{
    s->torn_down = 1;
    uv_timer_stop(&s->curl_timer);
    uv_timer_stop(&s->defer);
    /* Empty the table first: cancelling may run other callbacks (the gate
     * dispatches on release), and none of them may see a half-walked table. */
    sts_entry_t *all = NULL;
    for (size_t b = 0; b < s->nbuckets; b++) {
        sts_entry_t *e = s->buckets[b];
        while (e) {
            sts_entry_t *n = e->hnext;
            e->in_table = 0;
            e->hnext = all;
            all = e;
            e = n;
        }
        s->buckets[b] = NULL;
    }
    s->count = 0;
    for (sts_entry_t *e = all; e; e = e->hnext) {
        if (e->state != E_DONE) {
            cancel_entry(e);
        }
        queue_delivery(e); /* results with no waiter left are freed there too */
    }
    sts_entry_t *e;
    while ((e = deliver_next(s)) != NULL) {
        if (e->dns_out || e->gate_out) {
            e->orphan = 1;
            s->orphans++;
        } else {
            entry_free(e);
        }
    }
    /* Stop watching curl's sockets before curl closes them. */
    while (s->socks) {
        sock_close(s, s->socks);
    }
    curl_multi_setopt(s->multi, CURLMOPT_SOCKETFUNCTION, NULL);
    curl_multi_setopt(s->multi, CURLMOPT_TIMERFUNCTION, NULL);
    curl_multi_cleanup(s->multi);
    s->multi = NULL;
    uv_close((uv_handle_t *)&s->curl_timer, handle_close_cb);
    uv_close((uv_handle_t *)&s->defer, handle_close_cb);
}

/* Shuts the checker down; see mtasts.h. */
void sts_free(sts_t *s)
{
    if (!s || s->closing) {
        return;
    }
    s->closing = 1;
    if (s->depth == 0) {
        teardown(s);
    }
}
