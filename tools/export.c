/*
 * export.c - `mxscan export`: one scan out of the results database, as JSON
 * lines (one object per domain with its MX hosts, their TLSA records and
 * endpoints, the certificates on request, and every finding nested; or one
 * object per row of a table), as CSV (one table, RFC 4180), or as the
 * RFC 8460 (SMTP TLS Reporting) report a sending MTA would write about one
 * policy domain after delivering to it the way the scan did.
 *
 * SQLite writes the JSON: each domain's object comes out of one statement
 * (json_object over correlated subqueries), and rows are stepped and
 * written one at a time, so memory stays flat whatever the size of the
 * scan. Column lists are read from the schema (pragma_table_info), so a
 * column added by a later migration is exported without a change here.
 * Certificates become PEM through an application function, pem_chain(),
 * that OpenSSL backs (d2i_X509, PEM_write_bio_X509).
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <sqlite3.h>

#include "db/db.h"
#include "tools/tools.h"

enum { FMT_JSONL, FMT_CSV };

typedef struct export_opts {
    const char *db_path;
    const char *out_path; /* NULL: stdout */
    const char *table;    /* NULL: nested per-domain JSON (jsonl), domains (csv) */
    const char *tlsrpt;   /* policy domain of an RFC 8460 report */
    const char *contact;
    int format;
    int64_t scan_id; /* 0: the latest */
    int pem;
    int quiet;
} export_opts_t;

/* The tables that can be exported flat, the column that holds the scan id
 * and an order that the primary key or an index gives without sorting. */
static const struct export_table {
    const char *name;
    const char *scan_col;
    const char *order_by;
} tables[] = {
    {"domains", "scan_id", "domain"},   {"mx", "scan_id", "domain, host"},
    {"hosts", "scan_id", "host"},       {"endpoints", "scan_id", "host, ip, port"},
    {"findings", "scan_id", "id"},      {"rejected", "scan_id", "line"},
    {"tlsa", "scan_id", "host, rowid"}, {"mta_sts", "scan_id", "domain"},
    {"tlsrpt", "scan_id", "domain"},    {"scans", "id", "id"},
};

/* TEXT columns that hold JSON (db/schema.sql, db/migrations): embedded as
 * JSON values in JSON output, kept as text in CSV. */
static const char *const json_columns[] = {
    "scans.arguments",      "hosts.addresses",         "endpoints.ehlo_before",
    "endpoints.ehlo_after", "endpoints.verify_errors", "endpoints.cert_names",
    "endpoints.grade_caps", "endpoints.enum_versions", "mta_sts.mx",
    "tlsrpt.rua",
};

/* json_object() and json_insert() take at most SQLITE_MAX_FUNCTION_ARG
 * (127 by default) arguments: an object with more members is built in
 * chunks of this many. */
#define PAIRS_PER_CALL 48

/* Prints the usage of `mxscan export`. */
static void usage(FILE *f)
{
    fprintf(f, "usage: mxscan export DB [--format jsonl|csv] [--table TABLE] [--scan ID]\n"
               "                        [--pem] [-o FILE] [-q]\n"
               "       mxscan export DB --tlsrpt DOMAIN [--contact TEXT] [--scan ID] [-o FILE]\n"
               "\n"
               "Writes one scan of a results database as JSON lines or CSV, or the RFC 8460\n"
               "(SMTP TLS Reporting) report a sender would write about one domain after\n"
               "delivering to it the way the scan did. Rows are streamed: memory stays flat\n"
               "whatever the size of the scan.\n"
               "\n"
               "  -f, --format FMT   jsonl (default) or csv\n"
               "                     jsonl without --table: one JSON object per domain (by\n"
               "                     name) with its MX hosts, their TLSA records and endpoints\n"
               "                     (TLS, certificate and grade facts), its MTA-STS and TLSRPT\n"
               "                     records and every finding that concerns it, nested\n"
               "  -t, --table TABLE  one JSON object (jsonl) or one CSV line per row of TABLE:\n"
               "                     domains, mx, hosts, endpoints, findings, rejected, tlsa,\n"
               "                     mta_sts, tlsrpt or scans (csv default: domains). CSV has a\n"
               "                     header line of column names, RFC 4180 quoting and CRLF\n"
               "                     line ends; NULL is an empty field, an empty text \"\".\n"
               "                     BLOB columns (chain_der, ocsp_der) are left out\n"
               "      --scan ID      the scan to export (default: the latest)\n"
               "      --pem          add each endpoint's certificate chain, leaf first, as PEM\n"
               "                     text (chain_pem, in place of chain_der); for the per-domain\n"
               "                     JSON lines and the endpoints table\n"
               "      --tlsrpt DOMAIN\n"
               "                     write one RFC 8460 report (JSON) about DOMAIN: policy type\n"
               "                     sts (valid MTA-STS policy in enforce or testing mode), else\n"
               "                     tlsa (an MX host has TLSA records or a bogus TLSA answer),\n"
               "                     else no-policy-found; one session per endpoint that got\n"
               "                     past EHLO; failure details from the findings that carry an\n"
               "                     RFC 8460 result type (certificate-* ones under sts only)\n"
               "      --contact TEXT contact-info of the report (default: mxscan)\n"
               "  -o, --output FILE  write to FILE instead of stdout\n"
               "  -q, --quiet        no progress line (shown on stderr when it is a terminal and\n"
               "                     the export takes over a second)\n"
               "  -h, --help         this help\n"
               "\n"
               "Exit status: 0 done, 1 error (database, scan or domain not found, write\n"
               "failed), 2 bad usage.\n");
}

