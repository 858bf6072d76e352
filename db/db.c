/*
 * db.c - the results database: opening and migrating the file, the scans
 * row, row batches, and the writer thread that owns the connection.
 *
 * The event loop must never wait for the disk, so it does not write: it
 * fills a db_batch_t (one domain's rows, values copied into an arena so that
 * a batch costs a handful of mallocs) and queues it with db_submit(), which
 * only takes a mutex. One writer thread drains the queue, turns each row into
 * an INSERT (or an UPDATE of the scans row) built from its column names,
 * binds it to a cached prepared statement and commits in transactions of at
 * least a whole batch: every 1000 rows, every 200 ms, or when the queue has
 * been idle for a moment. A domain's rows are therefore committed together
 * or not at all. Errors of one row (a constraint) are counted and passed
 * over; errors of the file (disk full, I/O, corruption, a lock held past the
 * busy timeout) roll back the open transaction and stop all writing, so that
 * the file is never left half-written. The schema lives in db/schema.sql,
 * embedded at build time; PRAGMA user_version records which migrations ran.
 */
#include "db/db.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#ifndef MXSCAN_VERSION
#define MXSCAN_VERSION "unknown"
#endif

enum {
    COMMIT_ROWS = 1000,     /* commit once a transaction holds this many rows */
    COMMIT_MS = 200,        /* or once it is this old */
    IDLE_MS = 10,           /* or once the queue has been empty this long */
    BUSY_TIMEOUT_MS = 5000, /* how long SQLite waits for another writer's lock */
    CACHE_SLOTS = 128,      /* prepared statements kept, one per row shape */
    NAME_MAX_LEN = 64,      /* longest table or column name accepted */
    CHUNK_MIN = 4096,       /* first arena chunk of a batch */
    CHUNK_MAX = 65536,      /* chunks double up to this size */
    WAKE_BATCHES = 64,      /* a busy writer is woken once this many batches wait */
    ROW_BAD = -1,           /* internal result: the row cannot be expressed in SQL */
};

/* "mxsc": marks the file as ours, so that a stray SQLite file is refused. */
#define DB_APPLICATION_ID 0x6d787363

/* The embedded db/schema.sql and db/migrations/NNN_*.sql (db/embed.cmake). */
extern const char db_schema_sql[];
extern const char db_migration_002[];
extern const char db_migration_003[];
extern const char db_migration_004[];

/*
 * Migrations, in order: entry i brings a database from user_version i to
 * i + 1. A database written by an older mxscan is migrated on open. Entries
 * are only ever appended; migration 1 is schema.sql as shipped with version 1
 * of the schema, so a later change to the schema goes here as a new entry
 * (ALTER TABLE ... ADD COLUMN), not into the text of an old one.
 */
static const char *const migrations[] = {
    db_schema_sql,
    db_migration_002,
    db_migration_003,
    db_migration_004,
};
#define DB_SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

/* ---- batches ---------------------------------------------------------- */

enum cell_type { CELL_NULL, CELL_INT, CELL_REAL, CELL_TEXT, CELL_BLOB };

struct cell {
    const char *col; /* in the arena */
    enum cell_type type;
    size_t len; /* CELL_TEXT, CELL_BLOB */
    union {
        int64_t i;
        double d;
        const char *p; /* in the arena */
    } v;
};

struct row {
    const char *table; /* in the arena */
    unsigned flags;
    size_t first; /* index of the row's first cell in cells[] */
    size_t n;     /* cells of the row */
};

struct chunk {
    struct chunk *next;
    size_t cap;
    size_t used;
    char data[];
};

struct db_batch {
    db_batch_t *next; /* link in the writer's queue */
    struct row *rows;
    size_t nrows, rows_cap;
    struct cell *cells;
    size_t ncells, cells_cap;
    struct chunk *chunks; /* the head is the one being filled */
    size_t next_chunk;    /* size of the next ordinary chunk */
    /* An allocation failed or a value came before any db_row(): the batch
     * can no longer be written faithfully, so the writer counts all its rows
     * as errors instead of storing part of a domain. Rows begun after that
     * are not stored, only counted in lost_rows. */
    bool broken;
    size_t lost_rows;
    size_t bytes; /* memory it holds, set by db_submit */
};

/* ---- the database ----------------------------------------------------- */

struct stmt_slot {
    uint64_t hash;
    char *sql;
    sqlite3_stmt *stmt;
};

/* The writer's open transaction and what it will add to the stats. */
struct txn {
    bool open;
    uint64_t started_ms;
    uint64_t rows; /* rows of the batches in it, whatever became of them */
    uint64_t written, errors, duplicates;
    uint64_t batches; /* batches in it */
};

struct db {
    sqlite3 *conn;
    int64_t scan_id;

    pthread_mutex_t mu;
    pthread_cond_t cv;
    /* Under mu: the queue, the counters the loop reads, the failure. */
    db_batch_t *head, *tail;
    size_t backlog;
    size_t queued_bytes;   /* memory of the batches submitted and not yet freed */
    size_t queued_batches; /* batches in the queue */
    bool writer_idle;      /* waiting with no transaction open: wake it at once */
    uint64_t submitted;    /* batches queued since open */
    uint64_t committed;    /* of those, batches in committed transactions (in order) */
    db_stats_t stats;
    bool stopping;
    bool failed;
    char failmsg[256];

