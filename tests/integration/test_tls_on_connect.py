"""--tls-on-connect: TLS first on port 465 (RFC 8314), then the greeting and
EHLO inside TLS; no STARTTLS. Point 5 of the core issue."""
import unittest

from mxtest import rows, scan


class TestTlsOnConnect(unittest.TestCase):
    def test_port_465(self):
        """The session handshakes first, then reads the greeting and EHLO over TLS."""
        r = scan(["--tls-on-connect", "valid.test"])
        self.assertEqual(r.rc, 0, r.err)
        ep = rows(r.db, "SELECT port, status, tls_on_connect, tls_version, greeting, ehlo_before, "
                  "ehlo_after, starttls_code, verify_code FROM endpoints")
        self.assertEqual(len(ep), 1)
        port, status, toc, ver, greet, before, after, stc, vcode = ep[0]
        self.assertEqual((port, status, toc), (465, "ok", 1))
        self.assertTrue(ver.startswith("TLSv1."))
        self.assertTrue(greet.startswith("220 "))
        self.assertIsNone(before)
        self.assertIn("PIPELINING", after)
        self.assertIsNone(stc)
        self.assertEqual(vcode, 0)
        self.assertEqual(rows(r.db, "SELECT posture FROM domains"), [("starttls",)])
        self.assertEqual(rows(r.db, "SELECT count(*) FROM findings WHERE code LIKE 'smtp.%'"),
                         [(0,)])

    def test_plain_server_on_tls_port(self):
        """Against a server that speaks plain SMTP, --tls-on-connect fails at the TLS step."""
        r = scan(["--tls-on-connect", "--port", "25", "--timeout", "3s", "plain.test"])
        self.assertEqual(r.rc, 0, r.err)
        ep = rows(r.db, "SELECT status, failed_step FROM endpoints")
        self.assertEqual(ep, [("failed", "tls")])
        codes = [c for (c,) in rows(r.db, "SELECT code FROM findings WHERE host IS NOT NULL "
                                          "AND code NOT LIKE 'dane.%'")]
        self.assertEqual(codes, ["tls.handshake.failed"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
