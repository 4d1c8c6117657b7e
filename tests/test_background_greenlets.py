"""Background greenlets report their crash and are ended by their owner: the helper, the fault proxy's
pumps, the client pause's keeper. A crash is an exception thrown into the real greenlet (``kill`` with
an exception), or a real connection cut under it; nothing stands in for the code under test."""

from __future__ import annotations

import time
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

from .conditions import answered_at
from .helpers import eventually, no_pools


def test_a_crash_reaches_the_callback_and_a_kill_does_not() -> None:
    crashes: list[BaseException] = []

    def crash() -> None:
        raise ValueError("a bug")

    crashed = spawn_reported(crashes.append, crash)
    killed = spawn_reported(crashes.append, gevent.sleep, 30)
    later = spawn_later_reported(0.05, crashes.append, crash)
    # a greenlet has a frame while it runs (or waits), none before it starts or once it has ended
    eventually(
        "the crashing greenlet has crashed and the sleeping one is asleep",
        lambda: crashed.dead and killed.gr_frame is not None,
        2,
    )
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


def test_a_pause_chain_cut_short_is_the_revert_error(redis_server: EmbeddedRedis) -> None:
    driver = BuiltinProxy(redis_server.host, redis_server.port)
    admin = redis.Redis(host=driver.host, port=driver.port, socket_timeout=2, retry=Retry(NoBackoff(), 0))
    try:
        target = FaultTarget(admin, "rr-t-", no_pools)
        fault = build_fault(ClientPauseParams(name="client_pause", pause_ms=1500), target)
        fault.inject()
        [chain] = fault.chains  # type: ignore[attr-defined]
        driver.close()  # the chain's connection is cut (the server lives on): it drops the slices still held
        # to the pause's planned end, as the scheduler holds a fault: a revert on time (not an early one, which
        # drops the held slices on purpose) is the behaviour under test, not a wait for anything
        gevent.sleep(max(0.0, fault.hold_until(0.0, 0.0) - time.monotonic()))
        with pytest.raises(PauseChainBroken, match=r"the pause ended early: the chain of pause slices broke off"):
            fault.revert()
        assert chain.broken is not None
    finally:
        admin.close()
        driver.close()
    with redis.Redis.from_url(redis_server.url, socket_timeout=3) as direct:
        assert direct.ping()  # the pause ended with the slice running when the chain broke


def test_an_early_revert_ends_a_30_s_all_pause_with_its_running_slice(redis_server: EmbeddedRedis) -> None:
    admin = redis.Redis.from_url(redis_server.url, socket_timeout=5, retry=Retry(NoBackoff(), 0))
    # Connected before the pause: redis-py's connect sends CLIENT SETINFO, which the pause would hold.
    conn = redis.Connection(host=redis_server.host, port=redis_server.port, socket_timeout=10)
    conn.connect()
    fault = build_fault(ClientPauseParams(name="client_pause", pause_ms=30_000), FaultTarget(admin, "rr-t-", no_pools))
    fault.inject()  # the first slice runs once it returns
    conn.send_command("GET", "k")  # sent while the pause is in effect: the server holds it
    reply = gevent.spawn(answered_at, conn)
    started = time.monotonic()
    fault.revert()  # early: no error, the running slice (at most 1 s) ends the pause
    assert time.monotonic() - started <= 1.2
    assert gevent.wait([reply], timeout=5), "the GET held by the pause got no answer within 5 s of the revert"
    answered = reply.get()
    conn.disconnect()
    assert fault.took_effect is not None
    # held until the running slice (999 ms) ended, and not 30 s: the revert ended the pause with that slice
    assert answered - fault.took_effect >= 0.5, (fault.took_effect, answered)
    assert answered - started < 1.5, (started, answered)
    with redis.Redis.from_url(redis_server.url, socket_timeout=1) as direct:
        assert direct.ping() and direct.config_get("hz")["hz"] == "10"
    admin.close()
