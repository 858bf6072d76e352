/*
 * smtp.c - the SMTP client session and the SMTP reply parser.
 *
 * One session is one connection to one endpoint and walks
 * connect -> 220 greeting -> EHLO (HELO fallback) -> STARTTLS -> TLS
 * handshake -> EHLO -> QUIT, recording what it saw at each step. The shape
 * is OpenSMTPD's: an enum of states, smtp_enter() sends what a state needs,
 * smtp_on_reply() picks the next state from a complete reply, and the libuv
 * callbacks only move bytes. Every step has one deadline on the session's
 * timer, and every input is bounded (line length, reply size, line count),
 * so a tarpit, a 1 MB line or an endless reply costs one deadline and a few
 * kilobytes. Bytes that follow the 220 reply to STARTTLS end the session
 * before the handshake (RFC 3207 section 4.2 and the STARTTLS injection
 * class of bugs): plaintext never crosses into TLS.
 *
 * A session is freed only in the close callback of its last handle, never
 * under its own stack frame.
 */
#include "scanner/smtp.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "db/db.h"
#include "scanner/strbuf.h"

/* ---- reply parser --------------------------------------------------- */

/* Appends one complete line to the reply text, bounded. */
static int reply_add_line(smtp_reply_t *r, const char *line, size_t n, const char **err)
{
    if (r->nlines >= SMTP_REPLY_LINES || r->len + n + 1 > SMTP_REPLY_MAX) {
        *err = "reply too long (over 512 lines or 64 KiB)";
        return -1;
    }
    if (r->len + n + 2 > r->cap) {
        size_t cap = r->cap ? r->cap : 256;
        while (cap < r->len + n + 2) {
            cap *= 2;
        }
        char *t = realloc(r->text, cap);
        if (!t) {
            *err = "out of memory";
            return -1;
        }
        r->text = t;
        r->cap = cap;
    }
    if (r->nlines > 0) {
        r->text[r->len++] = '\n';
    }
    memcpy(r->text + r->len, line, n);
    r->len += n;
    r->text[r->len] = 0;
    r->nlines++;
    return 0;
}

/* Checks one reply line (RFC 5321 4.2: code, then '-' or ' ' or end). */
static int reply_line(smtp_reply_t *r, const char *line, size_t n, int *last, const char **err)
{
    if (n < 3 || !isdigit((unsigned char)line[0]) || !isdigit((unsigned char)line[1]) ||
        !isdigit((unsigned char)line[2]) || line[0] < '2' || line[0] > '5' ||
        (n > 3 && line[3] != ' ' && line[3] != '-')) {
        *err = "malformed reply line (no three-digit code)";
        return -1;
    }
    int code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
    if (r->nlines > 0 && code != r->code) {
        *err = "reply lines with different codes";
        return -1;
    }
    r->code = code;
    *last = n == 3 || line[3] == ' ';
    return reply_add_line(r, line, n, err);
}

/* Feeds bytes to the parser; see smtp.h. */
int smtp_reply_feed(smtp_reply_t *r, const char *data, size_t len, size_t *used, const char **err)
{
    size_t i = 0;
    *used = 0;
    while (i < len) {
        char c = data[i++];
        if (c != '\n') {
            /* The cap is on the text: past it, only the CR may come. */
            if (r->linelen > SMTP_LINE_MAX || (r->linelen == SMTP_LINE_MAX && c != '\r')) {
                *used = i;
                *err = "reply line longer than 2048 octets";
                return -1;
            }
            r->line[r->linelen++] = c;
            continue;
        }
        /* A line ends at LF; a CR before it is dropped (bare LF tolerated). */
        size_t n = r->linelen;
        if (n > 0 && r->line[n - 1] == '\r') {
            n--;
        }
        r->linelen = 0;
        if (n > SMTP_LINE_MAX) {
            *used = i;
            *err = "reply line longer than 2048 octets";
            return -1;
        }
        int last = 0;
        if (reply_line(r, r->line, n, &last, err) < 0) {
            *used = i;
            return -1;
        }
        if (last) {
            *used = i;
            return 1;
        }
    }
    *used = i;
    return 0;
}

/* Empties the reply for the next one. */
void smtp_reply_reset(smtp_reply_t *r)
{
    r->code = 0;
    r->nlines = 0;
    r->len = 0;
    r->linelen = 0;
    if (r->text) {
        r->text[0] = 0;
    }
}

