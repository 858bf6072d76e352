/*
 * test_ratelimit_cache.c - unit tests of the connection gate
 * (scanner/ratelimit.c) and the single-flight MX host cache
 * (scanner/cache.c).
 *
 * The gate runs on a real libuv loop: grants are recorded with the loop's
 * clock (uv_now, which the rate uses) and with uv_hrtime (which intervals and
 * back-offs use), and the loop is driven with uv_run until nothing is left,
 * so spacing is measured, not assumed. Each test owns its loop, ends with no
 * entry left in the gate, and checks that the loop closes cleanly (no handle
 * left behind).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "scanner/cache.h"
#include "scanner/ratelimit.h"

/* ---- gate ---------------------------------------------------------- */

#define MAXREQ 20000

/* One request as a caller embeds it, plus what happened to it. */
typedef struct treq {
    rl_req_t req; /* first member: the callback's pointer is the struct's */
    int id;
    char ip[46];
    int granted, cancelled, released;
    uint64_t at; /* uv_now at the grant */
    uint64_t hr; /* uv_hrtime at the grant */
} treq_t;

/* What the gate did during a test. */
typedef struct gate_log {
    uv_loop_t loop;
    rl_t *rl;
    treq_t *reqs;
    int order[MAXREQ]; /* ids in the order they were granted */
    int ngranted, ncancelled;
    size_t max_inflight;
    int release_at_once; /* the callback releases right away (a session that fails to start) */
    const char *watch;   /* count the sessions in flight to IPs that begin so (a prefix) */
    int watch_now, watch_max;
} gate_log_t;

static gate_log_t *g;

/* Whether request t is in the watched group. */
static int watched(const treq_t *t)
{
    return g->watch && strncmp(t->ip, g->watch, strlen(g->watch)) == 0;
}

/* Ends granted request i's session. */
static void rel(int i)
{
    treq_t *t = &g->reqs[i];
    assert_true(t->granted);
    assert_false(t->released);
    t->released = 1;
    if (watched(t)) {
        g->watch_now--;
    }
    rl_release(g->rl, &t->req);
}

/* Records a grant or a cancellation. */
static void go_cb(rl_req_t *req, int cancelled)
{
    treq_t *t = (treq_t *)req;
    if (cancelled) {
        assert_int_equal(t->cancelled, 0);
        assert_int_equal(t->granted, 0);
        t->cancelled = 1;
        g->ncancelled++;
        return;
    }
    assert_int_equal(t->granted, 0);
    assert_int_equal(t->cancelled, 0);
    t->granted = 1;
    t->at = uv_now(&g->loop);
    t->hr = uv_hrtime();
    g->order[g->ngranted++] = t->id;
    if (rl_inflight(g->rl) > g->max_inflight) {
        g->max_inflight = rl_inflight(g->rl);
    }
    if (watched(t) && ++g->watch_now > g->watch_max) {
        g->watch_max = g->watch_now;
    }
    if (g->release_at_once) {
        rel(t->id);
    }
}

/* Starts a loop and a gate with the given limits, and n request slots. */
static void gate_open_lim(const rl_limits_t *lim, int n)
{
    g = calloc(1, sizeof *g);
    assert_non_null(g);
    assert_int_equal(uv_loop_init(&g->loop), 0);
    g->rl = rl_new(&g->loop, lim);
    assert_non_null(g->rl);
    g->reqs = calloc((size_t)n, sizeof *g->reqs);
    assert_non_null(g->reqs);
}

/* The same with the three first limits only (no prefix cap, no interval). */
static void gate_open(int concurrency, int per_ip, double rate, int n)
{
    rl_limits_t lim = {.concurrency = concurrency, .per_ip = per_ip, .rate = rate};
    gate_open_lim(&lim, n);
}

/* Asks for request i to connect to ip. */
static void acquire(int i, const char *ip)
{
    treq_t *t = &g->reqs[i];
    t->id = i;
    snprintf(t->ip, sizeof t->ip, "%s", ip);
    rl_acquire(g->rl, &t->req, t->ip, go_cb);
}

/* Lets the loop run what is ready without blocking. */
static void pump(void)
{
    uv_run(&g->loop, UV_RUN_NOWAIT);
}

/* Does nothing: a timer that keeps the loop running. */
static void settle_cb(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop for ms milliseconds (and longer while requests wait), with no new request. */
static void settle(uint64_t ms)
{
    uv_timer_t t;
    uv_timer_init(&g->loop, &t);
    uv_timer_start(&t, settle_cb, ms, 0);
    uv_run(&g->loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&g->loop, UV_RUN_NOWAIT);
}

/* A request made later, from the loop. */
typedef struct later {
    uv_timer_t timer;
    int i;
    const char *ip;
    uint64_t hr; /* uv_hrtime when it was made */
} later_t;

/* Makes the request of a later_t. */
static void later_cb(uv_timer_t *t)
{
    later_t *l = t->data;
    l->hr = uv_hrtime();
    acquire(l->i, l->ip);
    uv_close((uv_handle_t *)t, NULL);
}

/* Asks for request i to connect to ip in ms milliseconds. */
static void acquire_later(later_t *l, uint64_t ms, int i, const char *ip)
{
    l->i = i;
    l->ip = ip;
    l->hr = 0;
    uv_timer_init(&g->loop, &l->timer);
    l->timer.data = l;
    uv_timer_start(&l->timer, later_cb, ms, 0);
}

/* Milliseconds between two uv_hrtime readings. */
static double ms_between(uint64_t from, uint64_t to)
{
    return ((double)to - (double)from) / 1e6;
}

/* Frees the gate, which must hold no entry by then; the loop must then close with no handle
 * left. */
static void gate_close(void)
{
    assert_int_equal(rl_entries(g->rl), 0);
    rl_free(g->rl);
    uv_run(&g->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&g->loop), 0);
    free(g->reqs);
    free(g);
    g = NULL;
}

