"""The local runner: one process schedules the chaos, makes the traffic, measures it and reports."""

from __future__ import annotations

import time
from typing import Any, ClassVar

from chaos.events import fire_recovered
from chaos.roles.live import Measured
from chaos.roles.measuring import MeasuresRequests
from chaos.roles.scheduling import PROGRESS_WAIT_S, SchedulingRole
from chaos.testrun import MeasuredRun
from recovery.results import NodeResult
from recovery.tracker import WindowSummary


class LocalRole(MeasuresRequests, SchedulingRole[MeasuredRun]):
    """Schedules faults (``traffic_nodes`` ones on its own clients), tracks its own requests,
    checks integrity, cleans up and reports."""

    mode: ClassVar[str] = "local"

    def new_run(self, number: int) -> MeasuredRun:
        runner = self.environment.runner
        return MeasuredRun(
            number,
            self.session.profile.recovery,
            on_closed=lambda w: fire_recovered(self.events, w),
            user_classes=self.environment.user_classes,
            user_count=(lambda: runner.user_count) if runner is not None else None,
        )

    def on_fault_started(self, fault_id: int, name: str, time: float, monotonic: float, **_: Any) -> None:
        run = self.run
        if run is not None:
            run.open_window(fault_id, name, monotonic)

    def fault_windows(self, run: MeasuredRun, fault_id: int) -> list[WindowSummary]:
        """This fault's windows once closed: at its max_window_s (closed here, not at the timer's next tick),
        or when the next fault opens its own, which follows its settling by a moment (PROGRESS_WAIT_S at most):
        woken as each window closes."""
        deadline = time.monotonic() + PROGRESS_WAIT_S
        while True:
            run.tracker.expire()
            trackers = list(run.tracker.by_type.values())
            still_open = any(t.current is not None and t.current.fault_id == fault_id for t in trackers)
            left = deadline - time.monotonic()
            if not still_open or left <= 0:
                return [w for t in trackers for w in t.closed if w.fault_id == fault_id]
            run.window_closed.wait(left)

    def live_measured(self, run: MeasuredRun) -> Measured:
        """Closed windows, and the open one as it stands (marked truncated: its end is to come)."""
        result = NodeResult.from_trackers(run.tracker, {}, None, 0)
        now = run.tracker.clock()
        for tracker in run.tracker.by_type.values():
            window = tracker.current
            if window is not None and now < window.closes_at:
                result.windows.append(window.close(now, truncated=True))  # a snapshot: the window stays open
        return Measured(result)

    def conclude(self, run: MeasuredRun) -> None:
        integrity, integrity_error = self.session.check_integrity()
        result = run.result(integrity, integrity_error, self.user_errors())
        self.session.cleanup_keys()
        self.report_run(run, Measured(result))
