"""`mxscan stats`: the aggregate statistics of a scan of known test-network
domains, checked against numbers worked out from tests/net/README.md, in
all three formats (JSON, CSV, table), against the SQL views read directly,
on a database written by schema version 1, and its errors."""
import csv
import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import unittest

from mxtest import MXSCAN, SRC, rows, scan, tmpdb

SHARED = ["shared%d.test" % i for i in range(1, 21)]
DOMAINS = ["valid.test", "plain.test", "partial.test", "nullmx.test", "implicit.test",
           "dane.test", "danemismatch.test", "stsenforce.test", "ststesting.test",
           "rptgood.test", "tls12.test"] + SHARED

# Statistic name (JSON key, CSV statistic) -> view.
VIEWS = {name: "stats_" + name for name in (
    "overview", "posture", "mx_kind", "starttls", "tls_version", "tls_cipher", "tls_group",
    "grade", "cert_problems", "dane", "mta_sts", "tlsrpt", "tlsrpt_rua_scheme", "mx_provider",
    "top5_share")}


def stats(db, *args):
    """Runs `mxscan stats DB ARGS`; returns (rc, stdout, stderr)."""
    p = subprocess.run([MXSCAN, "stats", db] + list(args), capture_output=True, timeout=300)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def pct(n, base):
    return 100.0 * n / base


def by_key(rows_):
    return {r["key"]: r for r in rows_}


def dump_tables(db):
    """A digest of every table's rows (not the schema): what a reader must not change."""
    con = sqlite3.connect(db)
    try:
        h = hashlib.sha256()
        for (t,) in con.execute("SELECT name FROM sqlite_schema WHERE type='table' ORDER BY 1"):
            for r in con.execute('SELECT * FROM "%s" ORDER BY 1, 2, 3' % t):
                h.update(repr(r).encode())
        return h.hexdigest()
    finally:
        con.close()


