"""The built-in fault proxy: a gevent TCP proxy inside the Locust process (nothing to install),
with Toxiproxy's toxics (see targets/netproxy.py)."""

from __future__ import annotations

import contextlib
import socket
import struct
import time
from collections import deque
from typing import Any, ClassVar, Final, Protocol

import gevent
import gevent.select
import gevent.socket
from gevent.server import StreamServer

from targets.greenlets import OnCrash, describe, spawn_later_reported, spawn_reported
from targets.netproxy import NetworkProxyError, Stream, ToxicCounts, check_toxic
from targets.proxy_toxics import CLEAN, DOWNSTREAM, UPSTREAM, ConnToxics, Effects, Toxic
from targets.resp_wire import FrameError, RespWire

# ---- the built-in driver ----------------------------------------------------------------------

CHUNK: Final = 65536  # bytes read at once
HOLD_BYTES: Final = 1 << 20  # at most this much data held back by latency per direction, then backpressure
CONNECT_TIMEOUT_S: Final = 5.0
_UPSTREAM, _DOWNSTREAM = UPSTREAM, DOWNSTREAM
_LINGER_0: Final = struct.pack("ii", 1, 0)


class _Sink(Protocol):
    """Where a pump writes: a socket, or (RESP-aware mode) the client's :class:`~targets.resp_wire.ClientWriter`."""

    def sendall(self, data: bytes | memoryview, /) -> Any: ...


