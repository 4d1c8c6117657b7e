"""The chaos scheduler on a real server: timing, counts, events, and faults that fail."""

from __future__ import annotations

import time
from typing import Any

import gevent
import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from chaos.events import ResilienceEvents
from chaos.faults import FaultTarget
from chaos.locust_test import LocustTest
from chaos.profile import parse_profile
from chaos.scheduler import ChaosScheduler, FaultConflict, FaultRecord
from targets.embedded import EmbeddedRedis, free_port

from .helpers import eventually, no_pools


def chaos(**overrides: Any) -> Any:
    spec = {"faults": [{"name": "client_kill"}, {"name": "pool_reset"}], **overrides}
    return parse_profile({"chaos": spec}, "test").chaos


def recorded(events: ResilienceEvents) -> list[tuple[str, Any]]:
    log: list[tuple[str, Any]] = []
    for name in ("fault_started", "fault_injected", "fault_reverted", "fault_failed"):
        getattr(events, name).add_listener(lambda _n=name, **kw: log.append((_n, kw)))
    return log


def test_schedule_timing_count_and_events(redis_server: EmbeddedRedis) -> None:
    admin = redis.Redis.from_url(redis_server.url, retry=Retry(NoBackoff(), 0))
    events = ResilienceEvents()
    log = recorded(events)
    started = time.monotonic()
    scheduler = ChaosScheduler(
        chaos(start_after_s=0.3, every_s=0.4, count=3, seed=1),
        FaultTarget(admin, "rr-x-", no_pools),
        events,
        started_at=started,
    )
    scheduler.start()
    assert scheduler.greenlet is not None
    scheduler.greenlet.join(timeout=10)
    assert scheduler.greenlet.dead
    offsets = [r.offset_s for r in scheduler.records]
    assert len(offsets) == 3
    for got, want in zip(offsets, (0.3, 0.7, 1.1), strict=True):
        assert want - 0.01 <= got <= want + 0.25, offsets
    assert [kind for kind, _ in log] == ["fault_started", "fault_injected", "fault_reverted"] * 3
    began, injected = log[0][1], log[1][1]
    assert began["fault_id"] == injected["fault_id"] == 1 and injected["name"] in ("client_kill", "pool_reset")
    first = scheduler.records[0]
    assert first.begin is not None and first.t0 is not None
    assert abs(began["monotonic"] - (started + offsets[0])) < 1e-6  # offset_s: the window's start, the call's
    assert abs(injected["monotonic"] - (first.begin + first.inject_ms / 1000)) < 1e-6  # t0: the call returned
    assert all(r.ok for r in scheduler.records)
    admin.close()


def run_schedule(url: str, **overrides: Any) -> list[FaultRecord]:
    """A whole schedule (``count`` faults, back to back) against the server at ``url``; its records."""
    admin = redis.Redis.from_url(url)
    s = ChaosScheduler(
        chaos(start_after_s=0, every_s=0.01, **overrides),
        FaultTarget(admin, "rr-x-", no_pools),
        ResilienceEvents(),
        started_at=time.monotonic(),
    )
    s.start()
    assert s.greenlet is not None
    s.greenlet.join(timeout=10)
    admin.close()
    return s.records


def test_seed_makes_the_fault_sequence_reproducible(redis_server: EmbeddedRedis) -> None:
    def names() -> list[str]:
        return [r.name for r in run_schedule(redis_server.url, count=12, seed=7)]

    first = names()
    assert first == names()
    assert set(first) == {"client_kill", "pool_reset"}


def test_cycle_order_runs_the_list_in_order(redis_server: EmbeddedRedis) -> None:
    faults = [
        {"name": "pool_reset"},
        {"name": "client_kill"},
        {"name": "client_kill", "scope": "all", "allow_scope_all": True},
    ]
    records = run_schedule(redis_server.url, count=7, order="cycle", faults=faults)
    assert [(r.name, r.params.get("scope")) for r in records] == [
        ("pool_reset", None),
        ("client_kill", "own"),
        ("client_kill", "all"),
    ] * 2 + [("pool_reset", None)]


