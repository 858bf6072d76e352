"""Back-off and one later retry (issue #5, point 4), observed at the
scripted servers: 'flaky421' answers 421 to every other connection,
'busy450' always greets with 450, 'blackhole' never completes a TCP
handshake (its accept queue is full, so SYNs are dropped: a connect
timeout). Each test turns off the limits it does not test."""
import time
import unittest

from mxtest import fake_log, NET, one, postures, rows, scan

QUIET = ["--rate", "0", "--min-interval", "0", "--per-prefix", "0"]


def connects(name, since):
    addr = NET["ADDR_FAKE_" + name.upper()]
    return sorted(e["time"] for e in fake_log()
                  if e.get("addr") == addr and e.get("event") == "connect" and
                  e.get("time", 0) >= since)


class TestRetry(unittest.TestCase):
    def test_421_backoff_then_retry_succeeds(self):
        """A 421 greeting: no connection to that IP for --backoff (2 s), then
        the one retry (due after --retry 1 s) gets a normal session; the row is
        the second try's, with attempts 2 and the first error."""
        t0 = time.time()
        r = scan(["flaky421.test", "--retry", "1s", "--backoff", "2s"] + QUIET)
        self.assertEqual(r.rc, 0, r.err)
        ev = connects("flaky421", t0)
        self.assertEqual(len(ev), 2, ev)
        self.assertGreaterEqual(ev[1] - ev[0], 1.95)  # the back-off, not the 1 s retry delay
        st, attempts, first, code = rows(r.db, "SELECT status, attempts, first_error, "
                                               "banner_code FROM endpoints")[0]
        self.assertEqual((st, attempts, code), ("ok", 2, 220))
        self.assertIn("421", first)
        self.assertEqual(postures(r.db), {"flaky421.test": "plaintext"})

    def test_4xx_retried_once_only(self):
        """A server that always greets with 450 is tried exactly twice; the
        endpoint is recorded failed at the greeting, attempts 2."""
        t0 = time.time()
        r = scan(["busy450.test", "--retry", "1s", "--backoff", "0"] + QUIET)
        self.assertEqual(r.rc, 0, r.err)
        ev = connects("busy450", t0)
        self.assertEqual(len(ev), 2, ev)
        self.assertGreaterEqual(ev[1] - ev[0], 0.95)
        st, step, attempts, code = rows(r.db, "SELECT status, failed_step, attempts, "
                                              "banner_code FROM endpoints")[0]
        self.assertEqual((st, step, attempts, code), ("failed", "banner", 2, 450))

    def test_connect_timeout_retried(self):
        """A connect timeout is retried once, later: two deadlines and the
        delay, then recorded with attempts 2."""
        r = scan(["blackhole.test", "--timeout", "1s", "--retry", "1s"] + QUIET)
        self.assertEqual(r.rc, 0, r.err)
        st, step, err, attempts, first = rows(r.db, "SELECT status, failed_step, error, "
                                                    "attempts, first_error FROM endpoints")[0]
        self.assertEqual((st, step, attempts), ("failed", "connect", 2))
        self.assertIn("timed out", err)
        self.assertIn("timed out", first)
        self.assertGreaterEqual(r.elapsed, 2.9)

    def test_retry_off_and_non_transient(self):
        """--retry 0 never retries; a refused connection and a timeout after
        connecting (a tarpit) are never retried, whatever --retry says."""
        t0 = time.time()
        r = scan(["busy450.test", "--retry", "0"] + QUIET)
        self.assertEqual(r.rc, 0, r.err)
        self.assertEqual(len(connects("busy450", t0)), 1)
        self.assertEqual(one(r.db, "SELECT attempts FROM endpoints"), 1)
        r = scan(["closed.test", "tarpit.test", "--timeout", "1s", "--retry", "1s"] + QUIET)
        self.assertEqual(r.rc, 0, r.err)
        self.assertEqual(rows(r.db, "SELECT host, attempts FROM endpoints ORDER BY host"),
                         [("mx-closed.test", 1), ("mx-tarpit.test", 1)])
        self.assertLess(r.elapsed, 2.9)

    def test_check_does_not_retry(self):
        """mxscan check reports a 450 greeting at once: one connection, no
        one-minute wait for a retry."""
        import subprocess
        from mxtest import CA_FILE, MXSCAN, RESOLVER
        t0 = time.time()
        p = subprocess.run([MXSCAN, "check", "--resolver", RESOLVER, "--ca-file", CA_FILE,
                            "busy450.test"], capture_output=True, timeout=60)
        self.assertLess(time.time() - t0, 15)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("450", p.stdout.decode(errors="replace"))
        self.assertEqual(len(connects("busy450", t0)), 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