/* No more sessions than per_ip run to one IP; a busy IP does not hold up another; a release
 * lets that IP's next waiter in, first come first served. */
static void test_rl_per_ip_cap(void **state)
{
    (void)state;
    gate_open(100, 2, 0, 8);
    for (int i = 0; i < 5; i++) {
        acquire(i, "192.0.2.1");
    }
    acquire(5, "192.0.2.2");
    pump();
    assert_int_equal(g->ngranted, 3);
    assert_true(g->reqs[0].granted && g->reqs[1].granted && g->reqs[5].granted);
    assert_int_equal(rl_inflight(g->rl), 3);
    assert_int_equal(rl_waiting(g->rl), 3);

    rl_release(g->rl, &g->reqs[1].req);
    pump();
    assert_int_equal(g->ngranted, 4);
    assert_true(g->reqs[2].granted);
    assert_false(g->reqs[3].granted);

    rl_release(g->rl, &g->reqs[0].req);
    rl_release(g->rl, &g->reqs[2].req);
    pump();
    assert_true(g->reqs[3].granted && g->reqs[4].granted);
    assert_int_equal(rl_waiting(g->rl), 0);
    int order_ip1[5], k = 0;
    for (int i = 0; i < g->ngranted; i++) {
        if (g->order[i] != 5) {
            order_ip1[k++] = g->order[i];
        }
    }
    for (int i = 0; i < 5; i++) {
        assert_int_equal(order_ip1[i], i);
    }
    for (int i = 3; i <= 5; i++) {
        rl_release(g->rl, &g->reqs[i].req);
    }
    assert_int_equal(rl_inflight(g->rl), 0);
    gate_close();
}

/* The global cap holds at every moment, and requests for different IPs are granted in the
 * order they were made. */
static void test_rl_global_cap_fifo(void **state)
{
    (void)state;
    gate_open(3, 10, 0, 10);
    for (int i = 0; i < 10; i++) {
        char ip[32];
        snprintf(ip, sizeof ip, "198.51.100.%d", i + 1);
        acquire(i, ip);
    }
    pump();
    assert_int_equal(g->ngranted, 3);
    assert_int_equal(rl_waiting(g->rl), 7);
    for (int next = 0; next < 10; next++) {
        /* release the oldest running one; the next waiter takes its place */
        rl_release(g->rl, &g->reqs[next].req);
        pump();
        assert_int_equal(g->ngranted, next + 4 <= 10 ? next + 4 : 10);
        assert_true(rl_inflight(g->rl) <= 3);
    }
    assert_int_equal(g->max_inflight, 3);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(g->order[i], i);
    }
    assert_int_equal(rl_inflight(g->rl), 0);
    gate_close();
}

/* With both caps at 1, every IP's requests are served in their order and a waiting IP never
 * blocks a request for another IP made after it. */
static void test_rl_fifo_mixed_ips(void **state)
{
    (void)state;
    gate_open(1, 1, 0, 5);
    acquire(0, "192.0.2.1"); /* A1 */
    acquire(1, "192.0.2.1"); /* A2 */
    acquire(2, "192.0.2.2"); /* B1 */
    acquire(3, "192.0.2.1"); /* A3 */
    acquire(4, "192.0.2.3"); /* C1 */
    pump();
    while (g->ngranted < 5) {
        int running = g->order[g->ngranted - 1];
        assert_int_equal(rl_inflight(g->rl), 1);
        rl_release(g->rl, &g->reqs[running].req);
        pump();
    }
    int pos[5];
    for (int i = 0; i < 5; i++) {
        pos[g->order[i]] = i;
    }
    assert_true(pos[0] < pos[1] && pos[1] < pos[3]); /* A1, A2, A3 in order */
    assert_true(pos[2] < pos[1]);                    /* B1 did not wait for A2 */
    assert_true(pos[4] < pos[1]);                    /* nor did C1 */
    assert_true(pos[2] < pos[4]);                    /* B1 and C1 in their order */
    rl_release(g->rl, &g->reqs[g->order[4]].req);
    assert_int_equal(rl_inflight(g->rl), 0);
    gate_close();
}

/* New connections are spaced by the rate on the loop's clock, after a burst of a tenth of a
 * second's worth (at least one). */
