"""`mxscan export` on a real scan of the test network: JSON lines with one
object per domain and everything about it nested (certificates as PEM on
request), flat CSV of every table, the RFC 8460 (TLSRPT) report of one
policy domain checked against the report format of RFC 8460 section 4, and
memory that stays flat however many domains are exported."""
import csv
import io
import ipaddress
import json
import os
import pty
import re
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import unittest

from mxtest import MXSCAN, one, rows, scan

DOMAINS = ["valid.test", "plain.test", "partial.test", "nullmx.test", "selfsigned.test",
           "dane.test", "daneta.test", "danemismatch.test", "daneunusable.test",
           "danenostarttls.test", "stsenforce.test", "stsmismatch.test", "ststesting.test",
           "stsmissing.test", "rptgood.test", "rptbad.test"]

TABLES = ["domains", "mx", "hosts", "endpoints", "findings", "rejected", "tlsa", "mta_sts",
          "tlsrpt", "scans"]

# RFC 8460 section 4.3.2 (and the IANA "STARTTLS Validation Result Types" registry).
RESULT_TYPES = {"starttls-not-supported", "certificate-host-mismatch", "certificate-expired",
                "certificate-not-trusted", "validation-failure", "tlsa-invalid",
                "dnssec-invalid", "dane-required", "sts-policy-fetch-error",
                "sts-policy-invalid", "sts-webpki-invalid"}

# RFC 3339 section 5.6 date-time (the time zone is required).
DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


# An ASan build maps shadow memory and keeps freed blocks in quarantine: its peak RSS
# says nothing about the export's own, so only the flatness is checked there.
with open(MXSCAN, "rb") as _f:
    SANITIZED = b"__asan_init" in _f.read()

