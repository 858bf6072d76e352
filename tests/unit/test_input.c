/*
 * test_input.c - unit tests of the domain-list readers and the duplicate
 * filter (inputs/input.c, inputs/dedup.c).
 *
 * Every input file is generated at test time in a private temporary
 * directory, gzip ones with zlib, so no binary is committed; the sample
 * lists under inputs/samples are read too, to keep them valid.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <zlib.h>

#include "inputs/input.h"

/* A string literal as the (pointer, length) pair that the readers take. */
#define LIT(s) s, sizeof(s) - 1

static char tmpdir[256];

/* One item as returned by input_next, with the reason copied. */
typedef struct rec {
    input_status_t st;
    uint64_t line;
    char domain[INPUT_NAME_MAX + 1];
    char reason[96];
    char text[256];
} rec_t;

typedef struct recs {
    rec_t *v;
    size_t n;
} recs_t;

/* Removes one entry of the temporary tree. */
static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* Creates the private temporary directory for the group. */
static int group_setup(void **state)
{
    (void)state;
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof(tmpdir), "%s/mxscan-test-input-XXXXXX", t && *t ? t : "/tmp");
    return mkdtemp(tmpdir) ? 0 : -1;
}

/* Deletes the temporary directory and everything in it. */
static int group_teardown(void **state)
{
    (void)state;
    return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Returns a path in the temporary directory (static buffer per call site). */
static void tmp_path(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", tmpdir, name);
}

/* Writes bytes to a file in the temporary directory. */
static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

/* Compresses data into one gzip member; returns a malloc'd buffer. */
static unsigned char *gzip_buf(const void *data, size_t len, size_t *outlen)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&zs, (uLong)len) + 64;
    unsigned char *out = malloc(cap);
    assert_non_null(out);
    zs.next_in = (unsigned char *)data;
    zs.avail_in = (uInt)len;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    *outlen = zs.total_out;
    deflateEnd(&zs);
    return out;
}

/* Reads a whole input into recs (ends with the EOF or ERROR item), then closes it. */
static recs_t read_all(input_t *in)
{
    recs_t r = {NULL, 0};
    size_t cap = 0;
    assert_non_null(in);
    for (;;) {
        input_item_t item;
        input_status_t st = input_next(in, &item);
        if (r.n == cap) {
            cap = cap ? cap * 2 : 64;
            r.v = realloc(r.v, cap * sizeof(*r.v));
            assert_non_null(r.v);
        }
        rec_t *x = &r.v[r.n++];
        memset(x, 0, sizeof(*x));
        x->st = st;
        x->line = item.line;
        if (st == INPUT_DOMAIN) {
            snprintf(x->domain, sizeof(x->domain), "%s", item.domain);
        } else if (st == INPUT_REJECT || st == INPUT_ERROR) {
            assert_non_null(item.reason);
            snprintf(x->reason, sizeof(x->reason), "%s", item.reason);
            if (st == INPUT_REJECT)
                snprintf(x->text, sizeof(x->text), "%s", item.text);
        }
        if (st == INPUT_EOF || st == INPUT_ERROR)
            break;
    }
    input_close(in);
    return r;
}

/* Opens and reads a file. */
static recs_t read_path(const char *path, int col)
{
    char err[256] = "";
    input_t *in = input_open_file(path, col, err, sizeof(err));
    if (!in)
        fail_msg("open %s: %s", path, err);
    return read_all(in);
}

/* Writes data to a temporary file and reads it. */
static recs_t read_data(const char *name, const char *data, size_t len, int col)
{
    char path[512];
    tmp_path(path, sizeof(path), name);
    write_file(path, data, len);
    return read_path(path, col);
}

/* Asserts one item is a domain. */
static void expect_domain(const rec_t *x, uint64_t line, const char *domain)
{
    assert_int_equal(x->st, INPUT_DOMAIN);
    assert_int_equal(x->line, line);
    assert_string_equal(x->domain, domain);
}

/* Asserts one item is a reject. */
static void expect_reject(const rec_t *x, uint64_t line, const char *reason)
{
    assert_int_equal(x->st, INPUT_REJECT);
    assert_int_equal(x->line, line);
    assert_string_equal(x->reason, reason);
}

/* Asserts two reads gave the same items. */
static void expect_same(const recs_t *a, const recs_t *b)
{
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        assert_int_equal(a->v[i].st, b->v[i].st);
        assert_int_equal(a->v[i].line, b->v[i].line);
        assert_string_equal(a->v[i].domain, b->v[i].domain);
        assert_string_equal(a->v[i].reason, b->v[i].reason);
        assert_string_equal(a->v[i].text, b->v[i].text);
    }
}

