/*
 * exclude.c - the exclusion list: parsing and lookups (see exclude.h and
 * docs/exclude.md).
 *
 * Parsing. The text is split into lines at "\n" (one '\r' before it is
 * dropped; a last line without newline counts; a UTF-8 BOM at the start is
 * skipped). A line longer than EXCLUDE_LINE_MAX bytes, or holding a NUL
 * byte, is an error whatever it holds: either means the wrong file. A '#'
 * starts a comment to the end of the line; what remains is trimmed of
 * blanks and, if not empty, is one entry, read in this order:
 *   - an IPv6 address or prefix when it holds a ':' (inet_pton(AF_INET6));
 *   - an IPv4 address or prefix when it parses as a dotted quad
 *     (inet_pton(AF_INET): exactly four decimal parts, no leading zeros);
 *   - a domain name otherwise: an optional leading "*." and trailing '.',
 *     labels of 1..63 letters, digits, '-' and '_' not starting or ending
 *     with '-', at most 253 bytes, and a last label that is not all digits
 *     (so a mistyped address such as 192.0.2.256 is an error, not a name).
 * The prefix length is 1 to 3 decimal digits, at most 32 or 128; host bits
 * set beyond it are cleared, as zmap does. An IPv6 prefix inside
 * ::ffff:0:0/96 (a mapped IPv4 prefix) is stored as the IPv4 prefix it
 * stands for. The first error ends the parse.
 *
 * Addresses. Each prefix is an interval [lo, hi] of integers: uint32_t for
 * IPv4, two uint64_t for IPv6. After the parse the intervals of each family
 * are sorted, and overlapping or adjacent ones merged, so that a lookup is
 * one binary search for the last interval starting at or below the
 * address.
 *
 * Names. The set is an open-addressing hash table (linear probing, at most
 * half full) of 64-bit slots: 32 bits of the hash as a tag, and 32 bits of
 * 1 + the offset of the name in an arena that stores each name as a length
 * byte followed by its bytes in lower case. The hash (FNV-1a, finished by a
 * 64-bit mixer) runs over the name from its last byte to its first, so one
 * pass over a name gives the hash of every parent on the way: a lookup
 * costs one probe per label.
 */
#include "inputs/exclude.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#define NAME_MAX_LEN 253 /* bytes in a name without the trailing dot */
#define LABEL_MAX    63  /* bytes in a label */
#define SHOW_MAX     60  /* bytes of the offending text quoted in a message */
#define FNV_OFFSET   0xcbf29ce484222325ULL
#define FNV_PRIME    0x100000001b3ULL

typedef struct iv4 {
    uint32_t lo, hi;
} iv4_t;

typedef struct u128 {
    uint64_t hi, lo;
} u128_t;

typedef struct iv6 {
    u128_t lo, hi;
} iv6_t;

struct exclude {
    iv4_t *v4; /* sorted, merged, after the parse */
    size_t n4, cap4;
    iv6_t *v6;
    size_t n6, cap6;
    size_t nprefixes; /* distinct prefixes before merging */

    uint64_t *slots; /* tag << 32 | (offset + 1); 0 = empty */
    size_t mask;     /* slots - 1 (a power of two minus one); 0 when no table */
    size_t nnames;
    unsigned char *arena; /* length byte + lower-case name, for each name */
    size_t arena_len, arena_cap;
};

/* ---------- helpers ---------- */

static unsigned char lower(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') ? (unsigned char)(c | 0x20) : c;
}

/* Final mixer of the name hash (MurmurHash3's fmix64). */
static uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

/* Hash of len bytes taken from the last to the first, case folded. */
static uint64_t name_hash(const char *s, size_t len)
{
    uint64_t h = FNV_OFFSET;
    while (len-- > 0)
        h = (h ^ lower((unsigned char)s[len])) * FNV_PRIME;
    return mix(h);
}

/* Grows *p (element size sz, capacity *cap) to hold one more than n. */
static int grow(void **p, size_t *cap, size_t n, size_t sz)
{
    if (n < *cap)
        return 0;
    size_t nc = *cap ? *cap * 2 : 64;
    if (nc > SIZE_MAX / sz)
        return -1;
    void *q = realloc(*p, nc * sz);
    if (!q)
        return -1;
    *p = q;
    *cap = nc;
    return 0;
}

/* ---------- the name set ---------- */