/* Prints an error message prefixed with the command's name. */
static void errorf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void errorf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("mxscan export: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

/* pem_chain(BLOB): the concatenated DER certificates of chain_der as PEM
 * text, leaf first; NULL when the value is not a BLOB or holds no
 * certificate. A chain cut short by an unparsable certificate gives the
 * certificates before it. */
static void pem_chain_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
    (void)argc;
    if (sqlite3_value_type(argv[0]) != SQLITE_BLOB) {
        sqlite3_result_null(ctx);
        return;
    }
    const unsigned char *p = sqlite3_value_blob(argv[0]);
    int nbytes = sqlite3_value_bytes(argv[0]);
    if (p == NULL || nbytes <= 0) {
        sqlite3_result_null(ctx);
        return;
    }
    const unsigned char *end = p + nbytes;
    BIO *bio = BIO_new(BIO_s_mem());
    if (bio == NULL) {
        sqlite3_result_error_nomem(ctx);
        return;
    }
    int n = 0;
    while (p < end) {
        X509 *x = d2i_X509(NULL, &p, end - p);
        if (x == NULL) {
            break;
        }
        int ok = PEM_write_bio_X509(bio, x);
        X509_free(x);
        if (!ok) {
            break;
        }
        n++;
    }
    ERR_clear_error();
    char *text;
    long len = BIO_get_mem_data(bio, &text);
    if (n > 0 && len > 0) {
        sqlite3_result_text(ctx, text, (int)len, SQLITE_TRANSIENT);
    } else {
        sqlite3_result_null(ctx);
    }
    BIO_free(bio);
}

/*
 * The members of one JSON object (or the columns of one CSV line) being
 * assembled: keys and SQL expressions, alternately, allocated with
 * sqlite3_mprintf.
 */
typedef struct pairs {
    char **v;
    size_t n, cap;
    int oom;
} pairs_t;

/* Appends a key and an SQL expression (printf-style, with SQLite's %q %Q %w). */
static void pairs_add(pairs_t *p, const char *key, const char *fmt, ...)
{
    if (p->oom) {
        return;
    }
    if (p->n + 2 > p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 32;
        char **v = realloc(p->v, cap * sizeof *v);
        if (v == NULL) {
            p->oom = 1;
            return;
        }
        p->v = v;
        p->cap = cap;
    }
    va_list ap;
    va_start(ap, fmt);
    char *expr = sqlite3_vmprintf(fmt, ap);
    va_end(ap);
    char *k = sqlite3_mprintf("%s", key);
    if (expr == NULL || k == NULL) {
        sqlite3_free(expr);
        sqlite3_free(k);
        p->oom = 1;
        return;
    }
    p->v[p->n++] = k;
    p->v[p->n++] = expr;
}

