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
 *
 * --interleave K keeps K handshakes in flight and steps them round-robin, one
 * round trip at a time, as an event loop interleaves K sessions: what the
 * working set of K sessions costs the handshake.
 *
 * --connect ADDR:PORT measures a second floor, the session floor: the
 * scanner's whole SMTP session (connect, greeting, EHLO, STARTTLS, the same
 * handshake, EHLO, QUIT, close) against a real server on loopback
 * (bench_smtpd), with blocking sockets, one session after the other, and
 * nothing else: no event loop, no DNS, no database, no bookkeeping. Its
 * thread CPU (user and system, the kernel's loopback work included) is what
 * any client must spend per endpoint on this machine.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

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
    int round; /* round trips so far */
    int cdone, sdone;
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
            "                 [--tls12] [--interleave K] [--connect ADDR:PORT]\n"
            "  -n            handshakes to measure (default 2000)\n"
            "  --tls12       cap the server at TLS 1.2 (default: TLS 1.3 when both agree)\n"
            "  --interleave  keep K handshakes in flight, stepped round-robin, as an event\n"
            "                loop does with K sessions (default 1: one after the other)\n"
            "  --connect     the session floor instead: N whole SMTP STARTTLS sessions\n"
            "                against the server at ADDR:PORT (loopback only)\n");
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

/* Starts a handshake on p: a fresh client (timed) and a fresh server. */
static void hs_start(struct pair *p, SSL_CTX *cctx, SSL_CTX *sctx, const char *name,
                     struct cpu_acc *acc)
{
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
    p->round = 0;
    p->cdone = 0;
    p->sdone = 0;
}

/* One round trip of p's handshake: the client takes the server's bytes and
 * answers, the server takes those. Returns 1 once both sides are done and
 * nothing is in flight (the TLS 1.3 tickets included). */
static int hs_round(struct pair *p, struct cpu_acc *acc)
{
    char err[256];
    long long t0, t1;

    if (p->round++ == MAX_ROUNDS)
        die("handshake did not finish", NULL);
    /* Client: take the server's bytes, step, and hand over its own. */
    const char *out = NULL;
    size_t out_len;
    t0 = thread_ns();
    if (p->to_client_len > 0 && tls_feed(p->client, p->to_client, p->to_client_len) != 0)
        die("tls_feed refused bytes", NULL);
    size_t fed = p->to_client_len;
    if (!p->cdone) {
        int r = tls_handshake(p->client, err, sizeof(err));
        if (r < 0)
            die("client handshake failed", err);
        p->cdone = r == 1;
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
    if (!p->sdone) {
        int r = SSL_do_handshake(p->server);
        if (r == 1) {
            p->sdone = 1;
        } else if (SSL_get_error(p->server, r) != SSL_ERROR_WANT_READ) {
            ERR_error_string_n(ERR_get_error(), err, sizeof(err));
            die("server handshake failed", err);
        }
    }
    server_drain(p);
    t1 = thread_ns();
    acc->server_ns += t1 - t0;
    acc->server_segments++;

    return p->cdone && p->sdone && out_len == 0 && p->to_client_len == 0 && fed == 0;
}

/* What the scanner does after a handshake: collect the facts, free them,
 * free the SSL. */
static void hs_finish(struct pair *p, struct cpu_acc *acc, tls_facts_t *facts)
{
    long long t0, t1;

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

/* Runs one complete handshake; facts receives what the client collected. */
static void one_handshake(struct pair *p, SSL_CTX *cctx, SSL_CTX *sctx, const char *name,
                          struct cpu_acc *acc, tls_facts_t *facts)
{
    hs_start(p, cctx, sctx, name, acc);
    while (!hs_round(p, acc))
        ;
    hs_finish(p, acc, facts);
}

/* n handshakes with k of them in flight at once, stepped round-robin one
 * round trip at a time, as an event loop interleaves its sessions: each
 * step finds its handshake's state cold in the caches. */
static void interleaved(struct pair *pairs, long k, long n, SSL_CTX *cctx, SSL_CTX *sctx,
                        const char *name, struct cpu_acc *acc, tls_facts_t *facts)
{
    long started = 0, done = 0;
    for (long i = 0; i < k && started < n; i++, started++)
        hs_start(&pairs[i], cctx, sctx, name, acc);
    while (done < n) {
        for (long i = 0; i < k; i++) {
            struct pair *p = &pairs[i];
            if (p->client == NULL || !hs_round(p, acc))
                continue;
            hs_finish(p, acc, facts);
            done++;
            if (started < n) {
                hs_start(p, cctx, sctx, name, acc);
                started++;
            }
        }
    }
}

/* ---- the session floor (--connect) ------------------------------------- */

/* Writes all of buf to the blocking socket fd. */
static void write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die("write failed", strerror(errno));
        buf += n;
        len -= (size_t)n;
    }
}

