/*
 * dns.c - DNS on the libuv loop through c-ares, and the DNS answer parser.
 *
 * c-ares 1.18's helpers strip the header and lack TLSA, so this file builds
 * its own queries (RD+AD, EDNS0 with DO, optional CD; RFC 6840 section 5.7
 * says a resolver sets AD only for a client that shows it understands it)
 * and sends them raw with ares_send(). The answer comes back whole and is
 * parsed here: rcode and AD from the header, CNAME chains, and the records
 * of the type asked. Names are decompressed with a bound on pointer jumps
 * and every read is bounds-checked: the bytes come from the network.
 *
 * Event wiring follows libuv's own c-ares example: one uv_poll_t per c-ares
 * socket, created and stopped from the socket-state callback, and a
 * uv_timer_t for c-ares' deadlines. That timer is armed lazily: c-ares 1.18's
 * ares_timeout() walks every query in flight (up to DNS_MAX_INFLIGHT), and
 * calling it after every query and every answer cost ~2% of a scan's CPU. A
 * deadline only ever moves later while queries are in flight (a new query or
 * a retry gets now + timeout, an answer removes one), so a timer armed for
 * the earliest deadline is never late: it is armed when the resolver goes
 * from idle to busy, re-armed from ares_timeout() only when it fires (early,
 * if that query was answered), and stopped when nothing is pending.
 */
#include "scanner/dns.h"
#include "scanner/log.h"

#include <ares.h>
#include <arpa/inet.h>
#include <ctype.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

typedef struct dns_poll {
    uv_poll_t handle;
    ares_socket_t fd;
    dns_t *owner;
    struct dns_poll *next;
} dns_poll_t;

typedef struct dns_req {
    struct dns_req *next; /* waiting list */
    dns_t *owner;
    dns_cb cb;
    void *arg;
    uint16_t id;
    int type;
    int qlen;
    uint8_t qbuf[300];
    char name[DNS_NAME_MAX + 1];
} dns_req_t;

/* Queries on the wire at once. Above this, answers arriving in a burst
 * overflow the UDP receive buffer and each lost one costs a whole timeout;
 * later queries wait in a FIFO instead. */
#define DNS_MAX_INFLIGHT 256

struct dns {
    uv_loop_t *loop;
    ares_channel channel;
    uv_timer_t timer;
    dns_poll_t *polls;
    size_t pending;  /* accepted and not yet answered, waiting ones included */
    size_t inflight; /* handed to c-ares */
    dns_req_t *wait_head, *wait_tail;
    int closing;
    int open_handles;       /* timer + polls not yet closed */
    uint8_t ids[65536 / 8]; /* query ids in flight: never reuse one */
    uint64_t rng;           /* state of next_id() */
};

static const char *status_names[] = {"NOERROR", "NODATA",  "NXDOMAIN", "SERVFAIL", "REFUSED",
                                     "TIMEOUT", "FORMERR", "NETERR",   "CANCELLED"};

/* Name of a status as stored in the database. */
const char *dns_status_name(dns_status_t s)
{
    return (unsigned)s < sizeof status_names / sizeof *status_names ? status_names[s] : "?";
}

/* Mnemonic of an RR type. */
const char *dns_type_name(int type)
{
    switch (type) {
    case DNS_T_A:
        return "A";
    case DNS_T_AAAA:
        return "AAAA";
    case DNS_T_MX:
        return "MX";
    case DNS_T_TXT:
        return "TXT";
    case DNS_T_TLSA:
        return "TLSA";
    case DNS_T_CNAME:
        return "CNAME";
    default:
        return "?";
    }
}

/* ---- wire format ---------------------------------------------------- */

