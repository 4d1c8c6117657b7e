"""How long faults really last under the demo's load, run by hand:

    .venv/bin/python bench/durations.py [--users 50]

Headless ``locust`` runs (``--users`` users of the demo's workloads) with an independent probe process
next to the server (tests/stall_probe.py: one blocking command every 1 ms, not the pack's witness):

1. a redis-server of its own: ``client_pause`` ALL 500, 1000, 5000 ms and WRITE 1000, 5000 ms, then
   ``oom`` for 1 s; probes: PING (held by ALL), SET (held by both modes), CONFIG GET maxmemory;
2. the embedded server: three ``server_restart`` with ``down_s: 1``; probe: PING;
3. a redis-server behind the built-in fault proxy: three ``network`` ``reset_peer`` toxics of 1 s;
   probe: PING through the proxy;
4. the early revert: SIGINT 2 s into a 30 s ``client_pause`` ALL, and how soon after the signal the
   server answers the probe again.

Per fault: what was asked, what the probe measured, the error, and the report's ``outage_s``.
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from chaos.locust_command import headless_command

ROOT = Path(__file__).resolve().parent.parent
LOCUST = ROOT / ".venv" / "bin" / "locust"
PROBE = ROOT / "tests" / "stall_probe.py"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Probe:
    def __init__(self, port: int, command: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(PROBE), "127.0.0.1", str(port), "--command", command],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "READY"

    def spans(self, longer_than_s: float = 0.3) -> list[float]:
        time.sleep(0.1)
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.close()
        out = self.proc.stdout.read()
        self.proc.wait(10)
        spans = [float(b) - float(a) for _, a, b in (line.split() for line in out.splitlines())]
        return [s for s in spans if s > longer_than_s]


STARTED: list[subprocess.Popen[bytes]] = []  # every redis-server this script starts: stopped at its end


def redis_server(port: int, directory: str) -> subprocess.Popen[bytes]:
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--save", "", "--appendonly", "no", "--dir", directory],
        stdout=subprocess.DEVNULL,
    )
    STARTED.append(server)
    time.sleep(0.3)
    return server


def profile(tmp: Path, name: str, overrides: dict[str, Any]) -> Path:
    data = yaml.safe_load((ROOT / "config" / "default.yaml").read_text())
    for key, value in overrides.items():
        data.setdefault(key, {}).update(value)
    data["slo"] = {"max_lost_writes": None, "max_recovery_p95_s": None, "max_error_rate_in_windows": None}
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def locust(users: int, seconds: int, path: Path, report: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        headless_command(LOCUST, users, seconds, path, report, *extra),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def show(what: str, asked_s: float, measured: list[float], faults: list[dict[str, Any]]) -> None:
    for i, (got, fault) in enumerate(zip(measured, faults, strict=False)):
        outage = fault.get("outage_s")
        print(
            f"{what:<24} #{i + 1}: asked {asked_s * 1000:7.1f} ms, probe {got * 1000:7.1f} ms, "
            f"error {(got - asked_s) * 1000:+6.1f} ms, report outage_s {outage}"
        )
    if len(measured) != len(faults):
        print(f"{what}: {len(measured)} probe spans for {len(faults)} faults")


def chaos(faults: list[dict[str, Any]], every_s: float) -> dict[str, Any]:
    return {
        "enabled": True,
        "start_after_s": 3,
        "every_s": every_s,
        "jitter_s": 0,
        "count": len(faults),
        "order": "cycle",
        "faults": faults,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=50)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        # 1. pauses and oom on a server of our own
        port = free_port()
        server = redis_server(port, tmp_name)
        pauses = [(500, "ALL"), (1000, "ALL"), (5000, "ALL"), (1000, "WRITE"), (5000, "WRITE")]
        faults = [{"name": "client_pause", "pause_ms": ms, "mode": mode} for ms, mode in pauses]
        faults.append({"name": "oom", "duration_s": 1})
        path = profile(tmp, "pauses", {"chaos": chaos(faults, 7), "recovery": {"max_window_s": 6.5}})
        probes = {c: Probe(port, c) for c in ("PING", "SET", "MAXMEMORY")}
        report = tmp / "pauses.json"
        locust(args.users, 3 + 7 * len(faults) + 2, path, report, "--redis-url", f"redis://127.0.0.1:{port}/0").wait()
        spans = {c: p.spans() for c, p in probes.items()}
        server.kill()
        server.wait()
        rows = json.loads(report.read_text())["faults"]
        all_rows = [r for r in rows if r["params"].get("mode") == "ALL"]
        write_rows = [r for r in rows if r["params"].get("mode") == "WRITE"]
        ping = iter(spans["PING"])
        for r in all_rows:
            show(f"client_pause ALL {r['params']['pause_ms']}", r["params"]["pause_ms"] / 1000, [next(ping)], [r])
        writes = [
            s
            for s, r in zip(spans["SET"], [r for r in rows if r["name"] == "client_pause"], strict=False)
            if r["params"]["mode"] == "WRITE"
        ]
        for s, r in zip(writes, write_rows, strict=False):
            show(f"client_pause WRITE {r['params']['pause_ms']}", r["params"]["pause_ms"] / 1000, [s], [r])
        show("oom 1 s", 1.0, spans["MAXMEMORY"], [r for r in rows if r["name"] == "oom"])
        # 2. restarts of the embedded server
        path = profile(
            tmp,
            "restart",
            {"chaos": chaos([{"name": "server_restart", "down_s": 1}] * 3, 3), "recovery": {"max_window_s": 2.5}},
        )
        report = tmp / "restart.json"
        proc = locust(args.users, 13, path, report)
        assert proc.stdout is not None
        head = ""
        while not (found := re.search(r"redis://127\.0\.0\.1:(\d+)", head)):
            line = proc.stdout.readline()
            if not line:
                raise SystemExit(f"locust ended before naming its server:\n{head}")
            head += line
        probe = Probe(int(found.group(1)), "PING")
        proc.communicate(timeout=120)
        show("server_restart down_s 1", 1.0, probe.spans(), json.loads(report.read_text())["faults"])
        # 3. a toxic through the built-in proxy
        port, listen = free_port(), free_port()
        server = redis_server(port, tmp_name)
        toxic = {"name": "network", "toxic": "reset_peer", "duration_s": 1}
        path = profile(
            tmp,
            "network",
            {
                "chaos": chaos([toxic] * 3, 3),
                "recovery": {"max_window_s": 2.5},
                "target": {"proxy": {"listen_port": listen}},
            },
        )
        report = tmp / "network.json"
        proc = locust(args.users, 13, path, report, "--redis-url", f"redis://127.0.0.1:{port}/0")
        time.sleep(2)
        probe = Probe(listen, "PING")
        proc.communicate(timeout=120)
        show("network reset_peer 1 s", 1.0, probe.spans(), json.loads(report.read_text())["faults"])
        # 4. SIGINT during a long pause
        path = profile(tmp, "sigint", {"chaos": chaos([{"name": "client_pause", "pause_ms": 30_000}], 60)})
        proc = locust(args.users, 60, path, tmp / "sigint.json", "--redis-url", f"redis://127.0.0.1:{port}/0")
        probe = Probe(port, "PING")
        time.sleep(6.5)  # locust starts (~1.5 s), the pause begins 3 s later: about 2 s into it
        signalled = time.monotonic()
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=60)
        time.sleep(0.1)
        assert probe.proc.stdin is not None and probe.proc.stdout is not None
        probe.proc.stdin.close()
        ends = [float(line.split()[2]) for line in probe.proc.stdout.read().splitlines() if line.startswith("STALL")]
        after = [end - signalled for end in ends if end > signalled]
        print(f"SIGINT 2 s into a 30 s ALL pause: the server answered again {after[0]:.3f} s after the signal")
        server.kill()
        server.wait()


if __name__ == "__main__":
    try:
        main()
    finally:
        for started in STARTED:
            started.kill()
            started.wait()