    /* Owned by the thread that started and stops the writer. */
    bool running;
    pthread_t thread;
    void (*notify)(void *arg);
    void *notify_arg;

    /* Writer-only while it runs. */
    struct txn txn;
    bool wfailed; /* the writer's own copy of failed, read without the lock */
    struct stmt_slot cache[CACHE_SLOTS];
    size_t cache_next;
    char *sql;
    size_t sql_len, sql_cap;
};

/* ---- small helpers ---------------------------------------------------- */

/* Formats a message into the caller's error buffer, which may be absent. */
static void set_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;

    if (err == NULL || errlen == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* Milliseconds on the monotonic clock, for commit deadlines. */
static uint64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Whether an SQLite result means the file, not the row, is in trouble. */
static bool is_fatal(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_FULL:
    case SQLITE_IOERR:
    case SQLITE_CORRUPT:
    case SQLITE_NOMEM:
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
    case SQLITE_NOTADB:
    case SQLITE_PROTOCOL:
    case SQLITE_PERM:
        return true;
    default:
        return false;
    }
}

/* Table and column names come from our code, but they are pasted into SQL,
 * so only plain lower-case identifiers are let through. */
static bool valid_name(const char *s)
{
    size_t n = 0;

    if (s == NULL)
        return false;
    for (; s[n] != '\0'; n++) {
        char c = s[n];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return n > 0 && n <= NAME_MAX_LEN;
}

/* FNV-1a, to compare cached SQL texts cheaply before strcmp. */
static uint64_t hash_sql(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;

    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h;
}

/* Reads the integer result of a one-value query such as a PRAGMA. */
static int query_int(sqlite3 *conn, const char *sql, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(conn, sql, -1, &st, NULL);

    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    } else if (rc == SQLITE_DONE) {
        *out = 0;
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

/* ---- opening and migrating -------------------------------------------- */

/* Sets the connection up: WAL so that readers never block the writer, and
 * synchronous=NORMAL, which in WAL mode loses at most the last commits on a
 * power cut but never corrupts. journal_mode is the first statement that
 * reads the file, so it is where a file that is not a database shows. */
static int configure(db_t *db, const char *path, char *err, size_t errlen)
{
    sqlite3_stmt *st = NULL;
    int rc;

    sqlite3_extended_result_codes(db->conn, 1);
    sqlite3_busy_timeout(db->conn, BUSY_TIMEOUT_MS);
    rc = sqlite3_prepare_v2(db->conn, "PRAGMA journal_mode=WAL", -1, &st, NULL);
    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW || rc == SQLITE_DONE)
            rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db->conn, "PRAGMA synchronous=NORMAL", NULL, NULL, NULL);
    if (rc != SQLITE_OK) {
        set_err(err, errlen, "%s: %s", path, sqlite3_errmsg(db->conn));
        return -1;
    }
    return 0;
}

/* Brings the file to DB_SCHEMA_VERSION. The check is repeated inside a
 * write transaction so that two processes opening a new file at once do not
 * both run the migrations. */
