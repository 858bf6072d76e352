/*
 * bench_smtpd.c - a small, fast SMTP server with STARTTLS for the benchmark.
 *
 * One process, one thread, one libuv loop: it listens on many loopback
 * addresses at once (a range like 127.26.0.1-127.26.0.100 and/or a comma
 * list) and speaks just enough SMTP for a scanner to walk its whole path:
 * greeting, EHLO, STARTTLS, TLS handshake, EHLO again, QUIT. Every other
 * command gets 502. TLS runs the way h2o does it: OpenSSL on a pair of
 * memory BIOs, bytes read are written into the read BIO, the handshake is
 * pumped, and the write BIO is flushed with uv_write(). Nothing blocks.
 *
 * The server is meant to cost as little CPU per session as it can so that a
 * benchmark measures the client: replies are static strings written without
 * a copy in plaintext, reads go into one shared buffer (safe because every
 * read is handled before the next one is made), and SSL buffers are released
 * while idle. Memory per connection is bounded: a command line longer than
 * LINE_MAX_LEN closes the session, a client that stops reading our replies
 * is dropped once WRITE_QUEUE_MAX bytes are queued, and an idle timer drops
 * clients that vanish without a FIN. A session owns its two handles by value
 * and is freed in the last close callback, never under its own stack frame.
 *
 * With --ocsp FILE the server staples the DER OCSP response in FILE to every
 * handshake whose client asks for one (status_request, RFC 6066 8): the
 * loopback test network uses that for its OCSP postures.
 *
 * With --hold POINT the benchmark measures the client's memory per session in
 * flight: every session stops at POINT (before the greeting, on the client's
 * first TLS bytes, i.e. mid-handshake, or on the EHLO after TLS) and waits
 * there until --hold-count sessions wait at once, or the first of them has
 * waited --hold-ms; then all of them go on. The client's sessions are thus
 * really in flight together, each holding what it holds at that point.
 *
 * Only loopback (127.0.0.0/8) addresses are accepted for --listen. SIGINT or
 * SIGTERM closes every handle, prints counters on stderr and exits 0, so the
 * server can be run under valgrind or ASan to check for leaks.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <uv.h>

#define LINE_MAX_LEN    1024         /* RFC 5321 4.5.3.1.4 allows 512 for a command */
#define READ_BUF_LEN    (64 * 1024)  /* one shared read buffer */
#define WRITE_QUEUE_MAX (256 * 1024) /* queued bytes before a slow reader is dropped */
#define MAX_LISTENERS   65536
#define BACKLOG         4096
#define OCSP_MAX_LEN    (1024 * 1024) /* largest --ocsp file accepted */

static const char EHLO_PLAIN[] = "250-bench\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
                                 "250-STARTTLS\r\n250 8BITMIME\r\n";
static const char EHLO_TLS[] = "250-bench\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n"
                               "250 8BITMIME\r\n";
static const char REPLY_STARTTLS[] = "220 2.0.0 Ready to start TLS\r\n";
static const char REPLY_BYE[] = "221 2.0.0 Bye\r\n";
static const char REPLY_ERROR[] = "502 5.5.2 Error\r\n";
static const char REPLY_TOO_LONG[] = "500 5.5.2 Line too long\r\n";

/* Where one session is in the dialogue. */
enum sess_state {
    SESS_PLAIN,     /* before STARTTLS */
    SESS_HANDSHAKE, /* STARTTLS answered, TLS handshake running */
    SESS_TLS,       /* inside TLS */
};

/* Where --hold stops every session until the barrier opens. */
enum hold_point {
    HOLD_NONE,
    HOLD_GREETING,    /* connected; the 220 greeting is not sent yet */
    HOLD_CLIENTHELLO, /* the client's first TLS bytes are not answered yet */
    HOLD_EHLO2,       /* the EHLO after TLS is not answered yet */
};

struct server;

