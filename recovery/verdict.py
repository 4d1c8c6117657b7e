"""The verdict: the profile's SLOs against the run's figures, and the exit code that follows."""

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

    ``recovery_p95_s`` is inf when a fault did not recover (0 when no fault ran); a figure that
    could not be measured is None and breaches its SLO: unknown is not a pass.
    """

    recovery_p95_s: float | None
    error_rate_in_windows: float
    error_rate_outside_windows: float
    lost_writes: int | None
    duplicated_writes: int | None
    failed_faults: int
    user_errors: int
    requests: int
    missing_workers: int = 0
    lock_violations: int = 0
    lost_messages: int = 0


@dataclass(frozen=True)
class SloResult:
    name: str
    limit: float
    value: float | None
    ok: bool
    lower_bound: bool = False

    @property
    def message(self) -> str:
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


# SLO name -> the figure it limits
_CHECKS: tuple[tuple[str, str], ...] = (
    ("max_recovery_p95_s", "recovery_p95_s"),
    ("max_error_rate_in_windows", "error_rate_in_windows"),
    ("max_error_rate_outside_windows", "error_rate_outside_windows"),
    ("max_lost_writes", "lost_writes"),
    ("max_duplicated_writes", "duplicated_writes"),
    ("max_failed_faults", "failed_faults"),
    ("max_user_errors", "user_errors"),
    ("max_lock_violations", "lock_violations"),
    ("max_lost_messages", "lost_messages"),
    ("max_missing_workers", "missing_workers"),
    ("min_requests", "requests"),
)


def evaluate(slo: Slo, figures: Figures) -> list[SloResult]:
    """One result per SLO the profile sets (a null limit is skipped)."""
    results = []
    for slo_name, figure in _CHECKS:
        limit = getattr(slo, slo_name)
        if limit is None:
            continue
        value = getattr(figures, figure)
        lower_bound = slo_name.startswith("min_")
        ok = value is not None and (value >= limit if lower_bound else value <= limit)
        results.append(SloResult(slo_name, limit, value, ok, lower_bound))
    return results


def exit_code(results: list[SloResult]) -> int:
    return EXIT_PASS if all(r.ok for r in results) else EXIT_SLO_BREACHED
