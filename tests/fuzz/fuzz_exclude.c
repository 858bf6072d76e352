/*
 * fuzz_exclude.c - libFuzzer harness for the exclusion list
 * (inputs/exclude.c).
 *
 * The input is parsed as a list. When it fails, the message must be
 * "f:LINE: ..." in printable ASCII with LINE within the input, and the
 * lines before LINE must parse on their own. When it succeeds, the merged
 * list is checked against a model: each line parsed alone gives a list of
 * at most one prefix or name (a CIDR block, checked to be one), and for
 * probes taken at the edges of every such prefix, around every such name
 * and from the input bytes, the merged list must answer exactly the OR of
 * the one-line lists (for the first MAX_LINES lines; past them, a hit in a
 * one-line list must be a hit in the merged one). Merged intervals must be
 * sorted, disjoint and not adjacent. Textual lookups must agree with the
 * binary ones, and IPv4-mapped addresses must see the IPv4 prefixes.
 *
 * The module's source is compiled into this file, as fuzz_input.c does, so
 * that its code has libFuzzer's coverage and its internals (the intervals,
 * the name arena) can be inspected; the archive's exclude.o is then never
 * pulled in.
 */
#include "inputs/exclude.c"

#define MAX_LINES 48 /* one-line lists compared exactly */

/* Stops the run: libFuzzer reports the crash with the input. */
static void fail(const char *what)
{
    fprintf(stderr, "fuzz_exclude: %s\n", what);
    abort();
}

/* Checks that [lo, hi] is one CIDR block: its size a power of two, lo aligned to it. */
static void check_cidr4(iv4_t v)
{
    uint32_t span = v.hi - v.lo; /* size - 1 */
    if (v.lo > v.hi || (span & (span + 1)) != 0 || (v.lo & span) != 0)
        fail("IPv4 entry is not a CIDR block");
}

static void check_cidr6(iv6_t v)
{
    if (ucmp(v.lo, v.hi) > 0)
        fail("IPv6 entry lo > hi");
    uint64_t sh = v.hi.hi - v.lo.hi - (v.hi.lo < v.lo.lo), sl = v.hi.lo - v.lo.lo;
    /* span + 1 must be a power of two: span is a run of low one bits */
    int ok = sh == 0 ? (sl & (sl + 1)) == 0 : (sl == ~0ULL && (sh & (sh + 1)) == 0);
    if (!ok || (v.lo.hi & sh) != 0 || (v.lo.lo & sl) != 0)
        fail("IPv6 entry is not a CIDR block");
}

/* Checks the merged lists: each interval sane, sorted, with a gap between neighbours. */
static void check_merged(const exclude_t *ex)
{
    for (size_t i = 0; i < ex->n4; i++) {
        if (ex->v4[i].lo > ex->v4[i].hi)
            fail("IPv4 interval lo > hi");
        if (i > 0 && (ex->v4[i - 1].hi >= ex->v4[i].lo || ex->v4[i - 1].hi + 1 == ex->v4[i].lo))
            fail("IPv4 intervals overlap, touch or are unsorted");
    }
    for (size_t i = 0; i < ex->n6; i++) {
        if (ucmp(ex->v6[i].lo, ex->v6[i].hi) > 0)
            fail("IPv6 interval lo > hi");
        if (i > 0) {
            u128_t next = ex->v6[i - 1].hi;
            if (++next.lo == 0)
                next.hi++;
            if (ucmp(ex->v6[i - 1].hi, ex->v6[i].lo) >= 0 || ucmp(next, ex->v6[i].lo) == 0)
                fail("IPv6 intervals overlap, touch or are unsorted");
        }
    }
    if (ex->n4 + ex->n6 > ex->nprefixes)
        fail("more intervals than prefixes");
}

static void store32(unsigned char *b, uint32_t v)
{
    b[0] = (unsigned char)(v >> 24);
    b[1] = (unsigned char)(v >> 16);
    b[2] = (unsigned char)(v >> 8);
    b[3] = (unsigned char)v;
}

static void store64(unsigned char *b, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        b[i] = (unsigned char)v;
}

/* The lists made of one line each. */
static exclude_t *one[MAX_LINES];
static size_t none;
static exclude_t *full;
static int exact; /* the one-line lists cover every line */

