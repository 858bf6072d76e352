/*
 * jsoncheck.c - the strict UTF-8 and JSON string checker shared by the unit
 * tests and the fuzzers (see jsoncheck.h). It is an oracle for what the
 * scanner writes, so it is written apart from scanner/strbuf.c: it decodes
 * each sequence and checks the code point rather than the byte ranges.
 */
#include "tests/support/jsoncheck.h"

#include <stdlib.h>
#include <string.h>

/* Length of a strict UTF-8 sequence at s, 0 if none starts there. */
size_t jc_utf8_len(const unsigned char *s, size_t n)
{
    if (s[0] < 0x80) {
        return 1;
    }
    size_t need;
    unsigned c, min;
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        need = 2, c = s[0] & 0x1f, min = 0x80;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        need = 3, c = s[0] & 0x0f, min = 0x800;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        need = 4, c = s[0] & 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (need > n) {
        return 0;
    }
    for (size_t i = 1; i < need; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
        c = c << 6 | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff)) {
        return 0;
    }
    return need;
}

/* Length of a lead byte C0-FF and the 1-3 continuation bytes after it, 0 if none follow. */
static size_t lax_len(const unsigned char *s, size_t n)
{
    if ((s[0] & 0xc0) != 0xc0) {
        return 0;
    }
    size_t k = 1;
    while (k < n && k < 4 && (s[k] & 0xc0) == 0x80) {
        k++;
    }
    return k > 1 ? k : 0;
}

/* Appends a code point as UTF-8. */
void jc_put_utf8(unsigned c, unsigned char *out, size_t *o)
{
    if (c < 0x80) {
        out[(*o)++] = (unsigned char)c;
    } else if (c < 0x800) {
        out[(*o)++] = (unsigned char)(0xc0 | c >> 6);
        out[(*o)++] = (unsigned char)(0x80 | (c & 0x3f));
    } else if (c < 0x10000) {
        out[(*o)++] = (unsigned char)(0xe0 | c >> 12);
        out[(*o)++] = (unsigned char)(0x80 | ((c >> 6) & 0x3f));
        out[(*o)++] = (unsigned char)(0x80 | (c & 0x3f));
    } else {
        out[(*o)++] = (unsigned char)(0xf0 | c >> 18);
        out[(*o)++] = (unsigned char)(0x80 | ((c >> 12) & 0x3f));
        out[(*o)++] = (unsigned char)(0x80 | ((c >> 6) & 0x3f));
        out[(*o)++] = (unsigned char)(0x80 | (c & 0x3f));
    }
}

/* Reads four hex digits into *v; -1 if one is not a hex digit. */
static int hex4(const unsigned char *s, unsigned *v)
{
    *v = 0;
    for (int i = 0; i < 4; i++) {
        int c = s[i], d;
        if (c >= '0' && c <= '9') {
            d = c - '0';
        } else if (c >= 'a' && c <= 'f') {
            d = c - 'a' + 10;
        } else if (c >= 'A' && c <= 'F') {
            d = c - 'A' + 10;
        } else {
            return -1;
        }
        *v = *v << 4 | (unsigned)d;
    }
    return 0;
}

/* Sets the reason for an error (if asked for) and returns -1. */
static int bad(const char **why, const char *reason)
{
    if (why) {
        *why = reason;
    }
    return -1;
}

/* Decodes one JSON string at s[*pos] into out (UTF-8), validating every escape and byte. */
int jc_json_string(const unsigned char *s, size_t n, size_t *pos, int flags, unsigned char *out,
                   size_t *outlen, const char **why)
{
    size_t p = *pos, o = 0;
    if (p >= n || s[p] != '"') {
        return bad(why, "no opening quote");
    }
    p++;
    for (;;) {
        if (p >= n) {
            return bad(why, "no closing quote");
        }
        unsigned c = s[p];
        if (c == '"') {
            *pos = p + 1;
            *outlen = o;
            return 0;
        }
        if (c < 0x20) {
            return bad(why, "raw control character");
        }
        if (c == '\\') {
            if (p + 1 >= n) {
                return bad(why, "backslash at the end");
            }
            unsigned e = s[p + 1];
            p += 2;
            const char *simple = "\"\\/bfnrt", *val = "\"\\/\b\f\n\r\t";
            const char *k = e ? strchr(simple, (int)e) : NULL;
            if (k) {
                out[o++] = (unsigned char)val[k - simple];
                continue;
            }
            unsigned v;
            if (e != 'u' || p + 4 > n || hex4(s + p, &v) < 0) {
                return bad(why, "bad escape");
            }
            p += 4;
            if (v >= 0xd800 && v <= 0xdbff) {
                unsigned lo;
                if (p + 6 > n || s[p] != '\\' || s[p + 1] != 'u' || hex4(s + p + 2, &lo) < 0 ||
                    lo < 0xdc00 || lo > 0xdfff) {
                    return bad(why, "lone high surrogate escape");
                }
                p += 6;
                v = 0x10000 + ((v - 0xd800) << 10) + (lo - 0xdc00);
            } else if (v >= 0xdc00 && v <= 0xdfff) {
                return bad(why, "lone low surrogate escape");
            }
            jc_put_utf8(v, out, &o);
            continue;
        }
        size_t l = jc_utf8_len(s + p, n - p);
        if (l == 0 && (flags & JC_LAX_UTF8)) {
            l = lax_len(s + p, n - p);
        }
        if (l == 0) {
            return bad(why, "invalid UTF-8");
        }
        memcpy(out + o, s + p, l);
        o += l;
        p += l;
    }
}

/* Parses a whole compact JSON array of strings into a malloc'd list of decoded strings. */
int jc_json_string_array(const char *text, int flags, char ***items, size_t *count,
                         const char **why)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t n = strlen(text), p = 1;
    char **list = NULL;
    size_t nlist = 0;
    const char *reason = NULL;
    *items = NULL;
    *count = 0;
    if (n < 2 || s[0] != '[') {
        return bad(why, "no opening bracket");
    }
    if (s[1] == ']') {
        return n == 2 ? 0 : bad(why, "bytes after the closing bracket");
    }
    unsigned char *buf = malloc(n); /* a decoded string is never longer than its JSON */
    if (!buf) {
        return bad(why, "out of memory");
    }
    for (;;) {
        size_t len;
        if (jc_json_string(s, n, &p, flags, buf, &len, &reason) < 0) {
            break;
        }
        char **grown = realloc(list, (nlist + 1) * sizeof *list);
        char *item = malloc(len + 1);
        if (grown) {
            list = grown;
        }
        if (!grown || !item) {
            free(item);
            reason = "out of memory";
            break;
        }
        memcpy(item, buf, len);
        item[len] = 0;
        list[nlist++] = item;
        if (p < n && s[p] == ',') {
            p++;
            continue;
        }
        if (p >= n || s[p] != ']') {
            reason = "no comma or closing bracket after a string";
        } else if (p + 1 != n) {
            reason = "bytes after the closing bracket";
        }
        break;
    }
    free(buf);
    if (reason) {
        jc_free_strings(list, nlist);
        return bad(why, reason);
    }
    *items = list;
    *count = nlist;
    return 0;
}

/* Frees a list of strings and the list. */
void jc_free_strings(char **items, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        free(items[i]);
    }
    free(items);
}
