"""The fault proxy's limit_data and slicer toxics and every toxic's toxicity, on real sockets and a real
redis-server (Toxiproxy style: time windows with margins for a busy 2-core machine, every wait bounded).

The Toxiproxy driver's requests go to a small real HTTP server here that answers as Toxiproxy's API
does (no toxiproxy-server binary on this machine: tests/test_network.py drives a real one when found).
"""

from __future__ import annotations

import json
import random
import socket
import statistics
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import gevent
import pytest
import redis
from pydantic import TypeAdapter, ValidationError
from redis.backoff import NoBackoff
from redis.retry import Retry

from chaos.faults.base import FaultTarget
from chaos.faults.network import Network, NetworkParams
from chaos.profile import parse_profile
from config.loader import ProfileError
from config.proxy import ProxySettings
from targets.builtin_proxy import BuiltinProxy
from targets.embedded import EmbeddedRedis
from targets.netproxy import NetworkDriver, NetworkProxyError, ToxicCounts
from targets.proxies import open_proxy
from targets.proxy_toxics import Slicer

from .helpers import eventually, no_pools

BIG = 65536
REPLY = b"$65536\r\n" + b"x" * BIG + b"\r\n"  # GET big, as it comes through the proxy


@pytest.fixture
def proxy(redis_server: EmbeddedRedis) -> Iterator[BuiltinProxy]:
    crashes: list[BaseException] = []
    driver = BuiltinProxy(redis_server.host, redis_server.port, on_crash=crashes.append)
    try:
        yield driver
    finally:
        driver.close()
    assert not crashes


@pytest.fixture
def big(admin: redis.Redis) -> bytes:
    admin.set("big", b"x" * BIG)
    return REPLY


def raw(driver: NetworkDriver) -> socket.socket:
    return socket.create_connection((driver.host, driver.port), timeout=5)


def read_exactly(sock: socket.socket, n: int) -> tuple[bytes, list[int]]:
    got, sizes = bytearray(), []
    with gevent.Timeout(10):
        while len(got) < n:
            data = sock.recv(1 << 20)
            assert data, f"closed after {len(got)} of {n} bytes"
            got += data
            sizes.append(len(data))
    return bytes(got), sizes


def passed(sock: socket.socket) -> bytes:
    got = bytearray()
    with gevent.Timeout(10):
        while data := sock.recv(1 << 20):
            got += data
    return bytes(got)


# ---- limit_data ------------------------------------------------------------------------------------


def test_limit_data_cuts_a_reply_mid_frame_after_exactly_its_bytes(proxy: BuiltinProxy, big: bytes) -> None:
    client = redis.Redis(host=proxy.host, port=proxy.port, socket_timeout=5, retry=Retry(NoBackoff(), 0))
    client.ping()
    proxy.add_toxic("cut", "limit_data", {"bytes": 1000}, "downstream")
    with gevent.Timeout(10), pytest.raises(redis.ConnectionError, match="Connection closed by server"):
        client.get("big")
    with raw(proxy) as sock:  # counted from when the toxic acts on the connection: here, from its start
        sock.sendall(b"GET big\r\n")
        assert passed(sock) == big[:1000]
    with raw(proxy) as sock:
        sock.sendall(b"PING\r\n")
        assert sock.recv(64) == b"+PONG\r\n"  # 7 of the 1000 bytes
        sock.sendall(b"GET big\r\n")
        assert passed(sock) == (b"+PONG\r\n" + big)[7:1000]
    assert proxy.toxic_counts("cut") == ToxicCounts(applied=3, cut=3)
    proxy.remove_toxic("cut")
    assert proxy.toxic_counts("cut") is None
    assert client.get("big") == b"x" * BIG  # redis-py reconnects; nothing is cut any more


def test_limit_data_counts_from_when_it_is_added(proxy: BuiltinProxy, big: bytes) -> None:
    with raw(proxy) as sock:
        sock.sendall(b"GET big\r\n")
        assert read_exactly(sock, len(big))[0] == big  # before the toxic: all of it, not counted
        proxy.add_toxic("cut", "limit_data", {"bytes": 100}, "downstream")
        sock.sendall(b"GET big\r\n")
        assert passed(sock) == big[:100]


def test_limit_data_upstream_keeps_a_long_command_from_the_server(proxy: BuiltinProxy, admin: redis.Redis) -> None:
    proxy.add_toxic("cut", "limit_data", {"bytes": 20}, "upstream")
    with raw(proxy) as sock:
        sock.sendall(b"SET cut " + b"v" * 100 + b"\r\n")
        assert passed(sock) == b""  # closed, no reply
    assert admin.get("cut") is None
    assert proxy.toxic_counts("cut") == ToxicCounts(applied=1, cut=1)


# ---- slicer ----------------------------------------------------------------------------------------