static void test_rl_rate_spacing(void **state)
{
    (void)state;
    const double rate = 20; /* 50 ms apart, burst 2 */
    const int n = 8, burst = 2;
    gate_open(100, 100, rate, n);
    uv_update_time(&g->loop);
    uint64_t t0 = uv_now(&g->loop);
    for (int i = 0; i < n; i++) {
        char ip[32];
        snprintf(ip, sizeof ip, "203.0.113.%d", i + 1);
        acquire(i, ip);
    }
    uv_run(&g->loop, UV_RUN_DEFAULT); /* returns when the timer has nothing left to do */
    assert_int_equal(g->ngranted, n);
    for (int i = 0; i < n; i++) {
        assert_int_equal(g->order[i], i);
    }
    for (int i = 0; i < burst; i++) {
        assert_true(g->reqs[i].at - t0 <= 5);
    }
    /* Token bucket: by time t after the start at most burst + t * rate / 1000 grants, so the
     * i-th grant (from 0) cannot come before (i - burst + 1) * 50 ms (1 ms for the clock). */
    const uint64_t gap = (uint64_t)(1000 / rate);
    for (int i = burst; i < n; i++) {
        uint64_t since = g->reqs[i].at - t0;
        uint64_t want = (uint64_t)(i - burst + 1) * gap;
        if (since + 1 < want) {
            print_error("grant %d came %llu ms after the start, before %llu ms\n", i,
                        (unsigned long long)since, (unsigned long long)want);
            fail();
        }
    }
    /* and not much slower than the rate either (generous, for loaded machines) */
    uint64_t total = g->reqs[n - 1].at - t0;
    assert_true(total < (uint64_t)(n - burst) * gap * 3 + 200);
    for (int i = 0; i < n; i++) {
        rl_release(g->rl, &g->reqs[i].req);
    }
    gate_close();
}

/* A rate-limited gate with its timer armed is cancelled: every waiter gets exactly one
 * cancelled callback, nothing is granted afterwards, and the loop closes cleanly. */
static void test_rl_cancel_all_with_timer(void **state)
{
    (void)state;
    gate_open(100, 100, 5, 6); /* burst 1, 200 ms apart */
    uv_update_time(&g->loop);
    for (int i = 0; i < 6; i++) {
        char ip[32];
        snprintf(ip, sizeof ip, "203.0.113.%d", i + 1);
        acquire(i, ip);
    }
    pump();
    assert_int_equal(g->ngranted, 1);
    rl_cancel_all(g->rl);
    assert_int_equal(g->ncancelled, 5);
    assert_int_equal(rl_waiting(g->rl), 0);
    assert_int_equal(rl_inflight(g->rl), 1);
    uv_run(&g->loop, UV_RUN_DEFAULT);
    assert_int_equal(g->ngranted, 1);
    rl_release(g->rl, &g->reqs[0].req);
    assert_int_equal(g->ngranted, 1);
    assert_int_equal(rl_inflight(g->rl), 0);
    gate_close();
}

/* Cancel reaches waiters in both places they wait (behind the global cap and behind a busy
 * IP), once each, and leaves the running sessions alone. */
static void test_rl_cancel_all_queues(void **state)
{
    (void)state;
    gate_open(2, 1, 0, 7);
    acquire(0, "192.0.2.1");
    acquire(1, "192.0.2.2");
    acquire(2, "192.0.2.1"); /* behind its IP */
    acquire(3, "192.0.2.1"); /* behind its IP */
    acquire(4, "192.0.2.3"); /* behind the global cap */
    acquire(5, "192.0.2.4"); /* behind the global cap */
    acquire(6, "192.0.2.2"); /* behind its IP */
    pump();
    assert_int_equal(g->ngranted, 2);
    assert_int_equal(rl_waiting(g->rl), 5);
    rl_cancel_all(g->rl);
    assert_int_equal(g->ncancelled, 5);
    for (int i = 2; i < 7; i++) {
        assert_true(g->reqs[i].cancelled);
    }
    assert_false(g->reqs[0].cancelled || g->reqs[1].cancelled);
    assert_int_equal(rl_waiting(g->rl), 0);
    rl_release(g->rl, &g->reqs[0].req);
    rl_release(g->rl, &g->reqs[1].req);
    pump();
    assert_int_equal(g->ngranted, 2);
    assert_int_equal(rl_inflight(g->rl), 0);
    rl_cancel_all(g->rl); /* nothing left: no callback */
    assert_int_equal(g->ncancelled, 5);
    gate_close();
}

/* A grant callback that releases at once (a session that cannot start) is safe even when
 * it drains a long queue: every request is granted once, per-IP order is kept, no recursion
 * grows the stack, and the counters return to zero. */
static void test_rl_release_inside_callback(void **state)
{
    (void)state;
    enum { NIP = 7 };
    gate_open(4, 2, 0, MAXREQ);
    for (int i = 0; i < MAXREQ; i++) {
        char ip[32];
        snprintf(ip, sizeof ip, "10.0.0.%d", i % NIP);
        acquire(i, ip);
    }
    pump();
    assert_int_equal(g->ngranted, 4);
    g->release_at_once = 1;
    int held[4];
    memcpy(held, g->order, sizeof held);
    for (int k = 0; k < 4; k++) {
        rl_release(g->rl, &g->reqs[held[k]].req);
    }
    pump();
    assert_int_equal(g->ngranted, MAXREQ);
    assert_true(g->max_inflight <= 4);
    int last[NIP];
    for (int k = 0; k < NIP; k++) {
        last[k] = -1;
    }
    for (int i = 0; i < MAXREQ; i++) {
        int id = g->order[i];
        assert_true(id > last[id % NIP]); /* each IP's requests in the order made */
        last[id % NIP] = id;
    }
    assert_int_equal(rl_inflight(g->rl), 0);
    assert_int_equal(rl_waiting(g->rl), 0);
    gate_close();
}

