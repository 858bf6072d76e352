/*
 * main.c - the mxscan command: subcommand dispatch and flag parsing.
 *
 * Each subcommand parses its own flags into a config struct and calls its
 * module (scan_run for `scan`). Flags are checked here, at start-up, where
 * a bad value is fatal with a clear message; nothing later exits.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "inputs/input.h"
#include "scanner/log.h"
#include "scanner/scan.h"
#include "scanner/strbuf.h"
#include "tools/scanflags.h"
#include "tools/tools.h"

/* Prints the top-level usage. */
static void usage_main(FILE *f)
{
    fprintf(f, "usage: mxscan <command> [options]\n"
               "\n"
               "Scans mail domains for e-mail transport security (MX, STARTTLS, TLS)\n"
               "and stores what it sees in an SQLite database.\n"
               "\n"
               "commands:\n"
               "  scan      scan a list of domains into a results database\n"
               "  stats     aggregate statistics of a scan (table, JSON or CSV)\n"
               "  export    a scan as JSON lines or CSV, or an RFC 8460 report\n"
               "  diff      what changed between two scans; exit 1 if something got worse\n"
               "  report    a self-contained HTML report with charts and what to fix\n"
               "  check     scan a few domains and say what is wrong (also for Nagios)\n"
               "  merge     combine the shards of a sharded scan (scan --shard) into one\n"
               "\n"
               "options:\n"
               "  -h, --help     this help; `mxscan <command> --help` for a command\n"
               "  -V, --version  print the version\n");
}

/* Prints the usage of `mxscan scan`, with every default. */
static void usage_scan(FILE *f)
{
    scan_config_t d;
    scan_config_defaults(&d);
    fprintf(f,
            "usage: mxscan scan [options] [DOMAIN...]\n"
            "\n"
            "Looks up MX, A and AAAA of each domain, connects to every MX address on\n"
            "port 25, reads the greeting, sends EHLO (HELO if refused), STARTTLS, does\n"
            "the TLS handshake, EHLO again, and QUIT. It never sends MAIL, RCPT or DATA.\n"
            "Results go to an SQLite database; each run is a new scan in that file.\n"
            "\n"
            "input:\n"
            "  DOMAIN...              domains to scan (when no -i is given)\n"
            "  -i, --input FILE       read domains from FILE, '-' for stdin; one per\n"
            "                         line, or CSV; gzip is detected and decompressed\n"
            "      --csv-column N     take the N-th comma-separated field (1-based);\n"
            "                         default: plain lines, and 'rank,domain' lines\n"
            "                         (top lists) are recognised\n"
            "      --parse-only       read, check and count the input; scan nothing\n"
            "\n"
            "output:\n"
            "  -o, --output DB        results database (default: mxscan.db)\n"
            "  -q, --quiet            no progress display\n"
            "  -v, --verbose          debug messages on stderr\n"
            "\n"
            "DNS:\n"
            "      --resolver LIST    resolvers, ADDR[:PORT][,...] ([v6]:port for IPv6);\n"
            "                         default: $DNS_RESOLVER, else /etc/resolv.conf.\n"
            "                         Use a validating resolver: the AD bit it sets is\n"
            "                         stored as the DNSSEC status of each answer\n"
            "      --dns-timeout MS   per try (default %d); --dns-tries N (default %d)\n"
            "\n"
            "SMTP and TLS:\n"
            "      --port N           SMTP port (default %d; 465 with --tls-on-connect)\n"
            "      --tls-on-connect   TLS first, no STARTTLS (port 465, RFC 8314)\n"
            "      --helo NAME        name sent with EHLO (default %s)\n"
            "      --timeout T        deadline of each SMTP step: seconds, or e.g. 500ms\n"
            "                         (default %llus)\n"
            "      --ca-file FILE     CA certificates for verification (PEM)\n"
            "      --ca-path DIR      CA directory (default: the system store)\n"
            "      --max-addrs N      addresses scanned per MX host (default %d, max 32)\n"
            "\n"
            "verdicts:\n"
            "      --aka NAME         a further name accepted in MX certificates (repeatable)\n"
            "      --expiry-warning D cert.expiring when a certificate expires within D\n"
            "                         (e.g. 14d, 36h; default 14d)\n"
            "      --expect-ocsp      a missing OCSP staple is crit, not info\n"
            "      --enum             try each protocol version (TLS 1.0 to 1.3) in one more\n"
            "                         session each, to grade by the oldest accepted; off by\n"
            "                         default to spare the servers\n"
            "\n"
            "politeness (defaults are safe for servers you do not run):\n"
            "      --concurrency N    SMTP sessions in flight (default %d)\n"
            "      --per-ip N         sessions in flight to one IP address (default %d)\n"
            "      --per-prefix N     sessions in flight to one IPv4 /24 or IPv6 /48\n"
            "                         (default %d; 0 = no cap)\n"
            "      --min-interval T   least time between two connections to one IP\n"
            "                         (default %llums; 0 = none)\n"
            "      --rate N           new connections per second, 0 = no limit\n"
            "                         (default %g)\n"
            "      --backoff T        after a 421 or 4xx greeting, no new connection to that\n"
            "                         IP for T (default %llus; 0 = none)\n"
            "      --retry T          a connect timeout or a 421/4xx greeting is tried once\n"
            "                         more, T later (default %llus; 0 = never)\n"
            "      --exclude FILE     never touch what FILE lists: addresses and CIDR\n"
            "                         prefixes (zmap blocklist style) and domain names (with\n"
            "                         everything under them); see docs/exclude.md\n"
            "\n"
            "scale:\n"
            "      --max-domains N    domains in flight (default %d)\n"
            "      --dedup-mem MIB    memory of the duplicate filter (default %zu)\n"
            "      --cache-mem MIB    memory of the MX host cache (default %zu); a host that\n"
            "                         falls out of it is read back from the database, never\n"
            "                         scanned twice (0: keep no finished host in memory)\n"
            "      --shard I/N        scan only the domains of shard I of N (0 <= I < N), by a\n"
            "                         hash of the name: N machines given the same list split\n"
            "                         it without overlap; combine with 'mxscan merge'\n"
            "      --resume DB        go on with the newest unfinished scan in DB (after\n"
            "                         Ctrl-C, a kill, a crash or a full disk), with the\n"
            "                         settings it was started with; only -i, -q and -v may\n"
            "                         be added (-i to give the input again)\n"
            "\n"
            "Exit status: 0 scan done, 1 error, 130 interrupted (what was finished is kept).\n",
            d.dns_timeout_ms, d.dns_tries, d.port, d.helo,
            (unsigned long long)(d.timeout_ms / 1000), d.max_addrs, d.limits.concurrency,
            d.limits.per_ip, d.limits.per_prefix, (unsigned long long)d.limits.min_interval_ms,
            d.limits.rate, (unsigned long long)(d.backoff_ms / 1000),
            (unsigned long long)(d.retry_ms / 1000), d.max_domains, d.dedup_mem >> 20,
            d.cache_mem >> 20);
}

