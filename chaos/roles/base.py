"""What every role shares: the test lifecycle Locust drives, and the process end.

The plugin builds one role per process (local, master or worker, by the runner) and wires Locust's
events to its ``on_*`` methods. A role starts its own kind of test run at ``test_start``, stops it
and concludes it (reports, or sends its figures) at ``test_stop``, and at ``quitting`` stops a test
still running (Ctrl-C, SIGTERM) so that its writes are checked and it is reported. The outcome
(recovery/outcome.py) alone decides the exit code; the role only hands it to Locust.
"""

from __future__ import annotations

from locust.env import Environment
from locust.runners import STATE_STOPPED

import gc
import sys
from typing import Any, ClassVar, Generic, TypeVar

from chaos.events import ResilienceEvents
from chaos.locust_test import LocustTest
from chaos.settings import Settings
from chaos.signals import StopSignals
from recovery.outcome import Outcome

R = TypeVar("R", bound=LocustTest)


def freeze_heap() -> None:
    """Collect, then move every object alive now (modules, the run's setup, the pools: what lives for the
    whole test) out of the collector's generations, before a test starts.

    A full collection of Locust's and the pack's objects stalls every greenlet at once, long enough
    for each request in flight to count as degraded, so a fault's window "recovered" late; frozen,
    the collections that remain are short (the figures: docs/benchmarks.md, "The collector")."""
    gc.collect()
    gc.freeze()


class Role(Generic[R]):
    """The pack on one Locust process."""

    mode: ClassVar[str]  # "local", "master" or "worker": the report's and the status's ``mode``

    def __init__(self, environment: Environment, settings: Settings, events: ResilienceEvents) -> None:
        self.environment = environment
        self.settings = settings
        self.events = events
        self.signals = StopSignals()
        self.outcome = Outcome(settings.report_path, settings.html_path, settings.junit_path)
        self.test: R | None = None  # the test running now

    @property
    def report(self) -> dict[str, Any] | None:
        """The last test's report (on the node that reports)."""
        return self.outcome.report

    # ---- what each role does its own way -----------------------------------------------------

    def start_test(self) -> R | None:
        """A test starts: its run on this node (None: this node takes no part in it)."""
        raise NotImplementedError

    def conclude(self, test: R) -> None:
        """A test ended and its run is stopped: report it, or send its figures."""
        raise NotImplementedError

    def close(self) -> None:
        """The process ends: stop what the role started (servers, proxy, connections)."""

    # ---- Locust's events (wired by the plugin) -----------------------------------------------

    def on_request(self, request_type: str, name: str, response_time: float, response_length: int, **_: Any) -> None:
        """A request made on this node (only a node with users makes any: see roles/measuring.py)."""

    def on_fault_started(self, fault_id: int, name: str, time: float, monotonic: float, **_: Any) -> None:
        """A fault's injection call began, on this node (only a node with a scheduler injects): its window
        opens. ``time`` is the wall-clock start, ``monotonic`` the same on this node's monotonic clock."""

    def on_test_start(self, **_: Any) -> None:
        self.finish_test()
        freeze_heap()
        self.test = self.start_test()

    def on_test_stop(self, **_: Any) -> None:
        self.finish_test()

    def finish_test(self) -> None:
        """Stop the running test (chaos reverted, windows closed), then conclude it (idempotent)."""
        test, self.test = self.test, None
        if test is not None:
            test.stop()
            self.conclude(test)

    def on_quitting(self, environment: Environment, **_: Any) -> None:
        runner = environment.runner
        if self.test is not None and runner is not None and runner.state != STATE_STOPPED:
            self.test.interrupted = self.signals.received or "quit"
            runner.stop()  # Ctrl-C or SIGTERM mid-test: stop users so writes can be checked
        self.finish_test()
        self.apply_exit_code()

    def on_quit(self, **_: Any) -> None:
        self.outcome.print_report()  # after Locust's own tables, so the verdict is the last thing shown
        line = self.outcome.refusal_line()
        if line is not None:
            sys.stderr.write(line)
        self.close()

    def apply_exit_code(self) -> None:
        code = self.outcome.exit_code
        if code is not None:
            self.environment.process_exit_code = code

    @property
    def headless(self) -> bool:
        options = self.environment.parsed_options
        return options is not None and bool(options.headless)