static int migrate(db_t *db, const char *path, char *err, size_t errlen)
{
    int64_t app_id = 0, version = 0, tables = 0;
    int rc;

    rc = query_int(db->conn, "PRAGMA application_id", &app_id);
    if (rc == SQLITE_OK)
        rc = query_int(db->conn, "PRAGMA user_version", &version);
    if (rc != SQLITE_OK)
        goto sql_error;
    if (app_id != 0 && app_id != DB_APPLICATION_ID) {
        set_err(err, errlen, "%s: not an mxscan database (application_id 0x%llx)", path,
                (unsigned long long)app_id);
        return -1;
    }
    if (version > DB_SCHEMA_VERSION) {
        set_err(err, errlen,
                "%s: database schema version %lld is newer than this mxscan knows (%d); "
                "use a newer mxscan",
                path, (long long)version, DB_SCHEMA_VERSION);
        return -1;
    }
    if (version == DB_SCHEMA_VERSION)
        return 0;

    rc = sqlite3_exec(db->conn, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc == SQLITE_OK)
        rc = query_int(db->conn, "PRAGMA user_version", &version);
    if (rc == SQLITE_OK)
        rc = query_int(
            db->conn, "SELECT count(*) FROM sqlite_schema WHERE name NOT LIKE 'sqlite_%'", &tables);
    if (rc != SQLITE_OK)
        goto sql_error;
    /* A version-0 file with tables was written by something else: adding
     * ours to it would mix two applications' data in one file. */
    if (version == 0 && tables > 0 && app_id == 0) {
        sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
        set_err(err, errlen, "%s: not an mxscan database (it holds other tables)", path);
        return -1;
    }
    for (int64_t v = version; v < DB_SCHEMA_VERSION; v++) {
        rc = sqlite3_exec(db->conn, migrations[v], NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            set_err(err, errlen, "%s: migration to schema version %lld failed: %s", path,
                    (long long)v + 1, sqlite3_errmsg(db->conn));
            sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
            return -1;
        }
    }
    {
        char sql[96];
        snprintf(sql, sizeof(sql), "PRAGMA user_version=%d; PRAGMA application_id=%d",
                 DB_SCHEMA_VERSION, DB_APPLICATION_ID);
        rc = sqlite3_exec(db->conn, sql, NULL, NULL, NULL);
    }
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(db->conn, "COMMIT", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        goto sql_error;
    return 0;

sql_error:
    set_err(err, errlen, "%s: %s", path, sqlite3_errmsg(db->conn));
    if (!sqlite3_get_autocommit(db->conn))
        sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
    return -1;
}

/* Opens (creating if needed) and migrates a results database. */
db_t *db_open(const char *path, char *err, size_t errlen)
{
    pthread_condattr_t ca;
    db_t *db;
    int rc;

    if (path == NULL) {
        set_err(err, errlen, "no database path");
        return NULL;
    }
    db = calloc(1, sizeof(*db));
    if (db == NULL) {
        set_err(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    db->scan_id = -1;
    pthread_mutex_init(&db->mu, NULL);
    /* Commit deadlines are on the monotonic clock, so is the wait. */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&db->cv, &ca);
    pthread_condattr_destroy(&ca);

    rc = sqlite3_open_v2(path, &db->conn, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL);
    if (rc != SQLITE_OK) {
        set_err(err, errlen, "%s: %s", path,
                db->conn != NULL ? sqlite3_errmsg(db->conn) : sqlite3_errstr(rc));
        db_close(db);
        return NULL;
    }
    if (configure(db, path, err, errlen) < 0 || migrate(db, path, err, errlen) < 0) {
        db_close(db);
        return NULL;
    }
    return db;
}

/* Stops the writer if it runs, drops unwritten batches, closes the file. */
void db_close(db_t *db)
{
    if (db == NULL)
        return;
    db_writer_stop(db);
    while (db->head != NULL) {
        db_batch_t *b = db->head;
        db->head = b->next;
        db_batch_free(b);
    }
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        sqlite3_finalize(db->cache[i].stmt);
        free(db->cache[i].sql);
    }
    free(db->sql);
    /* close_v2, so that a statement a tool forgot does not keep the file
     * open behind our back: it is closed when that statement is. */
    sqlite3_close_v2(db->conn);
    pthread_cond_destroy(&db->cv);
    pthread_mutex_destroy(&db->mu);
    free(db);
}

/* The SQLite connection, for readers while no writer runs. */
struct sqlite3 *db_handle(db_t *db)
{
    return db->conn;
}

/* ---- the scans row ---------------------------------------------------- */

/* Inserts the scans row of a new scan and makes it current. */
int64_t db_scan_begin(db_t *db, const char *arguments_json, const char *version, char *err,
                      size_t errlen)
{
    static const char sql[] =
        "INSERT INTO scans(started_at, status, arguments, version) VALUES(?, 'running', ?, ?)";
    sqlite3_stmt *st = NULL;
    char now[32];
    int rc;

    if (db->running) {
        set_err(err, errlen, "cannot begin a scan while the writer runs");
        return -1;
    }
    db_now_iso(now);
    rc = sqlite3_prepare_v2(db->conn, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, now, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, arguments_json != NULL ? arguments_json : "[]", -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, version != NULL ? version : MXSCAN_VERSION, -1, SQLITE_STATIC);
        rc = sqlite3_step(st);
    }
    if (rc != SQLITE_DONE) {
        set_err(err, errlen, "cannot record the scan: %s", sqlite3_errmsg(db->conn));
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    db->scan_id = sqlite3_last_insert_rowid(db->conn);
    return db->scan_id;
}

/* Makes an unfinished scan current again (mxscan scan --resume). */
int db_scan_resume(db_t *db, int64_t scan_id, char *err, size_t errlen)
{
    static const char sql[] = "UPDATE scans SET status = 'running', ended_at = NULL, "
                              "resumed = resumed + 1 WHERE id = ? AND status <> 'done'";
    sqlite3_stmt *st = NULL;
    int rc;

    if (db->running) {
        set_err(err, errlen, "cannot resume a scan while the writer runs");
        return -1;
    }
    rc = sqlite3_prepare_v2(db->conn, sql, -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_int64(st, 1, scan_id);
        rc = sqlite3_step(st);
    }
    if (rc != SQLITE_DONE || sqlite3_changes(db->conn) != 1) {
        set_err(err, errlen, "cannot resume scan %lld: %s", (long long)scan_id,
                rc != SQLITE_DONE ? sqlite3_errmsg(db->conn) : "no unfinished scan with that id");
        sqlite3_finalize(st);
        return -1;
    }
    sqlite3_finalize(st);
    db->scan_id = scan_id;
    return 0;
}

/* The current scan's id, or -1 before db_scan_begin(). */
int64_t db_scan_id(const db_t *db)
{
    return db->scan_id;
}

/* ---- batches ---------------------------------------------------------- */

/* A new, empty batch. Its arrays and arena are allocated on first use. */
db_batch_t *db_batch_new(void)
{
    db_batch_t *b = calloc(1, sizeof(*b));

    if (b != NULL)
        b->next_chunk = CHUNK_MIN;
    return b;
}

/* Frees a batch that was not submitted (db_submit takes ownership). */
void db_batch_free(db_batch_t *b)
{
    if (b == NULL)
        return;
    while (b->chunks != NULL) {
        struct chunk *c = b->chunks;
        b->chunks = c->next;
        free(c);
    }
    free(b->rows);
    free(b->cells);
    free(b);
}

/* The memory a batch holds: its arrays and its arena. */
static size_t batch_bytes(const db_batch_t *b)
{
    size_t n = sizeof(*b) + b->rows_cap * sizeof(struct row) + b->cells_cap * sizeof(struct cell);

    for (const struct chunk *c = b->chunks; c != NULL; c = c->next)
        n += sizeof(*c) + c->cap;
    return n;
}

/* Rows in a batch, counting those a broken batch could not store. */
size_t db_batch_rows(const db_batch_t *b)
{
    return b != NULL ? b->nrows + b->lost_rows : 0;
}

/* Copies len bytes and a terminating NUL into the batch's arena. Ordinary
 * chunks double from CHUNK_MIN to CHUNK_MAX; a large value gets a chunk of
 * its own, linked behind the current one so that it keeps being filled. */
static char *arena_copy(db_batch_t *b, const void *p, size_t len)
{
    struct chunk *c = b->chunks;
    char *dst;

    if (b->broken)
        return NULL;
    if (len >= SIZE_MAX - sizeof(struct chunk) - 1) {
        b->broken = true;
        return NULL;
    }
    if (c == NULL || c->cap - c->used < len + 1) {
        bool own = len + 1 > CHUNK_MAX / 4;
        size_t cap = own ? len + 1 : b->next_chunk;
        struct chunk *n = malloc(sizeof(*n) + cap);

        if (n == NULL) {
            b->broken = true;
            return NULL;
        }
        n->cap = cap;
        n->used = 0;
        if (own && c != NULL) {
            n->next = c->next;
            c->next = n;
        } else {
            n->next = c;
            b->chunks = n;
            if (!own && b->next_chunk < CHUNK_MAX)
                b->next_chunk *= 2;
        }
        c = n;
    }
    dst = c->data + c->used;
    if (len > 0)
        memcpy(dst, p, len);
    dst[len] = '\0';
    c->used += len + 1;
    return dst;
}

/* Makes room for element n of a doubling array: returns arr itself, a
 * bigger copy (updating *cap), or NULL when memory ran out, in which case
 * arr is still valid and still owned by the caller. */
static void *grow(void *arr, size_t *cap, size_t n, size_t size, size_t first)
{
    size_t ncap;
    void *p;

    if (n < *cap)
        return arr;
    ncap = *cap != 0 ? *cap * 2 : first;
    if (ncap > SIZE_MAX / size)
        return NULL;
    p = realloc(arr, ncap * size);
    if (p != NULL)
        *cap = ncap;
    return p;
}

/* Starts a row of table; the values that follow belong to it. */
void db_row(db_batch_t *b, const char *table, unsigned flags)
{
    struct row *rows, *r;
    const char *name;

    if (b == NULL)
        return;
    if (b->broken) {
        b->lost_rows++;
        return;
    }
    rows = table != NULL ? grow(b->rows, &b->rows_cap, b->nrows, sizeof(*rows), 16) : NULL;
    if (rows == NULL) {
        b->broken = true;
        b->lost_rows++;
        return;
    }
    b->rows = rows;
    name = arena_copy(b, table, strlen(table));
    if (name == NULL) {
        b->lost_rows++;
        return;
    }
    r = &b->rows[b->nrows++];
    r->table = name;
    r->flags = flags;
    r->first = b->ncells;
    r->n = 0;
}

/* Appends a cell of the given type to the batch's last row. */
static struct cell *add_cell(db_batch_t *b, const char *col, enum cell_type type)
{
    struct cell *cells, *c;
    const char *name;

    if (b == NULL || b->broken)
        return NULL;
    cells = b->nrows > 0 && col != NULL
                ? grow(b->cells, &b->cells_cap, b->ncells, sizeof(*cells), 128)
                : NULL;
    if (cells == NULL) {
        b->broken = true;
        return NULL;
    }
    b->cells = cells;
    name = arena_copy(b, col, strlen(col));
    if (name == NULL)
        return NULL;
    c = &b->cells[b->ncells++];
    b->rows[b->nrows - 1].n++;
    c->col = name;
    c->type = type;
    c->len = 0;
    return c;
}

/* Adds a copied, length-delimited value (text or blob); NULL is SQL NULL. */
static void add_bytes(db_batch_t *b, const char *col, enum cell_type type, const void *val,
                      size_t len)
{
    struct cell *c = add_cell(b, col, val != NULL ? type : CELL_NULL);

    if (c == NULL || val == NULL)
        return;
    c->v.p = arena_copy(b, val, len);
    c->len = len;
}

/* A text value (NUL-terminated); NULL is SQL NULL. */
void db_text(db_batch_t *b, const char *col, const char *val)
{
    add_bytes(b, col, CELL_TEXT, val, val != NULL ? strlen(val) : 0);
}

/* A text value of len bytes, which may hold NULs; NULL is SQL NULL. */
void db_textn(db_batch_t *b, const char *col, const char *val, size_t len)
{
    add_bytes(b, col, CELL_TEXT, val, len);
}

/* An integer value. */
void db_int(db_batch_t *b, const char *col, int64_t val)
{
    struct cell *c = add_cell(b, col, CELL_INT);

    if (c != NULL)
        c->v.i = val;
}

/* A real value. */
void db_real(db_batch_t *b, const char *col, double val)
{
    struct cell *c = add_cell(b, col, CELL_REAL);

    if (c != NULL)
        c->v.d = val;
}

/* A blob of len bytes; NULL is SQL NULL, a zero length an empty blob. */
void db_blob(db_batch_t *b, const char *col, const void *val, size_t len)
{
    add_bytes(b, col, CELL_BLOB, val, len);
}

/* An explicit SQL NULL. */
void db_null(db_batch_t *b, const char *col)
{
    add_cell(b, col, CELL_NULL);
}

/* Current time as ISO 8601 UTC with milliseconds. */
void db_now_iso(char out[32])
{
    struct timespec ts;
    struct tm tm;
    time_t t;
    size_t n;

    clock_gettime(CLOCK_REALTIME, &ts);
    t = ts.tv_sec;
    gmtime_r(&t, &tm);
    n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ts.tv_nsec / 1000000) % 1000);
}