/* Peak resident set of this process, in KiB. */
static long max_rss_kib(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

/* Streaming: reading a 1,000,000-line gzip file grows peak RSS by less than 4 MiB.
 * (Runs first, before other tests raise the peak.) */
static void test_stream_memory(void **state)
{
    (void)state;
    char path[512];
    tmp_path(path, sizeof(path), "million.gz");
    gzFile g = gzopen(path, "wb1");
    assert_non_null(g);
    char chunk[65536];
    size_t used = 0;
    for (unsigned i = 0; i < 1000000; i++) {
        if (used > sizeof(chunk) - 64) {
            assert_int_equal(gzwrite(g, chunk, (unsigned)used), (int)used);
            used = 0;
        }
        used += (size_t)snprintf(chunk + used, sizeof(chunk) - used, "n%07u.example\n", i);
    }
    assert_int_equal(gzwrite(g, chunk, (unsigned)used), (int)used);
    assert_int_equal(gzclose(g), Z_OK);

    long before = max_rss_kib();
    char err[256];
    input_t *in = input_open_file(path, INPUT_CSV_AUTO, err, sizeof(err));
    assert_non_null(in);
    assert_true(input_is_gzip(in));
    input_item_t item;
    unsigned long n = 0;
    input_status_t st;
    while ((st = input_next(in, &item)) == INPUT_DOMAIN)
        n++;
    assert_int_equal(st, INPUT_EOF);
    assert_int_equal(n, 1000000);
    assert_int_equal(item.line, 1000000);
    assert_true(input_bytes_total(in) > 0);
    assert_int_equal(input_bytes_read(in), input_bytes_total(in));
    input_close(in);
    long growth = max_rss_kib() - before;
    assert_true(growth < 4096);
}

/* input_normalize lower-cases, trims blanks and one trailing dot, and keeps valid names. */
static void test_normalize_valid(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"Example.TEST", "example.test"},
        {" \tMail.Example. \t", "mail.example"},
        {"_dmarc.example.test", "_dmarc.example.test"},
        {"xn--bcher-kva.example", "xn--bcher-kva.example"},
        {"a-b.c-d.test", "a-b.c-d.test"},
        {"1.2.3.4.example", "1.2.3.4.example"},
        {"192.0.2.256", "192.0.2.256"}, /* not a dotted quad: a name */
        {"1.2.3", "1.2.3"},
        {"1.2.3.0004", "1.2.3.0004"},
        {"1.2.3.4a", "1.2.3.4a"},
    };
    char out[INPUT_NAME_MAX + 1];
    const char *reason;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        reason = "unset";
        assert_int_equal(input_normalize(cases[i].in, strlen(cases[i].in), out, &reason), 0);
        assert_string_equal(out, cases[i].out);
        assert_null(reason);
    }

    /* The limits themselves: a 63-octet label and a 253-octet name pass. */
    char name[300];
    memset(name, 'a', 63);
    strcpy(name + 63, ".test");
    assert_int_equal(input_normalize(name, strlen(name), out, &reason), 0);
    size_t len = 0;
    for (int i = 0; i < 4; i++) {
        memset(name + len, 'b', 61);
        name[len + 61] = '.';
        len += 62;
    }
    strcpy(name + len, "tests."); /* 248 + 5 octets and the trailing dot */
    assert_int_equal(strlen(name), 254);
    assert_int_equal(input_normalize(name, strlen(name), out, &reason), 0);
    assert_int_equal(strlen(out), 253);

    /* The length argument is honoured: bytes after it are not read. */
    assert_int_equal(input_normalize("a.example garbage", 9, out, &reason), 0);
    assert_string_equal(out, "a.example");
}

/* input_normalize gives each documented reason, and an empty output, for bad names. */
static void test_normalize_rejects(void **state)
{
    (void)state;
    char l64[80], n254[300];
    memset(l64, 'a', 64);
    strcpy(l64 + 64, ".test");
    size_t len = 0;
    for (int i = 0; i < 4; i++) {
        memset(n254 + len, 'b', 61);
        n254[len + 61] = '.';
        len += 62;
    }
    strcpy(n254 + len, "test12"); /* 248 + 6 = 254 octets */

    static const char *ip = "IP address, not a domain name";
    const struct {
        const char *in, *reason;
    } cases[] = {
        {"", "empty name"},
        {" \t ", "empty name"},
        {".", "empty name"},
        {".example.test", "empty label"},
        {"a..test", "empty label"},
        {"a.test..", "empty label"},
        {l64, "label longer than 63 octets"},
        {n254, "name longer than 253 octets"},
        {"exa mple.test", "invalid character"},
        {"ex!ample.test", "invalid character"},
        {"a.example/", "invalid character"},
        {"b\xc3\xbc"
         "cher.example",
         "invalid character (non-ASCII: use the xn-- form)"},
        {"-a.test", "label starts or ends with a hyphen"},
        {"a.b-.test", "label starts or ends with a hyphen"},
        {"192.0.2.1", ip},
        {"192.0.2.1.", ip},
        {"010.0.0.1", ip},
        {"2001:DB8::1", ip},
        {"::1", ip},
        {"::ffff:192.0.2.1", ip},
        {"[2001:db8::1]", ip},
        {"[192.0.2.1]", ip},
        {"localhost", "single-label name"},
        {"LocalHost.", "single-label name"},
    };
    char out[INPUT_NAME_MAX + 1];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *reason = NULL;
        strcpy(out, "junk");
        int r = input_normalize(cases[i].in, strlen(cases[i].in), out, &reason);
        if (r != -1 || !reason || strcmp(reason, cases[i].reason) != 0)
            fail_msg("'%s': got %d '%s', want '%s'", cases[i].in, r, reason ? reason : "(null)",
                     cases[i].reason);
        assert_string_equal(out, "");
    }
    /* A NUL inside the field is just another invalid character. */
    const char *reason = NULL;
    assert_int_equal(input_normalize("a\0b.test", 8, out, &reason), -1);
    assert_string_equal(reason, "invalid character");
}