/* Many IPs come and go (entries are created and dropped) with both caps and the counters
 * staying right. */
static void test_rl_many_ips(void **state)
{
    (void)state;
    gate_open(50, 1, 0, 10000);
    for (int i = 0; i < 10000; i++) {
        char ip[46];
        snprintf(ip, sizeof ip, "2001:db8::%x", i % 2500); /* 4 requests per IP */
        acquire(i, ip);
    }
    pump();
    int released = 0;
    while (released < g->ngranted) {
        rl_release(g->rl, &g->reqs[g->order[released++]].req);
        assert_true(rl_inflight(g->rl) <= 50);
    }
    assert_int_equal(g->ngranted, 10000);
    assert_int_equal(rl_inflight(g->rl), 0);
    assert_int_equal(rl_waiting(g->rl), 0);
    gate_close();
}

/* At most per_prefix sessions run to one IPv4 /24: of three IPs there, the third waits and
 * goes when one of the others ends, first held first served; an IP in another /24 is not
 * held up; IP and prefix entries go away with the last session. */
static void test_rl_prefix_cap(void **state)
{
    (void)state;
    rl_limits_t lim = {.concurrency = 100, .per_ip = 10, .per_prefix = 2};
    gate_open_lim(&lim, 6);
    g->watch = "192.0.2.";
    acquire(0, "192.0.2.1");
    acquire(1, "192.0.2.2");
    acquire(2, "192.0.2.3");    /* the /24 is full */
    acquire(3, "198.51.100.7"); /* another /24 */
    acquire(4, "192.0.2.1");    /* its IP has room, its /24 not */
    acquire(5, "198.51.100.8");
    pump();
    assert_int_equal(g->ngranted, 4);
    assert_true(g->reqs[0].granted && g->reqs[1].granted);
    assert_true(g->reqs[3].granted && g->reqs[5].granted);
    assert_false(g->reqs[2].granted || g->reqs[4].granted);
    assert_int_equal(rl_waiting(g->rl), 2);
    assert_int_equal(rl_entries(g->rl), 5 + 2); /* five IPs, two /24s */

    rel(1);
    pump();
    assert_true(g->reqs[2].granted); /* held first */
    assert_false(g->reqs[4].granted);
    rel(0);
    pump();
    assert_true(g->reqs[4].granted);
    assert_int_equal(g->watch_max, 2);
    assert_int_equal(rl_waiting(g->rl), 0);
    for (int i = 2; i < 6; i++) {
        rel(i);
    }
    assert_int_equal(rl_inflight(g->rl), 0);
    assert_int_equal(rl_entries(g->rl), 0);
    gate_close();
}

/* IPv6 addresses group by /48 (not by /64 or by address), an IPv4-mapped address counts in
 * its IPv4 /24, and a key that is not an address has no prefix: it is held only by its own
 * limits. */
static void test_rl_prefix_v6_48(void **state)
{
    (void)state;
    rl_limits_t lim = {.concurrency = 100, .per_ip = 5, .per_prefix = 1};
    gate_open_lim(&lim, 10);
    acquire(0, "2001:db8:1:a::1");
    acquire(1, "2001:db8:1:ffff::2"); /* same /48 */
    acquire(2, "2001:db8:2::1");      /* next /48 */
    acquire(3, "2001:db8:0:1::1");    /* the /48 before */
    acquire(4, "192.0.2.10");
    acquire(5, "::ffff:192.0.2.11"); /* the same /24, mapped */
    acquire(6, "mx.example.test");   /* not addresses: no prefix */
    acquire(7, "mx2.example.test");
    acquire(8, "2001:db8:1::");        /* the first /48 again */
    acquire(9, "2001:0db8:0001:b::9"); /* and again, written otherwise */
    pump();
    int want[10] = {1, 0, 1, 1, 1, 0, 1, 1, 0, 0};
    for (int i = 0; i < 10; i++) {
        assert_int_equal(g->reqs[i].granted, want[i]);
    }
    assert_int_equal(rl_entries(g->rl), 10 + 4); /* ten keys; 2001:db8:{0,1,2}::/48, 192.0.2/24 */
    rel(0);
    pump();
    assert_true(g->reqs[1].granted);
    assert_false(g->reqs[8].granted || g->reqs[9].granted);
    rel(1);
    pump();
    assert_true(g->reqs[8].granted);
    rel(8);
    pump();
    assert_true(g->reqs[9].granted);
    rel(4);
    pump();
    assert_true(g->reqs[5].granted);
    for (int i = 2; i < 10; i++) {
        if (i != 4 && i != 8) {
            rel(i);
        }
    }
    assert_int_equal(g->ngranted, 10);
    assert_int_equal(rl_inflight(g->rl), 0);
    gate_close();
}