/* Sends what the client SSL has queued. */
static void flush_ssl(int fd, SSL *ssl)
{
    const char *out;
    size_t n;
    while ((n = tls_pending_out(ssl, &out)) > 0) {
        write_all(fd, out, n);
        tls_consume_out(ssl, n);
    }
}

/* Whether buf (len bytes) ends with the last line of an SMTP reply. */
static int reply_complete(const char *buf, size_t len)
{
    if (len < 2 || buf[len - 1] != '\n')
        return 0;
    size_t start = len - 1;
    while (start > 0 && buf[start - 1] != '\n')
        start--;
    return len - start >= 4 && buf[start + 3] == ' ';
}

/* Reads one plaintext reply; returns its code. */
static int read_reply(int fd)
{
    char buf[4096];
    size_t len = 0;
    while (!reply_complete(buf, len)) {
        ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0 || len + (size_t)n >= sizeof(buf) - 1)
            die("reading a reply failed", n == 0 ? "EOF" : strerror(errno));
        len += (size_t)n;
    }
    return atoi(buf);
}

/* Reads one reply through TLS, feeding network bytes as needed. */
static int read_tls_reply(int fd, SSL *ssl)
{
    char buf[4096], net[16384];
    size_t len = 0;
    while (!reply_complete(buf, len)) {
        int n = SSL_read(ssl, buf + len, (int)(sizeof(buf) - 1 - len));
        if (n > 0) {
            len += (size_t)n;
            continue;
        }
        if (SSL_get_error(ssl, n) != SSL_ERROR_WANT_READ)
            die("TLS read failed", NULL);
        flush_ssl(fd, ssl);
        ssize_t got = read(fd, net, sizeof(net));
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            die("reading a TLS reply failed", got == 0 ? "EOF" : strerror(errno));
        if (tls_feed(ssl, net, (size_t)got) != 0)
            die("tls_feed refused bytes", NULL);
    }
    ERR_clear_error();
    return atoi(buf);
}

/* One whole session as the scanner walks it, over a blocking socket. */
static void one_session(const struct sockaddr_in *sin, SSL_CTX *cctx, const char *name,
                        tls_facts_t *facts)
{
    static const char ehlo[] = "EHLO mxscan.invalid\r\n";
    char err[256], net[16384];
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (const struct sockaddr *)sin, sizeof(*sin)) != 0)
        die("connect failed", strerror(errno));
    if (read_reply(fd) != 220)
        die("no 220 greeting", NULL);
    write_all(fd, ehlo, sizeof(ehlo) - 1);
    if (read_reply(fd) != 250)
        die("EHLO refused", NULL);
    write_all(fd, "STARTTLS\r\n", 10);
    if (read_reply(fd) != 220)
        die("STARTTLS refused", NULL);
    SSL *ssl = tls_client_new(cctx, name);
    if (ssl == NULL)
        die("tls_client_new failed", NULL);
    for (;;) {
        int r = tls_handshake(ssl, err, sizeof(err));
        if (r < 0)
            die("client handshake failed", err);
        if (r == 1)
            break; /* the Finished leaves with the EHLO, as in the scanner */
        flush_ssl(fd, ssl);
        ssize_t got = read(fd, net, sizeof(net));
        if (got <= 0)
            die("reading the handshake failed", got == 0 ? "EOF" : strerror(errno));
        if (tls_feed(ssl, net, (size_t)got) != 0)
            die("tls_feed refused bytes", NULL);
    }
    tls_collect(ssl, facts);
    if (SSL_write(ssl, ehlo, (int)sizeof(ehlo) - 1) <= 0)
        die("SSL_write failed", NULL);
    flush_ssl(fd, ssl);
    if (read_tls_reply(fd, ssl) != 250)
        die("EHLO after TLS refused", NULL);
    if (SSL_write(ssl, "QUIT\r\n", 6) <= 0)
        die("SSL_write failed", NULL);
    flush_ssl(fd, ssl);
    read_tls_reply(fd, ssl);
    tls_facts_clear(facts);
    SSL_free(ssl);
    close(fd);
}

/* Parses ADDR:PORT, which must be IPv4 loopback. */
static void parse_connect(const char *spec, struct sockaddr_in *sin)
{
    char host[64];
    const char *colon = strrchr(spec, ':');
    if (colon == NULL || (size_t)(colon - spec) >= sizeof(host))
        die("--connect wants ADDR:PORT", spec);
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = 0;
    memset(sin, 0, sizeof(*sin));
    sin->sin_family = AF_INET;
    sin->sin_port = htons((uint16_t)atoi(colon + 1));
    if (inet_pton(AF_INET, host, &sin->sin_addr) != 1 || (ntohl(sin->sin_addr.s_addr) >> 24) != 127)
        die("--connect: only an IPv4 loopback address (127.0.0.0/8) is allowed", spec);
}

