"""A TCP fault proxy between the load generator and Redis: one driver interface, two drivers.

Clients connect to the driver's ``host:port`` instead of Redis; ``network`` faults add and remove
*toxics* on it, named and parametrised as Toxiproxy's (https://github.com/Shopify/toxiproxy#toxics):

- ``latency`` (``latency``, ``jitter`` ms): each chunk is held ``latency`` +/- ``jitter`` ms from
  its arrival, chunks keep their order;
- ``timeout`` (``timeout`` ms): data is dropped; the connection is closed after ``timeout``, or,
  with 0, left open until the toxic is removed (a black hole);
- ``reset_peer`` (``timeout`` ms): at the first data, wait ``timeout`` then reset the connection
  (RST: ``SO_LINGER`` 0);
- ``bandwidth`` (``rate`` KB/s, 1 KB = 1000 bytes as in Toxiproxy): data paced to that rate;
- ``slow_close`` (``delay`` ms): a close is passed on that much later.

``downstream`` toxics act on server -> client data, ``upstream`` ones on client -> server.

Drivers: :class:`BuiltinProxy`, a gevent proxy inside the Locust process (nothing to install), and
:class:`ToxiproxyDriver`, a proxy on a running Toxiproxy server driven through its HTTP API.
"""

from __future__ import annotations

import contextlib
import json
import logging
import random
import socket
import struct
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import deque
from dataclasses import dataclass
from typing import Any, ClassVar, Final, Literal, Protocol

import gevent
import gevent.select
import gevent.socket
from gevent.server import StreamServer

from config.proxy import ProxySettings

logger = logging.getLogger(__name__)

Stream = Literal["downstream", "upstream"]
TOXIC_KINDS: Final = ("latency", "timeout", "reset_peer", "bandwidth", "slow_close")
_ATTRIBUTES: Final = {
    "latency": ("latency", "jitter"),
    "timeout": ("timeout",),
    "reset_peer": ("timeout",),
    "bandwidth": ("rate",),
    "slow_close": ("delay",),
}


class NetworkProxyError(Exception):
    """The fault proxy cannot be opened or driven. ``str()`` is a one-line message."""


class NetworkDriver(Protocol):
    """A fault proxy: clients connect to ``host:port``; toxics change what passes.

    Toxics act on existing connections and on new ones until removed. ``remove_toxic`` of a name
    that is not there does nothing (reverts may run twice).
    """

    host: str
    port: int

    def check(self) -> None:
        """Probe, harmlessly, that the proxy can work; raise :class:`NetworkProxyError` if not."""
        ...

    def add_toxic(self, name: str, kind: str, attributes: dict[str, int | float], stream: Stream) -> None: ...

    def remove_toxic(self, name: str) -> None: ...

    def remove_all(self) -> None: ...

    def close(self) -> None:
        """Remove the proxy: its port refuses connections, its connections are closed."""
        ...

    def connections(self) -> int | None:
        """Client connections open through the proxy now, or None where that is not known cheaply."""
        ...


def open_proxy(settings: ProxySettings, upstream_host: str, upstream_port: int) -> NetworkDriver:
    """Open the proxy ``settings`` ask for, in front of ``upstream_host:upstream_port``."""
    if settings.driver == "toxiproxy":
        return ToxiproxyDriver(settings, upstream_host, upstream_port)
    return BuiltinProxy(upstream_host, upstream_port, settings.listen_port)


