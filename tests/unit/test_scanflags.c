/*
 * test_scanflags.c - unit tests of tools/scanflags.c, the scan flags that
 * `mxscan scan` and `mxscan check` share: the ranges of the values, the
 * messages of bad ones, what is written into the scan configuration, and
 * the getopt_long table made of a command's own entries and the shared
 * ones.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "tools/scanflags.h"

/* A fresh configuration and flag state for each test. */
typedef struct fixture {
    scanflags_t sf;
    scan_config_t c;
    char err[SCANFLAGS_ERR_MAX];
} fixture_t;

static fixture_t fx;

/* Resets the fixture: defaults, no flags seen. */
static int setup(void **state)
{
    (void)state;
    memset(&fx, 0, sizeof fx);
    scan_config_defaults(&fx.c);
    return 0;
}

/* Applies one flag and returns what scanflags_apply returned. */
static int apply(int opt, const char *arg)
{
    fx.err[0] = 0;
    return scanflags_apply(&fx.sf, &fx.c, opt, arg, fx.err, sizeof fx.err);
}

/* Whole-number flags take their bounds and refuse one past either. */
static void test_number_ranges(void **state)
{
    (void)state;
    assert_int_equal(apply(SF_DNS_TIMEOUT, "10"), 1);
    assert_int_equal(fx.c.dns_timeout_ms, 10);
    assert_int_equal(apply(SF_DNS_TIMEOUT, "60000"), 1);
    assert_int_equal(fx.c.dns_timeout_ms, 60000);
    assert_int_equal(apply(SF_DNS_TIMEOUT, "9"), -1);
    assert_string_equal(fx.err, "--dns-timeout wants milliseconds from 10 to 60000, not '9'");
    assert_int_equal(apply(SF_DNS_TRIES, "10"), 1);
    assert_int_equal(fx.c.dns_tries, 10);
    assert_int_equal(apply(SF_DNS_TRIES, "0"), -1);
    assert_string_equal(fx.err, "--dns-tries wants a whole number from 1 to 10, not '0'");
    assert_int_equal(apply(SF_MAX_ADDRS, "32"), 1);
    assert_int_equal(fx.c.max_addrs, 32);
    assert_int_equal(apply(SF_MAX_ADDRS, "33"), -1);
    assert_int_equal(apply(SF_PORT, "65536"), -1);
    assert_string_equal(fx.err, "--port wants a whole number from 1 to 65535, not '65536'");
    assert_int_equal(apply(SF_PORT, "25x"), -1);
    assert_int_equal(apply(SF_PORT, ""), -1);
}

/* --port counts as given only when its value is good; --tls-on-connect
 * without it means 465. */
static void test_port_and_tls_on_connect(void **state)
{
    (void)state;
    assert_int_equal(apply(SF_TLS_ON_CONNECT, NULL), 1);
    assert_int_equal(apply(SF_PORT, "0"), -1);
    scanflags_finish(&fx.sf, &fx.c);
    assert_int_equal(fx.c.port, 465);
    assert_int_equal(apply(SF_PORT, "2525"), 1);
    scanflags_finish(&fx.sf, &fx.c);
    assert_int_equal(fx.c.port, 2525);
}

/* Durations: --timeout from 1 ms to an hour, --expiry-warning in units
 * up to ten years. */
static void test_durations(void **state)
{
    (void)state;
    assert_int_equal(apply(SF_TIMEOUT, "500ms"), 1);
    assert_int_equal(fx.c.timeout_ms, 500);
    assert_int_equal(apply(SF_TIMEOUT, "10s"), 1);
    assert_int_equal(fx.c.timeout_ms, 10000);
    assert_int_equal(apply(SF_TIMEOUT, "3600"), 1);
    assert_int_equal(fx.c.timeout_ms, 3600000);
    static const char *const bad_ms[] = {"0", "3601", "0.5ms", "nan", "1h", "soon", ""};
    for (size_t i = 0; i < sizeof bad_ms / sizeof *bad_ms; i++) {
        assert_int_equal(apply(SF_TIMEOUT, bad_ms[i]), -1);
    }
    assert_string_equal(fx.err,
                        "--timeout wants a duration such as 15, 10s or 500ms (at most 1h), not ''");
    assert_int_equal(fx.c.timeout_ms, 3600000); /* a bad value changes nothing */
    assert_int_equal(apply(SF_EXPIRY_WARNING, "36h"), 1);
    assert_int_equal(fx.c.expiry_warning_s, 36 * 3600);
    assert_int_equal(apply(SF_EXPIRY_WARNING, "14"), 1);
    assert_int_equal(fx.c.expiry_warning_s, 14 * 86400);
    assert_int_equal(apply(SF_EXPIRY_WARNING, "3650d"), 1);
    assert_int_equal(apply(SF_EXPIRY_WARNING, "3651d"), -1);
    assert_int_equal(apply(SF_EXPIRY_WARNING, "-1"), -1);
    assert_int_equal(apply(SF_EXPIRY_WARNING, "2w"), -1);
    assert_string_equal(fx.err,
                        "--expiry-warning wants a duration such as 14d, 36h or 90m, not '2w'");
}

/* --helo wants one token of at most 255 bytes; the plain settings are
 * stored as given. */