/* ---- the writer: SQL for a row ---------------------------------------- */

/* Appends to the writer's SQL buffer; false when memory ran out. */
static bool sql_add(db_t *db, const char *s)
{
    size_t n = strlen(s);

    if (db->sql_len + n + 1 > db->sql_cap) {
        size_t cap = db->sql_cap != 0 ? db->sql_cap : 512;
        char *p;

        while (db->sql_len + n + 1 > cap)
            cap *= 2;
        p = realloc(db->sql, cap);
        if (p == NULL)
            return false;
        db->sql = p;
        db->sql_cap = cap;
    }
    memcpy(db->sql + db->sql_len, s, n + 1);
    db->sql_len += n;
    return true;
}

/* Builds the statement for a row into db->sql: an INSERT (OR IGNORE for a
 * guard) with scan_id first except in scans, or the UPDATE of the current
 * scans row, whose id is the last parameter. Returns SQLITE_OK, ROW_BAD for
 * a name that is not a plain identifier or a row with nothing to write, or
 * SQLITE_NOMEM. */
static int build_sql(db_t *db, const db_batch_t *b, const struct row *r)
{
    const struct cell *cells = b->cells + r->first;
    bool update = (r->flags & DB_ROW_SCAN_UPDATE) != 0;
    bool scan_col = !update && strcmp(r->table, "scans") != 0;
    bool ok = true;

    if (!valid_name(r->table) || (r->n == 0 && !scan_col))
        return ROW_BAD;
    for (size_t i = 0; i < r->n; i++)
        if (!valid_name(cells[i].col))
            return ROW_BAD;

    db->sql_len = 0;
    if (update) {
        ok = sql_add(db, "UPDATE scans SET ");
        for (size_t i = 0; i < r->n && ok; i++)
            ok = sql_add(db, i > 0 ? "," : "") && sql_add(db, cells[i].col) && sql_add(db, "=?");
        ok = ok && sql_add(db, " WHERE id=?");
    } else {
        ok = sql_add(db, (r->flags & DB_ROW_GUARD) ? "INSERT OR IGNORE INTO " : "INSERT INTO ") &&
             sql_add(db, r->table) && sql_add(db, "(") && sql_add(db, scan_col ? "scan_id" : "");
        for (size_t i = 0; i < r->n && ok; i++)
            ok = sql_add(db, i > 0 || scan_col ? "," : "") && sql_add(db, cells[i].col);
        ok = ok && sql_add(db, ") VALUES(") && sql_add(db, scan_col ? "?" : "");
        for (size_t i = 0; i < r->n && ok; i++)
            ok = sql_add(db, i > 0 || scan_col ? ",?" : "?");
        ok = ok && sql_add(db, ")");
    }
    return ok ? SQLITE_OK : SQLITE_NOMEM;
}

