"""What one node measured in a test, as plain data that travels between nodes and merges exactly.

Counts add, error rates are recomputed from the sums, latency histograms and per-user
recovery values merge (never averaged), and a fault's ``recovery_s`` is the slowest node's
(None if any node had not recovered).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from recovery.histogram import LatencyHistogram
from recovery.series import Second, merge_series, series_from_dict, series_to_dict
from recovery.tracker import Counts, RequestTrackers, WindowSummary
from scenarios.run import IntegrityResult


@dataclass
class TypeTotals:
    """One request type's figures outside the windows: counts, the pre-fault baseline, the degraded threshold."""

    outside: Counts = field(default_factory=Counts)
    baseline: LatencyHistogram = field(default_factory=LatencyHistogram)
    threshold_ms: float = 0.0

    def add(self, other: TypeTotals) -> None:
        self.outside.requests += other.outside.requests
        self.outside.failures += other.outside.failures
        self.outside.hidden_retries += other.outside.hidden_retries
        self.outside.reconnections += other.outside.reconnections
        self.baseline.merge(other.baseline)
        self.threshold_ms = max(self.threshold_ms, other.threshold_ms)


@dataclass
class NodeResult:
    """A node's (or, merged, the whole run's) figures for one test. ``windows`` has one window per fault
    and request type (``request_type``); ``outside``, ``baseline`` and ``threshold_ms`` are every type's
    together, ``by_type`` the same for each."""

    windows: list[WindowSummary] = field(default_factory=list)
    outside: Counts = field(default_factory=Counts)
    baseline: LatencyHistogram = field(default_factory=LatencyHistogram)
    threshold_ms: float = 0.0
    integrity: dict[str, IntegrityResult] | None = field(default_factory=dict)
    integrity_error: str | None = None
    user_errors: int = 0
    by_type: dict[str, TypeTotals] = field(default_factory=dict)
    series: dict[str, dict[int, Second]] = field(default_factory=dict)  # request type -> epoch second -> figures
    users: dict[int, int] = field(default_factory=dict)  # epoch second -> users running

    @classmethod
    def from_trackers(
        cls,
        trackers: RequestTrackers,
        integrity: dict[str, IntegrityResult] | None,
        integrity_error: str | None,
        user_errors: int,
    ) -> NodeResult:
        result = cls(
            integrity=integrity,
            integrity_error=integrity_error,
            user_errors=user_errors,
            series=trackers.series(),
            users=dict(trackers.users),
        )
        for request_type, tracker in sorted(trackers.by_type.items()):
            result.windows.extend(tracker.closed)
            result.add_type(
                request_type, TypeTotals(tracker.outside, tracker.baseline, tracker.degraded_threshold_ms())
            )
        return result

    def add_type(self, request_type: str, totals: TypeTotals) -> None:
        """One type's figures (a node's, or another node's of the same type) into this result."""
        mine = self.by_type.setdefault(request_type, TypeTotals())
        mine.add(totals)
        whole = TypeTotals(self.outside, self.baseline, self.threshold_ms)
        whole.add(totals)
        self.threshold_ms = whole.threshold_ms


def window_to_dict(w: WindowSummary) -> dict[str, Any]:
    data = {k: v for k, v in asdict(w).items() if k != "latency"}
    data["latency"] = w.latency.to_dict()
    return data


def window_from_dict(data: dict[str, Any]) -> WindowSummary:
    fields = dict(data)
    fields["latency"] = LatencyHistogram.from_dict(fields["latency"])
    return WindowSummary(**fields)


def result_to_dict(r: NodeResult, include_windows: bool = True) -> dict[str, Any]:
    return {
        "windows": [window_to_dict(w) for w in r.windows] if include_windows else [],
        "outside": asdict(r.outside),
        "baseline": r.baseline.to_dict(),
        "threshold_ms": r.threshold_ms,
        "integrity": None if r.integrity is None else {k: asdict(v) for k, v in r.integrity.items()},
        "integrity_error": r.integrity_error,
        "user_errors": r.user_errors,
        "by_type": {
            t: {"outside": asdict(v.outside), "baseline": v.baseline.to_dict(), "threshold_ms": v.threshold_ms}
            for t, v in r.by_type.items()
        },
        "series": series_to_dict(r.series, r.users),
    }


