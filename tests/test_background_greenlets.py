"""Background greenlets report their crash and are ended by their owner: the helper, the fault proxy's
pumps, the client pause's keeper. A crash is an exception thrown into the real greenlet (``kill`` with
an exception), or a real connection cut under it; nothing stands in for the code under test."""

from __future__ import annotations

from collections.abc import Iterator

import gevent
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from chaos.faults import FaultTarget, build_fault
from chaos.faults.client_pause import ClientPauseParams, PauseChainBroken
from targets.builtin_proxy import BuiltinProxy
from targets.embedded import EmbeddedRedis
from targets.greenlets import spawn_later_reported, spawn_reported, stop

from .helpers import eventually, no_pools


def test_a_crash_reaches_the_callback_and_a_kill_does_not() -> None:
    crashes: list[BaseException] = []

    def crash() -> None:
        raise ValueError("a bug")

    crashed = spawn_reported(crashes.append, crash)
    killed = spawn_reported(crashes.append, gevent.sleep, 30)
    later = spawn_later_reported(0.05, crashes.append, crash)
    gevent.sleep(0.01)  # both have started
    assert stop(killed, timeout_s=2) and killed.dead  # a kill ends it, and is no crash
    later.join(timeout=2)
    assert stop(crashed) and stop(later)  # when stop() returns, the crash callbacks have run
    assert [str(exc) for exc in crashes] == ["a bug", "a bug"]
    assert stop(None)


@pytest.fixture
def proxy(redis_server: EmbeddedRedis) -> Iterator[tuple[BuiltinProxy, list[BaseException]]]:
    crashes: list[BaseException] = []
    driver = BuiltinProxy(redis_server.host, redis_server.port, on_crash=crashes.append)
    try:
        yield driver, crashes
    finally:
        driver.close()


@pytest.mark.parametrize("pump", [0, 1], ids=["upstream-pump", "downstream-pump-in-the-server-handler"])
def test_a_crashed_proxy_pump_is_counted_and_closes_only_its_connection(
    proxy: tuple[BuiltinProxy, list[BaseException]], pump: int
) -> None:
    driver, crashes = proxy
    client = redis.Redis(host=driver.host, port=driver.port, socket_timeout=2, retry=Retry(NoBackoff(), 0))
    assert client.ping()
    [conn] = driver.conns
    other = redis.Redis(host=driver.host, port=driver.port, socket_timeout=2, retry=Retry(NoBackoff(), 0))
    assert other.ping() and len(driver.conns) == 2
    greenlet = conn.pumps[pump]
    greenlet.kill(RuntimeError("injected crash"), block=True)
    assert stop(greenlet)
    assert driver.crashes == 1 and driver.last_crash == "RuntimeError: injected crash"
    assert [str(exc) for exc in crashes] == ["injected crash"]
    assert conn.closed and conn not in driver.conns  # its connection was closed, not left hanging
    assert client.ping() and other.ping()  # the client reconnects; the other connection goes on
    assert len(driver.conns) == 2 and driver.crashes == 1
    client.close()
    other.close()


def test_a_pause_chain_cut_short_is_the_revert_error_and_its_keeper_is_joined(redis_server: EmbeddedRedis) -> None:
    driver = BuiltinProxy(redis_server.host, redis_server.port)
    admin = redis.Redis(host=driver.host, port=driver.port, socket_timeout=2, retry=Retry(NoBackoff(), 0))
    try:
        target = FaultTarget(admin, "rr-t-", no_pools)
        fault = build_fault(ClientPauseParams(name="client_pause", pause_ms=5000), target)
        fault.inject()
        [chain] = fault.chains  # type: ignore[attr-defined]
        keeper = chain.keeper
        assert keeper is not None and not keeper.dead  # it keeps the next slice queued
        driver.close()  # the chain's connection is cut under the keeper (the server lives on)
        eventually("the keeper records the break", lambda: chain.broken is not None, 3)
        with pytest.raises(PauseChainBroken, match=r"broke off after \d+: ConnectionError"):
            fault.revert()
        assert keeper.dead and chain.keeper is None
    finally:
        admin.close()
        driver.close()
    # The pause ended with the slice running when the chain broke (at most 500 ms).
    with redis.Redis.from_url(redis_server.url, socket_timeout=3) as direct:
        assert direct.ping()


def test_revert_ends_the_pause_keeper(redis_server: EmbeddedRedis) -> None:
    admin = redis.Redis.from_url(redis_server.url, socket_timeout=2, retry=Retry(NoBackoff(), 0))
    fault = build_fault(ClientPauseParams(name="client_pause", pause_ms=30_000), FaultTarget(admin, "rr-t-", no_pools))
    fault.inject()
    [chain] = fault.chains  # type: ignore[attr-defined]
    keeper = chain.keeper
    assert keeper is not None and not keeper.dead
    fault.revert()  # no error: the chain was whole
    assert keeper.dead and chain.broken is None
    admin.close()
