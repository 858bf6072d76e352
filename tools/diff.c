/*
 * diff.c - `mxscan diff`: what changed between two scans, per domain, and
 * whether anything got worse (exit status 1) so that a nightly job can
 * alert on it.
 *
 * The two scans are read as streams ordered by domain: for each side one
 * cursor over its domains and one each over the domain's findings (its own,
 * and those of its MX hosts and endpoints through mx), its endpoints and
 * its MTA-STS row, every one ordered by domain from a primary key or an
 * index (no sort). The domain cursors are merged like two sorted lists; the
 * other cursors advance in step, so only one domain of each scan is held in
 * memory at a time, however large the scans are. The second scan may be in
 * another file, ATTACHed as schema "b".
 *
 * What counts as worse is defined once, here and in docs/tool-diff.md:
 * the posture moved down posture_rank(), a new (or escalated) crit or warn
 * finding, STARTTLS lost on an endpoint, a TLSA mismatch appeared, a
 * certificate was replaced by one that expires within --expiry-warning of
 * the newer scan, or the MTA-STS mode in force was downgraded.
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <sqlite3.h>

#include "db/db.h"
#include "scanner/strbuf.h"
#include "tools/scanflags.h"
#include "tools/tools.h"

enum { FMT_TEXT, FMT_JSON };

#define DEFAULT_EXPIRY_S (14L * 86400)

typedef struct diff_opts {
    const char *old_path; /* the database (or the older of two files) */
    const char *new_path; /* the newer file, or NULL for one database */
    int64_t from, to;     /* 0: the defaults */
    int format;
    int quiet;
    long expiry_s; /* a replacement certificate expiring sooner is worse */
} diff_opts_t;

/* ---- the ranking of postures and MTA-STS modes ------------------------- */

/* Goodness of a posture (FINDINGS.md), higher is better; -1 for postures
 * outside the ranking (no-mail, NULL, values this version does not know),
 * which are reported when they change but never count as worse: taking no
 * mail is a decision, not a weakness. unreachable and dns-error share the
 * lowest rank (no mail can be delivered either way). broken ranks below
 * plaintext: the domain published an enforcement that fails, so senders
 * that honour it cannot deliver at all. */
static int posture_rank(const char *p)
{
    static const struct {
        const char *name;
        int rank;
    } ranks[] = {
        {"dane", 8},      {"mta-sts", 7}, {"mta-sts-testing", 6}, {"starttls", 5},  {"partial", 4},
        {"plaintext", 3}, {"broken", 2},  {"unreachable", 1},     {"dns-error", 1},
    };
    if (p == NULL) {
        return -1;
    }
    for (size_t i = 0; i < sizeof ranks / sizeof *ranks; i++) {
        if (strcmp(p, ranks[i].name) == 0) {
            return ranks[i].rank;
        }
    }
    return -1;
}

/* Strength of the MTA-STS mode in force (domains.sts_mode; NULL when no
 * valid policy applies), RFC 8461 section 5. */
static int sts_rank(const char *mode)
{
    if (mode == NULL) {
        return 0;
    }
    return strcmp(mode, "enforce") == 0 ? 3 : strcmp(mode, "testing") == 0 ? 2 : 1;
}

/* crit 3, warn 2, info 1. */
static int sev_rank(const char *s)
{
    if (s == NULL) {
        return 0;
    }
    return strcmp(s, "crit") == 0 ? 3 : strcmp(s, "warn") == 0 ? 2 : 1;
}

static const char *sev_name(int r)
{
    return r >= 3 ? "crit" : r == 2 ? "warn" : "info";
}

/* ---- the kinds of change ---------------------------------------------- */

enum {
    K_DOMAIN_ADDED,
    K_DOMAIN_REMOVED,
    K_POSTURE,
    K_STARTTLS_LOST,
    K_STARTTLS_GAINED,
    K_CERT_REPLACED,
    K_TLSA_MISMATCH,
    K_TLSA_MISMATCH_RESOLVED,
    K_STS_MODE,
    K_STS_ID,
    K_STS_POLICY,
    K_FINDING_NEW,
    K_FINDING_RESOLVED,
    K_FINDING_SEVERITY,
    K_COUNT
};

static const char *const kind_names[K_COUNT] = {
    "domain.added",     "domain.removed",   "posture",       "starttls.lost",
    "starttls.gained",  "cert.replaced",    "tlsa.mismatch", "tlsa.mismatch.resolved",
    "sts.mode",         "sts.id",           "sts.policy",    "finding.new",
    "finding.resolved", "finding.severity",
};

/* One change, as printed: the five fields of the JSON object, the place
 * it concerns, and the body of the text line. */
typedef struct change {
    int kind;
    const char *old, *new_; /* NULL is JSON null */
    const char *detail;
    int worse;
    const char *code, *severity; /* findings */
    const char *host, *ip;       /* findings and endpoints */
    int port;
    const char *text; /* text format: what follows the kind */
} change_t;

/* ---- one domain of one scan -------------------------------------------- */

typedef struct dfinding {
    char *host, *ip, *code, *detail; /* host and ip "" when not set */
    int port, sev;
} dfinding_t;

typedef struct dendpoint {
    char *host, *ip;
    int port;
    int reached; /* the session got past EHLO (or HELO) */
    int tls;     /* a TLS session was made */
    int offered; /* STARTTLS was offered */
    char *failed_step, *tls_version;
    int has_der; /* leaf = SHA-256 of the first DER certificate */
    unsigned char leaf[32];
    char *subject, *not_after, *names, *dane;
} dendpoint_t;

typedef struct snap {
    int present;
    char *posture, *sts_mode;
    dfinding_t *f;
    size_t nf, capf;
    dendpoint_t *e;
    size_t ne, cape;
    int has_sts;
    char *txt_id, *policy;
} snap_t;

/* ---- cursors ------------------------------------------------------------ */

enum { C_DOM, C_FDOM, C_FHOST, C_EP, C_STS, C_N };

typedef struct cursor {
    sqlite3_stmt *st;
    int row; /* positioned on a row */
} cursor_t;

