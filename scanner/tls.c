/*
 * tls.c - the scanner's TLS client on OpenSSL memory BIOs.
 *
 * This file owns the client SSL_CTX and the per-session SSL objects. It does
 * no I/O: smtp.c moves bytes between the libuv stream and the two memory
 * BIOs (h2o's pattern), so a handshake never blocks the loop. The context
 * accepts TLS 1.0 and up at security level 0 with every cipher OpenSSL has,
 * because a scanner must observe what a legacy server negotiates rather than
 * refuse it. Verification is observed, not enforced (Postfix's
 * posttls-finger does the same): the verify callback records the first
 * error and returns 1, and grade.c judges later from the stored facts.
 */
#include "scanner/tls.h"

#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ex_data slot holding the per-SSL verification record. */
static int verify_idx = -1;

typedef struct verify_rec {
    long code;
    int depth;
    long errors[TLS_MAX_VERIFY_ERRORS];
    int nerrors;
    int dane;
} verify_rec_t;

/* Records the first verification error and lets the handshake go on. */
static int observe_verify_cb(int ok, X509_STORE_CTX *xs)
{
    SSL *ssl = X509_STORE_CTX_get_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx());
    verify_rec_t *rec = ssl ? SSL_get_ex_data(ssl, verify_idx) : NULL;
    if (!ok && rec) {
        long e = X509_STORE_CTX_get_error(xs);
        if (rec->code == X509_V_OK) {
            rec->code = e;
            rec->depth = X509_STORE_CTX_get_error_depth(xs);
        }
        /* Every distinct error is kept: an expired certificate from an
         * unknown CA is both, and grade.c reports both. */
        int seen = 0;
        for (int i = 0; i < rec->nerrors; i++) {
            seen |= rec->errors[i] == e;
        }
        if (!seen && rec->nerrors < TLS_MAX_VERIFY_ERRORS) {
            rec->errors[rec->nerrors++] = e;
        }
    }
    return 1;
}

/* Frees the verification record with its SSL. */
static void verify_rec_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
                            void *argp)
{
    (void)parent, (void)ad, (void)idx, (void)argl, (void)argp;
    free(ptr);
}

/* Copies the first queued OpenSSL error (or a fallback) into err. */
static void take_ssl_error(char *err, size_t errlen, const char *fallback)
{
    unsigned long e = ERR_get_error();
    if (e) {
        ERR_error_string_n(e, err, errlen);
    } else {
        snprintf(err, errlen, "%s", fallback);
    }
    ERR_clear_error();
}

