/*
 * input.c - streaming readers for domain lists (files, stdin, arguments).
 *
 * This file owns the reading side of input.h: opening a file or standard
 * input, telling gzip from plain data, splitting lines, picking the CSV
 * field, and the syntax check of one name (input_normalize). The duplicate
 * filter lives in dedup.c.
 *
 * Memory is fixed per reader: one 64 KiB buffer of raw bytes, one 64 KiB
 * buffer of inflated bytes, one line buffer of INPUT_LINE_MAX bytes and
 * zlib's inflate state. A line longer than INPUT_LINE_MAX is not buffered:
 * its head is kept for the reject message and the rest is skipped up to the
 * next newline.
 *
 * Gzip is recognised by its magic bytes 1f 8b at the start of the input and
 * decoded with zlib's inflate() rather than gzread(): gzread() discards
 * everything it decoded in a call that ends in an error (a bad CRC at the end
 * of a small file loses the whole file), while inflate() reports how far it
 * got, so every complete line before a corrupt spot is still delivered and
 * INPUT_ERROR comes after them. Concatenated gzip members are read in turn;
 * bytes after the last member that do not start another one are ignored,
 * as gzip(1) does with trailing zero padding.
 *
 * Line rules, in order:
 *   - "\n" ends a line, and one '\r' before it is dropped; a last line
 *     without newline counts. A UTF-8 BOM at the start of a file is skipped.
 *   - A line whose first non-blank character is '#' is a comment, skipped
 *     silently whatever its length or content.
 *   - A line of more than INPUT_LINE_MAX octets is rejected ("line too
 *     long").
 *   - A NUL byte anywhere in a line rejects it ("NUL byte"), even in a
 *     trailing comment: NULs mean a binary or UTF-16 file, which is better
 *     reported than half read.
 *   - A '#' outside double quotes starts a comment that runs to the end of
 *     the line. What remains is trimmed of spaces and tabs; if nothing does,
 *     the line is skipped silently.
 *   - csv_column N >= 1: the N-th comma-separated field is taken; a field
 *     may be double-quoted, with "" standing for one quote. Fewer fields:
 *     rejected ("no column N").
 *   - csv_column INPUT_CSV_AUTO: when the line has a comma and its first
 *     field is a number (ASCII digits, blanks around allowed), as in the
 *     "rank,domain" top lists, the second field is taken; otherwise the
 *     whole line is the name. The first line that is neither blank nor a
 *     comment is skipped silently when it is exactly a header, "rank,domain"
 *     or "domain" (any case). Names contain no commas, so the rule cannot
 *     misread a plain list.
 *   - The field goes through input_normalize().
 *
 * A reader returns INPUT_ERROR once (I/O error, corrupt or truncated gzip)
 * and INPUT_EOF after that, so that a loop that logs errors and goes on
 * still ends. Reasons that are not string literals ("no column N", error
 * messages) live in the reader and stay valid until input_close().
 */
#include "inputs/input.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* Bytes per read(2) and per inflate() output. The fuzz harness compiles
 * this file with a tiny value, so that lines, CRLFs and gzip members cross
 * buffer boundaries in almost every input it tries. */
#ifndef INPUT_CHUNK
#define INPUT_CHUNK (64 * 1024)
#endif
#define CHUNK INPUT_CHUNK

enum src_kind { SRC_FILE, SRC_ARGS };

struct input {
    enum src_kind kind;
    int csv_column;
    uint64_t line;    /* number of the last line taken */
    int seen_content; /* a line other than blank or comment was seen */
    int done;         /* EOF or error returned: only INPUT_EOF from now on */

    /* arguments */
    char *const *args;
    int nargs;

    /* file */
    int fd;
    int close_fd; /* 0 for standard input, which belongs to the caller */
    int peeked;   /* first bytes read and the format decided */
    int gzip;
    int raw_eof;               /* read(2) returned 0 */
    uint64_t raw_read;         /* bytes returned by read(2) so far */
    uint64_t size;             /* st_size of a regular file, else 0 */
    unsigned char *raw;        /* CHUNK bytes as read */
    size_t raw_len;            /* bytes in raw after the first read (peek) */
    unsigned char *out;        /* CHUNK bytes inflated (gzip only) */
    const unsigned char *data; /* what the line splitter consumes */
    size_t data_len, data_pos;
    z_stream zs;
    int zs_init;
    int in_member;           /* inside a gzip member (not between members) */
    const char *pending_err; /* error to report once data before it is used */

