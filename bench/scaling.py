"""The --processes scaling runs of bench/throughput.py: real headless ``locust --processes N`` runs of one
profile against an embedded server, their steady requests/s, and the cores the load generator (master and
workers) and the server used, sampled with psutil. Every process of a run's session is killed at its end."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import psutil
import yaml

from chaos.locust_command import headless_command
from targets.embedded import end_process

ROOT = Path(__file__).resolve().parent.parent
LOCUST = str(Path(sys.executable).with_name("locust"))


@dataclass
class Scaling:
    """One --processes run: steady requests/s, and the cores its load generator and its server used."""

    requests_per_s: float
    locust_cores: float
    server_cores: float


def cpu_by_kind(root: psutil.Process) -> tuple[float, float]:
    """CPU seconds so far of the locust processes (master, workers) and of the embedded redis-server."""
    locust_s = server_s = 0.0
    for proc in [root, *root.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            name = proc.name()
        except psutil.Error:
            continue
        if name.startswith("redis-server"):
            server_s += times.user + times.system
        else:
            locust_s += times.user + times.system
    return locust_s, server_s


def scaling_run(processes: int, users: int, seconds: int, work: Path, mix: dict[str, object]) -> Scaling | None:
    """A headless locust run with ``processes`` worker processes and the workload ``mix``: its steady-state
    requests/s (from the report's per-second timeline) and the CPU of the locust processes and of the server
    in between."""
    profile = {
        "target": {"url": "embedded"},
        "workload": {"think_time": {"min_ms": 0, "max_ms": 0}, "mix": mix},
        "chaos": {"enabled": False},
        "recovery": {"witness": {"enabled": False}},  # no fault to time: the probe's constant cost would not scale
    }
    profile_path, report = work / f"scaling{processes}.yaml", work / f"scaling{processes}.json"
    profile_path.write_text(yaml.safe_dump(profile))
    command = headless_command(
        LOCUST,
        users,
        seconds,
        profile_path,
        report,
        "--processes",
        str(processes),
        "--only-summary",
        "--no-resilience-progress",
    )
    proc = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        root = psutil.Process(proc.pid)
        time.sleep(5)  # start-up and spawn
        (locust0, server0), t0 = cpu_by_kind(root), time.monotonic()
        time.sleep(max(1.0, seconds - 6))
        (locust1, server1), t1 = cpu_by_kind(root), time.monotonic()
        proc.wait(timeout=seconds + 90)
    except (subprocess.TimeoutExpired, psutil.Error):
        return None
    finally:  # the session's processes (a master that stopped early leaves its workers waiting 60 s for it)
        end_process(proc)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    if not report.exists():
        return None
    requests = json.loads(report.read_text())["timeline"]["types"]["REDIS"]["requests"]
    steady = requests[3:-2]  # without the spawn and the stop
    if not steady:
        return None
    return Scaling(statistics.mean(steady), (locust1 - locust0) / (t1 - t0), (server1 - server0) / (t1 - t0))
