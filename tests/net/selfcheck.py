#!/usr/bin/env python3
"""Self-test of a running mxscan testnet: `tests/net/testnet check DIR`.

Asserts that every DNS name, Postfix posture, fake server, MTA-STS policy
host (nginx) and OCSP host (bench_smtpd) behaves as
documented in tests/net/README.md. Talks only to the testnet's loopback
addresses. Exit 0 when all checks pass.
"""
import concurrent.futures
import functools
import hashlib
import json
import os
import socket
import ssl
import subprocess
import sys
import time
import warnings

warnings.filterwarnings("ignore", category=DeprecationWarning)  # TLSv1 on purpose

ENV = {}
RESULTS = []


def load_env(path):
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                k, v = line.split("=", 1)
                ENV[k] = v


def check(name, ok, detail=""):
    RESULTS.append((name, bool(ok)))
    print("%s %s%s" % ("ok  " if ok else "FAIL", name, (" -- " + str(detail)) if (detail and not ok) else ""))


# ------------------------------------------------------------------ DNS
def dig(*args):
    host, port = ENV["RESOLVER"].rsplit(":", 1)
    out = subprocess.run(["dig", "@" + host, "-p", port, "+tries=1", "+time=2"] + list(args),
                         capture_output=True, text=True, timeout=10).stdout
    status = out.split("status: ", 1)[1].split(",", 1)[0] if "status: " in out else "NONE"
    flags = out.split("flags:", 1)[1].split(";", 1)[0].split() if "flags:" in out else []
    answers = [l.split() for l in out.splitlines() if l and not l.startswith(";") and len(l.split()) >= 5]
    return status, flags, answers


def rdata(answers, rtype):
    return sorted(" ".join(a[4:]) for a in answers if a[3] == rtype)


def dns_checks():
    st, fl, an = dig("+dnssec", "mx", "valid.test")
    check("dns valid.test MX is validated (ad)", st == "NOERROR" and "ad" in fl and rdata(an, "MX") == ["10 mx-valid.test."], (st, fl))
    st, fl, an = dig("mx", "bogus.test")
    check("dns bogus.test MX SERVFAIL", st == "SERVFAIL", st)
    st, fl, an = dig("+cd", "mx", "bogus.test")
    check("dns bogus.test MX +cd answers", st == "NOERROR" and rdata(an, "MX") == ["10 mx-valid.test."], st)
    st, fl, an = dig("+dnssec", "mx", "x.unsigned.test")
    check("dns x.unsigned.test MX insecure (no ad)", st == "NOERROR" and "ad" not in fl and rdata(an, "MX") == ["10 mx-valid.test."], (st, fl))
    want = {
        "selfsigned": ["10 mx-selfsigned.test."], "plain": ["10 mx-plain.test."],
        "partial": ["10 mx-valid.test.", "20 mx-plain.test."], "nullmx": ["0 ."],
        "cnamemx": ["10 mx-alias.test."], "iplit": ["10 127.25.0.1."],
        "unresolvable": ["10 mx-nowhere.test."], "closed": ["10 mx-closed.test."],
        "tarpit": ["10 mx-tarpit.test."], "hugereply": ["10 mx-hugereply.test."],
        "perip6": ["10 mx-perip6.test."], "shared1": ["10 mx-valid.test."],
        "shared200": ["10 mx-valid.test."], "v6": ["10 mx-v6.test."],
    }
    for d, mx in want.items():
        st, fl, an = dig("+dnssec", "mx", d + ".test")
        check("dns %s.test MX %s" % (d, mx), st == "NOERROR" and "ad" in fl and rdata(an, "MX") == mx, (st, fl, rdata(an, "MX")))
    for d in ("implicit", "nomx"):
        st, fl, an = dig("+dnssec", "mx", d + ".test")
        check("dns %s.test has no MX (NODATA, ad)" % d, st == "NOERROR" and "ad" in fl and not rdata(an, "MX"), (st, fl))
    st, fl, an = dig("a", "implicit.test")
    check("dns implicit.test A 127.25.0.1", rdata(an, "A") == ["127.25.0.1"])
    st, fl, an = dig("a", "nomx.test")
    check("dns nomx.test has no A", st == "NOERROR" and not rdata(an, "A"))
    st, fl, an = dig("a", "mx-nowhere.test")
    check("dns mx-nowhere.test NXDOMAIN", st == "NXDOMAIN", st)
    st, fl, an = dig("a", "mx-alias.test")
    check("dns mx-alias.test CNAME mx-valid.test", rdata(an, "CNAME") == ["mx-valid.test."] and rdata(an, "A") == ["127.25.0.1"])
    st, fl, an = dig("a", "mx-closed.test")
    check("dns mx-closed.test A 127.25.0.20", rdata(an, "A") == ["127.25.0.20"])
    st, fl, an = dig("aaaa", "mx-v6.test")
    check("dns mx-v6.test AAAA ::1", rdata(an, "AAAA") == ["::1"])
    addrs = {"tarpit": 1, "endless": 2, "longline": 3, "garbage": 4, "pipelined": 5, "banner554": 6,
             "heloonly": 7, "starttls454": 8, "counter": 9, "resetconn": 10, "hugereply": 11}
    for n, i in addrs.items():
        st, fl, an = dig("a", "mx-%s.test" % n)
        check("dns mx-%s.test A 127.25.1.%d" % (n, i), rdata(an, "A") == ["127.25.1.%d" % i])
    for i in range(1, 7):
        st, fl, an = dig("a", "mx-perip%d.test" % i)
        check("dns mx-perip%d.test A 127.25.1.9" % i, rdata(an, "A") == ["127.25.1.9"])
    st, fl, an = dig("a", "example.com")
    check("dns names outside test. are NXDOMAIN locally", st == "NXDOMAIN" and "aa" in fl, (st, fl))
    # Every domain of domains.txt resolves (or fails) without a timeout.
    df = ENV.get("DOMAINS_FILE")
    if df and os.path.exists(df):
        doms = [l.strip() for l in open(df) if l.strip() and not l.startswith("#")]
        bad = []
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:  # one dig costs ~50 ms
            for d, (st, fl, an) in zip(doms, pool.map(lambda d: dig("mx", d), doms)):
                if st not in ("NOERROR", "SERVFAIL") or (st == "SERVFAIL" and d != "bogus.test"):
                    bad.append((d, st))
        check("dns all %d domains.txt names answer" % len(doms), not bad, bad[:5])


