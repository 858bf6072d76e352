/*
 * merge.c - `mxscan merge OUT.db IN.db...`: the shards of one sharded scan
 * (`mxscan scan --shard I/N`, run on N machines) combined into one scan, so
 * that every tool, and every statistic, sees one scan of the whole list.
 *
 * Shards split the domains, not the MX hosts: a host that serves domains of
 * two shards was scanned by both. The merged scan keeps such a host once:
 * its hosts row, endpoints, TLSA records and host findings all come from
 * the first input (in argument order) that has a hosts row for it, never
 * from two, so host-weighted statistics count it once and its facts stay
 * those of one observation. Everything about a domain (domains, mx, domain
 * findings, mta_sts, tlsrpt) belongs to exactly one shard and is copied as
 * it is; the input's rejected lines, which every shard stores because every
 * shard reads the whole input, are kept once per line.
 *
 * The copying is SQL: each input is ATTACHed read-only (a URI with
 * mode=ro, so the input file is never written) and copied with INSERT ...
 * SELECT, one transaction per input. Column lists come from the schema, so
 * a column added by a later migration is copied without a change here; a
 * table this file does not know stops the merge (rather than leaving the
 * table's rows behind). A new OUT is built under a temporary name and
 * renamed into place only when complete.
 *
 * Documented in docs/tool-merge.md and docs/sharding.md.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "db/db.h"
#include "scanner/strbuf.h"
#include "tools/tools.h"

/* "mxsc", as db.c marks its files (PRAGMA application_id). */
#define MXSCAN_APPLICATION_ID 0x6d787363
/* The first schema version with sharded scans (db/migrations/004_scale.sql). */
#define SHARD_SCHEMA_VERSION 4

enum {
    EXIT_FAIL = 1,           /* a file cannot be read or written, SQL failed */
    EXIT_USAGE = 2,          /* bad usage, or inputs that must not be merged */
    PROGRESS_UNIT = 64,      /* progress_t redraws on multiples of 64: one input = 64 */
    PROGRESS_OPS = 100000,   /* SQLite VM steps between progress redraw checks */
    CACHE_KIB = 65536,       /* page cache of the output connection */
    BUSY_TIMEOUT_MS = 10000, /* an input still being written holds its lock briefly */
};

/* Every table of the schema; copy_input says how each is merged. A table
 * of the schema missing here makes merge refuse to run (see check_schema). */
static const char *const known_tables[] = {
    "scans",     /* the new scans row is composed (begin_scan, end_scan), not copied */
    "domains",   /* rows of a domain: each domain is in one shard, copied as they are */
    "mx",        /* the same */
    "mta_sts",   /* the same */
    "tlsrpt",    /* the same */
    "hosts",     /* one per host: from the first input that has it */
    "endpoints", /* with the host's hosts row, from the same input */
    "tlsa",      /* the same */
    "findings",  /* domain findings as domains, host findings (domain NULL) as endpoints */
    "rejected",  /* input lines: every shard has them, kept once per line */
    "excluded",  /* domains (host NULL) once across inputs; addresses (host set) as endpoints */
};
#define N_KNOWN (sizeof(known_tables) / sizeof(known_tables[0]))

/* The columns of scans that merge fills in; a new one must be added here
 * (with what it means for a merged scan) before merge runs again. */
static const char *const scans_columns[] = {
    "id",        "started_at",  "ended_at", "status",     "arguments",   "version", "resolvers",
    "helo",      "input_lines", "domains",  "duplicates", "rejected",    "hosts",   "endpoints",
    "elapsed_s", "shard",       "resumed",  "excluded",   "merged_from",
};

/* A growing list of strings (owned). */
typedef struct strlist {
    char **v;
    size_t n, cap;
} strlist_t;

/* A table's columns, in order. */
struct table_cols {
    char *name;
    strlist_t cols;
    int rowid_col; /* index of an INTEGER PRIMARY KEY column (a rowid alias), or -1 */
    strlist_t pk;  /* the columns of a PRIMARY KEY that is not a rowid alias, in order */
};

/* The tables of one database. */
typedef struct schema {
    struct table_cols *t;
    size_t n;
} schema_t;

/* One input: a scan of a file. */
struct input {
    const char *path; /* as given */
    char *real;       /* realpath, for the read-only URI */
    dev_t dev;
    ino_t ino;
    size_t file;     /* index of the file on the command line */
    int64_t want_id; /* --scan FILE:ID, else 0: the newest scan */
    const schema_t *schema;
    /* its scans row */
    int64_t scan_id;
    char *status, *shard, *arguments, *version, *resolvers, *helo, *started_at, *ended_at;
    char *merged_from;
    int64_t input_lines, duplicates, resumed, domains;
    double elapsed_s;
    int has_elapsed;
    unsigned shard_i, shard_n;
    strlist_t settings; /* canonical settings (see settings_of) */
    int parse_only;
};

/* The command line, parsed. */
struct opts {
    const char *out;
    char **files;
    int nfiles;
    struct pick {
        const char *file;
        int64_t id;
        size_t input_file; /* which of files */
    } * picks;
    int npicks;
    int force, append, allow_partial, allow_mixed, quiet;
};

/* What the merge counted, for the summary. */
struct tally {
    int64_t shared_hosts, differing_hosts, orphan_rows;
};

/* For the signal handler: the connection to interrupt, and the signal. */
static sqlite3 *volatile merge_conn;
static volatile sig_atomic_t merge_signal;

/* ---- small helpers ------------------------------------------------------ */

static char *xstrdup(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* A text column as a malloc'd string, or NULL. */
static char *col_dup(sqlite3_stmt *st, int i)
{
    const unsigned char *s = sqlite3_column_text(st, i);
    return s ? strdup((const char *)s) : NULL;
}

/* Appends a copy of s; returns -1 when out of memory. */
static int sl_add(strlist_t *l, const char *s)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 8;
        char **v = realloc(l->v, cap * sizeof(*v));
        if (v == NULL) {
            return -1;
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n] = strdup(s);
    if (l->v[l->n] == NULL) {
        return -1;
    }
    l->n++;
    return 0;
}

static int sl_has(const strlist_t *l, const char *s)
{
    for (size_t i = 0; i < l->n; i++) {
        if (strcmp(l->v[i], s) == 0) {
            return 1;
        }
    }
    return 0;
}

static void sl_free(strlist_t *l)
{
    for (size_t i = 0; i < l->n; i++) {
        free(l->v[i]);
    }
    free(l->v);
    memset(l, 0, sizeof(*l));
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void schema_free(schema_t *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->t[i].name);
        sl_free(&s->t[i].cols);
        sl_free(&s->t[i].pk);
    }
    free(s->t);
    memset(s, 0, sizeof(*s));
}

static const struct table_cols *schema_table(const schema_t *s, const char *name)
{
    for (size_t i = 0; i < s->n; i++) {
        if (strcmp(s->t[i].name, name) == 0) {
            return &s->t[i];
        }
    }
    return NULL;
}

/* Appends an SQL identifier in double quotes. */
static void put_ident(strbuf_t *sb, const char *name)
{
    sb_putc(sb, '"');
    for (const char *p = name; *p; p++) {
        if (*p == '"') {
            sb_putc(sb, '"');
        }
        sb_putc(sb, *p);
    }
    sb_putc(sb, '"');
}

/* The tables (not sqlite_*) and their columns of database `db` ("main",
 * "src") on connection c. Returns 0, or -1 (message in err). */
static int read_schema(sqlite3 *c, const char *db, schema_t *out, char *err, size_t errlen)
{
    char sql[160];
    sqlite3_stmt *st = NULL, *ct = NULL;
    int rc;

    memset(out, 0, sizeof(*out));
    snprintf(sql, sizeof(sql),
             "SELECT name FROM \"%s\".sqlite_schema WHERE type = 'table' "
             "AND name NOT LIKE 'sqlite\\_%%' ESCAPE '\\' ORDER BY name",
             db);
    rc = sqlite3_prepare_v2(c, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_prepare_v2(c,
                                "SELECT name, upper(type), pk, "
                                "(SELECT count(*) FROM pragma_table_info(?1, ?2) WHERE pk > 0) "
                                "FROM pragma_table_info(?1, ?2) ORDER BY cid",
                                -1, &ct, NULL);
    }
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        struct table_cols *t = realloc(out->t, (out->n + 1) * sizeof(*t));
        if (t == NULL) {
            rc = SQLITE_NOMEM;
            break;
        }
        out->t = t;
        t = &out->t[out->n++];
        memset(t, 0, sizeof(*t));
        t->rowid_col = -1;
        t->name = col_dup(st, 0);
        if (t->name == NULL) {
            rc = SQLITE_NOMEM;
            break;
        }
        sqlite3_reset(ct);
        sqlite3_bind_text(ct, 1, t->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(ct, 2, db, -1, SQLITE_STATIC);
        int pkpos[16], npk = 0;
        while ((rc = sqlite3_step(ct)) == SQLITE_ROW) {
            const char *name = (const char *)sqlite3_column_text(ct, 0);
            const char *type = (const char *)sqlite3_column_text(ct, 1);
            int pk = sqlite3_column_int(ct, 2);
            npk = sqlite3_column_int(ct, 3);
            if (pk == 1 && npk == 1 && type && strcmp(type, "INTEGER") == 0) {
                t->rowid_col = (int)t->cols.n;
            }
            if (pk >= 1 && pk <= 16) {
                pkpos[pk - 1] = (int)t->cols.n;
            }
            if (sl_add(&t->cols, name ? name : "") < 0) {
                rc = SQLITE_NOMEM;
                break;
            }
        }
        for (int k = 0; rc == SQLITE_DONE && t->rowid_col < 0 && k < npk && k < 16; k++) {
            if (sl_add(&t->pk, t->cols.v[pkpos[k]]) < 0) {
                rc = SQLITE_NOMEM;
            }
        }
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    if (rc == SQLITE_DONE) {
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_OK) {
        snprintf(err, errlen, "reading the schema: %s",
                 rc == SQLITE_NOMEM ? "out of memory" : sqlite3_errmsg(c));
    }
    sqlite3_finalize(st);
    sqlite3_finalize(ct);
    if (rc != SQLITE_OK) {
        schema_free(out);
        return -1;
    }
    return 0;
}

/* ---- settings ----------------------------------------------------------- */

/* Long options of `mxscan scan` that take a value, and those that do not.
 * An option not listed is compared as it was written. */
static const char *const long_with_value[] = {
    "input",          "output",     "csv-column",   "resolver",    "dns-timeout", "dns-tries",
    "port",           "helo",       "timeout",      "ca-file",     "ca-path",     "max-addrs",
    "concurrency",    "per-ip",     "rate",         "max-domains", "dedup-mem",   "aka",
    "expiry-warning", "shard",      "resume",       "cache-mem",   "exclude",     "backoff",
    "retry",          "per-prefix", "min-interval",
};
static const char *const long_flags[] = {
    "quiet", "verbose", "help", "parse-only", "tls-on-connect", "expect-ocsp", "enum",
};
/* Options that may differ between the shards of one scan: where the
 * results go, what is printed, the shard itself, the input's path (its
 * content is compared by the number of lines read), and memory sizes that
 * do not change what is observed. */
static const char *const ignored_options[] = {
    "output", "quiet", "verbose", "help", "shard", "input", "resume", "dedup-mem", "cache-mem",
};

static int in_list(const char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(list[i], s) == 0) {
            return 1;
        }
    }
    return 0;
}

