"""Sustained faults on real servers, with time windows (Toxiproxy style), and the revert guarantee."""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import gevent
import pytest
import redis

from chaos.events import ResilienceEvents
from chaos.faults import FaultTarget, build_fault
from chaos.faults.client_kill import ClientKillParams
from chaos.faults.client_pause import ClientPauseParams
from chaos.faults.oom import OomParams
from chaos.profile import parse_profile
from chaos.scheduler import ChaosScheduler
from targets.embedded import EmbeddedRedis

from .conditions import answered_at
from .helpers import (
    StallProbe,
    eventually,
    finish,
    headless_args,
    locust,
    no_pools,
    no_retry_admin,
    wait_for_output,
    write_profile,
)


@pytest.fixture
def target(redis_server: EmbeddedRedis) -> Iterator[FaultTarget]:
    admin = no_retry_admin(redis_server.url)
    yield FaultTarget(admin, "rr-t-", no_pools)
    admin.close()


def timed_get(url: str) -> float:
    client = redis.Redis.from_url(url, socket_timeout=10)
    started = time.monotonic()
    client.get("k")
    client.close()
    return time.monotonic() - started


def test_a_get_during_a_500_ms_pause_waits_it_out(redis_server: EmbeddedRedis, target: FaultTarget) -> None:
    fault = build_fault(ClientPauseParams(name="client_pause", pause_ms=500), target)
    fault.check()
    assert fault.hold_s == 0.5
    fault.inject()
    elapsed = timed_get(redis_server.url)
    fault.revert()
    assert 0.45 <= elapsed < 2.0


def test_revert_lifts_the_pause_early(redis_server: EmbeddedRedis, target: FaultTarget) -> None:
    # Connected before the pause: redis-py's connect sends CLIENT SETINFO, which the pause would hold.
    conn = redis.Connection(host=redis_server.host, port=redis_server.port, socket_timeout=10)
    conn.connect()
    fault = build_fault(ClientPauseParams(name="client_pause", pause_ms=30_000), target)
    fault.inject()
    conn.send_command("GET", "k")  # sent while the pause is in effect: the server holds it
    reply = gevent.spawn(answered_at, conn)
    reverted_at = time.monotonic()
    fault.revert()
    with gevent.Timeout(5):
        answered = reply.get()
    conn.disconnect()
    assert fault.took_effect is not None
    # held: the server answered it only when the running slice of the pause (999 ms) ended ...
    assert answered - fault.took_effect >= 0.5, (fault.took_effect, answered)
    # ... and not 30 s later: the revert ended the pause with that slice
    assert answered - reverted_at < 1.5, (reverted_at, answered)


def test_oom_refuses_writes_then_restores_maxmemory(redis_server: EmbeddedRedis, target: FaultTarget) -> None:
    admin = target.admin
    admin.config_set("maxmemory", "100mb")
    admin.set("k", "v")
    fault = build_fault(OomParams(name="oom", duration_s=1), target)
    fault.check()
    details = fault.inject()
    assert details["used_memory"] < details["maxmemory"] <= details["used_memory"] + 65536
    with pytest.raises(redis.exceptions.OutOfMemoryError):  # redis-py's class for the OOM reply
        for i in range(64):  # the headroom (64 KiB) fills within 64 writes of 16 KiB
            admin.set(f"fill{i}", "x" * 16384)
    assert admin.get("k") == b"v"  # reads go on
    fault.revert()
    assert admin.config_get("maxmemory")["maxmemory"] == str(100 * 1024 * 1024)
    assert admin.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
    assert admin.set("k2", "x" * 16384)


def test_client_kill_by_type_and_addr(redis_server: EmbeddedRedis, target: FaultTarget) -> None:
    normal = redis.Redis.from_url(redis_server.url, client_name="rr-t-0")
    normal.ping()
    subscriber = redis.Redis.from_url(redis_server.url, client_name="rr-t-1").pubsub()
    subscriber.subscribe("ch")
    subscriber.get_message(timeout=1)
    other = redis.Redis.from_url(redis_server.url, client_name="rr-t-2")
    other.ping()
    kill_pubsub = build_fault(ClientKillParams(name="client_kill", type="pubsub"), target)
    assert kill_pubsub.inject()["connections_killed"] == 1
    addr = next(c["addr"] for c in target.admin.client_list() if c.get("name") == "rr-t-2")
    kill_addr = build_fault(ClientKillParams(name="client_kill", addr=addr), target)
    assert kill_addr.inject()["connections_killed"] == 1
    names = {c.get("name") for c in target.admin.client_list()}
    assert "rr-t-0" in names and "rr-t-1" not in names and "rr-t-2" not in names
    for c in (normal, other):
        c.close()