/* Builds a query message; see dns.h. */
int dns_build_query(uint8_t *buf, size_t buflen, uint16_t id, const char *name, int type,
                    unsigned flags)
{
    size_t nlen = strlen(name);
    if (nlen > 0 && name[nlen - 1] == '.') {
        nlen--;
    }
    if (nlen > 0 && name[nlen - 1] == '.') {
        return -1; /* an empty last label */
    }
    /* header 12 + name (nlen + 2) + qtype/qclass 4 + OPT RR 11 */
    if (nlen > 253 || buflen < 12 + nlen + 2 + 4 + 11) {
        return -1;
    }
    uint8_t *p = buf;
    *p++ = (uint8_t)(id >> 8);
    *p++ = (uint8_t)id;
    *p++ = 0x01;                                   /* RD */
    *p++ = 0x20 | ((flags & DNS_Q_CD) ? 0x10 : 0); /* AD (RFC 6840 5.7), CD */
    *p++ = 0, *p++ = 1;                            /* QDCOUNT */
    *p++ = 0, *p++ = 0;                            /* ANCOUNT */
    *p++ = 0, *p++ = 0;                            /* NSCOUNT */
    *p++ = 0, *p++ = 1;                            /* ARCOUNT: OPT */
    size_t i = 0;
    while (i < nlen) {
        size_t j = i;
        while (j < nlen && name[j] != '.') {
            j++;
        }
        size_t l = j - i;
        if (l == 0 || l > 63) {
            return -1;
        }
        *p++ = (uint8_t)l;
        memcpy(p, name + i, l);
        p += l;
        i = j + 1;
    }
    *p++ = 0;
    *p++ = (uint8_t)(type >> 8);
    *p++ = (uint8_t)type;
    *p++ = 0, *p++ = 1; /* IN */
    /* OPT: root owner, type 41, UDP size 1232 (DNS flag day 2020), DO bit. */
    *p++ = 0;
    *p++ = 0, *p++ = 41;
    *p++ = 1232 >> 8, *p++ = 1232 & 0xff;
    *p++ = 0, *p++ = 0;    /* extended rcode, version */
    *p++ = 0x80, *p++ = 0; /* DO */
    *p++ = 0, *p++ = 0;    /* RDLEN */
    return (int)(p - buf);
}

/* Reads a possibly compressed name at *off into out (lower case, no
 * trailing dot, "" for the root). Advances *off past the name in place. */
static int read_name(const uint8_t *buf, size_t len, size_t *off, char *out, size_t outlen)
{
    size_t pos = *off, o = 0;
    int jumped = 0, jumps = 0;
    for (;;) {
        if (pos >= len) {
            return -1;
        }
        uint8_t l = buf[pos];
        if ((l & 0xc0) == 0xc0) {
            if (pos + 1 >= len || ++jumps > 32) {
                return -1;
            }
            size_t target = ((size_t)(l & 0x3f) << 8) | buf[pos + 1];
            if (!jumped) {
                *off = pos + 2;
            }
            jumped = 1;
            if (target >= len) {
                return -1;
            }
            pos = target;
            continue;
        }
        if (l & 0xc0) {
            return -1; /* extended label types are not used */
        }
        pos++;
        if (l == 0) {
            break;
        }
        if (pos + l > len || o + l + 2 > outlen) {
            return -1;
        }
        if (o > 0) {
            out[o++] = '.';
        }
        for (size_t k = 0; k < l; k++) {
            out[o++] = (char)tolower(buf[pos + k]);
        }
        pos += l;
    }
    out[o] = 0;
    if (!jumped) {
        *off = pos;
    }
    return 0;
}

/* Compares two names ignoring case and a trailing dot. */
static int name_eq(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la && a[la - 1] == '.') {
        la--;
    }
    if (lb && b[lb - 1] == '.') {
        lb--;
    }
    return la == lb && strncasecmp(a, b, la) == 0;
}

/* Frees what dns_parse allocated. */
void dns_result_clear(dns_result_t *res)
{
    for (int i = 0; i < res->nrr; i++) {
        free(res->rr[i].data);
    }
    free(res->rr);
    res->rr = NULL;
    res->nrr = 0;
}