# ------------------------------------------------------------------ SMTP helpers
class Conn:
    def __init__(self, addr, port=25, timeout=5):
        self.s = socket.create_connection((addr, port), timeout=timeout)
        self.buf = b""

    def line(self, limit=1 << 20):
        while b"\n" not in self.buf:
            d = self.s.recv(65536)
            if not d:
                raise EOFError("EOF")
            self.buf += d
            if len(self.buf) > limit:
                raise ValueError("line too long")
        l, self.buf = self.buf.split(b"\n", 1)
        return l.rstrip(b"\r").decode("latin-1")

    def reply(self):
        lines = []
        while True:
            l = self.line()
            lines.append(l)
            if l[3:4] != "-":
                return lines

    def cmd(self, c):
        self.s.sendall(c.encode() + b"\r\n")
        return self.reply()

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass


def starttls(addr, host, ctx):
    """EHLO, STARTTLS, handshake. Returns (ehlo_lines, sslsock or exception)."""
    c = Conn(addr)
    try:
        c.reply()
        ehlo = c.cmd("EHLO selfcheck.test")
        r = c.cmd("STARTTLS")
        if not r[0].startswith("220"):
            return ehlo, RuntimeError("STARTTLS answered %r" % r)
        try:
            ss = ctx.wrap_socket(c.s, server_hostname=host)
            ver, cipher, key = ss.version(), ss.cipher()[0], None
            cert = ss.getpeercert(binary_form=True)
            ss.close()
            return ehlo, (ver, cipher, cert)
        except (ssl.SSLError, OSError) as e:
            return ehlo, e
    finally:
        c.close()


def ctx_verify(legacy=False):
    ctx = ssl.create_default_context(cafile=ENV["CA_FILE"])
    if legacy:
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    return ctx


def ctx_noverify(legacy=False, maxv=None):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    if legacy:
        ctx.minimum_version = ssl.TLSVersion.TLSv1
        ctx.set_ciphers("DEFAULT:@SECLEVEL=0")
    if maxv:
        ctx.maximum_version = maxv
    return ctx