/* One client connection; both handles are owned by value. */
struct sess {
    uv_tcp_t tcp;
    uv_timer_t idle;
    uv_shutdown_t shutdown_req;
    struct server *srv;
    enum sess_state state;
    int closing;       /* close started; stop handling input */
    int quitting;      /* shutdown requested after the last reply */
    int pending_close; /* handles whose close callback has not run yet */
    SSL *ssl;
    BIO *rbio;                          /* network bytes in (owned by ssl) */
    BIO *wbio;                          /* bytes for the network (owned by ssl) */
    int held;                           /* waiting at the hold point (on srv->held) */
    int hold_passed;                    /* went through the hold point already */
    struct sess *held_prev, *held_next; /* the server's list of held sessions */
    char *stash;                        /* TLS bytes that arrived while held */
    size_t stash_len;
    size_t line_len;
    char line[LINE_MAX_LEN];
};

/* A write request and, when the bytes had to be copied, the bytes. */
struct wreq {
    uv_write_t req;
    char data[];
};

/* Counters printed at exit and on SIGUSR1. */
struct stats {
    unsigned long accepted;
    unsigned long accept_errors;
    unsigned long starttls;
    unsigned long handshakes;
    unsigned long handshake_failures;
    unsigned long quits;
    unsigned long resets;
    unsigned long timeouts;
    unsigned long overflows;
    unsigned long active;
    unsigned long held_max;     /* most sessions held at once */
    unsigned long held_batches; /* times the barrier opened */
};

/* The whole server: listeners, TLS context, shared read buffer, counters. */
struct server {
    uv_loop_t *loop;
    SSL_CTX *ctx;
    unsigned char *ocsp; /* DER OCSP response to staple (--ocsp), or NULL */
    size_t ocsp_len;
    uv_tcp_t *listeners;
    size_t n_listeners;
    uv_signal_t sigint, sigterm, sigusr1;
    uint64_t idle_ms;
    int stopping;
    enum hold_point hold;
    unsigned long hold_count; /* open the barrier when this many are held */
    uint64_t hold_ms;         /* or when the first held one has waited this long */
    uv_timer_t hold_timer;
    struct sess *held_head;
    unsigned long held;
    struct stats st;
    char readbuf[READ_BUF_LEN];
};

static void sess_close(struct sess *s);
static void sess_flush_tls(struct sess *s);
static void sess_tls_input(struct sess *s, const char *data, size_t len);
static void sess_reply(struct sess *s, const char *text, size_t len);
static void sess_greet(struct sess *s);

/* Prints a fatal start-up error and exits. */
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bench_smtpd: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(2);
}

/* Prints the usage and exits with code. */
static void usage(int code)
{
    fprintf(code ? stderr : stdout,
            "usage: bench_smtpd --cert FILE --key FILE --listen ADDRS [--port N]\n"
            "                   [--pidfile FILE] [--idle-timeout SECONDS] [--tickets N]\n"
            "                   [--ocsp FILE] [--hold POINT [--hold-count N] [--hold-ms MS]]\n"
            "  ADDRS: comma list of IPv4 loopback addresses or ranges A-B,\n"
            "         e.g. 127.26.0.1-127.26.0.100,127.26.1.1\n"
            "  --port         TCP port (default 25)\n"
            "  --idle-timeout drop a session idle this long (default 30)\n"
            "  --tickets      TLS 1.3 session tickets sent per handshake (default: OpenSSL's)\n"
            "  --ocsp         staple this DER OCSP response when the client asks for one\n"
            "  --hold         stop every session at POINT: greeting (before the 220),\n"
            "                 clienthello (mid-handshake: the client's first TLS bytes\n"
            "                 wait) or ehlo2 (the EHLO after TLS waits), until\n"
            "  --hold-count   this many sessions wait at once (default 100), or\n"
            "  --hold-ms      the first of them has waited this long (default 10000)\n");
    exit(code);
}

/* Prints the counters on stderr. */
static void stats_print(const struct server *srv)
{
    const struct stats *st = &srv->st;
    fprintf(stderr,
            "bench_smtpd: accepted=%lu accept_errors=%lu starttls=%lu handshakes=%lu "
            "handshake_failures=%lu quits=%lu resets=%lu timeouts=%lu overflows=%lu active=%lu "
            "held_max=%lu held_batches=%lu\n",
            st->accepted, st->accept_errors, st->starttls, st->handshakes, st->handshake_failures,
            st->quits, st->resets, st->timeouts, st->overflows, st->active, st->held_max,
            st->held_batches);
}