typedef struct side {
    const char *schema; /* "main" or "b" */
    const char *path;
    int64_t id;
    char started_at[40], status[24];
    time_t t0;
    uint64_t n_domains;
    cursor_t c[C_N];
    snap_t s;
} side_t;

typedef struct diff {
    diff_opts_t o;
    sqlite3 *db;
    side_t a, b; /* a = from, b = to */
    progress_t prog;
    FILE *out;
    int failed; /* an SQLite error: exit 2 */
    /* the domain being written */
    const char *domain;
    int domain_open;
    uint64_t domain_worse;
    /* totals */
    uint64_t n_domains, n_changed, n_worse_domains, n_added, n_removed;
    uint64_t n_changes, n_worse;
    uint64_t kinds[K_COUNT];
    int first_domain;
} diff_t;

/* ---- small helpers ------------------------------------------------------ */

static char *xstrdup(const char *s)
{
    if (s == NULL) {
        return NULL;
    }
    char *d = strdup(s);
    if (d == NULL) {
        fprintf(stderr, "mxscan diff: out of memory\n");
        exit(2);
    }
    return d;
}

static void *xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n);
    if (q == NULL) {
        fprintf(stderr, "mxscan diff: out of memory\n");
        exit(2);
    }
    return q;
}

/* Column i as text, NULL for SQL NULL. */
static const char *col(sqlite3_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(st, i);
}

static int str_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL) {
        return a == b;
    }
    return strcmp(a, b) == 0;
}

/* Parses the leading "YYYY-MM-DDTHH:MM:SS" of an ISO 8601 UTC time. */
static int parse_iso(const char *s, time_t *out)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (s == NULL || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                            &tm.tm_hour, &tm.tm_min, &tm.tm_sec) != 6) {
        return -1;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    *out = timegm(&tm);
    return 0;
}

/* Length of the first DER element of p (the leaf certificate, a
 * SEQUENCE, in chain_der), or 0 when it is not well formed. */
static size_t der_first_len(const unsigned char *p, size_t n)
{
    size_t len = 0, hdr;
    if (n < 2 || p[0] != 0x30) {
        return 0;
    }
    if (p[1] < 0x80) {
        len = p[1];
        hdr = 2;
    } else {
        size_t k = p[1] & 0x7f;
        if (k == 0 || k > 4 || n < 2 + k) {
            return 0;
        }
        for (size_t i = 0; i < k; i++) {
            len = len << 8 | p[2 + i];
        }
        hdr = 2 + k;
    }
    return len <= n - hdr ? hdr + len : 0;
}

/* "host" or "host ip:port" ("[v6]:port"), the place a finding concerns. */
static void put_where(strbuf_t *sb, const char *host, const char *ip, int port)
{
    if (host != NULL && *host) {
        sb_puts(sb, host);
    }
    if (ip != NULL && *ip) {
        sb_printf(sb, strchr(ip, ':') ? "%s[%s]:%d" : "%s%s:%d", host != NULL && *host ? " " : "",
                  ip, port);
    }
}

/* ---- output ------------------------------------------------------------- */

static void json_str(FILE *f, const char *s)
{
    if (s == NULL) {
        fputs("null", f);
        return;
    }
    strbuf_t sb;
    sb_init(&sb);
    sb_json_str(&sb, s, strlen(s));
    if (sb.s != NULL) {
        fputs(sb.s, f);
    }
    sb_free(&sb);
}

/* Writes s for a terminal: control bytes (a CR LF inside a server reply
 * too) and non-ASCII bytes become '?', so that text from the database (server
 * replies, certificate names) can neither send escape sequences nor break
 * the one-line-per-change layout. */
static void put_safe(FILE *f, const char *s)
{
    for (; s != NULL && *s; s++) {
        unsigned char c = (unsigned char)*s;
        fputc(c < 0x20 || c >= 0x7f ? '?' : c, f);
    }
}

/* Writes one change, opening the domain's group on its first one. */
static void emit(diff_t *D, const change_t *ch)
{
    FILE *f = D->out;
    if (!D->domain_open) {
        D->domain_open = 1;
        D->n_changed++;
        if (D->o.format == FMT_JSON) {
            fputs(D->first_domain ? "\n  " : ",\n  ", f);
            fputs("{\"domain\": ", f);
            json_str(f, D->domain);
            fputs(", \"changes\": [", f);
        } else {
            fputs(D->first_domain ? "" : "\n", f);
            put_safe(f, D->domain);
            fputc('\n', f);
        }
        D->first_domain = 0;
    } else if (D->o.format == FMT_JSON) {
        fputc(',', f);
    }
    D->n_changes++;
    D->kinds[ch->kind]++;
    if (ch->worse) {
        D->n_worse++;
        D->domain_worse++;
    }
    if (D->o.format == FMT_JSON) {
        fputs("\n    {\"kind\": ", f);
        json_str(f, kind_names[ch->kind]);
        fputs(", \"old\": ", f);
        json_str(f, ch->old);
        fputs(", \"new\": ", f);
        json_str(f, ch->new_);
        fputs(", \"detail\": ", f);
        json_str(f, ch->detail != NULL ? ch->detail : "");
        fprintf(f, ", \"worse\": %s", ch->worse ? "true" : "false");
        if (ch->code != NULL) {
            fputs(", \"code\": ", f);
            json_str(f, ch->code);
        }
        if (ch->severity != NULL) {
            fputs(", \"severity\": ", f);
            json_str(f, ch->severity);
        }
        if (ch->host != NULL && *ch->host) {
            fputs(", \"host\": ", f);
            json_str(f, ch->host);
        }
        if (ch->ip != NULL && *ch->ip) {
            fputs(", \"ip\": ", f);
            json_str(f, ch->ip);
            fprintf(f, ", \"port\": %d", ch->port);
        }
        fputc('}', f);
    } else {
        fprintf(f, "  %c %-22s ", ch->worse ? '!' : ' ', kind_names[ch->kind]);
        put_safe(f, ch->text);
        fputc('\n', f);
    }
}

