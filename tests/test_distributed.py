"""Distributed runs: a real ``locust --master`` with real ``--worker`` processes on loopback, and ``--processes``."""

from __future__ import annotations

import json
import os
import re
import signal
from pathlib import Path

import pytest

from chaos.distributed.master_link import combine_acks
from chaos.distributed.worker import remote_worker_error
from targets.embedded import free_port

from .helpers import (
    HEAVY,
    assert_server_gone,
    finish,
    headless_args,
    locust,
    master,
    wait_for_output,
    worker,
    write_profile,
)


def locust_total(stats_file: Path) -> int:
    return sum(int(row["num_requests"]) for row in json.loads(stats_file.read_text()))


@HEAVY
def test_master_and_two_workers_count_every_fault_once(tmp_path: Path) -> None:
    port = free_port()
    report_path, stats = tmp_path / "report.json", tmp_path / "stats"
    # What this test checks is the counting, not how fast clients recover: under the suite's three loads on
    # two cores one reset once took 2.19 s to recover (redis-py's backoff reaches 1 s), over ci.yaml's 2 s.
    profile = write_profile(tmp_path / "ci.yaml", {"slo": {"max_recovery_p95_s": 10}})
    m = master(
        port,
        headless_args(
            20,
            "12s",
            "--expect-workers",
            "2",
            "--resilience-profile",
            str(profile),
            "--resilience-report",
            str(report_path),
            "--json-file",
            str(stats),
        ),
    )
    workers = [worker(port) for _ in range(2)]
    out = finish(m, timeout=90)
    worker_out = [finish(w, timeout=30) for w in workers]
    assert m.returncode == 0, out[-4000:]
    assert [w.returncode for w in workers] == [0, 0], worker_out
    report = json.loads(report_path.read_text())
    assert report["mode"] == "master"
    assert len(report["workers"]["reported"]) == 2 and report["workers"]["missing"] == []
    faults = report["faults"]
    injected = re.findall(r"fault #(\d+) \w+ injected", out)
    assert [f["id"] for f in faults] == [int(i) for i in injected] == list(range(1, len(faults) + 1))
    assert len(faults) >= 3
    assert not any("injected" in w for w in worker_out)  # chaos runs once, on the master
    progress = re.findall(r"^fault (\d+) \w+: (\d+) failed, recovered in", out, re.M)  # the workers' windows merged
    assert [int(i) for i, _ in progress] == [f["id"] for f in faults], progress
    assert [int(n) for _, n in progress] == [f["failures"] for f in faults], progress
    timeline = report["timeline"]  # both workers' seconds, merged exactly
    assert sum(timeline["types"]["REDIS"]["requests"]) == report["summary"]["requests"]
    assert max(u or 0 for u in timeline["users"]) == 20
    for f in faults:
        assert f["ok"] and f["requests"] > 0 and "missing_workers" not in f and f["recovery_s"] is not None, f
        # the master's witness: resets leave the server answering (a late reply of a busy machine at most:
        # 58 ms seen with the suite's three loads on two cores); the clients' recovery is all excess, less
        # such a late reply when the witness saw one
        assert f["outage_s"] is not None and f["outage_s"] <= 0.2, f
        outage_end = 0.0 if f["outage_started_s"] is None else f["outage_started_s"] + f["outage_s"]
        assert abs(f["client_excess_s"] - (f["recovery_s"] - outage_end)) <= 0.002, f
    resets = [f for f in faults if f["name"] == "pool_reset"]
    assert resets, [f["name"] for f in faults]  # ci.yaml's seed draws a pool_reset first
    for f in resets:  # broadcast, done and acknowledged by both workers' 20 users
        assert f["details"]["pools"] == 20 and "unacknowledged_workers" not in f["details"], f
    # totals add up: the report's, the workers' own, and Locust's
    per_worker = report["workers"]["figures"]
    assert sum(w["requests"] for w in per_worker.values()) == report["summary"]["requests"]
    assert all(w["requests"] > 0 and w["windows"] == len(faults) for w in per_worker.values())
    assert report["summary"]["requests"] == locust_total(stats.with_suffix(".json"))
    assert report["summary"]["lost_writes"] == 0
    assert report["integrity"]["ledger"]["acknowledged"] > 0
    assert_server_gone(report)