/* Two grants to one IP are at least min_interval_ms apart (on uv_hrtime, from inside the
 * callbacks), a request for another IP made while they wait goes at once, and the entry
 * whose interval still runs after the last release goes away by itself while the loop
 * runs. */
static void test_rl_min_interval(void **state)
{
    (void)state;
    const double interval = 120;
    rl_limits_t lim = {.concurrency = 100, .per_ip = 5, .min_interval_ms = (int)interval};
    gate_open_lim(&lim, 4);
    uint64_t t0 = uv_hrtime();
    acquire(0, "192.0.2.1");
    acquire(1, "192.0.2.1");
    acquire(2, "192.0.2.1");
    pump();
    assert_int_equal(g->ngranted, 1);
    assert_int_equal(rl_waiting(g->rl), 2);
    later_t b;
    acquire_later(&b, 40, 3, "192.0.2.2"); /* same /24, other IP */
    uv_run(&g->loop, UV_RUN_DEFAULT);      /* until every request is granted */
    assert_int_equal(g->ngranted, 4);
    int want[4] = {0, 3, 1, 2};
    for (int i = 0; i < 4; i++) {
        assert_int_equal(g->order[i], want[i]);
    }
    double gap1 = ms_between(g->reqs[0].hr, g->reqs[1].hr);
    double gap2 = ms_between(g->reqs[1].hr, g->reqs[2].hr);
    if (gap1 < interval || gap2 < interval) {
        print_error("grants %.3f and %.3f ms apart, interval %.0f\n", gap1, gap2, interval);
        fail();
    }
    assert_true(ms_between(t0, g->reqs[2].hr) < 2 * interval + 200); /* not much slower */
    assert_true(ms_between(b.hr, g->reqs[3].hr) < 20);               /* B did not wait */

    for (int i = 0; i < 4; i++) {
        rel(i);
    }
    /* B's interval is over, the other IP's has just begun: only that entry is left, and it
     * needs no request to go. */
    assert_int_equal(rl_entries(g->rl), 1);
    settle((uint64_t)interval + 30);
    assert_int_equal(rl_entries(g->rl), 0);
    gate_close();
}

/* rl_backoff holds an IP back (not its neighbours in a full /24, whose turn it had), is
 * extended and never shortened, works on an IP the gate did not know, and a back-off of an
 * IP nobody asks for goes away by itself. */
static void test_rl_backoff(void **state)
{
    (void)state;
    rl_limits_t lim = {.concurrency = 100, .per_ip = 1, .per_prefix = 1};
    gate_open_lim(&lim, 5);
    acquire(0, "192.0.2.1");
    acquire(1, "192.0.2.2"); /* held by its /24 */
    acquire(2, "192.0.2.3"); /* held by its /24, behind 1 */
    pump();
    assert_int_equal(g->ngranted, 1);
    uint64_t tq = uv_hrtime();
    rl_backoff(g->rl, "192.0.2.2", 150);
    rl_backoff(g->rl, "192.0.2.2", 20); /* does not shorten */
    rel(0);
    pump();
    assert_true(g->reqs[2].granted); /* 1 no longer holds the /24's turn */
    assert_false(g->reqs[1].granted);
    rel(2);
    pump();
    assert_false(g->reqs[1].granted); /* the /24 is free, the IP is not */
    acquire(3, "198.51.100.1");
    assert_true(g->reqs[3].granted);

    uint64_t tn = uv_hrtime();
    rl_backoff(g->rl, "203.0.113.9", 100); /* not known to the gate yet */
    acquire(4, "203.0.113.9");
    pump();
    assert_false(g->reqs[4].granted);
    uv_run(&g->loop, UV_RUN_DEFAULT);
    assert_int_equal(g->ngranted, 5);
    assert_true(ms_between(tq, g->reqs[1].hr) >= 150);
    assert_true(ms_between(tn, g->reqs[4].hr) >= 100);
    assert_true(g->reqs[4].hr < g->reqs[1].hr);
    rel(1);
    rel(3);
    rel(4);
    assert_int_equal(rl_entries(g->rl), 0);

    rl_backoff(g->rl, "203.0.113.77", 30);
    rl_backoff(g->rl, "203.0.113.78", 0);   /* nothing */
    assert_int_equal(rl_entries(g->rl), 2); /* the IP and its /24 */
    settle(60);
    assert_int_equal(rl_entries(g->rl), 0);
    gate_close();
}

/* A back-off reaches an IP already in line for the global cap: a request for another IP made
 * after it goes first, and it goes once the back-off is over. */
static void test_rl_backoff_ready(void **state)
{
    (void)state;
    gate_open(1, 1, 0, 3);
    acquire(0, "192.0.2.1");
    acquire(1, "198.51.100.1"); /* in line behind the global cap */
    acquire(2, "203.0.113.1");
    uint64_t t = uv_hrtime();
    rl_backoff(g->rl, "198.51.100.1", 80);
    rel(0);
    pump();
    assert_true(g->reqs[2].granted);
    assert_false(g->reqs[1].granted);
    rel(2);
    pump();
    assert_false(g->reqs[1].granted);
    uv_run(&g->loop, UV_RUN_DEFAULT);
    assert_true(g->reqs[1].granted);
    assert_true(ms_between(t, g->reqs[1].hr) >= 80);
    rel(1);
    gate_close();
}

