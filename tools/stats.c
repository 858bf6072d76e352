/*
 * stats.c - `mxscan stats`: the aggregate statistics of one scan, as
 * aligned tables for a terminal, one JSON object, or CSV.
 *
 * The numbers are not computed here: each statistic is an SQL view of the
 * results database (db/migrations/003_stats.sql, documented in
 * docs/tool-stats.md), and this command runs `SELECT * FROM <view> WHERE
 * scan_id = ?` for each and formats the rows. A user at the sqlite3 prompt
 * therefore gets exactly the numbers the tool prints. The database is opened
 * with db_open(), which migrates a file written by an older mxscan (adding
 * the views); after that the connection is made query-only, so no scan data
 * is ever written. A file that is not an mxscan database is refused before
 * db_open() touches it.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "db/db.h"
#include "scanner/strbuf.h"
#include "tools/tools.h"

/* "mxsc", as db.c marks its files (PRAGMA application_id). */
#define MXSCAN_APPLICATION_ID 0x6d787363

enum {
    DEFAULT_TOP = 10,      /* MX providers listed unless --top says otherwise */
    PROGRESS_UNIT = 64,    /* progress_t redraws on multiples of 64: one view = 64 */
    PROGRESS_OPS = 100000, /* SQLite VM steps between progress redraw checks */
    CACHE_KIB = 65536,     /* page cache of the connection while the views run */
    MAX_COLS = 8,          /* columns of a table */
};

enum format { FMT_TABLE, FMT_JSON, FMT_CSV };

/* Which population a statistic's shares are of, for the table heading. */
enum base {
    BASE_ALL,     /* all domains, all MX hosts */
    BASE_MX,      /* domains with MX hosts, all MX hosts */
    BASE_REACHED, /* domains with a reached MX host, reached MX hosts */
    BASE_TLS,     /* domains with an MX host with TLS, MX hosts with TLS */
    BASE_RUA,     /* domains with a valid TLSRPT record, their MX hosts */
};

/* One statistic: a view and how to present it. */
struct stat_def {
    const char *name;  /* JSON key, CSV statistic */
    const char *view;  /* the SQL view */
    const char *title; /* table heading */
    const char *what;  /* table heading of the key column */
    enum base base;
    int top; /* rows limited by --top */
};

static const struct stat_def stat_defs[] = {
    {"overview", "stats_overview", "Overview", "", BASE_ALL, 0},
    {"posture", "stats_posture", "Domains by posture", "posture", BASE_ALL, 0},
    {"mx_kind", "stats_mx_kind", "MX records (null MX: RFC 7505, implicit MX: RFC 5321 5.1)",
     "kind", BASE_ALL, 0},
    {"starttls", "stats_starttls", "STARTTLS", "", BASE_REACHED, 0},
    {"tls_version", "stats_tls_version", "TLS versions", "version", BASE_TLS, 0},
    {"tls_cipher", "stats_tls_cipher", "TLS ciphers", "cipher", BASE_TLS, 0},
    {"tls_group", "stats_tls_group", "Key-exchange groups", "group", BASE_TLS, 0},
    {"grade", "stats_grade", "TLS grades", "grade", BASE_TLS, 0},
    {"cert_problems", "stats_cert_problems", "Certificate problems", "code", BASE_TLS, 0},
    {"dane", "stats_dane", "DANE (RFC 7672), per MX host", "", BASE_MX, 0},
    {"mta_sts", "stats_mta_sts", "MTA-STS (RFC 8461)", "", BASE_ALL, 0},
    {"tlsrpt", "stats_tlsrpt", "TLSRPT (RFC 8460)", "", BASE_ALL, 0},
    {"tlsrpt_rua_scheme", "stats_tlsrpt_rua_scheme", "TLSRPT reporting URI schemes", "scheme",
     BASE_RUA, 0},
    {"mx_provider", "stats_mx_provider",
     "MX providers by domains that depend on them (registered domain of the MX host)", "provider",
     BASE_MX, 1},
    {"top5_share", "stats_top5_share", "What the top 5 providers decide", "", BASE_MX, 0},
};
#define N_STATS (sizeof(stat_defs) / sizeof(stat_defs[0]))

/* The command line, parsed. */
struct opts {
    const char *path;
    int64_t scan_id; /* 0: the latest done or interrupted scan */
    enum format format;
    int top;
    int quiet;
};

