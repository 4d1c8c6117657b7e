"""The role that owns the target and runs the chaos: a local runner, or a master (DESIGN.md, "Chaos runs once").

At construction it opens the run's setup (profile, embedded servers, proxy, admin, checks: bad
input stops the process before any user spawns). Each test gets the chaos scheduler (its loop only
when chaos is on; the web UI injects on demand through it either way) and, with embedded servers,
a watchdog. At each test's end the role reports through the outcome. Local and master differ only
in how a test is measured and concluded, and in whether ``traffic_nodes`` faults are fanned out.
"""

from __future__ import annotations

from locust import log as locust_log
from locust.env import Environment

import logging
import time
from typing import Any, TypeVar

import gevent
from prometheus_client.registry import CollectorRegistry

from chaos.events import ResilienceEvents
from chaos.faults import FAULTS, FaultParams, fault_class, fault_names, parse_fault_spec
from chaos.locust_test import LocustTest, spawn_detached
from chaos.roles.base import Role
from chaos.roles.live import Measured, Metrics, live_report
from chaos.run_setup import RunSetup, open_setup
from chaos.scheduler import ChaosScheduler, FanOut, FaultConflict
from chaos.settings import Settings, SetupError
from recovery.outcome import make_report
from recovery.records import FaultRecord
from recovery.report import ReportInputs, RunFacts
from recovery.results import NodeResult, merge_windows, per_fault
from recovery.tracker import WindowSummary
from scenarios.run import attach
from scenarios.user import apply_profile_weights

logger = logging.getLogger("redis_resilience")
progress = logging.getLogger("locust.stats_logger")  # plain lines on Locust's console


def progress_text(windows: list[WindowSummary]) -> str:
    """``12 failed, recovered in 0.025 s`` (and per request type when there are several)."""
    merged = per_fault(windows)[0]
    done = f"recovered in {merged.recovery_s:.3f} s" if merged.recovery_s is not None else "NOT recovered"
    text = f"{merged.failures} failed, {done}"
    types = sorted({w.request_type for w in windows})
    typed = [merge_windows([w for w in windows if w.request_type == t]) for t in types]
    if len(typed) > 1:
        text += (
            " ("
            + ", ".join(
                f"{w.request_type} " + (f"{w.recovery_s:.3f} s" if w.recovery_s is not None else "not recovered")
                for w in typed
            )
            + ")"
        )
    return text


WATCH_EVERY_S = 0.5  # how often the embedded servers are checked for an exit of their own
PROGRESS_WAIT_S = 2.0  # a fault's progress line waits this long at most for its windows to close

R = TypeVar("R", bound=LocustTest)


def default_on_demand_fault() -> str:
    """The web UI's reset when it names no fault: the first registered fault that runs on the traffic
    nodes (resetting the load generators' own connections is what a "reset" button means). First in
    registration order: the pack's own faults register before any of a user's (which import them),
    so a fault of yours does not silently take over the button."""
    for name, kind in FAULTS.items():
        if kind.fault.runs_on == "traffic_nodes":
            return name
    raise ValueError('no registered fault runs on the traffic nodes: name one with "fault"')


