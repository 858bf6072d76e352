-- mxscan results database, schema version 3: statistics views.
--
-- Every aggregate statistic that `mxscan stats` prints is one view here, so
-- that the tool and a user at the sqlite3 prompt get the same numbers:
--
--     SELECT * FROM stats_posture WHERE scan_id = 1 ORDER BY rank;
--
-- The views only read. docs/tool-stats.md documents each one; the comments
-- and definitions below are the reference.
--
-- Columns. Every statistic view has these, in this order:
--   scan_id      the scan
--   rank         the row's place in the statistic: a fixed order for named
--                rows, otherwise by count, largest first (ties as each view
--                says)
--   key          what the row counts: a posture, a TLS version, a provider...
--   count        the row's number in the statistic's own unit: domains for a
--                property of domains (posture, MX kind, MTA-STS, TLSRPT, rua
--                schemes, providers, top-5 share), unique MX hosts for a
--                property of mail servers (STARTTLS, TLS, grades, certificates,
--                DANE); endpoints or addresses in four overview rows
--   domains      the domains that show the value (see "shows" below)
--   domain_share 100 * domains / domain_base: the domain-weighted percentage
--   hosts        the unique MX hosts that show the value
--   host_share   100 * hosts / host_base: the unique-MX-host-weighted percentage
--   domain_base  the number of domains in the population the share is of
--   host_base    the number of MX hosts in the population the share is of
-- Shares are percentages (0 to 100), not rounded: round(domain_share, 1) is
-- the figure `mxscan stats` prints in its tables. NULL when the base is 0.
--
-- Terms:
--   MX host   a host name in the mx table: an MX target, or the domain itself
--             for an implicit MX (RFC 5321 5.1). Unique: each name counts once
--             per scan, however many domains use it.
--   endpoint  an SMTP session made to an MX host: (host, ip, port) in endpoints.
--   reached   an endpoint that answered EHLO or HELO (ehlo_code = 250).
--   TLS       an endpoint that completed a TLS handshake (tls_version set).
--   shows     an MX host shows a value when at least one of its endpoints
--             shows it; a domain shows it when at least one of its MX hosts
--             does. A domain with two MX hosts, one on TLS 1.3 and one on TLS
--             1.2, counts in both rows, so the shares of a distribution can add
--             up to more than 100. For a property of domains (posture, MTA-STS,
--             ...), an MX host shows the value when it serves at least one
--             domain that has it.
--   domain-weighted share: of the domains of the population, the share that
--             shows the value; a provider hosting a million domains weighs a
--             million times. Unique-MX-host-weighted share: of the unique MX
--             hosts of the population, the share that shows it; that provider
--             weighs once per MX host name.
--
-- Populations (domain_base / host_base):
--   all          every domain of the scan (the domains table) / every unique
--                MX host
--   MX domains   domains with at least one MX host (explicit or implicit)
--   reached      domains with at least one reached MX host / reached MX hosts
--   TLS          domains with at least one MX host with TLS / MX hosts with TLS
--   valid TLSRPT domains with a valid TLSRPT record / the MX hosts serving them
--
-- How the views are built, and why: each view starts from the scans table
-- and reaches the data of one scan through subqueries that say
-- `scan_id = s.id` at the tables themselves. SQLite pushes a `WHERE scan_id = ?`
-- on the view down to `scans` (GROUP BY s.id keeps that subquery from being
-- flattened), so a query on one scan reads only that scan, however many the
-- file holds. Rows of a distribution travel from the subquery as a JSON array
-- (json_each unpacks them). Joins from a set of MX hosts to the domains that
-- use them name the mx_host index (schema version 1): without statistics
-- (ANALYZE), SQLite would otherwise scan the scan's whole mx table once per
-- host. A derived table that depends on s.id is the outer loop of its joins
-- (CROSS JOIN fixes the order): as an inner loop SQLite builds it again for
-- every outer row, which only stats_top5_share allows, under its five
-- providers.

-- ---- helpers ----------------------------------------------------------------

-- stats_base: one row per scan with the populations that need no endpoint
-- data: domains (all domains), domains_mx (MX domains), hosts (all unique MX
-- hosts).
CREATE VIEW stats_base AS
SELECT s.id AS scan_id,
       (SELECT count(*) FROM domains WHERE scan_id = s.id) AS domains,
       (SELECT count(DISTINCT domain) FROM mx WHERE scan_id = s.id) AS domains_mx,
       (SELECT count(DISTINCT host) FROM mx WHERE scan_id = s.id) AS hosts
  FROM scans s
 GROUP BY s.id;

-- stats_base_tls: one row per scan with the TLS population: hosts_tls (MX
-- hosts with an endpoint that completed TLS) and domains_tls (domains with at
-- least one such MX host). The base of the TLS and certificate statistics.
CREATE VIEW stats_base_tls AS
SELECT s.id AS scan_id,
       (SELECT count(DISTINCT host) FROM endpoints
         WHERE scan_id = s.id AND tls_version IS NOT NULL) AS hosts_tls,
       (SELECT count(DISTINCT m.domain)
          FROM (SELECT DISTINCT host FROM endpoints
                 WHERE scan_id = s.id AND tls_version IS NOT NULL) t
         CROSS JOIN mx m INDEXED BY mx_host ON m.scan_id = s.id AND m.host = t.host) AS domains_tls
  FROM scans s
 GROUP BY s.id;

