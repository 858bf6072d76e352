/*
 * check.c - `mxscan check DOMAIN...`: the whole pipeline for a few domains,
 * and what is wrong with them, for a person, a cron job or a monitoring
 * system.
 *
 * The domains are checked and normalised here, then scanned by scan_run()
 * exactly as `mxscan scan` would (same flags, quiet and silent), into the
 * database given with -o or into a private temporary file that is removed
 * afterwards (with its -wal, -shm and -journal). The results are read back
 * from that database with plain SQL: per domain the posture, MX hosts and
 * their endpoints, MTA-STS, TLSRPT and the findings of the domain_findings
 * view. Four output modes: human (the default, coloured on a terminal),
 * -q (nothing unless a crit or warn finding), --json (one document) and
 * --nagios (one line with perfdata, Nagios plugin exit codes).
 *
 * Exit status, the same in every mode: 0 no crit or warn finding, 1 warn
 * but no crit, 2 crit, 3 the check could not be made (the scan failed, or
 * every domain has posture dns-error and none has a crit finding: the
 * resolver, not the domains, is the likely problem). Bad usage is 64
 * (EX_USAGE), or 3 with --nagios; an interrupted scan is 130 (3 with
 * --nagios).
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db/db.h"
#include "inputs/input.h"
#include "scanner/log.h"
#include "scanner/scan.h"
#include "scanner/strbuf.h"
#include "tools/scanflags.h"
#include "tools/tools.h"

#define CHECK_DEFAULT_TIMEOUT_MS 15000
#define CHECK_MAX_DOMAINS        1000

/* Exit statuses (see the top of the file and docs/tool-check.md). */
enum {
    EXIT_OK = 0,
    EXIT_WARN = 1,
    EXIT_CRIT = 2,
    EXIT_UNKNOWN = 3,
    EXIT_USAGE = 64, /* EX_USAGE of sysexits.h */
    EXIT_INTERRUPTED = 130,
};

typedef enum check_mode { MODE_HUMAN, MODE_QUIET, MODE_JSON, MODE_NAGIOS } check_mode_t;

/* What is known of one requested domain after the scan. */
typedef struct check_domain {
    const char *name; /* normalised */
    int found;        /* a domains row exists */
    char posture[32];
    long n_crit, n_warn, n_info; /* rows of domain_findings by severity */
} check_domain_t;

/* Everything one run of `mxscan check` needs. */
typedef struct check {
    check_mode_t mode;
    int color, no_color;
    const char *out_path; /* -o, or NULL */
    const char *db_path;  /* what the scan wrote */
    sqlite3 *h;
    int64_t scan_id;
    check_domain_t *doms;
    int ndoms;
    long crit, warn, info, endpoints, tls;
    double elapsed_s;
    int state;               /* EXIT_OK .. EXIT_UNKNOWN */
    const char *unknown_why; /* with EXIT_UNKNOWN */
} check_t;

/* The private database and its companions, for the signal handler, and
 * the signal actions it replaced. */
static char tmp_paths[4][PATH_MAX];
static volatile sig_atomic_t tmp_nagios;
static const int tmp_signums[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE};
static struct sigaction tmp_old[4];
static int tmp_installed;

static const char *const state_names[] = {"OK", "WARNING", "CRITICAL", "UNKNOWN"};

/* ANSI colours. */
#define C_RED    "\033[31m"
#define C_GREEN  "\033[32m"
#define C_YELLOW "\033[33m"
#define C_BOLD   "\033[1m"
#define C_DIM    "\033[2m"
#define C_RESET  "\033[0m"

/* Prints text from the database for a terminal: control bytes and
 * anything outside ASCII become '?' (line ends become a space), so a
 * server's reply can never send escape sequences to the reader's terminal
 * nor break the one-line formats. */
static void put_clean(FILE *f, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)(s ? s : ""); *p; p++) {
        if (*p == '\r' || *p == '\n' || *p == '\t') {
            if (p[1] != '\n') {
                fputc(' ', f);
            }
        } else {
            fputc(*p >= 0x20 && *p < 0x7f ? *p : '?', f);
        }
    }
}

/* Prints the usage of `mxscan check`, with every default. */
static void usage(FILE *f)
{
    scan_config_t d;
    scan_config_defaults(&d);
    fprintf(f,
            "usage: mxscan check [options] DOMAIN...\n"
            "\n"
            "Scans a few domains now (MX, addresses, SMTP, STARTTLS, TLS, certificates,\n"
            "DANE, MTA-STS, TLSRPT: the whole pipeline of `mxscan scan`) and says what is\n"
            "wrong with them. Nothing is stored unless -o is given: the scan goes to a\n"
            "private temporary file in $TMPDIR (else /tmp) that is removed afterwards.\n"
            "Unlike `mxscan scan`, a transient failure (connect timeout, 4xx greeting)\n"
            "is reported as it is, not tried again a minute later.\n"
            "\n"
            "output (one mode at most):\n"
            "  (default)              per domain: posture, MX hosts and their endpoints\n"
            "                         (TLS version, cipher, grade, certificate expiry,\n"
            "                         DANE), MTA-STS, TLSRPT, then the findings, crit\n"
            "                         first, each with what to fix. Coloured when stdout\n"
            "                         is a terminal, unless --no-color, NO_COLOR is set\n"
            "                         or TERM=dumb\n"
            "  -q, --quiet            for cron: print nothing when no domain has a crit\n"
            "                         or warn finding; else print only those findings\n"
            "      --json             one JSON document on stdout\n"
            "      --nagios           one line for Nagios/Icinga and the like:\n"
            "                         'MXSCAN STATE - summary | domains=N crit=N warn=N\n"
            "                         info=N endpoints=N tls=N'\n"
            "      --no-color         no ANSI colours\n"
            "  -o, --output DB        also keep the results: add this scan to DB\n"
            "  -v, --verbose          debug messages on stderr\n"
            "  -h, --help             this help\n"
            "\n"
            "scan settings (as for `mxscan scan`):\n"
            "      --resolver LIST    ADDR[:PORT][,...]; default: $DNS_RESOLVER, else\n"
            "                         /etc/resolv.conf. Use a validating resolver\n"
            "      --dns-timeout MS   per try (default %d); --dns-tries N (default %d)\n"
            "      --port N           SMTP port (default %d; 465 with --tls-on-connect)\n"
            "      --tls-on-connect   TLS first, no STARTTLS (port 465, RFC 8314)\n"
            "      --helo NAME        name sent with EHLO (default %s)\n"
            "      --timeout T        deadline of each SMTP step: seconds, or e.g. 500ms\n"
            "                         (default %ds here, shorter than scan's %llus)\n"
            "      --ca-file FILE     CA certificates for verification (PEM)\n"
            "      --ca-path DIR      CA directory (default: the system store)\n"
            "      --max-addrs N      addresses scanned per MX host (default %d, max 32)\n"
            "      --aka NAME         a further name accepted in MX certificates\n"
            "                         (repeatable)\n"
            "      --expiry-warning D cert.expiring when a certificate expires within D\n"
            "                         (e.g. 14d, 36h; default %ldd)\n"
            "      --expect-ocsp      a missing OCSP staple is crit, not info\n"
            "      --enum             one more session per TLS version, to grade by the\n"
            "                         oldest accepted\n"
            "\n"
            "At most %d domains; for lists use `mxscan scan`.\n"
            "\n"
            "Exit status (all modes): 0 no crit or warn finding, 1 a warn finding but no\n"
            "crit, 2 a crit finding, 3 the check could not be made (the scan failed, or\n"
            "every domain is dns-error without a crit finding: suspect the resolver).\n"
            "Bad usage: 64, or 3 with --nagios. Interrupted: 130, or 3 with --nagios.\n",
            d.dns_timeout_ms, d.dns_tries, d.port, d.helo, CHECK_DEFAULT_TIMEOUT_MS / 1000,
            (unsigned long long)(d.timeout_ms / 1000), d.max_addrs, d.expiry_warning_s / 86400,
            CHECK_MAX_DOMAINS);
}