class TestStats(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.res = scan(DOMAINS + ["--timeout", "3s", "--rate", "0"])
        cls.db = cls.res.db
        cls.scan_id = rows(cls.db, "SELECT max(id) FROM scans")[0][0]
        rc, out, err = stats(cls.db, "--format", "json", "--top", "0")
        cls.json_rc, cls.json_err = rc, err
        cls.j = json.loads(out) if rc == 0 else {}

    def stat(self, name):
        return by_key(self.j[name])

    def assertRow(self, row, count, domains, dbase, hosts, hbase):
        """A row's counts, bases and both shares."""
        self.assertEqual((row["count"], row["domains"], row["domain_base"], row["hosts"],
                          row["host_base"]), (count, domains, dbase, hosts, hbase), row)
        self.assertAlmostEqual(row["domain_share"], pct(domains, dbase), places=9)
        self.assertAlmostEqual(row["host_share"], pct(hosts, hbase), places=9)

    def test_scan_and_json_ok(self):
        """The scan completes and stats prints one valid JSON object with a key per
        statistic, each an array of row objects."""
        self.assertEqual(self.res.rc, 0, self.res.err)
        self.assertEqual(self.json_rc, 0, self.json_err)
        self.assertEqual(self.j["scan"]["id"], self.scan_id)
        self.assertEqual(self.j["scan"]["status"], "done")
        for name in VIEWS:
            self.assertIsInstance(self.j[name], list, name)
            for r in self.j[name]:
                self.assertIsInstance(r, dict)
                for col in ("rank", "key", "count", "domains", "domain_share", "hosts",
                            "host_share", "domain_base", "host_base"):
                    self.assertIn(col, r)

    def test_overview(self):
        """31 domains; 6 unique MX hosts (mx-valid, mx-plain, implicit.test, mx-dane,
        mx-dane-mismatch, mx-tls12) used by the 30 domains that have MX hosts; all reached,
        all but mx-plain with TLS."""
        o = self.stat("overview")
        self.assertEqual(o["domains"]["count"], 31)
        self.assertRow(o["mx_hosts"], 6, 30, 31, 6, 6)
        self.assertRow(o["hosts_reached"], 6, 30, 31, 6, 6)
        self.assertRow(o["hosts_tls"], 5, 29, 31, 5, 6)
        self.assertEqual(o["endpoints"]["domains"], None)

    def test_posture(self):
        """Postures as the README gives them, every posture listed, in precedence order;
        domain-weighted over 31 domains and MX-host-weighted over 6 hosts."""
        p = self.stat("posture")
        self.assertEqual([r["key"] for r in self.j["posture"]],
                         ["no-mail", "dns-error", "unreachable", "broken", "plaintext", "partial",
                          "dane", "mta-sts", "mta-sts-testing", "starttls"])
        # starttls: valid, implicit, rptgood, tls12, shared1-20; served by mx-valid,
        # implicit.test and mx-tls12.
        self.assertRow(p["starttls"], 24, 24, 31, 3, 6)
        self.assertRow(p["plaintext"], 1, 1, 31, 1, 6)
        self.assertRow(p["partial"], 1, 1, 31, 2, 6)
        self.assertRow(p["no-mail"], 1, 1, 31, 0, 6)
        self.assertRow(p["dane"], 1, 1, 31, 1, 6)
        self.assertRow(p["broken"], 1, 1, 31, 1, 6)
        self.assertRow(p["mta-sts"], 1, 1, 31, 1, 6)
        self.assertRow(p["mta-sts-testing"], 1, 1, 31, 1, 6)
        self.assertRow(p["unreachable"], 0, 0, 31, 0, 6)
        self.assertEqual(sum(r["count"] for r in self.j["posture"]), 31)

    def test_mx_kind(self):
        """29 domains with MX records, one null MX, one implicit MX."""
        k = self.stat("mx_kind")
        self.assertRow(k["mx"], 29, 29, 31, 5, 6)
        self.assertRow(k["null"], 1, 1, 31, 0, 6)
        self.assertRow(k["implicit"], 1, 1, 31, 1, 6)
        self.assertRow(k["none"], 0, 0, 31, 0, 6)

    def test_starttls(self):
        """Of the 6 reached MX hosts only mx-plain lacks STARTTLS; of the 30 domains with a
        reached MX host, plain and partial use it, and only those two are not all-TLS."""
        s = self.stat("starttls")
        self.assertRow(s["offered"], 5, 29, 30, 5, 6)
        self.assertRow(s["not_offered"], 1, 2, 30, 1, 6)
        self.assertRow(s["tls"], 5, 29, 30, 5, 6)
        self.assertRow(s["all_tls"], 5, 28, 30, 5, 6)
        self.assertRow(s["rejected"], 0, 0, 30, 0, 6)
        self.assertRow(s["tls_failed"], 0, 0, 30, 0, 6)

    def test_tls_version(self):
        """mx-tls12 speaks TLS 1.2 only, the other four TLS hosts TLS 1.3."""
        v = self.stat("tls_version")
        self.assertEqual(set(v), {"TLSv1.3", "TLSv1.2"})
        self.assertRow(v["TLSv1.3"], 4, 28, 29, 4, 5)
        self.assertRow(v["TLSv1.2"], 1, 1, 29, 1, 5)
        self.assertEqual(self.j["tls_version"][0]["key"], "TLSv1.3")

    def test_dane(self):
        """mx-dane and mx-dane-mismatch have usable TLSA; one matches, one does not."""
        d = self.stat("dane")
        self.assertRow(d["tlsa"], 2, 2, 30, 2, 6)
        self.assertRow(d["usable"], 2, 2, 30, 2, 6)
        self.assertRow(d["valid"], 1, 1, 30, 1, 6)
        self.assertRow(d["mismatch"], 1, 1, 30, 1, 6)
        self.assertRow(d["none"], 4, 28, 30, 4, 6)
        for k in ("unusable", "bogus", "insecure", "no_starttls"):
            self.assertRow(d[k], 0, 0, 30, 0, 6)

    def test_mta_sts_and_tlsrpt(self):
        """stsenforce (enforce) and ststesting (testing) have valid policies that mx-valid
        passes; rptgood and stsenforce publish TLSRPT, rptgood with mailto and https."""
        m = self.stat("mta_sts")
        self.assertRow(m["record"], 2, 2, 31, 1, 6)
        self.assertRow(m["policy_valid"], 2, 2, 31, 1, 6)
        self.assertRow(m["mode_enforce"], 1, 1, 31, 1, 6)
        self.assertRow(m["mode_testing"], 1, 1, 31, 1, 6)
        self.assertRow(m["mode_none"], 0, 0, 31, 0, 6)
        self.assertRow(m["enforce_ready"], 2, 2, 31, 1, 6)
        t = self.stat("tlsrpt")
        self.assertRow(t["record"], 2, 2, 31, 1, 6)
        self.assertRow(t["valid"], 2, 2, 31, 1, 6)
        self.assertRow(t["invalid"], 0, 0, 31, 0, 6)
        r = self.stat("tlsrpt_rua_scheme")
        self.assertRow(r["mailto"], 2, 2, 2, 1, 1)
        self.assertRow(r["https"], 1, 1, 2, 1, 1)

    def test_providers(self):
        """MX providers are registered domains of the MX host names: for mx-valid.test
        that is mx-valid.test itself (test is the top-level label, never a provider). It
        serves 25 of the 30 domains with MX hosts. The top 5 (ties by name) leave out
        mx-tls12.test, so 29 domains depend on them."""
        p = self.j["mx_provider"]
        self.assertEqual([r["rank"] for r in p], list(range(1, len(p) + 1)))
        self.assertEqual(p[0]["key"], "mx-valid.test")
        self.assertRow(p[0], 25, 25, 30, 1, 6)
        self.assertEqual(p[1]["key"], "mx-plain.test")
        self.assertRow(p[1], 2, 2, 30, 1, 6)
        self.assertEqual([r["key"] for r in p[2:]], ["implicit.test", "mx-dane-mismatch.test",
                                                    "mx-dane.test", "mx-tls12.test"])
        self.assertNotIn("test", {r["key"] for r in p})
        t = self.stat("top5_share")
        self.assertRow(t["top5_any"], 29, 29, 30, 5, 6)
        self.assertRow(t["top5_all"], 29, 29, 30, 5, 6)

    def test_top_limits_providers(self):
        """--top 2 lists two providers, the same two as the full list."""
        rc, out, err = stats(self.db, "--format", "json", "--top", "2")
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out)["mx_provider"], self.j["mx_provider"][:2])

    def test_views_give_the_same_numbers(self):
        """SELECT * FROM each view at the prompt gives exactly the rows the tool printed."""
        con = sqlite3.connect(self.db)
        con.row_factory = sqlite3.Row
        try:
            for name, view in VIEWS.items():
                got = [{k: r[k] for k in r.keys() if k != "scan_id"} for r in con.execute(
                    "SELECT * FROM %s WHERE scan_id = ? ORDER BY rank" % view, (self.scan_id,))]
                self.assertEqual(got, self.j[name], name)
        finally:
            con.close()

    def test_csv_parses_and_agrees(self):
        """--format csv parses with the csv module; every row agrees with the JSON."""
        rc, out, err = stats(self.db, "--format", "csv", "--top", "0")
        self.assertEqual(rc, 0, err)
        recs = list(csv.DictReader(io.StringIO(out)))
        self.assertEqual(list(recs[0].keys()),
                         ["statistic", "key", "count", "domain_share", "host_share"])
        want = [(name, r) for name in VIEWS for r in self.j[name]]
        self.assertEqual(len(recs), len(want))
        for rec, (name, r) in zip(recs, want):
            self.assertEqual((rec["statistic"], rec["key"], int(rec["count"])),
                             (name, r["key"], r["count"]))
            for col in ("domain_share", "host_share"):
                if r[col] is None:
                    self.assertEqual(rec[col], "")
                else:
                    self.assertEqual(float(rec[col]), float(r[col]), (name, r["key"], col))

    def test_table(self):
        """The default output is aligned tables with a heading per statistic and
        percentages with one decimal."""
        rc, out, err = stats(self.db)
        self.assertEqual(rc, 0, err)
        for heading in ("Overview", "Domains by posture", "MX records", "STARTTLS",
                        "TLS versions", "TLS ciphers", "Key-exchange groups", "TLS grades",
                        "Certificate problems", "DANE", "MTA-STS", "TLSRPT",
                        "TLSRPT reporting URI schemes", "MX providers",
                        "What the top 5 providers decide"):
            self.assertRegex(out, r"(?m)^%s" % re.escape(heading))
        # 24 of 31 domains (77.4%), 3 of 6 MX hosts (50.0%).
        self.assertRegex(out, r"(?m)^  starttls +24 +77\.4% +3 +50\.0%$")
        self.assertRegex(out, r"(?m)^  mx-valid\.test +25 +83\.3% +1 +16\.7%$")
        self.assertIn("% of 30 domains with a reached MX host / of 6 reached MX hosts", out)

    def test_reads_only(self):
        """Running stats changes no row of the database."""
        before = dump_tables(self.db)
        self.assertEqual(stats(self.db)[0], 0)
        self.assertEqual(dump_tables(self.db), before)

    def test_scan_choice(self):
        """By default the latest done or interrupted scan is used, not a running one;
        --scan picks any scan; an unknown id is an error."""
        db = tmpdb("choice")
        shutil.copy(self.db, db)
        con = sqlite3.connect(db)
        con.execute("INSERT INTO scans(id, started_at, arguments, version, status) "
                    "VALUES (?, 'x', '[]', 'x', 'running')", (self.scan_id + 1,))
        con.commit()
        con.close()
        rc, out, err = stats(db, "--format", "json")
        self.assertEqual(rc, 0, err)
        self.assertEqual(json.loads(out)["scan"]["id"], self.scan_id)
        rc, out, err = stats(db, "--format", "json", "--scan", str(self.scan_id + 1))
        self.assertEqual(rc, 0, err)
        j = json.loads(out)
        self.assertEqual(j["scan"]["status"], "running")
        self.assertEqual(by_key(j["overview"])["domains"]["count"], 0)
        rc, out, err = stats(db, "--scan", "999")
        self.assertEqual(rc, 1)
        self.assertIn("no scan with id 999", err)


