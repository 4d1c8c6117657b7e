"""The report: one row per fault, the summary, integrity, SLO lines and the verdict (console and JSON).

The JSON layout is documented in ``docs/report.md``; ``schema`` names its version.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from config.schema import Slo
from recovery.environment import RunEnvironment
from recovery.records import FaultRecord
from recovery.results import NodeResult, TypeTotals, per_fault
from recovery.series import timeline
from recovery.tracker import Counts, WindowSummary, percentile
from recovery.verdict import EXIT_PASS, Figures, SloResult
from scenarios.registry import derived_figures, gates
from scenarios.run import IntegrityResult

REPORT_SCHEMA = "redis-resilience/report/v1"


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


@dataclass
class RunFacts:
    run_id: str
    profile: str
    target: str  # already redacted
    embedded_pid: int | None
    embedded_pids: list[int]  # every process of an embedded topology (servers and sentinels)
    mode: str
    chaos: bool
    started_at: float  # epoch seconds
    duration_s: float
    environment: RunEnvironment  # what ran: the tools', the client's and the servers' versions
    interrupted: str | None = None  # the test was cut short: by which signal (or "quit")
    aborted: str | None = None  # the pack stopped the test itself, and why (e.g. the embedded server died)


@dataclass(frozen=True)
class ReportInputs:
    """Everything one report is made of: the same for the live views and for the end of a test.

    :param workers: who was expected, who reported and each one's counts (a master's only)
    :param missing_by_fault: for each fault, the workers that sent no window of it (a master's only)
    :param service: the service's pre-flight facts, and at the end its ``health_at_end`` (HTTP users only)
    :param outage_ms: the witness's outage in each second of the timeline (None: no witness)
    """

    facts: RunFacts
    slo: Slo
    records: list[FaultRecord]
    result: NodeResult
    workers: dict[str, Any] | None = None
    missing_by_fault: dict[int, list[str]] | None = None
    service: dict[str, Any] | None = None
    outage_ms: dict[int, float] | None = None

    @property
    def missing_workers(self) -> int:
        return len(self.workers["missing"]) if self.workers else 0

    @property
    def service_health(self) -> dict[str, Any] | None:
        return (self.service or {}).get("health_at_end")


def window_figures(win: WindowSummary) -> dict[str, Any]:
    """A window's figures as a report row has them (a fault's, or one request type's in ``by_type``)."""
    return {
        "window_s": _r(win.window_s),
        "requests": win.requests,
        "failures": win.failures,
        "error_rate": _r(win.error_rate, 6),
        "degraded": win.degraded,
        "hidden_retries": win.hidden_retries,
        "reconnections": win.reconnections,
        "first_error_s": _r(win.first_error_s),
        "recovery_s": _r(win.recovery_s),
        "recovered": win.recovered,
        "truncated": win.truncated,
        "users_affected": win.users_affected,
        "users_not_recovered": win.users_not_recovered,
        "user_recovery_s": {
            "p50": _r(percentile(win.user_recovery_s, 0.5)),
            "p95": _r(percentile(win.user_recovery_s, 0.95)),
            "max": _r(max(win.user_recovery_s, default=None)),
        },
        "p99_ms": _r(win.p99_ms),
        "degraded_threshold_ms": _r(win.threshold_ms),
    }


def fault_rows(
    records: list[FaultRecord],
    windows: list[WindowSummary],
    missing_by_fault: dict[int, list[str]],
    typed: list[WindowSummary] | None = None,
) -> list[dict[str, Any]]:
    """One row per fault: its window over every request type (``windows``, one per fault), and each
    type's own (``typed``: one per fault and type) under ``by_type``."""
    by_id = {w.fault_id: w for w in windows}
    types: dict[int, dict[str, WindowSummary]] = {}
    for w in typed or []:
        types.setdefault(w.fault_id, {})[w.request_type] = w
    rows = []
    for rec in records:
        row: dict[str, Any] = {
            "id": rec.fault_id,
            "name": rec.name,
            "trigger": rec.trigger,
            "params": rec.params,
            "offset_s": _r(rec.offset_s),
            "ok": rec.ok,
            "error": rec.error,
            "scheduled_s": _r(rec.scheduled_s),
            "late_ms": _r(rec.late_ms, 1),
            "inject_ms": _r(rec.inject_ms),
            "duration_s": _r(rec.duration_s),
            "details": rec.all_details(),
        }
        win = by_id.get(rec.fault_id)
        row.update(
            witness_nodes=list(rec.watched),
            outage_s=_r(rec.outage_s),
            outage_started_s=_r(rec.outage_started_s),
            client_excess_s=_r(client_excess_s(rec, win)),
        )
        if win is None:
            row.update(requests=0, failures=0, hidden_retries=0, recovery_s=None, recovered=False)
        else:
            row.update(window_figures(win))
        row["by_type"] = {t: window_figures(w) for t, w in sorted(types.get(rec.fault_id, {}).items())}
        if rec.fault_id in missing_by_fault:
            row["missing_workers"] = missing_by_fault[rec.fault_id]
        if rec.revert_error:
            row["revert_error"] = rec.revert_error
        rows.append(row)
    return rows


def client_excess_s(record: FaultRecord, window: WindowSummary | None) -> float | None:
    """What the clients took beyond the server's own outage: ``recovery_s - (outage_started_s + outage_s)``
    (the whole recovery when the server had no outage). None when either is unknown (no witness, not
    recovered); negative when the clients were healthy before the witness's first reply."""
    if record.outage_s is None or window is None or window.recovery_s is None:
        return None
    outage_end = 0.0 if record.outage_started_s is None else record.outage_started_s + record.outage_s
    return window.recovery_s - outage_end


def excess_p95(records: list[FaultRecord], windows: list[WindowSummary]) -> float | None:
    """The p95 of ``client_excess_s`` over the faults that ran: inf when one did not recover, None when
    a fault ran unwitnessed (unknown is not a pass), 0 when none ran."""
    by_id = {w.fault_id: w for w in windows}
    values = []
    for rec in records:
        win = by_id.get(rec.fault_id)
        if not rec.ok or win is None or win.unresolved:
            continue
        if rec.outage_s is None:
            return None
        excess = client_excess_s(rec, win)
        values.append(math.inf if excess is None else excess)
    return percentile(values, 0.95) if values else 0.0


def compute_figures(
    records: list[FaultRecord],
    result: NodeResult,
    missing_workers: int = 0,
    service_health: dict[str, Any] | None = None,
    windows: list[WindowSummary] | None = None,
) -> Figures:
    """The SLO figures. ``result.integrity`` None means it could not be checked: write figures are unknown.
    ``service_health``: the service's health check at the end (``healthy``, ``said``: what it answered, in
    words); None: no health endpoint to ask. ``windows``: the faults' windows merged over the request types
    (:func:`per_fault` of ``result.windows``), when the caller has them already."""
    windows = per_fault(result.windows) if windows is None else windows
    outside, integrity = result.outside, result.integrity
    # A window cut short by the end of the test while still degraded is unknown, not a failure.
    recoveries = [math.inf if w.recovery_s is None else w.recovery_s for w in windows if not w.unresolved]
    in_requests = sum(w.requests for w in windows)
    in_failures = sum(w.failures for w in windows)
    return Figures(
        recovery_p95_s=percentile(recoveries, 0.95) if recoveries else 0.0,
        client_excess_p95_s=excess_p95(records, windows),
        error_rate_in_windows=in_failures / in_requests if in_requests else 0.0,
        error_rate_outside_windows=outside.error_rate,
        lost_writes=None if integrity is None else sum(r.lost for r in integrity.values()),
        duplicated_writes=None if integrity is None else sum(r.duplicated for r in integrity.values()),
        failed_faults=sum(1 for r in records if not r.ok),
        user_errors=result.user_errors,
        requests=in_requests + outside.requests,
        missing_workers=missing_workers,
        service_recovered_at_end=None if service_health is None else bool(service_health["healthy"]),
        service_health="" if service_health is None else str(service_health["said"]),
        gated=tuple((gate.summary, _gated(integrity, workload, gate.figure)) for workload, gate in gates()),
    )


def _gated(integrity: dict[str, IntegrityResult] | None, workload: str, figure: str) -> float:
    """A gated figure of a workload after every node is merged in; 0 when it did not run (or was not checked)."""
    result = None if integrity is None else integrity.get(workload)
    return 0 if result is None else derived_figures(workload, result.figures).get(figure, 0)


def build_report(
    inputs: ReportInputs,
    windows: list[WindowSummary],
    figures: Figures,
    slo_results: list[SloResult],
    code: int,
    with_timeline: bool = True,
) -> dict[str, Any]:
    """The JSON report of ``inputs``, with the exit ``code`` the outcome decided (recovery/outcome.py);
    ``windows``: the faults' windows merged over the request types (:func:`per_fault`)."""
    facts, records, result = inputs.facts, inputs.records, inputs.result
    outside = result.outside
    integrity = result.integrity
    in_win = Counts(
        requests=sum(w.requests for w in windows),
        failures=sum(w.failures for w in windows),
        hidden_retries=sum(w.hidden_retries for w in windows),
        reconnections=sum(w.reconnections for w in windows),
    )
    recovery_p95 = figures.recovery_p95_s
    return {
        "schema": REPORT_SCHEMA,
        "run_id": facts.run_id,
        "profile": facts.profile,
        "target": facts.target,
        "embedded_server_pid": facts.embedded_pid,
        "embedded_pids": facts.embedded_pids,
        "interrupted": facts.interrupted,
        "aborted": facts.aborted,
        "mode": facts.mode,
        "chaos": facts.chaos,
        "started_at": round(facts.started_at, 3),
        "duration_s": _r(facts.duration_s),
        "environment": facts.environment.as_report(),
        "baseline": {
            "requests": result.baseline.count,
            "p50_ms": _r(result.baseline.percentile(0.5)),
            "p99_ms": _r(result.baseline.percentile(0.99)),
            "degraded_threshold_ms": _r(result.threshold_ms),
            "by_type": {t: _baseline(v) for t, v in sorted(result.by_type.items())},
        },
        "service": inputs.service,
        "workers": inputs.workers,
        "faults": fault_rows(records, windows, inputs.missing_by_fault or {}, result.windows),
        "summary": {
            "requests": in_win.requests + outside.requests,
            "failures": in_win.failures + outside.failures,
            "hidden_retries": in_win.hidden_retries + outside.hidden_retries,
            "reconnections": in_win.reconnections + outside.reconnections,
            "faults_injected": sum(1 for r in records if r.ok),
            "faults_failed": figures.failed_faults,
            "faults_recovered": sum(1 for w in windows if w.recovered),
            "recovery_p95_s": None if recovery_p95 is None or math.isinf(recovery_p95) else _r(recovery_p95),
            "client_excess_p95_s": _finite(figures.client_excess_p95_s),
            "late_ms_p99": _r(percentile([r.late_ms for r in records if r.late_ms is not None], 0.99), 1),
            "in_windows": {
                "requests": in_win.requests,
                "failures": in_win.failures,
                "error_rate": _r(figures.error_rate_in_windows, 6),
            },
            "outside_windows": {
                "requests": outside.requests,
                "failures": outside.failures,
                "error_rate": _r(figures.error_rate_outside_windows, 6),
            },
            "lost_writes": figures.lost_writes,
            "duplicated_writes": figures.duplicated_writes,
            "user_errors": figures.user_errors,
            "missing_workers": figures.missing_workers,
            **{name: _number(value) for name, value in figures.gated},
            "by_type": {t: _type_summary(t, v, result.windows) for t, v in sorted(result.by_type.items())},
        },
        "integrity": (
            {"error": result.integrity_error}
            if integrity is None
            else {name: _integrity_row(name, r) for name, r in sorted(integrity.items())}
        ),
        "slo": [
            {
                "name": s.name,
                "limit": s.limit,
                "value": None if s.value is None or math.isinf(s.value) else _r(s.value, 6),
                "ok": s.ok,
                "message": s.message,
            }
            for s in slo_results
        ],
        "verdict": "pass" if code == EXIT_PASS else "fail",
        "exit_code": code,
        "timeline": timeline(result.series, result.users, inputs.outage_ms) if with_timeline else None,
    }


def _baseline(totals: TypeTotals) -> dict[str, Any]:
    return {
        "requests": totals.baseline.count,
        "p50_ms": _r(totals.baseline.percentile(0.5)),
        "p99_ms": _r(totals.baseline.percentile(0.99)),
        "degraded_threshold_ms": _r(totals.threshold_ms),
    }


def _type_summary(request_type: str, totals: TypeTotals, typed: list[WindowSummary]) -> dict[str, Any]:
    """One request type's run: its requests and failures in and outside the windows, its recovery p95."""
    windows = [w for w in typed if w.request_type == request_type]
    in_requests, in_failures = sum(w.requests for w in windows), sum(w.failures for w in windows)
    recoveries = [math.inf if w.recovery_s is None else w.recovery_s for w in windows if not w.unresolved]
    p95 = percentile(recoveries, 0.95) if recoveries else 0.0
    return {
        "requests": in_requests + totals.outside.requests,
        "failures": in_failures + totals.outside.failures,
        "hidden_retries": sum(w.hidden_retries for w in windows) + totals.outside.hidden_retries,
        "recovery_p95_s": _finite(p95),
        "faults_recovered": sum(1 for w in windows if w.recovered),
        "in_windows": {
            "requests": in_requests,
            "failures": in_failures,
            "error_rate": _r(in_failures / in_requests if in_requests else 0.0, 6),
        },
        "outside_windows": {
            "requests": totals.outside.requests,
            "failures": totals.outside.failures,
            "error_rate": _r(totals.outside.error_rate, 6),
        },
    }


def _integrity_row(workload: str, result: IntegrityResult) -> dict[str, Any]:
    """One workload's integrity figures; run-wide ones are derived here, after every node's merged in."""
    row = asdict(result)
    figures = row.pop("figures")
    figures.update(derived_figures(workload, result.figures))
    row.update(figures)
    return row


def _finite(value: float | None) -> float | None:
    return None if value is None or math.isinf(value) else _r(value)


def _number(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def write_atomically(path: str | Path, text: str) -> None:
    """``text`` to ``path`` (its folder made), whole or not at all: written beside it, then renamed over it."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(target.suffix + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)


def write_json(report: dict[str, Any], path: str | Path) -> None:
    write_atomically(path, json.dumps(report, indent=2) + "\n")


class ReportError(Exception):
    """A saved report that cannot be read: ``str()`` is the one-line message (exit 2)."""


REQUIRED = ("schema", "run_id", "faults", "summary", "slo", "verdict", "exit_code")


def read_report(path: str | Path) -> dict[str, Any]:
    """A saved JSON report; :class:`ReportError` naming the file and what is wrong."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ReportError(f"{path}: cannot read it: {exc.strerror or exc}") from None
    except ValueError as exc:
        raise ReportError(f"{path}: not JSON: {exc}") from None
    if not isinstance(data, dict) or not str(data.get("schema", "")).startswith("redis-resilience/report/"):
        raise ReportError(f"{path}: not a redis-resilience report (no schema redis-resilience/report/...)")
    missing = [key for key in REQUIRED if key not in data]
    if missing:
        raise ReportError(f"{path}: the report lacks {', '.join(missing)}")
    return data