/* Closes the domain's group, if a change opened it. */
static void end_domain(diff_t *D)
{
    if (D->domain_open && D->o.format == FMT_JSON) {
        fputs("\n  ]}", D->out);
    }
    if (D->domain_worse) {
        D->n_worse_domains++;
    }
    D->domain_open = 0;
    D->domain_worse = 0;
}

/* Emits a change whose text line is built in sb (consumed). */
static void emit_sb(diff_t *D, change_t *ch, strbuf_t *sb)
{
    ch->text = sb->s;
    emit(D, ch);
    sb_free(sb);
}

/* ---- snapshots ---------------------------------------------------------- */

static void snap_clear(snap_t *s)
{
    for (size_t i = 0; i < s->nf; i++) {
        free(s->f[i].host);
        free(s->f[i].ip);
        free(s->f[i].code);
        free(s->f[i].detail);
    }
    for (size_t i = 0; i < s->ne; i++) {
        dendpoint_t *e = &s->e[i];
        free(e->host);
        free(e->ip);
        free(e->failed_step);
        free(e->tls_version);
        free(e->subject);
        free(e->not_after);
        free(e->names);
        free(e->dane);
    }
    free(s->posture);
    free(s->sts_mode);
    free(s->txt_id);
    free(s->policy);
    s->nf = s->ne = 0;
    s->present = s->has_sts = 0;
    s->posture = s->sts_mode = s->txt_id = s->policy = NULL;
}

static void snap_free(snap_t *s)
{
    snap_clear(s);
    free(s->f);
    free(s->e);
}

static int finding_cmp(const void *x, const void *y)
{
    const dfinding_t *a = x, *b = y;
    int c = strcmp(a->host, b->host);
    if (c == 0) {
        c = strcmp(a->ip, b->ip);
    }
    if (c == 0) {
        c = (a->port > b->port) - (a->port < b->port);
    }
    if (c == 0) {
        c = strcmp(a->code, b->code);
    }
    return c;
}

static int endpoint_cmp(const void *x, const void *y)
{
    const dendpoint_t *a = x, *b = y;
    int c = strcmp(a->host, b->host);
    if (c == 0) {
        c = strcmp(a->ip, b->ip);
    }
    if (c == 0) {
        c = (a->port > b->port) - (a->port < b->port);
    }
    return c;
}

/* Sorts the findings by key (host, ip, port, code) and merges those with
 * the same key (the worst severity and the first detail stay): findings
 * are matched across scans by that key, whatever their detail text. */
static void findings_normalise(snap_t *s)
{
    if (s->nf < 2) {
        return;
    }
    qsort(s->f, s->nf, sizeof *s->f, finding_cmp);
    size_t w = 0;
    for (size_t i = 1; i < s->nf; i++) {
        if (finding_cmp(&s->f[w], &s->f[i]) == 0) {
            if (s->f[i].sev > s->f[w].sev) {
                s->f[w].sev = s->f[i].sev;
            }
            free(s->f[i].host);
            free(s->f[i].ip);
            free(s->f[i].code);
            free(s->f[i].detail);
        } else {
            s->f[++w] = s->f[i];
        }
    }
    s->nf = w + 1;
}

/* ---- reading ------------------------------------------------------------ */

/* Steps a cursor; an SQLite error ends the diff (exit 2). */
static void cur_step(diff_t *D, cursor_t *c)
{
    int rc = sqlite3_step(c->st);
    if (rc == SQLITE_ROW) {
        c->row = 1;
        return;
    }
    c->row = 0;
    if (rc != SQLITE_DONE && !D->failed) {
        fprintf(stderr, "mxscan diff: reading the scans: %s\n", sqlite3_errmsg(D->db));
        D->failed = 1;
    }
}

/* The domain of the current row (column 0), NULL past the end. */
static const char *cur_domain(const cursor_t *c)
{
    return c->row ? col(c->st, 0) : NULL;
}

/* Moves c past the rows of domains before d (rows without a domains row,
 * which a sound file does not have). Returns 1 when c is on a row of d. */
static int cur_seek(diff_t *D, cursor_t *c, const char *d)
{
    const char *cd;
    while (!D->failed && (cd = cur_domain(c)) != NULL && strcmp(cd, d) < 0) {
        cur_step(D, c);
    }
    return !D->failed && (cd = cur_domain(c)) != NULL && strcmp(cd, d) == 0;
}

static void add_finding(snap_t *s, sqlite3_stmt *st)
{
    if (s->nf == s->capf) {
        s->capf = s->capf ? s->capf * 2 : 16;
        s->f = xrealloc(s->f, s->capf * sizeof *s->f);
    }
    dfinding_t *f = &s->f[s->nf++];
    f->host = xstrdup(col(st, 1) ? col(st, 1) : "");
    f->ip = xstrdup(col(st, 2) ? col(st, 2) : "");
    f->port = sqlite3_column_int(st, 3);
    f->code = xstrdup(col(st, 4) ? col(st, 4) : "");
    f->sev = sev_rank(col(st, 5));
    f->detail = xstrdup(col(st, 6));
}

static void add_endpoint(snap_t *s, sqlite3_stmt *st)
{
    if (s->ne == s->cape) {
        s->cape = s->cape ? s->cape * 2 : 8;
        s->e = xrealloc(s->e, s->cape * sizeof *s->e);
    }
    dendpoint_t *e = &s->e[s->ne++];
    memset(e, 0, sizeof *e);
    e->host = xstrdup(col(st, 1) ? col(st, 1) : "");
    e->ip = xstrdup(col(st, 2) ? col(st, 2) : "");
    e->port = sqlite3_column_int(st, 3);
    const char *status = col(st, 4), *step = col(st, 5);
    e->failed_step = xstrdup(step);
    e->reached = str_eq(status, "ok") || str_eq(step, "starttls") || str_eq(step, "tls") ||
                 str_eq(step, "ehlo2");
    e->offered = sqlite3_column_int(st, 6);
    e->tls_version = xstrdup(col(st, 7));
    e->tls = e->tls_version != NULL;
    const unsigned char *der = sqlite3_column_blob(st, 8);
    size_t n = (size_t)sqlite3_column_bytes(st, 8), len = der ? der_first_len(der, n) : 0;
    if (len > 0 && EVP_Digest(der, len, e->leaf, NULL, EVP_sha256(), NULL) == 1) {
        e->has_der = 1;
    }
    e->subject = xstrdup(col(st, 9));
    e->not_after = xstrdup(col(st, 10));
    e->names = xstrdup(col(st, 11));
    e->dane = xstrdup(col(st, 12));
}

