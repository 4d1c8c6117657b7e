"""redis-resilience matrix --client-versions: each cell in an environment of its own, requirements.lock
with one requirement changed, built by the real uv, cached and reused; a bad requirement refused before any cell."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from chaos.cli import main as cli

from .helpers import LOCUST, MATRIX, matrix_cell, write_profile

OLD, NEW = "redis==8.1.0", "redis==8.2.0"
RESTARTS = {  # two 1 s crashes; aof_always: no lost writes, so the columns that differ are the clients'
    "target": {"persistence": "aof_always"},
    "chaos": {
        "start_after_s": 2,
        "every_s": 3,
        "jitter_s": 0,
        "count": 2,
        "order": "cycle",
        "faults": [{"name": "server_restart", "down_s": 1}],
    },
    "recovery": {"max_window_s": 2.5},
    "slo": {"max_recovery_p95_s": None, "max_error_rate_in_windows": None, "max_lost_writes": None},
}
TOOL = str(Path(LOCUST).with_name("redis-resilience"))


def rows(printed: str) -> list[list[str]]:
    """The ranked table's rows as printed: #, preset, version, ..."""
    return [line.split() for line in printed.splitlines() if line[:1].isdigit()]


@MATRIX
def test_presets_times_two_versions_each_in_its_own_environment_then_reused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    profile = write_profile(tmp_path / "restarts.yaml", RESTARTS)
    envs, out_dir = tmp_path / "envs", tmp_path / "matrix"
    presets = ["no-retry", "redis-py-defaults"]
    args = ["matrix", str(profile), "-u", "6", "-t", "8", "-o", str(out_dir), "--envs-dir", str(envs)]
    assert cli([*args, "--preset", presets[0], "--preset", presets[1], "--client-versions", OLD, NEW]) == 0
    printed = capsys.readouterr().out
    matrix = json.loads((out_dir / "matrix.json").read_text())
    cells = {(c["preset"], c["version"]) for c in matrix["ranked"]}
    assert cells == {(p, v) for p in presets for v in (OLD, NEW)}, matrix["ranked"]
    assert all(c["error"] is None for c in matrix["ranked"]), matrix["ranked"]
    built = matrix["environments"]
    assert {spec: (e["installed"], e["reused"]) for spec, e in built.items()} == {
        OLD: ("8.1.0", False),
        NEW: ("8.2.0", False),
    }
    for spec, env in built.items():  # the cache holds one environment per requirement, each with its marker
        marker = json.loads((Path(env["path"]) / "redis-resilience-env.json").read_text())
        assert Path(env["path"]).parent == envs and marker["spec"] == spec
    for preset in presets:
        for spec in (OLD, NEW):
            report = json.loads((out_dir / f"{preset}-{spec.replace('==', '-')}-1.json").read_text())
            assert report["environment"]["redis"] == spec.split("==")[1], (preset, spec)  # what the cell imported
            assert [f["name"] for f in report["faults"]] == ["server_restart"] * 2  # the same schedule everywhere
            failures = report["summary"]["in_windows"]["failures"]
            assert failures > 0 if preset == "no-retry" else failures == 0, (preset, spec, failures)
    table = rows(printed)
    header = next(line for line in printed.splitlines() if line.startswith("#  "))
    assert header.split()[:3] == ["#", "preset", "version"], printed
    assert [(r[1], r[2]) for r in table] == [(c["preset"], c["version"]) for c in matrix["ranked"]], printed
    assert "environment redis==8.1.0: built in" in printed and "environment redis==8.2.0: built in" in printed
    page = (out_dir / "matrix.html").read_text()
    assert "<th>version</th>" in page and "href='no-retry-redis-8.1.0-1.json'" in page

    # a second matrix reuses the environment: no build, no resolve (the marker's build time is unchanged)
    first = json.loads((Path(built[OLD]["path"]) / "redis-resilience-env.json").read_text())
    again = tmp_path / "again"
    command = [TOOL, "matrix", str(profile), "-u", "4", "-t", "4", "-o", str(again), "--envs-dir", str(envs)]
    command += ["--client-versions", OLD]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"environment {OLD}: reused ({built[OLD]['path']})" in proc.stdout, proc.stdout
    second = json.loads((again / "matrix.json").read_text())
    assert second["environments"][OLD]["reused"] is True and second["environments"][OLD]["seconds"] < 0.5
    assert [(c["preset"], c["version"], c["error"]) for c in second["ranked"]] == [("profile", OLD, None)]
    marker = json.loads((Path(built[OLD]["path"]) / "redis-resilience-env.json").read_text())
    assert marker["built_at"] == first["built_at"]
    assert json.loads((again / "profile-redis-8.1.0-1.json").read_text())["environment"]["redis"] == "8.1.0"


