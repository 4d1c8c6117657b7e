"""The master's side of the messages: what it sends its workers, and what it hears from them.

Handlers run in the runner's message greenlet and only record; every wait is bounded, and
re-checks twice a second which workers are still alive (a worker that died is not waited for).
"""

from __future__ import annotations

from locust.runners import STATE_MISSING, MasterRunner

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent.event

from chaos.distributed import messages
from recovery.results import NodeResult, result_from_dict, window_from_dict
from recovery.tracker import WindowSummary


@dataclass
class MasterTest:
    """What the master hears from its workers during one test."""

    test: int
    ready: dict[str, str | None] = field(default_factory=dict)  # worker -> error (None: ok)
    windows: dict[str, list[WindowSummary]] = field(default_factory=dict)
    finals: dict[str, NodeResult] = field(default_factory=dict)
    aborted: dict[str, str] = field(default_factory=dict)  # worker -> why its test was aborted
    fault_acks: dict[int, dict[str, dict[str, Any]]] = field(default_factory=dict)  # fault id -> worker -> ack

    @property
    def expected(self) -> list[str]:
        return sorted(w for w, error in self.ready.items() if error is None)


def combine_acks(acks: dict[str, dict[str, Any]], expected: list[str]) -> dict[str, Any]:
    """One fault's details over the workers: numbers add up; any other detail is given per worker;
    ``unacknowledged_workers`` names those that did not acknowledge in time. ``RuntimeError`` when
    every acknowledgement is a failure (a fault that ran nowhere failed)."""
    failed = {worker: str(ack["error"]) for worker, ack in sorted(acks.items()) if ack.get("error")}
    if acks and len(failed) == len(acks):
        raise RuntimeError("; ".join(f"worker {worker}: {error}" for worker, error in failed.items()))
    details: dict[str, Any] = {}
    for worker, ack in sorted(acks.items()):
        for key, value in (ack.get("details") or {}).items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                details[key] = details.get(key, 0) + value
            else:
                details.setdefault(key, {})[worker] = value
    if failed:
        details["failed_workers"] = failed
    unacknowledged = sorted(set(expected) - set(acks))
    if unacknowledged:
        details["unacknowledged_workers"] = unacknowledged
    return details


class MasterLink:
    """The master's messages for one test at a time (see chaos/distributed/messages.py)."""

    def __init__(self, runner: MasterRunner, on_worker_error: Callable[[str, str], None]) -> None:
        self.runner = runner
        self.on_worker_error = on_worker_error
        self.current: MasterTest | None = None
        self.changed = gevent.event.Event()
        for msg_type, handler in (
            (messages.READY, self._on_ready),
            (messages.WINDOW, self._on_window),
            (messages.FINAL, self._on_final),
            (messages.FAULT_RAN, self._on_fault_ran),
        ):
            runner.register_message(msg_type, handler)

    # -- receiving -------------------------------------------------------------------------

    def _for_current(self, data: dict[str, Any]) -> MasterTest | None:
        test = self.current
        return test if test is not None and data.get("test") == test.test else None

    def _notify(self) -> None:
        self.changed.set()
        self.changed.clear()

    def _on_ready(self, msg: Any, **_: Any) -> None:
        if (test := self._for_current(msg.data)) is None:
            return
        test.ready[msg.node_id] = msg.data.get("error")
        if msg.data.get("error"):
            self.on_worker_error(msg.node_id, msg.data["error"])
        self._notify()

    def _on_window(self, msg: Any, **_: Any) -> None:
        if (test := self._for_current(msg.data)) is not None:
            test.windows.setdefault(msg.node_id, []).append(window_from_dict(msg.data["window"]))
            self._notify()

    def _on_final(self, msg: Any, **_: Any) -> None:
        if (test := self._for_current(msg.data)) is not None:
            test.finals[msg.node_id] = result_from_dict(msg.data["result"])
            if msg.data.get("aborted"):
                test.aborted[msg.node_id] = str(msg.data["aborted"])
            self._notify()

    def _on_fault_ran(self, msg: Any, **_: Any) -> None:
        if (test := self._for_current(msg.data)) is not None:
            test.fault_acks.setdefault(int(msg.data["fault_id"]), {})[msg.node_id] = msg.data
            self._notify()

    # -- sending ---------------------------------------------------------------------------

    def begin(self, test: int, setup: dict[str, Any], timeout_s: float) -> MasterTest:
        """Send the run to every worker and wait (bounded) until each answered."""
        self.current = MasterTest(test)
        workers = [c.id for c in self.runner.clients.all if c.state != STATE_MISSING]
        self.runner.send_message(messages.SETUP, {"test": test, **setup})
        self.wait_until(lambda t: all(w in t.ready for w in workers), timeout_s)
        for worker in workers:
            if worker not in self.current.ready:
                self.on_worker_error(worker, f"did not answer the run setup within {timeout_s:g}s")
        return self.current

    def announce_window(self, fault_id: int, name: str, wall_time: float) -> None:
        """A fault's window opened (at ``wall_time``): each worker opens its own, unless it has already."""
        if self.current is not None:
            data = {"test": self.current.test, "fault_id": fault_id, "name": name, "time": wall_time}
            self.runner.send_message(messages.WINDOW_OPENED, data)

    def run_on_workers(self, fault_id: int, name: str, params: dict[str, Any], timeout_s: float) -> dict[str, Any]:
        """Have every worker run a fault on its own clients; their details together (:func:`combine_acks`)."""
        test = self.current
        if test is None:
            raise RuntimeError("no test is running on the workers")
        expected = [w for w in test.expected if self._alive(w)]
        data = {"test": test.test, "fault_id": fault_id, "name": name, "params": params}
        self.runner.send_message(messages.RUN_FAULT, data)
        self.wait_until(lambda t: all(w in t.fault_acks.get(fault_id, {}) for w in expected), timeout_s)
        return combine_acks(test.fault_acks.get(fault_id, {}), expected)

    def collect(self, timeout_s: float) -> MasterTest | None:
        """Ask every worker for its final figures (stopping its users first) and wait, bounded."""
        test = self.current
        if test is None:
            return None
        self.runner.send_message(messages.COLLECT, {"test": test.test})
        self.wait_until(lambda t: all(w in t.finals or not self._alive(w) for w in t.expected), timeout_s)
        self.current = None
        return test

    def _alive(self, worker: str) -> bool:
        node = self.runner.clients.get(worker)
        return node is not None and node.state != STATE_MISSING

    def wait_until(self, done: Callable[[MasterTest], bool], timeout_s: float) -> None:
        """Until ``done`` holds of the current test, woken by each message (bounded by ``timeout_s``)."""
        deadline = time.monotonic() + timeout_s
        while self.current is not None and not done(self.current):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.changed.wait(min(left, 0.5))  # re-check liveness at least twice a second
