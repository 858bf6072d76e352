#!/usr/bin/env python3
"""Scripted misbehaving SMTP servers for mxscan's loopback test network.

One process, one asyncio loop, one listener per address; each address has
exactly one behaviour (see BEHAVIOURS below and tests/net/README.md).
Every connection is logged to the JSON-lines log as
  {"addr": "127.25.1.9", "port": 25, "behaviour": "counter", "conn": 17,
   "event": "connect"|"close", "concurrent": N, "max_concurrent": M,
   "peer": "127.0.0.1:40000", "time": 1700000000.123, ...}
"concurrent" is the number of open connections on that listener right after
the event (so a connect event carries the concurrency including itself).

Usage: fakesmtp.py --log FILE [--ready FILE] [--pidfile FILE] [--only NAME[,NAME]]
                   [--prefix 127.25.1.] [--port 25] [--crowd 127.25.4.1-10]
Started by tests/net/testnet with setsid; stops on SIGTERM/SIGINT.
Nothing here ever connects anywhere: it only listens on loopback addresses.
"""
import argparse
import asyncio
import json
import os
import resource
import signal
import socket
import struct
import sys
import time

# Upper bound on how long any connection is held, whatever the client does.
MAX_HOLD = 600.0
# How long a command read may wait before the server gives up on the client.
READ_TIMEOUT = 300.0
# longline: how long the 1 MB greeting line stays without its CRLF.
LONGLINE_HOLD = float(os.environ.get("FAKESMTP_LONGLINE_HOLD", "300"))
# counter: delay before the greeting so that concurrent sessions overlap and
# the per-IP concurrency limit of the scanner becomes observable.
COUNTER_DELAY = float(os.environ.get("FAKESMTP_COUNTER_DELAY", "0.5"))

LINE_LIMIT = 64 * 1024


class Listener:
    def __init__(self, name, addr, port, handler, log):
        self.name = name
        self.addr = addr
        self.port = port
        self.handler = handler
        self.log = log
        self.concurrent = 0
        self.max_concurrent = 0
        self.total = 0
        self.server = None

    async def start(self):
        self.server = await asyncio.start_server(
            self.on_conn, host=self.addr, port=self.port, reuse_address=True,
            backlog=256, limit=LINE_LIMIT)

    async def on_conn(self, reader, writer):
        self.total += 1
        conn = self.total
        self.concurrent += 1
        self.max_concurrent = max(self.max_concurrent, self.concurrent)
        peer = writer.get_extra_info("peername")
        peer_s = "%s:%s" % (peer[0], peer[1]) if peer else None
        t0 = time.time()
        self.log.write({"addr": self.addr, "port": self.port, "behaviour": self.name,
                        "conn": conn, "event": "connect", "concurrent": self.concurrent,
                        "max_concurrent": self.max_concurrent, "peer": peer_s, "time": t0})
        outcome = "done"
        session = Session(reader, writer, self.name)
        try:
            await asyncio.wait_for(self.handler(session), MAX_HOLD)
        except asyncio.TimeoutError:
            outcome = "timeout"
        except (ConnectionError, BrokenPipeError, OSError) as e:
            outcome = "reset: %s" % e.__class__.__name__
        except asyncio.IncompleteReadError:
            outcome = "eof"
        except asyncio.CancelledError:
            outcome = "cancelled"
        except Exception as e:  # noqa: never let one session kill the server
            outcome = "error: %r" % (e,)
        finally:
            try:
                if not writer.is_closing():
                    writer.close()
            except Exception:
                pass
            self.concurrent -= 1
            t1 = time.time()
            ev = {"addr": self.addr, "port": self.port, "behaviour": self.name,
                  "conn": conn, "event": "close", "concurrent": self.concurrent,
                  "max_concurrent": self.max_concurrent, "peer": peer_s,
                  "time": t1, "duration": round(t1 - t0, 3), "outcome": outcome}
            ev.update(session.info)
            self.log.write(ev)
        if outcome == "cancelled":
            raise asyncio.CancelledError()


