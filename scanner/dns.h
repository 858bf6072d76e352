/*
 * dns.h - DNS lookups on the libuv loop through c-ares, and the parser of
 * DNS answers.
 *
 * Queries are built here (RD, AD and optionally CD set, EDNS0 with the DO
 * bit) and sent raw with ares_send(), so that the answer's header, and with
 * it the AD bit the validating resolver set, reaches us untouched. c-ares
 * sockets are watched with one uv_poll_t each (ARES_OPT_SOCK_STATE_CB) and
 * c-ares timeouts run on a uv_timer_t: no blocking call, no thread.
 * dns_parse() is pure and works on recorded bytes.
 */
#ifndef MXSCAN_DNS_H
#define MXSCAN_DNS_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

enum {
    DNS_T_A = 1,
    DNS_T_CNAME = 5,
    DNS_T_MX = 15,
    DNS_T_TXT = 16,
    DNS_T_AAAA = 28,
    DNS_T_TLSA = 52
};

/* Outcome of one lookup, as stored in the database. */
typedef enum dns_status {
    DNS_NOERROR = 0, /* answer with at least one record of the asked type */
    DNS_NODATA,      /* NOERROR, but no record of that type */
    DNS_NXDOMAIN,
    DNS_SERVFAIL,
    DNS_REFUSED,
    DNS_TIMEOUT,
    DNS_FORMERR,   /* malformed answer, or FORMERR/NOTIMP from the server */
    DNS_NETERR,    /* could not talk to any resolver */
    DNS_CANCELLED, /* scan shutting down */
} dns_status_t;

/* Query flags. */
enum { DNS_Q_CD = 1u << 0 }; /* checking disabled: ask for the unvalidated answer */

#define DNS_NAME_MAX 255

typedef struct dns_rr {
    uint16_t type;
    uint32_t ttl;
    uint16_t pref;                  /* MX preference */
    uint8_t usage, selector, mtype; /* TLSA */
    char text[DNS_NAME_MAX + 1];    /* MX target ("." for the null MX), A/AAAA address */
    unsigned char *data;            /* TXT (character-strings joined) or TLSA association data */
    size_t datalen;
} dns_rr_t;

typedef struct dns_result {
    dns_status_t status;
    int rcode;                    /* from the header, -1 without an answer */
    int ad;                       /* AD bit of the answer */
    int truncated;                /* TC bit */
    char cname[DNS_NAME_MAX + 1]; /* canonical name, when the name was a CNAME */
    int nrr;
    dns_rr_t *rr; /* records of the asked type (malloc) */
} dns_result_t;

typedef struct dns dns_t;
typedef void (*dns_cb)(void *arg, const dns_result_t *res);

/* servers: "ADDR[:PORT][,...]" ("[v6]:port" for IPv6 with a port), or NULL
 * for /etc/resolv.conf. timeout_ms per try; tries per query. */
dns_t *dns_new(uv_loop_t *loop, const char *servers, int timeout_ms, int tries, char *err,
               size_t errlen);
/* Starts a lookup; cb runs later on the loop, exactly once. 0 or -1. */
int dns_query(dns_t *d, const char *name, int type, unsigned flags, dns_cb cb, void *arg);
/* Lookups in flight. */
size_t dns_pending(const dns_t *d);
/* Cancels everything (callbacks get DNS_CANCELLED) and closes the handles;
 * the loop must run for the close to finish, after which d is freed. */
void dns_free(dns_t *d);

/* Builds a query into buf (RD, AD, EDNS0 DO; CD with DNS_Q_CD). Returns its
 * length, or -1 if name is not a valid domain name or buf too small. */
int dns_build_query(uint8_t *buf, size_t buflen, uint16_t id, const char *name, int type,
                    unsigned flags);
/* Parses an answer to a query for (qname, qtype). Fills res (free it with
 * dns_result_clear). Returns 0, or -1 when the message is malformed (res
 * then has status DNS_FORMERR). */
int dns_parse(const uint8_t *buf, size_t len, const char *qname, int qtype, dns_result_t *res);
void dns_result_clear(dns_result_t *res);

const char *dns_status_name(dns_status_t s);
const char *dns_type_name(int type);

#endif
