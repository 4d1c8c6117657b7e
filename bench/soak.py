"""Soak run (by hand, not a test): does the pack leak over a long run under constant resets?

One headless ``locust`` process (local runner) against the embedded redis-server, --users users,
a connection reset (client_kill or pool_reset) every --every seconds, for --minutes. Every
--sample seconds it reads the Locust process's RSS and open file descriptors (from /proc) and the
server's ``connected_clients``. At the end it prints:

- RSS after warm-up (--warmup seconds) and at the end, and the growth (target: under 10%);
- open file descriptors after warm-up: min and max (target: flat);
- connected_clients: the baseline before the first fault, and per minute the median (target: back
  to the baseline between resets: no connection leak);
- the report's fault windows: how many, how many recovered, cut short or unresolved (target:
  every window closed).

    .venv/bin/python bench/soak.py                    # 10 minutes, 200 users, a reset every 2 s
    .venv/bin/python bench/soak.py --minutes 1 --users 50
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import redis
import yaml

from chaos.locust_command import headless_command

ROOT = Path(__file__).resolve().parent.parent
LOCUST = str(Path(sys.executable).with_name("locust"))


def profile(every_s: float) -> dict[str, object]:
    return {
        "target": {"url": "embedded"},
        "workload": {
            "think_time": {"min_ms": 1, "max_ms": 10},
            "mix": {"cache": {"weight": 3, "keyspace": 10000, "value_bytes": 256}, "ledger": {"weight": 1}},
        },
        "chaos": {
            "start_after_s": 10,
            "every_s": every_s,
            "jitter_s": 0.2,
            "seed": 7,
            "faults": [{"name": "client_kill"}, {"name": "pool_reset"}],
        },
        "recovery": {"max_window_s": every_s * 0.9, "degraded_latency_floor_ms": 100},
        "slo": {"max_recovery_p95_s": every_s, "max_error_rate_in_windows": 0.2},
    }


def rss_kb(pid: int) -> int:
    match = re.search(r"VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) if match else 0


def fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--every", type=float, default=2.0, help="seconds between resets")
    parser.add_argument("--warmup", type=float, default=60, help="seconds before the RSS baseline")
    parser.add_argument("--sample", type=float, default=1.0, help="seconds between samples")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="rr-soak-"))
    profile_path, report_path = work / "soak.yaml", work / "report.json"
    profile_path.write_text(yaml.safe_dump(profile(args.every)))
    run_s = int(args.minutes * 60)
    proc = subprocess.Popen(
        headless_command(LOCUST, args.users, run_s, profile_path, report_path, "--only-summary"),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    url = None
    output: list[str] = []
    for line in proc.stdout:
        output.append(line)
        found = re.search(r"embedded redis-server \(pid \d+, (redis://127\.0\.0\.1:\d+/0)\)", line)
        if found:
            url = found.group(1)
            break
    if url is None:
        print("".join(output[-40:]))
        return 1
    drain = threading.Thread(target=lambda: output.extend(proc.stdout or []), daemon=True)
    drain.start()

    started = time.monotonic()
    samples: list[tuple[float, int, int, int]] = []  # (t, rss_kb, fds, connected_clients)
    server = redis.Redis.from_url(url, socket_timeout=2)
    try:
        while proc.poll() is None:
            t = time.monotonic() - started
            try:
                clients = int(server.info("clients")["connected_clients"])
                samples.append((t, rss_kb(proc.pid), fds(proc.pid), clients))
            except (OSError, redis.RedisError):
                pass  # the run is ending
            time.sleep(args.sample)
    except KeyboardInterrupt:
        os.killpg(proc.pid, signal.SIGINT)
    proc.wait()
    drain.join(timeout=5)
    server.close()

    report = json.loads(report_path.read_text())
    faults = report["faults"]
    first_fault = min((f["offset_s"] for f in faults), default=run_s)
    warm = [s for s in samples if s[0] >= args.warmup and s[0] <= run_s - 2]
    before = [s[3] for s in samples if s[0] < first_fault - 0.5]
    print(f"soak: {args.minutes:g} min, {args.users} users, a reset every {args.every:g} s; exit {proc.returncode}")
    if warm:
        rss0, rss1 = warm[0][1], warm[-1][1]
        print(
            f"RSS after {args.warmup:g} s warm-up {rss0 / 1024:.1f} MiB, at the end {rss1 / 1024:.1f} MiB: "
            f"growth {100 * (rss1 - rss0) / rss0:+.1f}% (target < 10%)"
        )
        fds_by_minute: dict[int, list[int]] = {}
        for t, _, n, _ in warm:
            fds_by_minute.setdefault(int(t // 60), []).append(n)
        print(
            "open fds per minute after warm-up (median, max; a reset closes every connection for a moment): "
            + ", ".join(f"m{m}: {statistics.median(v):g}/{max(v)}" for m, v in sorted(fds_by_minute.items()))
        )
    if before:
        print(f"connected_clients before the first fault: {statistics.median(before):g} (baseline)")
    per_minute: dict[int, list[int]] = {}
    for t, _, _, clients in samples:
        if first_fault <= t <= run_s - 2:  # while users run
            per_minute.setdefault(int(t // 60), []).append(clients)
    print(
        "connected_clients per minute (median, max): "
        + ", ".join(f"m{m}: {statistics.median(v):g}/{max(v)}" for m, v in sorted(per_minute.items()))
    )
    recovered = sum(1 for f in faults if f.get("recovered"))
    truncated = sum(1 for f in faults if f.get("truncated"))
    print(
        f"fault windows: {len(faults)}, recovered {recovered}, cut short {truncated}, "
        f"unresolved {len(faults) - recovered - truncated}; requests {report['summary']['requests']}, "
        f"lost writes {report['summary']['lost_writes']}, verdict {report['verdict']}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
