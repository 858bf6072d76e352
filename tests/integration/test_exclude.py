"""--exclude FILE (issue #5, point 4): what the list names is never touched.
Observed at the servers: the scripted fake on 127.25.1.9 logs every
connection and nginx logs every policy fetch; in the database: the
excluded table says what was kept out and why, and verdicts leave it out."""
import os
import tempfile
import time
import unittest

from mxtest import MXSCAN, NET, fake_log, one, postures, rows, scan

PERIP = ["perip%d.test" % i for i in range(1, 4)]  # host names on one IP (127.25.1.9)


def nginx_lines():
    path = NET.get("NGINX_LOG")
    if not path or not os.path.exists(path):
        return 0
    with open(path) as f:
        return sum(1 for _ in f)


def write_list(text):
    fd, path = tempfile.mkstemp(prefix="mxscan-exclude-", suffix=".txt")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    return path


class TestExclude(unittest.TestCase):
    def test_nothing_listed_is_touched(self):
        """An address, a /24, a domain and an MX host name: no connection to
        them, no domains row for what has no MX host left, rows in excluded."""
        lst = write_list("# operators who asked not to be scanned\n"
                         "127.25.1.9            # the counter fake\n"
                         "127.25.2.0/24         # nginx: MTA-STS policy hosts\n"
                         "plain.test\n"
                         "MX-Expired.test.      # an MX host name, any case\n")
        t0 = time.time()
        n0 = nginx_lines()
        r = scan(PERIP + ["plain.test", "expired.test", "valid.test", "stsenforce.test",
                  "--rate", "0", "--min-interval", "0", "--exclude", lst])
        self.assertEqual(r.rc, 0, r.err)
        # no connection to the listed address since the scan began
        self.assertEqual([e for e in fake_log() if e.get("addr") == "127.25.1.9" and
                          e.get("time", 0) >= t0], [])
        # no policy fetched from the listed prefix
        self.assertEqual(nginx_lines(), n0)
        db = r.db
        self.assertEqual(set(postures(db)), {"valid.test", "stsenforce.test"})
        ex = {(d, h, ip, why) for d, h, ip, why in
              rows(db, "SELECT domain, host, ip, reason FROM excluded")}
        self.assertIn(("plain.test", None, None, "the domain is listed"), ex)
        self.assertIn(("expired.test", "mx-expired.test", None, "the MX host name is listed"), ex)
        for d in PERIP:
            h = "mx-" + d.replace(".test", "") + ".test"
            self.assertIn((None, h, "127.25.1.9", "the address is listed"), ex)
            self.assertIn((d, h, None, "every address of the MX host is listed"), ex)
        self.assertIn(("stsenforce.test", "mta-sts.stsenforce.test", "127.25.2.1",
                       "the MTA-STS policy host's address is listed: policy not fetched"), ex)
        self.assertEqual(one(db, "SELECT excluded FROM scans"), len(ex))
        self.assertEqual(one(db, "SELECT count(*) FROM endpoints WHERE ip='127.25.1.9'"), 0)
        # no sts.* verdict drawn from a policy that was not fetched
        self.assertEqual(one(db, "SELECT count(*) FROM findings WHERE domain='stsenforce.test' "
                             "AND code LIKE 'sts.%'"), 0)
        self.assertEqual(postures(db)["valid.test"], "starttls")

    def test_bad_list_is_a_startup_error(self):
        """A line that is not an address, prefix or name stops the scan before
        it starts, naming the file and line."""
        lst = write_list("192.0.2.0/24\nnot a name\n")
        r = scan(["valid.test", "--exclude", lst])
        self.assertEqual(r.rc, 1)
        self.assertIn(f"{lst}:2:", r.err)
        self.assertFalse(os.path.exists(r.db))  # checked before anything is opened
        r = scan(["valid.test", "--exclude", lst + ".missing"])
        self.assertEqual(r.rc, 1)
        self.assertIn("missing", r.err)


if __name__ == "__main__":
    unittest.main(verbosity=2)
