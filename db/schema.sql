-- mxscan results database, schema version 1.
--
-- This is a stable interface: users write SQL against these names. Columns
-- may be added by later migrations; none is renamed or changes meaning.
-- Every table but scans carries scan_id: one file holds many scans.
-- Times are ISO 8601 UTC text; durations are milliseconds (REAL).

CREATE TABLE IF NOT EXISTS scans (
    id            INTEGER PRIMARY KEY,
    started_at    TEXT NOT NULL,
    ended_at      TEXT,
    status        TEXT NOT NULL DEFAULT 'running', -- running | done | interrupted | failed
    arguments     TEXT NOT NULL,                   -- JSON array of the command line
    version       TEXT NOT NULL,                   -- mxscan version that wrote the scan
    resolvers     TEXT,                            -- resolvers used, comma separated
    helo          TEXT,                            -- EHLO name sent
    input_lines   INTEGER NOT NULL DEFAULT 0,      -- lines read from the input
    domains       INTEGER NOT NULL DEFAULT 0,      -- unique valid domains scanned
    duplicates    INTEGER NOT NULL DEFAULT 0,      -- duplicate domains dropped
    rejected      INTEGER NOT NULL DEFAULT 0,      -- invalid input lines (see rejected)
    hosts         INTEGER NOT NULL DEFAULT 0,      -- unique MX hosts
    endpoints     INTEGER NOT NULL DEFAULT 0,      -- (host, ip, port) sessions made
    elapsed_s     REAL                             -- wall-clock duration
);

-- One row per scanned domain.
CREATE TABLE IF NOT EXISTS domains (
    scan_id        INTEGER NOT NULL REFERENCES scans(id),
    domain         TEXT NOT NULL,       -- normalised: lower case, no trailing dot
    input_line     INTEGER,             -- line number in the input (1-based)
    posture        TEXT,                -- see FINDINGS.md: no-mail, dns-error, unreachable, ...
    worst_severity TEXT,                -- crit | warn | info | NULL when no finding
    n_crit         INTEGER NOT NULL DEFAULT 0,
    n_warn         INTEGER NOT NULL DEFAULT 0,
    n_info         INTEGER NOT NULL DEFAULT 0,
    mx_kind        TEXT,                -- mx | null | implicit | none
    mx_rcode       TEXT,                -- NOERROR, NXDOMAIN, SERVFAIL, REFUSED, TIMEOUT, ...
    mx_dnssec      TEXT,                -- secure (AD bit set) | insecure | NULL (no answer)
    mx_count       INTEGER NOT NULL DEFAULT 0,
    scanned_at     TEXT,
    PRIMARY KEY (scan_id, domain)
);

-- Domain to MX host. An implicit MX (RFC 5321 5.1) is the domain itself
-- with preference 0 and implicit = 1.
CREATE TABLE IF NOT EXISTS mx (
    scan_id    INTEGER NOT NULL REFERENCES scans(id),
    domain     TEXT NOT NULL,
    host       TEXT NOT NULL,
    preference INTEGER NOT NULL,
    implicit   INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (scan_id, domain, host)
);
CREATE INDEX IF NOT EXISTS mx_host ON mx(scan_id, host);

-- One row per unique MX host name in a scan, however many domains use it.
CREATE TABLE IF NOT EXISTS hosts (
    scan_id     INTEGER NOT NULL REFERENCES scans(id),
    host        TEXT NOT NULL,
    a_rcode     TEXT,                -- rcode (or TIMEOUT) of the A query
    aaaa_rcode  TEXT,                -- rcode (or TIMEOUT) of the AAAA query
    a_dnssec    TEXT,                -- secure | insecure
    aaaa_dnssec TEXT,
    dnssec      TEXT,                -- secure when every address answer had AD, else insecure
    cname       TEXT,                -- canonical name when the host is a CNAME
    ip_literal  INTEGER NOT NULL DEFAULT 0,
    addresses   TEXT,                -- JSON array of addresses
    n_endpoints INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (scan_id, host)
);