/* Many requests wait on a few IPs (their own cap, their full /24, a back-off) while a
 * thousand requests for other IPs, made between them, all go at once; then the waiting ones
 * drain with the caps kept and each IP's requests in order. */
static void test_rl_no_hol_many_waiters(void **state)
{
    (void)state;
    enum { COLD = 1000, HOT = 5, PER_HOT = 200, SLOW = 100, N = COLD + HOT * PER_HOT + SLOW };
    rl_limits_t lim = {.concurrency = 5000, .per_ip = 1, .per_prefix = 2};
    gate_open_lim(&lim, N);
    g->watch = "10.9.9.";
    uint64_t tb = uv_hrtime();
    rl_backoff(g->rl, "10.8.8.1", 60);
    int n = 0;
    for (int k = 0; k < COLD; k++) {
        char ip[46];
        snprintf(ip, sizeof ip, "10.%d.%d.1", 100 + k / 256, k % 256); /* a /24 each */
        acquire(n++, ip);
        snprintf(ip, sizeof ip, "10.9.9.%d", 1 + k % HOT);
        acquire(n++, ip);
        if (k % (COLD / SLOW) == 0) {
            acquire(n++, "10.8.8.1");
        }
    }
    assert_int_equal(n, N);
    pump();
    int cold = 0, hot = 0, slow = 0;
    for (int i = 0; i < N; i++) {
        if (!g->reqs[i].granted) {
            continue;
        }
        if (strncmp(g->reqs[i].ip, "10.9.9.", 7) == 0) {
            hot++;
        } else if (strcmp(g->reqs[i].ip, "10.8.8.1") == 0) {
            slow++;
        } else {
            cold++;
        }
    }
    assert_int_equal(cold, COLD);
    assert_int_equal(hot, 2);
    assert_int_equal(slow, 0);
    assert_int_equal(rl_waiting(g->rl), N - COLD - 2);

    g->release_at_once = 1;
    int held[COLD + 2];
    memcpy(held, g->order, sizeof held);
    for (int k = 0; k < COLD + 2; k++) {
        rel(held[k]);
    }
    pump();
    assert_int_equal(g->ngranted, N - SLOW); /* the hot IPs drained */
    uv_run(&g->loop, UV_RUN_DEFAULT);
    assert_int_equal(g->ngranted, N);
    assert_int_equal(g->watch_max, 2);
    for (int i = 0; i < N; i++) {
        if (strcmp(g->reqs[i].ip, "10.8.8.1") == 0) {
            assert_true(ms_between(tb, g->reqs[i].hr) >= 60);
        }
    }
    /* each IP's requests in the order made */
    for (int a = 0; a < N; a++) {
        for (int b = a + 1; b < N && b < a + 64; b++) {
            if (strcmp(g->reqs[g->order[a]].ip, g->reqs[g->order[b]].ip) == 0) {
                assert_true(g->order[a] < g->order[b]);
            }
        }
    }
    assert_int_equal(rl_inflight(g->rl), 0);
    assert_int_equal(rl_waiting(g->rl), 0);
    gate_close();
}

/* Cancel reaches requests waiting on an interval, a back-off, a full /24 and the global cap,
 * once each; the gate's timer, still armed for the interval and the back-off, does not keep
 * the loop running, grants nothing, and frees the entries when their time is over. */
static void test_rl_cancel_time_waiters(void **state)
{
    (void)state;
    rl_limits_t lim = {.concurrency = 2, .per_ip = 2, .per_prefix = 1, .min_interval_ms = 150};
    gate_open_lim(&lim, 6);
    acquire(0, "192.0.2.1");
    acquire(1, "192.0.2.1"); /* waits on the interval */
    acquire(2, "192.0.2.2"); /* waits on its /24 */
    acquire(3, "198.51.100.1");
    acquire(4, "203.0.113.1"); /* waits on the global cap */
    rl_backoff(g->rl, "2001:db8::5", 150);
    acquire(5, "2001:db8::5"); /* waits on a back-off */
    pump();
    assert_int_equal(g->ngranted, 2);
    assert_int_equal(rl_waiting(g->rl), 4);
    rl_cancel_all(g->rl);
    assert_int_equal(g->ncancelled, 4);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(g->reqs[i].cancelled, i == 1 || i == 2 || i == 4 || i == 5);
    }
    assert_int_equal(rl_waiting(g->rl), 0);
    assert_int_equal(rl_inflight(g->rl), 2);
    uint64_t t = uv_hrtime();
    uv_run(&g->loop, UV_RUN_DEFAULT);
    assert_true(ms_between(t, uv_hrtime()) < 100); /* the timer does not hold the loop */
    rel(0);
    rel(3);
    /* 192.0.2.1 and 198.51.100.1 (intervals), 2001:db8::5 (back-off), and their prefixes */
    assert_int_equal(rl_entries(g->rl), 6);
    settle(200);
    assert_int_equal(rl_entries(g->rl), 0);
    assert_int_equal(g->ngranted, 2);
    assert_int_equal(g->ncancelled, 4);
    gate_close();
}