/* Frees a finished write request; a failed write ends the session. */
static void on_write(uv_write_t *req, int status)
{
    struct sess *s = req->data;
    free(req);
    if (status < 0 && status != UV_ECANCELED)
        sess_close(s);
}

/* Queues len bytes; copy says whether data must be copied (it is not static). */
static void sess_write(struct sess *s, const char *data, size_t len, int copy)
{
    if (s->closing || len == 0)
        return;
    if (uv_stream_get_write_queue_size((uv_stream_t *)&s->tcp) > WRITE_QUEUE_MAX) {
        s->srv->st.overflows++;
        sess_close(s);
        return;
    }
    struct wreq *w = malloc(sizeof(*w) + (copy ? len : 0));
    if (w == NULL) {
        sess_close(s);
        return;
    }
    uv_buf_t buf;
    if (copy) {
        memcpy(w->data, data, len);
        buf = uv_buf_init(w->data, (unsigned)len);
    } else {
        buf = uv_buf_init((char *)data, (unsigned)len);
    }
    w->req.data = s;
    if (uv_write(&w->req, (uv_stream_t *)&s->tcp, &buf, 1, on_write) != 0) {
        free(w);
        sess_close(s);
    }
}

/* Sends a reply in the session's current layer: plaintext or TLS. */
static void sess_reply(struct sess *s, const char *text, size_t len)
{
    if (s->state == SESS_TLS) {
        if (SSL_write(s->ssl, text, (int)len) <= 0) {
            sess_close(s);
            return;
        }
        sess_flush_tls(s);
    } else {
        sess_write(s, text, len, 0);
    }
}

/* Closes the session once its queued replies are written. */
static void on_shutdown(uv_shutdown_t *req, int status)
{
    (void)status;
    sess_close(req->data);
}

/* Sends the last reply and asks for an orderly close after it. */
static void sess_quit(struct sess *s)
{
    if (s->closing || s->quitting)
        return;
    s->quitting = 1;
    if (s->state == SESS_TLS) {
        /* close_notify (RFC 8446 6.1) goes out with the 221. */
        SSL_shutdown(s->ssl);
        sess_flush_tls(s);
    }
    uv_read_stop((uv_stream_t *)&s->tcp);
    s->shutdown_req.data = s;
    if (uv_shutdown(&s->shutdown_req, (uv_stream_t *)&s->tcp, on_shutdown) != 0)
        sess_close(s);
}

/* Frees the session after the last of its handles has closed. */
static void on_close(uv_handle_t *h)
{
    struct sess *s = h->data;
    if (--s->pending_close > 0)
        return;
    s->srv->st.active--;
    SSL_free(s->ssl);
    free(s->stash);
    free(s);
}

/* Takes s off the list of held sessions, if it is on it. */
static void hold_unlink(struct sess *s)
{
    struct server *srv = s->srv;
    if (!s->held)
        return;
    if (s->held_prev)
        s->held_prev->held_next = s->held_next;
    else
        srv->held_head = s->held_next;
    if (s->held_next)
        s->held_next->held_prev = s->held_prev;
    s->held_prev = s->held_next = NULL;
    s->held = 0;
    srv->held--;
}

/* Lets a session go on from the hold point where it waited. */
static void hold_resume(struct sess *s)
{
    if (s->closing || s->quitting)
        return;
    switch (s->srv->hold) {
    case HOLD_GREETING:
        sess_greet(s);
        break;
    case HOLD_CLIENTHELLO: {
        char *data = s->stash;
        size_t len = s->stash_len;
        s->stash = NULL;
        s->stash_len = 0;
        if (data != NULL)
            sess_tls_input(s, data, len);
        free(data);
        break;
    }
    case HOLD_EHLO2:
        sess_reply(s, EHLO_TLS, sizeof(EHLO_TLS) - 1);
        break;
    case HOLD_NONE:
        break;
    }
}

