-- mxscan results database, schema version 2: security verdicts.
--
-- Applied after schema.sql (version 1), to new files and old ones alike, so
-- a database written by any version ends with the same tables. Adds the
-- facts that certificate checks, the TLS grade, DANE (RFC 7672), MTA-STS
-- (RFC 8461) and TLSRPT (RFC 8460) are judged from, and their results.

-- TLS and certificate facts of each endpoint (leaf = first certificate).
ALTER TABLE endpoints ADD COLUMN tls_cipher_bits INTEGER;  -- symmetric strength of the cipher
ALTER TABLE endpoints ADD COLUMN tls_aead INTEGER;         -- 1 for AEAD ciphers (GCM, CCM, ChaCha20-Poly1305)
ALTER TABLE endpoints ADD COLUMN tls_kx TEXT;              -- ECDHE | DHE | RSA | any (TLS 1.3) | other
ALTER TABLE endpoints ADD COLUMN verify_errors TEXT;       -- JSON array of every X509_V_* error PKIX verification met
ALTER TABLE endpoints ADD COLUMN ocsp_der BLOB;            -- the stapled OCSP response, as sent
ALTER TABLE endpoints ADD COLUMN ocsp_status TEXT;         -- good | revoked | unknown | try-later | error | NULL (no staple)
ALTER TABLE endpoints ADD COLUMN cert_subject TEXT;
ALTER TABLE endpoints ADD COLUMN cert_issuer TEXT;
ALTER TABLE endpoints ADD COLUMN cert_names TEXT;          -- JSON array: DNS names of the SAN (CN when no SAN)
ALTER TABLE endpoints ADD COLUMN cert_not_before TEXT;     -- ISO 8601 UTC
ALTER TABLE endpoints ADD COLUMN cert_not_after TEXT;
ALTER TABLE endpoints ADD COLUMN cert_key_type TEXT;       -- RSA | EC | ED25519 | ED448 | DSA
ALTER TABLE endpoints ADD COLUMN cert_key_bits INTEGER;
ALTER TABLE endpoints ADD COLUMN cert_sig_alg TEXT;        -- e.g. ecdsa-with-SHA256
ALTER TABLE endpoints ADD COLUMN pkix_valid INTEGER;       -- trusted chain, name match and dates all good
ALTER TABLE endpoints ADD COLUMN grade TEXT;               -- A | B | C | D | E | F
ALTER TABLE endpoints ADD COLUMN grade_score INTEGER;      -- 0..100 before caps
ALTER TABLE endpoints ADD COLUMN grade_caps TEXT;          -- JSON array of the reasons that cap the grade
ALTER TABLE endpoints ADD COLUMN dane TEXT;                -- valid | mismatch | NULL (no usable TLSA)
ALTER TABLE endpoints ADD COLUMN dane_match TEXT;          -- the TLSA record that matched: "3 1 1 <hex>"
ALTER TABLE endpoints ADD COLUMN enum_versions TEXT;       -- JSON array of protocol versions accepted (--enum)

-- DANE per MX host: where TLSA was looked up and what came back.
ALTER TABLE hosts ADD COLUMN tlsa_name TEXT;               -- _25._tcp.<host> (or its RFC 7671 alias)
ALTER TABLE hosts ADD COLUMN tlsa_rcode TEXT;
ALTER TABLE hosts ADD COLUMN tlsa_dnssec TEXT;             -- secure | insecure | bogus
ALTER TABLE hosts ADD COLUMN dane TEXT;                    -- none | insecure | bogus | unusable | usable

-- Per domain: the MTA-STS mode in force and whether TLSRPT is published.
ALTER TABLE domains ADD COLUMN sts_mode TEXT;              -- enforce | testing | none | NULL (no valid policy)
ALTER TABLE domains ADD COLUMN tlsrpt INTEGER;             -- 1 valid record, 0 invalid, NULL none

-- Every TLSA record seen, per MX host.
CREATE TABLE IF NOT EXISTS tlsa (
    scan_id  INTEGER NOT NULL REFERENCES scans(id),
    host     TEXT NOT NULL,
    name     TEXT NOT NULL,       -- owner name the record was found at
    usage    INTEGER NOT NULL,
    selector INTEGER NOT NULL,
    mtype    INTEGER NOT NULL,
    data     TEXT NOT NULL,       -- certificate association data, lower-case hex
    usable   INTEGER NOT NULL     -- usable for SMTP (RFC 7672 3.1.3: DANE-TA(2) or DANE-EE(3), known selector and matching type, right length)
);
CREATE INDEX IF NOT EXISTS tlsa_host ON tlsa(scan_id, host);

-- MTA-STS (RFC 8461) per domain: the TXT record and the policy fetched.
CREATE TABLE IF NOT EXISTS mta_sts (
    scan_id      INTEGER NOT NULL REFERENCES scans(id),
    domain       TEXT NOT NULL,
    txt_rcode    TEXT,            -- of the _mta-sts.<domain> TXT lookup
    txt          TEXT,            -- the STSv1 record(s), joined with newlines
    txt_id       TEXT,            -- its id= value
    txt_valid    INTEGER,
    fetch_status TEXT,            -- ok | dns | connect | tls | http | redirect | size | timeout | NULL (not fetched)
    fetch_error  TEXT,            -- what went wrong, verbatim
    http_status  INTEGER,
    webpki_valid INTEGER,         -- the policy host's certificate is PKIX-valid for mta-sts.<domain>
    policy       TEXT,            -- the body as fetched (capped)
    version      TEXT,
    mode         TEXT,            -- enforce | testing | none
    max_age      INTEGER,
    mx           TEXT,            -- JSON array of mx: patterns
    policy_valid INTEGER,
    policy_error TEXT,
    PRIMARY KEY (scan_id, domain)
);

-- TLSRPT (RFC 8460) per domain.
CREATE TABLE IF NOT EXISTS tlsrpt (
    scan_id   INTEGER NOT NULL REFERENCES scans(id),
    domain    TEXT NOT NULL,
    txt_rcode TEXT,
    record    TEXT,               -- the TLSRPTv1 record(s), joined with newlines
    valid     INTEGER,
    error     TEXT,
    rua       TEXT,               -- JSON array of reporting URIs
    PRIMARY KEY (scan_id, domain)
);
