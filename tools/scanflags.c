/*
 * scanflags.c - the scan flags shared by `mxscan scan` and `mxscan check`:
 * one getopt_long table, one check of each value with one message, one
 * place that writes them into the scan configuration. See scanflags.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tools/scanflags.h"

/* The shared entries, in the order of enum scanflags_opt. */
static const struct option shared_opts[SCANFLAGS_NOPTS] = {
    {"resolver", required_argument, 0, SF_RESOLVER},
    {"dns-timeout", required_argument, 0, SF_DNS_TIMEOUT},
    {"dns-tries", required_argument, 0, SF_DNS_TRIES},
    {"port", required_argument, 0, SF_PORT},
    {"tls-on-connect", no_argument, 0, SF_TLS_ON_CONNECT},
    {"helo", required_argument, 0, SF_HELO},
    {"timeout", required_argument, 0, SF_TIMEOUT},
    {"ca-file", required_argument, 0, SF_CA_FILE},
    {"ca-path", required_argument, 0, SF_CA_PATH},
    {"max-addrs", required_argument, 0, SF_MAX_ADDRS},
    {"aka", required_argument, 0, SF_AKA},
    {"expiry-warning", required_argument, 0, SF_EXPIRY_WARNING},
    {"expect-ocsp", no_argument, 0, SF_EXPECT_OCSP},
    {"enum", no_argument, 0, SF_ENUM},
};

/* Builds a command's full getopt_long table: its own entries, then ours. */
int scanflags_table(struct option *out, size_t cap, const struct option *own)
{
    size_t n = 0;
    while (own[n].name) {
        n++;
    }
    if (n + SCANFLAGS_NOPTS + 1 > cap) {
        return -1;
    }
    memcpy(out, own, n * sizeof *out);
    memcpy(out + n, shared_opts, sizeof shared_opts);
    memset(&out[n + SCANFLAGS_NOPTS], 0, sizeof *out);
    return 0;
}

/* Parses a whole number in [lo, hi]; -1 when it is not one. */
int scanflags_num(const char *v, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < lo || n > hi) {
        return -1;
    }
    *out = n;
    return 0;
}

/* Parses a duration: seconds, or a number with ms or s, from 1 ms to an
 * hour. Returns 0, or -1 when v is not one. */
static int parse_ms(const char *v, uint64_t *out)
{
    char *end;
    errno = 0;
    double n = strtod(v, &end);
    double mult = strcmp(end, "ms") == 0 ? 1 : strcmp(end, "s") == 0 || *end == 0 ? 1000 : -1;
    if (errno || end == v || mult < 0 || !(n > 0) || n * mult > 3600e3 || n * mult < 1) {
        return -1;
    }
    *out = (uint64_t)(n * mult);
    return 0;
}

/* Parses a duration in days, hours, minutes or seconds; -1 when it is not one. */
int scanflags_duration_s(const char *v, long *out)
{
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    long mult = strcmp(end, "d") == 0 || *end == 0 ? 86400
                : strcmp(end, "h") == 0            ? 3600
                : strcmp(end, "m") == 0            ? 60
                : strcmp(end, "s") == 0            ? 1
                                                   : -1;
    if (errno || end == v || n < 0 || mult < 0 || n > 3650L * 86400 / mult) {
        return -1;
    }
    *out = n * mult;
    return 0;
}

/* Parses a whole number flag in [lo, hi] into *out, else writes the
 * message. Returns 1 or -1, as scanflags_apply does. */
static int num_flag(const char *flag, const char *arg, long lo, long hi, int *out, char *err,
                    size_t errlen)
{
    long n;
    if (scanflags_num(arg, lo, hi, &n) < 0) {
        snprintf(err, errlen, "%s wants a whole number from %ld to %ld, not '%s'", flag, lo, hi,
                 arg);
        return -1;
    }
    *out = (int)n;
    return 1;
}

/* Checks and applies one shared flag; 0 when opt is not one of them. */
int scanflags_apply(scanflags_t *sf, scan_config_t *c, int opt, const char *arg, char *err,
                    size_t errlen)
{
    long n;
    switch (opt) {
    case SF_RESOLVER:
        c->resolvers = arg;
        return 1;
    case SF_DNS_TIMEOUT:
        if (scanflags_num(arg, 10, 60000, &n) < 0) {
            snprintf(err, errlen, "--dns-timeout wants milliseconds from 10 to 60000, not '%s'",
                     arg);
            return -1;
        }
        c->dns_timeout_ms = (int)n;
        return 1;
    case SF_DNS_TRIES:
        return num_flag("--dns-tries", arg, 1, 10, &c->dns_tries, err, errlen);
    case SF_PORT:
        if (num_flag("--port", arg, 1, 65535, &c->port, err, errlen) < 0) {
            return -1;
        }
        sf->port_set = 1;
        return 1;
    case SF_TLS_ON_CONNECT:
        c->tls_on_connect = 1;
        return 1;
    case SF_HELO:
        if (!*arg || strlen(arg) > 255 || strpbrk(arg, " \t\r\n")) {
            snprintf(err, errlen, "--helo wants a host name, not '%s'", arg);
            return -1;
        }
        c->helo = arg;
        return 1;
    case SF_TIMEOUT:
        if (parse_ms(arg, &c->timeout_ms) < 0) {
            snprintf(err, errlen,
                     "--timeout wants a duration such as 15, 10s or 500ms (at most 1h), "
                     "not '%s'",
                     arg);
            return -1;
        }
        return 1;
    case SF_CA_FILE:
        c->ca_file = arg;
        return 1;
    case SF_CA_PATH:
        c->ca_path = arg;
        return 1;
    case SF_MAX_ADDRS:
        return num_flag("--max-addrs", arg, 1, 32, &c->max_addrs, err, errlen);
    case SF_AKA:
        if (sf->naka == SCANFLAGS_MAX_AKA) {
            snprintf(err, errlen, "at most %d --aka names", SCANFLAGS_MAX_AKA);
            return -1;
        }
        sf->aka[sf->naka++] = arg;
        return 1;
    case SF_EXPIRY_WARNING:
        if (scanflags_duration_s(arg, &c->expiry_warning_s) < 0) {
            snprintf(err, errlen,
                     "--expiry-warning wants a duration such as 14d, 36h or 90m, not '%s'", arg);
            return -1;
        }
        return 1;
    case SF_EXPECT_OCSP:
        c->expect_ocsp = 1;
        return 1;
    case SF_ENUM:
        c->enum_versions = 1;
        return 1;
    default:
        return 0;
    }
}

/* Settles what depends on several flags: the port, the --aka list. */
void scanflags_finish(scanflags_t *sf, scan_config_t *c)
{
    if (c->tls_on_connect && !sf->port_set) {
        c->port = 465;
    }
    c->aka = sf->aka;
    c->naka = sf->naka;
}