class TestStatsOldSchema(unittest.TestCase):
    def test_v1_database(self):
        """A database written with schema version 1 (schema.sql only) is migrated when
        stats opens it, and its statistics come out: the verdict columns added later are
        simply empty."""
        d = tempfile.mkdtemp(prefix="mxscan-it-")
        db = os.path.join(d, "v1.db")
        con = sqlite3.connect(db)
        with open(os.path.join(SRC, "db", "schema.sql")) as f:
            con.executescript(f.read())
        con.executescript("""
            PRAGMA user_version = 1;
            PRAGMA application_id = 1836610403;
            INSERT INTO scans(id, started_at, arguments, version, status)
                VALUES (1, '2025-01-01T00:00:00Z', '[]', '0.0.1', 'done');
            INSERT INTO domains(scan_id, domain, posture, mx_kind) VALUES
                (1, 'a.example', 'starttls', 'mx'), (1, 'b.example', 'plaintext', 'mx'),
                (1, 'c.example', 'no-mail', 'null');
            INSERT INTO mx(scan_id, domain, host, preference) VALUES
                (1, 'a.example', 'mx1.provider.example', 10),
                (1, 'b.example', 'mx1.provider.example', 10),
                (1, 'b.example', 'mail.b.example.co.uk', 20);
            INSERT INTO hosts(scan_id, host) VALUES
                (1, 'mx1.provider.example'), (1, 'mail.b.example.co.uk');
            INSERT INTO endpoints(scan_id, host, ip, port, status, ehlo_code, starttls_offered,
                                  starttls_code, tls_version, tls_cipher, tls_group) VALUES
                (1, 'mx1.provider.example', '192.0.2.1', 25, 'ok', 250, 1, 220, 'TLSv1.3',
                 'TLS_AES_128_GCM_SHA256', 'x25519'),
                (1, 'mail.b.example.co.uk', '192.0.2.2', 25, 'ok', 250, 0, NULL, NULL, NULL,
                 NULL);
        """)
        con.commit()
        con.close()
        rc, out, err = stats(db, "--format", "json")
        self.assertEqual(rc, 0, err)
        self.assertEqual(rows(db, "PRAGMA user_version")[0][0], 4)
        j = json.loads(out)
        p = by_key(j["posture"])
        self.assertEqual((p["starttls"]["count"], p["plaintext"]["count"],
                          p["no-mail"]["count"]), (1, 1, 1))
        self.assertAlmostEqual(p["plaintext"]["domain_share"], 100 / 3, places=9)
        self.assertEqual(p["plaintext"]["host_share"], 100)
        s = by_key(j["starttls"])
        self.assertEqual((s["offered"]["hosts"], s["offered"]["domains"]), (1, 2))
        self.assertEqual((s["all_tls"]["hosts"], s["all_tls"]["domains"]), (1, 1))
        self.assertEqual(by_key(j["tls_version"])["TLSv1.3"]["domains"], 2)
        self.assertEqual([(r["key"], r["count"]) for r in j["mx_provider"]],
                         [("provider.example", 2), ("example.co.uk", 1)])
        self.assertEqual(by_key(j["mta_sts"])["record"]["count"], 0)
        rc, out, err = stats(db)
        self.assertEqual(rc, 0, err)
        self.assertIn("Domains by posture", out)


