"""Per-second time series of one node's requests, per request type: what the timeline draws.

Each second (wall-clock epoch seconds, so that the nodes of a distributed run line up) holds, per
request type: requests, failures, degraded requests, hidden retries, reconnections, and a coarse
latency histogram (4 buckets per power of two, about 19% wide) from which p50 and p99 come. Counts
and histograms add, so the master merges its workers' series exactly, like their windows.

Memory is a fixed-size record per second and type, whatever the request rate (its size per hour:
docs/benchmarks.md); per request the work is O(1): the clock read the tracker already made, a few
increments, one bucket index.
"""

from __future__ import annotations

import math
from array import array
from math import log2
from typing import Any

SUB = 4  # histogram buckets per power of two
MIN_EXPONENT = -3  # 2^-3 µs: the first bucket holds everything below
SLOTS = 34 * SUB  # up to 2^31 µs (~36 min): the last bucket holds everything above
FIELDS = ("requests", "failures", "degraded", "hidden_retries", "reconnections")


def slot(ms: float) -> int:
    """The histogram slot of a response time: a quarter of a power of two of microseconds each."""
    if ms <= 0.0:
        return 0
    index = int((log2(ms * 1000.0) - MIN_EXPONENT) * SUB)
    return 0 if index < 0 else (SLOTS - 1 if index >= SLOTS else index)


def slot_ms(index: int) -> float:
    """The middle of a slot (geometric), in ms."""
    return 2.0 ** ((index + 0.5) / SUB + MIN_EXPONENT) / 1000.0


class Second:
    """One second of one request type."""

    __slots__ = ("_quantiles", "counts", "latency")

    def __init__(self) -> None:
        self.counts = [0, 0, 0, 0, 0]  # FIELDS
        self.latency = array("I", bytes(4 * SLOTS))
        self._quantiles: tuple[int, float | None, float | None] | None = None  # (requests then, p50, p99)

    def quantiles(self) -> tuple[float | None, float | None]:
        """p50 and p99, computed again only when the second has more requests (a live view asks often)."""
        cached = self._quantiles
        if cached is None or cached[0] != self.counts[0]:
            cached = self._quantiles = (self.counts[0], self.percentile(0.5), self.percentile(0.99))
        return cached[1], cached[2]

    def merge(self, other: Second) -> None:
        for i, n in enumerate(other.counts):
            self.counts[i] += n
        latency = self.latency
        for i, n in enumerate(other.latency):
            if n:
                latency[i] += n

    def percentile(self, q: float) -> float | None:
        total = sum(self.latency)
        if not total:
            return None
        rank, seen = max(1, math.ceil(q * total)), 0
        for i, n in enumerate(self.latency):
            seen += n
            if seen >= rank:
                return slot_ms(i)
        return None  # not reached

    def to_list(self) -> list[Any]:
        return [*self.counts, {str(i): n for i, n in enumerate(self.latency) if n}]

    @classmethod
    def from_list(cls, data: list[Any]) -> Second:
        second = cls()
        second.counts = [int(n) for n in data[: len(FIELDS)]]
        for i, n in data[len(FIELDS)].items():
            second.latency[int(i)] = int(n)
        return second


class TypeSeries:
    """One request type's seconds on one node. ``offset``: wall-clock minus the tracker's monotonic clock."""

    __slots__ = ("_current", "_second", "offset", "seconds")

    def __init__(self, offset: float) -> None:
        self.offset = offset
        self.seconds: dict[int, Second] = {}
        self._second = -1
        self._current = Second()

    def add(self, now: float, failed: bool, degraded: bool, ms: float, retries: int, reconnections: int) -> None:
        """One request completed at ``now`` (monotonic). O(1): it is on the hot path."""
        second = int(now + self.offset)
        current = self._current
        if second != self._second:
            current = self._current = self.seconds.get(second) or self.seconds.setdefault(second, Second())
            self._second = second
        counts = current.counts
        counts[0] += 1
        if failed:
            counts[1] += 1
        if degraded:
            counts[2] += 1
        if retries:
            counts[3] += retries
        if reconnections:
            counts[4] += reconnections
        current.latency[slot(ms)] += 1


def merge_series(into: dict[int, Second], other: dict[int, Second]) -> None:
    for second, data in other.items():
        mine = into.get(second)
        if mine is None:
            mine = into[second] = Second()
        mine.merge(data)


def series_to_dict(series: dict[str, dict[int, Second]], users: dict[int, int]) -> dict[str, Any]:
    return {
        "types": {t: {str(s): second.to_list() for s, second in seconds.items()} for t, seconds in series.items()},
        "users": {str(s): n for s, n in users.items()},
    }


def series_from_dict(data: dict[str, Any] | None) -> tuple[dict[str, dict[int, Second]], dict[int, int]]:
    if not data:
        return {}, {}
    series = {t: {int(s): Second.from_list(v) for s, v in seconds.items()} for t, seconds in data["types"].items()}
    return series, {int(s): int(n) for s, n in data["users"].items()}


def timeline(
    series: dict[str, dict[int, Second]], users: dict[int, int], outage_ms: dict[int, float] | None = None
) -> dict[str, Any]:
    """The report's ``timeline``: one entry a second from the first to the last, per request type.

    ``outage_ms``: the witness's longest outage overlapping each second (None: no witness).
    """
    seconds = sorted({s for per_type in series.values() for s in per_type} | set(users))
    if not seconds:
        return {"start": None, "t": [], "users": [], "types": {}, "witness_outage_ms": None}
    first, last = seconds[0], seconds[-1]
    span = range(first, last + 1)
    types: dict[str, Any] = {}
    for request_type, per_second in sorted(series.items()):
        columns: dict[str, list[Any]] = {name: [] for name in (*FIELDS, "p50_ms", "p99_ms")}
        for s in span:
            second = per_second.get(s)
            for i, name in enumerate(FIELDS):
                columns[name].append(second.counts[i] if second is not None else 0)
            p50, p99 = second.quantiles() if second is not None else (None, None)
            columns["p50_ms"].append(None if p50 is None else round(p50, 3))
            columns["p99_ms"].append(None if p99 is None else round(p99, 3))
        types[request_type] = columns
    return {
        "start": first,
        "t": [s - first for s in span],
        "users": [users.get(s) for s in span],
        "types": types,
        "witness_outage_ms": None if outage_ms is None else [round(outage_ms.get(s, 0.0), 1) for s in span],
    }
