/*
 * fuzz_input.c - libFuzzer harness for the domain-list readers and the
 * duplicate filter (inputs/input.c, inputs/dedup.c).
 *
 * One input is used five ways: as a name for input_normalize(); as a file
 * read with input_open_file() (a memfd, so gzip seeds reach the inflate
 * path); as the same bytes through a pipe (the path of stdin, where the
 * format is decided on the first read); gzip-compressed, which must give
 * exactly the items of the plain read; and compressed then truncated or
 * damaged, which must give a prefix of them (truncation) or just not crash
 * (a flipped byte). Every domain returned is re-checked against the rules
 * and run through the filter, where a repeat right away must be a hit.
 *
 * The module's sources are compiled into this file instead of taken from
 * libmxcore: CMake builds the library without -fsanitize=fuzzer, so only
 * code compiled here gives libFuzzer coverage. The archive's input.o and
 * dedup.o are then never pulled in, as nothing is left undefined for them.
 * The reader is built with 61-byte buffers (64 KiB in the library): inputs
 * are small, and boundaries are where line splitting goes wrong.
 */
#define INPUT_CHUNK 61
#include "inputs/input.c"
#include "inputs/dedup.c"

#include <sys/mman.h>
#include <zlib.h>

#define MAX_ITEMS 65536 /* items compared per run: inputs are far smaller */

static int memfd = -1;
static input_dedup_t *dedup;

/* Stops the run: libFuzzer reports the crash with the input. */
static void fail(const char *what)
{
    fprintf(stderr, "fuzz_input: %s\n", what);
    abort();
}

/* Checks that a domain obeys the rules and that normalising it again is a no-op. */
static void check_domain(const char *d)
{
    size_t len = strlen(d);
    if (len == 0 || len > INPUT_NAME_MAX || !memchr(d, '.', len))
        fail("domain length or label count");
    if (d[0] == '.' || d[len - 1] == '.' || strstr(d, ".."))
        fail("empty label in domain");
    for (size_t i = 0; i < len; i++) {
        char c = d[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.'))
            fail("bad character in domain");
    }
    char again[INPUT_NAME_MAX + 1];
    const char *reason;
    if (input_normalize(d, len, again, &reason) != 0 || strcmp(again, d) != 0)
        fail("normalize is not idempotent");
    input_dedup_seen(dedup, d);
    if (input_dedup_seen(dedup, d) != 1)
        fail("dedup missed an immediate repeat");
}

/* Folds one item into a 64-bit digest (FNV-1a over its fields). */
static uint64_t item_hash(input_status_t st, const input_item_t *it)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    unsigned char hdr[12];
    memcpy(hdr, &st, sizeof(int));
    memcpy(hdr + 4, &it->line, 8);
    for (size_t i = 0; i < sizeof(hdr); i++)
        h = (h ^ hdr[i]) * 0x100000001b3ULL;
    const char *parts[3] = {st == INPUT_DOMAIN ? it->domain : "",
                            st == INPUT_REJECT ? it->reason : "",
                            st == INPUT_REJECT ? it->text : ""};
    for (int p = 0; p < 3; p++)
        for (const unsigned char *s = (const unsigned char *)parts[p]; *s; s++)
            h = (h ^ *s) * 0x100000001b3ULL;
    return h;
}

/* Reads a reader to its end; stores item digests (without the last) and returns the last status. */
static input_status_t drain(input_t *in, uint64_t *hashes, size_t *n)
{
    input_item_t item;
    input_status_t st;
    *n = 0;
    uint64_t last_line = 0;
    for (;;) {
        st = input_next(in, &item);
        if (st == INPUT_EOF || st == INPUT_ERROR)
            break;
        if (item.line <= last_line && *n > 0)
            fail("line numbers do not increase");
        last_line = item.line;
        if (st == INPUT_DOMAIN) {
            check_domain(item.domain);
        } else if (st == INPUT_REJECT) {
            if (!item.reason || item.domain[0] || strlen(item.text) >= sizeof(item.text))
                fail("bad reject item");
            for (const char *t = item.text; *t; t++)
                if ((unsigned char)*t < 0x20 || (unsigned char)*t >= 0x7f)
                    fail("non-printable byte in reject text");
        } else {
            fail("unknown status");
        }
        if (*n < MAX_ITEMS)
            hashes[(*n)++] = item_hash(st, &item);
    }
    if (st == INPUT_ERROR && !item.reason)
        fail("error without a reason");
    /* After the end, the reader only says EOF. */
    if (input_next(in, &item) != INPUT_EOF)
        fail("item after the end");
    return st;
}

/* Puts bytes into the memfd and returns its path. */
static const char *memfd_put(const void *data, size_t len, char *path, size_t plen)
{
    if (ftruncate(memfd, 0) != 0 || (len && pwrite(memfd, data, len, 0) != (ssize_t)len))
        fail("memfd write");
    snprintf(path, plen, "/proc/self/fd/%d", memfd);
    return path;
}

/* Opens a path that must open. */
static input_t *must_open(const char *path, int col)
{
    char err[256];
    input_t *in = input_open_file(path, col, err, sizeof(err));
    if (!in)
        fail(err);
    return in;
}