/* Parses a whole number in [lo, hi], or exits with a message. */
static long num_arg(const char *flag, const char *v, long lo, long hi)
{
    long n;
    if (scanflags_num(v, lo, hi, &n) < 0) {
        fprintf(stderr, "mxscan: %s wants a whole number from %ld to %ld, not '%s'\n", flag, lo, hi,
                v);
        exit(2);
    }
    return n;
}

/* Parses a duration: seconds, or a number with ms or s. */
static uint64_t duration_ms(const char *flag, const char *v)
{
    char *end;
    errno = 0;
    double n = strtod(v, &end);
    double mult = 1000;
    if (strcmp(end, "ms") == 0) {
        mult = 1;
    } else if (strcmp(end, "s") == 0 || *end == 0) {
        mult = 1000;
    } else {
        n = -1;
    }
    if (errno || end == v || n <= 0 || n * mult > 3600e3) {
        fprintf(stderr,
                "mxscan: %s wants a duration such as 30, 10s or 500ms (at most 1h), "
                "not '%s'\n",
                flag, v);
        exit(2);
    }
    return (uint64_t)(n * mult);
}

/* The command line as a JSON array, stored with the scan. */
static char *args_json(int argc, char **argv)
{
    strbuf_t sb;
    sb_init(&sb);
    sb_putc(&sb, '[');
    for (int i = 0; i < argc; i++) {
        if (i) {
            sb_putc(&sb, ',');
        }
        sb_json_str(&sb, argv[i], strlen(argv[i]));
    }
    sb_putc(&sb, ']');
    return sb_take(&sb);
}

/* Long-only flags of `mxscan scan` beyond the shared scan flags
 * (tools/scanflags.h). */
