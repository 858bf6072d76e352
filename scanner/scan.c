/*
 * scan.c - the scan pipeline: input thread, domain and host tasks on the
 * libuv loop, progress, signals and the summary.
 *
 * Memory is bounded by construction (massdns's habit): the input ring holds
 * at most RING_CAP names, at most max_domains domains are in flight, the
 * rate limiter caps sessions, and the writer's backlog is checked before a
 * domain is admitted. What grows with the scan is the host cache's summary
 * per unique MX host (a few dozen bytes each).
 *
 * Run phases: running (admitting from the ring), draining (input ended,
 * waiting for tasks in flight), done. An interrupt stops the input, cancels
 * DNS and waiting sessions, aborts live ones, drops unfinished domains and
 * hosts (nothing half-done is stored), and marks the scan interrupted.
 */
#include "scanner/scan.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "db/db.h"
#include "inputs/exclude.h"
#include "inputs/input.h"
#include "scanner/cache.h"
#include "scanner/dane.h"
#include "scanner/dns.h"
#include "scanner/grade.h"
#include "scanner/log.h"
#include "scanner/mtasts.h"
#include "scanner/tlsrpt.h"
#include "scanner/smtp.h"
#include "scanner/strbuf.h"
#include "scanner/tls.h"
#include "scanner/verdict.h"

int log_level = 1;

#define RING_CAP       4096
#define BACKLOG_MAX    50000       /* rows queued for the writer before admission pauses */
#define BACKLOG_BYTES  (64u << 20) /* or bytes of rows waiting to be written */
#define MAX_MX_PER_DOM 16

static const char *postures[] = {"no-mail",         "dns-error", "unreachable", "broken",
                                 "plaintext",       "partial",   "dane",        "mta-sts",
                                 "mta-sts-testing", "starttls"};
#define NPOSTURES (sizeof postures / sizeof *postures)

typedef struct ring_item {
    uint64_t line;
    char name[INPUT_NAME_MAX + 1];
} ring_item_t;

typedef struct scan scan_t;

typedef struct finding {
    struct finding *next;
    char *code, *host, *detail;
} finding_t;

typedef struct dom_mx {
    char host[DNS_NAME_MAX + 1];
    int pref;
    int iplit;
    int excluded; /* the host name is listed by --exclude: not looked up or scanned */
    int waiting;
    host_summary_t sum;
} dom_mx_t;

typedef struct domain_task {
    scan_t *sc;
    uint64_t line;
    char name[INPUT_NAME_MAX + 1];
    const char *mx_kind; /* mx | null | implicit | none */
    dns_status_t mx_status;
    int mx_ad;
    int nmx, mx_cap;
    dom_mx_t *mx; /* grown as MX records are added, up to MAX_MX_PER_DOM */
    int pending;
    int dns_failed;
    finding_t *findings;
    int n_crit, n_warn, n_info;
    /* MTA-STS (RFC 8461) and TLSRPT (RFC 8460), looked up beside the hosts */
    int have_sts, have_rpt;
    int sts_excluded;
    char sts_excluded_ip[46];
    sts_result_t sts;
    tlsrpt_t rpt;
    dns_status_t rpt_status;
} domain_task_t;

typedef struct host_task host_task_t;

typedef struct endpoint {
    host_task_t *h;
    rl_req_t req;
    smtp_session_t *sess;
    struct endpoint *live_prev, *live_next; /* sessions in flight, for interrupt */
    char ip[46];
    /* --enum: one more session per protocol version after the main one;
     * the endpoint row waits in its own batch until they are done. */
    int enum_next;
    unsigned enum_accepted; /* bit i: enum_protos[i] accepted */
    db_batch_t *row;
    /* --retry: a transient failure is tried once more, later */
    int retried;
    char first_error[160];
    struct endpoint *retry_next;
    uint64_t retry_due; /* uv_now() when the second try may start */
    char g_version[16], g_cipher[64], g_kx[16], g_group[32];
    int g_bits, g_aead, g_kex_bits, g_key_weak, g_key_bits;
    char g_key_type[16];
} endpoint_t;

/* The versions --enum tries, oldest first. */
static const struct {
    int version;
    const char *name;
} enum_protos[] = {{TLS1_VERSION, "TLSv1"},
                   {TLS1_1_VERSION, "TLSv1.1"},
                   {TLS1_2_VERSION, "TLSv1.2"},
                   {TLS1_3_VERSION, "TLSv1.3"}};
#define NPROTOS ((int)(sizeof enum_protos / sizeof *enum_protos))

struct host_task {
    scan_t *sc;
    cache_entry_t *e;
    dns_status_t a_status, aaaa_status;
    int a_ad, aaaa_ad, a_done, aaaa_done;
    char cname[DNS_NAME_MAX + 1];
    int naddrs, eps_cap;
    endpoint_t *eps; /* grown as addresses arrive, up to --max-addrs */
    int pending;
    db_batch_t *batch;
    /* DANE (RFC 7672): TLSA at _<port>._tcp.<host>, or at its RFC 7671
     * section 7 alias when the host is a CNAME. */
    int dns_pending; /* lookups out: A, AAAA, TLSA; then the CD retry or the alias */
    dns_status_t tlsa_status;
    int tlsa_asked, tlsa_ad, tlsa_cd_done, tlsa_cd_answered, alias_done;
    char tlsa_name[DNS_NAME_MAX + 1];
    int ntlsa, nusable;
    dane_rec_t tlsa[DANE_MAX_RECORDS];
    unsigned char *tlsa_buf[DANE_MAX_RECORDS];
    dane_rec_t usable[DANE_MAX_RECORDS];
    dane_state_t dane;
};

struct scan {
    const scan_config_t *cfg;
    uv_loop_t *loop;
    db_t *db;
    dns_t *dns;
    rl_t *rl;
    sts_t *sts;
    cache_t *cache;
    SSL_CTX *ssl_ctx;
    smtp_opts_t smtp;
    grade_opts_t grade;
    int port;
    char resolvers[512];

    /* input thread and ring */
    input_t *in;
    input_dedup_t *dedup;
    pthread_t thr;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ring_item_t *ring;
    size_t ring_head, ring_count;
    int input_done, input_stop;
    char input_error[256];
    atomic_uint_fast64_t lines, rejected, dup_input, accepted;
    atomic_uint_fast64_t other_shard, resumed_done, excluded_domains;
    sqlite3 *resume_conn; /* the input thread's: finished domains of a resumed scan */
    sqlite3_stmt *resume_st;
    exclude_t *exclude; /* --exclude */
    int lock_fd;        /* flock()ed: one scanner per database file */
    sqlite3 *host_conn; /* the loop's: stored host summaries (summary_load) */
    sqlite3_stmt *host_st;
    int host_lookup;       /* a host missing from the cache may be stored: look */
    uint64_t hosts_loaded; /* hosts read back from the database, not scanned */

    uv_async_t wake;
    uv_timer_t progress;
    uv_timer_t retry_timer;
    endpoint_t *retry_head, *retry_tail; /* FIFO: one delay for all, so in due order */
    uint64_t retries;
    uv_signal_t sigint, sigterm;
    int handles_closing;

    int interrupted, finished, closed, db_failed, stop_pending;
    int wake_closed; /* under mu: no thread may send on wake any more */
    uint64_t t0;
    uint64_t domains_started, domains_done, domains_inflight;
    uint64_t hosts_started, hosts_done, endpoints_done, endpoints_failed, enum_sessions;
    uint64_t posture_count[NPOSTURES];
    endpoint_t *live;
    int tty;
    size_t last_progress_len;
};

static void pump(scan_t *sc);
static void host_start(scan_t *sc, cache_entry_t *e);
static void stop_scan(scan_t *sc);

/* ---- input thread --------------------------------------------------- */

/* Wakes the loop from any thread, unless the wake handle is closing. */
static void wake_send(scan_t *sc)
{
    pthread_mutex_lock(&sc->mu);
    if (!sc->wake_closed) {
        uv_async_send(&sc->wake);
    }
    pthread_mutex_unlock(&sc->mu);
}

/* From now on nobody sends on wake; it may be closed. */
static void wake_off(scan_t *sc)
{
    pthread_mutex_lock(&sc->mu);
    sc->wake_closed = 1;
    pthread_mutex_unlock(&sc->mu);
}

/* Stores one rejected input line. */
static void store_reject(scan_t *sc, const input_item_t *it)
{
    db_batch_t *b = db_batch_new();
    db_row(b, "rejected", 0);
    db_int(b, "line", (int64_t)it->line);
    db_text(b, "text", it->text);
    db_text(b, "reason", it->reason);
    db_submit(sc->db, b);
}

/* A resumed scan: is the domain already stored? (on the input thread's own
 * read connection; WAL lets it read beside the writer). */
static int resume_done(sqlite3_stmt *st, const char *domain)
{
    sqlite3_reset(st);
    sqlite3_bind_text(st, 2, domain, -1, SQLITE_STATIC);
    return sqlite3_step(st) == SQLITE_ROW;
}