-- stats_host_provider: the MX provider of each mx row (scan_id, domain,
-- host, provider): the registered domain of the host name, by an
-- approximation of the Public Suffix List that needs no list. It is the last
-- two labels of the name, or the last three when the last label has two
-- letters (a country code) and the second-to-last is one of the usual second
-- levels ac, co, com, edu, gob, gov, mil, net, org, ne, or, go:
-- aspmx.l.google.com -> google.com, mx.example.co.uk -> example.co.uk,
-- mail.example.com.au -> example.com.au. An IP literal (digits and dots, or
-- anything with a colon) is its own provider, and so is a name of one or two
-- labels. Names are compared in lower case without a trailing dot. This is
-- the one place the rule lives.
--
-- p1, p2, p3 are the name without its last one, two, three labels:
-- rtrim(x, <every character of x but the dot>) strips the last label and the
-- second rtrim the dot before it.
CREATE VIEW stats_host_provider AS
WITH l0 AS (SELECT scan_id, domain, host, lower(rtrim(host, '.')) AS n FROM mx),
l1 AS (SELECT *, rtrim(rtrim(n, replace(n, '.', '')), '.') AS p1 FROM l0),
l2 AS (SELECT *, rtrim(rtrim(p1, replace(p1, '.', '')), '.') AS p2 FROM l1),
l3 AS (SELECT *, rtrim(rtrim(p2, replace(p2, '.', '')), '.') AS p3 FROM l2)
SELECT scan_id, domain, host,
       CASE
         WHEN n NOT GLOB '*[^0-9.]*' OR n GLOB '*:*' THEN n
         WHEN p1 = '' OR p2 = '' THEN n
         WHEN length(n) - length(p1) = 3
              AND substr(p1, length(p2) + 2) IN ('ac', 'co', 'com', 'edu', 'gob', 'gov', 'mil',
                                                  'net', 'org', 'ne', 'or', 'go')
           THEN CASE WHEN p3 = '' THEN n ELSE substr(n, length(p3) + 2) END
         ELSE substr(n, length(p2) + 2)
       END AS provider
  FROM l3;

-- ---- statistics -------------------------------------------------------------

-- stats_overview: the size of the scan. Population: all.
--   domains               count = domains = domains scanned
--   mx_hosts              count = hosts = unique MX hosts; domains = MX domains
--   hosts_with_endpoints  MX hosts with at least one endpoint (an address was
--                         found and a session made); domains using one
--   hosts_reached         reached MX hosts; domains using one
--   hosts_tls             MX hosts with TLS; domains using one
--   endpoints             count = SMTP sessions (host, ip, port)
--   endpoints_reached     count = sessions that answered EHLO or HELO
--   endpoints_tls         count = sessions that completed TLS
--   ip_addresses          count = distinct IP addresses of the sessions
-- domains and hosts are NULL in the four rows that count sessions or addresses.
CREATE VIEW stats_overview AS
WITH k(rank, key) AS (VALUES (1, 'domains'), (2, 'mx_hosts'), (3, 'hosts_with_endpoints'),
                             (4, 'hosts_reached'), (5, 'hosts_tls'), (6, 'endpoints'),
                             (7, 'endpoints_reached'), (8, 'endpoints_tls'), (9, 'ip_addresses')),
n AS (
  SELECT s.id AS scan_id,
         (WITH h AS (SELECT host, max(ifnull(ehlo_code, 0) = 250) AS r,
                            max(tls_version IS NOT NULL) AS t
                       FROM endpoints WHERE scan_id = s.id GROUP BY host)
          SELECT json_object(
                   'hosts', json_object(
                     'hosts_with_endpoints', count(DISTINCT h.host),
                     'hosts_reached', count(DISTINCT CASE WHEN h.r THEN h.host END),
                     'hosts_tls', count(DISTINCT CASE WHEN h.t THEN h.host END)),
                   'domains', json_object(
                     'hosts_with_endpoints', count(DISTINCT m.domain),
                     'hosts_reached', count(DISTINCT CASE WHEN h.r THEN m.domain END),
                     'hosts_tls', count(DISTINCT CASE WHEN h.t THEN m.domain END)))
            FROM h CROSS JOIN mx m INDEXED BY mx_host ON m.scan_id = s.id AND m.host = h.host)
           AS hd,
         (SELECT json_object('endpoints', count(*),
                             'endpoints_reached', count(CASE WHEN ehlo_code = 250 THEN 1 END),
                             'endpoints_tls', count(tls_version),
                             'ip_addresses', count(DISTINCT ip))
            FROM endpoints WHERE scan_id = s.id) AS e
    FROM scans s
   GROUP BY s.id),
r AS (SELECT n.scan_id, k.rank, k.key, b.domains AS domain_base, b.hosts AS host_base,
             CASE k.key WHEN 'domains' THEN b.domains
                        WHEN 'mx_hosts' THEN b.domains_mx
                        ELSE json_extract(n.hd, '$.domains.' || k.key) END AS domains,
             CASE k.key WHEN 'mx_hosts' THEN b.hosts
                        ELSE json_extract(n.hd, '$.hosts.' || k.key) END AS hosts,
             json_extract(n.e, '$.' || k.key) AS other
        FROM n JOIN stats_base b ON b.scan_id = n.scan_id CROSS JOIN k)
SELECT scan_id, rank, key,
       CASE WHEN key = 'domains' THEN domains ELSE coalesce(hosts, other) END AS count,
       domains, 100.0 * domains / nullif(domain_base, 0) AS domain_share,
       hosts, 100.0 * hosts / nullif(host_base, 0) AS host_share,
       domain_base, host_base
  FROM r;