class SchedulingRole(Role[R]):
    """A local or master node: the run's setup, the scheduler, the report (see the module docstring)."""

    def __init__(self, environment: Environment, settings: Settings, events: ResilienceEvents) -> None:
        super().__init__(environment, settings, events)
        self.setup: RunSetup = open_setup(settings)
        self.what_runs = self.setup.read_environment()  # once, before any test: what the reports name
        self.tests_started = 0
        try:
            environment.user_classes = apply_profile_weights(environment.user_classes, self.setup.profile)
        except ValueError as exc:
            self.setup.close()
            raise SetupError(str(exc)) from None
        try:
            self.metrics = Metrics(self, settings.metrics_port, settings.pushgateway, settings.allow_remote_chaos)
        except SetupError:
            self.setup.close()
            raise
        attach(environment, self.setup.run)
        service = self.setup.service
        logger.info(
            "redis-resilience: run %s against %s, profile %s%s%s",
            self.setup.run.run_id,
            self.setup.label,
            settings.profile_path,
            "" if self.setup.chaos_enabled else ", chaos off",
            "" if service is None else f", service {service.label}",
        )

    # ---- what local and master do their own way ---------------------------------------------

    def new_test(self, number: int) -> R:
        """This node's run of test ``number``, set up (on a master: its workers told) before chaos starts."""
        raise NotImplementedError

    def fan_out(self) -> FanOut | None:
        """How ``traffic_nodes`` faults reach the nodes with traffic (None: they run here)."""
        return None

    def pool_status(self) -> dict[str, Any]:
        """The web UI status's ``connections`` without the server's view."""
        return {"pools": self.setup.pool_status()}

    # ---- the test ------------------------------------------------------------------------------

    def start_test(self) -> R:
        self.tests_started += 1
        self.setup.run.checks.clear()
        test = self.test = self.new_test(self.tests_started)  # a master sets it sooner: its setup waits on workers
        test.scheduler = self._scheduler(test)
        if self.setup.chaos_enabled:
            test.scheduler.start()
        if self.setup.embedded is not None:
            test.spawn("the embedded-server watchdog", self._watch_embedded, test)
        return test

    def _scheduler(self, test: R) -> ChaosScheduler:
        profile = self.setup.profile
        run_time = getattr(self.environment.parsed_options, "run_time", None)
        last_fault_by = test.started_at + run_time - profile.recovery.max_window_s if run_time else None
        return ChaosScheduler(
            profile.chaos,
            self.setup.fault_target(),
            self.events,
            started_at=test.started_at,
            origin=test.origin,
            last_fault_by=last_fault_by,
            fan_out=self.fan_out(),
            on_crash=test.crashed,
            witnesses=self.setup.witnesses,
            window_s=profile.recovery.max_window_s,
            on_settled=(lambda record: self._progress(test, record))
            if self.headless and self.settings.progress
            else None,
        )

    # ---- headless progress: a line per fault as its window closes ------------------------------

    def fault_windows(self, test: R, fault_id: int) -> list[WindowSummary]:
        """This fault's windows as this node knows them now (one per request type, per worker on a master)."""
        return []

    def _progress(self, test: R, record: FaultRecord) -> None:
        """A line for ``record`` of ``test`` (the test's, also when its end settled the fault)."""
        spawn_detached(f"the progress line of fault #{record.fault_id}", lambda: self._progress_line(test, record))

    def _progress_line(self, test: R, record: FaultRecord) -> None:
        windows = self.fault_windows(test, record.fault_id)
        if not record.ok:
            seen = f"; in its window: {progress_text(windows)}" if windows else ""
            progress.info("fault %d %s: FAILED to inject: %s%s", record.fault_id, record.name, record.error, seen)
            return
        if not windows:
            progress.info("fault %d %s: no request in its window", record.fault_id, record.name)
            return
        progress.info("fault %d %s: %s", record.fault_id, record.name, progress_text(windows))

    def _watch_embedded(self, test: R) -> None:
        """A server of the embedded topology that exits on its own (not by a fault) ends the test:
        reported as aborted, never a hang of users retrying a server that is gone."""
        while True:
            gevent.sleep(WATCH_EVERY_S)
            exited = self.setup.exited_server()
            if exited is None:
                continue
            test.aborted = f"{exited} at +{test.elapsed_s():.1f}s: the test was stopped"
            logger.error("redis-resilience: %s", test.aborted)
            runner = self.environment.runner
            if runner is not None:  # from a greenlet of its own: stopping the test kills this one
                spawn_detached("stopping the test", runner.quit if self.headless else runner.stop)
            return

    def user_errors(self) -> int:
        """Unexpected exceptions in user code this test: Locust's error report, plus crashed greenlets."""
        runner = self.environment.runner
        counted = sum(int(row["count"]) for row in runner.exceptions.values()) if runner is not None else 0
        return counted + (1 if locust_log.unhandled_greenlet_exception else 0)

    def report_run(self, test: R, measured: Measured) -> None:
        """The test ended (its faults reverted): its report, the exit code, the push, the lines."""
        self.outcome.conclude(self.report_inputs(test, measured, at_end=True))
        self.apply_exit_code()
        self.metrics.push()
        if not self.headless:
            self.outcome.print_report()  # web UI: show it now, the process may live on for another test

    def report_inputs(
        self, test: R | None, measured: Measured, at_end: bool, with_timeline: bool = True
    ) -> ReportInputs:
        """What a report of ``test`` is made of, live (``at_end`` False) or at its end: the same inputs, except
        the service's health, asked at the end only (once the faults are reverted: has it come back?).
        ``test`` None: before the first test (the web UI's view waits for one)."""
        setup = self.setup
        service = None
        if setup.service is not None:
            service = setup.service.facts()
            if at_end:
                service["health_at_end"] = setup.service.health_at_end()
        return ReportInputs(
            facts=self.facts(test),
            slo=setup.profile.slo,
            records=list(test.records) if test is not None else [],
            result=measured.result,
            workers=measured.workers,
            missing_by_fault=measured.missing_by_fault,
            service=service,
            outage_ms=self.witness_seconds(test, measured.result) if with_timeline and test is not None else None,
        )

    def facts(self, test: R | None) -> RunFacts:
        """The run's facts for its report (at the end, or live; ``test`` None: before the first test)."""
        setup = self.setup
        return RunFacts(
            run_id=setup.run.run_id,
            profile=self.settings.profile_path,
            target=setup.label,
            embedded_pid=setup.embedded.servers[0].pid if setup.embedded is not None else None,
            embedded_pids=setup.embedded.pids if setup.embedded is not None else [],
            mode=self.mode,
            chaos=setup.chaos_enabled,
            started_at=test.started_wall if test is not None else time.time(),
            duration_s=time.monotonic() - test.started_at if test is not None else 0.0,
            environment=self.what_runs,
            interrupted=test.interrupted if test is not None else None,
            aborted=test.aborted if test is not None else None,
        )

    def witness_seconds(self, test: R, result: NodeResult) -> dict[int, float] | None:
        """The witness's outage within each second of the timeline (ms), on the nodes it watched; None
        without a witness."""
        witnesses = self.setup.witnesses
        if witnesses is None:
            return None
        keys = tuple({key for record in test.records for key in record.watched} | set(witnesses.primaries))
        seconds = {s for per_type in result.series.values() for s in per_type} | set(result.users)
        offset = test.origin.offset  # the seconds are the test's wall-clock seconds, from its one origin
        outage: dict[int, float] = {}
        for second in seconds:
            start, end = second - offset, second + 1 - offset
            gap = witnesses.outage(keys, start, end)
            if gap is not None:
                outage[second] = max(0.0, min(gap.end, end) - max(gap.start, start)) * 1000
        return outage

    def close(self) -> None:
        self.metrics.close()
        self.setup.close()

    # ---- live: the web UI's Resilience view and Prometheus (chaos/roles/live.py) ----------------

    def live_measured(self, test: R) -> Measured:
        """What this node has measured of the running test so far."""
        raise NotImplementedError

    def live_report(self, with_timeline: bool = True) -> dict[str, Any] | None:
        return live_report(self, with_timeline)

    def shown_report(self) -> dict[str, Any]:
        """What the web UI's view shows: the live report, or before the first test the same pipeline's report of
        no test yet (verdict ``running``)."""
        report = self.live_report()
        if report is None:
            report, _ = make_report(self.report_inputs(None, Measured(NodeResult()), at_end=False), False)
            report["verdict"] = "running"
        return report

    @property
    def metrics_registry(self) -> CollectorRegistry:
        return self.metrics.registry

    # ---- on demand (the web UI, chaos/webui.py) ----------------------------------------------

    def reset_now(self, fault: str | None = None) -> FaultRecord:
        """Inject ``fault`` (default: :func:`default_on_demand_fault`) now, through the running test's
        scheduler, as ``trigger: web``.

        ``ValueError``: an unknown fault (or one needing params the profile does not give);
        :class:`FaultConflict`: no test is running, or a fault is active.
        """
        spec = self._on_demand_spec(fault or default_on_demand_fault())
        refusal = self.setup.remote_refusal
        if refusal is not None and fault_class(spec.name).runs_on != "traffic_nodes":  # those touch only our clients
            raise ValueError(refusal)
        test = self.test
        if test is None:
            raise FaultConflict("no test is running")
        if test.scheduler is None:
            raise FaultConflict("the test is starting: its chaos scheduler is not set up yet")
        return test.scheduler.inject_now(spec, trigger="web")

    def _on_demand_spec(self, name: str) -> FaultParams:
        """The profile's ``chaos.faults`` entry of that name, else the fault with its defaults."""
        names = fault_names()
        if name not in names:
            raise ValueError(f"unknown fault {name!r}: expected one of {', '.join(names)}")
        listed = [spec for spec in self.setup.profile.chaos.faults if spec.name == name]
        if listed:
            return listed[0]
        try:
            return parse_fault_spec({"name": name})
        except ValueError as exc:
            raise ValueError(f"fault {name} is not in the profile's chaos.faults and needs: {exc}") from None

    def status(self) -> dict[str, Any]:
        """The test, its active fault, its faults so far, and this run's connections (never raises)."""
        test = self.test
        scheduler = test.scheduler if test is not None else None
        active = scheduler.active if scheduler is not None else None
        records = scheduler.records if scheduler is not None else []
        now = time.monotonic()
        active_fault = None
        if active is not None:
            since_s = None if active.begin is None else round(now - active.begin, 3)  # since its window opened
            active_fault = {
                "id": active.fault_id,
                "name": active.name,
                "trigger": active.trigger,
                "since_s": since_s,
                "injecting": active.t0 is None,
            }
        return {
            "running": test is not None,
            "mode": self.mode,
            "run_id": self.setup.run.run_id,
            "scheduled_chaos": self.setup.chaos_enabled,
            "elapsed_s": round(now - test.started_at, 3) if test is not None else None,
            "active_fault": active_fault,
            "faults": {"count": len(records), "records": [r.brief() for r in records]},
            "connections": {**self.pool_status(), "server": self.setup.server_status()},
        }
