/*
 * tools.h - the subcommands of mxscan that work on a results database, and
 * what they share. Each command parses its own flags (getopt_long), opens
 * the database with db_open() (which migrates a file written by an older
 * mxscan), and prints to stdout; errors go to stderr with exit status 2 for
 * bad usage and 1 for a failure.
 */
#ifndef MXSCAN_TOOLS_H
#define MXSCAN_TOOLS_H

#include <stdint.h>
#include <stdio.h>

/* Subcommands; argv[0] is the subcommand's name. */
int cmd_stats(int argc, char **argv);
int cmd_export(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_merge(int argc, char **argv);

struct sqlite3;

/* Runs SQL that yields one integer, binding ?1 = p1 and ?2 = p2 when the
 * statement has them. Returns 1 with *out set (the first column of the
 * first row), 0 when it yields no row (or is not a query), -1 on an SQL
 * error (the message stays in the connection). */
int tools_query_int(struct sqlite3 *c, const char *sql, int64_t p1, int64_t p2, int64_t *out);

/* A one-line remedy for a finding code (FINDINGS.md codes), for the "what
 * to fix" panels of report and check; a generic sentence for unknown codes. */
const char *remedy_for(const char *code);

/*
 * A progress display for work that may take more than a second: on a
 * terminal, one line on stderr redrawn at most 4 times a second, shown only
 * after the first second; off a terminal or with quiet set, nothing.
 */
typedef struct progress {
    const char *what; /* "exporting domains" */
    uint64_t total;   /* 0 when unknown */
    uint64_t done;
    uint64_t t0_ms, last_ms;
    int tty, quiet, shown;
} progress_t;

void progress_start(progress_t *p, const char *what, uint64_t total, int quiet);
/* Counts n more items done and redraws when it is time. Cheap to call often. */
void progress_add(progress_t *p, uint64_t n);
/* Clears the line (if one was drawn). */
void progress_end(progress_t *p);

#endif