/* Every reject reason of a file comes with the number of its line and the raw text. */
static void test_reject_lines(void **state)
{
    (void)state;
    static const char data[] = "good.example\n"          /* 1 */
                               "\n"                      /* 2 */
                               "bad_char!.example\n"     /* 3 */
                               "..example\n"             /* 4 */
                               "-x.example\n"            /* 5 */
                               "192.0.2.7\n"             /* 6 */
                               "[2001:db8::2]\n"         /* 7 */
                               "intranet\n"              /* 8 */
                               "nul\0byte.example\n"     /* 9 */
                               "caf\xc3\xa9.example\r\n" /* 10 */
                               "tab\there.example\n"     /* 11 */
                               "a\r\r\n"                 /* 12 */
                               "last.example";           /* 13 */
    recs_t r = read_data("rejects.txt", data, sizeof(data) - 1, INPUT_CSV_AUTO);
    assert_int_equal(r.n, 13);
    expect_domain(&r.v[0], 1, "good.example");
    expect_reject(&r.v[1], 3, "invalid character");
    assert_string_equal(r.v[1].text, "bad_char!.example");
    expect_reject(&r.v[2], 4, "empty label");
    expect_reject(&r.v[3], 5, "label starts or ends with a hyphen");
    expect_reject(&r.v[4], 6, "IP address, not a domain name");
    expect_reject(&r.v[5], 7, "IP address, not a domain name");
    expect_reject(&r.v[6], 8, "single-label name");
    expect_reject(&r.v[7], 9, "NUL byte");
    assert_string_equal(r.v[7].text, "nul?byte.example");
    expect_reject(&r.v[8], 10, "invalid character (non-ASCII: use the xn-- form)");
    assert_string_equal(r.v[8].text, "caf??.example");
    expect_reject(&r.v[9], 11, "invalid character");
    assert_string_equal(r.v[9].text, "tab?here.example");
    expect_reject(&r.v[10], 12, "invalid character"); /* only one '\r' ends a line */
    expect_domain(&r.v[11], 13, "last.example");
    assert_int_equal(r.v[12].st, INPUT_EOF);
    assert_int_equal(r.v[12].line, 13);
    free(r.v);

    /* Long names and labels, as lines. */
    char buf[1024];
    int n = snprintf(buf, sizeof(buf), "%0300d.example\n%070d.example\n", 0, 0);
    r = read_data("long.txt", buf, (size_t)n, INPUT_CSV_AUTO);
    assert_int_equal(r.n, 3);
    expect_reject(&r.v[0], 1, "label longer than 63 octets");
    expect_reject(&r.v[1], 2, "label longer than 63 octets");
    assert_int_equal(strlen(r.v[0].text), 255); /* truncated to fit */
    free(r.v);
}

/* Blank lines, comments, CRLF, a BOM, case and trailing dots are handled silently. */
static void test_skip_and_normalise(void **state)
{
    (void)state;
    static const char data[] = "\xef\xbb\xbf# a header comment\r\n" /* 1 */
                               "\r\n"                               /* 2 */
                               "   \t\n"                            /* 3 */
                               "Example.TEST.\r\n"                  /* 4 */
                               "  \t# indented comment\n"           /* 5 */
                               "  mail.example # trailing\r\n"      /* 6 */
                               "#\n"                                /* 7 */
                               "last.example";                      /* 8 */
    recs_t r = read_data("skip.txt", data, sizeof(data) - 1, INPUT_CSV_AUTO);
    assert_int_equal(r.n, 4);
    expect_domain(&r.v[0], 4, "example.test");
    expect_domain(&r.v[1], 6, "mail.example");
    expect_domain(&r.v[2], 8, "last.example");
    assert_int_equal(r.v[3].st, INPUT_EOF);
    free(r.v);

    /* A BOM alone on the first line of a domain. */
    r = read_data("bom.txt",
                  LIT("\xef\xbb\xbf"
                      "bom.example\n"),
                  INPUT_CSV_AUTO);
    expect_domain(&r.v[0], 1, "bom.example");
    free(r.v);

    /* A BOM anywhere else is not skipped. */
    r = read_data("bom2.txt",
                  LIT("a.example\n\xef\xbb\xbf"
                      "b.example\n"),
                  INPUT_CSV_AUTO);
    expect_reject(&r.v[1], 2, "invalid character (non-ASCII: use the xn-- form)");
    free(r.v);

    /* Empty file and BOM-only file: no items, no error. */
    r = read_data("empty.txt", LIT(""), INPUT_CSV_AUTO);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.v[0].st, INPUT_EOF);
    assert_int_equal(r.v[0].line, 0);
    free(r.v);
    r = read_data("bomonly.txt", LIT("\xef\xbb\xbf"), INPUT_CSV_AUTO);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.v[0].st, INPUT_EOF);
    free(r.v);
}

