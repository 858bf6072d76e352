/*
 * tls_floor.c - the client CPU floor of one TLS handshake, as the scanner does it.
 *
 * The benchmark compares what the scanner spends per TLS endpoint with the
 * least any client could spend: one full handshake. This tool measures that
 * least with the scanner's own TLS client (scanner/tls.h: the same context
 * options, the same verify callback, the same memory BIOs) against an
 * in-process OpenSSL server with the benchmark's certificate, paired over
 * memory with no sockets and no event loop. Each of the N handshakes uses a
 * fresh client SSL and a fresh server SSL, so nothing is resumed.
 *
 * Only the client's CPU is counted: every client-side call (tls_client_new,
 * tls_feed, tls_handshake, tls_pending_out/tls_consume_out, reading the
 * TLS 1.3 tickets that arrive after the handshake, tls_collect,
 * tls_facts_clear, SSL_free) runs between two readings of
 * CLOCK_THREAD_CPUTIME_ID, and the server's work between them is left out.
 * The cost of reading the clock itself is measured and subtracted. The
 * server's CPU is measured the same way and printed for reference.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "scanner/tls.h"

#define MAX_ROUNDS 16 /* a full handshake needs 2 to 4; more means a bug */
#define WARMUP     20

/* The two ends of one handshake and the bytes in flight to the client. */
struct pair {
    SSL *client;
    SSL *server;
    BIO *srv_rbio;
    BIO *srv_wbio;
    char *to_client; /* server output waiting for the client */
    size_t to_client_len;
    size_t to_client_cap;
};

/* CPU time accumulators, in nanoseconds, and the number of timed segments. */
struct cpu_acc {
    long long client_ns;
    long long server_ns;
    long long client_segments;
    long long server_segments;
};

/* Prints a fatal error and exits. */
static void die(const char *msg, const char *detail)
{
    fprintf(stderr, "tls_floor: %s%s%s\n", msg, detail ? ": " : "", detail ? detail : "");
    exit(2);
}

/* Prints the usage and exits with code. */
static void usage(int code)
{
    fprintf(code ? stderr : stdout,
            "usage: tls_floor --cert FILE --key FILE --ca FILE --name NAME [-n N]\n"
            "                 [--tls12]\n"
            "  -n       handshakes to measure (default 2000)\n"
            "  --tls12  cap the server at TLS 1.2 (default: TLS 1.3 when both agree)\n");
    exit(code);
}

/* This thread's CPU time in nanoseconds. */
static long long thread_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Wall-clock time in nanoseconds. */
static long long wall_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* What one reading of the thread clock adds to a timed segment, in ns. */
static double clock_cost_ns(void)
{
    enum { K = 20000 };
    long long first = thread_ns(), last = first;
    for (int i = 0; i < K; i++)
        last = thread_ns();
    return (double)(last - first) / K;
}

/* The server context: what bench_smtpd uses (TLS 1.2+, default ciphers). */
static SSL_CTX *server_ctx_new(const char *cert, const char *key, int tls12)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        die("SSL_CTX_new failed", NULL);
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (tls12)
        SSL_CTX_set_max_proto_version(ctx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
        die("cannot load certificate chain", cert);
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
        die("cannot load private key", key);
    if (SSL_CTX_check_private_key(ctx) != 1)
        die("key does not match certificate", key);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    return ctx;
}

/* A fresh server SSL on two memory BIOs (not timed as client work). */
static void server_new(struct pair *p, SSL_CTX *sctx)
{
    p->server = SSL_new(sctx);
    p->srv_rbio = BIO_new(BIO_s_mem());
    p->srv_wbio = BIO_new(BIO_s_mem());
    if (p->server == NULL || p->srv_rbio == NULL || p->srv_wbio == NULL)
        die("cannot create the server SSL", NULL);
    BIO_set_mem_eof_return(p->srv_rbio, -1);
    SSL_set_bio(p->server, p->srv_rbio, p->srv_wbio);
    SSL_set_accept_state(p->server);
}

