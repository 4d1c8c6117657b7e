"""The built-in fault proxy: a gevent TCP proxy inside the Locust process (nothing to install),
with Toxiproxy's toxics (see targets/netproxy.py)."""

from __future__ import annotations

import contextlib
import random
import socket
import struct
import time
from collections import deque
from dataclasses import dataclass
from typing import Any, ClassVar, Final

import gevent
import gevent.select
import gevent.socket
from gevent.server import StreamServer

from targets.greenlets import OnCrash, describe, spawn_later_reported, spawn_reported
from targets.netproxy import NetworkProxyError, Stream, check_toxic

# ---- the built-in driver ----------------------------------------------------------------------

CHUNK: Final = 65536  # bytes read at once
HOLD_BYTES: Final = 1 << 20  # at most this much data held back by latency per direction, then backpressure
CONNECT_TIMEOUT_S: Final = 5.0
_UPSTREAM, _DOWNSTREAM = 0, 1
_LINGER_0: Final = struct.pack("ii", 1, 0)


@dataclass(frozen=True)
class _Toxic:
    name: str
    kind: str
    attributes: dict[str, int | float]
    direction: int

    def attr_s(self, key: str) -> float:
        """A time attribute (ms) in seconds; missing means 0, as in Toxiproxy."""
        return float(self.attributes.get(key, 0)) / 1000


@dataclass(frozen=True)
class _Effects:
    """What the toxics of one direction do to its data, folded into one immutable value.

    Several toxics on one direction combine: any ``timeout`` drops, the shortest ``reset_peer``
    resets, latencies and close delays add, the lowest rate paces.
    """

    drop: bool = False
    reset_after_s: float | None = None
    latency_s: float = 0.0
    jitter_s: float = 0.0
    rate_bytes_s: float | None = None
    close_delay_s: float = 0.0

    def delay_s(self) -> float:
        if self.jitter_s:
            return self.latency_s + random.uniform(-self.jitter_s, self.jitter_s)
        return self.latency_s

    @classmethod
    def fold(cls, toxics: list[_Toxic]) -> _Effects:
        if not toxics:
            return CLEAN
        resets = [t.attr_s("timeout") for t in toxics if t.kind == "reset_peer"]
        rates = [float(t.attributes.get("rate", 0)) * 1000 for t in toxics if t.kind == "bandwidth"]
        rates = [r for r in rates if r > 0]  # rate 0: unlimited, as in Toxiproxy
        return cls(
            drop=any(t.kind == "timeout" for t in toxics),
            reset_after_s=min(resets) if resets else None,
            latency_s=sum(t.attr_s("latency") for t in toxics if t.kind == "latency"),
            jitter_s=sum(t.attr_s("jitter") for t in toxics if t.kind == "latency"),
            rate_bytes_s=min(rates) if rates else None,
            close_delay_s=sum(t.attr_s("delay") for t in toxics if t.kind == "slow_close"),
        )


CLEAN: Final = _Effects()


class _Conn:
    """One client connection and its upstream connection, pumped by two greenlets."""

    def __init__(self, proxy: BuiltinProxy, client: socket.socket, upstream: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self.pumps: tuple[gevent.Greenlet, ...] = ()
        self.timers: dict[str, gevent.Greenlet] = {}  # timeout toxics (> 0) closing this connection
        self.closed = False

    def run(self) -> None:
        """Pump both ways: upstream in a new greenlet, downstream in this one (the server's handler,
        which must not return before the connection ends: the server then closes the client socket)."""
        proxy = self.proxy
        upstream = spawn_reported(proxy._crashed, proxy._pump, self, self.client, self.upstream, _UPSTREAM)
        self.pumps = (upstream, gevent.getcurrent())
        proxy._pump(self, self.upstream, self.client, _DOWNSTREAM)

    def close_after(self, name: str, seconds: float) -> None:
        self.timers[name] = spawn_later_reported(seconds, self.proxy._crashed, self.close)

    def reset(self) -> None:
        """Close with RST instead of FIN (discarding unsent data), like Toxiproxy's reset_peer."""
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_0)
        self.close()

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.proxy.conns.discard(self)
        for sock in (self.client, self.upstream):
            with contextlib.suppress(OSError):
                sock.close()
        current = gevent.getcurrent()
        for greenlet in (*self.pumps, *self.timers.values()):
            if greenlet is not current:
                greenlet.kill(block=False)
        self.timers.clear()