/* Reports a usage error the way the mode wants it and returns its status. */
static int usage_error(int nagios, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "mxscan check: %s; see 'mxscan check --help'\n", msg);
    if (nagios) {
        printf("MXSCAN UNKNOWN - bad usage: ");
        put_clean(stdout, msg); /* one line, whatever the arguments hold */
        putchar('\n');
        return EXIT_UNKNOWN;
    }
    return EXIT_USAGE;
}

/* True when the command line asks for --nagios (also abbreviated), so
 * that even an earlier bad flag is reported the Nagios way. */
static int wants_nagios(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            return 0;
        }
        size_t n = strlen(a);
        if (n >= 4 && strncmp(a, "--nagios", n) == 0) {
            return 1;
        }
    }
    return 0;
}

/* The command line as a JSON array, stored with the scan. */
static char *args_json(int argc, char **argv)
{
    strbuf_t sb;
    sb_init(&sb);
    sb_putc(&sb, '[');
    for (int i = 0; i < argc; i++) {
        if (i) {
            sb_putc(&sb, ',');
        }
        sb_json_str(&sb, argv[i], strlen(argv[i]));
    }
    sb_putc(&sb, ']');
    return sb_take(&sb);
}

/* SIGINT/SIGTERM outside the scan (which handles them itself), SIGHUP,
 * and SIGPIPE (output piped into head): remove the private database and
 * leave. Only async-signal-safe calls. */
static void tmp_signal_cb(int signum)
{
    for (size_t i = 0; i < sizeof tmp_paths / sizeof *tmp_paths; i++) {
        if (tmp_paths[i][0]) {
            unlink(tmp_paths[i]);
        }
    }
    _exit(tmp_nagios ? EXIT_UNKNOWN : 128 + signum);
}

/* Installs the clean-up handler for the signals that were not ignored
 * (under nohup, SIGHUP stays ignored), or with on = 0 puts back what was
 * there before. Called again after the scan, whose own handlers leave the
 * default actions behind. */
static void tmp_signals(int on)
{
    for (size_t i = 0; i < sizeof tmp_signums / sizeof *tmp_signums; i++) {
        if (!on) {
            if (tmp_installed) {
                sigaction(tmp_signums[i], &tmp_old[i], NULL);
            }
            continue;
        }
        struct sigaction sa, old;
        sigaction(tmp_signums[i], NULL, &old);
        if (!tmp_installed) {
            tmp_old[i] = old;
        }
        if (tmp_old[i].sa_handler == SIG_IGN) {
            continue;
        }
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = tmp_signal_cb;
        sigemptyset(&sa.sa_mask);
        sigaction(tmp_signums[i], &sa, NULL);
    }
    tmp_installed = on;
}

/* Creates the private database file (mode 0600) in $TMPDIR or /tmp and
 * records it and its companions for removal. Returns 0 or -1. */
static int tmp_create(void)
{
    const char *dir = getenv("TMPDIR");
    if (!dir || !*dir) {
        dir = "/tmp";
    }
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s/mxscan-check-XXXXXX", dir) >= (int)sizeof path - 8) {
        fprintf(stderr, "mxscan check: TMPDIR is too long\n");
        return -1;
    }
    int fd = mkstemp(path);
    if (fd < 0) {
        fprintf(stderr, "mxscan check: cannot create a temporary database in %s: %s\n", dir,
                strerror(errno));
        return -1;
    }
    close(fd);
    static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(tmp_paths[i], sizeof tmp_paths[i], "%s%s", path, suffix[i]);
    }
    tmp_signals(1);
    return 0;
}

/* Removes the private database and its companions. */
static void tmp_remove(void)
{
    for (size_t i = 0; i < sizeof tmp_paths / sizeof *tmp_paths; i++) {
        if (tmp_paths[i][0]) {
            unlink(tmp_paths[i]);
        }
    }
    tmp_signals(0);
    memset(tmp_paths, 0, sizeof tmp_paths);
}

/* Text of column i, or NULL. */
static const char *col_text(sqlite3_stmt *st, int i)
{
    return (const char *)sqlite3_column_text(st, i);
}

/* Starts a coloured span when colour is on. */
static void color_on(const check_t *ck, const char *c)
{
    if (ck->color && c) {
        fputs(c, stdout);
    }
}

/* Ends a coloured span. */
static void color_off(const check_t *ck, const char *c)
{
    if (ck->color && c) {
        fputs(C_RESET, stdout);
    }
}

