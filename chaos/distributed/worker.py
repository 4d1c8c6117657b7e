"""A worker: makes the traffic, measures it per fault window, and sends its figures to the master.

It never schedules. It adopts the master's run (profile, target, run id; or this worker's own
``--redis-url``), opens a window when the master announces one (by the master's wall clock when the
clocks plausibly agree), runs a ``traffic_nodes`` fault on its own clients when told (its window
opens when its own injection returned) and acknowledges with the fault's details, sends each
window as it closes, and at the end checks its own acknowledged writes and sends its final figures.
"""

from __future__ import annotations

from locust import log as locust_log
from locust.env import Environment
from locust.runners import WorkerRunner

import contextlib
import logging
import time
import uuid
from dataclasses import replace
from typing import Any, ClassVar
from urllib.parse import urlsplit

import gevent
import gevent.pool

from chaos.distributed import messages
from chaos.events import ResilienceEvents, fire_recovered
from chaos.faults import Fault, build_fault, fault_class, parse_fault_spec
from chaos.lifecycle import FaultLife
from chaos.locust_test import MeasuredTest, spawn_detached
from chaos.profile import parse_profile
from chaos.roles.base import Role
from chaos.roles.measuring import MeasuresRequests
from chaos.run_setup import RunSetup, check_traffic_access, connect_admin, target_access
from chaos.service import check_headers, check_service_url
from chaos.settings import URL_ENV, URL_FLAG, Settings, SetupError
from config.hosts import is_loopback_host
from config.loader import ProfileError
from config.redact import redact_url
from recovery.results import result_to_dict, window_to_dict
from recovery.tracker import WindowSummary
from scenarios.run import PackRun, attach
from targets.access import admin_url
from targets.greenlets import describe

logger = logging.getLogger("redis_resilience")

MASTERS_PROFILE = "the master's profile"


def remote_worker_error(master_url: str, master_host: str, own_url: str | None) -> str | None:
    """Why a worker cannot use the master's target, or None.

    A target on the master's loopback (the embedded server, or a local one) is another machine's
    loopback for a worker on another host: such a worker must name the target itself.
    """
    if own_url or not is_loopback_host(urlsplit(master_url).hostname or "") or is_loopback_host(master_host):
        return None
    return (
        f"the master's target {redact_url(master_url)} is on the master's loopback, which this worker "
        f"(master host {master_host}) cannot reach: pass {URL_FLAG} (or {URL_ENV}) with an address "
        "of that Redis server this worker can reach"
    )


def adopt_setup(data: dict[str, Any], settings: Settings, node: str, master_host: str) -> RunSetup:
    """The master's run on this worker: its profile, its target (or this worker's --redis-url)."""
    try:
        profile = parse_profile(data["profile"], MASTERS_PROFILE)
    except ProfileError as exc:
        raise SetupError(str(exc)) from None
    url = settings.redis_url or data["url"]
    error = remote_worker_error(data["url"], master_host, settings.redis_url)
    if error:
        raise SetupError(error)
    traffic_access, admin_access = target_access(profile, url, MASTERS_PROFILE)
    run = PackRun(profile, url, data["run_id"], node=node, access=traffic_access)
    run.service_url = settings.service_url or data.get("service_url")  # this worker's --service-url wins
    if profile.service is not None:  # the master checked its own; this worker's URL and environment too
        if settings.service_url:
            check_service_url(settings.service_url, profile.service, settings)
        check_headers(profile.service, MASTERS_PROFILE)
    admin_at = settings.redis_url or data.get("admin_url") or url  # past the master's proxy
    admin = connect_admin(admin_url(admin_at, profile.target), run.admin_name, retries=3, access=admin_access)
    try:  # retries=3 above: a scope: all kill may hit the admin connection
        check_traffic_access(run)
    except SetupError:
        with contextlib.suppress(Exception):
            admin.close()
        raise
    return RunSetup(profile, MASTERS_PROFILE, run, admin, admin_at)


