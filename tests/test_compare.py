"""redis-resilience compare: real runs of one profile compared, with a worse client, and bad input."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest

from chaos.cli import main as cli
from recovery.stats import proportion_test_greater, rank_test_greater

from .helpers import (
    LOCUST,
    MATRIX,
    SERVICE,
    eventually,
    finish,
    headless_args,
    kill,
    locust,
    matrix_cell,
    wait_for_output,
    write_profile,
)

RESTARTS = {  # persistence aof_always: a restart loses no acknowledged write, so lost writes stay 0 run over run
    "target": {"persistence": "aof_always"},
    "chaos": {
        "start_after_s": 2,
        "every_s": 3,
        "jitter_s": 0,
        "count": 3,
        "order": "cycle",
        "faults": [{"name": "server_restart", "down_s": 1}],
    },
    "recovery": {"max_window_s": 2.5},
    "slo": {"max_recovery_p95_s": None, "max_error_rate_in_windows": None, "max_lost_writes": None},
}


def trend_data(page: str) -> dict[str, Any]:
    match = re.search(r'<script id="trend-data" type="application/json">(.*?)</script>', page, re.S)
    assert match, "no embedded data"
    return dict(json.loads(match.group(1).replace("<\\/", "</")))


def run(tmp_path: Path, name: str, client: dict[str, Any] | None = None) -> Path:
    profile = write_profile(tmp_path / "restarts.yaml", {**RESTARTS, "client": client or {"retries": 10}})
    report = tmp_path / f"{name}.json"
    proc = locust(headless_args(10, "12s", "--resilience-profile", str(profile), "--resilience-report", str(report)))
    out = finish(proc, timeout=90)
    assert report.exists(), out[-3000:]
    return report


@SERVICE  # runs that must differ by their client only: beside no other heavy run
def test_compare_finds_a_worse_client_and_not_noise(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    runs = [run(tmp_path, f"default{i}") for i in range(3)]
    worse = run(tmp_path, "no-retry", {"retries": 0})
    assert cli(["compare", str(runs[0]), str(runs[0])]) == 0  # a report against itself
    pairs = [(0, 1), (1, 0), (0, 2), (2, 0), (1, 2)]  # the same profile and client, five times
    false_positives = sum(cli(["compare", str(runs[a]), str(runs[b])]) != 0 for a, b in pairs)
    out = capsys.readouterr().out
    assert false_positives == 0, out
    markdown, junit = tmp_path / "cmp.md", tmp_path / "cmp.xml"
    assert cli(["compare", str(runs[0]), str(worse), "--markdown", str(markdown), "--junit", str(junit)]) == 4
    out = capsys.readouterr().out
    assert "REGRESSION server_restart error_rate_in_windows" in out, out
    assert "Regression** server_restart `error_rate_in_windows`" in markdown.read_text()
    assert 'failures="1"' in junit.read_text() or 'failures="2"' in junit.read_text()
    pooled = tmp_path / "baseline"  # a directory pools its reports
    pooled.mkdir()
    for r in runs:
        (pooled / r.name).write_text(r.read_text())
    assert cli(["compare", str(pooled), str(worse)]) == 4
    # history: three runs, three points per series; a fourth, worse run is marked as a regression
    trend = tmp_path / "trend.html"
    assert cli(["history", str(pooled), "-o", str(trend)]) == 0
    data = trend_data(trend.read_text())
    series = data["faults"]["server_restart"]["series"]
    assert len(data["runs"]) == 3 and all(len(points) == 3 for points in series.values()), series
    (pooled / "z-worse.json").write_text(worse.read_text())
    assert cli(["history", str(pooled), "-o", str(trend), "--baseline-runs", "3"]) == 0
    data = trend_data(trend.read_text())
    assert data["faults"]["server_restart"]["regressions"]["error_rate"] == [3], data["faults"]
    # a corrupt nightly report is skipped with one line naming it, not the whole trend refused
    (pooled / "y-corrupt.json").write_text('{"schema": "redis-resilience/report/v1", "run_id": ')
    capsys.readouterr()
    assert cli(["history", str(pooled), "-o", str(trend)]) == 0
    printed = capsys.readouterr()
    assert len(trend_data(trend.read_text())["runs"]) == 4 and "(4 runs, 1 skipped)" in printed.out
    assert printed.err.startswith(f"skipped {pooled / 'y-corrupt.json'}: not JSON") and printed.err.count("\n") == 1
    assert cli(["compare", str(pooled), str(worse)]) == 2  # compare still refuses it: its figures would be partial
    assert not re.search(r"<script[^>]+src=|<link[^>]+href=", trend.read_text())
    # the console script, as CI runs it: mismatched profiles are bad input
    other = json.loads(runs[1].read_text())
    other["profile"] = "config/ci.yaml"
    (tmp_path / "other.json").write_text(json.dumps(other))
    tool = str(Path(LOCUST).with_name("redis-resilience"))
    command = [tool, "compare", str(runs[0]), str(tmp_path / "other.json")]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "differ in profile ('restarts.yaml' against 'ci.yaml')" in proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr


def test_compare_refuses_bad_input_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "bad.json").write_text("{oops")
    assert cli(["compare", str(tmp_path / "bad.json"), str(tmp_path / "bad.json")]) == 2
    assert cli(["compare", str(tmp_path / "missing.json"), str(tmp_path / "bad.json")]) == 2
    (tmp_path / "empty").mkdir()
    assert cli(["compare", str(tmp_path / "empty"), str(tmp_path / "bad.json")]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 3 and all(line.startswith("redis-resilience: ") for line in err), err


def test_the_tests_say_what_they_should() -> None:
    assert rank_test_greater([1.0, 2, 3, 4, 5], [6.0, 7, 8, 9, 10]) == pytest.approx(1 / 252)
    assert rank_test_greater([1.0, 2, 3], [1.0, 2, 3]) > 0.5
    assert rank_test_greater(list(range(30)), [x + 10.0 for x in range(30)]) < 0.01  # normal approximation
    assert proportion_test_greater(10, 1000, 30, 1000) < 0.001
    assert proportion_test_greater(0, 100, 0, 100) == 1.0


@MATRIX
def test_a_matrix_of_three_presets_ranks_its_cells_as_their_reports_say(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = write_profile(tmp_path / "one-fault.yaml", {**RESTARTS, "chaos": {**RESTARTS["chaos"], "count": 2}})
    out_dir = tmp_path / "matrix"
    presets = ["redis-py-defaults", "no-retry", "health-check-1s"]
    args = ["matrix", str(profile), "-u", "8", "-t", "9", "-o", str(out_dir)]
    assert cli([*args, *(x for p in presets for x in ("--preset", p))]) == 0
    printed = capsys.readouterr().out
    matrix = json.loads((out_dir / "matrix.json").read_text())
    ranked = [cell["preset"] for cell in matrix["ranked"]]
    assert sorted(ranked) == sorted(presets)
    reports = {p: json.loads((out_dir / f"{p}-1.json").read_text()) for p in presets}
    for report in reports.values():  # the same fault schedule in every cell
        assert [f["name"] for f in report["faults"]] == ["server_restart", "server_restart"]

    def key(p: str) -> tuple[float, float]:
        s = reports[p]["summary"]
        return (s["recovery_p95_s"] if s["recovery_p95_s"] is not None else float("inf"), s["in_windows"]["error_rate"])

    assert ranked == sorted(presets, key=key), (ranked, {p: key(p) for p in presets})
    rows = [line.split()[1] for line in printed.splitlines() if line[:1].isdigit()]
    assert rows == ranked, printed
    assert reports["no-retry"]["summary"]["in_windows"]["failures"] > 0  # no retry: the restarts are errors
    page = (out_dir / "matrix.html").read_text()
    assert all(f"href='{p}-1.json'" in page for p in presets) and "<script" not in page
    assert reports["redis-py-defaults"]["summary"]["in_windows"]["failures"] == 0  # retried out of sight


def test_the_spread_of_repeated_cells() -> None:
    from chaos.matrix_table import spread_lines

    cells = [matrix_cell(1.2, 30, 0), matrix_cell(1.0, 10, 1), matrix_cell(1.1, 20, 2)]
    assert spread_lines(cells) == ["spread of no-retry over 3 runs: recovery p95 1.0-1.2 s, failures in windows 10-30"]


def test_a_matrix_refuses_an_unknown_preset_or_a_bad_clients_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(["matrix", "config/ci.yaml", "--preset", "nope", "-o", str(tmp_path)]) == 2
    bad = tmp_path / "clients.yaml"
    bad.write_text("presets:\n  broken: {retries: lots}\n")
    assert cli(["matrix", "config/ci.yaml", "--clients", str(bad), "-o", str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "no preset nope" in err[0], err
    assert "presets.broken" in err[1] and "client.retries" in err[1], err


def redis_servers_under(pid: int) -> set[int]:
    """The live redis-server processes descended from ``pid`` (a matrix's cell runs one, embedded)."""
    children: dict[int, list[int]] = {}
    servers = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # ended meanwhile
            continue
        name, fields = text[text.index("(") + 1 : text.rindex(")")], text[text.rindex(")") + 2 :].split()
        if fields[0] == "Z":  # a zombie: ended, not yet reaped
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        if name == "redis-server":
            servers.add(int(stat.parent.name))
    below, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            below.add(child)
            todo.append(child)
    return servers & below


@MATRIX
def test_ctrl_c_stops_the_running_cell_and_prints_the_table_so_far(tmp_path: Path) -> None:
    profile = write_profile(tmp_path / "p.yaml", RESTARTS)
    out_dir = tmp_path / "matrix"
    tool = str(Path(LOCUST).with_name("redis-resilience"))
    proc = subprocess.Popen(
        [
            tool,
            "matrix",
            str(profile),
            "--preset",
            "no-retry",
            "--preset",
            "redis-py-defaults",
            "-u",
            "4",
            "-t",
            "30",
            "-o",
            str(out_dir),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    head = wait_for_output(proc, r"^matrix: no-retry\.\.\.", 30)
    servers: set[int] = set()  # every redis-server the cell has run: a second one is its first restart

    def restarted() -> bool:
        servers.update(redis_servers_under(proc.pid))
        return len(servers) >= 2

    # into the cell's first fault window (on failure, the matrix is killed and its output shown)
    eventually("the cell's first fault restarted its redis-server", restarted, 60, lambda: kill(proc)[-3000:])
    os.kill(proc.pid, signal.SIGINT)
    out = head + finish(proc, timeout=60)
    assert proc.returncode == 0, out[-3000:]
    assert "matrix: redis-py-defaults" not in out and "stopping the running cell" in out, out[-3000:]
    matrix = json.loads((out_dir / "matrix.json").read_text())
    assert [c["preset"] for c in matrix["ranked"]] == ["no-retry"]
    report = json.loads((out_dir / "no-retry-1.json").read_text())
    assert report["interrupted"] == "SIGINT" and report["faults"], report["faults"]  # stopped in its first window
    assert all(f.get("revert_error") is None for f in report["faults"]), report["faults"]


def _refusal(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """compare's one line on stderr for a refusal (exit 2)."""
    assert cli(["compare", *args]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    return err.strip()


def test_compare_refuses_other_versions_in_one_line_and_names_them_when_allowed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real run (redis-py's python parser, a dedicated connection per user); copies of its report, their
    environment edited, stand for runs of other versions."""
    client = {"parser": "python", "connection": "dedicated"}
    chaos = {"start_after_s": 1.5, "every_s": 2, "count": 2}
    relaxed = {"max_recovery_p95_s": None}
    profile = write_profile(tmp_path / "p.yaml", {"client": client, "chaos": chaos, "slo": relaxed})
    path = tmp_path / "run.json"
    proc = locust(headless_args(4, "7s", "--resilience-profile", str(profile), "--resilience-report", str(path)))
    out = finish(proc, timeout=60)
    assert path.exists(), out[-3000:]
    env = json.loads(path.read_text())["environment"]
    server = env["servers"][0]["version"]
    client_env = {"implementation": "redis-py", "parser": "python", "connection": "dedicated"}
    assert env["client"] == {**client_env, "maint_notifications": "auto"}
    assert f"redis-py {env['redis']} (python parser, dedicated connection) → redis {server}" in out.splitlines()
    minor = ".".join(server.split(".")[:2])

    def copy(name: str, edit: dict[str, Any] | None = None, server_version: str | None = None) -> str:
        """The run's report with its environment edited (None: removed, as a report made before it existed)."""
        data = json.loads(path.read_text())
        if edit is None:
            del data["environment"]
        else:
            data["environment"].update(edit)
        if server_version is not None:
            data["environment"]["servers"][0]["version"] = server_version
        (tmp_path / name).write_text(json.dumps(data))
        return str(tmp_path / name)

    ran = f"redis-py {env['redis']} (python parser, dedicated connection) → redis {minor}"
    was = f"redis-py 8.1.0 (python parser, dedicated connection) → redis {minor}"
    older = copy("older.json", {"redis": "8.1.0"})
    refused = (
        f"redis-resilience: compare: baseline ran {was}, current {ran}: "
        "pass --allow-version-change to compare across versions"
    )
    assert _refusal(capsys, older, str(path)) == refused
    with_hiredis = {"hiredis": "9.9.9", "client": {**env["client"], "parser": "hiredis"}}
    line = _refusal(capsys, copy("h.json", with_hiredis), str(path))
    assert f"baseline ran redis-py {env['redis']} + hiredis 9.9.9 (dedicated connection) → redis {minor}," in line
    line = _refusal(capsys, str(path), copy("next.json", {}, server_version="99.1.0"))
    assert f"baseline ran {ran}, current {ran.replace(f'redis {minor}', 'redis 99.1')}:" in line, line
    assert cli(["compare", str(path), copy("patch.json", {}, server_version=f"{minor}.999")]) == 0  # same minor
    capsys.readouterr()
    line = _refusal(capsys, copy("old.json"), str(path))  # made before reports named their versions
    assert line.startswith("redis-resilience: compare: baseline ran unknown versions (not recorded"), line
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    copy("mixed/a.json", {"redis": "8.1.0"})
    copy("mixed/b.json", {})
    line = _refusal(capsys, str(mixed), str(path))
    assert f"compare: baseline's reports disagree ({was} in a.json; {ran} in b.json), current {ran}:" in line, line
    # allowed: it compares, and every verdict line names the change
    across = f"[across versions: baseline ran {was}, current {ran}]"
    assert cli(["compare", older, str(path), "--allow-version-change"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[-1] == f"Verdict: no regression (exit code 0) {across}", printed
    worse = tmp_path / "worse.json"
    data = json.loads(path.read_text())
    data["summary"]["lost_writes"] = (data["summary"]["lost_writes"] or 0) + 1  # a regression, to see its lines
    worse.write_text(json.dumps(data))
    markdown, junit = tmp_path / "cmp.md", tmp_path / "cmp.xml"
    args = ["compare", older, str(worse), "--allow-version-change", "--markdown", str(markdown), "--junit", str(junit)]
    assert cli(args) == 4
    printed = capsys.readouterr().out.splitlines()
    verdicts = [line for line in printed if line.startswith(("REGRESSION", "Verdict"))]
    assert len(verdicts) == 2 and all(line.endswith(across) for line in verdicts), printed
    bullets = [line for line in markdown.read_text().splitlines() if line.startswith("- **Regression**")]
    assert len(bullets) == 1 and bullets[0].endswith(across), markdown.read_text()
    suite = ET.parse(junit).getroot()
    failures = [f.get("message", "") for f in suite.iter("failure")]
    assert len(failures) == 1 and failures[0].endswith(across), failures
    assert [p.get("value") for p in suite.iter("property")] == [f"baseline ran {was}, current {ran}"]
    # the console script, as CI runs it: that one line on stderr, nothing else
    tool = str(Path(LOCUST).with_name("redis-resilience"))
    done = subprocess.run([tool, "compare", older, str(path)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2 and done.stderr == refused + "\n", done.stderr