-- One row per SMTP session: (host, ip, port).
CREATE TABLE IF NOT EXISTS endpoints (
    scan_id          INTEGER NOT NULL REFERENCES scans(id),
    host             TEXT NOT NULL,
    ip               TEXT NOT NULL,
    port             INTEGER NOT NULL,
    started_at       TEXT,
    status           TEXT NOT NULL,   -- ok | failed
    failed_step      TEXT,            -- connect | banner | ehlo | starttls | tls | ehlo2 | NULL
    error            TEXT,            -- why that step failed
    tls_on_connect   INTEGER NOT NULL DEFAULT 0,
    banner_code      INTEGER,
    greeting         TEXT,            -- the 220 greeting, verbatim (all lines)
    helo_fallback    INTEGER NOT NULL DEFAULT 0, -- EHLO refused, HELO used
    ehlo_code        INTEGER,
    ehlo_before      TEXT,            -- JSON array of EHLO keywords with parameters, before TLS
    ehlo_after       TEXT,            -- the same after TLS
    starttls_offered INTEGER,
    starttls_code    INTEGER,         -- reply to STARTTLS
    starttls_reply   TEXT,
    tls_version      TEXT,            -- TLSv1.3, TLSv1.2, ...
    tls_cipher       TEXT,            -- OpenSSL cipher name
    tls_group        TEXT,            -- key-exchange group (x25519, secp256r1, ffdhe2048, ...)
    tls_kex_bits     INTEGER,         -- size of the ephemeral key
    verify_code      INTEGER,         -- X509_V_* result of PKIX verification (observed only)
    verify_error     TEXT,
    chain_der        BLOB,            -- the peer's chain, leaf first, DER certificates concatenated
    chain_len        INTEGER,
    t_connect_ms     REAL,
    t_banner_ms      REAL,
    t_ehlo_ms        REAL,
    t_starttls_ms    REAL,
    t_tls_ms         REAL,
    t_ehlo2_ms       REAL,
    t_total_ms       REAL,
    PRIMARY KEY (scan_id, host, ip, port)
);

-- What mxscan judged: codes and severities of FINDINGS.md. A finding about
-- an MX host or endpoint carries host (and ip, port); one about the domain
-- itself carries domain.
CREATE TABLE IF NOT EXISTS findings (
    id          INTEGER PRIMARY KEY,
    scan_id     INTEGER NOT NULL REFERENCES scans(id),
    domain      TEXT,
    host        TEXT,
    ip          TEXT,
    port        INTEGER,
    code        TEXT NOT NULL,
    severity    TEXT NOT NULL,   -- crit | warn | info
    result_type TEXT,            -- RFC 8460 result type, where one applies
    detail      TEXT
);
CREATE INDEX IF NOT EXISTS findings_domain ON findings(scan_id, domain);
CREATE INDEX IF NOT EXISTS findings_host ON findings(scan_id, host);
CREATE INDEX IF NOT EXISTS findings_code ON findings(scan_id, code);

-- Input lines that were not valid domain names.
CREATE TABLE IF NOT EXISTS rejected (
    scan_id INTEGER NOT NULL REFERENCES scans(id),
    line    INTEGER NOT NULL,
    text    TEXT,
    reason  TEXT NOT NULL
);

-- Every finding that concerns a domain: its own, and those of the MX hosts
-- and endpoints it uses (host findings are stored once per host).
CREATE VIEW IF NOT EXISTS domain_findings AS
SELECT f.scan_id, f.domain, f.host, f.ip, f.port, f.code, f.severity, f.result_type, f.detail
  FROM findings f WHERE f.domain IS NOT NULL
UNION ALL
SELECT f.scan_id, m.domain, f.host, f.ip, f.port, f.code, f.severity, f.result_type, f.detail
  FROM findings f JOIN mx m ON m.scan_id = f.scan_id AND m.host = f.host
 WHERE f.domain IS NULL;
