/*
 * tls.h - the TLS client of the scanner: OpenSSL over memory BIOs.
 *
 * The client accepts every protocol version and cipher a server may choose
 * (security level 0, TLS 1.0 and up) so that legacy servers are observed and
 * judged rather than refused. Verification is observed, never enforced: the
 * verify callback records the first error and lets the handshake complete.
 * Bytes from the network go in with tls_feed(); bytes for the network come
 * out with tls_pending_out(); nothing here does I/O.
 */
#ifndef MXSCAN_TLS_H
#define MXSCAN_TLS_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/ssl.h>

#include "scanner/dane.h"

#define TLS_MAX_VERIFY_ERRORS 8

/* What one handshake established, copied out of the SSL. */
typedef struct tls_facts {
    char version[16];       /* TLSv1.3, TLSv1.2, ... */
    char cipher[64];        /* OpenSSL name */
    int cipher_bits;        /* symmetric strength */
    int cipher_aead;        /* AEAD cipher (GCM, CCM, ChaCha20-Poly1305) */
    char kx[16];            /* key exchange: ECDHE, DHE, RSA, any (TLS 1.3), other */
    char group[32];         /* key-exchange group or "DH"/"RSA" when none */
    int kex_bits;           /* size of the server's ephemeral key, 0 if none */
    long verify_code;       /* X509_V_OK or the first error seen */
    char verify_error[128]; /* text of verify_code */
    int verify_depth;       /* depth of the first error, -1 if none */
    long verify_errors[TLS_MAX_VERIFY_ERRORS]; /* every distinct error seen, in order */
    int nverify_errors;
    unsigned char *ocsp_der; /* stapled OCSP response (malloc), NULL if none came */
    size_t ocsp_der_len;
    int dane_enabled;         /* usable TLSA records were given for this session */
    int dane_matched;         /* one of them matched the presented chain */
    char dane_match[200];     /* the record that matched, "3 1 1 <hex>" */
    unsigned char *chain_der; /* peer chain, leaf first, DER concatenated (malloc) */
    size_t chain_der_len;
    int chain_len;
    STACK_OF(X509) * chain; /* the same chain, parsed (references held; NULL if none) */
} tls_facts_t;

/* The shared client context: CA store from ca_file/ca_path, or the system
 * default paths when both are NULL. Returns NULL with a message in err. */
SSL_CTX *tls_client_ctx_new(const char *ca_file, const char *ca_path, char *err, size_t errlen);

/* A client SSL on a pair of memory BIOs with SNI (and the name used for
 * X509 host checks later) set to servername. */
SSL *tls_client_new(SSL_CTX *ctx, const char *servername);

/* Enables DANE (RFC 7672) for a session before its handshake: usable
 * records are added, names are not checked for DANE-EE(3) (RFC 7672
 * 3.1.1), basedomain is the MX host name. Returns the records added. */
int tls_dane_add(SSL *ssl, const char *basedomain, const dane_rec_t *recs, int n);

/* Network bytes in. Returns 0, or -1 if the BIO refused them. */
int tls_feed(SSL *ssl, const void *data, size_t len);
/* Bytes the SSL wants sent: points *out at them (valid until the next call
 * on ssl) and returns their count; call tls_consume_out() after sending. */
size_t tls_pending_out(SSL *ssl, const char **out);
void tls_consume_out(SSL *ssl, size_t n);

/* Drives the handshake: 1 done, 0 needs more bytes from the peer, -1 failed
 * (message in err, from the OpenSSL error queue or the alert). */
int tls_handshake(SSL *ssl, char *err, size_t errlen);

/* Copies the facts of a finished handshake. tls_facts_clear frees them. */
void tls_collect(SSL *ssl, tls_facts_t *f);
void tls_facts_clear(tls_facts_t *f);

#endif