/* Reads domain d of one side: its domains row if the cursor is on it, and
 * the rows of the other cursors that belong to d. */
static void load(diff_t *D, side_t *sd, const char *d)
{
    snap_t *s = &sd->s;
    snap_clear(s);
    cursor_t *c = &sd->c[C_DOM];
    if (cur_domain(c) != NULL && strcmp(cur_domain(c), d) == 0) {
        s->present = 1;
        s->posture = xstrdup(col(c->st, 1));
        s->sts_mode = xstrdup(col(c->st, 2));
        cur_step(D, c);
        progress_add(&D->prog, 1);
    }
    for (int k = C_FDOM; k <= C_FHOST; k++) {
        c = &sd->c[k];
        for (int on = cur_seek(D, c, d); on; on = cur_seek(D, c, d)) {
            if (s->present) {
                add_finding(s, c->st);
            }
            cur_step(D, c);
        }
    }
    c = &sd->c[C_EP];
    for (int on = cur_seek(D, c, d); on; on = cur_seek(D, c, d)) {
        if (s->present) {
            add_endpoint(s, c->st);
        }
        cur_step(D, c);
    }
    c = &sd->c[C_STS];
    if (cur_seek(D, c, d)) {
        if (s->present) {
            s->has_sts = 1;
            s->txt_id = xstrdup(col(c->st, 1));
            s->policy = xstrdup(col(c->st, 2));
        }
        cur_step(D, c);
    }
    findings_normalise(s);
    if (s->ne > 1) {
        qsort(s->e, s->ne, sizeof *s->e, endpoint_cmp);
    }
}

/* ---- comparing one domain ----------------------------------------------- */

static void cmp_posture(diff_t *D, const snap_t *o, const snap_t *n)
{
    if (str_eq(o->posture, n->posture)) {
        return;
    }
    int ro = posture_rank(o->posture), rn = posture_rank(n->posture);
    change_t ch = {.kind = K_POSTURE, .old = o->posture, .new_ = n->posture};
    ch.worse = ro >= 0 && rn >= 0 && rn < ro;
    ch.detail = ro < 0 || rn < 0 ? "outside the ranking: not counted as worse"
                : rn < ro        ? "moved down the ranking"
                : rn > ro        ? "moved up the ranking"
                                 : "same rank";
    strbuf_t sb;
    sb_init(&sb);
    sb_printf(&sb, "%s -> %s", o->posture ? o->posture : "(none)",
              n->posture ? n->posture : "(none)");
    emit_sb(D, &ch, &sb);
}

/* A certificate replaced on an endpoint seen in both scans. */
static void cmp_cert(diff_t *D, const dendpoint_t *o, const dendpoint_t *n)
{
    int have_o = o->has_der || o->not_after != NULL, have_n = n->has_der || n->not_after != NULL;
    if (!have_o || !have_n) {
        return; /* no certificate on one side: STARTTLS lost or gained says it */
    }
    int replaced = o->has_der && n->has_der
                       ? memcmp(o->leaf, n->leaf, sizeof o->leaf) != 0
                       : !str_eq(o->subject, n->subject) || !str_eq(o->not_after, n->not_after) ||
                             !str_eq(o->names, n->names);
    if (!replaced) {
        return;
    }
    /* Seconds from the start of the newer scan to the new notAfter; whole
     * days of it (rounded towards minus infinity) for the message. */
    time_t t_na;
    int ok = parse_iso(n->not_after, &t_na) == 0;
    double left = ok ? difftime(t_na, D->b.t0) : 0;
    long days = left >= 0 ? (long)(left / 86400) : -(long)((-left + 86399) / 86400);
    change_t ch = {.kind = K_CERT_REPLACED, .old = o->not_after, .new_ = n->not_after};
    ch.host = n->host;
    ch.ip = n->ip;
    ch.port = n->port;
    ch.worse = ok && left < (double)D->o.expiry_s;

    strbuf_t det;
    sb_init(&det);
    if (!ok) {
        sb_puts(&det, "new certificate's expiry unknown");
    } else if (days < 0) {
        sb_printf(&det, "new certificate had expired %ld days before the scan", -days);
    } else {
        sb_printf(&det, "new certificate expires in %ld days", days);
    }
    if (ch.worse) {
        long e = D->o.expiry_s;
        if (e % 86400 == 0) {
            sb_printf(&det, ", within %ld days", e / 86400);
        } else if (e % 3600 == 0) {
            sb_printf(&det, ", within %ld hours", e / 3600);
        } else {
            sb_printf(&det, ", within %ld seconds", e);
        }
    }
    if (o->has_der && n->has_der) {
        sb_puts(&det, "; leaf sha256 ");
        for (int i = 0; i < 8; i++) {
            sb_printf(&det, "%02x", o->leaf[i]);
        }
        sb_puts(&det, " -> ");
        for (int i = 0; i < 8; i++) {
            sb_printf(&det, "%02x", n->leaf[i]);
        }
    }
    if (!str_eq(o->subject, n->subject)) {
        sb_printf(&det, "; subject %s -> %s", o->subject ? o->subject : "(none)",
                  n->subject ? n->subject : "(none)");
    }
    ch.detail = det.s;

    strbuf_t sb;
    sb_init(&sb);
    put_where(&sb, n->host, n->ip, n->port);
    sb_printf(&sb, ": not after %s -> %s (%s)", o->not_after ? o->not_after : "?",
              n->not_after ? n->not_after : "?", det.s ? det.s : "");
    emit_sb(D, &ch, &sb);
    sb_free(&det);
}