/* Stores one record of the asked type; returns -1 on malformed rdata. */
static int take_rr(const uint8_t *buf, size_t len, size_t rd, size_t rdlen, int type, uint32_t ttl,
                   dns_result_t *res)
{
    dns_rr_t rr;
    memset(&rr, 0, sizeof rr);
    rr.type = (uint16_t)type;
    rr.ttl = ttl;
    size_t end = rd + rdlen;
    switch (type) {
    case DNS_T_A:
        if (rdlen != 4) {
            return -1;
        }
        inet_ntop(AF_INET, buf + rd, rr.text, sizeof rr.text);
        break;
    case DNS_T_AAAA:
        if (rdlen != 16) {
            return -1;
        }
        inet_ntop(AF_INET6, buf + rd, rr.text, sizeof rr.text);
        break;
    case DNS_T_MX: {
        if (rdlen < 3) {
            return -1;
        }
        rr.pref = (uint16_t)(buf[rd] << 8 | buf[rd + 1]);
        size_t off = rd + 2;
        if (read_name(buf, len, &off, rr.text, sizeof rr.text) < 0 || off > end) {
            return -1;
        }
        if (rr.text[0] == 0) {
            strcpy(rr.text, "."); /* null MX, RFC 7505 */
        }
        break;
    }
    case DNS_T_TXT: {
        /* Joins the character-strings, as RFC 7208 3.3 and RFC 8461 3.1 say. */
        rr.data = malloc(rdlen + 1);
        if (!rr.data) {
            return -1;
        }
        size_t p = rd, o = 0;
        while (p < end) {
            size_t l = buf[p++];
            if (p + l > end) {
                free(rr.data);
                return -1;
            }
            memcpy(rr.data + o, buf + p, l);
            o += l;
            p += l;
        }
        rr.data[o] = 0;
        rr.datalen = o;
        break;
    }
    case DNS_T_TLSA:
        if (rdlen < 3) {
            return -1;
        }
        rr.usage = buf[rd], rr.selector = buf[rd + 1], rr.mtype = buf[rd + 2];
        rr.datalen = rdlen - 3;
        rr.data = malloc(rr.datalen ? rr.datalen : 1);
        if (!rr.data) {
            return -1;
        }
        memcpy(rr.data, buf + rd + 3, rr.datalen);
        break;
    default:
        return 0;
    }
    dns_rr_t *n = realloc(res->rr, (size_t)(res->nrr + 1) * sizeof *n);
    if (!n) {
        free(rr.data);
        return -1;
    }
    res->rr = n;
    res->rr[res->nrr++] = rr;
    return 0;
}

/* Parses an answer message; see dns.h. */
int dns_parse(const uint8_t *buf, size_t len, const char *qname, int qtype, dns_result_t *res)
{
    memset(res, 0, sizeof *res);
    res->rcode = -1;
    res->status = DNS_FORMERR;
    if (len < 12) {
        return -1;
    }
    res->rcode = buf[3] & 0x0f;
    res->ad = (buf[3] & 0x20) != 0;
    res->truncated = (buf[2] & 0x02) != 0;
    unsigned qd = (unsigned)(buf[4] << 8 | buf[5]), an = (unsigned)(buf[6] << 8 | buf[7]);
    size_t off = 12;
    char name[DNS_NAME_MAX + 1];
    for (unsigned i = 0; i < qd; i++) {
        if (read_name(buf, len, &off, name, sizeof name) < 0 || off + 4 > len) {
            return -1;
        }
        off += 4;
    }
    /* Follows the CNAME chain from qname; records of qtype at its end count. */
    char cur[DNS_NAME_MAX + 1];
    snprintf(cur, sizeof cur, "%s", qname);
    size_t ql = strlen(cur);
    if (ql && cur[ql - 1] == '.') {
        cur[ql - 1] = 0;
    }
    for (unsigned i = 0; i < an; i++) {
        if (read_name(buf, len, &off, name, sizeof name) < 0 || off + 10 > len) {
            dns_result_clear(res);
            return -1;
        }
        int type = buf[off] << 8 | buf[off + 1];
        uint32_t ttl = (uint32_t)buf[off + 4] << 24 | (uint32_t)buf[off + 5] << 16 |
                       (uint32_t)buf[off + 6] << 8 | buf[off + 7];
        size_t rdlen = (size_t)(buf[off + 8] << 8 | buf[off + 9]);
        off += 10;
        if (off + rdlen > len) {
            dns_result_clear(res);
            return -1;
        }
        if (type == DNS_T_CNAME && qtype != DNS_T_CNAME && name_eq(name, cur)) {
            size_t o2 = off;
            char target[DNS_NAME_MAX + 1];
            if (read_name(buf, len, &o2, target, sizeof target) < 0) {
                dns_result_clear(res);
                return -1;
            }
            snprintf(cur, sizeof cur, "%s", target);
            snprintf(res->cname, sizeof res->cname, "%s", target);
        } else if (type == qtype && name_eq(name, cur)) {
            if (take_rr(buf, len, off, rdlen, type, ttl, res) < 0) {
                dns_result_clear(res);
                return -1;
            }
        }
        off += rdlen;
    }
    switch (res->rcode) {
    case 0:
        res->status = res->nrr > 0 ? DNS_NOERROR : DNS_NODATA;
        break;
    case 2:
        res->status = DNS_SERVFAIL;
        break;
    case 3:
        res->status = DNS_NXDOMAIN;
        break;
    case 5:
        res->status = DNS_REFUSED;
        break;
    default:
        res->status = DNS_FORMERR;
        break;
    }
    return 0;
}

