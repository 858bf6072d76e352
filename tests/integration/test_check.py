"""`mxscan check` against the real servers of the test network: the Nagios
states and perfdata, -q for cron, --json, colour only on a terminal, no
database left behind without -o, and the documented exit statuses for bad
usage (docs/tool-check.md)."""
import json
import os
import pty
import re
import select
import shutil
import subprocess
import tempfile
import time
import unittest

from mxtest import CA_FILE, MXSCAN, NET, RESOLVER, one

NET_FLAGS = ["--resolver", RESOLVER, "--ca-file", CA_FILE, "--timeout", "5s"]
PERF_RE = re.compile(r"^MXSCAN (OK|WARNING|CRITICAL|UNKNOWN) - (.*) \| (.*)$")
PERF_KEYS = ["domains", "crit", "warn", "info", "endpoints", "tls"]


class Out:
    def __init__(self, rc, out, err):
        self.rc, self.out, self.err = rc, out, err


def check(args, env=None, cwd=None, net=True, timeout=120):
    """Runs `mxscan check` with the test network's resolver and CA, stdout a pipe."""
    cmd = [MXSCAN, "check"] + (NET_FLAGS if net else []) + list(args)
    e = dict(os.environ)
    e.pop("NO_COLOR", None)
    e.update(env or {})
    p = subprocess.run(cmd, capture_output=True, timeout=timeout, env=e, cwd=cwd)
    return Out(p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"))


def check_pty(args, env=None, timeout=120):
    """Runs `mxscan check` with stdout on a pseudo-terminal; returns (rc, bytes)."""
    e = dict(os.environ)
    e.pop("NO_COLOR", None)
    e["TERM"] = "xterm"
    e.update(env or {})
    master, slave = pty.openpty()
    p = subprocess.Popen([MXSCAN, "check"] + NET_FLAGS + list(args), stdout=slave,
                         stderr=subprocess.PIPE, env=e)
    os.close(slave)
    out, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([master], [], [], 1.0)
        if not r:
            if p.poll() is not None:
                break
            continue
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        out += data
    os.close(master)
    p.communicate(timeout=30)
    return p.returncode, out


def perfdata(line):
    """Parses the Nagios line into (state, summary, {label: int})."""
    m = PERF_RE.match(line)
    if not m:
        raise AssertionError("not a Nagios line: %r" % line)
    perf = {}
    for item in m.group(3).split(" "):
        label, value = item.split("=", 1)
        perf[label] = int(value)
    return m.group(1), m.group(2), perf


class TestCheckNagios(unittest.TestCase):
    def nagios(self, *domains, extra=()):
        r = check(["--nagios"] + list(extra) + list(domains))
        lines = r.out.split("\n")
        self.assertEqual(len(lines), 2, r.out)  # one line and its newline
        self.assertEqual(lines[1], "")
        return r, perfdata(lines[0])

    def test_ok(self):
        """valid.test has only info findings: OK, exit 0, perfdata with every label."""
        r, (state, summary, perf) = self.nagios("valid.test")
        self.assertEqual((r.rc, state), (0, "OK"), r.out + r.err)
        self.assertEqual(list(perf), PERF_KEYS)
        self.assertEqual(perf["domains"], 1)
        self.assertEqual((perf["crit"], perf["warn"]), (0, 0))
        self.assertGreaterEqual(perf["info"], 1)
        self.assertEqual((perf["endpoints"], perf["tls"]), (1, 1))
        self.assertIn("valid.test starttls", summary)

    def test_critical(self):
        """plain.test lacks STARTTLS (crit): CRITICAL, exit 2, the code named."""
        r, (state, summary, perf) = self.nagios("plain.test")
        self.assertEqual((r.rc, state), (2, "CRITICAL"), r.out + r.err)
        self.assertIn("smtp.starttls.missing", summary)
        self.assertGreaterEqual(perf["crit"], 1)
        self.assertEqual((perf["endpoints"], perf["tls"]), (1, 0))

    def test_warning(self):
        """expiring.test has cert.expiring (warn) and only info besides: WARNING, exit 1."""
        r, (state, summary, perf) = self.nagios("expiring.test")
        self.assertEqual((r.rc, state), (1, "WARNING"), r.out + r.err)
        self.assertIn("cert.expiring", summary)
        self.assertEqual(perf["crit"], 0)
        self.assertGreaterEqual(perf["warn"], 1)

    def test_worst_wins(self):
        """Several domains: the worst state wins and every domain is named once."""
        r, (state, summary, perf) = self.nagios("valid.test", "expiring.test", "plain.test",
                                                "VALID.test.")
        self.assertEqual((r.rc, state), (2, "CRITICAL"), r.out + r.err)
        self.assertEqual(perf["domains"], 3)  # VALID.test. is valid.test
        for d in ("valid.test", "expiring.test", "plain.test"):
            self.assertEqual(summary.count(d + " "), 1, summary)

    def test_unknown_when_every_domain_is_dns_error(self):
        """A resolver that does not answer makes every domain dns-error: UNKNOWN, exit 3."""
        r = check(["--nagios", "--resolver", NET["CLOSED_ADDR"] + ":5300", "--dns-timeout",
                   "300", "--dns-tries", "1", "--ca-file", CA_FILE, "valid.test",
                   "plain.test"], net=False)
        state, summary, perf = perfdata(r.out.rstrip("\n"))
        self.assertEqual((r.rc, state), (3, "UNKNOWN"), r.out + r.err)
        self.assertIn("dns-error", summary)
        self.assertEqual(perf["domains"], 2)

    def test_dnssec_bogus_is_critical_not_unknown(self):
        """bogus.test is dns-error with dns.bogus (crit): a definite verdict, CRITICAL."""
        r, (state, summary, _) = self.nagios("bogus.test")
        self.assertEqual((r.rc, state), (2, "CRITICAL"), r.out + r.err)
        self.assertIn("dns.bogus", summary)

    def test_bad_flag(self):
        """A bad flag with --nagios: UNKNOWN on stdout in one line, exit 3."""
        r = check(["--nagios", "--no-such-flag", "valid.test"])
        self.assertEqual(r.rc, 3)
        self.assertRegex(r.out, r"^MXSCAN UNKNOWN - .*no-such-flag.*\n$")
        r = check(["--no-such-flag", "--nagios", "valid.test"])
        self.assertEqual(r.rc, 3)


class TestCheckOutputs(unittest.TestCase):
    def test_quiet(self):
        """-q prints nothing for a clean domain (exit 0) and the crit/warn findings
        (not the info ones) for a broken one."""
        r = check(["-q", "valid.test"])
        self.assertEqual((r.rc, r.out, r.err), (0, "", ""))
        r = check(["-q", "plain.test", "valid.test"])
        self.assertEqual(r.rc, 2, r.err)
        self.assertIn("smtp.starttls.missing", r.out)
        self.assertIn("plain.test", r.out)
        self.assertNotIn("dane.none", r.out)
        self.assertNotIn("valid.test", r.out)
        r = check(["-q", "expiring.test"])
        self.assertEqual(r.rc, 1)
        self.assertIn("cert.expiring", r.out)

    def test_json(self):
        """--json is one valid document with state, counts, MX endpoints and sorted
        findings."""
        r = check(["--json", "plain.test", "valid.test"])
        self.assertEqual(r.rc, 2, r.err)
        doc = json.loads(r.out)
        self.assertEqual((doc["state"], doc["exit_status"]), ("CRITICAL", 2))
        self.assertIsNone(doc["database"])
        self.assertEqual(doc["counts"]["domains"], 2)
        self.assertEqual([d["domain"] for d in doc["domains"]], ["plain.test", "valid.test"])
        plain, valid = doc["domains"]
        self.assertEqual(plain["posture"], "plaintext")
        codes = [(f["severity"], f["code"]) for f in plain["findings"]]
        self.assertIn(("crit", "smtp.starttls.missing"), codes)
        order = {"crit": 0, "warn": 1, "info": 2}
        self.assertEqual([order[s] for s, _ in codes], sorted(order[s] for s, _ in codes))
        self.assertTrue(all("remedy" in f for f in plain["findings"]))
        self.assertEqual(plain["mx"][0]["host"], "mx-plain.test")
        self.assertIsNone(plain["mx"][0]["endpoints"][0]["tls_version"])
        ep = valid["mx"][0]["endpoints"][0]
        self.assertTrue(ep["tls_version"].startswith("TLSv1."))
        self.assertEqual(ep["port"], 25)
        self.assertIsInstance(valid["mx"][0]["addresses"], list)
        self.assertEqual((valid["n_crit"], valid["n_warn"]), (0, 0))

    def test_human(self):
        """The default output names the posture, MX, endpoint TLS facts and findings."""
        r = check(["plain.test", "valid.test", "stsenforce.test"])
        self.assertEqual(r.rc, 2, r.err)
        self.assertRegex(r.out, r"(?m)^valid\.test  starttls ")
        self.assertIn("MTA-STS not published, TLSRPT not published", r.out)
        self.assertIn("MTA-STS enforce, TLSRPT valid (mailto:tlsrpt@stsenforce.test)", r.out)
        self.assertRegex(r.out, r"(?m)^plain\.test  plaintext ")
        self.assertIn("MX 10 mx-valid.test", r.out)
        self.assertRegex(r.out, r"127\.25\.0\.1:25  TLSv1\.\d \S+  grade [A-F]  cert until")
        self.assertRegex(r.out, r"(?m)^  crit  smtp\.starttls\.missing  mx-plain\.test")
        self.assertIn("MTA-STS", r.out)
        self.assertRegex(r.out, r"(?m)^3 domains checked in .*CRITICAL")

    def test_no_escape_bytes_off_terminal(self):
        """Not on a terminal, and with --no-color or NO_COLOR on one, no ESC byte."""
        self.assertNotIn("\x1b", check(["plain.test", "valid.test"]).out)
        rc, out = check_pty(["--no-color", "plain.test", "valid.test"])
        self.assertEqual(rc, 2)
        self.assertIn(b"plaintext", out)
        self.assertNotIn(b"\x1b", out)
        rc, out = check_pty(["plain.test"], env={"NO_COLOR": "1"})
        self.assertNotIn(b"\x1b", out)

    def test_colour_on_terminal(self):
        """On a terminal, postures are coloured: green starttls, red plaintext."""
        rc, out = check_pty(["plain.test", "valid.test"])
        self.assertEqual(rc, 2)
        self.assertIn(b"\x1b[32mstarttls\x1b[0m", out)
        self.assertIn(b"\x1b[31mplaintext\x1b[0m", out)


class TestCheckDatabase(unittest.TestCase):
    def test_no_database_without_o(self):
        """Without -o the private database (and -wal, -shm) is gone afterwards, in every
        mode, and nothing is written to the working directory."""
        tmp, cwd = tempfile.mkdtemp(prefix="mxscan-it-"), tempfile.mkdtemp(prefix="mxscan-it-")
        try:
            for mode in ([], ["--json"], ["--nagios"], ["-q"]):
                r = check(mode + ["valid.test", "plain.test"], env={"TMPDIR": tmp}, cwd=cwd)
                self.assertEqual(r.rc, 2, r.err)
                self.assertEqual(os.listdir(tmp), [], mode)
                self.assertEqual(os.listdir(cwd), [], mode)
        finally:
            shutil.rmtree(tmp)
            shutil.rmtree(cwd)

    def test_output_database(self):
        """With -o the scan is kept (a done scans row and the domain); a second run adds a
        second scan and reports that one."""
        d = tempfile.mkdtemp(prefix="mxscan-it-")
        try:
            db = os.path.join(d, "x.db")
            r = check(["-o", db, "--nagios", "valid.test"])
            self.assertEqual(r.rc, 0, r.out + r.err)
            self.assertTrue(os.path.exists(db))
            self.assertEqual(one(db, "SELECT status FROM scans WHERE id=1"), "done")
            self.assertEqual(one(db, "SELECT posture FROM domains WHERE scan_id=1 AND "
                                 "domain='valid.test'"), "starttls")
            r = check(["-o", db, "--json", "plain.test"])
            doc = json.loads(r.out)
            self.assertEqual((doc["scan_id"], doc["database"]), (2, db))
            self.assertEqual([x["domain"] for x in doc["domains"]], ["plain.test"])
            self.assertEqual(one(db, "SELECT count(*) FROM scans"), 2)
        finally:
            shutil.rmtree(d)


class TestCheckUsage(unittest.TestCase):
    def test_usage_errors(self):
        """Bad usage exits 64 (EX_USAGE) with a message naming the problem, before any scan."""
        cases = [
            (["--no-such-flag", "valid.test"], "--no-such-flag"),
            (["--timeout", "soon", "valid.test"], "--timeout"),
            (["--port", "0", "valid.test"], "--port"),
            (["--json", "-q", "valid.test"], "output modes"),
            (["-q", "--json", "valid.test"], "output modes"),
            (["nodots"], "not a domain name"),
            ([], "no domains"),
            (["--timeout"], "wants a value"),
        ]
        for args, words in cases:
            r = check(args, net=False)
            self.assertEqual(r.rc, 64, (args, r.err))
            self.assertIn(words, r.err, args)
            self.assertEqual(r.out, "", args)
        # The same mistakes with --nagios are UNKNOWN (3), said on stdout too.
        r = check(["--json", "--nagios", "valid.test"], net=False)
        self.assertEqual(r.rc, 3)
        self.assertRegex(r.out, r"^MXSCAN UNKNOWN - bad usage: .*output modes.*\n$")

    def test_help(self):
        """--help exits 0 and lists every flag."""
        r = check(["--help"], net=False)
        self.assertEqual(r.rc, 0)
        for flag in ("--nagios", "--json", "--quiet", "--no-color", "--output", "--resolver",
                     "--timeout", "--ca-file", "--ca-path", "--port", "--tls-on-connect",
                     "--helo", "--aka", "--expiry-warning", "--expect-ocsp", "15s"):
            self.assertIn(flag, r.out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
