"""The local runner: one process schedules the chaos, makes the traffic, measures it and reports."""

from __future__ import annotations

import time
from typing import Any, ClassVar

from chaos.events import fire_recovered
from chaos.locust_test import MeasuredTest
from chaos.roles.live import Measured
from chaos.roles.measuring import MeasuresRequests
from chaos.roles.scheduling import PROGRESS_WAIT_S, SchedulingRole
from recovery.results import NodeResult
from recovery.tracker import WindowSummary


class LocalRole(MeasuresRequests, SchedulingRole[MeasuredTest]):
    """Schedules faults (``traffic_nodes`` ones on its own clients), tracks its own requests,
    checks integrity, cleans up and reports."""

    mode: ClassVar[str] = "local"

    def new_test(self, number: int) -> MeasuredTest:
        runner = self.environment.runner
        return MeasuredTest(
            number,
            self.setup.profile.recovery,
            on_closed=lambda w: fire_recovered(self.events, w),
            user_classes=self.environment.user_classes,
            user_count=(lambda: runner.user_count) if runner is not None else None,
        )

    def on_fault_started(self, fault_id: int, name: str, time: float, monotonic: float, **_: Any) -> None:
        test = self.test
        if test is not None:
            test.open_window(fault_id, name, monotonic)

    def fault_windows(self, test: MeasuredTest, fault_id: int) -> list[WindowSummary]:
        """This fault's windows once closed: at its max_window_s (closed here, not at the timer's next tick),
        or when the next fault opens its own, which follows its settling by a moment (PROGRESS_WAIT_S at most):
        woken as each window closes."""
        deadline = time.monotonic() + PROGRESS_WAIT_S
        while True:
            test.tracker.expire()
            trackers = list(test.tracker.by_type.values())
            still_open = any(t.current is not None and t.current.fault_id == fault_id for t in trackers)
            left = deadline - time.monotonic()
            if not still_open or left <= 0:
                return [w for t in trackers for w in t.closed if w.fault_id == fault_id]
            test.window_closed.wait(left)

    def live_measured(self, test: MeasuredTest) -> Measured:
        """Closed windows, and the open one as it stands (marked truncated: its end is to come)."""
        result = NodeResult.from_trackers(test.tracker, {}, None, 0)
        now = test.tracker.clock()
        for tracker in test.tracker.by_type.values():
            window = tracker.current
            if window is not None and now < window.closes_at:
                result.windows.append(window.close(now, truncated=True))  # a snapshot: the window stays open
        return Measured(result)

    def conclude(self, test: MeasuredTest) -> None:
        integrity, integrity_error = self.setup.check_integrity()
        result = test.result(integrity, integrity_error, self.user_errors())
        self.setup.cleanup_keys()
        self.report_run(test, Measured(result))
