/*
 * ratelimit.c - the connection gate: global concurrency, per-IP concurrency
 * and a token bucket for the rate of new connections.
 *
 * Requests whose IP has room wait in one FIFO "ready" queue; requests for an
 * IP that is already at its cap wait on that IP's own queue and move to the
 * ready queue when one of its sessions ends. So a busy IP never blocks the
 * others, and every step is O(1). Limits are data (rl_limits_t), set once
 * from flags (zmap's habit).
 */
#include "scanner/ratelimit.h"

#include <stdlib.h>
#include <string.h>

typedef struct rl_ip {
    struct rl_ip *hnext;
    int reserved; /* active sessions + requests in the ready queue */
    rl_req_t *wait_head, *wait_tail;
    char addr[46];
} rl_ip_t;

struct rl {
    uv_loop_t *loop;
    uv_timer_t timer;
    rl_limits_t lim;
    rl_req_t *ready_head, *ready_tail;
    size_t inflight, waiting, nips, nbuckets;
    rl_ip_t **buckets;
    double tokens, burst;
    uint64_t last_refill;
    int dispatching;
};

static void dispatch(rl_t *rl);

/* FNV-1a of an address string. */
static size_t hash_str(const char *s)
{
    size_t h = 1469598103934665603ull;
    while (*s) {
        h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    }
    return h;
}

/* Finds or creates the entry of an IP. */
static rl_ip_t *ip_get(rl_t *rl, const char *addr)
{
    size_t b = hash_str(addr) & (rl->nbuckets - 1);
    for (rl_ip_t *e = rl->buckets[b]; e; e = e->hnext) {
        if (strcmp(e->addr, addr) == 0) {
            return e;
        }
    }
    rl_ip_t *e = calloc(1, sizeof *e);
    if (!e) {
        return NULL;
    }
    strncpy(e->addr, addr, sizeof e->addr - 1);
    e->hnext = rl->buckets[b];
    rl->buckets[b] = e;
    rl->nips++;
    return e;
}

/* Drops the entry of an IP that has no session and no waiter. */
static void ip_maybe_free(rl_t *rl, rl_ip_t *e)
{
    if (e->reserved > 0 || e->wait_head) {
        return;
    }
    size_t b = hash_str(e->addr) & (rl->nbuckets - 1);
    for (rl_ip_t **pp = &rl->buckets[b]; *pp; pp = &(*pp)->hnext) {
        if (*pp == e) {
            *pp = e->hnext;
            free(e);
            rl->nips--;
            return;
        }
    }
}

/* Appends to the ready queue. */
static void ready_push(rl_t *rl, rl_req_t *r)
{
    r->next = NULL;
    if (rl->ready_tail) {
        rl->ready_tail->next = r;
    } else {
        rl->ready_head = r;
    }
    rl->ready_tail = r;
}

/* Creates the gate. */
rl_t *rl_new(uv_loop_t *loop, const rl_limits_t *lim)
{
    rl_t *rl = calloc(1, sizeof *rl);
    if (!rl) {
        return NULL;
    }
    rl->nbuckets = 4096;
    rl->buckets = calloc(rl->nbuckets, sizeof *rl->buckets);
    if (!rl->buckets) {
        free(rl);
        return NULL;
    }
    rl->loop = loop;
    rl->lim = *lim;
    if (rl->lim.concurrency < 1) {
        rl->lim.concurrency = 1;
    }
    if (rl->lim.per_ip < 1) {
        rl->lim.per_ip = 1;
    }
    /* A tenth of a second's worth of burst, at least one connection. */
    rl->burst = lim->rate > 0 ? (lim->rate / 10 > 1 ? lim->rate / 10 : 1) : 0;
    rl->tokens = rl->burst;
    rl->last_refill = uv_now(loop);
    uv_timer_init(loop, &rl->timer);
    rl->timer.data = rl;
    return rl;
}

/* Token bucket refill from the loop's clock. */
static void refill(rl_t *rl)
{
    uint64_t now = uv_now(rl->loop);
    rl->tokens += (double)(now - rl->last_refill) * rl->lim.rate / 1000.0;
    if (rl->tokens > rl->burst) {
        rl->tokens = rl->burst;
    }
    rl->last_refill = now;
}