-- stats_posture: domains by posture (domains.posture, see FINDINGS.md), in
-- the order of precedence; every posture is listed (0 when no domain has it)
-- and a NULL posture is 'unknown'. count = domains. Population: all; hosts =
-- MX hosts serving at least one domain of that posture.
CREATE VIEW stats_posture AS
WITH k(rank, key) AS (VALUES (1, 'no-mail'), (2, 'dns-error'), (3, 'unreachable'), (4, 'broken'),
                             (5, 'plaintext'), (6, 'partial'), (7, 'dane'), (8, 'mta-sts'),
                             (9, 'mta-sts-testing'), (10, 'starttls')),
n AS (
  SELECT s.id AS scan_id,
         (SELECT json_group_array(json_array(key, domains, hosts))
            FROM (SELECT key, count(DISTINCT domain) AS domains, count(DISTINCT host) AS hosts
                    FROM (SELECT coalesce(d.posture, 'unknown') AS key, d.domain, m.host
                            FROM domains d
                            LEFT JOIN mx m ON m.scan_id = s.id AND m.domain = d.domain
                           WHERE d.scan_id = s.id
                          UNION ALL
                          SELECT key, NULL, NULL FROM k)
                   GROUP BY key)) AS rows
    FROM scans s
   GROUP BY s.id),
r AS (SELECT n.scan_id, json_extract(j.value, '$[0]') AS key,
             json_extract(j.value, '$[1]') AS domains, json_extract(j.value, '$[2]') AS hosts
        FROM n, json_each(n.rows) j)
SELECT r.scan_id,
       row_number() OVER (PARTITION BY r.scan_id ORDER BY coalesce(k.rank, 99), r.key) AS rank,
       r.key, r.domains AS count,
       r.domains, 100.0 * r.domains / nullif(b.domains, 0) AS domain_share,
       r.hosts, 100.0 * r.hosts / nullif(b.hosts, 0) AS host_share,
       b.domains AS domain_base, b.hosts AS host_base
  FROM r JOIN stats_base b ON b.scan_id = r.scan_id
  LEFT JOIN k ON k.key = r.key;

-- stats_mx_kind: domains by domains.mx_kind: mx (MX records), implicit (no
-- MX: the domain's own address, RFC 5321 5.1), null (null MX "0 .", RFC
-- 7505: no mail), none (no MX and no address, or the lookup failed); NULL is
-- 'unknown'. count = domains. Population and hosts as in stats_posture.
CREATE VIEW stats_mx_kind AS
WITH k(rank, key) AS (VALUES (1, 'mx'), (2, 'implicit'), (3, 'null'), (4, 'none')),
n AS (
  SELECT s.id AS scan_id,
         (SELECT json_group_array(json_array(key, domains, hosts))
            FROM (SELECT key, count(DISTINCT domain) AS domains, count(DISTINCT host) AS hosts
                    FROM (SELECT coalesce(d.mx_kind, 'unknown') AS key, d.domain, m.host
                            FROM domains d
                            LEFT JOIN mx m ON m.scan_id = s.id AND m.domain = d.domain
                           WHERE d.scan_id = s.id
                          UNION ALL
                          SELECT key, NULL, NULL FROM k)
                   GROUP BY key)) AS rows
    FROM scans s
   GROUP BY s.id),
r AS (SELECT n.scan_id, json_extract(j.value, '$[0]') AS key,
             json_extract(j.value, '$[1]') AS domains, json_extract(j.value, '$[2]') AS hosts
        FROM n, json_each(n.rows) j)
SELECT r.scan_id,
       row_number() OVER (PARTITION BY r.scan_id ORDER BY coalesce(k.rank, 99), r.key) AS rank,
       r.key, r.domains AS count,
       r.domains, 100.0 * r.domains / nullif(b.domains, 0) AS domain_share,
       r.hosts, 100.0 * r.hosts / nullif(b.hosts, 0) AS host_share,
       b.domains AS domain_base, b.hosts AS host_base
  FROM r JOIN stats_base b ON b.scan_id = r.scan_id
  LEFT JOIN k ON k.key = r.key;

-- stats_starttls: STARTTLS support. Population: reached. count = hosts. A
-- reached MX host counts in a row when one of its reached endpoints is (a
-- domain: when one of its reached MX hosts counts):
--   offered      STARTTLS was in the EHLO reply
--   not_offered  it was not (or the server only spoke HELO); sessions made
--                with --tls-on-connect are not counted here
--   rejected     STARTTLS was offered and the command got a reply other
--                than 220
--   tls          a TLS session was completed
--   tls_failed   STARTTLS was accepted (220) but no TLS session came of it
--                (the handshake failed, or the server broke the protocol)
--   all_tls      every reached endpoint completed TLS (all, not one; for a
--                domain: every reached endpoint of every MX host), so mail
--                to it can always go encrypted
CREATE VIEW stats_starttls AS
WITH k(rank, key) AS (VALUES (1, 'offered'), (2, 'not_offered'), (3, 'rejected'), (4, 'tls'),
                             (5, 'tls_failed'), (6, 'all_tls')),