    /* the line being assembled across buffer refills */
    char lbuf[INPUT_LINE_MAX + 1];
    size_t llen;
    int too_long; /* lbuf overflowed: the rest of the line is being skipped */

    char field[INPUT_LINE_MAX + 1]; /* unquoted CSV field */
    char nocol[32];                 /* "no column N" */
    char errmsg[160];               /* text of an INPUT_ERROR */
};

/* Copies an error message into err, which may be NULL or empty. */
static void set_err(char *err, size_t errlen, const char *fmt, const char *a, const char *b)
{
    if (err && errlen > 0)
        snprintf(err, errlen, fmt, a, b);
}

/* Allocates a reader with its fields cleared and the "no column" reason set. */
static input_t *reader_new(enum src_kind kind, int csv_column)
{
    input_t *in = calloc(1, sizeof(*in));
    if (!in)
        return NULL;
    in->kind = kind;
    in->csv_column = csv_column;
    in->fd = -1;
    snprintf(in->nocol, sizeof(in->nocol), "no column %d", csv_column);
    return in;
}

/* read(2) into raw, retrying on EINTR; returns bytes, 0 at EOF, -1 on error. */
static ssize_t read_raw(input_t *in, size_t off)
{
    ssize_t n;
    do {
        n = read(in->fd, in->raw + off, CHUNK - off);
    } while (n < 0 && errno == EINTR);
    if (n > 0)
        in->raw_read += (uint64_t)n;
    else if (n == 0)
        in->raw_eof = 1;
    return n;
}

/* Stores an error text in the reader and returns it as the reason. */
static const char *reader_error(input_t *in, const char *msg)
{
    snprintf(in->errmsg, sizeof(in->errmsg), "%s", msg ? msg : "read error");
    return in->errmsg;
}

/*
 * Reads the first bytes and decides between gzip and plain. At least two
 * bytes are needed to see the magic, and a pipe may deliver one at a time.
 * Returns NULL, or an error message.
 */
static const char *peek_format(input_t *in)
{
    in->peeked = 1;
    while (in->raw_len < 2 && !in->raw_eof) {
        ssize_t n = read_raw(in, in->raw_len);
        if (n < 0)
            return reader_error(in, strerror(errno));
        in->raw_len += (size_t)n;
    }
    if (in->raw_len >= 2 && in->raw[0] == 0x1f && in->raw[1] == 0x8b) {
        /* 15 + 16: gzip wrapper only, largest window. */
        if (inflateInit2(&in->zs, 15 + 16) != Z_OK)
            return reader_error(in, "out of memory");
        in->zs_init = 1;
        in->gzip = 1;
        in->in_member = 1;
        in->zs.next_in = in->raw;
        in->zs.avail_in = (uInt)in->raw_len;
        in->data = in->out;
        in->data_len = 0;
    } else {
        in->data = in->raw;
        in->data_len = in->raw_len;
    }
    in->data_pos = 0;
    return NULL;
}

/*
 * Inflates into out until at least one byte is produced. Returns the number
 * of bytes (0 at the end of the data), or -1 with *err set. An error met
 * after some output is held back in pending_err and reported on the next
 * call, so the caller gets the good bytes first.
 */