/* Non-zero when key is already a member. */
static int pairs_has(const pairs_t *p, const char *key)
{
    for (size_t i = 0; i < p->n; i += 2) {
        if (strcmp(p->v[i], key) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Frees the members. */
static void pairs_free(pairs_t *p)
{
    for (size_t i = 0; i < p->n; i++) {
        sqlite3_free(p->v[i]);
    }
    free(p->v);
    memset(p, 0, sizeof *p);
}

/* The SQL expression of a JSON object of the members: one json_object()
 * call, or json_insert() calls around it when there are too many members
 * for one call. NULL when out of memory. */
static char *pairs_json(const pairs_t *p)
{
    size_t npairs = p->n / 2;
    size_t calls = npairs <= PAIRS_PER_CALL ? 1 : (npairs + PAIRS_PER_CALL - 1) / PAIRS_PER_CALL;
    sqlite3_str *s = sqlite3_str_new(NULL);
    for (size_t c = 1; c < calls; c++) {
        sqlite3_str_appendall(s, "json_insert(");
    }
    sqlite3_str_appendall(s, "json_object(");
    for (size_t i = 0; i < npairs; i++) {
        const char *key = p->v[2 * i], *expr = p->v[2 * i + 1];
        if (i > 0 && i % PAIRS_PER_CALL == 0) {
            sqlite3_str_appendall(s, "), ");
        } else if (i > 0) {
            sqlite3_str_appendall(s, ", ");
        }
        if (i < PAIRS_PER_CALL) {
            sqlite3_str_appendf(s, "%Q, %s", key, expr);
        } else {
            /* A JSON path names the member; quoted, so any key is safe. */
            sqlite3_str_appendf(s, "'$.\"%q\"', %s", key, expr);
        }
    }
    sqlite3_str_appendall(s, ")");
    return sqlite3_str_finish(s);
}

/* Non-zero when table.column holds JSON text. */
static int is_json_column(const char *table, const char *col)
{
    size_t tl = strlen(table);
    for (size_t i = 0; i < sizeof json_columns / sizeof *json_columns; i++) {
        const char *j = json_columns[i];
        if (strncmp(j, table, tl) == 0 && j[tl] == '.' && strcmp(j + tl + 1, col) == 0) {
            return 1;
        }
    }
    return 0;
}

/* Non-zero when name is in the NULL-terminated list. */
static int in_list(const char *const *list, const char *name)
{
    for (; list != NULL && *list != NULL; list++) {
        if (strcmp(*list, name) == 0) {
            return 1;
        }
    }
    return 0;
}

/*
 * Adds the columns of table (as alias.column) to p, in schema order, but
 * not those in skip nor keys p already has. BLOB columns are left out,
 * except chain_der with pem, which becomes chain_pem. With json, columns
 * that hold JSON are embedded as JSON (text that is not valid JSON stays a
 * string). Returns 0, or -1 with a message.
 */
static int add_columns(sqlite3 *db, pairs_t *p, const char *table, const char *alias,
                       const char *const *skip, int pem, int json)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, "SELECT name, upper(type) FROM pragma_table_info(?1) ORDER BY cid",
                           -1, &st, NULL) != SQLITE_OK) {
        errorf("%s", sqlite3_errmsg(db));
        return -1;
    }
    sqlite3_bind_text(st, 1, table, -1, SQLITE_STATIC);
    int rc, ncols = 0;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        const char *type = (const char *)sqlite3_column_text(st, 1);
        ncols++;
        if (name == NULL || in_list(skip, name) || pairs_has(p, name)) {
            continue;
        }
        if (type != NULL && strcmp(type, "BLOB") == 0) {
            if (pem && strcmp(name, "chain_der") == 0) {
                pairs_add(p, "chain_pem", "pem_chain(%s.\"%w\")", alias, name);
            }
        } else if (json && is_json_column(table, name)) {
            pairs_add(p, name,
                      "CASE WHEN json_valid(%s.\"%w\") THEN json(%s.\"%w\") ELSE %s.\"%w\" END",
                      alias, name, alias, name, alias, name);
        } else {
            pairs_add(p, name, "%s.\"%w\"", alias, name);
        }
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        errorf("%s", sqlite3_errmsg(db));
        return -1;
    }
    if (ncols == 0) {
        errorf("the database has no table %s", table);
        return -1;
    }
    if (p->oom) {
        errorf("out of memory");
        return -1;
    }
    return 0;
}

/* A JSON array, ordered, of the objects "SELECT obj AS j FROM ..." gives;
 * json() keeps them JSON (a subquery drops the JSON subtype). */
static char *json_array_of(const char *obj, const char *from)
{
    return sqlite3_mprintf("json((SELECT json_group_array(json(j)) FROM (SELECT %s AS j %s)))", obj,
                           from);
}

/* Builds the statement of the per-domain JSON lines: parameter ?1 is the
 * scan id, each row one domain's object, by domain name. NULL on error. */