/* The prepared statement for db->sql, from the cache or newly prepared.
 * Row shapes are few (a table's rows differ only in which optional columns
 * they carry), so an array searched by hash is enough; past CACHE_SLOTS
 * shapes the entries are replaced in turn, which costs a prepare, not a
 * wrong result. */
static int stmt_for_sql(db_t *db, sqlite3_stmt **out)
{
    uint64_t h = hash_sql(db->sql, db->sql_len);
    struct stmt_slot *slot = NULL;
    sqlite3_stmt *st = NULL;
    char *copy;
    int rc;

    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        struct stmt_slot *s = &db->cache[i];
        if (s->stmt == NULL) {
            if (slot == NULL)
                slot = s;
            continue;
        }
        if (s->hash == h && strcmp(s->sql, db->sql) == 0) {
            *out = s->stmt;
            return SQLITE_OK;
        }
    }
    rc = sqlite3_prepare_v3(db->conn, db->sql, (int)db->sql_len + 1, SQLITE_PREPARE_PERSISTENT, &st,
                            NULL);
    if (rc != SQLITE_OK)
        return rc;
    copy = strdup(db->sql);
    if (copy == NULL) {
        sqlite3_finalize(st);
        return SQLITE_NOMEM;
    }
    if (slot == NULL) {
        slot = &db->cache[db->cache_next];
        db->cache_next = (db->cache_next + 1) % CACHE_SLOTS;
        sqlite3_finalize(slot->stmt);
        free(slot->sql);
    }
    slot->hash = h;
    slot->sql = copy;
    slot->stmt = st;
    *out = st;
    return SQLITE_OK;
}