/* A table being built: rows of formatted cells, aligned when printed. */
struct table {
    int ncols;
    const char *head[MAX_COLS];
    int right[MAX_COLS]; /* right-aligned (numbers) */
    char **cells;        /* nrows * ncols strings */
    size_t nrows, cap;
};

/* Prints the usage of `mxscan stats`. */
static void usage(FILE *f)
{
    fprintf(f,
            "usage: mxscan stats DB [--scan ID] [--format table|json|csv] [--top N] [-q]\n"
            "\n"
            "Prints the aggregate statistics of one scan in the results database DB:\n"
            "domains scanned and by posture, MX kinds (MX, null MX, implicit MX), MX\n"
            "hosts and endpoints, STARTTLS support, the distributions of TLS versions,\n"
            "ciphers, key-exchange groups and grades, certificate problems by code,\n"
            "DANE, MTA-STS, TLSRPT and its rua schemes, and the MX providers that the\n"
            "most domains depend on with the share the top 5 decide.\n"
            "\n"
            "Every percentage is given twice: domain-weighted (the share of domains\n"
            "that show the value) and unique-MX-host-weighted (the share of MX host\n"
            "names). Each statistic is an SQL view in the database, so the sqlite3\n"
            "prompt gives the same numbers:\n"
            "  SELECT * FROM stats_posture WHERE scan_id = 1 ORDER BY rank;\n"
            "The views and their exact definitions: docs/tool-stats.md.\n"
            "\n"
            "options:\n"
            "      --scan ID        the scan (default: the latest one that is done or\n"
            "                       interrupted)\n"
            "  -f, --format FMT     table (default): aligned tables, one per statistic;\n"
            "                       json: one object with a key per statistic, each an\n"
            "                       array of row objects (every column of the view);\n"
            "                       csv: statistic,key,count,domain_share,host_share\n"
            "      --top N          MX providers listed (default %d; 0 = all)\n"
            "  -q, --quiet          no progress display\n"
            "  -h, --help           this help\n"
            "\n"
            "A database written by an older mxscan is migrated to the current schema\n"
            "when opened (that adds the views); no scan data is written.\n"
            "\n"
            "Exit status: 0 done, 1 error (no such file, not an mxscan database, no such\n"
            "scan), 2 bad usage.\n",
            DEFAULT_TOP);
}

/* Parses the flags into o; returns -1 (after a message) on bad usage, 1
 * after --help, 0 to go on. */
