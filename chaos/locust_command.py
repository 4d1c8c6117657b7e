"""The command line of a timed, headless Locust run of the pack: what the matrix's cells, the benchmarks
and the tests start, written once."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCUSTFILE = ROOT / "locustfile.py"


def headless_args(users: int | str, run_time: str, *extra: str) -> list[str]:
    """Locust's arguments for a timed run: ``users`` all spawned at once, for ``run_time`` (e.g. ``"10s"``),
    then ``extra``."""
    return ["-u", str(users), "-r", str(users), "-t", run_time, *extra]


def headless_command(
    locust: str | Path,
    users: int,
    seconds: int,
    profile: Path,
    report: Path,
    *extra: str,
    locustfile: Path = LOCUSTFILE,
) -> list[str]:
    """``locust -f <locustfile> --headless`` with ``users`` for ``seconds``, the profile and report, then ``extra``."""
    return [
        str(locust),
        "-f",
        str(locustfile),
        "--headless",
        *headless_args(users, f"{seconds}s", "--resilience-profile", str(profile), "--resilience-report", str(report)),
        *extra,
    ]
