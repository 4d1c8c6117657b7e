"""The recovery tracker on synthetic event sequences: recovery exactly as DESIGN.md defines it."""

from __future__ import annotations

import pytest

from config.schema import Recovery
from recovery.tracker import RecoveryTracker, WindowSummary


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def make(clock: Clock, **recovery: object) -> tuple[RecoveryTracker, list[WindowSummary]]:
    closed: list[WindowSummary] = []
    settings = Recovery.model_validate({"max_window_s": 10, "degraded_latency_ms": 50, **recovery})
    return RecoveryTracker(settings, on_closed=closed.append, clock=clock), closed


def req(
    tracker: RecoveryTracker,
    clock: Clock,
    at: float,
    *,
    ms: float = 1.0,
    fail: bool = False,
    user: int = 0,
    retries: int = 0,
    reconnections: int = 0,
) -> None:
    clock.now = at
    tracker.on_request(
        request_type="REDIS",
        name="GET cache",
        response_time=ms,
        exception=RuntimeError("boom") if fail else None,
        context={"user": user, "retries": retries, "reconnections": reconnections},
    )


def test_recovery_is_first_healthy_after_last_degraded(clock: Clock) -> None:
    tracker, closed = make(clock)
    tracker.open_window(1, "client_kill", start=100.0)
    req(tracker, clock, 100.1, fail=True)
    req(tracker, clock, 100.2)  # healthy, but a later request degrades again
    req(tracker, clock, 100.5, fail=True)
    req(tracker, clock, 100.7, ms=80)  # slower than the 50 ms threshold: degraded
    req(tracker, clock, 100.9)  # first healthy after the last degraded one
    req(tracker, clock, 101.5)
    tracker.close_all(now=102.0)
    (win,) = closed
    assert win.recovery_s == pytest.approx(0.9)
    assert win.recovered
    assert (win.requests, win.failures, win.degraded) == (6, 2, 3)
    assert win.first_error_s == pytest.approx(0.1)
    assert win.window_s == pytest.approx(2.0)


def test_nothing_degraded_recovers_in_zero(clock: Clock) -> None:
    tracker, closed = make(clock)
    tracker.open_window(1, "pool_reset", start=100.0)
    req(tracker, clock, 100.3, reconnections=1)  # a silent reconnection is not degradation
    tracker.close_all(now=101.0)
    assert closed[0].recovery_s == 0.0
    assert closed[0].reconnections == 1
    assert closed[0].users_affected == 0


def test_hidden_retry_is_degraded(clock: Clock) -> None:
    tracker, closed = make(clock)
    tracker.open_window(1, "client_kill", start=100.0)
    req(tracker, clock, 100.2, retries=2)
    req(tracker, clock, 100.4)
    tracker.close_all(now=101.0)
    assert closed[0].failures == 0
    assert closed[0].hidden_retries == 2
    assert closed[0].degraded == 1
    assert closed[0].recovery_s == pytest.approx(0.4)


def test_window_closing_still_degraded_is_not_recovered(clock: Clock) -> None:
    tracker, closed = make(clock)
    tracker.open_window(1, "client_kill", start=100.0)
    req(tracker, clock, 100.2)
    req(tracker, clock, 100.5, fail=True)
    tracker.close_all(now=101.0)
    assert closed[0].recovery_s is None
    assert not closed[0].recovered


def test_next_fault_cuts_the_window(clock: Clock) -> None:
    tracker, closed = make(clock)
    tracker.open_window(1, "client_kill", start=100.0)
    req(tracker, clock, 100.5, fail=True)
    tracker.open_window(2, "pool_reset", start=101.0)  # window 1 closes here, still degraded
    req(tracker, clock, 101.2)  # belongs to window 2
    tracker.close_all(now=103.0)
    first, second = closed
    assert (first.fault_id, first.recovery_s, first.requests) == (1, None, 1)
    assert first.window_s == pytest.approx(1.0)
    assert (second.fault_id, second.recovery_s, second.requests) == (2, 0.0, 1)


def test_max_window_closes_and_later_requests_are_outside(clock: Clock) -> None:
    tracker, closed = make(clock, max_window_s=2)
    tracker.open_window(1, "client_kill", start=100.0)
    req(tracker, clock, 100.5, fail=True)
    req(tracker, clock, 101.0)
    req(tracker, clock, 102.5, fail=True)  # after the start + 2 s: outside any window
    assert len(closed) == 1
    assert closed[0].window_s == pytest.approx(2.0)
    assert closed[0].recovery_s == pytest.approx(1.0)
    assert (tracker.outside.requests, tracker.outside.failures) == (1, 1)


def test_expire_closes_a_window_without_requests(clock: Clock) -> None:
    tracker, closed = make(clock, max_window_s=2)
    tracker.open_window(1, "client_kill", start=100.0)
    tracker.expire(now=101.9)
    assert closed == []
    tracker.expire(now=102.0)
    assert len(closed) == 1 and tracker.current is None


