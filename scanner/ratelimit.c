/*
 * ratelimit.c - the connection gate: global concurrency, per-IP and
 * per-prefix concurrency, per-IP intervals and back-offs, and a token bucket
 * for the rate of new connections.
 *
 * Every IP with a request keeps its requests in its own FIFO; only the
 * first one is a candidate. The IP itself is in one of four places:
 *   - the ready list (one global FIFO of IPs): its first request may go as
 *     soon as the global cap and the tokens allow; it holds one place of
 *     its prefix while there;
 *   - its prefix's list (a FIFO of IPs): it could go but the prefix is full;
 *     a release in the prefix moves the first one to the ready list;
 *   - the time heap (a min-heap on not_before): an interval or a back-off is
 *     still running; one uv_timer wakes the gate for the earliest one;
 *   - nowhere: its sessions fill its per-IP cap (a release retries it), or
 *     it has no request.
 * So an IP that waits never sits in front of another that could go, and each
 * step is O(1) or O(log n) in the heap. The heap also holds IPs with no
 * request whose time is not over: the timer frees them when it is (memory
 * follows what is in flight or timed, not what was ever scanned). Limits are
 * data (rl_limits_t), set once from flags (zmap's habit).
 */
#include "scanner/ratelimit.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_MS   1000000ull
#define NOT_IN_HEAP SIZE_MAX
#define MIN_BUCKETS 1024

/* A chained hash table node, first member of the entries it holds. */
typedef struct hnode {
    struct hnode *next;
    size_t hash;
} hnode_t;

/* A hash table that grows and shrinks with its count (a power of 2 buckets). */
typedef struct htab {
    hnode_t **b;
    size_t nb, n;
} htab_t;

typedef struct rl_ip rl_ip_t;

/* A FIFO of IPs, doubly linked through the IP's prev/next. */
typedef struct iplist {
    rl_ip_t *head, *tail;
} iplist_t;

/* Where an IP is (see the top of the file); the heap is apart from these. */
enum { IP_IDLE, IP_READY, IP_PREFIX };

typedef struct rl_prefix {
    hnode_t h;
    uint64_t key;  /* family in the top byte, then the /24 or /48 */
    int reserved;  /* sessions in flight + its IPs in the ready list */
    size_t refs;   /* IP entries in this prefix */
    iplist_t held; /* IPs that could go but for this prefix's cap */
} rl_prefix_t;

struct rl_ip {
    hnode_t h;
    rl_prefix_t *pfx; /* NULL: not an address, or no prefix cap */
    rl_req_t *wait_head, *wait_tail;
    rl_ip_t *prev, *next; /* in the ready list or its prefix's list */
    uint64_t not_before;  /* uv_hrtime(): no grant before this */
    size_t heap_idx;      /* NOT_IN_HEAP, or its index in the time heap */
    int inflight;         /* granted and not released */
    int state;            /* IP_IDLE, IP_READY or IP_PREFIX */
    char addr[];
};

struct rl {
    uv_loop_t *loop;
    uv_timer_t timer; /* the one wake-up: tokens or the heap's earliest time */
    rl_limits_t lim;
    uint64_t interval_ns;
    iplist_t ready;
    htab_t ips, prefixes;
    rl_ip_t **heap;
    size_t heap_n, heap_cap;
    size_t inflight, waiting;
    double tokens, burst;
    uint64_t last_refill;
    uint64_t token_wait_ms; /* 0, or when the next token is due (from now) */
    int dispatching;
};

static void dispatch(rl_t *rl);

/* ---- hash tables --------------------------------------------------- */

/* FNV-1a of an address string. */
static size_t hash_str(const char *s)
{
    size_t h = 1469598103934665603ull;
    while (*s) {
        h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    }
    return h;
}

/* A 64-bit mix (splitmix64's finalizer) of a prefix key. */
static size_t hash_u64(uint64_t x)
{
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return (size_t)(x ^ (x >> 31));
}

/* Allocates the buckets of an empty table. */
static int htab_init(htab_t *t)
{
    t->nb = MIN_BUCKETS;
    t->n = 0;
    t->b = calloc(t->nb, sizeof *t->b);
    return t->b ? 0 : -1;
}

/* Moves every node into nb buckets; keeps the old ones if out of memory. */
static void htab_rehash(htab_t *t, size_t nb)
{
    hnode_t **b = calloc(nb, sizeof *b);
    if (!b) {
        return;
    }
    for (size_t i = 0; i < t->nb; i++) {
        hnode_t *n = t->b[i];
        while (n) {
            hnode_t *next = n->next;
            n->next = b[n->hash & (nb - 1)];
            b[n->hash & (nb - 1)] = n;
            n = next;
        }
    }
    free(t->b);
    t->b = b;
    t->nb = nb;
}