/* Opens the barrier: every held session goes on, in arrival order. */
static void on_hold_timer(uv_timer_t *t)
{
    struct server *srv = t->loop->data;
    if (srv->held == 0)
        return;
    srv->st.held_batches++;
    /* The list is newest first: resume from its tail. */
    struct sess *tail = srv->held_head;
    while (tail && tail->held_next)
        tail = tail->held_next;
    while (tail) {
        struct sess *s = tail;
        tail = s->held_prev;
        hold_unlink(s);
        s->hold_passed = 1;
        hold_resume(s);
    }
}

/* Stops s at the hold point at, if --hold names it; returns 1 when held.
 * The barrier opens from the loop (a zero timer), never under the caller. */
static int hold_here(struct sess *s, enum hold_point at)
{
    struct server *srv = s->srv;
    if (srv->hold != at || s->hold_passed)
        return 0;
    if (s->held)
        return 1;
    s->held = 1;
    s->held_prev = NULL;
    s->held_next = srv->held_head;
    if (srv->held_head)
        srv->held_head->held_prev = s;
    srv->held_head = s;
    if (++srv->held > srv->st.held_max)
        srv->st.held_max = srv->held;
    if (srv->held >= srv->hold_count)
        uv_timer_start(&srv->hold_timer, on_hold_timer, 0, 0);
    else if (srv->held == 1)
        uv_timer_start(&srv->hold_timer, on_hold_timer, srv->hold_ms, 0);
    return 1;
}

/* Starts closing both handles; safe to call more than once. */
static void sess_close(struct sess *s)
{
    if (s->closing)
        return;
    s->closing = 1;
    hold_unlink(s);
    uv_close((uv_handle_t *)&s->tcp, on_close);
    uv_close((uv_handle_t *)&s->idle, on_close);
}

/* Moves whatever the SSL wrote into its write BIO onto the socket. */
static void sess_flush_tls(struct sess *s)
{
    char *p;
    long n = BIO_get_mem_data(s->wbio, &p);
    if (n > 0) {
        sess_write(s, p, (size_t)n, 1);
        (void)BIO_reset(s->wbio);
    }
}

/* Tells whether line (NUL-free, no CRLF) is the verb, alone or with arguments. */
static int is_verb(const char *line, size_t len, const char *verb, int args)
{
    size_t vl = strlen(verb);
    if (len < vl || strncasecmp(line, verb, vl) != 0)
        return 0;
    if (len == vl)
        return 1;
    if (line[vl] != ' ')
        return 0;
    if (args)
        return 1;
    for (size_t i = vl; i < len; i++)
        if (line[i] != ' ')
            return 0;
    return 1;
}

/* Starts TLS on the session: a fresh server SSL on two memory BIOs. */
static void sess_starttls(struct sess *s)
{
    s->ssl = SSL_new(s->srv->ctx);
    s->rbio = BIO_new(BIO_s_mem());
    s->wbio = BIO_new(BIO_s_mem());
    if (s->ssl == NULL || s->rbio == NULL || s->wbio == NULL) {
        BIO_free(s->rbio);
        BIO_free(s->wbio);
        sess_close(s);
        return;
    }
    /* An empty read BIO means "wait for more bytes", not end of file. */
    BIO_set_mem_eof_return(s->rbio, -1);
    BIO_set_mem_eof_return(s->wbio, -1);
    SSL_set_bio(s->ssl, s->rbio, s->wbio);
    SSL_set_accept_state(s->ssl);
    s->state = SESS_HANDSHAKE;
    s->srv->st.starttls++;
}

/* Answers one command line (CRLF stripped). */
static void sess_command(struct sess *s, const char *line, size_t len)
{
    if (is_verb(line, len, "EHLO", 1)) {
        if (s->state == SESS_TLS && hold_here(s, HOLD_EHLO2))
            return; /* answered when the barrier opens */
        if (s->state == SESS_TLS)
            sess_reply(s, EHLO_TLS, sizeof(EHLO_TLS) - 1);
        else
            sess_reply(s, EHLO_PLAIN, sizeof(EHLO_PLAIN) - 1);
    } else if (s->state == SESS_PLAIN && is_verb(line, len, "STARTTLS", 0)) {
        sess_reply(s, REPLY_STARTTLS, sizeof(REPLY_STARTTLS) - 1);
        sess_starttls(s);
    } else if (is_verb(line, len, "QUIT", 0)) {
        s->srv->st.quits++;
        sess_reply(s, REPLY_BYE, sizeof(REPLY_BYE) - 1);
        sess_quit(s);
    } else {
        sess_reply(s, REPLY_ERROR, sizeof(REPLY_ERROR) - 1);
    }
}

