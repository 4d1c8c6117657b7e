"""A latency histogram with bounded memory that merges exactly (counts add)."""

from __future__ import annotations

import math

_SUB = 32  # buckets per power of two: about 3% relative precision


def _bucket(ms: float) -> int:
    mantissa, exponent = math.frexp(ms * 1000.0)  # microseconds; mantissa in [0.5, 1)
    return exponent * _SUB + int(mantissa * _SUB)


def _value_ms(bucket: int) -> float:
    exponent, sub = divmod(bucket, _SUB)
    if sub == 0 and exponent == 0:
        return 0.0
    return math.ldexp((sub + 0.5) / _SUB, exponent) / 1000.0


class LatencyHistogram:
    """Response times in log buckets: memory is bounded by the range of times, not their count."""

    __slots__ = ("buckets", "count")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.count = 0

    def add(self, ms: float) -> None:
        key = _bucket(ms)
        buckets = self.buckets
        buckets[key] = buckets.get(key, 0) + 1
        self.count += 1

    def merge(self, other: LatencyHistogram) -> None:
        for key, n in other.buckets.items():
            self.buckets[key] = self.buckets.get(key, 0) + n
        self.count += other.count

    def percentile(self, q: float) -> float | None:
        """The smallest bucket value with at least ``q`` of the samples at or below it (None if empty)."""
        if self.count == 0:
            return None
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for key in sorted(self.buckets):
            seen += self.buckets[key]
            if seen >= rank:
                return _value_ms(key)
        return _value_ms(max(self.buckets))

    def to_dict(self) -> dict[str, int]:
        return {str(k): v for k, v in self.buckets.items()}

    @classmethod
    def from_dict(cls, data: dict[str, int]) -> LatencyHistogram:
        hist = cls()
        for key, n in data.items():
            hist.buckets[int(key)] = n
            hist.count += n
        return hist