class WorkerRole(MeasuresRequests, Role[MeasuredTest]):
    """A worker node (see the module docstring)."""

    mode: ClassVar[str] = "worker"

    def __init__(
        self, environment: Environment, settings: Settings, events: ResilienceEvents, runner: WorkerRunner
    ) -> None:
        super().__init__(environment, settings, events)
        self.runner = runner
        self.node = uuid.uuid4().hex[:6]
        self.setup: RunSetup | None = None  # the master sends the run
        self.test_number = 0  # the test the master's last setup named
        self.finals: dict[int, dict[str, Any]] = {}  # final figures sent, per test
        self.faults = gevent.pool.Group()  # traffic_nodes faults running here (held, then reverted)
        self.ran: list[Fault] = []  # the faults run here this test: closed at its end
        for msg_type, handler in (
            (messages.SETUP, self._on_setup),
            (messages.WINDOW_OPENED, self._on_window_opened),
            (messages.RUN_FAULT, self._on_run_fault),
            (messages.COLLECT, self._on_collect),
        ):
            runner.register_message(msg_type, lambda msg, _h=handler, **_: _h(msg.data))

    def send(self, msg_type: str, data: dict[str, Any]) -> None:
        self.runner.send_message(msg_type, data)

    # ---- the test ------------------------------------------------------------------------------

    def start_test(self) -> MeasuredTest | None:
        setup = self.setup
        if setup is None:
            return None  # never set up (the master was told why): nothing to measure
        setup.run.checks.clear()
        number = self.test_number
        runner = self.runner
        return MeasuredTest(
            number,
            setup.profile.recovery,
            on_closed=lambda w: self._window_closed(number, w),
            user_classes=runner.environment.user_classes,
            user_count=lambda: runner.user_count,
        )

    def _window_closed(self, test: int, window: WindowSummary) -> None:
        self.send(messages.WINDOW, {"test": test, "window": window_to_dict(window)})
        fire_recovered(self.events, window)

    def finish_test(self) -> None:
        self.faults.kill(block=True, timeout=5.0)  # a fault still held here is reverted (in its finally)
        ran, self.ran = self.ran, []
        for fault in ran:  # what they still run in the background ends with the test, as on the scheduler
            fault.close()
        super().finish_test()

    def conclude(self, test: MeasuredTest) -> None:
        setup = self.setup
        integrity, integrity_error = setup.check_integrity() if setup else (None, "the run was never set up")
        unhandled = 1 if locust_log.unhandled_greenlet_exception else 0  # task errors reach the master by Locust
        result = test.result(integrity, integrity_error, unhandled)
        final = {"test": test.number, "result": result_to_dict(result, include_windows=False), "aborted": test.aborted}
        self.finals[test.number] = final
        self.send(messages.FINAL, final)

    def close(self) -> None:
        self.faults.kill(block=True, timeout=5.0)
        if self.setup is not None:
            self.setup.close()

    # ---- the master's messages ---------------------------------------------------------------

    def _on_setup(self, data: dict[str, Any]) -> None:
        self.test_number = int(data["test"])
        error = None
        try:
            if self.setup is None or self.setup.run.run_id != data["run_id"]:
                master_host = str(getattr(self.runner, "master_host", "127.0.0.1"))
                setup = adopt_setup(data, self.settings, self.node, master_host)
                if self.setup is not None:
                    self.setup.close()
                self.setup = setup
                attach(self.environment, setup.run)
        except SetupError as exc:
            error = str(exc)
            logger.error("redis-resilience: %s", error)
            self.outcome.refuse(error, shown=True)
            self.apply_exit_code()
            spawn_detached("quitting after a setup error", self.runner.quit, delay_s=0.5)
        self.send(messages.READY, {"test": self.test_number, "error": error})

    def _on_window_opened(self, data: dict[str, Any]) -> None:
        """A fault's window reaches this worker: its start is the master's (the injection call began), by the
        wall clock when plausible."""
        test = self.test
        if test is None or data["test"] != test.number:
            return
        began = float(data["time"])  # the master's wall clock
        plausible = 0 <= time.time() - began < 2  # clocks of other hosts may disagree: then it began now
        start = test.origin.to_monotonic(began) if plausible else time.monotonic()
        test.open_window(int(data["fault_id"]), str(data["name"]), start)

    def _on_run_fault(self, data: dict[str, Any]) -> None:
        """Run a ``traffic_nodes`` fault here, in a greenlet of its own (it may be held); not set up:
        no acknowledgement (the master names this worker under ``unacknowledged_workers``)."""
        if self.setup is not None:
            greenlet = self.faults.spawn(self._run_fault, data, self.setup)
            greenlet.link_exception(lambda dead: self._fault_crashed(data, dead.exception))

    def _run_fault(self, data: dict[str, Any], setup: RunSetup) -> None:
        fault_id = int(data["fault_id"])
        ack: dict[str, Any] = {"test": data["test"], "fault_id": fault_id, "details": {}, "error": None}
        try:
            spec = parse_fault_spec(data["params"])
            if fault_class(spec.name).runs_on != "traffic_nodes":  # a server fault (exec's command) runs on the master
                raise ValueError(f"fault {spec.name} runs where the scheduler is, never on a worker")
            fault = build_fault(spec, replace(setup.fault_target(), fault_id=fault_id))
        except (ValueError, KeyError) as exc:
            self.send(messages.FAULT_RAN, {**ack, "error": describe(exc)})
            return
        self.ran.append(fault)  # closed at the test's end
        life = FaultLife(fault, setup.profile.chaos.fault_timeout_s)
        test = self.test
        begin = life.start()
        if test is not None and test.number == data["test"]:  # opened already, unless the master's word is late
            test.open_window(fault_id, spec.name, begin)
        try:
            if life.inject() is not None:
                ack["details"] = life.details
            else:
                ack["error"] = life.error
            self.send(messages.FAULT_RAN, ack)
            life.hold()  # as the scheduler holds: from when it took effect, never early
        finally:
            if life.revert() and life.revert_error is not None:
                logger.error(
                    "redis-resilience: fault #%d %s failed to revert on this worker: %s",
                    fault_id,
                    spec.name,
                    life.revert_error,
                )

    def _fault_crashed(self, data: dict[str, Any], exc: BaseException | None) -> None:
        test = self.test
        what = f"fault #{data.get('fault_id')} on this worker"
        if test is not None:
            test.crashed(what, exc)
        else:
            logger.error("redis-resilience: %s crashed: %s", what, describe(exc) if exc else "unknown error")

    def _on_collect(self, data: dict[str, Any]) -> None:
        final = self.finals.get(int(data["test"]))
        if final is not None:
            self.send(messages.FINAL, final)
        elif self.test is not None:
            self.runner.stop()  # test_stop follows: this worker's users stop, its figures go to the master
