"""``redis-resilience matrix PROFILE --clients clients.yaml``: one profile, once per named client configuration.

With ``--client-versions redis==8.1.0 redis==8.2.0`` each cell runs in an environment of its own, the lock with
that one requirement changed (``chaos/matrix_envs.py``); with ``--servers redis valkey`` each cell's embedded
target runs that server (``target.server``). The cells are presets x versions x servers (x ``--repeat``), at most
``--max-cells``; without ``--clients``/``--preset`` the one preset is ``profile``, the profile's own client settings.

Each cell is a real headless ``locust`` process (this tool does not re-implement Locust) on the
profile with the preset's keys merged into its ``client:`` section and a fixed chaos seed, so that
every cell gets the same fault schedule, on a fresh embedded target. A cell that fails to start is
reported as such and the matrix goes on; Ctrl-C stops the current cell (its faults reverted, as on
any Ctrl-C of a run) and the table so far is printed. The cells are ranked by recovery p95, then
errors in windows, hidden retries, duplicated writes, lost writes and client excess.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2
import yaml

from chaos.locust_command import headless_command
from chaos.matrix_envs import ClientVersion, EnvError, Environments
from chaos.profile import parse_profile
from config.loader import ProfileError
from recovery.compare import CompareError
from recovery.html import STYLE
from recovery.report import ReportError, read_report, write_atomically
from targets.servers import ServerNotFound, find_server

ROOT = Path(__file__).resolve().parent.parent
LOCUST = str(Path(sys.executable).with_name("locust"))
DEFAULT_CLIENTS = "config/clients.yaml"
PAGE = (Path(__file__).parent / "static" / "matrix.html").read_text(encoding="utf-8")  # the page's template
PROFILE_CLIENT = "profile"  # the one preset of --client-versions or --servers alone: the profile's own client settings
MAX_CELLS = 24  # --max-cells: more is refused up front, an accidental product (presets x versions x servers x repeats)


@dataclass
class Cell:
    preset: str
    repeat: int
    report: dict[str, Any] | None
    exit_code: int | None
    error: str | None = None
    version: str | None = None  # the --client-versions requirement of its environment; None: the running one
    server: str | None = None  # the --servers server of its embedded target; None: the profile's

    @property
    def stem(self) -> str:
        """The name of its profile and report files (``no-retry-1``, ``no-retry-redis-8.1.0-valkey-1``)."""
        version = "-" + self.version.replace("==", "-") if self.version else ""
        return f"{self.preset}{version}{'-' + self.server if self.server else ''}-{self.repeat + 1}"

    @property
    def kind(self) -> tuple[str, str | None, str | None]:
        """What its repeats share: the preset, the version and the server."""
        return self.preset, self.version, self.server

    @property
    def label(self) -> str:
        return self.preset if self.repeat == 0 else f"{self.preset} (repeat {self.repeat + 1})"

    def figures(self) -> dict[str, Any]:
        if self.report is None:
            return {}
        s = self.report["summary"]
        return {
            "recovery_p95_s": s.get("recovery_p95_s"),
            "failures_in_windows": s["in_windows"]["failures"],
            "error_rate_in_windows": s["in_windows"]["error_rate"],
            "hidden_retries": s["hidden_retries"],
            "duplicated_writes": s.get("duplicated_writes"),
            "lost_writes": s.get("lost_writes"),
            "client_excess_p95_s": s.get("client_excess_p95_s"),
            "faults": len(self.report["faults"]),
            "verdict": self.report["verdict"],
        }


def load_presets(path: str | Path) -> dict[str, dict[str, Any]]:
    """The presets of a clients file, each checked as a profile's ``client:`` section (CompareError: one line)."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise CompareError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise CompareError(f"{path}: not YAML: {' '.join(str(exc).split())}") from None
    presets = data.get("presets") if isinstance(data, dict) else None
    if not isinstance(presets, dict) or not presets:
        raise CompareError(f"{path}: expected a 'presets' mapping of names to client settings")
    for name, client in presets.items():
        try:
            parse_profile({"client": client or {}}, f"{path}: presets.{name}")
        except ProfileError as exc:
            raise CompareError(str(exc)) from None
    return {str(name): dict(client or {}) for name, client in presets.items()}


