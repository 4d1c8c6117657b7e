"""Faults last what they say, and the report splits each recovery into the server's outage and what the
clients added: real headless Locust runs against a real redis-server, with an independent probe
(tests/stall_probe.py, not the pack's witness) next to them."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from targets.embedded import EmbeddedRedis

from .helpers import HEAVY, StallProbe, finish, headless_args, locust, wait_for_output, write_profile

pytestmark = HEAVY


def run_profile(tmp_path: Path, overrides: dict[str, Any], args: list[str]) -> dict[str, Any]:
    profile = write_profile(tmp_path / "profile.yaml", overrides)
    report_path = tmp_path / "report.json"
    proc = locust([*args, "--resilience-profile", str(profile), "--resilience-report", str(report_path)])
    out = finish(proc, timeout=120)
    assert "Traceback" not in out, out[-4000:]
    report: dict[str, Any] = json.loads(report_path.read_text())
    return report


def test_five_1000_ms_all_pauses_stall_1000_ms_and_the_report_measures_the_same(
    tmp_path: Path, redis_server: EmbeddedRedis
) -> None:
    probe = StallProbe(redis_server.host, redis_server.port)
    try:
        pauses = {
            "chaos": {
                "start_after_s": 2,
                "every_s": 2.5,
                "jitter_s": 0,
                "count": 5,
                "faults": [{"name": "client_pause", "pause_ms": 1000, "mode": "ALL"}],
            },
            "recovery": {"max_window_s": 2},
        }
        report = run_profile(tmp_path, pauses, headless_args(10, "17s", "--redis-url", redis_server.url))
    finally:
        stalls = [s for s in probe.stop() if s[1] - s[0] > 0.5]
    faults = report["faults"]
    assert [f["ok"] for f in faults] == [True] * 5, faults
    assert len(stalls) == 5, stalls
    for fault, (start, end) in zip(faults, stalls, strict=True):
        stall = end - start
        assert abs(stall - 1.0) <= 0.010, (fault["id"], stall)  # the fault lasts what it says
        assert abs(fault["outage_s"] - stall) <= 0.010, (fault, stall)  # the witness sees what the probe sees
        outage_end = fault["outage_started_s"] + fault["outage_s"]
        # the clients may beat the witness's next probe by its period (2 ms): 1 ms seen once
        assert outage_end - 0.005 <= fault["recovery_s"] <= outage_end + 0.050, fault
        assert abs(fault["client_excess_s"] - (fault["recovery_s"] - outage_end)) <= 0.002, fault
        # the pause began inside the injection call, which the window starts with (+ a probe's period)
        assert -0.005 <= fault["outage_started_s"] <= fault["inject_ms"] / 1000 + 0.01, fault
        assert fault["late_ms"] is not None and 0 <= fault["late_ms"] <= 50, fault
    assert report["summary"]["client_excess_p95_s"] is not None


def test_a_kill_has_no_outage_and_a_1_s_restart_one_of_1_s(tmp_path: Path) -> None:
    profile = write_profile(
        tmp_path / "profile.yaml",
        {
            "chaos": {
                "start_after_s": 4,
                "every_s": 5,
                "jitter_s": 0,
                "count": 2,
                "order": "cycle",
                "faults": [{"name": "client_kill"}, {"name": "server_restart", "down_s": 1}],
            },
            "recovery": {"max_window_s": 4},
            "slo": {"max_lost_writes": None},
        },
    )
    report_path = tmp_path / "report.json"
    proc = locust(
        headless_args(10, "15s", "--resilience-profile", str(profile), "--resilience-report", str(report_path))
    )
    head = wait_for_output(proc, r"against embedded redis-server \(pid \d+, redis://127\.0\.0\.1:\d+", 30)
    port = int(re.findall(r"redis://127\.0\.0\.1:(\d+)", head)[0])
    probe = StallProbe("127.0.0.1", port)
    try:
        out = head + finish(proc, timeout=90)
    finally:
        stalls = [s for s in probe.stop() if s[1] - s[0] > 0.5]
    assert "Traceback" not in out, out[-4000:]
    kill, restart = json.loads(report_path.read_text())["faults"]
    assert kill["name"] == "client_kill" and kill["ok"] and kill["recovery_s"] is not None, kill
    # redis-py defaults: the server never stopped answering (a late reply of a busy machine at most: the
    # suite runs four loads on two cores), so the clients' recovery is all excess
    assert kill["outage_s"] <= 0.1, kill
    if kill["outage_started_s"] is None:
        assert kill["client_excess_s"] == kill["recovery_s"], kill
    else:
        outage_end = kill["outage_started_s"] + kill["outage_s"]
        assert abs(kill["client_excess_s"] - (kill["recovery_s"] - outage_end)) <= 0.002, kill
    assert restart["name"] == "server_restart" and restart["ok"], restart
    # 1.0-1.1 s; 20 ms less allowed: a probe process descheduled for a few ms at the kill (the suite runs
    # four loads on two cores: 0.989 s seen once) starts its gap late; the independent probe's bound is below
    assert 0.98 <= restart["outage_s"] <= 1.1, restart
    assert len(stalls) == 1, stalls
    down = stalls[0][1] - stalls[0][0]
    # down_s: the server does not answer for 1 s: within 20 ms under one load (bench/durations.py); here the
    # suite runs four loads on two cores, where a restart's ~10 ms of start-up CPU took up to 55 ms: the
    # issue's bound for the outage (1.0 to 1.1 s), less 30 ms for a probe woken late
    assert 0.97 <= down <= 1.1, down
    assert abs(restart["outage_s"] - down) <= 0.030, (restart, down)