/* Splits application bytes into lines and answers each one. */
static void sess_input(struct sess *s, const char *data, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (s->closing || s->quitting)
            return;
        if (s->state == SESS_HANDSHAKE) {
            /* Plaintext pipelined after STARTTLS is dropped (RFC 3207 4.2 and the
             * command injection attacks): only TLS records count from here on,
             * and those go through sess_tls_input, not here. */
            return;
        }
        char c = data[i];
        if (c == '\n') {
            size_t n = s->line_len;
            if (n > 0 && s->line[n - 1] == '\r')
                n--;
            s->line_len = 0;
            sess_command(s, s->line, n);
            continue;
        }
        if (s->line_len == sizeof(s->line)) {
            s->srv->st.overflows++;
            sess_reply(s, REPLY_TOO_LONG, sizeof(REPLY_TOO_LONG) - 1);
            sess_quit(s);
            return;
        }
        s->line[s->line_len++] = c;
    }
}

/* Feeds TLS records to the SSL: handshake first, then application data. */
static void sess_tls_input(struct sess *s, const char *data, size_t len)
{
    if (s->state == SESS_HANDSHAKE && s->srv->hold == HOLD_CLIENTHELLO && !s->hold_passed) {
        /* Mid-handshake hold: keep the bytes, answer them when the barrier opens. */
        char *grown =
            s->stash_len + len <= WRITE_QUEUE_MAX ? realloc(s->stash, s->stash_len + len) : NULL;
        if (grown == NULL) {
            s->srv->st.overflows++;
            sess_close(s);
            return;
        }
        memcpy(grown + s->stash_len, data, len);
        s->stash = grown;
        s->stash_len += len;
        hold_here(s, HOLD_CLIENTHELLO);
        return;
    }
    if (BIO_write(s->rbio, data, (int)len) != (int)len) {
        sess_close(s);
        return;
    }
    if (s->state == SESS_HANDSHAKE) {
        int r = SSL_do_handshake(s->ssl);
        if (r != 1) {
            int e = SSL_get_error(s->ssl, r);
            sess_flush_tls(s); /* the alert, if any */
            if (e != SSL_ERROR_WANT_READ) {
                s->srv->st.handshake_failures++;
                ERR_clear_error();
                sess_quit(s);
            }
            return;
        }
        s->state = SESS_TLS;
        s->line_len = 0;
        s->srv->st.handshakes++;
        sess_flush_tls(s); /* Finished, or the TLS 1.3 tickets */
    }
    char buf[4096];
    while (!s->closing && !s->quitting) {
        int n = SSL_read(s->ssl, buf, sizeof(buf));
        if (n > 0) {
            sess_input(s, buf, (size_t)n);
            continue;
        }
        int e = SSL_get_error(s->ssl, n);
        sess_flush_tls(s); /* key updates or alerts produced while reading */
        if (e == SSL_ERROR_WANT_READ)
            return;
        /* close_notify or a protocol error: nothing more will come. */
        ERR_clear_error();
        sess_quit(s);
        return;
    }
}

/* Hands libuv the shared read buffer. */
static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    (void)suggested;
    struct server *srv = h->loop->data;
    *buf = uv_buf_init(srv->readbuf, sizeof(srv->readbuf));
}

/* Handles bytes from a client, its EOF, or a reset. */
static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    struct sess *s = stream->data;
    if (nread == 0 || s->closing)
        return;
    if (nread < 0) {
        if (nread != UV_EOF)
            s->srv->st.resets++;
        sess_close(s);
        return;
    }
    uv_timer_again(&s->idle);
    if (s->state == SESS_PLAIN)
        sess_input(s, buf->base, (size_t)nread);
    else
        sess_tls_input(s, buf->base, (size_t)nread);
}

/* Drops a session that has been silent for the idle timeout. */
static void on_idle(uv_timer_t *t)
{
    struct sess *s = t->data;
    s->srv->st.timeouts++;
    sess_close(s);
}

