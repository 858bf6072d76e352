/*
 * ratelimit.h - who may open a connection now.
 *
 * The gate applies, to every request:
 *   - a global cap on sessions in flight (concurrency);
 *   - a cap on sessions in flight to one IP address (per_ip);
 *   - a cap on sessions in flight to one network, an IPv4 /24 or an IPv6 /48
 *     (per_prefix; an IPv4-mapped IPv6 address counts in its IPv4 /24);
 *   - a minimum time between the starts (grants) of two connections to one IP
 *     (min_interval_ms, counted from the return of the grant's callback, where
 *     the caller starts to connect), and a back-off an IP can be put in
 *     (rl_backoff);
 *   - a global rate of new connections (a token bucket, rate).
 *
 * An IP is the text the caller passes (the key); text that inet_pton() does
 * not read as an IPv4 or IPv6 address is a key of its own with no prefix.
 *
 * Callers embed an rl_req_t in their own struct and call rl_acquire(); the
 * callback runs when the request may connect (or with cancelled = 1 at
 * shutdown). Every granted request is paired with one rl_release().
 *
 * Order: the requests of one IP are granted in the order they were made. An
 * IP whose next request may go as far as its own limits, its prefix and its
 * times are concerned is "ready"; ready IPs are served in the order they
 * became ready, each one request at a time (an IP with more requests goes to
 * the back of the line after each grant). A request that waits for its IP,
 * its prefix, an interval or a back-off never holds up another IP's request
 * that could go.
 *
 * Memory: one small entry per IP, and one per prefix, only while it has a
 * session in flight, a waiting request, or (IP) an interval or back-off not
 * yet over (for a prefix: while one of its IPs has an entry). Entries whose
 * time is over are freed by the gate's timer while the loop runs, with no
 * new traffic needed. That timer does not keep the loop alive by itself
 * once no request waits.
 *
 * Times (intervals, back-offs) are measured on uv_hrtime(); the rate on the
 * loop's clock (uv_now). Every call is O(1) (amortized) or O(log n) (n: IPs
 * with a time constraint) except rl_cancel_all, which walks every entry.
 */
#ifndef MXSCAN_RATELIMIT_H
#define MXSCAN_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct rl_limits {
    int concurrency;     /* sessions in flight, all IPs (at least 1) */
    int per_ip;          /* sessions in flight to one IP (at least 1) */
    double rate;         /* new connections per second; 0 = unlimited */
    int per_prefix;      /* sessions in flight to one IPv4 /24 or IPv6 /48; 0 = no cap */
    int min_interval_ms; /* least time between two grants to one IP; 0 = none */
} rl_limits_t;

typedef struct rl_req rl_req_t;
typedef void (*rl_go_cb)(rl_req_t *req, int cancelled);
/* Owned by the gate from rl_acquire() until the callback (cancelled) or the
 * rl_release() (granted). */
struct rl_req {
    rl_req_t *next;
    struct rl_ip *ip;
    rl_go_cb cb;
};

typedef struct rl rl_t;

/* Creates a gate on loop with the limits (copied). NULL when out of memory. */
rl_t *rl_new(uv_loop_t *loop, const rl_limits_t *lim);
/* Asks to connect to ip (an address as text, or any other key). cb(req, 0)
 * runs when the request may go: at once, from inside rl_acquire, if nothing
 * holds it, else later from the loop or from an rl_release(). cb(req, 1) runs
 * if it is cancelled (rl_cancel_all) or the gate is out of memory (then also
 * from inside rl_acquire). Callbacks may call rl_acquire, rl_release and
 * rl_backoff. */
void rl_acquire(rl_t *rl, rl_req_t *req, const char *ip, rl_go_cb cb);
/* A granted session ended: frees its places (IP, prefix, global) for the
 * next requests; may grant them from inside this call. */
void rl_release(rl_t *rl, rl_req_t *req);
/* No new grant for ip before now + ms (on uv_hrtime). Extends a back-off or
 * interval already running, never shortens it; does not touch sessions in
 * flight. Requests of other IPs, even in the same prefix, are not held up.
 * Call it after a 421 or a 4xx greeting; ms = 0 does nothing. */
void rl_backoff(rl_t *rl, const char *ip, uint64_t ms);
/* Calls every waiting request's callback with cancelled = 1, once each,
 * whatever it waits for. Sessions in flight are left alone. */
void rl_cancel_all(rl_t *rl);
/* Sessions granted and not released. */
size_t rl_inflight(const rl_t *rl);
/* Requests neither granted nor cancelled. */
size_t rl_waiting(const rl_t *rl);
/* Entries the gate holds: per-IP entries plus per-prefix entries (these only
 * with per_prefix > 0). For tests and memory checks: 0 once nothing is in
 * flight or waiting and every interval and back-off is over. */
size_t rl_entries(const rl_t *rl);
/* Closes the timer; frees rl and its entries once the loop has run the
 * close. Requests still waiting are dropped without a callback. */
void rl_free(rl_t *rl);

#endif