/* Frees the reply text. */
void smtp_reply_free(smtp_reply_t *r)
{
    free(r->text);
    memset(r, 0, sizeof *r);
}

/* JSON array of EHLO extension lines (text after "250-" / "250 "). */
char *smtp_ehlo_json(const char *text)
{
    strbuf_t sb;
    sb_init(&sb);
    sb_putc(&sb, '[');
    int first = 1, lineno = 0;
    const char *p = text;
    while (p && *p) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (lineno++ > 0 && n > 4) {
            if (!first) {
                sb_putc(&sb, ',');
            }
            sb_json_str(&sb, p + 4, n - 4);
            first = 0;
        }
        p = e ? e + 1 : NULL;
    }
    sb_putc(&sb, ']');
    return sb_take(&sb);
}

/* Looks for an extension keyword in an EHLO reply (RFC 5321 4.1.1.1). */
int smtp_ehlo_has(const char *text, const char *kw)
{
    size_t kl = strlen(kw);
    int lineno = 0;
    for (const char *p = text; p && *p;) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (lineno++ > 0 && n >= 4 + kl && strncasecmp(p + 4, kw, kl) == 0 &&
            (n == 4 + kl || p[4 + kl] == ' ' || p[4 + kl] == '=')) {
            return 1;
        }
        p = e ? e + 1 : NULL;
    }
    return 0;
}

/* ---- session -------------------------------------------------------- */

static const char *state_names[] = {"CONNECT", "BANNER", "EHLO", "HELO", "STARTTLS",
                                    "TLS",     "EHLO2",  "QUIT", "DONE"};

/* Name of a state, for debug logs. */
const char *smtp_state_name(smtp_state_t s)
{
    return (unsigned)s < sizeof state_names / sizeof *state_names ? state_names[s] : "?";
}

struct smtp_session {
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_connect_t connect_req;
    const smtp_opts_t *opts;
    smtp_state_t state;
    smtp_reply_t reply;
    SSL *ssl;
    int in_tls; /* bytes now go through ssl */
    int closing;
    int handles_open; /* tcp + timer */
    int reported;
    int reading;
    uint64_t t0, step_t0;
    smtp_done_cb cb;
    void *arg;
    const dane_rec_t *dane;
    int ndane;
    int tls_version; /* 0: any version, else only this one (--enum) */
    smtp_result_t res;
};

typedef struct write_req {
    uv_write_t req;
    char data[];
} write_req_t;

static void smtp_enter(smtp_session_t *s, smtp_state_t st);
static void session_finish(smtp_session_t *s);
static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf);

/* Milliseconds since a uv_hrtime() stamp, with sub-ms precision. */
static double ms_since(uint64_t since)
{
    return (double)(uv_hrtime() - since) / 1e6;
}

/* Records a failure of the current step and ends the session. */
static void session_fail(smtp_session_t *s, smtp_fail_t f, const char *step, const char *fmt,
                         const char *detail)
{
    if (s->res.fail == SMTP_OK) {
        s->res.fail = f;
        s->res.failed_step = step;
        snprintf(s->res.error, sizeof s->res.error, fmt, detail ? detail : "");
    }
    session_finish(s);
}

/* The step name of a state, for failures. */
static const char *state_step(smtp_state_t st)
{
    switch (st) {
    case SMTP_CONNECT:
        return SMTP_STEP_CONNECT;
    case SMTP_BANNER:
        return SMTP_STEP_BANNER;
    case SMTP_EHLO:
    case SMTP_HELO:
        return SMTP_STEP_EHLO;
    case SMTP_STARTTLS:
        return SMTP_STEP_STARTTLS;
    case SMTP_TLS:
        return SMTP_STEP_TLS;
    case SMTP_EHLO2:
        return SMTP_STEP_EHLO2;
    default:
        return NULL;
    }
}

/* Frees the session once both handles are closed. */
static void close_cb(uv_handle_t *h)
{
    smtp_session_t *s = h->data;
    if (--s->handles_open > 0) {
        return;
    }
    if (s->ssl) {
        SSL_free(s->ssl);
    }
    smtp_reply_free(&s->reply);
    free(s->res.greeting);
    free(s->res.ehlo_before);
    free(s->res.ehlo_after);
    free(s->res.starttls_reply);
    tls_facts_clear(&s->res.tls);
    free(s);
}