n AS (
  SELECT s.id AS scan_id,
         (WITH h AS (
            SELECT host,
                   max(ifnull(ehlo_code, 0) = 250 AND ifnull(starttls_offered, 0) = 1) AS offered,
                   max(ifnull(ehlo_code, 0) = 250 AND ifnull(starttls_offered, 0) = 0
                       AND ifnull(tls_on_connect, 0) = 0) AS not_offered,
                   max(ifnull(starttls_offered, 0) = 1
                       AND ifnull(starttls_code, 0) NOT IN (0, 220)) AS rejected,
                   max(ifnull(ehlo_code, 0) = 250 AND tls_version IS NOT NULL) AS tls,
                   max(ifnull(starttls_offered, 0) = 1 AND ifnull(starttls_code, 0) = 220
                       AND tls_version IS NULL) AS tls_failed,
                   min(CASE WHEN ifnull(ehlo_code, 0) = 250 THEN tls_version IS NOT NULL END)
                     AS all_tls
              FROM endpoints WHERE scan_id = s.id
             GROUP BY host
            HAVING max(ifnull(ehlo_code, 0) = 250)),
          d AS (
            SELECT max(h.offered) AS offered, max(h.not_offered) AS not_offered,
                   max(h.rejected) AS rejected, max(h.tls) AS tls,
                   max(h.tls_failed) AS tls_failed, min(h.all_tls) AS all_tls
              FROM h CROSS JOIN mx m INDEXED BY mx_host ON m.scan_id = s.id AND m.host = h.host
             GROUP BY m.domain)
          SELECT json_object(
                   'hosts', json((SELECT json_object('base', count(*),
                                   'offered', coalesce(sum(offered), 0),
                                   'not_offered', coalesce(sum(not_offered), 0),
                                   'rejected', coalesce(sum(rejected), 0),
                                   'tls', coalesce(sum(tls), 0),
                                   'tls_failed', coalesce(sum(tls_failed), 0),
                                   'all_tls', coalesce(sum(all_tls), 0)) FROM h)),
                   'domains', json((SELECT json_object('base', count(*),
                                     'offered', coalesce(sum(offered), 0),
                                     'not_offered', coalesce(sum(not_offered), 0),
                                     'rejected', coalesce(sum(rejected), 0),
                                     'tls', coalesce(sum(tls), 0),
                                     'tls_failed', coalesce(sum(tls_failed), 0),
                                     'all_tls', coalesce(sum(all_tls), 0)) FROM d)))) AS j
    FROM scans s
   GROUP BY s.id),
r AS (SELECT n.scan_id, k.rank, k.key,
             json_extract(n.j, '$.domains.base') AS domain_base,
             json_extract(n.j, '$.hosts.base') AS host_base,
             json_extract(n.j, '$.domains.' || k.key) AS domains,
             json_extract(n.j, '$.hosts.' || k.key) AS hosts
        FROM n CROSS JOIN k)
SELECT scan_id, rank, key, hosts AS count,
       domains, 100.0 * domains / nullif(domain_base, 0) AS domain_share,
       hosts, 100.0 * hosts / nullif(host_base, 0) AS host_share,
       domain_base, host_base
  FROM r;

-- stats_tls_version: the TLS versions negotiated (endpoints.tls_version),
-- newest first. Population: TLS. count = hosts: MX hosts with an endpoint
-- that negotiated the version; domains: domains with such an MX host.
CREATE VIEW stats_tls_version AS
WITH n AS (
  SELECT s.id AS scan_id,
         (SELECT json_group_array(json_array(key, domains, hosts))
            FROM (SELECT v.key, count(DISTINCT m.domain) AS domains, count(DISTINCT v.host) AS hosts
                    FROM (SELECT DISTINCT host, tls_version AS key FROM endpoints
                           WHERE scan_id = s.id AND tls_version IS NOT NULL) v
                   CROSS JOIN mx m INDEXED BY mx_host ON m.scan_id = s.id AND m.host = v.host
                   GROUP BY v.key)) AS rows
    FROM scans s
   GROUP BY s.id),
r AS (SELECT n.scan_id, json_extract(j.value, '$[0]') AS key,
             json_extract(j.value, '$[1]') AS domains, json_extract(j.value, '$[2]') AS hosts
        FROM n, json_each(n.rows) j)
SELECT r.scan_id, row_number() OVER (PARTITION BY r.scan_id ORDER BY r.key DESC) AS rank,
       r.key, r.hosts AS count,
       r.domains, 100.0 * r.domains / nullif(b.domains_tls, 0) AS domain_share,
       r.hosts, 100.0 * r.hosts / nullif(b.hosts_tls, 0) AS host_share,
       b.domains_tls AS domain_base, b.hosts_tls AS host_base
  FROM r JOIN stats_base_tls b ON b.scan_id = r.scan_id;

-- stats_tls_cipher: the cipher suites negotiated (endpoints.tls_cipher,
-- OpenSSL names; 'unknown' when not recorded), most hosts first. Population,
-- count, domains and hosts as in stats_tls_version.
CREATE VIEW stats_tls_cipher AS
WITH n AS (
  SELECT s.id AS scan_id,
         (SELECT json_group_array(json_array(key, domains, hosts))
            FROM (SELECT v.key, count(DISTINCT m.domain) AS domains, count(DISTINCT v.host) AS hosts
                    FROM (SELECT DISTINCT host, coalesce(tls_cipher, 'unknown') AS key
                            FROM endpoints
                           WHERE scan_id = s.id AND tls_version IS NOT NULL) v
                   CROSS JOIN mx m INDEXED BY mx_host ON m.scan_id = s.id AND m.host = v.host
                   GROUP BY v.key)) AS rows
    FROM scans s
   GROUP BY s.id),
r AS (SELECT n.scan_id, json_extract(j.value, '$[0]') AS key,
             json_extract(j.value, '$[1]') AS domains, json_extract(j.value, '$[2]') AS hosts
        FROM n, json_each(n.rows) j)