class Session:
    """Line-oriented helpers; every read has a timeout, every write drains."""

    def __init__(self, reader, writer, name):
        self.r = reader
        self.w = writer
        self.host = "mx-%s.test" % name
        # Facts a behaviour wants in its close event (bytes sent, ...).
        self.info = {}

    async def send(self, data):
        if isinstance(data, str):
            data = data.encode("ascii")
        self.w.write(data)
        await self.w.drain()

    async def readline(self, timeout=READ_TIMEOUT):
        """One command line without CRLF, or None on EOF / timeout / overlong line."""
        try:
            line = await asyncio.wait_for(self.r.readline(), timeout)
        except (asyncio.TimeoutError, ValueError, asyncio.LimitOverrunError):
            return None
        if not line:
            return None
        return line.rstrip(b"\r\n").decode("latin-1")

    async def wait_eof(self, timeout=MAX_HOLD):
        """Swallow whatever the client sends until it closes (bounded)."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            try:
                data = await asyncio.wait_for(self.r.read(65536), left)
            except asyncio.TimeoutError:
                return
            if not data:
                return

    async def command_loop(self, ehlo_lines, on_starttls=None, ehlo_ok=True, helo_ok=True):
        """A small, normal-looking SMTP command loop. Returns when the session ends."""
        while True:
            line = await self.readline()
            if line is None:
                return
            verb = line.split(" ", 1)[0].upper()
            if verb == "EHLO":
                if ehlo_ok:
                    await self.send(multiline(250, ehlo_lines))
                else:
                    await self.send("502 5.5.2 command not recognized\r\n")
            elif verb == "HELO":
                if helo_ok:
                    await self.send("250 %s\r\n" % self.host)
                else:
                    await self.send("502 5.5.2 command not recognized\r\n")
            elif verb == "STARTTLS" and on_starttls is not None:
                if await on_starttls():
                    return
            elif verb == "QUIT":
                await self.send("221 2.0.0 %s closing connection\r\n" % self.host)
                return
            elif verb in ("NOOP", "RSET"):
                await self.send("250 2.0.0 OK\r\n")
            elif verb in ("MAIL", "RCPT", "DATA", "VRFY", "EXPN", "AUTH"):
                await self.send("550 5.7.1 this is a test server, no mail accepted\r\n")
            else:
                await self.send("502 5.5.2 command not recognized\r\n")


def multiline(code, lines):
    out = []
    for i, text in enumerate(lines):
        sep = " " if i == len(lines) - 1 else "-"
        out.append("%d%s%s\r\n" % (code, sep, text))
    return "".join(out)


def greeting(s):
    return "220 %s ESMTP test server\r\n" % s.host


def ehlo_list(s, starttls):
    lines = [s.host, "PIPELINING", "SIZE 10240000"]
    if starttls:
        lines.append("STARTTLS")
    lines += ["ENHANCEDSTATUSCODES", "8BITMIME"]
    return lines


# ---------------------------------------------------------------- behaviours

async def b_tarpit(s):
    # Accept, never send a byte, hold the connection until the client leaves
    # (or MAX_HOLD).
    await s.wait_eof(MAX_HOLD - 1)


async def b_endless(s):
    await s.send(greeting(s))
    while True:
        line = await s.readline()
        if line is None:
            return
        verb = line.split(" ", 1)[0].upper()
        if verb == "QUIT":
            await s.send("221 2.0.0 bye\r\n")
            return
        if verb in ("EHLO", "HELO"):
            break
        await s.send("502 5.5.2 command not recognized\r\n")
    # An endless continuation: "250-x..." one line every millisecond, never a
    # final "250 " line. Stops when the client goes away (drain raises) or at
    # MAX_HOLD.
    payload = ("250-" + "x" * 60 + "\r\n").encode()
    while True:
        s.w.write(payload)
        await s.w.drain()
        if s.w.is_closing() or s.r.at_eof():
            return
        await asyncio.sleep(0.001)


async def b_longline(s):
    # "220 " + 1 MiB of 'a' with no CRLF, then nothing for LONGLINE_HOLD
    # seconds, then CRLF, then a normal session.
    await s.send(b"220 ")
    chunk = b"a" * 65536
    for _ in range(16):
        await s.send(chunk)
    # Hold, but notice a client that has gone.
    end = time.monotonic() + LONGLINE_HOLD
    while time.monotonic() < end:
        try:
            data = await asyncio.wait_for(s.r.read(4096), max(0.0, end - time.monotonic()))
        except asyncio.TimeoutError:
            break
        if not data:
            return
    await s.send(b"\r\n")
    await s.command_loop(ehlo_list(s, starttls=False))


async def b_garbage(s):
    async def garbage(first):
        # The client's ClientHello has arrived, so the garbage is not mistaken
        # for bytes pipelined after the 220. Instead of a TLS ServerHello:
        # bytes that are no TLS record at all (first byte 'G' = 0x47 is no
        # valid content type).
        junk = (b"GARBAGE-NOT-TLS\x00\xff\x13\x37" * 256)[:4096]
        await s.send(junk)
        await s.wait_eof(60)

    await starttls_then(s, garbage)


async def b_pipelined(s):
    await s.send(greeting(s))

    async def starttls():
        # The 220 and an injected reply in ONE write (STARTTLS response
        # injection, cf. CVE-2011-0411 in reverse).
        await s.send(b"220 go ahead\r\n250 injected\r\n")
        # Whatever the client does next (TLS ClientHello or more commands)
        # is swallowed; no TLS is ever spoken.
        await s.wait_eof(60)
        return True

    await s.command_loop(ehlo_list(s, starttls=True), on_starttls=starttls)


async def b_banner554(s):
    # RFC 5321 4.3.1: after a 554 greeting the server waits for QUIT and
    # answers 503 to anything else.
    await s.send("554 5.7.1 no service here\r\n")
    while True:
        line = await s.readline()
        if line is None:
            return
        if line.split(" ", 1)[0].upper() == "QUIT":
            await s.send("221 2.0.0 bye\r\n")
            return
        await s.send("503 5.5.1 no service here\r\n")


async def b_heloonly(s):
    await s.send(greeting(s))
    await s.command_loop([], ehlo_ok=False, helo_ok=True)


async def b_starttls454(s):
    await s.send(greeting(s))

    async def starttls():
        await s.send("454 4.7.0 TLS not available\r\n")
        return False

    await s.command_loop(ehlo_list(s, starttls=True), on_starttls=starttls)


async def b_counter(s):
    if COUNTER_DELAY > 0:
        await asyncio.sleep(COUNTER_DELAY)
    await s.send(greeting(s))
    await s.command_loop(ehlo_list(s, starttls=False))


_FLAKY = {"n": 0}


async def b_flaky421(s):
    # Every other connection is turned away with 421 (RFC 5321 4.2.5: try
    # again later); the others get a normal session without STARTTLS.
    _FLAKY["n"] += 1
    if _FLAKY["n"] % 2 == 1:
        await s.send("421 4.3.2 %s busy, try again later\r\n" % s.host)
        return
    await s.send(greeting(s))
    await s.command_loop(ehlo_list(s, starttls=False))


async def b_busy450(s):
    # Always a transient refusal at the greeting.
    await s.send("450 4.7.1 %s come back later\r\n" % s.host)


async def b_resetconn(s):
    # Accept and close at once, abortively (RST) so the client sees a reset.
    sock = s.w.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
    s.w.transport.abort()


HUGE_LINES = 200000
_HUGE_BODY = None


def huge_body(host):
    global _HUGE_BODY
    if _HUGE_BODY is None:
        one = ("250-" + "x" * 60 + "\r\n").encode()
        _HUGE_BODY = one * HUGE_LINES + ("250 %s\r\n" % host).encode()
    return _HUGE_BODY


async def b_hugereply(s):
    await s.send(greeting(s))
    while True:
        line = await s.readline()
        if line is None:
            return
        verb = line.split(" ", 1)[0].upper()
        if verb == "QUIT":
            await s.send("221 2.0.0 bye\r\n")
            return
        if verb in ("EHLO", "HELO"):
            body = huge_body(s.host)
            # Sent as fast as the client reads it.
            for i in range(0, len(body), 1 << 20):
                s.w.write(body[i:i + (1 << 20)])
                await s.w.drain()
            continue
        if verb in ("NOOP", "RSET"):
            await s.send("250 2.0.0 OK\r\n")
            continue
        await s.send("502 5.5.2 command not recognized\r\n")


# ------------------------------------------------ hostile servers (issue #5)

# hugeline: the length of the greeting line that never ends.
HUGELINE_BYTES = 10 * 1024 * 1024
# alertstorm: warning alerts sent before the final fatal one.
ALERT_STORM = 10000
# TLS alert descriptions (RFC 8446 6 / RFC 5246 7.2).
ALERT_HANDSHAKE_FAILURE = 40
ALERT_USER_CANCELED = 90
ALERT_UNRECOGNIZED_NAME = 112


def tls_alert(level, desc):
    """One TLS alert record (record version TLS 1.2, as servers send it)."""
    return b"\x15\x03\x03\x00\x02" + bytes([level, desc])


def watch_client(s):
    """A task that swallows what the client sends and ends when it goes
    (EOF, reset or MAX_HOLD): done() says the client is gone."""
    async def watch():
        try:
            await s.wait_eof(MAX_HOLD)
        except (ConnectionError, OSError):
            pass
    return asyncio.ensure_future(watch())


async def starttls_then(s, after_hello):
    """Greets, offers STARTTLS, answers it with 220, waits for the client's
    first handshake bytes (its ClientHello) and hands over to after_hello."""
    await s.send(greeting(s))

    async def starttls():
        await s.send("220 go ahead\r\n")
        try:
            first = await asyncio.wait_for(s.r.read(65536), 30)
        except asyncio.TimeoutError:
            return True
        if not first:
            return True
        # 0x16 = handshake record: what a TLS client starts with.
        s.info["client_hello"] = first[:1] == b"\x16"
        await after_hello(first)
        return True

    await s.command_loop(ehlo_list(s, starttls=True), on_starttls=starttls)


async def b_hugeline(s):
    # "220 " + 10 MiB of 'a' and never a CRLF, then silence until the client
    # leaves. "sent" counts what the kernel took (loopback socket buffers
    # hold megabytes, so it says little about what the client read).
    s.info["sent"] = 0
    await s.send(b"220 ")
    chunk = b"a" * 65536
    for _ in range(HUGELINE_BYTES // len(chunk)):
        s.w.write(chunk)
        await s.w.drain()
        s.info["sent"] += len(chunk)
    await s.wait_eof(MAX_HOLD - 1)


async def b_alertstorm(s):
    # After the ClientHello: ALERT_STORM warning alerts (unrecognized_name,
    # which real servers do send as a warning), then a fatal
    # handshake_failure, then nothing.
    async def storm(first):
        s.info["alerts"] = 0
        one = tls_alert(1, ALERT_UNRECOGNIZED_NAME)
        batch = 1000
        for _ in range(ALERT_STORM // batch):
            s.w.write(one * batch)
            await s.w.drain()
            s.info["alerts"] += batch
        await s.send(tls_alert(2, ALERT_HANDSHAKE_FAILURE))
        s.info["fatal"] = True
        await s.wait_eof(60)

    await starttls_then(s, storm)


async def b_alertendless(s):
    # After the ClientHello: warning alerts (user_canceled, the one warning
    # TLS 1.3 keeps besides close_notify) 100 records a millisecond, never a
    # fatal one, never a ServerHello, until the client goes or MAX_HOLD.
    # (OpenSSL gives up at the 5th warning alert in a row; alertdrip below
    # gets past that.)
    async def endless(first):
        s.info["alerts"] = 0
        gone = watch_client(s)
        try:
            batch = tls_alert(1, ALERT_USER_CANCELED) * 100
            while not gone.done():
                s.w.write(batch)
                await s.w.drain()
                s.info["alerts"] += 100
                await asyncio.sleep(0.001)
        finally:
            gone.cancel()

    await starttls_then(s, endless)


# alertdrip: the ServerHello length announced, and the pace of the drip.
DRIP_HELLO_LEN = 20000   # OpenSSL's largest acceptable ServerHello
DRIP_GROUPS_PER_WRITE = 10
DRIP_PAUSE = 0.01


async def b_alertdrip(s):
    # After the ClientHello: 4 warning alerts, then ONE byte of a ServerHello
    # in a handshake record of its own, again and again. OpenSSL ends a
    # handshake at the 5th warning alert in a row ("too many warn alerts"),
    # but the handshake byte between them resets its count, and a ServerHello
    # of DRIP_HELLO_LEN bytes (the most OpenSSL accepts) takes 20,004 such
    # groups: at 10 groups per 10 ms, a storm of 4,000 alerts a second for
    # over 20 s. Only the client's own deadline ends it sooner.
    async def drip(first):
        s.info["alerts"] = 0
        s.info["hello_bytes"] = 0
        gone = watch_client(s)
        hello = b"\x02" + DRIP_HELLO_LEN.to_bytes(3, "big") + b"\x41" * DRIP_HELLO_LEN
        alerts = tls_alert(1, ALERT_USER_CANCELED) * 4
        try:
            i = 0
            while i < len(hello) and not gone.done():
                out = []
                for b in hello[i:i + DRIP_GROUPS_PER_WRITE]:
                    out.append(alerts + b"\x16\x03\x03\x00\x01" + bytes([b]))
                s.w.write(b"".join(out))
                await s.w.drain()
                i += len(out)
                s.info["alerts"] += 4 * len(out)
                s.info["hello_bytes"] = i
                await asyncio.sleep(DRIP_PAUSE)
            # Whatever the client makes of the completed message: wait for it to go.
            await gone
        finally:
            gone.cancel()

    await starttls_then(s, drip)


async def b_tlsreset(s):
    # After the ClientHello: the first 27 bytes of a 90-byte ServerHello
    # record (record header, handshake header, version, half the random),
    # then an abortive close (SO_LINGER 0: RST) in the middle of the record.
    async def reset(first):
        hello = (b"\x16\x03\x03\x00\x5a"          # handshake record, 90 bytes
                 b"\x02\x00\x00\x56"              # ServerHello, 86 bytes
                 b"\x03\x03" + os.urandom(16))    # legacy_version, half the random
        await s.send(hello)
        s.info["sent"] = len(hello)
        await asyncio.sleep(0.2)  # the client reads it and waits for the rest
        sock = s.w.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        s.w.transport.abort()
        s.info["rst"] = True

    await starttls_then(s, reset)


# teergrube: the pause between two bytes of its endless greeting.
TEERGRUBE_PAUSE = 0.02


async def b_teergrube(s):
    # A greeting that never ends, one byte every 20 ms: "220-please wait"
    # continuation lines, never a final "220 " line (a teergrube: the client
    # always has something to read, and never a whole reply). Until the
    # client goes or MAX_HOLD.
    s.info["sent"] = 0
    gone = watch_client(s)
    try:
        line = b"220-please wait\r\n"
        while not gone.done():
            for i in range(len(line)):
                s.w.write(line[i:i + 1])
                await s.w.drain()
                s.info["sent"] += 1
                await asyncio.sleep(TEERGRUBE_PAUSE)
                if gone.done():
                    break
    finally:
        gone.cancel()


# silent: how often a summary line is written while connections come and go.
SILENT_SUMMARY_EVERY = 0.5
# silent: the listen backlog asked for (the kernel caps it at somaxconn).
SILENT_BACKLOG = 65535


class SilentConn(asyncio.Protocol):
    """One connection of the silent listener: never writes, swallows reads."""

    def __init__(self, lst):
        self.lst = lst
        self.t0 = 0.0
        self.hold = None
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        self.t0 = time.monotonic()
        self.hold = asyncio.get_running_loop().call_later(MAX_HOLD, transport.abort)
        self.lst.opened(self)

    def data_received(self, data):
        self.lst.bytes_in += len(data)

    def eof_received(self):
        return False  # close our side too

    def connection_lost(self, exc):
        if self.hold is not None:
            self.hold.cancel()
        self.lst.closed(self, time.monotonic() - self.t0, exc)


class BlackholeListener:
    """A listener whose TCP handshakes never complete: listen(0), never
    accept, and the accept queue filled by its own connections, so the
    kernel drops every further SYN and a client's connect times out (what a
    firewalled or overloaded host looks like). Nothing is logged: no
    connection is ever made."""

    def __init__(self, name, addr, port, log):
        self.name = name
        self.addr = addr
        self.port = port
        self.log = log
        self.server = self
        self.sock = None
        self.fill = []

    async def start(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((self.addr, self.port))
        self.sock.listen(0)
        for _ in range(3):
            c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            c.setblocking(False)
            try:
                c.connect((self.addr, self.port))
            except (BlockingIOError, OSError):
                pass
            self.fill.append(c)
        await asyncio.sleep(0.2)

    def close(self):
        for c in self.fill:
            c.close()
        if self.sock is not None:
            self.sock.close()


class SilentListener:
    """Accepts and then says nothing, for many thousands of connections at
    once: a bare asyncio.Protocol per connection (no stream, no coroutine),
    and instead of two log lines per connection one "summary" line every
    SILENT_SUMMARY_EVERY seconds in which something happened:
      total, concurrent, max_concurrent      since the server started
      opened, closed, resets, peak, bytes    in this interval (peak: most
                                             connections open at once)
      min_duration, max_duration             of the connections closed in it
    It listens on its own address and on the crowd addresses (--crowd): a
    scanner sends at most 1000 sessions at once to one IP (--per-ip), so
    10,000 sessions at once need ten addresses. The counts are over all of
    them; "addr" is the first.
    """

    def __init__(self, name, addrs, port, log):
        self.name = name
        self.addr = addrs[0]
        self.addrs = addrs
        self.port = port
        self.log = log
        self.concurrent = 0
        self.max_concurrent = 0
        self.total = 0
        self.server = None
        self.task = None
        self._reset_interval()

    def _reset_interval(self):
        self.n_opened = 0
        self.n_closed = 0
        self.n_resets = 0
        self.peak = self.concurrent
        self.bytes_in = 0
        self.dmin = None
        self.dmax = None

    async def start(self):
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(
            lambda: SilentConn(self), host=self.addrs, port=self.port, reuse_address=True,
            backlog=SILENT_BACKLOG)
        self.task = asyncio.ensure_future(self.report())

    def opened(self, conn):
        self.total += 1
        self.n_opened += 1
        self.concurrent += 1
        self.max_concurrent = max(self.max_concurrent, self.concurrent)
        self.peak = max(self.peak, self.concurrent)

    def closed(self, conn, duration, exc):
        self.concurrent -= 1
        self.n_closed += 1
        if exc is not None:
            self.n_resets += 1
        self.dmin = duration if self.dmin is None else min(self.dmin, duration)
        self.dmax = duration if self.dmax is None else max(self.dmax, duration)

    def summary(self):
        if not (self.n_opened or self.n_closed or self.bytes_in):
            return
        r = lambda d: None if d is None else round(d, 3)
        self.log.write({"addr": self.addr, "port": self.port, "behaviour": self.name,
                        "event": "summary", "time": time.time(), "total": self.total,
                        "concurrent": self.concurrent, "max_concurrent": self.max_concurrent,
                        "opened": self.n_opened, "closed": self.n_closed,
                        "resets": self.n_resets, "peak": self.peak, "bytes": self.bytes_in,
                        "min_duration": r(self.dmin), "max_duration": r(self.dmax)})
        self._reset_interval()

    async def report(self):
        while True:
            await asyncio.sleep(SILENT_SUMMARY_EVERY)
            self.summary()


# Last octet of 127.25.1.N -> (name, handler). Order is part of the contract
# with tests/net/testnet's zone and tests/net/README.md.
BEHAVIOURS = [
    (1, "tarpit", b_tarpit),
    (2, "endless", b_endless),
    (3, "longline", b_longline),
    (4, "garbage", b_garbage),
    (5, "pipelined", b_pipelined),
    (6, "banner554", b_banner554),
    (7, "heloonly", b_heloonly),
    (8, "starttls454", b_starttls454),
    (9, "counter", b_counter),
    (10, "resetconn", b_resetconn),
    (11, "hugereply", b_hugereply),
    (12, "hugeline", b_hugeline),
    (13, "alertstorm", b_alertstorm),
    (14, "alertendless", b_alertendless),
    (15, "alertdrip", b_alertdrip),
    (16, "tlsreset", b_tlsreset),
    (17, "silent", None),  # SilentListener: many connections, summary log lines
    (18, "teergrube", b_teergrube),
    (19, "flaky421", b_flaky421),
    (20, "busy450", b_busy450),
    (21, "blackhole", None),  # BlackholeListener: a full accept queue, connects time out
]


class JsonLog:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1)

    def write(self, obj):
        self.f.write(json.dumps(obj, sort_keys=True) + "\n")
        self.f.flush()


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--log", required=True)
    ap.add_argument("--ready")
    ap.add_argument("--pidfile")
    ap.add_argument("--prefix", default="127.25.1.")
    ap.add_argument("--port", type=int, default=25)
    ap.add_argument("--only", default="")
    ap.add_argument("--crowd", default="127.25.4.1-10",
                    help="further addresses of the silent listener: PREFIX.FIRST-LAST, or ''")
    args = ap.parse_args()
    if not (args.prefix.startswith("127.") or args.prefix.startswith("::1")):
        sys.exit("fakesmtp: refusing to listen outside loopback: %s" % args.prefix)
    crowd = []
    if args.crowd:
        net, _, rng = args.crowd.rpartition(".")
        first, _, last = rng.partition("-")
        crowd = ["%s.%d" % (net, i) for i in range(int(first), int(last or first) + 1)]
        if not net.startswith("127."):
            sys.exit("fakesmtp: refusing to listen outside loopback: %s" % args.crowd)
    only = set(x for x in args.only.split(",") if x)
    # The silent listener holds thousands of connections: as many
    # descriptors as the hard limit allows.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ValueError, OSError):
            pass
    if args.pidfile:
        with open(args.pidfile + ".tmp", "w") as f:
            f.write("%d\n" % os.getpid())
        os.rename(args.pidfile + ".tmp", args.pidfile)

    log = JsonLog(args.log)
    listeners = []
    for octet, name, handler in BEHAVIOURS:
        if only and name not in only:
            continue
        addr = "%s%d" % (args.prefix, octet)
        if handler is None and name == "blackhole":
            lst = BlackholeListener(name, addr, args.port, log)
        elif handler is None:
            lst = SilentListener(name, [addr] + crowd, args.port, log)
        else:
            lst = Listener(name, addr, args.port, handler, log)
        try:
            await lst.start()
        except OSError as e:
            sys.exit("fakesmtp: cannot listen on %s:%d (%s): %s"
                     % (lst.addr, args.port, name, e))
        listeners.append(lst)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)

    if args.ready:
        tmp = args.ready + ".tmp"
        with open(tmp, "w") as f:
            for lst in listeners:
                for a in getattr(lst, "addrs", [lst.addr]):
                    f.write("%s %s:%d\n" % (lst.name, a, lst.port))
        os.rename(tmp, args.ready)
    print("fakesmtp: listening on %d addresses, pid %d" % (len(listeners), os.getpid()),
          file=sys.stderr, flush=True)

    await stop.wait()
    for lst in listeners:
        lst.server.close()
        if isinstance(lst, SilentListener):
            lst.summary()
    # Do not wait for held connections (tarpits): just go.
    print("fakesmtp: stopping", file=sys.stderr, flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
