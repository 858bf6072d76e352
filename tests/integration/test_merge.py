"""`mxscan merge`: the test network's domain list scanned once whole and once as 4 shards
(`--shard I/4`), the shards merged, and the merged scan checked against the whole scan
(every statistic of `mxscan stats`, and the per-domain and per-host facts they come from)
and against the shards themselves (every row of the merged scan is the row of one shard;
a host scanned by several shards is kept once, from the first; rejected lines once).
Then the refusals and errors: an unfinished scan, the same shard twice, shards of
different N or started with different settings, a missing file, a file that is not an
mxscan database, an existing output. Everything reaches loopback only."""
import hashlib
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
import unittest

from mxtest import CA_FILE, MXSCAN, RESOLVER, SRC, rows, scan

DOMAINS_FILE = os.path.join(SRC, "tests", "net", "domains.txt")
# The same flags for the whole scan and every shard (tarpit-like hosts answer within 3 s).
FLAGS = ["--timeout", "3s", "--rate", "0"]
N = 4
# Lines the input gets besides the test network's list: rejected ones and duplicates.
EXTRA_LINES = ["bad..name.test", "single-label", "127.0.0.1", "a" * 64 + ".test",
               "valid.test", "VALID.TEST.", "plain.test"]
# Columns that record when, not what: they differ between any two scans.
TIMING = {"scanned_at", "started_at"}
# A few fast domains for the small scans of the error cases.
SMALL = ["valid.test", "plain.test", "partial.test", "nullmx.test", "implicit.test",
         "tls12.test", "rsa.test", "cnamemx.test"]
ATTEMPTS = 3


