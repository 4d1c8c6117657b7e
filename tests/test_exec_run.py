"""The exec fault measured: real headless Locust runs against a real redis-server, the command a redis-cli of
the test's. The witness's outage and the fault's window are the scheduler's, as for any fault."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
from pathlib import Path
from typing import Any

import pytest
import redis

from targets.embedded import EmbeddedRedis, server_binaries

from .helpers import HEAVY, eventually, finish, headless_args, locust, pid_alive, write_profile

pytestmark = HEAVY


def run(tmp_path: Path, url: str, chaos: dict[str, Any], seconds: int, **overrides: Any) -> dict[str, Any]:
    """A headless run of 5 users against ``url`` with this chaos section; its one fault's record."""
    profile = write_profile(
        tmp_path / "p.yaml",
        {
            "chaos": {"start_after_s": 2, "jitter_s": 0, "count": 1, **chaos},
            "recovery": {"max_window_s": 3},
            **overrides,
        },
    )
    report_path = tmp_path / "report.json"
    proc = locust(
        headless_args(
            5,
            f"{seconds}s",
            "--resilience-profile",
            str(profile),
            "--redis-url",
            url,
            "--resilience-report",
            str(report_path),
        )
    )
    out = finish(proc, timeout=90)
    assert proc.returncode == 0 and "Traceback" not in out, out[-4000:]
    assert re.search(r"^fault 1 exec: \d+ failed, recovered in ", out, re.M), out[-4000:]  # its progress line
    (fault,) = json.loads(report_path.read_text())["faults"]
    assert fault["name"] == "exec" and fault["ok"], fault
    return dict(fault)


@pytest.mark.parametrize("kind", ["redis", "valkey"])
def test_debug_sleep_1_is_a_1_s_outage_and_the_clients_are_degraded_in_its_window(tmp_path: Path, kind: str) -> None:
    server = EmbeddedRedis(extra_args=("--enable-debug-command", "local"), server=server_binaries(kind)).start()
    try:
        sleep = {"name": "exec", "command": ["redis-cli", "-e", "-p", str(server.port), "DEBUG", "SLEEP", "1"]}
        fault = run(tmp_path, server.url, {"faults": [sleep]}, seconds=7)
    finally:
        server.stop()
    details = fault["details"]
    assert details["exit_code"] == 0 and details["stdout"] == "OK\n" and details["stderr"] == "", details
    assert 1000 <= details["ran_ms"] <= 1500, details  # redis-cli returns when the server answers again
    # the server stops answering for 1 s (DEBUG SLEEP blocks it), inside the injection call that opens the window
    assert 0.95 <= fault["outage_s"] <= 1.2, fault
    assert -0.005 <= fault["outage_started_s"] <= fault["inject_ms"] / 1000, fault
    # every user had a request held up by it: degraded in the window, recovered once the server answered again
    assert fault["degraded"] >= 1 and fault["users_affected"] >= 1, fault
    outage_end = fault["outage_started_s"] + fault["outage_s"]
    assert outage_end - 0.005 <= fault["recovery_s"] <= outage_end + 0.5, fault


def test_a_shutdown_restarted_by_revert_command_after_hold_s_is_an_outage_of_its_down_time(tmp_path: Path) -> None:
    server = EmbeddedRedis().start()
    pidfile = tmp_path / "restarted.pid"
    port = str(server.port)
    shutdown = {
        "name": "exec",
        "command": ["redis-cli", "-e", "-p", port, "SHUTDOWN", "NOSAVE"],
        "hold_s": 1,
        "revert_command": [
            "redis-server",
            "--port",
            port,
            "--bind",
            "127.0.0.1",
            "--daemonize",
            "yes",
            "--pidfile",
            str(pidfile),
            "--dir",
            str(tmp_path),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
    }
    try:
        # redis-py's backoff (up to 1 s) after a 1 s outage: the recovery may pass the default 2 s SLO
        slo = {"max_lost_writes": None, "max_recovery_p95_s": None}
        fault = run(tmp_path, server.url, {"faults": [shutdown]}, seconds=8, slo=slo)
        with redis.Redis(port=server.port) as client:
            assert client.ping()  # the restarted server serves
    finally:
        server.stop()
        restarted = int(pidfile.read_text()) if pidfile.exists() else None
        if restarted is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(restarted, signal.SIGTERM)
    assert restarted is not None, "revert_command wrote no pidfile"
    eventually(f"the restarted redis-server {restarted} stopped", lambda: not pid_alive(restarted), 10)
    assert fault["details"]["exit_code"] == 0 and fault["details"]["revert"]["exit_code"] == 0, fault["details"]
    # down from the SHUTDOWN (inside the call) until the restart hold_s after the call returned, plus its start-up
    assert 0.99 <= fault["duration_s"] <= 1.2, fault
    assert 0.99 <= fault["outage_s"] <= 1.5, fault
    assert -0.005 <= fault["outage_started_s"] <= fault["inject_ms"] / 1000 + 0.01, fault
    assert fault["recovery_s"] is not None and fault["recovery_s"] >= fault["outage_s"] - 0.01, fault