/* The rate and the interval hold together: the token bucket spaces every grant, the
 * interval spaces the grants to one IP, and other IPs take the tokens meanwhile. */
static void test_rl_rate_with_interval(void **state)
{
    (void)state;
    const double rate = 20; /* 50 ms apart, burst 2 */
    const int n = 5, burst = 2;
    rl_limits_t lim = {.concurrency = 100, .per_ip = 5, .rate = rate, .min_interval_ms = 120};
    gate_open_lim(&lim, n);
    uv_update_time(&g->loop);
    uint64_t t0 = uv_now(&g->loop);
    acquire(0, "192.0.2.1");
    acquire(1, "192.0.2.1");
    acquire(2, "192.0.2.2");
    acquire(3, "192.0.2.3");
    acquire(4, "192.0.2.4");
    uv_run(&g->loop, UV_RUN_DEFAULT);
    assert_int_equal(g->ngranted, n);
    int want[5] = {0, 2, 3, 4, 1};
    for (int i = 0; i < n; i++) {
        assert_int_equal(g->order[i], want[i]);
    }
    const uint64_t gap = (uint64_t)(1000 / rate);
    for (int i = burst; i < n; i++) {
        uint64_t since = g->reqs[g->order[i]].at - t0;
        assert_true(since + 1 >= (uint64_t)(i - burst + 1) * gap);
    }
    assert_true(ms_between(g->reqs[0].hr, g->reqs[1].hr) >= 120);
    assert_true(g->reqs[1].at - t0 < 400);
    for (int i = 0; i < n; i++) {
        rel(i);
    }
    settle(140);
    gate_close();
}

/* ---- cache --------------------------------------------------------- */

typedef struct waiter {
    int calls;
    host_summary_t seen;
    cache_entry_t *rewait; /* wait on this entry again from inside the callback */
    int inner_calls;
} waiter_t;

/* Counts a wake-up inside a callback. */
static void inner_cb(void *arg, const host_summary_t *sum)
{
    (void)sum;
    ((waiter_t *)arg)->inner_calls++;
}

/* Records one wake-up and its summary. */
static void wait_cb(void *arg, const host_summary_t *sum)
{
    waiter_t *w = arg;
    w->calls++;
    w->seen = *sum;
    if (w->rewait) {
        cache_entry_t *e = w->rewait;
        w->rewait = NULL;
        assert_int_equal(cache_wait(e, inner_cb, w), 0);
    }
}

/* The first get creates, later gets return the same entry; waiters are called exactly once
 * when it completes, all with its summary, and not before. */
static void test_cache_single_flight(void **state)
{
    (void)state;
    cache_t *c = cache_new();
    assert_non_null(c);
    int created = -1;
    cache_entry_t *e = cache_get(c, "mx-valid.test", &created);
    assert_non_null(e);
    assert_int_equal(created, 1);
    assert_string_equal(e->name, "mx-valid.test");
    enum { N = 1000 };
    waiter_t *w = calloc(N, sizeof *w);
    assert_non_null(w);
    for (int i = 0; i < N; i++) {
        cache_entry_t *again = cache_get(c, "mx-valid.test", &created);
        assert_ptr_equal(again, e);
        assert_int_equal(created, 0);
        assert_int_equal(cache_wait(again, wait_cb, &w[i]), 0);
    }
    assert_int_equal(cache_count(c), 1);
    for (int i = 0; i < N; i++) {
        assert_int_equal(w[i].calls, 0);
    }
    e->sum.n_endpoints = 2;
    e->sum.n_reached = 2;
    e->sum.n_tls = 1;
    e->sum.dnssec_secure = 1;
    snprintf(e->sum.dns_error, sizeof e->sum.dns_error, "AAAA SERVFAIL");
    cache_complete(e);
    for (int i = 0; i < N; i++) {
        assert_int_equal(w[i].calls, 1);
        assert_int_equal(w[i].seen.n_endpoints, 2);
        assert_int_equal(w[i].seen.n_tls, 1);
        assert_string_equal(w[i].seen.dns_error, "AAAA SERVFAIL");
    }
    assert_null(e->waiters);
    free(w);
    cache_free(c);
}

/* Waiting on a done entry calls back at once, before cache_wait returns, and only once. */
static void test_cache_done_calls_at_once(void **state)
{
    (void)state;
    cache_t *c = cache_new();
    int created;
    cache_entry_t *e = cache_get(c, "mx.test", &created);
    e->sum.n_reached = 1;
    cache_complete(e);
    waiter_t w = {0};
    assert_int_equal(cache_wait(e, wait_cb, &w), 0);
    assert_int_equal(w.calls, 1);
    assert_int_equal(w.seen.n_reached, 1);
    assert_null(e->waiters);
    cache_free(c);
    assert_int_equal(w.calls, 1);
}

/* A waiter that waits again from inside its callback is called at once (the entry is done by
 * then), and the other waiters are still each called once. */