/* ---- c-ares on libuv ------------------------------------------------ */

static void rearm_timer(dns_t *d);
static void keep_timer(dns_t *d);
static void send_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen);

/* Frees a poll handle once libuv is done with it. */
static void poll_close_cb(uv_handle_t *h)
{
    dns_poll_t *p = h->data;
    dns_t *d = p->owner;
    free(p);
    if (--d->open_handles == 0 && d->closing) {
        free(d);
    }
}

/* Hands socket readiness to c-ares. */
static void poll_cb(uv_poll_t *h, int status, int events)
{
    dns_poll_t *p = h->data;
    ares_socket_t rfd = ARES_SOCKET_BAD, wfd = ARES_SOCKET_BAD;
    if (status < 0 || (events & UV_READABLE)) {
        rfd = p->fd;
    }
    if (status < 0 || (events & UV_WRITABLE)) {
        wfd = p->fd;
    }
    dns_t *d = p->owner;
    ares_process_fd(d->channel, rfd, wfd);
    keep_timer(d);
}

/* c-ares tells which sockets to watch; we keep one uv_poll_t per socket. */
static void sock_state_cb(void *data, ares_socket_t fd, int readable, int writable)
{
    dns_t *d = data;
    dns_poll_t **pp = &d->polls, *p = NULL;
    while (*pp && (*pp)->fd != fd) {
        pp = &(*pp)->next;
    }
    p = *pp;
    if (readable || writable) {
        if (!p) {
            p = calloc(1, sizeof *p);
            if (!p) {
                return;
            }
            p->fd = fd;
            p->owner = d;
            p->handle.data = p;
            if (uv_poll_init_socket(d->loop, &p->handle, fd) != 0) {
                free(p);
                return;
            }
            d->open_handles++;
            p->next = d->polls;
            d->polls = p;
        }
        uv_poll_start(&p->handle, (readable ? UV_READABLE : 0) | (writable ? UV_WRITABLE : 0),
                      poll_cb);
    } else if (p) {
        *pp = p->next;
        uv_poll_stop(&p->handle);
        uv_close((uv_handle_t *)&p->handle, poll_close_cb);
    }
}

/* Runs c-ares' own timeouts and retries. */
static void timer_cb(uv_timer_t *t)
{
    dns_t *d = t->data;
    ares_process_fd(d->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD);
    rearm_timer(d);
}

/* Arms the timer for c-ares' next deadline, if anything is in flight. */
static void rearm_timer(dns_t *d)
{
    if (d->closing) {
        return;
    }
    struct timeval tv, *tvp = ares_timeout(d->channel, NULL, &tv);
    if (!tvp) {
        uv_timer_stop(&d->timer);
        return;
    }
    uint64_t ms = (uint64_t)tvp->tv_sec * 1000 + (uint64_t)(tvp->tv_usec + 999) / 1000;
    uv_timer_start(&d->timer, timer_cb, ms ? ms : 1, 0);
}