static ssize_t fill_gzip(input_t *in, const char **err)
{
    z_stream *zs = &in->zs;
    if (in->pending_err) {
        *err = in->pending_err;
        return -1;
    }
    zs->next_out = in->out;
    zs->avail_out = CHUNK;
    while (zs->avail_out == CHUNK) {
        if (zs->avail_in == 0 && !in->raw_eof) {
            ssize_t n = read_raw(in, 0);
            if (n < 0) {
                in->pending_err = reader_error(in, strerror(errno));
                break;
            }
            zs->next_in = in->raw;
            zs->avail_in = (uInt)n;
        }
        if (zs->avail_in == 0 && in->raw_eof) {
            if (in->in_member) /* the text gzread() uses for a truncated file */
                in->pending_err = reader_error(in, "unexpected end of file");
            break;
        }
        if (!in->in_member) {
            /* Another member must start with the magic; anything else is
             * trailing padding, ignored as gzip(1) does. A 1f followed by a
             * wrong second byte is left to inflate() to report. */
            if (zs->next_in[0] != 0x1f) {
                zs->avail_in = 0;
                in->raw_eof = 1;
                break;
            }
            if (inflateReset(zs) != Z_OK) {
                in->pending_err = reader_error(in, "inflateReset failed");
                break;
            }
            in->in_member = 1;
        }
        int ret = inflate(zs, Z_NO_FLUSH);
        if (ret == Z_STREAM_END) {
            in->in_member = 0;
        } else if (ret == Z_MEM_ERROR) {
            in->pending_err = reader_error(in, "out of memory");
            break;
        } else if (ret != Z_OK && ret != Z_BUF_ERROR) {
            in->pending_err = reader_error(in, zs->msg ? zs->msg : "corrupt gzip data");
            break;
        }
    }
    size_t got = CHUNK - zs->avail_out;
    if (got == 0 && in->pending_err) {
        *err = in->pending_err;
        return -1;
    }
    return (ssize_t)got;
}

/* Refills data with the next bytes: 1 if there are some, 0 at EOF, -1 on error. */
static int refill(input_t *in, const char **err)
{
    if (in->gzip) {
        ssize_t n = fill_gzip(in, err);
        if (n <= 0)
            return (int)n;
        in->data_len = (size_t)n;
    } else {
        if (in->raw_eof)
            return 0;
        ssize_t n = read_raw(in, 0);
        if (n < 0) {
            *err = reader_error(in, strerror(errno));
            return -1;
        }
        if (n == 0)
            return 0;
        in->data_len = (size_t)n;
    }
    in->data_pos = 0;
    return 1;
}

/* Copies a raw line into item->text, truncated, with non-printables as '?'. */
static void set_text(input_item_t *item, const char *p, size_t n)
{
    if (n > sizeof(item->text) - 1)
        n = sizeof(item->text) - 1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        item->text[i] = (c < 0x20 || c >= 0x7f) ? '?' : (char)c;
    }
    item->text[n] = '\0';
}

/* Fills item as a reject of the given line. */
static input_status_t reject(input_item_t *item, const char *reason, const char *p, size_t n)
{
    item->domain[0] = '\0';
    item->reason = reason;
    set_text(item, p, n);
    return INPUT_REJECT;
}

/* True for the blanks that are trimmed around lines and fields. */
static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Length of the line before a '#' that is not inside double quotes. */
static size_t comment_cut(const char *p, size_t n)
{
    int quoted = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '"')
            quoted = !quoted;
        else if (p[i] == '#' && !quoted)
            return i;
    }
    return n;
}

/*
 * Finds CSV field col (1-based) of p[0..n). An unquoted field is returned
 * in place; a quoted one is unescaped into buf (at least n bytes), with any
 * text between the closing quote and the comma kept as is. Returns 0, or -1
 * when the line has fewer fields.
 */
static int csv_field(const char *p, size_t n, int col, char *buf, const char **f, size_t *flen)
{
    size_t i = 0;
    for (int field = 1;; field++) {
        size_t j = i;
        while (j < n && is_blank(p[j]))
            j++;
        if (j < n && p[j] == '"') {
            size_t o = 0;
            int want = field == col;
            for (j++; j < n; j++) {
                if (p[j] == '"') {
                    if (j + 1 < n && p[j + 1] == '"') {
                        j++;
                    } else {
                        j++;
                        break;
                    }
                }
                if (want)
                    buf[o++] = p[j];
            }
            for (; j < n && p[j] != ','; j++)
                if (want)
                    buf[o++] = p[j];
            if (want) {
                *f = buf;
                *flen = o;
                return 0;
            }
        } else {
            while (j < n && p[j] != ',')
                j++;
            if (field == col) {
                *f = p + i;
                *flen = j - i;
                return 0;
            }
        }
        if (j >= n)
            return -1;
        i = j + 1;
    }
}

/* True when p[0..n) is one or more ASCII digits with blanks around. */
static int is_number(const char *p, size_t n)
{
    size_t i = 0, digits = 0;
    while (i < n && is_blank(p[i]))
        i++;
    while (i < n && p[i] >= '0' && p[i] <= '9') {
        i++;
        digits++;
    }
    while (i < n && is_blank(p[i]))
        i++;
    return digits > 0 && i == n;
}