def test_a_failing_fault_is_recorded_and_the_schedule_goes_on() -> None:
    dead = redis.Redis(port=free_port(), socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))
    events = ResilienceEvents()
    log = recorded(events)
    scheduler = ChaosScheduler(
        chaos(start_after_s=0, every_s=0.05, count=2, faults=[{"name": "client_kill"}]),
        FaultTarget(dead, "rr-x-", no_pools),
        events,
        started_at=time.monotonic(),
    )
    scheduler.start()
    assert scheduler.greenlet is not None
    scheduler.greenlet.join(timeout=10)
    assert scheduler.greenlet.successful()
    assert [r.ok for r in scheduler.records] == [False, False]
    assert "ConnectionError" in (scheduler.records[0].error or "")
    assert [kind for kind, _ in log] == ["fault_started", "fault_failed"] * 2  # its window opened at its start


def test_stop_ends_the_schedule(redis_server: EmbeddedRedis) -> None:
    admin = redis.Redis.from_url(redis_server.url)
    scheduler = ChaosScheduler(
        chaos(start_after_s=0, every_s=0.1), FaultTarget(admin, "rr-x-", no_pools), ResilienceEvents(), time.monotonic()
    )
    scheduler.start()
    eventually("the scheduler injected two faults", lambda: len(scheduler.records) >= 2, 5)
    scheduler.stop()
    count = len(scheduler.records)
    gevent.sleep(0.3)  # three more periods: nothing may be injected after stop()
    assert len(scheduler.records) == count
    admin.close()


def test_on_demand_fault_one_at_a_time_and_reverted_on_stop(redis_server: EmbeddedRedis) -> None:
    admin = redis.Redis.from_url(redis_server.url, retry=Retry(NoBackoff(), 0))
    events = ResilienceEvents()
    log = recorded(events)
    spec = chaos(faults=[{"name": "client_pause", "pause_ms": 30000, "mode": "WRITE"}]).faults[0]
    scheduler = ChaosScheduler(chaos(), FaultTarget(admin, "rr-x-", no_pools), events, time.monotonic())
    with gevent.Timeout(5):  # returns once injected, long before the 30 s pause ends
        record = scheduler.inject_now(spec)
    assert record.trigger == "web" and record.ok and record.t0 is not None and not record.reverted
    assert scheduler.active is record and [kind for kind, _ in log] == ["fault_started", "fault_injected"]
    with pytest.raises(FaultConflict, match="fault #1 client_pause is active"):
        scheduler.inject_now(chaos().faults[1])
    scheduled = gevent.spawn(scheduler.inject, chaos().faults[1])  # the schedule waits for the active fault
    gevent.idle()  # it ran, up to waiting for the active fault
    assert len(scheduler.records) == 1 and not scheduled.dead
    scheduler.stop()  # ends the held fault: reverted (the server serves writes again)
    assert record.reverted and record.revert_error is None and scheduler.active is None
    with gevent.Timeout(5):
        scheduled.join()
        assert admin.set("rr-x-probe", 1)
    assert [r.trigger for r in scheduler.records] == ["web", "schedule"]
    assert [kind for kind, _ in log] == ["fault_started", "fault_injected", "fault_reverted"] * 2
    admin.delete("rr-x-probe")
    admin.close()


