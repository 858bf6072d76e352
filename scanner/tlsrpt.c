/*
 * tlsrpt.c - the RFC 8460 section 3 record parser. The grammar is applied
 * as written (field delimiters with optional whitespace, case-sensitive
 * "v=TLSRPTv1" and "rua=", extension names and values by their ABNF), with
 * two readings spelled out below: trailing whitespace after the last field
 * is accepted, and several rua= fields are merged rather than rejected, as
 * the grammar allows any field to repeat. A finding must never come from
 * being stricter than the RFC.
 */
#include "scanner/tlsrpt.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "scanner/strbuf.h"

#define TLSRPT_VERSION "v=TLSRPTv1"

/* Space or tab: WSP of RFC 5234. */
static int is_wsp(char c)
{
    return c == ' ' || c == '\t';
}

/* A TXT string counts as a TLSRPT record when it starts with the version
 * tag followed by a delimiter, whitespace or its end (RFC 8460 3: others
 * are discarded, so "v=TLSRPTv10" is not one). */
static int is_candidate(const char *s, size_t n)
{
    size_t vl = sizeof TLSRPT_VERSION - 1;
    return n >= vl && memcmp(s, TLSRPT_VERSION, vl) == 0 &&
           (n == vl || s[vl] == ';' || is_wsp(s[vl]));
}

/* Records why the record is invalid (the first reason found wins). */
static void set_error(tlsrpt_t *t, const char *fmt, ...)
{
    if (t->error[0]) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->error, sizeof t->error, fmt, ap);
    va_end(ap);
}

/* tlsrpt-ext-name = (ALPHA / DIGIT) *31(ALPHA / DIGIT / "_" / "-" / "."). */
static int ext_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > 32 || !isalnum((unsigned char)s[0])) {
        return 0;
    }
    for (size_t i = 1; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!isalnum(c) && c != '_' && c != '-' && c != '.') {
            return 0;
        }
    }
    return 1;
}

/* tlsrpt-ext-value = 1*(%x21-3A / %x3C / %x3E-7E). */
static int ext_value_ok(const char *s, size_t n)
{
    if (n == 0) {
        return 0;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x21 || c > 0x7e || c == ';' || c == '=') {
            return 0;
        }
    }
    return 1;
}

/* Bytes RFC 3986 never allows in a URI, encoded or not. */
static int uri_chars_ok(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= 0x20 || c >= 0x7f || strchr("\"<>\\^`{|}", c)) {
            return 0;
        }
    }
    return 1;
}

/* Checks one reporting URI (RFC 8460 3: "mailto:" (RFC 6068) or "https:"
 * (RFC 2818)); returns 0 or -1 with the reason in t->error. */
static int check_uri(tlsrpt_t *t, const char *u, size_t n)
{
    if (!uri_chars_ok(u, n)) {
        set_error(t, "rua URI \"%.*s\" has characters a URI cannot hold", (int)(n > 160 ? 160 : n),
                  u);
        return -1;
    }
    if (n >= 7 && strncasecmp(u, "mailto:", 7) == 0) {
        /* The address part ends at the optional "?hfields"; it needs a
         * local part and a domain (RFC 6068 2, addr-spec of RFC 5322). */
        const char *a = u + 7;
        size_t al = n - 7;
        const char *q = memchr(a, '?', al);
        if (q) {
            al = (size_t)(q - a);
        }
        const char *at = al ? memchr(a, '@', al) : NULL;
        if (at && at > a && at < a + al - 1) {
            return 0;
        }
    } else if (n >= 6 && strncasecmp(u, "https:", 6) == 0) {
        /* "//" and an authority with a host before the path, query or fragment. */
        const char *h = n > 8 ? u + 8 : u + n;
        size_t hl = 0;
        while (n > 8 && hl < n - 8 && h[hl] != '/' && h[hl] != '?' && h[hl] != '#') {
            hl++;
        }
        if (n > 8 && u[6] == '/' && u[7] == '/' && hl > 0 && h[0] != ':' && h[0] != '@' &&
            h[hl - 1] != '@') {
            return 0;
        }
    } else {
        set_error(t, "rua URI \"%.*s\" is neither mailto: nor https:", (int)(n > 160 ? 160 : n), u);
        return -1;
    }
    set_error(t, "rua URI \"%.*s\" is malformed (no address or host)", (int)(n > 160 ? 160 : n), u);
    return -1;
}

/* Appends a URI to the list. */
static int add_uri(tlsrpt_t *t, const char *u, size_t n)
{
    char **r = realloc(t->rua, (size_t)(t->nrua + 1) * sizeof *r);
    if (!r) {
        set_error(t, "out of memory");
        return -1;
    }
    t->rua = r;
    char *s = malloc(n + 1);
    if (!s) {
        set_error(t, "out of memory");
        return -1;
    }
    memcpy(s, u, n);
    s[n] = 0;
    t->rua[t->nrua++] = s;
    return 0;
}

/* tlsrpt-rua = "rua=" tlsrpt-uri *(*WSP "," *WSP tlsrpt-uri). */
static int parse_rua(tlsrpt_t *t, const char *v, size_t n)
{
    size_t i = 0;
    for (;;) {
        size_t start = i;
        while (i < n && v[i] != ',' && !is_wsp(v[i])) {
            i++;
        }
        if (i == start) {
            set_error(t, "empty URI in rua=");
            return -1;
        }
        if (check_uri(t, v + start, i - start) < 0 || add_uri(t, v + start, i - start) < 0) {
            return -1;
        }
        while (i < n && is_wsp(v[i])) {
            i++;
        }
        if (i == n) {
            return 0;
        }
        if (v[i] != ',') {
            set_error(t, "rua= URIs must be separated by commas");
            return -1;
        }
        i++;
        while (i < n && is_wsp(v[i])) {
            i++;
        }
    }
}