def _check_toxic(kind: str, attributes: dict[str, int | float], stream: str) -> None:
    if kind not in _ATTRIBUTES:
        raise NetworkProxyError(f"unknown toxic {kind!r}: expected one of {', '.join(TOXIC_KINDS)}")
    unknown = set(attributes) - set(_ATTRIBUTES[kind])
    if unknown:
        raise NetworkProxyError(f"toxic {kind} takes {', '.join(_ATTRIBUTES[kind])}, not {', '.join(sorted(unknown))}")
    if any(value < 0 for value in attributes.values()):
        raise NetworkProxyError(f"toxic {kind}: attributes must not be negative, got {attributes}")
    if stream not in ("downstream", "upstream"):
        raise NetworkProxyError(f"stream must be downstream or upstream, got {stream!r}")


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
        self.pumps = (gevent.spawn(self.proxy._pump, self, self.client, self.upstream, _UPSTREAM), gevent.getcurrent())
        self.proxy._pump(self, self.upstream, self.client, _DOWNSTREAM)

    def close_after(self, name: str, seconds: float) -> None:
        self.timers[name] = gevent.spawn_later(seconds, self.close)

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
    """

    kind: ClassVar[str] = "builtin"

    def __init__(self, upstream_host: str, upstream_port: int, listen_port: int = 0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.host = "127.0.0.1"
        self.toxics: dict[str, _Toxic] = {}
        self.effects: list[_Effects] = [CLEAN, CLEAN]  # by direction: _UPSTREAM, _DOWNSTREAM
        self.conns: set[_Conn] = set()
        self.server = StreamServer((self.host, listen_port), self._accept)
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
        _check_toxic(kind, attributes, stream)
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


# ---- the Toxiproxy driver ---------------------------------------------------------------------

HTTP_TIMEOUT_S: Final = 5.0


class ToxiproxyDriver:
    """A proxy named ``settings.name`` on a running Toxiproxy server, created here and deleted by :meth:`close`.

    A proxy of that name left by an earlier run is replaced. It listens on 127.0.0.1.
    """

    kind: ClassVar[str] = "toxiproxy"

    def __init__(self, settings: ProxySettings, upstream_host: str, upstream_port: int) -> None:
        self.api = settings.toxiproxy_api
        self.name = settings.name
        self.host = "127.0.0.1"
        upstream = f"[{upstream_host}]:{upstream_port}" if ":" in upstream_host else f"{upstream_host}:{upstream_port}"
        spec = {
            "name": self.name,
            "listen": f"{self.host}:{settings.listen_port}",
            "upstream": upstream,
            "enabled": True,
        }
        status, body = self._call("POST", "/proxies", spec)
        if status == 409:
            logger.warning("toxiproxy: replacing the proxy %s left by an earlier run", self.name)
            self._call("DELETE", self._path())
            status, body = self._call("POST", "/proxies", spec)
        if status != 201:
            raise NetworkProxyError(f"Toxiproxy at {self.api} refused to create proxy {self.name}: {_error(body)}")
        try:
            self.port = int(str(body["listen"]).rsplit(":", 1)[1])
        except (TypeError, KeyError, IndexError, ValueError):
            raise NetworkProxyError(f"Toxiproxy at {self.api} answered without a listen address: {body!r}") from None

    def __repr__(self) -> str:
        return f"ToxiproxyDriver({self.name} at {self.api}, {self.host}:{self.port})"

    def _path(self, *parts: str) -> str:
        return "/".join(("/proxies", *(urllib.parse.quote(p, safe="") for p in (self.name, *parts))))

    def _call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One API call: (status, decoded JSON or None). Only an unreachable API raises."""
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.api + path, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(request, timeout=HTTP_TIMEOUT_S) as response:
                status, raw = response.status, response.read()
        except urllib.error.HTTPError as exc:
            status, raw = exc.code, exc.read()
        except (OSError, urllib.error.URLError) as exc:
            reason = getattr(exc, "reason", exc)
            raise NetworkProxyError(f"the Toxiproxy API at {self.api} is unreachable: {reason}") from None
        try:
            return status, json.loads(raw) if raw else None
        except ValueError:
            return status, raw.decode(errors="replace").strip()

    # ---- NetworkDriver ----

    def check(self) -> None:
        status, body = self._call("GET", self._path())
        if status != 200:
            raise NetworkProxyError(f"Toxiproxy at {self.api} has no proxy {self.name}: {_error(body)}")

    def add_toxic(self, name: str, kind: str, attributes: dict[str, int | float], stream: Stream) -> None:
        _check_toxic(kind, attributes, stream)
        toxic = {"name": name, "type": kind, "stream": stream, "toxicity": 1.0, "attributes": attributes}
        status, body = self._call("POST", self._path("toxics"), toxic)
        if status != 200:
            raise NetworkProxyError(f"Toxiproxy at {self.api} refused toxic {name} ({kind}): {_error(body)}")

    def remove_toxic(self, name: str) -> None:
        status, body = self._call("DELETE", self._path("toxics", name))
        if status not in (200, 204, 404):
            raise NetworkProxyError(f"Toxiproxy at {self.api} did not remove toxic {name}: {_error(body)}")

    def remove_all(self) -> None:
        status, body = self._call("GET", self._path("toxics"))
        if status == 200 and isinstance(body, list):
            for toxic in body:
                self.remove_toxic(str(toxic["name"]))

    def close(self) -> None:
        status, body = self._call("DELETE", self._path())
        if status not in (200, 204, 404):
            raise NetworkProxyError(f"Toxiproxy at {self.api} did not delete proxy {self.name}: {_error(body)}")

    def connections(self) -> int | None:
        return None  # Toxiproxy does not expose a cheap count


def _error(body: Any) -> str:
    if isinstance(body, dict) and "error" in body:
        return f"{body['error']} (status {body.get('status', '?')})"
    return str(body)[:200]
