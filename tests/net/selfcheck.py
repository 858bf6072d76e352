#!/usr/bin/env python3
"""Self-test of a running mxscan testnet: `tests/net/testnet check DIR`.

Asserts that every DNS name, Postfix posture and fake server behaves as
documented in tests/net/README.md. Talks only to the testnet's loopback
addresses. Exit 0 when all checks pass.
"""
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
        for d in doms:
            st, fl, an = dig("mx", d)
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


def main():
    load_env(sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.environ["TESTNET_DIR"], "env"))
    t0 = time.time()
    dns_checks()
    postfix_checks()
    fake_checks()
    passed = sum(1 for _, ok in RESULTS if ok)
    failed = len(RESULTS) - passed
    print("selfcheck: %d passed, %d failed (%.1f s)" % (passed, failed, time.time() - t0))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