def test_a_bad_client_version_is_refused_up_front_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_dir, envs = tmp_path / "matrix", tmp_path / "envs"
    bad = {
        "redis>=8.1": "expected name==version",
        "numpy==2.0.0": "numpy is not in requirements.lock",
        "redis==8.1.99": "no version of redis==8.1.99",  # in the range pyproject.toml allows, never released
        "redis==7.4.0": "redis==7.4.0 and redis>=8.1,<8.3",  # released, outside what the pack allows
    }
    for spec in bad:  # with a good one first: nothing runs, nothing is built
        args = ["matrix", "config/ci.yaml", "-t", "5", "-o", str(out_dir), "--envs-dir", str(envs)]
        assert cli([*args, "--client-versions", OLD, spec]) == 2, spec
    captured = capsys.readouterr()
    err = captured.err.splitlines()
    assert len(err) == len(bad), err
    for line, (spec, why) in zip(err, bad.items(), strict=True):
        shown = repr(spec) if ">" in spec else spec
        assert line.startswith(f"redis-resilience: --client-versions {shown}") and why in line, line
    assert captured.out == "" and not out_dir.exists() and not envs.exists()
    # the console script, as a user runs it: one line on stderr, exit 2, no traceback
    command = [TOOL, "matrix", "config/ci.yaml", "--preset", "no-retry", "--client-versions", "redis==8.1.99"]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stdout == ""


def test_an_environment_that_cannot_be_built_is_a_row_saying_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    envs = tmp_path / "envs"
    envs.write_text("a file where the environments would go\n")
    out_dir = tmp_path / "matrix"
    args = ["matrix", "config/ci.yaml", "-t", "5", "-o", str(out_dir), "--envs-dir", str(envs)]
    assert cli([*args, "--client-versions", OLD, NEW]) == 0
    printed = capsys.readouterr().out
    matrix = json.loads((out_dir / "matrix.json").read_text())
    assert [(c["version"], c["exit_code"]) for c in matrix["ranked"]] == [(OLD, None), (NEW, None)]
    for cell in matrix["ranked"]:
        assert cell["error"].startswith(f"environment {cell['version']} not built: {envs}/"), cell
        assert f"profile {cell['version']}: no report: environment {cell['version']} not built" in printed
    assert set(matrix["environments"]) == {OLD, NEW} and all("error" in e for e in matrix["environments"].values())


def test_the_table_and_the_spread_name_each_cells_version() -> None:
    from chaos.matrix_table import Cell, spread_lines, table_lines

    cells = [
        matrix_cell(0.3, 9, 0, OLD),
        matrix_cell(0.2, 7, 1, OLD),
        matrix_cell(0.1, 1, 0, NEW),
        matrix_cell(0.1, 2, 1, NEW),
    ]
    cells.append(Cell("no-retry", 0, None, None, "environment redis==8.2.1 not built: why", version="redis==8.2.1"))
    assert spread_lines(cells) == [
        "spread of no-retry redis==8.1.0 over 2 runs: recovery p95 0.2-0.3 s, failures in windows 7-9",
        "spread of no-retry redis==8.2.0 over 2 runs: recovery p95 0.1-0.1 s, failures in windows 1-2",
    ]
    lines = table_lines(cells)
    versions = [line.split()[2 if "repeat" not in line else 4] for line in lines[1:6]]
    assert versions == [NEW, NEW, OLD, OLD, "redis==8.2.1"], lines
    assert lines[-1] == "no-retry redis==8.2.1: no report: environment redis==8.2.1 not built: why"
    assert cells[0].stem == "no-retry-redis-8.1.0-1" and Cell("a", 1, None, None).stem == "a-2"