/* The first node of the chain a hash falls in. */
static hnode_t *htab_chain(const htab_t *t, size_t hash)
{
    return t->b[hash & (t->nb - 1)];
}

/* Adds a node (its hash set), growing past one node per bucket. */
static void htab_insert(htab_t *t, hnode_t *n)
{
    if (t->n >= t->nb) {
        htab_rehash(t, t->nb * 2);
    }
    hnode_t **b = &t->b[n->hash & (t->nb - 1)];
    n->next = *b;
    *b = n;
    t->n++;
}

/* Unlinks a node. Never resizes, so a walk over the table may remove. */
static void htab_remove(htab_t *t, hnode_t *n)
{
    for (hnode_t **pp = &t->b[n->hash & (t->nb - 1)]; *pp; pp = &(*pp)->next) {
        if (*pp == n) {
            *pp = n->next;
            t->n--;
            return;
        }
    }
}

/* Gives back buckets after a peak: below one node per 8 buckets, halves. */
static void htab_shrink(htab_t *t)
{
    size_t nb = t->nb;
    while (nb > MIN_BUCKETS && t->n < nb / 8) {
        nb /= 2;
    }
    if (nb != t->nb) {
        htab_rehash(t, nb);
    }
}

/* ---- lists of IPs -------------------------------------------------- */

/* Appends an IP to a list. */
static void list_push(iplist_t *l, rl_ip_t *e)
{
    e->next = NULL;
    e->prev = l->tail;
    if (l->tail) {
        l->tail->next = e;
    } else {
        l->head = e;
    }
    l->tail = e;
}

/* Takes an IP out of the list it is in. */
static void list_unlink(iplist_t *l, rl_ip_t *e)
{
    if (e->prev) {
        e->prev->next = e->next;
    } else {
        l->head = e->next;
    }
    if (e->next) {
        e->next->prev = e->prev;
    } else {
        l->tail = e->prev;
    }
    e->prev = e->next = NULL;
}

/* ---- the time heap ------------------------------------------------- */

/* Puts e at index i. */
static void heap_set(rl_t *rl, size_t i, rl_ip_t *e)
{
    rl->heap[i] = e;
    e->heap_idx = i;
}

/* Moves the entry at i up or down to its place. */
static void heap_fix(rl_t *rl, size_t i)
{
    rl_ip_t *e = rl->heap[i];
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (rl->heap[p]->not_before <= e->not_before) {
            break;
        }
        heap_set(rl, i, rl->heap[p]);
        i = p;
    }
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= rl->heap_n) {
            break;
        }
        if (c + 1 < rl->heap_n && rl->heap[c + 1]->not_before < rl->heap[c]->not_before) {
            c++;
        }
        if (e->not_before <= rl->heap[c]->not_before) {
            break;
        }
        heap_set(rl, i, rl->heap[c]);
        i = c;
    }
    heap_set(rl, i, e);
}

/* e's not_before changed (it is in the future): puts it in the heap or moves
 * it. Returns -1 if out of memory (then e is not in the heap). */
static int heap_update(rl_t *rl, rl_ip_t *e)
{
    if (e->heap_idx == NOT_IN_HEAP) {
        if (rl->heap_n == rl->heap_cap) {
            size_t cap = rl->heap_cap ? rl->heap_cap * 2 : 64;
            rl_ip_t **h = realloc(rl->heap, cap * sizeof *h);
            if (!h) {
                return -1;
            }
            rl->heap = h;
            rl->heap_cap = cap;
        }
        heap_set(rl, rl->heap_n++, e);
    }
    heap_fix(rl, e->heap_idx);
    return 0;
}

/* Takes the earliest entry out of the heap. */
static rl_ip_t *heap_pop(rl_t *rl)
{
    rl_ip_t *top = rl->heap[0];
    top->heap_idx = NOT_IN_HEAP;
    if (--rl->heap_n > 0) {
        heap_set(rl, 0, rl->heap[rl->heap_n]);
        heap_fix(rl, 0);
    }
    if (rl->heap_cap > 64 && rl->heap_n < rl->heap_cap / 4) {
        rl_ip_t **h = realloc(rl->heap, rl->heap_cap / 2 * sizeof *h);
        if (h) {
            rl->heap = h;
            rl->heap_cap /= 2;
        }
    }
    return top;
}

/* ---- entries ------------------------------------------------------- */

