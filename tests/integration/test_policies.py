"""MTA-STS (RFC 8461) and TLSRPT (RFC 8460) against the real servers of the
test network: the _mta-sts and _smtp._tls TXT records from the signed
zone, policies served by nginx over HTTPS with certificates of the test CA.
Issue 3, points 4 to 6: each sts.* and tlsrpt.* code and the mta-sts,
mta-sts-testing and broken postures."""
import unittest

from mxtest import one, postures, rows, scan

STS = ["stsenforce.test", "stswild.test", "stsmismatch.test", "ststesting.test",
       "stsnone.test", "stsmalformed.test", "stsmissing.test", "stsredirect.test",
       "stswebpki.test", "stscert.test", "ststxtbad.test", "ststwotxt.test", "stsbig.test",
       "rptgood.test", "rptbad.test", "rpttwo.test", "valid.test"]


class TestPolicies(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.res = scan(STS + ["--timeout", "5s", "--rate", "0"])
        cls.db = cls.res.db

    def codes(self, domain):
        return sorted({c for (c,) in rows(self.db, "SELECT code FROM findings WHERE domain=?",
                                          domain)})

    def test_scan_ok(self):
        """The scan completes."""
        self.assertEqual(self.res.rc, 0, self.res.err)

    def test_sts_codes(self):
        """Each MTA-STS failure gives its code and RFC 8460 result type."""
        expect = {
            "valid.test": "sts.none",
            "ststxtbad.test": "sts.txt.invalid",
            "ststwotxt.test": "sts.txt.invalid",
            "stsmissing.test": "sts.fetch.failed",
            "stsredirect.test": "sts.fetch.failed",
            "stsbig.test": "sts.fetch.failed",
            "stswebpki.test": "sts.webpki.invalid",
            "stsmalformed.test": "sts.policy.invalid",
            "ststesting.test": "sts.mode.testing",
            "stsnone.test": "sts.mode.none",
            "stsmismatch.test": "sts.mx.mismatch",
            "stscert.test": "sts.mx.cert",
        }
        for dom, code in expect.items():
            self.assertIn(code, self.codes(dom), dom)
        rt = dict(rows(self.db, "SELECT code, result_type FROM findings WHERE code LIKE 'sts.%'"))
        self.assertEqual(rt["sts.fetch.failed"], "sts-policy-fetch-error")
        self.assertEqual(rt["sts.webpki.invalid"], "sts-webpki-invalid")
        self.assertEqual(rt["sts.mx.mismatch"], "validation-failure")
        self.assertEqual(rt["sts.mx.cert"], "certificate-not-trusted")
        # the per-MX codes name the MX host
        self.assertEqual(one(self.db, "SELECT host FROM findings WHERE code='sts.mx.mismatch'"),
                         "mx-valid.test")
        for dom in ("stsenforce.test", "stswild.test"):
            self.assertFalse([c for c in self.codes(dom) if c.startswith("sts.")], dom)

    def test_fetch_details(self):
        """The fetch is recorded: status class, HTTP status, WebPKI, the policy fields."""
        got = {r[0]: r[1:] for r in rows(
            self.db, "SELECT domain, fetch_status, http_status, webpki_valid, mode, max_age, mx, "
            "txt_id FROM mta_sts")}
        self.assertEqual(got["stsmissing.test"][:2], ("http", 404))
        self.assertEqual(got["stsredirect.test"][:2], ("redirect", 301))
        self.assertEqual(got["stsbig.test"][0], "size")
        self.assertEqual(got["stswebpki.test"][0], "webpki")
        self.assertEqual(got["stswebpki.test"][2], 0)
        self.assertEqual(got["stsenforce.test"][:6],
                         ("ok", 200, 1, "enforce", 86400, '["mx-valid.test"]'))
        self.assertTrue(got["stsenforce.test"][6])
        self.assertEqual(got["stswild.test"][5], '["*.test"]')

    def test_postures(self):
        """mta-sts, mta-sts-testing and broken come from the policies."""
        p = postures(self.db)
        self.assertEqual(p["stsenforce.test"], "mta-sts")
        self.assertEqual(p["stswild.test"], "mta-sts")  # RFC 8461 4.1 wildcard
        self.assertEqual(p["ststesting.test"], "mta-sts-testing")
        for d in ("stsmismatch.test", "stscert.test", "stsmissing.test", "stswebpki.test",
                  "stsredirect.test", "stsbig.test"):
            self.assertEqual(p[d], "broken", d)
        for d in ("stsnone.test", "stsmalformed.test", "ststxtbad.test", "valid.test"):
            self.assertEqual(p[d], "starttls", d)
        self.assertEqual(dict(rows(self.db, "SELECT domain, sts_mode FROM domains WHERE "
                                   "sts_mode IS NOT NULL"))["ststesting.test"], "testing")

    def test_tlsrpt(self):
        """TLSRPT records are parsed and stored; malformed ones are tlsrpt.invalid; none
        is tlsrpt.none."""
        self.assertNotIn("tlsrpt.invalid", self.codes("rptgood.test"))
        self.assertNotIn("tlsrpt.none", self.codes("rptgood.test"))
        self.assertIn("tlsrpt.invalid", self.codes("rptbad.test"))
        self.assertIn("tlsrpt.invalid", self.codes("rpttwo.test"))
        self.assertIn("tlsrpt.none", self.codes("valid.test"))
        r = rows(self.db, "SELECT valid, rua FROM tlsrpt WHERE domain='rptgood.test'")[0]
        self.assertEqual(r[0], 1)
        self.assertIn("mailto:tlsrpt@rptgood.test", r[1])
        self.assertIn("https://", r[1])
        self.assertEqual(dict(rows(self.db, "SELECT domain, tlsrpt FROM domains WHERE tlsrpt IS "
                                   "NOT NULL")),
                         {"rptgood.test": 1, "rptbad.test": 0, "rpttwo.test": 0,
                          "stsenforce.test": 1})


if __name__ == "__main__":
    unittest.main(verbosity=2)