/* The option a long name (getopt_long also takes a unique prefix) stands
 * for: sets *canon and returns 1 (takes a value) or 0 (a flag), or -1 for
 * an option not known here. */
static int long_option(const char *name, size_t len, const char **canon)
{
    const char *hit = NULL;
    int hit_value = -1, hits = 0;
    const char *const *lists[2] = {long_flags, long_with_value};
    size_t sizes[2] = {sizeof(long_flags) / sizeof(*long_flags),
                       sizeof(long_with_value) / sizeof(*long_with_value)};

    for (int l = 0; l < 2; l++) {
        for (size_t i = 0; i < sizes[l]; i++) {
            const char *o = lists[l][i];
            if (strncmp(o, name, len) != 0) {
                continue;
            }
            if (o[len] == '\0') {
                *canon = o;
                return l;
            }
            hit = o;
            hit_value = l;
            hits++;
        }
    }
    if (hits == 1) {
        *canon = hit;
        return hit_value;
    }
    return -1;
}

/* One option (or operand) of a stored command line: tokens [first,
 * first + count), its canonical name (NULL for an operand or an unknown
 * option) and its comparable text. */
struct arg {
    size_t first, count;
    const char *name;
    char *item;
};

/* Appends an arg; returns it, or NULL when out of memory. */
static struct arg *push_arg(struct arg **a, size_t *n, size_t *cap, size_t first)
{
    if (*n == *cap) {
        size_t c = *cap ? *cap * 2 : 16;
        struct arg *p = realloc(*a, c * sizeof(*p));
        if (p == NULL) {
            return NULL;
        }
        *a = p;
        *cap = c;
    }
    struct arg *x = &(*a)[(*n)++];
    memset(x, 0, sizeof(*x));
    x->first = first;
    x->count = 1;
    return x;
}

/* Splits a stored argv ("scan", ...) into options the way getopt_long
 * does for `mxscan scan` ("i:o:qvh" and the long options above): each
 * option of a cluster (-qv) is an arg of its own. Returns the number of
 * args in *out (malloc'd), or -1 when out of memory. */
static long split_args(char **tok, size_t n, struct arg **out)
{
    struct arg *a = NULL, *x;
    size_t k = 0, cap = 0;
    int operands_only = 0;
    strbuf_t sb;

    sb_init(&sb);
    for (size_t i = 1; i < n; i++) {
        const char *t = tok[i];
        if (!operands_only && strcmp(t, "--") == 0) {
            operands_only = 1;
            continue;
        }
        if (operands_only || t[0] != '-' || t[1] == '\0') {
            /* an operand: a domain */
            if ((x = push_arg(&a, &k, &cap, i)) == NULL || (x->item = strdup(t)) == NULL) {
                goto oom;
            }
            continue;
        }
        if (t[1] == '-') {
            const char *name = t + 2, *eq = strchr(name, '=');
            size_t len = eq ? (size_t)(eq - name) : strlen(name);
            const char *canon = NULL;
            int kind = long_option(name, len, &canon);
            if ((x = push_arg(&a, &k, &cap, i)) == NULL) {
                goto oom;
            }
            sb.len = 0;
            if (kind < 0) {
                sb_puts(&sb, t);
            } else {
                x->name = canon;
                sb_printf(&sb, "--%s", canon);
                if (kind == 1) {
                    const char *v = eq ? eq + 1 : (i + 1 < n ? tok[i + 1] : "");
                    if (!eq && i + 1 < n) {
                        x->count = 2;
                        i++;
                    }
                    sb_printf(&sb, "=%s", v);
                }
            }
            if ((x->item = sb_take(&sb)) == NULL) {
                goto oom;
            }
            sb_init(&sb);
            continue;
        }
        /* a cluster of short options: -qv, -ofile, -qo file */
        for (const char *p = t + 1; *p; p++) {
            const char *canon = *p == 'i'   ? "input"
                                : *p == 'o' ? "output"
                                : *p == 'q' ? "quiet"
                                : *p == 'v' ? "verbose"
                                : *p == 'h' ? "help"
                                            : NULL;
            int last = 0;
            if ((x = push_arg(&a, &k, &cap, i)) == NULL) {
                goto oom;
            }
            sb.len = 0;
            if (canon == NULL) {
                sb_printf(&sb, "-%c", *p);
            } else {
                x->name = canon;
                sb_printf(&sb, "--%s", canon);
                if (*p == 'i' || *p == 'o') {
                    const char *v = p[1] ? p + 1 : (i + 1 < n ? tok[i + 1] : "");
                    if (!p[1] && i + 1 < n) {
                        x->count = 2;
                    }
                    sb_printf(&sb, "=%s", v);
                    last = 1;
                }
            }
            if ((x->item = sb_take(&sb)) == NULL) {
                goto oom;
            }
            sb_init(&sb);
            if (last) {
                break;
            }
        }
        if (k > 0 && a[k - 1].first == i && a[k - 1].count == 2) {
            i++;
        }
    }
    sb_free(&sb);
    *out = a;
    return (long)k;
oom:
    sb_free(&sb);
    for (size_t j = 0; j < k; j++) {
        free(a[j].item);
    }
    free(a);
    return -1;
}

/* The tokens of a JSON array of strings (scans.arguments), via SQLite's
 * json_each. Returns 0, or -1 when it is not such an array. */
static int json_tokens(sqlite3 *c, const char *json, strlist_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(c,
                                "SELECT value, type FROM json_each(?1) WHERE json_valid(?1) "
                                "AND json_type(?1) = 'array' ORDER BY key",
                                -1, &st, NULL);

    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, json ? json : "", -1, SQLITE_STATIC);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            const char *v = (const char *)sqlite3_column_text(st, 0);
            if (sl_add(out, v ? v : "") < 0) {
                rc = SQLITE_NOMEM;
                break;
            }
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE && out->n > 0 ? 0 : -1;
}

/* The settings of a scan's command line, comparable between shards: one
 * item per option ("--timeout=3s", "--enum") or operand, abbreviations and
 * short options spelled out, the ignored options left out, sorted. Also
 * the command line without --shard, as JSON, when args_out is given (the
 * arguments of the merged scan). Returns 0, or -1 when out of memory. */
static int settings_of(sqlite3 *c, struct input *in, char **args_out)
{
    strlist_t tok = {0};
    struct arg *a = NULL;
    long na;
    int ret = 0;

    if (json_tokens(c, in->arguments, &tok) < 0) {
        /* not the JSON array mxscan writes: compared as a whole */
        sl_free(&tok);
        if (args_out) {
            *args_out = xstrdup(in->arguments ? in->arguments : "[]");
        }
        return sl_add(&in->settings, in->arguments ? in->arguments : "");
    }
    na = split_args(tok.v, tok.n, &a);
    if (na < 0) {
        sl_free(&tok);
        return -1;
    }
    for (long i = 0; i < na && ret == 0; i++) {
        if (a[i].name && in_list(ignored_options,
                                 sizeof(ignored_options) / sizeof(*ignored_options), a[i].name)) {
            continue;
        }
        if (strcmp(a[i].item, "--parse-only") == 0) {
            in->parse_only = 1;
        }
        ret = sl_add(&in->settings, a[i].item);
    }
    if (in->settings.n > 1) {
        qsort(in->settings.v, in->settings.n, sizeof(char *), cmp_str);
    }
    if (ret == 0 && args_out) {
        /* the tokens, but those of --shard */
        strbuf_t sb;
        sb_init(&sb);
        sb_putc(&sb, '[');
        for (size_t t = 0; t < tok.n; t++) {
            int drop = 0;
            for (long i = 0; i < na; i++) {
                if (t >= a[i].first && t < a[i].first + a[i].count) {
                    drop = a[i].name && strcmp(a[i].name, "shard") == 0;
                    break;
                }
            }
            if (drop) {
                continue;
            }
            if (sb.len > 1) {
                sb_putc(&sb, ',');
            }
            sb_json_str(&sb, tok.v[t], strlen(tok.v[t]));
        }
        sb_putc(&sb, ']');
        *args_out = sb_take(&sb);
        ret = *args_out ? 0 : -1;
    }
    for (long i = 0; i < na; i++) {
        free(a[i].item);
    }
    free(a);
    sl_free(&tok);
    return ret;
}

/* ---- the command line --------------------------------------------------- */