def test_slicer_passes_a_reply_on_in_small_delayed_writes(proxy: BuiltinProxy, big: bytes) -> None:
    average, variation, delay_s = 500, 100, 0.002
    proxy.add_toxic(
        "thin", "slicer", {"average_size": average, "size_variation": variation, "delay": 2000}, "downstream"
    )
    with raw(proxy) as sock:
        started = time.monotonic()
        sock.sendall(b"GET big\r\n")
        data, sizes = read_exactly(sock, len(big))
        elapsed = time.monotonic() - started
    assert data == big
    # A read may hold two slices if this reader was late (a busy machine): nearly all hold one.
    assert sum(size <= average + variation for size in sizes) >= 0.95 * len(sizes), sizes
    assert len(sizes) >= 0.9 * len(big) / (average + variation)
    assert (average - variation) // 2 <= statistics.median(sizes) <= average + variation
    slices = len(sizes)  # at least this many slices, each followed by its delay
    assert 0.8 * slices * delay_s <= elapsed < 2 * slices * delay_s + 0.5, (elapsed, slices)
    proxy.remove_toxic("thin")
    with raw(proxy) as sock:
        started = time.monotonic()
        sock.sendall(b"GET big\r\n")
        assert read_exactly(sock, len(big))[0] == big
        assert time.monotonic() - started < 0.1


def test_slicer_slices_as_toxiproxy() -> None:
    """Toxiproxy's ``chunk``: halves near the middle until a slice is at most average + variation."""
    random.seed(7)
    for size in (1, 99, 100, 101, 1000, 65536):
        for average, variation in ((100, 0), (100, 40), (10, 9), (1, 0)):
            ends = Slicer(average, variation, 0.0).bounds(size)
            sizes = [end - start for start, end in zip([0, *ends], ends, strict=False)]
            assert ends[-1] == size and all(0 < s <= average + variation for s in sizes), (size, average, sizes)
            if size > average + variation:
                assert min(sizes) >= (average + variation + 1) // 2 - variation
    assert Slicer(100, 0, 0.0).bounds(400) == [100, 200, 300, 400]
    assert Slicer(100, 0, 0.0).bounds(150) == [75, 150]


# ---- toxicity --------------------------------------------------------------------------------------


def cut_at_first_reply(driver: NetworkDriver, n: int) -> int:
    """Open ``n`` connections, PING on each: how many were closed (limit_data 0) instead of answered."""
    cut = 0
    for _ in range(n):
        with raw(driver) as sock:
            sock.sendall(b"PING\r\n")
            with gevent.Timeout(5):
                reply = sock.recv(64)
            assert reply in (b"", b"+PONG\r\n")
            cut += reply == b""
    return cut


@pytest.mark.parametrize(("toxicity", "low", "high"), [(0.0, 0, 0), (1.0, 40, 40), (0.5, 5, 35)])
def test_toxicity_is_the_share_of_connections_a_toxic_acts_on(
    proxy: BuiltinProxy, toxicity: float, low: int, high: int
) -> None:
    """Drawn once per connection: for the 20 open when the toxic is added, then for 20 made while it is on.
    At 0.5, fewer than 5 or more than 35 of 40 has a chance below 1e-6."""
    open_ones = [raw(proxy) for _ in range(20)]
    try:
        eventually(
            "the proxy carries the 20 connections",
            lambda: proxy.connections() == 20,
            5,
            lambda: f"{proxy.connections()} of 20",
        )
        proxy.add_toxic("cut", "limit_data", {"bytes": 0}, "downstream", toxicity=toxicity)
        cut = 0
        for sock in open_ones:
            sock.sendall(b"PING\r\n")
            with gevent.Timeout(5):
                cut += sock.recv(64) == b""
    finally:
        for sock in open_ones:
            sock.close()
    cut += cut_at_first_reply(proxy, 20)
    assert low <= cut <= high
    assert proxy.toxic_counts("cut") == ToxicCounts(applied=cut, cut=cut)


def test_toxicity_is_checked(proxy: BuiltinProxy) -> None:
    with pytest.raises(NetworkProxyError, match=r"toxicity must be between 0 and 1, got 1\.5"):
        proxy.add_toxic("x", "latency", {"latency": 1}, "downstream", toxicity=1.5)
    with pytest.raises(NetworkProxyError, match="size_variation below it"):
        proxy.add_toxic("x", "slicer", {"average_size": 10, "size_variation": 10}, "downstream")
    with pytest.raises(NetworkProxyError, match="whole numbers"):
        proxy.add_toxic("x", "limit_data", {"bytes": 1.5}, "downstream")
    assert proxy.toxics == {}


# ---- the fault -------------------------------------------------------------------------------------


def fault(params: dict[str, Any], admin: redis.Redis, driver: NetworkDriver | None) -> Network:
    spec = TypeAdapter(NetworkParams).validate_python({"name": "network", **params})
    return Network(spec, FaultTarget(admin, "rr-t-", no_pools, 7, network=driver))


