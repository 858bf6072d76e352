"""DNS failures told apart: a resolver that never answers (TIMEOUT, after a
bounded number of tries), one that answers REFUSED, and NXDOMAIN from the
real resolver. The two scripted resolvers here stand for behaviour unbound
will not show on demand; they listen on 127.53.0.8 and .9 only."""
import socket
import threading
import time
import unittest

from mxtest import one, rows, scan


def serve(addr, mode, stop):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((addr, 5300))
    s.settimeout(0.2)
    while not stop.is_set():
        try:
            q, peer = s.recvfrom(2048)
        except socket.timeout:
            continue
        if mode == "refused" and len(q) >= 12:
            # same id and question, QR + RD + RA, rcode 5; drop the OPT record
            hdr = q[0:2] + bytes([0x81, 0x85]) + q[4:6] + b"\x00\x00\x00\x00\x00\x00"
            end = 12
            while end < len(q) and q[end] != 0:
                end += q[end] + 1
            s.sendto(hdr + q[12:end + 5], peer)
    s.close()


class TestDnsErrors(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stop = threading.Event()
        cls.threads = [threading.Thread(target=serve, args=a, daemon=True) for a in
                       (("127.53.0.8", "blackhole", cls.stop), ("127.53.0.9", "refused", cls.stop))]
        for t in cls.threads:
            t.start()
        time.sleep(0.3)

    @classmethod
    def tearDownClass(cls):
        cls.stop.set()
        for t in cls.threads:
            t.join()

    def test_timeout(self):
        """A silent resolver gives TIMEOUT after --dns-tries x --dns-timeout, dns.error, and
        posture dns-error."""
        from mxtest import MXSCAN, tmpdb
        import subprocess
        db = tmpdb()
        t0 = time.monotonic()
        p = subprocess.run([MXSCAN, "scan", "-q", "-o", db, "--resolver", "127.53.0.8:5300",
                            "--dns-timeout", "300", "--dns-tries", "2", "valid.test"],
                           capture_output=True, timeout=60)
        took = time.monotonic() - t0
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(rows(db, "SELECT posture, mx_rcode FROM domains"),
                         [("dns-error", "TIMEOUT")])
        self.assertEqual(one(db, "SELECT detail FROM findings WHERE code='dns.error'"),
                         "MX valid.test: TIMEOUT")
        self.assertLess(took, 10)

    def test_refused(self):
        """REFUSED is stored as REFUSED."""
        from mxtest import MXSCAN, tmpdb
        import subprocess
        db = tmpdb()
        p = subprocess.run([MXSCAN, "scan", "-q", "-o", db, "--resolver", "127.53.0.9:5300",
                            "valid.test"], capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(rows(db, "SELECT posture, mx_rcode FROM domains"),
                         [("dns-error", "REFUSED")])

    def test_nxdomain(self):
        """NXDOMAIN from the validating resolver is stored as NXDOMAIN with mx.none."""
        r = scan(["doesnotexist.test"])
        self.assertEqual(r.rc, 0, r.err)
        self.assertEqual(rows(r.db, "SELECT mx_rcode, mx_dnssec FROM domains"),
                         [("NXDOMAIN", "secure")])
        self.assertEqual(one(r.db, "SELECT code FROM findings"), "mx.none")

    def test_dns_resolver_env(self):
        """DNS_RESOLVER is used when --resolver is not given."""
        import os
        import subprocess
        from mxtest import MXSCAN, RESOLVER, tmpdb
        db = tmpdb()
        env = dict(os.environ, DNS_RESOLVER=RESOLVER)
        p = subprocess.run([MXSCAN, "scan", "-q", "-o", db, "valid.test"], env=env,
                           capture_output=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(one(db, "SELECT mx_rcode FROM domains"), "NOERROR")
        self.assertEqual(one(db, "SELECT resolvers FROM scans"), RESOLVER)


if __name__ == "__main__":
    unittest.main(verbosity=2)