static int parse_args(int argc, char **argv, struct opts *o)
{
    enum { O_SCAN = 256, O_TOP };
    static const struct option longopts[] = {
        {"scan", required_argument, NULL, O_SCAN}, {"format", required_argument, NULL, 'f'},
        {"top", required_argument, NULL, O_TOP},   {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    int c;

    memset(o, 0, sizeof(*o));
    o->top = DEFAULT_TOP;
    optind = 1;
    while ((c = getopt_long(argc, argv, "f:qh", longopts, NULL)) != -1) {
        char *end;
        long long n;

        switch (c) {
        case O_SCAN:
            errno = 0;
            n = strtoll(optarg, &end, 10);
            if (errno || end == optarg || *end || n < 1) {
                fprintf(stderr,
                        "mxscan stats: --scan wants a scan id (a whole number from 1), "
                        "not '%s'\n",
                        optarg);
                return -1;
            }
            o->scan_id = n;
            break;
        case 'f':
            if (strcmp(optarg, "table") == 0) {
                o->format = FMT_TABLE;
            } else if (strcmp(optarg, "json") == 0) {
                o->format = FMT_JSON;
            } else if (strcmp(optarg, "csv") == 0) {
                o->format = FMT_CSV;
            } else {
                fprintf(stderr, "mxscan stats: --format is table, json or csv, not '%s'\n", optarg);
                return -1;
            }
            break;
        case O_TOP:
            errno = 0;
            n = strtoll(optarg, &end, 10);
            if (errno || end == optarg || *end || n < 0 || n > INT_MAX) {
                fprintf(stderr, "mxscan stats: --top wants a whole number (0 = all), not '%s'\n",
                        optarg);
                return -1;
            }
            o->top = (int)n;
            break;
        case 'q':
            o->quiet = 1;
            break;
        case 'h':
            usage(stdout);
            return 1;
        default:
            return -1;
        }
    }
    if (optind >= argc) {
        fprintf(stderr, "mxscan stats: no database given\n");
        return -1;
    }
    if (argc - optind > 1) {
        fprintf(stderr, "mxscan stats: one database only, not '%s' as well\n", argv[optind + 1]);
        return -1;
    }
    o->path = argv[optind];
    return 0;
}

/* Refuses, without writing to it, a file that is missing or is not an
 * mxscan database: db_open() would create the one and switch the other to
 * WAL mode before looking. Returns 0 to go on, -1 after a message. A file
 * that cannot be read here is left for db_open() to report. */
static int check_file(const char *path)
{
    struct stat stbuf;
    sqlite3 *c = NULL;
    sqlite3_stmt *st = NULL;
    int64_t app_id = -1;
    int rc;

    if (stat(path, &stbuf) != 0) {
        fprintf(stderr, "mxscan stats: %s: %s\n", path,
                errno == ENOENT ? "no such file" : strerror(errno));
        return -1;
    }
    if (S_ISDIR(stbuf.st_mode)) {
        fprintf(stderr, "mxscan stats: %s: is a directory, not a database\n", path);
        return -1;
    }
    if (stbuf.st_size == 0) {
        fprintf(stderr, "mxscan stats: %s: not an mxscan database (empty file)\n", path);
        return -1;
    }
    rc = sqlite3_open_v2(path, &c, SQLITE_OPEN_READONLY, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_prepare_v2(c, "PRAGMA application_id", -1, &st, NULL);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            app_id = sqlite3_column_int64(st, 0);
            rc = SQLITE_OK;
        }
    }
    sqlite3_finalize(st);
    sqlite3_close(c);
    if (rc == SQLITE_NOTADB) {
        fprintf(stderr, "mxscan stats: %s: not an mxscan database (not an SQLite file)\n", path);
        return -1;
    }
    if (rc == SQLITE_OK && app_id != MXSCAN_APPLICATION_ID) {
        fprintf(stderr,
                "mxscan stats: %s: not an mxscan database (application_id 0x%llx, not "
                "0x%x)\n",
                path, (unsigned long long)app_id, MXSCAN_APPLICATION_ID);
        return -1;
    }
    return 0;
}

/* Picks the scan: the one asked for, which must exist, or the latest that
 * is done or interrupted. Returns its id, or 0 after a message. */
static int64_t pick_scan(sqlite3 *db, const struct opts *o)
{
    int64_t id = 0, any = 0;
    int r;

    if (o->scan_id != 0) {
        r = tools_query_int(db, "SELECT id FROM scans WHERE id = ?", o->scan_id, 0, &id);
        if (r == 0) {
            int64_t lo = 0, hi = 0;
            if (tools_query_int(db, "SELECT min(id) FROM scans", 0, 0, &lo) == 1 &&
                tools_query_int(db, "SELECT max(id) FROM scans", 0, 0, &hi) == 1 && hi > 0) {
                fprintf(stderr, "mxscan stats: %s: no scan with id %lld (ids %lld to %lld)\n",
                        o->path, (long long)o->scan_id, (long long)lo, (long long)hi);
            } else {
                fprintf(stderr, "mxscan stats: %s: no scan with id %lld (the file has no scans)\n",
                        o->path, (long long)o->scan_id);
            }
            return 0;
        }
    } else {
        r = tools_query_int(db,
                            "SELECT id FROM scans WHERE status IN ('done', 'interrupted') "
                            "ORDER BY id DESC LIMIT 1",
                            0, 0, &id);
        if (r == 0) {
            if (tools_query_int(db, "SELECT max(id) FROM scans", 0, 0, &any) == 1 && any > 0) {
                fprintf(stderr,
                        "mxscan stats: %s: no scan is done or interrupted (the latest, %lld, "
                        "is still running or failed); name one with --scan ID\n",
                        o->path, (long long)any);
            } else {
                fprintf(stderr, "mxscan stats: %s: the file has no scans\n", o->path);
            }
            return 0;
        }
    }
    if (r < 0) {
        fprintf(stderr, "mxscan stats: %s: %s\n", o->path, sqlite3_errmsg(db));
        return 0;
    }
    return id;
}

/* The SQLite progress callback: lets the progress line redraw (and show its
 * rate and ETA) while one long view runs. Never interrupts. */
static int on_progress(void *arg)
{
    progress_add(arg, 0);
    return 0;
}

/* Appends a number the way JSON and CSV want it: integers as such, reals
 * in as few digits as give the same double back. NULL (and a non-finite
 * real) appends null_text. */
static void put_number(strbuf_t *sb, sqlite3_stmt *st, int col, const char *null_text)
{
    switch (sqlite3_column_type(st, col)) {
    case SQLITE_INTEGER:
        sb_printf(sb, "%lld", (long long)sqlite3_column_int64(st, col));
        break;
    case SQLITE_FLOAT: {
        /* The shortest of 15, 16 or 17 digits that reads back as the same
         * double, so that JSON and CSV carry exactly what the view says. */
        double d = sqlite3_column_double(st, col);
        char buf[32];
        if (!isfinite(d)) {
            sb_puts(sb, null_text);
            break;
        }
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(buf, sizeof(buf), "%.*g", prec, d);
            if (strtod(buf, NULL) == d) {
                break;
            }
        }
        sb_puts(sb, buf);
        break;
    }
    case SQLITE_NULL:
        sb_puts(sb, null_text);
        break;
    default: {
        /* Views return numbers; a text value is passed on as it is. */
        const char *s = (const char *)sqlite3_column_text(st, col);
        sb_puts(sb, s ? s : null_text);
        break;
    }
    }
}