/* The colour of a posture: green when mail is protected as published,
 * yellow when only partly, red when exposed or failing. */
static const char *posture_color(const char *p)
{
    static const char *const green[] = {"dane", "mta-sts", "starttls"};
    static const char *const yellow[] = {"mta-sts-testing", "partial"};
    static const char *const red[] = {"broken", "plaintext", "unreachable", "dns-error"};
    for (size_t i = 0; i < 3; i++) {
        if (strcmp(p, green[i]) == 0) {
            return C_GREEN;
        }
    }
    for (size_t i = 0; i < 2; i++) {
        if (strcmp(p, yellow[i]) == 0) {
            return C_YELLOW;
        }
    }
    for (size_t i = 0; i < 4; i++) {
        if (strcmp(p, red[i]) == 0) {
            return C_RED;
        }
    }
    return NULL;
}

/* The colour of a severity. */
static const char *severity_color(const char *sev)
{
    return strcmp(sev, "crit") == 0 ? C_RED : strcmp(sev, "warn") == 0 ? C_YELLOW : C_DIM;
}

/* Prepares a statement; on failure says why and returns NULL. */
static sqlite3_stmt *prep(check_t *ck, const char *sql)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(ck->h, sql, -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "mxscan check: cannot read the results: %s\n", sqlite3_errmsg(ck->h));
        return NULL;
    }
    return st;
}

/* Reads the posture and finding counts of each domain, the totals and the
 * state (see the top of the file). Returns 0 or -1. */
static int load_summary(check_t *ck)
{
    sqlite3_stmt *d = prep(ck, "SELECT posture FROM domains WHERE scan_id=?1 AND domain=?2");
    sqlite3_stmt *f = prep(ck, "SELECT severity, count(*) FROM domain_findings "
                               "WHERE scan_id=?1 AND domain=?2 GROUP BY severity");
    sqlite3_stmt *e = prep(ck, "SELECT count(*), count(tls_version) FROM endpoints "
                               "WHERE scan_id=?1");
    if (!d || !f || !e) {
        sqlite3_finalize(d), sqlite3_finalize(f), sqlite3_finalize(e);
        return -1;
    }
    int all_dns_error = 1, missing = 0;
    for (int i = 0; i < ck->ndoms; i++) {
        check_domain_t *cd = &ck->doms[i];
        sqlite3_bind_int64(d, 1, ck->scan_id);
        sqlite3_bind_text(d, 2, cd->name, -1, SQLITE_STATIC);
        if (sqlite3_step(d) == SQLITE_ROW) {
            cd->found = 1;
            snprintf(cd->posture, sizeof cd->posture, "%s",
                     col_text(d, 0) ? col_text(d, 0) : "unknown");
        } else {
            snprintf(cd->posture, sizeof cd->posture, "not-checked");
            missing = 1;
        }
        sqlite3_reset(d);
        sqlite3_bind_int64(f, 1, ck->scan_id);
        sqlite3_bind_text(f, 2, cd->name, -1, SQLITE_STATIC);
        while (sqlite3_step(f) == SQLITE_ROW) {
            const char *sev = col_text(f, 0);
            long n = (long)sqlite3_column_int64(f, 1);
            if (!sev) {
                continue;
            }
            if (strcmp(sev, "crit") == 0) {
                cd->n_crit += n;
            } else if (strcmp(sev, "warn") == 0) {
                cd->n_warn += n;
            } else {
                cd->n_info += n;
            }
        }
        sqlite3_reset(f);
        ck->crit += cd->n_crit;
        ck->warn += cd->n_warn;
        ck->info += cd->n_info;
        if (strcmp(cd->posture, "dns-error") != 0) {
            all_dns_error = 0;
        }
    }
    sqlite3_bind_int64(e, 1, ck->scan_id);
    if (sqlite3_step(e) == SQLITE_ROW) {
        ck->endpoints = (long)sqlite3_column_int64(e, 0);
        ck->tls = (long)sqlite3_column_int64(e, 1);
    }
    sqlite3_finalize(d), sqlite3_finalize(f), sqlite3_finalize(e);
    if (ck->crit) {
        ck->state = EXIT_CRIT;
    } else if (missing || all_dns_error) {
        ck->state = EXIT_UNKNOWN;
        ck->unknown_why = missing ? "the scan did not finish every domain"
                                  : "every domain failed in DNS (is the resolver working?)";
    } else {
        ck->state = ck->warn ? EXIT_WARN : EXIT_OK;
    }
    return 0;
}

