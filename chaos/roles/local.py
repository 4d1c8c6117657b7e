"""The local runner: one process schedules the chaos, makes the traffic, measures it and reports."""

from __future__ import annotations

from typing import Any, ClassVar

from chaos.events import fire_recovered
from chaos.roles.measuring import MeasuresRequests
from chaos.roles.scheduling import SchedulingRole
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
            user_count=(lambda: runner.user_count) if runner is not None else None,
        )

    def on_fault_injected(self, fault_id: int, name: str, time: float, monotonic: float, **_: Any) -> None:
        run = self.run
        if run is not None:
            run.open_window(fault_id, name, monotonic)

    def fault_windows(self, fault_id: int) -> list[WindowSummary]:
        run = self.run
        if run is None:
            return []
        run.tracker.expire()  # a window whose time is up closes now, not at the timer's next tick
        return [w for tracker in run.tracker.by_type.values() for w in tracker.closed if w.fault_id == fault_id]

    def live_result(self, run: MeasuredRun) -> NodeResult:
        """Closed windows, and the open one as it stands (marked truncated: its end is to come)."""
        result = NodeResult.from_trackers(run.tracker, {}, None, 0)
        now = run.tracker.clock()
        for tracker in run.tracker.by_type.values():
            window = tracker.current
            if window is not None and now < window.closes_at:
                result.windows.append(window.close(now, truncated=True))  # a snapshot: the window stays open
        return result

    def conclude(self, run: MeasuredRun) -> None:
        integrity, integrity_error = self.session.check_integrity()
        result = run.result(integrity, integrity_error, self.user_errors())
        self.session.cleanup_keys()
        self.report_run(run, result)
