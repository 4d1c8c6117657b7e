"""Compare runs: a baseline's reports against a current run's, per fault name, with a regression verdict
that noise does not fool (``redis-resilience compare``; docs/benchmarks.md).

Each side is one JSON report or a directory of them (pooled). Per fault name:

- recovery: one sample per fault window (not recovered: infinite); a regression when the current
  samples are larger by a one-sided rank test (Mann-Whitney U, :mod:`recovery.stats`) at ``alpha`` AND
  the median grew by more than the practical threshold (``min_change`` relative and ``min_change_ms``);
- errors in windows: failures over requests, a regression when higher by a one-sided two-proportion
  test at ``alpha`` and by more than ``min_change`` relative;
- lost writes (run-wide): any rise is a regression.

Hidden retries and duplicated writes are shown, not judged. Reports from different profiles, targets
or schema versions are refused (:class:`CompareError`, exit 2) unless forced; reports that ran another
redis-py, hiredis or server major.minor version (or do not say which: made before reports named them)
are refused unless allowed, and then every verdict line names the change (:func:`check_versions`).
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recovery.environment import VersionKey, version_key, versions_line
from recovery.report import ReportError, read_report
from recovery.stats import proportion_test_greater, rank_test_greater

EXIT_NO_REGRESSION = 0
EXIT_REGRESSION = 4
UNKNOWN = "unknown versions (not recorded: made before reports named them)"


class CompareError(ReportError):
    """Bad input: ``str()`` is the one-line message (exit 2); unreadable reports are its parent, ReportError."""


def load_reports(path: str | Path, skipped: list[str] | None = None) -> list[dict[str, Any]]:
    """One report, or every ``*.json`` report in a directory (sorted by name). ``skipped``: a report that
    cannot be read is left out and its one-line reason added there (else it is an error)."""
    source = Path(path)
    files = sorted(source.glob("*.json")) if source.is_dir() else [source]
    if not files:
        raise CompareError(f"{path}: no JSON report in this directory")
    reports = []
    for file in files:
        try:
            data = read_report(file)
        except ReportError as exc:
            if skipped is None:
                raise
            skipped.append(str(exc))
            continue
        data["_file"] = str(file)
        reports.append(data)
    if not reports:
        raise CompareError(f"{path}: no readable report ({len(files)} skipped)")
    return reports


def identity(report: dict[str, Any]) -> tuple[str, str, str]:
    """What two reports must share to be compared: schema, profile (its file name), target kind."""
    target = str(report.get("target", ""))
    kind = target.split(" (")[0] if target.startswith("embedded") else target
    return str(report["schema"]), Path(str(report.get("profile", ""))).name, kind


def check_comparable(baseline: list[dict[str, Any]], current: list[dict[str, Any]]) -> None:
    names = ("schema version", "profile", "target")
    ids = {identity(r): r["_file"] for r in baseline + current}
    if len(ids) > 1:
        (a, file_a), (b, file_b) = list(ids.items())[:2]
        i = next(i for i, (x, y) in enumerate(zip(a, b, strict=True)) if x != y)
        raise CompareError(
            f"{file_a} and {file_b} differ in {names[i]} ({a[i]!r} against {b[i]!r}): "
            "compare runs of one profile and target, or pass --force"
        )


def _side_versions(reports: list[dict[str, Any]]) -> dict[VersionKey, tuple[str, list[str]]]:
    """A side's distinct versions: each one's line (servers by major.minor) and the reports that ran it."""
    found: dict[VersionKey, tuple[str, list[str]]] = {}
    for report in reports:
        environment = report.get("environment")
        line = versions_line(environment, major_minor=True)
        found.setdefault(version_key(environment), (line, []))[1].append(Path(report["_file"]).name)
    return found


def _ran(side: str, versions: dict[VersionKey, tuple[str, list[str]]]) -> str:
    """``baseline ran redis-py 8.2.0 + hiredis 3.5.0 → redis 7.0`` (``current`` without "ran"); when a side's
    reports disagree, each version with the reports that ran it."""
    described = {key: UNKNOWN if key is None else line for key, (line, _) in versions.items()}
    if len(versions) > 1:
        each = "; ".join(f"{described[key]} in {', '.join(files)}" for key, (_, files) in versions.items())
        return f"{side}'s reports disagree ({each})"
    [text] = described.values()
    return f"{side} ran {text}" if side == "baseline" else f"{side} {text}"


def version_change(baseline: list[dict[str, Any]], current: list[dict[str, Any]]) -> str | None:
    """None when every report ran the same redis-py, hiredis and server major.minor versions; else one
    line naming both sides (and a side whose reports disagree among themselves)."""
    base, cur = _side_versions(baseline), _side_versions(current)
    if len(base) == 1 and len(cur) == 1 and base.keys() == cur.keys() and None not in base:
        return None
    return f"{_ran('baseline', base)}, {_ran('current', cur)}"


def check_versions(baseline: list[dict[str, Any]], current: list[dict[str, Any]]) -> None:
    """:class:`CompareError` naming both sides when they ran different versions (unless allowed, see the CLI)."""
    change = version_change(baseline, current)
    if change is not None:
        raise CompareError(f"compare: {change}: pass --allow-version-change to compare across versions")


@dataclass
class Side:
    """One side's figures for one fault name, pooled over its reports."""

    recoveries: list[float] = field(default_factory=list)
    requests: int = 0
    failures: int = 0
    hidden_retries: int = 0

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0

    def quantile(self, q: float) -> float | None:
        if not self.recoveries:
            return None
        ordered = sorted(self.recoveries)
        return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def sides(reports: list[dict[str, Any]]) -> dict[str, Side]:
    by_name: dict[str, Side] = {}
    for report in reports:
        for f in report["faults"]:
            if not f.get("ok") or f.get("requests") is None or (f.get("truncated") and f.get("recovery_s") is None):
                continue
            side = by_name.setdefault(f["name"], Side())
            side.recoveries.append(math.inf if f.get("recovery_s") is None else float(f["recovery_s"]))
            side.requests += int(f.get("requests") or 0)
            side.failures += int(f.get("failures") or 0)
            side.hidden_retries += int(f.get("hidden_retries") or 0)
    return by_name