/* Prints the usage of `mxscan merge`. */
static void usage(FILE *f)
{
    fprintf(f, "usage: mxscan merge [options] OUT.db IN.db [IN.db...]\n"
               "\n"
               "Combines the shards of one sharded scan (mxscan scan --shard I/N, e.g. run\n"
               "on N machines) into one new scan in OUT.db, so that stats, export, diff and\n"
               "report see one scan of the whole list. By default the newest scan of each\n"
               "input is taken. The inputs are opened read-only and never changed.\n"
               "\n"
               "  - Rows of a domain (domains, mx, its findings, mta_sts, tlsrpt) are copied:\n"
               "    each domain is in exactly one shard.\n"
               "  - An MX host scanned by several shards is kept once: its hosts row,\n"
               "    endpoints, TLSA records and host findings all come from the first input\n"
               "    (in the order given) that scanned it, never from two.\n"
               "  - Rejected input lines, which every shard stores, are kept once per line;\n"
               "    excluded domains once; excluded addresses go with their host.\n"
               "  - The new scan: status done (interrupted if an input was not done),\n"
               "    earliest start, latest end, the arguments of the first input without\n"
               "    --shard, input_lines the largest, duplicates the sum, elapsed_s the\n"
               "    largest (the shards ran side by side), counts from the merged rows, and\n"
               "    merged_from: a JSON array of {file, scan_id, shard}.\n"
               "\n"
               "Refused (exit 2): an input scan that is not done; a scan that is not a\n"
               "shard; shards of different N; the same shard twice; shards started with\n"
               "different settings (every scan option but -o, -q, -v, --shard, -i, --resume,\n"
               "--dedup-mem and --cache-mem must match, and the same number of input lines\n"
               "must have been read) or by different mxscan versions. A missing shard is\n"
               "only warned about.\n"
               "\n"
               "options:\n"
               "      --scan FILE:ID   take scan ID of input FILE instead of its newest scan;\n"
               "                       repeat it to take several scans of one file (shards\n"
               "                       scanned into the same database)\n"
               "      --force          replace OUT if it exists\n"
               "      --append         add the merged scan to OUT, an existing mxscan\n"
               "                       database (created if missing), as a further scan\n"
               "      --allow-partial  also merge scans that are interrupted, failed or still\n"
               "                       running (the merged scan is then 'interrupted')\n"
               "      --allow-mixed-settings\n"
               "                       merge shards whose settings, version or input lines\n"
               "                       differ, with a warning instead of refusing\n"
               "  -q, --quiet          no progress display\n"
               "  -h, --help           this help\n"
               "\n"
               "Without --force or --append an existing OUT is refused. A new OUT is written\n"
               "under a temporary name next to it and renamed when complete; with --append\n"
               "a failed or interrupted merge removes what it had added.\n"
               "\n"
               "Exit status: 0 merged, 1 error (no such file, not an mxscan database, no\n"
               "such scan, a write failed), 2 bad usage or inputs that must not be merged,\n"
               "130 interrupted (143 by SIGTERM).\n"
               "Details: docs/tool-merge.md; how to shard a scan: docs/sharding.md.\n");
}

/* Parses the flags into o; returns -1 (after a message) on bad usage, 1
 * after --help, 0 to go on. */
