"""Scans the whole loopback test network once and checks what was stored:
postures, findings, endpoint facts (greeting, EHLO before and after TLS,
TLS version, cipher, group, chain), DNSSEC status, the host cache, and the
scans row. Points 4, 5, 6 and 7 of the core issue."""
import os
import subprocess
import unittest

from mxtest import (CA_FILE, SRC, codes, last_scan, one, postures, rows, scan)

DOMAINS = os.path.join(SRC, "tests", "net", "domains.txt")

EXPECTED_POSTURE = {
    "valid.test": "starttls",
    "selfsigned.test": "starttls",
    "expired.test": "starttls",
    "wrongname.test": "starttls",
    "authplain.test": "starttls",
    "tls10.test": "starttls",
    "tls12.test": "starttls",
    "rsa.test": "starttls",
    "plain.test": "plaintext",
    "partial.test": "partial",
    "nullmx.test": "no-mail",
    "implicit.test": "starttls",
    "nomx.test": "unreachable",
    "cnamemx.test": "starttls",
    "iplit.test": "unreachable",
    "unresolvable.test": "unreachable",
    "closed.test": "unreachable",
    "bogus.test": "dns-error",
    "x.unsigned.test": "starttls",
    "tarpit.test": "unreachable",
    "endless.test": "unreachable",
    "longline.test": "unreachable",
    "pipelined.test": "plaintext",
    "garbage.test": "plaintext",
    "banner554.test": "unreachable",
    "heloonly.test": "plaintext",
    "starttls454.test": "plaintext",
    "counter.test": "plaintext",
    "resetconn.test": "unreachable",
    "hugereply.test": "unreachable",
    "shared1.test": "starttls",
    "shared200.test": "starttls",
}

# Codes each domain must show (its own findings and its hosts').
EXPECTED_CODES = {
    "plain.test": ["smtp.starttls.missing"],
    "partial.test": ["smtp.starttls.missing"],
    "nullmx.test": ["mx.null"],
    "implicit.test": ["mx.implicit"],
    "nomx.test": ["mx.none"],
    "cnamemx.test": ["mx.cname"],
    "iplit.test": ["mx.ip_literal"],
    "unresolvable.test": ["mx.unresolvable"],
    "closed.test": ["smtp.connect.failed"],
    "bogus.test": ["dns.bogus"],
    "tarpit.test": ["smtp.banner.timeout"],
    "endless.test": ["smtp.protocol"],
    "longline.test": ["smtp.protocol"],
    "hugereply.test": ["smtp.protocol"],
    "pipelined.test": ["smtp.protocol"],
    "banner554.test": ["smtp.banner.rejected"],
    "heloonly.test": ["smtp.ehlo.rejected", "smtp.starttls.missing"],
    "starttls454.test": ["smtp.starttls.rejected"],
    "authplain.test": ["smtp.auth.plaintext"],
    "resetconn.test": ["smtp.connect.failed"],
    "valid.test": ["net.ipv6.none"],
}


