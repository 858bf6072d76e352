/*
 * strbuf.c - growing strings and JSON string escaping.
 */
#include "scanner/strbuf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Starts an empty buffer. */
void sb_init(strbuf_t *b)
{
    memset(b, 0, sizeof *b);
}

/* Makes room for n more bytes plus a NUL. */
static int grow(strbuf_t *b, size_t n)
{
    if (b->oom) {
        return -1;
    }
    if (b->len + n + 1 <= b->cap) {
        return 0;
    }
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->len + n + 1) {
        cap *= 2;
    }
    char *s = realloc(b->s, cap);
    if (!s) {
        b->oom = 1;
        return -1;
    }
    b->s = s;
    b->cap = cap;
    return 0;
}

/* Appends n bytes. */
void sb_put(strbuf_t *b, const char *s, size_t n)
{
    if (grow(b, n) < 0) {
        return;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

/* Appends one byte. */
void sb_putc(strbuf_t *b, char c)
{
    sb_put(b, &c, 1);
}

/* Appends a C string. */
void sb_puts(strbuf_t *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

/* Appends formatted text. */
void sb_printf(strbuf_t *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || grow(b, (size_t)n) < 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* Length of a well-formed UTF-8 sequence at s (at most n bytes), 0 if it
 * is not one: RFC 3629 section 4 excludes overlong forms, surrogates and
 * code points above U+10FFFF through the range of the second byte. */
size_t sb_utf8_len(const unsigned char *s, size_t n)
{
    size_t need;
    unsigned char lo = 0x80, hi = 0xbf; /* allowed range of the second byte */
    if (s[0] < 0x80) {
        return 1;
    } else if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        need = 2;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        need = 3;
        lo = s[0] == 0xe0 ? 0xa0 : 0x80;
        hi = s[0] == 0xed ? 0x9f : 0xbf;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        need = 4;
        lo = s[0] == 0xf0 ? 0x90 : 0x80;
        hi = s[0] == 0xf4 ? 0x8f : 0xbf;
    } else {
        return 0;
    }
    if (need > n || s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (size_t i = 2; i < need; i++) {
        if ((s[i] & 0xc0) != 0x80) {
            return 0;
        }
    }
    return need;
}

/* Appends a JSON string literal. */
void sb_json_str(strbuf_t *b, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    sb_putc(b, '"');
    size_t i = 0;
    while (i < n) {
        unsigned char c = p[i];
        if (c == '"' || c == '\\') {
            sb_putc(b, '\\');
            sb_putc(b, (char)c);
            i++;
        } else if (c < 0x20 || c == 0x7f) {
            sb_printf(b, "\\u%04x", c);
            i++;
        } else {
            size_t l = sb_utf8_len(p + i, n - i);
            if (l == 0) {
                sb_printf(b, "\\u%04x", c); /* a lone byte: keep it visible, keep JSON valid */
                i++;
            } else {
                sb_put(b, s + i, l);
                i += l;
            }
        }
    }
    sb_putc(b, '"');
}

/* Hands the text over and resets the buffer. */
char *sb_take(strbuf_t *b)
{
    char *s = b->s ? b->s : strdup("");
    sb_init(b);
    return s;
}

/* Frees the text. */
void sb_free(strbuf_t *b)
{
    free(b->s);
    sb_init(b);
}
