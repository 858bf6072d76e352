/*
 * test_exclude.c - unit tests of the exclusion list (inputs/exclude.c).
 *
 * Lists are given as text to exclude_parse(), or written to a private
 * temporary directory for exclude_load(). Every lookup is checked at the
 * edges of the prefixes (first and last address, and one outside each),
 * and every error case with its whole "file:line: reason: 'text'" message.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "inputs/exclude.h"

static char tmpdir[256];

/* Removes one entry of the temporary tree. */
static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int group_setup(void **state)
{
    (void)state;
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof(tmpdir), "%s/mxscan-test-exclude-XXXXXX", t && *t ? t : "/tmp");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    (void)state;
    return nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Parses a string that must parse. */
static exclude_t *must_parse(const char *text)
{
    char err[256] = "";
    exclude_t *ex = exclude_parse(text, strlen(text), "t.txt", err, sizeof(err));
    if (!ex)
        fail_msg("unexpected parse error: %s", err);
    assert_string_equal(err, "");
    return ex;
}

/* Parses len bytes that must fail with exactly the message want. */
static void expect_error_n(const char *text, size_t len, const char *want)
{
    char err[512] = "";
    exclude_t *ex = exclude_parse(text, len, "t.txt", err, sizeof(err));
    if (ex) {
        exclude_free(ex);
        fail_msg("parsed, but expected: %s", want);
    }
    assert_string_equal(err, want);
}

static void expect_error(const char *text, const char *want)
{
    expect_error_n(text, strlen(text), want);
}

/* Asserts the lookup result of each address in a NULL-terminated list. */
static void expect_ips(const exclude_t *ex, int want, const char *const *ips)
{
    for (; *ips; ips++) {
        int got = exclude_ip(ex, *ips);
        if (got != want)
            fail_msg("exclude_ip(%s) = %d, want %d", *ips, got, want);
    }
}

static void expect_names(const exclude_t *ex, int want, const char *const *names)
{
    for (; *names; names++) {
        int got = exclude_domain(ex, *names);
        if (got != want)
            fail_msg("exclude_domain(%s) = %d, want %d", *names, got, want);
    }
}

#define IPS(...)   ((const char *const[]){__VA_ARGS__, NULL})
#define NAMES(...) ((const char *const[]){__VA_ARGS__, NULL})

static void test_v4_prefixes(void **state)
{
    (void)state;
    exclude_t *ex = must_parse("192.0.2.0/24\n"
                               "198.51.100.7\n"
                               "203.0.113.9/32\n"
                               "10.0.0.0/8\n");
    assert_int_equal(exclude_count_prefixes(ex), 4);
    assert_int_equal(exclude_count_domains(ex), 0);
    expect_ips(ex, 1,
               IPS("192.0.2.0", "192.0.2.1", "192.0.2.255", "198.51.100.7", "203.0.113.9",
                   "10.0.0.0", "10.255.255.255", "10.1.2.3"));
    expect_ips(ex, 0,
               IPS("192.0.1.255", "192.0.3.0", "198.51.100.6", "198.51.100.8", "203.0.113.8",
                   "203.0.113.10", "9.255.255.255", "11.0.0.0", "0.0.0.0", "255.255.255.255"));
    /* An IPv6 address is not in an IPv4 prefix unless it is a mapped one. */
    expect_ips(ex, 0, IPS("2001:db8::1", "::192.0.2.1", "64:ff9b::192.0.2.1"));
    exclude_free(ex);

    ex = must_parse("0.0.0.0/0\n");
    expect_ips(ex, 1, IPS("0.0.0.0", "128.0.0.0", "255.255.255.255", "::ffff:100.64.1.2"));
    expect_ips(ex, 0, IPS("::", "2001:db8::1", "::ffff:0:1:2"));
    exclude_free(ex);

    /* The ends of the address space. */
    ex = must_parse("0.0.0.0\n255.255.255.255/32\n");
    expect_ips(ex, 1, IPS("0.0.0.0", "255.255.255.255"));
    expect_ips(ex, 0, IPS("0.0.0.1", "255.255.255.254"));
    exclude_free(ex);
}