static char *sql_domains(sqlite3 *db, int pem)
{
    static const char *const skip_mx[] = {"scan_id", "domain", NULL};
    static const char *const skip_host[] = {"scan_id", "host", NULL};
    static const char *const skip_find[] = {"id", "scan_id", "domain", NULL};
    /* Members of the domain object that nest other tables: a domains
     * column of the same name (tlsrpt, the validity flag, which is
     * tlsrpt.valid) is left out for the nested object. */
    static const char *const skip_domain[] = {"mx", "mta_sts", "tlsrpt", "findings", NULL};
    pairs_t d = {0}, m = {0}, t = {0}, e = {0}, s = {0}, r = {0}, f = {0};
    char *tlsa_o = NULL, *ep_o = NULL, *mx_o = NULL, *sts_o = NULL, *rpt_o = NULL, *f_o = NULL;
    char *tlsa_a = NULL, *ep_a = NULL, *mx_a = NULL, *f_a = NULL, *d_o = NULL, *sql = NULL;

    if (add_columns(db, &t, "tlsa", "t", skip_host, 0, 1) < 0 ||
        add_columns(db, &e, "endpoints", "e", skip_host, pem, 1) < 0 ||
        add_columns(db, &m, "mx", "m", skip_mx, 0, 1) < 0 ||
        add_columns(db, &m, "hosts", "h", skip_host, 0, 1) < 0 ||
        add_columns(db, &s, "mta_sts", "s", skip_mx, 0, 1) < 0 ||
        add_columns(db, &r, "tlsrpt", "r", skip_mx, 0, 1) < 0 ||
        add_columns(db, &f, "findings", "f", skip_find, 0, 1) < 0 ||
        add_columns(db, &d, "domains", "d", skip_domain, 0, 1) < 0) {
        goto out;
    }
    tlsa_o = pairs_json(&t);
    ep_o = pairs_json(&e);
    if (tlsa_o == NULL || ep_o == NULL) {
        goto oom;
    }
    tlsa_a = json_array_of(tlsa_o, "FROM tlsa t WHERE t.scan_id = m.scan_id AND t.host = m.host "
                                   "ORDER BY t.rowid");
    ep_a = json_array_of(ep_o, "FROM endpoints e WHERE e.scan_id = m.scan_id AND e.host = m.host "
                               "ORDER BY e.ip, e.port");
    if (tlsa_a == NULL || ep_a == NULL) {
        goto oom;
    }
    pairs_add(&m, "tlsa", "%s", tlsa_a);
    pairs_add(&m, "endpoints", "%s", ep_a);
    mx_o = pairs_json(&m);
    sts_o = pairs_json(&s);
    rpt_o = pairs_json(&r);
    f_o = pairs_json(&f);
    if (m.oom || mx_o == NULL || sts_o == NULL || rpt_o == NULL || f_o == NULL) {
        goto oom;
    }
    mx_a = json_array_of(mx_o, "FROM mx m LEFT JOIN hosts h ON h.scan_id = m.scan_id "
                               "AND h.host = m.host WHERE m.scan_id = d.scan_id "
                               "AND m.domain = d.domain ORDER BY m.preference, m.host");
    /* The findings that concern the domain, as the domain_findings view
     * defines them (its own, and those stored once per MX host), written
     * out so that each half uses its index and keeps the id order. CROSS
     * JOIN makes SQLite go from the domain's few MX rows to their findings
     * (findings_host), not through every host finding of the scan. */
    char *f_from = sqlite3_mprintf(
        "FROM (SELECT f.* FROM findings f WHERE f.scan_id = d.scan_id AND f.domain = d.domain "
        "UNION ALL SELECT f.* FROM mx mf CROSS JOIN findings f ON f.scan_id = mf.scan_id "
        "AND f.host = mf.host AND f.domain IS NULL WHERE mf.scan_id = d.scan_id "
        "AND mf.domain = d.domain) f ORDER BY f.id");
    f_a = f_from ? json_array_of(f_o, f_from) : NULL;
    sqlite3_free(f_from);
    if (mx_a == NULL || f_a == NULL) {
        goto oom;
    }
    pairs_add(&d, "mx", "%s", mx_a);
    pairs_add(
        &d, "mta_sts",
        "json((SELECT %s FROM mta_sts s WHERE s.scan_id = d.scan_id AND s.domain = d.domain))",
        sts_o);
    pairs_add(&d, "tlsrpt",
              "json((SELECT %s FROM tlsrpt r WHERE r.scan_id = d.scan_id AND r.domain = d.domain))",
              rpt_o);
    pairs_add(&d, "findings", "%s", f_a);
    d_o = pairs_json(&d);
    if (d.oom || d_o == NULL) {
        goto oom;
    }
    sql = sqlite3_mprintf("SELECT %s FROM domains d WHERE d.scan_id = ?1 ORDER BY d.domain", d_o);
    if (sql == NULL) {
        goto oom;
    }
    goto out;
oom:
    errorf("out of memory");
out:
    pairs_free(&d), pairs_free(&m), pairs_free(&t), pairs_free(&e);
    pairs_free(&s), pairs_free(&r), pairs_free(&f);
    sqlite3_free(tlsa_o), sqlite3_free(ep_o), sqlite3_free(mx_o), sqlite3_free(sts_o);
    sqlite3_free(rpt_o), sqlite3_free(f_o), sqlite3_free(tlsa_a), sqlite3_free(ep_a);
    sqlite3_free(mx_a), sqlite3_free(f_a), sqlite3_free(d_o);
    return sql;
}

/* Looks up a table of the export list by name. */
static const struct export_table *find_table(const char *name)
{
    for (size_t i = 0; i < sizeof tables / sizeof *tables; i++) {
        if (strcmp(tables[i].name, name) == 0) {
            return &tables[i];
        }
    }
    return NULL;
}

/* Writes s (n bytes) as one CSV field (RFC 4180 2.5-2.7): quoted when it
 * holds a comma, a quote or a line break, or is empty (so that an empty
 * text and NULL, an empty field, stay apart); quotes doubled. */
static void csv_field(FILE *out, const char *s, size_t n, int is_null)
{
    if (is_null) {
        return;
    }
    if (n > 0 && strcspn(s, ",\"\r\n") >= n) {
        fwrite(s, 1, n, out);
        return;
    }
    fputc('"', out);
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '"') {
            fputc('"', out);
        }
        fputc(s[i], out);
    }
    fputc('"', out);
}

/* Steps st and writes each row: column 0 as one JSON line, or every
 * column as a CSV line. Returns 0, or -1 with a message. */
static int write_rows(sqlite3 *db, sqlite3_stmt *st, FILE *out, int csv, progress_t *pr)
{
    int rc, ncol = sqlite3_column_count(st);
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        if (csv) {
            for (int i = 0; i < ncol; i++) {
                if (i > 0) {
                    fputc(',', out);
                }
                const char *v = (const char *)sqlite3_column_text(st, i);
                size_t n = (size_t)sqlite3_column_bytes(st, i);
                csv_field(out, v ? v : "", v ? n : 0, sqlite3_column_type(st, i) == SQLITE_NULL);
            }
            fputs("\r\n", out);
        } else {
            const char *v = (const char *)sqlite3_column_text(st, 0);
            fwrite(v ? v : "null", 1, v ? (size_t)sqlite3_column_bytes(st, 0) : 4, out);
            fputc('\n', out);
        }
        if (ferror(out)) {
            errorf("write error: %s", strerror(errno));
            return -1;
        }
        progress_add(pr, 1);
    }
    if (rc != SQLITE_DONE) {
        errorf("%s", sqlite3_errmsg(db));
        return -1;
    }
    return 0;
}

