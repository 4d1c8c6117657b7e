"""End to end: real headless ``locust`` processes with the embedded redis-server, as a user runs them."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

from .helpers import HEAVY, assert_server_gone, finish, headless_args, locust, wait_for_output, write_profile


@HEAVY
def test_ci_profile_passes_with_recovery_figures(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    proc = locust(
        headless_args(30, "20s", "--resilience-profile", "config/ci.yaml", "--resilience-report", str(report_path))
    )
    out = finish(proc, timeout=90)
    assert proc.returncode == 0, out[-4000:]
    report = json.loads(report_path.read_text())
    assert report["verdict"] == "pass" and report["exit_code"] == 0
    faults = report["faults"]
    assert 5 <= len(faults) <= 7  # start at 3 s, every 3 +/- 0.5 s, for 20 s
    for f in faults:
        assert f["ok"]
        assert f["name"] in ("client_kill", "pool_reset")
        for key in ("id", "offset_s", "requests", "failures", "hidden_retries", "recovery_s", "recovered"):
            assert key in f
        assert f["requests"] > 0
    assert {f["name"] for f in faults} == {"client_kill", "pool_reset"}
    assert report["summary"]["lost_writes"] == 0
    assert "Redis resilience report" in out and "Verdict: PASS (exit code 0)" in out
    assert out.rstrip().splitlines()[-1].startswith("Verdict: PASS")  # the verdict is the last line
    assert "Traceback" not in out
    assert_server_gone(report)


def test_impossible_slo_exits_3_naming_the_slo(tmp_path: Path) -> None:
    profile = write_profile(tmp_path / "impossible.yaml", {"slo": {"min_requests": 1_000_000_000}})
    report_path = tmp_path / "report.json"
    proc = locust(
        headless_args(10, "5s", "--resilience-profile", str(profile), "--resilience-report", str(report_path))
    )
    out = finish(proc, timeout=60)
    assert proc.returncode == 3, out[-4000:]
    assert "SLO BREACHED min_requests" in out and "(under by" in out
    report = json.loads(report_path.read_text())
    assert report["verdict"] == "fail"
    assert [s["name"] for s in report["slo"] if not s["ok"]] == ["min_requests"]
    assert_server_gone(report)


def test_ctrl_c_mid_run_still_reports_and_stops_the_server(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    proc = locust(
        headless_args(10, "120s", "--resilience-profile", "config/ci.yaml", "--resilience-report", str(report_path))
    )
    head = wait_for_output(proc, r"fault #1 \w+ injected", 30)
    interrupted = time.monotonic()
    os.kill(proc.pid, signal.SIGINT)
    out = head + finish(proc, timeout=30)
    assert time.monotonic() - interrupted < 15
    assert "Traceback" not in out
    report = json.loads(report_path.read_text())
    assert len(report["faults"]) >= 1
    assert proc.returncode == report["exit_code"]
    assert_server_gone(report)


def test_every_workload_in_one_headless_run(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    proc = locust(
        headless_args(
            12, "14s", "--resilience-profile", "config/workloads.yaml", "--resilience-report", str(report_path)
        )
    )
    out = finish(proc, timeout=90)
    assert proc.returncode == 0, out[-4000:]
    report = json.loads(report_path.read_text())
    assert len(report["faults"]) >= 2
    integrity = report["integrity"]
    assert {"ledger", "queue", "stream", "lock", "pubsub", "ratelimit", "pipeline", "transaction"} <= set(integrity)
    assert report["summary"]["lost_writes"] == 0 and integrity["lock"]["violations"] == 0
    for command in (
        "GET cache",
        "RPUSH ledger",
        "HGETALL session",
        "BLMOVE queue",
        "PUBLISH pubsub",
        "XREADGROUP stream",
        "EVALSHA lock",
        "EVALSHA ratelimit",
        "ZINCRBY leaderboard",
        "PIPELINE pipeline",
        "EXEC transaction",
    ):
        assert command in out, command
    assert_server_gone(report)


def test_tags_select_workloads(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    stray = {**os.environ, "REDIS_URL": "redis://127.0.0.1:1/0"}  # an application's, left in the shell
    proc = locust(
        headless_args(
            24,
            "4s",
            "-T",
            "queue",
            "--no-chaos",
            "--resilience-profile",
            "config/workloads.yaml",
            "--resilience-report",
            str(report_path),
        ),
        env=stray,
    )
    out = finish(proc, timeout=60)
    assert "BLMOVE queue" in out or "LPUSH queue" in out
    assert "GET cache" not in out and "RPUSH ledger" not in out
    report = json.loads(report_path.read_text())
    assert report["chaos"] is False and report["faults"] == []
    assert report["target"].startswith("embedded redis-server")  # REDIS_URL did not retarget the run
