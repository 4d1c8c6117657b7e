"""The witness's probe process: PING one Redis node on a fixed period over a raw socket, and print
every stretch without a timely reply. With ``--publish`` the probe is ``PUBLISH <its name> 1`` to a
channel no one listens to: as cheap, and held by a ``CLIENT PAUSE ... WRITE`` as well as by an
``ALL`` one (a PING passes a WRITE pause), so a write pause is an outage too.

It runs as a child process of its own (``python -m targets.witness_probe``), so that a saturated
gevent hub or the GIL of the load generator cannot delay its clock: plain blocking sockets, no
pool, no retry, ``TCP_NODELAY``, its own ``CLIENT SETNAME``, TLS when the target uses it (``--tls``:
redis-py's ``ssl_*`` arguments as JSON). A password comes in the environment variable
``RR_WITNESS_PASSWORD`` (never on the command line, which ``ps`` shows).

Output, one line each, times on ``time.monotonic()`` (CLOCK_MONOTONIC: the same clock in every
process of this machine, so the parent compares them with its own ``t0``):

- ``READY <t> <command>``: connected, first reply received, probing with ``command``;
- ``DOWN <start>``: an outage began at ``start`` (the send time of the first probe that failed, or
  got no reply within ``--late-ms``) and goes on;
- ``GAP <start> <end>``: no timely reply from ``start`` (the send time of the first probe that
  failed or was late) to ``end`` (the first reply after it).

A connection without a reply for :data:`RECONNECT_S` is replaced (a paused server's held
connections are freed when it resumes).

It stops when its parent closes its stdin (or dies: it reads stdin for EOF between probes).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import select
import socket
import ssl
import sys
import time
from collections.abc import Callable
from typing import Any

READ_CHUNK = 4096
PRIORITY = -10  # the probe's nice value when allowed: a late wake-up of the probe would look like an outage
RECONNECT_S = 1.0  # no reply this long on one connection: it went silent (a black hole), connect again


def command(*parts: str) -> bytes:
    """A RESP array of bulk strings."""
    out = [f"*{len(parts)}\r\n".encode()]
    for part in parts:
        data = part.encode()
        out.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(out)


def tls_context(tls: dict[str, Any]) -> ssl.SSLContext:
    """An SSL context from redis-py's ``ssl_*`` arguments (the target's TLS settings)."""
    context = ssl.create_default_context(cafile=tls.get("ssl_ca_certs"))
    reqs = tls.get("ssl_cert_reqs", "required")
    context.check_hostname = bool(tls.get("ssl_check_hostname", False)) and reqs != "none"
    context.verify_mode = {"none": ssl.CERT_NONE, "optional": ssl.CERT_OPTIONAL}.get(str(reqs), ssl.CERT_REQUIRED)
    if tls.get("ssl_certfile"):
        context.load_cert_chain(tls["ssl_certfile"], tls.get("ssl_keyfile"))
    return context


class Refused(ConnectionError):
    """The server answered with an error."""


class Probe:
    def __init__(
        self, host: str, port: int, name: str, user: str | None, password: str | None, tls: ssl.SSLContext | None
    ) -> None:
        self.host, self.port, self.name = host, port, name
        self.user, self.password, self.tls = user, password, tls
        self.sock: socket.socket | None = None
        self.buffer = b""

    def connect(self, timeout_s: float) -> None:
        sock = socket.create_connection((self.host, self.port), timeout=timeout_s)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.tls is not None:
            sock = self.tls.wrap_socket(sock, server_hostname=self.host)
        self.sock, self.buffer = sock, b""
        if self.password is not None:
            auth = ("AUTH", self.user, self.password) if self.user else ("AUTH", self.password)
            self.call(command(*auth), timeout_s)
        self.call(command("CLIENT", "SETNAME", self.name), timeout_s)

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    def call(
        self, request: bytes, timeout_s: float | None, late_s: float | None = None, on_late: Callable[[], None] = print
    ) -> bytes:
        """Send ``request``, return its one-line reply; OSError (or TimeoutError) when none comes within
        ``timeout_s``. ``on_late`` is called once when no reply came within ``late_s``."""
        assert self.sock is not None
        self.sock.settimeout(late_s if late_s is not None else timeout_s)
        self.sock.sendall(request)
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        while b"\r\n" not in self.buffer:
            try:
                chunk = self.sock.recv(READ_CHUNK)
            except TimeoutError:
                if late_s is None or (deadline is not None and time.monotonic() >= deadline):
                    raise
                on_late()
                late_s = None  # once: wait out the rest of timeout_s
                self.sock.settimeout(None if deadline is None else max(0.001, deadline - time.monotonic()))
                continue
            if not chunk:
                raise ConnectionError("closed by the server")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        if line.startswith(b"-"):
            raise Refused(line[1:].decode(errors="replace"))
        return line


def parent_gone() -> bool:
    """stdin at EOF: the parent closed it, or died."""
    readable, _, _ = select.select([sys.stdin], [], [], 0)
    return bool(readable) and not os.read(sys.stdin.fileno(), 1)


def run(probe: Probe, period_s: float, late_s: float, publish: bool = False) -> None:
    """Probe until the parent goes. A PUBLISH the server refuses (an ACL without it) falls back to PING."""
    ping = command("PUBLISH", probe.name, "1") if publish else command("PING")
    outage_from: float | None = None  # send time of the first probe that failed or was late
    announced = False  # DOWN printed for the outage going on
    ready = False
    next_at = time.monotonic()

    def down(since: float) -> None:
        nonlocal outage_from, announced
        outage_from = since if outage_from is None else outage_from
        if ready and not announced:
            announced = True
            print(f"DOWN {outage_from:.6f}", flush=True)

    while not parent_gone():
        sent = time.monotonic()
        try:
            if probe.sock is None:
                probe.connect(timeout_s=max(late_s, RECONNECT_S))
            # A paused server answers late: the wait is the outage. After RECONNECT_S without a reply
            # (a connection that went silent), a new connection.
            probe.call(ping, RECONNECT_S, late_s, functools.partial(down, sent))
        except OSError as exc:
            if isinstance(exc, Refused) and not ready and publish and probe.sock is not None:
                ping, publish = command("PING"), False  # connected, but PUBLISH is not allowed
                continue
            probe.close()
            down(sent)
            time.sleep(period_s)  # a refused connection answers at once: retry on the period
            continue
        replied = time.monotonic()
        if not ready:
            ready = True
            print(f"READY {replied:.6f} {'PUBLISH' if publish else 'PING'}", flush=True)
        elif outage_from is not None or replied - sent > late_s:
            print(f"GAP {sent if outage_from is None else outage_from:.6f} {replied:.6f}", flush=True)
        outage_from, announced = None, False
        next_at = max(next_at + period_s, replied)
        time.sleep(max(0.0, next_at - time.monotonic()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--name", default="rr-witness")
    parser.add_argument("--user", default=None)
    parser.add_argument("--period-ms", type=float, default=2.0)
    parser.add_argument("--late-ms", type=float, default=10.0, help="a reply later than this is an outage")
    parser.add_argument("--publish", action="store_true", help="probe with PUBLISH (held by a WRITE pause too)")
    parser.add_argument("--tls", default=None, help="redis-py's ssl_* arguments as JSON: connect with TLS")
    args = parser.parse_args()
    with contextlib.suppress(OSError):  # best effort (needs root): woken first on a busy machine
        os.setpriority(os.PRIO_PROCESS, 0, PRIORITY)
    tls = tls_context(json.loads(args.tls)) if args.tls else None
    probe = Probe(args.host, args.port, args.name, args.user, os.environ.get("RR_WITNESS_PASSWORD"), tls)
    try:
        run(probe, args.period_ms / 1000, args.late_ms / 1000, args.publish)
    except KeyboardInterrupt:
        pass
    finally:
        probe.close()


if __name__ == "__main__":
    main()