/* True when p[0..n) equals the NUL-terminated word s, ignoring ASCII case. */
static int equals_nocase(const char *p, size_t n, const char *s)
{
    size_t i = 0;
    for (; i < n && s[i]; i++) {
        char c = p[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != s[i])
            return 0;
    }
    return i == n && s[i] == '\0';
}

/*
 * Applies the line rules (see the top of the file) to one line without its
 * "\n". too_long says the line was cut at the buffer's end. Returns
 * INPUT_DOMAIN or INPUT_REJECT with item filled, or INPUT_EOF to mean
 * "nothing here, read on".
 */
static input_status_t take_line(input_t *in, const char *p, size_t n, int too_long,
                                input_item_t *item)
{
    item->line = in->line;
    if (in->kind == SRC_FILE && in->line == 1 && n >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0) {
        p += 3;
        n -= 3;
    }
    if (n > 0 && p[n - 1] == '\r')
        n--;

    size_t b = 0;
    while (b < n && is_blank(p[b]))
        b++;
    if (b < n && p[b] == '#')
        return INPUT_EOF;
    if (too_long || n > INPUT_LINE_MAX)
        return reject(item, "line too long", p, n);
    if (memchr(p, '\0', n))
        return reject(item, "NUL byte", p, n);

    size_t e = comment_cut(p, n);
    while (e > b && is_blank(p[e - 1]))
        e--;
    if (e == b)
        return INPUT_EOF;
    const char *s = p + b;
    size_t len = e - b;

    int first = !in->seen_content;
    in->seen_content = 1;
    const char *f = s;
    size_t flen = len;
    if (in->csv_column >= 1) {
        if (csv_field(s, len, in->csv_column, in->field, &f, &flen) < 0)
            return reject(item, in->nocol, p, n);
    } else {
        if (first && (equals_nocase(s, len, "rank,domain") || equals_nocase(s, len, "domain")))
            return INPUT_EOF;
        const char *f1;
        size_t f1len;
        if (memchr(s, ',', len) && csv_field(s, len, 1, in->field, &f1, &f1len) == 0 &&
            is_number(f1, f1len))
            (void)csv_field(s, len, 2, in->field, &f, &flen);
    }

    const char *reason;
    if (input_normalize(f, flen, item->domain, &reason) < 0)
        return reject(item, reason, p, n);
    item->reason = NULL;
    item->text[0] = '\0';
    return INPUT_DOMAIN;
}

/* Appends bytes to the line being assembled, keeping only what fits. */
static void line_append(input_t *in, const unsigned char *p, size_t n)
{
    size_t room = sizeof(in->lbuf) - in->llen;
    if (n > room) {
        n = room;
        in->too_long = 1;
    }
    memcpy(in->lbuf + in->llen, p, n);
    in->llen += n;
}

/* input_next() for files and standard input. */
static input_status_t next_file(input_t *in, input_item_t *item)
{
    const char *err = NULL;
    if (!in->peeked && (err = peek_format(in)) != NULL)
        goto fail;
    for (;;) {
        if (in->data_pos == in->data_len) {
            int r = refill(in, &err);
            if (r < 0)
                goto fail;
            if (r == 0) {
                if (in->llen == 0 && !in->too_long)
                    break;
                /* A last line without newline counts. */
                in->line++;
                input_status_t st = take_line(in, in->lbuf, in->llen, in->too_long, item);
                in->llen = 0;
                in->too_long = 0;
                if (st != INPUT_EOF)
                    return st;
                break;
            }
        }
        const unsigned char *p = in->data + in->data_pos;
        size_t avail = in->data_len - in->data_pos;
        const unsigned char *nl = memchr(p, '\n', avail);
        if (!nl) {
            line_append(in, p, avail);
            in->data_pos = in->data_len;
            continue;
        }
        size_t n = (size_t)(nl - p);
        in->data_pos += n + 1;
        in->line++;
        input_status_t st;
        if (in->llen == 0 && !in->too_long) {
            /* Whole line inside the buffer: no copy. */
            st = take_line(in, (const char *)p, n, 0, item);
        } else {
            line_append(in, p, n);
            st = take_line(in, in->lbuf, in->llen, in->too_long, item);
            in->llen = 0;
            in->too_long = 0;
        }
        if (st != INPUT_EOF)
            return st;
    }
    in->done = 1;
    item->line = in->line;
    return INPUT_EOF;

fail:
    /* A partial line before the error is not known to be complete: drop it. */
    in->done = 1;
    in->llen = 0;
    item->line = in->line + 1;
    item->domain[0] = '\0';
    item->text[0] = '\0';
    item->reason = err;
    return INPUT_ERROR;
}