static void test_cache_wait_from_callback(void **state)
{
    (void)state;
    cache_t *c = cache_new();
    int created;
    cache_entry_t *e = cache_get(c, "mx.test", &created);
    waiter_t w[3] = {{0}};
    w[1].rewait = e;
    for (int i = 0; i < 3; i++) {
        cache_wait(e, wait_cb, &w[i]);
    }
    cache_complete(e);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(w[i].calls, 1);
    }
    assert_int_equal(w[1].inner_calls, 1);
    cache_free(c);
}

/* Past 10k entries (the table grows several times) every host still maps to its own entry,
 * with its state and its waiters intact. */
static void test_cache_growth(void **state)
{
    (void)state;
    enum { N = 50000 };
    cache_t *c = cache_new();
    cache_entry_t **ents = calloc(N, sizeof *ents);
    waiter_t *w = calloc(N, sizeof *w);
    assert_non_null(ents);
    assert_non_null(w);
    char name[64];
    for (int i = 0; i < N; i++) {
        int created;
        snprintf(name, sizeof name, "mx%d.host%d.test", i, i % 97);
        ents[i] = cache_get(c, name, &created);
        assert_non_null(ents[i]);
        assert_int_equal(created, 1);
        ents[i]->sum.n_addrs = i;
        if (i % 3 == 0) {
            cache_complete(ents[i]);
        } else {
            cache_wait(ents[i], wait_cb, &w[i]); /* waits across the growths */
        }
        assert_int_equal(cache_count(c), (size_t)i + 1);
    }
    for (int i = 0; i < N; i++) {
        int created;
        snprintf(name, sizeof name, "mx%d.host%d.test", i, i % 97);
        cache_entry_t *e = cache_get(c, name, &created);
        assert_int_equal(created, 0);
        assert_ptr_equal(e, ents[i]);
        assert_string_equal(e->name, name);
        assert_int_equal(e->sum.n_addrs, i);
        assert_int_equal(e->done, i % 3 == 0);
    }
    assert_int_equal(cache_count(c), N);
    for (int i = 0; i < N; i++) {
        if (i % 3) {
            assert_int_equal(w[i].calls, 0);
            cache_complete(ents[i]);
            assert_int_equal(w[i].calls, 1);
            assert_int_equal(w[i].seen.n_addrs, i);
        }
    }
    /* a new name after all that is still new */
    int created;
    assert_non_null(cache_get(c, "fresh.test", &created));
    assert_int_equal(created, 1);
    assert_int_equal(cache_count(c), N + 1);
    free(w);
    free(ents);
    cache_free(c);
}

/* Names that differ in one character, or by being a prefix, are different hosts. */
static void test_cache_distinct_names(void **state)
{
    (void)state;
    cache_t *c = cache_new();
    const char *names[] = {"mx.test", "mx.tesu", "mx.tes", "mx.test.", "amx.test", ""};
    cache_entry_t *e[6];
    for (int i = 0; i < 6; i++) {
        int created;
        e[i] = cache_get(c, names[i], &created);
        assert_int_equal(created, 1);
    }
    for (int i = 0; i < 6; i++) {
        for (int j = i + 1; j < 6; j++) {
            assert_ptr_not_equal(e[i], e[j]);
        }
    }
    assert_int_equal(cache_count(c), 6);
    cache_free(c);
}

/* Freeing a cache with waiters still queued releases them (checked by LeakSanitizer in the
 * sanitizer build) without calling them. */
static void test_cache_free_with_waiters(void **state)
{
    (void)state;
    cache_t *c = cache_new();
    int created;
    cache_entry_t *e = cache_get(c, "pending.test", &created);
    waiter_t w[4] = {{0}};
    for (int i = 0; i < 4; i++) {
        cache_wait(e, wait_cb, &w[i]);
    }
    cache_free(c);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(w[i].calls, 0);
    }
    cache_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rl_per_ip_cap),
        cmocka_unit_test(test_rl_global_cap_fifo),
        cmocka_unit_test(test_rl_fifo_mixed_ips),
        cmocka_unit_test(test_rl_rate_spacing),
        cmocka_unit_test(test_rl_cancel_all_with_timer),
        cmocka_unit_test(test_rl_cancel_all_queues),
        cmocka_unit_test(test_rl_release_inside_callback),
        cmocka_unit_test(test_rl_many_ips),
        cmocka_unit_test(test_rl_prefix_cap),
        cmocka_unit_test(test_rl_prefix_v6_48),
        cmocka_unit_test(test_rl_min_interval),
        cmocka_unit_test(test_rl_backoff),
        cmocka_unit_test(test_rl_backoff_ready),
        cmocka_unit_test(test_rl_no_hol_many_waiters),
        cmocka_unit_test(test_rl_cancel_time_waiters),
        cmocka_unit_test(test_rl_rate_with_interval),
        cmocka_unit_test(test_cache_single_flight),
        cmocka_unit_test(test_cache_done_calls_at_once),
        cmocka_unit_test(test_cache_wait_from_callback),
        cmocka_unit_test(test_cache_growth),
        cmocka_unit_test(test_cache_distinct_names),
        cmocka_unit_test(test_cache_free_with_waiters),
    };
    return cmocka_run_group_tests_name("ratelimit_cache", tests, NULL, NULL);
}