/* Appends one CSV field, quoted when it holds a comma, quote or line end
 * (RFC 4180). */
static void put_csv_field(strbuf_t *sb, const char *s)
{
    if (strpbrk(s, ",\"\r\n") == NULL) {
        sb_puts(sb, s);
        return;
    }
    sb_putc(sb, '"');
    for (; *s; s++) {
        if (*s == '"') {
            sb_putc(sb, '"');
        }
        sb_putc(sb, *s);
    }
    sb_putc(sb, '"');
}

/* The index of a result column by name, or -1. */
static int col_index(sqlite3_stmt *st, const char *name)
{
    for (int i = 0; i < sqlite3_column_count(st); i++) {
        if (strcmp(sqlite3_column_name(st, i), name) == 0) {
            return i;
        }
    }
    return -1;
}

/* Appends one row of a view as a JSON object of all its columns but
 * scan_id (and the tool's own columns, named with a leading underscore). */
static void json_row(strbuf_t *sb, sqlite3_stmt *st)
{
    int first = 1;

    sb_putc(sb, '{');
    for (int i = 0; i < sqlite3_column_count(st); i++) {
        const char *name = sqlite3_column_name(st, i);
        if (strcmp(name, "scan_id") == 0 || name[0] == '_') {
            continue;
        }
        if (!first) {
            sb_puts(sb, ", ");
        }
        first = 0;
        sb_json_str(sb, name, strlen(name));
        sb_puts(sb, ": ");
        if (sqlite3_column_type(st, i) == SQLITE_TEXT) {
            sb_json_str(sb, (const char *)sqlite3_column_text(st, i),
                        (size_t)sqlite3_column_bytes(st, i));
        } else {
            put_number(sb, st, i, "null");
        }
    }
    sb_putc(sb, '}');
}

/* Appends one row of a view as a CSV line of the statistic. */
static void csv_row(strbuf_t *sb, sqlite3_stmt *st, const char *stat, const int *ix)
{
    const char *key = ix[0] >= 0 ? (const char *)sqlite3_column_text(st, ix[0]) : NULL;

    put_csv_field(sb, stat);
    sb_putc(sb, ',');
    put_csv_field(sb, key ? key : "");
    for (int k = 1; k < 4; k++) {
        sb_putc(sb, ',');
        if (ix[k] >= 0) {
            put_number(sb, st, ix[k], "");
        }
    }
    sb_putc(sb, '\n');
}

/* Adds a row of cells (copied) to a table; returns -1 when out of memory. */
static int table_add(struct table *t, char *const *cells)
{
    if (t->nrows == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        char **p = realloc(t->cells, cap * (size_t)t->ncols * sizeof(*p));
        if (p == NULL) {
            return -1;
        }
        t->cells = p;
        t->cap = cap;
    }
    for (int i = 0; i < t->ncols; i++) {
        char *c = strdup(cells[i] ? cells[i] : "");
        if (c == NULL) {
            for (int j = 0; j < i; j++) {
                free(t->cells[t->nrows * (size_t)t->ncols + (size_t)j]);
            }
            return -1;
        }
        t->cells[t->nrows * (size_t)t->ncols + (size_t)i] = c;
    }
    t->nrows++;
    return 0;
}

