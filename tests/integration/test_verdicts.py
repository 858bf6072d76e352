"""Security verdicts against the real servers of the test network:
certificate checks, TLS grade, OCSP staples and DANE. Issue 3, points 1 to
3 and 6: each code of FINDINGS.md that these checks own comes out of at
least one test domain here, with its severity and posture."""
import unittest

from mxtest import NET, codes, last_scan, one, postures, rows, scan

DOMAINS = ["valid.test", "selfsigned.test", "expired.test", "wrongname.test", "tls10.test",
           "tls12.test", "rsa.test", "weakkey.test", "plain.test", "expiring.test",
           "future.test", "sha1.test", "staticrsa.test", "ocsp.test", "ocsprevoked.test",
           "dane.test", "dane2.test", "daneta.test", "danemismatch.test", "daneunusable.test",
           "daneexpired.test", "danenostarttls.test", "tlsabogus.test", "daneinsecure.test",
           "cnamemx.test"]


def host_codes(db, host):
    return sorted({c for (c,) in rows(db, "SELECT code FROM findings WHERE host=?", host)})


def sev(db, host, code):
    return one(db, "SELECT severity FROM findings WHERE host=? AND code=?", host, code)


class TestVerdicts(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.res = scan(DOMAINS + ["--timeout", "3s", "--rate", "0"])
        cls.db = cls.res.db

    def test_scan_ok(self):
        """The scan completes."""
        self.assertEqual(self.res.rc, 0, self.res.err)

    def test_certificate_codes(self):
        """Each certificate problem of the test network gives its cert.* code with the
        port-25 severity (RFC 7435: PKIX problems are warn for opportunistic TLS)."""
        db = self.db
        self.assertIn("cert.expired", host_codes(db, "mx-expired.test"))
        self.assertEqual(sev(db, "mx-expired.test", "cert.expired"), "warn")
        self.assertIn("cert.not_yet_valid", host_codes(db, "mx-future.test"))
        self.assertIn("cert.expiring", host_codes(db, "mx-expiring.test"))
        self.assertIn("cert.name_mismatch", host_codes(db, "mx-wrongname.test"))
        self.assertIn("other.test", one(db, "SELECT detail FROM findings WHERE code="
                                        "'cert.name_mismatch' AND host='mx-wrongname.test'"))
        self.assertIn("cert.untrusted", host_codes(db, "mx-selfsigned.test"))
        self.assertIn("self-signed", one(db, "SELECT detail FROM findings WHERE "
                                         "code='cert.untrusted' AND host='mx-selfsigned.test'"))
        self.assertIn("cert.key.weak", host_codes(db, "mx-weakkey.test"))
        self.assertIn("cert.sig.weak", host_codes(db, "mx-sha1.test"))
        self.assertIn("cert.ocsp.missing", host_codes(db, "mx-valid.test"))
        self.assertEqual(sev(db, "mx-valid.test", "cert.ocsp.missing"), "info")
        clean = host_codes(db, "mx-valid.test")
        for c in ("cert.expired", "cert.untrusted", "cert.name_mismatch", "cert.key.weak",
                  "cert.sig.weak", "cert.expiring", "cert.not_yet_valid"):
            self.assertNotIn(c, clean)

    def test_certificate_facts_stored(self):
        """Leaf facts and PKIX validity are stored per endpoint."""
        r = rows(self.db, "SELECT cert_key_type, cert_key_bits, cert_names, cert_not_after, "
                 "pkix_valid, cert_sig_alg FROM endpoints WHERE host='mx-valid.test'")[0]
        self.assertEqual(r[0:2], ("EC", 256))
        self.assertIn("mx-valid.test", r[2])
        self.assertRegex(r[3], r"^\d{4}-\d\d-\d\dT")
        self.assertEqual(r[4], 1)
        self.assertIn("SHA256", r[5].upper())
        self.assertEqual(one(self.db, "SELECT pkix_valid FROM endpoints WHERE "
                             "host='mx-selfsigned.test'"), 0)
        self.assertEqual(one(self.db, "SELECT cert_key_bits FROM endpoints WHERE "
                             "host='mx-weakkey.test'"), 1024)

    def test_tls_codes_and_grades(self):
        """Old protocol, weak cipher and weak key exchange give their tls.* codes, and the
        grade and its caps follow docs/grading.md."""
        db = self.db
        c10 = host_codes(db, "mx-tls10.test")
        self.assertIn("tls.version.obsolete", c10)
        self.assertIn("tls.cipher.weak", c10)
        self.assertIn("tls.kex.weak", host_codes(db, "mx-staticrsa.test"))
        grades = dict(rows(db, "SELECT host, grade FROM endpoints WHERE grade IS NOT NULL"))
        self.assertEqual(grades["mx-valid.test"], "A")
        self.assertEqual(grades["mx-tls12.test"], "A")
        self.assertEqual(grades["mx-tls10.test"], "B")
        self.assertEqual(grades["mx-staticrsa.test"], "B")
        self.assertEqual(grades["mx-weakkey.test"], "C")
        caps = one(db, "SELECT grade_caps FROM endpoints WHERE host='mx-staticrsa.test'")
        self.assertIn("forward secrecy", caps)
        self.assertEqual(one(db, "SELECT tls_kx FROM endpoints WHERE host='mx-staticrsa.test'"),
                         "RSA")
        # PKIX trust does not cap the grade on port 25
        self.assertEqual(grades["mx-selfsigned.test"], "A")

    @unittest.skipUnless(NET.get("TESTNET_OCSP") == "1", "no OCSP-stapling server in this net")
    def test_ocsp_staple(self):
        """A stapled OCSP response is stored and decoded: good, revoked."""
        r = rows(self.db, "SELECT host, ocsp_status, length(ocsp_der) FROM endpoints WHERE host "
                 "IN ('mx-ocsp.test', 'mx-ocsprevoked.test') ORDER BY host")
        self.assertEqual([(h, s) for h, s, _ in r], [("mx-ocsp.test", "good"),
                                                      ("mx-ocsprevoked.test", "revoked")])
        self.assertGreater(r[0][2], 0)
        self.assertNotIn("cert.ocsp.missing", host_codes(self.db, "mx-ocsp.test"))

    def test_dane_codes(self):
        """DANE: valid, mismatch, unusable, no STARTTLS, bogus, insecure, none and
        rollover risk each come from their host, on the scan's own handshake."""
        db = self.db
        expect = {
            "mx-dane.test": ["dane.valid", "dane.rollover.risk"],
            "mx-dane2.test": ["dane.valid"],
            "mx-dane-ta.test": ["dane.valid"],
            "mx-dane-mismatch.test": ["dane.mismatch"],
            "mx-dane-unusable.test": ["dane.unusable"],
            "mx-dane-plain.test": ["dane.no_starttls"],
            "mx-tlsabogus.test": ["dane.bogus"],
            "mx-dane.unsigned.test": ["dane.insecure"],
            "mx-valid.test": ["dane.none"],
        }
        for host, want in expect.items():
            have = host_codes(db, host)
            for c in want:
                self.assertIn(c, have, host)
        self.assertNotIn("dane.rollover.risk", host_codes(db, "mx-dane2.test"))
        self.assertEqual(sev(db, "mx-dane-mismatch.test", "dane.mismatch"), "crit")
        self.assertEqual(one(db, "SELECT result_type FROM findings WHERE code='dane.mismatch'"),
                         "tlsa-invalid")
        self.assertEqual(one(db, "SELECT result_type FROM findings WHERE code='dane.bogus'"),
                         "dnssec-invalid")

    def test_dane_ee_ignores_dates(self):
        """Under DANE-EE(3) an expired certificate is dane.valid and cert.expired stays as
        a fact (RFC 7672 3.1.1)."""
        have = host_codes(self.db, "mx-dane-expired.test")
        self.assertIn("dane.valid", have)
        self.assertIn("cert.expired", have)
        self.assertEqual(postures(self.db)["daneexpired.test"], "dane")

    def test_dane_records_stored(self):
        """Every TLSA record is stored per host with its usability; hosts record the DANE
        state; endpoints record the matching record."""
        db = self.db
        self.assertEqual(one(db, "SELECT count(*) FROM tlsa WHERE host='mx-dane2.test'"), 2)
        self.assertEqual(one(db, "SELECT count(*) FROM tlsa WHERE host='mx-dane-unusable.test' "
                             "AND usable=1"), 0)
        states = dict(rows(db, "SELECT host, dane FROM hosts"))
        self.assertEqual(states["mx-dane.test"], "usable")
        self.assertEqual(states["mx-dane-unusable.test"], "unusable")
        self.assertEqual(states["mx-tlsabogus.test"], "bogus")
        self.assertEqual(states["mx-dane.unsigned.test"], "insecure")
        self.assertEqual(states["mx-valid.test"], "none")
        m = one(db, "SELECT dane_match FROM endpoints WHERE host='mx-dane.test'")
        self.assertRegex(m, r"^3 1 1 [0-9a-f]{64}$")

    def test_postures(self):
        """DANE domains get dane or broken; others keep their posture."""
        p = postures(self.db)
        self.assertEqual(p["dane.test"], "dane")
        self.assertEqual(p["dane2.test"], "dane")
        self.assertEqual(p["daneta.test"], "dane")
        for d in ("danemismatch.test", "daneunusable.test", "danenostarttls.test",
                  "tlsabogus.test"):
            self.assertEqual(p[d], "broken", d)
        self.assertEqual(p["daneinsecure.test"], "starttls")
        self.assertEqual(p["valid.test"], "starttls")
        self.assertEqual(p["plain.test"], "plaintext")


class TestVerdictFlags(unittest.TestCase):
    def test_expect_ocsp(self):
        """--expect-ocsp makes a missing staple crit."""
        r = scan(["--expect-ocsp", "valid.test"])
        self.assertEqual(r.rc, 0, r.err)
        self.assertEqual(sev(r.db, "mx-valid.test", "cert.ocsp.missing"), "crit")
        self.assertEqual(one(r.db, "SELECT worst_severity FROM domains"), "crit")

    def test_aka_and_expiry_warning(self):
        """--aka accepts another certificate name; --expiry-warning moves the horizon."""
        r = scan(["--aka", "other.test", "--expiry-warning", "1d", "wrongname.test",
                  "expiring.test"])
        self.assertEqual(r.rc, 0, r.err)
        self.assertNotIn("cert.name_mismatch", host_codes(r.db, "mx-wrongname.test"))
        self.assertNotIn("cert.expiring", host_codes(r.db, "mx-expiring.test"))

    def test_enum(self):
        """--enum tries every version in extra sessions and grades by the oldest accepted."""
        r = scan(["--enum", "--rate", "0", "tls12.test", "tls10.test"])
        self.assertEqual(r.rc, 0, r.err)
        got = dict(rows(r.db, "SELECT host, enum_versions FROM endpoints"))
        self.assertEqual(got["mx-tls12.test"], '["TLSv1.2"]')
        self.assertEqual(got["mx-tls10.test"], '["TLSv1"]')
        self.assertEqual(one(r.db, "SELECT count(*) FROM endpoints"), 2)


if __name__ == "__main__":
    unittest.main(verbosity=2)
