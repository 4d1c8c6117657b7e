"""Helpers for the tests (fixtures live in conftest.py): real ``locust`` processes and bounded waits
on them, profiles, and small builders. Nothing here keeps state between calls.

Every wait has a deadline that holds even when a process prints nothing: output is read with a
selector and ``os.read``, never a blocking ``readline`` (which waits for a line that may never come).
"""

from __future__ import annotations

from locust.event import EventHook

import codecs
import contextlib
import json
import os
import re
import selectors
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
import yaml

from chaos.locust_command import headless_args
from chaos.matrix_table import Cell
from recovery.histogram import LatencyHistogram
from recovery.tracker import WindowSummary
from scenarios.client import ConnectionProbe, InstrumentedRedis, RedisRequestFailed, make_pool
from scenarios.run import PackRun, PoolResetResult
from targets.embedded import free_port

ROOT = Path(__file__).resolve().parent.parent
LOCUST = str(Path(sys.executable).with_name("locust"))

# A locust run that keeps a core busy (many users, short think times) and is checked against a clock:
# SLOs, recovery times, a witness's outage to the millisecond. Such runs go to one xdist worker, one at
# a time (``--dist loadgroup``): two at once on a 2-core machine would stretch each other's latencies.
HEAVY = pytest.mark.xdist_group("heavy")
# Service mode's runs (a FastAPI service and a locust run each, checked against their windows) and the
# compare command's noise test: a lane of their own, one at a time, beside the heavy one.
SERVICE = pytest.mark.xdist_group("service")
# The matrix command's runs: light cells (a handful of users) one after another, and the environments they
# build. A worker of their own, beside the heavy runs: they rank cells against each other, not a clock.
MATRIX = pytest.mark.xdist_group("matrix")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0): read its state
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def shipped_profiles() -> list[Path]:
    """Every profile under config/ (config/clients.yaml holds client presets, not a profile)."""
    return sorted(p for p in (ROOT / "config").glob("*.yaml") if p.name != "clients.yaml")