static void test_names_and_switches(void **state)
{
    (void)state;
    char longname[257];
    memset(longname, 'a', 256);
    longname[256] = 0;
    assert_int_equal(apply(SF_HELO, longname), -1);
    assert_int_equal(apply(SF_HELO, "a b"), -1);
    assert_string_equal(fx.err, "--helo wants a host name, not 'a b'");
    assert_int_equal(apply(SF_HELO, "probe.example"), 1);
    assert_string_equal(fx.c.helo, "probe.example");
    assert_int_equal(apply(SF_RESOLVER, "127.0.0.1:53"), 1);
    assert_string_equal(fx.c.resolvers, "127.0.0.1:53");
    assert_int_equal(apply(SF_CA_FILE, "ca.pem"), 1);
    assert_int_equal(apply(SF_CA_PATH, "/etc/ssl/certs"), 1);
    assert_string_equal(fx.c.ca_file, "ca.pem");
    assert_string_equal(fx.c.ca_path, "/etc/ssl/certs");
    assert_int_equal(apply(SF_EXPECT_OCSP, NULL), 1);
    assert_int_equal(apply(SF_ENUM, NULL), 1);
    assert_int_equal(fx.c.expect_ocsp, 1);
    assert_int_equal(fx.c.enum_versions, 1);
}

/* At most 64 --aka names, handed to the configuration by finish. */
static void test_aka(void **state)
{
    (void)state;
    for (int i = 0; i < SCANFLAGS_MAX_AKA; i++) {
        assert_int_equal(apply(SF_AKA, "mx.example"), 1);
    }
    assert_int_equal(apply(SF_AKA, "one.too.many"), -1);
    assert_string_equal(fx.err, "at most 64 --aka names");
    scanflags_finish(&fx.sf, &fx.c);
    assert_int_equal(fx.c.naka, SCANFLAGS_MAX_AKA);
    assert_string_equal(fx.c.aka[63], "mx.example");
}

/* Ids that are not shared flags are left to the command. */
static void test_not_shared(void **state)
{
    (void)state;
    assert_int_equal(apply('o', "x.db"), 0);
    assert_int_equal(apply('?', NULL), 0);
    assert_int_equal(apply(SCANFLAGS_END, "x"), 0);
    assert_int_equal(apply(SF_RESOLVER - 1, "x"), 0);
    assert_string_equal(fx.err, "");
}

/* The full table: own entries, then every shared one, then the end; a
 * table one entry short is refused. */
static void test_table(void **state)
{
    (void)state;
    static const struct option own[] = {
        {"output", required_argument, 0, 'o'},
        {"json", no_argument, 0, SCANFLAGS_END},
        {0, 0, 0, 0},
    };
    struct option t[SCANFLAGS_TABLE_LEN(own)];
    assert_int_equal(sizeof t / sizeof *t, 2 + 14 + 1);
    assert_int_equal(scanflags_table(t, sizeof t / sizeof *t - 1, own), -1);
    memset(t, 0xff, sizeof t);
    assert_int_equal(scanflags_table(t, sizeof t / sizeof *t, own), 0);
    assert_string_equal(t[0].name, "output");
    assert_string_equal(t[1].name, "json");
    static const char *const names[] = {
        "resolver", "dns-timeout", "dns-tries", "port", "tls-on-connect", "helo",        "timeout",
        "ca-file",  "ca-path",     "max-addrs", "aka",  "expiry-warning", "expect-ocsp", "enum",
    };
    for (int i = 0; i < SCANFLAGS_NOPTS; i++) {
        assert_string_equal(t[2 + i].name, names[i]);
        assert_int_equal(t[2 + i].val, SF_RESOLVER + i);
        int arg = t[2 + i].val == SF_TLS_ON_CONNECT || t[2 + i].val == SF_EXPECT_OCSP ||
                  t[2 + i].val == SF_ENUM;
        assert_int_equal(t[2 + i].has_arg, arg ? no_argument : required_argument);
    }
    assert_null(t[2 + SCANFLAGS_NOPTS].name);
    assert_int_equal(t[2 + SCANFLAGS_NOPTS].val, 0);
}

/* getopt_long over a built table hands shared flags to scanflags_apply. */
static void test_getopt_round_trip(void **state)
{
    (void)state;
    static const struct option own[] = {
        {"output", required_argument, 0, 'o'},
        {0, 0, 0, 0},
    };
    struct option t[SCANFLAGS_TABLE_LEN(own)];
    assert_int_equal(scanflags_table(t, sizeof t / sizeof *t, own), 0);
    char *argv[] = {"check", "-o", "x.db",   "--port=2525", "--tls-on-connect", "--aka", "mx.test",
                    "--ti",  "2s", "d.test", NULL};
    int argc = (int)(sizeof argv / sizeof *argv) - 1, opt, own_seen = 0;
    opterr = 0;
    optind = 1;
    while ((opt = getopt_long(argc, argv, ":o:", t, NULL)) != -1) {
        if (opt == 'o') {
            own_seen++;
            continue;
        }
        assert_int_equal(apply(opt, optarg), 1);
    }
    scanflags_finish(&fx.sf, &fx.c);
    assert_int_equal(own_seen, 1);
    assert_int_equal(fx.c.port, 2525);
    assert_int_equal(fx.c.tls_on_connect, 1);
    assert_int_equal(fx.c.timeout_ms, 2000);
    assert_int_equal(fx.c.naka, 1);
    assert_string_equal(fx.c.aka[0], "mx.test");
    assert_int_equal(optind, argc - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_number_ranges, setup),
        cmocka_unit_test_setup(test_port_and_tls_on_connect, setup),
        cmocka_unit_test_setup(test_durations, setup),
        cmocka_unit_test_setup(test_names_and_switches, setup),
        cmocka_unit_test_setup(test_aka, setup),
        cmocka_unit_test_setup(test_not_shared, setup),
        cmocka_unit_test_setup(test_table, setup),
        cmocka_unit_test_setup(test_getopt_round_trip, setup),
    };
    return cmocka_run_group_tests_name("scanflags", tests, NULL, NULL);
}
