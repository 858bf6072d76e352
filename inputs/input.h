/*
 * input.h - streaming readers for domain lists.
 *
 * Domains come from command-line arguments, a file, or standard input ("-"),
 * one per line or as CSV with the domain in a chosen column; gzip input is
 * recognised by its magic bytes and read through zlib. Reading is streamed:
 * one line at a time from a fixed buffer, so memory does not grow with the
 * length of the input. Each call to input_next() returns the next domain,
 * or the next rejected line with its line number and reason; blank lines and
 * '#' comments are skipped silently. Duplicate detection is not done here:
 * see input_dedup_*.
 */
#ifndef MXSCAN_INPUT_H
#define MXSCAN_INPUT_H

#include <stddef.h>
#include <stdint.h>

#define INPUT_NAME_MAX 253  /* octets in a name without the trailing dot */
#define INPUT_LINE_MAX 4096 /* longer lines are rejected ("line too long") */
#define INPUT_CSV_AUTO 0    /* csv_column: plain lines, or "rank,domain" lines */

typedef struct input input_t;

typedef enum input_status {
    INPUT_DOMAIN = 0, /* item->domain holds a valid, normalised name */
    INPUT_REJECT,     /* item->reason and item->text say what was wrong */
    INPUT_EOF,
    INPUT_ERROR, /* read error (corrupt gzip stream, I/O); message in item->reason */
} input_status_t;

typedef struct input_item {
    uint64_t line;                   /* 1-based line number */
    char domain[INPUT_NAME_MAX + 1]; /* valid with INPUT_DOMAIN */
    const char *reason;              /* static string, valid with INPUT_REJECT/ERROR */
    char text[256];                  /* the offending line, truncated, valid with INPUT_REJECT */
} input_item_t;

/* Opens a file ("-" is standard input). csv_column: INPUT_CSV_AUTO (0), or
 * N >= 1 to take the N-th comma-separated field of every line. Returns NULL
 * with a message in err. */
input_t *input_open_file(const char *path, int csv_column, char *err, size_t errlen);
/* Reads the given strings as if they were lines of a file. */
input_t *input_open_args(char *const *names, int count);
input_status_t input_next(input_t *in, input_item_t *item);
void input_close(input_t *in);

/* For progress: bytes consumed of the (compressed) source and its size
 * (0 when unknown: stdin, arguments). */
uint64_t input_bytes_read(const input_t *in);
uint64_t input_bytes_total(const input_t *in);
int input_is_gzip(const input_t *in);

/*
 * Normalises one field into out (lower case, no surrounding space, no
 * trailing dot) and checks it is a valid host name: labels of 1..63 octets
 * of letters, digits, '-' and '_' (no leading or trailing '-'), at most 253
 * octets in all, at least two labels, not an IP literal. Returns 0, or -1
 * with a static reason.
 */
int input_normalize(const char *field, size_t len, char out[INPUT_NAME_MAX + 1],
                    const char **reason);

/*
 * Duplicate filter of fixed size: remembers the fingerprints of recently
 * seen names in a table allocated once (mem bytes). A hit is a certain
 * duplicate; a miss may be a duplicate that was evicted, which the database
 * catches (domains has a primary key). Memory never grows with input size.
 */
typedef struct input_dedup input_dedup_t;
input_dedup_t *input_dedup_new(size_t mem);
/* Returns 1 if name was seen before (and records it if not). */
int input_dedup_seen(input_dedup_t *d, const char *name);

/* The shard (0 .. n-1) a normalised domain belongs to with --shard I/N:
 * FNV-1a 64 of the name, modulo n. Stable across versions and machines:
 * N machines given the same list and I = 0 .. N-1 split it without overlap. */
unsigned input_shard_of(const char *name, unsigned n);
void input_dedup_free(input_dedup_t *d);

#endif
