/*
 * cache.h - the MX host cache of a scan, single-flight.
 *
 * The first domain that needs an MX host creates its entry and starts the
 * host's lookups and sessions; every later domain waits on that entry and
 * gets the same summary when it is done. A host shared by 100,000 domains
 * is resolved and connected to once. Entries keep only the small summary
 * that domain verdicts need; the full facts go to the database once.
 * The cache is bounded (cache_set_limit): see cache_trim.
 */
#ifndef MXSCAN_CACHE_H
#define MXSCAN_CACHE_H

#include <stddef.h>
#include <stdint.h>

/* What a domain needs to know of one of its MX hosts. */
typedef struct host_summary {
    int dns_failed;     /* A and AAAA lookups both failed (SERVFAIL, timeout, ...) */
    char dns_error[64]; /* e.g. "A SERVFAIL" */
    int cname;          /* the name is a CNAME */
    int n_addrs, n_v6;
    int n_endpoints;
    int n_reached;     /* endpoints that completed EHLO or HELO */
    int n_tls;         /* endpoints with a completed TLS handshake */
    int n_pkix_valid;  /* of those, with a PKIX-valid certificate for the host name */
    int dnssec_secure; /* every address answer had AD */
    int dane_usable;   /* usable TLSA records: its sessions are DANE-verified */
    int dane_broken;   /* DANE published but failing: mismatch, unusable, no STARTTLS, bogus */
    int n_dane_valid;  /* endpoints whose chain matched a usable TLSA record */
    int n_crit, n_warn, n_info; /* findings stored against this host */
    int n_excluded;             /* addresses not scanned: --exclude lists them */
} host_summary_t;

typedef void (*cache_wait_cb)(void *arg, const host_summary_t *sum);

typedef struct cache_waiter {
    struct cache_waiter *next;
    cache_wait_cb cb;
    void *arg;
} cache_waiter_t;

typedef struct cache cache_t;

typedef struct cache_entry {
    struct cache_entry *hnext;
    struct cache_entry *lru_prev, *lru_next; /* done entries, least recently used first */
    cache_t *owner;
    int done;
    uint64_t seq; /* the database batch that stores the host (0: none to wait for) */
    host_summary_t sum;
    cache_waiter_t *waiters;
    char name[];
} cache_entry_t;

cache_t *cache_new(void);
void cache_free(cache_t *c);
/* Returns the entry of host, creating it (and setting *created) if new. */
cache_entry_t *cache_get(cache_t *c, const char *host, int *created);
/* Calls cb when the entry is done: at once if it already is. */
int cache_wait(cache_entry_t *e, cache_wait_cb cb, void *arg);
/* Marks the entry done and wakes its waiters. */
void cache_complete(cache_entry_t *e);
size_t cache_count(const cache_t *c);

/*
 * Bounded memory (--cache-mem). A done entry can be evicted once the batch
 * that stores its host is committed (seq <= committed); the scan then finds
 * the host in the database (hosts.summary) instead of scanning it again.
 * Entries in flight are never evicted. Least recently used go first.
 */
void cache_set_limit(cache_t *c, size_t bytes);
/* Bytes the cache holds: entries, names and the bucket array. */
size_t cache_mem(const cache_t *c);
/* Evicts done entries, least recently used first, whose seq is at most
 * committed, until the cache is within its limit. Returns how many. */
size_t cache_trim(cache_t *c, uint64_t committed);
/* Entries evicted so far. */
uint64_t cache_evicted(const cache_t *c);

#endif