/* Moves the server's output into the buffer the client reads next. */
static void server_drain(struct pair *p)
{
    char *data;
    long n = BIO_get_mem_data(p->srv_wbio, &data);
    if (n <= 0)
        return;
    if (p->to_client_len + (size_t)n > p->to_client_cap) {
        p->to_client_cap = p->to_client_len + (size_t)n + 4096;
        p->to_client = realloc(p->to_client, p->to_client_cap);
        if (p->to_client == NULL)
            die("out of memory", NULL);
    }
    memcpy(p->to_client + p->to_client_len, data, (size_t)n);
    p->to_client_len += (size_t)n;
    (void)BIO_reset(p->srv_wbio);
}

/* Runs one complete handshake; facts receives what the client collected. */
static void one_handshake(struct pair *p, SSL_CTX *cctx, SSL_CTX *sctx, const char *name,
                          struct cpu_acc *acc, tls_facts_t *facts)
{
    char err[256];
    int cdone = 0, sdone = 0;
    long long t0, t1;

    t0 = thread_ns();
    p->client = tls_client_new(cctx, name);
    t1 = thread_ns();
    acc->client_ns += t1 - t0;
    acc->client_segments++;
    if (p->client == NULL)
        die("tls_client_new failed", NULL);

    t0 = thread_ns();
    server_new(p, sctx);
    acc->server_ns += thread_ns() - t0;
    acc->server_segments++;

    for (int round = 0;; round++) {
        if (round == MAX_ROUNDS)
            die("handshake did not finish", NULL);
        /* Client: take the server's bytes, step, and hand over its own. */
        const char *out = NULL;
        size_t out_len;
        t0 = thread_ns();
        if (p->to_client_len > 0 && tls_feed(p->client, p->to_client, p->to_client_len) != 0)
            die("tls_feed refused bytes", NULL);
        size_t fed = p->to_client_len;
        if (!cdone) {
            int r = tls_handshake(p->client, err, sizeof(err));
            if (r < 0)
                die("client handshake failed", err);
            cdone = r == 1;
        } else if (fed > 0) {
            /* Post-handshake messages (TLS 1.3 tickets): the scanner reads
             * them with its next SSL_read, so they are client work too. */
            char sink[256];
            int r = SSL_read(p->client, sink, sizeof(sink));
            if (r <= 0 && SSL_get_error(p->client, r) != SSL_ERROR_WANT_READ)
                die("client failed reading post-handshake data", NULL);
            ERR_clear_error();
        }
        out_len = tls_pending_out(p->client, &out);
        t1 = thread_ns();
        acc->client_ns += t1 - t0;
        acc->client_segments++;
        p->to_client_len = 0;

        /* Server: the copy into its read BIO is its work, not the client's. */
        t0 = thread_ns();
        if (out_len > 0 && BIO_write(p->srv_rbio, out, (int)out_len) != (int)out_len)
            die("server BIO_write failed", NULL);
        t1 = thread_ns();
        acc->server_ns += t1 - t0;
        acc->server_segments++;

        t0 = thread_ns();
        tls_consume_out(p->client, out_len);
        t1 = thread_ns();
        acc->client_ns += t1 - t0;
        acc->client_segments++;

        t0 = thread_ns();
        if (!sdone) {
            int r = SSL_do_handshake(p->server);
            if (r == 1) {
                sdone = 1;
            } else if (SSL_get_error(p->server, r) != SSL_ERROR_WANT_READ) {
                ERR_error_string_n(ERR_get_error(), err, sizeof(err));
                die("server handshake failed", err);
            }
        }
        server_drain(p);
        t1 = thread_ns();
        acc->server_ns += t1 - t0;
        acc->server_segments++;

        if (cdone && sdone && out_len == 0 && p->to_client_len == 0 && fed == 0)
            break;
    }