SELECT r.scan_id,
       row_number() OVER (PARTITION BY r.scan_id ORDER BY r.hosts DESC, r.domains DESC, r.key)
         AS rank,
       r.key, r.hosts AS count,
       r.domains, 100.0 * r.domains / nullif(b.domains_tls, 0) AS domain_share,
       r.hosts, 100.0 * r.hosts / nullif(b.hosts_tls, 0) AS host_share,
       b.domains_tls AS domain_base, b.hosts_tls AS host_base
  FROM r JOIN stats_base_tls b ON b.scan_id = r.scan_id;

-- stats_tls_group: the key-exchange groups (endpoints.tls_group: x25519,
-- secp256r1, ffdhe2048, ..., RSA for a static RSA key exchange; 'unknown'
-- when not recorded), most hosts first. As stats_tls_cipher otherwise.
CREATE VIEW stats_tls_group AS
WITH n AS (
  SELECT s.id AS scan_id,
         (SELECT json_group_array(json_array(key, domains, hosts))
            FROM (SELECT v.key, count(DISTINCT m.domain) AS domains, count(DISTINCT v.host) AS hosts
                    FROM (SELECT DISTINCT host, coalesce(tls_group, 'unknown') AS key
                            FROM endpoints
                           WHERE scan_id = s.id AND tls_version IS NOT NULL) v
                   CROSS JOIN mx m INDEXED BY mx_host ON m.scan_id = s.id AND m.host = v.host
                   GROUP BY v.key)) AS rows
    FROM scans s
   GROUP BY s.id),
r AS (SELECT n.scan_id, json_extract(j.value, '$[0]') AS key,
             json_extract(j.value, '$[1]') AS domains, json_extract(j.value, '$[2]') AS hosts
        FROM n, json_each(n.rows) j)
SELECT r.scan_id,
       row_number() OVER (PARTITION BY r.scan_id ORDER BY r.hosts DESC, r.domains DESC, r.key)
         AS rank,
       r.key, r.hosts AS count,
       r.domains, 100.0 * r.domains / nullif(b.domains_tls, 0) AS domain_share,
       r.hosts, 100.0 * r.hosts / nullif(b.hosts_tls, 0) AS host_share,
       b.domains_tls AS domain_base, b.hosts_tls AS host_base
  FROM r JOIN stats_base_tls b ON b.scan_id = r.scan_id;

-- stats_grade: the TLS grades (endpoints.grade, A to F, docs/grading.md;
-- 'ungraded' when not recorded) of endpoints with TLS, A first. A host
-- counts under every grade one of its endpoints got, a domain under every
-- grade one of its MX hosts got. As stats_tls_version otherwise.
CREATE VIEW stats_grade AS
WITH n AS (
  SELECT s.id AS scan_id,
         (SELECT json_group_array(json_array(key, domains, hosts))
            FROM (SELECT v.key, count(DISTINCT m.domain) AS domains, count(DISTINCT v.host) AS hosts
                    FROM (SELECT DISTINCT host, coalesce(grade, 'ungraded') AS key FROM endpoints
                           WHERE scan_id = s.id AND tls_version IS NOT NULL) v
                   CROSS JOIN mx m INDEXED BY mx_host ON m.scan_id = s.id AND m.host = v.host
                   GROUP BY v.key)) AS rows
    FROM scans s
   GROUP BY s.id),
r AS (SELECT n.scan_id, json_extract(j.value, '$[0]') AS key,
             json_extract(j.value, '$[1]') AS domains, json_extract(j.value, '$[2]') AS hosts
        FROM n, json_each(n.rows) j)
SELECT r.scan_id, row_number() OVER (PARTITION BY r.scan_id ORDER BY r.key) AS rank,
       r.key, r.hosts AS count,
       r.domains, 100.0 * r.domains / nullif(b.domains_tls, 0) AS domain_share,
       r.hosts, 100.0 * r.hosts / nullif(b.hosts_tls, 0) AS host_share,
       b.domains_tls AS domain_base, b.hosts_tls AS host_base
  FROM r JOIN stats_base_tls b ON b.scan_id = r.scan_id;

-- stats_cert_problems: certificate findings by code: every cert.* code of
-- FINDINGS.md (cert.ocsp.missing, an info, included; filter on key for
-- others), most hosts first. count = hosts: MX hosts with TLS and a finding
-- of that code; domains: domains with such an MX host. Population: TLS
-- (certificates are only seen over TLS).
CREATE VIEW stats_cert_problems AS
WITH n AS (
  SELECT s.id AS scan_id,
         (SELECT json_group_array(json_array(key, domains, hosts))
            FROM (SELECT v.key, count(DISTINCT m.domain) AS domains, count(DISTINCT v.host) AS hosts
                    FROM (SELECT DISTINCT f.host, f.code AS key FROM findings f
                           WHERE f.scan_id = s.id AND f.code GLOB 'cert.*' AND f.host IS NOT NULL
                             AND EXISTS (SELECT 1 FROM endpoints e
                                          WHERE e.scan_id = s.id AND e.host = f.host
                                            AND e.tls_version IS NOT NULL)) v
                   CROSS JOIN mx m INDEXED BY mx_host ON m.scan_id = s.id AND m.host = v.host
                   GROUP BY v.key)) AS rows
    FROM scans s
   GROUP BY s.id),
r AS (SELECT n.scan_id, json_extract(j.value, '$[0]') AS key,
             json_extract(j.value, '$[1]') AS domains, json_extract(j.value, '$[2]') AS hosts
        FROM n, json_each(n.rows) j)