/* Reports the result once and closes the handles. */
static void session_finish(smtp_session_t *s)
{
    if (s->closing) {
        return;
    }
    s->closing = 1;
    s->state = SMTP_DONE;
    s->res.t_total = ms_since(s->t0);
    uv_timer_stop(&s->timer);
    if (!s->reported) {
        s->reported = 1;
        s->cb(s->arg, &s->res);
    }
    uv_close((uv_handle_t *)&s->timer, close_cb);
    uv_close((uv_handle_t *)&s->tcp, close_cb);
}

/* The step deadline passed (or the lazy timer fired for an earlier step:
 * then it is re-armed for what is left of this one; see arm_step). */
static void timeout_cb(uv_timer_t *t)
{
    smtp_session_t *s = t->data;
    uint64_t elapsed_ms = (uv_hrtime() - s->step_t0) / 1000000;
    if (elapsed_ms < s->opts->timeout_ms) {
        uv_timer_start(&s->timer, timeout_cb, s->opts->timeout_ms - elapsed_ms, 0);
        return;
    }
    if (s->state == SMTP_CONNECT) {
        session_fail(s, SMTP_F_CONNECT, SMTP_STEP_CONNECT, "connect timed out%s", NULL);
    } else if (s->state == SMTP_QUIT) {
        session_finish(s); /* no 221 is no fault: everything was recorded */
    } else {
        session_fail(s, SMTP_F_TIMEOUT, state_step(s->state), "timeout waiting in %s",
                     smtp_state_name(s->state));
    }
}

/* Frees a finished write. */
static void write_cb(uv_write_t *req, int status)
{
    (void)status; /* a failed write shows up as a read error or timeout */
    free(req);
}

/* Queues raw bytes on the socket. */
static int send_raw(smtp_session_t *s, const char *data, size_t n)
{
    if (n == 0) {
        return 0;
    }
    /* Most commands fit the socket buffer at once: a direct write costs no
     * allocation and no epoll change. Only the rest, if any, is queued. */
    if (uv_stream_get_write_queue_size((uv_stream_t *)&s->tcp) == 0) {
        int done =
            uv_try_write((uv_stream_t *)&s->tcp, &(uv_buf_t){.base = (char *)data, .len = n}, 1);
        if (done == (int)n) {
            return 0;
        }
        if (done > 0) {
            data += done;
            n -= (size_t)done;
        } else if (done != UV_EAGAIN) {
            return -1;
        }
    }
    write_req_t *w = malloc(sizeof *w + n);
    if (!w) {
        return -1;
    }
    memcpy(w->data, data, n);
    uv_buf_t b = uv_buf_init(w->data, (unsigned)n);
    if (uv_write(&w->req, (uv_stream_t *)&s->tcp, &b, 1, write_cb) != 0) {
        free(w);
        return -1;
    }
    return 0;
}

/* Sends what the SSL has queued for the network. */
static int flush_tls(smtp_session_t *s)
{
    const char *p;
    size_t n;
    while ((n = tls_pending_out(s->ssl, &p)) > 0) {
        if (send_raw(s, p, n) < 0) {
            return -1;
        }
        tls_consume_out(s->ssl, n);
    }
    return 0;
}

/* Sends one command, in clear or through TLS. */
static int send_cmd(smtp_session_t *s, const char *cmd)
{
    size_t n = strlen(cmd);
    if (!s->in_tls) {
        return send_raw(s, cmd, n);
    }
    if (SSL_write(s->ssl, cmd, (int)n) <= 0) {
        return -1;
    }
    return flush_tls(s);
}

/* Arms the deadline of the step just entered. Lazily: a running timer was
 * armed for an earlier step with the same timeout, so it fires before this
 * step's deadline and timeout_cb re-arms it for the rest. A session walks
 * seven steps in a few milliseconds: one timer start instead of seven (each
 * a removal and an insertion in the loop's timer heap). */
static void arm_step(smtp_session_t *s)
{
    s->step_t0 = uv_hrtime();
    if (!uv_is_active((uv_handle_t *)&s->timer)) {
        uv_timer_start(&s->timer, timeout_cb, s->opts->timeout_ms, 0);
    }
}