/* Appends the table, columns padded to their widest cell, indented by two. */
static void table_print(strbuf_t *sb, const struct table *t)
{
    size_t w[MAX_COLS];

    for (int i = 0; i < t->ncols; i++) {
        w[i] = strlen(t->head[i]);
        for (size_t r = 0; r < t->nrows; r++) {
            size_t n = strlen(t->cells[r * (size_t)t->ncols + (size_t)i]);
            w[i] = n > w[i] ? n : w[i];
        }
    }
    for (size_t r = 0; r <= t->nrows; r++) {
        size_t start = sb->len;
        sb_puts(sb, " ");
        for (int i = 0; i < t->ncols; i++) {
            const char *s = r == 0 ? t->head[i] : t->cells[(r - 1) * (size_t)t->ncols + (size_t)i];
            sb_printf(sb, t->right[i] ? " %*s" : " %-*s", (int)w[i], s);
        }
        /* No trailing blanks. */
        while (sb->len > start && sb->s[sb->len - 1] == ' ') {
            sb->s[--sb->len] = 0;
        }
        sb_putc(sb, '\n');
    }
}

/* Frees the cells of a table. */
static void table_free(struct table *t)
{
    for (size_t i = 0; i < t->nrows * (size_t)t->ncols; i++) {
        free(t->cells[i]);
    }
    free(t->cells);
    memset(t, 0, sizeof(*t));
}

/* Formats a cell of a table: a count, or a share as a percentage with one
 * decimal; empty when NULL. */
static void cell_text(char *buf, size_t len, sqlite3_stmt *st, int col, int pct)
{
    buf[0] = 0;
    if (col < 0 || sqlite3_column_type(st, col) == SQLITE_NULL) {
        return;
    }
    if (pct) {
        snprintf(buf, len, "%.1f%%", sqlite3_column_double(st, col));
    } else if (sqlite3_column_type(st, col) == SQLITE_INTEGER) {
        snprintf(buf, len, "%lld", (long long)sqlite3_column_int64(st, col));
    } else {
        snprintf(buf, len, "%s", (const char *)sqlite3_column_text(st, col));
    }
}

/* The heading of a table: the statistic and what its shares are of (not
 * known, and not shown, when dbase < 0: the view had no rows). */
static void table_heading(strbuf_t *sb, const struct stat_def *d, int64_t dbase, int64_t hbase,
                          int top)
{
    static const char *const of[][2] = {
        [BASE_ALL] = {"domains", "MX hosts"},
        [BASE_MX] = {"domains with MX hosts", "MX hosts"},
        [BASE_REACHED] = {"domains with a reached MX host", "reached MX hosts"},
        [BASE_TLS] = {"domains with an MX host that did TLS", "MX hosts that did TLS"},
        [BASE_RUA] = {"domains with a valid TLSRPT record", "MX hosts serving them"},
    };

    sb_printf(sb, "\n%s", d->title);
    if (d->top && top > 0) {
        sb_printf(sb, ", top %d", top);
    }
    sb_putc(sb, '\n');
    if (dbase >= 0) {
        sb_printf(sb, "  (%% of %lld %s / of %lld %s)\n", (long long)dbase, of[d->base][0],
                  (long long)hbase, of[d->base][1]);
    }
}

/* Runs one statistic's view for the scan and appends it in the chosen
 * format. Returns 0, or -1 on an SQL error (message printed). */