/* csv_column 2 takes the second field, unquotes "" escapes, and rejects short lines. */
static void test_csv_column(void **state)
{
    (void)state;
    static const char data[] = "id,domain,note\n"                   /* 1: header, rejected */
                               "a,Example.TEST,x\n"                 /* 2 */
                               "\"b,c\",\"mail.example\",\"y#z\"\n" /* 3 */
                               "\"q\"\"x\",\"we\"\"ird.example\"\n" /* 4 */
                               "one-field.example\n"                /* 5 */
                               "x, spaced.example ,y\n"             /* 6 */
                               "\"#not-a-comment\",c.example\n"     /* 7 */
                               "x,d.example # comment, 3\n"         /* 8 */
                               "x,\n"                               /* 9 */
                               "x,\"ab\".example\n";                /* 10 */
    recs_t r = read_data("col2.csv", data, sizeof(data) - 1, 2);
    assert_int_equal(r.n, 11);
    expect_reject(&r.v[0], 1, "single-label name");
    expect_domain(&r.v[1], 2, "example.test");
    expect_domain(&r.v[2], 3, "mail.example");
    expect_reject(&r.v[3], 4, "invalid character");
    expect_reject(&r.v[4], 5, "no column 2");
    assert_string_equal(r.v[4].text, "one-field.example");
    expect_domain(&r.v[5], 6, "spaced.example");
    expect_domain(&r.v[6], 7, "c.example");
    expect_domain(&r.v[7], 8, "d.example");
    expect_reject(&r.v[8], 9, "empty name");
    expect_domain(&r.v[9], 10, "ab.example"); /* text after the closing quote is kept */
    assert_int_equal(r.v[10].st, INPUT_EOF);
    free(r.v);

    /* Column 1 of a plain list is the whole line; column 3 reports its number. */
    r = read_data("col3.csv", LIT("a,b,c.example\na,b\n"), 3);
    expect_domain(&r.v[0], 1, "c.example");
    expect_reject(&r.v[1], 2, "no column 3");
    free(r.v);
    r = read_data("col1.csv", LIT("one.example\n"), 1);
    expect_domain(&r.v[0], 1, "one.example");
    free(r.v);
}

/* INPUT_CSV_AUTO reads "rank,domain" lines and plain lines, skipping a header first line only. */
static void test_csv_auto(void **state)
{
    (void)state;
    static const char data[] = "Rank,Domain\n"              /* 1: header, skipped */
                               "1,a.example\n"              /* 2 */
                               " 2 , B.example \n"          /* 3 */
                               "3,\"c.example\"\n"          /* 4 */
                               "plain.example\n"            /* 5 */
                               "4,d.example,extra,fields\n" /* 6 */
                               "x,y.example\n"              /* 7: not a rank */
                               "rank,domain\n"              /* 8: header only on line 1 */
                               "5,\n"                       /* 9 */
                               "\" 7 \",e.example\n";       /* 10: quoted rank */
    recs_t r = read_data("auto.csv", data, sizeof(data) - 1, INPUT_CSV_AUTO);
    assert_int_equal(r.n, 10);
    expect_domain(&r.v[0], 2, "a.example");
    expect_domain(&r.v[1], 3, "b.example");
    expect_domain(&r.v[2], 4, "c.example");
    expect_domain(&r.v[3], 5, "plain.example");
    expect_domain(&r.v[4], 6, "d.example");
    expect_reject(&r.v[5], 7, "invalid character");
    expect_reject(&r.v[6], 8, "invalid character");
    expect_reject(&r.v[7], 9, "empty name");
    expect_domain(&r.v[8], 10, "e.example");
    assert_int_equal(r.v[9].st, INPUT_EOF);
    free(r.v);

    /* "domain" alone is a header too, after comments and blank lines. */
    r = read_data("auto2.csv", LIT("# list\n\nDOMAIN\nz.example\n"), INPUT_CSV_AUTO);
    assert_int_equal(r.n, 2);
    expect_domain(&r.v[0], 4, "z.example");
    free(r.v);

    /* With an explicit column the header is an ordinary (rejected) line. */
    r = read_data("hdr.csv", LIT("rank,domain\n1,a.example\n"), 2);
    expect_reject(&r.v[0], 1, "single-label name");
    expect_domain(&r.v[1], 2, "a.example");
    free(r.v);
}

/* Builds the path of a sample list in inputs/samples. */
static void sample_path(char *buf, size_t len, const char *name)
{
    const char *data = getenv("MXSCAN_TESTDATA");
    if (data && *data) {
        snprintf(buf, len, "%s/../../inputs/samples/%s", data, name);
        if (access(buf, R_OK) == 0)
            return;
    }
    /* Without the variable (or without tests/data, which a path through
     * ".." needs), go from this file: tests/unit/test_input.c. */
    char dir[512];
    snprintf(dir, sizeof(dir), "%s", __FILE__);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        snprintf(dir, sizeof(dir), ".");
    snprintf(buf, len, "%s/../../inputs/samples/%s", dir, name);
}