/* After an event: stops the timer when nothing is pending, arms it when it
 * is not running; a running timer is left alone (see the file comment). */
static void keep_timer(dns_t *d)
{
    if (d->closing) {
        return;
    }
    if (d->pending == 0) {
        uv_timer_stop(&d->timer);
    } else if (!uv_is_active((uv_handle_t *)&d->timer)) {
        rearm_timer(d);
    }
}

/* Creates the resolver; see dns.h. */
dns_t *dns_new(uv_loop_t *loop, const char *servers, int timeout_ms, int tries, char *err,
               size_t errlen)
{
    static int lib_init;
    if (!lib_init) {
        int r = ares_library_init(ARES_LIB_INIT_ALL);
        if (r != ARES_SUCCESS) {
            snprintf(err, errlen, "c-ares: %s", ares_strerror(r));
            return NULL;
        }
        lib_init = 1;
    }
    dns_t *d = calloc(1, sizeof *d);
    if (!d) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    d->loop = loop;
    if (getrandom(&d->rng, sizeof d->rng, 0) != sizeof d->rng || d->rng == 0) {
        RAND_bytes((unsigned char *)&d->rng, sizeof d->rng);
        d->rng |= 1;
    }
    struct ares_options o;
    memset(&o, 0, sizeof o);
    o.sock_state_cb = sock_state_cb;
    o.sock_state_cb_data = d;
    o.timeout = timeout_ms;
    o.tries = tries;
    /* A truncated UDP answer is retried over TCP by c-ares itself.
     * NOCHECKRESP: c-ares would otherwise turn SERVFAIL and REFUSED answers
     * into "could not contact DNS servers"; the validating resolver's
     * SERVFAIL is a fact we store (it is how a bogus zone shows). */
    o.flags = ARES_FLAG_NOSEARCH | ARES_FLAG_NOALIASES | ARES_FLAG_NOCHECKRESP;
    /* With at most DNS_MAX_INFLIGHT answers due at once, a 1 MiB receive
     * buffer (capped by the kernel at net.core.rmem_max) holds any burst. */
    o.socket_receive_buffer_size = 1 << 20;
    int mask = ARES_OPT_SOCK_STATE_CB | ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES | ARES_OPT_FLAGS |
               ARES_OPT_SOCK_RCVBUF;
    int r = ares_init_options(&d->channel, &o, mask);
    if (r != ARES_SUCCESS) {
        snprintf(err, errlen, "c-ares init: %s", ares_strerror(r));
        free(d);
        return NULL;
    }
    if (servers && *servers) {
        r = ares_set_servers_ports_csv(d->channel, servers);
        if (r != ARES_SUCCESS) {
            snprintf(err, errlen, "bad resolver list '%s': %s", servers, ares_strerror(r));
            ares_destroy(d->channel);
            free(d);
            return NULL;
        }
    }
    uv_timer_init(loop, &d->timer);
    d->timer.data = d;
    d->open_handles = 1;
    return d;
}

/* Maps a c-ares failure to our status. */
static dns_status_t map_ares_status(int status)
{
    switch (status) {
    case ARES_ESERVFAIL:
        return DNS_SERVFAIL;
    case ARES_EREFUSED:
        return DNS_REFUSED;
    case ARES_ETIMEOUT:
        return DNS_TIMEOUT;
    case ARES_ENOTFOUND:
        return DNS_NXDOMAIN;
    case ARES_ENODATA:
        return DNS_NODATA;
    case ARES_EDESTRUCTION:
    case ARES_ECANCELLED:
        return DNS_CANCELLED;
    case ARES_EFORMERR:
    case ARES_EBADRESP:
    case ARES_ENOTIMP:
        return DNS_FORMERR;
    default:
        return DNS_NETERR;
    }
}