def test_processes_mode_exit_code_is_the_masters_verdict(tmp_path: Path) -> None:
    profile = write_profile(tmp_path / "impossible.yaml", {"slo": {"min_requests": 1_000_000_000}})
    report_path, stats = tmp_path / "report.json", tmp_path / "stats"
    port = str(free_port())  # not Locust's default 5557: another run on this machine may hold it
    proc = locust(
        [
            "--processes",
            "2",
            "--master-bind-port",
            port,
            "--master-port",
            port,
            *headless_args(
                10,
                "6s",
                "--resilience-profile",
                str(profile),
                "--resilience-report",
                str(report_path),
                "--json-file",
                str(stats),
            ),
        ]
    )
    out = finish(proc, timeout=60)
    assert proc.returncode == 3, out[-4000:]
    assert "SLO BREACHED min_requests" in out
    report = json.loads(report_path.read_text())
    assert report["mode"] == "master" and len(report["workers"]["reported"]) == 2
    assert report["summary"]["requests"] == locust_total(stats.with_suffix(".json")) > 0
    assert_server_gone(report)


@HEAVY
def test_a_worker_killed_mid_run_is_reported_missing(tmp_path: Path) -> None:
    port = free_port()
    report_path = tmp_path / "report.json"
    m = master(
        port,
        headless_args(
            10,
            "14s",
            "--expect-workers",
            "2",
            "--resilience-profile",
            "config/ci.yaml",
            "--resilience-report",
            str(report_path),
        ),
    )
    doomed, survivor = worker(port), worker(port)
    head = wait_for_output(m, r"fault #3 \w+ injected", 40)  # both workers have sent window 1; then one dies
    os.killpg(doomed.pid, signal.SIGKILL)
    out = head + finish(m, timeout=120)
    finish(survivor, timeout=30)
    doomed.wait(10)
    assert m.returncode == 3, out[-4000:]  # a missing worker breaches max_missing_workers
    report = json.loads(report_path.read_text())
    missing = report["workers"]["missing"]
    assert len(missing) == 1 and len(report["workers"]["reported"]) == 1
    assert any(f.get("missing_workers") == missing for f in report["faults"][1:])
    assert report["faults"][0].get("missing_workers") is None  # it sent that window before it died
    assert "integrity" in report and "error" in report["integrity"]
    assert [s["name"] for s in report["slo"] if not s["ok"]] == ["max_lost_writes", "max_missing_workers"]
    assert_server_gone(report)


def test_remote_worker_needs_its_own_redis_url() -> None:
    embedded = "redis://:pw@127.0.0.1:40000/0"
    assert remote_worker_error(embedded, "127.0.0.1", None) is None  # same host
    assert remote_worker_error(embedded, "10.1.2.3", "redis://cache.internal:6379") is None  # names its own
    assert remote_worker_error("redis://cache.internal:6379/0", "10.1.2.3", None) is None  # reachable name
    error = remote_worker_error(embedded, "10.1.2.3", None)
    assert error is not None and "--redis-url" in error and "pw" not in error
    assert remote_worker_error("redis://[::1]:6379/0", "master.example", None) is not None


def test_acknowledged_details_add_up_over_the_workers() -> None:
    acks = {
        "w1": {"details": {"pools": 3, "connections_closed": 5, "in_use": 1}, "error": None},
        "w2": {"details": {"pools": 2, "connections_closed": 4, "in_use": 0}, "error": None},
    }
    assert combine_acks(acks, ["w1", "w2", "w3"]) == {
        "pools": 5,
        "connections_closed": 9,
        "in_use": 1,
        "unacknowledged_workers": ["w3"],
    }
    assert combine_acks(acks, ["w1", "w2"]) == {"pools": 5, "connections_closed": 9, "in_use": 1}
    failed = {"w1": {"details": {}, "error": "ValueError: bad"}}
    with pytest.raises(RuntimeError, match="worker w1: ValueError: bad"):
        combine_acks(failed, ["w1"])
