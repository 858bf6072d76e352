/*
 * test_cache_lru.c - the bounded MX host cache (scanner/cache.c,
 * cache_set_limit / cache_trim): done entries are evicted least recently
 * used first, only once their rows are committed, never while in flight.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "scanner/cache.h"

static cache_entry_t *add_done(cache_t *c, const char *name, uint64_t seq)
{
    int created = 0;
    cache_entry_t *e = cache_get(c, name, &created);
    assert_non_null(e);
    assert_int_equal(created, 1);
    e->seq = seq;
    e->sum.n_tls = (int)seq;
    cache_complete(e);
    return e;
}

static int present(cache_t *c, const char *name)
{
    /* cache_get creates missing entries: count before and after instead */
    size_t n = cache_count(c);
    int created = 0;
    cache_get(c, name, &created);
    assert_int_equal(cache_count(c), n + (size_t)created);
    return !created;
}

/* Over the limit, the least recently used committed entries go first; an
 * entry used again moves to the back; uncommitted ones stay. */
static void test_lru_order_and_commit(void **state)
{
    (void)state;
    cache_t *c = cache_new();
    char name[64];
    for (int i = 1; i <= 100; i++) {
        snprintf(name, sizeof name, "mx%d.example", i);
        add_done(c, name, (uint64_t)i);
    }
    size_t full = cache_mem(c);
    int created;
    cache_get(c, "mx1.example", &created); /* used again: now the most recent */
    assert_int_equal(created, 0);
    /* room for about half the entries */
    cache_set_limit(c, full - 50 * (full - 8192) / 100);
    /* nothing committed yet: nothing may go */
    assert_int_equal(cache_trim(c, 0), 0);
    assert_int_equal(cache_count(c), 100);
    /* rows of the first 30 committed: those go (mx1 is at the back and stays) */
    size_t n = cache_trim(c, 30);
    assert_int_equal(n, 29);
    assert_int_equal(cache_evicted(c), 29);
    assert_true(present(c, "mx1.example"));
    assert_false(present(c, "mx2.example")); /* (re-created by the look-up) */
    assert_true(present(c, "mx31.example"));
    /* everything committed: trimmed to the limit */
    cache_trim(c, 1000);
    assert_true(cache_mem(c) <= full - 50 * (full - 8192) / 100);
    assert_true(present(c, "mx100.example"));
    cache_free(c);
}

static void waiter_cb(void *arg, const host_summary_t *sum)
{
    *(int *)arg = sum->n_tls;
}

/* An entry in flight (not done, with waiters) is never evicted. */
static void test_in_flight_kept(void **state)
{
    (void)state;
    cache_t *c = cache_new();
    cache_set_limit(c, 1); /* below anything: evict all that may go */
    int created, got = 0;
    cache_entry_t *e = cache_get(c, "busy.example", &created);
    cache_wait(e, waiter_cb, &got);
    add_done(c, "done.example", 1);
    assert_int_equal(cache_trim(c, 10), 1);
    assert_int_equal(cache_count(c), 1);
    e->sum.n_tls = 7;
    cache_complete(e);
    assert_int_equal(got, 7);
    e->seq = 11;
    assert_int_equal(cache_trim(c, 10), 0); /* its rows are not committed yet */
    assert_int_equal(cache_trim(c, 11), 1);
    assert_int_equal(cache_count(c), 0);
    cache_free(c);
}

/* Without a limit nothing is evicted; memory is accounted. */
static void test_unbounded(void **state)
{
    (void)state;
    cache_t *c = cache_new();
    size_t empty = cache_mem(c);
    char name[64];
    for (int i = 0; i < 5000; i++) {
        snprintf(name, sizeof name, "host-%d.example.net", i);
        add_done(c, name, 1);
    }
    assert_true(cache_mem(c) > empty + 5000 * sizeof(cache_entry_t));
    assert_int_equal(cache_trim(c, 100), 0);
    assert_int_equal(cache_count(c), 5000);
    cache_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lru_order_and_commit),
        cmocka_unit_test(test_in_flight_kept),
        cmocka_unit_test(test_unbounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
