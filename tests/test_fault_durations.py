"""Faults last what they say: each runs through the scheduler (inject, hold, revert) against a real
redis-server and a real valkey-server, and an independent probe process (tests/stall_probe.py)
measures how long it took effect. A pause within 10 ms of ``pause_ms``; a memory limit and a toxic
within 20 ms of ``duration_s`` (a restart's ``down_s`` is checked under load in test_witness_run.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from chaos.events import ResilienceEvents
from chaos.faults import FaultTarget
from chaos.profile import parse_profile
from chaos.scheduler import ChaosScheduler
from config.proxy import ProxySettings
from targets.embedded import EmbeddedRedis, server_binaries
from targets.netproxy import NetworkDriver
from targets.proxies import open_proxy

from .helpers import StallProbe, no_pools, no_retry_admin


@pytest.fixture(params=["redis", "valkey"])
def redis_server(request: pytest.FixtureRequest) -> Iterator[EmbeddedRedis]:
    """Each test on either server (the suite's own fixture runs redis-server only)."""
    server = EmbeddedRedis(server=server_binaries(request.param)).start()
    yield server
    server.stop()


@pytest.fixture
def admin_of(redis_server: EmbeddedRedis) -> Iterator[redis.Redis]:
    admin = no_retry_admin(redis_server.url)
    yield admin
    admin.close()


def scheduled(target: FaultTarget, spec: dict[str, Any]) -> Callable[[], dict[str, Any]]:
    """One fault made ready to go through the scheduler, as a run injects it: a call runs it and returns its
    record's details, as the report has them. The profile is parsed and the scheduler made now, before a
    probe starts: the built-in proxy shares this process's hub, and that work would hold its replies up
    (the probe saw a stall begin up to 56 ms before the injection on a busy machine)."""
    chaos = parse_profile({"chaos": {"faults": [spec]}}, "test").chaos
    scheduler = ChaosScheduler(chaos, target, ResilienceEvents(), started_at=time.monotonic())

    def run() -> dict[str, Any]:
        record = scheduler.inject(chaos.faults[0])
        scheduler.stop()
        assert record.ok and record.revert_error is None, record
        return record.all_details()

    return run


def one_stall(stalls: list[tuple[float, float]], longer_than_s: float) -> float:
    long = [end - start for start, end in stalls if end - start > longer_than_s]
    assert len(long) == 1, stalls
    return long[0]


@pytest.mark.parametrize(("pause_ms", "mode"), [(500, "ALL"), (5000, "ALL"), (1000, "WRITE")])
def test_a_pause_stalls_the_server_pause_ms_within_10_ms(
    redis_server: EmbeddedRedis, admin_of: redis.Redis, pause_ms: int, mode: str
) -> None:
    hz = admin_of.config_get("hz")["hz"]
    run = scheduled(
        FaultTarget(admin_of, "rr-t-", no_pools), {"name": "client_pause", "pause_ms": pause_ms, "mode": mode}
    )
    probe = StallProbe(redis_server.host, redis_server.port, "SET" if mode == "WRITE" else "PING")
    try:
        details = run()
    finally:
        stalls = probe.stop()
    assert details["hz_raised"] is True, details
    assert abs(one_stall(stalls, pause_ms / 2000) - pause_ms / 1000) <= 0.010, (stalls, details)
    assert admin_of.config_get("hz")["hz"] == hz  # the server's own hz is back


def test_a_memory_limit_lasts_duration_s_within_20_ms(redis_server: EmbeddedRedis, admin_of: redis.Redis) -> None:
    run = scheduled(FaultTarget(admin_of, "rr-t-", no_pools), {"name": "oom", "duration_s": 1})
    probe = StallProbe(redis_server.host, redis_server.port, "MAXMEMORY")
    try:
        run()
    finally:
        spans = probe.stop()
    assert abs(one_stall(spans, 0.5) - 1.0) <= 0.020, spans


def test_a_toxic_lasts_duration_s_within_20_ms(redis_server: EmbeddedRedis, admin_of: redis.Redis) -> None:
    proxy: NetworkDriver = open_proxy(ProxySettings(), redis_server.host, redis_server.port)
    try:
        target = FaultTarget(admin_of, "rr-t-", no_pools, network=proxy)
        run = scheduled(target, {"name": "network", "toxic": "reset_peer", "duration_s": 1})
        probe = StallProbe(proxy.host, proxy.port)  # through the proxy: every PING is reset while the toxic lasts
        try:
            run()
        finally:
            stalls = probe.stop()
    finally:
        proxy.close()
    assert abs(one_stall(stalls, 0.5) - 1.0) <= 0.020, stalls