def postfix_checks():
    A = lambda k: ENV["ADDR_" + k]
    ehlo, r = starttls(A("VALID"), "mx-valid.test", ctx_verify())
    check("postfix valid: verified TLS for mx-valid.test", isinstance(r, tuple), r)
    for alt in ("mx-alias.test", "implicit.test", "mx-v6.test"):
        ehlo, r = starttls(A("VALID"), alt, ctx_verify())
        check("postfix valid: cert also valid for %s" % alt, isinstance(r, tuple), r)
    ehlo, r = starttls(A("SELFSIGNED"), "mx-selfsigned.test", ctx_verify())
    check("postfix selfsigned: verification fails (self-signed)", isinstance(r, ssl.SSLCertVerificationError) and "self" in str(r).lower(), r)
    ehlo, r = starttls(A("SELFSIGNED"), "mx-selfsigned.test", ctx_noverify())
    check("postfix selfsigned: TLS works unverified", isinstance(r, tuple), r)
    c = Conn(A("PLAIN")); g = c.reply(); e = c.cmd("EHLO selfcheck.test"); c.cmd("QUIT"); c.close()
    check("postfix plain: no STARTTLS offered", g[0].startswith("220 mx-plain.test") and not any("STARTTLS" in l for l in e), e)
    ehlo, r = starttls(A("EXPIRED"), "mx-expired.test", ctx_verify())
    check("postfix expired: verification fails (expired)", isinstance(r, ssl.SSLCertVerificationError) and "expired" in str(r), r)
    ehlo, r = starttls(A("WRONGNAME"), "mx-wrongname.test", ctx_verify())
    check("postfix wrongname: hostname mismatch", isinstance(r, ssl.SSLCertVerificationError) and "mismatch" in str(r).lower(), r)
    ehlo, r = starttls(A("WRONGNAME"), "other.test", ctx_verify())
    check("postfix wrongname: chain valid for other.test", isinstance(r, tuple), r)
    ehlo, r = starttls(A("AUTHPLAIN"), "mx-authplain.test", ctx_verify())
    check("postfix authplain: AUTH before STARTTLS", any(l[4:].startswith("AUTH") for l in ehlo) and isinstance(r, tuple), (ehlo, r))
    ehlo, r = starttls(A("TLS10"), "mx-tls10.test", ctx_verify(legacy=True))
    check("postfix tls10: TLSv1 with SECLEVEL=0", isinstance(r, tuple) and r[0] == "TLSv1", r)
    ctx = ctx_verify(legacy=True); ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ehlo, r = starttls(A("TLS10"), "mx-tls10.test", ctx)
    check("postfix tls10: TLS 1.2+ refused", isinstance(r, Exception), r)
    ehlo, r = starttls(A("TLS10"), "mx-tls10.test", ctx_verify())
    check("postfix tls10: default client (SECLEVEL 1+) fails", isinstance(r, Exception), r)
    ehlo, r = starttls(A("TLS12"), "mx-tls12.test", ctx_verify())
    check("postfix tls12: TLSv1.2", isinstance(r, tuple) and r[0] == "TLSv1.2", r)
    ctx = ctx_verify(); ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ehlo, r = starttls(A("TLS12"), "mx-tls12.test", ctx)
    check("postfix tls12: TLS 1.3 refused", isinstance(r, Exception), r)
    ehlo, r = starttls(A("RSA"), "mx-rsa.test", ctx_verify())
    ok = isinstance(r, tuple)
    if ok:
        der = r[2]
        pem = ssl.DER_cert_to_PEM_cert(der)
        txt = subprocess.run(["openssl", "x509", "-noout", "-text"], input=pem, capture_output=True, text=True).stdout
        ok = "rsaEncryption" in txt and "2048 bit" in txt
    check("postfix rsa: verified, RSA 2048", ok, r)
    ehlo, r = starttls(A("WEAKKEY"), "mx-weakkey.test", ctx_verify())
    check("postfix weakkey: default verification rejects the 1024-bit key", isinstance(r, ssl.SSLError), r)
    ehlo, r = starttls(A("WEAKKEY"), "mx-weakkey.test", ctx_verify(legacy=True))
    check("postfix weakkey: works at SECLEVEL=0", isinstance(r, tuple), r)
    if ENV.get("TESTNET_V6") == "1":
        ehlo, r = starttls("::1", "mx-v6.test", ctx_verify())
        check("postfix v6: verified TLS on [::1]:25 for mx-v6.test", isinstance(r, tuple), r)
    try:
        socket.create_connection((ENV["CLOSED_ADDR"], 25), timeout=3).close()
        check("closed: %s:25 refuses" % ENV["CLOSED_ADDR"], False, "connected")
    except ConnectionRefusedError:
        check("closed: %s:25 refuses" % ENV["CLOSED_ADDR"], True)
    except OSError as e:
        check("closed: %s:25 refuses" % ENV["CLOSED_ADDR"], False, e)


