"""Shared helpers of the integration tests.

The tests run the real mxscan binary ($MXSCAN) against the loopback test
network started by tests/net/testnet ($TESTNET_DIR, via the ctest fixture)
and assert what it stored in SQLite. Nothing here talks to anything but
127.0.0.0/8 and ::1.
"""
import os
import sqlite3
import subprocess
import tempfile
import time

MXSCAN = os.environ.get("MXSCAN", "build/mxscan")
TESTNET_DIR = os.environ.get("TESTNET_DIR", "build/testnet-run")
SRC = os.environ.get("MXSCAN_SRC", os.path.join(os.path.dirname(__file__), "..", ".."))


def testnet_env():
    """Reads the KEY=value lines that testnet wrote."""
    env = {}
    with open(os.path.join(TESTNET_DIR, "env")) as f:
        for line in f:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                k, v = line.split("=", 1)
                env[k] = v.strip('"').strip("'")
    return env


NET = testnet_env()
RESOLVER = NET["RESOLVER"]
CA_FILE = NET["CA_FILE"]


def tmpdb(name="t"):
    d = tempfile.mkdtemp(prefix="mxscan-it-")
    return os.path.join(d, name + ".db")


class Run:
    def __init__(self, rc, out, err, db, elapsed):
        self.rc, self.out, self.err, self.db, self.elapsed = rc, out, err, db, elapsed


def scan(args, db=None, stdin=None, timeout=300, resolver=True, ca=True):
    """Runs `mxscan scan` with the test network's resolver and CA."""
    db = db or tmpdb()
    cmd = [MXSCAN, "scan", "-q", "-o", db]
    if resolver:
        cmd += ["--resolver", RESOLVER]
    if ca:
        cmd += ["--ca-file", CA_FILE]
    cmd += list(args)
    t0 = time.monotonic()
    p = subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout)
    return Run(p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace"),
               db, time.monotonic() - t0)


def rows(db, sql, *params):
    con = sqlite3.connect(db)
    try:
        return con.execute(sql, params).fetchall()
    finally:
        con.close()


def one(db, sql, *params):
    r = rows(db, sql, *params)
    return r[0][0] if r else None


def last_scan(db):
    return one(db, "SELECT max(id) FROM scans")


def postures(db, scan_id=None):
    scan_id = scan_id or last_scan(db)
    return dict(rows(db, "SELECT domain, posture FROM domains WHERE scan_id=?", scan_id))


def codes(db, domain, scan_id=None):
    """Every finding code that concerns a domain (its own and its hosts')."""
    scan_id = scan_id or last_scan(db)
    return sorted({r[0] for r in rows(
        db, "SELECT code FROM domain_findings WHERE scan_id=? AND domain=?", scan_id, domain)})


def fake_log():
    """The JSON lines the scripted fake servers wrote."""
    import json
    path = os.path.join(TESTNET_DIR, "fakesmtp.log")
    out = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    return out