/* Days from now to an ISO 8601 UTC time, rounded down; INT_MIN if unparsable. */
static int days_until(const char *iso)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    if (!iso || sscanf(iso, "%d-%d-%dT%d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                       &tm.tm_min, &tm.tm_sec) != 6) {
        return INT_MIN;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    double d = difftime(timegm(&tm), time(NULL)) / 86400.0;
    return d < 0 ? -(int)(-d) - 1 : (int)d;
}

/* Human output: one endpoint of an MX host. */
static void human_endpoint(const check_t *ck, sqlite3_stmt *e)
{
    const char *ip = col_text(e, 0);
    int port = sqlite3_column_int(e, 1);
    const char *status = col_text(e, 2), *step = col_text(e, 3), *error = col_text(e, 4);
    const char *ver = col_text(e, 5), *cipher = col_text(e, 6), *grade = col_text(e, 7);
    const char *not_after = col_text(e, 8), *dane = col_text(e, 9);
    printf(strchr(ip ? ip : "", ':') ? "      [%s]:%d  " : "      %s:%d  ", ip ? ip : "?", port);
    if (status && strcmp(status, "ok") != 0) {
        color_on(ck, C_RED);
        printf("failed at ");
        put_clean(stdout, step ? step : "?");
        printf(": ");
        put_clean(stdout, error ? error : "unknown error");
        color_off(ck, C_RED);
        putchar('\n');
        return;
    }
    if (!ver) {
        color_on(ck, C_RED);
        printf("no TLS");
        color_off(ck, C_RED);
        putchar('\n');
        return;
    }
    put_clean(stdout, ver);
    putchar(' ');
    put_clean(stdout, cipher ? cipher : "?");
    if (grade) {
        const char *gc = grade[0] == 'A' || grade[0] == 'B'   ? C_GREEN
                         : grade[0] == 'C' || grade[0] == 'D' ? C_YELLOW
                                                              : C_RED;
        printf("  grade ");
        color_on(ck, gc);
        put_clean(stdout, grade);
        color_off(ck, gc);
    }
    if (not_after) {
        int days = days_until(not_after);
        printf("  cert until %.10s", not_after);
        if (days != INT_MIN) {
            const char *dc = days < 0 ? C_RED : days < 30 ? C_YELLOW : NULL;
            color_on(ck, dc);
            printf(days < 0 ? " (expired %d d ago)" : " (%d d)", days < 0 ? -days : days);
            color_off(ck, dc);
        }
    }
    if (dane) {
        printf("  DANE ");
        put_clean(stdout, dane);
    }
    putchar('\n');
}

/* Human output: MX hosts of a domain with their endpoints. */
static void human_mx(check_t *ck, const check_domain_t *cd, sqlite3_stmt *m, sqlite3_stmt *e)
{
    sqlite3_bind_int64(m, 1, ck->scan_id);
    sqlite3_bind_text(m, 2, cd->name, -1, SQLITE_STATIC);
    while (sqlite3_step(m) == SQLITE_ROW) {
        const char *host = col_text(m, 0);
        int implicit = sqlite3_column_int(m, 2);
        const char *dnssec = col_text(m, 3), *dane = col_text(m, 4);
        if (implicit) {
            printf("  MX (implicit) ");
        } else {
            printf("  MX %d ", sqlite3_column_int(m, 1));
        }
        put_clean(stdout, host);
        printf("  DNSSEC %s, DANE %s", dnssec ? dnssec : "-", dane ? dane : "-");
        const char *cname = col_text(m, 5);
        if (cname) {
            printf(", CNAME to ");
            put_clean(stdout, cname);
        }
        putchar('\n');
        sqlite3_bind_int64(e, 1, ck->scan_id);
        sqlite3_bind_text(e, 2, host, -1, SQLITE_TRANSIENT);
        int n = 0;
        while (sqlite3_step(e) == SQLITE_ROW) {
            human_endpoint(ck, e);
            n++;
        }
        sqlite3_reset(e);
        if (n == 0) {
            printf("      no endpoint (A ");
            put_clean(stdout, col_text(m, 6) ? col_text(m, 6) : "-");
            printf(", AAAA ");
            put_clean(stdout, col_text(m, 7) ? col_text(m, 7) : "-");
            printf(")\n");
        }
    }
    sqlite3_reset(m);
}

/* Human output: findings of a domain, worst first, each with its remedy. */
static void human_findings(check_t *ck, const check_domain_t *cd, sqlite3_stmt *f)
{
    sqlite3_bind_int64(f, 1, ck->scan_id);
    sqlite3_bind_text(f, 2, cd->name, -1, SQLITE_STATIC);
    while (sqlite3_step(f) == SQLITE_ROW) {
        const char *sev = col_text(f, 0), *code = col_text(f, 1), *host = col_text(f, 2);
        const char *ip = col_text(f, 3), *detail = col_text(f, 6);
        if (!sev || !code) {
            continue;
        }
        if (ck->mode == MODE_QUIET && strcmp(sev, "info") == 0) {
            continue;
        }
        const char *sc = severity_color(sev);
        printf("  ");
        color_on(ck, sc);
        printf("%-4s", sev);
        color_off(ck, sc);
        printf("  ");
        color_on(ck, C_BOLD);
        put_clean(stdout, code);
        color_off(ck, C_BOLD);
        printf("  ");
        put_clean(stdout, host ? host : cd->name);
        if (ip) {
            printf(strchr(ip, ':') ? " [%s]:%d" : " %s:%d", ip, sqlite3_column_int(f, 4));
        }
        putchar('\n');
        if (detail && *detail) {
            printf("        ");
            put_clean(stdout, detail);
            putchar('\n');
        }
        const char *fix = remedy_for(code);
        if (fix && *fix) {
            printf("        fix: ");
            put_clean(stdout, fix);
            putchar('\n');
        }
    }
    sqlite3_reset(f);
}

/* Human output: what a policy lookup of a domain came to. The scan
 * stores an mta_sts or tlsrpt row only for a record or a failed lookup;
 * plain absence is the sts.none or tlsrpt.none finding, and neither means
 * the lookup was not made (e.g. after a failed MX lookup). Columns from
 * first: row exists, record, rcode, absent (the *.none finding), then
 * for MTA-STS the mode or for TLSRPT the validity. */
static void human_policy(sqlite3_stmt *p, int first, int is_sts)
{
    const char *record = col_text(p, first + 1), *rcode = col_text(p, first + 2);
    if (!sqlite3_column_int(p, first)) {
        printf(sqlite3_column_int(p, first + 3) ? "not published" : "not checked");
    } else if (!record) {
        printf("lookup failed (");
        put_clean(stdout, rcode ? rcode : "?");
        putchar(')');
    } else if (is_sts) {
        const char *mode = col_text(p, first + 4);
        put_clean(stdout, mode ? mode : "no valid policy");
    } else if (sqlite3_column_int(p, first + 4)) {
        printf("valid");
        const char *rua = col_text(p, first + 5);
        if (rua && *rua) {
            printf(" (");
            put_clean(stdout, rua);
            putchar(')');
        }
    } else {
        printf("invalid");
    }
}

/* Human output: MTA-STS and TLSRPT of a domain on one line. */
static void human_policies(check_t *ck, const check_domain_t *cd, sqlite3_stmt *p)
{
    sqlite3_bind_int64(p, 1, ck->scan_id);
    sqlite3_bind_text(p, 2, cd->name, -1, SQLITE_STATIC);
    if (sqlite3_step(p) == SQLITE_ROW) {
        printf("  MTA-STS ");
        human_policy(p, 0, 1);
        printf(", TLSRPT ");
        human_policy(p, 5, 0);
        putchar('\n');
    }
    sqlite3_reset(p);
}

/* Human output (and -q): every domain in the order given. Returns 0 or -1. */
static int print_human(check_t *ck)
{
    if (ck->mode == MODE_QUIET && ck->crit == 0 && ck->warn == 0 && ck->state == EXIT_OK) {
        return 0;
    }
    sqlite3_stmt *dm = prep(ck, "SELECT mx_kind, mx_rcode, mx_dnssec FROM domains "
                                "WHERE scan_id=?1 AND domain=?2");
    sqlite3_stmt *m = prep(ck, "SELECT m.host, m.preference, m.implicit, h.dnssec, h.dane, "
                               "h.cname, h.a_rcode, h.aaaa_rcode FROM mx m LEFT JOIN hosts h "
                               "ON h.scan_id=m.scan_id AND h.host=m.host "
                               "WHERE m.scan_id=?1 AND m.domain=?2 ORDER BY m.preference, m.host");
    sqlite3_stmt *e = prep(ck, "SELECT ip, port, status, failed_step, error, tls_version, "
                               "tls_cipher, grade, cert_not_after, dane FROM endpoints "
                               "WHERE scan_id=?1 AND host=?2 ORDER BY ip, port");
    sqlite3_stmt *p =
        prep(ck, "SELECT s.domain IS NOT NULL, s.txt, s.txt_rcode, "
                 "EXISTS (SELECT 1 FROM findings x WHERE x.scan_id=d.scan_id AND x.domain=d.domain "
                 "AND x.code='sts.none'), d.sts_mode, "
                 "r.domain IS NOT NULL, r.record, r.txt_rcode, "
                 "EXISTS (SELECT 1 FROM findings x WHERE x.scan_id=d.scan_id AND x.domain=d.domain "
                 "AND x.code='tlsrpt.none'), r.valid, "
                 "(SELECT group_concat(j.value, ', ') FROM json_each(CASE WHEN json_valid(r.rua) "
                 "THEN r.rua ELSE '[]' END) j) "
                 "FROM domains d LEFT JOIN mta_sts s ON s.scan_id=d.scan_id AND s.domain=d.domain "
                 "LEFT JOIN tlsrpt r ON r.scan_id=d.scan_id AND r.domain=d.domain "
                 "WHERE d.scan_id=?1 AND d.domain=?2");
    sqlite3_stmt *f =
        prep(ck, "SELECT severity, code, host, ip, port, result_type, detail FROM domain_findings "
                 "WHERE scan_id=?1 AND domain=?2 ORDER BY CASE severity WHEN 'crit' THEN 0 "
                 "WHEN 'warn' THEN 1 ELSE 2 END, code, host, ip, port");
    int rc = -1;
    if (!dm || !m || !e || !p || !f) {
        goto out;
    }
    for (int i = 0; i < ck->ndoms; i++) {
        const check_domain_t *cd = &ck->doms[i];
        int problem = cd->n_crit || cd->n_warn || !cd->found;
        if (ck->mode == MODE_QUIET && !problem && ck->state != EXIT_UNKNOWN) {
            continue;
        }
        if (ck->mode == MODE_HUMAN && i) {
            putchar('\n');
        }
        color_on(ck, C_BOLD);
        put_clean(stdout, cd->name);
        color_off(ck, C_BOLD);
        printf("  ");
        const char *pc = cd->found ? posture_color(cd->posture) : C_RED;
        color_on(ck, pc);
        put_clean(stdout, cd->posture);
        color_off(ck, pc);
        printf("  (%ld crit, %ld warn, %ld info)\n", cd->n_crit, cd->n_warn, cd->n_info);
        if (!cd->found) {
            printf("  the scan did not finish this domain\n");
            continue;
        }
        if (ck->mode == MODE_HUMAN) {
            sqlite3_bind_int64(dm, 1, ck->scan_id);
            sqlite3_bind_text(dm, 2, cd->name, -1, SQLITE_STATIC);
            if (sqlite3_step(dm) == SQLITE_ROW) {
                const char *kind = col_text(dm, 0);
                if (strcmp(cd->posture, "dns-error") == 0) {
                    printf("  MX lookup failed: ");
                    put_clean(stdout, col_text(dm, 1) ? col_text(dm, 1) : "-");
                    putchar('\n');
                } else if (kind && strcmp(kind, "null") == 0) {
                    printf("  null MX (RFC 7505): the domain accepts no mail\n");
                } else if (kind && strcmp(kind, "none") == 0) {
                    printf("  no MX and no address (MX ");
                    put_clean(stdout, col_text(dm, 1) ? col_text(dm, 1) : "-");
                    printf(")\n");
                } else if (!kind) {
                    printf("  MX lookup failed: ");
                    put_clean(stdout, col_text(dm, 1) ? col_text(dm, 1) : "-");
                    putchar('\n');
                }
            }
            sqlite3_reset(dm);
            human_mx(ck, cd, m, e);
            human_policies(ck, cd, p);
        }
        human_findings(ck, cd, f);
    }
    if (ck->mode == MODE_HUMAN) {
        const char *sc = ck->state == EXIT_CRIT   ? C_RED
                         : ck->state == EXIT_WARN ? C_YELLOW
                         : ck->state == EXIT_OK   ? C_GREEN
                                                  : C_RED;
        printf("\n%d domain%s checked in %.1f s: ", ck->ndoms, ck->ndoms == 1 ? "" : "s",
               ck->elapsed_s);
        color_on(ck, sc);
        printf("%s", state_names[ck->state]);
        color_off(ck, sc);
        printf(" (%ld crit, %ld warn, %ld info)\n", ck->crit, ck->warn, ck->info);
    }
    rc = 0;
out:
    sqlite3_finalize(dm), sqlite3_finalize(m), sqlite3_finalize(e), sqlite3_finalize(p),
        sqlite3_finalize(f);
    return rc;
}

/* Appends column i of a row as a JSON value of its SQLite type. */
static void json_col(strbuf_t *sb, sqlite3_stmt *st, int i)
{
    switch (sqlite3_column_type(st, i)) {
    case SQLITE_INTEGER:
        sb_printf(sb, "%lld", (long long)sqlite3_column_int64(st, i));
        break;
    case SQLITE_FLOAT:
        sb_printf(sb, "%.6g", sqlite3_column_double(st, i));
        break;
    case SQLITE_TEXT:
        sb_json_str(sb, col_text(st, i), (size_t)sqlite3_column_bytes(st, i));
        break;
    default:
        sb_puts(sb, "null");
    }
}

/* Appends a row as an open JSON object (no closing brace, so that the
 * caller can add members): "name": value for each column, where a column
 * whose name ends in "_json" holds JSON text (valid or NULL) and one whose
 * name ends in "_bool" becomes true, false or null. */
static void json_row_open(strbuf_t *sb, sqlite3_stmt *st)
{
    sb_putc(sb, '{');
    int n = sqlite3_column_count(st);
    for (int i = 0; i < n; i++) {
        const char *name = sqlite3_column_name(st, i);
        size_t len = strlen(name);
        int is_json = len > 5 && strcmp(name + len - 5, "_json") == 0;
        int is_bool = len > 5 && strcmp(name + len - 5, "_bool") == 0;
        if (i) {
            sb_putc(sb, ',');
        }
        sb_json_str(sb, name, is_json || is_bool ? len - 5 : len);
        sb_putc(sb, ':');
        if (sqlite3_column_type(st, i) == SQLITE_NULL) {
            sb_puts(sb, "null");
        } else if (is_json) {
            sb_puts(sb, col_text(st, i));
        } else if (is_bool) {
            sb_puts(sb, sqlite3_column_int(st, i) ? "true" : "false");
        } else {
            json_col(sb, st, i);
        }
    }
}

/* Appends an array of the rows of st, bound to (scan_id, key); each row
 * may be followed by a nested member from more(). */
static void json_rows(check_t *ck, strbuf_t *sb, sqlite3_stmt *st, const char *key,
                      void (*more)(check_t *, strbuf_t *, sqlite3_stmt *, void *), void *arg)
{
    sqlite3_bind_int64(st, 1, ck->scan_id);
    sqlite3_bind_text(st, 2, key, -1, SQLITE_TRANSIENT);
    sb_putc(sb, '[');
    for (int n = 0; sqlite3_step(st) == SQLITE_ROW; n++) {
        if (n) {
            sb_putc(sb, ',');
        }
        json_row_open(sb, st);
        if (more) {
            more(ck, sb, st, arg);
        }
        sb_putc(sb, '}');
    }
    sqlite3_reset(st);
    sb_putc(sb, ']');
}

/* JSON: the endpoints of an MX host row, as its "endpoints" member. */
static void json_mx_endpoints(check_t *ck, strbuf_t *sb, sqlite3_stmt *m, void *arg)
{
    sb_puts(sb, ",\"endpoints\":");
    json_rows(ck, sb, arg, col_text(m, 0), NULL, NULL);
}

/* JSON: the remedy of a finding row, as its "remedy" member. */
static void json_finding_remedy(check_t *ck, strbuf_t *sb, sqlite3_stmt *f, void *arg)
{
    (void)ck, (void)arg;
    const char *fix = remedy_for(col_text(f, 1) ? col_text(f, 1) : "");
    sb_puts(sb, ",\"remedy\":");
    if (fix && *fix) {
        sb_json_str(sb, fix, strlen(fix));
    } else {
        sb_puts(sb, "null");
    }
}

/* --json: one document with the totals and every domain. Returns 0 or -1. */
static int print_json(check_t *ck)
{
    sqlite3_stmt *d = prep(ck, "SELECT d.domain, d.posture, d.worst_severity, d.mx_kind, "
                               "d.mx_rcode, d.mx_dnssec, d.sts_mode, "
                               "s.txt_valid AS sts_txt_valid_bool, s.fetch_status AS "
                               "sts_fetch_status, s.policy_valid AS sts_policy_valid_bool, "
                               "d.tlsrpt AS tlsrpt_bool, "
                               "CASE WHEN json_valid(r.rua) THEN r.rua END AS tlsrpt_rua_json "
                               "FROM domains d LEFT JOIN tlsrpt r "
                               "ON r.scan_id=d.scan_id AND r.domain=d.domain "
                               "LEFT JOIN mta_sts s ON s.scan_id=d.scan_id AND s.domain=d.domain "
                               "WHERE d.scan_id=?1 AND d.domain=?2");
    sqlite3_stmt *m =
        prep(ck, "SELECT m.host, m.preference, m.implicit AS implicit_bool, h.cname, "
                 "h.dnssec, h.dane, h.a_rcode, h.aaaa_rcode, "
                 "CASE WHEN json_valid(h.addresses) THEN h.addresses END AS addresses_json "
                 "FROM mx m LEFT JOIN hosts h ON h.scan_id=m.scan_id AND h.host=m.host "
                 "WHERE m.scan_id=?1 AND m.domain=?2 ORDER BY m.preference, m.host");
    sqlite3_stmt *e = prep(ck, "SELECT ip, port, status, failed_step, error, tls_version, "
                               "tls_cipher, tls_group, grade, pkix_valid AS pkix_valid_bool, "
                               "verify_error, cert_subject, cert_not_after, dane, dane_match "
                               "FROM endpoints WHERE scan_id=?1 AND host=?2 ORDER BY ip, port");
    sqlite3_stmt *f =
        prep(ck, "SELECT severity, code, host, ip, port, result_type, detail FROM domain_findings "
                 "WHERE scan_id=?1 AND domain=?2 ORDER BY CASE severity WHEN 'crit' THEN 0 "
                 "WHEN 'warn' THEN 1 ELSE 2 END, code, host, ip, port");
    int rc = -1;
    if (!d || !m || !e || !f) {
        goto out;
    }
    strbuf_t sb;
    sb_init(&sb);
    sb_printf(&sb, "{\"state\":\"%s\",\"exit_status\":%d,\"scan_id\":%lld,\"database\":",
              state_names[ck->state], ck->state, (long long)ck->scan_id);
    if (ck->out_path) {
        sb_json_str(&sb, ck->out_path, strlen(ck->out_path));
    } else {
        sb_puts(&sb, "null");
    }
    sb_printf(&sb,
              ",\"elapsed_s\":%.3f,\"counts\":{\"domains\":%d,\"crit\":%ld,\"warn\":%ld,"
              "\"info\":%ld,\"endpoints\":%ld,\"tls\":%ld},\"domains\":[",
              ck->elapsed_s, ck->ndoms, ck->crit, ck->warn, ck->info, ck->endpoints, ck->tls);
    for (int i = 0; i < ck->ndoms; i++) {
        const check_domain_t *cd = &ck->doms[i];
        if (i) {
            sb_putc(&sb, ',');
        }
        sqlite3_bind_int64(d, 1, ck->scan_id);
        sqlite3_bind_text(d, 2, cd->name, -1, SQLITE_STATIC);
        if (sqlite3_step(d) == SQLITE_ROW) {
            json_row_open(&sb, d);
        } else {
            sb_puts(&sb, "{\"domain\":");
            sb_json_str(&sb, cd->name, strlen(cd->name));
            sb_puts(&sb, ",\"posture\":null");
        }
        sqlite3_reset(d);
        sb_printf(&sb, ",\"checked\":%s,\"n_crit\":%ld,\"n_warn\":%ld,\"n_info\":%ld,\"mx\":",
                  cd->found ? "true" : "false", cd->n_crit, cd->n_warn, cd->n_info);
        json_rows(ck, &sb, m, cd->name, json_mx_endpoints, e);
        sb_puts(&sb, ",\"findings\":");
        json_rows(ck, &sb, f, cd->name, json_finding_remedy, NULL);
        sb_putc(&sb, '}');
    }
    sb_puts(&sb, "]}\n");
    if (sb.oom) {
        fprintf(stderr, "mxscan check: out of memory\n");
    } else {
        fwrite(sb.s, 1, sb.len, stdout);
        rc = 0;
    }
    sb_free(&sb);
out:
    sqlite3_finalize(d), sqlite3_finalize(m), sqlite3_finalize(e), sqlite3_finalize(f);
    return rc;
}

/* --nagios: exactly one line, "MXSCAN STATE - summary | perfdata". The
 * summary names each domain with its posture and, when it has any, the
 * distinct crit and warn codes (at most three, then "+N"). */
static int print_nagios(check_t *ck)
{
    sqlite3_stmt *f = prep(ck, "SELECT code FROM domain_findings WHERE scan_id=?1 AND domain=?2 "
                               "AND severity IN ('crit','warn') GROUP BY code "
                               "ORDER BY min(CASE severity WHEN 'crit' THEN 0 ELSE 1 END), code");
    if (!f) {
        printf("MXSCAN UNKNOWN - cannot read the results\n");
        return -1;
    }
    printf("MXSCAN %s - ", state_names[ck->state]);
    if (ck->state == EXIT_UNKNOWN) {
        printf("%s: ", ck->unknown_why);
    }
    for (int i = 0; i < ck->ndoms; i++) {
        const check_domain_t *cd = &ck->doms[i];
        printf("%s", i ? "; " : "");
        put_clean(stdout, cd->name);
        putchar(' ');
        put_clean(stdout, cd->posture);
        sqlite3_bind_int64(f, 1, ck->scan_id);
        sqlite3_bind_text(f, 2, cd->name, -1, SQLITE_STATIC);
        int n = 0;
        while (sqlite3_step(f) == SQLITE_ROW) {
            if (n < 3) {
                printf(n ? "," : ": ");
                put_clean(stdout, col_text(f, 0));
            }
            n++;
        }
        if (n > 3) {
            printf(",+%d", n - 3);
        }
        sqlite3_reset(f);
    }
    printf(" | domains=%d crit=%ld warn=%ld info=%ld endpoints=%ld tls=%ld\n", ck->ndoms, ck->crit,
           ck->warn, ck->info, ck->endpoints, ck->tls);
    sqlite3_finalize(f);
    return 0;
}

/* Finds the scan this run wrote: the newest with our arguments. */
static int64_t find_scan(sqlite3 *h, const char *args)
{
    sqlite3_stmt *st = NULL;
    int64_t id = -1;
    if (sqlite3_prepare_v2(h, "SELECT max(id) FROM scans WHERE arguments=?1", -1, &st, NULL) ==
        SQLITE_OK) {
        sqlite3_bind_text(st, 1, args, -1, SQLITE_STATIC);
        if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL) {
            id = sqlite3_column_int64(st, 0);
        }
    }
    sqlite3_finalize(st);
    return id;
}

