/*
 * strbuf.h - a growing string buffer with JSON string escaping, for the few
 * places that build text (EHLO lists as JSON, finding details, summaries).
 */
#ifndef MXSCAN_STRBUF_H
#define MXSCAN_STRBUF_H

#include <stdarg.h>
#include <stddef.h>

typedef struct strbuf {
    char *s;
    size_t len, cap;
    int oom; /* an allocation failed: contents are truncated */
} strbuf_t;

void sb_init(strbuf_t *b);
void sb_putc(strbuf_t *b, char c);
void sb_put(strbuf_t *b, const char *s, size_t n);
void sb_puts(strbuf_t *b, const char *s);
void sb_printf(strbuf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends s (n bytes) as a quoted JSON string; bytes that are not valid
 * UTF-8 are written as \\u00XX of the byte, so the output is always valid. */
void sb_json_str(strbuf_t *b, const char *s, size_t n);
/* Length of the well-formed UTF-8 sequence at s (at most n bytes, n >= 1),
 * or 0 when the bytes there are not one (RFC 3629 section 4: no overlong
 * form, no surrogate, nothing above U+10FFFF). */
size_t sb_utf8_len(const unsigned char *s, size_t n);
/* Returns the text (malloc'd, never NULL unless out of memory) and resets b. */
char *sb_take(strbuf_t *b);
void sb_free(strbuf_t *b);

#endif