static int run_stat(sqlite3 *db, const struct stat_def *d, const struct opts *o, int64_t scan,
                    strbuf_t *sb)
{
    char sql[320];
    sqlite3_stmt *st = NULL;
    struct table t;
    int ix[4], dom, dsh, hosts, hsh, dbase, hbase, cnt, rc;
    int64_t db_n = -1, hb_n = -1;
    int nrows = 0, limit = d->top && o->top > 0;
    int overview = strcmp(d->name, "overview") == 0;

    /* The tables show round(share, 1) as SQLite computes it, so that they
     * match the prompt digit for digit. */
    snprintf(sql, sizeof(sql),
             "SELECT *, round(domain_share, 1) AS _domain_pct, round(host_share, 1) AS _host_pct "
             "FROM %s WHERE scan_id = ?1%s ORDER BY rank",
             d->view, limit ? " AND rank <= ?2" : "");
    rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int64(st, 1, scan);
    }
    if (rc == SQLITE_OK && limit) {
        rc = sqlite3_bind_int(st, 2, o->top);
    }
    if (rc != SQLITE_OK) {
        fprintf(stderr, "mxscan stats: %s: view %s: %s\n", o->path, d->view, sqlite3_errmsg(db));
        sqlite3_finalize(st);
        return -1;
    }
    ix[0] = col_index(st, "key");
    ix[1] = cnt = col_index(st, "count");
    ix[2] = col_index(st, "domain_share");
    ix[3] = col_index(st, "host_share");
    dsh = col_index(st, "_domain_pct");
    hsh = col_index(st, "_host_pct");
    dom = col_index(st, "domains");
    hosts = col_index(st, "hosts");
    dbase = col_index(st, "domain_base");
    hbase = col_index(st, "host_base");

    memset(&t, 0, sizeof(t));
    if (overview) {
        static const char *const h[] = {"", "count", "domains", "%", "MX hosts", "%"};
        t.ncols = 6;
        memcpy(t.head, h, sizeof(h));
    } else {
        static const char *const h[] = {"", "domains", "%", "MX hosts", "%"};
        t.ncols = 5;
        memcpy(t.head, h, sizeof(h));
        t.head[0] = d->what;
    }
    for (int i = 1; i < t.ncols; i++) {
        t.right[i] = 1;
    }

    if (o->format == FMT_JSON) {
        sb_printf(sb, ",\n  \"%s\": [", d->name);
    }
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (nrows == 0) {
            db_n = dbase >= 0 ? sqlite3_column_int64(st, dbase) : 0;
            hb_n = hbase >= 0 ? sqlite3_column_int64(st, hbase) : 0;
        }
        if (o->format == FMT_JSON) {
            sb_puts(sb, nrows ? ",\n    " : "\n    ");
            json_row(sb, st);
        } else if (o->format == FMT_CSV) {
            csv_row(sb, st, d->name, ix);
        } else {
            /* The cells after the key: the overview adds its count first. */
            const int spec[][2] = {{cnt, 0}, {dom, 0}, {dsh, 1}, {hosts, 0}, {hsh, 1}};
            const char *key = ix[0] >= 0 ? (const char *)sqlite3_column_text(st, ix[0]) : NULL;
            char c[MAX_COLS][64];
            char *cells[MAX_COLS];
            int k = 0;

            cells[k++] = (char *)(key ? key : "");
            for (size_t s = overview ? 0 : 1; s < sizeof(spec) / sizeof(spec[0]); s++, k++) {
                cell_text(c[k], sizeof(c[k]), st, spec[s][0], spec[s][1]);
                cells[k] = c[k];
            }
            if (table_add(&t, cells) < 0) {
                sb->oom = 1;
            }
        }
        nrows++;
    }
    if (rc != SQLITE_DONE) {
        fprintf(stderr, "mxscan stats: %s: view %s: %s\n", o->path, d->view, sqlite3_errmsg(db));
        sqlite3_finalize(st);
        table_free(&t);
        return -1;
    }
    sqlite3_finalize(st);

    if (o->format == FMT_JSON) {
        sb_puts(sb, nrows ? "\n  ]" : "]");
    } else if (o->format == FMT_TABLE) {
        table_heading(sb, d, db_n, hb_n, o->top);
        if (nrows == 0) {
            sb_puts(sb, "  (none)\n");
        } else {
            table_print(sb, &t);
        }
    }
    table_free(&t);
    return 0;
}

/* Appends the scan's own row: as the "scan" object of the JSON, or as the
 * first line of the tables. CSV has none. */