    /* What the scanner does after a handshake: collect the facts, free them,
     * free the SSL. */
    t0 = thread_ns();
    tls_collect(p->client, facts);
    tls_facts_clear(facts);
    SSL_free(p->client);
    t1 = thread_ns();
    acc->client_ns += t1 - t0;
    acc->client_segments++;
    p->client = NULL;

    t0 = thread_ns();
    SSL_free(p->server);
    acc->server_ns += thread_ns() - t0;
    acc->server_segments++;
    p->server = NULL;
}

/* Parses the flags, warms up, measures N handshakes, prints the figures. */
int main(int argc, char **argv)
{
    const char *cert = NULL, *key = NULL, *ca = NULL, *name = NULL;
    long n = 2000;
    int tls12 = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
            usage(0);
        if (strcmp(a, "--tls12") == 0) {
            tls12 = 1;
            continue;
        }
        if (i + 1 >= argc)
            usage(2);
        const char *v = argv[++i];
        if (strcmp(a, "--cert") == 0)
            cert = v;
        else if (strcmp(a, "--key") == 0)
            key = v;
        else if (strcmp(a, "--ca") == 0)
            ca = v;
        else if (strcmp(a, "--name") == 0)
            name = v;
        else if (strcmp(a, "-n") == 0)
            n = strtol(v, NULL, 10);
        else
            usage(2);
    }
    if (cert == NULL || key == NULL || ca == NULL || name == NULL)
        usage(2);
    if (n < 1 || n > 10000000)
        die("-n must be between 1 and 10000000", NULL);

    char err[256] = "";
    SSL_CTX *cctx = tls_client_ctx_new(ca, NULL, err, sizeof(err));
    if (cctx == NULL)
        die("tls_client_ctx_new failed", err);
    SSL_CTX *sctx = server_ctx_new(cert, key, tls12);

    struct pair p = {0};
    struct cpu_acc acc = {0};
    tls_facts_t facts;

    /* Warm-up: first-use costs (provider fetches, table set-up) are not
     * part of a steady-state handshake. */
    for (int i = 0; i < WARMUP; i++)
        one_handshake(&p, cctx, sctx, name, &acc, &facts);
    /* The last warm-up handshake shows what was negotiated. */
    tls_facts_t shown;
    {
        struct cpu_acc scratch = {0};
        one_handshake(&p, cctx, sctx, name, &scratch, &shown);
    }

    memset(&acc, 0, sizeof(acc));
    double clock_ns = clock_cost_ns();
    long long w0 = wall_ns();
    for (long i = 0; i < n; i++)
        one_handshake(&p, cctx, sctx, name, &acc, &facts);
    double wall_s = (double)(wall_ns() - w0) / 1e9;

    /* Each timed segment is inflated by about one reading of the clock. */
    double client_us =
        ((double)acc.client_ns - clock_ns * (double)acc.client_segments) / 1000.0 / (double)n;
    double server_us =
        ((double)acc.server_ns - clock_ns * (double)acc.server_segments) / 1000.0 / (double)n;
    double clock_us = clock_ns * (double)acc.client_segments / 1000.0 / (double)n;

    printf("floor_us_per_handshake=%.1f\n", client_us);
    printf("server_us_per_handshake=%.1f\n", server_us);
    printf("handshakes=%ld wall_s=%.3f handshakes_per_s=%.0f clock_read_ns=%.0f "
           "clock_correction_us_per_handshake=%.1f\n",
           n, wall_s, (double)n / wall_s, clock_ns, clock_us);
    printf("negotiated version=%s cipher=%s group=%s verify_code=%ld (%s) chain_len=%d\n",
           shown.version, shown.cipher, shown.group, shown.verify_code, shown.verify_error,
           shown.chain_len);
    if (shown.verify_code != 0)
        fprintf(stderr, "tls_floor: warning: the chain did not verify against %s\n", ca);

    free(p.to_client);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
    return 0;
}