def test_a_traffic_nodes_fault_goes_to_the_fan_out_a_server_fault_runs_here(redis_server: EmbeddedRedis) -> None:
    admin = redis.Redis.from_url(redis_server.url)
    traffic = redis.Redis.from_url(redis_server.url, client_name="rr-x-user")
    traffic.ping()
    fanned: list[tuple[str, int]] = []

    def fan_out(spec: Any, fault_id: int) -> dict[str, Any]:
        fanned.append((spec.name, fault_id))
        return {"pools": 4, "unacknowledged_workers": ["w2"]}

    kill, reset = chaos().faults
    scheduler = ChaosScheduler(
        chaos(), FaultTarget(admin, "rr-x-", no_pools), ResilienceEvents(), time.monotonic(), fan_out=fan_out
    )
    assert scheduler.inject(kill).details["connections_killed"] == 1  # client_kill: here, on the server
    record = scheduler.inject(reset)  # pool_reset: the traffic nodes', through the fan-out
    assert fanned == [("pool_reset", 2)]
    assert record.ok and record.details == {"pools": 4, "unacknowledged_workers": ["w2"]} and record.reverted
    traffic.close()
    admin.close()


def test_a_crash_of_the_schedule_or_of_a_test_greenlet_is_reported(redis_server: EmbeddedRedis) -> None:
    def broken_clock() -> float:
        raise RuntimeError("clock broke")

    crashes: list[tuple[str, str]] = []
    admin = redis.Redis.from_url(redis_server.url)
    scheduler = ChaosScheduler(
        chaos(start_after_s=0),
        FaultTarget(admin, "rr-x-", no_pools),
        ResilienceEvents(),
        time.monotonic(),
        clock=broken_clock,
        on_crash=lambda what, exc: crashes.append((what, str(exc))),
    )
    scheduler.start()
    assert scheduler.greenlet is not None
    scheduler.greenlet.join(timeout=5)
    gevent.sleep(0)  # the link callbacks run from the hub
    assert crashes == [("the chaos schedule", "clock broke")]
    scheduler.stop()
    admin.close()

    run = LocustTest(1)
    run.spawn("the window timer", broken_clock).join(timeout=5)
    gevent.sleep(0)
    assert run.aborted == "the window timer crashed: RuntimeError: clock broke"
    run.stop()


def test_a_window_is_settled_once_when_it_closes_and_not_while_its_fault_is_being_injected(
    redis_server: EmbeddedRedis,
) -> None:
    """settle(): each fault's window-close figures (Fault.window_closed) once its window closed, never for a
    fault still being injected (on demand, while the loop settles an earlier one)."""
    admin = redis.Redis.from_url(redis_server.url, retry=Retry(NoBackoff(), 0))
    scheduler = ChaosScheduler(
        chaos(), FaultTarget(admin, "rr-x-", no_pools), ResilienceEvents(), time.monotonic(), window_s=1.0
    )
    calls: list[int] = []

    class Counted:
        def __init__(self, fault_id: int) -> None:
            self.fault_id = fault_id

        def window_closed(self) -> dict[str, Any]:
            calls.append(self.fault_id)
            return {"counted": self.fault_id}

        def seen(self) -> dict[str, Any]:
            return {}

    now = time.monotonic()
    done = FaultRecord(1, "client_kill", {}, offset_s=0.0, inject_ms=1.0, begin=now, t0=now + 0.001)
    pending = FaultRecord(2, "client_kill", {}, offset_s=0.0, inject_ms=0.0, begin=now + 4.9)  # injecting: no t0 yet
    scheduler.records.extend([done, pending])
    scheduler._faults.update({1: Counted(1), 2: Counted(2)})  # type: ignore[dict-item]
    scheduler.settle(now + 0.5)
    assert calls == []  # fault 1's window is still open
    scheduler.settle(now + 1.5)
    assert calls == [1] and done.at_window_close == {"counted": 1} and done.details == {}
    scheduler.settle(now + 5)
    assert calls == [1]  # fault 2 is still being injected: its window is to come
    pending.t0 = now + 5
    scheduler.settle(now + 5.2, closing=True)
    scheduler.settle(now + 9, closing=True)
    assert calls == [1, 2] and pending.all_details() == {"counted": 2}  # each once
    admin.close()