class BuiltinProxy:
    """A gevent TCP proxy on 127.0.0.1 with Toxiproxy's toxics, inside this process.

    Each connection has two pump greenlets, one per direction. A pump reads the direction's
    :class:`_Effects` once per chunk (one attribute read and an identity test when no toxic is on),
    so toxics act on open connections as soon as their next data passes. When either side closes,
    both are closed (no half-close: Redis clients do not use it). Sockets are gevent's, whether or
    not the standard library is patched.

    A greenlet of the proxy that crashes (sockets' own errors end a connection quietly: a crash is a
    bug) has closed its connection, so the clients see a reset; the crash is counted in ``crashes``,
    the last one kept in ``last_crash``, and handed to ``on_crash`` (the target session logs it).
    """

    kind: ClassVar[str] = "builtin"

    def __init__(
        self, upstream_host: str, upstream_port: int, listen_port: int = 0, on_crash: OnCrash | None = None
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = "127.0.0.1"
        self.toxics: dict[str, _Toxic] = {}
        self.effects: list[_Effects] = [CLEAN, CLEAN]  # by direction: _UPSTREAM, _DOWNSTREAM
        self.conns: set[_Conn] = set()
        self.crashes = 0
        self.last_crash: str | None = None
        self.on_crash = on_crash
        # Each connection's handler (its downstream pump) is a reported greenlet, like its upstream pump.
        spawn = lambda run, *args: spawn_reported(self._crashed, run, *args)  # noqa: E731
        self.server = StreamServer((self.host, listen_port), self._accept, spawn=spawn)
        try:
            self.server.start()
        except OSError as exc:
            raise NetworkProxyError(f"the fault proxy cannot listen on {self.host}:{listen_port}: {exc}") from None
        self.port: int = self.server.server_port

    def __repr__(self) -> str:
        return f"BuiltinProxy({self.host}:{self.port} -> {self.upstream[0]}:{self.upstream[1]})"

    # ---- NetworkDriver ----

    def check(self) -> None:
        if self.server.closed:
            raise NetworkProxyError(f"the fault proxy on {self.host}:{self.port} is closed")
        try:
            gevent.socket.create_connection(self.upstream, timeout=CONNECT_TIMEOUT_S).close()
        except OSError as exc:
            host, port = self.upstream
            raise NetworkProxyError(f"the fault proxy cannot reach its upstream {host}:{port}: {exc}") from None

    def add_toxic(self, name: str, kind: str, attributes: dict[str, int | float], stream: Stream) -> None:
        check_toxic(kind, attributes, stream)
        if name in self.toxics:
            raise NetworkProxyError(f"toxic {name!r} already exists on the fault proxy")
        toxic = _Toxic(name, kind, dict(attributes), _UPSTREAM if stream == "upstream" else _DOWNSTREAM)
        self.toxics[name] = toxic
        self._refold(toxic.direction)
        if kind == "timeout" and toxic.attr_s("timeout") > 0:
            for conn in list(self.conns):
                conn.close_after(name, toxic.attr_s("timeout"))

    def remove_toxic(self, name: str) -> None:
        toxic = self.toxics.pop(name, None)
        if toxic is None:
            return
        self._refold(toxic.direction)
        for conn in list(self.conns):
            timer = conn.timers.pop(name, None)
            if timer is not None:
                timer.kill(block=False)

    def remove_all(self) -> None:
        for name in list(self.toxics):
            self.remove_toxic(name)

    def close(self) -> None:
        self.server.close()  # the listening socket first: the port refuses from now on
        pumps = [g for conn in self.conns for g in conn.pumps]
        for conn in list(self.conns):
            conn.close()
        gevent.killall(pumps, block=True, timeout=5)
        self.toxics.clear()
        self.effects[:] = [CLEAN, CLEAN]

    def connections(self) -> int | None:
        return len(self.conns)

    # ---- internals ----

    def _crashed(self, exc: BaseException) -> None:
        self.crashes += 1
        self.last_crash = describe(exc)
        if self.on_crash is not None:
            self.on_crash(exc)

    def _refold(self, direction: int) -> None:
        self.effects[direction] = _Effects.fold([t for t in self.toxics.values() if t.direction == direction])

    def _accept(self, client: socket.socket, address: Any) -> None:
        try:
            upstream = gevent.socket.create_connection(self.upstream, timeout=CONNECT_TIMEOUT_S)
        except OSError:
            client.close()  # as Toxiproxy does when the upstream refuses
            return
        upstream.settimeout(None)
        for sock in (client, upstream):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.server.closed:
            client.close()
            upstream.close()
            return
        conn = _Conn(self, client, upstream)
        self.conns.add(conn)
        for toxic in self.toxics.values():
            if toxic.kind == "timeout" and toxic.attr_s("timeout") > 0:
                conn.close_after(toxic.name, toxic.attr_s("timeout"))
        conn.run()

    def _pump(self, conn: _Conn, src: socket.socket, dst: socket.socket, direction: int) -> None:
        """Move data from ``src`` to ``dst`` through the direction's toxics until either side closes."""
        effects = self.effects
        held: deque[tuple[float, bytes]] = deque()  # (due, data): chunks held back by latency, in order
        held_bytes = 0
        paced_until = 0.0  # bandwidth: when the data sent so far has passed at the rate
        try:
            while True:
                if held:  # wait for the first held chunk to be due, reading what arrives meanwhile
                    wait = held[0][0] - time.monotonic()
                    if wait <= 0:
                        data = held.popleft()[1]
                        held_bytes -= len(data)
                        paced_until = self._send(dst, data, direction, paced_until)
                        continue
                    if held_bytes >= HOLD_BYTES:
                        gevent.sleep(wait)
                        continue
                    if not gevent.select.select([src], [], [], wait)[0]:
                        continue
                data = src.recv(CHUNK)
                now = time.monotonic()
                if not data:
                    break
                fx = effects[direction]
                if fx is CLEAN and not held:  # the hot path
                    dst.sendall(data)
                    continue
                if fx.drop:
                    continue
                if fx.reset_after_s is not None:
                    gevent.sleep(fx.reset_after_s)
                    if effects[direction].reset_after_s is not None:
                        conn.reset()
                        return
                delay = fx.delay_s()
                if delay > 0 or held:
                    held.append((now + delay, data))
                    held_bytes += len(data)
                    continue
                paced_until = self._send(dst, data, direction, paced_until)
            while held:  # the source closed: pass on what is held, then the close
                due, data = held.popleft()
                gevent.sleep(max(0.0, due - time.monotonic()))
                paced_until = self._send(dst, data, direction, paced_until)
            close_delay_s = effects[direction].close_delay_s
            if close_delay_s:
                gevent.sleep(close_delay_s)
        except OSError:
            pass  # a side reset or closed (by the other pump, a timer or close())
        finally:
            conn.close()

    def _send(self, dst: socket.socket, data: bytes, direction: int, paced_until: float) -> float:
        """Send, paced by a bandwidth toxic in slices of 100 ms worth (as Toxiproxy)."""
        rate = self.effects[direction].rate_bytes_s
        if rate is None:
            dst.sendall(data)
            return paced_until
        view = memoryview(data)
        while view:
            size = max(1, int(rate / 10))
            part, view = view[:size], view[size:]
            now = time.monotonic()
            paced_until = max(paced_until, now) + len(part) / rate
            gevent.sleep(paced_until - now)
            dst.sendall(part)
            rate = self.effects[direction].rate_bytes_s
            if rate is None:  # removed meanwhile
                dst.sendall(view)
                break
        return paced_until
