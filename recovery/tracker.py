"""The recovery tracker: per fault window, how many requests failed and when clients were healthy again.

Definitions (DESIGN.md, "Recovery, defined"):

- A window opens when the fault's injection call begins (its ``start``: a request that completes while
  the call runs belongs to the fault); it closes at the next fault's start or after ``max_window_s``,
  whichever is first.
- A request is *degraded* if it raised, needed a hidden retry, or took longer than the
  degraded-latency threshold (by default derived from the pre-fault baseline p99); a blocking
  command (BLPOP, XREADGROUP BLOCK, ...) waits by design, so only its errors and retries count.
- ``recovery_s`` = completion time of the first healthy request after the last degraded request
  of the window, minus its start; 0 when nothing degraded; None when the window closes still degraded.
  The same per user gives the per-user distribution.

Requests are attributed by completion time, on the node that made them. Work per request is
O(1), and memory grows with users and faults, never with requests.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from config.schema import Recovery
from recovery.clock import ClockOrigin
from recovery.histogram import LatencyHistogram
from recovery.series import Second, TypeSeries

logger = logging.getLogger("redis_resilience")


def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of ``values`` (None if empty)."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


class _UserState:
    """One user's recovery inside a window; only users that degraded get one."""

    __slots__ = ("last_degraded", "recovered_at")

    def __init__(self, now: float) -> None:
        self.last_degraded = now
        self.recovered_at: float | None = None


@dataclass
class Counts:
    """Plain request counts (outside windows, or the whole run)."""

    requests: int = 0
    failures: int = 0
    hidden_retries: int = 0
    reconnections: int = 0

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


@dataclass
class WindowSummary:
    """A closed window, as the report shows it."""

    fault_id: int
    name: str
    requests: int
    failures: int
    degraded: int
    hidden_retries: int
    reconnections: int
    first_error_s: float | None
    recovery_s: float | None
    window_s: float
    users_affected: int
    user_recovery_s: list[float]
    users_not_recovered: int
    p99_ms: float | None
    threshold_ms: float
    latency: LatencyHistogram = field(repr=False)
    truncated: bool = False  # cut short by the end of the test, before max_window_s
    request_type: str = "REDIS"  # whose requests: REDIS, HTTP (the service's); "" when types are merged

    @property
    def unresolved(self) -> bool:
        """Cut short while still degraded: whether it would have recovered is unknown."""
        return self.truncated and self.recovery_s is None

    @property
    def recovered(self) -> bool:
        return self.recovery_s is not None

    @property
    def error_rate(self) -> float:
        return self.failures / self.requests if self.requests else 0.0


class Window:
    """An open fault window."""

    def __init__(
        self, fault_id: int, name: str, start: float, max_window_s: float, threshold_ms: float, request_type: str
    ) -> None:
        self.request_type = request_type
        self.fault_id = fault_id
        self.name = name
        self.start = start
        self.closes_at = start + max_window_s
        self.threshold_ms = threshold_ms
        self.requests = 0
        self.failures = 0
        self.degraded = 0
        self.hidden_retries = 0
        self.reconnections = 0
        self.first_error_at: float | None = None
        self.last_degraded: float | None = None
        self.recovered_at: float | None = None
        self.users: dict[Any, _UserState] = {}
        self.latency = LatencyHistogram()

    def observe(
        self, now: float, user: Any, failed: bool, response_ms: float, retries: int, reconnections: int, slow: bool
    ) -> None:
        self.requests += 1
        self.latency.add(response_ms)
        self.hidden_retries += retries
        self.reconnections += reconnections
        if failed:
            self.failures += 1
            if self.first_error_at is None:
                self.first_error_at = now
        if failed or retries or slow:
            self.degraded += 1
            self.last_degraded = now
            self.recovered_at = None
            state = self.users.get(user)
            if state is None:
                self.users[user] = _UserState(now)
            else:
                state.last_degraded = now
                state.recovered_at = None
            return
        if self.last_degraded is not None and self.recovered_at is None:
            self.recovered_at = now
        state = self.users.get(user)
        if state is not None and state.recovered_at is None:
            state.recovered_at = now

    def close(self, at: float, truncated: bool = False) -> WindowSummary:
        if self.last_degraded is None:
            recovery: float | None = 0.0
        elif self.recovered_at is None:
            recovery = None
        else:
            recovery = self.recovered_at - self.start
        per_user = [s.recovered_at - self.start for s in self.users.values() if s.recovered_at is not None]
        return WindowSummary(
            fault_id=self.fault_id,
            name=self.name,
            requests=self.requests,
            failures=self.failures,
            degraded=self.degraded,
            hidden_retries=self.hidden_retries,
            reconnections=self.reconnections,
            first_error_s=None if self.first_error_at is None else self.first_error_at - self.start,
            recovery_s=recovery,
            window_s=at - self.start,
            users_affected=len(self.users),
            user_recovery_s=per_user,
            users_not_recovered=len(self.users) - len(per_user),
            p99_ms=self.latency.percentile(0.99),
            threshold_ms=self.threshold_ms,
            latency=self.latency,
            truncated=truncated,
            request_type=self.request_type,
        )