static int parse_args(int argc, char **argv, struct opts *o)
{
    enum { OPT_SCAN = 256, OPT_FORCE, OPT_APPEND, OPT_PARTIAL, OPT_MIXED };
    static const struct option longopts[] = {
        {"scan", required_argument, NULL, OPT_SCAN},
        {"force", no_argument, NULL, OPT_FORCE},
        {"append", no_argument, NULL, OPT_APPEND},
        {"allow-partial", no_argument, NULL, OPT_PARTIAL},
        {"allow-mixed-settings", no_argument, NULL, OPT_MIXED},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    memset(o, 0, sizeof(*o));
    optind = 1;
    while ((c = getopt_long(argc, argv, "qh", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_SCAN: {
            const char *colon = strrchr(optarg, ':');
            char *end;
            long long n = 0;
            if (colon && colon != optarg) {
                errno = 0;
                n = strtoll(colon + 1, &end, 10);
                if (errno || end == colon + 1 || *end || n < 1) {
                    n = 0;
                }
            }
            if (n == 0) {
                fprintf(stderr,
                        "mxscan merge: --scan wants FILE:ID (an input file and a scan id from "
                        "1), not '%s'\n",
                        optarg);
                return -1;
            }
            struct pick *p = realloc(o->picks, (size_t)(o->npicks + 1) * sizeof(*p));
            if (p == NULL) {
                fprintf(stderr, "mxscan merge: out of memory\n");
                return -1;
            }
            o->picks = p;
            p = &o->picks[o->npicks++];
            memset(p, 0, sizeof(*p));
            /* FILE is optarg up to the last colon, kept in place */
            optarg[colon - optarg] = '\0';
            p->file = optarg;
            p->id = n;
            break;
        }
        case OPT_FORCE:
            o->force = 1;
            break;
        case OPT_APPEND:
            o->append = 1;
            break;
        case OPT_PARTIAL:
            o->allow_partial = 1;
            break;
        case OPT_MIXED:
            o->allow_mixed = 1;
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
    if (o->force && o->append) {
        fprintf(stderr, "mxscan merge: --force replaces OUT, --append adds to it: give one\n");
        return -1;
    }
    if (argc - optind < 2) {
        fprintf(stderr, "mxscan merge: %s\n",
                argc - optind == 0 ? "no output and no input database given"
                                   : "no input database given (OUT.db IN.db [IN.db...])");
        return -1;
    }
    o->out = argv[optind];
    o->files = argv + optind + 1;
    o->nfiles = argc - optind - 1;
    return 0;
}

/* ---- inputs ------------------------------------------------------------- */

/* A path (absolute) as an SQLite URI that opens the file read-only:
 * file:PATH?mode=ro, the characters a URI path cannot hold percent-encoded.
 * A file without a -wal companion, as a scan that ended leaves it, is also
 * opened immutable=1: read without locks, so that SQLite creates no -wal or
 * -shm beside it (a read-only connection to a WAL database otherwise does).
 * One with a -wal (a scan still running, or killed) is read with its -wal. */
static char *ro_uri(const char *real)
{
    strbuf_t sb;
    struct stat st;
    int immutable;

    sb_init(&sb);
    sb_printf(&sb, "%s-wal", real);
    immutable = sb.s && stat(sb.s, &st) != 0 && errno == ENOENT;
    sb.len = 0;
    sb_puts(&sb, "file:");
    for (const unsigned char *p = (const unsigned char *)real; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            strchr("/-._~", *p)) {
            sb_putc(&sb, (char)*p);
        } else {
            sb_printf(&sb, "%%%02X", *p);
        }
    }
    sb_puts(&sb, immutable ? "?mode=ro&immutable=1" : "?mode=ro");
    return sb_take(&sb);
}

/* Opens a file read-only and checks that it is an mxscan database this
 * mxscan can read and, with need_shards, one recent enough to hold shards.
 * Returns the connection, or NULL after a message (exit 1). */
static sqlite3 *open_input(const char *path, int64_t max_version, int need_shards)
{
    struct stat stbuf;
    sqlite3 *c = NULL;
    int64_t app_id = -1, version = 0;
    char *real, *uri;
    int rc;

    if (stat(path, &stbuf) != 0) {
        fprintf(stderr, "mxscan merge: %s: %s\n", path,
                errno == ENOENT ? "no such file" : strerror(errno));
        return NULL;
    }
    if (S_ISDIR(stbuf.st_mode)) {
        fprintf(stderr, "mxscan merge: %s: is a directory, not a database\n", path);
        return NULL;
    }
    if (stbuf.st_size == 0) {
        fprintf(stderr, "mxscan merge: %s: not an mxscan database (empty file)\n", path);
        return NULL;
    }
    real = realpath(path, NULL);
    uri = real ? ro_uri(real) : NULL;
    free(real);
    if (uri == NULL) {
        fprintf(stderr, "mxscan merge: %s: %s\n", path, strerror(errno ? errno : ENOMEM));
        return NULL;
    }
    rc = sqlite3_open_v2(uri, &c, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, NULL);
    free(uri);
    if (rc == SQLITE_OK) {
        sqlite3_busy_timeout(c, BUSY_TIMEOUT_MS);
        rc = tools_query_int(c, "PRAGMA application_id", 0, 0, &app_id) < 0 ? sqlite3_errcode(c)
                                                                            : SQLITE_OK;
    }
    if (rc == SQLITE_OK) {
        rc = tools_query_int(c, "PRAGMA user_version", 0, 0, &version) < 0 ? sqlite3_errcode(c)
                                                                           : SQLITE_OK;
    }
    if (rc != SQLITE_OK) {
        if ((rc & 0xff) == SQLITE_NOTADB) {
            fprintf(stderr, "mxscan merge: %s: not an mxscan database (not an SQLite file)\n",
                    path);
        } else {
            fprintf(stderr, "mxscan merge: %s: %s\n", path,
                    c ? sqlite3_errmsg(c) : sqlite3_errstr(rc));
        }
        sqlite3_close(c);
        return NULL;
    }
    if (app_id != MXSCAN_APPLICATION_ID) {
        fprintf(stderr,
                "mxscan merge: %s: not an mxscan database (application_id 0x%llx, not 0x%x)\n",
                path, (unsigned long long)app_id, MXSCAN_APPLICATION_ID);
        sqlite3_close(c);
        return NULL;
    }
    if (version > max_version) {
        fprintf(stderr,
                "mxscan merge: %s: database schema version %lld is newer than this mxscan "
                "knows (%lld); use a newer mxscan\n",
                path, (long long)version, (long long)max_version);
        sqlite3_close(c);
        return NULL;
    }
    if (need_shards && version < SHARD_SCHEMA_VERSION) {
        fprintf(stderr,
                "mxscan merge: %s: written by an older mxscan (schema version %lld) that had "
                "no --shard: it holds no shards to merge\n",
                path, (long long)version);
        sqlite3_close(c);
        return NULL;
    }
    return c;
}

/* Reads the scans row of an input: the one asked for, or the newest.
 * Returns 0, or -1 after a message (exit 1). */
static int read_scan(sqlite3 *c, struct input *in)
{
    static const char *const cols =
        "SELECT id, status, shard, arguments, version, resolvers, helo, started_at, ended_at, "
        "merged_from, input_lines, duplicates, resumed, domains, elapsed_s FROM scans ";
    char sql[512];
    sqlite3_stmt *st = NULL;
    int rc;

    snprintf(sql, sizeof(sql), "%s%s", cols,
             in->want_id ? "WHERE id = ?1" : "ORDER BY id DESC LIMIT 1");
    rc = sqlite3_prepare_v2(c, sql, -1, &st, NULL);
    if (rc == SQLITE_OK && in->want_id) {
        rc = sqlite3_bind_int64(st, 1, in->want_id);
    }
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
    }
    if (rc == SQLITE_DONE) {
        int64_t lo = 0, hi = 0;
        if (in->want_id && tools_query_int(c, "SELECT min(id) FROM scans", 0, 0, &lo) == 1 &&
            tools_query_int(c, "SELECT max(id) FROM scans", 0, 0, &hi) == 1 && hi > 0) {
            fprintf(stderr, "mxscan merge: %s: no scan with id %lld (ids %lld to %lld)\n", in->path,
                    (long long)in->want_id, (long long)lo, (long long)hi);
        } else {
            fprintf(stderr, "mxscan merge: %s: the file has no scans\n", in->path);
        }
        sqlite3_finalize(st);
        return -1;
    }
    if (rc != SQLITE_ROW) {
        fprintf(stderr, "mxscan merge: %s: %s\n", in->path, sqlite3_errmsg(c));
        sqlite3_finalize(st);
        return -1;
    }
    in->scan_id = sqlite3_column_int64(st, 0);
    in->status = col_dup(st, 1);
    in->shard = col_dup(st, 2);
    in->arguments = col_dup(st, 3);
    in->version = col_dup(st, 4);
    in->resolvers = col_dup(st, 5);
    in->helo = col_dup(st, 6);
    in->started_at = col_dup(st, 7);
    in->ended_at = col_dup(st, 8);
    in->merged_from = col_dup(st, 9);
    in->input_lines = sqlite3_column_int64(st, 10);
    in->duplicates = sqlite3_column_int64(st, 11);
    in->resumed = sqlite3_column_int64(st, 12);
    in->domains = sqlite3_column_int64(st, 13);
    in->has_elapsed = sqlite3_column_type(st, 14) != SQLITE_NULL;
    in->elapsed_s = sqlite3_column_double(st, 14);
    sqlite3_finalize(st);
    if (in->status == NULL) {
        in->status = strdup("?");
    }
    if (in->shard) {
        unsigned a, b;
        char tail;
        if (sscanf(in->shard, "%u/%u%c", &a, &b, &tail) == 2 && b >= 1 && a < b) {
            in->shard_i = a;
            in->shard_n = b;
        }
    }
    return 0;
}

/* Names an input in messages: the file and the scan. */
static const char *input_name(const struct input *in, char *buf, size_t len)
{
    snprintf(buf, len, "%s (scan %lld)", in->path, (long long)in->scan_id);
    return buf;
}

/* Prints what is in a but not in b, and the reverse. */
static void print_settings_diff(const struct input *a, const struct input *b)
{
    char na[PATH_MAX + 32], nb[PATH_MAX + 32];
    const struct input *side[2][2] = {{a, b}, {b, a}};

    input_name(a, na, sizeof(na));
    input_name(b, nb, sizeof(nb));
    for (int s = 0; s < 2; s++) {
        const struct input *x = side[s][0], *y = side[s][1];
        int first = 1;
        for (size_t i = 0; i < x->settings.n; i++) {
            if (sl_has(&y->settings, x->settings.v[i])) {
                continue;
            }
            if (first) {
                fprintf(stderr, "  only %s has:", s == 0 ? na : nb);
                first = 0;
            }
            fprintf(stderr, " %s", x->settings.v[i]);
        }
        if (!first) {
            fputc('\n', stderr);
        }
    }
}

/* Checks that the inputs are shards of one scan that may be merged.
 * Returns 0, or EXIT_USAGE after messages. Warnings (missing shards,
 * differences let through by --allow-mixed-settings) go to stderr. */
static int check_inputs(struct input *in, size_t n, const struct opts *o)
{
    char na[PATH_MAX + 32], nb[PATH_MAX + 32];
    const char *level = o->allow_mixed ? "warning" : "error";
    int refuse = 0, mixed = 0;

    for (size_t i = 0; i < n; i++) {
        input_name(&in[i], na, sizeof(na));
        if (strcmp(in[i].status, "done") != 0 && !o->allow_partial) {
            fprintf(stderr,
                    "mxscan merge: %s is %s, not done: finish it with 'mxscan scan --resume "
                    "%s', pick a done scan with --scan %s:ID, or merge what it holds with "
                    "--allow-partial\n",
                    na, in[i].status, in[i].path, in[i].path);
            refuse = 1;
        }
        if (in[i].shard_n == 0) {
            if (in[i].merged_from) {
                fprintf(stderr,
                        "mxscan merge: %s is itself a merge (merged_from %s): merge the shard "
                        "files it was made of instead\n",
                        na, in[i].merged_from);
            } else if (in[i].shard) {
                fprintf(stderr, "mxscan merge: %s has an unreadable shard '%s'\n", na, in[i].shard);
            } else {
                fprintf(stderr,
                        "mxscan merge: %s is not a shard (it was scanned without --shard I/N); "
                        "merge combines the shards of one sharded scan\n",
                        na);
            }
            refuse = 1;
        }
    }
    if (refuse) {
        return EXIT_USAGE;
    }
    for (size_t i = 1; i < n; i++) {
        input_name(&in[0], na, sizeof(na));
        input_name(&in[i], nb, sizeof(nb));
        if (in[i].shard_n != in[0].shard_n) {
            fprintf(stderr,
                    "mxscan merge: %s is shard %s but %s is shard %s: shards of different N "
                    "split the list differently and overlap\n",
                    na, in[0].shard, nb, in[i].shard);
            return EXIT_USAGE;
        }
        for (size_t j = 0; j < i; j++) {
            if (in[j].shard_i == in[i].shard_i) {
                input_name(&in[j], na, sizeof(na));
                fprintf(stderr, "mxscan merge: %s and %s are both shard %s: give each shard once\n",
                        na, nb, in[i].shard);
                return EXIT_USAGE;
            }
        }
        int differ = 0;
        for (size_t k = 0; k < in[0].settings.n || k < in[i].settings.n; k++) {
            if (k >= in[0].settings.n || k >= in[i].settings.n ||
                strcmp(in[0].settings.v[k], in[i].settings.v[k]) != 0) {
                differ = 1;
                break;
            }
        }
        if (differ) {
            fprintf(stderr, "mxscan merge: %s: %s and %s were started with different settings\n",
                    level, na, nb);
            print_settings_diff(&in[0], &in[i]);
            mixed = 1;
        }
        if (strcmp(in[0].version ? in[0].version : "", in[i].version ? in[i].version : "") != 0) {
            fprintf(stderr, "mxscan merge: %s: %s was scanned by mxscan %s, %s by mxscan %s\n",
                    level, na, in[0].version ? in[0].version : "?", nb,
                    in[i].version ? in[i].version : "?");
            mixed = 1;
        }
        if (in[0].input_lines != in[i].input_lines && strcmp(in[0].status, "done") == 0 &&
            strcmp(in[i].status, "done") == 0) {
            fprintf(stderr,
                    "mxscan merge: %s: %s read %lld input lines, %s read %lld: the shards "
                    "did not read the same input\n",
                    level, na, (long long)in[0].input_lines, nb, (long long)in[i].input_lines);
            mixed = 1;
        }
    }
    if (mixed && !o->allow_mixed) {
        fprintf(stderr, "mxscan merge: shards of one scan must be started alike; "
                        "--allow-mixed-settings merges them anyway\n");
        return EXIT_USAGE;
    }
    if (n < in[0].shard_n) {
        strbuf_t sb;
        sb_init(&sb);
        for (unsigned s = 0, shown = 0; s < in[0].shard_n && shown < 16; s++) {
            size_t i = 0;
            while (i < n && in[i].shard_i != s) {
                i++;
            }
            if (i == n) {
                sb_printf(&sb, " %u/%u", s, in[0].shard_n);
                shown++;
            }
        }
        fprintf(stderr,
                "mxscan merge: warning: %zu of %u shards given; missing:%s%s (the merged scan "
                "covers only the domains of the shards given)\n",
                n, in[0].shard_n, sb.s ? sb.s : "", in[0].shard_n - n > 16 ? " ..." : "");
        sb_free(&sb);
    }
    return 0;
}

/* Checks that merge knows every table of this mxscan's schema (and every
 * column of scans), and that an input holds no table or column outside
 * it. Returns 0, or an exit status after a message. */
static int check_schema(const schema_t *ours, const struct input *in, size_t n)
{
    for (size_t i = 0; i < ours->n; i++) {
        size_t k = 0;
        while (k < N_KNOWN && strcmp(known_tables[k], ours->t[i].name) != 0) {
            k++;
        }
        if (k == N_KNOWN) {
            fprintf(stderr,
                    "mxscan merge: internal error: the schema has a table '%s' that merge does "
                    "not know how to merge; refusing rather than leaving its rows behind "
                    "(tools/merge.c, known_tables)\n",
                    ours->t[i].name);
            return EXIT_FAIL;
        }
    }
    const struct table_cols *sc = schema_table(ours, "scans");
    for (size_t c = 0; sc && c < sc->cols.n; c++) {
        if (!in_list(scans_columns, sizeof(scans_columns) / sizeof(*scans_columns),
                     sc->cols.v[c])) {
            fprintf(stderr,
                    "mxscan merge: internal error: scans has a column '%s' that merge does not "
                    "fill in (tools/merge.c, scans_columns)\n",
                    sc->cols.v[c]);
            return EXIT_FAIL;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && in[i].schema == in[i - 1].schema) {
            continue;
        }
        const schema_t *s = in[i].schema;
        for (size_t t = 0; t < s->n; t++) {
            const struct table_cols *o = schema_table(ours, s->t[t].name);
            if (o == NULL) {
                fprintf(stderr,
                        "mxscan merge: %s: table '%s' is not part of the mxscan schema: merge "
                        "would leave its rows behind (drop or move it first)\n",
                        in[i].path, s->t[t].name);
                return EXIT_FAIL;
            }
            for (size_t c = 0; c < s->t[t].cols.n; c++) {
                if (!sl_has(&o->cols, s->t[t].cols.v[c])) {
                    fprintf(stderr,
                            "mxscan merge: %s: column %s.%s is not part of the mxscan schema: "
                            "merge would leave it behind\n",
                            in[i].path, s->t[t].name, s->t[t].cols.v[c]);
                    return EXIT_FAIL;
                }
            }
        }
    }
    return 0;
}

/* ---- copying ------------------------------------------------------------ */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Runs SQL with ?1 = the new scan, ?2 = the input's scan. Returns the rows
 * changed (or the first column of the first row for a query), or -1 with
 * the message left in the connection. */
static int64_t run(sqlite3 *c, const char *sql, int64_t new_id, int64_t src_id)
{
    int64_t v;
    int r = tools_query_int(c, sql, new_id, src_id, &v);

    return r < 0 ? -1 : r == 1 ? v : sqlite3_changes64(c);
}

/* Copies the rows of one table of the input's scan into the new scan:
 * INSERT [OR IGNORE] INTO main.T(scan_id, cols) SELECT ?1, cols FROM src.T
 * AS r WHERE r.scan_id = ?2 AND (where). The columns are those of ours
 * that the input has, but scan_id and a rowid alias (findings.id, which
 * the new rows get afresh). Rows go in the given order, else in that of
 * the table's primary key (or rowid), which the input's own index gives:
 * inserting in key order touches the output's B-tree one page after the
 * other instead of at random. A table the input does not have (an older schema)
 * copies nothing. Returns the rows copied, or -1 on an SQL error. */
static int64_t copy_table(sqlite3 *c, const schema_t *ours, const struct input *in,
                          const char *table, const char *where, const char *order, int or_ignore,
                          int64_t new_id)
{
    const struct table_cols *o = schema_table(ours, table);
    const struct table_cols *s = schema_table(in->schema, table);
    strbuf_t cols, sql;
    int64_t ret;

    if (o == NULL || s == NULL) {
        return 0;
    }
    sb_init(&cols);
    for (size_t i = 0; i < o->cols.n; i++) {
        if ((int)i == o->rowid_col || strcmp(o->cols.v[i], "scan_id") == 0 ||
            !sl_has(&s->cols, o->cols.v[i])) {
            continue;
        }
        sb_puts(&cols, ", ");
        put_ident(&cols, o->cols.v[i]);
    }
    sb_init(&sql);
    sb_printf(&sql, "INSERT %sINTO main.", or_ignore ? "OR IGNORE " : "");
    put_ident(&sql, table);
    sb_printf(&sql, "(scan_id%s) SELECT ?1%s FROM src.", cols.s ? cols.s : "",
              cols.s ? cols.s : "");
    put_ident(&sql, table);
    sb_printf(&sql, " AS r WHERE r.scan_id = ?2%s%s%s", where ? " AND (" : "", where ? where : "",
              where ? ")" : "");
    if (order) {
        sb_printf(&sql, " ORDER BY %s", order);
    } else if (o->rowid_col >= 0) {
        sb_puts(&sql, " ORDER BY r.");
        put_ident(&sql, o->cols.v[o->rowid_col]);
    } else if (o->pk.n > 0 && sl_has(&s->pk, o->pk.v[0]) && o->pk.n == s->pk.n) {
        for (size_t i = 0; i < o->pk.n; i++) {
            sb_puts(&sql, i ? ", r." : " ORDER BY r.");
            put_ident(&sql, o->pk.v[i]);
        }
    }
    if (sql.oom || cols.oom) {
        sb_free(&cols);
        sb_free(&sql);
        return -1;
    }
    ret = run(c, sql.s, new_id, in->scan_id);
    sb_free(&cols);
    sb_free(&sql);
    return ret;
}

/* Host-level rows of the input whose host has no hosts row in it: a host
 * an unfinished scan did not finish (a done scan has none). Merge leaves
 * them out, as `mxscan scan --resume` does. */
static int64_t count_orphans(sqlite3 *c, const struct input *in)
{
    static const struct {
        const char *table, *where;
    } q[] = {
        {"endpoints", "1"},
        {"tlsa", "1"},
        {"findings", "r.domain IS NULL"},
        {"excluded", "r.host IS NOT NULL"},
    };
    int64_t total = 0;

    if (schema_table(in->schema, "hosts") == NULL) {
        return 0;
    }
    for (size_t i = 0; i < sizeof(q) / sizeof(q[0]); i++) {
        char sql[320];
        if (schema_table(in->schema, q[i].table) == NULL) {
            continue;
        }
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM src.\"%s\" AS r WHERE r.scan_id = ?2 AND %s AND "
                 "r.host NOT IN (SELECT host FROM src.hosts WHERE scan_id = ?2)",
                 q[i].table, q[i].where);
        int64_t n = run(c, sql, 0, in->scan_id);
        if (n < 0) {
            return -1;
        }
        total += n;
    }
    return total;
}

/* Copies one input's scan into the new scan, in the caller's transaction.
 * Returns 0, or -1 with the message in err. */
static int copy_input(sqlite3 *c, const schema_t *ours, const struct input *in, int64_t new_id,
                      struct tally *t, char *err, size_t errlen)
{
    /* the rows of domains: each domain is in exactly one shard */
    /* Findings get new ids, domain by domain (host by host), each one's in
     * their old order: the order of the input's findings_domain
     * (findings_host) index, so that no sort is needed. */
    static const struct {
        const char *table, *where, *order;
        int or_ignore;
    } domain_rows[] = {
        {"domains", NULL, NULL, 0},
        {"mx", NULL, NULL, 0},
        {"mta_sts", NULL, NULL, 0},
        {"tlsrpt", NULL, NULL, 0},
        {"findings", "r.domain IS NOT NULL", "r.domain, r.id", 0},
        /* every shard read every line: once per line (unique index) */
        {"rejected", NULL, NULL, 1},
        /* an excluded domain once, whichever shards recorded it */
        {"excluded",
         "r.host IS NULL AND NOT EXISTS (SELECT 1 FROM temp.merge_excluded x "
         "WHERE x.k = json_array(r.domain, r.ip, r.reason))",
         NULL, 0},
    };
    /* the rows of MX hosts: those of the hosts this input supplies */
    static const struct {
        const char *table, *where, *order;
    } host_rows[] = {
        {"hosts", "r.host IN (SELECT host FROM temp.merge_taken)", NULL},
        {"endpoints", "r.host IN (SELECT host FROM temp.merge_taken)", NULL},
        {"tlsa", "r.host IN (SELECT host FROM temp.merge_taken)", NULL},
        {"findings", "r.domain IS NULL AND r.host IN (SELECT host FROM temp.merge_taken)",
         "r.host, r.id"},
        {"excluded", "r.host IS NOT NULL AND r.host IN (SELECT host FROM temp.merge_taken)", NULL},
    };
    const char *what = NULL;
    int64_t n;

    /* A finding about neither a domain nor a host has no owner here. */
    if (schema_table(in->schema, "findings")) {
        n = run(c,
                "SELECT count(*) FROM src.findings WHERE scan_id = ?2 AND domain IS NULL "
                "AND host IS NULL",
                0, in->scan_id);
        if (n != 0) {
            if (n > 0) {
                snprintf(err, errlen,
                         "%lld findings of scan %lld name neither a domain nor a host: merge "
                         "does not know where they belong",
                         (long long)n, (long long)in->scan_id);
                return -1;
            }
            what = "findings";
            goto sql_error;
        }
    }
    for (size_t i = 0; i < sizeof(domain_rows) / sizeof(domain_rows[0]); i++) {
        what = domain_rows[i].table;
        if (copy_table(c, ours, in, what, domain_rows[i].where, domain_rows[i].order,
                       domain_rows[i].or_ignore, new_id) < 0) {
            goto sql_error;
        }
    }
    if (schema_table(in->schema, "excluded") &&
        run(c,
            "INSERT OR IGNORE INTO temp.merge_excluded(k) SELECT json_array(domain, ip, reason) "
            "FROM src.excluded WHERE scan_id = ?2 AND host IS NULL",
            new_id, in->scan_id) < 0) {
        what = "excluded";
        goto sql_error;
    }
    if (schema_table(in->schema, "hosts") == NULL) {
        return 0;
    }
    /* Hosts an earlier input supplied are shared: count them, and whether
     * this shard saw them otherwise (hosts.summary, the facts the verdicts
     * of their domains were made from). */
    what = "hosts";
    if (run(c, "DELETE FROM temp.merge_taken", 0, 0) < 0 ||
        run(c,
            "INSERT INTO temp.merge_taken(host) SELECT h.host FROM src.hosts h "
            "WHERE h.scan_id = ?2 AND NOT EXISTS (SELECT 1 FROM main.hosts o "
            "WHERE o.scan_id = ?1 AND o.host = h.host)",
            new_id, in->scan_id) < 0 ||
        run(c,
            "INSERT INTO temp.merge_shared(host, differ) SELECT h.host, o.summary IS NOT "
            "h.summary FROM src.hosts h JOIN main.hosts o ON o.scan_id = ?1 AND o.host = h.host "
            "WHERE h.scan_id = ?2 ON CONFLICT(host) DO UPDATE SET differ = differ OR "
            "excluded.differ",
            new_id, in->scan_id) < 0) {
        goto sql_error;
    }
    for (size_t i = 0; i < sizeof(host_rows) / sizeof(host_rows[0]); i++) {
        what = host_rows[i].table;
        if (copy_table(c, ours, in, what, host_rows[i].where, host_rows[i].order, 0, new_id) < 0) {
            goto sql_error;
        }
    }
    what = "hosts";
    n = count_orphans(c, in);
    if (n < 0) {
        goto sql_error;
    }
    t->orphan_rows += n;
    return 0;

sql_error:
    if (sqlite3_extended_errcode(c) == SQLITE_CONSTRAINT_PRIMARYKEY ||
        sqlite3_extended_errcode(c) == SQLITE_CONSTRAINT_UNIQUE) {
        snprintf(err, errlen,
                 "%s: a row of scan %lld is already in the merged scan (%s): do two inputs "
                 "hold the same domains?",
                 what ? what : "?", (long long)in->scan_id, sqlite3_errmsg(c));
    } else {
        snprintf(err, errlen, "copying %s of scan %lld: %s", what ? what : "rows",
                 (long long)in->scan_id, sqlite3_errmsg(c));
    }
    return -1;
}

/* SQLite's progress callback: lets the progress line redraw while one
 * input's copy runs. Never interrupts (signals use sqlite3_interrupt). */
static int on_progress(void *arg)
{
    progress_add(arg, 0);
    return 0;
}

/* SIGINT, SIGTERM: stop the statement that runs; the merge then cleans up. */
static void on_signal(int signum)
{
    merge_signal = signum;
    if (merge_conn) {
        sqlite3_interrupt(merge_conn);
    }
}

static void signals(int on)
{
    static struct sigaction old_int, old_term;
    struct sigaction sa;

    if (!on) {
        sigaction(SIGINT, &old_int, NULL);
        sigaction(SIGTERM, &old_term, NULL);
        return;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
}

/* ---- the merge ---------------------------------------------------------- */

/* A new output is loaded without its secondary indexes (not UNIQUE: those
 * keep rows out), which create_indexes builds again at the end: building an
 * index from sorted rows is several times faster than keeping it up to date
 * row by row. Fills sqls with their CREATE statements. Returns 0 or -1. */
static int drop_indexes(sqlite3 *c, strlist_t *sqls)
{
    sqlite3_stmt *st = NULL;
    strlist_t names = {0};
    int rc = sqlite3_prepare_v2(c,
                                "SELECT s.name, s.sql FROM main.sqlite_schema s "
                                "JOIN pragma_index_list(s.tbl_name, 'main') l ON l.name = s.name "
                                "WHERE s.type = 'index' AND s.sql IS NOT NULL "
                                "AND l.\"unique\" = 0 ORDER BY s.name",
                                -1, &st, NULL);

    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 0);
        const char *sql = (const char *)sqlite3_column_text(st, 1);
        rc = sl_add(&names, name) < 0 || sl_add(sqls, sql) < 0 ? SQLITE_NOMEM : SQLITE_OK;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        sl_free(&names);
        return -1;
    }
    rc = SQLITE_OK;
    for (size_t i = 0; i < names.n; i++) {
        strbuf_t sb;
        sb_init(&sb);
        sb_puts(&sb, "DROP INDEX main.");
        put_ident(&sb, names.v[i]);
        rc = sb.oom ? SQLITE_NOMEM : sqlite3_exec(c, sb.s, NULL, NULL, NULL);
        sb_free(&sb);
        if (rc != SQLITE_OK) {
            break;
        }
    }
    sl_free(&names);
    return rc == SQLITE_OK ? 0 : -1;
}

