"""The statistics the comparison of runs needs, small enough to read (no SciPy for three tests).

- :func:`rank_test_greater`: is the second sample stochastically greater than the first? The
  Mann-Whitney U test, exact by enumeration while the number of splits is small (at most
  ``EXACT_LIMIT``), else by the normal approximation with a tie correction. One-sided p-value.
- :func:`proportion_test_greater`: is the second proportion greater? The pooled two-proportion z-test,
  one-sided p-value (1.0 when there is nothing to compare).
"""

from __future__ import annotations

import itertools
import math

EXACT_LIMIT = 20_000  # splits enumerated exactly at most (C(16, 8) = 12,870)


def _u_greater(first: list[float], second: list[float]) -> float:
    """U of ``second`` over ``first``: pairs where the second's value is larger, ties counting a half."""
    return sum(1.0 if b > a else 0.5 if b == a else 0.0 for a in first for b in second)


def rank_test_greater(first: list[float], second: list[float]) -> float:
    """One-sided p-value that ``second`` is larger than ``first`` (1.0 when either is empty)."""
    n1, n2 = len(first), len(second)
    if not n1 or not n2:
        return 1.0
    observed = _u_greater(first, second)
    pooled = first + second
    if math.comb(n1 + n2, n2) <= EXACT_LIMIT:
        at_least = total = 0
        for picked in itertools.combinations(range(n1 + n2), n2):
            chosen = set(picked)
            b = [pooled[i] for i in picked]
            a = [pooled[i] for i in range(n1 + n2) if i not in chosen]
            total += 1
            if _u_greater(a, b) >= observed - 1e-9:
                at_least += 1
        return at_least / total
    mean = n1 * n2 / 2
    counts: dict[float, int] = {}
    for value in pooled:
        counts[value] = counts.get(value, 0) + 1
    n = n1 + n2
    ties = sum(t**3 - t for t in counts.values())
    variance = n1 * n2 / 12 * ((n + 1) - ties / (n * (n - 1)))
    if variance <= 0:
        return 1.0
    z = (observed - mean - 0.5) / math.sqrt(variance)  # continuity correction
    return 0.5 * math.erfc(z / math.sqrt(2))


def proportion_test_greater(hits1: int, n1: int, hits2: int, n2: int) -> float:
    """One-sided p-value that the second proportion (``hits2/n2``) is larger than the first."""
    if not n1 or not n2:
        return 1.0
    pooled = (hits1 + hits2) / (n1 + n2)
    if pooled in (0.0, 1.0):
        return 1.0
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    z = (hits2 / n2 - hits1 / n1) / se
    return 0.5 * math.erfc(z / math.sqrt(2))
