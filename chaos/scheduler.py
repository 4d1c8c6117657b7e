"""The chaos scheduler: one greenlet on the local or master runner that follows the profile's schedule."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import replace

import gevent
import gevent.event
import gevent.lock

from chaos.events import ResilienceEvents
from chaos.faults import Fault, FaultParams, FaultTarget, build_fault
from config.redact import redact_params, redact_url
from config.schema import Chaos
from recovery.records import FaultRecord

logger = logging.getLogger(__name__)


class FaultTimeout(Exception):
    """A fault's inject or revert hung past ``chaos.fault_timeout_s``."""


class FaultConflict(Exception):
    """A fault cannot be injected now: no test is running, or another fault is being injected or held."""


def _describe(exc: BaseException) -> str:
    return redact_url(f"{type(exc).__name__}: {exc}")


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
    ) -> None:
        self.chaos = chaos
        self.target = target
        self.events = events
        self.started_at = started_at
        self.clock = clock
        self.last_fault_by = last_fault_by  # monotonic; no fault after it (its window would be cut short)
        self.rng = random.Random(chaos.seed)
        self.records: list[FaultRecord] = []
        self.greenlet: gevent.Greenlet[..., None] | None = None
        self._active: tuple[Fault, FaultRecord] | None = None
        self._busy = gevent.lock.Semaphore()  # one fault at a time, scheduled or on demand
        self._on_demand: set[gevent.Greenlet[..., None]] = set()

    def start(self) -> None:
        self.greenlet = gevent.spawn(self._run)

    def _run(self) -> None:
        chaos = self.chaos
        gevent.sleep(chaos.start_after_s)
        injected = 0
        while chaos.count is None or injected < chaos.count:
            tick = self.clock()
            if self.last_fault_by is not None and tick > self.last_fault_by:
                logger.info("no more faults: the test ends before another fault window could close")
                return
            if chaos.order == "cycle":
                spec = chaos.faults[injected % len(chaos.faults)]
            else:
                spec = self.rng.choices(chaos.faults, weights=[f.weight for f in chaos.faults])[0]
            self.inject(spec)
            injected += 1
            delay = chaos.every_s + (self.rng.uniform(-chaos.jitter_s, chaos.jitter_s) if chaos.jitter_s else 0.0)
            wait = tick + delay - self.clock()
            if wait < 0:  # the injection overran the interval: give its window a full interval anyway
                logger.warning("fault injection took longer than every_s: next fault in %.1fs", delay)
                wait = delay
            gevent.sleep(wait)

    @property
    def active(self) -> FaultRecord | None:
        """The fault being injected or held, if any."""
        return self._active[1] if self._active is not None else None

    def inject(self, spec: FaultParams, trigger: str = "schedule") -> FaultRecord:
        """Inject one fault now (once an active one has ended), fire its events and revert it (in ``finally``)."""
        with self._busy:
            return self._inject(spec, trigger)

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

        greenlet = gevent.spawn(run)
        self._on_demand.add(greenlet)
        greenlet.link(ended)
        return done.get()

    def _inject(
        self, spec: FaultParams, trigger: str, injected: Callable[[FaultRecord], None] | None = None
    ) -> FaultRecord:
        """Inject, fire the events, call ``injected`` (injection done or failed), hold, revert (in ``finally``)."""
        params = redact_params(spec.model_dump(mode="json", exclude={"name", "weight"}))  # headers may hold tokens
        assert isinstance(params, dict)
        record = FaultRecord(len(self.records) + 1, spec.name, params, offset_s=0.0, inject_ms=0.0, trigger=trigger)
        self.records.append(record)
        fault = build_fault(spec, replace(self.target, fault_id=record.fault_id))
        begin = self.clock()
        self._active = (fault, record)  # from here on, stop() reverts it, even mid-injection
        try:
            with self._deadline("inject"):
                record.details = fault.inject()
        except Exception as exc:
            record.error = _describe(exc)
            record.offset_s = begin - self.started_at
            record.inject_ms = (self.clock() - begin) * 1000
            logger.error("fault #%d %s failed to inject: %s", record.fault_id, spec.name, record.error)
            self.events.fault_failed.fire(fault_id=record.fault_id, name=spec.name, params=params, error=record.error)
            self._revert(fault, record)
            if injected is not None:
                injected(record)
            return record
        t0 = self.clock()
        record.t0 = t0
        record.offset_s = t0 - self.started_at
        record.inject_ms = (t0 - begin) * 1000
        logger.info(
            "fault #%d %s injected at +%.1fs%s: %s",
            record.fault_id,
            spec.name,
            record.offset_s,
            "" if trigger == "schedule" else f" (on demand: {trigger})",
            record.details,
        )
        try:
            self.events.fault_injected.fire(
                fault_id=record.fault_id,
                name=spec.name,
                params=params,
                time=time.time(),
                monotonic=t0,
                details=record.details,
            )
            if injected is not None:
                injected(record)
            if fault.hold_s > 0:  # a sustained fault: it lasts, then is reverted (also if killed meanwhile)
                gevent.sleep(fault.hold_s)
        finally:
            self._revert(fault, record)
        return record

    def _revert(self, fault: Fault, record: FaultRecord) -> None:
        """Revert once; a revert cut short (its greenlet killed mid-way) is run again by :meth:`stop`."""
        if record.reverted:
            return
        try:
            with self._deadline("revert"):
                fault.revert()
        except Exception as exc:
            record.revert_error = _describe(exc)
            logger.error("fault #%d %s failed to revert: %s", record.fault_id, record.name, record.revert_error)
        record.reverted = True
        if self._active is not None and self._active[1] is record:
            self._active = None
        if record.t0 is not None:
            record.duration_s = self.clock() - record.t0
            self.events.fault_reverted.fire(
                fault_id=record.fault_id,
                name=record.name,
                params=record.params,
                time=time.time(),
                duration_s=record.duration_s,
                error=record.revert_error,
            )

    def _deadline(self, step: str) -> gevent.Timeout:
        """An inject or revert hanging past ``chaos.fault_timeout_s`` fails (recorded); the schedule goes on."""
        limit = self.chaos.fault_timeout_s
        return gevent.Timeout(limit, FaultTimeout(f"{step} did not return within {limit:g}s"))

    def stop(self) -> None:
        """Stop scheduling and on-demand faults; revert a fault still active (idempotent)."""
        if self.greenlet is not None:
            self.greenlet.kill(block=True)
            self.greenlet = None
        for greenlet in list(self._on_demand):
            greenlet.kill(block=True)
        if self._active is not None:
            self._revert(*self._active)