/* Opens the read connection and statement of a resumed scan's input. */
static sqlite3_stmt *resume_stmt_open(scan_t *sc, sqlite3 **conn)
{
    sqlite3_stmt *st = NULL;
    *conn = NULL;
    if (sqlite3_open_v2(sc->cfg->db_path, conn, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_busy_timeout(*conn, 10000) != SQLITE_OK ||
        sqlite3_prepare_v2(*conn, "SELECT 1 FROM domains WHERE scan_id = ?1 AND domain = ?2", -1,
                           &st, NULL) != SQLITE_OK) {
        sqlite3_close(*conn);
        *conn = NULL;
        return NULL;
    }
    sqlite3_bind_int64(st, 1, db_scan_id(sc->db));
    return st;
}

/* Adds a row of what --exclude kept the scan from touching. */
static void put_excluded(db_batch_t *b, const char *domain, const char *host, const char *ip,
                         const char *reason)
{
    db_row(b, "excluded", 0);
    db_text(b, "domain", domain);
    db_text(b, "host", host);
    db_text(b, "ip", ip);
    db_text(b, "reason", reason);
}

/* Reads the input into the ring; blocks only itself when the ring is full. */
static void *input_main(void *arg)
{
    scan_t *sc = arg;
    input_item_t it;
    sqlite3_stmt *rst = NULL;
    pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
    if (sc->cfg->resume_scan > 0) {
        /* kept in sc, closed after the join: the thread may be cancelled */
        rst = sc->resume_st = resume_stmt_open(sc, &sc->resume_conn);
        if (!rst) {
            pthread_mutex_lock(&sc->mu);
            snprintf(sc->input_error, sizeof sc->input_error,
                     "cannot read the finished domains of the resumed scan");
            pthread_mutex_unlock(&sc->mu);
            goto done;
        }
    }
    for (;;) {
        pthread_mutex_lock(&sc->mu);
        int stop = sc->input_stop;
        pthread_mutex_unlock(&sc->mu);
        if (stop) {
            break;
        }
        /* Cancellable only while reading: see scan_run's interrupt path. */
        pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
        input_status_t st = input_next(sc->in, &it);
        pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
        if (st == INPUT_EOF) {
            break;
        }
        if (st == INPUT_ERROR) {
            pthread_mutex_lock(&sc->mu);
            snprintf(sc->input_error, sizeof sc->input_error, "input line %llu: %s",
                     (unsigned long long)it.line, it.reason ? it.reason : "read error");
            pthread_mutex_unlock(&sc->mu);
            break;
        }
        atomic_store(&sc->lines, it.line);
        if (st == INPUT_REJECT) {
            atomic_fetch_add(&sc->rejected, 1);
            store_reject(sc, &it);
            continue;
        }
        if (sc->cfg->shard_n > 1 &&
            input_shard_of(it.domain, sc->cfg->shard_n) != sc->cfg->shard_i) {
            atomic_fetch_add(&sc->other_shard, 1);
            continue;
        }
        if (input_dedup_seen(sc->dedup, it.domain)) {
            atomic_fetch_add(&sc->dup_input, 1);
            continue;
        }
        if (rst && resume_done(rst, it.domain)) {
            atomic_fetch_add(&sc->resumed_done, 1);
            continue;
        }
        if (exclude_domain(sc->exclude, it.domain) == 1) {
            /* before any DNS query */
            atomic_fetch_add(&sc->excluded_domains, 1);
            db_batch_t *b = db_batch_new();
            put_excluded(b, it.domain, NULL, NULL, "the domain is listed");
            db_submit(sc->db, b);
            continue;
        }
        atomic_fetch_add(&sc->accepted, 1);
        pthread_mutex_lock(&sc->mu);
        if (sc->ring_count == RING_CAP) {
            /* Full: sleep until the loop has taken half, so that the two
             * threads meet once per RING_CAP / 2 names, not once per name. */
            while (sc->ring_count > RING_CAP / 2 && !sc->input_stop) {
                pthread_cond_wait(&sc->cv, &sc->mu);
            }
        }
        if (sc->input_stop) {
            pthread_mutex_unlock(&sc->mu);
            break;
        }
        ring_item_t *slot = &sc->ring[(sc->ring_head + sc->ring_count) % RING_CAP];
        slot->line = it.line;
        memcpy(slot->name, it.domain, sizeof slot->name);
        sc->ring_count++;
        int was_empty = sc->ring_count == 1;
        pthread_mutex_unlock(&sc->mu);
        if (was_empty) {
            wake_send(sc);
        }
    }
done:
    pthread_mutex_lock(&sc->mu);
    sc->input_done = 1;
    if (!sc->wake_closed) {
        uv_async_send(&sc->wake);
    }
    pthread_mutex_unlock(&sc->mu);
    return NULL;
}

/* Takes one name from the ring; 0 if empty. */
static int ring_pop(scan_t *sc, ring_item_t *out)
{
    pthread_mutex_lock(&sc->mu);
    int got = sc->ring_count > 0;
    if (got) {
        *out = sc->ring[sc->ring_head];
        sc->ring_head = (sc->ring_head + 1) % RING_CAP;
        sc->ring_count--;
        if (sc->ring_count == RING_CAP / 2) {
            pthread_cond_signal(&sc->cv); /* the input thread may be waiting for this */
        }
    }
    pthread_mutex_unlock(&sc->mu);
    return got;
}

/* ---- findings ------------------------------------------------------- */

/* Adds a finding to a batch with its severity in context and its result
 * type; returns the severity. */
static const char *put_finding(const scan_t *sc, db_batch_t *b, const char *domain,
                               const char *host, const char *ip, int port, const char *code,
                               const char *detail)
{
    const verdict_code_t *vc = verdict_lookup(code);
    const char *sev =
        verdict_severity(code, detail, port > 0 ? port : sc->port, sc->cfg->expect_ocsp);
    db_row(b, "findings", 0);
    db_text(b, "domain", domain);
    db_text(b, "host", host);
    db_text(b, "ip", ip);
    if (port > 0) {
        db_int(b, "port", port);
    } else {
        db_null(b, "port");
    }
    db_text(b, "code", code);
    db_text(b, "severity", sev);
    db_text(b, "result_type", vc ? vc->result_type : NULL);
    db_text(b, "detail", detail);
    return sev;
}

/* Counts a severity into three counters. */
static void count_sev(const char *sev, int *crit, int *warn, int *info)
{
    if (strcmp(sev, "crit") == 0) {
        (*crit)++;
    } else if (strcmp(sev, "warn") == 0) {
        (*warn)++;
    } else {
        (*info)++;
    }
}

/* Records a domain-level finding (optionally naming one of its MX hosts). */
static void domain_finding(domain_task_t *d, const char *code, const char *host, const char *detail)
{
    finding_t *f = calloc(1, sizeof *f);
    if (!f) {
        return;
    }
    f->code = strdup(code);
    f->host = host ? strdup(host) : NULL;
    f->detail = strdup(detail ? detail : "");
    f->next = d->findings;
    d->findings = f;
    const char *sev = verdict_severity(code, detail, d->sc->port, d->sc->cfg->expect_ocsp);
    count_sev(sev, &d->n_crit, &d->n_warn, &d->n_info);
}

/* ---- hosts ---------------------------------------------------------- */

typedef struct ep_ctx {
    host_task_t *h;
    endpoint_t *ep;
} ep_ctx_t;

/* An endpoint finding goes into the host's batch and its counters. */
static void ep_emit(void *arg, const char *code, const char *detail)
{
    ep_ctx_t *c = arg;
    host_task_t *h = c->h;
    const char *sev =
        put_finding(h->sc, h->batch, NULL, h->e->name, c->ep->ip, h->sc->port, code, detail);
    count_sev(sev, &h->e->sum.n_crit, &h->e->sum.n_warn, &h->e->sum.n_info);
}

/* A host-level finding (DNS of the host). */
static void host_finding(host_task_t *h, const char *code, const char *detail)
{
    const char *sev = put_finding(h->sc, h->batch, NULL, h->e->name, NULL, 0, code, detail);
    count_sev(sev, &h->e->sum.n_crit, &h->e->sum.n_warn, &h->e->sum.n_info);
}

/* The integer fields of host_summary_t as stored in hosts.summary (JSON,
 * one key each, plus "dns_error"): one list for writing and reading back. */
static const struct {
    const char *key;
    size_t off;
} summary_fields[] = {
#define SUMMARY_FIELD(f)                                                                           \
    {                                                                                              \
#f, offsetof(host_summary_t, f)                                                            \
    }
    SUMMARY_FIELD(dns_failed),  SUMMARY_FIELD(cname),        SUMMARY_FIELD(n_addrs),
    SUMMARY_FIELD(n_v6),        SUMMARY_FIELD(n_endpoints),  SUMMARY_FIELD(n_reached),
    SUMMARY_FIELD(n_tls),       SUMMARY_FIELD(n_pkix_valid), SUMMARY_FIELD(dnssec_secure),
    SUMMARY_FIELD(dane_usable), SUMMARY_FIELD(dane_broken),  SUMMARY_FIELD(n_dane_valid),
    SUMMARY_FIELD(n_crit),      SUMMARY_FIELD(n_warn),       SUMMARY_FIELD(n_info),
    SUMMARY_FIELD(n_excluded),
#undef SUMMARY_FIELD
};
#define NSUMMARY_FIELDS (sizeof summary_fields / sizeof *summary_fields)

/* The host summary as stored in hosts.summary (read back by summary_load). */
static char *summary_json(const host_summary_t *m)
{
    strbuf_t sb;
    sb_init(&sb);
    sb_puts(&sb, "{\"dns_error\":");
    sb_json_str(&sb, m->dns_error, strnlen(m->dns_error, sizeof m->dns_error));
    for (size_t i = 0; i < NSUMMARY_FIELDS; i++) {
        sb_printf(&sb, ",\"%s\":%d", summary_fields[i].key,
                  *(const int *)((const char *)m + summary_fields[i].off));
    }
    sb_putc(&sb, '}');
    return sb_take(&sb);
}

/* Reads a host's stored summary in this scan (resume, or a host the cache
 * evicted). 1 found, 0 not stored, -1 error. On the loop thread, through
 * its own read connection (WAL: readers do not wait for the writer). */
static int summary_load(scan_t *sc, const char *host, host_summary_t *m)
{
    if (!sc->host_st) {
        if (!sc->host_conn && (sqlite3_open_v2(sc->cfg->db_path, &sc->host_conn,
                                               SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
                               sqlite3_busy_timeout(sc->host_conn, 10000) != SQLITE_OK)) {
            return -1;
        }
        strbuf_t sql;
        sb_init(&sql);
        sb_puts(&sql, "SELECT json_extract(summary, '$.dns_error')");
        for (size_t i = 0; i < NSUMMARY_FIELDS; i++) {
            sb_printf(&sql, ", json_extract(summary, '$.%s')", summary_fields[i].key);
        }
        sb_puts(&sql, " FROM hosts WHERE scan_id = ?1 AND host = ?2 AND summary IS NOT NULL");
        int rc =
            sql.s ? sqlite3_prepare_v2(sc->host_conn, sql.s, -1, &sc->host_st, NULL) : SQLITE_NOMEM;
        sb_free(&sql);
        if (rc != SQLITE_OK) {
            return -1;
        }
        sqlite3_bind_int64(sc->host_st, 1, db_scan_id(sc->db));
    }
    sqlite3_stmt *st = sc->host_st;
    sqlite3_reset(st);
    sqlite3_bind_text(st, 2, host, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        sqlite3_reset(st);
        return rc == SQLITE_DONE ? 0 : -1;
    }
    memset(m, 0, sizeof *m);
    const unsigned char *e = sqlite3_column_text(st, 0);
    snprintf(m->dns_error, sizeof m->dns_error, "%s", e ? (const char *)e : "");
    for (size_t i = 0; i < NSUMMARY_FIELDS; i++) {
        *(int *)((char *)m + summary_fields[i].off) = sqlite3_column_int(st, (int)i + 1);
    }
    sqlite3_reset(st); /* ends the read transaction */
    return 1;
}

/* Writes the host row, submits the host's batch and wakes its domains. */
static void host_finish(host_task_t *h)
{
    scan_t *sc = h->sc;
    host_summary_t *sum = &h->e->sum;
    if (sc->interrupted) {
        db_batch_free(h->batch);
    } else {
        strbuf_t sb;
        sb_init(&sb);
        sb_putc(&sb, '[');
        for (int i = 0; i < h->naddrs; i++) {
            if (i) {
                sb_putc(&sb, ',');
            }
            sb_json_str(&sb, h->eps[i].ip, strlen(h->eps[i].ip));
        }
        sb_putc(&sb, ']');
        db_row(h->batch, "hosts", 0);
        db_text(h->batch, "host", h->e->name);
        db_text(h->batch, "a_rcode", dns_status_name(h->a_status));
        db_text(h->batch, "aaaa_rcode", dns_status_name(h->aaaa_status));
        db_text(h->batch, "a_dnssec", h->a_ad ? "secure" : "insecure");
        db_text(h->batch, "aaaa_dnssec", h->aaaa_ad ? "secure" : "insecure");
        db_text(h->batch, "dnssec", sum->dnssec_secure ? "secure" : "insecure");
        db_text(h->batch, "cname", h->cname[0] ? h->cname : NULL);
        db_int(h->batch, "ip_literal", 0);
        db_text(h->batch, "addresses", sb.s ? sb.s : "[]");
        db_int(h->batch, "n_endpoints", h->naddrs);
        if (h->tlsa_asked) {
            db_text(h->batch, "tlsa_name", h->tlsa_name);
            db_text(h->batch, "tlsa_rcode", dns_status_name(h->tlsa_status));
            db_text(h->batch, "tlsa_dnssec",
                    h->dane == DANE_BOGUS ? "bogus"
                    : h->tlsa_ad          ? "secure"
                                          : "insecure");
        }
        if (h->naddrs > 0) {
            db_text(h->batch, "dane", dane_state_name(h->dane));
        }
        sb_free(&sb);
        char *sj = summary_json(sum);
        db_text(h->batch, "summary", sj);
        free(sj);
        h->e->seq = db_submit(sc->db, h->batch);
        h->batch = NULL;
        db_submit(sc->db, h->batch);
    }
    h->batch = NULL;
    sc->hosts_done++;
    cache_entry_t *e = h->e;
    for (int i = 0; i < h->ntlsa; i++) {
        free(h->tlsa_buf[i]);
    }
    free(h->eps);
    free(h);
    cache_complete(e);
    pump(sc);
}

/* JSON array of verification error codes. */
static char *errors_json(const tls_facts_t *t)
{
    strbuf_t sb;
    sb_init(&sb);
    sb_putc(&sb, '[');
    for (int i = 0; i < t->nverify_errors; i++) {
        sb_printf(&sb, "%s%ld", i ? "," : "", t->verify_errors[i]);
    }
    sb_putc(&sb, ']');
    return sb_take(&sb);
}

/* Adds the certificate facts and the grade to the endpoint row being built. */
static void put_verdict_columns(db_batch_t *b, const cert_facts_t *c, const grade_result_t *g)
{
    if (c->parsed) {
        db_text(b, "cert_subject", c->subject);
        db_text(b, "cert_issuer", c->issuer);
        db_text(b, "cert_names", c->names_json);
        db_text(b, "cert_not_before", c->not_before);
        db_text(b, "cert_not_after", c->not_after);
        db_text(b, "cert_key_type", c->key_type);
        db_int(b, "cert_key_bits", c->key_bits);
        db_text(b, "cert_sig_alg", c->sig_alg);
        db_int(b, "pkix_valid", c->pkix_valid);
        db_text(b, "ocsp_status", c->ocsp_status[0] ? c->ocsp_status : NULL);
    }
    if (g) {
        db_text(b, "grade", g->grade);
        db_int(b, "grade_score", g->score);
        db_text(b, "grade_caps", g->caps);
    }
}

/* Adds the endpoint row of a finished session to b; the grade columns
 * only when grade is given (with --enum they come later). */
static void put_endpoint(db_batch_t *b, const smtp_result_t *r, const cert_facts_t *cert,
                         const grade_result_t *grade)
{
    db_row(b, "endpoints", 0);
    db_text(b, "host", r->host);
    db_text(b, "ip", r->ip);
    db_int(b, "port", r->port);
    db_text(b, "started_at", r->started_at);
    db_text(b, "status", r->fail == SMTP_OK ? "ok" : "failed");
    db_text(b, "failed_step", r->failed_step);
    db_text(b, "error", r->fail == SMTP_OK ? NULL : r->error);
    db_int(b, "tls_on_connect", r->tls_on_connect);
    if (r->banner_code) {
        db_int(b, "banner_code", r->banner_code);
    }
    db_text(b, "greeting", r->greeting);
    db_int(b, "helo_fallback", r->helo_fallback);
    if (r->ehlo_code) {
        db_int(b, "ehlo_code", r->ehlo_code);
    }
    char *j;
    if (r->ehlo_before) {
        j = smtp_ehlo_json(r->ehlo_before);
        db_text(b, "ehlo_before", j);
        free(j);
    }
    if (r->ehlo_after) {
        j = smtp_ehlo_json(r->ehlo_after);
        db_text(b, "ehlo_after", j);
        free(j);
    }
    if (r->ehlo_before) {
        db_int(b, "starttls_offered", r->starttls_offered);
    }
    if (r->starttls_code) {
        db_int(b, "starttls_code", r->starttls_code);
    }
    db_text(b, "starttls_reply", r->starttls_reply);
    if (r->tls_done) {
        db_text(b, "tls_version", r->tls.version);
        db_text(b, "tls_cipher", r->tls.cipher);
        db_text(b, "tls_group", r->tls.group);
        db_int(b, "tls_kex_bits", r->tls.kex_bits);
        db_int(b, "verify_code", r->tls.verify_code);
        db_text(b, "verify_error", r->tls.verify_error);
        if (r->tls.chain_der_len) {
            db_blob(b, "chain_der", r->tls.chain_der, r->tls.chain_der_len);
        }
        db_int(b, "chain_len", r->tls.chain_len);
        db_int(b, "tls_cipher_bits", r->tls.cipher_bits);
        db_int(b, "tls_aead", r->tls.cipher_aead);
        db_text(b, "tls_kx", r->tls.kx);
        char *ej = errors_json(&r->tls);
        db_text(b, "verify_errors", ej);
        free(ej);
        if (r->tls.ocsp_der_len) {
            db_blob(b, "ocsp_der", r->tls.ocsp_der, r->tls.ocsp_der_len);
        }
        put_verdict_columns(b, cert, grade);
        if (r->tls.dane_enabled) {
            db_text(b, "dane", r->tls.dane_matched ? "valid" : "mismatch");
            db_text(b, "dane_match", r->tls.dane_matched ? r->tls.dane_match : NULL);
        }
    }
    const double *t[] = {&r->t_connect,  &r->t_banner, &r->t_ehlo,
                         &r->t_starttls, &r->t_tls,    &r->t_ehlo2};
    const char *tn[] = {"t_connect_ms",  "t_banner_ms", "t_ehlo_ms",
                        "t_starttls_ms", "t_tls_ms",    "t_ehlo2_ms"};
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        if (*t[i] >= 0) {
            db_real(b, tn[i], *t[i]);
        }
    }
    db_real(b, "t_total_ms", r->t_total);
}

/* Removes an endpoint from the list of live sessions. */
static void live_remove(scan_t *sc, endpoint_t *ep)
{
    if (ep->live_prev) {
        ep->live_prev->live_next = ep->live_next;
    } else if (sc->live == ep) {
        sc->live = ep->live_next;
    }
    if (ep->live_next) {
        ep->live_next->live_prev = ep->live_prev;
    }
    ep->live_prev = ep->live_next = NULL;
}

/* One endpoint is finished (or cancelled). */
static void endpoint_done(host_task_t *h)
{
    if (--h->pending == 0) {
        host_finish(h);
    }
}

static void enum_next(endpoint_t *ep);

/* Version index of a version name, -1 if not one --enum tries. */
static int proto_index(const char *name)
{
    for (int i = 0; i < NPROTOS; i++) {
        if (strcmp(enum_protos[i].name, name) == 0) {
            return i;
        }
    }
    return -1;
}

/* The grade of an endpoint from the facts kept in ep, oldest version worst. */
static void ep_grade(endpoint_t *ep, const char *worst, grade_result_t *g, ep_ctx_t *c)
{
    cert_facts_t kc;
    memset(&kc, 0, sizeof kc);
    kc.key_weak = ep->g_key_weak;
    kc.key_bits = ep->g_key_bits;
    snprintf(kc.key_type, sizeof kc.key_type, "%s", ep->g_key_type);
    grade_tls_in_t gi = {.version = ep->g_version,
                         .cipher = ep->g_cipher,
                         .cipher_bits = ep->g_bits,
                         .aead = ep->g_aead,
                         .kx = ep->g_kx,
                         .group = ep->g_group,
                         .kex_bits = ep->g_kex_bits,
                         .worst_version = worst,
                         .cert = &kc};
    grade_tls(&gi, g, ep_emit, c);
}

/* Keeps what the grade needs, for after the --enum sessions. */
static void ep_keep_grade_inputs(endpoint_t *ep, const smtp_result_t *r, const cert_facts_t *c)
{
    snprintf(ep->g_version, sizeof ep->g_version, "%s", r->tls.version);
    snprintf(ep->g_cipher, sizeof ep->g_cipher, "%s", r->tls.cipher);
    snprintf(ep->g_kx, sizeof ep->g_kx, "%s", r->tls.kx);
    snprintf(ep->g_group, sizeof ep->g_group, "%s", r->tls.group);
    ep->g_bits = r->tls.cipher_bits;
    ep->g_aead = r->tls.cipher_aead;
    ep->g_kex_bits = r->tls.kex_bits;
    ep->g_key_weak = c->key_weak;
    ep->g_key_bits = c->key_bits;
    snprintf(ep->g_key_type, sizeof ep->g_key_type, "%s", c->key_type);
}

/* DANE verdict of one session of a host with usable TLSA (RFC 7672 2.2:
 * mail goes only over TLS that matches a record; anything else defers). */
static void ep_dane(host_task_t *h, ep_ctx_t *c, const smtp_result_t *r)
{
    host_summary_t *sum = &h->e->sum;
    if (r->tls_done && r->tls.dane_matched) {
        ep_emit(c, "dane.valid", r->tls.dane_match);
        sum->n_dane_valid++;
    } else if (r->tls_done) {
        char d[DNS_NAME_MAX + 64];
        snprintf(d, sizeof d, "no usable TLSA record at %s matched the presented chain",
                 h->tlsa_name);
        ep_emit(c, "dane.mismatch", d);
        sum->dane_broken = 1;
    } else if (verdict_reached(r)) {
        ep_emit(c, "dane.no_starttls",
                r->starttls_offered ? (r->error[0] ? r->error : "STARTTLS failed")
                                    : "STARTTLS not offered");
        sum->dane_broken = 1;
    }
}

/* A greeting that says "not now" (RFC 5321 4.2.5: 421, and 4yz replies
 * are transient). */
static int greeting_transient(const smtp_result_t *r)
{
    return r->banner_code >= 400 && r->banner_code < 500;
}

/* Worth one more try later: a connect timeout or a transient greeting. A
 * refused connection (nothing listens) or a timeout after connecting (a
 * tarpit) would only fail again. */
static int transient_failure(const smtp_result_t *r)
{
    return (r->fail == SMTP_F_CONNECT && strstr(r->error, "timed out")) || greeting_transient(r);
}

static void endpoint_go(rl_req_t *req, int cancelled);

/* Due retries ask the rate limiter for their second session; once the
 * scan stops, they are dropped like any session in flight. */
static void retry_cb(uv_timer_t *t)
{
    scan_t *sc = t->data;
    uint64_t now = uv_now(sc->loop);
    while (sc->retry_head && (sc->interrupted || sc->retry_head->retry_due <= now)) {
        endpoint_t *ep = sc->retry_head;
        sc->retry_head = ep->retry_next;
        if (!sc->retry_head) {
            sc->retry_tail = NULL;
        }
        ep->retry_next = NULL;
        if (sc->interrupted) {
            endpoint_done(ep->h);
        } else {
            rl_acquire(sc->rl, &ep->req, ep->ip, endpoint_go);
        }
    }
    if (sc->retry_head && !sc->interrupted) {
        uv_timer_start(&sc->retry_timer, retry_cb, sc->retry_head->retry_due - now, 0);
    }
}

/* Queues an endpoint's second try, cfg->retry_ms from now. */
static void retry_later(scan_t *sc, endpoint_t *ep, const smtp_result_t *r)
{
    ep->retried = 1;
    snprintf(ep->first_error, sizeof ep->first_error, "%.16s: %.140s",
             r->failed_step ? r->failed_step : "?", r->error);
    ep->retry_due = uv_now(sc->loop) + sc->cfg->retry_ms;
    ep->retry_next = NULL;
    if (sc->retry_tail) {
        sc->retry_tail->retry_next = ep;
    } else {
        sc->retry_head = ep;
        uv_timer_start(&sc->retry_timer, retry_cb, sc->cfg->retry_ms, 0);
    }
    sc->retry_tail = ep;
    sc->retries++;
    LOG_DEBUG("session %s [%s]: %s; trying again in %llu ms", ep->h->e->name, ep->ip,
              ep->first_error, (unsigned long long)sc->cfg->retry_ms);
}

/* A retried endpoint's row says so. */
static void put_attempts(db_batch_t *b, const endpoint_t *ep)
{
    if (ep->retried) {
        db_int(b, "attempts", 2);
        db_text(b, "first_error", ep->first_error);
    }
}

/* A session ended: store it, judge it, release its slot. */
static void session_cb(void *arg, smtp_result_t *r)
{
    endpoint_t *ep = arg;
    host_task_t *h = ep->h;
    scan_t *sc = h->sc;
    live_remove(sc, ep);
    ep->sess = NULL;
    if (greeting_transient(r) && sc->cfg->backoff_ms > 0) {
        /* the server asked us to go away for now: no new connection soon */
        rl_backoff(sc->rl, ep->ip, sc->cfg->backoff_ms);
    }
    rl_release(sc->rl, &ep->req);
    if (!sc->interrupted && r->fail != SMTP_F_ABORTED && !ep->retried && sc->cfg->retry_ms > 0 &&
        transient_failure(r)) {
        retry_later(sc, ep, r);
        return;
    }
    sc->endpoints_done++;
    if (r->fail != SMTP_OK) {
        sc->endpoints_failed++;
    }
    if (sc->interrupted || r->fail == SMTP_F_ABORTED) {
        endpoint_done(h);
        return;
    }
    ep_ctx_t c = {h, ep};
    verdict_endpoint(r, ep_emit, &c);
    cert_facts_t cert;
    grade_result_t grade;
    memset(&cert, 0, sizeof cert);
    memset(&grade, 0, sizeof grade);
    int enumerate = sc->cfg->enum_versions && r->tls_done;
    if (r->tls_done) {
        /* Judged from the recorded facts, as a re-run over the database would
         * (grade_cert() parses the stored DER into the same chain; here the
         * chain the handshake already parsed is used: decoding costs more
         * than judging). */
        grade_cert_chain(r->tls.chain, r->host, r->tls.verify_errors, r->tls.nverify_errors,
                         r->tls.ocsp_der, r->tls.ocsp_der_len, &sc->grade, &cert);
        grade_cert_findings(&cert, &sc->grade, ep_emit, &c);
        ep_keep_grade_inputs(ep, r, &cert);
        if (!enumerate) {
            ep_grade(ep, NULL, &grade, &c);
        }
    }
    host_summary_t *sum = &h->e->sum;
    if (h->dane == DANE_USABLE) {
        ep_dane(h, &c, r);
    }
    sum->n_endpoints++;
    if (verdict_reached(r)) {
        sum->n_reached++;
        if (verdict_tls_ok(r)) {
            sum->n_tls++;
            sum->n_pkix_valid += cert.pkix_valid;
        }
    }
    if (!enumerate) {
        put_endpoint(h->batch, r, &cert, r->tls_done ? &grade : NULL);
        put_attempts(h->batch, ep);
        grade_cert_clear(&cert);
        endpoint_done(h);
        return;
    }
    /* --enum: the row stays open in its own batch until every version
     * has been tried; the negotiated one is known to be accepted. */
    ep->row = db_batch_new();
    put_endpoint(ep->row, r, &cert, NULL);
    put_attempts(ep->row, ep);
    grade_cert_clear(&cert);
    int i = proto_index(r->tls.version);
    ep->enum_accepted = i >= 0 ? 1u << i : 0;
    ep->enum_next = 0;
    enum_next(ep);
}

/* All versions tried: grade with the oldest accepted, store the row. */
static void enum_finish(endpoint_t *ep)
{
    host_task_t *h = ep->h;
    scan_t *sc = h->sc;
    if (sc->interrupted) {
        db_batch_free(ep->row);
    } else {
        const char *worst = NULL;
        strbuf_t sb;
        sb_init(&sb);
        sb_putc(&sb, '[');
        for (int i = 0; i < NPROTOS; i++) {
            if (ep->enum_accepted & (1u << i)) {
                if (!worst) {
                    worst = enum_protos[i].name;
                }
                sb_printf(&sb, "%s\"%s\"", sb.len > 1 ? "," : "", enum_protos[i].name);
            }
        }
        sb_putc(&sb, ']');
        ep_ctx_t c = {h, ep};
        grade_result_t g;
        ep_grade(ep, worst, &g, &c);
        db_text(ep->row, "grade", g.grade);
        db_int(ep->row, "grade_score", g.score);
        db_text(ep->row, "grade_caps", g.caps);
        db_text(ep->row, "enum_versions", sb.s);
        sb_free(&sb);
        db_submit(sc->db, ep->row);
    }
    ep->row = NULL;
    endpoint_done(h);
}

/* One --enum session ended: was its version accepted? */
static void enum_session_cb(void *arg, smtp_result_t *r)
{
    endpoint_t *ep = arg;
    scan_t *sc = ep->h->sc;
    live_remove(sc, ep);
    ep->sess = NULL;
    rl_release(sc->rl, &ep->req);
    sc->enum_sessions++;
    if (r->tls_done) {
        ep->enum_accepted |= 1u << (ep->enum_next - 1);
    }
    enum_next(ep);
}

/* Starts the session an endpoint was granted, the main one or an --enum
 * one, or gives up its turn when the grant was cancelled. */
static void endpoint_start(rl_req_t *req, int cancelled, int enumerating)
{
    endpoint_t *ep = (endpoint_t *)((char *)req - offsetof(endpoint_t, req));
    host_task_t *h = ep->h;
    scan_t *sc = h->sc;
    if (!cancelled && !sc->interrupted) {
        /* DANE verifies the main session; --enum sessions only probe versions. */
        int dane = !enumerating && h->dane == DANE_USABLE;
        LOG_DEBUG("session %s [%s]:%d start", h->e->name, ep->ip, sc->port);
        ep->sess =
            smtp_start(sc->loop, &sc->smtp, h->e->name, ep->ip, sc->port, dane ? h->usable : NULL,
                       dane ? h->nusable : 0, enumerating ? enum_session_cb : session_cb, ep);
        if (ep->sess) {
            if (enumerating) {
                smtp_restrict_version(ep->sess, enum_protos[ep->enum_next - 1].version);
            }
            ep->live_next = sc->live;
            if (sc->live) {
                sc->live->live_prev = ep;
            }
            sc->live = ep;
            return;
        }
    }
    if (!cancelled) {
        rl_release(sc->rl, &ep->req);
    }
    if (enumerating) {
        enum_finish(ep);
    } else {
        endpoint_done(h);
    }
}

/* The rate limiter lets an --enum session start (or cancels it). */
static void enum_go(rl_req_t *req, int cancelled)
{
    endpoint_start(req, cancelled, 1);
}

/* Starts the session for the next untried version, or finishes. */
static void enum_next(endpoint_t *ep)
{
    scan_t *sc = ep->h->sc;
    while (ep->enum_next < NPROTOS && (ep->enum_accepted & (1u << ep->enum_next))) {
        ep->enum_next++;
    }
    if (ep->enum_next >= NPROTOS || sc->interrupted) {
        enum_finish(ep);
        return;
    }
    ep->enum_next++; /* the session about to start tries enum_next - 1 */
    rl_acquire(sc->rl, &ep->req, ep->ip, enum_go);
}

/* The rate limiter lets an endpoint connect (or cancels it). */
static void endpoint_go(rl_req_t *req, int cancelled)
{
    endpoint_start(req, cancelled, 0);
}

/* Both address lookups are in: start one session per address. */
static void host_addresses_done(host_task_t *h)
{
    host_summary_t *sum = &h->e->sum;
    scan_t *sc = h->sc;
    int a_bad =
        h->a_status != DNS_NOERROR && h->a_status != DNS_NODATA && h->a_status != DNS_NXDOMAIN;
    int aaaa_bad = h->aaaa_status != DNS_NOERROR && h->aaaa_status != DNS_NODATA &&
                   h->aaaa_status != DNS_NXDOMAIN;
    char detail[160];
    if (a_bad && h->a_status != DNS_CANCELLED) {
        snprintf(detail, sizeof detail, "A %s: %s", h->e->name, dns_status_name(h->a_status));
        host_finding(h, "dns.error", detail);
    }
    if (aaaa_bad && h->aaaa_status != DNS_CANCELLED) {
        snprintf(detail, sizeof detail, "AAAA %s: %s", h->e->name, dns_status_name(h->aaaa_status));
        host_finding(h, "dns.error", detail);
    }
    if (a_bad && aaaa_bad) {
        sum->dns_failed = 1;
        snprintf(sum->dns_error, sizeof sum->dns_error, "A %s", dns_status_name(h->a_status));
    }
    sum->cname = h->cname[0] != 0;
    sum->n_addrs = h->naddrs;
    sum->dnssec_secure = h->a_ad && h->aaaa_ad;
    if (h->naddrs == 0 || sc->interrupted) {
        h->pending = 1;
        endpoint_done(h);
        return;
    }
    h->pending = h->naddrs;
    for (int i = 0; i < h->naddrs; i++) {
        h->eps[i].h = h;
        rl_acquire(sc->rl, &h->eps[i].req, h->eps[i].ip, endpoint_go);
    }
}

/* Stores one TLSA record of the host (tlsa table) and its copy for DANE. */
static void tlsa_take(host_task_t *h, const dns_result_t *res, const char *name)
{
    for (int i = 0; i < h->ntlsa; i++) {
        free(h->tlsa_buf[i]);
    }
    h->ntlsa = 0;
    if (name != h->tlsa_name) {
        snprintf(h->tlsa_name, sizeof h->tlsa_name, "%s", name);
    }
    for (int i = 0; i < res->nrr && h->ntlsa < DANE_MAX_RECORDS; i++) {
        const dns_rr_t *rr = &res->rr[i];
        unsigned char *buf = malloc(rr->datalen ? rr->datalen : 1);
        if (!buf) {
            break;
        }
        memcpy(buf, rr->data, rr->datalen);
        h->tlsa_buf[h->ntlsa] = buf;
        h->tlsa[h->ntlsa] = (dane_rec_t){rr->usage, rr->selector, rr->mtype, buf, rr->datalen};
        h->ntlsa++;
    }
}

/* Decides what DANE means for the host (RFC 7672 2.1, 2.2 and 3.1.3) and
 * records its host-level findings and TLSA rows. */
static void host_dane_decide(host_task_t *h)
{
    char d[512], rec[200];
    int secure = h->a_ad && h->aaaa_ad;
    h->nusable = 0;
    for (int i = 0; i < h->ntlsa; i++) {
        if (dane_usable(&h->tlsa[i])) {
            h->usable[h->nusable++] = h->tlsa[i];
        }
    }
    if (h->naddrs == 0) {
        h->dane = DANE_NONE; /* no session: nothing for DANE to protect */
        return;
    }
    if (!secure) {
        h->dane = DANE_INSECURE;
        snprintf(d, sizeof d, "address records of %s are not DNSSEC-validated", h->e->name);
        host_finding(h, "dane.insecure", d);
    } else {
        switch (h->tlsa_status) {
        case DNS_NOERROR:
            if (!h->tlsa_ad) {
                h->dane = DANE_INSECURE;
                snprintf(d, sizeof d, "TLSA at %s is in an unsigned zone", h->tlsa_name);
                host_finding(h, "dane.insecure", d);
            } else if (h->nusable == 0) {
                h->dane = DANE_UNUSABLE;
                int o = snprintf(d, sizeof d, "no usable record at %s:", h->tlsa_name);
                for (int i = 0; i < h->ntlsa && o > 0 && (size_t)o < sizeof d; i++) {
                    dane_rec_text(&h->tlsa[i], rec, 48);
                    o += snprintf(d + o, sizeof d - (size_t)o, " [%s...]", rec);
                }
                host_finding(h, "dane.unusable", d);
            } else {
                h->dane = DANE_USABLE;
                if (dane_rollover_risk(h->tlsa, h->ntlsa)) {
                    dane_rec_text(&h->usable[0], rec, sizeof rec);
                    snprintf(d, sizeof d, "single DANE-EE record at %s: %s", h->tlsa_name, rec);
                    host_finding(h, "dane.rollover.risk", d);
                }
            }
            break;
        case DNS_NODATA:
        case DNS_NXDOMAIN:
            h->dane = h->tlsa_ad ? DANE_NONE : DANE_INSECURE;
            snprintf(d, sizeof d, "%s at %s", h->tlsa_ad ? "no TLSA" : "TLSA denial not validated",
                     h->tlsa_name);
            host_finding(h, h->tlsa_ad ? "dane.none" : "dane.insecure", d);
            break;
        case DNS_SERVFAIL:
            if (h->tlsa_cd_answered) {
                h->dane = DANE_BOGUS;
                snprintf(d, sizeof d,
                         "TLSA at %s failed DNSSEC validation (SERVFAIL; answered with CD=1)",
                         h->tlsa_name);
                host_finding(h, "dane.bogus", d);
                break;
            }
            /* not DNSSEC: a plain failure, as below */
            __attribute__((fallthrough));
        default:
            h->dane = DANE_ERROR;
            snprintf(d, sizeof d, "TLSA %s: %s", h->tlsa_name, dns_status_name(h->tlsa_status));
            host_finding(h, "dns.error", d);
            break;
        }
    }
    h->e->sum.dane_usable = h->dane == DANE_USABLE;
    h->e->sum.dane_broken = h->dane == DANE_UNUSABLE || h->dane == DANE_BOGUS;
    for (int i = 0; i < h->ntlsa; i++) {
        char hex[2 * 64 + 1];
        size_t n = h->tlsa[i].len < 64 ? h->tlsa[i].len : 64;
        for (size_t k = 0; k < n; k++) {
            snprintf(hex + 2 * k, 3, "%02x", h->tlsa[i].data[k]);
        }
        hex[2 * n] = 0;
        db_row(h->batch, "tlsa", 0);
        db_text(h->batch, "host", h->e->name);
        db_text(h->batch, "name", h->tlsa_name);
        db_int(h->batch, "usage", h->tlsa[i].usage);
        db_int(h->batch, "selector", h->tlsa[i].selector);
        db_int(h->batch, "mtype", h->tlsa[i].mtype);
        db_text(h->batch, "data", hex);
        db_int(h->batch, "usable", dane_usable(&h->tlsa[i]));
    }
}

static void host_lookups_done(host_task_t *h);

/* TLSA answer at _<port>._tcp.<host>. */
static void host_tlsa_cb(void *arg, const dns_result_t *res)
{
    host_task_t *h = arg;
    h->tlsa_status = res->status;
    h->tlsa_ad = res->ad;
    tlsa_take(h, res, h->tlsa_name);
    if (--h->dns_pending == 0) {
        host_lookups_done(h);
    }
}

/* The same TLSA query with CD=1: an answer means the SERVFAIL was DNSSEC. */
static void host_tlsa_cd_cb(void *arg, const dns_result_t *res)
{
    host_task_t *h = arg;
    h->tlsa_cd_answered =
        res->status == DNS_NOERROR || res->status == DNS_NODATA || res->status == DNS_NXDOMAIN;
    if (res->status == DNS_NOERROR) {
        tlsa_take(h, res, h->tlsa_name); /* recorded as seen; never used */
    }
    if (--h->dns_pending == 0) {
        host_lookups_done(h);
    }
}

/* TLSA at the CNAME-expanded name (RFC 7671 7): preferred when present. */
static void host_tlsa_alias_cb(void *arg, const dns_result_t *res)
{
    host_task_t *h = arg;
    if (res->status == DNS_NOERROR && res->nrr > 0) {
        char name[DNS_NAME_MAX + 16];
        snprintf(name, sizeof name, "_%d._tcp.%s", h->sc->port, h->cname);
        h->tlsa_status = res->status;
        h->tlsa_ad = res->ad;
        tlsa_take(h, res, name);
    }
    if (--h->dns_pending == 0) {
        host_lookups_done(h);
    }
}

/* A, AAAA and TLSA are in: a second round for bogus or alias TLSA, or go. */
static void host_lookups_done(host_task_t *h)
{
    scan_t *sc = h->sc;
    int secure = h->naddrs > 0 && h->a_ad && h->aaaa_ad;
    if (!sc->interrupted && sc->dns && secure) {
        /* RFC 7672 2.2: TLSA counts only for DNSSEC-secure addresses, so it
         * is asked only then (most MX hosts are unsigned: one query saved). */
        if (!h->tlsa_asked) {
            h->tlsa_asked = 1;
            h->dns_pending = 1;
            if (dns_query(sc->dns, h->tlsa_name, DNS_T_TLSA, 0, host_tlsa_cb, h) == 0) {
                return;
            }
            h->dns_pending = 0;
            h->tlsa_status = DNS_FORMERR;
        }
        if (h->tlsa_status == DNS_SERVFAIL && !h->tlsa_cd_done) {
            h->tlsa_cd_done = 1;
            h->dns_pending = 1;
            if (dns_query(sc->dns, h->tlsa_name, DNS_T_TLSA, DNS_Q_CD, host_tlsa_cd_cb, h) == 0) {
                return;
            }
            h->dns_pending = 0;
        }
        if (h->cname[0] && !h->alias_done) {
            char name[DNS_NAME_MAX + 16];
            snprintf(name, sizeof name, "_%d._tcp.%s", sc->port, h->cname);
            h->alias_done = 1;
            h->dns_pending = 1;
            if (dns_query(sc->dns, name, DNS_T_TLSA, 0, host_tlsa_alias_cb, h) == 0) {
                return;
            }
            h->dns_pending = 0;
        }
    }
    if (!sc->interrupted) {
        host_dane_decide(h);
    }
    host_addresses_done(h);
}

/* Makes room for more addresses: a host in flight costs what it has, not
 * the --max-addrs most it may have. Returns 0, or -1 if out of memory. */
static int grow_eps(host_task_t *h)
{
    int cap = h->eps_cap ? h->eps_cap * 2 : 2;
    if (cap > h->sc->cfg->max_addrs) {
        cap = h->sc->cfg->max_addrs;
    }
    endpoint_t *n = realloc(h->eps, (size_t)cap * sizeof *n);
    if (!n) {
        return -1;
    }
    memset(n + h->eps_cap, 0, (size_t)(cap - h->eps_cap) * sizeof *n);
    h->eps = n;
    h->eps_cap = cap;
    return 0;
}

/* Collects an A or AAAA answer for a host. */
static void host_dns_cb(host_task_t *h, int v6, const dns_result_t *res)
{
    if (v6) {
        h->aaaa_status = res->status, h->aaaa_ad = res->ad, h->aaaa_done = 1;
    } else {
        h->a_status = res->status, h->a_ad = res->ad, h->a_done = 1;
    }
    if (res->cname[0]) {
        snprintf(h->cname, sizeof h->cname, "%s", res->cname);
    }
    for (int i = 0; i < res->nrr && h->naddrs < h->sc->cfg->max_addrs; i++) {
        if (exclude_ip(h->sc->exclude, res->rr[i].text) != 0) {
            /* listed (or not an address we can check): never connected to */
            put_excluded(h->batch, NULL, h->e->name, res->rr[i].text, "the address is listed");
            h->e->sum.n_excluded++;
            continue;
        }
        if (h->naddrs == h->eps_cap && grow_eps(h) != 0) {
            break; /* out of memory: scan the addresses kept so far */
        }
        char *ip = h->eps[h->naddrs].ip;
        size_t l = strnlen(res->rr[i].text, sizeof h->eps[0].ip - 1);
        memcpy(ip, res->rr[i].text, l);
        ip[l] = 0;
        h->naddrs++;
        if (v6) {
            h->e->sum.n_v6++;
        }
    }
    if (--h->dns_pending == 0) {
        host_lookups_done(h);
    }
}

/* A answer. */
static void host_a_cb(void *arg, const dns_result_t *res)
{
    host_dns_cb(arg, 0, res);
}

/* AAAA answer. */
static void host_aaaa_cb(void *arg, const dns_result_t *res)
{
    host_dns_cb(arg, 1, res);
}

/* Starts the lookups and sessions of a new MX host. */
static void host_start(scan_t *sc, cache_entry_t *e)
{
    host_task_t *h = calloc(1, sizeof *h);
    if (!h) {
        cache_complete(e);
        return;
    }
    h->sc = sc;
    h->e = e;
    h->batch = db_batch_new();
    sc->hosts_started++;
    /* A and AAAA go out together; TLSA follows for secure addresses, and
     * DANE knows its records before the first session. */
    h->dns_pending = 2;
    snprintf(h->tlsa_name, sizeof h->tlsa_name, "_%d._tcp.%s", sc->port, e->name);
    if (dns_query(sc->dns, e->name, DNS_T_A, 0, host_a_cb, h) < 0) {
        dns_result_t r = {.status = DNS_FORMERR, .rcode = -1};
        host_a_cb(h, &r);
    }
    if (dns_query(sc->dns, e->name, DNS_T_AAAA, 0, host_aaaa_cb, h) < 0) {
        dns_result_t r = {.status = DNS_FORMERR, .rcode = -1};
        host_aaaa_cb(h, &r);
    }
}

/* ---- domains -------------------------------------------------------- */

/* Frees a domain task. */
static void domain_free(domain_task_t *d)
{
    finding_t *f = d->findings;
    while (f) {
        finding_t *n = f->next;
        free(f->code);
        free(f->host);
        free(f->detail);
        free(f);
        f = n;
    }
    if (d->have_sts) {
        sts_result_clear(&d->sts);
    }
    tlsrpt_clear(&d->rpt);
    free(d->mx);
    free(d);
}

/* Emits a domain finding (a verdict_emit_fn for domain-level checks). */
static void dom_emit(void *ctx, const char *code, const char *detail)
{
    domain_finding(ctx, code, NULL, detail);
}

typedef struct dom_host_emit {
    domain_task_t *d;
    const char *host;
    int n;
} dom_host_emit_t;

/* Emits a domain finding about one of its MX hosts, and counts it. */
static void dom_host_emit(void *ctx, const char *code, const char *detail)
{
    dom_host_emit_t *e = ctx;
    domain_finding(e->d, code, e->host, detail);
    e->n++;
}

/* An MX host that --exclude kept out: its name is listed, or every address
 * it has is. Verdicts leave it out; it is listed in the excluded table. */
static int mx_excluded(const dom_mx_t *m)
{
    return m->excluded || (!m->iplit && m->sum.n_addrs == 0 && m->sum.n_excluded > 0);
}

/* The excluded rows of a domain's MX hosts that --exclude kept out. */
static void put_excluded_hosts(const domain_task_t *d, db_batch_t *b)
{
    for (int i = 0; i < d->nmx; i++) {
        if (mx_excluded(&d->mx[i])) {
            put_excluded(b, d->name, d->mx[i].host, NULL,
                         d->mx[i].excluded ? "the MX host name is listed"
                                           : "every address of the MX host is listed");
        }
    }
}

/* MTA-STS verdicts of a domain (RFC 8461 4.1, 4.2), into the facts the
 * posture is decided from. A published record whose policy cannot be had
 * (fetch or WebPKI failure) counts as broken: RFC 8461 5 has senders with
 * a cached policy keep enforcing it while the fetch fails. */
static void domain_sts_verdict(domain_task_t *d, domain_facts_t *facts)
{
    const sts_result_t *r = &d->sts;
    sts_findings(r, dom_emit, d);
    if (r->txt_parsed.status == STS_TXT_VALID && r->fetch_status != STS_FETCH_OK) {
        facts->sts_broken = 1;
        return;
    }
    if (r->policy_valid != 1 ||
        (r->policy.mode != STS_MODE_ENFORCE && r->policy.mode != STS_MODE_TESTING)) {
        return;
    }
    int failures = 0, checked = 0;
    for (int i = 0; i < d->nmx; i++) {
        const host_summary_t *s = &d->mx[i].sum;
        if (mx_excluded(&d->mx[i])) {
            continue;
        }
        /* The MX must show a PKIX-valid certificate for its name on every
         * endpoint that did TLS (RFC 8461 4.2). */
        int pkix = !d->mx[i].iplit && s->n_tls > 0 && s->n_pkix_valid == s->n_tls;
        dom_host_emit_t e = {d, d->mx[i].host, 0};
        sts_mx_findings(r, d->mx[i].host, pkix, dom_host_emit, &e);
        failures += e.n;
        checked++;
    }
    if (r->policy.mode == STS_MODE_ENFORCE) {
        if (failures) {
            facts->sts_broken = 1;
        } else if (checked) {
            facts->sts_enforce_ok = 1;
        }
    } else if (!failures && checked) {
        facts->sts_testing_ok = 1;
    }
}

/* Adds the mta_sts and tlsrpt rows of a domain to its batch. */
static void put_policies(domain_task_t *d, db_batch_t *b)
{
    /* Rows only where there is something to record: a record, or a lookup
     * that failed; plain absence is the sts.none / tlsrpt.none finding. */
    if (d->have_sts &&
        (d->sts.txt || (d->sts.txt_status != DNS_NXDOMAIN && d->sts.txt_status != DNS_NODATA))) {
        const sts_result_t *r = &d->sts;
        db_row(b, "mta_sts", 0);
        db_text(b, "domain", d->name);
        db_text(b, "txt_rcode", dns_status_name(r->txt_status));
        db_text(b, "txt", r->txt);
        db_text(b, "txt_id", r->txt_parsed.status == STS_TXT_VALID ? r->txt_parsed.id : NULL);
        db_int(b, "txt_valid", r->txt_parsed.status == STS_TXT_VALID);
        if (r->fetch_status != STS_FETCH_NONE) {
            db_text(b, "fetch_status", sts_fetch_status_name(r->fetch_status));
            db_text(b, "fetch_error", r->fetch_error[0] ? r->fetch_error : NULL);
            if (r->http_status) {
                db_int(b, "http_status", r->http_status);
            }
            if (r->webpki_valid >= 0) {
                db_int(b, "webpki_valid", r->webpki_valid);
            }
        }
        if (r->body) {
            db_textn(b, "policy", r->body, r->body_len);
        }
        if (r->policy_valid >= 0) {
            char *mx = sts_mx_json(&r->policy);
            db_text(b, "version", r->policy.version[0] ? r->policy.version : NULL);
            db_text(b, "mode",
                    r->policy.mode != STS_MODE_UNSET ? sts_mode_name(r->policy.mode) : NULL);
            if (r->policy.max_age >= 0) {
                db_int(b, "max_age", r->policy.max_age);
            }
            db_text(b, "mx", mx);
            db_int(b, "policy_valid", r->policy_valid);
            db_text(b, "policy_error", r->policy_error[0] ? r->policy_error : NULL);
            free(mx);
        }
    }
    if (d->have_rpt && (d->rpt.status != TLSRPT_NONE ||
                        (d->rpt_status != DNS_NXDOMAIN && d->rpt_status != DNS_NODATA))) {
        db_row(b, "tlsrpt", 0);
        db_text(b, "domain", d->name);
        db_text(b, "txt_rcode", dns_status_name(d->rpt_status));
        db_text(b, "record", d->rpt.record);
        if (d->rpt.status != TLSRPT_NONE) {
            db_int(b, "valid", d->rpt.status == TLSRPT_VALID);
        }
        db_text(b, "error", d->rpt.error[0] ? d->rpt.error : NULL);
        char *rua = tlsrpt_rua_json(&d->rpt);
        db_text(b, "rua", rua);
        free(rua);
    }
}

/* All of a domain's hosts are known: judge it and store it. */
static void domain_finish(domain_task_t *d)
{
    scan_t *sc = d->sc;
    domain_facts_t facts = {0};
    facts.null_mx = strcmp(d->mx_kind, "null") == 0;
    facts.dns_failed = d->dns_failed;
    int any_addr = 0, any_v6 = 0, n_judged = 0, n_excl = 0;
    for (int i = 0; i < d->nmx; i++) {
        if (!d->mx[i].iplit) {
            mx_excluded(&d->mx[i]) ? n_excl++ : n_judged++;
        }
    }
    if (n_excl > 0 && n_judged == 0) {
        /* --exclude keeps out every MX host: nothing to judge the domain by */
        db_batch_t *b = db_batch_new();
        put_excluded_hosts(d, b);
        db_submit(sc->db, b);
        sc->domains_done++;
        sc->domains_inflight--;
        domain_free(d);
        pump(sc);
        return;
    }
    for (int i = 0; i < d->nmx; i++) {
        dom_mx_t *m = &d->mx[i];
        if (m->iplit || mx_excluded(m)) {
            continue;
        }
        host_summary_t *s = &m->sum;
        facts.n_endpoints += s->n_endpoints;
        facts.n_reached += s->n_reached;
        facts.n_tls += s->n_tls;
        facts.n_dane_valid += s->n_dane_valid;
        facts.dane_broken |= s->dane_broken;
        any_addr |= s->n_addrs > 0;
        any_v6 |= s->n_v6 > 0;
        int implicit = strcmp(d->mx_kind, "implicit") == 0;
        if (implicit) {
            if (s->dns_failed) {
                facts.dns_failed = 1;
            } else if (s->n_addrs == 0) {
                domain_finding(d, "mx.none", NULL, "no MX and no A/AAAA record");
            } else {
                domain_finding(d, "mx.implicit", d->name,
                               "no MX record: mail goes to the domain's own address");
            }
        } else {
            if (s->cname) {
                domain_finding(d, "mx.cname", m->host, "MX target is a CNAME");
            }
            if (s->n_addrs == 0 && !s->dns_failed) {
                domain_finding(d, "mx.unresolvable", m->host, "MX target has no A/AAAA record");
            }
        }
        d->n_crit += s->n_crit, d->n_warn += s->n_warn, d->n_info += s->n_info;
    }
    if (any_addr && !any_v6) {
        domain_finding(d, "net.ipv6.none", NULL, "no MX host has an AAAA record");
    }
    if (d->have_sts) {
        domain_sts_verdict(d, &facts);
    }
    const char *posture = verdict_posture(&facts);
    for (size_t i = 0; i < NPOSTURES; i++) {
        if (strcmp(postures[i], posture) == 0) {
            sc->posture_count[i]++;
        }
    }
    db_batch_t *b = db_batch_new();
    db_row(b, "domains", DB_ROW_GUARD);
    db_text(b, "domain", d->name);
    db_int(b, "input_line", (int64_t)d->line);
    db_text(b, "posture", posture);
    db_text(b, "worst_severity",
            d->n_crit   ? "crit"
            : d->n_warn ? "warn"
            : d->n_info ? "info"
                        : NULL);
    db_int(b, "n_crit", d->n_crit);
    db_int(b, "n_warn", d->n_warn);
    db_int(b, "n_info", d->n_info);
    db_text(b, "mx_kind", d->mx_kind);
    if (d->have_sts && d->sts.policy_valid == 1) {
        db_text(b, "sts_mode", sts_mode_name(d->sts.policy.mode));
    }
    if (d->have_rpt && d->rpt.status != TLSRPT_NONE) {
        db_int(b, "tlsrpt", d->rpt.status == TLSRPT_VALID);
    }
    db_text(b, "mx_rcode", dns_status_name(d->mx_status));
    if (d->mx_status == DNS_NOERROR || d->mx_status == DNS_NODATA || d->mx_status == DNS_NXDOMAIN) {
        db_text(b, "mx_dnssec", d->mx_ad ? "secure" : "insecure");
    }
    db_int(b, "mx_count", strcmp(d->mx_kind, "mx") == 0 ? d->nmx : 0);
    char now[32];
    db_now_iso(now);
    db_text(b, "scanned_at", now);
    for (int i = 0; i < d->nmx; i++) {
        db_row(b, "mx", 0);
        db_text(b, "domain", d->name);
        db_text(b, "host", d->mx[i].host);
        db_int(b, "preference", d->mx[i].pref);
        db_int(b, "implicit", strcmp(d->mx_kind, "implicit") == 0);
    }
    put_policies(d, b);
    put_excluded_hosts(d, b);
    if (d->sts_excluded) {
        char host[INPUT_NAME_MAX + 16];
        snprintf(host, sizeof host, "mta-sts.%s", d->name);
        put_excluded(b, d->name, host, d->sts_excluded_ip,
                     "the MTA-STS policy host's address is listed: policy not fetched");
    }
    for (finding_t *f = d->findings; f; f = f->next) {
        put_finding(sc, b, d->name, f->host, NULL, 0, f->code, f->detail);
    }
    db_submit(sc->db, b);
    sc->domains_done++;
    sc->domains_inflight--;
    domain_free(d);
    pump(sc);
}

/* Drops a domain that the interrupt caught half-done. */
static void domain_drop(domain_task_t *d)
{
    scan_t *sc = d->sc;
    sc->domains_inflight--;
    domain_free(d);
    pump(sc);
}

/* Callback shim carrying the task: cache waiters get (task, index). */
typedef struct mx_wait {
    domain_task_t *d;
    int i;
} mx_wait_t;

/* One of the things a domain waits on is done: finish it after the last. */
static void domain_pending_done(domain_task_t *d)
{
    if (--d->pending == 0) {
        if (d->sc->interrupted) {
            domain_drop(d);
        } else {
            domain_finish(d);
        }
    }
}

/* A host a domain waits on is done. */
static void mx_wait_cb(void *arg, const host_summary_t *sum)
{
    mx_wait_t *w = arg;
    domain_task_t *d = w->d;
    d->mx[w->i].sum = *sum;
    d->mx[w->i].waiting = 0;
    free(w);
    domain_pending_done(d);
}

/* The MTA-STS check of a domain is done. */
static void domain_sts_cb(void *arg, const sts_result_t *r)
{
    domain_task_t *d = arg;
    if (r->excluded) {
        d->sts_excluded = 1; /* the policy host's address is listed: policy unknown */
        snprintf(d->sts_excluded_ip, sizeof d->sts_excluded_ip, "%s", r->fetch_ip);
    } else if (!r->cancelled && !d->sc->interrupted && sts_result_copy(&d->sts, r) == 0) {
        d->have_sts = 1;
    }
    domain_pending_done(d);
}

/* The _smtp._tls TXT answer of a domain (RFC 8460 3). */
static void domain_rpt_cb(void *arg, const dns_result_t *res)
{
    domain_task_t *d = arg;
    d->rpt_status = res->status;
    if (res->status == DNS_NOERROR || res->status == DNS_NODATA || res->status == DNS_NXDOMAIN) {
        const char *txt[32];
        size_t len[32];
        int n = 0;
        for (int i = 0; i < res->nrr && n < 32; i++, n++) {
            txt[n] = (const char *)res->rr[i].data;
            len[n] = res->rr[i].datalen;
        }
        tlsrpt_parse(txt, len, n, &d->rpt);
        tlsrpt_findings(&d->rpt, dom_emit, d);
        d->have_rpt = 1;
    } else if (res->status != DNS_CANCELLED) {
        char detail[INPUT_NAME_MAX + 64];
        snprintf(detail, sizeof detail, "TXT _smtp._tls.%s: %s", d->name,
                 dns_status_name(res->status));
        domain_finding(d, "dns.error", NULL, detail);
        d->have_rpt = 1;
    }
    domain_pending_done(d);
}

/* Adds an MX host to a domain (deduplicated) and starts or joins its scan. */
static void domain_add_host(domain_task_t *d, const char *host, int pref)
{
    for (int i = 0; i < d->nmx; i++) {
        if (strcmp(d->mx[i].host, host) == 0) {
            if (pref < d->mx[i].pref) {
                d->mx[i].pref = pref;
            }
            return;
        }
    }
    if (d->nmx >= MAX_MX_PER_DOM) {
        return;
    }
    if (d->nmx == d->mx_cap) {
        /* most domains have one or two MX hosts: grow as they come */
        int cap = d->mx_cap ? d->mx_cap * 2 : 2;
        cap = cap > MAX_MX_PER_DOM ? MAX_MX_PER_DOM : cap;
        dom_mx_t *n = realloc(d->mx, (size_t)cap * sizeof *n);
        if (!n) {
            return;
        }
        d->mx = n;
        d->mx_cap = cap;
    }
    dom_mx_t *m = &d->mx[d->nmx++];
    memset(m, 0, sizeof *m);
    snprintf(m->host, sizeof m->host, "%s", host);
    m->pref = pref;
    unsigned char buf[16];
    if (inet_pton(AF_INET, host, buf) == 1 || inet_pton(AF_INET6, host, buf) == 1) {
        /* RFC 5321 5.1 wants a host name; senders look it up as a name. */
        m->iplit = 1;
        domain_finding(d, "mx.ip_literal", host, "MX target is an IP address, not a host name");
        return;
    }
}

/* Joins the hosts collected in d->mx (after the MX answer was parsed). */
static void domain_join_hosts(domain_task_t *d)
{
    scan_t *sc = d->sc;
    d->pending = 1; /* held while joining, so no host completes the task early */
    /* MTA-STS and TLSRPT go out beside the hosts; the domain waits for all. */
    if (sc->sts) {
        d->pending++;
        if (sts_check(sc->sts, d->name, domain_sts_cb, d) < 0) {
            d->pending--;
        }
    }
    char rpt[INPUT_NAME_MAX + 16];
    snprintf(rpt, sizeof rpt, "_smtp._tls.%s", d->name);
    d->pending++;
    if (dns_query(sc->dns, rpt, DNS_T_TXT, 0, domain_rpt_cb, d) < 0) {
        d->pending--;
    }
    for (int i = 0; i < d->nmx; i++) {
        if (d->mx[i].iplit) {
            continue;
        }
        if (exclude_domain(sc->exclude, d->mx[i].host) == 1) {
            d->mx[i].excluded = 1; /* no lookup, no session */
            continue;
        }
        int created = 0;
        cache_entry_t *e = cache_get(sc->cache, d->mx[i].host, &created);
        if (!e) {
            continue;
        }
        mx_wait_t *w = malloc(sizeof *w);
        if (!w) {
            continue;
        }
        w->d = d;
        w->i = i;
        d->mx[i].waiting = 1;
        d->pending++;
        if (created && sc->host_lookup && summary_load(sc, e->name, &e->sum) == 1) {
            /* stored earlier in this scan (resumed, or evicted from the cache) */
            sc->hosts_loaded++;
            cache_complete(e);
            created = 0;
        }
        cache_wait(e, mx_wait_cb, w);
        if (created) {
            host_start(sc, e);
        }
    }
    domain_pending_done(d);
}

/* Comparison of MX preferences for sorting. */
static int mx_cmp(const void *a, const void *b)
{
    const dns_rr_t *x = a, *y = b;
    return (int)x->pref - (int)y->pref;
}

/* The MX lookup with CD=1 after a SERVFAIL: bogus, or a plain failure. */
static void domain_mx_cd_cb(void *arg, const dns_result_t *res)
{
    domain_task_t *d = arg;
    if (d->sc->interrupted || res->status == DNS_CANCELLED) {
        domain_drop(d);
        return;
    }
    char detail[INPUT_NAME_MAX + 128];
    int bogus =
        res->status == DNS_NOERROR || res->status == DNS_NODATA || res->status == DNS_NXDOMAIN;
    d->mx_kind = "none";
    d->dns_failed = 1;
    if (bogus) {
        snprintf(detail, sizeof detail,
                 "MX %s: SERVFAIL from the validating resolver, answered with CD=1 "
                 "(DNSSEC validation failed)",
                 d->name);
        domain_finding(d, "dns.bogus", NULL, detail);
    } else {
        snprintf(detail, sizeof detail, "MX %s: SERVFAIL", d->name);
        domain_finding(d, "dns.error", NULL, detail);
    }
    domain_finish(d);
}

/* The MX answer of a domain. */
static void domain_mx_cb(void *arg, const dns_result_t *res)
{
    domain_task_t *d = arg;
    scan_t *sc = d->sc;
    if (sc->interrupted || res->status == DNS_CANCELLED) {
        domain_drop(d);
        return;
    }
    d->mx_status = res->status;
    d->mx_ad = res->ad;
    char detail[300];
    switch (res->status) {
    case DNS_NOERROR: {
        /* RFC 7505 3: a null MX is a single record "0 ."; a "." among other
         * MX records is ignored as an error of the zone. */
        int nnull = 0;
        for (int i = 0; i < res->nrr; i++) {
            nnull += strcmp(res->rr[i].text, ".") == 0;
        }
        if (nnull == res->nrr) {
            d->mx_kind = "null";
            domain_finding(d, "mx.null", NULL, "null MX (RFC 7505): the domain accepts no mail");
            domain_finish(d);
            return;
        }
        d->mx_kind = "mx";
        dns_rr_t *rr = malloc((size_t)res->nrr * sizeof *rr);
        if (!rr) {
            domain_drop(d);
            return;
        }
        memcpy(rr, res->rr, (size_t)res->nrr * sizeof *rr);
        qsort(rr, (size_t)res->nrr, sizeof *rr, mx_cmp);
        for (int i = 0; i < res->nrr; i++) {
            if (strcmp(rr[i].text, ".") != 0) {
                domain_add_host(d, rr[i].text, rr[i].pref);
            }
        }
        free(rr);
        domain_join_hosts(d);
        return;
    }
    case DNS_NODATA:
        /* RFC 5321 5.1: no MX means the domain itself is the mail host. */
        d->mx_kind = "implicit";
        domain_add_host(d, d->name, 0);
        domain_join_hosts(d);
        return;
    case DNS_NXDOMAIN:
        d->mx_kind = "none";
        domain_finding(d, "mx.none", NULL, "the domain does not exist (NXDOMAIN)");
        domain_finish(d);
        return;
    default:
        /* A validating resolver's SERVFAIL may be DNSSEC: ask again with
         * CD=1, and if that answers, it is dns.bogus (FINDINGS.md). */
        if (res->status == DNS_SERVFAIL && sc->dns &&
            dns_query(sc->dns, d->name, DNS_T_MX, DNS_Q_CD, domain_mx_cd_cb, d) == 0) {
            return;
        }
        d->mx_kind = "none";
        d->dns_failed = 1;
        snprintf(detail, sizeof detail, "MX %s: %s", d->name, dns_status_name(res->status));
        domain_finding(d, "dns.error", NULL, detail);
        domain_finish(d);
        return;
    }
}

/* Starts a domain taken from the ring. */
static void domain_start(scan_t *sc, const ring_item_t *it)
{
    domain_task_t *d = calloc(1, sizeof *d);
    if (!d) {
        return;
    }
    d->sc = sc;
    d->line = it->line;
    memcpy(d->name, it->name, sizeof d->name);
    d->mx_kind = "none";
    sc->domains_started++;
    sc->domains_inflight++;
    if (dns_query(sc->dns, d->name, DNS_T_MX, 0, domain_mx_cb, d) < 0) {
        dns_result_t r = {.status = DNS_FORMERR, .rcode = -1};
        domain_mx_cb(d, &r);
    }
}

/* ---- run control ---------------------------------------------------- */

static void finish(scan_t *sc);

/* Admits domains while the caps allow; ends the scan when all is done. */
static void pump(scan_t *sc)
{
    if (sc->finished) {
        return;
    }
    if (!sc->db_failed && db_failed(sc->db, NULL, 0)) {
        /* Nothing more can be stored: stop now rather than scan for nothing.
         * The reason is printed at the end; --resume goes on from here. */
        sc->db_failed = 1;
        /* pump may run inside a c-ares or session callback, where the
         * resolver and sessions cannot be torn down: stop from the top of
         * the loop (wake_cb) */
        sc->stop_pending = 1;
        uv_async_send(&sc->wake);
    }
    if (sc->cache && cache_mem(sc->cache) > sc->cfg->cache_mem &&
        cache_trim(sc->cache, db_committed(sc->db)) > 0) {
        sc->host_lookup = 1; /* from now on a host missing here may be stored */
    }
    ring_item_t it;
    while (!sc->interrupted && !sc->db_failed &&
           sc->domains_inflight < (uint64_t)sc->cfg->max_domains &&
           db_backlog(sc->db) < BACKLOG_MAX && db_backlog_bytes(sc->db) < BACKLOG_BYTES &&
           ring_pop(sc, &it)) {
        if (sc->cfg->parse_only) {
            sc->domains_done++;
            continue;
        }
        domain_start(sc, &it);
    }
    pthread_mutex_lock(&sc->mu);
    int input_over = sc->input_done && sc->ring_count == 0;
    pthread_mutex_unlock(&sc->mu);
    if ((input_over || sc->interrupted || sc->db_failed) && sc->domains_inflight == 0) {
        finish(sc);
    }
}

static void close_all(scan_t *sc);

/* Input or writer progress: admit more; or close down once finished (here,
 * at the top of the loop, never inside a c-ares or session callback). */
static void wake_cb(uv_async_t *a)
{
    scan_t *sc = a->data;
    if (sc->finished) {
        close_all(sc);
        return;
    }
    if (sc->stop_pending) {
        sc->stop_pending = 0;
        if (!sc->interrupted) {
            stop_scan(sc);
        }
    }
    pump(sc);
}

/* Prints the progress line (or a status line when not on a terminal). */
static void progress_print(scan_t *sc, int final)
{
    double el = (double)(uv_hrtime() - sc->t0) / 1e9;
    double rate = el > 0 ? (double)sc->domains_done / el : 0;
    char total[48] = "";
    char eta[32] = "";
    uint64_t known = 0;
    if (sc->cfg->input_path == NULL) {
        known = (uint64_t)sc->cfg->ndomains;
    }
    double frac = 0;
    if (known) {
        snprintf(total, sizeof total, "/%llu", (unsigned long long)known);
        frac = (double)sc->domains_done / (double)known;
    } else if (sc->in && input_bytes_total(sc->in) > 0) {
        frac = (double)input_bytes_read(sc->in) / (double)input_bytes_total(sc->in);
        /* Bytes read run ahead of domains done by what is queued or in flight. */
        uint64_t read = atomic_load(&sc->accepted);
        if (read > 0) {
            frac *= (double)sc->domains_done / (double)read;
        }
        snprintf(total, sizeof total, " (%.0f%% of input)", frac * 100);
    }
    if (frac > 0.001 && frac < 1 && el > 1) {
        double left = el * (1 - frac) / frac;
        snprintf(eta, sizeof eta, " eta %d:%02d:%02d", (int)left / 3600, ((int)left / 60) % 60,
                 (int)left % 60);
    }
    char line[256];
    int n = snprintf(
        line, sizeof line, "%llu%s domains, %.1f/s, %zu sessions, %llu endpoints (%llu failed)%s",
        (unsigned long long)sc->domains_done, total, rate, sc->rl ? rl_inflight(sc->rl) : 0,
        (unsigned long long)sc->endpoints_done, (unsigned long long)sc->endpoints_failed, eta);
    if (sc->tty) {
        size_t pad = sc->last_progress_len > (size_t)n ? sc->last_progress_len - (size_t)n : 0;
        fprintf(stderr, "\r%s%*s%s", line, (int)pad, "", final ? "\n" : "");
        sc->last_progress_len = (size_t)n;
    } else {
        fprintf(stderr, "mxscan: %s\n", line);
    }
    fflush(stderr);
}

/* Periodic progress; also re-checks admission (writer backlog). */
static void progress_cb(uv_timer_t *t)
{
    scan_t *sc = t->data;
    if (!sc->cfg->quiet) {
        progress_print(sc, 0);
    }
    pump(sc);
}

/* Stops the scan: no new domain, input reading ends, sessions and lookups
 * in flight are cancelled (their half-done domains are dropped, to be
 * scanned by --resume). What is finished is kept. */
static void stop_scan(scan_t *sc)
{
    sc->interrupted = 1;
    pthread_mutex_lock(&sc->mu);
    sc->input_stop = 1;
    pthread_cond_broadcast(&sc->cv);
    pthread_mutex_unlock(&sc->mu);
    if (sc->sts) {
        sts_t *s = sc->sts;
        sc->sts = NULL;
        sts_free(s); /* before the resolver and the gate it waits on */
    }
    if (sc->rl) {
        rl_cancel_all(sc->rl);
    }
    if (sc->retry_head) {
        uv_timer_start(&sc->retry_timer, retry_cb, 0, 0); /* drops them, from the loop */
    }
    while (sc->live) {
        endpoint_t *ep = sc->live;
        live_remove(sc, ep);
        if (ep->sess) {
            smtp_abort(ep->sess);
        }
    }
    if (sc->dns) {
        dns_t *d = sc->dns;
        sc->dns = NULL;
        dns_free(d); /* cancels lookups: their tasks are dropped */
    }
}

/* Ctrl-C or SIGTERM: stop cleanly, keep what is finished. */
static void signal_cb(uv_signal_t *s, int signum)
{
    scan_t *sc = s->data;
    if (sc->interrupted) {
        fprintf(stderr, "\nmxscan: already stopping; signal %d again ignored\n", signum);
        return;
    }
    fprintf(stderr, "\nmxscan: %s: stopping, keeping what is finished\n",
            signum == SIGINT ? "interrupted" : "terminated");
    stop_scan(sc);
    pump(sc);
}

/* Everything is done: close down from the top of the loop. */
static void finish(scan_t *sc)
{
    sc->finished = 1;
    uv_async_send(&sc->wake);
}

/* Closes the scan's own handles, the resolver and the rate limiter. */
static void close_all(scan_t *sc)
{
    if (sc->closed) {
        return;
    }
    sc->closed = 1;
    wake_off(sc);
    uv_timer_stop(&sc->progress);
    uv_close((uv_handle_t *)&sc->progress, NULL);
    uv_timer_stop(&sc->retry_timer);
    uv_close((uv_handle_t *)&sc->retry_timer, NULL);
    uv_close((uv_handle_t *)&sc->wake, NULL);
    uv_signal_stop(&sc->sigint);
    uv_signal_stop(&sc->sigterm);
    uv_close((uv_handle_t *)&sc->sigint, NULL);
    uv_close((uv_handle_t *)&sc->sigterm, NULL);
    if (sc->sts) {
        sts_free(sc->sts);
        sc->sts = NULL;
    }
    if (sc->dns) {
        dns_free(sc->dns);
        sc->dns = NULL;
    }
    if (sc->rl) {
        rl_free(sc->rl);
        sc->rl = NULL;
    }
}

/* Default values of every setting, as --help shows them. */
void scan_config_defaults(scan_config_t *c)
{
    memset(c, 0, sizeof *c);
    c->helo = SCAN_DEFAULT_HELO;
    c->port = 25;
    c->timeout_ms = 30000;
    c->dns_timeout_ms = 3000;
    c->dns_tries = 2;
    c->limits.concurrency = 100;
    c->limits.per_ip = 1;
    c->limits.per_prefix = 4;
    c->limits.min_interval_ms = 1000;
    c->limits.rate = 20;
    c->max_domains = 1000;
    c->max_addrs = 4;
    c->dedup_mem = 16u << 20;
    c->cache_mem = 8u << 20;
    c->backoff_ms = 60000;
    c->retry_ms = 60000;
    c->expiry_warning_s = 14 * 86400;
    c->sts_port = 443;
    c->csv_column = INPUT_CSV_AUTO;
}

/* Writes the final counts into the scans row (after the writer stopped).
 * Counts of stored rows come from the tables, so that a resumed scan's
 * row covers all its runs; elapsed_s adds up the runs. */
static void store_scan_end(scan_t *sc, const char *status, uint64_t dups, double elapsed)
{
    sqlite3 *h = db_handle(sc->db);
    sqlite3_stmt *st = NULL;
    const char *sql =
        "UPDATE scans SET ended_at=?1, status=?2, input_lines=?3, duplicates=?4, "
        "elapsed_s=coalesce(elapsed_s, 0) + ?5, resolvers=?6, helo=?7, shard=?8, "
        "domains=CASE WHEN ?10 >= 0 THEN ?10 ELSE (SELECT count(*) FROM domains WHERE scan_id=?9) "
        "END, "
        "rejected=(SELECT count(*) FROM rejected WHERE scan_id=?9), "
        "hosts=(SELECT count(*) FROM hosts WHERE scan_id=?9), "
        "endpoints=(SELECT count(*) FROM endpoints WHERE scan_id=?9), "
        "excluded=(SELECT count(*) FROM excluded WHERE scan_id=?9) WHERE id=?9";
    if (sqlite3_prepare_v2(h, sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "mxscan: cannot record the end of the scan: %s\n", sqlite3_errmsg(h));
        return;
    }
    char now[32], shard[32] = "";
    db_now_iso(now);
    if (sc->cfg->shard_n > 0) {
        snprintf(shard, sizeof shard, "%u/%u", sc->cfg->shard_i, sc->cfg->shard_n);
    }
    sqlite3_bind_text(st, 1, now, -1, SQLITE_TRANSIENT);
    sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)atomic_load(&sc->lines));
    sqlite3_bind_int64(st, 4, (sqlite3_int64)dups);
    sqlite3_bind_double(st, 5, elapsed);
    sqlite3_bind_text(st, 6, sc->resolvers, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 7, sc->cfg->helo, -1, SQLITE_STATIC);
    if (shard[0]) {
        sqlite3_bind_text(st, 8, shard, -1, SQLITE_TRANSIENT);
    } else {
        sqlite3_bind_null(st, 8);
    }
    sqlite3_bind_int64(st, 9, db_scan_id(sc->db));
    /* --parse-only stores no domain rows: the count is of valid domains read */
    sqlite3_bind_int64(st, 10, sc->cfg->parse_only ? (sqlite3_int64)sc->domains_done : -1);
    if (sqlite3_step(st) != SQLITE_DONE) {
        fprintf(stderr, "mxscan: cannot record the end of the scan: %s\n", sqlite3_errmsg(h));
    }
    sqlite3_finalize(st);
}

