"""What the witness probe costs the server it watches, run by hand:

    .venv/bin/python bench/witness.py [--requests 400000] [--rounds 3]

An embedded redis-server under ``redis-benchmark`` (SET and GET, 50 clients) with the witness off,
then on, in turns: requests per second, the server's requests per CPU-second (its utime + stime
from /proc), and the probe process's own CPU share.
"""

from __future__ import annotations

import locust  # noqa: F401  (first: it patches the standard library with gevent)

import argparse
import os
import shutil
import subprocess
import time
from pathlib import Path

from targets.embedded import EmbeddedRedis
from targets.witness import Witness

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def load(port: int, requests: int) -> float:
    """redis-benchmark's wall time for ``requests`` SETs and as many GETs."""
    begin = time.monotonic()
    subprocess.run(
        ["redis-benchmark", "-p", str(port), "-t", "set,get", "-n", str(requests), "-c", "50", "-q"],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return time.monotonic() - begin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=400_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if shutil.which("redis-benchmark") is None:
        raise SystemExit("redis-benchmark is not installed (Debian: redis-tools)")
    server = EmbeddedRedis().start()
    assert server.pid is not None
    try:
        for _ in range(args.rounds):
            for witness_on in (False, True):
                witness = Witness(server.host, server.port, "rr-bench-witness").start() if witness_on else None
                probe_before = cpu_s(witness.process.pid) if witness and witness.process else 0.0
                server_before = cpu_s(server.pid)
                wall = load(server.port, args.requests)
                server_cpu = cpu_s(server.pid) - server_before
                probe_cpu = cpu_s(witness.process.pid) - probe_before if witness and witness.process else 0.0
                if witness is not None:
                    witness.stop()
                done = 2 * args.requests
                print(
                    f"witness {'on ' if witness_on else 'off'}: {done / wall:9.0f} requests/s, "
                    f"{done / server_cpu:9.0f} requests per server CPU-second, probe CPU {probe_cpu / wall:.1%}"
                )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