def _writes(reports: list[dict[str, Any]], key: str) -> int | None:
    values = [r["summary"].get(key) for r in reports]
    return None if any(v is None for v in values) else sum(int(v) for v in values)


@dataclass
class Finding:
    fault: str
    figure: str
    baseline: str
    current: str
    p_value: float | None
    regression: bool
    why: str


@dataclass
class Comparison:
    rows: list[dict[str, Any]]
    findings: list[Finding]
    version_change: str | None = None  # compared across versions (allowed): what changed, in one line

    @property
    def across(self) -> str:
        """What a verdict line adds when the sides ran different versions (else nothing)."""
        return "" if self.version_change is None else f" [across versions: {self.version_change}]"

    @property
    def regressions(self) -> list[Finding]:
        return [f for f in self.findings if f.regression]

    @property
    def exit_code(self) -> int:
        return EXIT_REGRESSION if self.regressions else EXIT_NO_REGRESSION


def _s(value: float | None) -> str:
    if value is None:
        return "-"
    return "not recovered" if math.isinf(value) else f"{value:.3f} s"


def compare(
    baseline: list[dict[str, Any]],
    current: list[dict[str, Any]],
    alpha: float = 0.01,
    min_change: float = 0.2,
    min_change_ms: float = 50.0,
) -> Comparison:
    base, cur = sides(baseline), sides(current)
    rows, findings = [], []
    for name in sorted(set(base) | set(cur)):
        b, c = base.get(name, Side()), cur.get(name, Side())
        rows.append(
            {
                "fault": name,
                "windows": (len(b.recoveries), len(c.recoveries)),
                "recovery_p50_s": (b.quantile(0.5), c.quantile(0.5)),
                "recovery_p95_s": (b.quantile(0.95), c.quantile(0.95)),
                "error_rate": (b.error_rate, c.error_rate),
                "hidden_retries": (b.hidden_retries, c.hidden_retries),
            }
        )
        if b.recoveries and c.recoveries:
            p = rank_test_greater(b.recoveries, c.recoveries)
            mb, mc = statistics.median(b.recoveries), statistics.median(c.recoveries)
            if math.isinf(mb) or math.isinf(mc):
                grew = math.inf if math.isinf(mc) and not math.isinf(mb) else 0.0
                threshold = 0.0
            else:
                grew, threshold = mc - mb, max(min_change * mb, min_change_ms / 1000)
            regression = p < alpha and grew > threshold
            why = f"median {_s(mb)} -> {_s(mc)}, rank test p={p:.4f}" + _unless(regression, p, alpha)
            findings.append(Finding(name, "recovery", _s(b.quantile(0.95)), _s(c.quantile(0.95)), p, regression, why))
        if b.requests and c.requests:
            p = proportion_test_greater(b.failures, b.requests, c.failures, c.requests)
            regression = p < alpha and c.error_rate > b.error_rate * (1 + min_change)
            counts = f"{b.failures}/{b.requests} -> {c.failures}/{c.requests} failed in windows"
            why = f"{counts}, two-proportion p={p:.4f}" + _unless(regression, p, alpha)
            rates = f"{b.error_rate:.6f}", f"{c.error_rate:.6f}"
            findings.append(Finding(name, "error_rate_in_windows", *rates, p, regression, why))
    for key in ("lost_writes", "duplicated_writes"):
        lb, lc = _writes(baseline, key), _writes(current, key)
        judged = key == "lost_writes"
        regression = judged and lc is not None and lc > (lb or 0)
        note = " (any rise in lost writes fails)" if judged else " (shown, not judged)"
        findings.append(Finding("(run)", key, str(lb), str(lc), None, regression, f"{lb} -> {lc}{note}"))
    return Comparison(rows, findings, version_change(baseline, current))