# ------------------------------------------------------------------ fakes
def fake_checks():
    F = lambda k: ENV["ADDR_FAKE_" + k]
    logf = ENV["FAKESMTP_LOG"]
    log_start = os.path.getsize(logf)

    c = Conn(F("TARPIT"), timeout=1.5)
    try:
        c.s.recv(1)
        check("fake tarpit: silent", False, "got data")
    except socket.timeout:
        check("fake tarpit: silent", True)
    c.close()

    c = Conn(F("ENDLESS"))
    c.reply()
    c.s.sendall(b"EHLO selfcheck.test\r\n")
    n, t0, final = 0, time.time(), False
    while time.time() - t0 < 1.5:
        l = c.line()
        n += 1
        if not l.startswith("250-"):
            final = True
            break
    c.close()
    check("fake endless: >=300 continuation lines in 1.5 s, no final line", n >= 300 and not final, n)

    c = Conn(F("LONGLINE"), timeout=3)
    got = b""
    try:
        while len(got) < (1 << 20) + 4:
            d = c.s.recv(65536)
            if not d:
                break
            got += d
    except socket.timeout:
        pass
    c.close()
    check("fake longline: 220 + 1 MiB without CRLF", got.startswith(b"220 aaa") and len(got) == (1 << 20) + 4 and b"\n" not in got, len(got))

    ehlo, r = starttls(F("GARBAGE"), "mx-garbage.test", ctx_noverify())
    check("fake garbage: STARTTLS offered, handshake fails", any("STARTTLS" in l for l in ehlo) and isinstance(r, Exception), r)

    c = Conn(F("PIPELINED"))
    c.reply(); c.cmd("EHLO selfcheck.test")
    c.s.sendall(b"STARTTLS\r\n")
    time.sleep(0.3)
    data = c.buf + c.s.recv(4096)
    c.close()
    check("fake pipelined: '220 go ahead' + '250 injected' together", data == b"220 go ahead\r\n250 injected\r\n", data)

    c = Conn(F("BANNER554")); g = c.reply(); q = c.cmd("QUIT"); c.close()
    check("fake banner554: 554 greeting", g == ["554 5.7.1 no service here"] and q[0].startswith("221"), (g, q))

    c = Conn(F("HELOONLY")); c.reply(); e = c.cmd("EHLO selfcheck.test"); h = c.cmd("HELO selfcheck.test"); c.cmd("QUIT"); c.close()
    check("fake heloonly: EHLO 502, HELO 250", e == ["502 5.5.2 command not recognized"] and h[0].startswith("250"), (e, h))

    c = Conn(F("STARTTLS454")); c.reply(); e = c.cmd("EHLO selfcheck.test"); r = c.cmd("STARTTLS"); c.cmd("QUIT"); c.close()
    check("fake starttls454: STARTTLS offered, answered 454", any("STARTTLS" in l for l in e) and r == ["454 4.7.0 TLS not available"], r)

    conns = [Conn(F("COUNTER")) for _ in range(3)]
    mine = set("%s:%d" % c.s.getsockname()[:2] for c in conns)
    for c in conns:
        g = c.reply(); e = c.cmd("EHLO selfcheck.test"); q = c.cmd("QUIT"); c.close()
    check("fake counter: normal session without STARTTLS", g[0].startswith("220") and not any("STARTTLS" in l for l in e) and q[0].startswith("221"), (g, e))

    # An abortive close right after accept: the client sees ECONNRESET (at
    # connect completion or at the first read) or EOF.
    try:
        c = Conn(F("RESETCONN"))
        try:
            d = c.s.recv(10)
            check("fake resetconn: closed at once", d == b"", d)
        finally:
            c.close()
    except ConnectionResetError:
        check("fake resetconn: closed at once", True)

    c = Conn(F("HUGEREPLY"), timeout=10); c.reply()
    c.s.sendall(b"EHLO selfcheck.test\r\n")
    n = 0
    while True:
        l = c.line()
        n += 1
        if l[3:4] != "-":
            break
    q = c.cmd("QUIT"); c.close()
    check("fake hugereply: 200000 continuation lines + final 250", n == 200001 and l.startswith("250 "), n)

    time.sleep(0.3)
    with open(logf) as f:
        f.seek(log_start)
        events = [json.loads(l) for l in f if l.strip()]
    # Only our own three connections (others may use the testnet meanwhile).
    counter = [e for e in events if e["addr"] == F("COUNTER") and e.get("peer") in mine]
    check("fake log: connect/close events logged", len([e for e in counter if e["event"] == "connect"]) == 3
          and len([e for e in counter if e["event"] == "close"]) == 3
          and max(e["concurrent"] for e in counter) >= 3, counter[-1:] if counter else None)


# ------------------------------------------------------------------ security verdicts
def openssl_out(args, inp=None):
    r = subprocess.run(["openssl"] + args, input=inp, capture_output=True, timeout=15)
    return r.stdout


@functools.lru_cache(maxsize=None)
def spki_sha256(path):
    """SHA-256 of the DER SubjectPublicKeyInfo of a key (.key) or certificate."""
    if path.endswith(".key"):
        der = openssl_out(["pkey", "-in", path, "-pubout", "-outform", "DER"])
    else:
        pub = openssl_out(["x509", "-in", path, "-noout", "-pubkey"])
        der = openssl_out(["pkey", "-pubin", "-outform", "DER"], pub)
    return hashlib.sha256(der).hexdigest() if der else "no-key:" + path


@functools.lru_cache(maxsize=None)
def cert_sha256(path):
    der = openssl_out(["x509", "-in", path, "-outform", "DER"])
    return hashlib.sha256(der).hexdigest() if der else "no-cert:" + path


def tlsa(answers):
    """TLSA rdata as 'U S M hex' (lower case, hex unsplit), sorted."""
    return sorted("%s %s %s %s" % (a[4], a[5], a[6], "".join(a[7:]).lower()) for a in answers if a[3] == "TLSA")


def txt(answers):
    return sorted(" ".join(a[4:]).strip('"') for a in answers if a[3] == "TXT")


def s_client(addr, host, *extra, port=25, starttls=True):
    cmd = ["openssl", "s_client", "-connect", "%s:%d" % (addr, port), "-servername", host,
           "-CAfile", ENV["CA_FILE"]] + (["-starttls", "smtp"] if starttls else []) + list(extra)
    try:
        r = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=15)
        return r.stdout + r.stderr
    except subprocess.TimeoutExpired as e:
        return "timeout: %s" % e


def dane_args(records):
    a = []
    for r in records:
        a += ["-dane_tlsa_rrdata", r]
    return a


SEC_DOMAINS = {  # domain -> (MX host, address or None when the host lives in unsigned.test.)
    "dane": ("mx-dane", "127.25.0.11"), "daneta": ("mx-dane-ta", "127.25.0.12"),
    "danemismatch": ("mx-dane-mismatch", "127.25.0.13"), "daneunusable": ("mx-dane-unusable", "127.25.0.14"),
    "daneexpired": ("mx-dane-expired", "127.25.0.15"), "expiring": ("mx-expiring", "127.25.0.16"),
    "future": ("mx-future", "127.25.0.17"), "sha1": ("mx-sha1", "127.25.0.18"),
    "staticrsa": ("mx-staticrsa", "127.25.0.19"), "dane2": ("mx-dane2", "127.25.0.21"),
    "tlsabogus": ("mx-tlsabogus", "127.25.0.22"), "danenostarttls": ("mx-dane-plain", "127.25.0.3"),
    "ocsp": ("mx-ocsp", "127.25.3.1"), "ocsprevoked": ("mx-ocsprevoked", "127.25.3.2"),
    "weakkey": ("mx-weakkey", "127.25.0.10"),
}
STS_WEB = ["stsenforce", "stswild", "stsmismatch", "ststesting", "stsnone", "stsmalformed", "stsmissing",
           "stsredirect", "stswebpki", "stscert", "ststxtbad", "ststwotxt", "stsbig"]


