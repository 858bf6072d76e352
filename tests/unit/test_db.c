/*
 * test_db.c - unit tests of the results database (db/db.c): opening and
 * migrating, the scans row, batches, and the writer thread with its
 * transactions, counters and failure modes. Every test works on a fresh
 * file in its own temporary directory; nothing outside it is touched. Disk
 * full is provoked with PRAGMA max_page_count and a competing writer with a
 * second connection, both through db_handle() before the writer starts.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "db/db.h"

struct fixture {
    char dir[256];
    char path[300];
};

/* ---- helpers ---------------------------------------------------------- */

/* Creates a temporary directory for one test's database. */
static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    const char *tmp = getenv("TMPDIR");

    assert_non_null(f);
    snprintf(f->dir, sizeof(f->dir), "%s/mxscan-test-db-XXXXXX", tmp != NULL ? tmp : "/tmp");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof(f->path), "%s/results.db", f->dir);
    *state = f;
    return 0;
}

/* Removes the temporary directory and whatever the test left in it. */
static int teardown(void **state)
{
    struct fixture *f = *state;
    DIR *d = opendir(f->dir);
    struct dirent *e;
    char p[600];

    while (d != NULL && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(p, sizeof(p), "%s/%s", f->dir, e->d_name);
        unlink(p);
    }
    if (d != NULL)
        closedir(d);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Opens the fixture's database, failing the test with the message if not. */
static db_t *open_ok(const struct fixture *f)
{
    char err[256] = "";
    db_t *db = db_open(f->path, err, sizeof(err));

    if (db == NULL)
        fail_msg("db_open: %s", err);
    return db;
}

/* Opens the database and begins a scan, for tests about the writer. */
static db_t *open_scan(const struct fixture *f)
{
    char err[256] = "";
    db_t *db = open_ok(f);

    if (db_scan_begin(db, "[\"mxscan\",\"-\"]", "test", err, sizeof(err)) < 0)
        fail_msg("db_scan_begin: %s", err);
    return db;
}

/* Starts the writer, failing the test with the message if it cannot. */
static void start_ok(db_t *db, void (*notify)(void *), void *arg)
{
    char err[256] = "";

    if (db_writer_start(db, notify, arg, err, sizeof(err)) != 0)
        fail_msg("db_writer_start: %s", err);
}

/* The integer value of a one-value query, printf-style. */
static int64_t q_int(sqlite3 *conn, const char *fmt, ...)
{
    char sql[512];
    sqlite3_stmt *st;
    int64_t v = -1;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    if (sqlite3_prepare_v2(conn, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("prepare %s: %s", sql, sqlite3_errmsg(conn));
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* The text value of a one-value query, copied into out. */
static const char *q_text(sqlite3 *conn, char *out, size_t outlen, const char *sql)
{
    sqlite3_stmt *st;

    out[0] = '\0';
    if (sqlite3_prepare_v2(conn, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("prepare %s: %s", sql, sqlite3_errmsg(conn));
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_text(st, 0) != NULL)
        snprintf(out, outlen, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    return out;
}

/* Sleeps a millisecond. */
static void nap(void)
{
    struct timespec ts = {0, 1000000L};

    nanosleep(&ts, NULL);
}

/* Waits up to ten seconds for the writer to fail. */
static int wait_failed(db_t *db, char *err, size_t errlen)
{
    for (int i = 0; i < 10000; i++) {
        if (db_failed(db, err, errlen))
            return 1;
        nap();
    }
    return 0;
}

/* A batch of n rejected rows numbered from line. */
static db_batch_t *rejected_batch(int64_t line, int n)
{
    db_batch_t *b = db_batch_new();

    assert_non_null(b);
    for (int i = 0; i < n; i++) {
        db_row(b, "rejected", 0);
        db_int(b, "line", line + i);
        db_text(b, "text", "not a domain");
        db_text(b, "reason", "bad label");
    }
    return b;
}

/* A domain's batch: the guarding domains row and one mx row. */
static db_batch_t *domain_batch(const char *domain, const char *host)
{
    db_batch_t *b = db_batch_new();

    db_row(b, "domains", DB_ROW_GUARD);
    db_text(b, "domain", domain);
    db_text(b, "posture", "ok");
    db_int(b, "mx_count", 1);
    db_row(b, "mx", 0);
    db_text(b, "domain", domain);
    db_text(b, "host", host);
    db_int(b, "preference", 10);
    return b;
}

/* ---- opening and migrating -------------------------------------------- */

/* A fresh file is created, migrated to the current user_version (3) with
 * every table and the view of the schema, and put in WAL mode. */
static void test_open_fresh_migrates(void **state)
{
    struct fixture *f = *state;
    db_t *db = open_ok(f);
    sqlite3 *c = db_handle(db);
    static const char *const names[] = {"scans",     "domains",  "mx",       "hosts",
                                        "endpoints", "findings", "rejected", "domain_findings",
                                        "tlsa",      "mta_sts",  "tlsrpt",   "excluded"};
    char mode[32];

    assert_int_equal(q_int(c, "PRAGMA user_version"), 4);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        assert_int_equal(q_int(c, "SELECT count(*) FROM sqlite_schema WHERE name='%s'", names[i]),
                         1);
    assert_string_equal(q_text(c, mode, sizeof(mode), "PRAGMA journal_mode"), "wal");
    assert_int_equal(db_scan_id(db), -1);
    db_close(db);
}

/* Opening an existing, current database again changes nothing and keeps
 * its data. */
static void test_reopen_idempotent(void **state)
{
    struct fixture *f = *state;
    db_t *db = open_scan(f);
    int64_t objects = q_int(db_handle(db), "SELECT count(*) FROM sqlite_schema");

    db_close(db);
    db = open_ok(f);
    assert_int_equal(q_int(db_handle(db), "PRAGMA user_version"), 4);
    assert_int_equal(q_int(db_handle(db), "SELECT count(*) FROM sqlite_schema"), objects);
    assert_int_equal(q_int(db_handle(db), "SELECT count(*) FROM scans"), 1);
    db_close(db);
}

/* A database written by version 1 of the schema (an earlier mxscan) is
 * migrated to version 2 on open, and its rows are kept. */
static void test_migrate_v1_to_v2(void **state)
{
    struct fixture *f = *state;
    extern const char db_schema_sql[];
    sqlite3 *c;
    assert_int_equal(sqlite3_open(f->path, &c), SQLITE_OK);
    assert_int_equal(sqlite3_exec(c, db_schema_sql, NULL, NULL, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_exec(c,
                                  "PRAGMA user_version=1; PRAGMA application_id=1836610403;"
                                  "INSERT INTO scans(id, started_at, arguments, version) "
                                  "VALUES (1, 'x', '[]', '0.1.0');"
                                  "INSERT INTO endpoints(scan_id, host, ip, port, status) "
                                  "VALUES (1, 'mx.test', '127.0.0.1', 25, 'ok');",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(c);
    db_t *db = open_ok(f);
    c = db_handle(db);
    assert_int_equal(q_int(c, "PRAGMA user_version"), 4);
    assert_int_equal(q_int(c, "SELECT count(*) FROM endpoints WHERE grade IS NULL"), 1);
    assert_int_equal(q_int(c, "SELECT count(*) FROM sqlite_schema WHERE name='mta_sts'"), 1);
    db_close(db);
}

/* A file that is not an SQLite database is refused with a message, and
 * left as it was. */
static void test_not_a_database(void **state)
{
    struct fixture *f = *state;
    char err[256] = "";
    char junk[8192];
    FILE *fp = fopen(f->path, "w");

    assert_non_null(fp);
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (char)('a' + i % 26);
    assert_int_equal(fwrite(junk, 1, sizeof(junk), fp), sizeof(junk));
    fclose(fp);
    assert_null(db_open(f->path, err, sizeof(err)));
    assert_non_null(strstr(err, "not a database"));
    assert_non_null(strstr(err, f->path));
}

/* A database whose user_version is newer than this code is refused. */
static void test_newer_version_refused(void **state)
{
    struct fixture *f = *state;
    char err[256] = "";
    db_t *db = open_ok(f);

    assert_int_equal(sqlite3_exec(db_handle(db), "PRAGMA user_version=99", NULL, NULL, NULL),
                     SQLITE_OK);
    db_close(db);
    assert_null(db_open(f->path, err, sizeof(err)));
    assert_non_null(strstr(err, "newer"));
}

/* Another application's SQLite file is refused rather than mixed with ours. */
static void test_foreign_database_refused(void **state)
{
    struct fixture *f = *state;
    char err[256] = "";
    sqlite3 *c;

    assert_int_equal(sqlite3_open(f->path, &c), SQLITE_OK);
    assert_int_equal(sqlite3_exec(c, "CREATE TABLE photos(id INTEGER)", NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(c);
    assert_null(db_open(f->path, err, sizeof(err)));
    assert_non_null(strstr(err, "not an mxscan database"));
}

/* ---- the scans row ---------------------------------------------------- */

/* Two scans in one file get two ids; both rows stay, 'running', with their
 * arguments, version and a start time. */
static void test_scan_begin_twice(void **state)
{
    struct fixture *f = *state;
    char err[256] = "", buf[64];
    db_t *db = open_ok(f);
    sqlite3 *c = db_handle(db);
    int64_t a = db_scan_begin(db, "[\"a\"]", "1.0", err, sizeof(err));
    int64_t b = db_scan_begin(db, "[\"b\"]", "1.0", err, sizeof(err));

    assert_true(a > 0);
    assert_true(b > 0);
    assert_int_not_equal(a, b);
    assert_int_equal(db_scan_id(db), b);
    assert_int_equal(q_int(c, "SELECT count(*) FROM scans WHERE status='running'"), 2);
    assert_int_equal(
        q_int(c, "SELECT count(*) FROM scans WHERE id=%lld AND arguments='[\"a\"]'", (long long)a),
        1);
    assert_string_equal(q_text(c, buf, sizeof(buf), "SELECT version FROM scans LIMIT 1"), "1.0");
    q_text(c, buf, sizeof(buf), "SELECT started_at FROM scans LIMIT 1");
    assert_int_equal(strlen(buf), 24);
    db_close(db);
}

/* ---- the writer ------------------------------------------------------- */

/* Rows from several batches are all readable after db_writer_stop, each
 * with the current scan's id. */
static void test_writer_rows_with_scan_id(void **state)
{
    struct fixture *f = *state;
    db_t *db = open_scan(f);
    int64_t id = db_scan_id(db);
    db_stats_t st;

    start_ok(db, NULL, NULL);
    for (int i = 0; i < 5; i++)
        db_submit(db, rejected_batch(i * 3 + 1, 3));
    assert_int_equal(db_writer_stop(db), 0);
    db_writer_stats(db, &st);
    assert_int_equal(st.rows, 15);
    assert_int_equal(st.errors, 0);
    assert_int_equal(q_int(db_handle(db), "SELECT count(*) FROM rejected"), 15);
    assert_int_equal(
        q_int(db_handle(db), "SELECT count(*) FROM rejected WHERE scan_id=%lld", (long long)id),
        15);
    assert_int_equal(q_int(db_handle(db), "SELECT sum(line) FROM rejected"), 15 * 16 / 2);
    db_close(db);
}

/* A GUARD row that hits an existing key skips the rest of its batch and
 * counts one duplicate; other batches are unaffected. */
static void test_guard_duplicate_skips_batch(void **state)
{
    struct fixture *f = *state;
    db_t *db = open_scan(f);
    db_batch_t *b;
    db_stats_t st;

    start_ok(db, NULL, NULL);
    db_submit(db, domain_batch("example.com", "mx1.example.com"));
    b = domain_batch("example.com", "mx2.example.com");
    db_row(b, "findings", 0);
    db_text(b, "domain", "example.com");
    db_text(b, "code", "X");
    db_text(b, "severity", "info");
    db_submit(db, b);
    db_submit(db, domain_batch("example.org", "mx.example.org"));
    assert_int_equal(db_writer_stop(db), 0);
    db_writer_stats(db, &st);
    assert_int_equal(st.duplicates, 1);
    assert_int_equal(st.rows, 4);
    assert_int_equal(st.errors, 0);
    assert_int_equal(q_int(db_handle(db), "SELECT count(*) FROM domains"), 2);
    assert_int_equal(q_int(db_handle(db), "SELECT count(*) FROM mx"), 2);
    assert_int_equal(q_int(db_handle(db), "SELECT count(*) FROM mx WHERE host='mx2.example.com'"),
                     0);
    assert_int_equal(q_int(db_handle(db), "SELECT count(*) FROM findings"), 0);
    db_close(db);
}

/* A SCAN_UPDATE row updates the current scans row and no other. */
static void test_scan_update(void **state)
{
    struct fixture *f = *state;
    char err[256] = "", buf[64];
    db_t *db = open_scan(f);
    int64_t first = db_scan_id(db), second = db_scan_begin(db, "[]", "t", err, sizeof(err));
    db_batch_t *b = db_batch_new();
    sqlite3 *c = db_handle(db);

    start_ok(db, NULL, NULL);
    db_row(b, "scans", DB_ROW_SCAN_UPDATE);
    db_text(b, "status", "done");
    db_text(b, "ended_at", "2026-01-01T00:00:00.000Z");
    db_int(b, "domains", 42);
    db_real(b, "elapsed_s", 1.5);
    db_submit(db, b);
    assert_int_equal(db_writer_stop(db), 0);
    assert_int_equal(q_int(c, "SELECT domains FROM scans WHERE id=%lld", (long long)second), 42);
    assert_int_equal(q_int(c, "SELECT elapsed_s = 1.5 FROM scans WHERE id=%lld", (long long)second),
                     1);
    assert_string_equal(q_text(c, buf, sizeof(buf), "SELECT status FROM scans ORDER BY id DESC"),
                        "done");
    assert_string_equal(q_text(c, buf, sizeof(buf), "SELECT status FROM scans ORDER BY id"),
                        "running");
    assert_int_equal(q_int(c, "SELECT domains FROM scans WHERE id=%lld", (long long)first), 0);
    db_close(db);
}

/* The backlog counts submitted rows until they are committed, and is zero
 * after db_writer_stop. */
static void test_backlog_returns_to_zero(void **state)
{
    struct fixture *f = *state;
    db_t *db = open_scan(f);

    /* Batches queued before the writer starts wait for it, counted. */
    db_submit(db, rejected_batch(1, 4));
    db_submit(db, rejected_batch(5, 6));
    assert_int_equal(db_backlog(db), 10);
    start_ok(db, NULL, NULL);
    for (int i = 0; i < 50; i++)
        db_submit(db, rejected_batch(100 + i * 10, 10));
    assert_int_equal(db_writer_stop(db), 0);
    assert_int_equal(db_backlog(db), 0);
    assert_int_equal(q_int(db_handle(db), "SELECT count(*) FROM rejected"), 510);
    db_close(db);
}

/* The byte backlog counts the memory of queued batches, large values
 * included, and is zero once the writer has written them. */
static void test_backlog_bytes(void **state)
{
    struct fixture *f = *state;
    db_t *db = open_scan(f);
    enum { BIG = 200000 };
    char *big = malloc(BIG + 1);

    assert_non_null(big);
    memset(big, 'x', BIG);
    big[BIG] = 0;
    assert_int_equal(db_backlog_bytes(db), 0);
    db_submit(db, rejected_batch(1, 2));
    size_t small = db_backlog_bytes(db);
    assert_true(small > 0);
    assert_true(small < 64 * 1024);
    db_batch_t *b = db_batch_new();
    db_row(b, "rejected", 0);
    db_int(b, "line", 3);
    db_text(b, "text", big);
    db_text(b, "reason", "long line");
    db_submit(db, b);
    assert_true(db_backlog_bytes(db) >= small + BIG);
    start_ok(db, NULL, NULL);
    assert_int_equal(db_writer_stop(db), 0);
    assert_int_equal(db_backlog_bytes(db), 0);
    assert_int_equal(q_int(db_handle(db), "SELECT length(text) FROM rejected WHERE line = 3"), BIG);
    free(big);
    db_close(db);
}

static atomic_int notified, notified_wrong_arg;

/* Counts calls, as the loop's uv_async_send would wake it. cmocka asserts
 * must not run on the writer thread, so a wrong argument is only counted. */
static void count_notify(void *arg)
{
    atomic_fetch_add(&notified, 1);
    if (arg != &notified)
        atomic_fetch_add(&notified_wrong_arg, 1);
}

/* notify is called with its argument after each commit. */
static void test_notify_called(void **state)
{
    struct fixture *f = *state;
    db_t *db = open_scan(f);
    db_stats_t st;

    atomic_store(&notified, 0);
    start_ok(db, count_notify, &notified);
    db_submit(db, rejected_batch(1, 3));
    /* The idle commit happens without a stop. */
    for (int i = 0; i < 10000 && atomic_load(&notified) == 0; i++)
        nap();
    assert_true(atomic_load(&notified) >= 1);
    assert_int_equal(db_backlog(db), 0);
    db_submit(db, rejected_batch(4, 3));
    assert_int_equal(db_writer_stop(db), 0);
    db_writer_stats(db, &st);
    assert_int_equal(atomic_load(&notified), (int)st.commits);
    assert_int_equal(atomic_load(&notified_wrong_arg), 0);
    db_close(db);
}

/* A row with a column or table name that is not [a-z_0-9]+ counts as an
 * error and is not written; the writer goes on with the other rows. */
static void test_bad_name_counts_error(void **state)
{
    struct fixture *f = *state;
    db_t *db = open_scan(f);
    db_batch_t *b = db_batch_new();
    db_stats_t st;

    start_ok(db, NULL, NULL);
    db_row(b, "rejected", 0);
    db_int(b, "Line", 1);
    db_text(b, "reason", "x");
    db_row(b, "rejected; DROP TABLE scans", 0);
    db_int(b, "line", 2);
    db_text(b, "reason", "x");
    db_row(b, "rejected", 0);
    db_int(b, "line", 3);
    db_text(b, "reason", "ok");
    db_submit(db, b);
    db_submit(db, rejected_batch(10, 2));
    assert_int_equal(db_writer_stop(db), 0);
    db_writer_stats(db, &st);
    assert_int_equal(st.errors, 2);
    assert_int_equal(st.rows, 3);
    assert_int_equal(db_failed(db, NULL, 0), 0);
    assert_int_equal(q_int(db_handle(db), "SELECT count(*) FROM rejected"), 3);
    assert_int_equal(q_int(db_handle(db), "SELECT count(*) FROM scans"), 1);
    db_close(db);
}

/* A row that breaks a constraint, or names an unknown column, counts as an
 * error and the writer goes on; it does not fail. */
static void test_constraint_error_continues(void **state)
{
    struct fixture *f = *state;
    db_t *db = open_scan(f);
    db_batch_t *b = db_batch_new();
    db_stats_t st;

    start_ok(db, NULL, NULL);
    db_row(b, "rejected", 0); /* reason is NOT NULL */
    db_int(b, "line", 1);
    db_row(b, "rejected", 0);
    db_int(b, "line", 2);
    db_text(b, "reason", "x");
    db_text(b, "no_such_column", "x");
    db_row(b, "rejected", 0);
    db_int(b, "line", 3);
    db_text(b, "reason", "x");
    db_submit(db, b);
    db_submit(db, rejected_batch(10, 2));
    assert_int_equal(db_writer_stop(db), 0);
    db_writer_stats(db, &st);
    assert_int_equal(st.errors, 2);
    assert_int_equal(st.rows, 3);
    assert_int_equal(db_failed(db, NULL, 0), 0);
    db_close(db);
}

/* Rows written with no current scan have no scan_id and are refused as
 * errors rather than filed under a made-up scan. */
static void test_rows_without_scan_are_errors(void **state)
{
    struct fixture *f = *state;
    db_t *db = open_ok(f);
    db_stats_t st;

    start_ok(db, NULL, NULL);
    db_submit(db, rejected_batch(1, 2));
    assert_int_equal(db_writer_stop(db), 0);
    db_writer_stats(db, &st);
    assert_int_equal(st.errors, 2);
    assert_int_equal(q_int(db_handle(db), "SELECT count(*) FROM rejected"), 0);
    db_close(db);
}

/* 100,000 rows in 10,000 batches all arrive, in far fewer transactions than
 * batches (fewer than 200). */
static void test_many_rows_few_commits(void **state)
{
    struct fixture *f = *state;
    db_t *db = open_scan(f);
    db_stats_t st;

    start_ok(db, NULL, NULL);
    for (int i = 0; i < 10000; i++)
        db_submit(db, rejected_batch((int64_t)i * 10, 10));
    assert_int_equal(db_writer_stop(db), 0);
    db_writer_stats(db, &st);
    assert_int_equal(st.rows, 100000);
    assert_int_equal(st.errors, 0);
    assert_true(st.commits >= 1);
    assert_true(st.commits < 200);
    assert_int_equal(db_backlog(db), 0);
    assert_int_equal(q_int(db_handle(db), "SELECT count(*) FROM rejected"), 100000);
    db_close(db);
}

/* Every value type round-trips: text with embedded NULs keeps its length,
 * blobs their bytes, reals and integers their values, NULL stays NULL. */
static void test_value_types(void **state)
{
    struct fixture *f = *state;
    static const char greeting[] = "220 mx\0hidden";
    static const unsigned char der[] = {0x30, 0x82, 0x00, 0x00, 0xff};
    db_t *db = open_scan(f);
    db_batch_t *b = db_batch_new();
    sqlite3_stmt *st;

    start_ok(db, NULL, NULL);
    db_row(b, "endpoints", 0);
    db_text(b, "host", "mx.example.com");
    db_text(b, "ip", "192.0.2.1");
    db_int(b, "port", 25);
    db_text(b, "status", "ok");
    db_textn(b, "greeting", greeting, sizeof(greeting) - 1);
    db_blob(b, "chain_der", der, sizeof(der));
    db_real(b, "t_total_ms", 12.25);
    db_null(b, "error");
    db_text(b, "verify_error", NULL);
    db_int(b, "verify_code", INT64_MIN);
    db_submit(db, b);
    assert_int_equal(db_writer_stop(db), 0);

    assert_int_equal(sqlite3_prepare_v2(db_handle(db),
                                        "SELECT greeting, chain_der, t_total_ms, error, "
                                        "verify_error, verify_code, typeof(greeting) "
                                        "FROM endpoints",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_bytes(st, 0), sizeof(greeting) - 1);
    assert_memory_equal(sqlite3_column_text(st, 0), greeting, sizeof(greeting) - 1);
    assert_int_equal(sqlite3_column_bytes(st, 1), sizeof(der));
    assert_memory_equal(sqlite3_column_blob(st, 1), der, sizeof(der));
    assert_true(sqlite3_column_double(st, 2) == 12.25);
    assert_int_equal(sqlite3_column_type(st, 3), SQLITE_NULL);
    assert_int_equal(sqlite3_column_type(st, 4), SQLITE_NULL);
    assert_true(sqlite3_column_int64(st, 5) == INT64_MIN);
    assert_string_equal((const char *)sqlite3_column_text(st, 6), "text");
    sqlite3_finalize(st);
    db_close(db);
}

/* A batch of 10 rows of 30 columns, with values from a few bytes to one
 * larger than an arena chunk, is stored intact. */
static void test_wide_batch_intact(void **state)
{
    struct fixture *f = *state;
    static const char *const cols[] = {
        "started_at",   "failed_step",    "error",          "greeting",      "ehlo_before",
        "ehlo_after",   "starttls_reply", "tls_version",    "tls_cipher",    "tls_group",
        "verify_error", "banner_code",    "ehlo_code",      "starttls_code", "tls_kex_bits",
        "verify_code",  "chain_len",      "tls_on_connect", "helo_fallback", "starttls_offered",
        "t_connect_ms", "t_banner_ms",    "t_ehlo_ms",      "t_starttls_ms", "t_tls_ms",
        "t_ehlo2_ms",   "t_total_ms"};
    size_t big = 100000;
    char *text = malloc(big + 1);
    db_t *db = open_scan(f);
    db_batch_t *b = db_batch_new();
    char ip[32];

    assert_non_null(text);
    for (size_t i = 0; i < big; i++)
        text[i] = (char)('A' + i % 23);
    text[big] = '\0';
    start_ok(db, NULL, NULL);
    for (int r = 0; r < 10; r++) {
        snprintf(ip, sizeof(ip), "192.0.2.%d", r);
        db_row(b, "endpoints", 0);
        db_text(b, "host", "mx.example.com");
        db_text(b, "ip", ip);
        db_int(b, "port", 25);
        db_text(b, "status", "ok");
        for (size_t c = 0; c < sizeof(cols) / sizeof(cols[0]); c++) {
            if (c < 11)
                db_textn(b, cols[c], text, r == 3 && c == 3 ? big : c * 40 + (size_t)r);
            else if (c < 20)
                db_int(b, cols[c], r * 100 + (int)c);
            else
                db_real(b, cols[c], r + c / 4.0);
        }
    }
    assert_int_equal(db_batch_rows(b), 10);
    db_submit(db, b);
    assert_int_equal(db_writer_stop(db), 0);
    assert_int_equal(q_int(db_handle(db), "SELECT count(*) FROM endpoints"), 10);
    assert_int_equal(
        q_int(db_handle(db), "SELECT length(greeting) FROM endpoints WHERE ip='192.0.2.3'"), big);
    assert_int_equal(
        q_int(db_handle(db), "SELECT length(ehlo_after) FROM endpoints WHERE ip='192.0.2.7'"),
        5 * 40 + 7);
    assert_int_equal(q_int(db_handle(db), "SELECT sum(verify_code) FROM endpoints"),
                     10 * 15 + 100 * 45);
    assert_int_equal(q_int(db_handle(db),
                           "SELECT count(*) FROM endpoints WHERE substr(greeting, 1, 3) = 'ABC' "
                           "AND t_total_ms = CAST(substr(ip, 9) AS INTEGER) + 26 / 4.0"),
                     10);
    free(text);
    db_close(db);
}

/* Rows of more shapes than the statement cache holds (300 column subsets,
 * then the first ones again after they were evicted) are all written. */
static void test_many_shapes(void **state)
{
    struct fixture *f = *state;
    static const char *const opt[] = {"banner_code",      "ehlo_code",    "starttls_code",
                                      "tls_kex_bits",     "verify_code",  "chain_len",
                                      "starttls_offered", "t_connect_ms", "t_banner_ms"};
    db_t *db = open_scan(f);
    db_stats_t st;
    char ip[32];

    start_ok(db, NULL, NULL);
    for (int i = 0; i < 400; i++) {
        db_batch_t *b = db_batch_new();
        unsigned shape = (unsigned)(i % 300);

        snprintf(ip, sizeof(ip), "10.0.%d.%d", i / 256, i % 256);
        db_row(b, "endpoints", 0);
        db_text(b, "host", "mx.example.com");
        db_text(b, "ip", ip);
        db_int(b, "port", 25);
        db_text(b, "status", "ok");
        for (unsigned c = 0; c < sizeof(opt) / sizeof(opt[0]); c++)
            if (shape & (1u << c))
                db_int(b, opt[c], 1);
        db_submit(db, b);
    }
    assert_int_equal(db_writer_stop(db), 0);
    db_writer_stats(db, &st);
    assert_int_equal(st.rows, 400);
    assert_int_equal(st.errors, 0);
    assert_int_equal(q_int(db_handle(db), "SELECT count(*) FROM endpoints WHERE port = 25"), 400);
    assert_int_equal(q_int(db_handle(db), "SELECT sum(banner_code) FROM endpoints"), 200);
    db_close(db);
}

/* ---- failures of the file --------------------------------------------- */

/* When the disk fills, the writer fails with a message, rolls back, drops
 * later batches, and the file reopens intact with the earlier commits. */
static void test_disk_full_fails_cleanly(void **state)
{
    struct fixture *f = *state;
    char err[256] = "";
    db_t *db = open_scan(f);
    sqlite3 *c = db_handle(db);
    int64_t pages = q_int(c, "PRAGMA page_count");
    char *text = malloc(20000);
    db_stats_t st;

    assert_non_null(text);
    memset(text, 'x', 20000);
    /* Room for a few more pages: the first small batch fits, the big rows
     * after it cannot. */
    assert_int_equal(q_int(c, "PRAGMA max_page_count=%lld", (long long)pages + 4), pages + 4);
    start_ok(db, NULL, NULL);
    db_submit(db, rejected_batch(1, 2));
    for (int i = 0; i < 10000 && db_backlog(db) > 0; i++)
        nap();
    assert_int_equal(db_backlog(db), 0);
    for (int i = 0; i < 20; i++) {
        db_batch_t *b = db_batch_new();
        db_row(b, "rejected", 0);
        db_int(b, "line", 100 + i);
        db_textn(b, "text", text, 20000);
        db_text(b, "reason", "long");
        db_submit(db, b);
    }
    assert_true(wait_failed(db, err, sizeof(err)));
    assert_non_null(strstr(err, "full"));
    /* Batches submitted after the failure are dropped (and freed). */
    db_submit(db, rejected_batch(1000, 3));
    assert_int_equal(db_writer_stop(db), -1);
    assert_int_equal(db_backlog(db), 0);
    db_writer_stats(db, &st);
    assert_true(st.errors >= 3);
    assert_int_equal(db_failed(db, NULL, 0), 1);
    db_close(db);

    db = open_ok(f);
    c = db_handle(db);
    assert_string_equal(q_text(c, err, sizeof(err), "PRAGMA integrity_check"), "ok");
    assert_int_equal(q_int(c, "SELECT count(*) FROM rejected WHERE line < 100"), 2);
    assert_int_equal(q_int(c, "SELECT count(*) FROM rejected WHERE line >= 1000"), 0);
    free(text);
    db_close(db);
}

/* A write lock held by another connection past the busy timeout makes the
 * writer fail with a message, not hang, and leaves the file intact. */
static void test_busy_fails_cleanly(void **state)
{
    struct fixture *f = *state;
    char err[256] = "";
    db_t *db = open_scan(f);
    sqlite3 *other;

    assert_int_equal(sqlite3_open(f->path, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    /* The default five seconds would make a slow test. */
    sqlite3_busy_timeout(db_handle(db), 50);
    start_ok(db, NULL, NULL);
    db_submit(db, rejected_batch(1, 5));
    assert_true(wait_failed(db, err, sizeof(err)));
    assert_non_null(strstr(err, "locked"));
    assert_int_equal(db_backlog(db), 0);
    assert_int_equal(db_writer_stop(db), -1);
    sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(other);
    db_close(db);

    db = open_ok(f);
    assert_string_equal(q_text(db_handle(db), err, sizeof(err), "PRAGMA integrity_check"), "ok");
    assert_int_equal(q_int(db_handle(db), "SELECT count(*) FROM rejected"), 0);
    db_close(db);
}

/* ---- batches and time ------------------------------------------------- */

/* An unsubmitted batch can be freed, counts its rows, and a value given
 * before any row spoils the batch as a whole, counted as errors. */
static void test_batch_misuse(void **state)
{
    struct fixture *f = *state;
    db_t *db = open_scan(f);
    db_batch_t *b = rejected_batch(1, 3);
    db_stats_t st;

    assert_int_equal(db_batch_rows(b), 3);
    db_batch_free(b);
    db_batch_free(NULL);
    assert_int_equal(db_batch_rows(NULL), 0);

    start_ok(db, NULL, NULL);
    b = db_batch_new();
    db_int(b, "line", 1);
    db_row(b, "rejected", 0);
    db_int(b, "line", 2);
    db_text(b, "reason", "x");
    db_submit(db, b);
    db_submit(db, db_batch_new()); /* empty: nothing to do */
    assert_int_equal(db_writer_stop(db), 0);
    db_writer_stats(db, &st);
    assert_int_equal(st.errors, 1);
    assert_int_equal(st.rows, 0);
    db_close(db);
}

/* db_now_iso gives YYYY-MM-DDTHH:MM:SS.mmmZ. */
static void test_now_iso_format(void **state)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    char now[32];

    (void)state;
    db_now_iso(now);
    assert_int_equal(strlen(now), strlen(shape));
    for (size_t i = 0; i < strlen(shape); i++) {
        if (shape[i] == 'd')
            assert_true(now[i] >= '0' && now[i] <= '9');
        else
            assert_int_equal(now[i], shape[i]);
    }
    assert_true(strncmp(now, "2024", 4) >= 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_fresh_migrates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reopen_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_v1_to_v2, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newer_version_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_foreign_database_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan_begin_twice, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writer_rows_with_scan_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_guard_duplicate_skips_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_scan_update, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backlog_returns_to_zero, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backlog_bytes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_notify_called, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_name_counts_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_constraint_error_continues, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rows_without_scan_are_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_rows_few_commits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_value_types, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wide_batch_intact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_shapes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_disk_full_fails_cleanly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_busy_fails_cleanly, setup, teardown),
        cmocka_unit_test_setup_teardown(test_batch_misuse, setup, teardown),
        cmocka_unit_test(test_now_iso_format),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
