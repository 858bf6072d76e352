/*
 * dane.h - DANE for SMTP (RFC 6698, RFC 7671, RFC 7672): which TLSA records
 * count, and what a host's TLSA lookup means. Pure functions; matching a
 * presented chain is OpenSSL's DANE support's job (tls.c), on the same
 * handshake the scan makes anyway.
 */
#ifndef MXSCAN_DANE_H
#define MXSCAN_DANE_H

#include <stddef.h>
#include <stdint.h>

#define DANE_MAX_RECORDS 16

typedef struct dane_rec {
    uint8_t usage, selector, mtype;
    const unsigned char *data;
    size_t len;
} dane_rec_t;

/* What the TLSA lookup of a host came to (hosts.dane). */
typedef enum dane_state {
    DANE_NONE,     /* secure denial: no TLSA */
    DANE_INSECURE, /* address or TLSA records not DNSSEC-validated: DANE does not apply */
    DANE_BOGUS,    /* the TLSA lookup failed DNSSEC validation */
    DANE_UNUSABLE, /* TLSA records, none usable for SMTP */
    DANE_USABLE,   /* at least one usable record: sessions are DANE-verified */
    DANE_ERROR,    /* the lookup failed for another reason (SERVFAIL without bogus, timeout) */
} dane_state_t;

const char *dane_state_name(dane_state_t s);

/* RFC 7672 3.1.3: only DANE-TA(2) and DANE-EE(3) are usable for SMTP, with
 * a known selector (0 cert, 1 SPKI) and matching type (0 full, 1 SHA2-256,
 * 2 SHA2-512) whose data has the right length. */
int dane_usable(const dane_rec_t *r);

/* A single usable record, and it is DANE-EE(3): the next key or
 * certificate has no record ready, so a rollover breaks delivery
 * (RFC 7671 8.1 and 8.4 advise publishing the next one in advance). */
int dane_rollover_risk(const dane_rec_t *recs, int n);

/* "3 1 1 <hex>" (the hex truncated to fit). */
void dane_rec_text(const dane_rec_t *r, char *out, size_t len);

#endif