class TestStatsErrors(unittest.TestCase):
    def test_no_such_file(self):
        """A missing file is an error and is not created."""
        path = os.path.join(tempfile.mkdtemp(prefix="mxscan-it-"), "missing.db")
        rc, out, err = stats(path)
        self.assertEqual(rc, 1)
        self.assertIn("no such file", err)
        self.assertFalse(os.path.exists(path))

    def test_not_an_mxscan_database(self):
        """An SQLite file of another application and a file that is not SQLite at all are
        refused and left untouched."""
        d = tempfile.mkdtemp(prefix="mxscan-it-")
        other = os.path.join(d, "other.db")
        con = sqlite3.connect(other)
        con.execute("CREATE TABLE t(x)")
        con.commit()
        con.close()
        junk = os.path.join(d, "junk.db")
        with open(junk, "w") as f:
            f.write("not a database\n" * 100)
        for path in (other, junk):
            with open(path, "rb") as f:
                before = f.read()
            rc, out, err = stats(path)
            self.assertEqual(rc, 1, path)
            self.assertIn("not an mxscan database", err)
            with open(path, "rb") as f:
                self.assertEqual(f.read(), before)

    def test_bad_usage(self):
        """Bad flags exit 2 with a hint; --help exits 0 and names the views."""
        rc, out, err = stats("x.db", "--format", "xml")
        self.assertEqual(rc, 2)
        self.assertIn("--format", err)
        p = subprocess.run([MXSCAN, "stats"], capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 2)
        p = subprocess.run([MXSCAN, "stats", "--help"], capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0)
        self.assertIn(b"stats_posture", p.stdout)
        self.assertIn(b"--format", p.stdout)


if __name__ == "__main__":
    unittest.main()