class TestScanNetwork(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # --timeout 3s: the tarpit costs exactly one deadline.
        cls.res = scan(["-i", DOMAINS, "--timeout", "3s", "--rate", "0", "--concurrency", "50"])
        cls.db = cls.res.db
        cls.sid = last_scan(cls.db)

    def test_exit_and_scans_row(self):
        """The scan ends with status 0 and a complete scans row."""
        self.assertEqual(self.res.rc, 0, self.res.err)
        r = rows(self.db, "SELECT status, ended_at, version, domains, hosts, endpoints, "
                 "arguments, resolvers FROM scans WHERE id=?", self.sid)[0]
        self.assertEqual(r[0], "done")
        self.assertTrue(r[1])
        self.assertTrue(r[2])
        n_domains = one(self.db, "SELECT count(*) FROM domains WHERE scan_id=?", self.sid)
        self.assertEqual(r[3], n_domains)
        self.assertEqual(r[4], one(self.db, "SELECT count(*) FROM hosts WHERE scan_id=?", self.sid))
        self.assertEqual(r[5], one(self.db, "SELECT count(*) FROM endpoints WHERE scan_id=?",
                                   self.sid))
        self.assertIn("--timeout", r[6])
        self.assertIn("127.53.0.1", r[7])

    def test_every_listed_domain_stored(self):
        """Every valid line of the input has one domains row."""
        with open(DOMAINS) as f:
            want = {l.strip().lower() for l in f if l.strip() and not l.startswith("#")}
        got = set(postures(self.db))
        self.assertEqual(want - got, set())

    def test_postures(self):
        """Each test domain gets the posture its servers call for."""
        got = postures(self.db)
        for dom, want in EXPECTED_POSTURE.items():
            self.assertEqual(got.get(dom), want, dom)

    def test_finding_codes(self):
        """Each test domain carries the findings of FINDINGS.md its servers call for."""
        for dom, want in EXPECTED_CODES.items():
            have = codes(self.db, dom)
            for c in want:
                self.assertIn(c, have, dom)
        self.assertNotIn("smtp.starttls.missing", codes(self.db, "valid.test"))

    def test_finding_columns(self):
        """Findings carry severity and RFC 8460 result type from FINDINGS.md, and
        host findings carry host/ip/port while domain findings carry the domain."""
        r = rows(self.db, "SELECT domain, host, ip, port, severity, result_type FROM findings "
                 "WHERE scan_id=? AND code='smtp.starttls.missing' AND host='mx-plain.test'",
                 self.sid)
        self.assertEqual(r, [(None, "mx-plain.test", "127.25.0.3", 25, "crit",
                              "starttls-not-supported")])
        r = rows(self.db, "SELECT domain, host, severity FROM findings WHERE scan_id=? "
                 "AND code='mx.null'", self.sid)
        self.assertEqual(r, [("nullmx.test", None, "info")])
        r = rows(self.db, "SELECT domain, host, severity FROM findings WHERE scan_id=? "
                 "AND code='mx.cname'", self.sid)
        self.assertEqual(r, [("cnamemx.test", "mx-alias.test", "crit")])

    def test_worst_severity_and_counts(self):
        """domains.worst_severity and counts agree with domain_findings."""
        for dom, worst, nc, nw, ni in rows(
                self.db, "SELECT domain, worst_severity, n_crit, n_warn, n_info FROM domains "
                "WHERE scan_id=?", self.sid):
            sev = [r[0] for r in rows(self.db, "SELECT severity FROM domain_findings WHERE "
                                      "scan_id=? AND domain=?", self.sid, dom)]
            self.assertEqual((nc, nw, ni), (sev.count("crit"), sev.count("warn"),
                                            sev.count("info")), dom)
            want = "crit" if nc else "warn" if nw else "info" if ni else None
            self.assertEqual(worst, want, dom)

    def test_valid_endpoint_facts(self):
        """A STARTTLS session records greeting, EHLO before/after, TLS facts,
        the DER chain and the time of each step."""
        r = rows(self.db, "SELECT status, greeting, ehlo_before, ehlo_after, starttls_offered, "
                 "starttls_code, tls_version, tls_cipher, tls_group, verify_code, chain_len, "
                 "chain_der, t_connect_ms, t_banner_ms, t_ehlo_ms, t_starttls_ms, t_tls_ms, "
                 "t_ehlo2_ms FROM endpoints WHERE scan_id=? AND host='mx-valid.test'",
                 self.sid)
        self.assertEqual(len(r), 1)
        (st, greet, before, after, offered, code, ver, cipher, group, vcode, clen, der,
         *times) = r[0]
        self.assertEqual(st, "ok")
        self.assertTrue(greet.startswith("220 "), greet)
        self.assertIn('"STARTTLS"', before)
        self.assertNotIn('"STARTTLS"', after)
        self.assertEqual((offered, code), (1, 220))
        self.assertTrue(ver.startswith("TLSv1."))
        self.assertTrue(cipher)
        self.assertTrue(group)
        self.assertEqual(vcode, 0)  # chain from the test CA, given with --ca-file
        self.assertGreaterEqual(clen, 1)
        # the blob is the DER chain: openssl can read the leaf from it
        p = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-subject", "-ext",
                            "subjectAltName"], input=der, capture_output=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn(b"mx-valid.test", p.stdout)
        for t in times:
            self.assertIsNotNone(t)
            self.assertGreaterEqual(t, 0)

    def test_observed_verification(self):
        """Bad certificates complete the handshake; the verify result is recorded."""
        got = dict(rows(self.db, "SELECT host, verify_code FROM endpoints WHERE scan_id=? AND "
                        "tls_version IS NOT NULL", self.sid))
        self.assertEqual(got.get("mx-selfsigned.test"), 18)  # self-signed
        self.assertEqual(got.get("mx-expired.test"), 10)     # expired
        self.assertEqual(got.get("mx-valid.test"), 0)

    def test_legacy_tls_observed(self):
        """A TLS 1.0-only server is handshaken with, not refused."""
        self.assertEqual(one(self.db, "SELECT tls_version FROM endpoints WHERE scan_id=? AND "
                             "host='mx-tls10.test'", self.sid), "TLSv1")
        self.assertEqual(one(self.db, "SELECT tls_version FROM endpoints WHERE scan_id=? AND "
                             "host='mx-tls12.test'", self.sid), "TLSv1.2")

    def test_hostile_servers_bounded(self):
        """Hostile servers cost one deadline or less, and say which step failed."""
        got = {h: (st, step, err, t) for h, st, step, err, t in rows(
            self.db, "SELECT host, status, failed_step, error, t_total_ms FROM endpoints "
            "WHERE scan_id=?", self.sid)}
        st, step, err, t = got["mx-tarpit.test"]
        self.assertEqual((st, step), ("failed", "banner"))
        self.assertLess(t, 3000 * 1.5)
        self.assertGreaterEqual(t, 2900)
        for h in ("mx-endless.test", "mx-hugereply.test"):
            self.assertEqual(got[h][:2], ("failed", "ehlo"), h)
            self.assertIn("reply too long", got[h][2])
        self.assertEqual(got["mx-longline.test"][:2], ("failed", "banner"))
        self.assertIn("longer than", got["mx-longline.test"][2])
        self.assertLess(got["mx-longline.test"][3], 3000)
        self.assertEqual(got["mx-pipelined.test"][:2], ("failed", "starttls"))
        self.assertIn("pipelined", got["mx-pipelined.test"][2])
        self.assertEqual(got["mx-banner554.test"][:2], ("failed", "banner"))
        self.assertEqual(got["mx-closed.test"][:2], ("failed", "connect"))
        # no plaintext crossed into TLS: no TLS facts for the pipelining server
        self.assertIsNone(one(self.db, "SELECT tls_version FROM endpoints WHERE scan_id=? AND "
                              "host='mx-pipelined.test'", self.sid))

    def test_garbage_instead_of_tls(self):
        """Garbage instead of a ServerHello fails the session at STARTTLS or TLS, never
        yields TLS facts."""
        r = rows(self.db, "SELECT failed_step, tls_version FROM endpoints WHERE scan_id=? AND "
                 "host='mx-garbage.test'", self.sid)
        self.assertEqual(len(r), 1)
        self.assertIn(r[0][0], ("tls", "starttls"))
        self.assertIsNone(r[0][1])
        have = codes(self.db, "garbage.test")
        self.assertTrue("tls.handshake.failed" in have or "smtp.protocol" in have, have)

    def test_helo_fallback_and_starttls_rejected(self):
        """EHLO refused -> HELO recorded; STARTTLS 454 recorded verbatim."""
        self.assertEqual(one(self.db, "SELECT helo_fallback FROM endpoints WHERE scan_id=? AND "
                             "host='mx-heloonly.test'", self.sid), 1)
        r = rows(self.db, "SELECT starttls_code, starttls_reply FROM endpoints WHERE scan_id=? "
                 "AND host='mx-starttls454.test'", self.sid)[0]
        self.assertEqual(r[0], 454)
        self.assertIn("TLS not available", r[1])

    def test_dnssec_status(self):
        """The AD bit of the validating resolver is stored per answer."""
        self.assertEqual(one(self.db, "SELECT mx_dnssec FROM domains WHERE scan_id=? AND "
                             "domain='valid.test'", self.sid), "secure")
        self.assertEqual(one(self.db, "SELECT mx_dnssec FROM domains WHERE scan_id=? AND "
                             "domain='x.unsigned.test'", self.sid), "insecure")
        self.assertEqual(one(self.db, "SELECT dnssec FROM hosts WHERE scan_id=? AND "
                             "host='mx-valid.test'", self.sid), "secure")
        self.assertEqual(one(self.db, "SELECT mx_rcode FROM domains WHERE scan_id=? AND "
                             "domain='bogus.test'", self.sid), "SERVFAIL")
        self.assertEqual(one(self.db, "SELECT mx_rcode FROM domains WHERE scan_id=? AND "
                             "domain='nomx.test'", self.sid), "NODATA")

    def test_mx_rows(self):
        """mx rows: preferences, implicit MX, CNAME target recorded on the host."""
        r = rows(self.db, "SELECT host, preference FROM mx WHERE scan_id=? AND "
                 "domain='partial.test' ORDER BY preference", self.sid)
        self.assertEqual(r, [("mx-valid.test", 10), ("mx-plain.test", 20)])
        r = rows(self.db, "SELECT host, preference, implicit FROM mx WHERE scan_id=? AND "
                 "domain='implicit.test'", self.sid)
        self.assertEqual(r, [("implicit.test", 0, 1)])
        self.assertEqual(one(self.db, "SELECT cname FROM hosts WHERE scan_id=? AND "
                             "host='mx-alias.test'", self.sid), "mx-valid.test")

    def test_host_cache_single_flight(self):
        """200 domains on one MX host: one hosts row, one session, 200 mx rows."""
        n = one(self.db, "SELECT count(*) FROM mx WHERE scan_id=? AND host='mx-valid.test' "
                "AND domain LIKE 'shared%'", self.sid)
        self.assertEqual(n, 200)
        self.assertEqual(one(self.db, "SELECT count(*) FROM hosts WHERE scan_id=? AND "
                             "host='mx-valid.test'", self.sid), 1)
        self.assertEqual(one(self.db, "SELECT count(*) FROM endpoints WHERE scan_id=? AND "
                             "host='mx-valid.test'", self.sid), 1)
        # sessions made (scans.endpoints) equals endpoint rows: nobody connected twice
        self.assertEqual(one(self.db, "SELECT endpoints FROM scans WHERE id=?", self.sid),
                         one(self.db, "SELECT count(*) FROM endpoints WHERE scan_id=?", self.sid))

    def test_summary_printed(self):
        """The end-of-scan summary names postures, endpoints and elapsed time."""
        self.assertIn("postures:", self.res.out)
        self.assertIn("starttls", self.res.out)
        self.assertIn("endpoints", self.res.out)
        self.assertRegex(self.res.out, r"in [0-9.]+ s")


if __name__ == "__main__":
    unittest.main(verbosity=2)
