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
                   [--prefix 127.25.1.] [--port 25]
Started by tests/net/testnet with setsid; stops on SIGTERM/SIGINT.
Nothing here ever connects anywhere: it only listens on loopback addresses.
"""
import argparse
import asyncio
import json
import os
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
        try:
            await asyncio.wait_for(self.handler(Session(reader, writer, self.name)), MAX_HOLD)
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
            self.log.write({"addr": self.addr, "port": self.port, "behaviour": self.name,
                            "conn": conn, "event": "close", "concurrent": self.concurrent,
                            "max_concurrent": self.max_concurrent, "peer": peer_s,
                            "time": t1, "duration": round(t1 - t0, 3), "outcome": outcome})
        if outcome == "cancelled":
            raise asyncio.CancelledError()


class Session:
    """Line-oriented helpers; every read has a timeout, every write drains."""

    def __init__(self, reader, writer, name):
        self.r = reader
        self.w = writer
        self.host = "mx-%s.test" % name

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
    await s.send(greeting(s))

    async def starttls():
        await s.send("220 go ahead\r\n")
        # Wait for the client's first handshake bytes (ClientHello), so the
        # garbage is not mistaken for bytes pipelined after the 220 ...
        try:
            first = await asyncio.wait_for(s.r.read(65536), 30)
        except asyncio.TimeoutError:
            return True
        if not first:
            return True
        # ... then, instead of a TLS ServerHello: bytes that are no TLS
        # record at all (first byte 'G' = 0x47 is no valid content type).
        junk = (b"GARBAGE-NOT-TLS\x00\xff\x13\x37" * 256)[:4096]
        await s.send(junk)
        await s.wait_eof(60)
        return True

    await s.command_loop(ehlo_list(s, starttls=True), on_starttls=starttls)


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
    args = ap.parse_args()
    if not (args.prefix.startswith("127.") or args.prefix.startswith("::1")):
        sys.exit("fakesmtp: refusing to listen outside loopback: %s" % args.prefix)
    only = set(x for x in args.only.split(",") if x)
    if args.pidfile:
        with open(args.pidfile + ".tmp", "w") as f:
            f.write("%d\n" % os.getpid())
        os.rename(args.pidfile + ".tmp", args.pidfile)

    log = JsonLog(args.log)
    listeners = []
    for octet, name, handler in BEHAVIOURS:
        if only and name not in only:
            continue
        lst = Listener(name, "%s%d" % (args.prefix, octet), args.port, handler, log)
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
                f.write("%s %s:%d\n" % (lst.name, lst.addr, lst.port))
        os.rename(tmp, args.ready)
    print("fakesmtp: listening on %d addresses, pid %d" % (len(listeners), os.getpid()),
          file=sys.stderr, flush=True)

    await stop.wait()
    for lst in listeners:
        lst.server.close()
    # Do not wait for held connections (tarpits): just go.
    print("fakesmtp: stopping", file=sys.stderr, flush=True)


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
