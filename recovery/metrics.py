"""Prometheus metrics of a run, computed at each scrape from the report as it stands (a live report
during a test, the final one after it): nothing is counted on the hot path.

Names follow Prometheus' conventions (``_total`` counters, ``_seconds`` base units). The service plan
this pack grew from named ``redis_reset_total`` and ``redis_connection_count``: they are
``redis_resilience_faults_total`` and ``redis_resilience_connections`` here (docs/observability.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

RECOVERY_BUCKETS_S = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0, 60.0)


def families(report: dict[str, Any] | None, connections: dict[str, Any] | None) -> list[Metric]:
    """The run's metrics from a report (None: no test yet) and the run's connections now."""
    faults = CounterMetricFamily(
        "redis_resilience_faults",
        "Faults by name and outcome (injected, failed, recovered, not_recovered)",
        labels=["fault", "outcome"],
    )
    requests = CounterMetricFamily(
        "redis_resilience_requests", "Requests by type, in or outside fault windows", labels=["type", "window"]
    )
    failures = CounterMetricFamily(
        "redis_resilience_failures", "Failed requests by type, in or outside fault windows", labels=["type", "window"]
    )
    retries = CounterMetricFamily("redis_resilience_hidden_retries", "Retries redis-py made out of sight")
    reconnections = CounterMetricFamily("redis_resilience_reconnections", "Reconnections of the run's clients")
    lost = GaugeMetricFamily("redis_resilience_lost_writes", "Acknowledged writes missing at the end (-1: unknown)")
    recovery = HistogramMetricFamily("redis_resilience_recovery_seconds", "Time from a fault to healthy clients")
    conns = GaugeMetricFamily(
        "redis_resilience_connections",
        "The run's connections: in_use and idle in its pools, server as the server lists them",
        labels=["state"],
    )
    verdict = GaugeMetricFamily(
        "redis_resilience_verdict", "The last test's verdict: 1 pass, 0 fail, -1 none yet (or running)"
    )
    if report is not None:
        counts: dict[tuple[str, str], int] = {}
        recoveries: list[float] = []
        for f in report["faults"]:
            outcomes = ["injected" if f["ok"] else "failed"]
            if f["ok"] and "recovered" in f and not f.get("truncated"):
                outcomes.append("recovered" if f["recovered"] else "not_recovered")
            if f.get("recovery_s") is not None:
                recoveries.append(float(f["recovery_s"]))
            for outcome in outcomes:
                counts[(f["name"], outcome)] = counts.get((f["name"], outcome), 0) + 1
        for (name, outcome), n in sorted(counts.items()):
            faults.add_metric([name, outcome], n)
        summary = report["summary"]
        for request_type, figures in sorted(summary.get("by_type", {}).items()):
            for window, key in (("in", "in_windows"), ("out", "outside_windows")):
                requests.add_metric([request_type, window], figures[key]["requests"])
                failures.add_metric([request_type, window], figures[key]["failures"])
        retries.add_metric([], summary["hidden_retries"])
        reconnections.add_metric([], summary["reconnections"])
        lost.add_metric([], -1 if summary.get("lost_writes") is None else summary["lost_writes"])
        buckets = [(_le(b), sum(1 for r in recoveries if r <= b)) for b in RECOVERY_BUCKETS_S]
        recovery.add_metric([], [*buckets, ("+Inf", len(recoveries))], sum_value=math.fsum(recoveries))
        verdict.add_metric([], {"pass": 1, "fail": 0}.get(report.get("verdict", ""), -1))
    else:
        verdict.add_metric([], -1)
    pools = (connections or {}).get("pools") or {}
    for state in ("in_use", "idle"):
        if isinstance(pools.get(state), int):
            conns.add_metric([state], pools[state])
    server = (connections or {}).get("server") or {}
    if isinstance(server.get("clients"), int):
        conns.add_metric(["server"], server["clients"])
    return [faults, requests, failures, retries, reconnections, lost, recovery, conns, verdict]


def _le(bound: float) -> str:
    return f"{bound:g}"


class RunCollector(Collector):
    """A collector over a role's live state: ``snapshot()`` gives (report, connections) at each scrape."""

    def __init__(self, snapshot: Callable[[], tuple[dict[str, Any] | None, dict[str, Any] | None]]) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        report, connections = self.snapshot()
        yield from families(report, connections)


def registry_of(snapshot: Callable[[], tuple[dict[str, Any] | None, dict[str, Any] | None]]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RunCollector(snapshot))
    return registry