/* Counts the rows of table in the scan, for the progress line. */
static uint64_t count_rows(sqlite3 *db, const struct export_table *t, int64_t scan_id)
{
    sqlite3_stmt *st;
    uint64_t n = 0;
    char *sql =
        sqlite3_mprintf("SELECT count(*) FROM \"%w\" WHERE \"%w\" = ?1", t->name, t->scan_col);
    if (sql != NULL && sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, scan_id);
        if (sqlite3_step(st) == SQLITE_ROW) {
            n = (uint64_t)sqlite3_column_int64(st, 0);
        }
        sqlite3_finalize(st);
    }
    sqlite3_free(sql);
    return n;
}

/* Prepares sql with ?1 bound to the scan id. NULL with a message. */
static sqlite3_stmt *prepare_scan(sqlite3 *db, const char *sql, int64_t scan_id)
{
    sqlite3_stmt *st;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK) {
        errorf("%s", sqlite3_errmsg(db));
        return NULL;
    }
    sqlite3_bind_int64(st, 1, scan_id);
    return st;
}

/* The per-domain JSON lines. */
static int export_domains(sqlite3 *db, const export_opts_t *o, FILE *out)
{
    char *sql = sql_domains(db, o->pem);
    if (sql == NULL) {
        return -1;
    }
    sqlite3_stmt *st = prepare_scan(db, sql, o->scan_id);
    sqlite3_free(sql);
    if (st == NULL) {
        return -1;
    }
    progress_t pr;
    progress_start(&pr, "exporting domains", count_rows(db, find_table("domains"), o->scan_id),
                   o->quiet);
    int rc = write_rows(db, st, out, 0, &pr);
    progress_end(&pr);
    sqlite3_finalize(st);
    return rc;
}

/* One table, flat: a JSON object or a CSV line per row. */
static int export_table(sqlite3 *db, const export_opts_t *o, const struct export_table *t,
                        FILE *out)
{
    pairs_t p = {0};
    int csv = o->format == FMT_CSV;
    if (add_columns(db, &p, t->name, "x", NULL, o->pem, !csv) < 0) {
        pairs_free(&p);
        return -1;
    }
    sqlite3_str *s = sqlite3_str_new(db);
    sqlite3_str_appendall(s, "SELECT ");
    if (csv) {
        for (size_t i = 0; i < p.n; i += 2) {
            sqlite3_str_appendf(s, "%s%s", i ? ", " : "", p.v[i + 1]);
        }
    } else {
        char *obj = pairs_json(&p);
        sqlite3_str_appendall(s, obj ? obj : "NULL");
        sqlite3_free(obj);
    }
    sqlite3_str_appendf(s, " FROM \"%w\" x WHERE x.\"%w\" = ?1 ORDER BY %s", t->name, t->scan_col,
                        t->order_by);
    char *sql = sqlite3_str_finish(s);
    sqlite3_stmt *st = sql ? prepare_scan(db, sql, o->scan_id) : NULL;
    sqlite3_free(sql);
    if (st == NULL) {
        pairs_free(&p);
        return -1;
    }
    if (csv) {
        for (size_t i = 0; i < p.n; i += 2) {
            if (i > 0) {
                fputc(',', out);
            }
            csv_field(out, p.v[i], strlen(p.v[i]), 0);
        }
        fputs("\r\n", out);
    }
    pairs_free(&p);
    char what[64];
    snprintf(what, sizeof what, "exporting %s", t->name);
    progress_t pr;
    progress_start(&pr, what, count_rows(db, t, o->scan_id), o->quiet);
    int rc = write_rows(db, st, out, csv, &pr);
    progress_end(&pr);
    sqlite3_finalize(st);
    return rc;
}

/*
 * The RFC 8460 report about policy domain ?2 in scan ?1, contact-info ?3.
 *
 * Policy (RFC 8460 4.3, policy-type): "sts" when the domain has a valid
 * MTA-STS policy in enforce or testing mode (RFC 8461 5: mode none means no
 * policy applies); else "tlsa" when an MX host has TLSA records in a
 * signed zone, usable or not, or a bogus TLSA answer (RFC 7672 2.1.1: the
 * sender must not deliver); else "no-policy-found". policy-string is the
 * policy's lines, or the TLSA records in presentation form; mx-host the
 * policy's mx patterns, or the MX hosts with TLSA records.
 *
 * Sessions: one per endpoint of the domain's MX hosts that got as far as
 * EHLO (a refused connection or a silent server negotiates no TLS at all).
 * A session fails when it did not complete a TLS handshake or a finding
 * with a result type hits it: its own, its MX host's, or the domain's. The
 * certificate-* result types count under an sts policy only: DANE ignores
 * the PKIX checks (RFC 7672 3.1.1 and 3.1.3) and without a policy delivery
 * is opportunistic (RFC 7435), so a sender reports no failure for them.
 *
 * The findings are those of the domain_findings view, written out (df) so
 * that SQLite goes from the domain's MX hosts to their findings; CROSS
 * JOIN keeps that order for the TLSA records and endpoints too.
 *
 * failure-details: one per (result type, MX host, IP) of those findings;
 * failed-session-count is the number of sessions the group hits (at least
 * 1: a domain whose DNS fails makes no session but still fails a sender);
 * failure-reason-code the findings' details (RFC 8460 4.3: "a text field
 * to include a TLS-related error code or error message").
 * additional-information (a URI), sending-mta-ip and receiving-mx-helo are
 * not stored by the scan, so they are left out rather than made up.
 */
