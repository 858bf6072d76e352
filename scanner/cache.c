/*
 * cache.c - the single-flight MX host cache: a chained hash table of host
 * names to entries, grown by doubling, with a waiter list per entry.
 */
#include "scanner/cache.h"

#include <stdlib.h>
#include <string.h>

struct cache {
    cache_entry_t **buckets;
    size_t nbuckets, count;
    cache_entry_t *lru_head, *lru_tail; /* done entries: head = least recently used */
    size_t mem, limit;                  /* limit 0: unbounded */
    uint64_t evicted;
};

/* What one entry costs: the struct, its name and the allocator's header. */
static size_t entry_mem(const cache_entry_t *e)
{
    return sizeof *e + strlen(e->name) + 1 + 16;
}

static void lru_unlink(cache_t *c, cache_entry_t *e)
{
    if (e->lru_prev) {
        e->lru_prev->lru_next = e->lru_next;
    } else if (c->lru_head == e) {
        c->lru_head = e->lru_next;
    }
    if (e->lru_next) {
        e->lru_next->lru_prev = e->lru_prev;
    } else if (c->lru_tail == e) {
        c->lru_tail = e->lru_prev;
    }
    e->lru_prev = e->lru_next = NULL;
}

static void lru_push(cache_t *c, cache_entry_t *e)
{
    e->lru_prev = c->lru_tail;
    e->lru_next = NULL;
    if (c->lru_tail) {
        c->lru_tail->lru_next = e;
    } else {
        c->lru_head = e;
    }
    c->lru_tail = e;
}

/* FNV-1a of a host name. */
static size_t hash_name(const char *s)
{
    size_t h = 1469598103934665603ull;
    while (*s) {
        h = (h ^ (unsigned char)*s++) * 1099511628211ull;
    }
    return h;
}

/* Creates an empty cache. */
cache_t *cache_new(void)
{
    cache_t *c = calloc(1, sizeof *c);
    if (!c) {
        return NULL;
    }
    c->nbuckets = 1024;
    c->buckets = calloc(c->nbuckets, sizeof *c->buckets);
    c->mem = c->nbuckets * sizeof *c->buckets;
    if (!c->buckets) {
        free(c);
        return NULL;
    }
    return c;
}

/* Frees every entry (waiters are expected to be gone). */
void cache_free(cache_t *c)
{
    if (!c) {
        return;
    }
    for (size_t b = 0; b < c->nbuckets; b++) {
        cache_entry_t *e = c->buckets[b];
        while (e) {
            cache_entry_t *n = e->hnext;
            cache_waiter_t *w = e->waiters;
            while (w) {
                cache_waiter_t *wn = w->next;
                free(w);
                w = wn;
            }
            free(e);
            e = n;
        }
    }
    free(c->buckets);
    free(c);
}

/* Doubles the table when the chains get long. */
static void grow(cache_t *c)
{
    size_t nb = c->nbuckets * 2;
    cache_entry_t **b = calloc(nb, sizeof *b);
    if (!b) {
        return; /* longer chains, still correct */
    }
    for (size_t i = 0; i < c->nbuckets; i++) {
        cache_entry_t *e = c->buckets[i];
        while (e) {
            cache_entry_t *n = e->hnext;
            size_t k = hash_name(e->name) & (nb - 1);
            e->hnext = b[k];
            b[k] = e;
            e = n;
        }
    }
    free(c->buckets);
    c->mem += (nb - c->nbuckets) * sizeof *b;
    c->buckets = b;
    c->nbuckets = nb;
}

/* Looks a host up, creating its entry when new. */
cache_entry_t *cache_get(cache_t *c, const char *host, int *created)
{
    size_t k = hash_name(host) & (c->nbuckets - 1);
    for (cache_entry_t *e = c->buckets[k]; e; e = e->hnext) {
        if (strcmp(e->name, host) == 0) {
            *created = 0;
            if (e->done && c->lru_tail != e) {
                lru_unlink(c, e);
                lru_push(c, e); /* most recently used */
            }
            return e;
        }
    }
    size_t n = strlen(host);
    cache_entry_t *e = calloc(1, sizeof *e + n + 1);
    if (!e) {
        return NULL;
    }
    memcpy(e->name, host, n + 1);
    e->owner = c;
    c->mem += entry_mem(e);
    e->hnext = c->buckets[k];
    c->buckets[k] = e;
    *created = 1;
    if (++c->count > c->nbuckets * 2) {
        grow(c);
    }
    return e;
}

/* Waits for an entry; see cache.h. */
int cache_wait(cache_entry_t *e, cache_wait_cb cb, void *arg)
{
    if (e->done) {
        cb(arg, &e->sum);
        return 0;
    }
    cache_waiter_t *w = malloc(sizeof *w);
    if (!w) {
        return -1;
    }
    w->cb = cb;
    w->arg = arg;
    w->next = e->waiters;
    e->waiters = w;
    return 0;
}

/* Completes an entry and wakes its waiters. */
void cache_complete(cache_entry_t *e)
{
    if (!e->done && e->owner) {
        lru_push(e->owner, e);
    }
    e->done = 1;
    cache_waiter_t *w = e->waiters;
    e->waiters = NULL;
    while (w) {
        cache_waiter_t *n = w->next;
        w->cb(w->arg, &e->sum);
        free(w);
        w = n;
    }
}

/* Hosts in the cache. */
size_t cache_count(const cache_t *c)
{
    return c->count;
}

/* Sets the memory limit; 0 = unbounded. */
void cache_set_limit(cache_t *c, size_t bytes)
{
    c->limit = bytes;
}

/* Bytes held; see cache.h. */
size_t cache_mem(const cache_t *c)
{
    return c->mem;
}

/* Entries evicted so far. */
uint64_t cache_evicted(const cache_t *c)
{
    return c->evicted;
}

/* Evicts least recently used done entries whose rows are committed. The
 * LRU order is completion order except for entries used again, whose rows
 * are older, so the walk stops at the first entry not yet committed: each
 * call costs what it evicts, plus one. */
size_t cache_trim(cache_t *c, uint64_t committed)
{
    size_t n = 0;
    if (c->limit == 0) {
        return 0;
    }
    cache_entry_t *e = c->lru_head;
    while (e && c->mem > c->limit) {
        cache_entry_t *next = e->lru_next;
        if (e->seq > committed) {
            break; /* completed after this are newer still: wait for commits */
        }
        if (!e->waiters) {
            lru_unlink(c, e);
            size_t k = hash_name(e->name) & (c->nbuckets - 1);
            cache_entry_t **pp = &c->buckets[k];
            while (*pp && *pp != e) {
                pp = &(*pp)->hnext;
            }
            if (*pp) {
                *pp = e->hnext;
            }
            c->mem -= entry_mem(e);
            c->count--;
            c->evicted++;
            free(e);
            n++;
        }
        e = next;
    }
    return n;
}
