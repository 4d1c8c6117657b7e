"""One fault's life on the node that runs it: inject within a deadline, hold, revert once.

The scheduler (local runner, master) and a worker running its share of a ``traffic_nodes`` fault both
run a fault through :class:`FaultLife`, so a fault is injected, held and reverted the same way
wherever it runs: held ``hold_s`` from when it took effect and never less, reverted once whatever
happens (the caller calls :meth:`FaultLife.revert` in ``finally``; a second call does nothing).
What a node records and announces around it (events, messages, its report) stays the caller's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import gevent

from chaos.faults.base import Running
from targets.greenlets import describe


class FaultTimeout(Exception):
    """A fault's inject or revert hung past ``chaos.fault_timeout_s``."""


def deadline(step: str, limit_s: float) -> gevent.Timeout:
    """A fault's inject or revert hanging past ``limit_s`` (``chaos.fault_timeout_s``) fails with
    :class:`FaultTimeout`: recorded, and the schedule goes on."""
    return gevent.Timeout(limit_s, FaultTimeout(f"{step} did not return within {limit_s:g}s"))


def sleep_until(deadline: float, clock: Callable[[], float] = time.monotonic) -> None:
    """Sleep until ``deadline`` on ``clock``, never before: a gevent timer counts from the loop's cached
    time, which lags behind the clock while the hub is busy, so a single sleep can end early."""
    while (left := deadline - clock()) > 0:
        gevent.sleep(left)


class FaultLife:
    """One run of ``fault``: :meth:`start`, :meth:`inject`, :meth:`hold`, then :meth:`revert` in ``finally``.

    :param timeout_s: the deadline of the inject and of the revert (``chaos.fault_timeout_s``)
    :param clock: the monotonic clock every time here is on
    """

    def __init__(self, fault: Running, timeout_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.fault, self.timeout_s, self.clock = fault, timeout_s, clock
        self.begin: float | None = None  # the injection call began (its window opens here)
        self.t0: float | None = None  # the injection call returned; None: not yet, or it failed
        self.details: dict[str, Any] = {}
        self.error: str | None = None  # why the injection failed
        self.revert_error: str | None = None
        self.reverted = False

    def start(self) -> float:
        """The injection begins now: its time (the fault's window opens there)."""
        self.begin = self.clock()
        return self.begin

    def inject(self) -> float | None:
        """Inject within the deadline (after :meth:`start`): when the call returned (``t0``), or None (``error``
        says why) when it raised or hung."""
        try:
            with deadline("inject", self.timeout_s):
                self.details = self.fault.inject()
        except Exception as exc:
            self.error = describe(exc)
            return None
        self.t0 = self.clock()
        return self.t0

    @property
    def inject_ms(self) -> float:
        """How long the injection call took (until now while it runs, or when it failed)."""
        assert self.begin is not None, "start() first"
        return ((self.t0 if self.t0 is not None else self.clock()) - self.begin) * 1000

    @property
    def took_effect(self) -> float | None:
        """When the change reached the target (the fault says so, else its call returned); None: it did not."""
        if self.t0 is None:
            return None
        return self.fault.took_effect or self.t0

    def hold(self) -> None:
        """A sustained fault lasts ``hold_s`` from when it took effect, never less; others return at once."""
        if self.t0 is not None and self.begin is not None and self.fault.hold_s > 0:
            sleep_until(self.fault.hold_until(self.begin, self.t0), self.clock)

    def revert(self) -> bool:
        """Revert within the deadline, once: True when this call reverted it (``revert_error`` says if it
        failed), False when it was reverted already. A revert cut short (its greenlet killed) runs again."""
        if self.reverted:
            return False
        try:
            with deadline("revert", self.timeout_s):
                self.fault.revert()
        except Exception as exc:
            self.revert_error = describe(exc)
        self.reverted = True
        return True