/* Accepts one connection and sends the greeting with the local address. */
static void on_connection(uv_stream_t *listener, int status)
{
    struct server *srv = listener->loop->data;
    if (status < 0) {
        srv->st.accept_errors++;
        return;
    }
    struct sess *s = calloc(1, sizeof(*s));
    if (s == NULL) {
        srv->st.accept_errors++;
        return;
    }
    s->srv = srv;
    uv_tcp_init(srv->loop, &s->tcp);
    uv_timer_init(srv->loop, &s->idle);
    s->tcp.data = s;
    s->idle.data = s;
    s->pending_close = 2;
    srv->st.active++;
    if (uv_accept(listener, (uv_stream_t *)&s->tcp) != 0) {
        srv->st.accept_errors++;
        sess_close(s);
        return;
    }
    srv->st.accepted++;
    uv_tcp_nodelay(&s->tcp, 1);
    uv_timer_start(&s->idle, on_idle, srv->idle_ms, srv->idle_ms);
    if (!hold_here(s, HOLD_GREETING))
        sess_greet(s);
}

/* Sends the greeting with the local address and starts reading. */
static void sess_greet(struct sess *s)
{
    struct sockaddr_storage ss;
    int sl = sizeof(ss);
    char addr[INET6_ADDRSTRLEN] = "bench";
    if (uv_tcp_getsockname(&s->tcp, (struct sockaddr *)&ss, &sl) == 0 && ss.ss_family == AF_INET)
        uv_ip4_name((struct sockaddr_in *)&ss, addr, sizeof(addr));
    char greeting[96];
    int n = snprintf(greeting, sizeof(greeting), "220 %s ESMTP bench\r\n", addr);
    sess_write(s, greeting, (size_t)n, 1);
    if (!s->closing && uv_read_start((uv_stream_t *)&s->tcp, on_alloc, on_read) != 0)
        sess_close(s);
}

/* Closes every handle still open so that uv_run returns. */
static void close_walk_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (uv_is_closing(h))
        return;
    if (h->type == UV_TCP && h->data != NULL) {
        sess_close(h->data); /* a session: closes its timer too */
        return;
    }
    if (h->type == UV_TIMER && h->data != NULL)
        return; /* a session's timer, closed with its socket */
    uv_close(h, NULL);
}

/* SIGINT/SIGTERM stop the server; SIGUSR1 prints the counters. */
static void on_signal(uv_signal_t *sig, int signum)
{
    struct server *srv = sig->loop->data;
    if (signum == SIGUSR1) {
        stats_print(srv);
        return;
    }
    if (srv->stopping)
        return;
    srv->stopping = 1;
    uv_walk(srv->loop, close_walk_cb, NULL);
}

/* Parses one dotted quad that must be in 127.0.0.0/8; returns host order. */
static uint32_t parse_loopback(const char *text)
{
    struct in_addr a;
    if (inet_pton(AF_INET, text, &a) != 1)
        die("not an IPv4 address: '%s'", text);
    uint32_t h = ntohl(a.s_addr);
    if ((h >> 24) != 127)
        die("refusing non-loopback address %s: only 127.0.0.0/8 is allowed", text);
    return h;
}

/* Appends one address to the list, growing it as needed. */
static void addr_push(uint32_t **list, size_t *n, size_t *cap, uint32_t a)
{
    if (*n == MAX_LISTENERS)
        die("more than %d listen addresses", MAX_LISTENERS);
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        *list = realloc(*list, *cap * sizeof(**list));
        if (*list == NULL)
            die("out of memory");
    }
    (*list)[(*n)++] = a;
}