def test_per_user_recovery_distribution(clock: Clock) -> None:
    tracker, closed = make(clock)
    tracker.open_window(1, "client_kill", start=100.0)
    req(tracker, clock, 100.1, fail=True, user=1)
    req(tracker, clock, 100.2, fail=True, user=2)
    req(tracker, clock, 100.3, user=1)  # user 1 recovered at 0.3
    req(tracker, clock, 100.4, user=3)  # never degraded: not affected
    req(tracker, clock, 100.6, fail=True, user=4)  # never recovers
    req(tracker, clock, 100.8, user=2)  # user 2 recovered at 0.8
    tracker.close_all(now=101.0)
    win = closed[0]
    assert win.users_affected == 3
    assert sorted(win.user_recovery_s) == pytest.approx([0.3, 0.8])
    assert win.users_not_recovered == 1
    # Window-level: the first healthy request (user 2, 0.8) after the last degraded one (user 4, 0.6),
    # even though user 4 itself never recovered: that shows in users_not_recovered.
    assert win.recovery_s == pytest.approx(0.8)


def test_baseline_sets_auto_threshold_at_first_fault(clock: Clock) -> None:
    tracker, closed = make(
        clock, degraded_latency_ms="auto", baseline_p99_factor=5, degraded_latency_floor_ms=5, min_baseline_requests=10
    )
    for i in range(100):
        req(tracker, clock, 100 + i * 0.01, ms=2.0)
    tracker.open_window(1, "client_kill", start=102.0)
    assert tracker.threshold_ms == pytest.approx(10.0, rel=0.05)  # 5 x p99 (2 ms)
    req(tracker, clock, 102.1, ms=12)  # degraded by latency only
    req(tracker, clock, 102.2, ms=8)
    tracker.close_all(now=103)
    assert closed[0].degraded == 1
    assert closed[0].recovery_s == pytest.approx(0.2)
    assert tracker.baseline.count == 100


def test_auto_threshold_uses_floor_without_enough_baseline(clock: Clock) -> None:
    tracker, _ = make(clock, degraded_latency_ms="auto", degraded_latency_floor_ms=50, min_baseline_requests=100)
    req(tracker, clock, 100.0, ms=1)
    tracker.open_window(1, "client_kill", start=101.0)
    assert tracker.threshold_ms == 50


def test_ignores_other_request_types(clock: Clock) -> None:
    tracker, _ = make(clock)
    tracker.on_request(request_type="GET", response_time=5, exception=None, context={})
    assert tracker.outside.requests == 0


def test_memory_does_not_grow_with_requests(clock: Clock) -> None:
    """Every container the window and the tracker hold is as large after 20,000 requests as after 2,000
    (the same users and latencies again; one user degrades): a per-request list would be 10 times larger."""
    tracker, _ = make(clock)
    tracker.open_window(1, "client_kill", start=100.0)

    def sizes() -> dict[str, int]:
        window = tracker.current
        assert window is not None
        held: dict[str, object] = {f"window.{k}": v for k, v in vars(window).items()}
        held.update({f"tracker.{k}": v for k, v in vars(tracker).items()})
        held["window.latency.buckets"] = window.latency.buckets
        return {k: len(v) for k, v in held.items() if isinstance(v, list | dict | set | tuple)}

    for i in range(20_000):
        req(tracker, clock, 100 + i * 1e-4, ms=0.2 + (i % 7) * 0.1, user=i % 10, fail=(i % 100 == 0))
        if i == 1_999:
            early = sizes()
    assert sizes() == early and early["window.users"] == 1 and early["window.latency.buckets"] > 1


def test_window_cut_short_by_the_test_end_is_unresolved(clock: Clock) -> None:
    tracker, closed = make(clock, max_window_s=5)
    tracker.open_window(1, "client_kill", start=100.0)
    req(tracker, clock, 100.5, fail=True)
    tracker.close_all(now=101.0)
    assert closed[0].truncated and closed[0].unresolved
    tracker.open_window(2, "client_kill", start=102.0)
    req(tracker, clock, 102.5, fail=True)
    tracker.close_all(now=108.0)  # its max window had passed: a real close, not recovered
    assert not closed[1].truncated and not closed[1].unresolved and closed[1].recovery_s is None


def test_blocking_commands_are_not_degraded_by_their_wait(clock: Clock) -> None:
    tracker, closed = make(clock)
    tracker.open_window(1, "client_kill", start=100.0)
    clock.now = 100.5
    tracker.on_request(
        request_type="REDIS",
        response_time=500,
        exception=None,
        context={"user": 1, "blocking": True, "retries": 0, "reconnections": 0},
    )
    tracker.close_all(now=101)
    assert closed[0].degraded == 0 and closed[0].recovery_s == 0.0
