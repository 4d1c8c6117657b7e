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
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from chaos.locust_command import headless_command
from chaos.matrix_envs import ClientVersion, EnvError, Environments
from chaos.matrix_table import Cell, rank, ranked_entry, table_html
from chaos.profile import parse_profile
from config.loader import ProfileError
from recovery.compare import CompareError
from recovery.report import ReportError, read_report, write_atomically
from targets.servers import ServerNotFound, find_server

ROOT = Path(__file__).resolve().parent.parent
LOCUST = str(Path(sys.executable).with_name("locust"))
DEFAULT_CLIENTS = "config/clients.yaml"
PROFILE_CLIENT = "profile"  # the one preset of --client-versions or --servers alone: the profile's own client settings
MAX_CELLS = 24  # --max-cells: more is refused up front, an accidental product (presets x versions x servers x repeats)


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
            which = cell.what + (f" (repeat {r + 1})" if repeat > 1 else "")
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