def cell_profile(profile: Path, client: dict[str, Any], seed: int, path: Path, server: str | None = None) -> Path:
    """The profile with the preset's client keys merged in, the chaos seed fixed and (``server``) its embedded
    target's server set."""
    data = yaml.safe_load(profile.read_text(encoding="utf-8")) or {}
    merged = {**(data.get("client") or {}), **client}
    if "backoff" in client and isinstance(data.get("client", {}).get("backoff"), dict):
        merged["backoff"] = {**data["client"]["backoff"], **client["backoff"]}
    data["client"] = merged
    data.setdefault("chaos", {})["seed"] = seed
    if server is not None:
        data["target"] = {**(data.get("target") or {}), "server": server}
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


class Interrupt:
    """Ctrl-C (SIGINT) or SIGTERM during a matrix: the running cell is stopped as Ctrl-C stops a run (its faults
    reverted, its report written), no cell starts after it, and the table so far is printed. Each cell runs in
    a session of its own, so a terminal's Ctrl-C reaches the matrix only, which passes it on exactly once."""

    def __init__(self) -> None:
        self.requested = False
        self.child: subprocess.Popen[str] | None = None
        self._handlers: list[Any] = []

    def __enter__(self) -> Interrupt:
        import gevent  # the profile's import patched the standard library with gevent: its handlers run

        self._handlers = [gevent.signal_handler(sig, self.stop) for sig in (signal.SIGINT, signal.SIGTERM)]
        return self

    def __exit__(self, *_: object) -> None:
        for handler in self._handlers:
            handler.cancel()

    def stop(self) -> None:
        if self.requested:
            return
        self.requested = True
        print("matrix: stopping the running cell (its faults are reverted), then the table so far", flush=True)
        child = self.child
        if child is not None and child.poll() is None:
            child.send_signal(signal.SIGINT)


def run_cell(
    profile: Path, report: Path, users: int, seconds: int, timeout_s: float, interrupt: Interrupt, locust: str = LOCUST
) -> tuple[int | None, str]:
    """One headless locust run (``locust``: the one of the cell's environment); (its exit code, its output's tail)."""
    command = headless_command(locust, users, seconds, profile, report, "--no-resilience-progress")
    proc = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    interrupt.child = proc
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)  # stop it as Ctrl-C would: faults reverted, a report written
        out, _ = proc.communicate(timeout=60)
    finally:
        interrupt.child = None
    return proc.returncode, (out or "")[-2000:]


def rank(cells: list[Cell]) -> list[Cell]:
    """Best first; cells without a report last."""

    def key(cell: Cell) -> tuple[float, ...]:
        f = cell.figures()
        if not f:
            return (math.inf,) * 6

        def num(name: str) -> float:
            value = f.get(name)
            return math.inf if value is None else float(value)

        return (
            num("recovery_p95_s"),
            num("error_rate_in_windows"),
            num("hidden_retries"),
            num("duplicated_writes"),
            num("lost_writes"),
            num("client_excess_p95_s"),
        )

    return sorted(cells, key=key)


COLUMNS = (
    "recovery_p95_s",
    "failures_in_windows",
    "error_rate_in_windows",
    "hidden_retries",
    "duplicated_writes",
    "lost_writes",
    "client_excess_p95_s",
    "verdict",
)


def table_lines(cells: list[Cell]) -> list[str]:
    versions, servers = any(c.version for c in cells), any(c.server for c in cells)
    head = ["#", "preset", *(["version"] if versions else []), *(["server"] if servers else [])]
    rows = [[*head, *COLUMNS]]
    notes = []
    for i, cell in enumerate(rank(cells), 1):
        f = cell.figures()
        left = [
            str(i),
            cell.label,
            *([cell.version or "-"] if versions else []),
            *([cell.server or "-"] if servers else []),
        ]
        if not f:
            rows.append(left + ["-"] * (len(COLUMNS) - 1) + ["no report"])
            what = " ".join(x for x in (cell.label, cell.version, cell.server) if x)
            notes.append(f"{what}: no report: {cell.error or f'exit {cell.exit_code}'}")
            continue
        rows.append([*left, *("-" if f[c] is None else str(f[c]) for c in COLUMNS)])
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(c.ljust(w) if j < len(head) else c.rjust(w) for j, (c, w) in enumerate(zip(r, widths, strict=True)))
        for r in rows
    ]
    return lines + notes