enum {
    O_CSV = SCANFLAGS_END,
    O_PARSE_ONLY,
    O_CONCURRENCY,
    O_PER_IP,
    O_RATE,
    O_MAX_DOMAINS,
    O_DEDUP_MEM,
    O_SHARD,
    O_RESUME,
    O_CACHE_MEM,
    O_EXCLUDE,
    O_PER_PREFIX,
    O_MIN_INTERVAL,
    O_BACKOFF,
    O_RETRY,
};

/* --shard I/N: 0 <= I < N <= 65536. */
static void shard_arg(const char *v, unsigned *i, unsigned *n)
{
    char *end;
    errno = 0;
    unsigned long a = strtoul(v, &end, 10), b = 0;
    int ok = end != v && *end == '/' && v[0] != '-';
    if (ok) {
        const char *p = end + 1;
        b = strtoul(p, &end, 10);
        ok = end != p && *end == 0 && *p != '-' && !errno && b >= 1 && b <= 65536 && a < b;
    }
    if (!ok) {
        fprintf(stderr,
                "mxscan: --shard wants I/N with 0 <= I < N <= 65536 (e.g. 0/4 .. 3/4), not '%s'\n",
                v);
        exit(2);
    }
    *i = (unsigned)a;
    *n = (unsigned)b;
}

/* --resume DB: the id and the command line of the newest unfinished scan
 * in DB. Returns a NULL-terminated argv ("scan", ...) to free with
 * free_argv, or NULL after printing why. */
static char **resume_args(const char *path, int64_t *id, int *argc_out)
{
    sqlite3 *c = NULL;
    sqlite3_stmt *st = NULL;
    char **av = NULL;
    int ac = 0;
    if (access(path, R_OK) != 0) {
        fprintf(stderr, "mxscan: --resume %s: %s\n", path, strerror(errno));
        return NULL;
    }
    if (sqlite3_open_v2(path, &c, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(c,
                           "SELECT s.id, j.value FROM (SELECT id, arguments FROM scans "
                           "WHERE status <> 'done' ORDER BY id DESC LIMIT 1) s, "
                           "json_each(s.arguments) j ORDER BY j.key",
                           -1, &st, NULL) != SQLITE_OK) {
        fprintf(stderr, "mxscan: --resume %s: not an mxscan results database (%s)\n", path,
                c ? sqlite3_errmsg(c) : "cannot open");
        sqlite3_finalize(st);
        sqlite3_close(c);
        return NULL;
    }
    int rc;
    while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
        char **nav = realloc(av, (size_t)(ac + 2) * sizeof *av);
        const unsigned char *v = sqlite3_column_text(st, 1);
        if (!nav) {
            break;
        }
        av = nav;
        *id = sqlite3_column_int64(st, 0);
        av[ac++] = strdup(v ? (const char *)v : "");
        av[ac] = NULL;
    }
    if (rc != SQLITE_DONE || ac == 0) {
        if (rc != SQLITE_DONE) {
            fprintf(stderr, "mxscan: --resume %s: %s\n", path, sqlite3_errmsg(c));
        } else {
            fprintf(stderr,
                    "mxscan: --resume %s: no unfinished scan to resume (every scan in it "
                    "is done)\n",
                    path);
        }
        for (int i = 0; i < ac; i++) {
            free(av[i]);
        }
        free(av);
        av = NULL;
    }
    sqlite3_finalize(st);
    sqlite3_close(c);
    *argc_out = ac;
    return av;
}

