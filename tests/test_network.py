"""The network fault proxy on real sockets and a real redis-server, with time windows (Toxiproxy style).

Windows have margins for a busy 2-core machine; every wait is bounded by ``gevent.Timeout``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import gevent
import pytest
import redis
from pydantic import TypeAdapter, ValidationError
from redis.backoff import NoBackoff
from redis.retry import Retry

from chaos.faults.base import CommandRefused, FaultTarget
from chaos.faults.network import Network, NetworkParams
from chaos.profile import parse_profile
from config.loader import ProfileError
from config.proxy import ProxySettings
from targets.builtin_proxy import BuiltinProxy
from targets.embedded import EmbeddedRedis, free_port
from targets.netproxy import NetworkDriver, NetworkProxyError
from targets.proxies import open_proxy

from .helpers import eventually, no_pools, pid_alive

BIG = 262144  # a 256 KB value


@pytest.fixture
def proxy(redis_server: EmbeddedRedis) -> Iterator[NetworkDriver]:
    crashes: list[BaseException] = []
    driver = open_proxy(ProxySettings(), redis_server.host, redis_server.port, on_crash=crashes.append)
    try:
        yield driver
    finally:
        driver.close()
    assert not crashes  # every toxic ends a connection as Toxiproxy does, never by crashing a pump


def through(driver: NetworkDriver, socket_timeout: float = 5.0) -> redis.Redis:
    """A client through the proxy that does not retry, so each fault shows as it is."""
    return redis.Redis(host=driver.host, port=driver.port, socket_timeout=socket_timeout, retry=Retry(NoBackoff(), 0))


def timed(call: Callable[[], Any]) -> float:
    started = time.monotonic()
    call()
    return time.monotonic() - started


def raised_after(exc: type[Exception], call: Callable[[], Any]) -> float:
    started = time.monotonic()
    with gevent.Timeout(10), pytest.raises(exc):
        call()
    return time.monotonic() - started


def rtt(client: redis.Redis, n: int = 3) -> float:
    """The fastest of ``n`` PING round trips (the least disturbed by the machine's other work)."""
    return min(timed(client.ping) for _ in range(n))


def assert_within(what: str, elapsed: float, low: float, high: float) -> None:
    assert low <= elapsed < high, f"{what}: {elapsed:.3f}s, expected [{low}, {high})"


def test_a_client_through_the_proxy_works(proxy: NetworkDriver) -> None:
    client = through(proxy)
    assert client.set("k", "v") and client.get("k") == b"v"
    assert proxy.connections() == 1
    proxy.check()
    client.close()
    eventually("the proxy closed the connection of the closed client", lambda: proxy.connections() == 0, 5)


@pytest.mark.parametrize("stream", ["downstream", "upstream"])
def test_latency_adds_100_ms_to_open_and_new_connections_until_removed(proxy: NetworkDriver, stream: Any) -> None:
    client = through(proxy)
    base = rtt(client)
    proxy.add_toxic("slow", "latency", {"latency": 100, "jitter": 0}, stream)
    assert_within("PING on the open connection", rtt(client) - base, 0.09, 1.0)
    fresh = through(proxy)
    assert_within("PING on a new connection", timed(fresh.ping) - base, 0.09, 1.0)  # its handshake too: >= 1 RTT
    proxy.remove_toxic("slow")
    assert rtt(client) < base + 0.05
    proxy.remove_toxic("slow")  # absent: nothing happens


def test_latency_delays_a_large_reply_once_not_per_chunk(proxy: NetworkDriver) -> None:
    client = through(proxy)
    client.set("big", b"x" * BIG)
    base = min(timed(lambda: client.get("big")) for _ in range(3))
    proxy.add_toxic("slow", "latency", {"latency": 100}, "downstream")
    assert_within("GET 256 KB with 100 ms latency", timed(lambda: client.get("big")) - base, 0.09, 0.6)


def test_blackhole_times_a_client_out_and_a_new_request_works_after_removal(proxy: NetworkDriver) -> None:
    client = through(proxy, socket_timeout=0.5)
    client.ping()
    proxy.add_toxic("hole", "timeout", {"timeout": 0}, "downstream")
    assert_within("PING into the black hole", raised_after(redis.TimeoutError, client.ping), 0.45, 2.0)
    fresh = through(proxy, socket_timeout=0.5)
    assert_within("new connection into the black hole", raised_after(redis.TimeoutError, fresh.ping), 0.45, 2.0)
    proxy.remove_toxic("hole")
    assert client.ping()  # redis-py reconnects: the request after removal goes through
    assert rtt(client) < 0.05


def test_timeout_with_a_delay_closes_open_connections_then(proxy: NetworkDriver) -> None:
    with socket.create_connection((proxy.host, proxy.port), timeout=5) as raw:
        raw.sendall(b"PING\r\n")
        assert raw.recv(64) == b"+PONG\r\n"
        started = time.monotonic()
        proxy.add_toxic("cut", "timeout", {"timeout": 300}, "downstream")
        with gevent.Timeout(5):
            assert raw.recv(64) == b""  # closed by the proxy, without any data sent
        assert_within("close by a 300 ms timeout toxic", time.monotonic() - started, 0.28, 1.5)


def test_reset_peer_resets_at_the_next_data(proxy: NetworkDriver) -> None:
    client = through(proxy)
    client.ping()
    proxy.add_toxic("rst", "reset_peer", {"timeout": 0}, "downstream")
    assert raised_after(redis.ConnectionError, client.ping) < 1.0
    proxy.remove_toxic("rst")
    assert client.ping()
    proxy.add_toxic("rst", "reset_peer", {"timeout": 300}, "upstream")
    assert_within("reset 300 ms after the data", raised_after(redis.ConnectionError, client.ping), 0.28, 1.5)
    proxy.remove_toxic("rst")
    assert client.ping()


def test_reset_peer_sends_rst_not_fin(proxy: NetworkDriver) -> None:
    with socket.create_connection((proxy.host, proxy.port), timeout=5) as raw:
        proxy.add_toxic("rst", "reset_peer", {"timeout": 0}, "downstream")
        raw.sendall(b"PING\r\n")
        with gevent.Timeout(5), pytest.raises(ConnectionResetError):
            raw.recv(64)


def test_bandwidth_slows_a_256_kb_get(proxy: NetworkDriver) -> None:
    client = through(proxy)
    client.set("big", b"x" * BIG)
    assert timed(lambda: client.get("big")) < 0.3
    proxy.add_toxic("thin", "bandwidth", {"rate": 256}, "downstream")  # 262,144 B at 256,000 B/s: 1.02 s
    assert_within("GET 256 KB at 256 KB/s", timed(lambda: client.get("big")), 0.9, 3.0)
    proxy.remove_toxic("thin")
    assert timed(lambda: client.get("big")) < 0.3


@pytest.mark.parametrize(("delay_ms", "low", "high"), [(0, 0.0, 0.3), (500, 0.45, 2.0)])
def test_slow_close_delays_the_close(proxy: NetworkDriver, delay_ms: int, low: float, high: float) -> None:
    if delay_ms:
        proxy.add_toxic("lazy", "slow_close", {"delay": delay_ms}, "downstream")
    with socket.create_connection((proxy.host, proxy.port), timeout=5) as raw:
        raw.sendall(b"QUIT\r\n")  # the server replies, then closes
        with gevent.Timeout(5):
            assert raw.recv(64) == b"+OK\r\n"
            started = time.monotonic()
            assert raw.recv(64) == b""
        assert_within(f"close with slow_close {delay_ms} ms", time.monotonic() - started, low, high)


def test_toxics_are_checked(proxy: NetworkDriver) -> None:
    with pytest.raises(NetworkProxyError, match="unknown toxic 'corrupt'"):
        proxy.add_toxic("x", "corrupt", {"bytes": 1}, "downstream")
    with pytest.raises(NetworkProxyError, match="takes latency, jitter, not rate"):
        proxy.add_toxic("x", "latency", {"rate": 1}, "downstream")
    proxy.add_toxic("x", "latency", {"latency": 1}, "downstream")
    with pytest.raises(NetworkProxyError, match="already exists"):
        proxy.add_toxic("x", "latency", {"latency": 1}, "downstream")


def test_close_stops_the_server_and_every_connection(proxy: NetworkDriver, admin: redis.Redis) -> None:
    assert isinstance(proxy, BuiltinProxy)
    client = through(proxy)
    client.ping()
    proxy.add_toxic("slow", "latency", {"latency": 5000}, "downstream")
    held = gevent.spawn(client.ping)  # a reply held by the latency, in a pump's hands

    def pings() -> int:
        return int(admin.info("commandstats")["cmdstat_ping"]["calls"])

    eventually(
        "the server answered the second PING (the latency holds its reply)",
        lambda: pings() == 2,
        5,
        lambda: f"PINGs answered: {pings()}",
    )
    greenlets = [g for conn in proxy.conns for g in (*conn.pumps,)]
    assert len(greenlets) == 2
    proxy.close()
    assert all(g.dead for g in greenlets)
    assert proxy.connections() == 0
    with gevent.Timeout(5), pytest.raises(redis.ConnectionError):
        held.get()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((proxy.host, proxy.port), timeout=2)
    with pytest.raises(NetworkProxyError, match="closed"):
        proxy.check()


def test_check_names_an_unreachable_upstream() -> None:
    driver = open_proxy(ProxySettings(), "127.0.0.1", free_port())
    try:
        with pytest.raises(NetworkProxyError, match=r"cannot reach its upstream 127\.0\.0\.1:"):
            driver.check()
        with socket.create_connection((driver.host, driver.port), timeout=2) as raw, gevent.Timeout(5):
            assert raw.recv(16) == b""  # the client is closed, as Toxiproxy does
    finally:
        driver.close()


def test_listen_port_is_honoured(redis_server: EmbeddedRedis) -> None:
    port = free_port()
    driver = open_proxy(ProxySettings(listen_port=port), redis_server.host, redis_server.port)
    try:
        assert (driver.host, driver.port) == ("127.0.0.1", port)
        assert through(driver).ping()
        with pytest.raises(NetworkProxyError, match=re.escape(f"cannot listen on 127.0.0.1:{port}")):
            open_proxy(ProxySettings(listen_port=port), redis_server.host, redis_server.port)
    finally:
        driver.close()


# ---- the fault ----------------------------------------------------------------------------------


def fault(params: dict[str, Any], admin: redis.Redis, driver: NetworkDriver | None) -> Network:
    spec = TypeAdapter(NetworkParams).validate_python({"name": "network", **params})
    return Network(spec, FaultTarget(admin, "rr-t-", no_pools, 7, network=driver))


def test_the_fault_injects_and_reverts_a_latency(proxy: NetworkDriver, admin: redis.Redis) -> None:
    client = through(proxy)
    base = rtt(client)
    network = fault({"toxic": "latency", "latency_ms": 100, "duration_s": 2.5}, admin, proxy)
    network.check()
    assert network.hold_s == 2.5
    details = network.inject()
    assert details == {
        "toxic": "latency",
        "type": "latency",
        "attributes": {"latency": 100, "jitter": 0},
        "toxicity": 1.0,
        "stream": "downstream",
        "duration_s": 2.5,
        "proxy": f"127.0.0.1:{proxy.port}",
        "connections": 1,
        "connections_affected": 1,
    }
    assert_within("PING during the fault", rtt(client) - base, 0.09, 1.0)
    through(proxy).ping()  # a connection made while the toxic is on: the toxic acts on it too
    network.revert()
    assert rtt(client) < base + 0.05
    network.revert()  # twice: nothing happens
    assert network.window_closed() == {"connections_affected_total": 2}


def test_the_fault_blackhole_is_a_timeout_toxic_of_0(proxy: NetworkDriver, admin: redis.Redis) -> None:
    client = through(proxy, socket_timeout=0.5)
    client.ping()
    network = fault({"toxic": "blackhole"}, admin, proxy)
    assert network.hold_s == 5.0
    details = network.inject()
    assert (details["type"], details["attributes"]) == ("timeout", {"timeout": 0})
    assert_within("PING into the black hole", raised_after(redis.TimeoutError, client.ping), 0.45, 2.0)
    network.revert()
    assert client.ping()


@pytest.mark.parametrize(
    ("params", "toxic"),
    [
        ({"toxic": "reset_peer", "timeout_ms": 250}, ("reset_peer", {"timeout": 250})),
        ({"toxic": "bandwidth", "rate_kb_per_s": 32, "stream": "upstream"}, ("bandwidth", {"rate": 32})),
        ({"toxic": "slow_close", "delay_ms": 300}, ("slow_close", {"delay": 300})),
        ({"toxic": "latency", "latency_ms": 50, "jitter_ms": 10}, ("latency", {"latency": 50, "jitter": 10})),
    ],
)
def test_the_fault_maps_each_toxic(params: dict[str, Any], toxic: tuple[str, dict[str, int]]) -> None:
    assert fault(params, redis.Redis(), None).params.toxiproxy() == toxic


def test_the_fault_check_needs_a_proxy(admin: redis.Redis) -> None:
    network = fault({"toxic": "latency"}, admin, None)
    with pytest.raises(CommandRefused, match=r"network refused: needs target\.proxy in the profile"):
        network.check()
    with pytest.raises(CommandRefused):
        network.inject()
    network.revert()  # nothing was injected: nothing happens


def test_the_fault_check_names_an_unusable_proxy(admin: redis.Redis) -> None:
    driver = open_proxy(ProxySettings(), "127.0.0.1", free_port())
    try:
        with pytest.raises(CommandRefused, match="network refused: the fault proxy cannot reach its upstream"):
            fault({"toxic": "latency"}, admin, driver).check()
    finally:
        driver.close()


def test_params_are_validated() -> None:
    toxics = TypeAdapter(NetworkParams)
    with pytest.raises(ValidationError, match="duration_s"):
        toxics.validate_python({"name": "network", "toxic": "latency", "duration_s": 0})
    with pytest.raises(ValidationError, match="toxic"):
        toxics.validate_python({"name": "network", "toxic": "timeout"})
    with pytest.raises(ValidationError, match="Extra inputs"):
        toxics.validate_python({"name": "network", "toxic": "latency", "latency": 5})


def test_each_toxic_takes_only_its_own_keys() -> None:
    """A key of another toxic is a profile error, never silently ignored (bandwidth has no latency)."""
    unknown = r"chaos\.faults\[0\]\.latency_ms: unknown key: expected one of .*rate_kb_per_s"
    with pytest.raises(ProfileError, match=unknown):
        parse_profile({"chaos": {"faults": [{"name": "network", "toxic": "bandwidth", "latency_ms": 500}]}}, "p.yaml")
    with pytest.raises(ProfileError, match=r"chaos\.faults\[0\]: needs the key toxic: one of bandwidth, blackhole"):
        parse_profile({"chaos": {"faults": [{"name": "network"}]}}, "p.yaml")
    spec = parse_profile({"chaos": {"faults": [{"name": "network", "toxic": "bandwidth", "rate_kb_per_s": 8}]}}, "p")
    assert spec.chaos.faults[0].toxiproxy() == ("bandwidth", {"rate": 8})  # type: ignore[attr-defined]


# ---- settings and the Toxiproxy driver ------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://10.0.0.5:8474", "10.0.0.5 is not a loopback address"),
        ("https://127.0.0.1:8474", "expected an http:// URL of a loopback address"),
        ("http://toxiproxy:8474", "toxiproxy is not a loopback address"),
        ("http://127.0.0.1:8474/api", "expected an http:// URL"),
        ("http://u:p@127.0.0.1:8474", "no credentials"),
    ],
)
def test_settings_accept_only_a_loopback_http_api(url: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ProxySettings(driver="toxiproxy", toxiproxy_api=url)


def test_settings_defaults() -> None:
    settings = ProxySettings()
    assert (settings.driver, settings.toxiproxy_api, settings.name, settings.listen_port) == (
        "builtin",
        "http://127.0.0.1:8474",
        "redis-resilience",
        0,
    )
    assert ProxySettings(toxiproxy_api="http://localhost:8474/").toxiproxy_api == "http://localhost:8474"
    assert ProxySettings(toxiproxy_api="http://[::1]:8474").toxiproxy_api == "http://[::1]:8474"
    with pytest.raises(ValidationError):
        ProxySettings.model_validate({"listen_port": "8000"})  # strict
    with pytest.raises(ValidationError):
        ProxySettings.model_validate({"name": "a/b"})


def test_an_unreachable_toxiproxy_is_a_clear_error() -> None:
    api = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with pytest.raises(NetworkProxyError, match=re.escape(f"the Toxiproxy API at {api} is unreachable")):
        open_proxy(ProxySettings(driver="toxiproxy", toxiproxy_api=api), "127.0.0.1", 6379)


TOXIPROXY = os.environ.get("TOXIPROXY_SERVER") or shutil.which("toxiproxy-server")


@pytest.fixture
def toxiproxy() -> Iterator[str]:
    """A real Toxiproxy server on a free loopback port; its API URL."""
    if TOXIPROXY is None:
        pytest.skip("toxiproxy-server is not installed (on PATH, or TOXIPROXY_SERVER=/path/to/it)")
    port = free_port()
    process = subprocess.Popen(
        [TOXIPROXY, "-host", "127.0.0.1", "-port", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    api = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                with urllib.request.urlopen(f"{api}/version", timeout=1) as response:
                    assert response.status == 200
                    break
            except OSError:
                assert process.poll() is None and time.monotonic() < deadline, "toxiproxy-server did not start"
                gevent.sleep(0.05)
        yield api
    finally:
        pid = process.pid
        os.kill(pid, signal.SIGTERM)
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            os.kill(pid, signal.SIGKILL)
            process.wait(5)
        assert not pid_alive(pid)


def test_toxiproxy_driver_against_a_real_server(toxiproxy: str, redis_server: EmbeddedRedis) -> None:
    settings = ProxySettings(driver="toxiproxy", toxiproxy_api=toxiproxy, name="rr-test")
    driver = open_proxy(settings, redis_server.host, redis_server.port)
    driver.check()
    assert driver.connections() is None
    client = through(driver, socket_timeout=0.5)
    base = rtt(client)
    driver.add_toxic("slow", "latency", {"latency": 100, "jitter": 0}, "downstream")
    assert_within("PING with 100 ms latency", rtt(client) - base, 0.09, 1.0)
    driver.remove_toxic("slow")
    assert rtt(client) < base + 0.05
    driver.add_toxic("hole", "timeout", {"timeout": 0}, "downstream")
    assert_within("PING into the black hole", raised_after(redis.TimeoutError, client.ping), 0.45, 2.0)
    driver.remove_all()
    assert client.ping()
    driver.add_toxic("rst", "reset_peer", {"timeout": 0}, "downstream")
    raised_after(redis.ConnectionError, client.ping)
    driver.remove_toxic("rst")
    driver.remove_toxic("rst")  # absent: nothing happens
    assert client.ping()
    again = open_proxy(settings, redis_server.host, redis_server.port)  # replaces the proxy of that name
    again.close()
    with urllib.request.urlopen(f"{toxiproxy}/proxies", timeout=5) as response:
        assert "rr-test" not in json.loads(response.read())
    with pytest.raises(NetworkProxyError, match="has no proxy rr-test"):
        driver.check()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((driver.host, driver.port), timeout=2)