/* Timer: tokens may be there now. */
static void timer_cb(uv_timer_t *t)
{
    dispatch(t->data);
}

/* Grants ready requests while the limits allow. */
static void dispatch(rl_t *rl)
{
    if (rl->dispatching) {
        return; /* a callback released or acquired: the outer loop goes on */
    }
    rl->dispatching = 1;
    while (rl->ready_head && rl->inflight < (size_t)rl->lim.concurrency) {
        if (rl->lim.rate > 0) {
            refill(rl);
            if (rl->tokens < 1) {
                uint64_t ms = (uint64_t)((1 - rl->tokens) * 1000.0 / rl->lim.rate) + 1;
                uv_timer_start(&rl->timer, timer_cb, ms, 0);
                break;
            }
            rl->tokens -= 1;
        }
        rl_req_t *r = rl->ready_head;
        rl->ready_head = r->next;
        if (!rl->ready_head) {
            rl->ready_tail = NULL;
        }
        rl->waiting--;
        rl->inflight++;
        r->cb(r, 0);
    }
    rl->dispatching = 0;
}

/* Queues a request; see ratelimit.h. */
void rl_acquire(rl_t *rl, rl_req_t *req, const char *ip, rl_go_cb cb)
{
    req->cb = cb;
    req->next = NULL;
    req->ip = ip_get(rl, ip);
    rl->waiting++;
    if (!req->ip) {
        rl->waiting--;
        cb(req, 1);
        return;
    }
    rl_ip_t *e = req->ip;
    if (e->reserved < rl->lim.per_ip) {
        e->reserved++;
        ready_push(rl, req);
        dispatch(rl);
    } else if (e->wait_tail) {
        e->wait_tail->next = req;
        e->wait_tail = req;
    } else {
        e->wait_head = e->wait_tail = req;
    }
}

/* A granted session ended; its IP's next waiter becomes ready. */
void rl_release(rl_t *rl, rl_req_t *req)
{
    rl_ip_t *e = req->ip;
    rl->inflight--;
    e->reserved--;
    if (e->wait_head) {
        rl_req_t *w = e->wait_head;
        e->wait_head = w->next;
        if (!e->wait_head) {
            e->wait_tail = NULL;
        }
        e->reserved++;
        ready_push(rl, w);
    } else {
        ip_maybe_free(rl, e);
    }
    dispatch(rl);
}

/* Cancels every waiting request (shutdown). */
void rl_cancel_all(rl_t *rl)
{
    uv_timer_stop(&rl->timer);
    /* Collect first: callbacks may not re-enter the queues we walk. Ready
     * requests hold a reservation on their IP; waiters do not. */
    rl_req_t *list = rl->ready_head;
    rl->ready_head = rl->ready_tail = NULL;
    for (rl_req_t *r = list; r; r = r->next) {
        r->ip->reserved--;
    }
    for (size_t b = 0; b < rl->nbuckets; b++) {
        for (rl_ip_t *e = rl->buckets[b]; e; e = e->hnext) {
            if (e->wait_head) {
                e->wait_tail->next = list;
                list = e->wait_head;
                e->wait_head = e->wait_tail = NULL;
            }
        }
    }
    while (list) {
        rl_req_t *r = list;
        list = r->next;
        rl->waiting--;
        r->cb(r, 1);
    }
}

/* Sessions in flight. */
size_t rl_inflight(const rl_t *rl)
{
    return rl->inflight;
}

/* Requests waiting. */
size_t rl_waiting(const rl_t *rl)
{
    return rl->waiting;
}

/* Frees the gate after its timer is closed. */
static void close_cb(uv_handle_t *h)
{
    rl_t *rl = h->data;
    for (size_t b = 0; b < rl->nbuckets; b++) {
        rl_ip_t *e = rl->buckets[b];
        while (e) {
            rl_ip_t *n = e->hnext;
            free(e);
            e = n;
        }
    }
    free(rl->buckets);
    free(rl);
}

/* Closes the gate; see ratelimit.h. */
void rl_free(rl_t *rl)
{
    if (rl) {
        uv_close((uv_handle_t *)&rl->timer, close_cb);
    }
}