/* `mxscan scan`. */
static int cmd_scan(int argc, char **argv)
{
    /* Its own flags; the shared scan flags are added below. */
    static const struct option own_opts[] = {
        {"input", required_argument, 0, 'i'},
        {"output", required_argument, 0, 'o'},
        {"quiet", no_argument, 0, 'q'},
        {"verbose", no_argument, 0, 'v'},
        {"help", no_argument, 0, 'h'},
        {"csv-column", required_argument, 0, O_CSV},
        {"parse-only", no_argument, 0, O_PARSE_ONLY},
        {"concurrency", required_argument, 0, O_CONCURRENCY},
        {"per-ip", required_argument, 0, O_PER_IP},
        {"rate", required_argument, 0, O_RATE},
        {"max-domains", required_argument, 0, O_MAX_DOMAINS},
        {"dedup-mem", required_argument, 0, O_DEDUP_MEM},
        {"shard", required_argument, 0, O_SHARD},
        {"resume", required_argument, 0, O_RESUME},
        {"cache-mem", required_argument, 0, O_CACHE_MEM},
        {"exclude", required_argument, 0, O_EXCLUDE},
        {"per-prefix", required_argument, 0, O_PER_PREFIX},
        {"min-interval", required_argument, 0, O_MIN_INTERVAL},
        {"backoff", required_argument, 0, O_BACKOFF},
        {"retry", required_argument, 0, O_RETRY},
        {0, 0, 0, 0},
    };
    /* --resume DB: the stored command line of the unfinished scan is parsed
     * first, then what this command line adds (-q, -v, -i to give the input
     * again, e.g. when it came from stdin). */
    const char *resume = NULL;
    int64_t resume_id = 0;
    char **rargv = NULL;
    int rargc = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0) {
            break;
        }
        if (strcmp(argv[i], "--resume") == 0 && i + 1 < argc) {
            resume = argv[i + 1];
        } else if (strncmp(argv[i], "--resume=", 9) == 0) {
            resume = argv[i] + 9;
        }
    }
    if (resume) {
        for (int i = 1; i < argc; i++) {
            const char *a = argv[i];
            if (strcmp(a, "--resume") == 0) {
                i++;
                continue;
            }
            if (strncmp(a, "--resume=", 9) == 0 || strcmp(a, "-q") == 0 ||
                strcmp(a, "--quiet") == 0 || strcmp(a, "-v") == 0 || strcmp(a, "--verbose") == 0 ||
                strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
                continue;
            }
            if ((strcmp(a, "-i") == 0 || strcmp(a, "--input") == 0) && i + 1 < argc) {
                i++;
                continue;
            }
            if (strncmp(a, "--input=", 8) == 0) {
                continue;
            }
            fprintf(stderr,
                    "mxscan: with --resume only -i, -q and -v may be given: the scan goes on with "
                    "the settings it was started with ('%s')\n",
                    a);
            return 2;
        }
        rargv = resume_args(resume, &resume_id, &rargc);
        if (!rargv) {
            return 1;
        }
        /* stored argv, then this command line's own options */
        char **all = calloc((size_t)(rargc + argc + 1), sizeof *all);
        if (!all) {
            return 1;
        }
        int n = 0;
        for (int i = 0; i < rargc; i++) {
            all[n++] = rargv[i];
        }
        for (int i = 1; i < argc; i++) {
            all[n++] = argv[i];
        }
        free(rargv);
        rargv = all;
        rargc = n;
    }
    struct option opts[SCANFLAGS_TABLE_LEN(own_opts)];
    if (scanflags_table(opts, sizeof opts / sizeof *opts, own_opts) < 0) {
        return 1; /* cannot happen: the table is sized for both */
    }
    scan_config_t c;
    scan_config_defaults(&c);
    scanflags_t sf; /* c.aka points into it: it outlives scan_run below */
    memset(&sf, 0, sizeof sf);
    c.db_path = "mxscan.db";
    int opt;
    char err[SCANFLAGS_ERR_MAX];
    char *json = args_json(argc, argv);
    c.arguments_json = json;
    if (rargv) {
        /* The stored strings live until exit (reachable from here). */
        static char **resume_argv;
        resume_argv = rargv;
        argc = rargc;
        argv = resume_argv;
    }
    optind = 1;
    while ((opt = getopt_long(argc, argv, "i:o:qvh", opts, NULL)) != -1) {
        switch (opt) {
        case 'i':
            c.input_path = optarg;
            break;
        case 'o':
            c.db_path = optarg;
            break;
        case 'q':
            c.quiet = 1;
            break;
        case 'v':
            log_level = 2;
            break;
        case 'h':
            usage_scan(stdout);
            free(json);
            return 0;
        case O_CSV:
            c.csv_column = (int)num_arg("--csv-column", optarg, 1, 1000);
            break;
        case O_PARSE_ONLY:
            c.parse_only = 1;
            break;
        case O_CONCURRENCY:
            c.limits.concurrency = (int)num_arg("--concurrency", optarg, 1, 100000);
            break;
        case O_PER_IP:
            c.limits.per_ip = (int)num_arg("--per-ip", optarg, 1, 1000);
            break;
        case O_RATE:
            c.limits.rate = (double)num_arg("--rate", optarg, 0, 1000000);
            break;
        case O_MAX_DOMAINS:
            c.max_domains = (int)num_arg("--max-domains", optarg, 1, 10000000);
            break;
        case O_DEDUP_MEM:
            c.dedup_mem = (size_t)num_arg("--dedup-mem", optarg, 1, 65536) << 20;
            break;
        case O_CACHE_MEM:
            c.cache_mem = (size_t)num_arg("--cache-mem", optarg, 0, 65536) << 20;
            break;
        case O_SHARD:
            shard_arg(optarg, &c.shard_i, &c.shard_n);
            break;
        case O_RESUME:
            break; /* taken above */
        case O_EXCLUDE:
            c.exclude_path = optarg;
            break;
        case O_PER_PREFIX:
            c.limits.per_prefix = (int)num_arg("--per-prefix", optarg, 0, 100000);
            break;
        case O_MIN_INTERVAL:
            c.limits.min_interval_ms =
                (int)(strcmp(optarg, "0") == 0 ? 0 : duration_ms("--min-interval", optarg));
            break;
        case O_BACKOFF:
            c.backoff_ms = strcmp(optarg, "0") == 0 ? 0 : duration_ms("--backoff", optarg);
            break;
        case O_RETRY:
            c.retry_ms = strcmp(optarg, "0") == 0 ? 0 : duration_ms("--retry", optarg);
            break;
        default:
            switch (scanflags_apply(&sf, &c, opt, optarg, err, sizeof err)) {
            case 1:
                continue;
            case -1:
                fprintf(stderr, "mxscan: %s\n", err);
                break;
            default: /* getopt_long has said what is wrong */
                fprintf(stderr, "try 'mxscan scan --help'\n");
            }
            free(json);
            return 2;
        }
    }
    scanflags_finish(&sf, &c);
    if (resume) {
        c.db_path = resume; /* the file named now, wherever it was first written */
        c.resume_scan = resume_id;
        if (c.input_path && strcmp(c.input_path, "-") == 0 && isatty(0)) {
            fprintf(stderr,
                    "mxscan: scan %lld read its domains from standard input: give them "
                    "again (mxscan scan --resume %s < FILE, or -i FILE)\n",
                    (long long)resume_id, resume);
            return 2;
        }
    }
    c.domains = argv + optind;
    c.ndomains = argc - optind;
    if (c.input_path && c.ndomains > 0) {
        fprintf(stderr, "mxscan: give domains either with -i or as arguments, not both\n");
        free(json);
        return 2;
    }
    if (!c.input_path && c.ndomains == 0) {
        fprintf(stderr, "mxscan: no domains: give them as arguments or with -i FILE "
                        "(-i - reads stdin); see 'mxscan scan --help'\n");
        free(json);
        return 2;
    }
    int rc = scan_run(&c);
    free(json);
    return rc;
}

