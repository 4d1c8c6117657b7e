"""A matrix's cells as results: each cell's figures (:class:`Cell`), their ranking, the console table, the
spread of repeats, ``matrix.json``'s entries and the page (the template ``chaos/static/matrix.html``).
chaos/matrix.py runs the cells."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from recovery.html import STYLE

PAGE = (Path(__file__).parent / "static" / "matrix.html").read_text(encoding="utf-8")  # the page's template


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
    def what(self) -> str:
        """Its kind in words (``no-retry redis==8.1.0 valkey``), as progress and spread lines name it."""
        return " ".join(x for x in self.kind if x)

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
    firsts: dict[tuple[str, str | None, str | None], Cell] = {}
    for cell in cells:
        firsts.setdefault(cell.kind, cell)
    for first in firsts.values():
        runs = [c.figures() for c in cells if c.kind == first.kind and c.report is not None]
        if len(runs) < 2:
            continue
        recovery = [r["recovery_p95_s"] for r in runs if r["recovery_p95_s"] is not None]
        failures = [r["failures_in_windows"] for r in runs]
        shown = f"{min(recovery)}-{max(recovery)} s" if recovery else "-"
        lines.append(
            f"spread of {first.what} over {len(runs)} runs: recovery p95 {shown}, "
            f"failures in windows {min(failures)}-{max(failures)}"
        )
    return lines


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