/* Writer committed: admission may go on. Runs on the writer thread. */
static void writer_notify(void *arg)
{
    wake_send(arg);
}

/* Peak resident set of this process in KiB: VmHWM belongs to the address
 * space, so unlike getrusage's ru_maxrss it does not carry over the peak of
 * whatever process exec'd us. */
static long peak_rss_kib(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[128];
    long kib = -1;
    while (f && fgets(line, sizeof line, f)) {
        if (sscanf(line, "VmHWM: %ld kB", &kib) == 1) {
            break;
        }
    }
    if (f) {
        fclose(f);
    }
    if (kib < 0) {
        struct rusage ru;
        getrusage(RUSAGE_SELF, &ru);
        kib = ru.ru_maxrss;
    }
    return kib;
}

/* Prints the end-of-scan summary. */
static void print_summary(scan_t *sc, const char *status, uint64_t dups, double elapsed)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
    printf("scan %lld %s: %llu domains in %.1f s (%.1f/s), %llu lines read\n",
           (long long)db_scan_id(sc->db), status, (unsigned long long)sc->domains_done, elapsed,
           elapsed > 0 ? (double)sc->domains_done / elapsed : 0.0,
           (unsigned long long)atomic_load(&sc->lines));
    if (strcmp(status, "failed") == 0 || sc->cfg->resume_scan > 0) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(db_handle(sc->db), "SELECT domains FROM scans WHERE id = ?", -1, &st,
                               NULL) == SQLITE_OK) {
            sqlite3_bind_int64(st, 1, db_scan_id(sc->db));
            if (sqlite3_step(st) == SQLITE_ROW) {
                printf("  domains stored in this scan, all runs: %lld\n",
                       (long long)sqlite3_column_int64(st, 0));
            }
        }
        sqlite3_finalize(st);
    }
    if (!sc->cfg->parse_only) {
        printf("  postures:");
        for (size_t i = 0; i < NPOSTURES; i++) {
            if (sc->posture_count[i]) {
                printf(" %s %llu", postures[i], (unsigned long long)sc->posture_count[i]);
            }
        }
        printf("\n  MX hosts %llu, endpoints %llu (%llu failed)\n",
               (unsigned long long)sc->hosts_done, (unsigned long long)sc->endpoints_done,
               (unsigned long long)sc->endpoints_failed);
    }
    printf("  rejected lines %llu, duplicates %llu\n",
           (unsigned long long)atomic_load(&sc->rejected), (unsigned long long)dups);
    if (sc->cfg->resume_scan > 0 || sc->cfg->shard_n > 0 || sc->hosts_loaded ||
        (sc->cache && cache_evicted(sc->cache))) {
        printf("  resumed: %llu domains already done; other shards: %llu domains; hosts read "
               "back from the database %llu, evicted from the cache %llu\n",
               (unsigned long long)atomic_load(&sc->resumed_done),
               (unsigned long long)atomic_load(&sc->other_shard),
               (unsigned long long)sc->hosts_loaded,
               (unsigned long long)(sc->cache ? cache_evicted(sc->cache) : 0));
    }
    printf("  cpu %.2f s, peak rss %.1f MiB, results in %s\n", cpu, (double)peak_rss_kib() / 1024.0,
           sc->cfg->db_path);
}

