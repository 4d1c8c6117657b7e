"""The whole pack in-process: a real Locust Environment and LocalRunner against a real redis-server."""

from __future__ import annotations

from locust.env import Environment
from locust.event import Events

import gc
from pathlib import Path
from typing import Any

import gevent
import gevent.event
import redis

from chaos.plugin import attach_pack
from chaos.roles.local import LocalRole
from chaos.settings import Settings
from scenarios.cache import CacheUser
from scenarios.ledger import LedgerUser
from targets.embedded import EmbeddedRedis

from .conditions import window_closed
from .helpers import eventually, write_profile


def run_pack(
    tmp_path: Path, server: EmbeddedRedis, overrides: dict[str, Any], users: int = 10
) -> tuple[LocalRole, list[dict[str, Any]]]:
    profile = write_profile(tmp_path / "p.yaml", {"target": {"url": server.url}, **overrides})
    env = Environment(user_classes=[CacheUser, LedgerUser], events=Events())
    pack = attach_pack(env, Settings(profile_path=str(profile), report_path=str(tmp_path / "report.json")))
    assert isinstance(pack, LocalRole)
    recovered: list[dict[str, Any]] = []
    env.events.fault_recovered.add_listener(lambda **kw: recovered.append(kw))  # type: ignore[attr-defined]
    done = gevent.event.Event()
    env.events.fault_reverted.add_listener(  # type: ignore[attr-defined]
        lambda fault_id, **_: done.set() if fault_id == overrides["chaos"]["count"] else None
    )
    runner = env.create_local_runner()
    runner.start(users, spawn_rate=users)
    try:
        last = overrides["chaos"]["count"]
        assert done.wait(30), f"fault #{last} was not reverted within 30 s"
        eventually(f"fault #{last}'s window closed (at max_window_s)", lambda: window_closed(pack.test, last), 5)
    finally:
        runner.quit()
        pack.close()
    return pack, recovered


def test_local_run_reports_every_fault(tmp_path: Path, redis_server: EmbeddedRedis) -> None:
    pack, recovered = run_pack(
        tmp_path,
        redis_server,
        {
            "workload": {"think_time": {"min_ms": 0, "max_ms": 1}},
            "chaos": {"start_after_s": 1, "every_s": 1, "jitter_s": 0, "count": 4, "seed": 3},
            "recovery": {"max_window_s": 0.9},
        },
    )
    report = pack.report
    assert report is not None
    faults = report["faults"]
    assert [f["id"] for f in faults] == [1, 2, 3, 4]
    assert {f["name"] for f in faults} <= {"client_kill", "pool_reset"}
    for f in faults:
        assert f["ok"] and f["requests"] > 0
        assert 0.9 <= f["offset_s"] <= 4.5
        assert f["window_s"] <= 0.9 + 1e-6
        killed = f["details"].get("connections_killed", f["details"].get("connections_closed"))
        assert killed >= 1
        assert f["reconnections"] >= 1  # every reset makes clients reconnect, seen or not
    assert len(recovered) == sum(1 for f in faults if f["recovered"])
    summary = report["summary"]
    assert summary["requests"] == summary["in_windows"]["requests"] + summary["outside_windows"]["requests"]
    assert summary["requests"] == pack.environment.stats.total.num_requests  # agrees with Locust's own count
    assert summary["failures"] == pack.environment.stats.total.num_failures
    assert report["integrity"]["ledger"]["acknowledged"] > 0
    assert report["integrity"]["ledger"]["lost"] == 0
    assert (tmp_path / "report.json").exists()
    # the run's keys are gone; nothing else was written
    assert redis.Redis.from_url(redis_server.url).dbsize() == 0


def test_a_test_starts_with_the_heap_frozen(tmp_path: Path, redis_server: EmbeddedRedis) -> None:
    """What lives for the whole test is out of the collector's generations when it starts (a full
    collection of it stalled every user ~55 ms on this machine: see chaos/roles/base.py)."""
    profile = write_profile(tmp_path / "p.yaml", {"target": {"url": redis_server.url}, "chaos": {"enabled": False}})
    env = Environment(user_classes=[CacheUser, LedgerUser], events=Events())
    pack = attach_pack(env, Settings(profile_path=str(profile)))
    gc.unfreeze()
    assert gc.get_freeze_count() == 0
    try:
        env.events.test_start.fire(environment=env)
        assert gc.get_freeze_count() > 10_000  # Locust, the pack, the session: all frozen
        env.events.test_stop.fire(environment=env)
    finally:
        gc.unfreeze()  # this test process goes on with other tests
        pack.close()
