/*
 * scan.h - one scan run: the pipeline from a domain list to the database.
 *
 * The input is read on its own thread into a bounded ring, so a slow stdin
 * never stalls the loop and a 10-million-line file is never in memory. The
 * libuv loop admits domains from the ring while the number of domains in
 * flight and the writer's backlog stay under their caps, looks up MX and
 * addresses (dns.c), shares MX hosts through the single-flight cache
 * (cache.c), opens sessions through the rate limiter (ratelimit.c) and
 * smtp.c, judges with verdict.c, and hands rows to the writer thread (db/).
 */
#ifndef MXSCAN_SCAN_H
#define MXSCAN_SCAN_H

#include <stddef.h>
#include <stdint.h>

#include "scanner/ratelimit.h"

#define SCAN_DEFAULT_HELO "mxscan.invalid"

typedef struct scan_config {
    const char *input_path; /* NULL: the domains below */
    char *const *domains;
    int ndomains;
    int csv_column;
    const char *db_path;
    const char *resolvers; /* NULL: DNS_RESOLVER, else /etc/resolv.conf */
    const char *helo;
    int port;
    int tls_on_connect;
    uint64_t timeout_ms; /* deadline of each SMTP step */
    int dns_timeout_ms;
    int dns_tries;
    rl_limits_t limits;
    int max_domains; /* domains in flight */
    int max_addrs;   /* addresses scanned per MX host */
    const char *ca_file, *ca_path;
    const char *const *aka; /* further names accepted in MX certificates (--aka) */
    int naka;
    long expiry_warning_s; /* cert.expiring horizon */
    int expect_ocsp;       /* a missing OCSP staple is crit */
    int sts_port;          /* MTA-STS policy host port (443) */
    int enum_versions;     /* --enum: one more session per protocol version */
    int quiet;
    int silent; /* no end-of-scan summary either (mxscan check) */
    int parse_only;
    size_t dedup_mem;
    size_t cache_mem;         /* memory of the MX host cache (--cache-mem) */
    unsigned shard_i;         /* --shard I/N: scan the domains with input_shard_of() == I */
    unsigned shard_n;         /* 0: no sharding */
    int64_t resume_scan;      /* > 0: continue this unfinished scan (--resume) */
    const char *exclude_path; /* --exclude FILE */
    uint64_t backoff_ms;      /* no new connection to an IP for this long after 421/4xx */
    uint64_t retry_ms; /* a transient failure is tried once more this much later; 0 = never */
    const char *arguments_json;
} scan_config_t;

/* Fills the defaults documented in --help. */
void scan_config_defaults(scan_config_t *c);
/* Runs a scan; returns the process exit status (0 done, 1 failed, 130
 * interrupted). Start-up errors are printed to stderr. */
int scan_run(const scan_config_t *c);

#endif