/* input_next() for arguments: each string is one line. */
static input_status_t next_args(input_t *in, input_item_t *item)
{
    while (in->line < (uint64_t)in->nargs) {
        const char *s = in->args[in->line];
        in->line++;
        if (!s)
            continue;
        input_status_t st = take_line(in, s, strlen(s), 0, item);
        if (st != INPUT_EOF)
            return st;
    }
    in->done = 1;
    item->line = in->line;
    return INPUT_EOF;
}

/* Opens a file or standard input and, for a regular file, reads its first bytes. */
input_t *input_open_file(const char *path, int csv_column, char *err, size_t errlen)
{
    if (!path || !*path) {
        set_err(err, errlen, "%s%s", "no input path", "");
        return NULL;
    }
    if (csv_column < 0) {
        set_err(err, errlen, "%s: %s", path, "invalid CSV column");
        return NULL;
    }
    input_t *in = reader_new(SRC_FILE, csv_column);
    if (in) {
        in->raw = malloc(CHUNK);
        in->out = malloc(CHUNK);
    }
    if (!in || !in->raw || !in->out) {
        set_err(err, errlen, "%s: %s", path, "out of memory");
        input_close(in);
        return NULL;
    }
    if (strcmp(path, "-") == 0) {
        in->fd = STDIN_FILENO;
    } else {
        in->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (in->fd < 0) {
            set_err(err, errlen, "%s: %s", path, strerror(errno));
            input_close(in);
            return NULL;
        }
        in->close_fd = 1;
    }
    struct stat st;
    if (fstat(in->fd, &st) < 0) {
        set_err(err, errlen, "%s: %s", path, strerror(errno));
        input_close(in);
        return NULL;
    }
    if (S_ISDIR(st.st_mode)) {
        set_err(err, errlen, "%s: %s", path, "is a directory");
        input_close(in);
        return NULL;
    }
    /* A regular file is peeked now, so input_is_gzip() is right at once and
     * a read error is fatal at start-up; a pipe is peeked on the first
     * input_next(), so that opening stdin never waits for the writer. */
    if (S_ISREG(st.st_mode)) {
        in->size = (uint64_t)st.st_size;
        /* Standard input redirected from a file may be read part-way already:
         * progress counts from where the file stands. */
        off_t at = lseek(in->fd, 0, SEEK_CUR);
        in->raw_read = at > 0 ? (uint64_t)at : 0;
        const char *perr = peek_format(in);
        if (perr) {
            set_err(err, errlen, "%s: %s", path, perr);
            input_close(in);
            return NULL;
        }
    }
    return in;
}

/* Opens a reader over strings, which must outlive it. */
input_t *input_open_args(char *const *names, int count)
{
    input_t *in = reader_new(SRC_ARGS, INPUT_CSV_AUTO);
    if (!in)
        return NULL;
    in->args = names;
    in->nargs = names && count > 0 ? count : 0;
    return in;
}

/* Returns the next domain or rejected line; blank and comment lines are skipped. */
input_status_t input_next(input_t *in, input_item_t *item)
{
    if (!in) {
        memset(item, 0, sizeof(*item));
        return INPUT_EOF;
    }
    item->domain[0] = '\0';
    item->reason = NULL;
    item->text[0] = '\0';
    if (in->done) {
        item->line = in->line;
        return INPUT_EOF;
    }
    return in->kind == SRC_ARGS ? next_args(in, item) : next_file(in, item);
}

/* Releases a reader and closes its file (never standard input). */
void input_close(input_t *in)
{
    if (!in)
        return;
    if (in->zs_init)
        inflateEnd(&in->zs);
    if (in->close_fd && in->fd >= 0)
        close(in->fd);
    free(in->raw);
    free(in->out);
    free(in);
}

