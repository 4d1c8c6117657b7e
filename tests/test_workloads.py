"""Every workload together, in-process, under resets: each one's traffic and integrity figures are there,
and an acknowledged write deleted behind the pack's back turns the verdict red."""

from __future__ import annotations

from locust.env import Environment
from locust.event import Events

from pathlib import Path
from typing import Any

import gevent
import gevent.event
import redis
import yaml

from chaos.plugin import attach_pack
from chaos.roles.base import Role
from chaos.settings import Settings
from targets.embedded import EmbeddedRedis

from .conditions import window_closed
from .helpers import ROOT, eventually

WORKLOADS = [
    "cache",
    "ledger",
    "session",
    "queue",
    "pubsub",
    "stream",
    "lock",
    "ratelimit",
    "leaderboard",
    "pipeline",
    "transaction",
]


def all_users() -> list[Any]:
    """Every registered workload's user class, as the locustfile hands them to Locust."""
    import locustfile  # noqa: F401  (it imports scenarios.workloads, which registers them)
    from scenarios.registry import WORKLOADS

    return list(WORKLOADS.values())


def run_all(
    tmp_path: Path, server: EmbeddedRedis, on_stopping: Any = None, only: str | None = None, faults: Any = None
) -> Role[Any]:
    profile = yaml.safe_load((ROOT / "config" / "workloads.yaml").read_text())
    profile["target"] = {"url": server.url}
    profile["chaos"].update(start_after_s=1, every_s=1.2, jitter_s=0, count=3)
    if faults is not None:
        profile["chaos"]["faults"] = faults
    profile["recovery"]["max_window_s"] = 1
    if only is not None:
        for name, spec in profile["workload"]["mix"].items():
            spec["weight"] = 1 if name == only else 0
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(profile))
    env = Environment(user_classes=all_users(), events=Events())
    pack = attach_pack(env, Settings(profile_path=str(path)))
    done = gevent.event.Event()
    env.events.fault_reverted.add_listener(lambda fault_id, **_: done.set() if fault_id == 3 else None)  # type: ignore[attr-defined]
    if on_stopping is not None:
        env.events.test_stopping.add_listener(on_stopping)
    runner = env.create_local_runner()
    runner.start(len(WORKLOADS) * 2, spawn_rate=100)
    try:
        assert done.wait(30), "fault #3 was not reverted within 30 s"
        eventually("fault #3's window closed (at max_window_s)", lambda: window_closed(pack.test, 3), 5)
    finally:
        runner.quit()
        pack.close()
    return pack


def test_all_workloads_under_resets(tmp_path: Path, redis_server: EmbeddedRedis) -> None:
    pack = run_all(tmp_path, redis_server)
    report = pack.report
    assert report is not None
    names = {entry.name.split()[-1] for entry in pack.environment.stats.entries.values()}
    assert names == set(WORKLOADS)  # every workload made traffic, named "<COMMAND> <workload>"
    assert [f["name"] for f in report["faults"]] and all(f["ok"] for f in report["faults"])
    integrity = report["integrity"]
    assert set(integrity) == {"ledger", "queue", "pubsub", "stream", "lock", "ratelimit", "pipeline", "transaction"}
    for name in ("ledger", "queue", "stream"):
        assert integrity[name]["acknowledged"] > 0 and integrity[name]["lost"] == 0, (name, integrity[name])
    assert integrity["lock"]["acquired"] > 0 and integrity["lock"]["violations"] == 0
    assert integrity["pubsub"]["received"] > 0
    assert integrity["transaction"]["imbalance"] == 0
    assert integrity["pipeline"]["commands"] == 10 * integrity["pipeline"]["batches"]
    assert report["summary"]["lost_writes"] == 0 and report["verdict"] == "pass", report["slo"]
    assert redis.Redis.from_url(redis_server.url).dbsize() == 0  # every key of the run removed


def test_a_deleted_acknowledged_write_turns_the_verdict_red(tmp_path: Path, redis_server: EmbeddedRedis) -> None:
    spoiler = redis.Redis.from_url(redis_server.url)

    def delete_an_acknowledged_entry(**_: Any) -> None:  # before the check, as data loss would
        ledger = next(spoiler.scan_iter(match="*:ledger:*"))
        spoiler.lpop(ledger)  # its oldest entry: acknowledged long ago

    pack = run_all(tmp_path, redis_server, on_stopping=delete_an_acknowledged_entry)
    report = pack.report
    assert report is not None
    assert report["integrity"]["ledger"]["lost"] == 1
    assert report["verdict"] == "fail" and report["exit_code"] == 3
    assert [s["name"] for s in report["slo"] if not s["ok"]] == ["max_lost_writes"]
    spoiler.close()


def test_subscribers_resubscribe_after_a_kill(tmp_path: Path, redis_server: EmbeddedRedis) -> None:
    pack = run_all(tmp_path, redis_server, only="pubsub", faults=[{"name": "client_kill"}])
    assert pack.report is not None
    figures = pack.report["integrity"]["pubsub"]
    users = len(WORKLOADS) * 2
    assert figures["resubscribes"] >= 3 * users  # every subscriber, after each of the 3 kills
    assert 0 < figures["resubscribe_s_max"] < 2.0
    assert figures["received"] > 0 and figures["published"] > 0


def test_a_crashed_subscriber_is_a_user_error_in_the_report(tmp_path: Path, redis_server: EmbeddedRedis) -> None:
    crashed: list[Any] = []

    def crash_a_listener(environment: Environment, **_: Any) -> None:  # a bug in it, thrown into the greenlet
        users = [greenlet.args[0] for greenlet in environment.runner.user_greenlets]  # type: ignore[union-attr]
        listener = next(user.listener for user in users if getattr(user, "listener", None) is not None)
        listener.kill(RuntimeError("injected crash"), block=True)
        crashed.append(listener)

    pack = run_all(tmp_path, redis_server, crash_a_listener, only="pubsub", faults=[{"name": "client_kill"}])
    assert pack.report is not None and crashed and crashed[0].dead
    assert pack.report["summary"]["user_errors"] == 1  # counted as a crashed task is (Locust's user_error)
    assert [s["name"] for s in pack.report["slo"] if not s["ok"]] == ["max_user_errors"]
    assert pack.report["verdict"] == "fail" and pack.report["exit_code"] == 3