def test_stop_during_a_sustained_fault_reverts_it(redis_server: EmbeddedRedis, target: FaultTarget) -> None:
    events = ResilienceEvents()
    reverted: list[dict[str, object]] = []
    events.fault_reverted.add_listener(lambda **kw: reverted.append(kw))
    chaos = parse_profile(
        {"chaos": {"start_after_s": 0, "every_s": 60, "faults": [{"name": "client_pause", "pause_ms": 30_000}]}},
        "test",
    ).chaos
    scheduler = ChaosScheduler(chaos, target, events, started_at=time.monotonic())
    scheduler.start()
    eventually(
        "the scheduler injected its pause", lambda: bool(scheduler.records) and scheduler.records[0].t0 is not None, 5
    )
    scheduler.stop()
    assert timed_get(redis_server.url) < 1.0  # unpaused
    assert len(reverted) == 1 and reverted[0]["duration_s"] < 5  # type: ignore[operator]


def test_a_sustained_fault_lasts_its_hold_then_reverts(redis_server: EmbeddedRedis, target: FaultTarget) -> None:
    events = ResilienceEvents()
    reverted: list[dict[str, object]] = []
    events.fault_reverted.add_listener(lambda **kw: reverted.append(kw))
    chaos = parse_profile(
        {"chaos": {"start_after_s": 0, "every_s": 5, "count": 1, "faults": [{"name": "oom", "duration_s": 0.4}]}},
        "test",
    ).chaos
    scheduler = ChaosScheduler(chaos, target, events, started_at=time.monotonic())
    scheduler.start()
    assert scheduler.greenlet is not None
    scheduler.greenlet.join(timeout=10)
    assert len(reverted) == 1
    assert 0.4 <= reverted[0]["duration_s"] < 1.5  # type: ignore[operator]
    assert target.admin.set("after", "1")


def test_capability_check_names_the_fault_and_the_refused_command(tmp_path: Path) -> None:
    server = EmbeddedRedis(extra_args=("--rename-command", "CONFIG", "")).start()
    try:
        profile = write_profile(tmp_path / "p.yaml", {"chaos": {"faults": [{"name": "oom"}]}})
        proc = locust(["-u", "1", "-t", "5s", "--resilience-profile", str(profile), "--redis-url", server.url])
        out = finish(proc, timeout=60)
        assert proc.returncode == 2, out
        assert f"{profile}: fault oom cannot run on {server.url}: CONFIG GET refused" in out
        assert "Traceback" not in out
    finally:
        server.stop()


def test_sigint_during_a_30_s_pause_unpauses_within_2_s(tmp_path: Path, redis_server: EmbeddedRedis) -> None:
    profile = write_profile(
        tmp_path / "p.yaml",
        {"chaos": {"start_after_s": 1, "every_s": 60, "faults": [{"name": "client_pause", "pause_ms": 30_000}]}},
    )
    report_path = tmp_path / "report.json"
    probe = StallProbe(redis_server.host, redis_server.port)  # how long the server really stopped answering
    try:
        proc = locust(
            headless_args(
                5,
                "120s",
                "--resilience-profile",
                str(profile),
                "--redis-url",
                redis_server.url,
                "--resilience-report",
                str(report_path),
            )
        )
        # the pause is in effect once its injection has returned, before this line
        head = wait_for_output(proc, r"fault #1 client_pause injected", 30)
        os.kill(proc.pid, signal.SIGINT)
        interrupted = time.monotonic()
        out = head + finish(proc, timeout=30)
    finally:
        stalls = [s for s in probe.stop() if s[1] - s[0] > 0.2]  # late replies of a busy machine left out
    assert len(stalls) == 1, (stalls, out[-2000:])
    start, end = stalls[0]
    # Paused across the Ctrl-C (its start may trail it by a probe descheduled for a few ms: the pause began
    # before the line above), and answering again within 2 s of it: the pack ended the 30 s pause.
    assert start <= interrupted + 0.01 and interrupted < end < interrupted + 2.0, (start, interrupted, end)
    report = json.loads(report_path.read_text())
    assert report["faults"][0]["name"] == "client_pause" and report["faults"][0]["duration_s"] < 10, out[-2000:]