def _unless(regression: bool, p: float, alpha: float) -> str:
    if regression:
        return ""
    return " (not significant)" if p >= alpha else " (below the practical threshold)"


def _changes(row: dict[str, Any]) -> list[tuple[str, str]]:
    (b50, c50), (b95, c95) = row["recovery_p50_s"], row["recovery_p95_s"]
    (be, ce), (bh, ch) = row["error_rate"], row["hidden_retries"]
    return [
        (str(row["windows"][0]), str(row["windows"][1])),
        (_cell(b50), _cell(c50)),
        (_cell(b95), _cell(c95)),
        (f"{be:.6f}", f"{ce:.6f}"),
        (str(bh), str(ch)),
    ]


HEADER = ("windows", "recovery p50 s", "recovery p95 s", "error rate in windows", "hidden retries")


def console_lines(comparison: Comparison) -> list[str]:
    """The table (baseline -> current per figure), the write figures, each regression, the verdict."""
    table = [["fault", *HEADER]] + [[r["fault"], *(f"{b} -> {c}" for b, c in _changes(r))] for r in comparison.rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]
    lines = []
    for row in table:
        cells = zip(row, widths, strict=True)
        lines.append("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(cells)))
    lines.extend(f"{f.figure}: {f.why}" for f in comparison.findings if f.fault == "(run)")
    for f in comparison.regressions:
        lines.append(f"REGRESSION {f.fault} {f.figure}: {f.baseline} -> {f.current} ({f.why}){comparison.across}")
    verdict = "REGRESSION" if comparison.regressions else "no regression"
    lines.append(f"Verdict: {verdict} (exit code {comparison.exit_code}){comparison.across}")
    return lines


def markdown(comparison: Comparison) -> str:
    """The same, ready to paste in a pull request's comment."""
    out = ["| fault | " + " | ".join(HEADER) + " |", "|---" * (len(HEADER) + 1) + "|"]
    for row in comparison.rows:
        out.append(f"| {row['fault']} | " + " | ".join(f"{b} → {c}" for b, c in _changes(row)) + " |")
    out.append("")
    for f in comparison.regressions:
        out.append(f"- **Regression** {f.fault} `{f.figure}`: {f.baseline} → {f.current} ({f.why}){comparison.across}")
    if not comparison.regressions:
        out.append(f"No regression.{comparison.across}")
    return "\n".join(out) + "\n"


def _cell(value: float | None) -> str:
    if value is None:
        return "-"
    return "inf" if math.isinf(value) else f"{value:.3f}"
