"""Scan lifecycle: Ctrl-C and SIGTERM end a scan cleanly (finished work
committed, scan marked interrupted, database intact), a second scan into the
same file is a new scan id, progress on a terminal and off it, the CLI's
help, version and errors. Points 1, 7 and 8 of the core issue."""
import os
import pty
import select
import signal
import subprocess
import time
import unittest

from mxtest import CA_FILE, MXSCAN, RESOLVER, last_scan, one, postures, rows, scan, tmpdb


class TestInterrupt(unittest.TestCase):
    def _interrupt(self, sig):
        db = tmpdb()
        # valid.test finishes at once; tarpit.test holds its session for 60 s.
        p = subprocess.Popen([MXSCAN, "scan", "-q", "-o", db, "--resolver", RESOLVER,
                              "--ca-file", CA_FILE, "--timeout", "60s", "valid.test",
                              "plain.test", "tarpit.test"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        time.sleep(2.0)
        t0 = time.monotonic()
        p.send_signal(sig)
        out, err = p.communicate(timeout=30)
        took = time.monotonic() - t0
        self.assertEqual(p.returncode, 130, err)
        self.assertLess(took, 10)
        self.assertEqual(one(db, "SELECT status FROM scans"), "interrupted")
        self.assertIsNotNone(one(db, "SELECT ended_at FROM scans"))
        self.assertEqual(postures(db), {"valid.test": "starttls", "plain.test": "plaintext"})
        # nothing half-done: the tarpit host was not finished, so it is not stored
        self.assertEqual(one(db, "SELECT count(*) FROM hosts WHERE host='mx-tarpit.test'"), 0)
        # every stored domain's MX hosts are stored too
        self.assertEqual(one(db, "SELECT count(*) FROM mx LEFT JOIN hosts h USING (scan_id, host)"
                             " WHERE h.host IS NULL"), 0)
        self.assertEqual(one(db, "PRAGMA integrity_check"), "ok")
        self.assertIn("interrupted", out.decode())

    def test_sigint(self):
        """Ctrl-C: finished domains are committed, the scan is marked interrupted."""
        self._interrupt(signal.SIGINT)

    def test_sigterm(self):
        """SIGTERM behaves as Ctrl-C."""
        self._interrupt(signal.SIGTERM)


class TestScansAccumulate(unittest.TestCase):
    def test_second_scan_new_id(self):
        """A second scan into the same file gets a new id; the first stays intact."""
        db = tmpdb()
        r1 = scan(["valid.test"], db=db)
        r2 = scan(["plain.test", "valid.test"], db=db)
        self.assertEqual((r1.rc, r2.rc), (0, 0))
        self.assertEqual([r[0] for r in rows(db, "SELECT id FROM scans ORDER BY id")], [1, 2])
        self.assertEqual(postures(db, 1), {"valid.test": "starttls"})
        self.assertEqual(set(postures(db, 2)), {"plain.test", "valid.test"})
        self.assertEqual(one(db, "PRAGMA journal_mode"), "wal")


class TestProgress(unittest.TestCase):
    def test_progress_on_terminal(self):
        """On a terminal, a progress line with domains, rate and sessions is drawn on
        stderr; -q silences it."""
        db = tmpdb()
        pid, fd = pty.fork()
        if pid == 0:
            os.execv(MXSCAN, [MXSCAN, "scan", "-o", db, "--resolver", RESOLVER, "--timeout",
                              "2s", "valid.test", "tarpit.test"])
        out = b""
        while True:
            r, _, _ = select.select([fd], [], [], 20)
            if not r:
                break
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            out += chunk
        os.waitpid(pid, 0)
        text = out.decode(errors="replace")
        self.assertIn("\r", text)
        self.assertRegex(text, r"\d+/2 domains, [0-9.]+/s, \d+ sessions")

    def test_status_lines_off_terminal(self):
        """Off a terminal, status lines are plain lines prefixed 'mxscan:'."""
        r = subprocess.run([MXSCAN, "scan", "-o", tmpdb(), "--resolver", RESOLVER,
                            "valid.test"], capture_output=True, timeout=60)
        self.assertEqual(r.returncode, 0)
        self.assertNotIn(b"\r", r.stderr)
        self.assertRegex(r.stderr.decode(), r"mxscan: 1/1 domains")
        q = subprocess.run([MXSCAN, "scan", "-q", "-o", tmpdb(), "--resolver", RESOLVER,
                            "valid.test"], capture_output=True, timeout=60)
        self.assertEqual(q.stderr, b"")


class TestCli(unittest.TestCase):
    def run_cli(self, *args):
        return subprocess.run([MXSCAN] + list(args), capture_output=True, timeout=30)

    def test_help_and_version(self):
        """--help documents every scan flag with its default; --version prints one."""
        r = self.run_cli("scan", "--help")
        self.assertEqual(r.returncode, 0)
        text = r.stdout.decode()
        for flag in ("--input", "--output", "--csv-column", "--resolver", "--port",
                     "--tls-on-connect", "--helo", "--timeout", "--concurrency", "--per-ip",
                     "--rate", "--quiet", "never sends MAIL, RCPT or DATA"):
            self.assertIn(flag, text)
        self.assertIn("default 100", text)
        r = self.run_cli("--version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout.decode(), r"^mxscan \d+\.\d+\.\d+")
        self.assertEqual(self.run_cli("--help").returncode, 0)

    def test_bad_flags(self):
        """Bad values are refused at start-up with a message and exit status 2."""
        for args in (["scan", "--per-ip", "0", "x.test"], ["scan", "--timeout", "soon", "x.test"],
                     ["scan"], ["frobnicate"], ["scan", "--resolver", "not an address",
                                                "-o", tmpdb(), "x.test"]):
            r = self.run_cli(*args)
            self.assertNotEqual(r.returncode, 0, args)
            self.assertTrue(r.stderr.strip(), args)

    def test_unopenable_database(self):
        """A database path that cannot be opened is a clear error."""
        r = self.run_cli("scan", "-o", "/nonexistent-dir/x.db", "--resolver", RESOLVER,
                         "valid.test")
        self.assertEqual(r.returncode, 1)
        self.assertIn("/nonexistent-dir/x.db", r.stderr.decode())

    def test_helo_name_sent(self):
        """--helo sets the EHLO name (Postfix logs the name a client gave)."""
        r = scan(["--helo", "probe.mxscan.test", "plain.test"])
        self.assertEqual(r.rc, 0, r.err)
        self.assertEqual(one(r.db, "SELECT helo FROM scans"), "probe.mxscan.test")


if __name__ == "__main__":
    unittest.main(verbosity=2)