class RecoveryTracker:
    """Listens to ``request`` and to fault windows; keeps per-window figures of one request type
    (its own baseline and degraded threshold: an HTTP request through a service is slower than a Redis
    command). :class:`RequestTrackers` keeps one per type.

    :param recovery: the profile's recovery section
    :param on_closed: called with each closed window (the roles fire ``fault_recovered`` from it)
    :param clock: monotonic seconds; the same clock must give the fault's start
    :param request_type: the requests it counts (others are ignored)
    """

    def __init__(
        self,
        recovery: Recovery,
        on_closed: Callable[[WindowSummary], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        request_type: str = "REDIS",
        series: TypeSeries | None = None,
    ) -> None:
        self.request_type = request_type
        self.series = series  # its per-second figures (the timeline), if kept
        self.recovery = recovery
        self.on_closed = on_closed
        self.clock = clock
        self.baseline = LatencyHistogram()
        self.outside = Counts()
        self.current: Window | None = None
        self.closed: list[WindowSummary] = []
        self.threshold_ms: float | None = (
            None if recovery.degraded_latency_ms == "auto" else recovery.degraded_latency_ms
        )

    def degraded_threshold_ms(self) -> float:
        """The fixed threshold, or (auto) max(factor x baseline p99, floor), frozen at the first fault."""
        if self.threshold_ms is not None:
            return self.threshold_ms
        floor = self.recovery.degraded_latency_floor_ms
        p99 = self.baseline.percentile(0.99)
        if p99 is None or self.baseline.count < self.recovery.min_baseline_requests:
            return floor
        return max(floor, self.recovery.baseline_p99_factor * p99)

    def open_window(self, fault_id: int, name: str, start: float) -> None:
        """A fault's injection began at ``start``: close the open window there and open a new one."""
        if self.current is not None:
            self._close(self.current, start)
        if self.threshold_ms is None:
            self.threshold_ms = self.degraded_threshold_ms()
        self.current = Window(fault_id, name, start, self.recovery.max_window_s, self.threshold_ms, self.request_type)

    def expire(self, now: float | None = None) -> None:
        """Close the open window if its ``max_window_s`` has passed (called on a timer)."""
        window = self.current
        if window is not None and (self.clock() if now is None else now) >= window.closes_at:
            self._close(window, window.closes_at)

    def close_all(self, now: float | None = None) -> None:
        """The test ends: close the open window (marked truncated if before its max_window_s)."""
        window = self.current
        if window is not None:
            at = self.clock() if now is None else now
            self._close(window, min(at, window.closes_at), truncated=at < window.closes_at)

    def _close(self, window: Window, at: float, truncated: bool = False) -> None:
        self.current = None
        summary = window.close(at, truncated)
        self.closed.append(summary)
        if self.on_closed is not None:
            self.on_closed(summary)

    def on_request(
        self,
        request_type: str,
        response_time: float,
        exception: BaseException | None = None,
        context: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        """Locust ``request`` listener. O(1)."""
        if request_type != self.request_type:
            return
        now = self.clock()
        context = context or {}
        retries = context.get("retries", 0)
        reconnections = context.get("reconnections", 0)
        window = self.current
        if window is not None and now >= window.closes_at:
            self._close(window, window.closes_at)
            window = None
        failed = exception is not None
        blocking = context.get("blocking", False)  # waits by design: only its errors and retries count
        # slow: past the window's threshold (frozen at its fault), else the threshold in force (the floor
        # until the first fault fixes it); the one rule for a window's figures and the timeline's
        threshold = window.threshold_ms if window is not None else self.threshold_ms
        if threshold is None:
            threshold = self.recovery.degraded_latency_floor_ms
        slow = response_time > threshold and not blocking
        if self.series is not None:
            self.series.add(now, failed, failed or bool(retries) or slow, response_time, retries, reconnections)
        if window is not None:
            window.observe(now, context.get("user"), failed, response_time, retries, reconnections, slow)
            return
        outside = self.outside
        outside.requests += 1
        outside.hidden_retries += retries
        outside.reconnections += reconnections
        if exception is not None:
            outside.failures += 1
        if not self.closed and not blocking:  # before the first fault: the baseline
            self.baseline.add(response_time)


class RequestTrackers:
    """One :class:`RecoveryTracker` per request type the run makes, of the types it measures, created at the
    type's first request. Fault windows open and close on all of them at once, so every per-fault figure is
    there per type. A request of another type is not measured, and the first one of each is logged. O(1) per
    request.

    :param request_types: the types to measure: those the running user classes declare (``REDIS`` for the
        pack's Redis users, ``HTTP`` for its users of a service, a user's own; scenarios/request_types.py)
    """

    def __init__(
        self,
        recovery: Recovery,
        request_types: Collection[str],
        on_closed: Callable[[WindowSummary], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        origin: ClockOrigin | None = None,
    ) -> None:
        self.recovery, self.on_closed, self.clock = recovery, on_closed, clock
        self.request_types = frozenset(request_types)
        self.ignored: set[str] = set()  # the types seen and not measured (each logged once)
        self.by_type: dict[str, RecoveryTracker] = {}
        self._open: tuple[int, str, float] | None = None  # the fault whose window is open: a new type joins it
        # The test's clock origin (else one taken now): the series' seconds are epoch seconds through it.
        self.offset = (origin or ClockOrigin.now(clock)).offset
        self.users: dict[int, int] = {}  # users running, sampled each second (sample_users)

    def series(self) -> dict[str, dict[int, Second]]:
        """Each request type's seconds (the timeline)."""
        return {t: tracker.series.seconds for t, tracker in self.by_type.items() if tracker.series is not None}

    def sample_users(self, count: int) -> None:
        self.users[int(self.clock() + self.offset)] = count

    def _tracker(self, request_type: str) -> RecoveryTracker | None:
        if request_type not in self.request_types:
            if request_type not in self.ignored:
                self.ignored.add(request_type)
                logger.warning(
                    "redis-resilience: requests of type %r are not measured: no running user class declares it "
                    "in request_types (docs/extending.md)",
                    request_type,
                )
            return None
        series = TypeSeries(self.offset)
        tracker = self.by_type[request_type] = RecoveryTracker(
            self.recovery, self.on_closed, self.clock, request_type, series
        )
        if self._open is not None and self.clock() < self._open[2] + self.recovery.max_window_s:
            tracker.open_window(*self._open)
        return tracker

    def on_request(
        self,
        request_type: str,
        response_time: float,
        exception: BaseException | None = None,
        context: dict[str, Any] | None = None,
        **_: Any,
    ) -> None:
        """Locust ``request`` listener (the roles call it positionally: chaos/roles/measuring.py). O(1)."""
        tracker = self.by_type.get(request_type) or self._tracker(request_type)
        if tracker is not None:
            tracker.on_request(request_type, response_time, exception, context)

    def open_window(self, fault_id: int, name: str, start: float) -> None:
        self._open = (fault_id, name, start)
        for tracker in list(self.by_type.values()):  # a closing window's listener may yield: a type may join
            tracker.open_window(fault_id, name, start)

    def expire(self, now: float | None = None) -> None:
        for tracker in list(self.by_type.values()):
            tracker.expire(now)

    def close_all(self, now: float | None = None) -> None:
        self._open = None
        for tracker in list(self.by_type.values()):
            tracker.close_all(now)