/* Slot holding the name (hash h, len bytes), or the empty slot where it would go. */
static size_t slot_find(const exclude_t *ex, uint64_t h, const char *s, size_t len)
{
    uint64_t tag = h >> 32;
    size_t i = (size_t)h & ex->mask;
    for (;; i = (i + 1) & ex->mask) {
        uint64_t v = ex->slots[i];
        if (v == 0)
            return i;
        if ((v >> 32) != tag)
            continue;
        const unsigned char *e = ex->arena + (v & 0xffffffffu) - 1;
        if (e[0] != len)
            continue;
        size_t k = 0;
        while (k < len && e[1 + k] == lower((unsigned char)s[k]))
            k++;
        if (k == len)
            return i;
    }
}

static int name_present(const exclude_t *ex, uint64_t h, const char *s, size_t len)
{
    return len > 0 && ex->slots[slot_find(ex, h, s, len)] != 0;
}

/* Doubles the table (or makes the first one) and reinserts every name. */
static int table_grow(exclude_t *ex)
{
    size_t n = ex->slots ? (ex->mask + 1) * 2 : 1024;
    if (n > SIZE_MAX / sizeof(uint64_t))
        return -1;
    uint64_t *old = ex->slots;
    size_t oldn = old ? ex->mask + 1 : 0;
    ex->slots = calloc(n, sizeof(uint64_t));
    if (!ex->slots) {
        ex->slots = old;
        return -1;
    }
    ex->mask = n - 1;
    for (size_t i = 0; i < oldn; i++) {
        if (!old[i])
            continue;
        const unsigned char *e = ex->arena + (old[i] & 0xffffffffu) - 1;
        uint64_t h = name_hash((const char *)e + 1, e[0]);
        size_t j = (size_t)h & ex->mask;
        while (ex->slots[j])
            j = (j + 1) & ex->mask;
        ex->slots[j] = old[i];
    }
    free(old);
    return 0;
}

/* Adds a valid name (len 1..NAME_MAX_LEN); a repeat is a no-op. 0, or -1 with *why. */
static int name_add(exclude_t *ex, const char *s, size_t len, const char **why)
{
    if ((ex->nnames + 1) * 2 > (ex->slots ? ex->mask + 1 : 0) && table_grow(ex) != 0) {
        *why = "out of memory";
        return -1;
    }
    uint64_t h = name_hash(s, len);
    size_t i = slot_find(ex, h, s, len);
    if (ex->slots[i])
        return 0;
    if (ex->arena_len + 1 + len >= UINT32_MAX) {
        *why = "too many names in the list";
        return -1;
    }
    while (ex->arena_len + 1 + len > ex->arena_cap) {
        size_t nc = ex->arena_cap ? ex->arena_cap * 2 : 4096;
        unsigned char *a = realloc(ex->arena, nc);
        if (!a) {
            *why = "out of memory";
            return -1;
        }
        ex->arena = a;
        ex->arena_cap = nc;
    }
    size_t off = ex->arena_len;
    ex->arena[off] = (unsigned char)len;
    for (size_t k = 0; k < len; k++)
        ex->arena[off + 1 + k] = lower((unsigned char)s[k]);
    ex->arena_len += 1 + len;
    ex->slots[i] = (h >> 32) << 32 | (uint64_t)(off + 1);
    ex->nnames++;
    return 0;
}

/* ---------- parsing one entry ---------- */

/* Checks a domain name entry; on success points *name, *len at the name proper. */
static int parse_name(const char *t, size_t n, const char **name, size_t *len, const char **why)
{
    if (n >= 2 && t[0] == '*' && t[1] == '.') {
        t += 2;
        n -= 2;
    }
    if (n > 0 && t[n - 1] == '.')
        n--;
    *why = "not an address, prefix or domain name";
    if (n == 0)
        return -1;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)t[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return -1;
    }
    size_t start = 0;
    int digits_only = 1;
    for (size_t i = 0; i <= n; i++) {
        if (i < n && t[i] != '.') {
            if (t[i] < '0' || t[i] > '9')
                digits_only = 0;
            continue;
        }
        size_t ll = i - start;
        if (ll == 0) {
            *why = "empty label in domain name";
            return -1;
        }
        if (ll > LABEL_MAX) {
            *why = "label longer than 63 bytes in domain name";
            return -1;
        }
        if (t[start] == '-' || t[i - 1] == '-') {
            *why = "label starts or ends with '-' in domain name";
            return -1;
        }
        if (i < n) {
            start = i + 1;
            digits_only = 1;
        }
    }
    if (digits_only)
        return -1; /* no top-level label is all digits: a mistyped address */
    if (n > NAME_MAX_LEN) {
        *why = "domain name longer than 253 bytes";
        return -1;
    }
    *name = t;
    *len = n;
    return 0;
}

