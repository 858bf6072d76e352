/*
 * ratelimit.h - who may open a connection now: a global cap on sessions in
 * flight, a cap per IP address, and a global rate of new connections.
 *
 * Callers embed an rl_req_t in their own struct and call rl_acquire(); the
 * callback runs when the request may connect (or with cancelled = 1 at
 * shutdown). Every granted request is paired with one rl_release().
 * Memory is one small entry per IP that has a session or a waiter.
 */
#ifndef MXSCAN_RATELIMIT_H
#define MXSCAN_RATELIMIT_H

#include <stddef.h>
#include <uv.h>

typedef struct rl_limits {
    int concurrency; /* sessions in flight, all IPs */
    int per_ip;      /* sessions in flight to one IP */
    double rate;     /* new connections per second; 0 = unlimited */
} rl_limits_t;

typedef struct rl_req rl_req_t;
typedef void (*rl_go_cb)(rl_req_t *req, int cancelled);
struct rl_req {
    rl_req_t *next;
    struct rl_ip *ip;
    rl_go_cb cb;
};

typedef struct rl rl_t;

rl_t *rl_new(uv_loop_t *loop, const rl_limits_t *lim);
void rl_acquire(rl_t *rl, rl_req_t *req, const char *ip, rl_go_cb cb);
void rl_release(rl_t *rl, rl_req_t *req);
/* Calls every waiting request's callback with cancelled = 1. */
void rl_cancel_all(rl_t *rl);
size_t rl_inflight(const rl_t *rl);
size_t rl_waiting(const rl_t *rl);
/* Closes the timer; frees rl once the loop has run the close. */
void rl_free(rl_t *rl);

#endif