/* The prefix of an address: an IPv4 /24 or an IPv6 /48 (an IPv4-mapped
 * address is IPv4), with the family in the top byte. 0 if not an address. */
static int prefix_key(const char *addr, uint64_t *key)
{
    unsigned char b[16];
    if (inet_pton(AF_INET, addr, b) == 1) {
        *key = 4ull << 56 | (uint64_t)b[0] << 16 | (uint64_t)b[1] << 8 | b[2];
        return 1;
    }
    if (inet_pton(AF_INET6, addr, b) != 1) {
        return 0;
    }
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (memcmp(b, mapped, sizeof mapped) == 0) {
        *key = 4ull << 56 | (uint64_t)b[12] << 16 | (uint64_t)b[13] << 8 | b[14];
        return 1;
    }
    *key = 6ull << 56;
    for (int i = 0; i < 6; i++) {
        *key |= (uint64_t)b[i] << (8 * (5 - i));
    }
    return 1;
}

/* Finds or creates the entry of a prefix. */
static rl_prefix_t *prefix_get(rl_t *rl, uint64_t key)
{
    size_t h = hash_u64(key);
    for (hnode_t *n = htab_chain(&rl->prefixes, h); n; n = n->next) {
        rl_prefix_t *p = (rl_prefix_t *)n;
        if (p->key == key) {
            return p;
        }
    }
    rl_prefix_t *p = calloc(1, sizeof *p);
    if (!p) {
        return NULL;
    }
    p->key = key;
    p->h.hash = h;
    htab_insert(&rl->prefixes, &p->h);
    return p;
}

/* Finds or creates the entry of an IP (and of its prefix). */
static rl_ip_t *ip_get(rl_t *rl, const char *addr)
{
    size_t h = hash_str(addr);
    for (hnode_t *n = htab_chain(&rl->ips, h); n; n = n->next) {
        rl_ip_t *e = (rl_ip_t *)n;
        if (n->hash == h && strcmp(e->addr, addr) == 0) {
            return e;
        }
    }
    size_t len = strlen(addr);
    rl_ip_t *e = calloc(1, sizeof *e + len + 1);
    if (!e) {
        return NULL;
    }
    memcpy(e->addr, addr, len + 1);
    e->heap_idx = NOT_IN_HEAP;
    uint64_t key;
    if (rl->lim.per_prefix > 0 && prefix_key(addr, &key)) {
        e->pfx = prefix_get(rl, key);
        if (!e->pfx) {
            free(e);
            return NULL;
        }
        e->pfx->refs++;
    }
    e->h.hash = h;
    htab_insert(&rl->ips, &e->h);
    return e;
}

/* Drops the entry of an IP with no session, no request and no time left
 * (and its prefix's with it when it was the last IP there). */
static void ip_maybe_free(rl_t *rl, rl_ip_t *e)
{
    if (e->inflight > 0 || e->wait_head || e->state != IP_IDLE || e->heap_idx != NOT_IN_HEAP) {
        return;
    }
    htab_remove(&rl->ips, &e->h);
    rl_prefix_t *p = e->pfx;
    if (p && --p->refs == 0) {
        htab_remove(&rl->prefixes, &p->h);
        free(p);
    }
    free(e);
}

/* ---- moving IPs between the places they wait ------------------------ */

/* Puts an idle IP where its first request waits: the ready list, its
 * prefix's list, or (its time not over) nowhere but the heap it is in. */
static void ip_try(rl_t *rl, rl_ip_t *e, uint64_t now)
{
    if (e->state != IP_IDLE || !e->wait_head || e->inflight >= rl->lim.per_ip ||
        e->not_before > now) {
        return;
    }
    rl_prefix_t *p = e->pfx;
    if (p && p->reserved >= rl->lim.per_prefix) {
        e->state = IP_PREFIX;
        list_push(&p->held, e);
        return;
    }
    if (p) {
        p->reserved++;
    }
    e->state = IP_READY;
    list_push(&rl->ready, e);
}

/* A place in the prefix came free: its first held IPs become ready. */
static void prefix_kick(rl_t *rl, rl_prefix_t *p, uint64_t now)
{
    while (p->held.head && p->reserved < rl->lim.per_prefix) {
        rl_ip_t *e = p->held.head;
        list_unlink(&p->held, e);
        e->state = IP_IDLE;
        ip_try(rl, e, now);
    }
}