/* Adds an IPv4 interval. */
static int add4(exclude_t *ex, uint32_t a, int plen, const char **why)
{
    uint32_t m = plen == 0 ? 0 : 0xffffffffu << (32 - plen);
    if (grow((void **)&ex->v4, &ex->cap4, ex->n4, sizeof(iv4_t)) != 0) {
        *why = "out of memory";
        return -1;
    }
    ex->v4[ex->n4].lo = a & m;
    ex->v4[ex->n4].hi = a | ~m;
    ex->n4++;
    return 0;
}

static uint64_t mask64(int bits) /* the top bits (0..64) of a 64-bit word set */
{
    return bits <= 0 ? 0 : bits >= 64 ? ~0ULL : ~0ULL << (64 - bits);
}

static uint64_t load64(const unsigned char *b)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | b[i];
    return v;
}

static uint32_t load32(const unsigned char *b)
{
    return (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
}

/* An IPv4-mapped IPv6 address: ::ffff:0:0/96. */
static int is_mapped(const unsigned char *b)
{
    static const unsigned char pfx[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(b, pfx, 12) == 0;
}

/* Adds an IPv6 interval; a mapped prefix of 96 bits or more goes to the IPv4 list. */
static int add6(exclude_t *ex, const unsigned char *b, int plen, const char **why)
{
    if (plen >= 96 && is_mapped(b))
        return add4(ex, load32(b + 12), plen - 96, why);
    if (grow((void **)&ex->v6, &ex->cap6, ex->n6, sizeof(iv6_t)) != 0) {
        *why = "out of memory";
        return -1;
    }
    uint64_t mh = mask64(plen), ml = mask64(plen - 64);
    uint64_t h = load64(b), l = load64(b + 8);
    iv6_t *v = &ex->v6[ex->n6++];
    v->lo.hi = h & mh;
    v->lo.lo = l & ml;
    v->hi.hi = h | ~mh;
    v->hi.lo = l | ~ml;
    return 0;
}

/* Parses one entry (t: n bytes, NUL-terminated, no blanks around) into ex. */
static int parse_entry(exclude_t *ex, char *t, size_t n, const char **why)
{
    const char *bad = "not an address, prefix or domain name";
    char *slash = memchr(t, '/', n);
    int plen = -1;
    if (slash) {
        const char *d = slash + 1;
        size_t nd = n - (size_t)(d - t);
        if (nd == 0 || nd > 3 || strspn(d, "0123456789") != nd) {
            *why = bad;
            return -1;
        }
        plen = atoi(d);
        *slash = '\0';
    }
    unsigned char a[16];
    int rc = -1;
    if (memchr(t, ':', n)) {
        if (inet_pton(AF_INET6, t, a) == 1) {
            if (plen > 128)
                *why = "prefix length out of range (at most 128)";
            else
                rc = add6(ex, a, plen < 0 ? 128 : plen, why);
        } else {
            *why = bad;
        }
    } else if (inet_pton(AF_INET, t, a) == 1) {
        if (plen > 32)
            *why = "prefix length out of range (at most 32)";
        else
            rc = add4(ex, load32(a), plen < 0 ? 32 : plen, why);
    } else if (slash) {
        *why = bad;
    } else {
        const char *name;
        size_t len;
        if (parse_name(t, n, &name, &len, why) == 0)
            rc = name_add(ex, name, len, why);
    }
    if (slash)
        *slash = '/';
    return rc;
}

/* ---------- building the interval lists ---------- */

static int cmp4(const void *pa, const void *pb)
{
    const iv4_t *a = pa, *b = pb;
    if (a->lo != b->lo)
        return a->lo < b->lo ? -1 : 1;
    return a->hi < b->hi ? -1 : a->hi > b->hi;
}

static int ucmp(u128_t a, u128_t b)
{
    if (a.hi != b.hi)
        return a.hi < b.hi ? -1 : 1;
    return a.lo < b.lo ? -1 : a.lo > b.lo;
}

static int cmp6(const void *pa, const void *pb)
{
    const iv6_t *a = pa, *b = pb;
    int c = ucmp(a->lo, b->lo);
    return c ? c : ucmp(a->hi, b->hi);
}

/* Sorts the intervals, counts the distinct ones and merges overlapping or adjacent ones. */
static void finish(exclude_t *ex)
{
    size_t k = 0;
    iv4_t last4 = {0, 0};
    if (ex->n4 > 1)
        qsort(ex->v4, ex->n4, sizeof(iv4_t), cmp4);
    for (size_t i = 0; i < ex->n4; i++) {
        iv4_t v = ex->v4[i]; /* v4[i - 1] may be merged into already: compare with a copy */
        if (i == 0 || cmp4(&v, &last4) != 0)
            ex->nprefixes++;
        last4 = v;
        if (k > 0 && (v.lo <= ex->v4[k - 1].hi || v.lo - 1 == ex->v4[k - 1].hi)) {
            if (v.hi > ex->v4[k - 1].hi)
                ex->v4[k - 1].hi = v.hi;
        } else {
            ex->v4[k++] = v;
        }
    }
    ex->n4 = k;

    k = 0;
    iv6_t last6 = {{0, 0}, {0, 0}};
    if (ex->n6 > 1)
        qsort(ex->v6, ex->n6, sizeof(iv6_t), cmp6);
    for (size_t i = 0; i < ex->n6; i++) {
        iv6_t v = ex->v6[i];
        if (i == 0 || cmp6(&v, &last6) != 0)
            ex->nprefixes++;
        last6 = v;
        if (k > 0) {
            u128_t prev = ex->v6[k - 1].hi, next = prev; /* next: prev + 1, wrapping */
            next.lo++;
            if (next.lo == 0)
                next.hi++;
            int touching = ucmp(v.lo, prev) <= 0 || ucmp(v.lo, next) == 0;
            if (touching) {
                if (ucmp(v.hi, prev) > 0)
                    ex->v6[k - 1].hi = v.hi;
                continue;
            }
        }
        ex->v6[k++] = v;
    }
    ex->n6 = k;
}

/* ---------- the parse ---------- */

/* Writes "name:line: reason: 'text'" with text quoted printably and cut. */
static void line_err(char *err, size_t errlen, const char *name, size_t line, const char *why,
                     const char *t, size_t n)
{
    char shown[SHOW_MAX * 4 + 8];
    size_t o = 0;
    for (size_t i = 0; i < n && i < SHOW_MAX; i++) {
        unsigned char c = (unsigned char)t[i];
        if (c >= 0x20 && c < 0x7f && c != '\\')
            shown[o++] = (char)c;
        else
            o += (size_t)snprintf(shown + o, sizeof(shown) - o, "\\x%02x", c);
    }
    if (n > SHOW_MAX) {
        memcpy(shown + o, "...", 3);
        o += 3;
    }
    shown[o] = '\0';
    if (err && errlen > 0)
        snprintf(err, errlen, "%s:%zu: %s: '%s'", name, line, why, shown);
}

static int is_blank(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

exclude_t *exclude_parse(const char *buf, size_t len, const char *name, char *err, size_t errlen)
{
    if (!name)
        name = "exclude";
    if (err && errlen > 0)
        err[0] = '\0';
    exclude_t *ex = calloc(1, sizeof(*ex));
    if (!ex) {
        if (err && errlen > 0)
            snprintf(err, errlen, "%s: out of memory", name);
        return NULL;
    }
    const char *p = buf, *end = buf ? buf + len : buf;
    if (len >= 3 && memcmp(p, "\xef\xbb\xbf", 3) == 0)
        p += 3;
    char tok[EXCLUDE_LINE_MAX + 1];
    size_t line = 0;
    while (p < end) {
        line++;
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        size_t n = (size_t)(e - p);
        if (n > 0 && p[n - 1] == '\r')
            n--;
        const char *why = NULL;
        if (n > EXCLUDE_LINE_MAX)
            why = "line too long (more than 1000 bytes)";
        else if (memchr(p, '\0', n))
            why = "NUL byte in line";
        if (why) {
            line_err(err, errlen, name, line, why, p, n);
            exclude_free(ex);
            return NULL;
        }
        const char *hash = memchr(p, '#', n);
        if (hash)
            n = (size_t)(hash - p);
        const char *s = p;
        while (n > 0 && is_blank((unsigned char)s[0])) {
            s++;
            n--;
        }
        while (n > 0 && is_blank((unsigned char)s[n - 1]))
            n--;
        p = nl ? nl + 1 : end;
        if (n == 0)
            continue;
        memcpy(tok, s, n);
        tok[n] = '\0';
        if (parse_entry(ex, tok, n, &why) != 0) {
            line_err(err, errlen, name, line, why, s, n);
            exclude_free(ex);
            return NULL;
        }
    }
    finish(ex);
    return ex;
}

exclude_t *exclude_load(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (err && errlen > 0)
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    size_t cap = 65536, len = 0;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size + 1 > cap &&
        (uint64_t)st.st_size < SIZE_MAX / 2)
        cap = (size_t)st.st_size + 1;
    char *buf = malloc(cap);
    const char *fail = buf ? NULL : "out of memory";
    while (!fail) {
        if (len == cap) {
            char *nb = cap < SIZE_MAX / 2 ? realloc(buf, cap * 2) : NULL;
            if (!nb) {
                fail = "out of memory";
                break;
            }
            buf = nb;
            cap *= 2;
        }
        ssize_t r = read(fd, buf + len, cap - len);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            fail = strerror(errno);
        else if (r == 0)
            break;
        else
            len += (size_t)r;
    }
    close(fd);
    exclude_t *ex = NULL;
    if (fail) {
        if (err && errlen > 0)
            snprintf(err, errlen, "%s: %s", path, fail);
    } else {
        ex = exclude_parse(buf, len, path, err, errlen);
    }
    free(buf);
    return ex;
}

void exclude_free(exclude_t *ex)
{
    if (!ex)
        return;
    free(ex->v4);
    free(ex->v6);
    free(ex->slots);
    free(ex->arena);
    free(ex);
}

/* ---------- lookups ---------- */

static int in4(const exclude_t *ex, uint32_t a)
{
    size_t lo = 0, hi = ex->n4; /* find the first interval with lo > a */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ex->v4[mid].lo <= a)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo > 0 && a <= ex->v4[lo - 1].hi;
}

static int in6(const exclude_t *ex, u128_t a)
{
    size_t lo = 0, hi = ex->n6;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ucmp(ex->v6[mid].lo, a) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo > 0 && ucmp(a, ex->v6[lo - 1].hi) <= 0;
}

int exclude_addr(const exclude_t *ex, int family, const void *addr)
{
    const unsigned char *b = addr;
    if (family == AF_INET)
        return ex ? in4(ex, load32(b)) : 0;
    if (family != AF_INET6)
        return -1;
    if (!ex)
        return 0;
    u128_t a = {load64(b), load64(b + 8)};
    if (in6(ex, a))
        return 1;
    return is_mapped(b) && in4(ex, load32(b + 12));
}

int exclude_ip(const exclude_t *ex, const char *ip)
{
    unsigned char a[16];
    if (inet_pton(AF_INET, ip, a) == 1)
        return exclude_addr(ex, AF_INET, a);
    if (inet_pton(AF_INET6, ip, a) == 1)
        return exclude_addr(ex, AF_INET6, a);
    return -1;
}

int exclude_domain(const exclude_t *ex, const char *name)
{
    if (!ex || ex->nnames == 0 || !name)
        return 0;
    size_t len = strlen(name);
    if (len > 0 && name[len - 1] == '.')
        len--;
    if (len == 0)
        return 0;
    /* Hash from the last byte; at each dot, the bytes after it are a parent. */
    uint64_t h = FNV_OFFSET;
    for (size_t i = len; i-- > 0;) {
        unsigned char c = lower((unsigned char)name[i]);
        if (c == '.' && len - i - 1 <= NAME_MAX_LEN &&
            name_present(ex, mix(h), name + i + 1, len - i - 1))
            return 1;
        h = (h ^ c) * FNV_PRIME;
    }
    return len <= NAME_MAX_LEN && name_present(ex, mix(h), name, len);
}

size_t exclude_count_prefixes(const exclude_t *ex)
{
    return ex ? ex->nprefixes : 0;
}

size_t exclude_count_domains(const exclude_t *ex)
{
    return ex ? ex->nnames : 0;
}
