"""The report as the console shows it at the end of a run: what ran (one line), one row per fault (and, in
a run with several request types, one sub-row per type), the summary, the SLO lines and the verdict."""

from __future__ import annotations

from typing import Any

from recovery.environment import versions_line
from recovery.verdict import SloResult

HEADER = (
    "#",
    "fault",
    "offset_s",
    "requests",
    "failures",
    "retries",
    "reconn",
    "users",
    "outage_s",
    "recovery_s",
    "excess_s",
)


def _cell(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def _recovery_cell(f: dict[str, Any]) -> str:
    recovery = f.get("recovery_s")
    if "recovered" not in f:  # no window of this request type for this fault (its users not spawned yet)
        return "-"
    if not f.get("ok", True):
        return "FAILED"
    if recovery is None:
        return "cut short" if f.get("truncated") else "not recovered"
    return _cell(recovery, 3)


def _row(f: dict[str, Any], fault: dict[str, Any], first: str, name: str) -> tuple[str, ...]:
    """A table row: ``f`` has the window's figures (the fault's, or one type's), ``fault`` the fault's own."""
    return (
        first,
        name,
        _cell(fault["offset_s"], 1),
        _cell(f.get("requests")),
        _cell(f.get("failures")),
        _cell(f.get("hidden_retries")),
        _cell(f.get("reconnections")),
        _cell(f.get("users_affected")),
        _cell(fault.get("outage_s"), 3),
        _recovery_cell({**f, "ok": fault["ok"]}) if fault["ok"] else "FAILED",
        _cell(fault.get("client_excess_s"), 3) if f is fault else "",
    )


def _connections(details: dict[str, Any]) -> str | None:
    """A client_kill's connections: before, killed, back at the window's close (when it counted them)."""
    if "connections_at_window_close" not in details:
        return None
    return (
        f"connections: {details.get('connections_found')} before, {details.get('connections_killed')} killed, "
        f"{details['connections_at_window_close']} at the window's close"
    )


def console_lines(report: dict[str, Any], slo_results: list[SloResult]) -> list[str]:
    """The table printed at the end of a run: one row per fault, then the SLO lines and the verdict."""
    s = report["summary"]
    types = sorted(s.get("by_type", {}))
    split = len(types) > 1
    rows: list[tuple[str, ...]] = [HEADER]
    notes: dict[int, str] = {}  # row index -> a line under it
    for f in report["faults"]:
        name = f["name"] if f.get("trigger", "schedule") == "schedule" else f"{f['name']} ({f['trigger']})"
        rows.append(_row(f, f, str(f["id"]), name))
        if split:
            for t in types:
                rows.append(_row(f.get("by_type", {}).get(t, {}), f, "", f"  {t}"))
        note = _connections(f.get("details") or {}) if report.get("service") else None
        if note is not None:
            notes[len(rows) - 1] = note
    widths = [max(len(r[i]) for r in rows) for i in range(len(HEADER))]
    lines = [
        "",
        f"Redis resilience report (run {report['run_id']}, target {report['target']})",
        versions_line(report.get("environment")),
    ]
    for i, row in enumerate(rows):
        lines.append(
            "  ".join(
                cell.ljust(w) if j < 2 else cell.rjust(w) for j, (cell, w) in enumerate(zip(row, widths, strict=True))
            ).rstrip()
        )
        if i == 0:
            lines.append("-" * len(lines[-1]))
        if i in notes:
            lines.append(f"      {notes[i]}")
    if len(rows) == 1:
        lines.append("(no faults injected)")
    lines.append(
        f"requests {s['requests']}, failures {s['failures']} "
        f"(in windows {s['in_windows']['failures']}/{s['in_windows']['requests']}, "
        f"outside {s['outside_windows']['failures']}/{s['outside_windows']['requests']}), "
        f"hidden retries {s['hidden_retries']}, reconnections {s['reconnections']}, "
        f"lost writes {_cell(s['lost_writes'])}, duplicated writes {_cell(s['duplicated_writes'])}"
    )
    if split:
        for t in types:
            b = s["by_type"][t]
            lines.append(
                f"  {t}: requests {b['requests']}, failures {b['failures']} (in windows "
                f"{b['in_windows']['failures']}/{b['in_windows']['requests']}, outside "
                f"{b['outside_windows']['failures']}/{b['outside_windows']['requests']}), "
                f"recovery p95 {_cell(b['recovery_p95_s'], 3)} s"
            )
    lines.extend(r.message for r in slo_results)
    if report.get("interrupted"):
        lines.append(f"INTERRUPTED  by {report['interrupted']}: the test was cut short, its figures cover what ran")
    if report.get("aborted"):
        lines.append(f"ABORTED      {report['aborted']}")
    lines.append(f"Verdict: {report['verdict'].upper()} (exit code {report['exit_code']})")
    return lines