/* Builds the indexes drop_indexes dropped. Returns 0 or -1. */
static int create_indexes(sqlite3 *c, const strlist_t *sqls)
{
    if (sqlite3_exec(c, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        return -1;
    }
    for (size_t i = 0; i < sqls->n; i++) {
        if (sqlite3_exec(c, sqls->v[i], NULL, NULL, NULL) != SQLITE_OK) {
            return -1;
        }
    }
    return sqlite3_exec(c, "COMMIT", NULL, NULL, NULL) == SQLITE_OK ? 0 : -1;
}

/* The new scans row: started_at the earliest, arguments of the first input
 * without --shard, version and helo of the first, resolvers every distinct
 * value, merged_from the inputs. Returns its id, or -1. */
static int64_t begin_scan(sqlite3 *c, const struct input *in, size_t n, const char *args, char *err,
                          size_t errlen)
{
    sqlite3_stmt *st = NULL;
    strbuf_t from, res;
    const char *started = in[0].started_at;
    int64_t id = -1;

    sb_init(&from);
    sb_init(&res);
    sb_putc(&from, '[');
    for (size_t i = 0; i < n; i++) {
        sb_puts(&from, i ? "," : "");
        sb_puts(&from, "{\"file\":");
        sb_json_str(&from, in[i].path, strlen(in[i].path));
        sb_printf(&from, ",\"scan_id\":%lld,\"shard\":", (long long)in[i].scan_id);
        sb_json_str(&from, in[i].shard, strlen(in[i].shard));
        sb_putc(&from, '}');
        if (in[i].started_at && (!started || strcmp(in[i].started_at, started) < 0)) {
            started = in[i].started_at;
        }
        int seen = in[i].resolvers == NULL;
        for (size_t j = 0; j < i && !seen; j++) {
            seen = in[j].resolvers && strcmp(in[j].resolvers, in[i].resolvers) == 0;
        }
        if (!seen) {
            sb_puts(&res, res.len ? "," : "");
            sb_puts(&res, in[i].resolvers);
        }
    }
    sb_putc(&from, ']');
    if (from.oom || res.oom) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (sqlite3_prepare_v2(c,
                           "INSERT INTO main.scans(started_at, status, arguments, version, "
                           "resolvers, helo, shard, merged_from) "
                           "VALUES(?1, 'running', ?2, ?3, ?4, ?5, NULL, ?6)",
                           -1, &st, NULL) != SQLITE_OK) {
        snprintf(err, errlen, "recording the merged scan: %s", sqlite3_errmsg(c));
        goto out;
    }
    sqlite3_bind_text(st, 1, started ? started : "", -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, args, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, in[0].version ? in[0].version : "?", -1, SQLITE_STATIC);
    if (res.len) {
        sqlite3_bind_text(st, 4, res.s, -1, SQLITE_STATIC);
    }
    if (in[0].helo) {
        sqlite3_bind_text(st, 5, in[0].helo, -1, SQLITE_STATIC);
    }
    sqlite3_bind_text(st, 6, from.s, -1, SQLITE_STATIC);
    if (sqlite3_step(st) != SQLITE_DONE) {
        snprintf(err, errlen, "recording the merged scan: %s", sqlite3_errmsg(c));
        goto out;
    }
    id = sqlite3_last_insert_rowid(c);
out:
    sqlite3_finalize(st);
    sb_free(&from);
    sb_free(&res);
    return id;
}

/* Completes the scans row: status, latest end, counts from the merged
 * rows (domains: the sum of the inputs' for --parse-only scans, which
 * store none), input_lines the largest, duplicates the sum, elapsed_s the
 * largest, resumed the sum. Returns 0 or -1. */
static int end_scan(sqlite3 *c, const struct input *in, size_t n, int64_t id, char *err,
                    size_t errlen)
{
    sqlite3_stmt *st = NULL;
    const char *ended = NULL, *status = "done";
    int64_t lines = 0, dups = 0, resumed = 0, pdomains = 0;
    double elapsed = 0;
    int has_elapsed = 0, rc;

    for (size_t i = 0; i < n; i++) {
        if (in[i].ended_at && (!ended || strcmp(in[i].ended_at, ended) > 0)) {
            ended = in[i].ended_at;
        }
        if (strcmp(in[i].status, "done") != 0) {
            status = "interrupted";
        }
        lines = in[i].input_lines > lines ? in[i].input_lines : lines;
        dups += in[i].duplicates;
        resumed += in[i].resumed;
        pdomains += in[i].domains;
        if (in[i].has_elapsed && (!has_elapsed || in[i].elapsed_s > elapsed)) {
            elapsed = in[i].elapsed_s;
            has_elapsed = 1;
        }
    }
    rc = sqlite3_prepare_v2(
        c,
        "UPDATE main.scans SET status = ?2, ended_at = ?3, input_lines = ?4, duplicates = ?5, "
        "elapsed_s = ?6, resumed = ?7, "
        "domains = CASE WHEN ?8 >= 0 THEN ?8 ELSE (SELECT count(*) FROM main.domains "
        "WHERE scan_id = ?1) END, "
        "rejected = (SELECT count(*) FROM main.rejected WHERE scan_id = ?1), "
        "hosts = (SELECT count(*) FROM main.hosts WHERE scan_id = ?1), "
        "endpoints = (SELECT count(*) FROM main.endpoints WHERE scan_id = ?1), "
        "excluded = (SELECT count(*) FROM main.excluded WHERE scan_id = ?1) WHERE id = ?1",
        -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, id);
        sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
        if (ended) {
            sqlite3_bind_text(st, 3, ended, -1, SQLITE_STATIC);
        }
        sqlite3_bind_int64(st, 4, lines);
        sqlite3_bind_int64(st, 5, dups);
        if (has_elapsed) {
            sqlite3_bind_double(st, 6, elapsed);
        }
        sqlite3_bind_int64(st, 7, resumed);
        sqlite3_bind_int64(st, 8, in[0].parse_only ? pdomains : -1);
        rc = sqlite3_step(st);
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE) {
        snprintf(err, errlen, "completing the merged scan: %s", sqlite3_errmsg(c));
        return -1;
    }
    return 0;
}