static int scan_header(sqlite3 *db, const struct opts *o, int64_t scan, strbuf_t *sb)
{
    static const char *const sql =
        "SELECT id, status, started_at, ended_at, version, domains, elapsed_s "
        "FROM scans WHERE id = ?";
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

    if (rc == SQLITE_OK) {
        rc = sqlite3_bind_int64(st, 1, scan);
    }
    if (rc == SQLITE_OK && sqlite3_step(st) != SQLITE_ROW) {
        rc = SQLITE_ERROR;
    }
    if (rc != SQLITE_OK) {
        fprintf(stderr, "mxscan stats: %s: %s\n", o->path, sqlite3_errmsg(db));
        sqlite3_finalize(st);
        return -1;
    }
    if (o->format == FMT_JSON) {
        sb_puts(sb, "{\n  \"scan\": {");
        for (int i = 0; i < sqlite3_column_count(st); i++) {
            const char *name = sqlite3_column_name(st, i);
            sb_puts(sb, i ? ", " : "");
            sb_json_str(sb, name, strlen(name));
            sb_puts(sb, ": ");
            if (sqlite3_column_type(st, i) == SQLITE_TEXT) {
                sb_json_str(sb, (const char *)sqlite3_column_text(st, i),
                            (size_t)sqlite3_column_bytes(st, i));
            } else {
                put_number(sb, st, i, "null");
            }
        }
        sb_putc(sb, '}');
    } else if (o->format == FMT_TABLE) {
        const char *started = (const char *)sqlite3_column_text(st, 2);
        sb_printf(sb, "mxscan stats: %s, scan %lld (%s), started %s, %lld domains\n", o->path,
                  (long long)scan, (const char *)sqlite3_column_text(st, 1),
                  started ? started : "?", (long long)sqlite3_column_int64(st, 5));
    } else {
        sb_puts(sb, "statistic,key,count,domain_share,host_share\n");
    }
    sqlite3_finalize(st);
    return 0;
}

/* Runs every statistic into sb, with a progress line while it works. */
static int run_all(sqlite3 *db, const struct opts *o, int64_t scan, strbuf_t *sb)
{
    progress_t p;
    int ret = 0;

    if (scan_header(db, o, scan, sb) < 0) {
        return -1;
    }
    progress_start(&p, "computing statistics", (uint64_t)N_STATS * PROGRESS_UNIT, o->quiet);
    sqlite3_progress_handler(db, PROGRESS_OPS, on_progress, &p);
    for (size_t i = 0; i < N_STATS && ret == 0; i++) {
        ret = run_stat(db, &stat_defs[i], o, scan, sb);
        progress_add(&p, PROGRESS_UNIT);
    }
    sqlite3_progress_handler(db, 0, NULL, NULL);
    progress_end(&p);
    if (ret == 0 && o->format == FMT_JSON) {
        sb_puts(sb, "\n}\n");
    }
    return ret;
}

/* `mxscan stats DB [--scan ID] [--format table|json|csv] [--top N] [-q]`. */
int cmd_stats(int argc, char **argv)
{
    struct opts o;
    char err[512];
    strbuf_t sb;
    db_t *db;
    sqlite3 *conn;
    int64_t scan;
    int r = parse_args(argc, argv, &o);

    if (r != 0) {
        if (r < 0) {
            fprintf(stderr, "try 'mxscan stats --help'\n");
        }
        return r < 0 ? 2 : 0;
    }
    if (check_file(o.path) < 0) {
        return 1;
    }
    db = db_open(o.path, err, sizeof(err));
    if (db == NULL) {
        fprintf(stderr, "mxscan stats: %s\n", err);
        return 1;
    }
    conn = db_handle(db);
    /* From here on, nothing may write: the views only read. */
    sqlite3_exec(conn, "PRAGMA query_only = ON", NULL, NULL, NULL);
    {
        char pragma[64];
        snprintf(pragma, sizeof(pragma), "PRAGMA cache_size = -%d", CACHE_KIB);
        sqlite3_exec(conn, pragma, NULL, NULL, NULL);
    }
    scan = pick_scan(conn, &o);
    if (scan == 0) {
        db_close(db);
        return 1;
    }
    sb_init(&sb);
    r = run_all(conn, &o, scan, &sb);
    db_close(db);
    if (r == 0 && sb.oom) {
        fprintf(stderr, "mxscan stats: out of memory\n");
        r = -1;
    }
    if (r == 0) {
        if (fwrite(sb.s, 1, sb.len, stdout) != sb.len || fflush(stdout) != 0) {
            fprintf(stderr, "mxscan stats: writing the output: %s\n", strerror(errno));
            r = -1;
        }
    }
    sb_free(&sb);
    return r == 0 ? 0 : 1;
}