/* The sample lists are valid: ten domains each, no rejects, the same names. */
static void test_samples(void **state)
{
    (void)state;
    char path[1024];
    sample_path(path, sizeof(path), "top10.txt");
    if (access(path, R_OK) != 0)
        skip();
    recs_t a = read_path(path, INPUT_CSV_AUTO);
    sample_path(path, sizeof(path), "toplist.csv");
    recs_t b = read_path(path, INPUT_CSV_AUTO);
    assert_int_equal(a.n, 11);
    assert_int_equal(b.n, 11);
    for (size_t i = 0; i < 10; i++) {
        assert_int_equal(a.v[i].st, INPUT_DOMAIN);
        assert_int_equal(b.v[i].st, INPUT_DOMAIN);
        assert_string_equal(a.v[i].domain, b.v[i].domain);
        size_t l = strlen(a.v[i].domain);
        assert_true((l > 5 && strcmp(a.v[i].domain + l - 5, ".test") == 0) ||
                    (l > 8 && strcmp(a.v[i].domain + l - 8, ".example") == 0));
    }
    free(a.v);
    free(b.v);
}

/* Builds a varied list: valid, invalid, comments, CRLF, long lines; returns its length. */
static char *make_list(size_t lines, size_t *len)
{
    size_t cap = lines * 64 + 8192, n = 0;
    char *s = malloc(cap);
    assert_non_null(s);
    for (size_t i = 0; i < lines; i++) {
        switch (i % 7) {
        case 0:
            n += (size_t)snprintf(s + n, cap - n, "Host%zu.Example.\r\n", i);
            break;
        case 1:
            n += (size_t)snprintf(s + n, cap - n, "# comment %zu\n", i);
            break;
        case 2:
            n += (size_t)snprintf(s + n, cap - n, "%zu,r%zu.example.test\n", i, i);
            break;
        case 3:
            n += (size_t)snprintf(s + n, cap - n, "bad name %zu\n", i);
            break;
        case 4:
            n += (size_t)snprintf(s + n, cap - n, "\n");
            break;
        case 5:
            n += (size_t)snprintf(s + n, cap - n, "x%zu.test  # note\n", i);
            break;
        default:
            n += (size_t)snprintf(s + n, cap - n, "192.0.2.%zu\n", i % 256);
            break;
        }
    }
    n += (size_t)snprintf(s + n, cap - n, "final.example");
    *len = n;
    return s;
}

/* A gzip file gives exactly the items of the same plain file, and progress reaches the size. */
static void test_gzip_same_as_plain(void **state)
{
    (void)state;
    size_t len, glen;
    char *plain = make_list(50000, &len);
    unsigned char *gz = gzip_buf(plain, len, &glen);
    char ppath[512], gpath[512];
    tmp_path(ppath, sizeof(ppath), "list.txt");
    tmp_path(gpath, sizeof(gpath), "list.txt.gz");
    write_file(ppath, plain, len);
    write_file(gpath, gz, glen);

    char err[256];
    input_t *in = input_open_file(gpath, INPUT_CSV_AUTO, err, sizeof(err));
    assert_non_null(in);
    assert_true(input_is_gzip(in));
    assert_int_equal(input_bytes_total(in), glen);
    input_item_t item;
    uint64_t last = 0;
    while (input_next(in, &item) != INPUT_EOF) {
        uint64_t b = input_bytes_read(in);
        assert_true(b >= last && b <= glen);
        last = b;
    }
    assert_int_equal(input_bytes_read(in), glen);
    input_close(in);

    in = input_open_file(ppath, INPUT_CSV_AUTO, err, sizeof(err));
    assert_non_null(in);
    assert_false(input_is_gzip(in));
    assert_int_equal(input_bytes_total(in), len);
    last = 0;
    while (input_next(in, &item) != INPUT_EOF) {
        uint64_t b = input_bytes_read(in);
        assert_true(b >= last && b <= len);
        last = b;
    }
    assert_int_equal(input_bytes_read(in), len);
    input_close(in);

    recs_t a = read_path(ppath, INPUT_CSV_AUTO);
    recs_t b = read_path(gpath, INPUT_CSV_AUTO);
    assert_true(a.n > 30000);
    expect_same(&a, &b);
    free(b.v);

    /* Two concatenated members followed by zero padding read as one list. */
    size_t half = len / 2, g1len, g2len;
    unsigned char *g1 = gzip_buf(plain, half, &g1len);
    unsigned char *g2 = gzip_buf(plain + half, len - half, &g2len);
    unsigned char *cat = malloc(g1len + g2len + 512);
    assert_non_null(cat);
    memcpy(cat, g1, g1len);
    memcpy(cat + g1len, g2, g2len);
    memset(cat + g1len + g2len, 0, 512);
    tmp_path(gpath, sizeof(gpath), "cat.gz");
    write_file(gpath, cat, g1len + g2len + 512);
    b = read_path(gpath, INPUT_CSV_AUTO);
    expect_same(&a, &b);
    free(b.v);

    free(a.v);
    free(cat);
    free(g1);
    free(g2);
    free(gz);
    free(plain);
}

/* Corrupt gzip: every complete line before the damage, then INPUT_ERROR with zlib's message, then
 * EOF. */