static void test_v6_prefixes(void **state)
{
    (void)state;
    exclude_t *ex = must_parse("2001:db8::/32\n"
                               "2001:db9:1:2::/64\n"
                               "2001:dba::1\n"
                               "2001:dbb::/127\n"
                               "fe80::1/128\n");
    assert_int_equal(exclude_count_prefixes(ex), 5);
    expect_ips(ex, 1,
               IPS("2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff", "2001:db8:1::25",
                   "2001:db9:1:2::", "2001:db9:1:2:ffff:ffff:ffff:ffff", "2001:dba::1",
                   "2001:dbb::", "2001:dbb::1", "fe80::1", "2001:DB8::ABCD"));
    expect_ips(ex, 0,
               IPS("2001:db7:ffff:ffff:ffff:ffff:ffff:ffff",
                   "2001:db9::", "2001:db9:1:1:ffff:ffff:ffff:ffff",
                   "2001:db9:1:3::", "2001:dba::", "2001:dba::2", "2001:dbb::2", "fe80::2",
                   "fe80::", "::", "::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "192.0.2.1"));
    exclude_free(ex);

    ex = must_parse("::/0\n");
    expect_ips(ex, 1,
               IPS("::", "::1", "2001:db8::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                   "::ffff:192.0.2.1"));
    /* ::/0 is every IPv6 address; an IPv4 address is not one. */
    expect_ips(ex, 0, IPS("192.0.2.1", "0.0.0.0"));
    exclude_free(ex);

    ex = must_parse("::\nffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128\n");
    expect_ips(ex, 1, IPS("::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
    expect_ips(ex, 0, IPS("::1", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"));
    exclude_free(ex);
}

/* Host bits beyond the prefix length are cleared, as zmap does. */
static void test_host_bits_masked(void **state)
{
    (void)state;
    exclude_t *ex = must_parse("192.0.2.77/24\n"
                               "198.51.100.255/31\n"
                               "2001:db8:1:2:3:4:5:6/48\n"
                               "2001:db8:ffff::1/120\n"
                               "203.0.113.4/0\n");
    assert_int_equal(exclude_count_prefixes(ex), 5);
    expect_ips(ex, 1,
               IPS("192.0.2.0", "192.0.2.255", "198.51.100.254", "198.51.100.255",
                   "2001:db8:1::", "2001:db8:1:ffff:ffff:ffff:ffff:ffff",
                   "2001:db8:ffff::", "2001:db8:ffff::ff", "203.0.113.200"));
    expect_ips(ex, 0,
               IPS("2001:db8:2::", "2001:db8:0:ffff:ffff:ffff:ffff:ffff", "2001:db8:ffff::100",
                   "2001:db8:fffe:ffff:ffff:ffff:ffff:ffff"));
    exclude_free(ex);

    /* The same prefix written two ways counts once. */
    ex = must_parse("192.0.2.77/24\n192.0.2.0/24\n192.0.2.1/24\n");
    assert_int_equal(exclude_count_prefixes(ex), 1);
    exclude_free(ex);
}

/* Overlapping, nested, adjacent and repeated prefixes are merged; holes stay holes. */
static void test_overlap_adjacent(void **state)
{
    (void)state;
    exclude_t *ex = must_parse("10.0.0.128/25\n"
                               "10.0.0.0/25\n"   /* adjacent to the one above */
                               "10.0.1.0/24\n"   /* adjacent again */
                               "10.0.0.5\n"      /* nested */
                               "10.0.0.0/23\n"   /* the three above together */
                               "10.0.3.0/24\n"   /* a hole: 10.0.2.0/24 */
                               "10.0.3.0/25\n"   /* nested at the start */
                               "10.0.3.255\n"    /* nested at the end */
                               "10.0.4.0/22\n"   /* adjacent to 10.0.3.0/24 */
                               "10.0.6.0/23\n"); /* nested at the end of that */
    assert_int_equal(exclude_count_prefixes(ex), 10);
    expect_ips(ex, 1,
               IPS("10.0.0.0", "10.0.0.127", "10.0.0.128", "10.0.1.255", "10.0.3.0", "10.0.3.255",
                   "10.0.4.0", "10.0.7.255", "10.0.6.1"));
    expect_ips(ex, 0, IPS("9.255.255.255", "10.0.2.0", "10.0.2.255", "10.0.8.0", "10.0.2.128"));
    exclude_free(ex);

    /* Adjacent at the top of the space (no overflow), and across the 64-bit halves of IPv6. */
    ex = must_parse("255.255.255.254\n255.255.255.255\n128.0.0.0/1\n0.0.0.0/1\n"
                    "2001:db8::/64\n2001:db8:0:1::/64\n2001:db8:0:3::/64\n"
                    "::/1\n8000::/1\n");
    expect_ips(ex, 1,
               IPS("0.0.0.0", "127.255.255.255", "128.0.0.0", "255.255.255.255",
                   "::", "7fff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
                   "8000::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
    exclude_free(ex);

    ex = must_parse("2001:db8::/64\n2001:db8:0:1::/64\n2001:db8:0:3::/64\n"
                    "2001:db8:0:1::/64\n2001:db8:0:1:8000::/65\n");
    assert_int_equal(exclude_count_prefixes(ex), 4);
    expect_ips(ex, 1,
               IPS("2001:db8::", "2001:db8::ffff:ffff:ffff:ffff",
                   "2001:db8:0:1::", "2001:db8:0:1:ffff:ffff:ffff:ffff", "2001:db8:0:3::"));
    expect_ips(ex, 0,
               IPS("2001:db8:0:2::", "2001:db8:0:2:ffff:ffff:ffff:ffff",
                   "2001:db8:0:4::", "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff"));
    exclude_free(ex);
}

/* IPv4-mapped IPv6 addresses are checked against the IPv4 prefixes, and
 * mapped prefixes in the list are IPv4 prefixes. */
static void test_mapped(void **state)
{
    (void)state;
    exclude_t *ex = must_parse("192.0.2.0/24\n"
                               "::ffff:198.51.100.0/120\n"
                               "198.51.100.0/24\n" /* the same prefix: counted once */
                               "::ffff:203.0.113.5\n"
                               "::fffe:0:0/96\n"); /* next to the mapped range: an IPv6 prefix */
    assert_int_equal(exclude_count_prefixes(ex), 4);
    expect_ips(ex, 1,
               IPS("::ffff:192.0.2.1", "::FFFF:192.0.2.255", "::ffff:c000:0201", "198.51.100.7",
                   "::ffff:198.51.100.255", "203.0.113.5", "::ffff:203.0.113.5", "::fffe:1:1",
                   "::fffe:ffff:ffff"));
    expect_ips(ex, 0,
               IPS("::ffff:192.0.3.1", "::192.0.2.1", "64:ff9b::192.0.2.1", "198.51.101.0",
                   "203.0.113.4", "::1:ffff:192.0.2.1", "100.64.1.2", "::ffff:0:0", "::ffff:1:1",
                   "::fffd:ffff:ffff", "0.0.0.0"));
    exclude_free(ex);

    /* An IPv6 prefix shorter than /96 that holds mapped addresses excludes them as IPv6
     * addresses; the IPv4 addresses they stand for are not excluded by it. */
    ex = must_parse("::/64\n");
    expect_ips(ex, 1, IPS("::ffff:192.0.2.1", "::1"));
    expect_ips(ex, 0, IPS("192.0.2.1"));
    exclude_free(ex);
}

static void test_exclude_addr(void **state)
{
    (void)state;
    exclude_t *ex = must_parse("192.0.2.0/24\n2001:db8::/32\n");
    struct in_addr a4;
    struct in6_addr a6;
    inet_pton(AF_INET, "192.0.2.9", &a4);
    assert_int_equal(exclude_addr(ex, AF_INET, &a4), 1);
    inet_pton(AF_INET, "192.0.3.9", &a4);
    assert_int_equal(exclude_addr(ex, AF_INET, &a4), 0);
    inet_pton(AF_INET6, "2001:db8:5::1", &a6);
    assert_int_equal(exclude_addr(ex, AF_INET6, &a6), 1);
    inet_pton(AF_INET6, "::ffff:192.0.2.200", &a6);
    assert_int_equal(exclude_addr(ex, AF_INET6, &a6), 1);
    inet_pton(AF_INET6, "2001:db9::1", &a6);
    assert_int_equal(exclude_addr(ex, AF_INET6, &a6), 0);
    assert_int_equal(exclude_addr(ex, AF_UNIX, &a6), -1);

    /* Not an address: -1 (non-zero, so a caller skipping on non-zero skips it). */
    const char *bad[] = {
        "",           "example.com", "192.0.2.1/32", "[2001:db8::1]", "fe80::1%eth0",
        " 192.0.2.1", "192.0.2",     "010.0.0.1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (exclude_ip(ex, bad[i]) != -1)
            fail_msg("exclude_ip('%s') is not -1", bad[i]);
    exclude_free(ex);

    /* No list: nothing is excluded. */
    inet_pton(AF_INET, "192.0.2.9", &a4);
    assert_int_equal(exclude_addr(NULL, AF_INET, &a4), 0);
    assert_int_equal(exclude_addr(NULL, AF_INET6, &a6), 0);
    assert_int_equal(exclude_ip(NULL, "192.0.2.9"), 0);
    assert_int_equal(exclude_domain(NULL, "example.com"), 0);
    assert_int_equal(exclude_count_prefixes(NULL), 0);
    assert_int_equal(exclude_count_domains(NULL), 0);
    exclude_free(NULL);

    /* A list of names only excludes no address, and one of addresses no name. */
    ex = must_parse("example.com\n");
    expect_ips(ex, 0, IPS("192.0.2.1", "::1", "0.0.0.0"));
    exclude_free(ex);
    ex = must_parse("0.0.0.0/0\n::/0\n");
    expect_names(ex, 0, NAMES("example.com", "com", "0.0.0.0"));
    exclude_free(ex);
}

static void test_domains(void **state)
{
    (void)state;
    exclude_t *ex = must_parse("example.com\n"
                               "Example.NET.\n"
                               "*.example.org\n"
                               "*.Sub.Example.Info.\n"
                               "mil\n"
                               "_tcp.srv.example\n"
                               "xn--bcher-kva.example\n"
                               "3com.com\n"
                               "example.com.\n" /* repeats: counted once */
                               "EXAMPLE.com\n"
                               "*.example.com\n");
    assert_int_equal(exclude_count_domains(ex), 8);
    assert_int_equal(exclude_count_prefixes(ex), 0);
    expect_names(ex, 1,
                 NAMES("example.com", "mx.example.com", "a.b.c.example.com", "example.net",
                       "mx1.example.net", "example.org", "mail.example.org", "sub.example.info",
                       "x.sub.example.info", "mil", "army.mil", "a.b.mil", "_tcp.srv.example",
                       "x._tcp.srv.example", "xn--bcher-kva.example", "3com.com", "mx.3com.com"));
    /* Tolerated in queries: upper case and one trailing dot. */
    expect_names(ex, 1, NAMES("MX.Example.COM", "example.com.", "Mx.EXAMPLE.net."));
    expect_names(ex, 0,
                 NAMES("com", "net", "notexample.com", "example.com.evil", "example.co",
                       "xexample.com", "example.comx", "info", "example.info", "other.example.info",
                       "sub.example.info.evil", "mil.example", "army-mil", "srv.example",
                       "tcp.srv.example", "", ".", "com.", "example..com", "4com.com"));
    exclude_free(ex);

    /* Queries longer than any name, or odd, are answered and never crash. */
    ex = must_parse("a.example\n");
    char longname[600];
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    assert_int_equal(exclude_domain(ex, longname), 0);
    memcpy(longname + sizeof(longname) - 1 - 10, ".a.example", 10);
    assert_int_equal(exclude_domain(ex, longname), 1); /* a child, however long */
    expect_names(ex, 0, NAMES("..", "...a.exampl", "a.example..", "\xff.a.exampl"));
    expect_names(ex, 1, NAMES(".a.example", "\xff.a.example"));
    exclude_free(ex);

    /* A name of the maximal length: 253 bytes, labels of 63. */
    char name[300];
    snprintf(name, sizeof(name), "%.63s.%.63s.%.63s.%.61s", longname, longname, longname, longname);
    assert_int_equal(strlen(name), 253);
    ex = must_parse(name);
    assert_int_equal(exclude_domain(ex, name), 1);
    exclude_free(ex);
}

/* Comments, blank lines, blanks around entries, CRLF, a BOM. */
static void test_comments_blank(void **state)
{
    (void)state;
    exclude_t *ex = must_parse("\xef\xbb\xbf# operators who asked not to be scanned\n"
                               "\n"
                               "   \t  \n"
                               "192.0.2.0/24   # ACME Corp, ticket 123\n"
                               "\t2001:db8::/32\t\r\n"
                               "example.com#no space before the comment\n"
                               "  # indented comment with 10.0.0.0/8 and foo bar in it\n"
                               "#example.net\n"
                               "198.51.100.1\r\n"
                               "\r\n"
                               "   example.org   "); /* last line without newline */
    assert_int_equal(exclude_count_prefixes(ex), 3);
    assert_int_equal(exclude_count_domains(ex), 2);
    expect_ips(ex, 1, IPS("192.0.2.1", "2001:db8::1", "198.51.100.1"));
    expect_ips(ex, 0, IPS("10.0.0.1"));
    expect_names(ex, 1, NAMES("example.com", "example.org"));
    expect_names(ex, 0, NAMES("example.net"));
    exclude_free(ex);

    /* Empty and comment-only lists are valid and exclude nothing. */
    const char *empty[] = {"", "\n", "# nothing\n", "\n\n  \n# a\n#b", "\xef\xbb\xbf"};
    for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
        ex = must_parse(empty[i]);
        assert_int_equal(exclude_count_prefixes(ex), 0);
        assert_int_equal(exclude_count_domains(ex), 0);
        expect_ips(ex, 0, IPS("192.0.2.1", "::1"));
        expect_names(ex, 0, NAMES("example.com"));
        exclude_free(ex);
    }
    ex = exclude_parse(NULL, 0, "t.txt", NULL, 0);
    assert_non_null(ex);
    exclude_free(ex);
}

/* Every error, with its file, line number and text. */
static void test_errors(void **state)
{
    (void)state;
    static const struct {
        const char *entry, *reason;
    } cases[] = {
        {"foo bar", "not an address, prefix or domain name"},
        {"192.0.2.0 /24", "not an address, prefix or domain name"},
        {"192.0.2.0/33", "prefix length out of range (at most 32)"},
        {"192.0.2.0/999", "prefix length out of range (at most 32)"},
        {"2001:db8::/129", "prefix length out of range (at most 128)"},
        {"192.0.2.0/", "not an address, prefix or domain name"},
        {"192.0.2.0/-1", "not an address, prefix or domain name"},
        {"192.0.2.0/+8", "not an address, prefix or domain name"},
        {"192.0.2.0/1000", "not an address, prefix or domain name"},
        {"192.0.2.0/24/8", "not an address, prefix or domain name"},
        {"192.0.2.0/2a", "not an address, prefix or domain name"},
        {"/24", "not an address, prefix or domain name"},
        {"example.com/24", "not an address, prefix or domain name"},
        {"192.0.2.256", "not an address, prefix or domain name"},
        {"192.0.2", "not an address, prefix or domain name"},
        {"010.0.0.1", "not an address, prefix or domain name"},
        {"0x7f.0.0.1", "not an address, prefix or domain name"},
        {"1234", "not an address, prefix or domain name"},
        {"2001:db8::g", "not an address, prefix or domain name"},
        {"2001:db8:::1", "not an address, prefix or domain name"},
        {"fe80::1%eth0", "not an address, prefix or domain name"},
        {"[2001:db8::1]", "not an address, prefix or domain name"},
        {"example.com:25", "not an address, prefix or domain name"},
        {"*", "not an address, prefix or domain name"},
        {"*.", "not an address, prefix or domain name"},
        {".", "not an address, prefix or domain name"},
        {"*.*.example.com", "not an address, prefix or domain name"},
        {"*example.com", "not an address, prefix or domain name"},
        {"mail@example.com", "not an address, prefix or domain name"},
        {"http://example.com", "not an address, prefix or domain name"},
        {"b\xc3\xbc"
         "cher.example",
         "not an address, prefix or domain name"},
        {"a..example.com", "empty label in domain name"},
        {".example.com", "empty label in domain name"},
        {"example.com..", "empty label in domain name"},
        {"-a.example.com", "label starts or ends with '-' in domain name"},
        {"a-.example.com", "label starts or ends with '-' in domain name"},
        {"a.example.com-", "label starts or ends with '-' in domain name"},
    };
    char text[512], want[512], shown[64];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        /* The bad entry on line 4, after good lines, a comment and a blank line. */
        snprintf(text, sizeof(text), "192.0.2.0/24\n# comment\n\n  %s  # why\nexample.com\n",
                 cases[i].entry);
        snprintf(shown, sizeof(shown), "%s", cases[i].entry);
        if (strncmp(shown, "b\xc3\xbc", 3) == 0)
            snprintf(shown, sizeof(shown), "b\\xc3\\xbccher.example");
        snprintf(want, sizeof(want), "t.txt:4: %s: '%s'", cases[i].reason, shown);
        expect_error(text, want);
    }

    /* Labels and names over their limits. */
    char label[80], name[300];
    memset(label, 'a', 64);
    label[64] = '\0';
    snprintf(text, sizeof(text), "%s.example\n", label);
    snprintf(want, sizeof(want), "t.txt:1: label longer than 63 bytes in domain name: '%.60s...'",
             label);
    expect_error(text, want);
    label[63] = '\0';
    snprintf(name, sizeof(name), "%.63s.%.63s.%.63s.%.59s.ab", label, label, label, label);
    assert_int_equal(strlen(name), 254);
    snprintf(want, sizeof(want), "t.txt:1: domain name longer than 253 bytes: '%.60s...'", name);
    expect_error(name, want);
    name[strlen(name) - 1] = '\0'; /* 253 bytes: fine */
    exclude_free(must_parse(name));

    /* A NUL byte; a control character is shown escaped. */
    expect_error_n("192.0.2.1\nexam\0ple.com\n", 23,
                   "t.txt:2: NUL byte in line: 'exam\\x00ple.com'");
    expect_error("\n\nexam\x01ple.com\n",
                 "t.txt:3: not an address, prefix or domain name: 'exam\\x01ple.com'");
    expect_error("a\\b.example\n",
                 "t.txt:1: not an address, prefix or domain name: 'a\\x5cb.example'");

    /* Line numbers count CRLF lines and the line after a BOM as usual. */
    expect_error("\xef\xbb\xbf"
                 "192.0.2.1\r\n\r\nfoo bar\r\n",
                 "t.txt:3: not an address, prefix or domain name: 'foo bar'");

    /* Without a name, "exclude"; with a NULL or zero-sized err, no write. */
    char err[128];
    assert_null(exclude_parse("foo bar", 7, NULL, err, sizeof(err)));
    assert_string_equal(err, "exclude:1: not an address, prefix or domain name: 'foo bar'");
    assert_null(exclude_parse("foo bar", 7, "t.txt", NULL, 0));
    err[0] = 'X';
    assert_null(exclude_parse("foo bar", 7, "t.txt", err, 0));
    assert_int_equal(err[0], 'X');
    /* A short buffer gets a cut message, terminated. */
    assert_null(exclude_parse("foo bar", 7, "t.txt", err, 10));
    assert_string_equal(err, "t.txt:1: ");
}

/* Lines of up to EXCLUDE_LINE_MAX bytes are read; a longer one is an error. */
static void test_long_line(void **state)
{
    (void)state;
    size_t big = 1 << 20;
    char *text = malloc(big + 64);
    assert_non_null(text);

    /* 1000 bytes, comment included, then CRLF: fine. */
    memset(text, ' ', EXCLUDE_LINE_MAX);
    memcpy(text, "192.0.2.1 #", 11);
    memcpy(text + EXCLUDE_LINE_MAX, "\r\nexample.com\n", 14);
    exclude_t *ex = exclude_parse(text, EXCLUDE_LINE_MAX + 14, "t.txt", NULL, 0);
    assert_non_null(ex);
    assert_int_equal(exclude_ip(ex, "192.0.2.1"), 1);
    assert_int_equal(exclude_domain(ex, "example.com"), 1);
    exclude_free(ex);

    /* 1001 bytes, even of blanks or a comment: an error with the head of the line. */
    char want[256];
    const char *heads[] = {"192.0.2.1 #", "#", " "};
    for (size_t i = 0; i < 3; i++) {
        memset(text, ' ', EXCLUDE_LINE_MAX + 1);
        memcpy(text, heads[i], strlen(heads[i]));
        memcpy(text + EXCLUDE_LINE_MAX + 1, "\n", 1);
        char head[64];
        memset(head, ' ', 60);
        memcpy(head, heads[i], strlen(heads[i]));
        head[60] = '\0';
        snprintf(want, sizeof(want), "t.txt:2: line too long (more than 1000 bytes): '%s...'",
                 head);
        char with_first[EXCLUDE_LINE_MAX + 32];
        memcpy(with_first, "example.com\n", 12);
        memcpy(with_first + 12, text, EXCLUDE_LINE_MAX + 2);
        expect_error_n(with_first, EXCLUDE_LINE_MAX + 14, want);
    }

    /* A megabyte without a newline: the same error, quickly, no crash. */
    memset(text, 'a', big);
    snprintf(want, sizeof(want), "t.txt:1: line too long (more than 1000 bytes): '%.60s...'", text);
    expect_error_n(text, big, want);
    free(text);
}

/* Writes a file in the temporary directory and returns its path (static buffer). */
static const char *write_tmp(const char *name, const void *data, size_t len)
{
    static char path[512];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
    return path;
}

static void test_load_file(void **state)
{
    (void)state;
    const char text[] = "# list\n192.0.2.0/24\nexample.com\n2001:db8::/32\n";
    const char *path = write_tmp("good.txt", text, sizeof(text) - 1);
    char err[512] = "";
    exclude_t *ex = exclude_load(path, err, sizeof(err));
    assert_non_null(ex);
    assert_int_equal(exclude_count_prefixes(ex), 2);
    assert_int_equal(exclude_count_domains(ex), 1);
    assert_int_equal(exclude_ip(ex, "192.0.2.44"), 1);
    assert_int_equal(exclude_domain(ex, "mx.example.com"), 1);
    exclude_free(ex);

    /* The error names the path given. */
    const char bad[] = "192.0.2.0/24\n\n10.0.0.0/8 foo\n";
    path = write_tmp("bad.txt", bad, sizeof(bad) - 1);
    char want[768];
    snprintf(want, sizeof(want), "%s:3: not an address, prefix or domain name: '10.0.0.0/8 foo'",
             path);
    assert_null(exclude_load(path, err, sizeof(err)));
    assert_string_equal(err, want);

    path = write_tmp("empty.txt", "", 0);
    ex = exclude_load(path, err, sizeof(err));
    assert_non_null(ex);
    assert_int_equal(exclude_count_prefixes(ex) + exclude_count_domains(ex), 0);
    exclude_free(ex);

    char missing[512];
    snprintf(missing, sizeof(missing), "%s/no-such-file", tmpdir);
    assert_null(exclude_load(missing, err, sizeof(err)));
    snprintf(want, sizeof(want), "%s: No such file or directory", missing);
    assert_string_equal(err, want);

    assert_null(exclude_load(tmpdir, err, sizeof(err)));
    snprintf(want, sizeof(want), "%s: Is a directory", tmpdir);
    assert_string_equal(err, want);

    /* A file bigger than the first read buffer, read through a pipe-like path too. */
    size_t n = 200000, len = 0;
    char *big = malloc(n * 20);
    assert_non_null(big);
    for (size_t i = 0; i < n; i++)
        len += (size_t)sprintf(big + len, "10.%zu.%zu.%zu\n", i >> 16, (i >> 8) & 255, i & 255);
    path = write_tmp("big.txt", big, len);
    ex = exclude_load(path, err, sizeof(err));
    assert_non_null(ex);
    assert_int_equal(exclude_count_prefixes(ex), n);
    assert_int_equal(exclude_ip(ex, "10.3.13.63"), 1); /* entry 199999 */
    assert_int_equal(exclude_ip(ex, "10.3.13.64"), 0);
    exclude_free(ex);
    free(big);
}

/* Appends formatted text to a growing buffer. */
typedef struct buf {
    char *p;
    size_t len, cap;
} buf_t;

static void put(buf_t *b, const char *fmt, ...)
{
    if (b->cap - b->len < 128) {
        b->cap = b->cap ? b->cap * 2 : 1 << 20;
        b->p = realloc(b->p, b->cap);
        assert_non_null(b->p);
    }
    va_list ap;
    va_start(ap, fmt);
    b->len += (size_t)vsnprintf(b->p + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
}

/*
 * A list of 100,000 entries built here, in shuffled order: 40,000 IPv4
 * addresses (every other address of 100.64.0.0/14, so none merge), 30,000
 * IPv6 /48s (every other one), 30,000 names. Every entry and every gap
 * between them is looked up.
 */
static void test_large_list(void **state)
{
    (void)state;
    enum { N4 = 40000, N6 = 30000, NN = 30000, N = N4 + N6 + NN };
    uint32_t *order = malloc(N * sizeof(uint32_t));
    assert_non_null(order);
    for (uint32_t i = 0; i < N; i++)
        order[i] = i;
    uint64_t r = 88172645463325252ULL; /* xorshift64, fixed seed */
    for (uint32_t i = N - 1; i > 0; i--) {
        r ^= r << 13;
        r ^= r >> 7;
        r ^= r << 17;
        uint32_t j = (uint32_t)(r % (i + 1)), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    buf_t b = {0};
    for (uint32_t k = 0; k < N; k++) {
        uint32_t i = order[k];
        if (i < N4) {
            uint32_t a = 0x64400000u + 2 * i;
            put(&b, "%u.%u.%u.%u\n", a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
        } else if (i < N4 + N6) {
            put(&b, "2001:db8:%x::/48 # entry %u\n", 2 * (i - N4), i);
        } else {
            put(&b, "n%u.Example.net.\n", i - N4 - N6);
        }
    }
    char err[256];
    exclude_t *ex = exclude_parse(b.p, b.len, "big.txt", err, sizeof(err));
    assert_non_null(ex);
    assert_int_equal(exclude_count_prefixes(ex), N4 + N6);
    assert_int_equal(exclude_count_domains(ex), NN);

    char text[128];
    for (uint32_t i = 0; i < N4; i++) {
        struct in_addr a;
        a.s_addr = htonl(0x64400000u + 2 * i);
        assert_int_equal(exclude_addr(ex, AF_INET, &a), 1);
        a.s_addr = htonl(0x64400000u + 2 * i + 1);
        assert_int_equal(exclude_addr(ex, AF_INET, &a), 0);
    }
    assert_int_equal(exclude_ip(ex, "100.63.255.255"), 0);
    for (uint32_t i = 0; i < N6; i++) {
        snprintf(text, sizeof(text), "2001:db8:%x:ffff:ffff:ffff:ffff:ffff", 2 * i);
        assert_int_equal(exclude_ip(ex, text), 1);
        snprintf(text, sizeof(text), "2001:db8:%x::", 2 * i + 1);
        assert_int_equal(exclude_ip(ex, text), 0);
    }
    for (uint32_t i = 0; i < NN; i++) {
        snprintf(text, sizeof(text), "n%u.example.net", i);
        assert_int_equal(exclude_domain(ex, text), 1);
        snprintf(text, sizeof(text), "mx.n%u.example.net", i);
        assert_int_equal(exclude_domain(ex, text), 1);
        snprintf(text, sizeof(text), "n%u.example.net", i + NN);
        assert_int_equal(exclude_domain(ex, text), 0);
        snprintf(text, sizeof(text), "n%ux.example.net", i);
        assert_int_equal(exclude_domain(ex, text), 0);
    }
    assert_int_equal(exclude_domain(ex, "example.net"), 0);
    exclude_free(ex);
    free(b.p);
    free(order);
}

/* 1,000,000 lines load in about a second (a bound far above that here,
 * for sanitizer builds and busy machines; a quadratic step would take
 * minutes). */
static void test_million_lines(void **state)
{
    (void)state;
    buf_t b = {0};
    for (uint32_t i = 0; i < 1000000; i++) {
        switch (i % 4) {
        case 0:
            put(&b, "%u.%u.%u.0/24\n", 1 + (i >> 16), (i >> 8) & 255, i & 255);
            break;
        case 1:
            put(&b, "2001:db8:%x:%x::/64\n", i >> 16, i & 0xffff);
            break;
        case 2:
            put(&b, "host-%u.example%u.com # a comment\n", i, i % 1000);
            break;
        default:
            put(&b, "%u.%u.%u.%u\n", 100 + (i >> 16), (i >> 8) & 255, i & 255, i & 63);
        }
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    exclude_t *ex = exclude_parse(b.p, b.len, "million.txt", NULL, 0);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    assert_non_null(ex);
    double s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("  1,000,000 lines (%zu bytes) loaded in %.3f s\n", b.len, s);
    assert_int_equal(exclude_count_prefixes(ex), 750000);
    assert_int_equal(exclude_count_domains(ex), 250000);
    assert_true(s < 30.0);

    /* And a million lookups of each kind. */
    clock_gettime(CLOCK_MONOTONIC, &t0);
    size_t hits = 0;
    char name[64];
    for (uint32_t i = 0; i < 1000000; i++) {
        struct in_addr a;
        a.s_addr = htonl((1 + (i >> 16)) << 24 | (i & 0xffff) << 8 | 7);
        hits += (size_t)exclude_addr(ex, AF_INET, &a);
        snprintf(name, sizeof(name), "mx.host-%u.example%u.com", i, i % 1000);
        hits += (size_t)exclude_domain(ex, name);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    s = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
    printf("  2,000,000 lookups in %.3f s\n", s);
    assert_int_equal(hits, 250000 + 250000);
    exclude_free(ex);
    free(b.p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v4_prefixes),      cmocka_unit_test(test_v6_prefixes),
        cmocka_unit_test(test_host_bits_masked), cmocka_unit_test(test_overlap_adjacent),
        cmocka_unit_test(test_mapped),           cmocka_unit_test(test_exclude_addr),
        cmocka_unit_test(test_domains),          cmocka_unit_test(test_comments_blank),
        cmocka_unit_test(test_errors),           cmocka_unit_test(test_long_line),
        cmocka_unit_test(test_load_file),        cmocka_unit_test(test_large_list),
        cmocka_unit_test(test_million_lines),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
