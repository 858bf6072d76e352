/*
 * scanflags.h - the scan flags that `mxscan scan` and `mxscan check` both
 * accept (--resolver, --dns-timeout, --dns-tries, --port, --tls-on-connect,
 * --helo, --timeout, --ca-file, --ca-path, --max-addrs, --aka,
 * --expiry-warning, --expect-ocsp, --enum): their getopt_long ids and
 * entries, and one place that checks their values and applies them to a
 * scan_config_t. Each command keeps its own flags, its own --help text and
 * its own way of reporting a bad value.
 */
#ifndef MXSCAN_SCANFLAGS_H
#define MXSCAN_SCANFLAGS_H

#include <getopt.h>
#include <stddef.h>

#include "scanner/scan.h"

/* getopt_long ids of the shared flags. They are above every short option
 * (256 up); a command numbers its own long-only flags from SCANFLAGS_END. */
enum scanflags_opt {
    SF_RESOLVER = 256,
    SF_DNS_TIMEOUT,
    SF_DNS_TRIES,
    SF_PORT,
    SF_TLS_ON_CONNECT,
    SF_HELO,
    SF_TIMEOUT,
    SF_CA_FILE,
    SF_CA_PATH,
    SF_MAX_ADDRS,
    SF_AKA,
    SF_EXPIRY_WARNING,
    SF_EXPECT_OCSP,
    SF_ENUM,
    SCANFLAGS_END
};

/* How many struct option entries the shared flags take. */
#define SCANFLAGS_NOPTS (SCANFLAGS_END - SF_RESOLVER)

/* The size of a full getopt_long table made of a command's own entries
 * (an array ending with the all-zero entry) and the shared ones. */
#define SCANFLAGS_TABLE_LEN(own) (sizeof(own) / sizeof *(own) + SCANFLAGS_NOPTS)

/* At most this many --aka names. */
#define SCANFLAGS_MAX_AKA 64

/* Room for any message of scanflags_apply but a very long quoted value,
 * which is cut. */
#define SCANFLAGS_ERR_MAX 512

/* What the shared flags gather beyond single config fields: the --aka
 * names (c->aka points here after scanflags_finish, so this must live as
 * long as the config) and whether --port was given. Zero it to start. */
typedef struct scanflags {
    const char *aka[SCANFLAGS_MAX_AKA];
    int naka;
    int port_set;
} scanflags_t;

/* Writes a command's own entries (up to its all-zero entry), then the
 * shared ones and the all-zero entry, into out (cap entries). Returns 0,
 * or -1 when cap is too small (SCANFLAGS_TABLE_LEN(own) is enough). */
int scanflags_table(struct option *out, size_t cap, const struct option *own);

/* Applies getopt_long's result opt, with its argument arg, when it is a
 * shared flag. Returns 1 when it was, 0 when opt is not a shared flag, and
 * -1 on a bad value with the message in err (no prefix, no newline). */
int scanflags_apply(scanflags_t *sf, scan_config_t *c, int opt, const char *arg, char *err,
                    size_t errlen);

/* After the last flag: --tls-on-connect without --port means port 465, and
 * the --aka names go into c. */
void scanflags_finish(scanflags_t *sf, scan_config_t *c);

/* Parses a whole number in [lo, hi] into *out. Returns 0, or -1 when v is
 * not one. */
int scanflags_num(const char *v, long lo, long hi, long *out);

/* Parses a duration in whole days, hours, minutes or seconds (14d, 36h,
 * 90m, 30s; a bare number is days), at most ten years, into *out in
 * seconds. Returns 0, or -1 when v is not one. */
int scanflags_duration_s(const char *v, long *out);

#endif