static const char tlsrpt_sql[] =
    "WITH sc AS ("
    "  SELECT started_at AS s, coalesce(ended_at, (SELECT max(scanned_at) FROM domains"
    "    WHERE scan_id = ?1), started_at) AS e FROM scans WHERE id = ?1),"
    " mxh AS (SELECT m.host AS host, h.dane AS dane FROM mx m LEFT JOIN hosts h"
    "   ON h.scan_id = m.scan_id AND h.host = m.host WHERE m.scan_id = ?1 AND m.domain = ?2),"
    " pol AS (SELECT CASE"
    "   WHEN (SELECT sts_mode FROM domains WHERE scan_id = ?1 AND domain = ?2)"
    "        IN ('enforce', 'testing') THEN 'sts'"
    "   WHEN EXISTS (SELECT 1 FROM mxh WHERE dane IN ('usable', 'unusable', 'bogus'))"
    "     OR EXISTS (SELECT 1 FROM mxh CROSS JOIN tlsa t ON t.scan_id = ?1 AND t.host = mxh.host)"
    "        THEN 'tlsa'"
    "   ELSE 'no-policy-found' END AS t),"
    " lines(line, rest) AS ("
    "   SELECT NULL, replace(coalesce(policy, ''), char(13), '') || char(10) FROM mta_sts"
    "    WHERE scan_id = ?1 AND domain = ?2 AND (SELECT t FROM pol) = 'sts'"
    "   UNION ALL SELECT substr(rest, 1, instr(rest, char(10)) - 1),"
    "          substr(rest, instr(rest, char(10)) + 1) FROM lines WHERE rest <> ''),"
    " tl AS (SELECT t.host AS host, printf('%s. IN TLSA %d %d %d %s', t.name, t.usage,"
    "          t.selector, t.mtype, t.data) AS rr, t.rowid AS n"
    "   FROM mxh CROSS JOIN tlsa t ON t.scan_id = ?1 AND t.host = mxh.host"
    "   WHERE (SELECT t FROM pol) = 'tlsa'),"
    " pstr AS (SELECT line AS v FROM lines WHERE line <> ''"
    "   UNION ALL SELECT * FROM (SELECT rr FROM tl ORDER BY host, n)),"
    " mxpat AS (SELECT j.value AS v FROM mta_sts s,"
    "     json_each(CASE WHEN json_valid(s.mx) THEN s.mx ELSE '[]' END) j"
    "   WHERE s.scan_id = ?1 AND s.domain = ?2 AND (SELECT t FROM pol) = 'sts'"
    "   UNION ALL SELECT * FROM (SELECT DISTINCT host FROM tl ORDER BY host)),"
    " sess AS (SELECT e.host, e.ip, e.port, e.tls_version FROM mxh"
    "   CROSS JOIN endpoints e ON e.scan_id = ?1 AND e.host = mxh.host"
    "   WHERE (e.status = 'ok' OR e.failed_step IN ('starttls', 'tls', 'ehlo2'))),"
    " df AS (SELECT f.result_type, f.host, f.ip, f.port, f.detail FROM findings f"
    "   WHERE f.scan_id = ?1 AND f.domain = ?2"
    "   UNION ALL SELECT f.result_type, f.host, f.ip, f.port, f.detail FROM mxh"
    "   CROSS JOIN findings f ON f.scan_id = ?1 AND f.host = mxh.host AND f.domain IS NULL),"
    " fail AS (SELECT * FROM df WHERE result_type IS NOT NULL"
    "   AND ((SELECT t FROM pol) = 'sts' OR result_type NOT LIKE 'certificate-%')),"
    " sf AS (SELECT s.tls_version IS NULL OR EXISTS (SELECT 1 FROM fail f"
    "   WHERE f.host IS NULL OR (f.host = s.host AND (f.ip IS NULL OR (f.ip = s.ip"
    "   AND (f.port IS NULL OR f.port = s.port))))) AS failed FROM sess s),"
    " grp AS (SELECT DISTINCT result_type, host, ip FROM fail),"
    " det AS (SELECT json_patch('{}', json_object("
    "     'result-type', g.result_type,"
    "     'receiving-mx-hostname', g.host,"
    "     'receiving-ip', g.ip,"
    "     'failed-session-count', max(1, (SELECT count(*) FROM sess s WHERE g.host IS NULL"
    "        OR (s.host = g.host AND (g.ip IS NULL OR s.ip = g.ip)))),"
    "     'failure-reason-code', (SELECT group_concat(detail, '; ') FROM (SELECT DISTINCT"
    "        detail FROM fail f WHERE f.result_type = g.result_type AND f.host IS g.host"
    "        AND f.ip IS g.ip AND detail IS NOT NULL ORDER BY detail)))) AS j"
    "   FROM grp g ORDER BY g.result_type, g.host, g.ip)"
    " SELECT json_object("
    "  'organization-name', 'mxscan',"
    "  'date-range', json_object('start-datetime', sc.s, 'end-datetime', sc.e),"
    "  'contact-info', ?3,"
    "  'report-id', sc.s || '_' || ?2,"
    "  'policies', json_array(json_object("
    "    'policy', json_object("
    "      'policy-type', (SELECT t FROM pol),"
    "      'policy-string', json((SELECT json_group_array(v) FROM pstr)),"
    "      'policy-domain', ?2,"
    "      'mx-host', json((SELECT json_group_array(v) FROM mxpat))),"
    "    'summary', json_object("
    "      'total-successful-session-count', (SELECT count(*) FROM sf WHERE NOT failed),"
    "      'total-failure-session-count', max((SELECT count(*) FROM sf WHERE failed),"
    "         EXISTS (SELECT 1 FROM fail))),"
    "    'failure-details', json((SELECT json_group_array(json(j)) FROM det)))))"
    " FROM sc";