def write_profile(path: Path, overrides: dict[str, Any]) -> Path:
    """A profile file: config/ci.yaml with ``overrides`` merged in (nested dicts merge)."""
    base = yaml.safe_load((ROOT / "config" / "ci.yaml").read_text())

    def merge(into: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
        for key, value in new.items():
            if isinstance(value, dict) and isinstance(into.get(key), dict):
                merge(into[key], value)
            else:
                into[key] = value
        return into

    path.write_text(yaml.safe_dump(merge(base, overrides)))
    return path


def matrix_cell(recovery: float, failures: int, repeat: int, version: str | None = None) -> Cell:
    """A ``no-retry`` cell of the matrix whose report says only this recovery p95 and failures in windows."""
    summary = {
        "recovery_p95_s": recovery,
        "in_windows": {"failures": failures, "error_rate": 0.0},
        "hidden_retries": 0,
        "duplicated_writes": 0,
        "lost_writes": 0,
        "client_excess_p95_s": None,
    }
    return Cell("no-retry", repeat, {"summary": summary, "faults": [], "verdict": "pass"}, 0, version=version)


def no_retry_admin(url: str, name: str = "rradmin-t") -> redis.Redis:
    """An admin link as the pack's faults get one: named as the pack's admin links are (``rradmin``: never a
    fault's victim), with no retry, so that a fault's command fails as it is."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    return redis.Redis.from_url(url, client_name=name, retry=Retry(NoBackoff(), 0))


def no_pools() -> PoolResetResult:
    """A FaultTarget's reset_pools where the test has no users: nothing to reset."""
    return PoolResetResult(pools=0, connections=0, in_use=0)


def eventually(
    what: str, check: Callable[[], bool], timeout_s: float, explain: Callable[[], str] | None = None
) -> None:
    """A bounded wait on a condition of the servers (errors count as not yet); ``explain()`` adds to a failure."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except (redis.RedisError, OSError, RedisRequestFailed):
            pass
        time.sleep(0.05)
    pytest.fail(f"not within {timeout_s}s: {what}" + (f"\n{explain()}" if explain else ""))


# ---- real locust processes ----------------------------------------------------------------------


def locust(args: list[str], **kwargs: Any) -> subprocess.Popen[str]:
    """A headless ``locust`` process on the pack's locustfile, in its own session (so a timeout kills
    it whole), its stderr merged into its stdout."""
    return subprocess.Popen(
        [LOCUST, "-f", str(ROOT / "locustfile.py"), "--headless", *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        **kwargs,
    )


def master(port: int, args: list[str]) -> subprocess.Popen[str]:
    """A headless ``locust --master`` bound to loopback ``port``."""
    return locust(["--master", "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port), *args])


def worker(port: int) -> subprocess.Popen[str]:
    """A ``locust --worker`` of the master on loopback ``port``."""
    return locust(["--worker", "--master-host", "127.0.0.1", "--master-port", str(port)])


def kill(proc: subprocess.Popen[str]) -> str:
    """SIGKILL ``proc`` (its whole session when it leads one: the embedded servers follow it by
    PDEATHSIG); the rest of its output, read for 10 s at most."""
    if proc.poll() is None:  # not reaped yet: its pid is still its own
        with contextlib.suppress(ProcessLookupError):
            if os.getpgid(proc.pid) == proc.pid:
                os.killpg(proc.pid, signal.SIGKILL)
            else:
                proc.kill()
    try:
        out, _ = proc.communicate(timeout=10)
    except subprocess.TimeoutExpired:
        return "\n(its output stayed open 10 s after SIGKILL: a child of it still holds the pipe)"
    return out or ""


def finish(proc: subprocess.Popen[str], timeout: float) -> str:
    """All ``proc`` prints until it exits; after ``timeout`` seconds it is killed and the test fails."""
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"process {proc.pid} did not finish in {timeout}s:\n{kill(proc)[-3000:]}")
    return out or ""


def wait_for_output(proc: subprocess.Popen[str], pattern: str, timeout_s: float) -> str:
    """What ``proc`` printed up to a complete line matching the regex ``pattern``, plus whatever came
    in the same read: keep it (``head + finish(proc, ...)``), :func:`finish` reads only the rest.

    Bounded by ``timeout_s`` even while the process prints nothing. If the line does not come in
    time, or the process ends without it, the process is killed and the test fails with its output.
    """
    assert proc.stdout is not None, "the process needs stdout=subprocess.PIPE"
    fd = proc.stdout.fileno()
    regex = re.compile(pattern, re.MULTILINE)
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    deadline = time.monotonic() + timeout_s
    text, ended = "", False
    with selectors.DefaultSelector() as selector:
        selector.register(fd, selectors.EVENT_READ)
        while not ended and (remaining := deadline - time.monotonic()) > 0:
            if not selector.select(remaining):
                continue  # the deadline is checked again above
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                continue
            ended = not chunk  # end of file: the process closed its output
            text += decoder.decode(chunk, final=ended)
            complete = text[: text.rfind("\n") + 1]
            # a character cut in two by the read would be lost to finish(): read on to its end
            if regex.search(complete) and not decoder.getstate()[0]:
                return text
    why = "the process ended" if ended else f"not within {timeout_s}s"
    pytest.fail(f"no line matching {pattern!r} ({why}):\n{(text + kill(proc))[-3000:]}")


class WebLocust:
    """A ``locust`` process with its web UI on a free loopback port; ``stop()`` ends its test."""

    def __init__(self, args: list[str], report: Path) -> None:
        self.out: str | None = None
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.report = report
        self.proc = subprocess.Popen(
            [
                LOCUST,
                "-f",
                str(ROOT / "locustfile.py"),
                "--web-host",
                "127.0.0.1",
                "--web-port",
                str(self.port),
                "--autostart",
                "-t",
                "120s",
                "--resilience-report",
                str(report),
                *args,
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )

    def call(self, path: str, body: Any = None, raw: bytes | None = None) -> tuple[int, Any]:
        """GET (or POST ``body`` as JSON, or ``raw`` bytes): the status and the decoded JSON (or text)."""
        data = raw if raw is not None else None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method="GET" if data is None else "POST")
        req.add_header("Content-Type", "application/json")
        try:
            with urllib.request.urlopen(req, timeout=15) as resp:
                status, text, kind = resp.status, resp.read().decode(), resp.headers.get_content_type()
        except urllib.error.HTTPError as err:
            status, text, kind = err.code, err.read().decode(), err.headers.get_content_type()
        return status, json.loads(text) if kind == "application/json" else text

    def status_when(self, ready: Callable[[dict[str, Any]], bool], timeout: float, what: str) -> dict[str, Any]:
        """Poll ``/chaos/status`` until ``ready`` holds (the web UI may not listen yet), for ``timeout`` at most."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            try:
                code, last = self.call("/chaos/status")
            except (urllib.error.URLError, ConnectionError) as exc:
                code, last = 0, exc
            if code == 200 and ready(last):
                return dict(last)
            time.sleep(0.1)
        pytest.fail(f"no status with {what} within {timeout}s; last: {last}")

    def stop(self) -> dict[str, Any]:
        """Stop the test (Locust's own Stop), read the report it writes, then quit the process (Ctrl-C)."""
        assert self.call("/stop", raw=b"")[0] == 200
        deadline = time.monotonic() + 30
        while not self.report.exists() and time.monotonic() < deadline and self.proc.poll() is None:
            time.sleep(0.1)
        assert self.report.exists(), "no report after the test stopped"
        return dict(json.loads(self.report.read_text()))

    def quit(self) -> str:
        """Ctrl-C (the pack reports if a test still runs, and Locust quits); its output (idempotent)."""
        if self.out is None:
            if self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGINT)
            self.out = finish(self.proc, timeout=30)
        return self.out