/* Compares the merged list's answer for an address with the model's. */
static void probe_addr(int family, const unsigned char *a)
{
    int want = 0;
    for (size_t i = 0; i < none && !want; i++)
        want = exclude_addr(one[i], family, a);
    int got = exclude_addr(full, family, a);
    if (got != 0 && got != 1)
        fail("exclude_addr is not 0 or 1");
    if (want && !got)
        fail("address in a one-line list but not in the merged list");
    if (exact && want != got)
        fail("address in the merged list but in no one-line list");
    char text[INET6_ADDRSTRLEN];
    if (!inet_ntop(family, a, text, sizeof(text)))
        fail("inet_ntop");
    if (exclude_ip(full, text) != got)
        fail("exclude_ip differs from exclude_addr");
    if (family == AF_INET) {
        unsigned char m[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        memcpy(m + 12, a, 4);
        int gm = exclude_addr(full, AF_INET6, m);
        if (got && !gm)
            fail("IPv4 address excluded but its mapped form is not");
        probe_addr(AF_INET6, m);
    }
}

static void probe4(uint32_t v)
{
    unsigned char b[4];
    store32(b, v);
    probe_addr(AF_INET, b);
}

static void probe6(u128_t v)
{
    unsigned char b[16];
    store64(b, v.hi);
    store64(b + 8, v.lo);
    probe_addr(AF_INET6, b);
}

static void probe_name(const char *name)
{
    int want = 0;
    for (size_t i = 0; i < none && !want; i++)
        want = exclude_domain(one[i], name);
    int got = exclude_domain(full, name);
    if (got != 0 && got != 1)
        fail("exclude_domain is not 0 or 1");
    if (want && !got)
        fail("name in a one-line list but not in the merged list");
    if (exact && want != got)
        fail("name in the merged list but in no one-line list");
}

/* Probes at the edges of a one-line list's entry and around its name. */
static void probe_entry(const exclude_t *e)
{
    for (size_t i = 0; i < e->n4; i++) {
        check_cidr4(e->v4[i]);
        probe4(e->v4[i].lo);
        probe4(e->v4[i].hi);
        probe4(e->v4[i].lo - 1);
        probe4(e->v4[i].hi + 1);
    }
    for (size_t i = 0; i < e->n6; i++) {
        check_cidr6(e->v6[i]);
        u128_t lo = e->v6[i].lo, hi = e->v6[i].hi, below = lo, above = hi;
        if (below.lo-- == 0)
            below.hi--;
        if (++above.lo == 0)
            above.hi++;
        probe6(lo);
        probe6(hi);
        probe6(below);
        probe6(above);
    }
    if (e->nnames > 0) {
        char name[NAME_MAX_LEN + 8], v[NAME_MAX_LEN + 16];
        size_t len = e->arena[0];
        if (len == 0 || len > NAME_MAX_LEN)
            fail("stored name length");
        memcpy(name, e->arena + 1, len);
        name[len] = '\0';
        if (exclude_domain(e, name) != 1 || exclude_domain(full, name) != 1)
            fail("a listed name is not excluded");
        probe_name(name);
        snprintf(v, sizeof(v), "x.%s", name);
        probe_name(v);
        snprintf(v, sizeof(v), "x%s", name);
        probe_name(v);
        snprintf(v, sizeof(v), "%s.", name);
        probe_name(v);
        probe_name(name + 1);
        const char *dot = strchr(name, '.');
        if (dot)
            probe_name(dot + 1);
        name[len - 1] = '\0';
        probe_name(name);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    char err[512];
    size_t lines = 1;
    for (size_t i = 0; i < size; i++)
        lines += data[i] == '\n';

    full = exclude_parse(text, size, "f", err, sizeof(err));
    if (!full) {
        size_t n = strlen(err);
        if (n == 0 || n >= sizeof(err) - 1 || strncmp(err, "f:", 2) != 0)
            fail("error message missing or malformed");
        for (size_t i = 0; i < n; i++)
            if ((unsigned char)err[i] < 0x20 || (unsigned char)err[i] >= 0x7f)
                fail("non-printable byte in the error message");
        char *endp;
        unsigned long line = strtoul(err + 2, &endp, 10);
        if (line == 0 || line > lines || strncmp(endp, ": ", 2) != 0)
            fail("error line number");
        /* The lines before the bad one are fine on their own. */
        size_t off = 0;
        for (unsigned long l = 1; l < line; l++)
            off = (size_t)((const char *)memchr(text + off, '\n', size - off) - text) + 1;
        exclude_t *head = exclude_parse(text, off, "f", NULL, 0);
        if (!head)
            fail("the lines before the first error do not parse");
        exclude_free(head);
        /* A short message buffer is cut and terminated. */
        char small[8];
        memset(small, 'X', sizeof(small));
        if (exclude_parse(text, size, "f", small, 5) || small[4] != '\0' || small[5] != 'X')
            fail("short error buffer");
        return 0;
    }
    check_merged(full);

    /* One list per line. */
    none = 0;
    exact = 1;
    size_t total_p = 0, total_n = 0;
    for (size_t off = 0; off < size;) {
        const char *nl = memchr(text + off, '\n', size - off);
        size_t end = nl ? (size_t)(nl - text) : size;
        if (none == MAX_LINES) {
            exact = 0;
            break;
        }
        exclude_t *e = exclude_parse(text + off, end - off, "f", err, sizeof(err));
        if (!e)
            fail("a line of a good list does not parse alone");
        if (exclude_count_prefixes(e) + exclude_count_domains(e) > 1)
            fail("one line, more than one entry");
        total_p += exclude_count_prefixes(e);
        total_n += exclude_count_domains(e);
        one[none++] = e;
        off = end + 1;
    }
    if (exact && (exclude_count_prefixes(full) > total_p || exclude_count_domains(full) > total_n ||
                  (total_p > 0 && exclude_count_prefixes(full) == 0) ||
                  (total_n > 0 && exclude_count_domains(full) == 0)))
        fail("counts");

    for (size_t i = 0; i < none; i++)
        probe_entry(one[i]);
    for (size_t i = 0; i < full->n4; i++) {
        probe4(full->v4[i].lo);
        probe4(full->v4[i].hi + 1);
    }

    /* Probes from the input bytes. */
    unsigned char a[16] = {0};
    memcpy(a, data, size < 16 ? size : 16);
    probe_addr(AF_INET, a);
    probe_addr(AF_INET6, a);
    char s[300];
    size_t n = size < sizeof(s) - 1 ? size : sizeof(s) - 1;
    memcpy(s, data, n);
    s[n] = '\0';
    probe_name(s);
    int r = exclude_ip(full, s);
    if (r < -1 || r > 1)
        fail("exclude_ip result");

    for (size_t i = 0; i < none; i++)
        exclude_free(one[i]);
    exclude_free(full);
    return 0;
}
