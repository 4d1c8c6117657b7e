"""One test on one node, from Locust's ``test_start`` to its ``test_stop``.

A :class:`LocustTest` owns the test's background greenlets (the watchdog, the chaos scheduler on the
node that schedules) and how the test ended (interrupted by a signal, aborted by the pack). A
:class:`MeasuredTest` is the test on a node that makes traffic (local, worker): it adds the recovery
tracker, whose windows a timer closes at ``max_window_s``, and gives the node's result.

Every greenlet a test owns is spawned with ``link_exception``: a crash aborts the test with the
error (the report says so, the verdict fails) and is logged, never a silent stop of measurement.
"""

from __future__ import annotations

from locust import User

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import gevent
import gevent.event

from chaos.scheduler import ChaosScheduler
from config.schema import Recovery
from recovery.clock import ClockOrigin
from recovery.records import FaultRecord
from recovery.results import NodeResult
from recovery.tracker import RequestTrackers, WindowSummary
from scenarios.request_types import declared_request_types
from scenarios.run import IntegrityResult
from targets.greenlets import describe, spawn_later_reported, spawn_reported, stop

logger = logging.getLogger("redis_resilience")

EXPIRE_EVERY_S = 0.25  # how often an open window is checked against max_window_s


class LocustTest:
    """What lives from test_start to test_stop on one node."""

    __test__ = False  # not a pytest test class

    def __init__(self, number: int) -> None:
        self.number = number
        self.origin = ClockOrigin.now()  # the test's one tie between the monotonic and the wall clock
        self.started_at = self.origin.monotonic
        self.started_wall = self.origin.wall
        self.scheduler: ChaosScheduler | None = None  # on the node that schedules, once set up
        self.interrupted: str | None = None  # cut short by a signal (or a quit) before its end
        self.aborted: str | None = None  # stopped by the pack itself, and why
        self._greenlets: list[gevent.Greenlet] = []

    def spawn(self, what: str, body: Callable[..., Any], *args: Any) -> gevent.Greenlet:
        """A greenlet of this test: killed and joined by :meth:`stop`; a crash aborts the test."""
        greenlet = spawn_reported(lambda exc: self.crashed(what, exc), body, *args)
        self._greenlets.append(greenlet)
        return greenlet

    def crashed(self, what: str, exc: BaseException | None) -> None:
        """A background greenlet of the test died of an exception: the test is aborted (first reason wins)."""
        reason = f"{what} crashed: {describe(exc) if exc is not None else 'unknown error'}"
        logger.error("redis-resilience: %s", reason)
        if self.aborted is None:
            self.aborted = reason

    @property
    def records(self) -> list[FaultRecord]:
        return self.scheduler.records if self.scheduler is not None else []

    def elapsed_s(self) -> float:
        return time.monotonic() - self.started_at

    def stop(self) -> None:
        """Stop chaos (reverting an active fault), then every greenlet of the test (idempotent)."""
        if self.scheduler is not None:
            self.scheduler.stop()
        for greenlet in self._greenlets:
            stop(greenlet)
        self._greenlets.clear()


class MeasuredTest(LocustTest):
    """A test on a node that makes traffic: per-fault windows of its own requests, per request type.

    :param on_closed: called with each closed window (from the request that closes it, or the timer)
    :param user_classes: the user classes Locust runs in this test (its ``environment.user_classes``): the
        request types they declare are the ones measured (scenarios/request_types.py)
    """

    def __init__(
        self,
        number: int,
        recovery: Recovery,
        on_closed: Callable[[WindowSummary], None],
        user_classes: Iterable[type[User]],
        user_count: Callable[[], int] | None = None,
    ) -> None:
        super().__init__(number)
        self.on_closed = on_closed
        self.window_closed = gevent.event.Event()  # set (and cleared) as each window closes: waiters wake
        self.tracker = RequestTrackers(
            recovery, declared_request_types(user_classes), on_closed=self._closed, origin=self.origin
        )
        self.user_count = user_count  # this node's users running now (the timeline's users)
        self.opened: set[int] = set()  # fault ids whose window this node opened
        self.spawn("the fault window timer", self._expire_windows)

    def _closed(self, window: WindowSummary) -> None:
        self.on_closed(window)
        self.window_closed.set()
        self.window_closed.clear()

    def _expire_windows(self) -> None:
        while True:
            gevent.sleep(EXPIRE_EVERY_S)
            self.tracker.expire()
            if self.user_count is not None:
                self.tracker.sample_users(self.user_count())

    def open_window(self, fault_id: int, name: str, start: float) -> None:
        """A fault's injection began at ``start`` (monotonic, this node): its window opens, once."""
        if fault_id not in self.opened:
            self.opened.add(fault_id)
            self.tracker.open_window(fault_id, name, start)

    def stop(self) -> None:
        super().stop()
        self.tracker.close_all()

    def result(
        self, integrity: dict[str, IntegrityResult] | None, integrity_error: str | None, user_errors: int
    ) -> NodeResult:
        return NodeResult.from_trackers(self.tracker, integrity, integrity_error, user_errors)


def spawn_detached(what: str, body: Callable[[], Any], delay_s: float = 0.0) -> gevent.Greenlet:
    """A one-shot greenlet no test owns, because it stops or quits the runner (which stops the test's
    own greenlets, and must not kill itself doing so); a crash is logged."""

    def crashed(exc: BaseException) -> None:
        logger.error("redis-resilience: %s crashed: %s", what, describe(exc))

    return spawn_later_reported(delay_s, crashed, body)