/* Starts the TLS handshake (after STARTTLS 220, or at once on port 465). */
static void start_tls(smtp_session_t *s)
{
    char err[256] = "";
    s->ssl = tls_client_new(s->opts->ssl_ctx, s->res.host);
    if (!s->ssl) {
        session_fail(s, SMTP_F_TLS, SMTP_STEP_TLS, "%s", "cannot create SSL");
        return;
    }
    s->in_tls = 1;
    if (s->tls_version) {
        SSL_set_min_proto_version(s->ssl, s->tls_version);
        SSL_set_max_proto_version(s->ssl, s->tls_version);
    }
    if (s->ndane > 0) {
        tls_dane_add(s->ssl, s->res.host, s->dane, s->ndane);
    }
    if (tls_handshake(s->ssl, err, sizeof err) < 0 || flush_tls(s) < 0) {
        session_fail(s, SMTP_F_TLS, SMTP_STEP_TLS, "%s", err);
    }
}

/* Enters a state: sends its command and arms its deadline. */
static void smtp_enter(smtp_session_t *s, smtp_state_t st)
{
    s->state = st;
    arm_step(s);
    char cmd[300];
    switch (st) {
    case SMTP_EHLO:
    case SMTP_EHLO2:
        snprintf(cmd, sizeof cmd, "EHLO %s\r\n", s->opts->helo);
        break;
    case SMTP_HELO:
        snprintf(cmd, sizeof cmd, "HELO %s\r\n", s->opts->helo);
        break;
    case SMTP_STARTTLS:
        snprintf(cmd, sizeof cmd, "STARTTLS\r\n");
        break;
    case SMTP_QUIT:
        snprintf(cmd, sizeof cmd, "QUIT\r\n");
        break;
    case SMTP_TLS:
        start_tls(s);
        return;
    default:
        return; /* CONNECT and BANNER send nothing */
    }
    if (send_cmd(s, cmd) < 0) {
        session_fail(s, SMTP_F_CLOSED, state_step(st), "%s", "cannot send command");
    }
}

/* Takes a copy of the reply text. */
static char *reply_dup(const smtp_reply_t *r)
{
    return strdup(r->text ? r->text : "");
}

/* Picks the next state from a complete reply. */
static void smtp_on_reply(smtp_session_t *s)
{
    smtp_reply_t *r = &s->reply;
    double t = ms_since(s->step_t0);
    switch (s->state) {
    case SMTP_BANNER:
        s->res.t_banner = t;
        s->res.banner_code = r->code;
        s->res.greeting = reply_dup(r);
        if (r->code != 220) {
            session_fail(s, SMTP_F_REJECTED, SMTP_STEP_BANNER, "greeting was %s",
                         r->text ? r->text : "");
            return;
        }
        smtp_enter(s, SMTP_EHLO);
        return;
    case SMTP_EHLO:
    case SMTP_HELO:
        s->res.t_ehlo = t;
        s->res.ehlo_code = r->code;
        if (r->code != 250) {
            if (s->state == SMTP_EHLO) {
                s->res.helo_fallback = 1;
                smtp_enter(s, SMTP_HELO);
            } else {
                session_fail(s, SMTP_F_REJECTED, SMTP_STEP_EHLO, "HELO refused: %s", r->text);
            }
            return;
        }
        if (s->in_tls) {
            /* TLS on connect (port 465): this EHLO is already encrypted. */
            s->res.ehlo_after = reply_dup(r);
            smtp_enter(s, SMTP_QUIT);
            return;
        }
        s->res.ehlo_before = reply_dup(r);
        s->res.starttls_offered =
            s->state == SMTP_EHLO && smtp_ehlo_has(s->res.ehlo_before, "STARTTLS");
        smtp_enter(s, s->res.starttls_offered ? SMTP_STARTTLS : SMTP_QUIT);
        return;
    case SMTP_STARTTLS:
        s->res.t_starttls = t;
        s->res.starttls_code = r->code;
        s->res.starttls_reply = reply_dup(r);
        if (r->code != 220) {
            /* Recorded; no TLS today. The session ends politely. */
            smtp_enter(s, SMTP_QUIT);
            return;
        }
        smtp_enter(s, SMTP_TLS);
        return;
    case SMTP_EHLO2:
        s->res.t_ehlo2 = t;
        s->res.ehlo_after = reply_dup(r);
        smtp_enter(s, SMTP_QUIT);
        return;
    case SMTP_QUIT:
        session_finish(s);
        return;
    default:
        return;
    }
}