/* Open descriptors of this process (MXSCAN_FD_CHECK), -1 if unknown. */
static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (!d) {
        return -1;
    }
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        n += e->d_name[0] != '.';
    }
    closedir(d);
    return n - 1; /* the directory's own descriptor */
}

/* A scan of 10,000 sessions needs 10,000 descriptors: raise the soft limit
 * to the hard one, and say so when even that is too few. */
static void raise_fd_limit(const scan_config_t *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
        getrlimit(RLIMIT_NOFILE, &rl);
    }
    rlim_t need = (rlim_t)cfg->limits.concurrency + 256;
    if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < need && !cfg->silent) {
        fprintf(stderr,
                "mxscan: warning: %llu open files allowed, --concurrency %d needs about %llu "
                "(raise ulimit -n); sessions beyond that fail at connect\n",
                (unsigned long long)rl.rlim_cur, cfg->limits.concurrency, (unsigned long long)need);
    }
}

/* A resumed scan keeps only whole hosts: rows of a host whose hosts row
 * was never committed (written outside its batch, e.g. --enum endpoint
 * rows) are dropped, and the input's rejected and excluded lines are
 * written again as it is re-read. */
static int resume_prepare(scan_t *sc, char *err, size_t errlen)
{
    static const char *const sql[] = {
        "DELETE FROM endpoints WHERE scan_id = ?1 AND host NOT IN "
        "(SELECT host FROM hosts WHERE scan_id = ?1)",
        "DELETE FROM tlsa WHERE scan_id = ?1 AND host NOT IN "
        "(SELECT host FROM hosts WHERE scan_id = ?1)",
        "DELETE FROM findings WHERE scan_id = ?1 AND domain IS NULL AND host NOT IN "
        "(SELECT host FROM hosts WHERE scan_id = ?1)",
        "DELETE FROM excluded WHERE scan_id = ?1 AND ((domain IS NOT NULL AND domain NOT IN "
        "(SELECT domain FROM domains WHERE scan_id = ?1)) OR (domain IS NULL AND host NOT IN "
        "(SELECT host FROM hosts WHERE scan_id = ?1)))",
        "DELETE FROM rejected WHERE scan_id = ?1",
    };
    sqlite3 *h = db_handle(sc->db);
    if (sqlite3_exec(h, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot prepare the resumed scan: %s", sqlite3_errmsg(h));
        return -1;
    }
    for (size_t i = 0; i < sizeof sql / sizeof *sql; i++) {
        sqlite3_stmt *st = NULL;
        int rc = sqlite3_prepare_v2(h, sql[i], -1, &st, NULL);
        if (rc == SQLITE_OK) {
            sqlite3_bind_int64(st, 1, db_scan_id(sc->db));
            rc = sqlite3_step(st);
        }
        sqlite3_finalize(st);
        if (rc != SQLITE_DONE) {
            snprintf(err, errlen, "cannot prepare the resumed scan: %s", sqlite3_errmsg(h));
            sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
            return -1;
        }
    }
    if (sqlite3_exec(h, "COMMIT", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "cannot prepare the resumed scan: %s", sqlite3_errmsg(h));
        sqlite3_exec(h, "ROLLBACK", NULL, NULL, NULL);
        return -1;
    }
    return 0;
}

/* Closes whatever handle is still open (start-up failure path). */
static void walk_close_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h)) {
        uv_close(h, NULL);
    }
}