/* Takes an IP out of the ready list or its prefix's list (a back-off came). */
static void ip_unready(rl_t *rl, rl_ip_t *e, uint64_t now)
{
    if (e->state == IP_READY) {
        list_unlink(&rl->ready, e);
        e->state = IP_IDLE;
        if (e->pfx) {
            e->pfx->reserved--;
            prefix_kick(rl, e->pfx, now);
        }
    } else if (e->state == IP_PREFIX) {
        list_unlink(&e->pfx->held, e);
        e->state = IP_IDLE;
    }
}

/* ---- the gate ------------------------------------------------------ */

/* Creates the gate. */
rl_t *rl_new(uv_loop_t *loop, const rl_limits_t *lim)
{
    rl_t *rl = calloc(1, sizeof *rl);
    if (!rl) {
        return NULL;
    }
    if (htab_init(&rl->ips) < 0 || htab_init(&rl->prefixes) < 0) {
        free(rl->ips.b);
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
    if (rl->lim.per_prefix < 0) {
        rl->lim.per_prefix = 0;
    }
    if (rl->lim.min_interval_ms < 0) {
        rl->lim.min_interval_ms = 0;
    }
    rl->interval_ns = (uint64_t)rl->lim.min_interval_ms * NS_PER_MS;
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

/* Timer: tokens may be there, or an interval or back-off is over. */
static void timer_cb(uv_timer_t *t)
{
    dispatch(t->data);
}

/* Arms the one timer for the next token or the earliest time in the heap.
 * It holds the loop open only while a request waits. */
static void arm(rl_t *rl)
{
    uint64_t delay = UINT64_MAX;
    if (rl->token_wait_ms) {
        delay = rl->token_wait_ms;
    }
    if (rl->heap_n) {
        /* The loop's clock is uv_hrtime()'s in ms, rounded down: once it
         * reaches the ms rounded up, the time is over. */
        uint64_t nb = rl->heap[0]->not_before;
        uint64_t due = nb / NS_PER_MS + (nb % NS_PER_MS != 0);
        uint64_t now = uv_now(rl->loop);
        uint64_t d = due > now ? due - now : 0;
        if (d < delay) {
            delay = d;
        }
    }
    if (delay == UINT64_MAX) {
        uv_timer_stop(&rl->timer);
    } else {
        uv_timer_start(&rl->timer, timer_cb, delay, 0);
    }
    if (rl->waiting) {
        uv_ref((uv_handle_t *)&rl->timer);
    } else {
        uv_unref((uv_handle_t *)&rl->timer);
    }
}

/* IPs whose time is over leave the heap: they go on or are dropped. */
static void expire(rl_t *rl, uint64_t now)
{
    while (rl->heap_n && rl->heap[0]->not_before <= now) {
        rl_ip_t *e = heap_pop(rl);
        ip_try(rl, e, now);
        ip_maybe_free(rl, e);
    }
}

/* Grants ready IPs' first requests while the global cap and tokens allow. */
static void dispatch(rl_t *rl)
{
    if (rl->dispatching) {
        return; /* a callback released or acquired: the outer loop goes on */
    }
    rl->dispatching = 1;
    expire(rl, uv_hrtime());
    rl->token_wait_ms = 0;
    while (rl->ready.head && rl->inflight < (size_t)rl->lim.concurrency) {
        if (rl->lim.rate > 0) {
            refill(rl);
            if (rl->tokens < 1) {
                rl->token_wait_ms = (uint64_t)((1 - rl->tokens) * 1000.0 / rl->lim.rate) + 1;
                break;
            }
            rl->tokens -= 1;
        }
        rl_ip_t *e = rl->ready.head;
        list_unlink(&rl->ready, e);
        e->state = IP_IDLE; /* its prefix place passes to the session */
        rl_req_t *r = e->wait_head;
        e->wait_head = r->next;
        if (!e->wait_head) {
            e->wait_tail = NULL;
        }
        r->next = NULL;
        rl->waiting--;
        rl->inflight++;
        e->inflight++;
        uint64_t now = uv_hrtime();
        /* With an interval, e stays in the heap (so alive) through the
         * callback, whatever it does; without one it is not touched after. */
        int timed = 0;
        if (rl->interval_ns > 0) {
            uint64_t old = e->not_before;
            e->not_before = now + rl->interval_ns;
            timed = heap_update(rl, e) == 0;
            if (!timed) {
                e->not_before = old; /* out of memory: no interval this time */
            }
        }
        ip_try(rl, e, now);
        r->cb(r, 0);
        if (timed) {
            /* The interval runs from the end of the start, as the caller
             * saw it, not from before its callback. */
            uint64_t after = uv_hrtime() + rl->interval_ns;
            if (after > e->not_before) {
                e->not_before = after;
                heap_fix(rl, e->heap_idx);
            }
        }
    }
    arm(rl);
    htab_shrink(&rl->ips);
    htab_shrink(&rl->prefixes);
    rl->dispatching = 0;
}

/* Queues a request; see ratelimit.h. */
void rl_acquire(rl_t *rl, rl_req_t *req, const char *ip, rl_go_cb cb)
{
    req->cb = cb;
    req->next = NULL;
    req->ip = ip_get(rl, ip);
    rl_ip_t *e = req->ip;
    if (!e) {
        cb(req, 1);
        return;
    }
    if (e->wait_tail) {
        e->wait_tail->next = req;
    } else {
        e->wait_head = req;
    }
    e->wait_tail = req;
    rl->waiting++;
    ip_try(rl, e, uv_hrtime());
    dispatch(rl);
}

/* A granted session ended: its prefix's held IPs, then its own IP, go on. */
void rl_release(rl_t *rl, rl_req_t *req)
{
    rl_ip_t *e = req->ip;
    uint64_t now = uv_hrtime();
    rl->inflight--;
    e->inflight--;
    if (e->pfx) {
        e->pfx->reserved--;
        prefix_kick(rl, e->pfx, now);
    }
    ip_try(rl, e, now);
    ip_maybe_free(rl, e);
    dispatch(rl);
}

/* Holds an IP back until now + ms; see ratelimit.h. */
void rl_backoff(rl_t *rl, const char *ip, uint64_t ms)
{
    if (ms == 0) {
        return;
    }
    uint64_t now = uv_hrtime();
    uint64_t until = ms > (UINT64_MAX - now) / NS_PER_MS ? UINT64_MAX : now + ms * NS_PER_MS;
    rl_ip_t *e = ip_get(rl, ip);
    if (!e || until <= e->not_before) {
        return;
    }
    uint64_t old = e->not_before;
    e->not_before = until;
    if (heap_update(rl, e) < 0) {
        e->not_before = old; /* out of memory: no back-off rather than a lost entry */
        ip_maybe_free(rl, e);
        return;
    }
    ip_unready(rl, e, now);
    dispatch(rl); /* IPs of its prefix may go now; the timer changes */
}

/* Cancels every waiting request (shutdown). */
void rl_cancel_all(rl_t *rl)
{
    /* Collect first: callbacks may acquire again, and must find the lists
     * consistent. The ready list and the prefixes' lists only hold IPs with
     * requests, so they are empty after the walk. */
    rl_req_t *list = NULL;
    for (size_t b = 0; b < rl->ips.nb; b++) {
        hnode_t *n = rl->ips.b[b];
        while (n) {
            hnode_t *next = n->next;
            rl_ip_t *e = (rl_ip_t *)n;
            if (e->wait_head) {
                if (e->state == IP_READY) {
                    list_unlink(&rl->ready, e);
                    if (e->pfx) {
                        e->pfx->reserved--;
                    }
                } else if (e->state == IP_PREFIX) {
                    list_unlink(&e->pfx->held, e);
                }
                e->state = IP_IDLE;
                e->wait_tail->next = list;
                list = e->wait_head;
                e->wait_head = e->wait_tail = NULL;
                ip_maybe_free(rl, e); /* removes, never resizes */
            }
            n = next;
        }
    }
    while (list) {
        rl_req_t *r = list;
        list = r->next;
        r->next = NULL;
        r->ip = NULL;
        rl->waiting--;
        r->cb(r, 1);
    }
    dispatch(rl); /* re-arms the timer for what is left in the heap, or stops it */
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

/* Entries held: IPs and prefixes. */
size_t rl_entries(const rl_t *rl)
{
    return rl->ips.n + rl->prefixes.n;
}

/* Frees the gate after its timer is closed. */
static void close_cb(uv_handle_t *h)
{
    rl_t *rl = h->data;
    for (size_t b = 0; b < rl->ips.nb; b++) {
        hnode_t *n = rl->ips.b[b];
        while (n) {
            hnode_t *next = n->next;
            free(n);
            n = next;
        }
    }
    for (size_t b = 0; b < rl->prefixes.nb; b++) {
        hnode_t *n = rl->prefixes.b[b];
        while (n) {
            hnode_t *next = n->next;
            free(n);
            n = next;
        }
    }
    free(rl->ips.b);
    free(rl->prefixes.b);
    free(rl->heap);
    free(rl);
}

/* Closes the gate; see ratelimit.h. */
void rl_free(rl_t *rl)
{
    if (rl) {
        uv_close((uv_handle_t *)&rl->timer, close_cb);
    }
}