/* Lower-cases a domain name and drops one trailing dot, as the scanner
 * stores names. */
static void normalise_domain(char *d)
{
    size_t n = strlen(d);
    if (n > 1 && d[n - 1] == '.') {
        d[n - 1] = 0;
    }
    for (; *d; d++) {
        if (*d >= 'A' && *d <= 'Z') {
            *d = (char)(*d - 'A' + 'a');
        }
    }
}

/* The RFC 8460 report about one domain. */
static int export_tlsrpt(sqlite3 *db, const export_opts_t *o, FILE *out)
{
    char *dom = strdup(o->tlsrpt);
    if (dom == NULL) {
        errorf("out of memory");
        return -1;
    }
    normalise_domain(dom);
    sqlite3_stmt *st =
        prepare_scan(db, "SELECT 1 FROM domains WHERE scan_id = ?1 AND domain = ?2", o->scan_id);
    if (st == NULL) {
        free(dom);
        return -1;
    }
    sqlite3_bind_text(st, 2, dom, -1, SQLITE_STATIC);
    int found = sqlite3_step(st) == SQLITE_ROW;
    sqlite3_finalize(st);
    if (!found) {
        errorf("domain %s is not in scan %lld of %s", dom, (long long)o->scan_id, o->db_path);
        free(dom);
        return -1;
    }
    st = prepare_scan(db, tlsrpt_sql, o->scan_id);
    if (st == NULL) {
        free(dom);
        return -1;
    }
    sqlite3_bind_text(st, 2, dom, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, o->contact ? o->contact : "mxscan", -1, SQLITE_STATIC);
    progress_t pr;
    progress_start(&pr, "tlsrpt", 0, 1);
    int rc = write_rows(db, st, out, 0, &pr);
    sqlite3_finalize(st);
    free(dom);
    return rc;
}

/* Resolves the scan to export: the one asked for, or the latest. Returns
 * its id, or -1 with a message. */
static int64_t pick_scan(sqlite3 *db, const char *path, int64_t want)
{
    sqlite3_stmt *st;
    int64_t id = -1, lo = 0, hi = 0, n = 0;
    if (sqlite3_prepare_v2(db, "SELECT count(*), min(id), max(id), max(id = ?1) FROM scans", -1,
                           &st, NULL) != SQLITE_OK) {
        errorf("%s: %s", path, sqlite3_errmsg(db));
        return -1;
    }
    sqlite3_bind_int64(st, 1, want);
    if (sqlite3_step(st) == SQLITE_ROW) {
        n = sqlite3_column_int64(st, 0);
        lo = sqlite3_column_int64(st, 1);
        hi = sqlite3_column_int64(st, 2);
        if (n > 0 && want == 0) {
            id = hi;
        } else if (n > 0 && sqlite3_column_int64(st, 3)) {
            id = want;
        }
    }
    sqlite3_finalize(st);
    if (n == 0) {
        errorf("%s holds no scan", path);
    } else if (id < 0) {
        errorf("%s has no scan %lld (scans %lld to %lld)", path, (long long)want, (long long)lo,
               (long long)hi);
    }
    return id;
}

/* Parses the flags into o. Returns 0 to go on, 1 after --help, or 2 for
 * bad usage (message printed). */