/* Bytes of the source consumed: compressed bytes for gzip, lines handed out for plain. */
uint64_t input_bytes_read(const input_t *in)
{
    if (!in || in->kind != SRC_FILE)
        return 0;
    if (in->gzip)
        return in->raw_read - in->zs.avail_in;
    return in->raw_read - (in->data_len - in->data_pos);
}

/* Size of a regular file, 0 for pipes, stdin and arguments. */
uint64_t input_bytes_total(const input_t *in)
{
    return in && in->kind == SRC_FILE ? in->size : 0;
}

/* True when the source is gzip (known once its first bytes are read). */
int input_is_gzip(const input_t *in)
{
    return in && in->gzip;
}

/* True when s[0..n) is a dotted quad: four decimal numbers of at most 255. */
static int is_ipv4(const char *s, size_t n)
{
    int parts = 0;
    size_t i = 0;
    while (i <= n) {
        unsigned v = 0, digits = 0;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            v = v * 10 + (unsigned)(s[i] - '0');
            if (++digits > 3)
                return 0;
            i++;
        }
        if (digits == 0 || v > 255)
            return 0;
        parts++;
        if (i == n)
            break;
        if (s[i] != '.')
            return 0;
        i++;
    }
    return parts == 4;
}

/* True when s[0..n) is an address that inet_pton(AF_INET6) accepts. */
static int is_ipv6(const char *s, size_t n)
{
    char tmp[64];
    unsigned char addr[16];
    if (n == 0 || n >= sizeof(tmp) || !memchr(s, ':', n))
        return 0;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    return inet_pton(AF_INET6, tmp, addr) == 1;
}

/* Checks and normalises one name; see input.h. */
int input_normalize(const char *field, size_t len, char out[INPUT_NAME_MAX + 1],
                    const char **reason)
{
    const char *dummy;
    if (!reason)
        reason = &dummy;
    out[0] = '\0';
    if (!field)
        len = 0;
    while (len > 0 && is_blank(field[0])) {
        field++;
        len--;
    }
    while (len > 0 && is_blank(field[len - 1]))
        len--;
    if (len == 0) {
        *reason = "empty name";
        return -1;
    }
    if ((field[0] == '[' && field[len - 1] == ']') || is_ipv6(field, len)) {
        *reason = "IP address, not a domain name";
        return -1;
    }
    if (field[len - 1] == '.')
        len--; /* one trailing dot: the absolute form of the same name */
    if (len == 0) {
        *reason = "empty name";
        return -1;
    }

    /* Characters first: a name with a stray byte is wrong whatever its shape. */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)field[i];
        if (c >= 0x80) {
            *reason = "invalid character (non-ASCII: use the xn-- form)";
            goto bad;
        }
        if (c >= 'A' && c <= 'Z')
            c = (unsigned char)(c - 'A' + 'a');
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
              c == '.')) {
            *reason = "invalid character";
            goto bad;
        }
        if (i < INPUT_NAME_MAX)
            out[i] = (char)c;
    }

    /* Labels: RFC 1035 section 2.3.4 (63 octets), RFC 952/1123 hyphens. */
    int labels = 0;
    for (size_t i = 0; i <= len;) {
        size_t j = i;
        while (j < len && field[j] != '.')
            j++;
        if (j == i) {
            *reason = "empty label";
            goto bad;
        }
        if (j - i > 63) {
            *reason = "label longer than 63 octets";
            goto bad;
        }
        if (field[i] == '-' || field[j - 1] == '-') {
            *reason = "label starts or ends with a hyphen";
            goto bad;
        }
        labels++;
        i = j + 1;
    }
    /* 255 octets on the wire (RFC 1035 section 2.3.4) is 253 in text form. */
    if (len > INPUT_NAME_MAX) {
        *reason = "name longer than 253 octets";
        goto bad;
    }
    if (is_ipv4(field, len)) {
        *reason = "IP address, not a domain name";
        goto bad;
    }
    if (labels < 2) {
        *reason = "single-label name";
        goto bad;
    }
    out[len] = '\0';
    *reason = NULL;
    return 0;

bad:
    out[0] = '\0';
    return -1;
}
