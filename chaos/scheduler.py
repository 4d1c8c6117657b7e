"""The chaos scheduler: one greenlet on the local or master runner that follows the profile's schedule.

A fault runs where it says (``runs_on``, chaos/faults/base.py). A ``server`` fault runs here. A
``traffic_nodes`` fault runs here too when this node makes the traffic (local runner); on a master
it is handed to the role's fan-out, which has every worker run it on its own clients and returns
what they did together: the scheduler records it like any other fault.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import gevent
import gevent.event
import gevent.lock

from chaos.events import ResilienceEvents
from chaos.faults import Fault, FaultParams, FaultTarget, build_fault
from chaos.faults.base import FaultBase, Running
from chaos.lifecycle import FaultLife, deadline, sleep_until
from config.redact import redact_params
from config.schema import Chaos
from recovery.clock import ClockOrigin
from recovery.records import FaultRecord
from targets.greenlets import describe, spawn_reported
from targets.witness import Witnesses

FanOut = Callable[[FaultParams, int], dict[str, Any]]
"""Runs a ``traffic_nodes`` fault (its params, its fault id) on every traffic node; their details together."""
OnCrash = Callable[[str, BaseException], None]

logger = logging.getLogger(__name__)

WITNESS_SETTLE_S = 0.1  # at the test's end: a probe's last gap line reaches the witness within this


class FaultConflict(Exception):
    """A fault cannot be injected now: no test is running, or another fault is being injected or held."""


def _log_crash(what: str, exc: BaseException) -> None:
    logger.error("%s crashed: %s", what, describe(exc))


class FannedOut(FaultBase):
    """A ``traffic_nodes`` fault as the scheduler of a master runs it: injecting is the fan-out.

    Each traffic node holds, reverts and counts its own (``took_effect`` too), so there is nothing to
    revert or count here (:class:`FaultBase`'s defaults); the fault lasts here as long as there
    (``hold_s``), so the next fault waits for it like for any other.
    """

    def __init__(self, fault: Fault, spec: FaultParams, target: FaultTarget, fan_out: FanOut) -> None:
        super().__init__(spec, target)
        self.hold_s = fault.hold_s
        self._fault, self._fan_out = fault, fan_out

    def inject(self) -> dict[str, Any]:
        return self._fan_out(self.params, self.target.fault_id)

    def close(self) -> None:
        self._fault.close()


class ChaosScheduler:
    """Injects faults at ``start_after_s``, then every ``every_s`` (+/- ``jitter_s``), ``count`` times at most,
    and none after ``last_fault_by`` (in a timed run: its end minus ``max_window_s``).

    Every fault is reverted in ``finally`` and again by :meth:`stop`, so a killed greenlet
    (test stop, Ctrl-C) never leaves a lasting change behind. :meth:`inject_now` adds a fault on
    demand (the web UI's reset): one fault is active at a time, and the loop need not run.
    """

    def __init__(
        self,
        chaos: Chaos,
        target: FaultTarget,
        events: ResilienceEvents,
        started_at: float,
        clock: Callable[[], float] = time.monotonic,
        last_fault_by: float | None = None,
        fan_out: FanOut | None = None,
        on_crash: OnCrash = _log_crash,
        witnesses: Witnesses | None = None,
        window_s: float = 10.0,
        on_settled: Callable[[FaultRecord], None] | None = None,
        origin: ClockOrigin | None = None,
    ) -> None:
        self.chaos = chaos
        self.target = target
        self.events = events
        self.started_at = started_at
        self.clock = clock
        self.last_fault_by = last_fault_by  # monotonic; no fault after it (its window would be cut short)
        self.fan_out = fan_out  # None: traffic_nodes faults run here (this node makes the traffic)
        self.on_crash = on_crash  # a greenlet of the scheduler died of an exception (never silent)
        self.witnesses = witnesses  # the data nodes' witnesses: each fault's server-side outage
        self.window_s = window_s  # a fault window's longest span (recovery.max_window_s)
        self.on_settled = on_settled  # a fault's window closed and its figures are final (the progress line)
        # The test's clock origin: the events' wall times come from it (else one taken now, at started_at).
        self.origin = origin or ClockOrigin(started_at, started_at + time.time() - time.monotonic())
        self.rng = random.Random(chaos.seed)
        self.records: list[FaultRecord] = []
        self.greenlet: gevent.Greenlet[..., None] | None = None
        self._active: tuple[FaultLife, FaultRecord] | None = None
        self._busy = gevent.lock.Semaphore()  # one fault at a time, scheduled or on demand
        self._on_demand: set[gevent.Greenlet[..., None]] = set()
        self._faults: dict[int, Running] = {}  # every fault run, by id: stop() closes them (background greenlets)
        self._settled = 0  # records before this one have their window-close figures (settle)
        self._settling = gevent.lock.Semaphore()

    def start(self) -> None:
        self.greenlet = spawn_reported(lambda exc: self.on_crash("the chaos schedule", exc), self._run)

    def _run(self) -> None:
        """Faults at planned times: each planned from the one before's plan, not from when it ran, so
        lateness (``late_ms``) never adds up."""
        chaos = self.chaos
        planned = self.started_at + chaos.start_after_s
        injected = 0
        while chaos.count is None or injected < chaos.count:
            sleep_until(planned, self.clock)
            if self.last_fault_by is not None and planned > self.last_fault_by:
                logger.info("no more faults: the test ends before another fault window could close")
                return
            if chaos.order == "cycle":
                spec = chaos.faults[injected % len(chaos.faults)]
            else:
                spec = self.rng.choices(chaos.faults, weights=[f.weight for f in chaos.faults])[0]
            record = self.inject(spec, scheduled=planned)
            injected += 1
            delay = chaos.every_s + (self.rng.uniform(-chaos.jitter_s, chaos.jitter_s) if chaos.jitter_s else 0.0)
            if planned + delay < self.clock():  # the fault overran the interval: give its window a full one anyway
                logger.warning("fault injection took longer than every_s: next fault in %.1fs", delay)
                planned = self.clock()
            planned += delay
            if record.begin is not None and record.begin + self.window_s < planned:  # it closes before the next
                sleep_until(record.begin + self.window_s, self.clock)
                self.settle(self.clock())

    @property
    def active(self) -> FaultRecord | None:
        """The fault being injected or held, if any."""
        return self._active[1] if self._active is not None else None

    def inject(self, spec: FaultParams, trigger: str = "schedule", scheduled: float | None = None) -> FaultRecord:
        """Inject one fault now (once an active one has ended), fire its events and revert it (in ``finally``).
        ``scheduled``: when the schedule planned it (monotonic), for its ``late_ms``."""
        with self._busy:
            return self._inject(spec, trigger, scheduled=scheduled)

    def inject_now(self, spec: FaultParams, trigger: str = "web") -> FaultRecord:
        """Inject one fault now, in a greenlet of its own; :class:`FaultConflict` if another one is active.

        Returns once the injection returned (or failed): a sustained fault is held, then reverted, in that
        greenlet, which :meth:`stop` ends (reverting) like the schedule's.
        """
        if not self._busy.acquire(blocking=False):
            active = self.active
            raise FaultConflict(
                "another fault is active" if active is None else f"fault #{active.fault_id} {active.name} is active"
            )
        done: gevent.event.AsyncResult[FaultRecord] = gevent.event.AsyncResult()

        def run() -> None:
            try:
                self._inject(spec, trigger, injected=done.set)
            finally:
                self._busy.release()

        def ended(greenlet: gevent.Greenlet[..., None]) -> None:
            self._on_demand.discard(greenlet)
            if not done.ready():
                done.set_exception(greenlet.exception or FaultConflict("the test stopped during the injection"))

        greenlet = spawn_reported(lambda exc: self.on_crash(f"the on-demand {spec.name}", exc), run)
        self._on_demand.add(greenlet)
        greenlet.link(ended)
        return done.get()

    def _inject(
        self,
        spec: FaultParams,
        trigger: str,
        injected: Callable[[FaultRecord], None] | None = None,
        scheduled: float | None = None,
    ) -> FaultRecord:
        """Inject, fire the events, call ``injected`` (injection done or failed), hold, revert (in ``finally``)."""
        params = redact_params(spec.model_dump(mode="json", exclude={"name", "weight"}))  # headers may hold tokens
        assert isinstance(params, dict)
        record = FaultRecord(len(self.records) + 1, spec.name, params, offset_s=0.0, inject_ms=0.0, trigger=trigger)
        fault = self._build(spec, record.fault_id)
        self._faults[record.fault_id] = fault
        self.settle(self.clock(), closing=True)  # the windows before this one close now: their figures are final
        record.watched = self.witnesses.primaries if self.witnesses is not None else ()
        life = FaultLife(fault, self.chaos.fault_timeout_s, self.clock)
        begin = record.begin = life.start()
        record.offset_s = begin - self.started_at
        if scheduled is not None:
            record.scheduled_s = scheduled - self.started_at
            record.late_ms = (begin - scheduled) * 1000
        self.records.append(record)
        self._active = (life, record)  # from here on, stop() reverts it, even mid-injection
        # The window opens now, before the call: what fails while it runs (a reset endpoint's own 503s) is its.
        self.events.fault_started.fire(
            fault_id=record.fault_id, name=spec.name, params=params, time=self.origin.to_wall(begin), monotonic=begin
        )
        t0 = life.inject()
        if t0 is None:
            record.error = life.error
            record.inject_ms = life.inject_ms
            logger.error("fault #%d %s failed to inject: %s", record.fault_id, spec.name, record.error)
            self.events.fault_failed.fire(fault_id=record.fault_id, name=spec.name, params=params, error=record.error)
            self._revert(life, record)
            if injected is not None:
                injected(record)
            return record
        record.details = life.details
        record.t0, record.took_effect, record.inject_ms = t0, life.took_effect, life.inject_ms
        logger.info(
            "fault #%d %s injected at +%.1fs (its call took %.0f ms)%s: %s",
            record.fault_id,
            spec.name,
            record.offset_s,
            record.inject_ms,
            "" if trigger == "schedule" else f" (on demand: {trigger})",
            record.details,
        )
        try:
            self.events.fault_injected.fire(
                fault_id=record.fault_id,
                name=spec.name,
                params=params,
                time=self.origin.to_wall(t0),
                monotonic=t0,
                details=record.details,
            )
            if injected is not None:
                injected(record)
            life.hold()  # a sustained fault lasts, then is reverted (also if killed meanwhile)
        finally:
            self._revert(life, record)
        self._refresh_witnesses()
        return record

    def _refresh_witnesses(self) -> None:
        """After a fault, the primaries may have moved (a failover): watch the ones there are now."""
        if self.witnesses is None:
            return
        try:
            self.witnesses.refresh()
        except Exception as exc:  # the next fault is watched on the nodes as they were; never fatal
            logger.warning("the witness could not follow the target's primaries: %s", describe(exc))

    def settle(self, now: float, closing: bool = False) -> None:
        """Each fault whose window has closed by ``now`` (all of them when ``closing``: a fault begins, or the
        test stops) gets its window-close figures: its server-side outage from the witness (the longest
        stretch without a timely reply from the nodes watched at its injection, from its injection call's start
        to its window's end), and what the fault itself counts then (``window_closed``: e.g. the connections
        back). A fault whose injection failed has its window too: what its attempt did is its."""
        with self._settling:
            while self._settled < len(self.records):
                record = self.records[self._settled]
                begin = record.begin
                if begin is None or (record.t0 is None and record.error is None):  # still being injected
                    return
                end = begin + self.window_s
                if not closing and now < end:
                    return
                self._settle_record(record, begin, min(now, end))
                self._settled += 1
                if self.on_settled is not None:
                    self.on_settled(record)

    def _settle_record(self, record: FaultRecord, begin: float, end: float) -> None:
        if self.witnesses is not None:
            gap = self.witnesses.outage(record.watched, begin, end)
            record.outage_s = 0.0 if gap is None else gap.seconds
            record.outage_started_s = None if gap is None else gap.start - begin
        fault = self._faults.get(record.fault_id)
        if fault is None or record.t0 is None:  # a failed injection: nothing of its own to count
            return
        try:
            with deadline("window_closed", self.chaos.fault_timeout_s):
                record.at_window_close = fault.window_closed()
        except Exception as exc:  # a figure missing from the report, never a failed fault
            logger.warning("fault #%d %s: no window-close figures: %s", record.fault_id, record.name, describe(exc))
        record.seen = fault.seen()

    def _build(self, spec: FaultParams, fault_id: int) -> Running:
        target = replace(self.target, fault_id=fault_id)
        fault = build_fault(spec, target)
        if fault.runs_on == "traffic_nodes" and self.fan_out is not None:
            return FannedOut(fault, spec, target, self.fan_out)
        return fault

    def _revert(self, life: FaultLife, record: FaultRecord) -> None:
        """Revert once (:meth:`FaultLife.revert`); a revert cut short (its greenlet killed mid-way) is run
        again by :meth:`stop`."""
        if not life.revert():
            return
        record.revert_error = life.revert_error
        record.reverted = True
        if record.revert_error is not None:
            logger.error("fault #%d %s failed to revert: %s", record.fault_id, record.name, record.revert_error)
        if self._active is not None and self._active[1] is record:
            self._active = None
        if record.t0 is not None:
            now = self.clock()
            record.duration_s = now - (record.took_effect or record.t0)
            self.events.fault_reverted.fire(
                fault_id=record.fault_id,
                name=record.name,
                params=record.params,
                time=self.origin.to_wall(now),
                duration_s=record.duration_s,
                error=record.revert_error,
            )

    def stop(self) -> None:
        """Stop scheduling and on-demand faults; revert a fault still active (idempotent)."""
        if self.greenlet is not None:
            self.greenlet.kill(block=True)
            self.greenlet = None
        for greenlet in list(self._on_demand):
            greenlet.kill(block=True)
        if self._active is not None:
            self._revert(*self._active)
        if self._settled < len(self.records):
            if self.witnesses is not None:
                gevent.sleep(WITNESS_SETTLE_S)  # a gap that just ended reaches us as its probe's next line
            self.settle(self.clock(), closing=True)
        faults, self._faults = self._faults, {}
        for record in self.records:  # what their background watchers saw by the end of the test
            if record.t0 is not None and record.fault_id in faults:
                record.seen = faults[record.fault_id].seen()
        for fault in faults.values():
            fault.close()
