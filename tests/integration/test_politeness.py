"""Politeness: the per-IP cap, the connection rate, the per-/24 cap and the
minimum interval between connections to one IP, observed on the server
side by the scripted fake servers (which log every connect and close).
Point 6 of the core issue and point 4 of issue #5. Tests of one limit turn
the others off (--min-interval 0, --per-prefix 0) so that only it acts."""
import unittest

from mxtest import fake_log, postures, rows, scan

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
        r = scan(PERIP + ["--rate", "0", "--per-ip", "3", "--concurrency", "50",
                          "--min-interval", "0"])
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
        r = scan(PERIP + ["--rate", "4", "--per-ip", "6", "--concurrency", "50",
                          "--min-interval", "0", "--per-prefix", "0"])
        self.assertEqual(r.rc, 0, r.err)
        ev = sorted(e["time"] for e in counter_events(t0))
        self.assertEqual(len(ev), 6)
        # burst of 1 then one per 250 ms: the sixth starts >= 1.25 s after the first
        self.assertGreaterEqual(ev[-1] - ev[0], 1.1)

    def test_concurrency_cap(self):
        """--concurrency 1: one session in flight in all, whatever the per-IP limit."""
        import time
        t0 = time.time()
        r = scan(PERIP + ["--rate", "0", "--per-ip", "6", "--concurrency", "1",
                          "--min-interval", "0"])
        self.assertEqual(r.rc, 0, r.err)
        ev = counter_events(t0)
        self.assertEqual(max(e["concurrent"] for e in ev), 1)

    def test_min_interval(self):
        """--min-interval 700ms: connections to one IP start at least 0.7 s
        apart, even with six allowed at once."""
        import time
        t0 = time.time()
        r = scan(PERIP + ["--rate", "0", "--per-ip", "6", "--per-prefix", "0",
                          "--min-interval", "700ms"])
        self.assertEqual(r.rc, 0, r.err)
        ev = sorted(e["time"] for e in counter_events(t0))
        self.assertEqual(len(ev), 6)
        gaps = [b - a for a, b in zip(ev, ev[1:])]
        self.assertGreaterEqual(min(gaps), 0.65, gaps)
        self.assertGreaterEqual(r.elapsed, 3.4)

    def test_default_min_interval(self):
        """By default (1 s), five host names on one IP take at least 4 s."""
        import time
        t0 = time.time()
        r = scan(PERIP[:5] + ["--rate", "0"])
        self.assertEqual(r.rc, 0, r.err)
        ev = sorted(e["time"] for e in counter_events(t0))
        self.assertEqual(len(ev), 5)
        self.assertGreaterEqual(ev[-1] - ev[0], 3.9)

    def _prefix_peak(self, per_prefix):
        """Sessions in flight at once to 127.25.1.0/24, from the scanner's own
        rows (start and duration of each session: the server notices a close
        only when it next reads, so its log overcounts)."""
        import datetime
        doms = PERIP + ["tarpit.test", "endless.test", "longline.test", "heloonly.test"]
        r = scan(doms + ["--rate", "0", "--per-ip", "6", "--min-interval", "0",
                         "--timeout", "1500ms", "--per-prefix", str(per_prefix)])
        self.assertEqual(r.rc, 0, r.err)
        ev = []
        for start, total in rows(r.db, "SELECT started_at, t_total_ms FROM endpoints "
                                       "WHERE ip LIKE '127.25.1.%'"):
            t = datetime.datetime.fromisoformat(start.replace("Z", "+00:00")).timestamp()
            ev += [(t, 1), (t + total / 1000.0 - 0.002, -1)]
        self.assertEqual(len(ev), 2 * len(doms))
        held = peak = 0
        for _, d in sorted(ev, key=lambda e: (e[0], e[1])):  # ends before starts at a tie
            held += d
            peak = max(peak, held)
        return peak

    def test_per_prefix(self):
        """--per-prefix 2: never more than two sessions at once to one /24,
        over ten host names on five addresses; without the cap, more."""
        self.assertLessEqual(self._prefix_peak(2), 2)
        self.assertGreater(self._prefix_peak(0), 2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