def sec_dns_checks():
    C = ENV["CERTS_DIR"]
    crt = lambda n: os.path.join(C, n + ".crt")
    for d, (h, addr) in SEC_DOMAINS.items():
        st, fl, an = dig("+dnssec", "mx", d + ".test")
        check("dns %s.test MX %s.test (ad)" % (d, h), st == "NOERROR" and "ad" in fl and rdata(an, "MX") == ["10 %s.test." % h], (st, fl, rdata(an, "MX")))
        st, fl, an = dig("+dnssec", "a", h + ".test")
        check("dns %s.test A %s (ad)" % (h, addr), st == "NOERROR" and "ad" in fl and rdata(an, "A") == [addr], (st, fl, rdata(an, "A")))
    st, fl, an = dig("+dnssec", "mx", "daneinsecure.test")
    check("dns daneinsecure.test MX mx-dane.unsigned.test (ad)", st == "NOERROR" and "ad" in fl and rdata(an, "MX") == ["10 mx-dane.unsigned.test."], (st, fl))
    st, fl, an = dig("+dnssec", "a", "mx-dane.unsigned.test")
    check("dns mx-dane.unsigned.test A 127.25.0.23 insecure (no ad)", st == "NOERROR" and "ad" not in fl and rdata(an, "A") == ["127.25.0.23"], (st, fl))
    st, fl, an = dig("+dnssec", "tlsa", "_25._tcp.mx-dane.unsigned.test")
    check("dns mx-dane.unsigned.test TLSA 3 1 1 (its key) insecure (no ad)", st == "NOERROR" and "ad" not in fl
          and tlsa(an) == ["3 1 1 " + spki_sha256(crt("mx-dane-unsigned"))], (st, fl, tlsa(an)))

    want = {
        "mx-dane": ["3 1 1 " + spki_sha256(crt("mx-dane"))],
        "mx-dane2": sorted(["3 1 1 " + spki_sha256(crt("mx-dane2")), "3 1 1 " + spki_sha256(os.path.join(C, "mx-dane2-next.key"))]),
        "mx-dane-ta": sorted(["2 1 1 " + spki_sha256(ENV["INTERMEDIATE_CA_FILE"]), "3 1 1 " + spki_sha256(crt("mx-dane-ta"))]),
        "mx-dane-unusable": sorted(["1 1 1 " + spki_sha256(crt("mx-dane-unusable")), "0 0 1 " + cert_sha256(ENV["CA_FILE"])]),
        "mx-dane-expired": ["3 1 1 " + spki_sha256(crt("mx-dane-expired"))],
        "mx-dane-plain": ["3 1 1 " + spki_sha256(crt("mx-dane"))],
    }
    for h, recs in want.items():
        st, fl, an = dig("+dnssec", "tlsa", "_25._tcp.%s.test" % h)
        check("dns _25._tcp.%s.test TLSA %s (ad)" % (h, [r[:5] for r in recs]), st == "NOERROR" and "ad" in fl and tlsa(an) == recs, (st, fl, tlsa(an), recs))
    st, fl, an = dig("+dnssec", "tlsa", "_25._tcp.mx-dane-mismatch.test")
    mine = set(spki_sha256(os.path.join(C, n + ".key")) for n in (
        "mx-dane-mismatch", "mx-dane", "mx-dane2", "mx-dane2-next", "mx-dane-ta", "mx-dane-unusable",
        "mx-dane-expired", "mx-dane-unsigned", "mx-tlsabogus", "mx-valid"))
    recs = tlsa(an)
    check("dns _25._tcp.mx-dane-mismatch.test TLSA 3 1 1 of no key of ours (ad)", st == "NOERROR" and "ad" in fl and len(recs) == 1
          and recs[0].startswith("3 1 1 ") and len(recs[0]) == 6 + 64 and recs[0][6:] not in mine, (st, fl, recs))
    st, fl, an = dig("+dnssec", "tlsa", "_25._tcp.mx-tlsabogus.test")
    check("dns _25._tcp.mx-tlsabogus.test TLSA SERVFAIL (bogus RRSIG)", st == "SERVFAIL", st)
    st, fl, an = dig("+dnssec", "+cd", "tlsa", "_25._tcp.mx-tlsabogus.test")
    check("dns _25._tcp.mx-tlsabogus.test TLSA +cd answers its key", st == "NOERROR" and tlsa(an) == ["3 1 1 " + spki_sha256(crt("mx-tlsabogus"))], (st, tlsa(an)))
    # Hosts that must stay without TLSA (NODATA or NXDOMAIN, validated).
    for h in ("mx-valid", "mx-selfsigned", "mx-plain", "mx-expiring", "mx-sha1", "mx-staticrsa"):
        st, fl, an = dig("+dnssec", "tlsa", "_25._tcp.%s.test" % h)
        check("dns _25._tcp.%s.test has no TLSA (ad)" % h, st in ("NOERROR", "NXDOMAIN") and "ad" in fl and not tlsa(an), (st, fl, tlsa(an)))

    # MTA-STS and TLSRPT records.
    for d in STS_WEB:
        st, fl, an = dig("+dnssec", "mx", d + ".test")
        mx = "mx-selfsigned.test." if d == "stscert" else "mx-valid.test."
        check("dns %s.test MX %s (ad)" % (d, mx), st == "NOERROR" and "ad" in fl and rdata(an, "MX") == ["10 " + mx], (st, fl, rdata(an, "MX")))
        st, fl, an = dig("a", "mta-sts.%s.test" % d)
        check("dns mta-sts.%s.test A %s" % (d, ENV["NGINX_ADDR"]), rdata(an, "A") == [ENV["NGINX_ADDR"]], rdata(an, "A"))
        st, fl, an = dig("+dnssec", "txt", "_mta-sts.%s.test" % d)
        t = txt(an)
        if d == "ststxtbad":
            ok = t == ["v=STSv1;"]
        elif d == "ststwotxt":
            ok = len(t) == 2 and all(x.startswith("v=STSv1; id=") for x in t)
        else:
            ok = len(t) == 1 and t[0].startswith("v=STSv1; id=") and t[0][12:].isalnum() and len(t[0][12:]) <= 32
        check("dns _mta-sts.%s.test TXT %s (ad)" % (d, t), ok and "ad" in fl, (st, fl, t))
    for d in ("valid", "shared1", "x.unsigned"):
        st, fl, an = dig("txt", "_mta-sts.%s.test" % d)
        check("dns _mta-sts.%s.test has no TXT" % d, st in ("NOERROR", "NXDOMAIN") and not txt(an), (st, txt(an)))
    rpt = {
        "stsenforce": ["v=TLSRPTv1; rua=mailto:tlsrpt@stsenforce.test"],
        "rptgood": ["v=TLSRPTv1; rua=mailto:tlsrpt@rptgood.test,https://report.rptgood.test/tlsrpt"],
        "rptbad": ["v=TLSRPTv1; rua=ftp://x.test/"],
        "rpttwo": ["v=TLSRPTv1; rua=mailto:a@rpttwo.test", "v=TLSRPTv1; rua=mailto:b@rpttwo.test"],
    }
    for d, recs in rpt.items():
        st, fl, an = dig("+dnssec", "txt", "_smtp._tls.%s.test" % d)
        check("dns _smtp._tls.%s.test TXT (%d record%s, ad)" % (d, len(recs), "s" if len(recs) > 1 else ""), "ad" in fl and txt(an) == recs, (st, fl, txt(an)))
    for d in ("rptgood", "rptbad", "rpttwo"):
        st, fl, an = dig("+dnssec", "mx", d + ".test")
        check("dns %s.test MX mx-valid.test (ad)" % d, "ad" in fl and rdata(an, "MX") == ["10 mx-valid.test."], (st, fl))
    st, fl, an = dig("txt", "_smtp._tls.valid.test")
    check("dns _smtp._tls.valid.test has no TXT", not txt(an), txt(an))