/* Why an endpoint that answered EHLO has no TLS session. */
static const char *no_tls_reason(const dendpoint_t *e)
{
    if (!e->offered) {
        return "STARTTLS not offered";
    }
    if (str_eq(e->failed_step, "starttls")) {
        return "STARTTLS refused";
    }
    if (str_eq(e->failed_step, "tls")) {
        return "TLS handshake failed";
    }
    return "no TLS session";
}

static void cmp_starttls(diff_t *D, const dendpoint_t *o, const dendpoint_t *n)
{
    int lost = o->tls && n->reached && !n->tls;
    int gained = !o->tls && o->reached && n->tls;
    if (!lost && !gained) {
        return;
    }
    change_t ch = {.kind = lost ? K_STARTTLS_LOST : K_STARTTLS_GAINED};
    ch.old = o->tls_version;
    ch.new_ = n->tls_version;
    ch.detail = lost ? no_tls_reason(n) : no_tls_reason(o);
    ch.worse = lost;
    ch.host = n->host;
    ch.ip = n->ip;
    ch.port = n->port;
    strbuf_t sb;
    sb_init(&sb);
    put_where(&sb, n->host, n->ip, n->port);
    if (lost) {
        sb_printf(&sb, ": %s -> no TLS (%s)", o->tls_version, ch.detail);
    } else {
        sb_printf(&sb, ": no TLS (%s) -> %s", ch.detail, n->tls_version);
    }
    emit_sb(D, &ch, &sb);
}

/* endpoints.dane: valid | mismatch | NULL (no usable TLSA). */
static void cmp_dane(diff_t *D, const dendpoint_t *o, const dendpoint_t *n)
{
    int was = str_eq(o->dane, "mismatch"), is = str_eq(n->dane, "mismatch");
    if (was == is) {
        return;
    }
    change_t ch = {.kind = is ? K_TLSA_MISMATCH : K_TLSA_MISMATCH_RESOLVED};
    ch.old = o->dane;
    ch.new_ = n->dane;
    ch.worse = is;
    ch.detail =
        is ? "no usable TLSA record matches the certificate any more" : "the TLSA mismatch is gone";
    ch.host = n->host;
    ch.ip = n->ip;
    ch.port = n->port;
    strbuf_t sb;
    sb_init(&sb);
    put_where(&sb, n->host, n->ip, n->port);
    sb_printf(&sb, ": dane %s -> %s", o->dane ? o->dane : "(none)", n->dane ? n->dane : "(none)");
    emit_sb(D, &ch, &sb);
}

/* Endpoints are matched by (host, ip, port): a merge of two sorted lists. */
static void cmp_endpoints(diff_t *D, const snap_t *o, const snap_t *n)
{
    size_t i = 0, j = 0;
    while (i < o->ne && j < n->ne) {
        int c = endpoint_cmp(&o->e[i], &n->e[j]);
        if (c < 0) {
            i++;
        } else if (c > 0) {
            j++;
        } else {
            cmp_starttls(D, &o->e[i], &n->e[j]);
            cmp_cert(D, &o->e[i], &n->e[j]);
            cmp_dane(D, &o->e[i], &n->e[j]);
            i++;
            j++;
        }
    }
}

static void cmp_sts(diff_t *D, const snap_t *o, const snap_t *n)
{
    strbuf_t sb;
    if (!str_eq(o->sts_mode, n->sts_mode)) {
        change_t ch = {.kind = K_STS_MODE, .old = o->sts_mode, .new_ = n->sts_mode};
        ch.worse = sts_rank(n->sts_mode) < sts_rank(o->sts_mode);
        ch.detail = ch.worse ? "MTA-STS mode downgraded" : "MTA-STS mode changed";
        sb_init(&sb);
        sb_printf(&sb, "%s -> %s", o->sts_mode ? o->sts_mode : "(no policy)",
                  n->sts_mode ? n->sts_mode : "(no policy)");
        emit_sb(D, &ch, &sb);
    }
    if (!o->has_sts || !n->has_sts || o->txt_id == NULL || n->txt_id == NULL) {
        return; /* a record that appeared or went shows in findings and mode */
    }
    int id_changed = strcmp(o->txt_id, n->txt_id) != 0;
    int both = o->policy != NULL && n->policy != NULL;
    int policy_changed = both && strcmp(o->policy, n->policy) != 0;
    if (!id_changed && !policy_changed) {
        return;
    }
    change_t ch = {.kind = id_changed && both && !policy_changed ? K_STS_ID : K_STS_POLICY,
                   .old = o->txt_id,
                   .new_ = n->txt_id};
    ch.detail = ch.kind == K_STS_ID ? "id changed without a policy change"
                : !id_changed       ? "policy changed without an id change (RFC 8461 3.1: "
                                      "senders keep the cached policy)"
                                    : "policy changed";
    sb_init(&sb);
    sb_printf(&sb, "id %s -> %s: %s", o->txt_id, n->txt_id, ch.detail);
    emit_sb(D, &ch, &sb);
}

static void emit_finding(diff_t *D, int kind, const dfinding_t *f, const dfinding_t *was)
{
    change_t ch = {.kind = kind, .code = f->code, .host = f->host, .ip = f->ip, .port = f->port};
    ch.severity = sev_name(f->sev);
    ch.detail = f->detail;
    strbuf_t sb;
    sb_init(&sb);
    if (kind == K_FINDING_NEW) {
        ch.new_ = f->code;
        ch.worse = f->sev >= 2;
        sb_printf(&sb, "%s (%s)", f->code, ch.severity);
    } else if (kind == K_FINDING_RESOLVED) {
        ch.old = f->code;
        sb_printf(&sb, "%s (%s)", f->code, ch.severity);
    } else {
        ch.old = sev_name(was->sev);
        ch.new_ = ch.severity;
        ch.worse = f->sev > was->sev && f->sev >= 2;
        sb_printf(&sb, "%s %s -> %s", f->code, ch.old, ch.new_);
    }
    if (*f->host || *f->ip) {
        sb_puts(&sb, " at ");
        put_where(&sb, f->host, f->ip, f->port);
    }
    if (kind != K_FINDING_RESOLVED && f->detail != NULL && *f->detail) {
        sb_printf(&sb, ": %s", f->detail);
    }
    emit_sb(D, &ch, &sb);
}

