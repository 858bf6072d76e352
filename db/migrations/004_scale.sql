-- mxscan results database, schema version 4: scans at scale.
--
-- Resumable and sharded scans, the bounded host cache and the exclusion
-- list. Applied after 003 to new files and old ones alike.

-- The scan covered one shard of its input (--shard I/N): "I/N", else NULL.
ALTER TABLE scans ADD COLUMN shard TEXT;
-- How many times `mxscan scan --resume` continued this scan.
ALTER TABLE scans ADD COLUMN resumed INTEGER NOT NULL DEFAULT 0;
-- Domains and addresses not scanned because --exclude lists them.
ALTER TABLE scans ADD COLUMN excluded INTEGER NOT NULL DEFAULT 0;
-- `mxscan merge`: JSON array of {"file", "scan_id", "shard"} merged into this scan.
ALTER TABLE scans ADD COLUMN merged_from TEXT;

-- What the verdicts of the host's domains need of it (JSON object; see
-- host_summary_t in scanner/cache.h). A resumed scan, or a scan whose host
-- cache evicted the host, reads it back instead of scanning the host again.
ALTER TABLE hosts ADD COLUMN summary TEXT;

-- --retry: a connect timeout or a 421/4xx greeting is tried once more,
-- later in the scan; the row is the second try's, and says what the first met.
ALTER TABLE endpoints ADD COLUMN attempts INTEGER NOT NULL DEFAULT 1;
ALTER TABLE endpoints ADD COLUMN first_error TEXT; -- "step: error" of the first try

-- A resumed scan re-reads its input: an input line is rejected once.
CREATE UNIQUE INDEX IF NOT EXISTS rejected_line ON rejected(scan_id, line);

-- What --exclude kept mxscan from touching: a domain (before any DNS
-- query), or an address of an MX host (before any connection).
CREATE TABLE IF NOT EXISTS excluded (
    scan_id INTEGER NOT NULL REFERENCES scans(id),
    domain  TEXT,            -- the input domain, when the name is listed
    host    TEXT,            -- the MX host, when one of its addresses is listed
    ip      TEXT,
    reason  TEXT NOT NULL    -- e.g. "listed: example.com" or "listed: 192.0.2.0/24"
);
CREATE INDEX IF NOT EXISTS excluded_scan ON excluded(scan_id);