/* Binds one value. Text and blobs stay in the batch's arena until the
 * statement has been stepped and reset, so SQLite need not copy them. */
static int bind_cell(sqlite3_stmt *st, int i, const struct cell *c)
{
    switch (c->type) {
    case CELL_INT:
        return sqlite3_bind_int64(st, i, c->v.i);
    case CELL_REAL:
        return sqlite3_bind_double(st, i, c->v.d);
    case CELL_TEXT:
        return sqlite3_bind_text64(st, i, c->v.p, c->len, SQLITE_STATIC, SQLITE_UTF8);
    case CELL_BLOB:
        return sqlite3_bind_blob64(st, i, c->v.p, c->len, SQLITE_STATIC);
    case CELL_NULL:
    default:
        return sqlite3_bind_null(st, i);
    }
}

/* Writes one row. Returns SQLITE_DONE with *changes set, ROW_BAD, or the
 * SQLite error (a row error or a fatal one, for the caller to tell apart). */
static int write_row(db_t *db, const db_batch_t *b, const struct row *r, int *changes)
{
    const struct cell *cells = b->cells + r->first;
    bool update = (r->flags & DB_ROW_SCAN_UPDATE) != 0;
    sqlite3_stmt *st;
    int rc, p = 1;

    rc = build_sql(db, b, r);
    if (rc == SQLITE_OK)
        rc = stmt_for_sql(db, &st);
    if (rc != SQLITE_OK)
        return rc;
    if (!update && strcmp(r->table, "scans") != 0) {
        /* Without a current scan, NULL makes the NOT NULL constraint
         * report the mistake as a row error. */
        if (db->scan_id > 0)
            rc = sqlite3_bind_int64(st, p++, db->scan_id);
        else
            rc = sqlite3_bind_null(st, p++);
    }
    for (size_t i = 0; i < r->n && rc == SQLITE_OK; i++)
        rc = bind_cell(st, p++, &cells[i]);
    if (rc == SQLITE_OK && update)
        rc = sqlite3_bind_int64(st, p++, db->scan_id);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    *changes = rc == SQLITE_DONE ? sqlite3_changes(db->conn) : 0;
    sqlite3_reset(st);
    return rc;
}

/* Writes a batch into the open transaction. A guard row that was ignored
 * (the domain is already in this scan) or failed skips the rest, which
 * would otherwise belong to no domain row. Returns 0, or a fatal code with
 * *table set to the table of the row that met it. */
static int write_batch(db_t *db, const db_batch_t *b, const char **table)
{
    if (b->broken) {
        db->txn.errors += db_batch_rows(b);
        return 0;
    }
    for (size_t i = 0; i < b->nrows; i++) {
        const struct row *r = &b->rows[i];
        bool guard = (r->flags & DB_ROW_GUARD) && !(r->flags & DB_ROW_SCAN_UPDATE);
        int changes = 0;
        int rc = write_row(db, b, r, &changes);

        if (rc == SQLITE_DONE && changes > 0) {
            db->txn.written++;
            continue;
        }
        if (rc == SQLITE_DONE && guard) {
            db->txn.duplicates++;
            return 0;
        }
        /* SQLite rolls a transaction back by itself after some errors; the
         * rows before this one are then gone and writing must stop. */
        if (rc != ROW_BAD && (is_fatal(rc) || sqlite3_get_autocommit(db->conn))) {
            *table = r->table;
            return rc != SQLITE_DONE ? rc : SQLITE_ABORT;
        }
        /* A constraint, a bad name, or an update that matched no scan. */
        if (guard) {
            db->txn.errors += b->nrows - i;
            return 0;
        }
        db->txn.errors++;
    }
    return 0;
}

/* ---- the writer: transactions and the thread --------------------------- */

/* Stops all writing after an error of the file: rolls the transaction back
 * (so the file keeps only whole commits), records the message, and drops
 * the queue. Rows that will now never be written count as errors. */