/* Expands "A-B,C,..." into a list of host-order IPv4 addresses. */
static uint32_t *parse_listen(const char *spec, size_t *count)
{
    uint32_t *list = NULL;
    size_t n = 0, cap = 0;
    char *copy = strdup(spec);
    if (copy == NULL)
        die("out of memory");
    char *save = NULL;
    for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        char *dash = strchr(tok, '-');
        if (dash == NULL) {
            addr_push(&list, &n, &cap, parse_loopback(tok));
            continue;
        }
        *dash = '\0';
        uint32_t lo = parse_loopback(tok), hi = parse_loopback(dash + 1);
        if (hi < lo)
            die("empty range %s-%s", tok, dash + 1);
        if (hi - lo >= MAX_LISTENERS)
            die("range %s-%s is too large", tok, dash + 1);
        for (uint32_t a = lo;; a++) {
            addr_push(&list, &n, &cap, a);
            if (a == hi)
                break;
        }
    }
    free(copy);
    if (n == 0)
        die("--listen names no address");
    *count = n;
    return list;
}

/* Reads the whole of a DER OCSP response file into memory. */
static unsigned char *read_ocsp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        die("cannot open OCSP response %s: %s", path, strerror(errno));
    unsigned char *buf = malloc(OCSP_MAX_LEN + 1);
    if (buf == NULL)
        die("out of memory");
    size_t n = fread(buf, 1, OCSP_MAX_LEN + 1, f);
    int err = ferror(f);
    fclose(f);
    if (err)
        die("cannot read OCSP response %s", path);
    if (n == 0)
        die("OCSP response %s is empty", path);
    if (n > OCSP_MAX_LEN)
        die("OCSP response %s is larger than %d bytes", path, OCSP_MAX_LEN);
    *len = n;
    return buf;
}

/* Staples the --ocsp response when the client sent status_request. OpenSSL
 * takes ownership of the buffer it is given, so each handshake gets a copy. */
static int on_status_request(SSL *ssl, void *arg)
{
    const struct server *srv = arg;
    if (SSL_get_tlsext_status_type(ssl) != TLSEXT_STATUSTYPE_ocsp)
        return SSL_TLSEXT_ERR_NOACK;
    unsigned char *copy = OPENSSL_malloc(srv->ocsp_len);
    if (copy == NULL)
        return SSL_TLSEXT_ERR_NOACK; /* no staple rather than a failed handshake */
    memcpy(copy, srv->ocsp, srv->ocsp_len);
    if (SSL_set_tlsext_status_ocsp_resp(ssl, copy, (long)srv->ocsp_len) != 1) {
        OPENSSL_free(copy);
        return SSL_TLSEXT_ERR_NOACK;
    }
    return SSL_TLSEXT_ERR_OK;
}

/* Builds the server TLS context: TLS 1.2 and 1.3, default ciphers. */
static SSL_CTX *server_ctx_new(const char *cert, const char *key, int tickets)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        die("SSL_CTX_new failed");
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
        die("cannot load certificate chain %s", cert);
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
        die("cannot load private key %s", key);
    if (SSL_CTX_check_private_key(ctx) != 1)
        die("key %s does not match certificate %s", key, cert);
    /* Idle sessions give their 34 KiB of record buffers back. */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    /* Every client is new: a session cache would only grow. */
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    if (tickets >= 0)
        SSL_CTX_set_num_tickets(ctx, (size_t)tickets);
    return ctx;
}

/* Writes our pid to path. */
static void write_pidfile(const char *path)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        die("cannot write pidfile %s: %s", path, strerror(errno));
    fprintf(f, "%ld\n", (long)getpid());
    fclose(f);
}