def spread_lines(cells: list[Cell]) -> list[str]:
    """With --repeat: each cell's spread over its runs (recovery p95 and failures in windows, lowest to highest)."""
    lines = []
    for kind in dict.fromkeys(c.kind for c in cells):
        runs = [c.figures() for c in cells if c.kind == kind and c.report is not None]
        if len(runs) < 2:
            continue
        recovery = [r["recovery_p95_s"] for r in runs if r["recovery_p95_s"] is not None]
        failures = [r["failures_in_windows"] for r in runs]
        shown = f"{min(recovery)}-{max(recovery)} s" if recovery else "-"
        lines.append(
            f"spread of {' '.join(x for x in kind if x)} over {len(runs)} runs: recovery p95 {shown}, "
            f"failures in windows {min(failures)}-{max(failures)}"
        )
    return lines


def choose_presets(
    clients: str | None, presets: list[str] | None, other_axis: bool
) -> tuple[str | None, dict[str, dict[str, Any]]]:
    """The clients file and the presets to run, in order: those named, else all of the file's; with
    --client-versions or --servers alone (``other_axis``), none and the profile's own client settings
    (CompareError: an unknown preset, a bad file)."""
    if other_axis and clients is None and presets is None:
        return None, {PROFILE_CLIENT: {}}
    clients = clients or DEFAULT_CLIENTS
    available = load_presets(clients)
    chosen = presets or list(available)
    unknown = [p for p in chosen if p not in available]
    if unknown:
        raise CompareError(f"{clients}: no preset {', '.join(unknown)} (there are {', '.join(available)})")
    return clients, {name: available[name] for name in chosen}


def run_matrix(
    profile: str,
    clients: str | None,
    presets: list[str] | None,
    users: int,
    seconds: int,
    repeat: int,
    out_dir: str,
    seed: int,
    client_versions: list[str] | None = None,
    envs_dir: str | None = None,
    servers: list[str] | None = None,
    max_cells: int = MAX_CELLS,
) -> tuple[list[Cell], Path]:
    """Every cell, in order; the JSON of the matrix written to ``out_dir``. CompareError on bad input, all of it
    found before the first cell: the profile, the presets, the number of cells, each server (its binary found)
    and each client version (resolved with the lock)."""
    base = Path(profile)
    try:
        parsed = parse_profile(yaml.safe_load(base.read_text(encoding="utf-8")), str(base), base.parent)
    except (OSError, yaml.YAMLError, ProfileError) as exc:
        raise CompareError(f"{profile}: not a usable profile: {' '.join(str(exc).split())}") from None
    clients, chosen = choose_presets(clients, presets, bool(client_versions or servers))
    count = len(chosen) * len(client_versions or [None]) * len(servers or [None]) * repeat
    if count > max_cells:
        product = (
            f"{len(chosen)} presets x {len(client_versions or [None])} versions x {len(servers or [None])} servers"
        )
        raise CompareError(
            f"{product} x {repeat} repeats is {count} cells, over --max-cells {max_cells}: name fewer, "
            "or raise --max-cells"
        )
    if servers:
        check_servers(parsed.target.url, parsed.target.server_binary, servers, profile)
    envs = Environments(client_versions, envs_dir) if client_versions else None
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cells: list[Cell] = []
    versions: list[ClientVersion | None] = list(envs.versions) if envs else [None]
    kinds: list[str | None] = list(servers) if servers else [None]
    axes = ((name, cv, server, r) for name in chosen for cv in versions for server in kinds for r in range(repeat))
    announced: set[str] = set()
    with Interrupt() as interrupt:
        for name, cv, server, r in axes:
            if interrupt.requested:
                break
            cell = Cell(name, r, None, None, version=cv.spec if cv else None, server=server)
            which = " ".join(x for x in (name, cv.spec if cv else None, server) if x)
            which += f" (repeat {r + 1})" if repeat > 1 else ""
            print(f"matrix: {which}...", flush=True)
            locust = LOCUST
            if envs is not None and cv is not None:
                try:
                    locust = str(cell_env(envs, cv, announced))
                except EnvError as exc:
                    cell.error = f"environment {cv.spec} not built: {exc}"
                    cells.append(cell)
                    continue
                if interrupt.requested:  # stopped while its environment was being built
                    break
            cell_path = cell_profile(base, chosen[name], seed, out / f"{cell.stem}.yaml", server)
            report_path = out / f"{cell.stem}.json"
            report_path.unlink(missing_ok=True)
            cell.exit_code, tail = run_cell(cell_path, report_path, users, seconds, seconds + 120, interrupt, locust)
            cell.report, cell.error = None, None
            try:
                cell.report = read_report(report_path)
            except ReportError as exc:  # no report (the cell's last line says why), or a broken one
                lines = tail.strip().splitlines() or ["no output"]
                cell.error = lines[-1] if not report_path.exists() else str(exc)
            cells.append(cell)
    result = out / "matrix.json"
    matrix: dict[str, Any] = {"profile": str(base), "clients": clients, "seed": seed}
    matrix.update({"users": users, "seconds": seconds})
    if envs is not None:
        matrix["client_versions"] = [cv.spec for cv in envs.versions]
        matrix["environments"] = envs.summary()
    if servers:
        matrix["servers"] = list(servers)
    matrix["ranked"] = [ranked_entry(c) for c in rank(cells)]
    matrix.update({"created_at": time.time(), "host_cpus": os.cpu_count()})
    write_atomically(result, json.dumps(matrix, indent=2) + "\n")
    write_atomically(out / "matrix.html", table_html(cells, str(base)))
    return cells, result