@contextmanager
def web_locust(args: list[str], report: Path) -> Iterator[WebLocust]:
    """A :class:`WebLocust` quit at the end (Ctrl-C), whose output must hold no traceback."""
    run = WebLocust(args, report)
    try:
        yield run
    finally:
        out = run.quit()
        assert "Traceback" not in out, out[-4000:]


def refused_at_setup(args: list[str], env: dict[str, str] | None = None, timeout: float = 60) -> str:
    """Run a headless locust that must stop at set-up: exit 2, no traceback, no user spawned, and
    exactly one ``redis-resilience:`` line, which is returned."""
    proc = locust(headless_args(5, "10s", *args), env={**os.environ, **(env or {})})
    out = finish(proc, timeout)
    assert proc.returncode == 2, out[-3000:]
    assert "Traceback" not in out, out[-3000:]
    assert "Ramping to" not in out and "All users spawned" not in out, out[-3000:]
    lines = [line for line in out.splitlines() if line.startswith("redis-resilience:")]
    assert len(lines) == 1, out[-3000:]
    return lines[0]


def target_state(client: redis.Redis) -> dict[str, object]:
    """What a set-up must leave as it was: keys, memory settings, the pack's connections."""
    names = [c.get("name", "") for c in client.client_list()]
    return {
        "keys": client.dbsize(),
        "config": client.config_get("maxmemory*"),
        "pack_connections": sorted(n for n in names if n.startswith(("rr-", "rradmin-"))),
    }


def assert_server_gone(report: dict[str, Any]) -> None:
    """The report's embedded redis-server was stopped."""
    pid = report["embedded_server_pid"]
    assert isinstance(pid, int), pid
    assert not pid_alive(pid), f"redis-server {pid} left running"


# ---- builders -----------------------------------------------------------------------------------


def traffic_clients(run: PackRun, n: int, recorder: Recorder) -> list[InstrumentedRedis]:
    """``n`` users' instrumented clients (label ``cache``) as the run's profile builds them, their pools the
    run's (for pool_reset), not yet connected."""
    clients = []
    for i in range(n):
        probe = ConnectionProbe()
        pool = make_pool(run.url, run.profile.client, f"{run.traffic_tag}{i}", probe)
        run.pools.add(pool)
        dedicated = run.profile.client.connection == "dedicated"
        clients.append(InstrumentedRedis(pool, recorder.hook, "cache", i, probe, dedicated))
    return clients


class Recorder:
    """A request hook that keeps every request it is fired with (for the instrumented client)."""

    def __init__(self) -> None:
        self.hook = EventHook()
        self.requests: list[dict[str, Any]] = []
        self.hook.add_listener(lambda **kw: self.requests.append(kw))


def window(
    fault_id: int = 1,
    *,
    requests: int = 10,
    failures: int = 1,
    recovery: float | None = 0.2,
    users: list[float] | None = None,
    latencies: tuple[float, ...] = (1.0,),
) -> WindowSummary:
    """A node's summary of one fault window, with these figures."""
    hist = LatencyHistogram()
    for ms in latencies:
        hist.add(ms)
    users = [0.1] if users is None else users
    return WindowSummary(
        fault_id=fault_id,
        name="client_kill",
        requests=requests,
        failures=failures,
        degraded=failures,
        hidden_retries=2,
        reconnections=3,
        first_error_s=0.05 * fault_id,
        recovery_s=recovery,
        window_s=2.0,
        users_affected=len(users),
        user_recovery_s=users,
        users_not_recovered=0,
        p99_ms=hist.percentile(0.99),
        threshold_ms=50.0,
        latency=hist,
    )


class StallProbe:
    """tests/stall_probe.py as a process of its own next to a run: the independent measure of how long
    the server stopped answering (``command`` PING or SET) or had ``maxmemory`` changed (MAXMEMORY)."""

    def __init__(self, host: str, port: int, command: str = "PING") -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(ROOT / "tests" / "stall_probe.py"), host, str(port), "--command", command],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.head = wait_for_output(self.proc, r"^READY$", 10)

    def stop(self) -> list[tuple[float, float]]:
        """Stop the probe once a round of it begun now has ended (it has seen the end of what just ended);
        every stall (or span) it saw, as (start, end) on ``time.monotonic()``."""
        assert self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):  # a probe that died: the wait below says so
            self.proc.stdin.write("\n")
            self.proc.stdin.flush()
        seen = wait_for_output(self.proc, r"^ROUND$", 10)  # its ROUND line: that round has ended
        self.proc.stdin.close()
        out = self.head + seen + finish(self.proc, timeout=10)
        return [
            (float(a), float(b))
            for kind, a, b in (line.split() for line in out.splitlines() if line.startswith(("STALL ", "SPAN ")))
        ]


def embedded_report(html: str) -> dict[str, Any]:
    """The report an HTML page of the pack carries (the report file, the live Resilience view)."""
    match = re.search(r'<script id="report-data" type="application/json">(.*?)</script>', html, re.S)
    assert match, "no embedded report"
    return dict(json.loads(match.group(1).replace("<\\/", "</")))