def test_the_fault_reports_what_limit_data_did(proxy: BuiltinProxy, admin: redis.Redis, big: bytes) -> None:
    client = redis.Redis(host=proxy.host, port=proxy.port, socket_timeout=5, retry=Retry(NoBackoff(), 0))
    client.ping()
    network = fault({"toxic": "limit_data", "bytes": 10, "duration_s": 1}, admin, proxy)
    details = network.inject()
    assert (details["type"], details["attributes"], details["toxicity"]) == ("limit_data", {"bytes": 10}, 1.0)
    assert (details["connections"], details["connections_affected"]) == (1, 1)
    with gevent.Timeout(10), pytest.raises(redis.ConnectionError):
        client.get("big")
    assert cut_at_first_reply(proxy, 2) == 0  # a PONG (7 bytes) passes within 10
    assert network.window_closed() == {"connections_affected_total": 3, "connections_cut": 1}  # still on
    network.revert()
    assert client.get("big") == b"x" * BIG
    assert network.window_closed() == {"connections_affected_total": 3, "connections_cut": 1}


@pytest.mark.parametrize(
    ("params", "toxic"),
    [
        ({"toxic": "limit_data", "bytes": 4096}, ("limit_data", {"bytes": 4096})),
        (
            {"toxic": "slicer", "average_size": 64, "size_variation": 16, "delay_us": 500},
            ("slicer", {"average_size": 64, "size_variation": 16, "delay": 500}),
        ),
        ({"toxic": "slicer", "average_size": 8}, ("slicer", {"average_size": 8, "size_variation": 0, "delay": 0})),
    ],
)
def test_the_fault_maps_the_new_toxics(params: dict[str, Any], toxic: tuple[str, dict[str, int]]) -> None:
    assert fault(params, redis.Redis(), None).params.toxiproxy() == toxic


def test_profiles_are_checked() -> None:
    def faults(entry: dict[str, Any]) -> None:
        parse_profile({"chaos": {"faults": [{"name": "network", **entry}]}}, "p.yaml")

    with pytest.raises(ProfileError, match=r"chaos\.faults\[0\]\.toxicity: .*less than or equal to 1"):
        faults({"toxic": "latency", "toxicity": 1.5})
    with pytest.raises(ProfileError, match=r"chaos\.faults\[0\]\.bytes: .*required"):
        faults({"toxic": "limit_data"})
    with pytest.raises(ProfileError, match=r"size_variation \(64\) must be below average_size \(64\)"):
        faults({"toxic": "slicer", "average_size": 64, "size_variation": 64})
    with pytest.raises(ProfileError, match=r"chaos\.faults\[0\]\.delay_ms: unknown key"):
        faults({"toxic": "slicer", "average_size": 64, "delay_ms": 1})
    assert TypeAdapter(NetworkParams).validate_python({"name": "network", "toxic": "blackhole"}).toxicity == 1.0
    with pytest.raises(ValidationError, match="toxicity"):
        TypeAdapter(NetworkParams).validate_python({"name": "network", "toxic": "blackhole", "toxicity": -0.1})


# ---- the Toxiproxy driver's requests ---------------------------------------------------------------


class FakeToxiproxyApi(BaseHTTPRequestHandler):
    """Answers as Toxiproxy's API does for what the driver asks; records each request."""

    requests: list[tuple[str, str, Any]]

    def _answer(self, status: int, body: Any = None) -> None:
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _record(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.requests.append((self.command, self.path, body))
        return body

    def do_POST(self) -> None:
        body = self._record()
        if self.path == "/proxies":
            self._answer(201, {**body, "listen": "127.0.0.1:41000"})
        else:
            self._answer(200, body)

    def do_DELETE(self) -> None:
        self._record()
        self._answer(204)

    def do_GET(self) -> None:
        self._record()
        self._answer(200, [] if self.path.endswith("/toxics") else {"name": "rr-test"})

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def toxiproxy_api() -> Iterator[tuple[str, list[tuple[str, str, Any]]]]:
    requests: list[tuple[str, str, Any]] = []
    handler = type("Handler", (FakeToxiproxyApi,), {"requests": requests})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", requests
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_the_toxiproxy_driver_sends_toxicity_beside_the_attributes(
    toxiproxy_api: tuple[str, list[tuple[str, str, Any]]],
) -> None:
    api, requests = toxiproxy_api
    driver = open_proxy(ProxySettings(driver="toxiproxy", toxiproxy_api=api, name="rr-test"), "127.0.0.1", 6379)
    network = fault(
        {"toxic": "slicer", "average_size": 64, "size_variation": 16, "delay_us": 500, "toxicity": 0.25},
        redis.Redis(),
        driver,
    )
    details = network.inject()
    assert (details["connections"], details["connections_affected"]) == (None, None)
    network.revert()
    assert network.window_closed() == {}
    driver.add_toxic("cut", "limit_data", {"bytes": 4096}, "upstream", toxicity=0.5)
    assert requests[1:] == [
        (
            "POST",
            "/proxies/rr-test/toxics",
            {
                "name": "rr-slicer-7",
                "type": "slicer",
                "stream": "downstream",
                "toxicity": 0.25,
                "attributes": {"average_size": 64, "size_variation": 16, "delay": 500},
            },
        ),
        ("DELETE", "/proxies/rr-test/toxics/rr-slicer-7", None),
        (
            "POST",
            "/proxies/rr-test/toxics",
            {
                "name": "cut",
                "type": "limit_data",
                "stream": "upstream",
                "toxicity": 0.5,
                "attributes": {"bytes": 4096},
            },
        ),
    ]
    assert requests[0][:2] == ("POST", "/proxies")
