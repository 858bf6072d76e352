/*
 * smtp.h - one SMTP session per endpoint (MX host, IP, port) on the libuv
 * loop, and the parser of SMTP replies.
 *
 * The session is one explicit state machine in the OpenSMTPD shape:
 * smtp_enter() sends what a state needs, smtp_on_reply() picks the next
 * state, the I/O callbacks only move bytes. It records facts (greeting,
 * extensions before and after TLS, TLS facts, the time of each step, and
 * which step failed and why) and judges nothing: verdict.c does that.
 * It never sends MAIL, RCPT or DATA.
 */
#ifndef MXSCAN_SMTP_H
#define MXSCAN_SMTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "scanner/tls.h"

#define SMTP_LINE_MAX    2048  /* longest reply line accepted (RFC 5321 4.5.3.1.5 says 512) */
#define SMTP_REPLY_MAX   65536 /* longest reply accepted, all lines */
#define SMTP_REPLY_LINES 512   /* most lines in one reply */

/* Reply parser: feed bytes, get whole replies. Bounded by the limits above. */
typedef struct smtp_reply {
    int code; /* three-digit code, valid when complete */
    int nlines;
    char *text; /* lines without CRLF, joined with '\n' (malloc, grows) */
    size_t len, cap;
    char line[SMTP_LINE_MAX + 2]; /* the line being assembled, with room for its CR */
    size_t linelen;
} smtp_reply_t;

/* Feeds len bytes; *used gets how many were consumed. Returns 1 when a
 * whole reply is in r (bytes after it are left unconsumed), 0 when more
 * bytes are needed, -1 on a protocol error (static message in *err). */
int smtp_reply_feed(smtp_reply_t *r, const char *data, size_t len, size_t *used, const char **err);
/* Empties r for the next reply, keeping its buffer. */
void smtp_reply_reset(smtp_reply_t *r);
void smtp_reply_free(smtp_reply_t *r);
/* Parses an EHLO reply's text into a JSON array of its extension lines
 * (the first line, the server's name, is left out). Returns malloc'd text. */
char *smtp_ehlo_json(const char *text);
/* Non-zero if the EHLO reply text offers the extension keyword kw. */
int smtp_ehlo_has(const char *text, const char *kw);

typedef enum smtp_state {
    SMTP_CONNECT,
    SMTP_BANNER,
    SMTP_EHLO,
    SMTP_HELO,
    SMTP_STARTTLS,
    SMTP_TLS,
    SMTP_EHLO2,
    SMTP_QUIT,
    SMTP_DONE,
} smtp_state_t;

const char *smtp_state_name(smtp_state_t s);

/* The step names stored in endpoints.failed_step. */
#define SMTP_STEP_CONNECT  "connect"
#define SMTP_STEP_BANNER   "banner"
#define SMTP_STEP_EHLO     "ehlo"
#define SMTP_STEP_STARTTLS "starttls"
#define SMTP_STEP_TLS      "tls"
#define SMTP_STEP_EHLO2    "ehlo2"

typedef enum smtp_fail {
    SMTP_OK = 0,
    SMTP_F_CONNECT,  /* refused, unreachable, timed out */
    SMTP_F_TIMEOUT,  /* a step's deadline passed after connecting */
    SMTP_F_CLOSED,   /* the server closed the connection */
    SMTP_F_PROTOCOL, /* bad reply syntax, over-long reply, bytes after STARTTLS 220 */
    SMTP_F_REJECTED, /* a reply code that ends the session (banner 554, STARTTLS 454) */
    SMTP_F_TLS,      /* handshake failed */
    SMTP_F_ABORTED,  /* scan interrupted */
} smtp_fail_t;

typedef struct smtp_opts {
    const char *helo;    /* EHLO name */
    uint64_t timeout_ms; /* deadline of each step */
    int tls_on_connect;  /* port 465 style: TLS first, no STARTTLS */
    SSL_CTX *ssl_ctx;
} smtp_opts_t;

typedef struct smtp_result {
    char host[256];
    char ip[46];
    int port;
    char started_at[32];
    smtp_fail_t fail;
    const char *failed_step; /* SMTP_STEP_* or NULL */
    char error[256];
    int tls_on_connect;
    int banner_code;
    char *greeting;
    int helo_fallback;
    int ehlo_code;
    char *ehlo_before; /* raw reply text */
    char *ehlo_after;
    int starttls_offered;
    int starttls_code;
    char *starttls_reply;
    int tls_done;
    tls_facts_t tls;
    double t_connect, t_banner, t_ehlo, t_starttls, t_tls, t_ehlo2,
        t_total; /* ms; <0: not reached */
} smtp_result_t;

typedef struct smtp_session smtp_session_t;
/* Called once per session with its result; the result stays owned by the
 * session and is freed after the callback returns. */
typedef void (*smtp_done_cb)(void *arg, smtp_result_t *res);

/* dane: the host's usable TLSA records (NULL, 0 for none); they must stay
 * valid until the callback has run. */
smtp_session_t *smtp_start(uv_loop_t *loop, const smtp_opts_t *o, const char *host, const char *ip,
                           int port, const dane_rec_t *dane, int ndane, smtp_done_cb cb, void *arg);
/* Restricts the session's TLS handshake to one protocol version (--enum);
 * call right after smtp_start. */
void smtp_restrict_version(smtp_session_t *s, int version);
/* Ends a session early (scan interrupted); its callback still runs. */
void smtp_abort(smtp_session_t *s);

#endif