SELECT r.scan_id,
       row_number() OVER (PARTITION BY r.scan_id ORDER BY r.hosts DESC, r.domains DESC, r.key)
         AS rank,
       r.key, r.hosts AS count,
       r.domains, 100.0 * r.domains / nullif(b.domains_tls, 0) AS domain_share,
       r.hosts, 100.0 * r.hosts / nullif(b.hosts_tls, 0) AS host_share,
       b.domains_tls AS domain_base, b.hosts_tls AS host_base
  FROM r JOIN stats_base_tls b ON b.scan_id = r.scan_id;

-- stats_dane: DANE for SMTP (RFC 7672), per MX host. Population: MX domains
-- and all MX hosts. count = hosts. An MX host counts in:
--   tlsa         TLSA records were found for it (tlsa table), whatever their
--                DNSSEC status
--   usable       hosts.dane = 'usable': DNSSEC-validated TLSA records, at
--                least one usable for SMTP
--   valid        an endpoint's chain matched a usable record (endpoints.dane)
--   mismatch     an endpoint's chain matched none of the usable records
--   no_starttls  usable TLSA, but a reached endpoint had no TLS session
--   unusable     hosts.dane = 'unusable': TLSA records, none usable for SMTP
--                (RFC 7672 3.1.3)
--   bogus        hosts.dane = 'bogus': the TLSA lookup failed DNSSEC validation
--   insecure     hosts.dane = 'insecure': the TLSA records or the host's
--                address live in an unsigned zone, so DANE does not apply
--   none         hosts.dane = 'none': signed zone, no TLSA
-- A domain counts when one of its MX hosts does. An MX host without a hosts
-- row (an IP literal) counts in none of the hosts.dane rows.
CREATE VIEW stats_dane AS
WITH k(rank, key) AS (VALUES (1, 'tlsa'), (2, 'usable'), (3, 'valid'), (4, 'mismatch'),
                             (5, 'no_starttls'), (6, 'unusable'), (7, 'bogus'), (8, 'insecure'),
                             (9, 'none')),
n AS (
  SELECT s.id AS scan_id,
         (WITH h AS (
            SELECT u.host, o.dane,
                   EXISTS (SELECT 1 FROM tlsa t WHERE t.scan_id = s.id AND t.host = u.host) AS tlsa,
                   CASE WHEN o.dane = 'usable' THEN
                     (SELECT json_array(max(ifnull(e.dane, '') = 'valid'),
                                        max(ifnull(e.dane, '') = 'mismatch'),
                                        max(ifnull(e.ehlo_code, 0) = 250 AND e.tls_version IS NULL))
                        FROM endpoints e WHERE e.scan_id = s.id AND e.host = u.host)
                   END AS ep
              FROM (SELECT DISTINCT host FROM mx WHERE scan_id = s.id) u
              LEFT JOIN hosts o ON o.scan_id = s.id AND o.host = u.host),
          x AS (
            SELECT k.key, h.host FROM h
              JOIN k ON CASE k.key WHEN 'tlsa' THEN h.tlsa
                                   WHEN 'valid' THEN json_extract(h.ep, '$[0]')
                                   WHEN 'mismatch' THEN json_extract(h.ep, '$[1]')
                                   WHEN 'no_starttls' THEN json_extract(h.ep, '$[2]')
                                   ELSE h.dane = k.key END)
          SELECT json_group_array(json_array(key, domains, hosts))
            FROM (SELECT key, count(DISTINCT domain) AS domains, count(DISTINCT host) AS hosts
                    FROM (SELECT x.key, x.host, m.domain
                            FROM x CROSS JOIN mx m INDEXED BY mx_host
                                   ON m.scan_id = s.id AND m.host = x.host
                          UNION ALL
                          SELECT key, NULL, NULL FROM k)
                   GROUP BY key)) AS rows
    FROM scans s
   GROUP BY s.id),
r AS (SELECT n.scan_id, json_extract(j.value, '$[0]') AS key,
             json_extract(j.value, '$[1]') AS domains, json_extract(j.value, '$[2]') AS hosts
        FROM n, json_each(n.rows) j)
SELECT r.scan_id, k.rank, r.key, r.hosts AS count,
       r.domains, 100.0 * r.domains / nullif(b.domains_mx, 0) AS domain_share,
       r.hosts, 100.0 * r.hosts / nullif(b.hosts, 0) AS host_share,
       b.domains_mx AS domain_base, b.hosts AS host_base
  FROM r JOIN stats_base b ON b.scan_id = r.scan_id
  JOIN k ON k.key = r.key;

-- stats_mta_sts: MTA-STS (RFC 8461), per domain. Population: all. count =
-- domains. A domain counts in:
--   record          an _mta-sts TXT record was found (valid or not)
--   record_valid    the record is valid (one v=STSv1 record with an id)
--   policy_fetched  the policy was fetched (fetch_status = 'ok')
--   policy_valid    a valid policy is in force (domains.sts_mode is set)
--   mode_enforce, mode_testing, mode_none   that policy's mode
--   enforce_ready   a valid enforce or testing policy that every MX host
--                   passes: it matches an mx: pattern and is PKIX-valid (no
--                   sts.mx.mismatch nor sts.mx.cert finding), so enforcing
--                   the policy would not bounce mail
-- hosts: MX hosts serving at least one domain that counts.
CREATE VIEW stats_mta_sts AS
WITH k(rank, key) AS (VALUES (1, 'record'), (2, 'record_valid'), (3, 'policy_fetched'),
                             (4, 'policy_valid'), (5, 'mode_enforce'), (6, 'mode_testing'),
                             (7, 'mode_none'), (8, 'enforce_ready')),