static void test_gzip_corrupt(void **state)
{
    (void)state;
    char text[64 * 2000];
    size_t n1 = 0, n = 0;
    for (int i = 0; i < 2000; i++) {
        n += (size_t)snprintf(text + n, sizeof(text) - n, "host%05d.example\n", i);
        if (i == 999)
            n1 = n;
    }

    /* Two deflate blocks, byte-aligned by a full flush; the second gets an
     * invalid block type (BTYPE 11), so inflate fails right after line 1000. */
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
    size_t cap = deflateBound(&zs, (uLong)n) + 256;
    unsigned char *gz = malloc(cap);
    assert_non_null(gz);
    zs.next_in = (unsigned char *)text;
    zs.avail_in = (uInt)n1;
    zs.next_out = gz;
    zs.avail_out = (uInt)cap;
    assert_int_equal(deflate(&zs, Z_FULL_FLUSH), Z_OK);
    size_t cut = zs.total_out;
    zs.avail_in = (uInt)(n - n1);
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    size_t glen = zs.total_out;
    deflateEnd(&zs);
    gz[cut] |= 0x06;
    char path[512];
    tmp_path(path, sizeof(path), "badblock.gz");
    write_file(path, gz, glen);
    recs_t r = read_path(path, INPUT_CSV_AUTO);
    assert_int_equal(r.n, 1001);
    for (size_t i = 0; i < 1000; i++) {
        char want[48];
        snprintf(want, sizeof(want), "host%05zu.example", i);
        expect_domain(&r.v[i], i + 1, want);
    }
    assert_int_equal(r.v[1000].st, INPUT_ERROR);
    assert_string_equal(r.v[1000].reason, "invalid block type");
    free(r.v);
    free(gz);

    /* A wrong CRC is only found at the end: all lines, then the error. */
    gz = gzip_buf(text, n, &glen);
    gz[glen - 8] ^= 0xff;
    tmp_path(path, sizeof(path), "badcrc.gz");
    write_file(path, gz, glen);
    r = read_path(path, INPUT_CSV_AUTO);
    assert_int_equal(r.n, 2001);
    expect_domain(&r.v[1999], 2000, "host01999.example");
    assert_int_equal(r.v[2000].st, INPUT_ERROR);
    assert_string_equal(r.v[2000].reason, "incorrect data check");

    /* A truncated file: a prefix of the lines, never a partial one, then the error. */
    tmp_path(path, sizeof(path), "truncated.gz");
    write_file(path, gz, glen / 2);
    free(r.v);
    r = read_path(path, INPUT_CSV_AUTO);
    assert_true(r.n > 1 && r.n < 2001);
    for (size_t i = 0; i + 1 < r.n; i++) {
        char want[48];
        snprintf(want, sizeof(want), "host%05zu.example", i);
        expect_domain(&r.v[i], i + 1, want);
    }
    assert_int_equal(r.v[r.n - 1].st, INPUT_ERROR);
    assert_string_equal(r.v[r.n - 1].reason, "unexpected end of file");
    free(r.v);

    /* After the error the reader only says EOF. */
    char err[256];
    input_t *in = input_open_file(path, INPUT_CSV_AUTO, err, sizeof(err));
    assert_non_null(in);
    input_item_t item;
    input_status_t st;
    while ((st = input_next(in, &item)) == INPUT_DOMAIN)
        ;
    assert_int_equal(st, INPUT_ERROR);
    assert_int_equal(input_next(in, &item), INPUT_EOF);
    assert_int_equal(input_next(in, &item), INPUT_EOF);
    input_close(in);

    /* Garbage with the magic: an error, not a crash or a plain read. */
    tmp_path(path, sizeof(path), "magic.gz");
    write_file(path, LIT("\x1f\x8bnot really gzip\n"));
    r = read_path(path, INPUT_CSV_AUTO);
    assert_int_equal(r.n, 1);
    assert_int_equal(r.v[0].st, INPUT_ERROR);
    free(r.v);
    free(gz);
}