def peer_cert_text(der):
    return subprocess.run(["openssl", "x509", "-noout", "-text"], input=ssl.DER_cert_to_PEM_cert(der),
                          capture_output=True, text=True).stdout


def sec_smtp_checks():
    A = lambda k: ENV["ADDR_" + k]
    C = ENV["CERTS_DIR"]
    crt = lambda n: os.path.join(C, n + ".crt")
    for key, host in (("DANE", "mx-dane.test"), ("DANE2", "mx-dane2.test"), ("DANE_TA", "mx-dane-ta.test"),
                      ("DANE_MISMATCH", "mx-dane-mismatch.test"), ("DANE_UNUSABLE", "mx-dane-unusable.test"),
                      ("TLSABOGUS", "mx-tlsabogus.test"), ("DANE_UNSIGNED", "mx-dane.unsigned.test")):
        ehlo, r = starttls(A(key), host, ctx_verify())
        check("postfix %s: STARTTLS, PKIX-valid for %s" % (key.lower(), host), isinstance(r, tuple), r)

    def dane(addr, host, recs):
        return s_client(addr, host, "-dane_tlsa_domain", host, *dane_args(recs))
    out = dane(A("DANE"), "mx-dane.test", ["3 1 1 " + spki_sha256(crt("mx-dane"))])
    check("dane mx-dane.test: DANE-EE 3 1 1 matches", "Verification: OK" in out and "matched EE certificate" in out, out[-300:])
    out = dane(A("DANE2"), "mx-dane2.test", ["3 1 1 " + spki_sha256(os.path.join(C, "mx-dane2-next.key"))])
    check("dane mx-dane2.test: the next key alone does not match (not in use yet)", "no matching DANE TLSA records" in out, out[-300:])
    out = dane(A("DANE2"), "mx-dane2.test", ["3 1 1 " + spki_sha256(crt("mx-dane2"))])
    check("dane mx-dane2.test: the current key matches", "Verification: OK" in out and "matched EE certificate" in out, out[-300:])
    out = dane(A("DANE_UNUSABLE"), "mx-dane-unusable.test", ["1 1 1 " + spki_sha256(crt("mx-dane-unusable"))])
    check("dane mx-dane-unusable.test: its 1 1 1 record would match as PKIX-EE", "Verification: OK" in out and "matched EE certificate" in out, out[-300:])
    out = dane(A("TLSABOGUS"), "mx-tlsabogus.test", ["3 1 1 " + spki_sha256(crt("mx-tlsabogus"))])
    check("dane mx-tlsabogus.test: the (bogus) record would match", "Verification: OK" in out and "matched EE certificate" in out, out[-300:])
    out = dane(A("DANE_TA"), "mx-dane-ta.test", ["2 1 1 " + spki_sha256(ENV["INTERMEDIATE_CA_FILE"])])
    check("dane mx-dane-ta.test: DANE-TA 2 1 1 matches the intermediate", "Verification: OK" in out and "matched TA certificate" in out, out[-300:])
    out = s_client(A("DANE_TA"), "mx-dane-ta.test", "-showcerts")
    check("postfix dane_ta: sends leaf + intermediate", out.count("-----BEGIN CERTIFICATE-----") == 2
          and " 1 s:CN = mxscan Test Intermediate CA" in out and "Verify return code: 0 (ok)" in out, out[-300:])
    out = dane(A("DANE_MISMATCH"), "mx-dane-mismatch.test", ["3 1 1 " + "00" * 32])
    check("dane mx-dane-mismatch.test: a foreign 3 1 1 does not match", "no matching DANE TLSA records" in out, out[-300:])
    out = dane(A("DANE_EXPIRED"), "mx-dane-expired.test", ["3 1 1 " + spki_sha256(crt("mx-dane-expired"))])
    check("dane mx-dane-expired.test: DANE-EE matches despite the expired cert", "Verification: OK" in out and "matched EE certificate" in out, out[-300:])
    ehlo, r = starttls(A("DANE_EXPIRED"), "mx-dane-expired.test", ctx_verify())
    check("postfix dane_expired: PKIX says expired", isinstance(r, ssl.SSLCertVerificationError) and "expired" in str(r), r)
    c = Conn(A("PLAIN")); c.reply(); e = c.cmd("EHLO selfcheck.test"); c.cmd("QUIT"); c.close()
    check("postfix mx-dane-plain.test (= plain): no STARTTLS", not any("STARTTLS" in l for l in e), e)

    ehlo, r = starttls(A("EXPIRING"), "mx-expiring.test", ctx_verify())
    ok = isinstance(r, tuple)
    if ok:
        na = [l for l in peer_cert_text(r[2]).splitlines() if "Not After" in l]
        left = (ssl.cert_time_to_seconds(na[0].split(":", 1)[1].strip()) - time.time()) / 86400 if na else -1
        ok = 4 < left < 6
        r = "%.2f days left" % left
    check("postfix expiring: PKIX-valid, expires in 4-6 days", ok, r)
    ehlo, r = starttls(A("FUTURE"), "mx-future.test", ctx_verify())
    check("postfix future: PKIX says not yet valid", isinstance(r, ssl.SSLCertVerificationError) and "not yet valid" in str(r), r)
    ehlo, r = starttls(A("SHA1"), "mx-sha1.test", ctx_verify())
    check("postfix sha1: default verification rejects the SHA-1 signature", isinstance(r, ssl.SSLCertVerificationError) and "too weak" in str(r), r)
    ehlo, r = starttls(A("SHA1"), "mx-sha1.test", ctx_verify(legacy=True))
    check("postfix sha1: valid at SECLEVEL=0, signed ecdsa-with-SHA1", isinstance(r, tuple) and "ecdsa-with-SHA1" in peer_cert_text(r[2]), r)
    ehlo, r = starttls(A("STATICRSA"), "mx-staticrsa.test", ctx_verify())
    ok = isinstance(r, tuple) and r[0] == "TLSv1.2" and r[1] in ("AES256-GCM-SHA384", "AES128-GCM-SHA256")
    if ok:
        v = subprocess.run(["openssl", "ciphers", "-v", r[1]], capture_output=True, text=True).stdout
        txt_ = peer_cert_text(r[2])
        ok = "Kx=RSA " in v and "rsaEncryption" in txt_ and "2048 bit" in txt_
    check("postfix staticrsa: TLSv1.2, static RSA key exchange (Kx=RSA), RSA 2048", ok, r)
    ctx = ctx_verify(); ctx.set_ciphers("ECDHE:DHE:!aNULL")
    ehlo, r = starttls(A("STATICRSA"), "mx-staticrsa.test", ctx)
    check("postfix staticrsa: no forward-secret TLS 1.2 suite", isinstance(r, Exception), r)
    ctx = ctx_verify(); ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ehlo, r = starttls(A("STATICRSA"), "mx-staticrsa.test", ctx)
    check("postfix staticrsa: TLS 1.3 refused", isinstance(r, Exception), r)

    if ENV.get("TESTNET_OCSP") == "1":
        for key, host, status in (("OCSP", "mx-ocsp.test", "Cert Status: good"),
                                  ("OCSP_REVOKED", "mx-ocsprevoked.test", "Cert Status: revoked")):
            out = s_client(A(key), host, "-status")
            check("ocsp %s: staple '%s', chain PKIX-valid" % (host, status), "OCSP Response Status: successful" in out
                  and status in out and "Verify return code: 0 (ok)" in out, out[-400:])
        out = s_client(A("OCSP"), "mx-ocsp.test")
        check("ocsp mx-ocsp.test: no staple when not asked", "OCSP Response Status" not in out and "Verify return code: 0 (ok)" in out, out[-300:])
        der = os.path.join(ENV["OCSP_DIR"], "mx-ocsp.der")
        out = subprocess.run(["openssl", "ocsp", "-respin", der, "-issuer", ENV["CA_FILE"], "-cert", crt("mx-ocsp"),
                              "-CAfile", ENV["CA_FILE"]], capture_output=True, text=True).stdout + ""
        check("ocsp mx-ocsp.der verifies against the test CA", ": good" in out, out)
    else:
        print("skip ocsp checks (TESTNET_OCSP=0: no bench_smtpd with --ocsp)")