static void writer_fail(db_t *db, int rc, const char *what)
{
    char msg[sizeof(db->failmsg)];
    db_batch_t *list;
    uint64_t lost = db->txn.rows;

    snprintf(msg, sizeof(msg), "database write failed (%s): %s", what,
             rc == SQLITE_ABORT ? "transaction rolled back" : sqlite3_errmsg(db->conn));
    if (!sqlite3_get_autocommit(db->conn))
        sqlite3_exec(db->conn, "ROLLBACK", NULL, NULL, NULL);
    memset(&db->txn, 0, sizeof(db->txn));
    db->wfailed = true;

    pthread_mutex_lock(&db->mu);
    db->failed = true;
    memcpy(db->failmsg, msg, sizeof(msg));
    list = db->head;
    db->head = db->tail = NULL;
    db->queued_batches = 0;
    for (db_batch_t *b = list; b != NULL; b = b->next) {
        lost += db_batch_rows(b);
        db->queued_bytes -= b->bytes < db->queued_bytes ? b->bytes : db->queued_bytes;
    }
    db->stats.errors += lost;
    db->backlog -= lost < db->backlog ? lost : db->backlog;
    pthread_mutex_unlock(&db->mu);

    while (list != NULL) {
        db_batch_t *b = list;
        list = b->next;
        db_batch_free(b);
    }
    /* The loop learns of the failure the way it learns of progress. */
    if (db->notify != NULL)
        db->notify(db->notify_arg);
}

/* Frees a batch taken from the queue after the writer failed. */
static void writer_discard(db_t *db, db_batch_t *b)
{
    size_t n = db_batch_rows(b);

    pthread_mutex_lock(&db->mu);
    db->stats.errors += n;
    db->backlog -= n < db->backlog ? n : db->backlog;
    pthread_mutex_unlock(&db->mu);
    db_batch_free(b);
}

/* Commits the open transaction and publishes what it did. */
static void writer_commit(db_t *db)
{
    int rc = sqlite3_exec(db->conn, "COMMIT", NULL, NULL, NULL);

    if (rc != SQLITE_OK) {
        writer_fail(db, rc, "commit");
        return;
    }
    pthread_mutex_lock(&db->mu);
    db->stats.rows += db->txn.written;
    db->stats.errors += db->txn.errors;
    db->stats.duplicates += db->txn.duplicates;
    db->stats.commits++;
    db->committed += db->txn.batches;
    db->backlog -= db->txn.rows < db->backlog ? db->txn.rows : db->backlog;
    pthread_mutex_unlock(&db->mu);
    memset(&db->txn, 0, sizeof(db->txn));
    if (db->notify != NULL)
        db->notify(db->notify_arg);
}

/* Writes one batch, opening a transaction first if none is open and
 * committing after it once the transaction is big or old enough. Batches
 * are never split, so a domain's rows share a transaction. */
static void writer_batch(db_t *db, const db_batch_t *b)
{
    const char *table = "?";
    int rc;

    if (!db->txn.open) {
        /* IMMEDIATE takes the write lock now, so that a competing writer
         * shows up here (after the busy timeout) and not mid-batch. */
        rc = sqlite3_exec(db->conn, "BEGIN IMMEDIATE", NULL, NULL, NULL);
        if (rc != SQLITE_OK) {
            db->txn.rows = db_batch_rows(b);
            writer_fail(db, rc, "begin");
            return;
        }
        db->txn.open = true;
        db->txn.started_ms = mono_ms();
    }
    db->txn.rows += db_batch_rows(b);
    db->txn.batches++;
    rc = write_batch(db, b, &table);
    if (rc != 0) {
        char what[NAME_MAX_LEN + 16];
        snprintf(what, sizeof(what), "writing %s", table);
        writer_fail(db, rc, what);
        return;
    }
    if (db->txn.rows >= COMMIT_ROWS || mono_ms() - db->txn.started_ms >= COMMIT_MS)
        writer_commit(db);
}

/* Waits on the condition variable until a monotonic deadline. */
static void wait_until(db_t *db, uint64_t due_ms)
{
    struct timespec ts = {
        .tv_sec = (time_t)(due_ms / 1000),
        .tv_nsec = (long)(due_ms % 1000) * 1000000L,
    };

    pthread_cond_timedwait(&db->cv, &db->mu, &ts);
}

/* The writer thread: takes the whole queue at once, writes it outside the
 * lock, and commits when the transaction is full, old, or the queue has
 * been empty for IDLE_MS (so that a slow trickle is not held back long). */