static int parse_args(int argc, char **argv, export_opts_t *o)
{
    enum { O_SCAN = 256, O_PEM, O_TLSRPT, O_CONTACT };
    static const struct option opts[] = {
        {"format", required_argument, 0, 'f'},
        {"table", required_argument, 0, 't'},
        {"output", required_argument, 0, 'o'},
        {"quiet", no_argument, 0, 'q'},
        {"help", no_argument, 0, 'h'},
        {"scan", required_argument, 0, O_SCAN},
        {"pem", no_argument, 0, O_PEM},
        {"tlsrpt", required_argument, 0, O_TLSRPT},
        {"contact", required_argument, 0, O_CONTACT},
        {0, 0, 0, 0},
    };
    int opt, format_set = 0;
    memset(o, 0, sizeof *o);
    optind = 1;
    while ((opt = getopt_long(argc, argv, "f:t:o:qh", opts, NULL)) != -1) {
        switch (opt) {
        case 'f':
            if (strcmp(optarg, "jsonl") == 0) {
                o->format = FMT_JSONL;
            } else if (strcmp(optarg, "csv") == 0) {
                o->format = FMT_CSV;
            } else {
                errorf("--format wants jsonl or csv, not '%s'", optarg);
                return 2;
            }
            format_set = 1;
            break;
        case 't':
            if (find_table(optarg) == NULL) {
                errorf("no table '%s'; --table wants one of domains, mx, hosts, endpoints, "
                       "findings, rejected, tlsa, mta_sts, tlsrpt, scans",
                       optarg);
                return 2;
            }
            o->table = optarg;
            break;
        case 'o':
            o->out_path = optarg;
            break;
        case 'q':
            o->quiet = 1;
            break;
        case 'h':
            usage(stdout);
            return 1;
        case O_SCAN: {
            char *end;
            errno = 0;
            long long v = strtoll(optarg, &end, 10);
            if (errno || end == optarg || *end || v < 1) {
                errorf("--scan wants a scan id (a whole number from 1), not '%s'", optarg);
                return 2;
            }
            o->scan_id = v;
            break;
        }
        case O_PEM:
            o->pem = 1;
            break;
        case O_TLSRPT:
            if (*optarg == 0) {
                errorf("--tlsrpt wants a domain name");
                return 2;
            }
            o->tlsrpt = optarg;
            break;
        case O_CONTACT:
            o->contact = optarg;
            break;
        default:
            fprintf(stderr, "try 'mxscan export --help'\n");
            return 2;
        }
    }
    if (optind >= argc) {
        errorf("no database: mxscan export DB [options]; see 'mxscan export --help'");
        return 2;
    }
    if (argc - optind > 1) {
        errorf("one database only, not '%s' too", argv[optind + 1]);
        return 2;
    }
    o->db_path = argv[optind];
    if (o->tlsrpt && (format_set || o->table || o->pem)) {
        errorf("--tlsrpt writes one JSON report: it takes no --format, --table or --pem");
        return 2;
    }
    if (o->contact && !o->tlsrpt) {
        errorf("--contact is the contact-info of a --tlsrpt report");
        return 2;
    }
    if (o->format == FMT_CSV && o->table == NULL) {
        o->table = "domains";
    }
    if (o->pem && o->table && strcmp(o->table, "endpoints") != 0) {
        errorf("--pem adds certificates to the endpoints table or the per-domain JSON lines, "
               "not to %s",
               o->table);
        return 2;
    }
    return 0;
}

/* `mxscan export`. */
int cmd_export(int argc, char **argv)
{
    export_opts_t o;
    int rc = parse_args(argc, argv, &o);
    if (rc != 0) {
        return rc == 1 ? 0 : rc;
    }
    /* db_open creates a missing file: an export of a mistyped name must
     * say so instead of writing an empty database. */
    if (access(o.db_path, F_OK) != 0) {
        errorf("%s: %s", o.db_path, strerror(errno));
        return 1;
    }
    char err[512];
    db_t *dbh = db_open(o.db_path, err, sizeof err);
    if (dbh == NULL) {
        errorf("%s", err);
        return 1;
    }
    sqlite3 *db = db_handle(dbh);
    sqlite3_create_function(db, "pem_chain", 1, SQLITE_UTF8 | SQLITE_DETERMINISTIC, NULL,
                            pem_chain_fn, NULL, NULL);
    /* One read transaction: the counts and the rows come from one snapshot
     * even while a scan writes to the file. */
    sqlite3_exec(db, "BEGIN", NULL, NULL, NULL);
    int64_t id = pick_scan(db, o.db_path, o.scan_id);
    FILE *out = NULL;
    rc = 1;
    if (id < 0) {
        goto done;
    }
    o.scan_id = id;
    out = o.out_path ? fopen(o.out_path, "w") : stdout;
    if (out == NULL) {
        errorf("%s: %s", o.out_path, strerror(errno));
        goto done;
    }
    static char buf[1 << 16];
    setvbuf(out, buf, _IOFBF, sizeof buf);
    int r;
    if (o.tlsrpt) {
        r = export_tlsrpt(db, &o, out);
    } else if (o.table) {
        r = export_table(db, &o, find_table(o.table), out);
    } else {
        r = export_domains(db, &o, out);
    }
    if (fflush(out) != 0 || ferror(out)) {
        if (r == 0) {
            errorf("write error: %s", strerror(errno));
        }
        r = -1;
    }
    rc = r == 0 ? 0 : 1;
done:
    if (out != NULL && out != stdout && fclose(out) != 0 && rc == 0) {
        errorf("%s: %s", o.out_path, strerror(errno));
        rc = 1;
    }
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    db_close(dbh);
    return rc;
}