/* Findings are matched by (host, ip, port, code), detail ignored. */
static void cmp_findings(diff_t *D, const snap_t *o, const snap_t *n)
{
    size_t i = 0, j = 0;
    while (i < o->nf || j < n->nf) {
        int c = i == o->nf ? 1 : j == n->nf ? -1 : finding_cmp(&o->f[i], &n->f[j]);
        if (c < 0) {
            emit_finding(D, K_FINDING_RESOLVED, &o->f[i++], NULL);
        } else if (c > 0) {
            emit_finding(D, K_FINDING_NEW, &n->f[j++], NULL);
        } else {
            if (o->f[i].sev != n->f[j].sev) {
                emit_finding(D, K_FINDING_SEVERITY, &n->f[j], &o->f[i]);
            }
            i++;
            j++;
        }
    }
}

static void cmp_domain(diff_t *D, const char *d)
{
    const snap_t *o = &D->a.s, *n = &D->b.s;
    D->domain = d;
    D->n_domains++;
    if (!o->present || !n->present) {
        change_t ch = {.kind = o->present ? K_DOMAIN_REMOVED : K_DOMAIN_ADDED};
        ch.old = o->present ? o->posture : NULL;
        ch.new_ = n->present ? n->posture : NULL;
        ch.detail = o->present ? "not in the newer scan" : "not in the older scan";
        strbuf_t sb;
        sb_init(&sb);
        sb_printf(&sb, "%s (posture %s)", ch.detail,
                  (o->present ? o->posture : n->posture) ? (o->present ? o->posture : n->posture)
                                                         : "(none)");
        emit_sb(D, &ch, &sb);
        D->n_added += !o->present;
        D->n_removed += !n->present;
    } else {
        cmp_posture(D, o, n);
        cmp_endpoints(D, o, n);
        cmp_sts(D, o, n);
        cmp_findings(D, o, n);
    }
    end_domain(D);
}

/* ---- set-up ------------------------------------------------------------- */

static int prepare(diff_t *D, side_t *sd)
{
    /* Each ordered by domain from a primary key or an index: mx drives the
     * joins (CROSS JOIN keeps it the outer loop), so nothing is sorted. */
    static const char *const sql[C_N] = {
        "SELECT domain, posture, sts_mode FROM %s.domains WHERE scan_id = ?1 ORDER BY domain",
        "SELECT domain, host, ip, port, code, severity, detail FROM %s.findings"
        " WHERE scan_id = ?1 AND domain IS NOT NULL ORDER BY domain",
        "SELECT m.domain, f.host, f.ip, f.port, f.code, f.severity, f.detail"
        " FROM %s.mx m CROSS JOIN %s.findings f"
        " WHERE m.scan_id = ?1 AND f.scan_id = ?1 AND f.host = m.host AND f.domain IS NULL"
        " ORDER BY m.domain",
        "SELECT m.domain, e.host, e.ip, e.port, e.status, e.failed_step, e.starttls_offered,"
        " e.tls_version, e.chain_der, e.cert_subject, e.cert_not_after, e.cert_names, e.dane"
        " FROM %s.mx m CROSS JOIN %s.endpoints e"
        " WHERE m.scan_id = ?1 AND e.scan_id = ?1 AND e.host = m.host ORDER BY m.domain",
        "SELECT domain, txt_id, policy FROM %s.mta_sts WHERE scan_id = ?1 ORDER BY domain",
    };
    for (int k = 0; k < C_N; k++) {
        char q[640];
        snprintf(q, sizeof q, sql[k], sd->schema, sd->schema);
        if (sqlite3_prepare_v2(D->db, q, -1, &sd->c[k].st, NULL) != SQLITE_OK) {
            fprintf(stderr, "mxscan diff: %s: %s\n", sd->path, sqlite3_errmsg(D->db));
            return -1;
        }
        sqlite3_bind_int64(sd->c[k].st, 1, sd->id);
        cur_step(D, &sd->c[k]);
    }
    return D->failed ? -1 : 0;
}

/* Fills in a scan's row; id 0 picks the latest scan below `below` (0: no
 * bound). Returns 0, or -1 with a message. */
static int find_scan(diff_t *D, side_t *sd, int64_t id, int64_t below)
{
    char q[256];
    sqlite3_stmt *st = NULL;
    if (id > 0) {
        snprintf(q, sizeof q, "SELECT id, started_at, status FROM %s.scans WHERE id = ?1",
                 sd->schema);
    } else {
        snprintf(q, sizeof q,
                 "SELECT id, started_at, status FROM %s.scans WHERE ?1 = 0 OR id < ?1"
                 " ORDER BY id DESC LIMIT 1",
                 sd->schema);
    }
    if (sqlite3_prepare_v2(D->db, q, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "mxscan diff: %s: %s\n", sd->path, sqlite3_errmsg(D->db));
        return -1;
    }
    sqlite3_bind_int64(st, 1, id > 0 ? id : below);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        if (rc != SQLITE_DONE) {
            fprintf(stderr, "mxscan diff: %s: %s\n", sd->path, sqlite3_errmsg(D->db));
        } else if (id > 0) {
            fprintf(stderr, "mxscan diff: %s has no scan %lld\n", sd->path, (long long)id);
        } else if (below > 0) {
            fprintf(stderr,
                    "mxscan diff: %s has no scan before scan %lld: nothing to compare it with "
                    "(give --from ID)\n",
                    sd->path, (long long)below);
        } else {
            fprintf(stderr, "mxscan diff: %s holds no scan\n", sd->path);
        }
        sqlite3_finalize(st);
        return -1;
    }
    sd->id = sqlite3_column_int64(st, 0);
    snprintf(sd->started_at, sizeof sd->started_at, "%s", col(st, 1) ? col(st, 1) : "");
    snprintf(sd->status, sizeof sd->status, "%s", col(st, 2) ? col(st, 2) : "");
    sqlite3_finalize(st);
    if (parse_iso(sd->started_at, &sd->t0) < 0) {
        sd->t0 = time(NULL);
    }
    if (strcmp(sd->status, "done") != 0) {
        fprintf(
            stderr,
            "mxscan diff: warning: scan %lld of %s is %s: the domains it did not finish show as "
            "added or removed\n",
            (long long)sd->id, sd->path, sd->status);
    }
    snprintf(q, sizeof q, "SELECT count(*) FROM %s.domains WHERE scan_id = ?1", sd->schema);
    if (sqlite3_prepare_v2(D->db, q, -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, sd->id);
        if (sqlite3_step(st) == SQLITE_ROW) {
            sd->n_domains = (uint64_t)sqlite3_column_int64(st, 0);
        }
    }
    sqlite3_finalize(st);
    return 0;
}

