/*
 * tlsrpt.h - the SMTP TLS Reporting record (RFC 8460 section 3): the TXT
 * record at _smtp._tls.<domain> that says where senders send their daily
 * TLS reports. Pure: the caller does the lookup and hands over the TXT
 * strings; this module decides whether the domain publishes a usable record
 * and keeps what the tlsrpt table records (the record, the reporting URIs,
 * the reason it is invalid).
 */
#ifndef MXSCAN_TLSRPT_H
#define MXSCAN_TLSRPT_H

#include <stddef.h>

typedef enum tlsrpt_status {
    TLSRPT_NONE = 0, /* no TXT string starts with v=TLSRPTv1 */
    TLSRPT_VALID,
    TLSRPT_INVALID, /* several records, a malformed field, no rua, a bad URI */
} tlsrpt_status_t;

typedef struct tlsrpt {
    tlsrpt_status_t status;
    int nrecords; /* TXT strings that start with v=TLSRPTv1 */
    char *record; /* those strings joined with newlines (malloc), NULL when none */
    int nrua;
    char **rua;      /* the reporting URIs of a valid record, in order (malloc) */
    char error[256]; /* why the record is invalid, "" otherwise */
} tlsrpt_t;

/* Parses the TXT strings found at _smtp._tls.<domain>: txt[i] holds len[i]
 * bytes (the character-strings of one record joined, as dns.h gives them),
 * n of them. Fills out (free it with tlsrpt_clear) and returns its status. */
tlsrpt_status_t tlsrpt_parse(const char *const *txt, const size_t *len, int n, tlsrpt_t *out);
/* Frees what tlsrpt_parse allocated; out is left as TLSRPT_NONE. */
void tlsrpt_clear(tlsrpt_t *t);
/* The reporting URIs as a JSON array (malloc), "[]" when there are none. */
char *tlsrpt_rua_json(const tlsrpt_t *t);
/* "none" | "valid" | "invalid". */
const char *tlsrpt_status_name(tlsrpt_status_t s);
/* Emits the domain-level finding of FINDINGS.md: tlsrpt.none or
 * tlsrpt.invalid (detail: the reason and the record); nothing for a valid
 * record. */
void tlsrpt_findings(const tlsrpt_t *t,
                     void (*emit)(void *ctx, const char *code, const char *detail), void *ctx);

#endif
