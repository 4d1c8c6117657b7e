"""The verdict: the profile's SLOs against the run's figures (the exit code they make is the outcome's:
recovery/outcome.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from config.schema import Slo

EXIT_PASS = 0
EXIT_BAD_INPUT = 2
EXIT_SLO_BREACHED = 3


@dataclass(frozen=True)
class Figures:
    """What the SLOs are checked against.

    ``recovery_p95_s`` (and ``client_excess_p95_s``) is inf when a fault did not recover (0 when no fault
    ran); ``client_excess_p95_s`` is None when a fault ran without a witness; a figure that
    could not be measured is None and breaches its SLO: unknown is not a pass.
    """

    recovery_p95_s: float | None
    client_excess_p95_s: float | None
    error_rate_in_windows: float
    error_rate_outside_windows: float
    lost_writes: int | None
    duplicated_writes: int | None
    failed_faults: int
    user_errors: int
    requests: int
    missing_workers: int = 0
    # The service's health at the end (None: no service.health to ask), and what it answered.
    service_recovered_at_end: bool | None = None
    service_health: str = ""
    # Integrity figures the workloads gate on, by name: ("lock_violations", 0), limited by the SLO
    # ``max_<name>`` (scenarios/registry.py's Gate); a workload that did not run counts 0.
    gated: tuple[tuple[str, float], ...] = ()


@dataclass(frozen=True)
class SloResult:
    name: str
    limit: float
    value: float | None
    ok: bool
    lower_bound: bool = False
    detail: str = ""  # a yes/no SLO's finding, in words

    @property
    def message(self) -> str:
        if self.detail:
            return f"SLO {'ok      ' if self.ok else 'BREACHED'} {self.name}: {self.detail}"
        if self.value is None:
            shown = "unknown"
        elif math.isinf(self.value):
            shown = "not recovered"
        else:
            shown = _fmt(self.value)
        holds, breaks = (">=", "<") if self.lower_bound else ("<=", ">")
        if self.ok:
            return f"SLO ok       {self.name}: {shown} {holds} {_fmt(self.limit)}"
        by = ""
        if self.value is not None and not math.isinf(self.value):
            by = f" ({'under' if self.lower_bound else 'over'} by {_fmt(abs(self.value - self.limit))})"
        return f"SLO BREACHED {self.name}: {shown} {breaks} {_fmt(self.limit)}{by}"


def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    if float(value).is_integer():
        return str(int(value))
    return f"{value:.6f}".rstrip("0").rstrip(".")


_GATED = "*"

# SLO name -> the figure it limits
_CHECKS: tuple[tuple[str, str], ...] = (
    ("max_recovery_p95_s", "recovery_p95_s"),
    ("max_client_excess_p95_s", "client_excess_p95_s"),
    ("max_error_rate_in_windows", "error_rate_in_windows"),
    ("max_error_rate_outside_windows", "error_rate_outside_windows"),
    ("max_lost_writes", "lost_writes"),
    ("max_duplicated_writes", "duplicated_writes"),
    ("max_failed_faults", "failed_faults"),
    ("max_user_errors", "user_errors"),
    (_GATED, _GATED),  # the workloads' gated integrity figures go here, each as max_<name>
    ("max_missing_workers", "missing_workers"),
    ("min_requests", "requests"),
)


def evaluate(slo: Slo, figures: Figures) -> list[SloResult]:
    """One result per SLO the profile sets (a null limit is skipped)."""
    results = []
    checks: list[tuple[str, float | None]] = []
    for slo_name, figure in _CHECKS:
        if figure == _GATED:
            checks.extend((f"max_{name}", value) for name, value in figures.gated)
        else:
            checks.append((slo_name, getattr(figures, figure)))
    if slo.service_recovered_at_end and figures.service_recovered_at_end is not None:
        healthy = figures.service_recovered_at_end
        results.append(SloResult("service_recovered_at_end", 1, float(healthy), healthy, True, figures.service_health))
    for slo_name, value in checks:
        limit = getattr(slo, slo_name, None)  # a gate of a workload the profile model does not know: none
        if limit is None:
            continue
        lower_bound = slo_name.startswith("min_")
        ok = value is not None and (value >= limit if lower_bound else value <= limit)
        results.append(SloResult(slo_name, limit, value, ok, lower_bound))
    return results
