"""Resets on demand and the chaos status on the web UI: real ``locust`` processes with the web UI on loopback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from targets.embedded import EmbeddedRedis, free_port

from .helpers import embedded_report, finish, web_locust, worker, write_profile

MAX_WINDOW_S = 1.5


def users_running(status: dict[str, Any]) -> bool:
    """5 users' connections, in their pools and on the server: a pool counts a connection from its
    checkout, the server lists it once connected and named, a moment later (seen: 5 against 1)."""
    pools, server = status["connections"]["pools"], status["connections"]["server"]
    return bool(status["running"] and pools and pools["total"] >= 5 and (server["clients"] or 0) >= 5)


def profile(tmp_path: Path, server: EmbeddedRedis, chaos: dict[str, Any]) -> Path:
    return write_profile(
        tmp_path / "web.yaml",
        {"target": {"url": server.url}, "chaos": chaos, "recovery": {"max_window_s": MAX_WINDOW_S}},
    )


def test_reset_on_demand_is_a_fault_of_the_run(tmp_path: Path, redis_server: EmbeddedRedis) -> None:
    quiet = profile(tmp_path, redis_server, {"start_after_s": 3600})  # the schedule never fires in this test
    report_path = tmp_path / "report.json"
    args = ["-u", "5", "-r", "5", "--resilience-profile", str(quiet), "--redis-url", redis_server.url]
    with web_locust(args, report_path) as run:
        status = run.status_when(users_running, 30, "5 users' connections")
        assert status["mode"] == "local" and status["active_fault"] is None and status["faults"]["count"] == 0
        pools, server = status["connections"]["pools"], status["connections"]["server"]
        assert pools["pools"] == 5 and pools["in_use"] + pools["idle"] == pools["total"] >= 5
        assert server["error"] is None and server["clients"] >= 5 and server["tag"] == f"rr-{status['run_id']}-"

        code, page = run.call("/")
        assert code == 200 and 'id="rr-chaos-reset"' in page and "./chaos/panel.js" in page and 'id="root"' in page
        code, script = run.call("/chaos/panel.js")
        assert code == 200 and 'base + "redis-reset"' in script and "force: true" in script

        for bad in ({}, {"force": False}, {"force": "true"}, {"fault": "pool_reset"}):
            code, body = run.call("/chaos/redis-reset", bad)
            assert code == 400 and "force" in body["error"], (bad, body)
        code, body = run.call("/chaos/redis-reset", raw=b"not json")
        assert code == 400 and "JSON" in body["error"]
        code, body = run.call("/chaos/redis-reset", {"force": True, "fault": "no_such_fault"})
        assert code == 400 and "unknown fault 'no_such_fault'" in body["error"] and "pool_reset" in body["error"]

        code, reset = run.call("/chaos/redis-reset", {"force": True})
        assert code == 200, reset
        assert reset["fault_id"] == 1 and reset["name"] == "pool_reset" and reset["trigger"] == "web"
        assert reset["ok"] and reset["error"] is None
        assert reset["details"]["pools"] == 5 and reset["details"]["connections_closed"] >= 5

        # its window closes after max_window_s; then a second fault, of another name, with the profile's params
        run.status_when(lambda s: s["elapsed_s"] > reset["offset_s"] + MAX_WINDOW_S + 0.5, 15, "the window closed")
        code, kill = run.call("/chaos/redis-reset", {"force": True, "fault": "client_kill"})
        assert code == 200, kill
        assert kill["fault_id"] == 2 and kill["params"]["scope"] == "own" and kill["details"]["connections_killed"] >= 1
        status = run.status_when(
            lambda s: s["elapsed_s"] > kill["offset_s"] + MAX_WINDOW_S + 0.5, 15, "its window closed"
        )
        assert [(r["id"], r["name"], r["trigger"]) for r in status["faults"]["records"]] == [
            (1, "pool_reset", "web"),
            (2, "client_kill", "web"),
        ]

        report = run.stop()
        code, body = run.call("/chaos/redis-reset", {"force": True})
        assert code == 409 and "no test is running" in body["error"]
        assert run.status_when(lambda s: not s["running"], 5, "no test")["active_fault"] is None
    assert run.proc.returncode == report["exit_code"]
    faults = report["faults"]
    assert [(f["id"], f["name"], f["trigger"]) for f in faults] == [(1, "pool_reset", "web"), (2, "client_kill", "web")]
    first = faults[0]
    assert first["ok"] and first["offset_s"] == reset["offset_s"] and first["details"] == reset["details"]
    assert first["window_s"] == pytest.approx(MAX_WINDOW_S, abs=0.3) and first["requests"] > 0
    assert first["recovered"] and first["recovery_s"] is not None and first["reconnections"] >= 1
    assert faults[1]["ok"] and faults[1]["requests"] > 0 and faults[1]["recovered"]
    assert report["summary"]["faults_injected"] == 2 and report["summary"]["lost_writes"] == 0


def test_no_chaos_resets_on_demand_one_fault_at_a_time(tmp_path: Path, redis_server: EmbeddedRedis) -> None:
    paused = profile(tmp_path, redis_server, {"faults": [{"name": "client_pause", "pause_ms": 3000, "mode": "WRITE"}]})
    report_path = tmp_path / "report.json"
    args = ["-u", "5", "-r", "5", "--no-chaos", "--resilience-profile", str(paused), "--redis-url", redis_server.url]
    with web_locust(args, report_path) as run:
        status = run.status_when(users_running, 30, "5 users' connections")
        assert status["scheduled_chaos"] is False
        code, pause = run.call("/chaos/redis-reset", {"force": True, "fault": "client_pause"})
        assert code == 200, pause  # answered once injected, while the pause is held
        assert pause["params"] == {"pause_ms": 3000, "mode": "WRITE"}  # the profile's entry, not the defaults
        code, body = run.call("/chaos/redis-reset", {"force": True})
        assert code == 409 and "fault #1 client_pause is active" in body["error"]
        active = run.call("/chaos/status")[1]["active_fault"]
        assert active is not None and active["name"] == "client_pause" and active["trigger"] == "web"
        run.status_when(lambda s: s["active_fault"] is None, 15, "the pause reverted")
        code, reset = run.call("/chaos/redis-reset", {"force": True})
        assert code == 200 and reset["fault_id"] == 2 and reset["params"] == {}, reset
        report = run.stop()
    assert report["chaos"] is False
    faults = report["faults"]
    assert [(f["name"], f["trigger"], f["ok"]) for f in faults] == [
        ("client_pause", "web", True),
        ("pool_reset", "web", True),
    ]
    assert faults[0]["duration_s"] >= 3.0 and faults[0]["requests"] > 0
    assert report["summary"]["lost_writes"] == 0


def test_master_status_and_reset_reach_the_workers(tmp_path: Path, redis_server: EmbeddedRedis) -> None:
    quiet = profile(tmp_path, redis_server, {"start_after_s": 3600})
    report_path = tmp_path / "report.json"
    master_port = free_port()
    args = [
        "--master",
        "--master-bind-host",
        "127.0.0.1",
        "--master-bind-port",
        str(master_port),
        "--expect-workers",
        "1",
        "-u",
        "5",
        "-r",
        "5",
        "--resilience-profile",
        str(quiet),
    ]
    with web_locust(args, report_path) as run:
        run.status_when(lambda s: not s["running"], 30, "the web UI, waiting for its worker")
        code, page = run.call("/chaos/resilience")  # before the first test: the report's own pipeline, empty
        waiting = embedded_report(page)
        assert code == 200 and waiting["verdict"] == "running" and waiting["faults"] == [], waiting
        assert waiting["summary"]["requests"] == 0 and waiting["mode"] == "master" and waiting["slo"]
        code, polled = run.call("/chaos/report.json")  # what the view redraws from every 2 s: the same
        assert code == 200 and polled["slo"] == waiting["slo"] and polled["faults"] == [], polled
        work = worker(master_port)
        try:
            status = run.status_when(
                lambda s: s["running"] and (s["connections"]["server"]["clients"] or 0) >= 5,
                60,
                "the worker's 5 connections",
            )
            assert status["mode"] == "master"
            assert status["connections"]["pools"] is None and "workers" in status["connections"]["pools_note"]
            code, reset = run.call("/chaos/redis-reset", {"force": True})
            assert code == 200, reset
            assert reset["trigger"] == "web" and reset["details"]["pools"] == 5  # the worker reset and acknowledged
            assert "unacknowledged_workers" not in reset["details"]
            run.status_when(lambda s: s["elapsed_s"] > reset["offset_s"] + MAX_WINDOW_S + 0.5, 15, "the window closed")
            code, live = run.call("/chaos/report.json")  # made as the final one is: the workers' side too
            assert code == 200 and live["verdict"] == "running", live
            assert len(live["workers"]["expected"]) == 1 and live["workers"]["missing"] == [], live["workers"]
            assert live["faults"][0]["requests"] > 0 and "missing_workers" not in live["faults"][0]
            report = run.stop()
        finally:
            run.quit()
            finish(work, timeout=30)
    assert report["mode"] == "master"
    (fault,) = report["faults"]
    assert fault["trigger"] == "web" and fault["requests"] > 0 and fault["recovered"] and "missing_workers" not in fault