/* A 10 MB line is rejected as too long without being buffered, and reading goes on after it. */
static void test_long_line(void **state)
{
    (void)state;
    size_t big = 10 * 1024 * 1024;
    char *data = malloc(big + 64);
    assert_non_null(data);
    size_t n = (size_t)sprintf(data, "first.example\n");
    memset(data + n, 'a', big);
    n += big;
    n += (size_t)sprintf(data + n, "\nsecond.example\n");
    recs_t r = read_data("longline.txt", data, n, INPUT_CSV_AUTO);
    assert_int_equal(r.n, 4);
    expect_domain(&r.v[0], 1, "first.example");
    expect_reject(&r.v[1], 2, "line too long");
    assert_int_equal(strlen(r.v[1].text), 255);
    assert_int_equal(r.v[1].text[0], 'a');
    expect_domain(&r.v[2], 3, "second.example");
    free(r.v);

    /* The same through gzip, and with the long line last, without newline. */
    size_t glen;
    unsigned char *gz = gzip_buf(data, n - 16, &glen);
    char path[512];
    tmp_path(path, sizeof(path), "longline.gz");
    write_file(path, gz, glen);
    r = read_path(path, INPUT_CSV_AUTO);
    assert_int_equal(r.n, 3);
    expect_domain(&r.v[0], 1, "first.example");
    expect_reject(&r.v[1], 2, "line too long");
    assert_int_equal(r.v[2].st, INPUT_EOF);
    free(r.v);
    free(gz);

    /* A comment line is skipped whatever its length. */
    data[14] = '#';
    r = read_data("longcomment.txt", data, n, INPUT_CSV_AUTO);
    assert_int_equal(r.n, 3);
    expect_domain(&r.v[1], 3, "second.example");
    free(r.v);

    /* The boundary: INPUT_LINE_MAX octets (plus CRLF) is a line, one more is not. */
    memset(data, 'b', INPUT_LINE_MAX);
    memcpy(data + INPUT_LINE_MAX, "\r\n", 2);
    memset(data + INPUT_LINE_MAX + 2, 'c', INPUT_LINE_MAX + 1);
    data[2 * INPUT_LINE_MAX + 3] = '\n';
    r = read_data("boundary.txt", data, 2 * INPUT_LINE_MAX + 4, INPUT_CSV_AUTO);
    assert_int_equal(r.n, 3);
    expect_reject(&r.v[0], 1, "label longer than 63 octets");
    expect_reject(&r.v[1], 2, "line too long");
    free(r.v);
    free(data);
}

/* Reads "-" from a pipe on fd 0 (plain and gzip, no size, fd 0 left open) and from a file on fd 0.
 */
static void test_stdin_pipe(void **state)
{
    (void)state;
    static const char text[] = "Pipe.Example\n# c\n2,second.example\nbad..example\n";
    size_t glen;
    unsigned char *gz = gzip_buf(text, sizeof(text) - 1, &glen);
    for (int pass = 0; pass < 2; pass++) {
        int saved = dup(STDIN_FILENO);
        assert_true(saved >= 0);
        int p[2];
        assert_int_equal(pipe(p), 0);
        const void *buf = pass ? (const void *)gz : (const void *)text;
        size_t len = pass ? glen : sizeof(text) - 1;
        assert_int_equal(write(p[1], buf, len), (ssize_t)len);
        close(p[1]);
        assert_int_equal(dup2(p[0], STDIN_FILENO), STDIN_FILENO);
        close(p[0]);

        char err[256];
        input_t *in = input_open_file("-", INPUT_CSV_AUTO, err, sizeof(err));
        assert_non_null(in);
        assert_int_equal(input_bytes_total(in), 0);
        recs_t r = read_all(in);
        assert_int_equal(r.n, 4);
        expect_domain(&r.v[0], 1, "pipe.example");
        expect_domain(&r.v[1], 3, "second.example");
        expect_reject(&r.v[2], 4, "empty label");
        assert_int_equal(r.v[3].st, INPUT_EOF);
        free(r.v);
        /* input_close left fd 0 open: it belongs to the caller. */
        assert_true(fcntl(STDIN_FILENO, F_GETFD) >= 0);

        assert_int_equal(dup2(saved, STDIN_FILENO), STDIN_FILENO);
        close(saved);
    }

    /* is_gzip is known after the first item from a pipe. */
    int saved = dup(STDIN_FILENO), p[2];
    assert_int_equal(pipe(p), 0);
    assert_int_equal(write(p[1], gz, glen), (ssize_t)glen);
    close(p[1]);
    dup2(p[0], STDIN_FILENO);
    close(p[0]);
    char err[256];
    input_t *in = input_open_file("-", INPUT_CSV_AUTO, err, sizeof(err));
    input_item_t item;
    assert_int_equal(input_next(in, &item), INPUT_DOMAIN);
    assert_true(input_is_gzip(in));
    input_close(in);
    dup2(saved, STDIN_FILENO);
    close(saved);

    /* Standard input redirected from a file read part-way: its size is
     * known and progress counts from where it stands. */
    char path[512];
    tmp_path(path, sizeof(path), "stdin.txt");
    write_file(path, LIT("skip.example\nfrom-here.example\n"));
    saved = dup(STDIN_FILENO);
    int fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(lseek(fd, 13, SEEK_SET), 13);
    dup2(fd, STDIN_FILENO);
    close(fd);
    in = input_open_file("-", INPUT_CSV_AUTO, err, sizeof(err));
    assert_non_null(in);
    assert_int_equal(input_bytes_total(in), 31);
    assert_int_equal(input_bytes_read(in), 13);
    assert_int_equal(input_next(in, &item), INPUT_DOMAIN);
    assert_string_equal(item.domain, "from-here.example");
    assert_int_equal(input_next(in, &item), INPUT_EOF);
    assert_int_equal(input_bytes_read(in), 31);
    input_close(in);
    dup2(saved, STDIN_FILENO);
    close(saved);
    free(gz);
}

