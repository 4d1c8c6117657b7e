"""``redis-resilience history DIR -o trend.html``: every report of a directory, as a trend page.

Per fault name, over the runs (ordered by their start): recovery p95, the error rate in windows, and
the run's lost writes. The baseline band is the spread (min to max) of the first ``baseline_runs``
runs; each later run is compared with those runs pooled, the way ``redis-resilience compare`` does
(recovery/compare.py), and its regressions are marked. Each point links to its report. The page is
self-contained, in the run report's look (recovery/html.py's style and the vendored uPlot).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recovery.compare import compare, load_reports, sides
from recovery.html import STATIC, STYLE, _inline_json
from recovery.report import write_atomically

FIGURE_OF = {"recovery": "recovery_p95_s", "error_rate_in_windows": "error_rate"}  # compare's names -> the page's


def trend(reports: list[dict[str, Any]], baseline_runs: int = 3, **thresholds: float) -> dict[str, Any]:
    """The page's data: the runs, and per fault name a point per run and figure, the band, the regressions."""
    runs = sorted(reports, key=lambda r: float(r.get("started_at", 0)))
    base = runs[: max(1, min(baseline_runs, len(runs)))]
    names = sorted({f["name"] for r in runs for f in r["faults"] if f.get("ok")})
    faults: dict[str, Any] = {}
    for name in names:
        series: dict[str, list[float | None]] = {"recovery_p95_s": [], "error_rate": [], "lost_writes": []}
        regressions: dict[str, list[int]] = {"recovery_p95_s": [], "error_rate": [], "lost_writes": []}
        for index, run in enumerate(runs):
            side = sides([run]).get(name)
            p95 = side.quantile(0.95) if side is not None else None
            series["recovery_p95_s"].append(None if p95 is None or p95 == float("inf") else round(p95, 3))
            series["error_rate"].append(round(side.error_rate, 6) if side is not None else None)
            series["lost_writes"].append(run["summary"].get("lost_writes"))
            if index >= len(base):
                for finding in compare(base, [run], **thresholds).regressions:
                    figure = FIGURE_OF.get(finding.figure, finding.figure)
                    if finding.fault in (name, "(run)") and figure in regressions:
                        regressions[figure].append(index)
        band = {key: _band(values[: len(base)]) for key, values in series.items()}
        faults[name] = {"series": series, "band": band, "regressions": regressions}
    return {
        "runs": [
            {
                "file": r["_file"],
                "run_id": r.get("run_id"),
                "started_at": r.get("started_at"),
                "verdict": r.get("verdict"),
                "profile": r.get("profile"),
            }
            for r in runs
        ],
        "baseline_runs": len(base),
        "faults": faults,
    }


def _band(values: list[Any]) -> list[float] | None:
    known = [float(v) for v in values if v is not None]
    return [min(known), max(known)] if known else None


PAGE = (STATIC / "history.html").read_text(encoding="utf-8")  # the page; its placeholders filled below


def render_history(data: dict[str, Any]) -> str:
    parts = {
        "__UPLOT_CSS__": (STATIC / "uplot" / "uPlot.min.css").read_text(encoding="utf-8"),
        "__STYLE__": STYLE,
        "__UPLOT_JS__": (STATIC / "uplot" / "uPlot.iife.min.js").read_text(encoding="utf-8"),
        "__APP_JS__": (STATIC / "history.js").read_text(encoding="utf-8"),
        "__DATA__": _inline_json(data),
    }
    page = PAGE
    for key in ("__UPLOT_CSS__", "__STYLE__", "__UPLOT_JS__", "__APP_JS__", "__DATA__"):
        page = page.replace(key, parts[key], 1)
    return page


def write_history(
    directory: str | Path,
    output: str | Path,
    baseline_runs: int = 3,
    skipped: list[str] | None = None,
    **thresholds: float,
) -> int:
    """The trend page of every report in ``directory``; the number of runs. CompareError on bad input.
    ``skipped``: a report that cannot be read is left out, its reason added there (one corrupt nightly
    report must not take the trend down)."""
    data = trend(load_reports(directory, skipped), baseline_runs, **thresholds)
    out = Path(output)
    for run in data["runs"]:  # links relative to the page
        run["link"] = _relative(Path(run["file"]), out.parent)
    write_atomically(out, render_history(data))
    return len(data["runs"])


def _relative(target: Path, base: Path) -> str:
    import os

    return os.path.relpath(target.resolve(), base.resolve())
