/*
 * db.h - the results database: schema, migrations and the writer.
 *
 * The scanner never touches SQLite on its event loop. It builds rows into a
 * db_batch_t (named columns, copied values) and hands the batch to the
 * writer thread with db_submit(), which returns at once. The writer thread
 * owns the connection, binds rows to cached prepared statements and commits
 * in batched transactions. The loop learns of progress through the optional
 * notify callback (called on the writer thread: use uv_async_send) and of
 * back-pressure through db_backlog().
 */
#ifndef MXSCAN_DB_H
#define MXSCAN_DB_H

#include <stddef.h>
#include <stdint.h>

typedef struct db db_t;
typedef struct db_batch db_batch_t;

/* Row flags for db_row(). */
enum {
    /* INSERT OR IGNORE; if the row was ignored (a duplicate by the table's
     * primary key), the rest of this batch is skipped and counted as a
     * duplicate. Used for the domains row that opens a domain's batch. */
    DB_ROW_GUARD = 1u << 0,
    /* UPDATE scans SET <columns> WHERE id = <current scan>. */
    DB_ROW_SCAN_UPDATE = 1u << 1,
};

typedef struct db_stats {
    uint64_t rows;       /* rows written */
    uint64_t duplicates; /* batches skipped by a DB_ROW_GUARD row */
    uint64_t commits;    /* transactions committed */
    uint64_t errors;     /* rows that failed (constraint, I/O) */
} db_stats_t;

/* Opens (creating if needed) and migrates a results database to the
 * current schema. WAL mode. Returns NULL with a message in err. */
db_t *db_open(const char *path, char *err, size_t errlen);
void db_close(db_t *db);

/* The SQLite handle, for the tools and tests that read (not for the
 * scanner while the writer runs). */
struct sqlite3 *db_handle(db_t *db);

/* Inserts a scans row (status 'running') and makes it the current scan;
 * every later row gets its scan_id. Returns the id, or -1 with err. */
int64_t db_scan_begin(db_t *db, const char *arguments_json, const char *version, char *err,
                      size_t errlen);
int64_t db_scan_id(const db_t *db);
/* Makes an unfinished scan (status not 'done') the current scan again:
 * status 'running', resumed + 1. Returns 0, or -1 with err. */
int db_scan_resume(db_t *db, int64_t scan_id, char *err, size_t errlen);

/* Starts the writer thread. notify, if not NULL, is called from the writer
 * thread after each commit. Returns 0 or -1 with err. */
int db_writer_start(db_t *db, void (*notify)(void *arg), void *arg, char *err, size_t errlen);
/* Hands a batch to the writer (takes ownership). Never blocks on disk.
 * Returns the batch's sequence number (1, 2, ...; 0 if it was dropped:
 * empty, or the writer has failed). */
uint64_t db_submit(db_t *db, db_batch_t *b);
/* Batches committed so far, in submission order: the batch with sequence
 * number seq is on disk once db_committed() >= seq. Thread-safe. */
uint64_t db_committed(db_t *db);
/* Rows submitted but not yet committed. Thread-safe. */
size_t db_backlog(db_t *db);
/* Bytes of memory held by batches submitted and not yet written (their
 * arenas and arrays): what the queue costs while the writer lags. */
size_t db_backlog_bytes(db_t *db);
/* Non-zero once the writer hit an error it cannot go past (disk full, I/O
 * error, database locked beyond the busy timeout); message in err. */
int db_failed(db_t *db, char *err, size_t errlen);
/* Commits everything submitted and joins the writer thread. */
int db_writer_stop(db_t *db);
void db_writer_stats(db_t *db, db_stats_t *out);

/* Batches: rows of named columns. Values are copied. A NULL text is SQL NULL.
 * scan_id is added by the writer to every table except scans. */
db_batch_t *db_batch_new(void);
void db_batch_free(db_batch_t *b);
size_t db_batch_rows(const db_batch_t *b);
void db_row(db_batch_t *b, const char *table, unsigned flags);
void db_text(db_batch_t *b, const char *col, const char *val);
void db_textn(db_batch_t *b, const char *col, const char *val, size_t len);
void db_int(db_batch_t *b, const char *col, int64_t val);
void db_real(db_batch_t *b, const char *col, double val);
void db_blob(db_batch_t *b, const char *col, const void *val, size_t len);
void db_null(db_batch_t *b, const char *col);

/* Current time as ISO 8601 UTC with milliseconds, e.g. 2026-11-22T20:42:00.123Z. */
void db_now_iso(char out[32]);

#endif
