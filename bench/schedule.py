"""The schedule's lateness at a saturated load generator, and what the witness costs the load, run by hand:

    .venv/bin/python bench/schedule.py [--users 100] [--seconds 40] [--rounds 2]

A headless ``locust`` run on the embedded server (the demo's workloads, ``--users`` users: enough to
keep the load generator's core busy) with a ``client_kill`` every second, the witness on, then off,
in turns. Per run: the faults' ``late_ms`` (p50, p99, max: from the JSON report), requests per second,
and requests per CPU-second of the locust process (its user + system time, from the kernel's
accounting of the finished child).
"""

from __future__ import annotations

import argparse
import json
import math
import resource
import subprocess
import tempfile
import time
from pathlib import Path

import yaml

from chaos.locust_command import headless_command

ROOT = Path(__file__).resolve().parent.parent
LOCUST = ROOT / ".venv" / "bin" / "locust"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def run(users: int, seconds: int, witness: bool, tmp: Path) -> dict[str, float]:
    profile = yaml.safe_load((ROOT / "config" / "default.yaml").read_text())
    profile["chaos"].update(
        start_after_s=3, every_s=1, jitter_s=0, count=None, order="cycle", faults=[{"name": "client_kill"}]
    )
    profile.setdefault("recovery", {}).update(max_window_s=0.9, witness={"enabled": witness})
    profile["slo"] = {"max_recovery_p95_s": None, "max_error_rate_in_windows": None}
    path = tmp / f"profile-{witness}.yaml"
    path.write_text(yaml.safe_dump(profile))
    report = tmp / f"report-{witness}.json"
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        headless_command(LOCUST, users, seconds, path, report),
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=seconds + 120,
        check=False,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)  # locust and its servers
    data = json.loads(report.read_text())
    late = [f["late_ms"] for f in data["faults"] if f["late_ms"] is not None]
    requests = data["summary"]["requests"]
    return {
        "faults": len(late),
        "late_p50": pct(late, 0.5),
        "late_p99": pct(late, 0.99),
        "late_max": max(late),
        "req_per_s": requests / data["duration_s"],
        "req_per_cpu_s": requests / cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--seconds", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(1, args.rounds + 1):
            for witness in (True, False):
                started = time.monotonic()
                r = run(args.users, args.seconds, witness, Path(tmp))
                print(
                    f"round {round_} witness {'on ' if witness else 'off'}: {r['faults']:.0f} faults, late_ms "
                    f"p50 {r['late_p50']:.1f} p99 {r['late_p99']:.1f} max {r['late_max']:.1f}; "
                    f"{r['req_per_s']:,.0f} req/s, {r['req_per_cpu_s']:,.0f} req per CPU-second "
                    f"({time.monotonic() - started:.0f} s)",
                    flush=True,
                )


if __name__ == "__main__":
    main()