/* Parses the flags, listens everywhere, runs the loop until a signal. */
int main(int argc, char **argv)
{
    const char *cert = NULL, *key = NULL, *listen = NULL, *pidfile = NULL, *ocsp = NULL;
    const char *hold = NULL;
    int port = 25, tickets = -1;
    long hold_count = 100;
    double idle_s = 30, hold_ms = 10000;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
            usage(0);
        if (i + 1 >= argc)
            usage(2);
        const char *v = argv[++i];
        if (strcmp(a, "--cert") == 0)
            cert = v;
        else if (strcmp(a, "--key") == 0)
            key = v;
        else if (strcmp(a, "--listen") == 0)
            listen = v;
        else if (strcmp(a, "--pidfile") == 0)
            pidfile = v;
        else if (strcmp(a, "--port") == 0)
            port = atoi(v);
        else if (strcmp(a, "--idle-timeout") == 0)
            idle_s = atof(v);
        else if (strcmp(a, "--tickets") == 0)
            tickets = atoi(v);
        else if (strcmp(a, "--ocsp") == 0)
            ocsp = v;
        else if (strcmp(a, "--hold") == 0)
            hold = v;
        else if (strcmp(a, "--hold-count") == 0)
            hold_count = atol(v);
        else if (strcmp(a, "--hold-ms") == 0)
            hold_ms = atof(v);
        else
            usage(2);
    }
    if (cert == NULL || key == NULL || listen == NULL)
        usage(2);
    if (port <= 0 || port > 65535)
        die("bad --port %d", port);
    if (idle_s <= 0)
        die("bad --idle-timeout");
    if (hold_count < 1 || hold_ms < 0)
        die("bad --hold-count or --hold-ms");

    static struct server srv; /* 64 KiB read buffer: not on the stack */
    srv.loop = uv_default_loop();
    srv.loop->data = &srv;
    srv.idle_ms = (uint64_t)(idle_s * 1000);
    if (hold == NULL)
        srv.hold = HOLD_NONE;
    else if (strcmp(hold, "greeting") == 0)
        srv.hold = HOLD_GREETING;
    else if (strcmp(hold, "clienthello") == 0)
        srv.hold = HOLD_CLIENTHELLO;
    else if (strcmp(hold, "ehlo2") == 0)
        srv.hold = HOLD_EHLO2;
    else
        die("bad --hold '%s' (greeting, clienthello or ehlo2)", hold);
    srv.hold_count = (unsigned long)hold_count;
    srv.hold_ms = (uint64_t)hold_ms;
    uv_timer_init(srv.loop, &srv.hold_timer);
    srv.hold_timer.data = NULL; /* not a session's timer: close_walk_cb closes it */
    srv.ctx = server_ctx_new(cert, key, tickets);
    if (ocsp != NULL) {
        srv.ocsp = read_ocsp(ocsp, &srv.ocsp_len);
        SSL_CTX_set_tlsext_status_cb(srv.ctx, on_status_request);
        SSL_CTX_set_tlsext_status_arg(srv.ctx, &srv);
    }
    signal(SIGPIPE, SIG_IGN);

    uint32_t *addrs = parse_listen(listen, &srv.n_listeners);
    srv.listeners = calloc(srv.n_listeners, sizeof(*srv.listeners));
    if (srv.listeners == NULL)
        die("out of memory");
    for (size_t i = 0; i < srv.n_listeners; i++) {
        struct sockaddr_in sin = {0};
        sin.sin_family = AF_INET;
        sin.sin_port = htons((uint16_t)port);
        sin.sin_addr.s_addr = htonl(addrs[i]);
        char name[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &sin.sin_addr, name, sizeof(name));
        uv_tcp_t *l = &srv.listeners[i];
        uv_tcp_init(srv.loop, l);
        l->data = NULL; /* marks a listener, not a session */
        /* libuv sets SO_REUSEADDR on every TCP bind on Unix. */
        int r = uv_tcp_bind(l, (const struct sockaddr *)&sin, 0);
        if (r == 0)
            r = uv_listen((uv_stream_t *)l, BACKLOG, on_connection);
        if (r != 0)
            die("cannot listen on %s:%d: %s", name, port, uv_strerror(r));
    }
    free(addrs);

    uv_signal_init(srv.loop, &srv.sigint);
    uv_signal_init(srv.loop, &srv.sigterm);
    uv_signal_init(srv.loop, &srv.sigusr1);
    uv_signal_start(&srv.sigint, on_signal, SIGINT);
    uv_signal_start(&srv.sigterm, on_signal, SIGTERM);
    uv_signal_start(&srv.sigusr1, on_signal, SIGUSR1);
    if (pidfile)
        write_pidfile(pidfile);
    fprintf(stderr, "bench_smtpd: listening on %zu addresses, port %d\n", srv.n_listeners, port);

    uv_run(srv.loop, UV_RUN_DEFAULT);

    stats_print(&srv);
    uv_loop_close(srv.loop);
    free(srv.listeners);
    SSL_CTX_free(srv.ctx);
    free(srv.ocsp);
    if (pidfile)
        unlink(pidfile);
    return 0;
}
