"""What one node measured in a test, as plain data that travels between nodes and merges exactly.

Counts add, error rates are recomputed from the sums, latency histograms and per-user
recovery values merge (never averaged), and a fault's ``recovery_s`` is the slowest node's
(None if any node had not recovered).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from recovery.histogram import LatencyHistogram
from recovery.tracker import Counts, RecoveryTracker, WindowSummary
from scenarios.run import IntegrityResult


@dataclass
class NodeResult:
    """A node's (or, merged, the whole run's) figures for one test."""

    windows: list[WindowSummary] = field(default_factory=list)
    outside: Counts = field(default_factory=Counts)
    baseline: LatencyHistogram = field(default_factory=LatencyHistogram)
    threshold_ms: float = 0.0
    integrity: dict[str, IntegrityResult] | None = field(default_factory=dict)
    integrity_error: str | None = None
    user_errors: int = 0

    @classmethod
    def from_tracker(
        cls,
        tracker: RecoveryTracker,
        integrity: dict[str, IntegrityResult] | None,
        integrity_error: str | None,
        user_errors: int,
    ) -> NodeResult:
        return cls(
            windows=list(tracker.closed),
            outside=tracker.outside,
            baseline=tracker.baseline,
            threshold_ms=tracker.degraded_threshold_ms(),
            integrity=integrity,
            integrity_error=integrity_error,
            user_errors=user_errors,
        )


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
    }


def result_from_dict(data: dict[str, Any]) -> NodeResult:
    integrity = data["integrity"]
    return NodeResult(
        windows=[window_from_dict(w) for w in data["windows"]],
        outside=Counts(**data["outside"]),
        baseline=LatencyHistogram.from_dict(data["baseline"]),
        threshold_ms=data["threshold_ms"],
        integrity=None if integrity is None else {k: IntegrityResult(**v) for k, v in integrity.items()},
        integrity_error=data["integrity_error"],
        user_errors=data["user_errors"],
    )


def merge_windows(parts: list[WindowSummary]) -> WindowSummary:
    """One fault's window as all nodes saw it."""
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
    )


def merge_results(parts: list[NodeResult], windows: list[WindowSummary]) -> NodeResult:
    """The run from its nodes' finals (``parts``) and every window any node reported (``windows``)."""
    by_fault: dict[int, list[WindowSummary]] = {}
    for w in windows:
        by_fault.setdefault(w.fault_id, []).append(w)
    merged = NodeResult(windows=[merge_windows(ws) for _, ws in sorted(by_fault.items())])
    integrity: dict[str, IntegrityResult] = {}
    errors = []
    for part in parts:
        merged.outside.requests += part.outside.requests
        merged.outside.failures += part.outside.failures
        merged.outside.hidden_retries += part.outside.hidden_retries
        merged.outside.reconnections += part.outside.reconnections
        merged.baseline.merge(part.baseline)
        merged.threshold_ms = max(merged.threshold_ms, part.threshold_ms)
        merged.user_errors += part.user_errors
        if part.integrity is None:
            errors.append(part.integrity_error or "not checked")
        else:
            for name, r in part.integrity.items():
                integrity.setdefault(name, IntegrityResult()).add(r)
    merged.integrity = None if errors else integrity
    merged.integrity_error = "; ".join(sorted(set(errors))) if errors else None
    return merged