n AS (
  SELECT s.id AS scan_id,
         (SELECT json_group_array(json_array(key, domains, hosts))
            FROM (SELECT key, count(DISTINCT domain) AS domains, count(DISTINCT host) AS hosts
                    FROM (SELECT k.key, d.domain, m.host
                            FROM domains d
                            LEFT JOIN mta_sts t ON t.scan_id = s.id AND t.domain = d.domain
                           CROSS JOIN k ON CASE k.key
                              WHEN 'record' THEN ifnull(t.txt, '') <> ''
                              WHEN 'record_valid' THEN ifnull(t.txt_valid, 0) = 1
                              WHEN 'policy_fetched' THEN ifnull(t.fetch_status, '') = 'ok'
                              WHEN 'policy_valid' THEN d.sts_mode IS NOT NULL
                              WHEN 'mode_enforce' THEN ifnull(d.sts_mode, '') = 'enforce'
                              WHEN 'mode_testing' THEN ifnull(d.sts_mode, '') = 'testing'
                              WHEN 'mode_none' THEN ifnull(d.sts_mode, '') = 'none'
                              ELSE ifnull(d.sts_mode, '') IN ('enforce', 'testing')
                                   AND NOT EXISTS (
                                     SELECT 1 FROM findings f
                                      WHERE f.scan_id = s.id AND f.domain = d.domain
                                        AND f.code IN ('sts.mx.mismatch', 'sts.mx.cert'))
                            END
                            LEFT JOIN mx m ON m.scan_id = s.id AND m.domain = d.domain
                           WHERE d.scan_id = s.id
                          UNION ALL
                          SELECT key, NULL, NULL FROM k)
                   GROUP BY key)) AS rows
    FROM scans s
   GROUP BY s.id),
r AS (SELECT n.scan_id, json_extract(j.value, '$[0]') AS key,
             json_extract(j.value, '$[1]') AS domains, json_extract(j.value, '$[2]') AS hosts
        FROM n, json_each(n.rows) j)
SELECT r.scan_id, k.rank, r.key, r.domains AS count,
       r.domains, 100.0 * r.domains / nullif(b.domains, 0) AS domain_share,
       r.hosts, 100.0 * r.hosts / nullif(b.hosts, 0) AS host_share,
       b.domains AS domain_base, b.hosts AS host_base
  FROM r JOIN stats_base b ON b.scan_id = r.scan_id
  JOIN k ON k.key = r.key;

-- stats_tlsrpt: TLSRPT (RFC 8460) adoption. Population: all. count =
-- domains. record: a _smtp._tls TXT record was found; valid: it is valid
-- (tlsrpt.valid = 1); invalid: it is not (malformed, a bad rua scheme,
-- several records). hosts: MX hosts serving at least one such domain.
CREATE VIEW stats_tlsrpt AS
WITH k(rank, key) AS (VALUES (1, 'record'), (2, 'valid'), (3, 'invalid')),
n AS (
  SELECT s.id AS scan_id,
         (SELECT json_group_array(json_array(key, domains, hosts))
            FROM (SELECT key, count(DISTINCT domain) AS domains, count(DISTINCT host) AS hosts
                    FROM (SELECT k.key, t.domain, m.host
                            FROM tlsrpt t
                           CROSS JOIN k ON CASE k.key WHEN 'record' THEN ifnull(t.record, '') <> ''
                                                 WHEN 'valid' THEN ifnull(t.valid, -1) = 1
                                                 ELSE ifnull(t.valid, -1) = 0 END
                            LEFT JOIN mx m ON m.scan_id = s.id AND m.domain = t.domain
                           WHERE t.scan_id = s.id
                          UNION ALL
                          SELECT key, NULL, NULL FROM k)
                   GROUP BY key)) AS rows
    FROM scans s
   GROUP BY s.id),
r AS (SELECT n.scan_id, json_extract(j.value, '$[0]') AS key,
             json_extract(j.value, '$[1]') AS domains, json_extract(j.value, '$[2]') AS hosts
        FROM n, json_each(n.rows) j)
SELECT r.scan_id, k.rank, r.key, r.domains AS count,
       r.domains, 100.0 * r.domains / nullif(b.domains, 0) AS domain_share,
       r.hosts, 100.0 * r.hosts / nullif(b.hosts, 0) AS host_share,
       b.domains AS domain_base, b.hosts AS host_base
  FROM r JOIN stats_base b ON b.scan_id = r.scan_id
  JOIN k ON k.key = r.key;

-- stats_tlsrpt_rua_scheme: the URI schemes (mailto, https) of the reporting
-- addresses (rua) of valid TLSRPT records, most domains first. Population:
-- domains with a valid TLSRPT record, and the MX hosts serving them. count =
-- domains: domains with at least one rua URI of that scheme (a domain with
-- both counts in both rows); hosts: MX hosts serving such a domain.
CREATE VIEW stats_tlsrpt_rua_scheme AS
WITH n AS (
  SELECT s.id AS scan_id,
         (SELECT json_array(count(DISTINCT t.domain), count(DISTINCT m.host))
            FROM tlsrpt t LEFT JOIN mx m ON m.scan_id = s.id AND m.domain = t.domain
           WHERE t.scan_id = s.id AND t.valid = 1) AS base,
         (SELECT json_group_array(json_array(key, domains, hosts))
            FROM (SELECT lower(substr(u.value, 1, instr(u.value, ':') - 1)) AS key,
                         count(DISTINCT t.domain) AS domains, count(DISTINCT m.host) AS hosts
                    FROM tlsrpt t
                    JOIN json_each(CASE WHEN json_valid(t.rua) THEN t.rua ELSE '[]' END) u
                    LEFT JOIN mx m ON m.scan_id = s.id AND m.domain = t.domain
                   WHERE t.scan_id = s.id AND t.valid = 1
                     AND u.type = 'text' AND instr(u.value, ':') > 1
                   GROUP BY 1)) AS rows
    FROM scans s
   GROUP BY s.id),
