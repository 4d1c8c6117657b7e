"""SLO verdict: which figure breaches, by how much, and the exit code."""

from __future__ import annotations

import math

import pytest

from chaos.profile import parse_profile
from recovery.outcome import exit_code_for
from recovery.records import FaultRecord
from recovery.report import client_excess_s, compute_figures
from recovery.results import NodeResult
from recovery.verdict import EXIT_PASS, EXIT_SLO_BREACHED, Figures, evaluate
from scenarios.run import IntegrityResult

from .helpers import window


def figures(**overrides: object) -> Figures:
    base: dict[str, object] = dict(
        recovery_p95_s=0.5,
        client_excess_p95_s=0.1,
        error_rate_in_windows=0.01,
        error_rate_outside_windows=0.0,
        lost_writes=0,
        duplicated_writes=0,
        failed_faults=0,
        user_errors=0,
        requests=1000,
        missing_workers=0,
    )
    base.update(overrides)
    return Figures(**base)  # type: ignore[arg-type]


SLO = parse_profile({}, "test").slo


def test_all_slos_hold() -> None:
    results = evaluate(SLO, figures())
    assert all(r.ok for r in results) and exit_code_for(results) == EXIT_PASS
    assert "SLO ok       max_recovery_p95_s: 0.5 <= 2" in [r.message for r in results]


def test_breach_names_the_slo_and_by_how_much() -> None:
    results = evaluate(SLO, figures(recovery_p95_s=4.25, lost_writes=3))
    assert exit_code_for(results) == EXIT_SLO_BREACHED
    breached = {r.name: r.message for r in results if not r.ok}
    assert breached == {
        "max_recovery_p95_s": "SLO BREACHED max_recovery_p95_s: 4.25 > 2 (over by 2.25)",
        "max_lost_writes": "SLO BREACHED max_lost_writes: 3 > 0 (over by 3)",
    }


def test_not_recovered_and_unknown_breach() -> None:
    results = {r.name: r for r in evaluate(SLO, figures(recovery_p95_s=math.inf, lost_writes=None))}
    assert results["max_recovery_p95_s"].message == "SLO BREACHED max_recovery_p95_s: not recovered > 2"
    assert results["max_lost_writes"].message == "SLO BREACHED max_lost_writes: unknown > 0"


def test_lower_bound_slo() -> None:
    (result,) = [r for r in evaluate(SLO, figures(requests=0)) if r.name == "min_requests"]
    assert result.message == "SLO BREACHED min_requests: 0 < 1 (under by 1)"


def test_null_limit_skips_the_check() -> None:
    assert "max_duplicated_writes" not in [r.name for r in evaluate(SLO, figures(duplicated_writes=99))]


def test_figures_leave_unresolved_windows_out_of_recovery() -> None:
    done = window(1, recovery=0.4)
    cut_short = window(2, recovery=None)
    cut_short.truncated = True
    result = NodeResult(windows=[done, cut_short], integrity={"ledger": IntegrityResult(10, 0, 0, 0)})
    assert compute_figures([], result).recovery_p95_s == 0.4
    cut_short.truncated = False  # closed at its max window, still degraded: a real failure to recover
    assert compute_figures([], result).recovery_p95_s == math.inf


def witnessed(fault_id: int, outage_s: float, started_s: float | None) -> FaultRecord:
    record = FaultRecord(fault_id, "client_pause", {}, offset_s=float(fault_id), inject_ms=1.0, t0=100.0 + fault_id)
    record.outage_s, record.outage_started_s = outage_s, started_s
    return record


def test_client_excess_is_recovery_beyond_the_outage_and_its_slo_breaches() -> None:
    records = [witnessed(1, 1.0, -0.002), witnessed(2, 0.0, None)]
    result = NodeResult(windows=[window(1, recovery=1.9), window(2, recovery=0.3)])
    assert [client_excess_s(r, w) for r, w in zip(records, result.windows, strict=True)] == [
        pytest.approx(0.902),
        0.3,  # no outage: the whole recovery is the clients'
    ]
    figures_ = compute_figures(records, result)
    assert figures_.client_excess_p95_s == pytest.approx(0.902)
    slo = parse_profile({"slo": {"max_client_excess_p95_s": 0.5}}, "test").slo
    [breach] = [r for r in evaluate(slo, figures_) if r.name == "max_client_excess_p95_s"]
    assert not breach.ok and breach.message == "SLO BREACHED max_client_excess_p95_s: 0.902 > 0.5 (over by 0.402)"
    assert not any(r.name == "max_client_excess_p95_s" for r in evaluate(SLO, figures_))  # null by default


def test_client_excess_is_unknown_without_a_witness_and_inf_when_not_recovered() -> None:
    unwitnessed = FaultRecord(1, "client_kill", {}, offset_s=1.0, inject_ms=1.0, t0=101.0)
    assert compute_figures([unwitnessed], NodeResult(windows=[window(1)])).client_excess_p95_s is None
    stuck = NodeResult(windows=[window(1, recovery=None)])
    assert compute_figures([witnessed(1, 0.5, 0.0)], stuck).client_excess_p95_s == math.inf
