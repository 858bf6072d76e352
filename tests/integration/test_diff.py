"""`mxscan diff` against two scans between which the test network really
changed: `tests/net/testnet mutate` replaces mx-diffcert's certificate with one
that expires in 10 days, turns STARTTLS off on mx-diffstarttls and publishes a
TLSA record for mx-difftlsa that matches nothing; `restore` puts them back.

Three scans of the same five domains go into one database: scan 1 before the
mutation, scan 2 after it, scan 3 after the restore. The network is restored in
a finally clause and again in tearDownClass, whatever happens."""
import json
import os
import re
import sqlite3
import subprocess
import unittest

from mxtest import MXSCAN, SRC, TESTNET_DIR, one, postures, scan, tmpdb

TESTNET = os.path.join(SRC, "tests", "net", "testnet")
DOMAINS = ["valid.test", "diffcert.test", "diffstarttls.test", "difftlsa.test"]
MUTATED = {"diffcert.test", "diffstarttls.test", "difftlsa.test"}


def testnet(cmd):
    """Runs `testnet mutate|restore DIR`; raises with its output if it fails."""
    p = subprocess.run([TESTNET, cmd, TESTNET_DIR], capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        raise RuntimeError("testnet %s failed (%d):\n%s%s" % (cmd, p.returncode, p.stdout,
                                                             p.stderr))


def diff(*args):
    """Runs `mxscan diff ARGS`: (exit status, stdout, stderr)."""
    p = subprocess.run([MXSCAN, "diff", "-q"] + list(args), capture_output=True, text=True,
                       timeout=120)
    return p.returncode, p.stdout, p.stderr


def diff_json(*args):
    rc, out, err = diff("--format", "json", *args)
    return rc, json.loads(out), err


def changes(doc):
    """{domain: [change, ...]} of a JSON diff."""
    return {d["domain"]: d["changes"] for d in doc["domains"]}


def kinds(doc, domain):
    return [c["kind"] for c in changes(doc).get(domain, [])]


def find(doc, domain, kind, **match):
    """The one change of that kind (and fields) of domain."""
    got = [c for c in changes(doc).get(domain, []) if c["kind"] == kind
           and all(c.get(k) == v for k, v in match.items())]
    if len(got) != 1:
        raise AssertionError("%s: %d %s %s changes in %s" % (domain, len(got), kind, match,
                                                          changes(doc).get(domain)))
    return got[0]


def not_after(db, scan_id, host):
    return one(db, "SELECT cert_not_after FROM endpoints WHERE scan_id=? AND host=?", scan_id,
               host)


def copy_scans(src, upto):
    """A copy of database src that keeps scans 1..upto only."""
    dst = tmpdb("copy%d" % upto)
    s, d = sqlite3.connect(src), sqlite3.connect(dst)
    s.backup(d)
    s.close()
    tables = [t for (t,) in d.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    for t in tables:
        cols = [r[1] for r in d.execute("PRAGMA table_info(%s)" % t)]
        if "scan_id" in cols:
            d.execute("DELETE FROM %s WHERE scan_id > ?" % t, (upto,))
    d.execute("DELETE FROM scans WHERE id > ?", (upto,))
    d.commit()
    d.close()
    return dst


class TestDiff(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.db = tmpdb("diff")
        cls.runs = []
        testnet("restore")  # a run stopped half-way may have left it mutated
        try:
            cls.runs.append(scan(DOMAINS, db=cls.db))
            testnet("mutate")
            cls.runs.append(scan(DOMAINS, db=cls.db))
        finally:
            testnet("restore")
        cls.runs.append(scan(DOMAINS, db=cls.db))

    @classmethod
    def tearDownClass(cls):
        testnet("restore")

    def test_scans_saw_the_mutation(self):
        """The three scans ran and saw the network as it was: scan 2 mutated."""
        for r in self.runs:
            self.assertEqual(r.rc, 0, r.err)
        self.assertEqual(one(self.db, "SELECT count(*) FROM scans"), 3)
        before, after, back = (postures(self.db, i) for i in (1, 2, 3))
        self.assertEqual(before, {"valid.test": "starttls", "diffcert.test": "starttls",
                                  "diffstarttls.test": "starttls", "difftlsa.test": "dane"})
        self.assertEqual(after["diffstarttls.test"], "plaintext")
        self.assertEqual(after["difftlsa.test"], "broken")
        self.assertEqual(back, before)
        self.assertNotEqual(not_after(self.db, 1, "mx-diffcert.test"),
                            not_after(self.db, 2, "mx-diffcert.test"))

    def test_worse_text(self):
        """1 -> 2 in text: one line per change grouped by domain, the certificate with
        its old and new expiry, STARTTLS lost, the TLSA mismatch, valid.test unchanged,
        a summary line at the end, exit status 1."""
        rc, out, err = diff(self.db, "--from", "1", "--to", "2")
        self.assertEqual(rc, 1, err)
        old, new = (not_after(self.db, i, "mx-diffcert.test") for i in (1, 2))
        groups, cur = {}, None
        for line in out.splitlines():
            if re.match(r"^[a-z0-9.-]+\.test$", line):
                cur = line
                groups[cur] = []
            elif line.startswith("  ") and cur:
                groups[cur].append(line)
        self.assertEqual(set(groups), MUTATED)
        self.assertNotIn("valid.test", out)

        def has(domain, pattern):
            self.assertTrue(any(re.search(pattern, l) for l in groups[domain]),
                            "%s: no line matching %r in %s" % (domain, pattern, groups[domain]))
        has("diffcert.test", r"^  ! cert\.replaced +mx-diffcert\.test 127\.25\.0\.31:25: "
            r"not after %s -> %s" % (re.escape(old), re.escape(new)))
        has("diffstarttls.test", r"^  ! posture +starttls -> plaintext$")
        has("diffstarttls.test", r"^  ! starttls\.lost +mx-diffstarttls\.test ")
        has("diffstarttls.test", r"^  ! finding\.new +smtp\.starttls\.missing \(crit\)")
        has("difftlsa.test", r"^  ! posture +dane -> broken$")
        has("difftlsa.test", r"^  ! tlsa\.mismatch +mx-difftlsa\.test 127\.25\.0\.33:25: "
            r"dane valid -> mismatch")
        has("difftlsa.test", r"^  ! finding\.new +dane\.mismatch \(crit\)")
        last = out.rstrip("\n").splitlines()[-1]
        self.assertRegex(last, r"^summary: scan 1 -> 2: 4 domains, 3 changed \(3 worse\), "
                               r"0 added, 0 removed; \d+ changes, \d+ worse")

    def test_worse_json(self):
        """1 -> 2 as JSON: valid, the same changes as the text, worse flags, exit 1."""
        rc, doc, err = diff_json(self.db, "--from", "1", "--to", "2")
        self.assertEqual(rc, 1, err)
        self.assertEqual((doc["from"]["scan"], doc["to"]["scan"]), (1, 2))
        self.assertEqual(set(changes(doc)), MUTATED)
        c = find(doc, "diffcert.test", "cert.replaced")
        self.assertEqual((c["old"], c["new"]), (not_after(self.db, 1, "mx-diffcert.test"),
                                                not_after(self.db, 2, "mx-diffcert.test")))
        self.assertTrue(c["worse"])  # the new one expires in 10 days, within 14
        self.assertEqual((c["host"], c["ip"], c["port"]), ("mx-diffcert.test", "127.25.0.31", 25))
        self.assertTrue(find(doc, "diffstarttls.test", "posture", old="starttls",
                             new="plaintext")["worse"])
        self.assertTrue(find(doc, "diffstarttls.test", "starttls.lost")["worse"])
        self.assertTrue(find(doc, "diffstarttls.test", "finding.new",
                             code="smtp.starttls.missing")["worse"])
        self.assertTrue(find(doc, "difftlsa.test", "posture", old="dane", new="broken")["worse"])
        self.assertTrue(find(doc, "difftlsa.test", "tlsa.mismatch", old="valid",
                             new="mismatch")["worse"])
        self.assertTrue(find(doc, "difftlsa.test", "finding.new", code="dane.mismatch")["worse"])
        for d in doc["domains"]:
            for ch in d["changes"]:
                self.assertTrue(set(ch) >= {"kind", "old", "new", "detail", "worse"}, ch)
        # The same changes as the text output, in the same order.
        _, out, _ = diff(self.db, "--from", "1", "--to", "2")
        text = [l.split()[1] if l.startswith("  !") else l.split()[0]
                for l in out.splitlines() if l.startswith("   ") or l.startswith("  !")]
        self.assertEqual(text, [c["kind"] for d in doc["domains"] for c in d["changes"]])
        s = doc["summary"]
        self.assertEqual((s["domains"], s["changed"], s["worse_domains"], s["exit"]), (4, 3, 3, 1))
        self.assertEqual(s["changes"], len(text))
        self.assertEqual(s["worse"], sum(c["worse"] for d in doc["domains"]
                                         for c in d["changes"]))

    def test_same_scan(self):
        """A scan compared with itself: no change, exit 0."""
        rc, out, err = diff(self.db, "--from", "1", "--to", "1")
        self.assertEqual(rc, 0, err)
        self.assertIn("no changes", out)
        rc, doc, err = diff_json(self.db, "--from", "1", "--to", "1")
        self.assertEqual(rc, 0, err)
        self.assertEqual(doc["domains"], [])
        self.assertEqual((doc["summary"]["changes"], doc["summary"]["domains"]), (0, 4))

    def test_defaults_and_improvements(self):
        """No flags: the latest scan (3) against the one before (2). Everything improved
        (a certificate replaced by a longer-lived one is not worse): exit 0."""
        rc, doc, err = diff_json(self.db)
        self.assertEqual(rc, 0, err)
        self.assertEqual((doc["from"]["scan"], doc["to"]["scan"]), (2, 3))
        self.assertEqual(set(changes(doc)), MUTATED)
        c = find(doc, "diffcert.test", "cert.replaced")
        self.assertEqual((c["old"], c["new"]), (not_after(self.db, 2, "mx-diffcert.test"),
                                                not_after(self.db, 3, "mx-diffcert.test")))
        self.assertFalse(c["worse"])
        find(doc, "diffcert.test", "finding.resolved", code="cert.expiring")
        find(doc, "diffstarttls.test", "posture", old="plaintext", new="starttls")
        find(doc, "diffstarttls.test", "starttls.gained")
        find(doc, "diffstarttls.test", "finding.resolved", code="smtp.starttls.missing")
        find(doc, "difftlsa.test", "posture", old="broken", new="dane")
        find(doc, "difftlsa.test", "tlsa.mismatch.resolved")
        find(doc, "difftlsa.test", "finding.resolved", code="dane.mismatch")
        self.assertEqual([c for d in doc["domains"] for c in d["changes"] if c["worse"]], [])
        self.assertEqual(doc["summary"]["exit"], 0)

    def test_two_files(self):
        """OLD.db NEW.db compares the latest scan of each file (the second is attached):
        the same changes as --from 1 --to 2 of one file."""
        old, new = copy_scans(self.db, 1), copy_scans(self.db, 2)
        rc, doc, err = diff_json(old, new)
        self.assertEqual(rc, 1, err)
        self.assertEqual((doc["from"]["db"], doc["from"]["scan"]), (old, 1))
        self.assertEqual((doc["to"]["db"], doc["to"]["scan"]), (new, 2))
        _, one_file, _ = diff_json(self.db, "--from", "1", "--to", "2")
        self.assertEqual(doc["domains"], one_file["domains"])
        rc, out, err = diff(old, new)
        self.assertEqual(rc, 1, err)
        self.assertIn("cert.replaced", out)
        # --from and --to pick scans of the first and the second file.
        rc, doc, err = diff_json(new, self.db, "--from", "2", "--to", "3")
        self.assertEqual(rc, 0, err)
        self.assertEqual(set(changes(doc)), MUTATED)

    def test_expiry_warning(self):
        """--expiry-warning moves the horizon: with 1d, a certificate expiring in 10 days
        is no longer worse (the other changes still are)."""
        rc, doc, err = diff_json(self.db, "--from", "1", "--to", "2", "--expiry-warning", "1d")
        self.assertEqual(rc, 1, err)
        self.assertFalse(find(doc, "diffcert.test", "cert.replaced")["worse"])

    def test_usage_errors(self):
        """Bad usage and errors exit 2, and a missing file is not created."""
        missing = tmpdb("missing")
        for args in ([], [missing], [self.db, "--to", "99"], [self.db, "--from", "x"],
                     [self.db, "--format", "xml"], [self.db, "--bogus"],
                     [self.db, self.db, self.db]):
            rc, _, err = diff(*args)
            self.assertEqual(rc, 2, (args, err))
            self.assertTrue(err.strip(), args)
        self.assertFalse(os.path.exists(missing))
        one_scan = copy_scans(self.db, 1)
        rc, _, err = diff(one_scan)
        self.assertEqual(rc, 2)
        self.assertIn("--from", err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