/* Runs cleartext (or decrypted) bytes through the reply parser. */
static void feed_plain(smtp_session_t *s, const char *data, size_t len)
{
    while (len > 0 && !s->closing) {
        size_t used = 0;
        const char *err = NULL;
        int r = smtp_reply_feed(&s->reply, data, len, &used, &err);
        data += used;
        len -= used;
        if (r < 0) {
            session_fail(s, SMTP_F_PROTOCOL, state_step(s->state), "%s", err);
            return;
        }
        if (r == 0) {
            return;
        }
        /* RFC 3207 4.2: nothing may follow the 220 to STARTTLS in clear;
         * checked before the handshake starts, so none of it reaches TLS. */
        if (s->state == SMTP_STARTTLS && s->reply.code == 220 && len > 0) {
            s->res.t_starttls = ms_since(s->step_t0);
            s->res.starttls_code = s->reply.code;
            s->res.starttls_reply = reply_dup(&s->reply);
            s->res.fail = SMTP_F_PROTOCOL;
            s->res.failed_step = SMTP_STEP_STARTTLS;
            snprintf(s->res.error, sizeof s->res.error,
                     "%zu bytes pipelined after the STARTTLS 220 reply", len);
            session_finish(s);
            return;
        }
        smtp_on_reply(s);
        smtp_reply_reset(&s->reply);
    }
}

/* Pumps the TLS engine with network bytes. */
static void feed_tls(smtp_session_t *s, const char *data, size_t len)
{
    char err[256] = "";
    if (tls_feed(s->ssl, data, len) < 0) {
        session_fail(s, SMTP_F_TLS, SMTP_STEP_TLS, "%s", "TLS buffer error");
        return;
    }
    if (s->state == SMTP_TLS) {
        int r = tls_handshake(s->ssl, err, sizeof err);
        /* When the handshake is done, its last flight (the client Finished)
         * waits in the write BIO and leaves with the EHLO that follows: one
         * write, one segment, the same bytes. */
        if (r != 1 && flush_tls(s) < 0) {
            session_fail(s, SMTP_F_CLOSED, SMTP_STEP_TLS, "%s", "write failed");
            return;
        }
        if (r < 0) {
            session_fail(s, SMTP_F_TLS, SMTP_STEP_TLS, "%s", err);
            return;
        }
        if (r == 0) {
            return;
        }
        s->res.t_tls = ms_since(s->step_t0);
        s->res.tls_done = 1;
        tls_collect(s->ssl, &s->res.tls);
        smtp_enter(s, s->res.tls_on_connect ? SMTP_BANNER : SMTP_EHLO2);
        /* BANNER sends nothing: the Finished goes alone. */
        if (!s->closing && flush_tls(s) < 0) {
            session_fail(s, SMTP_F_CLOSED, SMTP_STEP_TLS, "%s", "write failed");
            return;
        }
    }
    char buf[4096];
    for (;;) {
        if (s->closing) {
            return;
        }
        int n = SSL_read(s->ssl, buf, sizeof buf);
        if (n > 0) {
            feed_plain(s, buf, (size_t)n);
            continue;
        }
        int e = SSL_get_error(s->ssl, n);
        if (e == SSL_ERROR_WANT_READ) {
            flush_tls(s);
            return;
        }
        if (s->state == SMTP_QUIT) {
            session_finish(s);
        } else {
            session_fail(s, SMTP_F_CLOSED, state_step(s->state), "%s",
                         "TLS connection closed by the server");
        }
        return;
    }
}

/* All reads land in one buffer: bytes are consumed before the callback returns. */
static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    static char shared[65536];
    (void)h, (void)suggested;
    *buf = uv_buf_init(shared, sizeof shared);
}