/* The check could not be made: says so in the mode's way. */
static int fail_unknown(const check_t *ck, const char *why)
{
    if (ck->mode == MODE_NAGIOS) {
        printf("MXSCAN UNKNOWN - %s\n", why);
    } else if (ck->mode == MODE_JSON) {
        strbuf_t sb;
        sb_init(&sb);
        sb_puts(&sb, "{\"state\":\"UNKNOWN\",\"exit_status\":3,\"error\":");
        sb_json_str(&sb, why, strlen(why));
        sb_puts(&sb, "}\n");
        if (sb.s) {
            fputs(sb.s, stdout);
        }
        sb_free(&sb);
    } else {
        fprintf(stderr, "mxscan check: %s\n", why);
    }
    return EXIT_UNKNOWN;
}

/* Long-only flags of `mxscan check` beyond the shared scan flags
 * (tools/scanflags.h). */
enum {
    O_JSON = SCANFLAGS_END,
    O_NAGIOS,
    O_NO_COLOR,
};

/* Scans, reads back and prints; see the top of the file. */
static int run_check(check_t *ck, scan_config_t *c, const char *args)
{
    if (!ck->out_path && tmp_create() < 0) {
        return fail_unknown(ck, "cannot create the temporary database");
    }
    c->db_path = ck->db_path = ck->out_path ? ck->out_path : tmp_paths[0];
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int src = scan_run(c);
    if (!ck->out_path) {
        tmp_signals(1); /* the scan put the default handlers back */
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ck->elapsed_s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    if (src == 130) {
        if (ck->mode == MODE_NAGIOS) {
            printf("MXSCAN UNKNOWN - interrupted\n");
            return EXIT_UNKNOWN;
        }
        return EXIT_INTERRUPTED;
    }
    if (src != 0) {
        return fail_unknown(ck, "the scan could not run (the reason is on stderr)");
    }
    char err[512];
    db_t *db = db_open(ck->db_path, err, sizeof err);
    if (!db) {
        fprintf(stderr, "mxscan check: %s\n", err);
        return fail_unknown(ck, "cannot open the results");
    }
    ck->h = db_handle(db);
    ck->scan_id = find_scan(ck->h, args);
    int rc;
    if (ck->scan_id < 0 || load_summary(ck) < 0) {
        rc = fail_unknown(ck, "cannot read the results");
    } else {
        int prc = ck->mode == MODE_JSON     ? print_json(ck)
                  : ck->mode == MODE_NAGIOS ? print_nagios(ck)
                                            : print_human(ck);
        rc = prc < 0 ? EXIT_UNKNOWN : ck->state;
    }
    fflush(stdout);
    db_close(db);
    return rc;
}

/* Long options of `mxscan check` beyond the shared scan flags. */
static const struct option check_opts[] = {
    {"output", required_argument, 0, 'o'},
    {"quiet", no_argument, 0, 'q'},
    {"verbose", no_argument, 0, 'v'},
    {"help", no_argument, 0, 'h'},
    {"json", no_argument, 0, O_JSON},
    {"nagios", no_argument, 0, O_NAGIOS},
    {"no-color", no_argument, 0, O_NO_COLOR},
    {0, 0, 0, 0}, /* the end: scanflags_table adds the shared flags */
};

/* Parses the flags into ck, c and sf (which c->aka then points into).
 * Returns -1 to go on, or the exit status to end with (0 after --help, a
 * usage error). */
static int parse_flags(int argc, char **argv, int nagios, check_t *ck, scan_config_t *c,
                       scanflags_t *sf)
{
    struct option opts[SCANFLAGS_TABLE_LEN(check_opts)];
    if (scanflags_table(opts, sizeof opts / sizeof *opts, check_opts) < 0) {
        return EXIT_UNKNOWN; /* cannot happen: the table is sized for both */
    }
    char err[SCANFLAGS_ERR_MAX];
    int modes = 0, opt;
    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, ":o:qvh", opts, NULL)) != -1) {
        switch (opt) {
        case 'o':
            ck->out_path = optarg;
            break;
        case 'q':
            ck->mode = MODE_QUIET, modes++;
            break;
        case O_JSON:
            ck->mode = MODE_JSON, modes++;
            break;
        case O_NAGIOS:
            ck->mode = MODE_NAGIOS, modes++;
            break;
        case O_NO_COLOR:
            ck->no_color = 1;
            break;
        case 'v':
            log_level = 2;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case ':':
            return usage_error(nagios, "option '%s' wants a value", argv[optind - 1]);
        default:
            switch (scanflags_apply(sf, c, opt, optarg, err, sizeof err)) {
            case 1:
                continue;
            case -1:
                return usage_error(nagios, "%s", err);
            }
            if (optopt >= 256) {
                return usage_error(nagios, "option '%s' takes no value", argv[optind - 1]);
            }
            if (optopt > 0 && optopt < 256 && argv[optind - 1][1] != '-') {
                return usage_error(nagios, "unknown option '-%c'", optopt);
            }
            return usage_error(nagios, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (modes > 1) {
        return usage_error(nagios, "-q, --json and --nagios are output modes: give one at most");
    }
    if (optind >= argc) {
        return usage_error(nagios, "no domains: give them as arguments");
    }
    if (argc - optind > CHECK_MAX_DOMAINS) {
        return usage_error(nagios, "at most %d domains; use 'mxscan scan' for lists",
                           CHECK_MAX_DOMAINS);
    }
    scanflags_finish(sf, c);
    return -1;
}

/* `mxscan check`. */
int cmd_check(int argc, char **argv)
{
    int nagios = wants_nagios(argc, argv);
    tmp_nagios = nagios;
    check_t ck;
    memset(&ck, 0, sizeof ck);
    scan_config_t c;
    scan_config_defaults(&c);
    c.timeout_ms = CHECK_DEFAULT_TIMEOUT_MS;
    c.retry_ms = 0; /* a check reports what it sees now: no later retry */
    c.quiet = c.silent = 1;
    /* The command line as typed (getopt_long permutes argv). */
    char *args = args_json(argc, argv);
    char(*names)[INPUT_NAME_MAX + 1] = NULL;
    char **list = NULL;
    scanflags_t sf; /* c.aka points into it */
    memset(&sf, 0, sizeof sf);
    int rc = parse_flags(argc, argv, nagios, &ck, &c, &sf);
    if (rc >= 0) {
        goto out;
    }
    /* A person at a terminal sees the scan's progress line while it runs
     * (a check waits up to --timeout per step); machines and cron do not. */
    c.quiet = !(ck.mode == MODE_HUMAN && isatty(2));
    /* Domains are checked here, before anything runs: a typo is a usage
     * error, not a rejected line of a scan. Duplicates are dropped. */
    int cap = argc - optind;
    names = calloc((size_t)cap, sizeof *names);
    list = calloc((size_t)cap, sizeof *list);
    ck.doms = calloc((size_t)cap, sizeof *ck.doms);
    if (!names || !list || !ck.doms || !args) {
        rc = fail_unknown(&ck, "out of memory");
        goto out;
    }
    for (int i = optind; i < argc; i++) {
        const char *reason = NULL;
        char *nm = names[ck.ndoms];
        if (input_normalize(argv[i], strlen(argv[i]), nm, &reason) < 0) {
            rc = usage_error(nagios, "'%s' is not a domain name: %s", argv[i], reason);
            goto out;
        }
        int dup = 0;
        for (int j = 0; j < ck.ndoms && !dup; j++) {
            dup = strcmp(list[j], nm) == 0;
        }
        if (!dup) {
            list[ck.ndoms] = nm;
            ck.doms[ck.ndoms].name = nm;
            ck.ndoms++;
        }
    }
    c.domains = list;
    c.ndomains = ck.ndoms;
    c.arguments_json = args;
    const char *nc = getenv("NO_COLOR"), *term = getenv("TERM");
    ck.color = (ck.mode == MODE_HUMAN || ck.mode == MODE_QUIET) && !ck.no_color && !(nc && *nc) &&
               !(term && strcmp(term, "dumb") == 0) && isatty(STDOUT_FILENO);
    rc = run_check(&ck, &c, args);
out:
    tmp_remove();
    free(args);
    free(ck.doms);
    free(list);
    free(names);
    return rc;
}
