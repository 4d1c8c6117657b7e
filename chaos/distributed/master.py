"""The master: schedules the chaos, tells the workers, merges their figures and reports.

It makes no Redis traffic of its own. Server-side faults run here; a ``traffic_nodes`` fault is
sent to every worker, which runs it on its own clients and acknowledges with its details (see
chaos/distributed/messages.py). At the end of a test it collects every worker's figures, merges
them exactly (recovery/results.py) and names the workers that did not report.
"""

from __future__ import annotations

from locust.env import Environment
from locust.runners import MasterRunner

import logging
import time
from typing import Any, ClassVar

from chaos.distributed.master_link import MasterLink, MasterTest
from chaos.events import ResilienceEvents
from chaos.faults import FaultParams
from chaos.locust_test import LocustTest, spawn_detached
from chaos.roles.live import Measured
from chaos.roles.scheduling import PROGRESS_WAIT_S, SchedulingRole
from chaos.scheduler import FanOut
from chaos.settings import Settings
from recovery.records import FaultRecord
from recovery.results import NodeResult, merge_results
from recovery.tracker import WindowSummary

logger = logging.getLogger("redis_resilience")

SETUP_TIMEOUT_S = 10.0  # workers answer the run setup within this
FAULT_ACK_TIMEOUT_S = 5.0  # workers acknowledge a traffic_nodes fault within this
COLLECT_TIMEOUT_S = 30.0  # workers send their final figures within this


class MasterRole(SchedulingRole[LocustTest]):
    """The master node (see the module docstring)."""

    mode: ClassVar[str] = "master"

    def __init__(
        self, environment: Environment, settings: Settings, events: ResilienceEvents, runner: MasterRunner
    ) -> None:
        super().__init__(environment, settings, events)
        self.runner = runner
        self.link = MasterLink(runner, self._worker_error)

    def new_test(self, number: int) -> LocustTest:
        test = LocustTest(number)
        self.test = test  # the status shows the test while the workers are told
        ready = self.link.begin(number, self.setup.setup_message(), SETUP_TIMEOUT_S)
        logger.info("redis-resilience: %d worker(s) ready for run %s", len(ready.expected), self.setup.run.run_id)
        return test

    def fan_out(self) -> FanOut:
        return self._run_on_workers

    def _run_on_workers(self, spec: FaultParams, fault_id: int) -> dict[str, Any]:
        params = spec.model_dump(mode="json")
        return self.link.run_on_workers(fault_id, spec.name, params, FAULT_ACK_TIMEOUT_S)

    def on_fault_started(self, fault_id: int, name: str, time: float, monotonic: float, **_: Any) -> None:
        self.link.announce_window(fault_id, name, time)

    def fault_windows(self, test: LocustTest, fault_id: int) -> list[WindowSummary]:
        """The workers' windows of this fault, once each worker sent one (or after PROGRESS_WAIT_S): woken as
        their messages come."""

        def sent(worker: str, heard: MasterTest) -> bool:
            return any(x.fault_id == fault_id for x in heard.windows.get(worker, []))

        self.link.wait_until(lambda heard: all(sent(w, heard) for w in heard.expected), PROGRESS_WAIT_S)
        heard = self.link.current
        if heard is None:
            return []
        return [x for ws in heard.windows.values() for x in ws if x.fault_id == fault_id]

    def live_measured(self, test: LocustTest) -> Measured:
        """The workers' windows so far (their series and counts outside windows come with their finals), who
        sent what, and the workers that sent no window of a fault whose window has closed."""
        heard = self.link.current
        if heard is None:
            return Measured(NodeResult())
        result = merge_results(list(heard.finals.values()), [w for ws in heard.windows.values() for w in ws])
        window_s = self.setup.profile.recovery.max_window_s
        closed = [r for r in test.records if r.begin is not None and r.begin + window_s < time.monotonic()]
        return Measured(result, _workers(heard, []), _missing_by_fault(heard, closed))

    def pool_status(self) -> dict[str, Any]:
        note = "distributed run: the workers hold the connection pools, the master has none"
        return {"pools": None, "pools_note": note}

    def _worker_error(self, worker: str, error: str) -> None:
        """A worker cannot take part (it cannot reach the target, or did not answer): bad input."""
        logger.error("redis-resilience: worker %s: %s", worker, error)
        self.outcome.refuse(f"worker {worker}: {error}")
        spawn_detached("quitting after a worker's error", self.runner.quit)

    def conclude(self, test: LocustTest) -> None:
        heard = self.link.collect(COLLECT_TIMEOUT_S)
        if heard is None:
            return
        expected = heard.expected
        missing = sorted(set(expected) - set(heard.finals))
        for worker in missing:
            logger.error("redis-resilience: worker %s sent no final figures: reported as missing", worker)
        result = merge_results(list(heard.finals.values()), [w for windows in heard.windows.values() for w in windows])
        result.user_errors += self.user_errors()
        if missing and result.integrity is not None:
            result.integrity = None
            result.integrity_error = f"not checked on missing workers: {', '.join(missing)}"
        if test.aborted is None and heard.aborted:
            worker, why = sorted(heard.aborted.items())[0]
            test.aborted = f"worker {worker}: {why}"
        self.setup.cleanup_keys()
        self.report_run(test, Measured(result, _workers(heard, missing), _missing_by_fault(heard, test.records)))


def _missing_by_fault(heard: MasterTest, records: list[FaultRecord]) -> dict[int, list[str]]:
    """For each fault injected: the workers that sent no window of it."""
    missing: dict[int, list[str]] = {}
    for rec in records:
        if rec.ok:
            absent = [
                w for w in heard.expected if not any(x.fault_id == rec.fault_id for x in heard.windows.get(w, []))
            ]
            if absent:
                missing[rec.fault_id] = absent
    return missing


def _workers(heard: MasterTest, missing: list[str]) -> dict[str, Any]:
    """The report's ``workers``: who was expected, who reported, and each one's own counts."""
    per_worker = {}
    for worker in heard.expected:
        windows = heard.windows.get(worker, [])
        final = heard.finals.get(worker)
        outside = final.outside if final is not None else None
        per_worker[worker] = {
            "requests": sum(w.requests for w in windows) + (outside.requests if outside else 0),
            "failures": sum(w.failures for w in windows) + (outside.failures if outside else 0),
            "windows": len({w.fault_id for w in windows}),  # faults whose window it sent (one per request type)
        }
    return {"expected": heard.expected, "reported": sorted(heard.finals), "missing": missing, "figures": per_worker}