/* Hands waiting queries to c-ares while there is room. */
static void launch_waiting(dns_t *d)
{
    while (d->wait_head && d->inflight < DNS_MAX_INFLIGHT && !d->closing) {
        dns_req_t *q = d->wait_head;
        d->wait_head = q->next;
        if (!d->wait_head) {
            d->wait_tail = NULL;
        }
        d->inflight++;
        ares_send(d->channel, q->qbuf, q->qlen, send_cb, q);
    }
}

/* Completion of ares_send: parse and hand the result to our caller. */
static void send_cb(void *arg, int status, int timeouts, unsigned char *abuf, int alen)
{
    (void)timeouts;
    dns_req_t *q = arg;
    dns_t *d = q->owner;
    dns_result_t res;
    if (status == ARES_SUCCESS && abuf) {
        dns_parse(abuf, (size_t)alen, q->name, q->type, &res);
    } else {
        memset(&res, 0, sizeof res);
        res.rcode = -1;
        res.status = map_ares_status(status);
    }
    if (status != ARES_SUCCESS) {
        LOG_DEBUG("dns %s %s: c-ares %s", q->name, dns_type_name(q->type), ares_strerror(status));
    }
    d->ids[q->id >> 3] &= (uint8_t) ~(1u << (q->id & 7));
    d->pending--;
    d->inflight--;
    q->cb(q->arg, &res);
    dns_result_clear(&res);
    free(q);
    launch_waiting(d);
}

/* The next query id: xorshift64* seeded from getrandom(). Ids only need to
 * be unpredictable to an off-path spoofer, and OpenSSL's RAND_bytes costs a
 * getpid() system call per call for its fork check. */
static uint16_t next_id(dns_t *d)
{
    uint64_t x = d->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    d->rng = x;
    return (uint16_t)((x * 0x2545F4914F6CDD1Dull) >> 48);
}

/* Starts one lookup; see dns.h. */
int dns_query(dns_t *d, const char *name, int type, unsigned flags, dns_cb cb, void *arg)
{
    if (d->closing) {
        return -1;
    }
    dns_req_t *q = calloc(1, sizeof *q);
    if (!q) {
        return -1;
    }
    /* c-ares matches answers by id (and question); ids in flight stay unique. */
    uint16_t id;
    do {
        id = next_id(d);
    } while (d->ids[id >> 3] & (1u << (id & 7)));
    int len = dns_build_query(q->qbuf, sizeof q->qbuf, id, name, type, flags);
    if (len < 0) {
        free(q);
        return -1;
    }
    q->qlen = len;
    d->ids[id >> 3] |= (uint8_t)(1u << (id & 7));
    q->owner = d;
    q->cb = cb;
    q->arg = arg;
    q->id = id;
    q->type = type;
    snprintf(q->name, sizeof q->name, "%s", name);
    d->pending++;
    if (d->wait_tail) {
        d->wait_tail->next = q;
    } else {
        d->wait_head = q;
    }
    d->wait_tail = q;
    launch_waiting(d);
    keep_timer(d);
    return 0;
}

/* Lookups in flight. */
size_t dns_pending(const dns_t *d)
{
    return d->pending;
}

/* Closes the timer; d is freed when its last handle is closed. */
static void timer_close_cb(uv_handle_t *h)
{
    dns_t *d = h->data;
    if (--d->open_handles == 0) {
        free(d);
    }
}

/* Cancels all lookups and closes the handles; see dns.h. */
void dns_free(dns_t *d)
{
    if (!d) {
        return;
    }
    /* ares_destroy calls every pending callback with ARES_EDESTRUCTION and
     * closes its sockets, which stops and closes our poll handles. */
    d->closing = 1;
    ares_destroy(d->channel);
    /* Queries that never reached c-ares are cancelled here, in order. */
    while (d->wait_head) {
        dns_req_t *q = d->wait_head;
        d->wait_head = q->next;
        dns_result_t res;
        memset(&res, 0, sizeof res);
        res.rcode = -1;
        res.status = DNS_CANCELLED;
        q->cb(q->arg, &res);
        free(q);
    }
    d->wait_tail = NULL;
    uv_timer_stop(&d->timer);
    uv_close((uv_handle_t *)&d->timer, timer_close_cb);
}