def result_from_dict(data: dict[str, Any]) -> NodeResult:
    integrity = data["integrity"]
    series, users = series_from_dict(data.get("series"))
    return NodeResult(
        series=series,
        users=users,
        windows=[window_from_dict(w) for w in data["windows"]],
        outside=Counts(**data["outside"]),
        baseline=LatencyHistogram.from_dict(data["baseline"]),
        threshold_ms=data["threshold_ms"],
        integrity=None if integrity is None else {k: IntegrityResult(**v) for k, v in integrity.items()},
        integrity_error=data["integrity_error"],
        user_errors=data["user_errors"],
        by_type={
            t: TypeTotals(Counts(**v["outside"]), LatencyHistogram.from_dict(v["baseline"]), v["threshold_ms"])
            for t, v in data.get("by_type", {}).items()
        },
    )


def merge_windows(parts: list[WindowSummary]) -> WindowSummary:
    """One fault's window as all nodes saw it (or, for the report's row, as every request type saw it:
    its ``request_type`` is then "")."""
    first = parts[0]
    latency = LatencyHistogram()
    for p in parts:
        latency.merge(p.latency)
    errors = [p.first_error_s for p in parts if p.first_error_s is not None]
    recoveries = [p.recovery_s for p in parts]
    return WindowSummary(
        fault_id=first.fault_id,
        name=first.name,
        requests=sum(p.requests for p in parts),
        failures=sum(p.failures for p in parts),
        degraded=sum(p.degraded for p in parts),
        hidden_retries=sum(p.hidden_retries for p in parts),
        reconnections=sum(p.reconnections for p in parts),
        first_error_s=min(errors) if errors else None,
        recovery_s=None if any(r is None for r in recoveries) else max(r for r in recoveries if r is not None),
        window_s=max(p.window_s for p in parts),
        users_affected=sum(p.users_affected for p in parts),
        user_recovery_s=[v for p in parts for v in p.user_recovery_s],
        users_not_recovered=sum(p.users_not_recovered for p in parts),
        p99_ms=latency.percentile(0.99),
        threshold_ms=max(p.threshold_ms for p in parts),
        latency=latency,
        truncated=any(p.truncated for p in parts),
        request_type=first.request_type if all(p.request_type == first.request_type for p in parts) else "",
    )


def per_fault(windows: list[WindowSummary]) -> list[WindowSummary]:
    """Each fault's windows of every request type merged into one (by fault id)."""
    by_fault: dict[int, list[WindowSummary]] = {}
    for w in windows:
        by_fault.setdefault(w.fault_id, []).append(w)
    return [merge_windows(ws) for _, ws in sorted(by_fault.items())]


def merge_results(parts: list[NodeResult], windows: list[WindowSummary]) -> NodeResult:
    """The run from its nodes' finals (``parts``) and every window any node reported (``windows``)."""
    by_key: dict[tuple[int, str], list[WindowSummary]] = {}
    for w in windows:
        by_key.setdefault((w.fault_id, w.request_type), []).append(w)
    merged = NodeResult(windows=[merge_windows(ws) for _, ws in sorted(by_key.items())])
    integrity: dict[str, IntegrityResult] = {}
    errors = []
    for part in parts:
        if part.by_type:
            for request_type, totals in part.by_type.items():
                merged.add_type(request_type, totals)
        else:  # figures without types (a node that made no request of a tracked type)
            TypeTotals(merged.outside, merged.baseline, 0.0).add(TypeTotals(part.outside, part.baseline, 0.0))
            merged.threshold_ms = max(merged.threshold_ms, part.threshold_ms)
        merged.user_errors += part.user_errors
        for request_type, seconds in part.series.items():
            merge_series(merged.series.setdefault(request_type, {}), seconds)
        for second, count in part.users.items():  # each worker's own users: they add up
            merged.users[second] = merged.users.get(second, 0) + count
        if part.integrity is None:
            errors.append(part.integrity_error or "not checked")
        else:
            for name, r in part.integrity.items():
                integrity.setdefault(name, IntegrityResult()).add(r)
    merged.integrity = None if errors else integrity
    merged.integrity_error = "; ".join(sorted(set(errors))) if errors else None
    return merged