/* ---- the command -------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f, "usage: mxscan diff DB [--from ID] [--to ID] [--format text|json] [-q]\n"
               "       mxscan diff OLD.db NEW.db [--from ID] [--to ID] ...\n"
               "\n"
               "What changed between two scans, per domain: posture, new and resolved\n"
               "findings, certificates replaced (old and new expiry), STARTTLS lost or\n"
               "gained, TLSA mismatch appeared, MTA-STS mode or id changed.\n"
               "\n"
               "  DB                    compare two scans of one database\n"
               "  OLD.db NEW.db         compare the latest scan of OLD.db with that of NEW.db\n"
               "      --from ID         the older scan (default: the one before --to; with two\n"
               "                        files, the latest of OLD.db)\n"
               "      --to ID           the newer scan (default: the latest; with two files,\n"
               "                        the latest of NEW.db)\n"
               "  -f, --format FMT      text (default) or json\n"
               "      --expiry-warning D  a certificate replaced by one that expires within D\n"
               "                        of the newer scan is worse (14d, 36h; default 14d)\n"
               "  -q, --quiet           no progress display\n"
               "  -h, --help            this help\n"
               "\n"
               "Worse: the posture moved down (dane > mta-sts > mta-sts-testing > starttls >\n"
               "partial > plaintext > broken > unreachable = dns-error; no-mail is outside\n"
               "the ranking), a new or escalated crit/warn finding, STARTTLS lost, a TLSA\n"
               "mismatch appeared, a certificate replaced by one expiring within D, the\n"
               "MTA-STS mode downgraded (enforce > testing > none > no policy).\n"
               "\n"
               "Exit status: 0 nothing got worse, 1 something got worse, 2 bad usage or error.\n");
}

/* A positive scan id, or -1. */
static int64_t scan_id_arg(const char *v)
{
    char *end;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    return errno || end == v || *end || n <= 0 ? -1 : (int64_t)n;
}