def fnv1a64(name):
    """FNV-1a 64 of a normalised domain, as docs/sharding.md gives it."""
    h = 0xcbf29ce484222325
    for b in name.encode():
        h ^= b
        h = (h * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def merge(*args):
    """Runs `mxscan merge ARGS`; returns (rc, stdout, stderr)."""
    p = subprocess.run([MXSCAN, "merge", "-q"] + list(args), capture_output=True, timeout=300)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def stats_json(db, scan_id=None):
    """`mxscan stats --format json --top 0` of a scan, without what says when it ran:
    the scan's id, start, end and duration differ between any two scans."""
    args = [MXSCAN, "stats", db, "--format", "json", "--top", "0"]
    if scan_id:
        args += ["--scan", str(scan_id)]
    p = subprocess.run(args, capture_output=True, timeout=300)
    assert p.returncode == 0, p.stderr
    j = json.loads(p.stdout)
    for k in ("id", "started_at", "ended_at", "elapsed_s"):
        j["scan"].pop(k)
    return j


def scan_id_of(db):
    return rows(db, "SELECT max(id) FROM scans")[0][0]


def table(db, name, scan_id, where="1"):
    """Rows of a table in a scan as dicts, without scan_id and findings.id."""
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    try:
        out = []
        for r in con.execute("SELECT * FROM %s WHERE scan_id = ? AND (%s)" % (name, where),
                             (scan_id,)):
            d = dict(r)
            d.pop("scan_id")
            if name == "findings":
                d.pop("id")
            out.append(d)
        return out
    finally:
        con.close()


def multiset(dicts):
    return sorted(repr(sorted(d.items())) for d in dicts)


def facts(db, scan_id=None):
    """What a scan found, per domain and per host, in the form every statistic is computed
    from. Left out, because they differ between two scans of the same servers: times, the
    order of DNS records (TXT and TLSA record sets come in any order, so do texts that
    quote them) and the wording of an error (a reset is seen at connect or at the banner,
    by chance)."""
    scan_id = scan_id or scan_id_of(db)

    def pick(name, cols, where="1"):
        return sorted((tuple(r[c] for c in cols) for r in table(db, name, scan_id, where)),
                      key=repr)

    hosts = []
    for h in table(db, "hosts", scan_id):
        h["addresses"] = sorted(json.loads(h["addresses"] or "[]"))
        h["summary"] = json.loads(h["summary"]) if h["summary"] else None
        hosts.append(repr(sorted(h.items())))
    return {
        "domains": multiset({k: v for k, v in d.items() if k not in TIMING}
                            for d in table(db, "domains", scan_id)),
        "mx": multiset(table(db, "mx", scan_id)),
        "hosts": sorted(hosts),
        "endpoints": pick("endpoints", ["host", "ip", "port", "status", "banner_code",
                                        "ehlo_code", "starttls_offered", "starttls_code",
                                        "tls_version",
                                        "tls_cipher", "tls_group", "verify_code", "pkix_valid",
                                        "grade", "dane", "cert_subject", "cert_not_after",
                                        "ocsp_status"]),
        "findings": pick("findings", ["domain", "host", "ip", "port", "code", "severity",
                                      "result_type"]),
        "mta_sts": sorted(((r["domain"], r["txt_rcode"], bool(r["txt"]), r["txt_valid"],
                            r["fetch_status"], r["http_status"], r["webpki_valid"], r["mode"],
                            r["max_age"], r["policy_valid"])
                           for r in table(db, "mta_sts", scan_id)), key=repr),
        "tlsrpt": sorted(((r["domain"], r["txt_rcode"], bool(r["record"]), r["valid"],
                           sorted(json.loads(r["rua"] or "[]")))
                          for r in table(db, "tlsrpt", scan_id)), key=repr),
        "tlsa": pick("tlsa", ["host", "name", "usage", "selector", "mtype", "data", "usable"]),
        "rejected": pick("rejected", ["line", "text", "reason"]),
        "excluded": multiset(table(db, "excluded", scan_id)),
    }


def facts_diff(a, b):
    """A short account of how two facts() differ."""
    out = []
    for k in a:
        if a[k] != b[k]:
            sa, sb = set(map(repr, a[k])), set(map(repr, b[k]))
            out.append("%s: only whole: %s; only merged: %s" % (
                k, sorted(sa - sb)[:3], sorted(sb - sa)[:3]))
    return "\n".join(out)


def file_digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class TestMerge(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="mxscan-merge-")
        cls.input = os.path.join(cls.dir, "input.txt")
        with open(DOMAINS_FILE) as f:
            lines = f.read().splitlines()
        with open(cls.input, "w") as f:
            f.write("\n".join(lines + EXTRA_LINES) + "\n")
        # The servers of the test network answer the same way every time, but DNS on a
        # cold or busy resolver can fail once (a SERVFAIL, a TLSA lookup that times out).
        # Such a difference between the whole scan and the shards is not the merge's
        # doing, so a run whose facts differ is made again, at most ATTEMPTS times; the
        # differences seen are printed.
        for attempt in range(ATTEMPTS):
            d = os.path.join(cls.dir, "run%d" % attempt)
            os.mkdir(d)
            cls.whole = scan(["-i", cls.input] + FLAGS, db=os.path.join(d, "whole.db"))
            cls.shards = [scan(["-i", cls.input, "--shard", "%d/%d" % (i, N)] + FLAGS,
                               db=os.path.join(d, "shard%d.db" % i)) for i in range(N)]
            cls.shard_dbs = [s.db for s in cls.shards]
            if cls.whole.rc != 0 or any(s.rc != 0 for s in cls.shards):
                break
            cls.files_before = sorted(os.listdir(d))
            cls.digests = [file_digest(p) for p in cls.shard_dbs]
            cls.out = os.path.join(d, "merged.db")
            cls.rc, cls.stdout, cls.stderr = merge(cls.out, *cls.shard_dbs)
            if cls.rc != 0:
                break
            cls.files_after = sorted(os.listdir(d))
            cls.attempts = attempt + 1
            fw, fm = facts(cls.whole.db), facts(cls.out)
            if fw == fm:
                break
            print("test_merge: attempt %d: the whole scan and the shards saw different "
                  "things (not the merge's doing); again:\n%s" % (attempt + 1,
                                                                facts_diff(fw, fm)))
        cls.whole_id = scan_id_of(cls.whole.db)
        cls.merged_id = scan_id_of(cls.out) if cls.rc == 0 else None

    def setUp(self):
        self.assertEqual(self.whole.rc, 0, self.whole.err)
        for s in self.shards:
            self.assertEqual(s.rc, 0, s.err)
        self.assertEqual(self.rc, 0, self.stderr)

    def tmp(self, name):
        return os.path.join(self.dir, name)

    # ---- the merged scan against the whole scan --------------------------------------

    def test_stats_equal_whole_scan(self):
        """Every statistic of `mxscan stats` (all 15, every row and column, also the MX
        host-weighted ones) of the merged scan equals that of the unsharded scan; the
        scan header too, but for its id, start, end and duration."""
        self.assertEqual(facts(self.whole.db), facts(self.out),
                         "the whole scan and the shards saw different things in %d attempts"
                         % ATTEMPTS)
        self.assertEqual(stats_json(self.out), stats_json(self.whole.db))

    def test_facts_equal_whole_scan(self):
        """Domain by domain and host by host, the merged scan holds what the whole scan
        found: postures, MX records, hosts, endpoints, findings, MTA-STS, TLSRPT, TLSA,
        rejected lines."""
        fw, fm = facts(self.whole.db), facts(self.out)
        self.assertEqual(fw, fm, facts_diff(fw, fm))
        self.assertEqual(len(fm["domains"]), 272)

    def test_scan_row(self):
        """The merged scans row: done, no shard, merged_from lists the inputs in order,
        the earliest start and latest end, input_lines the largest (the same in every
        shard), duplicates the sum (= the whole scan's), elapsed_s the largest, the first
        shard's arguments without --shard, and counts from the merged rows."""
        con = sqlite3.connect(self.out)
        con.row_factory = sqlite3.Row
        m = dict(con.execute("SELECT * FROM scans WHERE id = ?", (self.merged_id,)).fetchone())
        counts = {t: con.execute("SELECT count(*) FROM %s WHERE scan_id = ?" % t,
                                 (self.merged_id,)).fetchone()[0]
                  for t in ("domains", "hosts", "endpoints", "rejected", "excluded")}
        con.close()
        sh = [rows(db, "SELECT started_at, ended_at, input_lines, duplicates, elapsed_s, "
                       "arguments, shard, id, version FROM scans")[0] for db in self.shard_dbs]
        w = rows(self.whole.db, "SELECT input_lines, duplicates, domains, rejected, hosts, "
                                "endpoints FROM scans WHERE id = ?", self.whole_id)[0]
        self.assertEqual(m["status"], "done")
        self.assertIsNone(m["shard"])
        self.assertEqual(json.loads(m["merged_from"]),
                         [{"file": db, "scan_id": s[7], "shard": "%d/%d" % (i, N)}
                          for i, (db, s) in enumerate(zip(self.shard_dbs, sh))])
        self.assertEqual([s[6] for s in sh], ["%d/%d" % (i, N) for i in range(N)])
        self.assertEqual(m["started_at"], min(s[0] for s in sh))
        self.assertEqual(m["ended_at"], max(s[1] for s in sh))
        self.assertEqual(m["input_lines"], max(s[2] for s in sh))
        self.assertEqual({s[2] for s in sh}, {w[0]})
        self.assertEqual(m["input_lines"], 272 + len(EXTRA_LINES))
        self.assertEqual(m["duplicates"], sum(s[3] for s in sh))
        self.assertEqual(m["duplicates"], w[1])
        self.assertEqual(m["duplicates"], 3)
        self.assertAlmostEqual(m["elapsed_s"], max(s[4] for s in sh))
        first = json.loads(sh[0][5])
        i = first.index("--shard")
        self.assertEqual(json.loads(m["arguments"]), first[:i] + first[i + 2:])
        self.assertEqual(m["version"], sh[0][8])
        for k, v in counts.items():
            self.assertEqual(m[k], v, k)
        self.assertEqual((m["domains"], m["rejected"], m["hosts"], m["endpoints"]), w[2:])

    # ---- the shards ------------------------------------------------------------------

    def test_shards_disjoint_and_cover(self):
        """The shards' domains are pairwise disjoint and together are every domain of the
        whole scan; each domain is in shard FNV-1a-64(name) mod 4, the documented hash."""
        sets = [{r[0] for r in rows(db, "SELECT domain FROM domains")} for db in self.shard_dbs]
        for i in range(N):
            self.assertTrue(sets[i], "shard %d is empty" % i)
            for j in range(i):
                self.assertFalse(sets[i] & sets[j], (i, j))
            for d in sets[i]:
                self.assertEqual(fnv1a64(d) % N, i, d)
        whole = {r[0] for r in rows(self.whole.db, "SELECT domain FROM domains")}
        self.assertEqual(set().union(*sets), whole)
        self.assertEqual(len(whole), 272)

    def test_rows_come_from_the_shards(self):
        """Every row of the merged scan is a row of a shard, column for column (times
        included): the rows of each domain from its shard, and each MX host's hosts row,
        endpoints, TLSA records and host findings all from the first shard (in argument
        order) that scanned the host, never some from one shard and some from another."""
        got = self.merged_rows(self.out, self.merged_id)
        want = self.expected_rows(self.shard_dbs)
        for t in want:
            self.assertEqual(got[t], want[t], t)

    def expected_rows(self, dbs):
        """The merged scan as this test works it out from the shards."""
        ids = [scan_id_of(db) for db in dbs]
        want = {t: [] for t in ("domains", "mx", "mta_sts", "tlsrpt", "findings", "hosts",
                                "endpoints", "tlsa", "rejected", "excluded")}
        owner = {}
        for i, (db, sid) in enumerate(zip(dbs, ids)):
            for t in ("domains", "mx", "mta_sts", "tlsrpt"):
                want[t] += table(db, t, sid)
            want["findings"] += table(db, "findings", sid, "domain IS NOT NULL")
            for h in table(db, "hosts", sid):
                owner.setdefault(h["host"], i)
        for t, where in (("hosts", "1"), ("endpoints", "1"), ("tlsa", "1"),
                         ("findings", "domain IS NULL")):
            for i, (db, sid) in enumerate(zip(dbs, ids)):
                want[t] += [r for r in table(db, t, sid, where) if owner[r["host"]] == i]
        rejected = [multiset(table(db, "rejected", sid)) for db, sid in zip(dbs, ids)]
        self.assertEqual(len({repr(r) for r in rejected}), 1, "shards rejected other lines")
        want["rejected"] = table(dbs[0], "rejected", ids[0])
        return {t: multiset(v) for t, v in want.items()}

    def merged_rows(self, db, scan_id):
        return {t: multiset(table(db, t, scan_id))
                for t in ("domains", "mx", "mta_sts", "tlsrpt", "findings", "hosts",
                          "endpoints", "tlsa", "rejected", "excluded")}

    def test_shared_hosts_once(self):
        """MX hosts that several shards scanned (mx-valid.test serves domains of every
        shard) are in the merged scan once, with the endpoints of one shard once; the
        summary line counts them."""
        seen = {}
        for i, db in enumerate(self.shard_dbs):
            for (h,) in rows(db, "SELECT host FROM hosts"):
                seen.setdefault(h, []).append(i)
        shared = {h: s for h, s in seen.items() if len(s) > 1}
        self.assertIn("mx-valid.test", shared)
        self.assertEqual(len(shared["mx-valid.test"]), N)
        m = re.search(r"\((\d+) scanned by more than one shard\)", self.stdout)
        self.assertTrue(m, self.stdout)
        self.assertEqual(int(m.group(1)), len(shared))
        self.assertEqual(rows(self.out, "SELECT count(*), count(DISTINCT host) FROM hosts "
                                        "WHERE scan_id = ?", self.merged_id)[0],
                         (len(seen), len(seen)))
        for h, s in shared.items():
            first = self.shard_dbs[s[0]]
            ep = sorted(rows(first, "SELECT ip, port, started_at FROM endpoints WHERE host = ?",
                             h))
            got = sorted(rows(self.out, "SELECT ip, port, started_at FROM endpoints "
                                        "WHERE scan_id = ? AND host = ?", self.merged_id, h))
            self.assertEqual(got, ep, h)
            self.assertEqual(len(got), len(set((ip, port) for ip, port, _ in got)))

    def test_rejected_once(self):
        """Every shard reads the whole input and stores its rejected lines; the merged
        scan has each once, as the whole scan does."""
        want = sorted(rows(self.whole.db, "SELECT line, text, reason FROM rejected"))
        self.assertEqual(len(want), 4)
        for db in self.shard_dbs:
            self.assertEqual(sorted(rows(db, "SELECT line, text, reason FROM rejected")), want)
        self.assertEqual(sorted(rows(self.out, "SELECT line, text, reason FROM rejected "
                                               "WHERE scan_id = ?", self.merged_id)), want)

    def test_inputs_unchanged(self):
        """merge opens its inputs read-only: their bytes do not change and no -wal or
        -shm file appears beside them."""
        self.assertEqual([file_digest(p) for p in self.shard_dbs], self.digests)
        self.assertEqual(sorted(set(self.files_after) - {"merged.db"}), self.files_before)

    def test_summary_line(self):
        """One line on stdout: scans merged, domains, hosts, shared hosts."""
        self.assertRegex(self.stdout, r"^merged 4 scans into .*merged\.db, scan 1 \(done\): "
                                      r"272 domains, \d+ MX hosts \(\d+ scanned by more than "
                                      r"one shard\), \d+ endpoints, 4 rejected lines, "
                                      r"0 excluded, in [\d.]+ s\n"
                                      # only if a server answered two shards differently
                                      r"(  \d+ of the shared MX hosts answered the shards "
                                      r"differently; .*\n)?$")

    def test_other_order_other_owner(self):
        """The inputs in reverse order: a shared host's rows now come from the last shard
        that has it (the first given), and the statistics stay the same."""
        out = self.tmp("reverse.db")
        rc, _, err = merge(out, *reversed(self.shard_dbs))
        self.assertEqual(rc, 0, err)
        sid = scan_id_of(out)
        got = self.merged_rows(out, sid)
        want = self.expected_rows(list(reversed(self.shard_dbs)))
        for t in want:
            self.assertEqual(got[t], want[t], t)
        self.assertEqual(stats_json(out), stats_json(self.out))

    def test_excluded_differing_and_orphan_rows(self):
        """Rows the scanner writes rarely or not yet, added by hand to copies of the
        shards: an excluded domain that every shard recorded is kept once; excluded
        addresses of a shared host come with the host, from its first shard; a shared
        host whose facts (hosts.summary) differ in one shard is counted as answering
        differently; endpoints and findings of a host without its hosts row (what an
        unfinished scan can leave) are left out and counted."""
        d = self.tmp("handmade")
        os.mkdir(d)
        dbs = []
        for i, db in enumerate(self.shard_dbs):
            dbs.append(os.path.join(d, "shard%d.db" % i))
            shutil.copy(db, dbs[-1])
        for i, db in enumerate(dbs):
            con = sqlite3.connect(db)
            con.execute("INSERT INTO excluded(scan_id, domain, host, ip, reason) "
                        "VALUES(1, 'x-excluded.test', NULL, NULL, 'listed: x-excluded.test')")
            con.execute("INSERT INTO excluded(scan_id, domain, host, ip, reason) VALUES(1, NULL, "
                        "'mx-valid.test', '192.0.2.1', 'listed by shard %d')" % i)
            if i == 1:
                con.execute("UPDATE hosts SET summary = '{\"changed\":1}' "
                            "WHERE host = 'mx-valid.test'")
            con.commit()
            con.close()
        # a host only the last shard has, with endpoints or findings, loses its hosts row
        others = set()
        for db in dbs[:-1]:
            others |= {r[0] for r in rows(db, "SELECT host FROM hosts")}
        cands = [h for (h,) in rows(dbs[-1], "SELECT host FROM hosts") if h not in others]
        counts = {h: sum(rows(dbs[-1], q, h)[0][0] for q in (
            "SELECT count(*) FROM endpoints WHERE host = ?",
            "SELECT count(*) FROM tlsa WHERE host = ?",
            "SELECT count(*) FROM findings WHERE domain IS NULL AND host = ?")) for h in cands}
        orphan = max(counts, key=lambda h: counts[h])
        self.assertGreater(counts[orphan], 0)
        con = sqlite3.connect(dbs[-1])
        con.execute("DELETE FROM hosts WHERE host = ?", (orphan,))
        con.commit()
        con.close()
        out = self.tmp("handmade.db")
        rc, stdout, err = merge(out, *dbs)
        self.assertEqual(rc, 0, err)
        sid = scan_id_of(out)
        self.assertEqual(sorted(rows(out, "SELECT domain, host, ip, reason FROM excluded "
                                          "WHERE scan_id = ?", sid), key=repr),
                         sorted([("x-excluded.test", None, None, "listed: x-excluded.test"),
                                 (None, "mx-valid.test", "192.0.2.1", "listed by shard 0")],
                                key=repr))
        self.assertEqual(rows(out, "SELECT excluded FROM scans WHERE id = ?", sid), [(2,)])
        self.assertIn("\n  1 of the shared MX hosts answered the shards differently", stdout)
        self.assertIn("\n  %d rows of MX hosts without their hosts row" % counts[orphan], stdout)
        for t in ("hosts", "endpoints", "tlsa", "findings"):
            self.assertEqual(rows(out, "SELECT count(*) FROM %s WHERE host = ?" % t, orphan)[0][0],
                             0, t)

    # ---- output file -------------------------------------------------------------------

    def test_existing_output(self):
        """An existing OUT is refused; --force replaces it; --append adds the merged scan
        to it as a further scan with the same statistics."""
        out = self.tmp("existing.db")
        shutil.copy(self.whole.db, out)
        before = file_digest(out)
        rc, _, err = merge(out, *self.shard_dbs)
        self.assertEqual(rc, 2)
        self.assertIn("exists", err)
        self.assertEqual(file_digest(out), before)
        rc, _, err = merge("--append", out, *self.shard_dbs)
        self.assertEqual(rc, 0, err)
        self.assertEqual(rows(out, "SELECT id, shard, merged_from IS NOT NULL FROM scans"),
                         [(1, None, 0), (2, None, 1)])
        self.assertEqual(stats_json(out, 2), stats_json(self.out))
        self.assertEqual(stats_json(out, 1), stats_json(self.whole.db))
        rc, _, err = merge("--force", out, *self.shard_dbs)
        self.assertEqual(rc, 0, err)
        self.assertEqual(rows(out, "SELECT id FROM scans"), [(1,)])
        self.assertEqual(stats_json(out), stats_json(self.out))
        self.assertFalse([f for f in os.listdir(self.dir) if ".merge-" in f])

    def test_output_is_an_input(self):
        rc, _, err = merge("--append", self.shard_dbs[0], *self.shard_dbs)
        self.assertEqual(rc, 2)
        self.assertIn("also an input", err)

    # ---- refusals ---------------------------------------------------------------------

    def test_unfinished_scan(self):
        """A shard whose scan was interrupted (Ctrl-C) is refused, naming its status and
        the way out; --allow-partial merges what it holds, into an 'interrupted' scan."""
        db = self.tmp("interrupted.db")
        # stdin stays open, so the scan is still reading when it is interrupted
        p = subprocess.Popen([MXSCAN, "scan", "-q", "-o", db, "--resolver", RESOLVER,
                              "--ca-file", CA_FILE, "-i", "-", "--shard", "1/%d" % N] + FLAGS,
                             stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE)
        with open(self.input, "rb") as f:
            p.stdin.write(f.read())
        p.stdin.flush()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if rows(db, "SELECT count(*) FROM domains")[0][0] > 0:
                    break
            except sqlite3.Error:
                pass
            time.sleep(0.1)
        p.send_signal(signal.SIGINT)
        p.stdin.close()
        self.assertEqual(p.wait(timeout=60), 130, p.stderr.read())
        p.stderr.close()
        self.assertEqual(rows(db, "SELECT status FROM scans"), [("interrupted",)])
        inputs = [self.shard_dbs[0], db] + self.shard_dbs[2:]
        out = self.tmp("partial.db")
        rc, _, err = merge(out, *inputs)
        self.assertEqual(rc, 2)
        self.assertIn("interrupted, not done", err)
        self.assertIn("--allow-partial", err)
        self.assertFalse(os.path.exists(out))
        rc, stdout, err = merge("--allow-partial", out, *inputs)
        self.assertEqual(rc, 0, err)
        self.assertIn("(interrupted)", stdout)
        self.assertEqual(rows(out, "SELECT status FROM scans"), [("interrupted",)])
        n = rows(db, "SELECT count(*) FROM domains")[0][0]
        others = sum(rows(x, "SELECT count(*) FROM domains")[0][0] for x in inputs if x != db)
        self.assertEqual(rows(out, "SELECT count(*) FROM domains")[0][0], n + others)

    def test_same_shard_twice(self):
        """The same shard twice (a copy of a shard's file) is refused; so is one file
        given twice."""
        copy = self.tmp("copy-of-shard0.db")
        shutil.copy(self.shard_dbs[0], copy)
        rc, _, err = merge(self.tmp("twice.db"), self.shard_dbs[0], copy, self.shard_dbs[1])
        self.assertEqual(rc, 2)
        self.assertIn("both shard 0/4", err)
        rc, _, err = merge(self.tmp("twice.db"), self.shard_dbs[0], self.shard_dbs[0])
        self.assertEqual(rc, 2)
        self.assertIn("same file", err)
        self.assertFalse(os.path.exists(self.tmp("twice.db")))

    def test_not_a_shard(self):
        """A scan made without --shard is refused."""
        rc, _, err = merge(self.tmp("nots.db"), self.whole.db, self.shard_dbs[1])
        self.assertEqual(rc, 2)
        self.assertIn("is not a shard", err)

    def test_missing_and_foreign_files(self):
        """A missing input, a text file, an SQLite file of another application, a
        directory and a database from before --shard existed are errors (exit 1)."""
        text = self.tmp("text.db")
        with open(text, "w") as f:
            f.write("hello\n" * 100)
        other = self.tmp("other.db")
        con = sqlite3.connect(other)
        con.execute("CREATE TABLE t(x)")
        con.commit()
        con.close()
        old = self.tmp("v1.db")
        con = sqlite3.connect(old)
        with open(os.path.join(SRC, "db", "schema.sql")) as f:
            con.executescript(f.read())
        con.executescript("PRAGMA user_version = 1; PRAGMA application_id = 1836610403;")
        con.close()
        for path, msg in ((self.tmp("missing.db"), "no such file"),
                          (text, "not an mxscan database"),
                          (other, "not an mxscan database"),
                          (self.dir, "is a directory"),
                          (old, "older mxscan")):
            rc, _, err = merge(self.tmp("never.db"), self.shard_dbs[0], path)
            self.assertEqual(rc, 1, (path, err))
            self.assertIn(msg, err, path)
            self.assertNotIn("Traceback", err)
        self.assertFalse(os.path.exists(self.tmp("never.db")))

    def test_unknown_table(self):
        """A table merge does not know, in an input, stops the merge rather than being
        left behind."""
        db = self.tmp("extra-table.db")
        shutil.copy(self.shard_dbs[0], db)
        con = sqlite3.connect(db)
        con.execute("CREATE TABLE notes(scan_id INTEGER, text TEXT)")
        con.execute("INSERT INTO notes VALUES(1, 'keep me')")
        con.commit()
        con.close()
        rc, _, err = merge(self.tmp("unknown.db"), db, *self.shard_dbs[1:])
        self.assertEqual(rc, 1)
        self.assertIn("table 'notes' is not part of the mxscan schema", err)

    def test_missing_shard_warns(self):
        """Three of four shards merge, with a warning that names the missing one."""
        out = self.tmp("three.db")
        rc, _, err = merge(out, *self.shard_dbs[:3])
        self.assertEqual(rc, 0, err)
        self.assertIn("warning: 3 of 4 shards given; missing: 3/4", err)
        n = sum(rows(db, "SELECT count(*) FROM domains")[0][0] for db in self.shard_dbs[:3])
        self.assertEqual(rows(out, "SELECT domains FROM scans")[0][0], n)

    def test_small_shards_settings_and_scan_pick(self):
        """Two shards scanned into one file are merged by --scan FILE:ID; shards of
        different N, or started with different settings, are refused (the difference is
        named), and --allow-mixed-settings merges the latter with a warning."""
        small = self.tmp("small.txt")
        with open(small, "w") as f:
            f.write("\n".join(SMALL) + "\n")
        both = self.tmp("both-halves.db")
        for i in range(2):
            r = scan(["-i", small, "--shard", "%d/2" % i] + FLAGS, db=both)
            self.assertEqual(r.rc, 0, r.err)
        out = self.tmp("halves.db")
        rc, _, err = merge(out, both, "--scan", both + ":1", "--scan", both + ":2")
        self.assertEqual(rc, 0, err)
        self.assertEqual(sorted(r[0] for r in rows(out, "SELECT domain FROM domains")),
                         sorted(SMALL))
        self.assertEqual(rows(out, "SELECT json_extract(merged_from, '$[1].shard') FROM scans"),
                         [("1/2",)])
        # shards of 2 and of 4 overlap
        rc, _, err = merge(self.tmp("n.db"), self.shard_dbs[0], both, "--scan", both + ":2")
        self.assertEqual(rc, 2)
        self.assertIn("different N", err)
        # the same half again with another --timeout
        other = self.tmp("half-other.db")
        r = scan(["-i", small, "--shard", "1/2", "--timeout", "4s", "--rate", "0"], db=other)
        self.assertEqual(r.rc, 0, r.err)
        rc, _, err = merge(self.tmp("mixed.db"), both, other, "--scan", both + ":1")
        self.assertEqual(rc, 2)
        self.assertIn("different settings", err)
        self.assertIn("--timeout=3s", err)
        self.assertIn("--timeout=4s", err)
        self.assertFalse(os.path.exists(self.tmp("mixed.db")))
        rc, _, err = merge("--allow-mixed-settings", self.tmp("mixed.db"), both, other,
                           "--scan", both + ":1")
        self.assertEqual(rc, 0, err)
        self.assertIn("warning", err)
        # --scan must name an input and an existing scan
        rc, _, err = merge(self.tmp("x.db"), both, "--scan", other + ":1")
        self.assertEqual(rc, 2)
        self.assertIn("not one of the inputs", err)
        rc, _, err = merge(self.tmp("x.db"), both, "--scan", both + ":7")
        self.assertEqual(rc, 1)
        self.assertIn("no scan with id 7", err)

    def test_usage(self):
        """--help tells the truth about the options; bad usage is exit 2."""
        p = subprocess.run([MXSCAN, "merge", "--help"], capture_output=True, timeout=30)
        self.assertEqual(p.returncode, 0)
        out = p.stdout.decode()
        for opt in ("--scan FILE:ID", "--force", "--append", "--allow-partial",
                    "--allow-mixed-settings", "--quiet"):
            self.assertIn(opt, out)
        p = subprocess.run([MXSCAN, "help", "merge"], capture_output=True, timeout=30)
        self.assertEqual((p.returncode, p.stdout.decode()), (0, out))
        p = subprocess.run([MXSCAN, "--help"], capture_output=True, timeout=30)
        self.assertIn("merge", p.stdout.decode())
        for args, msg in (([], "no output"), ([self.tmp("o.db")], "no input"),
                          (["--bogus", "a", "b"], "unrecognized"),
                          (["--scan", "nocolon", "a", "b"], "--scan wants FILE:ID"),
                          (["--force", "--append", "a", "b"], "give one")):
            rc, _, err = merge(*args)
            self.assertEqual(rc, 2, args)
            self.assertIn(msg, err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