static void *writer_main(void *arg)
{
    db_t *db = arg;
    uint64_t last_ms = mono_ms();
    size_t taken_bytes;

    pthread_mutex_lock(&db->mu);
    for (;;) {
        db_batch_t *list;

        if (db->head == NULL) {
            uint64_t due, now;

            if (db->stopping)
                break;
            if (!db->txn.open) {
                db->writer_idle = true;
                pthread_cond_wait(&db->cv, &db->mu);
                db->writer_idle = false;
                continue;
            }
            due = db->txn.started_ms + COMMIT_MS;
            if (last_ms + IDLE_MS < due)
                due = last_ms + IDLE_MS;
            now = mono_ms();
            if (now < due) {
                wait_until(db, due);
                continue;
            }
            pthread_mutex_unlock(&db->mu);
            writer_commit(db);
            pthread_mutex_lock(&db->mu);
            continue;
        }
        list = db->head;
        db->head = db->tail = NULL;
        db->queued_batches = 0;
        /* The lists taken before were subtracted when done: what is queued
         * now is this list. */
        taken_bytes = db->queued_bytes;
        pthread_mutex_unlock(&db->mu);
        while (list != NULL) {
            db_batch_t *b = list;
            list = b->next;
            if (db->wfailed) {
                writer_discard(db, b);
                continue;
            }
            writer_batch(db, b);
            db_batch_free(b);
        }
        last_ms = mono_ms();
        pthread_mutex_lock(&db->mu);
        db->queued_bytes -= taken_bytes < db->queued_bytes ? taken_bytes : db->queued_bytes;
    }
    pthread_mutex_unlock(&db->mu);
    if (db->txn.open)
        writer_commit(db);
    return NULL;
}

/* Starts the writer thread, which owns the connection until db_writer_stop. */
int db_writer_start(db_t *db, void (*notify)(void *arg), void *arg, char *err, size_t errlen)
{
    int rc;

    if (db->running) {
        set_err(err, errlen, "the database writer is already running");
        return -1;
    }
    pthread_mutex_lock(&db->mu);
    if (db->failed) {
        set_err(err, errlen, "%s", db->failmsg);
        pthread_mutex_unlock(&db->mu);
        return -1;
    }
    db->stopping = false;
    pthread_mutex_unlock(&db->mu);
    db->notify = notify;
    db->notify_arg = arg;
    rc = pthread_create(&db->thread, NULL, writer_main, db);
    if (rc != 0) {
        set_err(err, errlen, "cannot start the database writer: %s", strerror(rc));
        return -1;
    }
    db->running = true;
    return 0;
}

/* Queues a batch for the writer; only the mutex is taken. After a failure
 * the batch is freed at once: it could never be written. */
uint64_t db_submit(db_t *db, db_batch_t *b)
{
    uint64_t seq;

    if (b == NULL)
        return 0;
    b->bytes = batch_bytes(b);
    pthread_mutex_lock(&db->mu);
    if (db->failed || db_batch_rows(b) == 0) {
        db->stats.errors += db->failed ? db_batch_rows(b) : 0;
        pthread_mutex_unlock(&db->mu);
        db_batch_free(b);
        return 0;
    }
    seq = ++db->submitted;
    b->next = NULL;
    if (db->tail != NULL)
        db->tail->next = b;
    else
        db->head = b;
    db->tail = b;
    db->backlog += db_batch_rows(b);
    db->queued_bytes += b->bytes;
    /* A writer with a transaction open looks at the queue again within
     * IDLE_MS by itself; waking it for every batch would cost two system
     * calls and a context switch per batch. */
    if (db->writer_idle || ++db->queued_batches >= WAKE_BATCHES)
        pthread_cond_signal(&db->cv);
    pthread_mutex_unlock(&db->mu);
    return seq;
}

/* Batches in committed transactions: the writer takes batches in order, so
 * batch number seq (from db_submit) is on disk once this is >= seq. */
uint64_t db_committed(db_t *db)
{
    uint64_t n;

    pthread_mutex_lock(&db->mu);
    n = db->committed;
    pthread_mutex_unlock(&db->mu);
    return n;
}

/* Reads one of the queue's counters under the lock. */
static size_t read_locked(db_t *db, const size_t *counter)
{
    size_t n;

    pthread_mutex_lock(&db->mu);
    n = *counter;
    pthread_mutex_unlock(&db->mu);
    return n;
}

/* Rows submitted and not yet committed (nor given up after a failure). */
size_t db_backlog(db_t *db)
{
    return read_locked(db, &db->backlog);
}

/* Memory held by batches submitted and not yet written. Thread-safe. */
size_t db_backlog_bytes(db_t *db)
{
    return read_locked(db, &db->queued_bytes);
}

/* Whether the writer has stopped on an error of the file, and which. */
int db_failed(db_t *db, char *err, size_t errlen)
{
    int failed;

    pthread_mutex_lock(&db->mu);
    failed = db->failed;
    if (failed)
        set_err(err, errlen, "%s", db->failmsg);
    pthread_mutex_unlock(&db->mu);
    return failed;
}

/* Lets the writer commit everything queued, then joins it. Returns -1 if
 * the writer failed (see db_failed), else 0. */
int db_writer_stop(db_t *db)
{
    if (db->running) {
        pthread_mutex_lock(&db->mu);
        db->stopping = true;
        pthread_cond_signal(&db->cv);
        pthread_mutex_unlock(&db->mu);
        pthread_join(db->thread, NULL);
        db->running = false;
    }
    return db_failed(db, NULL, 0) ? -1 : 0;
}

/* A snapshot of the writer's counters, as of its last commit. */
void db_writer_stats(db_t *db, db_stats_t *out)
{
    pthread_mutex_lock(&db->mu);
    *out = db->stats;
    pthread_mutex_unlock(&db->mu);
}
