"""One test's clock origin: the two clocks a test reads, tied together once.

Durations and windows are timed on the monotonic clock; what leaves the node (the timeline's seconds,
a window's start sent to the workers, the report's ``started_at``) is on the wall clock. A test takes
both at one instant, at its start, and converts between them through that pair only: two offsets taken
at two moments drift apart (an NTP step, a slow hub between the two reads).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ClockOrigin:
    """A monotonic instant and the wall-clock time at it (epoch seconds)."""

    monotonic: float
    wall: float

    @classmethod
    def now(cls, clock: Callable[[], float] = time.monotonic) -> ClockOrigin:
        return cls(clock(), time.time())

    @property
    def offset(self) -> float:
        """Wall clock minus the monotonic clock."""
        return self.wall - self.monotonic

    def to_wall(self, monotonic: float) -> float:
        return monotonic + self.offset

    def to_monotonic(self, wall: float) -> float:
        return wall - self.offset