/* Opening fails cleanly with a message: missing file, directory, bad column, read error. */
static void test_open_errors(void **state)
{
    (void)state;
    char err[256] = "", path[512];
    tmp_path(path, sizeof(path), "does-not-exist.txt");
    assert_null(input_open_file(path, INPUT_CSV_AUTO, err, sizeof(err)));
    assert_non_null(strstr(err, "does-not-exist.txt"));
    assert_non_null(strstr(err, "No such file"));
    assert_null(input_open_file(tmpdir, INPUT_CSV_AUTO, err, sizeof(err)));
    assert_non_null(strstr(err, "directory"));
    assert_null(input_open_file("-", -1, err, sizeof(err)));
    assert_null(input_open_file(path, INPUT_CSV_AUTO, NULL, 0));
    assert_null(input_open_file("", INPUT_CSV_AUTO, err, sizeof(err)));

    /* A read error on the first bytes: /proc/self/mem fails with EIO at
     * offset 0 (unmapped), which makes it a handy faulty regular file. */
    int fd = open("/proc/self/mem", O_RDONLY);
    char b;
    if (fd >= 0 && read(fd, &b, 1) < 0) {
        assert_null(input_open_file("/proc/self/mem", INPUT_CSV_AUTO, err, sizeof(err)));
        assert_non_null(strstr(err, "/proc/self/mem: "));
    }
    if (fd >= 0)
        close(fd);
}

/* Arguments are read as lines 1..n with the same rules (comments, AUTO rank,domain, rejects). */
static void test_args(void **state)
{
    (void)state;
    char *const names[] = {"Example.TEST.", "# comment", "",   "1,rank.example",
                           "bad name",      "localhost", NULL, "  spaced.example  "};
    input_t *in = input_open_args(names, 8);
    assert_non_null(in);
    assert_int_equal(input_bytes_total(in), 0);
    assert_int_equal(input_bytes_read(in), 0);
    assert_false(input_is_gzip(in));
    recs_t r = read_all(in);
    assert_int_equal(r.n, 6);
    expect_domain(&r.v[0], 1, "example.test");
    expect_domain(&r.v[1], 4, "rank.example");
    expect_reject(&r.v[2], 5, "invalid character");
    assert_string_equal(r.v[2].text, "bad name");
    expect_reject(&r.v[3], 6, "single-label name");
    expect_domain(&r.v[4], 8, "spaced.example");
    assert_int_equal(r.v[5].st, INPUT_EOF);
    free(r.v);

    r = read_all(input_open_args(NULL, 0));
    assert_int_equal(r.n, 1);
    assert_int_equal(r.v[0].st, INPUT_EOF);
    free(r.v);
}

/* The filter reports repeats, and only repeats, for a handful of names. */
static void test_dedup_basic(void **state)
{
    (void)state;
    input_dedup_t *d = input_dedup_new(0); /* rounds up to the minimum */
    assert_non_null(d);
    assert_int_equal(input_dedup_seen(d, "a.example"), 0);
    assert_int_equal(input_dedup_seen(d, "b.example"), 0);
    assert_int_equal(input_dedup_seen(d, "a.example"), 1);
    assert_int_equal(input_dedup_seen(d, "b.example"), 1);
    assert_int_equal(input_dedup_seen(d, "a.example"), 1);
    assert_int_equal(input_dedup_seen(d, ""), 0);
    assert_int_equal(input_dedup_seen(d, ""), 1);
    input_dedup_free(d);
    input_dedup_free(NULL);

    /* A table with room to spare remembers every name: 10,000 names in 131,072 slots. */
    d = input_dedup_new(1 << 20);
    assert_non_null(d);
    char name[32];
    for (int i = 0; i < 10000; i++) {
        snprintf(name, sizeof(name), "r%d.example", i);
        assert_int_equal(input_dedup_seen(d, name), 0);
    }
    for (int i = 0; i < 10000; i++) {
        snprintf(name, sizeof(name), "r%d.example", i);
        assert_int_equal(input_dedup_seen(d, name), 1);
    }
    input_dedup_free(d);
}

/* 1,000,000 distinct names through 1024 slots: never a false "seen", each repeat caught at once. */
static void test_dedup_no_false_positive(void **state)
{
    (void)state;
    input_dedup_t *d = input_dedup_new(1024 * 8);
    assert_non_null(d);
    char name[32];
    for (unsigned i = 0; i < 1000000; i++) {
        snprintf(name, sizeof(name), "d%u.example", i);
        if (input_dedup_seen(d, name) != 0)
            fail_msg("false positive for %s", name);
        if (input_dedup_seen(d, name) != 1)
            fail_msg("repeat of %s not seen", name);
    }
    input_dedup_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_memory),      cmocka_unit_test(test_normalize_valid),
        cmocka_unit_test(test_normalize_rejects),  cmocka_unit_test(test_reject_lines),
        cmocka_unit_test(test_skip_and_normalise), cmocka_unit_test(test_csv_column),
        cmocka_unit_test(test_csv_auto),           cmocka_unit_test(test_samples),
        cmocka_unit_test(test_gzip_same_as_plain), cmocka_unit_test(test_gzip_corrupt),
        cmocka_unit_test(test_long_line),          cmocka_unit_test(test_stdin_pipe),
        cmocka_unit_test(test_open_errors),        cmocka_unit_test(test_args),
        cmocka_unit_test(test_dedup_basic),        cmocka_unit_test(test_dedup_no_false_positive),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
