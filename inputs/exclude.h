/*
 * exclude.h - the exclusion list (`mxscan scan --exclude FILE`).
 *
 * Operators ask scanners not to touch their networks. The list names
 * addresses, CIDR prefixes (IPv4 and IPv6) and domain names, one per line,
 * in zmap's blocklist style extended with names; docs/exclude.md gives the
 * format. A loaded list is read-only: lookups may run from any thread.
 *
 * Addresses are matched against sorted, merged intervals by binary search;
 * a name is matched by probing a hash set with the name and each of its
 * parents. Both cost O(log n) or O(labels) per call, whatever the size of
 * the list.
 */
#ifndef MXSCAN_EXCLUDE_H
#define MXSCAN_EXCLUDE_H

#include <stddef.h>

#define EXCLUDE_LINE_MAX 1000 /* bytes in a line, without its "\n" or "\r\n"; longer: error */

typedef struct exclude exclude_t;

/* Reads and parses a plain-text file. Returns NULL with a message in err
 * ("FILE: No such file or directory", "FILE:12: not an address, prefix or
 * domain name: 'foo bar'"); the first error stops the load. */
exclude_t *exclude_load(const char *path, char *err, size_t errlen);

/* Parses len bytes of list text; name is the file named in messages (NULL:
 * "exclude"). Returns NULL with a message in err. */
exclude_t *exclude_parse(const char *buf, size_t len, const char *name, char *err, size_t errlen);

void exclude_free(exclude_t *ex);

/*
 * Address lookups. 1: the address is in a listed prefix; 0: it is not, or ex
 * is NULL (no list). An IPv4-mapped IPv6 address (::ffff:a.b.c.d) is also
 * checked against the IPv4 prefixes. -1: ip is not an address (exclude_ip)
 * or family is neither AF_INET nor AF_INET6 (exclude_addr); -1 is non-zero,
 * so a caller that skips on a non-zero result skips what it cannot check.
 * exclude_addr takes the address bytes in network order (struct in_addr or
 * struct in6_addr).
 */
int exclude_ip(const exclude_t *ex, const char *ip);
int exclude_addr(const exclude_t *ex, int family, const void *addr);

/* 1 if name or one of its parents is listed ("mx.example.com" when
 * "example.com" is), else 0; 0 too when ex is NULL. name should be lower
 * case without a trailing dot (as input_normalize gives it); upper case and
 * one trailing dot are tolerated. */
int exclude_domain(const exclude_t *ex, const char *name);

/* Entries in the list, duplicates counted once: address and prefix entries
 * (after masking; an address counts as a /32 or /128), and domain names. */
size_t exclude_count_prefixes(const exclude_t *ex);
size_t exclude_count_domains(const exclude_t *ex);

#endif
