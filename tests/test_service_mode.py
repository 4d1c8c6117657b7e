"""Service mode: HTTP users through a real Redis-backed service (the reference service, a real
FastAPI process) on a real redis-server, faults on that Redis, real headless locust runs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from targets.embedded import free_port

from .helpers import SERVICE, finish, headless_args, locust, master, refused_at_setup, worker

pytestmark = SERVICE  # FastAPI start-ups and timed windows: one at a time

ENDPOINTS = [
    {"name": "GET /items", "path": "/items/{n}", "weight": 3, "keys": 100, "expect_status": [200, 404]},
    {"name": "PUT /items", "method": "PUT", "path": "/items/{n}", "keys": 100, "body": {"value": "v {user}"}},
    {"name": "POST /counters", "method": "POST", "path": "/counters/c{n}/incr", "keys": 5},
]
HEALTH = {"path": "/health", "checks": [{"path": "status", "equals": "healthy"}], "wait_s": 3}


def profile(
    path: Path,
    *,
    faults: list[dict[str, Any]],
    mix: dict[str, int] | None = None,
    service: dict[str, Any] | None = None,
    **sections: Any,
) -> Path:
    """A service profile: the embedded target, the reference service on it, these faults."""
    weights = mix or {"cache": 0, "ledger": 0}
    data: dict[str, Any] = {
        "target": {"url": "embedded"},
        "workload": {
            "think_time": {"min_ms": 2, "max_ms": 10},
            "mix": {name: {"weight": w} for name, w in weights.items()},
        },
        "service": {
            "url": "embedded",
            "weight": 1,
            "think_time": {"min_ms": 2, "max_ms": 10},
            "timeout_s": 3,
            "endpoints": ENDPOINTS,
            "health": HEALTH,
            **(service or {}),
        },
        "chaos": {"start_after_s": 3, "every_s": 5, "order": "cycle", "seed": 1, "faults": faults},
        "recovery": {"max_window_s": 4.5, "degraded_latency_floor_ms": 150},
        "slo": {"max_recovery_p95_s": None, "max_error_rate_in_windows": None, "max_error_rate_outside_windows": None},
        **sections,
    }
    path.write_text(yaml.safe_dump(data))
    return path


def run(tmp_path: Path, prof: Path, seconds: int, users: int = 8, *extra: str) -> tuple[int, str, dict[str, Any]]:
    report_path = tmp_path / "report.json"
    proc = locust(
        headless_args(
            users, f"{seconds}s", "--resilience-profile", str(prof), "--resilience-report", str(report_path), *extra
        )
    )
    out = finish(proc, timeout=seconds + 90)
    assert "Traceback" not in out, out[-4000:]
    assert report_path.exists(), out[-4000:]
    return proc.returncode, out, json.loads(report_path.read_text())


@pytest.mark.parametrize("server", ["redis", "valkey"])
def test_killing_the_service_connections_shows_http_failures_and_their_recovery(tmp_path: Path, server: str) -> None:
    kill = {"name": "client_kill", "scope": "service", "name_prefix": "rs-service"}
    reset = {"name": "http", "path": "/chaos/redis-reset", "body": {"force": True}}  # the service's own reset
    prof = profile(
        tmp_path / "kill.yaml",
        faults=[kill, reset],  # no retry: a killed connection is a 503;
        service={"reference_settings": {"RETRIES": "0", "RESET_DELAY_S": "0.3"}},  # a reset's, certain
        chaos={"start_after_s": 3, "every_s": 5, "count": 2, "order": "cycle", "faults": [kill, reset]},
        target={"url": "embedded", "server": server},
    )
    code, out, report = run(tmp_path, prof, 13)
    assert {s["server"] for s in report["environment"]["servers"]} == {server}, report["environment"]
    assert code == 0, out[-4000:]
    faults = report["faults"]
    assert [f["name"] for f in faults] == ["client_kill", "http"] and all(f["ok"] for f in faults), faults
    for f in faults:
        assert list(f["by_type"]) == ["HTTP"]  # a service-only run: no Redis users
        assert f["recovered"] and f["recovery_s"] is not None
    details = faults[0]["details"]
    assert details["connections_found"] >= 1 and details["connections_killed"] == details["connections_found"]
    assert details["connections_at_window_close"] >= 1, details  # the service reconnected
    assert faults[1]["details"]["status"] == 200  # POST <service>/chaos/redis-reset
    # Whether the kill fails requests is the service's redis-py's doing: redis.asyncio 8.1's pool hands out a
    # killed idle connection (a 503 with no retry), 8.2's reconnects it at checkout; connections in use when
    # killed or force-reset fail on either (whether one is in use at that instant is chance: the reset's 0.3 s
    # of holding the pool makes its 503s certain; the next test asserts where they land).
    assert faults[1]["failures"] > 0, faults[1]
    assert "BadAnswer('status 503" in out  # Locust's error report: the service's 503s
    assert "connections:" in out and "at the window's close" in out
    assert report["service"]["health_at_end"]["healthy"] is True
    assert [s["ok"] for s in report["slo"] if s["name"] == "service_recovered_at_end"] == [True]


def test_a_slow_reset_endpoints_own_failures_are_in_its_window_and_none_outside(tmp_path: Path) -> None:
    """The service's reset holds its pool for 0.6 s and answers 503 meanwhile (RESET_DELAY_S), with no retry:
    every failure of the run comes while an injection call runs, so every one is in that fault's window,
    which opens when the call begins; recovery counts from there."""
    reset = {"name": "http", "path": "/chaos/redis-reset", "body": {"force": True}}
    prof = profile(
        tmp_path / "slow-reset.yaml",
        faults=[reset],
        service={"reference_settings": {"RETRIES": "0", "RESET_DELAY_S": "0.6"}},
        chaos={"start_after_s": 3, "every_s": 4, "count": 2, "faults": [reset]},
        recovery={"max_window_s": 3.5, "degraded_latency_floor_ms": 150},
    )
    code, out, report = run(tmp_path, prof, 12, 10)
    assert code == 0, out[-4000:]
    faults = report["faults"]
    assert [f["name"] for f in faults] == ["http", "http"] and all(f["ok"] for f in faults), faults
    for f in faults:
        assert f["details"]["status"] == 200 and f["inject_ms"] >= 550, f  # the call took the delay
        call_s = f["inject_ms"] / 1000
        assert f["failures"] >= 5, f  # the 503s while the reset held the pool: this fault's
        assert 0 <= f["first_error_s"] < call_s, f  # they came during the call
        # the last 503 came at the call's end at the earliest: recovery counts from the call's start
        assert call_s - 0.15 <= f["recovery_s"] <= call_s + 1.0, f
    outside = report["summary"]["outside_windows"]
    assert outside["requests"] > 0 and outside["failures"] == 0, report["summary"]
    assert "BadAnswer('status 503" in out  # Locust's error report: the service's 503s


def test_scope_others_kills_the_service_and_never_the_pack_and_the_report_splits_by_type(tmp_path: Path) -> None:
    fault = {"name": "client_kill", "scope": "others", "allow_scope_all": True}
    prof = profile(
        tmp_path / "others.yaml",
        faults=[fault],
        mix={"cache": 1, "ledger": 1},
        service={"reference_settings": {"RETRIES": "0"}},
    )
    code, out, report = run(tmp_path, prof, 11, 12)
    assert code == 0, out[-4000:]
    faults = [f for f in report["faults"] if f["ok"]]
    assert faults, report["faults"]
    for f in faults:
        assert set(f["by_type"]) == {"HTTP", "REDIS"}
        redis_side = f["by_type"]["REDIS"]
        assert redis_side["requests"] > 0
        # The pack's own connections were not touched: no reconnection, no failure, no retry
        assert (redis_side["failures"], redis_side["reconnections"], redis_side["hidden_retries"]) == (0, 0, 0)
        assert f["details"]["connections_killed"] >= 1  # the service's were
        assert f["outage_s"] is not None  # the witness lived on
    summary = report["summary"]["by_type"]
    assert summary["REDIS"]["failures"] == 0 and summary["HTTP"]["requests"] > 0
    # The service's own requests may fail or not: redis.asyncio 8.2 reconnects a killed idle connection at
    # checkout, 8.1 handed it out (test_killing_the_service_connections_...). The pack's were never touched.
    assert report["integrity"]["ledger"]["lost"] == 0
    lines = out.splitlines()
    row = next(i for i, line in enumerate(lines) if line.startswith("1  client_kill"))
    assert lines[row + 1].split()[0] == "HTTP" and lines[row + 2].split()[0] == "REDIS", lines[row : row + 3]
    assert any(line.strip().startswith("HTTP: requests") for line in lines)


def test_a_server_restart_is_5xx_during_the_outage_and_recovered_after(tmp_path: Path) -> None:
    prof = profile(
        tmp_path / "restart.yaml",
        faults=[{"name": "server_restart", "down_s": 2}],
        chaos={"start_after_s": 3, "every_s": 9, "count": 1, "faults": [{"name": "server_restart", "down_s": 2}]},
        recovery={"max_window_s": 7, "degraded_latency_floor_ms": 150},
    )
    code, out, report = run(tmp_path, prof, 12)
    assert code == 0, out[-4000:]
    (fault,) = report["faults"]
    http = fault["by_type"]["HTTP"]
    assert http["failures"] > 0, http
    assert "BadAnswer('status 503" in out  # the service's own answer while its Redis was down
    assert http["recovered"] and 1.9 <= http["recovery_s"] <= 5.0, http  # down 2 s, then back
    assert 1.9 <= fault["outage_s"] <= 2.6, fault  # the witness: the server's own outage
    assert report["service"]["health_at_end"]["healthy"] is True


def test_a_service_that_never_reconnects_breaches_service_recovered_at_end(tmp_path: Path) -> None:
    prof = profile(
        tmp_path / "flaw.yaml",
        faults=[{"name": "server_restart", "down_s": 1}],
        service={"reference_settings": {"FLAW": "no_reconnect"}},
        chaos={"start_after_s": 2, "every_s": 9, "count": 1, "faults": [{"name": "server_restart", "down_s": 1}]},
        recovery={"max_window_s": 4, "degraded_latency_floor_ms": 150},
    )
    code, out, report = run(tmp_path, prof, 8, 4)
    assert code == 3, out[-4000:]
    breached = [s for s in report["slo"] if not s["ok"]]
    assert [s["name"] for s in breached] == ["service_recovered_at_end"], report["slo"]
    assert "SLO BREACHED service_recovered_at_end: GET /health still not healthy 3 s after the end" in out
    assert report["service"]["health_at_end"]["status"] == 503
    assert report["faults"][0]["by_type"]["HTTP"]["recovered"] is False


def test_a_200_whose_body_says_unhealthy_is_a_failure(tmp_path: Path) -> None:
    """The health_200 flaw: while Redis is down its health endpoint says 200 {"status": "unhealthy"}."""
    restart = {"name": "server_restart", "down_s": 2}
    health_only = [{"name": "GET /health", "path": "/health", "checks": [{"path": "status", "equals": "healthy"}]}]
    prof = profile(
        tmp_path / "health.yaml",
        faults=[restart],
        service={"reference_settings": {"FLAW": "health_200"}, "endpoints": health_only, "health": None},
        chaos={"start_after_s": 2, "every_s": 9, "count": 1, "faults": [restart]},
        recovery={"max_window_s": 5, "degraded_latency_floor_ms": 150},
    )
    code, out, report = run(tmp_path, prof, 9, 4)
    assert code == 0, out[-4000:]
    http = report["faults"][0]["by_type"]["HTTP"]
    assert http["failures"] > 0 and http["recovered"], http
    # Every failure was a 2xx (a non-2xx status would say "status 503, expected 2xx"): the body said unhealthy.
    assert 'status is "unhealthy", expected "healthy"' in out, out[-3000:]
    assert "expected 2xx" not in out


def test_refusals_before_any_load(tmp_path: Path) -> None:
    """Bad service input stops the run at set-up with one line and exit 2 (no FastAPI start needed)."""
    others = profile(tmp_path / "others.yaml", faults=[{"name": "client_kill", "scope": "others"}])
    line = refused_at_setup(["--resilience-profile", str(others)])
    assert "chaos.faults[0]" in line and "scope: others" in line and "allow_scope_all: true" in line, line
    reset = profile(tmp_path / "reset.yaml", faults=[{"name": "pool_reset"}])
    line = refused_at_setup(["--resilience-profile", str(reset)])
    assert "chaos.faults[0] (pool_reset)" in line and "service-only run" in line and "http fault" in line, line
    kill = profile(tmp_path / "kill.yaml", faults=[{"name": "client_kill", "scope": "service", "user": "app"}])
    line = refused_at_setup(["--resilience-profile", str(kill), "--service-url", "http://10.9.8.7:8080"])
    assert "10.9.8.7 is not a loopback address" in line and "--allow-remote-service" in line, line
    dead = f"http://127.0.0.1:{free_port('127.0.0.1')}"  # nothing listens there
    line = refused_at_setup(["--resilience-profile", str(kill)], env={"RESILIENCE_SERVICE_URL": dead})
    assert "service.endpoints[0]" in line and "no answer" in line and "before the load" in line, line
    line = refused_at_setup(["--resilience-profile", "config/ci.yaml", "--service-url", dead])
    assert "--service-url is given but the profile" in line, line
    line = refused_at_setup(["--resilience-profile", str(kill), "--service-url", f"{dead}/api/v1"])
    assert "no path or query" in line, line
    line = refused_at_setup(["--resilience-profile", str(kill), "--service-url", dead.replace("//", "//tok3n@")])
    assert "header_env" in line and "tok3n" not in line, line  # a token in the URL: refused, never shown


def test_a_master_and_a_worker_run_the_service_users_with_the_masters_service(tmp_path: Path) -> None:
    """The master starts the reference service and tells the worker its URL; the worker's HTTP users call it.
    The master's slow reset fails the worker's requests during its call: the window's start the master sends
    (when the call began) puts them in the fault's window on the worker too."""
    reset = {"name": "http", "path": "/chaos/redis-reset", "body": {"force": True}}
    prof = profile(
        tmp_path / "dist.yaml",
        faults=[reset],
        mix={"cache": 1, "ledger": 0},
        service={"reference_settings": {"RETRIES": "0", "RESET_DELAY_S": "0.6"}},
        chaos={"start_after_s": 3, "every_s": 5, "count": 1, "faults": [reset]},
    )
    port, report_path = free_port("127.0.0.1"), tmp_path / "report.json"
    m = master(
        port,
        headless_args(
            6, "9s", "--expect-workers", "1", "--resilience-profile", str(prof), "--resilience-report", str(report_path)
        ),
    )
    w = worker(port)
    out = finish(m, timeout=90)
    worker_out = finish(w, timeout=30)
    assert m.returncode == 0 and w.returncode == 0, (out[-3000:], worker_out[-3000:])
    assert "Traceback" not in out + worker_out
    report = json.loads(report_path.read_text())
    assert report["mode"] == "master" and report["workers"]["missing"] == []
    assert report["workers"]["figures"][report["workers"]["reported"][0]]["windows"] == 1
    by_type = report["summary"]["by_type"]
    assert by_type["HTTP"]["requests"] > 0 and by_type["REDIS"]["requests"] > 0, by_type
    (fault,) = report["faults"]
    assert set(fault["by_type"]) == {"HTTP", "REDIS"} and fault["details"]["status"] == 200
    http = fault["by_type"]["HTTP"]
    assert http["failures"] >= 3 and http["first_error_s"] < fault["inject_ms"] / 1000, fault  # during the call
    assert report["summary"]["outside_windows"]["failures"] == 0, report["summary"]
    assert report["service"]["health_at_end"]["healthy"] is True