/* Runs one scan; see scan.h. */
int scan_run(const scan_config_t *cfg)
{
    char err[512];
    scan_t *sc = calloc(1, sizeof *sc);
    if (!sc) {
        fprintf(stderr, "mxscan: out of memory\n");
        return 1;
    }
    int rc = 1;
    sc->lock_fd = -1;
    int fds_start = getenv("MXSCAN_FD_CHECK") ? count_fds() : -1;
    raise_fd_limit(cfg);
    sc->cfg = cfg;
    sc->tty = isatty(2);
    sc->port = cfg->port;
    pthread_mutex_init(&sc->mu, NULL);
    pthread_cond_init(&sc->cv, NULL);
    sc->ring = calloc(RING_CAP, sizeof *sc->ring);
    sc->dedup = input_dedup_new(cfg->dedup_mem);
    if (!sc->ring || !sc->dedup) {
        fprintf(stderr, "mxscan: out of memory\n");
        goto out;
    }
    if (cfg->exclude_path) {
        sc->exclude = exclude_load(cfg->exclude_path, err, sizeof err);
        if (!sc->exclude) {
            fprintf(stderr, "mxscan: --exclude: %s\n", err);
            goto out;
        }
        if (!cfg->quiet) {
            fprintf(stderr, "mxscan: excluding %zu address prefixes and %zu domain names (%s)\n",
                    exclude_count_prefixes(sc->exclude), exclude_count_domains(sc->exclude),
                    cfg->exclude_path);
        }
    }
    if (cfg->input_path) {
        sc->in = input_open_file(cfg->input_path, cfg->csv_column, err, sizeof err);
    } else {
        sc->in = input_open_args(cfg->domains, cfg->ndomains);
        snprintf(err, sizeof err, "cannot read the domain arguments");
    }
    if (!sc->in) {
        fprintf(stderr, "mxscan: %s\n", err);
        goto out;
    }
    const char *res = cfg->resolvers;
    if (!res || !*res) {
        res = getenv("DNS_RESOLVER");
    }
    snprintf(sc->resolvers, sizeof sc->resolvers, "%s", res && *res ? res : "/etc/resolv.conf");
    if (!cfg->parse_only) {
        sc->ssl_ctx = tls_client_ctx_new(cfg->ca_file, cfg->ca_path, err, sizeof err);
        if (!sc->ssl_ctx) {
            fprintf(stderr, "mxscan: %s\n", err);
            goto out;
        }
    }
    sc->db = db_open(cfg->db_path, err, sizeof err);
    if (!sc->db) {
        fprintf(stderr, "mxscan: %s\n", err);
        goto out;
    }
    /* One scanner per file at a time: above all, two runs must never resume
     * the same scan. flock() locks are apart from SQLite's POSIX locks. */
    sc->lock_fd = open(cfg->db_path, O_RDONLY | O_CLOEXEC);
    if (sc->lock_fd >= 0 && flock(sc->lock_fd, LOCK_EX | LOCK_NB) != 0) {
        fprintf(stderr, "mxscan: another mxscan scan is writing to %s; wait for it to end%s\n",
                cfg->db_path, cfg->resume_scan > 0 ? " before resuming" : "");
        goto out;
    }
    if (cfg->resume_scan > 0) {
        if (db_scan_resume(sc->db, cfg->resume_scan, err, sizeof err) < 0 ||
            resume_prepare(sc, err, sizeof err) < 0) {
            fprintf(stderr, "mxscan: %s\n", err);
            goto out;
        }
    } else if (db_scan_begin(sc->db, cfg->arguments_json ? cfg->arguments_json : "[]",
                             MXSCAN_VERSION, err, sizeof err) < 0) {
        fprintf(stderr, "mxscan: %s\n", err);
        goto out;
    }
    sc->loop = calloc(1, sizeof *sc->loop);
    uv_loop_init(sc->loop);
    if (!cfg->parse_only) {
        sc->dns = dns_new(sc->loop, res, cfg->dns_timeout_ms, cfg->dns_tries, err, sizeof err);
        if (!sc->dns) {
            fprintf(stderr, "mxscan: %s\n", err);
            goto out_loop;
        }
        sc->rl = rl_new(sc->loop, &cfg->limits);
        sc->cache = cache_new();
        if (sc->cache) {
            cache_set_limit(sc->cache, cfg->cache_mem ? cfg->cache_mem : 1);
        }
        if (!sc->rl || !sc->cache) {
            fprintf(stderr, "mxscan: out of memory\n");
            goto out_loop;
        }
        /* Policies are fetched through the scan's resolver and gate; only
         * checks in flight are shared, so memory stays flat (forget_done). */
        sts_opts_t so = {.port = cfg->sts_port,
                         .timeout_ms = (int)(cfg->timeout_ms < 60000 ? cfg->timeout_ms : 60000),
                         .ca_file = cfg->ca_file,
                         .ca_path = cfg->ca_path,
                         .exclude = sc->exclude,
                         .forget_done = 1};
        sc->sts = sts_new(sc->loop, sc->dns, sc->rl, &so, err, sizeof err);
        if (!sc->sts) {
            fprintf(stderr, "mxscan: %s\n", err);
            goto out_loop;
        }
    }
    sc->host_lookup = cfg->resume_scan > 0;
    sc->grade.now = time(NULL);
    sc->grade.expiry_warning_s = cfg->expiry_warning_s;
    sc->grade.aka = cfg->aka;
    sc->grade.naka = cfg->naka;
    sc->grade.expect_ocsp = cfg->expect_ocsp;
    sc->smtp.helo = cfg->helo;
    sc->smtp.timeout_ms = cfg->timeout_ms;
    sc->smtp.tls_on_connect = cfg->tls_on_connect;
    sc->smtp.ssl_ctx = sc->ssl_ctx;
    uv_async_init(sc->loop, &sc->wake, wake_cb);
    sc->wake.data = sc;
    uv_timer_init(sc->loop, &sc->progress);
    sc->progress.data = sc;
    uv_timer_init(sc->loop, &sc->retry_timer);
    sc->retry_timer.data = sc;
    uv_signal_init(sc->loop, &sc->sigint);
    uv_signal_init(sc->loop, &sc->sigterm);
    sc->sigint.data = sc->sigterm.data = sc;
    uv_signal_start(&sc->sigint, signal_cb, SIGINT);
    uv_signal_start(&sc->sigterm, signal_cb, SIGTERM);
    if (db_writer_start(sc->db, writer_notify, sc, err, sizeof err) < 0) {
        fprintf(stderr, "mxscan: %s\n", err);
        goto out_loop;
    }
    sc->t0 = uv_hrtime();
    uv_timer_start(&sc->progress, progress_cb, sc->tty ? 500 : 5000, sc->tty ? 500 : 5000);
    if (pthread_create(&sc->thr, NULL, input_main, sc) != 0) {
        fprintf(stderr, "mxscan: cannot start the input thread\n");
        db_writer_stop(sc->db);
        goto out_loop;
    }
    uv_run(sc->loop, UV_RUN_DEFAULT);
    pthread_mutex_lock(&sc->mu);
    sc->input_stop = 1;
    int input_done = sc->input_done;
    pthread_cond_broadcast(&sc->cv);
    pthread_mutex_unlock(&sc->mu);
    if (!input_done && sc->interrupted) {
        /* The reader may sit in read() on a terminal or pipe: cancel it
         * there (read is a cancellation point; it holds no lock then). */
        pthread_cancel(sc->thr);
    }
    pthread_join(sc->thr, NULL);
    sqlite3_finalize(sc->resume_st);
    sqlite3_close(sc->resume_conn);
    sc->resume_st = NULL, sc->resume_conn = NULL;
    sqlite3_finalize(sc->host_st);
    sqlite3_close(sc->host_conn);
    sc->host_st = NULL, sc->host_conn = NULL;
    if (!cfg->quiet) {
        progress_print(sc, 1);
    }
    db_writer_stop(sc->db);
    db_stats_t ws;
    db_writer_stats(sc->db, &ws);
    double elapsed = (double)(uv_hrtime() - sc->t0) / 1e9;
    uint64_t dups = atomic_load(&sc->dup_input) + ws.duplicates;
    const char *status = "done";
    char dberr[256] = "";
    if (db_failed(sc->db, dberr, sizeof dberr)) {
        fprintf(stderr,
                "mxscan: database error, scan stopped: %s\n"
                "mxscan: everything committed before it is kept; once the cause is fixed, go "
                "on with: mxscan scan --resume %s\n",
                dberr, cfg->db_path);
        status = "failed";
        rc = 1;
    } else if (sc->interrupted) {
        status = "interrupted";
        rc = 130;
        if (!cfg->silent) {
            fprintf(stderr, "mxscan: go on later with: mxscan scan --resume %s\n", cfg->db_path);
        }
    } else if (sc->input_error[0]) {
        fprintf(stderr, "mxscan: %s (everything before it was scanned)\n", sc->input_error);
        status = "failed";
        rc = 1;
    } else {
        rc = 0;
    }
    /* Domains the writer dropped as duplicates were counted as done. */
    sc->domains_done -= ws.duplicates <= sc->domains_done ? ws.duplicates : 0;
    store_scan_end(sc, status, dups, elapsed);
    if (!cfg->silent) {
        print_summary(sc, status, dups, elapsed);
    }
out_loop:
    if (sc->loop) {
        if (!sc->finished) {
            if (sc->dns) {
                dns_free(sc->dns);
            }
            if (sc->rl) {
                rl_free(sc->rl);
            }
            wake_off(sc);
            uv_walk(sc->loop, walk_close_cb, NULL);
        }
        uv_run(sc->loop, UV_RUN_DEFAULT);
        uv_loop_close(sc->loop);
        free(sc->loop);
    }
out:
    if (sc->ssl_ctx) {
        SSL_CTX_free(sc->ssl_ctx);
    }
    if (sc->in) {
        input_close(sc->in);
    }
    cache_free(sc->cache);
    exclude_free(sc->exclude);
    input_dedup_free(sc->dedup);
    if (sc->db) {
        db_close(sc->db);
    }
    if (sc->lock_fd >= 0) {
        close(sc->lock_fd); /* releases the flock */
    }
    free(sc->ring);
    pthread_mutex_destroy(&sc->mu);
    pthread_cond_destroy(&sc->cv);
    free(sc);
    if (fds_start >= 0) {
        fprintf(stderr, "mxscan: descriptors: %d at start, %d at end\n", fds_start, count_fds());
    }
    return rc;
}