/* Dispatches to a subcommand. */
int main(int argc, char **argv)
{
    if (argc < 2) {
        usage_main(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "help") == 0) {
        if (argc > 2 && strcmp(argv[2], "scan") == 0) {
            usage_scan(stdout);
        } else if (argc > 2) {
            char *args[] = {argv[2], "--help", NULL};
            return strcmp(argv[2], "stats") == 0    ? cmd_stats(2, args)
                   : strcmp(argv[2], "export") == 0 ? cmd_export(2, args)
                   : strcmp(argv[2], "diff") == 0   ? cmd_diff(2, args)
                   : strcmp(argv[2], "report") == 0 ? cmd_report(2, args)
                   : strcmp(argv[2], "check") == 0  ? cmd_check(2, args)
                   : strcmp(argv[2], "merge") == 0  ? cmd_merge(2, args)
                                                    : (usage_main(stderr), 2);
        } else {
            usage_main(stdout);
        }
        return 0;
    }
    if (strcmp(cmd, "-V") == 0 || strcmp(cmd, "--version") == 0) {
        printf("mxscan %s\n", MXSCAN_VERSION);
        return 0;
    }
    static const struct {
        const char *name;
        int (*fn)(int, char **);
    } cmds[] = {{"scan", cmd_scan},  {"stats", cmd_stats},   {"export", cmd_export},
                {"diff", cmd_diff},  {"report", cmd_report}, {"check", cmd_check},
                {"merge", cmd_merge}};
    for (size_t i = 0; i < sizeof cmds / sizeof *cmds; i++) {
        if (strcmp(cmd, cmds[i].name) == 0) {
            return cmds[i].fn(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "mxscan: unknown command '%s'\n", cmd);
    usage_main(stderr);
    return 2;
}