/* This thread's system CPU time (the kernel's work for it) in nanoseconds. */
static long long thread_sys_ns(void)
{
    struct rusage ru;
    getrusage(RUSAGE_THREAD, &ru);
    return (long long)ru.ru_stime.tv_sec * 1000000000LL + (long long)ru.ru_stime.tv_usec * 1000LL;
}

/* Measures n sessions; prints session_floor_us (client thread CPU per session)
 * and session_floor_sys_us, its system part (the kernel: sockets, loopback TCP). */
static void session_floor(const char *spec, SSL_CTX *cctx, const char *name, long n)
{
    struct sockaddr_in sin;
    tls_facts_t facts;
    parse_connect(spec, &sin);
    for (int i = 0; i < WARMUP; i++)
        one_session(&sin, cctx, name, &facts);
    double clock_ns = clock_cost_ns();
    long long w0 = wall_ns(), s0 = thread_sys_ns(), t0 = thread_ns();
    for (long i = 0; i < n; i++)
        one_session(&sin, cctx, name, &facts);
    long long t1 = thread_ns(), s1 = thread_sys_ns();
    double wall_s = (double)(wall_ns() - w0) / 1e9;
    printf("session_floor_us=%.1f\n", ((double)(t1 - t0) - clock_ns) / 1000.0 / (double)n);
    /* rusage has microsecond resolution, ample over n sessions */
    printf("session_floor_sys_us=%.1f\n", (double)(s1 - s0) / 1000.0 / (double)n);
    printf("sessions=%ld wall_s=%.3f sessions_per_s=%.0f (connect, greeting, EHLO, STARTTLS, "
           "handshake, EHLO, QUIT, close over loopback to %s)\n",
           n, wall_s, (double)n / wall_s, spec);
}

/* Parses the flags, warms up, measures N handshakes, prints the figures. */
int main(int argc, char **argv)
{
    const char *cert = NULL, *key = NULL, *ca = NULL, *name = NULL, *connect_to = NULL;
    long n = 2000, k = 1;
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
        else if (strcmp(a, "--interleave") == 0)
            k = strtol(v, NULL, 10);
        else if (strcmp(a, "--connect") == 0)
            connect_to = v;
        else
            usage(2);
    }
    if (ca == NULL || name == NULL || (connect_to == NULL && (cert == NULL || key == NULL)))
        usage(2);
    if (n < 1 || n > 10000000)
        die("-n must be between 1 and 10000000", NULL);
    if (k < 1 || k > 100000)
        die("--interleave must be between 1 and 100000", NULL);

    char err[256] = "";
    SSL_CTX *cctx = tls_client_ctx_new(ca, NULL, err, sizeof(err));
    if (cctx == NULL)
        die("tls_client_ctx_new failed", err);
    if (connect_to != NULL) {
        session_floor(connect_to, cctx, name, n);
        SSL_CTX_free(cctx);
        return 0;
    }
    SSL_CTX *sctx = server_ctx_new(cert, key, tls12);

    struct pair p = {0};
    struct pair *pairs = calloc((size_t)k, sizeof(*pairs));
    if (pairs == NULL)
        die("out of memory", NULL);
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
    if (k == 1) {
        for (long i = 0; i < n; i++)
            one_handshake(&p, cctx, sctx, name, &acc, &facts);
    } else {
        interleaved(pairs, k, n, cctx, sctx, name, &acc, &facts);
    }
    double wall_s = (double)(wall_ns() - w0) / 1e9;

    /* Each timed segment is inflated by about one reading of the clock. */
    double client_us =
        ((double)acc.client_ns - clock_ns * (double)acc.client_segments) / 1000.0 / (double)n;
    double server_us =
        ((double)acc.server_ns - clock_ns * (double)acc.server_segments) / 1000.0 / (double)n;
    double clock_us = clock_ns * (double)acc.client_segments / 1000.0 / (double)n;

    printf("floor_us_per_handshake=%.1f\n", client_us);
    printf("server_us_per_handshake=%.1f\n", server_us);
    printf("interleave=%ld\n", k);
    printf("handshakes=%ld wall_s=%.3f handshakes_per_s=%.0f clock_read_ns=%.0f "
           "clock_correction_us_per_handshake=%.1f\n",
           n, wall_s, (double)n / wall_s, clock_ns, clock_us);
    printf("negotiated version=%s cipher=%s group=%s verify_code=%ld (%s) chain_len=%d\n",
           shown.version, shown.cipher, shown.group, shown.verify_code, shown.verify_error,
           shown.chain_len);
    if (shown.verify_code != 0)
        fprintf(stderr, "tls_floor: warning: the chain did not verify against %s\n", ca);

    free(p.to_client);
    for (long i = 0; i < k; i++)
        free(pairs[i].to_client);
    free(pairs);
    SSL_CTX_free(cctx);
    SSL_CTX_free(sctx);
    return 0;
}