/* Parses the flags; returns -1 to go on, else the exit status. */
static int parse_args(int argc, char **argv, diff_opts_t *o)
{
    enum { O_FROM = 256, O_TO, O_EXPIRY };
    static const struct option opts[] = {
        {"from", required_argument, 0, O_FROM},
        {"to", required_argument, 0, O_TO},
        {"format", required_argument, 0, 'f'},
        {"expiry-warning", required_argument, 0, O_EXPIRY},
        {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    memset(o, 0, sizeof *o);
    o->expiry_s = DEFAULT_EXPIRY_S;
    optind = 1;
    int opt;
    while ((opt = getopt_long(argc, argv, "f:qh", opts, NULL)) != -1) {
        switch (opt) {
        case O_FROM:
        case O_TO: {
            int64_t id = scan_id_arg(optarg);
            if (id < 0) {
                fprintf(stderr, "mxscan diff: --%s wants a scan id (a positive number), not '%s'\n",
                        opt == O_FROM ? "from" : "to", optarg);
                return 2;
            }
            *(opt == O_FROM ? &o->from : &o->to) = id;
            break;
        }
        case 'f':
            if (strcmp(optarg, "text") == 0) {
                o->format = FMT_TEXT;
            } else if (strcmp(optarg, "json") == 0) {
                o->format = FMT_JSON;
            } else {
                fprintf(stderr, "mxscan diff: --format is text or json, not '%s'\n", optarg);
                return 2;
            }
            break;
        case O_EXPIRY:
            /* the same durations as `mxscan scan --expiry-warning` */
            if (scanflags_duration_s(optarg, &o->expiry_s) < 0) {
                fprintf(stderr,
                        "mxscan diff: --expiry-warning wants a duration such as 14d or 36h, "
                        "not '%s'\n",
                        optarg);
                return 2;
            }
            break;
        case 'q':
            o->quiet = 1;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    int npos = argc - optind;
    if (npos < 1 || npos > 2) {
        fprintf(stderr, "mxscan diff: %s\n",
                npos < 1 ? "no database given" : "at most two database files");
        usage(stderr);
        return 2;
    }
    o->old_path = argv[optind];
    o->new_path = npos == 2 ? argv[optind + 1] : NULL;
    return -1;
}

/* Opens (and migrates) the file, refusing one that does not exist:
 * db_open would create an empty database. */
static db_t *open_db(const char *path)
{
    char err[512];
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "mxscan diff: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    db_t *h = db_open(path, err, sizeof err);
    if (h == NULL) {
        fprintf(stderr, "mxscan diff: %s\n", err);
    }
    return h;
}

static void print_header(diff_t *D)
{
    const side_t *s[2] = {&D->a, &D->b};
    if (D->o.format == FMT_JSON) {
        fputc('{', D->out);
        for (int i = 0; i < 2; i++) {
            fprintf(D->out, "%s\"%s\": {\"db\": ", i ? ", " : "", i ? "to" : "from");
            json_str(D->out, s[i]->path);
            fprintf(D->out, ", \"scan\": %lld, \"started_at\": ", (long long)s[i]->id);
            json_str(D->out, s[i]->started_at);
            fputs(", \"status\": ", D->out);
            json_str(D->out, s[i]->status);
            fputc('}', D->out);
        }
        fputs(",\n \"domains\": [", D->out);
    } else {
        for (int i = 0; i < 2; i++) {
            fprintf(D->out, "%s scan %lld of %s, started %s (%s)\n",
                    i ? "to:  " : "from:", (long long)s[i]->id, s[i]->path, s[i]->started_at,
                    s[i]->status);
        }
        fputc('\n', D->out);
    }
}

static void print_summary(diff_t *D, int status)
{
    FILE *f = D->out;
    if (D->o.format == FMT_JSON) {
        fprintf(f,
                "%s],\n \"summary\": {\"domains\": %llu, \"changed\": %llu, \"worse_domains\": "
                "%llu, \"added\": %llu, \"removed\": %llu, \"changes\": %llu, \"worse\": %llu, "
                "\"kinds\": {",
                D->n_changed ? "\n " : "", (unsigned long long)D->n_domains,
                (unsigned long long)D->n_changed, (unsigned long long)D->n_worse_domains,
                (unsigned long long)D->n_added, (unsigned long long)D->n_removed,
                (unsigned long long)D->n_changes, (unsigned long long)D->n_worse);
        for (int k = 0; k < K_COUNT; k++) {
            fprintf(f, "%s\"%s\": %llu", k ? ", " : "", kind_names[k],
                    (unsigned long long)D->kinds[k]);
        }
        fprintf(f, "}, \"exit\": %d}}\n", status);
        return;
    }
    if (D->n_changed == 0) {
        fputs("no changes\n", f);
    }
    fprintf(f,
            "%ssummary: scan %lld -> %lld: %llu domains, %llu changed (%llu worse), %llu added, "
            "%llu removed; %llu changes, %llu worse",
            D->n_changed ? "\n" : "", (long long)D->a.id, (long long)D->b.id,
            (unsigned long long)D->n_domains, (unsigned long long)D->n_changed,
            (unsigned long long)D->n_worse_domains, (unsigned long long)D->n_added,
            (unsigned long long)D->n_removed, (unsigned long long)D->n_changes,
            (unsigned long long)D->n_worse);
    const char *sep = " (";
    for (int k = 0; k < K_COUNT; k++) {
        if (D->kinds[k]) {
            fprintf(f, "%s%s %llu", sep, kind_names[k], (unsigned long long)D->kinds[k]);
            sep = ", ";
        }
    }
    fputs(*sep == ',' ? ")\n" : "\n", f);
}

/* `mxscan diff`. */
int cmd_diff(int argc, char **argv)
{
    diff_t D;
    memset(&D, 0, sizeof D);
    int rc = parse_args(argc, argv, &D.o);
    if (rc >= 0) {
        return rc;
    }
    D.out = stdout;
    D.first_domain = 1;
    D.a.schema = "main";
    D.a.path = D.o.old_path;
    D.b.schema = D.o.new_path ? "b" : "main";
    D.b.path = D.o.new_path ? D.o.new_path : D.o.old_path;

    /* The newer file is opened once on its own so that db_open migrates it
     * to the schema this version reads, then attached. */
    if (D.o.new_path != NULL) {
        db_t *h = open_db(D.o.new_path);
        if (h == NULL) {
            return 2;
        }
        db_close(h);
    }
    db_t *dbh = open_db(D.o.old_path);
    if (dbh == NULL) {
        return 2;
    }
    D.db = db_handle(dbh);
    rc = 2;
    if (D.o.new_path != NULL) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(D.db, "ATTACH DATABASE ?1 AS b", -1, &st, NULL) != SQLITE_OK ||
            sqlite3_bind_text(st, 1, D.o.new_path, -1, SQLITE_STATIC) != SQLITE_OK ||
            sqlite3_step(st) != SQLITE_DONE) {
            fprintf(stderr, "mxscan diff: %s: %s\n", D.o.new_path, sqlite3_errmsg(D.db));
            sqlite3_finalize(st);
            goto out;
        }
        sqlite3_finalize(st);
    }
    /* One read transaction: both scans are read as of one moment even if
     * a scan is being written to the same file. */
    if (sqlite3_exec(D.db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
        fprintf(stderr, "mxscan diff: %s\n", sqlite3_errmsg(D.db));
        goto out;
    }
    if (find_scan(&D, &D.b, D.o.to, 0) < 0) {
        goto out;
    }
    if (find_scan(&D, &D.a, D.o.from, D.o.new_path || D.o.from ? 0 : D.b.id) < 0) {
        goto out;
    }
    if (prepare(&D, &D.a) < 0 || prepare(&D, &D.b) < 0) {
        goto out;
    }

    progress_start(&D.prog, "comparing domains", D.a.n_domains + D.b.n_domains, D.o.quiet);
    print_header(&D);
    while (!D.failed) {
        const char *da = cur_domain(&D.a.c[C_DOM]), *db = cur_domain(&D.b.c[C_DOM]);
        if (da == NULL && db == NULL) {
            break;
        }
        char *d = xstrdup(da == NULL ? db : db == NULL ? da : strcmp(da, db) <= 0 ? da : db);
        load(&D, &D.a, d);
        load(&D, &D.b, d);
        if (!D.failed) {
            cmp_domain(&D, d);
        }
        free(d);
    }
    progress_end(&D.prog);
    if (!D.failed) {
        rc = D.n_worse ? 1 : 0;
        print_summary(&D, rc);
    }
    if (fflush(D.out) != 0 || ferror(D.out)) {
        fprintf(stderr, "mxscan diff: writing the output: %s\n", strerror(errno));
        rc = 2;
    }

out:
    for (int k = 0; k < C_N; k++) {
        sqlite3_finalize(D.a.c[k].st);
        sqlite3_finalize(D.b.c[k].st);
    }
    snap_free(&D.a.s);
    snap_free(&D.b.s);
    if (D.db != NULL && !sqlite3_get_autocommit(D.db)) {
        sqlite3_exec(D.db, "COMMIT", NULL, NULL, NULL);
    }
    db_close(dbh);
    return rc;
}