/* Removes what a failed merge added to an existing OUT (--append). */
static void undo_scan(sqlite3 *c, const schema_t *ours, int64_t id)
{
    if (id <= 0) {
        return;
    }
    sqlite3_exec(c, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_exec(c, "DETACH src", NULL, NULL, NULL);
    if (sqlite3_exec(c, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
        goto fail;
    }
    for (size_t i = 0; i < ours->n; i++) {
        char sql[160];
        snprintf(sql, sizeof(sql), "DELETE FROM main.\"%s\" WHERE %s = ?1", ours->t[i].name,
                 strcmp(ours->t[i].name, "scans") == 0 ? "id" : "scan_id");
        if (run(c, sql, id, 0) < 0) {
            sqlite3_exec(c, "ROLLBACK", NULL, NULL, NULL);
            goto fail;
        }
    }
    if (sqlite3_exec(c, "COMMIT", NULL, NULL, NULL) == SQLITE_OK) {
        return;
    }
fail:
    fprintf(stderr,
            "mxscan merge: could not remove the unfinished scan %lld again (%s): it stays with "
            "status 'running', which the tools skip\n",
            (long long)id, sqlite3_errmsg(c));
}

/* fsync of a file or directory, so that the rename publishes a complete file. */
static int sync_path(const char *path, int dir)
{
    int fd = open(path, (dir ? O_DIRECTORY : 0) | O_RDONLY | O_CLOEXEC);
    int rc;

    if (fd < 0) {
        return -1;
    }
    rc = fsync(fd);
    close(fd);
    return rc;
}

/* The directory of a path, for sync_path. */
static void dir_of(const char *path, char *out, size_t len)
{
    const char *slash = strrchr(path, '/');

    if (slash == NULL) {
        snprintf(out, len, ".");
    } else if (slash == path) {
        snprintf(out, len, "/");
    } else {
        snprintf(out, len, "%.*s", (int)(slash - path), path);
    }
}

/* Removes a database file and its -wal and -shm companions. */
static void unlink_db(const char *path)
{
    static const char *const suffix[] = {"-wal", "-shm", "-journal"};
    char p[PATH_MAX + 16];
    size_t n = strlen(path);

    unlink(path);
    if (n >= PATH_MAX)
        return;
    for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
        memcpy(p, path, n);
        memcpy(p + n, suffix[i], strlen(suffix[i]) + 1);
        unlink(p);
    }
}

/* Frees what the inputs own. */
static void inputs_free(struct input *in, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(in[i].real);
        free(in[i].status);
        free(in[i].shard);
        free(in[i].arguments);
        free(in[i].version);
        free(in[i].resolvers);
        free(in[i].helo);
        free(in[i].started_at);
        free(in[i].ended_at);
        free(in[i].merged_from);
        sl_free(&in[i].settings);
    }
    free(in);
}

