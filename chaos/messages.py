"""Master/worker messages: chaos runs once on the master, figures are measured on the workers.

The master tells the workers the run (profile, target, run id) before they spawn users, tells
them of every fault window, has them reset their own pools for ``pool_reset`` (and waits for
their acknowledgements), and collects each worker's closed windows as they close and its final
figures at the end. Locust's custom messages carry it all (``register_message`` /
``send_message``); message data is plain JSON-like data.
"""

from __future__ import annotations

from locust.runners import STATE_MISSING, MasterRunner, WorkerRunner

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import gevent
import gevent.event

from recovery.results import NodeResult, result_from_dict, window_from_dict
from recovery.tracker import WindowSummary
from scenarios.run import PoolResetResult

logger = logging.getLogger("redis_resilience")

SETUP = "rr_setup"  # master -> workers: {test, run_id, profile, url}
READY = "rr_ready"  # worker -> master: {test, ok, error}
FAULT = "rr_fault"  # master -> workers: {test, fault_id, name, time}
POOL_RESET = "rr_pool_reset"  # master -> workers: {test, fault_id}
POOL_RESET_ACK = "rr_pool_reset_ack"  # worker -> master: {test, fault_id, pools, connections, in_use, time}
WINDOW = "rr_window"  # worker -> master: {test, window}
COLLECT = "rr_collect"  # master -> workers: {test}
FINAL = "rr_final"  # worker -> master: {test, result}


@dataclass
class MasterTest:
    """What the master hears from its workers during one test."""

    test: int
    ready: dict[str, str | None] = field(default_factory=dict)  # worker -> error (None: ok)
    windows: dict[str, list[WindowSummary]] = field(default_factory=dict)
    finals: dict[str, NodeResult] = field(default_factory=dict)
    pool_acks: dict[int, dict[str, dict[str, Any]]] = field(default_factory=dict)

    @property
    def expected(self) -> list[str]:
        return sorted(w for w, error in self.ready.items() if error is None)


class MasterLink:
    """The master's side. Handlers run in the runner's message greenlet; waits are bounded."""

    def __init__(self, runner: MasterRunner, on_worker_error: Callable[[str, str], None]) -> None:
        self.runner = runner
        self.on_worker_error = on_worker_error
        self.current: MasterTest | None = None
        self.changed = gevent.event.Event()
        for msg_type, handler in (
            (READY, self._on_ready),
            (WINDOW, self._on_window),
            (FINAL, self._on_final),
            (POOL_RESET_ACK, self._on_pool_reset_ack),
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
            self._notify()

    def _on_pool_reset_ack(self, msg: Any, **_: Any) -> None:
        if (test := self._for_current(msg.data)) is not None:
            test.pool_acks.setdefault(int(msg.data["fault_id"]), {})[msg.node_id] = msg.data
            self._notify()

    # -- sending ---------------------------------------------------------------------------

    def begin(self, test: int, setup: dict[str, Any], timeout_s: float) -> MasterTest:
        """Send the run to every worker and wait (bounded) until each answered."""
        self.current = MasterTest(test)
        workers = [c.id for c in self.runner.clients.all if c.state != STATE_MISSING]
        self.runner.send_message(SETUP, {"test": test, **setup})
        self._wait(lambda t: all(w in t.ready for w in workers), timeout_s)
        for worker in workers:
            if worker not in self.current.ready:
                self.on_worker_error(worker, f"did not answer the run setup within {timeout_s:g}s")
        return self.current

    def announce_fault(self, fault_id: int, name: str, wall_time: float) -> None:
        if self.current is not None:
            data = {"test": self.current.test, "fault_id": fault_id, "name": name, "time": wall_time}
            self.runner.send_message(FAULT, data)

    def reset_pools(self, fault_id: int, timeout_s: float) -> PoolResetResult:
        """Have every worker reset its pools: the sum, naming the workers that did not acknowledge."""
        test = self.current
        if test is None:
            return PoolResetResult(0, 0, 0)
        expected = [w for w in test.expected if self._alive(w)]
        self.runner.send_message(POOL_RESET, {"test": test.test, "fault_id": fault_id})
        self._wait(lambda t: all(w in t.pool_acks.get(fault_id, {}) for w in expected), timeout_s)
        acks = test.pool_acks.get(fault_id, {})
        return PoolResetResult(
            pools=sum(int(a["pools"]) for a in acks.values()),
            connections=sum(int(a["connections"]) for a in acks.values()),
            in_use=sum(int(a["in_use"]) for a in acks.values()),
            unacknowledged=tuple(sorted(set(expected) - set(acks))),
        )

    def collect(self, timeout_s: float) -> MasterTest | None:
        """Ask every worker for its final figures (stopping its users first) and wait, bounded."""
        test = self.current
        if test is None:
            return None
        self.runner.send_message(COLLECT, {"test": test.test})
        self._wait(lambda t: all(w in t.finals or not self._alive(w) for w in t.expected), timeout_s)
        self.current = None
        return test

    def _alive(self, worker: str) -> bool:
        node = self.runner.clients.get(worker)
        return node is not None and node.state != STATE_MISSING

    def _wait(self, done: Callable[[MasterTest], bool], timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.current is not None and not done(self.current):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.changed.wait(min(left, 0.5))  # re-check liveness at least twice a second


class WorkerLink:
    """The worker's side: forwards master messages to the pack's handlers, sends figures back."""

    def __init__(self, runner: WorkerRunner, handlers: dict[str, Callable[[dict[str, Any]], None]]) -> None:
        self.runner = runner
        for msg_type, handler in handlers.items():
            runner.register_message(msg_type, lambda msg, _h=handler, **_: _h(msg.data))

    def send(self, msg_type: str, data: dict[str, Any]) -> None:
        self.runner.send_message(msg_type, data)
