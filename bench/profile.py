"""Profile one variant of bench/throughput.py with py-spy (run by hand, not a test).

Runs the variant (20 users, no think time, against an embedded redis-server) under ``py-spy record``,
then prints where the users' greenlets spend their time: the functions with the largest share of the
samples, inclusive (with what they call) and self (their own code, or the system call they wait in).
Samples of other threads (gevent's resolver pool) and of start-up (imports) are left out.

    .venv/bin/python bench/profile.py pooled                 # bare, pooled, dedicated or pipelined
    .venv/bin/python bench/profile.py dedicated --seconds 15 --top 40
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VARIANTS = ("bare", "pooled", "dedicated", "pipelined", "pipeline()")


def run_variant(variant: str, seconds: float, users: int) -> None:
    """In the profiled process: the variant, as bench/throughput.py runs it."""
    sys.path.insert(0, str(ROOT))
    import throughput  # after the path: the bench's own module

    from targets.embedded import EmbeddedRedis

    cls, connection, ops_per_request = throughput.VARIANTS[variant]
    with EmbeddedRedis() as server:
        throughput.URL = server.url
        requests, cpu, _ = throughput.run_locust(cls, connection, users, seconds)
    print(f"{variant}: {requests * ops_per_request / cpu:,.0f} ops per CPU-second under the profiler")


def frame(name: str) -> str:
    return re.sub(r":\d+\)$", ")", name)  # a function, whatever the line


def summarize(raw: Path, top: int) -> None:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if "_WorkerGreenlet" in stack or "<module>" in stack:
            continue
        n = int(count)
        total += n
        frames = [frame(f) for f in stack.split(";")]
        for name in set(frames):
            inclusive[name] += n
        own[frames[-1]] += n
    print(f"{total} samples of the users' work")
    for title, counter in (("inclusive", inclusive), ("self", own)):
        print(f"== {title}")
        for name, n in counter.most_common(top):
            print(f"{100 * n / total:5.1f}%  {name}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("variant", choices=VARIANTS)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--rate", type=int, default=400, help="samples a second")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        run_variant(args.variant, args.seconds, args.users)
        return 0
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        print("py-spy is not installed: .venv/bin/pip install -e '.[dev]'", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="rr-profile-") as work:
        raw = Path(work) / "raw.txt"
        child = [__file__, args.variant, "--child", "--seconds", str(args.seconds), "--users", str(args.users)]
        command = [py_spy, "record", "-r", str(args.rate), "-f", "raw", "-o", str(raw), "--", sys.executable, *child]
        done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=args.seconds + 120)
        print("\n".join(line for line in done.stdout.splitlines() if "ops per CPU-second" in line))
        if not raw.exists():
            print(done.stderr[-2000:], file=sys.stderr)
            return 1
        summarize(raw, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