/* Parses one record (RFC 8460 3):
 *   tlsrpt-record = tlsrpt-version 1*(field-delim tlsrpt-field) [field-delim]
 *   field-delim   = *WSP ";" *WSP
 * Whitespace after the last field is accepted too. Returns 0 or -1. */
static int parse_record(tlsrpt_t *t, const char *s, size_t n)
{
    size_t i = sizeof TLSRPT_VERSION - 1;
    int nfields = 0, have_rua = 0;
    for (;;) {
        while (i < n && is_wsp(s[i])) {
            i++;
        }
        if (i == n) {
            break;
        }
        if (s[i] != ';') {
            set_error(t, "expected ';' at offset %zu", i);
            return -1;
        }
        i++;
        while (i < n && is_wsp(s[i])) {
            i++;
        }
        if (i == n) {
            break; /* the optional trailing delimiter */
        }
        /* A field runs to the next ';' (URIs must percent-encode theirs), its
         * trailing whitespace belonging to the delimiter. */
        size_t start = i;
        while (i < n && s[i] != ';') {
            i++;
        }
        size_t end = i;
        while (end > start && is_wsp(s[end - 1])) {
            end--;
        }
        const char *f = s + start;
        size_t fl = end - start;
        const char *eq = memchr(f, '=', fl);
        if (!eq) {
            set_error(t, "field \"%.*s\" has no '='", (int)(fl > 80 ? 80 : fl), f);
            return -1;
        }
        size_t nl = (size_t)(eq - f);
        const char *v = eq + 1;
        size_t vl = fl - nl - 1;
        nfields++;
        if (nl == 3 && memcmp(f, "rua", 3) == 0) {
            if (parse_rua(t, v, vl) < 0) {
                return -1;
            }
            have_rua = 1;
        } else if (!ext_name_ok(f, nl) || !ext_value_ok(v, vl)) {
            set_error(t, "malformed field \"%.*s\"", (int)(fl > 80 ? 80 : fl), f);
            return -1;
        }
    }
    if (nfields == 0 || !have_rua) {
        set_error(t, "no rua= field");
        return -1;
    }
    return 0;
}

/* Parses the TXT strings of _smtp._tls.<domain>; see tlsrpt.h. */
tlsrpt_status_t tlsrpt_parse(const char *const *txt, const size_t *len, int n, tlsrpt_t *out)
{
    memset(out, 0, sizeof *out);
    strbuf_t sb;
    sb_init(&sb);
    int which = -1;
    for (int i = 0; i < n; i++) {
        if (!txt[i] || !is_candidate(txt[i], len[i])) {
            continue;
        }
        if (out->nrecords++ > 0) {
            sb_putc(&sb, '\n');
        }
        sb_put(&sb, txt[i], len[i]);
        which = i;
    }
    if (out->nrecords == 0) {
        out->status = TLSRPT_NONE;
        return out->status;
    }
    out->record = sb_take(&sb);
    /* RFC 8460 3: if the number of records left is not one, senders assume
     * the domain does not implement TLSRPT. */
    if (out->nrecords > 1) {
        set_error(out, "several records (%d)", out->nrecords);
        out->status = TLSRPT_INVALID;
        return out->status;
    }
    if (parse_record(out, txt[which], len[which]) < 0) {
        for (int i = 0; i < out->nrua; i++) {
            free(out->rua[i]);
        }
        free(out->rua);
        out->rua = NULL;
        out->nrua = 0;
        out->status = TLSRPT_INVALID;
        return out->status;
    }
    out->status = TLSRPT_VALID;
    return out->status;
}

/* Frees a parse result. */
void tlsrpt_clear(tlsrpt_t *t)
{
    for (int i = 0; i < t->nrua; i++) {
        free(t->rua[i]);
    }
    free(t->rua);
    free(t->record);
    memset(t, 0, sizeof *t);
}

/* The rua list as JSON. */
char *tlsrpt_rua_json(const tlsrpt_t *t)
{
    strbuf_t sb;
    sb_init(&sb);
    sb_putc(&sb, '[');
    for (int i = 0; i < t->nrua; i++) {
        if (i > 0) {
            sb_putc(&sb, ',');
        }
        sb_json_str(&sb, t->rua[i], strlen(t->rua[i]));
    }
    sb_putc(&sb, ']');
    return sb_take(&sb);
}

/* Status name, as stored. */
const char *tlsrpt_status_name(tlsrpt_status_t s)
{
    switch (s) {
    case TLSRPT_NONE:
        return "none";
    case TLSRPT_VALID:
        return "valid";
    case TLSRPT_INVALID:
        return "invalid";
    }
    return "?";
}

/* Domain findings of a TLSRPT parse (FINDINGS.md, TLSRPT table). */
void tlsrpt_findings(const tlsrpt_t *t,
                     void (*emit)(void *ctx, const char *code, const char *detail), void *ctx)
{
    if (t->status == TLSRPT_NONE) {
        emit(ctx, "tlsrpt.none", "no v=TLSRPTv1 TXT record at _smtp._tls");
    } else if (t->status == TLSRPT_INVALID) {
        strbuf_t sb;
        sb_init(&sb);
        sb_printf(&sb, "%s: %.300s", t->error, t->record ? t->record : "");
        char *d = sb_take(&sb);
        emit(ctx, "tlsrpt.invalid", d ? d : t->error);
        free(d);
    }
}