/* Network bytes arrived (or EOF, or an error). */
static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
    smtp_session_t *s = st->data;
    if (s->closing) {
        return;
    }
    if (nread < 0) {
        if (s->state == SMTP_QUIT) {
            session_finish(s);
            return;
        }
        session_fail(s, SMTP_F_CLOSED, state_step(s->state),
                     nread == UV_EOF ? "connection closed by the server in %s"
                                     : "connection error in %s",
                     smtp_state_name(s->state));
        return;
    }
    if (nread == 0) {
        return;
    }
    if (s->in_tls) {
        feed_tls(s, buf->base, (size_t)nread);
    } else {
        feed_plain(s, buf->base, (size_t)nread);
    }
}

/* TCP connect finished. */
static void connect_cb(uv_connect_t *req, int status)
{
    smtp_session_t *s = req->data;
    if (s->closing) {
        return;
    }
    if (status < 0) {
        session_fail(s, SMTP_F_CONNECT, SMTP_STEP_CONNECT, "%s", uv_strerror(status));
        return;
    }
    s->res.t_connect = ms_since(s->step_t0);
    if (!s->reading) {
        uv_read_start((uv_stream_t *)&s->tcp, alloc_cb, on_read);
        s->reading = 1;
    }
    smtp_enter(s, s->res.tls_on_connect ? SMTP_TLS : SMTP_BANNER);
}

/* Reports a failure found before the session reached the loop. */
static void deferred_finish_cb(uv_timer_t *t)
{
    session_finish(t->data);
}

/* Starts a session; see smtp.h. */
smtp_session_t *smtp_start(uv_loop_t *loop, const smtp_opts_t *o, const char *host, const char *ip,
                           int port, const dane_rec_t *dane, int ndane, smtp_done_cb cb, void *arg)
{
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    if (strchr(ip, ':')) {
        if (uv_ip6_addr(ip, port, (struct sockaddr_in6 *)&ss) != 0) {
            return NULL;
        }
    } else if (uv_ip4_addr(ip, port, (struct sockaddr_in *)&ss) != 0) {
        return NULL;
    }
    smtp_session_t *s = calloc(1, sizeof *s);
    if (!s) {
        return NULL;
    }
    s->opts = o;
    s->cb = cb;
    s->dane = dane;
    s->ndane = ndane;
    s->arg = arg;
    s->t0 = uv_hrtime();
    snprintf(s->res.host, sizeof s->res.host, "%s", host);
    snprintf(s->res.ip, sizeof s->res.ip, "%s", ip);
    s->res.port = port;
    s->res.tls_on_connect = o->tls_on_connect;
    s->res.t_connect = s->res.t_banner = s->res.t_ehlo = s->res.t_starttls = s->res.t_tls =
        s->res.t_ehlo2 = -1;
    s->res.tls.verify_depth = -1;
    db_now_iso(s->res.started_at);
    uv_tcp_init(loop, &s->tcp);
    uv_timer_init(loop, &s->timer);
    s->tcp.data = s->timer.data = s->connect_req.data = s;
    s->handles_open = 2;
    s->state = SMTP_CONNECT;
    /* The loop's cached time may be far behind when a session starts late
     * in a long iteration (thousands of callbacks): the connect deadline
     * counts from now, not from the start of the iteration. */
    uv_update_time(loop);
    arm_step(s);
    int r = uv_tcp_connect(&s->connect_req, &s->tcp, (struct sockaddr *)&ss, connect_cb);
    if (r != 0) {
        /* Reported from the loop, not under the caller's frame. */
        s->res.fail = SMTP_F_CONNECT;
        s->res.failed_step = SMTP_STEP_CONNECT;
        snprintf(s->res.error, sizeof s->res.error, "%s", uv_strerror(r));
        uv_timer_start(&s->timer, deferred_finish_cb, 0, 0);
    } else if (uv_read_start((uv_stream_t *)&s->tcp, alloc_cb, on_read) == 0) {
        /* Reading from the start registers the socket with epoll once, for
         * both directions: two epoll_ctl calls fewer per session than
         * starting it in connect_cb. libuv reports the connection first. */
        s->reading = 1;
    }
    return s;
}

/* One protocol version only; see smtp.h. */
void smtp_restrict_version(smtp_session_t *s, int version)
{
    s->tls_version = version;
}

/* Ends a session early; see smtp.h. */
void smtp_abort(smtp_session_t *s)
{
    if (!s->closing) {
        session_fail(s, SMTP_F_ABORTED, state_step(s->state), "%s", "scan interrupted");
    }
}
