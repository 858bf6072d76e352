"""Politeness: the per-IP cap and the connection rate, observed on the
server side by the scripted 'counter' server (which logs how many
connections it holds at once). Point 6 of the core issue."""
import unittest

from mxtest import fake_log, postures, scan

PERIP = ["perip%d.test" % i for i in range(1, 7)]  # six host names, one IP (127.25.1.9)


def counter_events(since):
    return [e for e in fake_log() if e.get("addr") == "127.25.1.9" and
            e.get("event") == "connect" and e.get("time", 0) >= since]


class TestPoliteness(unittest.TestCase):
    def test_per_ip_one(self):
        """--per-ip 1 (the default): never two sessions at once to one IP."""
        import time
        t0 = time.time()
        r = scan(PERIP + ["--rate", "0", "--concurrency", "50"])
        self.assertEqual(r.rc, 0, r.err)
        self.assertEqual(set(postures(r.db).values()), {"plaintext"})
        ev = counter_events(t0)
        self.assertEqual(len(ev), 6)
        self.assertEqual(max(e["concurrent"] for e in ev), 1)

    def test_per_ip_three(self):
        """--per-ip 3: up to three at once, never more."""
        import time
        t0 = time.time()
        r = scan(PERIP + ["--rate", "0", "--per-ip", "3", "--concurrency", "50"])
        self.assertEqual(r.rc, 0, r.err)
        ev = counter_events(t0)
        self.assertEqual(len(ev), 6)
        peak = max(e["concurrent"] for e in ev)
        self.assertLessEqual(peak, 3)
        self.assertGreaterEqual(peak, 2)  # the counter holds each session 0.5 s

    def test_rate(self):
        """--rate 4: six connections are spread over at least ~1.25 s."""
        import time
        t0 = time.time()
        r = scan(PERIP + ["--rate", "4", "--per-ip", "6", "--concurrency", "50"])
        self.assertEqual(r.rc, 0, r.err)
        ev = sorted(e["time"] for e in counter_events(t0))
        self.assertEqual(len(ev), 6)
        # burst of 1 then one per 250 ms: the sixth starts >= 1.25 s after the first
        self.assertGreaterEqual(ev[-1] - ev[0], 1.1)

    def test_concurrency_cap(self):
        """--concurrency 1: one session in flight in all, whatever the per-IP limit."""
        import time
        t0 = time.time()
        r = scan(PERIP + ["--rate", "0", "--per-ip", "6", "--concurrency", "1"])
        self.assertEqual(r.rc, 0, r.err)
        ev = counter_events(t0)
        self.assertEqual(max(e["concurrent"] for e in ev), 1)


if __name__ == "__main__":
    unittest.main(verbosity=2)