/* Builds the list of inputs from the files and --scan picks, reads each
 * file's schema and chosen scans (read-only). Returns 0 or an exit status. */
static int load_inputs(struct opts *o, int64_t max_version, struct input **out, size_t *nout,
                       schema_t *schemas, char **merged_args)
{
    struct stat *st = calloc((size_t)o->nfiles, sizeof(*st));
    struct input *in = NULL;
    size_t n = 0;
    int ret = 0;

    *out = NULL;
    *nout = 0;
    if (st == NULL) {
        fprintf(stderr, "mxscan merge: out of memory\n");
        return EXIT_FAIL;
    }
    for (int f = 0; f < o->nfiles; f++) {
        if (stat(o->files[f], &st[f]) != 0) {
            fprintf(stderr, "mxscan merge: %s: %s\n", o->files[f],
                    errno == ENOENT ? "no such file" : strerror(errno));
            ret = EXIT_FAIL;
            goto out;
        }
        for (int g = 0; g < f; g++) {
            if (st[g].st_dev == st[f].st_dev && st[g].st_ino == st[f].st_ino) {
                fprintf(stderr,
                        "mxscan merge: %s and %s are the same file: give each input once "
                        "(--scan FILE:ID picks several scans of one file)\n",
                        o->files[g], o->files[f]);
                ret = EXIT_USAGE;
                goto out;
            }
        }
    }
    for (int p = 0; p < o->npicks; p++) {
        struct stat ps;
        int f = 0;
        if (stat(o->picks[p].file, &ps) == 0) {
            while (f < o->nfiles && !(st[f].st_dev == ps.st_dev && st[f].st_ino == ps.st_ino)) {
                f++;
            }
        } else {
            f = o->nfiles;
        }
        if (f == o->nfiles) {
            fprintf(stderr, "mxscan merge: --scan %s:%lld: %s is not one of the inputs\n",
                    o->picks[p].file, (long long)o->picks[p].id, o->picks[p].file);
            ret = EXIT_USAGE;
            goto out;
        }
        o->picks[p].input_file = (size_t)f;
        for (int q = 0; q < p; q++) {
            if (o->picks[q].input_file == (size_t)f && o->picks[q].id == o->picks[p].id) {
                fprintf(stderr, "mxscan merge: --scan %s:%lld is given twice\n", o->picks[p].file,
                        (long long)o->picks[p].id);
                ret = EXIT_USAGE;
                goto out;
            }
        }
    }
    in = calloc((size_t)(o->nfiles + o->npicks), sizeof(*in));
    if (in == NULL) {
        fprintf(stderr, "mxscan merge: out of memory\n");
        ret = EXIT_FAIL;
        goto out;
    }
    for (int f = 0; f < o->nfiles && ret == 0; f++) {
        sqlite3 *c = open_input(o->files[f], max_version, 1);
        size_t first = n;
        char err[256];
        if (c == NULL) {
            ret = EXIT_FAIL;
            break;
        }
        if (read_schema(c, "main", &schemas[f], err, sizeof(err)) < 0) {
            fprintf(stderr, "mxscan merge: %s: %s\n", o->files[f], err);
            sqlite3_close(c);
            ret = EXIT_FAIL;
            break;
        }
        for (int p = 0; p < o->npicks; p++) {
            if (o->picks[p].input_file == (size_t)f) {
                in[n++].want_id = o->picks[p].id;
            }
        }
        if (n == first) {
            n++; /* the newest scan */
        }
        for (size_t i = first; i < n && ret == 0; i++) {
            in[i].path = o->files[f];
            in[i].file = (size_t)f;
            in[i].dev = st[f].st_dev;
            in[i].ino = st[f].st_ino;
            in[i].schema = &schemas[f];
            in[i].real = realpath(o->files[f], NULL);
            if (in[i].real == NULL) {
                fprintf(stderr, "mxscan merge: %s: %s\n", o->files[f], strerror(errno));
                ret = EXIT_FAIL;
            } else if (read_scan(c, &in[i]) < 0) {
                ret = EXIT_FAIL;
            } else if (settings_of(c, &in[i], i == 0 ? merged_args : NULL) < 0) {
                fprintf(stderr, "mxscan merge: out of memory\n");
                ret = EXIT_FAIL;
            }
        }
        sqlite3_close(c);
    }
    for (size_t i = 0; i < n && ret == 0; i++) {
        for (size_t j = 0; j < i; j++) {
            if (in[j].file == in[i].file && in[j].scan_id == in[i].scan_id) {
                fprintf(stderr, "mxscan merge: %s: scan %lld is given twice\n", in[i].path,
                        (long long)in[i].scan_id);
                ret = EXIT_USAGE;
                break;
            }
        }
    }
out:
    free(st);
    *out = in;
    *nout = n;
    return ret;
}

/* The schema of this mxscan: the tables and the schema version of a new,
 * empty database. Returns 0 or -1 after a message. */
static int our_schema(schema_t *out, int64_t *version)
{
    char err[256];
    db_t *db = db_open(":memory:", err, sizeof(err));
    int rc;

    if (db == NULL) {
        fprintf(stderr, "mxscan merge: %s\n", err);
        return -1;
    }
    rc = read_schema(db_handle(db), "main", out, err, sizeof(err));
    if (rc < 0) {
        fprintf(stderr, "mxscan merge: %s\n", err);
    } else if (tools_query_int(db_handle(db), "PRAGMA user_version", 0, 0, version) < 0) {
        fprintf(stderr, "mxscan merge: %s\n", sqlite3_errmsg(db_handle(db)));
        rc = -1;
    }
    db_close(db);
    return rc;
}

/* Where the output is written: OUT itself (--append), or a temporary file
 * next to it that is renamed to OUT when complete. Returns 0 or an exit
 * status after a message. */
static int prepare_output(const struct opts *o, const struct input *in, size_t n, char *target,
                          size_t len, int *appending)
{
    struct stat st;

    *appending = 0;
    if (stat(o->out, &st) == 0) {
        for (size_t i = 0; i < n; i++) {
            if (in[i].dev == st.st_dev && in[i].ino == st.st_ino) {
                fprintf(stderr,
                        "mxscan merge: %s is also an input: write the merge to a new file\n",
                        o->out);
                return EXIT_USAGE;
            }
        }
        if (S_ISDIR(st.st_mode)) {
            fprintf(stderr, "mxscan merge: %s: is a directory\n", o->out);
            return EXIT_USAGE;
        }
        if (o->append) {
            sqlite3 *c = open_input(o->out, INT64_MAX, 0);
            if (c == NULL) {
                return EXIT_FAIL;
            }
            sqlite3_close(c);
            snprintf(target, len, "%s", o->out);
            *appending = 1;
            return 0;
        }
        if (!o->force) {
            fprintf(stderr,
                    "mxscan merge: %s exists: --force replaces it, --append adds the merged "
                    "scan to it\n",
                    o->out);
            return EXIT_USAGE;
        }
    } else if (errno != ENOENT) {
        fprintf(stderr, "mxscan merge: %s: %s\n", o->out, strerror(errno));
        return EXIT_FAIL;
    }
    if (snprintf(target, len, "%s.merge-%ld.tmp", o->out, (long)getpid()) >= (int)len) {
        fprintf(stderr, "mxscan merge: %s: path too long\n", o->out);
        return EXIT_USAGE;
    }
    {
        char dir[PATH_MAX];
        dir_of(o->out, dir, sizeof(dir));
        if (access(dir, W_OK) != 0) {
            fprintf(stderr, "mxscan merge: %s: cannot write in %s: %s\n", o->out, dir,
                    strerror(errno));
            return EXIT_FAIL;
        }
    }
    unlink_db(target);
    return 0;
}

