"""SLO verdict: which figure breaches, by how much, and the exit code."""

from __future__ import annotations

import math

from chaos.profile import parse_profile
from recovery.outcome import Outcome
from recovery.report import compute_figures
from recovery.results import NodeResult
from recovery.verdict import EXIT_PASS, EXIT_SLO_BREACHED, Figures, evaluate
from scenarios.run import IntegrityResult

from .helpers import window


def figures(**overrides: object) -> Figures:
    base: dict[str, object] = dict(
        recovery_p95_s=0.5, client_excess_p95_s=0.1, error_rate_in_windows=0.01, error_rate_outside_windows=0.0,
        lost_writes=0, duplicated_writes=0, failed_faults=0, user_errors=0, requests=1000, missing_workers=0,
    )  # fmt: skip
    base.update(overrides)
    return Figures(**base)  # type: ignore[arg-type]


SLO = parse_profile({}, "test").slo


def test_all_slos_hold() -> None:
    results = evaluate(SLO, figures())
    assert all(r.ok for r in results) and Outcome.exit_code_for(results) == EXIT_PASS
    assert "SLO ok       max_recovery_p95_s: 0.5 <= 2" in [r.message for r in results]


def test_breach_names_the_slo_and_by_how_much() -> None:
    results = evaluate(SLO, figures(recovery_p95_s=4.25, lost_writes=3))
    assert Outcome.exit_code_for(results) == EXIT_SLO_BREACHED
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