/* Compresses into one gzip member (malloc'd). */
static unsigned char *gzip_bytes(const uint8_t *data, size_t len, size_t *outlen)
{
    z_stream zs;
    memset(&zs, 0, sizeof(zs));
    if (deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        fail("deflateInit2");
    size_t cap = deflateBound(&zs, (uLong)len) + 32;
    unsigned char *out = malloc(cap);
    if (!out)
        fail("malloc");
    zs.next_in = (unsigned char *)data;
    zs.avail_in = (uInt)len;
    zs.next_out = out;
    zs.avail_out = (uInt)cap;
    if (deflate(&zs, Z_FINISH) != Z_STREAM_END)
        fail("deflate");
    *outlen = zs.total_out;
    deflateEnd(&zs);
    return out;
}

/* Sets up the memfd and the filter once. */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    memfd = memfd_create("fuzz_input", MFD_CLOEXEC);
    dedup = input_dedup_new(0);
    if (memfd < 0 || !dedup)
        fail("init");
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static uint64_t plain[MAX_ITEMS], other[MAX_ITEMS];
    char path[64];
    size_t np, no;

    /* 1. The bytes as one name. */
    char out[INPUT_NAME_MAX + 1];
    const char *reason = NULL;
    if (input_normalize((const char *)data, size, out, &reason) == 0) {
        if (reason)
            fail("reason set on success");
        check_domain(out);
    } else if (!reason || out[0]) {
        fail("failure without reason, or with output");
    }

    /* 2. The bytes as a file; the first byte picks the CSV column. */
    int col = size ? data[0] & 3 : INPUT_CSV_AUTO;
    input_t *in = must_open(memfd_put(data, size, path, sizeof(path)), col);
    int was_gzip = input_is_gzip(in);
    if (was_gzip != (size >= 2 && data[0] == 0x1f && data[1] == 0x8b))
        fail("gzip detection");
    input_status_t end = drain(in, plain, &np);
    if (end == INPUT_EOF && input_bytes_read(in) > input_bytes_total(in))
        fail("bytes_read past the size");
    if (!was_gzip && (end != INPUT_EOF || input_bytes_read(in) != size))
        fail("plain read did not consume the file");
    input_close(in);

    /* 3. The same bytes through a pipe: the same items. */
    int p[2];
    if (size <= 32768 && pipe(p) == 0) {
        if (size && write(p[1], data, size) != (ssize_t)size)
            fail("pipe write");
        snprintf(path, sizeof(path), "/proc/self/fd/%d", p[0]);
        in = must_open(path, col);
        close(p[1]);
        if (input_bytes_total(in) != 0)
            fail("a pipe has a size");
        input_status_t e2 = drain(in, other, &no);
        if (e2 != end || no != np || memcmp(plain, other, np * sizeof(uint64_t)) != 0)
            fail("pipe read differs from file read");
        if (input_is_gzip(in) != was_gzip)
            fail("gzip detection on a pipe");
        input_close(in);
        close(p[0]);
    }

    /* 4. Compressed: exactly the items of the plain read. */
    size_t glen;
    unsigned char *gz = gzip_bytes(data, size, &glen);
    in = must_open(memfd_put(gz, glen, path, sizeof(path)), col);
    if (!input_is_gzip(in))
        fail("gzip not detected");
    end = drain(in, other, &no);
    if (end != INPUT_EOF || input_bytes_read(in) != glen)
        fail("clean gzip did not read to its end");
    input_close(in);
    if (!was_gzip && (no != np || memcmp(plain, other, np * sizeof(uint64_t)) != 0))
        fail("gzip read differs from plain read");
    memcpy(plain, other, no * sizeof(uint64_t));
    np = no;

    /* 5a. Truncated (keeping the magic): a prefix of those items, then an error. */
    uint32_t h = (uint32_t)crc32(0, data, (uInt)size);
    size_t cut = 2 + h % (glen - 2);
    in = must_open(memfd_put(gz, cut, path, sizeof(path)), col);
    end = drain(in, other, &no);
    if (end != INPUT_ERROR || no > np || memcmp(plain, other, no * sizeof(uint64_t)) != 0)
        fail("truncated gzip is not a prefix and an error");
    input_close(in);

    /* 5b. One damaged byte after the header: anything but a crash. */
    if (glen > 10) {
        gz[10 + (h >> 8) % (glen - 10)] ^= (unsigned char)(1 + (h >> 24) % 255);
        in = must_open(memfd_put(gz, glen, path, sizeof(path)), col);
        drain(in, other, &no);
        input_close(in);
    }
    free(gz);

    /* 6. NUL-separated strings as arguments. */
    char *copy = malloc(size + 1);
    char *args[64];
    int nargs = 0;
    if (!copy)
        fail("malloc");
    memcpy(copy, data, size);
    copy[size] = '\0';
    for (char *s = copy; nargs < 64 && s <= copy + size; s += strlen(s) + 1)
        args[nargs++] = s;
    in = input_open_args(args, nargs);
    if (!in)
        fail("open args");
    drain(in, other, &no);
    input_close(in);
    free(copy);
    return 0;
}