class ProxyConnection:
    """One client connection and its upstream connection, pumped by two greenlets."""

    def __init__(self, proxy: BuiltinProxy, client: socket.socket, upstream: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream = upstream
        self.pumps: tuple[gevent.Greenlet, ...] = ()
        self.timers: dict[str, gevent.Greenlet] = {}  # timeout toxics (> 0) closing this connection
        self.toxics = ConnToxics()  # the toxics acting on this connection (their draw won)
        self.wire = RespWire(client) if proxy.resp_aware else None  # RESP-aware mode: the frames both ways
        self.listener = client.getsockname()[0]  # the proxy's address the client reached (a second one: moved)
        self.closed = False

    def run(self) -> None:
        """Pump both ways: upstream in a new greenlet, downstream in this one (the server's handler,
        which must not return before the connection ends: the server then closes the client socket)."""
        proxy = self.proxy
        upstream = spawn_reported(proxy._crashed, proxy._pump, self, self.client, self.upstream, _UPSTREAM)
        self.pumps = (upstream, gevent.getcurrent())
        proxy._pump(self, self.upstream, self.client if self.wire is None else self.wire.writer, _DOWNSTREAM)

    def apply(self, toxic: Toxic) -> None:
        """``toxic`` acts on this connection from now on (its data, and a timeout's close)."""
        self.toxics.apply(toxic)
        if toxic.kind == "timeout" and toxic.attr_s("timeout") > 0:
            self.timers[toxic.name] = spawn_later_reported(toxic.attr_s("timeout"), self.proxy._crashed, self.close)

    def unapply(self, name: str) -> None:
        if self.toxics.unapply(name):
            timer = self.timers.pop(name, None)
            if timer is not None:
                timer.kill(block=False)

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

    Each connection has two pump greenlets, one per direction. A pump reads its connection's
    :class:`Effects` for the direction once per chunk (one attribute read and an identity test when no
    toxic acts on it), so toxics act on open connections as soon as their next data passes. Whether a
    toxic acts on a connection is drawn with its toxicity, once per connection (see
    targets/proxy_toxics.py); ``counts`` says, per toxic on, how many it acted on and cut. When either side closes,
    both are closed (no half-close: Redis clients do not use it). Sockets are gevent's, whether or
    not the standard library is patched.

    A greenlet of the proxy that crashes (sockets' own errors end a connection quietly: a crash is a
    bug) has closed its connection, so the clients see a reset; the crash is counted in ``crashes``,
    the last one kept in ``last_crash``, and handed to ``on_crash`` (the target session logs it).
    """

    kind: ClassVar[str] = "builtin"

    def __init__(
        self,
        upstream_host: str,
        upstream_port: int,
        listen_port: int = 0,
        on_crash: OnCrash | None = None,
        resp_aware: bool = False,
    ) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = "127.0.0.1"
        self.resp_aware = resp_aware  # read RESP on every connection (targets/resp_wire.py): maintenance faults
        self.also: dict[str, StreamServer] = {}  # more listeners, same port, other loopback addresses (a MOVING's)
        self.arrivals: dict[str, list[float]] = {}  # per listener address: when each connection came (monotonic)
        self.toxics: dict[str, Toxic] = {}
        self.counts: dict[str, ToxicCounts] = {}  # by toxic, while it is on
        self.conns: set[ProxyConnection] = set()
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

    def add_toxic(
        self, name: str, kind: str, attributes: dict[str, int | float], stream: Stream, toxicity: float = 1.0
    ) -> None:
        check_toxic(kind, attributes, stream, toxicity)
        if name in self.toxics:
            raise NetworkProxyError(f"toxic {name!r} already exists on the fault proxy")
        direction = UPSTREAM if stream == "upstream" else DOWNSTREAM
        toxic = Toxic(name, kind, dict(attributes), direction, toxicity)
        self.toxics[name] = toxic
        self.counts[name] = ToxicCounts()
        for conn in list(self.conns):
            self._offer(conn, toxic)

    def remove_toxic(self, name: str) -> None:
        if self.toxics.pop(name, None) is None:
            return
        self.counts.pop(name, None)
        for conn in list(self.conns):
            conn.unapply(name)

    def toxic_counts(self, name: str) -> ToxicCounts | None:
        counts = self.counts.get(name)
        return None if counts is None else ToxicCounts(counts.applied, counts.cut)

    def remove_all(self) -> None:
        for name in list(self.toxics):
            self.remove_toxic(name)

    def close(self) -> None:
        self.server.close()  # the listening sockets first: the port refuses from now on
        for server in self.also.values():
            server.close()
        pumps = [g for conn in self.conns for g in conn.pumps]
        for conn in list(self.conns):
            conn.close()
        gevent.killall(pumps, block=True, timeout=5)
        self.toxics.clear()
        self.counts.clear()

    def connections(self) -> int | None:
        return len(self.conns)

    # ---- RESP-aware mode (maintenance notifications) ----

    def listen_also(self, host: str) -> None:
        """Listen on ``host`` too, at the same port (a MOVING names it: redis-py keeps its port)."""
        if host in self.also:
            return
        spawn = lambda run, *args: spawn_reported(self._crashed, run, *args)  # noqa: E731
        server = StreamServer((host, self.port), self._accept, spawn=spawn)
        try:
            server.start()
        except OSError as exc:
            raise NetworkProxyError(f"the fault proxy cannot listen on {host}:{self.port} too: {exc}") from None
        self.also[host] = server
        self.arrivals[host] = []

    def notified(self, besides: str | None = None) -> list[ProxyConnection]:
        """The connections whose client asked for maintenance notifications (but those through ``besides``)."""
        return [c for c in self.conns if c.wire is not None and c.wire.notifications_on and c.listener != besides]

    def close_through(self, listener: str) -> int:
        """Close the connections through ``listener`` (a listener whose endpoint moved away); how many."""
        conns = [c for c in self.conns if c.listener == listener]
        for conn in conns:
            conn.close()
        return len(conns)

    # ---- internals ----

    def _crashed(self, exc: BaseException) -> None:
        self.crashes += 1
        self.last_crash = describe(exc)
        if self.on_crash is not None:
            self.on_crash(exc)

    def _offer(self, conn: ProxyConnection, toxic: Toxic) -> None:
        """Draw whether ``toxic`` acts on ``conn`` (once: when it is added, or when ``conn`` is made)."""
        if toxic.draw():
            conn.apply(toxic)
            self.counts[toxic.name].applied += 1

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
        conn = ProxyConnection(self, client, upstream)
        self.conns.add(conn)
        arrivals = self.arrivals.get(conn.listener)
        if arrivals is not None:  # a listener of a MOVING's: when each connection moved here
            arrivals.append(time.monotonic())
        for toxic in self.toxics.values():
            self._offer(conn, toxic)
        conn.run()

    def _pump(self, conn: ProxyConnection, src: socket.socket, dst: _Sink, direction: int) -> None:
        """Move data from ``src`` to ``dst`` through the toxics acting on this direction of ``conn`` until
        either side closes, or a ``limit_data`` toxic has passed its bytes."""
        effects = conn.toxics.effects
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
                        paced_until = self._send(effects, dst, data, direction, paced_until)
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
                if conn.wire is not None:  # RESP-aware: whole frames, and the proxy's own answers
                    data = conn.wire.upstream(data) if direction == _UPSTREAM else conn.wire.downstream(data)
                    if not data:
                        continue
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
                if fx.limited:
                    data, spent = conn.toxics.limit(direction, data)
                    if spent:  # what is let through passes (after its latency), then the close
                        self._cut(spent)
                        if data:
                            held.append((now + fx.delay_s(), data))
                        break
                delay = fx.delay_s()
                if delay > 0 or held:
                    held.append((now + delay, data))
                    held_bytes += len(data)
                    continue
                paced_until = self._send(effects, dst, data, direction, paced_until)
            while held:  # the source closed (or a limit was reached): pass on what is held, then the close
                due, data = held.popleft()
                gevent.sleep(max(0.0, due - time.monotonic()))
                paced_until = self._send(effects, dst, data, direction, paced_until)
            close_delay_s = effects[direction].close_delay_s
            if close_delay_s:
                gevent.sleep(close_delay_s)
        except (OSError, FrameError):
            pass  # a side reset or closed (by the other pump, a timer or close()), or not RESP (RESP-aware mode)
        finally:
            conn.close()

    def _cut(self, spent: list[str]) -> None:
        for name in spent:
            counts = self.counts.get(name)
            if counts is not None:
                counts.cut += 1

    def _send(self, effects: list[Effects], dst: _Sink, data: bytes, direction: int, paced_until: float) -> float:
        """Send, in slices if a slicer toxic acts (each slice followed by its delay, as Toxiproxy's: if the
        slicer goes meanwhile, the rest at once), each paced by a bandwidth toxic."""
        slicer = effects[direction].slicer
        if slicer is None:
            return self._paced(effects, dst, data, direction, paced_until)
        view = memoryview(data)
        start = 0
        for end in slicer.bounds(len(view)):
            paced_until = self._paced(effects, dst, view[start:end], direction, paced_until)
            start = end
            gevent.sleep(slicer.delay_s)
            if effects[direction].slicer is None:
                break
        if start < len(view):
            paced_until = self._paced(effects, dst, view[start:], direction, paced_until)
        return paced_until

    def _paced(
        self, effects: list[Effects], dst: _Sink, data: bytes | memoryview, direction: int, paced_until: float
    ) -> float:
        """Send, paced by a bandwidth toxic in slices of 100 ms worth (as Toxiproxy)."""
        rate = effects[direction].rate_bytes_s
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
            rate = effects[direction].rate_bytes_s
            if rate is None:  # removed meanwhile
                dst.sendall(view)
                break
        return paced_until
