"""Faults of the pack itself: signals during sustained faults, faults that hang, a server that dies."""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import redis

from chaos.events import ResilienceEvents
from chaos.faults import FaultTarget
from chaos.profile import parse_profile
from chaos.scheduler import ChaosScheduler
from targets.embedded import EmbeddedRedis

from .helpers import finish, headless_args, locust, no_pools, pid_alive, wait_for_output, write_profile


def test_a_fault_that_hangs_is_recorded_reverted_and_the_schedule_goes_on(redis_server: EmbeddedRedis) -> None:
    pauser = redis.Redis.from_url(redis_server.url)
    admin = redis.Redis.from_url(redis_server.url, socket_timeout=None)  # nothing but the pack's deadline
    chaos = parse_profile(
        {
            "chaos": {
                "start_after_s": 0,
                "every_s": 1.5,
                "count": 2,
                "fault_timeout_s": 0.5,
                "faults": [{"name": "client_kill"}],
            }
        },
        "test",
    ).chaos
    events = ResilienceEvents()
    failed: list[dict[str, Any]] = []
    events.fault_failed.add_listener(lambda **kw: failed.append(kw))
    pauser.client_pause(1000, all=True)  # CLIENT LIST (the fault's first command) waits for it
    scheduler = ChaosScheduler(chaos, FaultTarget(admin, "rr-t-", no_pools), events, started_at=time.monotonic())
    scheduler.start()
    assert scheduler.greenlet is not None
    scheduler.greenlet.join(timeout=10)
    first, second = scheduler.records
    assert first.error == "FaultTimeout: inject did not return within 0.5s" and first.reverted
    assert 450 <= first.inject_ms < 1000
    assert second.ok  # the server answers again after the pause: the schedule went on
    assert [f["fault_id"] for f in failed] == [1]
    admin.close()
    pauser.close()


STATE_FAULTS: dict[str, dict[str, Any]] = {
    "client_pause": {"name": "client_pause", "pause_ms": 30_000},
    "oom": {"name": "oom", "duration_s": 30},
    "network": {"name": "network", "toxic": "blackhole", "duration_s": 30},
    "server_restart": {"name": "server_restart", "down_s": 30},
}


@pytest.mark.parametrize("fault", list(STATE_FAULTS))
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_during_a_sustained_fault_reverts_it_and_the_report_says_interrupted(
    tmp_path: Path, fault: str, sig: signal.Signals
) -> None:
    target: dict[str, Any] = {"url": "embedded"}
    if fault == "network":
        target["proxy"] = {"driver": "builtin"}
    profile = write_profile(
        tmp_path / "p.yaml",
        {
            "target": target,
            "client": {"socket_timeout_s": 1.0},
            "chaos": {"start_after_s": 1, "every_s": 60, "faults": [STATE_FAULTS[fault]]},
        },
    )
    report_path = tmp_path / "report.json"
    proc = locust(
        headless_args(5, "120s", "--resilience-profile", str(profile), "--resilience-report", str(report_path))
    )
    head = wait_for_output(proc, rf"fault #1 {fault} injected", 30)
    server_pid = int(re.findall(r"embedded redis-server \(pid (\d+)", head)[0])
    url = re.findall(r"(redis://127\.0\.0\.1:\d+/0)", head)[0]
    before = None
    if fault == "oom":
        with redis.Redis.from_url(url) as probe:
            before = probe.config_get("maxmemory")["maxmemory"]
        assert before != "0"  # the fault is on
    os.kill(proc.pid, sig)
    sent = time.monotonic()
    out = head + finish(proc, timeout=60)
    elapsed = time.monotonic() - sent
    assert proc.returncode in (0, 3), out[-3000:]
    assert elapsed < 20 and "Traceback" not in out
    report = json.loads(report_path.read_text())
    assert report["interrupted"] == sig.name
    (record,) = report["faults"]
    assert record["name"] == fault and record["duration_s"] < 15  # reverted at the signal, not after 30 s
    assert report["summary"]["lost_writes"] is not None  # the writes were still checked after reverting
    assert "INTERRUPTED  by " + sig.name in out
    assert "failed to revert" not in out
    assert not pid_alive(server_pid) and not any(pid_alive(p) for p in report["embedded_pids"])


def test_the_embedded_server_dying_on_its_own_aborts_the_run_with_a_report(tmp_path: Path) -> None:
    profile = write_profile(tmp_path / "p.yaml", {"chaos": {"start_after_s": 60, "every_s": 60}})
    report_path = tmp_path / "report.json"
    proc = locust(
        headless_args(5, "120s", "--resilience-profile", str(profile), "--resilience-report", str(report_path))
    )
    head = wait_for_output(proc, r"All users spawned|Ramping to 5 users", 30)
    server_pid = int(re.findall(r"embedded redis-server \(pid (\d+)", head)[0])
    os.kill(server_pid, signal.SIGKILL)
    killed = time.monotonic()
    out = head + finish(proc, timeout=60)
    assert time.monotonic() - killed < 30, out[-3000:]
    assert proc.returncode == 3, out[-3000:]
    report = json.loads(report_path.read_text())
    assert re.match(
        rf"embedded redis-server \(pid {server_pid}, port \d+\) exited on its own \(exit code -9\)", report["aborted"]
    )
    assert report["verdict"] == "fail" and "ABORTED" in out and "Traceback" not in out
