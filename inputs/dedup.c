/*
 * dedup.c - fixed-size filter of recently seen names (input_dedup_*).
 *
 * The table is allocated once and never grows: a power of two number of
 * 8-byte slots, grouped in buckets of 8 slots (one 64-byte cache line), each
 * slot holding a 64-bit fingerprint of a name (0 marks an empty slot). A
 * name maps to one bucket; a lookup reads that line only. Each bucket is
 * kept in order of last use, newest first, so a miss in a full bucket
 * evicts the least recently seen name: top lists repeat names close to each
 * other, and those are the ones worth remembering.
 *
 * A hit means the same 64-bit fingerprint was stored, so a false "seen"
 * needs a 64-bit collision (about n*m/2^64 for n names against m stored).
 * A miss may be a duplicate that was evicted; the database's primary key
 * catches those.
 */
#include "inputs/input.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define BUCKET_SLOTS 8
#define MIN_SLOTS    1024

struct input_dedup {
    uint64_t *slots;
    size_t nbuckets; /* a power of two */
};

/* FNV-1a over the name, then the splitmix64 finalizer to spread the bits. */
static uint64_t fingerprint(const char *name)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ULL;
    }
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    /* 0 marks an empty slot; give its one name another fingerprint. */
    return h ? h : 0x9e3779b97f4a7c15ULL;
}

/* Allocates a table of mem bytes, rounded down to a power of two slots. */
input_dedup_t *input_dedup_new(size_t mem)
{
    size_t want = mem / sizeof(uint64_t);
    size_t slots = MIN_SLOTS;
    while (slots <= SIZE_MAX / 2 / sizeof(uint64_t) && slots * 2 <= want)
        slots *= 2;

    input_dedup_t *d = malloc(sizeof(*d));
    if (!d)
        return NULL;
    /* Anonymous memory is zero (empty) already and page-aligned (one bucket
     * per cache line); a page becomes resident only when a bucket in it is
     * first used, so a small scan does not pay for the whole table. */
    void *m = mmap(NULL, slots * sizeof(uint64_t), PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        free(d);
        return NULL;
    }
    d->slots = m;
    d->nbuckets = slots / BUCKET_SLOTS;
    return d;
}

/* Looks name up, moves it to the front of its bucket, inserts it on a miss. */
int input_dedup_seen(input_dedup_t *d, const char *name)
{
    uint64_t h = fingerprint(name);
    uint64_t *b = d->slots + (h & (d->nbuckets - 1)) * BUCKET_SLOTS;
    size_t i;
    /* Slots fill from the front, so the first empty one ends the search. */
    for (i = 0; i < BUCKET_SLOTS && b[i] != 0; i++) {
        if (b[i] == h) {
            memmove(b + 1, b, i * sizeof(uint64_t));
            b[0] = h;
            return 1;
        }
    }
    /* Miss: shift the others back, dropping the last (oldest) when full. */
    if (i == BUCKET_SLOTS)
        i--;
    memmove(b + 1, b, i * sizeof(uint64_t));
    b[0] = h;
    return 0;
}

/* Releases the table. */
void input_dedup_free(input_dedup_t *d)
{
    if (!d)
        return;
    munmap(d->slots, d->nbuckets * BUCKET_SLOTS * sizeof(uint64_t));
    free(d);
}

/* The shard of a name: see input.h. Plain FNV-1a 64 (no finaliser), so
 * that the value is easy to reproduce in other tools (docs/sharding.md). */
unsigned input_shard_of(const char *name, unsigned n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ULL;
    }
    return n > 1 ? (unsigned)(h % n) : 0;
}