def check_servers(url: str, binary: str | None, servers: list[str], profile: str) -> None:
    """--servers needs an embedded target (the pack starts each cell's server) without a binary of its own, and
    each server's binary installed (CompareError: one line)."""
    if not url.startswith("embedded"):
        raise CompareError(
            f"{profile}: --servers needs an embedded target (target.url embedded, embedded-sentinel or "
            f"embedded-cluster): the pack starts each cell's server, and this profile's target is {url.split(':')[0]}"
        )
    if binary is not None:
        raise CompareError(f"{profile}: --servers picks each cell's server binary: remove target.server_binary")
    for kind in servers:
        try:
            find_server(kind)
        except ServerNotFound as exc:
            raise CompareError(f"--servers {kind}: {exc}") from None


def cell_env(envs: Environments, cv: ClientVersion, announced: set[str]) -> Path:
    """The ``locust`` of the cell's environment, built or found at its first cell, said once (EnvError: why not)."""
    env = envs.get(cv)
    if cv.spec not in announced:
        announced.add(cv.spec)
        how = "reused" if env.reused else f"built in {env.seconds} s"
        print(f"matrix: environment {cv.spec}: {how} ({cv.path})", flush=True)
    return env.locust


def ranked_entry(cell: Cell) -> dict[str, Any]:
    entry: dict[str, Any] = {"preset": cell.preset, "repeat": cell.repeat + 1}
    if cell.version is not None:
        entry["version"] = cell.version
    if cell.server is not None:
        entry["server"] = cell.server
    return {**entry, "exit_code": cell.exit_code, "error": cell.error, **cell.figures()}


def table_html(cells: list[Cell], profile: str) -> str:
    """The ranked table as one self-contained page, in the run report's look; each preset links to its report.
    The markup is the template's (``chaos/static/matrix.html``); every value put in it is escaped."""
    rows = [
        PageRow(
            i, cell.stem, cell.preset, cell.version, cell.server, shown_figures(cell), cell.error or str(cell.exit_code)
        )
        for i, cell in enumerate(rank(cells), 1)
    ]
    env = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    page = env.from_string(PAGE)
    versions, servers = any(c.version for c in cells), any(c.server for c in cells)
    return page.render(style=STYLE, profile=profile, versions=versions, servers=servers, columns=COLUMNS, rows=rows)


@dataclass(frozen=True)
class PageRow:
    """One row of the page: its rank, the preset's report and its figures as shown (None: no report, and why)."""

    rank: int
    stem: str
    preset: str
    version: str | None
    server: str | None
    figures: list[str] | None
    why: str


def shown_figures(cell: Cell) -> list[str] | None:
    """The cell's figures in the order of COLUMNS, as the table shows them ("-": none); None without a report."""
    f = cell.figures()
    return [("-" if f[c] is None else str(f[c])) for c in COLUMNS] if f else None