# Runs argv[2:] as a child and writes its peak RSS (KiB) to the file argv[1]; exits
# with the child's status.
RSS_HELPER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[2], sys.argv[2:])
_, status, ru = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(str(ru.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""


def export(db, *args, check=True):
    """Runs `mxscan export DB ARGS`; returns (rc, stdout text, stderr text)."""
    p = subprocess.run([MXSCAN, "export", db] + list(args), capture_output=True, timeout=300)
    out, err = p.stdout.decode(), p.stderr.decode()
    if check and p.returncode != 0:
        raise AssertionError("export %s failed (%d): %s" % (args, p.returncode, err))
    return p.returncode, out, err


def columns(db, table):
    """Column names and declared types of a table, in schema order."""
    return rows(db, "SELECT name, upper(type) FROM pragma_table_info(?) ORDER BY cid", table)


def check_tlsrpt(tc, report):
    """Asserts that report has the fields, types and values of the JSON report
    format of RFC 8460 section 4.4 (with errata 6241: mx-host is an array)."""
    tc.assertIsInstance(report, dict)
    tc.assertEqual(set(report), {"organization-name", "date-range", "contact-info", "report-id",
                                 "policies"})
    for k in ("organization-name", "contact-info", "report-id"):
        tc.assertIsInstance(report[k], str)
        tc.assertTrue(report[k], k)
    dr = report["date-range"]
    tc.assertEqual(set(dr), {"start-datetime", "end-datetime"})
    for k in dr:
        tc.assertRegex(dr[k], DATE_TIME)
    tc.assertLessEqual(dr["start-datetime"], dr["end-datetime"])
    tc.assertIsInstance(report["policies"], list)
    tc.assertTrue(report["policies"])
    for pol in report["policies"]:
        tc.assertLessEqual(set(pol), {"policy", "summary", "failure-details"})
        tc.assertIn("policy", pol)
        tc.assertIn("summary", pol)
        p = pol["policy"]
        tc.assertLessEqual(set(p), {"policy-type", "policy-string", "policy-domain", "mx-host"})
        tc.assertIn(p["policy-type"], ("tlsa", "sts", "no-policy-found"))
        tc.assertIsInstance(p["policy-domain"], str)
        tc.assertTrue(p["policy-domain"])
        for k in ("policy-string", "mx-host"):
            if k in p:
                tc.assertIsInstance(p[k], list)
                for v in p[k]:
                    tc.assertIsInstance(v, str)
        s = pol["summary"]
        tc.assertEqual(set(s), {"total-successful-session-count", "total-failure-session-count"})
        for v in s.values():
            tc.assertIs(type(v), int)
            tc.assertGreaterEqual(v, 0)
        fds = pol.get("failure-details", [])
        tc.assertIsInstance(fds, list)
        for fd in fds:
            tc.assertLessEqual(set(fd), {"result-type", "sending-mta-ip", "receiving-mx-hostname",
                                         "receiving-mx-helo", "receiving-ip",
                                         "failed-session-count", "additional-information",
                                         "failure-reason-code"})
            tc.assertIn(fd["result-type"], RESULT_TYPES)
            tc.assertIs(type(fd["failed-session-count"]), int)
            tc.assertGreaterEqual(fd["failed-session-count"], 0)
            for k in ("sending-mta-ip", "receiving-ip"):
                if k in fd:
                    ipaddress.ip_address(fd[k])
            for k in ("receiving-mx-hostname", "receiving-mx-helo", "failure-reason-code"):
                if k in fd:
                    tc.assertIsInstance(fd[k], str)
            if "additional-information" in fd:
                tc.assertRegex(fd["additional-information"], r"^[A-Za-z][A-Za-z0-9+.-]*:")
        if fds:
            tc.assertGreater(s["total-failure-session-count"], 0)


class TestExport(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.res = scan(DOMAINS + ["--timeout", "3s", "--rate", "0"])
        cls.db = cls.res.db
        cls.scan_id = one(cls.db, "SELECT max(id) FROM scans")
        _, out, _ = export(cls.db, "--pem")
        cls.lines = out.split("\n")
        cls.objs = {}
        for line in cls.lines[:-1]:
            o = json.loads(line)
            cls.objs[o["domain"]] = o

    def tlsrpt(self, domain, *args):
        rc, out, err = export(self.db, "--tlsrpt", domain, *args)
        self.assertEqual(out.count("\n"), 1, out)
        report = json.loads(out)
        check_tlsrpt(self, report)
        return report["policies"][0]

    def test_scan_ok(self):
        """The scan the exports read completes."""
        self.assertEqual(self.res.rc, 0, self.res.err)

    def test_jsonl_one_object_per_domain(self):
        """JSON lines: one valid JSON object a line per domain of the scan, by name,
        nothing else."""
        self.assertEqual(self.lines[-1], "")
        names = [r[0] for r in rows(self.db, "SELECT domain FROM domains WHERE scan_id=? "
                                             "ORDER BY domain", self.scan_id)]
        self.assertEqual(len(self.lines) - 1, len(names))
        self.assertEqual([json.loads(line)["domain"] for line in self.lines[:-1]], names)
        self.assertEqual(sorted(names), sorted(DOMAINS))

    def test_jsonl_nesting(self):
        """MX hosts (by preference), their endpoints and TLSA records, MTA-STS, TLSRPT and
        findings sit under the domain they belong to, JSON columns as JSON."""
        p = self.objs["partial.test"]
        self.assertEqual(p["posture"], "partial")
        self.assertEqual([(m["host"], m["preference"]) for m in p["mx"]],
                         [("mx-valid.test", 10), ("mx-plain.test", 20)])
        valid, plain = p["mx"]
        self.assertEqual(valid["endpoints"][0]["tls_version"][:5], "TLSv1")
        self.assertEqual(valid["endpoints"][0]["ip"], "127.25.0.1")
        self.assertIsInstance(valid["endpoints"][0]["ehlo_before"], list)
        self.assertIn("STARTTLS", valid["endpoints"][0]["ehlo_before"])
        self.assertIsInstance(valid["addresses"], list)
        self.assertEqual(plain["endpoints"][0]["starttls_offered"], 0)
        self.assertIsNone(plain["endpoints"][0]["tls_version"])
        miss = [f for f in p["findings"] if f["code"] == "smtp.starttls.missing"]
        self.assertEqual(len(miss), 1)
        self.assertEqual((miss[0]["host"], miss[0]["ip"], miss[0]["result_type"]),
                         ("mx-plain.test", "127.25.0.3", "starttls-not-supported"))

        d = self.objs["dane.test"]
        self.assertEqual(d["posture"], "dane")
        self.assertEqual(d["mx"][0]["dane"], "usable")
        self.assertEqual(d["mx"][0]["endpoints"][0]["dane"], "valid")
        self.assertEqual([(t["usage"], t["selector"], t["mtype"], t["usable"])
                          for t in d["mx"][0]["tlsa"]], [(3, 1, 1, 1)])
        self.assertIn("dane.valid", [f["code"] for f in d["findings"]])

        n = self.objs["nullmx.test"]
        self.assertEqual((n["posture"], n["mx_kind"], n["mx"]), ("no-mail", "null", []))

        s = self.objs["stsenforce.test"]
        self.assertEqual(s["mta_sts"]["mode"], "enforce")
        self.assertEqual(s["mta_sts"]["mx"], ["mx-valid.test"])
        self.assertEqual(s["tlsrpt"]["valid"], 1)
        self.assertEqual(s["tlsrpt"]["rua"], ["mailto:tlsrpt@stsenforce.test"])
        self.assertEqual(self.objs["rptbad.test"]["tlsrpt"]["valid"], 0)

    def test_jsonl_matches_database(self):
        """Each domain carries exactly the findings of the domain_findings view, the MX
        rows and the endpoints of its MX hosts that the database holds."""
        for dom, o in self.objs.items():
            want = sorted(rows(self.db, "SELECT code, host, ip FROM domain_findings "
                                        "WHERE scan_id=? AND domain=?", self.scan_id, dom))
            got = sorted((f["code"], f["host"], f["ip"]) for f in o["findings"])
            self.assertEqual(got, want, dom)
            self.assertEqual(len(o["mx"]), one(self.db, "SELECT count(*) FROM mx WHERE "
                                                        "scan_id=? AND domain=?",
                                               self.scan_id, dom), dom)
            for m in o["mx"]:
                self.assertEqual(len(m["endpoints"]),
                                 one(self.db, "SELECT count(*) FROM endpoints WHERE scan_id=? "
                                              "AND host=?", self.scan_id, m["host"]), m["host"])

    def test_pem(self):
        """--pem gives each endpoint's whole chain as PEM that openssl parses, leaf first
        and byte for byte the stored DER; without --pem there is no certificate field."""
        seen = 0
        for o in self.objs.values():
            for m in o["mx"]:
                for e in m["endpoints"]:
                    self.assertNotIn("chain_der", e)
                    if not e["chain_len"]:
                        self.assertIsNone(e["chain_pem"])
                        continue
                    pem = e["chain_pem"]
                    self.assertEqual(pem.count("-----BEGIN CERTIFICATE-----"), e["chain_len"])
                    der = subprocess.run(["openssl", "x509", "-outform", "DER"],
                                         input=pem.encode(), capture_output=True, check=True)
                    chain = one(self.db, "SELECT chain_der FROM endpoints WHERE scan_id=? AND "
                                         "host=? AND ip=?", self.scan_id, m["host"], e["ip"])
                    self.assertTrue(chain.startswith(der.stdout), m["host"])
                    subj = subprocess.run(["openssl", "x509", "-noout", "-subject"],
                                          input=pem.encode(), capture_output=True, check=True)
                    self.assertIn(e["cert_subject"].split("CN=")[-1], subj.stdout.decode())
                    seen += 1
        self.assertGreaterEqual(seen, 8)
        ta = self.objs["daneta.test"]["mx"][0]["endpoints"][0]
        self.assertEqual(ta["chain_pem"].count("BEGIN CERTIFICATE"), 2)
        _, out, _ = export(self.db)
        self.assertNotIn("chain_pem", out)
        self.assertNotIn("BEGIN CERTIFICATE", out)

    def test_csv_every_table(self):
        """CSV of each table parses (RFC 4180), has a header of its non-BLOB columns and as
        many rows as SELECT count(*) of the scan."""
        for t in TABLES:
            _, out, _ = export(self.db, "--format", "csv", "--table", t)
            got = list(csv.reader(io.StringIO(out, newline="")))
            cols = [n for n, ty in columns(self.db, t) if ty != "BLOB"]
            self.assertEqual(got[0], cols, t)
            key = "id" if t == "scans" else "scan_id"
            n = one(self.db, "SELECT count(*) FROM %s WHERE %s=?" % (t, key), self.scan_id)
            self.assertEqual(len(got) - 1, n, t)
            for r in got[1:]:
                self.assertEqual(len(r), len(cols), t)
            if t != "rejected":
                self.assertGreater(n, 0, t)

    def test_csv_values(self):
        """CSV fields are the stored values: text with commas, quotes and newlines
        survives, NULL is an empty field and numbers keep their value."""
        _, out, _ = export(self.db, "-f", "csv", "-t", "endpoints")
        got = list(csv.DictReader(io.StringIO(out, newline="")))
        con = sqlite3.connect(self.db)
        con.row_factory = sqlite3.Row
        db_rows = {(r["host"], r["ip"], r["port"]): r for r in con.execute(
            "SELECT * FROM endpoints WHERE scan_id=?", (self.scan_id,))}
        con.close()
        self.assertEqual(len(got), len(db_rows))
        for r in got:
            d = db_rows[(r["host"], r["ip"], int(r["port"]))]
            for k, v in r.items():
                want = d[k]
                if want is None:
                    self.assertEqual(v, "", k)
                elif isinstance(want, float):
                    self.assertAlmostEqual(float(v), want, places=9)
                else:
                    self.assertEqual(v, str(want), k)
        self.assertTrue(any('","' in r["ehlo_before"] or "," in r["ehlo_before"] for r in got))
        self.assertIn("\r\n", out)
        # An unquoted empty field is NULL; "" would be an empty text.
        self.assertRegex(out, r",,")

    def test_csv_pem(self):
        """--pem with the endpoints table puts the PEM chain in place of chain_der."""
        _, out, _ = export(self.db, "-f", "csv", "-t", "endpoints", "--pem")
        got = list(csv.DictReader(io.StringIO(out, newline="")))
        self.assertNotIn("chain_der", got[0])
        pems = [r["chain_pem"] for r in got if r["chain_pem"]]
        self.assertTrue(pems)
        for pem in pems:
            subprocess.run(["openssl", "x509", "-noout"], input=pem.encode(), check=True,
                           capture_output=True)

    def test_jsonl_table(self):
        """--table with JSON lines: one flat object per row, JSON columns as JSON."""
        _, out, _ = export(self.db, "--table", "findings")
        objs = [json.loads(line) for line in out.splitlines()]
        self.assertEqual(len(objs), one(self.db, "SELECT count(*) FROM findings WHERE scan_id=?",
                                        self.scan_id))
        self.assertEqual(set(objs[0]), {n for n, _ in columns(self.db, "findings")})
        _, out, _ = export(self.db, "-t", "scans")
        s = json.loads(out)
        self.assertEqual(s["id"], self.scan_id)
        self.assertIsInstance(s["arguments"], list)
        self.assertEqual(s["arguments"][0], "scan")

    def test_output_file(self):
        """-o FILE holds exactly what stdout would."""
        d = tempfile.mkdtemp(prefix="mxscan-export-")
        path = os.path.join(d, "out.jsonl")
        rc, out, _ = export(self.db, "-o", path)
        self.assertEqual(out, "")
        _, want, _ = export(self.db)
        with open(path) as f:
            self.assertEqual(f.read(), want)

    def test_tlsrpt_sts(self):
        """--tlsrpt on an MTA-STS enforce domain whose MX matches no pattern: policy-type
        sts with the policy's lines and patterns, and a validation-failure detail naming
        the MX host."""
        p = self.tlsrpt("stsmismatch.test")
        pol = p["policy"]
        self.assertEqual(pol["policy-type"], "sts")
        self.assertEqual(pol["policy-domain"], "stsmismatch.test")
        self.assertIn("mode: enforce", pol["policy-string"])
        self.assertIn("version: STSv1", pol["policy-string"])
        self.assertEqual(pol["mx-host"], ["mx-other.test"])
        fd = [f for f in p["failure-details"] if f["result-type"] == "validation-failure"]
        self.assertEqual(len(fd), 1)
        self.assertEqual(fd[0]["receiving-mx-hostname"], "mx-valid.test")
        self.assertEqual(fd[0]["failed-session-count"], 1)
        self.assertIn("mx-other.test", fd[0]["failure-reason-code"])
        self.assertEqual(p["summary"], {"total-successful-session-count": 0,
                                        "total-failure-session-count": 1})
        ok = self.tlsrpt("stsenforce.test")
        self.assertEqual(ok["policy"]["policy-type"], "sts")
        self.assertEqual(ok["summary"], {"total-successful-session-count": 1,
                                         "total-failure-session-count": 0})
        self.assertEqual(ok["failure-details"], [])
        self.assertEqual(self.tlsrpt("ststesting.test")["policy"]["policy-type"], "sts")

    def test_tlsrpt_tlsa(self):
        """--tlsrpt on a DANE domain whose TLSA matches nothing: policy-type tlsa with the
        records in presentation form and a tlsa-invalid detail for the endpoint; a
        matching DANE domain reports success."""
        p = self.tlsrpt("danemismatch.test")
        pol = p["policy"]
        self.assertEqual(pol["policy-type"], "tlsa")
        self.assertEqual(len(pol["policy-string"]), 1)
        self.assertRegex(pol["policy-string"][0],
                         r"^_25\._tcp\.mx-dane-mismatch\.test\. IN TLSA 3 1 1 [0-9a-f]{64}$")
        fd = p["failure-details"]
        self.assertEqual([(f["result-type"], f["receiving-mx-hostname"], f["receiving-ip"])
                          for f in fd],
                         [("tlsa-invalid", "mx-dane-mismatch.test", "127.25.0.13")])
        self.assertEqual(p["summary"]["total-failure-session-count"], 1)
        good = self.tlsrpt("dane.test")
        self.assertEqual(good["policy"]["policy-type"], "tlsa")
        self.assertEqual(good["summary"], {"total-successful-session-count": 1,
                                           "total-failure-session-count": 0})
        self.assertEqual(good["failure-details"], [])
        types = {f["result-type"] for f in self.tlsrpt("daneunusable.test")["failure-details"]}
        self.assertEqual(types, {"tlsa-invalid"})
        types = {f["result-type"] for f in self.tlsrpt("danenostarttls.test")["failure-details"]}
        self.assertEqual(types, {"dane-required", "starttls-not-supported"})

    def test_tlsrpt_no_policy(self):
        """--tlsrpt on a domain without MTA-STS or DANE: no-policy-found; a missing STARTTLS
        is a starttls-not-supported failure, a self-signed certificate is none (delivery
        without a policy is opportunistic, RFC 7435)."""
        p = self.tlsrpt("valid.test", "--contact", "tls-reports@mxscan.test")
        self.assertEqual(p["policy"]["policy-type"], "no-policy-found")
        self.assertEqual(p["policy"]["policy-string"], [])
        self.assertEqual(p["summary"], {"total-successful-session-count": 1,
                                        "total-failure-session-count": 0})
        self.assertEqual(p["failure-details"], [])
        _, out, _ = export(self.db, "--tlsrpt", "VALID.test.", "--contact", "x@mxscan.test")
        report = json.loads(out)
        self.assertEqual(report["contact-info"], "x@mxscan.test")
        self.assertEqual(report["organization-name"], "mxscan")
        self.assertTrue(report["report-id"].endswith("_valid.test"))
        self.assertEqual(report["date-range"]["start-datetime"],
                         one(self.db, "SELECT started_at FROM scans WHERE id=?", self.scan_id))
        p = self.tlsrpt("partial.test")
        self.assertEqual(p["summary"], {"total-successful-session-count": 1,
                                        "total-failure-session-count": 1})
        self.assertEqual([(f["result-type"], f["receiving-mx-hostname"])
                          for f in p["failure-details"]],
                         [("starttls-not-supported", "mx-plain.test")])
        self.assertEqual(self.tlsrpt("selfsigned.test")["failure-details"], [])
        p = self.tlsrpt("stsmissing.test")
        self.assertEqual(p["policy"]["policy-type"], "no-policy-found")
        self.assertEqual([f["result-type"] for f in p["failure-details"]],
                         ["sts-policy-fetch-error"])
        p = self.tlsrpt("nullmx.test")
        self.assertEqual(p["summary"], {"total-successful-session-count": 0,
                                        "total-failure-session-count": 0})

    def test_every_domain_report_is_valid(self):
        """The report of every scanned domain passes the RFC 8460 format check."""
        for dom in DOMAINS:
            self.tlsrpt(dom)

    def test_errors(self):
        """Bad usage exits 2, a missing database, scan or domain exits 1, each with a
        message that names the problem; a missing database is not created."""
        cases = [
            (["--table", "nosuch"], 2, "nosuch"),
            (["--format", "xml"], 2, "xml"),
            (["--scan", "0"], 2, "--scan"),
            (["--scan", "999"], 1, "999"),
            (["--tlsrpt", "nosuch.test"], 1, "nosuch.test"),
            (["--tlsrpt", "valid.test", "--format", "csv"], 2, "--tlsrpt"),
            (["--contact", "x"], 2, "--contact"),
            (["-t", "domains", "--pem"], 2, "--pem"),
            (["-o", "/nonexistent/dir/out.jsonl"], 1, "/nonexistent/dir/out.jsonl"),
        ]
        for args, rc, word in cases:
            got, out, err = export(self.db, *args, check=False)
            self.assertEqual(got, rc, (args, err))
            self.assertIn(word, err, args)
            self.assertEqual(out, "", args)
        missing = os.path.join(tempfile.mkdtemp(prefix="mxscan-export-"), "none.db")
        got, _, err = export(missing, check=False)
        self.assertEqual(got, 1)
        self.assertIn("none.db", err)
        self.assertFalse(os.path.exists(missing))
        p = subprocess.run([MXSCAN, "export"], capture_output=True)
        self.assertEqual(p.returncode, 2)

    def test_help(self):
        """--help exits 0 and names every flag and every table."""
        p = subprocess.run([MXSCAN, "export", "--help"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0)
        for word in ["--format", "--table", "--scan", "--pem", "--tlsrpt", "--contact",
                     "--output", "--quiet", "jsonl", "csv"] + TABLES:
            self.assertIn(word, p.stdout)

    def _big_db(self, n):
        """A copy of the scan with n synthetic domains more, each with an MX row for
        mx-valid.test (so every object nests its endpoint) and a finding of its own."""
        d = tempfile.mkdtemp(prefix="mxscan-export-big-")
        self.addCleanup(shutil.rmtree, d, True)
        path = os.path.join(d, "big.db")
        shutil.copy(self.db, path)
        con = sqlite3.connect(path)
        sid = self.scan_id
        names = ["synth%07d.test" % i for i in range(n)]
        with con:
            con.executemany(
                "INSERT INTO domains (scan_id, domain, input_line, posture, worst_severity, "
                "n_info, mx_kind, mx_rcode, mx_dnssec, mx_count, scanned_at) VALUES "
                "(?, ?, 0, 'starttls', 'info', 1, 'mx', 'NOERROR', 'secure', 1, "
                "'2026-01-01T00:00:00.000Z')", ((sid, x) for x in names))
            con.executemany("INSERT INTO mx (scan_id, domain, host, preference) VALUES "
                            "(?, ?, 'mx-valid.test', 10)", ((sid, x) for x in names))
            con.executemany("INSERT INTO findings (scan_id, domain, code, severity, detail) "
                            "VALUES (?, ?, 'sts.none', 'info', 'no v=STSv1 TXT record')",
                            ((sid, x) for x in names))
        con.close()
        return path

    def _export_rss(self, db, n, args=()):
        """Exports db with stdout on a pipe (lines counted as they come) and stderr on a
        terminal; returns (peak RSS in KiB, lines, what reached the terminal).

        The export is started by a fresh, small Python process (RSS_HELPER), not by
        this one: Linux keeps the peak RSS across exec, and a child forked (or
        vforked) from this test would report this process's peak, not the export's."""
        master, slave = pty.openpty()
        rss_file = os.path.join(tempfile.mkdtemp(prefix="mxscan-rss-"), "rss")
        p = subprocess.Popen([sys.executable, "-c", RSS_HELPER, rss_file, MXSCAN, "export", db]
                             + list(args), stdout=subprocess.PIPE, stderr=slave)
        os.close(slave)
        tty = []

        def drain():
            while True:
                try:
                    b = os.read(master, 4096)
                except OSError:
                    return
                if not b:
                    return
                tty.append(b)

        t = threading.Thread(target=drain, daemon=True)
        t.start()
        lines = 0
        with p.stdout:
            while True:
                b = p.stdout.read(1 << 20)
                if not b:
                    break
                lines += b.count(b"\n")
        rc = p.wait()
        os.close(master)
        t.join(5)
        self.assertEqual(rc, 0)
        with open(rss_file) as f:
            return int(f.read()), lines, b"".join(tty).decode(errors="replace")

    def test_streaming_flat_rss(self):
        """Exporting 200,000 domains takes no more memory than 20,000 (within 20%), under
        60 MB (not checked in an ASan build): rows are stepped and written one at a
        time, never held; the progress line shows on a terminal."""
        base = one(self.db, "SELECT count(*) FROM domains WHERE scan_id=?", self.scan_id)
        small_db, big_db = self._big_db(20_000), self._big_db(200_000)
        small, n_small, _ = self._export_rss(small_db, 20_000)
        big, n_big, tty = self._export_rss(big_db, 200_000)
        csv_big, n_csv, _ = self._export_rss(big_db, 200_000, ["-q", "-f", "csv", "-t", "mx"])
        print("peak RSS jsonl 20k domains: %d KiB, 200k: %d KiB; csv mx 200k rows: %d KiB"
              % (small, big, csv_big))
        self.assertEqual(n_small, 20_000 + base)
        self.assertEqual(n_big, 200_000 + base)
        self.assertEqual(n_csv, 1 + 200_000 + one(self.db, "SELECT count(*) FROM mx"))
        if not SANITIZED:
            self.assertLess(big, 60 * 1024)
            self.assertLess(csv_big, 60 * 1024)
        self.assertLess(big, small * 1.20)
        self.assertIn("exporting domains", tty)


if __name__ == "__main__":
    unittest.main(verbosity=2)