/* `mxscan merge [options] OUT.db IN.db [IN.db...]`. */
int cmd_merge(int argc, char **argv)
{
    struct opts o;
    struct input *in = NULL;
    size_t n = 0;
    schema_t ours = {0}, *schemas = NULL;
    struct tally t = {0};
    char target[PATH_MAX + 64], err[PATH_MAX + 2048], *merged_args = NULL;
    sqlite3 *c = NULL;
    int64_t new_id = -1, ours_version = 0;
    int appending = 0, ret, attached = 0, created = 0, sig_on = 0;
    const char *status = "done";
    int64_t domains = 0, hosts = 0, endpoints = 0, rejected = 0, excluded = 0;
    strlist_t indexes = {0};
    progress_t prog;
    double t0 = now_s();
    int r = parse_args(argc, argv, &o);

    if (r != 0) {
        if (r < 0) {
            fprintf(stderr, "try 'mxscan merge --help'\n");
        }
        free(o.picks);
        return r < 0 ? EXIT_USAGE : 0;
    }
    memset(&prog, 0, sizeof(prog));
    schemas = calloc((size_t)o.nfiles, sizeof(*schemas));
    if (schemas == NULL || our_schema(&ours, &ours_version) < 0) {
        ret = EXIT_FAIL;
        goto done;
    }
    ret = load_inputs(&o, ours_version, &in, &n, schemas, &merged_args);
    if (ret == 0) {
        ret = check_schema(&ours, in, n);
    }
    if (ret == 0) {
        ret = check_inputs(in, n, &o);
    }
    if (ret == 0) {
        ret = prepare_output(&o, in, n, target, sizeof(target), &appending);
    }
    if (ret != 0) {
        goto done;
    }

    /* db_open creates (or migrates) the output; the work is done on a
     * connection of our own, opened with URI names so that the inputs can
     * be attached read-only. */
    {
        db_t *db = db_open(target, err, sizeof(err));
        if (db == NULL) {
            fprintf(stderr, "mxscan merge: %s\n", err);
            ret = EXIT_FAIL;
            goto done;
        }
        db_close(db);
        created = !appending;
    }
    if (sqlite3_open_v2(target, &c, SQLITE_OPEN_READWRITE | SQLITE_OPEN_URI, NULL) != SQLITE_OK) {
        fprintf(stderr, "mxscan merge: %s: %s\n", target, c ? sqlite3_errmsg(c) : "cannot open");
        ret = EXIT_FAIL;
        goto done;
    }
    sqlite3_extended_result_codes(c, 1);
    sqlite3_busy_timeout(c, BUSY_TIMEOUT_MS);
    {
        char pragma[64];
        snprintf(pragma, sizeof(pragma), "PRAGMA cache_size = -%d", CACHE_KIB);
        sqlite3_exec(c, pragma, NULL, NULL, NULL);
    }
    /* A new file is not visible under its name until it is complete, so it
     * needs no journal: a failure deletes it. */
    if (!appending &&
        (sqlite3_exec(c, "PRAGMA journal_mode = OFF", NULL, NULL, NULL) != SQLITE_OK ||
         sqlite3_exec(c, "PRAGMA synchronous = OFF", NULL, NULL, NULL) != SQLITE_OK)) {
        fprintf(stderr, "mxscan merge: %s: %s\n", target, sqlite3_errmsg(c));
        ret = EXIT_FAIL;
        goto done;
    }
    if (sqlite3_exec(c,
                     "PRAGMA temp_store = FILE;"
                     "CREATE TEMP TABLE merge_taken(host TEXT PRIMARY KEY);"
                     "CREATE TEMP TABLE merge_shared(host TEXT PRIMARY KEY, differ INTEGER);"
                     "CREATE TEMP TABLE merge_excluded(k TEXT PRIMARY KEY);",
                     NULL, NULL, NULL) != SQLITE_OK) {
        fprintf(stderr, "mxscan merge: %s: %s\n", target, sqlite3_errmsg(c));
        ret = EXIT_FAIL;
        goto done;
    }
    if (!appending && drop_indexes(c, &indexes) < 0) {
        fprintf(stderr, "mxscan merge: %s: %s\n", target, sqlite3_errmsg(c));
        ret = EXIT_FAIL;
        goto done;
    }
    merge_conn = c;
    signals(1);
    sig_on = 1;
    new_id = begin_scan(c, in, n, merged_args, err, sizeof(err));
    if (new_id < 0) {
        fprintf(stderr, "mxscan merge: %s: %s\n", o.out, err);
        ret = EXIT_FAIL;
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(in[i].status, "done") != 0) {
            status = "interrupted";
        }
    }
    progress_start(&prog, "merging", (uint64_t)n * PROGRESS_UNIT, o.quiet);
    sqlite3_progress_handler(c, PROGRESS_OPS, on_progress, &prog);
    for (size_t i = 0; i < n && !merge_signal; i++) {
        char *uri = ro_uri(in[i].real);
        sqlite3_stmt *st = NULL;
        int rc = uri ? sqlite3_prepare_v2(c, "ATTACH ?1 AS src", -1, &st, NULL) : SQLITE_NOMEM;
        if (rc == SQLITE_OK) {
            sqlite3_bind_text(st, 1, uri, -1, SQLITE_STATIC);
            rc = sqlite3_step(st) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(c);
        }
        sqlite3_finalize(st);
        free(uri);
        if (rc != SQLITE_OK) {
            snprintf(err, sizeof(err), "%s: cannot open read-only: %s", in[i].path,
                     sqlite3_errmsg(c));
            ret = EXIT_FAIL;
            break;
        }
        attached = 1;
        if (sqlite3_exec(c, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK) {
            snprintf(err, sizeof(err), "%s: %s", target, sqlite3_errmsg(c));
            ret = EXIT_FAIL;
            break;
        }
        char why[768];
        if (copy_input(c, &ours, &in[i], new_id, &t, why, sizeof(why)) < 0) {
            snprintf(err, sizeof(err), "%s: %s", in[i].path, why);
            ret = EXIT_FAIL;
            break;
        }
        if (sqlite3_exec(c, "COMMIT", NULL, NULL, NULL) != SQLITE_OK ||
            sqlite3_exec(c, "DETACH src", NULL, NULL, NULL) != SQLITE_OK) {
            snprintf(err, sizeof(err), "%s: %s", target, sqlite3_errmsg(c));
            ret = EXIT_FAIL;
            break;
        }
        attached = 0;
        progress_add(&prog, PROGRESS_UNIT);
    }
    if (ret == 0 && !merge_signal && create_indexes(c, &indexes) < 0) {
        snprintf(err, sizeof(err), "%s: building the indexes: %s", target, sqlite3_errmsg(c));
        ret = EXIT_FAIL;
    }
    sqlite3_progress_handler(c, 0, NULL, NULL);
    progress_end(&prog);
    if (ret == 0 && !merge_signal) {
        int64_t shared = run(c, "SELECT count(*) FROM temp.merge_shared", 0, 0);
        int64_t differ = run(c, "SELECT coalesce(sum(differ), 0) FROM temp.merge_shared", 0, 0);
        if (shared < 0 || differ < 0 || end_scan(c, in, n, new_id, err, sizeof(err)) < 0) {
            if (shared < 0 || differ < 0) {
                snprintf(err, sizeof(err), "%s: %s", target, sqlite3_errmsg(c));
            }
            ret = EXIT_FAIL;
        }
        t.shared_hosts = shared;
        t.differing_hosts = differ;
    }
    if (ret == 0 && !merge_signal && !appending &&
        sqlite3_exec(c, "PRAGMA journal_mode = WAL", NULL, NULL, NULL) != SQLITE_OK) {
        snprintf(err, sizeof(err), "%s: %s", target, sqlite3_errmsg(c));
        ret = EXIT_FAIL;
    }
    if (merge_signal) {
        if (attached) {
            sqlite3_exec(c, "ROLLBACK", NULL, NULL, NULL);
        }
        fprintf(stderr, "mxscan merge: interrupted; %s\n",
                appending ? "the merged scan is removed again" : "nothing was written");
        ret = 128 + merge_signal;
    } else if (ret != 0) {
        fprintf(stderr, "mxscan merge: %s\n", err);
    }
    if (ret != 0 && appending) {
        merge_signal = 0;
        undo_scan(c, &ours, new_id);
    }

done:
    /* the summary needs the counts before the connection goes */
    if (ret == 0) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2(c,
                               "SELECT domains, hosts, endpoints, rejected, excluded FROM "
                               "main.scans WHERE id = ?1",
                               -1, &st, NULL) == SQLITE_OK) {
            sqlite3_bind_int64(st, 1, new_id);
            if (sqlite3_step(st) == SQLITE_ROW) {
                domains = sqlite3_column_int64(st, 0);
                hosts = sqlite3_column_int64(st, 1);
                endpoints = sqlite3_column_int64(st, 2);
                rejected = sqlite3_column_int64(st, 3);
                excluded = sqlite3_column_int64(st, 4);
            }
        }
        sqlite3_finalize(st);
    }
    merge_conn = NULL;
    if (c && sqlite3_close(c) != SQLITE_OK && ret == 0) {
        fprintf(stderr, "mxscan merge: %s: %s\n", target, sqlite3_errmsg(c));
        ret = EXIT_FAIL;
    }
    if (sig_on) {
        signals(0);
    }
    if (created) {
        if (ret == 0) {
            char dir[PATH_MAX];
            dir_of(o.out, dir, sizeof(dir));
            char p[PATH_MAX + 8];
            /* A -wal left by the file this one replaces (or by a file
             * of that name before) would be read as part of it. */
            snprintf(p, sizeof(p), "%s-wal", o.out);
            unlink(p);
            snprintf(p, sizeof(p), "%s-shm", o.out);
            unlink(p);
            if (sync_path(target, 0) < 0 || rename(target, o.out) != 0) {
                fprintf(stderr, "mxscan merge: %s: %s\n", o.out, strerror(errno));
                ret = EXIT_FAIL;
            } else {
                sync_path(dir, 1);
            }
        }
        if (ret != 0) {
            unlink_db(target);
        }
    }
    if (ret == 0) {
        printf("merged %zu scans into %s, scan %lld (%s): %lld domains, %lld MX hosts "
               "(%lld scanned by more than one shard), %lld endpoints, %lld rejected "
               "lines, %lld excluded, in %.1f s\n",
               n, o.out, (long long)new_id, status, (long long)domains, (long long)hosts,
               (long long)t.shared_hosts, (long long)endpoints, (long long)rejected,
               (long long)excluded, now_s() - t0);
        if (t.differing_hosts > 0) {
            printf("  %lld of the shared MX hosts answered the shards differently; each "
                   "keeps the rows of the first input that scanned it\n",
                   (long long)t.differing_hosts);
        }
        if (t.orphan_rows > 0) {
            printf("  %lld rows of MX hosts without their hosts row (hosts an unfinished scan "
                   "had not finished) were left out\n",
                   (long long)t.orphan_rows);
        }
        fflush(stdout);
    }
    for (int f = 0; schemas && f < o.nfiles; f++) {
        schema_free(&schemas[f]);
    }
    free(schemas);
    schema_free(&ours);
    inputs_free(in, n);
    free(merged_args);
    free(o.picks);
    sl_free(&indexes);
    return ret;
}