/* Builds the shared client context; see the file comment for why it is lax. */
SSL_CTX *tls_client_ctx_new(const char *ca_file, const char *ca_path, char *err, size_t errlen)
{
    if (verify_idx < 0) {
        verify_idx = SSL_get_ex_new_index(0, NULL, NULL, NULL, verify_rec_free);
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        take_ssl_error(err, errlen, "SSL_CTX_new failed");
        return NULL;
    }
    SSL_CTX_set_security_level(ctx, 0);
    SSL_CTX_set_min_proto_version(ctx, TLS1_VERSION);
    SSL_CTX_set_max_proto_version(ctx, 0);
    /* Allow legacy renegotiation and servers that lack RFC 5746: we observe. */
    SSL_CTX_set_options(ctx, SSL_OP_LEGACY_SERVER_CONNECT | SSL_OP_NO_TICKET |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF);
    if (!SSL_CTX_set_cipher_list(ctx, "ALL:COMPLEMENTOFALL:@SECLEVEL=0")) {
        take_ssl_error(err, errlen, "cannot set cipher list");
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    /* A session waits on the network nearly all its life: give the record
     * buffers back between reads (about 7 KiB less per session in flight). */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    int ok;
    if (ca_file || ca_path) {
        ok = SSL_CTX_load_verify_locations(ctx, ca_file, ca_path);
    } else {
        ok = SSL_CTX_set_default_verify_paths(ctx);
    }
    if (!ok) {
        char e2[200];
        take_ssl_error(e2, sizeof e2, "unknown error");
        snprintf(err, errlen, "cannot load CA certificates from %s: %s",
                 ca_file ? ca_file : (ca_path ? ca_path : "the system store"), e2);
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, observe_verify_cb);
    if (SSL_CTX_dane_enable(ctx) <= 0) {
        take_ssl_error(err, errlen, "cannot enable DANE");
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

/* Creates a client SSL on two memory BIOs with SNI set. */
SSL *tls_client_new(SSL_CTX *ctx, const char *servername)
{
    SSL *ssl = SSL_new(ctx);
    if (!ssl) {
        return NULL;
    }
    verify_rec_t *rec = calloc(1, sizeof *rec);
    BIO *rbio = BIO_new(BIO_s_mem());
    BIO *wbio = BIO_new(BIO_s_mem());
    if (!rec || !rbio || !wbio) {
        free(rec);
        BIO_free(rbio);
        BIO_free(wbio);
        SSL_free(ssl);
        return NULL;
    }
    rec->code = X509_V_OK;
    rec->depth = -1;
    SSL_set_ex_data(ssl, verify_idx, rec);
    /* An empty read BIO means "wait for more", not end of file. */
    BIO_set_mem_eof_return(rbio, -1);
    SSL_set_bio(ssl, rbio, wbio);
    if (servername && *servername) {
        SSL_set_tlsext_host_name(ssl, servername);
    }
    /* Ask for an OCSP staple (RFC 6066 8); grade.c judges what comes. */
    SSL_set_tlsext_status_type(ssl, TLSEXT_STATUSTYPE_ocsp);
    SSL_set_connect_state(ssl);
    return ssl;
}

/* Enables DANE for one session; see tls.h. */
int tls_dane_add(SSL *ssl, const char *basedomain, const dane_rec_t *recs, int n)
{
    verify_rec_t *rec = SSL_get_ex_data(ssl, verify_idx);
    if (n <= 0 || SSL_dane_enable(ssl, basedomain) <= 0) {
        ERR_clear_error();
        return 0;
    }
    SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
    int added = 0;
    for (int i = 0; i < n; i++) {
        if (dane_usable(&recs[i]) &&
            SSL_dane_tlsa_add(ssl, recs[i].usage, recs[i].selector, recs[i].mtype, recs[i].data,
                              recs[i].len) > 0) {
            added++;
        }
    }
    ERR_clear_error();
    if (rec) {
        rec->dane = added > 0;
    }
    return added;
}

/* Plain PKIX verification of the peer chain, for sessions whose handshake
 * verified with DANE (a DANE-EE match skips the chain checks, but the
 * cert.* facts are about PKIX). Records every error like the handshake's
 * callback does. */
static void tls_pkix_verify(SSL *ssl, verify_rec_t *out)
{
    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
    X509 *leaf = chain && sk_X509_num(chain) > 0 ? sk_X509_value(chain, 0) : NULL;
    X509_STORE_CTX *xs = X509_STORE_CTX_new();
    memset(out, 0, sizeof *out);
    out->depth = -1;
    if (!leaf || !xs ||
        !X509_STORE_CTX_init(xs, SSL_CTX_get_cert_store(SSL_get_SSL_CTX(ssl)), leaf, chain)) {
        X509_STORE_CTX_free(xs);
        return;
    }
    X509_STORE_CTX_set_default(xs, "ssl_server");
    /* The callback finds its record through the SSL, as in the handshake:
     * point the SSL at out for the duration. */
    verify_rec_t *saved = SSL_get_ex_data(ssl, verify_idx);
    SSL_set_ex_data(ssl, verify_idx, out);
    X509_STORE_CTX_set_ex_data(xs, SSL_get_ex_data_X509_STORE_CTX_idx(), ssl);
    X509_STORE_CTX_set_verify_cb(xs, observe_verify_cb);
    X509_verify_cert(xs);
    SSL_set_ex_data(ssl, verify_idx, saved);
    X509_STORE_CTX_free(xs);
    ERR_clear_error();
}

/* Network bytes in. */
int tls_feed(SSL *ssl, const void *data, size_t len)
{
    if (len == 0) {
        return 0;
    }
    int n = BIO_write(SSL_get_rbio(ssl), data, (int)len);
    return n == (int)len ? 0 : -1;
}

/* Exposes the bytes queued for the network without copying. */
size_t tls_pending_out(SSL *ssl, const char **out)
{
    char *p = NULL;
    long n = BIO_get_mem_data(SSL_get_wbio(ssl), &p);
    *out = p;
    return n > 0 ? (size_t)n : 0;
}

/* Drops n bytes that were handed to the network. */
void tls_consume_out(SSL *ssl, size_t n)
{
    char sink[4096];
    BIO *w = SSL_get_wbio(ssl);
    while (n > 0) {
        int chunk = n > sizeof sink ? (int)sizeof sink : (int)n;
        int got = BIO_read(w, sink, chunk);
        if (got <= 0) {
            break;
        }
        n -= (size_t)got;
    }
}

/* One step of the handshake. */
int tls_handshake(SSL *ssl, char *err, size_t errlen)
{
    ERR_clear_error();
    int r = SSL_do_handshake(ssl);
    if (r == 1) {
        return 1;
    }
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
        return 0;
    }
    if (e == SSL_ERROR_SYSCALL || e == SSL_ERROR_ZERO_RETURN) {
        take_ssl_error(err, errlen, "peer closed the connection during the handshake");
    } else {
        take_ssl_error(err, errlen, "TLS handshake failed");
    }
    return -1;
}

/* Copies version, cipher, group, verification result and chain out of ssl. */
void tls_collect(SSL *ssl, tls_facts_t *f)
{
    memset(f, 0, sizeof *f);
    snprintf(f->version, sizeof f->version, "%s", SSL_get_version(ssl));
    const SSL_CIPHER *c = SSL_get_current_cipher(ssl);
    snprintf(f->cipher, sizeof f->cipher, "%s", c ? SSL_CIPHER_get_name(c) : "");
    if (c) {
        f->cipher_bits = SSL_CIPHER_get_bits(c, NULL);
        f->cipher_aead = SSL_CIPHER_is_aead(c);
        int kx = SSL_CIPHER_get_kx_nid(c);
        snprintf(f->kx, sizeof f->kx, "%s",
                 kx == NID_kx_ecdhe ? "ECDHE"
                 : kx == NID_kx_dhe ? "DHE"
                 : kx == NID_kx_rsa ? "RSA"
                 : kx == NID_kx_any ? "any"
                                    : "other");
    }

    EVP_PKEY *tmp = NULL;
    if (SSL_get_peer_tmp_key(ssl, &tmp) && tmp) {
        f->kex_bits = EVP_PKEY_get_bits(tmp);
        int nid = SSL_get_negotiated_group(ssl);
        const char *gname = nid > 0 ? SSL_group_to_name(ssl, nid) : NULL;
        if (!gname && EVP_PKEY_get_base_id(tmp) == EVP_PKEY_DH) {
            gname = "DH";
        }
        snprintf(f->group, sizeof f->group, "%s", gname ? gname : EVP_PKEY_get0_type_name(tmp));
        EVP_PKEY_free(tmp);
    } else {
        /* No ephemeral key: static RSA key exchange, no forward secrecy. */
        snprintf(f->group, sizeof f->group, "RSA");
    }

    verify_rec_t *rec = SSL_get_ex_data(ssl, verify_idx);
    verify_rec_t pkix;
    if (rec && rec->dane) {
        f->dane_enabled = 1;
        uint8_t u, s, m;
        const unsigned char *data;
        size_t dlen;
        if (SSL_get0_dane_authority(ssl, NULL, NULL) >= 0 &&
            SSL_get0_dane_tlsa(ssl, &u, &s, &m, &data, &dlen) >= 0) {
            dane_rec_t r = {u, s, m, data, dlen};
            f->dane_matched = 1;
            dane_rec_text(&r, f->dane_match, sizeof f->dane_match);
        }
        tls_pkix_verify(ssl, &pkix);
        rec = &pkix;
    }
    f->verify_code = rec ? rec->code : SSL_get_verify_result(ssl);
    f->verify_depth = rec ? rec->depth : -1;
    if (rec) {
        memcpy(f->verify_errors, rec->errors, sizeof f->verify_errors);
        f->nverify_errors = rec->nerrors;
    }
    const unsigned char *ocsp = NULL;
    long olen = SSL_get_tlsext_status_ocsp_resp(ssl, &ocsp);
    if (olen > 0 && ocsp && (f->ocsp_der = malloc((size_t)olen))) {
        memcpy(f->ocsp_der, ocsp, (size_t)olen);
        f->ocsp_der_len = (size_t)olen;
    }
    snprintf(f->verify_error, sizeof f->verify_error, "%s",
             X509_verify_cert_error_string(f->verify_code));

    STACK_OF(X509) *chain = SSL_get_peer_cert_chain(ssl);
    int n = chain ? sk_X509_num(chain) : 0;
    if (n > 0 && (f->chain = sk_X509_dup(chain))) {
        for (int i = 0; i < n; i++) {
            X509_up_ref(sk_X509_value(f->chain, i));
        }
    }
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        int len = i2d_X509(sk_X509_value(chain, i), NULL);
        if (len > 0) {
            total += (size_t)len;
        }
    }
    if (total > 0 && (f->chain_der = malloc(total))) {
        unsigned char *p = f->chain_der;
        for (int i = 0; i < n; i++) {
            int len = i2d_X509(sk_X509_value(chain, i), &p);
            if (len > 0) {
                f->chain_len++;
            }
        }
        f->chain_der_len = (size_t)(p - f->chain_der);
    }
}

/* Frees what tls_collect allocated. */
void tls_facts_clear(tls_facts_t *f)
{
    free(f->chain_der);
    f->chain_der = NULL;
    f->chain_der_len = 0;
    free(f->ocsp_der);
    f->ocsp_der = NULL;
    f->ocsp_der_len = 0;
    if (f->chain) {
        sk_X509_pop_free(f->chain, X509_free);
        f->chain = NULL;
    }
}