r AS (SELECT n.scan_id, json_extract(n.base, '$[0]') AS domain_base,
             json_extract(n.base, '$[1]') AS host_base, json_extract(j.value, '$[0]') AS key,
             json_extract(j.value, '$[1]') AS domains, json_extract(j.value, '$[2]') AS hosts
        FROM n, json_each(n.rows) j)
SELECT scan_id, row_number() OVER (PARTITION BY scan_id ORDER BY domains DESC, key) AS rank,
       key, domains AS count,
       domains, 100.0 * domains / nullif(domain_base, 0) AS domain_share,
       hosts, 100.0 * hosts / nullif(host_base, 0) AS host_share,
       domain_base, host_base
  FROM r;

-- stats_mx_provider: the MX providers (stats_host_provider) by the number of
-- domains that depend on them, most first; ties: more MX hosts first, then
-- by name. count = domains: domains with at least one MX host of the
-- provider; hosts: the provider's unique MX hosts. Population: MX domains and
-- all MX hosts. Every provider is listed: add `AND rank <= 10` for a top ten.
CREATE VIEW stats_mx_provider AS
WITH n AS (
  SELECT s.id AS scan_id,
         (SELECT json_group_array(json_array(provider, domains, hosts))
            FROM (SELECT u.provider, count(DISTINCT m.domain) AS domains,
                         count(DISTINCT u.host) AS hosts
                    FROM (SELECT host, provider FROM stats_host_provider
                           WHERE scan_id = s.id GROUP BY host) u
                   CROSS JOIN mx m INDEXED BY mx_host ON m.scan_id = s.id AND m.host = u.host
                   GROUP BY u.provider)) AS rows
    FROM scans s
   GROUP BY s.id),
r AS (SELECT n.scan_id, json_extract(j.value, '$[0]') AS key,
             json_extract(j.value, '$[1]') AS domains, json_extract(j.value, '$[2]') AS hosts
        FROM n, json_each(n.rows) j)
SELECT r.scan_id,
       row_number() OVER (PARTITION BY r.scan_id ORDER BY r.domains DESC, r.hosts DESC, r.key)
         AS rank,
       r.key, r.domains AS count,
       r.domains, 100.0 * r.domains / nullif(b.domains_mx, 0) AS domain_share,
       r.hosts, 100.0 * r.hosts / nullif(b.hosts, 0) AS host_share,
       b.domains_mx AS domain_base, b.hosts AS host_base
  FROM r JOIN stats_base b ON b.scan_id = r.scan_id;

-- stats_top5_share: how much the five largest providers (ranks 1 to 5 of
-- stats_mx_provider, by the same order) decide. Population: MX domains and
-- all MX hosts. count = domains.
--   top5_any   domains with at least one MX host at a top-5 provider
--   top5_all   domains whose every MX host is at a top-5 provider
-- hosts (both rows): the unique MX hosts of the top-5 providers.
CREATE VIEW stats_top5_share AS
WITH k(rank, key) AS (VALUES (1, 'top5_any'), (2, 'top5_all')),
n AS (
  SELECT s.id AS scan_id,
         (WITH u AS (SELECT host, provider FROM stats_host_provider
                      WHERE scan_id = s.id GROUP BY host),
               t AS (SELECT u.provider, count(DISTINCT m.domain) AS domains,
                            count(DISTINCT u.host) AS hosts
                       FROM u CROSS JOIN mx m INDEXED BY mx_host
                              ON m.scan_id = s.id AND m.host = u.host
                      GROUP BY u.provider
                      ORDER BY domains DESC, hosts DESC, u.provider
                      LIMIT 5),
               th AS (SELECT u.host FROM t CROSS JOIN u ON u.provider = t.provider),
               d AS (SELECT sum(top) AS n_top, count(*) - sum(top) AS n_mx
                       FROM (SELECT domain, 0 AS top FROM mx WHERE scan_id = s.id
                             UNION ALL
                             SELECT m.domain, 1
                               FROM th CROSS JOIN mx m INDEXED BY mx_host
                                       ON m.scan_id = s.id AND m.host = th.host)
                      GROUP BY domain)
          SELECT json_object('top5_any', a.top5_any, 'top5_all', a.top5_all, 'hosts', h.hosts)
            FROM (SELECT coalesce(sum(n_top > 0), 0) AS top5_any,
                         coalesce(sum(n_top = n_mx), 0) AS top5_all FROM d) a
           CROSS JOIN (SELECT count(*) AS hosts FROM th) h) AS j
    FROM scans s
   GROUP BY s.id),
r AS (SELECT n.scan_id, k.rank, k.key, b.domains_mx AS domain_base, b.hosts AS host_base,
             json_extract(n.j, '$.' || k.key) AS domains, json_extract(n.j, '$.hosts') AS hosts
        FROM n JOIN stats_base b ON b.scan_id = n.scan_id CROSS JOIN k)
SELECT scan_id, rank, key, domains AS count,
       domains, 100.0 * domains / nullif(domain_base, 0) AS domain_share,
       hosts, 100.0 * hosts / nullif(host_base, 0) AS host_share,
       domain_base, host_base
  FROM r;