def https_get(host, path="/.well-known/mta-sts.txt", verify=True):
    """GET https://host/path from nginx (NGINX_ADDR, SNI host). Returns (status, headers, body) or an exception."""
    if verify:
        ctx = ssl.create_default_context(cafile=ENV["CA_FILE"])
    else:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
    try:
        s = socket.create_connection((ENV["NGINX_ADDR"], int(ENV.get("NGINX_PORT", "443"))), timeout=5)
        ss = ctx.wrap_socket(s, server_hostname=host)
        ss.sendall(("GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (path, host)).encode())
        data = b""
        while True:
            d = ss.recv(65536)
            if not d:
                break
            data += d
        ss.close()
    except (ssl.SSLError, OSError) as e:
        return e
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for l in lines[1:]:
        k, _, v = l.partition(":")
        headers[k.strip().lower()] = v.strip()
    return int(lines[0].split()[1]), headers, body


def policy(*lines):
    return "".join(l + "\r\n" for l in lines).encode()


def sts_web_checks():
    enforce = policy("version: STSv1", "mode: enforce", "mx: mx-valid.test", "max_age: 86400")
    want = {
        "stsenforce": enforce,
        "stswild": policy("version: STSv1", "mode: enforce", "mx: *.test", "max_age: 86400"),
        "stsmismatch": policy("version: STSv1", "mode: enforce", "mx: mx-other.test", "max_age: 86400"),
        "ststesting": policy("version: STSv1", "mode: testing", "mx: mx-valid.test", "max_age: 86400"),
        "stsnone": policy("version: STSv1", "mode: none", "max_age: 86400"),
        "stsmalformed": policy("version: STSv9", "mode: maybe"),
        "stscert": policy("version: STSv1", "mode: enforce", "mx: mx-selfsigned.test", "max_age: 86400"),
        "ststxtbad": enforce, "ststwotxt": enforce,
    }
    for d, body in want.items():
        r = https_get("mta-sts.%s.test" % d)
        check("nginx mta-sts.%s.test: 200 text/plain, policy as intended" % d, isinstance(r, tuple) and r[0] == 200
              and r[1].get("content-type", "").startswith("text/plain") and r[2] == body, r if not isinstance(r, tuple) else r[:2])
    r = https_get("mta-sts.stsmissing.test")
    check("nginx mta-sts.stsmissing.test: 404", isinstance(r, tuple) and r[0] == 404, r if not isinstance(r, tuple) else r[:2])
    r = https_get("mta-sts.stsredirect.test")
    check("nginx mta-sts.stsredirect.test: 301 to mta-sts.stsenforce.test", isinstance(r, tuple) and r[0] == 301
          and r[1].get("location") == "https://mta-sts.stsenforce.test/.well-known/mta-sts.txt", r if not isinstance(r, tuple) else r[:2])
    r = https_get("mta-sts.stswebpki.test")
    check("nginx mta-sts.stswebpki.test: certificate not trusted (self-signed)", isinstance(r, ssl.SSLCertVerificationError) and "self" in str(r).lower(), r)
    r = https_get("mta-sts.stswebpki.test", verify=False)
    check("nginx mta-sts.stswebpki.test: unverified, serves an enforce policy", isinstance(r, tuple) and r[0] == 200 and r[2] == enforce,
          r if not isinstance(r, tuple) else r[:2])
    r = https_get("mta-sts.stsbig.test")
    check("nginx mta-sts.stsbig.test: 200, body over 64 KiB starting with an enforce policy", isinstance(r, tuple) and r[0] == 200
          and len(r[2]) > 65536 and r[2].startswith(enforce), r if not isinstance(r, tuple) else (r[0], len(r[2])))
    r = https_get("mta-sts.stsenforce.test", "/other")
    check("nginx: other paths are 404", isinstance(r, tuple) and r[0] == 404, r if not isinstance(r, tuple) else r[:2])


def main():
    load_env(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.environ["TESTNET_DIR"], "env"))
    t0 = time.time()
    dns_checks()
    sec_dns_checks()
    postfix_checks()
    sec_smtp_checks()
    sts_web_checks()
    fake_checks()
    passed = sum(1 for _, ok in RESULTS if ok)
    failed = len(RESULTS) - passed
    print("selfcheck: %d passed, %d failed (%.1f s)" % (passed, failed, time.time() - t0))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
