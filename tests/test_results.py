"""Merging what workers measured: exact, never averaged."""

from __future__ import annotations

import json

import pytest

from recovery.results import (
    NodeResult,
    merge_results,
    merge_windows,
    result_from_dict,
    result_to_dict,
    window_from_dict,
    window_to_dict,
)
from recovery.tracker import Counts
from scenarios.run import IntegrityResult

from .helpers import window


def test_window_merge_adds_counts_and_takes_the_slowest_recovery() -> None:
    merged = merge_windows(
        [
            window(requests=10, failures=1, recovery=0.2, users=[0.1, 0.2], latencies=(1, 2)),
            window(requests=30, failures=4, recovery=0.9, users=[0.9], latencies=(100,)),
        ]
    )
    assert (merged.requests, merged.failures, merged.degraded) == (40, 5, 5)
    assert (merged.hidden_retries, merged.reconnections) == (4, 6)
    assert merged.recovery_s == 0.9
    assert merged.error_rate == pytest.approx(5 / 40)  # from the sums, not an average of rates
    assert sorted(merged.user_recovery_s) == [0.1, 0.2, 0.9]
    assert merged.users_affected == 3
    assert merged.latency.count == 3
    assert merged.p99_ms == pytest.approx(100, rel=0.05)


def test_window_merge_is_not_recovered_if_any_node_is_not() -> None:
    assert merge_windows([window(recovery=0.2), window(recovery=None)]).recovery_s is None


def test_results_merge_and_travel_as_json() -> None:
    a = NodeResult(
        windows=[], outside=Counts(100, 1, 2, 3), threshold_ms=50, integrity={"ledger": IntegrityResult(10, 1, 0, 2)}
    )
    b = NodeResult(
        windows=[],
        outside=Counts(50, 0, 0, 1),
        threshold_ms=60,
        integrity={"ledger": IntegrityResult(5, 0, 1, 0)},
        user_errors=1,
    )
    a.baseline.add(1.0)
    b.baseline.add(3.0)
    a, b = (result_from_dict(json.loads(json.dumps(result_to_dict(r)))) for r in (a, b))
    w1 = window_from_dict(json.loads(json.dumps(window_to_dict(window(1)))))
    merged = merge_results([a, b], [w1, window(1), window(2)])
    assert [w.fault_id for w in merged.windows] == [1, 2]
    assert merged.windows[0].requests == 20
    assert merged.outside == Counts(150, 1, 2, 4)
    assert merged.baseline.count == 2
    assert merged.threshold_ms == 60
    assert merged.user_errors == 1
    assert merged.integrity == {"ledger": IntegrityResult(15, 1, 1, 2)}


def test_an_unchecked_node_makes_integrity_unknown() -> None:
    good = NodeResult(integrity={"ledger": IntegrityResult(5, 0, 0, 0)})
    bad = NodeResult(integrity=None, integrity_error="ConnectionError: refused")
    merged = merge_results([good, bad], [])
    assert merged.integrity is None and merged.integrity_error == "ConnectionError: refused"
